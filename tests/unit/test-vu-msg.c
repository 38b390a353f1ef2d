/* Unit tests of vhost-user message validation and of the device state machine: what a front-end
 * may send, strict feature negotiation, ring-size rules, fds never leaked, REPLY_ACK, and a queue
 * that starts and stops when it should. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vu-dev.h"
#include "vu-socket.h"

static struct vu_msg msg, reply;

static void req(uint32_t request, uint32_t size)
{
	vu_msg_init(&msg);
	msg.hdr.request = request;
	msg.hdr.flags = VU_FLAG_VERSION;
	msg.hdr.size = size;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_header(void **state)
{
	req(VU_REQ_GET_FEATURES, 0);
	assert_int_equal(vu_msg_check(&msg, true), 0);
	msg.hdr.size = 8;
	assert_int_equal(vu_msg_check(&msg, true), 0);
	msg.hdr.size = 4;
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	req(VU_REQ_GET_FEATURES, 0);
	msg.hdr.flags = 0;
	assert_int_equal(vu_msg_check(&msg, true), -EPROTO);
	msg.hdr.flags = VU_FLAG_VERSION | VU_FLAG_REPLY;
	assert_int_equal(vu_msg_check(&msg, true), -EPROTO);
	req(99, 0);
	assert_int_equal(vu_msg_check(&msg, true), -EOPNOTSUPP);
	req(VU_REQ_SET_LOG_BASE, 8);
	assert_int_equal(vu_msg_check(&msg, true), -EOPNOTSUPP);
	req(VU_REQ_SET_FEATURES, VU_MAX_PAYLOAD + 1);
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	assert_string_equal(vu_request_name(VU_REQ_SET_VRING_KICK), "SET_VRING_KICK");
	assert_string_equal(vu_request_name(1000), "UNKNOWN");
}

static void test_sizes(void **state)
{
	req(VU_REQ_SET_VRING_NUM, sizeof(struct vu_vring_state));
	assert_int_equal(vu_msg_check(&msg, true), 0);
	msg.hdr.size++;
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	req(VU_REQ_SET_VRING_ADDR, sizeof(struct vu_vring_addr) - 8);
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	req(VU_REQ_GET_CONFIG, VU_CONFIG_HDR_SIZE + 60);
	msg.payload.config.size = 60;
	assert_int_equal(vu_msg_check(&msg, true), 0);
	msg.payload.config.size = 61;
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	msg.payload.config.size = VU_MAX_CONFIG_SIZE + 1;
	msg.hdr.size = VU_CONFIG_HDR_SIZE + VU_MAX_CONFIG_SIZE + 1;
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	req(VU_REQ_GET_INFLIGHT_FD, sizeof(struct vu_inflight_msg));
	assert_int_equal(vu_msg_check(&msg, true), 0);
}

static void test_mem_table_shape(void **state)
{
	req(VU_REQ_SET_MEM_TABLE, 8 + 2 * 32);
	msg.payload.memory.nregions = 2;
	msg.nfds = 2;
	msg.fds[0] = msg.fds[1] = -1;
	assert_int_equal(vu_msg_check(&msg, true), 0);
	msg.nfds = 1;
	assert_int_equal(vu_msg_check(&msg, true), -EBADF);
	msg.nfds = 2;
	msg.hdr.size = 8 + 3 * 32;
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	msg.payload.memory.nregions = 0;
	msg.hdr.size = 8;
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	msg.payload.memory.nregions = VU_MAX_MEM_REGIONS + 1;
	msg.hdr.size = 8 + (VU_MAX_MEM_REGIONS + 1) * 32;
	assert_int_equal(vu_msg_check(&msg, true), -EMSGSIZE);
	/* A transport that finds the memory itself (the driver domain's) sends no fds. */
	msg.payload.memory.nregions = 2;
	msg.hdr.size = 8 + 2 * 32;
	msg.nfds = 0;
	assert_int_equal(vu_msg_check(&msg, false), 0);
	msg.nfds = 2;
	assert_int_equal(vu_msg_check(&msg, false), -EBADF);
	req(VU_REQ_SET_INFLIGHT_FD, sizeof(struct vu_inflight_msg));
	assert_int_equal(vu_msg_check(&msg, false), 0);
	assert_int_equal(vu_msg_check(&msg, true), -EBADF);
}

static void test_vring_fds(void **state)
{
	req(VU_REQ_SET_VRING_KICK, 8);
	msg.payload.u64 = 0;
	assert_int_equal(vu_msg_check(&msg, true), -EBADF); /* no fd, and no NOFD flag */
	msg.nfds = 1;
	msg.fds[0] = -1;
	assert_int_equal(vu_msg_check(&msg, true), 0);
	msg.payload.u64 = VU_VRING_NOFD;
	assert_int_equal(vu_msg_check(&msg, true), -EBADF); /* an fd although NOFD */
	msg.nfds = 0;
	assert_int_equal(vu_msg_check(&msg, true), 0);
}

/* ---- the device ---- */

static struct vu_dev dev;
static int queue_starts, queue_stops;

static int be_get_config(void *be, uint32_t off, uint8_t *buf, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(off + i);
	return 0;
}

static int be_queue_start(void *be, struct vu_vq *vq)
{
	queue_starts++;
	return 0;
}

static void be_queue_stop(void *be, struct vu_vq *vq)
{
	queue_stops++;
}

static const struct vu_backend_ops be_ops = {
	.get_config = be_get_config,
	.queue_start = be_queue_start,
	.queue_stop = be_queue_stop,
};

static int dev_setup(void **state)
{
	struct vu_dev_info info = {
		.features = UINT64_C(1) << 1,
		.protocol_features = VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK) |
				     VU_BIT(VU_PROTOCOL_F_CONFIG) | VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD),
		.num_queues = 2,
		.max_queue_size = 256,
		.config_size = 32,
	};

	queue_starts = queue_stops = 0;
	return vu_dev_init(&dev, &info, &vu_socket_transport_ops, NULL, &be_ops, NULL);
}

static int dev_teardown(void **state)
{
	vu_dev_reset(&dev);
	return 0;
}

static int send_u64(uint32_t request, uint64_t v)
{
	req(request, 8);
	msg.payload.u64 = v;
	return vu_dev_handle_msg(&dev, &msg, &reply);
}

static int send_state(uint32_t request, uint32_t index, uint32_t num)
{
	req(request, sizeof(struct vu_vring_state));
	msg.payload.state.index = index;
	msg.payload.state.num = num;
	return vu_dev_handle_msg(&dev, &msg, &reply);
}

static int send_fd(uint32_t request, uint64_t v, int fd)
{
	req(request, 8);
	msg.payload.u64 = v;
	msg.nfds = 1;
	msg.fds[0] = fd;
	return vu_dev_handle_msg(&dev, &msg, &reply);
}

static void test_dev_features(void **state)
{
	req(VU_REQ_GET_FEATURES, 0);
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(reply.hdr.request, VU_REQ_GET_FEATURES);
	assert_int_equal(reply.hdr.flags, VU_FLAG_VERSION | VU_FLAG_REPLY);
	assert_true(reply.payload.u64 & VU_BIT(VU_F_PROTOCOL_FEATURES));
	assert_true(reply.payload.u64 & VU_BIT(VU_F_RING_EVENT_IDX));
	assert_true(reply.payload.u64 & 2);
	/* a bit never offered */
	assert_int_equal(send_u64(VU_REQ_SET_FEATURES, UINT64_C(1) << 5), -EINVAL);
	assert_int_equal(send_u64(VU_REQ_SET_FEATURES, VU_BIT(VU_F_PROTOCOL_FEATURES) | 2), 0);
	assert_int_equal(reply.hdr.request, VU_REQ_NONE); /* no reply without REPLY_ACK */
	assert_int_equal(send_u64(VU_REQ_SET_PROTOCOL_FEATURES, UINT64_C(1) << 20), -EINVAL);
}

static void test_dev_protocol_gated(void **state)
{
	/* GET_CONFIG needs the CONFIG protocol feature. */
	req(VU_REQ_GET_CONFIG, VU_CONFIG_HDR_SIZE + 4);
	msg.payload.config.size = 4;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), -EPROTO);
	assert_int_equal(send_u64(VU_REQ_SET_PROTOCOL_FEATURES, VU_BIT(VU_PROTOCOL_F_CONFIG)), 0);
	req(VU_REQ_GET_CONFIG, VU_CONFIG_HDR_SIZE + 4);
	msg.payload.config.offset = 28;
	msg.payload.config.size = 4;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(reply.hdr.size, VU_CONFIG_HDR_SIZE + 4);
	assert_int_equal(reply.payload.config.region[3], 31);
	/* past the end of config space */
	req(VU_REQ_GET_CONFIG, VU_CONFIG_HDR_SIZE + 8);
	msg.payload.config.offset = 28;
	msg.payload.config.size = 8;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), -EINVAL);
	req(VU_REQ_GET_CONFIG, VU_CONFIG_HDR_SIZE + 4);
	msg.payload.config.offset = UINT32_MAX;
	msg.payload.config.size = 4;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), -EINVAL);
}

static void test_dev_reply_ack(void **state)
{
	assert_int_equal(send_u64(VU_REQ_SET_PROTOCOL_FEATURES, VU_BIT(VU_PROTOCOL_F_REPLY_ACK)), 0);
	req(VU_REQ_SET_VRING_NUM, sizeof(struct vu_vring_state));
	msg.hdr.flags |= VU_FLAG_NEED_REPLY;
	msg.payload.state.num = 100; /* not a power of two */
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(reply.hdr.request, VU_REQ_SET_VRING_NUM);
	assert_int_equal(reply.payload.u64, 1);
	req(VU_REQ_SET_VRING_NUM, sizeof(struct vu_vring_state));
	msg.hdr.flags |= VU_FLAG_NEED_REPLY;
	msg.payload.state.num = 128;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(reply.payload.u64, 0);
}

static void test_dev_ring_rules(void **state)
{
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 0), -EINVAL);
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 3), -EINVAL);
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 512), -EINVAL); /* above max_queue_size */
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 2, 64), -EINVAL);  /* no queue 2 */
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 1, 256), 0);
	assert_int_equal(send_state(VU_REQ_SET_VRING_BASE, 1, 70000), -EINVAL);
	/* QEMU's virtio-net sends it on device reset, before any SET_FEATURES: accepted. */
	assert_int_equal(send_state(VU_REQ_SET_VRING_ENABLE, 0, 0), 0);
	assert_int_equal(send_state(VU_REQ_SET_VRING_ENABLE, 0, 2), -EINVAL);
	assert_int_equal(send_u64(VU_REQ_SET_FEATURES, VU_BIT(VU_F_VERSION_1)), 0);
	assert_int_equal(send_state(VU_REQ_SET_VRING_ENABLE, 0, 1), -EINVAL); /* negotiated without PROTOCOL_FEATURES */
	assert_int_equal(send_state(VU_REQ_GET_VRING_BASE, 5, 0), -EINVAL);
}

static void test_dev_fds_closed_on_error(void **state)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	/* queue 9 does not exist: the fd that came with the message must not leak */
	assert_int_equal(send_fd(VU_REQ_SET_VRING_CALL, 9, fd), -EINVAL);
	assert_false(fd_open(fd));
	fd = eventfd(0, EFD_CLOEXEC);
	/* a message that takes no fd */
	req(VU_REQ_SET_OWNER, 0);
	msg.nfds = 1;
	msg.fds[0] = fd;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), -EBADF);
	assert_false(fd_open(fd));
	fd = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(send_fd(VU_REQ_SET_VRING_CALL, 1, fd), 0);
	assert_true(fd_open(fd)); /* kept: the device owns it now */
	assert_int_equal(dev.vq[1].call_fd, fd);
}

/* A front-end handed over a blocking eventfd with its counter saturated: the first notify blocked
 * ddtk-blk in write() for good, and every other export of the process with it. */
static void test_dev_vring_fds_made_nonblocking(void **state)
{
	uint64_t max = UINT64_C(0xfffffffffffffffe);
	int call = eventfd(0, EFD_CLOEXEC), kick = eventfd(0, EFD_CLOEXEC), err = eventfd(0, EFD_CLOEXEC);

	assert_int_equal(write(call, &max, sizeof(max)), sizeof(max));
	assert_int_equal(send_fd(VU_REQ_SET_VRING_CALL, 0, call), 0);
	assert_int_equal(send_fd(VU_REQ_SET_VRING_KICK, 0, kick), 0);
	assert_int_equal(send_fd(VU_REQ_SET_VRING_ERR, 0, err), 0);
	assert_true(fcntl(call, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(kick, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(err, F_GETFL) & O_NONBLOCK);
	/* the saturated counter now refuses at once instead of waiting for a reader */
	assert_int_equal(eventfd_write(call, 1), -1);
	assert_int_equal(errno, EAGAIN);
}

static int memfd_of(size_t size)
{
	int fd = memfd_create("test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void send_mem_table(int fd, uint64_t size, uint64_t uva)
{
	req(VU_REQ_SET_MEM_TABLE, 8 + 32);
	msg.payload.memory.nregions = 1;
	msg.payload.memory.regions[0] = (struct vu_mem_region_msg){ 0, size, uva, 0 };
	msg.nfds = 1;
	msg.fds[0] = fd;
}

static void test_dev_mem_table_beyond_file(void **state)
{
	int fd = memfd_of(4096);

	/* The region claims more than the file has: mapping it would mean SIGBUS later. */
	send_mem_table(fd, 1 << 20, 0x10000);
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), -EINVAL);
	assert_false(fd_open(fd));
	assert_false(dev.mem_set);
}

static void test_dev_queue_lifecycle(void **state)
{
	const uint64_t size = 1 << 20, uva = 0x7f0000000000ull;
	int kick = eventfd(0, EFD_CLOEXEC), kick2 = eventfd(0, EFD_CLOEXEC), mfd = memfd_of(size);
	uint8_t *guest = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);

	/* The driver has made 5 requests available (avail->idx at avail + 2) */
	assert_true(guest != MAP_FAILED);
	*(uint16_t *)(guest + 4096 + 2) = 5;
	assert_int_equal(send_u64(VU_REQ_SET_FEATURES, VU_BIT(VU_F_PROTOCOL_FEATURES) | VU_BIT(VU_F_VERSION_1)), 0);
	send_mem_table(dup(mfd), size, uva);
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_true(dev.mem_set);
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 64), 0);
	assert_int_equal(send_state(VU_REQ_SET_VRING_BASE, 0, 5), 0);
	req(VU_REQ_SET_VRING_ADDR, sizeof(struct vu_vring_addr));
	msg.payload.addr = (struct vu_vring_addr){ .index = 0, .desc_user_addr = uva, .avail_user_addr = uva + 4096,
						   .used_user_addr = uva + 8192 };
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(send_fd(VU_REQ_SET_VRING_KICK, 0, kick), 0);
	assert_int_equal(queue_starts, 0); /* not enabled yet */
	assert_int_equal(send_state(VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_equal(queue_starts, 1);
	assert_true(dev.vq[0].started);
	/* no feature change and no ring change while running */
	assert_int_equal(send_u64(VU_REQ_SET_FEATURES, VU_BIT(VU_F_PROTOCOL_FEATURES)), -EBUSY);
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 32), -EINVAL);
	/* a new kick fd re-plugs the ring */
	assert_int_equal(send_fd(VU_REQ_SET_VRING_KICK, 0, kick2), 0);
	assert_false(fd_open(kick));
	assert_int_equal(queue_stops, 1);
	assert_int_equal(queue_starts, 2);
	assert_int_equal(send_state(VU_REQ_GET_VRING_BASE, 0, 0), 0);
	assert_int_equal(reply.payload.state.num, 5);
	assert_int_equal(queue_stops, 2);
	assert_false(dev.vq[0].started);
	assert_false(fd_open(kick2));
	munmap(guest, size);
	close(mfd);
}

static void test_dev_rings_outside_memory_break_device(void **state)
{
	const uint64_t size = 1 << 20, uva = 0x7f0000000000ull;

	assert_int_equal(send_u64(VU_REQ_SET_FEATURES, VU_BIT(VU_F_VERSION_1)), 0);
	send_mem_table(memfd_of(size), size, uva);
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 64), 0);
	req(VU_REQ_SET_VRING_ADDR, sizeof(struct vu_vring_addr));
	msg.payload.addr = (struct vu_vring_addr){ .index = 0, .desc_user_addr = uva + size - 16,
						   .avail_user_addr = uva, .used_user_addr = uva + 8192 };
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(send_fd(VU_REQ_SET_VRING_KICK, 0, eventfd(0, EFD_CLOEXEC)), 0);
	assert_true(dev.broken);
	assert_false(dev.vq[0].started);
	assert_int_equal(queue_starts, 0);
	/* a reset (RESET_OWNER, or a reconnect) gives the front-end a fresh device */
	req(VU_REQ_RESET_OWNER, 0);
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_false(dev.broken);
}

static void test_dev_inflight(void **state)
{
	assert_int_equal(send_u64(VU_REQ_SET_PROTOCOL_FEATURES, VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD)), 0);
	req(VU_REQ_GET_INFLIGHT_FD, sizeof(struct vu_inflight_msg));
	msg.payload.inflight.num_queues = 2;
	msg.payload.inflight.queue_size = 100;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), -EINVAL);
	req(VU_REQ_GET_INFLIGHT_FD, sizeof(struct vu_inflight_msg));
	msg.payload.inflight.num_queues = 3; /* more than the device has */
	msg.payload.inflight.queue_size = 128;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), -EINVAL);
	req(VU_REQ_GET_INFLIGHT_FD, sizeof(struct vu_inflight_msg));
	msg.payload.inflight.num_queues = 2;
	msg.payload.inflight.queue_size = 128;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(reply.nfds, 1);
	assert_int_equal(reply.payload.inflight.mmap_size, 2 * vu_inflight_queue_size(128));
	assert_non_null(dev.vq[1].inflight);
	/* Hand it back as QEMU does, but claim a larger region than the file holds. */
	req(VU_REQ_SET_INFLIGHT_FD, sizeof(struct vu_inflight_msg));
	msg.payload.inflight = reply.payload.inflight;
	msg.payload.inflight.mmap_size *= 4;
	msg.nfds = 1;
	msg.fds[0] = dup(reply.fds[0]);
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), -EINVAL);
	req(VU_REQ_SET_INFLIGHT_FD, sizeof(struct vu_inflight_msg));
	msg.payload.inflight = (struct vu_inflight_msg){ 2 * vu_inflight_queue_size(128), 0, 2, 128 };
	msg.nfds = 1;
	msg.fds[0] = memfd_of(2 * vu_inflight_queue_size(128));
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_non_null(dev.vq[0].inflight);
}

/* Regression (fuzz-vu-msg): an inflight region made for 64-entry rings, then a ring of 256: the
 * region must not be written past its end when the queue starts; the device breaks instead. */
static void test_dev_inflight_smaller_than_ring(void **state)
{
	const uint64_t size = 1 << 20, uva = 0x7f0000000000ull;

	assert_int_equal(send_u64(VU_REQ_SET_PROTOCOL_FEATURES, VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD)), 0);
	req(VU_REQ_GET_INFLIGHT_FD, sizeof(struct vu_inflight_msg));
	msg.payload.inflight.num_queues = 1;
	msg.payload.inflight.queue_size = 64;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	close(reply.fds[0]);
	assert_int_equal(send_u64(VU_REQ_SET_FEATURES, VU_BIT(VU_F_VERSION_1)), 0);
	send_mem_table(memfd_of(size), size, uva);
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 256), 0);
	req(VU_REQ_SET_VRING_ADDR, sizeof(struct vu_vring_addr));
	msg.payload.addr = (struct vu_vring_addr){ .index = 0, .desc_user_addr = uva, .avail_user_addr = uva + 4096,
						   .used_user_addr = uva + 8192 };
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(send_fd(VU_REQ_SET_VRING_KICK, 0, eventfd(0, EFD_CLOEXEC)), 0);
	assert_true(dev.broken);
	assert_false(dev.vq[0].started);
}

/* ---- a transport without fds: memory found by the transport, kicks from kick_fd, calls by
 * notify (the driver domain's shape) ---- */

#define FT_MEM_SIZE (1u << 20)
#define FT_UVA 0x7f0000000000ull

static struct {
	uint8_t *mem;
	int kick_src[2];          /* the transport's own eventfds; kick_fd hands out copies */
	int kick_error;           /* kick_fd fails with this when non-zero */
	unsigned kick_calls, last_kick_index;
	unsigned notify_calls, last_notify_index;
	int last_notify_call_fd;
	unsigned unmaps, reset_calls, regions_at_reset;
	int kick_fd_at_reset;
} ft;

static int ft_map_region(void *t, struct vu_mem_region *r, int fd)
{
	assert_int_equal(fd, -1);
	if (r->mmap_offset > FT_MEM_SIZE || r->size > FT_MEM_SIZE - r->mmap_offset)
		return -EINVAL;
	r->host = ft.mem + r->mmap_offset;
	return 0;
}

static void ft_unmap_region(void *t, struct vu_mem_region *r)
{
	ft.unmaps++;
	r->host = NULL;
}

static int ft_map_inflight(void *t, int fd, uint64_t size, uint64_t offset, void **ret_addr)
{
	return -EOPNOTSUPP;
}

static void ft_unmap_inflight(void *t, void *addr, uint64_t size)
{
}

static int ft_notify(void *t, struct vu_vq *vq)
{
	ft.notify_calls++;
	ft.last_notify_index = vq->index;
	ft.last_notify_call_fd = vq->call_fd;
	return 0;
}

static int ft_kick_fd(void *t, unsigned index)
{
	ft.kick_calls++;
	ft.last_kick_index = index;
	if (ft.kick_error)
		return ft.kick_error;
	if (index >= 2)
		return -EINVAL;
	return fcntl(ft.kick_src[index], F_DUPFD_CLOEXEC, 0);
}

static void ft_reset(void *t)
{
	ft.reset_calls++;
	ft.regions_at_reset = dev.mem.nregions;
	ft.kick_fd_at_reset = dev.vq[0].kick_fd;
}

static const char *ft_last_error(void *t)
{
	return "fake: no such vector";
}

static const struct vu_transport_ops ft_ops = {
	.memory_fds = false,
	.map_region = ft_map_region,
	.unmap_region = ft_unmap_region,
	.map_inflight = ft_map_inflight,
	.unmap_inflight = ft_unmap_inflight,
	.notify = ft_notify,
	.kick_fd = ft_kick_fd,
	.reset = ft_reset,
	.last_error = ft_last_error,
};

static unsigned open_fds(void)
{
	unsigned n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fd_open(fd))
			n++;
	return n;
}

static unsigned ft_fds_before;

static int ft_setup(void **state)
{
	struct vu_dev_info info = {
		.features = UINT64_C(1) << 1,
		.protocol_features = VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK),
		.num_queues = 2,
		.max_queue_size = 256,
		.config_size = 32,
	};

	memset(&ft, 0, sizeof(ft));
	ft.kick_fd_at_reset = -2;
	ft_fds_before = open_fds();
	ft.mem = calloc(1, FT_MEM_SIZE);
	assert_non_null(ft.mem);
	ft.kick_src[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ft.kick_src[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	queue_starts = queue_stops = 0;
	return vu_dev_init(&dev, &info, &ft_ops, NULL, &be_ops, NULL);
}

static int ft_teardown(void **state)
{
	vu_dev_reset(&dev);
	close(ft.kick_src[0]);
	close(ft.kick_src[1]);
	free(ft.mem);
	/* Whatever a test did, every fd the device took or made is closed after a reset. */
	assert_int_equal(open_fds(), ft_fds_before);
	return 0;
}

/* The memory table without fds, ring 0 sized and placed: only the kick is missing. */
static void ft_prepare_ring(void)
{
	req(VU_REQ_SET_MEM_TABLE, 8 + 32);
	msg.payload.memory.nregions = 1;
	msg.payload.memory.regions[0] = (struct vu_mem_region_msg){ 0, FT_MEM_SIZE, FT_UVA, 0 };
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_true(dev.mem_set);
	assert_ptr_equal(dev.mem.regions[0].host, ft.mem);
	assert_int_equal(send_u64(VU_REQ_SET_FEATURES, VU_BIT(VU_F_VERSION_1)), 0);
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 64), 0);
	req(VU_REQ_SET_VRING_ADDR, sizeof(struct vu_vring_addr));
	msg.payload.addr = (struct vu_vring_addr){ .index = 0, .desc_user_addr = FT_UVA,
						   .avail_user_addr = FT_UVA + 4096, .used_user_addr = FT_UVA + 8192 };
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
}

static void test_nofd_kick_refused_without_op(void **state)
{
	/* The socket transport has only the front-end's fds: NOFD would be polling mode. */
	assert_int_equal(send_u64(VU_REQ_SET_VRING_KICK, VU_VRING_NOFD), -EOPNOTSUPP);
	assert_false(dev.vq[0].kick_set);
}

static void test_nofd_queue_lifecycle(void **state)
{
	struct pollfd pfd = { .events = POLLIN };
	int kick;

	ft_prepare_ring();
	assert_int_equal(send_u64(VU_REQ_SET_VRING_KICK, VU_VRING_NOFD), 0);
	assert_int_equal(ft.kick_calls, 1);
	assert_int_equal(ft.last_kick_index, 0);
	assert_true(dev.vq[0].started); /* no PROTOCOL_FEATURES: enabled once it starts */
	kick = dev.vq[0].kick_fd;
	assert_true(kick >= 0);
	assert_true(fcntl(kick, F_GETFD) & FD_CLOEXEC);
	/* The queue's fd is readable when the transport's kick fires. */
	pfd.fd = kick;
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(eventfd_write(ft.kick_src[0], 1), 0);
	assert_int_equal(poll(&pfd, 1, 0), 1);

	/* A call without a fd still reaches the transport: it has its own way to signal. */
	assert_int_equal(send_u64(VU_REQ_SET_VRING_CALL, VU_VRING_NOFD), 0);
	assert_int_equal(ft.notify_calls, 1);
	assert_int_equal(ft.last_notify_call_fd, -1);
	assert_int_equal(vu_dev_notify(&dev, &dev.vq[0]), 0);
	assert_int_equal(ft.notify_calls, 2);
	assert_int_equal(ft.last_notify_index, 0);
	/* ...but not for a queue that does not run. */
	assert_int_equal(send_u64(VU_REQ_SET_VRING_CALL, 1 | VU_VRING_NOFD), 0);
	assert_int_equal(ft.notify_calls, 2);

	/* A new NOFD kick re-plugs the ring with a new fd; the old one is closed. */
	assert_int_equal(send_u64(VU_REQ_SET_VRING_KICK, VU_VRING_NOFD), 0);
	assert_int_equal(ft.kick_calls, 2);
	assert_int_equal(queue_stops, 1);
	assert_int_equal(queue_starts, 2);
	if (dev.vq[0].kick_fd != kick)
		assert_false(fd_open(kick));
	kick = dev.vq[0].kick_fd;
	assert_int_equal(send_state(VU_REQ_GET_VRING_BASE, 0, 0), 0);
	assert_false(dev.vq[0].started);
	assert_false(fd_open(kick));
}

static void test_nofd_kick_fd_failure(void **state)
{
	unsigned fds;

	ft_prepare_ring();
	fds = open_fds();
	ft.kick_error = -ENODEV;
	/* Without REPLY_ACK the connection goes. */
	assert_int_equal(send_u64(VU_REQ_SET_VRING_KICK, VU_VRING_NOFD), -ENODEV);
	assert_false(dev.vq[0].kick_set);
	assert_false(dev.vq[0].started);
	assert_int_equal(dev.vq[0].kick_fd, -1);
	assert_string_equal(dev.error_detail, "fake: no such vector");
	/* With it the front-end hears about the failure and the device stays as it was. */
	assert_int_equal(send_u64(VU_REQ_SET_PROTOCOL_FEATURES, VU_BIT(VU_PROTOCOL_F_REPLY_ACK)), 0);
	req(VU_REQ_SET_VRING_KICK, 8);
	msg.hdr.flags |= VU_FLAG_NEED_REPLY;
	msg.payload.u64 = 1 | VU_VRING_NOFD;
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(reply.payload.u64, 1);
	assert_int_equal(dev.refused, -ENODEV);
	assert_int_equal(ft.last_kick_index, 1);
	assert_false(dev.vq[1].kick_set);
	assert_int_equal(open_fds(), fds);
	/* A later request that fails for its own reasons does not carry the transport's words. */
	assert_int_equal(send_state(VU_REQ_SET_VRING_NUM, 0, 3), -EINVAL);
	assert_string_equal(dev.error_detail, "");
	/* A working kick_fd again: the queue starts. */
	ft.kick_error = 0;
	assert_int_equal(send_u64(VU_REQ_SET_VRING_KICK, VU_VRING_NOFD), 0);
	assert_true(dev.vq[0].started);
	/* A refused re-plug of a running ring (the transport lost the device, say)... */
	ft.kick_error = -EINVAL;
	assert_int_equal(send_u64(VU_REQ_SET_VRING_KICK, VU_VRING_NOFD), -EINVAL);
	/* The running ring keeps its kick: the refused request changed nothing. */
	assert_true(dev.vq[0].started);
	assert_true(fd_open(dev.vq[0].kick_fd));
}

static void test_nofd_reset_releases_transport_last(void **state)
{
	ft_prepare_ring();
	assert_int_equal(send_u64(VU_REQ_SET_VRING_KICK, VU_VRING_NOFD), 0);
	assert_true(dev.vq[0].started);
	req(VU_REQ_RESET_OWNER, 0);
	assert_int_equal(vu_dev_handle_msg(&dev, &msg, &reply), 0);
	assert_int_equal(ft.reset_calls, 1);
	/* When the transport is told, nothing of its memory is mapped and no kick fd is open. */
	assert_int_equal(ft.unmaps, 1);
	assert_int_equal(ft.regions_at_reset, 0);
	assert_int_equal(ft.kick_fd_at_reset, -1);
	assert_int_equal(queue_stops, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_mem_table_shape),
		cmocka_unit_test(test_vring_fds),
#define T(f) cmocka_unit_test_setup_teardown(f, dev_setup, dev_teardown)
		T(test_dev_features),
		T(test_dev_inflight_smaller_than_ring),
		T(test_dev_protocol_gated),
		T(test_dev_reply_ack),
		T(test_dev_ring_rules),
		T(test_dev_fds_closed_on_error),
		T(test_dev_vring_fds_made_nonblocking),
		T(test_dev_mem_table_beyond_file),
		T(test_dev_queue_lifecycle),
		T(test_dev_rings_outside_memory_break_device),
		T(test_dev_inflight),
		T(test_nofd_kick_refused_without_op),
#undef T
#define T(f) cmocka_unit_test_setup_teardown(f, ft_setup, ft_teardown)
		T(test_nofd_queue_lifecycle),
		T(test_nofd_kick_fd_failure),
		T(test_nofd_reset_releases_transport_last),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
