/* The bridge as ivshmem server (QEMU's docs/specs/ivshmem-spec.rst) of one ivshmem-doorbell device
 * of the DD: the DD's QEMU connects when the device is plugged and gets the shared memory (a
 * client's RAM fd, or the state memfd) and the eventfds. A session's device has no own vectors;
 * the vectors of a peer whose id the bridge publishes in the state device (ddctl-proto.h) are the
 * client's call eventfds (a Doorbell write in the DD signals the client). The state device's own
 * vectors are the kicks: one eventfd per virtqueue of every session, the bridge's (bridge-kicks.c
 * forwards the clients' kicks to them). The kernel carries every call; a kick passes one bridge
 * thread. A further memory file's device gets its memory only (ddctl-proto.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"
#include "vu-backend.h"

/* One message: a little-endian int64 and at most one fd. */
static int iv_send(int fd, int64_t value, int passed_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &value, .iov_len = sizeof(value) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (passed_fd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &passed_fd, sizeof(int));
	}
	/* Eight bytes on a fresh Unix socket: never partial; a full buffer means a QEMU that does
	 * not read, which the caller treats as a broken connection. */
	ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	return n == sizeof(value) ? 0 : -EIO;
}

static struct bridge_session *iv_session(struct bridge *b, struct bridge_ivshmem *iv)
{
	return iv == &b->state_iv || iv->mem_only ? NULL : vu_container_of(iv, struct bridge_session, iv);
}

/* Peer vector i of session s: queue i's call eventfd. */
static int vector_fd(struct bridge_session *s, struct bridge_ivshmem *iv, unsigned i)
{
	if (i < s->nqueues && s->q[i].call_fd >= 0)
		return s->q[i].call_fd;
	return iv->dummy_fd;
}

static int send_peer_vectors(struct bridge *b, struct bridge_ivshmem *iv)
{
	struct bridge_session *s = iv_session(b, iv);
	int r;

	if (!s)
		return 0;
	for (unsigned i = 0; i < iv->vectors; i++) {
		r = iv_send(iv->conn_fd, iv->peer_id, vector_fd(s, iv, i));
		if (r < 0)
			return r;
	}
	return 0;
}

/* Tells the DD's back-end which peer id its Doorbell writes go to. */
static void publish_peer_id(struct bridge *b, struct bridge_ivshmem *iv)
{
	uint32_t *word = (uint32_t *)(b->state_map + DDCTL_STATE_CTL_OFFSET(iv->id));

	/* Release: QEMU was sent the peer's vectors before (the back-end reads with acquire). */
	__atomic_store_n(word, iv->peer_id, __ATOMIC_RELEASE);
}

static int send_setup(struct bridge *b, struct bridge_ivshmem *iv)
{
	struct bridge_session *s = iv_session(b, iv);
	int r;

	if (iv->mem_fd < 0)
		return -ENODEV;
	iv->peer_id = DDCTL_PEER_ID_FIRST;
	r = iv_send(iv->conn_fd, 0, -1); /* protocol version */
	if (r == 0)
		r = iv_send(iv->conn_fd, iv->id, -1);
	if (r == 0)
		r = iv_send(iv->conn_fd, -1, iv->mem_fd);
	if (r == 0)
		r = send_peer_vectors(b, iv);
	/* The state device's own vectors, the kicks: QEMU numbers a peer's vectors in the order
	 * they come. A session's device gets none (see ddctl-proto.h). */
	for (unsigned i = 0; r == 0 && !s && !iv->mem_only && i < iv->vectors; i++) {
		int fd = bridge_kicks_vector_fd(b, i);
		r = fd >= 0 ? iv_send(iv->conn_fd, iv->id, fd) : -ERANGE;
	}
	if (r == 0 && s)
		publish_peer_id(b, iv);
	return r;
}

static void on_conn(struct vu_watch *w, uint32_t events)
{
	struct bridge_ivshmem *iv = vu_container_of(w, struct bridge_ivshmem, conn_watch);
	char buf[64];

	/* QEMU never sends anything; readable means it closed (device unplugged or DD gone). */
	ssize_t n = recv(iv->conn_fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (events & (EPOLLHUP | EPOLLERR)))
		bridge_ivshmem_drop(iv);
}

static void on_listen(struct vu_watch *w, uint32_t events)
{
	struct bridge_ivshmem *iv = vu_container_of(w, struct bridge_ivshmem, listen_watch);
	struct bridge *b = iv->b;
	int fd = accept4(iv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int r;

	if (fd < 0)
		return;
	/* One device, one QEMU: a new connection (the next DD) replaces a stale one. */
	bridge_ivshmem_drop(iv);
	iv->conn_fd = fd;
	r = send_setup(b, iv);
	if (r < 0) {
		fprintf(stderr, "ddtk-bridge: ivshmem device %u: setup failed: %s\n", iv->id, strerror(-r));
		bridge_ivshmem_drop(iv);
		return;
	}
	vu_loop_add(&b->loop, &iv->conn_watch, fd, EPOLLIN, on_conn);
}

int bridge_ivshmem_init(struct bridge *b, struct bridge_ivshmem *iv, unsigned id, const char *path)
{
	int r;

	memset(iv, 0, sizeof(*iv));
	iv->b = b;
	iv->id = id;
	iv->listen_fd = iv->conn_fd = iv->mem_fd = -1;
	snprintf(iv->path, sizeof(iv->path), "%s", path);
	iv->dummy_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (iv->dummy_fd < 0)
		return -errno;
	r = vu_socket_listen(path, &iv->listen_fd);
	if (r < 0)
		return r;
	/* libvirt's QEMU (libvirt-qemu:kvm) connects: group kvm, not the world. */
	gid_t gid;
	r = vu_parse_group("kvm", &gid);
	if (r == 0)
		r = vu_socket_set_group(path, gid);
	if (r < 0)
		return r;
	return vu_loop_add(&b->loop, &iv->listen_watch, iv->listen_fd, EPOLLIN, on_listen);
}

void bridge_ivshmem_drop(struct bridge_ivshmem *iv)
{
	if (iv->conn_fd < 0)
		return;
	struct bridge *b = iv->b;

	vu_loop_del(&b->loop, &iv->conn_watch);
	close(iv->conn_fd);
	iv->conn_fd = -1;
	/* QEMU closes the connection when the device goes: the surest sign it is gone. */
	bridge_device_detached(b, iv->id, 0, NULL);
}

void bridge_ivshmem_close(struct bridge_ivshmem *iv)
{
	bridge_ivshmem_drop(iv);
	if (iv->listen_fd >= 0) {
		vu_loop_del(&iv->b->loop, &iv->listen_watch);
		close(iv->listen_fd);
		unlink(iv->path);
		iv->listen_fd = -1;
	}
	if (iv->dummy_fd >= 0)
		close(iv->dummy_fd);
	iv->dummy_fd = -1;
}

int bridge_ivshmem_resend_peer(struct bridge *b, struct bridge_ivshmem *iv)
{
	int r;

	if (iv->conn_fd < 0)
		return 0;
	/* The new set under a new id (see ddctl-proto.h: an id is never connected twice), published
	 * once QEMU has it. The old id is never disconnected: QEMU 7.2 frees a disconnected peer's
	 * vectors and frees them again when the device goes (a double free that crashes the DD), so
	 * its eventfds stay with the device until it is unplugged. A Doorbell the DD wrote to the
	 * old id meanwhile reached a call fd the client no longer reads: the bridge signals every
	 * call once, shortly after. */
	struct bridge_session *s = iv_session(b, iv);
	if (iv->peer_id >= UINT16_MAX) {
		/* Ids used up (65k call changes): a fresh device starts again from the first. */
		if (s)
			s->want_replug = true;
		return 0;
	}
	iv->peer_id++;
	r = send_peer_vectors(b, iv);
	if (r == 0)
		publish_peer_id(b, iv);
	if (r < 0) {
		bridge_ivshmem_drop(iv);
		return r;
	}
	iv->poke_at_ms = bridge_now_ms() + 100;
	return 0;
}
