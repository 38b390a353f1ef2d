/* Restart backoff (backoff.h). Pure: unit-tested. */
#include "backoff.h"

void backoff_reset(struct backoff *b)
{
	b->next_ms = BACKOFF_FIRST_MS;
}

unsigned backoff_next(struct backoff *b, int64_t ran_ms)
{
	if (ran_ms >= BACKOFF_STABLE_MS || b->next_ms < BACKOFF_FIRST_MS)
		b->next_ms = BACKOFF_FIRST_MS;
	unsigned delay = b->next_ms;
	b->next_ms = delay >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : delay * 2;
	return delay;
}
