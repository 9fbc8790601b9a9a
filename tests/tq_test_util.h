/* tq_test_util.h — helpers shared by the Check suites. */
#ifndef TQ_TEST_UTIL_H
#define TQ_TEST_UTIL_H

#include <check.h>

/* Exit status meson treats as "skipped". */
#define TQ_TEST_SKIP 77

/* Directory of the shared models and golden data: $TQ_SHARED_DIR (set by
 * meson from -Dshared_dir, default ../shared). NULL, after printing one
 * line saying so, when it does not exist. */
const char *tq_test_shared_dir(void);
/* malloc'd "<shared>/<rel>", or NULL when the shared dir is missing. */
char *tq_test_shared_path(const char *rel);
/* malloc'd "<tests/data>/<rel>" (the committed fixtures). */
char *tq_test_data_path(const char *rel);
/* malloc'd path of a fresh file name in a temporary directory. */
char *tq_test_tmp_path(const char *name);

/* Reads a whole file (NUL-terminated); *len may be NULL. NULL on failure. */
char *tq_test_read_file(const char *path, size_t *len);

/* Result of running a program: exit code (or -signal) and its captured
 * stdout and stderr (malloc'd, NUL-terminated). */
typedef struct tq_test_exec_result {
    int status;
    char *out, *err;
} tq_test_exec_result;

/* In a forked child: replaces the process with exe and args (NULL-
 * terminated, without argv[0]), under $TQ_EXE_WRAPPER when it is set (a
 * cross build's emulator). Returns only when the exec failed. */
void tq_test_exec_wrapped(const char *exe, const char *const *args);

/* Runs $TQ_TQRUN (the tqrun executable meson passes in) with args
 * (NULL-terminated, without argv[0]) and captures its output. */
tq_test_exec_result tq_test_exec_tqrun(const char *const *args);
void tq_test_exec_free(tq_test_exec_result *r);

/* 1 when the llama arch plugin is built ($TQ_TEST_ARCH_LLAMA, set by meson
 * from -Darch_llama). Otherwise prints "<what>: skipped: ..." and returns 0,
 * for checks that run a llama model (stories260K, generated models). */
int tq_test_have_arch_llama(const char *what);

/* Backend chain the model-level suites use: $TQ_TEST_BACKEND, or "ref"
 * (the oracle; without a chain the runtime would pick every loaded backend). */
const char *tq_test_backend(void);

/* When $TQ_TEST_EXPECT_ID names a plugin id (e.g.
 * "org.tqrun.backend.neon.dotprod"), asserts that the registry loaded it:
 * a run meant for one variant of a backend (a cross build forcing the
 * emulated CPU) then fails instead of silently testing another. */
struct tq_registry;
void tq_test_expect_loaded(const struct tq_registry *reg);

/* Runs the suite, returns 0 if all passed, 1 otherwise. */
int tq_test_run(Suite *s);

#endif
