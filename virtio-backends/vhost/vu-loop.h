/* A small epoll loop for the back-end processes: fds with a callback each. The protocol core does
 * not use it; back-ends and the socket server do. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vu_watch;
typedef void (*vu_watch_fn)(struct vu_watch *w, uint32_t events);

/* Embed in the object the callback needs (container_of). */
struct vu_watch {
	int fd;
	vu_watch_fn fn;
	bool added;
};

struct vu_loop {
	int epfd;
	bool stop;
};

int vu_loop_init(struct vu_loop *loop);
void vu_loop_close(struct vu_loop *loop);
int vu_loop_add(struct vu_loop *loop, struct vu_watch *w, int fd, uint32_t events, vu_watch_fn fn);
/* Removes w; safe to call for a watch not added. */
void vu_loop_del(struct vu_loop *loop, struct vu_watch *w);
/* Waits up to timeout_ms (-1: forever) and runs callbacks. Returns events handled or -errno. */
int vu_loop_run_once(struct vu_loop *loop, int timeout_ms);

#define vu_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
