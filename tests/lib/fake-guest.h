/* A guest in a buffer, for unit tests and fuzzers of the vhost-user core: one memory region at
 * guest-physical 0, a split ring at the start of it, and helpers to write descriptors the way a
 * driver (or a hostile guest) would. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_ring.h>

#include "vu-vq.h"

#define FAKE_GUEST_UVA 0x7f0000000000ull /* where the "front-end" has the region mapped */
#define FAKE_GUEST_DATA 0x10000u         /* buffers start here; rings live below */

struct fake_guest {
	uint8_t *mem;
	uint64_t size;
	struct vu_mem table;
	struct vu_vq vq;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx;
	struct vu_inflight_queue *inflight;
};

/* size >= 2 * FAKE_GUEST_DATA; num a power of two <= 1024. */
void fake_guest_init(struct fake_guest *g, uint64_t size, uint16_t num, bool event_idx, bool indirect);
void fake_guest_free(struct fake_guest *g);
/* Gives the queue an inflight region (zeroed, as GET_INFLIGHT_FD makes it). */
void fake_guest_add_inflight(struct fake_guest *g);
void fake_guest_desc(struct fake_guest *g, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
/* Publishes head in the avail ring. */
void fake_guest_kick(struct fake_guest *g, uint16_t head);
/* vu_vq_attach with the guest's memory. */
int fake_guest_start(struct fake_guest *g);
