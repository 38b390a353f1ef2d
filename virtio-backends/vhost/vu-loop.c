/* epoll with one callback per fd. A watch removed while its event is still in the current batch is
 * skipped, so callbacks may remove any watch, including their own. */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vu-loop.h"

int vu_loop_init(struct vu_loop *loop)
{
	loop->stop = false;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	return loop->epfd < 0 ? -errno : 0;
}

void vu_loop_close(struct vu_loop *loop)
{
	if (loop->epfd >= 0)
		close(loop->epfd);
	loop->epfd = -1;
}

int vu_loop_add(struct vu_loop *loop, struct vu_watch *w, int fd, uint32_t events, vu_watch_fn fn)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->added)
		vu_loop_del(loop, w);
	w->fd = fd;
	w->fn = fn;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	w->added = true;
	return 0;
}

void vu_loop_del(struct vu_loop *loop, struct vu_watch *w)
{
	if (!w->added)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->added = false;
}

int vu_loop_run_once(struct vu_loop *loop, int timeout_ms)
{
	struct epoll_event evs[64];
	int n = epoll_wait(loop->epfd, evs, 64, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct vu_watch *w = evs[i].data.ptr;

		/* Removed by an earlier callback of this batch: the event is stale. Watches live in
		 * objects that outlive the loop iteration, so the pointer is still valid. */
		if (!w->added)
			continue;
		w->fn(w, evs[i].events);
	}
	return n;
}
