/* ddtk-bridge: owns every client's vhost-user socket, keeps each device's state, and has the
 * back-ends in the driver domain (DD) serve them: client RAM and calls through an
 * ivshmem-doorbell device per session (and per further memory file; the bridge is their ivshmem
 * server), kicks through the state device's vectors (bridge-kicks.c), control through
 * ddtk-agent on the DD's virtio-serial port. When the DD goes away the clients stay connected; the
 * next DD gets their devices re-plugged and their state replayed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include "config.h"
#include "ddctl-proto.h"
#include "domxml.h"
#include "vu-loop.h"
#include "vu-mem.h"
#include "vu-msg.h"
#include "vu-socket.h"

#define BRIDGE_PENDING_MAX 64      /* requests sent to the DD whose replies are awaited, per session */
#define BRIDGE_CONFIG_CACHE 4      /* GET_CONFIG answers remembered per session */

struct bridge;

struct bridge_queue {
	bool num_set, addr_set, base_set, enable_set;
	uint32_t num, base, enable;
	struct vu_vring_addr addr;
	int kick_fd, call_fd;          /* the client's; -1 when unset (kicks: forwarded, bridge-kicks.c) */
	bool in_dd;                    /* the DD runs this ring: its base is the DD's to tell */
};

/* What a reply from the DD is for. */
enum bridge_reply_owner {
	BRIDGE_REPLY_CLIENT,           /* forward to the client */
	BRIDGE_REPLY_BRIDGE,           /* the bridge's own request (replay): check only */
	_BRIDGE_REPLY_LAST,
};

struct bridge_pending {
	uint32_t request;
	enum bridge_reply_owner owner;
	uint32_t index;                        /* GET_VRING_BASE: the queue */
	uint32_t config_offset, config_size;   /* GET_CONFIG */
	int64_t sent_ms;
};

struct bridge_config_cache {
	bool valid;
	uint32_t offset, size;
	uint8_t bytes[VU_MAX_CONFIG_SIZE];
};

enum bridge_device_state {
	BRIDGE_DEVICE_NONE,            /* not in the DD */
	BRIDGE_DEVICE_PLUGGING,        /* attach requested from libvirt */
	BRIDGE_DEVICE_PLUGGED,         /* attached; waiting for ddtk-agent's DEVICE_ADDED */
	BRIDGE_DEVICE_READY,           /* bound to vfio-pci in the DD */
	BRIDGE_DEVICE_UNPLUGGING,      /* detach requested; waiting until it is gone */
	_BRIDGE_DEVICE_LAST,
};

enum bridge_dd_session {
	BRIDGE_DD_SESSION_DOWN,        /* no DD, or not asked yet */
	BRIDGE_DD_SESSION_STARTING,    /* SESSION_START sent */
	BRIDGE_DD_SESSION_RUNNING,     /* the agent relays to the back-end */
	BRIDGE_DD_SESSION_STOPPING,    /* SESSION_STOP sent (before an unplug) */
	_BRIDGE_DD_SESSION_LAST,
};

/* The ivshmem server side of one device (a session's, or the state device). */
struct bridge_ivshmem {
	struct bridge *b;
	unsigned id;                   /* IVPosition */
	char path[DDTK_SOCKET_PATH_MAX];
	int listen_fd;
	struct vu_watch listen_watch;
	int conn_fd;                   /* the DD's QEMU */
	struct vu_watch conn_watch;
	int mem_fd;                    /* what BAR2 shows; owned elsewhere */
	bool mem_only;                 /* a further memory file's device: no vectors sent */
	unsigned vectors;
	int dummy_fd;                  /* an eventfd standing in for a vector that has no fd yet */
	uint32_t peer_id;              /* the client's call vectors' current peer id (DDCTL_PEER_ID_FIRST..) */
	int64_t poke_at_ms;            /* after a peer id change: signal the calls once (0: none) */
};

/* A further file of a client's memory (ddctl-proto.h): one more device in the DD. */
struct bridge_mem_file {
	int fd;                        /* the client's; -1: none */
	dev_t dev;
	ino_t ino;
	struct bridge_ivshmem iv;      /* IVPosition ddctl_mem_ivposition(session, k) */
	enum bridge_device_state device;
	unsigned slot;                 /* its slot of VM_DD_MEM_BUS while plugged; 0: none */
	int64_t plugged_ms;
};

struct bridge_session {
	struct bridge *b;
	unsigned id;                   /* session id = IVPosition = slot */
	struct ddctl_session_spec spec;
	unsigned nqueues;              /* virtqueues: blk queues, net 2 x pairs */
	char socket_path[DDTK_SOCKET_PATH_MAX];
	char client_name[DDTK_NAME_MAX + 1];

	/* The client (QEMU) side. */
	int listen_fd;
	struct vu_watch listen_watch;
	int conn_fd;
	struct vu_watch conn_watch;
	struct vu_socket_rx rx;
	bool parked;                   /* a message waits in rx.msg for the DD (not read further) */
	bool waiting_client_reply;     /* the client waits for a reply the DD gives */
	uint64_t client_protocol_features;

	/* Recorded device state, replayed to every new DD session. */
	bool owner_set, features_set, mem_set;
	uint64_t features;
	struct vu_mem_table_msg mem_msg;
	struct vu_mem mem;             /* mapped in the bridge: to read used indexes */
	int mem_fd;                    /* the client's RAM fd (of file 0: the first region's) */
	dev_t mem_dev;
	ino_t mem_ino;
	unsigned nfiles;               /* files its memory is in: 0 (no table yet) to DDCTL_MEM_FILES_MAX */
	struct bridge_mem_file files[DDCTL_MEM_FILES_MAX];   /* [1..nfiles): the further ones */
	struct bridge_queue q[VU_MAX_QUEUES];
	bool inflight_valid;           /* the state area holds this ring generation's inflight data */

	/* Answers of the DD's back-end that do not change, for when the DD is down. */
	bool have_features, have_protocol_features, have_queue_num;
	uint64_t dd_features, dd_protocol_features, dd_queue_num;
	struct bridge_config_cache config_cache[BRIDGE_CONFIG_CACHE];

	/* The DD side. */
	enum bridge_dd_session dd;
	enum bridge_device_state device;
	struct bridge_ivshmem iv;
	bool built;                    /* state replayed; the DD serves the rings */
	bool want_replug;              /* the memory fd changed (or the client went) under a plugged device */
	bool want_restart;             /* a ring restarted: the DD's session starts again (no replug) */
	int64_t settle_ms;             /* debounce: QEMU sends a device's rings one after another; no
	                                * plug or build before */
	int64_t start_after_ms;        /* back-off before starting a failed DD session again */
	int64_t plugged_ms;            /* when the device was plugged (ready within seconds, or re-plugged) */
	bool builds_acked_reply;       /* the DD's back-end acked REPLY_ACK in this build */
	bool dd_pf_set;                /* this DD session got SET_PROTOCOL_FEATURES: it takes questions */
	struct bridge_pending pending[BRIDGE_PENDING_MAX];
	unsigned pending_head, pending_count;
	unsigned builds;               /* times the state was replayed to a DD session */
	unsigned plugs;                /* times its device was plugged into a DD */
	char last_error[160];
};

struct bridge_job;

struct bridge {
	struct ddtk_config cfg;
	const char *config_path;       /* NULL: the built-in default */
	struct vu_loop loop;
	char dir[DDTK_STATE_PATH_MAX]; /* STATE/INSTANCE/bridge */
	char dd_domain[2 * DDTK_NAME_MAX + 16];
	unsigned nsessions;
	struct bridge_session sessions[DDCTL_SESSIONS_MAX];
	struct bridge_session *by_id[DDCTL_SESSIONS_MAX + 1];

	/* The DD's second hot-plug bridge (further memory files' devices): its anchor (ddctl-proto.h)
	 * and the slots in use. */
	struct bridge_ivshmem anchor_iv;
	enum bridge_device_state anchor_device;
	bool mem_slot_used[VM_DD_MEM_SLOTS + 1];

	/* Kick forwarding (bridge-kicks.c): the state device's own vectors. */
	struct bridge_kicks *kicks;

	/* The state device: inflight areas that outlive the DD, kicks as its vectors. */
	int state_fd;
	uint8_t *state_map;
	struct bridge_ivshmem state_iv;
	enum bridge_device_state state_device;

	/* The DD's control port. */
	int ctl_fd;
	struct vu_watch ctl_watch;
	struct agent_decoder dec;
	bool hello_acked;
	uint64_t boot_id;
	bool have_boot_id;
	unsigned dd_boots_seen;
	bool dd_healthy;
	char dd_health[512];
	int64_t next_connect_ms;
	bool connect_job_pending;

	/* Status socket. */
	int status_fd;
	struct vu_watch status_watch;

	/* The libvirt worker thread (attach/detach/lookups block; the loop must not). */
	struct bridge_worker *worker;
	struct vu_watch worker_watch;

	int timer_fd;
	struct vu_watch timer_watch;
	bool stop;
};

int64_t bridge_now_ms(void);
/* A non-blocking, close-on-exec connection to a Unix socket; -errno. */
int bridge_connect_unix(const char *path);

/* bridge-client.c: the vhost-user side. */
int bridge_session_init(struct bridge *b, struct bridge_session *s);
void bridge_session_close(struct bridge_session *s);
void bridge_client_resume(struct bridge_session *s);
/* The DD's reply to a request sent with bridge_dd_send_vu (p says what for). */
void bridge_client_dd_reply(struct bridge_session *s, const struct bridge_pending *p, struct vu_msg *reply);
/* The DD went away before replying to p. */
void bridge_client_dd_gone(struct bridge_session *s, const struct bridge_pending *p);
void bridge_client_disconnect(struct bridge_session *s, const char *why);
/* Reads the used index of queue q from the client's memory; -1 when it cannot. */
int bridge_used_idx(struct bridge_session *s, unsigned q);

/* bridge-dd.c: the driver domain side. */
void bridge_dd_tick(struct bridge *b);
void bridge_dd_lost(struct bridge *b, const char *why);
int bridge_dd_send(struct bridge *b, uint8_t type, uint32_t id, const void *payload, uint32_t len);
/* Sends a vhost-user request to session s's back-end; a reply, when one comes, goes to owner. */
int bridge_dd_send_vu(struct bridge_session *s, const struct vu_msg *msg, enum bridge_reply_owner owner);
void bridge_session_changed(struct bridge_session *s);
/* The DD's back-end told its protocol features: ack them, then clients' questions can go. */
void bridge_dd_session_ready(struct bridge_session *s);
void bridge_session_client_gone(struct bridge_session *s);
void bridge_ctl_connected(struct bridge *b, int fd);
void bridge_device_attached(struct bridge *b, unsigned id, int result, const char *error);
void bridge_device_detached(struct bridge *b, unsigned id, int result, const char *error);

/* bridge-ivshmem.c: the ivshmem server of one device. */
int bridge_ivshmem_init(struct bridge *b, struct bridge_ivshmem *iv, unsigned id, const char *path);
void bridge_ivshmem_close(struct bridge_ivshmem *iv);
void bridge_ivshmem_drop(struct bridge_ivshmem *iv);
/* Sends the peer's vectors (the client's call fds) again: after a call fd changed. */
int bridge_ivshmem_resend_peer(struct bridge *b, struct bridge_ivshmem *iv);

/* bridge-kicks.c: client kicks to the state device's vectors, on a thread of their own. */
int bridge_kicks_start(struct bridge *b, unsigned nvectors);
void bridge_kicks_stop(struct bridge *b);
unsigned bridge_kicks_vectors(const struct bridge *b);
/* The eventfd of the state device's own vector `vector` (the DD's QEMU gets it); -1 out of range. */
int bridge_kicks_vector_fd(const struct bridge *b, unsigned vector);
/* From now on a kick on client_fd (dup'd; -1: none) becomes a kick of `vector`. */
int bridge_kicks_set(struct bridge *b, unsigned vector, int client_fd);
/* Kicks forwarded to vectors first..first+count-1 so far. */
uint64_t bridge_kicks_forwarded(const struct bridge *b, unsigned first, unsigned count);

/* bridge-worker.c: libvirt calls on a thread of their own. */
int bridge_worker_start(struct bridge *b);
void bridge_worker_stop(struct bridge *b);
int bridge_worker_find_control(struct bridge *b);
int bridge_worker_attach(struct bridge *b, unsigned id, const char *xml);
int bridge_worker_detach(struct bridge *b, unsigned id);
