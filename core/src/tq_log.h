/* tq_log.h — the one log sink of the process. Everything the core and plugins
 * log goes through tq_log; the CLI decides the level and where it goes. */
#ifndef TQ_LOG_H
#define TQ_LOG_H

#include <tqrun/tq_plugin.h>

typedef void (*tq_log_sink)(tq_log_level level, const char *who, const char *msg, void *user);

/* Logs one line at `level` from `who` ("core", a plugin id). [any] */
void tq_log(tq_log_level level, const char *who, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Lines above `max_level` are dropped. Default: TQ_LOG_WARN. [main] */
void tq_log_set_level(tq_log_level max_level);
/* Replaces the default sink (stderr, "tqrun: who: msg"). NULL restores it. [main] */
void tq_log_set_sink(tq_log_sink sink, void *user);

#endif
