/* A volume: the byte range of a file or block device that one client sees as its disk. Every
 * request is checked against it with overflow-safe arithmetic, so no client reaches outside it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define BLK_SECTOR_SIZE 512u
#define BLK_SERIAL_MAX 20 /* VIRTIO_BLK_ID_BYTES */

struct blk_volume {
	char path[4096];
	uint64_t offset;         /* bytes into the file */
	uint64_t size;           /* bytes; 0 = to the end of the file (until opened) */
	bool read_only;
	char serial[BLK_SERIAL_MAX + 1];
	int fd;
	bool is_blockdev;
};

void blk_volume_init(struct blk_volume *vol);

/* Parses "1024", "4k", "10M", "2G", "1T" into bytes. */
int blk_parse_size(const char *s, uint64_t *ret);

/* Opens the backing file (O_RDONLY for a read-only volume), resolves size 0 to "the rest of the
 * file", and checks offset and size are sector multiples that fit the backing. On error, err gets
 * a sentence saying what is wrong. */
int blk_volume_open(struct blk_volume *vol, char *err, size_t errlen);
void blk_volume_close(struct blk_volume *vol);

/* Checks that len bytes at sector lie within the volume. Returns 0 and the absolute byte offset in
 * the backing file, or -ERANGE (also for len not a sector multiple: -EINVAL). */
int blk_volume_check_range(const struct blk_volume *vol, uint64_t sector, uint64_t len, uint64_t *ret_offset);
