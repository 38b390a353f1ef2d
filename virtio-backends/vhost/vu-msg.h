/* Validation of vhost-user messages against one table of per-request rules: payload size, fd count,
 * whether the request has a reply of its own. */
#pragma once

#include <stdbool.h>

#include "vu-proto.h"

enum vu_size_rule {
	VU_SIZE_NONE,      /* no payload */
	VU_SIZE_U64,       /* exactly 8 bytes */
	VU_SIZE_STATE,     /* struct vu_vring_state */
	VU_SIZE_ADDR,      /* struct vu_vring_addr */
	VU_SIZE_MEM_TABLE, /* nregions + padding + nregions regions */
	VU_SIZE_CONFIG,    /* config header + config->size bytes */
	VU_SIZE_INFLIGHT,  /* struct vu_inflight_msg */
	_VU_SIZE_LAST,
};

enum vu_fd_rule {
	VU_FDS_NONE,      /* no fd */
	VU_FDS_ONE,       /* exactly one fd */
	VU_FDS_VRING,     /* one fd unless the payload has VU_VRING_NOFD */
	VU_FDS_MEM_TABLE, /* one per region, when the transport passes memory as fds */
	VU_FDS_MEMORY,    /* one memory fd (inflight region), when the transport passes memory as fds */
	_VU_FDS_LAST,
};

struct vu_msg_rule {
	const char *name;
	enum vu_size_rule size;
	enum vu_fd_rule fds;
	bool has_reply;            /* the request always gets a reply with a payload */
	int protocol_feature;      /* the protocol feature it needs, -1 for none */
	bool supported;            /* handled by this core */
};

/* The rule for a request, NULL for a request number this core does not know. */
const struct vu_msg_rule *vu_msg_rule(uint32_t request);

/* "GET_FEATURES", or "UNKNOWN" */
const char *vu_request_name(uint32_t request);

/* Checks header flags, payload size and fd count of a complete message. memory_fds: the transport
 * passes front-end memory as fds (Unix socket); without (the driver domain's ivshmem transport) the
 * memory table and inflight messages carry none. Returns 0, -EPROTO for a bad header, -EOPNOTSUPP
 * for a request this core does not handle, -EMSGSIZE for a bad payload size, -EBADF for a wrong
 * number of fds. */
int vu_msg_check(const struct vu_msg *msg, bool memory_fds);

/* How many fds msg must carry, by its request's rule and payload (the memory table's region
 * count, a vring message's NOFD bit); -EOPNOTSUPP for an unknown request. */
int vu_msg_expected_fds(const struct vu_msg *msg, bool memory_fds);

/* Closes the fds still held by msg. */
void vu_msg_close_fds(struct vu_msg *msg);

/* Resets msg to an empty message without fds. */
void vu_msg_init(struct vu_msg *msg);
