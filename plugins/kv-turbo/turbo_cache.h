/* turbo_cache.h — the turbo KV cache object, shared by the cache operations
 * (kv_turbo.c) and the compressed-domain attention (turbo_attention.c).
 *
 * Per tensor (K and V) and per (layer, KV head):
 *   - codes: one encoded row per position >= sinks ([max_tokens] rows,
 *     allocated once; untouched pages cost nothing until used);
 *   - sinks: the first `sinks` positions in f16, never quantized;
 *   - ring: an f16 copy of the last `window` positions (slot = pos % window,
 *     tagged with its position per layer). Codes exist for those positions
 *     too, so the window can shrink (truncate) without losing anything.
 * A tensor stored as f16 keeps neither sinks nor a window (all is exact).
 *
 * Window semantics follow generation: a query at position p reads key j in
 * f16 when p - j < window. During a batch that is also true for keys of the
 * same batch, which the ring may not hold yet: the last appended batch of
 * one layer stays in an f16 staging area until that layer's attention has
 * run (or the next append), then its last `window` rows enter the ring.
 *
 * K-centering: for tq keys, mu[layer][head] (f32) is the mean of the first
 * appended chunk's keys past the sinks; codes hold k - mu. Scores of coded
 * keys get q.mu added back, so attention is exact in the mean (softmax is
 * shift invariant only per query, so adding it back keeps coded and f16 keys
 * on one scale). Cleared when the cache is truncated to 0. */
#ifndef TURBO_CACHE_H
#define TURBO_CACHE_H

#include <stdint.h>
#include <tqrun/tq_plugin.h>

#include "turbo_codec.h"

typedef struct turbo_settings {
    int32_t sinks;      /* first positions kept in f16                  */
    int32_t window;     /* most recent positions kept in f16 (0 = off)  */
    int k_center;       /* subtract the per-(layer, head) key mean      */
    uint64_t seed;      /* rotation signs                               */
} turbo_settings;

typedef struct turbo_store {
    turbo_codec codec;
    const turbo_kernels *kern;   /* tq formats only                        */
    int32_t sinks, window;       /* effective (0 for f16)                  */
    uint8_t *codes;              /* [layer][head][max_tokens][row_bytes]   */
    uint16_t *sink;              /* [layer][head][sinks][d]                */
    uint16_t *ring;              /* [layer][head][window][d]               */
    int32_t *ring_pos;           /* [layer][window], -1 = empty            */
    float *sign;                 /* [layer][d], tq formats only            */
    uint16_t *stage;             /* [head][stage_n][d] of the staged batch */
    size_t stage_cap;            /* rows (head * token) stage can hold     */
} turbo_store;

struct tq_kv_cache {
    const tq_host *host;
    tq_kv_params p;              /* k_type/v_type not kept                 */
    turbo_settings set;
    turbo_store st[2];           /* 0 = K, 1 = V                           */
    float *mean;                 /* [layer][head][d] or NULL (no centering) */
    uint8_t *mean_ready;         /* [layer]                                */
    int32_t n_pos;               /* positions stored (layer 0)             */
    int32_t stage_layer;         /* layer of the staged batch, -1 = none   */
    int32_t stage_pos0, stage_n;
    void *scratch;               /* attention scratch, grown on demand     */
    size_t scratch_bytes;
};

/* Row pointers. */
static inline uint8_t *turbo_code_row(const tq_kv_cache *c, const turbo_store *s, int32_t layer,
                                      int32_t head, int32_t pos) {
    return s->codes + (((size_t)layer * (size_t)c->p.n_kv_heads + (size_t)head) *
                           (size_t)c->p.max_tokens + (size_t)pos) * s->codec.row_bytes;
}

/* The f16 copy of row `pos` (layer, head) wherever it is held (sinks,
 * staged batch, ring), or NULL. */
const uint16_t *turbo_f16_lookup(const tq_kv_cache *c, const turbo_store *s, int32_t layer,
                                 int32_t head, int32_t pos);

/* Whether a query at position p reads row pos in f16 (when it is held). */
static inline int turbo_wants_f16(const turbo_store *s, int32_t pos, int32_t p) {
    return pos < s->sinks || (s->window > 0 && p - pos < s->window);
}

/* The f16 copy of key/value `pos` (layer, head) that a query at position
 * `p` may use, or NULL when it must read the codes. */
const uint16_t *turbo_f16_row(const tq_kv_cache *c, const turbo_store *s, int32_t layer,
                              int32_t head, int32_t pos, int32_t p);

/* Folds the staged batch into the rings. [main] */
void turbo_commit_stage(tq_kv_cache *c);

/* The fused attention (turbo_attention.c); contract of tq_kv_iface.attention. */
tq_status turbo_attention(tq_kv_cache *c, int32_t layer, const float *q, int32_t n_head,
                          int32_t n_tokens, int32_t pos0, float scale, float *out, tq_error *err);

#endif
