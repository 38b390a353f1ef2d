/* Unit tests of ddtk-agent's back-end supervision: the restart backoff, the back-ends' command
 * lines for a topology, and the bounded output queues between the agent and its peers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend-cmd.h"
#include "backoff.h"
#include "outq.h"

static void test_backoff_doubles_to_the_cap(void **state)
{
	struct backoff b;
	static const unsigned want[] = { 200, 400, 800, 1600, 3200, 5000, 5000, 5000 };

	backoff_reset(&b);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(backoff_next(&b, 100), want[i]);
}

static void test_backoff_resets_after_a_stable_run(void **state)
{
	struct backoff b;

	backoff_reset(&b);
	for (int i = 0; i < 10; i++)
		(void)backoff_next(&b, 10);
	assert_int_equal(backoff_next(&b, BACKOFF_STABLE_MS - 1), BACKOFF_MAX_MS);
	/* It ran long enough: the next exit is treated as a first one. */
	assert_int_equal(backoff_next(&b, BACKOFF_STABLE_MS), BACKOFF_FIRST_MS);
	assert_int_equal(backoff_next(&b, 0), 2 * BACKOFF_FIRST_MS);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, 0), BACKOFF_FIRST_MS);
}

static const struct backend_config cfg = {
	.run_dir = DDCTL_RUN_DIR,
	.program = { [BACKEND_BLK] = "/usr/bin/ddtk-blk", [BACKEND_NET] = "/usr/bin/ddtk-net" },
	.disk = "/dev/sda",
	.uplink = "eth0",
	.poll_us = 50,
};

static struct ddctl_session_spec topology[4];
static unsigned ntopology;

static void load_topology(void)
{
	static const char text[] =
		"blk 1 name=a offset=0 size=1048576 read-only=0 queues=2 kick-vector=0\n"
		"net 2 name=a mac=02:dd:00:00:00:0a queues=1 kick-vector=2\n"
		"blk 3 name=b offset=1048576 size=4096 read-only=1 queues=1 kick-vector=4\n"
		"net 4 name=b mac=02:dd:00:00:00:0b queues=4 kick-vector=5\n";
	assert_int_equal(ddctl_topology_parse(text, sizeof(text) - 1, topology, 4, &ntopology), 0);
	assert_int_equal(ntopology, 4);
}

static void assert_argv(const struct backend_cmd *c, const char *const *want, unsigned n)
{
	assert_int_equal(c->argc, n);
	for (unsigned i = 0; i < n; i++)
		assert_string_equal(c->argv[i], want[i]);
	assert_null(c->argv[n]);
}

static void test_blk_command(void **state)
{
	static struct backend_cmd c;
	static const char *const want[] = {
		"/usr/bin/ddtk-blk",
		"--export=socket=/run/ddtk/s1.sock,file=/dev/sda,offset=0,size=1048576,num-queues=2,ivshmem=1,kick-vector=0",
		"--export=socket=/run/ddtk/s3.sock,file=/dev/sda,offset=1048576,size=4096,num-queues=1,ivshmem=3,kick-vector=4,read-only",
		"--stats-socket=/run/ddtk/blk.stats",
		"--poll-us=50",
	};

	load_topology();
	assert_int_equal(backend_cmd_build(BACKEND_BLK, &cfg, topology, ntopology, &c), 2);
	assert_argv(&c, want, 5);
}

static void test_net_command(void **state)
{
	static struct backend_cmd c;
	static const char *const want[] = {
		"/usr/bin/ddtk-net",
		"--uplink=eth0",
		"--client=name=a,socket=/run/ddtk/s2.sock,mac=02:dd:00:00:00:0a,queues=1,ivshmem=2,kick-vector=2",
		"--client=name=b,socket=/run/ddtk/s4.sock,mac=02:dd:00:00:00:0b,queues=4,ivshmem=4,kick-vector=5",
		"--stats-socket=/run/ddtk/net.stats",
		"--poll-us=50",
	};
	struct backend_config no_uplink = cfg;

	load_topology();
	assert_int_equal(backend_cmd_build(BACKEND_NET, &cfg, topology, ntopology, &c), 2);
	assert_argv(&c, want, 6);
	/* No NIC: the clients only reach each other. */
	no_uplink.uplink = "";
	assert_int_equal(backend_cmd_build(BACKEND_NET, &no_uplink, topology, ntopology, &c), 2);
	assert_string_equal(c.argv[1], want[2]);
}

static void test_no_sessions_no_process(void **state)
{
	static struct backend_cmd c;

	load_topology();
	/* Only net sessions: no ddtk-blk. */
	assert_int_equal(backend_cmd_build(BACKEND_BLK, &cfg, topology + 1, 1, &c), 0);
	assert_int_equal(c.argc, 0);
	assert_null(c.argv[0]);
	assert_int_equal(backend_cmd_build(BACKEND_NET, &cfg, topology, 0, &c), 0);
}

static void test_full_topology_fits(void **state)
{
	static struct ddctl_session_spec specs[DDCTL_SESSIONS_MAX];
	static struct backend_cmd c;
	static char long_disk[200];

	/* The largest topology with the longest values still fits. */
	for (unsigned i = 0; i < DDCTL_SESSIONS_MAX; i++) {
		struct ddctl_session_spec *s = &specs[i];
		memset(s, 0, sizeof(*s));
		s->session = i + 1;
		s->kind = i % 2 ? DDCTL_KIND_NET : DDCTL_KIND_BLK;
		memset(s->name, 'x', 32);
		s->offset = UINT64_MAX / 2;
		s->size = UINT64_MAX / 2;
		s->read_only = true;
		memset(s->mac, 0xfe, 6);
		s->queues = 16;
		s->kick_vector = DDCTL_KICK_VECTORS_MAX - 1;   /* the longest number */
	}
	memset(long_disk, 'd', sizeof(long_disk) - 1);
	struct backend_config big = cfg;
	big.disk = long_disk;
	assert_int_equal(backend_cmd_build(BACKEND_BLK, &big, specs, DDCTL_SESSIONS_MAX, &c), DDCTL_SESSIONS_MAX / 2);
	assert_int_equal(backend_cmd_build(BACKEND_NET, &big, specs, DDCTL_SESSIONS_MAX, &c), DDCTL_SESSIONS_MAX / 2);
	/* A disk path that would break the key=value list is refused. */
	big.disk = "/dev/sda,offset=0";
	assert_int_equal(backend_cmd_build(BACKEND_BLK, &big, specs, DDCTL_SESSIONS_MAX, &c), -EINVAL);
}

static void test_outq(void **state)
{
	struct outq q;
	int sv[2];
	uint8_t data[3000], back[sizeof(data) * 4];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	outq_init(&q, 2 * sizeof(data));
	assert_int_equal(outq_push(&q, data, sizeof(data)), 0);
	assert_int_equal(outq_push(&q, data, sizeof(data)), 0);
	/* All or nothing beyond the limit. */
	assert_int_equal(outq_push(&q, data, 1), -ENOBUFS);
	assert_int_equal(outq_length(&q), 2 * sizeof(data));

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(outq_flush(&q, sv[0]), 0);
	assert_true(outq_empty(&q));
	assert_int_equal(read(sv[1], back, sizeof(back)), 2 * sizeof(data));
	assert_memory_equal(back, data, sizeof(data));
	assert_memory_equal(back + sizeof(data), data, sizeof(data));

	/* A peer that does not read: the queue keeps what the socket does not take. */
	size_t pushed = 0;
	while (outq_push(&q, data, sizeof(data)) == 0) {
		pushed += sizeof(data);
		assert_int_equal(outq_flush(&q, sv[0]), 0);
	}
	assert_true(pushed > 0);
	/* A peer that has gone: EPIPE, not SIGPIPE. */
	close(sv[1]);
	assert_int_equal(outq_flush(&q, sv[0]), -EPIPE);
	close(sv[0]);
	outq_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_to_the_cap),
		cmocka_unit_test(test_backoff_resets_after_a_stable_run),
		cmocka_unit_test(test_blk_command),
		cmocka_unit_test(test_net_command),
		cmocka_unit_test(test_no_sessions_no_process),
		cmocka_unit_test(test_full_topology_fits),
		cmocka_unit_test(test_outq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
