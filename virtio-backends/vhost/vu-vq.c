/* Split virtqueue processing. The guest owns the rings and can change them at any moment: every
 * field is read once into a local, every index is checked against the ring size, chains are capped
 * at the table size, and the avail index may run ahead of us by at most the ring size. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "vu-vq.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

uint64_t vu_inflight_queue_size(uint16_t queue_size)
{
	return ALIGN_UP(sizeof(struct vu_inflight_queue) + sizeof(struct vu_inflight_desc) * (uint64_t)queue_size,
			64);
}

void vu_vq_init(struct vu_vq *vq, unsigned index)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = index;
	vq->kick_fd = vq->call_fd = vq->err_fd = -1;
}

static inline uint16_t read_u16(const volatile void *p)
{
	return le16toh(*(const volatile uint16_t *)p);
}

static void read_desc(const struct vring_desc *table, uint16_t i, struct vring_desc *ret)
{
	/* One copy: the guest may rewrite the descriptor while we look at it. */
	const volatile struct vring_desc *d = &table[i];

	ret->addr = le64toh(d->addr);
	ret->len = le32toh(d->len);
	ret->flags = le16toh(d->flags);
	ret->next = le16toh(d->next);
}

static int map_buffer(const struct vu_vq *vq, struct vu_elem *elem, uint64_t addr, uint32_t len, bool writable)
{
	if (!writable && elem->in_num > 0)
		return -EINVAL; /* device-readable after device-writable: the spec forbids it */
	while (len > 0) {
		uint64_t avail;
		void *p = vu_mem_gpa_to_host_partial(vq->mem, addr, &avail);
		unsigned n = elem->out_num + elem->in_num;

		if (!p)
			return -EFAULT;
		if (n >= VU_ELEM_MAX_IOV)
			return -E2BIG;
		if (avail > len)
			avail = len;
		elem->iov[n].iov_base = p;
		elem->iov[n].iov_len = avail;
		if (writable) {
			elem->in_num++;
			elem->in_len += avail;
		} else {
			elem->out_num++;
			elem->out_len += avail;
		}
		addr += avail;
		len -= avail;
	}
	return 0;
}

int vu_vq_map_chain(const struct vu_vq *vq, uint16_t head, struct vu_elem *elem)
{
	const struct vring_desc *table = vq->desc;
	unsigned max = vq->num, count = 0;
	uint16_t i = head;
	struct vring_desc d;

	elem->head = head;
	elem->out_num = elem->in_num = 0;
	elem->out_len = elem->in_len = 0;
	if (head >= vq->num)
		return -EINVAL;
	read_desc(table, i, &d);
	if (d.flags & VRING_DESC_F_INDIRECT) {
		if (!vq->indirect || (d.flags & VRING_DESC_F_NEXT))
			return -EINVAL;
		if (d.len == 0 || d.len % sizeof(struct vring_desc) ||
		    d.len / sizeof(struct vring_desc) > VU_MAX_QUEUE_SIZE)
			return -EINVAL;
		table = vu_mem_gpa_to_host(vq->mem, d.addr, d.len);
		if (!table || (uintptr_t)table % _Alignof(struct vring_desc))
			return -EFAULT;
		max = d.len / sizeof(struct vring_desc);
		i = 0;
		read_desc(table, i, &d);
	}
	for (;;) {
		if (d.flags & VRING_DESC_F_INDIRECT)
			return -EINVAL; /* nested, or mixed into a direct chain */
		if (++count > max)
			return -ELOOP;
		int r = map_buffer(vq, elem, d.addr, d.len, d.flags & VRING_DESC_F_WRITE);

		if (r < 0)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		i = d.next;
		if (i >= max)
			return -EINVAL;
		read_desc(table, i, &d);
	}
}

static void inflight_get(struct vu_vq *vq, uint16_t head)
{
	if (!vq->inflight)
		return;
	vq->inflight->desc[head].counter = vq->inflight_counter++;
	vq->inflight->desc[head].inflight = 1;
}

static int pop_resubmit(struct vu_vq *vq, struct vu_elem *elem)
{
	uint16_t head = vq->resubmit[vq->resubmit_pos++];

	if (vq->resubmit_pos == vq->resubmit_num) {
		free(vq->resubmit);
		vq->resubmit = NULL;
		vq->resubmit_num = vq->resubmit_pos = 0;
	}
	return vu_vq_map_chain(vq, head, elem) < 0 ? -EINVAL : 1;
}

/* Whether entries are waiting; re-reads avail->idx only when our copy says the ring is empty. */
static int avail_pending(struct vu_vq *vq)
{
	uint16_t idx;

	if (vq->shadow_avail_idx != vq->last_avail_idx)
		return 1;
	/* Acquire: ring entries the driver wrote before this index are visible after the load. */
	idx = le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
	if ((uint16_t)(idx - vq->last_avail_idx) > vq->num)
		return -EINVAL;
	vq->shadow_avail_idx = idx;
	return idx != vq->last_avail_idx;
}

int vu_vq_pop(struct vu_vq *vq, struct vu_elem *elem)
{
	uint16_t head;
	int r;

	if (!vq->started)
		return 0;
	if (vq->resubmit_num)
		return pop_resubmit(vq, elem);
	r = avail_pending(vq);
	if (r <= 0)
		return r;
	head = read_u16(&vq->avail->ring[vq->last_avail_idx % vq->num]);
	if (head >= vq->num || vq->head_inuse[head])
		return -EINVAL; /* out of range, or a head the guest already gave us */
	r = vu_vq_map_chain(vq, head, elem);
	if (r < 0)
		return r;
	vq->last_avail_idx++;
	vq->head_inuse[head] = 1;
	vq->inuse++;
	inflight_get(vq, head);
	return 1;
}

int vu_vq_has_work(struct vu_vq *vq)
{
	if (!vq->started)
		return 0;
	if (vq->resubmit_num)
		return 1;
	return avail_pending(vq);
}

int vu_vq_set_notification(struct vu_vq *vq, bool enable)
{
	if (!vq->started)
		return 0;
	if (vq->event_idx) {
		/* Enabled: ask for a kick once the driver adds past what we have seen. Disabled: leave
		 * avail_event behind; the driver kicks only when its index crosses it, which it did. */
		if (enable)
			*(volatile uint16_t *)&vq->used->ring[vq->num] = htole16(vq->last_avail_idx);
	} else {
		*(volatile uint16_t *)&vq->used->flags = htole16(enable ? 0 : VRING_USED_F_NO_NOTIFY);
	}
	if (!enable)
		return 0;
	/* Order the store above before reading avail->idx again: an entry the driver added in
	 * between is then either seen here or kicked for. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vu_vq_has_work(vq);
}

uint16_t vu_vq_avail_idx(struct vu_vq *vq)
{
	return le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
}

int vu_vq_kick_after(struct vu_vq *vq, uint16_t idx)
{
	if (!vq->started)
		return 0;
	if (vq->event_idx)
		*(volatile uint16_t *)&vq->used->ring[vq->num] = htole16(idx);
	else
		*(volatile uint16_t *)&vq->used->flags = 0;
	/* Order the store above before reading avail->idx: an entry added in between is either seen
	 * here or kicked for. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vu_vq_avail_idx(vq) != idx;
}

int vu_vq_push(struct vu_vq *vq, uint16_t head, uint32_t len)
{
	volatile struct vring_used_elem *e;

	if (!vq->started || head >= vq->num || !vq->head_inuse[head])
		return -EINVAL;
	if (vq->inflight)
		vq->inflight->last_batch_head = head;
	e = &vq->used->ring[vq->used_idx % vq->num];
	e->id = htole32(head);
	e->len = htole32(len);
	vq->used_idx++;
	/* Release: the used entry is visible to the driver before the index that covers it. */
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
	if (vq->inflight) {
		/* The inflight slot is cleared only after used->idx is published: a successor that finds
		 * used->idx ahead of inflight->used_idx clears last_batch_head itself. */
		__atomic_thread_fence(__ATOMIC_RELEASE);
		vq->inflight->desc[head].inflight = 0;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		vq->inflight->used_idx = vq->used_idx;
	}
	vq->head_inuse[head] = 0;
	vq->inuse--;
	return 0;
}

int vu_vq_unpop(struct vu_vq *vq, uint16_t head)
{
	if (!vq->started || head >= vq->num || !vq->head_inuse[head] || vq->inflight || vq->resubmit_num)
		return -EINVAL;
	vq->last_avail_idx--;
	vq->head_inuse[head] = 0;
	vq->inuse--;
	return 0;
}

int vu_vq_push_batch(struct vu_vq *vq, const uint16_t *heads, const uint32_t *lens, unsigned n)
{
	unsigned i;

	if (!vq->started || vq->inflight || n > vq->inuse)
		return -EINVAL;
	/* Check everything first (each head popped, none twice) so that a refusal publishes nothing. */
	for (i = 0; i < n; i++) {
		if (heads[i] >= vq->num || vq->head_inuse[heads[i]] != 1)
			break;
		vq->head_inuse[heads[i]] = 2;
	}
	if (i < n) {
		while (i--)
			vq->head_inuse[heads[i]] = 1;
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		volatile struct vring_used_elem *e = &vq->used->ring[(uint16_t)(vq->used_idx + i) % vq->num];

		e->id = htole32(heads[i]);
		e->len = htole32(lens[i]);
		vq->head_inuse[heads[i]] = 0;
	}
	vq->used_idx += n;
	vq->inuse -= n;
	/* Release: every used entry is visible to the driver before the index that covers them. */
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
	return 0;
}

bool vu_vq_should_notify(struct vu_vq *vq)
{
	uint16_t old, new, event;
	bool valid;

	if (!vq->started)
		return false;
	/* The used->idx store must be visible before we read the driver's suppression fields. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(read_u16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new = vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	event = read_u16(&vq->avail->ring[vq->num]);
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

static int cmp_counter(const void *a, const void *b, void *arg)
{
	const struct vu_inflight_queue *q = arg;
	uint64_t ca = q->desc[*(const uint16_t *)a].counter, cb = q->desc[*(const uint16_t *)b].counter;

	return ca < cb ? -1 : ca > cb;
}

/* Finds what a previous back-end popped and never pushed, oldest first. */
static int inflight_restore(struct vu_vq *vq)
{
	struct vu_inflight_queue *q = vq->inflight;
	uint16_t used_now = read_u16(&vq->used->idx);
	unsigned n = 0;
	uint64_t max_counter = 0;

	/* The region was sized for the queue size GET/SET_INFLIGHT_FD named; a ring set larger
	 * afterwards would have its slots outside it. */
	if (vq->num > vq->inflight_num)
		return -EINVAL;

	if (q->version == 0) {
		/* A fresh region from GET_INFLIGHT_FD: nothing was in flight. */
		memset(q->desc, 0, sizeof(q->desc[0]) * vq->num);
		q->desc_num = vq->num;
		q->used_idx = used_now;
		q->last_batch_head = 0;
		q->version = VU_INFLIGHT_VERSION;
		vq->last_avail_idx = vq->base;
		return 0;
	}
	if (q->version != VU_INFLIGHT_VERSION || q->desc_num != vq->num || q->last_batch_head >= vq->num)
		return -EINVAL;
	if (q->used_idx != used_now) {
		/* The predecessor published last_batch_head but died before clearing its slot. */
		q->desc[q->last_batch_head].inflight = 0;
		q->used_idx = used_now;
	}
	for (unsigned i = 0; i < vq->num; i++) {
		if (q->desc[i].inflight) {
			q->desc[i].inflight = 1;
			n++;
			if (q->desc[i].counter > max_counter)
				max_counter = q->desc[i].counter;
		}
	}
	vq->last_avail_idx = used_now + n;
	vq->inflight_counter = max_counter + 1;
	if (n == 0)
		return 0;
	vq->resubmit = calloc(n, sizeof(*vq->resubmit));
	if (!vq->resubmit)
		return -ENOMEM;
	n = 0;
	for (unsigned i = 0; i < vq->num; i++) {
		if (q->desc[i].inflight) {
			vq->resubmit[n++] = i;
			vq->head_inuse[i] = 1;
		}
	}
	qsort_r(vq->resubmit, n, sizeof(*vq->resubmit), cmp_counter, q);
	vq->resubmit_num = n;
	vq->resubmit_pos = 0;
	vq->inuse = n;
	return 0;
}

int vu_vq_attach(struct vu_vq *vq, const struct vu_mem *mem)
{
	uint64_t n = vq->num;

	if (!n || !vq->addr_set)
		return -EINVAL;
	vq->desc = vu_mem_uva_to_host(mem, vq->desc_uva, n * sizeof(struct vring_desc));
	/* avail and used carry a trailing event field with EVENT_IDX; always map room for it */
	vq->avail = vu_mem_uva_to_host(mem, vq->avail_uva, sizeof(struct vring_avail) + (n + 1) * sizeof(uint16_t));
	vq->used = vu_mem_uva_to_host(mem, vq->used_uva,
				      sizeof(struct vring_used) + n * sizeof(struct vring_used_elem) + sizeof(uint16_t));
	if (!vq->desc || !vq->avail || !vq->used || (uintptr_t)vq->desc % 16 || (uintptr_t)vq->avail % 2 ||
	    (uintptr_t)vq->used % 4) {
		vu_vq_detach(vq);
		return -EFAULT;
	}
	vq->mem = mem;
	vq->head_inuse = calloc(n, 1);
	if (!vq->head_inuse) {
		vu_vq_detach(vq);
		return -ENOMEM;
	}
	vq->used_idx = read_u16(&vq->used->idx);
	vq->last_avail_idx = vq->base;
	vq->inuse = 0;
	vq->signalled_used_valid = false;
	if (vq->inflight) {
		int r = inflight_restore(vq);

		if (r < 0) {
			vu_vq_detach(vq);
			return r;
		}
	}
	vq->shadow_avail_idx = vq->last_avail_idx;
	if ((uint16_t)(read_u16(&vq->avail->idx) - vq->last_avail_idx) > vq->num) {
		vu_vq_detach(vq);
		return -EINVAL;
	}
	vq->started = true;
	return 0;
}

void vu_vq_detach(struct vu_vq *vq)
{
	vq->started = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->mem = NULL;
	free(vq->head_inuse);
	vq->head_inuse = NULL;
	free(vq->resubmit);
	vq->resubmit = NULL;
	vq->resubmit_num = vq->resubmit_pos = 0;
	/* What is next to pop is where a restart continues (GET_VRING_BASE reports it). */
	vq->base = vq->last_avail_idx;
	vq->inuse = 0;
}

/* Copies between an iovec list (from `skip` bytes in) and a flat buffer, in either direction. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t skip, uint8_t *buf, size_t len, bool to_iov)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + skip, buf + done, l);
		else
			memcpy(buf + done, (uint8_t *)iov[i].iov_base + skip, l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t vu_iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	return iov_copy(iov, n, skip, buf, len, false);
}

size_t vu_iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	/* iov_copy only reads buf when copying into the iovecs. */
	return iov_copy(iov, n, skip, (uint8_t *)buf, len, true);
}
