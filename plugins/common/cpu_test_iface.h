/* cpu_test_iface.h — a private interface of the CPU backend plugins, for
 * tests/test_backend_conformance.c only: the SIMD activation encoders, so
 * the test can compare their output bytes with the core's scalar ones, and
 * the name of the variant that was loaded. Fetched with
 * get_interface(state, CPU_TEST_IFACE); not part of the plugin ABI and never
 * used by the runtime. */
#ifndef CPU_TEST_IFACE_H
#define CPU_TEST_IFACE_H

#include <stddef.h>
#include <stdint.h>

#define CPU_TEST_IFACE "org.tqrun.backend.cpu.test/1"

typedef struct cpu_test_iface {
    uint32_t size;
    const char *variant; /* "neon", "dotprod", "avx2", "avx512"              */
    /* n elements (a multiple of 32, resp. 256) into blocks of that format,
     * bit-identical to tq_quantize_row_q8_0 / _q8_1 / _q8_K. [any] */
    void (*quantize_q8_0)(const float *x, void *y, int64_t n);
    void (*quantize_q8_1)(const float *x, void *y, int64_t n);
    void (*quantize_q8_K)(const float *x, void *y, int64_t n);
    /* The kernel's expf_row (cpu_backend.h), or NULL when it has none. [any] */
    void (*expf_row)(const float *x, float *y, int64_t n);
    /* The kernel's f16_round_row and att_vacc16 (cpu_backend.h), or NULL
     * when it has none. [any] */
    void (*f16_round_row)(const float *x, float *y, int64_t n);
    void (*att_vacc16)(const char *v, size_t stride, const float *const *w, const float *const *ms,
                       const uint8_t *ev, int np, int64_t n_keys, int64_t n, float *const *acc);
} cpu_test_iface;

#endif
