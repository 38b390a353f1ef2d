/* Unit tests of the generated libvirt XML: the parts each VM must have, checked with XPath on the
 * parsed document (virt-xml-validate checks the schema in the integration suite). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"
#include "ddctl-proto.h"
#include "domxml.h"

static struct ddtk_device emulated = { .kind = DDTK_DEVICE_EMULATED };
static struct ddtk_device nic_pt = { .kind = DDTK_DEVICE_HOSTDEV,
				      .addr = { .domain = 0, .bus = 3, .slot = 0, .function = 0 } };
static struct ddtk_device sata_pt = { .kind = DDTK_DEVICE_HOSTDEV,
				       .addr = { .domain = 1, .bus = 0, .slot = 0x1f, .function = 2 } };

static struct vm_spec dd_spec(void)
{
	return (struct vm_spec){
		.name = "ddtk-t-dd", .instance = "t", .vm = "dd", .role = VM_ROLE_DD,
		.accel = VM_ACCEL_TCG, .memory_mib = 256, .vcpus = 1,
		.kernel = "/s/dd.vmlinuz", .initrd = "/s/dd.initrd.gz",
		.cmdline = "console=ttyS0 intel_iommu=on", .console_log = "/s/dd.console.log",
		.nic = &emulated, .disk = &emulated, .disk_image = "/s/dd-disk.img",
		.watchdog_action = "none",
	};
}

static struct vm_spec client_spec(void)
{
	return (struct vm_spec){
		.name = "ddtk-t-a", .instance = "t", .vm = "a", .role = VM_ROLE_CLIENT,
		.accel = VM_ACCEL_KVM, .memory_mib = 512, .vcpus = 2,
		.kernel = "/s/a.vmlinuz", .initrd = "/s/a.initrd.gz",
		.cmdline = "console=ttyS0", .console_log = "/s/a.console.log",
	};
}

struct doc {
	xmlDocPtr doc;
	xmlXPathContextPtr ctx;
};

/* Parses xml (and frees it) for XPath queries, with the ddtk and qemu prefixes bound. */
static struct doc parse(char *xml)
{
	struct doc d;
	d.doc = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL, XML_PARSE_NONET);
	free(xml);
	assert_non_null(d.doc);
	d.ctx = xmlXPathNewContext(d.doc);
	xmlXPathRegisterNs(d.ctx, BAD_CAST "ddtk", BAD_CAST VM_METADATA_NS);
	xmlXPathRegisterNs(d.ctx, BAD_CAST "qemu", BAD_CAST VM_QEMU_NS);
	return d;
}

static struct doc build(const struct vm_spec *spec)
{
	char *xml = NULL;
	struct ddtk_err err;
	assert_int_equal(vm_xml_build(spec, &xml, &err), 0);
	return parse(xml);
}

static void doc_free(struct doc *d)
{
	xmlXPathFreeContext(d->ctx);
	xmlFreeDoc(d->doc);
}

/* The string value of an XPath expression; "" when it matches nothing. */
static char *xstr(struct doc *d, const char *expr)
{
	char full[512];
	snprintf(full, sizeof(full), "string(%s)", expr);
	xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST full, d->ctx);
	assert_non_null(o);
	char *s = strdup((const char *)o->stringval);
	xmlXPathFreeObject(o);
	return s;
}

static void assert_xpath(struct doc *d, const char *expr, const char *want)
{
	char *got = xstr(d, expr);
	if (strcmp(got, want) != 0)
		fail_msg("%s: got '%s', want '%s'", expr, got, want);
	free(got);
}

static double xcount(struct doc *d, const char *expr)
{
	char full[512];
	snprintf(full, sizeof(full), "count(%s)", expr);
	xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST full, d->ctx);
	double n = o->floatval;
	xmlXPathFreeObject(o);
	return n;
}

static void test_dd_emulated(void **state)
{
	struct vm_spec s = dd_spec();
	struct doc d = build(&s);
	assert_xpath(&d, "/domain/@type", "qemu");
	assert_xpath(&d, "/domain/name", "ddtk-t-dd");
	assert_xpath(&d, "/domain/metadata/ddtk:vm/@role", "dd");
	assert_xpath(&d, "/domain/metadata/ddtk:vm/@instance", "t");
	assert_xpath(&d, "/domain/memory[@unit='MiB']", "256");
	assert_xpath(&d, "/domain/os/type/@machine", "q35");
	assert_xpath(&d, "/domain/os/kernel", "/s/dd.vmlinuz");
	assert_xpath(&d, "/domain/os/cmdline", "console=ttyS0 intel_iommu=on");
	/* vIOMMU with interrupt remapping, which needs the split irqchip. */
	assert_xpath(&d, "/domain/devices/iommu/@model", "intel");
	assert_xpath(&d, "/domain/devices/iommu/driver/@intremap", "on");
	assert_xpath(&d, "/domain/features/ioapic/@driver", "qemu");
	/* Its devices: e1000, AHCI disk, watchdog, pvpanic. */
	assert_xpath(&d, "/domain/devices/interface/model/@type", "e1000");
	assert_xpath(&d, "/domain/devices/disk/target/@bus", "sata");
	assert_xpath(&d, "/domain/devices/disk/source/@file", "/s/dd-disk.img");
	assert_xpath(&d, "/domain/devices/watchdog/@model", "i6300esb");
	assert_xpath(&d, "/domain/devices/watchdog/@action", "none");
	assert_xpath(&d, "/domain/devices/panic/@model", "isa");
	assert_int_equal(xcount(&d, "/domain/devices/hostdev"), 0);
	/* Control and agent ports, on Unix sockets libvirt places. */
	assert_xpath(&d, "/domain/devices/channel[target/@name='" VM_CONTROL_PORT_NAME "']/@type", "unix");
	assert_xpath(&d, "/domain/devices/channel[target/@name='" AGENT_PORT_NAME "']/source/@mode", "bind");
	assert_xpath(&d, "/domain/devices/serial/log/@file", "/s/dd.console.log");
	/* A failed boot must stop the domain, not loop. */
	assert_xpath(&d, "/domain/on_reboot", "destroy");
	assert_xpath(&d, "/domain/on_crash", "destroy");
	assert_int_equal(xcount(&d, "/domain/memoryBacking"), 0);
	assert_int_equal(xcount(&d, "/domain/cpu"), 0);
	/* Without the bridge, libvirt lays out the PCI buses itself: no controllers, no addresses. */
	assert_xpath(&d, "/domain/devices/interface/@type", "user");
	assert_int_equal(xcount(&d, "/domain/devices/controller[@type='pci']"), 0);
	assert_int_equal(xcount(&d, "//address"), 0);
	assert_int_equal(xcount(&d, "/domain/qemu:commandline"), 0);
	doc_free(&d);
}

/* With the bridge: the fixed hot-plug bus and its window, the DD's own devices off it. */
static void test_dd_hotplug_bridge(void **state)
{
	struct vm_spec s = dd_spec();
	s.hotplug_window = UINT64_C(4) << 30;
	struct doc d = build(&s);
	assert_int_equal(xcount(&d, "/domain/devices/controller[@type='pci']"), 5);
	assert_xpath(&d, "/domain/devices/controller[@type='pci'][@index='0']/@model", "pcie-root");
	assert_xpath(&d, "/domain/devices/controller[@type='pci'][@index='1']/@model", "pcie-root-port");
	assert_xpath(&d, "/domain/devices/controller[@type='pci'][@index='2']/@model", "pcie-to-pci-bridge");
	assert_xpath(&d, "/domain/devices/controller[@index='2']/address/@bus", "0x01");
	assert_xpath(&d, "/domain/devices/controller[@index='2']/address/@slot", "0x00");
	assert_xpath(&d, "/domain/devices/controller[@type='pci'][@index='3']/@model", "pci-bridge");
	assert_xpath(&d, "/domain/devices/controller[@index='3']/address/@type", "pci");
	/* On the root bus: behind the pcie-to-pci-bridge, Linux and QEMU's vIOMMU disagree on the
	 * MSI source id of its devices, and every interrupt is dropped. */
	assert_xpath(&d, "/domain/devices/controller[@index='3']/address/@bus", "0x00");
	assert_xpath(&d, "/domain/devices/controller[@index='3']/address/@slot", "0x1e");
	/* The second one, for clients' further memory files, beside it. */
	assert_xpath(&d, "/domain/devices/controller[@type='pci'][@index='4']/@model", "pci-bridge");
	assert_xpath(&d, "/domain/devices/controller[@index='4']/address/@bus", "0x00");
	assert_xpath(&d, "/domain/devices/controller[@index='4']/address/@slot", "0x1d");
	/* e1000 and watchdog on the root bus: not in the ivshmem devices' IOMMU group, not in their
	 * slots. */
	assert_xpath(&d, "/domain/devices/interface/address/@bus", "0x00");
	assert_xpath(&d, "/domain/devices/interface/address/@slot", "0x10");
	assert_xpath(&d, "/domain/devices/watchdog/address/@bus", "0x00");
	assert_xpath(&d, "/domain/devices/watchdog/address/@slot", "0x11");
	assert_int_equal(xcount(&d, "//address[@bus='0x03']"), 0);
	/* SeaBIOS's reserve behind the pci-bridge, through QEMU's command line. */
	assert_int_equal(xcount(&d, "/domain/qemu:commandline/qemu:arg"), 2);
	assert_xpath(&d, "/domain/qemu:commandline/qemu:arg[1]/@value", "-global");
	assert_xpath(&d, "/domain/qemu:commandline/qemu:arg[2]/@value", "pci-bridge.pref64-reserve=4294967296");
	doc_free(&d);

	/* Passed-through devices too: the host's integrated SATA controller is conventional PCI. */
	s.nic = &nic_pt;
	s.disk = &sata_pt;
	d = build(&s);
	assert_int_equal(xcount(&d, "/domain/devices/interface"), 0);
	assert_xpath(&d, "/domain/devices/hostdev[source/address/@bus='0x03']/address/@bus", "0x00");
	assert_xpath(&d, "/domain/devices/hostdev[source/address/@bus='0x03']/address/@slot", "0x10");
	assert_xpath(&d, "/domain/devices/hostdev[source/address/@slot='0x1f']/address/@slot", "0x12");
	assert_xpath(&d, "/domain/devices/watchdog/address/@slot", "0x11");
	doc_free(&d);
	/* Without the bridge, libvirt places them. */
	s.hotplug_window = 0;
	d = build(&s);
	assert_int_equal(xcount(&d, "/domain/devices/hostdev/address"), 0);
	doc_free(&d);

	/* Clients never get any of it. */
	struct vm_spec c = client_spec();
	c.hotplug_window = UINT64_C(1) << 30;
	d = build(&c);
	assert_int_equal(xcount(&d, "/domain/devices/controller[@type='pci']"), 0);
	assert_int_equal(xcount(&d, "/domain/qemu:commandline"), 0);
	doc_free(&d);
}

static void test_dd_nic_tap(void **state)
{
	struct vm_spec s = dd_spec();
	s.nic_tap = "ddtk123456d";
	struct doc d = build(&s);
	assert_xpath(&d, "/domain/devices/interface/@type", "ethernet");
	assert_xpath(&d, "/domain/devices/interface/target/@dev", "ddtk123456d");
	/* libvirt uses the tap as it is: it neither creates nor deletes nor configures it. */
	assert_xpath(&d, "/domain/devices/interface/target/@managed", "no");
	assert_xpath(&d, "/domain/devices/interface/model/@type", "e1000");
	doc_free(&d);
}

static void test_hotplug_window(void **state)
{
	struct ddtk_config cfg;
	struct ddtk_err err;
	ddtk_config_init(&cfg);
	assert_int_equal(vm_dd_hotplug_window(&cfg), 0);
	/* One 512 MiB client's NIC + the state device: the 1 GiB floor. */
	assert_int_equal(ddtk_config_load_string(&cfg, "[client.a]\ndd-nic = yes\n", &err), 0);
	assert_int_equal(vm_dd_hotplug_window(&cfg), UINT64_C(1) << 30);
	/* a: volume + NIC of 512 MiB = 1 GiB; b: 700 MiB rounds up to 1 GiB; + 32 MiB -> 4 GiB. */
	assert_int_equal(ddtk_config_load_string(&cfg, "[driver-domain]\ndisk-size = 4G\n"
						 "[client.a]\nvolume = 1G\n[client.b]\nmemory = 700\n"
						 "volume = 512M\n", &err), 0);
	assert_int_equal(vm_dd_hotplug_window(&cfg), UINT64_C(4) << 30);
	/* 15 clients of 2 GiB, each with both devices: 60 GiB + 32 MiB -> 64 GiB. */
	char text[4096];
	int n = snprintf(text, sizeof(text), "[ddtk]\nclients =");
	for (int i = 0; i < DDCTL_CLIENTS_MAX; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, " c%d", i);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "\n[driver-domain]\ndisk-size = 64G\n");
	for (int i = 0; i < DDCTL_CLIENTS_MAX; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "[client.c%d]\nmemory = 2G\nvolume = 1G\ndd-nic = yes\n", i);
	ddtk_config_init(&cfg);
	assert_int_equal(ddtk_config_load_string(&cfg, text, &err), 0);
	assert_int_equal(vm_dd_hotplug_window(&cfg), UINT64_C(64) << 30);
}

static void test_ivshmem_device(void **state)
{
	char *xml = NULL;
	struct ddtk_err err;
	assert_int_equal(vm_xml_ivshmem(3, "/var/lib/ddtk/t/bridge/ivshmem-3.sock", 5, &xml, &err), 0);
	struct doc d = parse(xml);
	assert_xpath(&d, "/shmem/@name", "ddtk-s3");
	assert_xpath(&d, "/shmem/model/@type", "ivshmem-doorbell");
	assert_xpath(&d, "/shmem/server/@path", "/var/lib/ddtk/t/bridge/ivshmem-3.sock");
	assert_xpath(&d, "/shmem/msi/@vectors", "5");
	assert_xpath(&d, "/shmem/msi/@ioeventfd", "on");
	/* ua-: a user alias, which libvirt keeps, so the bridge can unplug it by that name. */
	assert_xpath(&d, "/shmem/alias/@name", "ua-ddtk-s3");
	assert_xpath(&d, "/shmem/address/@type", "pci");
	assert_xpath(&d, "/shmem/address/@domain", "0x0000");
	assert_xpath(&d, "/shmem/address/@bus", "0x03");
	assert_xpath(&d, "/shmem/address/@slot", "0x03");
	assert_xpath(&d, "/shmem/address/@function", "0x0");
	assert_int_equal(xcount(&d, "/shmem/size"), 0); /* the server's memory decides */
	doc_free(&d);

	/* The state device: session 0, the last slot. */
	assert_int_equal(vm_xml_ivshmem(0, "/s/ivshmem-0.sock", 1, &xml, &err), 0);
	d = parse(xml);
	assert_xpath(&d, "/shmem/@name", "ddtk-s0");
	assert_xpath(&d, "/shmem/alias/@name", "ua-ddtk-s0");
	assert_xpath(&d, "/shmem/address/@slot", "0x1f");
	assert_xpath(&d, "/shmem/msi/@vectors", "1");
	doc_free(&d);
	assert_int_equal(DDCTL_STATE_SLOT, 0x1f);

	assert_int_equal(vm_xml_ivshmem(DDCTL_SESSIONS_MAX, "/s/ivshmem-30.sock", VM_IVSHMEM_VECTORS_MAX, &xml, &err), 0);
	d = parse(xml);
	assert_xpath(&d, "/shmem/address/@slot", "0x1e");
	doc_free(&d);

	xml = NULL;
	assert_int_equal(vm_xml_ivshmem(DDCTL_SESSIONS_MAX + 1, "/s/x.sock", 1, &xml, &err), -ERANGE);
	assert_int_equal(vm_xml_ivshmem(1, "/s/x.sock", 0, &xml, &err), -ERANGE);
	assert_int_equal(vm_xml_ivshmem(1, "/s/x.sock", VM_IVSHMEM_VECTORS_MAX + 1, &xml, &err), -ERANGE);
	assert_int_equal(vm_xml_ivshmem(1, "x.sock", 1, &xml, &err), -EINVAL);
	assert_int_equal(vm_xml_ivshmem(1, NULL, 1, &xml, &err), -EINVAL);
	assert_null(xml);

	/* A further memory file's device: behind the second bridge, at the slot given. */
	assert_int_equal(vm_xml_ivshmem_mem(3, 2, 7, "/s/ivshmem-1031.sock", &xml, &err), 0);
	d = parse(xml);
	assert_xpath(&d, "/shmem/@name", "ddtk-s3-m2");
	assert_xpath(&d, "/shmem/alias/@name", "ua-ddtk-s3-m2");
	assert_xpath(&d, "/shmem/model/@type", "ivshmem-doorbell");
	assert_xpath(&d, "/shmem/server/@path", "/s/ivshmem-1031.sock");
	assert_xpath(&d, "/shmem/address/@bus", "0x04");
	assert_xpath(&d, "/shmem/address/@slot", "0x07");
	assert_xpath(&d, "/shmem/msi/@vectors", "1");
	doc_free(&d);
	xml = NULL;
	assert_int_equal(vm_xml_ivshmem_mem(0, 1, 1, "/s/x.sock", &xml, &err), -ERANGE);
	assert_int_equal(vm_xml_ivshmem_mem(1, 0, 1, "/s/x.sock", &xml, &err), -ERANGE);
	assert_int_equal(vm_xml_ivshmem_mem(1, DDCTL_MEM_FILES_MAX, 1, "/s/x.sock", &xml, &err), -ERANGE);
	assert_int_equal(vm_xml_ivshmem_mem(1, 1, 0, "/s/x.sock", &xml, &err), -ERANGE);
	assert_int_equal(vm_xml_ivshmem_mem(1, 1, VM_DD_MEM_SLOTS + 1, "/s/x.sock", &xml, &err), -ERANGE);
	assert_int_equal(vm_xml_ivshmem_mem(1, 1, 1, "x.sock", &xml, &err), -EINVAL);
	assert_null(xml);
	/* The second bridge's anchor: always in its last slot. */
	assert_int_equal(vm_xml_ivshmem_mem(0, 0, 5, "/s/ivshmem-1023.sock", &xml, &err), 0);
	d = parse(xml);
	assert_xpath(&d, "/shmem/@name", "ddtk-anchor");
	assert_xpath(&d, "/shmem/alias/@name", "ua-ddtk-anchor");
	assert_xpath(&d, "/shmem/address/@bus", "0x04");
	assert_xpath(&d, "/shmem/address/@slot", "0x1f");
	doc_free(&d);
}

static void test_dd_passthrough(void **state)
{
	struct vm_spec s = dd_spec();
	s.nic = &nic_pt;
	s.disk = &sata_pt;
	s.disk_image = NULL;
	s.accel = VM_ACCEL_KVM;
	s.watchdog_action = "reset";
	struct doc d = build(&s);
	assert_xpath(&d, "/domain/@type", "kvm");
	assert_xpath(&d, "/domain/cpu/@mode", "host-passthrough");
	assert_int_equal(xcount(&d, "/domain/devices/hostdev[@type='pci'][@managed='yes']"), 2);
	assert_xpath(&d, "/domain/devices/hostdev[1]/source/address/@domain", "0x0001");
	assert_xpath(&d, "/domain/devices/hostdev[1]/source/address/@slot", "0x1f");
	assert_xpath(&d, "/domain/devices/hostdev[1]/source/address/@function", "0x2");
	assert_xpath(&d, "/domain/devices/hostdev[2]/source/address/@bus", "0x03");
	assert_int_equal(xcount(&d, "/domain/devices/disk"), 0);
	assert_int_equal(xcount(&d, "/domain/devices/interface"), 0);
	assert_xpath(&d, "/domain/devices/watchdog/@action", "reset");
	doc_free(&d);
}

static void test_client(void **state)
{
	struct vm_spec s = client_spec();
	struct doc d = build(&s);
	assert_xpath(&d, "/domain/@type", "kvm");
	assert_xpath(&d, "/domain/metadata/ddtk:vm/@role", "client");
	assert_xpath(&d, "/domain/vcpu", "2");
	/* vhost-user needs the client's RAM in a shareable memfd. */
	assert_xpath(&d, "/domain/memoryBacking/source/@type", "memfd");
	assert_xpath(&d, "/domain/memoryBacking/access/@mode", "shared");
	assert_int_equal(xcount(&d, "/domain/devices/iommu"), 0);
	assert_int_equal(xcount(&d, "/domain/devices/watchdog"), 0);
	assert_int_equal(xcount(&d, "/domain/devices/channel"), 1);
	assert_xpath(&d, "/domain/devices/channel/target/@name", AGENT_PORT_NAME);
	assert_int_equal(xcount(&d, "/domain/devices/disk"), 0);
	assert_int_equal(xcount(&d, "/domain/devices/interface"), 0);
	assert_int_equal(xcount(&d, "/domain/cpu/numa"), 0);
	doc_free(&d);

	/* NUMA nodes: memory and vCPUs split evenly, each node's memory a memfd of its own. */
	s.numa_nodes = 2;
	s.vcpus = 3;
	d = build(&s);
	assert_int_equal(xcount(&d, "/domain/cpu/numa/cell"), 2);
	assert_xpath(&d, "/domain/cpu/numa/cell[@id='0']/@cpus", "0-0");
	assert_xpath(&d, "/domain/cpu/numa/cell[@id='1']/@cpus", "1-2");
	assert_xpath(&d, "/domain/cpu/numa/cell[@id='1']/@unit", "MiB");
	char half[16];
	snprintf(half, sizeof(half), "%u", s.memory_mib / 2);
	assert_xpath(&d, "/domain/cpu/numa/cell[@id='1']/@memory", half);
	assert_xpath(&d, "/domain/memoryBacking/source/@type", "memfd");
	doc_free(&d);
}

static void test_client_vhost_user_disk(void **state)
{
	struct vm_spec s = client_spec();
	s.vhost_user_blk = "/run/ddtk/a-blk.sock";
	s.vhost_user_blk_queues = 4;
	struct doc d = build(&s);
	assert_xpath(&d, "/domain/devices/disk/@type", "vhostuser");
	assert_xpath(&d, "/domain/devices/disk/driver/@queues", "4");
	assert_xpath(&d, "/domain/devices/disk/source/@type", "unix");
	assert_xpath(&d, "/domain/devices/disk/source/@path", "/run/ddtk/a-blk.sock");
	/* QEMU comes back to a restarted back-end by itself. */
	assert_xpath(&d, "/domain/devices/disk/source/reconnect/@enabled", "yes");
	assert_xpath(&d, "/domain/devices/disk/target/@bus", "virtio");
	doc_free(&d);
}

static void test_client_vhost_user_nic(void **state)
{
	struct vm_spec s = client_spec();
	s.vhost_user_net = "/run/ddtk/a-net.sock";
	s.vhost_user_net_queues = 4;
	s.mac = (struct ddtk_mac){ { 0x02, 0xe0, 0x2a, 0x0d, 0x66, 0xaa } };
	struct doc d = build(&s);
	assert_int_equal(xcount(&d, "/domain/devices/interface"), 1);
	assert_xpath(&d, "/domain/devices/interface/@type", "vhostuser");
	assert_xpath(&d, "/domain/devices/interface/mac/@address", "02:e0:2a:0d:66:aa");
	assert_xpath(&d, "/domain/devices/interface/source/@type", "unix");
	assert_xpath(&d, "/domain/devices/interface/source/@path", "/run/ddtk/a-net.sock");
	/* QEMU connects to the back-end's socket and comes back to a restarted back-end by itself. */
	assert_xpath(&d, "/domain/devices/interface/source/@mode", "client");
	assert_xpath(&d, "/domain/devices/interface/source/reconnect/@enabled", "yes");
	assert_xpath(&d, "/domain/devices/interface/model/@type", "virtio");
	assert_xpath(&d, "/domain/devices/interface/driver/@queues", "4");
	assert_xpath(&d, "/domain/devices/interface/driver/@rx_queue_size", "256");
	assert_xpath(&d, "/domain/devices/interface/driver/@tx_queue_size", "256");
	/* The back-end maps the client's RAM: shared memfd even without a vhost-user disk. */
	assert_int_equal(xcount(&d, "/domain/devices/disk"), 0);
	assert_xpath(&d, "/domain/memoryBacking/source/@type", "memfd");
	assert_xpath(&d, "/domain/memoryBacking/access/@mode", "shared");
	doc_free(&d);
}

static void test_client_vhost_user_disk_and_nic(void **state)
{
	struct vm_spec s = client_spec();
	s.vhost_user_blk = "/run/ddtk/a-blk.sock";
	s.vhost_user_net = "/run/ddtk/a-net.sock";
	s.mac = (struct ddtk_mac){ { 0x02, 0, 0, 0, 0, 1 } };
	struct doc d = build(&s);
	assert_xpath(&d, "/domain/devices/disk/source/@path", "/run/ddtk/a-blk.sock");
	assert_xpath(&d, "/domain/devices/interface/source/@path", "/run/ddtk/a-net.sock");
	/* 0 queues in a spec means the default, 1. */
	assert_xpath(&d, "/domain/devices/interface/driver/@queues", "1");
	assert_xpath(&d, "/domain/devices/interface/mac/@address", "02:00:00:00:00:01");
	doc_free(&d);
}

static void test_escaping(void **state)
{
	struct vm_spec s = client_spec();
	s.cmdline = "x='1' y=\"<2>\" & z";
	s.kernel = "/path with space/&vmlinuz";
	struct doc d = build(&s);
	assert_xpath(&d, "/domain/os/cmdline", "x='1' y=\"<2>\" & z");
	assert_xpath(&d, "/domain/os/kernel", "/path with space/&vmlinuz");
	doc_free(&d);
}

static void test_dd_without_devices_is_refused(void **state)
{
	struct vm_spec s = dd_spec();
	s.disk_image = NULL;
	char *xml = NULL;
	struct ddtk_err err;
	assert_int_equal(vm_xml_build(&s, &xml, &err), -EINVAL);
	assert_null(xml);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dd_emulated),
		cmocka_unit_test(test_dd_passthrough),
		cmocka_unit_test(test_dd_hotplug_bridge),
		cmocka_unit_test(test_dd_nic_tap),
		cmocka_unit_test(test_hotplug_window),
		cmocka_unit_test(test_ivshmem_device),
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_client_vhost_user_disk),
		cmocka_unit_test(test_client_vhost_user_nic),
		cmocka_unit_test(test_client_vhost_user_disk_and_nic),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_dd_without_devices_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
