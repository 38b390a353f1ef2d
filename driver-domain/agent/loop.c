/* The poll loop (loop.h). */
#include "loop.h"

#include <errno.h>

#include "agent-proto.h"

void loop_reset(struct loop *l)
{
	l->n = 0;
	l->deadline_ms = INT64_MAX;
}

void loop_add(struct loop *l, int fd, short events, loop_fn fn, void *ctx, uint64_t tag)
{
	/* The agent has a bounded number of fds (port, signals, sessions, stats readers): more than
	 * LOOP_FDS_MAX would be a bug, and the entry is dropped rather than written out of bounds. */
	if (l->n >= LOOP_FDS_MAX || fd < 0)
		return;
	l->pfd[l->n] = (struct pollfd){ .fd = fd, .events = events };
	l->entry[l->n].fn = fn;
	l->entry[l->n].ctx = ctx;
	l->entry[l->n].tag = tag;
	l->n++;
}

void loop_wake_at(struct loop *l, int64_t ms)
{
	if (ms < l->deadline_ms)
		l->deadline_ms = ms;
}

int loop_run_once(struct loop *l, struct agent *a)
{
	int timeout = -1;
	if (l->deadline_ms != INT64_MAX) {
		int64_t d = l->deadline_ms - agent_now_ms();
		timeout = d <= 0 ? 0 : d > 60000 ? 60000 : (int)d;
	}
	int r = poll(l->pfd, l->n, timeout);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	for (unsigned i = 0; i < l->n && r > 0; i++) {
		if (!l->pfd[i].revents)
			continue;
		r--;
		l->entry[i].fn(a, l->entry[i].ctx, l->entry[i].tag, l->pfd[i].revents);
	}
	return 0;
}
