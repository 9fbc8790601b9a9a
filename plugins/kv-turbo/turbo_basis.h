/* turbo_basis.h — the eigenvectors behind the V projection of the turbo
 * cache (turbo_cache.h): the top r eigenvectors of a symmetric matrix, by
 * Householder tridiagonalization and implicit QL in double. Called once
 * per (layer, head) and sequence on a head_dim x head_dim second moment:
 * about 4 d^3 flops, small next to the prefill that produced it. */
#ifndef TURBO_BASIS_H
#define TURBO_BASIS_H

#include <stdint.h>

/* Writes into out (r x n, row-major) the unit eigenvectors of the
 * symmetric n x n matrix a that belong to its r largest eigenvalues (r <=
 * n), in decreasing order, and into lambda (if not NULL) those r
 * eigenvalues. a is destroyed; work holds 2 n doubles. Returns nonzero,
 * writing nothing, when a has a non-finite entry. [any] */
int turbo_top_eigvecs(double *a, int32_t n, int32_t r, double *work, float *out, double *lambda);

#endif
