/* The bridge's vhost-user side: one listening socket per session, served to the client's QEMU as
 * if the bridge were the back-end. Every request is checked with the core's rules (vu_msg_check),
 * its state recorded (to replay to any later DD), and passed on to the DD's back-end when that is
 * serving the device. Questions only the back-end can answer (features, config space) are asked
 * of it and remembered, so that a client is answered while the DD restarts. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"
#include "vu-backend.h"
#include "vu-vq.h"

/* Protocol features a client may have: the bridge itself never drops the connection, so it keeps
 * the inflight region to itself (the DD's back-end gets it from the state device), and it has no
 * back-end request channel, dirty log or RARP to offer. */
#define CLIENT_PROTOCOL_FEATURES \
	(VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK) | VU_BIT(VU_PROTOCOL_F_MTU) | \
	 VU_BIT(VU_PROTOCOL_F_CONFIG) | VU_BIT(VU_PROTOCOL_F_RESET_DEVICE))

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int send_to_client(struct bridge_session *s, struct vu_msg *reply)
{
	int r;

	if (s->conn_fd < 0) {
		vu_msg_close_fds(reply);
		return -ENOTCONN;
	}
	reply->hdr.flags = VU_FLAG_VERSION | VU_FLAG_REPLY;
	r = vu_socket_send(s->conn_fd, reply);
	if (r < 0)
		bridge_client_disconnect(s, "cannot send a reply");
	return r;
}

static void reply_u64(struct bridge_session *s, uint32_t request, uint64_t v)
{
	struct vu_msg reply;

	vu_msg_init(&reply);
	reply.hdr.request = request;
	reply.hdr.size = sizeof(uint64_t);
	reply.payload.u64 = v;
	send_to_client(s, &reply);
}

static bool wants_ack(const struct bridge_session *s, const struct vu_msg *msg)
{
	return (msg->hdr.flags & VU_FLAG_NEED_REPLY) && (s->client_protocol_features & VU_BIT(VU_PROTOCOL_F_REPLY_ACK));
}

static void ack(struct bridge_session *s, const struct vu_msg *msg, int r)
{
	if (wants_ack(s, msg))
		reply_u64(s, msg->hdr.request, r < 0 ? 1 : 0);
}

static void watch_client(struct bridge_session *s, bool on)
{
	if (s->conn_fd < 0)
		return;
	if (on && !s->conn_watch.added)
		vu_loop_add(&s->b->loop, &s->conn_watch, s->conn_fd, EPOLLIN, s->conn_watch.fn);
	else if (!on && s->conn_watch.added)
		vu_loop_del(&s->b->loop, &s->conn_watch);
}

int bridge_used_idx(struct bridge_session *s, unsigned qi)
{
	const struct bridge_queue *q = &s->q[qi];

	if (!s->mem_set || !q->addr_set)
		return -1;
	/* struct vring_used { le16 flags; le16 idx; ... }: the index the driver has seen. */
	volatile uint16_t *idx = vu_mem_uva_to_host(&s->mem, q->addr.used_user_addr + 2, 2);
	return idx ? *idx : -1;
}

static void mem_unmap(struct bridge_session *s)
{
	for (unsigned i = 0; i < s->mem.nregions; i++)
		if (s->mem.regions[i].host)
			vu_socket_transport_ops.unmap_region(NULL, &s->mem.regions[i]);
	s->mem.nregions = 0;
	s->mem_set = false;
}

/* Records the memory table. Each file the regions come from (QEMU's memfd per memory backend: one,
 * or one per NUMA node) becomes BAR2 of a device in the DD: file 0 the session's own, file k a
 * further memory device (ddctl-proto.h). The table the DD's back-end gets (s->mem_msg, and msg
 * itself for a table passed on) says each region's file in its mmap_offset's top bits. */
static int handle_mem_table(struct bridge_session *s, struct vu_msg *msg)
{
	struct vu_mem mem;
	struct stat st[VU_MAX_MEM_REGIONS];
	unsigned file_of[VU_MAX_MEM_REGIONS] = { 0 }, first_region[DDCTL_MEM_FILES_MAX] = { 0 }, nfiles = 0;
	int r;

	r = vu_mem_from_msg(&msg->payload.memory, &mem);
	if (r < 0)
		return r;
	if (!msg->nfds || msg->nfds != mem.nregions) {
		snprintf(s->last_error, sizeof(s->last_error), "%u memory regions with %u fds", mem.nregions, msg->nfds);
		return -EINVAL;
	}
	for (unsigned i = 0; i < msg->nfds; i++) {
		if (fstat(msg->fds[i], &st[i]) < 0)
			return -errno;
		unsigned k = 0;
		while (k < nfiles && (st[first_region[k]].st_dev != st[i].st_dev || st[first_region[k]].st_ino != st[i].st_ino))
			k++;
		if (k == nfiles) {
			if (nfiles == DDCTL_MEM_FILES_MAX) {
				snprintf(s->last_error, sizeof(s->last_error),
					 "the client's memory is in more than %d files", DDCTL_MEM_FILES_MAX);
				return -EOPNOTSUPP;
			}
			first_region[nfiles++] = i;
		}
		file_of[i] = k;
		/* The offset must leave the top bits free for the file number. */
		if (msg->payload.memory.regions[i].mmap_offset >> DDCTL_MEM_FILE_SHIFT) {
			snprintf(s->last_error, sizeof(s->last_error), "a memory region at offset %#llx of its file",
				 (unsigned long long)msg->payload.memory.regions[i].mmap_offset);
			return -EOPNOTSUPP;
		}
	}
	for (unsigned i = 0; i < mem.nregions; i++) {
		r = vu_socket_transport_ops.map_region(NULL, &mem.regions[i], msg->fds[i]);
		if (r < 0) {
			for (unsigned j = 0; j < i; j++)
				vu_socket_transport_ops.unmap_region(NULL, &mem.regions[j]);
			return r;
		}
	}
	/* The same files in the same order: the devices in the DD stay. */
	bool same_files = nfiles == s->nfiles && nfiles > 0 && s->mem_fd >= 0 &&
			  s->mem_dev == st[first_region[0]].st_dev && s->mem_ino == st[first_region[0]].st_ino;
	for (unsigned k = 1; same_files && k < nfiles; k++)
		same_files = s->files[k].dev == st[first_region[k]].st_dev && s->files[k].ino == st[first_region[k]].st_ino;
	mem_unmap(s);
	s->mem = mem;
	for (unsigned i = 0; i < msg->nfds; i++) /* one per region, checked above */
		msg->payload.memory.regions[i].mmap_offset |= (uint64_t)file_of[i] << DDCTL_MEM_FILE_SHIFT;
	s->mem_msg = msg->payload.memory;
	s->mem_set = true;
	if (!same_files) {
		close_fd(&s->mem_fd);
		for (unsigned k = 1; k < DDCTL_MEM_FILES_MAX; k++)
			close_fd(&s->files[k].fd);
		for (unsigned k = 0; k < nfiles; k++) {
			int *fd = k ? &s->files[k].fd : &s->mem_fd;
			*fd = msg->fds[first_region[k]];
			msg->fds[first_region[k]] = -1;
			if (k) {
				s->files[k].dev = st[first_region[k]].st_dev;
				s->files[k].ino = st[first_region[k]].st_ino;
			}
		}
		s->mem_dev = st[first_region[0]].st_dev;
		s->mem_ino = st[first_region[0]].st_ino;
		s->nfiles = nfiles;
		bool plugged = s->device != BRIDGE_DEVICE_NONE;
		for (unsigned k = 1; k < DDCTL_MEM_FILES_MAX; k++)
			plugged |= s->files[k].device != BRIDGE_DEVICE_NONE;
		if (plugged) {
			fprintf(stderr, "ddtk-bridge: session %u (%s): new memory files: re-plugging its devices\n", s->id,
				s->client_name);
			s->want_replug = true;
		}
	}
	vu_msg_close_fds(msg);
	return 0;
}

static struct bridge_queue *queue_of(struct bridge_session *s, uint32_t index)
{
	return index < s->nqueues ? &s->q[index] : NULL;
}

static int take_vring_fd(struct bridge_session *s, struct vu_msg *msg, struct bridge_queue **ret_q, int *ret_fd)
{
	uint64_t v = msg->payload.u64;
	struct bridge_queue *q = queue_of(s, (uint32_t)(v & VU_VRING_INDEX_MASK));

	if (!q || (v & ~(VU_VRING_INDEX_MASK | VU_VRING_NOFD)))
		return -EINVAL;
	*ret_q = q;
	*ret_fd = -1;
	if (!(v & VU_VRING_NOFD)) {
		*ret_fd = msg->fds[0];
		msg->fds[0] = -1;
	}
	return 0;
}

/* Answers a question about the device from what the DD's back-end said before. */
static bool answer_from_cache(struct bridge_session *s, const struct vu_msg *msg)
{
	struct vu_msg reply;

	switch (msg->hdr.request) {
	case VU_REQ_GET_FEATURES:
		if (!s->have_features)
			return false;
		reply_u64(s, msg->hdr.request, s->dd_features);
		return true;
	case VU_REQ_GET_PROTOCOL_FEATURES:
		if (!s->have_protocol_features)
			return false;
		reply_u64(s, msg->hdr.request, s->dd_protocol_features & CLIENT_PROTOCOL_FEATURES);
		return true;
	case VU_REQ_GET_QUEUE_NUM:
		if (!s->have_queue_num)
			return false;
		reply_u64(s, msg->hdr.request, s->dd_queue_num);
		return true;
	case VU_REQ_GET_CONFIG:
		/* Config space can change (a net link's status): ask the DD while it serves. */
		if (s->dd == BRIDGE_DD_SESSION_RUNNING)
			return false;
		for (unsigned i = 0; i < BRIDGE_CONFIG_CACHE; i++) {
			const struct bridge_config_cache *c = &s->config_cache[i];
			if (c->valid && c->offset == msg->payload.config.offset && c->size == msg->payload.config.size) {
				vu_msg_init(&reply);
				reply.hdr.request = msg->hdr.request;
				reply.hdr.size = VU_CONFIG_HDR_SIZE + c->size;
				reply.payload.config.offset = c->offset;
				reply.payload.config.size = c->size;
				memcpy(reply.payload.config.region, c->bytes, c->size);
				send_to_client(s, &reply);
				return true;
			}
		}
		return false;
	default:
		return false;
	}
}

/* Sends msg on to the DD; a reply the client waits for comes back through
 * bridge_client_dd_reply(), and the client is not read meanwhile (its QEMU waits too). */
static int forward(struct bridge_session *s, struct vu_msg *msg, bool client_waits)
{
	int r = bridge_dd_send_vu(s, msg, client_waits ? BRIDGE_REPLY_CLIENT : BRIDGE_REPLY_BRIDGE);

	if (r == 0 && client_waits) {
		s->waiting_client_reply = true;
		watch_client(s, false);
	}
	return r;
}

/* A state change the DD must hear while it serves the device. */
static void pass_on(struct bridge_session *s, struct vu_msg *msg)
{
	if (s->built && forward(s, msg, wants_ack(s, msg)) == 0 && wants_ack(s, msg))
		return;
	ack(s, msg, 0);
}

static void queue_forget(struct bridge_session *s, unsigned i)
{
	struct bridge_queue *q = &s->q[i];

	if (q->kick_fd >= 0)
		bridge_kicks_set(s->b, s->spec.kick_vector + i, -1);
	close_fd(&q->kick_fd);
	close_fd(&q->call_fd);
	*q = (struct bridge_queue){ .kick_fd = -1, .call_fd = -1 };
}

static void device_reset(struct bridge_session *s)
{
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
		queue_forget(s, i);
	mem_unmap(s);
	s->features_set = false;
	s->owner_set = false;
	s->inflight_valid = false;
}

/* Returns true when msg was dealt with, false when it must wait (parked) for the DD. */
static bool handle(struct bridge_session *s, struct vu_msg *msg)
{
	struct bridge_queue *q;
	int r, fd;

	r = vu_msg_check(msg, true);
	if (r == -EOPNOTSUPP) {
		fprintf(stderr, "ddtk-bridge: %s: %s not supported\n", s->socket_path, vu_request_name(msg->hdr.request));
		ack(s, msg, r);
		return true;
	}
	if (r < 0) {
		bridge_client_disconnect(s, "malformed request");
		return true;
	}
	/* Requests outside the table were refused by vu_msg_check; the rest fall to default. */
	switch (msg->hdr.request) {
	case VU_REQ_GET_FEATURES:
	case VU_REQ_GET_PROTOCOL_FEATURES:
	case VU_REQ_GET_QUEUE_NUM:
	case VU_REQ_GET_CONFIG:
		if (answer_from_cache(s, msg))
			return true;
		if (s->dd != BRIDGE_DD_SESSION_RUNNING || !s->dd_pf_set)
			return false;
		if (forward(s, msg, true) < 0)
			return false;
		return true;
	case VU_REQ_SET_FEATURES:
		if (s->have_features && (msg->payload.u64 & ~s->dd_features)) {
			bridge_client_disconnect(s, "acked features never offered");
			return true;
		}
		s->features = msg->payload.u64;
		s->features_set = true;
		pass_on(s, msg);
		break;
	case VU_REQ_SET_PROTOCOL_FEATURES:
		if (msg->payload.u64 & ~CLIENT_PROTOCOL_FEATURES) {
			bridge_client_disconnect(s, "acked protocol features never offered");
			return true;
		}
		s->client_protocol_features = msg->payload.u64;
		ack(s, msg, 0);
		break;
	case VU_REQ_SET_OWNER:
		s->owner_set = true;
		ack(s, msg, 0);
		break;
	case VU_REQ_RESET_OWNER:
	case VU_REQ_RESET_DEVICE:
		pass_on(s, msg);
		device_reset(s);
		s->built = false;
		break;
	case VU_REQ_SET_MEM_TABLE:
		r = handle_mem_table(s, msg);
		if (r < 0) {
			fprintf(stderr, "ddtk-bridge: %s: memory table refused: %s\n", s->socket_path,
				s->last_error[0] ? s->last_error : strerror(-r));
			ack(s, msg, r);
			break;
		}
		if (s->want_replug || !s->built)
			ack(s, msg, 0);
		else
			pass_on(s, msg);
		bridge_session_changed(s);
		break;
	case VU_REQ_SET_VRING_NUM:
	case VU_REQ_SET_VRING_BASE:
	case VU_REQ_SET_VRING_ENABLE:
		q = queue_of(s, msg->payload.state.index);
		if (!q) {
			ack(s, msg, -EINVAL);
			break;
		}
		if (msg->hdr.request == VU_REQ_SET_VRING_NUM) {
			q->num = msg->payload.state.num;
			q->num_set = true;
		} else if (msg->hdr.request == VU_REQ_SET_VRING_BASE) {
			q->base = msg->payload.state.num;
			q->base_set = true;
		} else {
			q->enable = msg->payload.state.num;
			q->enable_set = true;
		}
		pass_on(s, msg);
		break;
	case VU_REQ_SET_VRING_ADDR:
		q = queue_of(s, msg->payload.addr.index);
		if (!q) {
			ack(s, msg, -EINVAL);
			break;
		}
		q->addr = msg->payload.addr;
		q->addr_set = true;
		pass_on(s, msg);
		break;
	case VU_REQ_SET_VRING_KICK:
		r = take_vring_fd(s, msg, &q, &fd);
		if (r == 0 && fd < 0)
			r = -EOPNOTSUPP; /* polling mode */
		if (r < 0) {
			ack(s, msg, r);
			break;
		}
		close_fd(&q->kick_fd);
		q->kick_fd = fd;
		r = bridge_kicks_set(s->b, s->spec.kick_vector + (unsigned)(q - s->q), fd);
		if (r < 0) {
			/* The fd could not be dup'd (out of fds): kicks of this ring would be lost. */
			fprintf(stderr, "ddtk-bridge: session %u (%s): cannot forward the kicks of queue %u: %s\n",
				s->id, s->client_name, (unsigned)(q - s->q), strerror(-r));
			close_fd(&q->kick_fd);
			ack(s, msg, r);
			break;
		}
		/* A new kick fd on a stopped ring starts a new ring generation: what the state area
		 * holds for the old one is void (the client collected its base before), and the DD's
		 * session starts again from the recorded state. On a ring the DD runs, only the
		 * forwarding changed. */
		if (!q->in_dd) {
			s->inflight_valid = false;
			if (s->built)
				s->want_restart = true;
		}
		ack(s, msg, 0);
		bridge_session_changed(s);
		break;
	case VU_REQ_SET_VRING_CALL:
		r = take_vring_fd(s, msg, &q, &fd);
		if (r < 0) {
			ack(s, msg, r);
			break;
		}
		close_fd(&q->call_fd);
		q->call_fd = fd;
		bridge_ivshmem_resend_peer(s->b, &s->iv);
		ack(s, msg, 0);
		break;
	case VU_REQ_SET_VRING_ERR:
		ack(s, msg, 0);
		break;
	case VU_REQ_GET_VRING_BASE:
		q = queue_of(s, msg->payload.state.index);
		if (!q) {
			bridge_client_disconnect(s, "GET_VRING_BASE of a queue that does not exist");
			return true;
		}
		if (q->in_dd && s->built && forward(s, msg, true) == 0)
			return true;
		if (q->in_dd) {
			int idx = bridge_used_idx(s, msg->payload.state.index);
			if (idx >= 0)
				q->base = (uint32_t)idx;
			q->in_dd = false;
		}
		{
			struct vu_msg reply;
			vu_msg_init(&reply);
			reply.hdr.request = msg->hdr.request;
			reply.hdr.size = sizeof(struct vu_vring_state);
			reply.payload.state.index = msg->payload.state.index;
			reply.payload.state.num = q->base;
			send_to_client(s, &reply);
		}
		break;
	case VU_REQ_SET_CONFIG:
		if (s->dd == BRIDGE_DD_SESSION_RUNNING && forward(s, msg, wants_ack(s, msg)) == 0) {
			if (!wants_ack(s, msg))
				break;
			return true;
		}
		ack(s, msg, -EAGAIN);
		break;
	default:
		/* GET/SET_INFLIGHT_FD and anything else: not offered to clients. */
		ack(s, msg, -EOPNOTSUPP);
		break;
	}
	vu_msg_close_fds(msg);
	return true;
}

/* Handles what the client sent until its socket is empty or a message must wait. */
static void serve(struct bridge_session *s)
{
	int r;

	while (s->conn_fd >= 0 && !s->waiting_client_reply) {
		if (!s->parked) {
			r = vu_socket_recv(s->conn_fd, &s->rx);
			if (r == 0)
				return;
			if (r < 0) {
				bridge_client_disconnect(s, r == -ECONNRESET ? NULL : "receive error");
				return;
			}
		}
		if (!handle(s, &s->rx.msg)) {
			s->parked = true;
			watch_client(s, false);
			return;
		}
		s->parked = false;
		vu_msg_close_fds(&s->rx.msg);
		vu_socket_rx_init(&s->rx);
	}
}

void bridge_client_resume(struct bridge_session *s)
{
	if (s->conn_fd < 0 || s->waiting_client_reply)
		return;
	watch_client(s, true);
	serve(s);
}

/* A reply of the DD's back-end to a request the client waits for. */
void bridge_client_dd_reply(struct bridge_session *s, const struct bridge_pending *p, struct vu_msg *reply)
{
	if (reply->hdr.request == VU_REQ_GET_FEATURES) {
		s->dd_features = reply->payload.u64;
		s->have_features = true;
	} else if (reply->hdr.request == VU_REQ_GET_PROTOCOL_FEATURES) {
		s->dd_protocol_features = reply->payload.u64;
		s->have_protocol_features = true;
		reply->payload.u64 &= CLIENT_PROTOCOL_FEATURES;
		if (p->owner != BRIDGE_REPLY_CLIENT) {
			bridge_dd_session_ready(s);
			return;
		}
	} else if (reply->hdr.request == VU_REQ_GET_QUEUE_NUM) {
		s->dd_queue_num = reply->payload.u64;
		s->have_queue_num = true;
	} else if (reply->hdr.request == VU_REQ_GET_CONFIG && reply->payload.config.size == p->config_size &&
		   reply->payload.config.size <= VU_MAX_CONFIG_SIZE) {
		unsigned slot = 0;
		for (unsigned i = 0; i < BRIDGE_CONFIG_CACHE; i++)
			if (!s->config_cache[i].valid || (s->config_cache[i].offset == p->config_offset &&
							  s->config_cache[i].size == p->config_size)) {
				slot = i;
				break;
			}
		struct bridge_config_cache *c = &s->config_cache[slot];
		c->valid = true;
		c->offset = p->config_offset;
		c->size = p->config_size;
		memcpy(c->bytes, reply->payload.config.region, c->size);
	} else if (reply->hdr.request == VU_REQ_GET_VRING_BASE) {
		struct bridge_queue *q = queue_of(s, reply->payload.state.index);
		if (q) {
			q->base = reply->payload.state.num;
			q->in_dd = false;
		}
	}
	if (p->owner != BRIDGE_REPLY_CLIENT)
		return;
	s->waiting_client_reply = false;
	send_to_client(s, reply);
	bridge_client_resume(s);
}

/* The DD can no longer answer a request the client waits for: answer it as the DD would have
 * (REPLY_ACK: done; GET_VRING_BASE: the ring's used index), or ask again later (questions). */
void bridge_client_dd_gone(struct bridge_session *s, const struct bridge_pending *p)
{
	struct vu_msg reply;

	if (p->owner != BRIDGE_REPLY_CLIENT)
		return;
	s->waiting_client_reply = false;
	switch (p->request) {
	case VU_REQ_GET_FEATURES:
	case VU_REQ_GET_PROTOCOL_FEATURES:
	case VU_REQ_GET_QUEUE_NUM:
	case VU_REQ_GET_CONFIG:
		/* The question is asked again: from the cache, or of the next DD. */
		vu_msg_init(&s->rx.msg);
		s->rx.msg.hdr.request = p->request;
		s->rx.msg.hdr.flags = VU_FLAG_VERSION;
		if (p->request == VU_REQ_GET_CONFIG) {
			s->rx.msg.hdr.size = VU_CONFIG_HDR_SIZE + p->config_size;
			s->rx.msg.payload.config.offset = p->config_offset;
			s->rx.msg.payload.config.size = p->config_size;
		}
		s->parked = true;
		return;
	case VU_REQ_GET_VRING_BASE:
		vu_msg_init(&reply);
		reply.hdr.request = p->request;
		reply.hdr.size = sizeof(struct vu_vring_state);
		reply.payload.state.index = p->index;
		struct bridge_queue *q = queue_of(s, p->index);
		if (q) {
			int idx = bridge_used_idx(s, p->index);
			if (idx >= 0)
				q->base = (uint32_t)idx;
			q->in_dd = false;
			reply.payload.state.num = q->base;
		}
		send_to_client(s, &reply);
		break;
	default:
		reply_u64(s, p->request, 0);
		break;
	}
	bridge_client_resume(s);
}

static void on_conn(struct vu_watch *w, uint32_t events)
{
	struct bridge_session *s = vu_container_of(w, struct bridge_session, conn_watch);

	if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) {
		bridge_client_disconnect(s, NULL);
		return;
	}
	serve(s);
}

void bridge_client_disconnect(struct bridge_session *s, const char *why)
{
	if (s->conn_fd < 0)
		return;
	if (why)
		fprintf(stderr, "ddtk-bridge: session %u (%s): client dropped: %s\n", s->id, s->client_name, why);
	else
		fprintf(stderr, "ddtk-bridge: session %u (%s): client disconnected\n", s->id, s->client_name);
	watch_client(s, false);
	close(s->conn_fd);
	s->conn_fd = -1;
	vu_socket_rx_clear(&s->rx);
	vu_socket_rx_init(&s->rx);
	s->parked = s->waiting_client_reply = false;
	s->client_protocol_features = 0;
	device_reset(s);
	bridge_session_client_gone(s);
}

static void on_listen(struct vu_watch *w, uint32_t events)
{
	struct bridge_session *s = vu_container_of(w, struct bridge_session, listen_watch);
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	(void)events;

	if (fd < 0)
		return;
	/* One front-end per device: a reconnecting QEMU replaces its old connection. */
	bridge_client_disconnect(s, "replaced by a new connection");
	s->conn_fd = fd;
	s->conn_watch.fn = on_conn;
	fprintf(stderr, "ddtk-bridge: session %u (%s): client connected\n", s->id, s->client_name);
	watch_client(s, true);
}

int bridge_session_init(struct bridge *b, struct bridge_session *s)
{
	char path[DDTK_SOCKET_PATH_MAX];
	gid_t gid;
	int r;

	s->b = b;
	s->listen_fd = s->conn_fd = s->mem_fd = -1;
	for (unsigned k = 0; k < DDCTL_MEM_FILES_MAX; k++)
		s->files[k].fd = -1;
	s->conn_watch.fn = on_conn;
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
		s->q[i].kick_fd = s->q[i].call_fd = -1;
	vu_socket_rx_init(&s->rx);
	r = vu_socket_listen(s->socket_path, &s->listen_fd);
	if (r < 0)
		return r;
	r = vu_parse_group("kvm", &gid);
	if (r == 0)
		r = vu_socket_set_group(s->socket_path, gid);
	if (r < 0)
		return r;
	r = vu_loop_add(&b->loop, &s->listen_watch, s->listen_fd, EPOLLIN, on_listen);
	if (r < 0)
		return r;
	r = ddtk_bridge_ivshmem_socket(&b->cfg, s->id, path);
	if (r == 0)
		r = bridge_ivshmem_init(b, &s->iv, s->id, path);
	for (unsigned k = 1; r == 0 && k < DDCTL_MEM_FILES_MAX; k++) {
		unsigned id = ddctl_mem_ivposition(s->id, k);
		s->files[k].fd = -1;
		r = ddtk_bridge_ivshmem_socket(&b->cfg, id, path);
		if (r == 0)
			r = bridge_ivshmem_init(b, &s->files[k].iv, id, path);
		s->files[k].iv.mem_only = true;
	}
	return r;
}

void bridge_session_close(struct bridge_session *s)
{
	bridge_client_disconnect(s, NULL);
	bridge_ivshmem_close(&s->iv);
	for (unsigned k = 1; k < DDCTL_MEM_FILES_MAX; k++) {
		bridge_ivshmem_close(&s->files[k].iv);
		close_fd(&s->files[k].fd);
	}
	if (s->listen_fd >= 0) {
		vu_loop_del(&s->b->loop, &s->listen_watch);
		close(s->listen_fd);
		unlink(s->socket_path);
		s->listen_fd = -1;
	}
	close_fd(&s->mem_fd);
}
