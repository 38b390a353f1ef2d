/* Unit tests of ddtk-agent's relay framing: VU frames from the bridge are whole vhost-user
 * messages or refused; a back-end's byte stream is cut into the same messages however it arrives,
 * and a header announcing more than 4096 bytes loses the stream for good. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "agent-proto.h"
#include "relay-cut.h"

static struct relay_cutter cut;

/* A message: header (request, flags, size = n) then n bytes of `fill`. */
static size_t make_msg(uint8_t *buf, uint32_t request, uint32_t n, uint8_t fill)
{
	agent_u32_put(buf, request);
	agent_u32_put(buf + 4, 0x5);
	agent_u32_put(buf + 8, n);
	memset(buf + RELAY_VU_HEADER_SIZE, fill, n);
	return RELAY_VU_HEADER_SIZE + n;
}

static void feed(const uint8_t *data, size_t n)
{
	while (n > 0) {
		size_t room;
		uint8_t *space = relay_cutter_space(&cut, &room);
		assert_true(room > 0);
		size_t take = n < room ? n : room;
		memcpy(space, data, take);
		relay_cutter_commit(&cut, take);
		data += take;
		n -= take;
	}
}

static void test_check(void **state)
{
	uint8_t m[RELAY_VU_MSG_MAX + 16];

	size_t n = make_msg(m, 1, 8, 0xaa);
	assert_int_equal(relay_vu_check(m, n), 0);
	assert_int_equal(relay_vu_check(m, n - 1), -EBADMSG);       /* size says 8, 7 there */
	assert_int_equal(relay_vu_check(m, n + 1), -EBADMSG);       /* a byte too many */
	assert_int_equal(relay_vu_check(m, 11), -EBADMSG);          /* no whole header */
	n = make_msg(m, 2, 0, 0);
	assert_int_equal(relay_vu_check(m, n), 0);                  /* header only */
	n = make_msg(m, 5, VU_MAX_PAYLOAD, 1);
	assert_int_equal(relay_vu_check(m, n), 0);                  /* the largest */
	agent_u32_put(m + 8, VU_MAX_PAYLOAD + 1);
	assert_int_equal(relay_vu_check(m, RELAY_VU_HEADER_SIZE + VU_MAX_PAYLOAD + 1), -EBADMSG);
}

/* Three messages of different sizes, delivered in every chunk size from 1 byte up: always the
 * same three messages, in order, byte for byte. */
static void test_cut_any_split(void **state)
{
	static uint8_t stream[3 * RELAY_VU_MSG_MAX];
	size_t lens[3], total = 0;

	lens[0] = make_msg(stream, 1, 8, 0x11);
	lens[1] = make_msg(stream + lens[0], 24, 0, 0);
	lens[2] = make_msg(stream + lens[0] + lens[1], 5, VU_MAX_PAYLOAD, 0x33);
	total = lens[0] + lens[1] + lens[2];
	static const size_t chunks[] = { 1, 2, 7, 11, 12, 13, 100, 4107, 4108, 4109, 8216, 12345 };
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		relay_cutter_init(&cut);
		size_t pos = 0, off = 0;
		unsigned got = 0;
		while (pos < total) {
			size_t n = total - pos < chunks[c] ? total - pos : chunks[c];
			feed(stream + pos, n);
			pos += n;
			const uint8_t *msg;
			size_t len;
			int r;
			while ((r = relay_cutter_next(&cut, &msg, &len)) == 1) {
				assert_true(got < 3);
				assert_int_equal(len, got < 3 ? lens[got] : 0);
				assert_memory_equal(msg, stream + off, len);
				off += len;
				got++;
			}
			assert_int_equal(r, 0);
		}
		assert_int_equal(got, 3);
		assert_int_equal(relay_cutter_buffered(&cut), 0);
	}
}

static void test_partial_is_held(void **state)
{
	uint8_t m[64];
	const uint8_t *msg;
	size_t len, n = make_msg(m, 3, 20, 0x44);

	relay_cutter_init(&cut);
	feed(m, n - 1);
	assert_int_equal(relay_cutter_next(&cut, &msg, &len), 0);
	assert_int_equal(relay_cutter_buffered(&cut), n - 1);
	feed(m + n - 1, 1);
	assert_int_equal(relay_cutter_next(&cut, &msg, &len), 1);
	assert_int_equal(len, n);
	/* The message handed out stays valid until the next call, then is dropped. */
	assert_int_equal(relay_cutter_buffered(&cut), 0);
	assert_int_equal(relay_cutter_next(&cut, &msg, &len), 0);
}

static void test_oversized_breaks_stream(void **state)
{
	uint8_t m[RELAY_VU_MSG_MAX];
	const uint8_t *msg;
	size_t len, room;

	relay_cutter_init(&cut);
	size_t good = make_msg(m, 1, 4, 0);
	feed(m, good);
	agent_u32_put(m, 2);
	agent_u32_put(m + 4, 0);
	agent_u32_put(m + 8, VU_MAX_PAYLOAD + 1);
	feed(m, RELAY_VU_HEADER_SIZE);
	/* The good message before it still goes out; then the stream is lost, for good. */
	assert_int_equal(relay_cutter_next(&cut, &msg, &len), 1);
	assert_int_equal(len, good);
	assert_int_equal(relay_cutter_next(&cut, &msg, &len), -EPROTO);
	assert_int_equal(relay_cutter_next(&cut, &msg, &len), -EPROTO);
	(void)relay_cutter_space(&cut, &room);
	assert_int_equal(room, 0);
	relay_cutter_init(&cut);
	assert_int_equal(relay_cutter_next(&cut, &msg, &len), 0);
}

/* The space offered after a partial message is always enough for one whole message: a reader
 * that reads into it can never get stuck with a full buffer and no message. */
static void test_room_never_short(void **state)
{
	static uint8_t m[RELAY_VU_MSG_MAX];
	const uint8_t *msg;
	size_t len, room;

	relay_cutter_init(&cut);
	size_t n = make_msg(m, 7, VU_MAX_PAYLOAD, 0x55);
	for (unsigned round = 0; round < 50; round++) {
		feed(m, n - 1 - round);
		(void)relay_cutter_space(&cut, &room);
		assert_true(room >= RELAY_VU_MSG_MAX);
		feed(m + n - 1 - round, 1 + round);
		assert_int_equal(relay_cutter_next(&cut, &msg, &len), 1);
		assert_int_equal(len, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_cut_any_split),
		cmocka_unit_test(test_partial_is_held),
		cmocka_unit_test(test_oversized_breaks_stream),
		cmocka_unit_test(test_room_never_short),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
