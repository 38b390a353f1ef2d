/* ddtk-agent: the driver domain's control agent (docs/ddtk-agent.md). Its state, shared by its
 * parts, one file per concern:
 *   port.c     the virtio-serial port to ddtk-bridge: framing, output queue, host reconnects
 *   control.c  the protocol: HELLO and the back-ends' readiness, sessions, errors
 *   session.c  one relay per session between the bridge and a back-end's vhost-user socket
 *   backend.c  the back-end processes: start, stop, reap, restart with backoff
 *   health.c   each back-end's stats once a second, the progress rule, HEALTH, the watchdog
 *   devices.c  ivshmem devices: bind to vfio-pci, read IVPosition, links, DEVICE_ADDED/REMOVED
 * and the pure parts in their own files (relay-cut, stats-json, progress, backoff, backend-cmd). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend-cmd.h"
#include "backoff.h"
#include "ddctl-proto.h"
#include "loop.h"
#include "outq.h"
#include "progress.h"
#include "relay-cut.h"
#include "stats-json.h"
#include "vfio-broker.h"

/* ---------- options ---------- */

struct agent_options {
	const char *port_name;
	struct backend_config backend;
	const char *uplink_option;   /* --uplink; NULL: the e1000's interface, looked up at each start */
	bool devices;                /* handle ivshmem devices (--no-devices: tests outside a DD) */
	const char *watchdog_path;   /* NULL: no watchdog */
	unsigned watchdog_timeout_s;
	unsigned hello_timeout_ms;   /* how long HELLO waits for the back-ends' sockets */
};

/* ---------- the port (port.c) ---------- */

/* What may wait for the bridge to read: far more than a second of HEALTH and state messages. */
#define PORT_QUEUE_MAX ((size_t)1024 * 1024)
/* Above this the relays stop reading from the back-ends until the bridge catches up. */
#define PORT_QUEUE_HIGH ((size_t)256 * 1024)
/* While the port is missing, or reports no host (POLLHUP), look again this often. */
#define PORT_RETRY_MS 200

struct port {
	int fd;                  /* -1 until the port appears */
	char path[300];
	bool host_connected;     /* false after a POLLHUP until bytes arrive again */
	int64_t retry_at_ms;     /* no polling of the port before this (after POLLHUP, or to find it) */
	struct agent_decoder dec;
	struct outq out;
	uint64_t dropped_frames;
};

/* ---------- sessions (session.c) ---------- */

/* Bridge -> back-end bytes a back-end may leave unread before its session is failed. */
#define SESSION_QUEUE_MAX ((size_t)256 * 1024)

/* A connection that breaks is reported this long later at most: a back-end that died closes its
 * sockets a moment before its parent hears of the exit, and the report should name the exit. */
#define SESSION_BROKEN_GRACE_MS 100

struct session {
	unsigned id;
	enum ddctl_session_state state;
	int fd;                  /* the connection to the back-end's socket, -1 when none */
	int64_t broken_at_ms;    /* RUNNING, but the connection broke then; 0: it did not */
	int broken_err;
	char broken_why[96];
	uint64_t tag;            /* changes with every connection (see loop_fn) */
	struct relay_cutter cut; /* back-end -> bridge */
	struct outq to_backend;  /* bridge -> back-end */
};

/* ---------- back-ends (backend.c, health.c) ---------- */

enum backend_state {
	BACKEND_IDLE = 0,   /* no session to serve: no process */
	BACKEND_RUNNING,    /* a process serves specs */
	BACKEND_STOPPING,   /* asked to stop (new topology); started again with specs once reaped */
	BACKEND_WAITING,    /* exited by itself; started again at restart_at_ms */
};

/* A back-end whose stats socket is not there yet this soon after its start is starting, not
 * stuck. */
#define BACKEND_STARTUP_MS 5000
/* This many quick exits in a row make a back-end unhealthy even while it runs: the watchdog then
 * resets the DD (a driver in a bad state is what resets are for), and ddtkd's restart budget
 * decides when that stops helping. */
#define BACKEND_CRASH_LOOP 3

/* The largest stats document read; more is not a valid answer. */
#define HEALTH_STATS_MAX ((size_t)64 * 1024)

struct stats_fetch {
	int fd;                  /* connection to the stats socket, -1 when none */
	uint64_t tag;
	char *buf;               /* HEALTH_STATS_MAX bytes */
	size_t len;
	bool started;            /* a fetch was started at the last tick */
	bool done;               /* EOF reached: buf holds the whole answer */
	int err;                 /* why it failed, when it did */
};

struct backend {
	enum backend_kind kind;
	enum backend_state state;
	struct ddctl_session_spec specs[DDCTL_SESSIONS_MAX];   /* the sessions it is to serve */
	unsigned nspecs;
	pid_t pid;
	int64_t started_ms;
	int64_t restart_at_ms;   /* WAITING */
	int64_t kill_at_ms;      /* STOPPING: SIGKILL if still there */
	char last_exit[96];      /* "exited with status 1", "killed by signal 11" */
	unsigned restarts;       /* exits by itself since the last HELLO */
	unsigned quick_exits;    /* exits in a row, each less than BACKOFF_STABLE_MS after its start */
	struct backoff backoff;
	struct progress progress;
	struct stats_fetch fetch;
	bool healthy;
	char health_line[192];
};

/* ---------- devices (devices.c) ---------- */

#define DEVICES_MAX 64
/* A device that cannot be bound or read is tried again on this many scans, then left alone. */
#define DEVICE_ATTEMPTS_MAX 25

struct ivshmem_device {
	char bdf[32];            /* "0000:01:02.0" */
	bool ready;              /* bound, IVPosition read, linked */
	uint32_t ivposition;
	unsigned attempts;
	bool seen;               /* present in the last scan */
};

struct devices {
	struct ivshmem_device dev[DEVICES_MAX];
	unsigned n;
	int64_t next_scan_ms;
};

/* ---------- the watchdog (health.c) ---------- */

struct watchdog {
	int fd;                  /* -1: none */
	uint64_t pets;
};

/* ---------- the agent ---------- */

struct agent {
	struct agent_options opt;
	uint64_t boot_id;
	struct port port;
	bool greeted;            /* HELLO_ACK was sent on this host connection */
	bool hello_pending;      /* a HELLO waits for its back-ends */
	int64_t hello_deadline_ms;
	bool have_topology;
	struct ddctl_session_spec specs[DDCTL_SESSIONS_MAX];
	unsigned nspecs;
	struct session sessions[DDCTL_SESSIONS_MAX + 1];   /* by id; [0] unused */
	struct backend backends[_BACKEND_KIND_LAST];
	struct devices devices;
	/* Holds the ivshmem devices' VFIO group(s) and hands device fds to the back-ends: one IOMMU
	 * group can be open in one process only. */
	struct vfio_broker broker;
	bool broker_up;
	struct watchdog wd;
	int64_t next_health_ms;
	bool healthy;
	int signal_fd;
	bool quit;
	uint64_t next_tag;
};

/* Every line the agent logs goes to stderr, the DD's console. */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* port.c */
void port_init(struct port *p);
void port_prepare(struct agent *a, struct loop *l, int64_t now);
void port_timers(struct agent *a, int64_t now);
/* Queues one frame for the bridge; dropped (and counted) when no host is there or the queue is
 * full. */
void port_send(struct agent *a, uint8_t type, uint32_t id, const void *payload, uint32_t len);
void port_send_text(struct agent *a, uint8_t type, uint32_t id, const char *text);
bool port_congested(const struct agent *a);

/* control.c */
void control_handle_frame(struct agent *a, const struct agent_frame *f);
void control_host_gone(struct agent *a);
void control_timers(struct agent *a, struct loop *l, int64_t now);

/* session.c */
void session_init_all(struct agent *a);
void session_start(struct agent *a, unsigned id);
void session_stop(struct agent *a, unsigned id, bool answer);
void session_stop_all(struct agent *a);
void session_from_bridge(struct agent *a, unsigned id, const uint8_t *msg, uint32_t len);
/* Fails every running session the back-end of this kind serves, with why. */
void session_fail_backend(struct agent *a, enum backend_kind kind, const char *why);
void session_prepare(struct agent *a, struct loop *l);
void session_timers(struct agent *a, struct loop *l, int64_t now);
void session_send_state(struct agent *a, unsigned id, enum ddctl_session_state st, int err, const char *why);

/* backend.c */
void backend_init_all(struct agent *a);
/* Makes the back-end serve exactly the sessions of the topology that are of its kind. */
void backend_configure(struct agent *a, struct backend *b, const struct ddctl_session_spec *specs, unsigned n);
/* Reaps exited children (SIGCHLD). */
void backend_reap(struct agent *a);
void backend_timers(struct agent *a, struct loop *l, int64_t now);
/* Running, and every session socket it serves exists. */
bool backend_ready(const struct agent *a, const struct backend *b);
void backend_stop_all(struct agent *a);

/* health.c */
int watchdog_open(struct agent *a);
void health_prepare(struct agent *a, struct loop *l);
void health_timers(struct agent *a, struct loop *l, int64_t now);
void health_forget(struct backend *b);

/* devices.c */
void devices_timers(struct agent *a, struct loop *l, int64_t now);
/* DEVICE_ADDED for every device that is ready (after HELLO_ACK). */
void devices_report_all(struct agent *a);
