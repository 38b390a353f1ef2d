/* Unit tests of the exec-agent framing: round trips, split delivery, resynchronisation after
 * garbage, and rejection of headers a hostile or confused peer could send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "agent-proto.h"

static struct agent_decoder dec;
static uint8_t buf[AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_PAYLOAD_MAX + 64];

static void feed_all(const void *data, size_t n)
{
	size_t take = n;
	agent_decoder_feed(&dec, data, &take);
	assert_int_equal(take, n);
}

static void test_round_trip(void **state)
{
	agent_decoder_init(&dec);
	int n = agent_frame_encode(AGENT_MSG_STDOUT, 42, "hello", 5, buf, sizeof(buf));
	assert_int_equal(n, AGENT_FRAME_HEADER_SIZE + 5);
	feed_all(buf, (size_t)n);
	struct agent_frame f;
	assert_int_equal(agent_decoder_next(&dec, &f), 1);
	assert_int_equal(f.type, AGENT_MSG_STDOUT);
	assert_int_equal(f.id, 42);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.payload, "hello", 5);
	assert_int_equal(agent_decoder_next(&dec, &f), 0);
	assert_int_equal(dec.skipped_bytes, 0);
}

static void test_byte_by_byte(void **state)
{
	agent_decoder_init(&dec);
	int n1 = agent_frame_encode(AGENT_MSG_PING, 1, NULL, 0, buf, sizeof(buf));
	int n2 = agent_frame_encode(AGENT_MSG_STDERR, 2, "xy", 2, buf + n1, sizeof(buf) - (size_t)n1);
	struct agent_frame f;
	int frames = 0;
	for (int i = 0; i < n1 + n2; i++) {
		feed_all(buf + i, 1);
		while (agent_decoder_next(&dec, &f) == 1) {
			frames++;
			assert_int_equal(f.id, (uint32_t)frames);
		}
	}
	assert_int_equal(frames, 2);
	assert_int_equal(f.type, AGENT_MSG_STDERR);
	assert_memory_equal(f.payload, "xy", 2);
}

static void test_resync_after_garbage(void **state)
{
	agent_decoder_init(&dec);
	/* Garbage including a partial magic ("DD") and a false magic with a bad version. */
	const uint8_t junk[] = { 'x', 'D', 'D', 'D', 'D', 'T', 'K', 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	feed_all(junk, sizeof(junk));
	int n = agent_frame_encode(AGENT_MSG_PONG, 7, "ok", 2, buf, sizeof(buf));
	feed_all(buf, (size_t)n);
	struct agent_frame f;
	assert_int_equal(agent_decoder_next(&dec, &f), 1);
	assert_int_equal(f.type, AGENT_MSG_PONG);
	assert_int_equal(f.id, 7);
	assert_int_equal(dec.skipped_bytes, sizeof(junk));
}

static void put_header(uint8_t *h, uint8_t version, uint8_t type, uint16_t flags, uint32_t len)
{
	agent_u32_put(h, AGENT_PROTO_MAGIC);
	h[4] = version;
	h[5] = type;
	h[6] = flags & 0xff;
	h[7] = flags >> 8;
	agent_u32_put(h + 8, 1);
	agent_u32_put(h + 12, len);
}

static void test_rejects_bad_headers(void **state)
{
	struct { uint8_t version, type; uint16_t flags; uint32_t len; } bad[] = {
		{ 2, AGENT_MSG_PING, 0, 0 },                        /* unknown version */
		{ 1, 0, 0, 0 },                                     /* type below range */
		{ 1, _AGENT_MSG_LAST, 0, 0 },                       /* type above range */
		{ 1, AGENT_MSG_PING, 1, 0 },                        /* reserved flags */
		{ 1, AGENT_MSG_STDOUT, 0, AGENT_FRAME_PAYLOAD_MAX + 1 }, /* oversized */
		{ 1, AGENT_MSG_STDOUT, 0, UINT32_MAX },             /* length overflow */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		agent_decoder_init(&dec);
		uint8_t h[AGENT_FRAME_HEADER_SIZE];
		put_header(h, bad[i].version, bad[i].type, bad[i].flags, bad[i].len);
		feed_all(h, sizeof(h));
		struct agent_frame f;
		assert_int_equal(agent_decoder_next(&dec, &f), 0);
		assert_true(dec.skipped_bytes > 0);
	}
}

static void test_max_payload_fits(void **state)
{
	agent_decoder_init(&dec);
	static uint8_t payload[AGENT_FRAME_PAYLOAD_MAX];
	memset(payload, 0xab, sizeof(payload));
	int n = agent_frame_encode(AGENT_MSG_STDOUT, 3, payload, sizeof(payload), buf, sizeof(buf));
	assert_int_equal(n, AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_PAYLOAD_MAX);
	/* Fed in odd-sized pieces, as a socket delivers it. */
	size_t off = 0;
	struct agent_frame f;
	int got = 0;
	while (off < (size_t)n) {
		size_t take = (size_t)n - off < 1000 ? (size_t)n - off : 1000;
		agent_decoder_feed(&dec, buf + off, &take);
		off += take;
		got += agent_decoder_next(&dec, &f);
	}
	assert_int_equal(got, 1);
	assert_int_equal(f.len, AGENT_FRAME_PAYLOAD_MAX);
	assert_int_equal(f.payload[AGENT_FRAME_PAYLOAD_MAX - 1], 0xab);
	assert_int_equal(agent_frame_encode(AGENT_MSG_STDOUT, 3, payload, AGENT_FRAME_PAYLOAD_MAX + 1, buf,
					    sizeof(buf)), -EMSGSIZE);
	assert_int_equal(agent_frame_encode(AGENT_MSG_STDOUT, 3, payload, 100, buf, 50), -EMSGSIZE);
}

static void test_feed_respects_room(void **state)
{
	agent_decoder_init(&dec);
	static uint8_t junk[sizeof(dec.buf) + 100];
	memset(junk, 'z', sizeof(junk));
	size_t take = sizeof(junk);
	agent_decoder_feed(&dec, junk, &take);
	assert_int_equal(take, sizeof(dec.buf));
	struct agent_frame f;
	assert_int_equal(agent_decoder_next(&dec, &f), 0);
	/* All garbage is dropped, so the whole buffer is free again. */
	assert_int_equal(agent_decoder_room(&dec), sizeof(dec.buf));
}

static void test_exec_parse(void **state)
{
	uint8_t p[64];
	agent_u32_put(p, 1500);
	memcpy(p + 4, "echo hi", 7);
	struct agent_frame f = { .type = AGENT_MSG_EXEC, .id = 1, .len = 11, .payload = p };
	uint32_t t;
	const char *cmd;
	size_t len;
	assert_int_equal(agent_exec_parse(&f, &t, &cmd, &len), 0);
	assert_int_equal(t, 1500);
	assert_int_equal(len, 7);
	assert_memory_equal(cmd, "echo hi", 7);

	p[6] = '\0'; /* an embedded NUL would cut the command short */
	assert_int_equal(agent_exec_parse(&f, &t, &cmd, &len), -EBADMSG);
	f.len = 4;   /* no command at all */
	assert_int_equal(agent_exec_parse(&f, &t, &cmd, &len), -EBADMSG);
	f.type = AGENT_MSG_PING;
	f.len = 11;
	assert_int_equal(agent_exec_parse(&f, &t, &cmd, &len), -EBADMSG);
}

static void test_exit_parse(void **state)
{
	uint8_t p[8];
	agent_u32_put(p, AGENT_EXIT_SIGNALED);
	agent_u32_put(p + 4, 9);
	struct agent_frame f = { .type = AGENT_MSG_EXIT, .len = 8, .payload = p };
	enum agent_exit_kind kind;
	int32_t code;
	assert_int_equal(agent_exit_parse(&f, &kind, &code), 0);
	assert_int_equal(kind, AGENT_EXIT_SIGNALED);
	assert_int_equal(code, 9);
	agent_u32_put(p, _AGENT_EXIT_LAST);
	assert_int_equal(agent_exit_parse(&f, &kind, &code), -EBADMSG);
	f.len = 7;
	assert_int_equal(agent_exit_parse(&f, &kind, &code), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_resync_after_garbage),
		cmocka_unit_test(test_rejects_bad_headers),
		cmocka_unit_test(test_max_payload_fits),
		cmocka_unit_test(test_feed_respects_room),
		cmocka_unit_test(test_exec_parse),
		cmocka_unit_test(test_exit_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
