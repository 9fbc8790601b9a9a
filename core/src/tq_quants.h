/* tq_quants.h — GGUF block formats: reference (scalar) decoders, encoders and
 * the dot products llama.cpp uses, so the `ref` backend computes matmuls the
 * way ggml does (activations quantized to the weight's vec_dot type first).
 * Layouts: ../shared/specs/gguf-llama-phi3.md §2. Everything here is [any]. */
#ifndef TQ_QUANTS_H
#define TQ_QUANTS_H

#include <stddef.h>
#include <stdint.h>
#include <tqrun/tq_plugin.h>

#define TQ_QK4_0 32
#define TQ_QK4_1 32
#define TQ_QK5_0 32
#define TQ_QK5_1 32
#define TQ_QK8_0 32
#define TQ_QK8_1 32
#define TQ_QK_K 256
#define TQ_K_SCALE_SIZE 12

/* Block structs, byte-identical to ggml's (halves stored as uint16_t). */
typedef struct { uint16_t d; uint8_t qs[TQ_QK4_0 / 2]; } tq_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[TQ_QK4_1 / 2]; } tq_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[TQ_QK5_0 / 2]; } tq_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[TQ_QK5_1 / 2]; } tq_block_q5_1;
typedef struct { uint16_t d; int8_t qs[TQ_QK8_0]; } tq_block_q8_0;
typedef struct { uint16_t d, s; int8_t qs[TQ_QK8_1]; } tq_block_q8_1;
typedef struct { uint8_t scales[TQ_QK_K / 16]; uint8_t qs[TQ_QK_K / 4]; uint16_t d, dmin; } tq_block_q2_K;
typedef struct { uint8_t hmask[TQ_QK_K / 8]; uint8_t qs[TQ_QK_K / 4]; uint8_t scales[12]; uint16_t d; } tq_block_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[TQ_K_SCALE_SIZE]; uint8_t qs[TQ_QK_K / 2]; } tq_block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[TQ_K_SCALE_SIZE]; uint8_t qh[TQ_QK_K / 8]; uint8_t qs[TQ_QK_K / 2]; } tq_block_q5_K;
typedef struct { uint8_t ql[TQ_QK_K / 2]; uint8_t qh[TQ_QK_K / 4]; int8_t scales[TQ_QK_K / 16]; uint16_t d; } tq_block_q6_K;
typedef struct { float d; int8_t qs[TQ_QK_K]; int16_t bsums[TQ_QK_K / 16]; } tq_block_q8_K;

/* Decoders: n elements (multiple of the block size) from blocks to f32. */
void tq_dequantize_row_f32(const void *x, float *y, int64_t n);
void tq_dequantize_row_f16(const void *x, float *y, int64_t n);
void tq_dequantize_row_bf16(const void *x, float *y, int64_t n);
void tq_dequantize_row_q4_0(const void *x, float *y, int64_t n);
void tq_dequantize_row_q4_1(const void *x, float *y, int64_t n);
void tq_dequantize_row_q5_0(const void *x, float *y, int64_t n);
void tq_dequantize_row_q5_1(const void *x, float *y, int64_t n);
void tq_dequantize_row_q8_0(const void *x, float *y, int64_t n);
void tq_dequantize_row_q8_1(const void *x, float *y, int64_t n);
void tq_dequantize_row_q2_K(const void *x, float *y, int64_t n);
void tq_dequantize_row_q3_K(const void *x, float *y, int64_t n);
void tq_dequantize_row_q4_K(const void *x, float *y, int64_t n);
void tq_dequantize_row_q5_K(const void *x, float *y, int64_t n);
void tq_dequantize_row_q6_K(const void *x, float *y, int64_t n);
void tq_dequantize_row_q8_K(const void *x, float *y, int64_t n);

/* Reference encoders, the same arithmetic as ggml's quantize_row_*_ref
 * (round-half-away for q8_0/q8_1, nearest_int for q8_K, ...). K-quant weight
 * encoders (q2_K..q6_K) may be NULL in the table below until the quantize
 * command needs them. */
void tq_quantize_row_f32(const float *x, void *y, int64_t n);
void tq_quantize_row_f16(const float *x, void *y, int64_t n);
void tq_quantize_row_bf16(const float *x, void *y, int64_t n);
void tq_quantize_row_q4_0(const float *x, void *y, int64_t n);
void tq_quantize_row_q4_1(const float *x, void *y, int64_t n);
void tq_quantize_row_q5_0(const float *x, void *y, int64_t n);
void tq_quantize_row_q5_1(const float *x, void *y, int64_t n);
void tq_quantize_row_q8_0(const float *x, void *y, int64_t n);
void tq_quantize_row_q8_1(const float *x, void *y, int64_t n);
void tq_quantize_row_q8_K(const float *x, void *y, int64_t n);

/* Dot product of one weight row w (type T) with one activation row a that
 * was encoded with T's vec_dot_type; n elements. Scalar reference, summation
 * as in ggml's generic kernels. */
typedef float (*tq_vec_dot_fn)(int64_t n, const void *w, const void *a);

/* How the ref backend multiplies by a weight of a built-in type: encode the
 * f32 activation row with `act_from_f32` (type act_type), then call
 * `vec_dot` per output. NULL for types without a direct kernel. */
typedef struct tq_quant_traits {
    tq_type act_type;
    tq_from_f32_fn act_from_f32;
    tq_vec_dot_fn vec_dot;
} tq_quant_traits;

/* Traits of a built-in weight type, or NULL. */
const tq_quant_traits *tq_quant_traits_get(tq_type type);

#endif
