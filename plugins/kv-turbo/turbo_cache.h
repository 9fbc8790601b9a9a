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
 * K-centering by position block (tq keys): positions are cut into blocks
 * of kblk (128 for 4-bit keys, 256 below). Each block has a mean mu_b
 * stored as d int8 against one scale per (layer, head) and sequence, set
 * by the first block with a nonzero mean to 2 max|mu_i| / 127 (post-RoPE
 * means turn within their channel pair from block to block but keep their
 * size, so later blocks fit; a value that does not is clamped), so the
 * means cost 8 / kblk bits per value: 0.0625 at 4 bits. A mean is fixed
 * when the block's first key is appended; codes hold
 * k - mu_b and scores of coded keys get q.mu_b added back, so attention is
 * exact in the mean and coded and f16 keys stay on one scale (whatever
 * mu_b's 8-bit rounding, as long as the codes and the scores use the same
 * stored mu_b, so the rounding only moves the codes' centre a little). One mean per
 * block rather than per sequence because post-RoPE keys have large means
 * that rotate with position: the mean of a 128-position block removes
 * them, a sequence mean does not (docs/kv-turbo.md, results). mu_b is the
 * mean of block b's keys in the appending batch when it holds at least
 * TURBO_MEAN_MIN of them (prefill); otherwise (decode) the mean of the kblk
 * keys before the block, decoded from the codes where they are no longer
 * at hand; with fewer than TURBO_MEAN_MIN of those, 0.
 *
 * V projection (tq3 / tq2 values, when d * bits / 4 is a multiple of 16;
 * tq4 values, when d is a multiple of 32, project on all d directions and
 * store split rows, the top d/2 at 5 bits: turbo_codec.h, turbo_calib.c
 * split_halves):
 * when a sequence's first batch holds at least TURBO_VPROJ_MIN values past
 * the sinks, each (layer, head) takes the top r = d * bits / 4 eigenvectors
 * P (r x d, f16) of that batch's value second moment, and its rows store
 * the r-dim projection P v as a tq4 row (same bytes as the b-bit row:
 * 2 + d b / 8). Values decode as P^T z. The dropped d - r directions carry
 * the least value energy; 4 bits on r dims beat b bits on d dims (results).
 * A shorter first batch keeps the plain b-bit rows for the whole sequence
 * (a basis from few samples would drop real directions). The basis rows
 * are dealt over the codec's Hadamard blocks so each block gets the same
 * energy per coordinate (turbo_calib.c, balance_blocks: r = 96 is 64 + 32,
 * and in decreasing order the 64-block took nearly all of it), and scaled
 * by a_k with a_k^2 = (lambda_0 / lambda_k)^TURBO_VPROJ_TILT (decoded with
 * 1 / a_k^2), which moves coding error from the big directions to the
 * small ones.
 *
 * Split keys (tq4 keys with k_balance and k_split, d a multiple of 32):
 * split2 rows (turbo_codec.h) over the channels ordered by rms q_i *
 * rms k_i, decided with the K balance (kperm; by key energy alone when the
 * layer decides without queries). On keys whose channels weigh alike the
 * split doubles the error; on tm30m it takes tq4/tq4's mean KL down by 14%
 * (docs/kv-turbo.md).
 *
 * K balance (tq keys, k_balance): the score error of a coded key is
 * q . e with e the coding error, which the rotation spreads evenly over
 * the channels, ~ |k|^2 / d each; channels where queries are loud and
 * keys quiet weigh that error most. Keys are coded as (k - mu_b) * a and
 * queries scored as q / a (per channel; the score is unchanged), with
 * a_i^2 = rms(q_i) / rms(k_i - mu_i) per (layer, KV head) over the
 * sequence's first batch (its queries over the G heads sharing the KV
 * head). That minimizes the expected score error for a diagonal a: it
 * falls from sum q_i^2 sum k_i^2 / d to (sum rms q_i rms k_i)^2 / d, 0.87
 * of it on tm30m's keys (a full d x d transform would reach 0.79 but costs
 * d^2 per head in memory that the tq4 budget does not have). The plugin
 * sees the queries only in `attention`, after `append`, so the first
 * batch's key codes wait (raw, in kpend) until that layer's attention;
 * anything else touching the cache first (an append to another layer,
 * read, truncate) codes them plain, and the layer stays plain for the
 * sequence, as it does after a first batch of fewer than TURBO_KBAL_MIN
 * keys past the sinks (decode from an empty cache). */
#ifndef TURBO_CACHE_H
#define TURBO_CACHE_H

#include <stdint.h>
#include <tqrun/tq_plugin.h>

#include "turbo_codec.h"

/* The default `window` (f16 copies of the most recent positions): 64, so
 * that with the split2 keys' ratio byte and the tq4 V bases a 32K context
 * of tq4 stays within 26.6% of f16 (128 cost 0.195% more). */
#define TURBO_DEFAULT_WINDOW 64
/* Keys of a block a batch must hold to give the block its own mean. */
#define TURBO_MEAN_MIN 16
/* Keys past the sinks the first batch must hold to set the K balance. */
#define TURBO_KBAL_MIN 64
/* K balance scales are clamped to [1/CLAMP, CLAMP] around their geometric
 * mean of 1, so a dead channel (no key or no query energy) cannot blow a
 * scale up past what the f16 row scale and the 12-bit queries hold. */
#define TURBO_KBAL_CLAMP 8.0
/* Values past the sinks the first batch must hold for the V projection, in
 * multiples of head_dim (a second moment from fewer samples than about 2 d
 * misplaces directions). */
#define TURBO_VPROJ_MIN_PER_DIM 2
/* Projected coordinate k is scaled by a_k with a_k^2 = (lambda_0 /
 * lambda_k)^TILT (lambda: the second moment's eigenvalues), so the codec's
 * error, even over the coordinates, lands less on the big directions and
 * more on the small ones than without (TILT 0); 1/2 would equalize the
 * error per unit of sqrt(lambda), the optimum for a plain MSE, but the
 * measured KL is best near 1/4 (results in docs/kv-turbo.md). */
#define TURBO_VPROJ_TILT 0.25
/* The same for the split rows of tq4 values (turbo_calib.c, split_halves):
 * within each half. */
#define TURBO_VSPLIT_TILT 0.25

typedef struct turbo_settings {
    int32_t sinks;      /* first positions kept in f16                  */
    int32_t window;     /* most recent positions kept in f16 (0 = off)  */
    int k_center;       /* subtract per-block key means                 */
    int k_balance;      /* scale key channels against the queries       */
    int v_project;      /* project values on their top subspace (tq4: split rows) */
    int k_split;        /* tq4 keys as split2 rows over permuted channels */
    uint64_t seed;      /* rotation signs                               */
} turbo_settings;

/* V projection state of the V store (see the header comment). */
typedef struct turbo_vproj {
    turbo_codec codec;           /* tq4 over r dims; kind F16 = unavailable */
    const turbo_kernels *kern;
    float *sign;                 /* [layer][r]                              */
    uint16_t *basis;             /* [layer][head][r][d] f16                 */
    float *unscale;              /* [layer][head][r] 1 / a_k^2              */
    uint8_t *mode;               /* [layer] 0 undecided, 1 plain, 2 projected */
} turbo_vproj;

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
    turbo_vproj vp;              /* V store only                           */
} turbo_store;

struct tq_kv_cache {
    const tq_host *host;
    const turbo_kernels *kf;     /* row helpers of any format (f16 rows, exp,
                                    basis products): the CPU's best variant,
                                    scalar when head_dim % 16 != 0 (the SIMD
                                    f16 helpers need it)                  */
    tq_kv_params p;              /* k_type/v_type not kept                 */
    turbo_settings set;
    turbo_store st[2];           /* 0 = K, 1 = V                           */
    uint8_t *kmean;              /* [layer][head][n_kblk][TURBO_KMEAN_BYTES(d)], or NULL */
    float *kmean_scale;          /* [layer][head] step of the int8 means, 0 = unset */
    int32_t *kmean_n;            /* [layer] blocks whose mean is fixed     */
    int32_t kblk, n_kblk;        /* positions per mean block, blocks       */
    float *kscale;               /* [layer][head][d] a_i (K balance), or NULL */
    uint16_t *kperm;             /* [layer][head][d] channel of each split2 slot, or NULL */
    uint8_t *kscale_mode;        /* [layer] 0 undecided, 1 plain, 2 balanced */
    float *kpend;                /* [n][head][d] raw keys awaiting queries  */
    size_t kpend_cap;            /* floats kpend holds                     */
    int32_t kpend_layer;         /* layer of the pending keys, -1 = none   */
    int32_t kpend_pos, kpend_n;
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

/* Bytes of one stored key mean: d int8 (times kmean_scale). */
#define TURBO_KMEAN_BYTES(d) ((size_t)(d))

/* The stored mean of key block blk (layer, head), or NULL without
 * centering. */
static inline uint8_t *turbo_kmean(const tq_kv_cache *c, int32_t layer, int32_t head, int32_t blk) {
    if (!c->kmean) return NULL;
    return c->kmean + (((size_t)layer * (size_t)c->p.n_kv_heads + (size_t)head) * (size_t)c->n_kblk +
                       (size_t)blk) * TURBO_KMEAN_BYTES(c->p.head_dim);
}
/* The key-mean block holding position pos (0 without centering). */
static inline int32_t turbo_kblock(const tq_kv_cache *c, int32_t pos) {
    return c->kmean ? pos / c->kblk : 0;
}
/* mu (head_dim floats) = the mean of key block blk (layer, head), as
 * stored; returns 0, writing nothing, without centering (turbo_calib.c).
 * [any] */
int turbo_kmean_load(const tq_kv_cache *c, int32_t layer, int32_t head, int32_t blk, float *mu);
/* The same for the block holding position pos. */
static inline int turbo_kmean_load_at(const tq_kv_cache *c, int32_t layer, int32_t head, int32_t pos,
                                      float *mu) {
    return turbo_kmean_load(c, layer, head, turbo_kblock(c, pos), mu);
}

/* Whether layer's V rows are projected (tq4 over r dims), and the codec,
 * kernels and rotation signs its V rows use. */
static inline int turbo_v_projected(const tq_kv_cache *c, int32_t layer) {
    return c->st[1].vp.mode && c->st[1].vp.mode[layer] == 2;
}
static inline const turbo_codec *turbo_v_codec(const tq_kv_cache *c, int32_t layer) {
    return turbo_v_projected(c, layer) ? &c->st[1].vp.codec : &c->st[1].codec;
}
static inline const turbo_kernels *turbo_v_kern(const tq_kv_cache *c, int32_t layer) {
    return turbo_v_projected(c, layer) ? c->st[1].vp.kern : c->st[1].kern;
}
static inline const float *turbo_v_sign(const tq_kv_cache *c, int32_t layer) {
    const turbo_store *s = &c->st[1];
    if (turbo_v_projected(c, layer)) return s->vp.sign + (size_t)layer * (size_t)s->vp.codec.d;
    return s->sign ? s->sign + (size_t)layer * (size_t)c->p.head_dim : NULL;
}
/* The projection basis of (layer, head): r rows of d f16. */
static inline const uint16_t *turbo_v_basis(const tq_kv_cache *c, int32_t layer, int32_t head) {
    const turbo_store *s = &c->st[1];
    return s->vp.basis + ((size_t)layer * (size_t)c->p.n_kv_heads + (size_t)head) *
                             (size_t)s->vp.codec.d * (size_t)c->p.head_dim;
}

/* The unscaling of (layer, head)'s projection: r floats. */
static inline const float *turbo_v_unscale(const tq_kv_cache *c, int32_t layer, int32_t head) {
    const turbo_store *s = &c->st[1];
    return s->vp.unscale + ((size_t)layer * (size_t)c->p.n_kv_heads + (size_t)head) * (size_t)s->vp.codec.d;
}

/* z (r) = P v and out (d) = P^T z: a value into and out of layer's
 * projection (turbo_calib.c). [any] */
void turbo_v_project(const tq_kv_cache *c, int32_t layer, int32_t head, const float *v, float *z);
void turbo_v_unproject(const tq_kv_cache *c, int32_t layer, int32_t head, const float *z, float *out);

/* Calibrated state (turbo_calib.c). create allocates the key means and the
 * projection state the settings and formats call for (TQ_ERR_NOMEM on
 * failure; destroy frees what was allocated). fix_means fixes the means of
 * the blocks a batch [pos, pos + n) of layer opens (k as appended); vproj
 * decides layer's V mode at the sequence's first batch past the sinks and
 * computes the bases. forget drops what positions >= n_pos needed. bytes
 * is the memory held for them. [main] */
tq_status turbo_calib_create(tq_kv_cache *c);
void turbo_calib_destroy(tq_kv_cache *c);
void turbo_calib_fix_means(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *k);
tq_status turbo_calib_vproj(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *v);
void turbo_calib_forget(tq_kv_cache *c, int32_t n_pos);
uint64_t turbo_calib_bytes(const tq_kv_cache *c);

/* The K channel scales a (d floats) of (layer, head), or NULL where the
 * layer's keys are coded plain. */
static inline const float *turbo_kscale(const tq_kv_cache *c, int32_t layer, int32_t head) {
    if (!c->kscale || c->kscale_mode[layer] != 2) return NULL;
    return c->kscale + ((size_t)layer * (size_t)c->p.n_kv_heads + (size_t)head) * (size_t)c->p.head_dim;
}

/* The channel permutation of (layer, head)'s split2 keys (slot k codes
 * channel perm[k]; the first d/2 slots are the 5-bit half), or NULL when
 * the keys are not split2 rows or the layer is undecided. */
static inline const uint16_t *turbo_kperm(const tq_kv_cache *c, int32_t layer, int32_t head) {
    if (!c->kperm || !c->kscale_mode[layer]) return NULL;
    return c->kperm + ((size_t)layer * (size_t)c->p.n_kv_heads + (size_t)head) * (size_t)c->p.head_dim;
}

/* x (d floats) = key k of (layer, head) at pos as its codes take it:
 * less its block mean, times the K balance scales, permuted (split2);
 * what turbo_key_decode undoes. [any] */
void turbo_key_prepare(const tq_kv_cache *c, int32_t layer, int32_t h, int32_t pos, const float *k,
                       float *x);

/* K balance (turbo_calib.c; see the header comment). defer: when layer's
 * batch [pos, pos + n) (k: [n][head][d] as appended) is the one that
 * decides its channel scales, copies the keys past the sinks to kpend and
 * sets *deferred: their codes wait for the queries (TQ_ERR_NOMEM when the
 * copy cannot be held). settle: decides the scales of the pending layer
 * from its queries q ([n_tok][n_head][d]; NULL when none were seen: the
 * layer stays plain) and encodes the pending keys; nothing when none are
 * pending. [main] */
tq_status turbo_kbal_defer(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *k,
                           int *deferred);
void turbo_kbal_settle(tq_kv_cache *c, const float *q, int32_t n_head, int32_t n_tok);

/* Key `pos` of head h (layer) as its codes hold it, back in the raw domain
 * (scales and mean undone). [any] */
void turbo_key_decode(const tq_kv_cache *c, int32_t layer, int32_t h, int32_t pos, float *x);

/* Encodes the codes of keys [pos, pos + n) of layer (k: [n][head][d], raw,
 * positions past the sinks only), in parallel (kv_turbo.c). [main] */
void turbo_encode_keys(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *k);

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
