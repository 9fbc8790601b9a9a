/* turbo_rotation.c — randomized block Hadamard transform (see the header). */
#include "turbo_rotation.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* In-place normalized WHT of one block of length b (a power of two). */
static void fwht(float *v, int32_t b) {
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

static void blocks_wht(float *v, int32_t d) {
    int32_t blocks[16];
    const int n = turbo_rot_blocks(d, blocks);
    int32_t off = 0;
    for (int i = 0; i < n; i++) {
        fwht(v + off, blocks[i]);
        off += blocks[i];
    }
}

/* Channels are dealt to the blocks in turn, each to the block
 * furthest behind its share b_k / d, so every block holds an even comb of
 * channels (96: blocks 0 1 0 0 1 0 ...). */
int turbo_rot_interleave(int32_t d, int32_t *slot) {
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

void turbo_rotate(const float *sign, int32_t d, const float *x, float *y) {
    int32_t slot[TURBO_MAX_DIM];
    if (turbo_rot_interleave(d, slot)) {
        float t[TURBO_MAX_DIM];
        for (int32_t c = 0; c < d; c++) t[slot[c]] = x[c];
        for (int32_t i = 0; i < d; i++) y[i] = t[i] * sign[i];
    } else {
        for (int32_t i = 0; i < d; i++) y[i] = x[i] * sign[i];
    }
    blocks_wht(y, d);
}

void turbo_unrotate(const float *sign, int32_t d, const float *y, float *x) {
    int32_t slot[TURBO_MAX_DIM];
    float t[TURBO_MAX_DIM];
    memcpy(t, y, (size_t)d * sizeof *t);
    blocks_wht(t, d);
    for (int32_t i = 0; i < d; i++) t[i] *= sign[i];
    if (turbo_rot_interleave(d, slot))
        for (int32_t c = 0; c < d; c++) x[c] = t[slot[c]];
    else
        memcpy(x, t, (size_t)d * sizeof *x);
}
