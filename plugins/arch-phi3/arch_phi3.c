/* arch_phi3.c — the Phi-3 family (general.architecture = "phi3"): Phi-3-mini
 * 4k/128k, Phi-3.5-mini, Phi-3-medium (GQA), and files derived in that layout.
 *
 * This plugin only *describes* the forward pass (spec: gguf-llama-phi3.md §4);
 * backends run it. Per layer:
 *   h = rmsnorm(x) * attn_norm
 *   q|k|v = Wqkv h, split along the output axis (or Wq h, Wk h, Wv h when a
 *           layer stores them separately, as llama.cpp also accepts)
 *   q, k = rope(q, k): NeoX pairs (k, k + n_rot/2) on the unpermuted HF rows,
 *          only the first rope.dimension_count dims of each head (partial
 *          rotary), each pair's frequency divided by the LongRoPE table of the
 *          batch, cos and sin multiplied by rope.scaling.attn_factor
 *   x += Wo attention(q, k, v)                    (GQA, scale 1/sqrt(head_dim))
 *   h = rmsnorm(x) * ffn_norm
 *   gate|up = Wup h;  x += Wdown(silu(gate) * up)
 * logits = Woutput(rmsnorm(x) * output_norm), Woutput = token_embd if absent.
 *
 * LongRoPE table choice (§4.3): the long factors for a batch whose highest
 * position is at or past rope.scaling.original_context_length, else the short
 * ones — Hugging Face's rule and newer llama.cpp's. Keys already in the cache
 * keep the rotation they were stored with (both references do the same).
 *
 * Sliding window (phi3.attention.sliding_window) is not applied: llama.cpp
 * disabled it for phi3 (§4.5), and its outputs are the reference here.
 *
 * Chat: the Phi-3 format (§4.8), "<|role|>\n" + content + "<|end|>\n" per
 * message, then "<|assistant|>\n" — offered when the vocabulary has those
 * tokens and the file's chat template (if any) is the Phi-3 one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tqrun/tq_plugin.h>

#include "../common/tq_arch_util.h"

typedef struct phi3_layer {
    const tq_tensor *attn_norm;   /* [n_embd]                                  */
    const tq_tensor *wqkv;        /* [n_embd, n_q + 2 n_kv], or NULL when ...  */
    const tq_tensor *wq, *wk, *wv;/* ... these separate projections exist      */
    const tq_tensor *wo;          /* [n_q, n_embd]                             */
    const tq_tensor *ffn_norm;    /* [n_embd]                                  */
    const tq_tensor *ffn_up;      /* [n_embd, 2 n_ff]: gate rows, then up rows */
    const tq_tensor *ffn_down;    /* [n_ff, n_embd]                            */
} phi3_layer;

/* Chat marker tokens of the Phi-3 format; `system` is optional. */
enum { CHAT_NONE = 0, CHAT_PHI3 = 1 };

typedef struct phi3_model {
    int32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train, n_rot;
    int32_t n_ctx_orig;           /* rope.scaling.original_context_length      */
    float eps, freq_base, freq_scale, attn_factor;
    const tq_tensor *tok_embd;    /* [n_embd, n_vocab]                         */
    const tq_tensor *output_norm; /* [n_embd]                                  */
    const tq_tensor *output;      /* [n_embd, n_vocab] (may be tok_embd)       */
    const tq_tensor *factors_short, *factors_long; /* [n_rot/2] f32, or NULL  */
    phi3_layer *layers;           /* [n_layer]                                 */
    int chat;                     /* CHAT_*                                    */
    int chat_system;              /* the vocab has <|system|>                  */
    int32_t eog[3];               /* <|end|>, <|endoftext|> ids; -1 terminated */
} phi3_model;

/* ---- vocabulary lookups ------------------------------------------------- */

/* Id of the token whose text is exactly `text` in tokenizer.ggml.tokens, or
 * -1. A linear scan: done a handful of times at load. */
static int32_t find_token(const tq_model_source *src, const tq_value *tokens, const char *text) {
    const size_t n = strlen(text);
    for (uint64_t i = 0; i < tokens->count && i <= INT32_MAX; i++) {
        uint64_t len = 0;
        const char *s = src->array_str(src, tokens, i, &len);
        if (s && len == n && memcmp(s, text, n) == 0) return (int32_t)i;
    }
    return -1;
}

/* Whether haystack[0..len) contains needle. */
static int contains(const char *hay, uint64_t len, const char *needle) {
    const size_t n = strlen(needle);
    for (uint64_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(hay + i, needle, n) == 0) return 1;
    return 0;
}

/* End-of-generation ids and the chat format, both found by token text. */
static void read_vocab(phi3_model *m, const tq_model_source *src) {
    tq_value tokens = {.size = sizeof tokens};
    int k = 0;
    m->eog[0] = -1;
    if (src->meta(src, "tokenizer.ggml.tokens", &tokens) != TQ_OK || tokens.type != TQ_VAL_ARRAY ||
        tokens.elem_type != TQ_VAL_STRING)
        return; /* no vocabulary: the core's tokenizer reports that */
    static const char *const eog_texts[] = {"<|end|>", "<|endoftext|>"};
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = find_token(src, &tokens, eog_texts[i]);
        if (id >= 0) m->eog[k++] = id;
    }
    m->eog[k] = -1;

    const int markers = find_token(src, &tokens, "<|user|>") >= 0 &&
                        find_token(src, &tokens, "<|assistant|>") >= 0 &&
                        find_token(src, &tokens, "<|end|>") >= 0;
    m->chat_system = find_token(src, &tokens, "<|system|>") >= 0;
    /* A file that carries a template of another format (Phi-4's <|im_sep|>
     * one, say) is not rendered as Phi-3: llama.cpp detects the format the
     * same way, by these markers. */
    tq_value tmpl = {.size = sizeof tmpl};
    int tmpl_ok = 1;
    if (src->meta(src, "tokenizer.chat_template", &tmpl) == TQ_OK && tmpl.type == TQ_VAL_STRING)
        tmpl_ok = !contains(tmpl.str, tmpl.len, "<|im_sep|>") &&
                  contains(tmpl.str, tmpl.len, "<|assistant|>") &&
                  contains(tmpl.str, tmpl.len, "<|end|>");
    m->chat = markers && tmpl_ok ? CHAT_PHI3 : CHAT_NONE;
}

/* ---- load ---------------------------------------------------------------- */

/* freq_scale as llama.cpp derives it: 1/rope.scaling.factor when the key is
 * present. LongRoPE's own scaling is the factor tables, so "longrope" (and
 * its old name "su") only allows that linear part; other types go through
 * the shared helper, which refuses what it cannot compute. */
static float rope_freq_scale(tq_arch_reader *r) {
    char type[32];
    tq_arch_str(r, "rope.scaling.type", type, sizeof type, "none");
    if (strcmp(type, "longrope") != 0 && strcmp(type, "su") != 0) return tq_arch_rope_freq_scale(r);
    float factor = tq_arch_f32(r, "rope.scaling.factor", 0, 1.0f);
    return factor > 0.0f ? 1.0f / factor : 1.0f;
}

/* Bias tensors Phi-3 does not have; the graph below has no place for them,
 * so a file carrying one is refused instead of silently run without it. */
static int has_unsupported_bias(const tq_model_source *src, int32_t n_layer, char *name, size_t size) {
    static const char *const global[] = {"output.bias", "output_norm.bias"};
    static const char *const per_layer[] = {"attn_norm.bias", "attn_qkv.bias", "attn_q.bias",
                                            "attn_k.bias",    "attn_v.bias",   "attn_output.bias",
                                            "ffn_norm.bias",  "ffn_up.bias",   "ffn_down.bias"};
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++)
        if (src->tensor(src, global[i])) {
            snprintf(name, size, "%s", global[i]);
            return 1;
        }
    for (int32_t il = 0; il < n_layer; il++)
        for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++) {
            snprintf(name, size, "blk.%d.%s", il, per_layer[i]);
            if (src->tensor(src, name)) return 1;
        }
    return 0;
}

static tq_status phi3_load(void *state, const tq_model_source *src, void **out,
                           tq_model_info *info, tq_error *err) {
    (void)state;
    tq_arch_reader r = tq_arch_reader_init(src, "phi3", err);
    phi3_model *m = calloc(1, sizeof *m);
    if (!m) return tq_arch_fail(err, TQ_ERR_NOMEM, "out of memory");

    m->n_ctx_train = tq_arch_u32(&r, "context_length", 1, -1);
    m->n_embd = tq_arch_u32(&r, "embedding_length", 1, -1);
    m->n_layer = tq_arch_u32(&r, "block_count", 1, -1);
    m->n_head = tq_arch_u32(&r, "attention.head_count", 1, -1);
    m->n_head_kv = tq_arch_u32(&r, "attention.head_count_kv", 0, m->n_head);
    m->n_ff = tq_arch_u32(&r, "feed_forward_length", 0, 0);
    m->eps = tq_arch_f32(&r, "attention.layer_norm_rms_epsilon", 1, 0.0f);
    m->freq_base = tq_arch_f32(&r, "rope.freq_base", 0, 10000.0f);
    m->head_dim = m->n_head > 0 ? m->n_embd / m->n_head : 0;
    m->head_dim = tq_arch_u32(&r, "attention.key_length", 0, m->head_dim);
    m->n_rot = tq_arch_u32(&r, "rope.dimension_count", 0, m->head_dim);
    m->n_ctx_orig = tq_arch_u32(&r, "rope.scaling.original_context_length", 0, m->n_ctx_train);
    m->attn_factor = tq_arch_f32(&r, "rope.scaling.attn_factor", 0, 1.0f);
    m->freq_scale = rope_freq_scale(&r);
    if (r.failed) goto fail;
    if (m->n_layer <= 0 || m->n_head <= 0 || m->head_dim <= 0) {
        tq_arch_fail(err, TQ_ERR_FORMAT, "%s: phi3: block_count, head_count and head size must be positive",
                     src->path);
        goto fail;
    }
    if (m->n_head_kv <= 0 || m->n_head % m->n_head_kv != 0) {
        tq_arch_fail(err, TQ_ERR_FORMAT, "%s: phi3: %d heads cannot share %d KV heads", src->path,
                     m->n_head, m->n_head_kv);
        goto fail;
    }
    if (m->n_rot <= 0 || m->n_rot % 2 != 0 || m->n_rot > m->head_dim) {
        tq_arch_fail(err, TQ_ERR_FORMAT,
                     "%s: phi3: rope.dimension_count %d must be even and at most the head size %d",
                     src->path, m->n_rot, m->head_dim);
        goto fail;
    }
    if (!(m->attn_factor > 0.0f) || !isfinite(m->attn_factor)) {
        tq_arch_fail(err, TQ_ERR_FORMAT, "%s: phi3: rope.scaling.attn_factor must be positive",
                     src->path);
        goto fail;
    }
    char bias[64];
    if (has_unsupported_bias(src, m->n_layer, bias, sizeof bias)) {
        tq_arch_fail(err, TQ_ERR_UNSUPPORTED, "%s: phi3: bias tensor %s is not supported", src->path,
                     bias);
        goto fail;
    }

    const int64_t n_q = (int64_t)m->n_head * m->head_dim, n_kv = (int64_t)m->n_head_kv * m->head_dim;
    m->tok_embd = tq_arch_tensor(&r, "token_embd.weight", m->n_embd, -1);
    m->n_vocab = m->tok_embd ? (int32_t)m->tok_embd->ne[1] : 0;
    m->output_norm = tq_arch_tensor(&r, "output_norm.weight", m->n_embd, 1);
    m->output = tq_arch_tensor_opt(&r, "output.weight", m->n_embd, m->n_vocab);
    if (!m->output) m->output = m->tok_embd; /* tied embeddings (Phi-4-mini) */
    /* One table per file, shared by every layer (llama.cpp duplicates it). */
    m->factors_short = tq_arch_tensor_opt(&r, "rope_factors_short.weight", m->n_rot / 2, 1);
    m->factors_long = tq_arch_tensor_opt(&r, "rope_factors_long.weight", m->n_rot / 2, 1);
    if (r.failed) goto fail;
    const tq_tensor *tables[2] = {m->factors_short, m->factors_long};
    for (int i = 0; i < 2; i++)
        if (tables[i] && tables[i]->type != TQ_TYPE_F32) {
            tq_arch_fail(err, TQ_ERR_FORMAT, "%s: phi3: %s must be f32", src->path, tables[i]->name);
            goto fail;
        }

    m->layers = calloc((size_t)m->n_layer, sizeof *m->layers);
    if (!m->layers) {
        tq_arch_fail(err, TQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int32_t il = 0; il < m->n_layer && !r.failed; il++) {
        phi3_layer *L = &m->layers[il];
        char name[64];
        L->attn_norm = tq_arch_layer_tensor(&r, il, "attn_norm.weight", m->n_embd, 1);
        /* Fused or separate, decided per layer by what the file holds. */
        snprintf(name, sizeof name, "blk.%d.attn_qkv.weight", il);
        if (src->tensor(src, name)) {
            L->wqkv = tq_arch_layer_tensor(&r, il, "attn_qkv.weight", m->n_embd, n_q + 2 * n_kv);
        } else {
            L->wq = tq_arch_layer_tensor(&r, il, "attn_q.weight", m->n_embd, n_q);
            L->wk = tq_arch_layer_tensor(&r, il, "attn_k.weight", m->n_embd, n_kv);
            L->wv = tq_arch_layer_tensor(&r, il, "attn_v.weight", m->n_embd, n_kv);
        }
        L->wo = tq_arch_layer_tensor(&r, il, "attn_output.weight", n_q, m->n_embd);
        L->ffn_norm = tq_arch_layer_tensor(&r, il, "ffn_norm.weight", m->n_embd, 1);
        L->ffn_up = tq_arch_layer_tensor(&r, il, "ffn_up.weight", m->n_embd,
                                         m->n_ff > 0 ? 2 * (int64_t)m->n_ff : -1);
        if (L->ffn_up && m->n_ff == 0) {
            if (L->ffn_up->ne[1] % 2 != 0) {
                tq_arch_fail(err, TQ_ERR_FORMAT, "%s: phi3: %s has %lld rows, not [gate | up] halves",
                             src->path, L->ffn_up->name, (long long)L->ffn_up->ne[1]);
                r.failed = 1;
                break;
            }
            m->n_ff = (int32_t)(L->ffn_up->ne[1] / 2);
        }
        L->ffn_down = tq_arch_layer_tensor(&r, il, "ffn_down.weight", m->n_ff, m->n_embd);
    }
    if (r.failed) goto fail;
    read_vocab(m, src);

    info->n_layer = m->n_layer;
    info->n_embd = m->n_embd;
    info->n_head = m->n_head;
    info->n_head_kv = m->n_head_kv;
    info->head_dim = m->head_dim;
    info->n_vocab = m->n_vocab;
    info->n_ctx_train = m->n_ctx_train;
    info->eog_tokens = m->eog;
    *out = m;
    return TQ_OK;
fail:
    free(m->layers);
    free(m);
    return err ? err->code : TQ_ERR_FORMAT;
}

static void phi3_unload(void *model) {
    phi3_model *m = model;
    if (!m) return;
    free(m->layers);
    free(m);
}

/* ---- forward pass ---------------------------------------------------------- */

static tq_status phi3_build(void *model, tq_builder *b, const tq_batch_info *batch,
                            tq_tensor **logits, tq_error *err) {
    const phi3_model *m = model;
    const int64_t n_q = (int64_t)m->n_head * m->head_dim, n_kv = (int64_t)m->n_head_kv * m->head_dim;
    /* llama.cpp scales Q by this and attends with scale 1; the product is the
     * same, so the attention node carries it. */
    const float kq_scale = 1.0f / sqrtf((float)m->head_dim);
    /* One table for the whole batch (§4.3), chosen by its highest position. */
    const tq_tensor *factors = batch->pos_max >= m->n_ctx_orig ? m->factors_long : m->factors_short;
    tq_tensor *x = b->get_rows(b, m->tok_embd, b->tokens(b));
    for (int32_t il = 0; il < m->n_layer; il++) {
        const phi3_layer *L = &m->layers[il];
        tq_tensor *h = b->mul(b, b->rms_norm(b, x, m->eps), L->attn_norm);
        tq_tensor *q, *k, *v;
        if (L->wqkv) {
            tq_tensor *qkv = b->mul_mat(b, L->wqkv, h);
            q = b->view_rows(b, qkv, 0, n_q);
            k = b->view_rows(b, qkv, n_q, n_kv);
            v = b->view_rows(b, qkv, n_q + n_kv, n_kv);
        } else {
            q = b->mul_mat(b, L->wq, h);
            k = b->mul_mat(b, L->wk, h);
            v = b->mul_mat(b, L->wv, h);
        }
        q = b->reshape_3d(b, q, m->head_dim, m->n_head);
        k = b->reshape_3d(b, k, m->head_dim, m->n_head_kv);
        v = b->reshape_3d(b, v, m->head_dim, m->n_head_kv);
        q = b->rope(b, q, factors, m->n_rot, TQ_ROPE_NEOX, m->freq_base, m->freq_scale, m->attn_factor);
        k = b->rope(b, k, factors, m->n_rot, TQ_ROPE_NEOX, m->freq_base, m->freq_scale, m->attn_factor);
        tq_tensor *att = b->attention(b, il, q, k, v, kq_scale);
        x = b->add(b, x, b->mul_mat(b, L->wo, att));
        h = b->mul(b, b->rms_norm(b, x, m->eps), L->ffn_norm);
        tq_tensor *gu = b->mul_mat(b, L->ffn_up, h);
        tq_tensor *ff = b->swiglu(b, b->view_rows(b, gu, 0, m->n_ff), b->view_rows(b, gu, m->n_ff, m->n_ff));
        x = b->add(b, x, b->mul_mat(b, L->ffn_down, ff));
    }
    x = b->select_outputs(b, x);
    x = b->mul(b, b->rms_norm(b, x, m->eps), m->output_norm);
    *logits = b->mul_mat(b, m->output, x);
    if (!*logits) return tq_arch_fail(err, TQ_ERR_INVALID, "phi3: graph construction failed");
    return TQ_OK;
}

/* ---- chat ------------------------------------------------------------------ */

/* Appends to a caller buffer of `size` bytes, counting what does not fit. */
typedef struct text_out {
    char *buf;
    int64_t size, len;
} text_out;

static void put(text_out *o, const char *s) {
    const int64_t n = (int64_t)strlen(s);
    if (o->len < o->size) {
        const int64_t room = o->size - o->len;
        memcpy(o->buf + o->len, s, (size_t)(n < room ? n : room));
    }
    o->len += n;
}

/* The Phi-3 format without the file's leading {{ bos_token }}: the caller
 * tokenizes with add_special, which adds BOS exactly when the vocabulary
 * says so (tokenizer.ggml.add_bos_token), as llama.cpp's chat path does. */
static int64_t phi3_format_chat(void *model, const tq_chat_message *msgs, int32_t n_msgs,
                                int add_generation_prompt, char *buf, int64_t size) {
    const phi3_model *m = model;
    if (m->chat != CHAT_PHI3 || n_msgs < 0 || (n_msgs > 0 && !msgs) || size < 0 || (size > 0 && !buf))
        return -1;
    for (int32_t i = 0; i < n_msgs; i++) {
        const char *role = msgs[i].role;
        if (!role || !msgs[i].content) return -1;
        int known = strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0 ||
                    (strcmp(role, "system") == 0 && m->chat_system);
        if (!known) return -1;
    }
    text_out o = {buf, size, 0};
    for (int32_t i = 0; i < n_msgs; i++) {
        put(&o, "<|");
        put(&o, msgs[i].role);
        put(&o, "|>\n");
        put(&o, msgs[i].content);
        put(&o, "<|end|>\n");
    }
    if (add_generation_prompt) put(&o, "<|assistant|>\n");
    if (o.len < size) buf[o.len] = 0;
    return o.len;
}

/* ---- plugin ---------------------------------------------------------------- */

static const char *const phi3_names[] = {"phi3", NULL};

static const tq_arch_iface phi3_iface = {
    .size = sizeof(tq_arch_iface),
    .gguf_names = phi3_names,
    .load = phi3_load,
    .unload = phi3_unload,
    .build_graph = phi3_build,
    .format_chat = phi3_format_chat,
};

TQ_ARCH_PLUGIN(phi3_iface, "org.tqrun.arch.phi3", "phi3", "0.1.0",
               "Phi-3 family (Phi-3/3.5 mini, Phi-3-medium; fused QKV, LongRoPE)");
