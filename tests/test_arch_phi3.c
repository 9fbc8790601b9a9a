/* test_arch_phi3.c — the arch-phi3 plugin against llama.cpp's outputs on the
 * trained test models (../shared/golden/llamacpp), plus its chat format and
 * end-of-generation tokens. Backend chain from $TQ_TEST_BACKEND (default
 * ref), so the CPU backends rerun the same checks.
 *
 * The tokenizer cases of ggml-vocab-phi-3.gguf live in test_tokenizer.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_builtins.h"
#include "tq_golden.h"
#include "tq_host.h"
#include "tq_registry.h"
#include "tq_session.h"
#include "tq_test_util.h"
#include "tq_tokenizer.h"

/* Prompts as the golden README lists them. tm30m-phi3-longrope at context
 * 1024 uses its short factors (all 1) and must give the llama file's
 * outputs; long2048's 1472-token prompt, evaluated as one batch (the
 * session's default n_batch is 2048), reaches past the original context of
 * 1024 and so runs on the long factors. stories260K-phi3 has no llama.cpp
 * run of its own and must give stories260K's outputs. */
static const tq_golden_case cases[] = {
    {"tm30m-phi3-longrope-f16.kernel", "tm30m-phi3-longrope-f16.gguf", "The kernel scheduler", NULL, 1024, NULL},
    {"tm30m-phi3-longrope-f16.install", "tm30m-phi3-longrope-f16.gguf", "To install the package, run", NULL, 1024, NULL},
    {"tm30m-phi3-longrope-f16.mid", "tm30m-phi3-longrope-f16.gguf", NULL, "prompt_mid.txt", 1024, NULL},
    {"tm30m-phi3-longrope-f16.long2048", "tm30m-phi3-longrope-f16.gguf", NULL, "prompt_long.txt", 2048, NULL},
    {"stories260K.once", "stories260K-phi3.gguf", "Once upon a time", NULL, 512, NULL},
};

START_TEST(golden_case) { tq_golden_check(&cases[_i]); }
END_TEST

/* ---- chat format and end of generation ---------------------------------- */

typedef struct opened {
    tq_registry *reg;
    tq_session *s;
} opened;

static opened open_model(const char *rel) {
    opened o = {0};
    char *path = tq_test_shared_path(rel);
    ck_assert(path != NULL);
    tq_error err = {0};
    ck_assert_msg(tq_host_init(NULL, 2, &err) == TQ_OK, "%s", err.message);
    o.reg = tq_registry_new(tq_host_get());
    ck_assert(o.reg != NULL);
    ck_assert_msg(tq_builtins_register(o.reg, &err) == TQ_OK, "%s", err.message);
    tq_registry_add_default_dirs(o.reg);
    ck_assert_msg(tq_registry_scan(o.reg, &err) == TQ_OK, "%s", err.message);
    tq_session_params sp = {.model_path = path, .n_ctx = 256, .backends = tq_test_backend()};
    ck_assert_msg(tq_session_open(o.reg, &sp, &o.s, &err) == TQ_OK, "%s", err.message);
    free(path);
    return o;
}

static void close_model(opened *o) {
    tq_session_free(o->s);
    tq_registry_free(o->reg);
    tq_host_shutdown();
}

static int32_t find_id(const tq_tokenizer *tok, const char *text) {
    int32_t id = tq_tokenizer_find(tok, text);
    ck_assert_msg(id >= 0, "the vocabulary has no token %s", text);
    return id;
}

/* Appends the ids of `text` tokenized without BOS and without special-token
 * parsing: llama.cpp tokenizes the text between two special tokens exactly
 * like this (space prefix included, §5.1), so concatenating these pieces
 * with the marker ids must give the chat prompt's ids. */
static void push_text(const tq_tokenizer *tok, const char *text, int32_t *ids, int32_t *n, int32_t cap) {
    int32_t k = tq_tokenize(tok, text, strlen(text), 0, 0, ids + *n, cap - *n);
    ck_assert(k > 0 && *n + k <= cap);
    *n += k;
}

static void push_id(int32_t id, int32_t *ids, int32_t *n, int32_t cap) {
    ck_assert(*n < cap);
    ids[(*n)++] = id;
}

/* tm30m-phi3-longrope's tokenizer.chat_template (tqrun inspect shows its
 * start; the file's text is):
 *   {{ bos_token }}{% for message in messages %}
 *   {% if (message['role'] == 'system') %}{{'<|system|>' + '\n' + message['content'] + '<|end|>' + '\n'}}
 *   {% elif (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n'}}
 *   {% elif message['role'] == 'assistant' %}{{'<|assistant|>' + '\n' + message['content'] + '<|end|>' + '\n'}}
 *   {% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' + '\n' }}{% endif %}
 * rendered by hand for the conversation below. The leading {{ bos_token }}
 * is the BOS the tokenizer adds (tokenizer.ggml.add_bos_token = true), so
 * format_chat leaves it out, as llama.cpp's built-in Phi-3 format does. */
static const tq_chat_message chat_msgs[] = {
    {sizeof(tq_chat_message), "system", "You are a helpful assistant."},
    {sizeof(tq_chat_message), "user", "How do I list files?"},
};
static const char chat_expected[] =
    "<|system|>\nYou are a helpful assistant.<|end|>\n"
    "<|user|>\nHow do I list files?<|end|>\n"
    "<|assistant|>\n";

START_TEST(chat_template_text_and_ids) {
    if (!tq_test_shared_dir()) return;
    opened o = open_model("models/tm30m-phi3-longrope-f16.gguf");
    char buf[512];
    int64_t n = tq_session_format_chat(o.s, chat_msgs, 2, 1, buf, sizeof buf);
    ck_assert_int_eq(n, (int64_t)strlen(chat_expected));
    ck_assert_str_eq(buf, chat_expected);

    /* Too small a buffer: the full length is still reported, nothing past
     * the buffer is written. */
    char small[16];
    memset(small, 'X', sizeof small);
    ck_assert_int_eq(tq_session_format_chat(o.s, chat_msgs, 2, 1, small, 8), n);
    ck_assert(memcmp(small, chat_expected, 8) == 0 && small[8] == 'X');
    /* Without the generation prompt the text ends after the last message. */
    int64_t n2 = tq_session_format_chat(o.s, chat_msgs, 2, 0, buf, sizeof buf);
    ck_assert_int_eq(n2, n - (int64_t)strlen("<|assistant|>\n"));
    /* An unknown role is refused. */
    const tq_chat_message tool = {sizeof tool, "tool", "x"};
    ck_assert_int_eq(tq_session_format_chat(o.s, &tool, 1, 1, buf, sizeof buf), -1);

    /* Ids: BOS, then each marker as one id with the text between it. */
    const tq_tokenizer *tok = tq_session_tokenizer(o.s);
    int32_t got[256], want[256], n_want = 0;
    int32_t n_got = tq_tokenize(tok, chat_expected, strlen(chat_expected), 1, 1, got, 256);
    push_id(tq_tokenizer_bos(tok), want, &n_want, 256);
    push_id(find_id(tok, "<|system|>"), want, &n_want, 256);
    push_text(tok, "\nYou are a helpful assistant.", want, &n_want, 256);
    push_id(find_id(tok, "<|end|>"), want, &n_want, 256);
    push_text(tok, "\n", want, &n_want, 256);
    push_id(find_id(tok, "<|user|>"), want, &n_want, 256);
    push_text(tok, "\nHow do I list files?", want, &n_want, 256);
    push_id(find_id(tok, "<|end|>"), want, &n_want, 256);
    push_text(tok, "\n", want, &n_want, 256);
    push_id(find_id(tok, "<|assistant|>"), want, &n_want, 256);
    push_text(tok, "\n", want, &n_want, 256);
    ck_assert_int_eq(n_got, n_want);
    for (int32_t i = 0; i < n_want; i++)
        ck_assert_msg(got[i] == want[i], "chat id %d is %d, expected %d", i, got[i], want[i]);
    close_model(&o);
}
END_TEST

START_TEST(end_of_generation_tokens) {
    if (!tq_test_shared_dir()) return;
    opened o = open_model("models/tm30m-phi3-longrope-f16.gguf");
    const tq_tokenizer *tok = tq_session_tokenizer(o.s);
    const int32_t end = find_id(tok, "<|end|>"), eot = find_id(tok, "<|endoftext|>");
    /* The plugin's own list names both (found by text, not by number). */
    const tq_model_info *info = tq_session_info(o.s);
    int seen_end = 0, seen_eot = 0;
    for (const int32_t *e = info->eog_tokens; e && *e >= 0; e++) {
        seen_end |= *e == end;
        seen_eot |= *e == eot;
    }
    ck_assert(seen_end && seen_eot);
    ck_assert(tq_session_is_eog(o.s, end));
    ck_assert(tq_session_is_eog(o.s, eot));
    ck_assert(tq_session_is_eog(o.s, tq_tokenizer_eos(tok)));
    ck_assert(!tq_session_is_eog(o.s, find_id(tok, "<|user|>")));
    ck_assert(!tq_session_is_eog(o.s, find_id(tok, "<|assistant|>")));
    close_model(&o);
}
END_TEST

START_TEST(no_chat_format_without_chat_tokens) {
    /* stories260K-phi3's 512-token vocab has no <|user|>/<|end|>. */
    if (!tq_test_shared_dir()) return;
    opened o = open_model("models/stories260K-phi3.gguf");
    char buf[256];
    ck_assert_int_eq(tq_session_format_chat(o.s, chat_msgs, 2, 1, buf, sizeof buf), -1);
    close_model(&o);
}
END_TEST

int main(void) {
    if (!tq_test_shared_dir()) return TQ_TEST_SKIP;
    Suite *s = suite_create("arch_phi3");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, golden_case, 0, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    TCase *chat = tcase_create("chat");
    tcase_set_timeout(chat, 120);
    tcase_add_test(chat, chat_template_text_and_ids);
    tcase_add_test(chat, end_of_generation_tokens);
    tcase_add_test(chat, no_chat_format_without_chat_tokens);
    suite_add_tcase(s, chat);
    return tq_test_run(s);
}
