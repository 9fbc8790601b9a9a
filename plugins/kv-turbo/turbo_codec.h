/* turbo_codec.h — the row formats of the turbo KV cache: one row is one
 * vector of one KV head (head_dim values) at one position.
 *
 *   tq4, tq3, tq2  TurboQuant: fp16 norm-corrected scale s, then head_dim
 *                  b-bit Lloyd-Max codes of the rotated vector. Rotated-
 *                  domain value of coordinate i is s * c[idx_i].
 *                  tq4: nibbles, element 2k in the low half of byte k.
 *                  tq3: a 2-bit plane (d/4 bytes, element i at bits
 *                  2*(i%4) of byte i/4) then a 1-bit plane (d/8 bytes,
 *                  bit i%8 of byte i/8) holding bit 2 of each code.
 *                  tq2: the 2-bit plane alone.
 *                  Bytes per row: 2 + d*b/8  (d=128: 66, 50, 34).
 *   q8_0           llama.cpp's q8_0 on the raw vector: per block of 32 (the
 *                  last may be shorter) an fp16 scale amax/127; the row is
 *                  all scales, then all int8 values. Plain baseline: no
 *                  rotation, no centering.
 *   f16            the raw vector in binary16.
 *
 * The attention kernels that read tq codes sit behind turbo_kernels so
 * SIMD variants can be added next to the scalar reference; each must give
 * bit-identical integer dots (K) to the scalar one. */
#ifndef TURBO_CODEC_H
#define TURBO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "turbo_tables.h"

typedef enum turbo_kind { TURBO_F16 = 0, TURBO_Q8_0 = 1, TURBO_TQ = 2 } turbo_kind;

typedef struct turbo_codec {
    turbo_kind kind;
    int32_t bits;                /* 2..4 for TURBO_TQ, 8 for q8_0, 16 for f16 */
    int32_t d;                   /* head_dim                                  */
    size_t row_bytes;
    const turbo_codebook *cb;    /* TURBO_TQ only                             */
    int16_t lut16[16];           /* cb->c scaled so c_max -> TURBO_LUT_MAX    */
    float lut_unit;              /* value of one lut16 step                   */
} turbo_codec;

/* Parses a format name ("tq4", "tq3", "tq2", "q8_0", "f16") and sets up the
 * codec for head_dim d. On failure returns nonzero and writes a message
 * (unknown format, bits out of range, head_dim the format cannot rotate)
 * into why. [any] */
int turbo_codec_init(turbo_codec *c, const char *name, int32_t d, char *why, size_t why_size);

/* Encodes x (d floats) into row (row_bytes). sign: the rotation's signs
 * (tq only; ignored otherwise). work: d floats of scratch. A vector of norm
 * below 1e-20 (or a non-finite one) stores scale 0. [any] */
void turbo_encode_row(const turbo_codec *c, const float *sign, const float *x, uint8_t *row,
                      float *work);

/* Decodes a row back to the original (unrotated) domain. [any] */
void turbo_decode_row(const turbo_codec *c, const float *sign, const uint8_t *row, float *x);

/* tq only: the scale s of a row, where its codes start, and the codes
 * unpacked to d indices 0..2^b-1. */
float turbo_row_scale(const uint8_t *row);
static inline const uint8_t *turbo_row_codes(const uint8_t *row) { return row + 2; }
void turbo_unpack_codes(int32_t bits, int32_t d, const uint8_t *codes, uint8_t *idx);

/* Integer ranges of the K dot product: rotated queries are quantized to
 * |q| <= TURBO_Q_MAX, centroids to |c| <= TURBO_LUT_MAX, so a dot over
 * TURBO_MAX_DIM values fits int32 (512 * 2047 * 1023 < 2^31) and the
 * kernels can use 16-bit multiplies (pmaddwd, vpdpwssd, smlal) bit-exactly.
 * 12/11 bits keep the arithmetic error far below the coding error; 8-bit
 * queries and centroids cost about 1.4% relative L2 on attention outputs. */
#define TURBO_Q_MAX 2047
#define TURBO_LUT_MAX 1023

/* Compressed-domain kernels for one tq row against G query heads.
 *  k_dot: dots[g] = sum_i q16[g*d + i] * lut16[idx_i]           (exact int32)
 *  v_acc: acc[g*d + i] += w[g] * lut[idx_i]                       (float)
 * codes points at the row's codes (turbo_row_codes). [any] */
typedef struct turbo_kernels {
    const char *name;
    void (*k_dot)(const uint8_t *codes, int32_t d, const int16_t *lut16, const int16_t *q16,
                  int32_t G, int32_t *dots);
    void (*v_acc)(const uint8_t *codes, int32_t d, const float *lut, const float *w, int32_t G,
                  float *acc);
} turbo_kernels;

/* The kernels for `bits` on a machine with cpu_features (TQ_CPU_* bits).
 * Only the scalar reference exists so far. [any] */
const turbo_kernels *turbo_kernels_select(int32_t bits, uint64_t cpu_features);
/* The scalar reference, the oracle for every other variant. */
const turbo_kernels *turbo_kernels_scalar(int32_t bits);

#endif
