/* libvirt domain XML for ddtk's VMs: the driver domain (q35 + vIOMMU, its NIC and disk controller,
 * watchdog, pvpanic, virtio-serial ports) and the clients (shared memfd RAM for vhost-user). */
#pragma once

#include <stdbool.h>

#include "accel.h"
#include "config.h"

enum vm_role {
	VM_ROLE_DD,
	VM_ROLE_CLIENT,
	_VM_ROLE_LAST,
};

/* The virtio-serial port of the DD's control channel (bridge <-> ddtk-agent). */
#define VM_CONTROL_PORT_NAME "org.ddtk.control.0"
/* XML namespace of ddtk's <metadata> element in the domains it creates. */
#define VM_METADATA_NS "https://ddtk.dev/xmlns/domain/1"

struct vm_spec {
	const char *name;               /* libvirt domain name */
	const char *instance;
	const char *vm;                 /* "dd" or the client's name */
	enum vm_role role;
	enum vm_accel accel;            /* resolved: kvm or tcg */
	const char *emulator;           /* NULL or "": libvirt's default */
	unsigned memory_mib, vcpus;
	const char *kernel, *initrd, *cmdline;
	const char *console_log;        /* file the serial console is logged to */
	/* Client only: a vhost-user-blk socket for disk vda (NULL or "": none), its queue count. */
	const char *vhost_user_blk;
	unsigned vhost_user_blk_queues;
	/* Client only: a vhost-user-net socket for its NIC (NULL or "": none), its queue pairs and
	 * the NIC's MAC. */
	const char *vhost_user_net;
	unsigned vhost_user_net_queues;
	struct ddtk_mac mac;
	/* Driver domain only. */
	const struct ddtk_device *nic, *disk;
	const char *disk_image;         /* emulated disk */
	const char *watchdog_action;
};

/* The domain XML for spec, in *ret_xml (free() it). */
int vm_xml_build(const struct vm_spec *spec, char **ret_xml, struct ddtk_err *err);
const char *vm_role_name(enum vm_role role);
