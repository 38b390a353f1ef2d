/* Reading ddtk.conf with inih. Every value is checked here, with the file's line in the message. */
#include "config.h"
#include "ddctl-proto.h"
#include "net-frame.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtk-config.h"

struct parse_state {
	struct ddtk_config *cfg;
	struct ddtk_err *err;
	int r;                /* first error, 0 while there is none */
};

static int parse_clients(struct ddtk_config *cfg, const char *v, struct ddtk_err *err);

void ddtk_config_init(struct ddtk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->instance, sizeof(cfg->instance), "demo");
	cfg->accel = VM_ACCEL_AUTO;
	snprintf(cfg->libvirt_uri, sizeof(cfg->libvirt_uri), "qemu:///system");
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", DDTK_STATE_DIR);
	snprintf(cfg->images_dir, sizeof(cfg->images_dir), "%s", DDTK_IMAGES_DIR);
	cfg->boot_timeout_s = 120;
	cfg->dd.memory_mib = 256;
	cfg->dd.vcpus = 1;
	cfg->dd.nic.kind = DDTK_DEVICE_EMULATED;
	cfg->dd.disk.kind = DDTK_DEVICE_EMULATED;
	cfg->dd.disk_size_mib = 1024;
	snprintf(cfg->dd.watchdog_action, sizeof(cfg->dd.watchdog_action), "none");
	cfg->dd.supervise = true;
	cfg->dd.restart_budget = 5;
	cfg->dd.restart_window_s = 600;
	cfg->dd.restart_delay_max_s = 30;
	/* The default topology: the driver domain and two clients. */
	parse_clients(cfg, "a b", NULL);
}

bool ddtk_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > DDTK_NAME_MAX || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '-'))
			return false;
	return true;
}

int ddtk_pci_addr_parse(const char *s, struct ddtk_pci_addr *ret_addr)
{
	unsigned dom, bus, slot, fn;
	int end = 0;
	/* The domain is optional, as in lspci's output: 03:00.0 means 0000:03:00.0. */
	if (sscanf(s, "%4x:%2x:%2x.%1x%n", &dom, &bus, &slot, &fn, &end) == 4 && s[end] == '\0') {
	} else if (end = 0, sscanf(s, "%2x:%2x.%1x%n", &bus, &slot, &fn, &end) == 3 && s[end] == '\0') {
		dom = 0;
	} else {
		return -EINVAL;
	}
	if (slot > 0x1f || fn > 7)
		return -EINVAL;
	*ret_addr = (struct ddtk_pci_addr){ .domain = (uint16_t)dom, .bus = (uint8_t)bus,
					    .slot = (uint8_t)slot, .function = (uint8_t)fn };
	return 0;
}

/* MAC syntax and classes are ddtk-net's (net-frame.c): one parser for the switch and its
 * configuration. */
int ddtk_mac_parse(const char *s, struct ddtk_mac *ret_mac)
{
	struct net_mac mac;

	if (net_mac_parse(s, &mac) < 0)
		return -EINVAL;
	if (!net_mac_is_valid_unicast(mac.b))
		return -EADDRNOTAVAIL;
	memcpy(ret_mac->bytes, mac.b, DDTK_MAC_LEN);
	return 0;
}

char *ddtk_mac_format(const struct ddtk_mac *mac, char buf[static DDTK_MAC_STR_LEN])
{
	net_mac_format(mac->bytes, buf);
	return buf;
}

/* 64-bit FNV-1a, continued from h over the bytes of s. */
static uint64_t fnv1a_64(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h;
}

void ddtk_mac_derive(const char *instance, const char *name, struct ddtk_mac *ret_mac)
{
	uint64_t h = fnv1a_64(fnv1a_64(fnv1a_64(0xcbf29ce484222325ull, instance), "/"), name);
	/* 0x02: locally administered (U/L bit set), unicast (I/G bit clear), so it cannot collide
	 * with a vendor's address. The top five bytes of the hash: the multiplication carries every
	 * input bit upwards only, so the high bits are the well-mixed ones. */
	ret_mac->bytes[0] = 0x02;
	for (int i = 0; i < 5; i++)
		ret_mac->bytes[1 + i] = (uint8_t)(h >> (56 - 8 * i));
}

void ddtk_config_client_mac(const struct ddtk_config *cfg, const struct ddtk_client_config *c,
			    struct ddtk_mac *ret_mac)
{
	if (c->has_mac)
		*ret_mac = c->mac;
	else
		ddtk_mac_derive(cfg->instance, c->name, ret_mac);
}

static int parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end != '\0' || x < min || x > max)
		return -ERANGE;
	*ret = x;
	return 0;
}

/* Sizes in MiB: a plain number, or a number with M or G (MiB, GiB). */
static int parse_mib(const char *v, uint64_t min, uint64_t max, uint64_t *ret)
{
	char num[32];
	size_t n = strlen(v);
	uint64_t mult = 1;
	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, v, n + 1);
	if (num[n - 1] == 'M' || num[n - 1] == 'G') {
		mult = num[n - 1] == 'G' ? 1024 : 1;
		num[n - 1] = '\0';
	}
	uint64_t x;
	int r = parse_uint(num, 0, UINT64_MAX / 1024, &x);
	if (r < 0)
		return r;
	x *= mult;
	if (x < min || x > max)
		return -ERANGE;
	*ret = x;
	return 0;
}

static int parse_device(const char *v, struct ddtk_device *dev)
{
	if (strcmp(v, "emulated") == 0) {
		dev->kind = DDTK_DEVICE_EMULATED;
		return 0;
	}
	if (strncmp(v, "pci:", 4) == 0) {
		dev->kind = DDTK_DEVICE_HOSTDEV;
		return ddtk_pci_addr_parse(v + 4, &dev->addr);
	}
	return -EINVAL;
}

static int copy_string(char *dst, size_t cap, const char *v)
{
	if (strlen(v) >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int copy_path(char *dst, size_t cap, const char *v)
{
	if (v[0] != '/')
		return -EINVAL;
	return copy_string(dst, cap, v);
}

static struct ddtk_client_config *client_find(struct ddtk_config *cfg, const char *name)
{
	for (unsigned i = 0; i < cfg->n_clients; i++)
		if (strcmp(cfg->clients[i].name, name) == 0)
			return &cfg->clients[i];
	return NULL;
}

const struct ddtk_client_config *ddtk_config_client(const struct ddtk_config *cfg, const char *name)
{
	return client_find((struct ddtk_config *)cfg, name);
}

/* `clients = a b c`: replaces the list; each client starts from the defaults. */
static int parse_clients(struct ddtk_config *cfg, const char *v, struct ddtk_err *err)
{
	char buf[DDTK_CLIENTS_MAX * (DDTK_NAME_MAX + 2)];
	if (copy_string(buf, sizeof(buf), v) < 0)
		return ddtk_err_set(err, -E2BIG, "too many clients (at most %d)", DDTK_CLIENTS_MAX);
	cfg->n_clients = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (!ddtk_name_valid(tok) || strcmp(tok, "dd") == 0)
			return ddtk_err_set(err, -EINVAL, "invalid client name '%s' (1-%d of a-z 0-9 -, not 'dd')",
					    tok, DDTK_NAME_MAX);
		if (client_find(cfg, tok))
			return ddtk_err_set(err, -EEXIST, "client '%s' listed twice", tok);
		if (cfg->n_clients == DDTK_CLIENTS_MAX)
			return ddtk_err_set(err, -E2BIG, "too many clients (at most %d)", DDTK_CLIENTS_MAX);
		struct ddtk_client_config *c = &cfg->clients[cfg->n_clients++];
		memset(c, 0, sizeof(*c));
		snprintf(c->name, sizeof(c->name), "%s", tok);
		c->memory_mib = 512;
		c->vcpus = 1;
		c->numa_nodes = 1;
		c->vhost_user_blk_queues = 1;
		c->vhost_user_net_queues = 1;
		c->volume_queues = 1;
		c->dd_nic_queues = 1;
	}
	return 0;
}

static int handle_ddtk(struct parse_state *st, const char *name, const char *v)
{
	struct ddtk_config *cfg = st->cfg;
	uint64_t x;
	int r;
	if (strcmp(name, "instance") == 0) {
		if (!ddtk_name_valid(v))
			return ddtk_err_set(st->err, -EINVAL, "invalid instance name '%s' (1-%d of a-z 0-9 -)",
					    v, DDTK_NAME_MAX);
		return copy_string(cfg->instance, sizeof(cfg->instance), v);
	}
	if (strcmp(name, "accel") == 0) {
		if (vm_accel_parse(v, &cfg->accel) < 0)
			return ddtk_err_set(st->err, -EINVAL, "accel must be auto, kvm or tcg, not '%s'", v);
		return 0;
	}
	if (strcmp(name, "libvirt-uri") == 0)
		return copy_string(cfg->libvirt_uri, sizeof(cfg->libvirt_uri), v);
	if (strcmp(name, "state-dir") == 0)
		return copy_path(cfg->state_dir, sizeof(cfg->state_dir), v);
	if (strcmp(name, "images-dir") == 0)
		return copy_path(cfg->images_dir, sizeof(cfg->images_dir), v);
	if (strcmp(name, "emulator") == 0)
		return copy_path(cfg->emulator, sizeof(cfg->emulator), v);
	if (strcmp(name, "boot-timeout") == 0) {
		if ((r = parse_uint(v, 1, DDTK_BOOT_TIMEOUT_MAX, &x)) < 0)
			return r;
		cfg->boot_timeout_s = (unsigned)x;
		return 0;
	}
	if (strcmp(name, "clients") == 0)
		return parse_clients(cfg, v, st->err);
	return -ENOKEY;
}

static int parse_memory(const char *v, unsigned *ret)
{
	uint64_t x;
	int r = parse_mib(v, DDTK_MEMORY_MIB_MIN, DDTK_MEMORY_MIB_MAX, &x);
	if (r >= 0)
		*ret = (unsigned)x;
	return r;
}

static int parse_vcpus(const char *v, unsigned *ret)
{
	uint64_t x;
	int r = parse_uint(v, 1, DDTK_VCPUS_MAX, &x);
	if (r >= 0)
		*ret = (unsigned)x;
	return r;
}

/* A network interface name as the kernel takes it (dev_valid_name()): 1..15 bytes, not "." or
 * "..", no '/', ':' or white space. */
static bool ifname_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > DDTK_IFNAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/' || name[i] == ':' || isspace((unsigned char)name[i]) || !isprint((unsigned char)name[i]))
			return false;
	return true;
}

static int parse_unsigned(const char *v, unsigned min, unsigned max, unsigned *ret)
{
	uint64_t x;
	int r = parse_uint(v, min, max, &x);
	if (r == 0)
		*ret = (unsigned)x;
	return r;
}

static int parse_yes_no(const char *v, bool *ret)
{
	if (strcmp(v, "yes") == 0)
		*ret = true;
	else if (strcmp(v, "no") == 0)
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

/* A number of min..max for key of [driver-domain], with an error that gives the range. */
static int parse_dd_unsigned(struct parse_state *st, const char *key, const char *v, unsigned min, unsigned max,
			     const char *unit, unsigned *ret)
{
	if (parse_unsigned(v, min, max, ret) < 0)
		return ddtk_err_set(st->err, -ERANGE, "[driver-domain] %s must be %u to %u (%s), not '%s'", key, min,
				    max, unit, v);
	return 0;
}

static int handle_dd(struct parse_state *st, const char *name, const char *v)
{
	struct ddtk_dd_config *dd = &st->cfg->dd;
	if (strcmp(name, "memory") == 0)
		return parse_memory(v, &dd->memory_mib);
	if (strcmp(name, "vcpus") == 0)
		return parse_vcpus(v, &dd->vcpus);
	if (strcmp(name, "nic") == 0)
		return parse_device(v, &dd->nic);
	if (strcmp(name, "nic-tap") == 0) {
		if (v[0] && !ifname_valid(v))
			return ddtk_err_set(st->err, -EINVAL, "nic-tap '%s' is not a network interface name "
					    "(1-%d characters, no '/', ':' or spaces)", v, DDTK_IFNAME_MAX);
		return copy_string(dd->nic_tap, sizeof(dd->nic_tap), v);
	}
	if (strcmp(name, "disk") == 0)
		return parse_device(v, &dd->disk);
	if (strcmp(name, "disk-size") == 0)
		return parse_mib(v, 1, DDTK_DISK_MIB_MAX, &dd->disk_size_mib);
	if (strcmp(name, "disk-image") == 0)
		return copy_path(dd->disk_image, sizeof(dd->disk_image), v);
	if (strcmp(name, "watchdog-action") == 0) {
		/* The actions libvirt's <watchdog action=...> accepts. */
		static const char *const actions[] = { "none", "reset", "poweroff", "shutdown",
						       "pause", "dump", "inject-nmi" };
		for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
			if (strcmp(v, actions[i]) == 0)
				return copy_string(dd->watchdog_action, sizeof(dd->watchdog_action), v);
		return -EINVAL;
	}
	if (strcmp(name, "cmdline-append") == 0)
		return copy_string(dd->cmdline_append, sizeof(dd->cmdline_append), v);
	if (strcmp(name, "supervise") == 0)
		return parse_yes_no(v, &dd->supervise);
	if (strcmp(name, "restart-budget") == 0)
		return parse_dd_unsigned(st, name, v, 1, DDTK_RESTART_BUDGET_MAX, "restarts", &dd->restart_budget);
	if (strcmp(name, "restart-window") == 0)
		return parse_dd_unsigned(st, name, v, 1, DDTK_RESTART_WINDOW_MAX, "seconds", &dd->restart_window_s);
	if (strcmp(name, "restart-delay-max") == 0)
		return parse_dd_unsigned(st, name, v, 0, DDTK_RESTART_DELAY_MAX, "seconds", &dd->restart_delay_max_s);
	return -ENOKEY;
}

/* A queue count of 1..max, with an error naming the client and the key. */
static int parse_client_queues(struct parse_state *st, const char *client, const char *key, const char *v,
			       unsigned max, const char *what, unsigned *ret)
{
	uint64_t x;
	if (parse_uint(v, 1, max, &x) < 0)
		return ddtk_err_set(st->err, -ERANGE, "[client.%s] %s must be 1 to %u (%s), not '%s'",
				    client, key, max, what, v);
	*ret = (unsigned)x;
	return 0;
}

static int handle_client(struct parse_state *st, const char *client, const char *name, const char *v)
{
	struct ddtk_client_config *c = client_find(st->cfg, client);
	if (!c)
		return ddtk_err_set(st->err, -ENOENT,
				    "section [client.%s]: no such client in [ddtk] clients =", client);
	if (strcmp(name, "memory") == 0)
		return parse_memory(v, &c->memory_mib);
	if (strcmp(name, "vcpus") == 0)
		return parse_vcpus(v, &c->vcpus);
	if (strcmp(name, "cmdline-append") == 0)
		return copy_string(c->cmdline_append, sizeof(c->cmdline_append), v);
	if (strcmp(name, "numa-nodes") == 0)
		return parse_client_queues(st, client, name, v, DDTK_NUMA_NODES_MAX, "NUMA nodes", &c->numa_nodes);
	if (strcmp(name, "vhost-user-blk") == 0) {
		c->vhost_user_blk[0] = '\0';
		return v[0] ? copy_path(c->vhost_user_blk, sizeof(c->vhost_user_blk), v) : 0;
	}
	if (strcmp(name, "vhost-user-blk-queues") == 0)
		return parse_vcpus(v, &c->vhost_user_blk_queues);
	if (strcmp(name, "vhost-user-net") == 0) {
		c->vhost_user_net[0] = '\0';
		return v[0] ? copy_path(c->vhost_user_net, sizeof(c->vhost_user_net), v) : 0;
	}
	if (strcmp(name, "vhost-user-net-queues") == 0)
		return parse_client_queues(st, client, name, v, DDTK_NET_QUEUES_MAX, "queue pairs",
					   &c->vhost_user_net_queues);
	if (strcmp(name, "volume") == 0) {
		if (!v[0]) {
			c->volume_mib = 0;
			return 0;
		}
		if (parse_mib(v, 0, DDTK_DISK_MIB_MAX, &c->volume_mib) < 0)
			return ddtk_err_set(st->err, -ERANGE, "[client.%s] volume '%s' is not a size of 0 (none) to "
					    "%llu MiB (a number of MiB, or with M or G)", client, v,
					    (unsigned long long)DDTK_DISK_MIB_MAX);
		return 0;
	}
	if (strcmp(name, "volume-read-only") == 0) {
		if (parse_yes_no(v, &c->volume_read_only) < 0)
			return ddtk_err_set(st->err, -EINVAL, "[client.%s] volume-read-only must be yes or no, not '%s'",
					    client, v);
		return 0;
	}
	if (strcmp(name, "volume-queues") == 0)
		return parse_client_queues(st, client, name, v, DDTK_VOLUME_QUEUES_MAX, "queues", &c->volume_queues);
	if (strcmp(name, "dd-nic") == 0) {
		if (parse_yes_no(v, &c->dd_nic) < 0)
			return ddtk_err_set(st->err, -EINVAL, "[client.%s] dd-nic must be yes or no, not '%s'", client, v);
		return 0;
	}
	if (strcmp(name, "dd-nic-queues") == 0)
		return parse_client_queues(st, client, name, v, DDTK_NET_QUEUES_MAX, "queue pairs", &c->dd_nic_queues);
	if (strcmp(name, "mac") == 0) {
		if (!v[0]) {
			c->has_mac = false; /* derived from the instance and client names */
			return 0;
		}
		int r = ddtk_mac_parse(v, &c->mac);
		if (r == -EINVAL)
			return ddtk_err_set(st->err, r, "[client.%s] mac '%s' is not of the form XX:XX:XX:XX:XX:XX",
					    client, v);
		if (r < 0)
			return ddtk_err_set(st->err, r,
					    "[client.%s] mac '%s' is not a unicast address (zero, multicast or "
					    "broadcast); a NIC needs one, e.g. with first octet 02", client, v);
		c->has_mac = true;
		return 0;
	}
	return -ENOKEY;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	if (st->r < 0)
		return 1; /* keep the first error; inih still reads to the end */
	int r;
	st->err->msg[0] = '\0';
	if (strcmp(section, "ddtk") == 0)
		r = handle_ddtk(st, name, value);
	else if (strcmp(section, "driver-domain") == 0)
		r = handle_dd(st, name, value);
	else if (strncmp(section, "client.", 7) == 0)
		r = handle_client(st, section + 7, name, value);
	else
		r = ddtk_err_set(st->err, -ENOKEY, "unknown section [%s]", section);
	if (r < 0) {
		st->r = r;
		char detail[sizeof(st->err->msg)];
		if (st->err->msg[0])
			snprintf(detail, sizeof(detail), "%s", st->err->msg);
		else if (r == -ENOKEY)
			snprintf(detail, sizeof(detail), "unknown key '%s' in [%s]", name, section);
		else
			snprintf(detail, sizeof(detail), "invalid value '%s' for %s in [%s]: %s", value, name,
				 section, strerror(-r));
		snprintf(st->err->msg, sizeof(st->err->msg), "%s", detail);
		return 0;
	}
	return 1;
}

static int config_finish(struct parse_state *st, int line, const char *what)
{
	if (line == -1)
		return ddtk_err_set(st->err, -errno ? -errno : -EIO, "%s: cannot open: %s", what, strerror(errno));
	if (line == -2)
		return ddtk_err_set(st->err, -ENOMEM, "%s: out of memory", what);
	if (line > 0) {
		char detail[sizeof(st->err->msg)];
		snprintf(detail, sizeof(detail), "%s", st->r < 0 ? st->err->msg : "syntax error");
		return ddtk_err_set(st->err, st->r < 0 ? st->r : -EINVAL, "%s:%d: %s", what, line, detail);
	}
	return 0;
}

/* After a whole file: what involves several keys, with the file's name in the message. */
static int config_check_file(struct parse_state *st, const char *what)
{
	int r = ddtk_config_check(st->cfg, st->err);
	if (r < 0) {
		char detail[sizeof(st->err->msg)];
		snprintf(detail, sizeof(detail), "%s", st->err->msg);
		return ddtk_err_set(st->err, r, "%s: %s", what, detail);
	}
	return 0;
}

int ddtk_config_load(struct ddtk_config *cfg, const char *path, struct ddtk_err *err)
{
	struct ddtk_err scratch = { .msg = "" };
	struct parse_state st = { .cfg = cfg, .err = err ? err : &scratch };
	errno = 0;
	int r = config_finish(&st, ini_parse(path, config_handler, &st), path);
	return r < 0 ? r : config_check_file(&st, path);
}

int ddtk_config_load_string(struct ddtk_config *cfg, const char *text, struct ddtk_err *err)
{
	struct ddtk_err scratch = { .msg = "" };
	struct parse_state st = { .cfg = cfg, .err = err ? err : &scratch };
	int r = config_finish(&st, ini_parse_string(text, config_handler, &st), "config");
	return r < 0 ? r : config_check_file(&st, "config");
}

bool ddtk_config_uses_bridge(const struct ddtk_config *cfg)
{
	for (unsigned i = 0; i < cfg->n_clients; i++)
		if (cfg->clients[i].volume_mib || cfg->clients[i].dd_nic)
			return true;
	return false;
}

static uint64_t align_up(uint64_t x, uint64_t align)
{
	return (x + align - 1) / align * align;
}

int ddtk_config_volume(const struct ddtk_config *cfg, unsigned client_index, uint64_t *ret_offset,
		       uint64_t *ret_size)
{
	if (client_index >= cfg->n_clients || !cfg->clients[client_index].volume_mib)
		return -ENOENT;
	/* At most DDTK_CLIENTS_MAX volumes of at most DDTK_DISK_MIB_MAX MiB: no sum can wrap. */
	uint64_t offset = 0;
	for (unsigned i = 0; i < client_index; i++)
		offset += align_up(cfg->clients[i].volume_mib << 20, DDTK_VOLUME_ALIGN);
	*ret_offset = offset;
	*ret_size = cfg->clients[client_index].volume_mib << 20;
	return 0;
}

/* snprintf into buf; -ENAMETOOLONG (and "") when the result does not fit in cap bytes. */
static int path_format(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int path_format(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, cap, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

int ddtk_bridge_dir(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX])
{
	return path_format(buf, DDTK_STATE_PATH_MAX, "%s/%s/bridge", cfg->state_dir, cfg->instance);
}

static int client_socket(const struct ddtk_config *cfg, unsigned client_index, const char *kind,
			 char buf[static DDTK_SOCKET_PATH_MAX])
{
	if (client_index >= cfg->n_clients) {
		buf[0] = '\0';
		return -ENOENT;
	}
	return path_format(buf, DDTK_SOCKET_PATH_MAX, "%s/%s/bridge/%s-%s.sock", cfg->state_dir, cfg->instance,
			   cfg->clients[client_index].name, kind);
}

int ddtk_bridge_blk_socket(const struct ddtk_config *cfg, unsigned client_index,
			   char buf[static DDTK_SOCKET_PATH_MAX])
{
	return client_socket(cfg, client_index, "blk", buf);
}

int ddtk_bridge_net_socket(const struct ddtk_config *cfg, unsigned client_index,
			   char buf[static DDTK_SOCKET_PATH_MAX])
{
	return client_socket(cfg, client_index, "net", buf);
}

int ddtk_bridge_ivshmem_socket(const struct ddtk_config *cfg, unsigned session,
			       char buf[static DDTK_SOCKET_PATH_MAX])
{
	if (session > DDCTL_SESSIONS_MAX &&
	    (session < DDCTL_MEM_ANCHOR_IVPOSITION || session > DDCTL_MEM_IVPOSITION_LAST)) {
		buf[0] = '\0';
		return -ERANGE;
	}
	return path_format(buf, DDTK_SOCKET_PATH_MAX, "%s/%s/bridge/ivshmem-%u.sock", cfg->state_dir,
			   cfg->instance, session);
}

int ddtk_bridge_status_socket(const struct ddtk_config *cfg, char buf[static DDTK_SOCKET_PATH_MAX])
{
	return path_format(buf, DDTK_SOCKET_PATH_MAX, "%s/%s/bridge/bridge.sock", cfg->state_dir, cfg->instance);
}

int ddtk_bridge_pid_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX])
{
	return path_format(buf, DDTK_STATE_PATH_MAX, "%s/%s/bridge.pid", cfg->state_dir, cfg->instance);
}

int ddtk_bridge_log_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX])
{
	return path_format(buf, DDTK_STATE_PATH_MAX, "%s/%s/bridge.log", cfg->state_dir, cfg->instance);
}

int ddtk_config_daemon(struct ddtk_config *cfg, const char *path, const char *instance, const char *accel,
		       struct ddtk_err *err)
{
	int r;
	ddtk_config_init(cfg);
	if (path && (r = ddtk_config_load(cfg, path, err)) < 0)
		return r;
	if (instance) {
		if (!ddtk_name_valid(instance))
			return ddtk_err_set(err, -EINVAL, "invalid instance name '%s' (1-%d of a-z 0-9 -)", instance,
					    DDTK_NAME_MAX);
		snprintf(cfg->instance, sizeof(cfg->instance), "%s", instance);
	}
	if (accel && vm_accel_parse(accel, &cfg->accel) < 0)
		return ddtk_err_set(err, -EINVAL, "--accel must be auto, kvm or tcg, not '%s'", accel);
	return ddtk_config_check(cfg, err);
}

int ddtk_ddtkd_status_socket(const struct ddtk_config *cfg, char buf[static DDTK_SOCKET_PATH_MAX])
{
	return path_format(buf, DDTK_SOCKET_PATH_MAX, "%s/%s/ddtkd.sock", cfg->state_dir, cfg->instance);
}

int ddtk_ddtkd_pid_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX])
{
	return path_format(buf, DDTK_STATE_PATH_MAX, "%s/%s/ddtkd.pid", cfg->state_dir, cfg->instance);
}

int ddtk_ddtkd_log_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX])
{
	return path_format(buf, DDTK_STATE_PATH_MAX, "%s/%s/ddtkd.log", cfg->state_dir, cfg->instance);
}

int ddtk_dd_hold_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX])
{
	return path_format(buf, DDTK_STATE_PATH_MAX, "%s/%s/dd.hold", cfg->state_dir, cfg->instance);
}

/* Every socket path the bridge will bind must fit a sockaddr_un: the longest ones are checked. */
static int check_bridge_paths(const struct ddtk_config *cfg, struct ddtk_err *err)
{
	char path[DDTK_SOCKET_PATH_MAX], name[DDTK_NAME_MAX + 32] = "";
	if (ddtk_bridge_status_socket(cfg, path) < 0)
		snprintf(name, sizeof(name), "bridge.sock");
	else if (ddtk_bridge_ivshmem_socket(cfg, DDCTL_MEM_IVPOSITION_LAST, path) < 0)
		snprintf(name, sizeof(name), "ivshmem-%d.sock", DDCTL_MEM_IVPOSITION_LAST);
	for (unsigned i = 0; !name[0] && i < cfg->n_clients; i++) {
		const struct ddtk_client_config *c = &cfg->clients[i];
		if (c->volume_mib && ddtk_bridge_blk_socket(cfg, i, path) < 0)
			snprintf(name, sizeof(name), "%s-blk.sock", c->name);
		else if (c->dd_nic && ddtk_bridge_net_socket(cfg, i, path) < 0)
			snprintf(name, sizeof(name), "%s-net.sock", c->name);
	}
	if (name[0])
		return ddtk_err_set(err, -ENAMETOOLONG, "ddtk-bridge's socket %s/%s/bridge/%s would be longer than "
				    "a Unix socket path may be (%d characters): choose a shorter state-dir or instance",
				    cfg->state_dir, cfg->instance, name, DDTK_SOCKET_PATH_MAX - 1);
	return 0;
}

/* The sum of the volumes must fit the DD's disk; the message lists what each client takes. */
static int check_volumes(const struct ddtk_config *cfg, struct ddtk_err *err)
{
	uint64_t total = 0;
	char parts[256] = "";
	size_t len = 0;
	for (unsigned i = 0; i < cfg->n_clients; i++) {
		const struct ddtk_client_config *c = &cfg->clients[i];
		if (!c->volume_mib)
			continue;
		total += align_up(c->volume_mib << 20, DDTK_VOLUME_ALIGN) >> 20;
		if (len < sizeof(parts)) {
			int n = snprintf(parts + len, sizeof(parts) - len, "%s%s %" PRIu64, len ? " + " : "", c->name,
					 c->volume_mib);
			len = n < 0 ? sizeof(parts) : len + (size_t)n;
		}
	}
	if (total > cfg->dd.disk_size_mib)
		return ddtk_err_set(err, -ENOSPC, "the clients' volumes need %" PRIu64 " MiB (%s%s) but the driver "
				    "domain's disk has %" PRIu64 " MiB ([driver-domain] disk-size)", total, parts,
				    len >= sizeof(parts) ? "..." : "", cfg->dd.disk_size_mib);
	return 0;
}

int ddtk_config_check(const struct ddtk_config *cfg, struct ddtk_err *err)
{
	for (unsigned i = 0; i < cfg->n_clients; i++) {
		const struct ddtk_client_config *c = &cfg->clients[i];
		if (c->numa_nodes > c->vcpus || c->memory_mib % c->numa_nodes)
			return ddtk_err_set(err, -EINVAL, "[client.%s] numa-nodes = %u needs at least as many vcpus (%u) and "
					    "memory (%u MiB) divisible by it", c->name, c->numa_nodes, c->vcpus,
					    c->memory_mib);
		if (c->vhost_user_blk[0] && c->volume_mib)
			return ddtk_err_set(err, -EINVAL, "[client.%s] has both vhost-user-blk and volume: its disk "
					    "comes from one of them (set the other empty)", c->name);
		if (c->vhost_user_net[0] && c->dd_nic)
			return ddtk_err_set(err, -EINVAL, "[client.%s] has both vhost-user-net and dd-nic = yes: its "
					    "NIC comes from one of them", c->name);
	}
	if (cfg->dd.nic_tap[0] && cfg->dd.nic.kind != DDTK_DEVICE_EMULATED)
		return ddtk_err_set(err, -EINVAL, "[driver-domain] nic-tap is for nic = emulated; the passed-through "
				    "NIC has its own link (set nic-tap empty)");
	char sock[DDTK_SOCKET_PATH_MAX];
	if (cfg->dd.supervise && ddtk_ddtkd_status_socket(cfg, sock) < 0)
		return ddtk_err_set(err, -ENAMETOOLONG, "state-dir and instance make ddtkd's socket %s/%s/ddtkd.sock "
				    "longer than a Unix socket's %d bytes: a shorter state-dir", cfg->state_dir,
				    cfg->instance, DDTK_SOCKET_PATH_MAX - 1);
	if (!ddtk_config_uses_bridge(cfg))
		return 0;
	if (cfg->n_clients > DDCTL_CLIENTS_MAX)
		return ddtk_err_set(err, -E2BIG, "%u clients, but at most %d when any has a volume or dd-nic (the "
				    "driver domain has a PCI slot for each client's two devices)", cfg->n_clients,
				    DDCTL_CLIENTS_MAX);
	unsigned kicks = ddtk_config_kick_vectors(cfg, DDCTL_SESSIONS_MAX + 1);
	if (kicks > DDCTL_KICK_VECTORS_MAX)
		return ddtk_err_set(err, -E2BIG, "the clients' volumes and dd-nics have %u virtqueues in all, but the "
				    "driver domain takes at most %d (one interrupt each): fewer volume-queues or "
				    "dd-nic-queues", kicks, DDCTL_KICK_VECTORS_MAX);
	int r = check_volumes(cfg, err);
	if (r < 0)
		return r;
	return check_bridge_paths(cfg, err);
}

/* Virtqueues of the DD's session s (0 when it is unused). */
static unsigned session_virtqueues(const struct ddtk_config *cfg, unsigned s)
{
	unsigned i = (s - 1) / 2;

	if (s < 1 || i >= cfg->n_clients)
		return 0;
	const struct ddtk_client_config *c = &cfg->clients[i];
	if (s == ddctl_session_blk(i))
		return c->volume_mib ? c->volume_queues : 0;
	return c->dd_nic ? 2 * c->dd_nic_queues : 0;
}

unsigned ddtk_config_kick_vectors(const struct ddtk_config *cfg, unsigned session)
{
	unsigned n = 0;

	for (unsigned s = 1; s < session && s <= DDCTL_SESSIONS_MAX; s++)
		n += session_virtqueues(cfg, s);
	return n;
}
