/* turbo_kernels_x86.h — AVX2 building blocks of the x86 kernel variants
 * (turbo_kernels_avx2.c, turbo_kernels_avx512.c; contract in
 * turbo_codec.h). Include only from a file compiled with at least -mavx2
 * -mfma -mf16c.
 *
 * Decoding: a row's codes become its 16-bit centroids (lut16) in natural
 * dimension order. The code indices are spread into bytes, and two pshufb
 * lookups (the low and the high bytes of the 16 lut16 entries) followed by
 * a byte interleave give int16 values. The shuffles are arranged so that
 * the interleave, which works inside 128-bit lanes, lands on natural order:
 *   tq4: a dword permute first puts code bytes {0-3, 8-11} in lane 0 and
 *        {4-7, 12-15} in lane 1, so the nibble interleave yields dims
 *        0-7,16-23 | 8-15,24-31 and the centroid interleave dims 0-15, 16-31;
 *   tq2/tq3: the four 2-bit fields interleave to dims 0-15 | 64-79 (etc.),
 *        and a 128-bit lane permute after the lookup restores the order.
 *
 * The table entries shared by both variants (softmax_w, exp_sum, f16_dot,
 * f16_acc) are plain static functions here; both files use them.
 *
 * Everything that must match the scalar reference bit for bit uses the
 * same IEEE operations in the same order (the files are compiled with
 * -ffp-contract=off; FMA intrinsics appear only in f16_dot and in f16_acc,
 * whose contract is a fused multiply-add, fmaf in the reference). */
#ifndef TURBO_KERNELS_X86_H
#define TURBO_KERNELS_X86_H

#include <immintrin.h>
#include <math.h>
#include <stdalign.h>
#include <string.h>

#include "turbo_codec.h"
#include "turbo_project.h"
#include "turbo_rotation.h"

/* Forced inlining: the decoder and dot functions are passed as constant
 * function pointers to the drivers, and only full inlining keeps the
 * lookup tables in registers across a row. */
#if defined(__GNUC__)
#define TX_INLINE static inline __attribute__((always_inline))
#define TX_UNROLL _Pragma("GCC unroll 8")
#else
#define TX_INLINE static inline
#define TX_UNROLL
#endif
/* Calls f with d as a constant for the common head dims, so the inlined
 * loops over d unroll completely. */
#define TX_FIXED_D(d, f)                                                                         \
    do {                                                                                         \
        if ((d) == 128) { const int32_t d_ = 128; f; }                                           \
        else if ((d) == 64) { const int32_t d_ = 64; f; }                                        \
        else { const int32_t d_ = (d); f; }                                                      \
    } while (0)

/* Decoders write up to round_up(d, 128) centroids. */
#define TX_CBUF (TURBO_MAX_DIM + 128)
/* Rows decoded ahead of the K dot products (their scores are stored as a
 * 4 x 4 transpose). */
#define TX_KROWS 4

#define TX_LOADU(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define TX_LOADA(p) _mm256_load_si256((const __m256i *)(const void *)(p))
#define TX_STOREA(p, v) _mm256_store_si256((__m256i *)(void *)(p), (v))

typedef struct tx_lut {
    __m256i lo, hi;   /* low and high bytes of lut16[0..15], in both lanes */
    __m256i lo2, hi2; /* split rows only: lut16[16..31] (5-bit half)       */
    __m256i lo3, hi3; /* split rows only: lut16[32..47] (3-bit half)       */
} tx_lut;

/* The low and high bytes of 16 lut16 entries, in both lanes. */
TX_INLINE void tx_lut16(const int16_t *lut16, int n, __m256i *lo_v, __m256i *hi_v) {
    alignas(16) uint8_t lo[16] = {0}, hi[16] = {0};
    for (int k = 0; k < n; k++) {
        const uint16_t u = (uint16_t)lut16[k];
        lo[k] = (uint8_t)(u & 0xff);
        hi[k] = (uint8_t)(u >> 8);
    }
    *lo_v = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(const void *)lo));
    *hi_v = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(const void *)hi));
}

/* The tables of kernel id bits (lut16 holds 16 entries, TURBO_LUT_N for
 * split rows). */
TX_INLINE tx_lut tx_lut_for(int bits, const int16_t *lut16) {
    tx_lut t;
    tx_lut16(lut16, 16, &t.lo, &t.hi);
    if (bits == TURBO_KERN_SPLIT) {
        tx_lut16(lut16 + 16, 16, &t.lo2, &t.hi2);
        tx_lut16(lut16 + 32, TURBO_LUT_N - 32, &t.lo3, &t.hi3);
    } else {
        t.lo2 = t.hi2 = t.lo3 = t.hi3 = _mm256_setzero_si256();
    }
    return t;
}

TX_INLINE float tx_row_scale(const uint8_t *row) {
    uint16_t h;
    memcpy(&h, row, 2);
    return _cvtsh_ss(h);
}

/* Index bytes -> int16 centroids for an index vector holding 16 natural
 * dims in lane 0 (stored at x) and 16 natural dims in lane 1 (at y). */
TX_INLINE void tx_lookup_lanes(__m256i idx, tx_lut t, int16_t *x, int16_t *y) {
    const __m256i l = _mm256_shuffle_epi8(t.lo, idx), h = _mm256_shuffle_epi8(t.hi, idx);
    const __m256i lo = _mm256_unpacklo_epi8(l, h), hi = _mm256_unpackhi_epi8(l, h);
    TX_STOREA(x, _mm256_permute2x128_si256(lo, hi, 0x20));
    TX_STOREA(y, _mm256_permute2x128_si256(lo, hi, 0x31));
}

/* tq4: 32 code bytes -> 64 centroids, dims 0-15, 16-31, 32-47, 48-63. */
TX_INLINE void tx_tq4_reg64(__m256i raw, tx_lut t, __m256i *c0, __m256i *c1, __m256i *c2,
                            __m256i *c3) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i b = _mm256_permutevar8x32_epi32(raw, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    const __m256i lo = _mm256_and_si256(b, m4), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
    const __m256i i0 = _mm256_unpacklo_epi8(lo, hi), i1 = _mm256_unpackhi_epi8(lo, hi);
    __m256i l = _mm256_shuffle_epi8(t.lo, i0), h = _mm256_shuffle_epi8(t.hi, i0);
    *c0 = _mm256_unpacklo_epi8(l, h);
    *c1 = _mm256_unpackhi_epi8(l, h);
    l = _mm256_shuffle_epi8(t.lo, i1);
    h = _mm256_shuffle_epi8(t.hi, i1);
    *c2 = _mm256_unpacklo_epi8(l, h);
    *c3 = _mm256_unpackhi_epi8(l, h);
}

/* tq4: 32 code bytes -> 64 centroids at c. */
TX_INLINE void tx_tq4_dec64(__m256i raw, tx_lut t, int16_t *c) {
    __m256i c0, c1, c2, c3;
    tx_tq4_reg64(raw, t, &c0, &c1, &c2, &c3);
    TX_STOREA(c, c0);
    TX_STOREA(c + 16, c1);
    TX_STOREA(c + 32, c2);
    TX_STOREA(c + 48, c3);
}

TX_INLINE void tx_tq4_decode(const uint8_t *codes, int32_t d, tx_lut t, int16_t *c) {
    int32_t i = 0;
    TX_UNROLL
    for (; i + 64 <= d; i += 64) tx_tq4_dec64(TX_LOADU(codes + i / 2), t, c + i);
    if (i < d) {
        alignas(32) uint8_t tail[32] = {0};
        memcpy(tail, codes + i / 2, (size_t)(d - i) / 2);
        tx_tq4_dec64(TX_LOADA(tail), t, c + i);
    }
}

/* tq3: the bit-2 plane bytes of a 2-bit index vector v of the 2-bit
 * decoder (lane 0 = dims 16m.., lane 1 = dims 64+16m..): byte r of lane 0
 * is dim 16m + r, bit r%8 of hi byte 2m + r/8. */
TX_INLINE __m256i tx_tq3_bit2(__m256i v, __m256i hb, int m) {
    const __m256i pat0 = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9);
    const __m256i bit = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64,
                                         -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32,
                                         64, -128);
    const __m256i x = _mm256_shuffle_epi8(hb, _mm256_add_epi8(pat0, _mm256_set1_epi8((char)(2 * m))));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(x, bit), bit);
    return _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(4)));
}

/* The index vectors of 128 dims of a 2-bit plane b (v[m]: lane 0 = dims
 * 16m.., lane 1 = dims 64+16m..), with bit 2 from the 1-bit plane bytes
 * hb (broadcast to both lanes) when has_hi. */
TX_INLINE void tx_tq23_idx(__m256i b, int has_hi, __m256i hb, __m256i *v) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i p0 = _mm256_and_si256(b, m3), p1 = _mm256_and_si256(_mm256_srli_epi16(b, 2), m3);
    const __m256i p2 = _mm256_and_si256(_mm256_srli_epi16(b, 4), m3);
    const __m256i p3 = _mm256_and_si256(_mm256_srli_epi16(b, 6), m3);
    const __m256i a_lo = _mm256_unpacklo_epi8(p0, p1), a_hi = _mm256_unpackhi_epi8(p0, p1);
    const __m256i b_lo = _mm256_unpacklo_epi8(p2, p3), b_hi = _mm256_unpackhi_epi8(p2, p3);
    v[0] = _mm256_unpacklo_epi16(a_lo, b_lo);
    v[1] = _mm256_unpackhi_epi16(a_lo, b_lo);
    v[2] = _mm256_unpacklo_epi16(a_hi, b_hi);
    v[3] = _mm256_unpackhi_epi16(a_hi, b_hi);
    if (has_hi)
        for (int m = 0; m < 4; m++) v[m] = tx_tq3_bit2(v[m], hb, m);
}

/* tq2 (hi == NULL) or tq3: 32 bytes of the 2-bit plane and 16 bytes of the
 * 1-bit plane (bit 2 of each code) -> 128 centroids at c. */
TX_INLINE void tx_tq23_dec128(__m256i b, const uint8_t *hi, tx_lut t, int16_t *c) {
    __m256i v[4];
    tx_tq23_idx(b, hi != NULL,
                hi ? _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)hi))
                   : _mm256_setzero_si256(),
                v);
    tx_lookup_lanes(v[0], t, c, c + 64);
    tx_lookup_lanes(v[1], t, c + 16, c + 80);
    tx_lookup_lanes(v[2], t, c + 32, c + 96);
    tx_lookup_lanes(v[3], t, c + 48, c + 112);
}

TX_INLINE void tx_tq23_decode(int bits, const uint8_t *codes, int32_t d, tx_lut t, int16_t *c) {
    const uint8_t *plane1 = codes + d / 4;
    int32_t i = 0;
    TX_UNROLL
    for (; i + 128 <= d; i += 128)
        tx_tq23_dec128(TX_LOADU(codes + i / 4), bits == 3 ? plane1 + i / 8 : NULL, t, c + i);
    if (i < d) {
        alignas(32) uint8_t tail[32] = {0}, tail1[16] = {0};
        memcpy(tail, codes + i / 4, (size_t)(d - i) / 4);
        if (bits == 3) memcpy(tail1, plane1 + i / 8, (size_t)(d - i) / 8);
        tx_tq23_dec128(TX_LOADA(tail), bits == 3 ? tail1 : NULL, t, c + i);
    }
}

TX_INLINE void tx_tq2_decode(const uint8_t *codes, int32_t d, tx_lut t, int16_t *c) {
    tx_tq23_decode(2, codes, d, t, c);
}
TX_INLINE void tx_tq3_decode(const uint8_t *codes, int32_t d, tx_lut t, int16_t *c) {
    tx_tq23_decode(3, codes, d, t, c);
}

/* Split rows, 5-bit half: 32 nibble bytes (raw) and 8 bytes of the bit-4
 * plane (b4) -> 64 centroids at c. The nibble indices land as in
 * tx_tq4_reg64 (i0: lane 0 = dims 0-7, 16-23, lane 1 = dims 8-15, 24-31;
 * i1 the same + 32), so bit 4 is spread to those places (byte dim/8, bit
 * dim%8), and each lookup picks lut16[16 + idx] over lut16[idx] there. */
TX_INLINE void tx_split_hi64(__m256i raw, const uint8_t *b4, tx_lut t, int16_t *c) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i b = _mm256_permutevar8x32_epi32(raw, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    const __m256i lo = _mm256_and_si256(b, m4), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
    const __m256i idx[2] = {_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi)};
    int64_t plane;
    memcpy(&plane, b4, 8);
    const __m256i pb = _mm256_set1_epi64x(plane);
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2,
                                         1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64,
                                         -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32,
                                         64, -128);
    for (int k = 0; k < 2; k++) {
        const __m256i x = _mm256_shuffle_epi8(pb, _mm256_add_epi8(sel, _mm256_set1_epi8((char)(4 * k))));
        const __m256i up = _mm256_cmpeq_epi8(_mm256_and_si256(x, bit), bit);
        const __m256i l = _mm256_blendv_epi8(_mm256_shuffle_epi8(t.lo, idx[k]),
                                             _mm256_shuffle_epi8(t.lo2, idx[k]), up);
        const __m256i h = _mm256_blendv_epi8(_mm256_shuffle_epi8(t.hi, idx[k]),
                                             _mm256_shuffle_epi8(t.hi2, idx[k]), up);
        TX_STOREA(c + 32 * k, _mm256_unpacklo_epi8(l, h));
        TX_STOREA(c + 32 * k + 16, _mm256_unpackhi_epi8(l, h));
    }
}

/* Split rows, 3-bit half of 64 dims: 16 bytes of the 2-bit plane and 8 of
 * the 1-bit plane -> 64 centroids at c, nothing read past the planes. The
 * plane's bytes 0-7 go to lane 0 and 8-15 to lane 1, so tx_tq23_idx's v[0]
 * holds dims 0-15 | 32-47 and v[1] dims 16-31 | 48-63 (both lanes used);
 * the 1-bit plane is placed where tx_tq3_bit2 looks for those dims (lane
 * 1's bytes 8.. = plane bytes 4..). */
TX_INLINE void tx_split_lo64(const uint8_t *p2, const uint8_t *p1, tx_lut t, int16_t *c) {
    const __m256i b = _mm256_permute4x64_epi64(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p2)), 0x50);
    uint64_t plane;
    memcpy(&plane, p1, 8);
    const __m256i hb = _mm256_set_epi64x((long long)(plane >> 32), 0, 0, (long long)plane);
    __m256i v[4];
    tx_tq23_idx(b, 1, hb, v);
    tx_lookup_lanes(v[0], t, c, c + 32);
    tx_lookup_lanes(v[1], t, c + 16, c + 48);
}

/* Split rows (turbo_codec.h): d centroids at c, the 5-bit half first. */
TX_INLINE void tx_tq5_decode(const uint8_t *codes, int32_t d, tx_lut t, int16_t *c) {
    const int32_t h = d / 2;
    const uint8_t *b4 = codes + h / 2, *lo = b4 + h / 8;
    tx_lut t3 = t;
    t3.lo = t.lo3;
    t3.hi = t.hi3;
    if (h == 64) {
        tx_split_hi64(TX_LOADU(codes), b4, t, c);
        tx_split_lo64(lo, lo + 16, t3, c + 64);
        return;
    }
    int32_t i = 0;
    for (; i + 64 <= h; i += 64) tx_split_hi64(TX_LOADU(codes + i / 2), b4 + i / 8, t, c + i);
    if (i < h) {
        alignas(32) uint8_t tail[32] = {0}, tail4[8] = {0};
        memcpy(tail, codes + i / 2, (size_t)(h - i) / 2);
        memcpy(tail4, b4 + i / 8, (size_t)(h - i) / 8);
        tx_split_hi64(TX_LOADA(tail), tail4, t, c + i);
    }
    tx_tq23_decode(3, lo, h, t3, c + h);
}

typedef void (*tx_decode_fn)(const uint8_t *codes, int32_t d, tx_lut t, int16_t *c);

/* ---- K: scores from the integer dots ------------------------------------------ */

/* Horizontal sums of four int32 vectors: {sum a0, sum a1, sum a2, sum a3}. */
TX_INLINE __m128i tx_hsum4(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
    const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

TX_INLINE int32_t tx_hsum1(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The variant's integer multiply-accumulate: acc + the pairwise sums of
 * the 16x16-bit products of a and b, per int32 lane (pmaddwd + paddd, or
 * vpdpwssd). Exact, so every variant's sums are the same integers. */
typedef __m256i (*tx_mac_fn)(__m256i acc, __m256i a, __m256i b);

/* Dots of a group of up to 4 query rows (gn, rows of d at q) with nk <=
 * TX_KROWS decoded rows over dims [off, off + len): dots[k] = {D(row k, q
 * g0) .. D(row k, q g0+3)} (0 past gn). */
TX_INLINE void tx_dot4(tx_mac_fn mac, int16_t (*c)[TX_CBUF], int32_t nk, int32_t d, int32_t off,
                       int32_t len, const int16_t *q, int32_t gn, __m128i *dots) {
    for (int32_t k = 0; k < nk; k++) {
        const int16_t *ck = c[k];
        if (gn == 4) {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            TX_UNROLL
            for (int32_t i = off; i < off + len; i += 16) {
                const __m256i cv = TX_LOADA(ck + i);
                a0 = mac(a0, cv, TX_LOADU(q + i));
                a1 = mac(a1, cv, TX_LOADU(q + d + i));
                a2 = mac(a2, cv, TX_LOADU(q + 2 * d + i));
                a3 = mac(a3, cv, TX_LOADU(q + 3 * d + i));
            }
            dots[k] = tx_hsum4(a0, a1, a2, a3);
            continue;
        }
        alignas(16) int32_t o[4] = {0};
        for (int32_t g = 0; g < gn; g++) {
            const int16_t *qq = q + (size_t)g * (size_t)d;
            __m256i a = _mm256_setzero_si256();
            for (int32_t i = off; i < off + len; i += 16)
                a = mac(a, TX_LOADA(ck + i), TX_LOADU(qq + i));
            o[g] = tx_hsum1(a);
        }
        dots[k] = _mm_load_si128((const __m128i *)(const void *)o);
    }
}


/* Scores of nk <= TX_KROWS rows (j..) for query rows g0..g0+gn-1 from
 * their dots and row scales: scaled, max-updated, stored (as a 4 x 4
 * transpose when the block is full). split2 rows: s2/dots2 (else NULL)
 * are the lo half's scales and dots, added as the reference does. */
TX_INLINE void tx_k_store(const __m128 *s, const __m128i *dots, const __m128 *s2,
                          const __m128i *dots2, int32_t nk, int32_t j, int32_t g0, int32_t gn,
                          const float *qs, const float *qm, float *sc, size_t ld, float *mx) {
    alignas(16) float qsv[4] = {0}, qmv[4] = {0}, mxv[4] = {0};
    for (int32_t k = 0; k < gn; k++) {
        qsv[k] = qs[g0 + k];
        qmv[k] = qm[g0 + k];
        mxv[k] = mx[g0 + k];
    }
    __m128 v[TX_KROWS], m = _mm_load_ps(mxv);
    for (int32_t k = 0; k < nk; k++) {
        __m128 x = _mm_mul_ps(_mm_mul_ps(s[k], _mm_load_ps(qsv)), _mm_cvtepi32_ps(dots[k]));
        if (s2)
            x = _mm_add_ps(x, _mm_mul_ps(_mm_mul_ps(s2[k], _mm_load_ps(qsv)), _mm_cvtepi32_ps(dots2[k])));
        v[k] = _mm_add_ps(x, _mm_load_ps(qmv));
        m = _mm_max_ps(m, v[k]);
    }
    _mm_store_ps(mxv, m);
    for (int32_t k = 0; k < gn; k++) mx[g0 + k] = mxv[k];
    if (nk == 4 && gn == 4) {
        _MM_TRANSPOSE4_PS(v[0], v[1], v[2], v[3]);
        for (int32_t k = 0; k < 4; k++) _mm_storeu_ps(sc + (size_t)(g0 + k) * ld + (size_t)j, v[k]);
        return;
    }
    for (int32_t k = 0; k < nk; k++) {
        alignas(16) float o[4];
        _mm_store_ps(o, v[k]);
        for (int32_t g = 0; g < gn; g++) sc[(size_t)(g0 + g) * ld + (size_t)(j + k)] = o[g];
    }
}

/* k_scores over rows in groups of TX_KROWS: decode into a buffer shared by
 * the query groups, dot, then scale, max and store. (Keeping a tq4 row in
 * registers instead, for G <= 4, was no faster on the AMD machine and
 * slower for AVX2 on an Intel Xeon.) */
TX_INLINE void tx_k_scores(int bits, tx_decode_fn dec, tx_mac_fn mac, const uint8_t *rows,
                           size_t stride, int32_t n, int32_t d, const int16_t *lut16,
                           const int16_t *q16, const float *qs, const float *qm, int32_t G,
                           float *sc, size_t ld, float *mx) {
    const tx_lut t = tx_lut_for(bits, lut16);
    alignas(32) int16_t c[TX_KROWS][TX_CBUF];
    for (int32_t j = 0; j < n; j += TX_KROWS) {
        const int32_t nk = n - j < TX_KROWS ? n - j : TX_KROWS;
        __m128 s[TX_KROWS];
        for (int32_t k = 0; k < nk; k++) {
            const uint8_t *row = rows + (size_t)(j + k) * stride;
            dec(turbo_row_codes(row), d, t, c[k]);
            s[k] = _mm_set1_ps(tx_row_scale(row));
        }
        for (int32_t g0 = 0; g0 < G; g0 += 4) {
            const int32_t gn = G - g0 < 4 ? G - g0 : 4;
            __m128i dots[TX_KROWS];
            tx_dot4(mac, c, nk, d, 0, d, q16 + (size_t)g0 * (size_t)d, gn, dots);
            tx_k_store(s, dots, NULL, NULL, nk, j, g0, gn, qs, qm, sc, ld, mx);
        }
    }
}

/* ---- K: split2 rows ---------------------------------------------------------------
 *
 * A split2 key is scored by two integer dots (turbo_codec.h), and the sum
 * of a dot does not depend on the order of its terms. So the decoder here
 * leaves the centroids in whatever order the byte shuffles produce them,
 * and the queries are permuted once per call into that order (zero where a
 * 64-dim block runs past the half), which saves the unpacks and lane
 * permutes that a natural order costs. Per 64-dim block:
 *   hi (5-bit) half, vector v = 0..3, element e (lane e/8, j = e%8):
 *     k = 8 (v%2) + j + 16 lane, dim 2k + v/2   (nibble byte k, v/2 = high)
 *   lo (3-bit) half: k = 8 (v%2) + j, dim 4k + 2 (v/2) + lane
 *     (2-bit field of plane byte k, the lanes shifted by different counts). */

/* The dims of a 64-block in decoder order: tx_s2_hi_dim[p] and
 * tx_s2_lo_dim[p] are the formulas above at p = 16 v + e. */
static const uint8_t tx_s2_hi_dim[64] = {
    0,  2,  4,  6,  8,  10, 12, 14, 32, 34, 36, 38, 40, 42, 44, 46, 16, 18, 20, 22, 24, 26,
    28, 30, 48, 50, 52, 54, 56, 58, 60, 62, 1,  3,  5,  7,  9,  11, 13, 15, 33, 35, 37, 39,
    41, 43, 45, 47, 17, 19, 21, 23, 25, 27, 29, 31, 49, 51, 53, 55, 57, 59, 61, 63};
static const uint8_t tx_s2_lo_dim[64] = {
    0,  4,  8,  12, 16, 20, 24, 28, 1,  5,  9,  13, 17, 21, 25, 29, 32, 36, 40, 44, 48, 52,
    56, 60, 33, 37, 41, 45, 49, 53, 57, 61, 2,  6,  10, 14, 18, 22, 26, 30, 3,  7,  11, 15,
    19, 23, 27, 31, 34, 38, 42, 46, 50, 54, 58, 62, 35, 39, 43, 47, 51, 55, 59, 63};

/* Half width h rounded up to whole 64-dim blocks. */
TX_INLINE int32_t tx_s2_pad(int32_t h) { return (h + 63) / 64 * 64; }

/* qp[r][...] = query row r in decoder order: the hi half's hp entries, then
 * the lo half's (hp = tx_s2_pad(d / 2); zero past the half). */
TX_INLINE void tx_s2_qperm(const int16_t *q16, int32_t R, int32_t d, int16_t *qp) {
    const int32_t h = d / 2, hp = tx_s2_pad(h);
    for (int32_t r = 0; r < R; r++, q16 += d, qp += 2 * hp)
        for (int32_t b = 0; b < hp; b += 64) {
            const int16_t *qh = q16 + b, *ql = q16 + h + b;
            int16_t *oh = qp + b, *ol = qp + hp + b;
            if (b + 64 <= h) {
                for (int32_t p = 0; p < 64; p++) {
                    oh[p] = qh[tx_s2_hi_dim[p]];
                    ol[p] = ql[tx_s2_lo_dim[p]];
                }
                continue;
            }
            for (int32_t p = 0; p < 64; p++) {
                oh[p] = b + tx_s2_hi_dim[p] < h ? qh[tx_s2_hi_dim[p]] : 0;
                ol[p] = b + tx_s2_lo_dim[p] < h ? ql[tx_s2_lo_dim[p]] : 0;
            }
        }
}

/* 32 nibble bytes and 8 bit-4 plane bytes of the hi half -> 64 centroids
 * at c in decoder order: the nibble vectors are looked up in lut16[0..15]
 * and lut16[16..31] and blended where bit 4 (spread from the plane, byte
 * k/4 bit 2 (k%4) + nibble) is set. */
TX_INLINE void tx_s2_hi64(__m256i raw, const uint8_t *b4, tx_lut t, int16_t *c) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                         4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
    const __m256i bit = _mm256_setr_epi8(1, 4, 16, 64, 1, 4, 16, 64, 1, 4, 16, 64, 1, 4, 16, 64,
                                         1, 4, 16, 64, 1, 4, 16, 64, 1, 4, 16, 64, 1, 4, 16, 64);
    int64_t plane;
    memcpy(&plane, b4, 8);
    const __m256i sp = _mm256_shuffle_epi8(_mm256_set1_epi64x(plane), sel);
    const __m256i idx[2] = {_mm256_and_si256(raw, m4), _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4)};
    const __m256i up[2] = {_mm256_cmpeq_epi8(_mm256_and_si256(sp, bit), bit),
                           _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_srli_epi16(sp, 1), bit), bit)};
    for (int v = 0; v < 2; v++) {
        const __m256i l = _mm256_blendv_epi8(_mm256_shuffle_epi8(t.lo, idx[v]),
                                             _mm256_shuffle_epi8(t.lo2, idx[v]), up[v]);
        const __m256i h = _mm256_blendv_epi8(_mm256_shuffle_epi8(t.hi, idx[v]),
                                             _mm256_shuffle_epi8(t.hi2, idx[v]), up[v]);
        TX_STOREA(c + 32 * v, _mm256_unpacklo_epi8(l, h));
        TX_STOREA(c + 32 * v + 16, _mm256_unpackhi_epi8(l, h));
    }
}

/* 16 bytes of the 2-bit plane and 8 of the 1-bit plane of the lo half ->
 * 64 centroids at c in decoder order (lut16[32..39] in t.lo3/t.hi3). */
TX_INLINE void tx_s2_lo64(const uint8_t *p2, const uint8_t *p1, tx_lut t, int16_t *c) {
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    const __m256i sel = _mm256_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
                                         0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m256i bit = _mm256_setr_epi8(1, 16, 1, 16, 1, 16, 1, 16, 1, 16, 1, 16, 1, 16, 1, 16,
                                         2, 32, 2, 32, 2, 32, 2, 32, 2, 32, 2, 32, 2, 32, 2, 32);
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p2));
    int64_t plane;
    memcpy(&plane, p1, 8);
    const __m256i sp = _mm256_shuffle_epi8(_mm256_set1_epi64x(plane), sel);
    const __m256i field[2] = {
        _mm256_and_si256(_mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2)), m3),
        _mm256_and_si256(_mm256_srlv_epi32(b, _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6)), m3)};
    const __m256i b2[2] = {_mm256_cmpeq_epi8(_mm256_and_si256(sp, bit), bit),
                           _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_srli_epi16(sp, 2), bit), bit)};
    for (int v = 0; v < 2; v++) {
        const __m256i idx = _mm256_or_si256(field[v], _mm256_and_si256(b2[v], four));
        const __m256i l = _mm256_shuffle_epi8(t.lo3, idx), h = _mm256_shuffle_epi8(t.hi3, idx);
        TX_STOREA(c + 32 * v, _mm256_unpacklo_epi8(l, h));
        TX_STOREA(c + 32 * v + 16, _mm256_unpackhi_epi8(l, h));
    }
}

/* The codes of a split2 row (from byte 3) -> 2 hp centroids at c in
 * decoder order; a partial last block reads zero-padded copies. */
TX_INLINE void tx_s2_decode(const uint8_t *codes, int32_t d, tx_lut t, int16_t *c) {
    const int32_t h = d / 2, hp = tx_s2_pad(h);
    const uint8_t *b4 = codes + h / 2, *p2 = b4 + h / 8, *p1 = p2 + h / 4;
    int32_t i = 0;
    TX_UNROLL
    for (; i + 64 <= h; i += 64) {
        tx_s2_hi64(TX_LOADU(codes + i / 2), b4 + i / 8, t, c + i);
        tx_s2_lo64(p2 + i / 4, p1 + i / 8, t, c + hp + i);
    }
    if (i < h) {
        alignas(32) uint8_t nib[32] = {0}, pl4[8] = {0}, pl2[16] = {0}, pl1[8] = {0};
        memcpy(nib, codes + i / 2, (size_t)(h - i) / 2);
        memcpy(pl4, b4 + i / 8, (size_t)(h - i) / 8);
        memcpy(pl2, p2 + i / 4, (size_t)(h - i) / 4);
        memcpy(pl1, p1 + i / 8, (size_t)(h - i) / 8);
        tx_s2_hi64(TX_LOADA(nib), pl4, t, c + i);
        tx_s2_lo64(pl2, pl1, t, c + hp + i);
    }
}

/* Eight int32 vectors -> {sum a0 .. sum a3 | sum b0 .. sum b3}: a
 * transpose-and-add tree (unpacks, not phaddd, which costs three uops). */
TX_INLINE __m256i tx_hsum8(__m256i a0, __m256i a1, __m256i a2, __m256i a3, __m256i b0, __m256i b1,
                           __m256i b2, __m256i b3) {
#define TX_PAIR32(x, y) _mm256_add_epi32(_mm256_unpacklo_epi32(x, y), _mm256_unpackhi_epi32(x, y))
#define TX_PAIR64(x, y) _mm256_add_epi32(_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y))
    const __m256i a = TX_PAIR64(TX_PAIR32(a0, a1), TX_PAIR32(a2, a3));
    const __m256i b = TX_PAIR64(TX_PAIR32(b0, b1), TX_PAIR32(b2, b3));
#undef TX_PAIR32
#undef TX_PAIR64
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* The score of one decoded split2 row c for the 4 query rows at q (decoder
 * order, rows 2 hp apart): the hi and lo dots in int32, then, as the
 * contract orders it, ((s * qs) * D_hi + ((s * R) * qs) * D_lo) + qm with
 * sv = {s x4 | s R x4}, qs8 = {qs x2}. */
TX_INLINE __m128 tx_s2_score(tx_mac_fn mac, const int16_t *c, const int16_t *q, int32_t hp,
                             __m256 sv, __m256 qs8, __m128 qm4) {
    const int16_t *q1 = q + 2 * hp, *q2 = q1 + 2 * hp, *q3 = q2 + 2 * hp;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    __m256i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    TX_UNROLL
    for (int32_t i = 0; i < hp; i += 16) {
        const __m256i cv = TX_LOADA(c + i);
        a0 = mac(a0, cv, TX_LOADA(q + i));
        a1 = mac(a1, cv, TX_LOADA(q1 + i));
        a2 = mac(a2, cv, TX_LOADA(q2 + i));
        a3 = mac(a3, cv, TX_LOADA(q3 + i));
    }
    TX_UNROLL
    for (int32_t i = hp; i < 2 * hp; i += 16) {
        const __m256i cv = TX_LOADA(c + i);
        b0 = mac(b0, cv, TX_LOADA(q + i));
        b1 = mac(b1, cv, TX_LOADA(q1 + i));
        b2 = mac(b2, cv, TX_LOADA(q2 + i));
        b3 = mac(b3, cv, TX_LOADA(q3 + i));
    }
    const __m256 x = _mm256_mul_ps(_mm256_mul_ps(sv, qs8),
                                   _mm256_cvtepi32_ps(tx_hsum8(a0, a1, a2, a3, b0, b1, b2, b3)));
    return _mm_add_ps(_mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1)), qm4);
}

/* k_scores of split2 rows: TX_KROWS rows decoded (decoder order), then
 * scored against each group of 4 query rows (permuted into qp, QP_ROWS at
 * a time; a partial group reads zero rows), the running max of a group
 * kept in a register. */
TX_INLINE void tx_k_scores2(tx_mac_fn mac, const uint8_t *rows, size_t stride, int32_t n, int32_t d,
                            const int16_t *lut16, const int16_t *q16, const float *qs,
                            const float *qm, int32_t G, float *sc, size_t ld, float *mx) {
    enum { QP_ROWS = 32, GROUPS = QP_ROWS / 4 }; /* a prefill block: 8 tokens x 4 heads */
    const tx_lut t = tx_lut_for(TURBO_KERN_SPLIT, lut16);
    const float *ratio = turbo_split_ratio();
    const int32_t hp = tx_s2_pad(d / 2);
    alignas(32) int16_t c[TX_KROWS][TURBO_MAX_DIM]; /* 2 hp <= TURBO_MAX_DIM */
    alignas(32) int16_t qp[QP_ROWS * TURBO_MAX_DIM]; /* rows of 2 hp */
    for (int32_t r0 = 0; r0 < G; r0 += QP_ROWS) {
        const int32_t nr = G - r0 < QP_ROWS ? G - r0 : QP_ROWS, ng = (nr + 3) / 4;
        tx_s2_qperm(q16 + (size_t)r0 * (size_t)d, nr, d, qp);
        if (nr % 4) memset(qp + (size_t)nr * (size_t)(2 * hp), 0, (size_t)(4 - nr % 4) * (size_t)(2 * hp) * sizeof(int16_t));
        __m256 qs8[GROUPS];
        __m128 qm4[GROUPS], mx4[GROUPS];
        for (int32_t g = 0; g < ng; g++) {
            alignas(16) float a[4] = {0}, b[4] = {0}, m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
            for (int32_t k = 0; k < 4 && 4 * g + k < nr; k++) {
                a[k] = qs[r0 + 4 * g + k];
                b[k] = qm[r0 + 4 * g + k];
                m[k] = mx[r0 + 4 * g + k];
            }
            qs8[g] = _mm256_set_m128(_mm_load_ps(a), _mm_load_ps(a));
            qm4[g] = _mm_load_ps(b);
            mx4[g] = _mm_load_ps(m);
        }
        for (int32_t j = 0; j < n; j += TX_KROWS) {
            const int32_t nk = n - j < TX_KROWS ? n - j : TX_KROWS;
            __m256 sv[TX_KROWS];
            for (int32_t k = 0; k < nk; k++) {
                const uint8_t *row = rows + (size_t)(j + k) * stride;
                tx_s2_decode(row + 3, d, t, c[k]);
                const float sj = tx_row_scale(row);
                sv[k] = _mm256_set_m128(_mm_set1_ps(sj * ratio[row[2]]), _mm_set1_ps(sj));
            }
            for (int32_t g = 0; g < ng; g++) {
                const int32_t gn = nr - 4 * g < 4 ? nr - 4 * g : 4;
                __m128 v[TX_KROWS];
                for (int32_t k = 0; k < nk; k++) {
                    v[k] = tx_s2_score(mac, c[k], qp + (size_t)(8 * g) * (size_t)hp, hp, sv[k], qs8[g], qm4[g]);
                    mx4[g] = _mm_max_ps(mx4[g], v[k]);
                }
                float *out = sc + (size_t)(r0 + 4 * g) * ld + (size_t)j;
                if (nk == 4 && gn == 4) {
                    _MM_TRANSPOSE4_PS(v[0], v[1], v[2], v[3]);
                    for (int32_t k = 0; k < 4; k++) _mm_storeu_ps(out + (size_t)k * ld, v[k]);
                    continue;
                }
                for (int32_t k = 0; k < nk; k++) {
                    alignas(16) float o[4];
                    _mm_store_ps(o, v[k]);
                    for (int32_t r = 0; r < gn; r++) out[(size_t)r * ld + (size_t)k] = o[r];
                }
            }
        }
        for (int32_t g = 0; g < ng; g++) {
            alignas(16) float m[4];
            _mm_store_ps(m, mx4[g]);
            for (int32_t k = 0; k < 4 && 4 * g + k < nr; k++) mx[r0 + 4 * g + k] = m[k];
        }
    }
}

/* ---- softmax weights ------------------------------------------------------------ */

/* turbo_exp on one vector (8 lanes: tx_exp8; 16 in the AVX-512 variant:
 * tx_exp16), the same operations in the same order. P is the intrinsics'
 * prefix, T / TI the float / int vector types, CAST the int-to-float cast. */
#define TX_EXP_DEF(name, T, TI, P, CAST)                                                          \
    TX_INLINE T name(T x) {                                                                      \
        x = P##_max_ps(x, P##_set1_ps(-87.0f));                                                  \
        const TI ni = P##_cvtps_epi32(P##_mul_ps(x, P##_set1_ps(1.44269504088896341f)));         \
        const T n = P##_cvtepi32_ps(ni);                                                         \
        T r = P##_sub_ps(x, P##_mul_ps(n, P##_set1_ps(0.693359375f)));                           \
        r = P##_sub_ps(r, P##_mul_ps(n, P##_set1_ps(-2.12194440e-4f)));                          \
        T y = P##_set1_ps(1.9875691500e-4f);                                                     \
        y = P##_add_ps(P##_mul_ps(y, r), P##_set1_ps(1.3981999507e-3f));                         \
        y = P##_add_ps(P##_mul_ps(y, r), P##_set1_ps(8.3334519073e-3f));                         \
        y = P##_add_ps(P##_mul_ps(y, r), P##_set1_ps(4.1665795894e-2f));                         \
        y = P##_add_ps(P##_mul_ps(y, r), P##_set1_ps(1.6666665459e-1f));                         \
        y = P##_add_ps(P##_mul_ps(y, r), P##_set1_ps(5.0000001201e-1f));                         \
        y = P##_add_ps(P##_add_ps(P##_mul_ps(y, P##_mul_ps(r, r)), r), P##_set1_ps(1.0f));       \
        const TI two_n = P##_slli_epi32(P##_add_epi32(ni, P##_set1_epi32(127)), 23);             \
        return P##_mul_ps(y, CAST(two_n));                                                       \
    }
TX_EXP_DEF(tx_exp8, __m256, __m256i, _mm256, _mm256_castsi256_ps)
#if defined(__AVX512F__)
TX_EXP_DEF(tx_exp16, __m512, __m512i, _mm512, _mm512_castsi512_ps)
#endif

/* Lane mask for the first k (0..8) lanes. */
TX_INLINE __m256i tx_mask8(int32_t k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* exp(x - m), 0 where x is -inf, on 8 lanes. */
TX_INLINE __m256 tx_exp_shift8(__m256 x, __m256 m) {
    const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_NEQ_UQ);
    return _mm256_and_ps(tx_exp8(_mm256_sub_ps(x, m)), live);
}

static float tx_exp_sum(float *x, int32_t n, float m) {
    const __m256 mm = _mm256_set1_ps(m);
    __m256 part = _mm256_setzero_ps();
    int32_t j = 0;
#if defined(__AVX512F__)
    /* 16 lanes at a time, the two halves added to the 8 partial sums in
     * turn: the same sums in the same order as 8 lanes at a time. */
    for (const __m512 m16 = _mm512_set1_ps(m); j + 16 <= n; j += 16) {
        const __m512 x16 = _mm512_loadu_ps(x + j);
        const __mmask16 live = _mm512_cmp_ps_mask(x16, _mm512_set1_ps(-INFINITY), _CMP_NEQ_UQ);
        const __m512 e = _mm512_maskz_mov_ps(live, tx_exp16(_mm512_sub_ps(x16, m16)));
        _mm512_storeu_ps(x + j, e);
        part = _mm256_add_ps(part, _mm512_castps512_ps256(e));
        part = _mm256_add_ps(part, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
    }
#endif
    for (; j + 8 <= n; j += 8) {
        const __m256 e = tx_exp_shift8(_mm256_loadu_ps(x + j), mm);
        _mm256_storeu_ps(x + j, e);
        part = _mm256_add_ps(part, e);
    }
    if (j < n) {
        const __m256i k = tx_mask8(n - j);
        const __m256 e = _mm256_and_ps(tx_exp_shift8(_mm256_maskload_ps(x + j, k), mm),
                                       _mm256_castsi256_ps(k));
        _mm256_maskstore_ps(x + j, k, e);
        part = _mm256_add_ps(part, e);
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(part), _mm256_extractf128_ps(part, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static void tx_softmax_w(float *sc, size_t ld, int32_t n, int32_t G, const float *m,
                         const uint8_t *vrows, size_t vstride, float unit, float *lsum,
                         int16_t *w16, float *wscale) {
    for (int32_t g = 0; g < G; g++) lsum[g] += tx_exp_sum(sc + (size_t)g * ld, n, m[g]);
    alignas(32) float vs[TURBO_V_TILE];
    for (int32_t t0 = 0; t0 < n; t0 += TURBO_V_TILE) {
        const int32_t nt = n - t0 < TURBO_V_TILE ? n - t0 : TURBO_V_TILE;
        for (int32_t j = 0; j < nt; j++) vs[j] = tx_row_scale(vrows + (size_t)(t0 + j) * vstride);
        for (int32_t g = 0; g < G; g++) {
            const float *p = sc + (size_t)g * ld + t0;
            int16_t *wq = w16 + (size_t)g * ld + t0;
            float *ws = wscale + (size_t)(t0 / TURBO_V_TILE) * (size_t)G + g;
            if (nt < TURBO_V_TILE) { /* the last, partial tile: the reference's loop */
                float w[TURBO_V_TILE], wmax = 0;
                for (int32_t j = 0; j < nt; j++) {
                    w[j] = p[j] * vs[j];
                    if (w[j] > wmax) wmax = w[j];
                }
                const float inv = wmax > TURBO_W_TINY ? (float)TURBO_W_MAX / wmax : 0.0f;
                for (int32_t j = 0; j < nt; j++) wq[j] = (int16_t)_mm_cvtss_si32(_mm_set_ss(w[j] * inv));
                *ws = wmax > TURBO_W_TINY ? wmax * unit : 0.0f;
                continue;
            }
            __m256 w[4], mx = _mm256_setzero_ps();
            for (int k = 0; k < 4; k++) {
                w[k] = _mm256_mul_ps(_mm256_loadu_ps(p + 8 * k), _mm256_load_ps(vs + 8 * k));
                mx = _mm256_max_ps(mx, w[k]);
            }
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
            const float wmax = _mm_cvtss_f32(h);
            if (!(wmax > TURBO_W_TINY)) {
                memset(wq, 0, TURBO_V_TILE * sizeof *wq);
                *ws = 0.0f;
                continue;
            }
            const __m256 inv = _mm256_set1_ps((float)TURBO_W_MAX / wmax);
            for (int k = 0; k < 4; k += 2) {
                const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(w[k], inv));
                const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(w[k + 1], inv));
                const __m256i ab = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8);
                _mm256_storeu_si256((__m256i *)(void *)(wq + 8 * k), ab);
            }
            *ws = wmax * unit;
        }
    }
}

/* ---- f16 rows ------------------------------------------------------------------ */

TX_INLINE void tx_f16_load(const uint16_t *row, int32_t d, float *x) {
    for (int32_t i = 0; i < d; i += 8)
        _mm256_store_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(row + i))));
}

TX_INLINE float tx_hsum_ps(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static void tx_f16_dot(const uint16_t *row, int32_t d, const float *q, int32_t G, float *out) {
    alignas(32) float x[TURBO_MAX_DIM];
    tx_f16_load(row, d, x);
    for (int32_t g = 0; g < G; g++) {
        const float *qq = q + (size_t)g * (size_t)d;
        __m256 a = _mm256_setzero_ps(), b = a;
        int32_t i = 0;
        for (; i + 16 <= d; i += 16) {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(qq + i), _mm256_load_ps(x + i), a);
            b = _mm256_fmadd_ps(_mm256_loadu_ps(qq + i + 8), _mm256_load_ps(x + i + 8), b);
        }
        if (i < d) a = _mm256_fmadd_ps(_mm256_loadu_ps(qq + i), _mm256_load_ps(x + i), a);
        out[g] = tx_hsum_ps(_mm256_add_ps(a, b));
    }
}

/* Rows converted to f32 at a time by f16_acc (32 KiB of stack at d = 512). */
#define TX_F16_KEYS 16

static void tx_f16_acc(const uint16_t *const *rows, int32_t nk, int32_t d, const float *w,
                       size_t ld, int32_t G, float *acc) {
    alignas(32) float x[TX_F16_KEYS][TURBO_MAX_DIM];
    for (int32_t t0 = 0; t0 < nk; t0 += TX_F16_KEYS) {
        const int32_t nt = nk - t0 < TX_F16_KEYS ? nk - t0 : TX_F16_KEYS;
        for (int32_t t = 0; t < nt; t++) tx_f16_load(rows[t0 + t], d, x[t]);
        for (int32_t g = 0; g < G; g++) {
            float *a = acc + (size_t)g * (size_t)d;
            const float *wg = w + (size_t)g * ld + t0;
            int32_t i = 0;
            for (; i + 32 <= d; i += 32) { /* 32 sums stay in registers over the rows */
                __m256 a0 = _mm256_loadu_ps(a + i), a1 = _mm256_loadu_ps(a + i + 8);
                __m256 a2 = _mm256_loadu_ps(a + i + 16), a3 = _mm256_loadu_ps(a + i + 24);
                for (int32_t t = 0; t < nt; t++) {
                    const __m256 wt = _mm256_set1_ps(wg[t]);
                    a0 = _mm256_fmadd_ps(wt, _mm256_load_ps(x[t] + i), a0);
                    a1 = _mm256_fmadd_ps(wt, _mm256_load_ps(x[t] + i + 8), a1);
                    a2 = _mm256_fmadd_ps(wt, _mm256_load_ps(x[t] + i + 16), a2);
                    a3 = _mm256_fmadd_ps(wt, _mm256_load_ps(x[t] + i + 24), a3);
                }
                _mm256_storeu_ps(a + i, a0);
                _mm256_storeu_ps(a + i + 8, a1);
                _mm256_storeu_ps(a + i + 16, a2);
                _mm256_storeu_ps(a + i + 24, a3);
            }
            for (; i < d; i += 8) {
                __m256 a0 = _mm256_loadu_ps(a + i);
                for (int32_t t = 0; t < nt; t++)
                    a0 = _mm256_fmadd_ps(_mm256_set1_ps(wg[t]), _mm256_load_ps(x[t] + i), a0);
                _mm256_storeu_ps(a + i, a0);
            }
        }
    }
}

/* basis_project with F16C conversions: 8 rows k at a time, their 8 x 8
 * blocks converted and transposed, so each lane adds its own row's
 * products in the reference's order over i. */
static void tx_basis_project(const uint16_t *P, int32_t r, int32_t d, const float *v, float *z) {
    if (r % 8 != 0 || d % 8 != 0) {
        turbo_basis_project(P, r, d, v, z);
        return;
    }
    for (int32_t k = 0; k < r; k += 8) {
        const uint16_t *pk = P + (size_t)k * (size_t)d;
        __m256 s = _mm256_setzero_ps();
        for (int32_t i = 0; i < d; i += 8) {
            __m256 c[8];
            for (int j = 0; j < 8; j++) {
                const uint16_t *row = pk + (size_t)j * (size_t)d + (size_t)i;
                c[j] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)row));
            }
            /* 8 x 8 transpose: c[m] = P[k..k+8][i + m] */
            const __m256 t0 = _mm256_unpacklo_ps(c[0], c[1]), t1 = _mm256_unpackhi_ps(c[0], c[1]);
            const __m256 t2 = _mm256_unpacklo_ps(c[2], c[3]), t3 = _mm256_unpackhi_ps(c[2], c[3]);
            const __m256 t4 = _mm256_unpacklo_ps(c[4], c[5]), t5 = _mm256_unpackhi_ps(c[4], c[5]);
            const __m256 t6 = _mm256_unpacklo_ps(c[6], c[7]), t7 = _mm256_unpackhi_ps(c[6], c[7]);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
            const __m256 col[8] = {
                _mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
            for (int m = 0; m < 8; m++)
                s = _mm256_add_ps(s, _mm256_mul_ps(col[m], _mm256_set1_ps(v[i + m])));
        }
        _mm256_storeu_ps(z + k, s);
    }
}

/* basis_unproject with F16C conversions: 32 outputs stay in registers over
 * all k, each lane taking (z[k] u[k]) * P[k][i] then the add, in k order
 * as the reference (no FMA: the files build with -ffp-contract=off).
 * The generic version (SSE2, converting f16 in software) was about 5% of
 * a tq4 prefill. */
static void tx_basis_unproject(const uint16_t *P, int32_t r, int32_t d, const float *z,
                               const float *u, float *out) {
    if (d % 8 != 0) {
        turbo_basis_unproject(P, r, d, z, u, out);
        return;
    }
#define TX_P8(k, i)                                                                              \
    _mm256_cvtph_ps(                                                                             \
        _mm_loadu_si128((const __m128i *)(const void *)(P + (size_t)(k) * (size_t)d + (size_t)(i))))
    int32_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int32_t k = 0; k < r; k++) {
            const __m256 zk = _mm256_set1_ps(z[k] * u[k]);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(zk, TX_P8(k, i)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(zk, TX_P8(k, i + 8)));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(zk, TX_P8(k, i + 16)));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(zk, TX_P8(k, i + 24)));
        }
        _mm256_storeu_ps(out + i, a0);
        _mm256_storeu_ps(out + i + 8, a1);
        _mm256_storeu_ps(out + i + 16, a2);
        _mm256_storeu_ps(out + i + 24, a3);
    }
    for (; i < d; i += 8) {
        __m256 a = _mm256_setzero_ps();
        for (int32_t k = 0; k < r; k++)
            a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(z[k] * u[k]), TX_P8(k, i)));
        _mm256_storeu_ps(out + i, a);
    }
#undef TX_P8
}

/* ---- V: paired rows --------------------------------------------------------------- */

/* The pair weights of query row g: (w of row 2p, w of row 2p+1) in every
 * dword of wb[p] (the partner of an odd last row weighs 0). */
TX_INLINE void tx_pair_weights(const int16_t *w16, int32_t n, __m256i *wb) {
    for (int32_t p = 0; p < n / 2; p++) {
        int32_t v;
        memcpy(&v, w16 + 2 * p, 4);
        wb[p] = _mm256_set1_epi32(v);
    }
    if (n % 2) wb[n / 2] = _mm256_set1_epi32((int32_t)(uint16_t)w16[n - 1]);
}

/* Decodes n rows in pairs: pb[p] holds, per 16 dims, the two rows'
 * centroids interleaved (unpacklo: dims 0-3 | 8-11, unpackhi: 4-7 | 12-15). */
TX_INLINE void tx_pair_store(__m256i a, __m256i b, int16_t *pb) {
    TX_STOREA(pb, _mm256_unpacklo_epi16(a, b));
    TX_STOREA(pb + 16, _mm256_unpackhi_epi16(a, b));
}

TX_INLINE void tx_decode_pairs(int bits, tx_decode_fn dec, const uint8_t *rows, size_t stride,
                               int32_t n, int32_t d, tx_lut t, int16_t (*pb)[2 * TURBO_MAX_DIM]) {
    if (bits == 4 && d % 64 == 0) { /* straight from registers */
        for (int32_t p = 0; p < (n + 1) / 2; p++) {
            const uint8_t *ra = turbo_row_codes(rows + (size_t)(2 * p) * stride);
            const uint8_t *rb = 2 * p + 1 < n ? turbo_row_codes(rows + (size_t)(2 * p + 1) * stride) : NULL;
            TX_UNROLL
            for (int32_t i = 0; i < d; i += 64) {
                __m256i a0, a1, a2, a3, b0, b1, b2, b3;
                tx_tq4_reg64(TX_LOADU(ra + i / 2), t, &a0, &a1, &a2, &a3);
                if (rb) tx_tq4_reg64(TX_LOADU(rb + i / 2), t, &b0, &b1, &b2, &b3);
                else b0 = b1 = b2 = b3 = _mm256_setzero_si256();
                tx_pair_store(a0, b0, pb[p] + 2 * i);
                tx_pair_store(a1, b1, pb[p] + 2 * i + 32);
                tx_pair_store(a2, b2, pb[p] + 2 * i + 64);
                tx_pair_store(a3, b3, pb[p] + 2 * i + 96);
            }
        }
        return;
    }
    alignas(32) int16_t ca[TX_CBUF], cb[TX_CBUF];
    for (int32_t p = 0; p < (n + 1) / 2; p++) {
        dec(turbo_row_codes(rows + (size_t)(2 * p) * stride), d, t, ca);
        if (2 * p + 1 < n) dec(turbo_row_codes(rows + (size_t)(2 * p + 1) * stride), d, t, cb);
        else memset(cb, 0, (size_t)d * sizeof *cb);
        for (int32_t i = 0; i < d; i += 16) tx_pair_store(TX_LOADA(ca + i), TX_LOADA(cb + i), pb[p] + 2 * i);
    }
}

/* acc[0..16) += ws * (float)S for the pair-lane sums of 16 dims (lo: dims
 * 0-3 | 8-11, hi: 4-7 | 12-15). */
TX_INLINE void tx_flush16(__m256i lo, __m256i hi, __m256 ws, float *acc) {
    const __m256 s0 = _mm256_cvtepi32_ps(_mm256_permute2x128_si256(lo, hi, 0x20));
    const __m256 s1 = _mm256_cvtepi32_ps(_mm256_permute2x128_si256(lo, hi, 0x31));
    _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_loadu_ps(acc), _mm256_mul_ps(ws, s0)));
    _mm256_storeu_ps(acc + 8, _mm256_add_ps(_mm256_loadu_ps(acc + 8), _mm256_mul_ps(ws, s1)));
}

/* V: the pair sums of n <= TURBO_V_TILE rows for each group of 4 query
 * rows, 16 dims at a time, then the float flush (turbo_codec.h). */
TX_INLINE void tx_v_acc(tx_mac_fn mac, int bits, tx_decode_fn dec, const uint8_t *rows, size_t stride,
                        int32_t n, int32_t d, const int16_t *lut16, const int16_t *w16, size_t ld,
                        const float *wscale, int32_t G, float *acc) {
    enum { PAIRS = TURBO_V_TILE / 2 };
    alignas(32) int16_t pb[PAIRS][2 * TURBO_MAX_DIM];
    tx_decode_pairs(bits, dec, rows, stride, n, d, tx_lut_for(bits, lut16), pb);
    const int32_t np = (n + 1) / 2;
    __m256i wb[4][PAIRS];
    for (int32_t g0 = 0; g0 < G; g0 += 4) {
        const int32_t gn = G - g0 < 4 ? G - g0 : 4;
        for (int32_t k = 0; k < gn; k++) tx_pair_weights(w16 + (size_t)(g0 + k) * ld, n, wb[k]);
        float *a = acc + (size_t)g0 * (size_t)d;
        for (int32_t i = 0; i < d; i += 16) {
            if (gn == 4) {
                __m256i l0 = _mm256_setzero_si256(), l1 = l0, l2 = l0, l3 = l0;
                __m256i h0 = l0, h1 = l0, h2 = l0, h3 = l0;
                for (int32_t p = 0; p < np; p++) {
                    const __m256i lo = TX_LOADA(pb[p] + 2 * i), hi = TX_LOADA(pb[p] + 2 * i + 16);
                    l0 = mac(l0, lo, wb[0][p]);
                    h0 = mac(h0, hi, wb[0][p]);
                    l1 = mac(l1, lo, wb[1][p]);
                    h1 = mac(h1, hi, wb[1][p]);
                    l2 = mac(l2, lo, wb[2][p]);
                    h2 = mac(h2, hi, wb[2][p]);
                    l3 = mac(l3, lo, wb[3][p]);
                    h3 = mac(h3, hi, wb[3][p]);
                }
                tx_flush16(l0, h0, _mm256_set1_ps(wscale[g0]), a + i);
                tx_flush16(l1, h1, _mm256_set1_ps(wscale[g0 + 1]), a + d + i);
                tx_flush16(l2, h2, _mm256_set1_ps(wscale[g0 + 2]), a + 2 * d + i);
                tx_flush16(l3, h3, _mm256_set1_ps(wscale[g0 + 3]), a + 3 * d + i);
                continue;
            }
            for (int32_t k = 0; k < gn; k++) {
                __m256i l = _mm256_setzero_si256(), h = l;
                for (int32_t p = 0; p < np; p++) {
                    l = mac(l, TX_LOADA(pb[p] + 2 * i), wb[k][p]);
                    h = mac(h, TX_LOADA(pb[p] + 2 * i + 16), wb[k][p]);
                }
                tx_flush16(l, h, _mm256_set1_ps(wscale[g0 + k]), a + (size_t)k * (size_t)d + i);
            }
        }
    }
}


/* The entries every kind of row shares. */
#define TX_HELPERS tx_exp_sum, tx_f16_dot, tx_f16_acc, tx_basis_project, tx_basis_unproject

/* The kernel table of one variant: `name`, its multiply-accumulate `mac`,
 * and the getter turbo_kernels_<isa>. */
#define TX_VARIANT_FN(B, mac)                                                                    \
    static void k_scores_##B(const uint8_t *rows, size_t stride, int32_t n, int32_t d,           \
                             const int16_t *lut16, const int16_t *q16, const float *qs,          \
                             const float *qm, int32_t G, float *sc, size_t ld, float *mx) {      \
        TX_FIXED_D(d, tx_k_scores(B, tx_tq##B##_decode, mac, rows, stride, n, d_, lut16, q16,   \
                                  qs, qm, G, sc, ld, mx));                                       \
    }                                                                                            \
    static void v_acc_##B(const uint8_t *rows, size_t stride, int32_t n, int32_t d,              \
                          const int16_t *lut16, const int16_t *w16, size_t ld,                   \
                          const float *wscale, int32_t G, float *acc) {                          \
        TX_FIXED_D(d, tx_v_acc(mac, B, tx_tq##B##_decode, rows, stride, n, d_, lut16, w16, ld,   \
                               wscale, G, acc));                                                 \
    }
#define TX_VARIANT(isa, name, mac)                                                               \
    TX_VARIANT_FN(2, mac)                                                                        \
    TX_VARIANT_FN(3, mac)                                                                        \
    TX_VARIANT_FN(4, mac)                                                                        \
    TX_VARIANT_FN(5, mac)                                                                        \
    static void k_scores_6(const uint8_t *rows, size_t stride, int32_t n, int32_t d,             \
                           const int16_t *lut16, const int16_t *q16, const float *qs,            \
                           const float *qm, int32_t G, float *sc, size_t ld, float *mx) {        \
        TX_FIXED_D(d, tx_k_scores2(mac, rows, stride, n, d_, lut16, q16, qs, qm, G, sc, ld, mx)); \
    }                                                                                            \
    static const turbo_kernels isa##_kernels[5] = {                                              \
        {name, k_scores_2, tx_softmax_w, v_acc_2, TX_HELPERS},                                   \
        {name, k_scores_3, tx_softmax_w, v_acc_3, TX_HELPERS},                                   \
        {name, k_scores_4, tx_softmax_w, v_acc_4, TX_HELPERS},                                   \
        {name, k_scores_5, tx_softmax_w, v_acc_5, TX_HELPERS},                                   \
        {name, k_scores_6, NULL, NULL, TX_HELPERS},                                              \
    };                                                                                           \
    const turbo_kernels *turbo_kernels_##isa(int32_t bits) {                                     \
        if (bits < TURBO_MIN_BITS || bits > TURBO_KERN_SPLIT2) return NULL;                      \
        return &isa##_kernels[bits - TURBO_MIN_BITS];                                            \
    }

#endif
