/* virtio-blk requests as a popped descriptor chain carries them: the header, the data in either
 * direction, the status byte. Parsing, and copying the data to and from a bounce buffer (the
 * budget such buffers may take included); nothing here touches a volume. */
#pragma once

#include <stdint.h>

#include <linux/virtio_blk.h>

#include "vu-vq.h"

/* Discard / write-zeroes segments in one request. */
#define BLK_MAX_SEGS 16

struct blk_req {
	uint32_t type;
	uint64_t sector;
	uint8_t *status;          /* the last device-writable byte */
	/* Data the device reads (after the header) and data it writes (before the status byte). */
	struct iovec *out;
	unsigned out_num;
	uint64_t out_len;
	struct iovec *in;
	unsigned in_num;
	uint64_t in_len;
	struct iovec iov[VU_ELEM_MAX_IOV];
};

/* Parses elem into ret. Returns 0; -EBADMSG when the header is short or has trailing
 * device-readable data where there can be none (ret->status is set: report an error status);
 * -EINVAL when there is not even a status byte (the request cannot be answered: the device is
 * broken). */
int blk_req_parse(const struct vu_elem *elem, struct blk_req *ret);

/* Reads discard/write-zeroes segments from the request's out data. Returns their number, or
 * -EINVAL when the data is not a whole number of segments, or more than max. */
int blk_req_segments(const struct blk_req *req, struct virtio_blk_discard_write_zeroes *segs, unsigned max);

/* Name of a request type for messages. */
const char *blk_req_type_name(uint32_t type);

/* cache=direct moves a READ's or WRITE's data through a bounce buffer the size of the transfer, so
 * a client decides how much the back-end allocates: each export gets this many bytes of bounce
 * buffers at once. A request that does not fit waits for others to finish; one larger than this
 * alone is refused. 16 MiB = seg_max (256) x size_max (64 KiB), the largest request a guest that
 * honours the config space sends. */
#define BLK_BOUNCE_BYTES_MAX (UINT64_C(16) << 20)

struct blk_bounce_budget {
	uint64_t used;            /* bytes in bounce buffers now */
	uint64_t limit;
};

/* Takes len bytes of the budget. Returns 0; -EAGAIN when they do not fit while others are held
 * (the request waits for them); -E2BIG when they can never fit (the request is refused). */
int blk_bounce_reserve(struct blk_bounce_budget *b, uint64_t len);
/* Gives back what blk_bounce_reserve took. */
void blk_bounce_release(struct blk_bounce_budget *b, uint64_t len);

/* Bounce buffers come in power-of-two sizes from 4 KiB to BLK_BOUNCE_BYTES_MAX, page-aligned, and
 * freed ones are kept for the next request of the same size: allocating and freeing 128 KiB and
 * more costs an mmap/munmap (or a heap trim) and page faults on fresh memory every time, which
 * cut 128 KiB write throughput by 60 %. At most BLK_BOUNCE_CACHE_BYTES are kept idle. */
#define BLK_BOUNCE_MIN_SIZE 4096u
#define BLK_BOUNCE_ALIGN 4096u
#define BLK_BOUNCE_CLASSES 13 /* 4 KiB << 0..12: up to 16 MiB */
#define BLK_BOUNCE_CACHE_BYTES (UINT64_C(8) << 20)

struct blk_bounce_cache {
	void *free[BLK_BOUNCE_CLASSES];   /* singly linked through each buffer's first bytes */
	uint64_t bytes;                   /* idle in the lists */
};

/* The size of the buffer that holds len bytes: a power of two, at least BLK_BOUNCE_MIN_SIZE. 0 for
 * len above BLK_BOUNCE_BYTES_MAX. */
uint64_t blk_bounce_size(uint64_t len);
/* A buffer of size bytes (a blk_bounce_size), aligned to BLK_BOUNCE_ALIGN: a kept one, or a new
 * one. NULL when out of memory or size is no bounce size. */
void *blk_bounce_get(struct blk_bounce_cache *c, uint64_t size);
/* Gives a buffer from blk_bounce_get back: kept while the cache has room, else freed. */
void blk_bounce_put(struct blk_bounce_cache *c, void *buf, uint64_t size);
/* Frees every kept buffer. */
void blk_bounce_cache_clear(struct blk_bounce_cache *c);

/* Copies the request's device-readable data (a WRITE's) into buf, which holds len bytes: 0, or
 * -EINVAL when the data is not exactly len bytes. */
int blk_req_gather(const struct blk_req *req, void *buf, uint64_t len);
/* Copies len bytes from buf into the request's device-writable data (a READ's): 0, or -EINVAL
 * when that data is not exactly len bytes. */
int blk_req_scatter(const struct blk_req *req, const void *buf, uint64_t len);
