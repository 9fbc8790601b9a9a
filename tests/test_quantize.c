/* test_quantize.c — `tqrun quantize` and the model generator (tq-gen-model),
 * run as programs on models they derive at run time.
 *
 * Quantize: per file type, every tensor's type follows llama.cpp's mix
 * rules (expected types below are worked out by hand from
 * llama_tensor_get_type for the model shapes used), dequantized weights are
 * close to the originals within a per-type bound, metadata is copied with
 * general.file_type / quantization_version set, and the output does not
 * depend on the thread count. Errors: unknown type, requantizing without
 * --allow-requantize, shapes with no fallback type.
 * Generator: shapes and types as asked, deterministic, and the model loads
 * in tqrun and generates tokens. Byte equality with llama-quantize's output
 * needs llama.cpp and lives in bench/compare_llamacpp.sh. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tq_gguf.h"
#include "tq_test_util.h"
#include "tq_types.h"

/* Runs $TQ_GEN_MODEL with args; returns its exit status (-1: could not
 * run). No Check macros: main() calls it too, outside any test. */
static int run_gen(const char *const *args) {
    const char *exe = getenv("TQ_GEN_MODEL");
    if (!exe) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(120);
        tq_test_exec_wrapped(exe, args);
        _exit(121);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A generated f32 llama model: 8 layers (so the layer rules have a
 * pattern), rows of 256 (every K type fits), vocabulary synthesized. */
static char *gen_model_path(const char *name, const char *type, const char *threads, int *status) {
    char *path = tq_test_tmp_path(name);
    const char *args[] = {"--preset", "tiny", "--layers", "8", "--dim", "256", "--heads", "4",
                          "--kv-heads", "2", "--ffn", "512", "--vocab", "512",
                          "--no-vocab-file", "--type", type, "-t", threads, "-o", path, NULL};
    *status = run_gen(args);
    return path;
}

static char *gen_model(const char *name, const char *type, const char *threads) {
    int st;
    char *path = gen_model_path(name, type, threads, &st);
    ck_assert_msg(st == 0, "tq-gen-model failed (%d)", st);
    return path;
}

static tq_test_exec_result quantize(const char *in, const char *out, const char *type,
                                    const char *threads, int allow) {
    const char *args[8];
    int n = 0;
    args[n++] = "quantize";
    if (allow) args[n++] = "--allow-requantize";
    args[n++] = in;
    args[n++] = out;
    args[n++] = type;
    args[n++] = threads;
    args[n] = NULL;
    return tq_test_exec_tqrun(args);
}

static tq_gguf *open_ok(const char *path) {
    tq_gguf *g = NULL;
    tq_error err = {0};
    ck_assert_msg(tq_gguf_open(path, &g, &err) == TQ_OK, "%s", err.message);
    return g;
}

static uint32_t get_u32(const tq_gguf *g, const char *key) {
    uint32_t v = 0;
    tq_error err;
    ck_assert_msg(tq_gguf_get_u32(g, key, &v, &err) == TQ_OK, "%s", key);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Expected mix for the 8-layer model (n_head 4, n_kv 2: n_gqa 2).          */

typedef struct mix_case {
    const char *ftype;
    uint32_t ftype_num;
    tq_type base;        /* most 2-D tensors                               */
    tq_type output;      /* output.weight                                  */
    tq_type attn_v[8];   /* per layer                                      */
    tq_type ffn_down[8];
    tq_type attn_output;
    double rel_rms;      /* bound on rms(error) / rms(weights), base type  */
} mix_case;

#define X8(t) {t, t, t, t, t, t, t, t}
enum { F32 = TQ_TYPE_F32, F16 = TQ_TYPE_F16, BF16 = TQ_TYPE_BF16, Q40 = TQ_TYPE_Q4_0,
       Q41 = TQ_TYPE_Q4_1, Q50 = TQ_TYPE_Q5_0, Q51 = TQ_TYPE_Q5_1, Q80 = TQ_TYPE_Q8_0,
       Q2K = TQ_TYPE_Q2_K, Q3K = TQ_TYPE_Q3_K, Q4K = TQ_TYPE_Q4_K, Q5K = TQ_TYPE_Q5_K,
       Q6K = TQ_TYPE_Q6_K };

/* use_more_bits(i, 8): i < 1 || i >= 7 || (i - 1) % 3 == 2  ->  0, 3, 6, 7 */
static const mix_case mixes[] = {
    {"Q8_0", 7, Q80, Q80, X8(Q80), X8(Q80), Q80, 0.01},
    {"Q4_0", 2, Q40, Q6K, X8(Q40), X8(Q40), Q40, 0.15},
    {"Q4_1", 3, Q41, Q6K, X8(Q41), X8(Q41), Q41, 0.12},
    {"Q5_0", 8, Q50, Q6K, X8(Q50), X8(Q50), Q50, 0.08},
    {"Q5_1", 9, Q51, Q6K, X8(Q51), X8(Q51), Q51, 0.06},
    {"Q6_K", 18, Q6K, Q6K, X8(Q6K), X8(Q6K), Q6K, 0.04},
    {"F16", 1, F16, F16, X8(F16), X8(F16), F16, 0.001},
    {"BF16", 32, BF16, BF16, X8(BF16), X8(BF16), BF16, 0.01},
    {"q4_k_m", 15, Q4K, Q6K, {Q6K, Q4K, Q4K, Q6K, Q4K, Q4K, Q6K, Q6K},
     {Q6K, Q4K, Q4K, Q6K, Q4K, Q4K, Q6K, Q6K}, Q4K, 0.12},
    {"Q5_K_M", 17, Q5K, Q6K, {Q6K, Q5K, Q5K, Q6K, Q5K, Q5K, Q6K, Q6K},
     {Q6K, Q5K, Q5K, Q6K, Q5K, Q5K, Q6K, Q6K}, Q5K, 0.06},
    /* attn_v: i_attention_wv < 4; ffn_down: i < n/8 = 1 */
    {"Q4_K_S", 14, Q4K, Q6K, {Q5K, Q5K, Q5K, Q5K, Q4K, Q4K, Q4K, Q4K},
     {Q5K, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K}, Q4K, 0.12},
    {"Q5_K_S", 16, Q5K, Q6K, X8(Q5K), X8(Q5K), Q5K, 0.06},
    /* attn_v: i < 2 -> Q5_K; ffn_down: i < n/16 = 0 never, not falcon -> Q4_K */
    {"Q3_K_M", 12, Q3K, Q6K, {Q5K, Q5K, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K}, X8(Q4K), Q4K, 0.25},
    {"Q3_K_L", 13, Q3K, Q6K, X8(Q5K), X8(Q5K), Q5K, 0.25},
    {"Q3_K_S", 11, Q3K, Q6K, X8(Q3K), X8(Q3K), Q3K, 0.25},
    /* n_gqa 2 < 4: attn_v Q3_K; ffn_down and attn_output Q3_K */
    {"Q2_K", 10, Q2K, Q6K, X8(Q3K), X8(Q3K), Q3K, 0.45},
    {"F32", 0, F32, F32, X8(F32), X8(F32), F32, 0.0},
};
#define N_MIXES ((int)(sizeof mixes / sizeof mixes[0]))

static double rel_rms_error(const tq_tensor *a, const tq_tensor *b) {
    const int64_t n0 = a->ne[0], rows = a->ne[1];
    float *x = malloc(sizeof *x * (size_t)n0), *y = malloc(sizeof *y * (size_t)n0);
    double se = 0, sw = 0;
    for (int64_t r = 0; r < rows; r++) {
        tq_type_get(a->type)->to_f32((const uint8_t *)a->data + r * a->nb[1], x, n0);
        tq_type_get(b->type)->to_f32((const uint8_t *)b->data + r * b->nb[1], y, n0);
        for (int64_t i = 0; i < n0; i++) {
            se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            sw += (double)x[i] * x[i];
        }
    }
    free(x);
    free(y);
    return sqrt(se / sw);
}

static char *src_f32;

START_TEST(mix_types_and_error) {
    const mix_case *c = &mixes[_i];
    char name[64];
    snprintf(name, sizeof name, "q-%s.gguf", c->ftype);
    char *out = tq_test_tmp_path(name);
    tq_test_exec_result r = quantize(src_f32, out, c->ftype, "2", 0);
    ck_assert_msg(r.status == 0, "%s: %s", c->ftype, r.err);
    tq_test_exec_free(&r);
    tq_gguf *src = open_ok(src_f32), *g = open_ok(out);
    ck_assert_uint_eq(get_u32(g, "general.file_type"), c->ftype_num);
    ck_assert_uint_eq(get_u32(g, "general.quantization_version"), 2);
    ck_assert_int_eq(tq_gguf_n_tensors(g), tq_gguf_n_tensors(src));
    ck_assert_int_eq(tq_gguf_n_kv(g), tq_gguf_n_kv(src));
    const tq_value *tok = tq_gguf_find(g, "tokenizer.ggml.tokens");
    ck_assert_ptr_nonnull(tok);
    ck_assert_uint_eq(tok->count, 512);
    for (int64_t i = 0; i < tq_gguf_n_tensors(g); i++) {
        const tq_tensor *t = tq_gguf_tensor(g, i), *o = tq_gguf_find_tensor(src, t->name);
        ck_assert_ptr_nonnull(o);
        for (int d = 0; d < 4; d++) ck_assert_int_eq(t->ne[d], o->ne[d]);
        int il = -1;
        sscanf(t->name, "blk.%d.", &il);
        tq_type want = c->base;
        if (t->ne[1] == 1) want = F32; /* norms stay as they are */
        else if (strcmp(t->name, "output.weight") == 0) want = c->output;
        else if (strstr(t->name, "attn_v.weight")) want = c->attn_v[il];
        else if (strstr(t->name, "ffn_down.weight")) want = c->ffn_down[il];
        else if (strstr(t->name, "attn_output.weight")) want = c->attn_output;
        ck_assert_msg(t->type == want, "%s: %s is %s, expected %s", c->ftype, t->name,
                      tq_type_name(t->type), tq_type_name(want));
        if (t->type == c->base && t->ne[1] > 1) {
            double e = rel_rms_error(o, t);
            ck_assert_msg(e <= c->rel_rms, "%s: %s rel rms error %g > %g", c->ftype, t->name, e,
                          c->rel_rms);
        }
        /* llama.cpp's order: non-layer tensors first, then by layer, then name */
        if (i > 0) {
            const tq_tensor *p = tq_gguf_tensor(g, i - 1);
            int pl = -1;
            sscanf(p->name, "blk.%d.", &pl);
            ck_assert(pl < il || (pl == il && strcmp(p->name, t->name) < 0));
        }
    }
    tq_gguf_close(g);
    tq_gguf_close(src);
    free(out);
}
END_TEST

/* The same file from 1 and 2 threads (rows split differently). */
START_TEST(threads_do_not_change_the_file) {
    char *a = tq_test_tmp_path("t1.gguf"), *b = tq_test_tmp_path("t2.gguf");
    tq_test_exec_result r = quantize(src_f32, a, "Q4_K_M", "1", 0);
    ck_assert_int_eq(r.status, 0);
    tq_test_exec_free(&r);
    r = quantize(src_f32, b, "Q4_K_M", "2", 0);
    ck_assert_int_eq(r.status, 0);
    tq_test_exec_free(&r);
    size_t na, nb;
    char *x = tq_test_read_file(a, &na), *y = tq_test_read_file(b, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(x, y, na), 0);
    free(x), free(y), free(a), free(b);
}
END_TEST

START_TEST(bad_requests) {
    char *out = tq_test_tmp_path("bad.gguf"), *q = tq_test_tmp_path("req-q4_0.gguf");
    tq_test_exec_result r = quantize(src_f32, out, "Q7_X", "2", 0);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown quantization type 'Q7_X'"));
    tq_test_exec_free(&r);
    ck_assert_int_eq(access(out, F_OK), -1);

    /* requantizing needs the flag; an unchanged quantized tensor does not */
    r = quantize(src_f32, q, "Q4_0", "2", 0);
    ck_assert_int_eq(r.status, 0);
    tq_test_exec_free(&r);
    r = quantize(q, out, "Q8_0", "2", 0);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "--allow-requantize"));
    ck_assert_ptr_nonnull(strstr(r.err, "output.weight is already q6_K")); /* first in order */
    tq_test_exec_free(&r);
    ck_assert_int_eq(access(out, F_OK), -1);
    r = quantize(q, out, "Q8_0", "2", 1);
    ck_assert_msg(r.status == 0, "%s", r.err);
    tq_test_exec_free(&r);
    tq_gguf *g = open_ok(out);
    ck_assert_int_eq(tq_gguf_find_tensor(g, "blk.0.attn_q.weight")->type, TQ_TYPE_Q8_0);
    tq_gguf_close(g);

    r = quantize(src_f32, out, "Q4_0", "0", 0);
    ck_assert_int_eq(r.status, 2); /* thread count */
    tq_test_exec_free(&r);
    free(out), free(q);
}
END_TEST

/* stories260K: rows of 64 and 172. K types fall back (Q4_K -> Q5_0, and
 * for 172 to f16; output to Q8_0); Q4_0 has no fallback for 172. */
START_TEST(fallback_on_small_rows) {
    char *in = tq_test_shared_path("models/stories260K.gguf");
    if (!in || access(in, R_OK) != 0) {
        free(in);
        return; /* reported by main as skipped */
    }
    char *out = tq_test_tmp_path("s260-q4km.gguf");
    tq_test_exec_result r = quantize(in, out, "Q4_K_M", "2", 0);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_ptr_nonnull(strstr(r.out, "falling back to q5_0"));
    ck_assert_ptr_nonnull(strstr(r.out, "falling back to f16"));
    tq_test_exec_free(&r);
    tq_gguf *g = open_ok(out);
    ck_assert_int_eq(tq_gguf_find_tensor(g, "output.weight")->type, TQ_TYPE_Q8_0);
    ck_assert_int_eq(tq_gguf_find_tensor(g, "token_embd.weight")->type, TQ_TYPE_Q5_0);
    ck_assert_int_eq(tq_gguf_find_tensor(g, "blk.0.attn_q.weight")->type, TQ_TYPE_Q5_0);
    ck_assert_int_eq(tq_gguf_find_tensor(g, "blk.0.ffn_down.weight")->type, TQ_TYPE_F16);
    tq_gguf_close(g);
    /* the result runs */
    if (tq_test_have_arch_llama("fallback_on_small_rows: running the result")) {
        const char *gen[] = {"-m", out, "-p", "Once upon a time", "-n", "8", "--temp", "0",
                             "--ids", "-t", "2", NULL};
        r = tq_test_exec_tqrun(gen);
        ck_assert_msg(r.status == 0, "%s", r.err);
        ck_assert_ptr_nonnull(strstr(r.out, "gen_ids:"));
        tq_test_exec_free(&r);
    }

    r = quantize(in, out, "Q4_0", "2", 0);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "no fallback"));
    tq_test_exec_free(&r);
    free(in), free(out);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Generator                                                                */

START_TEST(generator_shapes_and_run) {
    /* Q4_K_M directly: the same mix as quantizing the f32 model */
    char *q = gen_model("gen-q4km.gguf", "Q4_K_M", "2");
    char *via = tq_test_tmp_path("gen-via-quantize.gguf");
    tq_test_exec_result r = quantize(src_f32, via, "Q4_K_M", "2", 0);
    ck_assert_int_eq(r.status, 0);
    tq_test_exec_free(&r);
    tq_gguf *g = open_ok(q), *h = open_ok(via);
    ck_assert_int_eq(tq_gguf_n_tensors(g), 3 + 9 * 8);
    ck_assert_int_eq(tq_gguf_n_tensors(g), tq_gguf_n_tensors(h));
    for (int64_t i = 0; i < tq_gguf_n_tensors(g); i++) {
        const tq_tensor *a = tq_gguf_tensor(g, i), *b = tq_gguf_tensor(h, i);
        ck_assert_str_eq(a->name, b->name);
        ck_assert_int_eq(a->type, b->type);
        /* same seed, same rows: quantizing the f32 model gives the same bytes */
        ck_assert_int_eq(memcmp(a->data, b->data, a->nb[3] * (size_t)a->ne[3]), 0);
    }
    const tq_tensor *k = tq_gguf_find_tensor(g, "blk.7.attn_k.weight");
    ck_assert_int_eq(k->ne[0], 256);
    ck_assert_int_eq(k->ne[1], 2 * 64);
    ck_assert_int_eq(tq_gguf_find_tensor(g, "blk.0.ffn_down.weight")->ne[0], 512);
    ck_assert_uint_eq(get_u32(g, "llama.block_count"), 8);
    ck_assert_uint_eq(get_u32(g, "llama.attention.head_count_kv"), 2);
    tq_gguf_close(g);
    tq_gguf_close(h);

    /* thread count does not change the file */
    char *q1 = tq_test_tmp_path("gen-q4km-t1.gguf");
    const char *args[] = {"--preset", "tiny", "--layers", "8", "--dim", "256", "--heads", "4",
                          "--kv-heads", "2", "--ffn", "512", "--vocab", "512", "--no-vocab-file",
                          "--type", "Q4_K_M", "-t", "1", "-o", q1, NULL};
    ck_assert_int_eq(run_gen(args), 0);
    size_t na, nb;
    char *x = tq_test_read_file(q, &na), *y = tq_test_read_file(q1, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(x, y, na), 0);
    free(x), free(y);

    /* loads and generates */
    if (tq_test_have_arch_llama("generator_shapes_and_run: generating")) {
        const char *gen[] = {"-m", q, "-p", "Hello world", "-n", "6", "--temp", "0", "--ids",
                             "--ignore-eos", "-t", "2", NULL};
        r = tq_test_exec_tqrun(gen);
        ck_assert_msg(r.status == 0, "%s", r.err);
        const char *ids = strstr(r.out, "gen_ids:");
        ck_assert_ptr_nonnull(ids);
        int count = 0;
        for (const char *p = ids + 8; *p && *p != '\n'; p++)
            if (*p == ' ' && p[1] >= '0' && p[1] <= '9') count++;
        ck_assert_int_eq(count, 6);
        tq_test_exec_free(&r);
    }
    free(q), free(q1), free(via);
}
END_TEST

START_TEST(generator_real_vocab_and_phi3) {
    char *vocab = tq_test_shared_path("models/ggml-vocab-phi-3.gguf");
    if (!vocab || access(vocab, R_OK) != 0) {
        free(vocab);
        return;
    }
    char *out = tq_test_tmp_path("gen-phi3.gguf");
    const char *args[] = {"--preset", "phi3-mini", "--layers", "2", "--dim", "192", "--heads",
                          "2", "--kv-heads", "2", "--head-dim", "96", "--ffn", "256",
                          "--vocab-file", vocab, "--type", "Q8_0", "-o", out, NULL};
    ck_assert_int_eq(run_gen(args), 0);
    tq_gguf *g = open_ok(out);
    const char *arch;
    tq_error err;
    ck_assert_int_eq(tq_gguf_get_str(g, "general.architecture", &arch, &err), TQ_OK);
    ck_assert_str_eq(arch, "phi3");
    const tq_tensor *qkv = tq_gguf_find_tensor(g, "blk.1.attn_qkv.weight");
    ck_assert_ptr_nonnull(qkv);
    ck_assert_int_eq(qkv->ne[1], 3 * 192);
    ck_assert_int_eq(tq_gguf_find_tensor(g, "blk.1.ffn_up.weight")->ne[1], 2 * 256);
    ck_assert_int_eq(tq_gguf_find_tensor(g, "output.weight")->ne[1], 32064);
    ck_assert_uint_eq(tq_gguf_find(g, "tokenizer.ggml.tokens")->count, 32064);
    ck_assert_ptr_nonnull(tq_gguf_find(g, "tokenizer.chat_template"));
    tq_gguf_close(g);
    free(vocab), free(out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("quantize");
    TCase *tc = tcase_create("quantize");
    tcase_set_timeout(tc, 600);
    /* the source model, shared by the cases (Check forks per test) */
    int gen_status;
    src_f32 = gen_model_path("src-f32.gguf", "F32", "2", &gen_status);
    if (gen_status != 0) {
        printf("quantize: tq-gen-model failed (%d); TQ_GEN_MODEL=%s\n", gen_status,
               getenv("TQ_GEN_MODEL") ? getenv("TQ_GEN_MODEL") : "(unset)");
        return 1;
    }
    tcase_add_loop_test(tc, mix_types_and_error, 0, N_MIXES);
    tcase_add_test(tc, threads_do_not_change_the_file);
    tcase_add_test(tc, bad_requests);
    tcase_add_test(tc, generator_shapes_and_run);
    int have_shared = tq_test_shared_dir() != NULL;
    if (have_shared) {
        tcase_add_test(tc, fallback_on_small_rows);
        tcase_add_test(tc, generator_real_vocab_and_phi3);
    }
    suite_add_tcase(s, tc);
    int rc = tq_test_run(s);
    free(src_f32);
    if (!have_shared) printf("quantize: shared models missing; fallback and real-vocab cases skipped\n");
    return rc;
}
