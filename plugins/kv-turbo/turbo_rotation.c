/* turbo_rotation.c — randomized block Hadamard transform (see the header).
 *
 * The transform runs on every appended row and, in attention, on every
 * query row and output row, so it has a 4-lane SIMD path (turbo_simd4.h)
 * that performs exactly the scalar butterflies (same pairs, same stage
 * order), so its results are bit-identical to the scalar reference kept
 * below (turbo_rotate_scalar, tested against it). */
#include "turbo_rotation.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "turbo_simd4.h"

int turbo_rot_blocks(int32_t d, int32_t blocks[16]) {
    if (d < TURBO_MIN_BLOCK || d > TURBO_MAX_DIM || d % TURBO_MIN_BLOCK != 0) return 0;
    int n = 0;
    for (int32_t b = TURBO_MAX_DIM; b >= TURBO_MIN_BLOCK; b >>= 1)
        if (d & b) blocks[n++] = b;
    return n;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void turbo_signs(uint64_t seed, int32_t layer, int32_t which, int32_t d, float *sign) {
    uint64_t state = seed ^ (((uint64_t)(uint32_t)layer << 1) | (uint64_t)(which & 1));
    /* Draws until the vector is balanced, |sum| <= 3 sqrt(d) (spec §6.5
     * gate 6; a fair draw passes 99.7% of the time), so every layer's
     * signs are a fresh random vector and never a skewed one. */
    for (;;) {
        uint64_t bits = 0;
        int32_t sum = 0;
        for (int32_t i = 0; i < d; i++) {
            if (i % 64 == 0) bits = splitmix64(&state);
            sign[i] = (bits >> (i % 64)) & 1 ? -1.0f : 1.0f;
            sum += (bits >> (i % 64)) & 1 ? -1 : 1;
        }
        if ((double)sum * sum <= 9.0 * d) return;
    }
}

/* In-place normalized WHT of one block of length b (a power of two): the
 * reference. */
static void fwht_scalar(float *v, int32_t b) {
    for (int32_t h = 1; h < b; h <<= 1)
        for (int32_t i = 0; i < b; i += 2 * h)
            for (int32_t j = i; j < i + h; j++) {
                const float a = v[j], c = v[j + h];
                v[j] = a + c;
                v[j + h] = a - c;
            }
    const float norm = 1.0f / sqrtf((float)b);
    for (int32_t i = 0; i < b; i++) v[i] *= norm;
}

#ifdef TURBO_SIMD4
/* fwht_scalar for b >= TURBO_MIN_BLOCK, 4 lanes at a time: stages h = 1
 * and 2 inside each vector, the others between vectors. */
static void fwht_simd(float *v, int32_t b) {
    for (int32_t i = 0; i < b; i += 4) v4_store(v + i, v4_h2(v4_h1(v4_load(v + i))));
    for (int32_t h = 4; h < b; h <<= 1)
        for (int32_t i = 0; i < b; i += 2 * h)
            for (int32_t j = i; j < i + h; j += 4) {
                const v4 a = v4_load(v + j), c = v4_load(v + j + h);
                v4_store(v + j, v4_add(a, c));
                v4_store(v + j + h, v4_sub(a, c));
            }
    const v4 norm = v4_set1(1.0f / sqrtf((float)b));
    for (int32_t i = 0; i < b; i += 4) v4_store(v + i, v4_mul(v4_load(v + i), norm));
}
#endif

static void blocks_wht(float *v, int32_t d, int simd) {
    int32_t blocks[16];
    const int n = turbo_rot_blocks(d, blocks);
    int32_t off = 0;
    for (int i = 0; i < n; i++) {
#ifdef TURBO_SIMD4
        if (simd) fwht_simd(v + off, blocks[i]);
        else
#endif
            fwht_scalar(v + off, blocks[i]);
        off += blocks[i];
    }
    (void)simd;
}

/* Channels are dealt to the blocks in turn, each to the block
 * furthest behind its share b_k / d, so every block holds an even comb of
 * channels (96: blocks 0 1 0 0 1 0 ...). */
static int interleave_compute(int32_t d, int32_t *slot) {
    int32_t blocks[16], off[16], used[16] = {0};
    const int n = turbo_rot_blocks(d, blocks);
    if (n <= 1) return 0;
    for (int k = 0, o = 0; k < n; o += blocks[k], k++) off[k] = o;
    for (int32_t c = 0; c < d; c++) {
        int best = 0;
        int64_t best_def = INT64_MIN;
        for (int k = 0; k < n; k++) {
            /* deficit of block k after c + 1 channels, in units of 1/d */
            const int64_t def = (int64_t)blocks[k] * (c + 1) - (int64_t)used[k] * d;
            if (used[k] < blocks[k] && def > best_def) best = k, best_def = def;
        }
        slot[c] = off[best] + used[best]++;
    }
    return 1;
}

/* Pi of every supported d (index d / TURBO_MIN_BLOCK - 1), built once by
 * turbo_rotation_init: computing it costs more than the SIMD transform
 * (d = 96, the V projection's tq4 rows: ~3x), and rotate runs per row. */
enum { N_ROT_DIMS = TURBO_MAX_DIM / TURBO_MIN_BLOCK };
static int32_t slot_table[N_ROT_DIMS][TURBO_MAX_DIM];
static uint8_t slot_multi[N_ROT_DIMS];
static int slots_built;

void turbo_rotation_init(void) {
    if (slots_built) return;
    for (int k = 0; k < N_ROT_DIMS; k++)
        slot_multi[k] = (uint8_t)interleave_compute((k + 1) * TURBO_MIN_BLOCK, slot_table[k]);
    slots_built = 1;
}

/* Pi of d from the table (or into scratch before turbo_rotation_init), or
 * NULL for a single block. */
static const int32_t *interleave(int32_t d, int32_t *scratch) {
    if (slots_built && d >= TURBO_MIN_BLOCK && d <= TURBO_MAX_DIM && d % TURBO_MIN_BLOCK == 0) {
        const int k = d / TURBO_MIN_BLOCK - 1;
        return slot_multi[k] ? slot_table[k] : NULL;
    }
    return interleave_compute(d, scratch) ? scratch : NULL;
}

int turbo_rot_interleave(int32_t d, int32_t *slot) {
    const int32_t *s = interleave(d, slot);
    if (s && s != slot) memcpy(slot, s, (size_t)d * sizeof *slot);
    return s != NULL;
}

/* dst = src * sign, elementwise (d a multiple of TURBO_MIN_BLOCK). */
static void mul_signs(float *dst, const float *src, const float *sign, int32_t d, int simd) {
#ifdef TURBO_SIMD4
    if (simd) {
        for (int32_t i = 0; i < d; i += 4) v4_store(dst + i, v4_mul(v4_load(src + i), v4_load(sign + i)));
        return;
    }
#endif
    (void)simd;
    for (int32_t i = 0; i < d; i++) dst[i] = src[i] * sign[i];
}

/* y = B diag(sign) Pi x, with the SIMD blocks or the scalar ones. */
static void rotate(const float *sign, int32_t d, const float *x, float *y, int simd) {
    int32_t scratch[TURBO_MAX_DIM];
    const int32_t *slot = interleave(d, scratch);
    if (slot) {
        float t[TURBO_MAX_DIM];
        for (int32_t c = 0; c < d; c++) t[slot[c]] = x[c];
        mul_signs(y, t, sign, d, simd);
    } else {
        mul_signs(y, x, sign, d, simd);
    }
    blocks_wht(y, d, simd);
}

static void unrotate(const float *sign, int32_t d, const float *y, float *x, int simd) {
    int32_t scratch[TURBO_MAX_DIM];
    float t[TURBO_MAX_DIM];
    memcpy(t, y, (size_t)d * sizeof *t);
    blocks_wht(t, d, simd);
    const int32_t *slot = interleave(d, scratch);
    if (slot) {
        mul_signs(t, t, sign, d, simd);
        for (int32_t c = 0; c < d; c++) x[c] = t[slot[c]];
    } else {
        mul_signs(x, t, sign, d, simd);
    }
}

void turbo_rotate(const float *sign, int32_t d, const float *x, float *y) { rotate(sign, d, x, y, 1); }
void turbo_unrotate(const float *sign, int32_t d, const float *y, float *x) { unrotate(sign, d, y, x, 1); }
void turbo_rotate_scalar(const float *sign, int32_t d, const float *x, float *y) { rotate(sign, d, x, y, 0); }
void turbo_unrotate_scalar(const float *sign, int32_t d, const float *y, float *x) {
    unrotate(sign, d, y, x, 0);
}

const char *turbo_rotation_simd(void) {
#ifdef TURBO_SIMD4
    return TURBO_SIMD4;
#else
    return NULL;
#endif
}
