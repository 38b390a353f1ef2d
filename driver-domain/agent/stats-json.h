/* Reads what ddtk-agent needs out of a back-end's stats document (the JSON its --stats-socket
 * answers with): how many requests it has completed and how many are in flight. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on a document: a back-end is trusted to configure nothing, only to report. */
#define STATS_JSON_MAX ((size_t)256 * 1024)
#define STATS_JSON_DEPTH_MAX 32

struct stats_sample {
	bool has_completed, has_inflight;
	uint64_t completed;   /* requests finished since the back-end started */
	uint64_t inflight;    /* requests taken from a ring and not yet finished */
};

/* Parses a whole JSON document. Each of "completed" and "inflight" is taken at the shallowest
 * depth where a key of that name has an unsigned integer value, summed over the keys at that depth
 * (saturating): a document with top-level totals is read as those totals, one with only
 * per-export counts as their sum. A key that is absent leaves has_* false. 0, or -EBADMSG when the
 * text is not one well-formed JSON value (a truncated answer, say). */
int stats_json_parse(const char *text, size_t len, struct stats_sample *ret);
