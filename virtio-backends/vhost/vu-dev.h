/* A vhost-user device: the protocol state machine between one front-end and one device back-end.
 * It has no event loop and no socket: a transport adapter feeds it messages and sends its replies,
 * and the transport ops below map memory and deliver notifications, so the same device runs on a
 * Unix socket (host mode) or behind ddtk-bridge in the driver domain. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "vu-mem.h"
#include "vu-msg.h"
#include "vu-vq.h"

struct vu_dev;

struct vu_transport_ops {
	/* Front-end memory comes as fds with SET_MEM_TABLE and SET_INFLIGHT_FD (Unix socket). When
	 * false, those messages carry no fd and the transport finds the memory itself (fd = -1). */
	bool memory_fds;
	/* Makes region addressable: sets r->host (and map_base/map_len for unmap). fd is the
	 * region's fd from SET_MEM_TABLE, owned by the caller. It must refuse a region it cannot
	 * back entirely: an access past the end of a mapping would be SIGBUS, not an error. */
	int (*map_region)(void *transport, struct vu_mem_region *r, int fd);
	void (*unmap_region)(void *transport, struct vu_mem_region *r);
	/* Maps [offset, offset+size) of an inflight fd, owned by the caller; refuses a region the fd
	 * cannot back. */
	int (*map_inflight)(void *transport, int fd, uint64_t size, uint64_t offset, void **ret_addr);
	void (*unmap_inflight)(void *transport, void *addr, uint64_t size);
	/* Tells the driver that vq has new used entries. Called for every queue that runs, also
	 * when it has no call fd: a transport whose notifications are not fds (the driver domain's
	 * doorbell) gets SET_VRING_CALL with VU_VRING_NOFD, and a transport that needs the fd does
	 * nothing without one. */
	int (*notify)(void *transport, struct vu_vq *vq);
	/* Optional: for SET_VRING_KICK with VU_VRING_NOFD, a new fd (the caller's, close-on-exec and
	 * non-blocking) that is readable when queue index is kicked. A transport without it has only
	 * the front-end's kick fds, and NOFD (polling mode) is refused. */
	int (*kick_fd)(void *transport, unsigned index);
	/* Optional: vu_dev_reset() calls it once everything is unmapped and every fd closed: release
	 * what the transport holds for this device (the driver domain's hot-plugged device). */
	void (*reset)(void *transport);
	/* Optional: a line on why the transport's last operation failed (beyond its -errno), for the
	 * log of whoever handled the refused request; NULL or "" when it has none. */
	const char *(*last_error)(void *transport);
};

struct vu_backend_ops {
	/* Device config space: GET_CONFIG/SET_CONFIG after offset/size were checked against
	 * config_size. set_config may be NULL (read-only config). */
	int (*get_config)(void *backend, uint32_t offset, uint8_t *buf, uint32_t len);
	int (*set_config)(void *backend, uint32_t offset, const uint8_t *buf, uint32_t len);
	/* The queue has started: watch vq->kick_fd. */
	int (*queue_start)(void *backend, struct vu_vq *vq);
	/* The queue stops: stop watching its kick fd and finish (push) every element of vq still in
	 * flight before returning, or drop them if the device is broken. */
	void (*queue_stop)(void *backend, struct vu_vq *vq);
	/* Optional: NET_SET_MTU. */
	int (*set_mtu)(void *backend, uint64_t mtu);
};

struct vu_dev_info {
	uint64_t features;            /* device feature bits; ring/version bits are added */
	uint64_t protocol_features;   /* protocol features the back-end supports */
	unsigned num_queues;          /* <= VU_MAX_QUEUES */
	unsigned queue_num_reply;     /* GET_QUEUE_NUM's answer when not num_queues (net: queue pairs) */
	uint16_t max_queue_size;      /* power of two <= VU_MAX_QUEUE_SIZE */
	uint32_t config_size;         /* <= VU_MAX_CONFIG_SIZE */
};

struct vu_dev {
	struct vu_dev_info info;
	const struct vu_transport_ops *transport_ops;
	void *transport;
	const struct vu_backend_ops *backend_ops;
	void *backend;

	uint64_t features;            /* acked */
	uint64_t protocol_features;   /* acked */
	bool features_set;
	struct vu_mem mem;
	bool mem_set;
	struct vu_vq vq[VU_MAX_QUEUES];

	void *inflight;               /* mapped inflight region */
	uint64_t inflight_size;

	bool broken;                  /* the guest or front-end broke the device: no more processing */
	int refused;                  /* -errno of the last request refused with a REPLY_ACK failure */
	char broken_reason[128];
	char error_detail[320];       /* the transport's words on why the last request failed, or "" */
};

/* Prepares dev; info is checked (-EINVAL on a back-end bug). */
int vu_dev_init(struct vu_dev *dev, const struct vu_dev_info *info, const struct vu_transport_ops *transport_ops,
		void *transport, const struct vu_backend_ops *backend_ops, void *backend);

/* Stops every queue, unmaps everything, closes every fd: the front-end has gone. */
void vu_dev_reset(struct vu_dev *dev);

/* Handles one message. msg's fds are consumed (kept or closed). *reply is set to a message to send
 * back (reply->hdr.request == VU_REQ_NONE when there is none; reply fds are the caller's to send
 * and close). Returns 0, or a negative errno when the front-end broke the protocol and the
 * connection should be closed. */
int vu_dev_handle_msg(struct vu_dev *dev, struct vu_msg *msg, struct vu_msg *reply);

/* Marks the device broken: its queues are stopped and stay stopped until the front-end resets it
 * or reconnects. reason is kept for the caller to report. */
void vu_dev_set_broken(struct vu_dev *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether a feature bit was acked. */
static inline bool vu_dev_has_feature(const struct vu_dev *dev, unsigned bit)
{
	return dev->features & VU_BIT(bit);
}

static inline bool vu_dev_has_protocol_feature(const struct vu_dev *dev, unsigned bit)
{
	return dev->protocol_features & VU_BIT(bit);
}

/* Tells the driver about pushed entries if it wants to hear. */
int vu_dev_notify(struct vu_dev *dev, struct vu_vq *vq);

/* Queues with entries pushed during one turn of a back-end's loop, signalled once at its end
 * (one interrupt for many completions). */
struct vu_notify_list {
	struct vu_vq *head;
};

/* Puts vq (of dev) on list, once. The back-end must flush the list before a queue stops (in its
 * queue_stop op): the queue is forgotten then. */
void vu_dev_notify_later(struct vu_notify_list *list, struct vu_dev *dev, struct vu_vq *vq);
/* Signals every queue on list that still runs, and empties it. */
void vu_notify_list_flush(struct vu_notify_list *list);
