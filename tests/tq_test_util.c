/* tq_test_util.c — helpers shared by the Check suites. */
#include "tq_test_util.h"

#include "tq_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

const char *tq_test_shared_dir(void) {
    static int reported;
    const char *d = getenv("TQ_SHARED_DIR");
    if (!d || !*d) d = "../shared";
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (!reported) {
            fprintf(stderr, "SKIP: shared test data not found at '%s' "
                            "(set TQ_SHARED_DIR or meson -Dshared_dir)\n", d);
            reported = 1;
        }
        return NULL;
    }
    return d;
}

char *tq_test_shared_path(const char *rel) {
    const char *d = tq_test_shared_dir();
    return d ? join(d, rel) : NULL;
}

char *tq_test_data_path(const char *rel) {
    const char *d = getenv("TQ_TEST_DATA");
    if (!d || !*d) d = "tests/data";
    return join(d, rel);
}

char *tq_test_tmp_path(const char *name) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/tqtest.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) return NULL;
    }
    return join(dir, name);
}

char *tq_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    rewind(f);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len) *len = (size_t)n;
    }
    return buf;
}

void tq_test_exec_wrapped(const char *exe, const char *const *args) {
    /* In a cross build the executable runs under the emulator that the
     * cross file names (TQ_EXE_WRAPPER, e.g. qemu-aarch64). */
    const char *wrapper = getenv("TQ_EXE_WRAPPER");
    const char *argv[64];
    int n = 0;
    if (wrapper && *wrapper) argv[n++] = wrapper;
    argv[n++] = exe;
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    execvp(argv[0], (char *const *)argv);
}

tq_test_exec_result tq_test_exec_tqrun(const char *const *args) {
    tq_test_exec_result r = {0};
    const char *exe = getenv("TQ_TQRUN");
    ck_assert_msg(exe != NULL, "TQ_TQRUN (path of tqrun) is not set");
    char *out_path = tq_test_tmp_path("stdout.txt"), *err_path = tq_test_tmp_path("stderr.txt");
    ck_assert(out_path && err_path);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen(err_path, "w", stderr)) _exit(120);
        tq_test_exec_wrapped(exe, args);
        _exit(121);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    r.out = tq_test_read_file(out_path, NULL);
    r.err = tq_test_read_file(err_path, NULL);
    free(out_path);
    free(err_path);
    return r;
}

void tq_test_exec_free(tq_test_exec_result *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int tq_test_have_arch_llama(const char *what) {
    const char *v = getenv("TQ_TEST_ARCH_LLAMA");
    if (v && strcmp(v, "0") == 0) {
        printf("%s: skipped: needs the llama plugin, which is not built\n", what);
        return 0;
    }
    return 1;
}

const char *tq_test_backend(void) {
    const char *b = getenv("TQ_TEST_BACKEND");
    return b && *b ? b : "ref";
}

void tq_test_expect_loaded(const tq_registry *reg) {
    const char *want = getenv("TQ_TEST_EXPECT_ID");
    if (!want || !*want) return;
    for (int i = 0; i < tq_registry_count(reg); i++) {
        const tq_plugin_record *rec = tq_registry_record(reg, i);
        if (rec->id && strcmp(rec->id, want) == 0) {
            ck_assert_msg(rec->status == TQ_PLUGIN_OK, "expected plugin %s (%s) is not loaded: %s", want,
                          rec->path, rec->reason);
            return;
        }
    }
    ck_abort_msg("expected plugin %s was not found (TQ_PLUGIN_PATH)", want);
}

int tq_test_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
