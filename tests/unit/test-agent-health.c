/* Unit tests of ddtk-agent's health rule: what it reads from a back-end's stats document (and what
 * it refuses to read), and when a back-end counts as making progress. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "progress.h"
#include "stats-json.h"

static int parse(const char *text, struct stats_sample *s)
{
	memset(s, 0xa5, sizeof(*s));
	return stats_json_parse(text, strlen(text), s);
}

static void test_top_level_totals(void **state)
{
	struct stats_sample s;

	assert_int_equal(parse("{\"completed\": 1234, \"inflight\": 3, \"exports\": [{\"completed\": 1000,"
			       " \"inflight\": 1}, {\"completed\": 234, \"inflight\": 2}]}", &s), 0);
	assert_true(s.has_completed && s.has_inflight);
	assert_int_equal(s.completed, 1234);   /* the totals, not totals + per export */
	assert_int_equal(s.inflight, 3);
}

static void test_per_export_summed(void **state)
{
	struct stats_sample s;

	assert_int_equal(parse("{\"exports\": [{\"name\": \"a\", \"completed\": 10, \"inflight\": 1},\n"
			       "  {\"name\": \"b\", \"completed\": 5, \"inflight\": 0, \"queues\": [{\"completed\": 99}]}]}",
			       &s), 0);
	assert_int_equal(s.completed, 15);     /* the deeper per-queue count is not added */
	assert_int_equal(s.inflight, 1);
}

/* ddtk-net's document as it is today: counters, no "completed" or "inflight". */
static void test_without_our_keys(void **state)
{
	struct stats_sample s;

	assert_int_equal(parse("{\n  \"uplink\": {\"name\": \"eth0\", \"mtu\": 1500, \"rx_packets\": 5},\n"
			       "  \"clients\": [\n    {\"name\": \"a\", \"mac\": \"02:dd:00:00:00:0a\", \"connected\": true,"
			       " \"broken\": false, \"link\": true, \"rx_backlog\": 0}\n  ]\n}\n", &s), 0);
	assert_false(s.has_completed);
	assert_false(s.has_inflight);
	assert_int_equal(s.completed, 0);
	assert_int_equal(s.inflight, 0);
	assert_int_equal(parse("{\"uplink\": null, \"clients\": []}", &s), 0);
	assert_false(s.has_completed);
}

static void test_values_that_are_not_counts(void **state)
{
	struct stats_sample s;

	/* A key of ours with a value that is not an unsigned integer is not counted. */
	assert_int_equal(parse("{\"completed\": \"7\", \"inflight\": -1}", &s), 0);
	assert_false(s.has_completed);
	assert_false(s.has_inflight);
	assert_int_equal(parse("{\"completed\": 1.5e3, \"inflight\": 18446744073709551616}", &s), 0);
	assert_false(s.has_completed);
	assert_false(s.has_inflight);
	assert_int_equal(parse("{\"completed\": 18446744073709551615, \"x\": {\"y\": 1}}", &s), 0);
	assert_int_equal(s.completed, UINT64_MAX);
	/* Sums saturate. */
	assert_int_equal(parse("[{\"completed\": 18446744073709551615}, {\"completed\": 2}]", &s), 0);
	assert_int_equal(s.completed, UINT64_MAX);
	/* A string that looks like our key inside a value is not a key. */
	assert_int_equal(parse("{\"note\": \"completed\", \"list\": [\"inflight\", 3]}", &s), 0);
	assert_false(s.has_completed);
	assert_false(s.has_inflight);
	/* Escapes in other strings are fine; a key spelled with an escape is not ours. */
	assert_int_equal(parse("{\"a\\\"b\\u00e9\\n\": 1, \"complete\\u0064\": 5}", &s), 0);
	assert_false(s.has_completed);
}

static void test_malformed_refused(void **state)
{
	static const char *bad[] = {
		"",
		"{",
		"{\"completed\": 12",             /* truncated: a read cut short by the timeout */
		"{\"completed\": 12,}",
		"{\"completed\" 12}",
		"{completed: 12}",
		"{\"completed\": 012}",
		"{\"completed\": 1.}",
		"{\"completed\": 1e}",
		"{\"completed\": -}",
		"{\"a\": tru}",
		"{\"a\": \"\\x\"}",
		"{\"a\": \"\\u12g4\"}",
		"{\"a\": \"ctl\x01\"}",
		"{} {}",
		"[1, 2",
		"{\"a\": [}",
		"\"unterminated",
	};
	struct stats_sample s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &s) != -EBADMSG)
			fail_msg("accepted: %s", bad[i]);
	}
	/* An embedded NUL is not JSON whitespace. */
	assert_int_equal(stats_json_parse("{}\0", 3, &s), -EBADMSG);
}

static void test_depth_limit(void **state)
{
	char deep[2 * (STATS_JSON_DEPTH_MAX + 2) + 1];
	struct stats_sample s;

	/* STATS_JSON_DEPTH_MAX nested arrays are fine, one more is refused (no unbounded recursion). */
	for (unsigned depth = STATS_JSON_DEPTH_MAX; depth <= STATS_JSON_DEPTH_MAX + 1; depth++) {
		size_t n = 0;
		for (unsigned i = 0; i < depth; i++)
			deep[n++] = '[';
		for (unsigned i = 0; i < depth; i++)
			deep[n++] = ']';
		deep[n] = '\0';
		assert_int_equal(stats_json_parse(deep, n, &s), depth <= STATS_JSON_DEPTH_MAX ? 0 : -EBADMSG);
	}
}

static struct stats_sample sample(uint64_t completed, uint64_t inflight)
{
	return (struct stats_sample){ .has_completed = true, .has_inflight = true, .completed = completed,
				      .inflight = inflight };
}

static void test_progress_idle_is_fine(void **state)
{
	struct progress p;
	struct stats_sample s = sample(100, 0);

	progress_reset(&p);
	/* Nothing in flight, nothing completing, for a minute: healthy all along. */
	for (int64_t t = 0; t <= 60000; t += 1000)
		assert_true(progress_update(&p, &s, t));
}

static void test_progress_stall(void **state)
{
	struct progress p;
	struct stats_sample s = sample(100, 0);

	progress_reset(&p);
	assert_true(progress_update(&p, &s, 0));
	/* A request arrives after a quiet spell and gets stuck: PROGRESS_STALL_MS of grace, then no. */
	s = sample(100, 1);
	assert_true(progress_update(&p, &s, 1000));
	assert_true(progress_update(&p, &s, 1000 + PROGRESS_STALL_MS - 1000));
	assert_false(progress_update(&p, &s, 1000 + PROGRESS_STALL_MS + 1000));
	assert_false(progress_update(&p, &s, 60000));
	/* It completes one: progress again. */
	s = sample(101, 1);
	assert_true(progress_update(&p, &s, 61000));
}

static void test_progress_busy(void **state)
{
	struct progress p;
	struct stats_sample s;

	progress_reset(&p);
	/* Always something in flight, but the count moves: healthy. */
	for (int64_t t = 0; t <= 30000; t += 1000) {
		s = sample((uint64_t)t, 32);
		assert_true(progress_update(&p, &s, t));
	}
	/* The count moves only every 4 s: still within the limit. */
	progress_reset(&p);
	for (int64_t t = 0; t <= 30000; t += 1000) {
		s = sample((uint64_t)(t / 4000), 32);
		assert_true(progress_update(&p, &s, t));
	}
	/* Every 7 s: stalls in between. */
	progress_reset(&p);
	bool stalled = false;
	for (int64_t t = 0; t <= 30000; t += 1000) {
		s = sample((uint64_t)(t / 7000), 32);
		stalled = stalled || !progress_update(&p, &s, t);
	}
	assert_true(stalled);
}

static void test_progress_no_answer(void **state)
{
	struct progress p;
	struct stats_sample s = sample(5, 0);

	progress_reset(&p);
	assert_true(progress_update(&p, &s, 0));
	/* No answer is no progress, whatever came before. */
	assert_false(progress_update(&p, NULL, 1000));
	assert_true(progress_update(&p, &s, 2000));
	/* A first answer that already has work in flight gets the benefit of the doubt. */
	progress_reset(&p);
	s = sample(0, 4);
	assert_true(progress_update(&p, &s, 50000));
	/* A restarted back-end's count goes back to 0: that is a change, not a stall. */
	s = sample(7, 4);
	assert_true(progress_update(&p, &s, 51000));
	s = sample(0, 4);
	assert_true(progress_update(&p, &s, 57000));
	/* Without "inflight" (ddtk-net's document) answering is enough. */
	struct stats_sample net = { 0 };
	progress_reset(&p);
	for (int64_t t = 0; t <= 20000; t += 1000)
		assert_true(progress_update(&p, &net, t));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_top_level_totals),
		cmocka_unit_test(test_per_export_summed),
		cmocka_unit_test(test_without_our_keys),
		cmocka_unit_test(test_values_that_are_not_counts),
		cmocka_unit_test(test_malformed_refused),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_progress_idle_is_fine),
		cmocka_unit_test(test_progress_stall),
		cmocka_unit_test(test_progress_busy),
		cmocka_unit_test(test_progress_no_answer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
