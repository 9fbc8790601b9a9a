/* tq_gen_model.c — `tq-gen-model`: writes a random-weight GGUF model of a
 * real model's shapes, for speed work (a 1.1B model with the weights
 * nobody needs to download).
 *
 * The file is what llama.cpp's converter + llama-quantize would produce for
 * such a model: llama or phi3 metadata, a real SentencePiece vocabulary
 * (the tokenizer keys of a vocab-only GGUF, truncated or padded to the
 * model's vocabulary size; or a synthesized byte-level one), tensors in
 * llama.cpp's order, and for quantized file types the per-tensor type mix
 * of llama-quantize (tq_quant_mix). Weights are N(0, 0.02)-like (Irwin-Hall
 * of four uniforms), norm weights 1; each row is generated from its own
 * seed, so the file does not depend on the thread count. Tensors are
 * generated and encoded while the file is written, one at a time: memory
 * holds one tensor, never the f32 model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tq_error.h"
#include "tq_gguf.h"
#include "tq_gguf_writer.h"
#include "tq_quant_mix.h"
#include "tq_threadpool.h"
#include "tq_types.h"

/* ------------------------------------------------------------------------ */
/* Shapes                                                                   */

typedef struct shape {
    const char *preset;
    const char *arch;     /* "llama" or "phi3"                                */
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    float rope_base;
    int tied;             /* no output.weight: the output reuses token_embd   */
    const char *about;
} shape;

static const shape presets[] = {
    {"tinyllama-1.1b", "llama", 22, 2048, 32, 4, 64, 5632, 32000, 2048, 10000.0f, 0,
     "TinyLlama-1.1B"},
    {"llama3.2-1b", "llama", 16, 2048, 32, 8, 64, 8192, 128256, 4096, 500000.0f, 1,
     "Llama-3.2-1B shapes (tied output, 128256 rows) with an SPM vocabulary padded to size"},
    {"8b-attn", "llama", 8, 4096, 32, 8, 128, 14336, 32000, 8192, 500000.0f, 0,
     "Llama-3-8B layer shapes, 8 layers (KV-cache work)"},
    {"phi3-mini", "phi3", 32, 3072, 32, 32, 96, 8192, 32064, 4096, 10000.0f, 0,
     "Phi-3-mini-4k (fused qkv and gate/up)"},
    {"tiny", "llama", 2, 256, 4, 2, 64, 512, 512, 512, 10000.0f, 0,
     "a small test model"},
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

/* ------------------------------------------------------------------------ */
/* Random rows                                                              */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Sum of four 16-bit uniforms: mean 0 after centring, variance 4/12 of the
 * unit range; scaled to standard deviation `sd`. Close enough to a normal
 * for weights and far cheaper than Box-Muller on a billion values. */
static void random_row(uint64_t seed, float sd, float *x, int64_t n) {
    uint64_t s = seed;
    const float k = sd * 1.7320508f / 65536.0f; /* sqrt(3): var 1/3 -> 1 */
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = splitmix64(&s);
        int32_t sum = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) +
                      (int32_t)((r >> 32) & 0xffff) + (int32_t)(r >> 48) - 2 * 65536;
        x[i] = (float)sum * k;
    }
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */

typedef struct gtensor {
    char name[64];
    int n_dims;
    int64_t ne[TQ_MAX_DIMS];
    int is_norm;      /* all ones, f32                                    */
    tq_type type;     /* output type                                      */
    uint64_t seed;
} gtensor;

typedef struct gen_run {
    gtensor *list;
    int n, next;
    tq_threadpool *pool;
    int verbose;
    double t0;
} gen_run;

typedef struct gen_job {
    const gtensor *t;
    uint8_t *dst;
    size_t row_bytes;
    int64_t nrows;
    int failed;
} gen_job;

static void gen_task(void *user, int ith, int nth) {
    gen_job *j = user;
    const int64_t per = (j->nrows + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < j->nrows ? r0 + per : j->nrows;
    if (r0 >= r1) return;
    const int64_t ne0 = j->t->ne[0];
    float *x = malloc((size_t)ne0 * sizeof *x);
    if (!x) {
        j->failed = 1;
        return;
    }
    const tq_type_info *ti = tq_type_get(j->t->type);
    for (int64_t r = r0; r < r1; r++) {
        if (j->t->is_norm) {
            for (int64_t i = 0; i < ne0; i++) x[i] = 1.0f;
        } else {
            uint64_t s = j->t->seed ^ ((uint64_t)r * UINT64_C(0xd1b54a32d192ed03));
            random_row(splitmix64(&s), 0.02f, x, ne0);
        }
        ti->from_f32(x, j->dst + (size_t)r * j->row_bytes, ne0);
    }
    free(x);
}

static tq_status produce(void *user, void *dst, uint64_t nbytes, tq_error *err) {
    gen_run *g = user;
    if (g->next >= g->n) return tq_error_set(err, TQ_ERR_INVALID, "generator: producer out of order");
    const gtensor *t = &g->list[g->next++];
    gen_job j = {.t = t, .dst = dst, .row_bytes = tq_type_row_bytes(t->type, t->ne[0]),
                 .nrows = t->ne[1] * t->ne[2] * t->ne[3]};
    if ((uint64_t)j.row_bytes * (uint64_t)j.nrows != nbytes)
        return tq_error_set(err, TQ_ERR_INVALID, "generator: size mismatch for %s", t->name);
    tq_threadpool_run(g->pool, gen_task, &j);
    if (j.failed) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory generating %s", t->name);
    if (g->verbose) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        printf("[%4d/%4d] %-32s %-5s %9.2f MiB  %7.1f s\n", g->next, g->n, t->name,
               tq_type_name(t->type), (double)nbytes / 1048576.0,
               (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - g->t0);
        fflush(stdout);
    }
    return TQ_OK;
}

static void add(gtensor *list, int *n, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                int is_norm) {
    gtensor *t = &list[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = n_dims > 1 ? ne1 : 1;
    t->ne[2] = t->ne[3] = 1;
    t->is_norm = is_norm;
}

static int cmp_gtensor(const void *a, const void *b) {
    return tq_mix_order(((const gtensor *)a)->name, ((const gtensor *)b)->name);
}

/* Every tensor of the family, as llama.cpp's converter names them. */
static int list_tensors(const shape *s, gtensor *list) {
    int n = 0;
    const int64_t n_q = (int64_t)s->n_head * s->head_dim, n_kv = (int64_t)s->n_head_kv * s->head_dim;
    add(list, &n, "token_embd.weight", 2, s->n_embd, s->n_vocab, 0);
    add(list, &n, "output_norm.weight", 1, s->n_embd, 1, 1);
    if (!s->tied) add(list, &n, "output.weight", 2, s->n_embd, s->n_vocab, 0);
    char name[64];
    for (int il = 0; il < s->n_layer; il++) {
#define L(suffix, nd, a, b, norm)                                            \
    do {                                                                     \
        snprintf(name, sizeof name, "blk.%d." suffix, il);                   \
        add(list, &n, name, nd, a, b, norm);                                 \
    } while (0)
        L("attn_norm.weight", 1, s->n_embd, 1, 1);
        if (strcmp(s->arch, "phi3") == 0) {
            L("attn_qkv.weight", 2, s->n_embd, n_q + 2 * n_kv, 0);
            L("attn_output.weight", 2, n_q, s->n_embd, 0);
            L("ffn_norm.weight", 1, s->n_embd, 1, 1);
            L("ffn_up.weight", 2, s->n_embd, 2 * (int64_t)s->n_ff, 0);
            L("ffn_down.weight", 2, s->n_ff, s->n_embd, 0);
        } else {
            L("attn_q.weight", 2, s->n_embd, n_q, 0);
            L("attn_k.weight", 2, s->n_embd, n_kv, 0);
            L("attn_v.weight", 2, s->n_embd, n_kv, 0);
            L("attn_output.weight", 2, n_q, s->n_embd, 0);
            L("ffn_norm.weight", 1, s->n_embd, 1, 1);
            L("ffn_gate.weight", 2, s->n_embd, s->n_ff, 0);
            L("ffn_up.weight", 2, s->n_embd, s->n_ff, 0);
            L("ffn_down.weight", 2, s->n_ff, s->n_embd, 0);
        }
#undef L
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Vocabulary                                                               */

/* Writes tokenizer.* keys for n_vocab tokens: those of `vocab_path` (a
 * vocab-only GGUF; truncated or padded with unused "<extra_N>" tokens), or
 * without one a byte-level SPM vocabulary (<unk>, <s>, </s>, 256 byte
 * tokens, then padding). Returns 0 or prints an error. */
static int write_vocab(tq_gguf_writer *w, const char *vocab_path, int n_vocab, char *what,
                       size_t what_size) {
    tq_gguf *g = NULL;
    tq_error err = {0};
    const tq_value *tokens = NULL, *scores = NULL, *types = NULL;
    if (vocab_path) {
        if (tq_gguf_open(vocab_path, &g, &err) != TQ_OK) {
            fprintf(stderr, "tq-gen-model: error: %s\n", err.message);
            return 1;
        }
        tokens = tq_gguf_find(g, "tokenizer.ggml.tokens");
        scores = tq_gguf_find(g, "tokenizer.ggml.scores");
        types = tq_gguf_find(g, "tokenizer.ggml.token_type");
        if (!tokens || tokens->type != TQ_VAL_ARRAY || tokens->elem_type != TQ_VAL_STRING ||
            !scores || scores->elem_type != TQ_VAL_F32 || scores->count != tokens->count ||
            !types || types->elem_type != TQ_VAL_I32 || types->count != tokens->count) {
            fprintf(stderr, "tq-gen-model: error: %s: no SentencePiece vocabulary "
                            "(tokenizer.ggml.tokens/scores/token_type)\n", vocab_path);
            tq_gguf_close(g);
            return 1;
        }
    }
    const uint64_t n_src = tokens ? tokens->count : 3 + 256;
    char **strs = calloc((size_t)n_vocab, sizeof *strs);
    float *sc = calloc((size_t)n_vocab, sizeof *sc);
    int32_t *ty = calloc((size_t)n_vocab, sizeof *ty);
    int rc = 1;
    if (!strs || !sc || !ty) goto out;
    for (int i = 0; i < n_vocab; i++) {
        char buf[32];
        const char *s = buf;
        uint64_t len = 0;
        if ((uint64_t)i < n_src && tokens) {
            s = tq_gguf_array_str(g, tokens, (uint64_t)i, &len);
            memcpy(&sc[i], (const float *)scores->elems + i, sizeof(float));
            memcpy(&ty[i], (const int32_t *)types->elems + i, sizeof(int32_t));
        } else if ((uint64_t)i < n_src) {
            static const char *const special[3] = {"<unk>", "<s>", "</s>"};
            if (i < 3) snprintf(buf, sizeof buf, "%s", special[i]);
            else snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
            len = strlen(buf);
            ty[i] = i == 0 ? 2 : i < 3 ? 3 : 6; /* unknown, control, byte */
        } else {
            snprintf(buf, sizeof buf, "<extra_%d>", i);
            len = strlen(buf);
            ty[i] = 5; /* unused */
        }
        if (!(strs[i] = malloc((size_t)len + 1))) goto out;
        memcpy(strs[i], s, (size_t)len);
        strs[i][len] = 0;
    }
    tq_status st = TQ_OK;
    if (g) {
        /* every other tokenizer.* key (model, special ids, template) */
        for (int64_t i = 0; st == TQ_OK && i < tq_gguf_n_kv(g); i++) {
            const char *key = tq_gguf_kv_key(g, i);
            if (strncmp(key, "tokenizer.", 10) != 0) continue;
            if (strcmp(key, "tokenizer.ggml.tokens") == 0) {
                st = tq_gguf_writer_set_str_array(w, key, (const char *const *)strs, (uint64_t)n_vocab);
            } else if (strcmp(key, "tokenizer.ggml.scores") == 0) {
                st = tq_gguf_writer_set_array(w, key, TQ_VAL_F32, sc, (uint64_t)n_vocab);
            } else if (strcmp(key, "tokenizer.ggml.token_type") == 0) {
                st = tq_gguf_writer_set_array(w, key, TQ_VAL_I32, ty, (uint64_t)n_vocab);
            } else {
                const tq_value *v = tq_gguf_kv_value(g, i);
                if (tq_value_is_int(v) && strstr(key, "_id") && tq_value_f64(v) >= n_vocab) continue;
                st = tq_gguf_writer_copy_kv(w, g, key, v);
            }
        }
        snprintf(what, what_size, "%s (%llu tokens%s)", vocab_path, (unsigned long long)n_src,
                 (uint64_t)n_vocab == n_src ? "" : (uint64_t)n_vocab < n_src ? ", truncated" : ", padded");
    } else {
        if (n_vocab < 3 + 256) {
            fprintf(stderr, "tq-gen-model: error: a byte-level vocabulary needs at least 259 "
                            "tokens (--vocab)\n");
            goto out;
        }
        st = tq_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
        if (st == TQ_OK) st = tq_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default");
        if (st == TQ_OK) st = tq_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)strs, (uint64_t)n_vocab);
        if (st == TQ_OK) st = tq_gguf_writer_set_array(w, "tokenizer.ggml.scores", TQ_VAL_F32, sc, (uint64_t)n_vocab);
        if (st == TQ_OK) st = tq_gguf_writer_set_array(w, "tokenizer.ggml.token_type", TQ_VAL_I32, ty, (uint64_t)n_vocab);
        if (st == TQ_OK) st = tq_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
        if (st == TQ_OK) st = tq_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
        if (st == TQ_OK) st = tq_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
        if (st == TQ_OK) st = tq_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
        if (st == TQ_OK) st = tq_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
        snprintf(what, what_size, "synthesized byte-level SPM (%d tokens)", n_vocab);
    }
    if (st != TQ_OK) {
        fprintf(stderr, "tq-gen-model: error: cannot write the vocabulary (%s)\n", tq_status_str(st));
        goto out;
    }
    rc = 0;
out:
    if (strs)
        for (int i = 0; i < n_vocab; i++) free(strs[i]);
    free(strs);
    free(sc);
    free(ty);
    tq_gguf_close(g);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Command                                                                  */

static void usage(void) {
    printf("usage: tq-gen-model --preset NAME -o OUT.gguf [options]\n\n"
           "Writes a random-weight model of a real model's shapes (for speed work).\n\n"
           "  --preset NAME     shapes (below); the flags after it override them\n"
           "  -o, --out FILE    output file (keep large ones outside the repository)\n"
           "  --type T          file type, llama-quantize's names (F16, Q4_0, Q4_K_M, ...);\n"
           "                    default F16. Quantized types get llama.cpp's tensor mix.\n"
           "  --vocab-file F    copy the tokenizer from this GGUF (default: the\n"
           "                    family's vocab in ../shared/models when present, else a\n"
           "                    synthesized byte-level vocabulary)\n"
           "  --no-vocab-file   use the synthesized byte-level vocabulary\n"
           "  --layers N  --dim N  --heads N  --kv-heads N  --head-dim N  --ffn N\n"
           "  --vocab N  --ctx N  --arch llama|phi3  --tied 0|1\n"
           "  --seed N          weights seed (default 1)\n"
           "  -t, --threads N   threads (default: all cores)\n"
           "  -v, --verbose     one line per tensor\n\npresets:\n");
    for (int i = 0; i < N_PRESETS; i++) {
        const shape *s = &presets[i];
        printf("  %-15s %s: %s, %d layers, dim %d, %d heads / %d KV (head %d), ffn %d, vocab %d\n",
               s->preset, s->about, s->arch, s->n_layer, s->n_embd, s->n_head, s->n_head_kv,
               s->head_dim, s->n_ff, s->n_vocab);
    }
}

static int parse_int(const char *flag, const char *v, long min, long max, int *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < min || x > max) {
        fprintf(stderr, "tq-gen-model: error: %s needs a number in [%ld, %ld]\n", flag, min, max);
        return 1;
    }
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv) {
    shape s = presets[0];
    int have_preset = 0, threads = 0, verbose = 0, seed = 1, no_vocab = 0;
    const char *out = NULL, *type_name = "F16", *vocab_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
#define FLAG(name) (strcmp(a, name) == 0)
        if (FLAG("-h") || FLAG("--help")) {
            usage();
            return 0;
        } else if (FLAG("--preset")) {
            int k;
            for (k = 0; k < N_PRESETS && (!v || strcmp(presets[k].preset, v) != 0); k++) {}
            if (k == N_PRESETS) {
                fprintf(stderr, "tq-gen-model: error: unknown preset '%s' (see --help)\n", v ? v : "");
                return 2;
            }
            s = presets[k];
            have_preset = 1;
            i++;
        } else if (FLAG("-o") || FLAG("--out")) {
            out = v, i++;
        } else if (FLAG("--type")) {
            type_name = v, i++;
        } else if (FLAG("--vocab-file")) {
            vocab_path = v, i++;
        } else if (FLAG("--no-vocab-file")) {
            no_vocab = 1;
        } else if (FLAG("--arch")) {
            if (!v || (strcmp(v, "llama") && strcmp(v, "phi3"))) {
                fprintf(stderr, "tq-gen-model: error: --arch is llama or phi3\n");
                return 2;
            }
            s.arch = strcmp(v, "llama") == 0 ? "llama" : "phi3";
            i++;
        } else if (FLAG("-v") || FLAG("--verbose")) {
            verbose = 1;
        } else if (FLAG("--layers")) { bad = parse_int(a, v, 1, 1000, &s.n_layer), i++;
        } else if (FLAG("--dim")) { bad = parse_int(a, v, 32, 1 << 16, &s.n_embd), i++;
        } else if (FLAG("--heads")) { bad = parse_int(a, v, 1, 1024, &s.n_head), i++;
        } else if (FLAG("--kv-heads")) { bad = parse_int(a, v, 1, 1024, &s.n_head_kv), i++;
        } else if (FLAG("--head-dim")) { bad = parse_int(a, v, 2, 1024, &s.head_dim), i++;
        } else if (FLAG("--ffn")) { bad = parse_int(a, v, 32, 1 << 18, &s.n_ff), i++;
        } else if (FLAG("--vocab")) { bad = parse_int(a, v, 16, 1 << 20, &s.n_vocab), i++;
        } else if (FLAG("--ctx")) { bad = parse_int(a, v, 16, 1 << 24, &s.n_ctx), i++;
        } else if (FLAG("--tied")) { bad = parse_int(a, v, 0, 1, &s.tied), i++;
        } else if (FLAG("--seed")) { bad = parse_int(a, v, 0, 0x7fffffff, &seed), i++;
        } else if (FLAG("-t") || FLAG("--threads")) { bad = parse_int(a, v, 1, 1024, &threads), i++;
        } else {
            fprintf(stderr, "tq-gen-model: error: unknown argument '%s' (see --help)\n", a);
            return 2;
        }
#undef FLAG
        if (bad) return 2;
    }
    if (!have_preset || !out || !type_name) {
        fprintf(stderr, "tq-gen-model: error: --preset and -o are required (see --help)\n");
        return 2;
    }
    const tq_ftype_option *fo = tq_ftype_find(type_name);
    if (!fo) {
        fprintf(stderr, "tq-gen-model: error: unknown type '%s' (llama-quantize's names: F16, "
                        "Q8_0, Q4_0, Q4_K_M, ...)\n", type_name);
        return 2;
    }
    if (s.n_head % s.n_head_kv != 0) {
        fprintf(stderr, "tq-gen-model: error: %d heads cannot share %d KV heads\n", s.n_head,
                s.n_head_kv);
        return 2;
    }
    if (!vocab_path && !no_vocab) {
        const char *def = strcmp(s.arch, "phi3") == 0 ? "../shared/models/ggml-vocab-phi-3.gguf"
                                                     : "../shared/models/ggml-vocab-llama-spm.gguf";
        if (access(def, R_OK) == 0) vocab_path = def;
    }
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }

    int rc = 1, n_list = 0;
    gtensor *list = calloc((size_t)(3 + 9 * s.n_layer), sizeof *list);
    tq_gguf_writer *w = tq_gguf_writer_new(0);
    tq_threadpool *pool = tq_threadpool_create(threads);
    if (!list || !w || !pool) {
        fprintf(stderr, "tq-gen-model: error: out of memory\n");
        goto done;
    }

    /* metadata, in convert_hf_to_gguf's order */
    char key[128], name[96], vocab_what[512];
    snprintf(name, sizeof name, "random %s", s.preset);
    tq_status st = tq_gguf_writer_set_str(w, "general.architecture", s.arch);
    if (st == TQ_OK) st = tq_gguf_writer_set_str(w, "general.name", name);
#define SETU(k, x) if (st == TQ_OK) { snprintf(key, sizeof key, "%s." k, s.arch); st = tq_gguf_writer_set_u32(w, key, (uint32_t)(x)); }
#define SETF(k, x) if (st == TQ_OK) { snprintf(key, sizeof key, "%s." k, s.arch); st = tq_gguf_writer_set_f32(w, key, x); }
    SETU("context_length", s.n_ctx);
    if (strcmp(s.arch, "phi3") == 0) SETU("rope.scaling.original_context_length", s.n_ctx);
    SETU("embedding_length", s.n_embd);
    SETU("feed_forward_length", s.n_ff);
    SETU("block_count", s.n_layer);
    SETU("attention.head_count", s.n_head);
    SETU("attention.head_count_kv", s.n_head_kv);
    SETF("attention.layer_norm_rms_epsilon", 1e-5f);
    SETU("rope.dimension_count", s.head_dim);
    SETF("rope.freq_base", s.rope_base);
    if (s.head_dim * s.n_head != s.n_embd) {
        SETU("attention.key_length", s.head_dim);
        SETU("attention.value_length", s.head_dim);
    }
    if (strcmp(s.arch, "llama") == 0) SETU("vocab_size", s.n_vocab);
#undef SETU
#undef SETF
    if (st == TQ_OK) st = tq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)fo->ftype);
    if (st == TQ_OK) st = tq_gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (st != TQ_OK) {
        fprintf(stderr, "tq-gen-model: error: cannot set metadata (%s)\n", tq_status_str(st));
        goto done;
    }
    if (write_vocab(w, vocab_path, s.n_vocab, vocab_what, sizeof vocab_what)) goto done;

    n_list = list_tensors(&s, list);
    qsort(list, (size_t)n_list, sizeof *list, cmp_gtensor);
    tq_quant_mix mix;
    tq_quant_mix_init(&mix, fo, 0, s.arch, s.n_layer, s.n_head, s.n_head_kv, 0);
    for (int i = 0; i < n_list; i++) tq_quant_mix_note(&mix, list[i].name);
    uint64_t bytes = 0, params = 0;
    for (int i = 0; i < n_list && st == TQ_OK; i++) {
        gtensor *t = &list[i];
        tq_tensor probe = {.size = sizeof probe, .type = TQ_TYPE_F32,
                           .ne = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}};
        tq_error err = {0};
        t->type = tq_quant_mix_choose(&mix, t->name, &probe, &err);
        if (t->type == TQ_TYPE_INVALID) {
            fprintf(stderr, "tq-gen-model: error: %s\n", err.message);
            goto done;
        }
        uint64_t s0 = (uint64_t)seed * UINT64_C(0x9e3779b97f4a7c15) + (uint64_t)i + 1;
        t->seed = splitmix64(&s0);
        bytes += tq_type_row_bytes(t->type, t->ne[0]) * (uint64_t)t->ne[1];
        params += (uint64_t)(t->ne[0] * t->ne[1]);
    }
    gen_run run = {.list = list, .n = n_list, .pool = pool, .verbose = verbose};
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    run.t0 = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    for (int i = 0; i < n_list && st == TQ_OK; i++)
        st = tq_gguf_writer_add_tensor_stream(w, list[i].name, list[i].type, list[i].n_dims,
                                              list[i].ne, produce, &run);
    if (st != TQ_OK) {
        fprintf(stderr, "tq-gen-model: error: cannot add tensors (%s)\n", tq_status_str(st));
        goto done;
    }
    printf("%s: %s %s, %d layers, dim %d, %d/%d heads, ffn %d, vocab %d; %.3f B params, "
           "%.2f GiB; vocabulary: %s\n",
           out, s.preset, fo->name, s.n_layer, s.n_embd, s.n_head, s.n_head_kv, s.n_ff, s.n_vocab,
           (double)params * 1e-9, (double)bytes / 1073741824.0, vocab_what);
    fflush(stdout);
    tq_error err = {0};
    if (tq_gguf_writer_write(w, out, &err) != TQ_OK) {
        fprintf(stderr, "tq-gen-model: error: %s\n", err.message);
        goto done;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    printf("written in %.1f s\n", (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - run.t0);
    rc = 0;
done:
    tq_threadpool_free(pool);
    tq_gguf_writer_free(w);
    free(list);
    return rc;
}
