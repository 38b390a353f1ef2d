/* Fuzz target: what ddtk-agent reads from its back-ends — a vhost-user reply stream, cut into
 * messages in pieces of varying size, and a stats document. Every message cut is one the relay
 * check accepts; the cutter never stalls with a full buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay-cut.h"
#include "stats-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct relay_cutter cut;
	struct stats_sample s;

	if (size == 0)
		return 0;
	/* The first byte picks the delivery size, so split headers are explored too; the rest is both
	 * a stream and a document. */
	size_t piece = (size_t)data[0] * 37 % 9000 + 1;
	data++;
	size--;
	if (stats_json_parse((const char *)data, size, &s) == 0 &&
	    ((!s.has_completed && s.completed != 0) || (!s.has_inflight && s.inflight != 0)))
		abort();
	relay_cutter_init(&cut);
	for (size_t off = 0; off < size;) {
		size_t room;
		uint8_t *space = relay_cutter_space(&cut, &room);
		if (room == 0) {
			if (!cut.broken)
				abort();
			break;
		}
		size_t take = size - off < piece ? size - off : piece;
		if (take > room)
			take = room;
		memcpy(space, data + off, take);
		relay_cutter_commit(&cut, take);
		off += take;
		const uint8_t *msg;
		size_t len;
		int r;
		while ((r = relay_cutter_next(&cut, &msg, &len)) == 1)
			if (relay_vu_check(msg, len) != 0 || msg < cut.buf || msg + len > cut.buf + sizeof(cut.buf))
				abort();
		if (r < 0 && !cut.broken)
			abort();
	}
	return 0;
}
