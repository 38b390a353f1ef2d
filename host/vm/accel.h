/* Choosing the accelerator for ddtk's VMs: KVM where /dev/kvm is hardware virtualization, TCG
 * elsewhere (a software PVM /dev/kvm, as on ddtk's build machines, crawls with stock kernels). */
#pragma once

enum vm_accel {
	VM_ACCEL_AUTO,
	VM_ACCEL_KVM,
	VM_ACCEL_TCG,
	_VM_ACCEL_LAST,
};

int vm_accel_parse(const char *s, enum vm_accel *ret_accel);
const char *vm_accel_name(enum vm_accel accel);
/* Resolves `auto` by looking at ROOT/dev/kvm and ROOT/sys/module/kvm_pvm (ROOT is "/" except in
 * tests). `kvm` without a usable /dev/kvm is -ENODEV. */
int vm_accel_resolve(enum vm_accel setting, const char *root, enum vm_accel *ret_accel);
/* The libvirt domain type for a resolved accelerator: "kvm" or "qemu". */
const char *vm_accel_domain_type(enum vm_accel accel);
