/* See agent-client.h. */
#include "agent-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct agent_client {
	int fd;
	uint32_t next_id;
	struct agent_decoder dec;
	uint8_t frame_buf[AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_PAYLOAD_MAX];
};

int agent_client_connect(const char *socket_path, struct agent_client **ret_client, struct ddtk_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return ddtk_err_set(err, -ENAMETOOLONG, "socket path too long: %s", socket_path);
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);

	struct agent_client *c = calloc(1, sizeof(*c));
	if (!c)
		return ddtk_err_set(err, -ENOMEM, "out of memory");
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		int r = -errno;
		free(c);
		return ddtk_err_set(err, r, "socket: %s", strerror(-r));
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		agent_client_free(c);
		return ddtk_err_set(err, r, "connect %s: %s", socket_path, strerror(-r));
	}
	/* Random first id: replies to an earlier connection's requests can never match ours. */
	if (getrandom(&c->next_id, sizeof(c->next_id), 0) != sizeof(c->next_id))
		c->next_id = (uint32_t)agent_now_ms() ^ (uint32_t)getpid();
	agent_decoder_init(&c->dec);
	*ret_client = c;
	return 0;
}

void agent_client_free(struct agent_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static int send_frame(struct agent_client *c, uint8_t type, uint32_t id, const void *payload,
		      uint32_t len, int64_t deadline)
{
	int n = agent_frame_encode(type, id, payload, len, c->frame_buf, sizeof(c->frame_buf));
	if (n < 0)
		return n;
	return agent_write_all(c->fd, c->frame_buf, (size_t)n, deadline);
}

/* Waits for the next frame, until deadline. */
static int recv_frame(struct agent_client *c, struct agent_frame *f, int64_t deadline)
{
	for (;;) {
		int r = agent_decoder_next(&c->dec, f);
		if (r != 0)
			return r;
		int64_t left = deadline - agent_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		r = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		uint8_t buf[16384];
		size_t room = agent_decoder_room(&c->dec);
		ssize_t n = recv(c->fd, buf, room < sizeof(buf) ? room : sizeof(buf), 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		size_t take = (size_t)n;
		agent_decoder_feed(&c->dec, buf, &take);
	}
}

int agent_client_ping(struct agent_client *c, int timeout_ms, char *ident, size_t ident_len,
		      struct ddtk_err *err)
{
	int64_t deadline = agent_now_ms() + timeout_ms;
	uint32_t id = c->next_id++;
	int r = send_frame(c, AGENT_MSG_PING, id, NULL, 0, deadline);
	if (r < 0)
		return ddtk_err_set(err, r, "sending to the agent: %s", strerror(-r));
	for (;;) {
		struct agent_frame f;
		r = recv_frame(c, &f, deadline);
		if (r < 0)
			return ddtk_err_set(err, r, "no answer from the agent: %s", strerror(-r));
		if (f.type != AGENT_MSG_PONG || f.id != id)
			continue; /* left over from an earlier connection */
		if (ident && ident_len) {
			size_t n = f.len < ident_len - 1 ? f.len : ident_len - 1;
			memcpy(ident, f.payload, n);
			ident[n] = '\0';
		}
		return 0;
	}
}

static int write_all_fd(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int agent_client_exec(struct agent_client *c, const char *command, uint32_t timeout_ms, int out_fd,
		      int err_fd, struct agent_result *ret_result, struct ddtk_err *err)
{
	size_t cmd_len = strlen(command);
	if (cmd_len == 0 || cmd_len > AGENT_FRAME_PAYLOAD_MAX - 4)
		return ddtk_err_set(err, -EINVAL, "command empty or longer than %u bytes",
				    AGENT_FRAME_PAYLOAD_MAX - 4);
	uint8_t *payload = malloc(4 + cmd_len);
	if (!payload)
		return ddtk_err_set(err, -ENOMEM, "out of memory");
	agent_u32_put(payload, timeout_ms);
	/* The command travels without its NUL: the frame's length delimits it. */
	memcpy(payload + 4, command, cmd_len); // NOLINT(bugprone-not-null-terminated-result)

	/* 0 means "the agent's maximum"; the host still waits a bounded time. */
	int64_t wait_ms = (int64_t)(timeout_ms ? timeout_ms : 24u * 3600u * 1000u) + AGENT_CLIENT_GRACE_MS;
	int64_t deadline = agent_now_ms() + wait_ms;
	uint32_t id = c->next_id++;
	int r = send_frame(c, AGENT_MSG_EXEC, id, payload, (uint32_t)(4 + cmd_len), deadline);
	free(payload);
	if (r < 0)
		return ddtk_err_set(err, r, "sending to the agent: %s", strerror(-r));

	/* A closed output (| head) stops its forwarding, not the wait for the command's end. */
	int fds[2] = { out_fd, err_fd };
	for (;;) {
		struct agent_frame f;
		r = recv_frame(c, &f, deadline);
		if (r < 0)
			return ddtk_err_set(err, r, "waiting for the command to end: %s", strerror(-r));
		if (f.id != id)
			continue;
		switch ((enum agent_msg_type)f.type) {
		case AGENT_MSG_STDOUT:
		case AGENT_MSG_STDERR: {
			int *fd = &fds[f.type == AGENT_MSG_STDOUT ? 0 : 1];
			if (*fd >= 0 && write_all_fd(*fd, f.payload, f.len) < 0)
				*fd = -1;
			break;
		}
		case AGENT_MSG_EXIT:
			if (agent_exit_parse(&f, &ret_result->kind, &ret_result->code) < 0)
				return ddtk_err_set(err, -EBADMSG, "malformed EXIT from the agent");
			return 0;
		case AGENT_MSG_ERROR:
			return ddtk_err_set(err, -EREMOTEIO, "agent refused the command: %.*s", (int)f.len,
					    (const char *)f.payload);
		case AGENT_MSG_PING:
		case AGENT_MSG_PONG:
		case AGENT_MSG_EXEC:
		case _AGENT_MSG_LAST:
			break;
		}
	}
}

int agent_result_status(const struct agent_result *r)
{
	switch (r->kind) {
	case AGENT_EXIT_EXITED: return r->code & 0xff;
	case AGENT_EXIT_SIGNALED: return 128 + (r->code & 0x7f);
	case AGENT_EXIT_TIMEOUT: return 124;
	case _AGENT_EXIT_LAST: break;
	}
	return 125;
}
