/* neon_internal.h — what the files of the NEON backend share: the kernel
 * entry points and the small SIMD helpers every kernel uses.
 *
 * The same sources are built twice (meson.build): for armv8-a (Advanced
 * SIMD only: integer dots by widening multiplies, vmull + vpadal) and for
 * armv8.2-a+dotprod (sdot, vdotq_s32). Code that differs between the two
 * tests the compiler's __ARM_FEATURE_DOTPROD; everything else is armv8-a
 * NEON and runs in both. Devices, buffers, supports(), the matmul driver
 * and the ops around these kernels come from plugins/common/cpu_*.c. */
#ifndef NEON_INTERNAL_H
#define NEON_INTERNAL_H

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu_backend.h"

#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "backend-neon is built for aarch64 with Advanced SIMD"
#endif

#if defined(__ARM_FEATURE_DOTPROD)
#define NEON_DOTPROD 1
#define NEON_VARIANT "dotprod"
#else
#define NEON_DOTPROD 0
#define NEON_VARIANT "armv8"
#endif

#define NEON_INLINE static inline __attribute__((always_inline))

/* ---- kernels (neon_matmul.c, neon_ops.c) ----------------------------------- */

/* The weight types MUL_MAT takes, with their dot products. */
extern const cpu_mm_type neon_mm_types[CPU_N_MM_TYPES];
#define NEON_MM_ROWS 2 /* weight rows per dot call (float weights)  */
#define NEON_MM_COLS 4 /* activation columns per dot call           */
/* Float weights from 16 columns on (prefill): x86's one-chain order. */
#define NEON_N_GEMMS 3
extern const cpu_mm_gemm neon_gemms[NEON_N_GEMMS];

/* The inner loops of the shared ops (cpu_kernels, neon_ops.c). */
#define NEON_ATT_ALIGN 8 /* head_dim multiple neon_dot and neon_axpy take */
void neon_f16_row(const uint16_t *src, float *dst, int64_t n);
double neon_sum_squares(const float *x, int64_t n);
void neon_rope_rows(const float *src, float *out, const float *cs, int64_t n_rot, int neox);
float neon_dot(const float *a, const float *b, int64_t n);
void neon_axpy(float *y, float p, const float *x, int64_t n);
/* cpu_kernels.f16_round_row and att_vacc16 (llama.cpp's f16 accumulation). */
void neon_f16_round_row(const float *x, float *y, int64_t n);
void neon_att_vacc16(const char *v, size_t stride, const float *const *w, const float *const *ms, const uint8_t *ev,
                     int np, int64_t n_keys, int64_t n, float *const *acc);

/* ---- activation encoders (neon_quant.c) ------------------------------------ */

/* Bit-identical to the core's tq_quantize_row_q8_0 / q8_1 / q8_K; n is a
 * multiple of the block size. [any] */
void neon_quantize_q8_0(const float *x, void *y, int64_t n);
void neon_quantize_q8_1(const float *x, void *y, int64_t n);
void neon_quantize_q8_K(const float *x, void *y, int64_t n);
/* x narrowed to f16, n uint16 at y (what ggml feeds f16 dots). */
void neon_encode_f16(const float *x, void *y, int64_t n);

/* ---- helpers ------------------------------------------------------------- */

/* Conversions by the FCVT instructions of base armv8-a, which round to
 * nearest even: equal to the core's tq_f16_to_f32 / tq_f32_to_f16 for every
 * non-NaN value, subnormals included (Linux leaves FPCR's flush-to-zero
 * bits clear). */
NEON_INLINE float neon_f16_to_f32(uint16_t h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}
NEON_INLINE uint16_t neon_f32_to_f16(float f) {
    return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0);
}

/* Float sums follow the x86 backend's AVX2 order: an 8-lane __m256
 * accumulator is a pair of NEON vectors (lanes 0-3, 4-7), FMA for FMA, and
 * horizontal sums as x86_hsum forms them. Float-weight matmuls (dot_float's
 * two chains for a few columns, gemm_float's one chain from 16 columns on,
 * as x86), attention and rms_norm then give the x86 backend's results bit
 * for bit. */

/* x86_hsum of the 8 lanes (lo, hi): (l0+l4) + (l2+l6) + ((l1+l5) + (l3+l7)). */
NEON_INLINE float neon_hsum8(float32x4_t lo, float32x4_t hi) {
    const float32x4_t s = vaddq_f32(lo, hi);
    const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

/* acc + the sums of 16 int8 x int8 products, spread over 4 int32 lanes
 * (which lane gets which products differs between the variants; callers
 * use only the total, or scale all four lanes alike). Exact: a product is
 * at most 2^14 in magnitude, so it fits vmull_s8's int16 lanes, and vpadal
 * widens to int32 before it adds. */
NEON_INLINE int32x4_t neon_dot_s8(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if NEON_DOTPROD
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

/* The dot of 32 int8 pairs (two vectors each) as 4 int32 lanes. */
NEON_INLINE int32x4_t neon_dot_s8x2(int8x16_t a0, int8x16_t a1, const int8_t *b) {
    return neon_dot_s8(neon_dot_s8(vdupq_n_s32(0), a0, vld1q_s8(b)), a1, vld1q_s8(b + 16));
}

#endif
