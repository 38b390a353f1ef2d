/* A bounded queue of bytes waiting for a non-blocking fd to take them: what the agent has to say
 * to the bridge, or to a back-end, while the other end is slow. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct outq {
	uint8_t *buf;
	size_t head;     /* first byte not yet written */
	size_t len;      /* bytes queued from head */
	size_t cap;      /* allocated */
	size_t limit;    /* most bytes it may hold */
};

void outq_init(struct outq *q, size_t limit);
void outq_free(struct outq *q);
void outq_clear(struct outq *q);
static inline bool outq_empty(const struct outq *q) { return q->len == 0; }
static inline size_t outq_length(const struct outq *q) { return q->len; }
/* Room for n more bytes within the limit. */
bool outq_fits(const struct outq *q, size_t n);
/* Queues all of data, or nothing: -ENOBUFS beyond the limit, -ENOMEM. */
int outq_push(struct outq *q, const void *data, size_t n);
/* Writes what the fd takes without waiting: 0 (it may still hold bytes: poll for POLLOUT), or
 * -errno of a failed write (EPIPE for a peer that has gone; never SIGPIPE). */
int outq_flush(struct outq *q, int fd);
