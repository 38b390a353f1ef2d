/* Unix-socket transport for vhost-user: framing on a non-blocking stream socket, fd passing, and
 * the memory and notification side of host mode. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vu-socket.h"

void vu_socket_rx_init(struct vu_socket_rx *rx)
{
	vu_msg_init(&rx->msg);
	rx->have = 0;
}

void vu_socket_rx_clear(struct vu_socket_rx *rx)
{
	vu_msg_close_fds(&rx->msg);
	vu_socket_rx_init(rx);
}

static int take_fds(struct vu_msg *msg, struct msghdr *mh)
{
	int r = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;
		int fds[VU_MAX_FDS * 2];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > (size_t)VU_MAX_FDS * 2)
			n = (size_t)VU_MAX_FDS * 2;
		memcpy(fds, CMSG_DATA(c), n * sizeof(int));
		for (size_t i = 0; i < n; i++) {
			if (msg->nfds < VU_MAX_FDS)
				msg->fds[msg->nfds++] = fds[i];
			else {
				close(fds[i]);
				r = -EBADF;
			}
		}
	}
	return r;
}

int vu_socket_recv(int fd, struct vu_socket_rx *rx)
{
	const size_t hdr_size = sizeof(struct vu_hdr);
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} control;

	for (;;) {
		size_t want = hdr_size;
		uint8_t *dst;
		struct iovec iov;
		struct msghdr mh = { 0 };
		ssize_t n;
		int r;

		if (rx->have >= hdr_size) {
			if (rx->msg.hdr.size > VU_MAX_PAYLOAD)
				return -EMSGSIZE;
			want = hdr_size + rx->msg.hdr.size;
		}
		if (rx->have == want)
			return 1;
		dst = rx->have < hdr_size ? (uint8_t *)&rx->msg.hdr + rx->have
					  : rx->msg.payload.bytes + (rx->have - hdr_size);
		iov.iov_base = dst;
		iov.iov_len = (rx->have < hdr_size ? hdr_size : want) - rx->have;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		r = take_fds(&rx->msg, &mh);
		if (r < 0)
			return r;
		if (mh.msg_flags & MSG_CTRUNC)
			return -EBADF;
		if (n == 0)
			return -ECONNRESET;
		rx->have += (size_t)n;
	}
}

int vu_socket_send(int fd, struct vu_msg *msg)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec iov[2] = {
		{ .iov_base = &msg->hdr, .iov_len = sizeof(msg->hdr) },
		{ .iov_base = &msg->payload, .iov_len = msg->hdr.size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n;
	int r = 0;

	if (msg->hdr.size > sizeof(msg->payload) || msg->nfds > VU_MAX_FDS) {
		vu_msg_close_fds(msg);
		return -EMSGSIZE;
	}
	if (msg->nfds) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * msg->nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * msg->nfds);
		memcpy(CMSG_DATA(c), msg->fds, sizeof(int) * msg->nfds);
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	/* Replies are small; a front-end that does not read them has its connection dropped. */
	if (n < 0)
		r = -errno;
	else if ((size_t)n != sizeof(msg->hdr) + msg->hdr.size)
		r = -EAGAIN;
	vu_msg_close_fds(msg);
	return r;
}

int vu_socket_listen(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* Replace a socket a previous (killed) instance left behind, never any other file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(path) < 0)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int socket_map_region(void *transport, struct vu_mem_region *r, int fd)
{
	struct stat st;
	uint64_t len;
	void *p;

	if (fstat(fd, &st) < 0)
		return -errno;
	/* memfd, tmpfs or hugetlbfs files: a size we can check, so no access can run past the end of
	 * the file (which would be SIGBUS, not an error). */
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	len = r->mmap_offset + r->size;
	if ((uint64_t)st.st_size < len)
		return -EINVAL;
	if (st.st_blksize > 0 && len % (uint64_t)st.st_blksize)
		len += (uint64_t)st.st_blksize - len % (uint64_t)st.st_blksize;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->map_base = p;
	r->map_len = len;
	r->host = (uint8_t *)p + r->mmap_offset;
	return 0;
}

static void socket_unmap_region(void *transport, struct vu_mem_region *r)
{
	if (r->map_base)
		munmap(r->map_base, r->map_len);
	r->map_base = NULL;
	r->host = NULL;
}

static int socket_map_inflight(void *transport, int fd, uint64_t size, uint64_t offset, void **ret_addr)
{
	struct stat st;
	void *p;

	if (offset % (uint64_t)sysconf(_SC_PAGESIZE))
		return -EINVAL;
	/* Mapping past the end of the file would turn an access into SIGBUS. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < offset || (uint64_t)st.st_size - offset < size)
		return -EINVAL;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
	if (p == MAP_FAILED)
		return -errno;
	*ret_addr = p;
	return 0;
}

static void socket_unmap_inflight(void *transport, void *addr, uint64_t size)
{
	munmap(addr, size);
}

static int socket_notify(void *transport, struct vu_vq *vq)
{
	if (vq->call_fd < 0)
		return 0;
	/* EAGAIN means the counter is saturated: the front-end has a notification pending anyway. */
	if (eventfd_write(vq->call_fd, 1) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

const struct vu_transport_ops vu_socket_transport_ops = {
	.memory_fds = true,
	.map_region = socket_map_region,
	.unmap_region = socket_unmap_region,
	.map_inflight = socket_map_inflight,
	.unmap_inflight = socket_unmap_inflight,
	.notify = socket_notify,
};
