/* turbo_calib.c — the calibrated parts of the turbo cache: per-block key
 * means and the value projection (both described in turbo_cache.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "turbo_basis.h"
#include "turbo_cache.h"
#include "turbo_half.h"
#include "turbo_rotation.h"

/* ---- lifetime ------------------------------------------------------------------- */

tq_status turbo_calib_create(tq_kv_cache *c) {
    const tq_host *h = c->host;
    const size_t L = (size_t)c->p.n_layers, H = (size_t)c->p.n_kv_heads, d = (size_t)c->p.head_dim;
    const turbo_store *ks = &c->st[0];
    if (c->set.k_center && ks->codec.kind == TURBO_TQ) {
        c->kblk = ks->codec.bits >= 4 ? 128 : 256;
        c->n_kblk = (c->p.max_tokens + c->kblk - 1) / c->kblk;
        /* Not cleared: a block's mean is written when it is fixed. */
        c->kmean = h->alloc(L * H * (size_t)c->n_kblk * d * 2, 64);
        c->kmean_n = h->alloc(L * sizeof(int32_t), 64);
        if (!c->kmean || !c->kmean_n) return TQ_ERR_NOMEM;
        memset(c->kmean_n, 0, L * sizeof(int32_t));
    }
    turbo_store *vs = &c->st[1];
    vs->vp.codec.kind = TURBO_F16; /* unavailable unless set up below */
    const int32_t r = c->p.head_dim * vs->codec.bits / 4;
    char why[160];
    if (c->set.v_project && vs->codec.kind == TURBO_TQ && vs->codec.bits < 4 && r % 16 == 0 &&
        turbo_codec_init(&vs->vp.codec, "tq4", r, why, sizeof why) == 0) {
        vs->vp.kern = turbo_kernels_select(4, h->cpu_features);
        vs->vp.sign = h->alloc(L * (size_t)r * sizeof(float), 64);
        vs->vp.basis = h->alloc(L * H * (size_t)r * d * 2, 64);
        vs->vp.mode = h->alloc(L, 64);
        if (!vs->vp.sign || !vs->vp.basis || !vs->vp.mode) return TQ_ERR_NOMEM;
        memset(vs->vp.mode, 0, L);
        for (size_t l = 0; l < L; l++)
            turbo_signs(c->set.seed, (int32_t)l, 1, r, vs->vp.sign + l * (size_t)r);
    } else {
        memset(&vs->vp.codec, 0, sizeof vs->vp.codec);
        vs->vp.codec.kind = TURBO_F16;
    }
    return TQ_OK;
}

void turbo_calib_destroy(tq_kv_cache *c) {
    const tq_host *h = c->host;
    h->free(c->kmean);
    h->free(c->kmean_n);
    h->free(c->st[1].vp.sign);
    h->free(c->st[1].vp.basis);
    h->free(c->st[1].vp.mode);
}

void turbo_calib_forget(tq_kv_cache *c, int32_t n_pos) {
    const int32_t L = c->p.n_layers;
    if (c->kmean_n) {
        /* Kept rows keep their block's mean, so only whole dropped blocks go. */
        const int32_t keep = (n_pos + c->kblk - 1) / c->kblk;
        for (int32_t l = 0; l < L; l++)
            if (c->kmean_n[l] > keep) c->kmean_n[l] = keep;
    }
    /* An empty cache starts a new sequence: its first batch decides again. */
    if (n_pos == 0 && c->st[1].vp.mode) memset(c->st[1].vp.mode, 0, (size_t)L);
}

uint64_t turbo_calib_bytes(const tq_kv_cache *c) {
    const uint64_t L = (uint64_t)c->p.n_layers, H = (uint64_t)c->p.n_kv_heads,
                   d = (uint64_t)c->p.head_dim;
    uint64_t total = 0;
    if (c->kmean_n) {
        const int32_t first = c->st[0].sinks / c->kblk;
        for (uint64_t l = 0; l < L; l++)
            if (c->kmean_n[l] > first) total += (uint64_t)(c->kmean_n[l] - first) * H * d * 2;
        total += L * sizeof(int32_t);
    }
    const turbo_vproj *vp = &c->st[1].vp;
    if (vp->mode) {
        const uint64_t r = (uint64_t)vp->codec.d;
        total += L * r * sizeof(float) + L;
        for (uint64_t l = 0; l < L; l++)
            if (vp->mode[l] == 2) total += H * r * d * 2;
    }
    return total;
}

/* ---- key means ------------------------------------------------------------------- */

/* Key `pos` of head h (layer) as the codes hold it, mean added back. */
static void decoded_key(const tq_kv_cache *c, int32_t layer, int32_t h, int32_t pos, float *x) {
    const turbo_store *ks = &c->st[0];
    const int32_t d = c->p.head_dim;
    turbo_decode_row(&ks->codec, ks->sign + (size_t)layer * (size_t)d,
                     turbo_code_row(c, ks, layer, h, pos), x);
    const uint16_t *mu = turbo_kmean(c, layer, h, pos / c->kblk);
    for (int32_t i = 0; i < d; i++) x[i] += turbo_f16_to_f32(mu[i]);
}

/* Fixes the mean of block blk, whose first appended key is at `a`; the
 * batch holds keys [pos, pos + n) (k: [n][H][d]) and [a, b) of the block. */
static void fix_block(tq_kv_cache *c, int32_t layer, int32_t blk, int32_t a, int32_t b, int32_t pos,
                      const float *k) {
    const int32_t H = c->p.n_kv_heads, d = c->p.head_dim, first = c->st[0].sinks;
    int32_t lo = a, hi = b;
    if (b - a < TURBO_MEAN_MIN) { /* too few of its own: the kblk keys before it */
        lo = a - c->kblk > first ? a - c->kblk : first;
        hi = a;
    }
    double acc[TURBO_MAX_DIM];
    float x[TURBO_MAX_DIM];
    for (int32_t h = 0; h < H; h++) {
        memset(acc, 0, sizeof acc);
        for (int32_t j = lo; j < hi; j++) {
            const float *row = x;
            if (j >= pos) row = k + ((size_t)(j - pos) * (size_t)H + (size_t)h) * (size_t)d;
            else decoded_key(c, layer, h, j, x);
            for (int32_t i = 0; i < d; i++) acc[i] += row[i];
        }
        uint16_t *mu = (uint16_t *)turbo_kmean(c, layer, h, blk);
        const int enough = hi - lo >= TURBO_MEAN_MIN;
        for (int32_t i = 0; i < d; i++)
            mu[i] = turbo_f32_to_f16(enough ? (float)(acc[i] / (double)(hi - lo)) : 0.0f);
    }
}

void turbo_calib_fix_means(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *k) {
    if (!c->kmean) return;
    const int32_t first = c->st[0].sinks, end = pos + n, B = c->kblk;
    const int32_t lo = pos > first ? pos : first;
    if (lo >= end) return;
    /* Blocks up to the one before lo's are fixed already (appends are in
     * order); a block still open is fixed at its first key. */
    if (c->kmean_n[layer] < first / B) c->kmean_n[layer] = first / B;
    for (int32_t blk = lo / B; blk * B < end; blk++) {
        if (blk < c->kmean_n[layer]) continue;
        const int32_t a = blk * B > lo ? blk * B : lo, b = (blk + 1) * B < end ? (blk + 1) * B : end;
        fix_block(c, layer, blk, a, b, pos, k);
        c->kmean_n[layer] = blk + 1;
    }
}

/* ---- value projection ----------------------------------------------------------- */

void turbo_v_project(const tq_kv_cache *c, int32_t layer, int32_t head, const float *v, float *z) {
    const int32_t r = c->st[1].vp.codec.d, d = c->p.head_dim;
    const uint16_t *P = turbo_v_basis(c, layer, head);
    for (int32_t k = 0; k < r; k++) {
        float s = 0;
        for (int32_t i = 0; i < d; i++) s += turbo_f16_to_f32(P[(size_t)k * (size_t)d + (size_t)i]) * v[i];
        z[k] = s;
    }
}

void turbo_v_unproject(const tq_kv_cache *c, int32_t layer, int32_t head, const float *z, float *out) {
    const int32_t r = c->st[1].vp.codec.d, d = c->p.head_dim;
    const uint16_t *P = turbo_v_basis(c, layer, head);
    for (int32_t i = 0; i < d; i++) out[i] = 0;
    for (int32_t k = 0; k < r; k++) {
        const uint16_t *pk = P + (size_t)k * (size_t)d;
        for (int32_t i = 0; i < d; i++) out[i] += z[k] * turbo_f16_to_f32(pk[i]);
    }
}

tq_status turbo_calib_vproj(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *v) {
    turbo_vproj *vp = &c->st[1].vp;
    if (!vp->mode || vp->mode[layer]) return TQ_OK;
    const int32_t H = c->p.n_kv_heads, d = c->p.head_dim, r = vp->codec.d;
    const int32_t lo = pos > c->st[1].sinks ? pos : c->st[1].sinks, end = pos + n;
    if (lo >= end) return TQ_OK; /* only sinks so far: a later batch decides */
    if (end - lo < TURBO_VPROJ_MIN_PER_DIM * d) {
        vp->mode[layer] = 1;
        return TQ_OK;
    }
    const size_t D = (size_t)d;
    double *m = malloc(2 * D * D * sizeof *m), *lambda = malloc((size_t)r * sizeof *lambda);
    float *P = malloc((size_t)r * D * sizeof *P);
    if (!m || !lambda || !P) {
        free(m), free(lambda), free(P);
        return TQ_ERR_NOMEM;
    }
    for (int32_t h = 0; h < H; h++) {
        memset(m, 0, D * D * sizeof *m);
        for (int32_t t = lo; t < end; t++) { /* second moment (lower triangle) */
            const float *x = v + ((size_t)(t - pos) * (size_t)H + (size_t)h) * D;
            for (size_t i = 0; i < D; i++)
                for (size_t j = 0; j <= i; j++) m[i * D + j] += (double)x[i] * x[j];
        }
        for (size_t i = 0; i < D; i++)
            for (size_t j = 0; j <= i; j++) m[j * D + i] = m[i * D + j];
        if (turbo_top_eigvecs(m, d, r, m + D * D, P, lambda)) { /* non-finite values */
            vp->mode[layer] = 1;
            free(m), free(lambda), free(P);
            return TQ_OK;
        }
        uint16_t *dst = (uint16_t *)turbo_v_basis(c, layer, h);
        for (size_t i = 0; i < (size_t)r * D; i++) dst[i] = turbo_f32_to_f16(P[i]);
    }
    free(m), free(lambda), free(P);
    vp->mode[layer] = 2;
    return TQ_OK;
}
