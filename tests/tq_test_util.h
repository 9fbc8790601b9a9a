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

/* Runs the suite, returns 0 if all passed, 1 otherwise. */
int tq_test_run(Suite *s);

#endif
