/* Unit tests of ddtk-blk's pure parts: volume bounds (no request may leave its volume, whatever
 * the arithmetic), sizes on the command line, request parsing from descriptor chains, and
 * cache=direct's alignment checks, bounce-buffer copies and budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk-req.h"
#include "blk-volume.h"

static void test_volume_bounds(void **state)
{
	struct blk_volume v;
	uint64_t off = 0;

	blk_volume_init(&v);
	v.offset = 1 << 20;
	v.size = 8192;
	assert_int_equal(blk_volume_check_range(&v, 0, 8192, &off), 0);
	assert_int_equal(off, 1 << 20);
	assert_int_equal(blk_volume_check_range(&v, 15, 512, &off), 0);
	assert_int_equal(off, (1 << 20) + 15 * 512);
	assert_int_equal(blk_volume_check_range(&v, 16, 0, &off), 0); /* empty at the very end */
	assert_int_equal(blk_volume_check_range(&v, 15, 1024, &off), -ERANGE);
	assert_int_equal(blk_volume_check_range(&v, 16, 512, &off), -ERANGE);
	assert_int_equal(blk_volume_check_range(&v, 17, 0, &off), -ERANGE);
	assert_int_equal(blk_volume_check_range(&v, 0, 100, &off), -EINVAL);
	/* sector * 512 would wrap to a small number */
	assert_int_equal(blk_volume_check_range(&v, UINT64_MAX / 512 + 2, 512, &off), -ERANGE);
	assert_int_equal(blk_volume_check_range(&v, UINT64_MAX, 512, &off), -ERANGE);
	/* start + len would wrap */
	assert_int_equal(blk_volume_check_range(&v, 1, UINT64_MAX - 511, &off), -ERANGE);
}

static void test_parse_size(void **state)
{
	uint64_t v;

	assert_int_equal(blk_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(blk_parse_size("64M", &v), 0);
	assert_int_equal(v, 64 << 20);
	assert_int_equal(blk_parse_size("2g", &v), 0);
	assert_int_equal(v, UINT64_C(2) << 30);
	assert_int_equal(blk_parse_size("1T", &v), 0);
	assert_int_equal(blk_parse_size("", &v), -EINVAL);
	assert_int_equal(blk_parse_size("-1", &v), -EINVAL);
	assert_int_equal(blk_parse_size("12MB", &v), -EINVAL);
	assert_int_equal(blk_parse_size("1x", &v), -EINVAL);
	assert_int_equal(blk_parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(blk_parse_size("17179869184G", &v), -ERANGE);
}

static uint8_t mem[8192];

static void elem_add(struct vu_elem *e, size_t off, size_t len, bool in)
{
	struct iovec *iov = &e->iov[e->out_num + e->in_num];

	iov->iov_base = mem + off;
	iov->iov_len = len;
	if (in) {
		e->in_num++;
		e->in_len += len;
	} else {
		e->out_num++;
		e->out_len += len;
	}
}

static void put_hdr(size_t off, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = htole32(type), .sector = htole64(sector) };

	memcpy(mem + off, &h, sizeof(h));
}

static void test_parse_write(void **state)
{
	struct vu_elem e = { 0 };
	struct blk_req r;

	put_hdr(0, VIRTIO_BLK_T_OUT, 7);
	elem_add(&e, 0, 16, false);
	elem_add(&e, 1024, 1024, false);
	elem_add(&e, 4096, 1, true);
	assert_int_equal(blk_req_parse(&e, &r), 0);
	assert_int_equal(r.type, VIRTIO_BLK_T_OUT);
	assert_int_equal(r.sector, 7);
	assert_int_equal(r.out_len, 1024);
	assert_int_equal(r.out_num, 1);
	assert_ptr_equal(r.out[0].iov_base, mem + 1024);
	assert_int_equal(r.in_len, 0);
	assert_ptr_equal(r.status, mem + 4096);
}

static void test_parse_header_split_and_status_shared(void **state)
{
	struct vu_elem e = { 0 };
	struct blk_req r;

	/* The header in two pieces; data and status in one device-writable buffer. */
	put_hdr(100, VIRTIO_BLK_T_IN, 3);
	memmove(mem + 300, mem + 110, 6);
	elem_add(&e, 100, 10, false);
	elem_add(&e, 300, 6, false);
	elem_add(&e, 2048, 513, true);
	assert_int_equal(blk_req_parse(&e, &r), 0);
	assert_int_equal(r.type, VIRTIO_BLK_T_IN);
	assert_int_equal(r.sector, 3);
	assert_int_equal(r.out_len, 0);
	assert_int_equal(r.in_len, 512);
	assert_int_equal(r.in[0].iov_len, 512);
	assert_ptr_equal(r.status, mem + 2048 + 512);
}

static void test_parse_no_status(void **state)
{
	struct vu_elem e = { 0 };
	struct blk_req r;

	put_hdr(0, VIRTIO_BLK_T_IN, 0);
	elem_add(&e, 0, 16, false);
	assert_int_equal(blk_req_parse(&e, &r), -EINVAL);
}

static void test_parse_short_header(void **state)
{
	struct vu_elem e = { 0 };
	struct blk_req r;

	elem_add(&e, 0, 8, false);
	elem_add(&e, 4096, 1, true);
	assert_int_equal(blk_req_parse(&e, &r), -EBADMSG);
	assert_ptr_equal(r.status, mem + 4096); /* still answerable */
}

static void test_segments(void **state)
{
	struct vu_elem e = { 0 };
	struct blk_req r;
	struct virtio_blk_discard_write_zeroes segs[BLK_MAX_SEGS], s = { .sector = htole64(8),
									     .num_sectors = htole32(16) };

	put_hdr(0, VIRTIO_BLK_T_DISCARD, 0);
	memcpy(mem + 512, &s, sizeof(s));
	memcpy(mem + 512 + 16, &s, sizeof(s));
	elem_add(&e, 0, 16, false);
	elem_add(&e, 512, 32, false);
	elem_add(&e, 4096, 1, true);
	assert_int_equal(blk_req_parse(&e, &r), 0);
	assert_int_equal(blk_req_segments(&r, segs, BLK_MAX_SEGS), 2);
	assert_int_equal(segs[1].sector, 8);
	assert_int_equal(segs[1].num_sectors, 16);
	assert_int_equal(blk_req_segments(&r, segs, 1), -EINVAL); /* more than allowed */
	r.out_len = 24;
	assert_int_equal(blk_req_segments(&r, segs, BLK_MAX_SEGS), -EINVAL); /* not whole segments */
	r.out_len = 0;
	assert_int_equal(blk_req_segments(&r, segs, BLK_MAX_SEGS), -EINVAL);
}

static void test_direct_align(void **state)
{
	unsigned a = 0;

	assert_int_equal(blk_direct_align(512, &a), 0);
	assert_int_equal(a, 512);
	assert_int_equal(blk_direct_align(4096, &a), 0);
	assert_int_equal(a, 4096);
	/* Below a sector: requests come in sectors anyway. */
	assert_int_equal(blk_direct_align(1, &a), 0);
	assert_int_equal(a, 512);
	assert_int_equal(blk_direct_align(BLK_DIRECT_ALIGN_MAX, &a), 0);
	a = 7;
	assert_int_equal(blk_direct_align(0, &a), -EOPNOTSUPP);
	assert_int_equal(blk_direct_align(3072, &a), -EINVAL);
	assert_int_equal(blk_direct_align(BLK_DIRECT_ALIGN_MAX * 2, &a), -EINVAL);
	assert_int_equal(a, 7); /* untouched on failure */
}

static void test_volume_aligned(void **state)
{
	struct blk_volume v;

	blk_volume_init(&v);
	/* Not opened, or buffered: a sector. */
	assert_true(blk_volume_aligned(&v, 512, 512));
	assert_false(blk_volume_aligned(&v, 100, 512));
	v.align = 4096;
	assert_true(blk_volume_aligned(&v, 0, 4096));
	assert_true(blk_volume_aligned(&v, UINT64_C(1) << 40, 1 << 20));
	assert_false(blk_volume_aligned(&v, 512, 4096));     /* offset */
	assert_false(blk_volume_aligned(&v, 4096, 512));     /* length */
	assert_false(blk_volume_aligned(&v, 4096, 4096 + 512));
	assert_true(blk_volume_aligned(&v, 8192, 0));
}

/* A regular file in dir opened with direct: O_DIRECT and the file system's alignment, or an error
 * that names O_DIRECT. Returns false when the file system has no O_DIRECT. */
static bool check_open_direct(const char *dir)
{
	char path[256], err[512];
	struct blk_volume v;
	bool supported = true;
	int fd;

	snprintf(path, sizeof(path), "%s/ddtk-test-blk.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return false;
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	blk_volume_init(&v);
	snprintf(v.path, sizeof(v.path), "%s", path);
	v.direct = true;
	v.offset = 65536;
	if (blk_volume_open(&v, err, sizeof(err)) < 0) {
		assert_non_null(strstr(err, "O_DIRECT"));
		assert_int_equal(v.fd, -1);
		supported = false;
		goto out;
	}
	assert_true(fcntl(v.fd, F_GETFL) & O_DIRECT);
	assert_true(v.align >= 512 && v.align <= BLK_DIRECT_ALIGN_MAX && (v.align & (v.align - 1)) == 0);
	assert_true(v.mem_align >= BLK_DIRECT_MEM_ALIGN && v.mem_align >= v.align);
	assert_int_equal(v.size, (1 << 20) - 65536);
	blk_volume_close(&v);
	/* An offset or size that is not a multiple of the alignment is refused at open. */
	if (v.align > 512) {
		v.offset = 512;
		v.size = 0;
		assert_int_equal(blk_volume_open(&v, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "multiples of"));
		assert_int_equal(v.fd, -1);
		v.offset = 0;
		v.size = v.align + 512;
		assert_int_equal(blk_volume_open(&v, err, sizeof(err)), -EINVAL);
	}
	/* Buffered: no O_DIRECT, a sector. */
	v.direct = false;
	v.offset = 512;
	v.size = 0;
	assert_int_equal(blk_volume_open(&v, err, sizeof(err)), 0);
	assert_false(fcntl(v.fd, F_GETFL) & O_DIRECT);
	assert_int_equal(v.align, 512);
	blk_volume_close(&v);
out:
	unlink(path);
	return supported;
}

static void test_volume_open_direct(void **state)
{
	/* A disk file system; tmpfs has O_DIRECT since Linux 6.6 but does not report its alignment
	 * (statx), so the page size is assumed there and the misaligned-offset refusal shows. */
	bool disk = check_open_direct("/var/tmp");
	bool shm = check_open_direct("/dev/shm");

	if (!disk && !shm)
		skip();
}

static void test_bounce_budget(void **state)
{
	struct blk_bounce_budget b = { .limit = 16384 };

	assert_int_equal(blk_bounce_reserve(&b, 8192), 0);
	assert_int_equal(blk_bounce_reserve(&b, 8192), 0);
	assert_int_equal(b.used, 16384);
	assert_int_equal(blk_bounce_reserve(&b, 512), -EAGAIN);   /* full: wait */
	assert_int_equal(blk_bounce_reserve(&b, 16896), -E2BIG);  /* never fits */
	assert_int_equal(blk_bounce_reserve(&b, UINT64_MAX), -E2BIG);
	blk_bounce_release(&b, 8192);
	assert_int_equal(blk_bounce_reserve(&b, 16384), -EAGAIN); /* the whole budget: only alone */
	blk_bounce_release(&b, 8192);
	assert_int_equal(b.used, 0);
	assert_int_equal(blk_bounce_reserve(&b, 16384), 0);
	blk_bounce_release(&b, 16384);
	blk_bounce_release(&b, 512); /* more back than taken must not wrap */
	assert_int_equal(b.used, 0);
	assert_int_equal(blk_bounce_reserve(&b, 512), 0);
	assert_int_equal(blk_bounce_reserve(&b, 0), 0);
}

static void test_bounce_size(void **state)
{
	assert_int_equal(blk_bounce_size(0), 4096);
	assert_int_equal(blk_bounce_size(512), 4096);
	assert_int_equal(blk_bounce_size(4096), 4096);
	assert_int_equal(blk_bounce_size(4608), 8192);
	assert_int_equal(blk_bounce_size(131072), 131072);
	assert_int_equal(blk_bounce_size(131072 + 512), 262144);
	assert_int_equal(blk_bounce_size(BLK_BOUNCE_BYTES_MAX), BLK_BOUNCE_BYTES_MAX);
	assert_int_equal(blk_bounce_size(BLK_BOUNCE_BYTES_MAX + 512), 0);
	assert_int_equal(blk_bounce_size(UINT64_MAX), 0);
}

static void test_bounce_cache(void **state)
{
	struct blk_bounce_cache c = { 0 };
	const uint64_t big = BLK_BOUNCE_CACHE_BYTES / 2;
	void *a, *b, *x;

	a = blk_bounce_get(&c, 4096);
	assert_non_null(a);
	assert_int_equal((uintptr_t)a % BLK_BOUNCE_ALIGN, 0);
	memset(a, 0x11, 4096);
	blk_bounce_put(&c, a, 4096);
	assert_int_equal(c.bytes, 4096);
	/* The same size gets the kept buffer back; another size does not. */
	b = blk_bounce_get(&c, 8192);
	assert_non_null(b);
	assert_ptr_not_equal(b, a);
	assert_ptr_equal(blk_bounce_get(&c, 4096), a);
	assert_int_equal(c.bytes, 0);
	blk_bounce_put(&c, a, 4096);
	blk_bounce_put(&c, b, 8192);
	assert_int_equal(c.bytes, 4096 + 8192);
	/* Sizes that are not bounce sizes are refused. */
	assert_null(blk_bounce_get(&c, 12288));
	assert_null(blk_bounce_get(&c, 0));
	assert_null(blk_bounce_get(&c, BLK_BOUNCE_BYTES_MAX * 2));
	blk_bounce_cache_clear(&c);
	assert_int_equal(c.bytes, 0);

	/* At most BLK_BOUNCE_CACHE_BYTES idle: what does not fit is freed (ASan would see a leak). */
	a = blk_bounce_get(&c, big);
	b = blk_bounce_get(&c, big);
	x = blk_bounce_get(&c, 4096);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(x);
	blk_bounce_put(&c, a, big);
	blk_bounce_put(&c, b, big);
	assert_int_equal(c.bytes, BLK_BOUNCE_CACHE_BYTES);
	blk_bounce_put(&c, x, 4096);
	assert_int_equal(c.bytes, BLK_BOUNCE_CACHE_BYTES);
	x = blk_bounce_get(&c, BLK_BOUNCE_BYTES_MAX);
	assert_non_null(x);
	blk_bounce_put(&c, x, BLK_BOUNCE_BYTES_MAX); /* larger than the whole cache: freed */
	assert_int_equal(c.bytes, BLK_BOUNCE_CACHE_BYTES);
	blk_bounce_put(&c, NULL, 4096);
	blk_bounce_cache_clear(&c);
	assert_int_equal(c.bytes, 0);
	assert_null(c.free[0]);
}

/* Builds a request of `type` whose data (len bytes at data_off in mem) is cut into descriptors at
 * the given lengths, with the header and the status byte sharing or not sharing descriptors. */
static void build_cut(struct vu_elem *e, uint32_t type, size_t data_off, const size_t *cuts, unsigned ncuts,
		      bool status_shared)
{
	bool in = type == VIRTIO_BLK_T_IN;
	size_t at = data_off;

	memset(e, 0, sizeof(*e));
	put_hdr(0, type, 0);
	elem_add(e, 0, 16, false);
	for (unsigned i = 0; i < ncuts; i++) {
		bool last = i + 1 == ncuts;

		/* The status byte right after the last piece of a READ's data, in the same descriptor. */
		elem_add(e, at, cuts[i] + (in && last && status_shared ? 1 : 0), in);
		at += cuts[i];
	}
	if (!in || !status_shared)
		elem_add(e, 8000, 1, true);
}

static void test_gather_scatter_cut_any_way(void **state)
{
	static uint8_t buf[4096];
	const size_t len = 2048, data_off = 1024;
	unsigned seed = 12345;

	for (unsigned round = 0; round < 2000; round++) {
		size_t cuts[64], left = len;
		unsigned n = 0;
		struct vu_elem e;
		struct blk_req r;
		bool status_shared = round & 1;

		/* Random pieces, single bytes and empty descriptors included. */
		while (left && n < 63) {
			size_t c = (size_t)(rand_r(&seed) % 5 == 0 ? rand_r(&seed) % 3 : 1 + rand_r(&seed) % 700);

			c = c > left ? left : c;
			cuts[n++] = c;
			left -= c;
		}
		if (left)
			cuts[n++] = left;

		/* WRITE: the pieces gather into one buffer in order. */
		for (size_t i = 0; i < len; i++)
			mem[data_off + i] = (uint8_t)(i * 7 + round);
		build_cut(&e, VIRTIO_BLK_T_OUT, data_off, cuts, n, false);
		assert_int_equal(blk_req_parse(&e, &r), 0);
		assert_int_equal(r.out_len, len);
		memset(buf, 0, sizeof(buf));
		assert_int_equal(blk_req_gather(&r, buf, len), 0);
		assert_memory_equal(buf, mem + data_off, len);
		assert_int_equal(blk_req_gather(&r, buf, len - 512), -EINVAL);
		assert_int_equal(blk_req_gather(&r, buf, len + 512), -EINVAL);

		/* READ: one buffer scatters into the pieces in order, up to the status byte and no further. */
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)(i * 13 + round);
		memset(mem + data_off, 0xee, len + 1);
		mem[8000] = 0xee;
		build_cut(&e, VIRTIO_BLK_T_IN, data_off, cuts, n, status_shared);
		assert_int_equal(blk_req_parse(&e, &r), 0);
		assert_int_equal(r.in_len, len);
		assert_int_equal(blk_req_scatter(&r, buf, len), 0);
		assert_memory_equal(mem + data_off, buf, len);
		assert_int_equal(*r.status, 0xee);  /* the status byte is not data */
		assert_int_equal(blk_req_scatter(&r, buf, len - 512), -EINVAL);
		assert_int_equal(blk_req_scatter(&r, buf, len + 512), -EINVAL);
	}
}

/* A READ's data may be empty or nothing but the status byte: nothing to copy, nothing written. */
static void test_scatter_empty(void **state)
{
	struct vu_elem e = { 0 };
	struct blk_req r;
	uint8_t buf[512] = { 0 };

	put_hdr(0, VIRTIO_BLK_T_IN, 0);
	elem_add(&e, 0, 16, false);
	elem_add(&e, 4096, 1, true);
	mem[4096] = 0x5a;
	assert_int_equal(blk_req_parse(&e, &r), 0);
	assert_int_equal(blk_req_scatter(&r, buf, 0), 0);
	assert_int_equal(blk_req_scatter(&r, buf, 512), -EINVAL);
	assert_int_equal(mem[4096], 0x5a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_volume_bounds),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_write),
		cmocka_unit_test(test_parse_header_split_and_status_shared),
		cmocka_unit_test(test_parse_no_status),
		cmocka_unit_test(test_parse_short_header),
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_direct_align),
		cmocka_unit_test(test_volume_aligned),
		cmocka_unit_test(test_volume_open_direct),
		cmocka_unit_test(test_bounce_budget),
		cmocka_unit_test(test_bounce_size),
		cmocka_unit_test(test_bounce_cache),
		cmocka_unit_test(test_gather_scatter_cut_any_way),
		cmocka_unit_test(test_scatter_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
