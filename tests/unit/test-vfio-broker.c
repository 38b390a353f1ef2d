/* Unit tests of ddtk-agent's VFIO broker with fake devices (VFIO needs the DD; a memfd stands in
 * for each device fd, its bytes 8..11 for the IVPosition register, and eventfds for the state
 * device's MSI-X vectors): the socket, the device table, the kicks held by the state device, every
 * kind of request and reply, connections that say nothing, and, with the broker in a child
 * process, the back-ends' side of it: the ivshmem transport asking, adopting and checking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ddctl-proto.h"
#include "vfio-broker.h"
#include "vu-ivshmem.h"

#define FAKE_DEVICES 4
#define FAKE_SIZE 65536
#define FAKE_VECTORS 8            /* MSI-X vectors of every fake device */

/* ---- fake devices ---- */

static struct fake_device {
	const char *bdf;
	int memfd;                /* the device: bytes 8..11 are IVPosition */
	int device_fd_error;      /* device_fd fails with this when non-zero */
	unsigned attaches, detaches, fds_made;
	int kicks_error;          /* kicks_enable fails with this when non-zero */
	unsigned kicks_enables, kicks_disables;
	int vectors[FAKE_VECTORS]; /* while enabled: the vectors' eventfds */
} fakes[FAKE_DEVICES] = {
	{ .bdf = "0000:03:01.0" },
	{ .bdf = "0000:03:02.0" },
	{ .bdf = "0000:03:03.0" },
	{ .bdf = "0000:03:1f.0" },
};

static struct fake_device *fake_find(const char *bdf)
{
	for (unsigned i = 0; i < FAKE_DEVICES; i++)
		if (!strcmp(fakes[i].bdf, bdf))
			return &fakes[i];
	return NULL;
}

static void fake_set_ivposition(struct fake_device *f, uint32_t pos)
{
	uint32_t le = htole32(pos);

	assert_int_equal(pwrite(f->memfd, &le, 4, 8), 4);
}

static int fake_attach(struct vfio_broker *b, struct vfio_broker_device *d, char *err, size_t errlen)
{
	struct fake_device *f = fake_find(d->bdf);

	if (!f) {
		snprintf(err, errlen, "fake: no device %s", d->bdf);
		return -ENODEV;
	}
	f->attaches++;
	return 0;
}

static void fake_detach(struct vfio_broker *b, struct vfio_broker_device *d)
{
	fake_find(d->bdf)->detaches++;
}

static int fake_device_fd(struct vfio_broker *b, const struct vfio_broker_device *d, char *err, size_t errlen)
{
	struct fake_device *f = fake_find(d->bdf);
	int fd;

	if (f->device_fd_error) {
		snprintf(err, errlen, "fake: %s cannot be opened", d->bdf);
		return f->device_fd_error;
	}
	/* Like VFIO_GROUP_GET_DEVICE_FD: a new descriptor every time. */
	fd = fcntl(f->memfd, F_DUPFD_CLOEXEC, 0);
	assert_true(fd >= 0);
	f->fds_made++;
	return fd;
}

static int fake_read_ivposition(int fd, const char *bdf, uint32_t *ret, char *err, size_t errlen)
{
	uint32_t le;

	assert_int_equal(pread(fd, &le, 4, 8), 4);
	close(fd);
	*ret = le32toh(le);
	return 0;
}

static int fake_kicks_enable(struct vfio_broker *b, struct vfio_broker_device *d, char *err, size_t errlen)
{
	struct fake_device *f = fake_find(d->bdf);

	if (f->kicks_error) {
		snprintf(err, errlen, "fake: %s has no MSI-X", d->bdf);
		return f->kicks_error;
	}
	/* Enabled twice without a disable would be the bug the broker must not have. */
	assert_int_equal(f->kicks_enables, f->kicks_disables);
	assert_null(d->kick_fds);
	for (unsigned i = 0; i < FAKE_VECTORS; i++) {
		f->vectors[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(f->vectors[i] >= 0);
	}
	f->kicks_enables++;
	d->kick_fds = f->vectors;
	d->nkicks = FAKE_VECTORS;
	return 0;
}

static void fake_kicks_disable(struct vfio_broker *b, struct vfio_broker_device *d)
{
	struct fake_device *f = fake_find(d->bdf);

	assert_ptr_equal(d->kick_fds, f->vectors);
	for (unsigned i = 0; i < FAKE_VECTORS; i++) {
		close(f->vectors[i]);
		f->vectors[i] = -1;
	}
	f->kicks_disables++;
	d->kick_fds = NULL;
	d->nkicks = 0;
}

static const struct vfio_broker_ops fake_ops = {
	.attach = fake_attach,
	.detach = fake_detach,
	.device_fd = fake_device_fd,
	.read_ivposition = fake_read_ivposition,
	.kicks_enable = fake_kicks_enable,
	.kicks_disable = fake_kicks_disable,
};

/* ---- the broker under test ---- */

static struct {
	char dir[64];
	char path[PATH_MAX];
	struct vfio_broker b;
	unsigned replies;
	pid_t pid;
	uint32_t ivposition;
	int status;
	char bdf[16];
} t;

static unsigned open_fds(void)
{
	unsigned n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static unsigned fds_before;

static void on_reply(struct vfio_broker *b, pid_t pid, uint32_t ivposition, int status, const char *bdf)
{
	assert_ptr_equal(b->userdata, &t);
	t.replies++;
	t.pid = pid;
	t.ivposition = ivposition;
	t.status = status;
	snprintf(t.bdf, sizeof(t.bdf), "%s", bdf);
}

static int setup(void **state)
{
	fds_before = open_fds();
	for (unsigned i = 0; i < FAKE_DEVICES; i++) {
		struct fake_device *f = &fakes[i];

		*f = (struct fake_device){ .bdf = f->bdf };
		f->memfd = memfd_create("fake-ivshmem", MFD_CLOEXEC);
		assert_true(f->memfd >= 0);
		assert_int_equal(ftruncate(f->memfd, FAKE_SIZE), 0);
		fake_set_ivposition(f, UINT32_MAX);
	}
	snprintf(t.dir, sizeof(t.dir), "/tmp/test-vfio-broker-XXXXXX");
	assert_non_null(mkdtemp(t.dir));
	snprintf(t.path, sizeof(t.path), "%s/vfio.sock", t.dir);
	assert_int_equal(vfio_broker_init(&t.b, t.path), 0);
	vfio_broker_set_ops(&t.b, &fake_ops);
	t.b.replied = on_reply;
	t.b.userdata = &t;
	t.replies = 0;
	return 0;
}

static int teardown(void **state)
{
	vfio_broker_close(&t.b);
	/* The socket file goes with the broker; every device it knew was let go. */
	assert_int_equal(access(t.path, F_OK), -1);
	for (unsigned i = 0; i < FAKE_DEVICES; i++) {
		assert_int_equal(fakes[i].attaches, fakes[i].detaches);
		assert_int_equal(fakes[i].kicks_enables, fakes[i].kicks_disables);
		close(fakes[i].memfd);
	}
	rmdir(t.dir);
	assert_int_equal(open_fds(), fds_before);
	return 0;
}

/* Adds fake device i, reporting IVPosition pos. */
static void add(unsigned i, uint32_t pos)
{
	uint32_t got = 12345;

	fake_set_ivposition(&fakes[i], pos);
	assert_int_equal(vfio_broker_add_device(&t.b, fakes[i].bdf, &got), 0);
	assert_int_equal(got, pos);
}

/* A client: connected, with the request (len bytes of req) sent. */
static int client(const void *req, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(t.path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, t.path, strlen(t.path) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (req)
		assert_int_equal(send(fd, req, len, 0), (ssize_t)len);
	return fd;
}

static int client_ask(uint32_t pos)
{
	uint32_t le = htole32(pos);

	return client(&le, 4);
}

static int client_kicks(uint32_t first, uint32_t count)
{
	uint32_t req[3] = { htole32(DDCTL_VFIO_KICKS), htole32(first), htole32(count) };

	return client(req, sizeof(req));
}

/* The reply on c (which the broker has sent already): its status, text and fds (at most max, into
 * fds); returns the status, *ret_nfds the fds. */
static int read_reply_fds(int c, char *text, size_t cap, int *fds, unsigned max, unsigned *ret_nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * (DDCTL_VFIO_KICKS_MAX + 1))];
		struct cmsghdr align;
	} control;
	uint8_t msg[64] = { 0 };
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	unsigned nfds = 0;
	uint32_t le;
	ssize_t n = recvmsg(c, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	assert_true(n >= 4);
	assert_false(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		unsigned k = (unsigned)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));

		assert_int_equal(h->cmsg_type, SCM_RIGHTS);
		assert_true(nfds + k <= max);
		memcpy(fds + nfds, CMSG_DATA(h), k * sizeof(int));
		nfds += k;
	}
	*ret_nfds = nfds;
	assert_true((size_t)n - 4 < cap);
	memcpy(text, msg + 4, (size_t)n - 4);
	text[n - 4] = '\0';
	memcpy(&le, msg, 4);
	return (int32_t)le32toh(le);
}

/* The reply on c (which the broker has sent already): its status, text and fd (-1: none). */
static int read_reply(int c, char *text, size_t cap, int *ret_fd)
{
	int fds[DDCTL_VFIO_KICKS_MAX + 1];
	unsigned nfds;
	int status = read_reply_fds(c, text, cap, fds, DDCTL_VFIO_KICKS_MAX + 1, &nfds);

	assert_true(nfds <= 1);
	*ret_fd = nfds ? fds[0] : -1;
	return status;
}

static void same_file(int a, int b)
{
	struct stat sa, sb;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	assert_true(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

/* ---- the socket ---- */

static void test_socket(void **state)
{
	struct stat st;
	int type = 0, fd;
	socklen_t len = sizeof(type);
	struct vfio_broker other;
	char path[PATH_MAX];

	/* Only its own user may connect: a device fd is the whole device. */
	assert_int_equal(stat(t.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(getsockopt(t.b.listen_fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
	assert_int_equal(type, SOCK_SEQPACKET);
	assert_true(fcntl(t.b.listen_fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(t.b.listen_fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(vfio_broker_fd(&t.b), F_GETFD) & FD_CLOEXEC);

	/* A socket a killed broker left behind is replaced; any other file is not. */
	snprintf(path, sizeof(path), "%s/stale.sock", t.dir);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		assert_true(strlen(path) < sizeof(sa.sun_path));
		memcpy(sa.sun_path, path, strlen(path) + 1);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	close(fd);
	assert_int_equal(vfio_broker_init(&other, path), 0);
	vfio_broker_close(&other);
	assert_int_equal(access(path, F_OK), -1);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vfio_broker_init(&other, path), -EEXIST);
	vfio_broker_close(&other);      /* safe after a failed init, and leaves the file alone */
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	memset(path, 'x', sizeof(path) - 1);
	path[200] = '\0';
	assert_int_equal(vfio_broker_init(&other, path), -ENAMETOOLONG);
	vfio_broker_close(&other);
	vfio_broker_close(NULL);
}

/* ---- the device table ---- */

static void test_devices(void **state)
{
	uint32_t pos = 12345;
	unsigned fds = open_fds();

	assert_int_equal(vfio_broker_add_device(&t.b, "0000:03:01.0/../x", &pos), -EINVAL);
	assert_int_equal(vfio_broker_add_device(&t.b, NULL, &pos), -EINVAL);
	assert_int_equal(vfio_broker_add_device(&t.b, "0000:04:00.0", &pos), -ENODEV);
	assert_non_null(strstr(t.b.error, "no device 0000:04:00.0"));
	assert_int_equal(pos, 12345);   /* untouched on failure */
	assert_int_equal(t.b.ndevices, 0);

	add(0, 1);
	assert_int_equal(fakes[0].attaches, 1);
	/* The fd it read IVPosition through is closed again. */
	assert_int_equal(fakes[0].fds_made, 1);
	assert_int_equal(open_fds(), fds);
	assert_string_equal(vfio_broker_find(&t.b, 1)->bdf, fakes[0].bdf);
	assert_null(vfio_broker_find(&t.b, 2));

	/* Added again: IVPosition read again, the group not taken twice. */
	add(0, 2);
	assert_int_equal(fakes[0].attaches, 1);
	assert_null(vfio_broker_find(&t.b, 1));
	assert_string_equal(vfio_broker_find(&t.b, 2)->bdf, fakes[0].bdf);

	/* Two devices with one IVPosition: the later one wins, until it goes. */
	add(1, 2);
	assert_string_equal(vfio_broker_find(&t.b, 2)->bdf, fakes[1].bdf);
	vfio_broker_remove_device(&t.b, fakes[1].bdf);
	assert_int_equal(fakes[1].detaches, 1);
	assert_string_equal(vfio_broker_find(&t.b, 2)->bdf, fakes[0].bdf);

	/* A device without its ivshmem server (-1) is known but nobody's; read again, it is. */
	add(2, UINT32_MAX);
	assert_null(vfio_broker_find(&t.b, UINT32_MAX));
	add(2, 3);
	assert_string_equal(vfio_broker_find(&t.b, 3)->bdf, fakes[2].bdf);

	/* A device known that cannot be read again stays as it was. */
	fakes[2].device_fd_error = -EIO;
	assert_int_equal(vfio_broker_add_device(&t.b, fakes[2].bdf, &pos), -EIO);
	assert_non_null(strstr(t.b.error, "cannot be opened"));
	assert_string_equal(vfio_broker_find(&t.b, 3)->bdf, fakes[2].bdf);
	/* A new one that cannot be read is not kept, nor its group. */
	fakes[3].device_fd_error = -EIO;
	assert_int_equal(vfio_broker_add_device(&t.b, fakes[3].bdf, &pos), -EIO);
	assert_int_equal(fakes[3].attaches, 1);
	assert_int_equal(fakes[3].detaches, 1);
	assert_int_equal(t.b.ndevices, 2);

	vfio_broker_remove_device(&t.b, "0000:0f:00.0");   /* unknown: ignored */
	vfio_broker_remove_device(&t.b, NULL);
	vfio_broker_remove_device(&t.b, fakes[0].bdf);
	assert_null(vfio_broker_find(&t.b, 2));
	assert_int_equal(t.b.ndevices, 1);
	assert_int_equal(open_fds(), fds);
}

static void test_devices_limit(void **state)
{
	uint32_t pos;

	/* The table is full: one fake device stands for many rows. */
	add(0, 1);
	for (unsigned i = 1; i < VFIO_BROKER_DEVICES_MAX; i++)
		t.b.devices[t.b.ndevices++] = (struct vfio_broker_device){ .bdf = "0000:03:01.0", .ivposition = UINT32_MAX };
	fakes[0].attaches = VFIO_BROKER_DEVICES_MAX;   /* each row is released once at the end */
	assert_int_equal(vfio_broker_add_device(&t.b, fakes[1].bdf, &pos), -ENOSPC);
	assert_int_equal(fakes[1].attaches, 0);
	assert_non_null(strstr(t.b.error, "64 devices"));
}

/* ---- requests ---- */

static void test_request_hands_out_fd(void **state)
{
	char text[64];
	int c, c2, fd, fd2;

	add(1, 5);
	c = client_ask(5);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply(c, text, sizeof(text), &fd), 0);
	assert_string_equal(text, fakes[1].bdf);
	assert_true(fd >= 0);
	same_file(fd, fakes[1].memfd);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(t.b.handed_out, 1);
	/* The caller hears of it, with the peer. */
	assert_int_equal(t.replies, 1);
	assert_int_equal(t.pid, getpid());
	assert_int_equal(t.ivposition, 5);
	assert_int_equal(t.status, 0);
	assert_string_equal(t.bdf, fakes[1].bdf);
	/* One request per connection: the broker hung up. */
	assert_int_equal(recv(c, text, sizeof(text), MSG_DONTWAIT), 0);

	/* A restarted back-end asks again while the old fd is still open: another, fresh fd. */
	c2 = client_ask(5);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply(c2, text, sizeof(text), &fd2), 0);
	assert_true(fd2 >= 0);
	same_file(fd2, fakes[1].memfd);
	assert_int_equal(fakes[1].fds_made, 3);   /* the add's, and one per request */
	assert_int_equal(t.b.handed_out, 2);
	close(fd);
	close(fd2);
	close(c);
	close(c2);
}

static void test_request_unknown(void **state)
{
	char text[64];
	int c, fd;

	add(1, 5);
	c = client_ask(6);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply(c, text, sizeof(text), &fd), -ENODEV);
	assert_int_equal(fd, -1);
	assert_string_equal(text, "");
	assert_int_equal(t.b.refused, 1);
	assert_int_equal(t.status, -ENODEV);
	assert_int_equal(t.ivposition, 6);
	close(c);
	/* -1 is "no ivshmem server": nobody's. */
	add(2, UINT32_MAX);
	c = client_ask(UINT32_MAX);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply(c, text, sizeof(text), &fd), -ENODEV);
	assert_int_equal(fd, -1);
	close(c);
	/* Nothing asked of the devices for it. */
	assert_int_equal(fakes[1].fds_made, 1);
}

static void test_request_malformed(void **state)
{
	static const uint8_t sizes[] = { 1, 3, 5, 8, 64 };
	uint8_t req[64] = { 5 };
	char text[64];
	int fd;

	add(1, 5);
	for (size_t i = 0; i < sizeof(sizes); i++) {
		int c = client(req, sizes[i]);

		vfio_broker_handle(&t.b);
		assert_int_equal(read_reply(c, text, sizeof(text), &fd), -EBADMSG);
		assert_int_equal(fd, -1);
		assert_int_equal(t.ivposition, UINT32_MAX);
		close(c);
	}
	assert_non_null(strstr(t.b.error, "malformed request (64 bytes"));
	assert_int_equal(t.b.refused, sizeof(sizes));
	assert_int_equal(t.b.handed_out, 0);
	assert_int_equal(fakes[1].fds_made, 1);
}

static void test_request_fds_dropped(void **state)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 2)];
		struct cmsghdr align;
	} control;
	uint32_t le = htole32(5);
	struct iovec iov = { .iov_base = &le, .iov_len = 4 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *h;
	char text[64];
	int c, fd, p[2];
	unsigned fds;

	add(1, 5);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fds = open_fds();
	memset(&control, 0, sizeof(control));
	h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int) * 2);
	memcpy(CMSG_DATA(h), p, sizeof(p));
	c = client(NULL, 0);
	assert_int_equal(sendmsg(c, &mh, 0), 4);
	vfio_broker_handle(&t.b);
	/* Answered as the request it is; the fds that came with it are not kept. */
	assert_int_equal(read_reply(c, text, sizeof(text), &fd), 0);
	close(fd);
	close(c);
	assert_int_equal(open_fds(), fds);
	close(p[0]);
	close(p[1]);
}

static void test_request_device_fails(void **state)
{
	char text[64];
	int c, fd;

	add(1, 5);
	fakes[1].device_fd_error = -EIO;
	c = client_ask(5);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply(c, text, sizeof(text), &fd), -EIO);
	assert_int_equal(fd, -1);
	assert_string_equal(text, fakes[1].bdf);
	assert_non_null(strstr(t.b.error, "IVPosition 5"));
	assert_non_null(strstr(t.b.error, "cannot be opened"));
	close(c);
}

static bool readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

static void test_silent_clients(void **state)
{
	uint32_t le = htole32(5);
	struct timespec a, z;
	char text[64];
	int c[VFIO_BROKER_PENDING_MAX + 1], fd;

	add(1, 5);
	assert_false(readable(vfio_broker_fd(&t.b)));
	/* Connected, request not sent yet: the broker does not wait for it. */
	c[0] = client(NULL, 0);
	assert_true(readable(vfio_broker_fd(&t.b)));
	clock_gettime(CLOCK_MONOTONIC, &a);
	vfio_broker_handle(&t.b);
	clock_gettime(CLOCK_MONOTONIC, &z);
	/* Generous for a shared machine: a broker that waited for the request would block for good. */
	assert_true((z.tv_sec - a.tv_sec) * 1000 + (z.tv_nsec - a.tv_nsec) / 1000000 < 2000);
	assert_int_equal(t.replies, 0);
	assert_false(readable(vfio_broker_fd(&t.b)));
	/* The request comes: the broker's fd says so, and it is answered. */
	assert_int_equal(send(c[0], &le, 4, 0), 4);
	assert_true(readable(vfio_broker_fd(&t.b)));
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply(c[0], text, sizeof(text), &fd), 0);
	close(fd);
	close(c[0]);
	assert_false(readable(vfio_broker_fd(&t.b)));

	/* More silent connections than slots: the oldest is dropped, the others wait. */
	for (unsigned i = 0; i <= VFIO_BROKER_PENDING_MAX; i++) {
		c[i] = client(NULL, 0);
		vfio_broker_handle(&t.b);
	}
	assert_int_equal(recv(c[0], text, sizeof(text), MSG_DONTWAIT), 0);
	assert_int_equal(t.b.refused, 1);
	assert_non_null(strstr(t.b.error, "without a request"));
	for (unsigned i = 1; i <= VFIO_BROKER_PENDING_MAX; i++) {
		assert_int_equal(recv(c[i], text, sizeof(text), MSG_DONTWAIT), -1);
		assert_int_equal(errno, EAGAIN);
	}
	/* A client that gives up without asking frees its slot, unanswered. */
	close(c[1]);
	vfio_broker_handle(&t.b);
	assert_int_equal(t.replies, 1);
	for (unsigned i = 2; i <= VFIO_BROKER_PENDING_MAX; i++)
		assert_int_equal(send(c[i], &le, 4, 0), 4);
	vfio_broker_handle(&t.b);
	for (unsigned i = 2; i <= VFIO_BROKER_PENDING_MAX; i++) {
		assert_int_equal(read_reply(c[i], text, sizeof(text), &fd), 0);
		close(fd);
		close(c[i]);
	}
	assert_int_equal(t.b.handed_out, VFIO_BROKER_PENDING_MAX);
	close(c[0]);
	assert_false(readable(vfio_broker_fd(&t.b)));
}

/* ---- the kicks ---- */

static void test_kicks_held_by_the_state_device(void **state)
{
	const struct vfio_broker_device *d;
	unsigned nfds;
	char text[64];
	int c, fd, v0;
	uint32_t pos;

	/* A session's device: no vectors of its own are enabled. */
	add(0, 5);
	assert_int_equal(fakes[0].kicks_enables, 0);
	assert_null(vfio_broker_find(&t.b, 5)->kick_fds);
	/* The state device: its vectors enabled as soon as it is known. */
	add(3, DDCTL_STATE_IVPOSITION);
	assert_int_equal(fakes[3].kicks_enables, 1);
	d = vfio_broker_find(&t.b, DDCTL_STATE_IVPOSITION);
	assert_ptr_equal(d->kick_fds, fakes[3].vectors);
	assert_int_equal(d->nkicks, FAKE_VECTORS);
	v0 = fakes[3].vectors[0];
	/* Added again (its IVPosition read again): the same vectors, so the eventfds the back-ends
	 * hold keep firing. */
	add(3, DDCTL_STATE_IVPOSITION);
	assert_int_equal(fakes[3].kicks_enables, 1);
	assert_int_equal(fakes[3].kicks_disables, 0);
	assert_int_equal(fakes[3].vectors[0], v0);

	/* A newer state device (the later wins): it takes the kicks, the older lets them go. */
	add(2, DDCTL_STATE_IVPOSITION);
	assert_int_equal(fakes[2].kicks_enables, 1);
	assert_int_equal(fakes[3].kicks_disables, 1);
	assert_string_equal(vfio_broker_find(&t.b, DDCTL_STATE_IVPOSITION)->bdf, fakes[2].bdf);
	/* It goes, and its kicks with it; the older one is the state device again and gets its
	 * vectors enabled anew at the next kicks request. */
	vfio_broker_remove_device(&t.b, fakes[2].bdf);
	assert_int_equal(fakes[2].kicks_disables, 1);
	assert_int_equal(fakes[3].kicks_enables, 1);
	c = client_kicks(0, 1);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply_fds(c, text, sizeof(text), &fd, 1, &nfds), 0);
	assert_int_equal(nfds, 1);
	assert_string_equal(text, fakes[3].bdf);
	assert_int_equal(fakes[3].kicks_enables, 2);
	same_file(fd, fakes[3].vectors[0]);
	close(fd);
	close(c);

	/* A state device that reads another IVPosition now is the state device no more. */
	add(3, 7);
	assert_int_equal(fakes[3].kicks_disables, 2);
	assert_null(vfio_broker_find(&t.b, DDCTL_STATE_IVPOSITION));

	/* A state device whose vectors cannot be enabled is not added (the agent tries again at its
	 * next scan); a known one stays as it was. */
	fakes[1].kicks_error = -EIO;
	fake_set_ivposition(&fakes[1], DDCTL_STATE_IVPOSITION);
	assert_int_equal(vfio_broker_add_device(&t.b, fakes[1].bdf, &pos), -EIO);
	assert_non_null(strstr(t.b.error, "no MSI-X"));
	assert_int_equal(fakes[1].attaches, 1);
	assert_int_equal(fakes[1].detaches, 1);
	fakes[3].kicks_error = -EIO;
	fake_set_ivposition(&fakes[3], DDCTL_STATE_IVPOSITION);
	assert_int_equal(vfio_broker_add_device(&t.b, fakes[3].bdf, &pos), -EIO);
	assert_string_equal(vfio_broker_find(&t.b, 7)->bdf, fakes[3].bdf);
	assert_null(vfio_broker_find(&t.b, DDCTL_STATE_IVPOSITION));
	/* Once it can, it is; removal and the broker's close release the vectors (teardown checks
	 * that every enable was undone). */
	fakes[3].kicks_error = 0;
	add(3, DDCTL_STATE_IVPOSITION);
	assert_int_equal(fakes[3].kicks_enables, 3);
	vfio_broker_remove_device(&t.b, fakes[3].bdf);
	assert_int_equal(fakes[3].kicks_disables, 3);
	add(3, DDCTL_STATE_IVPOSITION);
}

static void test_kicks_request(void **state)
{
	struct pollfd pfd = { .events = POLLIN };
	int c, fds[DDCTL_VFIO_KICKS_MAX + 1];
	unsigned nfds, opens = open_fds();
	char text[64];
	eventfd_t v;

	add(0, 5);
	/* No state device yet. */
	c = client_kicks(0, 2);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply_fds(c, text, sizeof(text), fds, 1, &nfds), -ENODEV);
	assert_int_equal(nfds, 0);
	assert_string_equal(text, "");
	assert_int_equal(t.ivposition, DDCTL_VFIO_KICKS);
	assert_int_equal(t.status, -ENODEV);
	assert_non_null(strstr(t.b.error, "no state device"));
	close(c);

	add(3, DDCTL_STATE_IVPOSITION);
	c = client_kicks(2, 3);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply_fds(c, text, sizeof(text), fds, 4, &nfds), 0);
	assert_int_equal(nfds, 3);
	assert_string_equal(text, fakes[3].bdf);
	assert_int_equal(t.ivposition, DDCTL_VFIO_KICKS);
	assert_int_equal(t.status, 0);
	assert_string_equal(t.bdf, fakes[3].bdf);
	assert_int_equal(t.b.handed_out, 1);
	for (unsigned i = 0; i < 3; i++) {
		same_file(fds[i], fakes[3].vectors[2 + i]);
		assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
	}
	/* The same counters: the vector firing is the back-end's kick, and only its own queue's. */
	assert_int_equal(eventfd_write(fakes[3].vectors[3], 9), 0);
	pfd.fd = fds[0];
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(eventfd_read(fds[1], &v), 0);
	assert_int_equal(v, 9);
	for (unsigned i = 0; i < 3; i++)
		close(fds[i]);
	/* One request per connection: the broker hung up. */
	assert_int_equal(recv(c, text, sizeof(text), MSG_DONTWAIT), 0);
	close(c);

	/* The last vector; every vector. */
	c = client_kicks(FAKE_VECTORS - 1, 1);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply_fds(c, text, sizeof(text), fds, 2, &nfds), 0);
	assert_int_equal(nfds, 1);
	same_file(fds[0], fakes[3].vectors[FAKE_VECTORS - 1]);
	close(fds[0]);
	close(c);
	c = client_kicks(0, FAKE_VECTORS);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply_fds(c, text, sizeof(text), fds, FAKE_VECTORS + 1, &nfds), 0);
	assert_int_equal(nfds, FAKE_VECTORS);
	for (unsigned i = 0; i < FAKE_VECTORS; i++) {
		same_file(fds[i], fakes[3].vectors[i]);
		close(fds[i]);
	}
	close(c);

	/* Vectors the state device does not have, however it is put (no wrap). */
	{
		static const uint32_t ranges[][2] = {
			{ FAKE_VECTORS - 1, 2 }, { FAKE_VECTORS, 1 }, { 0, FAKE_VECTORS + 1 },
			{ UINT32_MAX, 1 }, { UINT32_MAX - 1, DDCTL_VFIO_KICKS_MAX },
		};

		for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
			c = client_kicks(ranges[i][0], ranges[i][1]);
			vfio_broker_handle(&t.b);
			assert_int_equal(read_reply_fds(c, text, sizeof(text), fds, 1, &nfds), -ERANGE);
			assert_int_equal(nfds, 0);
			assert_string_equal(text, fakes[3].bdf);
			close(c);
		}
	}
	assert_non_null(strstr(t.b.error, "has 8 vectors"));
	assert_int_equal(t.b.handed_out, 3);
	/* The broker's eventfds stay the broker's; no device fd was opened for any of it. */
	assert_int_equal(fakes[3].kicks_enables, 1);
	assert_int_equal(fakes[3].kicks_disables, 0);
	assert_int_equal(fakes[3].fds_made, 1);
	assert_int_equal(open_fds(), opens + FAKE_VECTORS);
}

static void test_kicks_request_malformed(void **state)
{
	static const uint32_t counts[] = { 0, DDCTL_VFIO_KICKS_MAX + 1, UINT32_MAX };
	uint32_t req[5] = { htole32(DDCTL_VFIO_KICKS), 0, htole32(1), 0, 0 };
	char text[64];
	unsigned nfds;
	int c, fd;

	add(3, DDCTL_STATE_IVPOSITION);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		c = client_kicks(0, counts[i]);
		vfio_broker_handle(&t.b);
		assert_int_equal(read_reply_fds(c, text, sizeof(text), &fd, 1, &nfds), -EBADMSG);
		assert_int_equal(nfds, 0);
		assert_int_equal(t.ivposition, UINT32_MAX);
		close(c);
	}
	assert_non_null(strstr(t.b.error, "malformed kicks request"));
	/* The kicks request's size, but not its word; its word, but not its size. */
	req[0] = htole32(DDCTL_VFIO_KICKS + 1);
	c = client(req, 12);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply_fds(c, text, sizeof(text), &fd, 1, &nfds), -EBADMSG);
	assert_non_null(strstr(t.b.error, "malformed request (12 bytes"));
	close(c);
	req[0] = htole32(DDCTL_VFIO_KICKS);
	for (size_t len = 8; len <= 20; len += 8) {
		c = client(req, len);
		vfio_broker_handle(&t.b);
		assert_int_equal(read_reply_fds(c, text, sizeof(text), &fd, 1, &nfds), -EBADMSG);
		assert_int_equal(nfds, 0);
		close(c);
	}
	/* Four bytes are an IVPosition, whatever they spell: no such device. */
	c = client(req, 4);
	vfio_broker_handle(&t.b);
	assert_int_equal(read_reply_fds(c, text, sizeof(text), &fd, 1, &nfds), -ENODEV);
	assert_int_equal(nfds, 0);
	close(c);
	assert_int_equal(t.b.refused, 7);
	assert_int_equal(t.b.handed_out, 0);
	assert_int_equal(fakes[3].kicks_enables, 1);
}

/* ---- the back-ends' side: the ivshmem transport with the broker in a child process ---- */

static unsigned adopts, adopt_closes;

/* The device fd is a memfd: its first 256 bytes are BAR0, the whole of it BAR2. */
static int memfd_adopt(int fd, const char *bdf, struct vu_ivshmem_device *d, char *err, size_t errlen)
{
	struct stat st;
	void *p;

	memset(d, 0, sizeof(*d));
	vfio_pci_init(&d->pci);
	assert_int_equal(fstat(fd, &st), 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	snprintf(d->pci.bdf, sizeof(d->pci.bdf), "%s", bdf);
	d->pci.device_fd = fd;
	d->shm = p;
	d->shm_size = (uint64_t)st.st_size;
	d->regs = p;
	d->ivposition = le32toh(d->regs[IVSHMEM_REG_IVPOSITION / 4]);
	adopts++;
	return 0;
}

static void memfd_close(struct vu_ivshmem_device *d)
{
	munmap(d->shm, (size_t)d->shm_size);
	close(d->pci.device_fd);
	adopt_closes++;
}

static const struct vu_ivshmem_opener memfd_opener = { .adopt = memfd_adopt, .close = memfd_close };

/* Serves until the parent closes its end of the pipe. */
static void __attribute__((noreturn)) broker_child(int stop)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = vfio_broker_fd(&t.b), .events = POLLIN },
					 { .fd = stop, .events = POLLIN } };

		if (poll(pfd, 2, 5000) <= 0 || pfd[1].revents)
			break;
		vfio_broker_handle(&t.b);
	}
	vfio_broker_close(&t.b);
	_exit(0);
}

static void test_transport_through_broker(void **state)
{
	struct vu_mem_region r = { .size = 4096, .mmap_offset = 4096 };
	struct vu_ivshmem iv;
	int stop[2], status;
	unsigned fds;
	void *p;
	pid_t pid;

	add(0, 3);                       /* session 3's device */
	add(3, DDCTL_STATE_IVPOSITION);  /* the state device */
	assert_int_equal(ftruncate(fakes[3].memfd, 8 * DDCTL_STATE_AREA), 0);
	assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(stop[1]);
		broker_child(stop[0]);
	}
	close(stop[0]);
	/* The child serves; this process is a back-end now (its copy of the broker must not unlink
	 * the socket: only the fds go). */
	close(t.b.listen_fd);
	close(t.b.epoll_fd);
	t.b.listen_fd = t.b.epoll_fd = -1;
	t.b.socket_path[0] = '\0';

	setenv("DDTK_VFIO_SOCKET", t.path, 1);
	vu_ivshmem_set_opener(&memfd_opener);
	adopts = adopt_closes = 0;
	fds = open_fds();

	/* Asked, adopted, checked: the region is the device's memory. */
	assert_int_equal(vu_ivshmem_init(&iv, 3, 2, 3), 0);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), 0);
	assert_true(iv.open);
	/* The session's device, and the state device for its control block (the Doorbell's peer). */
	assert_int_equal(adopts, 2);
	assert_string_equal(iv.dev.pci.bdf, fakes[0].bdf);
	((volatile uint8_t *)r.host)[0] = 0x5a;
	{
		uint8_t b = 0;

		assert_int_equal(pread(fakes[0].memfd, &b, 1, 4096), 1);
		assert_int_equal(b, 0x5a);
	}
	/* The inflight region: the state device, already open for the session. */
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&iv, -1, 4096, 3 * DDCTL_STATE_AREA, &p), 0);
	assert_int_equal(adopts, 2);
	vu_ivshmem_transport_ops.unmap_inflight(&iv, p, 4096);
	/* A kick of queue 1: state-device vector 2 + 1, the counter the broker enabled (before the
	 * fork: this process has the same eventfd). */
	{
		struct pollfd pfd = { .events = POLLIN };
		eventfd_t v;

		pfd.fd = vu_ivshmem_transport_ops.kick_fd(&iv, 1);
		assert_true(pfd.fd >= 0);
		same_file(pfd.fd, fakes[3].vectors[3]);
		assert_int_equal(poll(&pfd, 1, 0), 0);
		assert_int_equal(eventfd_write(fakes[3].vectors[3], 1), 0);
		assert_int_equal(poll(&pfd, 1, 0), 1);
		assert_int_equal(eventfd_read(pfd.fd, &v), 0);
		close(pfd.fd);
	}
	assert_int_equal(adopts, 2);   /* kicks are no device open */
	vu_ivshmem_transport_ops.reset(&iv);
	assert_int_equal(adopt_closes, 2);
	assert_int_equal(open_fds(), fds);

	/* The device behind the broker's back now reports another IVPosition: refused and closed. */
	fake_set_ivposition(&fakes[0], 4);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), -ENXIO);
	assert_non_null(strstr(iv.error, "session 3"));
	assert_non_null(strstr(iv.error, fakes[0].bdf));
	assert_non_null(strstr(iv.error, "reports IVPosition 4"));
	assert_false(iv.open);
	assert_int_equal(adopts, adopt_closes);
	assert_int_equal(open_fds(), fds);
	vu_ivshmem_close(&iv);

	/* A session the broker has no device for, with kicks past the state device's vectors. */
	assert_int_equal(vu_ivshmem_init(&iv, 9, FAKE_VECTORS - 2, 4), 0);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), -ENODEV);
	assert_non_null(strstr(iv.error, "session 9"));
	assert_non_null(strstr(iv.error, "IVPosition 9"));
	assert_false(iv.open);
	assert_int_equal(vu_ivshmem_transport_ops.kick_fd(&iv, 0), -ERANGE);
	assert_non_null(strstr(iv.error, "session 9"));
	assert_non_null(strstr(iv.error, "kick vectors 6..9"));
	assert_false(iv.kicks_held);
	vu_ivshmem_close(&iv);
	assert_int_equal(open_fds(), fds);

	vu_ivshmem_set_opener(NULL);
	unsetenv("DDTK_VFIO_SOCKET");
	close(stop[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_socket),
		T(test_devices),
		T(test_devices_limit),
		T(test_request_hands_out_fd),
		T(test_request_unknown),
		T(test_request_malformed),
		T(test_request_fds_dropped),
		T(test_request_device_fails),
		T(test_silent_clients),
		T(test_kicks_held_by_the_state_device),
		T(test_kicks_request),
		T(test_kicks_request_malformed),
		T(test_transport_through_broker),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
