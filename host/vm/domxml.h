/* libvirt domain XML for ddtk's VMs: the driver domain (q35 + vIOMMU, its NIC and disk controller,
 * watchdog, pvpanic, virtio-serial ports) and the clients (shared memfd RAM for vhost-user). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "accel.h"
#include "config.h"
#include "ddctl-proto.h"

enum vm_role {
	VM_ROLE_DD,
	VM_ROLE_CLIENT,
	_VM_ROLE_LAST,
};

/* The virtio-serial port of the DD's control channel (bridge <-> ddtk-agent). */
#define VM_CONTROL_PORT_NAME "org.ddtk.control.0"
/* XML namespace of ddtk's <metadata> element in the domains it creates. */
#define VM_METADATA_NS "https://ddtk.dev/xmlns/domain/1"
#define VM_QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"

/* The driver domain's PCI layout when ddtk-bridge serves devices from it. A conventional
 * ivshmem-doorbell hot-plugged where libvirt would put it gets no space for its BAR2, so the layout
 * is explicit: a pci-bridge on the root bus (bus VM_DD_HOTPLUG_BUS behind it), behind which SeaBIOS
 * reserves a 64-bit prefetchable window (QEMU's pci-bridge.pref64-reserve). Not behind the
 * pcie-to-pci-bridge (VM_DD_PCI_BUS, kept for libvirt's own conventional devices): there Linux gives
 * the vIOMMU an MSI source-id range (bus 3..2) that QEMU's intel-iommu refuses ("invalid SVT_BUS"),
 * and no MSI-X interrupt of the devices would ever arrive. Slots 1..31 of the hot-plug bus are the bridge's: slot S for
 * session S, DDCTL_STATE_SLOT for the state device.
 * Everything behind the pci-bridge is one IOMMU group (conventional PCI cannot tell its
 * devices apart), and VFIO uses a group only when no device in it has another driver: the DD's
 * own devices (NIC, watchdog, a passed-through disk controller) therefore sit on the root bus,
 * each a group of its own, at fixed slots that libvirt's automatic root ports (slots 1, 2, ...)
 * do not reach. */
#define VM_DD_ROOT_BUS 0
#define VM_DD_PCI_BUS 2
#define VM_DD_HOTPLUG_BUS 3
#define VM_DD_HOTPLUG_BRIDGE_SLOT 0x1e  /* the pci-bridge's slot on VM_DD_ROOT_BUS */
/* A second pci-bridge like it for the devices of clients' further memory files (ddctl-proto.h),
 * slots 1..31 handed out by ddtk-bridge as they come. Its own IOMMU group; same window. */
#define VM_DD_MEM_BUS 4
#define VM_DD_MEM_BRIDGE_SLOT 0x1d
#define VM_DD_MEM_SLOTS 30
#define VM_DD_MEM_ANCHOR_SLOT 31        /* the second bridge's anchor (ddctl-proto.h) */
#define VM_DD_NIC_SLOT 0x10             /* e1000 or the passed-through NIC, on VM_DD_ROOT_BUS */
#define VM_DD_WATCHDOG_SLOT 0x11        /* i6300esb, on VM_DD_ROOT_BUS */
#define VM_DD_DISK_SLOT 0x12            /* a passed-through disk controller, on VM_DD_ROOT_BUS */
#define VM_HOTPLUG_WINDOW_MIN (UINT64_C(1) << 30)
/* MSI-X vectors of one ivshmem device: a session's, one per virtqueue of its vhost-user device
 * (the peer vectors that carry its calls); the state device's, one per virtqueue of all sessions
 * (the kicks, ddctl-proto.h). */
#define VM_IVSHMEM_VECTORS_MAX DDCTL_KICK_VECTORS_MAX

struct vm_spec {
	const char *name;               /* libvirt domain name */
	const char *instance;
	const char *vm;                 /* "dd" or the client's name */
	enum vm_role role;
	enum vm_accel accel;            /* resolved: kvm or tcg */
	const char *emulator;           /* NULL or "": libvirt's default */
	unsigned memory_mib, vcpus;
	unsigned numa_nodes;            /* clients: > 1 splits memory and vCPUs into that many nodes */
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
	const char *nic_tap;            /* emulated NIC: an existing host tap; NULL or "": user network */
	const char *disk_image;         /* emulated disk */
	const char *watchdog_action;
	/* Bytes of the hot-plug bridge's 64-bit prefetchable window (vm_dd_hotplug_window()); 0: no
	 * hot-plug bridge, libvirt's own PCI layout. */
	uint64_t hotplug_window;
};

/* The domain XML for spec, in *ret_xml (free() it). */
int vm_xml_build(const struct vm_spec *spec, char **ret_xml, struct ddtk_err *err);
/* The window the DD's hot-plug bridge needs for every ivshmem device ddtk-bridge may plug into it:
 * the next power of two >= the sum, over the clients' DD-served devices (volume, dd-nic), of the
 * client's memory rounded up to a power of two (BAR2 maps all of it), plus DDCTL_STATE_SIZE; at
 * least VM_HOTPLUG_WINDOW_MIN. 0 when cfg does not use the bridge. */
uint64_t vm_dd_hotplug_window(const struct ddtk_config *cfg);
/* The <shmem> element of session `session`'s ivshmem-doorbell device (0: the state device), for
 * ddtk-bridge to hot-plug into the DD (virDomainAttachDeviceFlags): name ddtk-sS, alias ua-ddtk-sS,
 * the ivshmem server at server_path, `vectors` MSI-X vectors (1..VM_IVSHMEM_VECTORS_MAX; a
 * session's: its virtqueues; the state device's: every session's virtqueues) with ioeventfd, at VM_DD_HOTPLUG_BUS slot S (state device: DDCTL_STATE_SLOT).
 * -ERANGE for a session above DDCTL_SESSIONS_MAX or vectors out of range. */
int vm_xml_ivshmem(unsigned session, const char *server_path, unsigned vectors, char **ret_xml,
		   struct ddtk_err *err);
/* The <shmem> element of file `file` (1..DDCTL_MEM_FILES_MAX-1) of session `session`'s memory: an
 * ivshmem-doorbell device (one vector, unused) named ddtk-sS-mK, alias ua-ddtk-sS-mK, at slot
 * `slot` (1..VM_DD_MEM_SLOTS) of VM_DD_MEM_BUS; session 0, file 0: the anchor, ddtk-anchor at
 * VM_DD_MEM_ANCHOR_SLOT (slot ignored). -ERANGE for numbers out of range. */
int vm_xml_ivshmem_mem(unsigned session, unsigned file, unsigned slot, const char *server_path, char **ret_xml,
		       struct ddtk_err *err);
const char *vm_role_name(enum vm_role role);
