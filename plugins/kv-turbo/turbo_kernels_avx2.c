/* turbo_kernels_avx2.c — the AVX2 variant of the tq kernels (contract in
 * turbo_codec.h, the shared code in turbo_kernels_x86.h), compiled with
 * -mavx2 -mfma -mf16c and chosen at run time by turbo_kernels_select.
 *
 * Integer parts are exact, so the results equal the scalar reference:
 *   K: pmaddwd of the decoded centroids with the 12-bit queries into int32
 *      lanes, one horizontal sum per row and query row;
 *   V: rows are paired and their centroids interleaved per dimension, so
 *      one pmaddwd with the pair's two 16-bit weights leaves int32 lanes
 *      that are dimensions; the tile sum is added as acc += wscale * S. */
#include "turbo_kernels_x86.h"

TX_INLINE __m256i mac_avx2(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

TX_VARIANT(avx2, "avx2", mac_avx2)
