/* tq_error.h — filling a caller-owned tq_error. */
#ifndef TQ_ERROR_H
#define TQ_ERROR_H

#include <tqrun/tq_plugin.h>

/* Formats a message into *err (if err is non-NULL), sets err->code and returns
 * `code`, so failures read `return tq_error_set(err, TQ_ERR_FORMAT, "...")`. */
tq_status tq_error_set(tq_error *err, tq_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prefixes err->message with "prefix: " (e.g. the file name), keeping code. */
void tq_error_prefix(tq_error *err, const char *prefix);

/* Short name of a status code ("format error", ...). */
const char *tq_status_str(tq_status s);

#endif
