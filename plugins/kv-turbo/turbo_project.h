/* turbo_project.h — the two products of the V projection (turbo_cache.h)
 * with its f16 basis P (r rows of d): z = P v at append, out = P^T (u z)
 * for every attention output. They run per value row and per output row,
 * so they have a 4-lane path (turbo_simd4.h) beside the scalar reference;
 * both round every product and sum as the reference writes them, in its
 * order, so results are bit-identical. */
#ifndef TURBO_PROJECT_H
#define TURBO_PROJECT_H

#include <stdint.h>

/* z[k] = sum over i = 0, 1, ... in turn of f32(P[k*d + i]) * v[i]
 * (float, starting from 0), for k < r. [any] */
void turbo_basis_project(const uint16_t *P, int32_t r, int32_t d, const float *v, float *z);
void turbo_basis_project_scalar(const uint16_t *P, int32_t r, int32_t d, const float *v, float *z);

/* out[i] = sum over k = 0, 1, ... in turn of (z[k] * u[k]) * f32(P[k*d + i])
 * (float, starting from 0), for i < d. [any] */
void turbo_basis_unproject(const uint16_t *P, int32_t r, int32_t d, const float *z, const float *u,
                           float *out);
void turbo_basis_unproject_scalar(const uint16_t *P, int32_t r, int32_t d, const float *z,
                                  const float *u, float *out);

#endif
