/* Writes libvirt domain XML with libxml2's xmlTextWriter, which does the escaping. */
#include "domxml.h"

#include <errno.h>
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"

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

static void write_hostdev(struct xw *x, const struct ddtk_pci_addr *a)
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
	if (s->disk->kind == DDTK_DEVICE_HOSTDEV) {
		write_hostdev(x, &s->disk->addr);
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
	if (s->nic->kind == DDTK_DEVICE_HOSTDEV) {
		write_hostdev(x, &s->nic->addr);
	} else {
		xw_start(x, "interface");
		xw_attr(x, "type", "user");
		xw_empty(x, "model", "type", "e1000", XW_END);
		xw_end(x);
	}
	write_channel(x, VM_CONTROL_PORT_NAME);
	xw_empty(x, "watchdog", "model", "i6300esb", "action", s->watchdog_action, XW_END);
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

	xw_start(x, "domain");
	xw_attr(x, "type", vm_accel_domain_type(s->accel));
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
	if (s->accel == VM_ACCEL_KVM)
		xw_empty(x, "cpu", "mode", "host-passthrough", XW_END);
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
	xw_end(x); /* domain */
}

int vm_xml_build(const struct vm_spec *spec, char **ret_xml, struct ddtk_err *err)
{
	if (spec->role == VM_ROLE_DD && (!spec->nic || !spec->disk || !spec->watchdog_action ||
					 (spec->disk->kind == DDTK_DEVICE_EMULATED && !spec->disk_image)))
		return ddtk_err_set(err, -EINVAL, "driver domain spec lacks its devices");

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
	write_domain(&x, spec);
	xw_check(&x, xmlTextWriterEndDocument(x.w));
	xmlFreeTextWriter(x.w);

	int r = 0;
	if (x.failed)
		r = ddtk_err_set(err, -EINVAL, "cannot write the XML of %s (invalid characters?)", spec->name);
	else if (!(*ret_xml = strdup((const char *)xmlBufferContent(buf))))
		r = ddtk_err_set(err, -ENOMEM, "out of memory");
	xmlBufferFree(buf);
	return r;
}
