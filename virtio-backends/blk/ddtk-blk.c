/* ddtk-blk: the virtio-blk vhost-user back-end. Serves one or more volumes (a byte range of a file
 * or block device each) to one front-end per volume, with all I/O on one io_uring. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "ddtk-config.h"
#include "blk-req.h"
#include "blk-volume.h"
#include "ddctl-proto.h"
#include "vu-backend.h"
#include "vu-ivshmem.h"
#include "vu-server.h"

#define BLK_MAX_EXPORTS 64
#define BLK_DEFAULT_QUEUES 8
#define BLK_MAX_QUEUE_SIZE 1024
#define BLK_SEG_MAX 256            /* data segments per request; VU_ELEM_MAX_IOV leaves room to split */
#define BLK_RING_ENTRIES 1024
#define BLK_MAX_DISCARD_SECTORS (UINT32_C(1) << 22)
#define BLK_DEFAULT_POLL_US 200
/* Request errors a guest causes are logged at most this many per export per window; the next line
 * after the window says how many were left out. */
#define BLK_LOG_BURST 10
#define BLK_LOG_WINDOW_NS (UINT64_C(10) * 1000000000u)
/* Not a virtio status: the request waits for bounce-buffer room (cache=direct); nothing was done. */
#define BLK_S_WAIT 0xffu

enum blk_op_kind {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,
	BLK_OP_ZERO,
	BLK_OP_ZERO_BY_PUNCH,
	_BLK_OP_LAST,
};

struct blk_queue;

struct blk_op {
	struct blk_request *req;
	enum blk_op_kind kind;
	uint64_t offset;
	uint64_t len;
};

struct blk_request {
	struct blk_queue *q;
	struct blk_request *next_free;
	unsigned pending;                 /* operations not completed */
	uint8_t status;
	uint32_t written;                 /* bytes written into the guest's buffers */
	uint64_t due_ns;                  /* fault injection: finish no earlier than this */
	struct blk_request *next_delayed;
	/* cache=direct: the READ's or WRITE's data, in an aligned buffer of bounce_size bytes (the
	 * transfer rounded up to a power of two) that counts against the export's budget until the
	 * I/O is done (request_finish). */
	void *bounce;
	uint64_t bounce_size;
	bool waiting;                     /* in the export's list of requests waiting for that budget */
	struct blk_request *next_waiting;
	struct blk_req req;
	struct blk_op ops[BLK_MAX_SEGS];
	struct vu_elem elem;
};

struct blk_export;

struct blk_queue {
	struct blk_export *exp;
	struct vu_vq *vq;
	struct vu_watch kick_watch;
	struct blk_request *free_list;
	unsigned allocated;
	unsigned inflight;                /* taken from the ring, not finished (waiting ones too) */
	bool waiting;                     /* its oldest request waits for bounce room: take no more */
	bool stopping;                    /* blk_queue_stop drains it: take no more */
};

struct blk_export {
	struct blk_volume vol;
	char socket_path[108];
	int fd;                           /* --fd */
	unsigned ivshmem;                 /* driver-domain mode: the session's ivshmem device; 0 in host mode */
	unsigned kick_vector;             /* driver-domain mode: the state-device vector of queue 0's kicks */
	bool kick_vector_given;
	bool cache_given;                 /* cache= was given; else direct with ivshmem, buffered without */
	struct vu_ivshmem iv;
	unsigned num_queues;
	struct vu_dev dev;
	struct vu_server srv;
	struct blk_queue queues[VU_MAX_QUEUES];
	struct virtio_blk_config config;
	bool zero_range_unsupported;      /* fall back to punching holes (regular files only) */
	uint64_t requests, errors;        /* taken from the rings; finished with an error status */
	uint64_t completed;               /* finished (pushed, or dropped with a broken device) */
	uint64_t read_bytes, write_bytes; /* moved by READ and WRITE that succeeded */
	struct blk_bounce_budget bounce;  /* cache=direct: bytes in bounce buffers, and the limit */
	uint64_t bounce_waits;            /* requests that had to wait for that room */
	struct blk_request *wait_head, *wait_tail; /* requests waiting for bounce room, oldest first */
	uint64_t log_window_ns;           /* export_log's rate limit */
	unsigned log_lines, log_dropped;
};

static struct {
	struct io_uring ring;
	int ring_efd;
	struct vu_watch ring_watch;
	struct vu_loop loop;
	struct vu_notify_list notify;     /* queues to signal at the end of the loop turn */
	struct blk_export *exports[BLK_MAX_EXPORTS];
	unsigned nexports;
	struct vu_backend_options opts;
	/* Fault injection for tests (DDTK_BLK_FAULT_DELAY_MS): every request is held this long after
	 * its I/O completed, so a test can kill the back-end with requests certainly in flight. */
	uint64_t fault_delay_ns;
	struct blk_request *delayed_head, *delayed_tail;
	int delay_tfd;
	struct vu_watch delay_watch;
	struct vu_stats_server stats;     /* --stats-socket */
	struct blk_bounce_cache bounce_cache; /* idle bounce buffers of every export */
} blk = { .stats = { .fd = -1 } };

static void reap(void);
static void delay_arm(void);
static void start_waiting_all(void);

/* ---------- completion ---------- */

static void queue_mark_notify(struct blk_queue *q)
{
	vu_dev_notify_later(&blk.notify, &q->exp->dev, q->vq);
}

static void notify_all(void)
{
	vu_notify_list_flush(&blk.notify);
}

static void request_free(struct blk_request *r)
{
	struct blk_queue *q = r->q;

	r->next_free = q->free_list;
	q->free_list = r;
}

static void request_finish_now(struct blk_request *r)
{
	struct blk_queue *q = r->q;
	struct blk_export *exp = q->exp;

	q->inflight--;
	exp->completed++;
	if (r->status != VIRTIO_BLK_S_OK)
		exp->errors++;
	/* A broken device's memory is still mapped (stop waits for us) but nobody reads its rings. */
	if (!exp->dev.broken && q->vq->started) {
		*r->req.status = r->status;
		if (vu_vq_push(q->vq, r->elem.head, r->written + 1) == 0)
			queue_mark_notify(q);
	}
	request_free(r);
}

/* Bounce buffers come from the shared cache, page-aligned; a backing that wants more alignment
 * for memory (statx dio_mem_align) gets its own, freed after each use. */
static void *bounce_alloc(const struct blk_volume *vol, uint64_t size)
{
	void *buf;

	if (vol->mem_align <= BLK_BOUNCE_ALIGN)
		return blk_bounce_get(&blk.bounce_cache, size);
	return posix_memalign(&buf, vol->mem_align, (size_t)size) == 0 ? buf : NULL;
}

static void bounce_free(const struct blk_volume *vol, void *buf, uint64_t size)
{
	if (vol->mem_align <= BLK_BOUNCE_ALIGN)
		blk_bounce_put(&blk.bounce_cache, buf, size);
	else
		free(buf);
}

/* The I/O is done (or never started): the bounce buffer goes back at once, also when fault
 * injection holds the request. */
static void bounce_put(struct blk_request *r)
{
	struct blk_export *exp = r->q->exp;

	if (!r->bounce)
		return;
	bounce_free(&exp->vol, r->bounce, r->bounce_size);
	blk_bounce_release(&exp->bounce, r->bounce_size);
	r->bounce = NULL;
	r->bounce_size = 0;
}

static void request_finish(struct blk_request *r)
{
	bounce_put(r);
	if (!blk.fault_delay_ns) {
		request_finish_now(r);
		return;
	}
	r->due_ns = vu_now_ns() + blk.fault_delay_ns;
	r->next_delayed = NULL;
	if (blk.delayed_tail)
		blk.delayed_tail->next_delayed = r;
	else
		blk.delayed_head = r;
	blk.delayed_tail = r;
	delay_arm();
}

/* Finishes held requests that are due (all of them with force). */
static void delay_run(bool force)
{
	uint64_t now = vu_now_ns();

	while (blk.delayed_head && (force || blk.delayed_head->due_ns <= now)) {
		struct blk_request *r = blk.delayed_head;

		blk.delayed_head = r->next_delayed;
		if (!blk.delayed_head)
			blk.delayed_tail = NULL;
		request_finish_now(r);
	}
	delay_arm();
}

static void delay_arm(void)
{
	struct itimerspec its = { 0 };

	if (blk.delayed_head) {
		uint64_t now = vu_now_ns(), due = blk.delayed_head->due_ns;
		uint64_t left = due > now ? due - now : 1;

		its.it_value.tv_sec = (time_t)(left / 1000000000u);
		its.it_value.tv_nsec = (long)(left % 1000000000u);
	}
	timerfd_settime(blk.delay_tfd, 0, &its, NULL);
}

static void on_delay_timer(struct vu_watch *w, uint32_t events)
{
	uint64_t expirations;

	(void)read(w->fd, &expirations, sizeof(expirations));
	delay_run(false);
	notify_all();
}

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&blk.ring);

	if (!sqe) {
		/* The submission ring is full: hand it to the kernel, which takes every entry. No reap()
		 * here: we may be inside one (a completion that submits its fallback), whose peeked CQEs
		 * would be completed twice, or half-way through a request's operations, which could
		 * then finish before its last operation is even submitted. */
		io_uring_submit(&blk.ring);
		sqe = io_uring_get_sqe(&blk.ring);
	}
	return sqe;
}

static void op_submit(struct blk_op *op)
{
	struct blk_request *r = op->req;
	int fd = r->q->exp->vol.fd;
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe) {
		r->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	switch (op->kind) {
	case BLK_OP_READ:
		if (r->bounce)
			io_uring_prep_read(sqe, fd, r->bounce, (unsigned)op->len, op->offset);
		else
			io_uring_prep_readv(sqe, fd, r->req.in, r->req.in_num, op->offset);
		break;
	case BLK_OP_WRITE:
		if (r->bounce)
			io_uring_prep_write(sqe, fd, r->bounce, (unsigned)op->len, op->offset);
		else
			io_uring_prep_writev(sqe, fd, r->req.out, r->req.out_num, op->offset);
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_ZERO_BY_PUNCH:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, op->offset, op->len);
		break;
	case BLK_OP_ZERO:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, op->offset, op->len);
		break;
	case _BLK_OP_LAST:
		break;
	}
	io_uring_sqe_set_data(sqe, op);
	r->pending++;
}

/* A guest can send bad requests as fast as it likes: the log takes BLK_LOG_BURST lines per export
 * per window, then says how many it left out. */
static void export_log(struct blk_export *exp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void export_log(struct blk_export *exp, const char *fmt, ...)
{
	uint64_t now = vu_now_ns();
	va_list ap;

	if (now - exp->log_window_ns >= BLK_LOG_WINDOW_NS) {
		if (exp->log_dropped)
			fprintf(stderr, "%s: %u more such lines were not logged\n", exp->srv.name, exp->log_dropped);
		exp->log_window_ns = now;
		exp->log_lines = 0;
		exp->log_dropped = 0;
	}
	if (exp->log_lines >= BLK_LOG_BURST) {
		exp->log_dropped++;
		return;
	}
	exp->log_lines++;
	fprintf(stderr, "%s: ", exp->srv.name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start is right above
	va_end(ap);
	fputc('\n', stderr);
}

/* The backing failed an operation: the request ends with IOERR, and the log says what and why. */
static void op_failed(struct blk_request *r, const char *what, const char *why)
{
	fprintf(stderr, "%s: %s: %s\n", r->q->exp->srv.name, what, why);
	r->status = VIRTIO_BLK_S_IOERR;
}

static void op_complete(struct blk_op *op, int res)
{
	struct blk_request *r = op->req;
	struct blk_export *exp = r->q->exp;

	r->pending--;
	switch (op->kind) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		/* io_uring returns short counts only at end of file: the backing shrank. */
		if (res < 0 || (uint64_t)res != op->len) {
			char what[96];

			snprintf(what, sizeof(what), "%s of %" PRIu64 " bytes at %" PRIu64,
				 op->kind == BLK_OP_READ ? "read" : "write", op->len, op->offset);
			op_failed(r, what, res < 0 ? strerror(-res) : "short transfer");
		} else if (op->kind == BLK_OP_READ) {
			/* The length matches by construction (start_rw): a failure here is a bug of ours. */
			if (r->bounce && blk_req_scatter(&r->req, r->bounce, op->len) < 0) {
				op_failed(r, "read", "the bounce buffer does not match the request");
				break;
			}
			r->written = (uint32_t)res;
			exp->read_bytes += (uint64_t)res;
		} else {
			exp->write_bytes += (uint64_t)res;
		}
		break;
	case BLK_OP_FLUSH:
		if (res < 0)
			op_failed(r, "flush", strerror(-res));
		break;
	case BLK_OP_DISCARD:
		/* Discard is a hint: a backing that cannot punch holes just keeps the data. */
		if (res < 0 && res != -EOPNOTSUPP)
			op_failed(r, "discard", strerror(-res));
		break;
	case BLK_OP_ZERO:
		if (res == -EOPNOTSUPP && !exp->vol.is_blockdev) {
			/* tmpfs has no ZERO_RANGE; a hole in a regular file reads back as zeroes. */
			exp->zero_range_unsupported = true;
			op->kind = BLK_OP_ZERO_BY_PUNCH;
			op_submit(op);
			break; /* when op_submit failed, the request may be complete now */
		}
		__attribute__((fallthrough));
	case BLK_OP_ZERO_BY_PUNCH:
		if (res < 0)
			op_failed(r, "write-zeroes", strerror(-res));
		break;
	case _BLK_OP_LAST:
		break;
	}
	if (r->pending == 0)
		request_finish(r);
}

static void reap(void)
{
	struct io_uring_cqe *cqes[64];
	unsigned n;

	while ((n = io_uring_peek_batch_cqe(&blk.ring, cqes, 64)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			struct blk_op *op = io_uring_cqe_get_data(cqes[i]);
			int res = cqes[i]->res;

			/* Mark the CQE seen before completing: completion may queue new SQEs. */
			io_uring_cqe_seen(&blk.ring, cqes[i]);
			if (op)
				op_complete(op, res);
		}
	}
}

/* Submits what the callbacks prepared, completes what is done, notifies drivers once each. What
 * the kernel did not take (a transient -EBUSY) stays in the ring and goes with the next submit. */
static void flush_io(void)
{
	if (io_uring_sq_ready(&blk.ring))
		io_uring_submit(&blk.ring);
	reap();
	start_waiting_all(); /* what reap() freed of the bounce budgets */
	if (io_uring_sq_ready(&blk.ring))
		io_uring_submit(&blk.ring);
	notify_all();
}

/* ---------- requests ---------- */

/* cache=direct: O_DIRECT cannot reach client memory that is a VFIO BAR mapping, so the data goes
 * through an aligned buffer of ours (a WRITE's copied in here, a READ's copied out when it is done).
 * OK, IOERR (misaligned, larger than the budget, no memory), or BLK_S_WAIT: no room in the budget
 * now, or older requests wait for it (they go first). */
static uint8_t bounce_take(struct blk_request *r, bool write, uint64_t offset, uint64_t len)
{
	struct blk_export *exp = r->q->exp;
	const char *what = write ? "write" : "read";
	uint64_t size = blk_bounce_size(len);
	int ret;

	if (!blk_volume_aligned(&exp->vol, offset, len)) {
		export_log(exp, "%s of %" PRIu64 " bytes at sector %" PRIu64 " refused: O_DIRECT on %s needs "
			   "multiples of %u bytes", what, len, r->req.sector, exp->vol.path, exp->vol.align);
		return VIRTIO_BLK_S_IOERR;
	}
	if (size == 0)
		ret = -E2BIG;
	else if (exp->wait_head && !r->waiting)
		ret = -EAGAIN; /* older requests wait for room: they go first */
	else
		ret = blk_bounce_reserve(&exp->bounce, size);
	if (ret == -EAGAIN)
		return BLK_S_WAIT;
	if (ret < 0) {
		export_log(exp, "%s of %" PRIu64 " bytes refused: larger than the %" PRIu64 " bytes of bounce "
			   "buffers an export may hold (cache=direct)", what, len, exp->bounce.limit);
		return VIRTIO_BLK_S_IOERR;
	}
	r->bounce = bounce_alloc(&exp->vol, size);
	if (!r->bounce) {
		blk_bounce_release(&exp->bounce, size);
		export_log(exp, "%s of %" PRIu64 " bytes failed: no memory for its bounce buffer", what, len);
		return VIRTIO_BLK_S_IOERR;
	}
	r->bounce_size = size;
	/* The length matches by construction (start_rw); request_finish frees the buffer either way. */
	if (write && blk_req_gather(&r->req, r->bounce, len) < 0)
		return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}

static uint8_t start_rw(struct blk_request *r, bool write)
{
	struct blk_export *exp = r->q->exp;
	uint64_t len = write ? r->req.out_len : r->req.in_len;
	uint64_t offset;

	if (write && exp->vol.read_only)
		return VIRTIO_BLK_S_IOERR;
	/* Data in the wrong direction is a malformed request. */
	if ((write && r->req.in_len) || (!write && r->req.out_len))
		return VIRTIO_BLK_S_IOERR;
	if (blk_volume_check_range(&exp->vol, r->req.sector, len, &offset) < 0)
		return VIRTIO_BLK_S_IOERR;
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	if (exp->vol.direct) {
		uint8_t status = bounce_take(r, write, offset, len);

		if (status != VIRTIO_BLK_S_OK)
			return status;
	}
	r->ops[0] = (struct blk_op){ .req = r, .kind = write ? BLK_OP_WRITE : BLK_OP_READ, .offset = offset, .len = len };
	op_submit(&r->ops[0]);
	return VIRTIO_BLK_S_OK;
}

static uint8_t start_discard_zeroes(struct blk_request *r, bool zeroes)
{
	struct blk_export *exp = r->q->exp;
	struct virtio_blk_discard_write_zeroes segs[BLK_MAX_SEGS];
	int n;

	if (exp->vol.read_only)
		return VIRTIO_BLK_S_IOERR;
	n = blk_req_segments(&r->req, segs, BLK_MAX_SEGS);
	if (n < 0 || r->req.in_len)
		return VIRTIO_BLK_S_IOERR;
	for (int i = 0; i < n; i++) {
		uint64_t len = (uint64_t)segs[i].num_sectors * BLK_SECTOR_SIZE, offset;

		if (segs[i].flags & ~(uint32_t)(zeroes ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0))
			return VIRTIO_BLK_S_UNSUPP;
		if (segs[i].num_sectors > BLK_MAX_DISCARD_SECTORS ||
		    blk_volume_check_range(&exp->vol, segs[i].sector, len, &offset) < 0)
			return VIRTIO_BLK_S_IOERR;
		r->ops[i] = (struct blk_op){ .req = r, .offset = offset, .len = len };
	}
	/* Every segment is checked before the first is submitted: all or nothing is attempted. */
	for (int i = 0; i < n; i++) {
		if (r->ops[i].len == 0)
			continue;
		r->ops[i].kind = !zeroes ? BLK_OP_DISCARD
			       : exp->zero_range_unsupported ? BLK_OP_ZERO_BY_PUNCH : BLK_OP_ZERO;
		op_submit(&r->ops[i]);
	}
	return VIRTIO_BLK_S_OK;
}

static uint8_t start_get_id(struct blk_request *r)
{
	const struct blk_volume *vol = &r->q->exp->vol;
	uint8_t id[VIRTIO_BLK_ID_BYTES] = { 0 };
	uint64_t len = r->req.in_len < sizeof(id) ? r->req.in_len : sizeof(id);

	memcpy(id, vol->serial, strnlen(vol->serial, sizeof(id)));
	r->written = (uint32_t)vu_iov_from_buf(r->req.in, r->req.in_num, 0, id, len);
	return VIRTIO_BLK_S_OK;
}

/* Starts a request taken from a ring. false: it waits for bounce-buffer room and nothing was done;
 * start it again later. */
static bool request_start(struct blk_request *r)
{
	struct blk_export *exp = r->q->exp;
	uint8_t status;

	r->pending = 0;
	r->written = 0;
	r->status = VIRTIO_BLK_S_OK;
	switch (r->req.type) {
	case VIRTIO_BLK_T_IN:
		status = start_rw(r, false);
		break;
	case VIRTIO_BLK_T_OUT:
		status = start_rw(r, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		status = VIRTIO_BLK_S_OK;
		if (!exp->vol.read_only) {
			r->ops[0] = (struct blk_op){ .req = r, .kind = BLK_OP_FLUSH };
			op_submit(&r->ops[0]);
		}
		break;
	case VIRTIO_BLK_T_GET_ID:
		status = start_get_id(r);
		break;
	case VIRTIO_BLK_T_DISCARD:
		status = start_discard_zeroes(r, false);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		status = start_discard_zeroes(r, true);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status == BLK_S_WAIT)
		return false;
	if (status != VIRTIO_BLK_S_OK)
		r->status = status;
	if (r->pending == 0)
		request_finish(r);
	return true;
}

/* r waits for bounce room, behind those already waiting; its queue takes no more meanwhile. */
static void request_wait(struct blk_request *r)
{
	struct blk_export *exp = r->q->exp;

	exp->bounce_waits++;
	r->waiting = true;
	r->q->waiting = true;
	r->next_waiting = NULL;
	if (exp->wait_tail)
		exp->wait_tail->next_waiting = r;
	else
		exp->wait_head = r;
	exp->wait_tail = r;
}

static void queue_process(struct blk_queue *q);

/* Starts the requests waiting for bounce room, oldest first, as far as the room goes, and lets their
 * queues take requests again. A broken device's are dropped: nobody reads its rings (they are not
 * pushed), and its front-end must reset it. Room is always freed by I/O in flight: a request waits
 * only while others hold bounce buffers. */
static void export_start_waiting(struct blk_export *exp)
{
	struct blk_request *r;

	while ((r = exp->wait_head) != NULL) {
		struct blk_queue *q = r->q;

		exp->wait_head = r->next_waiting;
		if (!exp->wait_head)
			exp->wait_tail = NULL;
		if (exp->dev.broken) {
			r->status = VIRTIO_BLK_S_IOERR;
			q->waiting = false;
			request_finish(r);
			continue;
		}
		if (!request_start(r)) {
			/* Still first in line. */
			r->next_waiting = exp->wait_head;
			exp->wait_head = r;
			if (!exp->wait_tail)
				exp->wait_tail = r;
			return;
		}
		q->waiting = false;
		queue_process(q);
	}
}

static void start_waiting_all(void)
{
	for (unsigned i = 0; i < blk.nexports; i++)
		if (blk.exports[i]->wait_head)
			export_start_waiting(blk.exports[i]);
}

static struct blk_request *request_alloc(struct blk_queue *q)
{
	struct blk_request *r = q->free_list;

	if (r) {
		q->free_list = r->next_free;
		return r;
	}
	/* At most one request per ring entry is ever in flight; the pool never grows beyond that. */
	if (q->allocated > q->vq->num)
		return NULL;
	r = malloc(sizeof(*r));
	if (!r)
		return NULL;
	r->q = q;
	q->allocated++;
	return r;
}

static void queue_break(struct blk_queue *q, const char *what, int err)
{
	struct blk_export *exp = q->exp;

	vu_dev_set_broken(&exp->dev, "queue %u: %s (%s)", q->vq->index, what, strerror(-err));
	fprintf(stderr, "%s: device broken: %s; other clients are not affected\n", exp->srv.name,
		exp->dev.broken_reason);
	/* Stop listening to every queue of this device; its front-end must reset or reconnect. */
	for (unsigned i = 0; i < exp->num_queues; i++)
		vu_loop_del(&blk.loop, &exp->queues[i].kick_watch);
}

static void queue_process(struct blk_queue *q)
{
	for (;;) {
		struct blk_request *r;
		int ret;

		if (q->exp->dev.broken || q->waiting || q->stopping)
			return;
		r = request_alloc(q);
		if (!r) {
			queue_break(q, "out of request slots", -ENOMEM);
			return;
		}
		ret = vu_vq_pop(q->vq, &r->elem);
		if (ret <= 0) {
			request_free(r);
			if (ret < 0)
				queue_break(q, "guest broke the ring", ret);
			return;
		}
		ret = blk_req_parse(&r->elem, &r->req);
		if (ret == -EINVAL) {
			request_free(r);
			queue_break(q, "request without a status byte", ret);
			return;
		}
		q->exp->requests++;
		q->inflight++;
		r->bounce = NULL;
		r->bounce_size = 0;
		r->waiting = false;
		if (ret < 0) {
			r->pending = 0;
			r->written = 0;
			r->status = VIRTIO_BLK_S_IOERR;
			request_finish(r);
			continue;
		}
		if (!request_start(r))
			request_wait(r);
	}
}

static void on_kick(struct vu_watch *w, uint32_t events)
{
	struct blk_queue *q = vu_container_of(w, struct blk_queue, kick_watch);
	uint64_t v;

	/* A kick fd that hangs up or reads end-of-file (a pipe, not an eventfd) would stay readable
	 * and spin this loop: the front-end gave us a fd we cannot wait on. */
	if ((events & (EPOLLHUP | EPOLLERR)) || read(w->fd, &v, sizeof(v)) == 0) {
		queue_break(q, "its kick fd hung up", -EPIPE);
		return;
	}
	queue_process(q);
}

/* ---------- polling ---------- */

/* Calls fn on every started queue of every device that is not broken; true if any returned
 * non-zero. */
static bool for_each_queue(int (*fn)(struct blk_queue *q))
{
	bool any = false;

	for (unsigned i = 0; i < blk.nexports; i++) {
		struct blk_export *exp = blk.exports[i];

		for (unsigned j = 0; j < exp->num_queues && !exp->dev.broken; j++) {
			struct blk_queue *q = &exp->queues[j];

			if (q->vq && q->vq->started && fn(q))
				any = true;
		}
	}
	return any;
}

static int queue_poll(struct blk_queue *q)
{
	/* A waiting queue moves when I/O completes (the ring's eventfd wakes the loop), not by polling. */
	if (q->waiting || vu_vq_has_work(q->vq) == 0)
		return 0;
	queue_process(q); /* also where a broken ring is reported */
	return 1;
}

static int queue_kicks_off(struct blk_queue *q)
{
	return vu_vq_set_notification(q->vq, false);
}

static int queue_kicks_on(struct blk_queue *q)
{
	if (vu_vq_set_notification(q->vq, true) == 0 || q->waiting)
		return 0;
	queue_process(q); /* arrived while kicks were off: nobody will kick for it */
	return 1;
}

static bool run_poll(void *opaque)
{
	bool work = for_each_queue(queue_poll);

	/* With COOP_TASKRUN an I/O that completed in an interrupt (O_DIRECT: all of them) posts its
	 * CQE only when this thread next enters the kernel, which a busy-polling thread may not do
	 * for a scheduler tick. TASKRUN_FLAG makes the kernel say when it is needed. */
	if (IO_URING_READ_ONCE(*blk.ring.sq.kflags) & IORING_SQ_TASKRUN)
		io_uring_get_events(&blk.ring);
	if (io_uring_cq_ready(&blk.ring)) {
		reap();
		work = true;
	}
	return work;
}

static bool run_kicks(void *opaque, bool on)
{
	return for_each_queue(on ? queue_kicks_on : queue_kicks_off);
}

static void run_flush(void *opaque)
{
	flush_io();
}

static bool run_done(void *opaque)
{
	for (unsigned i = 0; i < blk.nexports; i++)
		if (!blk.exports[i]->srv.done)
			return false;
	return true;
}

static const struct vu_run_ops blk_run_ops = {
	.poll = run_poll,
	.kicks = run_kicks,
	.flush = run_flush,
	.done = run_done,
};

/* ---------- vu_dev back-end ops ---------- */

static int blk_get_config(void *backend, uint32_t offset, uint8_t *buf, uint32_t len)
{
	struct blk_export *exp = backend;

	memcpy(buf, (uint8_t *)&exp->config + offset, len);
	return 0;
}

static int blk_queue_start(void *backend, struct vu_vq *vq)
{
	struct blk_export *exp = backend;
	struct blk_queue *q = &exp->queues[vq->index];
	int r;

	q->vq = vq;
	q->stopping = false;
	r = vu_loop_add(&blk.loop, &q->kick_watch, vq->kick_fd, EPOLLIN, on_kick);
	if (r < 0)
		return r;
	if (vq->resubmit_num)
		fprintf(stderr, "%s: queue %u: re-submitting %u requests a previous back-end left in flight\n",
			exp->srv.name, vq->index, vq->resubmit_num);
	/* Requests a previous back-end left in flight, or kicks sent before we watched. */
	queue_process(q);
	return 0;
}

static void blk_queue_stop(void *backend, struct vu_vq *vq)
{
	struct blk_export *exp = backend;
	struct blk_queue *q = &exp->queues[vq->index];

	vu_loop_del(&blk.loop, &q->kick_watch);
	q->stopping = true;
	/* The front-end's memory stays mapped until this returns: wait for every operation on it. A
	 * request waiting for bounce room is started (or dropped, on a broken device) like the others
	 * in line; the front-end may have no inflight region to re-send it from. */
	while (q->inflight) {
		if (blk.delayed_head) {
			delay_run(true);
			continue;
		}
		if (q->waiting) {
			export_start_waiting(exp);
			if (!q->waiting && !io_uring_sq_ready(&blk.ring))
				continue;
		}
		int r = io_uring_submit_and_wait(&blk.ring, 1);

		/* Giving up here would unmap memory the kernel may still write into, possibly after
		 * another client's memory is mapped there: a ring that cannot be waited on is fatal. */
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			fprintf(stderr, "ddtk-blk: cannot wait for I/O in flight (%s); exiting\n", strerror(-r));
			exit(EXIT_FAILURE);
		}
		reap();
	}
	notify_all();
	while (q->free_list) {
		struct blk_request *r = q->free_list;

		q->free_list = r->next_free;
		free(r);
	}
	q->allocated = 0;
}

static const struct vu_backend_ops blk_backend_ops = {
	.get_config = blk_get_config,
	.queue_start = blk_queue_start,
	.queue_stop = blk_queue_stop,
};

static void export_config(struct blk_export *exp)
{
	struct virtio_blk_config *c = &exp->config;
	uint64_t sectors = exp->vol.size / BLK_SECTOR_SIZE;

	memset(c, 0, sizeof(*c));
	c->capacity = htole64(sectors);
	c->seg_max = htole32(BLK_SEG_MAX);
	/* With O_DIRECT on a backing of larger blocks the guest must use them too (else IOERR). */
	c->blk_size = htole32(exp->vol.align);
	/* A guest that honours seg_max x size_max never sends more than the bounce budget holds. */
	if (exp->vol.direct)
		c->size_max = htole32((uint32_t)(BLK_BOUNCE_BYTES_MAX / BLK_SEG_MAX));
	c->num_queues = htole16(exp->num_queues);
	c->max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	c->max_discard_seg = htole32(BLK_MAX_SEGS);
	c->discard_sector_alignment = htole32(1);
	c->max_write_zeroes_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	c->max_write_zeroes_seg = htole32(BLK_MAX_SEGS);
	c->write_zeroes_may_unmap = 1;
}

static int export_start(struct blk_export *exp)
{
	struct vu_dev_info info = {
		.features = VU_BIT(VIRTIO_BLK_F_SEG_MAX) | VU_BIT(VIRTIO_BLK_F_BLK_SIZE) |
			    VU_BIT(VIRTIO_BLK_F_FLUSH) | VU_BIT(VIRTIO_BLK_F_MQ) | VU_BIT(VIRTIO_BLK_F_DISCARD) |
			    VU_BIT(VIRTIO_BLK_F_WRITE_ZEROES),
		.protocol_features = VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK) |
				     VU_BIT(VU_PROTOCOL_F_CONFIG) | VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD) |
				     VU_BIT(VU_PROTOCOL_F_RESET_DEVICE),
		.num_queues = exp->num_queues,
		.max_queue_size = BLK_MAX_QUEUE_SIZE,
		.config_size = sizeof(struct virtio_blk_config),
	};
	char err[512], name[128];
	int r;

	if (exp->vol.read_only)
		info.features |= VU_BIT(VIRTIO_BLK_F_RO);
	if (exp->vol.direct)
		info.features |= VU_BIT(VIRTIO_BLK_F_SIZE_MAX);
	exp->bounce.limit = BLK_BOUNCE_BYTES_MAX;
	r = blk_volume_open(&exp->vol, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "ddtk-blk: %s\n", err);
		return r;
	}
	export_config(exp);
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
		exp->queues[i].exp = exp;
	if (exp->ivshmem) {
		/* Driver-domain mode: the client's RAM, kicks and calls come through the session's
		 * ivshmem device; the socket carries the messages only. */
		r = vu_ivshmem_init(&exp->iv, exp->ivshmem, exp->kick_vector, exp->num_queues);
		if (r < 0) {
			fprintf(stderr, "ddtk-blk: %s\n", exp->iv.error);
			return r;
		}
		r = vu_dev_init(&exp->dev, &info, &vu_ivshmem_transport_ops, &exp->iv, &blk_backend_ops, exp);
	} else {
		r = vu_dev_init(&exp->dev, &info, &vu_socket_transport_ops, NULL, &blk_backend_ops, exp);
	}
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "ddtk-blk[%s]", exp->socket_path[0] ? exp->socket_path : "fd");
	r = vu_server_init(&exp->srv, &blk.loop, &exp->dev, name, exp->socket_path[0] ? exp->socket_path : NULL,
			   exp->fd);
	if (r < 0) {
		fprintf(stderr, "ddtk-blk: cannot serve %s: %s\n", exp->socket_path[0] ? exp->socket_path : "--fd",
			strerror(-r));
		return r;
	}
	/* libvirt runs QEMU as its own user: a group lets it connect without opening to all. */
	if (exp->socket_path[0] && blk.opts.socket_gid != (gid_t)-1 && (r = vu_socket_set_group(exp->socket_path, blk.opts.socket_gid)) < 0) {
		fprintf(stderr, "ddtk-blk: cannot hand %s to the socket group: %s\n", exp->socket_path, strerror(-r));
		return r;
	}
	fprintf(stderr, "%s: serving %s (%" PRIu64 " bytes at offset %" PRIu64 "%s), %u queues, ", name,
		exp->vol.path, exp->vol.size, exp->vol.offset, exp->vol.read_only ? ", read-only" : "",
		exp->num_queues);
	if (exp->vol.direct)
		fprintf(stderr, "cache=direct (O_DIRECT, %u-byte blocks, bounce buffers)", exp->vol.align);
	else
		fprintf(stderr, "cache=buffered");
	if (exp->ivshmem)
		fprintf(stderr, ", client memory through ivshmem session %u, kicks state-device vectors %u..%u "
			"(device and kicks from %s)", exp->ivshmem, exp->kick_vector, exp->kick_vector + exp->num_queues - 1,
			vu_ivshmem_broker_socket());
	fputc('\n', stderr);
	return 0;
}

/* ---------- command line ---------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: ddtk-blk --socket-path=PATH --blk-file=FILE [--offset=N] [--size=N] [--read-only]\n"
"                [--serial=ID] [--num-queues=N] [--cache=direct|buffered]\n"
"       ddtk-blk --fd=FDNUM --blk-file=FILE [...]\n"
"       ddtk-blk --export socket=PATH,file=FILE[,offset=N][,size=N][,read-only][,serial=ID]\n"
"                [,num-queues=N][,cache=direct|buffered][,ivshmem=S,kick-vector=V]\n"
"                [--export ...] [--stats-socket=PATH]\n"
"       ddtk-blk --print-capabilities\n"
"\n"
"A vhost-user virtio-blk back-end (ddtk). Each export serves a volume, the byte range\n"
"[offset, offset+size) of FILE (a regular file or a block device), to one QEMU at a time;\n"
"no request can reach outside it. Sizes take k, M, G, T suffixes; size defaults to the rest\n"
"of the file. I/O runs on io_uring; FLUSH is a real fdatasync.\n"
"\n"
"  --socket-path=PATH    listen on this Unix socket (a stale socket file is replaced)\n"
"  --fd=FDNUM            serve on this inherited socket (listening or connected)\n"
"  --blk-file=FILE       backing file or block device\n"
"  --offset=N --size=N   the volume's byte range (multiples of 512)\n"
"  --read-only           refuse writes (the guest sees a read-only disk)\n"
"  --serial=ID           the disk's serial number (up to 20 characters)\n"
"  --num-queues=N        queues offered (default %u, at most %u)\n"
"  --cache=direct|buffered\n"
"                        direct: the volume is opened with O_DIRECT and READ/WRITE data goes\n"
"                        through aligned bounce buffers (at most %u MiB per export at once;\n"
"                        offsets and lengths must be multiples of the backing's logical block\n"
"                        size, announced as the disk's block size); a completed write is on the\n"
"                        device. buffered: through the page cache (faster on a warm cache; a\n"
"                        completed write may still be in memory until FLUSH). Default: direct\n"
"                        with ivshmem=S, buffered otherwise\n"
"  --export SPEC         one more volume and socket; repeat for several clients; with\n"
"                        ivshmem=S,kick-vector=V it is served in the driver domain (below)\n"
"  --stats-socket=PATH   answer each connection on PATH with the counters as JSON (per\n"
"                        export: requests completed and in flight, bytes, errors, broken)\n"
"  --poll-us=N           after work, busy-poll the rings for N microseconds before sleeping\n"
"                        (default %u, 0 = never): fewer kicks and wakeups under load, some CPU\n"
"  --socket-group=GROUP  make the sockets rw for GROUP (mode 0660); libvirt's QEMU runs as\n"
"                        libvirt-qemu:kvm on Debian, so --socket-group=kvm lets it connect\n"
"  --print-capabilities  print the vhost-user capabilities as JSON and exit\n"
"  --verbose             print a line per connection and at exit counters per export\n"
"\n"
"QEMU:    -chardev socket,id=c0,path=PATH,reconnect=1\n"
"         -device vhost-user-blk-pci,chardev=c0,num-queues=N\n"
"         (guest RAM must be shared: -object memory-backend-memfd,id=m,size=..,share=on\n"
"          -machine memory-backend=m)\n"
"libvirt: <disk type='vhostuser' device='disk'>\n"
"           <driver name='qemu' type='raw'/>\n"
"           <source type='unix' path='PATH'><reconnect enabled='yes' timeout='1'/></source>\n"
"           <target dev='vda' bus='virtio'/>\n"
"         </disk>   plus <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\n"
"If ddtk-blk is restarted, QEMU reconnects and re-sends the requests that were in flight.\n"
"\n"
"Driver-domain mode (ivshmem=S,kick-vector=V, S = 1..%d, V + num-queues <= %d): ddtk-blk runs\n"
"in the driver domain VM. The socket carries vhost-user messages without fds (ddtk-agent relays\n"
"them from ddtk-bridge); the client's RAM is BAR2 of the ivshmem-doorbell device with IVPosition\n"
"S, a call is a Doorbell write, and the state device (IVPosition %d) holds the inflight region\n"
"(session S's area) and the kicks: a kick of queue i is its MSI-X vector V + i. ddtk-agent binds\n"
"those devices to vfio-pci, holds their IOMMU group and the state device's vectors, and sends\n"
"their VFIO device fds, by IVPosition, and the vectors' eventfds on %s\n"
"(DDTK_VFIO_SOCKET=PATH asks there instead). Volumes default to cache=direct there: a write\n"
"the client saw complete must survive the DD being destroyed, and the DD's page cache would\n"
"not (O_DIRECT cannot reach client memory mapped from a VFIO BAR: hence the bounce buffers).\n",
		(unsigned)BLK_DEFAULT_QUEUES, (unsigned)VU_MAX_QUEUES, (unsigned)(BLK_BOUNCE_BYTES_MAX >> 20),
		(unsigned)BLK_DEFAULT_POLL_US,
		DDCTL_SESSIONS_MAX, DDCTL_KICK_VECTORS_MAX, DDCTL_STATE_IVPOSITION, DDCTL_VFIO_SOCKET);
}

static struct blk_export *export_new(void)
{
	struct blk_export *exp;

	if (blk.nexports == BLK_MAX_EXPORTS) {
		fprintf(stderr, "ddtk-blk: at most %d exports\n", BLK_MAX_EXPORTS);
		return NULL;
	}
	exp = calloc(1, sizeof(*exp));
	if (!exp)
		return NULL;
	blk_volume_init(&exp->vol);
	exp->fd = -1;
	exp->num_queues = BLK_DEFAULT_QUEUES;
	blk.exports[blk.nexports++] = exp;
	return exp;
}

/* Applies one key of --export or one of the single-export options. */
static int export_set(struct blk_export *exp, const char *key, const char *value)
{
	uint64_t v;

	if (!strcmp(key, "socket") || !strcmp(key, "socket-path")) {
		if (!value || snprintf(exp->socket_path, sizeof(exp->socket_path), "%s", value) >= (int)sizeof(exp->socket_path))
			return -EINVAL;
	} else if (!strcmp(key, "fd")) {
		unsigned fd;

		if (!value || vu_parse_uint(value, 1, INT32_MAX, &fd) < 0)
			return -EINVAL;
		exp->fd = (int)fd;
	} else if (!strcmp(key, "file") || !strcmp(key, "blk-file")) {
		if (!value || !*value || snprintf(exp->vol.path, sizeof(exp->vol.path), "%s", value) >= (int)sizeof(exp->vol.path))
			return -EINVAL;
	} else if (!strcmp(key, "offset")) {
		if (!value || blk_parse_size(value, &v) < 0)
			return -EINVAL;
		exp->vol.offset = v;
	} else if (!strcmp(key, "size")) {
		if (!value || blk_parse_size(value, &v) < 0 || v == 0)
			return -EINVAL;
		exp->vol.size = v;
	} else if (!strcmp(key, "read-only")) {
		if (value && strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
			return -EINVAL;
		exp->vol.read_only = !value || strcmp(value, "on") == 0;
	} else if (!strcmp(key, "serial")) {
		if (!value || snprintf(exp->vol.serial, sizeof(exp->vol.serial), "%s", value) >= (int)sizeof(exp->vol.serial))
			return -EINVAL;
	} else if (!strcmp(key, "num-queues")) {
		if (!value || vu_parse_uint(value, 1, VU_MAX_QUEUES, &exp->num_queues) < 0)
			return -EINVAL;
	} else if (!strcmp(key, "ivshmem")) {
		if (!value || vu_parse_uint(value, 1, DDCTL_SESSIONS_MAX, &exp->ivshmem) < 0)
			return -EINVAL;
	} else if (!strcmp(key, "kick-vector")) {
		if (!value || vu_parse_uint(value, 0, DDCTL_KICK_VECTORS_MAX - 1, &exp->kick_vector) < 0)
			return -EINVAL;
		exp->kick_vector_given = true;
	} else if (!strcmp(key, "cache")) {
		if (!value || (strcmp(value, "direct") != 0 && strcmp(value, "buffered") != 0))
			return -EINVAL;
		exp->vol.direct = strcmp(value, "direct") == 0;
		exp->cache_given = true;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int export_set_any(void *obj, const char *key, const char *value)
{
	return export_set(obj, key, value);
}

static const char *export_hint(const char *key)
{
	static char hint[64];

	if (!strcmp(key, "cache"))
		return " (direct or buffered)";
	if (!strcmp(key, "kick-vector")) {
		snprintf(hint, sizeof(hint), " (a state-device vector, 0 to %d)", DDCTL_KICK_VECTORS_MAX - 1);
		return hint;
	}
	if (strcmp(key, "ivshmem") != 0)
		return "";
	snprintf(hint, sizeof(hint), " (a driver-domain session, 1 to %d)", DDCTL_SESSIONS_MAX);
	return hint;
}

/* Driver-domain mode's kick vectors: given with ivshmem= (and only then), within the state
 * device's vectors, and no two exports' ranges overlapping (a kick would wake the wrong queue). */
static int export_check_kicks(const struct blk_export *exp, unsigned index)
{
	int r = vu_ivshmem_kicks_check("ddtk-blk", exp->ivshmem, exp->kick_vector_given, exp->kick_vector,
				       exp->num_queues);

	for (unsigned j = 0; r == 0 && exp->ivshmem && j < index; j++) {
		const struct blk_export *o = blk.exports[j];

		if (o->ivshmem)
			r = vu_ivshmem_kicks_apart("ddtk-blk", o->ivshmem, o->kick_vector, o->num_queues, exp->ivshmem,
						   exp->kick_vector, exp->num_queues);
	}
	return r;
}

static int export_parse(const char *spec)
{
	struct blk_export *exp = export_new();

	if (!exp)
		return -ENOMEM;
	return vu_parse_spec("ddtk-blk", "--export", spec, export_set_any, exp, export_hint);
}

/* ---------- counters for the outside ---------- */

static unsigned export_inflight(const struct blk_export *exp)
{
	unsigned n = 0;

	for (unsigned i = 0; i < exp->num_queues; i++)
		n += exp->queues[i].inflight;
	return n;
}

/* ddtk-agent reads "completed" and "inflight" (the totals, at the top) to tell a back-end that
 * makes progress from a stuck one: requests in flight and completed not moving. */
static void stats_write(FILE *f, void *opaque)
{
	uint64_t completed = 0, inflight = 0;

	for (unsigned i = 0; i < blk.nexports; i++) {
		completed += blk.exports[i]->completed;
		inflight += export_inflight(blk.exports[i]);
	}
	fprintf(f, "{\n  \"completed\": %" PRIu64 ",\n  \"inflight\": %" PRIu64 ",\n  \"exports\": [", completed, inflight);
	for (unsigned i = 0; i < blk.nexports; i++) {
		const struct blk_export *exp = blk.exports[i];
		char fd_name[32];

		snprintf(fd_name, sizeof(fd_name), "fd %d", exp->fd);
		fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
		vu_json_string(f, exp->socket_path[0] ? exp->socket_path : fd_name);
		fprintf(f, ", \"file\": ");
		vu_json_string(f, exp->vol.path);
		if (exp->ivshmem)
			fprintf(f, ", \"ivshmem\": %u", exp->ivshmem);
		else
			fprintf(f, ", \"ivshmem\": null");
		fprintf(f, ", \"cache\": \"%s\", \"bounce_bytes\": %" PRIu64 ", \"bounce_waits\": %" PRIu64,
			exp->vol.direct ? "direct" : "buffered", exp->bounce.used, exp->bounce_waits);
		fprintf(f,
			", \"connected\": %s, \"requests\": %" PRIu64 ", \"completed\": %" PRIu64 ", \"inflight\": %u"
			", \"read_bytes\": %" PRIu64 ", \"write_bytes\": %" PRIu64 ", \"errors\": %" PRIu64
			", \"broken\": %s, \"broken_reason\": ",
			exp->srv.conn_fd >= 0 ? "true" : "false", exp->requests, exp->completed, export_inflight(exp),
			exp->read_bytes, exp->write_bytes, exp->errors, exp->dev.broken ? "true" : "false");
		if (exp->dev.broken)
			vu_json_string(f, exp->dev.broken_reason);
		else
			fprintf(f, "null");
		fprintf(f, "}");
	}
	fprintf(f, "\n  ]\n}\n");
}

static void print_capabilities(void)
{
	printf("{\n  \"type\": \"block\",\n  \"features\": [\n    \"read-only-mode\",\n    \"blk-file\"\n  ]\n}\n");
}

static void on_ring(struct vu_watch *w, uint32_t events)
{
	eventfd_t v;

	(void)eventfd_read(w->fd, &v);
	reap();
}

static int ring_setup(void)
{
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = BLK_RING_ENTRIES * 4 };
	int r;

	/* Completions are reaped by the submitting thread only: let the kernel skip IPIs for them, and
	 * flag when it has some waiting for us to enter (run_poll). */
	p.flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER;
	r = io_uring_queue_init_params(BLK_RING_ENTRIES, &blk.ring, &p);
	if (r == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = BLK_RING_ENTRIES * 4;
		r = io_uring_queue_init_params(BLK_RING_ENTRIES, &blk.ring, &p);
	}
	if (r < 0)
		return r;
	blk.ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (blk.ring_efd < 0)
		return -errno;
	r = io_uring_register_eventfd(&blk.ring, blk.ring_efd);
	if (r < 0)
		return r;
	return vu_loop_add(&blk.loop, &blk.ring_watch, blk.ring_efd, EPOLLIN, on_ring);
}

int main(int argc, char **argv)
{
	enum { OPT_EXPORT = 256, OPT_PRINT_CAPS, OPT_OFFSET, OPT_SIZE, OPT_SERIAL, OPT_QUEUES, OPT_FD,
	       OPT_STATS, OPT_VERSION, OPT_CACHE };
	static const struct option options[] = {
		{ "socket-path", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "blk-file", required_argument, NULL, 'b' },
		{ "offset", required_argument, NULL, OPT_OFFSET },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "read-only", no_argument, NULL, 'r' },
		{ "serial", required_argument, NULL, OPT_SERIAL },
		{ "num-queues", required_argument, NULL, OPT_QUEUES },
		{ "cache", required_argument, NULL, OPT_CACHE },
		{ "export", required_argument, NULL, OPT_EXPORT },
		{ "stats-socket", required_argument, NULL, OPT_STATS },
		{ "print-capabilities", no_argument, NULL, OPT_PRINT_CAPS },
		VU_BACKEND_LONG_OPTIONS,
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct blk_export *single = NULL;
	const char *stats = NULL;
	int c, r;

	vu_backend_options_init(&blk.opts, BLK_DEFAULT_POLL_US);
	while ((c = getopt_long(argc, argv, "s:b:rh", options, NULL)) != -1) {
		const char *key = NULL;

		r = vu_backend_option("ddtk-blk", c, optarg, &blk.opts);
		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		switch (c) {
		case 's': key = "socket"; break;
		case OPT_FD: key = "fd"; break;
		case 'b': key = "file"; break;
		case OPT_OFFSET: key = "offset"; break;
		case OPT_SIZE: key = "size"; break;
		case 'r': key = "read-only"; break;
		case OPT_SERIAL: key = "serial"; break;
		case OPT_QUEUES: key = "num-queues"; break;
		case OPT_CACHE: key = "cache"; break;
		case OPT_EXPORT:
			if (export_parse(optarg) < 0)
				return 2;
			continue;
		case OPT_STATS:
			stats = optarg;
			continue;
		case OPT_PRINT_CAPS:
			print_capabilities();
			return 0;
		case OPT_VERSION:
			printf("ddtk-blk %s\n", DDTK_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (!single)
			single = export_new();
		if (!single)
			return 1;
		r = export_set(single, key, c == 'r' ? NULL : optarg);
		if (r < 0) {
			fprintf(stderr, "ddtk-blk: bad value for %s: '%s'\n", key, optarg ? optarg : "");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ddtk-blk: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (blk.nexports == 0) {
		usage(stderr);
		return 2;
	}
	for (unsigned i = 0; i < blk.nexports; i++) {
		struct blk_export *exp = blk.exports[i];

		if (!exp->vol.path[0] || (!exp->socket_path[0]) == (exp->fd < 0)) {
			fprintf(stderr, "ddtk-blk: each export needs a file and exactly one of a socket path or an fd\n");
			return 2;
		}
		if (export_check_kicks(exp, i) < 0)
			return 2;
		/* In the driver domain a completed write must survive the DD: not sit in its page cache. */
		if (!exp->cache_given)
			exp->vol.direct = exp->ivshmem != 0;
		for (unsigned j = 0; j < i; j++) {
			if (exp->socket_path[0] && !strcmp(exp->socket_path, blk.exports[j]->socket_path)) {
				fprintf(stderr, "ddtk-blk: socket %s given twice\n", exp->socket_path);
				return 2;
			}
			/* Two devices on one client's memory and doorbell would share its rings. */
			if (exp->ivshmem && exp->ivshmem == blk.exports[j]->ivshmem) {
				fprintf(stderr, "ddtk-blk: ivshmem session %u given twice\n", exp->ivshmem);
				return 2;
			}
		}
	}

	if (vu_loop_init(&blk.loop) < 0 || vu_signals_setup(&blk.loop) < 0) {
		perror("ddtk-blk: epoll, signals");
		return 1;
	}
	const char *fault_delay = getenv("DDTK_BLK_FAULT_DELAY_MS");

	if (fault_delay) {
		blk.fault_delay_ns = strtoull(fault_delay, NULL, 10) * 1000000u;
		blk.delay_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (blk.delay_tfd < 0 || vu_loop_add(&blk.loop, &blk.delay_watch, blk.delay_tfd, EPOLLIN, on_delay_timer) < 0) {
			perror("ddtk-blk: timerfd");
			return 1;
		}
		fprintf(stderr, "ddtk-blk: fault injection: every request held %s ms after its I/O\n", fault_delay);
	}
	r = ring_setup();
	if (r < 0) {
		fprintf(stderr, "ddtk-blk: io_uring: %s\n", strerror(-r));
		return 1;
	}
	if (stats && (r = vu_stats_listen(&blk.stats, &blk.loop, stats, stats_write, NULL)) < 0) {
		fprintf(stderr, "ddtk-blk: --stats-socket %s: %s\n", stats, strerror(-r));
		return 1;
	}
	for (unsigned i = 0; i < blk.nexports; i++)
		if (export_start(blk.exports[i]) < 0)
			return 1;

	r = vu_run(&blk.loop, blk.opts.poll_ns, &blk_run_ops, NULL);
	if (r < 0)
		fprintf(stderr, "ddtk-blk: epoll_wait: %s\n", strerror(-r));

	for (unsigned i = 0; i < blk.nexports; i++) {
		struct blk_export *exp = blk.exports[i];

		vu_server_close(&exp->srv);
		if (exp->ivshmem)
			vu_ivshmem_close(&exp->iv);
		if (exp->socket_path[0])
			unlink(exp->socket_path);
		if (blk.opts.verbose)
			fprintf(stderr, "%s: %" PRIu64 " requests, %" PRIu64 " errors, %lu connections\n", exp->srv.name,
				exp->requests, exp->errors, exp->srv.connections);
		blk_volume_close(&exp->vol);
		free(exp);
	}
	vu_stats_close(&blk.stats);
	blk_bounce_cache_clear(&blk.bounce_cache);
	io_uring_queue_exit(&blk.ring);
	vu_loop_close(&blk.loop);
	return 0;
}
