/* Accelerator setting: parsing, and resolving `auto` from what the host offers. */
#include "accel.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const accel_names[_VM_ACCEL_LAST] = {
	[VM_ACCEL_AUTO] = "auto",
	[VM_ACCEL_KVM] = "kvm",
	[VM_ACCEL_TCG] = "tcg",
};

int vm_accel_parse(const char *s, enum vm_accel *ret_accel)
{
	for (int i = 0; i < _VM_ACCEL_LAST; i++)
		if (strcmp(s, accel_names[i]) == 0) {
			*ret_accel = (enum vm_accel)i;
			return 0;
		}
	return -EINVAL;
}

const char *vm_accel_name(enum vm_accel accel)
{
	return accel >= 0 && accel < _VM_ACCEL_LAST ? accel_names[accel] : "invalid";
}

static bool path_exists(const char *root, const char *path, int mode)
{
	char p[4096];
	if (snprintf(p, sizeof(p), "%s%s", strcmp(root, "/") == 0 ? "" : root, path) >= (int)sizeof(p))
		return false;
	return access(p, mode) == 0;
}

int vm_accel_resolve(enum vm_accel setting, const char *root, enum vm_accel *ret_accel)
{
	bool kvm_usable = path_exists(root, "/dev/kvm", R_OK | W_OK);
	/* kvm_pvm is a software implementation of the KVM interface: usable, but so slow for stock
	 * guest kernels that TCG is the faster choice. */
	bool kvm_hardware = kvm_usable && !path_exists(root, "/sys/module/kvm_pvm", F_OK);

	switch (setting) {
	case VM_ACCEL_AUTO:
		*ret_accel = kvm_hardware ? VM_ACCEL_KVM : VM_ACCEL_TCG;
		return 0;
	case VM_ACCEL_KVM:
		if (!kvm_usable)
			return -ENODEV;
		*ret_accel = VM_ACCEL_KVM;
		return 0;
	case VM_ACCEL_TCG:
		*ret_accel = VM_ACCEL_TCG;
		return 0;
	case _VM_ACCEL_LAST:
		break;
	}
	return -EINVAL;
}

const char *vm_accel_domain_type(enum vm_accel accel)
{
	return accel == VM_ACCEL_KVM ? "kvm" : "qemu";
}
