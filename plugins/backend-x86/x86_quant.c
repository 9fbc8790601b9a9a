/* x86_quant.c — the activation encoders of the matmul: f32 columns to q8_0,
 * q8_1 and q8_K blocks, and f32 narrowed to f16 (bf16: cpu_encode_bf16).
 *
 * These must produce exactly the bytes of the core's scalar encoders
 * (core/src/tq_quants.c, tq_quants_k.c), which follow ggml's
 * quantize_row_*_ref:
 *  - q8_0 / q8_1: d = amax / 127, id = 1 / d, q = roundf(x * id), i.e. round
 *    half AWAY from zero. (ggml's own AVX2 encoder rounds half to even; we
 *    keep the reference rule so ref and x86 agree bit for bit.) roundf is
 *    built from truncation: x - trunc(x) is exact in float, and a fraction
 *    of magnitude >= 0.5 moves one step away from zero.
 *  - q8_K: iscale = -127 / (the signed element of largest magnitude, the
 *    first one on ties), q = min(127, round-half-even(iscale * x)),
 *    d = 1 / iscale, bsums = sums of 16.
 * Every product is the same single float multiply as in the scalar code and
 * the reductions are max / integer sums, which do not depend on order, so
 * the results are identical. tests/test_backend_conformance.c checks it. */
#include "x86_internal.h"

#include <math.h>

/* Largest |x| over 8 * nv floats, and the vectors' absolute values. */
X86_INLINE float absmax(const float *x, int nv) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < nv; k++) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* roundf(p) for each lane: trunc, then one step away from zero when the
 * dropped fraction is >= 0.5 in magnitude. */
X86_INLINE __m256i round_half_away(__m256 p) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(p, t));
    const __m256 step = _mm256_or_ps(_mm256_and_ps(p, sign), _mm256_set1_ps(1.0f));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_cvtps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, step)));
}

/* Packs 4 x 8 int32 (each in int8 range) into 32 bytes in element order. */
X86_INLINE __m256i pack_i32x32(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    const __m256i a = _mm256_packs_epi32(i0, i1); /* 0-3 8-11 | 4-7 12-15  */
    const __m256i b = _mm256_packs_epi32(i2, i3);
    const __m256i c = _mm256_packs_epi16(a, b);   /* dword order 0 2 4 6 1 3 5 7 */
    return _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* One 32-element q8 block: stores the quants, returns d; *sum gets sum(q). */
X86_INLINE float q8_block(const float *x, int8_t *qs, int *sum) {
    const float amax = absmax(x, 4);
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = round_half_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32(q[0], q[1], q[2], q[3]));
    if (sum)
        *sum = x86_hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    return d;
}

void x86_quantize_q8_0(const float *x, void *y, int64_t n) {
    cpu_block_q8_0 *b = y;
    for (int64_t i = 0; i < n / CPU_QK; i++, x += CPU_QK) b[i].d = x86_f32_to_f16(q8_block(x, b[i].qs, NULL));
}

void x86_quantize_q8_1(const float *x, void *y, int64_t n) {
    cpu_block_q8_1 *b = y;
    for (int64_t i = 0; i < n / CPU_QK; i++, x += CPU_QK) {
        int sum;
        const float d = q8_block(x, b[i].qs, &sum);
        b[i].d = x86_f32_to_f16(d);
        b[i].s = x86_f32_to_f16((float)sum * d);
    }
}

void x86_quantize_q8_K(const float *x, void *y, int64_t n) {
    cpu_block_q8_K *b = y;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / CPU_QK_K; i++, x += CPU_QK_K) {
        const float amax = absmax(x, 32);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        /* The first element whose magnitude is amax, with its sign. */
        float max = amax;
        const __m256 vamax = _mm256_set1_ps(amax);
        for (int k = 0; k < 32; k++) {
            const __m256 v = _mm256_loadu_ps(x + 8 * k);
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), vamax, _CMP_EQ_OQ));
            if (hit) {
                max = x[8 * k + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        for (int g = 0; g < 8; g++) { /* 32 elements = two bsums groups */
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), vs);
                q[k] = _mm256_min_epi32(
                    _mm256_cvtps_epi32(_mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), top);
            }
            _mm256_storeu_si256((__m256i *)(b[i].qs + 32 * g), pack_i32x32(q[0], q[1], q[2], q[3]));
            b[i].bsums[2 * g] = (int16_t)x86_hsum_i32(_mm256_add_epi32(q[0], q[1]));
            b[i].bsums[2 * g + 1] = (int16_t)x86_hsum_i32(_mm256_add_epi32(q[2], q[3]));
        }
        b[i].d = 1.0f / iscale;
    }
}

void x86_encode_f16(const float *x, void *out, int64_t n) {
    uint16_t *y = out;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = x86_f32_to_f16(x[i]);
}
