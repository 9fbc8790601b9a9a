/* turbo_tables.h — the exact Lloyd-Max scalar codebooks TurboQuant codes
 * rotated coordinates with (../shared/specs/turboquant.md §1.4 and
 * turboquant-lloyd-tables.txt).
 *
 * Every table is in N(0,1) units: it applies to u = sqrt(d) * y / |x|, the
 * rotated coordinate of a vector scaled to norm sqrt(d). Tables exist for the
 * Gaussian limit and for the exact Beta coordinate law at d = 64, 128, 256;
 * decision thresholds are the midpoints of neighbouring centroids. */
#ifndef TURBO_TABLES_H
#define TURBO_TABLES_H

#include <stdint.h>

#define TURBO_MIN_BITS 2
#define TURBO_MAX_BITS 4

typedef struct turbo_codebook {
    int32_t bits;        /* 2..4                                           */
    int32_t dim;         /* 64, 128, 256 for a Beta(d) table; 0 = Gaussian */
    int32_t n;           /* 1 << bits centroids                            */
    const float *c;      /* n centroids, ascending                          */
    float t[15];         /* n - 1 decision thresholds (midpoints)          */
    float c_max;         /* c[n-1]                                          */
} turbo_codebook;

/* Builds the tables; call once before any lookup from the thread that
 * loads the plugin (lookups call it too, but only [main] callers may rely
 * on that). [main] */
void turbo_tables_init(void);

/* The codebook for `bits` at head_dim `dim`: the Beta(dim) table when one
 * exists for that dim, else the Gaussian one. `bits` must be 2..4. The
 * returned table is static and immutable. [any] */
const turbo_codebook *turbo_codebook_for(int32_t bits, int32_t dim);

/* Table by kind: dim 0 = Gaussian, 64/128/256 = Beta(dim); NULL otherwise. */
const turbo_codebook *turbo_codebook_exact(int32_t bits, int32_t dim);

#endif
