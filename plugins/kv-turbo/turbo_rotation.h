/* turbo_rotation.h — the randomized Hadamard rotation of TurboQuant.
 *
 * y = B * diag(sigma) * Pi * x, where B is block-diagonal with normalized
 * Walsh-Hadamard blocks H_b / sqrt(b). The blocks are the binary
 * decomposition of the head dimension, largest first (96 = 64 + 32,
 * 80 = 64 + 16), so a dimension that is not a power of two needs no padding.
 * B is symmetric and orthogonal, so the inverse is Pi^T * diag(sigma) * B.
 *
 * Pi interleaves the channels over the blocks (96: two of every three
 * channels to the 64-block, the third to the 32-block; identity for a
 * single block). A Hadamard block evens out energy only within itself,
 * while the codebook is scaled for |x|^2 / d per coordinate; contiguous
 * blocks would put, e.g., RoPE's high- and low-frequency channels in
 * different blocks with very different energy per coordinate. A comb of
 * every block's share of each channel range keeps the blocks even (NeoX
 * RoPE pairs i, i + d/2 even fall in one block: d/2 is a multiple of the
 * comb's period for 80, 96 and 112).
 *
 * sigma is a +-1 vector from splitmix64, seeded per (seed, layer, K or V):
 * real pseudo-random bits, not the low bit of a multiplicative hash (the
 * quant.cpp bug, spec §0.4). */
#ifndef TURBO_ROTATION_H
#define TURBO_ROTATION_H

#include <stdint.h>

#define TURBO_MAX_DIM 512
#define TURBO_MIN_BLOCK 16

/* Fills blocks[] with the Hadamard block sizes of dimension d, largest
 * first, and returns their count; returns 0 when d cannot be rotated
 * (d not a multiple of TURBO_MIN_BLOCK, or outside 16..TURBO_MAX_DIM). A
 * block smaller than 16 would leave coordinates far from Gaussian. [any] */
int turbo_rot_blocks(int32_t d, int32_t blocks[16]);

/* Pi: writes into slot[c] the coordinate channel c of x takes before the
 * signs and blocks, and returns 1; returns 0, writing nothing, when d has
 * a single block (Pi = identity). d as for turbo_rot_blocks. [any] */
int turbo_rot_interleave(int32_t d, int32_t *slot);

/* Builds the table of Pi for every supported d, which turbo_rotate,
 * turbo_unrotate and turbo_rot_interleave read from then on (before it
 * they compute Pi on each call: same results, slower). Call once, before
 * any other thread rotates (plugin init). [main] */
void turbo_rotation_init(void);

/* The sign vector of (seed, layer, which): d values, each +1.0f or -1.0f,
 * with |sum| <= 3 sqrt(d). which = 0 for K, 1 for V. [any] */
void turbo_signs(uint64_t seed, int32_t layer, int32_t which, int32_t d, float *sign);

/* y = B diag(sign) Pi x. x and y may be the same array. d must be supported by
 * turbo_rot_blocks. [any] */
void turbo_rotate(const float *sign, int32_t d, const float *x, float *y);

/* x = Pi^T diag(sign) B y: the inverse of turbo_rotate. y and x may alias. [any] */
void turbo_unrotate(const float *sign, int32_t d, const float *y, float *x);

/* The scalar reference of both (the oracle of the SIMD path, which gives
 * bit-identical results), and the name of the SIMD path turbo_rotate and
 * turbo_unrotate take in this build ("sse2", "neon"), or NULL when they
 * run the scalar code. [any] */
void turbo_rotate_scalar(const float *sign, int32_t d, const float *x, float *y);
void turbo_unrotate_scalar(const float *sign, int32_t d, const float *y, float *x);
const char *turbo_rotation_simd(void);

#endif
