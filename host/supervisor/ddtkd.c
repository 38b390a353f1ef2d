/* ddtkd: the supervisor of an instance's driver domain (docs/ddtkd.md). Holds a libvirt connection
 * (keepalive, reconnecting when it breaks), listens for the DD's watchdog and lifecycle events, and
 * restarts the DD with a policy (restart-policy.h): at once, then with a growing delay, and no more
 * than the budget within the window, after which the DD is "failed" until it is started by hand.
 * A DD that `ddtk stop dd` stopped (the hold file exists) is left down. Each connection to its
 * status socket gets the state as one JSON document. `ddtk up` starts it after the VMs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent-proto.h"
#include "config.h"
#include "restart-policy.h"

_Static_assert(DDTK_RESTART_BUDGET_MAX == RESTART_BUDGET_MAX, "ddtk.conf allows what the policy holds");
#include "vmm.h"
#include "vu-backend.h"
#include "vu-socket.h"

#define RECONNECT_MS 2000
#define CHECK_DELAY_MS 300     /* after a stop event: look at the DD once the dust has settled */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

enum dd_state {
	DD_UNKNOWN,   /* not looked yet (no libvirt) */
	DD_RUNNING,
	DD_WAITING,   /* a restart is due after the policy's delay */
	DD_HELD,      /* down on purpose (`ddtk stop dd`) */
	DD_FAILED,    /* the budget is spent: down until started by hand */
	_DD_STATE_LAST,
};

struct ddtkd {
	struct ddtk_config cfg;
	struct vmm m;
	bool connected;
	int cb_watchdog, cb_lifecycle;
	int reconnect_timer, restart_timer, check_timer;
	char domain[2 * DDTK_NAME_MAX + 16];
	char hold_file[DDTK_STATE_PATH_MAX];
	char socket_path[DDTK_SOCKET_PATH_MAX];
	int listen_fd, signal_fd;
	bool quit;

	enum dd_state state;
	struct restart_policy policy;
	char reason[512];        /* why the pending restart (or the one being decided) */
	char stop_reason[128];   /* a watchdog's poweroff or shutdown: the reason for the stop to come */
	char last_reason[512];
	time_t last_restart;     /* wall clock of the last restart, 0: none */
	int hung_id;             /* the DD's domain id whose watchdog fired, -1: none pending */
	int64_t restart_due_ms;
	uint64_t watchdog_events, stops_seen, start_failures;
	char last_error[sizeof(((struct ddtk_err *)0)->msg)];
};

static int64_t now_ms(void)
{
	return agent_now_ms();
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char stamp[32] = "";
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;

	if (localtime_r(&t, &tm))
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	fprintf(stderr, "%s ddtkd: ", stamp);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start is right above
	va_end(ap);
	fputc('\n', stderr);
}

static const char *state_name(enum dd_state s)
{
	switch (s) {
	case DD_UNKNOWN: return "unknown";
	case DD_RUNNING: return "running";
	case DD_WAITING: return "restart-pending";
	case DD_HELD: return "stopped-by-ddtk";
	case DD_FAILED: return "failed";
	case _DD_STATE_LAST: break;
	}
	return "unknown";
}

static bool held(const struct ddtkd *d)
{
	return access(d->hold_file, F_OK) == 0;
}

static void set_state(struct ddtkd *d, enum dd_state s)
{
	if (d->state != s)
		say("driver domain %s: %s -> %s", d->domain, state_name(d->state), state_name(s));
	d->state = s;
	if (s != DD_WAITING)
		virEventUpdateTimeout(d->restart_timer, -1);
}

/* The DD's domain id when it runs, -1 when it does not, -2 when libvirt cannot tell. */
static int dd_id(struct ddtkd *d)
{
	if (!d->connected)
		return -2;
	virDomainPtr dom = virDomainLookupByName(d->m.conn, d->domain);
	if (!dom) {
		virErrorPtr e = virGetLastError();
		return e && e->code == VIR_ERR_NO_DOMAIN ? -1 : -2;
	}
	int active = virDomainIsActive(dom);
	int id = active == 1 ? (int)virDomainGetID(dom) : active == 0 ? -1 : -2;
	virDomainFree(dom);
	return id;
}

/* A restart is wanted for `why`: when the policy allows, after its delay; else the DD has failed. */
static void want_restart(struct ddtkd *d, const char *why)
{
	if (d->state == DD_WAITING || d->state == DD_FAILED)
		return;
	int64_t now = now_ms(), delay = restart_policy_delay(&d->policy, now);
	if (why != d->reason) /* snprintf must not copy a string onto itself */
		snprintf(d->reason, sizeof(d->reason), "%s", why);
	why = d->reason;
	if (delay < 0) {
		set_state(d, DD_FAILED);
		say("giving up: %u restarts within %u s already (restart-budget, restart-window); the driver "
		    "domain stays down until `ddtk start dd` (last: %s)", restart_policy_recent(&d->policy, now),
		    d->cfg.dd.restart_window_s, why);
		/* A hung DD serves nobody: stop it, its console log stays. */
		if (dd_id(d) >= 0) {
			struct ddtk_err err;
			if (vmm_stop(&d->m, "dd", &err) < 0)
				say("cannot stop the failed driver domain: %s", err.msg);
		}
		return;
	}
	say("restarting the driver domain %s: %s", delay ? "in a moment" : "now", why);
	if (delay)
		say("(restart %u within %u s: waiting %lld ms first)", restart_policy_recent(&d->policy, now) + 1,
		    d->cfg.dd.restart_window_s, (long long)delay);
	d->restart_due_ms = now + delay;
	set_state(d, DD_WAITING);
	virEventUpdateTimeout(d->restart_timer, (int)delay);
}

static void do_restart(int timer, void *opaque)
{
	struct ddtkd *d = opaque;
	struct ddtk_err err;
	(void)timer;

	virEventUpdateTimeout(d->restart_timer, -1);
	if (d->state != DD_WAITING)
		return;
	if (held(d)) {
		set_state(d, DD_HELD);
		return;
	}
	int id = dd_id(d);
	if (id == -2) {
		/* libvirt cannot tell: try again later (after a reconnect at the latest). */
		say("cannot look at the driver domain now (libvirt: %s); the restart waits", virGetLastErrorMessage());
		if (d->connected)
			virEventUpdateTimeout(d->restart_timer, RECONNECT_MS);
		return;
	}
	if (id >= 0 && d->hung_id != id) {
		/* It runs, and it is not the one whose watchdog fired: someone started it already. */
		say("the driver domain runs again (domain id %d) without ddtkd: nothing to do", id);
		d->hung_id = -1;
		set_state(d, DD_RUNNING);
		return;
	}
	if (id >= 0 && vmm_stop(&d->m, "dd", &err) < 0) {
		say("cannot stop the hung driver domain: %s", err.msg);
		snprintf(d->last_error, sizeof(d->last_error), "%s", err.msg);
	}
	d->hung_id = -1;
	int64_t now = now_ms();
	restart_policy_record(&d->policy, now);
	d->last_restart = time(NULL);
	snprintf(d->last_reason, sizeof(d->last_reason), "%s", d->reason);
	int r = vmm_start(&d->m, "dd", &err);
	if (r < 0 && r != -EEXIST) {
		d->start_failures++;
		snprintf(d->last_error, sizeof(d->last_error), "%s", err.msg);
		say("starting the driver domain failed: %s", err.msg);
		set_state(d, DD_RUNNING); /* not really: the next want_restart decides */
		char why[600];
		snprintf(why, sizeof(why), "the start after \"%.200s\" failed", d->reason);
		want_restart(d, why);
		return;
	}
	if (held(d)) {
		/* `ddtk stop dd` came while this restart ran: it wins. */
		say("`ddtk stop dd` came during the restart: stopping the driver domain again");
		if (vmm_stop(&d->m, "dd", &err) < 0)
			say("cannot stop the driver domain: %s", err.msg);
		set_state(d, DD_HELD);
		return;
	}
	say("driver domain started again (restart %llu, %u within %u s)", (unsigned long long)d->policy.total,
	    restart_policy_recent(&d->policy, now), d->cfg.dd.restart_window_s);
	d->reason[0] = d->stop_reason[0] = '\0';
	set_state(d, DD_RUNNING);
}

/* Looks at the DD after a stop event (or at start, or after a reconnect): down and not held means
 * a restart. */
static void check(int timer, void *opaque)
{
	struct ddtkd *d = opaque;
	(void)timer;

	virEventUpdateTimeout(d->check_timer, -1);
	int id = dd_id(d);
	if (id == -2) {
		if (d->connected)
			virEventUpdateTimeout(d->check_timer, RECONNECT_MS);
		return;
	}
	if (id >= 0) {
		/* Running: started by hand while ddtkd was away (the event is lost), or being started by
		 * `ddtk start dd` now (held while it boots; ddtkd ignores its watchdog until then). */
		if (d->state == DD_FAILED || d->state == DD_HELD) {
			say("driver domain %s runs again (started by hand): the restart budget is full again", d->domain);
			restart_policy_forgive(&d->policy);
		}
		if (d->state != DD_WAITING) {
			d->reason[0] = d->stop_reason[0] = '\0';
			set_state(d, DD_RUNNING);
		}
		return;
	}
	if (held(d)) {
		set_state(d, DD_HELD);
		return;
	}
	if (d->state != DD_WAITING && d->state != DD_FAILED)
		want_restart(d, d->reason[0] ? d->reason : "the driver domain is not running");
}

static void schedule_check(struct ddtkd *d)
{
	virEventUpdateTimeout(d->check_timer, CHECK_DELAY_MS);
}

static bool is_dd(struct ddtkd *d, virDomainPtr dom)
{
	const char *name = virDomainGetName(dom);
	return name && strcmp(name, d->domain) == 0;
}

static const char *watchdog_action_name(int action)
{
	switch (action) {
	case VIR_DOMAIN_EVENT_WATCHDOG_NONE: return "none";
	case VIR_DOMAIN_EVENT_WATCHDOG_PAUSE: return "pause";
	case VIR_DOMAIN_EVENT_WATCHDOG_RESET: return "reset";
	case VIR_DOMAIN_EVENT_WATCHDOG_POWEROFF: return "poweroff";
	case VIR_DOMAIN_EVENT_WATCHDOG_SHUTDOWN: return "shutdown";
	case VIR_DOMAIN_EVENT_WATCHDOG_DEBUG: return "debug";
	case VIR_DOMAIN_EVENT_WATCHDOG_INJECTNMI: return "inject-nmi";
	default: return "unknown";
	}
}

static void on_watchdog(virConnectPtr conn, virDomainPtr dom, int action, void *opaque)
{
	struct ddtkd *d = opaque;
	char why[128];
	(void)conn;

	if (!is_dd(d, dom))
		return;
	d->watchdog_events++;
	snprintf(why, sizeof(why), "its watchdog fired (action %s)", watchdog_action_name(action));
	say("driver domain %s: %s", d->domain, why);
	if (held(d))
		return;
	switch (action) {
	case VIR_DOMAIN_EVENT_WATCHDOG_RESET: {
		/* QEMU resets it in place: that is the restart; it counts against the budget. */
		int64_t now = now_ms();
		if (restart_policy_delay(&d->policy, now) < 0) {
			want_restart(d, why); /* fails it */
			return;
		}
		restart_policy_record(&d->policy, now);
		d->last_restart = time(NULL);
		snprintf(d->last_reason, sizeof(d->last_reason), "%s", why);
		return;
	}
	case VIR_DOMAIN_EVENT_WATCHDOG_POWEROFF:
		/* QEMU powers it off: the stop event follows, and the check restarts it with this reason. */
		snprintf(d->stop_reason, sizeof(d->stop_reason), "%s", why);
		return;
	default:
		/* none, pause, shutdown (an ACPI request a hung guest may never act on), ... */
		d->hung_id = (int)virDomainGetID(dom);
		want_restart(d, why);
		return;
	}
}

static const char *stop_detail(int event, int detail)
{
	if (event == VIR_DOMAIN_EVENT_CRASHED)
		return detail == VIR_DOMAIN_EVENT_CRASHED_PANICKED ? "its kernel panicked" : "it crashed";
	if (event == VIR_DOMAIN_EVENT_SHUTDOWN)
		return "it shut down";
	switch (detail) {
	case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: return "it shut down";
	case VIR_DOMAIN_EVENT_STOPPED_DESTROYED: return "it was destroyed (not by ddtk stop)";
	case VIR_DOMAIN_EVENT_STOPPED_CRASHED: return "it crashed";
	case VIR_DOMAIN_EVENT_STOPPED_FAILED: return "its QEMU failed";
	case VIR_DOMAIN_EVENT_STOPPED_MIGRATED: return "it was migrated away";
	case VIR_DOMAIN_EVENT_STOPPED_SAVED: return "it was saved";
	default: return "it stopped";
	}
}

static void on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct ddtkd *d = opaque;
	(void)conn;

	if (!is_dd(d, dom))
		return;
	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
		if (d->state == DD_WAITING || d->state == DD_FAILED || d->state == DD_HELD) {
			/* Started by hand (`ddtk start dd`): the count starts afresh. */
			say("driver domain %s started by hand: the restart budget is full again", d->domain);
			restart_policy_forgive(&d->policy);
			d->reason[0] = '\0';
			d->hung_id = -1;
		}
		set_state(d, DD_RUNNING);
		return;
	case VIR_DOMAIN_EVENT_STOPPED:
	case VIR_DOMAIN_EVENT_CRASHED:
		d->stops_seen++;
		if (held(d)) {
			set_state(d, DD_HELD);
			return;
		}
		/* The first word on it stands (a panic is a CRASHED then a STOPPED event; a watchdog's
		 * poweroff left its reason); a restart already pending keeps its own. The check clears
		 * it when the DD runs after all (ddtkd's own destroy of a hung DD). */
		if ((d->state == DD_RUNNING || d->state == DD_UNKNOWN) && !d->reason[0])
			snprintf(d->reason, sizeof(d->reason), "%s", d->stop_reason[0] ? d->stop_reason :
				 stop_detail(event, detail));
		d->stop_reason[0] = '\0';
		schedule_check(d);
		return;
	default:
		return;
	}
}

static void on_close(virConnectPtr conn, int reason, void *opaque);

static void disconnect(struct ddtkd *d)
{
	if (d->m.conn) {
		if (d->cb_watchdog >= 0)
			virConnectDomainEventDeregisterAny(d->m.conn, d->cb_watchdog);
		if (d->cb_lifecycle >= 0)
			virConnectDomainEventDeregisterAny(d->m.conn, d->cb_lifecycle);
		virConnectUnregisterCloseCallback(d->m.conn, on_close);
	}
	d->cb_watchdog = d->cb_lifecycle = -1;
	vmm_close(&d->m);
	d->connected = false;
}

static int connect_libvirt(struct ddtkd *d)
{
	struct ddtk_err err;
	if (vmm_open(&d->m, &d->cfg, true, &err) < 0) {
		snprintf(d->last_error, sizeof(d->last_error), "%s", err.msg);
		return -ECONNREFUSED;
	}
	if (virConnectSetKeepAlive(d->m.conn, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) < 0 ||
	    virConnectRegisterCloseCallback(d->m.conn, on_close, d, NULL) < 0 ||
	    (d->cb_watchdog = virConnectDomainEventRegisterAny(d->m.conn, NULL, VIR_DOMAIN_EVENT_ID_WATCHDOG,
							       VIR_DOMAIN_EVENT_CALLBACK(on_watchdog), d, NULL)) < 0 ||
	    (d->cb_lifecycle = virConnectDomainEventRegisterAny(d->m.conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
								VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), d, NULL)) < 0) {
		snprintf(d->last_error, sizeof(d->last_error), "libvirt: %s", virGetLastErrorMessage());
		disconnect(d);
		return -EIO;
	}
	d->connected = true;
	return 0;
}

static void reconnect(int timer, void *opaque)
{
	struct ddtkd *d = opaque;
	(void)timer;

	if (d->connected || connect_libvirt(d) < 0)
		return;
	virEventUpdateTimeout(d->reconnect_timer, -1);
	d->last_error[0] = '\0'; /* the failed attempts are over */
	say("connected to libvirt at %s again", d->cfg.libvirt_uri);
	/* What happened meanwhile is not in any event: look. A restart that waited goes now. */
	if (d->state == DD_WAITING)
		virEventUpdateTimeout(d->restart_timer, 0);
	else
		schedule_check(d);
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct ddtkd *d = opaque;
	(void)conn;

	say("lost the libvirt connection (reason %d); reconnecting every %d ms", reason, RECONNECT_MS);
	/* Not disconnect(): libvirt is inside this connection's dispatch. Unref it from a timer. */
	d->connected = false;
	virEventUpdateTimeout(d->reconnect_timer, RECONNECT_MS);
}

/* ---------- the status socket ---------- */

static void write_status(struct ddtkd *d, FILE *f)
{
	int64_t now = now_ms();
	char when[64] = "";
	struct tm tm;

	if (d->last_restart && localtime_r(&d->last_restart, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", &tm);
	fprintf(f, "{\"dd\": {\"domain\": \"%s\", \"state\": \"%s\", \"restarts\": %llu, \"recent_restarts\": %u, "
		"\"restart_budget\": %u, \"restart_window_s\": %u, \"restart_in_ms\": %lld, \"watchdog_events\": %llu, "
		"\"stops_seen\": %llu, \"start_failures\": %llu, \"last_restart\": ", d->domain, state_name(d->state),
		(unsigned long long)d->policy.total, restart_policy_recent(&d->policy, now), d->policy.budget,
		d->cfg.dd.restart_window_s,
		d->state == DD_WAITING ? (long long)(d->restart_due_ms > now ? d->restart_due_ms - now : 0) : -1LL,
		(unsigned long long)d->watchdog_events, (unsigned long long)d->stops_seen,
		(unsigned long long)d->start_failures);
	vu_json_string(f, when);
	fprintf(f, ", \"last_reason\": ");
	/* Pending or given up: why; otherwise why the last restart. */
	vu_json_string(f, d->state == DD_WAITING || d->state == DD_FAILED ? d->reason : d->last_reason);
	fprintf(f, ", \"last_error\": ");
	vu_json_string(f, d->last_error);
	fprintf(f, "},\n \"libvirt\": \"%s\"}\n", d->connected ? "connected" : "reconnecting");
}

static void on_status(int watch, int fd, int events, void *opaque)
{
	struct ddtkd *d = opaque;
	char *text = NULL;
	size_t len = 0;
	(void)watch;
	(void)events;

	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c < 0)
		return;
	FILE *f = open_memstream(&text, &len);
	if (f) {
		write_status(d, f);
		fclose(f);
		/* One short document: it fits the socket's buffer, a reader that does not read loses it. */
		(void)!send(c, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	free(text);
	close(c);
}

static int listen_status(struct ddtkd *d)
{
	/* A stale socket is replaced (only one ddtkd per instance runs: ddtk checks the pid file). */
	return vu_socket_listen(d->socket_path, &d->listen_fd);
}

static void on_signal(int watch, int fd, int events, void *opaque)
{
	struct ddtkd *d = opaque;
	struct signalfd_siginfo si;
	(void)watch;
	(void)events;

	if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		say("signal %u: stopping (the driver domain keeps running)", si.ssi_signo);
		d->quit = true;
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ddtkd [-c FILE] [-i INSTANCE] [--accel auto|kvm|tcg]\n"
		"\n"
		"Supervises the driver domain of a ddtk instance: restarts it when its watchdog fires or it\n"
		"stops without `ddtk stop dd`, within [driver-domain] restart-budget per restart-window.\n"
		"`ddtk up` starts it; its state: `ddtk status`, or its socket STATE-DIR/INSTANCE/ddtkd.sock.\n"
		"\n"
		"  -c, --config FILE    the configuration (default: $DDTK_CONFIG, else the built-in one)\n"
		"  -i, --instance NAME  override [ddtk] instance\n"
		"      --accel MODE     override [ddtk] accel\n"
		"  -h, --help\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "instance", required_argument, NULL, 'i' },
		{ "accel", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct ddtkd d;
	const char *config_path = getenv("DDTK_CONFIG"), *instance = NULL, *accel = NULL;
	struct ddtk_err err;
	int c, r;

	setvbuf(stderr, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "c:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'i': instance = optarg; break;
		case 'a': accel = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (ddtk_config_daemon(&d.cfg, config_path, instance, accel, &err) < 0) {
		fprintf(stderr, "ddtkd: %s\n", err.msg);
		return 1;
	}
	snprintf(d.domain, sizeof(d.domain), "ddtk-%s-dd", d.cfg.instance);
	if (ddtk_dd_hold_file(&d.cfg, d.hold_file) < 0 || ddtk_ddtkd_status_socket(&d.cfg, d.socket_path) < 0) {
		fprintf(stderr, "ddtkd: the state folder's path is too long\n");
		return 1;
	}
	restart_policy_init(&d.policy, d.cfg.dd.restart_budget, (int64_t)d.cfg.dd.restart_window_s * 1000,
			    (int64_t)d.cfg.dd.restart_delay_max_s * 1000);
	d.cb_watchdog = d.cb_lifecycle = -1;
	d.listen_fd = d.signal_fd = -1;
	d.hung_id = -1;

	if (virEventRegisterDefaultImpl() < 0) {
		fprintf(stderr, "ddtkd: libvirt's event loop: %s\n", virGetLastErrorMessage());
		return 1;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d.signal_fd < 0 || (r = listen_status(&d)) < 0) {
		fprintf(stderr, "ddtkd: cannot listen on %s: %s\n", d.socket_path,
			strerror(d.signal_fd < 0 ? errno : -r));
		return 1;
	}
	d.reconnect_timer = virEventAddTimeout(-1, reconnect, &d, NULL);
	d.restart_timer = virEventAddTimeout(-1, do_restart, &d, NULL);
	d.check_timer = virEventAddTimeout(-1, check, &d, NULL);
	if (d.reconnect_timer < 0 || d.restart_timer < 0 || d.check_timer < 0 ||
	    virEventAddHandle(d.listen_fd, VIR_EVENT_HANDLE_READABLE, on_status, &d, NULL) < 0 ||
	    virEventAddHandle(d.signal_fd, VIR_EVENT_HANDLE_READABLE, on_signal, &d, NULL) < 0) {
		fprintf(stderr, "ddtkd: libvirt's event loop: %s\n", virGetLastErrorMessage());
		return 1;
	}
	if (connect_libvirt(&d) < 0) {
		say("%s; retrying every %d ms", d.last_error, RECONNECT_MS);
		virEventUpdateTimeout(d.reconnect_timer, RECONNECT_MS);
	} else {
		check(d.check_timer, &d); /* at once: `ddtk status` right after `up` shows the truth */
	}
	say("supervising %s (restart-budget %u within %u s, delays up to %u s)%s", d.domain, d.cfg.dd.restart_budget,
	    d.cfg.dd.restart_window_s, d.cfg.dd.restart_delay_max_s, held(&d) ? "; it is stopped by ddtk now" : "");
	while (!d.quit) {
		if (!d.connected && d.m.conn)
			disconnect(&d); /* after on_close: outside libvirt's dispatch */
		if (virEventRunDefaultImpl() < 0) {
			say("libvirt's event loop failed: %s", virGetLastErrorMessage());
			break;
		}
	}
	disconnect(&d);
	close(d.listen_fd);
	unlink(d.socket_path);
	return 0;
}
