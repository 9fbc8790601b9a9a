/* tq_golden.h — reading llama.cpp's reference outputs (../shared/golden/
 * llamacpp/NAME.txt and NAME.logits.f32) and checking a session against
 * them, per the rules of ../shared/golden/README.md:
 *  - prompt ids equal;
 *  - every stored logits row within 2e-3 x max|logit| of that row;
 *  - greedy ids equal, except at near ties (top-2 gap below 4e-3 x |top-1|
 *    in the golden `gen K` line), where the rest is checked teacher-forced.
 * Used by the arch suites (llama, phi3) with any backend chain. */
#ifndef TQ_GOLDEN_H
#define TQ_GOLDEN_H

#include <stdint.h>

typedef struct tq_golden {
    int32_t *prompt_ids;
    int32_t n_prompt;
    int32_t *greedy_ids;
    int32_t n_greedy;
    float *gen_gap;        /* per generated K: (top1 - top2) / |top1| of `gen K` */
    int32_t n_gen_gap;
    int32_t n_vocab;
    int32_t n_rows;
    char (*row_label)[16]; /* "p3", "g0", ...                                    */
    float *rows;           /* n_rows x n_vocab                                  */
} tq_golden;

/* Loads NAME.txt and NAME.logits.f32 from <shared>/golden/llamacpp/.
 * Returns 0, or 1 after printing why. */
int tq_golden_load(const char *shared_dir, const char *name, tq_golden *g);
void tq_golden_free(tq_golden *g);

/* Options of one comparison. */
typedef struct tq_golden_case {
    const char *golden;      /* NAME of the golden files                        */
    const char *model;       /* model file relative to <shared>/models, or absolute */
    const char *prompt;      /* prompt text, or NULL when prompt_file is used   */
    const char *prompt_file; /* relative to <shared>/golden/llamacpp            */
    int32_t n_ctx;
    const char *backends;    /* NULL: $TQ_TEST_BACKEND or "ref"                 */
} tq_golden_case;

/* Runs the case and checks it (ck_assert on failure). Returns 0 when it
 * did not run: the shared dir is missing (caller decides to skip), or
 * $TQ_GOLDEN_CASES (comma-separated golden names) is set and omits it;
 * 1 when it ran. With $TQ_TEST_EXPECT_ID set, fails unless that plugin is
 * loaded (tq_test_expect_loaded). */
int tq_golden_check(const tq_golden_case *c);

#endif
