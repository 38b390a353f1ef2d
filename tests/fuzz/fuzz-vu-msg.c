/* Fuzz target: the vhost-user message path as a front-end drives it — bytes on the Unix socket,
 * framed by vu_socket_recv, checked and handled by the device state machine. Messages that need
 * fds get memfds/eventfds (a socket carries no fds from fuzz input). Whatever the bytes, the
 * process must not crash, and every fd must be closed at the end. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vu-dev.h"
#include "vu-socket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int starts;

/* The lowest free fd: the same before and after a run, or the run leaked one. */
static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	return fd;
}

static int be_get_config(void *be, uint32_t off, uint8_t *buf, uint32_t len)
{
	memset(buf, 0x5a, len);
	return 0;
}

static int be_queue_start(void *be, struct vu_vq *vq)
{
	struct vu_elem *elem = malloc(sizeof(*elem));

	starts++;
	/* The rings live in a zeroed memfd: popping must find them empty or fail cleanly. */
	if (elem) {
		while (vu_vq_pop(vq, elem) > 0)
			vu_vq_push(vq, elem->head, 0);
		free(elem);
	}
	return 0;
}

static void be_queue_stop(void *be, struct vu_vq *vq)
{
}

static const struct vu_backend_ops be_ops = {
	.get_config = be_get_config,
	.queue_start = be_queue_start,
	.queue_stop = be_queue_stop,
};

/* Gives msg the fds its request wants, as QEMU would send them. */
static void add_fds(struct vu_msg *msg)
{
	const struct vu_msg_rule *rule = vu_msg_rule(msg->hdr.request);
	int want;

	if (!rule || msg->nfds)
		return;
	want = vu_msg_expected_fds(msg, true);
	if (want > VU_MAX_FDS)
		return; /* a region count the check rejects anyway */
	for (int i = 0; i < want; i++) {
		int fd;

		if (rule->fds == VU_FDS_VRING) {
			fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		} else {
			fd = memfd_create("fuzz", MFD_CLOEXEC);
			if (fd >= 0 && ftruncate(fd, 1 << 20) < 0) {
				close(fd);
				fd = -1;
			}
		}
		if (fd < 0)
			break;
		msg->fds[msg->nfds++] = fd;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vu_dev dev;
	static struct vu_socket_rx rx;
	static struct vu_msg reply;
	struct vu_dev_info info = {
		.features = 0x7fff,
		.protocol_features = VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK) |
				     VU_BIT(VU_PROTOCOL_F_CONFIG) | VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD) |
				     VU_BIT(VU_PROTOCOL_F_RESET_DEVICE),
		.num_queues = 4,
		.max_queue_size = 1024,
		.config_size = 64,
	};
	int sv[2], first_free = lowest_free_fd();
	size_t off = 0;
	bool closed = false;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return 0;
	if (vu_dev_init(&dev, &info, &vu_socket_transport_ops, NULL, &be_ops, NULL) < 0)
		abort();
	vu_socket_rx_init(&rx);
	while (!closed) {
		if (off < size) {
			ssize_t n = write(sv[0], data + off, size - off);

			if (n > 0)
				off += (size_t)n;
		}
		if (off == size)
			shutdown(sv[0], SHUT_WR); /* the reader then sees end of stream */
		for (;;) {
			int r = vu_socket_recv(sv[1], &rx);

			if (r == 0)
				break;
			if (r < 0) {
				closed = true;
				break;
			}
			add_fds(&rx.msg);
			r = vu_dev_handle_msg(&dev, &rx.msg, &reply);
			vu_socket_rx_init(&rx);
			if (r < 0) {
				closed = true; /* the server drops such a front-end */
				break;
			}
			if (reply.hdr.request != VU_REQ_NONE) {
				if (reply.hdr.size > sizeof(reply.payload))
					abort();
				vu_msg_close_fds(&reply);
			}
		}
	}
	vu_socket_rx_clear(&rx);
	vu_dev_reset(&dev);
	close(sv[0]);
	close(sv[1]);
	if (lowest_free_fd() != first_free)
		abort(); /* an fd leaked */
	return 0;
}
