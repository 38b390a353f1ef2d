/* Unit tests of the accelerator choice, on fake root folders with and without /dev/kvm and the
 * kvm_pvm module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accel.h"

struct fake_root {
	char path[64];
};

static int remove_entry(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static void root_make(struct fake_root *r, int kvm, int pvm)
{
	snprintf(r->path, sizeof(r->path), "/tmp/ddtk-test-accel-XXXXXX");
	assert_non_null(mkdtemp(r->path));
	char p[128];
	if (kvm) {
		snprintf(p, sizeof(p), "%s/dev", r->path);
		assert_int_equal(mkdir(p, 0755), 0);
		snprintf(p, sizeof(p), "%s/dev/kvm", r->path);
		int fd = open(p, O_CREAT | O_WRONLY, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	if (pvm) {
		snprintf(p, sizeof(p), "%s/sys/module/kvm_pvm", r->path);
		char sys[128];
		snprintf(sys, sizeof(sys), "%s/sys", r->path);
		assert_int_equal(mkdir(sys, 0755), 0);
		snprintf(sys, sizeof(sys), "%s/sys/module", r->path);
		assert_int_equal(mkdir(sys, 0755), 0);
		assert_int_equal(mkdir(p, 0755), 0);
	}
}

static void root_remove(struct fake_root *r)
{
	nftw(r->path, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_parse(void **state)
{
	enum vm_accel a;
	assert_int_equal(vm_accel_parse("auto", &a), 0);
	assert_int_equal(a, VM_ACCEL_AUTO);
	assert_int_equal(vm_accel_parse("kvm", &a), 0);
	assert_int_equal(a, VM_ACCEL_KVM);
	assert_int_equal(vm_accel_parse("tcg", &a), 0);
	assert_int_equal(a, VM_ACCEL_TCG);
	assert_int_equal(vm_accel_parse("KVM", &a), -EINVAL);
	assert_int_equal(vm_accel_parse("", &a), -EINVAL);
	assert_string_equal(vm_accel_domain_type(VM_ACCEL_KVM), "kvm");
	assert_string_equal(vm_accel_domain_type(VM_ACCEL_TCG), "qemu");
}

static void test_auto(void **state)
{
	static const struct { int kvm, pvm; enum vm_accel want; } cases[] = {
		{ 1, 0, VM_ACCEL_KVM },  /* hardware virtualization */
		{ 1, 1, VM_ACCEL_TCG },  /* software PVM: stock kernels crawl on it */
		{ 0, 0, VM_ACCEL_TCG },  /* no /dev/kvm */
		{ 0, 1, VM_ACCEL_TCG },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake_root r = { .path = "" };
		root_make(&r, cases[i].kvm, cases[i].pvm);
		enum vm_accel a = _VM_ACCEL_LAST;
		int ret = vm_accel_resolve(VM_ACCEL_AUTO, r.path, &a);
		root_remove(&r);
		assert_int_equal(ret, 0);
		assert_int_equal(a, cases[i].want);
	}
}

static void test_explicit(void **state)
{
	struct fake_root r = { .path = "" };
	enum vm_accel a;
	root_make(&r, 0, 0);
	assert_int_equal(vm_accel_resolve(VM_ACCEL_KVM, r.path, &a), -ENODEV);
	assert_int_equal(vm_accel_resolve(VM_ACCEL_TCG, r.path, &a), 0);
	assert_int_equal(a, VM_ACCEL_TCG);
	root_remove(&r);
	/* Asked for explicitly, even a PVM /dev/kvm is used. */
	root_make(&r, 1, 1);
	assert_int_equal(vm_accel_resolve(VM_ACCEL_KVM, r.path, &a), 0);
	assert_int_equal(a, VM_ACCEL_KVM);
	root_remove(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_auto),
		cmocka_unit_test(test_explicit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
