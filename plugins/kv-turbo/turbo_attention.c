/* turbo_attention.c — causal attention computed on the turbo cache's own
 * format (spec §5.1, §6.1 step 8).
 *
 * For each block of query tokens and each KV head, the G query heads that
 * share the head are processed together, so each cached row is read and
 * unpacked once per KV head and block, not once per query head (GQA
 * sharing). Per query head:
 *   - q is rotated once with the layer's K signs and quantized to 12-bit
 *     integers; a tq key scores
 *       scale * s_j * sq * unit * <q16, lut16[idx_j]> + scale * q.mu
 *     (integer dot through turbo_kernels; mu = the K-centering mean);
 *   - f16 rows (sinks, recent window) and q8_0 / f16 formats score in the
 *     raw domain in float;
 *   - values of tq rows accumulate in the rotated domain, weight p_j * s_j,
 *     and the sum is rotated back once per head at the end; other rows
 *     accumulate in the raw domain.
 * Work is split over threads along tokens: over query tokens (balanced by
 * causal length) for batches, over key positions with a log-sum-exp merge
 * of the partial results when there are fewer queries than threads. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "turbo_cache.h"
#include "turbo_half.h"
#include "turbo_rotation.h"

typedef struct att_ctx {
    tq_kv_cache *c;
    int32_t layer, n_head, n_tok, pos0, n_kv, G;
    float scale;
    const float *q;       /* [n_tok][n_head][d]                            */
    float *out;           /* [n_tok][n_head][d]                            */
    int16_t *q16;         /* [n_tok][n_head][d] rotated integer queries    */
    float *qk_scale;      /* [n_tok][n_head] scale * sq * lut_unit          */
    float *q_mu;          /* [n_tok][n_head] scale * q.mu                   */
    char *thread_mem;     /* per thread: thread_stride bytes                */
    size_t thread_stride;
    float *part;          /* key-split partials [nth][n_tok][n_head][2+2d]  */
    int split_keys;
} att_ctx;

/* Query tokens handled together: each cached row is unpacked once per
 * block and KV head, then dotted with every query row of the block. */
#define QBLOCK 8

/* One thread's scratch, carved from thread_mem; R = QBLOCK * G rows. */
typedef struct att_scratch {
    float *scores;        /* [R][n_kv]           */
    float *row;           /* [d]                 */
    float *w;             /* [R]                 */
    int32_t *dots;        /* [R]                 */
    int16_t *q16;         /* [R][d] block copy   */
    float *m, *l;         /* [R]                 */
    float *acc_raw;       /* [R][d]              */
    float *acc_rot;       /* [R][d]              */
} att_scratch;

static size_t scratch_bytes_per_thread(int32_t G, int32_t n_kv, int32_t d) {
    const size_t R = (size_t)QBLOCK * (size_t)G;
    return (R * (size_t)n_kv + (size_t)d + 4 * R + 2 * R * (size_t)d) * sizeof(float) +
           R * (size_t)d * sizeof(int16_t) + 64;
}

static att_scratch scratch_of(const att_ctx *a, int ith) {
    att_scratch s;
    const size_t R = (size_t)QBLOCK * (size_t)a->G, d = (size_t)a->c->p.head_dim;
    float *p = (float *)(void *)(a->thread_mem + (size_t)ith * a->thread_stride);
    s.scores = p;
    s.row = s.scores + R * (size_t)a->n_kv;
    s.w = s.row + d;
    s.dots = (int32_t *)(void *)(s.w + R);
    s.m = (float *)(void *)(s.dots + R);
    s.l = s.m + R;
    s.acc_raw = s.l + R;
    s.acc_rot = s.acc_raw + R * d;
    s.q16 = (int16_t *)(void *)(s.acc_rot + R * d);
    return s;
}

static void f16_row(const uint16_t *h, int32_t d, float *out) {
    for (int32_t i = 0; i < d; i++) out[i] = turbo_f16_to_f32(h[i]);
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
        turbo_rotate(ks->sign + (size_t)a->layer * (size_t)d, d, q, y);
        float amax = 0;
        for (int32_t i = 0; i < d; i++) amax = fabsf(y[i]) > amax ? fabsf(y[i]) : amax;
        const float sq = amax > 0 ? amax / (float)TURBO_Q_MAX : 1.0f, inv = 1.0f / sq;
        int16_t *q16 = a->q16 + (size_t)r * (size_t)d;
        for (int32_t i = 0; i < d; i++) q16[i] = (int16_t)lrintf(y[i] * inv);
        a->qk_scale[r] = a->scale * sq * ks->codec.lut_unit;
        double qm = 0;
        if (c->mean) {
            const float *mu = c->mean + ((size_t)a->layer * (size_t)c->p.n_kv_heads + (size_t)kvh) *
                                            (size_t)d;
            for (int32_t i = 0; i < d; i++) qm += (double)q[i] * mu[i];
        }
        a->q_mu[r] = a->scale * (float)qm;
    }
}

/* Global query row (token i, head kvh*G + g). */
static size_t qrow(const att_ctx *a, int32_t i, int32_t kvh, int32_t g) {
    return (size_t)i * (size_t)a->n_head + (size_t)kvh * (size_t)a->G + (size_t)g;
}

/* Attention of query tokens [i0, i1) (at most QBLOCK; all G heads of KV
 * head kvh) over keys [j0, j1), each clipped to its causal range. Leaves in
 * s, per block row r = (i - i0) * G + g: the max score m[r], the sum of
 * exp l[r], and unnormalized raw- and rotated-domain value sums. A row with
 * no key in range gets m = -inf, l = 0 and zero sums. */
static void attend_block(const att_ctx *a, att_scratch *s, int32_t i0, int32_t i1, int32_t kvh,
                         int32_t j0, int32_t j1) {
    const tq_kv_cache *c = a->c;
    const turbo_store *ks = &c->st[0], *vs = &c->st[1];
    const int32_t d = c->p.head_dim, G = a->G, layer = a->layer, R = (i1 - i0) * G;
    const int32_t p_last = a->pos0 + i1 - 1;
    const int32_t end = j1 < p_last + 1 ? j1 : p_last + 1, len = end > j0 ? end - j0 : 0;
    const int k_tq = ks->codec.kind == TURBO_TQ, v_tq = vs->codec.kind == TURBO_TQ;
    memset(s->acc_raw, 0, (size_t)R * (size_t)d * sizeof(float));
    memset(s->acc_rot, 0, (size_t)R * (size_t)d * sizeof(float));
    for (int32_t r = 0; r < R; r++) {
        s->m[r] = -INFINITY;
        s->l[r] = 0;
    }
    if (len == 0) return;
    if (k_tq)
        for (int32_t r = 0; r < R; r++)
            memcpy(s->q16 + (size_t)r * (size_t)d,
                   a->q16 + qrow(a, i0 + r / G, kvh, r % G) * (size_t)d, (size_t)d * sizeof(int16_t));
    const float *ksign = ks->sign ? ks->sign + (size_t)layer * (size_t)d : NULL;
    const float *vsign = vs->sign ? vs->sign + (size_t)layer * (size_t)d : NULL;

    /* scores: s->scores[r * len + (j - j0)] */
    for (int32_t j = j0; j < end; j++) {
        const uint16_t *f = turbo_f16_lookup(c, ks, layer, kvh, j);
        int any_code = 0, any_f16 = 0;
        for (int32_t i = i0; i < i1; i++) {
            const int32_t p = a->pos0 + i;
            if (j > p) continue;
            if (f && turbo_wants_f16(ks, j, p)) any_f16 = 1;
            else any_code = 1;
        }
        const uint8_t *row = any_code ? turbo_code_row(c, ks, layer, kvh, j) : NULL;
        float sj = 0;
        if (row && k_tq) {
            ks->kern->k_dot(turbo_row_codes(row), d, ks->codec.lut16, s->q16, R, s->dots);
            sj = turbo_row_scale(row);
        } else if (row) {
            turbo_decode_row(&ks->codec, ksign, row, s->row);
        }
        float fk[TURBO_MAX_DIM];
        if (any_f16) f16_row(f, d, fk);
        for (int32_t r = 0; r < R; r++) {
            const int32_t i = i0 + r / G, p = a->pos0 + i;
            float *out = s->scores + (size_t)r * (size_t)len + (size_t)(j - j0);
            if (j > p) {
                *out = -INFINITY;
                continue;
            }
            const size_t qr = qrow(a, i, kvh, r % G);
            const int use_f16 = f && turbo_wants_f16(ks, j, p);
            if (!use_f16 && k_tq) {
                *out = sj * a->qk_scale[qr] * (float)s->dots[r] + a->q_mu[qr];
                continue;
            }
            const float *kv = use_f16 ? fk : s->row, *q = a->q + qr * (size_t)d;
            float dot = 0;
            for (int32_t e = 0; e < d; e++) dot += q[e] * kv[e];
            *out = a->scale * dot;
        }
    }
    for (int32_t r = 0; r < R; r++) {
        float *sc = s->scores + (size_t)r * (size_t)len, mx = -INFINITY;
        for (int32_t t = 0; t < len; t++) mx = sc[t] > mx ? sc[t] : mx;
        if (mx == -INFINITY) {
            for (int32_t t = 0; t < len; t++) sc[t] = 0;
            continue;
        }
        double sum = 0;
        for (int32_t t = 0; t < len; t++) {
            sc[t] = expf(sc[t] - mx);
            sum += sc[t];
        }
        s->m[r] = mx;
        s->l[r] = (float)sum;
    }

    /* values */
    for (int32_t j = j0; j < end; j++) {
        const uint16_t *f = turbo_f16_lookup(c, vs, layer, kvh, j);
        int any_code = 0, any_f16 = 0;
        for (int32_t r = 0; r < R; r++) {
            const int32_t p = a->pos0 + i0 + r / G;
            const float pw = s->scores[(size_t)r * (size_t)len + (size_t)(j - j0)];
            s->w[r] = 0;
            if (j > p || pw == 0) continue;
            if (f && turbo_wants_f16(vs, j, p)) any_f16 = 1;
            else any_code = 1;
        }
        if (any_code) {
            const uint8_t *row = turbo_code_row(c, vs, layer, kvh, j);
            const float sj = v_tq ? turbo_row_scale(row) : 1.0f;
            if (!v_tq) turbo_decode_row(&vs->codec, vsign, row, s->row);
            for (int32_t r = 0; r < R; r++) {
                const int32_t p = a->pos0 + i0 + r / G;
                if (j > p || (f && turbo_wants_f16(vs, j, p))) continue;
                const float pw = s->scores[(size_t)r * (size_t)len + (size_t)(j - j0)];
                if (v_tq) {
                    s->w[r] = pw * sj;
                    continue;
                }
                float *acc = s->acc_raw + (size_t)r * (size_t)d;
                for (int32_t e = 0; e < d; e++) acc[e] += pw * s->row[e];
            }
            if (v_tq) vs->kern->v_acc(turbo_row_codes(row), d, vs->codec.cb->c, s->w, R, s->acc_rot);
        }
        if (any_f16) {
            f16_row(f, d, s->row);
            for (int32_t r = 0; r < R; r++) {
                const int32_t p = a->pos0 + i0 + r / G;
                if (j > p || !turbo_wants_f16(vs, j, p)) continue;
                const float pw = s->scores[(size_t)r * (size_t)len + (size_t)(j - j0)];
                float *acc = s->acc_raw + (size_t)r * (size_t)d;
                for (int32_t e = 0; e < d; e++) acc[e] += pw * s->row[e];
            }
        }
    }
}

/* out = (acc_raw + unrotate(acc_rot)) / l for one head. acc_rot is clobbered. */
static void finish(const att_ctx *a, float l, const float *acc_raw, float *acc_rot, float *out) {
    const tq_kv_cache *c = a->c;
    const turbo_store *vs = &c->st[1];
    const int32_t d = c->p.head_dim;
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    if (vs->codec.kind == TURBO_TQ)
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

static void att_worker(void *user, int ith, int nth) {
    att_ctx *a = user;
    const int32_t d = a->c->p.head_dim, G = a->G, H = a->c->p.n_kv_heads;
    att_scratch s = scratch_of(a, ith);
    if (!a->split_keys) {
        const int32_t lo = token_bound(a, ith, nth), hi = token_bound(a, ith + 1, nth);
        for (int32_t i0 = lo; i0 < hi; i0 += QBLOCK) {
            const int32_t i1 = i0 + QBLOCK < hi ? i0 + QBLOCK : hi;
            for (int32_t kvh = 0; kvh < H; kvh++) {
                attend_block(a, &s, i0, i1, kvh, 0, a->n_kv);
                for (int32_t r = 0; r < (i1 - i0) * G; r++)
                    finish(a, s.l[r], s.acc_raw + (size_t)r * (size_t)d,
                           s.acc_rot + (size_t)r * (size_t)d,
                           a->out + qrow(a, i0 + r / G, kvh, r % G) * (size_t)d);
            }
        }
        return;
    }
    const int32_t j0 = (int32_t)((int64_t)a->n_kv * ith / nth);
    const int32_t j1 = (int32_t)((int64_t)a->n_kv * (ith + 1) / nth);
    const size_t stride = 2 + 2 * (size_t)d, rows = (size_t)a->n_tok * (size_t)a->n_head;
    for (int32_t i0 = 0; i0 < a->n_tok; i0 += QBLOCK) {
        const int32_t i1 = i0 + QBLOCK < a->n_tok ? i0 + QBLOCK : a->n_tok;
        for (int32_t kvh = 0; kvh < H; kvh++) {
            attend_block(a, &s, i0, i1, kvh, j0, j1);
            for (int32_t r = 0; r < (i1 - i0) * G; r++) {
                float *pp = a->part + ((size_t)ith * rows + qrow(a, i0 + r / G, kvh, r % G)) * stride;
                pp[0] = s.m[r];
                pp[1] = s.l[r];
                memcpy(pp + 2, s.acc_raw + (size_t)r * (size_t)d, (size_t)d * sizeof(float));
                memcpy(pp + 2 + d, s.acc_rot + (size_t)r * (size_t)d, (size_t)d * sizeof(float));
            }
        }
    }
}

/* Log-sum-exp merge of the key-split partials, then finish. [main] */
static void merge_parts(att_ctx *a, int nth) {
    const int32_t d = a->c->p.head_dim;
    const size_t stride = 2 + 2 * (size_t)d, rows = (size_t)a->n_tok * (size_t)a->n_head;
    float *acc = a->part + (size_t)nth * rows * stride; /* 2d floats after the partials */
    for (size_t r = 0; r < rows; r++) {
        float M = -INFINITY;
        for (int t = 0; t < nth; t++) {
            const float mt = a->part[((size_t)t * rows + r) * stride];
            M = mt > M ? mt : M;
        }
        double L = 0;
        memset(acc, 0, 2 * (size_t)d * sizeof(float));
        for (int t = 0; t < nth; t++) {
            const float *pp = a->part + ((size_t)t * rows + r) * stride;
            if (pp[0] == -INFINITY) continue;
            const float w = expf(pp[0] - M);
            L += (double)w * pp[1];
            for (size_t e = 0; e < 2 * (size_t)d; e++) acc[e] += w * pp[2 + e];
        }
        finish(a, (float)L, acc, acc + d, a->out + r * (size_t)d);
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
    att_ctx a = {0};
    a.c = c;
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

    /* One allocation: queries, per-thread scratch, partials. */
    const size_t rows = (size_t)n_tokens * (size_t)n_head;
    const size_t q16_bytes = (rows * (size_t)d * sizeof(int16_t) + 63) / 64 * 64;
    const size_t qs_bytes = (2 * rows * sizeof(float) + 63) / 64 * 64;
    a.thread_stride = (scratch_bytes_per_thread(a.G, a.n_kv, d) + 63) / 64 * 64;
    const size_t part_bytes =
        a.split_keys ? ((size_t)nth * rows + 1) * (2 + 2 * (size_t)d) * sizeof(float) : 0;
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
    a.q_mu = a.qk_scale + rows;
    a.thread_mem = p + q16_bytes + qs_bytes;
    a.part = a.split_keys ? (float *)(void *)(a.thread_mem + (size_t)nth * a.thread_stride) : NULL;

    if (c->st[0].codec.kind == TURBO_TQ) host->parallel_for(prep_worker, &a);
    host->parallel_for(att_worker, &a);
    if (a.split_keys) merge_parts(&a, nth);
    /* This layer's batch has been attended: its f16 rows may enter the ring. */
    if (c->stage_layer == layer) turbo_commit_stage(c);
    return TQ_OK;
}
