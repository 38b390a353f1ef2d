/* ddtk-agent's VFIO broker (see vfio-broker.h): the device table, the kicks, the socket, and the
 * requests. The peers are the agent's own back-ends, but a request is still read as hostile input:
 * its size and numbers are checked, fds sent with it are dropped, and a peer that connects and says
 * nothing only holds one of VFIO_BROKER_PENDING_MAX slots until newer connections evict it. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "ddctl-proto.h"
#include "vfio-broker.h"

/* ivshmem (QEMU's docs/specs/ivshmem-spec.rst): the IDs, and BAR0's IVPosition register. */
#define BROKER_IVSHMEM_VENDOR 0x1af4
#define BROKER_IVSHMEM_DEVICE 0x1110
#define BROKER_REG_IVPOSITION 8

/* ---------- reaching devices through VFIO ---------- */

static int vfio_attach(struct vfio_broker *b, struct vfio_broker_device *d, char *err, size_t errlen)
{
	return vfio_pci_group_get(&b->container, d->bdf, &d->group, err, errlen);
}

static void vfio_detach(struct vfio_broker *b, struct vfio_broker_device *d)
{
	vfio_pci_group_put(&b->container, d->group);
	d->group = NULL;
}

static int vfio_device_fd(struct vfio_broker *b, const struct vfio_broker_device *d, char *err, size_t errlen)
{
	return vfio_pci_group_device_fd(d->group, d->bdf, err, errlen);
}

/* BAR0 is 256 bytes and need not start a page (several devices behind one bridge share pages), so
 * it may not be mappable: the register is read with pread through the device fd. */
static int vfio_read_ivposition(int device_fd, const char *bdf, uint32_t *ret, char *err, size_t errlen)
{
	struct vfio_pci dev;
	uint16_t id[2];
	uint32_t v;
	int r;

	r = vfio_pci_adopt(&dev, device_fd, bdf, err, errlen);
	if (r < 0)
		return r;
	r = vfio_pci_region_read(&dev, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, id, sizeof(id));
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read its config space: %s", bdf, strerror(-r));
		goto out;
	}
	if (le16toh(id[0]) != BROKER_IVSHMEM_VENDOR || le16toh(id[1]) != BROKER_IVSHMEM_DEVICE) {
		r = -ENODEV;
		snprintf(err, errlen, "%s is %04x:%04x, not an ivshmem device (%04x:%04x)", bdf, le16toh(id[0]),
			 le16toh(id[1]), BROKER_IVSHMEM_VENDOR, BROKER_IVSHMEM_DEVICE);
		goto out;
	}
	r = vfio_pci_region_read(&dev, VFIO_PCI_BAR0_REGION_INDEX, BROKER_REG_IVPOSITION, &v, sizeof(v));
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read IVPosition (BAR0): %s", bdf, strerror(-r));
		goto out;
	}
	*ret = le32toh(v);
out:
	/* The broker keeps no device fd: the DD could not unplug the device while one is open. */
	vfio_pci_close(&dev);
	return r;
}

/* The kicks need a device fd held open: the kernel disables a device's interrupts with its last
 * open file. */
static int vfio_kicks_enable(struct vfio_broker *b, struct vfio_broker_device *d, char *err, size_t errlen)
{
	struct vfio_pci *pci = calloc(1, sizeof(*pci));
	int fd, r;

	if (!pci) {
		snprintf(err, errlen, "%s: %s", d->bdf, strerror(ENOMEM));
		return -ENOMEM;
	}
	fd = vfio_pci_group_device_fd(d->group, d->bdf, err, errlen);
	if (fd < 0) {
		free(pci);
		return fd;
	}
	r = vfio_pci_adopt(pci, fd, d->bdf, err, errlen);
	if (r < 0) {
		free(pci);
		return r;
	}
	/* An MSI-X message is a memory write of the device's: without Bus Master QEMU drops it. */
	r = vfio_pci_set_bus_master(pci);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot set Bus Master: %s", d->bdf, strerror(-r));
		goto out;
	}
	r = vfio_pci_msix_enable(pci);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot enable its MSI-X vectors (the kicks): %s", d->bdf, strerror(-r));
		goto out;
	}
	d->kick_pci = pci;
	d->kick_fds = pci->msix_fds;
	d->nkicks = pci->msix_count;
	return 0;
out:
	vfio_pci_close(pci);
	free(pci);
	return r;
}

static void vfio_kicks_disable(struct vfio_broker *b, struct vfio_broker_device *d)
{
	vfio_pci_close(d->kick_pci);
	free(d->kick_pci);
	d->kick_pci = NULL;
	d->kick_fds = NULL;
	d->nkicks = 0;
}

static const struct vfio_broker_ops vfio_ops = {
	.attach = vfio_attach,
	.detach = vfio_detach,
	.device_fd = vfio_device_fd,
	.read_ivposition = vfio_read_ivposition,
	.kicks_enable = vfio_kicks_enable,
	.kicks_disable = vfio_kicks_disable,
};

/* ---------- the device table ---------- */

void vfio_broker_set_ops(struct vfio_broker *b, const struct vfio_broker_ops *ops)
{
	b->ops = ops ? ops : &vfio_ops;
}

static struct vfio_broker_device *device_by_bdf(struct vfio_broker *b, const char *bdf)
{
	for (unsigned i = 0; i < b->ndevices; i++)
		if (!strcmp(b->devices[i].bdf, bdf))
			return &b->devices[i];
	return NULL;
}

/* The index of the device handed out for ivposition, or -1. */
static int device_newest(const struct vfio_broker *b, uint32_t ivposition)
{
	int best = -1;

	/* A device without its ivshmem server reads -1: it is nobody's. */
	if (ivposition == UINT32_MAX)
		return -1;
	for (unsigned i = 0; i < b->ndevices; i++) {
		const struct vfio_broker_device *d = &b->devices[i];

		if (d->ivposition == ivposition && (best < 0 || d->added > b->devices[best].added))
			best = (int)i;
	}
	return best;
}

const struct vfio_broker_device *vfio_broker_find(const struct vfio_broker *b, uint32_t ivposition)
{
	int i = device_newest(b, ivposition);

	return i < 0 ? NULL : &b->devices[i];
}

static void kicks_release(struct vfio_broker *b, struct vfio_broker_device *d)
{
	if (d->kick_fds)
		b->ops->kicks_disable(b, d);
}

/* d becomes the holder of the kicks: its vectors are enabled once (enabling them again would give
 * them new eventfds, and the back-ends' copies of the old ones would never fire again), and
 * whichever device had them before lets them go: one state device, one set of kicks. */
static int kicks_take(struct vfio_broker *b, struct vfio_broker_device *d, char *err, size_t errlen)
{
	if (!d->kick_fds) {
		int r = b->ops->kicks_enable(b, d, err, errlen);

		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < b->ndevices; i++)
		if (&b->devices[i] != d)
			kicks_release(b, &b->devices[i]);
	return 0;
}

/* Reads d's IVPosition through a new device fd. */
static int device_probe(struct vfio_broker *b, const struct vfio_broker_device *d, uint32_t *ret, char *err,
			size_t errlen)
{
	int fd = b->ops->device_fd(b, d, err, errlen);

	if (fd < 0)
		return fd;
	return b->ops->read_ivposition(fd, d->bdf, ret, err, errlen);
}

int vfio_broker_add_device(struct vfio_broker *b, const char *bdf, uint32_t *ret_ivposition)
{
	struct vfio_broker_device *d, fresh;
	char err[sizeof(b->error) - 32] = "";
	uint32_t pos = UINT32_MAX;
	int r;

	if (!vfio_pci_bdf_valid(bdf)) {
		snprintf(b->error, sizeof(b->error), "'%s' is not a PCI address", bdf ? bdf : "(null)");
		return -EINVAL;
	}
	d = device_by_bdf(b, bdf);
	if (d) {
		r = device_probe(b, d, &pos, err, sizeof(err));
		if (r < 0)
			goto fail;
		if (pos == DDCTL_STATE_IVPOSITION)
			r = kicks_take(b, d, err, sizeof(err));
		else
			/* No longer the state device: its vectors are nobody's kicks. */
			kicks_release(b, d);
		if (r < 0)
			goto fail;
		d->ivposition = pos;
		d->added = ++b->adds;
		*ret_ivposition = pos;
		return 0;
	}
	if (b->ndevices == VFIO_BROKER_DEVICES_MAX) {
		snprintf(b->error, sizeof(b->error), "%s: already %d devices", bdf, VFIO_BROKER_DEVICES_MAX);
		return -ENOSPC;
	}
	fresh = (struct vfio_broker_device){ 0 };
	snprintf(fresh.bdf, sizeof(fresh.bdf), "%s", bdf);
	r = b->ops->attach(b, &fresh, err, sizeof(err));
	if (r < 0)
		goto fail;
	r = device_probe(b, &fresh, &pos, err, sizeof(err));
	if (r == 0 && pos == DDCTL_STATE_IVPOSITION)
		r = kicks_take(b, &fresh, err, sizeof(err));
	if (r < 0) {
		b->ops->detach(b, &fresh);
		goto fail;
	}
	fresh.ivposition = pos;
	fresh.added = ++b->adds;
	b->devices[b->ndevices++] = fresh;
	*ret_ivposition = pos;
	return 0;
fail:
	snprintf(b->error, sizeof(b->error), "%s", err[0] ? err : strerror(-r));
	return r;
}

void vfio_broker_remove_device(struct vfio_broker *b, const char *bdf)
{
	struct vfio_broker_device *d = bdf ? device_by_bdf(b, bdf) : NULL;

	if (!d)
		return;
	kicks_release(b, d);
	b->ops->detach(b, d);
	*d = b->devices[--b->ndevices];
}

/* ---------- the socket ---------- */

int vfio_broker_init(struct vfio_broker *b, const char *socket_path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* The epoll fd only says that something is ready: vfio_broker_handle() tries everything. */
	struct epoll_event ev = { .events = EPOLLIN };
	struct stat st;

	memset(b, 0, sizeof(*b));
	b->listen_fd = b->epoll_fd = -1;
	b->ops = &vfio_ops;
	vfio_pci_container_init(&b->container);
	for (unsigned i = 0; i < VFIO_BROKER_PENDING_MAX; i++)
		b->pending[i].fd = -1;
	if (!socket_path || strlen(socket_path) >= sizeof(sa.sun_path) || strlen(socket_path) >= sizeof(b->socket_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	/* Replace a socket a killed instance left behind, never any other file. */
	if (lstat(socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(socket_path) < 0)
			return -errno;
	}
	b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epoll_fd < 0)
		return -errno;
	b->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (b->listen_fd < 0)
		return -errno;
	/* A device fd is the whole device: only our own user may connect. Linux gives the socket file
	 * the mode of the socket's inode, so it is never there with a wider one; chmod is for other
	 * kernels' sake. */
	if (fchmod(b->listen_fd, 0600) < 0 || bind(b->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	memcpy(b->socket_path, socket_path, strlen(socket_path) + 1);
	if (chmod(socket_path, 0600) < 0 || listen(b->listen_fd, VFIO_BROKER_ACCEPT_BATCH) < 0 ||
	    epoll_ctl(b->epoll_fd, EPOLL_CTL_ADD, b->listen_fd, &ev) < 0)
		return -errno;
	return 0;
}

int vfio_broker_fd(const struct vfio_broker *b)
{
	return b->epoll_fd;
}

static void pending_drop(struct vfio_broker *b, unsigned slot)
{
	if (b->pending[slot].fd < 0)
		return;
	(void)epoll_ctl(b->epoll_fd, EPOLL_CTL_DEL, b->pending[slot].fd, NULL);
	close(b->pending[slot].fd);
	b->pending[slot].fd = -1;
}

static pid_t peer_pid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
}

/* Sends the reply (with fds[0..nfds), the broker's still) without waiting: a new connection's
 * buffer is empty. */
static void reply(struct vfio_broker *b, int conn, uint32_t ivposition, int32_t status, const char *bdf,
		  const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * DDCTL_VFIO_KICKS_MAX)];
		struct cmsghdr align;
	} control;
	uint8_t msg[VFIO_BROKER_REPLY_MAX];
	size_t len = strnlen(bdf, sizeof(msg) - 4);
	uint32_t le = htole32((uint32_t)status);
	struct iovec iov = { .iov_base = msg, .iov_len = 4 + len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	memcpy(msg, &le, 4);
	memcpy(msg + 4, bdf, len);
	if (nfds && nfds <= DDCTL_VFIO_KICKS_MAX) {
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
	do
		n = sendmsg(conn, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && status == 0) {
		status = -errno;
		if (ivposition == DDCTL_VFIO_KICKS)
			snprintf(b->error, sizeof(b->error), "kicks: cannot send %s's eventfds: %s", bdf, strerror(-status));
		else
			snprintf(b->error, sizeof(b->error), "IVPosition %u: cannot send %s's fd: %s", ivposition, bdf,
				 strerror(-status));
	}
	if (status == 0)
		b->handed_out++;
	else
		b->refused++;
	if (b->replied)
		b->replied(b, peer_pid(conn), ivposition, status, bdf);
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

/* The kicks request: the eventfds of the state device's vectors first..first+count-1. */
static void serve_kicks(struct vfio_broker *b, int conn, uint32_t first, uint32_t count)
{
	char err[sizeof(b->error) - 32] = "";
	struct vfio_broker_device *d;
	int i, r;

	if (count < 1 || count > DDCTL_VFIO_KICKS_MAX) {
		snprintf(b->error, sizeof(b->error), "a malformed kicks request (%u vectors, not 1 to %d)", count,
			 DDCTL_VFIO_KICKS_MAX);
		reply(b, conn, UINT32_MAX, -EBADMSG, "", NULL, 0);
		return;
	}
	i = device_newest(b, DDCTL_STATE_IVPOSITION);
	if (i < 0) {
		snprintf(b->error, sizeof(b->error), "kicks %u..%" PRIu64 ": no state device yet", first,
			 (uint64_t)first + count - 1);
		reply(b, conn, DDCTL_VFIO_KICKS, -ENODEV, "", NULL, 0);
		return;
	}
	d = &b->devices[i];
	/* It lost them to a newer state device that has gone since. */
	r = kicks_take(b, d, err, sizeof(err));
	if (r < 0) {
		snprintf(b->error, sizeof(b->error), "kicks: %s", err[0] ? err : strerror(-r));
		reply(b, conn, DDCTL_VFIO_KICKS, -ENODEV, d->bdf, NULL, 0);
		return;
	}
	if ((uint64_t)first + count > d->nkicks) {
		snprintf(b->error, sizeof(b->error), "kicks %u..%" PRIu64 ": the state device %s has %u vectors", first,
			 (uint64_t)first + count - 1, d->bdf, d->nkicks);
		reply(b, conn, DDCTL_VFIO_KICKS, -ERANGE, d->bdf, NULL, 0);
		return;
	}
	/* The broker's own eventfds: SCM_RIGHTS gives the back-end new descriptors of the same
	 * counters, and these stay with the vectors. */
	reply(b, conn, DDCTL_VFIO_KICKS, 0, d->bdf, d->kick_fds + first, count);
}

/* Answers conn's request if it has come: false while it has not (conn stays open), true once conn
 * is done with (answered, or gone). */
static bool serve(struct vfio_broker *b, int conn)
{
	/* MSG_TRUNC: a longer packet reads as its whole length (the rest is dropped), never as a
	 * request. No control buffer: fds sent with a request are closed by the kernel. */
	uint8_t req[VFIO_BROKER_REQUEST_KICKS];
	const struct vfio_broker_device *d;
	char err[sizeof(b->error) - 32] = "";
	uint32_t pos;
	ssize_t n;
	int fd;

	do
		n = recv(conn, req, sizeof(req), MSG_DONTWAIT | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno != EAGAIN && errno != EWOULDBLOCK;
	if (n == 0)
		return true;
	if (n == VFIO_BROKER_REQUEST_KICKS && le32_at(req) == DDCTL_VFIO_KICKS) {
		serve_kicks(b, conn, le32_at(req + 4), le32_at(req + 8));
		return true;
	}
	if (n != VFIO_BROKER_REQUEST_DEVICE) {
		snprintf(b->error, sizeof(b->error), "a malformed request (%zd bytes, not %d, or %d for kicks)", n,
			 VFIO_BROKER_REQUEST_DEVICE, VFIO_BROKER_REQUEST_KICKS);
		reply(b, conn, UINT32_MAX, -EBADMSG, "", NULL, 0);
		return true;
	}
	pos = le32_at(req);
	d = vfio_broker_find(b, pos);
	if (!d) {
		reply(b, conn, pos, -ENODEV, "", NULL, 0);
		return true;
	}
	/* A new open of the device each time: a restarted back-end asks again while the old one's fd
	 * may still be on its way out. */
	fd = b->ops->device_fd(b, d, err, sizeof(err));
	if (fd < 0) {
		snprintf(b->error, sizeof(b->error), "IVPosition %u: %s", pos, err[0] ? err : strerror(-fd));
		reply(b, conn, pos, fd, d->bdf, NULL, 0);
		return true;
	}
	reply(b, conn, pos, 0, d->bdf, &fd, 1);
	close(fd);
	return true;
}

/* A connection whose request is not there yet waits; with every slot taken, the oldest goes. */
static void pending_add(struct vfio_broker *b, int conn)
{
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned slot = 0;

	for (unsigned i = 0; i < VFIO_BROKER_PENDING_MAX; i++) {
		if (b->pending[i].fd < 0) {
			slot = i;
			break;
		}
		if (b->pending[i].since < b->pending[slot].since)
			slot = i;
	}
	if (b->pending[slot].fd >= 0) {
		snprintf(b->error, sizeof(b->error), "more than %d connections without a request: the oldest is dropped",
			 VFIO_BROKER_PENDING_MAX);
		b->refused++;
		pending_drop(b, slot);
	}
	if (epoll_ctl(b->epoll_fd, EPOLL_CTL_ADD, conn, &ev) < 0) {
		snprintf(b->error, sizeof(b->error), "epoll: %s", strerror(errno));
		close(conn);
		return;
	}
	b->pending[slot].fd = conn;
	b->pending[slot].since = ++b->accepts;
}

void vfio_broker_handle(struct vfio_broker *b)
{
	if (b->listen_fd < 0)
		return;
	/* The pending connections first: one that is not ready costs a recv that says EAGAIN. */
	for (unsigned i = 0; i < VFIO_BROKER_PENDING_MAX; i++)
		if (b->pending[i].fd >= 0 && serve(b, b->pending[i].fd))
			pending_drop(b, i);
	for (unsigned i = 0; i < VFIO_BROKER_ACCEPT_BATCH; i++) {
		int conn = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (conn < 0) {
			int e = errno;

			if (e == EINTR || e == ECONNABORTED)
				continue;
			/* EAGAIN: none left. Anything else (EMFILE) is tried again at the next call: the
			 * listening socket stays readable. */
			if (e != EAGAIN && e != EWOULDBLOCK)
				snprintf(b->error, sizeof(b->error), "accept: %s", strerror(e));
			break;
		}
		if (serve(b, conn))
			close(conn);
		else
			pending_add(b, conn);
	}
}

void vfio_broker_close(struct vfio_broker *b)
{
	if (!b)
		return;
	for (unsigned i = 0; i < VFIO_BROKER_PENDING_MAX; i++)
		pending_drop(b, i);
	if (b->listen_fd >= 0) {
		close(b->listen_fd);
		b->listen_fd = -1;
	}
	if (b->socket_path[0]) {
		(void)unlink(b->socket_path);
		b->socket_path[0] = '\0';
	}
	if (b->epoll_fd >= 0) {
		close(b->epoll_fd);
		b->epoll_fd = -1;
	}
	while (b->ndevices)
		vfio_broker_remove_device(b, b->devices[0].bdf);
	vfio_pci_container_close(&b->container);
}
