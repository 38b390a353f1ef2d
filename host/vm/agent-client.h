/* The host end of the exec-agent protocol: connects to a guest's agent port (a Unix socket that
 * QEMU serves for the virtio-serial port), checks the agent answers, runs commands. */
#pragma once

#include <stdint.h>

#include "agent-proto.h"
#include "error.h"

struct agent_client;

struct agent_result {
	enum agent_exit_kind kind;
	int32_t code;
};

/* Extra time the host waits beyond a command's own timeout (slow TCG guests, output in flight). */
#define AGENT_CLIENT_GRACE_MS 15000

int agent_client_connect(const char *socket_path, struct agent_client **ret_client, struct ddtk_err *err);
void agent_client_free(struct agent_client *c);
/* Sends PING and waits for its PONG, skipping stale replies of earlier connections. The agent's
 * identification goes to ident (may be NULL). -ETIMEDOUT when it does not answer in time. */
int agent_client_ping(struct agent_client *c, int timeout_ms, char *ident, size_t ident_len,
		      struct ddtk_err *err);
/* Runs `sh -c command` in the guest; its stdout/stderr are written to out_fd/err_fd as they come.
 * timeout_ms 0 means the agent's maximum. */
int agent_client_exec(struct agent_client *c, const char *command, uint32_t timeout_ms, int out_fd,
		      int err_fd, struct agent_result *ret_result, struct ddtk_err *err);
/* The exit status a shell would give: the code, 128+signal, or 124 for a timeout. */
int agent_result_status(const struct agent_result *r);
