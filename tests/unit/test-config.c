/* Unit tests of ddtk.conf parsing: defaults, every key, and the errors bad input must give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static struct ddtk_config cfg;
static struct ddtk_err err;

static int load(const char *text)
{
	ddtk_config_init(&cfg);
	err.msg[0] = '\0';
	return ddtk_config_load_string(&cfg, text, &err);
}

static void test_defaults(void **state)
{
	ddtk_config_init(&cfg);
	assert_string_equal(cfg.instance, "demo");
	assert_int_equal(cfg.accel, VM_ACCEL_AUTO);
	assert_int_equal(cfg.n_clients, 2);
	assert_string_equal(cfg.clients[0].name, "a");
	assert_string_equal(cfg.clients[1].name, "b");
	assert_int_equal(cfg.dd.memory_mib, 256);
	assert_int_equal(cfg.dd.nic.kind, DDTK_DEVICE_EMULATED);
	assert_string_equal(cfg.dd.watchdog_action, "none");
}

static void test_full_file(void **state)
{
	assert_int_equal(load("[ddtk]\n"
			      "instance = ci-7\n"
			      "accel = tcg\n"
			      "state-dir = /tmp/ddtk-state\n"
			      "boot-timeout = 30\n"
			      "clients = web db, cache\n"
			      "[driver-domain]\n"
			      "memory = 1G\n"
			      "vcpus = 2\n"
			      "nic = pci:0000:03:00.0\n"
			      "disk = pci:00:1f.2\n"
			      "disk-size = 4096M\n"
			      "watchdog-action = reset\n"
			      "cmdline-append = loglevel=7\n"
			      "[client.db]\n"
			      "memory = 768\n"
			      "vcpus = 2\n"
			      "vhost-user-blk = /run/ddtk/db.sock\n"
			      "vhost-user-blk-queues = 4\n"), 0);
	assert_string_equal(cfg.instance, "ci-7");
	assert_int_equal(cfg.accel, VM_ACCEL_TCG);
	assert_string_equal(cfg.state_dir, "/tmp/ddtk-state");
	assert_int_equal(cfg.boot_timeout_s, 30);
	assert_int_equal(cfg.n_clients, 3);
	assert_string_equal(cfg.clients[2].name, "cache");
	assert_int_equal(cfg.dd.memory_mib, 1024);
	assert_int_equal(cfg.dd.vcpus, 2);
	assert_int_equal(cfg.dd.nic.kind, DDTK_DEVICE_HOSTDEV);
	assert_int_equal(cfg.dd.nic.addr.bus, 3);
	assert_int_equal(cfg.dd.disk.kind, DDTK_DEVICE_HOSTDEV);
	assert_int_equal(cfg.dd.disk.addr.slot, 0x1f);
	assert_int_equal(cfg.dd.disk.addr.function, 2);
	assert_int_equal(cfg.dd.disk_size_mib, 4096);
	assert_string_equal(cfg.dd.watchdog_action, "reset");
	assert_string_equal(cfg.dd.cmdline_append, "loglevel=7");
	const struct ddtk_client_config *db = ddtk_config_client(&cfg, "db");
	assert_non_null(db);
	assert_int_equal(db->memory_mib, 768);
	assert_int_equal(db->vcpus, 2);
	assert_string_equal(db->vhost_user_blk, "/run/ddtk/db.sock");
	assert_int_equal(db->vhost_user_blk_queues, 4);
	assert_string_equal(ddtk_config_client(&cfg, "web")->vhost_user_blk, "");
	assert_int_equal(ddtk_config_client(&cfg, "web")->vhost_user_blk_queues, 1);
	assert_int_equal(ddtk_config_client(&cfg, "web")->memory_mib, 512);
	assert_null(ddtk_config_client(&cfg, "dd"));
}

static void test_empty_client_list(void **state)
{
	assert_int_equal(load("[ddtk]\nclients =\n"), 0);
	assert_int_equal(cfg.n_clients, 0);
}

/* Each bad input fails with the line and a message naming what is wrong. */
static void test_errors(void **state)
{
	static const struct { const char *text, *line, *words; } cases[] = {
		{ "[ddtk]\naccel = fast\n", ":2:", "accel must be auto, kvm or tcg" },
		{ "[ddtk]\ninstance = Demo\n", ":2:", "invalid instance name" },
		{ "[ddtk]\ninstance = -x\n", ":2:", "invalid instance name" },
		{ "[ddtk]\nbogus = 1\n", ":2:", "unknown key 'bogus'" },
		{ "[ddtk]\nclients = a a\n", ":2:", "listed twice" },
		{ "[ddtk]\nclients = dd\n", ":2:", "invalid client name 'dd'" },
		{ "[ddtk]\nclients = A\n", ":2:", "invalid client name" },
		{ "[ddtk]\nstate-dir = relative/path\n", ":2:", "invalid value" },
		{ "[ddtk]\nclients = a\n[client.a]\nvhost-user-blk = blk.sock\n", ":4:", "invalid value" },
		{ "[ddtk]\nclients = a\n[client.a]\nvhost-user-blk-queues = 0\n", ":4:", "invalid value" },
		{ "[ddtk]\nboot-timeout = 0\n", ":2:", "invalid value" },
		{ "[ddtk]\nboot-timeout = 12x\n", ":2:", "invalid value" },
		{ "[driver-domain]\nmemory = 8\n", ":2:", "invalid value '8' for memory" },
		{ "[driver-domain]\nmemory = 99999999999999999999G\n", ":2:", "invalid value" },
		{ "[driver-domain]\nmemory = -5\n", ":2:", "invalid value" },
		{ "[driver-domain]\nvcpus = 0\n", ":2:", "invalid value" },
		{ "[driver-domain]\nnic = virtio\n", ":2:", "invalid value 'virtio' for nic" },
		{ "[driver-domain]\nnic = pci:0000:03:20.0\n", ":2:", "invalid value" },
		{ "[driver-domain]\ndisk = pci:03:00.8\n", ":2:", "invalid value" },
		{ "[driver-domain]\nwatchdog-action = explode\n", ":2:", "invalid value" },
		{ "[client.z]\nmemory = 512\n", ":2:", "no such client" },
		{ "[nope]\nx = 1\n", ":2:", "unknown section [nope]" },
		{ "[ddtk]\nthis line has no equals sign\n", ":2:", "syntax error" },
		{ "[ddtk]\naccel = tcg\n[driver-domain]\nvcpus = 1000\n", ":4:", "invalid value" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = load(cases[i].text);
		if (r >= 0 || !strstr(err.msg, cases[i].line) || !strstr(err.msg, cases[i].words))
			fail_msg("case %zu (%s): r=%d msg='%s'", i, cases[i].text, r, err.msg);
	}
}

static void test_first_error_wins(void **state)
{
	assert_true(load("[ddtk]\naccel = x\nbogus = 2\n") < 0);
	assert_non_null(strstr(err.msg, ":2: accel must be"));
}

static void test_file_missing(void **state)
{
	ddtk_config_init(&cfg);
	assert_true(ddtk_config_load(&cfg, "/nonexistent/ddtk.conf", &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/ddtk.conf: cannot open"));
}

static void test_file(void **state)
{
	char path[] = "/tmp/ddtk-test-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char text[] = "# comment\n[ddtk]\ninstance = fromfile\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	ddtk_config_init(&cfg);
	int r = ddtk_config_load(&cfg, path, &err);
	unlink(path);
	assert_int_equal(r, 0);
	assert_string_equal(cfg.instance, "fromfile");
}

static void test_names_and_pci(void **state)
{
	assert_true(ddtk_name_valid("a"));
	assert_true(ddtk_name_valid("web-1"));
	assert_false(ddtk_name_valid(""));
	assert_false(ddtk_name_valid("has space"));
	assert_false(ddtk_name_valid("a/b"));
	assert_false(ddtk_name_valid("012345678901234567890123456789012")); /* 33 characters */
	struct ddtk_pci_addr a;
	assert_int_equal(ddtk_pci_addr_parse("0001:ff:1f.7", &a), 0);
	assert_int_equal(a.domain, 1);
	assert_int_equal(a.bus, 0xff);
	assert_int_equal(a.slot, 0x1f);
	assert_int_equal(a.function, 7);
	assert_int_equal(ddtk_pci_addr_parse("03:00.0 ", &a), -EINVAL);
	assert_int_equal(ddtk_pci_addr_parse("03:00", &a), -EINVAL);
	assert_int_equal(ddtk_pci_addr_parse("", &a), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_empty_client_list),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_names_and_pci),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
