/* neon_quant.c — the activation encoders of the matmul: f32 columns to q8_0,
 * q8_1 and q8_K blocks, and f32 narrowed to f16.
 *
 * These must produce exactly the bytes of the core's scalar encoders
 * (core/src/tq_quants.c, tq_quants_k.c), which follow ggml's
 * quantize_row_*_ref:
 *  - q8_0 / q8_1: d = amax / 127, id = 1 / d, q = roundf(x * id), i.e. round
 *    half AWAY from zero: FCVTAS (vcvtaq_s32_f32) is exactly that rounding.
 *    (ggml's own NEON encoder uses vcvtnq, half to even; we keep the
 *    reference rule so ref and neon agree bit for bit.)
 *  - q8_K: iscale = -127 / (the signed element of largest magnitude, the
 *    first one on ties), q = min(127, round-half-even(iscale * x)): FCVTNS
 *    (vcvtnq_s32_f32) rounds like the core's nearest_int for every |x| it
 *    is valid for; d = 1 / iscale, bsums = sums of 16.
 * Every product is the same single float multiply as in the scalar code and
 * the reductions are max / integer sums, which do not depend on order, so
 * the results are identical. tests/test_backend_conformance.c checks it. */
#include "cpu_blocks.h"
#include "neon_internal.h"

/* Largest |x| over 4 * nv floats. */
NEON_INLINE float absmax(const float *x, int nv) {
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int k = 0; k < nv; k++) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + 4 * k)));
    return vmaxvq_f32(m);
}

/* 16 int32 lanes (each in int8 range) as 16 bytes in element order. */
NEON_INLINE int8x16_t pack16(int32x4_t q0, int32x4_t q1, int32x4_t q2, int32x4_t q3) {
    const int16x8_t a = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
    const int16x8_t b = vcombine_s16(vmovn_s32(q2), vmovn_s32(q3));
    return vcombine_s8(vmovn_s16(a), vmovn_s16(b));
}

/* One 32-element q8 block: stores the quants, returns d; *sum gets sum(q). */
NEON_INLINE float q8_block(const float *x, int8_t *qs, int *sum) {
    const float amax = absmax(x, 8);
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int32x4_t q[8];
    for (int k = 0; k < 8; k++) q[k] = vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4 * k), id));
    vst1q_s8(qs, pack16(q[0], q[1], q[2], q[3]));
    vst1q_s8(qs + 16, pack16(q[4], q[5], q[6], q[7]));
    if (sum) {
        int32x4_t s = vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3]));
        s = vaddq_s32(s, vaddq_s32(vaddq_s32(q[4], q[5]), vaddq_s32(q[6], q[7])));
        *sum = vaddvq_s32(s);
    }
    return d;
}

void neon_quantize_q8_0(const float *x, void *y, int64_t n) {
    cpu_block_q8_0 *b = y;
    for (int64_t i = 0; i < n / CPU_QK; i++, x += CPU_QK) b[i].d = neon_f32_to_f16(q8_block(x, b[i].qs, NULL));
}

void neon_quantize_q8_1(const float *x, void *y, int64_t n) {
    cpu_block_q8_1 *b = y;
    for (int64_t i = 0; i < n / CPU_QK; i++, x += CPU_QK) {
        int sum;
        const float d = q8_block(x, b[i].qs, &sum);
        b[i].d = neon_f32_to_f16(d);
        b[i].s = neon_f32_to_f16((float)sum * d);
    }
}

void neon_quantize_q8_K(const float *x, void *y, int64_t n) {
    cpu_block_q8_K *b = y;
    for (int64_t i = 0; i < n / CPU_QK_K; i++, x += CPU_QK_K) {
        const float amax = absmax(x, 64);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        /* The first element whose magnitude is amax, with its sign. */
        float max = amax;
        const float32x4_t vamax = vdupq_n_f32(amax);
        for (int k = 0; k < 64; k++) {
            if (vmaxvq_u32(vceqq_f32(vabsq_f32(vld1q_f32(x + 4 * k)), vamax))) {
                int l = 0;
                while (x[4 * k + l] != amax && x[4 * k + l] != -amax) l++;
                max = x[4 * k + l];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const int32x4_t top = vdupq_n_s32(127);
        for (int g = 0; g < 16; g++) { /* one bsums group of 16 */
            int32x4_t q[4];
            for (int k = 0; k < 4; k++)
                q[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 4 * k), iscale)), top);
            vst1q_s8(b[i].qs + 16 * g, pack16(q[0], q[1], q[2], q[3]));
            b[i].bsums[g] = (int16_t)vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])));
        }
        b[i].d = 1.0f / iscale;
    }
}

void neon_encode_f16(const float *x, void *y, int64_t n) {
    uint16_t *out = y;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(out + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) out[i] = neon_f32_to_f16(x[i]);
}
