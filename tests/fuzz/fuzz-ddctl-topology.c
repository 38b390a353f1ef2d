/* Fuzz target: HELLO's topology as ddtk-agent reads it from the bridge. Whatever the parser
 * accepts must hold its promises (sessions and kick-vector ranges in range, neither shared), and
 * must come back the same through the bridge's formatter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ddctl-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_spec(const struct ddctl_session_spec *s)
{
	unsigned n = ddctl_spec_virtqueues(s);

	if (s->session < 1 || s->session > DDCTL_SESSIONS_MAX || (s->kind != DDCTL_KIND_BLK && s->kind != DDCTL_KIND_NET))
		abort();
	if (n < 1 || s->kick_vector >= DDCTL_KICK_VECTORS_MAX || n > DDCTL_KICK_VECTORS_MAX - s->kick_vector)
		abort();
	if (!memchr(s->name, '\0', sizeof(s->name)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ddctl_session_spec specs[DDCTL_SESSIONS_MAX], again[DDCTL_SESSIONS_MAX];
	static char text[DDCTL_SESSIONS_MAX * 256];
	unsigned n, m;
	size_t pos = 0;

	if (ddctl_topology_parse((const char *)data, size, specs, DDCTL_SESSIONS_MAX, &n) < 0)
		return 0;
	if (n > DDCTL_SESSIONS_MAX)
		abort();
	for (unsigned i = 0; i < n; i++) {
		check_spec(&specs[i]);
		for (unsigned j = 0; j < i; j++) {
			const struct ddctl_session_spec *a = &specs[i], *b = &specs[j];

			if (a->session == b->session ||
			    (a->kick_vector < b->kick_vector + ddctl_spec_virtqueues(b) &&
			     b->kick_vector < a->kick_vector + ddctl_spec_virtqueues(a)))
				abort();
		}
		if (ddctl_topology_format(&specs[i], text, sizeof(text), &pos) < 0)
			abort();
	}
	if (ddctl_topology_parse(text, pos, again, DDCTL_SESSIONS_MAX, &m) < 0 || m != n)
		abort();
	for (unsigned i = 0; i < n; i++) {
		const struct ddctl_session_spec *a = &specs[i], *b = &again[i];

		if (a->session != b->session || a->kind != b->kind || strcmp(a->name, b->name) != 0 ||
		    a->queues != b->queues || a->kick_vector != b->kick_vector)
			abort();
		if (a->kind == DDCTL_KIND_BLK &&
		    (a->offset != b->offset || a->size != b->size || a->read_only != b->read_only))
			abort();
		if (a->kind == DDCTL_KIND_NET && memcmp(a->mac, b->mac, sizeof(a->mac)) != 0)
			abort();
	}
	return 0;
}
