/* The command lines of the two back-end processes ddtk-agent runs: one ddtk-blk for every blk
 * session of the topology, one ddtk-net for every net session. Pure: unit-tested. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "ddctl-proto.h"

enum backend_kind {
	BACKEND_BLK = 0,
	BACKEND_NET,
	_BACKEND_KIND_LAST,
};

/* The longest --run-dir: socket paths must fit a sockaddr_un. */
#define BACKEND_RUN_DIR_MAX 80

struct backend_config {
	const char *run_dir;                     /* DDCTL_RUN_DIR; another only in tests */
	const char *program[_BACKEND_KIND_LAST]; /* /usr/bin/ddtk-blk, /usr/bin/ddtk-net */
	const char *disk;                        /* the disk whose byte ranges are the volumes */
	const char *uplink;                      /* the NIC's interface; "" for none */
	unsigned poll_us;                        /* both back-ends' --poll-us */
};

#define BACKEND_ARGS_MAX (DDCTL_SESSIONS_MAX + 8)
#define BACKEND_CMD_TEXT_MAX 16384

struct backend_cmd {
	char *argv[BACKEND_ARGS_MAX + 1];  /* NULL-terminated, pointing into text */
	unsigned argc;
	char text[BACKEND_CMD_TEXT_MAX];
	size_t used;
};

const char *backend_kind_name(enum backend_kind kind);   /* "blk", "net" */
/* Session S's socket, RUN_DIR/sS.sock (DDCTL_SESSION_SOCKET_FMT in the DD). */
void backend_socket_path(const char *run_dir, unsigned session, char *buf, size_t cap);
/* Where the back-end answers with its counters: RUN_DIR/blk.stats, RUN_DIR/net.stats. */
void backend_stats_path(const char *run_dir, enum backend_kind kind, char *buf, size_t cap);
/* Whether a session of the topology is served by the back-end of this kind. */
bool backend_serves(enum backend_kind kind, const struct ddctl_session_spec *spec);

/* Builds the command line serving the sessions of specs[0..n) that are of this kind. Returns how
 * many sessions it serves (0: no process is needed, ret is then empty), -E2BIG when it does not fit,
 * -EINVAL when a configuration string cannot be put in a key=value list (a ',' in the disk path). */
int backend_cmd_build(enum backend_kind kind, const struct backend_config *cfg,
		      const struct ddctl_session_spec *specs, unsigned n, struct backend_cmd *ret);
