/* When ddtkd restarts the driver domain, and when it gives up (docs/ddtkd.md): every restart is
 * recorded; a restart while `budget` others happened within the last `window_ms` is refused (the
 * DD is then "failed" until someone starts it by hand); the delay before a restart doubles with
 * each recent one, from 0 for the first to at most `delay_max_ms`. Pure: unit-tested. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define RESTART_BUDGET_MAX 100
#define RESTART_DELAY_MIN_MS 1000 /* the second restart within a window waits this long */

struct restart_policy {
	unsigned budget;          /* restarts allowed within window_ms, 1..RESTART_BUDGET_MAX */
	int64_t window_ms;
	int64_t delay_max_ms;
	unsigned n;               /* restarts recorded in at[] (the newest last) */
	int64_t at[RESTART_BUDGET_MAX];
	uint64_t total;           /* restarts since the policy was set up */
};

void restart_policy_init(struct restart_policy *p, unsigned budget, int64_t window_ms, int64_t delay_max_ms);
/* Restarts within the window ending at now_ms. */
unsigned restart_policy_recent(const struct restart_policy *p, int64_t now_ms);
/* A restart is wanted at now_ms: the delay before it (>= 0), or -1 when the budget is spent. */
int64_t restart_policy_delay(const struct restart_policy *p, int64_t now_ms);
/* The restart happened at now_ms (it counts against the budget from then on). */
void restart_policy_record(struct restart_policy *p, int64_t now_ms);
/* Forgets the recent restarts (the DD was started by hand); the total stays. */
void restart_policy_forgive(struct restart_policy *p);
