/* A guest in a buffer; see fake-guest.h. */
#include <stdlib.h>
#include <string.h>

#include "fake-guest.h"

void fake_guest_init(struct fake_guest *g, uint64_t size, uint16_t num, bool event_idx, bool indirect)
{
	memset(g, 0, sizeof(*g));
	g->mem = aligned_alloc(4096, size);
	memset(g->mem, 0, size);
	g->size = size;
	g->table.nregions = 1;
	g->table.regions[0] = (struct vu_mem_region){ .gpa = 0, .size = size, .uva = FAKE_GUEST_UVA, .host = g->mem };
	vu_vq_init(&g->vq, 0);
	g->vq.num = num;
	g->vq.desc_uva = FAKE_GUEST_UVA;
	g->vq.avail_uva = FAKE_GUEST_UVA + 16ull * num;
	g->vq.used_uva = FAKE_GUEST_UVA + ((16u * num + 6 + 2u * num + 4095) & ~4095u);
	g->vq.addr_set = true;
	g->vq.event_idx = event_idx;
	g->vq.indirect = indirect;
	g->desc = (struct vring_desc *)g->mem;
	g->avail = (struct vring_avail *)(g->mem + (g->vq.avail_uva - FAKE_GUEST_UVA));
	g->used = (struct vring_used *)(g->mem + (g->vq.used_uva - FAKE_GUEST_UVA));
}

void fake_guest_free(struct fake_guest *g)
{
	vu_vq_detach(&g->vq);
	free(g->inflight);
	free(g->mem);
}

void fake_guest_add_inflight(struct fake_guest *g)
{
	g->inflight = calloc(1, vu_inflight_queue_size(g->vq.num));
	g->vq.inflight = g->inflight;
	g->vq.inflight_num = g->vq.num; /* as vu-dev does: the region is sized for this ring */
}

void fake_guest_desc(struct fake_guest *g, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	g->desc[i] = (struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

void fake_guest_kick(struct fake_guest *g, uint16_t head)
{
	g->avail->ring[g->avail_idx % g->vq.num] = head;
	g->avail_idx++;
	__atomic_store_n(&g->avail->idx, g->avail_idx, __ATOMIC_RELEASE);
}

int fake_guest_start(struct fake_guest *g)
{
	return vu_vq_attach(&g->vq, &g->table);
}
