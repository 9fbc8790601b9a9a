/* x86_test_iface.h — a private interface of the x86 backend, for
 * tests/test_backend_conformance.c only: the SIMD activation encoders, so the
 * test can compare their output bytes with the core's scalar ones. Fetched
 * with get_interface(state, X86_TEST_IFACE); not part of the plugin ABI and
 * never used by the runtime. */
#ifndef X86_TEST_IFACE_H
#define X86_TEST_IFACE_H

#include <stdint.h>

#define X86_TEST_IFACE "org.tqrun.backend.x86.test/1"

typedef struct x86_test_iface {
    uint32_t size;
    const char *variant; /* "avx2", "avx512"                                */
    /* n elements (a multiple of 32, resp. 256) into blocks of that format,
     * bit-identical to tq_quantize_row_q8_0 / _q8_1 / _q8_K. [any] */
    void (*quantize_q8_0)(const float *x, void *y, int64_t n);
    void (*quantize_q8_1)(const float *x, void *y, int64_t n);
    void (*quantize_q8_K)(const float *x, void *y, int64_t n);
} x86_test_iface;

#endif
