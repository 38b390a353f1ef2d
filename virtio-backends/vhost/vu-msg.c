/* Validation of vhost-user messages: one table says, per request, what a well-formed message looks
 * like, so that handlers only deal with the meaning of payloads that already have the right shape. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "vu-msg.h"

#define RULE(req, sz, fd, reply, pf, sup) \
	[VU_REQ_##req] = { .name = #req, .size = (sz), .fds = (fd), .has_reply = (reply), \
			   .protocol_feature = (pf), .supported = (sup) }

static const struct vu_msg_rule rules[_VU_REQ_LAST] = {
	RULE(GET_FEATURES, VU_SIZE_NONE, VU_FDS_NONE, true, -1, true),
	RULE(SET_FEATURES, VU_SIZE_U64, VU_FDS_NONE, false, -1, true),
	RULE(SET_OWNER, VU_SIZE_NONE, VU_FDS_NONE, false, -1, true),
	RULE(RESET_OWNER, VU_SIZE_NONE, VU_FDS_NONE, false, -1, true),
	RULE(SET_MEM_TABLE, VU_SIZE_MEM_TABLE, VU_FDS_MEM_TABLE, false, -1, true),
	RULE(SET_LOG_BASE, VU_SIZE_U64, VU_FDS_ONE, true, VU_PROTOCOL_F_LOG_SHMFD, false),
	RULE(SET_LOG_FD, VU_SIZE_NONE, VU_FDS_ONE, false, -1, false),
	RULE(SET_VRING_NUM, VU_SIZE_STATE, VU_FDS_NONE, false, -1, true),
	RULE(SET_VRING_ADDR, VU_SIZE_ADDR, VU_FDS_NONE, false, -1, true),
	RULE(SET_VRING_BASE, VU_SIZE_STATE, VU_FDS_NONE, false, -1, true),
	RULE(GET_VRING_BASE, VU_SIZE_STATE, VU_FDS_NONE, true, -1, true),
	RULE(SET_VRING_KICK, VU_SIZE_U64, VU_FDS_VRING, false, -1, true),
	RULE(SET_VRING_CALL, VU_SIZE_U64, VU_FDS_VRING, false, -1, true),
	RULE(SET_VRING_ERR, VU_SIZE_U64, VU_FDS_VRING, false, -1, true),
	RULE(GET_PROTOCOL_FEATURES, VU_SIZE_NONE, VU_FDS_NONE, true, -1, true),
	RULE(SET_PROTOCOL_FEATURES, VU_SIZE_U64, VU_FDS_NONE, false, -1, true),
	RULE(GET_QUEUE_NUM, VU_SIZE_NONE, VU_FDS_NONE, true, VU_PROTOCOL_F_MQ, true),
	RULE(SET_VRING_ENABLE, VU_SIZE_STATE, VU_FDS_NONE, false, -1, true),
	RULE(SEND_RARP, VU_SIZE_U64, VU_FDS_NONE, false, VU_PROTOCOL_F_RARP, false),
	RULE(NET_SET_MTU, VU_SIZE_U64, VU_FDS_NONE, false, VU_PROTOCOL_F_MTU, true),
	RULE(SET_BACKEND_REQ_FD, VU_SIZE_NONE, VU_FDS_ONE, false, VU_PROTOCOL_F_BACKEND_REQ, false),
	RULE(IOTLB_MSG, VU_SIZE_NONE, VU_FDS_NONE, false, -1, false),
	RULE(SET_VRING_ENDIAN, VU_SIZE_STATE, VU_FDS_NONE, false, -1, false),
	RULE(GET_CONFIG, VU_SIZE_CONFIG, VU_FDS_NONE, true, VU_PROTOCOL_F_CONFIG, true),
	RULE(SET_CONFIG, VU_SIZE_CONFIG, VU_FDS_NONE, false, VU_PROTOCOL_F_CONFIG, true),
	RULE(CREATE_CRYPTO_SESSION, VU_SIZE_NONE, VU_FDS_NONE, true, -1, false),
	RULE(CLOSE_CRYPTO_SESSION, VU_SIZE_U64, VU_FDS_NONE, false, -1, false),
	RULE(POSTCOPY_ADVISE, VU_SIZE_NONE, VU_FDS_NONE, true, -1, false),
	RULE(POSTCOPY_LISTEN, VU_SIZE_NONE, VU_FDS_NONE, false, -1, false),
	RULE(POSTCOPY_END, VU_SIZE_NONE, VU_FDS_NONE, true, -1, false),
	RULE(GET_INFLIGHT_FD, VU_SIZE_INFLIGHT, VU_FDS_NONE, true, VU_PROTOCOL_F_INFLIGHT_SHMFD, true),
	RULE(SET_INFLIGHT_FD, VU_SIZE_INFLIGHT, VU_FDS_MEMORY, false, VU_PROTOCOL_F_INFLIGHT_SHMFD, true),
	RULE(GPU_SET_SOCKET, VU_SIZE_NONE, VU_FDS_ONE, false, -1, false),
	RULE(RESET_DEVICE, VU_SIZE_NONE, VU_FDS_NONE, false, VU_PROTOCOL_F_RESET_DEVICE, true),
	RULE(VRING_KICK, VU_SIZE_STATE, VU_FDS_NONE, false, -1, false),
	RULE(GET_MAX_MEM_SLOTS, VU_SIZE_NONE, VU_FDS_NONE, true, -1, false),
	RULE(ADD_MEM_REG, VU_SIZE_NONE, VU_FDS_ONE, false, -1, false),
	RULE(REM_MEM_REG, VU_SIZE_NONE, VU_FDS_NONE, false, -1, false),
	RULE(SET_STATUS, VU_SIZE_U64, VU_FDS_NONE, false, -1, false),
	RULE(GET_STATUS, VU_SIZE_NONE, VU_FDS_NONE, true, -1, false),
};

const struct vu_msg_rule *vu_msg_rule(uint32_t request)
{
	if (request >= _VU_REQ_LAST || !rules[request].name)
		return NULL;
	return &rules[request];
}

const char *vu_request_name(uint32_t request)
{
	const struct vu_msg_rule *rule = vu_msg_rule(request);

	return rule ? rule->name : "UNKNOWN";
}

static int check_size(const struct vu_msg *msg, enum vu_size_rule rule)
{
	uint32_t size = msg->hdr.size;

	switch (rule) {
	case VU_SIZE_NONE:
		/* QEMU sends GET_* requests with an 8-byte payload it never fills in some versions. */
		return size == 0 || size == sizeof(uint64_t) ? 0 : -EMSGSIZE;
	case VU_SIZE_U64:
		return size == sizeof(uint64_t) ? 0 : -EMSGSIZE;
	case VU_SIZE_STATE:
		return size == sizeof(struct vu_vring_state) ? 0 : -EMSGSIZE;
	case VU_SIZE_ADDR:
		return size == sizeof(struct vu_vring_addr) ? 0 : -EMSGSIZE;
	case VU_SIZE_MEM_TABLE: {
		const uint32_t head = offsetof(struct vu_mem_table_msg, regions);
		uint32_t n;

		if (size < head)
			return -EMSGSIZE;
		n = msg->payload.memory.nregions;
		if (n == 0 || n > VU_MAX_MEM_REGIONS)
			return -EMSGSIZE;
		return size == head + n * sizeof(struct vu_mem_region_msg) ? 0 : -EMSGSIZE;
	}
	case VU_SIZE_CONFIG:
		if (size < VU_CONFIG_HDR_SIZE || msg->payload.config.size > VU_MAX_CONFIG_SIZE)
			return -EMSGSIZE;
		return size == VU_CONFIG_HDR_SIZE + msg->payload.config.size ? 0 : -EMSGSIZE;
	case VU_SIZE_INFLIGHT:
		return size == sizeof(struct vu_inflight_msg) ? 0 : -EMSGSIZE;
	case _VU_SIZE_LAST:
		break;
	}
	return -EMSGSIZE;
}

int vu_msg_expected_fds(const struct vu_msg *msg, bool memory_fds)
{
	const struct vu_msg_rule *rule = vu_msg_rule(msg->hdr.request);

	if (!rule)
		return -EOPNOTSUPP;
	switch (rule->fds) {
	case VU_FDS_NONE:
		return 0;
	case VU_FDS_ONE:
		return 1;
	case VU_FDS_VRING:
		return (msg->payload.u64 & VU_VRING_NOFD) ? 0 : 1;
	case VU_FDS_MEM_TABLE:
		return memory_fds ? (int)msg->payload.memory.nregions : 0;
	case VU_FDS_MEMORY:
		return memory_fds ? 1 : 0;
	case _VU_FDS_LAST:
		break;
	}
	return -EBADF;
}

int vu_msg_check(const struct vu_msg *msg, bool memory_fds)
{
	const struct vu_msg_rule *rule;
	int r;

	if ((msg->hdr.flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION || (msg->hdr.flags & VU_FLAG_REPLY))
		return -EPROTO;
	if (msg->hdr.size > VU_MAX_PAYLOAD || msg->nfds > VU_MAX_FDS)
		return -EMSGSIZE;
	rule = vu_msg_rule(msg->hdr.request);
	if (!rule || !rule->supported)
		return -EOPNOTSUPP;
	r = check_size(msg, rule->size);
	if (r < 0)
		return r;
	r = vu_msg_expected_fds(msg, memory_fds);
	return r >= 0 && msg->nfds == (unsigned)r ? 0 : -EBADF;
}

void vu_msg_close_fds(struct vu_msg *msg)
{
	for (unsigned i = 0; i < msg->nfds && i < VU_MAX_FDS; i++) {
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
		msg->fds[i] = -1;
	}
	msg->nfds = 0;
}

void vu_msg_init(struct vu_msg *msg)
{
	memset(&msg->hdr, 0, sizeof(msg->hdr));
	msg->payload.u64 = 0;
	msg->nfds = 0;
	for (unsigned i = 0; i < VU_MAX_FDS; i++)
		msg->fds[i] = -1;
}
