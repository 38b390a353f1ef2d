/* The ivshmem/VFIO transport of the vhost-user core (see vu-ivshmem.h). A session's device is
 * opened when first needed (the memory table), from a device fd ddtk-agent's VFIO broker sends,
 * and closed on reset, so that the DD can hot-unplug it once the session ends; its kicks (the
 * state device's vector eventfds, from the broker too) are asked for at the first kick and kept
 * until then as well. Every offset and size the front-end gives is checked against the BAR it
 * points into: an access past a BAR would fault, not fail. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "ddctl-proto.h"
#include "vu-ivshmem.h"

/* The inflight region's structures hold 64-bit fields. */
#define VU_IVSHMEM_INFLIGHT_ALIGN 8

static const struct vu_ivshmem_opener vfio_opener;
static const struct vu_ivshmem_opener *opener = &vfio_opener;

/* The state device: opened once per process for the first session that maps its inflight region
 * there, closed with the last mapping. */
static struct {
	struct vu_ivshmem_device dev;
	bool open;
	unsigned maps;
} state;

void vu_ivshmem_set_opener(const struct vu_ivshmem_opener *o)
{
	opener = o ? o : &vfio_opener;
}

const char *vu_ivshmem_broker_socket(void)
{
	const char *path = getenv("DDTK_VFIO_SOCKET");

	return path && *path ? path : DDCTL_VFIO_SOCKET;
}

/* ---------- the VFIO broker's client ---------- */

/* A reply is at most the status and a PCI address (15 characters); anything longer is not one. */
#define BROKER_REPLY_MAX (4 + 32)
/* fds taken from one reply: one more than a reply may bring, so that a surplus shows (and is closed). */
#define BROKER_REPLY_FDS (DDCTL_VFIO_KICKS_MAX + 1)
#define BROKER_BDF_MAX sizeof(((struct vfio_pci *)0)->bdf)

enum broker_request_kind {
	BROKER_DEVICE,
	BROKER_KICKS,
};

static void close_all(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* Takes the fds of the SCM_RIGHTS messages of mh into fds[0..*n). */
static void take_fds(struct msghdr *mh, int *fds, unsigned *n)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			/* The control buffer has room for BROKER_REPLY_FDS: never more arrive. */
			if (*n < BROKER_REPLY_FDS)
				fds[(*n)++] = fd;
			else
				close(fd);
		}
	}
}

static const char *broker_status_hint(enum broker_request_kind kind, int status)
{
	if (kind == BROKER_DEVICE && status == -ENODEV)
		return " (the device is not plugged, not bound to vfio-pci yet, or has no ivshmem server)";
	if (kind == BROKER_KICKS && status == -ENODEV)
		return " (no state device with its vectors enabled yet)";
	if (kind == BROKER_KICKS && status == -ERANGE)
		return " (the state device has fewer vectors)";
	return "";
}

/* Sends req (reqlen bytes) on sock and reads the reply: with status 0 it must bring exactly want
 * fds, which go to ret_fds, and a PCI address, which goes to bdf. Otherwise -errno with a line in
 * err naming the request (what), and every fd that came closed. */
static int broker_exchange(int sock, const void *req, size_t reqlen, enum broker_request_kind kind, const char *what,
			   unsigned want, int *ret_fds, char bdf[static BROKER_BDF_MAX], char *err, size_t errlen)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * BROKER_REPLY_FDS)];
		struct cmsghdr align;
	} control;
	uint8_t rep[BROKER_REPLY_MAX + 1];
	struct iovec iov = { .iov_base = rep, .iov_len = sizeof(rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	int fds[BROKER_REPLY_FDS], status, r;
	unsigned nfds = 0;
	size_t textlen;
	uint32_t le;
	ssize_t n;

	do
		n = send(sock, req, reqlen, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)reqlen) {
		r = n < 0 ? -errno : -EIO;
		snprintf(err, errlen, "VFIO broker: cannot ask for %s: %s", what, strerror(-r));
		return r;
	}
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		r = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		snprintf(err, errlen, "VFIO broker: no reply for %s: %s", what, strerror(-r));
		return r;
	}
	take_fds(&mh, fds, &nfds);
	if (n == 0) {
		r = -ECONNRESET;
		snprintf(err, errlen, "VFIO broker: closed the connection without a reply for %s", what);
		goto out;
	}
	/* The reply is peer input like any other: exactly its shape, or refused. */
	r = -EPROTO;
	if (n < 4 || n > BROKER_REPLY_MAX || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		snprintf(err, errlen, "VFIO broker: a malformed reply for %s (%zd bytes%s)", what, n,
			 mh.msg_flags & MSG_CTRUNC ? ", too many fds" : "");
		goto out;
	}
	memcpy(&le, rep, 4);
	status = (int32_t)le32toh(le);
	textlen = (size_t)n - 4;
	if (status > 0 || status < -4095) {
		snprintf(err, errlen, "VFIO broker: reply for %s with status %d", what, status);
		goto out;
	}
	if (status < 0) {
		r = status;
		snprintf(err, errlen, "VFIO broker: %s: %s%s", what, strerror(-status), broker_status_hint(kind, status));
		goto out;
	}
	if (nfds != want) {
		snprintf(err, errlen, "VFIO broker: reply for %s with %u fds, not %u", what, nfds, want);
		goto out;
	}
	if (textlen >= BROKER_BDF_MAX || memchr(rep + 4, '\0', textlen)) {
		snprintf(err, errlen, "VFIO broker: reply for %s with a malformed PCI address", what);
		goto out;
	}
	memcpy(bdf, rep + 4, textlen);
	bdf[textlen] = '\0';
	if (!vfio_pci_bdf_valid(bdf)) {
		snprintf(err, errlen, "VFIO broker: reply for %s with '%s', not a PCI address", what, bdf);
		goto out;
	}
	memcpy(ret_fds, fds, sizeof(int) * want);
	return 0;
out:
	close_all(fds, nfds);
	return r;
}

int vu_ivshmem_broker_ask(int sock, unsigned ivposition, char *ret_bdf, size_t len, char *err, size_t errlen)
{
	uint32_t req = htole32(ivposition);
	char what[32], bdf[BROKER_BDF_MAX];
	int fd, r;

	snprintf(what, sizeof(what), "IVPosition %u", ivposition);
	r = broker_exchange(sock, &req, sizeof(req), BROKER_DEVICE, what, 1, &fd, bdf, err, errlen);
	if (r < 0)
		return r;
	if (snprintf(ret_bdf, len, "%s", bdf) >= (int)len) {
		close(fd);
		snprintf(err, errlen, "VFIO broker: %s: %s: %s", what, bdf, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	return fd;
}

int vu_ivshmem_broker_ask_kicks(int sock, unsigned first, unsigned count, int *ret_fds, char *ret_bdf, size_t len,
				char *err, size_t errlen)
{
	uint32_t req[3] = { htole32(DDCTL_VFIO_KICKS), htole32(first), htole32(count) };
	char what[48], bdf[BROKER_BDF_MAX];
	int fds[DDCTL_VFIO_KICKS_MAX], r;

	if (count < 1 || count > DDCTL_VFIO_KICKS_MAX) {
		snprintf(err, errlen, "VFIO broker: %u kick vectors asked for, not 1 to %d", count, DDCTL_VFIO_KICKS_MAX);
		return -EINVAL;
	}
	for (unsigned i = 0; i < DDCTL_VFIO_KICKS_MAX; i++)
		fds[i] = -1;
	snprintf(what, sizeof(what), "kick vectors %u..%llu", first, (unsigned long long)first + count - 1);
	r = broker_exchange(sock, req, sizeof(req), BROKER_KICKS, what, count, fds, bdf, err, errlen);
	if (r < 0)
		return r;
	if (ret_bdf && snprintf(ret_bdf, len, "%s", bdf) >= (int)len) {
		r = -ENAMETOOLONG;
		snprintf(err, errlen, "VFIO broker: %s: %s: %s", what, bdf, strerror(-r));
		goto out;
	}
	/* The back-end's loop reads a kick when epoll says so: reading one that did not fire must not
	 * block it (the broker's eventfds are non-blocking; the flag is the file's, shared). */
	for (unsigned i = 0; i < count; i++) {
		int fl = fcntl(fds[i], F_GETFL);

		if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0)) {
			r = -errno;
			snprintf(err, errlen, "VFIO broker: %s: %s", what, strerror(-r));
			goto out;
		}
	}
	memcpy(ret_fds, fds, sizeof(int) * count);
	return 0;
out:
	close_all(fds, count);
	return r;
}

/* A new connection to the broker, with the reply timeout set. */
static int broker_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const struct timeval tv = { .tv_sec = VU_IVSHMEM_BROKER_TIMEOUT_MS / 1000,
				    .tv_usec = (suseconds_t)(VU_IVSHMEM_BROKER_TIMEOUT_MS % 1000) * 1000 };
	int sock, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "VFIO broker %s: %s", path, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		r = -errno;
		snprintf(err, errlen, "VFIO broker: socket: %s", strerror(-r));
		return r;
	}
	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		snprintf(err, errlen, "VFIO broker: socket timeout: %s", strerror(-r));
		goto out;
	}
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "VFIO broker %s: %s (is ddtk-agent running?)", path, strerror(-r));
		goto out;
	}
	return sock;
out:
	close(sock);
	return r;
}

int vu_ivshmem_broker_request(const char *path, unsigned ivposition, char *ret_bdf, size_t len, char *err,
			      size_t errlen)
{
	int sock = broker_connect(path, err, errlen), r;

	if (sock < 0)
		return sock;
	r = vu_ivshmem_broker_ask(sock, ivposition, ret_bdf, len, err, errlen);
	close(sock);
	return r;
}

int vu_ivshmem_broker_kicks(const char *path, unsigned first, unsigned count, int *ret_fds, char *err,
			    size_t errlen)
{
	int sock, r;

	/* Checked before connecting: a bad count is the caller's bug, not the broker's. */
	if (count < 1 || count > DDCTL_VFIO_KICKS_MAX) {
		snprintf(err, errlen, "VFIO broker: %u kick vectors asked for, not 1 to %d", count, DDCTL_VFIO_KICKS_MAX);
		return -EINVAL;
	}
	sock = broker_connect(path, err, errlen);
	if (sock < 0)
		return sock;
	r = vu_ivshmem_broker_ask_kicks(sock, first, count, ret_fds, NULL, 0, err, errlen);
	close(sock);
	return r;
}

/* ---------- registers ---------- */

/* BAR0 is 256 bytes: the kernel lets it be mapped only when it starts a page, which several
 * devices behind one bridge need not do. Otherwise each access is a pread/pwrite of the device. */
static int reg_read(const struct vu_ivshmem_device *d, unsigned off, uint32_t *ret)
{
	uint32_t v;
	int r;

	if (d->regs) {
		*ret = le32toh(d->regs[off / 4]);
		return 0;
	}
	r = vfio_pci_region_read(&d->pci, VFIO_PCI_BAR0_REGION_INDEX, off, &v, sizeof(v));
	if (r == 0)
		*ret = le32toh(v);
	return r;
}

static int reg_write(const struct vu_ivshmem_device *d, unsigned off, uint32_t v)
{
	v = htole32(v);
	if (d->regs) {
		d->regs[off / 4] = v;
		return 0;
	}
	return vfio_pci_region_write(&d->pci, VFIO_PCI_BAR0_REGION_INDEX, off, &v, sizeof(v));
}

/* ---------- opening through VFIO ---------- */

/* The device's registers and memory only: a Doorbell write is the CPU's (no Bus Master needed), and
 * kicks are the state device's vectors, which the broker holds. */
static int vfio_adopt(int device_fd, const char *bdf, struct vu_ivshmem_device *d, char *err, size_t errlen)
{
	uint16_t id[2];
	uint32_t pos = 0;
	void *p;
	uint64_t size;
	int r;

	memset(d, 0, sizeof(*d));
	r = vfio_pci_adopt(&d->pci, device_fd, bdf, err, errlen);
	if (r < 0)
		return r;
	r = vfio_pci_region_read(&d->pci, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, id, sizeof(id));
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read its config space: %s", bdf, strerror(-r));
		goto out;
	}
	if (le16toh(id[0]) != IVSHMEM_VENDOR_ID || le16toh(id[1]) != IVSHMEM_DEVICE_ID) {
		r = -ENODEV;
		snprintf(err, errlen, "%s is %04x:%04x, not an ivshmem device (%04x:%04x)", bdf, le16toh(id[0]),
			 le16toh(id[1]), IVSHMEM_VENDOR_ID, IVSHMEM_DEVICE_ID);
		goto out;
	}
	r = vfio_pci_map_bar(&d->pci, 0, &p, &size);
	if (r == 0 && size >= IVSHMEM_REG_DOORBELL + 4)
		d->regs = p;
	else if (r < 0 && r != -ENOTSUP) {
		snprintf(err, errlen, "%s: cannot map BAR0: %s", bdf, strerror(-r));
		goto out;
	}
	r = reg_read(d, IVSHMEM_REG_IVPOSITION, &pos);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read IVPosition: %s", bdf, strerror(-r));
		goto out;
	}
	d->ivposition = pos;
	r = vfio_pci_map_bar(&d->pci, IVSHMEM_SHM_BAR, &p, &size);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot map BAR2 (the shared memory): %s", bdf, strerror(-r));
		goto out;
	}
	d->shm = p;
	d->shm_size = size;
	return 0;
out:
	vfio_pci_close(&d->pci);
	return r;
}

static void vfio_close(struct vu_ivshmem_device *d)
{
	vfio_pci_close(&d->pci);
}

static const struct vu_ivshmem_opener vfio_opener = {
	.adopt = vfio_adopt,
	.close = vfio_close,
};

/* The default open: the device fd from the broker, made a device by the opener's adopt. */
static int broker_open(unsigned ivposition, struct vu_ivshmem_device *d, char *err, size_t errlen)
{
	char bdf[sizeof(d->pci.bdf)];
	int fd = vu_ivshmem_broker_request(vu_ivshmem_broker_socket(), ivposition, bdf, sizeof(bdf), err, errlen);

	if (fd < 0)
		return fd;
	return opener->adopt(fd, bdf, d, err, errlen);
}

/* ---------- devices ---------- */

/* Opens device ivposition and checks that it is the one the broker promised. */
static int device_open(unsigned ivposition, struct vu_ivshmem_device *d, char *err, size_t errlen)
{
	int r = opener->open ? opener->open(ivposition, d, err, errlen) : broker_open(ivposition, d, err, errlen);

	if (r < 0)
		return r;
	/* The broker's table may be stale (a device replaced behind its back), or the device not yet
	 * connected to its server (IVPosition reads -1 then). */
	if (d->ivposition != ivposition) {
		snprintf(err, errlen, "the device %s%s%sthe VFIO broker gave for IVPosition %u reports IVPosition %d",
			 d->pci.bdf[0] ? "(" : "", d->pci.bdf, d->pci.bdf[0] ? ") " : "", ivposition, (int)d->ivposition);
		opener->close(d);
		return -ENXIO;
	}
	return 0;
}

static void state_put(void)
{
	if (!state.maps || --state.maps)
		return;
	opener->close(&state.dev);
	state.open = false;
}

/* A reference of session iv on the state device, opened with the first. */
static int state_get(struct vu_ivshmem *iv)
{
	if (!state.open) {
		char err[sizeof(iv->error) - 16] = "";
		int r = device_open(DDCTL_STATE_IVPOSITION, &state.dev, err, sizeof(err));
		if (r < 0) {
			snprintf(iv->error, sizeof(iv->error), "state device: %s", err);
			return r;
		}
		state.open = true;
	}
	state.maps++;
	iv->state_maps++;
	return 0;
}

static void state_unref(struct vu_ivshmem *iv)
{
	if (!iv->state_maps)
		return;
	iv->state_maps--;
	state_put();
}

static int session_open(struct vu_ivshmem *iv)
{
	char err[sizeof(iv->error) - 16];
	int r;

	if (iv->open)
		return 0;
	err[0] = '\0';
	r = device_open(iv->ivposition, &iv->dev, err, sizeof(err));
	if (r < 0) {
		snprintf(iv->error, sizeof(iv->error), "session %u: %s", iv->ivposition, err);
		return r;
	}
	/* The Doorbell's peer id is the bridge's to choose (it changes with the client's call fds):
	 * it is in the session's control block of the state device. */
	r = state_get(iv);
	if (r == 0 && state.dev.shm_size < DDCTL_STATE_CTL_OFFSET(iv->ivposition) + sizeof(uint32_t)) {
		snprintf(iv->error, sizeof(iv->error), "session %u: the state device is too small", iv->ivposition);
		state_unref(iv);
		r = -EINVAL;
	}
	if (r < 0) {
		opener->close(&iv->dev);
		memset(&iv->dev, 0, sizeof(iv->dev));
		return r;
	}
	iv->peer_word = (const uint32_t *)(state.dev.shm + DDCTL_STATE_CTL_OFFSET(iv->ivposition));
	iv->open = true;
	return 0;
}

/* The session's kicks, asked for once: a session started again after a reset asks again, since
 * the state device may have been replaced meanwhile (a new one has new eventfds). */
static int kicks_get(struct vu_ivshmem *iv)
{
	char err[sizeof(iv->error) - 16] = "";
	int r;

	if (iv->kicks_held)
		return 0;
	r = opener->kicks ? opener->kicks(iv->kick_vector, iv->nkicks, iv->kick_fds, err, sizeof(err))
			  : vu_ivshmem_broker_kicks(vu_ivshmem_broker_socket(), iv->kick_vector, iv->nkicks, iv->kick_fds,
						    err, sizeof(err));
	if (r < 0) {
		snprintf(iv->error, sizeof(iv->error), "session %u: %s", iv->ivposition, err);
		return r;
	}
	iv->kicks_held = true;
	return 0;
}

static void session_release(struct vu_ivshmem *iv)
{
	for (unsigned k = 1; k < DDCTL_MEM_FILES_MAX; k++) {
		if (!iv->mem_open[k])
			continue;
		opener->close(&iv->mem_dev[k]);
		memset(&iv->mem_dev[k], 0, sizeof(iv->mem_dev[k]));
		iv->mem_open[k] = false;
	}
	if (iv->kicks_held) {
		/* The queues have their own copies (closed by the core): these were only the source. */
		close_all(iv->kick_fds, iv->nkicks);
		iv->kicks_held = false;
	}
	if (!iv->open)
		return;
	opener->close(&iv->dev);
	iv->peer_word = NULL;
	state_unref(iv);
	iv->open = false;
	memset(&iv->dev, 0, sizeof(iv->dev));
}

int vu_ivshmem_init(struct vu_ivshmem *iv, unsigned ivposition, unsigned kick_vector, unsigned nkicks)
{
	memset(iv, 0, sizeof(*iv));
	iv->ivposition = ivposition;
	iv->kick_vector = kick_vector;
	iv->nkicks = nkicks;
	if (ivposition < 1 || ivposition > DDCTL_SESSIONS_MAX) {
		snprintf(iv->error, sizeof(iv->error), "session %u: not a session (1 to %d)", ivposition,
			 DDCTL_SESSIONS_MAX);
		return -EINVAL;
	}
	if (nkicks < 1 || nkicks > DDCTL_VFIO_KICKS_MAX || kick_vector >= DDCTL_KICK_VECTORS_MAX ||
	    nkicks > DDCTL_KICK_VECTORS_MAX - kick_vector) {
		snprintf(iv->error, sizeof(iv->error),
			 "session %u: %u queues kicked from state-device vector %u: not within the %d vectors", ivposition,
			 nkicks, kick_vector, DDCTL_KICK_VECTORS_MAX);
		iv->nkicks = 0;
		return -EINVAL;
	}
	return 0;
}

void vu_ivshmem_close(struct vu_ivshmem *iv)
{
	session_release(iv);
	while (iv->state_maps) {
		iv->state_maps--;
		state_put();
	}
}

/* ---------- transport ops ---------- */

static int ivshmem_map_region(void *transport, struct vu_mem_region *r, int fd)
{
	struct vu_ivshmem *iv = transport;
	int ret;

	if (fd >= 0) {
		/* memory_fds is false: vu-msg lets no fd through. */
		snprintf(iv->error, sizeof(iv->error), "session %u: a memory region with an fd", iv->ivposition);
		return -EINVAL;
	}
	ret = session_open(iv);
	if (ret < 0)
		return ret;
	/* Which file (device) the region is in, and where in it. */
	uint64_t file = r->mmap_offset >> DDCTL_MEM_FILE_SHIFT;
	uint64_t offset = r->mmap_offset & ((UINT64_C(1) << DDCTL_MEM_FILE_SHIFT) - 1);
	const struct vu_ivshmem_device *d = &iv->dev;
	if (file >= DDCTL_MEM_FILES_MAX) {
		snprintf(iv->error, sizeof(iv->error), "session %u: memory region in file %llu (at most %d files)",
			 iv->ivposition, (unsigned long long)file, DDCTL_MEM_FILES_MAX);
		return -EINVAL;
	}
	if (file > 0) {
		unsigned k = (unsigned)file, pos = ddctl_mem_ivposition(iv->ivposition, k);
		if (!iv->mem_open[k]) {
			char err[sizeof(iv->error) - 48];
			err[0] = '\0';
			ret = device_open(pos, &iv->mem_dev[k], err, sizeof(err));
			if (ret < 0) {
				snprintf(iv->error, sizeof(iv->error), "session %u: memory file %u: %s", iv->ivposition, k,
					 err);
				return ret;
			}
			iv->mem_open[k] = true;
		}
		d = &iv->mem_dev[k];
	}
	/* vu_mem_from_msg() made sure that the region does not wrap; neither may it leave BAR2. */
	if (offset > d->shm_size || r->size > d->shm_size - offset) {
		snprintf(iv->error, sizeof(iv->error),
			 "session %u: memory region of %#llx bytes at offset %#llx is outside BAR2 of memory "
			 "file %u (%#llx bytes)", iv->ivposition, (unsigned long long)r->size, (unsigned long long)offset,
			 (unsigned)file, (unsigned long long)d->shm_size);
		return -EINVAL;
	}
	/* BAR2 stays mapped as long as the device is open: nothing to map or unmap per region. */
	r->map_base = NULL;
	r->map_len = 0;
	r->host = d->shm + offset;
	return 0;
}

static void ivshmem_unmap_region(void *transport, struct vu_mem_region *r)
{
	r->host = NULL;
}

static int ivshmem_map_inflight(void *transport, int fd, uint64_t size, uint64_t offset, void **ret_addr)
{
	struct vu_ivshmem *iv = transport;
	const uint64_t area = (uint64_t)iv->ivposition * DDCTL_STATE_AREA;

	if (fd >= 0) {
		/* GET_INFLIGHT_FD: the region must outlive the DD, so the bridge makes it on the host. */
		snprintf(iv->error, sizeof(iv->error),
			 "session %u: the inflight region comes from the state device, not from us", iv->ivposition);
		return -EOPNOTSUPP;
	}
	/* Each session has its own area of the state device: one session can never write another's
	 * inflight region, whatever the front-end says. */
	if (!size || offset < area || offset - area > DDCTL_STATE_AREA || size > DDCTL_STATE_AREA - (offset - area) ||
	    offset % VU_IVSHMEM_INFLIGHT_ALIGN) {
		snprintf(iv->error, sizeof(iv->error),
			 "session %u: inflight region of %#llx bytes at %#llx is not in its area of the state device "
			 "(%#llx bytes at %#llx)", iv->ivposition, (unsigned long long)size,
			 (unsigned long long)offset, (unsigned long long)DDCTL_STATE_AREA, (unsigned long long)area);
		return -EINVAL;
	}
	int r = state_get(iv);
	if (r < 0)
		return r;
	if (offset > state.dev.shm_size || size > state.dev.shm_size - offset) {
		snprintf(iv->error, sizeof(iv->error), "session %u: inflight region ends past the state device (%#llx bytes)",
			 iv->ivposition, (unsigned long long)state.dev.shm_size);
		state_unref(iv);
		return -EINVAL;
	}
	*ret_addr = state.dev.shm + offset;
	return 0;
}

static void ivshmem_unmap_inflight(void *transport, void *addr, uint64_t size)
{
	struct vu_ivshmem *iv = transport;

	state_unref(iv);
}

static int ivshmem_kick_fd(void *transport, unsigned index)
{
	struct vu_ivshmem *iv = transport;
	int fd, r;

	if (index >= iv->nkicks) {
		snprintf(iv->error, sizeof(iv->error), "session %u: queue %u has no kick vector (the session has %u)",
			 iv->ivposition, index, iv->nkicks);
		return -EINVAL;
	}
	r = kicks_get(iv);
	if (r < 0)
		return r;
	/* The vector's eventfd stays the session's (closed on reset); the queue gets its own fd for
	 * the same counter, which the core closes when the ring stops. */
	fd = fcntl(iv->kick_fds[index], F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(iv->error, sizeof(iv->error), "session %u: queue %u: %s", iv->ivposition, index, strerror(errno));
		return r;
	}
	return fd;
}

static int ivshmem_notify(void *transport, struct vu_vq *vq)
{
	struct vu_ivshmem *iv = transport;

	if (!iv->open)
		return -ENODEV;
	/* The bridge gives the client's peer a call vector for each of the session's queues only. */
	if (vq->index >= iv->nkicks)
		return -EINVAL;
	/* The used entries and used->idx were stored into BAR2 (the client's RAM); the Doorbell is
	 * a store to BAR0 (uncached MMIO, which traps to the DD's hypervisor and signals the
	 * client's call eventfd). The client must find the used entries when it takes the
	 * interrupt: the fence keeps the RAM stores before the MMIO store (on x86 stores are
	 * ordered anyway and this costs an mfence next to a VM exit; weaker CPUs need it). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	/* The bridge stores a new peer id after QEMU got that peer's vectors (acquire: pairs with
	 * its release store); a Doorbell to the previous one may be lost, which the bridge covers
	 * with one interrupt of its own after the change. */
	uint32_t peer = __atomic_load_n(iv->peer_word, __ATOMIC_ACQUIRE);
	if (peer < DDCTL_PEER_ID_FIRST || peer > UINT16_MAX)
		return -EAGAIN;
	return reg_write(&iv->dev, IVSHMEM_REG_DOORBELL, ivshmem_doorbell((uint16_t)peer, (uint16_t)vq->index));
}

static void ivshmem_reset(void *transport)
{
	struct vu_ivshmem *iv = transport;

	/* Everything is unmapped and every queue's kick fd closed: let the DD unplug the device, and
	 * ask for the kicks again next time (the state device may be another by then). */
	session_release(iv);
}

static const char *ivshmem_last_error(void *transport)
{
	const struct vu_ivshmem *iv = transport;

	return iv->error;
}

const struct vu_transport_ops vu_ivshmem_transport_ops = {
	.memory_fds = false,
	.map_region = ivshmem_map_region,
	.unmap_region = ivshmem_unmap_region,
	.map_inflight = ivshmem_map_inflight,
	.unmap_inflight = ivshmem_unmap_inflight,
	.notify = ivshmem_notify,
	.kick_fd = ivshmem_kick_fd,
	.reset = ivshmem_reset,
	.last_error = ivshmem_last_error,
};

int vu_ivshmem_kicks_check(const char *prog, unsigned session, bool given, unsigned first, unsigned count)
{
	if (!session) {
		if (!given)
			return 0;
		fprintf(stderr, "%s: kick-vector= is for the driver domain: it goes with ivshmem=\n", prog);
		return -EINVAL;
	}
	if (!given) {
		fprintf(stderr, "%s: ivshmem session %u needs kick-vector=V (the state-device vector of its first "
			"queue's kicks)\n", prog, session);
		return -EINVAL;
	}
	if (first >= DDCTL_KICK_VECTORS_MAX || count > DDCTL_KICK_VECTORS_MAX - first) {
		fprintf(stderr, "%s: ivshmem session %u: kick-vector=%u with %u virtqueues goes past the state "
			"device's %d vectors\n", prog, session, first, count, DDCTL_KICK_VECTORS_MAX);
		return -EINVAL;
	}
	return 0;
}

int vu_ivshmem_kicks_apart(const char *prog, unsigned s1, unsigned first1, unsigned count1, unsigned s2,
			   unsigned first2, unsigned count2)
{
	if (first2 >= first1 + count1 || first1 >= first2 + count2)
		return 0;
	fprintf(stderr, "%s: ivshmem sessions %u and %u share kick vectors (%u..%u and %u..%u)\n", prog, s1, s2,
		first1, first1 + count1 - 1, first2, first2 + count2 - 1);
	return -EINVAL;
}
