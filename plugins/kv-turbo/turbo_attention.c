/* turbo_attention.c — causal attention computed on the turbo cache's own
 * format (spec §5.1, §6.1 step 8, §6.3).
 *
 * For each block of query tokens and each KV head, the G query heads that
 * share the head are processed together, so each cached row is read and
 * decoded once per KV head and block, not once per query head (GQA
 * sharing). Per query head, q is rotated once with the layer's K signs and
 * quantized to 12-bit integers; a tq key scores
 *     scale * s_j * sq * unit * <q16, lut16[idx_j]> + scale * q.mu
 * (mu = the K-centering mean), and values of tq rows accumulate in the
 * rotated domain, rotated back once per head at the end.
 *
 * The keys a block sees split in two:
 *   - the coded run: positions that every query of the block reads from
 *     the codes (past the sinks, older than the window, not after the
 *     first query). When K and V are both tq this is the bulk of a long
 *     context, and it streams through the SIMD kernels (turbo_kernels) in
 *     chunks: integer K dots to scores, an online-softmax update, 16-bit
 *     weights per tile, integer V sums (flash-decoding style, one pass);
 *   - the rest (sinks, the f16 window, the causal edge of the block, and
 *     every key of a non-tq format), handled key by key: each query row
 *     reads the f16 copy or the codes as the window rules say, and its
 *     softmax terms merge into the same running max and sums.
 * Work is split over threads along tokens: over query tokens (balanced by
 * causal length) for batches; when there are fewer queries than threads
 * (decode), over key positions, in parts of equal cost per KV head that the
 * threads take from a shared counter, with a log-sum-exp merge of the
 * parts' results. Kernels are picked once per cache from the CPU's
 * features. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "turbo_cache.h"
#include "turbo_half.h"
#include "turbo_rotation.h"

/* Key-mean blocks whose q . mu set_qm computes together (their sums are
 * independent chains, so they run side by side). */
#define QM_GROUP 4

/* Query tokens handled together: each cached row is decoded once per
 * block and KV head, then dotted with every query row of the block. */
#define QBLOCK 8
/* Key-split parts (decode): at most KEY_PARTS_PER_THREAD per thread and
 * KV head, each of at least KEY_PART_MIN keys. */
#define KEY_PARTS_PER_THREAD 8
#define KEY_PART_MIN 256

/* Keys per step of the coded run: scores, weights and tile scales of one
 * chunk stay in L1. A multiple of TURBO_V_TILE. */
#define CHUNK 256

typedef struct att_ctx {
    tq_kv_cache *c;
    const turbo_kernels *kf; /* f16 row helpers (any format)              */
    int32_t layer, n_head, n_tok, pos0, n_kv, G;
    float scale;
    const float *q;       /* [n_tok][n_head][d]                            */
    float *out;           /* [n_tok][n_head][d]                            */
    int16_t *q16;         /* [n_tok][n_head][d] rotated integer queries    */
    float *qk_scale;      /* [n_tok][n_head] scale * sq * lut_unit          */
    char *thread_mem;     /* per thread: thread_stride bytes                */
    size_t thread_stride;
    float *part;          /* key-split partials [n_parts][n_tok][n_head][2+2d] */
    int split_keys;
    int32_t n_parts;      /* key parts per KV head when split_keys          */
    atomic_int next_task; /* key-split tasks (KV head, part) taken so far   */
} att_ctx;

/* One thread's scratch, carved from thread_mem; R = QBLOCK * G rows. */
typedef struct att_scratch {
    float *gsc;           /* [R][n_kv] scores of the key-by-key part       */
    float *sc;            /* [R][CHUNK] coded-run scores, then weights     */
    int16_t *w16;         /* [R][CHUNK]                                    */
    float *wscale;        /* [CHUNK / TURBO_V_TILE][R]                     */
    int16_t *q16;         /* [R][d] block copy                             */
    float *qf;            /* [R][d] block copy of the float queries        */
    float *acc_raw;       /* [R][d] values read raw (f16, q8_0)            */
    float *acc_rot;       /* [R][d] values of tq rows, rotated domain      */
    float *acc_p;         /* [R][r] one step's projected values (stride r) */
    float *row;           /* [d]                                           */
    float *qs;            /* [R] score scale of coded keys                 */
    float *m, *l, *mx;    /* [R] running max, sum of exp, chunk max        */
    float *t1, *t2;       /* [R] per-key temporaries                       */
    float *qmc;           /* [QM_GROUP][R] score offsets of coded keys
                             (scale * q.mu) of blocks qmc_blk0 ...        */
    int32_t qmc_blk0, qmc_n; /* the blocks qmc holds (qmc_n 0: none)       */
} att_scratch;

/* Carves `count` elements of `size` bytes, 64-byte aligned, at *p. */
static void *carve(uintptr_t *p, size_t count, size_t size) {
    void *r = (void *)*p;
    *p += (count * size + 63) / 64 * 64;
    return r;
}

/* The scratch of one thread at `base` (64-byte aligned); *bytes receives
 * its size. base 0 computes the size only. */
static att_scratch scratch_at(uintptr_t base, int32_t G, int32_t n_kv, int32_t d, size_t *bytes) {
    const size_t R = (size_t)QBLOCK * (size_t)G, D = (size_t)d;
    att_scratch s;
    uintptr_t p = base;
    s.gsc = carve(&p, R * (size_t)n_kv, sizeof(float));
    s.sc = carve(&p, R * CHUNK, sizeof(float));
    s.w16 = carve(&p, R * CHUNK, sizeof(int16_t));
    s.wscale = carve(&p, R * (CHUNK / TURBO_V_TILE), sizeof(float));
    s.q16 = carve(&p, R * D, sizeof(int16_t));
    s.qf = carve(&p, R * D, sizeof(float));
    s.acc_raw = carve(&p, R * D, sizeof(float));
    s.acc_rot = carve(&p, R * D, sizeof(float));
    s.acc_p = carve(&p, R * D, sizeof(float));
    s.row = carve(&p, D, sizeof(float));
    float **small[] = {&s.qs, &s.m, &s.l, &s.mx, &s.t1, &s.t2};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) *small[i] = carve(&p, R, sizeof(float));
    s.qmc = carve(&p, QM_GROUP * R, sizeof(float));
    if (bytes) *bytes = (size_t)(p - base);
    return s;
}

/* Rotates and quantizes the queries (one task per (token, head)). */
static void prep_worker(void *user, int ith, int nth) {
    att_ctx *a = user;
    const tq_kv_cache *c = a->c;
    const turbo_store *ks = &c->st[0];
    const int32_t d = c->p.head_dim;
    const int64_t n = (int64_t)a->n_tok * a->n_head;
    float y[TURBO_MAX_DIM];
    for (int64_t r = n * ith / nth; r < n * (ith + 1) / nth; r++) {
        const float *q = a->q + (size_t)r * (size_t)d;
        const int32_t kvh = (int32_t)(r % a->n_head) / a->G;
        const float *ka = turbo_kscale(c, a->layer, kvh);
        if (ka) { /* balanced keys k * a score against q / a */
            for (int32_t i = 0; i < d; i++) y[i] = q[i] / ka[i];
            q = y;
        }
        const uint16_t *perm = turbo_kperm(c, a->layer, kvh);
        float qp[TURBO_MAX_DIM];
        if (perm) { /* split2 keys: the query's channels in the keys' slot order */
            for (int32_t i = 0; i < d; i++) qp[i] = q[perm[i]];
            q = qp;
        }
        turbo_codec_rotate(&ks->codec, ks->sign + (size_t)a->layer * (size_t)d, q, y);
        float amax = 0;
        for (int32_t i = 0; i < d; i++) amax = fabsf(y[i]) > amax ? fabsf(y[i]) : amax;
        const float sq = amax > 0 ? amax / (float)TURBO_Q_MAX : 1.0f, inv = 1.0f / sq;
        int16_t *q16 = a->q16 + (size_t)r * (size_t)d;
        for (int32_t i = 0; i < d; i++) q16[i] = (int16_t)lrintf(y[i] * inv);
        a->qk_scale[r] = a->scale * sq * ks->codec.lut_unit;
    }
}

/* The R score offsets scale * q_r . mu_blk of the block's rows: the key
 * mean of block blk added back to coded scores (0 without centering), in
 * s->qmc, valid until the next call. Each row's sum runs in double over
 * i in order. The order is fixed on purpose: the quantized model amplifies
 * last-bit differences here into perplexity moves of about 0.1% over a
 * few chunks (see docs/kv-turbo.md), so this stays the same sum. What runs
 * side by side are independent sums: the block's rows, and the next
 * QM_GROUP - 1 blocks, which the coded run and the key-by-key keys reach in
 * ascending order (kept in s->qmc). One block at a time, a decode step's 4
 * rows were 4 chains of d dependent adds per 128 keys, 5-7% of the coded
 * attention at 32K (session 8 profile). */
static const float *set_qm(const att_ctx *a, att_scratch *s, int32_t kvh, int32_t R, int32_t blk) {
    if (blk >= s->qmc_blk0 && blk < s->qmc_blk0 + s->qmc_n)
        return s->qmc + (size_t)(blk - s->qmc_blk0) * (size_t)R;
    const tq_kv_cache *c = a->c;
    const int32_t d = c->p.head_dim;
    float mu[QM_GROUP][TURBO_MAX_DIM];
    s->qmc_blk0 = blk;
    if (!turbo_kmean_load(c, a->layer, kvh, blk, mu[0])) {
        for (int32_t r = 0; r < R; r++) s->qmc[r] = 0.0f;
        s->qmc_n = 1;
        return s->qmc;
    }
    const int32_t nb = c->n_kblk - blk < QM_GROUP ? c->n_kblk - blk : QM_GROUP;
    for (int32_t k = 1; k < QM_GROUP; k++)
        if (k >= nb || !turbo_kmean_load(c, a->layer, kvh, blk + k, mu[k]))
            memset(mu[k], 0, (size_t)d * sizeof(float));
    /* the means as doubles, the group's blocks side by side (the sums'
     * inner loop then runs over contiguous lanes, which -O2 vectorizes) */
    double mut[TURBO_MAX_DIM][QM_GROUP];
    for (int32_t i = 0; i < d; i++)
        for (int32_t k = 0; k < QM_GROUP; k++) mut[i][k] = (double)mu[k][i];
    enum { ROWS = 4 };
    for (int32_t r0 = 0; r0 < R; r0 += ROWS) {
        const int32_t nr = R - r0 < ROWS ? R - r0 : ROWS;
        const float *q = s->qf + (size_t)r0 * (size_t)d;
        double qm[ROWS][QM_GROUP] = {{0}};
        for (int32_t i = 0; i < d; i++)
            for (int32_t r = 0; r < nr; r++) {
                const double qv = (double)q[(size_t)r * (size_t)d + (size_t)i];
                for (int32_t k = 0; k < QM_GROUP; k++) qm[r][k] += qv * mut[i][k];
            }
        for (int32_t r = 0; r < nr; r++)
            for (int32_t k = 0; k < QM_GROUP; k++)
                s->qmc[(size_t)k * (size_t)R + (size_t)(r0 + r)] = a->scale * (float)qm[r][k];
    }
    s->qmc_n = nb;
    return s->qmc;
}

/* Global query row (token i, head kvh*G + g). */
static size_t qrow(const att_ctx *a, int32_t i, int32_t kvh, int32_t g) {
    return (size_t)i * (size_t)a->n_head + (size_t)kvh * (size_t)a->G + (size_t)g;
}

/* Raises row r's running max to M, rescaling its sums. */
static void raise_max(att_scratch *s, int32_t r, int32_t d, float M) {
    if (!(M > s->m[r])) return;
    const float f = s->m[r] == -INFINITY ? 0.0f : turbo_exp(s->m[r] - M);
    s->m[r] = M;
    s->l[r] *= f;
    float *ar = s->acc_raw + (size_t)r * (size_t)d, *ao = s->acc_rot + (size_t)r * (size_t)d;
    for (int32_t e = 0; e < d; e++) {
        ar[e] *= f;
        ao[e] *= f;
    }
}

/* The kernels lay their sums out with the row's own length as stride, so
 * projected V rows (r < d values) accumulate in acc_p first; this adds
 * them to acc_rot (stride d) and clears acc_p. */
static void add_projected(att_scratch *s, int32_t R, int32_t r, int32_t d) {
    for (int32_t row = 0; row < R; row++) {
        float *dst = s->acc_rot + (size_t)row * (size_t)d, *src = s->acc_p + (size_t)row * (size_t)r;
        for (int32_t k = 0; k < r; k++) dst[k] += src[k];
    }
    memset(s->acc_p, 0, (size_t)R * (size_t)r * sizeof(float));
}

/* Asks for the cache lines of [p, p + bytes) (a hint; no effect on results). */
static void prefetch_bytes(const uint8_t *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 3);
}

/* The coded run [ca, cb) of KV head kvh for all R rows of the block (K and
 * V both tq; every row reads every key from the codes). */
static void attend_coded(const att_ctx *a, att_scratch *s, int32_t kvh, int32_t R, int32_t ca,
                         int32_t cb) {
    const tq_kv_cache *c = a->c;
    const turbo_store *ks = &c->st[0], *vs = &c->st[1];
    const int32_t d = c->p.head_dim;
    const turbo_codec *vc = turbo_v_codec(c, a->layer); /* plain or projected */
    const turbo_kernels *vk = turbo_v_kern(c, a->layer);
    const float v_unit = vc->lut_unit / (float)TURBO_W_MAX;
    for (int32_t c0 = ca, n; c0 < cb; c0 += n) {
        n = cb - c0 < CHUNK ? cb - c0 : CHUNK;
        if (c->kmean) { /* a chunk stays inside one key-mean block */
            const int32_t blk_end = (c0 / c->kblk + 1) * c->kblk;
            if (n > blk_end - c0) n = blk_end - c0;
        }
        const float *qm = set_qm(a, s, kvh, R, turbo_kblock(c, c0));
        const uint8_t *krows = turbo_code_row(c, ks, a->layer, kvh, c0);
        const uint8_t *vrows = turbo_code_row(c, vs, a->layer, kvh, c0);
        memcpy(s->mx, s->m, (size_t)R * sizeof(float));
        ks->kern->k_scores(krows, ks->codec.row_bytes, n, d, ks->codec.lut16, s->q16, s->qs, qm,
                           R, s->sc, CHUNK, s->mx);
        for (int32_t r = 0; r < R; r++) raise_max(s, r, d, s->mx[r]);
        vk->softmax_w(s->sc, CHUNK, n, R, s->m, vrows, vs->codec.row_bytes, v_unit, s->l,
                            s->w16, s->wscale);
        /* The next chunk's V rows, a tile's worth before each tile's V
         * sums. softmax_w reads each V row first (its scale), and those
         * reads missed the cache: 83% of softmax_w's samples at 32K on the
         * Zen 4 VM. Asked for all at once before k_scores, the requests
         * queued (the wait moved to the prefetches); spread over the V
         * tiles they overlap the arithmetic: 32K decode attention 5.88 ->
         * 5.60 ms per layer (4 alternating rounds, session 12). The next
         * chunk's K rows as well were no faster. */
        const int32_t nn = cb - (c0 + n) < CHUNK ? cb - (c0 + n) : CHUNK;
        for (int32_t t0 = 0; t0 < n; t0 += TURBO_V_TILE) {
            if (t0 < nn) {
                const int32_t nt = nn - t0 < TURBO_V_TILE ? nn - t0 : TURBO_V_TILE;
                prefetch_bytes(vrows + (size_t)(n + t0) * vs->codec.row_bytes, (size_t)nt * vs->codec.row_bytes);
            }
            vk->v_acc(vrows + (size_t)t0 * vs->codec.row_bytes, vs->codec.row_bytes,
                            n - t0 < TURBO_V_TILE ? n - t0 : TURBO_V_TILE, vc->d, vc->lut16,
                            s->w16 + t0, CHUNK, s->wscale + (size_t)(t0 / TURBO_V_TILE) * (size_t)R,
                            R, vc->d < d ? s->acc_p : s->acc_rot);
        }
        if (vc->d < d) add_projected(s, R, vc->d, d);
    }
}

/* Scores of key j for the rows of the block into s->t1 (unscaled float
 * dots for raw rows already multiplied by scale; -inf where causal masks).
 * Rows that read the f16 copy `f` or the codes follow the window rules. */
static void key_scores(const att_ctx *a, att_scratch *s, int32_t i0, int32_t kvh, int32_t R,
                       int32_t j) {
    const tq_kv_cache *c = a->c;
    const turbo_store *ks = &c->st[0];
    const int32_t d = c->p.head_dim, G = a->G;
    const uint16_t *f = turbo_f16_lookup(c, ks, a->layer, kvh, j);
    int any_code = 0, any_f16 = 0;
    for (int32_t r = 0; r < R; r += G) {
        const int32_t p = a->pos0 + i0 + r / G;
        if (j > p) continue;
        if (f && turbo_wants_f16(ks, j, p)) any_f16 = 1;
        else any_code = 1;
    }
    if (any_f16) a->kf->f16_dot(f, d, s->qf, R, s->t2);
    if (any_code) {
        const uint8_t *row = turbo_code_row(c, ks, a->layer, kvh, j);
        if (ks->codec.kind == TURBO_TQ) {
            const float *qm = set_qm(a, s, kvh, R, turbo_kblock(c, j));
            for (int32_t r = 0; r < R; r++) s->mx[r] = -INFINITY;
            ks->kern->k_scores(row, ks->codec.row_bytes, 1, d, ks->codec.lut16, s->q16, s->qs, qm,
                               R, s->t1, 1, s->mx);
        } else if (ks->codec.kind == TURBO_F16) {
            a->kf->f16_dot((const uint16_t *)(const void *)row, d, s->qf, R, s->t1);
            for (int32_t r = 0; r < R; r++) s->t1[r] *= a->scale;
        } else {
            turbo_decode_row(&ks->codec, NULL, row, s->row);
            for (int32_t r = 0; r < R; r++) {
                const float *q = s->qf + (size_t)r * (size_t)d;
                float dot = 0;
                for (int32_t e = 0; e < d; e++) dot += q[e] * s->row[e];
                s->t1[r] = a->scale * dot;
            }
        }
    }
    for (int32_t r = 0; r < R; r++) {
        const int32_t p = a->pos0 + i0 + r / G;
        if (j > p) s->t1[r] = -INFINITY;
        else if (f && turbo_wants_f16(ks, j, p)) s->t1[r] = a->scale * s->t2[r];
    }
}

/* Value of key j weighted by s->gsc[r * stride + t] (0 where masked) into
 * the block's sums, each row from the f16 copy or the codes. */
static void key_values(const att_ctx *a, att_scratch *s, int32_t i0, int32_t kvh, int32_t R,
                       int32_t j, const float *pw, size_t stride) {
    const tq_kv_cache *c = a->c;
    const turbo_store *vs = &c->st[1];
    const int32_t d = c->p.head_dim, G = a->G;
    const uint16_t *f = turbo_f16_lookup(c, vs, a->layer, kvh, j);
    int any_code = 0, any_f16 = 0;
    for (int32_t r = 0; r < R; r++) {
        const int32_t p = a->pos0 + i0 + r / G;
        const float w = j > p ? 0.0f : pw[(size_t)r * stride];
        const int use_f16 = f && turbo_wants_f16(vs, j, p);
        s->t1[r] = use_f16 ? 0.0f : w; /* codes */
        s->t2[r] = use_f16 ? w : 0.0f; /* f16 copy */
        any_code |= !use_f16 && w != 0;
        any_f16 |= use_f16 && w != 0;
    }
    if (any_f16) a->kf->f16_acc(&f, 1, d, s->t2, 1, R, s->acc_raw);
    if (!any_code) return;
    const uint8_t *row = turbo_code_row(c, vs, a->layer, kvh, j);
    if (vs->codec.kind == TURBO_TQ) {
        /* one row: weight TURBO_W_MAX, the value in the scale */
        const turbo_codec *vc = turbo_v_codec(c, a->layer);
        const float sj = turbo_row_scale(row), unit = vc->lut_unit / (float)TURBO_W_MAX;
        for (int32_t r = 0; r < R; r++) {
            s->w16[r] = s->t1[r] > 0 ? TURBO_W_MAX : 0;
            s->t1[r] = s->t1[r] * sj * unit;
        }
        turbo_v_kern(c, a->layer)->v_acc(row, vs->codec.row_bytes, 1, vc->d, vc->lut16, s->w16, 1,
                                         s->t1, R, vc->d < d ? s->acc_p : s->acc_rot);
        if (vc->d < d) add_projected(s, R, vc->d, d);
    } else if (vs->codec.kind == TURBO_F16) {
        const uint16_t *h = (const uint16_t *)(const void *)row;
        a->kf->f16_acc(&h, 1, d, s->t1, 1, R, s->acc_raw);
    } else {
        turbo_decode_row(&vs->codec, NULL, row, s->row);
        for (int32_t r = 0; r < R; r++) {
            float *acc = s->acc_raw + (size_t)r * (size_t)d;
            for (int32_t e = 0; e < d; e++) acc[e] += s->t1[r] * s->row[e];
        }
    }
}

/* Keys per f16_acc call in attend_keys. */
#define F16_RUN 64

/* The f16 value row of key j when every row of the block that weighs it
 * (pw[r * stride] != 0) reads it in f16 (the window, sinks, an f16 V
 * format), else NULL. */
static const uint16_t *f16_value(const att_ctx *a, int32_t i0, int32_t kvh, int32_t R, int32_t j,
                                 const float *pw, size_t stride) {
    const tq_kv_cache *c = a->c;
    const turbo_store *vs = &c->st[1];
    if (vs->codec.kind == TURBO_F16)
        return (const uint16_t *)(const void *)turbo_code_row(c, vs, a->layer, kvh, j);
    const uint16_t *f = turbo_f16_lookup(c, vs, a->layer, kvh, j);
    for (int32_t r = 0; f && r < R; r++)
        if (pw[(size_t)r * stride] != 0 && !turbo_wants_f16(vs, j, a->pos0 + i0 + r / a->G)) f = NULL;
    return f;
}

/* The keys of [j0, end) outside the coded run [ca, cb), key by key. */
static void attend_keys(const att_ctx *a, att_scratch *s, int32_t i0, int32_t kvh, int32_t R,
                        int32_t j0, int32_t end, int32_t ca, int32_t cb) {
    const int32_t d = a->c->p.head_dim;
    const int32_t len = (end - j0) - (cb - ca);
    if (len <= 0) return;
#define EACH_KEY(j, t) \
    for (int32_t j = j0 == ca ? cb : j0, t = 0; j < end; j = j + 1 == ca ? cb : j + 1, t++)
    EACH_KEY(j, t) {
        key_scores(a, s, i0, kvh, R, j);
        for (int32_t r = 0; r < R; r++) s->gsc[(size_t)r * (size_t)len + (size_t)t] = s->t1[r];
    }
    for (int32_t r = 0; r < R; r++) {
        float *sc = s->gsc + (size_t)r * (size_t)len, mx = -INFINITY;
        for (int32_t t = 0; t < len; t++) mx = sc[t] > mx ? sc[t] : mx;
        raise_max(s, r, d, mx);
        if (s->m[r] == -INFINITY) { /* nothing visible yet: all weights 0 */
            memset(sc, 0, (size_t)len * sizeof *sc);
            continue;
        }
        s->l[r] += a->kf->exp_sum(sc, len, s->m[r]);
    }
    /* Values: runs of keys that every weighted row reads in f16 go to
     * f16_acc together (the window, f16 V); the others key by key. */
    const uint16_t *run[F16_RUN];
    int32_t n_run = 0, t_run = 0;
    EACH_KEY(j, t) {
        const uint16_t *f = f16_value(a, i0, kvh, R, j, s->gsc + t, (size_t)len);
        if (n_run > 0 && (!f || n_run == F16_RUN)) {
            a->kf->f16_acc(run, n_run, d, s->gsc + t_run, (size_t)len, R, s->acc_raw);
            n_run = 0;
        }
        if (!f) {
            key_values(a, s, i0, kvh, R, j, s->gsc + t, (size_t)len);
            continue;
        }
        if (n_run == 0) t_run = t;
        run[n_run++] = f;
    }
    if (n_run > 0) a->kf->f16_acc(run, n_run, d, s->gsc + t_run, (size_t)len, R, s->acc_raw);
#undef EACH_KEY
}

/* The coded run of a query at position p: keys past both stores' sinks
 * and older than both windows, read from the codes (empty unless K and V
 * are both tq). */
static void coded_run(const att_ctx *a, int32_t p, int32_t *ca, int32_t *cb) {
    const tq_kv_cache *c = a->c;
    *ca = 0;
    *cb = p + 1;
    for (int w = 0; w < 2; w++) {
        const turbo_store *st = &c->st[w];
        if (*ca < st->sinks) *ca = st->sinks;
        if (st->window > 0 && *cb > p - st->window + 1) *cb = p - st->window + 1;
    }
    if (c->st[0].codec.kind != TURBO_TQ || c->st[1].codec.kind != TURBO_TQ || *cb < *ca)
        *ca = *cb = 0;
}

/* Attention of query tokens [i0, i1) (at most QBLOCK; all G heads of KV
 * head kvh) over keys [j0, j1), each clipped to its causal range. Leaves in
 * s, per block row r = (i - i0) * G + g: the max score m[r], the sum of
 * exp l[r], and unnormalized raw- and rotated-domain value sums. A row with
 * no key in range gets m = -inf, l = 0 and zero sums. */
static void attend_block(const att_ctx *a, att_scratch *s, int32_t i0, int32_t i1, int32_t kvh,
                         int32_t j0, int32_t j1) {
    const tq_kv_cache *c = a->c;
    const int32_t d = c->p.head_dim, G = a->G, R = (i1 - i0) * G;
    const int32_t p_first = a->pos0 + i0, p_last = a->pos0 + i1 - 1;
    const int32_t end = j1 < p_last + 1 ? j1 : p_last + 1;
    const int k_tq = c->st[0].codec.kind == TURBO_TQ;
    memset(s->acc_raw, 0, (size_t)R * (size_t)d * sizeof(float));
    memset(s->acc_rot, 0, (size_t)R * (size_t)d * sizeof(float));
    memset(s->acc_p, 0, (size_t)R * (size_t)d * sizeof(float));
    for (int32_t r = 0; r < R; r++) {
        s->m[r] = -INFINITY;
        s->l[r] = 0;
    }
    if (end <= j0) return;
    for (int32_t r = 0; r < R; r++) {
        const size_t qr = qrow(a, i0 + r / G, kvh, r % G);
        memcpy(s->qf + (size_t)r * (size_t)d, a->q + qr * (size_t)d, (size_t)d * sizeof(float));
        if (!k_tq) continue;
        memcpy(s->q16 + (size_t)r * (size_t)d, a->q16 + qr * (size_t)d, (size_t)d * sizeof(int16_t));
        s->qs[r] = a->qk_scale[qr];
    }
    s->qmc_n = 0;
    /* The coded run of the first query, clipped to [j0, end). */
    int32_t ca, cb;
    coded_run(a, p_first, &ca, &cb);
    if (ca < j0) ca = j0;
    if (cb > end) cb = end;
    if (cb <= ca) ca = cb = end;
    if (cb > ca) attend_coded(a, s, kvh, R, ca, cb);
    attend_keys(a, s, i0, kvh, R, j0, end, ca, cb);
}

/* out = (acc_raw + unrotate(acc_rot)) / l for one head of KV head kvh
 * (projected values: P^T unrotate(acc_rot)). acc_rot is clobbered. */
static void finish(const att_ctx *a, int32_t kvh, float l, const float *acc_raw, float *acc_rot,
                   float *out) {
    const tq_kv_cache *c = a->c;
    const turbo_store *vs = &c->st[1];
    const int32_t d = c->p.head_dim;
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    if (turbo_v_projected(c, a->layer)) {
        float z[TURBO_MAX_DIM];
        turbo_codec_unrotate(&vs->vp.codec, turbo_v_sign(c, a->layer), acc_rot, z);
        turbo_v_unproject(c, a->layer, kvh, z, acc_rot);
    } else if (vs->codec.kind == TURBO_TQ)
        turbo_unrotate(vs->sign + (size_t)a->layer * (size_t)d, d, acc_rot, acc_rot);
    for (int32_t e = 0; e < d; e++)
        out[e] = (acc_raw[e] + (vs->codec.kind == TURBO_TQ ? acc_rot[e] : 0.0f)) * inv;
}

/* Query tokens [lo, hi) of thread ith, balanced by causal length: the
 * first k tokens cost k*pos0 + k(k+1)/2 key visits. */
static double prefix_cost(const att_ctx *a, int32_t k) {
    return (double)k * a->pos0 + (double)k * (k + 1) / 2;
}

static int32_t token_bound(const att_ctx *a, int part, int nth) {
    if (part >= nth) return a->n_tok;
    const double target = prefix_cost(a, a->n_tok) * part / nth;
    int32_t lo = 0, hi = a->n_tok; /* smallest k with prefix_cost(k) >= target */
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (prefix_cost(a, mid) >= target) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Key positions [lo, hi) of part `part` of n_parts when keys are split
 * (decode), balanced by cost: a key outside the coded run (sinks, f16
 * window, any key of a non-tq format) goes through the key-by-key path and
 * costs about KEY_COST coded keys (from a profile of decode at 4K, d = 128,
 * G = 4, AVX2: the 132 f16 keys took 7% of the samples, the 3964 coded
 * 48%). */
#define KEY_COST 4.5

static double key_cost(int32_t j, int32_t ca, int32_t cb) {
    const int32_t coded = j < ca ? 0 : (j < cb ? j - ca : cb - ca);
    return (double)coded + KEY_COST * (double)(j - coded);
}

static int32_t key_bound(const att_ctx *a, int part, int n_parts) {
    if (part >= n_parts) return a->n_kv;
    int32_t ca, cb;
    coded_run(a, a->pos0, &ca, &cb);
    const double target = key_cost(a->n_kv, ca, cb) * part / n_parts;
    int32_t lo = 0, hi = a->n_kv; /* smallest j with key_cost(j) >= target */
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (key_cost(mid, ca, cb) >= target) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static void att_worker(void *user, int ith, int nth) {
    att_ctx *a = user;
    const int32_t d = a->c->p.head_dim, G = a->G, H = a->c->p.n_kv_heads;
    att_scratch s = scratch_at((uintptr_t)(a->thread_mem + (size_t)ith * a->thread_stride), G,
                               a->n_kv, d, NULL);
    if (!a->split_keys) {
        const int32_t lo = token_bound(a, ith, nth), hi = token_bound(a, ith + 1, nth);
        for (int32_t i0 = lo; i0 < hi; i0 += QBLOCK) {
            const int32_t i1 = i0 + QBLOCK < hi ? i0 + QBLOCK : hi;
            for (int32_t kvh = 0; kvh < H; kvh++) {
                attend_block(a, &s, i0, i1, kvh, 0, a->n_kv);
                for (int32_t r = 0; r < (i1 - i0) * G; r++)
                    finish(a, kvh, s.l[r], s.acc_raw + (size_t)r * (size_t)d,
                           s.acc_rot + (size_t)r * (size_t)d,
                           a->out + qrow(a, i0 + r / G, kvh, r % G) * (size_t)d);
            }
        }
        return;
    }
    /* Key split: a task is one part of one KV head's keys. Parts of fixed
     * bounds taken from a counter (not one range per thread) keep both
     * threads busy to the end when the VM slows one of them: about 6% of
     * a 32K decode's attention was one thread waiting (session 8); the
     * results depend on n_parts only, never on who took what. */
    const size_t stride = 2 + 2 * (size_t)d, rows = (size_t)a->n_tok * (size_t)a->n_head;
    for (int task; (task = atomic_fetch_add_explicit(&a->next_task, 1, memory_order_relaxed)) <
                   H * a->n_parts;) {
        const int32_t part = task / H, kvh = task % H;
        const int32_t j0 = key_bound(a, part, a->n_parts), j1 = key_bound(a, part + 1, a->n_parts);
        for (int32_t i0 = 0; i0 < a->n_tok; i0 += QBLOCK) {
            const int32_t i1 = i0 + QBLOCK < a->n_tok ? i0 + QBLOCK : a->n_tok;
            attend_block(a, &s, i0, i1, kvh, j0, j1);
            for (int32_t r = 0; r < (i1 - i0) * G; r++) {
                float *pp = a->part + ((size_t)part * rows + qrow(a, i0 + r / G, kvh, r % G)) * stride;
                pp[0] = s.m[r];
                pp[1] = s.l[r];
                memcpy(pp + 2, s.acc_raw + (size_t)r * (size_t)d, (size_t)d * sizeof(float));
                memcpy(pp + 2 + d, s.acc_rot + (size_t)r * (size_t)d, (size_t)d * sizeof(float));
            }
        }
    }
}

/* Log-sum-exp merge of the key-split partials, then finish. [main] */
static void merge_parts(att_ctx *a, int n_parts) {
    const int32_t d = a->c->p.head_dim;
    const size_t stride = 2 + 2 * (size_t)d, rows = (size_t)a->n_tok * (size_t)a->n_head;
    float *acc = a->part + (size_t)n_parts * rows * stride; /* 2d floats after the partials */
    for (size_t r = 0; r < rows; r++) {
        float M = -INFINITY;
        for (int t = 0; t < n_parts; t++) {
            const float mt = a->part[((size_t)t * rows + r) * stride];
            M = mt > M ? mt : M;
        }
        double L = 0;
        memset(acc, 0, 2 * (size_t)d * sizeof(float));
        for (int t = 0; t < n_parts; t++) {
            const float *pp = a->part + ((size_t)t * rows + r) * stride;
            if (pp[0] == -INFINITY) continue;
            const float w = expf(pp[0] - M);
            L += (double)w * pp[1];
            for (size_t e = 0; e < 2 * (size_t)d; e++) acc[e] += w * pp[2 + e];
        }
        finish(a, (int32_t)(r % (size_t)a->n_head) / a->G, (float)L, acc, acc + d,
               a->out + r * (size_t)d);
    }
}

tq_status turbo_attention(tq_kv_cache *c, int32_t layer, const float *q, int32_t n_head,
                          int32_t n_tokens, int32_t pos0, float scale, float *out, tq_error *err) {
    const tq_host *host = c->host;
    const int32_t H = c->p.n_kv_heads, d = c->p.head_dim;
    if (layer < 0 || layer >= c->p.n_layers || n_head <= 0 || n_head % H != 0 || n_tokens <= 0 ||
        pos0 < 0 || pos0 + n_tokens > c->n_pos) {
        if (err) {
            err->code = TQ_ERR_RANGE;
            snprintf(err->message, sizeof err->message,
                     "turbo attention: layer %d, %d heads over %d KV heads, positions %d..%d "
                     "with %d stored",
                     layer, n_head, H, pos0, pos0 + n_tokens - 1, c->n_pos);
        }
        return TQ_ERR_RANGE;
    }
    /* The keys of this layer's first batch wait for its queries. */
    if (c->kpend_layer >= 0)
        turbo_kbal_settle(c, c->kpend_layer == layer ? q : NULL, n_head, n_tokens);
    att_ctx a = {0};
    a.c = c;
    a.kf = c->kf;
    a.layer = layer;
    a.n_head = n_head;
    a.n_tok = n_tokens;
    a.pos0 = pos0;
    a.n_kv = pos0 + n_tokens;
    a.G = n_head / H;
    a.scale = scale;
    a.q = q;
    a.out = out;
    const int nth = host->n_threads > 0 ? host->n_threads : 1;
    a.split_keys = n_tokens < nth;
    /* Key parts: a few per thread (KEY_PARTS_PER_THREAD) once the context
     * is long enough that a part has KEY_PART_MIN keys. */
    a.n_parts = a.n_kv / KEY_PART_MIN;
    if (a.n_parts > KEY_PARTS_PER_THREAD * nth) a.n_parts = KEY_PARTS_PER_THREAD * nth;
    if (a.n_parts < nth) a.n_parts = nth;
    atomic_init(&a.next_task, 0);

    /* One allocation: queries, per-thread scratch, partials. */
    const size_t rows = (size_t)n_tokens * (size_t)n_head;
    const size_t q16_bytes = (rows * (size_t)d * sizeof(int16_t) + 63) / 64 * 64;
    const size_t qs_bytes = (rows * sizeof(float) + 63) / 64 * 64;
    scratch_at(0, a.G, a.n_kv, d, &a.thread_stride);
    const size_t part_bytes =
        a.split_keys ? ((size_t)a.n_parts * rows + 1) * (2 + 2 * (size_t)d) * sizeof(float) : 0;
    const size_t need = q16_bytes + qs_bytes + (size_t)nth * a.thread_stride + part_bytes;
    if (need > c->scratch_bytes) {
        host->free(c->scratch);
        c->scratch_bytes = 0;
        if (!(c->scratch = host->alloc(need, 64))) {
            if (err) {
                err->code = TQ_ERR_NOMEM;
                snprintf(err->message, sizeof err->message,
                         "turbo attention: cannot allocate %zu bytes of scratch", need);
            }
            return TQ_ERR_NOMEM;
        }
        c->scratch_bytes = need;
    }
    char *p = c->scratch;
    a.q16 = (int16_t *)(void *)p;
    a.qk_scale = (float *)(void *)(p + q16_bytes);
    a.thread_mem = p + q16_bytes + qs_bytes;
    a.part = a.split_keys ? (float *)(void *)(a.thread_mem + (size_t)nth * a.thread_stride) : NULL;

    if (c->st[0].codec.kind == TURBO_TQ) host->parallel_for(prep_worker, &a);
    host->parallel_for(att_worker, &a);
    if (a.split_keys) merge_parts(&a, a.n_parts);
    /* This layer's batch has been attended: its f16 rows may enter the ring. */
    if (c->stage_layer == layer) turbo_commit_stage(c);
    return TQ_OK;
}
