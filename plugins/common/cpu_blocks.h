/* cpu_blocks.h — the GGUF block layouts that CPU backend kernels read and
 * the activation formats they write, for plugins (compiled into each CPU
 * backend; plugins never include core headers).
 *
 * These are copies of the structs of core/src/tq_quants.h. They MUST stay
 * byte-identical to them, and a backend's activation encoders must stay
 * bit-identical to tq_quantize_row_q8_0 / q8_1 / q8_K of core/src/
 * tq_quants.c and tq_quants_k.c: the ref backend is the oracle, and
 * tests/test_backend_conformance.c compares the encoded bytes. */
#ifndef CPU_BLOCKS_H
#define CPU_BLOCKS_H

#include <stdint.h>

#define CPU_QK 32    /* elements of a q4_0 .. q8_1 block  */
#define CPU_QK_K 256 /* elements of a K-quant super-block */

typedef struct { uint16_t d; uint8_t qs[16]; } cpu_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } cpu_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } cpu_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } cpu_block_q5_1;
typedef struct { uint16_t d; int8_t qs[32]; } cpu_block_q8_0;
typedef struct { uint16_t d, s; int8_t qs[32]; } cpu_block_q8_1;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } cpu_block_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } cpu_block_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } cpu_block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } cpu_block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } cpu_block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } cpu_block_q8_K;

/* The sizes ggml and the core use; a mismatch is a build error. */
_Static_assert(sizeof(cpu_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(cpu_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(cpu_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(cpu_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(cpu_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(cpu_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(cpu_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(cpu_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(cpu_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(cpu_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(cpu_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(cpu_block_q8_K) == 292, "q8_K layout");

/* The 6-bit scale and min of sub-block j of a q4_K/q5_K block (see
 * get_scale_min_k4 in core/src/tq_quants_k.c). */
static inline void cpu_scale_min_k4(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* The 16 signed 6-bit group scales of a q3_K block (q3_K_scales in
 * core/src/tq_quants_k.c). */
static inline void cpu_q3_K_scales(const uint8_t b[12], int8_t scales[16]) {
    for (int g = 0; g < 16; g++) {
        const int low4 = g < 8 ? b[g] & 0x0F : b[g - 8] >> 4;
        const int high2 = (b[8 + g % 4] >> (2 * (g / 4))) & 3;
        scales[g] = (int8_t)((low4 | high2 << 4) - 32);
    }
}

#endif
