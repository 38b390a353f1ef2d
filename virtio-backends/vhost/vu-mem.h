/* The front-end's memory table: regions of guest-physical memory, each also known by its address in
 * the front-end's process (rings are given in that space), and where ddtk mapped it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vu-proto.h"

struct vu_mem_region {
	uint64_t gpa;         /* guest-physical start */
	uint64_t size;
	uint64_t uva;         /* start in the front-end's address space */
	uint64_t mmap_offset; /* offset of gpa in the region's fd */
	void *map_base;       /* what the transport mapped (from fd offset 0) */
	size_t map_len;
	uint8_t *host;        /* where gpa is in this process */
};

struct vu_mem {
	unsigned nregions;
	struct vu_mem_region regions[VU_MAX_MEM_REGIONS];
};

/* Checks a SET_MEM_TABLE payload: sizes non-zero, no range wrapping around 2^64, no two regions
 * overlapping in guest-physical or front-end address space. Fills ret_mem (unmapped) on success. */
int vu_mem_from_msg(const struct vu_mem_table_msg *msg, struct vu_mem *ret_mem);

/* Host address of [gpa, gpa+len) if it lies within one region, else NULL. */
void *vu_mem_gpa_to_host(const struct vu_mem *mem, uint64_t gpa, uint64_t len);

/* Host address of gpa and how many bytes from there lie in the same region (ret_avail), or NULL
 * when gpa is in no region. For buffers that may span regions. */
void *vu_mem_gpa_to_host_partial(const struct vu_mem *mem, uint64_t gpa, uint64_t *ret_avail);

/* Host address of [uva, uva+len) in the front-end's address space, within one region, else NULL. */
void *vu_mem_uva_to_host(const struct vu_mem *mem, uint64_t uva, uint64_t len);
