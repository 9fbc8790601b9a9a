/* tq_config.h — the ini file ([model], [runtime], [sampling], [plugins],
 * [plugin.<name>]) read with inih, plus command-line overrides. */
#ifndef TQ_CONFIG_H
#define TQ_CONFIG_H

#include <tqrun/tq_plugin.h>

typedef struct tq_config tq_config;

/* An empty config. */
tq_config *tq_config_new(void);
/* Parses `path` into cfg (later values replace earlier ones). Rejects a
 * syntax error, an unknown section, or an unknown key in a known section
 * with "path:line: problem". Keys in [plugin.<name>] are free-form. [main] */
tq_status tq_config_load(tq_config *cfg, const char *path, tq_error *err);
/* Value or NULL; the string lives until the value is replaced or the config
 * is freed. */
const char *tq_config_get(const tq_config *cfg, const char *section, const char *key);
/* Sets (copies) a value, e.g. from a command-line flag. */
tq_status tq_config_set(tq_config *cfg, const char *section, const char *key, const char *value);
/* Typed reads with validation; a bad value gives "section.key: problem".
 * When the key is absent *out keeps its value and TQ_OK is returned. */
tq_status tq_config_get_int(const tq_config *cfg, const char *section, const char *key,
                            long long min, long long max, long long *out, tq_error *err);
tq_status tq_config_get_float(const tq_config *cfg, const char *section, const char *key,
                              double min, double max, double *out, tq_error *err);
/* true/false, 1/0, yes/no, on/off into *out (1 or 0). */
tq_status tq_config_get_bool(const tq_config *cfg, const char *section, const char *key, int *out,
                             tq_error *err);
void tq_config_free(tq_config *cfg);

#endif
