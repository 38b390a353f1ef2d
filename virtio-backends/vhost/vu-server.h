/* One vhost-user socket in host mode: a listening socket (or an fd handed over with --fd) serving
 * one front-end at a time, feeding its messages to a vu_dev and sending the replies. */
#pragma once

#include "vu-dev.h"
#include "vu-loop.h"
#include "vu-socket.h"

struct vu_server {
	struct vu_loop *loop;
	struct vu_dev *dev;
	char name[128];                 /* for messages: the export's name */
	int listen_fd;
	struct vu_watch listen_watch;
	int conn_fd;
	struct vu_watch conn_watch;
	struct vu_socket_rx rx;
	bool done;                      /* --fd connection closed: nothing more to serve */
	/* Called after the front-end went away and the device was reset. Optional. */
	void (*on_disconnect)(struct vu_server *srv);
	unsigned long connections;
	unsigned refusals_logged;       /* this connection's */
	bool trace;                     /* DDTK_VU_TRACE: log every request */
};

/* Serves dev at path (a new listening socket) or on fd (a listening or connected socket). */
int vu_server_init(struct vu_server *srv, struct vu_loop *loop, struct vu_dev *dev, const char *name,
		   const char *path, int fd);
void vu_server_close(struct vu_server *srv);
/* Drops the current front-end connection (after a protocol error, or a broken device). */
void vu_server_disconnect(struct vu_server *srv);
