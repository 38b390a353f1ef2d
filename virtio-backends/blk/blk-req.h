/* virtio-blk requests as a popped descriptor chain carries them: the header, the data in either
 * direction, the status byte. Parsing only; nothing here touches a volume. */
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
