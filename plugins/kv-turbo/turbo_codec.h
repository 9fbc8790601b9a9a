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
 *   split (internal, never named by a user; the V projection of tq4 values,
 *                  turbo_cache.h): 4 bits per value on average, spent
 *                  unevenly. The first h = d/2 coordinates ("hi") get 5
 *                  bits, the last h ("lo") 3 bits; each half is rotated by
 *                  its own Hadamard blocks (turbo_rotate over h dims, signs
 *                  sign[0..h) and sign[h..d)), both are coded with the
 *                  N(0,1) tables against one norm (u = sqrt(d) y / |x|, so
 *                  the caller puts the same energy per coordinate in both
 *                  halves) and one norm-corrected fp16 scale. Layout after
 *                  the scale: hi's low 4 bits as tq4 nibbles (h/2 bytes),
 *                  hi's bit 4 as a 1-bit plane (h/8), then lo as a tq3 row
 *                  of h dims (h/4 + h/8). Bytes: 2 + d/2 (d=128: 66, as
 *                  tq4). Code indices 0..31 are hi's, 32..39 lo's (32 +
 *                  its 3-bit code), so one 40-entry lut16 serves the row.
 *   split2 (internal: tq4 keys under K balance, turbo_cache.h): the split
 *                  rows with a norm per half. After the fp16 scale s of the
 *                  hi half, one byte r: the lo half's scale is s * R[r],
 *                  R[0] = 0, R[r] = 2^((r - 128) / 16) (turbo_split_ratio).
 *                  Each half is coded against its own norm (u = sqrt(h) y /
 *                  |half|, the hi half with the N(0,1) 5-bit table, the lo
 *                  half with the 3-bit table for h). Codes as in split,
 *                  from byte 3. Bytes: 3 + d/2 (d=128: 67).
 *   q8_0           llama.cpp's q8_0 on the raw vector: per block of 32 (the
 *                  last may be shorter) an fp16 scale amax/127; the row is
 *                  all scales, then all int8 values. Plain baseline: no
 *                  rotation, no centering.
 *   f16            the raw vector in binary16.
 *
 * The attention kernels that read tq codes sit behind turbo_kernels so
 * SIMD variants can be added next to the scalar reference; each must give
 * bit-identical results (K dots, V sums) to the scalar one. */
#ifndef TURBO_CODEC_H
#define TURBO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "turbo_tables.h"

typedef enum turbo_kind { TURBO_F16 = 0, TURBO_Q8_0 = 1, TURBO_TQ = 2 } turbo_kind;

/* Kernel id (the `bits` of turbo_kernels_select and turbo_unpack_codes)
 * of split rows, and the lut16 entries they use. */
#define TURBO_KERN_SPLIT 5
#define TURBO_KERN_SPLIT2 6
#define TURBO_LUT_N 40


typedef struct turbo_codec {
    turbo_kind kind;
    int32_t bits;                /* 2..4 for TURBO_TQ, 8 for q8_0, 16 for f16 */
    int32_t d;                   /* head_dim                                  */
    int32_t split;               /* TURBO_TQ: 1 = split, 2 = split2 (bits 4)  */
    size_t row_bytes;
    const turbo_codebook *cb;    /* TURBO_TQ only (split: the 5-bit half)     */
    const turbo_codebook *cb_lo; /* split only: the 3-bit half                */
    int16_t lut16[TURBO_LUT_N];  /* cb->c (then cb_lo->c) scaled so the
                                    largest centroid -> TURBO_LUT_MAX         */
    float lut_unit;              /* value of one lut16 step                   */
} turbo_codec;

/* Parses a format name ("tq4", "tq3", "tq2", "q8_0", "f16") and sets up the
 * codec for head_dim d. On failure returns nonzero and writes a message
 * (unknown format, bits out of range, head_dim the format cannot rotate)
 * into why. [any] */
int turbo_codec_init(turbo_codec *c, const char *name, int32_t d, char *why, size_t why_size);

/* Sets up split (norms 1) or split2 (norms 2) rows (turbo_codec.h, top)
 * of d values; nonzero when d / 2 cannot be rotated (d not a multiple of
 * 32, or above TURBO_MAX_DIM). [any] */
int turbo_codec_init_split(turbo_codec *c, int32_t d, int norms);

/* The kernel id of a tq codec: bits, TURBO_KERN_SPLIT or TURBO_KERN_SPLIT2. [any] */
static inline int32_t turbo_codec_kern_id(const turbo_codec *c) {
    return c->split == 2 ? TURBO_KERN_SPLIT2 : c->split ? TURBO_KERN_SPLIT : c->bits;
}

/* y = the rotation of a tq codec applied to x (split rows: each half by
 * its own blocks). x and y may alias. [any] */
void turbo_codec_rotate(const turbo_codec *c, const float *sign, const float *x, float *y);

/* x = the rotation of a tq codec undone on y (d values; split rows: each
 * half by its own blocks). y and x may alias. [any] */
void turbo_codec_unrotate(const turbo_codec *c, const float *sign, const float *y, float *x);

/* Encodes x (d floats) into row (row_bytes). sign: the rotation's signs
 * (tq only; ignored otherwise). work: d floats of scratch. A vector of norm
 * below 1e-20 (or a non-finite one) stores scale 0. [any] */
void turbo_encode_row(const turbo_codec *c, const float *sign, const float *x, uint8_t *row,
                      float *work);

/* Decodes a row back to the original (unrotated) domain. [any] */
void turbo_decode_row(const turbo_codec *c, const float *sign, const uint8_t *row, float *x);

/* tq only: the scale s of a row, where its codes start (split2: byte 3,
 * turbo_codec_codes), and the codes unpacked to d indices 0..2^b-1 (bits =
 * TURBO_KERN_SPLIT or _SPLIT2: split rows, indices 0..39 as above). */
float turbo_row_scale(const uint8_t *row);
static inline const uint8_t *turbo_row_codes(const uint8_t *row) { return row + 2; }
static inline const uint8_t *turbo_codec_codes(const turbo_codec *c, const uint8_t *row) {
    return row + (c->split == 2 ? 3 : 2);
}
void turbo_unpack_codes(int32_t bits, int32_t d, const uint8_t *codes, uint8_t *idx);

/* Integer ranges of the K dot product: rotated queries are quantized to
 * |q| <= TURBO_Q_MAX, centroids to |c| <= TURBO_LUT_MAX, so a dot over
 * TURBO_MAX_DIM values fits int32 (512 * 2047 * 1023 < 2^31) and the
 * kernels can use 16-bit multiplies (pmaddwd, vpdpwssd, smlal) bit-exactly.
 * 12/11 bits keep the arithmetic error far below the coding error; 8-bit
 * queries and centroids cost about 1.4% relative L2 on attention outputs. */
#define TURBO_Q_MAX 2047
#define TURBO_LUT_MAX 1023

/* V weights: the softmax weights p_j * s_j of a tile of at most
 * TURBO_V_TILE rows are scaled to integers 0..TURBO_W_MAX (one float scale
 * per query row and tile), so a tile's sum over rows is an exact int32
 * (32 * 32767 * 1023 < 2^31) that pmaddwd/vpdpwssd/smlal variants reproduce
 * bit for bit. 16-bit weights cost about 1e-5 relative error, far below the
 * coding error. */
#define TURBO_W_MAX 32767
#define TURBO_V_TILE 32
#define TURBO_W_TINY 1e-30f

/* The attention kernels. A chunk is n consecutive tq rows of one KV head
 * (row j at rows + j * stride: fp16 scale, then the codes) against G query
 * rows; per-query-row arrays are indexed [g * ld + j]. lut16 has 16 entries
 * (TURBO_LUT_N for the split kernels, TURBO_KERN_SPLIT).
 * d is a multiple of 16 up to TURBO_MAX_DIM.
 *
 *  k_scores  sc[g*ld + j] = (s_j * qs[g]) * (float)D + qm[g], where
 *            D = sum_i q16[g*d + i] * lut16[idx_{j,i}] is an exact int32
 *            (|q16| <= TURBO_Q_MAX, |lut16| <= TURBO_LUT_MAX) and s_j the
 *            row's scale; mx[g] = max(mx[g], max_j sc[g*ld + j]).
 *            split2 rows: D_hi and D_lo the sums over i < d/2 and i >= d/2,
 *            sc = ((s_j * qs[g]) * (float)D_hi + ((s_j * R[r_j]) * qs[g]) *
 *            (float)D_lo) + qm[g]. split2 is a K format: its kernels have
 *            k_scores only (softmax_w, v_acc NULL).
 *  softmax_w with m[g] >= every score: p = turbo_exp(sc - m[g]) replaces
 *            sc; lsum[g] += sum_j p (summed as 8 partial sums, lane k
 *            taking j = k mod 8, combined ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)));
 *            per tile t of TURBO_V_TILE rows (j from 32t) of the V rows
 *            `vrows`: w = p * s_j, wmax = the tile's max w, w16[g*ld + j]
 *            = lrint(w * (TURBO_W_MAX / wmax)) and wscale[t*G + g] =
 *            wmax * unit (0 and 0 when wmax <= TURBO_W_TINY, where the
 *            scale would overflow; such a tile adds < 1e-30 per value).
 *  v_acc     for n <= TURBO_V_TILE rows and 0 <= w16 <= TURBO_W_MAX:
 *            S = sum_j w16[g*ld + j] * lut16[idx_{j,i}] (exact int32), then
 *            acc[g*d + i] += wscale[g] * (float)S.
 *  exp_sum   x[j] = turbo_exp(x[j] - m), or 0 where x[j] is -inf, for
 *            j < n; returns their sum in softmax_w's order.
 *  f16_dot   out[g] = sum_i q[g*d + i] * row[i] for an f16 row.
 *  f16_acc   for the nk f16 rows rows[t], t = 0, 1, ... in turn:
 *            acc[g*d + i] = fma(w[g*ld + t], rows[t][i], acc[g*d + i]).
 *  basis_project    the V projection (turbo_project.h): z[k] = sum over
 *            i = 0, 1, ... in turn of P[k*d + i] * v[i] for the r x d f16
 *            basis P (a multiply, then an add);
 *  basis_unproject  the V projection undone: out[i] = sum over k = 0, 1,
 *            ... in turn of (z[k] * u[k]) * P[k*d + i].
 * Each float operation above is one rounded IEEE operation in the order
 * written (fma: one rounding; elsewhere no FMA), and turbo_exp is one
 * fixed polynomial (turbo_codec.c), so every variant gives bit-identical
 * results to the scalar reference, except f16_dot, whose sum order is the
 * variant's own. [any] */
typedef struct turbo_kernels {
    const char *name;
    void (*k_scores)(const uint8_t *rows, size_t stride, int32_t n, int32_t d,
                     const int16_t *lut16, const int16_t *q16, const float *qs, const float *qm,
                     int32_t G, float *sc, size_t ld, float *mx);
    void (*softmax_w)(float *sc, size_t ld, int32_t n, int32_t G, const float *m,
                      const uint8_t *vrows, size_t vstride, float unit, float *lsum, int16_t *w16,
                      float *wscale);
    void (*v_acc)(const uint8_t *rows, size_t stride, int32_t n, int32_t d,
                  const int16_t *lut16, const int16_t *w16, size_t ld, const float *wscale,
                  int32_t G, float *acc);
    float (*exp_sum)(float *x, int32_t n, float m);
    void (*f16_dot)(const uint16_t *row, int32_t d, const float *q, int32_t G, float *out);
    void (*f16_acc)(const uint16_t *const *rows, int32_t nk, int32_t d, const float *w, size_t ld,
                    int32_t G, float *acc);
    void (*basis_project)(const uint16_t *P, int32_t r, int32_t d, const float *v, float *z);
    void (*basis_unproject)(const uint16_t *P, int32_t r, int32_t d, const float *z, const float *u,
                            float *out);
} turbo_kernels;

/* exp(x) for x <= 0 as the kernels compute it: x clamped to -87, Cephes'
 * range reduction and degree-5 polynomial, about 1 ulp. [any] */
float turbo_exp(float x);

/* The fastest kernels for `bits` on a machine with cpu_features (TQ_CPU_*
 * bits): AVX-512 VNNI, then AVX2 (x86-64); NEON with the dot product, then
 * NEON (aarch64); else the scalar reference. [any] */
const turbo_kernels *turbo_kernels_select(int32_t bits, uint64_t cpu_features);
/* The scalar reference, the oracle for every other variant. */
const turbo_kernels *turbo_kernels_scalar(int32_t bits);
/* The SIMD variants (turbo_kernels_<isa>.c, each compiled for its ISA), or
 * NULL when this build has no such variant; the caller checks the CPU. */
const turbo_kernels *turbo_kernels_avx2(int32_t bits);
const turbo_kernels *turbo_kernels_avx512(int32_t bits);
const turbo_kernels *turbo_kernels_neon(int32_t bits);
const turbo_kernels *turbo_kernels_neon_dotprod(int32_t bits);

#endif
