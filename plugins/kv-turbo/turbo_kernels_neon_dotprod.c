/* turbo_kernels_neon_dotprod.c — the NEON variant with the Armv8.2 dot
 * product instructions (contract in turbo_codec.h, the shared code in
 * turbo_kernels_neon.h), compiled with -march=armv8.2-a+dotprod and chosen
 * at run time by turbo_kernels_select on a CPU with them.
 *
 * K: sdot multiplies 8-bit values, four products per int32 lane, so both
 * 16-bit factors are split into signed bytes, x = 128 * (x >> 7) + (x & 127)
 * (high part: queries -16..15, centroids -8..7; low part 0..127), and
 *   D = 2^14 * sum qh*ch + 2^7 * (sum qh*cl + sum ql*ch) + sum ql*cl,
 * four sdot per 16 products (smlal: four per 8 products), and the
 * centroid halves come straight from two byte table lookups. Every partial
 * sum is an exact int32 (at d = 512: |hh| <= 2^16, |cross| < 2^21,
 * ll < 2^23) and the combination wraps mod 2^32 to D, which fits int32
 * (turbo_codec.h), so the dots equal the reference's. V and the float
 * steps are turbo_kernels_neon.h's, shared with the armv8-a variant. */
#include "turbo_kernels_neon.h"

/* Query rows split at a time (2 x 8 KiB of stack at d = 512). */
#define QCHUNK 16

typedef struct dp_lut {
    int8x16x3_t h, l; /* lut16[0..47] >> 7 and & 127 (zero past the table) */
} dp_lut;

typedef struct dp_query {
    const int8_t *h, *l; /* the same split of the query rows, d bytes per row */
} dp_query;

/* x >> 7 and x & 127 of 8 int16 values, narrowed to bytes. */
NX_INLINE void dp_split8(int16x8_t x, int8_t *h, int8_t *l) {
    vst1_s8(h, vmovn_s16(vshrq_n_s16(x, 7)));
    vst1_s8(l, vmovn_s16(vandq_s16(x, vdupq_n_s16(127))));
}

/* Slot layout: the high bytes of the row's centroids, then the low bytes
 * at byte NX_CBUF. */
NX_INLINE void dec_i8(int bits, const uint8_t *codes, int32_t d, const void *ctx, int16_t *slot) {
    const dp_lut *t = (const dp_lut *)ctx;
    int8_t *h = (int8_t *)(void *)slot, *l = h + NX_CBUF;
    if (bits >= TURBO_KERN_SPLIT) { /* 40 entries: three-register lookups */
        alignas(16) uint8_t idx[NX_CBUF];
        nx_split_idx(codes, d, idx);
        for (int32_t i = 0; i < d; i += 16) {
            const uint8x16_t v = vld1q_u8(idx + i);
            vst1q_s8(h + i, vqtbl3q_s8(t->h, v));
            vst1q_s8(l + i, vqtbl3q_s8(t->l, v));
        }
        return;
    }
    for (int32_t i = 0; i < d; i += 64) {
        uint8x16_t v[4];
        nx_idx64(bits, codes, d, i, v);
        for (int m = 0; m < 4; m++) {
            vst1q_s8(h + i + 16 * m, vqtbl1q_s8(t->h.val[0], v[m]));
            vst1q_s8(l + i + 16 * m, vqtbl1q_s8(t->l.val[0], v[m]));
        }
    }
}

/* D = (hh << 14) + (x << 7) + ll per lane, wrapping. */
NX_INLINE int32x4_t dp_join(int32x4_t hh, int32x4_t x, int32x4_t ll) {
    return vaddq_s32(vshlq_n_s32(hh, 14), vaddq_s32(vshlq_n_s32(x, 7), ll));
}

NX_INLINE int32x4_t dot_sdot(const int16_t *slot, int32_t d, int32_t off, int32_t len, const void *qv,
                             int32_t g0, int32_t gn) {
    const int8_t *ch = (const int8_t *)(const void *)slot, *cl = ch + NX_CBUF;
    const dp_query *qp = (const dp_query *)qv;
    const int8_t *qh = qp->h + (size_t)g0 * (size_t)d, *ql = qp->l + (size_t)g0 * (size_t)d;
    if (gn == 4) {
        int32x4_t h[4], x[4], l[4];
        for (int g = 0; g < 4; g++) h[g] = x[g] = l[g] = vdupq_n_s32(0);
        for (int32_t i = off; i < off + len; i += 16) {
            const int8x16_t c_h = vld1q_s8(ch + i), c_l = vld1q_s8(cl + i);
            for (int g = 0; g < 4; g++) {
                const int8x16_t q_h = vld1q_s8(qh + (size_t)g * (size_t)d + i);
                const int8x16_t q_l = vld1q_s8(ql + (size_t)g * (size_t)d + i);
                h[g] = vdotq_s32(h[g], q_h, c_h);
                x[g] = vdotq_s32(vdotq_s32(x[g], q_h, c_l), q_l, c_h);
                l[g] = vdotq_s32(l[g], q_l, c_l);
            }
        }
        return vpaddq_s32(vpaddq_s32(dp_join(h[0], x[0], l[0]), dp_join(h[1], x[1], l[1])),
                          vpaddq_s32(dp_join(h[2], x[2], l[2]), dp_join(h[3], x[3], l[3])));
    }
    alignas(16) int32_t o[4] = {0};
    for (int32_t g = 0; g < gn; g++) {
        const int8_t *gh = qh + (size_t)g * (size_t)d, *gl = ql + (size_t)g * (size_t)d;
        int32x4_t h = vdupq_n_s32(0), x = h, l = h;
        for (int32_t i = off; i < off + len; i += 16) {
            const int8x16_t c_h = vld1q_s8(ch + i), c_l = vld1q_s8(cl + i);
            const int8x16_t q_h = vld1q_s8(gh + i), q_l = vld1q_s8(gl + i);
            h = vdotq_s32(h, q_h, c_h);
            x = vdotq_s32(vdotq_s32(x, q_h, c_l), q_l, c_h);
            l = vdotq_s32(l, q_l, c_l);
        }
        o[g] = vaddvq_s32(dp_join(h, x, l));
    }
    return vld1q_s32(o);
}

/* k_scores per chunk of QCHUNK query rows: split them, then the driver. */
NX_INLINE void dp_k_scores(int bits, const uint8_t *rows, size_t stride, int32_t n, int32_t d,
                           const int16_t *lut16, const int16_t *q16, const float *qs,
                           const float *qm, int32_t G, float *sc, size_t ld, float *mx) {
    alignas(16) int8_t lh[48], ll[48], qh[QCHUNK * TURBO_MAX_DIM], ql[QCHUNK * TURBO_MAX_DIM];
    alignas(16) int16_t pad[48] = {0};
    memcpy(pad, lut16, (size_t)(bits >= TURBO_KERN_SPLIT ? TURBO_LUT_N : 16) * sizeof *pad);
    for (int k = 0; k < 48; k += 8) dp_split8(vld1q_s16(pad + k), lh + k, ll + k);
    dp_lut t;
    for (int k = 0; k < 3; k++) {
        t.h.val[k] = vld1q_s8(lh + 16 * k);
        t.l.val[k] = vld1q_s8(ll + 16 * k);
    }
    const dp_query qv = {qh, ql};
    for (int32_t g0 = 0; g0 < G; g0 += QCHUNK) {
        const int32_t gc = G - g0 < QCHUNK ? G - g0 : QCHUNK;
        const int16_t *q = q16 + (size_t)g0 * (size_t)d;
        for (int32_t i = 0; i < gc * d; i += 8) dp_split8(vld1q_s16(q + i), qh + i, ql + i);
        nx_k_scores(dec_i8, dot_sdot, bits, &t, &qv, rows, stride, n, d, qs + g0, qm + g0, gc,
                    sc + (size_t)g0 * ld, ld, mx + g0);
    }
}

#define K_SCORES(B)                                                                              \
    static void k_scores_##B(const uint8_t *rows, size_t stride, int32_t n, int32_t d,           \
                             const int16_t *lut16, const int16_t *q16, const float *qs,          \
                             const float *qm, int32_t G, float *sc, size_t ld, float *mx) {      \
        NX_FIXED_D(d, dp_k_scores(B, rows, stride, n, d_, lut16, q16, qs, qm, G, sc, ld, mx));   \
    }
K_SCORES(2)
K_SCORES(3)
K_SCORES(4)
K_SCORES(5)
K_SCORES(6)

NX_VARIANT(neon_dotprod, "neon-dotprod")
