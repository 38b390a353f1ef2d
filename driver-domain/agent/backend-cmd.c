/* Back-end command lines (backend-cmd.h). */
#include "backend-cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *backend_kind_name(enum backend_kind kind)
{
	switch (kind) {
	case BACKEND_BLK: return "blk";
	case BACKEND_NET: return "net";
	case _BACKEND_KIND_LAST: break;
	}
	return "?";
}

void backend_socket_path(const char *run_dir, unsigned session, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/s%u.sock", run_dir, session);
}

void backend_stats_path(const char *run_dir, enum backend_kind kind, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%s.stats", run_dir, backend_kind_name(kind));
}

bool backend_serves(enum backend_kind kind, const struct ddctl_session_spec *spec)
{
	return (kind == BACKEND_BLK && spec->kind == DDCTL_KIND_BLK) ||
	       (kind == BACKEND_NET && spec->kind == DDCTL_KIND_NET);
}

/* Appends one argument. */
static int __attribute__((format(printf, 2, 3))) cmd_add(struct backend_cmd *c, const char *fmt, ...)
{
	va_list ap;
	size_t room = sizeof(c->text) - c->used;

	if (c->argc >= BACKEND_ARGS_MAX)
		return -E2BIG;
	va_start(ap, fmt);
	int n = vsnprintf(c->text + c->used, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		return -E2BIG;
	c->argv[c->argc++] = c->text + c->used;
	c->argv[c->argc] = NULL;
	c->used += (size_t)n + 1;
	return 0;
}

static int add_session(struct backend_cmd *c, enum backend_kind kind, const struct backend_config *cfg,
		       const struct ddctl_session_spec *s)
{
	char socket[BACKEND_RUN_DIR_MAX + 16];

	backend_socket_path(cfg->run_dir, s->session, socket, sizeof(socket));
	if (kind == BACKEND_BLK)
		return cmd_add(c,
			       "--export=socket=%s,file=%s,offset=%" PRIu64 ",size=%" PRIu64 ",num-queues=%u,ivshmem=%u,"
			       "kick-vector=%u%s",
			       socket, cfg->disk, s->offset, s->size, s->queues, s->session, s->kick_vector,
			       s->read_only ? ",read-only" : "");
	return cmd_add(c, "--client=name=%s,socket=%s,mac=%02x:%02x:%02x:%02x:%02x:%02x,queues=%u,ivshmem=%u,kick-vector=%u",
		       s->name, socket, s->mac[0], s->mac[1], s->mac[2], s->mac[3], s->mac[4], s->mac[5],
		       s->queues, s->session, s->kick_vector);
}

int backend_cmd_build(enum backend_kind kind, const struct backend_config *cfg,
		      const struct ddctl_session_spec *specs, unsigned n, struct backend_cmd *ret)
{
	unsigned served = 0;
	char stats[BACKEND_RUN_DIR_MAX + 16];
	int r;

	ret->argc = 0;
	ret->used = 0;
	ret->argv[0] = NULL;
	if (strchr(cfg->disk, ',') || strchr(cfg->uplink, ',') || strchr(cfg->run_dir, ',') ||
	    strlen(cfg->run_dir) > BACKEND_RUN_DIR_MAX)
		return -EINVAL;
	if ((r = cmd_add(ret, "%s", cfg->program[kind])) < 0)
		return r;
	if (kind == BACKEND_NET && cfg->uplink[0] && (r = cmd_add(ret, "--uplink=%s", cfg->uplink)) < 0)
		return r;
	for (unsigned i = 0; i < n; i++) {
		if (!backend_serves(kind, &specs[i]))
			continue;
		if ((r = add_session(ret, kind, cfg, &specs[i])) < 0)
			return r;
		served++;
	}
	if (served == 0) {
		ret->argc = 0;
		ret->used = 0;
		ret->argv[0] = NULL;
		return 0;
	}
	backend_stats_path(cfg->run_dir, kind, stats, sizeof(stats));
	if ((r = cmd_add(ret, "--stats-socket=%s", stats)) < 0 ||
	    (r = cmd_add(ret, "--poll-us=%u", cfg->poll_us)) < 0)
		return r;
	return (int)served;
}
