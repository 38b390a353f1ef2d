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

int blk_volume_open(struct blk_volume *vol, char *err, size_t errlen)
{
	struct stat st;
	uint64_t backing;
	int fd, r;

	err[0] = '\0';
	fd = open(vol->path, (vol->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open %s: %s", vol->path, strerror(errno));
		return r;
	}
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
	if (vol->offset % BLK_SECTOR_SIZE || vol->size % BLK_SECTOR_SIZE) {
		r = -EINVAL;
		snprintf(err, errlen, "offset and size must be multiples of %u bytes", BLK_SECTOR_SIZE);
		goto fail;
	}
	if (vol->offset >= backing) {
		r = -ERANGE;
		snprintf(err, errlen, "offset %" PRIu64 " is beyond the end of %s (%" PRIu64 " bytes)", vol->offset,
			 vol->path, backing);
		goto fail;
	}
	if (vol->size == 0)
		vol->size = (backing - vol->offset) / BLK_SECTOR_SIZE * BLK_SECTOR_SIZE;
	if (vol->size == 0 || vol->size > backing - vol->offset) {
		r = -ERANGE;
		snprintf(err, errlen, "%s has %" PRIu64 " bytes: no room for %" PRIu64 " bytes at offset %" PRIu64,
			 vol->path, backing, vol->size, vol->offset);
		goto fail;
	}
	vol->fd = fd;
	return 0;
fail:
	if (err[0] == '\0')
		snprintf(err, errlen, "%s: %s", vol->path, strerror(-r));
	close(fd);
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
