/* cpu_attention.c — ATTENTION of a CPU backend (cpu_backend.h): causal
 * softmax(Q K^T * scale) V over plain f16 or f32 K/V views (the f16 KV
 * cache's view), with grouped-query heads.
 *
 * One task = a block of up to AQB query tokens and one KV head with the
 * `group` query heads that share it: each K row is widened to f32 once per
 * task (not once per token) and dotted with every query vector of the task,
 * CPU_ATT_DOTS at a time (the plugin's att_dots shares the row's loads
 * between them); then each query vector's weighted sum of V rows (the
 * plugin's att_vsum keeps its accumulators in registers). Tasks are dealt
 * round-robin, since with a causal mask later tokens have more keys.
 *
 * Scores and sums use the plugin's dot and axpy order (FMA lanes, not the
 * ref's sequential sums: the conformance test bounds the difference), and
 * a score or sum does not depend on how many are computed together; the
 * softmax is the ref's (expf(x - max), summed in double, times the float
 * reciprocal). */
#include "cpu_backend.h"

#include <math.h>

#define AQB 4 /* query tokens per task */

typedef struct att_task {
    const cpu_kernels *k;
    const tq_tensor *q, *kc, *v;
    tq_tensor *dst;
    int32_t pos0, n_kv, group;
    float scale;
    void *work;
    size_t work_stride; /* bytes per thread */
} att_task;

/* hd elements of a K or V row as f32. */
static void load_row(const cpu_kernels *k, const char *p, tq_type type, int64_t hd, float *out) {
    if (type == TQ_TYPE_F16)
        k->f16_row((const uint16_t *)(const void *)p, out, hd);
    else
        memcpy(out, p, (size_t)hd * sizeof(float));
}

static void softmax(const cpu_kernels *k, float *sc, int64_t n) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) mx = sc[j] > mx ? sc[j] : mx;
    for (int64_t j = 0; j < n; j++) sc[j] -= mx;
    if (k->expf_row)
        k->expf_row(sc, sc, n);
    else
        for (int64_t j = 0; j < n; j++) sc[j] = expf(sc[j]);
    double sum = 0;
    for (int64_t j = 0; j < n; j++) sum += sc[j];
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < n; j++) sc[j] *= inv;
}

/* out = sum over keys j < n_see of p[j] * V_j of KV head kvh; row is hd
 * floats of scratch. */
static void vsum(const att_task *t, int64_t kvh, const float *p, int64_t n_see, float *row, float *out) {
    const int64_t hd = t->q->ne[0];
    const char *v = (const char *)t->v->data + kvh * t->v->nb[2];
    if (t->k->att_vsum) {
        t->k->att_vsum(v, t->v->nb[1], t->v->type, p, n_see, hd, out);
        return;
    }
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int64_t j = 0; j < n_see; j++, v += t->v->nb[1]) {
        load_row(t->k, v, t->v->type, hd, row);
        t->k->axpy(out, p[j], row, hd);
    }
}

/* Bytes of a task's query vector pointers, a multiple of 64. */
static size_t att_ptr_bytes(int64_t group) {
    return ((size_t)(AQB * group) * sizeof(const float *) + 63) / 64 * 64;
}

static void att_worker(void *user, int ith, int nth) {
    const att_task *t = user;
    const cpu_kernels *k = t->k;
    const int64_t hd = t->q->ne[0], n_head = t->q->ne[1], n_tok = t->q->ne[2];
    const int64_t n_kv_head = t->kc->ne[2], G = t->group;
    const int64_t n_blk = (n_tok + AQB - 1) / AQB;
    char *mem = (char *)t->work + (size_t)ith * t->work_stride;
    const float **qv = (const float **)(void *)mem;            /* AQB * G query vectors */
    float *scores = (float *)(void *)(mem + att_ptr_bytes(G)); /* AQB * G x n_kv        */
    float *row = scores + (size_t)(AQB * G) * (size_t)t->n_kv; /* hd                    */
    for (int64_t task = ith; task < n_blk * n_kv_head; task += nth) {
        const int64_t b = task / n_kv_head, kvh = task % n_kv_head;
        const int64_t i0 = b * AQB, nq_tok = n_tok - i0 < AQB ? n_tok - i0 : AQB;
        const int64_t nq = nq_tok * G;
        for (int64_t q = 0; q < nq; q++) /* token i0 + q / G, head kvh * G + q % G */
            qv[q] = (const float *)t->q->data + ((i0 + q / G) * n_head + kvh * G + q % G) * hd;
        const int64_t n_see_max = t->pos0 + i0 + nq_tok; /* causal: keys 0..pos0+i */
        const char *kr = (const char *)t->kc->data + kvh * t->kc->nb[2];
        for (int64_t j = 0; j < n_see_max; j++, kr += t->kc->nb[1]) {
            load_row(k, kr, t->kc->type, hd, row);
            for (int64_t q = 0; q < nq; q += CPU_ATT_DOTS) {
                const int n = nq - q < CPU_ATT_DOTS ? (int)(nq - q) : CPU_ATT_DOTS;
                float s[CPU_ATT_DOTS];
                if (k->att_dots)
                    k->att_dots(row, qv + q, n, hd, s);
                else
                    for (int m = 0; m < n; m++) s[m] = k->dot(qv[q + m], row, hd);
                for (int m = 0; m < n; m++) scores[(size_t)(q + m) * (size_t)t->n_kv + (size_t)j] = s[m] * t->scale;
            }
        }
        for (int64_t q = 0; q < nq; q++) {
            const int64_t i = i0 + q / G, n_see = t->pos0 + i + 1;
            float *s = scores + (size_t)q * (size_t)t->n_kv;
            softmax(k, s, n_see);
            vsum(t, kvh, s, n_see, row, (float *)t->dst->data + (i * n_head + kvh * G + q % G) * hd);
        }
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
                    ((size_t)(AQB * t.group) * (size_t)t.n_kv + hd + 15) / 16 * 16 * sizeof(float);
    t.work = cpu_scratch(dev, t.work_stride * (size_t)dev->host->n_threads);
    if (!t.work) return cpu_error(dev, err, TQ_ERR_NOMEM, "attention: out of memory for %d keys", t.n_kv);
    dev->host->parallel_for(att_worker, &t);
    return TQ_OK;
}
