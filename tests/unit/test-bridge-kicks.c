/* ddtk-bridge's kick forwarding (host/bridge/bridge-kicks.c): a client's kick eventfd becoming
 * readable turns into one kick of its state-device vector; replacing or dropping the client fd
 * moves or ends the forwarding; the thread's fds are all closed at stop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "bridge.h"

/* Waits up to ms for fd to be readable and reads its counter; 0 when nothing came. */
static uint64_t take(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, ms) == 1)
		assert_int_equal(read(fd, &v, sizeof(v)), sizeof(v));
	return v;
}

static void kick(int fd)
{
	uint64_t one = 1;

	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* Long enough for the thread to have moved a kick; only a wait that expects nothing takes it. */
#define QUIET_MS 200
#define KICK_MS 5000

static void test_forwarding(void **state)
{
	static struct bridge b;
	int before = open_fds();
	(void)state;

	assert_int_equal(bridge_kicks_start(&b, 4), 0);
	assert_int_equal(bridge_kicks_vectors(&b), 4);
	assert_true(bridge_kicks_vector_fd(&b, 3) >= 0);
	assert_int_equal(bridge_kicks_vector_fd(&b, 4), -1);
	int v2 = bridge_kicks_vector_fd(&b, 2), v1 = bridge_kicks_vector_fd(&b, 1);
	int a = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), c = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(a >= 0 && c >= 0);

	/* A kick sent before the fd was handed over is not lost. */
	kick(a);
	assert_int_equal(bridge_kicks_set(&b, 2, a), 0);
	assert_int_equal(take(v2, KICK_MS), 1);
	/* Kicks become one kick each (or fewer: the vector's counter adds them up). */
	kick(a);
	uint64_t got = take(v2, KICK_MS);
	assert_true(got >= 1);
	assert_int_equal(take(v1, QUIET_MS), 0);
	assert_true(bridge_kicks_forwarded(&b, 2, 1) >= 2);
	assert_int_equal(bridge_kicks_forwarded(&b, 0, 2), 0);

	/* The client's fd is the bridge's to close: the forwarding holds its own. */
	assert_int_equal(bridge_kicks_set(&b, 1, c), 0);
	assert_int_equal(bridge_kicks_set(&b, 2, c), 0);
	close(a);
	kick(c);
	/* Both vectors watch c now; one of them takes the counter (a client kick fd is one ring's). */
	uint64_t k1 = take(v1, KICK_MS), k2 = take(v2, QUIET_MS);
	assert_int_equal(k1 + k2, 1);

	/* Dropped: kicks on c go nowhere. */
	assert_int_equal(bridge_kicks_set(&b, 1, -1), 0);
	assert_int_equal(bridge_kicks_set(&b, 2, -1), 0);
	/* A set that the thread has not applied yet is replaced, its dup closed. */
	assert_int_equal(bridge_kicks_set(&b, 3, c), 0);
	assert_int_equal(bridge_kicks_set(&b, 3, -1), 0);
	/* A barrier, not a sleep: the thread applies every pending set in one pass, so a kick forwarded
	 * through a later set (vector 0) means the ones above are applied too. */
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(e >= 0);
	assert_int_equal(bridge_kicks_set(&b, 0, e), 0);
	kick(e);
	assert_int_equal(take(bridge_kicks_vector_fd(&b, 0), KICK_MS), 1);
	close(e);
	kick(c);
	assert_int_equal(take(v1, QUIET_MS), 0);
	assert_int_equal(take(v2, 0), 0);
	assert_int_equal(take(bridge_kicks_vector_fd(&b, 3), 0), 0);

	/* Out of range, and a bad fd. */
	assert_int_equal(bridge_kicks_set(&b, 4, c), -ERANGE);
	assert_int_equal(bridge_kicks_set(&b, 0, 1000), -EBADF);

	assert_int_equal(bridge_kicks_set(&b, 0, c), 0);
	bridge_kicks_stop(&b);
	assert_null(b.kicks);
	bridge_kicks_stop(&b); /* twice is fine */
	close(c);
	assert_int_equal(open_fds(), before);
}

static void test_range(void **state)
{
	static struct bridge b;
	(void)state;

	assert_int_equal(bridge_kicks_start(&b, 0), -ERANGE);
	assert_int_equal(bridge_kicks_start(&b, DDCTL_KICK_VECTORS_MAX + 1), -ERANGE);
	assert_int_equal(bridge_kicks_vectors(&b), 0);
	assert_int_equal(bridge_kicks_set(&b, 0, -1), -ERANGE);
	assert_int_equal(bridge_kicks_start(&b, DDCTL_KICK_VECTORS_MAX), 0);
	assert_true(bridge_kicks_vector_fd(&b, DDCTL_KICK_VECTORS_MAX - 1) >= 0);
	bridge_kicks_stop(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forwarding),
		cmocka_unit_test(test_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
