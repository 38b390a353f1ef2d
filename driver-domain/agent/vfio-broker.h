/* ddtk-agent's VFIO broker: it holds the VFIO container and the IOMMU groups of the DD's ivshmem
 * devices (the kernel lets one process hold a group, and all of them are one group) and hands a
 * new device fd of one, by IVPosition, to whoever asks on its socket: ddtk-blk and ddtk-net. It
 * also holds the kicks: the state device's MSI-X vectors, enabled as soon as the state device is
 * known, whose eventfds it sends by range (a session's queues). The protocol is in ddctl-proto.h
 * (DDCTL_VFIO_SOCKET). No event-loop dependency: the agent polls
 * vfio_broker_fd() and calls vfio_broker_handle(), which never blocks. Library code: nothing is
 * logged; a failure leaves a line in b->error, and b->replied (optional) hears of every reply. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vfio-pci.h"

/* Devices remembered (as many as the agent tracks). */
#define VFIO_BROKER_DEVICES_MAX 64
/* Connections accepted whose request has not arrived yet; one more evicts the oldest. */
#define VFIO_BROKER_PENDING_MAX 8
/* Connections accepted by one vfio_broker_handle(): the agent's loop gets its turn back. */
#define VFIO_BROKER_ACCEPT_BATCH 16
/* A reply: i32 status and a PCI address ("0000:00:00.0", at most 15 characters). */
#define VFIO_BROKER_REPLY_MAX (4 + 15)
/* A request: a u32 IVPosition, or the kicks request (u32 DDCTL_VFIO_KICKS, first, count). */
#define VFIO_BROKER_REQUEST_DEVICE 4
#define VFIO_BROKER_REQUEST_KICKS 12

struct vfio_broker;

struct vfio_broker_device {
	char bdf[16];                    /* "0000:03:01.0" */
	uint32_t ivposition;             /* as read when added (UINT32_MAX: no ivshmem server yet) */
	uint64_t added;                  /* when it was (last) added: of two with one IVPosition, the later wins */
	struct vfio_pci_group *group;    /* VFIO: its IOMMU group, held while the device is known */
	/* The kicks, held by the state device (the newest with IVPosition 0) only: its MSI-X vectors
	 * enabled, their eventfds (NULL: not enabled) and, through VFIO, the device fd keeping them so. */
	const int *kick_fds;
	unsigned nkicks;
	struct vfio_pci *kick_pci;
};

/* How the broker reaches devices: through VFIO, or a test's fake. */
struct vfio_broker_ops {
	/* Makes d ready for device_fd (VFIO: opens its IOMMU group, or takes one more user of it). */
	int (*attach)(struct vfio_broker *b, struct vfio_broker_device *d, char *err, size_t errlen);
	/* Undoes attach. */
	void (*detach)(struct vfio_broker *b, struct vfio_broker_device *d);
	/* A new fd of the device (close-on-exec), or -errno with a line in err. */
	int (*device_fd)(struct vfio_broker *b, const struct vfio_broker_device *d, char *err, size_t errlen);
	/* Reads the IVPosition register of the device behind device_fd, which it closes. */
	int (*read_ivposition)(int device_fd, const char *bdf, uint32_t *ret, char *err, size_t errlen);
	/* Enables every MSI-X vector of d (the state device), Bus Master set, each with an eventfd
	 * (close-on-exec, non-blocking) in d->kick_fds[0..d->nkicks), until kicks_disable (VFIO: a
	 * device fd of it stays open that long). -errno with a line in err, and d as it was. */
	int (*kicks_enable)(struct vfio_broker *b, struct vfio_broker_device *d, char *err, size_t errlen);
	/* Undoes kicks_enable: the vectors and their eventfds go, d->kick_fds is NULL again. */
	void (*kicks_disable)(struct vfio_broker *b, struct vfio_broker_device *d);
};

struct vfio_broker {
	int listen_fd;                   /* -1: not listening */
	int epoll_fd;                    /* what vfio_broker_fd() returns: the listening socket and pending connections */
	char socket_path[108];
	const struct vfio_broker_ops *ops;
	struct vfio_pci_container container;
	struct vfio_broker_device devices[VFIO_BROKER_DEVICES_MAX];
	unsigned ndevices;
	uint64_t adds;
	struct {
		int fd;                  /* -1: free */
		uint64_t since;          /* accept order: the oldest is evicted first */
	} pending[VFIO_BROKER_PENDING_MAX];
	uint64_t accepts;
	uint64_t handed_out;             /* successful replies: a device fd, or a range of kicks */
	uint64_t refused;                /* replies with an error, malformed requests, evicted connections */
	char error[320];                 /* why the last add failed, or the last request was refused */
	/* Called (when set) after each reply: the peer's pid (0 when unknown), the IVPosition asked for
	 * (DDCTL_VFIO_KICKS for kicks, UINT32_MAX for a malformed request), the status sent and the
	 * device's address ("" when none). */
	void (*replied)(struct vfio_broker *b, pid_t pid, uint32_t ivposition, int status, const char *bdf);
	void *userdata;                  /* the caller's, for replied */
};

/* Listens on socket_path (SOCK_SEQPACKET, non-blocking, close-on-exec, mode 0600; a socket a
 * killed instance left behind is replaced, any other file is not: -EEXIST). On failure b is still
 * safe to vfio_broker_close(). */
int vfio_broker_init(struct vfio_broker *b, const char *socket_path);

/* For tests: ops instead of VFIO (NULL: VFIO again). Set it while no device is known. */
void vfio_broker_set_ops(struct vfio_broker *b, const struct vfio_broker_ops *ops);

/* Readable when vfio_broker_handle() has something to do (an epoll fd: poll it for POLLIN). */
int vfio_broker_fd(const struct vfio_broker *b);

/* Accepts connections and answers every request that has arrived; a connection whose request has
 * not arrived yet waits in b->pending for a later call. Never blocks. A kicks request finding the
 * state device without them (it was enabled, then a newer state device took them and went) enables
 * them on it first. */
void vfio_broker_handle(struct vfio_broker *b);

/* A device (1af4:1110, bound to vfio-pci) to hand out: its IOMMU group is opened once and attached
 * to the container (type-1 IOMMU set with the first), and its IVPosition read through a device fd
 * the broker closes again at once (a device fd held would keep the DD from hot-unplugging it).
 * Adding a known device again reads its IVPosition again (it reads -1 until the device has its
 * ivshmem server) and makes it the newest of its IVPosition. A device reading IVPosition 0 is the
 * state device: it takes the kicks (its vectors enabled, unless it has them already: adding it
 * again leaves the kicks the back-ends hold working) from any device that had them, and the only
 * device fd the broker keeps is its own (it is not unplugged while the DD runs). -ENOSPC past
 * VFIO_BROKER_DEVICES_MAX; any failure leaves a line in b->error and the device unknown (or as it
 * was, when known). */
int vfio_broker_add_device(struct vfio_broker *b, const char *bdf, uint32_t *ret_ivposition);

/* Forgets the device and releases its kicks (the device fds and eventfds handed out are the
 * back-ends' business); with the last device of its IOMMU group the group is closed. Unknown
 * devices are ignored. */
void vfio_broker_remove_device(struct vfio_broker *b, const char *bdf);

/* The device handed out for ivposition, or NULL. */
const struct vfio_broker_device *vfio_broker_find(const struct vfio_broker *b, uint32_t ivposition);

/* Closes the connections, the socket (and removes its file), the kicks, every group and the container.
 * b may be NULL or never initialized by a successful vfio_broker_init(). */
void vfio_broker_close(struct vfio_broker *b);
