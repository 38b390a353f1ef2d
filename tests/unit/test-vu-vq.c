/* Unit tests of the split virtqueue: well-formed chains, every hostile chain the guest can build,
 * notification suppression, the inflight bookkeeping a restarted back-end relies on, and giving
 * chains back (unpop) or pushing several with one index update (mergeable RX buffers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake-guest.h"

#define NUM 16
#define D ((uint64_t)FAKE_GUEST_DATA)

static struct fake_guest g;
static struct vu_elem elem;

static int setup(void **state)
{
	fake_guest_init(&g, 1 << 20, NUM, false, true);
	return 0;
}

static int teardown(void **state)
{
	fake_guest_free(&g);
	return 0;
}

static int pop(void)
{
	return vu_vq_pop(&g.vq, &elem);
}

static void test_simple_chain(void **state)
{
	fake_guest_desc(&g, 0, D, 16, VRING_DESC_F_NEXT, 1);
	fake_guest_desc(&g, 1, D + 4096, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	fake_guest_desc(&g, 2, D + 8192, 1, VRING_DESC_F_WRITE, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	assert_int_equal(pop(), 0);
	fake_guest_kick(&g, 0);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 0);
	assert_int_equal(elem.out_num, 1);
	assert_int_equal(elem.in_num, 2);
	assert_int_equal(elem.out_len, 16);
	assert_int_equal(elem.in_len, 4097);
	assert_ptr_equal(elem.iov[0].iov_base, g.mem + D);
	assert_ptr_equal(elem.iov[2].iov_base, g.mem + D + 8192);
	assert_int_equal(pop(), 0);
	assert_int_equal(vu_vq_push(&g.vq, 0, 4097), 0);
	assert_int_equal(g.used->idx, 1);
	assert_int_equal(g.used->ring[0].id, 0);
	assert_int_equal(g.used->ring[0].len, 4097);
	/* pushing it twice is refused */
	assert_int_equal(vu_vq_push(&g.vq, 0, 1), -EINVAL);
}

static void expect_pop_error(int err)
{
	assert_int_equal(fake_guest_start(&g), 0);
	fake_guest_kick(&g, 0);
	assert_int_equal(pop(), err);
}

static void test_loop(void **state)
{
	fake_guest_desc(&g, 0, D, 16, VRING_DESC_F_NEXT, 1);
	fake_guest_desc(&g, 1, D, 16, VRING_DESC_F_NEXT, 0);
	expect_pop_error(-ELOOP);
}

static void test_self_loop(void **state)
{
	fake_guest_desc(&g, 0, D, 16, VRING_DESC_F_NEXT, 0);
	expect_pop_error(-ELOOP);
}

static void test_next_out_of_range(void **state)
{
	fake_guest_desc(&g, 0, D, 16, VRING_DESC_F_NEXT, NUM);
	expect_pop_error(-EINVAL);
}

static void test_head_out_of_range(void **state)
{
	assert_int_equal(fake_guest_start(&g), 0);
	fake_guest_kick(&g, NUM + 3);
	assert_int_equal(pop(), -EINVAL);
}

static void test_address_outside_memory(void **state)
{
	fake_guest_desc(&g, 0, (1 << 20) + 4096, 16, 0, 0);
	expect_pop_error(-EFAULT);
}

static void test_length_past_region_end(void **state)
{
	fake_guest_desc(&g, 0, (1 << 20) - 8, 16, 0, 0);
	expect_pop_error(-EFAULT);
}

static void test_address_wraps(void **state)
{
	fake_guest_desc(&g, 0, UINT64_MAX - 4, 0xffffffffu, 0, 0);
	expect_pop_error(-EFAULT);
}

static void test_readable_after_writable(void **state)
{
	fake_guest_desc(&g, 0, D, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	fake_guest_desc(&g, 1, D + 16, 16, 0, 0);
	expect_pop_error(-EINVAL);
}

static void test_avail_index_runs_ahead(void **state)
{
	assert_int_equal(fake_guest_start(&g), 0);
	g.avail->idx = NUM + 1;
	assert_int_equal(pop(), -EINVAL);
}

static void test_duplicate_head(void **state)
{
	fake_guest_desc(&g, 0, D, 16, 0, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	fake_guest_kick(&g, 0);
	fake_guest_kick(&g, 0);
	assert_int_equal(pop(), 1);
	/* the same head again while the first is still ours */
	assert_int_equal(pop(), -EINVAL);
}

static void test_too_many_segments(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(g.mem + D);

	/* An indirect table of 600 one-byte buffers: more iovecs than an element holds. */
	for (unsigned i = 0; i < 600; i++)
		table[i] = (struct vring_desc){ .addr = 2 * D + i, .len = 1, .flags = VRING_DESC_F_NEXT, .next = i + 1 };
	table[599].flags = 0;
	fake_guest_desc(&g, 0, D, 600 * 16, VRING_DESC_F_INDIRECT, 0);
	expect_pop_error(-E2BIG);
}

static void test_indirect(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(g.mem + D);

	table[0] = (struct vring_desc){ .addr = 2 * D, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 1 };
	table[1] = (struct vring_desc){ .addr = 2 * D + 512, .len = 512, .flags = VRING_DESC_F_WRITE, .next = 0 };
	fake_guest_desc(&g, 3, D, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	fake_guest_kick(&g, 3);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 3);
	assert_int_equal(elem.out_len, 16);
	assert_int_equal(elem.in_len, 512);
}

static void test_indirect_not_negotiated(void **state)
{
	g.vq.indirect = false;
	fake_guest_desc(&g, 0, D, 32, VRING_DESC_F_INDIRECT, 0);
	expect_pop_error(-EINVAL);
}

static void test_indirect_with_next(void **state)
{
	fake_guest_desc(&g, 0, D, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	expect_pop_error(-EINVAL);
}

static void test_indirect_bad_length(void **state)
{
	fake_guest_desc(&g, 0, D, 24, VRING_DESC_F_INDIRECT, 0);
	expect_pop_error(-EINVAL);
}

static void test_indirect_zero_length(void **state)
{
	fake_guest_desc(&g, 0, D, 0, VRING_DESC_F_INDIRECT, 0);
	expect_pop_error(-EINVAL);
}

static void test_nested_indirect(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(g.mem + D);

	table[0] = (struct vring_desc){ .addr = D + 4096, .len = 16, .flags = VRING_DESC_F_INDIRECT };
	fake_guest_desc(&g, 0, D, 16, VRING_DESC_F_INDIRECT, 0);
	expect_pop_error(-EINVAL);
}

static void test_indirect_loop(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(g.mem + D);

	table[0] = (struct vring_desc){ .addr = 2 * D, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 1 };
	table[1] = (struct vring_desc){ .addr = 2 * D, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 0 };
	fake_guest_desc(&g, 0, D, 32, VRING_DESC_F_INDIRECT, 0);
	expect_pop_error(-ELOOP);
}

static void test_buffer_across_regions(void **state)
{
	/* Split the memory into two regions that are contiguous in guest-physical space but not in
	 * the host: a buffer across the boundary becomes two iovecs. */
	uint8_t *second = aligned_alloc(4096, 1 << 20);

	g.table.nregions = 2;
	g.table.regions[1] = (struct vu_mem_region){ .gpa = 1 << 20, .size = 1 << 20, .uva = FAKE_GUEST_UVA + (1 << 20),
						     .host = second };
	fake_guest_desc(&g, 0, (1 << 20) - 100, 300, VRING_DESC_F_WRITE, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	fake_guest_kick(&g, 0);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.in_num, 2);
	assert_int_equal(elem.iov[0].iov_len, 100);
	assert_ptr_equal(elem.iov[1].iov_base, second);
	assert_int_equal(elem.iov[1].iov_len, 200);
	vu_vq_detach(&g.vq);
	free(second);
}

static void test_rings_outside_memory(void **state)
{
	g.vq.used_uva = FAKE_GUEST_UVA + (1 << 20) - 8;
	assert_int_equal(fake_guest_start(&g), -EFAULT);
	g.vq.used_uva = FAKE_GUEST_UVA + 4098; /* misaligned */
	assert_int_equal(fake_guest_start(&g), -EFAULT);
}

static void test_notify_no_event_idx(void **state)
{
	fake_guest_desc(&g, 0, D, 16, 0, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	fake_guest_kick(&g, 0);
	assert_int_equal(pop(), 1);
	vu_vq_push(&g.vq, 0, 0);
	assert_true(vu_vq_should_notify(&g.vq));
	g.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	assert_false(vu_vq_should_notify(&g.vq));
	/* without EVENT_IDX, kicks are suppressed with the used ring's flag */
	vu_vq_set_notification(&g.vq, false);
	assert_int_equal(g.used->flags, VRING_USED_F_NO_NOTIFY);
	vu_vq_set_notification(&g.vq, true);
	assert_int_equal(g.used->flags, 0);
}

static void test_event_idx(void **state)
{
	uint16_t *used_event, *avail_event;

	g.vq.event_idx = true;
	used_event = &g.avail->ring[NUM];
	avail_event = (uint16_t *)&g.used->ring[NUM];
	for (uint16_t i = 0; i < 4; i++)
		fake_guest_desc(&g, i, D + (uint64_t)i * 64, 16, 0, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	/* empty ring: the device asks to be kicked for the next entry */
	assert_int_equal(pop(), 0);
	*avail_event = 77;
	assert_int_equal(vu_vq_set_notification(&g.vq, true), 0);
	assert_int_equal(*avail_event, 0);
	for (uint16_t i = 0; i < 4; i++)
		fake_guest_kick(&g, i);
	assert_int_equal(vu_vq_has_work(&g.vq), 1);
	for (uint16_t i = 0; i < 4; i++)
		assert_int_equal(pop(), 1);
	assert_int_equal(pop(), 0);
	/* polling: popping leaves avail_event alone, so the driver does not kick */
	assert_int_equal(*avail_event, 0);
	assert_int_equal(vu_vq_set_notification(&g.vq, false), 0);
	assert_int_equal(*avail_event, 0);
	assert_int_equal(vu_vq_set_notification(&g.vq, true), 0);
	assert_int_equal(*avail_event, 4);
	/* an entry that arrives just before re-enabling is reported, not slept on */
	fake_guest_desc(&g, 4, D, 16, 0, 0);
	fake_guest_kick(&g, 4);
	assert_int_equal(vu_vq_set_notification(&g.vq, true), 1);
	/* The driver wants an interrupt when used->idx passes 2 (used_event = 2). */
	*used_event = 2;
	vu_vq_push(&g.vq, 0, 0);
	assert_true(vu_vq_should_notify(&g.vq)); /* the first is always signalled */
	vu_vq_push(&g.vq, 1, 0);
	assert_false(vu_vq_should_notify(&g.vq)); /* idx 2: not past used_event yet */
	vu_vq_push(&g.vq, 2, 0);
	assert_true(vu_vq_should_notify(&g.vq)); /* idx 3 passes 2 */
	vu_vq_push(&g.vq, 3, 0);
	assert_false(vu_vq_should_notify(&g.vq));
}

static void test_inflight_bookkeeping(void **state)
{
	fake_guest_add_inflight(&g);
	for (uint16_t i = 0; i < 4; i++)
		fake_guest_desc(&g, i, D + (uint64_t)i * 64, 16, 0, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	assert_int_equal(g.inflight->version, VU_INFLIGHT_VERSION);
	assert_int_equal(g.inflight->desc_num, NUM);
	for (uint16_t i = 0; i < 4; i++)
		fake_guest_kick(&g, 3 - i); /* heads 3 2 1 0 */
	for (uint16_t i = 0; i < 4; i++)
		assert_int_equal(pop(), 1);
	for (uint16_t i = 0; i < 4; i++)
		assert_int_equal(g.inflight->desc[i].inflight, 1);
	assert_true(g.inflight->desc[3].counter < g.inflight->desc[0].counter);
	vu_vq_push(&g.vq, 2, 0);
	assert_int_equal(g.inflight->desc[2].inflight, 0);
	assert_int_equal(g.inflight->used_idx, 1);
	assert_int_equal(g.inflight->last_batch_head, 2);

	/* The back-end dies. A new one attaches to the same rings and inflight region, with the base
	 * QEMU gives after a crash (its used index), and gets 3, 1, 0 again, oldest first. */
	vu_vq_detach(&g.vq);
	g.vq.base = 1;
	assert_int_equal(fake_guest_start(&g), 0);
	assert_int_equal(g.vq.last_avail_idx, 4);
	assert_int_equal(g.vq.inuse, 3);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 3);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 1);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 0);
	assert_int_equal(pop(), 0);
	for (uint16_t h = 0; h < 4; h++)
		if (h != 2)
			assert_int_equal(vu_vq_push(&g.vq, h, 0), 0);
	assert_int_equal(g.used->idx, 4);
	for (uint16_t i = 0; i < 4; i++)
		assert_int_equal(g.inflight->desc[i].inflight, 0);
}

static void test_inflight_died_between_publish_and_clear(void **state)
{
	fake_guest_add_inflight(&g);
	fake_guest_desc(&g, 0, D, 16, 0, 0);
	fake_guest_desc(&g, 1, D + 64, 16, 0, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	fake_guest_kick(&g, 0);
	fake_guest_kick(&g, 1);
	assert_int_equal(pop(), 1);
	assert_int_equal(pop(), 1);
	vu_vq_push(&g.vq, 1, 0);
	/* Simulate dying after used->idx was published but before the slot was cleared. */
	g.inflight->desc[1].inflight = 1;
	g.inflight->used_idx = 0;
	vu_vq_detach(&g.vq);
	g.vq.base = 1;
	assert_int_equal(fake_guest_start(&g), 0);
	assert_int_equal(g.vq.inuse, 1);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 0); /* only the one never completed */
	assert_int_equal(pop(), 0);
}

static void test_inflight_hostile_region(void **state)
{
	fake_guest_add_inflight(&g);
	g.inflight->version = VU_INFLIGHT_VERSION;
	g.inflight->desc_num = NUM * 2; /* does not match the ring */
	assert_int_equal(fake_guest_start(&g), -EINVAL);
	g.inflight->desc_num = NUM;
	g.inflight->last_batch_head = NUM;
	g.inflight->used_idx = 5;
	assert_int_equal(fake_guest_start(&g), -EINVAL);
}

static void test_unpop(void **state)
{
	for (uint16_t i = 0; i < 4; i++) {
		fake_guest_desc(&g, i, D + (uint64_t)i * 64, 64, VRING_DESC_F_WRITE, 0);
		fake_guest_kick(&g, i);
	}
	assert_int_equal(fake_guest_start(&g), 0);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 0);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 1);
	assert_int_equal(g.vq.inuse, 2);
	/* the newest back: the next pop returns it again, whole */
	assert_int_equal(vu_vq_unpop(&g.vq, 1), 0);
	assert_int_equal(g.vq.inuse, 1);
	memset(&elem, 0, sizeof(elem));
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 1);
	assert_int_equal(elem.in_num, 1);
	assert_int_equal(elem.in_len, 64);
	assert_ptr_equal(elem.iov[0].iov_base, g.mem + D + 64);
	/* several, newest first */
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 2);
	assert_int_equal(vu_vq_unpop(&g.vq, 2), 0);
	assert_int_equal(vu_vq_unpop(&g.vq, 1), 0);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 1);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 2);
	assert_int_equal(pop(), 1);
	assert_int_equal(elem.head, 3);
	assert_int_equal(pop(), 0);
	/* only what was popped and not given back or pushed */
	assert_int_equal(vu_vq_unpop(&g.vq, 5), -EINVAL);
	assert_int_equal(vu_vq_unpop(&g.vq, NUM), -EINVAL);
	assert_int_equal(vu_vq_push(&g.vq, 3, 0), 0);
	assert_int_equal(vu_vq_unpop(&g.vq, 3), -EINVAL);
	assert_int_equal(g.vq.inuse, 3);
	assert_int_equal(g.vq.last_avail_idx, 4);
	/* nothing was published by any of it but the one push */
	assert_int_equal(g.used->idx, 1);
	assert_int_equal(g.used->ring[0].id, 3);
	/* a stopped queue */
	vu_vq_detach(&g.vq);
	assert_int_equal(vu_vq_unpop(&g.vq, 0), -EINVAL);
}

static void test_push_batch(void **state)
{
	const uint16_t heads[3] = { 2, 0, 3 };
	const uint32_t lens[3] = { 10, 20, 30 };

	for (uint16_t i = 0; i < 4; i++) {
		fake_guest_desc(&g, i, D + (uint64_t)i * 64, 64, VRING_DESC_F_WRITE, 0);
		fake_guest_kick(&g, i);
	}
	assert_int_equal(fake_guest_start(&g), 0);
	for (uint16_t i = 0; i < 4; i++)
		assert_int_equal(pop(), 1);
	assert_int_equal(vu_vq_push_batch(&g.vq, heads, lens, 3), 0);
	assert_int_equal(g.used->idx, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(g.used->ring[i].id, heads[i]);
		assert_int_equal(g.used->ring[i].len, lens[i]);
	}
	assert_int_equal(g.vq.inuse, 1);
	/* they are done with: neither pushed again nor given back */
	assert_int_equal(vu_vq_push_batch(&g.vq, heads, lens, 1), -EINVAL);
	assert_int_equal(vu_vq_push(&g.vq, 2, 0), -EINVAL);
	assert_int_equal(vu_vq_push(&g.vq, 1, 5), 0);
	assert_int_equal(g.used->idx, 4);
	assert_int_equal(g.used->ring[3].id, 1);
	/* an empty batch publishes nothing */
	assert_int_equal(vu_vq_push_batch(&g.vq, heads, lens, 0), 0);
	assert_int_equal(g.used->idx, 4);
	assert_true(vu_vq_should_notify(&g.vq));
}

static void test_push_batch_wraps(void **state)
{
	const uint16_t heads[4] = { 4, 5, 6, 7 };
	const uint32_t lens[4] = { 1, 2, 3, 4 };

	/* 14 single pushes first, so the batch's entries wrap around the end of the used ring */
	for (uint16_t i = 0; i < 8; i++)
		fake_guest_desc(&g, i, D + (uint64_t)i * 64, 64, VRING_DESC_F_WRITE, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	for (unsigned i = 0; i < NUM - 2; i++) {
		fake_guest_kick(&g, 0);
		assert_int_equal(pop(), 1);
		assert_int_equal(vu_vq_push(&g.vq, 0, 0), 0);
	}
	for (uint16_t i = 0; i < 4; i++)
		fake_guest_kick(&g, heads[i]);
	for (uint16_t i = 0; i < 4; i++)
		assert_int_equal(pop(), 1);
	assert_int_equal(vu_vq_push_batch(&g.vq, heads, lens, 4), 0);
	assert_int_equal(g.used->idx, NUM + 2);
	assert_int_equal(g.used->ring[NUM - 2].id, 4);
	assert_int_equal(g.used->ring[NUM - 1].id, 5);
	assert_int_equal(g.used->ring[0].id, 6);
	assert_int_equal(g.used->ring[1].id, 7);
	assert_int_equal(g.used->ring[1].len, 4);
	assert_int_equal(g.vq.inuse, 0);
}

static void test_push_batch_refused(void **state)
{
	const uint32_t lens[4] = { 1, 2, 3, 4 };
	struct vring_used_elem ring_before[NUM];

	for (uint16_t i = 0; i < 4; i++) {
		fake_guest_desc(&g, i, D + (uint64_t)i * 64, 64, VRING_DESC_F_WRITE, 0);
		fake_guest_kick(&g, i);
	}
	assert_int_equal(fake_guest_start(&g), 0);
	for (uint16_t i = 0; i < 3; i++)
		assert_int_equal(pop(), 1);
	memset(g.used->ring, 0xa5, sizeof(ring_before));
	memcpy(ring_before, g.used->ring, sizeof(ring_before));
	/* head 3 was not popped; 1 is given twice; 16 is no head; more than are in use */
	assert_int_equal(vu_vq_push_batch(&g.vq, (const uint16_t[]){ 0, 1, 3 }, lens, 3), -EINVAL);
	assert_int_equal(vu_vq_push_batch(&g.vq, (const uint16_t[]){ 0, 1, 1 }, lens, 3), -EINVAL);
	assert_int_equal(vu_vq_push_batch(&g.vq, (const uint16_t[]){ 1, 2, 1 }, lens, 3), -EINVAL);
	assert_int_equal(vu_vq_push_batch(&g.vq, (const uint16_t[]){ 2, NUM }, lens, 2), -EINVAL);
	assert_int_equal(vu_vq_push_batch(&g.vq, (const uint16_t[]){ 0, 1, 2, 0 }, lens, 4), -EINVAL);
	assert_int_equal(g.used->idx, 0);
	assert_memory_equal(g.used->ring, ring_before, sizeof(ring_before));
	assert_int_equal(g.vq.inuse, 3);
	/* and every head is still the back-end's to push, once */
	assert_int_equal(vu_vq_push_batch(&g.vq, (const uint16_t[]){ 1, 0, 2 }, lens, 3), 0);
	assert_int_equal(g.used->idx, 3);
	assert_int_equal(g.used->ring[0].id, 1);
	assert_int_equal(g.used->ring[2].id, 2);
	assert_int_equal(g.vq.inuse, 0);
}

static void test_unpop_push_batch_not_with_inflight(void **state)
{
	const uint16_t heads[1] = { 0 };
	const uint32_t lens[1] = { 1 };

	fake_guest_add_inflight(&g);
	fake_guest_desc(&g, 0, D, 64, VRING_DESC_F_WRITE, 0);
	fake_guest_kick(&g, 0);
	assert_int_equal(fake_guest_start(&g), 0);
	assert_int_equal(pop(), 1);
	assert_int_equal(vu_vq_unpop(&g.vq, 0), -EINVAL);
	assert_int_equal(vu_vq_push_batch(&g.vq, heads, lens, 1), -EINVAL);
	assert_int_equal(g.used->idx, 0);
	assert_int_equal(g.vq.inuse, 1);
	assert_int_equal(g.vq.last_avail_idx, 1);
	assert_int_equal(g.inflight->desc[0].inflight, 1);
	/* the ordinary push still works */
	assert_int_equal(vu_vq_push(&g.vq, 0, 1), 0);
	assert_int_equal(g.inflight->desc[0].inflight, 0);
}

static void test_iov_copy(void **state)
{
	uint8_t a[3] = { 1, 2, 3 }, b[2] = { 4, 5 }, out[5];
	struct iovec iov[2] = { { a, 3 }, { b, 2 } };
	uint8_t in[3] = { 9, 9, 9 };

	assert_int_equal(vu_iov_to_buf(iov, 2, 2, out, 5), 3);
	assert_memory_equal(out, ((uint8_t[]){ 3, 4, 5 }), 3);
	assert_int_equal(vu_iov_from_buf(iov, 2, 1, in, 3), 3);
	assert_memory_equal(a, ((uint8_t[]){ 1, 9, 9 }), 3);
	assert_int_equal(b[0], 9);
	assert_int_equal(vu_iov_to_buf(iov, 2, 10, out, 5), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_simple_chain),
		T(test_loop),
		T(test_self_loop),
		T(test_next_out_of_range),
		T(test_head_out_of_range),
		T(test_address_outside_memory),
		T(test_length_past_region_end),
		T(test_address_wraps),
		T(test_readable_after_writable),
		T(test_avail_index_runs_ahead),
		T(test_duplicate_head),
		T(test_too_many_segments),
		T(test_indirect),
		T(test_indirect_not_negotiated),
		T(test_indirect_with_next),
		T(test_indirect_bad_length),
		T(test_indirect_zero_length),
		T(test_nested_indirect),
		T(test_indirect_loop),
		T(test_buffer_across_regions),
		T(test_rings_outside_memory),
		T(test_notify_no_event_idx),
		T(test_event_idx),
		T(test_inflight_bookkeeping),
		T(test_inflight_died_between_publish_and_clear),
		T(test_inflight_hostile_region),
		T(test_unpop),
		T(test_push_batch),
		T(test_push_batch_wraps),
		T(test_push_batch_refused),
		T(test_unpop_push_batch_not_with_inflight),
		T(test_iov_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
