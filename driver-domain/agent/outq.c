/* Bounded output queues (outq.h). */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void outq_init(struct outq *q, size_t limit)
{
	*q = (struct outq){ .limit = limit };
}

void outq_free(struct outq *q)
{
	free(q->buf);
	outq_init(q, q->limit);
}

void outq_clear(struct outq *q)
{
	q->head = 0;
	q->len = 0;
}

bool outq_fits(const struct outq *q, size_t n)
{
	return n <= q->limit && q->len <= q->limit - n;
}

int outq_push(struct outq *q, const void *data, size_t n)
{
	if (!outq_fits(q, n))
		return -ENOBUFS;
	if (q->head > 0 && q->head + q->len + n > q->cap) {
		memmove(q->buf, q->buf + q->head, q->len);
		q->head = 0;
	}
	if (q->len + n > q->cap) {
		size_t cap = q->cap ? q->cap : 4096;
		while (cap < q->len + n)
			cap *= 2;
		uint8_t *b = realloc(q->buf, cap);
		if (!b)
			return -ENOMEM;
		q->buf = b;
		q->cap = cap;
	}
	memcpy(q->buf + q->head + q->len, data, n);
	q->len += n;
	return 0;
}

/* A socket gets send(MSG_NOSIGNAL); a character device (the virtio-serial port) plain write. */
static ssize_t write_some(int fd, const void *p, size_t n)
{
	ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0 && errno == ENOTSOCK)
		w = write(fd, p, n);
	return w;
}

int outq_flush(struct outq *q, int fd)
{
	while (q->len > 0) {
		ssize_t w = write_some(fd, q->buf + q->head, q->len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		q->head += (size_t)w;
		q->len -= (size_t)w;
	}
	q->head = 0;
	return 0;
}
