/* cpu_attention.c — ATTENTION of a CPU backend (cpu_backend.h): causal
 * softmax(Q K^T * scale) V over plain f16 or f32 K/V views (the f16 KV
 * cache's view), with grouped-query heads.
 *
 * One task = a block of up to AQB query tokens and one KV head with the
 * `group` query heads that share it: each K row is widened to f32 once per
 * task (not once per token) and dotted with every query vector of the task,
 * CPU_ATT_ROWS rows at a time (the plugin's att_dots multiplies them in
 * register tiles); then the query vectors' weighted sums of V rows (the
 * plugin's att_vsum reads each V row once for several of them). Threads
 * take tasks from a shared counter, the costliest (the last tokens, which
 * see the most keys) first.
 *
 * Scores and sums use the plugin's dot and axpy order (FMA lanes, not the
 * ref's sequential sums: the conformance test bounds the difference), and
 * a score or sum does not depend on how many are computed together; the
 * softmax is the ref's (expf(x - max), summed in double, times the float
 * reciprocal), its double sum in 4 lanes. */
#include "cpu_backend.h"

#include <math.h>
#include <stdatomic.h>

#define AQB 4 /* query tokens per task */

/* What both attention paths take from the node. */
typedef struct att_node {
    const cpu_kernels *k;
    const tq_tensor *q, *kc, *v;
    tq_tensor *dst;
    int32_t pos0, group; /* query heads per KV head */
    float scale;
} att_node;

static att_node att_node_of(const tq_device *dev, tq_tensor *dst) {
    att_node n;
    n.k = dev->k;
    n.q = dst->src[0];
    n.kc = dst->src[1];
    n.v = dst->src[2];
    n.dst = dst;
    n.pos0 = dst->op_params[1];
    n.group = (int32_t)(n.q->ne[1] / n.kc->ne[2]);
    n.scale = tq_param_f(dst, 3);
    return n;
}

typedef struct att_task {
    att_node n;
    int32_t n_kv;
    void *work;
    size_t work_stride; /* bytes per thread */
    atomic_llong *next; /* tasks taken so far */
} att_task;

/* hd elements of a K or V row as f32. */
static void load_row(const cpu_kernels *k, const char *p, tq_type type, int64_t hd, float *out) {
    if (type == TQ_TYPE_F16)
        k->f16_row((const uint16_t *)(const void *)p, out, hd);
    else
        memcpy(out, p, (size_t)hd * sizeof(float));
}

/* sc[j] = softmax(sc[j] * scale) over j < n, as the ref computes it: the
 * max taken of the raw dots and scaled once (for scale > 0 that is the max
 * of the scaled scores, bit for bit: rounding is monotonic), expf(x - max),
 * the sum in double, times the float reciprocal. The max runs in 8 lanes
 * and the sum in 4 (lane l taking j = l mod 4, then (l0 + l1) + (l2 + l3))
 * so that neither is one long dependency chain: the scalar loops took
 * about 2% of a tm30m F16 pp512 (session 9 profile). */
static void softmax(const cpu_kernels *k, float *sc, int64_t n, float scale) {
    if (!(scale > 0)) { /* attention scales are positive; any other is applied first, exactly */
        for (int64_t j = 0; j < n; j++) sc[j] *= scale;
        scale = 1.0f;
    }
    float m8[8];
    for (int l = 0; l < 8; l++) m8[l] = -INFINITY;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) m8[l] = sc[j + l] > m8[l] ? sc[j + l] : m8[l];
    for (; j < n; j++) m8[0] = sc[j] > m8[0] ? sc[j] : m8[0];
    float mx = m8[0];
    for (int l = 1; l < 8; l++) mx = m8[l] > mx ? m8[l] : mx;
    mx *= scale;
    for (j = 0; j < n; j++) sc[j] = sc[j] * scale - mx;
    if (k->expf_row)
        k->expf_row(sc, sc, n);
    else
        for (j = 0; j < n; j++) sc[j] = expf(sc[j]);
    double s4[4] = {0, 0, 0, 0};
    for (j = 0; j + 4 <= n; j += 4)
        for (int l = 0; l < 4; l++) s4[l] += (double)sc[j + l];
    for (; j < n; j++) s4[0] += (double)sc[j];
    const float inv = (float)(1.0 / ((s4[0] + s4[1]) + (s4[2] + s4[3])));
    for (j = 0; j < n; j++) sc[j] *= inv;
}

/* out[q] = sum over keys j < n_see[q] of p[q][j] * V_j of KV head kvh, for
 * nq query vectors; row is hd floats of scratch. */
static void vsum(const att_task *t, int64_t kvh, const float *const *p, int64_t nq, const int64_t *n_see,
                 float *row, float *const *out) {
    const int64_t hd = t->n.q->ne[0];
    const char *v = (const char *)t->n.v->data + kvh * t->n.v->nb[2];
    if (t->n.k->att_vsum) {
        t->n.k->att_vsum(v, t->n.v->nb[1], t->n.v->type, p, (int)nq, n_see, hd, out);
        return;
    }
    for (int64_t q = 0; q < nq; q++) {
        memset(out[q], 0, (size_t)hd * sizeof(float));
        const char *vr = v;
        for (int64_t j = 0; j < n_see[q]; j++, vr += t->n.v->nb[1]) {
            load_row(t->n.k, vr, t->n.v->type, hd, row);
            t->n.k->axpy(out[q], p[q][j], row, hd);
        }
    }
}

/* Per-thread scratch: the task's query vectors, probability rows and
 * outputs (pointers), key counts, the scores (AQB * group rows of n_kv)
 * and CPU_ATT_ROWS widened K rows. */
static size_t att_ptr_bytes(int64_t group) {
    return ((size_t)(AQB * group) * (3 * sizeof(float *) + sizeof(int64_t)) + 63) / 64 * 64;
}

static void att_worker(void *user, int ith, int nth) {
    const att_task *t = user;
    const cpu_kernels *k = t->n.k;
    const int64_t hd = t->n.q->ne[0], n_head = t->n.q->ne[1], n_tok = t->n.q->ne[2];
    const int64_t n_kv_head = t->n.kc->ne[2], G = t->n.group;
    const int64_t n_blk = (n_tok + AQB - 1) / AQB;
    char *mem = (char *)t->work + (size_t)ith * t->work_stride;
    const float **qv = (const float **)(void *)mem;             /* AQB * G query vectors */
    const float **pv = qv + AQB * G;                             /* their probabilities   */
    float **ov = (float **)(void *)(pv + AQB * G);               /* their outputs         */
    int64_t *n_see = (int64_t *)(void *)(ov + AQB * G);          /* their key counts      */
    float *scores = (float *)(void *)(mem + att_ptr_bytes(G));   /* AQB * G x n_kv        */
    float *rows = scores + (size_t)(AQB * G) * (size_t)t->n_kv;  /* CPU_ATT_ROWS x hd     */
    (void)nth;
    /* Tasks (a block of query tokens x a KV head) come from a shared
     * counter, the last blocks (the most keys, causal) first: a fixed
     * share per thread left one thread waiting for the other at the end
     * of every attention whenever the machine slowed one of them (about
     * 10% of the attention time of a tm30m pp512 on this 2-vCPU VM). */
    const int64_t n_task = n_blk * n_kv_head;
    for (int64_t taken; (taken = atomic_fetch_add_explicit(t->next, 1, memory_order_relaxed)) < n_task;) {
        const int64_t task = n_task - 1 - taken;
        const int64_t b = task / n_kv_head, kvh = task % n_kv_head;
        const int64_t i0 = b * AQB, nq_tok = n_tok - i0 < AQB ? n_tok - i0 : AQB;
        const int64_t nq = nq_tok * G;
        for (int64_t q = 0; q < nq; q++) { /* token i0 + q / G, head kvh * G + q % G */
            const int64_t i = i0 + q / G, h = kvh * G + q % G;
            qv[q] = (const float *)t->n.q->data + (i * n_head + h) * hd;
            pv[q] = scores + (size_t)q * (size_t)t->n_kv;
            ov[q] = (float *)t->n.dst->data + (i * n_head + h) * hd;
            n_see[q] = t->n.pos0 + i + 1; /* causal: keys 0..pos0+i */
        }
        const int64_t n_see_max = t->n.pos0 + i0 + nq_tok;
        const char *kr = (const char *)t->n.kc->data + kvh * t->n.kc->nb[2];
        for (int64_t j = 0; j < n_see_max; j += CPU_ATT_ROWS) {
            const int nr = n_see_max - j < CPU_ATT_ROWS ? (int)(n_see_max - j) : CPU_ATT_ROWS;
            for (int r = 0; r < nr; r++, kr += t->n.kc->nb[1]) load_row(k, kr, t->n.kc->type, hd, rows + r * hd);
            float *sj = scores + j;
            if (k->att_dots)
                k->att_dots(rows, nr, qv, (int)nq, hd, sj, (size_t)t->n_kv);
            else
                for (int64_t q = 0; q < nq; q++)
                    for (int r = 0; r < nr; r++) sj[(size_t)q * (size_t)t->n_kv + (size_t)r] = k->dot(qv[q], rows + r * hd, hd);
        }
        for (int64_t q = 0; q < nq; q++) softmax(k, scores + (size_t)q * (size_t)t->n_kv, n_see[q], t->n.scale);
        vsum(t, kvh, pv, nq, n_see, rows, ov);
    }
}

/* ---- llama.cpp's one-chunk path for f16 K/V ---------------------------------
 *
 * The golden files come from llama.cpp's CPU flash attention, which runs a
 * batch of fewer than FA_TILE_Q query tokens over an f16 cache through
 * ggml_compute_forward_flash_attn_ext_f16_one_chunk: Q rounded to f16, an
 * online softmax, and the weighted V rows summed in an f16 accumulator,
 * rounded after every key; a one-token batch over a padded KV view of
 * FA_SPLIT_MIN keys or more is cut into one part per thread, merged in f32.
 * Those roundings are most of what separates an f32 attention from the
 * golden decode rows (llama long2048, ref backend: 1.87e-3 x max|logit| in
 * f32, 0.79e-3 this way), so the ref backend does the same and so do the
 * CPU backends whose kernels provide att_vacc16. The parts are always
 * FA_SPLIT_PARTS (the golden files' thread count), so a result never
 * depends on -t; larger batches keep the f32 path above, close to
 * llama.cpp's tiled one.
 *
 * A task is a block of AQB query tokens, a KV head and a part. Its scores
 * come from att_dots against the rounded queries; the online softmax's
 * running max is replayed per query vector as one pass that records, per
 * key, the exponent's argument (M_old - s at a new max, s - M otherwise)
 * and a bit for the new maxima, so that the exponentials are one expf_row
 * call; att_vacc16 then replays the accumulator's roundings. */
#define FA_TILE_Q 64     /* GGML_FA_TILE_Q                                  */
#define FA_KV_PAD 256    /* llama.cpp pads the KV view to a multiple of it  */
#define FA_SPLIT_MIN 512 /* padded keys from which a one-token batch splits */
#define FA_SPLIT_PARTS 2 /* the golden files' thread count                  */
#define FA_GROUP 8       /* query vectors per att_vacc16 call (bits of ev)  */
#define FA_MAX_GROUP 64  /* query heads per KV head this path takes (the
                            per-task M and S arrays); more take the f32 path */

typedef struct fa_task {
    att_node n;
    int64_t n_part, part_len; /* key parts per block and KV head, their length */
    void *work;
    size_t work_stride;       /* bytes per thread                              */
    float *partials;          /* one-token split: n_part x n_head x (2 + hd)   */
    atomic_llong *next;
} fa_task;

/* Per-thread scratch of a task of up to nq query vectors over part_len keys,
 * in 64-byte aligned pieces: pointers (queries, weights, new-max scales,
 * accumulators) and key counts; from `floats` the rounded queries,
 * accumulators, weights, scales and K rows; from `bits` the new-max bits;
 * `bytes` in all. */
typedef struct fa_layout {
    size_t floats, bits, bytes;
} fa_layout;

static fa_layout fa_layout_of(int64_t nq, int64_t hd, int64_t part_len) {
    fa_layout l;
    l.floats = ((size_t)nq * (4 * sizeof(float *) + sizeof(int64_t)) + 63) / 64 * 64;
    const size_t n_floats = (size_t)nq * (size_t)(2 * hd + 2 * part_len) + CPU_ATT_ROWS * (size_t)hd;
    l.bits = l.floats + (n_floats * sizeof(float) + 63) / 64 * 64;
    l.bytes = l.bits + ((size_t)part_len + 63) / 64 * 64;
    return l;
}

static void fa_worker(void *user, int ith, int nth) {
    const fa_task *t = user;
    const cpu_kernels *k = t->n.k;
    const int64_t hd = t->n.q->ne[0], n_head = t->n.q->ne[1], n_tok = t->n.q->ne[2];
    const int64_t n_kv_head = t->n.kc->ne[2], G = t->n.group, L = t->part_len;
    const int64_t nq_max = (n_tok < AQB ? n_tok : AQB) * G;
    char *mem = (char *)t->work + (size_t)ith * t->work_stride;
    float **qv = (float **)(void *)mem;      /* rounded queries           */
    float **wv = qv + nq_max;                /* weights (scores first)    */
    float **msv = wv + nq_max;               /* scales at new maxima      */
    float **accv = msv + nq_max;             /* f16 accumulators          */
    int64_t *n_see = (int64_t *)(void *)(accv + nq_max);
    const fa_layout lay = fa_layout_of(nq_max, hd, L);
    float *fl = (float *)(void *)(mem + lay.floats);
    float *rows = fl + (size_t)nq_max * (size_t)(2 * hd + 2 * L);
    uint8_t *ev = (uint8_t *)mem + lay.bits;
    (void)nth;
    const int64_t n_blk = (n_tok + AQB - 1) / AQB, n_task = n_blk * n_kv_head * t->n_part;
    for (int64_t taken; (taken = atomic_fetch_add_explicit(t->next, 1, memory_order_relaxed)) < n_task;) {
        const int64_t task = n_task - 1 - taken; /* the last blocks (most keys) first */
        const int64_t part = task % t->n_part, kvh = task / t->n_part % n_kv_head, b = task / t->n_part / n_kv_head;
        const int64_t i0 = b * AQB, nq_tok = n_tok - i0 < AQB ? n_tok - i0 : AQB, nq = nq_tok * G;
        const int64_t j0 = part * L, n_see_max = t->n.pos0 + i0 + nq_tok;
        const int64_t nk = (n_see_max < j0 + L ? n_see_max : j0 + L) - j0; /* keys of this part */
        for (int64_t q = 0; q < nq; q++) {
            const int64_t i = i0 + q / G, h = kvh * G + q % G;
            qv[q] = fl + (size_t)q * (size_t)hd;
            accv[q] = fl + (size_t)(nq + q) * (size_t)hd;
            wv[q] = fl + (size_t)nq * (size_t)(2 * hd) + (size_t)q * (size_t)L;
            msv[q] = wv[q] + (size_t)nq * (size_t)L;
            n_see[q] = t->n.pos0 + i + 1 - j0; /* causal: keys 0..pos0+i, from j0 */
            if (n_see[q] > nk) n_see[q] = nk;
            k->f16_round_row((const float *)t->n.q->data + (i * n_head + h) * hd, qv[q], hd);
            memset(accv[q], 0, (size_t)hd * sizeof(float));
        }
        float M[AQB * FA_MAX_GROUP], S[AQB * FA_MAX_GROUP];
        if (nk > 0) {
            const char *kr = (const char *)t->n.kc->data + kvh * t->n.kc->nb[2] + j0 * t->n.kc->nb[1];
            for (int64_t j = 0; j < nk; j += CPU_ATT_ROWS) {
                const int nr = nk - j < CPU_ATT_ROWS ? (int)(nk - j) : CPU_ATT_ROWS;
                for (int r = 0; r < nr; r++, kr += t->n.kc->nb[1]) load_row(k, kr, t->n.kc->type, hd, rows + r * hd);
                if (k->att_dots)
                    k->att_dots(rows, nr, (const float *const *)qv, (int)nq, hd, wv[0] + j, (size_t)L);
                else
                    for (int64_t q = 0; q < nq; q++)
                        for (int r = 0; r < nr; r++) wv[q][j + r] = k->dot(qv[q], rows + r * hd, hd);
            }
        }
        for (int64_t g0 = 0; g0 < nq; g0 += FA_GROUP) {
            const int ng = nq - g0 < FA_GROUP ? (int)(nq - g0) : FA_GROUP;
            memset(ev, 0, (size_t)(nk > 0 ? nk : 0));
            for (int g = 0; g < ng; g++) { /* the running max, replayed */
                float *w = wv[g0 + g], m = -INFINITY;
                const int64_t n = n_see[g0 + g];
                for (int64_t j = 0; j < n; j++) {
                    const float s = w[j] * t->n.scale;
                    if (s > m) {
                        w[j] = m - s;
                        ev[j] |= (uint8_t)(1u << g);
                        m = s;
                    } else {
                        w[j] = s - m;
                    }
                }
                M[g0 + g] = m;
                if (k->expf_row)
                    k->expf_row(w, w, n);
                else
                    for (int64_t j = 0; j < n; j++) w[j] = expf(w[j]);
            }
            float sg[FA_GROUP] = {0};
            for (int64_t j = 0; j < nk; j++) /* S = S * ms + vs, the vectors side by side */
                for (int g = 0; g < ng; g++) {
                    float *w = wv[g0 + g];
                    if (j >= n_see[g0 + g]) {
                        w[j] = 0.0f; /* past this query's position: llama.cpp skips the key */
                    } else if (ev[j] >> g & 1) {
                        msv[g0 + g][j] = w[j];
                        sg[g] = fmaf(sg[g], w[j], 1.0f);
                        w[j] = 1.0f;
                    } else {
                        sg[g] += w[j];
                    }
                }
            for (int g = 0; g < ng; g++) S[g0 + g] = sg[g];
            if (nk > 0)
                k->att_vacc16((const char *)t->n.v->data + kvh * t->n.v->nb[2] + j0 * t->n.v->nb[1], t->n.v->nb[1],
                              (const float *const *)wv + g0, (const float *const *)msv + g0, ev, ng, nk, hd,
                              accv + g0);
        }
        for (int64_t q = 0; q < nq; q++) {
            const int64_t i = i0 + q / G, h = kvh * G + q % G;
            if (t->n_part == 1) {
                float *out = (float *)t->n.dst->data + (i * n_head + h) * hd;
                const float inv = S[q] == 0.0f ? 0.0f : 1.0f / S[q];
                for (int64_t d = 0; d < hd; d++) out[d] = accv[q][d] * inv;
            } else {
                float *p = t->partials + (size_t)(part * n_head + h) * (size_t)(2 + hd);
                p[0] = M[q];
                p[1] = S[q];
                memcpy(p + 2, accv[q], (size_t)hd * sizeof(float));
            }
        }
    }
}

/* ggml_flash_attn_ext_reduce_partials: a one-token batch's parts merged in
 * f32 in part order, parts without keys skipped. */
static void fa_merge(const fa_task *t) {
    const int64_t hd = t->n.q->ne[0], n_head = t->n.q->ne[1];
    for (int64_t h = 0; h < n_head; h++) {
        float *out = (float *)t->n.dst->data + h * hd;
        float M = -INFINITY, S = 0.0f;
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int64_t part = 0; part < t->n_part; part++) {
            const float *p = t->partials + (size_t)(part * n_head + h) * (size_t)(2 + hd);
            if (p[1] == 0.0f) continue;
            const float M_new = fmaxf(M, p[0]), s_old = expf(M - M_new), s_new = expf(p[0] - M_new);
            for (int64_t d = 0; d < hd; d++) out[d] = fmaf(p[2 + d], s_new, out[d] * s_old);
            S = fmaf(p[1], s_new, S * s_old);
            M = M_new;
        }
        if (S != 0.0f) {
            const float inv = 1.0f / S;
            for (int64_t d = 0; d < hd; d++) out[d] *= inv;
        }
    }
}

static tq_status fa_attention(tq_device *dev, tq_tensor *dst, tq_error *err) {
    fa_task t;
    t.n = att_node_of(dev, dst);
    const int64_t hd = t.n.q->ne[0], n_tok = t.n.q->ne[2], n_kv = dst->op_params[2];
    int64_t padded = (n_kv + FA_KV_PAD - 1) / FA_KV_PAD * FA_KV_PAD;
    if (padded < FA_KV_PAD) padded = FA_KV_PAD;
    t.n_part = n_tok == 1 && padded >= FA_SPLIT_MIN ? FA_SPLIT_PARTS : 1;
    t.part_len = t.n_part == 1 ? n_kv : (padded + t.n_part - 1) / t.n_part;
    const int64_t nq_max = (n_tok < AQB ? n_tok : AQB) * t.n.group;
    t.work_stride = fa_layout_of(nq_max, hd, t.part_len).bytes;
    const size_t partial_bytes = t.n_part > 1 ? (size_t)(t.n_part * t.n.q->ne[1] * (2 + hd)) * sizeof(float) : 0;
    char *mem = cpu_scratch(dev, t.work_stride * (size_t)dev->host->n_threads + partial_bytes);
    if (!mem) return cpu_error(dev, err, TQ_ERR_NOMEM, "attention: out of memory for %d keys", (int)n_kv);
    t.work = mem;
    t.partials = (float *)(void *)(mem + t.work_stride * (size_t)dev->host->n_threads);
    atomic_llong next;
    atomic_init(&next, 0);
    t.next = &next;
    dev->host->parallel_for(fa_worker, &t);
    if (t.n_part > 1) fa_merge(&t);
    return TQ_OK;
}

tq_status cpu_attention(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const tq_tensor *q = dst->src[0], *kc = dst->src[1], *v = dst->src[2];
    if (dev->k->att_vacc16 && kc->type == TQ_TYPE_F16 && v->type == TQ_TYPE_F16 && q->ne[2] < FA_TILE_Q &&
        q->ne[1] / kc->ne[2] <= FA_MAX_GROUP)
        return fa_attention(dev, dst, err);
    att_task t;
    t.n = att_node_of(dev, dst);
    t.n_kv = dst->op_params[2];
    const size_t hd = (size_t)t.n.q->ne[0];
    t.work_stride = att_ptr_bytes(t.n.group) +
                    ((size_t)(AQB * t.n.group) * (size_t)t.n_kv + CPU_ATT_ROWS * hd + 15) / 16 * 16 * sizeof(float);
    t.work = cpu_scratch(dev, t.work_stride * (size_t)dev->host->n_threads);
    if (!t.work) return cpu_error(dev, err, TQ_ERR_NOMEM, "attention: out of memory for %d keys", t.n_kv);
    atomic_llong next;
    atomic_init(&next, 0);
    t.next = &next;
    dev->host->parallel_for(att_worker, &t);
    return TQ_OK;
}
