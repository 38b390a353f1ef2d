/* A small validating JSON reader for the back-ends' stats (stats-json.h). Recursive descent with a
 * depth limit; numbers are only interpreted for the two keys it looks for. Pure: unit-tested. */
#include "stats-json.h"

#include <errno.h>
#include <string.h>

enum stats_key { KEY_OTHER = -1, KEY_COMPLETED = 0, KEY_INFLIGHT = 1, KEY_COUNT = 2 };

struct reader {
	const char *p, *end;
	/* Per key: the shallowest depth seen so far (STATS_JSON_DEPTH_MAX + 1 = none) and the sum. */
	unsigned depth[KEY_COUNT];
	uint64_t sum[KEY_COUNT];
};

static void skip_space(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static bool take(struct reader *r, char c)
{
	skip_space(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return true;
	}
	return false;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string; *ret_key tells which key it is when it is one of ours (compared unescaped only: our
 * keys have no escapes). */
static int read_string(struct reader *r, enum stats_key *ret_key)
{
	if (!take(r, '"'))
		return -EBADMSG;
	const char *s = r->p;
	while (r->p < r->end && *r->p != '"') {
		unsigned char c = (unsigned char)*r->p;
		if (c < 0x20)
			return -EBADMSG;
		if (c == '\\') {
			r->p++;
			if (r->p >= r->end)
				return -EBADMSG;
			if (*r->p == 'u') {
				if (r->end - r->p < 5 || !is_hex(r->p[1]) || !is_hex(r->p[2]) || !is_hex(r->p[3]) ||
				    !is_hex(r->p[4]))
					return -EBADMSG;
				r->p += 4;
			} else if (*r->p == '\0' || !strchr("\"\\/bfnrt", *r->p)) {
				return -EBADMSG;
			}
		}
		r->p++;
	}
	if (r->p >= r->end)
		return -EBADMSG;
	size_t n = (size_t)(r->p - s);
	r->p++;
	if (ret_key) {
		*ret_key = KEY_OTHER;
		if (n == 9 && !memcmp(s, "completed", 9))
			*ret_key = KEY_COMPLETED;
		else if (n == 8 && !memcmp(s, "inflight", 8))
			*ret_key = KEY_INFLIGHT;
	}
	return 0;
}

/* A JSON number; *ret_uint is set when it is a plain unsigned integer that fits in 64 bits. */
static int read_number(struct reader *r, bool *ret_is_uint, uint64_t *ret_uint)
{
	const char *s = r->p;
	bool is_uint = true;
	uint64_t v = 0;

	if (r->p < r->end && *r->p == '-') {
		is_uint = false;
		r->p++;
	}
	if (r->p >= r->end || *r->p < '0' || *r->p > '9')
		return -EBADMSG;
	if (*r->p == '0' && r->end - r->p > 1 && r->p[1] >= '0' && r->p[1] <= '9')
		return -EBADMSG;   /* no leading zeros in JSON */
	for (; r->p < r->end && *r->p >= '0' && *r->p <= '9'; r->p++) {
		unsigned d = (unsigned)(*r->p - '0');
		if (v > (UINT64_MAX - d) / 10)
			is_uint = false;
		else
			v = v * 10 + d;
	}
	if (r->p < r->end && *r->p == '.') {
		is_uint = false;
		r->p++;
		if (r->p >= r->end || *r->p < '0' || *r->p > '9')
			return -EBADMSG;
		while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
			r->p++;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		is_uint = false;
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (r->p >= r->end || *r->p < '0' || *r->p > '9')
			return -EBADMSG;
		while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
			r->p++;
	}
	if (r->p == s)
		return -EBADMSG;
	*ret_is_uint = is_uint;
	*ret_uint = v;
	return 0;
}

static int read_literal(struct reader *r, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return -EBADMSG;
	r->p += n;
	return 0;
}

static void note_value(struct reader *r, enum stats_key key, unsigned depth, uint64_t v)
{
	if (key == KEY_OTHER)
		return;
	if (depth < r->depth[key]) {
		r->depth[key] = depth;
		r->sum[key] = v;
	} else if (depth == r->depth[key]) {
		r->sum[key] = r->sum[key] > UINT64_MAX - v ? UINT64_MAX : r->sum[key] + v;
	}
}

/* A value at `depth` (the number of containers around it); key is the object key it belongs to. */
static int read_value(struct reader *r, unsigned depth, enum stats_key key)
{
	int err;

	skip_space(r);
	if (r->p >= r->end)
		return -EBADMSG;
	switch (*r->p) {
	case '{':
		if (depth >= STATS_JSON_DEPTH_MAX)
			return -EBADMSG;
		r->p++;
		if (take(r, '}'))
			return 0;
		do {
			enum stats_key k;
			skip_space(r);
			if ((err = read_string(r, &k)) < 0)
				return err;
			if (!take(r, ':'))
				return -EBADMSG;
			if ((err = read_value(r, depth + 1, k)) < 0)
				return err;
		} while (take(r, ','));
		return take(r, '}') ? 0 : -EBADMSG;
	case '[':
		if (depth >= STATS_JSON_DEPTH_MAX)
			return -EBADMSG;
		r->p++;
		if (take(r, ']'))
			return 0;
		do {
			if ((err = read_value(r, depth + 1, KEY_OTHER)) < 0)
				return err;
		} while (take(r, ','));
		return take(r, ']') ? 0 : -EBADMSG;
	case '"':
		return read_string(r, NULL);
	case 't':
		return read_literal(r, "true");
	case 'f':
		return read_literal(r, "false");
	case 'n':
		return read_literal(r, "null");
	default: {
		bool is_uint;
		uint64_t v;
		if ((err = read_number(r, &is_uint, &v)) < 0)
			return err;
		if (is_uint)
			note_value(r, key, depth, v);
		return 0;
	}
	}
}

int stats_json_parse(const char *text, size_t len, struct stats_sample *ret)
{
	struct reader r = { .p = text, .end = text + len };
	int err;

	if (len > STATS_JSON_MAX)
		return -EBADMSG;
	for (unsigned k = 0; k < KEY_COUNT; k++)
		r.depth[k] = STATS_JSON_DEPTH_MAX + 1;
	if ((err = read_value(&r, 0, KEY_OTHER)) < 0)
		return err;
	skip_space(&r);
	if (r.p != r.end)
		return -EBADMSG;
	*ret = (struct stats_sample){
		.has_completed = r.depth[KEY_COMPLETED] <= STATS_JSON_DEPTH_MAX,
		.has_inflight = r.depth[KEY_INFLIGHT] <= STATS_JSON_DEPTH_MAX,
		.completed = r.sum[KEY_COMPLETED],
		.inflight = r.sum[KEY_INFLIGHT],
	};
	return 0;
}
