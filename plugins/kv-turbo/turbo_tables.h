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
/* The one wider table: N(0,1) at 5 bits, for the 5-bit half of the split
 * rows (turbo_codec.h). No format codes all of a vector at 5 bits. */
#define TURBO_WIDE_BITS 5

typedef struct turbo_codebook {
    int32_t bits;        /* 2..4, or 5 (Gaussian only)                     */
    int32_t dim;         /* 64, 128, 256 for a Beta(d) table; 0 = Gaussian */
    int32_t n;           /* 1 << bits centroids                            */
    const float *c;      /* n centroids, ascending                          */
    float t[31];         /* n - 1 decision thresholds (midpoints)          */
    float c_max;         /* c[n-1]                                          */
} turbo_codebook;

/* Builds the tables; call once before any lookup from the thread that
 * loads the plugin (lookups call it too, but only [main] callers may rely
 * on that). [main] */
void turbo_tables_init(void);

/* The codebook for `bits` at head_dim `dim`: the Beta(dim) table when one
 * exists for that dim, else the Gaussian one. `bits` must be 2..4, or
 * TURBO_WIDE_BITS (always the Gaussian table). The returned table is
 * static and immutable. [any] */
const turbo_codebook *turbo_codebook_for(int32_t bits, int32_t dim);

/* The lo-half scale ratios of split2 rows (turbo_codec.h): 256 floats,
 * R[0] = 0, R[r] = 2^((r - 128) / 16); built with the tables. [any] */
const float *turbo_split_ratio(void);

/* Table by kind: dim 0 = Gaussian, 64/128/256 = Beta(dim); NULL otherwise
 * (also for 5 bits at any dim but 0). */
const turbo_codebook *turbo_codebook_exact(int32_t bits, int32_t dim);

#endif
