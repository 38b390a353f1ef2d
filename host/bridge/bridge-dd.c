/* The bridge's driver-domain side: the control port to ddtk-agent, the devices plugged into the
 * DD through libvirt, and each session's replay — the recorded state of a client's device handed
 * to the DD's back-end as vhost-user messages without fds (memory is BAR2 of the session's
 * ivshmem devices, one per file of the client's memory; kicks are the state device's MSI-X
 * vectors, calls Doorbell writes, inflight an area of the state device). The
 * DD is not trusted: its replies are checked against what was asked.
 *
 * A device is unplugged only when its memory changes (a new client QEMU) or its client goes: a ring
 * restart (every client boot restarts its disk's rings: SeaBIOS, then Linux) only restarts the
 * DD's session, since kicks go to the state device (bridge-kicks.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge.h"
#include "domxml.h"
#include "vu-vq.h"

#define CONNECT_INTERVAL_MS 500
/* A device is plugged (or its session rebuilt) once its rings have been still this long: QEMU
 * sends them one by one. */
#define SETTLE_MS 300
#define RESTART_BACKOFF_MS 1000
#define DEVICE_READY_MS 20000

static void session_lost(struct bridge_session *s);

int bridge_connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	size_t len = strlen(path);

	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int bridge_dd_send(struct bridge *b, uint8_t type, uint32_t id, const void *payload, uint32_t len)
{
	uint8_t buf[AGENT_FRAME_HEADER_SIZE + VU_MAX_PAYLOAD + 64];
	int n, r;

	if (b->ctl_fd < 0)
		return -ENOTCONN;
	n = ddctl_frame_encode(type, id, payload, len, buf, sizeof(buf));
	if (n < 0)
		return n;
	/* The port's buffer is far larger than the few frames in flight; a DD that does not read
	 * for two seconds is treated as gone. */
	r = agent_write_all(b->ctl_fd, buf, (size_t)n, agent_now_ms() + 2000);
	if (r < 0) {
		bridge_dd_lost(b, "cannot write to the control port");
		return r;
	}
	return 0;
}

int bridge_dd_send_vu(struct bridge_session *s, const struct vu_msg *msg, enum bridge_reply_owner owner)
{
	struct bridge *b = s->b;
	const struct vu_msg_rule *rule = vu_msg_rule(msg->hdr.request);
	uint8_t buf[sizeof(struct vu_hdr) + VU_MAX_PAYLOAD];
	struct vu_hdr h = msg->hdr;
	bool reply;
	int r;

	if (s->dd != BRIDGE_DD_SESSION_RUNNING || !rule)
		return -ENOTCONN;
	/* The bridge always asks for REPLY_ACK when the back-end has it: a refusal must not pass
	 * unnoticed during a replay. */
	reply = rule->has_reply;
	h.flags = VU_FLAG_VERSION;
	if (!reply && (s->dd_protocol_features & VU_BIT(VU_PROTOCOL_F_REPLY_ACK)) &&
	    msg->hdr.request != VU_REQ_SET_PROTOCOL_FEATURES && msg->hdr.request != VU_REQ_GET_PROTOCOL_FEATURES &&
	    msg->hdr.request != VU_REQ_GET_FEATURES && s->builds_acked_reply) {
		h.flags |= VU_FLAG_NEED_REPLY;
		reply = true;
	}
	if (reply && s->pending_count == BRIDGE_PENDING_MAX)
		return -EBUSY;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &msg->payload, msg->hdr.size);
	r = bridge_dd_send(b, DDCTL_MSG_VU, s->id, buf, (uint32_t)(sizeof(h) + msg->hdr.size));
	if (r < 0)
		return r;
	if (reply) {
		struct bridge_pending *p = &s->pending[(s->pending_head + s->pending_count) % BRIDGE_PENDING_MAX];
		*p = (struct bridge_pending){ .request = msg->hdr.request, .owner = owner, .sent_ms = bridge_now_ms() };
		if (msg->hdr.request == VU_REQ_GET_CONFIG) {
			p->config_offset = msg->payload.config.offset;
			p->config_size = msg->payload.config.size;
		} else if (msg->hdr.request == VU_REQ_GET_VRING_BASE) {
			p->index = msg->payload.state.index;
		}
		s->pending_count++;
	} else if (owner == BRIDGE_REPLY_CLIENT) {
		return -EINVAL; /* nothing will come back */
	}
	return 0;
}

static void send_simple(struct bridge_session *s, uint32_t request, uint64_t u64, bool has_u64)
{
	struct vu_msg m;

	vu_msg_init(&m);
	m.hdr.request = request;
	if (has_u64) {
		m.hdr.size = sizeof(uint64_t);
		m.payload.u64 = u64;
	}
	bridge_dd_send_vu(s, &m, BRIDGE_REPLY_BRIDGE);
}

static void send_state(struct bridge_session *s, uint32_t request, unsigned index, uint32_t num)
{
	struct vu_msg m;

	vu_msg_init(&m);
	m.hdr.request = request;
	m.hdr.size = sizeof(struct vu_vring_state);
	m.payload.state.index = index;
	m.payload.state.num = num;
	bridge_dd_send_vu(s, &m, BRIDGE_REPLY_BRIDGE);
}

/* The protocol features the bridge acks toward the DD's back-end. */
static uint64_t dd_protocol_features(const struct bridge_session *s)
{
	uint64_t want = VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK) | VU_BIT(VU_PROTOCOL_F_CONFIG) |
			VU_BIT(VU_PROTOCOL_F_MTU) | VU_BIT(VU_PROTOCOL_F_RESET_DEVICE);

	if (s->spec.kind == DDCTL_KIND_BLK)
		want |= VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD);
	return want & s->dd_protocol_features;
}

/* Hands the recorded state of s to the DD's back-end: the device then serves the client's rings
 * where the last one (or the client) left them. */
static void session_build(struct bridge_session *s)
{
	struct vu_msg m;
	uint16_t qsize = 0;

	for (unsigned i = 0; i < s->nqueues; i++)
		if (s->q[i].num_set && s->q[i].num > qsize && s->q[i].num <= VU_MAX_QUEUE_SIZE)
			qsize = (uint16_t)s->q[i].num;

	s->builds_acked_reply = false;
	send_simple(s, VU_REQ_SET_OWNER, 0, false);
	send_simple(s, VU_REQ_SET_FEATURES, s->features, true);
	if (s->features & VU_BIT(VU_F_PROTOCOL_FEATURES))
		send_simple(s, VU_REQ_SET_PROTOCOL_FEATURES, dd_protocol_features(s), true);
	s->builds_acked_reply = (s->features & VU_BIT(VU_F_PROTOCOL_FEATURES)) &&
				(dd_protocol_features(s) & VU_BIT(VU_PROTOCOL_F_REPLY_ACK));

	vu_msg_init(&m);
	m.hdr.request = VU_REQ_SET_MEM_TABLE;
	m.hdr.size = (uint32_t)(8 + s->mem_msg.nregions * sizeof(struct vu_mem_region_msg));
	m.payload.memory = s->mem_msg;
	bridge_dd_send_vu(s, &m, BRIDGE_REPLY_BRIDGE);

	if ((dd_protocol_features(s) & VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD)) && qsize &&
	    (s->features & VU_BIT(VU_F_PROTOCOL_FEATURES))) {
		uint64_t size = vu_inflight_queue_size(qsize) * s->nqueues;
		uint8_t *area = s->b->state_map + (uint64_t)s->id * DDCTL_STATE_AREA;
		if (size <= DDCTL_STATE_AREA) {
			/* Fresh rings start from an empty region; after a lost DD the region tells the
			 * next one what was in flight. */
			if (!s->inflight_valid)
				memset(area, 0, DDCTL_STATE_AREA);
			s->inflight_valid = true;
			vu_msg_init(&m);
			m.hdr.request = VU_REQ_SET_INFLIGHT_FD;
			m.hdr.size = sizeof(struct vu_inflight_msg);
			m.payload.inflight.mmap_size = size;
			m.payload.inflight.mmap_offset = (uint64_t)s->id * DDCTL_STATE_AREA;
			m.payload.inflight.num_queues = (uint16_t)s->nqueues;
			m.payload.inflight.queue_size = qsize;
			bridge_dd_send_vu(s, &m, BRIDGE_REPLY_BRIDGE);
		} else {
			fprintf(stderr, "ddtk-bridge: session %u: rings too large for the state area; "
				"requests in flight when the DD dies will be lost\n", s->id);
		}
	}

	for (unsigned i = 0; i < s->nqueues; i++) {
		struct bridge_queue *q = &s->q[i];
		if (q->num_set)
			send_state(s, VU_REQ_SET_VRING_NUM, i, q->num);
		if (q->addr_set) {
			vu_msg_init(&m);
			m.hdr.request = VU_REQ_SET_VRING_ADDR;
			m.hdr.size = sizeof(struct vu_vring_addr);
			m.payload.addr = q->addr;
			bridge_dd_send_vu(s, &m, BRIDGE_REPLY_BRIDGE);
		}
		if (q->base_set || q->in_dd)
			send_state(s, VU_REQ_SET_VRING_BASE, i, q->base);
		if (q->call_fd >= 0)
			send_simple(s, VU_REQ_SET_VRING_CALL, i | VU_VRING_NOFD, true);
		if (q->enable_set)
			send_state(s, VU_REQ_SET_VRING_ENABLE, i, q->enable);
		if (q->kick_fd >= 0) {
			send_simple(s, VU_REQ_SET_VRING_KICK, i | VU_VRING_NOFD, true);
			q->in_dd = true;
		}
	}
	/* Completions a lost DD published without telling the driver: one spurious interrupt per
	 * ring makes the client's driver look. */
	for (unsigned i = 0; i < s->nqueues; i++) {
		uint64_t one = 1;
		if (s->q[i].call_fd >= 0 && write(s->q[i].call_fd, &one, sizeof(one)) < 0) {
			/* A saturated eventfd has an interrupt pending anyway. */
		}
	}
	s->built = true;
	s->builds++;
	fprintf(stderr, "ddtk-bridge: session %u (%s %s): served by the DD (build %u)\n", s->id,
		s->spec.kind == DDCTL_KIND_BLK ? "blk" : "net", s->client_name, s->builds);
}

/* The DD no longer serves s's rings (its back-end died, the DD died, or the device is replaced):
 * where each ring stands is now what the client's used index says. */
static void session_lost(struct bridge_session *s)
{
	for (unsigned i = 0; i < s->nqueues; i++) {
		struct bridge_queue *q = &s->q[i];
		if (!q->in_dd)
			continue;
		int idx = bridge_used_idx(s, i);
		if (idx >= 0)
			q->base = (uint32_t)idx;
	}
	s->built = false;
	s->builds_acked_reply = false;
	s->dd_pf_set = false;
	while (s->pending_count) {
		struct bridge_pending p = s->pending[s->pending_head];
		s->pending_head = (s->pending_head + 1) % BRIDGE_PENDING_MAX;
		s->pending_count--;
		bridge_client_dd_gone(s, &p);
	}
	s->pending_head = 0;
}

void bridge_dd_session_ready(struct bridge_session *s)
{
	if (s->dd != BRIDGE_DD_SESSION_RUNNING || s->dd_pf_set)
		return;
	if (s->dd_features & VU_BIT(VU_F_PROTOCOL_FEATURES))
		send_simple(s, VU_REQ_SET_PROTOCOL_FEATURES, dd_protocol_features(s), true);
	s->dd_pf_set = true;
	bridge_client_resume(s);
}

void bridge_session_changed(struct bridge_session *s)
{
	s->settle_ms = bridge_now_ms() + SETTLE_MS;
}

void bridge_session_client_gone(struct bridge_session *s)
{
	/* The device in the DD shows memory of a VM that may be gone: take it out. */
	bool plugged = s->device != BRIDGE_DEVICE_NONE;
	for (unsigned k = 1; k < DDCTL_MEM_FILES_MAX; k++)
		plugged |= s->files[k].device != BRIDGE_DEVICE_NONE;
	if (s->built || plugged)
		s->want_replug = true;
	session_lost(s);
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
		s->q[i].in_dd = false;
	s->inflight_valid = false;
}

static void plug(struct bridge *b, struct bridge_ivshmem *iv, enum bridge_device_state *state)
{
	struct ddtk_err err = { 0 };
	char *xml = NULL;

	if (vm_xml_ivshmem(iv->id, iv->path, iv->vectors, &xml, &err) < 0) {
		fprintf(stderr, "ddtk-bridge: device %u: %s\n", iv->id, err.msg);
		return;
	}
	if (bridge_worker_attach(b, iv->id, xml) == 0)
		*state = BRIDGE_DEVICE_PLUGGING;
	free(xml);
}

/* Plugs the device of s's memory file k into a free slot of the DD's second hot-plug bridge. */
static void plug_mem(struct bridge *b, struct bridge_session *s, unsigned k)
{
	struct bridge_mem_file *f = &s->files[k];
	struct ddtk_err err = { 0 };
	unsigned slot = 1;
	char *xml = NULL;

	while (slot <= VM_DD_MEM_SLOTS && b->mem_slot_used[slot])
		slot++;
	if (slot > VM_DD_MEM_SLOTS) {
		if (!s->last_error[0])
			snprintf(s->last_error, sizeof(s->last_error), "no free slot for memory file %u", k);
		return;
	}
	if (vm_xml_ivshmem_mem(s->id, k, slot, f->iv.path, &xml, &err) < 0) {
		fprintf(stderr, "ddtk-bridge: session %u: memory file %u: %s\n", s->id, k, err.msg);
		return;
	}
	f->iv.mem_fd = f->fd;
	f->iv.vectors = 1;
	if (bridge_worker_attach(b, f->iv.id, xml) == 0) {
		f->device = BRIDGE_DEVICE_PLUGGING;
		f->slot = slot;
		b->mem_slot_used[slot] = true;
	}
	free(xml);
}

/* Whether every further memory file of s has its device ready in the DD. */
static bool mem_files_ready(const struct bridge_session *s)
{
	for (unsigned k = 1; k < s->nfiles; k++)
		if (s->files[k].device != BRIDGE_DEVICE_READY)
			return false;
	return true;
}

static bool client_ready(const struct bridge_session *s)
{
	if (s->conn_fd < 0 || !s->mem_set || !s->features_set)
		return false;
	for (unsigned i = 0; i < s->nqueues; i++)
		if (s->q[i].kick_fd >= 0)
			return true;
	return false;
}

static void session_tick(struct bridge_session *s, int64_t now)
{
	struct bridge *b = s->b;

	if (s->iv.poke_at_ms && now >= s->iv.poke_at_ms) {
		s->iv.poke_at_ms = 0;
		for (unsigned i = 0; i < s->nqueues; i++) {
			uint64_t one = 1;
			if (s->q[i].call_fd >= 0 && write(s->q[i].call_fd, &one, sizeof(one)) < 0) {
				/* Saturated: an interrupt is pending anyway. */
			}
		}
	}

	for (unsigned k = 1; k < s->nfiles && !s->want_replug; k++) {
		if (s->files[k].device == BRIDGE_DEVICE_PLUGGED && now - s->files[k].plugged_ms > DEVICE_READY_MS) {
			fprintf(stderr, "ddtk-bridge: session %u (%s): the DD did not take memory file %u's device within "
				"%d s: re-plugging\n", s->id, s->client_name, k, DEVICE_READY_MS / 1000);
			s->want_replug = true;
		}
	}
	if (s->device == BRIDGE_DEVICE_PLUGGED && !s->want_replug && now - s->plugged_ms > DEVICE_READY_MS) {
		/* The agent never reported it bound: plug it again rather than wait forever. */
		fprintf(stderr, "ddtk-bridge: session %u (%s): the DD did not take device %u within %d s: re-plugging\n",
			s->id, s->client_name, s->id, DEVICE_READY_MS / 1000);
		s->want_replug = true;
	}
	if (s->want_replug || s->want_restart) {
		/* Order: stop the back-end's use of the device, (unplug it, plug the new one). */
		if (s->dd == BRIDGE_DD_SESSION_RUNNING) {
			session_lost(s);
			if (bridge_dd_send(b, DDCTL_MSG_SESSION_STOP, s->id, NULL, 0) == 0)
				s->dd = BRIDGE_DD_SESSION_STOPPING;
			return;
		}
		if (s->dd != BRIDGE_DD_SESSION_DOWN)
			return;
		s->want_restart = false;
	}
	if (s->want_replug) {
		if (s->device == BRIDGE_DEVICE_READY || s->device == BRIDGE_DEVICE_PLUGGED) {
			if (bridge_worker_detach(b, s->id) == 0)
				s->device = BRIDGE_DEVICE_UNPLUGGING;
			return;
		}
		bool gone = s->device == BRIDGE_DEVICE_NONE;
		for (unsigned k = 1; k < DDCTL_MEM_FILES_MAX; k++) {
			struct bridge_mem_file *f = &s->files[k];
			if (f->device == BRIDGE_DEVICE_READY || f->device == BRIDGE_DEVICE_PLUGGED) {
				if (bridge_worker_detach(b, f->iv.id) == 0)
					f->device = BRIDGE_DEVICE_UNPLUGGING;
				return;
			}
			gone &= f->device == BRIDGE_DEVICE_NONE;
		}
		if (!gone)
			return;
		s->want_replug = false;
	}
	if (s->dd == BRIDGE_DD_SESSION_DOWN && now >= s->start_after_ms) {
		if (bridge_dd_send(b, DDCTL_MSG_SESSION_START, s->id, NULL, 0) == 0)
			s->dd = BRIDGE_DD_SESSION_STARTING;
		return;
	}
	if (s->device == BRIDGE_DEVICE_NONE && client_ready(s) && now >= s->settle_ms &&
	    b->state_device == BRIDGE_DEVICE_READY) {
		s->iv.mem_fd = s->mem_fd;
		s->iv.vectors = s->nqueues;
		plug(b, &s->iv, &s->device);
		return;
	}
	/* The further memory files' devices after the session's own, one at a time. */
	for (unsigned k = 1; s->device != BRIDGE_DEVICE_NONE && k < s->nfiles && client_ready(s); k++) {
		struct bridge_mem_file *f = &s->files[k];
		if (f->device == BRIDGE_DEVICE_PLUGGING)
			return;
		if (f->device == BRIDGE_DEVICE_NONE && f->fd >= 0 && b->anchor_device == BRIDGE_DEVICE_READY) {
			plug_mem(b, s, k);
			return;
		}
	}
	if (!s->built && s->dd == BRIDGE_DD_SESSION_RUNNING && s->device == BRIDGE_DEVICE_READY && mem_files_ready(s) &&
	    client_ready(s) && now >= s->settle_ms && s->have_protocol_features && !s->waiting_client_reply && !s->parked)
		session_build(s);
}

void bridge_dd_tick(struct bridge *b)
{
	int64_t now = bridge_now_ms();

	if (b->ctl_fd < 0) {
		if (!b->connect_job_pending && now >= b->next_connect_ms) {
			b->next_connect_ms = now + CONNECT_INTERVAL_MS;
			if (bridge_worker_find_control(b) == 0)
				b->connect_job_pending = true;
		}
		return;
	}
	if (!b->hello_acked)
		return;
	if (b->state_device == BRIDGE_DEVICE_NONE) {
		b->state_iv.mem_fd = b->state_fd;
		b->state_iv.vectors = bridge_kicks_vectors(b);
		plug(b, &b->state_iv, &b->state_device);
	}
	if (b->state_device == BRIDGE_DEVICE_READY && b->anchor_device == BRIDGE_DEVICE_NONE) {
		struct ddtk_err err = { 0 };
		char *xml = NULL;
		b->anchor_iv.mem_fd = b->state_fd;
		b->anchor_iv.vectors = 1;
		if (vm_xml_ivshmem_mem(0, 0, 0, b->anchor_iv.path, &xml, &err) < 0)
			fprintf(stderr, "ddtk-bridge: the anchor device: %s\n", err.msg);
		else if (bridge_worker_attach(b, DDCTL_MEM_ANCHOR_IVPOSITION, xml) == 0)
			b->anchor_device = BRIDGE_DEVICE_PLUGGING;
		free(xml);
	}
	for (unsigned i = 0; i < b->nsessions; i++)
		session_tick(&b->sessions[i], now);
}

static void send_hello(struct bridge *b)
{
	char payload[4 + DDCTL_SESSIONS_MAX * 160];
	size_t pos = 4;

	agent_u32_put((uint8_t *)payload, DDCTL_VERSION);
	for (unsigned i = 0; i < b->nsessions; i++)
		if (ddctl_topology_format(&b->sessions[i].spec, payload, sizeof(payload), &pos) < 0)
			return;
	bridge_dd_send(b, DDCTL_MSG_HELLO, 0, payload, (uint32_t)pos);
}

void bridge_dd_lost(struct bridge *b, const char *why)
{
	if (b->ctl_fd < 0)
		return;
	fprintf(stderr, "ddtk-bridge: driver domain lost: %s\n", why);
	vu_loop_del(&b->loop, &b->ctl_watch);
	close(b->ctl_fd);
	b->ctl_fd = -1;
	b->hello_acked = false;
	b->next_connect_ms = bridge_now_ms() + CONNECT_INTERVAL_MS;
	for (unsigned i = 0; i < b->nsessions; i++) {
		struct bridge_session *s = &b->sessions[i];
		session_lost(s);
		s->dd = BRIDGE_DD_SESSION_DOWN;
		bridge_ivshmem_drop(&s->iv);
		s->device = BRIDGE_DEVICE_NONE;
		for (unsigned k = 1; k < DDCTL_MEM_FILES_MAX; k++) {
			bridge_ivshmem_drop(&s->files[k].iv);
			s->files[k].device = BRIDGE_DEVICE_NONE;
			s->files[k].slot = 0;
		}
		s->want_replug = s->want_restart = false;
	}
	memset(b->mem_slot_used, 0, sizeof(b->mem_slot_used));
	bridge_ivshmem_drop(&b->state_iv);
	b->state_device = BRIDGE_DEVICE_NONE;
	bridge_ivshmem_drop(&b->anchor_iv);
	b->anchor_device = BRIDGE_DEVICE_NONE;
}

static struct bridge_session *session_by_id(struct bridge *b, uint32_t id)
{
	return id >= 1 && id <= DDCTL_SESSIONS_MAX ? b->by_id[id] : NULL;
}

/* The session and file k of a further memory file's IVPosition; NULL when id is none. */
static struct bridge_session *mem_file_by_id(struct bridge *b, uint32_t id, unsigned *ret_k)
{
	if (id < DDCTL_MEM_IVPOSITION_BASE || id > DDCTL_MEM_IVPOSITION_LAST)
		return NULL;
	*ret_k = (id - DDCTL_MEM_IVPOSITION_BASE) % (DDCTL_MEM_FILES_MAX - 1) + 1;
	return session_by_id(b, (id - DDCTL_MEM_IVPOSITION_BASE) / (DDCTL_MEM_FILES_MAX - 1) + 1);
}

static void on_session_state(struct bridge *b, struct bridge_session *s, const struct agent_frame *f)
{
	if (f->len < 8)
		return;
	uint32_t state = agent_u32_get(f->payload);
	int32_t err = (int32_t)agent_u32_get(f->payload + 4);
	int tl = (int)(f->len - 8);

	switch (state) {
	case DDCTL_SESSION_RUNNING:
		if (s->dd != BRIDGE_DD_SESSION_STARTING)
			return;
		s->dd = BRIDGE_DD_SESSION_RUNNING;
		/* A back-end answers the questions that need protocol features (queue count, config)
		 * only once they are acked; learn what it offers first (the cache then also answers
		 * clients while a later DD boots). */
		if (s->have_features && s->have_protocol_features) {
			bridge_dd_session_ready(s);
		} else {
			send_simple(s, VU_REQ_GET_FEATURES, 0, false);
			send_simple(s, VU_REQ_GET_PROTOCOL_FEATURES, 0, false);
		}
		break;
	case DDCTL_SESSION_STOPPED:
	case DDCTL_SESSION_FAILED:
		if (state == DDCTL_SESSION_FAILED)
			fprintf(stderr, "ddtk-bridge: session %u (%s): DD back-end failed (%s): %.*s\n", s->id,
				s->client_name, strerror(-err), tl, (const char *)f->payload + 8);
		session_lost(s);
		s->dd = BRIDGE_DD_SESSION_DOWN;
		/* Started again after a pause, not in a tight loop with a back-end that keeps dying. */
		s->start_after_ms = bridge_now_ms() + (state == DDCTL_SESSION_FAILED ? RESTART_BACKOFF_MS : 0);
		break;
	default:
		break;
	}
	(void)b;
}

static void on_vu_reply(struct bridge_session *s, const struct agent_frame *f)
{
	struct vu_msg reply;

	if (f->len < sizeof(struct vu_hdr))
		return;
	vu_msg_init(&reply);
	memcpy(&reply.hdr, f->payload, sizeof(reply.hdr));
	if (reply.hdr.size != f->len - sizeof(struct vu_hdr) || reply.hdr.size > VU_MAX_PAYLOAD || !s->pending_count ||
	    !(reply.hdr.flags & VU_FLAG_REPLY)) {
		fprintf(stderr, "ddtk-bridge: session %u: unexpected reply from the DD; restarting the session\n", s->id);
		session_lost(s);
		bridge_dd_send(s->b, DDCTL_MSG_SESSION_STOP, s->id, NULL, 0);
		s->dd = BRIDGE_DD_SESSION_STOPPING;
		return;
	}
	memcpy(&reply.payload, f->payload + sizeof(struct vu_hdr), reply.hdr.size);
	struct bridge_pending p = s->pending[s->pending_head];
	s->pending_head = (s->pending_head + 1) % BRIDGE_PENDING_MAX;
	s->pending_count--;
	if (reply.hdr.request != p.request) {
		fprintf(stderr, "ddtk-bridge: session %u: the DD answered %s to %s\n", s->id,
			vu_request_name(reply.hdr.request), vu_request_name(p.request));
		bridge_client_dd_gone(s, &p);
		return;
	}
	if (p.owner == BRIDGE_REPLY_BRIDGE && !vu_msg_rule(p.request)->has_reply) {
		if (reply.payload.u64 != 0)
			fprintf(stderr, "ddtk-bridge: session %u (%s): the DD refused %s\n", s->id, s->client_name,
				vu_request_name(p.request));
		return;
	}
	bridge_client_dd_reply(s, &p, &reply);
}

static void on_frame(struct bridge *b, const struct agent_frame *f)
{
	struct bridge_session *s = session_by_id(b, f->id);

	switch ((enum ddctl_msg_type)f->type) {
	case DDCTL_MSG_HELLO_ACK:
		if (f->len < 8)
			return;
		uint64_t boot = (uint64_t)agent_u32_get(f->payload) | (uint64_t)agent_u32_get(f->payload + 4) << 32;
		if (!b->have_boot_id || boot != b->boot_id)
			b->dd_boots_seen++;
		b->boot_id = boot;
		b->have_boot_id = true;
		b->hello_acked = true;
		fprintf(stderr, "ddtk-bridge: driver domain up (boot %016" PRIx64 ", %.*s)\n", boot, (int)(f->len - 8),
			(const char *)f->payload + 8);
		break;
	case DDCTL_MSG_DEVICE_ADDED: {
		unsigned k;
		struct bridge_session *m = mem_file_by_id(b, f->id, &k);
		if (f->id == DDCTL_STATE_IVPOSITION) {
			b->state_device = BRIDGE_DEVICE_READY;
		} else if (f->id == DDCTL_MEM_ANCHOR_IVPOSITION) {
			b->anchor_device = BRIDGE_DEVICE_READY;
		} else if (m) {
			if (m->files[k].device == BRIDGE_DEVICE_PLUGGED || m->files[k].device == BRIDGE_DEVICE_PLUGGING)
				m->files[k].device = BRIDGE_DEVICE_READY;
		} else if (s && (s->device == BRIDGE_DEVICE_PLUGGED || s->device == BRIDGE_DEVICE_PLUGGING)) {
			s->device = BRIDGE_DEVICE_READY;
		}
		break;
	}
	case DDCTL_MSG_DEVICE_REMOVED:
		fprintf(stderr, "ddtk-bridge: the DD saw device %u go\n", f->id);
		break; /* the ivshmem connection's end says the same, for certain */
	case DDCTL_MSG_SESSION_STATE:
		if (s)
			on_session_state(b, s, f);
		break;
	case DDCTL_MSG_VU:
		if (s)
			on_vu_reply(s, f);
		break;
	case DDCTL_MSG_HEALTH:
		if (f->len >= 4) {
			bool healthy = agent_u32_get(f->payload) != 0;
			if (healthy != b->dd_healthy)
				fprintf(stderr, "ddtk-bridge: driver domain %s\n", healthy ? "healthy" : "NOT healthy");
			b->dd_healthy = healthy;
			snprintf(b->dd_health, sizeof(b->dd_health), "%.*s", (int)(f->len - 4), (const char *)f->payload + 4);
		}
		break;
	case DDCTL_MSG_ERROR:
		fprintf(stderr, "ddtk-bridge: the DD says (about %u): %.*s\n", f->id, (int)f->len, (const char *)f->payload);
		break;
	case DDCTL_MSG_HELLO:
	case DDCTL_MSG_SESSION_START:
	case DDCTL_MSG_SESSION_STOP:
	case _DDCTL_MSG_LAST:
		break;
	}
}

static void on_ctl(struct vu_watch *w, uint32_t events)
{
	struct bridge *b = vu_container_of(w, struct bridge, ctl_watch);
	uint8_t buf[16384];
	struct agent_frame f;

	for (;;) {
		size_t room = agent_decoder_room(&b->dec);
		ssize_t n = recv(b->ctl_fd, buf, room < sizeof(buf) ? room : sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			bridge_dd_lost(b, n == 0 ? "control port closed (DD stopped)" : strerror(errno));
			return;
		}
		if (n < 0)
			break;
		size_t take = (size_t)n;
		agent_decoder_feed(&b->dec, buf, &take);
		while (b->ctl_fd >= 0 && agent_decoder_next(&b->dec, &f) == 1)
			on_frame(b, &f);
		if (b->ctl_fd < 0)
			return;
	}
	(void)events;
}

void bridge_ctl_connected(struct bridge *b, int fd)
{
	if (b->ctl_fd >= 0) {
		close(fd);
		return;
	}
	b->ctl_fd = fd;
	ddctl_decoder_init(&b->dec);
	vu_loop_add(&b->loop, &b->ctl_watch, fd, EPOLLIN, on_ctl);
	send_hello(b);
}

static struct bridge_ivshmem *iv_by_id(struct bridge *b, unsigned id, enum bridge_device_state **ret_state)
{
	if (id == DDCTL_STATE_IVPOSITION) {
		*ret_state = &b->state_device;
		return &b->state_iv;
	}
	if (id == DDCTL_MEM_ANCHOR_IVPOSITION) {
		*ret_state = &b->anchor_device;
		return &b->anchor_iv;
	}
	unsigned k;
	struct bridge_session *m = mem_file_by_id(b, id, &k);
	if (m) {
		*ret_state = &m->files[k].device;
		return &m->files[k].iv;
	}
	struct bridge_session *s = session_by_id(b, id);
	if (!s)
		return NULL;
	*ret_state = &s->device;
	return &s->iv;
}

void bridge_device_attached(struct bridge *b, unsigned id, int result, const char *error)
{
	enum bridge_device_state *state;
	struct bridge_ivshmem *iv = iv_by_id(b, id, &state);

	if (!iv || *state != BRIDGE_DEVICE_PLUGGING)
		return;
	unsigned k;
	struct bridge_session *m = mem_file_by_id(b, id, &k);
	if (result < 0) {
		fprintf(stderr, "ddtk-bridge: plugging device %u into the DD failed: %s\n", id, error);
		*state = BRIDGE_DEVICE_NONE;
		bridge_ivshmem_drop(iv);
		if (m && m->files[k].slot) {
			b->mem_slot_used[m->files[k].slot] = false;
			m->files[k].slot = 0;
		}
		return;
	}
	*state = BRIDGE_DEVICE_PLUGGED;
	if (m)
		m->files[k].plugged_ms = bridge_now_ms();
	if (session_by_id(b, id)) {
		session_by_id(b, id)->plugged_ms = bridge_now_ms();
		session_by_id(b, id)->plugs++;
	}
	fprintf(stderr, "ddtk-bridge: device %u plugged into the DD\n", id);
}

void bridge_device_detached(struct bridge *b, unsigned id, int result, const char *error)
{
	enum bridge_device_state *state;
	struct bridge_ivshmem *iv = iv_by_id(b, id, &state);
	(void)result;
	(void)error;

	if (!iv || b->stop)
		return;
	/* An attach in progress: the connection of the QEMU that is realizing it broke; the
	 * attach job reports the failure. Otherwise the device is gone. */
	if (*state != BRIDGE_DEVICE_PLUGGING) {
		*state = BRIDGE_DEVICE_NONE;
		fprintf(stderr, "ddtk-bridge: device %u is out of the DD\n", id);
	}
	unsigned k;
	struct bridge_session *s = mem_file_by_id(b, id, &k);
	if (s && *state == BRIDGE_DEVICE_NONE && s->files[k].slot) {
		b->mem_slot_used[s->files[k].slot] = false;
		s->files[k].slot = 0;
	}
	if (!s)
		s = session_by_id(b, id);
	/* Memory the DD's back-end uses went away under it. */
	if (s && s->built) {
		session_lost(s);
		if (s->dd == BRIDGE_DD_SESSION_RUNNING && bridge_dd_send(b, DDCTL_MSG_SESSION_STOP, s->id, NULL, 0) == 0)
			s->dd = BRIDGE_DD_SESSION_STOPPING;
	}
}
