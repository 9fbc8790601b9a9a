/* test_arch_llama.c — the arch-llama plugin against llama.cpp's outputs on
 * the trained test models (../shared/golden/llamacpp). Backend chain from
 * $TQ_TEST_BACKEND (default ref), so the CPU backends rerun the same checks. */
#include <stdio.h>
#include <stdlib.h>

#include "tq_golden.h"
#include "tq_test_util.h"

/* Prompts as the golden README lists them. */
static const tq_golden_case cases[] = {
    {"tm30m-llama-f16.kernel", "tm30m-llama-f16.gguf", "The kernel scheduler", NULL, 1024, NULL},
    {"tm30m-llama-f16.install", "tm30m-llama-f16.gguf", "To install the package, run", NULL, 1024, NULL},
    {"tm30m-llama-f16.mid", "tm30m-llama-f16.gguf", NULL, "prompt_mid.txt", 1024, NULL},
    {"tm30m-llama-f16.long2048", "tm30m-llama-f16.gguf", NULL, "prompt_long.txt", 2048, NULL},
    {"stories260K.once", "stories260K.gguf", "Once upon a time", NULL, 512, NULL},
};

START_TEST(golden_case) { tq_golden_check(&cases[_i]); }
END_TEST

int main(void) {
    if (!tq_test_shared_dir()) return TQ_TEST_SKIP;
    Suite *s = suite_create("arch_llama");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, golden_case, 0, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    return tq_test_run(s);
}
