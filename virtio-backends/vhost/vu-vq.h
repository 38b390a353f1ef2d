/* Split virtqueues as a vhost-user back-end sees them: popping descriptor chains the guest made
 * (every index, address and length hostile), pushing used entries, deciding when to notify, and the
 * inflight region that lets a restarted back-end find what was in flight. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vu-mem.h"

struct vu_dev;

/* iovecs in one element: enough for a 256-segment request plus header and status, each split
 * at one region boundary. */
#define VU_ELEM_MAX_IOV 520

/* One popped request: out (device-readable) iovecs first, then in (device-writable) ones. */
struct vu_elem {
	uint16_t head;
	unsigned out_num;
	unsigned in_num;
	uint64_t out_len;
	uint64_t in_len;
	struct iovec iov[VU_ELEM_MAX_IOV];
};

/* The inflight region's per-queue layout (back-end private; QEMU only keeps the fd). */
struct vu_inflight_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};

struct vu_inflight_queue {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct vu_inflight_desc desc[];
};

#define VU_INFLIGHT_VERSION 1

/* Bytes of the inflight region one queue of queue_size entries needs. */
uint64_t vu_inflight_queue_size(uint16_t queue_size);

struct vu_vq {
	unsigned index;
	uint16_t num;                 /* ring size, 0 until SET_VRING_NUM */
	bool addr_set;
	uint64_t desc_uva, avail_uva, used_uva;
	uint16_t base;                /* from SET_VRING_BASE */

	/* set while started */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx;      /* next avail entry to pop */
	uint16_t shadow_avail_idx;    /* avail->idx as last read */
	uint16_t used_idx;            /* our copy of used->idx */
	uint16_t signalled_used;
	bool signalled_used_valid;
	unsigned inuse;               /* popped, not yet pushed */
	uint8_t *head_inuse;          /* per head: popped, not yet pushed */

	int kick_fd, call_fd, err_fd;
	bool kick_set;                /* SET_VRING_KICK seen (with fd) */
	bool enabled;
	bool started;

	bool event_idx, indirect;     /* negotiated */
	const struct vu_mem *mem;

	struct vu_inflight_queue *inflight;  /* NULL without INFLIGHT_SHMFD */
	uint16_t inflight_num;        /* descriptors the inflight region has room for */
	uint64_t inflight_counter;
	uint16_t *resubmit;           /* heads to hand out again after a restart, oldest first */
	unsigned resubmit_num, resubmit_pos;

	void *backend_data;           /* for the device back-end */

	/* vu_dev_notify_later(): on a list of queues to signal at the end of the loop turn */
	bool notify_pending;
	struct vu_vq *notify_next;
	struct vu_dev *notify_dev;
};

void vu_vq_init(struct vu_vq *vq, unsigned index);

/* Translates the ring addresses and restores the inflight state; called when the queue starts. */
int vu_vq_attach(struct vu_vq *vq, const struct vu_mem *mem);

/* Forgets the ring pointers; called when the queue stops. */
void vu_vq_detach(struct vu_vq *vq);

/* Pops the next chain into elem. Returns 1 with elem filled, 0 when the ring is empty, or a
 * negative errno when the guest broke the ring: the device must then be marked broken. Popping does
 * not ask for kicks: call vu_vq_set_notification(vq, true) before waiting for one. */
int vu_vq_pop(struct vu_vq *vq, struct vu_elem *elem);

/* 1 when the driver has made entries available that were not popped yet, 0 when not, -EINVAL
 * when its avail index is impossible. Two loads; for polling. */
int vu_vq_has_work(struct vu_vq *vq);

/* Asks the driver for kicks (enable, before sleeping) or tells it they are not needed (while the
 * back-end polls). Enabling re-checks the ring afterwards and returns what vu_vq_has_work() would:
 * 1 means work arrived meanwhile, so the caller must not sleep. */
int vu_vq_set_notification(struct vu_vq *vq, bool enable);

/* The driver's avail index now (acquire: ring entries before it are visible). */
uint16_t vu_vq_avail_idx(struct vu_vq *vq);

/* Asks for a kick once the driver's avail index moves past idx (a back-end waiting for more
 * buffers than the ones it already looked at and gave back). Returns 1 when it already has. */
int vu_vq_kick_after(struct vu_vq *vq, uint16_t idx);

/* Hands head back as used with len bytes written, and publishes it. */
int vu_vq_push(struct vu_vq *vq, uint16_t head, uint32_t len);

/* Gives the most recently popped chain back: the next pop returns it again. For a back-end that
 * popped buffers for a packet that then did not fit (mergeable RX buffers). Heads must be given back
 * newest first. Not with inflight tracking. */
int vu_vq_unpop(struct vu_vq *vq, uint16_t head);

/* Hands n heads back as used at once, with one used->idx update: the driver sees all of them or
 * none (a packet spread over mergeable RX buffers). Not with inflight tracking. */
int vu_vq_push_batch(struct vu_vq *vq, const uint16_t *heads, const uint32_t *lens, unsigned n);

/* Whether the driver wants an interrupt for what was pushed since the last call. */
bool vu_vq_should_notify(struct vu_vq *vq);

/* For the descriptor walker alone (tests, fuzzing): walks the chain starting at head. */
int vu_vq_map_chain(const struct vu_vq *vq, uint16_t head, struct vu_elem *elem);

/* Copies up to len bytes from the start of iov[0..n) into buf, returns bytes copied. */
size_t vu_iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
/* Copies buf into iov[0..n) starting skip bytes in, returns bytes copied. */
size_t vu_iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);
