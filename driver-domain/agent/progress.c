/* The progress rule (progress.h). Pure: unit-tested. */
#include "progress.h"

void progress_reset(struct progress *p)
{
	p->seen = false;
	p->completed = 0;
	p->last_progress_ms = 0;
}

bool progress_update(struct progress *p, const struct stats_sample *s, int64_t now_ms)
{
	if (!s)
		return false;
	uint64_t inflight = s->has_inflight ? s->inflight : 0;
	/* Idle counts as progress, so a request that arrives after a long quiet spell has its full
	 * PROGRESS_STALL_MS to complete; a count that moves backwards is a restarted back-end. */
	if (!p->seen || inflight == 0 || s->completed != p->completed)
		p->last_progress_ms = now_ms;
	p->seen = true;
	p->completed = s->completed;
	return now_ms - p->last_progress_ms <= PROGRESS_STALL_MS;
}
