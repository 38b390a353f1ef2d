/* The net mode of vu-blk-frontend: a vhost-user-net front-end playing QEMU and a guest's virtio-net
 * driver on queue pair 0. It sends frames of one size as fast as the back-end completes them and
 * counts what arrives on its receive queue; it prints frames/s and bits/s. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_net.h>

#include "vu-blk-frontend.h"
#include "net-frame.h"

#define NET_HDR_LEN 12u			/* struct virtio_net_hdr_mrg_rxbuf: VERSION_1 always has it */
#define NET_BUF_LEN 2048u		/* one RX buffer, and the room of one TX frame */
#define NET_FRAME_MIN 60u		/* 64 bytes on the wire with the FCS */
#define NET_FRAME_MAX 1514u		/* an MTU of 1500 */
#define NET_ETHERTYPE 0x88b5u		/* IEEE 802 local experimental: no stack above takes it */
#define NET_RXQ 0u			/* queue 2k is RX of pair k, 2k + 1 its TX */
#define NET_TXQ 1u
#define NET_STALL_TIMEOUT_NS (10ull * 1000000000ull)	/* a back-end that completes nothing in 10 s is broken */
#define NET_DRAIN_TIMEOUT_NS (2ull * 1000000000ull)	/* frames still in flight 2 s after the end are lost */
#define NET_MAX_RX_MERGED 64u		/* num_buffers beyond this is nonsense for a 64 KiB frame */

struct net_options {
	const char *socket_path;
	uint8_t mac[6], dst[6];
	uint32_t frame_size;
	double seconds;
	uint32_t batch;
	uint32_t queue_size;
	bool json;
	bool no_event_idx;
	bool mrg_rxbuf;
	bool no_tx;
	bool no_rx_refill;
	uint32_t rx_buf_len;
	uint32_t poll_us;
	pid_t backend_pid;
	double connect_timeout_s;
};

/* Our side of one virtqueue: descriptor i always points at buffer i. */
struct net_ring {
	struct vq *vq;
	uint8_t *buf;
	uint64_t buf_gpa;
	bool *busy;
	uint16_t *free_ids;
	uint32_t nfree;
};

struct net_run {
	struct frontend fe;
	struct net_options o;
	struct net_ring rx, tx;
	uint32_t rx_merge_left;	/* buffers still to come of a frame spread over several (MRG_RXBUF) */
	uint64_t tx_frames, rx_frames, rx_bytes, rx_not_for_us, rx_bad;
};

static void net_usage(FILE *f)
{
	fprintf(f,
		"usage: vu-blk-frontend net --socket PATH --mac MAC --dst MAC [options]\n"
		"Drives queue pair 0 of a vhost-user-net back-end as QEMU and a guest driver would: sends\n"
		"frames (12-byte zero virtio-net header + Ethernet src=MAC dst=DST type 0x88b5, one descriptor\n"
		"each) as fast as the back-end completes them, keeps 2 KiB RX buffers posted, and reports\n"
		"frames/s and bits/s completed by the back-end and frames received.\n"
		"  --frame-size N      Ethernet frame bytes without FCS, 60..1514 (default 60)\n"
		"  --seconds S         how long to send (default 5)\n"
		"  --batch B           frames made available per publish; at most one kick each (default 32)\n"
		"  --queue-size N      ring size, power of two up to 32768 (default 256, QEMU's)\n"
		"  --json              one JSON object on stdout instead of text\n"
		"  --backend-pid PID   also report that process's CPU time\n"
		"  --no-event-idx      do not negotiate VIRTIO_RING_F_EVENT_IDX\n"
		"  --mrg-rxbuf         negotiate VIRTIO_NET_F_MRG_RXBUF (as Linux guests do)\n"
		"  --no-tx             only receive for --seconds (frames sent to MAC from elsewhere)\n"
		"  --no-rx-refill      post the RX ring once and never again (a guest that stopped reading)\n"
		"  --rx-buf-len N      RX buffer bytes, 64..2048 (default 2048); with --mrg-rxbuf a frame may\n"
		"                      then take several\n"
		"  --poll-us N         with nothing to do, poll the rings this long before sleeping (default 0:\n"
		"                      sleep at once, waiting for 3/4 of a full TX ring, as a Linux guest does)\n"
		"  --connect-timeout S retry connecting this long (default 5)\n");
}

static int net_parse_options(int argc, char **argv, struct net_options *o)
{
	enum { OPT_SOCKET = 256, OPT_MAC, OPT_DST, OPT_FRAME_SIZE, OPT_SECONDS, OPT_BATCH, OPT_QUEUE_SIZE, OPT_JSON,
	       OPT_BACKEND_PID, OPT_NO_EVENT_IDX, OPT_MRG_RXBUF, OPT_NO_TX, OPT_POLL_US, OPT_CONNECT_TIMEOUT, OPT_HELP,
	       OPT_NO_RX_REFILL, OPT_RX_BUF_LEN };
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "mac", required_argument, NULL, OPT_MAC },
		{ "dst", required_argument, NULL, OPT_DST },
		{ "frame-size", required_argument, NULL, OPT_FRAME_SIZE },
		{ "seconds", required_argument, NULL, OPT_SECONDS },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "queue-size", required_argument, NULL, OPT_QUEUE_SIZE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "backend-pid", required_argument, NULL, OPT_BACKEND_PID },
		{ "no-event-idx", no_argument, NULL, OPT_NO_EVENT_IDX },
		{ "mrg-rxbuf", no_argument, NULL, OPT_MRG_RXBUF },
		{ "no-tx", no_argument, NULL, OPT_NO_TX },
		{ "no-rx-refill", no_argument, NULL, OPT_NO_RX_REFILL },
		{ "rx-buf-len", required_argument, NULL, OPT_RX_BUF_LEN },
		{ "poll-us", required_argument, NULL, OPT_POLL_US },
		{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct net_options){ .frame_size = NET_FRAME_MIN, .seconds = 5, .batch = 32, .queue_size = 256,
				   .connect_timeout_s = 5, .rx_buf_len = NET_BUF_LEN };
	bool have_mac = false, have_dst = false;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		uint64_t v = 0;
		const char *name = NULL;
		char *end;
		switch (c) {
		case OPT_SOCKET:
			o->socket_path = optarg;
			break;
		case OPT_MAC:
			if (net_mac_parse_bytes(optarg, o->mac) < 0 || (o->mac[0] & 1))
				name = "--mac (a unicast xx:xx:xx:xx:xx:xx)";
			have_mac = true;
			break;
		case OPT_DST:
			if (net_mac_parse_bytes(optarg, o->dst) < 0)
				name = "--dst (xx:xx:xx:xx:xx:xx)";
			have_dst = true;
			break;
		case OPT_FRAME_SIZE:
			if (parse_u64(optarg, false, &v) < 0 || v < NET_FRAME_MIN || v > NET_FRAME_MAX)
				name = "--frame-size (60..1514)";
			o->frame_size = (uint32_t)v;
			break;
		case OPT_SECONDS:
			o->seconds = strtod(optarg, &end);
			if (*end || end == optarg || !(o->seconds > 0) || o->seconds > 1e6)
				name = "--seconds";
			break;
		case OPT_BATCH:
			if (parse_u64(optarg, false, &v) < 0 || v == 0 || v > 32768)
				name = "--batch (1..32768)";
			o->batch = (uint32_t)v;
			break;
		case OPT_QUEUE_SIZE:
			if (parse_u64(optarg, false, &v) < 0 || v < 2 || v > 32768 || (v & (v - 1)))
				name = "--queue-size (a power of two, 2..32768)";
			o->queue_size = (uint32_t)v;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_BACKEND_PID:
			if (parse_u64(optarg, false, &v) < 0 || v == 0 || v > INT32_MAX)
				name = "--backend-pid";
			o->backend_pid = (pid_t)v;
			break;
		case OPT_NO_EVENT_IDX:
			o->no_event_idx = true;
			break;
		case OPT_MRG_RXBUF:
			o->mrg_rxbuf = true;
			break;
		case OPT_NO_TX:
			o->no_tx = true;
			break;
		case OPT_NO_RX_REFILL:
			o->no_rx_refill = true;
			break;
		case OPT_RX_BUF_LEN:
			v = strtoull(optarg, &end, 10);
			if (*end || v < 64 || v > NET_BUF_LEN)
				name = "--rx-buf-len (64..2048)";
			else
				o->rx_buf_len = (uint32_t)v;
			break;
		case OPT_POLL_US:
			if (parse_u64(optarg, false, &v) < 0 || v > 1000000)
				name = "--poll-us (0..1000000)";
			o->poll_us = (uint32_t)v;
			break;
		case OPT_CONNECT_TIMEOUT:
			o->connect_timeout_s = strtod(optarg, &end);
			if (*end || end == optarg || !(o->connect_timeout_s >= 0) || o->connect_timeout_s > 3600)
				name = "--connect-timeout";
			break;
		case OPT_HELP:
			net_usage(stdout);
			exit(0);
		default:
			net_usage(stderr);
			return -EINVAL;
		}
		if (name) {
			fprintf(stderr, "vu-blk-frontend net: invalid %s: %s\n", name, optarg);
			return -EINVAL;
		}
	}
	if (optind < argc || !o->socket_path || !have_mac || (!have_dst && !o->no_tx)) {
		net_usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* ---- set-up ---- */

static int net_ring_init(struct net_run *n, struct net_ring *ring, struct vq *vq)
{
	struct frontend *fe = &n->fe;
	ring->vq = vq;
	ring->buf = gmem_alloc(&fe->mem, (uint64_t)vq->num * NET_BUF_LEN, 4096, &ring->buf_gpa);
	ring->busy = calloc(vq->num, sizeof(*ring->busy));
	ring->free_ids = calloc(vq->num, sizeof(*ring->free_ids));
	if (!ring->buf || !ring->busy || !ring->free_ids)
		return fe_error(fe, -ENOMEM, "out of memory for the buffers of queue %u", vq->index);
	for (uint32_t i = 0; i < vq->num; i++)
		ring->free_ids[ring->nfree++] = (uint16_t)(vq->num - 1 - i);
	return 0;
}

static void net_ring_free(struct net_ring *ring)
{
	free(ring->busy);
	free(ring->free_ids);
}

static int net_setup(struct net_run *n)
{
	struct frontend *fe = &n->fe;
	const struct net_options *o = &n->o;
	/* QEMU's vhost-user-net: no config space over the socket (QEMU keeps it), MQ for the pair count. */
	int r = fe_negotiate_begin(fe, VU_BIT(VU_PROTOCOL_F_MQ));
	if (r < 0)
		return r;
	uint64_t want = VU_BIT(VU_F_VERSION_1) | VU_BIT(VU_F_PROTOCOL_FEATURES);
	if (!o->no_event_idx)
		want |= VU_BIT(VU_F_RING_EVENT_IDX);
	if (o->mrg_rxbuf)
		want |= VU_BIT(VIRTIO_NET_F_MRG_RXBUF);
	r = fe_negotiate_features(fe, want);
	if (r < 0)
		return r;
	if (o->mrg_rxbuf && !has_feature(fe->features, VIRTIO_NET_F_MRG_RXBUF))
		return fe_error(fe, -ENOTSUP, "--mrg-rxbuf: the back-end does not offer VIRTIO_NET_F_MRG_RXBUF");

	uint64_t ring_bytes = 2 * (align_up(16ull * o->queue_size, 4096) + align_up(6 + 2ull * o->queue_size, 4096) +
				   align_up(6 + 8ull * o->queue_size, 4096));
	r = fe_guest_mem_create(fe, align_up(ring_bytes + 2ull * o->queue_size * NET_BUF_LEN + (1ull << 20), 2ull << 20));
	if (r == 0)
		r = fe_vqs_create(fe, 2, (uint16_t)o->queue_size);
	if (r == 0)
		r = net_ring_init(n, &n->rx, &fe->vqs[NET_RXQ]);
	if (r == 0)
		r = net_ring_init(n, &n->tx, &fe->vqs[NET_TXQ]);
	if (r < 0)
		return r;

	/* Every TX buffer holds the same frame for good: a zero header (no offloads), then Ethernet. */
	for (uint32_t i = 0; i < o->queue_size; i++) {
		uint8_t *b = n->tx.buf + (uint64_t)i * NET_BUF_LEN;
		memset(b, 0, NET_HDR_LEN);
		uint8_t *eth = b + NET_HDR_LEN;
		memcpy(eth, o->dst, 6);
		memcpy(eth + 6, o->mac, 6);
		eth[12] = NET_ETHERTYPE >> 8;
		eth[13] = NET_ETHERTYPE & 0xff;
		for (uint32_t j = NET_ETH_HLEN; j < o->frame_size; j++)
			eth[j] = (uint8_t)(j + i);
	}

	r = fe_send_mem_table(fe);
	for (uint32_t q = 0; r == 0 && q < fe->nvqs; q++)
		r = fe_start_vring(fe, &fe->vqs[q]);
	return r;
}

/* ---- the data path ---- */

/* Posts every free RX buffer and publishes them. */
static int net_rx_refill(struct net_run *n)
{
	struct net_ring *ring = &n->rx;
	struct vq *vq = ring->vq;
	if (ring->nfree == 0)
		return 0;
	while (ring->nfree) {
		uint16_t id = ring->free_ids[--ring->nfree];
		/* --rx-buf-len: smaller buffers than the slot, so a frame may need several (mergeable). */
		fe_desc_set(&vq->desc[id], ring->buf_gpa + (uint64_t)id * NET_BUF_LEN, n->o.rx_buf_len, VRING_DESC_F_WRITE, 0);
		ring->busy[id] = true;
		fe_avail_add(vq, id);
	}
	return fe_vq_publish(&n->fe, vq);
}

/* Takes a used entry's id back from the back-end: it must be a buffer we gave it. */
static int net_ring_take(struct net_run *n, struct net_ring *ring, uint32_t id)
{
	if (id >= ring->vq->num || !ring->busy[id])
		return fe_error(&n->fe, -EPROTO, "queue %u: used id %u is not a buffer in flight", ring->vq->index, id);
	ring->busy[id] = false;
	ring->free_ids[ring->nfree++] = (uint16_t)id;
	return 0;
}

/* How many used entries the back-end published since we last looked; checked against what we gave. */
static int net_ring_pending(struct net_run *n, struct net_ring *ring, uint16_t *ret_used_idx)
{
	struct vq *vq = ring->vq;
	uint16_t used_idx = shared_load16(&vq->used->idx);
	uint16_t pending = (uint16_t)(used_idx - vq->last_used);
	if (pending > vq->num - ring->nfree)
		return fe_error(&n->fe, -EPROTO, "queue %u: used->idx moved by %u with %u buffers in flight", vq->index,
				pending, vq->num - ring->nfree);
	/* Acquire: the used entries (and received frames) are read after the used->idx announcing them. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	*ret_used_idx = used_idx;
	return pending;
}

/* Counts what arrived; with refill, posts the buffers again. */
static int net_rx_reap(struct net_run *n, bool refill)
{
	struct net_ring *ring = &n->rx;
	struct vq *vq = ring->vq;
	uint16_t used_idx = vq->last_used;
	int pending = net_ring_pending(n, ring, &used_idx);
	if (pending <= 0)
		return pending;
	for (; vq->last_used != used_idx; vq->last_used++) {
		const struct vring_used_elem *e = &vq->used->ring[vq->last_used % vq->num];
		uint32_t id = shared_load32(&e->id), len = shared_load32(&e->len);
		int r = net_ring_take(n, ring, id);
		if (r < 0)
			return r;
		if (len > n->o.rx_buf_len) {
			n->rx_bad++;
			continue;
		}
		const uint8_t *b = ring->buf + (uint64_t)id * NET_BUF_LEN;
		if (n->rx_merge_left) {
			/* A later buffer of a merged frame: payload only. */
			n->rx_merge_left--;
			n->rx_bytes += len;
			continue;
		}
		if (len < NET_HDR_LEN + NET_ETH_HLEN) {
			n->rx_bad++;
			continue;
		}
		uint16_t num_buffers;
		memcpy(&num_buffers, b + 10, sizeof(num_buffers));
		num_buffers = le16toh(num_buffers);
		if (has_feature(n->fe.features, VIRTIO_NET_F_MRG_RXBUF)) {
			if (num_buffers == 0 || num_buffers > NET_MAX_RX_MERGED) {
				n->rx_bad++;
				continue;
			}
			n->rx_merge_left = num_buffers - 1u;
		}
		const uint8_t *eth = b + NET_HDR_LEN;
		if (!(eth[0] & 1) && memcmp(eth, n->o.mac, 6) != 0)
			n->rx_not_for_us++;
		n->rx_frames++;
		n->rx_bytes += len - NET_HDR_LEN;
	}
	int r = refill ? net_rx_refill(n) : 0;
	return r < 0 ? r : pending;
}

static int net_tx_reap(struct net_run *n)
{
	struct net_ring *ring = &n->tx;
	struct vq *vq = ring->vq;
	uint16_t used_idx = vq->last_used;
	int pending = net_ring_pending(n, ring, &used_idx);
	if (pending <= 0)
		return pending;
	for (; vq->last_used != used_idx; vq->last_used++) {
		uint32_t id = shared_load32(&vq->used->ring[vq->last_used % vq->num].id);
		int r = net_ring_take(n, ring, id);
		if (r < 0)
			return r;
		n->tx_frames++;
	}
	return pending;
}

/* Makes up to --batch frames available and publishes them (one kick at most); returns how many. */
static int net_tx_fill(struct net_run *n)
{
	struct net_ring *ring = &n->tx;
	struct vq *vq = ring->vq;
	uint32_t k = 0;
	for (; k < n->o.batch && ring->nfree; k++) {
		uint16_t id = ring->free_ids[--ring->nfree];
		fe_desc_set(&vq->desc[id], ring->buf_gpa + (uint64_t)id * NET_BUF_LEN, NET_HDR_LEN + n->o.frame_size, 0, 0);
		ring->busy[id] = true;
		fe_avail_add(vq, id);
	}
	if (k == 0)
		return 0;
	int r = fe_vq_publish(&n->fe, vq);
	return r < 0 ? r : (int)k;
}

/* Before sleeping: asks for a call once `after` more entries are used; true if they already are. As
 * a Linux guest's virtqueue_enable_cb_delayed() does for a full TX ring, it waits for 3/4 of them. */
static bool net_arm(struct net_run *n, struct vq *vq, uint16_t after)
{
	if (n->fe.event_idx) {
		shared_store16(vq_used_event(vq), (uint16_t)(vq->last_used + (after ? after - 1 : 0)));
		/* Full barrier (store-load): used_event is visible before we re-read used->idx, or a
		 * completion landing in between would neither be seen nor signalled. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	return (uint16_t)(shared_load16(&vq->used->idx) - vq->last_used) >= (after ? after : 1);
}

struct net_result {
	double elapsed_s;
	bool drained;
};

static int net_run_traffic(struct net_run *n, struct net_result *res)
{
	struct frontend *fe = &n->fe;
	struct pollfd pfds[3] = {
		{ .fd = n->rx.vq->call_fd, .events = POLLIN },
		{ .fd = n->tx.vq->call_fd, .events = POLLIN },
		/* We never expect a message now: readability means the back-end hung up or misbehaves. */
		{ .fd = fe->sock, .events = POLLIN },
	};
	int r = net_rx_refill(n);
	if (r < 0)
		return r;
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(n->o.seconds * 1e9), t_stop = 0, last_progress = t0;
	bool stopping = false;
	res->drained = true;
	for (;;) {
		int progress = 0;
		r = net_tx_reap(n);
		if (r < 0)
			return r;
		progress += r;
		r = net_rx_reap(n, !n->o.no_rx_refill);
		if (r < 0)
			return r;
		progress += r;
		uint64_t now = now_ns();
		if (!stopping && (now >= deadline || fe_stop_requested)) {
			stopping = true;
			t_stop = now;
		}
		uint32_t tx_inflight = n->tx.vq->num - n->tx.nfree;
		if (stopping) {
			if (tx_inflight == 0 || n->o.no_tx)
				break;
			if (now - t_stop > NET_DRAIN_TIMEOUT_NS) {
				res->drained = false;
				break;
			}
		} else if (!n->o.no_tx) {
			r = net_tx_fill(n);
			if (r < 0)
				return r;
			progress += r;
		}
		if (progress) {
			last_progress = now;
			continue;
		}
		if (now - last_progress < (uint64_t)n->o.poll_us * 1000)
			continue;
		tx_inflight = n->tx.vq->num - n->tx.nfree;
		bool arrived = net_arm(n, n->rx.vq, 1);
		if (tx_inflight)
			arrived |= net_arm(n, n->tx.vq, (uint16_t)(tx_inflight - tx_inflight / 4));
		if (arrived)
			continue;
		if (tx_inflight && now - last_progress > NET_STALL_TIMEOUT_NS)
			return fe_error(fe, -ETIMEDOUT, "the back-end completed nothing in %llu s (%u frames in flight)",
					NET_STALL_TIMEOUT_NS / 1000000000ull, tx_inflight);
		/* Wake up for the deadline even when nothing happens. */
		uint64_t until = stopping ? t_stop + NET_DRAIN_TIMEOUT_NS : deadline;
		int timeout_ms = until > now ? (int)((until - now) / 1000000 + 1) : 0;
		if (timeout_ms > 1000)
			timeout_ms = 1000;
		int pr = poll(pfds, 3, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return fe_error(fe, -errno, "poll: %s", strerror(errno));
		if (pfds[2].revents)
			return fe_error(fe, -ECONNRESET, "the back-end closed the connection (or sent an unexpected message) "
					"with %u frames in flight", tx_inflight);
		for (int i = 0; i < 2; i++) {
			uint64_t cnt;
			if ((pfds[i].revents & POLLIN) && read(pfds[i].fd, &cnt, sizeof(cnt)) == sizeof(cnt))
				fe->calls++;
		}
	}
	res->elapsed_s = (double)(now_ns() - t0) / 1e9;
	return 0;
}

/* Stops both rings as QEMU does. TX: the back-end must have taken exactly what we gave. RX: it may
 * hold buffers it never filled, but must not claim more than we posted; *ret_rx_unreturned is how
 * many it took and did not give back (a guest loses those buffers until it resets the device). */
static int net_stop(struct net_run *n, uint32_t *ret_rx_unreturned)
{
	struct frontend *fe = &n->fe;
	struct vq *rx = n->rx.vq, *tx = n->tx.vq;
	uint32_t base = 0;
	int r = fe_stop_vring(fe, tx, &base);
	if (r < 0)
		return r;
	if (base != tx->avail_idx)
		return fe_error(fe, -EPROTO, "GET_VRING_BASE TX: back-end base %u, front-end made %u available", base,
				tx->avail_idx);
	r = fe_stop_vring(fe, rx, &base);
	if (r < 0)
		return r;
	if ((uint16_t)(rx->avail_idx - base) > rx->num)
		return fe_error(fe, -EPROTO, "GET_VRING_BASE RX: back-end base %u, front-end made %u available", base,
				rx->avail_idx);
	/* What was used before the stop counts; the ring is not refilled any more. */
	r = net_rx_reap(n, false);
	if (r < 0)
		return r;
	*ret_rx_unreturned = (uint16_t)(base - rx->last_used);
	return 0;
}

int fe_net_main(int argc, char **argv)
{
	struct net_run n = { .fe = { .sock = -1, .mem.fd = -1 } };
	if (net_parse_options(argc, argv, &n.o) < 0)
		return 2;
	struct frontend *fe = &n.fe;
	fe->opt.socket_path = n.o.socket_path;
	fe->opt.connect_timeout_s = n.o.connect_timeout_s;

	uint64_t backend_ticks0 = 0, backend_ticks1 = 0;
	int r = 0;
	if (n.o.backend_pid && (r = proc_cpu_ticks(n.o.backend_pid, &backend_ticks0)) < 0) {
		fprintf(stderr, "vu-blk-frontend net: --backend-pid %d: %s\n", (int)n.o.backend_pid, strerror(-r));
		return 1;
	}
	r = fe_connect(fe);
	if (r == 0)
		r = net_setup(&n);
	if (r < 0) {
		fprintf(stderr, "vu-blk-frontend net: %s: %s\n", n.o.socket_path, fe->err);
		goto fail;
	}
	fprintf(stderr, "vu-blk-frontend net: %s: %u-byte frames, batch %u, queue pair 0 of %u, rings of %u; features 0x%"
		PRIx64 " (EVENT_IDX %s, MRG_RXBUF %s), protocol 0x%" PRIx64 "\n", n.o.socket_path, n.o.frame_size,
		n.o.batch, fe->max_queues, n.o.queue_size, fe->features, fe->event_idx ? "on" : "off",
		has_feature(fe->features, VIRTIO_NET_F_MRG_RXBUF) ? "on" : "off", fe->protocol_features);

	struct net_result res = { 0 };
	if (n.o.backend_pid)
		proc_cpu_ticks(n.o.backend_pid, &backend_ticks0);
	double cpu0 = self_cpu_s();
	r = net_run_traffic(&n, &res);
	double cpu1 = self_cpu_s();
	int backend_r = n.o.backend_pid ? proc_cpu_ticks(n.o.backend_pid, &backend_ticks1) : 0;
	uint32_t rx_unreturned = 0;
	if (r == 0 && res.drained)
		r = net_stop(&n, &rx_unreturned);
	if (r < 0) {
		fprintf(stderr, "vu-blk-frontend net: %s: %s\n", n.o.socket_path, fe->err);
		goto fail;
	}

	uint32_t tx_lost = n.tx.vq->num - n.tx.nfree;
	double el = res.elapsed_s > 0 ? res.elapsed_s : 1;
	double fps = (double)n.tx_frames / el, bps = fps * n.o.frame_size * 8;
	long tck = sysconf(_SC_CLK_TCK);
	char backend_cpu[32] = "null";
	if (n.o.backend_pid && backend_r == 0 && tck > 0)
		snprintf(backend_cpu, sizeof(backend_cpu), "%.3f", (double)(backend_ticks1 - backend_ticks0) / (double)tck);
	if (n.o.json)
		printf("{\"frames\": %" PRIu64 ", \"frames_per_s\": %.0f, \"bits_per_s\": %.0f, \"frame_size\": %u, "
		       "\"seconds\": %.3f, \"tx_incomplete\": %u, \"rx_frames\": %" PRIu64 ", \"rx_bytes\": %" PRIu64 ", "
		       "\"rx_frames_per_s\": %.0f, \"rx_not_for_us\": %" PRIu64 ", \"rx_bad\": %" PRIu64 ", "
		       "\"rx_unreturned\": %u, \"kicks\": %" PRIu64 ", \"calls\": %" PRIu64 ", \"backend_cpu_s\": %s, "
		       "\"frontend_cpu_s\": %.3f}\n",
		       n.tx_frames, fps, bps, n.o.frame_size, res.elapsed_s, tx_lost, n.rx_frames, n.rx_bytes,
		       (double)n.rx_frames / el, n.rx_not_for_us, n.rx_bad, rx_unreturned, fe->kicks, fe->calls,
		       backend_cpu, cpu1 - cpu0);
	else
		printf("sent %" PRIu64 " frames of %u bytes in %.3f s: %.0f frames/s, %.1f Mbit/s; received %" PRIu64
		       " frames (%" PRIu64 " not for us, %" PRIu64 " malformed); %" PRIu64 " kicks, %" PRIu64 " calls; "
		       "CPU: back-end %s s, front-end %.3f s\n",
		       n.tx_frames, n.o.frame_size, res.elapsed_s, fps, bps / 1e6, n.rx_frames, n.rx_not_for_us, n.rx_bad,
		       fe->kicks, fe->calls, backend_cpu, cpu1 - cpu0);
	fflush(stdout);

	int rc = 0;
	if (!res.drained) {
		fprintf(stderr, "vu-blk-frontend net: %u frame(s) still not completed %llu s after the end\n", tx_lost,
			NET_DRAIN_TIMEOUT_NS / 1000000000ull);
		rc = 1;
	}
	if (rx_unreturned)
		fprintf(stderr, "vu-blk-frontend net: warning: the back-end kept %u RX buffer(s) it never returned\n",
			rx_unreturned);
	if (n.rx_bad || n.rx_not_for_us) {
		fprintf(stderr, "vu-blk-frontend net: %" PRIu64 " malformed RX buffer(s), %" PRIu64
			" unicast frame(s) for another MAC\n", n.rx_bad, n.rx_not_for_us);
		rc = 1;
	}
	if (n.o.backend_pid && backend_r < 0) {
		fprintf(stderr, "vu-blk-frontend net: --backend-pid %d: %s (did the back-end exit?)\n",
			(int)n.o.backend_pid, strerror(-backend_r));
		rc = 1;
	}
	if (fe_stop_requested) {
		fprintf(stderr, "vu-blk-frontend net: interrupted; the numbers cover the time before the signal\n");
		rc = 1;
	}
	net_ring_free(&n.rx);
	net_ring_free(&n.tx);
	fe_close(fe);
	return rc;
fail:
	net_ring_free(&n.rx);
	net_ring_free(&n.tx);
	fe_close(fe);
	return 1;
}
