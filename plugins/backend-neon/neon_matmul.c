/* neon_matmul.c — the dot-product kernels of MUL_MAT on NEON; the driver
 * (encode each activation column once, tile rows x columns over the pool)
 * is plugins/common/cpu_matmul.c.
 *
 * Float weights (f32, f16, bf16) and their activations (narrowed to f16 /
 * bf16 by the encoder for those weights, so every product is the one ggml
 * forms) are widened to f32 and multiplied in fused multiply-adds, summed in
 * the x86 backend's order, so float models give its results bit for bit
 * (checked by comparing tqrun --logits-out on tm30m-llama-f16). Block
 * formats are unpacked to int8 and dotted with the q8 activations: 16 pairs
 * at a time by sdot (vdotq_s32) in the dotprod build, by widening
 * multiplies (vmull_s8 + vpadal) in the armv8-a build. Each block's integer
 * sum equals the scalar kernels' of core/src/tq_quants*.c exactly; the sums
 * are then scaled by the block's float scales and accumulated in float
 * lanes, whose order differs from the core's sequential one (the
 * conformance test bounds it).
 *
 * Every unsigned format (q4_1, q5_1, q2_K, q4_K, q5_K) fits int8 unpacked,
 * and q3_K / q6_K are unpacked with their offsets already applied (-4..3,
 * -32..31), so one signed dot serves all. */
#include "cpu_blocks.h"
#include "neon_internal.h"

/* ---- float weights -------------------------------------------------------- */

enum { WF_F32, WF_F16, WF_BF16 };

NEON_INLINE float32x4_t load_w4(const void *w, int64_t i, const int T) {
    if (T == WF_F32) return vld1q_f32((const float *)w + i);
    const uint16x4_t h = vld1_u16((const uint16_t *)w + i);
    if (T == WF_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

NEON_INLINE float load_w1(const void *w, int64_t i, const int T) {
    if (T == WF_F32) return ((const float *)w)[i];
    const uint16_t h = ((const uint16_t *)w)[i];
    if (T == WF_F16) return neon_f16_to_f32(h);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* 8 weights at i as the two halves of an x86 8-lane vector. */
NEON_INLINE void load_w8(const void *w, int64_t i, const int T, float32x4_t *lo, float32x4_t *hi) {
    *lo = load_w4(w, i, T);
    *hi = load_w4(w, i + 4, T);
}

/* A register tile of nr <= 2 rows x nc <= 2 columns, with the x86
 * backend's dot_float order (neon_internal.h): each output summed in two
 * 8-lane FMA chains (even and odd groups of 8 elements), a last group of 8
 * into the even chain, the chains added lane by lane and summed as
 * x86_hsum, the last n % 8 products added in order. Each 8-lane chain is a
 * lo/hi pair here: 16 accumulators, 8 weight and 4 activation vectors fit
 * the 32 registers. A column's result does not depend on the tile. */
NEON_INLINE void dot_float(int64_t n, const void *const *w, const int nr, const void *const *a,
                           const int nc, float *out, const int T) {
    float32x4_t acc[2][2][2], acc2[2][2][2]; /* [row][column][lo, hi] */
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++)
            for (int h = 0; h < 2; h++) acc[r][c][h] = acc2[r][c][h] = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t wv[2][2], wv2[2][2];
        for (int r = 0; r < nr; r++) {
            load_w8(w[r], i, T, &wv[r][0], &wv[r][1]);
            load_w8(w[r], i + 8, T, &wv2[r][0], &wv2[r][1]);
        }
        for (int c = 0; c < nc; c++) {
            const float32x4_t av[2] = {load_w4(a[c], i, T), load_w4(a[c], i + 4, T)};
            const float32x4_t av2[2] = {load_w4(a[c], i + 8, T), load_w4(a[c], i + 12, T)};
            for (int r = 0; r < nr; r++)
                for (int h = 0; h < 2; h++) {
                    acc[r][c][h] = vfmaq_f32(acc[r][c][h], wv[r][h], av[h]);
                    acc2[r][c][h] = vfmaq_f32(acc2[r][c][h], wv2[r][h], av2[h]);
                }
        }
    }
    for (; i + 8 <= n; i += 8)
        for (int r = 0; r < nr; r++) {
            float32x4_t wv[2];
            load_w8(w[r], i, T, &wv[0], &wv[1]);
            for (int c = 0; c < nc; c++)
                for (int h = 0; h < 2; h++)
                    acc[r][c][h] = vfmaq_f32(acc[r][c][h], wv[h], load_w4(a[c], i + 4 * h, T));
        }
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++)
            out[r * CPU_MM_MAX_COLS + c] = neon_hsum8(vaddq_f32(acc[r][c][0], acc2[r][c][0]),
                                                      vaddq_f32(acc[r][c][1], acc2[r][c][1]));
    for (; i < n; i++)
        for (int r = 0; r < nr; r++) {
            const float wf = load_w1(w[r], i, T);
            for (int c = 0; c < nc; c++) out[r * CPU_MM_MAX_COLS + c] += wf * load_w1(a[c], i, T);
        }
}

CPU_DOT_BY_2X2(dot_f32, dot_float, WF_F32)
CPU_DOT_BY_2X2(dot_f16, dot_float, WF_F16)
CPU_DOT_BY_2X2(dot_bf16, dot_float, WF_BF16)

/* Prefill (cpu_mm_gemm, from 16 columns on, driven by cpu_gemm_float): the
 * twin of the x86 backend's float tiles. Each output is one 8-lane FMA
 * chain (a lo/hi pair here) over the groups of 8, summed as x86_hsum, the
 * last n % 8 products added in order, whatever the tile; so a prefill
 * batch gets x86's bits, and a column's sums differ from dot_float's two
 * chains exactly as they do on x86. Tiles of GR x GC: 16 accumulators, 4
 * activation and 2 weight vectors in the 32 registers. */
#define GR 4
#define GC 2
#define GEMM_MIN_COLS 16 /* as x86's I8_MIN_COLS: float prefill switches order there too */

NEON_INLINE void tile_float(int64_t n, const float *const *w, const int nr, const void *const *a, const int nc,
                            float *out, size_t ld, const int T) {
    float32x4_t acc[GR][GC][2];
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++) acc[r][c][0] = acc[r][c][1] = vdupq_n_f32(0.0f);
    const int64_t n8 = n / 8 * 8;
    for (int64_t i = 0; i < n8; i += 8) {
        float32x4_t av[GC][2];
        for (int c = 0; c < nc; c++) load_w8(a[c], i, T, &av[c][0], &av[c][1]);
        for (int r = 0; r < nr; r++) {
            const float32x4_t w0 = vld1q_f32(w[r] + i), w1 = vld1q_f32(w[r] + i + 4);
            for (int c = 0; c < nc; c++) {
                acc[r][c][0] = vfmaq_f32(acc[r][c][0], w0, av[c][0]);
                acc[r][c][1] = vfmaq_f32(acc[r][c][1], w1, av[c][1]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++) out[c * ld + r] = neon_hsum8(acc[r][c][0], acc[r][c][1]);
    for (int64_t i = n8; i < n; i++)
        for (int r = 0; r < nr; r++) {
            const float wf = w[r][i];
            for (int c = 0; c < nc; c++) out[c * ld + r] += wf * load_w1(a[c], i, T);
        }
}

#define TILE_CASE(R, C) \
    case (R) * 8 + (C): tile_float(n, w, R, a, C, out, ld, T); break;

NEON_INLINE void tile_float_any(int64_t n, const float *const *w, int nr, const void *const *a, int nc, float *out,
                                size_t ld, const int T) {
    switch (nr * 8 + nc) {
    TILE_CASE(4, 2) TILE_CASE(4, 1) TILE_CASE(3, 2) TILE_CASE(3, 1) TILE_CASE(2, 2) TILE_CASE(2, 1)
    TILE_CASE(1, 2)
    default: tile_float(n, w, 1, a, 1, out, ld, T); break;
    }
}

#define TILE_ENTRY(name, T)                                                                           \
    static void name(int64_t n, const float *const *w, int nr, const void *const *a, int nc, float *out, \
                     size_t ld) {                                                                      \
        tile_float_any(n, w, nr, a, nc, out, ld, T);                                                   \
    }
TILE_ENTRY(tile_f32, WF_F32)
TILE_ENTRY(tile_f16, WF_F16)
TILE_ENTRY(tile_bf16, WF_BF16)

static const cpu_float_tiles float_tiles = {GR, GC, neon_f16_row, tile_f32, tile_f16, tile_bf16};
CPU_GEMM_FLOAT_ENTRIES(float_tiles)

const cpu_mm_gemm neon_gemms[NEON_N_GEMMS] = {
    {TQ_TYPE_F32, GEMM_MIN_COLS, GR, NULL, gemm_float},
    {TQ_TYPE_F16, GEMM_MIN_COLS, GR, gemm_float_buf_bytes, gemm_float},
    {TQ_TYPE_BF16, GEMM_MIN_COLS, GR, gemm_float_buf_bytes, gemm_float},
};

/* ---- 32-element block formats --------------------------------------------- */

enum { W_Q4_0, W_Q4_1, W_Q5_0, W_Q5_1, W_Q8_0 };

/* Bytes 0..15 of *lo / *hi = bits 0..15 / 16..31 of qh, as 0x00 / 0xFF. */
NEON_INLINE void bit_masks(const uint8_t *qh, uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t b = vld1q_u8(bit);
    *lo = vtstq_u8(vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1])), b);
    *hi = vtstq_u8(vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3])), b);
}

/* Block i of a row as int8 elements 0..15 (*q0) and 16..31 (*q1), with its
 * scale and (q4_1, q5_1) min. The 4/5-bit formats keep elements 0..15 in
 * the low nibbles and 16..31 in the high ones. */
NEON_INLINE void unpack_32(const void *w, int64_t i, const int T, int8x16_t *q0, int8x16_t *q1, float *dw,
                           float *mw) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    *mw = 0.0f;
    if (T == W_Q8_0) {
        const cpu_block_q8_0 *b = (const cpu_block_q8_0 *)w + i;
        *q0 = vld1q_s8(b->qs);
        *q1 = vld1q_s8(b->qs + 16);
        *dw = neon_f16_to_f32(b->d);
        return;
    }
    const uint8_t *qs, *qh = NULL;
    if (T == W_Q4_0) {
        const cpu_block_q4_0 *b = (const cpu_block_q4_0 *)w + i;
        qs = b->qs, *dw = neon_f16_to_f32(b->d);
    } else if (T == W_Q4_1) {
        const cpu_block_q4_1 *b = (const cpu_block_q4_1 *)w + i;
        qs = b->qs, *dw = neon_f16_to_f32(b->d), *mw = neon_f16_to_f32(b->m);
    } else if (T == W_Q5_0) {
        const cpu_block_q5_0 *b = (const cpu_block_q5_0 *)w + i;
        qs = b->qs, qh = b->qh, *dw = neon_f16_to_f32(b->d);
    } else {
        const cpu_block_q5_1 *b = (const cpu_block_q5_1 *)w + i;
        qs = b->qs, qh = b->qh, *dw = neon_f16_to_f32(b->d), *mw = neon_f16_to_f32(b->m);
    }
    const uint8x16_t raw = vld1q_u8(qs);
    uint8x16_t lo = vandq_u8(raw, m4), hi = vshrq_n_u8(raw, 4);
    if (T == W_Q4_0) {
        *q0 = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(8));
        *q1 = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(8));
        return;
    }
    if (qh) {
        uint8x16_t b0, b1;
        bit_masks(qh, &b0, &b1);
        if (T == W_Q5_0) {
            /* (nibble | bit4) - 16: the nibble with 0xF0 or-ed in where bit 4 is clear */
            lo = vorrq_u8(lo, vbicq_u8(vdupq_n_u8(0xF0), b0));
            hi = vorrq_u8(hi, vbicq_u8(vdupq_n_u8(0xF0), b1));
        } else {
            lo = vorrq_u8(lo, vandq_u8(b0, vdupq_n_u8(0x10)));
            hi = vorrq_u8(hi, vandq_u8(b1, vdupq_n_u8(0x10)));
        }
    }
    *q0 = vreinterpretq_s8_u8(lo);
    *q1 = vreinterpretq_s8_u8(hi);
}

/* One row of a 32-element format times nc columns: signed formats with
 * q8_0 activations; q4_1 / q5_1 with q8_1, plus the weight's min times the
 * activation's s = d * sum(q). */
NEON_INLINE void dot_32(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                        const int T) {
    const int has_min = T == W_Q4_1 || T == W_Q5_1;
    float32x4_t acc[4];
    float accm[4];
    for (int c = 0; c < nc; c++) acc[c] = vdupq_n_f32(0.0f), accm[c] = 0.0f;
    for (int64_t i = 0; i < n / CPU_QK; i++) {
        int8x16_t q0, q1;
        float dw, mw;
        unpack_32(w, i, T, &q0, &q1, &dw, &mw);
        for (int c = 0; c < nc; c++) {
            const int8_t *yq;
            float da;
            if (has_min) {
                const cpu_block_q8_1 *y = (const cpu_block_q8_1 *)a[c] + i;
                yq = y->qs, da = neon_f16_to_f32(y->d);
                accm[c] += mw * neon_f16_to_f32(y->s);
            } else {
                const cpu_block_q8_0 *y = (const cpu_block_q8_0 *)a[c] + i;
                yq = y->qs, da = neon_f16_to_f32(y->d);
            }
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(neon_dot_s8x2(q0, q1, yq)), dw * da);
        }
    }
    for (int c = 0; c < nc; c++) out[c] = vaddvq_f32(acc[c]) + accm[c];
}

CPU_DOT_BY_ROWS(dot_q4_0, dot_32, W_Q4_0)
CPU_DOT_BY_ROWS(dot_q4_1, dot_32, W_Q4_1)
CPU_DOT_BY_ROWS(dot_q5_0, dot_32, W_Q5_0)
CPU_DOT_BY_ROWS(dot_q5_1, dot_32, W_Q5_1)
CPU_DOT_BY_ROWS(dot_q8_0, dot_32, W_Q8_0)

/* ---- K-quants (256-element super-blocks, activations q8_K) ---------------- */

/* sum over the 16 groups of bsums[g] * m[g], m given per group. */
NEON_INLINE int32_t bsum_dot(const cpu_block_q8_K *y, int16x8_t m_lo, int16x8_t m_hi) {
    const int16x8_t b0 = vld1q_s16(y->bsums), b1 = vld1q_s16(y->bsums + 8);
    int32x4_t s = vmull_s16(vget_low_s16(b0), vget_low_s16(m_lo));
    s = vmlal_high_s16(s, b0, m_lo);
    s = vmlal_s16(s, vget_low_s16(b1), vget_low_s16(m_hi));
    s = vmlal_high_s16(s, b1, m_hi);
    return vaddvq_s32(s);
}

/* q4_K (five = 0) and q5_K (five = 1): 8 sub-blocks of 32 with 6-bit scale
 * and min; the min part goes through the activation's bsums. */
NEON_INLINE void dot_q45_K(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                           const int five) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), one = vdupq_n_u8(1);
    float32x4_t acc[4];
    float accm[4];
    for (int c = 0; c < nc; c++) acc[c] = vdupq_n_f32(0.0f), accm[c] = 0.0f;
    for (int64_t i = 0; i < n / CPU_QK_K; i++) {
        const uint8_t *scb, *qs;
        uint16_t xd, xdmin;
        uint8x16_t hb0 = vdupq_n_u8(0), hb1 = vdupq_n_u8(0);
        if (five) {
            const cpu_block_q5_K *b = (const cpu_block_q5_K *)w + i;
            scb = b->scales, qs = b->qs, xd = b->d, xdmin = b->dmin;
            hb0 = vld1q_u8(b->qh);
            hb1 = vld1q_u8(b->qh + 16);
        } else {
            const cpu_block_q4_K *b = (const cpu_block_q4_K *)w + i;
            scb = b->scales, qs = b->qs, xd = b->d, xdmin = b->dmin;
        }
        uint8_t sc[8], mn[8];
        int16_t mins[16];
        for (int j = 0; j < 8; j++) {
            cpu_scale_min_k4(j, scb, &sc[j], &mn[j]);
            mins[2 * j] = mins[2 * j + 1] = mn[j]; /* bsums are per 16 */
        }
        int32x4_t isum[4];
        for (int c = 0; c < nc; c++) isum[c] = vdupq_n_s32(0);
        for (int j = 0; j < 4; j++) { /* 64 elements: 32 bytes of nibbles */
            const uint8x16_t r0 = vld1q_u8(qs + 32 * j), r1 = vld1q_u8(qs + 32 * j + 16);
            uint8x16_t lo0 = vandq_u8(r0, m4), lo1 = vandq_u8(r1, m4);
            uint8x16_t hi0 = vshrq_n_u8(r0, 4), hi1 = vshrq_n_u8(r1, 4);
            if (five) {
                lo0 = vorrq_u8(lo0, vshlq_n_u8(vandq_u8(hb0, one), 4));
                lo1 = vorrq_u8(lo1, vshlq_n_u8(vandq_u8(hb1, one), 4));
                hi0 = vorrq_u8(hi0, vshlq_n_u8(vandq_u8(vshrq_n_u8(hb0, 1), one), 4));
                hi1 = vorrq_u8(hi1, vshlq_n_u8(vandq_u8(vshrq_n_u8(hb1, 1), one), 4));
                hb0 = vshrq_n_u8(hb0, 2);
                hb1 = vshrq_n_u8(hb1, 2);
            }
            const int8x16_t l0 = vreinterpretq_s8_u8(lo0), l1 = vreinterpretq_s8_u8(lo1);
            const int8x16_t h0 = vreinterpretq_s8_u8(hi0), h1 = vreinterpretq_s8_u8(hi1);
            for (int c = 0; c < nc; c++) {
                const int8_t *y = ((const cpu_block_q8_K *)a[c] + i)->qs + 64 * j;
                isum[c] = vmlaq_n_s32(isum[c], neon_dot_s8x2(l0, l1, y), sc[2 * j]);
                isum[c] = vmlaq_n_s32(isum[c], neon_dot_s8x2(h0, h1, y + 32), sc[2 * j + 1]);
            }
        }
        const int16x8_t m_lo = vld1q_s16(mins), m_hi = vld1q_s16(mins + 8);
        const float d = neon_f16_to_f32(xd), dmin = neon_f16_to_f32(xdmin);
        for (int c = 0; c < nc; c++) {
            const cpu_block_q8_K *y = (const cpu_block_q8_K *)a[c] + i;
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(isum[c]), d * y->d);
            accm[c] -= (dmin * y->d) * (float)bsum_dot(y, m_lo, m_hi);
        }
    }
    for (int c = 0; c < nc; c++) out[c] = vaddvq_f32(acc[c]) + accm[c];
}

CPU_DOT_BY_ROWS(dot_q4_K, dot_q45_K, 0)
CPU_DOT_BY_ROWS(dot_q5_K, dot_q45_K, 1)

/* q6_K: 6-bit quants standing for q - 32, an int8 scale per 16. Half h of
 * the block: byte l of ql (l < 64) holds elements l and l + 64 in its low
 * and high nibble; qh byte l (l < 32) the top bits of l, l + 32, l + 64,
 * l + 96 (two bits each, from the bottom). */
NEON_INLINE void dot_q6_K_k(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                            const int unused) {
    (void)unused;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    float32x4_t acc[4];
    for (int c = 0; c < nc; c++) acc[c] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / CPU_QK_K; i++) {
        const cpu_block_q6_K *b = (const cpu_block_q6_K *)w + i;
        int32x4_t isum[4];
        for (int c = 0; c < nc; c++) isum[c] = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            const int8_t *sc = b->scales + 8 * h;
            for (int v = 0; v < 2; v++) { /* l in 16v .. 16v + 15 */
                const uint8x16_t qa = vld1q_u8(ql + 16 * v), qb = vld1q_u8(ql + 32 + 16 * v);
                const uint8x16_t hh = vld1q_u8(qh + 16 * v);
                int8x16_t q[4];
                q[0] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(qa, m4), vshlq_n_u8(vandq_u8(hh, m3), 4)));
                q[1] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(qb, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 2), m3), 4)));
                q[2] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(qa, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 4), m3), 4)));
                q[3] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(qb, 4), vshlq_n_u8(vshrq_n_u8(hh, 6), 4)));
                for (int k = 0; k < 4; k++) {
                    const int8x16_t qk = vsubq_s8(q[k], off);
                    const int s = sc[2 * k + v];
                    for (int c = 0; c < nc; c++) {
                        const int8_t *y = ((const cpu_block_q8_K *)a[c] + i)->qs + 128 * h + 32 * k + 16 * v;
                        isum[c] = vmlaq_n_s32(isum[c], neon_dot_s8(vdupq_n_s32(0), qk, vld1q_s8(y)), s);
                    }
                }
            }
        }
        const float d = neon_f16_to_f32(b->d);
        for (int c = 0; c < nc; c++) {
            const cpu_block_q8_K *y = (const cpu_block_q8_K *)a[c] + i;
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(isum[c]), d * y->d);
        }
    }
    for (int c = 0; c < nc; c++) out[c] = vaddvq_f32(acc[c]);
}

CPU_DOT_BY_ROWS(dot_q6_K, dot_q6_K_k, 0)

/* q2_K (three = 0) and q3_K (three = 1) share the 2-bit layout: byte l of
 * each 32-byte run holds elements l, l+32, l+64, l+96 of a 128-half; groups
 * of 16 have their own scale. q3_K adds a high bit (hmask, one bit per
 * quarter over the whole block) with the value q + 4*hbit - 4 and 6-bit
 * signed scales; q2_K has 4-bit scales and mins. */
NEON_INLINE void dot_q23_K(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                           const int three) {
    const uint8x16_t m3 = vdupq_n_u8(3), one = vdupq_n_u8(1);
    float32x4_t acc[4];
    float accm[4];
    for (int c = 0; c < nc; c++) acc[c] = vdupq_n_f32(0.0f), accm[c] = 0.0f;
    for (int64_t i = 0; i < n / CPU_QK_K; i++) {
        int8_t sc[16];
        int16x8_t min_lo = vdupq_n_s16(0), min_hi = vdupq_n_s16(0);
        uint8x16_t hm0 = vdupq_n_u8(0), hm1 = vdupq_n_u8(0);
        const uint8_t *qs;
        float dw, dminw = 0.0f;
        if (three) {
            const cpu_block_q3_K *b = (const cpu_block_q3_K *)w + i;
            cpu_q3_K_scales(b->scales, sc);
            hm0 = vld1q_u8(b->hmask);
            hm1 = vld1q_u8(b->hmask + 16);
            qs = b->qs;
            dw = neon_f16_to_f32(b->d);
        } else {
            const cpu_block_q2_K *b = (const cpu_block_q2_K *)w + i;
            const uint8x16_t raw = vld1q_u8(b->scales);
            vst1q_s8(sc, vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0F))));
            const uint8x16_t mn = vshrq_n_u8(raw, 4);
            min_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn)));
            min_hi = vreinterpretq_s16_u16(vmovl_high_u8(mn));
            qs = b->qs;
            dw = neon_f16_to_f32(b->d);
            dminw = neon_f16_to_f32(b->dmin);
        }
        int32x4_t isum[4];
        for (int c = 0; c < nc; c++) isum[c] = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint8x16_t q2a = vld1q_u8(qs + 32 * h), q2b = vld1q_u8(qs + 32 * h + 16);
            for (int s = 0; s < 4; s++) {
                uint8x16_t u0 = vandq_u8(q2a, m3), u1 = vandq_u8(q2b, m3);
                q2a = vshrq_n_u8(q2a, 2);
                q2b = vshrq_n_u8(q2b, 2);
                int8x16_t v0, v1;
                if (three) {
                    u0 = vorrq_u8(u0, vshlq_n_u8(vandq_u8(hm0, one), 2));
                    u1 = vorrq_u8(u1, vshlq_n_u8(vandq_u8(hm1, one), 2));
                    hm0 = vshrq_n_u8(hm0, 1);
                    hm1 = vshrq_n_u8(hm1, 1);
                    v0 = vsubq_s8(vreinterpretq_s8_u8(u0), vdupq_n_s8(4));
                    v1 = vsubq_s8(vreinterpretq_s8_u8(u1), vdupq_n_s8(4));
                } else {
                    v0 = vreinterpretq_s8_u8(u0);
                    v1 = vreinterpretq_s8_u8(u1);
                }
                const int s0 = sc[8 * h + 2 * s], s1 = sc[8 * h + 2 * s + 1];
                for (int c = 0; c < nc; c++) {
                    const int8_t *y = ((const cpu_block_q8_K *)a[c] + i)->qs + 128 * h + 32 * s;
                    isum[c] = vmlaq_n_s32(isum[c], neon_dot_s8(vdupq_n_s32(0), v0, vld1q_s8(y)), s0);
                    isum[c] = vmlaq_n_s32(isum[c], neon_dot_s8(vdupq_n_s32(0), v1, vld1q_s8(y + 16)), s1);
                }
            }
        }
        for (int c = 0; c < nc; c++) {
            const cpu_block_q8_K *y = (const cpu_block_q8_K *)a[c] + i;
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(isum[c]), dw * y->d);
            if (!three) accm[c] -= (y->d * dminw) * (float)bsum_dot(y, min_lo, min_hi);
        }
    }
    for (int c = 0; c < nc; c++) out[c] = vaddvq_f32(acc[c]) + accm[c];
}

CPU_DOT_BY_ROWS(dot_q2_K, dot_q23_K, 0)
CPU_DOT_BY_ROWS(dot_q3_K, dot_q23_K, 1)

/* ---- the table ------------------------------------------------------------ */

const cpu_mm_type neon_mm_types[CPU_N_MM_TYPES] = CPU_MM_TYPES(dot);
