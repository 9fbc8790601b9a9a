/* x86_ops.c — every op but MUL_MAT: get_rows, rms_norm, rope, attention over
 * the f16/f32 KV views, the element-wise ops and view_rows.
 *
 * Results versus the ref backend: add, mul, scale, view_rows, get_rows,
 * silu, swiglu and rope are bit-identical (the same float operations, one
 * rounding each: no FMA contraction, -ffp-contract=off, and the same libm
 * calls); rms_norm sums its squares in double lanes instead of one double
 * chain; attention uses FMA dot products. The conformance test states the
 * bounds. Work is split over the host's pool when there is enough of it. */
#include "x86_internal.h"

#include <math.h>

/* Below this many elements an element-wise op runs on the calling thread:
 * waking the pool costs more than the work (decode-sized vectors). */
#define PAR_MIN_ELEMS 32768

/* ---- get_rows --------------------------------------------------------------- */

typedef struct rows_task {
    const tq_tensor *tab;
    const int32_t *ids;
    int64_t n_ids;
    float *dst;
    tq_to_f32_fn to_f32;
} rows_task;

static void rows_worker(void *user, int ith, int nth) {
    const rows_task *t = user;
    const int64_t n = t->tab->ne[0];
    int64_t lo, hi;
    x86_split(t->n_ids, ith, nth, 1, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const char *src = x86_row(t->tab, t->ids[i]);
        float *out = t->dst + i * n;
        if (t->tab->type == TQ_TYPE_F16) {
            int64_t j = 0;
            for (; j + 8 <= n; j += 8)
                _mm256_storeu_ps(out + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)src + j))));
            for (; j < n; j++) out[j] = x86_f16_to_f32(((const uint16_t *)src)[j]);
        } else if (t->tab->type == TQ_TYPE_F32) {
            memcpy(out, src, (size_t)n * sizeof(float));
        } else {
            t->to_f32(src, out, n); /* the type's reference decoder */
        }
    }
}

tq_status x86_get_rows(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const tq_host *host = dev->st->host;
    rows_task t = {dst->src[0], dst->src[1]->data, dst->src[1]->ne[0], dst->data, NULL};
    const tq_type_info *ti = host->type_info(t.tab->type);
    t.to_f32 = ti->to_f32;
    const int64_t rows = x86_nrows(t.tab);
    for (int64_t i = 0; i < t.n_ids; i++)
        if (t.ids[i] < 0 || t.ids[i] >= rows)
            return x86_error(err, TQ_ERR_RANGE, "get_rows: id %d outside %s (%lld rows)", t.ids[i],
                             t.tab->name ? t.tab->name : "table", (long long)rows);
    if (t.n_ids * t.tab->ne[0] < PAR_MIN_ELEMS)
        rows_worker(&t, 0, 1);
    else
        host->parallel_for(rows_worker, &t);
    return TQ_OK;
}

/* ---- rms_norm ---------------------------------------------------------------- */

static void rms_worker(void *user, int ith, int nth) {
    const tq_tensor *dst = user, *x = dst->src[0];
    const float eps = tq_param_f(dst, 0);
    const int64_t n = x->ne[0];
    int64_t lo, hi;
    x86_split(x86_nrows(x), ith, nth, 1, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = (const float *)x->data + r * n;
        float *y = (float *)dst->data + r * n;
        /* Squares formed in float (as the ref does), summed in double. */
        __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const __m256 v = _mm256_loadu_ps(xr + i);
            const __m256 sq = _mm256_mul_ps(v, v);
            s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
            s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
        }
        double lanes[4];
        _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
        double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for (; i < n; i++) sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / (double)n);
        const float scale = 1.0f / sqrtf(mean + eps);
        const __m256 vs = _mm256_set1_ps(scale);
        for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(xr + i), vs));
        for (; i < n; i++) y[i] = xr[i] * scale;
    }
}

void x86_rms_norm(tq_device *dev, tq_tensor *dst) {
    if (x86_nrows(dst->src[0]) == 1)
        rms_worker(dst, 0, 1);
    else
        dev->st->host->parallel_for(rms_worker, dst);
}

/* ---- element-wise ------------------------------------------------------------- */

static void binary_worker(void *user, int ith, int nth) {
    const tq_tensor *dst = user, *a = dst->src[0], *b = dst->src[1];
    const int64_t n = a->ne[0];
    const int broadcast = x86_nrows(b) == 1, add = dst->op == TQ_OP_ADD;
    int64_t lo, hi;
    x86_split(x86_nrows(a), ith, nth, 1, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = (const float *)a->data + r * n;
        const float *y = (const float *)b->data + (broadcast ? 0 : r * n);
        float *z = (float *)dst->data + r * n;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const __m256 u = _mm256_loadu_ps(x + i), v = _mm256_loadu_ps(y + i);
            _mm256_storeu_ps(z + i, add ? _mm256_add_ps(u, v) : _mm256_mul_ps(u, v));
        }
        for (; i < n; i++) z[i] = add ? x[i] + y[i] : x[i] * y[i];
    }
}

void x86_binary(tq_device *dev, tq_tensor *dst) {
    if (dst->src[0]->ne[0] * x86_nrows(dst->src[0]) < PAR_MIN_ELEMS)
        binary_worker(dst, 0, 1);
    else
        dev->st->host->parallel_for(binary_worker, dst);
}

static void unary_worker(void *user, int ith, int nth) {
    const tq_tensor *dst = user, *a = dst->src[0];
    const float *x = a->data;
    float *y = dst->data;
    int64_t lo, hi;
    x86_split(a->ne[0] * x86_nrows(a), ith, nth, 8, &lo, &hi);
    if (dst->op == TQ_OP_SCALE) {
        const float s = tq_param_f(dst, 0);
        int64_t i = lo;
        for (; i + 8 <= hi; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(s)));
        for (; i < hi; i++) y[i] = x[i] * s;
    } else if (dst->op == TQ_OP_SILU) {
        for (int64_t i = lo; i < hi; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
    } else { /* SWIGLU */
        const float *u = dst->src[1]->data;
        for (int64_t i = lo; i < hi; i++) y[i] = x[i] / (1.0f + expf(-x[i])) * u[i];
    }
}

void x86_unary(tq_device *dev, tq_tensor *dst) {
    /* silu/swiglu call expf per element: worth the pool much earlier */
    const int64_t n = dst->src[0]->ne[0] * x86_nrows(dst->src[0]);
    if (n < (dst->op == TQ_OP_SCALE ? PAR_MIN_ELEMS : PAR_MIN_ELEMS / 8))
        unary_worker(dst, 0, 1);
    else
        dev->st->host->parallel_for(unary_worker, dst);
}

void x86_view_rows(tq_device *dev, tq_tensor *dst) {
    (void)dev;
    const tq_tensor *a = dst->src[0];
    const int64_t off = dst->op_params[0], n = dst->ne[0], stride = a->ne[0];
    for (int64_t r = 0; r < dst->ne[1]; r++)
        memcpy((float *)dst->data + r * n, (const float *)a->data + r * stride + off, (size_t)n * sizeof(float));
}

/* ---- rope ----------------------------------------------------------------------- */

/* YaRN ramp as ggml's rope_yarn (identical to the ref backend's). */
static float yarn_ramp(float low, float high, int64_t i0) {
    const float y = ((float)(i0 / 2) - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

#define ROPE_MAX 1024 /* the builder's bound on n_rot (TQ_ROPE_MAX_DIMS) */

/* cos and sin of every pair for position p, exactly as the ref computes
 * them (iterated float theta, then cosf/sinf). */
static void rope_table(const tq_tensor *dst, float p, float *cs) {
    const float *ff = dst->src[2] ? dst->src[2]->data : NULL;
    const int32_t n_rot = dst->op_params[0];
    const float freq_base = tq_param_f(dst, 2), freq_scale = tq_param_f(dst, 3);
    const float attn_factor = tq_param_f(dst, 4), ext_factor = tq_param_f(dst, 5);
    const float beta_fast = tq_param_f(dst, 6), beta_slow = tq_param_f(dst, 7);
    const int32_t n_ctx_orig = dst->op_params[8];
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float corr[2] = {0, 0};
    if (ext_factor != 0.0f) {
        const float pi2 = 6.28318530717958647692f;
        float lo = floorf((float)n_rot * logf((float)n_ctx_orig / (beta_fast * pi2)) / (2 * logf(freq_base)));
        float hi = ceilf((float)n_rot * logf((float)n_ctx_orig / (beta_slow * pi2)) / (2 * logf(freq_base)));
        corr[0] = fmaxf(0, lo);
        corr[1] = fminf((float)n_rot - 1, hi);
    }
    float theta = p;
    for (int64_t i0 = 0; i0 < n_rot; i0 += 2) {
        const float f = ff ? ff[i0 / 2] : 1.0f;
        const float extrap = theta / f, interp = freq_scale * extrap;
        float th = interp, mscale = attn_factor;
        if (ext_factor != 0.0f) {
            const float mix = yarn_ramp(corr[0], corr[1], i0) * ext_factor;
            th = interp * (1 - mix) + extrap * mix;
            mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
        }
        cs[i0] = cosf(th) * mscale;
        cs[i0 + 1] = sinf(th) * mscale;
        theta *= theta_scale;
    }
}

static void rope_worker(void *user, int ith, int nth) {
    const tq_tensor *dst = user, *x = dst->src[0];
    const int32_t *pos = dst->src[1]->data;
    const int32_t n_rot = dst->op_params[0];
    const int neox = dst->op_params[1] == TQ_ROPE_NEOX;
    const int64_t hd = x->ne[0], n_head = x->ne[1], n_tok = x->ne[2];
    float cs[ROPE_MAX];
    /* normal: per element, cos duplicated and sin as (-s, +s) pairs;
       neox: per pair index k, cos and sin. */
    float cv[ROPE_MAX], sv[ROPE_MAX];
    int64_t lo, hi, cur = -1;
    x86_split(n_tok * n_head, ith, nth, 1, &lo, &hi);
    for (int64_t task = lo; task < hi; task++) {
        const int64_t t = task / n_head;
        if (t != cur) {
            rope_table(dst, (float)pos[t], cs);
            for (int64_t i0 = 0; i0 < n_rot; i0 += 2) {
                if (neox) {
                    cv[i0 / 2] = cs[i0];
                    sv[i0 / 2] = cs[i0 + 1];
                } else {
                    cv[i0] = cv[i0 + 1] = cs[i0];
                    sv[i0] = -cs[i0 + 1];
                    sv[i0 + 1] = cs[i0 + 1];
                }
            }
            cur = t;
        }
        const float *src = (const float *)x->data + task * hd;
        float *out = (float *)dst->data + task * hd;
        if (neox) {
            /* out[k] = x[k] c - x[k+h] s, out[k+h] = x[k] s + x[k+h] c */
            const int64_t h = n_rot / 2;
            int64_t k = 0;
            for (; k + 8 <= h; k += 8) {
                const __m256 x0 = _mm256_loadu_ps(src + k), x1 = _mm256_loadu_ps(src + k + h);
                const __m256 c = _mm256_loadu_ps(cv + k), s = _mm256_loadu_ps(sv + k);
                _mm256_storeu_ps(out + k, _mm256_sub_ps(_mm256_mul_ps(x0, c), _mm256_mul_ps(x1, s)));
                _mm256_storeu_ps(out + k + h, _mm256_add_ps(_mm256_mul_ps(x0, s), _mm256_mul_ps(x1, c)));
            }
            for (; k < h; k++) {
                const float x0 = src[k], x1 = src[k + h];
                out[k] = x0 * cv[k] - x1 * sv[k];
                out[k + h] = x0 * sv[k] + x1 * cv[k];
            }
        } else {
            /* pairs (x0, x1): x * (c, c) + swap(x) * (-s, s); x0 c + (-(x1 s))
             * equals the ref's x0 c - x1 s exactly. */
            int64_t i = 0;
            for (; i + 8 <= n_rot; i += 8) {
                const __m256 v = _mm256_loadu_ps(src + i);
                const __m256 sw = _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1));
                _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(cv + i)),
                                                        _mm256_mul_ps(sw, _mm256_loadu_ps(sv + i))));
            }
            for (; i < n_rot; i += 2) {
                const float x0 = src[i], x1 = src[i + 1], c = cv[i], s = sv[i + 1];
                out[i] = x0 * c - x1 * s;
                out[i + 1] = x0 * s + x1 * c;
            }
        }
        for (int64_t i = n_rot; i < hd; i++) out[i] = src[i];
    }
}

void x86_rope(tq_device *dev, tq_tensor *dst) {
    if (dst->src[0]->ne[2] == 1)
        rope_worker(dst, 0, 1);
    else
        dev->st->host->parallel_for(rope_worker, dst);
}

/* ---- attention ----------------------------------------------------------------- */

/* Query tokens per task: each K row is widened to f32 once per block of
 * AQB tokens (times the group's heads) instead of once per token. */
#define AQB 4
#define AMAXQ (AQB * 64) /* query vectors per task, for a group of up to 64 heads */

int x86_attention_supported(const tq_tensor *node) {
    const tq_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2];
    if (!q || !k || !v || !k->data || !v->data) return 0;
    if (k->type != v->type || (k->type != TQ_TYPE_F16 && k->type != TQ_TYPE_F32)) return 0;
    const size_t el = k->type == TQ_TYPE_F16 ? 2 : 4;
    const int64_t hd = q->ne[0];
    return q->type == TQ_TYPE_F32 && x86_contiguous(q) && x86_contiguous(node) && hd % 8 == 0 &&
           k->ne[0] == hd && v->ne[0] == hd && k->nb[0] == el && v->nb[0] == el &&
           k->ne[2] == v->ne[2] && k->ne[2] > 0 && q->ne[1] % k->ne[2] == 0 &&
           q->ne[1] / k->ne[2] <= AMAXQ / AQB &&
           k->ne[1] >= node->op_params[2] && v->ne[1] >= node->op_params[2] &&
           node->op_params[1] + q->ne[2] <= node->op_params[2];
}

typedef struct att_task {
    const tq_tensor *q, *k, *v;
    tq_tensor *dst;
    int32_t pos0, n_kv, group;
    float scale;
    float *work;
    size_t work_stride; /* floats per thread */
} att_task;

/* 8 elements at d of a K or V row as f32. */
X86_INLINE __m256 load8(const char *p, tq_type type, int64_t d) {
    if (type == TQ_TYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + d)));
    return _mm256_loadu_ps((const float *)p + d);
}

/* s[k] = q[k] . row for n (1..8) query vectors: n independent FMA chains,
 * each one the same sequence of operations as a single dot product, so a
 * score does not depend on how many are computed together. */
X86_INLINE void dots(const float *row, const float *const *q, const int n, int64_t hd, float scale,
                     float *const *out, int64_t j) {
    __m256 acc[8];
    _Pragma("GCC unroll 8")
    for (int k = 0; k < n; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 8) {
        const __m256 rv = _mm256_loadu_ps(row + d);
        _Pragma("GCC unroll 8")
        for (int k = 0; k < n; k++) acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(q[k] + d), rv, acc[k]);
    }
    _Pragma("GCC unroll 8")
    for (int k = 0; k < n; k++) out[k][j] = x86_hsum(acc[k]) * scale;
}

static void dots_any(const float *row, const float *const *q, int n, int64_t hd, float scale, float *const *out,
                     int64_t j) {
    switch (n) {
    case 8: dots(row, q, 8, hd, scale, out, j); break;
    case 7: dots(row, q, 7, hd, scale, out, j); break;
    case 6: dots(row, q, 6, hd, scale, out, j); break;
    case 5: dots(row, q, 5, hd, scale, out, j); break;
    case 4: dots(row, q, 4, hd, scale, out, j); break;
    case 3: dots(row, q, 3, hd, scale, out, j); break;
    case 2: dots(row, q, 2, hd, scale, out, j); break;
    default: dots(row, q, 1, hd, scale, out, j); break;
    }
}

/* out[d0 .. d0 + 8 * NCH) = sum over keys j < n_see of p[j] * V[j] (in key
 * order, one chain per 8 lanes: the order of a plain loop over j), with the
 * accumulators held in registers for the whole pass. */
X86_INLINE void vsum(const att_task *t, int64_t kvh, const float *p, int64_t n_see, int64_t d0, const int NCH,
                     float *out) {
    __m256 acc[8];
    _Pragma("GCC unroll 8")
    for (int c = 0; c < NCH; c++) acc[c] = _mm256_setzero_ps();
    const char *v = (const char *)t->v->data + kvh * t->v->nb[2];
    for (int64_t j = 0; j < n_see; j++, v += t->v->nb[1]) {
        const __m256 pv = _mm256_set1_ps(p[j]);
        _Pragma("GCC unroll 8")
        for (int c = 0; c < NCH; c++) acc[c] = _mm256_fmadd_ps(pv, load8(v, t->v->type, d0 + 8 * c), acc[c]);
    }
    _Pragma("GCC unroll 8")
    for (int c = 0; c < NCH; c++) _mm256_storeu_ps(out + d0 + 8 * c, acc[c]);
}

static void vsum_row(const att_task *t, int64_t kvh, const float *p, int64_t n_see, int64_t hd, float *out) {
    int64_t d = 0;
    for (; d + 64 <= hd; d += 64) vsum(t, kvh, p, n_see, d, 8, out);
    if (d + 32 <= hd) vsum(t, kvh, p, n_see, d, 4, out), d += 32;
    if (d + 16 <= hd) vsum(t, kvh, p, n_see, d, 2, out), d += 16;
    if (d + 8 <= hd) vsum(t, kvh, p, n_see, d, 1, out);
}

/* One task = a block of up to AQB query tokens and one KV head with the
 * `group` query heads that share it: each K row is widened once per task
 * and dotted with every query vector of the task; each V row is read once
 * per query vector and 64 output lanes. Tasks are dealt round-robin, since
 * with a causal mask later tokens have more keys. */
static void att_worker(void *user, int ith, int nth) {
    const att_task *t = user;
    const int64_t hd = t->q->ne[0], n_head = t->q->ne[1], n_tok = t->q->ne[2];
    const int64_t n_kv_head = t->k->ne[2], G = t->group;
    const int64_t n_blk = (n_tok + AQB - 1) / AQB;
    float *scores = t->work + (size_t)ith * t->work_stride; /* AQB * G x n_kv */
    float *row = scores + (size_t)(AQB * G) * (size_t)t->n_kv;   /* hd            */
    for (int64_t task = ith; task < n_blk * n_kv_head; task += nth) {
        const int64_t b = task / n_kv_head, kvh = task % n_kv_head;
        const int64_t i0 = b * AQB, nq_tok = n_tok - i0 < AQB ? n_tok - i0 : AQB;
        const int64_t nq = nq_tok * G;
        const float *qv[AMAXQ];
        float *sc[AMAXQ];
        for (int64_t k = 0; k < nq; k++) {
            const int64_t i = i0 + k / G, g = k % G;
            qv[k] = (const float *)t->q->data + (i * n_head + kvh * G + g) * hd;
            sc[k] = scores + (size_t)k * (size_t)t->n_kv;
        }
        const int64_t n_see_max = t->pos0 + i0 + nq_tok; /* causal: keys 0..pos0+i */
        const char *kr = (const char *)t->k->data + kvh * t->k->nb[2];
        for (int64_t j = 0; j < n_see_max; j++, kr += t->k->nb[1]) {
            for (int64_t d = 0; d < hd; d += 8) _mm256_storeu_ps(row + d, load8(kr, t->k->type, d));
            for (int64_t k = 0; k < nq; k += 8) dots_any(row, qv + k, nq - k < 8 ? (int)(nq - k) : 8, hd, t->scale, sc + k, j);
        }
        for (int64_t k = 0; k < nq; k++) {
            const int64_t i = i0 + k / G, n_see = t->pos0 + i + 1;
            float *s = sc[k], mx = -INFINITY;
            for (int64_t j = 0; j < n_see; j++) mx = s[j] > mx ? s[j] : mx;
            double sum = 0;
            for (int64_t j = 0; j < n_see; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            const float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < n_see; j++) s[j] *= inv;
            vsum_row(t, kvh, s, n_see, hd, (float *)t->dst->data + (i * n_head + kvh * G + k % G) * hd);
        }
    }
}

tq_status x86_attention(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const tq_host *host = dev->st->host;
    att_task t;
    t.q = dst->src[0];
    t.k = dst->src[1];
    t.v = dst->src[2];
    t.dst = dst;
    t.pos0 = dst->op_params[1];
    t.n_kv = dst->op_params[2];
    t.group = (int32_t)(t.q->ne[1] / t.k->ne[2]);
    t.scale = tq_param_f(dst, 3);
    const size_t hd = (size_t)t.q->ne[0];
    t.work_stride = ((size_t)(AQB * t.group) * (size_t)t.n_kv + hd + 15) / 16 * 16;
    t.work = x86_scratch(dev, t.work_stride * sizeof(float) * (size_t)host->n_threads);
    if (!t.work) return x86_error(err, TQ_ERR_NOMEM, "attention: out of memory for %d keys", t.n_kv);
    host->parallel_for(att_worker, &t);
    return TQ_OK;
}
