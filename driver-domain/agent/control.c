/* The control protocol as the agent serves it (docs/dd-control-protocol.md): HELLO configures the
 * back-ends and is answered once they are ready; sessions start, stop and carry vhost-user
 * messages; everything else the bridge may not send is answered with ERROR. */
#include "agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* While a HELLO waits for the back-ends' sockets, look this often. */
#define HELLO_POLL_MS 50

static void control_error(struct agent *a, uint32_t id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void control_error(struct agent *a, uint32_t id, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	/* The analyzer of clang 14 misreads va_start here (a known false positive). */
	vsnprintf(text, sizeof(text), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	agent_log("error to the bridge (id %u): %s", id, text);
	port_send_text(a, DDCTL_MSG_ERROR, id, text);
}

static void control_hello(struct agent *a, const struct agent_frame *f)
{
	struct ddctl_session_spec specs[DDCTL_SESSIONS_MAX];
	unsigned n = 0, nblk = 0;

	if (f->len < 4) {
		control_error(a, f->id, "HELLO: no protocol version");
		return;
	}
	uint32_t version = agent_u32_get(f->payload);
	if (version != DDCTL_VERSION) {
		control_error(a, f->id, "HELLO: protocol version %u, this agent speaks %u", version, DDCTL_VERSION);
		return;
	}
	if (ddctl_topology_parse((const char *)f->payload + 4, f->len - 4, specs, DDCTL_SESSIONS_MAX, &n) < 0) {
		control_error(a, f->id, "HELLO: malformed topology");
		return;
	}
	for (unsigned i = 0; i < n; i++)
		nblk += specs[i].kind == DDCTL_KIND_BLK;
	agent_log("HELLO: %u sessions (%u blk, %u net)", n, nblk, n - nblk);

	/* A new HELLO is a new bridge: nothing of the old connection's sessions carries over. */
	session_stop_all(a);
	memcpy(a->specs, specs, sizeof(specs[0]) * n);
	a->nspecs = n;
	a->have_topology = true;
	a->greeted = false;
	for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++)
		backend_configure(a, &a->backends[k], a->specs, a->nspecs);
	a->hello_pending = true;
	a->hello_deadline_ms = agent_now_ms() + a->opt.hello_timeout_ms;
}

static void control_hello_ack(struct agent *a)
{
	char text[128];
	uint8_t payload[8 + sizeof(text)];

	snprintf(text, sizeof(text), "ddtk-agent %s", DDTK_VERSION);
	agent_u32_put(payload, (uint32_t)a->boot_id);
	agent_u32_put(payload + 4, (uint32_t)(a->boot_id >> 32));
	size_t n = strlen(text);
	/* A payload with a length, not a C string. */
	memcpy(payload + 8, text, n); // NOLINT(bugprone-not-null-terminated-result)
	a->hello_pending = false;
	a->greeted = true;
	port_send(a, DDCTL_MSG_HELLO_ACK, 0, payload, (uint32_t)(8 + n));
	agent_log("HELLO_ACK sent (boot id %016llx)", (unsigned long long)a->boot_id);
	devices_report_all(a);
}

void control_timers(struct agent *a, struct loop *l, int64_t now)
{
	if (!a->hello_pending)
		return;
	bool ready = true;
	for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++)
		ready = ready && backend_ready(a, &a->backends[k]);
	if (ready) {
		control_hello_ack(a);
		return;
	}
	if (now >= a->hello_deadline_ms) {
		/* Answer anyway: the bridge learns which back-end is missing, and its SESSION_STARTs fail
		 * until the back-end is there (it is restarted with backoff meanwhile). */
		char which[64] = "";
		for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++)
			if (!backend_ready(a, &a->backends[k]))
				snprintf(which + strlen(which), sizeof(which) - strlen(which), " %s",
					 backend_kind_name((enum backend_kind)k));
		control_error(a, 0, "HELLO: back-ends not ready after %u ms:%s", a->opt.hello_timeout_ms, which);
		control_hello_ack(a);
		return;
	}
	loop_wake_at(l, now + HELLO_POLL_MS);
}

void control_host_gone(struct agent *a)
{
	/* The next bridge starts with a HELLO; until then nothing is reported. Sessions stay as they
	 * are: the data path does not need the bridge, and the next HELLO stops them. */
	a->greeted = false;
	a->hello_pending = false;
}

void control_handle_frame(struct agent *a, const struct agent_frame *f)
{
	switch ((enum ddctl_msg_type)f->type) {
	case DDCTL_MSG_HELLO:
		control_hello(a, f);
		break;
	case DDCTL_MSG_SESSION_START:
		session_start(a, f->id);
		break;
	case DDCTL_MSG_SESSION_STOP:
		session_stop(a, f->id, true);
		break;
	case DDCTL_MSG_VU:
		session_from_bridge(a, f->id, f->payload, f->len);
		break;
	case DDCTL_MSG_ERROR:
		agent_log("bridge reports an error (id %u): %.*s", f->id, (int)(f->len > 200 ? 200 : f->len),
			  (const char *)f->payload);
		break;
	case DDCTL_MSG_HELLO_ACK:
	case DDCTL_MSG_SESSION_STATE:
	case DDCTL_MSG_DEVICE_ADDED:
	case DDCTL_MSG_DEVICE_REMOVED:
	case DDCTL_MSG_HEALTH:
	case _DDCTL_MSG_LAST:
		control_error(a, f->id, "unexpected %s from the bridge", ddctl_msg_type_name(f->type));
		break;
	}
}
