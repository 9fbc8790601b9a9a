/* turbo_kernels_avx512.c — the AVX-512 VNNI variant of the tq kernels
 * (contract in turbo_codec.h, the shared code in turbo_kernels_x86.h),
 * compiled with AVX-512 F/BW/VL/VNNI flags and chosen at run time by
 * turbo_kernels_select on a CPU that has them.
 *
 * It is the AVX2 variant with each pmaddwd + paddd pair replaced by one
 * vpdpwssd (AVX512-VNNI on 256-bit vectors through AVX512VL), which adds
 * the two 16x16-bit products of each dword to an int32 lane. A first
 * version with 512-bit K dot products ran slower than the AVX2 variant on
 * the Xeon it was tested on (27 vs 22 ns per K row), so the vectors stay
 * 256-bit, but for exp_sum's exponentials, 16 lanes at a time (about 2%
 * of a 32K decode attention on the Zen 4 VM of session 12, 4 alternating
 * rounds: 5.59 -> 5.46 ms per layer). The integer sums are exact and the
 * float steps are the reference's, so the results are bit-identical to
 * it. */
#include "turbo_kernels_x86.h"

TX_INLINE __m256i mac_vnni(__m256i acc, __m256i a, __m256i b) {
    return _mm256_dpwssd_epi32(acc, a, b);
}

TX_VARIANT(avx512, "avx512vnni", mac_vnni)
