/* x86_gemm_i8.c — prefill (many activation columns) with q4_0 / q5_0 /
 * q8_0 weights, rows interleaved so that the SIMD lanes are weight rows.
 *
 * The general kernels (x86_matmul.c) dot one weight row with a column: 8
 * int32 lanes of partial sums per 32-element block, each block converted to
 * float, scaled and accumulated, and a horizontal sum per output at the end.
 * Here a group of IR = 8 rows is first unpacked into a thread-local buffer,
 * per block: the 8 row scales as f32, then 8 "steps" of 32 bytes, step g
 * holding codes 4g..4g+3 of each of the 8 rows. One step times the
 * activation's 4 codes 4g..4g+3 broadcast to every lane (maddubs) adds to
 * each row's own int16 lane pair, so after 8 steps lane r holds row r's
 * whole block dot product: one int32 per row, one conversion and one FMA
 * for 8 outputs, and no horizontal sums. The unpacking costs about as much
 * as one column's products and is shared by a block of COL_BLOCK columns.
 *
 * Codes are the unsigned values the formats store (q4_0: 0..15, q5_0:
 * 0..31) and the bias (8, 16) times the activation's block sum is taken off
 * the int32 afterwards, so each block's integer dot product is exact (int16
 * pair sums stay below 2^15: 8 steps of 2 * 15 * 127 for q4_0; q5_0 widens
 * to int32 every 4 steps; q8_0 codes are signed and go through the sign
 * trick, one step at a time). The float work per block is the ref backend's
 * (an exact int times the two scales, accumulated over blocks), in a
 * different rounding order (dw * da first, FMA), which the conformance test
 * bounds like every other kernel. */
#include "x86_internal.h"

#define IR 8          /* rows per interleaved group: the int32 lanes      */
#define IC 4          /* columns per micro-kernel call                    */
#define COL_BLOCK 64  /* columns whose biases and activations stay in L2 */
#define BLOCK_BYTES (IR * sizeof(float) + IR * CPU_QK) /* one block of a group */

enum { I8_Q4_0, I8_Q5_0, I8_Q8_0 };

size_t x86_gemm_i8_buf_bytes(int64_t n_in) {
    const size_t nb = (size_t)(n_in / CPU_QK);
    return nb * BLOCK_BYTES + (size_t)COL_BLOCK * nb * sizeof(int32_t);
}

/* Block i of a row as 32 codes, element k in byte k: unsigned for q4_0 and
 * q5_0, the signed bytes themselves for q8_0. */
X86_INLINE __m256i codes(const void *row, int64_t i, const int T, float *d) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if (T == I8_Q8_0) {
        const cpu_block_q8_0 *b = (const cpu_block_q8_0 *)row + i;
        *d = x86_f16_to_f32(b->d);
        return _mm256_loadu_si256((const __m256i *)b->qs);
    }
    if (T == I8_Q4_0) {
        const cpu_block_q4_0 *b = (const cpu_block_q4_0 *)row + i;
        const __m128i t = _mm_loadu_si128((const __m128i *)b->qs);
        *d = x86_f16_to_f32(b->d);
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
    }
    const cpu_block_q5_0 *b = (const cpu_block_q5_0 *)row + i;
    const __m128i t = _mm_loadu_si128((const __m128i *)b->qs);
    uint32_t qh;
    memcpy(&qh, b->qh, sizeof qh);
    /* byte k = bit k of qh, as 0x10 */
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                            0x0202020202020202, 0x0303030303030303);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit), _mm256_set1_epi8(0x10));
    *d = x86_f16_to_f32(b->d);
    return _mm256_or_si256(_mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4), hi);
}

/* The 8 rows rows[0..8) (nb blocks each) into the interleaved layout. */
static void repack(const void *const *rows, int64_t nb, const int T, uint8_t *buf) {
    for (int64_t i = 0; i < nb; i++) {
        float *d = (float *)(void *)(buf + (size_t)i * BLOCK_BYTES);
        __m256i v[IR];
        for (int r = 0; r < IR; r++) v[r] = codes(rows[r], i, T, &d[r]);
        x86_store_steps(v, (__m256i *)(void *)(d + IR));
    }
}

/* out[c][0..8) = the 8 rows of the group in buf times columns a[0..nc),
 * whose per-block biases are bias[c][i]. */
X86_INLINE void kernel(int64_t nb, const uint8_t *buf, const void *const *a, const int32_t *const *bias,
                       const int nc, __m256 *out, const int T) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[IC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float *dw = (const float *)(const void *)(buf + (size_t)i * BLOCK_BYTES);
        const __m256i *q = (const __m256i *)(const void *)(dw + IR);
        const cpu_block_q8_0 *y[IC];
        __m256i s32[IC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            y[c] = (const cpu_block_q8_0 *)a[c] + i;
            s32[c] = _mm256_setzero_si256();
        }
        /* q4_0: all 8 steps in int16; q5_0: two halves of 4; q8_0 (signed
         * codes, the sign trick: |w| times y with w's sign) one step at a
         * time, since one step's pair sums already reach 2 * 127 * 127. */
        const int span = T == I8_Q4_0 ? 8 : T == I8_Q5_0 ? 4 : 1;
        for (int half = 0; half < 8; half += span) {
            __m256i s16[IC];
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++) s16[c] = _mm256_setzero_si256();
            for (int g = half; g < half + span; g++) {
                const __m256i wv = _mm256_load_si256(q + g);
                if (T == I8_Q8_0) {
                    const __m256i aw = _mm256_sign_epi8(wv, wv);
                    _Pragma("GCC unroll 4")
                    for (int c = 0; c < nc; c++)
                        s16[c] = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x86_bcast4(y[c]->qs + 4 * g), wv));
                } else {
                    _Pragma("GCC unroll 4")
                    for (int c = 0; c < nc; c++)
                        s16[c] = _mm256_add_epi16(s16[c], _mm256_maddubs_epi16(wv, x86_bcast4(y[c]->qs + 4 * g)));
                }
            }
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++) s32[c] = _mm256_add_epi32(s32[c], _mm256_madd_epi16(s16[c], ones));
        }
        const __m256 dwv = _mm256_load_ps(dw);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const __m256i p = _mm256_sub_epi32(s32[c], _mm256_set1_epi32(bias[c][i]));
            const __m256 s = _mm256_mul_ps(dwv, _mm256_set1_ps(x86_f16_to_f32(y[c]->d)));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[c]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = acc[c];
}

static void kernel_any(int64_t nb, const uint8_t *buf, const void *const *a, const int32_t *const *bias,
                       int nc, __m256 *out, int T) {
#define KCASE(N)                                                                            \
    case N:                                                                                 \
        if (T == I8_Q4_0) kernel(nb, buf, a, bias, N, out, I8_Q4_0);                        \
        else if (T == I8_Q5_0) kernel(nb, buf, a, bias, N, out, I8_Q5_0);                   \
        else kernel(nb, buf, a, bias, N, out, I8_Q8_0);                                     \
        break;
    switch (nc) {
    KCASE(4) KCASE(3) KCASE(2)
    default: KCASE(1)
    }
#undef KCASE
}

/* bias[i] = code bias * sum of block i's activation codes. */
static void column_bias(const void *col, int64_t nb, int32_t scale, int32_t *bias) {
    for (int64_t i = 0; i < nb; i++) {
        const cpu_block_q8_0 *y = (const cpu_block_q8_0 *)col + i;
        const __m256i q = _mm256_loadu_si256((const __m256i *)y->qs);
        /* sum of 32 int8: |q| with q's sign moved onto the ones */
        const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
        bias[i] = scale * x86_hsum_i32(s);
    }
}

void x86_gemm_i8(const tq_tensor *w, int64_t lo, int64_t hi, const char *act, size_t act_stride,
                 int64_t n_cols, float *dst, int64_t n_out, void *buf) {
    const int64_t nb = w->ne[0] / CPU_QK;
    const int T = w->type == TQ_TYPE_Q4_0 ? I8_Q4_0 : w->type == TQ_TYPE_Q5_0 ? I8_Q5_0 : I8_Q8_0;
    uint8_t *wbuf = buf;
    int32_t *biases = (int32_t *)(void *)(wbuf + (size_t)nb * BLOCK_BYTES);
    for (int64_t c0 = 0; c0 < n_cols; c0 += COL_BLOCK) {
        const int64_t c1 = c0 + COL_BLOCK < n_cols ? c0 + COL_BLOCK : n_cols;
        for (int64_t c = c0; c < c1; c++)
            column_bias(act + (size_t)c * act_stride, nb, T == I8_Q4_0 ? 8 : T == I8_Q5_0 ? 16 : 0,
                        biases + (c - c0) * nb);
        for (int64_t r = lo; r < hi; r += IR) {
            const int nr = hi - r < IR ? (int)(hi - r) : IR;
            const void *rows[IR];
            x86_group_rows(w, r, nr, rows);
            repack(rows, nb, T, wbuf);
            for (int64_t c = c0; c < c1; c += IC) {
                const int nc = c1 - c < IC ? (int)(c1 - c) : IC;
                const void *a[IC];
                const int32_t *bias[IC];
                for (int k = 0; k < nc; k++) {
                    a[k] = act + (size_t)(c + k) * act_stride;
                    bias[k] = biases + (c + k - c0) * nb;
                }
                __m256 out[IC];
                kernel_any(nb, wbuf, a, bias, nc, out, T);
                x86_store_group(dst, n_out, r, nr, c, out, nc);
            }
        }
    }
}
