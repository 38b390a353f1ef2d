/* ddtk-agent's event loop: a poll set rebuilt on every turn from what each part wants to wait for,
 * and the earliest deadline any part has. Nothing in the agent blocks on one peer. */
#pragma once

#include <poll.h>
#include <stdint.h>

struct agent;

#define LOOP_FDS_MAX 64

/* Called with the fd and tag it was added with: a part whose fd was closed or replaced while an
 * earlier entry was handled sees that the tag no longer matches and ignores the event. */
typedef void (*loop_fn)(struct agent *a, void *ctx, uint64_t tag, short revents);

struct loop {
	struct pollfd pfd[LOOP_FDS_MAX];
	struct {
		loop_fn fn;
		void *ctx;
		uint64_t tag;
	} entry[LOOP_FDS_MAX];
	unsigned n;
	int64_t deadline_ms;   /* INT64_MAX: none */
};

void loop_reset(struct loop *l);
void loop_add(struct loop *l, int fd, short events, loop_fn fn, void *ctx, uint64_t tag);
/* Wake up no later than ms (the monotonic clock of agent_now_ms). */
void loop_wake_at(struct loop *l, int64_t ms);
/* Polls until an fd is ready or the deadline, then calls the handlers of the ready fds. */
int loop_run_once(struct loop *l, struct agent *a);
