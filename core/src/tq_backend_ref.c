/* tq_backend_ref.c — the `ref` backend: plain C that runs every core op on
 * every type, the correctness oracle the SIMD and GPU backends are checked
 * against, and the last link of every fallback chain.
 *
 * It is a plugin like any other (same entry struct, same tq.backend/1
 * table), only linked into the core instead of loaded from a file. Its
 * arithmetic follows ggml's CPU path so its logits agree with llama.cpp's:
 * activations are encoded to the weight's vec_dot type (f16, bf16, q8_0,
 * q8_1, q8_K) before integer/half dot products; RMSNorm sums in double;
 * RoPE angles are an iterated float product. */
#include "tq_backend_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tq_error.h"
#include "tq_half.h"
#include "tq_quants.h"
#include "tq_types.h"

typedef struct ref_state {
    const tq_host *host;
} ref_state;

struct tq_device {
    ref_state *st;
    void *scratch;       /* per-call working memory (encoded activations,
                            attention scores), grown on demand            */
    size_t scratch_size;
};

struct tq_buffer {
    void *ptr;
    size_t size;
    const tq_host *owner; /* frees ptr; NULL for wrapped host memory */
};

/* ---- helpers -------------------------------------------------------------- */

static void *scratch(tq_device *dev, size_t bytes) {
    if (bytes > dev->scratch_size) {
        dev->st->host->free(dev->scratch);
        dev->scratch = dev->st->host->alloc(bytes, 64);
        dev->scratch_size = dev->scratch ? bytes : 0;
    }
    return dev->scratch;
}

static int64_t nrows(const tq_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

/* Row r of a tensor whose rows (dims 1..3 flattened) are laid out by nb. */
static const char *row_ptr(const tq_tensor *t, int64_t r) {
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (const char *)t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
}

/* Splitting an op over the pool costs a wake-up of every worker (and on a
 * busy machine a scheduler time slice each): below this many multiply-adds
 * the op runs on the calling thread alone. */
#define PARALLEL_MIN_WORK (1 << 18)

static void run_tasks(const tq_host *host, tq_task_fn fn, void *user, double work) {
    if (work < PARALLEL_MIN_WORK || host->n_threads <= 1)
        fn(user, 0, 1);
    else
        host->parallel_for(fn, user);
}

static void split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nth - 1) / nth;
    *lo = per * ith < n ? per * ith : n;
    *hi = *lo + per < n ? *lo + per : n;
}

/* ---- ops ------------------------------------------------------------------- */

static tq_status op_get_rows(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const tq_tensor *tab = dst->src[0], *ids = dst->src[1];
    const tq_type_info *ti = dev->st->host->type_info(tab->type);
    const int32_t *id = ids->data;
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        if (id[i] < 0 || id[i] >= nrows(tab))
            return tq_error_set(err, TQ_ERR_RANGE, "get_rows: id %d outside %s (%lld rows)",
                                id[i], tab->name ? tab->name : "table", (long long)nrows(tab));
        ti->to_f32(row_ptr(tab, id[i]), (float *)dst->data + i * dst->ne[0], tab->ne[0]);
    }
    return TQ_OK;
}

/* Matmul comes in two flavours, both as ggml computes them:
 *  - block-quantized weights: each activation column is encoded once to the
 *    weight's vec_dot type (q8_0, q8_1, q8_K) and the integer dot products
 *    of tq_quants.c give exactly ggml's sums;
 *  - float weights (f32, f16, bf16) and plugin-registered types: weight rows
 *    are decoded to f32 a tile at a time and activations rounded through
 *    the weight's type (ggml rounds them to f16/bf16 too), so every product
 *    is the one ggml forms; only the summation order differs (eight float
 *    lanes here), which is what keeps this path fast enough for perplexity
 *    runs on the reference backend. */
#define MM_TILE 16

typedef struct mm_task {
    const tq_tensor *w;
    const tq_type_info *wi;
    const tq_quant_traits *qt; /* non-NULL: integer path                   */
    const char *act;           /* encoded (or f32) activation columns       */
    size_t act_stride;         /* bytes per column                          */
    float *dst;
    int64_t n_in, n_out, n_cols;
    float *wtile;              /* per thread: MM_TILE decoded rows          */
} mm_task;

static float dot_f32(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void mm_worker(void *user, int ith, int nth) {
    mm_task *t = user;
    int64_t lo, hi;
    split(t->n_out, ith, nth, &lo, &hi);
    if (t->qt) {
        for (int64_t r = lo; r < hi; r++) {
            const char *w = row_ptr(t->w, r);
            for (int64_t c = 0; c < t->n_cols; c++)
                t->dst[c * t->n_out + r] = t->qt->vec_dot(t->n_in, w, t->act + c * t->act_stride);
        }
        return;
    }
    float *tile = t->wtile + (size_t)ith * MM_TILE * (size_t)t->n_in;
    for (int64_t r0 = lo; r0 < hi; r0 += MM_TILE) {
        const int64_t nr = hi - r0 < MM_TILE ? hi - r0 : MM_TILE;
        for (int64_t r = 0; r < nr; r++) t->wi->to_f32(row_ptr(t->w, r0 + r), tile + r * t->n_in, t->n_in);
        for (int64_t c = 0; c < t->n_cols; c++) {
            const float *a = (const float *)(t->act + c * t->act_stride);
            for (int64_t r = 0; r < nr; r++)
                t->dst[c * t->n_out + r0 + r] = dot_f32(tile + r * t->n_in, a, t->n_in);
        }
    }
}

static tq_status op_mul_mat(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const tq_host *host = dev->st->host;
    const tq_tensor *w = dst->src[0], *x = dst->src[1];
    mm_task t = {0};
    t.w = w;
    t.wi = host->type_info(w->type);
    t.n_in = w->ne[0];
    t.n_out = w->ne[1];
    t.n_cols = nrows(x);
    t.dst = dst->data;
    const int float_weights = w->type == TQ_TYPE_F32 || w->type == TQ_TYPE_F16 || w->type == TQ_TYPE_BF16;
    t.qt = float_weights ? NULL : tq_quant_traits_get(w->type);
    t.act_stride = t.qt ? tq_type_row_bytes(t.qt->act_type, t.n_in) : (size_t)t.n_in * sizeof(float);
    const size_t act_bytes = (t.act_stride * (size_t)t.n_cols + 63) / 64 * 64;
    const size_t tile_bytes = t.qt ? 0 : (size_t)host->n_threads * MM_TILE * (size_t)t.n_in * sizeof(float);
    const size_t half_bytes = (size_t)t.n_in * 2 + 64; /* one f16/bf16 column */
    char *mem = scratch(dev, act_bytes + tile_bytes + half_bytes);
    if (!mem) return tq_error_set(err, TQ_ERR_NOMEM, "mul_mat: out of memory");
    const tq_type_info *round_through = w->type == TQ_TYPE_F16 || w->type == TQ_TYPE_BF16 ? t.wi : NULL;
    for (int64_t c = 0; c < t.n_cols; c++) {
        const float *xc = (const float *)row_ptr(x, c);
        char *out = mem + c * t.act_stride;
        if (t.qt) {
            t.qt->act_from_f32(xc, out, t.n_in);
        } else if (round_through) {
            /* f16/bf16 weights see f16/bf16-rounded activations, as in ggml. */
            void *half = mem + act_bytes + tile_bytes;
            round_through->from_f32(xc, half, t.n_in);
            round_through->to_f32(half, (float *)out, t.n_in);
        } else {
            memcpy(out, xc, t.act_stride);
        }
    }
    t.act = mem;
    t.wtile = (float *)(mem + act_bytes);
    run_tasks(host, mm_worker, &t, (double)t.n_in * (double)t.n_out * (double)t.n_cols);
    return TQ_OK;
}

static void op_rms_norm(tq_tensor *dst) {
    const tq_tensor *x = dst->src[0];
    const float eps = tq_param_f(dst, 0);
    const int64_t n = x->ne[0];
    for (int64_t r = 0; r < nrows(x); r++) {
        const float *xr = (const float *)x->data + r * n;
        float *y = (float *)dst->data + r * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / (double)n);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < n; i++) y[i] = xr[i] * scale;
    }
}

static void op_binary(tq_tensor *dst) {
    const tq_tensor *a = dst->src[0], *b = dst->src[1];
    const int64_t n = a->ne[0], rows = nrows(a);
    const int broadcast = nrows(b) == 1;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = (const float *)a->data + r * n;
        const float *y = (const float *)b->data + (broadcast ? 0 : r * n);
        float *z = (float *)dst->data + r * n;
        if (dst->op == TQ_OP_ADD)
            for (int64_t i = 0; i < n; i++) z[i] = x[i] + y[i];
        else
            for (int64_t i = 0; i < n; i++) z[i] = x[i] * y[i];
    }
}

static void op_unary(tq_tensor *dst) {
    const tq_tensor *a = dst->src[0];
    const int64_t n = a->ne[0] * nrows(a);
    const float *x = a->data;
    float *y = dst->data;
    if (dst->op == TQ_OP_SCALE) {
        const float s = tq_param_f(dst, 0);
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * s;
    } else if (dst->op == TQ_OP_SILU) {
        for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
    } else { /* SWIGLU */
        const float *u = dst->src[1]->data;
        for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i])) * u[i];
    }
}

static void op_view_rows(tq_tensor *dst) {
    const tq_tensor *a = dst->src[0];
    const int64_t off = dst->op_params[0], n = dst->ne[0], stride = a->ne[0];
    for (int64_t r = 0; r < dst->ne[1]; r++)
        memcpy((float *)dst->data + r * n, (const float *)a->data + r * stride + off,
               (size_t)n * sizeof(float));
}

/* YaRN ramp and angle as ggml's rope_yarn: with ext_factor 0 this is plain
 * theta * freq_scale, cos/sin scaled by attn_factor. */
static float yarn_ramp(float low, float high, int64_t i0) {
    const float y = ((float)(i0 / 2) - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

static void op_rope(tq_tensor *dst) {
    const tq_tensor *x = dst->src[0];
    const int32_t *pos = dst->src[1]->data;
    const float *ff = dst->src[2] ? dst->src[2]->data : NULL;
    const int32_t n_rot = dst->op_params[0];
    const int neox = dst->op_params[1] == TQ_ROPE_NEOX;
    const float freq_base = tq_param_f(dst, 2), freq_scale = tq_param_f(dst, 3);
    const float attn_factor = tq_param_f(dst, 4), ext_factor = tq_param_f(dst, 5);
    const float beta_fast = tq_param_f(dst, 6), beta_slow = tq_param_f(dst, 7);
    const int32_t n_ctx_orig = dst->op_params[8];
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float corr[2] = {0, 0};
    if (ext_factor != 0.0f) {
        /* ggml_rope_yarn_corr_dims */
        const float pi2 = 6.28318530717958647692f;
        float lo = floorf((float)n_rot * logf((float)n_ctx_orig / (beta_fast * pi2)) /
                          (2 * logf(freq_base)));
        float hi = ceilf((float)n_rot * logf((float)n_ctx_orig / (beta_slow * pi2)) /
                         (2 * logf(freq_base)));
        corr[0] = fmaxf(0, lo);
        corr[1] = fminf((float)n_rot - 1, hi);
    }
    const int64_t hd = x->ne[0], n_head = x->ne[1], n_tok = x->ne[2];
    float cs[TQ_ROPE_MAX_DIMS]; /* cos, sin of each pair; the builder bounds n_rot */
    for (int64_t t = 0; t < n_tok; t++) {
        float theta = (float)pos[t];
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
        for (int64_t h = 0; h < n_head; h++) {
            const float *src = (const float *)x->data + (t * n_head + h) * hd;
            float *out = (float *)dst->data + (t * n_head + h) * hd;
            for (int64_t i0 = 0; i0 < n_rot; i0 += 2) {
                const int64_t a = neox ? i0 / 2 : i0, b = neox ? i0 / 2 + n_rot / 2 : i0 + 1;
                const float c = cs[i0], s = cs[i0 + 1], x0 = src[a], x1 = src[b];
                out[a] = x0 * c - x1 * s;
                out[b] = x0 * s + x1 * c;
            }
            for (int64_t i = n_rot; i < hd; i++) out[i] = src[i];
        }
    }
}

/* llama.cpp's CPU flash attention (ggml_compute_forward_flash_attn_ext_f16,
 * build 8871), which the golden files come from, runs a batch of fewer than
 * FA_TILE_Q query tokens over an f16 K/V cache through its one-chunk path:
 * Q rounded to f16, an online softmax, and the weighted V rows summed in an
 * f16 accumulator, rounded after every key. A one-token batch over a padded
 * KV view of FA_SPLIT_MIN keys or more is cut into one part per thread,
 * merged in f32. Those roundings, not summation order, are most of what
 * separates an f32 attention from the golden decode rows (llama long2048:
 * 1.87e-3 x max|logit| in f32, 0.79e-3 this way), so for such batches the
 * oracle does the same. The parts are FA_SPLIT_PARTS whatever tqrun's own
 * thread count, as the golden files were made with 2 threads: results never
 * depend on -t. Larger batches take llama.cpp's tiled path, whose f32
 * arithmetic the plain softmax below already follows closely. */
#define FA_TILE_Q 64       /* GGML_FA_TILE_Q                                  */
#define FA_KV_PAD 256      /* llama.cpp pads the KV view to a multiple of it  */
#define FA_SPLIT_MIN 512   /* padded keys from which a one-token batch splits */
#define FA_SPLIT_PARTS 2   /* the golden files' thread count                  */

typedef struct att_task {
    const tq_tensor *q, *k, *v;
    tq_tensor *dst;
    const tq_type_info *ki, *vi;
    int32_t pos0, n_kv;
    float scale;
    int fa16;             /* llama.cpp's one-chunk f16 path (see above)        */
    float *work;          /* per thread: n_kv scores + 4 * head_dim            */
    size_t work_stride;   /* floats per thread                      */
} att_task;

static float round_f16(float x) { return tq_f16_to_f32(tq_f32_to_f16(x)); }

/* Keys [j0, j1) of KV head kvh for the query q (already rounded to f16) as
 * llama.cpp's one-chunk loop: *M the running max, *S the running sum and
 * acc[hd] the f16 accumulator (as floats); the fused multiply-adds are the
 * ones ggml's build contracts. row is hd floats of scratch. */
static void fa16_part(const att_task *t, int64_t kvh, const float *q, int64_t j0, int64_t j1, float *row,
                      float *acc, float *M_out, float *S_out) {
    const int64_t hd = t->q->ne[0];
    float M = -INFINITY, S = 0;
    memset(acc, 0, (size_t)hd * sizeof(float));
    for (int64_t j = j0; j < j1; j++) {
        t->ki->to_f32((const char *)t->k->data + j * t->k->nb[1] + kvh * t->k->nb[2], row, hd);
        float s = 0;
        for (int64_t d = 0; d < hd; d++) s += q[d] * row[d];
        s *= t->scale;
        const float M_old = M;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            M = s;
            ms = expf(M_old - M);
            for (int64_t d = 0; d < hd; d++) acc[d] = round_f16(acc[d] * ms);
        } else {
            vs = expf(s - M);
        }
        t->vi->to_f32((const char *)t->v->data + j * t->v->nb[1] + kvh * t->v->nb[2], row, hd);
        for (int64_t d = 0; d < hd; d++) acc[d] = round_f16(fmaf(row[d], vs, acc[d]));
        S = fmaf(S, ms, vs);
    }
    *M_out = M;
    *S_out = S;
}

/* out[hd] = the attention of query q over its n_see keys the one-chunk way;
 * work is 3 * hd floats. */
static void fa16_row(const att_task *t, int64_t kvh, const float *q, int64_t n_see, float *work, float *out) {
    const int64_t hd = t->q->ne[0], n_tok = t->q->ne[2];
    float *q16 = work, *row = work + hd, *acc = work + 2 * hd;
    for (int64_t d = 0; d < hd; d++) q16[d] = round_f16(q[d]);
    int64_t padded = (n_see + FA_KV_PAD - 1) / FA_KV_PAD * FA_KV_PAD;
    if (padded < FA_KV_PAD) padded = FA_KV_PAD;
    float M, S;
    if (n_tok > 1 || padded < FA_SPLIT_MIN) {
        fa16_part(t, kvh, q16, 0, n_see, row, acc, &M, &S);
        const float inv = S == 0.0f ? 0.0f : 1.0f / S;
        for (int64_t d = 0; d < hd; d++) out[d] = acc[d] * inv;
        return;
    }
    /* ggml_flash_attn_ext_reduce_partials: parts with no key are skipped */
    const int64_t part = (padded + FA_SPLIT_PARTS - 1) / FA_SPLIT_PARTS;
    float M_all = -INFINITY, S_all = 0;
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int64_t j0 = 0; j0 < n_see; j0 += part) {
        const int64_t j1 = j0 + part < n_see ? j0 + part : n_see;
        fa16_part(t, kvh, q16, j0, j1, row, acc, &M, &S);
        if (S == 0.0f) continue;
        const float M_new = fmaxf(M_all, M), s_old = expf(M_all - M_new), s_new = expf(M - M_new);
        for (int64_t d = 0; d < hd; d++) out[d] = fmaf(acc[d], s_new, out[d] * s_old);
        S_all = fmaf(S, s_new, S_all * s_old);
        M_all = M_new;
    }
    if (S_all != 0.0f) {
        const float inv = 1.0f / S_all;
        for (int64_t d = 0; d < hd; d++) out[d] *= inv;
    }
}

static void att_worker(void *user, int ith, int nth) {
    att_task *t = user;
    const int64_t hd = t->q->ne[0], n_head = t->q->ne[1], n_tok = t->q->ne[2];
    const int64_t n_kv_head = t->k->ne[2], group = n_head / n_kv_head;
    float *scores = t->work + (size_t)ith * t->work_stride;
    float *row = scores + t->n_kv;
    float *acc = row + hd;
    int64_t lo, hi;
    split(n_tok * n_head, ith, nth, &lo, &hi);
    for (int64_t task = lo; task < hi; task++) {
        const int64_t i = task / n_head, h = task % n_head, kvh = h / group;
        const float *q = (const float *)t->q->data + (i * n_head + h) * hd;
        const int64_t n_see = t->pos0 + i + 1; /* causal: keys 0..pos0+i */
        if (t->fa16) {
            fa16_row(t, kvh, q, n_see, row, (float *)t->dst->data + (i * n_head + h) * hd);
            continue;
        }
        float mx = -INFINITY;
        for (int64_t j = 0; j < n_see; j++) {
            t->ki->to_f32((const char *)t->k->data + j * t->k->nb[1] + kvh * t->k->nb[2], row, hd);
            float s = 0;
            for (int64_t d = 0; d < hd; d++) s += q[d] * row[d];
            s *= t->scale;
            scores[j] = s;
            if (s > mx) mx = s;
        }
        double sum = 0;
        for (int64_t j = 0; j < n_see; j++) {
            scores[j] = expf(scores[j] - mx);
            sum += scores[j];
        }
        const float inv = (float)(1.0 / sum);
        memset(acc, 0, (size_t)hd * sizeof(float));
        for (int64_t j = 0; j < n_see; j++) {
            t->vi->to_f32((const char *)t->v->data + j * t->v->nb[1] + kvh * t->v->nb[2], row, hd);
            const float p = scores[j] * inv;
            for (int64_t d = 0; d < hd; d++) acc[d] += p * row[d];
        }
        memcpy((float *)t->dst->data + (i * n_head + h) * hd, acc, (size_t)hd * sizeof(float));
    }
}

static tq_status op_attention(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const tq_host *host = dev->st->host;
    att_task t = {0};
    t.q = dst->src[0];
    t.k = dst->src[1];
    t.v = dst->src[2];
    t.dst = dst;
    t.ki = host->type_info(t.k->type);
    t.vi = host->type_info(t.v->type);
    t.pos0 = dst->op_params[1];
    t.n_kv = dst->op_params[2];
    t.scale = tq_param_f(dst, 3);
    t.fa16 = t.k->type == TQ_TYPE_F16 && t.v->type == TQ_TYPE_F16 && t.q->ne[2] < FA_TILE_Q;
    t.work_stride = (size_t)t.n_kv + 4 * (size_t)t.q->ne[0] + 16;
    t.work = scratch(dev, t.work_stride * sizeof(float) * (size_t)host->n_threads);
    if (!t.work) return tq_error_set(err, TQ_ERR_NOMEM, "attention: out of memory");
    run_tasks(host, att_worker, &t,
              2.0 * (double)t.q->ne[0] * (double)t.q->ne[1] * (double)t.q->ne[2] * (double)t.n_kv);
    return TQ_OK;
}

/* ---- backend interface ---------------------------------------------------- */

static const tq_backend_cap ref_caps[] = {
    {TQ_OP_GET_ROWS, "*", "i32", "f32"},  {TQ_OP_MUL_MAT, "*", "f32", "f32"},
    {TQ_OP_RMS_NORM, "f32", "", "f32"},   {TQ_OP_MUL, "f32", "f32", "f32"},
    {TQ_OP_ADD, "f32", "f32", "f32"},     {TQ_OP_ROPE, "f32", "i32", "f32"},
    {TQ_OP_SWIGLU, "f32", "f32", "f32"},  {TQ_OP_SCALE, "f32", "", "f32"},
    {TQ_OP_VIEW_ROWS, "f32", "", "f32"},  {TQ_OP_ATTENTION, "f32", "*", "f32"},
    {TQ_OP_SILU, "f32", "", "f32"},
};

static int32_t ref_device_count(void *state) {
    (void)state;
    return 1;
}

static tq_status ref_device_info(void *state, int32_t index, tq_device_info *out) {
    (void)state;
    if (index != 0) return TQ_ERR_RANGE;
    out->size = sizeof *out;
    out->name = "cpu (scalar reference)";
    out->mem_total = out->mem_free = 0;
    out->host_visible = 1;
    return TQ_OK;
}

static tq_status ref_device_open(void *state, int32_t index, tq_device **dev, tq_error *err) {
    if (index != 0) return tq_error_set(err, TQ_ERR_RANGE, "ref: no device %d", index);
    tq_device *d = calloc(1, sizeof *d);
    if (!d) return tq_error_set(err, TQ_ERR_NOMEM, "ref: out of memory");
    d->st = state;
    *dev = d;
    return TQ_OK;
}

static void ref_device_close(tq_device *dev) {
    if (!dev) return;
    dev->st->host->free(dev->scratch);
    free(dev);
}

static int ref_supports(tq_device *dev, const tq_tensor *node) {
    switch (node->op) {
    case TQ_OP_GET_ROWS:
    case TQ_OP_MUL_MAT:
        return dev->st->host->type_info(node->src[0]->type) != NULL;
    case TQ_OP_ATTENTION:
        /* A cache that attends on its own format has no K/V views. */
        return node->src[1] && node->src[2] && dev->st->host->type_info(node->src[1]->type) &&
               dev->st->host->type_info(node->src[2]->type);
    case TQ_OP_RMS_NORM: case TQ_OP_MUL: case TQ_OP_ADD: case TQ_OP_ROPE: case TQ_OP_SWIGLU:
    case TQ_OP_SCALE: case TQ_OP_VIEW_ROWS: case TQ_OP_SILU:
        return 1;
    default:
        return 0;
    }
}

static tq_status ref_buffer_alloc(tq_device *dev, size_t bytes, tq_buffer **buf, tq_error *err) {
    tq_buffer *b = calloc(1, sizeof *b);
    void *p = b ? dev->st->host->alloc(bytes ? bytes : 1, 64) : NULL;
    if (!p) {
        free(b);
        return tq_error_set(err, TQ_ERR_NOMEM, "ref: cannot allocate %zu bytes", bytes);
    }
    b->ptr = p;
    b->size = bytes;
    b->owner = dev->st->host;
    *buf = b;
    return TQ_OK;
}

static tq_status ref_buffer_wrap_host(tq_device *dev, void *ptr, size_t bytes, tq_buffer **buf,
                                      tq_error *err) {
    (void)dev;
    tq_buffer *b = calloc(1, sizeof *b);
    if (!b) return tq_error_set(err, TQ_ERR_NOMEM, "ref: out of memory");
    b->ptr = ptr;
    b->size = bytes;
    *buf = b;
    return TQ_OK;
}

static void ref_buffer_free(tq_buffer *buf) {
    if (!buf) return;
    if (buf->owner) buf->owner->free(buf->ptr);
    free(buf);
}

static void *ref_buffer_host_ptr(tq_buffer *buf) { return buf->ptr; }

static tq_status ref_buffer_write(tq_buffer *buf, size_t off, const void *src, size_t n) {
    if (off > buf->size || n > buf->size - off) return TQ_ERR_RANGE;
    memcpy((char *)buf->ptr + off, src, n);
    return TQ_OK;
}

static tq_status ref_buffer_read(tq_buffer *buf, size_t off, void *dst, size_t n) {
    if (off > buf->size || n > buf->size - off) return TQ_ERR_RANGE;
    memcpy(dst, (const char *)buf->ptr + off, n);
    return TQ_OK;
}

static tq_status ref_graph_compute(tq_device *dev, const tq_graph *graph, int32_t first,
                                   int32_t last, tq_error *err) {
    for (int32_t i = first; i < last; i++) {
        tq_tensor *n = graph->nodes[i];
        tq_status st = TQ_OK;
        switch (n->op) {
        case TQ_OP_NONE: break;
        case TQ_OP_GET_ROWS: st = op_get_rows(dev, n, err); break;
        case TQ_OP_MUL_MAT: st = op_mul_mat(dev, n, err); break;
        case TQ_OP_RMS_NORM: op_rms_norm(n); break;
        case TQ_OP_MUL:
        case TQ_OP_ADD: op_binary(n); break;
        case TQ_OP_SCALE:
        case TQ_OP_SILU:
        case TQ_OP_SWIGLU: op_unary(n); break;
        case TQ_OP_VIEW_ROWS: op_view_rows(n); break;
        case TQ_OP_ROPE: op_rope(n); break;
        case TQ_OP_ATTENTION: st = op_attention(dev, n, err); break;
        default:
            return tq_error_set(err, TQ_ERR_UNSUPPORTED, "ref: op %d not supported", (int)n->op);
        }
        if (st != TQ_OK) return st;
    }
    return TQ_OK;
}

static tq_status ref_synchronize(tq_device *dev) {
    (void)dev;
    return TQ_OK;
}

static const tq_backend_iface ref_iface = {
    .size = sizeof(tq_backend_iface),
    .caps = ref_caps,
    .n_caps = (int32_t)(sizeof ref_caps / sizeof ref_caps[0]),
    .device_count = ref_device_count,
    .device_info = ref_device_info,
    .device_open = ref_device_open,
    .device_close = ref_device_close,
    .supports = ref_supports,
    .buffer_alloc = ref_buffer_alloc,
    .buffer_wrap_host = ref_buffer_wrap_host,
    .buffer_free = ref_buffer_free,
    .buffer_host_ptr = ref_buffer_host_ptr,
    .buffer_write = ref_buffer_write,
    .buffer_read = ref_buffer_read,
    .graph_compute = ref_graph_compute,
    .synchronize = ref_synchronize,
};

static tq_status ref_init(const tq_host *host, void **state, tq_error *err) {
    ref_state *st = calloc(1, sizeof *st);
    if (!st) return tq_error_set(err, TQ_ERR_NOMEM, "ref: out of memory");
    st->host = host;
    *state = st;
    return TQ_OK;
}

static void ref_deinit(void *state) { free(state); }

static const void *ref_get_interface(void *state, const char *id) {
    (void)state;
    return strcmp(id, TQ_IFACE_BACKEND) == 0 ? &ref_iface : NULL;
}

const tq_plugin_entry tq_backend_ref_entry = {
    .size = sizeof(tq_plugin_entry),
    .abi_major = TQ_ABI_MAJOR,
    .abi_minor = TQ_ABI_MINOR,
    .kind = TQ_PLUGIN_BACKEND,
    .id = "org.tqrun.backend.ref",
    .name = "ref",
    .version = "0.1.0",
    .description = "scalar C reference for every op and type (built in)",
    .required_cpu = 0,
    .priority = 0,
    .init = ref_init,
    .deinit = ref_deinit,
    .get_interface = ref_get_interface,
};
