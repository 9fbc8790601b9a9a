/* tq_quants.c — the plain formats (f32, f16, bf16) and the 32-element block
 * formats (q4_0 .. q8_1): decoders, reference encoders and dot products, plus
 * the per-type traits table. The K-quants live in tq_quants_k.c.
 *
 * Every function here reproduces ggml's scalar code operation for operation
 * (ggml-quants.c dequantize_row_* / quantize_row_*_ref, ggml-cpu/quants.c
 * *_generic), including the order of float operations: the point of the ref
 * backend is to be a bit-faithful baseline, so "mathematically equal" is not
 * good enough — (a*b)*c and a*(b*c) differ in the last bit. */
#include "tq_quants.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "tq_half.h"
#include "tq_quants_k.h"

/* ggml's double accumulator for the float dot products (ggml_float). */
typedef double tq_float_acc;

static int imin(int a, int b) { return a < b ? a : b; }

/* The 32 high bits of a q5 block, bit i belonging to element i. Read byte by
 * byte so it does not depend on the host's endianness (ggml memcpy's them on
 * little-endian machines, which is what this computes). */
static uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void store_qh(uint8_t qh[4], uint32_t v) {
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(v >> (8 * k));
}

/* ------------------------------------------------------------------------ */
/* f32, f16, bf16                                                            */

void tq_dequantize_row_f32(const void *x, float *y, int64_t n) {
    memmove(y, x, (size_t)n * sizeof(float));
}

void tq_quantize_row_f32(const float *x, void *y, int64_t n) {
    memmove(y, x, (size_t)n * sizeof(float));
}

void tq_dequantize_row_f16(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    for (int64_t i = 0; i < n; i++) y[i] = tq_f16_to_f32(h[i]);
}

void tq_quantize_row_f16(const float *x, void *y, int64_t n) {
    uint16_t *h = y;
    for (int64_t i = 0; i < n; i++) h[i] = tq_f32_to_f16(x[i]);
}

void tq_dequantize_row_bf16(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    for (int64_t i = 0; i < n; i++) y[i] = tq_bf16_to_f32(h[i]);
}

void tq_quantize_row_bf16(const float *x, void *y, int64_t n) {
    uint16_t *h = y;
    for (int64_t i = 0; i < n; i++) h[i] = tq_f32_to_bf16(x[i]);
}

/* ggml_vec_dot_f32/f16/bf16 without SIMD: each product is formed in float,
 * then accumulated in double. */
static float vec_dot_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    tq_float_acc sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (tq_float_acc)(x[i] * y[i]);
    return (float)sum;
}

static float vec_dot_f16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w, *y = a;
    tq_float_acc sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (tq_float_acc)(tq_f16_to_f32(x[i]) * tq_f16_to_f32(y[i]));
    return (float)sum;
}

static float vec_dot_bf16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w, *y = a;
    tq_float_acc sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (tq_float_acc)(tq_bf16_to_f32(x[i]) * tq_bf16_to_f32(y[i]));
    return (float)sum;
}

/* ------------------------------------------------------------------------ */
/* Decoders of the 32-element formats. In every one, byte j of qs holds
 * element j in its low nibble and element j + 16 in its high nibble.        */

void tq_dequantize_row_q4_0(const void *x, float *y, int64_t n) {
    const tq_block_q4_0 *b = x;
    for (int64_t i = 0; i < n / TQ_QK4_0; i++, y += TQ_QK4_0) {
        const float d = tq_f16_to_f32(b[i].d);
        for (int j = 0; j < TQ_QK4_0 / 2; j++) {
            y[j] = (float)((b[i].qs[j] & 0x0F) - 8) * d;
            y[j + TQ_QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void tq_dequantize_row_q4_1(const void *x, float *y, int64_t n) {
    const tq_block_q4_1 *b = x;
    for (int64_t i = 0; i < n / TQ_QK4_1; i++, y += TQ_QK4_1) {
        const float d = tq_f16_to_f32(b[i].d), m = tq_f16_to_f32(b[i].m);
        for (int j = 0; j < TQ_QK4_1 / 2; j++) {
            y[j] = (float)(b[i].qs[j] & 0x0F) * d + m;
            y[j + TQ_QK4_1 / 2] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

/* The 5-bit value of element j (0..15) and j + 16 of a q5 block. */
static void q5_pair(const uint8_t *qs, uint32_t qh, int j, int *v0, int *v1) {
    *v0 = (qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
    *v1 = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
}

void tq_dequantize_row_q5_0(const void *x, float *y, int64_t n) {
    const tq_block_q5_0 *b = x;
    for (int64_t i = 0; i < n / TQ_QK5_0; i++, y += TQ_QK5_0) {
        const float d = tq_f16_to_f32(b[i].d);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < TQ_QK5_0 / 2; j++) {
            int v0, v1;
            q5_pair(b[i].qs, qh, j, &v0, &v1);
            y[j] = (float)(v0 - 16) * d;
            y[j + TQ_QK5_0 / 2] = (float)(v1 - 16) * d;
        }
    }
}

void tq_dequantize_row_q5_1(const void *x, float *y, int64_t n) {
    const tq_block_q5_1 *b = x;
    for (int64_t i = 0; i < n / TQ_QK5_1; i++, y += TQ_QK5_1) {
        const float d = tq_f16_to_f32(b[i].d), m = tq_f16_to_f32(b[i].m);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < TQ_QK5_1 / 2; j++) {
            int v0, v1;
            q5_pair(b[i].qs, qh, j, &v0, &v1);
            y[j] = (float)v0 * d + m;
            y[j + TQ_QK5_1 / 2] = (float)v1 * d + m;
        }
    }
}

void tq_dequantize_row_q8_0(const void *x, float *y, int64_t n) {
    const tq_block_q8_0 *b = x;
    for (int64_t i = 0; i < n / TQ_QK8_0; i++, y += TQ_QK8_0) {
        const float d = tq_f16_to_f32(b[i].d);
        for (int j = 0; j < TQ_QK8_0; j++) y[j] = (float)b[i].qs[j] * d;
    }
}

/* ggml has no q8_1 decoder (it is an activation format); this one is what
 * the format means, d * q, with s ignored. */
void tq_dequantize_row_q8_1(const void *x, float *y, int64_t n) {
    const tq_block_q8_1 *b = x;
    for (int64_t i = 0; i < n / TQ_QK8_1; i++, y += TQ_QK8_1) {
        const float d = tq_f16_to_f32(b[i].d);
        for (int j = 0; j < TQ_QK8_1; j++) y[j] = (float)b[i].qs[j] * d;
    }
}

/* ------------------------------------------------------------------------ */
/* Reference encoders of the 32-element formats                              */

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min, float *max) {
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

/* q4_0 and q5_0 scale so that the signed extreme maps to -8 / -16 exactly,
 * using the full negative half of the range. The "+ 8.5f then truncate" is
 * ggml's rounding (half up), kept as is. */
void tq_quantize_row_q4_0(const float *x, void *y, int64_t n) {
    tq_block_q4_0 *b = y;
    for (int64_t i = 0; i < n / TQ_QK4_0; i++, x += TQ_QK4_0) {
        const float d = signed_absmax(x, TQ_QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = tq_f32_to_f16(d);
        for (int j = 0; j < TQ_QK4_0 / 2; j++) {
            const int q0 = imin(15, (int8_t)(x[j] * id + 8.5f));
            const int q1 = imin(15, (int8_t)(x[j + TQ_QK4_0 / 2] * id + 8.5f));
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void tq_quantize_row_q4_1(const float *x, void *y, int64_t n) {
    tq_block_q4_1 *b = y;
    for (int64_t i = 0; i < n / TQ_QK4_1; i++, x += TQ_QK4_1) {
        float min, max;
        min_max(x, TQ_QK4_1, &min, &max);
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = tq_f32_to_f16(d);
        b[i].m = tq_f32_to_f16(min);
        for (int j = 0; j < TQ_QK4_1 / 2; j++) {
            const int q0 = imin(15, (int8_t)((x[j] - min) * id + 0.5f));
            const int q1 = imin(15, (int8_t)((x[j + TQ_QK4_1 / 2] - min) * id + 0.5f));
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Packs 32 five-bit values: low nibbles like q4, bit 4 of element j into bit
 * j of qh. */
static void q5_pack(const int q[32], uint8_t qs[16], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | (q[j + 16] & 0x0F) << 4);
        h |= (uint32_t)((q[j] & 0x10) >> 4) << j;
        h |= (uint32_t)((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    store_qh(qh, h);
}

void tq_quantize_row_q5_0(const float *x, void *y, int64_t n) {
    tq_block_q5_0 *b = y;
    for (int64_t i = 0; i < n / TQ_QK5_0; i++, x += TQ_QK5_0) {
        const float d = signed_absmax(x, TQ_QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int q[TQ_QK5_0];
        for (int j = 0; j < TQ_QK5_0; j++) q[j] = imin(31, (int8_t)(x[j] * id + 16.5f));
        b[i].d = tq_f32_to_f16(d);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

void tq_quantize_row_q5_1(const float *x, void *y, int64_t n) {
    tq_block_q5_1 *b = y;
    for (int64_t i = 0; i < n / TQ_QK5_1; i++, x += TQ_QK5_1) {
        float min, max;
        min_max(x, TQ_QK5_1, &min, &max);
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int q[TQ_QK5_1];
        /* ggml casts to uint8_t here with no clamp: (max-min)*id rounds to at
         * most 31.5 in float, so the value stays in 0..31 for finite input. */
        for (int j = 0; j < TQ_QK5_1; j++) q[j] = (uint8_t)((x[j] - min) * id + 0.5f);
        b[i].d = tq_f32_to_f16(d);
        b[i].m = tq_f32_to_f16(min);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

/* q8_0/q8_1: symmetric, d = amax/127, roundf (half away from zero). */
static float q8_scale(const float *x, int n, float *id) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / ((1 << 7) - 1);
    *id = d != 0.0f ? 1.0f / d : 0.0f;
    return d;
}

void tq_quantize_row_q8_0(const float *x, void *y, int64_t n) {
    tq_block_q8_0 *b = y;
    for (int64_t i = 0; i < n / TQ_QK8_0; i++, x += TQ_QK8_0) {
        float id;
        const float d = q8_scale(x, TQ_QK8_0, &id);
        b[i].d = tq_f32_to_f16(d);
        for (int j = 0; j < TQ_QK8_0; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* q8_1 also stores s = d * sum(q), so q4_1/q5_1 dots can apply the weight's
 * offset m without touching the quants again. */
void tq_quantize_row_q8_1(const float *x, void *y, int64_t n) {
    tq_block_q8_1 *b = y;
    for (int64_t i = 0; i < n / TQ_QK8_1; i++, x += TQ_QK8_1) {
        float id;
        const float d = q8_scale(x, TQ_QK8_1, &id);
        int sum = 0;
        for (int j = 0; j < TQ_QK8_1; j++) {
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += b[i].qs[j];
        }
        b[i].d = tq_f32_to_f16(d);
        b[i].s = tq_f32_to_f16((float)sum * d);
    }
}

/* ------------------------------------------------------------------------ */
/* Dot products of the 32-element formats (ggml-cpu/quants.c *_generic):
 * integer sums per block, one float multiply-add per block.                 */

static float vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a) {
    const tq_block_q4_0 *x = w;
    const tq_block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TQ_QK4_0; i++) {
        int s0 = 0, s1 = 0;
        for (int j = 0; j < TQ_QK4_0 / 2; j++) {
            s0 += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            s1 += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + TQ_QK4_0 / 2];
        }
        sum += (float)(s0 + s1) * tq_f16_to_f32(x[i].d) * tq_f16_to_f32(y[i].d);
    }
    return sum;
}

static float vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a) {
    const tq_block_q4_1 *x = w;
    const tq_block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TQ_QK4_1; i++) {
        int s0 = 0, s1 = 0;
        for (int j = 0; j < TQ_QK4_1 / 2; j++) {
            s0 += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            s1 += (x[i].qs[j] >> 4) * y[i].qs[j + TQ_QK4_1 / 2];
        }
        sum += (tq_f16_to_f32(x[i].d) * tq_f16_to_f32(y[i].d)) * (float)(s0 + s1) +
               tq_f16_to_f32(x[i].m) * tq_f16_to_f32(y[i].s);
    }
    return sum;
}

static float vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a) {
    const tq_block_q5_0 *x = w;
    const tq_block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TQ_QK5_0; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int s0 = 0, s1 = 0;
        for (int j = 0; j < TQ_QK5_0 / 2; j++) {
            int v0, v1;
            q5_pair(x[i].qs, qh, j, &v0, &v1);
            s0 += (v0 - 16) * y[i].qs[j];
            s1 += (v1 - 16) * y[i].qs[j + TQ_QK5_0 / 2];
        }
        sum += (tq_f16_to_f32(x[i].d) * tq_f16_to_f32(y[i].d)) * (float)(s0 + s1);
    }
    return sum;
}

static float vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a) {
    const tq_block_q5_1 *x = w;
    const tq_block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TQ_QK5_1; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int s0 = 0, s1 = 0;
        for (int j = 0; j < TQ_QK5_1 / 2; j++) {
            int v0, v1;
            q5_pair(x[i].qs, qh, j, &v0, &v1);
            s0 += v0 * y[i].qs[j];
            s1 += v1 * y[i].qs[j + TQ_QK5_1 / 2];
        }
        sum += (tq_f16_to_f32(x[i].d) * tq_f16_to_f32(y[i].d)) * (float)(s0 + s1) +
               tq_f16_to_f32(x[i].m) * tq_f16_to_f32(y[i].s);
    }
    return sum;
}

static float vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a) {
    const tq_block_q8_0 *x = w;
    const tq_block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TQ_QK8_0; i++) {
        int s = 0;
        for (int j = 0; j < TQ_QK8_0; j++) s += x[i].qs[j] * y[i].qs[j];
        sum += (float)s * (tq_f16_to_f32(x[i].d) * tq_f16_to_f32(y[i].d));
    }
    return sum;
}

/* ------------------------------------------------------------------------ */
/* Traits                                                                    */

#define TRAITS(w, act, enc, dot) [w] = {act, enc, dot}

/* Weight type -> (activation format, its encoder, the dot product), as
 * ggml's type_traits_cpu[].vec_dot_type. Types absent here (q8_1, q8_K, the
 * integer types) are never multiplied as weights. */
static const tq_quant_traits quant_traits[TQ_TYPE_BF16 + 1] = {
    TRAITS(TQ_TYPE_F32, TQ_TYPE_F32, tq_quantize_row_f32, vec_dot_f32),
    TRAITS(TQ_TYPE_F16, TQ_TYPE_F16, tq_quantize_row_f16, vec_dot_f16),
    TRAITS(TQ_TYPE_BF16, TQ_TYPE_BF16, tq_quantize_row_bf16, vec_dot_bf16),
    TRAITS(TQ_TYPE_Q4_0, TQ_TYPE_Q8_0, tq_quantize_row_q8_0, vec_dot_q4_0_q8_0),
    TRAITS(TQ_TYPE_Q4_1, TQ_TYPE_Q8_1, tq_quantize_row_q8_1, vec_dot_q4_1_q8_1),
    TRAITS(TQ_TYPE_Q5_0, TQ_TYPE_Q8_0, tq_quantize_row_q8_0, vec_dot_q5_0_q8_0),
    TRAITS(TQ_TYPE_Q5_1, TQ_TYPE_Q8_1, tq_quantize_row_q8_1, vec_dot_q5_1_q8_1),
    TRAITS(TQ_TYPE_Q8_0, TQ_TYPE_Q8_0, tq_quantize_row_q8_0, vec_dot_q8_0_q8_0),
    TRAITS(TQ_TYPE_Q2_K, TQ_TYPE_Q8_K, tq_quantize_row_q8_K, tq__vec_dot_q2_K_q8_K),
    TRAITS(TQ_TYPE_Q3_K, TQ_TYPE_Q8_K, tq_quantize_row_q8_K, tq__vec_dot_q3_K_q8_K),
    TRAITS(TQ_TYPE_Q4_K, TQ_TYPE_Q8_K, tq_quantize_row_q8_K, tq__vec_dot_q4_K_q8_K),
    TRAITS(TQ_TYPE_Q5_K, TQ_TYPE_Q8_K, tq_quantize_row_q8_K, tq__vec_dot_q5_K_q8_K),
    TRAITS(TQ_TYPE_Q6_K, TQ_TYPE_Q8_K, tq_quantize_row_q8_K, tq__vec_dot_q6_K_q8_K),
};

#undef TRAITS

const tq_quant_traits *tq_quant_traits_get(tq_type type) {
    if (type < 0 || type > TQ_TYPE_BF16 || quant_traits[type].vec_dot == NULL) return NULL;
    return &quant_traits[type];
}
