/* The exec-agent protocol: length-framed messages between the host harness and the small agent in
 * every ddtk guest (driver domain and clients), carried over a virtio-serial port. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_PROTO_MAGIC 0x4b544444u /* "DDTK" read as little-endian bytes */
#define AGENT_PROTO_VERSION 1
#define AGENT_FRAME_HEADER_SIZE 16
/* Limit on a payload the peer announces; the decoder never buffers more than one frame. */
#define AGENT_FRAME_PAYLOAD_MAX (64u * 1024u)
/* The virtio-serial port name the agent listens on; libvirt <target type='virtio' name=...>. */
#define AGENT_PORT_NAME "org.ddtk.agent.0"

enum agent_msg_type {
	AGENT_MSG_PING = 1,   /* host -> guest, empty; answered by PONG with the same id */
	AGENT_MSG_PONG,       /* guest -> host, payload: agent identification text */
	AGENT_MSG_EXEC,       /* host -> guest, payload: u32 timeout_ms, then the shell command */
	AGENT_MSG_STDOUT,     /* guest -> host, payload: bytes the command wrote to stdout */
	AGENT_MSG_STDERR,     /* guest -> host, payload: bytes the command wrote to stderr */
	AGENT_MSG_EXIT,       /* guest -> host, payload: u32 agent_exit_kind, i32 code */
	AGENT_MSG_ERROR,      /* guest -> host, payload: text; the request was not run */
	_AGENT_MSG_LAST,
};

enum agent_exit_kind {
	AGENT_EXIT_EXITED = 0,   /* code = exit status */
	AGENT_EXIT_SIGNALED,     /* code = signal number */
	AGENT_EXIT_TIMEOUT,      /* killed after its timeout; code = 0 */
	_AGENT_EXIT_LAST,
};

struct agent_frame {
	uint8_t type;         /* enum agent_msg_type */
	uint32_t id;          /* request id; replies carry the id of their request */
	uint32_t len;         /* payload length, <= AGENT_FRAME_PAYLOAD_MAX */
	const uint8_t *payload; /* points into the decoder; valid until the next decoder call */
};

/* Streaming decoder: feed it bytes as they arrive, take frames out. A byte stream that does not
 * start with a valid header (a reconnect in the middle of a frame, garbage) is skipped up to the
 * next magic, and counted. */
struct agent_decoder {
	uint8_t magic[4];        /* the protocol's magic, as bytes */
	uint8_t version;
	uint8_t type_last;       /* valid types are 1 .. type_last - 1 */
	uint8_t buf[AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_PAYLOAD_MAX];
	size_t start;            /* first byte not yet consumed */
	size_t end;              /* one past the last byte received */
	size_t pending;          /* bytes of the frame last returned, dropped on the next call */
	uint64_t skipped_bytes;
};

void agent_decoder_init(struct agent_decoder *dec);
/* The same framing for another protocol (the driver domain's control protocol): its own magic,
 * version and range of types. */
void agent_decoder_init_proto(struct agent_decoder *dec, uint32_t magic, uint8_t version, uint8_t type_last);
/* Copies up to *n bytes of data into the decoder and sets *n to how many were taken. */
void agent_decoder_feed(struct agent_decoder *dec, const void *data, size_t *n);
/* Room left: how many bytes the next feed can take. */
size_t agent_decoder_room(const struct agent_decoder *dec);
/* 1 and a frame when one is complete, 0 when more bytes are needed. The frame's payload stays valid
 * until the next call on this decoder. */
int agent_decoder_next(struct agent_decoder *dec, struct agent_frame *ret_frame);

/* Writes header + payload into buf (of size cap). Returns the frame size, or -EMSGSIZE. */
int agent_frame_encode(uint8_t type, uint32_t id, const void *payload, uint32_t len,
		       uint8_t *buf, size_t cap);
/* The same with another protocol's magic and version. */
int agent_frame_encode_proto(uint32_t magic, uint8_t version, uint8_t type, uint32_t id, const void *payload,
			     uint32_t len, uint8_t *buf, size_t cap);

/* Payload helpers. Each returns 0 or -EBADMSG when the payload is malformed. */
int agent_exec_parse(const struct agent_frame *frame, uint32_t *ret_timeout_ms,
		     const char **ret_cmd, size_t *ret_cmd_len);
int agent_exit_parse(const struct agent_frame *frame, enum agent_exit_kind *ret_kind,
		     int32_t *ret_code);
void agent_u32_put(uint8_t *p, uint32_t v);
uint32_t agent_u32_get(const uint8_t *p);

const char *agent_msg_type_name(uint8_t type);

/* The guest's device of the virtio-serial port called name (/dev/vportNpM, found through
 * /sys/class/virtio-ports: busybox has no udev for the /dev/virtio-ports links). -ENOENT when
 * there is none (yet). */
int agent_port_find(const char *name, char *ret_path, size_t cap);

/* Milliseconds on the monotonic clock: the time base of the deadlines below. */
int64_t agent_now_ms(void);
/* Writes all of buf to fd (a socket or a virtio-serial port, blocking or not), waiting for room
 * until deadline_ms. A socket whose peer has gone gives -EPIPE, never SIGPIPE. */
int agent_write_all(int fd, const void *buf, size_t len, int64_t deadline_ms);
