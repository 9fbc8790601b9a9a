/* turbo_half.h — IEEE binary16 conversions for the plugin (plugins never
 * include core headers). Same algorithm as the core's tq_half.h and ggml:
 * round to nearest even, subnormals kept, NaN stays NaN. */
#ifndef TURBO_HALF_H
#define TURBO_HALF_H

#include <stdint.h>
#include <string.h>

static inline float turbo__from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t turbo__bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float turbo_f16_to_f32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & UINT32_C(0x80000000);
    const uint32_t two_w = w + w;
    const float normalized = turbo__from_bits((two_w >> 4) + (UINT32_C(0xE0) << 23)) *
                             turbo__from_bits(UINT32_C(0x7800000));
    const float denormalized = turbo__from_bits((two_w >> 17) | (UINT32_C(126) << 23)) - 0.5f;
    const uint32_t result = sign | (two_w < (UINT32_C(1) << 27) ? turbo__bits(denormalized)
                                                                 : turbo__bits(normalized));
    return turbo__from_bits(result);
}

static inline uint16_t turbo_f32_to_f16(float f) {
    float ax = f < 0 ? -f : f;
    float base = (ax * turbo__from_bits(UINT32_C(0x77800000))) * turbo__from_bits(UINT32_C(0x08800000));
    const uint32_t w = turbo__bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & UINT32_C(0x80000000);
    uint32_t bias = shl1_w & UINT32_C(0xFF000000);
    if (bias < UINT32_C(0x71000000)) bias = UINT32_C(0x71000000);
    base = turbo__from_bits((bias >> 1) + UINT32_C(0x07800000)) + base;
    const uint32_t bits = turbo__bits(base);
    const uint32_t nonsign = ((bits >> 13) & UINT32_C(0x00007C00)) + (bits & UINT32_C(0x00000FFF));
    return (uint16_t)((sign >> 16) | (shl1_w > UINT32_C(0xFF000000) ? UINT16_C(0x7E00) : nonsign));
}

#endif
