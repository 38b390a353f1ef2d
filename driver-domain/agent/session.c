/* Sessions: the relay between the bridge and a back-end's vhost-user socket in the DD. The
 * bridge's VU frames are written to the socket as they are (after a check that each is one whole
 * message); what the back-end answers is cut into messages and sent back as VU frames. No fds
 * cross: the back-end gets its memory and notifications from the session's ivshmem device. */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void session_init_all(struct agent *a)
{
	for (unsigned i = 0; i <= DDCTL_SESSIONS_MAX; i++) {
		struct session *s = &a->sessions[i];
		s->id = i;
		s->state = DDCTL_SESSION_STOPPED;
		s->fd = -1;
		s->tag = 0;
		relay_cutter_init(&s->cut);
		outq_init(&s->to_backend, SESSION_QUEUE_MAX);
	}
}

static const char *state_name(enum ddctl_session_state st)
{
	switch (st) {
	case DDCTL_SESSION_STOPPED: return "stopped";
	case DDCTL_SESSION_RUNNING: return "running";
	case DDCTL_SESSION_FAILED: return "failed";
	case _DDCTL_SESSION_LAST: break;
	}
	return "?";
}

void session_send_state(struct agent *a, unsigned id, enum ddctl_session_state st, int err, const char *why)
{
	uint8_t payload[8 + 256];
	size_t n = strlen(why);

	if (n > sizeof(payload) - 8)
		n = sizeof(payload) - 8;
	agent_u32_put(payload, (uint32_t)st);
	agent_u32_put(payload + 4, (uint32_t)(int32_t)err);
	/* A payload with a length, not a C string. */
	memcpy(payload + 8, why, n); // NOLINT(bugprone-not-null-terminated-result)
	port_send(a, DDCTL_MSG_SESSION_STATE, id, payload, (uint32_t)(8 + n));
}

static const struct ddctl_session_spec *session_spec(const struct agent *a, unsigned id)
{
	for (unsigned i = 0; i < a->nspecs; i++)
		if (a->specs[i].session == id)
			return &a->specs[i];
	return NULL;
}

static void session_close(struct session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->broken_at_ms = 0;
	relay_cutter_init(&s->cut);
	outq_free(&s->to_backend);
}

/* The connection broke or cannot go on: tell the bridge, which starts the session again. */
static void session_fail(struct agent *a, struct session *s, int err, const char *why)
{
	agent_log("session %u failed: %s", s->id, why);
	session_close(s);
	s->state = DDCTL_SESSION_FAILED;
	session_send_state(a, s->id, DDCTL_SESSION_FAILED, err, why);
}

static int session_connect(const struct agent *a, unsigned id, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	backend_socket_path(a->opt.backend.run_dir, id, sa.sun_path, sizeof(sa.sun_path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A listening Unix socket accepts into its backlog at once (the back-ends serve one front-end
	 * per socket and take the next when the last one closed): EAGAIN only when it is full. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

void session_start(struct agent *a, unsigned id)
{
	int r;

	if (id < 1 || id > DDCTL_SESSIONS_MAX) {
		port_send_text(a, DDCTL_MSG_ERROR, id, "SESSION_START: no such session id");
		return;
	}
	struct session *s = &a->sessions[id];
	if (!session_spec(a, id)) {
		session_send_state(a, id, DDCTL_SESSION_FAILED, -ENOENT, "not in the topology");
		return;
	}
	if (a->hello_pending) {
		session_send_state(a, id, DDCTL_SESSION_FAILED, -EAGAIN, "back-ends are starting (HELLO not answered yet)");
		return;
	}
	/* A START for a running session starts it afresh: the back-end sees a new front-end. */
	session_close(s);
	r = session_connect(a, id, &s->fd);
	if (r < 0) {
		char why[BACKEND_RUN_DIR_MAX + 128], path[BACKEND_RUN_DIR_MAX + 16];
		backend_socket_path(a->opt.backend.run_dir, id, path, sizeof(path));
		snprintf(why, sizeof(why), "connect %s: %s", path, strerror(-r));
		s->state = DDCTL_SESSION_FAILED;
		agent_log("session %u: %s", id, why);
		session_send_state(a, id, DDCTL_SESSION_FAILED, r, why);
		return;
	}
	s->tag = ++a->next_tag;
	s->state = DDCTL_SESSION_RUNNING;
	agent_log("session %u running", id);
	session_send_state(a, id, DDCTL_SESSION_RUNNING, 0, "connected");
}

void session_stop(struct agent *a, unsigned id, bool answer)
{
	if (id < 1 || id > DDCTL_SESSIONS_MAX) {
		if (answer)
			port_send_text(a, DDCTL_MSG_ERROR, id, "SESSION_STOP: no such session id");
		return;
	}
	struct session *s = &a->sessions[id];
	if (s->state != DDCTL_SESSION_STOPPED)
		agent_log("session %u stopped (was %s)", id, state_name(s->state));
	session_close(s);
	s->state = DDCTL_SESSION_STOPPED;
	if (answer)
		session_send_state(a, id, DDCTL_SESSION_STOPPED, 0, "stopped");
}

void session_stop_all(struct agent *a)
{
	for (unsigned id = 1; id <= DDCTL_SESSIONS_MAX; id++)
		session_stop(a, id, false);
}

void session_fail_backend(struct agent *a, enum backend_kind kind, const char *why)
{
	for (unsigned id = 1; id <= DDCTL_SESSIONS_MAX; id++) {
		struct session *s = &a->sessions[id];
		const struct ddctl_session_spec *spec = session_spec(a, id);
		if (s->state == DDCTL_SESSION_RUNNING && spec && backend_serves(kind, spec))
			session_fail(a, s, -ECONNRESET, why);
	}
}

static void session_flush(struct agent *a, struct session *s)
{
	int r = outq_flush(&s->to_backend, s->fd);
	if (r < 0) {
		char why[128];
		snprintf(why, sizeof(why), "writing to the back-end: %s", strerror(-r));
		session_fail(a, s, r, why);
	}
}

void session_from_bridge(struct agent *a, unsigned id, const uint8_t *msg, uint32_t len)
{
	if (id < 1 || id > DDCTL_SESSIONS_MAX) {
		port_send_text(a, DDCTL_MSG_ERROR, id, "VU: no such session id");
		return;
	}
	struct session *s = &a->sessions[id];
	if (s->state != DDCTL_SESSION_RUNNING) {
		/* A failed session was reported already; its last messages were in flight. */
		if (s->state == DDCTL_SESSION_STOPPED)
			port_send_text(a, DDCTL_MSG_ERROR, id, "VU: session not started");
		return;
	}
	if (s->fd < 0)
		return;   /* broken, about to be reported */
	if (relay_vu_check(msg, len) < 0) {
		port_send_text(a, DDCTL_MSG_ERROR, id, "VU: not one whole vhost-user message (size field, 4096-byte limit)");
		return;
	}
	int r = outq_push(&s->to_backend, msg, len);
	if (r < 0) {
		session_fail(a, s, r, r == -ENOBUFS ? "back-end does not read its socket" : "out of memory");
		return;
	}
	session_flush(a, s);
}

static void session_read(struct agent *a, struct session *s)
{
	for (;;) {
		size_t room;
		uint8_t *space = relay_cutter_space(&s->cut, &room);
		ssize_t n = read(s->fd, space, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* A back-end that died closes its connections before its parent hears of it: wait
			 * a moment for the exit (session_fail_backend), so the report names it. */
			int err = n < 0 ? -errno : -ECONNRESET;
			session_close(s);
			s->broken_at_ms = agent_now_ms();
			s->broken_err = err;
			snprintf(s->broken_why, sizeof(s->broken_why), "back-end closed the connection%s%s",
				 n < 0 ? ": " : "", n < 0 ? strerror(-err) : "");
			backend_reap(a);
			return;
		}
		relay_cutter_commit(&s->cut, (size_t)n);
		const uint8_t *msg;
		size_t len;
		int r;
		while ((r = relay_cutter_next(&s->cut, &msg, &len)) == 1)
			port_send(a, DDCTL_MSG_VU, s->id, msg, (uint32_t)len);
		if (r < 0) {
			session_fail(a, s, -EPROTO, "back-end sent a message larger than the 4096-byte limit");
			return;
		}
		/* Let the bridge catch up before reading more; the kernel holds the rest. */
		if (port_congested(a))
			return;
	}
}

static void session_on_ready(struct agent *a, void *ctx, uint64_t tag, short revents)
{
	struct session *s = ctx;

	if (s->fd < 0 || s->tag != tag)
		return;
	if (revents & POLLOUT)
		session_flush(a, s);
	if (s->fd >= 0 && (revents & (POLLIN | POLLHUP | POLLERR)))
		session_read(a, s);
}

void session_prepare(struct agent *a, struct loop *l)
{
	bool congested = port_congested(a);

	for (unsigned id = 1; id <= DDCTL_SESSIONS_MAX; id++) {
		struct session *s = &a->sessions[id];
		if (s->fd < 0)
			continue;
		short events = congested ? 0 : POLLIN;
		if (!outq_empty(&s->to_backend))
			events |= POLLOUT;
		loop_add(l, s->fd, events, session_on_ready, s, s->tag);
	}
}

void session_timers(struct agent *a, struct loop *l, int64_t now)
{
	for (unsigned id = 1; id <= DDCTL_SESSIONS_MAX; id++) {
		struct session *s = &a->sessions[id];
		if (s->state != DDCTL_SESSION_RUNNING || !s->broken_at_ms)
			continue;
		if (now >= s->broken_at_ms + SESSION_BROKEN_GRACE_MS) {
			char why[sizeof(s->broken_why)];
			memcpy(why, s->broken_why, sizeof(why));
			session_fail(a, s, s->broken_err, why);
		} else {
			loop_wake_at(l, s->broken_at_ms + SESSION_BROKEN_GRACE_MS);
		}
	}
}
