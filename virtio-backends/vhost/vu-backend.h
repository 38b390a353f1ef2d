/* What every back-end process (ddtk-blk, ddtk-net) does around the vhost-user core: its main loop
 * with adaptive busy-polling, stopping cleanly on SIGINT/SIGTERM, handing sockets to a group, and
 * reading option values. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "vu-loop.h"

#define VU_POLL_MAX_US 1000

uint64_t vu_now_ns(void);

/* The back-end's side of the main loop. */
struct vu_run_ops {
	/* Looks at every ring (and whatever else completes work) once; true when it found work. */
	bool (*poll)(void *opaque);
	/* Turns kicks off while polling (on = false), or asks for them again before sleeping (on =
	 * true): then true when work slipped in meanwhile (it was handled; nobody would kick). */
	bool (*kicks)(void *opaque, bool on);
	/* After events and after each polling round with work: submit, notify. */
	void (*flush)(void *opaque);
	/* Optional: true when there is nothing more to serve (every --fd connection closed). */
	bool (*done)(void *opaque);
};

/* Runs the loop until SIGINT/SIGTERM (see vu_signals_setup), done(), or an epoll error (-errno).
 * After work it polls the rings for up to poll_ns before sleeping, and adapts that time to the
 * load as QEMU's AioContext does: work that came sooner than the maximum would have been caught by
 * polling longer (grow); a long sleep means polling only burnt a CPU the guests' vCPUs could have
 * used (shrink, down to not polling). */
int vu_run(struct vu_loop *loop, uint64_t poll_ns, const struct vu_run_ops *ops, void *opaque);

/* Blocks SIGINT and SIGTERM and has them stop loop (through a signalfd in it); ignores SIGPIPE.
 * Call first thing, so that a signal never kills the process before it can clean up. */
int vu_signals_setup(struct vu_loop *loop);

/* Options every back-end takes, with their getopt_long entries. */
struct vu_backend_options {
	uint64_t poll_ns;     /* --poll-us: at most this long busy-polling after work */
	gid_t socket_gid;     /* --socket-group, or (gid_t)-1 */
	bool verbose;         /* --verbose */
};

enum {
	VU_OPT_POLL_US = 0x1000,
	VU_OPT_SOCKET_GROUP,
	VU_OPT_VERBOSE,
};

#define VU_BACKEND_LONG_OPTIONS                                              \
	{ "poll-us", required_argument, NULL, VU_OPT_POLL_US },              \
	{ "socket-group", required_argument, NULL, VU_OPT_SOCKET_GROUP },    \
	{ "verbose", no_argument, NULL, VU_OPT_VERBOSE }

/* Defaults: poll_us of polling, no socket group, quiet. */
void vu_backend_options_init(struct vu_backend_options *o, unsigned poll_us);
/* Applies getopt_long's c if it is one of the common options: 1 when it was, 0 when not, -EINVAL
 * after printing a message (prefixed with prog) for a bad value. */
int vu_backend_option(const char *prog, int c, const char *arg, struct vu_backend_options *o);

/* Applies a spec of key=value pairs separated by commas (--export, --client) with set(obj, key,
 * value); value is NULL for a bare key. set returns -ENOENT for an unknown key, another negative
 * errno for a bad value; the message (prog: option: ...) is printed here, with hint(key) added
 * when given. Returns 0 or -EINVAL. */
int vu_parse_spec(const char *prog, const char *option, const char *spec,
		  int (*set)(void *obj, const char *key, const char *value), void *obj,
		  const char *(*hint)(const char *key));

/* An unsigned decimal in [min, max]. */
int vu_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret);
/* A group name (--socket-group). */
int vu_parse_group(const char *name, gid_t *ret);
/* Gives a socket file to gid with mode 0660: libvirt runs QEMU as its own user (libvirt-qemu:kvm
 * on Debian), and a group lets it connect without opening the socket to everyone. */
int vu_socket_set_group(const char *path, gid_t gid);

/* --stats-socket: a listening Unix socket that answers each connection with one JSON document
 * (what write() puts in f) and closes it. Readers (ddtk-agent, tests, people) never hold up the
 * loop: the document goes out in one non-blocking send or not at all. */
struct vu_stats_server {
	struct vu_loop *loop;
	int fd;
	struct vu_watch watch;
	char path[108];
	void (*write)(FILE *f, void *opaque);
	void *opaque;
};

/* Listens at path (a stale socket file there is replaced, any other file is an error). */
int vu_stats_listen(struct vu_stats_server *s, struct vu_loop *loop, const char *path,
		    void (*write)(FILE *f, void *opaque), void *opaque);
/* Stops listening and removes the socket file; safe when fd is -1 (never listened, or failed to). */
void vu_stats_close(struct vu_stats_server *s);
/* Writes str as a JSON string: quoted, with quotes, backslashes and control characters escaped. */
void vu_json_string(FILE *f, const char *str);
