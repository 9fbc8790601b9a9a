/* tq_log.c — the process-wide log sink. */
#include "tq_log.h"

#include <stdarg.h>
#include <stdio.h>

static tq_log_level g_max_level = TQ_LOG_WARN;
static tq_log_sink g_sink;
static void *g_sink_user;

void tq_log_set_level(tq_log_level max_level) { g_max_level = max_level; }

void tq_log_set_sink(tq_log_sink sink, void *user) {
    g_sink = sink;
    g_sink_user = user;
}

void tq_log(tq_log_level level, const char *who, const char *fmt, ...) {
    if (level > g_max_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_sink) {
        g_sink(level, who, msg, g_sink_user);
        return;
    }
    static const char *const names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "tqrun: %s%s%s: %s\n", names[level], who ? " " : "", who ? who : "", msg);
}
