/* tq_cpu.h — CPU feature detection (cpuid/xgetbv on x86, HWCAP on aarch64). */
#ifndef TQ_CPU_H
#define TQ_CPU_H

#include <stddef.h>
#include <stdint.h>

/* TQ_CPU_* bits of this machine (computed once, then cached), less any
 * that $TQ_CPU_DISABLE names (tq_cpu.c). [any] */
uint64_t tq_cpu_features(void);
/* Writes "avx2,fma,f16c" style names of `bits` into buf (always NUL-
 * terminated); "none" for 0. */
void tq_cpu_features_str(uint64_t bits, char *buf, size_t size);

#endif
