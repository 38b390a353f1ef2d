/* The Unix-socket transport of vhost-user (host mode): messages with SCM_RIGHTS fds, front-end
 * memory mapped from its fds, notifications written to call eventfds. */
#pragma once

#include <stddef.h>

#include "vu-dev.h"

/* A connection's receive state: a message may arrive in pieces on a non-blocking socket. */
struct vu_socket_rx {
	struct vu_msg msg;
	size_t have;      /* bytes of header + payload received */
};

void vu_socket_rx_init(struct vu_socket_rx *rx);
/* Drops a partial message and its fds. */
void vu_socket_rx_clear(struct vu_socket_rx *rx);

/* Reads from fd until one whole message is in rx->msg (returns 1; the caller takes the message
 * and its fds and calls vu_socket_rx_init), or the socket has no more data (0). Returns -ECONNRESET
 * at end of stream, -EMSGSIZE for an oversized payload, -EBADF for too many fds, other -errno. */
int vu_socket_recv(int fd, struct vu_socket_rx *rx);

/* Sends msg (header, payload, fds) in one sendmsg, then closes msg's fds. */
int vu_socket_send(int fd, struct vu_msg *msg);

/* Creates a listening socket at path, replacing a stale socket file there. */
int vu_socket_listen(const char *path, int *ret_fd);

extern const struct vu_transport_ops vu_socket_transport_ops;
