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
#define DDTK_RESTART_BUDGET_MAX 100     /* = RESTART_BUDGET_MAX of ddtkd's policy */
#define DDTK_RESTART_WINDOW_MAX 86400
#define DDTK_RESTART_DELAY_MAX 3600
#define DDTK_NET_QUEUES_MAX 16    /* queue pairs of a client's vhost-user-net or dd-nic NIC */
#define DDTK_VOLUME_QUEUES_MAX 16 /* queues of a client's volume */
#define DDTK_NUMA_NODES_MAX 4     /* a client's NUMA nodes (= DDCTL_MEM_FILES_MAX: a file each) */
#define DDTK_VOLUME_ALIGN (UINT64_C(1) << 20) /* volumes start on MiB boundaries of the DD's disk */
#define DDTK_IFNAME_MAX 15        /* a host network interface's name (IFNAMSIZ - 1) */
/* Paths of files under the state folder, and of Unix sockets (sizeof(sun_path), with the NUL). */
#define DDTK_STATE_PATH_MAX (DDTK_PATH_MAX + 128)
#define DDTK_SOCKET_PATH_MAX 108
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
	struct ddtk_device nic;        /* emulated: an e1000 on QEMU's user-mode network or nic_tap */
	char nic_tap[DDTK_IFNAME_MAX + 1]; /* an existing host tap for the emulated e1000; empty: none */
	struct ddtk_device disk;       /* emulated: an AHCI disk backed by a raw image */
	uint64_t disk_size_mib;        /* size of the emulated disk's image when ddtk creates it */
	char disk_image[DDTK_PATH_MAX]; /* empty: STATE/dd-disk.img */
	char watchdog_action[16];
	char cmdline_append[DDTK_CMDLINE_MAX];
	/* ddtkd, the supervisor `ddtk up` starts: whether it runs, and its restart policy (at most
	 * restart_budget restarts within restart_window_s, each recent one doubling the delay before
	 * the next from 1 s up to restart_delay_max_s; docs/ddtkd.md). */
	bool supervise;
	unsigned restart_budget, restart_window_s, restart_delay_max_s;
};

struct ddtk_client_config {
	char name[DDTK_NAME_MAX + 1];
	unsigned memory_mib, vcpus;
	/* Guest NUMA nodes, 1..DDTK_NUMA_NODES_MAX: memory and vCPUs split evenly, each node's memory
	 * its own memfd (vhost-user then sees one file per node). At most vcpus. */
	unsigned numa_nodes;
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
	/* A volume of the driver domain's disk as disk vda, served by ddtk-blk inside the DD through
	 * ddtk-bridge; 0: none. Where it lies: ddtk_config_volume(). Its queue count. */
	uint64_t volume_mib;
	bool volume_read_only;
	unsigned volume_queues;
	/* A NIC behind the DD's NIC, served by ddtk-net inside the DD through ddtk-bridge (MAC as
	 * above); its queue pairs, 1..DDTK_NET_QUEUES_MAX. */
	bool dd_nic;
	unsigned dd_nic_queues;
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
/* Reads an INI file over the current values, then applies ddtk_config_check(). On error, cfg may
 * be partly updated and err says which line (or which keys) and why. */
int ddtk_config_load(struct ddtk_config *cfg, const char *path, struct ddtk_err *err);
/* The same from a string (tests, fuzzing). */
int ddtk_config_load_string(struct ddtk_config *cfg, const char *text, struct ddtk_err *err);
/* What no single key can be checked for: a client with both vhost-user-blk and volume (or both
 * vhost-user-net and dd-nic), more than DDCTL_CLIENTS_MAX clients when the bridge is used, volumes
 * that do not fit disk-size, nic-tap with a passed-through NIC, bridge socket paths longer than a
 * Unix socket's. The load functions call it; call it again after changing cfg (ddtk's -i). */
int ddtk_config_check(const struct ddtk_config *cfg, struct ddtk_err *err);

/* The configuration of a daemon (ddtk-bridge, ddtkd) as ddtk starts it: the built-in default, then
 * the file at path (NULL: none), then instance and accel (NULL: the file's), checked. */
int ddtk_config_daemon(struct ddtk_config *cfg, const char *path, const char *instance, const char *accel,
		       struct ddtk_err *err);

/* Kicks reach the DD as MSI-X vectors of its state device, one per virtqueue of the DD's sessions
 * in session order (ddctl-proto.h): the virtqueues of the sessions before `session`, i.e. the first
 * kick vector of `session`; with DDCTL_SESSIONS_MAX + 1, all of them. ddtk_config_check keeps the
 * total at most DDCTL_KICK_VECTORS_MAX. */
unsigned ddtk_config_kick_vectors(const struct ddtk_config *cfg, unsigned session);

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

/* Whether any client has a device served from inside the driver domain (volume or dd-nic): then
 * ddtk-bridge runs and the DD gets its hot-plug PCI bridge. */
bool ddtk_config_uses_bridge(const struct ddtk_config *cfg);
/* Where client `client_index`'s volume lies on the DD's disk, in bytes: volumes follow each other
 * in the order of `clients` from offset 0, each starting on a DDTK_VOLUME_ALIGN boundary. -ENOENT
 * when the client has no volume (or there is no such client); outputs untouched then. */
int ddtk_config_volume(const struct ddtk_config *cfg, unsigned client_index, uint64_t *ret_offset,
		       uint64_t *ret_size);

/* ddtk-bridge's files, from cfg's state-dir and instance. Each writes the path into buf and returns
 * 0, or -ENAMETOOLONG (sockets must also fit a Unix socket address, DDTK_SOCKET_PATH_MAX), -ENOENT
 * for a client index past the list, -ERANGE for an IVPosition that is no device's; buf then
 * holds "". The sockets live in STATE-DIR/INSTANCE/bridge/, a folder of mode 0711 so
 * that QEMU (user libvirt-qemu) reaches them:
 *   ddtk_bridge_dir             STATE-DIR/INSTANCE/bridge
 *   ddtk_bridge_blk_socket      bridge/NAME-blk.sock: client `client_index`'s volume (vhost-user-blk)
 *   ddtk_bridge_net_socket      bridge/NAME-net.sock: its dd-nic (vhost-user-net)
 *   ddtk_bridge_ivshmem_socket  bridge/ivshmem-P.sock: the ivshmem server of the device with
 *                               IVPosition P: session P (0: the state device), or a further
 *                               memory file's (ddctl_mem_ivposition)
 *   ddtk_bridge_status_socket   bridge/bridge.sock: one JSON document per connection, then EOF
 *   ddtk_bridge_pid_file        STATE-DIR/INSTANCE/bridge.pid (written by `ddtk up`)
 *   ddtk_bridge_log_file        STATE-DIR/INSTANCE/bridge.log (its stdout and stderr) */
int ddtk_bridge_dir(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX]);
int ddtk_bridge_blk_socket(const struct ddtk_config *cfg, unsigned client_index,
			   char buf[static DDTK_SOCKET_PATH_MAX]);
int ddtk_bridge_net_socket(const struct ddtk_config *cfg, unsigned client_index,
			   char buf[static DDTK_SOCKET_PATH_MAX]);
int ddtk_bridge_ivshmem_socket(const struct ddtk_config *cfg, unsigned session,
			       char buf[static DDTK_SOCKET_PATH_MAX]);
int ddtk_bridge_status_socket(const struct ddtk_config *cfg, char buf[static DDTK_SOCKET_PATH_MAX]);
int ddtk_bridge_pid_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX]);
int ddtk_bridge_log_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX]);

/* ddtkd's files (`ddtk up` starts it when [driver-domain] supervise = yes), the same way:
 *   ddtk_ddtkd_status_socket  STATE-DIR/INSTANCE/ddtkd.sock: one JSON document per connection
 *   ddtk_ddtkd_pid_file       STATE-DIR/INSTANCE/ddtkd.pid
 *   ddtk_ddtkd_log_file       STATE-DIR/INSTANCE/ddtkd.log
 *   ddtk_dd_hold_file         STATE-DIR/INSTANCE/dd.hold: present while the DD is down on purpose
 *                             (`ddtk stop dd` writes it, `ddtk start dd` removes it); ddtkd does
 *                             not restart a DD that is held */
int ddtk_ddtkd_status_socket(const struct ddtk_config *cfg, char buf[static DDTK_SOCKET_PATH_MAX]);
int ddtk_ddtkd_pid_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX]);
int ddtk_ddtkd_log_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX]);
int ddtk_dd_hold_file(const struct ddtk_config *cfg, char buf[static DDTK_STATE_PATH_MAX]);
