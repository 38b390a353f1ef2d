/* Unit tests of ddtk-blk's pure parts: volume bounds (no request may leave its volume, whatever
 * the arithmetic), sizes on the command line, and request parsing from descriptor chains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
