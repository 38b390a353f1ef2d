/* Parsing virtio-blk requests out of descriptor chains, and copying their data to and from bounce
 * buffers. The guest decides how its buffers are cut into descriptors: the header and the status
 * byte may straddle or share iovecs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk-req.h"

/* Copies iov[0..n) into dst skipping `skip` bytes and keeping at most `len`; returns the count. */
static unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len, struct iovec *dst)
{
	unsigned out = 0;

	for (unsigned i = 0; i < n && len > 0; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		dst[out].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[out].iov_len = l;
		out++;
		len -= l;
		skip = 0;
	}
	return out;
}

int blk_req_parse(const struct vu_elem *elem, struct blk_req *ret)
{
	const struct iovec *in = elem->iov + elem->out_num;
	struct virtio_blk_outhdr hdr;
	const struct iovec *last;

	memset(ret, 0, offsetof(struct blk_req, iov));
	if (elem->in_num == 0 || elem->in_len == 0)
		return -EINVAL;
	last = &in[elem->in_num - 1];
	if (last->iov_len == 0)
		return -EINVAL;
	ret->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	if (vu_iov_to_buf(elem->iov, elem->out_num, 0, &hdr, sizeof(hdr)) != sizeof(hdr))
		return -EBADMSG;
	ret->type = le32toh(hdr.type);
	ret->sector = le64toh(hdr.sector);
	ret->out = ret->iov;
	ret->out_len = elem->out_len - sizeof(hdr);
	ret->out_num = iov_slice(elem->iov, elem->out_num, sizeof(hdr), ret->out_len, ret->out);
	ret->in = ret->iov + ret->out_num;
	ret->in_len = elem->in_len - 1;
	ret->in_num = iov_slice(in, elem->in_num, 0, ret->in_len, ret->in);
	return 0;
}

int blk_req_segments(const struct blk_req *req, struct virtio_blk_discard_write_zeroes *segs, unsigned max)
{
	const size_t seg_size = sizeof(*segs);
	unsigned n;

	if (req->out_len == 0 || req->out_len % seg_size || req->out_len / seg_size > max)
		return -EINVAL;
	n = req->out_len / seg_size;
	if (vu_iov_to_buf(req->out, req->out_num, 0, segs, n * seg_size) != n * seg_size)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		segs[i].sector = le64toh(segs[i].sector);
		segs[i].num_sectors = le32toh(segs[i].num_sectors);
		segs[i].flags = le32toh(segs[i].flags);
	}
	return (int)n;
}

const char *blk_req_type_name(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return "read";
	case VIRTIO_BLK_T_OUT:
		return "write";
	case VIRTIO_BLK_T_FLUSH:
		return "flush";
	case VIRTIO_BLK_T_GET_ID:
		return "get-id";
	case VIRTIO_BLK_T_DISCARD:
		return "discard";
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return "write-zeroes";
	default:
		return "unknown";
	}
}

int blk_bounce_reserve(struct blk_bounce_budget *b, uint64_t len)
{
	if (len > b->limit)
		return -E2BIG;
	if (len > b->limit - b->used)
		return -EAGAIN;
	b->used += len;
	return 0;
}

void blk_bounce_release(struct blk_bounce_budget *b, uint64_t len)
{
	/* More back than taken is a bug of ours; the budget must not wrap and allow everything. */
	b->used = len > b->used ? 0 : b->used - len;
}

/* The size class of a bounce size (BLK_BOUNCE_MIN_SIZE << class), or -1 for other sizes. */
static int bounce_class(uint64_t size)
{
	for (int c = 0; c < BLK_BOUNCE_CLASSES; c++)
		if (size == (uint64_t)BLK_BOUNCE_MIN_SIZE << c)
			return c;
	return -1;
}

uint64_t blk_bounce_size(uint64_t len)
{
	uint64_t size = BLK_BOUNCE_MIN_SIZE;

	if (len > BLK_BOUNCE_BYTES_MAX)
		return 0;
	while (size < len)
		size <<= 1;
	return size;
}

void *blk_bounce_get(struct blk_bounce_cache *c, uint64_t size)
{
	int k = bounce_class(size);
	void *buf;

	if (k < 0)
		return NULL;
	buf = c->free[k];
	if (buf) {
		memcpy(&c->free[k], buf, sizeof(void *));
		c->bytes -= size;
		return buf;
	}
	if (posix_memalign(&buf, BLK_BOUNCE_ALIGN, (size_t)size) != 0)
		return NULL;
	return buf;
}

void blk_bounce_put(struct blk_bounce_cache *c, void *buf, uint64_t size)
{
	int k = bounce_class(size);

	if (!buf)
		return;
	if (k < 0 || size > BLK_BOUNCE_CACHE_BYTES - c->bytes) {
		free(buf);
		return;
	}
	memcpy(buf, &c->free[k], sizeof(void *));
	c->free[k] = buf;
	c->bytes += size;
}

void blk_bounce_cache_clear(struct blk_bounce_cache *c)
{
	for (int k = 0; k < BLK_BOUNCE_CLASSES; k++) {
		while (c->free[k]) {
			void *buf = c->free[k];

			memcpy(&c->free[k], buf, sizeof(void *));
			free(buf);
		}
	}
	c->bytes = 0;
}

int blk_req_gather(const struct blk_req *req, void *buf, uint64_t len)
{
	if (req->out_len != len)
		return -EINVAL;
	return vu_iov_to_buf(req->out, req->out_num, 0, buf, (size_t)len) == len ? 0 : -EINVAL;
}

int blk_req_scatter(const struct blk_req *req, const void *buf, uint64_t len)
{
	if (req->in_len != len)
		return -EINVAL;
	return vu_iov_from_buf(req->in, req->in_num, 0, buf, (size_t)len) == len ? 0 : -EINVAL;
}
