/* tq_quants_k.h — private to the core's type code: the K-quant functions of
 * tq_quants_k.c that tq_quants.h does not declare. Everyone else reaches the
 * dot products through tq_quant_traits_get and the encoders through
 * tq_type_get(type)->from_f32. */
#ifndef TQ_QUANTS_K_H
#define TQ_QUANTS_K_H

#include <stdint.h>

float tq__vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a);
float tq__vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a);
float tq__vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a);
float tq__vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a);
float tq__vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a);

/* Reference encoders, bit-identical to ggml's quantize_row_q{2..6}_K_ref
 * (no importance matrix). n is a multiple of 256. */
void tq_quantize_row_q2_K(const float *x, void *y, int64_t n);
void tq_quantize_row_q3_K(const float *x, void *y, int64_t n);
void tq_quantize_row_q4_K(const float *x, void *y, int64_t n);
void tq_quantize_row_q5_K(const float *x, void *y, int64_t n);
void tq_quantize_row_q6_K(const float *x, void *y, int64_t n);

#endif
