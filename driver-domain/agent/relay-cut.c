/* The relay's vhost-user framing (relay-cut.h). Pure: no I/O, unit-tested and fuzzed. */
#include "relay-cut.h"

#include <errno.h>
#include <string.h>

#include "agent-proto.h"

int relay_vu_check(const uint8_t *msg, size_t len)
{
	if (len < RELAY_VU_HEADER_SIZE || len > RELAY_VU_MSG_MAX)
		return -EBADMSG;
	if (agent_u32_get(msg + 8) != len - RELAY_VU_HEADER_SIZE)
		return -EBADMSG;
	return 0;
}

void relay_cutter_init(struct relay_cutter *c)
{
	c->start = 0;
	c->end = 0;
	c->pending = 0;
	c->broken = false;
}

static void cutter_drop_pending(struct relay_cutter *c)
{
	c->start += c->pending;
	c->pending = 0;
	if (c->start == c->end)
		c->start = c->end = 0;
}

uint8_t *relay_cutter_space(struct relay_cutter *c, size_t *ret_room)
{
	cutter_drop_pending(c);
	if (c->broken) {
		*ret_room = 0;
		return c->buf;
	}
	/* What is left is less than one message (next() hands out every whole one), so moving it to
	 * the front always frees at least one message's worth. */
	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	*ret_room = sizeof(c->buf) - c->end;
	return c->buf + c->end;
}

void relay_cutter_commit(struct relay_cutter *c, size_t n)
{
	if (n > sizeof(c->buf) - c->end)
		n = sizeof(c->buf) - c->end;
	c->end += n;
}

int relay_cutter_next(struct relay_cutter *c, const uint8_t **ret_msg, size_t *ret_len)
{
	cutter_drop_pending(c);
	if (c->broken)
		return -EPROTO;
	size_t avail = c->end - c->start;
	if (avail < RELAY_VU_HEADER_SIZE)
		return 0;
	uint32_t size = agent_u32_get(c->buf + c->start + 8);
	if (size > VU_MAX_PAYLOAD) {
		c->broken = true;
		return -EPROTO;
	}
	size_t total = RELAY_VU_HEADER_SIZE + size;
	if (avail < total)
		return 0;
	*ret_msg = c->buf + c->start;
	*ret_len = total;
	c->pending = total;
	return 1;
}

size_t relay_cutter_buffered(const struct relay_cutter *c)
{
	return c->end - c->start - c->pending;
}
