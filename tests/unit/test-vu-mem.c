/* Unit tests of the memory table: what SET_MEM_TABLE may describe, and address translation at and
 * around every boundary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "vu-mem.h"

static struct vu_mem_table_msg msg;
static struct vu_mem mem;

static void region(unsigned i, uint64_t gpa, uint64_t size, uint64_t uva, uint64_t off)
{
	msg.regions[i] = (struct vu_mem_region_msg){ gpa, size, uva, off };
	if (msg.nregions < i + 1)
		msg.nregions = i + 1;
}

static int setup(void **state)
{
	memset(&msg, 0, sizeof(msg));
	memset(&mem, 0, sizeof(mem));
	return 0;
}

static void test_two_regions(void **state)
{
	static uint8_t low[4096], high[4096];

	region(0, 0, 4096, 0x10000, 0);
	region(1, 0x100000, 4096, 0x20000, 4096);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), 0);
	assert_int_equal(mem.nregions, 2);
	mem.regions[0].host = low;
	mem.regions[1].host = high;
	assert_ptr_equal(vu_mem_gpa_to_host(&mem, 0, 4096), low);
	assert_ptr_equal(vu_mem_gpa_to_host(&mem, 4095, 1), low + 4095);
	assert_null(vu_mem_gpa_to_host(&mem, 4095, 2));
	assert_null(vu_mem_gpa_to_host(&mem, 4096, 1));
	assert_ptr_equal(vu_mem_gpa_to_host(&mem, 0x100010, 16), high + 16);
	assert_null(vu_mem_gpa_to_host(&mem, 0x100000, 4097));
	assert_ptr_equal(vu_mem_uva_to_host(&mem, 0x20000, 4096), high);
	assert_null(vu_mem_uva_to_host(&mem, 0x1ffff, 2));
	assert_null(vu_mem_uva_to_host(&mem, 0x20000, UINT64_MAX));
}

static void test_partial(void **state)
{
	static uint8_t host[4096];
	uint64_t avail = 0;

	region(0, 0x1000, 4096, 0x10000, 0);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), 0);
	mem.regions[0].host = host;
	assert_ptr_equal(vu_mem_gpa_to_host_partial(&mem, 0x1800, &avail), host + 0x800);
	assert_int_equal(avail, 0x800);
	assert_null(vu_mem_gpa_to_host_partial(&mem, 0xfff, &avail));
	assert_null(vu_mem_gpa_to_host_partial(&mem, 0x2000, &avail));
}

static void test_unmapped_region_translates_nothing(void **state)
{
	region(0, 0, 4096, 0x10000, 0);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), 0);
	assert_null(vu_mem_gpa_to_host(&mem, 0, 1));
}

static void test_overlap_gpa(void **state)
{
	region(0, 0, 8192, 0x10000, 0);
	region(1, 4096, 8192, 0x80000, 0);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), -EINVAL);
}

static void test_overlap_uva(void **state)
{
	region(0, 0, 8192, 0x10000, 0);
	region(1, 0x100000, 8192, 0x11000, 0);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), -EINVAL);
}

static void test_adjacent_is_fine(void **state)
{
	region(0, 0, 4096, 0x10000, 0);
	region(1, 4096, 4096, 0x11000, 0);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), 0);
}

static void test_wraps(void **state)
{
	region(0, UINT64_MAX - 4095, 8192, 0x10000, 0);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), -EINVAL);
	region(0, 0, 8192, UINT64_MAX - 10, 0);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), -EINVAL);
	region(0, 0, 8192, 0x10000, UINT64_MAX - 10);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), -EINVAL);
}

static void test_zero_size(void **state)
{
	region(0, 0, 0, 0x10000, 0);
	assert_int_equal(vu_mem_from_msg(&msg, &mem), -EINVAL);
}

static void test_region_count(void **state)
{
	msg.nregions = 0;
	assert_int_equal(vu_mem_from_msg(&msg, &mem), -EINVAL);
	msg.nregions = VU_MAX_MEM_REGIONS + 1;
	assert_int_equal(vu_mem_from_msg(&msg, &mem), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_two_regions, setup),
		cmocka_unit_test_setup(test_partial, setup),
		cmocka_unit_test_setup(test_unmapped_region_translates_nothing, setup),
		cmocka_unit_test_setup(test_overlap_gpa, setup),
		cmocka_unit_test_setup(test_overlap_uva, setup),
		cmocka_unit_test_setup(test_adjacent_is_fine, setup),
		cmocka_unit_test_setup(test_wraps, setup),
		cmocka_unit_test_setup(test_zero_size, setup),
		cmocka_unit_test_setup(test_region_count, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
