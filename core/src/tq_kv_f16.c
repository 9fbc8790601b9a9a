/* tq_kv_f16.c — the built-in f16 KV cache.
 *
 * Layout per layer and per tensor (K, V): [n_kv_heads][max_tokens][head_dim]
 * so one head's keys are contiguous — the attention loop walks them in order
 * and `view` can hand backends a plain strided tensor. */
#include "tq_kv_f16.h"

#include <stdlib.h>
#include <string.h>

#include "tq_error.h"
#include "tq_half.h"

struct tq_kv_cache {
    const tq_host *host;
    tq_kv_params p;
    tq_type type;         /* TQ_TYPE_F16 or TQ_TYPE_F32                    */
    size_t elem;          /* bytes per element                             */
    size_t layer_bytes;   /* bytes of one layer's K (or V)                 */
    char *k, *v;          /* n_layers * layer_bytes each                   */
    int32_t n_pos;        /* positions stored (highest + 1), layer 0       */
};

static tq_type format_type(const char *name) {
    if (!name || strcmp(name, "f16") == 0) return TQ_TYPE_F16;
    if (strcmp(name, "f32") == 0) return TQ_TYPE_F32;
    return TQ_TYPE_INVALID;
}

static tq_status kv_create(void *state, const tq_kv_params *p, tq_kv_cache **out, tq_error *err) {
    const tq_host *host = state;
    tq_type kt = format_type(p->k_type), vt = format_type(p->v_type);
    if (kt == TQ_TYPE_INVALID || vt == TQ_TYPE_INVALID)
        return tq_error_set(err, TQ_ERR_UNSUPPORTED,
                            "KV format '%s' is not served by the built-in cache (f16, f32)",
                            kt == TQ_TYPE_INVALID ? p->k_type : p->v_type);
    if (kt != vt)
        return tq_error_set(err, TQ_ERR_UNSUPPORTED,
                            "the built-in cache needs the same K and V format (got %s, %s)",
                            p->k_type, p->v_type);
    if (p->n_layers <= 0 || p->n_kv_heads <= 0 || p->head_dim <= 0 || p->max_tokens <= 0)
        return tq_error_set(err, TQ_ERR_INVALID, "KV cache: bad dimensions");
    tq_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return tq_error_set(err, TQ_ERR_NOMEM, "KV cache: out of memory");
    c->host = host;
    c->p = *p;
    c->p.k_type = c->p.v_type = NULL; /* not owned */
    c->type = kt;
    c->elem = kt == TQ_TYPE_F16 ? 2 : 4;
    c->layer_bytes = (size_t)p->n_kv_heads * (size_t)p->max_tokens * (size_t)p->head_dim * c->elem;
    /* Untouched pages cost nothing: a large context only uses memory as it fills. */
    c->k = host->alloc(c->layer_bytes * (size_t)p->n_layers, 64);
    c->v = host->alloc(c->layer_bytes * (size_t)p->n_layers, 64);
    if (!c->k || !c->v) {
        const size_t bytes = 2 * c->layer_bytes * (size_t)p->n_layers;
        host->free(c->k);
        host->free(c->v);
        free(c);
        return tq_error_set(err, TQ_ERR_NOMEM, "KV cache: cannot allocate %zu bytes", bytes);
    }
    *out = c;
    return TQ_OK;
}

static void kv_destroy(tq_kv_cache *c) {
    if (!c) return;
    c->host->free(c->k);
    c->host->free(c->v);
    free(c);
}

static char *slot(const tq_kv_cache *c, char *base, int32_t layer, int32_t head, int32_t pos) {
    return base + (size_t)layer * c->layer_bytes +
           (((size_t)head * (size_t)c->p.max_tokens + (size_t)pos) * (size_t)c->p.head_dim) * c->elem;
}

static void store_row(const tq_kv_cache *c, char *dst, const float *src) {
    if (c->type == TQ_TYPE_F32) {
        memcpy(dst, src, (size_t)c->p.head_dim * 4);
        return;
    }
    uint16_t *h = (uint16_t *)dst;
    const int32_t hd = c->p.head_dim;
    int32_t d = 0;
    /* Fixed-length inner loops: -O2's cheap vectorizer takes them (about
     * 4x faster than one conversion at a time), a loop of runtime length
     * it leaves scalar. */
    for (; d + 8 <= hd; d += 8)
        for (int32_t i = 0; i < 8; i++) h[d + i] = tq_f32_to_f16(src[d + i]);
    for (; d < hd; d++) h[d] = tq_f32_to_f16(src[d]);
}

static void load_row(const tq_kv_cache *c, const char *src, float *dst) {
    if (c->type == TQ_TYPE_F32) {
        memcpy(dst, src, (size_t)c->p.head_dim * 4);
        return;
    }
    const uint16_t *h = (const uint16_t *)src;
    for (int32_t d = 0; d < c->p.head_dim; d++) dst[d] = tq_f16_to_f32(h[d]);
}

/* One append: rows (token, head) of k and v into layer's slots. */
typedef struct append_task {
    const tq_kv_cache *c;
    int32_t layer, pos, n;
    const float *k, *v;
} append_task;

/* Rows [n * nh * ith / nth, n * nh * (ith + 1) / nth) of an append. */
static void append_worker(void *user, int ith, int nth) {
    const append_task *a = user;
    const tq_kv_cache *c = a->c;
    const int64_t nh = c->p.n_kv_heads, rows = (int64_t)a->n * nh;
    for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; r++) {
        const int32_t t = (int32_t)(r / nh), h = (int32_t)(r % nh);
        const size_t src = (size_t)r * (size_t)c->p.head_dim;
        store_row(c, slot(c, c->k, a->layer, h, a->pos + t), a->k + src);
        store_row(c, slot(c, c->v, a->layer, h, a->pos + t), a->v + src);
    }
}

/* Rows an append must have before it goes to the thread pool: a decode
 * step's few rows cost less than waking the workers. */
#define APPEND_PARALLEL_ROWS 64

static tq_status kv_append(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *k,
                           const float *v, tq_error *err) {
    if (layer < 0 || layer >= c->p.n_layers || pos < 0 || n < 0 || pos + n > c->p.max_tokens)
        return tq_error_set(err, TQ_ERR_RANGE,
                            "KV cache: positions %d..%d of layer %d outside a %d-token cache", pos,
                            pos + n - 1, layer, c->p.max_tokens);
    append_task a = {c, layer, pos, n, k, v};
    /* A prompt's rows in parallel: converting them on one thread left the
     * other cores idle for about 3% of a tm30m pp512 (a one-thread host
     * runs the task on the caller). */
    if ((int64_t)n * c->p.n_kv_heads >= APPEND_PARALLEL_ROWS)
        c->host->parallel_for(append_worker, &a);
    else
        append_worker(&a, 0, 1);
    if (layer == 0 && pos + n > c->n_pos) c->n_pos = pos + n;
    return TQ_OK;
}

static void kv_truncate(tq_kv_cache *c, int32_t n_pos) {
    if (n_pos < c->n_pos) c->n_pos = n_pos < 0 ? 0 : n_pos;
}

static uint64_t kv_bytes_used(const tq_kv_cache *c) {
    return (uint64_t)c->n_pos * (uint64_t)c->p.n_layers * 2u * (uint64_t)c->p.n_kv_heads *
           (uint64_t)c->p.head_dim * c->elem;
}

static tq_status kv_read(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, float *k_out,
                         float *v_out, tq_error *err) {
    if (layer < 0 || layer >= c->p.n_layers || pos < 0 || n < 0 || pos + n > c->p.max_tokens)
        return tq_error_set(err, TQ_ERR_RANGE, "KV cache: read outside the cache");
    const int32_t hd = c->p.head_dim;
    for (int32_t h = 0; h < c->p.n_kv_heads; h++)
        for (int32_t t = 0; t < n; t++) {
            const size_t dst = ((size_t)h * (size_t)n + (size_t)t) * (size_t)hd;
            load_row(c, slot(c, c->k, layer, h, pos + t), k_out + dst);
            load_row(c, slot(c, c->v, layer, h, pos + t), v_out + dst);
        }
    return TQ_OK;
}

static tq_status kv_view(tq_kv_cache *c, int32_t layer, int32_t which, int32_t n_kv, tq_tensor *out) {
    if (layer < 0 || layer >= c->p.n_layers || n_kv <= 0 || n_kv > c->p.max_tokens)
        return TQ_ERR_RANGE;
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    out->type = c->type;
    out->ne[0] = c->p.head_dim;
    out->ne[1] = n_kv;
    out->ne[2] = c->p.n_kv_heads;
    out->ne[3] = 1;
    out->nb[0] = c->elem;
    out->nb[1] = (size_t)c->p.head_dim * c->elem;
    out->nb[2] = out->nb[1] * (size_t)c->p.max_tokens;
    out->nb[3] = out->nb[2] * (size_t)c->p.n_kv_heads;
    out->data = (which ? c->v : c->k) + (size_t)layer * c->layer_bytes;
    out->name = which ? "cache_v" : "cache_k";
    return TQ_OK;
}

static const tq_kv_iface kv_f16_iface = {
    .size = sizeof(tq_kv_iface),
    .create = kv_create,
    .destroy = kv_destroy,
    .append = kv_append,
    .truncate = kv_truncate,
    .bytes_used = kv_bytes_used,
    .read = kv_read,
    .view = kv_view,
    .attention = NULL,
};

static tq_status kv_init(const tq_host *host, void **state, tq_error *err) {
    (void)err;
    *state = (void *)host;
    return TQ_OK;
}

static void kv_deinit(void *state) { (void)state; }

static const void *kv_get_interface(void *state, const char *id) {
    (void)state;
    return strcmp(id, TQ_IFACE_KV) == 0 ? &kv_f16_iface : NULL;
}

const tq_plugin_entry tq_kv_f16_entry = {
    .size = sizeof(tq_plugin_entry),
    .abi_major = TQ_ABI_MAJOR,
    .abi_minor = TQ_ABI_MINOR,
    .kind = TQ_PLUGIN_KV,
    .id = "org.tqrun.kv.f16",
    .name = "f16",
    .version = "0.1.0",
    .description = "plain f16/f32 KV cache, the baseline (built in)",
    .required_cpu = 0,
    .priority = 0,
    .init = kv_init,
    .deinit = kv_deinit,
    .get_interface = kv_get_interface,
};
