/* cpu_ops.c — the ops of a CPU backend besides MUL_MAT and ATTENTION:
 * get_rows, rms_norm, rope, add, mul, scale, silu, swiglu, view_rows
 * (cpu_backend.h).
 *
 * All but rms_norm are bit-identical to the ref backend: the same float
 * operations, one rounding each (plugins build with -ffp-contract=off), the
 * same libm calls; rope's rotation and f16 rows are the plugin's SIMD
 * (cpu_kernels), held to the same operations. rms_norm sums its squares in
 * the plugin's double lanes instead of one double chain (the conformance
 * test allows 4 ulp). The element-wise loops are plain C over restrict
 * pointers, which the compiler vectorises for whatever ISA the plugin is
 * built for. Work is split over the host's pool when there is enough. */
#include "cpu_backend.h"

#include <math.h>

/* Below this many elements an element-wise op runs on the calling thread:
 * waking the pool costs more than the work (decode-sized vectors). */
#define PAR_MIN_ELEMS 32768

/* A node and the device whose kernels run it, for the pool's workers. */
typedef struct op_task {
    const tq_device *dev;
    const tq_tensor *dst;
} op_task;

/* ---- get_rows --------------------------------------------------------------- */

typedef struct rows_task {
    const tq_tensor *tab;
    const int32_t *ids;
    int64_t n_ids;
    float *dst;
    tq_to_f32_fn to_f32;
    void (*f16_row)(const uint16_t *src, float *dst, int64_t n);
} rows_task;

static void rows_worker(void *user, int ith, int nth) {
    const rows_task *t = user;
    const int64_t n = t->tab->ne[0];
    int64_t lo, hi;
    cpu_split(t->n_ids, ith, nth, 1, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const char *src = cpu_row(t->tab, t->ids[i]);
        float *out = t->dst + i * n;
        if (t->tab->type == TQ_TYPE_F16)
            t->f16_row((const uint16_t *)(const void *)src, out, n);
        else if (t->tab->type == TQ_TYPE_F32)
            memcpy(out, src, (size_t)n * sizeof(float));
        else
            t->to_f32(src, out, n); /* the type's reference decoder */
    }
}

tq_status cpu_get_rows(tq_device *dev, tq_tensor *dst, tq_error *err) {
    rows_task t = {dst->src[0], dst->src[1]->data, dst->src[1]->ne[0], dst->data, NULL, dev->k->f16_row};
    t.to_f32 = dev->host->type_info(t.tab->type)->to_f32;
    const int64_t rows = cpu_nrows(t.tab);
    for (int64_t i = 0; i < t.n_ids; i++)
        if (t.ids[i] < 0 || t.ids[i] >= rows)
            return cpu_error(dev, err, TQ_ERR_RANGE, "get_rows: id %d outside %s (%lld rows)", t.ids[i],
                             t.tab->name ? t.tab->name : "table", (long long)rows);
    if (t.n_ids * t.tab->ne[0] < PAR_MIN_ELEMS)
        rows_worker(&t, 0, 1);
    else
        dev->host->parallel_for(rows_worker, &t);
    return TQ_OK;
}

/* ---- rms_norm ---------------------------------------------------------------- */

static void rms_worker(void *user, int ith, int nth) {
    const op_task *ot = user;
    const tq_device *dev = ot->dev;
    const tq_tensor *dst = ot->dst, *x = dst->src[0];
    const float eps = tq_param_f(dst, 0);
    const int64_t n = x->ne[0];
    int64_t lo, hi;
    cpu_split(cpu_nrows(x), ith, nth, 1, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *restrict xr = (const float *)x->data + r * n;
        float *restrict y = (float *)dst->data + r * n;
        const float mean = (float)(dev->k->sum_squares(xr, n) / (double)n);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < n; i++) y[i] = xr[i] * scale;
    }
}

void cpu_rms_norm(tq_device *dev, tq_tensor *dst) {
    op_task t = {dev, dst};
    if (cpu_nrows(dst->src[0]) == 1)
        rms_worker(&t, 0, 1);
    else
        dev->host->parallel_for(rms_worker, &t);
}

/* ---- element-wise ------------------------------------------------------------- */

static void binary_worker(void *user, int ith, int nth) {
    const tq_tensor *dst = user, *a = dst->src[0], *b = dst->src[1];
    const int64_t n = a->ne[0];
    const int broadcast = cpu_nrows(b) == 1;
    int64_t lo, hi;
    cpu_split(cpu_nrows(a), ith, nth, 1, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *restrict x = (const float *)a->data + r * n;
        const float *restrict y = (const float *)b->data + (broadcast ? 0 : r * n);
        float *restrict z = (float *)dst->data + r * n;
        if (dst->op == TQ_OP_ADD)
            for (int64_t i = 0; i < n; i++) z[i] = x[i] + y[i];
        else
            for (int64_t i = 0; i < n; i++) z[i] = x[i] * y[i];
    }
}

void cpu_binary(tq_device *dev, tq_tensor *dst) {
    if (dst->src[0]->ne[0] * cpu_nrows(dst->src[0]) < PAR_MIN_ELEMS)
        binary_worker(dst, 0, 1);
    else
        dev->host->parallel_for(binary_worker, dst);
}

#define SILU_RUN 256 /* values per expf_row call of silu/swiglu */

typedef struct unary_task {
    const tq_tensor *dst;
    const cpu_kernels *k;
} unary_task;

static void unary_worker(void *user, int ith, int nth) {
    const unary_task *t = user;
    const tq_tensor *dst = t->dst, *a = dst->src[0];
    const float *restrict x = a->data;
    float *restrict y = dst->data;
    int64_t lo, hi;
    cpu_split(a->ne[0] * cpu_nrows(a), ith, nth, 8, &lo, &hi);
    if (dst->op == TQ_OP_SCALE) {
        const float s = tq_param_f(dst, 0);
        for (int64_t i = lo; i < hi; i++) y[i] = x[i] * s;
    } else {
        /* silu x / (1 + expf(-x)), times u for swiglu: the expf of a run
         * of SILU_RUN values at a time through the kernel's expf_row. */
        const float *restrict u = dst->op == TQ_OP_SWIGLU ? dst->src[1]->data : NULL;
        float e[SILU_RUN];
        for (int64_t i0 = lo; i0 < hi; i0 += SILU_RUN) {
            const int64_t m = hi - i0 < SILU_RUN ? hi - i0 : SILU_RUN;
            for (int64_t i = 0; i < m; i++) e[i] = -x[i0 + i];
            if (t->k->expf_row)
                t->k->expf_row(e, e, m);
            else
                for (int64_t i = 0; i < m; i++) e[i] = expf(e[i]);
            if (u)
                for (int64_t i = 0; i < m; i++) y[i0 + i] = x[i0 + i] / (1.0f + e[i]) * u[i0 + i];
            else
                for (int64_t i = 0; i < m; i++) y[i0 + i] = x[i0 + i] / (1.0f + e[i]);
        }
    }
}

void cpu_unary(tq_device *dev, tq_tensor *dst) {
    /* silu/swiglu call expf per element: worth the pool much earlier */
    const int64_t n = dst->src[0]->ne[0] * cpu_nrows(dst->src[0]);
    unary_task t = {dst, dev->k};
    if (n < (dst->op == TQ_OP_SCALE ? PAR_MIN_ELEMS : PAR_MIN_ELEMS / 8))
        unary_worker(&t, 0, 1);
    else
        dev->host->parallel_for(unary_worker, &t);
}

void cpu_view_rows(tq_device *dev, tq_tensor *dst) {
    (void)dev;
    const tq_tensor *a = dst->src[0];
    const int64_t off = dst->op_params[0], n = dst->ne[0], stride = a->ne[0];
    for (int64_t r = 0; r < dst->ne[1]; r++)
        memcpy((float *)dst->data + r * n, (const float *)a->data + r * stride + off, (size_t)n * sizeof(float));
}

void cpu_encode_bf16(const float *x, void *y, int64_t n) {
    uint16_t *out = y;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        if ((u & 0x7fffffff) > 0x7f800000)
            u = (u & 0xffff0000u) | 0x00400000u;
        else
            u = (u + (0x7fffu + ((u >> 16) & 1))) & 0xffff0000u;
        out[i] = (uint16_t)(u >> 16);
    }
}

/* ---- rope ----------------------------------------------------------------------- */

/* YaRN ramp as ggml's rope_yarn (identical to the ref backend's). */
static float yarn_ramp(float low, float high, int64_t i0) {
    const float y = ((float)(i0 / 2) - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

/* cos and sin of every pair of ROPE node dst at position p, exactly as the
 * ref backend computes them (iterated float theta, YaRN ramp, cosf/sinf):
 * cs[i0] = cos * mscale, cs[i0 + 1] = sin * mscale for i0 = 0, 2, .. n_rot. */
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
    const op_task *ot = user;
    const tq_device *dev = ot->dev;
    const tq_tensor *dst = ot->dst, *x = dst->src[0];
    const int32_t *pos = dst->src[1]->data;
    const int32_t n_rot = dst->op_params[0];
    const int neox = dst->op_params[1] == TQ_ROPE_NEOX;
    const int64_t hd = x->ne[0], n_head = x->ne[1], n_tok = x->ne[2];
    float cs[CPU_ROPE_MAX];
    int64_t lo, hi, cur = -1;
    cpu_split(n_tok * n_head, ith, nth, 1, &lo, &hi);
    for (int64_t task = lo; task < hi; task++) {
        const int64_t t = task / n_head;
        if (t != cur) {
            rope_table(dst, (float)pos[t], cs);
            cur = t;
        }
        const float *src = (const float *)x->data + task * hd;
        float *out = (float *)dst->data + task * hd;
        dev->k->rope_rows(src, out, cs, n_rot, neox);
        memcpy(out + n_rot, src + n_rot, (size_t)(hd - n_rot) * sizeof(float));
    }
}

void cpu_rope(tq_device *dev, tq_tensor *dst) {
    op_task t = {dev, dst};
    if (dst->src[0]->ne[2] == 1)
        rope_worker(&t, 0, 1);
    else
        dev->host->parallel_for(rope_worker, &t);
}
