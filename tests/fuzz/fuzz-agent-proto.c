/* Fuzz target: the exec-agent stream decoder and payload parsers, fed in pieces of varying size as
 * a socket would deliver them. Checks the decoder's invariants on every frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct agent_decoder dec;
	agent_decoder_init(&dec);
	if (size == 0)
		return 0;
	/* The first byte picks the delivery size, so the fuzzer explores split headers too. */
	size_t piece = (size_t)data[0] % 64 + 1;
	data++;
	size--;
	size_t off = 0;
	while (off < size) {
		size_t take = size - off < piece ? size - off : piece;
		agent_decoder_feed(&dec, data + off, &take);
		off += take;
		struct agent_frame f;
		while (agent_decoder_next(&dec, &f) == 1) {
			if (f.len > AGENT_FRAME_PAYLOAD_MAX || f.type < AGENT_MSG_PING || f.type >= _AGENT_MSG_LAST ||
			    f.payload < dec.buf || f.payload + f.len > dec.buf + sizeof(dec.buf))
				abort();
			uint32_t timeout;
			const char *cmd;
			size_t cmd_len;
			if (agent_exec_parse(&f, &timeout, &cmd, &cmd_len) == 0 &&
			    (cmd_len == 0 || memchr(cmd, '\0', cmd_len)))
				abort();
			enum agent_exit_kind kind;
			int32_t code;
			if (agent_exit_parse(&f, &kind, &code) == 0 && kind >= _AGENT_EXIT_LAST)
				abort();
		}
		if (agent_decoder_room(&dec) == 0)
			abort(); /* a full buffer that holds no frame would stall the stream */
	}
	return 0;
}
