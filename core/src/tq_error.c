/* tq_error.c — filling caller-owned tq_error buffers. */
#include "tq_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

tq_status tq_error_set(tq_error *err, tq_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void tq_error_prefix(tq_error *err, const char *prefix) {
    if (!err || !prefix) return;
    char tmp[sizeof err->message * 2];
    snprintf(tmp, sizeof tmp, "%s: %s", prefix, err->message);
    size_t n = strlen(tmp);
    if (n >= sizeof err->message) n = sizeof err->message - 1; /* truncate */
    memcpy(err->message, tmp, n);
    err->message[n] = 0;
}

const char *tq_status_str(tq_status s) {
    switch (s) {
    case TQ_OK: return "ok";
    case TQ_ERR_INVALID: return "invalid argument";
    case TQ_ERR_NOMEM: return "out of memory";
    case TQ_ERR_IO: return "I/O error";
    case TQ_ERR_FORMAT: return "format error";
    case TQ_ERR_UNSUPPORTED: return "unsupported";
    case TQ_ERR_ABI: return "ABI mismatch";
    case TQ_ERR_NOT_FOUND: return "not found";
    case TQ_ERR_RANGE: return "out of range";
    }
    return "unknown error";
}
