/* See error.h. */
#include "error.h"

#include <stdio.h>

int ddtk_err_set(struct ddtk_err *err, int r, const char *fmt, ...)
{
	if (!err)
		return r;
	va_list ap;
	va_start(ap, fmt);
	/* The analyzer of clang 14 misreads va_start here (a known false positive). */
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	return r;
}
