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

typedef struct att_task {
    const cpu_kernels *k;
    const tq_tensor *q, *kc, *v;
    tq_tensor *dst;
    int32_t pos0, n_kv, group;
    float scale;
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
    const int64_t hd = t->q->ne[0];
    const char *v = (const char *)t->v->data + kvh * t->v->nb[2];
    if (t->k->att_vsum) {
        t->k->att_vsum(v, t->v->nb[1], t->v->type, p, (int)nq, n_see, hd, out);
        return;
    }
    for (int64_t q = 0; q < nq; q++) {
        memset(out[q], 0, (size_t)hd * sizeof(float));
        const char *vr = v;
        for (int64_t j = 0; j < n_see[q]; j++, vr += t->v->nb[1]) {
            load_row(t->k, vr, t->v->type, hd, row);
            t->k->axpy(out[q], p[q][j], row, hd);
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
    const cpu_kernels *k = t->k;
    const int64_t hd = t->q->ne[0], n_head = t->q->ne[1], n_tok = t->q->ne[2];
    const int64_t n_kv_head = t->kc->ne[2], G = t->group;
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
            qv[q] = (const float *)t->q->data + (i * n_head + h) * hd;
            pv[q] = scores + (size_t)q * (size_t)t->n_kv;
            ov[q] = (float *)t->dst->data + (i * n_head + h) * hd;
            n_see[q] = t->pos0 + i + 1; /* causal: keys 0..pos0+i */
        }
        const int64_t n_see_max = t->pos0 + i0 + nq_tok;
        const char *kr = (const char *)t->kc->data + kvh * t->kc->nb[2];
        for (int64_t j = 0; j < n_see_max; j += CPU_ATT_ROWS) {
            const int nr = n_see_max - j < CPU_ATT_ROWS ? (int)(n_see_max - j) : CPU_ATT_ROWS;
            for (int r = 0; r < nr; r++, kr += t->kc->nb[1]) load_row(k, kr, t->kc->type, hd, rows + r * hd);
            float *sj = scores + j;
            if (k->att_dots)
                k->att_dots(rows, nr, qv, (int)nq, hd, sj, (size_t)t->n_kv);
            else
                for (int64_t q = 0; q < nq; q++)
                    for (int r = 0; r < nr; r++) sj[(size_t)q * (size_t)t->n_kv + (size_t)r] = k->dot(qv[q], rows + r * hd, hd);
        }
        for (int64_t q = 0; q < nq; q++) softmax(k, scores + (size_t)q * (size_t)t->n_kv, n_see[q], t->scale);
        vsum(t, kvh, pv, nq, n_see, rows, ov);
    }
}

tq_status cpu_attention(tq_device *dev, tq_tensor *dst, tq_error *err) {
    att_task t;
    t.k = dev->k;
    t.q = dst->src[0];
    t.kc = dst->src[1];
    t.v = dst->src[2];
    t.dst = dst;
    t.pos0 = dst->op_params[1];
    t.n_kv = dst->op_params[2];
    t.group = (int32_t)(t.q->ne[1] / t.kc->ne[2]);
    t.scale = tq_param_f(dst, 3);
    const size_t hd = (size_t)t.q->ne[0];
    t.work_stride = att_ptr_bytes(t.group) +
                    ((size_t)(AQB * t.group) * (size_t)t.n_kv + CPU_ATT_ROWS * hd + 15) / 16 * 16 * sizeof(float);
    t.work = cpu_scratch(dev, t.work_stride * (size_t)dev->host->n_threads);
    if (!t.work) return cpu_error(dev, err, TQ_ERR_NOMEM, "attention: out of memory for %d keys", t.n_kv);
    atomic_llong next;
    atomic_init(&next, 0);
    t.next = &next;
    dev->host->parallel_for(att_worker, &t);
    return TQ_OK;
}
