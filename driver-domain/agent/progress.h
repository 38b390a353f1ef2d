/* The rule that decides whether a back-end is making progress (docs/ddtk-agent.md): it answers
 * its stats socket, and it has nothing in flight or has completed something within the last
 * PROGRESS_STALL_MS. ddtk-agent pets the watchdog only while every back-end does. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "stats-json.h"

#define PROGRESS_STALL_MS 5000

struct progress {
	bool seen;                /* a sample was taken since the back-end (re)started */
	uint64_t completed;       /* its completed count then */
	int64_t last_progress_ms; /* when it last completed something or had nothing in flight */
};

/* Forgets the history: a back-end that (re)starts counts from its first answer. */
void progress_reset(struct progress *p);
/* Takes one sample at now_ms: `s` is what the back-end answered, NULL when it did not (no answer
 * within the timeout, or not a valid document). A back-end that does not report "inflight" counts
 * as having nothing in flight. Returns whether it shows progress. */
bool progress_update(struct progress *p, const struct stats_sample *s, int64_t now_ms);
