/* x86_internal.h — what the files of the x86 backend share: the kernel
 * entry points and the small SIMD helpers every kernel uses.
 *
 * The same sources are built twice (meson.build): once with AVX2+FMA+F16C
 * and once with AVX-512 F/BW/VL/VNNI. Code that differs between the two
 * tests the compiler's __AVX512VNNI__ / __AVX512F__ macros; everything else
 * is AVX2 and runs in both. Devices, buffers, supports(), the matmul driver
 * and the ops around these kernels come from plugins/common/cpu_*.c. */
#ifndef X86_INTERNAL_H
#define X86_INTERNAL_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_blocks.h"

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "backend-x86 must be compiled with -mavx2 -mfma -mf16c (or the AVX-512 flags)"
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define X86_VNNI 1
#define X86_VARIANT "avx512"
#else
#define X86_VNNI 0
#define X86_VARIANT "avx2"
#endif

#define X86_INLINE static inline __attribute__((always_inline))

/* ---- kernels (x86_matmul.c, x86_gemm_*.c, x86_ops.c) ----------------------- */

/* The weight types MUL_MAT takes, with their dot products. */
extern const cpu_mm_type x86_mm_types[CPU_N_MM_TYPES];
#define X86_MM_ROWS 4 /* weight rows per dot call                  */
#define X86_MM_COLS 4 /* activation columns per dot call           */
/* Prefill paths: float weights in widened register tiles (x86_matmul.c),
 * q4_0 / q5_0 / q8_0 (x86_gemm_i8.c) and q4_K / q5_K (x86_gemm_k.c) in
 * row-interleaved tiles; decode path: q4_0 / q5_0 / q8_0 rows against a
 * column prepared once per node (x86_matmul.c). */
#define X86_N_GEMMS 8
extern const cpu_mm_gemm x86_gemms[X86_N_GEMMS];
#define X86_N_GEMVS 9
extern const cpu_mm_gemv x86_gemvs[X86_N_GEMVS];

/* The row-interleaved prefill tiles (cpu_mm_gemm.run): rows [lo, hi) of w
 * times n_cols q8_0 (resp. q8_K) encoded columns into dst; buf is the
 * calling thread's own x86_gemm_*_buf_bytes(n_in). */
size_t x86_gemm_i8_buf_bytes(int64_t n_in);
void x86_gemm_i8(const tq_tensor *w, int64_t lo, int64_t hi, const char *act, size_t act_stride,
                 int64_t n_cols, float *dst, int64_t n_out, void *buf);
size_t x86_gemm_k_buf_bytes(int64_t n_in);
void x86_gemm_k(const tq_tensor *w, int64_t lo, int64_t hi, const char *act, size_t act_stride,
                int64_t n_cols, float *dst, int64_t n_out, void *buf);

/* The inner loops of the shared ops (cpu_kernels, x86_ops.c). */
#define X86_ATT_ALIGN 8 /* head_dim multiple the attention loops take */
void x86_f16_row(const uint16_t *src, float *dst, int64_t n);
double x86_sum_squares(const float *x, int64_t n);
void x86_rope_rows(const float *src, float *out, const float *cs, int64_t n_rot, int neox);
float x86_dot(const float *a, const float *b, int64_t n);
void x86_axpy(float *y, float p, const float *x, int64_t n);
void x86_att_dots(const float *rows, int nr, const float *const *q, int nq, int64_t n, float *out,
                  size_t out_stride);
void x86_att_vsum(const char *v, size_t stride, tq_type type, const float *const *p, int np, const int64_t *n_keys,
                  int64_t n, float *const *out);
/* y[i] = expf(x[i]), the C library's result bit for bit (x86_expf.c). */
void x86_expf_row(const float *x, float *y, int64_t n);
/* cpu_kernels.f16_round_row and att_vacc16 (llama.cpp's f16 accumulation). */
void x86_f16_round_row(const float *x, float *y, int64_t n);
void x86_att_vacc16(const char *v, size_t stride, const float *const *w, const float *const *ms, const uint8_t *ev,
                    int np, int64_t n_keys, int64_t n, float *const *acc);

/* ---- activation encoders (x86_quant.c) ----------------------------------- */

/* Bit-identical to the core's tq_quantize_row_q8_0 / q8_1 / q8_K; n is a
 * multiple of the block size. [any] */
void x86_quantize_q8_0(const float *x, void *y, int64_t n);
void x86_quantize_q8_1(const float *x, void *y, int64_t n);
void x86_quantize_q8_K(const float *x, void *y, int64_t n);
/* x narrowed to f16, n uint16 at y (what ggml feeds f16 dots). */
void x86_encode_f16(const float *x, void *y, int64_t n);

/* ---- helpers ------------------------------------------------------------- */

X86_INLINE float x86_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
/* Round to nearest even, as the core's tq_f32_to_f16 (equal for non-NaN). */
X86_INLINE uint16_t x86_f32_to_f16(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

/* Decoding streams every weight once and does little arithmetic per byte,
 * and on the development VM (Zen 3) the hardware prefetchers alone left the
 * GEMVs at 55-65% of the read bandwidth: the kernels read a single row at a
 * time with a short FMA chain per block, so few misses were in flight.
 * Asking for the line this many bytes ahead of the one being read raised
 * Q8_0 decode by about a quarter (1024: +23%, 2048: +26%, 4096: +19%;
 * medians of 7 alternating runs, TinyLlama-1.1B, 2 threads). */
#define X86_DECODE_PREFETCH 2048

/* Prefetches the cache lines of [p, p + bytes) moved X86_DECODE_PREFETCH ahead. */
X86_INLINE void x86_prefetch_ahead(const void *p, const int bytes) {
    for (int o = 0; o < bytes; o += 64) _mm_prefetch((const char *)p + X86_DECODE_PREFETCH + o, _MM_HINT_T0);
}

X86_INLINE float x86_hsum128(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

X86_INLINE float x86_hsum(__m256 v) {
    return x86_hsum128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

X86_INLINE int32_t x86_hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* acc + sums of 4 adjacent u8 x s8 products (32 pairs -> 8 int32 lanes).
 * Exact as long as no pair of products exceeds int16 (AVX2's maddubs
 * saturates); every caller stays within |u| <= 128, |s| <= 127. */
X86_INLINE __m256i x86_dot_us8(__m256i acc, __m256i u, __m256i s) {
#if X86_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* The same for two signed operands: |x| times y with x's sign moved over. */
X86_INLINE __m256i x86_dot_s8(__m256i acc, __m256i x, __m256i y) {
    return x86_dot_us8(acc, _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* 4 bytes at p broadcast to every int32 lane. */
X86_INLINE __m256i x86_bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* The row-interleaved "steps" of the prefill tiles (x86_gemm_i8.c,
 * x86_gemm_k.c): v[r] holds 32 codes of row r; q[g] receives bytes
 * 4g..4g+3 of v[0], v[1], ..., v[7] (an 8 x 8 transpose of int32). q is
 * 32-byte aligned. */
X86_INLINE void x86_store_steps(const __m256i v[8], __m256i *q) {
    __m256i t[8], u[8];
    for (int r = 0; r < 8; r += 2) {
        t[r] = _mm256_unpacklo_epi32(v[r], v[r + 1]);
        t[r + 1] = _mm256_unpackhi_epi32(v[r], v[r + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);
        u[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]);
        u[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]);
        u[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]);
    }
    for (int g = 0; g < 4; g++) {
        _mm256_store_si256(q + g, _mm256_permute2x128_si256(u[g], u[g + 4], 0x20));
        _mm256_store_si256(q + g + 4, _mm256_permute2x128_si256(u[g], u[g + 4], 0x31));
    }
}

/* The 8 weight rows of a row-interleaved group starting at row r, of which
 * nr (1..8) exist: the missing ones repeat the last (their lanes are
 * computed and dropped). */
X86_INLINE void x86_group_rows(const tq_tensor *w, int64_t r, int nr, const void *rows[8]) {
    for (int j = 0; j < 8; j++) rows[j] = cpu_row(w, r + (j < nr ? j : nr - 1));
}

/* Stores lanes 0..nr of out[k] (row r.. of column c + k, k < nc) into dst,
 * n_out floats per column. */
X86_INLINE void x86_store_group(float *dst, int64_t n_out, int64_t r, int nr, int64_t c, const __m256 *out,
                                int nc) {
    for (int k = 0; k < nc; k++) {
        float *o = dst + (c + k) * n_out + r;
        if (nr == 8) {
            _mm256_storeu_ps(o, out[k]);
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, out[k]);
            memcpy(o, tmp, (size_t)nr * sizeof(float));
        }
    }
}

/* The 6-bit scales and mins of the 8 sub-blocks of a q4_K/q5_K block as
 * int16: scales 0..7 in the low 128 bits, mins 0..7 in the high ones (the
 * values of get_scale_min_k4 in core/src/tq_quants_k.c, unpacked with
 * 32-bit masks as ggml does instead of byte by byte). */
X86_INLINE __m256i x86_k4_scales_mins(const uint8_t *s) {
    uint32_t u[4];
    memcpy(u, s, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    const uint32_t mins_lo = u[1] & 0x3f3f3f3fu;
    u[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    u[2] = mins_lo;
    u[0] &= 0x3f3f3f3fu;
    return _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
}


#endif
