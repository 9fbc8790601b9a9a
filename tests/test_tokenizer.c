/* test_tokenizer.c — the SPM tokenizer against llama.cpp.
 *
 * Shared data (skipped without it): every case of golden/tokenizer/cases.txt
 * for the three vocabularies that have a .out file, llama.cpp's own
 * test-tokenizer-0 vectors for the Llama-SPM and Phi-3 vocabularies, and the
 * prompt_ids of every golden/llamacpp/NAME.txt run (BOS + special parsing);
 * decode round trips of all those inputs; the perplexity text's token count
 * (59 chunks of 1024, from the golden README) and speed.
 *
 * Always run: tiny vocabularies assembled here byte by byte, whose expected
 * ids follow from the algorithm's definition (highest score first, ties to
 * the left, byte fallback, which tokens the partition splits out, the Phi-3
 * name rule), and load failures. */
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tq_gguf.h"
#include "tq_test_util.h"
#include "tq_tokenizer.h"

#define SEP "\n__ggml_vocab_test__\n"

/* ---- helpers --------------------------------------------------------------- */

typedef struct vocab {
    tq_gguf *g;
    tq_tokenizer *t;
} vocab;

static vocab open_vocab_path(const char *path) {
    vocab v = {0};
    tq_error err = {0};
    ck_assert_msg(tq_gguf_open(path, &v.g, &err) == TQ_OK, "%s", err.message);
    ck_assert_msg(tq_tokenizer_load(v.g, &v.t, &err) == TQ_OK, "%s", err.message);
    return v;
}

static vocab open_model(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    char *path = tq_test_shared_path(rel);
    ck_assert_ptr_nonnull(path);
    vocab v = open_vocab_path(path);
    free(path);
    return v;
}

static void close_vocab(vocab v) {
    tq_tokenizer_free(v.t);
    tq_gguf_close(v.g);
}

/* malloc'd ids of text; *n receives the count. */
static int32_t *tok(const tq_tokenizer *t, const char *s, size_t len, int add_special, int parse,
                    int32_t *n) {
    int32_t need = tq_tokenize(t, s, len, add_special, parse, NULL, 0);
    ck_assert_int_ge(need, 0);
    int32_t *ids = malloc(((size_t)need + 1) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(tq_tokenize(t, s, len, add_special, parse, ids, need), need);
    *n = need;
    return ids;
}

/* Splits buf[0..len) at SEP into *n pieces (pointers into buf, which is
 * modified: each piece gets a NUL). */
static char **split_cases(char *buf, size_t len, int *n, size_t **lens) {
    int cap = 64, k = 0;
    char **v = malloc((size_t)cap * sizeof *v);
    size_t *l = malloc((size_t)cap * sizeof *l);
    char *p = buf, *end = buf + len;
    for (;;) {
        char *q = strstr(p, SEP);
        if (k == cap) {
            cap *= 2;
            v = realloc(v, (size_t)cap * sizeof *v);
            l = realloc(l, (size_t)cap * sizeof *l);
        }
        v[k] = p;
        l[k] = (size_t)((q ? q : end) - p);
        k++;
        if (!q) break;
        *q = '\0';
        p = q + strlen(SEP);
    }
    *n = k;
    *lens = l;
    return v;
}

/* Ids on one line ("1 2 3", maybe with a leading space). */
static int parse_ids(const char *line, int32_t *ids, int max) {
    int n = 0;
    char *end;
    for (const char *p = line;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ck_assert_int_lt(n, max);
        ids[n++] = (int32_t)v;
        p = end;
    }
    return n;
}

static char *next_line(char **p) {
    char *s = *p;
    if (!s || !*s) return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = s + strlen(s);
    }
    return s;
}

static int ids_equal(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    printf("    %s:", what);
    for (int i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf(n > 40 ? " ...\n" : "\n");
}

/* Compares tokenize(input i) with line i of `out_rel`, for every input of
 * `inp_rel`; the count of inputs must equal the count of lines. Returns the
 * number of matches and prints a summary line. */
static int check_vectors(const char *model, const char *inp_rel, const char *out_rel,
                         int drop_trailing_empty, int *n_cases) {
    char *ip = tq_test_shared_path(inp_rel), *op = tq_test_shared_path(out_rel);
    size_t ilen;
    char *inp = tq_test_read_file(ip, &ilen), *out = tq_test_read_file(op, NULL);
    ck_assert_msg(inp && out, "cannot read %s or %s", ip, op);
    int n;
    size_t *lens;
    char **cases = split_cases(inp, ilen, &n, &lens);
    if (drop_trailing_empty && n > 0 && lens[n - 1] == 0) n--;

    vocab v = open_model(model);
    int32_t want[4096];
    char *cursor = out;
    int ok = 0, lines = 0;
    for (int i = 0; i < n; i++) {
        char *line = next_line(&cursor);
        if (!line) break;
        lines++;
        int nw = parse_ids(line, want, 4096);
        int32_t ng;
        int32_t *got = tok(v.t, cases[i], lens[i], 0, 0, &ng);
        if (ids_equal(got, ng, want, nw)) {
            ok++;
        } else {
            printf("  MISMATCH %s case %d: '%.60s'\n", model, i, cases[i]);
            print_ids("want", want, nw);
            print_ids("got ", got, ng);
        }
        free(got);
    }
    printf("%s %s: %d/%d cases match\n", model, out_rel, ok, n);
    ck_assert_int_eq(lines, n);
    close_vocab(v);
    free(cases);
    free(lens);
    free(inp);
    free(out);
    free(ip);
    free(op);
    *n_cases = n;
    return ok;
}

/* ---- golden/tokenizer ------------------------------------------------------ */

static const char *const case_models[] = {"tm30m-llama-f16", "ggml-vocab-phi-3",
                                          "ggml-vocab-llama-spm"};

START_TEST(golden_cases) {
    const char *model = case_models[_i];
    char out_rel[128];
    snprintf(out_rel, sizeof out_rel, "golden/tokenizer/cases.%s.out", model);
    int n;
    int ok = check_vectors(model, "golden/tokenizer/cases.txt", out_rel, 0, &n);
    ck_assert_int_eq(n, 30);
    ck_assert_int_eq(ok, n);
}
END_TEST

/* llama.cpp's test-tokenizer-0 vectors; Phi-3 extends the Llama-2 vocabulary
 * without changing these ids, so one .out serves both. */
static const char *const vocab_test_models[] = {"ggml-vocab-llama-spm", "ggml-vocab-phi-3"};

START_TEST(llamacpp_vocab_test) {
    int n;
    int ok = check_vectors(vocab_test_models[_i], "golden/tokenizer/llamacpp-vocab-test.inp",
                           "golden/tokenizer/llamacpp-vocab-test.out", 1, &n);
    ck_assert_int_eq(n, 46);
    ck_assert_int_eq(ok, n);
}
END_TEST

/* ---- golden/llamacpp prompt_ids ------------------------------------------- */

/* The prompt of a golden run, by the part of its name after the model. */
static char *prompt_text(const char *prompt, size_t *len) {
    static const struct {
        const char *name, *text;
    } fixed[] = {{"kernel", "The kernel scheduler"},
                 {"install", "To install the package, run"},
                 {"once", "Once upon a time"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (strcmp(prompt, fixed[i].name) == 0) {
            *len = strlen(fixed[i].text);
            return strdup(fixed[i].text);
        }
    }
    const char *file = strcmp(prompt, "mid") == 0        ? "golden/llamacpp/prompt_mid.txt"
                       : strcmp(prompt, "long2048") == 0 ? "golden/llamacpp/prompt_long.txt"
                                                         : NULL;
    ck_assert_msg(file != NULL, "unknown prompt '%s'", prompt);
    char *path = tq_test_shared_path(file);
    char *text = tq_test_read_file(path, len);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    free(path);
    return text;
}

START_TEST(golden_prompt_ids) {
    char *dir = tq_test_shared_path("golden/llamacpp");
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int checked = 0, ok = 0;
    static int32_t want[8192];
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t nl = strlen(name);
        if (nl < 5 || strcmp(name + nl - 4, ".txt") != 0 || strncmp(name, "prompt_", 7) == 0) continue;
        /* NAME = MODEL.PROMPT.txt */
        char model[128], prompt[64];
        const char *dot = strchr(name, '.');
        ck_assert_ptr_nonnull(dot);
        snprintf(model, sizeof model, "%.*s", (int)(dot - name), name);
        snprintf(prompt, sizeof prompt, "%.*s", (int)(name + nl - 4 - dot - 1), dot + 1);

        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        char *golden = tq_test_read_file(path, NULL);
        ck_assert_ptr_nonnull(golden);
        ck_assert_msg(strncmp(golden, "prompt_ids:", 11) == 0, "%s: no prompt_ids line", path);
        char *cursor = golden;
        int nw = parse_ids(next_line(&cursor) + 11, want, 8192);

        size_t len;
        char *text = prompt_text(prompt, &len);
        /* stories260K-phi3 has no llama.cpp run of its own: it must give
         * stories260K's ids (its phi3 name triggers the Phi-3 rule, whose
         * <|endoftext|> it lacks — llama.cpp refuses it for that). */
        const char *models[2] = {model, strcmp(model, "stories260K") == 0 ? "stories260K-phi3" : NULL};
        for (int m = 0; m < 2 && models[m]; m++) {
            vocab v = open_model(models[m]);
            int32_t ng;
            int32_t *got = tok(v.t, text, len, 1, 1, &ng);
            checked++;
            if (ids_equal(got, ng, want, nw)) {
                ok++;
            } else {
                printf("  MISMATCH %s with %s\n", name, models[m]);
                print_ids("want", want, nw);
                print_ids("got ", got, ng);
            }
            free(got);
            close_vocab(v);
        }
        free(text);
        free(golden);
    }
    closedir(d);
    free(dir);
    printf("golden/llamacpp prompt_ids: %d/%d (file, model) pairs match\n", ok, checked);
    ck_assert_int_ge(checked, 10);
    ck_assert_int_eq(ok, checked);
}
END_TEST

/* ---- decoding ------------------------------------------------------------- */

/* detokenize(tokenize(x)) == x for every input of both case files, with and
 * without special pieces shown: the space prefix added by tokenize is the
 * one space detokenize removes, byte tokens restore the bytes, and none of
 * these inputs contains a token the partition splits out. */
START_TEST(round_trips) {
    const char *model = case_models[_i];
    const char *files[] = {"golden/tokenizer/cases.txt", "golden/tokenizer/llamacpp-vocab-test.inp"};
    vocab v = open_model(model);
    int total = 0, ok = 0;
    for (int f = 0; f < 2; f++) {
        char *path = tq_test_shared_path(files[f]);
        size_t len;
        char *buf = tq_test_read_file(path, &len);
        ck_assert_ptr_nonnull(buf);
        int n;
        size_t *lens;
        char **cases = split_cases(buf, len, &n, &lens);
        if (f == 1 && lens[n - 1] == 0) n--;
        for (int i = 0; i < n; i++) {
            int32_t ni;
            int32_t *ids = tok(v.t, cases[i], lens[i], 0, 0, &ni);
            for (int special = 0; special <= 1; special++) {
                int32_t need = tq_detokenize(v.t, ids, ni, special, NULL, 0);
                char *out = malloc((size_t)need + 1);
                ck_assert_int_eq(tq_detokenize(v.t, ids, ni, special, out, need), need);
                total++;
                if ((size_t)need == lens[i] && memcmp(out, cases[i], lens[i]) == 0) ok++;
                else printf("  ROUND TRIP %s: '%.40s' -> '%.*s'\n", model, cases[i], (int)need, out);
                free(out);
            }
            free(ids);
        }
        free(cases);
        free(lens);
        free(buf);
        free(path);
    }
    printf("%s: %d/%d round trips exact\n", model, ok, total);
    ck_assert_int_eq(ok, total);
    close_vocab(v);
}
END_TEST

START_TEST(pieces) {
    vocab v = open_model(case_models[_i]);
    const tq_tokenizer *t = v.t;
    char buf[64];
    /* Byte tokens decode to their byte, with or without `special`. */
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = tq_tokenizer_find(t, name);
        ck_assert_int_ge(id, 0);
        for (int special = 0; special <= 1; special++) {
            ck_assert_int_eq(tq_token_to_piece(t, id, special, buf, sizeof buf), 1);
            ck_assert_int_eq((unsigned char)buf[0], b);
        }
    }
    /* Control tokens are hidden unless asked for. */
    int32_t bos = tq_tokenizer_bos(t);
    ck_assert_int_eq(tq_token_to_piece(t, bos, 0, buf, sizeof buf), 0);
    ck_assert_int_eq(tq_token_to_piece(t, bos, 1, buf, sizeof buf), 3);
    ck_assert(memcmp(buf, "<s>", 3) == 0);
    /* U+2581 prints as a space. */
    int32_t the = tq_tokenizer_find(t, "\xe2\x96\x81the");
    ck_assert_int_ge(the, 0);
    ck_assert_int_eq(tq_token_to_piece(t, the, 0, buf, sizeof buf), 4);
    ck_assert(memcmp(buf, " the", 4) == 0);
    /* Too small a buffer: the size is still reported, nothing is written. */
    buf[0] = 'X';
    ck_assert_int_eq(tq_token_to_piece(t, the, 0, buf, 2), 4);
    ck_assert_int_eq(buf[0], 'X');
    ck_assert_int_eq(tq_token_to_piece(t, -1, 1, buf, sizeof buf), 0);
    ck_assert_int_eq(tq_token_to_piece(t, tq_tokenizer_n_vocab(t), 1, buf, sizeof buf), 0);

    /* Two byte tokens make one UTF-8 character; the leading-space rule. */
    int32_t ids[3] = {tq_tokenizer_find(t, "<0xC3>"), tq_tokenizer_find(t, "<0xA9>"), the};
    ck_assert_int_eq(tq_detokenize(t, ids, 3, 0, buf, sizeof buf), 6);
    ck_assert(memcmp(buf, "\xc3\xa9 the", 6) == 0);
    ck_assert_int_eq(tq_detokenize(t, ids + 2, 1, 0, buf, sizeof buf), 3); /* "the" */
    ck_assert(memcmp(buf, "the", 3) == 0);
    /* llama.cpp (remove_special = false): a leading BOS takes the space
     * removal for itself, so the next piece keeps its space. */
    int32_t with_bos[2] = {bos, the};
    ck_assert_int_eq(tq_detokenize(t, with_bos, 2, 0, buf, sizeof buf), 4);
    ck_assert(memcmp(buf, " the", 4) == 0);
    ck_assert_int_eq(tq_detokenize(t, with_bos, 2, 1, buf, sizeof buf), 7);
    ck_assert(memcmp(buf, "<s> the", 7) == 0);
    /* Truncation: the size is reported, the prefix written. */
    memset(buf, 0, sizeof buf);
    ck_assert_int_eq(tq_detokenize(t, with_bos, 2, 1, buf, 2), 7);
    ck_assert(memcmp(buf, "<s", 2) == 0 && buf[2] == 0);
    close_vocab(v);
}
END_TEST

/* ---- special ids and EOG -------------------------------------------------- */

static int32_t key_id(const tq_gguf *g, const char *key) {
    uint32_t v;
    return tq_gguf_get_u32(g, key, &v, NULL) == TQ_OK ? (int32_t)v : -1;
}

/* Ids from the file's keys; EOG = eos plus the tokens llama.cpp knows by
 * text (§5.3), and nothing else among the control tokens. */
START_TEST(special_and_eog) {
    static const char *const models[] = {"tm30m-llama-f16", "tm30m-phi3-longrope-f16",
                                         "ggml-vocab-phi-3", "ggml-vocab-llama-spm", "stories260K"};
    vocab v = open_model(models[_i]);
    const tq_tokenizer *t = v.t;
    int32_t bos = key_id(v.g, "tokenizer.ggml.bos_token_id");
    int32_t eos = key_id(v.g, "tokenizer.ggml.eos_token_id");
    ck_assert_int_eq(tq_tokenizer_bos(t), bos);
    ck_assert_int_eq(tq_tokenizer_eos(t), eos);
    int add_bos = 1;
    tq_gguf_get_bool(v.g, "tokenizer.ggml.add_bos_token", &add_bos, NULL);
    ck_assert_int_eq(tq_tokenizer_add_bos(t), add_bos);
    ck_assert(tq_tokenizer_is_eog(t, eos));
    static const char *const eog_texts[] = {"</s>", "<|endoftext|>", "<|end|>"};
    int n_eog = 0;
    for (int32_t id = 0; id < tq_tokenizer_n_vocab(t); id++) n_eog += tq_tokenizer_is_eog(t, id);
    int expect = 0;
    for (int i = 0; i < 3; i++) {
        int32_t id = tq_tokenizer_find(t, eog_texts[i]);
        if (id >= 0) {
            ck_assert_msg(tq_tokenizer_is_eog(t, id), "%s should end generation", eog_texts[i]);
            expect += id != eos;
        }
    }
    ck_assert_int_eq(n_eog, expect + 1);
    ck_assert(!tq_tokenizer_is_eog(t, bos));
    ck_assert(!tq_tokenizer_is_eog(t, -1));
    ck_assert(!tq_tokenizer_is_eog(t, tq_tokenizer_n_vocab(t)));
    int32_t user = tq_tokenizer_find(t, "<|user|>");
    if (user >= 0) ck_assert(!tq_tokenizer_is_eog(t, user));
    ck_assert_int_eq(tq_tokenizer_find(t, "no such token, surely"), -1);
    close_vocab(v);
}
END_TEST

/* A chat turn (§4.8): the real Phi-3 vocab (general.name "Phi3") drops the
 * whitespace after each special token except <|endoftext|>/<s>/<unk>;
 * tm30m-phi3 (name "tm30m-longrope") keeps it, each piece of text after a
 * special token getting its own space prefix. */
START_TEST(phi3_chat_whitespace) {
    const char *chat = "<|user|>\nHi<|end|>\n<|assistant|>\n";
    int32_t n, na, nb;
    vocab v = open_model("ggml-vocab-phi-3");
    int32_t *ids = tok(v.t, chat, strlen(chat), 0, 1, &n);
    int32_t want[] = {tq_tokenizer_find(v.t, "<|user|>"), tq_tokenizer_find(v.t, "\xe2\x96\x81Hi"),
                      tq_tokenizer_find(v.t, "<|end|>"), tq_tokenizer_find(v.t, "<|assistant|>")};
    ck_assert(ids_equal(ids, n, want, 4));
    free(ids);
    /* <|endoftext|> keeps the whitespace after it. */
    ids = tok(v.t, "<|endoftext|> a", 15, 0, 1, &n);
    int32_t *a = tok(v.t, " a", 2, 0, 0, &na);
    ck_assert_int_eq(n, 1 + na);
    ck_assert_int_eq(ids[0], tq_tokenizer_find(v.t, "<|endoftext|>"));
    ck_assert(ids_equal(ids + 1, n - 1, a, na));
    free(ids);
    free(a);
    close_vocab(v);

    v = open_model("tm30m-phi3-longrope-f16");
    ids = tok(v.t, chat, strlen(chat), 0, 1, &n);
    a = tok(v.t, "\nHi", 3, 0, 0, &na);
    int32_t *b = tok(v.t, "\n", 1, 0, 0, &nb);
    int32_t user = tq_tokenizer_find(v.t, "<|user|>"), end = tq_tokenizer_find(v.t, "<|end|>"),
            asst = tq_tokenizer_find(v.t, "<|assistant|>");
    int32_t exp[64];
    int k = 0;
    exp[k++] = user;
    memcpy(exp + k, a, (size_t)na * sizeof *a), k += na;
    exp[k++] = end;
    memcpy(exp + k, b, (size_t)nb * sizeof *b), k += nb;
    exp[k++] = asst;
    memcpy(exp + k, b, (size_t)nb * sizeof *b), k += nb;
    ck_assert(ids_equal(ids, n, exp, k));
    free(ids);
    /* Without parse_special the markers are plain text. */
    ids = tok(v.t, chat, strlen(chat), 0, 0, &n);
    for (int i = 0; i < n; i++) ck_assert(ids[i] != user && ids[i] != end && ids[i] != asst);
    free(ids);
    free(a);
    free(b);
    close_vocab(v);
}
END_TEST

/* The perplexity text: llama-perplexity at -c 1024 made 59 chunks of it
 * (golden README), so tokenize(BOS + text) has 59*1024 .. 60*1024-1 ids. It
 * and two adversarial texts of the same size must tokenize fast. */
START_TEST(long_texts) {
#if defined(__SANITIZE_ADDRESS__)
    const double limit = 10.0;
#else
    const double limit = 1.0;
#endif
    char *path = tq_test_shared_path("text/techdocs-eval.txt");
    size_t len;
    char *text = tq_test_read_file(path, &len);
    ck_assert_ptr_nonnull(text);
    vocab v = open_model("tm30m-llama-f16");
    char *noise = malloc(len), *same = malloc(len);
    uint32_t x = 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1664525u + 1013904223u;
        noise[i] = (char)(x >> 24);
        same[i] = 'x';
    }
    const char *texts[] = {text, same, noise};
    const char *names[] = {"techdocs-eval.txt", "200 kB of 'x'", "200 kB of random bytes"};
    int32_t *ids = malloc((len + 2) * sizeof *ids); /* at most one id per byte, + BOS */
    for (int i = 0; i < 3; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int32_t n = tq_tokenize(v.t, texts[i], len, 1, 0, ids, (int32_t)len + 2);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_int_gt(n, 0);
        ck_assert_int_le(n, (int32_t)len + 2);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        printf("%s: %zu bytes -> %d tokens in %.3f s\n", names[i], len, n, s);
        ck_assert_msg(s < limit, "%s took %.3f s", names[i], s);
        if (i == 0) {
            ck_assert_int_eq(ids[0], tq_tokenizer_bos(v.t));
            ck_assert_int_eq(n / 1024, 59);
        }
        /* Decoding gives the text back — behind one space: the leading BOS
         * prints nothing but takes the leading-space removal, so the space
         * the prefix added stays (llama.cpp). Not for the random bytes: a
         * broken UTF-8 sequence there can swallow part of an escaped space,
         * whose bytes then come back as U+2581's, in llama.cpp as here. */
        if (i == 2) continue;
        int32_t need = tq_detokenize(v.t, ids, n, 0, NULL, 0);
        char *out = malloc((size_t)need);
        ck_assert_int_eq(tq_detokenize(v.t, ids, n, 0, out, need), need);
        ck_assert_msg((size_t)need == len + 1 && out[0] == ' ' && memcmp(out + 1, texts[i], len) == 0,
                      "%s does not decode back (%d bytes)", names[i], need);
        free(out);
    }
    free(ids);
    free(noise);
    free(same);
    close_vocab(v);
    free(text);
    free(path);
}
END_TEST

/* ---- tiny vocabularies, assembled here ------------------------------------ */

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void b_u32(bytes *b, uint32_t v) {
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    b_put(b, c, 4);
}
static void b_u64(bytes *b, uint64_t v) {
    b_u32(b, (uint32_t)v);
    b_u32(b, (uint32_t)(v >> 32));
}
static void b_str(bytes *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}

/* Key/values of a GGUF file with no tensors. */
typedef struct kvs {
    bytes b;
    uint64_t n;
} kvs;

static void kv_str(kvs *k, const char *key, const char *v) {
    b_str(&k->b, key);
    b_u32(&k->b, TQ_VAL_STRING);
    b_str(&k->b, v);
    k->n++;
}
static void kv_u32(kvs *k, const char *key, uint32_t v) {
    b_str(&k->b, key);
    b_u32(&k->b, TQ_VAL_U32);
    b_u32(&k->b, v);
    k->n++;
}
static void kv_bool(kvs *k, const char *key, int v) {
    b_str(&k->b, key);
    b_u32(&k->b, TQ_VAL_BOOL);
    unsigned char c = (unsigned char)(v != 0);
    b_put(&k->b, &c, 1);
    k->n++;
}
static void kv_strs(kvs *k, const char *key, char **v, int n) {
    b_str(&k->b, key);
    b_u32(&k->b, TQ_VAL_ARRAY);
    b_u32(&k->b, TQ_VAL_STRING);
    b_u64(&k->b, (uint64_t)n);
    for (int i = 0; i < n; i++) b_str(&k->b, v[i]);
    k->n++;
}
static void kv_nums(kvs *k, const char *key, tq_value_type type, const void *v, int n) {
    b_str(&k->b, key);
    b_u32(&k->b, TQ_VAL_ARRAY);
    b_u32(&k->b, type);
    b_u64(&k->b, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, (const char *)v + 4 * i, 4);
        b_u32(&k->b, u);
    }
    k->n++;
}

static char *write_gguf(const char *name, kvs *k) {
    bytes f = {0};
    b_put(&f, "GGUF", 4);
    b_u32(&f, 3);
    b_u64(&f, 0);
    b_u64(&f, k->n);
    b_put(&f, k->b.p, k->b.n);
    while (f.n % 32) b_put(&f, "", 1);
    char *path = tq_test_tmp_path(name);
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(f.p, 1, f.n, fp), f.n);
    fclose(fp);
    free(f.p);
    free(k->b.p);
    k->b = (bytes){0};
    k->n = 0;
    return path;
}

/* A small SPM vocabulary: <unk> <s> </s>, 256 byte tokens, then the extra
 * tokens below (type, score). Options vary per test. */
typedef struct extra {
    const char *text;
    int32_t type;
    float score;
} extra;

#define N_BASE 259
static const extra tiny_extras[] = {
    {"\xe2\x96\x81", 1, -1.0f}, /* 259 ▁ */
    {"a", 1, -2.0f},            /* 260 */
    {"b", 1, -2.0f},            /* 261 */
    {"c", 1, -2.0f},            /* 262 */
    {"aa", 1, -1.0f},           /* 263 */
    {"ab", 1, -3.0f},           /* 264 */
    {"bc", 1, -1.5f},           /* 265 */
    {"\xe2\x96\x81" "a", 1, -0.5f}, /* 266 ▁a */
    {"<tag>", 4, 0.0f},         /* 267 user-defined */
    {"<|user|>", 3, 0.0f},      /* 268 control */
    {"<|end|>", 3, 0.0f},       /* 269 control */
    {"x", 1, -2.0f},            /* 270 */
    {"y", 1, -2.0f},            /* 271 */
    {"z", 1, -2.0f},            /* 272 */
    {"xy", 1, -1.0f},           /* 273 */
    {"yz", 1, -2.5f},           /* 274 */
    {"xyz", 1, -0.1f},          /* 275 */
};
enum { SP = 259, A, B, C, AA, AB, BC, SP_A, TAG, USER, END, X, Y, Z, XY, YZ, XYZ, N_TINY };

typedef struct tiny_opts {
    const char *model;      /* tokenizer.ggml.model, NULL = absent */
    const char *name;       /* general.name, NULL = absent */
    int space_prefix;       /* -1 = key absent */
    int with_tokens;
    int dup_token;
    int short_scores;
    int no_byte_tokens;     /* byte tokens renamed: fallback to single chars */
    int cross_token;        /* add "a▁" (id N_TINY): a token spanning a word start */
} tiny_opts;

static char *tiny_vocab(const char *file, tiny_opts o) {
    static char names[N_TINY + 1][32];
    char *tokens[N_TINY + 1];
    float scores[N_TINY + 1];
    int32_t types[N_TINY + 1];
    int n_tok = N_TINY;
    if (o.cross_token) {
        snprintf(names[N_TINY], sizeof names[N_TINY], "a\xe2\x96\x81");
        tokens[N_TINY] = names[N_TINY];
        types[N_TINY] = 1;
        scores[N_TINY] = 0.0f;
        n_tok++;
    }
    const char *fixed[3] = {"<unk>", "<s>", "</s>"};
    const int32_t fixed_types[3] = {2, 3, 3};
    for (int i = 0; i < N_TINY; i++) {
        if (i < 3) {
            snprintf(names[i], sizeof names[i], "%s", fixed[i]);
            types[i] = fixed_types[i];
            scores[i] = 0;
        } else if (i < N_BASE) {
            if (o.no_byte_tokens && i - 3 >= 0x20 && i - 3 < 0x7f)
                snprintf(names[i], sizeof names[i], "%c", i - 3); /* plain one-char tokens */
            else
                snprintf(names[i], sizeof names[i], "<0x%02X>", i - 3);
            types[i] = o.no_byte_tokens && i - 3 >= 0x20 && i - 3 < 0x7f ? 1 : 6;
            scores[i] = 0;
        } else {
            const extra *e = &tiny_extras[i - N_BASE];
            snprintf(names[i], sizeof names[i], "%s", e->text);
            types[i] = e->type;
            scores[i] = e->score;
        }
        tokens[i] = names[i];
    }
    if (o.no_byte_tokens) {
        /* the one-char tokens a/b/c/x/y/z now clash with the extras: rename
         * those extras' bases out of the way */
        for (int i = N_BASE; i < N_TINY; i++)
            if (strlen(tokens[i]) == 1) snprintf(names[i], sizeof names[i], "[%s]", tiny_extras[i - N_BASE].text);
    }
    if (o.dup_token) tokens[N_TINY - 1] = tokens[N_TINY - 2];
    kvs k = {0};
    kv_str(&k, "general.architecture", "llama");
    if (o.name) kv_str(&k, "general.name", o.name);
    if (o.model) kv_str(&k, "tokenizer.ggml.model", o.model);
    if (o.with_tokens) kv_strs(&k, "tokenizer.ggml.tokens", tokens, n_tok);
    kv_nums(&k, "tokenizer.ggml.scores", TQ_VAL_F32, scores, o.short_scores ? n_tok - 1 : n_tok);
    kv_nums(&k, "tokenizer.ggml.token_type", TQ_VAL_I32, types, n_tok);
    kv_u32(&k, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(&k, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(&k, "tokenizer.ggml.padding_token_id", 0xffffffffu); /* "none", as converters write */
    if (o.space_prefix >= 0) kv_bool(&k, "tokenizer.ggml.add_space_prefix", o.space_prefix);
    return write_gguf(file, &k);
}

static tiny_opts tiny_default(void) {
    return (tiny_opts){.model = "llama", .name = "tiny", .space_prefix = 0, .with_tokens = 1};
}

static void expect_ids(const tq_tokenizer *t, const char *text, int add_special, int parse,
                       const int32_t *want, int n_want) {
    int32_t n;
    int32_t *got = tok(t, text, strlen(text), add_special, parse, &n);
    if (!ids_equal(got, n, want, n_want)) {
        printf("  tiny '%s':\n", text);
        print_ids("want", want, n_want);
        print_ids("got ", got, n);
    }
    ck_assert_msg(ids_equal(got, n, want, n_want), "tokenize('%s') differs", text);
    free(got);
}

#define EXPECT(t, text, add, parse, ...)                                                       \
    do {                                                                                       \
        const int32_t w_[] = {__VA_ARGS__};                                                    \
        expect_ids(t, text, add, parse, w_, (int)(sizeof w_ / sizeof w_[0]));                  \
    } while (0)
#define BYTE(b) (3 + (b))

START_TEST(tiny_merges) {
    char *path = tiny_vocab("tiny.gguf", tiny_default());
    vocab v = open_vocab_path(path);
    const tq_tokenizer *t = v.t;
    ck_assert_int_eq(tq_tokenizer_n_vocab(t), N_TINY);
    /* ab (-3) loses to bc (-1.5). */
    EXPECT(t, "abc", 0, 0, A, BC);
    /* xy (-1) beats yz (-2.5), then xy+z = xyz. */
    EXPECT(t, "xyz", 0, 0, XYZ);
    /* Equal scores: the leftmost pair merges first. */
    EXPECT(t, "aaa", 0, 0, AA, A);
    EXPECT(t, "aaaa", 0, 0, AA, AA);
    EXPECT(t, "aaaaa", 0, 0, AA, AA, A);
    /* Byte fallback for what no token covers; a stray lead byte too. */
    EXPECT(t, "a\xc3\xa9", 0, 0, A, BYTE(0xc3), BYTE(0xa9));
    EXPECT(t, "\xff", 0, 0, BYTE(0xff));
    EXPECT(t, "b\xe2\x96", 0, 0, B, BYTE(0xe2), BYTE(0x96)); /* truncated sequence */
    /* No space prefix in this vocab; spaces are ▁. */
    EXPECT(t, " a", 0, 0, SP_A);
    EXPECT(t, "a a", 0, 0, A, SP_A);
    /* BOS and EOS as the vocab says: add_bos defaults on, add_eos off. */
    EXPECT(t, "a", 1, 0, 1, A);
    int32_t none[1];
    ck_assert_int_eq(tq_tokenize(t, "", 0, 0, 0, none, 1), 0);
    ck_assert_int_eq(tq_tokenize(t, "", 0, 1, 0, none, 1), 1);
    ck_assert_int_eq(none[0], 1);
    /* A short buffer: the count is still the full one. */
    int32_t sentinel[3] = {-7, -7, -7};
    ck_assert_int_eq(tq_tokenize(t, "aaaaa", 5, 1, 0, sentinel, 2), 4);
    ck_assert_int_eq(sentinel[0], 1);
    ck_assert_int_eq(sentinel[1], AA);
    ck_assert_int_eq(sentinel[2], -7);
    close_vocab(v);
    free(path);
}
END_TEST

/* Merges may cross a word start when a token spans one: "a▁" (score 0)
 * beats "▁a" (-0.5) in "a▁a". */
START_TEST(tiny_cross_word_merge) {
    tiny_opts o = tiny_default();
    o.cross_token = 1;
    char *path = tiny_vocab("tiny_cross.gguf", o);
    vocab v = open_vocab_path(path);
    EXPECT(v.t, "a a", 0, 0, N_TINY, A);
    EXPECT(v.t, "b a", 0, 0, B, SP_A);
    /* a a▁ a a▁ a... : both "a▁" (0) outrank "aa" (-1) and "▁a" (-0.5). */
    EXPECT(v.t, "aa a a", 0, 0, A, N_TINY, N_TINY, A);
    close_vocab(v);
    free(path);
    /* The same texts without that token: words merge on their own. */
    path = tiny_vocab("tiny_nocross.gguf", tiny_default());
    v = open_vocab_path(path);
    EXPECT(v.t, "a a", 0, 0, A, SP_A);
    close_vocab(v);
    free(path);
}
END_TEST

START_TEST(tiny_partition) {
    char *path = tiny_vocab("tiny_part.gguf", tiny_default());
    vocab v = open_vocab_path(path);
    const tq_tokenizer *t = v.t;
    /* User-defined tokens always split; control ones only when parsing. */
    EXPECT(t, "a<tag>b", 0, 0, A, TAG, B);
    EXPECT(t, "a<|end|>", 0, 0, A, BYTE('<'), BYTE('|'), BYTE('e'), BYTE('n'), BYTE('d'), BYTE('|'),
           BYTE('>'));
    EXPECT(t, "a<|end|>", 0, 1, A, END);
    EXPECT(t, "<|user|><|end|>", 0, 1, USER, END);
    /* Whitespace around special tokens stays (no strip attributes here). */
    EXPECT(t, "<|user|>\na", 0, 1, USER, BYTE('\n'), A);
    EXPECT(t, "a <tag> b", 0, 0, A, SP, TAG, SP, B);
    /* <unk> is an unknown-type token: split out only when parsing. */
    EXPECT(t, "<unk>", 0, 1, 0);
    close_vocab(v);
    free(path);

    /* With a space prefix: at the start and after every special token. */
    tiny_opts o = tiny_default();
    o.space_prefix = -1; /* key absent: SPM default is on */
    path = tiny_vocab("tiny_prefix.gguf", o);
    v = open_vocab_path(path);
    t = v.t;
    EXPECT(t, "a", 0, 0, SP_A);
    EXPECT(t, "a<tag>a", 0, 0, SP_A, TAG, SP_A);
    EXPECT(t, "<tag>", 0, 0, TAG);
    EXPECT(t, "a", 1, 0, 1, SP_A);
    char buf[16];
    int32_t ids[] = {SP_A, TAG, SP_A};
    ck_assert_int_eq(tq_detokenize(t, ids, 3, 0, buf, sizeof buf), 8);
    ck_assert(memcmp(buf, "a<tag> a", 8) == 0);
    close_vocab(v);
    free(path);
}
END_TEST

/* general.name containing "phi-3"/"phi3" (any case) makes special tokens eat
 * the whitespace after them; "Phi 3.5" does not match. */
START_TEST(tiny_phi3_name_rule) {
    static const char *const names[] = {"Phi-3-mini-4k-instruct", "PHI3", "Phi 3.5 Mini Instruct"};
    for (int i = 0; i < 3; i++) {
        tiny_opts o = tiny_default();
        o.name = names[i];
        char file[32];
        snprintf(file, sizeof file, "tiny_phi%d.gguf", i);
        char *path = tiny_vocab(file, o);
        vocab v = open_vocab_path(path);
        if (i < 2) {
            EXPECT(v.t, "<|user|>\n a<|end|> \t\n", 0, 1, USER, A, END);
            EXPECT(v.t, "<tag>  b", 0, 0, TAG, B);
            /* <s> and <unk> keep the whitespace after them. */
            EXPECT(v.t, "<s> a", 0, 1, 1, SP_A);
        } else {
            EXPECT(v.t, "<|user|>\n a<|end|> ", 0, 1, USER, BYTE('\n'), SP_A, END, SP);
        }
        close_vocab(v);
        free(path);
    }
}
END_TEST

START_TEST(tiny_byte_fallback_to_chars) {
    tiny_opts o = tiny_default();
    o.no_byte_tokens = 1;
    char *path = tiny_vocab("tiny_chars.gguf", o);
    vocab v = open_vocab_path(path);
    /* Printable ASCII has no <0xHH> token here: the one-char token is used,
     * and it decodes as itself. */
    int32_t q = tq_tokenizer_find(v.t, "q");
    ck_assert_int_eq(q, 3 + 'q');
    EXPECT(v.t, "q\n", 0, 0, q, BYTE('\n'));
    char buf[4];
    ck_assert_int_eq(tq_token_to_piece(v.t, q, 0, buf, sizeof buf), 1);
    ck_assert_int_eq(buf[0], 'q');
    close_vocab(v);
    free(path);
}
END_TEST

/* EOG by text and by eos id; <s> is not EOG; CONTROL forced on </s>-like
 * texts even if typed otherwise is covered by the Phi-3 vocab above. */
START_TEST(tiny_eog) {
    char *path = tiny_vocab("tiny_eog.gguf", tiny_default());
    vocab v = open_vocab_path(path);
    ck_assert(tq_tokenizer_is_eog(v.t, 2));
    ck_assert(tq_tokenizer_is_eog(v.t, END));
    ck_assert(!tq_tokenizer_is_eog(v.t, 1));
    ck_assert(!tq_tokenizer_is_eog(v.t, USER));
    ck_assert(!tq_tokenizer_is_eog(v.t, A));
    close_vocab(v);
    free(path);
}
END_TEST

static void expect_load_failure(const char *file, tiny_opts o, tq_status code, const char *text) {
    char *path = tiny_vocab(file, o);
    tq_gguf *g;
    tq_error err = {0};
    ck_assert_msg(tq_gguf_open(path, &g, &err) == TQ_OK, "%s", err.message);
    tq_tokenizer *t = (tq_tokenizer *)&err; /* any non-NULL value: load must reset it */
    tq_status st = tq_tokenizer_load(g, &t, &err);
    ck_assert_int_eq(st, code);
    ck_assert_ptr_null(t);
    ck_assert_msg(strncmp(err.message, path, strlen(path)) == 0, "message '%s' does not name %s",
                  err.message, path);
    ck_assert_msg(strstr(err.message, text) != NULL, "message '%s' lacks '%s'", err.message, text);
    tq_gguf_close(g);
    free(path);
}

START_TEST(load_failures) {
    tiny_opts o = tiny_default();
    o.model = "gpt2";
    expect_load_failure("bad_gpt2.gguf", o, TQ_ERR_UNSUPPORTED, "tokenizer model 'gpt2' is not supported");
    o = tiny_default();
    o.model = NULL;
    expect_load_failure("bad_nomodel.gguf", o, TQ_ERR_FORMAT, "tokenizer.ggml.model");
    o = tiny_default();
    o.with_tokens = 0;
    expect_load_failure("bad_notokens.gguf", o, TQ_ERR_FORMAT, "tokenizer.ggml.tokens");
    o = tiny_default();
    o.dup_token = 1;
    expect_load_failure("bad_dup.gguf", o, TQ_ERR_FORMAT, "duplicate token");
    o = tiny_default();
    o.short_scores = 1;
    expect_load_failure("bad_scores.gguf", o, TQ_ERR_FORMAT, "tokenizer.ggml.scores");
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

int main(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tiny");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, tiny_merges);
    tcase_add_test(tc, tiny_cross_word_merge);
    tcase_add_test(tc, tiny_partition);
    tcase_add_test(tc, tiny_phi3_name_rule);
    tcase_add_test(tc, tiny_byte_fallback_to_chars);
    tcase_add_test(tc, tiny_eog);
    tcase_add_test(tc, load_failures);
    suite_add_tcase(s, tc);

    /* Without the shared data the tests above still run; the suite then
     * reports "skipped" only if they passed. */
    int have_shared = tq_test_shared_dir() != NULL;
    if (have_shared) {
        TCase *tg = tcase_create("golden");
        tcase_set_timeout(tg, 600);
        tcase_add_loop_test(tg, golden_cases, 0, 3);
        tcase_add_loop_test(tg, llamacpp_vocab_test, 0, 2);
        tcase_add_test(tg, golden_prompt_ids);
        tcase_add_loop_test(tg, round_trips, 0, 3);
        tcase_add_loop_test(tg, pieces, 0, 3);
        tcase_add_loop_test(tg, special_and_eog, 0, 5);
        tcase_add_test(tg, phi3_chat_whitespace);
        tcase_add_test(tg, long_texts);
        suite_add_tcase(s, tg);
    }
    int rc = tq_test_run(s);
    return rc != 0 ? rc : have_shared ? 0 : TQ_TEST_SKIP;
}
