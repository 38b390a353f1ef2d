/* The delay before a back-end that exited is started again: BACKOFF_FIRST_MS, doubling up to
 * BACKOFF_MAX_MS while it keeps exiting; one that ran for BACKOFF_STABLE_MS starts afresh. */
#pragma once

#include <stdint.h>

#define BACKOFF_FIRST_MS 200u
#define BACKOFF_MAX_MS 5000u
#define BACKOFF_STABLE_MS 30000

struct backoff {
	unsigned next_ms;
};

void backoff_reset(struct backoff *b);
/* The delay to wait now, for a process that ran ran_ms before it exited. */
unsigned backoff_next(struct backoff *b, int64_t ran_ms);
