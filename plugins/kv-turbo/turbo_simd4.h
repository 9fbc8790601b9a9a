/* turbo_simd4.h — the few 4-lane operations the rotation, the encoder's
 * centroid search and the V projection's basis products use, on the baseline vector unit of the target (SSE2 on
 * x86-64, Advanced SIMD on aarch64; neither needs a CPU check), so one
 * loop serves both. TURBO_SIMD4 names the unit; it is left undefined
 * elsewhere, and the callers keep their scalar code for that case.
 *
 * Every float operation is one IEEE operation, lane by lane, as the scalar
 * code writes it (no fused multiply-add), so results are bit-identical to
 * the scalar references. */
#ifndef TURBO_SIMD4_H
#define TURBO_SIMD4_H

#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define TURBO_SIMD4 "sse2"
typedef __m128 v4;      /* 4 floats                  */
typedef __m128i v4u;    /* 4 32-bit counters         */
#define v4_load(p) _mm_loadu_ps(p)
#define v4_store(p, x) _mm_storeu_ps(p, x)
#define v4_add(a, b) _mm_add_ps(a, b)
#define v4_sub(a, b) _mm_sub_ps(a, b)
#define v4_mul(a, b) _mm_mul_ps(a, b)
#define v4_set1(x) _mm_set1_ps(x)
#define v4u_zero() _mm_setzero_si128()
/* k + (a > b ? 1 : 0) per lane: a true compare is all ones, -1. */
#define v4u_count_gt(k, a, b) _mm_sub_epi32(k, _mm_castps_si128(_mm_cmpgt_ps(a, b)))
/* The low bytes of 16 counters (each 0..255) to out[0..16). */
static inline void v4u_store_u8x16(uint8_t *out, v4u k0, v4u k1, v4u k2, v4u k3) {
    _mm_storeu_si128((__m128i *)(void *)out,
                     _mm_packus_epi16(_mm_packs_epi32(k0, k1), _mm_packs_epi32(k2, k3)));
}
/* x with the sign flipped in the lanes whose n0..n3 is nonzero. */
static inline v4 v4_negate_lanes(v4 x, int n0, int n1, int n2, int n3) {
    const int s = (int)0x80000000u;
    return _mm_xor_ps(x, _mm_castsi128_ps(_mm_set_epi32(n3 ? s : 0, n2 ? s : 0, n1 ? s : 0, n0 ? s : 0)));
}
/* Four binary16 values to floats: turbo_f16_to_f32's operations lane by
 * lane (the bits, one float multiply, one float subtract). */
static inline v4 v4_from_f16(const uint16_t *p) {
    const __m128i w = _mm_slli_epi32(_mm_unpacklo_epi16(_mm_loadl_epi64((const __m128i *)(const void *)p),
                                                        _mm_setzero_si128()), 16);
    const __m128i sign = _mm_and_si128(w, _mm_set1_epi32((int)0x80000000u));
    const __m128i two_w = _mm_add_epi32(w, w);
    const __m128 norm = _mm_mul_ps(_mm_castsi128_ps(_mm_add_epi32(_mm_srli_epi32(two_w, 4),
                                                                  _mm_set1_epi32(0xE0 << 23))),
                                   _mm_castsi128_ps(_mm_set1_epi32(0x7800000)));
    const __m128 denorm = _mm_sub_ps(_mm_castsi128_ps(_mm_or_si128(_mm_srli_epi32(two_w, 17),
                                                                   _mm_set1_epi32(126 << 23))),
                                     _mm_set1_ps(0.5f));
    /* two_w < 2^27 (unsigned): its top five bits are clear */
    const __m128 small = _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_srli_epi32(two_w, 27), _mm_setzero_si128()));
    return _mm_or_ps(_mm_castsi128_ps(sign),
                     _mm_or_ps(_mm_and_ps(small, denorm), _mm_andnot_ps(small, norm)));
}
/* rows r[0..4) to columns in place */
#define v4_transpose(r) _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3])
/* [x0, x0, x2, x2], [x1, x1, x3, x3], [x0, x1, x0, x1], [x2, x3, x2, x3] */
#define v4_evens(x) _mm_shuffle_ps(x, x, _MM_SHUFFLE(2, 2, 0, 0))
#define v4_odds(x) _mm_shuffle_ps(x, x, _MM_SHUFFLE(3, 3, 1, 1))
#define v4_lows(x) _mm_shuffle_ps(x, x, _MM_SHUFFLE(1, 0, 1, 0))
#define v4_highs(x) _mm_shuffle_ps(x, x, _MM_SHUFFLE(3, 2, 3, 2))
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define TURBO_SIMD4 "neon"
typedef float32x4_t v4;
typedef uint32x4_t v4u;
#define v4_load(p) vld1q_f32(p)
#define v4_store(p, x) vst1q_f32(p, x)
#define v4_add(a, b) vaddq_f32(a, b)
#define v4_sub(a, b) vsubq_f32(a, b)
#define v4_mul(a, b) vmulq_f32(a, b)
#define v4_set1(x) vdupq_n_f32(x)
#define v4u_zero() vdupq_n_u32(0)
#define v4u_count_gt(k, a, b) vsubq_u32(k, vcgtq_f32(a, b))
static inline void v4u_store_u8x16(uint8_t *out, v4u k0, v4u k1, v4u k2, v4u k3) {
    const uint16x8_t lo = vcombine_u16(vmovn_u32(k0), vmovn_u32(k1));
    const uint16x8_t hi = vcombine_u16(vmovn_u32(k2), vmovn_u32(k3));
    vst1q_u8(out, vcombine_u8(vmovn_u16(lo), vmovn_u16(hi)));
}
static inline v4 v4_negate_lanes(v4 x, int n0, int n1, int n2, int n3) {
    const uint32x4_t neg = {n0 ? 0x80000000u : 0, n1 ? 0x80000000u : 0, n2 ? 0x80000000u : 0,
                            n3 ? 0x80000000u : 0};
    return vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(x), neg));
}
static inline v4 v4_from_f16(const uint16_t *p) {
    const uint32x4_t w = vshlq_n_u32(vmovl_u16(vld1_u16(p)), 16);
    const uint32x4_t sign = vandq_u32(w, vdupq_n_u32(0x80000000u));
    const uint32x4_t two_w = vaddq_u32(w, w);
    const float32x4_t norm =
        vmulq_f32(vreinterpretq_f32_u32(vaddq_u32(vshrq_n_u32(two_w, 4), vdupq_n_u32(0xE0u << 23))),
                  vreinterpretq_f32_u32(vdupq_n_u32(0x7800000u)));
    const float32x4_t denorm =
        vsubq_f32(vreinterpretq_f32_u32(vorrq_u32(vshrq_n_u32(two_w, 17), vdupq_n_u32(126u << 23))),
                  vdupq_n_f32(0.5f));
    const uint32x4_t small = vcltq_u32(two_w, vdupq_n_u32(1u << 27));
    return vreinterpretq_f32_u32(
        vorrq_u32(sign, vbslq_u32(small, vreinterpretq_u32_f32(denorm), vreinterpretq_u32_f32(norm))));
}
static inline void v4_transpose_(v4 *r) {
    const v4 t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
    const v4 t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}
#define v4_transpose(r) v4_transpose_(r)
#define v4_evens(x) vtrn1q_f32(x, x)
#define v4_odds(x) vtrn2q_f32(x, x)
#define v4_lows(x) vcombine_f32(vget_low_f32(x), vget_low_f32(x))
#define v4_highs(x) vcombine_f32(vget_high_f32(x), vget_high_f32(x))
#endif

#ifdef TURBO_SIMD4
/* The first two Hadamard stages inside one vector, with the scalar
 * butterflies' operations (a - c as a + (-c), which IEEE defines alike):
 * h1 = [x0 + x1, x0 - x1, x2 + x3, x2 - x3], h2 = [x0 + x2, x1 + x3, x0 - x2, x1 - x3]. */
static inline v4 v4_h1(v4 x) { return v4_add(v4_evens(x), v4_negate_lanes(v4_odds(x), 0, 1, 0, 1)); }
static inline v4 v4_h2(v4 x) { return v4_add(v4_lows(x), v4_negate_lanes(v4_highs(x), 0, 0, 1, 1)); }
#endif

#endif
