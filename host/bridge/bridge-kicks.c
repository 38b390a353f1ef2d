/* Kick forwarding: the DD learns of a client's kick as an MSI-X interrupt of its state device's
 * own vector for that virtqueue (ddctl-proto.h). Those vectors' eventfds are the bridge's, made
 * once and handed to every DD's QEMU; a thread of their own moves each client kick (its kick
 * eventfd becoming readable) to the queue's vector eventfd. Clients replace kick fds whenever a
 * ring restarts; the DD never notices, and no ivshmem device has to be replugged for it (which
 * QEMU 7.2's ivshmem does not survive under TCG: it leaves an unplugged device's own-vector fd
 * handlers behind).
 *
 * The thread owns the fds it reads (dups of the clients' kick fds): the main thread asks for a
 * change and the thread makes it, so no fd is closed under a read. It never blocks on anything but
 * epoll, and a kick is two syscalls: the client's counter read, one added to the vector's. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bridge.h"

#define WAKE UINT32_MAX
#define NO_CHANGE (-2)

struct bridge_kick {
	int src;                    /* the thread's dup of the client's kick fd; -1: none */
	int next;                   /* under lock: what src becomes (a dup or -1), NO_CHANGE */
	int dst;                    /* the vector's eventfd */
	uint64_t forwarded;         /* kicks moved (relaxed atomics: read by the status socket) */
};

struct bridge_kicks {
	pthread_t thread;
	int epoll_fd, wake_fd;
	pthread_mutex_t lock;
	bool changed, stop;         /* under lock */
	unsigned n;
	struct bridge_kick v[DDCTL_KICK_VECTORS_MAX];
};

static void apply(struct bridge_kicks *k)
{
	pthread_mutex_lock(&k->lock);
	for (unsigned i = 0; k->changed && i < k->n; i++) {
		struct bridge_kick *v = &k->v[i];
		if (v->next == NO_CHANGE)
			continue;
		if (v->src >= 0) {
			(void)epoll_ctl(k->epoll_fd, EPOLL_CTL_DEL, v->src, NULL);
			close(v->src);
		}
		v->src = v->next;
		v->next = NO_CHANGE;
		if (v->src >= 0) {
			struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
			if (epoll_ctl(k->epoll_fd, EPOLL_CTL_ADD, v->src, &ev) < 0) {
				fprintf(stderr, "ddtk-bridge: kick vector %u: cannot watch the client's kick fd: %s\n", i,
					strerror(errno));
				close(v->src);
				v->src = -1;
			}
		}
		/* A kick the client sent before its fd got here is in the fd's counter: the watch
		 * above sees it at once. A ring that starts in the DD is looked at anyway. */
	}
	k->changed = false;
	pthread_mutex_unlock(&k->lock);
}

static void *run(void *arg)
{
	struct bridge_kicks *k = arg;
	struct epoll_event ev[32];

	for (;;) {
		int n = epoll_wait(k->epoll_fd, ev, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "ddtk-bridge: kick forwarding stopped: epoll: %s\n", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint32_t id = ev[i].data.u32;
			uint64_t count;
			if (id == WAKE) {
				if (read(k->wake_fd, &count, sizeof(count)) < 0) {
					/* EAGAIN: another wake took it; the state is read below anyway. */
				}
				pthread_mutex_lock(&k->lock);
				bool stop = k->stop;
				pthread_mutex_unlock(&k->lock);
				if (stop)
					return NULL;
				apply(k);
				continue;
			}
			if (id >= k->n || k->v[id].src < 0)
				continue; /* its fd went in an apply() of this batch */
			struct bridge_kick *v = &k->v[id];
			if (read(v->src, &count, sizeof(count)) != sizeof(count))
				continue; /* EAGAIN: nothing (the fd was replaced in this batch) */
			uint64_t one = 1;
			/* EAGAIN: the counter is saturated, an interrupt is pending anyway. */
			if (write(v->dst, &one, sizeof(one)) == sizeof(one))
				__atomic_fetch_add(&v->forwarded, 1, __ATOMIC_RELAXED);
		}
	}
}

static void wake(struct bridge_kicks *k)
{
	uint64_t one = 1;

	if (write(k->wake_fd, &one, sizeof(one)) < 0) {
		/* Saturated: a wake is pending. */
	}
}

int bridge_kicks_start(struct bridge *b, unsigned nvectors)
{
	struct bridge_kicks *k;
	sigset_t all, old;
	int r;

	if (nvectors < 1 || nvectors > DDCTL_KICK_VECTORS_MAX)
		return -ERANGE;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->n = nvectors;
	k->epoll_fd = k->wake_fd = -1;
	for (unsigned i = 0; i < DDCTL_KICK_VECTORS_MAX; i++)
		k->v[i] = (struct bridge_kick){ .src = -1, .next = NO_CHANGE, .dst = -1 };
	pthread_mutex_init(&k->lock, NULL);
	b->kicks = k;
	for (unsigned i = 0; i < nvectors; i++) {
		k->v[i].dst = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (k->v[i].dst < 0)
			goto fail;
	}
	k->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	k->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k->epoll_fd < 0 || k->wake_fd < 0)
		goto fail;
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = WAKE };
	if (epoll_ctl(k->epoll_fd, EPOLL_CTL_ADD, k->wake_fd, &ev) < 0)
		goto fail;
	/* Signals are the main loop's (signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&k->thread, NULL, run, k);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		errno = r;
		goto fail;
	}
	return 0;
fail:
	r = -errno;
	for (unsigned i = 0; i < nvectors; i++)
		if (k->v[i].dst >= 0)
			close(k->v[i].dst);
	if (k->epoll_fd >= 0)
		close(k->epoll_fd);
	if (k->wake_fd >= 0)
		close(k->wake_fd);
	pthread_mutex_destroy(&k->lock);
	free(k);
	b->kicks = NULL;
	return r;
}

void bridge_kicks_stop(struct bridge *b)
{
	struct bridge_kicks *k = b->kicks;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	pthread_mutex_unlock(&k->lock);
	wake(k);
	pthread_join(k->thread, NULL);
	for (unsigned i = 0; i < k->n; i++) {
		struct bridge_kick *v = &k->v[i];
		if (v->src >= 0)
			close(v->src);
		if (v->next >= 0)
			close(v->next);
		close(v->dst);
	}
	close(k->epoll_fd);
	close(k->wake_fd);
	pthread_mutex_destroy(&k->lock);
	free(k);
	b->kicks = NULL;
}

unsigned bridge_kicks_vectors(const struct bridge *b)
{
	return b->kicks ? b->kicks->n : 0;
}

int bridge_kicks_vector_fd(const struct bridge *b, unsigned vector)
{
	return b->kicks && vector < b->kicks->n ? b->kicks->v[vector].dst : -1;
}

int bridge_kicks_set(struct bridge *b, unsigned vector, int client_fd)
{
	struct bridge_kicks *k = b->kicks;
	int fd = -1;

	if (!k || vector >= k->n)
		return -ERANGE;
	if (client_fd >= 0) {
		fd = fcntl(client_fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
	}
	pthread_mutex_lock(&k->lock);
	if (k->v[vector].next >= 0)
		close(k->v[vector].next); /* never applied: replaced before the thread got to it */
	k->v[vector].next = fd;
	k->changed = true;
	pthread_mutex_unlock(&k->lock);
	wake(k);
	return 0;
}

uint64_t bridge_kicks_forwarded(const struct bridge *b, unsigned first, unsigned count)
{
	uint64_t n = 0;

	for (unsigned i = first; b->kicks && i < first + count && i < b->kicks->n; i++)
		n += __atomic_load_n(&b->kicks->v[i].forwarded, __ATOMIC_RELAXED);
	return n;
}
