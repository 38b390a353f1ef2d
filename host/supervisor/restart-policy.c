/* The restart policy (restart-policy.h). Pure: unit-tested. */
#include "restart-policy.h"

void restart_policy_init(struct restart_policy *p, unsigned budget, int64_t window_ms, int64_t delay_max_ms)
{
	*p = (struct restart_policy){ 0 };
	p->budget = budget < 1 ? 1 : budget > RESTART_BUDGET_MAX ? RESTART_BUDGET_MAX : budget;
	p->window_ms = window_ms < 1 ? 1 : window_ms;
	p->delay_max_ms = delay_max_ms < 0 ? 0 : delay_max_ms;
}

unsigned restart_policy_recent(const struct restart_policy *p, int64_t now_ms)
{
	unsigned n = 0;

	for (unsigned i = 0; i < p->n; i++)
		if (now_ms - p->at[i] < p->window_ms)
			n++;
	return n;
}

int64_t restart_policy_delay(const struct restart_policy *p, int64_t now_ms)
{
	unsigned recent = restart_policy_recent(p, now_ms);
	int64_t delay = 0;

	if (recent >= p->budget)
		return -1;
	/* 0, then RESTART_DELAY_MIN_MS, doubling: a DD that keeps failing is not restarted in a loop. */
	for (unsigned i = 0; i < recent && delay < p->delay_max_ms; i++)
		delay = delay ? delay * 2 : RESTART_DELAY_MIN_MS;
	return delay < p->delay_max_ms ? delay : p->delay_max_ms;
}

void restart_policy_record(struct restart_policy *p, int64_t now_ms)
{
	/* Drop what fell out of the window; the array never holds more than the budget needs. */
	unsigned keep = 0;

	for (unsigned i = 0; i < p->n; i++)
		if (now_ms - p->at[i] < p->window_ms)
			p->at[keep++] = p->at[i];
	p->n = keep;
	if (p->n == RESTART_BUDGET_MAX) {
		for (unsigned i = 1; i < p->n; i++)
			p->at[i - 1] = p->at[i];
		p->n--;
	}
	p->at[p->n++] = now_ms;
	p->total++;
}

void restart_policy_forgive(struct restart_policy *p)
{
	p->n = 0;
}
