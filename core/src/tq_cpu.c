/* tq_cpu.c — which TQ_CPU_* features this machine has.
 *
 * A feature counts only when both the CPU and the operating system support
 * it: on x86 the AVX and AVX-512 register files must be saved by the kernel
 * on context switch (XCR0, read with xgetbv), or the first AVX instruction
 * faults even though cpuid advertises it. On aarch64 Linux the kernel's
 * HWCAP bits already say exactly that. */
#include "tq_cpu.h"

#include <tqrun/tq_plugin.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* xgetbv(0) by opcode, so the file does not need -mxsave. */
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t detect(void) {
    unsigned a, b, c, d;
    uint64_t f = 0;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d)) return 0;

    if (c & (1u << 0)) f |= TQ_CPU_SSE3;
    if (c & (1u << 9)) f |= TQ_CPU_SSSE3;

    /* XCR0 bits 1-2: SSE and AVX state; 5-7: opmask and the upper ZMM
     * halves. Without OSXSAVE there is no xgetbv and no AVX at all. */
    int os_avx = 0, os_avx512 = 0;
    if (c & (1u << 27)) {
        uint64_t xcr0 = read_xcr0();
        os_avx = (xcr0 & 0x6) == 0x6;
        os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    }
    if (!os_avx) return f;

    if (c & (1u << 28)) f |= TQ_CPU_AVX;
    if (c & (1u << 12)) f |= TQ_CPU_FMA;
    if (c & (1u << 29)) f |= TQ_CPU_F16C;

    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (b & (1u << 5)) f |= TQ_CPU_AVX2;
        if (os_avx512) {
            if (b & (1u << 16)) f |= TQ_CPU_AVX512F;
            if (b & (1u << 30)) f |= TQ_CPU_AVX512BW;
            if (b & (1u << 31)) f |= TQ_CPU_AVX512VL;
            if (c & (1u << 11)) f |= TQ_CPU_AVX512VNNI;
        }
        unsigned max_sub = a;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if (a & (1u << 4)) f |= TQ_CPU_AVXVNNI;
        }
    }
    /* AVX-512 extensions are useless without the foundation. */
    if (!(f & TQ_CPU_AVX512F))
        f &= ~(TQ_CPU_AVX512BW | TQ_CPU_AVX512VL | TQ_CPU_AVX512VNNI);
    return f;
}

#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>

/* Bit numbers from the kernel's uapi asm/hwcap.h, spelled out so that older
 * libc headers without the newer names still build. */
#define HWCAP_ASIMD_BIT   (1ul << 1)
#define HWCAP_FPHP_BIT    (1ul << 9)
#define HWCAP_ASIMDHP_BIT (1ul << 10)
#define HWCAP_ASIMDDP_BIT (1ul << 20)
#define HWCAP_SVE_BIT     (1ul << 22)
#define HWCAP2_I8MM_BIT   (1ul << 13)

static uint64_t detect(void) {
    unsigned long hw = getauxval(AT_HWCAP);
    unsigned long hw2 = getauxval(AT_HWCAP2);
    uint64_t f = 0;
    if (hw & HWCAP_ASIMD_BIT) f |= TQ_CPU_NEON;
    if (hw & HWCAP_ASIMDDP_BIT) f |= TQ_CPU_DOTPROD;
    /* fp16 kernels use both the scalar and the vector half instructions. */
    if ((hw & HWCAP_FPHP_BIT) && (hw & HWCAP_ASIMDHP_BIT)) f |= TQ_CPU_FP16;
    if (hw & HWCAP_SVE_BIT) f |= TQ_CPU_SVE;
    if (hw2 & HWCAP2_I8MM_BIT) f |= TQ_CPU_I8MM;
    return f;
}

#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>

static int sysctl_flag(const char *name) {
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname(name, &v, &n, NULL, 0) == 0 && v != 0;
}

static uint64_t detect(void) {
    uint64_t f = TQ_CPU_NEON; /* every Apple arm64 core has it */
    if (sysctl_flag("hw.optional.arm.FEAT_DotProd")) f |= TQ_CPU_DOTPROD;
    if (sysctl_flag("hw.optional.arm.FEAT_FP16")) f |= TQ_CPU_FP16;
    if (sysctl_flag("hw.optional.arm.FEAT_I8MM")) f |= TQ_CPU_I8MM;
    return f;
}

#else
static uint64_t detect(void) { return 0; }
#endif

static uint64_t g_features;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static const char *feature_name(int bit);

/* The features named in $TQ_CPU_DISABLE (comma-separated, as
 * tq_cpu_features_str spells them, e.g. "avx512f"), which then count as
 * absent: a lower plugin variant can be run, and tested, on a machine that
 * has a higher one (as oneDNN's ONEDNN_MAX_CPU_ISA). A name it does not know
 * is reported on stderr and ignored. */
static uint64_t disabled_by_env(void) {
    const char *env = getenv("TQ_CPU_DISABLE");
    uint64_t off = 0;
    while (env && *env) {
        const size_t len = strcspn(env, ",");
        int found = 0;
        for (int bit = 0; bit < 64 && len; bit++) {
            const char *name = feature_name(bit);
            if (name && strlen(name) == len && strncmp(name, env, len) == 0) {
                off |= UINT64_C(1) << bit;
                found = 1;
            }
        }
        if (!found && len) fprintf(stderr, "tqrun: TQ_CPU_DISABLE: unknown feature '%.*s' ignored\n", (int)len, env);
        env += len + (env[len] == ',');
    }
    return off;
}

static void detect_once(void) { g_features = detect() & ~disabled_by_env(); }

uint64_t tq_cpu_features(void) {
    pthread_once(&g_once, detect_once);
    return g_features;
}

/* Names as Linux's /proc/cpuinfo spells them where it can (tests compare
 * against it), except sse3, which the kernel calls "pni". */
static const char *feature_name(int bit) {
    switch (bit) {
    case 0: return "sse3";
    case 1: return "ssse3";
    case 2: return "avx";
    case 3: return "avx2";
    case 4: return "fma";
    case 5: return "f16c";
    case 6: return "avx512f";
    case 7: return "avx512bw";
    case 8: return "avx512vl";
    case 9: return "avx512vnni";
    case 10: return "avxvnni";
    case 32: return "neon";
    case 33: return "dotprod";
    case 34: return "fp16";
    case 35: return "i8mm";
    case 36: return "sve";
    case 63: return "impossible";
    }
    return NULL;
}

void tq_cpu_features_str(uint64_t bits, char *buf, size_t size) {
    if (size == 0) return;
    buf[0] = '\0';
    if (bits == 0) {
        snprintf(buf, size, "none");
        return;
    }
    size_t used = 0;
    for (int bit = 0; bit < 64; bit++) {
        if (!(bits & (UINT64_C(1) << bit))) continue;
        const char *name = feature_name(bit);
        char unnamed[16];
        if (!name) {
            snprintf(unnamed, sizeof unnamed, "bit%d", bit);
            name = unnamed;
        }
        int n = snprintf(buf + used, size - used, "%s%s", used ? "," : "", name);
        if (n < 0 || (size_t)n >= size - used) return; /* truncated, still terminated */
        used += (size_t)n;
    }
}
