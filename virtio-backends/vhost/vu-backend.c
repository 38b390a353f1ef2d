/* The back-end processes' main loop, signals and option helpers (see vu-backend.h). */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vu-backend.h"
#include "vu-socket.h"

/* Back to epoll at least this often while polling: sockets and signals are not starved. */
#define VU_POLL_ROUND_NS 1000000
/* Below this, polling is not worth it: stop. */
#define VU_POLL_FLOOR_NS 4000

uint64_t vu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t poll_adapt(uint64_t max_ns, uint64_t cur_ns, uint64_t slept_ns)
{
	if (!max_ns || slept_ns <= cur_ns)
		return cur_ns;
	if (slept_ns > max_ns)
		return cur_ns / 2 < VU_POLL_FLOOR_NS ? 0 : cur_ns / 2;
	if (cur_ns < VU_POLL_FLOOR_NS)
		return VU_POLL_FLOOR_NS;
	return cur_ns * 2 > max_ns ? max_ns : cur_ns * 2;
}

/* After work, look at the rings for a while before going to sleep: a guest with more to do then
 * needs no kick, and we need no wakeup. Kicks are off meanwhile. True when work was found (the
 * caller comes back here after a look at its sockets). */
static bool poll_for_work(uint64_t cur_ns, const struct vu_run_ops *ops, void *opaque)
{
	uint64_t start = vu_now_ns(), last_work = start, now = start;
	bool found = false;

	ops->kicks(opaque, false);
	while (now - last_work < cur_ns && now - start < VU_POLL_ROUND_NS) {
		if (ops->poll(opaque)) {
			ops->flush(opaque);
			found = true;
			last_work = vu_now_ns();
		}
		now = vu_now_ns();
	}
	return found;
}

int vu_run(struct vu_loop *loop, uint64_t poll_ns, const struct vu_run_ops *ops, void *opaque)
{
	uint64_t cur_ns = poll_ns;
	bool busy = false;

	while (!loop->stop) {
		uint64_t before = busy ? 0 : vu_now_ns();
		int r = vu_loop_run_once(loop, busy ? 0 : -1);

		if (!busy)
			cur_ns = poll_adapt(poll_ns, cur_ns, vu_now_ns() - before);
		if (r < 0)
			return r;
		ops->flush(opaque);
		busy = cur_ns && (r > 0 || busy) && poll_for_work(cur_ns, ops, opaque);
		/* Before sleeping, ask for kicks again; work that slipped in meanwhile is not slept on. */
		if (!busy && ops->kicks(opaque, true)) {
			ops->flush(opaque);
			busy = true;
		}
		if (ops->done && ops->done(opaque))
			break;
	}
	return 0;
}

static struct vu_watch signal_watch;
static struct vu_loop *signal_loop;

static void on_signal(struct vu_watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	if (read(w->fd, &si, sizeof(si)) == sizeof(si))
		signal_loop->stop = true;
}

int vu_signals_setup(struct vu_loop *loop)
{
	sigset_t mask;
	int fd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	signal_loop = loop;
	return vu_loop_add(loop, &signal_watch, fd, EPOLLIN, on_signal);
}

int vu_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL; /* strtoul would take spaces and a minus sign */
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

int vu_parse_group(const char *name, gid_t *ret)
{
	const struct group *g = getgrnam(name);

	if (!g)
		return -ENOENT;
	*ret = g->gr_gid;
	return 0;
}

int vu_socket_set_group(const char *path, gid_t gid)
{
	if (chown(path, (uid_t)-1, gid) < 0 || chmod(path, 0660) < 0)
		return -errno;
	return 0;
}

void vu_backend_options_init(struct vu_backend_options *o, unsigned poll_us)
{
	o->poll_ns = (uint64_t)poll_us * 1000;
	o->socket_gid = (gid_t)-1;
	o->verbose = false;
}

int vu_backend_option(const char *prog, int c, const char *arg, struct vu_backend_options *o)
{
	unsigned us;

	switch (c) {
	case VU_OPT_POLL_US:
		if (vu_parse_uint(arg, 0, VU_POLL_MAX_US, &us) < 0) {
			fprintf(stderr, "%s: --poll-us: 0 to %d microseconds\n", prog, VU_POLL_MAX_US);
			return -EINVAL;
		}
		o->poll_ns = (uint64_t)us * 1000;
		return 1;
	case VU_OPT_SOCKET_GROUP:
		if (vu_parse_group(arg, &o->socket_gid) < 0) {
			fprintf(stderr, "%s: --socket-group: no group '%s'\n", prog, arg);
			return -EINVAL;
		}
		return 1;
	case VU_OPT_VERBOSE:
		o->verbose = true;
		return 1;
	default:
		return 0;
	}
}

int vu_parse_spec(const char *prog, const char *option, const char *spec,
		  int (*set)(void *obj, const char *key, const char *value), void *obj,
		  const char *(*hint)(const char *key))
{
	char *copy = strdup(spec), *p;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (p = copy; p && *p && r == 0;) {
		char *comma = strchr(p, ','), *eq;

		if (comma)
			*comma = '\0';
		eq = strchr(p, '=');
		if (eq)
			*eq = '\0';
		r = set(obj, p, eq ? eq + 1 : NULL);
		if (r == -ENOENT)
			fprintf(stderr, "%s: %s: unknown key '%s'\n", prog, option, p);
		else if (r < 0)
			fprintf(stderr, "%s: %s: bad value for '%s'%s\n", prog, option, p, hint ? hint(p) : "");
		p = comma ? comma + 1 : NULL;
	}
	free(copy);
	return r < 0 ? -EINVAL : 0;
}

static void on_stats(struct vu_watch *w, uint32_t events)
{
	struct vu_stats_server *s = vu_container_of(w, struct vu_stats_server, watch);
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	f = open_memstream(&buf, &len);
	if (f) {
		s->write(f, s->opaque);
		if (fclose(f) == 0)
			/* A reader gets it all at once (a few KiB fit the socket buffer) or nothing: we
			 * never wait on it. */
			(void)send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	free(buf);
	close(fd);
}

int vu_stats_listen(struct vu_stats_server *s, struct vu_loop *loop, const char *path,
		    void (*write)(FILE *f, void *opaque), void *opaque)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (snprintf(s->path, sizeof(s->path), "%s", path) >= (int)sizeof(s->path))
		return -ENAMETOOLONG;
	r = vu_socket_listen(path, &s->fd);
	if (r < 0)
		return r;
	s->loop = loop;
	s->write = write;
	s->opaque = opaque;
	r = vu_loop_add(loop, &s->watch, s->fd, EPOLLIN, on_stats);
	if (r < 0)
		vu_stats_close(s);
	return r;
}

void vu_stats_close(struct vu_stats_server *s)
{
	if (s->fd < 0)
		return;
	vu_loop_del(s->loop, &s->watch);
	close(s->fd);
	unlink(s->path);
	s->fd = -1;
}

void vu_json_string(FILE *f, const char *str)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}
