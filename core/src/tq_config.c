/* tq_config.c — the ini file, read with inih, plus command-line overrides.
 *
 * inih does the splitting (sections, "key = value", comments, trimming). We
 * feed it through our own line reader (ini_parse_stream) because the
 * distro builds of inih leave out what good error messages need:
 *  - the handler gets no line number (INI_HANDLER_LINENO is off), so the
 *    reader counts lines and the handler reads the count;
 *  - section headers never reach the handler (INI_CALL_HANDLER_ON_NEW_SECTION
 *    is off), so the reader checks them, and an unknown [section] is
 *    reported on its own line even when no key follows;
 *  - an indented line after a key is taken as a continuation of that key's
 *    value (INI_ALLOW_MULTILINE), which silently turned "  threads = 4"
 *    into part of the previous value; the reader strips leading blanks, so
 *    indentation is allowed and continuation lines are not;
 *  - a line longer than inih's buffer (200 bytes) was split into two lines;
 *    the reader refuses it instead.
 */
#include "tq_config.h"

#include "tq_error.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Schema                                                                    */

typedef struct section_schema {
    const char *name;
    const char *const *keys;   /* NULL-terminated */
} section_schema;

static const char *const model_keys[] = {"path", "mmap", NULL};
static const char *const runtime_keys[] = {
    "backend", "kv", "cache_type_k", "cache_type_v", "threads",
    "ctx_size", "batch_size", "seed", NULL};
static const char *const sampling_keys[] = {
    "temp", "top_k", "top_p", "min_p", "repeat_penalty",
    "repeat_last_n", "seed", "n_predict", NULL};
static const char *const plugins_keys[] = {"path", NULL};

static const section_schema schema[] = {
    {"model", model_keys},
    {"runtime", runtime_keys},
    {"sampling", sampling_keys},
    {"plugins", plugins_keys},
};

#define PLUGIN_PREFIX "plugin."

/* Schema of a section name; NULL for [plugin.<name>] (free-form keys) and
 * for unknown sections (tell them apart with section_known). */
static const section_schema *find_schema(const char *section) {
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++)
        if (strcmp(schema[i].name, section) == 0) return &schema[i];
    return NULL;
}

static int is_plugin_section(const char *section) {
    size_t n = strlen(PLUGIN_PREFIX);
    return strncmp(section, PLUGIN_PREFIX, n) == 0 && section[n] != '\0';
}

static int section_known(const char *section) {
    return find_schema(section) != NULL || is_plugin_section(section);
}

static int key_known(const section_schema *s, const char *key) {
    for (const char *const *k = s->keys; *k; k++)
        if (strcmp(*k, key) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Storage: a flat list; configs have a few dozen entries at most.           */

typedef struct entry {
    char *section, *key, *value;
    const char *file;   /* interned in tq_config.files; NULL when set in code */
    int line;
} entry;

struct tq_config {
    entry *entries;
    size_t n, cap;
    char **files;       /* every path loaded, for "file:line" in messages */
    size_t n_files;
};

tq_config *tq_config_new(void) { return calloc(1, sizeof(tq_config)); }

static entry *find_entry(const tq_config *cfg, const char *section, const char *key) {
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->entries[i].section, section) == 0 && strcmp(cfg->entries[i].key, key) == 0)
            return &cfg->entries[i];
    return NULL;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Inserts or replaces; on failure cfg is unchanged. */
static tq_status put(tq_config *cfg, const char *section, const char *key, const char *value,
                     const char *file, int line) {
    char *v = dup_str(value);
    if (!v) return TQ_ERR_NOMEM;
    entry *e = find_entry(cfg, section, key);
    if (e) {
        free(e->value);
        e->value = v;
        e->file = file;
        e->line = line;
        return TQ_OK;
    }
    if (cfg->n == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 16;
        entry *grown = realloc(cfg->entries, cap * sizeof *grown);
        if (!grown) {
            free(v);
            return TQ_ERR_NOMEM;
        }
        cfg->entries = grown;
        cfg->cap = cap;
    }
    e = &cfg->entries[cfg->n];
    e->section = dup_str(section);
    e->key = dup_str(key);
    if (!e->section || !e->key) {
        free(e->section);
        free(e->key);
        free(v);
        return TQ_ERR_NOMEM;
    }
    e->value = v;
    e->file = file;
    e->line = line;
    cfg->n++;
    return TQ_OK;
}

void tq_config_free(tq_config *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->entries[i].section);
        free(cfg->entries[i].key);
        free(cfg->entries[i].value);
    }
    free(cfg->entries);
    for (size_t i = 0; i < cfg->n_files; i++) free(cfg->files[i]);
    free(cfg->files);
    free(cfg);
}

const char *tq_config_get(const tq_config *cfg, const char *section, const char *key) {
    if (!cfg || !section || !key) return NULL;
    const entry *e = find_entry(cfg, section, key);
    return e ? e->value : NULL;
}

tq_status tq_config_set(tq_config *cfg, const char *section, const char *key, const char *value) {
    if (!cfg || !section || !key || !value) return TQ_ERR_INVALID;
    return put(cfg, section, key, value, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

typedef struct parse_ctx {
    FILE *fp;
    const char *path;
    tq_config *staged;   /* values of this file, merged only if all is well */
    int lineno;          /* line the reader handed out last                */
    char *line;          /* getline buffer                                  */
    size_t line_cap;
    tq_status status;    /* first problem found by us (not by inih)         */
    int err_line;
    tq_error *err;
} parse_ctx;

static char *skip_blanks(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* Records the first problem as "path:line: message". */
static tq_status fail(parse_ctx *c, tq_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static tq_status fail(parse_ctx *c, tq_status code, const char *fmt, ...) {
    if (c->status == TQ_OK) {
        char msg[sizeof c->err->message];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        c->status = code;
        c->err_line = c->lineno;
        tq_error_set(c->err, code, "%s:%d: %s", c->path, c->lineno, msg);
    }
    return code;
}

/* A "[name]" line: checks the name and rewrites the line as "[name]" with
 * the blanks inside the brackets removed, so the handler sees the same
 * spelling we checked. */
static void check_section_line(parse_ctx *c, char *line) {
    char *close = strchr(line, ']');
    if (!close) {
        fail(c, TQ_ERR_FORMAT, "syntax error: missing ']' in section header");
        return;
    }
    char *name = skip_blanks(line + 1);
    char *end = close;
    while (end > name && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *end = '\0';
    if (!section_known(name)) {
        fail(c, TQ_ERR_FORMAT, "unknown section [%s]", name);
        return;
    }
    memmove(line + 1, name, strlen(name) + 1);
    strcat(line, "]");
}

/* ini_reader: hands inih one line at a time (so lineno is exact), without
 * leading blanks; returning NULL ends the parse. */
static char *read_line(char *buf, int size, void *stream) {
    parse_ctx *c = stream;
    if (c->status != TQ_OK) return NULL;
    ssize_t got = getline(&c->line, &c->line_cap, c->fp);
    if (got < 0) return NULL;
    c->lineno++;
    char *s = c->line;
    size_t n = (size_t)got;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
    s = skip_blanks(s);
    if (*s == '[') check_section_line(c, s);
    if (c->status != TQ_OK) return NULL;
    if (strlen(s) + 2 > (size_t)size) { /* +2: the '\n' we add back and NUL */
        fail(c, TQ_ERR_FORMAT, "line longer than %d characters", size - 2);
        return NULL;
    }
    snprintf(buf, (size_t)size, "%s\n", s);
    return buf;
}

static int on_value(void *user, const char *section, const char *key, const char *value) {
    parse_ctx *c = user;
    if (c->status != TQ_OK) return 0;
    if (section[0] == '\0') {
        fail(c, TQ_ERR_FORMAT, "key '%s' outside any section", key);
        return 0;
    }
    /* check_section_line already refused unknown sections. */
    const section_schema *s = find_schema(section);
    if (s && !key_known(s, key)) {
        fail(c, TQ_ERR_FORMAT, "unknown key '%s' in section [%s]", key, section);
        return 0;
    }
    if (put(c->staged, section, key, value, c->path, c->lineno) != TQ_OK) {
        c->status = tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);
        return 0;
    }
    return 1;
}

static const char *intern_file(tq_config *cfg, const char *path) {
    for (size_t i = 0; i < cfg->n_files; i++)
        if (strcmp(cfg->files[i], path) == 0) return cfg->files[i];
    char **grown = realloc(cfg->files, (cfg->n_files + 1) * sizeof *grown);
    if (!grown) return NULL;
    cfg->files = grown;
    char *copy = dup_str(path);
    if (!copy) return NULL;
    cfg->files[cfg->n_files++] = copy;
    return copy;
}

tq_status tq_config_load(tq_config *cfg, const char *path, tq_error *err) {
    if (!cfg || !path) return tq_error_set(err, TQ_ERR_INVALID, "tq_config_load: no config or path");
    FILE *fp = fopen(path, "r");
    if (!fp) return tq_error_set(err, TQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));

    /* Values are staged in a scratch config so that a file with an error
     * changes nothing; `file` pointers are fixed up on merge. */
    parse_ctx c = {.fp = fp, .path = path, .staged = tq_config_new(), .err = err};
    if (!c.staged) {
        fclose(fp);
        return tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    }
    int rc = ini_parse_stream(read_line, &c, on_value, &c);
    int read_failed = ferror(fp);
    free(c.line);
    fclose(fp);

    tq_status st = c.status;
    /* inih returns the first line it rejected, which is either a line our
     * handler refused (already reported) or its own syntax error; we stop
     * at our first error, so an earlier inih line can only be syntax. The
     * only syntax error inih reports that the reader lets through is a
     * line without '=' (or ':'). */
    if (rc > 0 && (st == TQ_OK || rc < c.err_line)) {
        st = tq_error_set(err, TQ_ERR_FORMAT, "%s:%d: syntax error: expected 'key = value'",
                          path, rc);
    } else if (rc < 0 && st == TQ_OK) {
        st = tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    } else if (read_failed && st == TQ_OK) {
        st = tq_error_set(err, TQ_ERR_IO, "%s: read error", path);
    }

    const char *file = st == TQ_OK ? intern_file(cfg, path) : NULL;
    if (st == TQ_OK && !file) st = tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; st == TQ_OK && i < c.staged->n; i++) {
        const entry *e = &c.staged->entries[i];
        if (put(cfg, e->section, e->key, e->value, file, e->line) != TQ_OK)
            st = tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    }
    tq_config_free(c.staged);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Typed reads                                                               */

/* "file:line: section.key" or "section.key" for values set in code. */
static void describe(const entry *e, char *buf, size_t size) {
    if (e->file)
        snprintf(buf, size, "%s:%d: %s.%s", e->file, e->line, e->section, e->key);
    else
        snprintf(buf, size, "%s.%s", e->section, e->key);
}

tq_status tq_config_get_int(const tq_config *cfg, const char *section, const char *key,
                            long long min, long long max, long long *out, tq_error *err) {
    const entry *e = cfg ? find_entry(cfg, section, key) : NULL;
    if (!e) return TQ_OK;
    char where[200];
    describe(e, where, sizeof where);
    const char *s = e->value;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)*s))
        return tq_error_set(err, TQ_ERR_INVALID, "%s: '%s' is not an integer", where, s);
    if (errno == ERANGE || v < min || v > max)
        return tq_error_set(err, TQ_ERR_RANGE, "%s: %s is out of range [%lld, %lld]", where, s,
                            min, max);
    *out = v;
    return TQ_OK;
}

tq_status tq_config_get_bool(const tq_config *cfg, const char *section, const char *key, int *out,
                             tq_error *err) {
    const entry *e = cfg ? find_entry(cfg, section, key) : NULL;
    if (!e) return TQ_OK;
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(e->value, yes[i]) == 0) return *out = 1, TQ_OK;
        if (strcmp(e->value, no[i]) == 0) return *out = 0, TQ_OK;
    }
    char where[200];
    describe(e, where, sizeof where);
    return tq_error_set(err, TQ_ERR_INVALID, "%s: '%s' is not a boolean (true/false, 1/0, yes/no, on/off)",
                        where, e->value);
}

tq_status tq_config_get_float(const tq_config *cfg, const char *section, const char *key,
                              double min, double max, double *out, tq_error *err) {
    const entry *e = cfg ? find_entry(cfg, section, key) : NULL;
    if (!e) return TQ_OK;
    char where[200];
    describe(e, where, sizeof where);
    const char *s = e->value;
    char *end;
    errno = 0;
    /* strtod follows LC_NUMERIC; tqrun never calls setlocale, so it is "C". */
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || isspace((unsigned char)*s))
        return tq_error_set(err, TQ_ERR_INVALID, "%s: '%s' is not a number", where, s);
    if (!isfinite(v) || errno == ERANGE || v < min || v > max)
        return tq_error_set(err, TQ_ERR_RANGE, "%s: %s is out of range [%g, %g]", where, s, min,
                            max);
    *out = v;
    return TQ_OK;
}
