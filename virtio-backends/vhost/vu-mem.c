/* Memory-table checks and address translation. Every address and length comes from the front-end
 * or the guest, so every sum is checked for wrap-around before it is compared. */
#include <errno.h>
#include <string.h>

#include "vu-mem.h"

static bool range_ok(uint64_t start, uint64_t len)
{
	return len > 0 && start + len - 1 >= start;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Inclusive ends: both ranges were checked not to wrap. */
	return a <= b + blen - 1 && b <= a + alen - 1;
}

int vu_mem_from_msg(const struct vu_mem_table_msg *msg, struct vu_mem *ret_mem)
{
	struct vu_mem mem = { 0 };

	if (msg->nregions == 0 || msg->nregions > VU_MAX_MEM_REGIONS)
		return -EINVAL;
	for (unsigned i = 0; i < msg->nregions; i++) {
		const struct vu_mem_region_msg *m = &msg->regions[i];
		struct vu_mem_region *r = &mem.regions[i];

		if (!range_ok(m->guest_phys_addr, m->memory_size) || !range_ok(m->userspace_addr, m->memory_size) ||
		    !range_ok(m->mmap_offset, m->memory_size) || m->memory_size > SIZE_MAX - m->mmap_offset)
			return -EINVAL;
		for (unsigned j = 0; j < i; j++) {
			const struct vu_mem_region *o = &mem.regions[j];

			if (ranges_overlap(m->guest_phys_addr, m->memory_size, o->gpa, o->size) ||
			    ranges_overlap(m->userspace_addr, m->memory_size, o->uva, o->size))
				return -EINVAL;
		}
		r->gpa = m->guest_phys_addr;
		r->size = m->memory_size;
		r->uva = m->userspace_addr;
		r->mmap_offset = m->mmap_offset;
	}
	mem.nregions = msg->nregions;
	*ret_mem = mem;
	return 0;
}

void *vu_mem_gpa_to_host_partial(const struct vu_mem *mem, uint64_t gpa, uint64_t *ret_avail)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct vu_mem_region *r = &mem->regions[i];

		if (r->host && gpa >= r->gpa && gpa - r->gpa < r->size) {
			*ret_avail = r->size - (gpa - r->gpa);
			return r->host + (gpa - r->gpa);
		}
	}
	return NULL;
}

void *vu_mem_gpa_to_host(const struct vu_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t avail;
	void *p = vu_mem_gpa_to_host_partial(mem, gpa, &avail);

	return p && len <= avail ? p : NULL;
}

void *vu_mem_uva_to_host(const struct vu_mem *mem, uint64_t uva, uint64_t len)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct vu_mem_region *r = &mem->regions[i];

		if (r->host && uva >= r->uva && uva - r->uva < r->size && len <= r->size - (uva - r->uva))
			return r->host + (uva - r->uva);
	}
	return NULL;
}
