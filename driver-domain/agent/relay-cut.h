/* The relay's framing of vhost-user messages: what a VU frame from the bridge must look like before
 * it is written to a back-end, and the cutting of a back-end's byte stream back into messages. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vu-proto.h"

#define RELAY_VU_HEADER_SIZE 12u   /* u32 request, u32 flags, u32 size (payload bytes) */
#define RELAY_VU_MSG_MAX (RELAY_VU_HEADER_SIZE + VU_MAX_PAYLOAD)

/* 0 when msg (len bytes) is one whole vhost-user message: a header whose size field is exactly
 * the rest, and no more than RELAY_VU_MSG_MAX in all; -EBADMSG otherwise. */
int relay_vu_check(const uint8_t *msg, size_t len);

/* Cuts a stream into messages. Read into relay_cutter_space(), then commit, then take messages
 * with relay_cutter_next(). Holds at most one partial message plus one read's worth. */
struct relay_cutter {
	uint8_t buf[2 * RELAY_VU_MSG_MAX];
	size_t start;     /* first byte not yet handed out */
	size_t end;       /* one past the last byte received */
	size_t pending;   /* size of the message last handed out, dropped on the next call */
	bool broken;      /* a header announced more than VU_MAX_PAYLOAD: the stream is lost */
};

void relay_cutter_init(struct relay_cutter *c);
/* Where the next read may write, and how much (always at least RELAY_VU_MSG_MAX while the stream
 * is not broken). */
uint8_t *relay_cutter_space(struct relay_cutter *c, size_t *ret_room);
void relay_cutter_commit(struct relay_cutter *c, size_t n);
/* 1 and the next whole message (valid until the next call), 0 when more bytes are needed,
 * -EPROTO when the stream announced a payload larger than VU_MAX_PAYLOAD (then forever). */
int relay_cutter_next(struct relay_cutter *c, const uint8_t **ret_msg, size_t *ret_len);
/* Bytes received but not yet handed out as a whole message. */
size_t relay_cutter_buffered(const struct relay_cutter *c);
