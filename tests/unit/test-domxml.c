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

static struct doc build(const struct vm_spec *spec)
{
	char *xml = NULL;
	struct ddtk_err err;
	assert_int_equal(vm_xml_build(spec, &xml, &err), 0);
	struct doc d;
	d.doc = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL, XML_PARSE_NONET);
	free(xml);
	assert_non_null(d.doc);
	d.ctx = xmlXPathNewContext(d.doc);
	xmlXPathRegisterNs(d.ctx, BAD_CAST "ddtk", BAD_CAST VM_METADATA_NS);
	return d;
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
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_client_vhost_user_disk),
		cmocka_unit_test(test_client_vhost_user_nic),
		cmocka_unit_test(test_client_vhost_user_disk_and_nic),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_dd_without_devices_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
