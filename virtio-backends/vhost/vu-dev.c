/* The vhost-user device state machine: one handler per request, called only for messages whose
 * shape vu_msg_check() accepted. Feature negotiation is strict (nothing never offered, no change
 * while a queue runs), ring sizes are powers of two, and a queue starts only when it has a size,
 * addresses, a kick fd, a memory table and (with PROTOCOL_FEATURES) an enable. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vu-dev.h"

/* Upper bound on an inflight region a front-end may hand us. */
#define VU_MAX_INFLIGHT_SIZE (UINT64_C(64) << 20)

static uint64_t offered_features(const struct vu_dev *dev)
{
	return dev->info.features | VU_BIT(VU_F_PROTOCOL_FEATURES) | VU_BIT(VU_F_VERSION_1) |
	       VU_BIT(VU_F_RING_EVENT_IDX) | VU_BIT(VU_F_RING_INDIRECT_DESC);
}

static uint64_t offered_protocol_features(const struct vu_dev *dev)
{
	return dev->info.protocol_features;
}

static bool is_power_of_two(uint32_t x)
{
	return x && !(x & (x - 1));
}

int vu_dev_init(struct vu_dev *dev, const struct vu_dev_info *info, const struct vu_transport_ops *transport_ops,
		void *transport, const struct vu_backend_ops *backend_ops, void *backend)
{
	if (!info->num_queues || info->num_queues > VU_MAX_QUEUES || !is_power_of_two(info->max_queue_size) ||
	    info->max_queue_size > VU_MAX_QUEUE_SIZE || info->config_size > VU_MAX_CONFIG_SIZE)
		return -EINVAL;
	memset(dev, 0, sizeof(*dev));
	dev->info = *info;
	dev->transport_ops = transport_ops;
	dev->transport = transport;
	dev->backend_ops = backend_ops;
	dev->backend = backend;
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
		vu_vq_init(&dev->vq[i], i);
	return 0;
}

void vu_dev_set_broken(struct vu_dev *dev, const char *fmt, ...)
{
	if (!dev->broken) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(dev->broken_reason, sizeof(dev->broken_reason), fmt, ap);
		va_end(ap);
	}
	dev->broken = true;
}

/* A transport operation failed with r: keep what the transport says about it for the log. */
static int transport_failed(struct vu_dev *dev, int r)
{
	const char *detail = dev->transport_ops->last_error ? dev->transport_ops->last_error(dev->transport) : NULL;

	snprintf(dev->error_detail, sizeof(dev->error_detail), "%s", detail ? detail : "");
	return r;
}

static void queue_stop(struct vu_dev *dev, struct vu_vq *vq)
{
	if (!vq->started)
		return;
	dev->backend_ops->queue_stop(dev->backend, vq);
	vu_vq_detach(vq);
}

static void queue_try_start(struct vu_dev *dev, struct vu_vq *vq)
{
	int r;

	if (vq->started || dev->broken || !dev->mem_set || !vq->kick_set || !vq->num || !vq->addr_set)
		return;
	if (vu_dev_has_feature(dev, VU_F_PROTOCOL_FEATURES) && !vq->enabled)
		return;
	vq->event_idx = vu_dev_has_feature(dev, VU_F_RING_EVENT_IDX);
	vq->indirect = vu_dev_has_feature(dev, VU_F_RING_INDIRECT_DESC);
	r = vu_vq_attach(vq, &dev->mem);
	if (r < 0) {
		vu_dev_set_broken(dev, "queue %u: rings not usable (%s)", vq->index, strerror(-r));
		return;
	}
	r = dev->backend_ops->queue_start(dev->backend, vq);
	if (r < 0) {
		vu_vq_detach(vq);
		vu_dev_set_broken(dev, "queue %u: back-end could not start it (%s)", vq->index, strerror(-r));
	}
}

static bool any_queue_started(const struct vu_dev *dev)
{
	for (unsigned i = 0; i < dev->info.num_queues; i++)
		if (dev->vq[i].started)
			return true;
	return false;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void mem_unmap(struct vu_dev *dev, struct vu_mem *mem)
{
	for (unsigned i = 0; i < mem->nregions; i++)
		if (mem->regions[i].host)
			dev->transport_ops->unmap_region(dev->transport, &mem->regions[i]);
	memset(mem, 0, sizeof(*mem));
}

static void inflight_unmap(struct vu_dev *dev)
{
	if (dev->inflight)
		dev->transport_ops->unmap_inflight(dev->transport, dev->inflight, dev->inflight_size);
	dev->inflight = NULL;
	dev->inflight_size = 0;
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
		dev->vq[i].inflight = NULL;
}

void vu_dev_reset(struct vu_dev *dev)
{
	for (unsigned i = 0; i < dev->info.num_queues; i++) {
		struct vu_vq *vq = &dev->vq[i];

		queue_stop(dev, vq);
		close_fd(&vq->kick_fd);
		close_fd(&vq->call_fd);
		close_fd(&vq->err_fd);
		vu_vq_init(vq, i);
	}
	mem_unmap(dev, &dev->mem);
	dev->mem_set = false;
	inflight_unmap(dev);
	if (dev->transport_ops->reset)
		dev->transport_ops->reset(dev->transport);
	dev->features = 0;
	dev->protocol_features = 0;
	dev->features_set = false;
	dev->broken = false;
	dev->broken_reason[0] = '\0';
}

int vu_dev_notify(struct vu_dev *dev, struct vu_vq *vq)
{
	if (!vu_vq_should_notify(vq))
		return 0;
	return dev->transport_ops->notify(dev->transport, vq);
}

void vu_dev_notify_later(struct vu_notify_list *list, struct vu_dev *dev, struct vu_vq *vq)
{
	if (vq->notify_pending)
		return;
	vq->notify_pending = true;
	vq->notify_dev = dev;
	vq->notify_next = list->head;
	list->head = vq;
}

void vu_notify_list_flush(struct vu_notify_list *list)
{
	while (list->head) {
		struct vu_vq *vq = list->head;

		list->head = vq->notify_next;
		vq->notify_pending = false;
		if (vq->started)
			(void)vu_dev_notify(vq->notify_dev, vq);
	}
}

static struct vu_vq *vq_of(struct vu_dev *dev, uint32_t index)
{
	return index < dev->info.num_queues ? &dev->vq[index] : NULL;
}

static void reply_u64(struct vu_msg *reply, uint64_t v)
{
	reply->hdr.size = sizeof(uint64_t);
	reply->payload.u64 = v;
}

static int handle_set_features(struct vu_dev *dev, struct vu_msg *msg)
{
	uint64_t f = msg->payload.u64;

	if (f & ~offered_features(dev))
		return -EINVAL;
	if (dev->features_set && f != dev->features && any_queue_started(dev))
		return -EBUSY;
	dev->features = f;
	dev->features_set = true;
	if (!vu_dev_has_feature(dev, VU_F_PROTOCOL_FEATURES)) {
		/* Without PROTOCOL_FEATURES, rings are enabled as soon as they start. */
		for (unsigned i = 0; i < dev->info.num_queues; i++)
			dev->vq[i].enabled = true;
	}
	return 0;
}

static int handle_set_protocol_features(struct vu_dev *dev, struct vu_msg *msg)
{
	uint64_t f = msg->payload.u64;

	if (f & ~offered_protocol_features(dev))
		return -EINVAL;
	if (f != dev->protocol_features && any_queue_started(dev))
		return -EBUSY;
	dev->protocol_features = f;
	return 0;
}

static int handle_set_mem_table(struct vu_dev *dev, struct vu_msg *msg)
{
	struct vu_mem mem;
	bool restart[VU_MAX_QUEUES] = { false };
	int r;

	r = vu_mem_from_msg(&msg->payload.memory, &mem);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < mem.nregions; i++) {
		r = dev->transport_ops->map_region(dev->transport, &mem.regions[i], msg->nfds ? msg->fds[i] : -1);
		if (r < 0) {
			transport_failed(dev, r);
			mem_unmap(dev, &mem);
			return r;
		}
	}
	/* The rings and requests in flight point into the old mapping: finish them first. */
	for (unsigned i = 0; i < dev->info.num_queues; i++) {
		restart[i] = dev->vq[i].started;
		queue_stop(dev, &dev->vq[i]);
	}
	mem_unmap(dev, &dev->mem);
	dev->mem = mem;
	dev->mem_set = true;
	for (unsigned i = 0; i < dev->info.num_queues; i++)
		if (restart[i])
			queue_try_start(dev, &dev->vq[i]);
	return 0;
}

static int handle_set_vring_num(struct vu_dev *dev, struct vu_msg *msg)
{
	struct vu_vq *vq = vq_of(dev, msg->payload.state.index);
	uint32_t num = msg->payload.state.num;

	if (!vq || vq->started || !is_power_of_two(num) || num > dev->info.max_queue_size)
		return -EINVAL;
	vq->num = num;
	return 0;
}

static int handle_set_vring_addr(struct vu_dev *dev, struct vu_msg *msg)
{
	const struct vu_vring_addr *a = &msg->payload.addr;
	struct vu_vq *vq = vq_of(dev, a->index);

	/* Dirty logging (flags bit 0) is never negotiated: LOG_ALL is not offered. */
	if (!vq || vq->started || a->flags)
		return -EINVAL;
	vq->desc_uva = a->desc_user_addr;
	vq->avail_uva = a->avail_user_addr;
	vq->used_uva = a->used_user_addr;
	vq->addr_set = true;
	return 0;
}

static int handle_set_vring_base(struct vu_dev *dev, struct vu_msg *msg)
{
	struct vu_vq *vq = vq_of(dev, msg->payload.state.index);

	if (!vq || vq->started || msg->payload.state.num > UINT16_MAX)
		return -EINVAL;
	vq->base = msg->payload.state.num;
	return 0;
}

static int handle_get_vring_base(struct vu_dev *dev, struct vu_msg *msg, struct vu_msg *reply)
{
	struct vu_vq *vq = vq_of(dev, msg->payload.state.index);

	if (!vq)
		return -EINVAL;
	/* Stopping finishes what is in flight, so the index we report covers all of it. */
	queue_stop(dev, vq);
	close_fd(&vq->kick_fd);
	vq->kick_set = false;
	reply->hdr.size = sizeof(struct vu_vring_state);
	reply->payload.state.index = vq->index;
	reply->payload.state.num = vq->base;
	return 0;
}

/* Whether fd is an eventfd. Kick, call and error fds must be: anything else (a pipe, a socket)
 * can hang up and stay readable forever, or never be written. Without /proc we cannot tell and
 * accept it; the back-end then still drops a kick fd that hangs up. */
static bool is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT && access("/proc/self/fd", F_OK) < 0;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static int take_vring_fd(struct vu_dev *dev, struct vu_msg *msg, struct vu_vq **ret_vq, int *ret_fd)
{
	uint64_t v = msg->payload.u64;

	if (v & ~(VU_VRING_INDEX_MASK | VU_VRING_NOFD))
		return -EINVAL;
	*ret_vq = vq_of(dev, v & VU_VRING_INDEX_MASK);
	if (!*ret_vq)
		return -EINVAL;
	*ret_fd = -1;
	if (!(v & VU_VRING_NOFD)) {
		int flags = fcntl(msg->fds[0], F_GETFL);

		if (!is_eventfd(msg->fds[0]))
			return -EBADF;
		/* One thread serves every device of the process: a blocking fd the front-end chose (a
		 * saturated eventfd, a full pipe) would stop all of them in a notify or a kick read. */
		if (flags < 0 || fcntl(msg->fds[0], F_SETFL, flags | O_NONBLOCK) < 0)
			return -errno;
		*ret_fd = msg->fds[0];
		msg->fds[0] = -1;
	}
	return 0;
}

static int handle_set_vring_kick(struct vu_dev *dev, struct vu_msg *msg)
{
	struct vu_vq *vq;
	int fd, r;

	r = take_vring_fd(dev, msg, &vq, &fd);
	if (r < 0)
		return r;
	if (fd < 0) {
		/* Without a fd the front-end means polling mode, which we do not support, unless the
		 * transport delivers kicks itself (the driver domain's MSI-X eventfds). */
		if (!dev->transport_ops->kick_fd)
			return -EOPNOTSUPP;
		fd = dev->transport_ops->kick_fd(dev->transport, vq->index);
		if (fd < 0)
			return transport_failed(dev, fd);
	}
	/* A new kick fd restarts the ring. */
	queue_stop(dev, vq);
	close_fd(&vq->kick_fd);
	vq->kick_fd = fd;
	vq->kick_set = true;
	queue_try_start(dev, vq);
	return 0;
}

static int handle_set_vring_call(struct vu_dev *dev, struct vu_msg *msg)
{
	struct vu_vq *vq;
	int fd, r;

	r = take_vring_fd(dev, msg, &vq, &fd);
	if (r < 0)
		return r;
	close_fd(&vq->call_fd);
	vq->call_fd = fd;
	/* The front-end may have missed a notification while it swapped fds. Also without a fd: a
	 * transport that signals by other means (a doorbell) takes NOFD, and one that needs the fd
	 * does nothing then. */
	if (vq->started)
		(void)dev->transport_ops->notify(dev->transport, vq);
	return 0;
}

static int handle_set_vring_err(struct vu_dev *dev, struct vu_msg *msg)
{
	struct vu_vq *vq;
	int fd, r;

	r = take_vring_fd(dev, msg, &vq, &fd);
	if (r < 0)
		return r;
	close_fd(&vq->err_fd);
	vq->err_fd = fd;
	return 0;
}

static int handle_set_vring_enable(struct vu_dev *dev, struct vu_msg *msg)
{
	struct vu_vq *vq = vq_of(dev, msg->payload.state.index);
	uint32_t enable = msg->payload.state.num;

	/* QEMU's virtio-net enables and disables queue pairs on every device reset, also before
	 * SET_FEATURES; only a negotiation without PROTOCOL_FEATURES makes the request invalid. */
	if (!vq || enable > 1 || (dev->features_set && !vu_dev_has_feature(dev, VU_F_PROTOCOL_FEATURES)))
		return -EINVAL;
	vq->enabled = enable;
	if (enable)
		queue_try_start(dev, vq);
	else
		queue_stop(dev, vq);
	return 0;
}

static int handle_get_config(struct vu_dev *dev, struct vu_msg *msg, struct vu_msg *reply)
{
	const struct vu_config_msg *c = &msg->payload.config;
	int r;

	if (c->offset > dev->info.config_size || c->size > dev->info.config_size - c->offset)
		return -EINVAL;
	reply->payload.config.offset = c->offset;
	reply->payload.config.size = c->size;
	reply->payload.config.flags = 0;
	r = dev->backend_ops->get_config(dev->backend, c->offset, reply->payload.config.region, c->size);
	if (r < 0)
		return r;
	reply->hdr.size = VU_CONFIG_HDR_SIZE + c->size;
	return 0;
}

static int handle_set_config(struct vu_dev *dev, struct vu_msg *msg)
{
	const struct vu_config_msg *c = &msg->payload.config;

	if (c->offset > dev->info.config_size || c->size > dev->info.config_size - c->offset)
		return -EINVAL;
	if (!dev->backend_ops->set_config)
		return -EPERM;
	return dev->backend_ops->set_config(dev->backend, c->offset, c->region, c->size);
}

static int inflight_check_geometry(const struct vu_dev *dev, const struct vu_inflight_msg *m, uint64_t *ret_size)
{
	uint64_t size;

	if (!m->num_queues || m->num_queues > dev->info.num_queues || !is_power_of_two(m->queue_size) ||
	    m->queue_size > dev->info.max_queue_size)
		return -EINVAL;
	size = vu_inflight_queue_size(m->queue_size) * m->num_queues;
	if (size > VU_MAX_INFLIGHT_SIZE)
		return -EINVAL;
	*ret_size = size;
	return 0;
}

static void inflight_assign(struct vu_dev *dev, void *base, uint16_t num_queues, uint16_t queue_size)
{
	uint64_t qsize = vu_inflight_queue_size(queue_size);

	for (unsigned i = 0; i < VU_MAX_QUEUES; i++) {
		dev->vq[i].inflight = i < num_queues ? (struct vu_inflight_queue *)((uint8_t *)base + i * qsize) : NULL;
		dev->vq[i].inflight_num = i < num_queues ? queue_size : 0;
	}
}

static int handle_get_inflight_fd(struct vu_dev *dev, struct vu_msg *msg, struct vu_msg *reply)
{
	struct vu_inflight_msg m = msg->payload.inflight;
	uint64_t size;
	void *addr;
	int fd, r;

	r = inflight_check_geometry(dev, &m, &size);
	if (r < 0)
		return r;
	fd = memfd_create("ddtk-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	/* Neither side may shrink it under the other's mapping. */
	(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	r = dev->transport_ops->map_inflight(dev->transport, fd, size, 0, &addr);
	if (r < 0) {
		close(fd);
		return transport_failed(dev, r);
	}
	memset(addr, 0, size);
	inflight_unmap(dev);
	dev->inflight = addr;
	dev->inflight_size = size;
	inflight_assign(dev, addr, m.num_queues, m.queue_size);
	reply->hdr.size = sizeof(struct vu_inflight_msg);
	reply->payload.inflight.mmap_size = size;
	reply->payload.inflight.mmap_offset = 0;
	reply->payload.inflight.num_queues = m.num_queues;
	reply->payload.inflight.queue_size = m.queue_size;
	reply->fds[0] = fd;
	reply->nfds = 1;
	return 0;
}

static int handle_set_inflight_fd(struct vu_dev *dev, struct vu_msg *msg)
{
	struct vu_inflight_msg m = msg->payload.inflight;
	uint64_t need;
	void *addr;
	int r;

	r = inflight_check_geometry(dev, &m, &need);
	if (r < 0)
		return r;
	if (any_queue_started(dev) || m.mmap_size < need || m.mmap_size > VU_MAX_INFLIGHT_SIZE ||
	    m.mmap_offset > UINT64_MAX - m.mmap_size)
		return -EINVAL;
	r = dev->transport_ops->map_inflight(dev->transport, msg->nfds ? msg->fds[0] : -1, m.mmap_size,
					     m.mmap_offset, &addr);
	if (r < 0)
		return transport_failed(dev, r);
	inflight_unmap(dev);
	dev->inflight = addr;
	dev->inflight_size = m.mmap_size;
	inflight_assign(dev, addr, m.num_queues, m.queue_size);
	return 0;
}

static int handle_reset(struct vu_dev *dev)
{
	vu_dev_reset(dev);
	return 0;
}

static int dispatch(struct vu_dev *dev, struct vu_msg *msg, struct vu_msg *reply)
{
	switch ((enum vu_request)msg->hdr.request) {
	case VU_REQ_GET_FEATURES:
		reply_u64(reply, offered_features(dev));
		return 0;
	case VU_REQ_SET_FEATURES:
		return handle_set_features(dev, msg);
	case VU_REQ_SET_OWNER:
		return 0;
	case VU_REQ_RESET_OWNER:
	case VU_REQ_RESET_DEVICE:
		return handle_reset(dev);
	case VU_REQ_SET_MEM_TABLE:
		return handle_set_mem_table(dev, msg);
	case VU_REQ_SET_VRING_NUM:
		return handle_set_vring_num(dev, msg);
	case VU_REQ_SET_VRING_ADDR:
		return handle_set_vring_addr(dev, msg);
	case VU_REQ_SET_VRING_BASE:
		return handle_set_vring_base(dev, msg);
	case VU_REQ_GET_VRING_BASE:
		return handle_get_vring_base(dev, msg, reply);
	case VU_REQ_SET_VRING_KICK:
		return handle_set_vring_kick(dev, msg);
	case VU_REQ_SET_VRING_CALL:
		return handle_set_vring_call(dev, msg);
	case VU_REQ_SET_VRING_ERR:
		return handle_set_vring_err(dev, msg);
	case VU_REQ_GET_PROTOCOL_FEATURES:
		reply_u64(reply, offered_protocol_features(dev));
		return 0;
	case VU_REQ_SET_PROTOCOL_FEATURES:
		return handle_set_protocol_features(dev, msg);
	case VU_REQ_GET_QUEUE_NUM:
		reply_u64(reply, dev->info.queue_num_reply ? dev->info.queue_num_reply : dev->info.num_queues);
		return 0;
	case VU_REQ_SET_VRING_ENABLE:
		return handle_set_vring_enable(dev, msg);
	case VU_REQ_NET_SET_MTU:
		return dev->backend_ops->set_mtu ? dev->backend_ops->set_mtu(dev->backend, msg->payload.u64)
						 : -EOPNOTSUPP;
	case VU_REQ_GET_CONFIG:
		return handle_get_config(dev, msg, reply);
	case VU_REQ_SET_CONFIG:
		return handle_set_config(dev, msg);
	case VU_REQ_GET_INFLIGHT_FD:
		return handle_get_inflight_fd(dev, msg, reply);
	case VU_REQ_SET_INFLIGHT_FD:
		return handle_set_inflight_fd(dev, msg);
	case VU_REQ_NONE:
	case VU_REQ_SET_LOG_BASE:
	case VU_REQ_SET_LOG_FD:
	case VU_REQ_SEND_RARP:
	case VU_REQ_SET_BACKEND_REQ_FD:
	case VU_REQ_IOTLB_MSG:
	case VU_REQ_SET_VRING_ENDIAN:
	case VU_REQ_CREATE_CRYPTO_SESSION:
	case VU_REQ_CLOSE_CRYPTO_SESSION:
	case VU_REQ_POSTCOPY_ADVISE:
	case VU_REQ_POSTCOPY_LISTEN:
	case VU_REQ_POSTCOPY_END:
	case VU_REQ_GPU_SET_SOCKET:
	case VU_REQ_VRING_KICK:
	case VU_REQ_GET_MAX_MEM_SLOTS:
	case VU_REQ_ADD_MEM_REG:
	case VU_REQ_REM_MEM_REG:
	case VU_REQ_SET_STATUS:
	case VU_REQ_GET_STATUS:
	case _VU_REQ_LAST:
		break;
	}
	return -EOPNOTSUPP;
}

int vu_dev_handle_msg(struct vu_dev *dev, struct vu_msg *msg, struct vu_msg *reply)
{
	const struct vu_msg_rule *rule;
	bool ack;
	int r;

	vu_msg_init(reply);
	dev->error_detail[0] = '\0';
	r = vu_msg_check(msg, dev->transport_ops->memory_fds);
	if (r < 0) {
		vu_msg_close_fds(msg);
		return r;
	}
	rule = vu_msg_rule(msg->hdr.request);
	if (rule->protocol_feature >= 0 && !vu_dev_has_protocol_feature(dev, rule->protocol_feature) &&
	    msg->hdr.request != VU_REQ_GET_PROTOCOL_FEATURES) {
		vu_msg_close_fds(msg);
		return -EPROTO;
	}
	ack = !rule->has_reply && (msg->hdr.flags & VU_FLAG_NEED_REPLY) &&
	      vu_dev_has_protocol_feature(dev, VU_PROTOCOL_F_REPLY_ACK);
	r = dispatch(dev, msg, reply);
	vu_msg_close_fds(msg);
	if (r < 0) {
		vu_msg_close_fds(reply);
		vu_msg_init(reply);
		if (!ack)
			return r;
		/* The front-end asked to hear about failure: tell it and keep the connection. */
		reply_u64(reply, 1);
		dev->refused = r;
	} else if (ack) {
		reply_u64(reply, 0);
	} else if (!rule->has_reply) {
		return 0;
	}
	reply->hdr.request = msg->hdr.request;
	reply->hdr.flags = VU_FLAG_VERSION | VU_FLAG_REPLY;
	return 0;
}
