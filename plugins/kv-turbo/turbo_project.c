/* turbo_project.c — the V projection's basis products (see the header).
 * project runs four rows k at a time: four f16 rows of four values are
 * converted and transposed, so each lane adds its own row's products in
 * the reference's order over i. */
#include "turbo_project.h"

#include <stddef.h>

#include "turbo_half.h"
#include "turbo_simd4.h"

void turbo_basis_project_scalar(const uint16_t *P, int32_t r, int32_t d, const float *v, float *z) {
    for (int32_t k = 0; k < r; k++) {
        float s = 0;
        for (int32_t i = 0; i < d; i++) s += turbo_f16_to_f32(P[(size_t)k * (size_t)d + (size_t)i]) * v[i];
        z[k] = s;
    }
}

void turbo_basis_unproject_scalar(const uint16_t *P, int32_t r, int32_t d, const float *z,
                                  const float *u, float *out) {
    for (int32_t i = 0; i < d; i++) out[i] = 0;
    for (int32_t k = 0; k < r; k++) {
        const uint16_t *pk = P + (size_t)k * (size_t)d;
        const float zk = z[k] * u[k];
        for (int32_t i = 0; i < d; i++) out[i] += zk * turbo_f16_to_f32(pk[i]);
    }
}

void turbo_basis_project(const uint16_t *P, int32_t r, int32_t d, const float *v, float *z) {
#ifdef TURBO_SIMD4
    if (r % 4 == 0 && d % 4 == 0) {
        for (int32_t k = 0; k < r; k += 4) {
            const uint16_t *pk = P + (size_t)k * (size_t)d;
            v4 s = v4_set1(0.0f);
            for (int32_t i = 0; i < d; i += 4) {
                v4 col[4];
                for (int j = 0; j < 4; j++) col[j] = v4_from_f16(pk + (size_t)j * (size_t)d + (size_t)i);
                v4_transpose(col); /* col[m] = P[k..k+4][i + m] */
                for (int m = 0; m < 4; m++) s = v4_add(s, v4_mul(col[m], v4_set1(v[i + m])));
            }
            v4_store(z + k, s);
        }
        return;
    }
#endif
    turbo_basis_project_scalar(P, r, d, v, z);
}

void turbo_basis_unproject(const uint16_t *P, int32_t r, int32_t d, const float *z, const float *u,
                           float *out) {
#ifdef TURBO_SIMD4
    if (d % 4 == 0) {
        for (int32_t i = 0; i < d; i += 4) v4_store(out + i, v4_set1(0.0f));
        for (int32_t k = 0; k < r; k++) {
            const uint16_t *pk = P + (size_t)k * (size_t)d;
            const v4 zk = v4_set1(z[k] * u[k]);
            for (int32_t i = 0; i < d; i += 4)
                v4_store(out + i, v4_add(v4_load(out + i), v4_mul(zk, v4_from_f16(pk + i))));
        }
        return;
    }
#endif
    turbo_basis_unproject_scalar(P, r, d, z, u, out);
}
