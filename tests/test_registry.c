/* test_registry.c — plugin discovery and loading against the fixture plugins
 * of tests/plugins (directory in $TQ_TEST_FIXTURES).
 *
 * Refused fixtures abort() in every function, so a registry that calls into
 * a file it should have refused kills the test. Good fixtures log "init
 * <variant>" / "deinit <variant>" through the host; the test captures the
 * log to see exactly which plugin code ran, in which order. */
/* realpath is XSI, not base POSIX. */
#define _XOPEN_SOURCE 700

#include "tq_test_util.h"

#include "plugins/fixture.h"
#include "tq_config.h"
#include "tq_cpu.h"
#include "tq_host.h"
#include "tq_log.h"
#include "tq_registry.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *g_fixtures;     /* $TQ_TEST_FIXTURES                        */
static char *g_real_plugin_path;   /* $TQ_PLUGIN_PATH as meson set it          */

/* ------------------------------------------------------------------------ */
/* Log capture                                                               */

static char g_log[16384];

static void capture(tq_log_level level, const char *who, const char *msg, void *user) {
    (void)level, (void)user;
    if (strncmp(who, "org.tqrun.test.", 15) != 0) return; /* plugins only */
    size_t used = strlen(g_log);
    snprintf(g_log + used, sizeof g_log - used, "%s|", msg);
}

static void log_reset(void) {
    g_log[0] = '\0';
    tq_log_set_level(TQ_LOG_DEBUG);
    tq_log_set_sink(capture, NULL);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* A host like the real one, claiming exactly `cpu` features. */
static tq_host fake_host(uint64_t cpu) {
    tq_host h = *tq_host_get();
    h.cpu_features = cpu;
    return h;
}

static const uint64_t ALL_CPU = ~TQ_CPU_IMPOSSIBLE;

static char *fixture_path(const char *stem) {
    char *p = malloc(PATH_MAX);
    snprintf(p, PATH_MAX, "%s/%s.so", g_fixtures, stem);
    return p;
}

static const tq_plugin_record *find_rec(const tq_registry *r, const char *path) {
    for (int i = 0; i < tq_registry_count(r); i++) {
        const tq_plugin_record *rec = tq_registry_record(r, i);
        if (strcmp(rec->path, path) == 0) return rec;
    }
    ck_abort_msg("no record for %s", path);
    return NULL;
}

/* Record of fixture `stem` in a registry that scanned the fixture dir. */
static const tq_plugin_record *fixture_rec(const tq_registry *r, const char *stem) {
    char *p = fixture_path(stem);
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(p, real));
    free(p);
    return find_rec(r, real);
}

static void assert_contains(const char *s, const char *part) {
    ck_assert_msg(strstr(s, part) != NULL, "'%s' does not contain '%s'", s, part);
}

static tq_registry *scan_dirs(const tq_host *host, const char *const *dirs) {
    tq_registry *r = tq_registry_new(host);
    ck_assert_ptr_nonnull(r);
    tq_error err = {0};
    for (int i = 0; dirs[i]; i++)
        ck_assert_msg(tq_registry_add_dir(r, dirs[i], 1, &err) == TQ_OK, "%s", err.message);
    ck_assert_msg(tq_registry_scan(r, &err) == TQ_OK, "%s", err.message);
    return r;
}

static tq_registry *scan_fixtures(const tq_host *host) {
    const char *dirs[] = {g_fixtures, NULL};
    return scan_dirs(host, dirs);
}

/* A fresh temporary directory holding symlinks `names[i]` -> fixture
 * `targets[i]`. */
static char *make_dir(const char *tag, const char *const *names, const char *const *targets) {
    char *dir = tq_test_tmp_path(tag);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    for (int i = 0; names && names[i]; i++) {
        char link[PATH_MAX];
        snprintf(link, sizeof link, "%s/%s.so", dir, names[i]);
        char *target = fixture_path(targets[i]);
        ck_assert_int_eq(symlink(target, link), 0);
        free(target);
    }
    char *real = realpath(dir, NULL);
    free(dir);
    return real;
}

/* ------------------------------------------------------------------------ */
/* One scan of the fixture directory: every verdict and its reason.         */

START_TEST(refusal_reasons) {
    log_reset();
    tq_host host = fake_host(ALL_CPU);
    tq_registry *r = scan_fixtures(&host);
    const tq_plugin_record *rec;
    char want[256];

    rec = fixture_rec(r, "tq-backend-badmajor");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_ABI_MISMATCH);
    snprintf(want, sizeof want, "plugin %d.%d, core %d.%d", 7, 1, TQ_ABI_MAJOR, TQ_ABI_MINOR);
    assert_contains(rec->reason, want);

    rec = fixture_rec(r, "tq-backend-badminor");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_ABI_MISMATCH);
    snprintf(want, sizeof want, "plugin %d.%d, core %d.%d", TQ_ABI_MAJOR, TQ_ABI_MINOR + 1,
             TQ_ABI_MAJOR, TQ_ABI_MINOR);
    assert_contains(rec->reason, want);

    rec = fixture_rec(r, "tq-backend-nocpu");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_CPU_MISSING);
    char missing[64];
    tq_cpu_features_str(TQ_CPU_IMPOSSIBLE, missing, sizeof missing);
    snprintf(want, sizeof want, "missing %s", missing);
    assert_contains(rec->reason, want);

    rec = fixture_rec(r, "tq-backend-noentry");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_NO_ENTRY);
    assert_contains(rec->reason, TQ_PLUGIN_ENTRY_SYMBOL);

    rec = fixture_rec(r, "tq-backend-small");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_BAD_SIZE);
    snprintf(want, sizeof want, "size %zu", offsetof(tq_plugin_entry, init));
    assert_contains(rec->reason, want);

    rec = fixture_rec(r, "tq-backend-badkind");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_BAD_ENTRY);
    assert_contains(rec->reason, "kind 9");

    rec = fixture_rec(r, "tq-backend-noname");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_BAD_ENTRY);
    assert_contains(rec->reason, "name");

    rec = fixture_rec(r, "tq-kv-failinit");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_INIT_FAILED);
    assert_contains(rec->reason, FX_FAIL_MESSAGE);

    rec = fixture_rec(r, "tq-backend-multi-future");
    ck_assert_int_eq(rec->status, TQ_PLUGIN_CPU_MISSING);

    /* Nothing refused keeps an entry or a state. */
    for (int i = 0; i < tq_registry_count(r); i++) {
        rec = tq_registry_record(r, i);
        if (rec->status != TQ_PLUGIN_OK) {
            ck_assert_msg(rec->entry == NULL && rec->state == NULL, "%s", rec->path);
            ck_assert_msg(rec->reason[0] != '\0', "%s has no reason", rec->path);
        } else {
            ck_assert_msg(rec->entry != NULL && rec->reason[0] == '\0', "%s", rec->path);
        }
    }
    tq_registry_free(r);
    tq_log_set_sink(NULL, NULL);
}
END_TEST

START_TEST(variants_and_duplicates) {
    log_reset();
    tq_host host = fake_host(ALL_CPU);
    tq_registry *r = scan_fixtures(&host);

    /* The CPU has avx2+fma: fast (20) beats base (10); future (30) was
     * refused for its CPU bits. */
    const tq_plugin_record *fast = fixture_rec(r, "tq-backend-multi-fast");
    const tq_plugin_record *base = fixture_rec(r, "tq-backend-multi-base");
    ck_assert_int_eq(fast->status, TQ_PLUGIN_OK);
    ck_assert_int_eq(base->status, TQ_PLUGIN_SHADOWED);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "shadowed by %s (priority %d)", fast->path, (int)fast->priority);
    ck_assert_str_eq(base->reason, want);
    void *state = NULL;
    ck_assert_ptr_nonnull(tq_registry_iface(r, TQ_PLUGIN_BACKEND, "multi", TQ_IFACE_BACKEND, &state));
    ck_assert_str_eq(((fx_state *)state)->variant, "fast");

    /* The preferred fallback variant's init failed, so the lower one runs. */
    const tq_plugin_record *hi = fixture_rec(r, "tq-kv-fallback-hi");
    const tq_plugin_record *lo = fixture_rec(r, "tq-kv-fallback-lo");
    ck_assert_int_eq(hi->status, TQ_PLUGIN_INIT_FAILED);
    ck_assert_int_eq(lo->status, TQ_PLUGIN_OK);
    ck_assert_ptr_nonnull(tq_registry_iface(r, TQ_PLUGIN_KV, "fallback", TQ_IFACE_KV, &state));
    ck_assert_str_eq(((fx_state *)state)->variant, "lo");

    /* goodcopy carries good's id under another name: the first file keeps it. */
    const tq_plugin_record *good = fixture_rec(r, "tq-kv-good");
    const tq_plugin_record *copy = fixture_rec(r, "tq-kv-goodcopy");
    ck_assert_int_eq(good->status, TQ_PLUGIN_OK);
    ck_assert_int_eq(copy->status, TQ_PLUGIN_DUPLICATE);
    assert_contains(copy->reason, good->id);
    assert_contains(copy->reason, good->path);
    ck_assert_ptr_null(tq_registry_iface(r, TQ_PLUGIN_KV, "goodcopy", TQ_IFACE_KV, NULL));

    /* Exactly these inits ran, and the duplicate was deinitialised. Scan
     * order is alphabetical within the directory. */
    ck_assert_str_eq(g_log, "init toy|init fast|init failinit|init hi|init lo|init good|"
                            "init goodcopy|deinit goodcopy|");
    tq_registry_free(r);
    /* Deinit in reverse order of init. */
    ck_assert_str_eq(g_log, "init toy|init fast|init failinit|init hi|init lo|init good|"
                            "init goodcopy|deinit goodcopy|deinit good|deinit lo|deinit fast|"
                            "deinit toy|");
    tq_log_set_sink(NULL, NULL);
}
END_TEST

START_TEST(cpu_features_pick_the_variant) {
    log_reset();
    tq_host host = fake_host(0);
    tq_registry *r = scan_fixtures(&host);
    const tq_plugin_record *fast = fixture_rec(r, "tq-backend-multi-fast");
    const tq_plugin_record *base = fixture_rec(r, "tq-backend-multi-base");
    ck_assert_int_eq(fast->status, TQ_PLUGIN_CPU_MISSING);
    ck_assert_int_eq(base->status, TQ_PLUGIN_OK);
    /* The reason names the missing features and what the host has. */
    char needs[64], want[160];
    tq_cpu_features_str(TQ_CPU_AVX2 | TQ_CPU_FMA, needs, sizeof needs);
    snprintf(want, sizeof want, "needs %s (missing %s), have none", needs, needs);
    assert_contains(fast->reason, want);
    void *state = NULL;
    ck_assert_ptr_nonnull(tq_registry_iface(r, TQ_PLUGIN_BACKEND, "multi", TQ_IFACE_BACKEND, &state));
    ck_assert_str_eq(((fx_state *)state)->variant, "base");
    assert_contains(g_log, "init base|");
    ck_assert_ptr_null(strstr(g_log, "init fast"));
    tq_registry_free(r);

    /* Only avx2 of the two: still refused, naming just fma as missing. */
    host = fake_host(TQ_CPU_AVX2);
    r = scan_fixtures(&host);
    fast = fixture_rec(r, "tq-backend-multi-fast");
    ck_assert_int_eq(fast->status, TQ_PLUGIN_CPU_MISSING);
    char fma[16];
    tq_cpu_features_str(TQ_CPU_FMA, fma, sizeof fma);
    snprintf(want, sizeof want, "(missing %s)", fma);
    assert_contains(fast->reason, want);
    tq_registry_free(r);
    tq_log_set_sink(NULL, NULL);
}
END_TEST

START_TEST(lookups_and_config) {
    log_reset();
    tq_config *cfg = tq_config_new();
    ck_assert_int_eq(tq_config_set(cfg, "plugin.good", "greeting", "hello"), TQ_OK);
    tq_error err = {0};
    ck_assert_int_eq(tq_host_init(cfg, 1, &err), TQ_OK);
    tq_registry *r = scan_fixtures(tq_host_get());

    void *state = NULL;
    const tq_kv_iface *kv = tq_registry_iface(r, TQ_PLUGIN_KV, "good", TQ_IFACE_KV, &state);
    ck_assert_ptr_nonnull(kv);
    ck_assert_uint_eq(kv->size, sizeof(tq_kv_iface));
    ck_assert_uint_eq(((fx_state *)state)->magic, FX_MAGIC);
    /* The plugin read [plugin.good] greeting through host->config_get. */
    ck_assert_str_eq(((fx_state *)state)->greeting, "hello");

    ck_assert_ptr_null(tq_registry_iface(r, TQ_PLUGIN_KV, "good", TQ_IFACE_BACKEND, NULL));
    ck_assert_ptr_null(tq_registry_iface(r, TQ_PLUGIN_BACKEND, "good", TQ_IFACE_KV, NULL));
    ck_assert_ptr_null(tq_registry_iface(r, TQ_PLUGIN_KV, "failinit", TQ_IFACE_KV, NULL));
    ck_assert_ptr_null(tq_registry_iface(r, TQ_PLUGIN_BACKEND, "nocpu", TQ_IFACE_BACKEND, NULL));

    state = NULL;
    const tq_arch_iface *arch = tq_registry_arch(r, "toy2", &state);
    ck_assert_ptr_nonnull(arch);
    ck_assert_ptr_nonnull(state);
    ck_assert_ptr_null(tq_registry_arch(r, "llama", NULL));

    tq_registry_free(r);
    tq_host_shutdown();
    tq_config_free(cfg);
    tq_log_set_sink(NULL, NULL);
}
END_TEST

/* A built-in entry: what the core registers for ref and f16. */
static int g_builtin_inits;
static tq_status builtin_init(const tq_host *host, void **state, tq_error *err) {
    (void)host, (void)err;
    g_builtin_inits++;
    *state = &g_builtin_inits;
    return TQ_OK;
}
static const void *builtin_iface(void *state, const char *id) {
    static const tq_kv_iface iface = {.size = sizeof(tq_kv_iface)};
    return state == &g_builtin_inits && strcmp(id, TQ_IFACE_KV) == 0 ? &iface : NULL;
}
static const tq_plugin_entry builtin_entry = {
    .size = sizeof(tq_plugin_entry), .abi_major = TQ_ABI_MAJOR, .abi_minor = TQ_ABI_MINOR,
    .kind = TQ_PLUGIN_KV, .id = "org.tqrun.test.builtin", .name = "good", .version = "0",
    .priority = 0, .init = builtin_init, .get_interface = builtin_iface};

START_TEST(builtins) {
    log_reset();
    g_builtin_inits = 0;
    tq_host host = fake_host(ALL_CPU);
    tq_registry *r = tq_registry_new(&host);
    tq_error err = {0};
    ck_assert_int_eq(tq_registry_add_builtin(r, &builtin_entry, &err), TQ_OK);
    ck_assert_int_eq(tq_registry_add_dir(r, g_fixtures, 1, &err), TQ_OK);
    ck_assert_int_eq(tq_registry_scan(r, &err), TQ_OK);

    /* Same kind, name and priority as tq-kv-good.so: the built-in came
     * first, so it wins, and the file's code never runs. */
    const tq_plugin_record *b = find_rec(r, "(built-in)");
    ck_assert_int_eq(b->status, TQ_PLUGIN_OK);
    ck_assert_int_eq(g_builtin_inits, 1);
    void *state = NULL;
    ck_assert_ptr_nonnull(tq_registry_iface(r, TQ_PLUGIN_KV, "good", TQ_IFACE_KV, &state));
    ck_assert_ptr_eq(state, &g_builtin_inits);
    const tq_plugin_record *file = fixture_rec(r, "tq-kv-good");
    ck_assert_int_eq(file->status, TQ_PLUGIN_SHADOWED);
    assert_contains(file->reason, "(built-in)");
    ck_assert_ptr_null(strstr(g_log, "init good|"));

    ck_assert_int_eq(tq_registry_add_builtin(r, &builtin_entry, &err), TQ_ERR_INVALID);
    ck_assert_int_eq(tq_registry_scan(r, &err), TQ_ERR_INVALID);
    tq_registry_free(r); /* no deinit: NULL is allowed for built-ins */
    tq_log_set_sink(NULL, NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Search path                                                               */

START_TEST(plugin_dir_must_exist) {
    tq_host host = fake_host(ALL_CPU);
    tq_registry *r = tq_registry_new(&host);
    tq_error err = {0};
    char *missing = tq_test_tmp_path("no-such-plugin-dir");
    ck_assert_int_eq(tq_registry_add_dir(r, missing, 1, &err), TQ_ERR_NOT_FOUND);
    assert_contains(err.message, missing);
    /* A file is not a directory either. */
    char *file = fixture_path("tq-kv-good");
    ck_assert_int_ne(tq_registry_add_dir(r, file, 1, &err), TQ_OK);
    assert_contains(err.message, file);
    /* Optional directories may be missing; --list-plugins says so. */
    ck_assert_int_eq(tq_registry_add_dir(r, missing, 0, &err), TQ_OK);
    ck_assert_int_eq(tq_registry_scan(r, &err), TQ_OK);
    ck_assert_int_eq(tq_registry_count(r), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    tq_registry_print(r, f);
    fclose(f);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s (given, missing)", missing);
    assert_contains(out, want);
    free(out);
    free(file);
    free(missing);
    tq_registry_free(r);
}
END_TEST

START_TEST(first_directory_wins_by_file_name) {
    /* dir b's tq-kv-good.so is really the bad-major fixture: it must be
     * reported as shadowed, never opened (it would read "ABI mismatch"). */
    const char *names[] = {"tq-kv-good", NULL};
    const char *ta[] = {"tq-kv-good"}, *tb[] = {"tq-backend-badmajor"};
    char *a = make_dir("shadow-a", names, ta);
    char *b = make_dir("shadow-b", names, tb);
    tq_host host = fake_host(ALL_CPU);
    const char *dirs[] = {a, b, NULL};
    tq_registry *r = scan_dirs(&host, dirs);
    char pa[PATH_MAX], pb[PATH_MAX];
    snprintf(pa, sizeof pa, "%s/tq-kv-good.so", a);
    snprintf(pb, sizeof pb, "%s/tq-kv-good.so", b);
    ck_assert_int_eq(find_rec(r, pa)->status, TQ_PLUGIN_OK);
    const tq_plugin_record *shadowed = find_rec(r, pb);
    ck_assert_int_eq(shadowed->status, TQ_PLUGIN_SHADOWED);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "shadowed by %s", pa);
    ck_assert_str_eq(shadowed->reason, want);
    tq_registry_free(r);

    /* The same directory given twice is searched once. */
    const char *twice[] = {a, a, NULL};
    r = scan_dirs(&host, twice);
    ck_assert_int_eq(tq_registry_count(r), 1);
    tq_registry_free(r);
    free(a);
    free(b);
}
END_TEST

START_TEST(dlopen_failure_reported) {
    /* Named like a plugin, but not a shared object. */
    char *dir = make_dir("junk", NULL, NULL);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tq-kv-junk.so", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not an ELF file\n", f);
    fclose(f);
    /* Files that do not look like plugins are not even candidates. */
    snprintf(path, sizeof path, "%s/libsomething.so", dir);
    fclose(fopen(path, "w"));
    snprintf(path, sizeof path, "%s/tq-kv-.so", dir);
    fclose(fopen(path, "w"));
    snprintf(path, sizeof path, "%s/tq-gpu-thing.so", dir);
    fclose(fopen(path, "w"));

    tq_host host = fake_host(ALL_CPU);
    const char *dirs[] = {dir, NULL};
    tq_registry *r = scan_dirs(&host, dirs);
    ck_assert_int_eq(tq_registry_count(r), 1);
    const tq_plugin_record *rec = tq_registry_record(r, 0);
    snprintf(path, sizeof path, "%s/tq-kv-junk.so", dir);
    ck_assert_str_eq(rec->path, path);
    ck_assert_int_eq(rec->status, TQ_PLUGIN_DLOPEN_FAILED);
    assert_contains(rec->reason, "dlopen failed: ");
    ck_assert_ptr_null(rec->name);
    tq_registry_free(r);
    free(dir);
}
END_TEST

/* Records whose path lies in `dir`. */
static int records_in(const tq_registry *r, const char *dir) {
    int n = 0;
    size_t len = strlen(dir);
    for (int i = 0; i < tq_registry_count(r); i++) {
        const char *p = tq_registry_record(r, i)->path;
        n += strncmp(p, dir, len) == 0 && p[len] == '/';
    }
    return n;
}

START_TEST(current_directory_never_searched) {
    const char *names[] = {"tq-kv-good", NULL};
    char *dir = make_dir("cwd", names, names);
    char old[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(old, sizeof old));
    ck_assert_int_eq(chdir(dir), 0);

    /* Unset, empty, only separators, "." and a relative name: none of them
     * may turn into the current directory. */
    static const char *const values[] = {NULL, "", ":", "::", ".", "./", "plugins:."};
    tq_host host = fake_host(ALL_CPU);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        if (values[i])
            setenv("TQ_PLUGIN_PATH", values[i], 1);
        else
            unsetenv("TQ_PLUGIN_PATH");
        tq_registry *r = tq_registry_new(&host);
        tq_registry_add_default_dirs(r);
        tq_error err = {0};
        ck_assert_int_eq(tq_registry_scan(r, &err), TQ_OK);
        ck_assert_msg(records_in(r, dir) == 0, "TQ_PLUGIN_PATH='%s' searched the cwd",
                      values[i] ? values[i] : "(unset)");
        ck_assert_ptr_null(tq_registry_iface(r, TQ_PLUGIN_KV, "good", TQ_IFACE_KV, NULL));
        tq_registry_free(r);
    }
    ck_assert_int_eq(chdir(old), 0);
    free(dir);
}
END_TEST

START_TEST(tq_plugin_path_honoured) {
    const char *names[] = {"tq-kv-good", NULL};
    char *dir = make_dir("envpath", names, names);
    char *missing = tq_test_tmp_path("env-missing");
    char value[2 * PATH_MAX + 8];
    snprintf(value, sizeof value, "%s::%s", missing, dir);
    setenv("TQ_PLUGIN_PATH", value, 1);

    tq_host host = fake_host(ALL_CPU);
    tq_registry *r = tq_registry_new(&host);
    tq_registry_add_default_dirs(r);
    tq_error err = {0};
    ck_assert_int_eq(tq_registry_scan(r, &err), TQ_OK);
    ck_assert_int_eq(records_in(r, dir), 1);
    ck_assert_ptr_nonnull(tq_registry_iface(r, TQ_PLUGIN_KV, "good", TQ_IFACE_KV, NULL));

    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    tq_registry_print(r, f);
    fclose(f);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s (TQ_PLUGIN_PATH, missing), %s (TQ_PLUGIN_PATH)", missing, dir);
    assert_contains(out, want);
    tq_registry_free(r);
    free(out);
    free(missing);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* --list-plugins output                                                     */

START_TEST(print_lists_everything) {
    log_reset();
    tq_host host = fake_host(TQ_CPU_AVX2 | TQ_CPU_FMA);
    tq_registry *r = scan_fixtures(&host);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    tq_registry_print(r, f);
    fclose(f);

    char features[128], want[PATH_MAX + 300];
    tq_cpu_features_str(host.cpu_features, features, sizeof features);
    snprintf(want, sizeof want, "cpu features: %s\n", features);
    ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "%s", out);
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(g_fixtures, real));
    snprintf(want, sizeof want, "\nsearch path: %s (given)\n", real);
    assert_contains(out, want);

    /* One line per record: kind, name, path, then "ok (id version)" or the
     * reason. */
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 2 + tq_registry_count(r));
    for (int i = 0; i < tq_registry_count(r); i++) {
        const tq_plugin_record *rec = tq_registry_record(r, i);
        /* The path column is followed by two blanks; a path inside another
         * line's reason ("shadowed by ...") is not. */
        char column[PATH_MAX + 4];
        snprintf(column, sizeof column, "%s  ", rec->path);
        char *at = strstr(out, column);
        ck_assert_msg(at != NULL, "no line for %s", rec->path);
        char *eol = strchr(at, '\n');
        *eol = '\0';
        if (rec->status == TQ_PLUGIN_OK) {
            snprintf(want, sizeof want, "ok   (%s %s)", rec->id, rec->version);
            assert_contains(at, want);
        } else {
            assert_contains(at, rec->reason);
        }
        /* The line starts with the kind, even for unreadable entries
         * (taken from the file name then). */
        char *bol = at;
        while (bol > out && bol[-1] != '\n') bol--;
        const char *base = strrchr(rec->path, '/') + 1;
        char kind[16];
        sscanf(base, "tq-%15[a-z]", kind);
        ck_assert_msg(strncmp(bol, kind, strlen(kind)) == 0, "line '%s'", bol);
        *eol = '\n';
    }
    free(out);
    tq_registry_free(r);
    tq_log_set_sink(NULL, NULL);
}
END_TEST

/* Every plugin built in this tree passes the loader's checks on this host
 * (it may lack the CPU features of a variant, nothing else). */
START_TEST(real_plugins_load) {
    if (!g_real_plugin_path || !*g_real_plugin_path) {
        printf("registry: no real plugins built; skipped\n");
        return;
    }
    setenv("TQ_PLUGIN_PATH", g_real_plugin_path, 1);
    tq_error err = {0};
    ck_assert_int_eq(tq_host_init(NULL, 1, &err), TQ_OK);
    tq_registry *r = tq_registry_new(tq_host_get());
    tq_registry_add_default_dirs(r);
    ck_assert_int_eq(tq_registry_scan(r, &err), TQ_OK);
    tq_registry_print(r, stdout);
    int ok = 0;
    for (int i = 0; i < tq_registry_count(r); i++) {
        const tq_plugin_record *rec = tq_registry_record(r, i);
        ok += rec->status == TQ_PLUGIN_OK;
        ck_assert_msg(rec->status == TQ_PLUGIN_OK || rec->status == TQ_PLUGIN_SHADOWED ||
                          rec->status == TQ_PLUGIN_CPU_MISSING,
                      "%s: %s", rec->path, rec->reason);
    }
    ck_assert_int_gt(ok, 0);
    tq_registry_free(r);
    tq_host_shutdown();
}
END_TEST

int main(void) {
    g_fixtures = getenv("TQ_TEST_FIXTURES");
    if (!g_fixtures || !*g_fixtures) {
        fprintf(stderr, "TQ_TEST_FIXTURES is not set (run through meson test)\n");
        return 1;
    }
    const char *real = getenv("TQ_PLUGIN_PATH");
    g_real_plugin_path = real ? strdup(real) : NULL;
    /* The fixture scans must not pick up the real plugins. */
    unsetenv("TQ_PLUGIN_PATH");

    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, refusal_reasons);
    tcase_add_test(tc, variants_and_duplicates);
    tcase_add_test(tc, cpu_features_pick_the_variant);
    tcase_add_test(tc, lookups_and_config);
    tcase_add_test(tc, builtins);
    tcase_add_test(tc, plugin_dir_must_exist);
    tcase_add_test(tc, first_directory_wins_by_file_name);
    tcase_add_test(tc, dlopen_failure_reported);
    tcase_add_test(tc, current_directory_never_searched);
    tcase_add_test(tc, tq_plugin_path_honoured);
    tcase_add_test(tc, print_lists_everything);
    tcase_add_test(tc, real_plugins_load);
    suite_add_tcase(s, tc);
    int rc = tq_test_run(s);
    free(g_real_plugin_path);
    return rc;
}
