/* Health: once a second each running back-end's stats socket is read (connect, read to EOF, at
 * most HEALTH_FETCH_MS), the progress rule is applied (progress.h), the watchdog is petted only
 * while every back-end shows progress, and HEALTH goes to the bridge. Before the first topology
 * there is no back-end, and the DD counts as healthy. The watchdog is never closed on purpose and
 * never with the magic 'V': if the agent dies, the DD is reset. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HEALTH_PERIOD_MS 1000
/* A stats answer that takes longer counts as no answer. */
#define HEALTH_FETCH_MS 1000

int watchdog_open(struct agent *a)
{
	struct watchdog *wd = &a->wd;

	wd->fd = -1;
	if (!a->opt.watchdog_path)
		return 0;
	/* Opening starts the timer; from here on the agent must pet it, or the DD is reset. */
	int fd = open(a->opt.watchdog_path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		agent_log("no watchdog: open %s: %s", a->opt.watchdog_path, strerror(errno));
		return r;
	}
	int timeout = (int)a->opt.watchdog_timeout_s;
	if (ioctl(fd, WDIOC_SETTIMEOUT, &timeout) < 0)
		agent_log("watchdog: cannot set a %u s timeout: %s", a->opt.watchdog_timeout_s, strerror(errno));
	if (ioctl(fd, WDIOC_GETTIMEOUT, &timeout) == 0)
		agent_log("watchdog %s armed, %d s timeout", a->opt.watchdog_path, timeout);
	(void)ioctl(fd, WDIOC_KEEPALIVE, 0);
	wd->fd = fd;
	return 0;
}

static void watchdog_pet(struct watchdog *wd)
{
	if (wd->fd >= 0 && ioctl(wd->fd, WDIOC_KEEPALIVE, 0) == 0)
		wd->pets++;
}

static void fetch_close(struct stats_fetch *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

void health_forget(struct backend *b)
{
	fetch_close(&b->fetch);
	b->fetch.started = false;
	b->fetch.done = false;
	b->fetch.len = 0;
	progress_reset(&b->progress);
}

static void fetch_start(struct agent *a, struct backend *b)
{
	struct stats_fetch *f = &b->fetch;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	fetch_close(f);
	f->started = true;
	f->done = false;
	f->len = 0;
	f->err = 0;
	if (!f->buf && !(f->buf = malloc(HEALTH_STATS_MAX))) {
		f->err = -ENOMEM;
		return;
	}
	backend_stats_path(a->opt.backend.run_dir, b->kind, sa.sun_path, sizeof(sa.sun_path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		f->err = -errno;
		return;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		f->err = -errno;
		close(fd);
		return;
	}
	f->fd = fd;
	f->tag = ++a->next_tag;
}

static void fetch_on_ready(struct agent *a, void *ctx, uint64_t tag, short revents)
{
	struct stats_fetch *f = ctx;

	if (f->fd < 0 || f->tag != tag)
		return;
	for (;;) {
		if (f->len == HEALTH_STATS_MAX) {
			f->err = -EMSGSIZE;
			fetch_close(f);
			return;
		}
		ssize_t n = read(f->fd, f->buf + f->len, HEALTH_STATS_MAX - f->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			f->err = -errno;
			fetch_close(f);
			return;
		}
		if (n == 0) {
			f->done = true;
			fetch_close(f);
			return;
		}
		f->len += (size_t)n;
	}
}

void health_prepare(struct agent *a, struct loop *l)
{
	for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++) {
		struct stats_fetch *f = &a->backends[k].fetch;
		if (f->fd >= 0)
			loop_add(l, f->fd, POLLIN, fetch_on_ready, f, f->tag);
	}
}

/* Judges the answer to the fetch started a period ago, and writes the back-end's HEALTH line. */
static void backend_judge(struct agent *a, struct backend *b, int64_t now)
{
	const char *name = backend_kind_name(b->kind);
	struct stats_fetch *f = &b->fetch;

	switch (b->state) {
	case BACKEND_IDLE:
		b->healthy = true;
		snprintf(b->health_line, sizeof(b->health_line), "%s: idle (no session)", name);
		return;
	case BACKEND_STOPPING:
		/* A restart the agent asked for (a new topology) is not a failure. */
		b->healthy = true;
		snprintf(b->health_line, sizeof(b->health_line), "%s: stopping pid %d for a new topology", name, (int)b->pid);
		return;
	case BACKEND_WAITING:
		/* Down is no progress: a back-end that keeps dying stops the petting. */
		b->healthy = false;
		snprintf(b->health_line, sizeof(b->health_line), "%s: %s, starting again in %lld ms (%u restarts)",
			 name, b->last_exit, (long long)(b->restart_at_ms - now), b->restarts);
		return;
	case BACKEND_RUNNING:
		break;
	}
	if (now - b->started_ms >= BACKOFF_STABLE_MS)
		b->quick_exits = 0;
	if (b->quick_exits >= BACKEND_CRASH_LOOP) {
		fetch_close(f);
		b->healthy = false;
		snprintf(b->health_line, sizeof(b->health_line), "%s: running, pid %d, but exited %u times in a row (%s)",
			 name, (int)b->pid, b->quick_exits, b->last_exit);
		return;
	}
	if (!f->started || (!f->done && (f->err == -ENOENT || f->err == -ECONNREFUSED) &&
			    now - b->started_ms < BACKEND_STARTUP_MS)) {
		/* Started since the last period, or its stats socket is not there yet: nothing to judge. */
		b->healthy = true;
		snprintf(b->health_line, sizeof(b->health_line), "%s: running, pid %d, starting", name, (int)b->pid);
		return;
	}
	struct stats_sample sample;
	const struct stats_sample *s = NULL;
	char why[64] = "";
	if (f->done && stats_json_parse(f->buf, f->len, &sample) == 0)
		s = &sample;
	else if (f->done)
		snprintf(why, sizeof(why), "not a stats document");
	else if (f->err)
		snprintf(why, sizeof(why), "%s", strerror(-f->err));
	else
		snprintf(why, sizeof(why), "no answer within %d ms", HEALTH_FETCH_MS);
	fetch_close(f);
	b->healthy = progress_update(&b->progress, s, now);
	if (!s) {
		snprintf(b->health_line, sizeof(b->health_line), "%s: running, pid %d, stats: %s", name, (int)b->pid, why);
		return;
	}
	if (!s->has_completed && !s->has_inflight) {
		/* A back-end that reports no request counts (ddtk-net) shows progress by answering. */
		snprintf(b->health_line, sizeof(b->health_line), "%s: running, pid %d, %u sessions, answering", name,
			 (int)b->pid, b->nspecs);
		return;
	}
	snprintf(b->health_line, sizeof(b->health_line),
		 "%s: running, pid %d, %u sessions, completed %llu, inflight %llu, progress %lld ms ago%s", name,
		 (int)b->pid, b->nspecs, (unsigned long long)s->completed, (unsigned long long)s->inflight,
		 (long long)(now - b->progress.last_progress_ms), b->healthy ? "" : ": STALLED");
}

void health_timers(struct agent *a, struct loop *l, int64_t now)
{
	if (now < a->next_health_ms) {
		loop_wake_at(l, a->next_health_ms);
		return;
	}
	a->next_health_ms = now + HEALTH_PERIOD_MS;
	loop_wake_at(l, a->next_health_ms);

	bool healthy = true;
	char text[4 * 200];
	size_t pos = 0;
	for (unsigned k = 0; k < _BACKEND_KIND_LAST; k++) {
		struct backend *b = &a->backends[k];
		bool was = b->healthy;
		backend_judge(a, b, now);
		if (was != b->healthy)
			agent_log("%s", b->health_line);
		healthy = healthy && b->healthy;
		int n = snprintf(text + pos, sizeof(text) - pos, "%s\n", b->health_line);
		if (n > 0 && (size_t)n < sizeof(text) - pos)
			pos += (size_t)n;
		b->fetch.started = false;
		if (b->state == BACKEND_RUNNING)
			fetch_start(a, b);
	}
	if (healthy)
		watchdog_pet(&a->wd);
	if (healthy != a->healthy)
		agent_log(healthy ? "healthy again: petting the watchdog" : "unhealthy: not petting the watchdog");
	a->healthy = healthy;

	if (a->greeted) {
		uint8_t payload[4 + sizeof(text)];
		agent_u32_put(payload, healthy ? 1 : 0);
		memcpy(payload + 4, text, pos);
		port_send(a, DDCTL_MSG_HEALTH, 0, payload, (uint32_t)(4 + pos));
	}
}
