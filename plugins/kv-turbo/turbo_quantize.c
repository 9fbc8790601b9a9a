/* turbo_quantize.c — the encoder's nearest-centroid search (see the
 * header). The scalar reference stops at the first threshold not below u;
 * thresholds ascend, so that is the count of thresholds below u, which the
 * vector path sums from one compare per threshold (a NaN compares false
 * everywhere: 0 in both). u is the same single float multiply in each. */
#include "turbo_quantize.h"

#include "turbo_simd4.h"

void turbo_nearest_codes_scalar(const turbo_codebook *cb, const float *y, float to_unit, int32_t d,
                                uint8_t *idx) {
    for (int32_t i = 0; i < d; i++) {
        const float u = y[i] * to_unit;
        int k = 0;
        while (k < cb->n - 1 && u > cb->t[k]) k++;
        idx[i] = (uint8_t)k;
    }
}

void turbo_nearest_codes(const turbo_codebook *cb, const float *y, float to_unit, int32_t d,
                         uint8_t *idx) {
    const int32_t nt = cb->n - 1;
#ifdef TURBO_SIMD4
    const v4 s = v4_set1(to_unit);
    for (int32_t i = 0; i < d; i += 16) {
        v4 u[4];
        v4u k[4];
        for (int q = 0; q < 4; q++) {
            u[q] = v4_mul(v4_load(y + i + 4 * q), s);
            k[q] = v4u_zero();
        }
        for (int32_t j = 0; j < nt; j++) {
            const v4 t = v4_set1(cb->t[j]);
            for (int q = 0; q < 4; q++) k[q] = v4u_count_gt(k[q], u[q], t);
        }
        v4u_store_u8x16(idx + i, k[0], k[1], k[2], k[3]);
    }
#else
    (void)nt;
    turbo_nearest_codes_scalar(cb, y, to_unit, d, idx);
#endif
}
