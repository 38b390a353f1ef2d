/* A message slot for errors: library functions return negative errno and describe the failure
 * here; the caller that handles the error decides whether and how to print it. */
#pragma once

#include <stdarg.h>

struct ddtk_err {
	char msg[1024];
};

/* Formats into err (which may be NULL) and returns r, so that `return ddtk_err_set(err, -EINVAL,
 * "...")` reads as one step. */
int ddtk_err_set(struct ddtk_err *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
