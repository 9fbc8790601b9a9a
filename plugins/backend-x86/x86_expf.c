/* x86_expf.c — expf over a row, 8 lanes at a time, with the same result as
 * the C library's expf for every input.
 *
 * Why: softmax (attention) and silu/swiglu called expf once per element;
 * in tm30m F16 prefill those calls and their loops were about 6% of the
 * time. The shared ops must stay bit-identical to the ref backend (which
 * calls expf), so this is not a faster approximation but glibc's own
 * algorithm (sysdeps/ieee754/flt-32/e_expf.c, glibc 2.28 onwards, in its
 * FMA build __expf_fma that the ifunc picks on any CPU this plugin runs
 * on), lane by lane in double precision with the same fused operations:
 *
 *   k + r = x * 32/ln2, k = round(z) through the 1.5 * 2^52 shift,
 *   2^(k/32) from a 32-entry table with the exponent added in,
 *   2^(r/32) = 1 + C2 r + (C0 r + C1) r^2, one rounding to float.
 *
 * The table and constants are glibc's __exp2f_data (read out of libm and
 * checked against the published source). Inputs glibc treats specially
 * (|x| >= 88, NaN, infinities) go to the library's expf itself, a group of
 * 8 at a time, so errno and the overflow/underflow results are its own.
 * The conformance test compares this with expf on a sweep of 2^24 inputs
 * over the whole float line; an exhaustive run over all 2^32 floats
 * (tests/test_backend_conformance.c, TQ_EXPF_EXHAUSTIVE=1) matched too.
 * A C library with another expf (musl, say) would make the x86 and ref
 * backends differ by an ulp here and there, within the conformance bounds. */
#include <math.h>

#include "x86_internal.h"

#define EXP2F_N 32
static const uint64_t exp2f_tab[EXP2F_N] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

X86_INLINE __m256d dbits(uint64_t u) { return _mm256_castsi256_pd(_mm256_set1_epi64x((long long)u)); }

/* expf of 4 floats (widened to double) that are not special. */
X86_INLINE __m128 expf4(__m128 x) {
    const __m256d inv_ln2_n = dbits(0x40471547652b82feull); /* 32 / ln 2       */
    const __m256d shift = dbits(0x4338000000000000ull);     /* 1.5 * 2^52     */
    const __m256d c0 = dbits(0x3ebc6af84b912394ull), c1 = dbits(0x3f2ebfce50fac4f3ull),
                  c2 = dbits(0x3f962e42ff0c52d6ull);
    const __m256d xd = _mm256_cvtps_pd(x);
    __m256d kd = _mm256_fmadd_pd(inv_ln2_n, xd, shift);
    const __m256i ki = _mm256_castpd_si256(kd);
    kd = _mm256_sub_pd(kd, shift);
    const __m256d r = _mm256_fmsub_pd(inv_ln2_n, xd, kd);
    const __m256i idx = _mm256_and_si256(ki, _mm256_set1_epi64x(EXP2F_N - 1));
    const __m256i t = _mm256_add_epi64(_mm256_i64gather_epi64((const long long *)(const void *)exp2f_tab, idx, 8),
                                       _mm256_slli_epi64(ki, 52 - 5));
    const __m256d z = _mm256_fmadd_pd(c0, r, c1);
    const __m256d r2 = _mm256_mul_pd(r, r);
    __m256d y = _mm256_fmadd_pd(c2, r, _mm256_set1_pd(1.0));
    y = _mm256_fmadd_pd(z, r2, y);
    y = _mm256_mul_pd(y, _mm256_castsi256_pd(t));
    return _mm256_cvtpd_ps(y);
}

void x86_expf_row(const float *x, float *y, int64_t n) {
    /* glibc's test: top 12 bits of |x| (exponent and 3 mantissa bits) at
     * least those of 88.0f, i.e. |x| >= 88, NaN or infinite. */
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), lim = _mm256_set1_epi32(0x42afffff);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256i special = _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_castps_si256(v), abs_mask), lim);
        if (!_mm256_testz_si256(special, special)) {
            for (int k = 0; k < 8; k++) y[i + k] = expf(x[i + k]);
            continue;
        }
        const __m128 lo = expf4(_mm256_castps256_ps128(v)), hi = expf4(_mm256_extractf128_ps(v, 1));
        _mm256_storeu_ps(y + i, _mm256_set_m128(hi, lo));
    }
    for (; i < n; i++) y[i] = expf(x[i]);
}
