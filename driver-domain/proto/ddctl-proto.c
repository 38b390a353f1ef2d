/* The driver domain's control protocol: message names and HELLO's topology text (see
 * ddctl-proto.h). The topology comes from the bridge, the one peer the agent trusts to configure
 * it, but it is still checked line by line: a bad line is refused, never half-applied. */
#include "ddctl-proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ddctl_msg_type_name(uint8_t type)
{
	switch ((enum ddctl_msg_type)type) {
	case DDCTL_MSG_HELLO: return "HELLO";
	case DDCTL_MSG_HELLO_ACK: return "HELLO_ACK";
	case DDCTL_MSG_SESSION_START: return "SESSION_START";
	case DDCTL_MSG_SESSION_STOP: return "SESSION_STOP";
	case DDCTL_MSG_SESSION_STATE: return "SESSION_STATE";
	case DDCTL_MSG_VU: return "VU";
	case DDCTL_MSG_DEVICE_ADDED: return "DEVICE_ADDED";
	case DDCTL_MSG_DEVICE_REMOVED: return "DEVICE_REMOVED";
	case DDCTL_MSG_HEALTH: return "HEALTH";
	case DDCTL_MSG_ERROR: return "ERROR";
	case _DDCTL_MSG_LAST: break;
	}
	return "unknown";
}

#define QUEUES_MAX 16

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EBADMSG;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EBADMSG;
	*ret = v;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned b[6];
	char tail;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return -EBADMSG;
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	/* A client's MAC is unicast and not all zeros: the switch relies on it. */
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EBADMSG;
	return 0;
}

static bool name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

enum { KEY_NAME = 1, KEY_OFFSET = 2, KEY_SIZE = 4, KEY_RO = 8, KEY_MAC = 16, KEY_QUEUES = 32, KEY_KICK = 64 };

static int parse_key(struct ddctl_session_spec *spec, char *word, unsigned *seen)
{
	char *eq = strchr(word, '=');
	uint64_t v;
	unsigned key;

	if (!eq)
		return -EBADMSG;
	*eq = '\0';
	const char *value = eq + 1;
	if (!strcmp(word, "name")) {
		if (!name_valid(value))
			return -EBADMSG;
		strcpy(spec->name, value); /* length checked by name_valid */
		key = KEY_NAME;
	} else if (!strcmp(word, "offset") && spec->kind == DDCTL_KIND_BLK) {
		if (parse_u64(value, &spec->offset) < 0 || spec->offset % 512)
			return -EBADMSG;
		key = KEY_OFFSET;
	} else if (!strcmp(word, "size") && spec->kind == DDCTL_KIND_BLK) {
		if (parse_u64(value, &spec->size) < 0 || !spec->size || spec->size % 512)
			return -EBADMSG;
		key = KEY_SIZE;
	} else if (!strcmp(word, "read-only") && spec->kind == DDCTL_KIND_BLK) {
		if (parse_u64(value, &v) < 0 || v > 1)
			return -EBADMSG;
		spec->read_only = v;
		key = KEY_RO;
	} else if (!strcmp(word, "mac") && spec->kind == DDCTL_KIND_NET) {
		if (parse_mac(value, spec->mac) < 0)
			return -EBADMSG;
		key = KEY_MAC;
	} else if (!strcmp(word, "queues")) {
		if (parse_u64(value, &v) < 0 || v < 1 || v > QUEUES_MAX)
			return -EBADMSG;
		spec->queues = (unsigned)v;
		key = KEY_QUEUES;
	} else if (!strcmp(word, "kick-vector")) {
		if (parse_u64(value, &v) < 0 || v >= DDCTL_KICK_VECTORS_MAX)
			return -EBADMSG;
		spec->kick_vector = (unsigned)v;
		key = KEY_KICK;
	} else {
		return -EBADMSG;
	}
	if (*seen & key)
		return -EBADMSG;
	*seen |= key;
	return 0;
}

static int parse_line(char *line, struct ddctl_session_spec *spec)
{
	char *save = NULL;
	char *kind = strtok_r(line, " ", &save);
	char *num = strtok_r(NULL, " ", &save);
	unsigned seen = 0, need;
	uint64_t session;
	int r;

	memset(spec, 0, sizeof(*spec));
	if (!kind || !num)
		return -EBADMSG;
	if (!strcmp(kind, "blk")) {
		spec->kind = DDCTL_KIND_BLK;
		need = KEY_NAME | KEY_OFFSET | KEY_SIZE | KEY_RO | KEY_QUEUES | KEY_KICK;
	} else if (!strcmp(kind, "net")) {
		spec->kind = DDCTL_KIND_NET;
		need = KEY_NAME | KEY_MAC | KEY_QUEUES | KEY_KICK;
	} else {
		return -EBADMSG;
	}
	if (parse_u64(num, &session) < 0 || session < 1 || session > DDCTL_SESSIONS_MAX)
		return -EBADMSG;
	spec->session = (unsigned)session;
	for (char *w; (w = strtok_r(NULL, " ", &save));) {
		r = parse_key(spec, w, &seen);
		if (r < 0)
			return r;
	}
	if (seen != need)
		return -EBADMSG;
	if (spec->kind == DDCTL_KIND_BLK && spec->offset > UINT64_MAX - spec->size)
		return -EBADMSG;
	if (spec->kick_vector + ddctl_spec_virtqueues(spec) > DDCTL_KICK_VECTORS_MAX)
		return -EBADMSG;
	return 0;
}

int ddctl_topology_parse(const char *text, size_t len, struct ddctl_session_spec *specs, unsigned max,
			 unsigned *ret_n)
{
	char line[512];
	unsigned n = 0;
	size_t pos = 0;
	int r;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		if (!nl)
			return -EBADMSG; /* every line ends with '\n' */
		size_t l = (size_t)(nl - (text + pos));
		if (l >= sizeof(line) || memchr(text + pos, '\0', l))
			return -EBADMSG;
		memcpy(line, text + pos, l);
		line[l] = '\0';
		pos += l + 1;
		if (n == max)
			return -EBADMSG;
		r = parse_line(line, &specs[n]);
		if (r < 0)
			return r;
		for (unsigned i = 0; i < n; i++) {
			const struct ddctl_session_spec *a = &specs[i], *b = &specs[n];
			if (a->session == b->session)
				return -EBADMSG;
			/* Two sessions' kicks on one vector would wake the wrong back-end. */
			if (a->kick_vector < b->kick_vector + ddctl_spec_virtqueues(b) &&
			    b->kick_vector < a->kick_vector + ddctl_spec_virtqueues(a))
				return -EBADMSG;
		}
		n++;
	}
	*ret_n = n;
	return 0;
}

int ddctl_topology_format(const struct ddctl_session_spec *spec, char *buf, size_t cap, size_t *pos)
{
	int n;

	if (*pos > cap)
		return -EMSGSIZE;
	if (spec->kind == DDCTL_KIND_BLK)
		n = snprintf(buf + *pos, cap - *pos, "blk %u name=%s offset=%" PRIu64 " size=%" PRIu64 " read-only=%d queues=%u kick-vector=%u\n",
			     spec->session, spec->name, spec->offset, spec->size, spec->read_only ? 1 : 0, spec->queues,
			     spec->kick_vector);
	else
		n = snprintf(buf + *pos, cap - *pos, "net %u name=%s mac=%02x:%02x:%02x:%02x:%02x:%02x queues=%u kick-vector=%u\n",
			     spec->session, spec->name, spec->mac[0], spec->mac[1], spec->mac[2], spec->mac[3],
			     spec->mac[4], spec->mac[5], spec->queues, spec->kick_vector);
	if (n < 0 || (size_t)n >= cap - *pos)
		return -EMSGSIZE;
	*pos += (size_t)n;
	return 0;
}
