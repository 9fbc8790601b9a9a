/* tq_session.c — model loading and batched evaluation. */
#include "tq_session.h"

#include <stdlib.h>
#include <string.h>

#include "tq_error.h"
#include "tq_gguf.h"
#include "tq_graph.h"
#include "tq_log.h"
#include "tq_registry.h"
#include "tq_sched.h"
#include "tq_tokenizer.h"

struct tq_session {
    tq_gguf *gguf;
    tq_tokenizer *tok;
    const tq_arch_iface *arch;
    void *model;
    tq_model_info info;
    const char *arch_name;
    const tq_kv_iface *kv;
    tq_kv_cache *cache;
    tq_sched *sched;
    int32_t n_ctx, n_batch;
    void *arena;
    size_t arena_size;
};

static tq_status fail_path(tq_error *err, const char *path) {
    /* Messages from modules that do not know the file get its name. */
    if (err && path && strncmp(err->message, path, strlen(path)) != 0) tq_error_prefix(err, path);
    return err ? err->code : TQ_ERR_INVALID;
}

tq_status tq_session_open(const tq_registry *reg, const tq_session_params *p, tq_session **out,
                          tq_error *err) {
    *out = NULL;
    if (!p->model_path) return tq_error_set(err, TQ_ERR_INVALID, "no model given (use -m FILE)");
    tq_session *s = calloc(1, sizeof *s);
    if (!s) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    tq_status st = tq_gguf_open(p->model_path, &s->gguf, err);
    if (st != TQ_OK) goto fail;
    if (!p->mmap) {
        int copied;
        st = tq_gguf_copy_weights(s->gguf, &copied, err);
        if (st != TQ_OK) goto fail;
        if (!copied) tq_log(TQ_LOG_INFO, "core", "%s: weights used in place (mapped)", p->model_path);
    }

    st = tq_gguf_get_str(s->gguf, "general.architecture", &s->arch_name, err);
    if (st != TQ_OK) {
        if (st == TQ_ERR_NOT_FOUND)
            tq_error_set(err, TQ_ERR_FORMAT, "%s: no general.architecture key", p->model_path);
        st = fail_path(err, p->model_path);
        goto fail;
    }
    void *arch_state = NULL;
    s->arch = tq_registry_arch(reg, s->arch_name, &arch_state);
    if (!s->arch) {
        st = tq_error_set(err, TQ_ERR_UNSUPPORTED,
                          "%s: unknown architecture '%s' (no arch plugin handles it; see "
                          "tqrun --list-plugins)", p->model_path, s->arch_name);
        goto fail;
    }
    s->info.size = sizeof s->info;
    st = s->arch->load(arch_state, tq_gguf_source(s->gguf), &s->model, &s->info, err);
    if (st != TQ_OK) {
        st = fail_path(err, p->model_path);
        goto fail;
    }
    st = tq_tokenizer_load(s->gguf, &s->tok, err);
    if (st != TQ_OK) {
        st = fail_path(err, p->model_path);
        goto fail;
    }

    s->n_ctx = p->n_ctx > 0 ? p->n_ctx : (s->info.n_ctx_train < 4096 ? s->info.n_ctx_train : 4096);
    s->n_batch = p->n_batch > 0 ? p->n_batch : 2048;
    if (s->n_batch > s->n_ctx) s->n_batch = s->n_ctx;

    const char *kv_name = p->kv ? p->kv : "f16";
    void *kv_state = NULL;
    s->kv = tq_registry_iface(reg, TQ_PLUGIN_KV, kv_name, TQ_IFACE_KV, &kv_state);
    if (!s->kv) {
        st = tq_error_set(err, TQ_ERR_NOT_FOUND,
                          "KV plugin '%s' is not loaded (see tqrun --list-plugins)", kv_name);
        goto fail;
    }
    tq_kv_params kp = {
        .size = sizeof kp,
        .n_layers = s->info.n_layer,
        .n_kv_heads = s->info.n_head_kv,
        .head_dim = s->info.head_dim,
        .max_tokens = s->n_ctx,
        .k_type = p->cache_type_k ? p->cache_type_k : "f16",
        .v_type = p->cache_type_v ? p->cache_type_v : "f16",
    };
    st = s->kv->create(kv_state, &kp, &s->cache, err);
    if (st != TQ_OK) goto fail;

    st = tq_sched_new(reg, p->backends, &s->sched, err);
    if (st != TQ_OK) goto fail;
    *out = s;
    return TQ_OK;
fail:
    tq_session_free(s);
    return st;
}

void tq_session_free(tq_session *s) {
    if (!s) return;
    tq_sched_free(s->sched);
    if (s->cache) s->kv->destroy(s->cache);
    if (s->model) s->arch->unload(s->model);
    tq_tokenizer_free(s->tok);
    tq_gguf_close(s->gguf);
    free(s->arena);
    free(s);
}

const tq_tokenizer *tq_session_tokenizer(const tq_session *s) { return s->tok; }
const tq_gguf *tq_session_gguf(const tq_session *s) { return s->gguf; }
const tq_model_info *tq_session_info(const tq_session *s) { return &s->info; }
int32_t tq_session_n_ctx(const tq_session *s) { return s->n_ctx; }
int32_t tq_session_n_vocab(const tq_session *s) { return s->info.n_vocab; }
const char *tq_session_arch(const tq_session *s) { return s->arch_name; }
const char *tq_session_backends(const tq_session *s) { return tq_sched_chain(s->sched); }

int tq_session_is_eog(const tq_session *s, int32_t id) {
    if (tq_tokenizer_is_eog(s->tok, id)) return 1;
    for (const int32_t *e = s->info.eog_tokens; e && *e >= 0; e++)
        if (*e == id) return 1;
    return 0;
}

int64_t tq_session_format_chat(const tq_session *s, const tq_chat_message *msgs, int32_t n,
                               int add_generation_prompt, char *buf, int64_t size) {
    if (!TQ_HAS(s->arch, tq_arch_iface, format_chat) || !s->arch->format_chat) return -1;
    return s->arch->format_chat(s->model, msgs, n, add_generation_prompt, buf, size);
}

void tq_session_truncate(tq_session *s, int32_t n_pos) { s->kv->truncate(s->cache, n_pos); }
uint64_t tq_session_kv_bytes(const tq_session *s) { return s->kv->bytes_used(s->cache); }

tq_status tq_session_kv_fill_synthetic(tq_session *s, int32_t n, uint64_t seed, tq_error *err) {
    if (n < 0 || n > s->n_ctx)
        return tq_error_set(err, TQ_ERR_RANGE, "%d synthetic positions do not fit the context of %d",
                            n, s->n_ctx);
    s->kv->truncate(s->cache, 0);
    const int32_t chunk = 256;
    const size_t row = (size_t)s->info.n_head_kv * (size_t)s->info.head_dim;
    float *k = malloc(sizeof(float) * row * (size_t)chunk * 2);
    if (!k) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    float *v = k + row * (size_t)chunk;
    tq_status st = TQ_OK;
    uint64_t x = seed * UINT64_C(0x9e3779b97f4a7c15) + 1;
    for (int32_t pos = 0; pos < n && st == TQ_OK; pos += chunk) {
        const int32_t m = n - pos < chunk ? n - pos : chunk;
        for (int32_t il = 0; il < s->info.n_layer && st == TQ_OK; il++) {
            /* xorshift64: uniform in [-sqrt(3), sqrt(3)), unit variance */
            for (size_t i = 0; i < row * (size_t)m * 2; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                k[i] = ((float)(x >> 40) * (1.0f / 16777216.0f) - 0.5f) * 3.4641016f;
            }
            /* k and v are adjacent: v starts right after k's m rows */
            memmove(v, k + row * (size_t)m, sizeof(float) * row * (size_t)m);
            st = s->kv->append(s->cache, il, pos, m, k, v, err);
        }
    }
    free(k);
    return st;
}

/* Builds, plans and runs the graph of one batch. */
static tq_status decode_batch(tq_session *s, const int32_t *tokens, int32_t n, int32_t pos0,
                              const int32_t *rows, int32_t n_rows, float *logits, tq_error *err) {
    tq_batch_info bi = {sizeof bi, n, pos0, pos0 + n - 1, s->n_ctx};
    tq_graph_kv kv = {s->kv, s->cache};
    tq_graph_builder *gb = tq_graph_builder_new(&bi, rows, n_rows, kv);
    if (!gb) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    tq_cgraph *g = tq_graph_builder_graph(gb);
    tq_tensor *out = NULL;
    tq_status st = s->arch->build_graph(s->model, tq_graph_builder_iface(gb), &bi, &out, err);
    if (g->failed) {
        *err = g->err;
        st = TQ_ERR_INVALID;
    }
    if (st == TQ_OK && (!out || out->ne[0] != s->info.n_vocab || out->ne[1] != g->n_outputs))
        st = tq_error_set(err, TQ_ERR_INVALID, "arch plugin returned logits of the wrong shape");
    if (st == TQ_OK) {
        size_t need = tq_graph_plan(g);
        if (need == SIZE_MAX) st = tq_error_set(err, TQ_ERR_NOMEM, "out of memory planning the graph");
        else if (need > s->arena_size) {
            free(s->arena);
            s->arena = malloc(need);
            s->arena_size = s->arena ? need : 0;
            if (!s->arena) st = tq_error_set(err, TQ_ERR_NOMEM, "cannot allocate %zu bytes", need);
        }
    }
    if (st == TQ_OK) {
        tq_graph_bind(g, s->arena);
        int32_t *tk = g->tokens->t.data, *ps = g->positions->t.data;
        for (int32_t i = 0; i < n; i++) {
            if (tokens[i] < 0 || tokens[i] >= s->info.n_vocab) {
                st = tq_error_set(err, TQ_ERR_RANGE, "token id %d outside the vocabulary (%d)",
                                  tokens[i], s->info.n_vocab);
                break;
            }
            tk[i] = tokens[i];
            ps[i] = pos0 + i;
        }
        if (g->out_ids) memcpy(g->out_ids->t.data, rows, (size_t)n_rows * sizeof(int32_t));
    }
    if (st == TQ_OK) st = tq_sched_run(s->sched, g, err);
    if (st == TQ_OK && logits)
        memcpy(logits, out->data, (size_t)n_rows * (size_t)s->info.n_vocab * sizeof(float));
    tq_graph_builder_free(gb);
    return st;
}

tq_status tq_session_decode(tq_session *s, const int32_t *tokens, int32_t n, int32_t pos0,
                            const int32_t *out_rows, int32_t n_out, float *logits, tq_error *err) {
    if (n <= 0) return tq_error_set(err, TQ_ERR_INVALID, "nothing to decode");
    if (pos0 < 0 || pos0 + n > s->n_ctx)
        return tq_error_set(err, TQ_ERR_RANGE,
                            "%d tokens at position %d do not fit the context of %d tokens (use -c)",
                            n, pos0, s->n_ctx);
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)(s->n_batch + 1));
    if (!rows) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    tq_status st = TQ_OK;
    int32_t next_out = 0; /* index into out_rows */
    for (int32_t start = 0; start < n && st == TQ_OK; start += s->n_batch) {
        const int32_t m = n - start < s->n_batch ? n - start : s->n_batch;
        int32_t n_rows = 0;
        if (!out_rows) {
            for (int32_t i = 0; i < m; i++) rows[n_rows++] = i;
        } else {
            while (next_out < n_out && out_rows[next_out] < start + m) {
                if (out_rows[next_out] < start || (n_rows && out_rows[next_out] - start <= rows[n_rows - 1])) {
                    st = tq_error_set(err, TQ_ERR_INVALID, "output rows must be increasing");
                    break;
                }
                rows[n_rows++] = out_rows[next_out++] - start;
            }
        }
        if (st != TQ_OK) break;
        float *dst = logits ? logits + (size_t)(out_rows ? next_out - n_rows : start) * (size_t)s->info.n_vocab : NULL;
        if (n_rows == 0) {
            /* The graph still has to run to fill the cache; compute one row
             * and throw it away. */
            rows[0] = m - 1;
            st = decode_batch(s, tokens + start, m, pos0 + start, rows, 1, NULL, err);
        } else {
            st = decode_batch(s, tokens + start, m, pos0 + start, rows, n_rows, dst, err);
        }
    }
    if (st == TQ_OK && out_rows && next_out != n_out)
        st = tq_error_set(err, TQ_ERR_INVALID, "output row %d is outside the batch", out_rows[next_out]);
    free(rows);
    return st;
}
