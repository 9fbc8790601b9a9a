/* turbo_calib.c — the calibrated parts of the turbo cache: per-block key
 * means, the K balance and the value projection (all described in
 * turbo_cache.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "turbo_basis.h"
#include "turbo_cache.h"
#include "turbo_dvec.h"
#include "turbo_half.h"
#include "turbo_project.h"
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
        c->kmean = h->alloc(L * H * (size_t)c->n_kblk * TURBO_KMEAN_BYTES(d), 64);
        c->kmean_n = h->alloc(L * sizeof(int32_t), 64);
        c->kmean_scale = h->alloc(L * H * sizeof(float), 64);
        if (!c->kmean || !c->kmean_n || !c->kmean_scale) return TQ_ERR_NOMEM;
        memset(c->kmean_n, 0, L * sizeof(int32_t));
        memset(c->kmean_scale, 0, L * H * sizeof(float));
    }
    c->kpend_layer = -1;
    if (c->set.k_balance && ks->codec.kind == TURBO_TQ) {
        c->kscale = h->alloc(L * H * d * sizeof(float), 64);
        c->kscale_mode = h->alloc(L, 64);
        if (!c->kscale || !c->kscale_mode) return TQ_ERR_NOMEM;
        memset(c->kscale_mode, 0, L);
        if (ks->codec.split == 2 && !(c->kperm = h->alloc(L * H * d * sizeof(uint16_t), 64)))
            return TQ_ERR_NOMEM;
    }
    turbo_store *vs = &c->st[1];
    vs->vp.codec.kind = TURBO_F16; /* unavailable unless set up below */
    const int32_t r = c->p.head_dim * vs->codec.bits / 4;
    char why[160];
    /* tq3/tq2: tq4 rows over r < d directions; tq4: split rows over all d */
    const int ok = vs->codec.bits < 4 ? r % 16 == 0 &&
                                            turbo_codec_init(&vs->vp.codec, "tq4", r, why, sizeof why) == 0
                                      : turbo_codec_init_split(&vs->vp.codec, r, 1) == 0;
    if (c->set.v_project && vs->codec.kind == TURBO_TQ && ok) {
        vs->vp.kern = turbo_kernels_select(turbo_codec_kern_id(&vs->vp.codec), h->cpu_features);
        vs->vp.sign = h->alloc(L * (size_t)r * sizeof(float), 64);
        vs->vp.basis = h->alloc(L * H * (size_t)r * d * 2, 64);
        vs->vp.unscale = h->alloc(L * H * (size_t)r * sizeof(float), 64);
        vs->vp.mode = h->alloc(L, 64);
        if (!vs->vp.sign || !vs->vp.basis || !vs->vp.unscale || !vs->vp.mode) return TQ_ERR_NOMEM;
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
    h->free(c->kmean_scale);
    h->free(c->kscale);
    h->free(c->kscale_mode);
    h->free(c->kperm);
    h->free(c->kpend);
    h->free(c->st[1].vp.sign);
    h->free(c->st[1].vp.basis);
    h->free(c->st[1].vp.unscale);
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
    if (n_pos == 0 && c->kscale_mode) memset(c->kscale_mode, 0, (size_t)L);
    if (n_pos == 0 && c->kmean_scale)
        memset(c->kmean_scale, 0, (size_t)L * (size_t)c->p.n_kv_heads * sizeof(float));
}

uint64_t turbo_calib_bytes(const tq_kv_cache *c) {
    const uint64_t L = (uint64_t)c->p.n_layers, H = (uint64_t)c->p.n_kv_heads,
                   d = (uint64_t)c->p.head_dim;
    uint64_t total = 0;
    if (c->kmean_n) {
        const int32_t first = c->st[0].sinks / c->kblk;
        for (uint64_t l = 0; l < L; l++)
            if (c->kmean_n[l] > first)
                total += (uint64_t)(c->kmean_n[l] - first) * H * TURBO_KMEAN_BYTES(d);
        total += L * sizeof(int32_t) + L * H * sizeof(float);
    }
    if (c->kscale_mode) {
        total += L;
        for (uint64_t l = 0; l < L; l++)
            if (c->kscale_mode[l] == 2) total += H * d * sizeof(float);
        for (uint64_t l = 0; c->kperm && l < L; l++)
            if (c->kscale_mode[l]) total += H * d * sizeof(uint16_t);
    }
    const turbo_vproj *vp = &c->st[1].vp;
    if (vp->mode) {
        const uint64_t r = (uint64_t)vp->codec.d;
        total += L * r * sizeof(float) + L;
        for (uint64_t l = 0; l < L; l++)
            if (vp->mode[l] == 2) total += H * r * (d * 2 + sizeof(float));
    }
    return total;
}

/* ---- key means ------------------------------------------------------------------- */

int turbo_kmean_load(const tq_kv_cache *c, int32_t layer, int32_t head, int32_t blk, float *mu) {
    const uint8_t *m = turbo_kmean(c, layer, head, blk);
    if (!m) return 0;
    const float s = c->kmean_scale[(size_t)layer * (size_t)c->p.n_kv_heads + (size_t)head];
    const int8_t *q = (const int8_t *)m;
    for (int32_t i = 0; i < c->p.head_dim; i++) mu[i] = s * (float)q[i];
    return 1;
}

/* Stores mean (d values) as block blk's, rounded to int8 steps of the
 * (layer, head)'s scale (set here by the first nonzero mean; see
 * turbo_cache.h), clamped to +-127. */
static void kmean_store(tq_kv_cache *c, int32_t layer, int32_t head, int32_t blk, const float *mean) {
    const int32_t d = c->p.head_dim;
    uint8_t *m = turbo_kmean(c, layer, head, blk);
    float *sp = &c->kmean_scale[(size_t)layer * (size_t)c->p.n_kv_heads + (size_t)head];
    if (*sp == 0) {
        float amax = 0;
        for (int32_t i = 0; i < d; i++) amax = fabsf(mean[i]) > amax ? fabsf(mean[i]) : amax;
        *sp = 2.0f * amax / 127.0f;
    }
    const float inv = *sp > 0 ? 1.0f / *sp : 0.0f;
    int8_t *q = (int8_t *)m;
    for (int32_t i = 0; i < d; i++) {
        const long v = lrintf(mean[i] * inv);
        q[i] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
    }
}

void turbo_key_prepare(const tq_kv_cache *c, int32_t layer, int32_t h, int32_t pos, const float *k,
                       float *x) {
    const int32_t d = c->p.head_dim;
    float mu[TURBO_MAX_DIM], y[TURBO_MAX_DIM];
    const int has_mu = turbo_kmean_load_at(c, layer, h, pos, mu);
    const float *a = turbo_kscale(c, layer, h);
    const uint16_t *perm = turbo_kperm(c, layer, h);
    float *dst = perm ? y : x;
    for (int32_t i = 0; i < d; i++) {
        dst[i] = k[i] - (has_mu ? mu[i] : 0.0f);
        if (a) dst[i] *= a[i];
    }
    for (int32_t s = 0; perm && s < d; s++) x[s] = y[perm[s]];
}

void turbo_key_decode(const tq_kv_cache *c, int32_t layer, int32_t h, int32_t pos, float *x) {
    const turbo_store *ks = &c->st[0];
    const int32_t d = c->p.head_dim;
    turbo_decode_row(&ks->codec, ks->sign ? ks->sign + (size_t)layer * (size_t)d : NULL,
                     turbo_code_row(c, ks, layer, h, pos), x);
    const uint16_t *perm = turbo_kperm(c, layer, h);
    if (perm) {
        float y[TURBO_MAX_DIM];
        memcpy(y, x, (size_t)d * sizeof *y);
        for (int32_t s = 0; s < d; s++) x[perm[s]] = y[s];
    }
    const float *a = turbo_kscale(c, layer, h);
    for (int32_t i = 0; a && i < d; i++) x[i] /= a[i];
    float mu[TURBO_MAX_DIM];
    if (turbo_kmean_load_at(c, layer, h, pos, mu))
        for (int32_t i = 0; i < d; i++) x[i] += mu[i];
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
            else turbo_key_decode(c, layer, h, j, x);
            for (int32_t i = 0; i < d; i++) acc[i] += row[i];
        }
        const int enough = hi - lo >= TURBO_MEAN_MIN;
        for (int32_t i = 0; i < d; i++) x[i] = enough ? (float)(acc[i] / (double)(hi - lo)) : 0.0f;
        kmean_store(c, layer, h, blk, x);
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
    c->kf->basis_project(turbo_v_basis(c, layer, head), c->st[1].vp.codec.d, c->p.head_dim, v, z);
}

void turbo_v_unproject(const tq_kv_cache *c, int32_t layer, int32_t head, const float *z, float *out) {
    c->kf->basis_unproject(turbo_v_basis(c, layer, head), c->st[1].vp.codec.d, c->p.head_dim, z,
                           turbo_v_unscale(c, layer, head), out);
}

/* The coordinate chan[k] of the r-dim projection z that eigenvector k (in
 * decreasing eigenvalue order; lambda: its energy) takes. The tq codec
 * scales its codebook by the row's norm as if every rotated coordinate
 * held |z|^2 / r, but its Hadamard blocks mix only within themselves
 * (r = 96: 64 + 32), so the eigenvectors are dealt out to give every block
 * the same energy per coordinate: each in turn goes to the block, among
 * those with room, whose energy per coordinate is lowest, at a coordinate
 * the rotation's interleave (turbo_rot_interleave) sends into that block.
 * In decreasing order the top 64 would fill the 64-block with nearly all
 * the energy, coding the 32-block's small coordinates with a codebook
 * scaled for large ones. Exact: P^T z does not care where a direction
 * sits. */
static void balance_blocks(int32_t r, const double *lambda, int32_t *chan) {
    int32_t blocks[16], off[16], used[16] = {0}, slot[TURBO_MAX_DIM], of_slot[TURBO_MAX_DIM];
    double energy[16] = {0};
    const int nb = turbo_rot_blocks(r, blocks);
    for (int b = 0, o = 0; b < nb; o += blocks[b], b++) off[b] = o;
    if (!turbo_rot_interleave(r, slot))
        for (int32_t i = 0; i < r; i++) slot[i] = i;
    for (int32_t i = 0; i < r; i++) of_slot[slot[i]] = i;
    for (int32_t k = 0; k < r; k++) {
        int best = -1;
        for (int b = 0; b < nb; b++) {
            if (used[b] == blocks[b]) continue;
            if (best < 0 || energy[b] / blocks[b] < energy[best] / blocks[best]) best = b;
        }
        chan[k] = of_slot[off[best] + used[best]++];
        energy[best] += lambda[k] > 0 ? lambda[k] : 0;
    }
}

/* Split rows (tq4 values): the top r/2 directions go to the 5-bit half,
 * the rest to the 3-bit half, each half dealt over its own blocks as
 * balance_blocks does. The codec scales both halves' codebooks by one
 * norm, as if every coordinate held |z|^2 / r, so each half's directions
 * are scaled (a2, lambda) to give both halves the same mean energy per
 * coordinate; unscaling undoes it exactly. */
static void split_halves(int32_t r, double *lambda, double *a2, int32_t *slot) {
    const int32_t h = r / 2;
    double e_hi = 0, e_lo = 0;
    for (int32_t k = 0; k < h; k++) e_hi += lambda[k];
    for (int32_t k = h; k < r; k++) e_lo += lambda[k];
    const double f_hi = e_hi > 0 ? (e_hi + e_lo) / (2 * e_hi) : 1.0;
    const double f_lo = e_lo > 0 ? (e_hi + e_lo) / (2 * e_lo) : 1.0;
    for (int32_t k = 0; k < r; k++) {
        const double f = k < h ? f_hi : f_lo;
        a2[k] *= f;
        lambda[k] *= f;
    }
    balance_blocks(h, lambda, slot);
    balance_blocks(h, lambda + h, slot + h);
    for (int32_t k = h; k < r; k++) slot[k] += h;
}

/* The basis of one layer's heads, split over the pool's threads by head. */
typedef struct vproj_task {
    tq_kv_cache *c;
    int32_t layer, pos, lo, end;
    const float *v;    /* [n][H][d] values of the batch at pos              */
    int8_t *status;    /* per head: 0 done, 1 non-finite values, 2 no memory */
} vproj_task;

#define MOMENT_ROWS 16 /* rows of the second moment per pass over the tokens */

/* Head h's basis and unscale from the second moment of its values in
 * [lo, end); returns 1 for non-finite values. m: 2 d^2 doubles, P: r d
 * floats, lambda: r doubles of scratch. */
static int vproj_head(const vproj_task *t, int32_t h, double *m, float *P, double *lambda) {
    tq_kv_cache *c = t->c;
    const turbo_vproj *vp = &c->st[1].vp;
    const int32_t H = c->p.n_kv_heads, d = c->p.head_dim, r = vp->codec.d, layer = t->layer;
    const size_t D = (size_t)d;
    memset(m, 0, D * D * sizeof *m);
    /* The second moment's lower triangle, summed over the tokens in order
     * per element, MOMENT_ROWS rows at a time: those rows stay in L1 while
     * the tokens pass (row by row over all of them, the d x d doubles went
     * through L2 once per token). */
    double xd[TURBO_MAX_DIM];
    for (size_t i0 = 0; i0 < D; i0 += MOMENT_ROWS) {
        const size_t i1 = i0 + MOMENT_ROWS < D ? i0 + MOMENT_ROWS : D;
        for (int32_t p = t->lo; p < t->end; p++) {
            const float *x = t->v + ((size_t)(p - t->pos) * (size_t)H + (size_t)h) * D;
            for (size_t i = 0; i < i1; i++) xd[i] = x[i];
            for (size_t i = i0; i < i1; i++) dvec_add_scaled(m + i * D, i + 1, xd, xd[i]);
        }
    }
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j <= i; j++) m[j * D + i] = m[i * D + j];
    if (turbo_top_eigvecs(m, d, r, m + D * D, P, lambda)) return 1;
    int32_t slot[TURBO_MAX_DIM];
    double a2[TURBO_MAX_DIM];
    const double tilt = vp->codec.split ? TURBO_VSPLIT_TILT : TURBO_VPROJ_TILT;
    for (int32_t k = 0; k < r; k++) {
        const double lk = lambda[k] > lambda[0] * 1e-6 ? lambda[k] : lambda[0] * 1e-6;
        a2[k] = lambda[0] > 0 ? pow(lambda[0] / lk, tilt) : 1.0;
        lambda[k] = lk * a2[k]; /* the coordinate's energy once scaled */
    }
    if (vp->codec.split) split_halves(r, lambda, a2, slot);
    else balance_blocks(r, lambda, slot);
    uint16_t *dst = (uint16_t *)turbo_v_basis(c, layer, h);
    float *us = (float *)turbo_v_unscale(c, layer, h);
    for (int32_t k = 0; k < r; k++) {
        const double a = sqrt(a2[k]);
        for (size_t i = 0; i < D; i++)
            dst[(size_t)slot[k] * D + i] = turbo_f32_to_f16((float)(a * P[(size_t)k * D + i]));
        us[slot[k]] = (float)(1.0 / a2[k]);
    }
    return 0;
}

static void vproj_worker(void *user, int ith, int nth) {
    const vproj_task *t = user;
    const int32_t H = t->c->p.n_kv_heads, h0 = H * ith / nth, h1 = H * (ith + 1) / nth;
    if (h0 >= h1) return;
    const size_t D = (size_t)t->c->p.head_dim, r = (size_t)t->c->st[1].vp.codec.d;
    double *m = malloc(2 * D * D * sizeof *m), *lambda = malloc(r * sizeof *lambda);
    float *P = malloc(r * D * sizeof *P);
    for (int32_t h = h0; h < h1; h++)
        t->status[h] = (int8_t)(!m || !lambda || !P ? 2 : vproj_head(t, h, m, P, lambda));
    free(m), free(lambda), free(P);
}

tq_status turbo_calib_vproj(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *v) {
    turbo_vproj *vp = &c->st[1].vp;
    if (!vp->mode || vp->mode[layer]) return TQ_OK;
    const int32_t d = c->p.head_dim;
    const int32_t lo = pos > c->st[1].sinks ? pos : c->st[1].sinks, end = pos + n;
    if (lo >= end) return TQ_OK; /* only sinks so far: a later batch decides */
    if (end - lo < TURBO_VPROJ_MIN_PER_DIM * d) {
        vp->mode[layer] = 1;
        return TQ_OK;
    }
    int8_t *status = malloc((size_t)c->p.n_kv_heads);
    if (!status) return TQ_ERR_NOMEM;
    vproj_task t = {c, layer, pos, lo, end, v, status};
    /* a d x d eigenproblem per head: the heads in parallel */
    c->host->parallel_for(vproj_worker, &t);
    int any_bad = 0, nomem = 0;
    for (int32_t h = 0; h < c->p.n_kv_heads; h++) {
        nomem |= status[h] == 2;
        any_bad |= status[h] == 1;
    }
    free(status);
    if (nomem) return TQ_ERR_NOMEM;
    vp->mode[layer] = any_bad ? 1 : 2; /* non-finite values: this layer's V unprojected */
    return TQ_OK;
}

/* ---- K balance -------------------------------------------------------------------- */

/* kk[i] += (k_i - mu_i)^2 over the keys [pos, pos + n) of head h (k:
 * [n][H][d], mu: their block means). */
static void key_energy(const tq_kv_cache *c, int32_t layer, int32_t h, const float *k, int32_t pos,
                       int32_t n, double *kk) {
    const int32_t H = c->p.n_kv_heads, d = c->p.head_dim;
    float mu[TURBO_MAX_DIM];
    for (int32_t t = 0; t < n; t++) {
        const float *x = k + ((size_t)t * (size_t)H + (size_t)h) * (size_t)d;
        const int has_mu = turbo_kmean_load_at(c, layer, h, pos + t, mu);
        for (int32_t i = 0; i < d; i++) {
            const double v = x[i] - (has_mu ? mu[i] : 0.0f);
            kk[i] += v * v;
        }
    }
}

/* Sets (layer, h)'s split2 permutation (turbo_cache.h): channels by
 * decreasing weight in the score error, rms q_i * rms k_i (the same before
 * and after the K balance), or the key energy alone without queries (qq
 * NULL), so the 5-bit half holds the channels that matter most. Ties keep
 * channel order. */
static void kperm_set(tq_kv_cache *c, int32_t layer, int32_t h, const double *qq, const double *kk) {
    if (!c->kperm) return;
    const int32_t d = c->p.head_dim;
    uint16_t *perm = c->kperm + ((size_t)layer * (size_t)c->p.n_kv_heads + (size_t)h) * (size_t)d;
    double w[TURBO_MAX_DIM];
    for (int32_t i = 0; i < d; i++) w[i] = qq ? sqrt(qq[i]) * sqrt(kk[i]) : kk[i];
    for (int32_t i = 0; i < d; i++) { /* insertion sort, descending, stable */
        int32_t j = i;
        for (; j > 0 && w[perm[j - 1]] < w[i]; j--) perm[j] = perm[j - 1];
        perm[j] = (uint16_t)i;
    }
}

/* The permutations of a layer decided plain (no queries): from the key
 * energy of keys [pos, pos + n) (k: [n][H][d]). */
static void kperm_plain(tq_kv_cache *c, int32_t layer, const float *k, int32_t pos, int32_t n) {
    double kk[TURBO_MAX_DIM];
    for (int32_t h = 0; c->kperm && h < c->p.n_kv_heads; h++) {
        memset(kk, 0, sizeof kk);
        key_energy(c, layer, h, k, pos, n, kk);
        kperm_set(c, layer, h, NULL, kk);
    }
}

tq_status turbo_kbal_defer(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *k,
                           int *deferred) {
    *deferred = 0;
    if (!c->kscale || c->kscale_mode[layer]) return TQ_OK;
    const int32_t lo = pos > c->st[0].sinks ? pos : c->st[0].sinks, end = pos + n;
    if (lo >= end) return TQ_OK; /* only sinks so far: a later batch decides */
    if (end - lo < TURBO_KBAL_MIN) {
        kperm_plain(c, layer, k + (size_t)(lo - pos) * (size_t)c->p.n_kv_heads * (size_t)c->p.head_dim,
                    lo, end - lo);
        c->kscale_mode[layer] = 1;
        return TQ_OK;
    }
    const size_t row = (size_t)c->p.n_kv_heads * (size_t)c->p.head_dim;
    const size_t need = (size_t)(end - lo) * row;
    if (need > c->kpend_cap) {
        c->host->free(c->kpend);
        c->kpend_cap = 0;
        if (!(c->kpend = c->host->alloc(need * sizeof(float), 64))) return TQ_ERR_NOMEM;
        c->kpend_cap = need;
    }
    memcpy(c->kpend, k + (size_t)(lo - pos) * row, need * sizeof(float));
    c->kpend_layer = layer;
    c->kpend_pos = lo;
    c->kpend_n = end - lo;
    *deferred = 1;
    return TQ_OK;
}

/* Channel scales of the pending layer (see turbo_cache.h): per KV head,
 * a_i = (rms q_i / rms k_i)^(1/2) over the batch's queries of the head's G
 * query heads and its keys less their block means, normalized to a
 * geometric mean of 1 and clamped to TURBO_KBAL_CLAMP. */
static void kbal_scales(tq_kv_cache *c, int32_t layer, const float *q, int32_t n_head,
                        int32_t n_tok) {
    const int32_t H = c->p.n_kv_heads, d = c->p.head_dim, G = n_head / H;
    double qq[TURBO_MAX_DIM], kk[TURBO_MAX_DIM];
    for (int32_t h = 0; h < H; h++) {
        memset(qq, 0, sizeof qq);
        memset(kk, 0, sizeof kk);
        for (int32_t t = 0; t < n_tok; t++)
            for (int32_t g = 0; g < G; g++) {
                const float *x = q + ((size_t)t * (size_t)n_head + (size_t)(h * G + g)) * (size_t)d;
                for (int32_t i = 0; i < d; i++) qq[i] += (double)x[i] * x[i];
            }
        key_energy(c, layer, h, c->kpend, c->kpend_pos, c->kpend_n, kk);
        kperm_set(c, layer, h, qq, kk);
        double la[TURBO_MAX_DIM], mean = 0;
        for (int32_t i = 0; i < d; i++) {
            la[i] = 0.25 * (log(qq[i] + 1e-30) - log(kk[i] + 1e-30));
            mean += la[i] / d;
        }
        float *a = c->kscale + ((size_t)layer * (size_t)H + (size_t)h) * (size_t)d;
        const double lim = log(TURBO_KBAL_CLAMP);
        for (int32_t i = 0; i < d; i++) {
            double e = la[i] - mean;
            e = e > lim ? lim : (e < -lim ? -lim : e);
            a[i] = (float)exp(e);
        }
    }
}

void turbo_kbal_settle(tq_kv_cache *c, const float *q, int32_t n_head, int32_t n_tok) {
    const int32_t layer = c->kpend_layer;
    if (layer < 0) return;
    c->kpend_layer = -1;
    if (q && n_tok > 0) kbal_scales(c, layer, q, n_head, n_tok);
    else kperm_plain(c, layer, c->kpend, c->kpend_pos, c->kpend_n);
    c->kscale_mode[layer] = q && n_tok > 0 ? 2 : 1;
    turbo_encode_keys(c, layer, c->kpend_pos, c->kpend_n, c->kpend);
}
