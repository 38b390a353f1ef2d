/* Fuzz target: the descriptor walker and the split ring, with the guest's memory (rings, indirect
 * tables, buffers) taken from the input. Every popped element's iovecs must lie inside guest
 * memory; nothing may crash; a restart with the inflight region must not either. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake-guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM (UINT64_C(256) * 1024)

static void check_elem(const struct fake_guest *g, const struct vu_elem *e)
{
	for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
		const uint8_t *p = e->iov[i].iov_base;

		if (p < g->mem || e->iov[i].iov_len > MEM || p + e->iov[i].iov_len > g->mem + MEM)
			abort();
	}
}

static void drain(struct fake_guest *g, struct vu_elem *e, unsigned push_every)
{
	unsigned popped = 0;
	uint16_t heads[1024];

	for (unsigned i = 0; i < 2u * g->vq.num + 2; i++) {
		int r = vu_vq_pop(&g->vq, e);

		if (r <= 0)
			break;
		check_elem(g, e);
		heads[popped++ % 1024] = e->head;
		/* leave some in flight, complete others out of order */
		if (push_every && popped % push_every == 0)
			vu_vq_push(&g->vq, e->head, (uint32_t)e->in_len);
		vu_vq_should_notify(&g->vq);
	}
	(void)heads;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fake_guest g;
	static struct vu_elem e;
	uint16_t num;
	uint8_t flags;

	if (size < 4)
		return 0;
	num = (uint16_t)(1u << (data[0] % 9));
	flags = data[1];
	fake_guest_init(&g, MEM, num, flags & 1, flags & 2);
	if (flags & 4)
		fake_guest_add_inflight(&g);
	g.vq.base = (uint16_t)(data[2] | data[3] << 8);
	memcpy(g.mem, data + 4, size - 4 < MEM ? size - 4 : MEM);
	if (fake_guest_start(&g) == 0) {
		drain(&g, &e, 1 + (flags >> 4) % 4);
		/* a restart: the next back-end finds the inflight region as this one left it */
		vu_vq_detach(&g.vq);
		if (fake_guest_start(&g) == 0)
			drain(&g, &e, 1);
	}
	fake_guest_free(&g);
	return 0;
}
