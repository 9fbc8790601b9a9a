/* turbo_tables.c — Lloyd-Max codebooks, copied digit for digit from
 * ../shared/specs/turboquant-lloyd-tables.txt (scripts/lloyd_exact.py of the
 * spec). Only the positive halves are written; tables are symmetric. The
 * tests compare these against the spec file itself and against the Lloyd
 * fixed-point conditions. */
#include "turbo_tables.h"

#include <math.h>
#include <stddef.h>

/* Positive halves, ascending, N(0,1) units. */
static const double pos_n01[3][8] = {
    {0.45278003, 1.51041761},
    {0.24509418, 0.75600528, 1.34390928, 2.15194570},
    {0.12839503, 0.38804830, 0.65675912, 0.94234046, 1.25623120, 1.61804639, 2.06901723,
     2.73258957},
};
static const double pos_d64[3][8] = {
    {0.45211895, 1.49997480},
    {0.24375343, 0.75065811, 1.32934287, 2.11131145},
    {0.12735218, 0.38471827, 0.65049415, 0.93189402, 1.23940422, 1.59084913, 2.02330983,
     2.64637049},
};
static const double pos_d128[3][8] = {
    {0.45245325, 1.50519298},
    {0.24442487, 0.75333016, 1.33659889, 2.13147084},
    {0.12787315, 0.38638092, 0.65361895, 0.93709702, 1.24777046, 1.60434266, 2.04592538,
     2.68885926},
};
static const double pos_d256[3][8] = {
    {0.45261758, 1.50780451},
    {0.24475980, 0.75466737, 1.34024731, 2.14166864},
    {0.12813399, 0.38721404, 0.65518715, 0.93971372, 1.25198902, 1.61116812, 2.05741121,
     2.71056700},
};

/* N(0,1) at TURBO_WIDE_BITS (the spec file's b=5 row). */
static const double pos_n01_5[16] = {
    0.06588966, 0.19805183, 0.33137831, 0.46669952, 0.60493362, 0.74713570, 0.89456512, 1.04878332,
    1.21180438, 1.38634034, 1.57622808, 1.78723322, 2.02872840, 2.31773940, 2.69111958, 3.26073249,
};

enum { N_KINDS = 4 };
static const int32_t kind_dim[N_KINDS] = {0, 64, 128, 256};
static const double (*const kind_pos[N_KINDS])[8] = {pos_n01, pos_d64, pos_d128, pos_d256};

/* Full tables, built once from the positive halves (no static initialiser
 * can mirror them) by turbo_tables_init. */
static float full_c[N_KINDS][3][16];
static turbo_codebook books[N_KINDS][3];
static float wide_c[32];
static turbo_codebook wide;
static float split_ratio[256];
static int built;

/* Fills cb from the positive half pos of a symmetric table of `bits`. */
static void build_book(turbo_codebook *cb, float *c, const double *pos, int bits, int dim) {
    const int n = 1 << bits, half = n / 2;
    for (int i = 0; i < half; i++) {
        c[half + i] = (float)pos[i];
        c[half - 1 - i] = -(float)pos[i];
    }
    cb->bits = bits;
    cb->dim = dim;
    cb->n = n;
    cb->c = c;
    for (int i = 0; i + 1 < n; i++) cb->t[i] = 0.5f * (c[i] + c[i + 1]);
    cb->c_max = c[n - 1];
}

void turbo_tables_init(void) {
    if (built) return;
    for (int k = 0; k < N_KINDS; k++)
        for (int b = 0; b < 3; b++)
            build_book(&books[k][b], full_c[k][b], kind_pos[k][b], b + TURBO_MIN_BITS, kind_dim[k]);
    build_book(&wide, wide_c, pos_n01_5, TURBO_WIDE_BITS, 0);
    for (int r = 1; r < 256; r++) split_ratio[r] = (float)exp2((r - 128) / 16.0);
    built = 1;
}

const turbo_codebook *turbo_codebook_exact(int32_t bits, int32_t dim) {
    if (!built) turbo_tables_init();
    if (bits == TURBO_WIDE_BITS) return dim == 0 ? &wide : NULL;
    if (bits < TURBO_MIN_BITS || bits > TURBO_MAX_BITS) return NULL;
    for (int k = 0; k < N_KINDS; k++)
        if (kind_dim[k] == dim) return &books[k][bits - TURBO_MIN_BITS];
    return NULL;
}

const float *turbo_split_ratio(void) {
    if (!built) turbo_tables_init();
    return split_ratio;
}

const turbo_codebook *turbo_codebook_for(int32_t bits, int32_t dim) {
    const turbo_codebook *cb = turbo_codebook_exact(bits, dim);
    return cb ? cb : turbo_codebook_exact(bits, 0);
}
