/* Encoding and streaming decoding of exec-agent frames (see agent-proto.h). Everything read here
 * comes from a peer and is checked before use. */
#include "agent-proto.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void agent_u32_put(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (v >> 24) & 0xff;
}

uint32_t agent_u32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void agent_decoder_init_proto(struct agent_decoder *dec, uint32_t magic, uint8_t version, uint8_t type_last)
{
	agent_u32_put(dec->magic, magic);
	dec->version = version;
	dec->type_last = type_last;
	dec->start = 0;
	dec->end = 0;
	dec->pending = 0;
	dec->skipped_bytes = 0;
}

void agent_decoder_init(struct agent_decoder *dec)
{
	agent_decoder_init_proto(dec, AGENT_PROTO_MAGIC, AGENT_PROTO_VERSION, _AGENT_MSG_LAST);
}

/* Dropping only moves the start; feed() compacts, so garbage costs linear time. */
static void decoder_drop(struct agent_decoder *dec, size_t n)
{
	dec->start += n;
	if (dec->start == dec->end)
		dec->start = dec->end = 0;
}

static void decoder_release_pending(struct agent_decoder *dec)
{
	if (dec->pending) {
		decoder_drop(dec, dec->pending);
		dec->pending = 0;
	}
}

size_t agent_decoder_room(const struct agent_decoder *dec)
{
	/* A frame returned by next() is still in the buffer until the next call drops it. */
	return sizeof(dec->buf) - (dec->end - dec->start) + dec->pending;
}

void agent_decoder_feed(struct agent_decoder *dec, const void *data, size_t *n)
{
	decoder_release_pending(dec);
	if (dec->start > 0) {
		memmove(dec->buf, dec->buf + dec->start, dec->end - dec->start);
		dec->end -= dec->start;
		dec->start = 0;
	}
	size_t take = sizeof(dec->buf) - dec->end;
	if (take > *n)
		take = *n;
	memcpy(dec->buf + dec->end, data, take);
	dec->end += take;
	*n = take;
}

/* Drops bytes up to the first place where the magic starts, or could start (a partial magic at the
 * end of what has arrived so far). */
static void decoder_resync(struct agent_decoder *dec)
{
	size_t i;
	for (i = dec->start; i < dec->end; i++) {
		size_t left = dec->end - i;
		size_t cmp = left < sizeof(dec->magic) ? left : sizeof(dec->magic);
		if (memcmp(dec->buf + i, dec->magic, cmp) == 0)
			break;
	}
	if (i > dec->start) {
		dec->skipped_bytes += i - dec->start;
		decoder_drop(dec, i - dec->start);
	}
}

static bool header_valid(const struct agent_decoder *dec, const uint8_t *h)
{
	uint8_t version = h[4], type = h[5];
	uint16_t flags = (uint16_t)(h[6] | h[7] << 8);
	uint32_t len = agent_u32_get(h + 12);

	return version == dec->version && type >= 1 && type < dec->type_last &&
	       flags == 0 && len <= AGENT_FRAME_PAYLOAD_MAX;
}

int agent_decoder_next(struct agent_decoder *dec, struct agent_frame *ret_frame)
{
	decoder_release_pending(dec);
	for (;;) {
		decoder_resync(dec);
		const uint8_t *h = dec->buf + dec->start;
		size_t avail = dec->end - dec->start;
		if (avail < AGENT_FRAME_HEADER_SIZE)
			return 0;
		if (!header_valid(dec, h)) {
			/* A magic inside garbage: skip it and look for the next one. */
			dec->skipped_bytes += 1;
			decoder_drop(dec, 1);
			continue;
		}
		uint32_t len = agent_u32_get(h + 12);
		if (avail < AGENT_FRAME_HEADER_SIZE + (size_t)len)
			return 0;
		ret_frame->type = h[5];
		ret_frame->id = agent_u32_get(h + 8);
		ret_frame->len = len;
		ret_frame->payload = h + AGENT_FRAME_HEADER_SIZE;
		dec->pending = AGENT_FRAME_HEADER_SIZE + (size_t)len;
		return 1;
	}
}

int agent_frame_encode(uint8_t type, uint32_t id, const void *payload, uint32_t len,
		       uint8_t *buf, size_t cap)
{
	return agent_frame_encode_proto(AGENT_PROTO_MAGIC, AGENT_PROTO_VERSION, type, id, payload, len, buf, cap);
}

int agent_frame_encode_proto(uint32_t magic, uint8_t version, uint8_t type, uint32_t id, const void *payload,
			     uint32_t len, uint8_t *buf, size_t cap)
{
	if (len > AGENT_FRAME_PAYLOAD_MAX || cap < AGENT_FRAME_HEADER_SIZE + (size_t)len)
		return -EMSGSIZE;
	agent_u32_put(buf, magic);
	buf[4] = version;
	buf[5] = type;
	buf[6] = 0;
	buf[7] = 0;
	agent_u32_put(buf + 8, id);
	agent_u32_put(buf + 12, len);
	if (len)
		memcpy(buf + AGENT_FRAME_HEADER_SIZE, payload, len);
	return (int)(AGENT_FRAME_HEADER_SIZE + len);
}

int agent_exec_parse(const struct agent_frame *frame, uint32_t *ret_timeout_ms,
		     const char **ret_cmd, size_t *ret_cmd_len)
{
	if (frame->type != AGENT_MSG_EXEC || frame->len <= 4)
		return -EBADMSG;
	const char *cmd = (const char *)frame->payload + 4;
	size_t cmd_len = frame->len - 4;
	/* The command goes to sh -c as a C string: an embedded NUL would silently cut it. */
	if (memchr(cmd, '\0', cmd_len))
		return -EBADMSG;
	*ret_timeout_ms = agent_u32_get(frame->payload);
	*ret_cmd = cmd;
	*ret_cmd_len = cmd_len;
	return 0;
}

int agent_exit_parse(const struct agent_frame *frame, enum agent_exit_kind *ret_kind,
		     int32_t *ret_code)
{
	if (frame->type != AGENT_MSG_EXIT || frame->len != 8)
		return -EBADMSG;
	uint32_t kind = agent_u32_get(frame->payload);
	if (kind >= _AGENT_EXIT_LAST)
		return -EBADMSG;
	*ret_kind = (enum agent_exit_kind)kind;
	*ret_code = (int32_t)agent_u32_get(frame->payload + 4);
	return 0;
}

const char *agent_msg_type_name(uint8_t type)
{
	switch ((enum agent_msg_type)type) {
	case AGENT_MSG_PING: return "PING";
	case AGENT_MSG_PONG: return "PONG";
	case AGENT_MSG_EXEC: return "EXEC";
	case AGENT_MSG_STDOUT: return "STDOUT";
	case AGENT_MSG_STDERR: return "STDERR";
	case AGENT_MSG_EXIT: return "EXIT";
	case AGENT_MSG_ERROR: return "ERROR";
	case _AGENT_MSG_LAST: break;
	}
	return "unknown";
}

int64_t agent_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int agent_write_all(int fd, const void *buf, size_t len, int64_t deadline_ms)
{
	const uint8_t *p = buf;
	bool is_socket = true;
	while (len > 0) {
		/* send() for its MSG_NOSIGNAL; a character device answers ENOTSOCK once. */
		ssize_t n = is_socket ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
		if (n < 0 && errno == ENOTSOCK && is_socket) {
			is_socket = false;
			continue;
		}
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		int64_t left = deadline_ms - agent_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
	}
	return 0;
}

int agent_port_find(const char *name, char *ret_path, size_t cap)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -errno;
	int r = -ENOENT;
	const struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[512], buf[256];
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		if (strcmp(buf, name) == 0 && snprintf(ret_path, cap, "/dev/%s", de->d_name) < (int)cap) {
			r = 0;
			break;
		}
	}
	closedir(d);
	return r;
}
