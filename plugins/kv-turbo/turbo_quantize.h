/* turbo_quantize.h — the encoder's nearest-centroid search: rotated
 * coordinates to Lloyd-Max code indices (turbo_codec.c's tq encode). */
#ifndef TURBO_QUANTIZE_H
#define TURBO_QUANTIZE_H

#include <stdint.h>

#include "turbo_tables.h"

/* idx[i] = the number of decision thresholds of cb that u = y[i] * to_unit
 * (one float multiply) lies above, i.e. the index of its nearest centroid
 * (thresholds ascending; a NaN u gets 0), for i < d, d a multiple of 16.
 * Runs 4 lanes at a time on the target's baseline vector unit (SSE2,
 * Advanced SIMD) with results bit-identical to turbo_nearest_codes_scalar,
 * the reference. [any] */
void turbo_nearest_codes(const turbo_codebook *cb, const float *y, float to_unit, int32_t d,
                         uint8_t *idx);
void turbo_nearest_codes_scalar(const turbo_codebook *cb, const float *y, float to_unit, int32_t d,
                                uint8_t *idx);

#endif
