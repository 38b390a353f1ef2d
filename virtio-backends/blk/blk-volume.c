/* Volumes: opening the backing and the bounds check that keeps each client inside its range. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>

#include "blk-volume.h"

void blk_volume_init(struct blk_volume *vol)
{
	memset(vol, 0, sizeof(*vol));
	vol->fd = -1;
	vol->align = BLK_SECTOR_SIZE;
	vol->mem_align = 1;
}

int blk_parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	case 't': case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

int blk_direct_align(unsigned reported, unsigned *ret)
{
	if (reported == 0)
		return -EOPNOTSUPP;
	if (reported & (reported - 1) || reported > BLK_DIRECT_ALIGN_MAX)
		return -EINVAL;
	*ret = reported < BLK_SECTOR_SIZE ? BLK_SECTOR_SIZE : reported;
	return 0;
}

/* With direct: what O_DIRECT needs of offsets, lengths and buffer addresses on this backing. */
static int volume_probe_direct(struct blk_volume *vol, const struct stat *st, char *err, size_t errlen)
{
	unsigned reported = (unsigned)st->st_blksize, mem = 0;
	int r;

	if (vol->is_blockdev) {
		int lbs;

		if (ioctl(vol->fd, BLKSSZGET, &lbs) < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot get the logical block size of %s: %s", vol->path, strerror(errno));
			return r;
		}
		reported = lbs > 0 ? (unsigned)lbs : 0;
	} else {
#ifdef STATX_DIOALIGN
		struct statx stx;

		/* Linux 6.1+ says what the file system needs; older kernels leave the mask bit clear and
		 * st_blksize, the file system's block size, is always enough. */
		if (statx(vol->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN)) {
			reported = stx.stx_dio_offset_align;
			mem = stx.stx_dio_mem_align;
		}
#endif
	}
	r = blk_direct_align(reported, &vol->align);
	if (r == -EOPNOTSUPP) {
		snprintf(err, errlen, "%s does not support O_DIRECT (cache=direct); use cache=buffered", vol->path);
		return r;
	}
	if (r < 0 || mem > BLK_DIRECT_ALIGN_MAX) {
		snprintf(err, errlen, "%s asks for an O_DIRECT alignment of %u bytes (memory %u); at most %u is supported",
			 vol->path, reported, mem, BLK_DIRECT_ALIGN_MAX);
		return -EINVAL;
	}
	vol->mem_align = BLK_DIRECT_MEM_ALIGN;
	if (mem > vol->mem_align)
		vol->mem_align = mem;
	if (vol->align > vol->mem_align)
		vol->mem_align = vol->align;
	return 0;
}

int blk_volume_open(struct blk_volume *vol, char *err, size_t errlen)
{
	struct stat st;
	uint64_t backing;
	int fd, r;

	err[0] = '\0';
	vol->align = BLK_SECTOR_SIZE;
	vol->mem_align = 1;
	fd = open(vol->path, (vol->read_only ? O_RDONLY : O_RDWR) | (vol->direct ? O_DIRECT : 0) | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (vol->direct && errno == EINVAL)
			snprintf(err, errlen, "cannot open %s with O_DIRECT (cache=direct): its file system does not "
				 "support it; use cache=buffered", vol->path);
		else
			snprintf(err, errlen, "cannot open %s: %s", vol->path, strerror(errno));
		return r;
	}
	vol->fd = fd;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &backing) < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot get the size of %s: %s", vol->path, strerror(errno));
			goto fail;
		}
		vol->is_blockdev = true;
	} else if (S_ISREG(st.st_mode)) {
		backing = (uint64_t)st.st_size;
	} else {
		r = -EINVAL;
		snprintf(err, errlen, "%s is neither a regular file nor a block device", vol->path);
		goto fail;
	}
	if (vol->direct && (r = volume_probe_direct(vol, &st, err, errlen)) < 0)
		goto fail;
	if (vol->offset % vol->align || vol->size % vol->align) {
		r = -EINVAL;
		snprintf(err, errlen, "offset and size must be multiples of %u bytes%s", vol->align,
			 vol->direct ? " (the backing's O_DIRECT alignment, cache=direct)" : "");
		goto fail;
	}
	if (vol->offset >= backing) {
		r = -ERANGE;
		snprintf(err, errlen, "offset %" PRIu64 " is beyond the end of %s (%" PRIu64 " bytes)", vol->offset,
			 vol->path, backing);
		goto fail;
	}
	if (vol->size == 0)
		vol->size = (backing - vol->offset) / vol->align * vol->align;
	if (vol->size == 0 || vol->size > backing - vol->offset) {
		r = -ERANGE;
		snprintf(err, errlen, "%s has %" PRIu64 " bytes: no room for %" PRIu64 " bytes at offset %" PRIu64,
			 vol->path, backing, vol->size, vol->offset);
		goto fail;
	}
	return 0;
fail:
	if (err[0] == '\0')
		snprintf(err, errlen, "%s: %s", vol->path, strerror(-r));
	close(fd);
	vol->fd = -1;
	return r;
}

void blk_volume_close(struct blk_volume *vol)
{
	if (vol->fd >= 0)
		close(vol->fd);
	vol->fd = -1;
}

int blk_volume_check_range(const struct blk_volume *vol, uint64_t sector, uint64_t len, uint64_t *ret_offset)
{
	uint64_t start;

	if (len % BLK_SECTOR_SIZE)
		return -EINVAL;
	/* sector * 512 must not wrap, and start + len must stay within size, each step checked. */
	if (sector > vol->size / BLK_SECTOR_SIZE)
		return -ERANGE;
	start = sector * BLK_SECTOR_SIZE;
	if (len > vol->size - start)
		return -ERANGE;
	*ret_offset = vol->offset + start;
	return 0;
}

bool blk_volume_aligned(const struct blk_volume *vol, uint64_t offset, uint64_t len)
{
	return offset % vol->align == 0 && len % vol->align == 0;
}
