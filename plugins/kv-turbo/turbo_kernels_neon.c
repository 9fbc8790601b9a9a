/* turbo_kernels_neon.c — the NEON (armv8-a) variant of the tq kernels
 * (contract in turbo_codec.h, the shared code in turbo_kernels_neon.h),
 * compiled with -march=armv8-a and chosen at run time by
 * turbo_kernels_select on a CPU with Advanced SIMD.
 *
 * K: the decoded 16-bit centroids times the 12-bit queries with smlal /
 * smlal2 into int32 lanes (exact), one pairwise sum per row and query row;
 * V and the rest are turbo_kernels_neon.h's. */
#include "turbo_kernels_neon.h"

NX_INLINE void dec_i16(int bits, const uint8_t *codes, int32_t d, const void *ctx, int16_t *slot) {
    nx_decode16(bits, codes, d, (const nx_lut *)ctx, slot);
}

/* D(row, q g0+g) over dims [off, off + len) for g < gn: two accumulators
 * per query row (low and high halves of each 8 dims) to keep the
 * multiply-accumulate chains short. */
NX_INLINE int32x4_t dot_smlal(const int16_t *c, int32_t d, int32_t off, int32_t len, const void *qv,
                              int32_t g0, int32_t gn) {
    const int16_t *q = (const int16_t *)qv + (size_t)g0 * (size_t)d;
    if (gn == 4) {
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int32_t i = off; i < off + len; i += 8) {
            const int16x8_t cv = vld1q_s16(c + i);
            const int16x4_t cl = vget_low_s16(cv);
            const int16x8_t q0 = vld1q_s16(q + i), q1 = vld1q_s16(q + d + i);
            const int16x8_t q2 = vld1q_s16(q + 2 * d + i), q3 = vld1q_s16(q + 3 * d + i);
            a0 = vmlal_s16(a0, cl, vget_low_s16(q0));
            b0 = vmlal_high_s16(b0, cv, q0);
            a1 = vmlal_s16(a1, cl, vget_low_s16(q1));
            b1 = vmlal_high_s16(b1, cv, q1);
            a2 = vmlal_s16(a2, cl, vget_low_s16(q2));
            b2 = vmlal_high_s16(b2, cv, q2);
            a3 = vmlal_s16(a3, cl, vget_low_s16(q3));
            b3 = vmlal_high_s16(b3, cv, q3);
        }
        return vpaddq_s32(vpaddq_s32(vaddq_s32(a0, b0), vaddq_s32(a1, b1)),
                          vpaddq_s32(vaddq_s32(a2, b2), vaddq_s32(a3, b3)));
    }
    alignas(16) int32_t o[4] = {0};
    for (int32_t g = 0; g < gn; g++) {
        const int16_t *qq = q + (size_t)g * (size_t)d;
        int32x4_t a = vdupq_n_s32(0), b = a;
        for (int32_t i = off; i < off + len; i += 8) {
            const int16x8_t cv = vld1q_s16(c + i), qx = vld1q_s16(qq + i);
            a = vmlal_s16(a, vget_low_s16(cv), vget_low_s16(qx));
            b = vmlal_high_s16(b, cv, qx);
        }
        o[g] = vaddvq_s32(vaddq_s32(a, b));
    }
    return vld1q_s32(o);
}

#define K_SCORES(B)                                                                              \
    static void k_scores_##B(const uint8_t *rows, size_t stride, int32_t n, int32_t d,           \
                             const int16_t *lut16, const int16_t *q16, const float *qs,          \
                             const float *qm, int32_t G, float *sc, size_t ld, float *mx) {      \
        const nx_lut t = nx_lut_bytes(B, lut16);                                                 \
        NX_FIXED_D(d, nx_k_scores(dec_i16, dot_smlal, B, &t, q16, rows, stride, n, d_, qs, qm,  \
                                  G, sc, ld, mx));                                               \
    }
K_SCORES(2)
K_SCORES(3)
K_SCORES(4)
K_SCORES(5)
K_SCORES(6)

NX_VARIANT(neon, "neon")
