/* ddtk-net: the virtio-net vhost-user back-end. One process is a switch: one vhost-user socket per
 * client, frames switched between the clients and one uplink interface (AF_PACKET), each client
 * held to its configured MAC. Single-threaded; everything a guest or the wire sends is hostile. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "ddtk-config.h"
#include "net-ctrl.h"
#include "net-frame.h"
#include "net-gso.h"
#include "net-switch.h"
#include "net-tx.h"
#include "net-uplink.h"
#include "net-vnet.h"
#include "ddctl-proto.h"
#include "vu-backend.h"
#include "vu-ivshmem.h"
#include "vu-server.h"

#define NET_DEFAULT_PAIRS 1
#define NET_MAX_PAIRS 16
#define NET_MAX_QUEUE_SIZE 1024
#define NET_DEFAULT_MTU 1500
#define NET_MIN_MTU 68
/* Chains one TX kick may take before the others get their turn (the loop comes back). */
#define NET_TX_BUDGET 256
/* Uplink frames one wakeup takes before the clients get their turn. */
#define NET_UPLINK_BUDGET (4 * NET_UPLINK_BATCH)
/* Receive buffers one frame may spread over (mergeable buffers). */
#define NET_RX_MAX_BUFS 256
/* Frames held for a client whose receive ring is full, until it refills: beyond, they are dropped
 * (a client that stops refilling costs the others nothing). */
#define NET_BACKLOG_MAX_FRAMES 256
#define NET_BACKLOG_MAX_BYTES (4u << 20)
/* Multicast reports are small: snoop frames up to this size. */
#define NET_SNOOP_MAX 2048
#define NET_LOG_LIMIT 5
#define NET_DEFAULT_POLL_US 50
#define NET_UPLINK_BUFSIZE (NET_VNET_HDR_LEN + NET_MAX_FRAME)

struct net_client;

struct net_queue {
	struct net_client *client;
	struct vu_vq *vq;
	struct vu_watch kick_watch;
	uint16_t rx_seen;             /* RX: the driver's avail index when its buffers last ran out */
};

/* A frame waiting for a client's receive buffers. */
struct net_pkt {
	struct net_pkt *next;
	struct net_vnet_hdr hdr;
	uint32_t hash;
	size_t len;
	uint8_t data[];
};

struct net_client {
	struct net_port port;
	int index;                    /* in the switch */
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;
	unsigned ivshmem;             /* driver-domain mode: the session's ivshmem device; 0 in host mode */
	unsigned kick_vector;         /* driver-domain mode: the state-device vector of queue 0's kicks */
	bool kick_vector_given;
	struct vu_ivshmem iv;
	unsigned pairs;               /* offered */
	unsigned pairs_used;          /* control queue MQ_VQ_PAIRS_SET; all by default */
	unsigned mtu;
	size_t hdr_len;               /* virtio-net header length the driver uses */
	struct vu_dev dev;
	struct vu_server srv;
	struct net_queue queues[VU_MAX_QUEUES];
	struct net_pkt *backlog, **backlog_tail;
	unsigned backlog_frames;
	size_t backlog_bytes;
	unsigned spoof_logged, malformed_logged;
};

/* A client frame on its way to the uplink: its chain stays popped until sendmmsg() is done. */
struct net_tx_pending {
	struct net_queue *q;
	uint16_t head;
	uint8_t hdr[NET_VNET_HDR_LEN];
	uint8_t first[NET_TX_HEAD];      /* the frame's first bytes, as checked */
	unsigned iovcnt;
	struct iovec iov[VU_ELEM_MAX_IOV + 2];
};

static struct {
	struct vu_loop loop;
	struct net_switch sw;
	struct net_client *clients[NET_MAX_PORTS];
	unsigned nclients;
	bool have_uplink;             /* --uplink given */
	struct net_uplink up;         /* up.fd < 0 while the interface is gone */
	struct vu_watch up_watch;
	int up_check_fd;              /* a 1 s timer: is the interface still the one we opened? */
	struct vu_watch up_check_watch;
	uint8_t *up_bufs[NET_UPLINK_BATCH];
	struct net_tx_pending *pend;  /* NET_UPLINK_BATCH of them */
	struct vu_elem *tx_elem;      /* one per pending slot */
	unsigned npend;
	uint8_t *frame;               /* a client frame made linear */
	uint8_t *fixbuf;              /* a frame adapted for one receiver */
	uint8_t *segbuf;              /* a segment of a GSO packet cut for one receiver */
	struct vu_elem rx_first, rx_cur;
	struct net_tx_frame txf;      /* the frame tx_one() works on */
	struct vu_notify_list notify; /* queues to signal at the end of the loop turn */
	struct vu_stats_server stats;
	struct vu_backend_options opts;
	unsigned uplink_errors_logged;
	unsigned default_mtu;
} net = { .stats = { .fd = -1 }, .up = { .fd = -1 } };

/* ---------- queues ---------- */

enum net_queue_role {
	NET_QUEUE_RX,
	NET_QUEUE_TX,
	NET_QUEUE_CTRL,
};

static enum net_queue_role queue_role(const struct net_client *c, unsigned index)
{
	/* With MQ the control queue follows every pair; without, it follows the first. */
	unsigned ctrl = vu_dev_has_feature(&c->dev, NET_F_MQ) ? 2 * c->pairs : 2;

	if (vu_dev_has_feature(&c->dev, NET_F_CTRL_VQ) && index == ctrl)
		return NET_QUEUE_CTRL;
	return index % 2 ? NET_QUEUE_TX : NET_QUEUE_RX;
}

static void queue_mark_notify(struct net_queue *q)
{
	vu_dev_notify_later(&net.notify, &q->client->dev, q->vq);
}

static void notify_all(void)
{
	vu_notify_list_flush(&net.notify);
}

static void watch_queues(struct net_client *c, bool on);

static void client_break(struct net_client *c, const char *what, int err)
{
	vu_dev_set_broken(&c->dev, "%s (%s)", what, strerror(-err));
	fprintf(stderr, "%s: device broken: %s; other clients are not affected\n", c->srv.name, c->dev.broken_reason);
	watch_queues(c, false);
}

/* ---------- receive: frames into a client's buffers ---------- */

static void backlog_free(struct net_client *c)
{
	while (c->backlog) {
		struct net_pkt *p = c->backlog;

		c->backlog = p->next;
		free(p);
	}
	c->backlog_tail = &c->backlog;
	c->backlog_frames = 0;
	c->backlog_bytes = 0;
}

/* Queue pairs the driver uses: all it asked for with MQ, else the first. */
static unsigned pairs_in_use(const struct net_client *c)
{
	return vu_dev_has_feature(&c->dev, NET_F_MQ) ? c->pairs_used : 1;
}

static bool queue_started(const struct net_queue *q)
{
	return q->vq && q->vq->started;
}

static int rx_unpop_all(struct vu_vq *vq, const uint16_t *heads, unsigned n)
{
	while (n--)
		if (vu_vq_unpop(vq, heads[n]) < 0)
			return -EINVAL;
	return 0;
}

/* Copies one frame into the buffers of receive queue q. 0: delivered; -EAGAIN: not enough
 * buffers now; -EMSGSIZE: its buffers can never hold it; -EIO: the client broke its ring (the
 * device is then broken). */
static int rx_put_queue(struct net_client *c, struct net_queue *q, const struct net_vnet_hdr *hdr,
			const uint8_t *frame, size_t len)
{
	bool mrg = vu_dev_has_feature(&c->dev, NET_F_MRG_RXBUF);
	uint16_t heads[NET_RX_MAX_BUFS];
	uint32_t lens[NET_RX_MAX_BUFS];
	uint8_t wire[NET_VNET_HDR_MRG_LEN];
	struct net_vnet_hdr h = *hdr;
	struct vu_elem *e = &net.rx_first;
	size_t total = c->hdr_len + len, done = 0;
	unsigned n = 0;
	int r;

	for (;;) {
		struct iovec *in;
		size_t room, chunk;

		r = vu_vq_pop(q->vq, e);
		if (r < 0) {
			(void)rx_unpop_all(q->vq, heads, n);
			client_break(c, "guest broke its receive ring", r);
			return -EIO;
		}
		if (r > 0 && e->out_num) {
			/* A receive buffer the device may only read: no driver does that. */
			heads[n++] = e->head;
			(void)rx_unpop_all(q->vq, heads, n);
			client_break(c, "receive buffer not writable", -EINVAL);
			return -EIO;
		}
		if (r == 0) {
			/* Every buffer of the ring was not enough: this frame never fits. */
			bool never = n >= q->vq->num;

			if (rx_unpop_all(q->vq, heads, n) < 0) {
				client_break(c, "receive ring state lost", -EINVAL);
				return -EIO;
			}
			/* Kicks, and polling, wait for the driver to move past what we saw. */
			q->rx_seen = q->vq->shadow_avail_idx;
			return never ? -EMSGSIZE : -EAGAIN;
		}
		in = e->iov + e->out_num;
		heads[n] = e->head;
		room = e->in_len;
		if (n == 0) {
			if (room < c->hdr_len || (!mrg && room < total)) {
				heads[n++] = e->head;
				(void)rx_unpop_all(q->vq, heads, n);
				return -EMSGSIZE;
			}
			chunk = room - c->hdr_len < len ? room - c->hdr_len : len;
			vu_iov_from_buf(in, e->in_num, c->hdr_len, frame, chunk);
			lens[n] = (uint32_t)(c->hdr_len + chunk);
		} else {
			chunk = room < len - done ? room : len - done;
			vu_iov_from_buf(in, e->in_num, 0, frame + done, chunk);
			lens[n] = (uint32_t)chunk;
		}
		done += chunk;
		n++;
		if (done == len)
			break;
		if (n == NET_RX_MAX_BUFS) {
			(void)rx_unpop_all(q->vq, heads, n);
			return -EMSGSIZE;
		}
		e = &net.rx_cur; /* rx_first keeps the first buffer's iovecs for the header */
	}
	h.num_buffers = (uint16_t)n;
	net_vnet_hdr_encode(&h, c->hdr_len, wire);
	vu_iov_from_buf(net.rx_first.iov + net.rx_first.out_num, net.rx_first.in_num, 0, wire, c->hdr_len);
	r = vu_vq_push_batch(q->vq, heads, lens, n);
	if (r < 0) {
		client_break(c, "receive ring state lost", r);
		return -EIO;
	}
	queue_mark_notify(q);
	return 0;
}

/* Delivers into the receive queue the flow hashes to, or, when that one has no buffers, into
 * any other that has: a flow then changes queue only while its own is starved. -ENOLINK: no
 * receive queue runs. */
static int rx_put(struct net_client *c, const struct net_vnet_hdr *hdr, const uint8_t *frame, size_t len, uint32_t hash)
{
	unsigned pairs = pairs_in_use(c), started = 0, first;
	int r = -ENOLINK;

	if (c->dev.broken)
		return -ENOLINK;
	for (unsigned i = 0; i < pairs; i++)
		started += queue_started(&c->queues[2 * (size_t)i]);
	if (!started)
		return -ENOLINK;
	first = hash % pairs;
	for (unsigned i = 0; i < pairs; i++) {
		struct net_queue *q = &c->queues[2 * (size_t)((first + i) % pairs)];

		if (!queue_started(q))
			continue;
		r = rx_put_queue(c, q, hdr, frame, len);
		if (r != -EAGAIN)
			return r;
	}
	return r;
}

static void rx_count(struct net_client *c, int r, size_t len)
{
	if (r == 0) {
		c->port.c.rx_packets++;
		c->port.c.rx_bytes += len;
	} else {
		c->port.c.rx_dropped++;
	}
}

/* Arms kicks on the client's receive queues while frames wait for buffers; 1 if buffers arrived
 * meanwhile. */
static int rx_want_kicks(struct net_client *c, bool on)
{
	int more = 0;

	for (unsigned i = 0; i < pairs_in_use(c); i++) {
		struct net_queue *q = &c->queues[2 * (size_t)i];

		if (queue_started(q) && (on ? vu_vq_kick_after(q->vq, q->rx_seen) : vu_vq_set_notification(q->vq, false)) > 0)
			more = 1;
	}
	return more;
}

static void backlog_flush(struct net_client *c)
{
	while (c->backlog && !c->dev.broken) {
		struct net_pkt *p = c->backlog;
		int r = rx_put(c, &p->hdr, p->data, p->len, p->hash);

		if (r == -EAGAIN)
			break;
		rx_count(c, r, p->len);
		c->backlog = p->next;
		if (!c->backlog)
			c->backlog_tail = &c->backlog;
		c->backlog_frames--;
		c->backlog_bytes -= p->len;
		free(p);
	}
	if (!c->backlog)
		(void)rx_want_kicks(c, false); /* refills need no kick while nothing waits */
}

static void backlog_add(struct net_client *c, const struct net_vnet_hdr *hdr, const uint8_t *frame, size_t len,
			uint32_t hash)
{
	struct net_pkt *p;

	if (c->backlog_frames >= NET_BACKLOG_MAX_FRAMES || c->backlog_bytes + len > NET_BACKLOG_MAX_BYTES ||
	    !(p = malloc(sizeof(*p) + len))) {
		c->port.c.rx_dropped++;
		return;
	}
	p->next = NULL;
	p->hdr = *hdr;
	p->hash = hash;
	p->len = len;
	memcpy(p->data, frame, len);
	*c->backlog_tail = p;
	c->backlog_tail = &p->next;
	c->backlog_frames++;
	c->backlog_bytes += len;
}

/* Delivers a frame to a client, adapting offloads to what it negotiated; frames it has no buffers
 * for wait in its backlog. */
static void rx_deliver(struct net_client *c, const struct net_vnet_hdr *hdr, const uint8_t *frame, size_t len,
		       uint32_t hash);

struct gso_target {
	struct net_client *c;
	struct net_vnet_hdr hdr;
	uint32_t hash;
};

static void gso_deliver(void *opaque, const uint8_t *frame, size_t len)
{
	struct gso_target *t = opaque;

	rx_deliver(t->c, &t->hdr, frame, len, t->hash);
}

static void rx_deliver(struct net_client *c, const struct net_vnet_hdr *hdr, const uint8_t *frame, size_t len,
		       uint32_t hash)
{
	struct net_vnet_hdr h = *hdr;
	int r = net_vnet_rx_needs_fixup(&h, c->dev.features);

	if (c->dev.broken || !c->port.up) {
		c->port.c.rx_dropped++;
		return;
	}
	if (r == -EOPNOTSUPP) {
		/* A TCP GSO packet for a driver without GUEST_TSO: cut it as a NIC would. The segments'
		 * checksums are complete. */
		struct gso_target t = { .c = c, .hash = hash };

		if (vu_dev_has_feature(&c->dev, NET_F_GUEST_CSUM))
			t.hdr.flags = NET_HDR_F_DATA_VALID;
		if (net_gso_segment(&h, frame, len, net.segbuf, gso_deliver, &t) < 0)
			c->port.c.rx_dropped++;
		return;
	}
	if (r < 0) {
		c->port.c.rx_dropped++;
		return;
	}
	if (r > 0) {
		/* The frame may go to others as it is: adapt a copy. */
		memcpy(net.fixbuf, frame, len);
		if (net_vnet_fixup_rx(&h, net.fixbuf, len, c->dev.features) < 0) {
			c->port.c.rx_dropped++;
			return;
		}
		frame = net.fixbuf;
	} else {
		(void)net_vnet_fixup_rx(&h, NULL, len, c->dev.features); /* flags only */
	}
	if (c->backlog) {
		backlog_add(c, &h, frame, len, hash);
		backlog_flush(c);
		return;
	}
	r = rx_put(c, &h, frame, len, hash);
	if (r == -EAGAIN)
		backlog_add(c, &h, frame, len, hash);
	else
		rx_count(c, r, len);
}

static void deliver_to_ports(uint64_t ports, const struct net_vnet_hdr *hdr, const uint8_t *frame, size_t len,
			     const struct net_frame_info *info)
{
	uint32_t hash = net_frame_flow_hash(frame, len, info);

	for (unsigned i = 0; ports; i++, ports >>= 1)
		if (ports & 1)
			rx_deliver(net.clients[i], hdr, frame, len, hash);
}

/* ---------- transmit: a client's frames into the switch ---------- */

static void tx_flush(void)
{
	struct iovec *iovs[NET_UPLINK_BATCH];
	unsigned cnt[NET_UPLINK_BATCH];
	bool ok[NET_UPLINK_BATCH];
	unsigned n = net.npend;
	int r;

	if (!n)
		return;
	for (unsigned i = 0; i < n; i++) {
		iovs[i] = net.pend[i].iov;
		cnt[i] = net.pend[i].iovcnt;
	}
	r = net_uplink_send(&net.up, iovs, cnt, n, ok);
	if (r < 0) {
		fprintf(stderr, "ddtk-net: uplink %s: send: %s\n", net.up.name, strerror(-r));
		memset(ok, 0, sizeof(ok));
	}
	for (unsigned i = 0; i < n; i++) {
		struct net_tx_pending *p = &net.pend[i];
		struct net_client *c = p->q->client;
		size_t bytes = 0;

		for (unsigned j = 1; j < p->iovcnt; j++)
			bytes += p->iov[j].iov_len;
		if (ok[i]) {
			net.sw.uplink.tx_packets++;
			net.sw.uplink.tx_bytes += bytes;
		} else {
			net.sw.uplink.tx_errors++;
			c->port.c.tx_dropped++;
		}
		if (vu_vq_push(p->q->vq, p->head, 0) == 0)
			queue_mark_notify(p->q);
	}
	net.npend = 0;
}

static void snoop_fn(void *opaque, enum net_mcast_change change, const uint8_t *group)
{
	struct net_port *p = opaque;

	if (change == NET_MCAST_JOIN)
		net_port_join(p, group);
	else
		net_port_leave(p, group);
}

/* Whether a frame may be a membership report worth copying out to snoop. */
static bool maybe_report(const uint8_t *head, size_t head_len, const struct net_frame_info *info)
{
	const uint8_t *ip = head + info->l3_offset;

	if (info->ethertype == NET_ETHERTYPE_IPV4)
		return head_len >= info->l3_offset + 10 && ip[9] == 2;
	if (info->ethertype == NET_ETHERTYPE_IPV6)
		return head_len >= info->l3_offset + 7 && (ip[6] == 0 || ip[6] == 58);
	return false;
}

static void tx_log(struct net_client *c, unsigned *logged, const char *what, const char *detail)
{
	if (*logged >= NET_LOG_LIMIT)
		return;
	fprintf(stderr, "%s: dropped %s (%s)\n", c->srv.name, what, detail);
	if (++*logged == NET_LOG_LIMIT)
		fprintf(stderr, "%s: more such frames are only counted\n", c->srv.name);
}

/* Takes one chain from a client's TX queue. Returns true when the chain went into the uplink batch
 * (it is pushed once the batch is sent), false when it is done with and can be pushed now. */
static bool tx_one(struct net_queue *q, struct vu_elem *e)
{
	struct net_client *c = q->client;
	struct net_tx_frame *f = &net.txf;
	struct net_route route;
	const char *why;

	if (e->in_num || net_tx_take(e->iov, e->out_num, e->out_len, c->hdr_len, c->dev.features, c->mtu, f, &why) < 0) {
		c->port.c.tx_malformed++;
		tx_log(c, &c->malformed_logged, "a malformed frame", e->in_num ? "device-writable buffers" : why);
		return false;
	}
	/* Everything below decides on these copies of the header and the frame's first bytes, and
	 * sends them, never guest memory read again: another vCPU may rewrite it meanwhile. */
	if (net_switch_check_source(&net.sw, c->index, f->head, f->head_len, &f->info) != NET_ACCEPT) {
		char mac[18];

		c->port.c.tx_spoofed++;
		tx_log(c, &c->spoof_logged, "a frame with a forged source MAC or ARP sender",
		       net_mac_format(f->info.src, mac));
		return false;
	}
	c->port.c.tx_packets++;
	c->port.c.tx_bytes += f->len;
	route = net_switch_route(&net.sw, c->index, f->info.dst);
	if (maybe_report(f->head, f->head_len, &f->info) && f->len <= NET_SNOOP_MAX) {
		vu_iov_to_buf(e->iov, e->out_num, c->hdr_len, net.frame, f->len);
		memcpy(net.frame, f->head, f->head_len);
		(void)net_frame_snoop_mcast(net.frame, f->len, &f->info, snoop_fn, &c->port);
	}
	if (route.ports) {
		struct net_frame_info full;

		vu_iov_to_buf(e->iov, e->out_num, c->hdr_len, net.frame, f->len);
		memcpy(net.frame, f->head, f->head_len);
		(void)net_frame_parse(net.frame, f->len, &full);
		deliver_to_ports(route.ports, &f->hdr, net.frame, f->len, &full);
	}
	if (!route.uplink || !net.have_uplink || net.up.fd < 0) {
		if (route.uplink && !net_mac_is_multicast(f->info.dst))
			c->port.c.tx_dropped++; /* unicast for nobody, and no uplink to try */
		return false;
	}
	/* To the uplink: the checked first bytes from our copy, the rest straight from guest memory
	 * (the kernel copies it once). */
	struct net_tx_pending *p = &net.pend[net.npend];

	p->q = q;
	p->head = e->head;
	net_vnet_hdr_encode(&f->hdr, NET_VNET_HDR_LEN, p->hdr);
	memcpy(p->first, f->head, f->head_len);
	p->iov[0].iov_base = p->hdr;
	p->iov[0].iov_len = NET_VNET_HDR_LEN;
	p->iov[1].iov_base = p->first;
	p->iov[1].iov_len = f->head_len;
	p->iovcnt = 2 + net_tx_rest(e->iov, e->out_num, f, c->hdr_len, p->iov + 2, VU_ELEM_MAX_IOV);
	net.npend++;
	return true;
}

static void tx_process(struct net_queue *q)
{
	struct net_client *c = q->client;

	for (unsigned n = 0; n < NET_TX_BUDGET && !c->dev.broken; n++) {
		struct vu_elem *e = &net.tx_elem[net.npend];
		int r = vu_vq_pop(q->vq, e);

		if (r < 0) {
			client_break(c, "guest broke its transmit ring", r);
			break;
		}
		if (r == 0)
			break;
		if (!tx_one(q, e)) {
			if (vu_vq_push(q->vq, e->head, 0) == 0)
				queue_mark_notify(q);
		} else if (net.npend == NET_UPLINK_BATCH) {
			tx_flush();
		}
	}
	tx_flush();
}

static void ctrl_process(struct net_queue *q)
{
	struct net_client *c = q->client;
	struct vu_elem *e = &net.rx_cur;

	for (unsigned n = 0; n < NET_TX_BUDGET; n++) {
		int r = vu_vq_pop(q->vq, e);
		uint8_t ack = NET_CTRL_ERR;

		if (r < 0) {
			client_break(c, "guest broke its control ring", r);
			return;
		}
		if (r == 0)
			return;
		if (e->in_len < 1) {
			client_break(c, "control command without room for the ack", -EINVAL);
			return;
		}
		/* A MAC table of thousands of addresses is honest; longer than a frame is refused. */
		if (e->out_len <= NET_MAX_FRAME) {
			size_t len = vu_iov_to_buf(e->iov, e->out_num, 0, net.frame, e->out_len);

			ack = net_ctrl_apply(&c->port, c->pairs, net.frame, len, &c->pairs_used);
		}
		/* The ack is the last device-writable byte. */
		vu_iov_from_buf(e->iov + e->out_num, e->in_num, e->in_len - 1, &ack, 1);
		if (vu_vq_push(q->vq, e->head, 1) == 0)
			queue_mark_notify(q);
	}
}

static void queue_process(struct net_queue *q)
{
	struct net_client *c = q->client;

	if (c->dev.broken || !q->vq || !q->vq->started)
		return;
	switch (queue_role(c, q->vq->index)) {
	case NET_QUEUE_TX:
		tx_process(q);
		break;
	case NET_QUEUE_RX:
		backlog_flush(c);
		break;
	case NET_QUEUE_CTRL:
		ctrl_process(q);
		break;
	}
}

static void on_kick(struct vu_watch *w, uint32_t events)
{
	struct net_queue *q = vu_container_of(w, struct net_queue, kick_watch);
	uint64_t v;

	/* A kick fd that hangs up (a pipe, not an eventfd) would stay readable and spin the loop. */
	if ((events & (EPOLLHUP | EPOLLERR)) || read(w->fd, &v, sizeof(v)) == 0) {
		client_break(q->client, "its kick fd hung up", -EPIPE);
		return;
	}
	queue_process(q);
}

static void watch_queues(struct net_client *c, bool on)
{
	for (unsigned i = 0; i < c->dev.info.num_queues; i++) {
		struct net_queue *q = &c->queues[i];

		if (!on)
			vu_loop_del(&net.loop, &q->kick_watch);
	}
}

/* ---------- the uplink ---------- */

static void on_uplink(struct vu_watch *w, uint32_t events)
{
	size_t lens[NET_UPLINK_BATCH];
	unsigned taken = 0;

	while (taken < NET_UPLINK_BUDGET) {
		int n = net_uplink_recv(&net.up, net.up_bufs, NET_UPLINK_BUFSIZE, NET_UPLINK_BATCH, lens);

		if (n == -EINVAL) {
			/* A packet the kernel could not describe with a virtio-net header (a GSO type
			 * virtio has no name for): it is gone; count it and go on. */
			net.sw.uplink.rx_malformed++;
			taken++;
			continue;
		}
		if (n < 0) {
			if (net.uplink_errors_logged++ < NET_LOG_LIMIT)
				fprintf(stderr, "ddtk-net: uplink %s: receive: %s\n", net.up.name, strerror(-n));
			return;
		}
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			const uint8_t *frame = net.up_bufs[i] + NET_VNET_HDR_LEN;
			size_t len = lens[i] ? lens[i] - NET_VNET_HDR_LEN : 0;
			struct net_frame_info info;
			struct net_vnet_hdr h;
			struct net_route route;

			if (!lens[i])
				continue;
			if (net_frame_parse(frame, len, &info) < 0) {
				net.sw.uplink.rx_malformed++;
				continue;
			}
			net.sw.uplink.rx_packets++;
			net.sw.uplink.rx_bytes += len;
			if (net_switch_check_source(&net.sw, NET_FROM_UPLINK, frame, len, &info) != NET_ACCEPT) {
				net.sw.uplink.rx_spoofed++;
				continue;
			}
			route = net_switch_route(&net.sw, NET_FROM_UPLINK, info.dst);
			if (!route.ports) {
				if (!net_mac_is_multicast(info.dst))
					net.sw.uplink.rx_unknown++;
				continue;
			}
			net_vnet_hdr_decode(net.up_bufs[i], NET_VNET_HDR_LEN, &h);
			deliver_to_ports(route.ports, &h, frame, len, &info);
		}
		taken += (unsigned)n;
	}
	notify_all();
}

/* The uplink can be deleted and created again (a driver reload, a veth re-made): its socket then
 * stays bound to nothing. Once a second, look whether the name still has the index we opened. */
static void on_uplink_check(struct vu_watch *w, uint32_t events)
{
	char name[IF_NAMESIZE], err[256];
	uint64_t ticks;
	int index;

	(void)read(w->fd, &ticks, sizeof(ticks));
	index = (int)if_nametoindex(net.up.name);
	if (net.up.fd >= 0 && index == net.up.ifindex)
		return;
	if (net.up.fd >= 0) {
		fprintf(stderr, "ddtk-net: uplink %s is gone; frames for it are dropped until it is back\n", net.up.name);
		vu_loop_del(&net.loop, &net.up_watch);
		net_uplink_close(&net.up);
	}
	if (!index)
		return;
	snprintf(name, sizeof(name), "%s", net.up.name);
	if (net_uplink_open(&net.up, name, err, sizeof(err)) < 0 ||
	    vu_loop_add(&net.loop, &net.up_watch, net.up.fd, EPOLLIN, on_uplink) < 0) {
		net_uplink_close(&net.up);
		snprintf(net.up.name, sizeof(net.up.name), "%s", name); /* try again in a second */
		return;
	}
	fprintf(stderr, "ddtk-net: uplink %s is back (MTU %u)\n", net.up.name, net.up.mtu);
}

/* ---------- vu_dev back-end ops ---------- */

struct net_config {
	uint8_t mac[NET_ETH_ALEN];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
} __attribute__((packed));

static int net_get_config(void *backend, uint32_t offset, uint8_t *buf, uint32_t len)
{
	struct net_client *c = backend;
	struct net_config cfg;

	memcpy(cfg.mac, c->port.mac.b, NET_ETH_ALEN);
	cfg.status = htole16(!net.have_uplink || net_uplink_is_up(&net.up) ? 1 : 0); /* VIRTIO_NET_S_LINK_UP */
	cfg.max_virtqueue_pairs = htole16((uint16_t)c->pairs);
	cfg.mtu = htole16((uint16_t)c->mtu);
	memcpy(buf, (uint8_t *)&cfg + offset, len);
	return 0;
}

static void port_update_up(struct net_client *c)
{
	c->port.up = false;
	for (unsigned i = 0; i < pairs_in_use(c); i++)
		if (queue_started(&c->queues[2 * (size_t)i]))
			c->port.up = true;
}

static int net_queue_start(void *backend, struct vu_vq *vq)
{
	struct net_client *c = backend;
	struct net_queue *q = &c->queues[vq->index];
	int r;

	q->vq = vq;
	c->hdr_len = net_vnet_hdr_len(c->dev.features);
	r = vu_loop_add(&net.loop, &q->kick_watch, vq->kick_fd, EPOLLIN, on_kick);
	if (r < 0)
		return r;
	port_update_up(c);
	if (queue_role(c, vq->index) == NET_QUEUE_RX)
		(void)vu_vq_set_notification(vq, false); /* refills need no kick unless frames wait */
	queue_process(q);
	notify_all();
	return 0;
}

static void net_queue_stop(void *backend, struct vu_vq *vq)
{
	struct net_client *c = backend;
	struct net_queue *q = &c->queues[vq->index];

	vu_loop_del(&net.loop, &q->kick_watch);
	tx_flush(); /* nothing of ours stays popped: the batch is sent and pushed */
	notify_all();
	q->vq = NULL;
	port_update_up(c);
	if (!c->port.up)
		backlog_free(c);
	for (unsigned i = 0; i < c->dev.info.num_queues; i++)
		if (queue_started(&c->queues[i]))
			return;
	/* Every queue stopped: the driver reset the device (a reboot, a driver reload). What it
	 * joined or asked for is forgotten; the next driver reports its own. */
	net_port_reset_filters(&c->port);
	c->pairs_used = c->pairs;
}

static int net_set_mtu(void *backend, uint64_t mtu)
{
	struct net_client *c = backend;
	unsigned max = net.have_uplink ? net.up.mtu : 65535 - NET_ETH_HLEN;

	if (mtu < NET_MIN_MTU || mtu > max) {
		fprintf(stderr, "%s: refused MTU %" PRIu64 " (%u to %u)\n", c->srv.name, mtu, NET_MIN_MTU, max);
		return -EINVAL;
	}
	c->mtu = (unsigned)mtu;
	return 0;
}

static const struct vu_backend_ops net_backend_ops = {
	.get_config = net_get_config,
	.queue_start = net_queue_start,
	.queue_stop = net_queue_stop,
	.set_mtu = net_set_mtu,
};

static void on_disconnect(struct vu_server *srv)
{
	struct net_client *c = vu_container_of(srv, struct net_client, srv);

	backlog_free(c);
	net_port_reset_filters(&c->port);
	c->pairs_used = c->pairs;
	c->mtu = net.default_mtu;
	c->spoof_logged = c->malformed_logged = 0;
}

static int client_start(struct net_client *c)
{
	struct vu_dev_info info = {
		.features = VU_BIT(NET_F_CSUM) | VU_BIT(NET_F_GUEST_CSUM) | VU_BIT(NET_F_GUEST_TSO4) |
			    VU_BIT(NET_F_GUEST_TSO6) | VU_BIT(NET_F_GUEST_ECN) | VU_BIT(NET_F_HOST_TSO4) |
			    VU_BIT(NET_F_HOST_TSO6) | VU_BIT(NET_F_HOST_ECN) | VU_BIT(NET_F_MRG_RXBUF) |
			    VU_BIT(NET_F_MTU) | VU_BIT(NET_F_MAC) | VU_BIT(NET_F_STATUS) | VU_BIT(NET_F_CTRL_VQ) |
			    VU_BIT(NET_F_CTRL_RX) | VU_BIT(NET_F_CTRL_MAC_ADDR),
		.protocol_features = VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK) |
				     VU_BIT(VU_PROTOCOL_F_MTU) | VU_BIT(VU_PROTOCOL_F_CONFIG) |
				     VU_BIT(VU_PROTOCOL_F_RESET_DEVICE),
		.num_queues = 2 * c->pairs + 1,
		.queue_num_reply = c->pairs,
		.max_queue_size = NET_MAX_QUEUE_SIZE,
		.config_size = sizeof(struct net_config),
	};
	char name[128], mac[18];
	int r;

	if (c->pairs > 1)
		info.features |= VU_BIT(NET_F_MQ);
	c->mtu = net.default_mtu;
	c->pairs_used = c->pairs;
	c->backlog_tail = &c->backlog;
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
		c->queues[i].client = c;
	if (c->ivshmem) {
		/* Driver-domain mode: the client's RAM, kicks and calls come through the session's
		 * ivshmem device; the socket carries the messages only. */
		/* Kicks for the pairs' queues: QEMU keeps the control queue of a vhost-user NIC. */
		r = vu_ivshmem_init(&c->iv, c->ivshmem, c->kick_vector, 2 * c->pairs);
		if (r < 0) {
			fprintf(stderr, "ddtk-net: %s\n", c->iv.error);
			return r;
		}
		r = vu_dev_init(&c->dev, &info, &vu_ivshmem_transport_ops, &c->iv, &net_backend_ops, c);
	} else {
		r = vu_dev_init(&c->dev, &info, &vu_socket_transport_ops, NULL, &net_backend_ops, c);
	}
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "ddtk-net[%s]", c->port.name);
	c->srv.on_disconnect = on_disconnect;
	r = vu_server_init(&c->srv, &net.loop, &c->dev, name, c->socket_path[0] ? c->socket_path : NULL, c->fd);
	if (r < 0) {
		fprintf(stderr, "ddtk-net: cannot serve %s: %s\n", c->socket_path[0] ? c->socket_path : "--fd",
			strerror(-r));
		return r;
	}
	/* libvirt runs QEMU as its own user: a group lets it connect without opening to all. */
	if (c->socket_path[0] && net.opts.socket_gid != (gid_t)-1 && (r = vu_socket_set_group(c->socket_path, net.opts.socket_gid)) < 0) {
		fprintf(stderr, "ddtk-net: cannot hand %s to the socket group: %s\n", c->socket_path, strerror(-r));
		return r;
	}
	fprintf(stderr, "%s: serving %s, MAC %s, %u queue pair%s", name, c->socket_path[0] ? c->socket_path : "--fd",
		net_mac_format(c->port.mac.b, mac), c->pairs, c->pairs > 1 ? "s" : "");
	if (c->ivshmem)
		fprintf(stderr, ", client memory through ivshmem session %u, kicks state-device vectors %u..%u "
			"(device and kicks from %s)", c->ivshmem, c->kick_vector, c->kick_vector + 2 * c->pairs - 1,
			vu_ivshmem_broker_socket());
	fputc('\n', stderr);
	return 0;
}

/* ---------- counters for the outside ---------- */

static void stats_write(FILE *f, void *opaque)
{
	const struct net_uplink_counters *u = &net.sw.uplink;
	char mac[18];

	fprintf(f, "{\n  \"uplink\": ");
	if (net.have_uplink)
		fprintf(f,
			"{\"name\": \"%s\", \"mtu\": %u, \"rx_packets\": %" PRIu64 ", \"rx_bytes\": %" PRIu64
			", \"tx_packets\": %" PRIu64 ", \"tx_bytes\": %" PRIu64 ", \"rx_unknown\": %" PRIu64
			", \"rx_spoofed\": %" PRIu64 ", \"rx_malformed\": %" PRIu64 ", \"rx_tagged\": %" PRIu64
			", \"tx_errors\": %" PRIu64 "}",
			net.up.name, net.up.mtu, u->rx_packets, u->rx_bytes, u->tx_packets, u->tx_bytes, u->rx_unknown,
			u->rx_spoofed, u->rx_malformed, net.up.rx_tagged, u->tx_errors);
	else
		fprintf(f, "null");
	fprintf(f, ",\n  \"clients\": [");
	for (unsigned i = 0; i < net.nclients; i++) {
		const struct net_client *c = net.clients[i];
		const struct net_counters *k = &c->port.c;

		fprintf(f,
			"%s\n    {\"name\": \"%s\", \"mac\": \"%s\", \"connected\": %s, \"broken\": %s, \"link\": %s, "
			"\"mtu\": %u, \"groups\": %u, "
			"\"tx_packets\": %" PRIu64 ", \"tx_bytes\": %" PRIu64 ", \"rx_packets\": %" PRIu64
			", \"rx_bytes\": %" PRIu64 ", \"tx_spoofed\": %" PRIu64 ", \"tx_malformed\": %" PRIu64
			", \"tx_dropped\": %" PRIu64 ", \"rx_dropped\": %" PRIu64 ", \"rx_backlog\": %u}",
			i ? "," : "", c->port.name, net_mac_format(c->port.mac.b, mac), c->srv.conn_fd >= 0 ? "true" : "false",
			c->dev.broken ? "true" : "false", c->port.up ? "true" : "false", c->mtu, c->port.ngroups,
			k->tx_packets, k->tx_bytes, k->rx_packets, k->rx_bytes, k->tx_spoofed, k->tx_malformed,
			k->tx_dropped, k->rx_dropped, c->backlog_frames);
	}
	fprintf(f, "\n  ]\n}\n");
}

/* ---------- polling ---------- */

/* Calls fn on every started TX and control queue of every working client (and on the receive
 * queues of clients with frames waiting); true if any returned non-zero. */
static bool for_each_queue(int (*fn)(struct net_queue *q))
{
	bool any = false;

	for (unsigned i = 0; i < net.nclients; i++) {
		struct net_client *c = net.clients[i];

		for (unsigned j = 0; j < c->dev.info.num_queues && !c->dev.broken; j++) {
			struct net_queue *q = &c->queues[j];

			if (!q->vq || !q->vq->started)
				continue;
			if (queue_role(c, j) == NET_QUEUE_RX && !c->backlog)
				continue;
			if (fn(q))
				any = true;
		}
	}
	return any;
}

/* A receive queue counts as having work only when the driver added buffers since they last ran
 * out: the ones we popped and gave back are still "available" and must not spin the loop. */
static bool rx_is_rx(const struct net_queue *q)
{
	return queue_role(q->client, q->vq->index) == NET_QUEUE_RX;
}

static int queue_poll(struct net_queue *q)
{
	if (rx_is_rx(q) ? vu_vq_avail_idx(q->vq) == q->rx_seen : vu_vq_has_work(q->vq) == 0)
		return 0;
	queue_process(q);
	return 1;
}

static int queue_kicks_off(struct net_queue *q)
{
	return vu_vq_set_notification(q->vq, false);
}

static int queue_kicks_on(struct net_queue *q)
{
	if ((rx_is_rx(q) ? vu_vq_kick_after(q->vq, q->rx_seen) : vu_vq_set_notification(q->vq, true)) == 0)
		return 0;
	queue_process(q); /* arrived while kicks were off: nobody will kick for it */
	return 1;
}

static bool run_poll(void *opaque)
{
	return for_each_queue(queue_poll);
}

static bool run_kicks(void *opaque, bool on)
{
	return for_each_queue(on ? queue_kicks_on : queue_kicks_off);
}

static void run_flush(void *opaque)
{
	notify_all();
}

static bool run_done(void *opaque)
{
	for (unsigned i = 0; i < net.nclients; i++)
		if (!net.clients[i]->srv.done)
			return false;
	return true;
}

static const struct vu_run_ops net_run_ops = {
	.poll = run_poll,
	.kicks = run_kicks,
	.flush = run_flush,
	.done = run_done,
};

/* ---------- command line ---------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: ddtk-net [--uplink=IFNAME] --client name=NAME,socket=PATH,mac=MAC[,queues=N]\n"
"                [,ivshmem=S,kick-vector=V] [--client ...]\n"
"       ddtk-net [--uplink=IFNAME] --socket-path=PATH --mac=MAC [--queues=N]\n"
"       ddtk-net [--uplink=IFNAME] --fd=FDNUM --mac=MAC [--queues=N]\n"
"       ddtk-net --print-capabilities\n"
"\n"
"A vhost-user virtio-net back-end (ddtk) that is a switch: one socket per client, frames\n"
"switched between the clients and the uplink interface (AF_PACKET, promiscuous, with\n"
"offloads). Each client has the MAC the command line gives it: frames with another source\n"
"MAC (or ARP naming another sender) are dropped and counted, and a client receives only its\n"
"own unicast, broadcast, and the multicast groups it joined (snooped from its IGMP/MLD\n"
"reports) - never another client's unicast, promiscuous or not.\n"
"\n"
"  --uplink=IFNAME       the interface to the outside (a veth, tap or NIC); without one the\n"
"                        clients only reach each other\n"
"  --client SPEC         one client: name=NAME (for logs and counters), socket=PATH or fd=N,\n"
"                        mac=MAC, queues=N (queue pairs, default %u, at most %u), and\n"
"                        ivshmem=S,kick-vector=V in the driver domain (below)\n"
"  --socket-path=PATH    a single client listening on PATH (a stale socket file is replaced)\n"
"  --fd=FDNUM            a single client on this inherited socket (listening or connected)\n"
"  --mac=MAC --queues=N  the single client's MAC and queue pairs\n"
"  --mtu=N               the clients' MTU (default: the uplink's, or %u)\n"
"  --stats-socket=PATH   answer each connection on PATH with the counters as JSON\n"
"  --poll-us=N           after work, busy-poll the rings for N microseconds before sleeping\n"
"                        (default %u, 0 = never)\n"
"  --socket-group=GROUP  make the sockets rw for GROUP (mode 0660); libvirt's QEMU runs as\n"
"                        libvirt-qemu:kvm on Debian, so --socket-group=kvm lets it connect\n"
"  --print-capabilities  print the vhost-user capabilities as JSON and exit\n"
"  --verbose             counters per client at exit\n"
"\n"
"QEMU:    -chardev socket,id=c0,path=PATH,reconnect=1\n"
"         -netdev vhost-user,id=n0,chardev=c0,queues=N\n"
"         -device virtio-net-pci,netdev=n0,mac=MAC,mq=on   (mq=on when N > 1)\n"
"         (guest RAM must be shared: -object memory-backend-memfd,id=m,size=..,share=on\n"
"          -machine memory-backend=m)\n"
"libvirt: <interface type='vhostuser'>\n"
"           <mac address='MAC'/>\n"
"           <source type='unix' path='PATH' mode='client'><reconnect enabled='yes' timeout='1'/></source>\n"
"           <model type='virtio'/>\n"
"         </interface>   plus <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\n"
"The MAC in the guest's configuration must be the one given here.\n"
"\n"
"Driver-domain mode (ivshmem=S,kick-vector=V, S = 1..%d, V + 2 * queues <= %d): ddtk-net runs\n"
"in the driver domain VM. The socket carries vhost-user messages without fds (ddtk-agent relays\n"
"them from ddtk-bridge); the client's RAM is BAR2 of the ivshmem-doorbell device with\n"
"IVPosition S, a call is a Doorbell write, and a kick of queue i is MSI-X vector V + i of the\n"
"state device (IVPosition %d). ddtk-agent binds the devices to vfio-pci, holds their IOMMU\n"
"group and the state device's vectors, and sends a VFIO device fd, by IVPosition, and the\n"
"vectors' eventfds on %s\n"
"(DDTK_VFIO_SOCKET=PATH asks there instead); ddtk-net asks for them when the session first\n"
"needs them and closes them when the session resets.\n",
		(unsigned)NET_DEFAULT_PAIRS, (unsigned)NET_MAX_PAIRS, (unsigned)NET_DEFAULT_MTU,
		(unsigned)NET_DEFAULT_POLL_US, DDCTL_SESSIONS_MAX, DDCTL_KICK_VECTORS_MAX, DDCTL_STATE_IVPOSITION,
		DDCTL_VFIO_SOCKET);
}

static struct net_client *client_new(void)
{
	struct net_client *c;

	if (net.nclients == NET_MAX_PORTS) {
		fprintf(stderr, "ddtk-net: at most %d clients\n", NET_MAX_PORTS);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = -1;
	c->pairs = NET_DEFAULT_PAIRS;
	c->backlog_tail = &c->backlog;
	net.clients[net.nclients++] = c;
	return c;
}

static int client_set(struct net_client *c, const char *key, const char *value)
{
	if (!value)
		return -EINVAL;
	if (!strcmp(key, "name")) {
		if (!*value || snprintf(c->port.name, sizeof(c->port.name), "%s", value) >= (int)sizeof(c->port.name))
			return -EINVAL;
	} else if (!strcmp(key, "socket") || !strcmp(key, "socket-path")) {
		if (!*value || snprintf(c->socket_path, sizeof(c->socket_path), "%s", value) >= (int)sizeof(c->socket_path))
			return -EINVAL;
	} else if (!strcmp(key, "fd")) {
		unsigned fd;

		if (vu_parse_uint(value, 0, INT32_MAX, &fd) < 0)
			return -EINVAL;
		c->fd = (int)fd;
	} else if (!strcmp(key, "mac")) {
		if (net_mac_parse(value, &c->port.mac) < 0 || !net_mac_is_valid_unicast(c->port.mac.b))
			return -EINVAL;
	} else if (!strcmp(key, "queues")) {
		if (vu_parse_uint(value, 1, NET_MAX_PAIRS, &c->pairs) < 0)
			return -EINVAL;
	} else if (!strcmp(key, "ivshmem")) {
		if (vu_parse_uint(value, 1, DDCTL_SESSIONS_MAX, &c->ivshmem) < 0)
			return -EINVAL;
	} else if (!strcmp(key, "kick-vector")) {
		if (vu_parse_uint(value, 0, DDCTL_KICK_VECTORS_MAX - 1, &c->kick_vector) < 0)
			return -EINVAL;
		c->kick_vector_given = true;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int client_set_any(void *obj, const char *key, const char *value)
{
	return client_set(obj, key, value);
}

static const char *client_hint(const char *key)
{
	static char hint[64];

	if (strcmp(key, "ivshmem") == 0) {
		snprintf(hint, sizeof(hint), " (a driver-domain session, 1 to %d)", DDCTL_SESSIONS_MAX);
		return hint;
	}
	if (strcmp(key, "kick-vector") == 0) {
		snprintf(hint, sizeof(hint), " (a state-device vector, 0 to %d)", DDCTL_KICK_VECTORS_MAX - 1);
		return hint;
	}
	return strcmp(key, "mac") == 0 ? " (a unicast MAC, xx:xx:xx:xx:xx:xx)" : "";
}

/* Driver-domain mode's kick vectors: given with ivshmem= (and only then), within the state
 * device's vectors, and no two clients' ranges overlapping (a kick would wake the wrong queue). */
static int client_check_kicks(const struct net_client *c, unsigned index)
{
	int r = vu_ivshmem_kicks_check("ddtk-net", c->ivshmem, c->kick_vector_given, c->kick_vector, 2 * c->pairs);

	for (unsigned j = 0; r == 0 && c->ivshmem && j < index; j++) {
		const struct net_client *o = net.clients[j];

		if (o->ivshmem)
			r = vu_ivshmem_kicks_apart("ddtk-net", o->ivshmem, o->kick_vector, 2 * o->pairs, c->ivshmem,
						   c->kick_vector, 2 * c->pairs);
	}
	return r;
}

static int client_parse(const char *spec)
{
	struct net_client *c = client_new();

	if (!c)
		return -ENOMEM;
	return vu_parse_spec("ddtk-net", "--client", spec, client_set_any, c, client_hint);
}

static void print_capabilities(void)
{
	printf("{\n  \"type\": \"net\"\n}\n");
}

static int buffers_alloc(void)
{
	net.pend = calloc(NET_UPLINK_BATCH, sizeof(*net.pend));
	net.tx_elem = calloc(NET_UPLINK_BATCH, sizeof(*net.tx_elem));
	net.frame = malloc(NET_MAX_FRAME);
	net.fixbuf = malloc(NET_MAX_FRAME);
	net.segbuf = malloc(NET_MAX_FRAME);
	if (!net.pend || !net.tx_elem || !net.frame || !net.fixbuf || !net.segbuf)
		return -ENOMEM;
	for (unsigned i = 0; i < NET_UPLINK_BATCH && net.have_uplink; i++) {
		net.up_bufs[i] = malloc(NET_UPLINK_BUFSIZE);
		if (!net.up_bufs[i])
			return -ENOMEM;
	}
	return 0;
}

static int check_clients(void)
{
	for (unsigned i = 0; i < net.nclients; i++) {
		struct net_client *c = net.clients[i];

		if ((!c->socket_path[0]) == (c->fd < 0)) {
			fprintf(stderr, "ddtk-net: each client needs exactly one of a socket path or an fd\n");
			return -EINVAL;
		}
		if (!net_mac_is_valid_unicast(c->port.mac.b)) {
			fprintf(stderr, "ddtk-net: each client needs a MAC (mac=xx:xx:xx:xx:xx:xx)\n");
			return -EINVAL;
		}
		if (client_check_kicks(c, i) < 0)
			return -EINVAL;
		if (!c->port.name[0] && snprintf(c->port.name, sizeof(c->port.name), "%s",
						 c->socket_path[0] ? c->socket_path : "fd") >= (int)sizeof(c->port.name))
			snprintf(c->port.name, sizeof(c->port.name), "client%u", i);
		for (unsigned j = 0; j < i; j++) {
			if (c->socket_path[0] && !strcmp(c->socket_path, net.clients[j]->socket_path)) {
				fprintf(stderr, "ddtk-net: socket %s given twice\n", c->socket_path);
				return -EINVAL;
			}
			/* Two devices on one client's memory and doorbell would share its rings. */
			if (c->ivshmem && c->ivshmem == net.clients[j]->ivshmem) {
				fprintf(stderr, "ddtk-net: ivshmem session %u given twice\n", c->ivshmem);
				return -EINVAL;
			}
		}
		c->index = net_switch_add_port(&net.sw, &c->port);
		if (c->index < 0) {
			char mac[18];

			fprintf(stderr, "ddtk-net: MAC %s given to two clients\n", net_mac_format(c->port.mac.b, mac));
			return -EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_CLIENT = 256, OPT_UPLINK, OPT_PRINT_CAPS, OPT_MAC, OPT_QUEUES, OPT_FD,
	       OPT_MTU, OPT_STATS, OPT_VERSION };
	static const struct option options[] = {
		{ "socket-path", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "mac", required_argument, NULL, OPT_MAC },
		{ "queues", required_argument, NULL, OPT_QUEUES },
		{ "client", required_argument, NULL, OPT_CLIENT },
		{ "uplink", required_argument, NULL, OPT_UPLINK },
		{ "mtu", required_argument, NULL, OPT_MTU },
		{ "stats-socket", required_argument, NULL, OPT_STATS },
		{ "print-capabilities", no_argument, NULL, OPT_PRINT_CAPS },
		VU_BACKEND_LONG_OPTIONS,
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct net_client *single = NULL;
	const char *uplink = NULL, *stats = NULL;
	unsigned mtu = 0;
	int c, r;

	vu_backend_options_init(&net.opts, NET_DEFAULT_POLL_US);
	while ((c = getopt_long(argc, argv, "s:h", options, NULL)) != -1) {
		const char *key = NULL;

		r = vu_backend_option("ddtk-net", c, optarg, &net.opts);
		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		switch (c) {
		case 's': key = "socket"; break;
		case OPT_FD: key = "fd"; break;
		case OPT_MAC: key = "mac"; break;
		case OPT_QUEUES: key = "queues"; break;
		case OPT_CLIENT:
			if (client_parse(optarg) < 0)
				return 2;
			continue;
		case OPT_UPLINK:
			uplink = optarg;
			continue;
		case OPT_MTU:
			if (vu_parse_uint(optarg, NET_MIN_MTU, 65535 - NET_ETH_HLEN, &mtu) < 0) {
				fprintf(stderr, "ddtk-net: --mtu: %d to %d\n", NET_MIN_MTU, 65535 - NET_ETH_HLEN);
				return 2;
			}
			continue;
		case OPT_STATS:
			stats = optarg;
			continue;
		case OPT_PRINT_CAPS:
			print_capabilities();
			return 0;
		case OPT_VERSION:
			printf("ddtk-net %s\n", DDTK_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (!single)
			single = client_new();
		if (!single)
			return 1;
		r = client_set(single, key, optarg);
		if (r < 0) {
			fprintf(stderr, "ddtk-net: bad value for --%s: '%s'\n", key, optarg ? optarg : "");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ddtk-net: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (net.nclients == 0) {
		usage(stderr);
		return 2;
	}
	if (check_clients() < 0)
		return 2;

	if (vu_loop_init(&net.loop) < 0 || vu_signals_setup(&net.loop) < 0) {
		perror("ddtk-net: epoll, signals");
		return 1;
	}
	if (uplink) {
		char err[256];

		if (net_uplink_open(&net.up, uplink, err, sizeof(err)) < 0) {
			fprintf(stderr, "ddtk-net: %s\n", err);
			return 1;
		}
		net.have_uplink = true;
		struct itimerspec every_second = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };

		net.up_check_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (vu_loop_add(&net.loop, &net.up_watch, net.up.fd, EPOLLIN, on_uplink) < 0 || net.up_check_fd < 0 ||
		    timerfd_settime(net.up_check_fd, 0, &every_second, NULL) < 0 ||
		    vu_loop_add(&net.loop, &net.up_check_watch, net.up_check_fd, EPOLLIN, on_uplink_check) < 0) {
			perror("ddtk-net: epoll");
			return 1;
		}
	}
	net.default_mtu = mtu ? mtu : net.have_uplink ? net.up.mtu : NET_DEFAULT_MTU;
	if (net.have_uplink && net.default_mtu > net.up.mtu) {
		fprintf(stderr, "ddtk-net: --mtu %u is larger than uplink %s's MTU %u\n", net.default_mtu, net.up.name,
			net.up.mtu);
		return 2;
	}
	if (buffers_alloc() < 0) {
		fprintf(stderr, "ddtk-net: out of memory\n");
		return 1;
	}
	if (stats && (r = vu_stats_listen(&net.stats, &net.loop, stats, stats_write, NULL)) < 0) {
		fprintf(stderr, "ddtk-net: --stats-socket %s: %s\n", stats, strerror(-r));
		return 1;
	}
	for (unsigned i = 0; i < net.nclients; i++)
		if (client_start(net.clients[i]) < 0)
			return 1;
	if (net.have_uplink)
		fprintf(stderr, "ddtk-net: uplink %s (MTU %u)%s\n", net.up.name, net.up.mtu,
			net_uplink_is_up(&net.up) ? "" : ", link down for now");
	else
		fprintf(stderr, "ddtk-net: no uplink: clients reach each other only\n");

	r = vu_run(&net.loop, net.opts.poll_ns, &net_run_ops, NULL);
	if (r < 0)
		fprintf(stderr, "ddtk-net: epoll_wait: %s\n", strerror(-r));

	for (unsigned i = 0; i < net.nclients; i++) {
		struct net_client *cl = net.clients[i];
		const struct net_counters *k = &cl->port.c;

		vu_server_close(&cl->srv);
		if (cl->ivshmem)
			vu_ivshmem_close(&cl->iv);
		if (cl->socket_path[0])
			unlink(cl->socket_path);
		if (net.opts.verbose)
			fprintf(stderr,
				"%s: sent %" PRIu64 " frames, received %" PRIu64 ", spoofed %" PRIu64 ", malformed %" PRIu64
				", dropped %" PRIu64 " out / %" PRIu64 " in\n",
				cl->srv.name, k->tx_packets, k->rx_packets, k->tx_spoofed, k->tx_malformed, k->tx_dropped,
				k->rx_dropped);
		backlog_free(cl);
		free(cl);
	}
	vu_stats_close(&net.stats);
	net_uplink_close(&net.up);
	for (unsigned i = 0; i < NET_UPLINK_BATCH; i++)
		free(net.up_bufs[i]);
	free(net.pend);
	free(net.tx_elem);
	free(net.frame);
	free(net.fixbuf);
	free(net.segbuf);
	vu_loop_close(&net.loop);
	return 0;
}
