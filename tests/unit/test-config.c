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
#include "ddctl-proto.h"

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
	/* Supervised by ddtkd: 5 restarts per 10 min, delays up to 30 s. */
	assert_true(cfg.dd.supervise);
	assert_int_equal(cfg.dd.restart_budget, 5);
	assert_int_equal(cfg.dd.restart_window_s, 600);
	assert_int_equal(cfg.dd.restart_delay_max_s, 30);
	/* The default topology has nothing served from the driver domain: no bridge, no tap. */
	assert_string_equal(cfg.dd.nic_tap, "");
	assert_false(ddtk_config_uses_bridge(&cfg));
	for (unsigned i = 0; i < cfg.n_clients; i++) {
		assert_int_equal(cfg.clients[i].volume_mib, 0);
		assert_false(cfg.clients[i].volume_read_only);
		assert_int_equal(cfg.clients[i].volume_queues, 1);
		assert_false(cfg.clients[i].dd_nic);
		assert_int_equal(cfg.clients[i].dd_nic_queues, 1);
	}
	assert_int_equal(ddtk_config_check(&cfg, &err), 0);
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
			      "supervise = no\n"
			      "restart-budget = 3\n"
			      "restart-window = 60\n"
			      "restart-delay-max = 0\n"
			      "[client.db]\n"
			      "memory = 768\n"
			      "vcpus = 2\n"
			      "vhost-user-blk = /run/ddtk/db.sock\n"
			      "vhost-user-blk-queues = 4\n"
			      "vhost-user-net = /run/ddtk/db-net.sock\n"
			      "vhost-user-net-queues = 16\n"
			      "mac = 02:AB:cd:00:00:01\n"), 0);
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
	assert_false(cfg.dd.supervise);
	assert_int_equal(cfg.dd.restart_budget, 3);
	assert_int_equal(cfg.dd.restart_window_s, 60);
	assert_int_equal(cfg.dd.restart_delay_max_s, 0);
	const struct ddtk_client_config *db = ddtk_config_client(&cfg, "db");
	assert_non_null(db);
	assert_int_equal(db->memory_mib, 768);
	assert_int_equal(db->vcpus, 2);
	assert_string_equal(db->vhost_user_blk, "/run/ddtk/db.sock");
	assert_int_equal(db->vhost_user_blk_queues, 4);
	assert_string_equal(ddtk_config_client(&cfg, "web")->vhost_user_blk, "");
	assert_int_equal(ddtk_config_client(&cfg, "web")->vhost_user_blk_queues, 1);
	assert_int_equal(ddtk_config_client(&cfg, "web")->memory_mib, 512);
	assert_string_equal(db->vhost_user_net, "/run/ddtk/db-net.sock");
	assert_int_equal(db->vhost_user_net_queues, 16);
	assert_true(db->has_mac);
	char text[DDTK_MAC_STR_LEN];
	struct ddtk_mac mac;
	ddtk_config_client_mac(&cfg, db, &mac);
	assert_string_equal(ddtk_mac_format(&mac, text), "02:ab:cd:00:00:01");
	assert_string_equal(ddtk_config_client(&cfg, "web")->vhost_user_net, "");
	assert_int_equal(ddtk_config_client(&cfg, "web")->vhost_user_net_queues, 1);
	assert_false(ddtk_config_client(&cfg, "web")->has_mac);
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
		{ "[ddtk]\nclients = a\n[client.a]\nvhost-user-net = net.sock\n", ":4:", "invalid value" },
		{ "[ddtk]\nclients = a\n[client.a]\nvhost-user-net-queues = 0\n", ":4:",
		  "[client.a] vhost-user-net-queues must be 1 to 16" },
		{ "[ddtk]\nclients = a\n[client.a]\nvhost-user-net-queues = 17\n", ":4:",
		  "[client.a] vhost-user-net-queues must be 1 to 16" },
		{ "[ddtk]\nclients = a\n[client.a]\nvhost-user-net-queues = 2x\n", ":4:",
		  "vhost-user-net-queues must be" },
		{ "[ddtk]\nclients = a\n[client.a]\nmac = 02:00:00:00:00\n", ":4:",
		  "[client.a] mac '02:00:00:00:00' is not of the form" },
		{ "[ddtk]\nclients = a\n[client.a]\nmac = 01:00:5e:00:00:01\n", ":4:",
		  "[client.a] mac '01:00:5e:00:00:01' is not a unicast address" },
		{ "[ddtk]\nclients = a\n[client.a]\nmac = ff:ff:ff:ff:ff:ff\n", ":4:", "not a unicast address" },
		{ "[ddtk]\nclients = a\n[client.a]\nmac = 00:00:00:00:00:00\n", ":4:", "not a unicast address" },
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
		{ "[driver-domain]\nsupervise = maybe\n", ":2:", "invalid value 'maybe' for supervise" },
		{ "[driver-domain]\nrestart-budget = 0\n", ":2:", "restart-budget must be 1 to 100 (restarts), not '0'" },
		{ "[driver-domain]\nrestart-budget = 101\n", ":2:", "restart-budget must be 1 to 100" },
		{ "[driver-domain]\nrestart-window = 0\n", ":2:", "restart-window must be 1 to 86400 (seconds)" },
		{ "[driver-domain]\nrestart-delay-max = 1h\n", ":2:", "restart-delay-max must be 0 to 3600" },
		{ "[client.z]\nmemory = 512\n", ":2:", "no such client" },
		{ "[nope]\nx = 1\n", ":2:", "unknown section [nope]" },
		{ "[ddtk]\nthis line has no equals sign\n", ":2:", "syntax error" },
		{ "[ddtk]\naccel = tcg\n[driver-domain]\nvcpus = 1000\n", ":4:", "invalid value" },
		{ "[ddtk]\nclients = a\n[client.a]\nvolume = 1T\n", ":4:", "[client.a] volume '1T' is not a size" },
		{ "[ddtk]\nclients = a\n[client.a]\nvolume = -1\n", ":4:", "[client.a] volume '-1' is not a size" },
		{ "[ddtk]\nclients = a\n[client.a]\nvolume = 99999999999G\n", ":4:", "is not a size" },
		{ "[ddtk]\nclients = a\n[client.a]\nvolume-read-only = true\n", ":4:",
		  "[client.a] volume-read-only must be yes or no, not 'true'" },
		{ "[ddtk]\nclients = a\n[client.a]\nvolume-queues = 0\n", ":4:", "[client.a] volume-queues must be 1 to 16" },
		{ "[ddtk]\nclients = a\n[client.a]\nvolume-queues = 17\n", ":4:", "volume-queues must be 1 to 16" },
		{ "[ddtk]\nclients = a\n[client.a]\ndd-nic = on\n", ":4:", "[client.a] dd-nic must be yes or no" },
		{ "[ddtk]\nclients = a\n[client.a]\ndd-nic-queues = 17\n", ":4:",
		  "[client.a] dd-nic-queues must be 1 to 16 (queue pairs)" },
		{ "[ddtk]\nclients = a\n[client.a]\ndd-nic-queues = x\n", ":4:", "dd-nic-queues must be" },
		{ "[driver-domain]\nnic-tap = tap/0\n", ":2:", "nic-tap 'tap/0' is not a network interface name" },
		{ "[driver-domain]\nnic-tap = ..\n", ":2:", "is not a network interface name" },
		{ "[driver-domain]\nnic-tap = a:b\n", ":2:", "is not a network interface name" },
		{ "[driver-domain]\nnic-tap = 0123456789abcdef\n", ":2:", "is not a network interface name" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = load(cases[i].text);
		if (r >= 0 || !strstr(err.msg, cases[i].line) || !strstr(err.msg, cases[i].words))
			fail_msg("case %zu (%s): r=%d msg='%s'", i, cases[i].text, r, err.msg);
	}
}

static void test_driver_domain_devices(void **state)
{
	assert_int_equal(load("[ddtk]\n"
			      "clients = a b c\n"
			      "[driver-domain]\n"
			      "disk-size = 4G\n"
			      "nic-tap = ddtk123456d\n"
			      "[client.a]\n"
			      "volume = 1G\n"
			      "volume-queues = 4\n"
			      "dd-nic = yes\n"
			      "dd-nic-queues = 2\n"
			      "[client.c]\n"
			      "volume = 1536M\n"
			      "volume-read-only = yes\n"), 0);
	assert_string_equal(cfg.dd.nic_tap, "ddtk123456d");
	assert_true(ddtk_config_uses_bridge(&cfg));
	const struct ddtk_client_config *a = &cfg.clients[0], *b = &cfg.clients[1], *c = &cfg.clients[2];
	assert_int_equal(a->volume_mib, 1024);
	assert_false(a->volume_read_only);
	assert_int_equal(a->volume_queues, 4);
	assert_true(a->dd_nic);
	assert_int_equal(a->dd_nic_queues, 2);
	assert_int_equal(b->volume_mib, 0);
	assert_false(b->dd_nic);
	assert_int_equal(c->volume_mib, 1536);
	assert_true(c->volume_read_only);
	assert_int_equal(c->volume_queues, 1);
	assert_false(c->dd_nic);
	/* Laid out in client order from 0; b has none, so c follows a directly. */
	uint64_t off = 7, size = 7;
	assert_int_equal(ddtk_config_volume(&cfg, 0, &off, &size), 0);
	assert_int_equal(off, 0);
	assert_int_equal(size, UINT64_C(1) << 30);
	assert_int_equal(ddtk_config_volume(&cfg, 2, &off, &size), 0);
	assert_int_equal(off, UINT64_C(1) << 30);
	assert_int_equal(size, UINT64_C(1536) << 20);
	off = size = 7;
	assert_int_equal(ddtk_config_volume(&cfg, 1, &off, &size), -ENOENT);
	assert_int_equal(ddtk_config_volume(&cfg, 3, &off, &size), -ENOENT);
	assert_int_equal(off, 7);
	assert_int_equal(size, 7);
	/* Kick vectors in session order: a's disk (1: 4 queues), a's NIC (2: 2 pairs), c's disk (5). */
	assert_int_equal(ddtk_config_kick_vectors(&cfg, 1), 0);
	assert_int_equal(ddtk_config_kick_vectors(&cfg, 2), 4);
	assert_int_equal(ddtk_config_kick_vectors(&cfg, 5), 8);
	assert_int_equal(ddtk_config_kick_vectors(&cfg, DDCTL_SESSIONS_MAX + 1), 9);

	/* At most DDCTL_KICK_VECTORS_MAX virtqueues in all: 3 x (16 + 2 x 16) = 144; 2 x 48 is fine. */
	for (unsigned clients = 3; clients >= 2; clients--) {
		char text[1024];
		snprintf(text, sizeof(text), "[ddtk]\nclients = a b%s\n[driver-domain]\ndisk-size = 4G\n",
			 clients == 3 ? " c" : "");
		for (unsigned i = 0; i < clients; i++)
			snprintf(text + strlen(text), sizeof(text) - strlen(text),
				 "[client.%c]\nvolume = 1G\nvolume-queues = 16\ndd-nic = yes\ndd-nic-queues = 16\n",
				 'a' + i);
		assert_int_equal(load(text), clients == 3 ? -E2BIG : 0);
		if (clients == 3)
			assert_non_null(strstr(err.msg, "144 virtqueues"));
	}

	/* A NIC alone is enough for the bridge; volume = 0 or empty means none. */
	assert_int_equal(load("[ddtk]\nclients = a\n[client.a]\nvolume = 0\ndd-nic = yes\n"), 0);
	assert_true(ddtk_config_uses_bridge(&cfg));
	assert_int_equal(load("[ddtk]\nclients = a\n[client.a]\nvolume = 1G\nvolume =\ndd-nic = no\n"), 0);
	assert_int_equal(cfg.clients[0].volume_mib, 0);
	assert_false(ddtk_config_uses_bridge(&cfg));
	/* nic-tap = (empty) is QEMU's user network again. */
	assert_int_equal(load("[driver-domain]\nnic-tap = t0\nnic-tap =\n"), 0);
	assert_string_equal(cfg.dd.nic_tap, "");
}

/* Volumes may fill the disk exactly, never more; the check sees the whole file, whatever the order
 * of its sections. */
static void test_volumes_fit_the_disk(void **state)
{
	assert_int_equal(load("[ddtk]\nclients = a b\n[client.a]\nvolume = 512M\n[client.b]\nvolume = 512M\n"
			      "[driver-domain]\ndisk-size = 1G\n"), 0);
	uint64_t off, size;
	assert_int_equal(ddtk_config_volume(&cfg, 1, &off, &size), 0);
	assert_int_equal(off + size, UINT64_C(1) << 30);

	assert_true(load("[ddtk]\nclients = a b\n[client.a]\nvolume = 1G\n[client.b]\nvolume = 513\n") < 0);
	/* No line number: the error is about several keys. */
	assert_int_equal(strncmp(err.msg, "config: the clients' volumes need 1537 MiB (a 1024 + b 513)", 59), 0);
	assert_non_null(strstr(err.msg, "has 1024 MiB ([driver-domain] disk-size)"));
}

static void test_conflicting_devices(void **state)
{
	assert_true(load("[ddtk]\nclients = a b\n[client.b]\nvhost-user-blk = /run/b.sock\nvolume = 1M\n") < 0);
	assert_non_null(strstr(err.msg, "[client.b] has both vhost-user-blk and volume"));
	assert_true(load("[ddtk]\nclients = a b\n[client.a]\ndd-nic = yes\nvhost-user-net = /run/a.sock\n") < 0);
	assert_non_null(strstr(err.msg, "[client.a] has both vhost-user-net and dd-nic"));
	/* One from each is fine. */
	assert_int_equal(load("[ddtk]\nclients = a\n[client.a]\nvhost-user-blk = /run/a-blk.sock\ndd-nic = yes\n"), 0);
	assert_int_equal(load("[ddtk]\nclients = a\n[client.a]\nvhost-user-net = /run/a-net.sock\nvolume = 8M\n"), 0);
	/* NUMA nodes: no more than vCPUs, memory divisible by them, at most DDTK_NUMA_NODES_MAX. */
	assert_int_equal(load("[ddtk]\nclients = a\n[client.a]\nvcpus = 2\nmemory = 512\nnuma-nodes = 2\n"), 0);
	assert_int_equal(cfg.clients[0].numa_nodes, 2);
	assert_true(load("[ddtk]\nclients = a\n[client.a]\nnuma-nodes = 2\n") < 0);
	assert_non_null(strstr(err.msg, "numa-nodes = 2 needs at least as many vcpus"));
	assert_true(load("[ddtk]\nclients = a\n[client.a]\nvcpus = 3\nmemory = 500\nnuma-nodes = 3\n") < 0);
	assert_true(load("[ddtk]\nclients = a\n[client.a]\nvcpus = 8\nnuma-nodes = 5\n") < 0);
	assert_true(load("[ddtk]\nclients = a\n[client.a]\nnuma-nodes = 0\n") < 0);
	/* A passed-through NIC has no tap. */
	assert_true(load("[driver-domain]\nnic = pci:03:00.0\nnic-tap = t0\n") < 0);
	assert_non_null(strstr(err.msg, "nic-tap is for nic = emulated"));
}

/* With the bridge, every client needs two of the DD's hot-plug slots: at most DDCTL_CLIENTS_MAX. */
static void test_bridge_client_limit(void **state)
{
	char text[2048];
	int n = snprintf(text, sizeof(text), "[ddtk]\nclients =");
	for (int i = 0; i < DDCTL_CLIENTS_MAX + 1; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, " c%d", i);
	/* Without DD-served devices, 16 clients are fine. */
	assert_int_equal(load(text), 0);
	assert_int_equal(cfg.n_clients, DDCTL_CLIENTS_MAX + 1);
	snprintf(text + n, sizeof(text) - (size_t)n, "\n[client.c3]\ndd-nic = yes\n");
	assert_true(load(text) < 0);
	assert_non_null(strstr(err.msg, "16 clients, but at most 15 when any has a volume or dd-nic"));
}

static void test_bridge_paths(void **state)
{
	char path[DDTK_STATE_PATH_MAX], sock[DDTK_SOCKET_PATH_MAX];
	assert_int_equal(load("[ddtk]\ninstance = i1\nstate-dir = /srv/ddtk\nclients = web db\n"
			      "[client.db]\nvolume = 64M\ndd-nic = yes\n"), 0);
	assert_int_equal(ddtk_bridge_dir(&cfg, path), 0);
	assert_string_equal(path, "/srv/ddtk/i1/bridge");
	assert_int_equal(ddtk_bridge_pid_file(&cfg, path), 0);
	assert_string_equal(path, "/srv/ddtk/i1/bridge.pid");
	assert_int_equal(ddtk_bridge_log_file(&cfg, path), 0);
	assert_string_equal(path, "/srv/ddtk/i1/bridge.log");
	assert_int_equal(ddtk_bridge_status_socket(&cfg, sock), 0);
	assert_string_equal(sock, "/srv/ddtk/i1/bridge/bridge.sock");
	assert_int_equal(ddtk_bridge_blk_socket(&cfg, 1, sock), 0);
	assert_string_equal(sock, "/srv/ddtk/i1/bridge/db-blk.sock");
	assert_int_equal(ddtk_bridge_net_socket(&cfg, 0, sock), 0);
	assert_string_equal(sock, "/srv/ddtk/i1/bridge/web-net.sock");
	assert_int_equal(ddtk_bridge_blk_socket(&cfg, 2, sock), -ENOENT);
	assert_int_equal(ddtk_bridge_ivshmem_socket(&cfg, 0, sock), 0);
	assert_string_equal(sock, "/srv/ddtk/i1/bridge/ivshmem-0.sock");
	assert_int_equal(ddtk_bridge_ivshmem_socket(&cfg, DDCTL_SESSIONS_MAX, sock), 0);
	assert_string_equal(sock, "/srv/ddtk/i1/bridge/ivshmem-30.sock");
	assert_int_equal(ddtk_bridge_ivshmem_socket(&cfg, DDCTL_SESSIONS_MAX + 1, sock), -ERANGE);
	assert_string_equal(sock, "");

	/* A state folder too deep for a Unix socket's 107 characters is refused when (and only when)
	 * the bridge runs; -i's instance counts, so the CLI checks again after it. */
	char text[512], deep[128];
	memset(deep, 'd', 90);
	deep[90] = '\0';
	snprintf(text, sizeof(text), "[ddtk]\nstate-dir = /%s\nclients = a\n", deep);
	assert_int_equal(load(text), 0);
	assert_int_equal(ddtk_bridge_status_socket(&cfg, sock), -ENAMETOOLONG);
	assert_string_equal(sock, "");
	snprintf(text, sizeof(text), "[ddtk]\nstate-dir = /%s\nclients = a\n[client.a]\nvolume = 1M\n", deep);
	assert_true(load(text) < 0);
	assert_non_null(strstr(err.msg, "/bridge/bridge.sock would be longer than a Unix socket path"));
	memset(deep, 'd', 60);
	deep[60] = '\0';
	snprintf(text, sizeof(text), "[ddtk]\nstate-dir = /%s\nclients = a\n[client.a]\nvolume = 1M\n", deep);
	assert_int_equal(load(text), 0);
	snprintf(cfg.instance, sizeof(cfg.instance), "%s", "a-rather-long-instance-name-x");
	assert_int_equal(ddtk_config_check(&cfg, &err), -ENAMETOOLONG);
	assert_non_null(strstr(err.msg, "would be longer than a Unix socket path"));
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

static void test_mac_parse(void **state)
{
	struct ddtk_mac mac = { { 9, 9, 9, 9, 9, 9 } };
	char text[DDTK_MAC_STR_LEN];
	assert_int_equal(ddtk_mac_parse("52:54:00:Ab:cD:ef", &mac), 0);
	assert_string_equal(ddtk_mac_format(&mac, text), "52:54:00:ab:cd:ef");
	static const char *const malformed[] = {
		"", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:", "52-54-00-ab-cd-ef", "5:54:00:ab:cd:eff",
		" 2:54:00:ab:cd:ef", "+2:54:00:ab:cd:ef", "52:54:00:ab:cd:eg", "525400abcdef12345",
	};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		if (ddtk_mac_parse(malformed[i], &mac) != -EINVAL)
			fail_msg("'%s' parsed", malformed[i]);
	/* Group addresses and zero are refused; the output is untouched on failure. */
	assert_int_equal(ddtk_mac_parse("01:00:5e:00:00:01", &mac), -EADDRNOTAVAIL);
	assert_int_equal(ddtk_mac_parse("33:33:00:00:00:01", &mac), -EADDRNOTAVAIL);
	assert_int_equal(ddtk_mac_parse("FF:FF:FF:FF:FF:FF", &mac), -EADDRNOTAVAIL);
	assert_int_equal(ddtk_mac_parse("00:00:00:00:00:00", &mac), -EADDRNOTAVAIL);
	assert_string_equal(ddtk_mac_format(&mac, text), "52:54:00:ab:cd:ef");
}

static void test_mac_derive(void **state)
{
	struct ddtk_mac a, a2, b, other_instance;
	char text[DDTK_MAC_STR_LEN];
	ddtk_mac_derive("demo", "a", &a);
	ddtk_mac_derive("demo", "a", &a2);
	ddtk_mac_derive("demo", "b", &b);
	ddtk_mac_derive("demo2", "a", &other_instance);
	/* Pinned: a MAC that changes between builds would break the guests' neighbour caches and any
	 * filter written for it. FNV-1a-64("demo/a") = 0xe02a0d66aa36bb8e. */
	assert_string_equal(ddtk_mac_format(&a, text), "02:e0:2a:0d:66:aa");
	assert_memory_equal(&a, &a2, sizeof(a));
	assert_memory_not_equal(&a, &b, sizeof(a));
	assert_memory_not_equal(&a, &other_instance, sizeof(a));
	/* The separator keeps instance "ab" + client "c" apart from "a" + "bc". */
	struct ddtk_mac ab_c, a_bc;
	ddtk_mac_derive("ab", "c", &ab_c);
	ddtk_mac_derive("a", "bc", &a_bc);
	assert_memory_not_equal(&ab_c, &a_bc, sizeof(ab_c));
	static const char *const names[] = { "a", "b", "c", "web", "db", "cache", "x-1", "0" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct ddtk_mac m;
		ddtk_mac_derive("ci-7", names[i], &m);
		assert_int_equal(m.bytes[0] & 0x02, 0x02);  /* locally administered */
		assert_int_equal(m.bytes[0] & 0x01, 0);     /* unicast */
		/* What ddtk derives, ddtk accepts as mac =. */
		struct ddtk_mac back;
		assert_int_equal(ddtk_mac_parse(ddtk_mac_format(&m, text), &back), 0);
		assert_memory_equal(&m, &back, sizeof(m));
	}
}

/* The default MAC follows the instance name, including one set after the client's section or
 * on the command line; an explicit mac = wins. */
static void test_client_mac(void **state)
{
	struct ddtk_mac got, want;
	assert_int_equal(load("[ddtk]\nclients = a b\n[client.b]\nmac = 02:00:00:00:00:0b\n"
			      "[ddtk]\ninstance = late\n"), 0);
	ddtk_config_client_mac(&cfg, ddtk_config_client(&cfg, "a"), &got);
	ddtk_mac_derive("late", "a", &want);
	assert_memory_equal(&got, &want, sizeof(got));
	ddtk_config_client_mac(&cfg, ddtk_config_client(&cfg, "b"), &got);
	assert_int_equal(got.bytes[5], 0x0b);
	/* mac = (empty) goes back to the derived one. */
	assert_int_equal(load("[ddtk]\nclients = a\n[client.a]\nmac = 02:00:00:00:00:0a\nmac =\n"), 0);
	ddtk_config_client_mac(&cfg, ddtk_config_client(&cfg, "a"), &got);
	ddtk_mac_derive("demo", "a", &want);
	assert_memory_equal(&got, &want, sizeof(got));
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
		cmocka_unit_test(test_driver_domain_devices),
		cmocka_unit_test(test_volumes_fit_the_disk),
		cmocka_unit_test(test_conflicting_devices),
		cmocka_unit_test(test_bridge_client_limit),
		cmocka_unit_test(test_bridge_paths),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_mac_parse),
		cmocka_unit_test(test_mac_derive),
		cmocka_unit_test(test_client_mac),
		cmocka_unit_test(test_names_and_pci),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
