/* The virtio-serial port to ddtk-bridge: found by name (there is no udev in the DD to make the
 * /dev/virtio-ports link), read into the ddctl decoder, written from a bounded queue. A host end
 * that is not connected makes the port report POLLHUP for as long as it is away: the agent then
 * forgets the half-read frame and what it had queued, and looks again every PORT_RETRY_MS instead
 * of spinning. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void port_init(struct port *p)
{
	p->fd = -1;
	p->path[0] = '\0';
	p->host_connected = false;
	p->retry_at_ms = 0;
	ddctl_decoder_init(&p->dec);
	outq_init(&p->out, PORT_QUEUE_MAX);
	p->dropped_frames = 0;
}

/* /dev/vportNpM whose virtio-serial name is `name` (the same search as ddtk-guest-agent's). */
static int port_find(const char *name, char *ret_path, size_t cap)
{
	char link[128];

	/* A path (tests outside a DD: a pty) is taken as it is. */
	if (name[0] == '/') {
		if (access(name, F_OK) < 0)
			return -errno;
		snprintf(ret_path, cap, "%s", name);
		return 0;
	}
	snprintf(link, sizeof(link), "/dev/virtio-ports/%s", name);
	if (access(link, F_OK) == 0) {
		snprintf(ret_path, cap, "%s", link);
		return 0;
	}
	return agent_port_find(name, ret_path, cap);
}

static void port_try_open(struct agent *a, int64_t now)
{
	struct port *p = &a->port;

	if (port_find(a->opt.port_name, p->path, sizeof(p->path)) < 0) {
		static bool told;
		if (!told)
			agent_log("waiting for the virtio-serial port %s", a->opt.port_name);
		told = true;
		p->retry_at_ms = now + PORT_RETRY_MS;
		return;
	}
	p->fd = open(p->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (p->fd < 0) {
		agent_log("open %s: %s", p->path, strerror(errno));
		p->retry_at_ms = now + PORT_RETRY_MS;
		return;
	}
	agent_log("control port %s is %s", a->opt.port_name, p->path);
}

bool port_congested(const struct agent *a)
{
	return outq_length(&a->port.out) >= PORT_QUEUE_HIGH;
}

static void port_flush(struct agent *a)
{
	struct port *p = &a->port;
	if (p->fd < 0 || outq_empty(&p->out))
		return;
	int r = outq_flush(&p->out, p->fd);
	if (r < 0) {
		/* The host end went away under the write: what is queued belongs to that connection. */
		agent_log("writing to the control port: %s", strerror(-r));
		outq_clear(&p->out);
	}
}

void port_send(struct agent *a, uint8_t type, uint32_t id, const void *payload, uint32_t len)
{
	static uint8_t frame[AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_PAYLOAD_MAX];
	struct port *p = &a->port;

	if (p->fd < 0 || !p->host_connected)
		return;
	int n = ddctl_frame_encode(type, id, payload, len, frame, sizeof(frame));
	if (n < 0 || outq_push(&p->out, frame, (size_t)n) < 0) {
		if (p->dropped_frames++ == 0 || p->dropped_frames % 1000 == 0)
			agent_log("bridge is not reading: %s frame dropped (%llu so far)", ddctl_msg_type_name(type),
				  (unsigned long long)p->dropped_frames);
		return;
	}
	port_flush(a);
}

void port_send_text(struct agent *a, uint8_t type, uint32_t id, const char *text)
{
	port_send(a, type, id, text, (uint32_t)strlen(text));
}

/* Reads what is there; returns whether anything was. */
static bool port_read(struct agent *a)
{
	struct port *p = &a->port;
	bool got = false;

	for (;;) {
		uint8_t buf[16384];
		size_t room = agent_decoder_room(&p->dec);
		ssize_t n = read(p->fd, buf, room < sizeof(buf) ? room : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return got;
		got = true;
		if (!p->host_connected)
			agent_log("bridge connected");
		p->host_connected = true;
		size_t take = (size_t)n;
		agent_decoder_feed(&p->dec, buf, &take);
		struct agent_frame f;
		while (agent_decoder_next(&p->dec, &f) == 1)
			control_handle_frame(a, &f);
		if (a->quit || p->fd < 0)
			return got;
	}
}

static void port_on_ready(struct agent *a, void *ctx, uint64_t tag, short revents)
{
	struct port *p = &a->port;

	if (p->fd < 0)
		return;
	/* Without a host, virtio_console reports POLLIN and POLLHUP and read() gives 0: what was
	 * left in the port is read first, then the host counts as gone. */
	bool got = (revents & POLLIN) && port_read(a);
	if ((revents & POLLHUP) && !got) {
		/* No host: a half-received frame will never complete, and what waits to be written was
		 * for the connection that is gone. */
		if (p->host_connected)
			agent_log("bridge disconnected");
		p->host_connected = false;
		ddctl_decoder_init(&p->dec);
		outq_clear(&p->out);
		control_host_gone(a);
		p->retry_at_ms = agent_now_ms() + PORT_RETRY_MS;
		return;
	}
	if (revents & POLLOUT)
		port_flush(a);
	if (revents & (POLLERR | POLLNVAL)) {
		agent_log("control port error; reopening it");
		close(p->fd);
		p->fd = -1;
		p->host_connected = false;
		ddctl_decoder_init(&p->dec);
		outq_clear(&p->out);
		control_host_gone(a);
		p->retry_at_ms = agent_now_ms() + PORT_RETRY_MS;
	}
}

void port_timers(struct agent *a, int64_t now)
{
	if (a->port.fd < 0 && now >= a->port.retry_at_ms)
		port_try_open(a, now);
}

void port_prepare(struct agent *a, struct loop *l, int64_t now)
{
	struct port *p = &a->port;

	if (p->fd < 0 || now < p->retry_at_ms) {
		loop_wake_at(l, p->retry_at_ms);
		return;
	}
	short events = POLLIN;
	if (!outq_empty(&p->out))
		events |= POLLOUT;
	loop_add(l, p->fd, events, port_on_ready, NULL, 0);
}
