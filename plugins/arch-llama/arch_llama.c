/* arch_llama.c — the Llama family (general.architecture = "llama"): Llama 1/2/3,
 * Mistral-style GQA models, TinyLlama, SmolLM, stories*.
 *
 * This plugin only *describes* the forward pass (spec: gguf-llama-phi3.md §3);
 * backends run it. Per layer:
 *   h = rmsnorm(x) * attn_norm
 *   q, k, v = Wq h, Wk h, Wv h; q, k = rope(q, k) with adjacent pairs (the
 *            converter permuted Q/K rows for that, §3.1)
 *   x += Wo attention(q, k, v)                    (GQA, scale 1/sqrt(head_dim))
 *   h = rmsnorm(x) * ffn_norm
 *   x += Wdown(silu(Wgate h) * Wup h)
 * logits = Woutput(rmsnorm(x) * output_norm), Woutput = token_embd if absent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tqrun/tq_plugin.h>

#include "../common/tq_arch_util.h"

typedef struct llama_layer {
    const tq_tensor *attn_norm;   /* [n_embd]                       */
    const tq_tensor *wq;          /* [n_embd, n_head * head_dim]    */
    const tq_tensor *wk;          /* [n_embd, n_head_kv * head_dim] */
    const tq_tensor *wv;          /* [n_embd, n_head_kv * head_dim] */
    const tq_tensor *wo;          /* [n_head * head_dim, n_embd]    */
    const tq_tensor *ffn_norm;    /* [n_embd]                       */
    const tq_tensor *ffn_gate;    /* [n_embd, n_ff]                 */
    const tq_tensor *ffn_up;      /* [n_embd, n_ff]                 */
    const tq_tensor *ffn_down;    /* [n_ff, n_embd]                 */
} llama_layer;

typedef struct llama_model {
    const tq_host *host;
    int32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train, n_rot;
    float eps, freq_base, freq_scale;
    const tq_tensor *tok_embd;    /* [n_embd, n_vocab]              */
    const tq_tensor *output_norm; /* [n_embd]                       */
    const tq_tensor *output;      /* [n_embd, n_vocab] (may be tok_embd) */
    const tq_tensor *rope_freqs;  /* [n_rot/2] llama3 factors, or NULL */
    llama_layer *layers;          /* [n_layer]                      */
} llama_model;

static tq_status llama_load(void *state, const tq_model_source *src, void **out,
                            tq_model_info *info, tq_error *err) {
    const tq_host *host = state;
    tq_arch_reader r = tq_arch_reader_init(src, "llama", err);
    llama_model *m = calloc(1, sizeof *m);
    if (!m) return tq_arch_fail(err, TQ_ERR_NOMEM, "out of memory");
    m->host = host;

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
    m->freq_scale = tq_arch_rope_freq_scale(&r);
    if (r.failed) goto fail;
    if (m->n_head_kv <= 0 || m->n_head % m->n_head_kv != 0) {
        tq_arch_fail(err, TQ_ERR_FORMAT, "llama: %d heads cannot share %d KV heads", m->n_head,
                     m->n_head_kv);
        goto fail;
    }
    if (m->n_rot != m->head_dim) {
        /* llama.cpp refuses this too: Llama rotates the whole head. */
        tq_arch_fail(err, TQ_ERR_FORMAT, "llama: rope.dimension_count %d != head size %d",
                     m->n_rot, m->head_dim);
        goto fail;
    }

    const int64_t n_q = (int64_t)m->n_head * m->head_dim, n_kv = (int64_t)m->n_head_kv * m->head_dim;
    m->tok_embd = tq_arch_tensor(&r, "token_embd.weight", m->n_embd, -1);
    m->n_vocab = m->tok_embd ? (int32_t)m->tok_embd->ne[1] : 0;
    m->output_norm = tq_arch_tensor(&r, "output_norm.weight", m->n_embd, 1);
    m->output = tq_arch_tensor_opt(&r, "output.weight", m->n_embd, m->n_vocab);
    if (!m->output) m->output = m->tok_embd; /* tied embeddings */
    m->rope_freqs = tq_arch_tensor_opt(&r, "rope_freqs.weight", m->n_rot / 2, 1);
    m->layers = calloc((size_t)(m->n_layer > 0 ? m->n_layer : 1), sizeof *m->layers);
    if (!m->layers) {
        tq_arch_fail(err, TQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int32_t il = 0; il < m->n_layer && !r.failed; il++) {
        llama_layer *L = &m->layers[il];
        L->attn_norm = tq_arch_layer_tensor(&r, il, "attn_norm.weight", m->n_embd, 1);
        L->wq = tq_arch_layer_tensor(&r, il, "attn_q.weight", m->n_embd, n_q);
        L->wk = tq_arch_layer_tensor(&r, il, "attn_k.weight", m->n_embd, n_kv);
        L->wv = tq_arch_layer_tensor(&r, il, "attn_v.weight", m->n_embd, n_kv);
        L->wo = tq_arch_layer_tensor(&r, il, "attn_output.weight", n_q, m->n_embd);
        L->ffn_norm = tq_arch_layer_tensor(&r, il, "ffn_norm.weight", m->n_embd, 1);
        L->ffn_gate = tq_arch_layer_tensor(&r, il, "ffn_gate.weight", m->n_embd, -1);
        if (L->ffn_gate && m->n_ff == 0) m->n_ff = (int32_t)L->ffn_gate->ne[1];
        L->ffn_up = tq_arch_layer_tensor(&r, il, "ffn_up.weight", m->n_embd, m->n_ff);
        L->ffn_down = tq_arch_layer_tensor(&r, il, "ffn_down.weight", m->n_ff, m->n_embd);
        if (L->ffn_gate && L->ffn_gate->ne[1] != m->n_ff)
            tq_arch_fail_shape(&r, L->ffn_gate, m->n_embd, m->n_ff);
    }
    if (r.failed) goto fail;

    info->n_layer = m->n_layer;
    info->n_embd = m->n_embd;
    info->n_head = m->n_head;
    info->n_head_kv = m->n_head_kv;
    info->head_dim = m->head_dim;
    info->n_vocab = m->n_vocab;
    info->n_ctx_train = m->n_ctx_train;
    info->eog_tokens = NULL;
    *out = m;
    return TQ_OK;
fail:
    free(m->layers);
    free(m);
    return err ? err->code : TQ_ERR_FORMAT;
}

static void llama_unload(void *model) {
    llama_model *m = model;
    if (!m) return;
    free(m->layers);
    free(m);
}

static tq_status llama_build(void *model, tq_builder *b, const tq_batch_info *batch,
                             tq_tensor **logits, tq_error *err) {
    const llama_model *m = model;
    (void)batch; /* Llama needs no per-batch choice (unlike LongRoPE) */
    const float kq_scale = 1.0f / sqrtf((float)m->head_dim);
    tq_tensor *x = b->get_rows(b, m->tok_embd, b->tokens(b));
    for (int32_t il = 0; il < m->n_layer; il++) {
        const llama_layer *L = &m->layers[il];
        tq_tensor *h = b->mul(b, b->rms_norm(b, x, m->eps), L->attn_norm);
        tq_tensor *q = b->reshape_3d(b, b->mul_mat(b, L->wq, h), m->head_dim, m->n_head);
        tq_tensor *k = b->reshape_3d(b, b->mul_mat(b, L->wk, h), m->head_dim, m->n_head_kv);
        tq_tensor *v = b->reshape_3d(b, b->mul_mat(b, L->wv, h), m->head_dim, m->n_head_kv);
        q = b->rope(b, q, m->rope_freqs, m->n_rot, TQ_ROPE_NORMAL, m->freq_base, m->freq_scale, 1.0f);
        k = b->rope(b, k, m->rope_freqs, m->n_rot, TQ_ROPE_NORMAL, m->freq_base, m->freq_scale, 1.0f);
        tq_tensor *att = b->attention(b, il, q, k, v, kq_scale);
        x = b->add(b, x, b->mul_mat(b, L->wo, att));
        h = b->mul(b, b->rms_norm(b, x, m->eps), L->ffn_norm);
        tq_tensor *ff = b->swiglu(b, b->mul_mat(b, L->ffn_gate, h), b->mul_mat(b, L->ffn_up, h));
        x = b->add(b, x, b->mul_mat(b, L->ffn_down, ff));
    }
    x = b->select_outputs(b, x);
    x = b->mul(b, b->rms_norm(b, x, m->eps), m->output_norm);
    *logits = b->mul_mat(b, m->output, x);
    if (!*logits) return tq_arch_fail(err, TQ_ERR_INVALID, "llama: graph construction failed");
    return TQ_OK;
}

static const char *const llama_names[] = {"llama", NULL};

static const tq_arch_iface llama_iface = {
    .size = sizeof(tq_arch_iface),
    .gguf_names = llama_names,
    .load = llama_load,
    .unload = llama_unload,
    .build_graph = llama_build,
    .format_chat = NULL, /* Llama GGUFs carry many templates; none rendered yet */
};

TQ_ARCH_PLUGIN(llama_iface, "org.tqrun.arch.llama", "llama", "0.1.0",
               "Llama family (Llama 1-3, Mistral-style GQA, TinyLlama, stories)");
