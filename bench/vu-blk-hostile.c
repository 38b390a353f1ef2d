/* The front-end's hostile modes: after a normal handshake it breaks the protocol, the rings or the
 * virtio-blk rules in one chosen way and reports what the back-end did, to test its isolation. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vu-blk-frontend.h"

#define HOSTILE_WAIT_MS 2000		/* a request the device does not complete in 2 s: it gave up (--wait-ms) */
#define HOSTILE_MAX_REQS 8
#define HOSTILE_REQ_SPAN 8192u		/* guest memory per request: header and status, then data */
#define HOSTILE_DATA_OFF 4096u
#define HOSTILE_DATA_MAX 4096u
#define HOSTILE_MARKER 0xa5		/* what data buffers hold before a request the device must not fill */
#define HOSTILE_NO_CHECK UINT32_MAX

enum outcome {
	OUT_DISCONNECTED,	/* the back-end closed the connection */
	OUT_REFUSED,		/* REPLY_ACK with a failure status, and the device still works */
	OUT_ACCEPTED,		/* the back-end took the bad message (or kept the connection without a word) */
	OUT_NO_REPLY,		/* asked for an ack, got none in time */
	OUT_DEVICE_BROKEN,	/* no used entry within 2 s, yet the back-end still answers messages */
	OUT_HUNG,		/* no used entry and no answer to a message either */
	OUT_IOERR,		/* every request completed with VIRTIO_BLK_S_IOERR */
	OUT_OK,			/* a request completed with VIRTIO_BLK_S_OK */
	OUT_UNSUPP,		/* a request completed with VIRTIO_BLK_S_UNSUPP */
	OUT_BAD_STATUS,		/* a request completed with a status that is none of the three */
	OUT_DATA_WRITTEN,	/* the device put bytes into a buffer it had no business filling */
	OUT_BAD_USED_ENTRY,	/* a used entry for a request we never made, or made twice */
	OUT_UNEXPECTED_MESSAGE,	/* the back-end sent something nobody asked for */
	OUT_BACKEND_DIED,	/* --backend-pid is gone */
	OUT_FRONTEND_ERROR,	/* this program failed (handshake, memory, a legitimate message refused) */
	_OUT_LAST,
};

static const char *const outcome_names[_OUT_LAST] = {
	[OUT_DISCONNECTED] = "disconnected",
	[OUT_REFUSED] = "refused",
	[OUT_ACCEPTED] = "accepted",
	[OUT_NO_REPLY] = "no-reply",
	[OUT_DEVICE_BROKEN] = "device-broken",
	[OUT_HUNG] = "hung",
	[OUT_IOERR] = "ioerr",
	[OUT_OK] = "ok",
	[OUT_UNSUPP] = "unsupp",
	[OUT_BAD_STATUS] = "bad-status",
	[OUT_DATA_WRITTEN] = "data-written",
	[OUT_BAD_USED_ENTRY] = "bad-used-entry",
	[OUT_UNEXPECTED_MESSAGE] = "unexpected-message",
	[OUT_BACKEND_DIED] = "backend-died",
	[OUT_FRONTEND_ERROR] = "frontend-error",
};

/* What a mode expects. A bad control message is refused with REPLY_ACK and ends the connection
 * without (docs/ddtk-blk.md, "Misbehaving front-ends and guests"). */
enum expectation { EXPECT_DISCONNECTED, EXPECT_REFUSED, EXPECT_BROKEN, EXPECT_IOERR, EXPECT_OK,
		   EXPECT_IOERR_ON_BLOCKS /* ioerr on a device whose blk_size is above a sector, else ok */ };

/* One request the mode builds by hand. */
struct hreq {
	uint16_t head;
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	uint8_t *data;			/* NULL for a buffer that is not ours to touch */
	uint64_t hdr_gpa, status_gpa, data_gpa;
	uint32_t data_len;
	bool data_writable;
	uint32_t check_from;		/* data[check_from..data_len) must keep the marker; HOSTILE_NO_CHECK */
	bool done;
	uint8_t result;
};

struct hostile {
	struct frontend *fe;
	struct vq *vq;
	uint8_t *scratch;
	uint64_t scratch_gpa;
	uint8_t *tables;		/* for indirect tables */
	uint64_t tables_gpa;
	struct hreq reqs[HOSTILE_MAX_REQS];
	unsigned nreqs;
	enum outcome outcome;
	char detail[384];
};

struct mode {
	const char *name;
	enum expectation expect;
	const char *help;
	void (*run)(struct hostile *h);
};

static void set_outcome(struct hostile *h, enum outcome o, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_outcome(struct hostile *h, enum outcome o, const char *fmt, ...)
{
	va_list ap;

	h->outcome = o;
	va_start(ap, fmt);
	vsnprintf(h->detail, sizeof(h->detail), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
}

static bool ack_negotiated(const struct frontend *fe)
{
	return fe->protocol_features & VU_BIT(VU_PROTOCOL_F_REPLY_ACK);
}

/* ---- judging the control path ---- */

/* After a message the back-end should have refused: does it still answer? A reply means it kept
 * the connection (and is not stuck); ECONNRESET/EPIPE mean it hung up. */
static enum outcome ping(struct hostile *h)
{
	uint64_t features;
	int r = fe_call(h->fe, VU_REQ_GET_FEATURES, NULL, 0, NULL, 0, &features, sizeof(features));

	if (r == 0)
		return OUT_ACCEPTED;
	if (r == -ECONNRESET || r == -EPIPE)
		return OUT_DISCONNECTED;
	if (r == -ETIMEDOUT)
		return OUT_HUNG;
	return OUT_UNEXPECTED_MESSAGE;
}

/* Sends one bad control message as QEMU would (asking for an ack when REPLY_ACK is on) and says
 * what the back-end made of it. */
static enum outcome control_send(struct hostile *h, uint32_t req, const void *payload, uint32_t size,
				 const int *fds, unsigned nfds)
{
	struct frontend *fe = h->fe;
	bool ack = ack_negotiated(fe);
	uint64_t status;
	int r;

	r = fe_send(fe, req, ack ? VU_FLAG_NEED_REPLY : 0, payload, size, fds, nfds);
	if (r == -ECONNRESET || r == -EPIPE)
		return OUT_DISCONNECTED;
	if (r < 0)
		return OUT_FRONTEND_ERROR;
	if (!ack)
		return ping(h);
	r = fe_recv_reply(fe, req, &status, sizeof(status));
	if (r == -ECONNRESET)
		return OUT_DISCONNECTED;
	if (r == -ETIMEDOUT)
		return OUT_NO_REPLY;
	if (r < 0)
		return OUT_UNEXPECTED_MESSAGE;
	return status ? OUT_REFUSED : OUT_ACCEPTED;
}

/* ---- building requests by hand ---- */

/* Request i of the mode: a header of type/sector, a status byte the device has not written (0xff
 * is no status), data_len bytes of data holding the marker. */
static struct hreq *hreq_new(struct hostile *h, uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable)
{
	unsigned i = h->nreqs++;
	struct hreq *r = &h->reqs[i];
	uint8_t *base = h->scratch + (uint64_t)i * HOSTILE_REQ_SPAN;
	uint64_t gpa = h->scratch_gpa + (uint64_t)i * HOSTILE_REQ_SPAN;

	*r = (struct hreq){ .hdr = (struct virtio_blk_outhdr *)base, .hdr_gpa = gpa, .status = base + 32,
			    .status_gpa = gpa + 32, .data = base + HOSTILE_DATA_OFF, .data_gpa = gpa + HOSTILE_DATA_OFF,
			    .data_len = data_len, .data_writable = data_writable, .check_from = HOSTILE_NO_CHECK };
	r->hdr->type = htole32(type);
	r->hdr->ioprio = 0;
	r->hdr->sector = htole64(sector);
	*r->status = 0xff;
	memset(r->data, HOSTILE_MARKER, HOSTILE_DATA_MAX);
	return r;
}

/* The usual three descriptors (header, data, status) from index base on; head = base. */
static void hreq_chain(struct hostile *h, struct hreq *r, uint16_t base)
{
	struct vring_desc *d = h->vq->desc;

	fe_desc_set(&d[base], r->hdr_gpa, sizeof(*r->hdr), VRING_DESC_F_NEXT, base + 1);
	fe_desc_set(&d[base + 1], r->data_gpa, r->data_len,
		 VRING_DESC_F_NEXT | (r->data_writable ? VRING_DESC_F_WRITE : 0), base + 2);
	fe_desc_set(&d[base + 2], r->status_gpa, 1, VRING_DESC_F_WRITE, 0);
	r->head = base;
}

/* Waits until every request was used or limit_ms (await_used: wait_ms()) have passed; consumes the used entries.
 * Returns how many requests completed, or -ECONNRESET, -EPROTO (fe_socket_state) or -EBADMSG (a
 * used entry that is not a request in flight). */
static int await_used_for(struct hostile *h, uint64_t limit_ms)
{
	struct vq *vq = h->vq;
	uint64_t deadline = now_ns() + limit_ms * 1000000ull;
	unsigned completed = 0;

	for (;;) {
		uint16_t used_idx = shared_load16(&vq->used->idx);

		/* Acquire: the used entries and status bytes are read after the index covering them. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		while (vq->last_used != used_idx) {
			uint32_t id = shared_load32(&vq->used->ring[vq->last_used % vq->num].id);
			struct hreq *r = NULL;

			for (unsigned i = 0; i < h->nreqs; i++)
				if (h->reqs[i].head == id && !h->reqs[i].done)
					r = &h->reqs[i];
			if (!r)
				return -EBADMSG;
			r->done = true;
			r->result = *(volatile uint8_t *)r->status;
			vq->last_used++;
			completed++;
		}
		if (completed >= h->nreqs)
			return (int)completed;
		uint64_t now = now_ns();
		if (now >= deadline)
			return (int)completed;
		int r = fe_socket_state(h->fe);
		if (r < 0)
			return r;
		struct pollfd pfds[2] = { { .fd = vq->call_fd, .events = POLLIN }, { .fd = h->fe->sock, .events = POLLIN } };
		uint64_t left_ms = (deadline - now) / 1000000ull + 1;
		if (poll(pfds, 2, left_ms < 50 ? (int)left_ms : 50) > 0 && (pfds[0].revents & POLLIN)) {
			uint64_t cnt;
			(void)!read(vq->call_fd, &cnt, sizeof(cnt));
		}
	}
}

/* How long the device gets: --wait-ms, else HOSTILE_WAIT_MS. */
static unsigned wait_ms(const struct hostile *h)
{
	return h->fe->opt.wait_ms ? h->fe->opt.wait_ms : HOSTILE_WAIT_MS;
}

static int await_used(struct hostile *h)
{
	return await_used_for(h, wait_ms(h));
}

static const char *status_name(uint8_t s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK: return "OK";
	case VIRTIO_BLK_S_IOERR: return "IOERR";
	case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
	case 0xff: return "unwritten";
	default: return "invalid";
	}
}

/* Publishes the mode's requests and judges what came back: all IOERR, some other status, data
 * where none may be, or nothing at all (then a message tells a broken device from a stuck one). */
static void judge_requests(struct hostile *h)
{
	char list[256] = "";
	size_t len = 0;
	int n, r;

	r = fe_publish_kick(h->fe, h->vq);
	if (r < 0) {
		set_outcome(h, OUT_FRONTEND_ERROR, "kick: %s", strerror(-r));
		return;
	}
	n = await_used(h);
	if (n == -ECONNRESET) {
		set_outcome(h, OUT_DISCONNECTED, "the back-end closed the connection instead of answering the ring");
		return;
	}
	if (n == -EPROTO) {
		set_outcome(h, OUT_UNEXPECTED_MESSAGE, "a message on the socket while waiting for the ring");
		return;
	}
	if (n == -EBADMSG) {
		set_outcome(h, OUT_BAD_USED_ENTRY, "a used entry names no request in flight");
		return;
	}
	if ((unsigned)n < h->nreqs) {
		enum outcome o = ping(h);

		if (o == OUT_ACCEPTED)
			set_outcome(h, OUT_DEVICE_BROKEN, "%d of %u request(s) used within %u ms; the back-end still "
				    "answers GET_FEATURES", n, h->nreqs, wait_ms(h));
		else
			set_outcome(h, o, "%d of %u request(s) used within %u ms, then GET_FEATURES: %s", n, h->nreqs,
				    wait_ms(h), h->fe->err);
		return;
	}
	for (unsigned i = 0; i < h->nreqs; i++) {
		const struct hreq *q = &h->reqs[i];

		len += (size_t)snprintf(list + len, len < sizeof(list) ? sizeof(list) - len : 0, "%s%s",
					i ? "," : "", status_name(q->result));
		if (len >= sizeof(list))
			len = sizeof(list) - 1;
		for (uint32_t b = q->check_from; q->data && b < q->data_len; b++) {
			if (q->data[b] != HOSTILE_MARKER) {
				set_outcome(h, OUT_DATA_WRITTEN, "request %u (status %s): byte %u of its buffer changed",
					    i, status_name(q->result), b);
				return;
			}
		}
	}
	enum outcome o = OUT_IOERR;
	for (unsigned i = 0; i < h->nreqs && o == OUT_IOERR; i++) {
		switch (h->reqs[i].result) {
		case VIRTIO_BLK_S_IOERR:
			break;
		case VIRTIO_BLK_S_OK:
			o = OUT_OK;
			break;
		case VIRTIO_BLK_S_UNSUPP:
			o = OUT_UNSUPP;
			break;
		default:
			o = OUT_BAD_STATUS;
			break;
		}
	}
	set_outcome(h, o, "status of the %u request(s): %s", h->nreqs, list);
}

/* The one request of a mode, made available as head (which the ring may not even have). */
static void submit_one(struct hostile *h, struct hreq *r, uint16_t head)
{
	r->head = head;
	fe_avail_add(h->vq, head);
	judge_requests(h);
}

/* A plain 4 KiB read of sector 0: the device still works. */
static void probe_read(struct hostile *h)
{
	struct hreq *r;

	h->nreqs = 0;
	r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, true);
	hreq_chain(h, r, 0);
	submit_one(h, r, 0);
}

/* ---- the modes ---- */

static void run_garbage(struct hostile *h)
{
	struct frontend *fe = h->fe;
	uint8_t buf[sizeof(struct vu_hdr) + 256];
	/* A header announcing a payload of 4 GiB, then noise: a back-end must not wait for (or
	 * allocate) that much, nor take the noise for messages. */
	struct vu_hdr hdr = { .request = VU_REQ_SET_MEM_TABLE, .flags = VU_FLAG_VERSION, .size = UINT32_MAX };

	memcpy(buf, &hdr, sizeof(hdr));
	for (size_t i = sizeof(hdr); i < sizeof(buf); i++)
		buf[i] = (uint8_t)rng_next(&fe->rng);
	if (send(fe->sock, buf, sizeof(buf), MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET) {
		set_outcome(h, OUT_FRONTEND_ERROR, "send: %s", strerror(errno));
		return;
	}
	uint64_t deadline = now_ns() + wait_ms(h) * 1000000ull;
	while (now_ns() < deadline) {
		struct pollfd pfd = { .fd = fe->sock, .events = POLLIN };
		uint8_t junk[64];

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		ssize_t n = recv(fe->sock, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			set_outcome(h, OUT_DISCONNECTED, "after a header announcing %u payload bytes", hdr.size);
			return;
		}
		if (n > 0) {
			set_outcome(h, OUT_UNEXPECTED_MESSAGE, "the back-end answered garbage with %zd bytes", n);
			return;
		}
	}
	set_outcome(h, OUT_ACCEPTED, "the connection stayed open %u ms after a header announcing %u payload bytes",
		    wait_ms(h), hdr.size);
}

static uint32_t mem_table_size(unsigned nregions)
{
	return (uint32_t)(offsetof(struct vu_mem_table_msg, regions) + nregions * sizeof(struct vu_mem_region_msg));
}

static void run_bad_mem_table(struct hostile *h)
{
	struct frontend *fe = h->fe;
	uint64_t uva = (uint64_t)(uintptr_t)fe->mem.base;
	struct {
		const char *what;
		unsigned nregions;
		struct vu_mem_region_msg regions[2];
	} tables[] = {
		{ "regions overlapping in guest-physical space", 2,
		  { { 0, fe->mem.size, uva, 0 }, { fe->mem.size / 2, 1 << 20, uva + fe->mem.size, 0 } } },
		{ "a region twice as large as its memfd", 1, { { 0, fe->mem.size * 2, uva, 0 } } },
		{ "a region whose guest-physical range wraps around 2^64", 1,
		  { { UINT64_MAX - 4095, fe->mem.size, uva, 0 } } },
	};
	int fds[2] = { fe->mem.fd, fe->mem.fd };
	/* Without REPLY_ACK the first refusal ends the connection: nothing after it can be seen. */
	size_t n = ack_negotiated(fe) ? sizeof(tables) / sizeof(tables[0]) : 1;

	for (size_t i = 0; i < n; i++) {
		struct vu_mem_table_msg mt = { .nregions = tables[i].nregions };
		enum outcome o;

		memcpy(mt.regions, tables[i].regions, tables[i].nregions * sizeof(mt.regions[0]));
		o = control_send(h, VU_REQ_SET_MEM_TABLE, &mt, mem_table_size(mt.nregions), fds, mt.nregions);
		if (o != OUT_REFUSED) {
			set_outcome(h, o, "SET_MEM_TABLE with %s", tables[i].what);
			return;
		}
	}
	/* The refused tables must have left the working one in place. */
	probe_read(h);
	if (h->outcome == OUT_OK)
		set_outcome(h, OUT_REFUSED, "%zu bad table(s) refused; a read through the previous table still works", n);
	else
		snprintf(h->detail + strlen(h->detail), sizeof(h->detail) - strlen(h->detail),
			 " (a read after %zu refused table(s))", n);
}

static void run_bad_ring_size(struct hostile *h)
{
	struct frontend *fe = h->fe;
	struct vq *vq = h->vq;
	const uint32_t sizes[] = { 100, 0, 65536 };	/* not a power of two; empty; above the virtio maximum */
	size_t n = ack_negotiated(fe) ? sizeof(sizes) / sizeof(sizes[0]) : 1;
	struct vu_vring_state stop = { .index = vq->index, .num = 0 }, base;
	int r = 0;

	/* A ring's size can change only while it is stopped: stop it as QEMU does, so that the size
	 * alone is what the back-end has to refuse. */
	if (fe->features & VU_BIT(VU_F_PROTOCOL_FEATURES))
		r = fe_set_state(fe, VU_REQ_SET_VRING_ENABLE, vq->index, 0);
	if (r == 0)
		r = fe_call(fe, VU_REQ_GET_VRING_BASE, &stop, sizeof(stop), NULL, 0, &base, sizeof(base));
	if (r < 0) {
		set_outcome(h, OUT_FRONTEND_ERROR, "stopping the ring: %s", fe->err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct vu_vring_state s = { .index = vq->index, .num = sizes[i] };
		enum outcome o = control_send(h, VU_REQ_SET_VRING_NUM, &s, sizeof(s), NULL, 0);

		if (o != OUT_REFUSED) {
			set_outcome(h, o, "SET_VRING_NUM %u", sizes[i]);
			return;
		}
	}
	/* The refused sizes must not have stuck: the ring restarts with its real size and works. */
	close(vq->kick_fd);
	close(vq->call_fd);
	vq->kick_fd = vq->call_fd = -1;
	r = fe_start_vring(fe, vq);
	if (r < 0) {
		set_outcome(h, OUT_FRONTEND_ERROR, "restarting the ring after %zu refused size(s): %s", n, fe->err);
		return;
	}
	probe_read(h);
	if (h->outcome == OUT_OK)
		set_outcome(h, OUT_REFUSED, "ring sizes refused; the ring restarted with %u entries and a read works",
			    vq->num);
	else
		snprintf(h->detail + strlen(h->detail), sizeof(h->detail) - strlen(h->detail),
			 " (a read after the restart)");
}

static void run_loop(struct hostile *h)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, true);

	/* The header, then a zero-length descriptor that points at itself: no buffer ever fills up,
	 * so only a cap on the chain length stops the walk. */
	fe_desc_set(&h->vq->desc[0], r->hdr_gpa, sizeof(*r->hdr), VRING_DESC_F_NEXT, 1);
	fe_desc_set(&h->vq->desc[1], r->data_gpa, 0, VRING_DESC_F_NEXT, 1);
	submit_one(h, r, 0);
}

static void run_out_of_range(struct hostile *h)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, true);

	/* A read whose data buffer starts in the last 512 bytes of guest memory and runs 3.5 KiB past
	 * its end: a device checking only the start would write beyond the mapping. */
	r->data_gpa = h->fe->mem.size - 512;
	r->data = NULL;
	hreq_chain(h, r, 0);
	submit_one(h, r, 0);
}

static void run_next_out_of_range(struct hostile *h)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, true);

	hreq_chain(h, r, 0);
	/* next == ring size: one past the last descriptor (catches an off-by-one as well). */
	h->vq->desc[0].next = htole16(h->vq->num);
	submit_one(h, r, 0);
}

static void run_nested_indirect(struct hostile *h)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, true);
	struct vring_desc *outer = (struct vring_desc *)h->tables;
	struct vring_desc *inner = outer + 1;
	uint64_t inner_gpa = h->tables_gpa + sizeof(*outer);

	/* head -> a table of one descriptor -> which is itself indirect -> a good chain. One level
	 * of indirection is all virtio allows. */
	fe_desc_set(&inner[0], r->hdr_gpa, sizeof(*r->hdr), VRING_DESC_F_NEXT, 1);
	fe_desc_set(&inner[1], r->data_gpa, r->data_len, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	fe_desc_set(&inner[2], r->status_gpa, 1, VRING_DESC_F_WRITE, 0);
	fe_desc_set(&outer[0], inner_gpa, 3 * sizeof(*inner), VRING_DESC_F_INDIRECT, 0);
	fe_desc_set(&h->vq->desc[0], h->tables_gpa, sizeof(*outer), VRING_DESC_F_INDIRECT, 0);
	submit_one(h, r, 0);
}

static void run_readable_after_writable(struct hostile *h)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_OUT, 0, 512, false);
	struct vring_desc *d = h->vq->desc;

	/* header, status (writable), then the data (readable): device-readable after writable. */
	fe_desc_set(&d[0], r->hdr_gpa, sizeof(*r->hdr), VRING_DESC_F_NEXT, 1);
	fe_desc_set(&d[1], r->status_gpa, 1, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	fe_desc_set(&d[2], r->data_gpa, r->data_len, 0, 0);
	submit_one(h, r, 0);
}

static void run_no_status(struct hostile *h)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_OUT, 0, 512, false);
	struct vring_desc *d = h->vq->desc;

	/* A write of header and data and nothing device-writable: no status can be returned. */
	fe_desc_set(&d[0], r->hdr_gpa, sizeof(*r->hdr), VRING_DESC_F_NEXT, 1);
	fe_desc_set(&d[1], r->data_gpa, r->data_len, 0, 0);
	submit_one(h, r, 0);
}

static void run_bad_head(struct hostile *h)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, true);

	hreq_chain(h, r, 0);
	/* The avail ring names descriptor num: one past the table. */
	submit_one(h, r, h->vq->num);
}

static void run_avail_overrun(struct hostile *h)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, true);

	hreq_chain(h, r, 0);
	for (uint32_t i = 0; i < h->vq->num; i++)
		h->vq->avail->ring[i] = htole16(0);
	/* avail->idx claims num + 1 new entries: more than the ring holds. */
	h->vq->avail_idx = (uint16_t)(h->vq->avail_idx + h->vq->num + 1);
	judge_requests(h);
}

static void run_beyond_volume(struct hostile *h)
{
	struct frontend *fe = h->fe;
	uint64_t cap = fe->capacity_bytes / SECTOR_SIZE;
	const struct {
		uint32_t type;
		uint64_t sector;
		uint32_t len;
		uint32_t check_from;	/* the first byte that would come from beyond the volume */
	} reqs[] = {
		{ VIRTIO_BLK_T_IN, cap - 1, 4096, 512 },		/* straddles the end */
		{ VIRTIO_BLK_T_IN, cap, 512, 0 },			/* starts at the end */
		{ VIRTIO_BLK_T_IN, UINT64_C(1) << 55, 512, 0 },	/* sector * 512 wraps to 0 */
		{ VIRTIO_BLK_T_IN, UINT64_MAX, 512, 0 },
		{ VIRTIO_BLK_T_OUT, cap - 1, 4096, HOSTILE_NO_CHECK },	/* would overwrite the neighbour */
		{ VIRTIO_BLK_T_OUT, cap, 512, HOSTILE_NO_CHECK },
	};

	if (!fe->have_config || cap < 8) {
		set_outcome(h, OUT_FRONTEND_ERROR, "needs the capacity from the config space (and 4 KiB of disk)");
		return;
	}
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct hreq *r = hreq_new(h, reqs[i].type, reqs[i].sector, reqs[i].len, reqs[i].type == VIRTIO_BLK_T_IN);

		r->check_from = reqs[i].check_from;
		hreq_chain(h, r, (uint16_t)(3 * i));
		fe_avail_add(h->vq, r->head);
	}
	judge_requests(h);
}

/* The device's logical block size: blk_size when it offers VIRTIO_BLK_F_BLK_SIZE, else a sector. */
static uint32_t device_block_size(const struct frontend *fe)
{
	if (fe->have_config && has_feature(fe->dev_features, VIRTIO_BLK_F_BLK_SIZE) && fe->blk_size > SECTOR_SIZE)
		return fe->blk_size;
	return SECTOR_SIZE;
}

static void run_unaligned(struct hostile *h)
{
	/* Sector-sized and sector-aligned, as virtio-blk allows, but not whole blocks of a device that
	 * announced larger ones (ddtk-blk with cache=direct on a backing of 4 KiB blocks). */
	bool refuse = device_block_size(h->fe) > SECTOR_SIZE;
	const struct {
		uint64_t sector;
		uint32_t type;
		uint32_t len;
	} reqs[] = {
		{ 1, VIRTIO_BLK_T_IN, 4096 },	/* a block's length, off a block boundary */
		{ 0, VIRTIO_BLK_T_IN, 512 },	/* at a boundary, part of a block */
		{ 1, VIRTIO_BLK_T_OUT, 512 },
		{ 0, VIRTIO_BLK_T_OUT, 3584 },
	};

	if (!h->fe->have_config || h->fe->capacity_bytes < 8192) {
		set_outcome(h, OUT_FRONTEND_ERROR, "needs the block size from the config space (and 8 KiB of disk)");
		return;
	}
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct hreq *r = hreq_new(h, reqs[i].type, reqs[i].sector, reqs[i].len, reqs[i].type == VIRTIO_BLK_T_IN);

		/* Refused reads must not deliver a byte. */
		r->check_from = refuse && reqs[i].type == VIRTIO_BLK_T_IN ? 0 : HOSTILE_NO_CHECK;
		hreq_chain(h, r, (uint16_t)(3 * i));
		fe_avail_add(h->vq, r->head);
	}
	judge_requests(h);
}

static void run_wrong_direction(struct hostile *h)
{
	/* A write whose data the device may write (and must not read into), a read whose data the
	 * device may only read (and must not fill). Both are malformed, not ring-breaking. */
	struct hreq *w = hreq_new(h, VIRTIO_BLK_T_OUT, 0, 4096, true);
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, false);

	w->check_from = 0;
	r->check_from = 0;
	hreq_chain(h, w, 0);
	hreq_chain(h, r, 3);
	fe_avail_add(h->vq, w->head);
	fe_avail_add(h->vq, r->head);
	judge_requests(h);
}

static void run_blocking_call_fd(struct hostile *h)
{
	struct vq *vq = h->vq;
	uint64_t index = vq->index, max = UINT64_C(0xfffffffffffffffe);
	/* A blocking eventfd (QEMU's are non-blocking) whose counter is already at its maximum: a
	 * device that signals it with a plain write() sleeps until somebody reads it, and nobody will. */
	int fd = eventfd(0, EFD_CLOEXEC);
	enum outcome o;

	if (fd < 0 || write(fd, &max, sizeof(max)) != sizeof(max)) {
		set_outcome(h, OUT_FRONTEND_ERROR, "eventfd: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	o = control_send(h, VU_REQ_SET_VRING_CALL, &index, sizeof(index), &fd, 1);
	/* The back-end holds its own reference; ours would only tempt us to read it. The old call fd
	 * stays in vq->call_fd, silent from now on: await_used watches the used ring itself. */
	close(fd);
	if (o == OUT_NO_REPLY)
		o = OUT_HUNG;
	if (o != OUT_ACCEPTED && o != OUT_REFUSED) {
		set_outcome(h, o, "SET_VRING_CALL with a saturated blocking eventfd: %s", h->fe->err);
		return;
	}
	/* Whether it took the fd or refused it, the ring must go on working. */
	probe_read(h);
	snprintf(h->detail + strlen(h->detail), sizeof(h->detail) - strlen(h->detail),
		 " (after SET_VRING_CALL with a saturated blocking eventfd was %s)", outcome_names[o]);
}

static void run_hangup_kick_fd(struct hostile *h)
{
	uint64_t index = h->vq->index;
	int p[2];
	enum outcome o;

	/* The read end of a pipe whose write end is gone: always readable, never a kick. A device
	 * that waited on it level-triggered would spin: it must refuse anything but an eventfd. */
	if (pipe2(p, O_CLOEXEC) < 0) {
		set_outcome(h, OUT_FRONTEND_ERROR, "pipe: %s", strerror(errno));
		return;
	}
	close(p[1]);
	o = control_send(h, VU_REQ_SET_VRING_KICK, &index, sizeof(index), &p[0], 1);
	close(p[0]);
	set_outcome(h, o, "SET_VRING_KICK with a hung-up pipe: %s", o == OUT_REFUSED ? "refused" : h->fe->err);
}

static const struct mode modes[] = {
	{ "garbage", EXPECT_DISCONNECTED, "a header announcing a 4 GiB payload, then random bytes", run_garbage },
	{ "bad-mem-table", EXPECT_REFUSED, "SET_MEM_TABLE: regions overlapping, larger than the memfd, wrapping;\n"
	  "                             then a read through the old table", run_bad_mem_table },
	{ "bad-ring-size", EXPECT_REFUSED, "SET_VRING_NUM 100, 0, 65536 on a stopped ring; then a restart and a read",
	  run_bad_ring_size },
	{ "loop", EXPECT_BROKEN, "a descriptor chain that loops (zero-length, onto itself)", run_loop },
	{ "out-of-range", EXPECT_BROKEN, "a data buffer that runs past the end of guest memory", run_out_of_range },
	{ "next-out-of-range", EXPECT_BROKEN, "a descriptor whose next is the ring size", run_next_out_of_range },
	{ "nested-indirect", EXPECT_BROKEN, "an indirect table holding an indirect descriptor", run_nested_indirect },
	{ "readable-after-writable", EXPECT_BROKEN, "a device-readable buffer after a writable one",
	  run_readable_after_writable },
	{ "no-status", EXPECT_BROKEN, "a chain with no device-writable byte", run_no_status },
	{ "bad-head", EXPECT_BROKEN, "an avail entry naming a descriptor past the table", run_bad_head },
	{ "avail-overrun", EXPECT_BROKEN, "avail->idx more than the ring size ahead", run_avail_overrun },
	{ "beyond-volume", EXPECT_IOERR, "reads and writes past the disk's end (straddling, at it, sector * 512\n"
	  "                             wrapping); no byte from beyond may arrive", run_beyond_volume },
	{ "wrong-direction", EXPECT_IOERR, "a write with device-writable data, a read with device-readable data",
	  run_wrong_direction },
	{ "unaligned", EXPECT_IOERR_ON_BLOCKS, "reads and writes of single sectors and off block boundaries",
	  run_unaligned },
	{ "blocking-call-fd", EXPECT_OK, "SET_VRING_CALL with a blocking, saturated eventfd; then a read",
	  run_blocking_call_fd },
	{ "hangup-kick-fd", EXPECT_REFUSED, "SET_VRING_KICK with a pipe whose write end is closed (not an eventfd)",
	  run_hangup_kick_fd },
};

#define NMODES (sizeof(modes) / sizeof(modes[0]))

/* What the run must observe: --expect, or what the mode expects of a sound back-end. */
static enum outcome wanted_outcome(const struct frontend *fe)
{
	if (fe->opt.hostile_expect >= 0)
		return (enum outcome)fe->opt.hostile_expect;
	switch (modes[fe->opt.hostile].expect) {
	case EXPECT_DISCONNECTED:
		return OUT_DISCONNECTED;
	case EXPECT_REFUSED:
		return ack_negotiated(fe) ? OUT_REFUSED : OUT_DISCONNECTED;
	case EXPECT_BROKEN:
		return OUT_DEVICE_BROKEN;
	case EXPECT_IOERR:
		return OUT_IOERR;
	case EXPECT_OK:
		return OUT_OK;
	case EXPECT_IOERR_ON_BLOCKS:
		return device_block_size(fe) > SECTOR_SIZE ? OUT_IOERR : OUT_OK;
	}
	return OUT_FRONTEND_ERROR;
}

int fe_hostile_mode_parse(const char *name)
{
	for (size_t i = 0; i < NMODES; i++)
		if (!strcmp(name, modes[i].name))
			return (int)i;
	return -EINVAL;
}

int fe_hostile_outcome_parse(const char *name)
{
	for (int i = 0; i < _OUT_LAST; i++)
		if (!strcmp(name, outcome_names[i]))
			return i;
	return -EINVAL;
}

void fe_hostile_list(FILE *f)
{
	for (size_t i = 0; i < NMODES; i++)
		fprintf(f, "%s\n", modes[i].name);
}

void fe_hostile_usage(FILE *f)
{
	static const char *const expect_text[] = {
		[EXPECT_DISCONNECTED] = "disconnected",
		[EXPECT_REFUSED] = "refused (disconnected with --no-reply-ack)",
		[EXPECT_BROKEN] = "device-broken",
		[EXPECT_IOERR] = "ioerr",
		[EXPECT_OK] = "ok",
		[EXPECT_IOERR_ON_BLOCKS] = "ioerr if the device's blk_size is above 512 (no byte may arrive), else ok",
	};

	fprintf(f, "Hostile modes (each on its own connection, after the full handshake) and the outcome they expect:\n");
	for (size_t i = 0; i < NMODES; i++)
		fprintf(f, "  %-24s %s\n  %-24s   expects: %s\n", modes[i].name, modes[i].help, "",
			expect_text[modes[i].expect]);
	fprintf(f, "Outcomes: disconnected (the back-end closed the socket), refused (a REPLY_ACK failure, and the\n"
		   "device still works after it), device-broken (no used entry within %d ms, but the socket stays\n"
		   "open and GET_FEATURES is answered), hung (not even that), ioerr (every request got\n"
		   "VIRTIO_BLK_S_IOERR), ok, unsupp, bad-status, data-written (bytes appeared in a buffer the\n"
		   "device must not fill), accepted, no-reply, bad-used-entry, unexpected-message, backend-died\n"
		   "(--backend-pid is gone), frontend-error.\n", HOSTILE_WAIT_MS);
}

/* Whether pid is alive and not a zombie: a crashed back-end whose parent has not reaped it yet is
 * still a pid. */
static bool proc_alive(pid_t pid)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static int report(const char *mode, enum outcome got, enum outcome want, const char *detail)
{
	printf("{\"mode\":\"%s\",\"outcome\":\"%s\",\"expected\":\"%s\",\"detail\":", mode, outcome_names[got],
	       outcome_names[want]);
	fe_json_string(stdout, detail);
	printf("}\n");
	fflush(stdout);
	return got == want ? 0 : 1;
}

int fe_hostile_report_setup_failure(const struct frontend *fe)
{
	return report(modes[fe->opt.hostile].name, OUT_FRONTEND_ERROR, wanted_outcome(fe), fe->err);
}

/* --warmup: one good read, waited for up to the given time, before the mode misbehaves. A device
 * served from a driver domain answers only once the DD has it plugged (seconds): without this, a
 * mode expecting a device that gives up would pass on a device that is not there yet. */
static bool warm_up(struct hostile *h, unsigned seconds)
{
	struct hreq *r = hreq_new(h, VIRTIO_BLK_T_IN, 0, 4096, true);
	int n, rc;

	hreq_chain(h, r, 0);
	fe_avail_add(h->vq, r->head);
	rc = fe_publish_kick(h->fe, h->vq);
	n = rc < 0 ? rc : await_used_for(h, (uint64_t)seconds * 1000);
	h->nreqs = 0;
	if (n == 1 && r->result == VIRTIO_BLK_S_OK)
		return true;
	set_outcome(h, OUT_FRONTEND_ERROR, "warm-up read: %s", n < 0 ? strerror(-n) : n == 0 ? "no answer" :
		    status_name(r->result));
	return false;
}

int fe_hostile_run(struct frontend *fe)
{
	const struct mode *m = &modes[fe->opt.hostile];
	struct hostile h = { .fe = fe, .vq = &fe->vqs[0], .outcome = OUT_FRONTEND_ERROR };

	h.scratch = gmem_alloc(&fe->mem, (uint64_t)HOSTILE_MAX_REQS * HOSTILE_REQ_SPAN, 4096, &h.scratch_gpa);
	h.tables = gmem_alloc(&fe->mem, 4096, 4096, &h.tables_gpa);
	if (!h.scratch || !h.tables)
		set_outcome(&h, OUT_FRONTEND_ERROR, "out of guest memory");
	else if (!fe->opt.warmup_s || warm_up(&h, fe->opt.warmup_s))
		m->run(&h);
	/* The socket says little about a process that crashed while we waited: look at it. */
	if (fe->opt.backend_pid && !proc_alive(fe->opt.backend_pid))
		set_outcome(&h, OUT_BACKEND_DIED, "process %d is gone (last observation: %s)", (int)fe->opt.backend_pid,
			    outcome_names[h.outcome]);
	return report(m->name, h.outcome, wanted_outcome(fe), h.detail);
}
