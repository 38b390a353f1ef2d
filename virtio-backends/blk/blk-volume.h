/* A volume: the byte range of a file or block device that one client sees as its disk. Every
 * request is checked against it with overflow-safe arithmetic, so no client reaches outside it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define BLK_SECTOR_SIZE 512u
#define BLK_SERIAL_MAX 20 /* VIRTIO_BLK_ID_BYTES */
/* cache=direct: the largest O_DIRECT alignment a backing may ask for, and the least alignment of a
 * bounce buffer's address (a page: what every file system and block device takes). */
#define BLK_DIRECT_ALIGN_MAX 65536u
#define BLK_DIRECT_MEM_ALIGN 4096u

struct blk_volume {
	char path[4096];
	uint64_t offset;         /* bytes into the file */
	uint64_t size;           /* bytes; 0 = to the end of the file (until opened) */
	bool read_only;
	char serial[BLK_SERIAL_MAX + 1];
	/* cache=direct: opened with O_DIRECT; READ and WRITE go through aligned bounce buffers (client
	 * memory may be a VFIO BAR mapping, which O_DIRECT cannot pin). */
	bool direct;
	int fd;
	bool is_blockdev;
	/* Set by blk_volume_open: the alignment of offsets and lengths I/O needs (with direct the
	 * backing's logical block size, else a sector), and of a bounce buffer's address. */
	unsigned align;
	unsigned mem_align;
};

void blk_volume_init(struct blk_volume *vol);

/* Parses "1024", "4k", "10M", "2G", "1T" into bytes. */
int blk_parse_size(const char *s, uint64_t *ret);

/* Opens the backing file (O_RDONLY for a read-only volume, O_DIRECT with direct), resolves size 0
 * to "the rest of the file", and checks offset and size are multiples of the alignment (a sector;
 * with direct the backing's O_DIRECT alignment) that fit the backing. On error, err gets a
 * sentence saying what is wrong. */
int blk_volume_open(struct blk_volume *vol, char *err, size_t errlen);
void blk_volume_close(struct blk_volume *vol);

/* Checks that len bytes at sector lie within the volume. Returns 0 and the absolute byte offset in
 * the backing file, or -ERANGE (also for len not a sector multiple: -EINVAL). */
int blk_volume_check_range(const struct blk_volume *vol, uint64_t sector, uint64_t len, uint64_t *ret_offset);

/* The O_DIRECT alignment to use for a backing that reports `reported` (a block device's logical
 * block size, a file's statx dio_offset_align): at least a sector. -EOPNOTSUPP for 0 (no O_DIRECT
 * on that file), -EINVAL for one that is not a power of two or above BLK_DIRECT_ALIGN_MAX. */
int blk_direct_align(unsigned reported, unsigned *ret);

/* Whether len bytes at the absolute offset meet the volume's alignment (always, without direct). */
bool blk_volume_aligned(const struct blk_volume *vol, uint64_t offset, uint64_t len);
