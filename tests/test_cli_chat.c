/* test_cli_chat.c — `tqrun --chat` / `-sys`: the prompt tqrun evaluates is
 * the conversation in the model's chat format, tokenized with special-token
 * parsing; a model without a chat format is refused with one clear error.
 * Uses the Phi-3 test models (the llama ones have no chat format). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_gguf.h"
#include "tq_test_util.h"
#include "tq_tokenizer.h"

/* The text tm30m-phi3-longrope's chat template renders for the conversation
 * below (derived by hand in test_arch_phi3.c); BOS comes from the tokenizer. */
static const char expected_text[] =
    "<|system|>\nYou are a helpful assistant.<|end|>\n"
    "<|user|>\nHow do I list files?<|end|>\n"
    "<|assistant|>\n";

/* Parses the ids of the "prompt_ids:" line of tqrun --ids output. */
static int32_t parse_prompt_ids(const char *out, int32_t *ids, int32_t cap) {
    const char *p = strstr(out, "prompt_ids:");
    ck_assert_msg(p != NULL, "no prompt_ids line in: %s", out);
    p += 11;
    int32_t n = 0;
    char *end;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p || n == cap) break;
        ids[n++] = (int32_t)v;
        p = end;
    }
    return n;
}

START_TEST(chat_prompt_ids) {
    if (!tq_test_shared_dir()) return;
    char *model = tq_test_shared_path("models/tm30m-phi3-longrope-f16.gguf");
    /* -p with an escape, to show the user text goes through the same
     * processing as a plain prompt before it is formatted. */
    const char *args[] = {"-m", model, "-c", "128", "--chat", "-sys", "You are a helpful assistant.",
                          "-p", "How do I\\x20list files?", "--ids", "-n", "1", "--temp", "0", NULL};
    tq_test_exec_result r = tq_test_exec_tqrun(args);
    ck_assert_msg(r.status == 0, "tqrun failed (%d): %s", r.status, r.err);
    int32_t got[256];
    int32_t n_got = parse_prompt_ids(r.out, got, 256);

    tq_gguf *g = NULL;
    tq_tokenizer *tok = NULL;
    tq_error err = {0};
    ck_assert_msg(tq_gguf_open(model, &g, &err) == TQ_OK, "%s", err.message);
    ck_assert_msg(tq_tokenizer_load(g, &tok, &err) == TQ_OK, "%s", err.message);
    int32_t want[256];
    int32_t n_want = tq_tokenize(tok, expected_text, strlen(expected_text), 1, 1, want, 256);
    ck_assert_int_eq(n_got, n_want);
    for (int32_t i = 0; i < n_want; i++)
        ck_assert_msg(got[i] == want[i], "prompt id %d is %d, expected %d", i, got[i], want[i]);
    /* BOS first, then every marker as one id, as often as the text has it. */
    ck_assert_int_eq(got[0], tq_tokenizer_bos(tok));
    static const struct { const char *text; int count; } markers[] = {
        {"<|system|>", 1}, {"<|user|>", 1}, {"<|end|>", 2}, {"<|assistant|>", 1}};
    for (size_t m = 0; m < sizeof markers / sizeof markers[0]; m++) {
        const int32_t id = tq_tokenizer_find(tok, markers[m].text);
        int count = 0;
        for (int32_t i = 0; i < n_got; i++) count += got[i] == id;
        ck_assert_msg(id >= 0 && count == markers[m].count, "%s: id %d seen %d times", markers[m].text,
                      id, count);
    }
    tq_tokenizer_free(tok);
    tq_gguf_close(g);
    tq_test_exec_free(&r);
    free(model);
}
END_TEST

START_TEST(no_chat_format_is_an_error) {
    if (!tq_test_shared_dir()) return;
    char *model = tq_test_shared_path("models/stories260K-phi3.gguf");
    const char *const runs[2][8] = {
        {"-m", model, "--chat", "-p", "Once", NULL},
        {"-m", model, "-sys", "Be brief.", "-p", "Once", NULL},
    };
    for (int i = 0; i < 2; i++) {
        tq_test_exec_result r = tq_test_exec_tqrun(runs[i]);
        ck_assert_msg(r.status > 0, "exit status %d", r.status);
        ck_assert_msg(r.out[0] == 0, "stdout not empty: %s", r.out);
        ck_assert_msg(strncmp(r.err, "tqrun: error: ", 14) == 0 && strstr(r.err, "no chat format") &&
                          strstr(r.err, model) && strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
                      "stderr: %s", r.err);
        tq_test_exec_free(&r);
    }
    free(model);
}
END_TEST

START_TEST(help_lists_chat_flags) {
    const char *args[] = {"--help", NULL};
    tq_test_exec_result r = tq_test_exec_tqrun(args);
    ck_assert_int_eq(r.status, 0);
    ck_assert(strstr(r.out, "--chat") && strstr(r.out, "-sys, --system-prompt"));
    tq_test_exec_free(&r);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli_chat");
    TCase *tc = tcase_create("chat");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, chat_prompt_ids);
    tcase_add_test(tc, no_chat_format_is_an_error);
    tcase_add_test(tc, help_lists_chat_flags);
    suite_add_tcase(s, tc);
    return tq_test_run(s);
}
