/* Writes libvirt domain XML with libxml2's xmlTextWriter, which does the escaping. */
#include "domxml.h"

#include <errno.h>
#include <inttypes.h>
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"
#include "ddctl-proto.h"

const char *vm_role_name(enum vm_role role)
{
	switch (role) {
	case VM_ROLE_DD: return "dd";
	case VM_ROLE_CLIENT: return "client";
	case _VM_ROLE_LAST: break;
	}
	return "invalid";
}

/* Every writer call returns < 0 on failure; they are chained through this so that a failure
 * anywhere is seen once at the end. */
struct xw {
	xmlTextWriterPtr w;
	int failed;
};

static void xw_check(struct xw *x, int rc)
{
	if (rc < 0)
		x->failed = 1;
}

static void xw_start(struct xw *x, const char *elem)
{
	xw_check(x, xmlTextWriterStartElement(x->w, BAD_CAST elem));
}

static void xw_end(struct xw *x)
{
	xw_check(x, xmlTextWriterEndElement(x->w));
}

static void xw_attr(struct xw *x, const char *name, const char *value)
{
	xw_check(x, xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST value));
}

/* A PCI address field in libvirt's hexadecimal form, zero-padded to `width` digits. */
static void xw_attr_hex(struct xw *x, const char *name, int width, unsigned v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "0x%0*x", width, v);
	xw_attr(x, name, buf);
}

static void xw_text_elem(struct xw *x, const char *elem, const char *text)
{
	xw_check(x, xmlTextWriterWriteElement(x->w, BAD_CAST elem, BAD_CAST text));
}

/* Ends the attribute list of xw_empty(): a typed null pointer, as varargs need. */
#define XW_END ((const char *)NULL)

/* <elem a1='v1' .../> with attributes given as name/value pairs ending with XW_END. */
static void xw_empty(struct xw *x, const char *elem, ...) __attribute__((sentinel));
static void xw_empty(struct xw *x, const char *elem, ...)
{
	va_list ap;
	xw_start(x, elem);
	va_start(ap, elem);
	for (const char *name; (name = va_arg(ap, const char *));)
		xw_attr(x, name, va_arg(ap, const char *));
	va_end(ap);
	xw_end(x);
}

/* <address type='pci' .../> of a device on bus `bus`, slot `slot`, function 0. */
static void write_pci_address(struct xw *x, unsigned bus, unsigned slot)
{
	xw_start(x, "address");
	xw_attr(x, "type", "pci");
	xw_attr_hex(x, "domain", 4, 0);
	xw_attr_hex(x, "bus", 2, bus);
	xw_attr_hex(x, "slot", 2, slot);
	xw_attr_hex(x, "function", 1, 0);
	xw_end(x);
}

static void write_pci_controller(struct xw *x, unsigned index, const char *model, int bus, unsigned slot)
{
	char num[16];
	snprintf(num, sizeof(num), "%u", index);
	xw_start(x, "controller");
	xw_attr(x, "type", "pci");
	xw_attr(x, "index", num);
	xw_attr(x, "model", model);
	if (bus >= 0)
		write_pci_address(x, (unsigned)bus, slot);
	xw_end(x);
}

/* The hot-plug bridges (see VM_DD_HOTPLUG_BUS in domxml.h). Indexes 0-4 are taken here; the root
 * ports libvirt adds for the virtio devices come after them. */
static void write_hotplug_controllers(struct xw *x)
{
	write_pci_controller(x, 0, "pcie-root", -1, 0);
	write_pci_controller(x, 1, "pcie-root-port", -1, 0);
	write_pci_controller(x, VM_DD_PCI_BUS, "pcie-to-pci-bridge", 1, 0);
	write_pci_controller(x, VM_DD_HOTPLUG_BUS, "pci-bridge", VM_DD_ROOT_BUS, VM_DD_HOTPLUG_BRIDGE_SLOT);
	write_pci_controller(x, VM_DD_MEM_BUS, "pci-bridge", VM_DD_ROOT_BUS, VM_DD_MEM_BRIDGE_SLOT);
}

/* A host PCI device passed through; guest_slot > 0: at that slot of the DD's root bus. */
static void write_hostdev(struct xw *x, const struct ddtk_pci_addr *a, unsigned guest_slot)
{
	xw_start(x, "hostdev");
	xw_attr(x, "mode", "subsystem");
	xw_attr(x, "type", "pci");
	/* managed: libvirt detaches the device from its host driver and binds vfio-pci. */
	xw_attr(x, "managed", "yes");
	xw_start(x, "source");
	xw_start(x, "address");
	xw_attr_hex(x, "domain", 4, a->domain);
	xw_attr_hex(x, "bus", 2, a->bus);
	xw_attr_hex(x, "slot", 2, a->slot);
	xw_attr_hex(x, "function", 1, a->function);
	xw_end(x);
	xw_end(x);
	if (guest_slot)
		write_pci_address(x, VM_DD_ROOT_BUS, guest_slot);
	xw_end(x);
}

/* A virtio-serial port whose host end is a Unix socket; libvirt picks the socket's path (under
 * its own channel folder, reachable by the QEMU user) and the live XML tells it. */
static void write_channel(struct xw *x, const char *port)
{
	xw_start(x, "channel");
	xw_attr(x, "type", "unix");
	xw_empty(x, "source", "mode", "bind", XW_END);
	xw_empty(x, "target", "type", "virtio", "name", port, XW_END);
	xw_end(x);
}

static void write_dd_devices(struct xw *x, const struct vm_spec *s)
{
	/* With the hot-plug bridge, the DD's own PCI devices get fixed slots on the root bus: libvirt
	 * would put a conventional one (e1000, i6300esb, a host's integrated SATA controller) behind
	 * the pcie-to-pci-bridge, into the ivshmem devices' IOMMU group, which VFIO then refuses
	 * (and onto the hot-plug bus, whose slots are the bridge's, once that one fills). */
	bool fixed_slots = s->hotplug_window > 0;
	if (s->disk->kind == DDTK_DEVICE_HOSTDEV) {
		write_hostdev(x, &s->disk->addr, fixed_slots ? VM_DD_DISK_SLOT : 0);
	} else {
		xw_start(x, "disk");
		xw_attr(x, "type", "file");
		xw_attr(x, "device", "disk");
		/* writeback, not cache=none: O_DIRECT fails where the image sits on tmpfs; the
		 * guest's flushes still reach the image's storage. */
		xw_empty(x, "driver", "name", "qemu", "type", "raw", "cache", "writeback",
			 "discard", "unmap", XW_END);
		xw_empty(x, "source", "file", s->disk_image, XW_END);
		xw_empty(x, "target", "dev", "sda", "bus", "sata", XW_END);
		xw_end(x);
	}
	if (fixed_slots)
		write_hotplug_controllers(x);
	if (s->nic->kind == DDTK_DEVICE_HOSTDEV) {
		write_hostdev(x, &s->nic->addr, fixed_slots ? VM_DD_NIC_SLOT : 0);
	} else {
		xw_start(x, "interface");
		if (s->nic_tap && s->nic_tap[0]) {
			/* A tap the host set up (and keeps): libvirt opens it, changes nothing on it. */
			xw_attr(x, "type", "ethernet");
			xw_empty(x, "target", "dev", s->nic_tap, "managed", "no", XW_END);
		} else {
			xw_attr(x, "type", "user");
		}
		xw_empty(x, "model", "type", "e1000", XW_END);
		if (fixed_slots)
			write_pci_address(x, VM_DD_ROOT_BUS, VM_DD_NIC_SLOT);
		xw_end(x);
	}
	write_channel(x, VM_CONTROL_PORT_NAME);
	xw_start(x, "watchdog");
	xw_attr(x, "model", "i6300esb");
	xw_attr(x, "action", s->watchdog_action);
	if (fixed_slots)
		write_pci_address(x, VM_DD_ROOT_BUS, VM_DD_WATCHDOG_SLOT);
	xw_end(x);
	/* model isa: QEMU's pvpanic on the ISA bus, driven by the guest's pvpanic-mmio. */
	xw_empty(x, "panic", "model", "isa", XW_END);
	/* The vIOMMU lets the DD's backends bind ivshmem devices with VFIO (DESIGN.md, data path). */
	xw_start(x, "iommu");
	xw_attr(x, "model", "intel");
	xw_empty(x, "driver", "intremap", "on", XW_END);
	xw_end(x);
}

/* A virtio-blk disk served by a vhost-user back-end. QEMU reconnects when the back-end restarts
 * and re-sends what was in flight (inflight tracking), so the guest sees a pause, not an error. */
static void write_vhost_user_disk(struct xw *x, const struct vm_spec *s)
{
	char queues[16];

	snprintf(queues, sizeof(queues), "%u", s->vhost_user_blk_queues ? s->vhost_user_blk_queues : 1);
	xw_start(x, "disk");
	xw_attr(x, "type", "vhostuser");
	xw_attr(x, "device", "disk");
	xw_empty(x, "driver", "name", "qemu", "type", "raw", "queues", queues, XW_END);
	xw_start(x, "source");
	xw_attr(x, "type", "unix");
	xw_attr(x, "path", s->vhost_user_blk);
	xw_empty(x, "reconnect", "enabled", "yes", "timeout", "1", XW_END);
	xw_end(x);
	xw_empty(x, "target", "dev", "vda", "bus", "virtio", XW_END);
	xw_end(x);
}

/* A virtio-net NIC served by a vhost-user back-end (ddtk-net). QEMU is the socket's client and
 * reconnects when the back-end restarts; the guest sees the link drop and come back. */
static void write_vhost_user_nic(struct xw *x, const struct vm_spec *s)
{
	char mac[DDTK_MAC_STR_LEN], queues[16];

	snprintf(queues, sizeof(queues), "%u", s->vhost_user_net_queues ? s->vhost_user_net_queues : 1);
	xw_start(x, "interface");
	xw_attr(x, "type", "vhostuser");
	xw_empty(x, "mac", "address", ddtk_mac_format(&s->mac, mac), XW_END);
	xw_start(x, "source");
	xw_attr(x, "type", "unix");
	xw_attr(x, "path", s->vhost_user_net);
	xw_attr(x, "mode", "client");
	xw_empty(x, "reconnect", "enabled", "yes", "timeout", "1", XW_END);
	xw_end(x);
	xw_empty(x, "model", "type", "virtio", XW_END);
	/* 256 entries per ring, QEMU's default for vhost-user, written out so that the back-end's
	 * ring limit is visible here. */
	xw_empty(x, "driver", "queues", queues, "rx_queue_size", "256", "tx_queue_size", "256", XW_END);
	xw_end(x);
}

static void write_domain(struct xw *x, const struct vm_spec *s)
{
	char num[32];
	bool hotplug = s->role == VM_ROLE_DD && s->hotplug_window > 0;

	xw_start(x, "domain");
	xw_attr(x, "type", vm_accel_domain_type(s->accel));
	if (hotplug)
		xw_attr(x, "xmlns:qemu", VM_QEMU_NS);
	xw_text_elem(x, "name", s->name);

	xw_start(x, "metadata");
	xw_check(x, xmlTextWriterStartElementNS(x->w, BAD_CAST "ddtk", BAD_CAST "vm", BAD_CAST VM_METADATA_NS));
	xw_attr(x, "instance", s->instance);
	xw_attr(x, "name", s->vm);
	xw_attr(x, "role", vm_role_name(s->role));
	xw_end(x);
	xw_end(x);

	snprintf(num, sizeof(num), "%u", s->memory_mib);
	xw_start(x, "memory");
	xw_attr(x, "unit", "MiB");
	xw_check(x, xmlTextWriterWriteString(x->w, BAD_CAST num));
	xw_end(x);
	snprintf(num, sizeof(num), "%u", s->vcpus);
	xw_text_elem(x, "vcpu", num);

	if (s->role == VM_ROLE_CLIENT) {
		/* vhost-user back-ends map the client's RAM: it must be a shareable memfd. */
		xw_start(x, "memoryBacking");
		xw_empty(x, "source", "type", "memfd", XW_END);
		xw_empty(x, "access", "mode", "shared", XW_END);
		xw_end(x);
	}

	xw_start(x, "os");
	xw_start(x, "type");
	xw_attr(x, "arch", "x86_64");
	xw_attr(x, "machine", "q35");
	xw_check(x, xmlTextWriterWriteString(x->w, BAD_CAST "hvm"));
	xw_end(x);
	xw_text_elem(x, "kernel", s->kernel);
	xw_text_elem(x, "initrd", s->initrd);
	xw_text_elem(x, "cmdline", s->cmdline);
	xw_end(x);

	xw_start(x, "features");
	xw_empty(x, "acpi", XW_END);
	if (s->role == VM_ROLE_DD)
		/* Interrupt remapping needs the split irqchip. */
		xw_empty(x, "ioapic", "driver", "qemu", XW_END);
	xw_end(x);
	if (s->accel == VM_ACCEL_KVM || s->numa_nodes > 1) {
		xw_start(x, "cpu");
		if (s->accel == VM_ACCEL_KVM)
			xw_attr(x, "mode", "host-passthrough");
		if (s->numa_nodes > 1) {
			/* Each node's memory is a memory backend of its own: one memfd per node. */
			xw_start(x, "numa");
			for (unsigned i = 0; i < s->numa_nodes; i++) {
				unsigned per = s->vcpus / s->numa_nodes, first = i * per;
				unsigned last = i + 1 == s->numa_nodes ? s->vcpus - 1 : first + per - 1;
				char id[16], cpus[32], mem[32];
				snprintf(id, sizeof(id), "%u", i);
				snprintf(cpus, sizeof(cpus), "%u-%u", first, last);
				snprintf(mem, sizeof(mem), "%u", s->memory_mib / s->numa_nodes);
				xw_empty(x, "cell", "id", id, "cpus", cpus, "memory", mem, "unit", "MiB", XW_END);
			}
			xw_end(x);
		}
		xw_end(x);
	}
	xw_empty(x, "clock", "offset", "utc", XW_END);
	/* A guest that powers off, reboots or panics stops: ddtk (later its supervisor) decides what
	 * comes next, and a failed boot ends at once instead of looping. */
	xw_text_elem(x, "on_poweroff", "destroy");
	xw_text_elem(x, "on_reboot", "destroy");
	xw_text_elem(x, "on_crash", "destroy");

	xw_start(x, "devices");
	if (s->emulator && s->emulator[0])
		xw_text_elem(x, "emulator", s->emulator);
	if (s->role == VM_ROLE_DD)
		write_dd_devices(x, s);
	if (s->role == VM_ROLE_CLIENT && s->vhost_user_blk && s->vhost_user_blk[0])
		write_vhost_user_disk(x, s);
	if (s->role == VM_ROLE_CLIENT && s->vhost_user_net && s->vhost_user_net[0])
		write_vhost_user_nic(x, s);
	write_channel(x, AGENT_PORT_NAME);
	xw_start(x, "serial");
	xw_attr(x, "type", "pty");
	xw_empty(x, "log", "file", s->console_log, "append", "off", XW_END);
	xw_empty(x, "target", "port", "0", XW_END);
	xw_end(x);
	xw_start(x, "console");
	xw_attr(x, "type", "pty");
	xw_empty(x, "target", "type", "serial", "port", "0", XW_END);
	xw_end(x);
	xw_empty(x, "controller", "type", "usb", "model", "none", XW_END);
	xw_empty(x, "memballoon", "model", "none", XW_END);
	xw_end(x); /* devices */
	if (hotplug) {
		/* SeaBIOS sizes a bridge's windows by the devices present at boot; this reserve is what
		 * gives the BAR2 of a device hot-plugged later its space. libvirt has no XML for it. */
		char reserve[64];
		snprintf(reserve, sizeof(reserve), "pci-bridge.pref64-reserve=%" PRIu64, s->hotplug_window);
		xw_check(x, xmlTextWriterStartElementNS(x->w, BAD_CAST "qemu", BAD_CAST "commandline", NULL));
		xw_check(x, xmlTextWriterStartElementNS(x->w, BAD_CAST "qemu", BAD_CAST "arg", NULL));
		xw_attr(x, "value", "-global");
		xw_end(x);
		xw_check(x, xmlTextWriterStartElementNS(x->w, BAD_CAST "qemu", BAD_CAST "arg", NULL));
		xw_attr(x, "value", reserve);
		xw_end(x);
		xw_end(x);
	}
	xw_end(x); /* domain */
}

/* Runs write(x, arg) on a fresh indenting writer and hands back the text. */
static int xml_write(void (*write)(struct xw *x, const void *arg), const void *arg, const char *what,
		     char **ret_xml, struct ddtk_err *err)
{
	xmlBufferPtr buf = xmlBufferCreate();
	if (!buf)
		return ddtk_err_set(err, -ENOMEM, "out of memory");
	struct xw x = { .w = xmlNewTextWriterMemory(buf, 0) };
	if (!x.w) {
		xmlBufferFree(buf);
		return ddtk_err_set(err, -ENOMEM, "out of memory");
	}
	xmlTextWriterSetIndent(x.w, 1);
	xmlTextWriterSetIndentString(x.w, BAD_CAST "  ");
	write(&x, arg);
	xw_check(&x, xmlTextWriterEndDocument(x.w));
	xmlFreeTextWriter(x.w);

	int r = 0;
	if (x.failed)
		r = ddtk_err_set(err, -EINVAL, "cannot write the XML of %s (invalid characters?)", what);
	else if (!(*ret_xml = strdup((const char *)xmlBufferContent(buf))))
		r = ddtk_err_set(err, -ENOMEM, "out of memory");
	xmlBufferFree(buf);
	return r;
}

static void write_domain_cb(struct xw *x, const void *arg)
{
	write_domain(x, arg);
}

int vm_xml_build(const struct vm_spec *spec, char **ret_xml, struct ddtk_err *err)
{
	if (spec->role == VM_ROLE_DD && (!spec->nic || !spec->disk || !spec->watchdog_action ||
					 (spec->disk->kind == DDTK_DEVICE_EMULATED && !spec->disk_image)))
		return ddtk_err_set(err, -EINVAL, "driver domain spec lacks its devices");
	return xml_write(write_domain_cb, spec, spec->name, ret_xml, err);
}

static uint64_t pow2_ceil(uint64_t x)
{
	uint64_t p = 1;
	while (p < x)
		p <<= 1;
	return p;
}

uint64_t vm_dd_hotplug_window(const struct ddtk_config *cfg)
{
	if (!ddtk_config_uses_bridge(cfg))
		return 0;
	/* Memory is at most DDTK_MEMORY_MIB_MAX (2^40 bytes) per client and there are at most
	 * DDCTL_SESSIONS_MAX devices: the sum stays far below 2^63. */
	uint64_t sum = DDCTL_STATE_SIZE;
	for (unsigned i = 0; i < cfg->n_clients; i++) {
		const struct ddtk_client_config *c = &cfg->clients[i];
		uint64_t bar2 = pow2_ceil((uint64_t)c->memory_mib << 20);
		sum += (c->volume_mib ? bar2 : 0) + (c->dd_nic ? bar2 : 0);
	}
	uint64_t window = pow2_ceil(sum);
	return window < VM_HOTPLUG_WINDOW_MIN ? VM_HOTPLUG_WINDOW_MIN : window;
}

struct ivshmem_spec {
	unsigned session, vectors;
	unsigned file, slot;             /* file > 0: a further memory file's device, at slot of VM_DD_MEM_BUS */
	const char *server_path;
};

static void write_ivshmem(struct xw *x, const void *arg)
{
	const struct ivshmem_spec *is = arg;
	char name[32], alias[40], vectors[16];
	if (is->file && !is->session)
		snprintf(name, sizeof(name), "ddtk-anchor");
	else if (is->file)
		snprintf(name, sizeof(name), "ddtk-s%u-m%u", is->session, is->file);
	else
		snprintf(name, sizeof(name), "ddtk-s%u", is->session);
	snprintf(alias, sizeof(alias), "ua-%s", name);
	snprintf(vectors, sizeof(vectors), "%u", is->vectors);
	xw_start(x, "shmem");
	xw_attr(x, "name", name);
	xw_empty(x, "model", "type", "ivshmem-doorbell", XW_END);
	/* The bridge is the ivshmem server: it hands QEMU the client's RAM as BAR2 and the kick and
	 * call eventfds as vectors. */
	xw_empty(x, "server", "path", is->server_path, XW_END);
	xw_empty(x, "msi", "vectors", vectors, "ioeventfd", "on", XW_END);
	xw_empty(x, "alias", "name", alias, XW_END);
	if (is->file)
		write_pci_address(x, VM_DD_MEM_BUS, is->slot);
	else
		write_pci_address(x, VM_DD_HOTPLUG_BUS, is->session == 0 ? DDCTL_STATE_SLOT : is->session);
	xw_end(x);
}

int vm_xml_ivshmem(unsigned session, const char *server_path, unsigned vectors, char **ret_xml,
		   struct ddtk_err *err)
{
	if (session > DDCTL_SESSIONS_MAX || vectors < 1 || vectors > VM_IVSHMEM_VECTORS_MAX)
		return ddtk_err_set(err, -ERANGE, "ivshmem device of session %u with %u vectors: out of range "
				    "(sessions 0-%d, vectors 1-%d)", session, vectors, DDCTL_SESSIONS_MAX,
				    VM_IVSHMEM_VECTORS_MAX);
	if (!server_path || server_path[0] != '/')
		return ddtk_err_set(err, -EINVAL, "ivshmem device of session %u: the server's path must be absolute",
				    session);
	struct ivshmem_spec is = { .session = session, .vectors = vectors, .server_path = server_path };
	return xml_write(write_ivshmem, &is, "an ivshmem device", ret_xml, err);
}

int vm_xml_ivshmem_mem(unsigned session, unsigned file, unsigned slot, const char *server_path, char **ret_xml,
		       struct ddtk_err *err)
{
	bool anchor = session == 0 && file == 0;
	if (anchor)
		slot = VM_DD_MEM_ANCHOR_SLOT;
	else if (session < 1 || session > DDCTL_SESSIONS_MAX || file < 1 || file >= DDCTL_MEM_FILES_MAX || slot < 1 ||
	    slot > VM_DD_MEM_SLOTS)
		return ddtk_err_set(err, -ERANGE, "memory device %u of session %u at slot %u: out of range (sessions "
				    "1-%d, files 1-%d, slots 1-%d)", file, session, slot, DDCTL_SESSIONS_MAX,
				    DDCTL_MEM_FILES_MAX - 1, VM_DD_MEM_SLOTS);
	if (!server_path || server_path[0] != '/')
		return ddtk_err_set(err, -EINVAL, "memory device %u of session %u: the server's path must be absolute",
				    file, session);
	/* file marks a device behind the second bridge: the anchor's is any non-zero. */
	struct ivshmem_spec is = { .session = session, .vectors = 1, .file = anchor ? UINT32_MAX : file, .slot = slot,
				   .server_path = server_path };
	return xml_write(write_ivshmem, &is, "an ivshmem device", ret_xml, err);
}
