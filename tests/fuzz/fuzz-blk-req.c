/* Fuzz target: virtio-blk request parsing from a descriptor chain cut up any way the guest likes,
 * then the discard segments and the volume bounds check with whatever numbers came in. No access
 * outside the buffers; no range check may let a request leave its volume. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blk-req.h"
#include "blk-volume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[65536];
	static struct vu_elem e;
	static struct blk_req r;
	struct virtio_blk_discard_write_zeroes segs[BLK_MAX_SEGS];
	struct blk_volume vol;
	size_t pos = 0, used = 0;
	unsigned n_out, n_in;
	uint64_t off;

	if (size < 2)
		return 0;
	n_out = data[0] % 8;
	n_in = data[1] % 8;
	pos = 2;
	memset(&e, 0, sizeof(e));
	for (unsigned i = 0; i < n_out + n_in && pos < size; i++) {
		size_t len = data[pos++];

		if (used + len > sizeof(buf))
			break;
		e.iov[i].iov_base = buf + used;
		e.iov[i].iov_len = len;
		if (i < n_out) {
			e.out_num++;
			e.out_len += len;
		} else {
			e.in_num++;
			e.in_len += len;
		}
		used += len;
	}
	memcpy(buf, data + pos, size - pos < used ? size - pos : used);
	if (blk_req_parse(&e, &r) == 0) {
		if (r.status < buf || r.status >= buf + used)
			abort();
		(void)blk_req_segments(&r, segs, BLK_MAX_SEGS);
		blk_volume_init(&vol);
		vol.offset = 1 << 20;
		vol.size = 64 << 20;
		if (blk_volume_check_range(&vol, r.sector, r.in_len + r.out_len, &off) == 0 &&
		    (off < vol.offset || off - vol.offset + r.in_len + r.out_len > vol.size))
			abort();
	}
	return 0;
}
