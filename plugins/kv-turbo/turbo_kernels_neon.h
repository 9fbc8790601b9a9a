/* turbo_kernels_neon.h — NEON building blocks of the aarch64 kernel
 * variants (turbo_kernels_neon.c, turbo_kernels_neon_dotprod.c; contract
 * in turbo_codec.h). Include only from a file compiled for AArch64 with
 * -ffp-contract=off.
 *
 * Decoding: 64 dims of codes at a time become four vectors of 16 code
 * indices in natural dimension order (nibble or 2-bit field split, then
 * byte/halfword zips, which on NEON work across the whole register); tq3's
 * bit 2 is spread from its plane by a table lookup and a bit test. Lookups
 * of the 16-entry tables (tbl) then give the centroids: the low and high
 * bytes of lut16 zipped into int16 here, or the dotprod variant's own
 * int8 halves. Split rows (turbo_codec.h) are decoded to their 40-entry
 * indices first (the 5-bit half: nibbles with bit 4 spread from its plane
 * as tq3's bit 2; the 3-bit half: tq3's decoder, + 32) and looked up in
 * 48-byte tables (tbl with three registers).
 *
 * Shared table entries (softmax_w, exp_sum, f16_dot, f16_acc, v_acc) are
 * here; the K dot products are the variant's own.
 *
 * Everything that must match the scalar reference bit for bit uses the
 * same IEEE operations in the same order: the intrinsics used are single
 * rounded operations, the running maxima are compare-and-select (the
 * reference's `if (v > m) m = v`, also for NaN and signed zeros), and
 * vfmaq_f32 (fused) appears only in f16_dot and f16_acc, whose contract is
 * a fused multiply-add (fmaf in the reference). */
#ifndef TURBO_KERNELS_NEON_H
#define TURBO_KERNELS_NEON_H

#include <arm_neon.h>
#include <math.h>
#include <stdalign.h>
#include <string.h>

#include "turbo_codec.h"
#include "turbo_project.h" /* the generic basis_unproject */
#include "turbo_rotation.h" /* TURBO_MAX_DIM */

/* Forced inlining: decoders and dot functions reach the drivers as
 * constant function pointers, and only full inlining keeps the lookup
 * tables in registers across a row. */
#if defined(__GNUC__)
#define NX_INLINE static inline __attribute__((always_inline))
#else
#define NX_INLINE static inline
#endif
/* Calls f with d as a constant for the common head dims, so the inlined
 * loops over d unroll completely. */
#define NX_FIXED_D(d, f)                                                                         \
    do {                                                                                         \
        if ((d) == 128) { const int32_t d_ = 128; f; }                                           \
        else if ((d) == 64) { const int32_t d_ = 64; f; }                                        \
        else { const int32_t d_ = (d); f; }                                                      \
    } while (0)

/* Decoders write up to round_up(d, 64) values. */
#define NX_CBUF (TURBO_MAX_DIM + 64)
/* Rows decoded ahead of the K dot products. */
#define NX_KROWS 4

NX_INLINE float nx_row_scale(const uint8_t *row) {
    uint16_t h;
    memcpy(&h, row, 2);
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* ---- code indices ---------------------------------------------------------------- */

/* tq4: 32 code bytes -> the indices of dims 0-15, 16-31, 32-47, 48-63. */
NX_INLINE void nx_tq4_idx64(const uint8_t *codes, uint8x16_t *v) {
    const uint8x16_t m4 = vdupq_n_u8(15);
    for (int h = 0; h < 2; h++) {
        const uint8x16_t b = vld1q_u8(codes + 16 * h);
        const uint8x16_t lo = vandq_u8(b, m4), hi = vshrq_n_u8(b, 4);
        v[2 * h] = vzip1q_u8(lo, hi);
        v[2 * h + 1] = vzip2q_u8(lo, hi);
    }
}

/* v[m] (the indices of dims 16m .. 16m + 15) |= val where the dim's bit of
 * the 8 plane bytes is set (dim 16m + r: bit r % 8 of byte 2m + r / 8). */
NX_INLINE void nx_or_plane(uint8x16_t *v, const uint8_t *plane, uint8_t val) {
    static const uint8_t bit_b[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    static const uint8_t pat_b[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    const uint8x16_t hb = vcombine_u8(vld1_u8(plane), vdup_n_u8(0));
    const uint8x16_t bit = vld1q_u8(bit_b), set = vdupq_n_u8(val);
    uint8x16_t pat = vld1q_u8(pat_b);
    for (int m = 0; m < 4; m++) {
        const uint8x16_t x = vqtbl1q_u8(hb, pat);
        v[m] = vorrq_u8(v[m], vandq_u8(vtstq_u8(x, bit), set));
        pat = vaddq_u8(pat, vdupq_n_u8(2));
    }
}

/* tq2 (hi == NULL) or tq3: 16 bytes of the 2-bit plane and 8 bytes of the
 * 1-bit plane -> the indices of dims 0-15, 16-31, 32-47, 48-63. Zipping the
 * four 2-bit fields (field r of byte k is dim 4k + r) by bytes, then by
 * halfwords, gives natural order. */
NX_INLINE void nx_tq23_idx64(const uint8_t *codes, const uint8_t *hi, uint8x16_t *v) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    const uint8x16_t b = vld1q_u8(codes);
    const uint8x16_t p0 = vandq_u8(b, m3), p1 = vandq_u8(vshrq_n_u8(b, 2), m3);
    const uint8x16_t p2 = vandq_u8(vshrq_n_u8(b, 4), m3), p3 = vshrq_n_u8(b, 6);
    const uint16x8_t a_lo = vreinterpretq_u16_u8(vzip1q_u8(p0, p1));
    const uint16x8_t a_hi = vreinterpretq_u16_u8(vzip2q_u8(p0, p1));
    const uint16x8_t b_lo = vreinterpretq_u16_u8(vzip1q_u8(p2, p3));
    const uint16x8_t b_hi = vreinterpretq_u16_u8(vzip2q_u8(p2, p3));
    v[0] = vreinterpretq_u8_u16(vzip1q_u16(a_lo, b_lo));
    v[1] = vreinterpretq_u8_u16(vzip2q_u16(a_lo, b_lo));
    v[2] = vreinterpretq_u8_u16(vzip1q_u16(a_hi, b_hi));
    v[3] = vreinterpretq_u8_u16(vzip2q_u16(a_hi, b_hi));
    if (hi) nx_or_plane(v, hi, 4);
}

/* The indices of dims i..i+63 (i a multiple of 64) of a row's codes; a
 * last, partial block is read from a zero-padded copy, never past the row. */
NX_INLINE void nx_idx64(int bits, const uint8_t *codes, int32_t d, int32_t i, uint8x16_t *v) {
    if (i + 64 <= d) {
        if (bits == 4) nx_tq4_idx64(codes + i / 2, v);
        else nx_tq23_idx64(codes + i / 4, bits == 3 ? codes + d / 4 + i / 8 : NULL, v);
        return;
    }
    alignas(16) uint8_t tail[32] = {0}, tail1[8] = {0};
    if (bits == 4) {
        memcpy(tail, codes + i / 2, (size_t)(d - i) / 2);
        nx_tq4_idx64(tail, v);
        return;
    }
    memcpy(tail, codes + i / 4, (size_t)(d - i) / 4);
    if (bits == 3) memcpy(tail1, codes + d / 4 + i / 8, (size_t)(d - i) / 8);
    nx_tq23_idx64(tail, bits == 3 ? tail1 : NULL, v);
}

/* Split rows (kernel ids TURBO_KERN_SPLIT and _SPLIT2, codes as
 * turbo_unpack_codes reads them): the indices of the d dims into idx[0 ..
 * d) (0..31 for the 5-bit half, 32..39 for the 3-bit one); writes up to
 * idx[d + 47]. h = d / 2 is a multiple of 16; a last, partial block of the
 * 5-bit half is read from a zero-padded copy, never past the row. */
NX_INLINE void nx_split_idx(const uint8_t *codes, int32_t d, uint8_t *idx) {
    const int32_t h = d / 2;
    const uint8_t *b4 = codes + h / 2, *lo = b4 + h / 8;
    for (int32_t i = 0; i < h; i += 64) {
        uint8x16_t v[4];
        alignas(16) uint8_t nib[32] = {0}, plane[8] = {0};
        const uint8_t *pn = codes + i / 2, *pb = b4 + i / 8;
        if (i + 64 > h) {
            memcpy(nib, pn, (size_t)(h - i) / 2);
            memcpy(plane, pb, (size_t)(h - i) / 8);
            pn = nib;
            pb = plane;
        }
        nx_tq4_idx64(pn, v);
        nx_or_plane(v, pb, 16);
        for (int m = 0; m < 4; m++) vst1q_u8(idx + i + 16 * m, v[m]);
    }
    for (int32_t i = 0; i < h; i += 64) { /* overwrites what the 5-bit half wrote past h */
        uint8x16_t v[4];
        nx_idx64(3, lo, h, i, v);
        for (int m = 0; m < 4; m++) vst1q_u8(idx + h + i + 16 * m, vaddq_u8(v[m], vdupq_n_u8(32)));
    }
}

/* ---- int16 centroids ----------------------------------------------------------- */

typedef struct nx_lut {
    uint8x16x3_t lo, hi; /* low and high bytes of lut16[0..47] (zero past the table) */
} nx_lut;

/* The tables of kernel id bits: lut16 holds 16 entries, TURBO_LUT_N for split rows. */
NX_INLINE nx_lut nx_lut_bytes(int bits, const int16_t *lut16) {
    alignas(16) int16_t pad[48] = {0};
    memcpy(pad, lut16, (size_t)(bits >= TURBO_KERN_SPLIT ? TURBO_LUT_N : 16) * sizeof *pad);
    nx_lut t;
    for (int k = 0; k < 3; k++) { /* little endian: the bytes alternate low, high */
        const uint8x16x2_t b = vld2q_u8((const uint8_t *)(const void *)(pad + 16 * k));
        t.lo.val[k] = b.val[0];
        t.hi.val[k] = b.val[1];
    }
    return t;
}

/* 16 indices -> their int16 centroids at c. */
NX_INLINE void nx_lookup16(int bits, uint8x16_t v, const nx_lut *t, int16_t *c) {
    uint8x16_t l, h;
    if (bits >= TURBO_KERN_SPLIT) {
        l = vqtbl3q_u8(t->lo, v);
        h = vqtbl3q_u8(t->hi, v);
    } else {
        l = vqtbl1q_u8(t->lo.val[0], v);
        h = vqtbl1q_u8(t->hi.val[0], v);
    }
    vst1q_s16(c, vreinterpretq_s16_u8(vzip1q_u8(l, h)));
    vst1q_s16(c + 8, vreinterpretq_s16_u8(vzip2q_u8(l, h)));
}

/* A row's codes -> its lut16 centroids c[0 .. round_up(d, 64)). */
NX_INLINE void nx_decode16(int bits, const uint8_t *codes, int32_t d, const nx_lut *t, int16_t *c) {
    if (bits >= TURBO_KERN_SPLIT) {
        alignas(16) uint8_t idx[NX_CBUF];
        nx_split_idx(codes, d, idx);
        for (int32_t i = 0; i < d; i += 16) nx_lookup16(bits, vld1q_u8(idx + i), t, c + i);
        return;
    }
    for (int32_t i = 0; i < d; i += 64) {
        uint8x16_t v[4];
        nx_idx64(bits, codes, d, i, v);
        for (int m = 0; m < 4; m++) nx_lookup16(bits, v[m], t, c + i + 16 * m);
    }
}

/* ---- K: the driver and the score step ------------------------------------------- */

/* Scores of nk <= NX_KROWS rows (j..) for query rows g0..g0+gn-1 from
 * their dots (dots[k] lane g: row j+k, query g0+g) and row scales s:
 * (s * qs) * D + qm, the running max per query row in row order, stored
 * as a 4 x 4 transpose when the block is full. split2 rows: s2 and dots2
 * (else NULL) are the 3-bit half's scales and dots, added as the
 * reference does, ((s * qs) * D + (s2 * qs) * D2) + qm. */
NX_INLINE void nx_k_store(const float *s, const int32x4_t *dots, const float *s2,
                          const int32x4_t *dots2, int32_t nk, int32_t j, int32_t g0, int32_t gn,
                          const float *qs, const float *qm, float *sc, size_t ld, float *mx) {
    alignas(16) float qsv[4] = {0}, qmv[4] = {0}, mxv[4] = {0};
    for (int32_t k = 0; k < gn; k++) {
        qsv[k] = qs[g0 + k];
        qmv[k] = qm[g0 + k];
        mxv[k] = mx[g0 + k];
    }
    const float32x4_t qsq = vld1q_f32(qsv), qmq = vld1q_f32(qmv);
    float32x4_t v[NX_KROWS], m = vld1q_f32(mxv);
    for (int32_t k = 0; k < nk; k++) {
        float32x4_t x = vmulq_f32(vmulq_f32(vdupq_n_f32(s[k]), qsq), vcvtq_f32_s32(dots[k]));
        if (s2) x = vaddq_f32(x, vmulq_f32(vmulq_f32(vdupq_n_f32(s2[k]), qsq), vcvtq_f32_s32(dots2[k])));
        v[k] = vaddq_f32(x, qmq);
        m = vbslq_f32(vcgtq_f32(v[k], m), v[k], m);
    }
    vst1q_f32(mxv, m);
    for (int32_t k = 0; k < gn; k++) mx[g0 + k] = mxv[k];
    if (nk == 4 && gn == 4) {
        const float32x4_t t0 = vtrn1q_f32(v[0], v[1]), t1 = vtrn2q_f32(v[0], v[1]);
        const float32x4_t t2 = vtrn1q_f32(v[2], v[3]), t3 = vtrn2q_f32(v[2], v[3]);
        float *o = sc + (size_t)g0 * ld + (size_t)j;
        vst1q_f32(o, vcombine_f32(vget_low_f32(t0), vget_low_f32(t2)));
        vst1q_f32(o + ld, vcombine_f32(vget_low_f32(t1), vget_low_f32(t3)));
        vst1q_f32(o + 2 * ld, vcombine_f32(vget_high_f32(t0), vget_high_f32(t2)));
        vst1q_f32(o + 3 * ld, vcombine_f32(vget_high_f32(t1), vget_high_f32(t3)));
        return;
    }
    for (int32_t k = 0; k < nk; k++) {
        alignas(16) float o[4];
        vst1q_f32(o, v[k]);
        for (int32_t g = 0; g < gn; g++) sc[(size_t)(g0 + g) * ld + (size_t)(j + k)] = o[g];
    }
}

/* The variant's K steps: decode a row's codes into slot k of the row
 * buffer (ctx: its lookup tables), and the exact int32 dots of slot k with
 * query rows g0..g0+gn-1 (rows of d; gn <= 4; q: its query form; lanes
 * past gn 0) over dims [off, off + len), len a multiple of 16. */
typedef void (*nx_kdec_fn)(int bits, const uint8_t *codes, int32_t d, const void *ctx,
                           int16_t *slot);
typedef int32x4_t (*nx_kdot_fn)(const int16_t *slot, int32_t d, int32_t off, int32_t len,
                                const void *q, int32_t g0, int32_t gn);

/* k_scores over rows in groups of NX_KROWS: decode into a buffer shared by
 * the query groups, dot, then scale, max and store. split2 rows (bits
 * TURBO_KERN_SPLIT2: codes from byte 3, a ratio byte before them) take a
 * dot per half, the 3-bit half's scale s * R[ratio byte]. */
NX_INLINE void nx_k_scores(nx_kdec_fn dec, nx_kdot_fn dot, int bits, const void *ctx,
                           const void *q, const uint8_t *rows, size_t stride, int32_t n,
                           int32_t d, const float *qs, const float *qm, int32_t G, float *sc,
                           size_t ld, float *mx) {
    const int split2 = bits == TURBO_KERN_SPLIT2;
    const float *ratio = split2 ? turbo_split_ratio() : NULL;
    const int32_t h = d / 2;
    alignas(16) int16_t c[NX_KROWS][NX_CBUF];
    for (int32_t j = 0; j < n; j += NX_KROWS) {
        const int32_t nk = n - j < NX_KROWS ? n - j : NX_KROWS;
        float s[NX_KROWS], s2[NX_KROWS];
        for (int32_t k = 0; k < nk; k++) {
            const uint8_t *row = rows + (size_t)(j + k) * stride;
            dec(bits, row + (split2 ? 3 : 2), d, ctx, c[k]);
            s[k] = nx_row_scale(row);
            if (split2) s2[k] = s[k] * ratio[row[2]];
        }
        for (int32_t g0 = 0; g0 < G; g0 += 4) {
            const int32_t gn = G - g0 < 4 ? G - g0 : 4;
            int32x4_t dots[NX_KROWS], lo[NX_KROWS];
            if (!split2) {
                for (int32_t k = 0; k < nk; k++) dots[k] = dot(c[k], d, 0, d, q, g0, gn);
                nx_k_store(s, dots, NULL, NULL, nk, j, g0, gn, qs, qm, sc, ld, mx);
                continue;
            }
            for (int32_t k = 0; k < nk; k++) {
                dots[k] = dot(c[k], d, 0, h, q, g0, gn);
                lo[k] = dot(c[k], d, h, h, q, g0, gn);
            }
            nx_k_store(s, dots, s2, lo, nk, j, g0, gn, qs, qm, sc, ld, mx);
        }
    }
}

/* ---- V: integer tile sums --------------------------------------------------------- */

/* acc[0..8) += ws * (float)S for the sums S of 8 dims. */
NX_INLINE void nx_flush8(int32x4_t lo, int32x4_t hi, float32x4_t ws, float *acc) {
    vst1q_f32(acc, vaddq_f32(vld1q_f32(acc), vmulq_f32(ws, vcvtq_f32_s32(lo))));
    vst1q_f32(acc + 4, vaddq_f32(vld1q_f32(acc + 4), vmulq_f32(ws, vcvtq_f32_s32(hi))));
}

/* v_acc: the n <= TURBO_V_TILE rows decoded once, then per group of 4
 * query rows and 8 dims the weighted int32 sums over the rows (smlal by a
 * scalar weight: exact), then the float flush. */
NX_INLINE void nx_v_acc(int bits, const uint8_t *rows, size_t stride, int32_t n, int32_t d,
                        const int16_t *lut16, const int16_t *w16, size_t ld, const float *wscale,
                        int32_t G, float *acc) {
    alignas(16) int16_t c[TURBO_V_TILE][NX_CBUF];
    const nx_lut t = nx_lut_bytes(bits, lut16);
    for (int32_t j = 0; j < n; j++) nx_decode16(bits, turbo_row_codes(rows + (size_t)j * stride), d, &t, c[j]);
    for (int32_t g0 = 0; g0 < G; g0 += 4) {
        const int32_t gn = G - g0 < 4 ? G - g0 : 4;
        const int16_t *w = w16 + (size_t)g0 * ld;
        float *a = acc + (size_t)g0 * (size_t)d;
        for (int32_t i = 0; i < d; i += 8) {
            if (gn == 4) {
                int32x4_t l0 = vdupq_n_s32(0), l1 = l0, l2 = l0, l3 = l0, h0 = l0, h1 = l0, h2 = l0, h3 = l0;
                for (int32_t j = 0; j < n; j++) {
                    const int16x8_t cv = vld1q_s16(c[j] + i);
                    const int16x4_t cl = vget_low_s16(cv);
                    l0 = vmlal_n_s16(l0, cl, w[j]);
                    h0 = vmlal_high_n_s16(h0, cv, w[j]);
                    l1 = vmlal_n_s16(l1, cl, w[ld + j]);
                    h1 = vmlal_high_n_s16(h1, cv, w[ld + j]);
                    l2 = vmlal_n_s16(l2, cl, w[2 * ld + j]);
                    h2 = vmlal_high_n_s16(h2, cv, w[2 * ld + j]);
                    l3 = vmlal_n_s16(l3, cl, w[3 * ld + j]);
                    h3 = vmlal_high_n_s16(h3, cv, w[3 * ld + j]);
                }
                nx_flush8(l0, h0, vdupq_n_f32(wscale[g0]), a + i);
                nx_flush8(l1, h1, vdupq_n_f32(wscale[g0 + 1]), a + d + i);
                nx_flush8(l2, h2, vdupq_n_f32(wscale[g0 + 2]), a + 2 * d + i);
                nx_flush8(l3, h3, vdupq_n_f32(wscale[g0 + 3]), a + 3 * d + i);
                continue;
            }
            for (int32_t k = 0; k < gn; k++) {
                const int16_t *wk = w + (size_t)k * ld;
                int32x4_t l = vdupq_n_s32(0), h = l;
                for (int32_t j = 0; j < n; j++) {
                    const int16x8_t cv = vld1q_s16(c[j] + i);
                    l = vmlal_n_s16(l, vget_low_s16(cv), wk[j]);
                    h = vmlal_high_n_s16(h, cv, wk[j]);
                }
                nx_flush8(l, h, vdupq_n_f32(wscale[g0 + k]), a + (size_t)k * (size_t)d + i);
            }
        }
    }
}

/* ---- softmax weights ---------------------------------------------------------------- */

/* turbo_exp on 4 lanes, the same operations in the same order (the clamp
 * as the reference's `if (!(x > -87)) x = -87`, NaN included; lrintf as
 * round to nearest even). */
NX_INLINE float32x4_t nx_exp4(float32x4_t x) {
    const float32x4_t lo = vdupq_n_f32(-87.0f);
    x = vbslq_f32(vcgtq_f32(x, lo), x, lo);
    const int32x4_t ni = vcvtnq_s32_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    const float32x4_t n = vcvtq_f32_s32(ni);
    float32x4_t r = vsubq_f32(x, vmulq_f32(n, vdupq_n_f32(0.693359375f)));
    r = vsubq_f32(r, vmulq_f32(n, vdupq_n_f32(-2.12194440e-4f)));
    float32x4_t y = vdupq_n_f32(1.9875691500e-4f);
    y = vaddq_f32(vmulq_f32(y, r), vdupq_n_f32(1.3981999507e-3f));
    y = vaddq_f32(vmulq_f32(y, r), vdupq_n_f32(8.3334519073e-3f));
    y = vaddq_f32(vmulq_f32(y, r), vdupq_n_f32(4.1665795894e-2f));
    y = vaddq_f32(vmulq_f32(y, r), vdupq_n_f32(1.6666665459e-1f));
    y = vaddq_f32(vmulq_f32(y, r), vdupq_n_f32(5.0000001201e-1f));
    y = vaddq_f32(vaddq_f32(vmulq_f32(y, vmulq_f32(r, r)), r), vdupq_n_f32(1.0f));
    const int32x4_t two_n = vshlq_n_s32(vaddq_s32(ni, vdupq_n_s32(127)), 23);
    return vmulq_f32(y, vreinterpretq_f32_s32(two_n));
}

/* exp(x - m), 0 where x is -inf, on 4 lanes. */
NX_INLINE float32x4_t nx_exp_shift4(float32x4_t x, float32x4_t m) {
    const uint32x4_t dead = vceqq_f32(x, vdupq_n_f32(-INFINITY));
    return vbslq_f32(dead, vdupq_n_f32(0.0f), nx_exp4(vsubq_f32(x, m)));
}

/* The reference's 8 partial sums are lanes 0-3 of p0 (j % 8 = 0..3) and
 * of p1 (4..7); the tail's unused lanes add +0, which changes no sum of
 * non-negative terms. */
static float nx_exp_sum(float *x, int32_t n, float m) {
    const float32x4_t mm = vdupq_n_f32(m);
    float32x4_t p0 = vdupq_n_f32(0.0f), p1 = p0;
    int32_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const float32x4_t e0 = nx_exp_shift4(vld1q_f32(x + j), mm);
        const float32x4_t e1 = nx_exp_shift4(vld1q_f32(x + j + 4), mm);
        vst1q_f32(x + j, e0);
        vst1q_f32(x + j + 4, e1);
        p0 = vaddq_f32(p0, e0);
        p1 = vaddq_f32(p1, e1);
    }
    if (j < n) {
        alignas(16) float t[8] = {0};
        memcpy(t, x + j, (size_t)(n - j) * sizeof *t);
        const uint32x4_t lane = {0, 1, 2, 3};
        const uint32x4_t k0 = vcltq_u32(lane, vdupq_n_u32((uint32_t)(n - j)));
        const uint32x4_t k1 = vcltq_u32(vaddq_u32(lane, vdupq_n_u32(4)), vdupq_n_u32((uint32_t)(n - j)));
        const float32x4_t z = vdupq_n_f32(0.0f);
        const float32x4_t e0 = vbslq_f32(k0, nx_exp_shift4(vld1q_f32(t), mm), z);
        const float32x4_t e1 = vbslq_f32(k1, nx_exp_shift4(vld1q_f32(t + 4), mm), z);
        vst1q_f32(t, e0);
        vst1q_f32(t + 4, e1);
        memcpy(x + j, t, (size_t)(n - j) * sizeof *t);
        p0 = vaddq_f32(p0, e0);
        p1 = vaddq_f32(p1, e1);
    }
    /* ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)) */
    const float32x4_t s = vaddq_f32(p0, p1);
    const float32x2_t h = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    return vget_lane_f32(h, 0) + vget_lane_f32(h, 1);
}

static void nx_softmax_w(float *sc, size_t ld, int32_t n, int32_t G, const float *m,
                         const uint8_t *vrows, size_t vstride, float unit, float *lsum,
                         int16_t *w16, float *wscale) {
    enum { Q = TURBO_V_TILE / 4 };
    for (int32_t g = 0; g < G; g++) lsum[g] += nx_exp_sum(sc + (size_t)g * ld, n, m[g]);
    alignas(16) uint16_t vh[TURBO_V_TILE];
    float32x4_t vs[Q];
    for (int32_t t0 = 0; t0 < n; t0 += TURBO_V_TILE) {
        const int32_t nt = n - t0 < TURBO_V_TILE ? n - t0 : TURBO_V_TILE;
        /* rows past a partial tile weigh 0: no effect on the max (from 0) */
        memset(vh, 0, sizeof vh);
        for (int32_t j = 0; j < nt; j++) memcpy(&vh[j], vrows + (size_t)(t0 + j) * vstride, 2);
        for (int k = 0; k < Q; k++) vs[k] = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(vh + 4 * k)));
        for (int32_t g = 0; g < G; g++) {
            alignas(16) float p[TURBO_V_TILE] = {0};
            memcpy(p, sc + (size_t)g * ld + t0, (size_t)nt * sizeof *p);
            int16_t *wq = w16 + (size_t)g * ld + t0;
            float *ws = wscale + (size_t)(t0 / TURBO_V_TILE) * (size_t)G + g;
            /* the max from 0 with the reference's `if (w > wmax)`: maxnm
             * skips NaN as the comparison does, and w >= 0 */
            float32x4_t w[Q], mx = vdupq_n_f32(0.0f);
            for (int k = 0; k < Q; k++) {
                w[k] = vmulq_f32(vld1q_f32(p + 4 * k), vs[k]);
                mx = vmaxnmq_f32(mx, w[k]);
            }
            const float wmax = vmaxnmvq_f32(mx);
            if (!(wmax > TURBO_W_TINY)) {
                memset(wq, 0, (size_t)nt * sizeof *wq);
                *ws = 0.0f;
                continue;
            }
            const float32x4_t inv = vdupq_n_f32((float)TURBO_W_MAX / wmax);
            alignas(16) int16_t o[TURBO_V_TILE];
            for (int k = 0; k < Q; k += 2) {
                const int32x4_t a = vcvtnq_s32_f32(vmulq_f32(w[k], inv));
                const int32x4_t b = vcvtnq_s32_f32(vmulq_f32(w[k + 1], inv));
                vst1q_s16(o + 4 * k, vcombine_s16(vmovn_s32(a), vmovn_s32(b)));
            }
            memcpy(wq, o, (size_t)nt * sizeof *wq);
            *ws = wmax * unit;
        }
    }
}

/* ---- f16 rows --------------------------------------------------------------------- */

NX_INLINE void nx_f16_load(const uint16_t *row, int32_t d, float *x) {
    for (int32_t i = 0; i < d; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(row + i))));
}

static void nx_f16_dot(const uint16_t *row, int32_t d, const float *q, int32_t G, float *out) {
    alignas(16) float x[TURBO_MAX_DIM];
    nx_f16_load(row, d, x);
    for (int32_t g = 0; g < G; g++) {
        const float *qq = q + (size_t)g * (size_t)d;
        float32x4_t a = vdupq_n_f32(0.0f), b = a;
        int32_t i = 0;
        for (; i + 8 <= d; i += 8) {
            a = vfmaq_f32(a, vld1q_f32(qq + i), vld1q_f32(x + i));
            b = vfmaq_f32(b, vld1q_f32(qq + i + 4), vld1q_f32(x + i + 4));
        }
        if (i < d) a = vfmaq_f32(a, vld1q_f32(qq + i), vld1q_f32(x + i));
        out[g] = vaddvq_f32(vaddq_f32(a, b));
    }
}

/* Rows converted to f32 at a time by f16_acc (32 KiB of stack at d = 512). */
#define NX_F16_KEYS 16

static void nx_f16_acc(const uint16_t *const *rows, int32_t nk, int32_t d, const float *w,
                       size_t ld, int32_t G, float *acc) {
    alignas(16) float x[NX_F16_KEYS][TURBO_MAX_DIM];
    for (int32_t t0 = 0; t0 < nk; t0 += NX_F16_KEYS) {
        const int32_t nt = nk - t0 < NX_F16_KEYS ? nk - t0 : NX_F16_KEYS;
        for (int32_t t = 0; t < nt; t++) nx_f16_load(rows[t0 + t], d, x[t]);
        for (int32_t g = 0; g < G; g++) {
            float *a = acc + (size_t)g * (size_t)d;
            const float *wg = w + (size_t)g * ld + t0;
            int32_t i = 0;
            for (; i + 16 <= d; i += 16) { /* 16 sums stay in registers over the rows */
                float32x4_t a0 = vld1q_f32(a + i), a1 = vld1q_f32(a + i + 4);
                float32x4_t a2 = vld1q_f32(a + i + 8), a3 = vld1q_f32(a + i + 12);
                for (int32_t t = 0; t < nt; t++) {
                    const float32x4_t wt = vdupq_n_f32(wg[t]);
                    a0 = vfmaq_f32(a0, wt, vld1q_f32(x[t] + i));
                    a1 = vfmaq_f32(a1, wt, vld1q_f32(x[t] + i + 4));
                    a2 = vfmaq_f32(a2, wt, vld1q_f32(x[t] + i + 8));
                    a3 = vfmaq_f32(a3, wt, vld1q_f32(x[t] + i + 12));
                }
                vst1q_f32(a + i, a0);
                vst1q_f32(a + i + 4, a1);
                vst1q_f32(a + i + 8, a2);
                vst1q_f32(a + i + 12, a3);
            }
            for (; i < d; i += 4) {
                float32x4_t a0 = vld1q_f32(a + i);
                for (int32_t t = 0; t < nt; t++) a0 = vfmaq_f32(a0, vdupq_n_f32(wg[t]), vld1q_f32(x[t] + i));
                vst1q_f32(a + i, a0);
            }
        }
    }
}

/* ---- the kernel table ---------------------------------------------------------------- */

/* v_acc for B bits (shared by the variants). */
#define NX_V_ACC(B)                                                                              \
    static void v_acc_##B(const uint8_t *rows, size_t stride, int32_t n, int32_t d,              \
                          const int16_t *lut16, const int16_t *w16, size_t ld,                   \
                          const float *wscale, int32_t G, float *acc) {                          \
        NX_FIXED_D(d, nx_v_acc(B, rows, stride, n, d_, lut16, w16, ld, wscale, G, acc));         \
    }

/* The entries every kind of row shares (the basis products: the generic
 * ones of turbo_project.c). */
#define NX_HELPERS \
    nx_exp_sum, nx_f16_dot, nx_f16_acc, turbo_basis_project, turbo_basis_unproject

/* The table of one variant named `name`, with its k_scores_2 .. 6 (6:
 * split2 keys) defined before, and the getter turbo_kernels_<isa>. */
#define NX_VARIANT(isa, name)                                                                    \
    NX_V_ACC(2)                                                                                  \
    NX_V_ACC(3)                                                                                  \
    NX_V_ACC(4)                                                                                  \
    NX_V_ACC(5)                                                                                  \
    static const turbo_kernels isa##_kernels[5] = {                                              \
        {name, k_scores_2, nx_softmax_w, v_acc_2, NX_HELPERS},                                   \
        {name, k_scores_3, nx_softmax_w, v_acc_3, NX_HELPERS},                                   \
        {name, k_scores_4, nx_softmax_w, v_acc_4, NX_HELPERS},                                   \
        {name, k_scores_5, nx_softmax_w, v_acc_5, NX_HELPERS},                                   \
        {name, k_scores_6, NULL, NULL, NX_HELPERS},                                              \
    };                                                                                           \
    const turbo_kernels *turbo_kernels_##isa(int32_t bits) {                                     \
        if (bits < TURBO_MIN_BITS || bits > TURBO_KERN_SPLIT2) return NULL;                      \
        return &isa##_kernels[bits - TURBO_MIN_BITS];                                            \
    }

#endif
