/* --check-requests: every virtio-blk request type ddtk-blk supports, sent on queue 0 one at a time
 * (and once as a ring-filling burst), each result checked byte for byte against a model of what
 * every sector of the checked areas must hold. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vu-blk-frontend.h"

#define CHECK_BLOCK_SECTORS 8u			/* the layout unit: 4 KiB, a page of the backing */
#define CHECK_HEAD_SECTORS 2048u		/* the checked areas: the first MiB of the disk ... */
#define CHECK_TAIL_SECTORS 128u			/* ... and its last 64 KiB */
#define CHECK_MODEL_SECTORS (CHECK_HEAD_SECTORS + CHECK_TAIL_SECTORS)
#define CHECK_MIN_CAPACITY_SECTORS 4096u	/* 2 MiB: the two areas never meet */
#define CHECK_IO_SECTORS 512u			/* reads and writes of the pattern in 256 KiB requests */
#define CHECK_MULTI_SEGS 32u			/* the multi-segment requests use up to this many */
#define CHECK_MAX_SEGS 256u			/* room for max_*_seg + 1 segments */
#define CHECK_WAIT_MS 10000			/* a request not used within 10 s: the device is dead */
#define CHECK_MARKER 0xa5			/* what an in-buffer holds before the device fills it */
#define CHECK_STATUS_UNWRITTEN 0xff
#define CHECK_UNKNOWN_TYPE 99u
#define CHECK_MAX_LABELS 48
#define CHECK_BURST_MAX 1024u			/* WRITE_ZEROES requests in flight at once, at most */
#define CHECK_BURST_SEGS 16u			/* segments each, at most */
#define CHECK_BURST_SLOT 512u			/* guest memory per burst request: see check_write_zeroes_burst */
#define CHECK_BURST_BLOCKS 16u			/* the zone the burst zeroes, over and over */

/* What a sector must read as. */
enum expect {
	EXP_PATTERN,
	EXP_ZERO,
	EXP_DISCARDED,	/* either: the device may or may not unmap */
	EXP_EITHER,	/* either: a request that failed may have done its work or not */
};
/* What it did read as. */
enum content { CONTENT_PATTERN, CONTENT_ZERO, CONTENT_OTHER };

struct label {
	char what[112];
	enum expect expect;
};

struct check {
	struct frontend *fe;
	struct vq *vq;
	uint64_t capacity;		/* sectors */
	/* Guest memory: header and status, the device-readable data, the device-writable data. */
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	uint8_t *out, *in, *burst;
	uint64_t hdr_gpa, status_gpa, out_gpa, in_gpa, burst_gpa;
	/* The model: a label (and so an expectation) per sector of the two areas. */
	struct label labels[CHECK_MAX_LABELS];
	unsigned nlabels;
	uint8_t sector_label[CHECK_MODEL_SECTORS];
	uint32_t next_block;		/* the head area is handed out in blocks, a gap after each zone */
	/* Results. */
	unsigned checks, failed;
	bool dead;			/* the device stopped answering: nothing more is sent */
	char serial[VIRTIO_BLK_ID_BYTES + 1];
	unsigned discarded_zero, discarded_pattern;
	char first_failure[512];
};

/* One discard / write-zeroes segment as we mean it (the wire format is little-endian). */
struct seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

static void report_line(struct check *c, bool ok, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static void report_line(struct check *c, bool ok, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	c->checks++;
	if (!ok) {
		c->failed++;
		if (!c->first_failure[0])
			snprintf(c->first_failure, sizeof(c->first_failure), "%s", msg);
	}
	fprintf(stderr, "check-requests: %s: %s\n", ok ? "ok" : "FAIL", msg);
}

/* Records one check and prints its line; returns ok. */
static bool record(struct check *c, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool record(struct check *c, bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_line(c, ok, fmt, ap);
	va_end(ap);
	return ok;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	fputs("check-requests: note: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	fputc('\n', stderr);
}

static const char *status_name(int s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK: return "OK";
	case VIRTIO_BLK_S_IOERR: return "IOERR";
	case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
	case CHECK_STATUS_UNWRITTEN: return "0xff (status byte never written)";
	default: return "not a virtio-blk status";
	}
}

static const char *type_name(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN: return "READ";
	case VIRTIO_BLK_T_OUT: return "WRITE";
	case VIRTIO_BLK_T_FLUSH: return "FLUSH";
	case VIRTIO_BLK_T_GET_ID: return "GET_ID";
	case VIRTIO_BLK_T_DISCARD: return "DISCARD";
	case VIRTIO_BLK_T_WRITE_ZEROES: return "WRITE_ZEROES";
	default: return "unknown type";
	}
}

static bool negotiated(const struct check *c, unsigned bit)
{
	return c->fe->features & VU_BIT(bit);
}

/* ---- requests: one at a time (descriptors 0.., head 0), or a burst ---- */

/*
 * Waits until the n requests in flight, with heads 0, stride, 2 * stride .., were all used, each
 * exactly once; used lengths go to used_len[j]. Returns 0, or -ETIMEDOUT (what came is in
 * *ret_done), -ECONNRESET / -EPROTO (fe_socket_state), -EBADMSG (a used entry naming no request
 * in flight, or one already used: *ret_bad_id).
 */
static int wait_used(struct check *c, unsigned n, unsigned stride, uint32_t *used_len, bool *done,
		     unsigned *ret_done, uint32_t *ret_bad_id)
{
	struct vq *vq = c->vq;
	uint64_t deadline = now_ns() + CHECK_WAIT_MS * 1000000ull;

	*ret_done = 0;
	memset(done, 0, n * sizeof(*done));
	while (*ret_done < n) {
		uint16_t used_idx = shared_load16(&vq->used->idx);

		/* Acquire: used entries, status bytes and data are read after the index announcing them. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if ((uint16_t)(used_idx - vq->last_used) > n - *ret_done) {
			*ret_bad_id = UINT32_MAX;
			return -EBADMSG;
		}
		for (; vq->last_used != used_idx; vq->last_used++) {
			const struct vring_used_elem *e = &vq->used->ring[vq->last_used % vq->num];
			uint32_t id = shared_load32(&e->id), j = id / stride;

			if (id % stride || j >= n || done[j]) {
				*ret_bad_id = id;
				return -EBADMSG;
			}
			done[j] = true;
			used_len[j] = shared_load32(&e->len);
			(*ret_done)++;
		}
		if (*ret_done == n)
			break;
		int r = fe_socket_state(c->fe);
		if (r < 0)
			return r;
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		if (fe_vq_arm(c->fe, vq))
			continue;
		struct pollfd pfds[2] = { { .fd = vq->call_fd, .events = POLLIN }, { .fd = c->fe->sock, .events = POLLIN } };
		if (poll(pfds, 2, 50) > 0 && (pfds[0].revents & POLLIN)) {
			uint64_t cnt;
			(void)!read(vq->call_fd, &cnt, sizeof(cnt));
		}
	}
	return 0;
}

/* Publishes the n requests made available and waits for them; on failure records why (what is
 * the requests as the message names them) and marks the device dead. */
static int publish_and_wait(struct check *c, unsigned n, unsigned stride, uint32_t *used_len, bool *done,
			    const char *what)
{
	unsigned got = 0;
	uint32_t bad_id = 0;
	int r = fe_publish_kick(c->fe, c->vq);

	if (r == 0)
		r = wait_used(c, n, stride, used_len, done, &got, &bad_id);
	if (r == 0)
		return 0;
	c->dead = true;
	if (r == -ETIMEDOUT)
		record(c, false, "%s: %u of %u request(s) used within %d s", what, got, n, CHECK_WAIT_MS / 1000);
	else if (r == -EBADMSG && bad_id == UINT32_MAX)
		record(c, false, "%s: used->idx ran ahead of the requests in flight (%u of %u used before)", what,
		       got, n);
	else if (r == -EBADMSG)
		record(c, false, "%s: a used entry with id %u, which is no request in flight or one already used "
		       "(%u of %u used before)", what, bad_id, got, n);
	else
		record(c, false, "%s: %s", what, r == -ECONNRESET ? "the back-end closed the connection"
		       : r == -EPROTO ? "the back-end sent a message nobody asked for" : strerror(-r));
	return r;
}

/*
 * Sends one request: the header, out_len bytes of c->out for the device to read, in_len bytes of
 * c->in (filled with the marker first) for it to write, the status byte. Returns the status the
 * device wrote, or a negative errno when it did not answer properly (then c->dead: the device can
 * no longer be trusted with anything).
 */
static int submit(struct check *c, uint32_t type, uint64_t sector, uint32_t out_len, uint32_t in_len)
{
	struct vring_desc *d = c->vq->desc;
	uint16_t i = 0;
	uint32_t used_len = 0;
	bool done;
	char what[64];

	if (c->dead)
		return -EIO;
	c->hdr->type = htole32(type);
	c->hdr->ioprio = 0;
	c->hdr->sector = htole64(sector);
	*c->status = CHECK_STATUS_UNWRITTEN;
	memset(c->in, CHECK_MARKER, in_len);
	fe_desc_set(&d[i], c->hdr_gpa, sizeof(*c->hdr), VRING_DESC_F_NEXT, i + 1);
	i++;
	if (out_len) {
		fe_desc_set(&d[i], c->out_gpa, out_len, VRING_DESC_F_NEXT, i + 1);
		i++;
	}
	if (in_len) {
		fe_desc_set(&d[i], c->in_gpa, in_len, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, i + 1);
		i++;
	}
	fe_desc_set(&d[i], c->status_gpa, 1, VRING_DESC_F_WRITE, 0);
	fe_avail_add(c->vq, 0);
	snprintf(what, sizeof(what), "%s of sector %" PRIu64, type_name(type), sector);
	int r = publish_and_wait(c, 1, 1, &used_len, &done, what);
	if (r < 0)
		return r;
	/* The device may not claim to have written more than the buffers it may write. */
	if (used_len > in_len + 1)
		record(c, false, "%s of sector %" PRIu64 ": used length %u, but only %u bytes are device-writable",
		      type_name(type), sector, used_len, in_len + 1);
	return *(volatile uint8_t *)c->status;
}

/* Checks one status; what is the request as the message names it. */
static bool expect_status(struct check *c, int got, uint8_t want, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool expect_status(struct check *c, int got, uint8_t want, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	if (got < 0)
		return false;	/* submit() reported it */
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	if (got == want)
		return record(c, true, "%s: %s", what, status_name(want));
	return record(c, false, "%s: status %s (%d), expected %s", what, status_name(got), got, status_name(want));
}

/* A DISCARD or WRITE_ZEROES carrying segs as its data; out_len 0 means exactly n segments. */
static int submit_segments(struct check *c, uint32_t type, const struct seg *segs, unsigned n, uint32_t out_len)
{
	for (unsigned i = 0; i < n; i++) {
		struct virtio_blk_discard_write_zeroes w = {
			.sector = htole64(segs[i].sector),
			.num_sectors = htole32(segs[i].num_sectors),
			.flags = htole32(segs[i].flags),
		};
		memcpy(c->out + i * sizeof(w), &w, sizeof(w));
	}
	return submit(c, type, 0, out_len ? out_len : n * (uint32_t)sizeof(struct virtio_blk_discard_write_zeroes), 0);
}

/* ---- the model ---- */

/* The model index of a disk sector, or -1 outside the two areas. */
static int model_index(const struct check *c, uint64_t sector)
{
	if (sector < CHECK_HEAD_SECTORS)
		return (int)sector;
	if (sector >= c->capacity - CHECK_TAIL_SECTORS && sector < c->capacity)
		return (int)(CHECK_HEAD_SECTORS + (sector - (c->capacity - CHECK_TAIL_SECTORS)));
	return -1;
}

static uint64_t model_sector(const struct check *c, unsigned idx)
{
	return idx < CHECK_HEAD_SECTORS ? idx : c->capacity - CHECK_TAIL_SECTORS + (idx - CHECK_HEAD_SECTORS);
}

/* A new label (a name for what was done to some sectors, and what they must read as). */
static int label_new(struct check *c, enum expect e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int label_new(struct check *c, enum expect e, const char *fmt, ...)
{
	va_list ap;

	if (c->nlabels == CHECK_MAX_LABELS) {
		record(c, false, "internal: more than %d labels", CHECK_MAX_LABELS);
		return -ENOSPC;
	}
	struct label *l = &c->labels[c->nlabels];
	va_start(ap, fmt);
	vsnprintf(l->what, sizeof(l->what), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	l->expect = e;
	return (int)c->nlabels++;
}

static void model_mark(struct check *c, int label, uint64_t sector, uint64_t n)
{
	for (uint64_t s = sector; label >= 0 && s < sector + n && s < c->capacity; s++) {
		int idx = model_index(c, s);

		if (idx >= 0)
			c->sector_label[idx] = (uint8_t)label;
	}
}

static void model_mark_segments(struct check *c, int label, const struct seg *segs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		model_mark(c, label, segs[i].sector, segs[i].num_sectors);
}

/* The first sector of a fresh zone of nblocks in the head area; an untouched block follows it. */
static uint64_t zone_new(struct check *c, uint32_t nblocks)
{
	uint64_t sector = (uint64_t)c->next_block * CHECK_BLOCK_SECTORS;

	c->next_block += nblocks + 1;
	return sector;
}

static bool zones_fit(const struct check *c)
{
	return (uint64_t)c->next_block * CHECK_BLOCK_SECTORS <= CHECK_HEAD_SECTORS;
}

static enum content sector_content(const struct check *c, const uint8_t *buf, uint64_t sector)
{
	bool zero = true, pattern = true;

	for (uint32_t i = 0; i < SECTOR_SIZE && (zero || pattern); i += 8) {
		uint64_t w;

		memcpy(&w, buf + i, sizeof(w));
		zero &= w == 0;
		pattern &= w == pattern_word(c->fe->opt.seed, sector * SECTOR_SIZE + i);
	}
	return pattern ? CONTENT_PATTERN : zero ? CONTENT_ZERO : CONTENT_OTHER;
}

static const char *const content_names[] = {
	[CONTENT_PATTERN] = "the pattern", [CONTENT_ZERO] = "zeroes", [CONTENT_OTHER] = "neither pattern nor zeroes",
};
static const char *const expect_names[] = {
	[EXP_PATTERN] = "the pattern (unchanged)", [EXP_ZERO] = "zeroes", [EXP_DISCARDED] = "the pattern or zeroes",
	[EXP_EITHER] = "the pattern or zeroes",
};

static bool content_matches(enum expect e, enum content got)
{
	switch (e) {
	case EXP_PATTERN: return got == CONTENT_PATTERN;
	case EXP_ZERO: return got == CONTENT_ZERO;
	case EXP_DISCARDED:
	case EXP_EITHER: return got != CONTENT_OTHER;
	}
	return false;
}

/* ---- reading and writing the areas ---- */

/* Reads n sectors from sector on into dst, in requests of CHECK_IO_SECTORS. */
static bool read_range(struct check *c, uint64_t sector, uint32_t n, uint8_t *dst)
{
	for (uint32_t done = 0; done < n;) {
		uint32_t k = n - done < CHECK_IO_SECTORS ? n - done : CHECK_IO_SECTORS;
		int st = submit(c, VIRTIO_BLK_T_IN, sector + done, 0, k * SECTOR_SIZE);

		if (st != VIRTIO_BLK_S_OK) {
			if (st >= 0)
				record(c, false, "READ of sectors %" PRIu64 "-%" PRIu64 ": status %s, expected OK",
				      sector + done, sector + done + k - 1, status_name(st));
			return false;
		}
		memcpy(dst + (uint64_t)done * SECTOR_SIZE, c->in, (uint64_t)k * SECTOR_SIZE);
		done += k;
	}
	return true;
}

/* Reads both areas into buf (CHECK_MODEL_SECTORS sectors, model order). */
static bool read_model(struct check *c, uint8_t *buf)
{
	return read_range(c, 0, CHECK_HEAD_SECTORS, buf) &&
	       read_range(c, c->capacity - CHECK_TAIL_SECTORS, CHECK_TAIL_SECTORS,
			  buf + (uint64_t)CHECK_HEAD_SECTORS * SECTOR_SIZE);
}

/* Writes the pattern over n sectors from sector on; returns the first bad status or OK. */
static int write_pattern(struct check *c, uint64_t sector, uint32_t n)
{
	for (uint32_t done = 0; done < n;) {
		uint32_t k = n - done < CHECK_IO_SECTORS ? n - done : CHECK_IO_SECTORS;

		pattern_fill(c->out, k * SECTOR_SIZE, c->fe->opt.seed, (sector + done) * SECTOR_SIZE);
		int st = submit(c, VIRTIO_BLK_T_OUT, sector + done, k * SECTOR_SIZE, 0);
		if (st != VIRTIO_BLK_S_OK)
			return st;
		done += k;
	}
	return VIRTIO_BLK_S_OK;
}

/*
 * Reads both areas back and judges every sector against its label's expectation: one line per
 * label (all labels, or only `only`), saying what its sectors read as.
 */
static void verify_model(struct check *c, uint8_t *buf, int only)
{
	struct {
		uint64_t first_bad;
		unsigned sectors, by_content[3], bad;
		enum content first_bad_content;
	} stats[CHECK_MAX_LABELS];

	if (!read_model(c, buf))
		return;
	memset(stats, 0, sizeof(stats));
	for (unsigned idx = 0; idx < CHECK_MODEL_SECTORS; idx++) {
		unsigned l = c->sector_label[idx];
		uint64_t sector = model_sector(c, idx);
		enum content got = sector_content(c, buf + (uint64_t)idx * SECTOR_SIZE, sector);

		if (only >= 0 && l != (unsigned)only)
			continue;
		stats[l].sectors++;
		stats[l].by_content[got]++;
		if (!content_matches(c->labels[l].expect, got) && stats[l].bad++ == 0) {
			stats[l].first_bad = sector;
			stats[l].first_bad_content = got;
		}
	}
	for (unsigned l = 0; l < c->nlabels; l++) {
		const struct label *lb = &c->labels[l];

		if (stats[l].sectors == 0)
			continue;
		if (stats[l].bad) {
			record(c, false, "read-back, %s: %u of %u sector(s) wrong; the first, sector %" PRIu64 ", reads as "
			      "%s, expected %s", lb->what, stats[l].bad, stats[l].sectors, stats[l].first_bad,
			      content_names[stats[l].first_bad_content], expect_names[lb->expect]);
			continue;
		}
		if (lb->expect == EXP_DISCARDED && only < 0) {
			c->discarded_zero += stats[l].by_content[CONTENT_ZERO];
			c->discarded_pattern += stats[l].by_content[CONTENT_PATTERN];
		}
		if (stats[l].by_content[CONTENT_ZERO] && stats[l].by_content[CONTENT_PATTERN])
			record(c, true, "read-back, %s: %u sector(s): %u read as zeroes, %u as the pattern", lb->what,
			      stats[l].sectors, stats[l].by_content[CONTENT_ZERO], stats[l].by_content[CONTENT_PATTERN]);
		else
			record(c, true, "read-back, %s: %u sector(s) read as %s", lb->what, stats[l].sectors,
			      stats[l].by_content[CONTENT_ZERO] ? "zeroes" : "the pattern");
	}
}

/* ---- the checks ---- */

static void check_get_id(struct check *c)
{
	char want[VIRTIO_BLK_ID_BYTES] = { 0 };
	int st = submit(c, VIRTIO_BLK_T_GET_ID, 0, 0, VIRTIO_BLK_ID_BYTES);

	if (!expect_status(c, st, VIRTIO_BLK_S_OK, "GET_ID"))
		return;
	memcpy(c->serial, c->in, VIRTIO_BLK_ID_BYTES);
	c->serial[VIRTIO_BLK_ID_BYTES] = '\0';
	if (!c->fe->opt.expect_serial) {
		note("GET_ID returned \"%s\" (no --expect-serial)", c->serial);
		return;
	}
	/* The option parser made sure it fits; the rest stays NUL. */
	memcpy(want, c->fe->opt.expect_serial, strlen(c->fe->opt.expect_serial));
	if (memcmp(c->in, want, sizeof(want)) == 0) {
		record(c, true, "GET_ID returns the serial \"%s\", NUL padded to 20 bytes", c->fe->opt.expect_serial);
		return;
	}
	unsigned at = 0;
	while (at < sizeof(want) && c->in[at] == (uint8_t)want[at])
		at++;
	record(c, false, "GET_ID returns \"%s\", expected \"%s\" (NUL padded to 20 bytes); byte %u is 0x%02x, "
	      "expected 0x%02x", c->serial, c->fe->opt.expect_serial, at, c->in[at], (uint8_t)want[at]);
}

static void check_flush(struct check *c, const char *when)
{
	if (!negotiated(c, VIRTIO_BLK_F_FLUSH)) {
		record(c, false, "FLUSH %s: VIRTIO_BLK_F_FLUSH is not offered", when);
		return;
	}
	expect_status(c, submit(c, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK, "FLUSH %s", when);
}

static void check_unknown_type(struct check *c)
{
	int st = submit(c, CHECK_UNKNOWN_TYPE, 0, 0, SECTOR_SIZE);

	if (!expect_status(c, st, VIRTIO_BLK_S_UNSUPP, "request type %u", CHECK_UNKNOWN_TYPE))
		return;
	for (uint32_t i = 0; i < SECTOR_SIZE; i++)
		if (c->in[i] != CHECK_MARKER) {
			record(c, false, "request type %u: the device wrote byte %u of its data buffer", CHECK_UNKNOWN_TYPE, i);
			return;
		}
	record(c, true, "request type %u: its data buffer is untouched", CHECK_UNKNOWN_TYPE);
}

/* The segments of a multi-segment request over a zone of 2n blocks: segment k in block 2k at
 * varying offsets and lengths (sub-page, unaligned), in descending order. */
static unsigned multi_segments(struct check *c, struct seg *segs, unsigned n, uint32_t max_sectors, bool unmap_odd)
{
	uint64_t base = zone_new(c, 2 * n);

	for (unsigned k = 0; k < n; k++) {
		uint32_t start = k % 3, len = 1 + (k * 5) % (CHECK_BLOCK_SECTORS - 2);

		if (len > max_sectors)
			len = max_sectors;
		segs[n - 1 - k] = (struct seg){ .sector = base + 2ull * k * CHECK_BLOCK_SECTORS + start,
						.num_sectors = len,
						.flags = unmap_odd && (k & 1) ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0 };
	}
	return n;
}

/* One DISCARD or WRITE_ZEROES that must succeed; its sectors get a label saying what they must
 * read as. */
static void expect_done(struct check *c, uint32_t type, const struct seg *segs, unsigned n, const char *what)
{
	enum expect e = type == VIRTIO_BLK_T_DISCARD ? EXP_DISCARDED : EXP_ZERO;
	int st = submit_segments(c, type, segs, n, 0);

	if (expect_status(c, st, VIRTIO_BLK_S_OK, "%s %s (%u segment(s), segment 0 at sector %" PRIu64 ")", type_name(type),
			  what, n, segs[0].sector))
		model_mark_segments(c, label_new(c, e, "%s %s", type_name(type), what), segs, n);
}

/* One request that must fail with want and change nothing: its sectors are labelled as
 * unchanged, so the read-back names the request if they did change. */
static void expect_refused(struct check *c, uint32_t type, const struct seg *segs, unsigned n, uint32_t out_len,
			   uint8_t want, const char *what)
{
	int label = label_new(c, EXP_PATTERN, "after %s %s (must change nothing)", type_name(type), what);

	model_mark_segments(c, label, segs, n);
	expect_status(c, submit_segments(c, type, segs, n, out_len), want, "%s %s", type_name(type), what);
}

/*
 * A ring full of multi-segment WRITE_ZEROES in flight at once, before any other WRITE_ZEROES: with
 * thousands of operations ddtk-blk's submission ring (1024 entries) fills up while completions
 * come in, and on a file system without ZERO_RANGE each completion submits its fallback. That once
 * made get_sqe() reap in the middle of a reap: requests completed twice, and the process spun on
 * stale completions. Each request has a slot of guest memory: its indirect table at 0, header at
 * 64, status at 96, segments at 256.
 */
static void check_write_zeroes_burst(struct check *c)
{
	struct vq *vq = c->vq;
	const bool indirect = c->fe->indirect;
	const unsigned stride = indirect ? 1 : 3;	/* descriptors of the ring per request */
	const unsigned zone = CHECK_BURST_BLOCKS * CHECK_BLOCK_SECTORS;
	unsigned n = vq->num / stride, nseg = c->fe->max_write_zeroes_seg, ok = 0, bad = 0;
	uint64_t base = zone_new(c, CHECK_BURST_BLOCKS);
	uint32_t used_len[CHECK_BURST_MAX];
	bool done[CHECK_BURST_MAX];
	char what[160];

	if (n > CHECK_BURST_MAX)
		n = CHECK_BURST_MAX;
	if (nseg > CHECK_BURST_SEGS)
		nseg = CHECK_BURST_SEGS;
	if (c->dead)
		return;
	for (unsigned j = 0; j < n; j++) {
		uint8_t *slot = c->burst + (uint64_t)j * CHECK_BURST_SLOT;
		uint64_t gpa = c->burst_gpa + (uint64_t)j * CHECK_BURST_SLOT;
		struct virtio_blk_outhdr hdr = { .type = htole32(VIRTIO_BLK_T_WRITE_ZEROES) };
		struct vring_desc *d = indirect ? (struct vring_desc *)slot : &vq->desc[(size_t)j * stride];
		uint16_t b = indirect ? 0 : (uint16_t)(j * stride);

		memcpy(slot + 64, &hdr, sizeof(hdr));
		slot[96] = CHECK_STATUS_UNWRITTEN;
		for (unsigned k = 0; k < nseg; k++) {
			/* One sector each, spread over the zone (7 is prime to its size). */
			struct virtio_blk_discard_write_zeroes w = {
				.sector = htole64(base + (uint64_t)(j * nseg + k) * 7 % zone), .num_sectors = htole32(1)
			};
			memcpy(slot + 256 + k * sizeof(w), &w, sizeof(w));
		}
		fe_desc_set(&d[0], gpa + 64, sizeof(hdr), VRING_DESC_F_NEXT, b + 1);
		fe_desc_set(&d[1], gpa + 256, nseg * (uint32_t)sizeof(struct virtio_blk_discard_write_zeroes),
			    VRING_DESC_F_NEXT, b + 2);
		fe_desc_set(&d[2], gpa + 96, 1, VRING_DESC_F_WRITE, 0);
		if (indirect)
			fe_desc_set(&vq->desc[j], gpa, 3 * sizeof(*d), VRING_DESC_F_INDIRECT, 0);
		fe_avail_add(vq, (uint16_t)(j * stride));
	}
	snprintf(what, sizeof(what), "WRITE_ZEROES burst: %u requests of %u segments in flight at once%s", n, nseg,
		 indirect ? "" : " (direct descriptors)");
	if (publish_and_wait(c, n, stride, used_len, done, what) < 0)
		return;
	for (unsigned j = 0; j < n; j++) {
		uint8_t st = *(volatile uint8_t *)(c->burst + (uint64_t)j * CHECK_BURST_SLOT + 96);

		if (st == VIRTIO_BLK_S_OK && used_len[j] <= 1)
			ok++;
		else if (bad++ == 0)
			record(c, false, "%s: request %u: status %s, used length %u", what, j, status_name(st), used_len[j]);
	}
	record(c, !bad, "%s: %u of %u request(s) OK", what, ok, n);
	int label = bad ? label_new(c, EXP_EITHER, "WRITE_ZEROES burst, which failed")
			: label_new(c, EXP_ZERO, "WRITE_ZEROES burst");
	for (unsigned i = 0; i < n * nseg; i++)
		model_mark(c, label, base + (uint64_t)i * 7 % zone, 1);
}

static void check_discard_zeroes(struct check *c, uint8_t *buf)
{
	struct frontend *fe = c->fe;
	struct seg segs[CHECK_MAX_SEGS + 1];
	uint32_t dmax = fe->max_discard_sectors, zmax = fe->max_write_zeroes_sectors;
	uint32_t dseg = fe->max_discard_seg, zseg = fe->max_write_zeroes_seg;
	bool unmap = fe->write_zeroes_may_unmap;
	uint64_t end = c->capacity;
	unsigned n;

	/* DISCARD: the first block of the disk, 8 blocks, then every segment the device takes. */
	segs[0] = (struct seg){ .sector = zone_new(c, 1), .num_sectors = CHECK_BLOCK_SECTORS };
	expect_done(c, VIRTIO_BLK_T_DISCARD, segs, 1, "of the disk's first block");
	segs[0] = (struct seg){ .sector = zone_new(c, 8), .num_sectors = 8 * CHECK_BLOCK_SECTORS };
	expect_done(c, VIRTIO_BLK_T_DISCARD, segs, 1, "of 8 blocks");
	segs[0] = (struct seg){ .sector = zone_new(c, 1) + 5, .num_sectors = 1 };
	expect_done(c, VIRTIO_BLK_T_DISCARD, segs, 1, "of one sector inside a block");
	n = multi_segments(c, segs, dseg < CHECK_MULTI_SEGS ? dseg : CHECK_MULTI_SEGS, dmax, false);
	if (n < dseg)
		note("max_discard_seg is %u; the multi-segment DISCARD uses %u", dseg, n);
	expect_done(c, VIRTIO_BLK_T_DISCARD, segs, n, "with max_discard_seg segments");

	/* WRITE_ZEROES: a burst first (on a file system without ZERO_RANGE, every operation then takes
	 * ddtk-blk's fallback), multi-segment with mixed flags, without and with UNMAP, one sector, and
	 * the last block of the disk (after the refused request straddling it, below). */
	check_write_zeroes_burst(c);
	n = multi_segments(c, segs, zseg < CHECK_MULTI_SEGS ? zseg : CHECK_MULTI_SEGS, zmax, unmap);
	if (n < zseg)
		note("max_write_zeroes_seg is %u; the multi-segment WRITE_ZEROES uses %u", zseg, n);
	expect_done(c, VIRTIO_BLK_T_WRITE_ZEROES, segs, n,
		    unmap ? "with max_write_zeroes_seg segments, every other one with UNMAP"
			  : "with max_write_zeroes_seg segments");
	segs[0] = (struct seg){ .sector = zone_new(c, 8), .num_sectors = 8 * CHECK_BLOCK_SECTORS };
	expect_done(c, VIRTIO_BLK_T_WRITE_ZEROES, segs, 1, "of 8 blocks without UNMAP");
	if (unmap) {
		segs[0] = (struct seg){ .sector = zone_new(c, 8), .num_sectors = 8 * CHECK_BLOCK_SECTORS,
					.flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
		expect_done(c, VIRTIO_BLK_T_WRITE_ZEROES, segs, 1, "of 8 blocks with UNMAP");
	} else {
		note("write_zeroes_may_unmap is 0: no WRITE_ZEROES with VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP");
	}
	segs[0] = (struct seg){ .sector = zone_new(c, 1) + 3, .num_sectors = 1 };
	expect_done(c, VIRTIO_BLK_T_WRITE_ZEROES, segs, 1, "of one sector inside a block");

	/* Refused: a good segment first, then one past the end (at it, straddling it, wrapping
	 * around 2^64 bytes onto a block of ours): all or nothing. */
	segs[0] = (struct seg){ .sector = zone_new(c, 1), .num_sectors = CHECK_BLOCK_SECTORS };
	segs[1] = (struct seg){ .sector = end, .num_sectors = CHECK_BLOCK_SECTORS };
	expect_refused(c, VIRTIO_BLK_T_DISCARD, segs, 2, 0, VIRTIO_BLK_S_IOERR,
		       "with a good segment and one starting at the end of the disk");
	segs[0] = (struct seg){ .sector = zone_new(c, 1), .num_sectors = CHECK_BLOCK_SECTORS };
	segs[1] = (struct seg){ .sector = end - CHECK_BLOCK_SECTORS / 2, .num_sectors = CHECK_BLOCK_SECTORS };
	int straddle = label_new(c, EXP_PATTERN, "after WRITE_ZEROES with a good segment and one straddling the end "
				 "of the disk (must change nothing)");
	model_mark_segments(c, straddle, segs, 2);
	expect_status(c, submit_segments(c, VIRTIO_BLK_T_WRITE_ZEROES, segs, 2, 0), VIRTIO_BLK_S_IOERR,
		      "WRITE_ZEROES with a good segment and one straddling the end of the disk");
	/* Its last sectors are zeroed next: look at them now. */
	verify_model(c, buf, straddle);
	segs[0] = (struct seg){ .sector = zone_new(c, 1), .num_sectors = CHECK_BLOCK_SECTORS };
	segs[1] = (struct seg){ .sector = (UINT64_C(1) << 55) + segs[0].sector, .num_sectors = CHECK_BLOCK_SECTORS };
	expect_refused(c, VIRTIO_BLK_T_DISCARD, segs, 2, 0, VIRTIO_BLK_S_IOERR,
		       "with a segment whose byte offset wraps around 2^64 onto the disk");

	segs[0] = (struct seg){ .sector = end - CHECK_BLOCK_SECTORS, .num_sectors = CHECK_BLOCK_SECTORS };
	expect_done(c, VIRTIO_BLK_T_WRITE_ZEROES, segs, 1, "of the disk's last block");
	segs[0] = (struct seg){ .sector = end - 4ull * CHECK_BLOCK_SECTORS, .num_sectors = CHECK_BLOCK_SECTORS };
	expect_done(c, VIRTIO_BLK_T_DISCARD, segs, 1, "of a block near the end of the disk");

	/* Refused: one segment more than the device takes, one sector each. */
	const struct { uint32_t type, max; const char *what; } over[] = {
		{ VIRTIO_BLK_T_DISCARD, dseg, "with max_discard_seg + 1 segments" },
		{ VIRTIO_BLK_T_WRITE_ZEROES, zseg, "with max_write_zeroes_seg + 1 segments" },
	};
	for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
		if (over[i].max >= CHECK_MAX_SEGS) {
			note("%s %s: skipped, the limit is %u", type_name(over[i].type), over[i].what, over[i].max);
			continue;
		}
		uint64_t base = zone_new(c, (over[i].max + 1 + CHECK_BLOCK_SECTORS - 1) / CHECK_BLOCK_SECTORS);
		for (unsigned k = 0; k <= over[i].max; k++)
			segs[k] = (struct seg){ .sector = base + k, .num_sectors = 1 };
		expect_refused(c, over[i].type, segs, over[i].max + 1, 0, VIRTIO_BLK_S_IOERR, over[i].what);
	}

	/* Refused as unsupported: DISCARD may not ask to unmap (nor carry any other flag). */
	segs[0] = (struct seg){ .sector = zone_new(c, 1), .num_sectors = CHECK_BLOCK_SECTORS,
				.flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	expect_refused(c, VIRTIO_BLK_T_DISCARD, segs, 1, 0, VIRTIO_BLK_S_UNSUPP, "with flags 0x1 (UNMAP)");
	/* Malformed: data that is not a whole number of segments. */
	segs[0] = (struct seg){ .sector = zone_new(c, 1), .num_sectors = CHECK_BLOCK_SECTORS };
	expect_refused(c, VIRTIO_BLK_T_DISCARD, segs, 1, sizeof(struct virtio_blk_discard_write_zeroes) + 4,
		       VIRTIO_BLK_S_IOERR, "whose data is 20 bytes (not a whole number of segments)");
}

static void check_read_write(struct check *c, uint8_t *buf)
{
	int st = write_pattern(c, 0, CHECK_HEAD_SECTORS);

	if (st == VIRTIO_BLK_S_OK)
		st = write_pattern(c, c->capacity - CHECK_TAIL_SECTORS, CHECK_TAIL_SECTORS);
	if (!expect_status(c, st, VIRTIO_BLK_S_OK, "WRITE of the pattern over the first MiB and the last 64 KiB"))
		return;
	verify_model(c, buf, -1);
	check_discard_zeroes(c, buf);
	if (!zones_fit(c))
		record(c, false, "internal: the layout needs more than the first MiB");
	check_unknown_type(c);
	check_flush(c, "after the writes");
	verify_model(c, buf, -1);
}

/* --expect-read-only: everything that writes is refused and nothing changes. */
static void check_read_only(struct check *c, uint8_t *buf)
{
	uint8_t *before = malloc((size_t)CHECK_MODEL_SECTORS * SECTOR_SIZE);
	struct seg segs[4];

	if (!before) {
		record(c, false, "out of memory");
		return;
	}
	if (!read_model(c, before))
		goto out;
	record(c, true, "READ of the first MiB and the last 64 KiB");
	pattern_fill(c->out, CHECK_BLOCK_SECTORS * SECTOR_SIZE, c->fe->opt.seed, 8ull * SECTOR_SIZE);
	expect_status(c, submit(c, VIRTIO_BLK_T_OUT, 8, CHECK_BLOCK_SECTORS * SECTOR_SIZE, 0), VIRTIO_BLK_S_IOERR,
		      "WRITE of one block at sector 8");
	expect_status(c, submit(c, VIRTIO_BLK_T_OUT, c->capacity - 1, SECTOR_SIZE, 0), VIRTIO_BLK_S_IOERR,
		      "WRITE of the last sector");
	segs[0] = (struct seg){ .sector = 16, .num_sectors = CHECK_BLOCK_SECTORS };
	segs[1] = (struct seg){ .sector = 40, .num_sectors = 1 };
	if (negotiated(c, VIRTIO_BLK_F_DISCARD)) {
		expect_status(c, submit_segments(c, VIRTIO_BLK_T_DISCARD, segs, 1, 0), VIRTIO_BLK_S_IOERR,
			      "DISCARD of one block");
		expect_status(c, submit_segments(c, VIRTIO_BLK_T_DISCARD, segs, 2, 0), VIRTIO_BLK_S_IOERR,
			      "DISCARD of 2 segments");
	} else {
		note("DISCARD is not offered: no DISCARD sent");
	}
	if (negotiated(c, VIRTIO_BLK_F_WRITE_ZEROES)) {
		expect_status(c, submit_segments(c, VIRTIO_BLK_T_WRITE_ZEROES, segs, 2, 0), VIRTIO_BLK_S_IOERR,
			      "WRITE_ZEROES of 2 segments without UNMAP");
		segs[0].flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		expect_status(c, submit_segments(c, VIRTIO_BLK_T_WRITE_ZEROES, segs, 1, 0), VIRTIO_BLK_S_IOERR,
			      "WRITE_ZEROES of one block with UNMAP");
	} else {
		note("WRITE_ZEROES is not offered: no WRITE_ZEROES sent");
	}
	check_unknown_type(c);
	check_flush(c, "on the read-only disk");
	if (!read_model(c, buf))
		goto out;
	for (unsigned idx = 0; idx < CHECK_MODEL_SECTORS; idx++) {
		if (memcmp(buf + (uint64_t)idx * SECTOR_SIZE, before + (uint64_t)idx * SECTOR_SIZE, SECTOR_SIZE) != 0) {
			record(c, false, "READ again: sector %" PRIu64 " changed", model_sector(c, idx));
			goto out;
		}
	}
	record(c, true, "READ again: the first MiB and the last 64 KiB are byte for byte what they were");
out:
	free(before);
}

/* What the device offers and tells: the features and limits the checks rely on. */
static bool check_device(struct check *c)
{
	struct frontend *fe = c->fe;
	bool ro_offered = fe->dev_features & VU_BIT(VIRTIO_BLK_F_RO);

	if (fe->opt.expect_read_only) {
		record(c, ro_offered && negotiated(c, VIRTIO_BLK_F_RO), "VIRTIO_BLK_F_RO %s",
		      ro_offered ? "offered and negotiated" : "not offered, but --expect-read-only");
	} else if (ro_offered) {
		record(c, false, "the device offers VIRTIO_BLK_F_RO: pass --expect-read-only for a read-only disk");
		return false;
	}
	record(c, negotiated(c, VIRTIO_BLK_F_FLUSH), "VIRTIO_BLK_F_FLUSH %s",
	      negotiated(c, VIRTIO_BLK_F_FLUSH) ? "negotiated" : "not offered");
	if (!fe->opt.expect_read_only) {
		record(c, negotiated(c, VIRTIO_BLK_F_DISCARD) && negotiated(c, VIRTIO_BLK_F_WRITE_ZEROES),
		      "VIRTIO_BLK_F_DISCARD %s, VIRTIO_BLK_F_WRITE_ZEROES %s",
		      negotiated(c, VIRTIO_BLK_F_DISCARD) ? "negotiated" : "not offered",
		      negotiated(c, VIRTIO_BLK_F_WRITE_ZEROES) ? "negotiated" : "not offered");
	}
	if (!record(c, fe->have_config && fe->have_discard_config, "config space read (capacity and discard limits)"))
		return false;
	note("capacity %" PRIu64 " sectors; max_discard_sectors %u, max_discard_seg %u, max_write_zeroes_sectors %u, "
	     "max_write_zeroes_seg %u, write_zeroes_may_unmap %u", c->capacity, fe->max_discard_sectors,
	     fe->max_discard_seg, fe->max_write_zeroes_sectors, fe->max_write_zeroes_seg, fe->write_zeroes_may_unmap);
	if (!record(c, c->capacity >= CHECK_MIN_CAPACITY_SECTORS, "capacity %" PRIu64 " sectors (at least %u needed)",
		   c->capacity, CHECK_MIN_CAPACITY_SECTORS))
		return false;
	return fe->opt.expect_read_only ||
	       record(c, fe->max_discard_sectors && fe->max_discard_seg && fe->max_write_zeroes_sectors &&
		      fe->max_write_zeroes_seg, "discard and write-zeroes limits are not 0");
}

static int report(const struct check *c, const struct frontend *fe)
{
	const char *discard = "none";

	if (c->discarded_zero && c->discarded_pattern)
		discard = "mixed";
	else if (c->discarded_zero)
		discard = "zeroes";
	else if (c->discarded_pattern)
		discard = "pattern";
	printf("{\"check\":\"requests\",\"read_only\":%s,\"checks\":%u,\"failed\":%u,\"serial\":",
	       fe->opt.expect_read_only ? "true" : "false", c->checks, c->failed);
	fe_json_string(stdout, c->serial);
	printf(",\"discard_reads_as\":\"%s\",\"discarded_sectors\":%u,\"capacity_sectors\":%" PRIu64 ","
	       "\"max_discard_sectors\":%u,\"max_discard_seg\":%u,\"max_write_zeroes_sectors\":%u,"
	       "\"max_write_zeroes_seg\":%u,\"write_zeroes_may_unmap\":%u,\"first_failure\":",
	       discard, c->discarded_zero + c->discarded_pattern, c->capacity, fe->max_discard_sectors,
	       fe->max_discard_seg, fe->max_write_zeroes_sectors, fe->max_write_zeroes_seg, fe->write_zeroes_may_unmap);
	fe_json_string(stdout, c->first_failure);
	printf("}\n");
	fflush(stdout);
	return c->failed || c->checks == 0 ? 1 : 0;
}

int fe_requests_report_setup_failure(const struct frontend *fe)
{
	struct check c = { .checks = 1, .failed = 1 };

	snprintf(c.first_failure, sizeof(c.first_failure), "handshake: %.480s", fe->err);
	return report(&c, fe);
}

int fe_requests_run(struct frontend *fe)
{
	struct check c = { .fe = fe, .vq = &fe->vqs[0], .capacity = fe->capacity_bytes / SECTOR_SIZE };
	uint8_t *buf = malloc((size_t)CHECK_MODEL_SECTORS * SECTOR_SIZE);
	uint8_t *small;
	uint64_t small_gpa;

	small = gmem_alloc(&fe->mem, 4096, 4096, &small_gpa);
	c.out = gmem_alloc(&fe->mem, (uint64_t)CHECK_IO_SECTORS * SECTOR_SIZE, 4096, &c.out_gpa);
	c.in = gmem_alloc(&fe->mem, (uint64_t)CHECK_IO_SECTORS * SECTOR_SIZE, 4096, &c.in_gpa);
	c.burst = gmem_alloc(&fe->mem, (uint64_t)CHECK_BURST_MAX * CHECK_BURST_SLOT, 4096, &c.burst_gpa);
	if (!buf || !small || !c.out || !c.in || !c.burst) {
		record(&c, false, "out of guest or host memory");
		free(buf);
		return report(&c, fe);
	}
	c.hdr = (struct virtio_blk_outhdr *)small;
	c.hdr_gpa = small_gpa;
	c.status = small + 64;
	c.status_gpa = small_gpa + 64;
	label_new(&c, EXP_PATTERN, "sectors outside every DISCARD and WRITE_ZEROES");

	if (check_device(&c)) {
		check_get_id(&c);
		if (fe->opt.expect_read_only) {
			check_read_only(&c, buf);
		} else {
			check_flush(&c, "before the writes");
			check_read_write(&c, buf);
		}
	}
	/* The back-end must have consumed exactly the requests we made available, no more. */
	if (!c.dead) {
		int r = fe_stop_vrings(fe);

		record(&c, r == 0, "GET_VRING_BASE after %u request(s): %s", c.vq->avail_idx,
		      r == 0 ? "the back-end consumed every request, no more" : fe->err);
	}
	free(buf);
	return report(&c, fe);
}
