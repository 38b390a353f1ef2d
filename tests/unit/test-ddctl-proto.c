/* Unit tests of the driver domain's control protocol: its frames are not mistaken for the exec
 * agent's (and back), and HELLO's topology is parsed exactly and refused when anything is off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "ddctl-proto.h"

static struct agent_decoder dec;
static uint8_t buf[AGENT_FRAME_HEADER_SIZE + 256];

static void feed_all(const void *data, size_t n)
{
	size_t take = n;
	agent_decoder_feed(&dec, data, &take);
	assert_int_equal(take, n);
}

static void test_frames_round_trip(void **state)
{
	struct agent_frame f;

	ddctl_decoder_init(&dec);
	int n = ddctl_frame_encode(DDCTL_MSG_VU, 3, "abc", 3, buf, sizeof(buf));
	assert_int_equal(n, AGENT_FRAME_HEADER_SIZE + 3);
	feed_all(buf, (size_t)n);
	assert_int_equal(agent_decoder_next(&dec, &f), 1);
	assert_int_equal(f.type, DDCTL_MSG_VU);
	assert_int_equal(f.id, 3);
	assert_memory_equal(f.payload, "abc", 3);
	assert_string_equal(ddctl_msg_type_name(f.type), "VU");
	assert_string_equal(ddctl_msg_type_name(0), "unknown");
	assert_string_equal(ddctl_msg_type_name(_DDCTL_MSG_LAST), "unknown");
}

static void test_other_protocol_skipped(void **state)
{
	struct agent_frame f;

	/* An exec-agent frame on the control port (a cable swapped) is garbage, not a message. */
	ddctl_decoder_init(&dec);
	int n = agent_frame_encode(AGENT_MSG_PING, 1, NULL, 0, buf, sizeof(buf));
	feed_all(buf, (size_t)n);
	assert_int_equal(agent_decoder_next(&dec, &f), 0);
	assert_int_equal(dec.skipped_bytes, (uint64_t)n);
	/* ...and the other way round. */
	agent_decoder_init(&dec);
	n = ddctl_frame_encode(DDCTL_MSG_HELLO, 0, NULL, 0, buf, sizeof(buf));
	feed_all(buf, (size_t)n);
	assert_int_equal(agent_decoder_next(&dec, &f), 0);
	/* A type beyond the control protocol's is refused too. */
	ddctl_decoder_init(&dec);
	n = ddctl_frame_encode(_DDCTL_MSG_LAST, 0, NULL, 0, buf, sizeof(buf));
	feed_all(buf, (size_t)n);
	assert_int_equal(agent_decoder_next(&dec, &f), 0);
}

static void test_topology_round_trip(void **state)
{
	struct ddctl_session_spec in[2] = {
		{ .session = 1, .kind = DDCTL_KIND_BLK, .name = "a", .offset = 0, .size = 256u << 20, .queues = 2,
		  .kick_vector = 0 },
		{ .session = 2, .kind = DDCTL_KIND_NET, .name = "a", .mac = { 2, 0, 0, 0, 0, 0xaa }, .queues = 1,
		  .kick_vector = 2 },
	}, out[4];
	char text[512];
	size_t pos = 0;
	unsigned n;

	assert_int_equal(ddctl_topology_format(&in[0], text, sizeof(text), &pos), 0);
	assert_int_equal(ddctl_topology_format(&in[1], text, sizeof(text), &pos), 0);
	assert_string_equal(text, "blk 1 name=a offset=0 size=268435456 read-only=0 queues=2 kick-vector=0\n"
				  "net 2 name=a mac=02:00:00:00:00:aa queues=1 kick-vector=2\n");
	assert_int_equal(ddctl_topology_parse(text, pos, out, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].kind, DDCTL_KIND_BLK);
	assert_int_equal(out[0].size, 256u << 20);
	assert_int_equal(out[0].queues, 2);
	assert_false(out[0].read_only);
	assert_string_equal(out[1].name, "a");
	assert_memory_equal(out[1].mac, in[1].mac, 6);
	assert_int_equal(out[1].kick_vector, 2);
	assert_int_equal(ddctl_spec_virtqueues(&out[1]), 2);
	/* An empty topology is valid: a DD with no sessions. */
	assert_int_equal(ddctl_topology_parse("", 0, out, 4, &n), 0);
	assert_int_equal(n, 0);
	/* Too small a buffer. */
	pos = 0;
	assert_int_equal(ddctl_topology_format(&in[0], text, 10, &pos), -EMSGSIZE);
}

static void test_topology_refused(void **state)
{
	static const char *const bad[] = {
		"blk 1 name=a offset=0 size=512 read-only=0 queues=1 kick-vector=0",                   /* no newline */
		"blk 0 name=a offset=0 size=512 read-only=0 queues=1 kick-vector=0\n",                 /* session 0 */
		"blk 31 name=a offset=0 size=512 read-only=0 queues=1 kick-vector=0\n",                /* beyond the max */
		"blk 1 name=a offset=0 size=0 read-only=0 queues=1 kick-vector=0\n",                   /* empty volume */
		"blk 1 name=a offset=1 size=512 read-only=0 queues=1 kick-vector=0\n",                 /* unaligned */
		"blk 1 name=a offset=18446744073709551104 size=1024 read-only=0 queues=1 kick-vector=0\n", /* wraps */
		"blk 1 name=a offset=0 size=512 read-only=2 queues=1 kick-vector=0\n",
		"blk 1 name=a offset=0 size=512 read-only=0 queues=17 kick-vector=0\n",
		"blk 1 name=a offset=0 size=512 read-only=0\n",                          /* missing key */
		"blk 1 name=a offset=0 size=512 read-only=0 queues=1 queues=1 kick-vector=0\n",        /* twice */
		"blk 1 name=A offset=0 size=512 read-only=0 queues=1 kick-vector=0\n",                 /* bad name */
		"blk 1 name=a offset=-1 size=512 read-only=0 queues=1 kick-vector=0\n",
		"blk 1 name=a offset=0 size=512 read-only=0 queues=1 mac=02:00:00:00:00:01\n",
		"net 2 name=a mac=01:00:00:00:00:01 queues=1 kick-vector=0\n",                         /* multicast */
		"net 2 name=a mac=00:00:00:00:00:00 queues=1 kick-vector=0\n",
		"net 2 name=a mac=02:00:00:00:00:0 queues=1 kick-vector=0\n",
		"net 2 name=a mac=02:00:00:00:00:01 queues=1 size=512\n",
		"usb 3 name=a\n",
		"blk 1 name=a offset=0 size=512 read-only=0 queues=1 kick-vector=0\nnet 1 name=a mac=02:00:00:00:00:01 queues=1 kick-vector=1\n",
		"\n",
		"blk 1 name=a offset=0 size=512 read-only=0 queues=1\n",                 /* no kick vector */
		"blk 1 name=a offset=0 size=512 read-only=0 queues=1 kick-vector=128\n", /* beyond the max */
		"blk 1 name=a offset=0 size=512 read-only=0 queues=2 kick-vector=127\n", /* ends beyond */
		"net 2 name=a mac=02:00:00:00:00:01 queues=1 kick-vector=-1\n",
		/* overlapping kick vectors */
		"blk 1 name=a offset=0 size=512 read-only=0 queues=2 kick-vector=0\nnet 2 name=a mac=02:00:00:00:00:01 queues=1 kick-vector=1\n",
	};
	struct ddctl_session_spec out[4];
	unsigned n = 99;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ddctl_topology_parse(bad[i], strlen(bad[i]), out, 4, &n), -EBADMSG);
		assert_int_equal(n, 99);
	}
	/* More lines than room. */
	const char *two = "net 2 name=a mac=02:00:00:00:00:01 queues=1 kick-vector=0\n"
			  "net 4 name=b mac=02:00:00:00:00:02 queues=1 kick-vector=2\n";
	assert_int_equal(ddctl_topology_parse(two, strlen(two), out, 1, &n), -EBADMSG);
	/* An embedded NUL. */
	assert_int_equal(ddctl_topology_parse("net 2 name=a\0", 13, out, 4, &n), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames_round_trip),
		cmocka_unit_test(test_other_protocol_skipped),
		cmocka_unit_test(test_topology_round_trip),
		cmocka_unit_test(test_topology_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
