/* See error.h. */
#include "error.h"

#include <stdio.h>

int ddtk_err_set(struct ddtk_err *err, int r, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return r;
}
