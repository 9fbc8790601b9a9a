/* tq_quant_mix.c — llama.cpp's per-tensor type rules (see tq_quant_mix.h),
 * transcribed from src/llama-quant.cpp rule by rule, in the same order of
 * tests, for the file types offered; branches only IQ/TQ/MXFP4 file types
 * reach are left out. */
#include "tq_quant_mix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_error.h"
#include "tq_types.h"

/* ------------------------------------------------------------------------ */
/* File types (llama_ftype numbers, stored in general.file_type)            */

enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14,
    FT_Q4_K_M = 15, FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_BF16 = 32
};

/* Q2_K_S and the IQ types are not offered: they need an importance matrix. */
static const tq_ftype_option ftypes[] = {
    {"Q4_0", FT_Q4_0, TQ_TYPE_Q4_0, "4.5 bpw"},
    {"Q4_1", FT_Q4_1, TQ_TYPE_Q4_1, "5.0 bpw"},
    {"Q5_0", FT_Q5_0, TQ_TYPE_Q5_0, "5.5 bpw"},
    {"Q5_1", FT_Q5_1, TQ_TYPE_Q5_1, "6.0 bpw"},
    {"Q2_K", FT_Q2_K, TQ_TYPE_Q2_K, "Q2_K mix"},
    {"Q3_K", FT_Q3_K_M, TQ_TYPE_Q3_K, "alias for Q3_K_M"},
    {"Q3_K_S", FT_Q3_K_S, TQ_TYPE_Q3_K, "Q3_K, output Q6_K"},
    {"Q3_K_M", FT_Q3_K_M, TQ_TYPE_Q3_K, "Q3_K mix"},
    {"Q3_K_L", FT_Q3_K_L, TQ_TYPE_Q3_K, "Q3_K mix, more Q5_K"},
    {"Q4_K", FT_Q4_K_M, TQ_TYPE_Q4_K, "alias for Q4_K_M"},
    {"Q4_K_S", FT_Q4_K_S, TQ_TYPE_Q4_K, "Q4_K mix"},
    {"Q4_K_M", FT_Q4_K_M, TQ_TYPE_Q4_K, "Q4_K mix, attn_v/ffn_down partly Q6_K"},
    {"Q5_K", FT_Q5_K_M, TQ_TYPE_Q5_K, "alias for Q5_K_M"},
    {"Q5_K_S", FT_Q5_K_S, TQ_TYPE_Q5_K, "Q5_K, output Q6_K"},
    {"Q5_K_M", FT_Q5_K_M, TQ_TYPE_Q5_K, "Q5_K mix, attn_v/ffn_down partly Q6_K"},
    {"Q6_K", FT_Q6_K, TQ_TYPE_Q6_K, "6.56 bpw"},
    {"Q8_0", FT_Q8_0, TQ_TYPE_Q8_0, "8.5 bpw"},
    {"F16", FT_F16, TQ_TYPE_F16, "16 bpw"},
    {"BF16", FT_BF16, TQ_TYPE_BF16, "16 bpw"},
    {"F32", FT_F32, TQ_TYPE_F32, "32 bpw"},
};
#define N_FTYPES ((int)(sizeof ftypes / sizeof ftypes[0]))

static int ascii_ieq(const char *a, const char *b) {
    for (;; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'a' && x <= 'z') x -= 32;
        if (y >= 'a' && y <= 'z') y -= 32;
        if (x != y) return 0;
        if (!x) return 1;
    }
}

/* By name (any case) or by llama_ftype number, as llama-quantize accepts. */
const tq_ftype_option *tq_ftype_find(const char *s) {
    for (int i = 0; i < N_FTYPES; i++)
        if (ascii_ieq(ftypes[i].name, s)) return &ftypes[i];
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || *end || end == s) return NULL;
    for (int i = 0; i < N_FTYPES; i++)
        if (ftypes[i].ftype == n) return &ftypes[i];
    return NULL;
}

const tq_ftype_option *tq_ftype_at(int i) { return i >= 0 && i < N_FTYPES ? &ftypes[i] : NULL; }

int tq_mix_is_quantized(tq_type t) {
    return t != TQ_TYPE_F32 && t != TQ_TYPE_F16 && t != TQ_TYPE_BF16 && t != TQ_TYPE_I8 &&
           t != TQ_TYPE_I16 && t != TQ_TYPE_I32;
}

/* ------------------------------------------------------------------------ */
/* Per-tensor type choice (llama-quant.cpp)                                 */

typedef enum category {
    CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B,
    CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER
} category;

static category get_category(const char *name) {
    if (strcmp(name, "output.weight") == 0) return CAT_OUTPUT;
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "per_layer_token_embd.weight") == 0)
        return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (strstr(name, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (strstr(name, "attn_v.weight")) return CAT_ATTN_V;
    if (strstr(name, "attn_k.weight")) return CAT_ATTN_K;
    if (strstr(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (strstr(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_up")) return CAT_FFN_UP;
    if (strstr(name, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static int category_is_attn_v(category c) {
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

/* ggml_n_dims: trailing dimensions of size 1 do not count (min 1). */
int tq_mix_n_dims(const tq_tensor *t) {
    for (int d = TQ_MAX_DIMS - 1; d >= 1; d--)
        if (t->ne[d] > 1) return d + 1;
    return 1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* tensor_allows_quantization, for the tensor names of the families tqrun
 * runs plus llama.cpp's general exclusions that can occur in them. */
static int allows_quantization(const char *name, const tq_tensor *t) {
    if (tq_mix_n_dims(t) < 2) return 0;
    int q = ends_with(name, "weight");
    q = q && !strstr(name, "_norm.weight");
    q = q && !strstr(name, "ffn_gate_inp.weight");
    q = q && !strstr(name, "altup") && !strstr(name, "laurel");
    q = q && !strstr(name, "per_layer_model_proj");
    q = q && strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
    q = q && !strstr(name, "ssm_conv1d") && !strstr(name, "shortconv.conv.weight");
    q = q && !strstr(name, "attn_rel_b.weight");
    return q;
}


static int use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/* Layer index: the counter, except for MoE models, where llama.cpp parses
 * the name because experts are not stored in layer order. */
static int layer_of(const tq_quant_mix *qs, int counter, const char *name, tq_error *err) {
    if (qs->n_expert <= 1) return counter;
    int il;
    if (sscanf(name, "blk.%d.", &il) != 1 || il < 0 || il >= qs->n_layer) {
        tq_error_set(err, TQ_ERR_FORMAT, "cannot determine the layer of tensor %s", name);
        return -1;
    }
    return il;
}

/* llama_tensor_get_type_impl for the file types offered (no IQ types, no
 * MXFP4), in the same order of tests. Returns TQ_TYPE_INVALID on error. */
static tq_type mix_type(tq_quant_mix *qs, tq_type t, const tq_tensor *tensor, const char *name,
                        category cat, tq_error *err) {
    const int ft = qs->fo->ftype;
    if (cat == CAT_OUTPUT || (qs->has_tied_embeddings && cat == CAT_TOKEN_EMBD)) {
        const int64_t nx = tensor->ne[0];
        if (qs->is_falcon || nx % tq_type_get(t)->block_elems != 0) t = TQ_TYPE_Q8_0;
        else if (t != TQ_TYPE_Q8_0) t = TQ_TYPE_Q6_K;
    } else if (cat == CAT_TOKEN_EMBD) {
        /* only IQ and TQ file types change it */
    } else if (category_is_attn_v(cat)) {
        if (ft == FT_Q2_K) t = qs->n_gqa >= 4 ? TQ_TYPE_Q4_K : TQ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = qs->i_attention_wv < 2 ? TQ_TYPE_Q5_K : TQ_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = TQ_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) &&
                 use_more_bits(qs->i_attention_wv, qs->n_attention_wv))
            t = TQ_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && qs->i_attention_wv < 4) t = TQ_TYPE_Q5_K;
        if (qs->is_70b && (t == TQ_TYPE_Q3_K || t == TQ_TYPE_Q4_K)) t = TQ_TYPE_Q5_K;
        if (qs->n_expert == 8) t = TQ_TYPE_Q8_0;
        ++qs->i_attention_wv;
    } else if (cat == CAT_ATTN_K) {
        if (qs->n_expert == 8) t = TQ_TYPE_Q8_0;
    } else if (cat == CAT_ATTN_Q) {
        /* only IQ3 file types change it */
    } else if (cat == CAT_FFN_DOWN) {
        const int il = layer_of(qs, qs->i_ffn_down, name, err), n = qs->n_layer;
        if (il < 0) return TQ_TYPE_INVALID;
        if (ft == FT_Q2_K) t = TQ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M)
            t = il < n / 16 ? TQ_TYPE_Q5_K
                : !qs->is_falcon || use_more_bits(il, n) ? TQ_TYPE_Q4_K : TQ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_L) t = qs->is_falcon ? TQ_TYPE_Q4_K : TQ_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (qs->is_falcon)
                t = il < n / 16 ? TQ_TYPE_Q6_K : use_more_bits(il, n) ? TQ_TYPE_Q5_K : TQ_TYPE_Q4_K;
            else if (use_more_bits(il, n))
                t = TQ_TYPE_Q6_K;
        } else if (ft == FT_Q5_K_M && use_more_bits(il, n)) t = TQ_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && !qs->is_falcon && il < n / 8) t = TQ_TYPE_Q5_K;
        ++qs->i_ffn_down;
    } else if (cat == CAT_ATTN_OUTPUT) {
        if (!qs->is_falcon) {
            if (qs->n_expert == 8) {
                if (ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_Q4_K_S ||
                    ft == FT_Q4_K_M)
                    t = TQ_TYPE_Q5_K;
            } else {
                if (ft == FT_Q2_K) t = TQ_TYPE_Q3_K;
                else if (ft == FT_Q3_K_M) t = TQ_TYPE_Q4_K;
                else if (ft == FT_Q3_K_L) t = TQ_TYPE_Q5_K;
            }
        } else if (ft == FT_Q3_K_L) {
            t = TQ_TYPE_Q4_K;
        }
    } else if (cat == CAT_ATTN_QKV) {
        /* Unreachable in llama.cpp as well: attn_qkv is attn_v-like and
         * takes the branch above. Kept so the structure matches. */
        if (ft == FT_Q3_K_M || ft == FT_Q3_K_L) t = TQ_TYPE_Q4_K;
        else if (ft == FT_Q4_K_M) t = TQ_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M) t = TQ_TYPE_Q6_K;
    } else if (cat == CAT_FFN_GATE) {
        if (layer_of(qs, qs->i_ffn_gate, name, err) < 0) return TQ_TYPE_INVALID;
        ++qs->i_ffn_gate;
    } else if (cat == CAT_FFN_UP) {
        if (layer_of(qs, qs->i_ffn_up, name, err) < 0) return TQ_TYPE_INVALID;
        ++qs->i_ffn_up;
    }
    return t;
}

/* tensor_type_fallback: a type whose block does not divide the row. */
static tq_type fallback_type(tq_quant_mix *qs, const char *name, const tq_tensor *tensor, tq_type t,
                             tq_error *err) {
    const int64_t ncols = tensor->ne[0];
    const int32_t qk = tq_type_get(t)->block_elems;
    if (ncols % qk == 0) return t;
    tq_type r;
    switch (t) {
    case TQ_TYPE_Q2_K: case TQ_TYPE_Q3_K: r = TQ_TYPE_Q4_0; break;
    case TQ_TYPE_Q4_K: r = TQ_TYPE_Q5_0; break;
    case TQ_TYPE_Q5_K: r = TQ_TYPE_Q5_1; break;
    case TQ_TYPE_Q6_K: r = TQ_TYPE_Q8_0; break;
    default:
        tq_error_set(err, TQ_ERR_UNSUPPORTED,
                     "tensor %s: %lld columns are not a multiple of %d (the block of %s), and "
                     "llama.cpp defines no fallback for %s",
                     name, (long long)ncols, qk, tq_type_name(t), tq_type_name(t));
        return TQ_TYPE_INVALID;
    }
    ++qs->n_fallback;
    const char *why = "";
    if (ncols % tq_type_get(r)->block_elems != 0) {
        r = TQ_TYPE_F16;
        why = " (must use f16: unusual shape)";
    }
    printf("warning: %-36s - %lld columns not divisible by %d (required for %s) -> falling back "
           "to %s%s\n",
           name, (long long)ncols, qk, tq_type_name(t), tq_type_name(r), why);
    return r;
}

/* llama_tensor_get_type. */
tq_type tq_quant_mix_choose(tq_quant_mix *qs, const char *name, const tq_tensor *t, tq_error *err) {
    if (!allows_quantization(name, t)) return t->type;
    tq_type nt = qs->fo->default_type;
    if (!qs->pure && tq_mix_is_quantized(nt)) {
        nt = mix_type(qs, nt, t, name, get_category(name), err);
        if (nt == TQ_TYPE_INVALID) return nt;
        nt = fallback_type(qs, name, t, nt, err);
    }
    return nt;
}

void tq_quant_mix_init(tq_quant_mix *m, const tq_ftype_option *fo, int pure, const char *arch,
                       int n_layer, int n_head, int n_head_kv, int n_expert) {
    memset(m, 0, sizeof *m);
    m->fo = fo;
    m->pure = pure;
    m->has_tied_embeddings = 1; /* until output.weight is seen */
    m->n_layer = n_layer;
    m->n_gqa = n_head_kv > 0 ? n_head / n_head_kv : 0;
    m->n_expert = n_expert;
    m->is_falcon = strcmp(arch, "falcon") == 0;
    m->is_70b = strcmp(arch, "llama") == 0 && n_layer == 80 && n_head != n_head_kv;
}

void tq_quant_mix_note(tq_quant_mix *m, const char *name) {
    category c = get_category(name);
    if (category_is_attn_v(c)) m->n_attention_wv++;
    if (c == CAT_OUTPUT) m->has_tied_embeddings = 0;
}

static int layer_number(const char *name) {
    int il;
    return sscanf(name, "blk.%d.", &il) == 1 ? il : -1;
}

int tq_mix_order(const char *a, const char *b) {
    int la = layer_number(a), lb = layer_number(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}
