/* test_config.c — the ini reader: values, error lines, overrides, and the
 * host's view of [plugin.<name>].
 *
 * The malformed fixtures in tests/data/ini mark their bad line with the word
 * ERROR; the expected line number is found by searching for it, so editing a
 * fixture cannot silently desynchronise the test. */
#include "tq_test_util.h"

#include "tq_config.h"
#include "tq_host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *data(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "ini/%s", name);
    char *p = tq_test_data_path(rel);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* 1-based number of the first line of `path` containing `marker`. */
static int line_of(const char *path, const char *marker) {
    char *text = tq_test_read_file(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    char *hit = strstr(text, marker);
    ck_assert_msg(hit != NULL, "%s has no %s marker", path, marker);
    int line = 1;
    for (char *p = text; p < hit; p++) line += *p == '\n';
    free(text);
    return line;
}

static void assert_starts_with(const char *s, const char *prefix) {
    ck_assert_msg(strncmp(s, prefix, strlen(prefix)) == 0, "'%s' does not start with '%s'", s,
                  prefix);
}

static void assert_contains(const char *s, const char *part) {
    ck_assert_msg(strstr(s, part) != NULL, "'%s' does not contain '%s'", s, part);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(good_file) {
    char *path = data("good.ini");
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_msg(tq_config_load(cfg, path, &err) == TQ_OK, "%s", err.message);

    static const char *const expect[][3] = {
        {"model", "path", "/models/tiny llama.gguf"},
        {"runtime", "backend", "x86, ref"},
        {"runtime", "kv", "turbo"},
        {"runtime", "cache_type_k", "tq3"},
        {"runtime", "cache_type_v", "f16"},
        {"runtime", "threads", "4"},
        {"runtime", "ctx_size", "2048"},
        {"runtime", "batch_size", "512"},
        {"runtime", "seed", "42"},
        {"sampling", "temp", "0.7"},
        {"sampling", "top_k", "40"},
        {"sampling", "top_p", "0.95"},
        {"sampling", "min_p", "0.05"},
        {"sampling", "repeat_penalty", "1.1"},
        {"sampling", "repeat_last_n", "64"},
        {"sampling", "seed", "7"},
        {"sampling", "n_predict", "128"},
        {"plugins", "path", "/opt/tqrun/plugins;x"},
        {"plugin.turbo", "bits", "3"},
        {"plugin.turbo", "greeting", "hello turbo"},
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        const char *v = tq_config_get(cfg, expect[i][0], expect[i][1]);
        ck_assert_msg(v != NULL, "[%s] %s missing", expect[i][0], expect[i][1]);
        ck_assert_str_eq(v, expect[i][2]);
    }
    ck_assert_ptr_null(tq_config_get(cfg, "runtime", "nope"));
    ck_assert_ptr_null(tq_config_get(cfg, "plugin.other", "bits"));

    long long threads = -1;
    ck_assert_int_eq(tq_config_get_int(cfg, "runtime", "threads", 1, 1024, &threads, &err), TQ_OK);
    ck_assert_int_eq(threads, strtoll(expect[5][2], NULL, 10));
    double temp = -1;
    ck_assert_int_eq(tq_config_get_float(cfg, "sampling", "temp", 0, 10, &temp, &err), TQ_OK);
    ck_assert(temp == strtod(expect[9][2], NULL));

    /* Absent keys leave the default alone. */
    long long dflt = 123;
    ck_assert_int_eq(tq_config_get_int(cfg, "runtime", "absent", 0, 10, &dflt, &err), TQ_OK);
    ck_assert_int_eq(dflt, 123);
    tq_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(missing_file) {
    char *path = tq_test_tmp_path("does-not-exist.ini");
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_int_eq(tq_config_load(cfg, path, &err), TQ_ERR_IO);
    char expect[512];
    snprintf(expect, sizeof expect, "%s: cannot open: %s", path, strerror(ENOENT));
    ck_assert_str_eq(err.message, expect);
    tq_config_free(cfg);
    free(path);
}
END_TEST

/* Each malformed file: status, "path:line: " with the marked line, and the
 * words that say what is wrong. */
static const struct {
    const char *file;
    const char *says;
} malformed[] = {
    {"bad_bracket.ini", "missing ']'"},
    {"bad_noequals.ini", "syntax error: expected 'key = value'"},
    {"bad_section.ini", "unknown section [sampler]"},
    {"bad_key.ini", "unknown key 'thread' in section [runtime]"},
    {"bad_outside.ini", "key 'threads' outside any section"},
};

START_TEST(malformed_files) {
    char *path = data(malformed[_i].file);
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_int_eq(tq_config_load(cfg, path, &err), TQ_ERR_FORMAT);
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line_of(path, "ERROR"));
    assert_starts_with(err.message, prefix);
    assert_contains(err.message, malformed[_i].says);
    tq_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(range_error_names_line) {
    char *path = data("bad_range.ini");
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_msg(tq_config_load(cfg, path, &err) == TQ_OK, "%s", err.message);
    long long threads = 1;
    ck_assert_int_eq(tq_config_get_int(cfg, "runtime", "threads", 1, 1024, &threads, &err),
                     TQ_ERR_RANGE);
    ck_assert_int_eq(threads, 1);
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s:%d: runtime.threads: ", path, line_of(path, "ERROR"));
    assert_starts_with(err.message, prefix);
    assert_contains(err.message, "100000");
    assert_contains(err.message, "[1, 1024]");

    /* Floats too, with the line of their own key. */
    double temp = 0;
    ck_assert_int_eq(tq_config_get_float(cfg, "sampling", "temp", 0.0, 0.5, &temp, &err),
                     TQ_ERR_RANGE);
    snprintf(prefix, sizeof prefix, "%s:%d: sampling.temp: ", path, line_of(path, "temp"));
    assert_starts_with(err.message, prefix);
    tq_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(bad_numbers) {
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    long long v = 5;
    double f = 5;
    static const char *const not_ints[] = {"abc", "", "4x", " 4", "4.5", "0x10"};
    for (size_t i = 0; i < sizeof not_ints / sizeof not_ints[0]; i++) {
        ck_assert_int_eq(tq_config_set(cfg, "runtime", "threads", not_ints[i]), TQ_OK);
        ck_assert_int_eq(tq_config_get_int(cfg, "runtime", "threads", 0, 100, &v, &err),
                         TQ_ERR_INVALID);
        /* Set in code: no file:line, just section.key. */
        assert_starts_with(err.message, "runtime.threads: ");
    }
    ck_assert_int_eq(tq_config_set(cfg, "runtime", "threads", "99999999999999999999999"), TQ_OK);
    ck_assert_int_eq(tq_config_get_int(cfg, "runtime", "threads", 0, 100, &v, &err), TQ_ERR_RANGE);
    static const char *const not_floats[] = {"warm", "1.0.0", "nan", "inf", "1e999"};
    for (size_t i = 0; i < sizeof not_floats / sizeof not_floats[0]; i++) {
        ck_assert_int_eq(tq_config_set(cfg, "sampling", "temp", not_floats[i]), TQ_OK);
        ck_assert_int_ne(tq_config_get_float(cfg, "sampling", "temp", 0, 100, &f, &err), TQ_OK);
        assert_starts_with(err.message, "sampling.temp: ");
    }
    ck_assert_int_eq(v, 5);
    ck_assert(f == 5);
    tq_config_free(cfg);
}
END_TEST

START_TEST(booleans) {
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    int b = 7;
    ck_assert_int_eq(tq_config_get_bool(cfg, "model", "mmap", &b, &err), TQ_OK); /* absent: kept */
    ck_assert_int_eq(b, 7);
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(tq_config_set(cfg, "model", "mmap", yes[i]), TQ_OK);
        ck_assert_int_eq(tq_config_get_bool(cfg, "model", "mmap", &b, &err), TQ_OK);
        ck_assert_int_eq(b, 1);
        ck_assert_int_eq(tq_config_set(cfg, "model", "mmap", no[i]), TQ_OK);
        ck_assert_int_eq(tq_config_get_bool(cfg, "model", "mmap", &b, &err), TQ_OK);
        ck_assert_int_eq(b, 0);
    }
    static const char *const bad[] = {"", "maybe", "TRUE ", "2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = 7;
        ck_assert_int_eq(tq_config_set(cfg, "model", "mmap", bad[i]), TQ_OK);
        ck_assert_int_eq(tq_config_get_bool(cfg, "model", "mmap", &b, &err), TQ_ERR_INVALID);
        assert_starts_with(err.message, "model.mmap: ");
        ck_assert_int_eq(b, 7);
    }
    tq_config_free(cfg);
}
END_TEST

START_TEST(overrides_replace_file_values) {
    char *path = data("good.ini");
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_int_eq(tq_config_load(cfg, path, &err), TQ_OK);
    ck_assert_int_eq(tq_config_set(cfg, "runtime", "threads", "8"), TQ_OK);
    ck_assert_int_eq(tq_config_set(cfg, "sampling", "temp", "0"), TQ_OK);
    ck_assert_int_eq(tq_config_set(cfg, "runtime", "extra", "x"), TQ_OK);
    ck_assert_str_eq(tq_config_get(cfg, "runtime", "threads"), "8");
    ck_assert_str_eq(tq_config_get(cfg, "sampling", "temp"), "0");
    ck_assert_str_eq(tq_config_get(cfg, "runtime", "extra"), "x");
    ck_assert_str_eq(tq_config_get(cfg, "runtime", "kv"), "turbo"); /* untouched */
    long long threads = 0;
    ck_assert_int_eq(tq_config_get_int(cfg, "runtime", "threads", 1, 1024, &threads, &err), TQ_OK);
    ck_assert_int_eq(threads, 8);
    /* An overridden value is no longer attributed to the file. */
    ck_assert_int_eq(tq_config_get_int(cfg, "runtime", "threads", 1, 2, &threads, &err),
                     TQ_ERR_RANGE);
    assert_starts_with(err.message, "runtime.threads: ");

    /* A second file replaces the values it names and only those. */
    char *second = tq_test_tmp_path("second.ini");
    write_file(second, "[runtime]\nkv = f16\n");
    ck_assert_int_eq(tq_config_load(cfg, second, &err), TQ_OK);
    ck_assert_str_eq(tq_config_get(cfg, "runtime", "kv"), "f16");
    ck_assert_str_eq(tq_config_get(cfg, "runtime", "threads"), "8");
    ck_assert_int_eq(tq_config_set(cfg, NULL, "k", "v"), TQ_ERR_INVALID);
    tq_config_free(cfg);
    free(second);
    free(path);
}
END_TEST

START_TEST(failed_load_changes_nothing) {
    char *path = data("bad_partial.ini");
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_int_eq(tq_config_set(cfg, "runtime", "threads", "3"), TQ_OK);
    ck_assert_int_eq(tq_config_load(cfg, path, &err), TQ_ERR_FORMAT);
    ck_assert_ptr_null(tq_config_get(cfg, "model", "path"));
    ck_assert_str_eq(tq_config_get(cfg, "runtime", "threads"), "3");
    tq_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(long_line_refused) {
    char *path = tq_test_tmp_path("long.ini");
    char text[1024];
    char value[600];
    memset(value, 'x', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    snprintf(text, sizeof text, "[model]\npath = /%s\n[runtime]\nthreads = 2\n", value);
    write_file(path, text);
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_int_eq(tq_config_load(cfg, path, &err), TQ_ERR_FORMAT);
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s:2: line longer than", path);
    assert_starts_with(err.message, prefix);
    tq_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(crlf_and_round_trip) {
    /* Random values through a generated file (with CRLF line ends) must
     * come back byte for byte. */
    static const char *const keys[][2] = {
        {"model", "path"}, {"runtime", "backend"}, {"runtime", "seed"},
        {"sampling", "top_k"}, {"plugin.x", "k1"}, {"plugin.some-name", "k_2"},
    };
    enum { N = sizeof keys / sizeof keys[0] };
    char values[N][40];
    srand(1234);
    char text[4096] = "";
    for (int i = 0; i < N; i++) {
        /* Printable, no ';' or blanks at the ends: those are syntax. */
        int len = 1 + rand() % 30;
        for (int j = 0; j < len; j++) values[i][j] = (char)('.' + rand() % ('z' - '.'));
        values[i][len] = '\0';
        for (int j = 0; j < len; j++)
            if (values[i][j] == ';') values[i][j] = '_';
        char line[256];
        snprintf(line, sizeof line, "[%s]\r\n%s = %s\r\n", keys[i][0], keys[i][1], values[i]);
        strcat(text, line);
    }
    char *path = tq_test_tmp_path("roundtrip.ini");
    write_file(path, text);
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_msg(tq_config_load(cfg, path, &err) == TQ_OK, "%s", err.message);
    for (int i = 0; i < N; i++) {
        const char *v = tq_config_get(cfg, keys[i][0], keys[i][1]);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v, values[i]);
    }
    tq_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(host_reads_plugin_section) {
    char *path = data("good.ini");
    tq_config *cfg = tq_config_new();
    tq_error err = {0};
    ck_assert_int_eq(tq_config_load(cfg, path, &err), TQ_OK);
    ck_assert_msg(tq_host_init(cfg, 2, &err) == TQ_OK, "%s", err.message);
    const tq_host *host = tq_host_get();
    ck_assert(TQ_HAS(host, tq_host, config_get));
    ck_assert_str_eq(host->config_get("turbo", "bits"), tq_config_get(cfg, "plugin.turbo", "bits"));
    ck_assert_str_eq(host->config_get("turbo", "greeting"),
                     tq_config_get(cfg, "plugin.turbo", "greeting"));
    ck_assert_ptr_null(host->config_get("turbo", "absent"));
    ck_assert_ptr_null(host->config_get("other", "bits"));
    /* Only [plugin.<name>] is visible to plugins, not the core's sections. */
    ck_assert_ptr_null(host->config_get("runtime", "threads"));
    ck_assert_int_eq(host->n_threads, 2);
    tq_host_shutdown();
    ck_assert_ptr_null(host->config_get("turbo", "bits"));
    tq_config_free(cfg);
    free(path);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, good_file);
    tcase_add_test(tc, missing_file);
    tcase_add_loop_test(tc, malformed_files, 0, (int)(sizeof malformed / sizeof malformed[0]));
    tcase_add_test(tc, range_error_names_line);
    tcase_add_test(tc, bad_numbers);
    tcase_add_test(tc, booleans);
    tcase_add_test(tc, overrides_replace_file_values);
    tcase_add_test(tc, failed_load_changes_nothing);
    tcase_add_test(tc, long_line_refused);
    tcase_add_test(tc, crlf_and_round_trip);
    tcase_add_test(tc, host_reads_plugin_section);
    suite_add_tcase(s, tc);
    return tq_test_run(s);
}
