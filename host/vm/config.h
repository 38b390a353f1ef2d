/* ddtk's configuration file (INI, read with inih): the instance, the driver domain and its devices,
 * and the client VMs. See host/ddtk.conf for every key with its default. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "accel.h"
#include "error.h"

#define DDTK_NAME_MAX 32          /* instance and client names: [a-z0-9-], 1..32 characters */
#define DDTK_CLIENTS_MAX 32
#define DDTK_PATH_MAX 1024
#define DDTK_CMDLINE_MAX 1024
#define DDTK_MEMORY_MIB_MIN 64
#define DDTK_MEMORY_MIB_MAX (1024ull * 1024u)
#define DDTK_VCPUS_MAX 64
#define DDTK_DISK_MIB_MAX (64ull * 1024u * 1024u)
#define DDTK_BOOT_TIMEOUT_MAX 3600
#define DDTK_NET_QUEUES_MAX 16    /* queue pairs of a client's vhost-user-net NIC */
#define DDTK_MAC_LEN 6
#define DDTK_MAC_STR_LEN 18       /* "xx:xx:xx:xx:xx:xx" and its NUL */

struct ddtk_pci_addr {
	uint16_t domain;
	uint8_t bus, slot, function;
};

struct ddtk_mac {
	uint8_t bytes[DDTK_MAC_LEN];
};

/* A device of the driver domain: emulated by QEMU (tests, demos) or a host PCI device passed
 * through with VFIO (real hardware). */
enum ddtk_device_kind {
	DDTK_DEVICE_EMULATED,
	DDTK_DEVICE_HOSTDEV,
	_DDTK_DEVICE_LAST,
};

struct ddtk_device {
	enum ddtk_device_kind kind;
	struct ddtk_pci_addr addr;     /* DDTK_DEVICE_HOSTDEV only */
};

struct ddtk_dd_config {
	unsigned memory_mib, vcpus;
	struct ddtk_device nic;        /* emulated: an e1000 on QEMU's user-mode network */
	struct ddtk_device disk;       /* emulated: an AHCI disk backed by a raw image */
	uint64_t disk_size_mib;        /* size of the emulated disk's image when ddtk creates it */
	char disk_image[DDTK_PATH_MAX]; /* empty: STATE/dd-disk.img */
	char watchdog_action[16];
	char cmdline_append[DDTK_CMDLINE_MAX];
};

struct ddtk_client_config {
	char name[DDTK_NAME_MAX + 1];
	unsigned memory_mib, vcpus;
	char cmdline_append[DDTK_CMDLINE_MAX];
	/* A vhost-user-blk socket (a host-mode ddtk-blk) the client gets as its disk vda; empty: none. */
	char vhost_user_blk[DDTK_PATH_MAX];
	unsigned vhost_user_blk_queues;
	/* A vhost-user-net socket (e.g. ddtk-net) the client gets as its NIC; empty: none. Its queue
	 * pairs, 1..DDTK_NET_QUEUES_MAX. */
	char vhost_user_net[DDTK_PATH_MAX];
	unsigned vhost_user_net_queues;
	/* The NIC's MAC when `mac =` sets it; otherwise ddtk_config_client_mac() derives one, which
	 * depends on the instance name (known only once the file and the command line are read). */
	bool has_mac;
	struct ddtk_mac mac;
};

struct ddtk_config {
	char instance[DDTK_NAME_MAX + 1];
	enum vm_accel accel;
	char libvirt_uri[256];
	char state_dir[DDTK_PATH_MAX];
	char images_dir[DDTK_PATH_MAX];
	char emulator[DDTK_PATH_MAX];  /* empty: libvirt's default */
	unsigned boot_timeout_s;
	struct ddtk_dd_config dd;
	unsigned n_clients;
	struct ddtk_client_config clients[DDTK_CLIENTS_MAX];
};

/* The defaults: instance "demo", accel auto, a DD with emulated devices, clients a and b. */
void ddtk_config_init(struct ddtk_config *cfg);
/* Reads an INI file over the current values. On error, cfg may be partly updated and err says
 * which line and why. */
int ddtk_config_load(struct ddtk_config *cfg, const char *path, struct ddtk_err *err);
/* The same from a string (tests, fuzzing). */
int ddtk_config_load_string(struct ddtk_config *cfg, const char *text, struct ddtk_err *err);

bool ddtk_name_valid(const char *name);
int ddtk_pci_addr_parse(const char *s, struct ddtk_pci_addr *ret_addr);
const struct ddtk_client_config *ddtk_config_client(const struct ddtk_config *cfg, const char *name);

/* A unicast MAC as xx:xx:xx:xx:xx:xx (either case): -EINVAL when malformed, -EADDRNOTAVAIL when
 * all zeros, multicast or broadcast, which no NIC may have. */
int ddtk_mac_parse(const char *s, struct ddtk_mac *ret_mac);
/* Lowercase xx:xx:xx:xx:xx:xx into buf; returns buf. */
char *ddtk_mac_format(const struct ddtk_mac *mac, char buf[static DDTK_MAC_STR_LEN]);
/* The default MAC of client NAME of instance INSTANCE: locally administered unicast (first octet
 * 0x02), the other five octets from FNV-1a of "INSTANCE/NAME". Stable across runs and hosts. */
void ddtk_mac_derive(const char *instance, const char *name, struct ddtk_mac *ret_mac);
/* The MAC of client c's NIC: its `mac =` or, when unset, ddtk_mac_derive(cfg->instance, c->name). */
void ddtk_config_client_mac(const struct ddtk_config *cfg, const struct ddtk_client_config *c,
			    struct ddtk_mac *ret_mac);
