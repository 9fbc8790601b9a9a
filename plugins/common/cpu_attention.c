/* cpu_attention.c — ATTENTION of a CPU backend (cpu_backend.h): causal
 * softmax(Q K^T * scale) V over plain f16 or f32 K/V views (the f16 KV
 * cache's view), with grouped-query heads.
 *
 * One task = one query position and one KV head with the `group` query
 * heads that share it, so each K and V row is widened to f32 once per
 * group. Scores and the weighted sum of V use the plugin's dot and axpy
 * (FMA lanes, not the ref's sequential sums: the conformance test bounds
 * the difference); the softmax is the ref's (expf(x - max), summed in
 * double, times the float reciprocal). */
#include "cpu_backend.h"

#include <math.h>

typedef struct att_task {
    const cpu_kernels *k;
    const tq_tensor *q, *kc, *v;
    tq_tensor *dst;
    int32_t pos0, n_kv, group;
    float scale;
    float *work;
    size_t work_stride; /* floats per thread */
} att_task;

/* hd elements of a K or V row as f32. */
static void load_row(const cpu_kernels *k, const char *p, tq_type type, int64_t hd, float *out) {
    if (type == TQ_TYPE_F16)
        k->f16_row((const uint16_t *)(const void *)p, out, hd);
    else
        memcpy(out, p, (size_t)hd * sizeof(float));
}

static void softmax(float *sc, int64_t n) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) mx = sc[j] > mx ? sc[j] : mx;
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < n; j++) sc[j] *= inv;
}

static void att_worker(void *user, int ith, int nth) {
    const att_task *t = user;
    const int64_t hd = t->q->ne[0], n_head = t->q->ne[1], n_tok = t->q->ne[2];
    const int64_t n_kv_head = t->kc->ne[2], G = t->group;
    float *scores = t->work + (size_t)ith * t->work_stride; /* G x n_kv */
    float *acc = scores + (size_t)G * (size_t)t->n_kv;       /* G x hd   */
    float *row = acc + G * hd;                               /* hd       */
    int64_t lo, hi;
    cpu_split(n_tok * n_kv_head, ith, nth, 1, &lo, &hi);
    for (int64_t task = lo; task < hi; task++) {
        const int64_t i = task / n_kv_head, kvh = task % n_kv_head;
        const float *q0 = (const float *)t->q->data + (i * n_head + kvh * G) * hd;
        const int64_t n_see = t->pos0 + i + 1; /* causal: keys 0..pos0+i */
        for (int64_t j = 0; j < n_see; j++) {
            load_row(t->k, (const char *)t->kc->data + j * t->kc->nb[1] + kvh * t->kc->nb[2], t->kc->type, hd, row);
            for (int64_t g = 0; g < G; g++) scores[g * t->n_kv + j] = t->k->dot(q0 + g * hd, row, hd) * t->scale;
        }
        for (int64_t g = 0; g < G; g++) softmax(scores + g * t->n_kv, n_see);
        memset(acc, 0, (size_t)(G * hd) * sizeof(float));
        for (int64_t j = 0; j < n_see; j++) {
            load_row(t->k, (const char *)t->v->data + j * t->v->nb[1] + kvh * t->v->nb[2], t->v->type, hd, row);
            for (int64_t g = 0; g < G; g++) t->k->axpy(acc + g * hd, scores[g * t->n_kv + j], row, hd);
        }
        memcpy((float *)t->dst->data + (i * n_head + kvh * G) * hd, acc, (size_t)(G * hd) * sizeof(float));
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
    t.work_stride = ((size_t)t.group * ((size_t)t.n_kv + hd) + hd + 15) / 16 * 16;
    t.work = cpu_scratch(dev, t.work_stride * sizeof(float) * (size_t)dev->host->n_threads);
    if (!t.work) return cpu_error(dev, err, TQ_ERR_NOMEM, "attention: out of memory for %d keys", t.n_kv);
    dev->host->parallel_for(att_worker, &t);
    return TQ_OK;
}
