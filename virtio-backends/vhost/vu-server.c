/* The host-mode adapter between a Unix socket and the protocol core. A front-end that breaks the
 * protocol loses its connection; the process and the other exports go on. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vu-server.h"

#define VU_SERVER_MAX_REFUSALS_LOGGED 20 /* per connection */

static void on_conn(struct vu_watch *w, uint32_t events);

void vu_server_disconnect(struct vu_server *srv)
{
	if (srv->conn_fd < 0)
		return;
	vu_loop_del(srv->loop, &srv->conn_watch);
	close(srv->conn_fd);
	srv->conn_fd = -1;
	vu_socket_rx_clear(&srv->rx);
	/* Finishes every request in flight before the front-end's memory is unmapped. */
	vu_dev_reset(srv->dev);
	if (srv->listen_fd < 0)
		srv->done = true;
	if (srv->on_disconnect)
		srv->on_disconnect(srv);
}

static int serve_fd(struct vu_server *srv, int fd)
{
	int r;

	vu_socket_rx_init(&srv->rx);
	srv->conn_fd = fd;
	srv->refusals_logged = 0;
	r = vu_loop_add(srv->loop, &srv->conn_watch, fd, EPOLLIN, on_conn);
	if (r < 0) {
		close(fd);
		srv->conn_fd = -1;
		return r;
	}
	srv->connections++;
	return 0;
}

static void on_listen(struct vu_watch *w, uint32_t events)
{
	struct vu_server *srv = vu_container_of(w, struct vu_server, listen_watch);
	int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (srv->conn_fd >= 0) {
		/* One front-end per device: a second one would share its rings. */
		fprintf(stderr, "%s: refusing a second front-end while one is connected\n", srv->name);
		close(fd);
		return;
	}
	if (serve_fd(srv, fd) < 0)
		fprintf(stderr, "%s: cannot watch the new connection\n", srv->name);
	else
		fprintf(stderr, "%s: front-end connected\n", srv->name);
}

static void on_conn(struct vu_watch *w, uint32_t events)
{
	struct vu_server *srv = vu_container_of(w, struct vu_server, conn_watch);

	for (;;) {
		struct vu_msg reply;
		uint32_t request;
		bool was_broken = srv->dev->broken;
		int r = vu_socket_recv(srv->conn_fd, &srv->rx);

		if (r == 0)
			return;
		if (r < 0) {
			if (r != -ECONNRESET)
				fprintf(stderr, "%s: bad message from the front-end: %s\n", srv->name, strerror(-r));
			else
				fprintf(stderr, "%s: front-end disconnected\n", srv->name);
			vu_server_disconnect(srv);
			return;
		}
		request = srv->rx.msg.hdr.request;
		srv->dev->refused = 0;
		/* DDTK_VU_TRACE=1: every request on stderr, for debugging a front-end's sequence. */
		if (srv->trace)
			fprintf(stderr, "%s: <- %s (%u) size %u u64/index %#" PRIx64 " num %u\n", srv->name,
				vu_request_name(request), request, srv->rx.msg.hdr.size, srv->rx.msg.payload.u64,
				srv->rx.msg.payload.state.num);
		r = vu_dev_handle_msg(srv->dev, &srv->rx.msg, &reply);
		vu_socket_rx_init(&srv->rx);
		if (r < 0) {
			fprintf(stderr, "%s: %s (%u) rejected: %s%s%s%s; closing the connection\n", srv->name,
				vu_request_name(request), request, strerror(-r), srv->dev->error_detail[0] ? " (" : "",
				srv->dev->error_detail, srv->dev->error_detail[0] ? ")" : "");
			vu_server_disconnect(srv);
			return;
		}
		if (reply.hdr.request != VU_REQ_NONE) {
			r = vu_socket_send(srv->conn_fd, &reply);
			if (r < 0) {
				fprintf(stderr, "%s: cannot reply: %s\n", srv->name, strerror(-r));
				vu_server_disconnect(srv);
				return;
			}
		}
		/* A front-end could repeat a refused request forever: the log gets a bounded share. */
		if (srv->dev->refused && srv->refusals_logged++ < VU_SERVER_MAX_REFUSALS_LOGGED)
			fprintf(stderr, "%s: %s (%u) refused (the front-end was told): %s%s%s%s%s\n", srv->name,
				vu_request_name(request), request, strerror(-srv->dev->refused),
				srv->dev->error_detail[0] ? " (" : "", srv->dev->error_detail,
				srv->dev->error_detail[0] ? ")" : "",
				srv->refusals_logged == VU_SERVER_MAX_REFUSALS_LOGGED ? "; further refusals not logged" : "");
		/* Once, when this message broke it: every later message of the front-end would repeat it. */
		if (srv->dev->broken && !was_broken)
			fprintf(stderr, "%s: device broken: %s\n", srv->name, srv->dev->broken_reason);
	}
}

int vu_server_init(struct vu_server *srv, struct vu_loop *loop, struct vu_dev *dev, const char *name,
		   const char *path, int fd)
{
	const char *trace = getenv("DDTK_VU_TRACE");
	int r, listening = 0;
	socklen_t len = sizeof(listening);

	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	srv->dev = dev;
	snprintf(srv->name, sizeof(srv->name), "%s", name);
	srv->trace = trace && strcmp(trace, "0") != 0;
	srv->listen_fd = srv->conn_fd = -1;
	vu_socket_rx_init(&srv->rx);
	if (path) {
		r = vu_socket_listen(path, &srv->listen_fd);
		if (r < 0)
			return r;
	} else {
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
			return -errno;
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
			return -errno;
		if (!listening)
			return serve_fd(srv, fd);
		srv->listen_fd = fd;
	}
	r = vu_loop_add(loop, &srv->listen_watch, srv->listen_fd, EPOLLIN, on_listen);
	if (r < 0) {
		close(srv->listen_fd);
		srv->listen_fd = -1;
	}
	return r;
}

void vu_server_close(struct vu_server *srv)
{
	vu_server_disconnect(srv);
	vu_loop_del(srv->loop, &srv->listen_watch);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	srv->listen_fd = -1;
}
