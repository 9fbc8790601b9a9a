/* x86_gemm_k.c — prefill (many activation columns) with q4_K / q5_K
 * weights in row-interleaved tiles: the K-quant counterpart of
 * x86_gemm_i8.c (read that first).
 *
 * A q4_K/q5_K super-block has 8 sub-blocks of 32 codes, each with a 6-bit
 * scale and min, and the row's d and dmin. A group of IR = 8 rows is
 * unpacked per super-block into: d and dmin of the 8 rows (f32), per
 * sub-block the 8 rows' scales as int16 pairs (lane r = sc, sc), per pair of
 * sub-blocks the 8 rows' mins (lane r = min of the even, min of the odd
 * sub-block), and per sub-block 8 steps of 32 bytes (codes 4g..4g+3 of each
 * row). Per sub-block and column, 8 maddubs against the activation's codes
 * broadcast give each row's dot product in its own lane, and one madd with
 * the scale pairs both widens it and applies the scale; the mins meet the
 * activation's sub-block sums (from q8_K's bsums) in one madd per pair.
 * The integers are exact (q4_K codes 0..15: 8 steps of pair sums stay below
 * 2^15; q5_K codes 0..31 widen every 4 steps), as in the ref backend; the
 * float work is d * dy * sum - dmin * dy * mins per super-block. */
#include "x86_internal.h"

#define IR 8
#define IC 4
#define COL_BLOCK 64
#define SUB 8   /* sub-blocks of 32 per super-block */

/* Layout of one super-block of a group (all offsets multiples of 32). */
#define OFF_D 0
#define OFF_DMIN 32
#define OFF_SC 64                       /* SUB x 32 bytes   */
#define OFF_MN (OFF_SC + SUB * 32)      /* SUB/2 x 32 bytes */
#define OFF_Q (OFF_MN + SUB / 2 * 32)   /* SUB x 8 x 32     */
#define KBLOCK_BYTES (OFF_Q + SUB * 8 * 32)

size_t x86_gemm_k_buf_bytes(int64_t n_in) { return (size_t)(n_in / CPU_QK_K) * KBLOCK_BYTES; }

/* Codes of sub-blocks 2j (low nibbles) and 2j+1 (high nibbles) of block b,
 * with q5_K's fifth bit from qh (bits 2j and 2j+1 of qh[l]). */
X86_INLINE void sub_codes(const uint8_t *qs, const uint8_t *qh, int j, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
    *lo = _mm256_and_si256(raw, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
    if (qh) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
        *lo = _mm256_or_si256(*lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * j), one), 4));
        *hi = _mm256_or_si256(*hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * j + 1), one), 4));
    }
}

static void repack_k(const void *const *rows, int64_t nb, int five, uint8_t *buf) {
    for (int64_t i = 0; i < nb; i++) {
        uint8_t *blk = buf + (size_t)i * KBLOCK_BYTES;
        float *d = (float *)(void *)(blk + OFF_D), *dmin = (float *)(void *)(blk + OFF_DMIN);
        int32_t *sc = (int32_t *)(void *)(blk + OFF_SC), *mn = (int32_t *)(void *)(blk + OFF_MN);
        const uint8_t *qs[IR], *qh[IR];
        for (int r = 0; r < IR; r++) {
            const uint8_t *scales;
            if (five) {
                const cpu_block_q5_K *b = (const cpu_block_q5_K *)rows[r] + i;
                d[r] = x86_f16_to_f32(b->d), dmin[r] = x86_f16_to_f32(b->dmin);
                scales = b->scales, qs[r] = b->qs, qh[r] = b->qh;
            } else {
                const cpu_block_q4_K *b = (const cpu_block_q4_K *)rows[r] + i;
                d[r] = x86_f16_to_f32(b->d), dmin[r] = x86_f16_to_f32(b->dmin);
                scales = b->scales, qs[r] = b->qs, qh[r] = NULL;
            }
            uint16_t sm[16]; /* scales 0..7, mins 0..7 */
            _mm256_storeu_si256((__m256i *)sm, x86_k4_scales_mins(scales));
            for (int s = 0; s < SUB; s++) sc[s * IR + r] = (int32_t)(sm[s] | (uint32_t)sm[s] << 16);
            for (int p = 0; p < SUB / 2; p++)
                mn[p * IR + r] = (int32_t)(sm[8 + 2 * p] | (uint32_t)sm[8 + 2 * p + 1] << 16);
        }
        __m256i *q = (__m256i *)(void *)(blk + OFF_Q);
        for (int j = 0; j < SUB / 2; j++) {
            __m256i lo[IR], hi[IR];
            for (int r = 0; r < IR; r++) sub_codes(qs[r], qh[r], j, &lo[r], &hi[r]);
            x86_store_steps(lo, q + (2 * j) * 8);
            x86_store_steps(hi, q + (2 * j + 1) * 8);
        }
    }
}

/* out[c] = the group's 8 rows times the q8_K columns a[0..nc). */
X86_INLINE void kernel_k(int64_t nb, const uint8_t *buf, const void *const *a, const int nc, __m256 *out,
                         const int five) {
    __m256 acc[IC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = buf + (size_t)i * KBLOCK_BYTES;
        const __m256i *sc = (const __m256i *)(const void *)(blk + OFF_SC);
        const __m256i *mn = (const __m256i *)(const void *)(blk + OFF_MN);
        const __m256i *q = (const __m256i *)(const void *)(blk + OFF_Q);
        const cpu_block_q8_K *y[IC];
        __m256i isum[IC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            y[c] = (const cpu_block_q8_K *)a[c] + i;
            isum[c] = _mm256_setzero_si256();
        }
        for (int s = 0; s < SUB; s++) {
            const __m256i scv = _mm256_load_si256(sc + s);
            for (int h = 0; h < 8; h += (five ? 4 : 8)) {
                __m256i s16[IC];
                _Pragma("GCC unroll 4")
                for (int c = 0; c < nc; c++) s16[c] = _mm256_setzero_si256();
                for (int g = h; g < h + (five ? 4 : 8); g++) {
                    const __m256i wv = _mm256_load_si256(q + s * 8 + g);
                    _Pragma("GCC unroll 4")
                    for (int c = 0; c < nc; c++)
                        s16[c] = _mm256_add_epi16(s16[c], _mm256_maddubs_epi16(wv, x86_bcast4(y[c]->qs + 32 * s + 4 * g)));
                }
                _Pragma("GCC unroll 4")
                for (int c = 0; c < nc; c++) isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(s16[c], scv));
            }
        }
        const __m256 dv = _mm256_load_ps((const float *)(const void *)(blk + OFF_D));
        const __m256 dminv = _mm256_load_ps((const float *)(const void *)(blk + OFF_DMIN));
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            /* sums of the activation's sub-blocks as int16 pairs (2p, 2p+1) */
            const int16_t *bs = y[c]->bsums;
            __m256i msum = _mm256_setzero_si256();
            for (int p = 0; p < SUB / 2; p++) {
                const uint32_t pair = (uint16_t)(bs[4 * p] + bs[4 * p + 1]) |
                                      (uint32_t)(uint16_t)(bs[4 * p + 2] + bs[4 * p + 3]) << 16;
                msum = _mm256_add_epi32(msum, _mm256_madd_epi16(_mm256_load_si256(mn + p), _mm256_set1_epi32((int)pair)));
            }
            const __m256 dy = _mm256_set1_ps(y[c]->d);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(dv, dy), acc[c]);
            acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dminv, dy), acc[c]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = acc[c];
}

static void kernel_k_any(int64_t nb, const uint8_t *buf, const void *const *a, int nc, __m256 *out, int five) {
#define KCASE(N)                                                 \
    case N:                                                      \
        if (five) kernel_k(nb, buf, a, N, out, 1);               \
        else kernel_k(nb, buf, a, N, out, 0);                    \
        break;
    switch (nc) {
    KCASE(4) KCASE(3) KCASE(2)
    default: KCASE(1)
    }
#undef KCASE
}

void x86_gemm_k(const tq_tensor *w, int64_t lo, int64_t hi, const char *act, size_t act_stride,
                int64_t n_cols, float *dst, int64_t n_out, void *buf) {
    const int64_t nb = w->ne[0] / CPU_QK_K;
    const int five = w->type == TQ_TYPE_Q5_K;
    for (int64_t c0 = 0; c0 < n_cols; c0 += COL_BLOCK) {
        const int64_t c1 = c0 + COL_BLOCK < n_cols ? c0 + COL_BLOCK : n_cols;
        for (int64_t r = lo; r < hi; r += IR) {
            const int nr = hi - r < IR ? (int)(hi - r) : IR;
            const void *rows[IR];
            x86_group_rows(w, r, nr, rows);
            repack_k(rows, nb, five, buf);
            for (int64_t c = c0; c < c1; c += IC) {
                const int nc = c1 - c < IC ? (int)(c1 - c) : IC;
                const void *a[IC];
                for (int k = 0; k < nc; k++) a[k] = act + (size_t)(c + k) * act_stride;
                __m256 out[IC];
                kernel_k_any(nb, buf, a, nc, out, five);
                x86_store_group(dst, n_out, r, nr, c, out, nc);
            }
        }
    }
}
