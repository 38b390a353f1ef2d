/* Unit tests of the driver domain's ivshmem transport with fake devices (VFIO needs the DD): the
 * VFIO broker's replies as the client reads them (a memfd standing in for the device fd, eventfds
 * for the kicks), a device opened on first need and released on reset, memory regions and inflight
 * regions held to their BAR and session area, kicks as copies of the state device's vector fds
 * asked for once per session start, calls as Doorbell writes, and the state device shared by
 * sessions and closed with the last. */
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ddctl-proto.h"
#include "vfio-pci.h"
#include "vu-ivshmem.h"

#define FAKE_SHM_SIZE (UINT64_C(1) << 20)
#define FAKE_QUEUES 3        /* the sessions' queues (and kicks) */
#define FAKE_KICK_VECTOR 10  /* where the kicks of the sessions under test start */
#define FAKE_STATE_AREAS 6   /* the fake state device holds sessions 0..5 */

/* ---- fake devices ---- */

static struct {
	unsigned opens[DDCTL_MEM_IVPOSITION_LAST + 1], closes[DDCTL_MEM_IVPOSITION_LAST + 1];
	int open_error;                  /* open fails with this when non-zero */
	bool misreport;                  /* every device reports IVPosition report instead of its own */
	uint32_t report;
	unsigned kicks_asked;            /* kicks requests, and the last one's range */
	unsigned kicks_first, kicks_count;
	int kicks_error;                 /* kicks fail with this when non-zero */
} fake;

struct fake_device {
	uint32_t regs[64];
	unsigned ivposition;             /* the one asked for */
};

static int fake_open(unsigned ivposition, struct vu_ivshmem_device *d, char *err, size_t errlen)
{
	struct fake_device *f;
	uint64_t size = ivposition == DDCTL_STATE_IVPOSITION ? FAKE_STATE_AREAS * DDCTL_STATE_AREA : FAKE_SHM_SIZE;

	assert_true(ivposition <= DDCTL_SESSIONS_MAX ||
		    (ivposition >= DDCTL_MEM_IVPOSITION_BASE && ivposition <= DDCTL_MEM_IVPOSITION_LAST));
	if (fake.open_error) {
		snprintf(err, errlen, "fake: cannot open %u", ivposition);
		return fake.open_error;
	}
	memset(d, 0, sizeof(*d));
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	d->regs = f->regs;
	f->ivposition = ivposition;
	d->ivposition = fake.misreport ? fake.report : ivposition;
	d->shm = calloc(1, size);
	assert_non_null(d->shm);
	d->shm_size = size;
	/* The bridge's control blocks: every session's Doorbell peer id. */
	if (ivposition == DDCTL_STATE_IVPOSITION)
		for (unsigned s = 1; s < FAKE_STATE_AREAS; s++)
			*(uint32_t *)(d->shm + DDCTL_STATE_CTL_OFFSET(s)) = DDCTL_PEER_ID_FIRST;
	fake.opens[ivposition]++;
	return 0;
}

static void fake_close(struct vu_ivshmem_device *d)
{
	struct fake_device *f = (struct fake_device *)(uintptr_t)d->regs;

	fake.closes[f->ivposition]++;
	free(d->shm);
	free(f);
}

/* The broker's kicks: new eventfds each time (the session owns them, teardown counts fds). */
static int fake_kicks(unsigned first, unsigned count, int *fds, char *err, size_t errlen)
{
	fake.kicks_asked++;
	fake.kicks_first = first;
	fake.kicks_count = count;
	if (fake.kicks_error) {
		snprintf(err, errlen, "fake: no kicks %u..%u", first, first + count - 1);
		return fake.kicks_error;
	}
	assert_true(count >= 1 && count <= DDCTL_VFIO_KICKS_MAX);
	for (unsigned i = 0; i < count; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(fds[i] >= 0);
	}
	return 0;
}

static const struct vu_ivshmem_opener fake_opener = { .open = fake_open, .close = fake_close, .kicks = fake_kicks };

/* A session under test: queues 0..FAKE_QUEUES-1 kicked from FAKE_KICK_VECTOR on. */
static void session_init(struct vu_ivshmem *iv, unsigned ivposition)
{
	assert_int_equal(vu_ivshmem_init(iv, ivposition, FAKE_KICK_VECTOR, FAKE_QUEUES), 0);
}

static uint32_t doorbell(const struct vu_ivshmem *iv)
{
	return iv->dev.regs[IVSHMEM_REG_DOORBELL / 4];
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static unsigned open_fds(void)
{
	unsigned n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fd_open(fd))
			n++;
	return n;
}

static unsigned fds_before;

static void close_fds(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

static int setup(void **state)
{
	memset(&fake, 0, sizeof(fake));
	fds_before = open_fds();
	vu_ivshmem_set_opener(&fake_opener);
	return 0;
}

static int teardown(void **state)
{
	vu_ivshmem_set_opener(NULL);
	/* Every device opened was closed again, and no fd stayed behind. */
	for (unsigned i = 0; i <= DDCTL_SESSIONS_MAX; i++)
		assert_int_equal(fake.opens[i], fake.closes[i]);
	assert_int_equal(open_fds(), fds_before);
	return 0;
}

/* ---- PCI addresses ---- */

static void test_bdf(void **state)
{
	unsigned n;

	assert_true(vfio_pci_bdf_valid("0000:00:1f.7"));
	assert_true(vfio_pci_bdf_valid("10000:e1:00.0"));
	assert_false(vfio_pci_bdf_valid("0000:00:1f.8"));
	assert_false(vfio_pci_bdf_valid("0000:00:1F.0"));      /* sysfs writes lower case */
	assert_false(vfio_pci_bdf_valid("000:00:01.0"));
	assert_false(vfio_pci_bdf_valid("0000:00:01.0/../x"));
	assert_false(vfio_pci_bdf_valid("../../../etc"));
	assert_false(vfio_pci_bdf_valid(""));
	assert_false(vfio_pci_bdf_valid("0000:00:01."));
	assert_int_equal(vfio_pci_group_number("../../../kernel/iommu_groups/12", &n), 0);
	assert_int_equal(n, 12);
	assert_int_equal(vfio_pci_group_number("7", &n), 0);
	assert_int_equal(n, 7);
	assert_int_equal(vfio_pci_group_number("../iommu_groups/x7", &n), -EINVAL);
	assert_int_equal(vfio_pci_group_number("../iommu_groups/7x", &n), -EINVAL);
	assert_int_equal(vfio_pci_group_number("../iommu_groups/", &n), -EINVAL);
	assert_int_equal(vfio_pci_group_number("../iommu_groups/99999999999", &n), -EINVAL);
}

/* ---- the VFIO broker's client ---- */

#define BROKER_TEST_FDS_MAX (DDCTL_VFIO_KICKS_MAX + 2)

/* Queues a reply on the broker's end b (status, text, and fds when nfds), for the client's ask. */
static void broker_reply(int b, int32_t status, const char *text, size_t textlen, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * BROKER_TEST_FDS_MAX)];
		struct cmsghdr align;
	} control;
	uint8_t pkt[128];
	uint32_t le = htole32((uint32_t)status);
	struct iovec iov = { .iov_base = pkt, .iov_len = 4 + textlen };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	assert_true(textlen <= sizeof(pkt) - 4 && nfds <= BROKER_TEST_FDS_MAX);
	memcpy(pkt, &le, 4);
	memcpy(pkt + 4, text, textlen);
	if (nfds) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(b, &mh, 0), (ssize_t)(4 + textlen));
}

/* The request the client sent on the pair: exactly one little-endian u32. */
static uint32_t broker_request(int b)
{
	uint8_t req[16];
	uint32_t le;

	assert_int_equal(recv(b, req, sizeof(req), MSG_DONTWAIT), 4);
	memcpy(&le, req, 4);
	return le32toh(le);
}

/* The kicks request the client sent on the pair: exactly three little-endian u32s. */
static void broker_kicks_request(int b, uint32_t first, uint32_t count)
{
	uint8_t req[16];
	uint32_t le[3];

	assert_int_equal(recv(b, req, sizeof(req), MSG_DONTWAIT), 12);
	memcpy(le, req, 12);
	assert_int_equal(le32toh(le[0]), DDCTL_VFIO_KICKS);
	assert_int_equal(le32toh(le[1]), first);
	assert_int_equal(le32toh(le[2]), count);
}

static void same_file(int a, int b)
{
	struct stat sa, sb;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	assert_true(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

static void test_broker_ask(void **state)
{
	int sv[2], dev, two[2], fd;
	char bdf[16], err[256];
	unsigned fds;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	dev = memfd_create("fake-device", MFD_CLOEXEC);
	assert_true(dev >= 0);
	fds = open_fds();

	/* Success: the fd is the one sent (a new descriptor, close-on-exec), with its address. */
	broker_reply(sv[1], 0, "0000:03:05.0", 12, &dev, 1);
	fd = vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(broker_request(sv[1]), 5);
	assert_true(fd != dev);
	same_file(fd, dev);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_string_equal(bdf, "0000:03:05.0");
	close(fd);
	assert_int_equal(open_fds(), fds);

	/* The broker's refusal: its status, and no fd. */
	broker_reply(sv[1], -ENODEV, "", 0, NULL, 0);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 7, bdf, sizeof(bdf), err, sizeof(err)), -ENODEV);
	assert_int_equal(broker_request(sv[1]), 7);
	assert_non_null(strstr(err, "IVPosition 7"));
	assert_non_null(strstr(err, "not plugged"));
	/* ... and an fd that came with a refusal anyway is closed. */
	broker_reply(sv[1], -EBUSY, "0000:03:05.0", 12, &dev, 1);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 7, bdf, sizeof(bdf), err, sizeof(err)), -EBUSY);
	broker_request(sv[1]);
	assert_int_equal(open_fds(), fds);

	/* Success without an fd, or with two: not a reply. */
	broker_reply(sv[1], 0, "0000:03:05.0", 12, NULL, 0);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "0 fds"));
	broker_request(sv[1]);
	two[0] = two[1] = dev;
	broker_reply(sv[1], 0, "0000:03:05.0", 12, two, 2);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "2 fds"));
	broker_request(sv[1]);
	assert_int_equal(open_fds(), fds);

	/* A malformed address, or one with a NUL in it, or a long or short packet, or a positive status. */
	broker_reply(sv[1], 0, "../../etc", 9, &dev, 1);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "not a PCI address"));
	broker_request(sv[1]);
	broker_reply(sv[1], 0, "0000:03:05.0\0x", 14, &dev, 1);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err)), -EPROTO);
	broker_request(sv[1]);
	broker_reply(sv[1], 0, "0000:03:05.0-and-then-some-more-text-0000:03:05.0", 49, &dev, 1);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "malformed reply"));
	broker_request(sv[1]);
	assert_int_equal(send(sv[1], "\0\0", 2, 0), 2);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "malformed reply"));
	broker_request(sv[1]);
	broker_reply(sv[1], 5, "0000:03:05.0", 12, &dev, 1);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err)), -EPROTO);
	broker_request(sv[1]);
	assert_int_equal(open_fds(), fds);

	/* The caller's buffer too small for the address. */
	broker_reply(sv[1], 0, "0000:03:05.0", 12, &dev, 1);
	assert_int_equal(vu_ivshmem_broker_ask(sv[0], 5, bdf, 8, err, sizeof(err)), -ENAMETOOLONG);
	broker_request(sv[1]);
	assert_int_equal(open_fds(), fds);

	/* The broker hangs up without a reply. */
	close(sv[1]);
	assert_true(vu_ivshmem_broker_ask(sv[0], 5, bdf, sizeof(bdf), err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "IVPosition 5"));
	close(sv[0]);
	close(dev);
}

static void test_broker_ask_kicks(void **state)
{
	int sv[2], ev[BROKER_TEST_FDS_MAX], got[DDCTL_VFIO_KICKS_MAX], sentinel[DDCTL_VFIO_KICKS_MAX];
	char bdf[16], err[256];
	unsigned fds;
	eventfd_t v;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	/* Blocking eventfds: the client makes them non-blocking itself. */
	for (unsigned i = 0; i < BROKER_TEST_FDS_MAX; i++) {
		ev[i] = eventfd(0, EFD_CLOEXEC);
		assert_true(ev[i] >= 0);
	}
	for (unsigned i = 0; i < DDCTL_VFIO_KICKS_MAX; i++)
		sentinel[i] = -7;
	fds = open_fds();

	/* Success: count fds, in order, the same counters as the broker's, close-on-exec and
	 * non-blocking, with the state device's address. */
	broker_reply(sv[1], 0, "0000:03:1f.0", 12, ev, 3);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 3, got, bdf, sizeof(bdf), err, sizeof(err)), 0);
	broker_kicks_request(sv[1], 10, 3);
	assert_string_equal(bdf, "0000:03:1f.0");
	for (unsigned i = 0; i < 3; i++) {
		assert_true(got[i] != ev[i]);
		same_file(got[i], ev[i]);
		assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
		assert_true(fcntl(got[i], F_GETFL) & O_NONBLOCK);
	}
	assert_int_equal(eventfd_write(ev[1], 5), 0);
	assert_int_equal(eventfd_read(got[1], &v), 0);
	assert_int_equal(v, 5);
	close_fds(got, 3);
	assert_int_equal(open_fds(), fds);

	/* The most one request brings; the address is optional. */
	broker_reply(sv[1], 0, "0000:03:1f.0", 12, ev, DDCTL_VFIO_KICKS_MAX);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 64, DDCTL_VFIO_KICKS_MAX, got, NULL, 0, err, sizeof(err)), 0);
	broker_kicks_request(sv[1], 64, DDCTL_VFIO_KICKS_MAX);
	same_file(got[DDCTL_VFIO_KICKS_MAX - 1], ev[DDCTL_VFIO_KICKS_MAX - 1]);
	close_fds(got, DDCTL_VFIO_KICKS_MAX);
	assert_int_equal(open_fds(), fds);

	/* The broker's refusals, with what they mean; fds that came anyway are closed. */
	broker_reply(sv[1], -ENODEV, "", 0, NULL, 0);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 3, sentinel, NULL, 0, err, sizeof(err)), -ENODEV);
	broker_kicks_request(sv[1], 10, 3);
	assert_non_null(strstr(err, "kick vectors 10..12"));
	assert_non_null(strstr(err, "no state device"));
	broker_reply(sv[1], -ERANGE, "0000:03:1f.0", 12, ev, 2);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 120, 8, sentinel, NULL, 0, err, sizeof(err)), -ERANGE);
	broker_kicks_request(sv[1], 120, 8);
	assert_non_null(strstr(err, "fewer vectors"));
	assert_int_equal(open_fds(), fds);

	/* Success with too few fds, too many, none, or more than any reply may bring: not a reply. */
	broker_reply(sv[1], 0, "0000:03:1f.0", 12, ev, 2);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 3, sentinel, NULL, 0, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "2 fds, not 3"));
	broker_kicks_request(sv[1], 10, 3);
	broker_reply(sv[1], 0, "0000:03:1f.0", 12, ev, 4);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 3, sentinel, NULL, 0, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "4 fds, not 3"));
	broker_kicks_request(sv[1], 10, 3);
	broker_reply(sv[1], 0, "0000:03:1f.0", 12, NULL, 0);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 1, sentinel, NULL, 0, err, sizeof(err)), -EPROTO);
	broker_kicks_request(sv[1], 10, 1);
	broker_reply(sv[1], 0, "0000:03:1f.0", 12, ev, BROKER_TEST_FDS_MAX);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 0, DDCTL_VFIO_KICKS_MAX, sentinel, NULL, 0, err, sizeof(err)),
			 -EPROTO);
	broker_kicks_request(sv[1], 0, DDCTL_VFIO_KICKS_MAX);
	assert_int_equal(open_fds(), fds);
	/* A malformed address, or a positive status. */
	broker_reply(sv[1], 0, "../../etc", 9, ev, 1);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 1, sentinel, NULL, 0, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "not a PCI address"));
	broker_kicks_request(sv[1], 10, 1);
	broker_reply(sv[1], 1, "0000:03:1f.0", 12, ev, 1);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 1, sentinel, NULL, 0, err, sizeof(err)), -EPROTO);
	broker_kicks_request(sv[1], 10, 1);
	/* The caller's buffer too small for the address: the fds go too. */
	broker_reply(sv[1], 0, "0000:03:1f.0", 12, ev, 2);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 2, sentinel, bdf, 8, err, sizeof(err)), -ENAMETOOLONG);
	broker_kicks_request(sv[1], 10, 2);
	assert_int_equal(open_fds(), fds);

	/* A count no request may have: refused before asking. */
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, 0, sentinel, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(vu_ivshmem_broker_ask_kicks(sv[0], 10, DDCTL_VFIO_KICKS_MAX + 1, sentinel, NULL, 0, err,
						     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not 1 to 64"));
	assert_int_equal(recv(sv[1], bdf, sizeof(bdf), MSG_DONTWAIT), -1);
	/* Failures leave the caller's array alone. */
	for (unsigned i = 0; i < DDCTL_VFIO_KICKS_MAX; i++)
		assert_int_equal(sentinel[i], -7);

	/* The broker hangs up without a reply. */
	close(sv[1]);
	assert_true(vu_ivshmem_broker_ask_kicks(sv[0], 10, 3, sentinel, NULL, 0, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "kick vectors 10..12"));
	close(sv[0]);
	close_fds(ev, BROKER_TEST_FDS_MAX);
}

static void test_broker_socket_path(void **state)
{
	/* The broker's socket can be moved for tests; by default it is the DD's. */
	unsetenv("DDTK_VFIO_SOCKET");
	assert_string_equal(vu_ivshmem_broker_socket(), DDCTL_VFIO_SOCKET);
	setenv("DDTK_VFIO_SOCKET", "/tmp/x.sock", 1);
	assert_string_equal(vu_ivshmem_broker_socket(), "/tmp/x.sock");
	setenv("DDTK_VFIO_SOCKET", "", 1);
	assert_string_equal(vu_ivshmem_broker_socket(), DDCTL_VFIO_SOCKET);
	unsetenv("DDTK_VFIO_SOCKET");
}

/* The default opener without a broker (no ddtk-agent): a clear error, nothing left open. */
static void test_opener_without_broker(void **state)
{
	char dir[] = "/tmp/test-vu-ivshmem-XXXXXX", path[PATH_MAX];
	struct vu_ivshmem iv;
	struct vu_mem_region r = { .size = 4096 };
	void *p;

	vu_ivshmem_set_opener(NULL);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vfio.sock", dir);
	setenv("DDTK_VFIO_SOCKET", path, 1);
	session_init(&iv, 7);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), -ENOENT);
	assert_non_null(strstr(iv.error, "session 7"));
	assert_non_null(strstr(iv.error, path));
	assert_non_null(strstr(iv.error, "ddtk-agent"));
	assert_false(iv.open);
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&iv, -1, 4096, 7 * DDCTL_STATE_AREA, &p), -ENOENT);
	assert_non_null(strstr(iv.error, "state device"));
	assert_int_equal(vu_ivshmem_transport_ops.kick_fd(&iv, 0), -ENOENT);
	assert_non_null(strstr(iv.error, "session 7"));
	assert_non_null(strstr(iv.error, path));
	assert_false(iv.kicks_held);
	assert_int_equal(vu_ivshmem_broker_kicks(path, 0, 0, NULL, iv.error, sizeof(iv.error)), -EINVAL);
	vu_ivshmem_close(&iv);
	unsetenv("DDTK_VFIO_SOCKET");
	rmdir(dir);
	vu_ivshmem_set_opener(&fake_opener);
}

/* ---- a session ---- */

static void test_lazy_open_and_reset(void **state)
{
	struct vu_ivshmem iv;
	struct vu_mem_region r = { .size = 8192, .mmap_offset = 4096 };

	session_init(&iv, 3);
	assert_false(iv.open);
	assert_int_equal(fake.opens[3], 0);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), 0);
	assert_true(iv.open);
	assert_int_equal(fake.opens[3], 1);
	assert_ptr_equal(r.host, iv.dev.shm + 4096);
	/* A second region (RAM above 4 GiB, same fd) uses the same device. */
	r = (struct vu_mem_region){ .size = 4096, .mmap_offset = FAKE_SHM_SIZE - 4096 };
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), 0);
	assert_int_equal(fake.opens[3], 1);
	vu_ivshmem_transport_ops.unmap_region(&iv, &r);
	assert_null(r.host);
	/* Reset lets the DD unplug it; the next need opens it again (it may be a new device). */
	vu_ivshmem_transport_ops.reset(&iv);
	assert_false(iv.open);
	assert_int_equal(fake.closes[3], 1);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), 0);
	assert_int_equal(fake.opens[3], 2);
	vu_ivshmem_close(&iv);
	assert_int_equal(fake.closes[3], 2);
	vu_ivshmem_close(&iv); /* twice is harmless */
}

static void test_region_bounds(void **state)
{
	struct vu_ivshmem iv;
	struct vu_mem_region r;
	const uint64_t sz = FAKE_SHM_SIZE;
	const struct { uint64_t offset, size; int ok; } cases[] = {
		{ 0, sz, 1 },
		{ sz - 1, 1, 1 },
		{ sz, 1, 0 },
		{ sz - 4096, 8192, 0 },
		{ 0, sz + 1, 0 },
		{ UINT64_MAX - 4095, 8192, 0 },   /* would wrap if added */
		{ 4096, UINT64_MAX - 4095, 0 },
	};

	session_init(&iv, 3);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = (struct vu_mem_region){ .mmap_offset = cases[i].offset, .size = cases[i].size };
		assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), cases[i].ok ? 0 : -EINVAL);
		if (cases[i].ok)
			assert_ptr_equal(r.host, iv.dev.shm + cases[i].offset);
		else
			assert_null(r.host);
	}
	assert_non_null(strstr(iv.error, "outside BAR2"));
	/* An fd never comes with this transport's regions. */
	r = (struct vu_mem_region){ .size = 4096 };
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, 0), -EINVAL);
	vu_ivshmem_close(&iv);
}

/* A client whose memory is several files: file k's regions are in the device of
 * ddctl_mem_ivposition(session, k), opened when a region needs it and closed on reset. */
static void test_memory_files(void **state)
{
	struct vu_ivshmem iv;
	struct vu_mem_region r0 = { .size = 8192, .mmap_offset = 4096 };
	struct vu_mem_region r1 = { .size = 4096, .mmap_offset = (UINT64_C(1) << DDCTL_MEM_FILE_SHIFT) | 8192 };
	struct vu_mem_region r3 = { .size = FAKE_SHM_SIZE, .mmap_offset = UINT64_C(3) << DDCTL_MEM_FILE_SHIFT };
	const unsigned m1 = ddctl_mem_ivposition(3, 1), m3 = ddctl_mem_ivposition(3, 3);

	assert_int_equal(m1, DDCTL_MEM_IVPOSITION_BASE + 2 * (DDCTL_MEM_FILES_MAX - 1));
	session_init(&iv, 3);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r0, -1), 0);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r1, -1), 0);
	assert_int_equal(fake.opens[m1], 1);
	assert_ptr_equal(r1.host, iv.mem_dev[1].shm + 8192);
	assert_ptr_not_equal(r1.host, r0.host + 4096);
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r3, -1), 0);
	assert_int_equal(fake.opens[m3], 1);
	/* A second region of file 1 uses its open device. */
	struct vu_mem_region r1b = { .size = 4096, .mmap_offset = (UINT64_C(1) << DDCTL_MEM_FILE_SHIFT) };
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r1b, -1), 0);
	assert_int_equal(fake.opens[m1], 1);
	/* Bounds are each file's own; files past the last, and offsets past the shift, are refused. */
	struct vu_mem_region bad = { .size = 8192, .mmap_offset = (UINT64_C(1) << DDCTL_MEM_FILE_SHIFT) | (FAKE_SHM_SIZE - 4096) };
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &bad, -1), -EINVAL);
	assert_non_null(strstr(iv.error, "memory file 1"));
	bad = (struct vu_mem_region){ .size = 4096, .mmap_offset = (uint64_t)DDCTL_MEM_FILES_MAX << DDCTL_MEM_FILE_SHIFT };
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &bad, -1), -EINVAL);
	assert_non_null(strstr(iv.error, "at most"));
	bad.mmap_offset = UINT64_MAX;
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &bad, -1), -EINVAL);
	/* A file whose device cannot be opened fails the region, with the reason. */
	fake.open_error = -ENODEV;
	struct vu_mem_region r2 = { .size = 4096, .mmap_offset = UINT64_C(2) << DDCTL_MEM_FILE_SHIFT };
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r2, -1), -ENODEV);
	assert_non_null(strstr(iv.error, "memory file 2"));
	fake.open_error = 0;
	/* Reset closes them all. */
	vu_ivshmem_transport_ops.reset(&iv);
	assert_int_equal(fake.closes[m1], 1);
	assert_int_equal(fake.closes[m3], 1);
	assert_int_equal(fake.closes[3], 1);
	vu_ivshmem_close(&iv);
	assert_int_equal(fake.closes[m1], 1);
}

static void test_open_failures(void **state)
{
	struct vu_ivshmem iv;
	struct vu_mem_region r = { .size = 4096 };

	session_init(&iv, 4);
	fake.open_error = -ENOENT;
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), -ENOENT);
	assert_string_equal(iv.error, "session 4: fake: cannot open 4");
	assert_false(iv.open);
	/* The link points at another session's device, or at one not connected to its server yet
	 * (IVPosition reads -1): closed again at once. */
	fake.open_error = 0;
	fake.misreport = true;
	fake.report = 5;
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), -ENXIO);
	assert_non_null(strstr(iv.error, "reports IVPosition 5"));
	assert_int_equal(fake.closes[4], 1);
	fake.report = UINT32_MAX;
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), -ENXIO);
	assert_non_null(strstr(iv.error, "reports IVPosition -1"));
	assert_int_equal(fake.closes[4], 2);
	assert_false(iv.open);
	/* Once it is the right one, it is used. */
	fake.misreport = false;
	assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), 0);
	assert_true(iv.open);
	vu_ivshmem_close(&iv);
}

static void test_init_ranges(void **state)
{
	struct vu_ivshmem iv;

	/* The last vector, and the most kicks one request brings. */
	assert_int_equal(vu_ivshmem_init(&iv, 1, DDCTL_KICK_VECTORS_MAX - 1, 1), 0);
	assert_int_equal(vu_ivshmem_init(&iv, DDCTL_SESSIONS_MAX, 0, DDCTL_VFIO_KICKS_MAX), 0);
	assert_int_equal(vu_ivshmem_init(&iv, 3, DDCTL_KICK_VECTORS_MAX - DDCTL_VFIO_KICKS_MAX, DDCTL_VFIO_KICKS_MAX), 0);
	/* Past the state device's vectors, however it is put; no kicks, too many for a request. */
	assert_int_equal(vu_ivshmem_init(&iv, 3, DDCTL_KICK_VECTORS_MAX, 1), -EINVAL);
	assert_non_null(strstr(iv.error, "session 3"));
	assert_non_null(strstr(iv.error, "vector 128"));
	assert_int_equal(iv.nkicks, 0);
	assert_int_equal(vu_ivshmem_init(&iv, 3, DDCTL_KICK_VECTORS_MAX - 2, 3), -EINVAL);
	assert_int_equal(vu_ivshmem_init(&iv, 3, UINT32_MAX, 2), -EINVAL);
	assert_int_equal(vu_ivshmem_init(&iv, 3, 0, 0), -EINVAL);
	assert_int_equal(vu_ivshmem_init(&iv, 3, 0, DDCTL_VFIO_KICKS_MAX + 1), -EINVAL);
	/* Not a session: the state device is nobody's own. */
	assert_int_equal(vu_ivshmem_init(&iv, DDCTL_STATE_IVPOSITION, 0, 1), -EINVAL);
	assert_int_equal(vu_ivshmem_init(&iv, DDCTL_SESSIONS_MAX + 1, 0, 1), -EINVAL);
	assert_non_null(strstr(iv.error, "not a session"));
	vu_ivshmem_close(&iv); /* harmless after a failed init */
}

static void test_kick_fd(void **state)
{
	struct vu_ivshmem iv;
	struct pollfd pfd = { .events = POLLIN };
	int fd, fd0;

	session_init(&iv, 3);
	fd = vu_ivshmem_transport_ops.kick_fd(&iv, 2);
	assert_true(fd >= 0);
	/* The session's range of state-device vectors, asked for at the first kick; the session's own
	 * device is not needed for it. */
	assert_int_equal(fake.kicks_asked, 1);
	assert_int_equal(fake.kicks_first, FAKE_KICK_VECTOR);
	assert_int_equal(fake.kicks_count, FAKE_QUEUES);
	assert_true(iv.kicks_held);
	assert_false(iv.open);
	assert_int_equal(fake.opens[3], 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	/* The copy is readable when its vector fires (its eventfd is signalled), not another. */
	pfd.fd = fd;
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(eventfd_write(iv.kick_fds[1], 1), 0);
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(eventfd_write(iv.kick_fds[2], 1), 0);
	assert_int_equal(poll(&pfd, 1, 0), 1);
	close(fd);
	/* The other queues' kicks come from the same answer. */
	fd0 = vu_ivshmem_transport_ops.kick_fd(&iv, 0);
	assert_true(fd0 >= 0);
	assert_int_equal(fake.kicks_asked, 1);
	close(fd0);
	/* A queue without a kick vector: nothing asked. */
	assert_int_equal(vu_ivshmem_transport_ops.kick_fd(&iv, FAKE_QUEUES), -EINVAL);
	assert_int_equal(vu_ivshmem_transport_ops.kick_fd(&iv, UINT32_MAX), -EINVAL);
	assert_non_null(strstr(iv.error, "no kick vector"));
	assert_int_equal(fake.kicks_asked, 1);
	/* A reset lets them go (teardown counts the fds); the next start asks again: the state device
	 * may be a new one with new eventfds by then. */
	vu_ivshmem_transport_ops.reset(&iv);
	assert_false(iv.kicks_held);
	close(vu_ivshmem_transport_ops.kick_fd(&iv, 1));
	assert_int_equal(fake.kicks_asked, 2);
	vu_ivshmem_close(&iv);
	assert_false(iv.kicks_held);
}

static void test_kick_fd_failure(void **state)
{
	struct vu_ivshmem iv;
	int fd;

	session_init(&iv, 4);
	fake.kicks_error = -ENODEV;
	assert_int_equal(vu_ivshmem_transport_ops.kick_fd(&iv, 0), -ENODEV);
	assert_string_equal(iv.error, "session 4: fake: no kicks 10..12");
	assert_false(iv.kicks_held);
	/* Asked again at the next kick, not remembered as failed. */
	fake.kicks_error = 0;
	fd = vu_ivshmem_transport_ops.kick_fd(&iv, 0);
	assert_true(fd >= 0);
	assert_int_equal(fake.kicks_asked, 2);
	close(fd);
	vu_ivshmem_close(&iv);
}

static void test_notify_rings_doorbell(void **state)
{
	struct vu_ivshmem iv;
	struct vu_vq vq;

	/* The spec's encoding: peer in the high half, vector in the low one. */
	assert_int_equal(ivshmem_doorbell(1, 2), 0x10002);
	assert_int_equal(ivshmem_doorbell(0xffff, 0xffff), 0xffffffff);
	session_init(&iv, 3);
	vu_vq_init(&vq, 1);
	/* Nothing to ring before the device is open; kicks do not open it. */
	assert_int_equal(vu_ivshmem_transport_ops.notify(&iv, &vq), -ENODEV);
	close(vu_ivshmem_transport_ops.kick_fd(&iv, 0));
	assert_int_equal(vu_ivshmem_transport_ops.notify(&iv, &vq), -ENODEV);
	{
		struct vu_mem_region r = { .size = 4096 };

		assert_int_equal(vu_ivshmem_transport_ops.map_region(&iv, &r, -1), 0);
	}
	assert_int_equal(vu_ivshmem_transport_ops.notify(&iv, &vq), 0);
	assert_int_equal(doorbell(&iv), ivshmem_doorbell(DDCTL_PEER_ID_FIRST, 1));
	vu_vq_init(&vq, 2);
	assert_int_equal(vu_ivshmem_transport_ops.notify(&iv, &vq), 0);
	assert_int_equal(doorbell(&iv), ivshmem_doorbell(DDCTL_PEER_ID_FIRST, 2));
	/* The bridge moved the client's calls to another peer id: the next Doorbell names it. */
	*(uint32_t *)(uintptr_t)iv.peer_word = DDCTL_PEER_ID_FIRST + 7;
	assert_int_equal(vu_ivshmem_transport_ops.notify(&iv, &vq), 0);
	assert_int_equal(doorbell(&iv), ivshmem_doorbell(DDCTL_PEER_ID_FIRST + 7, 2));
	/* No peer id published (or a nonsense one): nothing is rung. */
	iv.dev.regs[IVSHMEM_REG_DOORBELL / 4] = 0xdead;
	*(uint32_t *)(uintptr_t)iv.peer_word = 0;
	assert_int_equal(vu_ivshmem_transport_ops.notify(&iv, &vq), -EAGAIN);
	*(uint32_t *)(uintptr_t)iv.peer_word = 0x10000;
	assert_int_equal(vu_ivshmem_transport_ops.notify(&iv, &vq), -EAGAIN);
	assert_int_equal(doorbell(&iv), 0xdead);
	*(uint32_t *)(uintptr_t)iv.peer_word = DDCTL_PEER_ID_FIRST;
	/* A queue past the session's is not rung (the client has no call fd for it). */
	vu_vq_init(&vq, FAKE_QUEUES);
	assert_int_equal(vu_ivshmem_transport_ops.notify(&iv, &vq), -EINVAL);
	assert_int_equal(doorbell(&iv), 0xdead);
	vu_ivshmem_close(&iv);
}

/* ---- the state device ---- */

static void test_inflight_areas(void **state)
{
	struct vu_ivshmem a, b;
	void *pa, *pb, *pa2;
	const uint64_t area3 = 3 * DDCTL_STATE_AREA, area5 = 5 * DDCTL_STATE_AREA;

	session_init(&a, 3);
	session_init(&b, 5);
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, -1, 4096, area3, &pa), 0);
	assert_int_equal(fake.opens[DDCTL_STATE_IVPOSITION], 1);
	assert_false(a.open); /* the session's own device is not needed for it */
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&b, -1, DDCTL_STATE_AREA, area5, &pb), 0);
	assert_int_equal(fake.opens[DDCTL_STATE_IVPOSITION], 1); /* one state device for both */
	assert_ptr_equal((uint8_t *)pb - (uint8_t *)pa, area5 - area3);

	/* Outside the session's own area, however it is put. */
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, -1, 4096, area5, &pa2), -EINVAL);
	assert_non_null(strstr(a.error, "not in its area"));
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, -1, 4096, area3 - 4096, &pa2), -EINVAL);
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, -1, DDCTL_STATE_AREA, area3 + 4096, &pa2), -EINVAL);
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, -1, UINT64_MAX, area3 + 4096, &pa2), -EINVAL);
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, -1, 0, area3, &pa2), -EINVAL);
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, -1, 64, area3 + 4, &pa2), -EINVAL);
	/* GET_INFLIGHT_FD's memfd: the bridge answers that one, not the DD. */
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, 0, 4096, 0, &pa2), -EOPNOTSUPP);

	/* A second region of the same session (SET_INFLIGHT_FD again maps before it unmaps). */
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&a, -1, 4096, area3 + 8192, &pa2), 0);
	assert_ptr_equal((uint8_t *)pa2 - (uint8_t *)pa, 8192);
	vu_ivshmem_transport_ops.unmap_inflight(&a, pa, 4096);
	vu_ivshmem_transport_ops.unmap_inflight(&b, pb, DDCTL_STATE_AREA);
	assert_int_equal(fake.closes[DDCTL_STATE_IVPOSITION], 0);
	/* The last mapping releases it; a session closed with one still mapped gives it back. */
	vu_ivshmem_close(&a);
	assert_int_equal(fake.closes[DDCTL_STATE_IVPOSITION], 1);
	vu_ivshmem_close(&b);
}

static void test_inflight_past_state_device(void **state)
{
	struct vu_ivshmem iv;
	void *p;

	/* Session 7's area lies past the fake state device (6 areas): refused, and the state device
	 * is not kept open for nothing. */
	session_init(&iv, 7);
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&iv, -1, 4096, 7 * DDCTL_STATE_AREA, &p), -EINVAL);
	assert_non_null(strstr(iv.error, "past the state device"));
	assert_int_equal(fake.opens[DDCTL_STATE_IVPOSITION], 1);
	assert_int_equal(fake.closes[DDCTL_STATE_IVPOSITION], 1);
	fake.open_error = -ENOENT;
	assert_int_equal(vu_ivshmem_transport_ops.map_inflight(&iv, -1, 4096, 7 * DDCTL_STATE_AREA, &p), -ENOENT);
	assert_non_null(strstr(iv.error, "state device"));
	vu_ivshmem_close(&iv);
}

/* ---- with the vhost-user core ---- */

static int be_config(void *be, uint32_t off, uint8_t *buf, uint32_t len)
{
	memset(buf, 0, len);
	return 0;
}

static unsigned starts, stops;

static int be_start(void *be, struct vu_vq *vq)
{
	starts++;
	return 0;
}

static void be_stop(void *be, struct vu_vq *vq)
{
	stops++;
}

static const struct vu_backend_ops be_ops = { .get_config = be_config, .queue_start = be_start, .queue_stop = be_stop };

static struct vu_msg msg, reply;

static int send_msg(struct vu_dev *dev, uint32_t request, const void *payload, uint32_t size)
{
	vu_msg_init(&msg);
	msg.hdr.request = request;
	msg.hdr.flags = VU_FLAG_VERSION;
	msg.hdr.size = size;
	if (size)
		memcpy(msg.payload.bytes, payload, size);
	return vu_dev_handle_msg(dev, &msg, &reply);
}

static void test_session_through_core(void **state)
{
	const uint64_t uva = 0x7f0000000000ull;
	struct vu_dev_info info = {
		.protocol_features = VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK),
		.num_queues = FAKE_QUEUES + 1,   /* one more queue than the session has kicks */
		.max_queue_size = 256,
	};
	struct vu_mem_table_msg mt = { .nregions = 1, .regions = { { 0, FAKE_SHM_SIZE, uva, 0 } } };
	struct vu_vring_state st = { 0, 64 };
	struct vu_vring_addr addr = { .index = 0, .desc_user_addr = uva, .avail_user_addr = uva + 4096,
				      .used_user_addr = uva + 8192 };
	struct vu_inflight_msg inf = { .mmap_size = 2 * vu_inflight_queue_size(64), .mmap_offset = 3 * DDCTL_STATE_AREA,
				       .num_queues = 2, .queue_size = 64 };
	uint64_t u64 = VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD);
	struct vu_ivshmem iv;
	struct vu_dev dev;

	starts = stops = 0;
	session_init(&iv, 3);
	assert_int_equal(vu_dev_init(&dev, &info, &vu_ivshmem_transport_ops, &iv, &be_ops, NULL), 0);
	assert_int_equal(send_msg(&dev, VU_REQ_SET_PROTOCOL_FEATURES, &u64, 8), 0);
	u64 = VU_BIT(VU_F_VERSION_1);
	assert_int_equal(send_msg(&dev, VU_REQ_SET_FEATURES, &u64, 8), 0);
	assert_int_equal(send_msg(&dev, VU_REQ_SET_MEM_TABLE, &mt, 8 + 32), 0);
	assert_ptr_equal(dev.mem.regions[0].host, iv.dev.shm);
	assert_int_equal(send_msg(&dev, VU_REQ_SET_INFLIGHT_FD, &inf, sizeof(inf)), 0);
	assert_non_null(dev.vq[1].inflight);
	assert_int_equal(send_msg(&dev, VU_REQ_SET_VRING_NUM, &st, sizeof(st)), 0);
	assert_int_equal(send_msg(&dev, VU_REQ_SET_VRING_ADDR, &addr, sizeof(addr)), 0);
	u64 = VU_VRING_NOFD;
	assert_int_equal(send_msg(&dev, VU_REQ_SET_VRING_CALL, &u64, 8), 0);
	assert_int_equal(send_msg(&dev, VU_REQ_SET_VRING_KICK, &u64, 8), 0);
	assert_true(dev.vq[0].started);
	assert_int_equal(starts, 1);
	/* The core's notification is the doorbell of queue 0. */
	iv.dev.regs[IVSHMEM_REG_DOORBELL / 4] = 0xdead;
	assert_int_equal(vu_dev_notify(&dev, &dev.vq[0]), 0);
	assert_int_equal(doorbell(&iv), ivshmem_doorbell(DDCTL_PEER_ID_FIRST, 0));
	/* The kick is the state device's vector of queue 0. */
	assert_int_equal(fake.kicks_asked, 1);
	assert_int_equal(fake.kicks_first, FAKE_KICK_VECTOR);
	/* A queue the session has no kick vector for: refused, with the transport's reason. */
	u64 = FAKE_QUEUES | VU_VRING_NOFD;
	assert_int_equal(send_msg(&dev, VU_REQ_SET_VRING_KICK, &u64, 8), -EINVAL);
	assert_non_null(strstr(dev.error_detail, "no kick vector"));
	assert_false(dev.vq[FAKE_QUEUES].kick_set);
	/* GET_INFLIGHT_FD is not ours to answer in the DD. */
	inf.mmap_size = inf.mmap_offset = 0;
	assert_int_equal(send_msg(&dev, VU_REQ_GET_INFLIGHT_FD, &inf, sizeof(inf)), -EOPNOTSUPP);
	assert_int_equal(reply.nfds, 0);
	/* RESET_OWNER: queues stopped, the session's device and the state device released. */
	assert_int_equal(send_msg(&dev, VU_REQ_RESET_OWNER, NULL, 0), 0);
	assert_int_equal(stops, 1);
	assert_false(iv.open);
	assert_int_equal(fake.closes[3], 1);
	assert_int_equal(fake.closes[DDCTL_STATE_IVPOSITION], 1);
	assert_false(iv.kicks_held);
	vu_ivshmem_close(&iv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bdf),
		cmocka_unit_test(test_broker_socket_path),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_broker_ask),
		T(test_broker_ask_kicks),
		T(test_opener_without_broker),
		T(test_lazy_open_and_reset),
		T(test_region_bounds),
		T(test_memory_files),
		T(test_open_failures),
		T(test_init_ranges),
		T(test_kick_fd),
		T(test_kick_fd_failure),
		T(test_notify_rings_doorbell),
		T(test_inflight_areas),
		T(test_inflight_past_state_device),
		T(test_session_through_core),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
