/* ddtkd's restart policy (host/supervisor/restart-policy.c): the first restart at once, the next
 * ones later and later, none beyond the budget within the window, and the budget back as old
 * restarts leave the window or the DD is started by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "restart-policy.h"

static void test_backoff_and_budget(void **state)
{
	struct restart_policy p;
	(void)state;

	restart_policy_init(&p, 4, 600000, 5000);
	assert_int_equal(restart_policy_delay(&p, 1000), 0);
	restart_policy_record(&p, 1000);
	assert_int_equal(restart_policy_delay(&p, 2000), RESTART_DELAY_MIN_MS);
	restart_policy_record(&p, 3000);
	assert_int_equal(restart_policy_delay(&p, 4000), 2000);
	restart_policy_record(&p, 6000);
	/* Doubling: 4000, still under the 5000 cap. */
	assert_int_equal(restart_policy_delay(&p, 7000), 4000);
	restart_policy_record(&p, 11000);
	assert_int_equal(restart_policy_recent(&p, 11000), 4);
	/* Four within the window: the fifth is refused until the first leaves it. */
	assert_int_equal(restart_policy_delay(&p, 12000), -1);
	assert_int_equal(restart_policy_delay(&p, 1000 + 600000 - 1), -1);
	assert_int_equal(restart_policy_recent(&p, 1000 + 600000), 3);
	assert_int_equal(restart_policy_delay(&p, 1000 + 600000), 4000);
	assert_int_equal(p.total, 4);
}

static void test_cap(void **state)
{
	struct restart_policy p;
	(void)state;

	restart_policy_init(&p, 10, 60000, 5000);
	for (int i = 0; i < 6; i++)
		restart_policy_record(&p, i);
	assert_int_equal(restart_policy_delay(&p, 10), 5000);
	/* No delay at all when delay_max is 0. */
	restart_policy_init(&p, 10, 60000, 0);
	restart_policy_record(&p, 0);
	restart_policy_record(&p, 1);
	assert_int_equal(restart_policy_delay(&p, 2), 0);
}

static void test_forgive_and_window(void **state)
{
	struct restart_policy p;
	(void)state;

	restart_policy_init(&p, 1, 1000, 30000);
	restart_policy_record(&p, 0);
	assert_int_equal(restart_policy_delay(&p, 500), -1);
	restart_policy_forgive(&p);
	assert_int_equal(restart_policy_delay(&p, 500), 0);
	assert_int_equal(p.total, 1);
	restart_policy_record(&p, 500);
	/* Restarts spread wider than the window never use the budget up. */
	for (int64_t t = 1500; t < 20000; t += 1000) {
		assert_int_equal(restart_policy_delay(&p, t), 0);
		restart_policy_record(&p, t);
	}
	assert_int_equal(restart_policy_recent(&p, 19500), 1);
}

static void test_limits(void **state)
{
	struct restart_policy p;
	(void)state;

	/* Out-of-range settings are clamped, and the record never overflows. */
	restart_policy_init(&p, 0, 0, -5);
	assert_int_equal(p.budget, 1);
	restart_policy_init(&p, 1000, INT64_MAX / 2, 1000);
	assert_int_equal(p.budget, RESTART_BUDGET_MAX);
	for (int i = 0; i < 3 * RESTART_BUDGET_MAX; i++)
		restart_policy_record(&p, i);
	assert_int_equal(p.n, RESTART_BUDGET_MAX);
	assert_int_equal(p.total, 3 * RESTART_BUDGET_MAX);
	assert_int_equal(restart_policy_delay(&p, 1000), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_and_budget),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_forgive_and_window),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
