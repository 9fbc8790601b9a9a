/* turbo_dvec.h — element-wise double loops two lanes at a time, for the
 * calibration's O(n^3) and O(n^2 tokens) steps (turbo_basis.c,
 * turbo_calib.c). GCC vector extensions: one SSE2 register on x86-64's
 * baseline, one NEON register on aarch64. Each lane does the scalar
 * loop's IEEE operations in its order, and the plugin is built in ISO C
 * mode (-std=c11: no contraction into fused multiply-adds), so every
 * helper gives the same bits as its scalar loop, on every machine. */
#ifndef TURBO_DVEC_H
#define TURBO_DVEC_H

#include <stddef.h>
#include <string.h>

typedef double v2d __attribute__((vector_size(16)));

static inline v2d dvec_load(const double *p) {
    v2d v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void dvec_store(double *p, v2d v) { memcpy(p, &v, sizeof v); }

/* y[k] -= (f * x[k] + g * z[k]) for k < n. */
static inline void dvec_sub_rank2(double *y, size_t n, double f, const double *x, double g, const double *z) {
    size_t k = 0;
    for (; k + 2 <= n; k += 2) dvec_store(y + k, dvec_load(y + k) - (f * dvec_load(x + k) + g * dvec_load(z + k)));
    for (; k < n; k++) y[k] -= (f * x[k] + g * z[k]);
}

/* y[k] += x[k] * f for k < n. */
static inline void dvec_add_scaled(double *y, size_t n, const double *x, double f) {
    size_t k = 0;
    for (; k + 2 <= n; k += 2) dvec_store(y + k, dvec_load(y + k) + dvec_load(x + k) * f);
    for (; k < n; k++) y[k] += x[k] * f;
}

/* y[k] -= g * x[k] for k < n. */
static inline void dvec_sub_scaled(double *y, size_t n, double g, const double *x) {
    size_t k = 0;
    for (; k + 2 <= n; k += 2) dvec_store(y + k, dvec_load(y + k) - g * dvec_load(x + k));
    for (; k < n; k++) y[k] -= g * x[k];
}

#endif
