/* tq_half.h — IEEE binary16 and bfloat16 conversions, bit-exact with ggml's
 * scalar ones (round-to-nearest-even, subnormals, NaN kept quiet). */
#ifndef TQ_HALF_H
#define TQ_HALF_H

#include <stdint.h>
#include <string.h>

static inline float tq__f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t tq__f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* half -> float (exact). */
static inline float tq_f16_to_f32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & UINT32_C(0x80000000);
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = UINT32_C(0xE0) << 23;
    const float exp_scale = tq__f32_from_bits(UINT32_C(0x7800000));
    const float normalized = tq__f32_from_bits((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = UINT32_C(126) << 23;
    const float magic_bias = 0.5f;
    const float denormalized = tq__f32_from_bits((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = UINT32_C(1) << 27;
    const uint32_t result = sign | (two_w < denormalized_cutoff ? tq__f32_bits(denormalized)
                                                                 : tq__f32_bits(normalized));
    return tq__f32_from_bits(result);
}

/* float -> half, round to nearest even (same algorithm as ggml/FP16 library). */
static inline uint16_t tq_f32_to_f16(float f) {
    const float scale_to_inf = tq__f32_from_bits(UINT32_C(0x77800000));
    const float scale_to_zero = tq__f32_from_bits(UINT32_C(0x08800000));
    /* |f| by its bits and the two selects as masks, so that loops of
     * conversions vectorize (a NaN's base is not used; -0 and +0 give the
     * same result) */
    const uint32_t w = tq__f32_bits(f);
    const float ax = tq__f32_from_bits(w & UINT32_C(0x7FFFFFFF));
    float base = (ax * scale_to_inf) * scale_to_zero;
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & UINT32_C(0x80000000);
    uint32_t bias = shl1_w & UINT32_C(0xFF000000);
    const uint32_t small = (uint32_t)0 - (uint32_t)(bias < UINT32_C(0x71000000));
    bias = (UINT32_C(0x71000000) & small) | (bias & ~small);
    base = tq__f32_from_bits((bias >> 1) + UINT32_C(0x07800000)) + base;
    const uint32_t bits = tq__f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
    const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
    const uint32_t nonsign = exp_bits + mantissa_bits;
    const uint32_t nan = (uint32_t)0 - (uint32_t)(shl1_w > UINT32_C(0xFF000000));
    return (uint16_t)((sign >> 16) | (UINT32_C(0x7E00) & nan) | (nonsign & ~nan));
}

static inline float tq_bf16_to_f32(uint16_t h) { return tq__f32_from_bits((uint32_t)h << 16); }

static inline uint16_t tq_f32_to_bf16(float f) {
    uint32_t u = tq__f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

#endif
