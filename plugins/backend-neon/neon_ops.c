/* neon_ops.c — the inner loops of the shared ops (plugins/common/
 * cpu_ops.c, cpu_attention.c) in NEON: f16 rows, rms_norm's sum of
 * squares, rope's rotation, attention's dot product and axpy.
 *
 * Results versus the ref backend: f16 rows and the rotation are
 * bit-identical (FCVTL is exact; the rotation does the ref's float
 * operations, one rounding each, -ffp-contract=off); the sum of squares is
 * formed in float as the ref does and added in double lanes instead of one
 * chain; the dot product and axpy use FMA (both in the x86 backend's
 * order, neon_internal.h). The conformance test states the bounds. */
#include "neon_internal.h"

void neon_f16_row(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
    for (; i < n; i++) dst[i] = neon_f16_to_f32(src[i]);
}

/* As the x86 backend: 8 floats at a time, squared in float; the squares of
 * lanes 0-3 and 4-7 go to two 4-lane double sums (here 2 x 2 lanes each)
 * that are added lane by lane, then (l0 + l1) + (l2 + l3); the tail in
 * order. */
double neon_sum_squares(const float *x, int64_t n) {
    float64x2_t s0a = vdupq_n_f64(0.0), s0b = s0a, s1a = s0a, s1b = s0a;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
        const float32x4_t q0 = vmulq_f32(v0, v0), q1 = vmulq_f32(v1, v1);
        s0a = vaddq_f64(s0a, vcvt_f64_f32(vget_low_f32(q0)));
        s0b = vaddq_f64(s0b, vcvt_high_f64_f32(q0));
        s1a = vaddq_f64(s1a, vcvt_f64_f32(vget_low_f32(q1)));
        s1b = vaddq_f64(s1b, vcvt_high_f64_f32(q1));
    }
    double sum = vaddvq_f64(vaddq_f64(s0a, s1a)) + vaddvq_f64(vaddq_f64(s0b, s1b));
    for (; i < n; i++) sum += (double)(x[i] * x[i]);
    return sum;
}

/* cs holds (cos, sin) pairs: vld2q splits 4 of them into a cos and a sin
 * vector, the same split vld2q makes of 4 (x0, x1) pairs in normal mode. */
void neon_rope_rows(const float *src, float *out, const float *cs, int64_t n_rot, int neox) {
    const int64_t h = n_rot / 2;
    int64_t k = 0;
    if (neox) {
        /* out[k] = x[k] c - x[k+h] s, out[k+h] = x[k] s + x[k+h] c */
        for (; k + 4 <= h; k += 4) {
            const float32x4x2_t t = vld2q_f32(cs + 2 * k);
            const float32x4_t x0 = vld1q_f32(src + k), x1 = vld1q_f32(src + k + h);
            vst1q_f32(out + k, vsubq_f32(vmulq_f32(x0, t.val[0]), vmulq_f32(x1, t.val[1])));
            vst1q_f32(out + k + h, vaddq_f32(vmulq_f32(x0, t.val[1]), vmulq_f32(x1, t.val[0])));
        }
        for (; k < h; k++) {
            const float x0 = src[k], x1 = src[k + h], c = cs[2 * k], s = cs[2 * k + 1];
            out[k] = x0 * c - x1 * s;
            out[k + h] = x0 * s + x1 * c;
        }
        return;
    }
    /* pairs (x0, x1) -> (x0 c - x1 s, x0 s + x1 c) */
    for (; k + 4 <= h; k += 4) {
        const float32x4x2_t t = vld2q_f32(cs + 2 * k), v = vld2q_f32(src + 2 * k);
        float32x4x2_t o;
        o.val[0] = vsubq_f32(vmulq_f32(v.val[0], t.val[0]), vmulq_f32(v.val[1], t.val[1]));
        o.val[1] = vaddq_f32(vmulq_f32(v.val[0], t.val[1]), vmulq_f32(v.val[1], t.val[0]));
        vst2q_f32(out + 2 * k, o);
    }
    for (; k < h; k++) {
        const float x0 = src[2 * k], x1 = src[2 * k + 1], c = cs[2 * k], s = cs[2 * k + 1];
        out[2 * k] = x0 * c - x1 * s;
        out[2 * k + 1] = x0 * s + x1 * c;
    }
}

/* One 8-lane FMA chain (n is a multiple of NEON_ATT_ALIGN = 8), summed as
 * the x86 backend's attention dot. */
float neon_dot(const float *a, const float *b, int64_t n) {
    float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < n; d += 8) {
        lo = vfmaq_f32(lo, vld1q_f32(a + d), vld1q_f32(b + d));
        hi = vfmaq_f32(hi, vld1q_f32(a + d + 4), vld1q_f32(b + d + 4));
    }
    return neon_hsum8(lo, hi);
}

void neon_axpy(float *y, float p, const float *x, int64_t n) {
    for (int64_t d = 0; d < n; d += 4) vst1q_f32(y + d, vfmaq_n_f32(vld1q_f32(y + d), vld1q_f32(x + d), p));
}

/* ---- llama.cpp's f16 accumulation (cpu_kernels.att_vacc16) ---------------- */

/* Every lane rounded to f16 by FCVTN (nearest even, as F16C on x86) and back. */
NEON_INLINE float32x4_t round_f16(float32x4_t x) { return vcvt_f32_f16(vcvt_f16_f32(x)); }

void neon_f16_round_row(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, round_f16(vld1q_f32(x + i)));
    for (; i < n; i++) y[i] = neon_f16_to_f32(neon_f32_to_f16(x[i]));
}

/* One query vector at a time, 4 dims at a time: the x86 kernel's
 * operations (multiply, fused multiply-add, each rounded to f16) per lane. */
void neon_att_vacc16(const char *v, size_t stride, const float *const *w, const float *const *ms, const uint8_t *ev,
                     int np, int64_t n_keys, int64_t n, float *const *acc) {
    for (int k = 0; k < np; k++)
        for (int64_t d = 0; d < n; d += 4) {
            float32x4_t a = vld1q_f32(acc[k] + d);
            const char *vr = v;
            for (int64_t j = 0; j < n_keys; j++, vr += stride) {
                if (ev[j] >> k & 1) a = round_f16(vmulq_n_f32(a, ms[k][j]));
                const float32x4_t vv = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)vr + d)));
                a = round_f16(vfmaq_n_f32(a, vv, w[k][j]));
            }
            vst1q_f32(acc[k] + d, a);
        }
}
