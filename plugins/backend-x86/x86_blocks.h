/* x86_blocks.h — the GGUF block layouts the x86 kernels read and the
 * activation formats they write, private to this plugin.
 *
 * Plugins never link the core, so these are copies of the structs of
 * core/src/tq_quants.h. They MUST stay byte-identical to them, and the
 * activation encoders of x86_quant.c must stay bit-identical to
 * tq_quantize_row_q8_0 / q8_1 / q8_K of core/src/tq_quants.c and
 * tq_quants_k.c: the ref backend is the oracle, and
 * tests/test_backend_conformance.c compares the encoded bytes. */
#ifndef X86_BLOCKS_H
#define X86_BLOCKS_H

#include <stdint.h>

#define X86_QK 32    /* elements of a q4_0 .. q8_1 block  */
#define X86_QK_K 256 /* elements of a K-quant super-block */

typedef struct { uint16_t d; uint8_t qs[16]; } x86_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } x86_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } x86_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } x86_block_q5_1;
typedef struct { uint16_t d; int8_t qs[32]; } x86_block_q8_0;
typedef struct { uint16_t d, s; int8_t qs[32]; } x86_block_q8_1;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } x86_block_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } x86_block_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } x86_block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } x86_block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } x86_block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } x86_block_q8_K;

/* The sizes ggml and the core use; a mismatch is a build error. */
_Static_assert(sizeof(x86_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(x86_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(x86_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(x86_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(x86_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(x86_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(x86_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(x86_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(x86_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(x86_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(x86_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(x86_block_q8_K) == 292, "q8_K layout");

#endif
