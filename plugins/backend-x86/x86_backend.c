/* x86_backend.c — the `x86` backend: tq.backend/1 on AVX2 or AVX-512 CPUs.
 *
 * Built twice from the same sources (tq-backend-x86-avx2.so,
 * tq-backend-x86-avx512.so), both named "x86": the registry loads the
 * highest-priority variant whose required_cpu the machine has, so the ini
 * just says `backend = x86, ref`. Nodes this backend does not take
 * (supports() == 0) fall back to the next backend in the chain. Everything
 * but the SIMD kernels is plugins/common/cpu_*.c. */
#include "cpu_test_iface.h"
#include "x86_internal.h"

static const cpu_kernels x86_kernels = {
    .name = "x86",
    .device_name = X86_VNNI ? "cpu (avx512 vnni)" : "cpu (avx2 fma f16c)",
    .mm_types = x86_mm_types,
    .n_mm_types = CPU_N_MM_TYPES,
    .mm_rows = X86_MM_ROWS,
    .mm_cols = X86_MM_COLS,
    .gemms = x86_gemms,
    .n_gemms = X86_N_GEMMS,
    .gemvs = x86_gemvs,
    .n_gemvs = X86_N_GEMVS,
    .encode = {[CPU_ACT_F16] = x86_encode_f16, [CPU_ACT_Q8_0] = x86_quantize_q8_0,
               [CPU_ACT_Q8_1] = x86_quantize_q8_1, [CPU_ACT_Q8_K] = x86_quantize_q8_K},
    .f16_row = x86_f16_row,
    .sum_squares = x86_sum_squares,
    .rope_rows = x86_rope_rows,
    .att_head_align = X86_ATT_ALIGN,
    .dot = x86_dot,
    .axpy = x86_axpy,
    .att_dots = x86_att_dots,
    .att_vsum = x86_att_vsum,
    .expf_row = x86_expf_row,
    .f16_round_row = x86_f16_round_row,
    .att_vacc16 = x86_att_vacc16,
};

/* Every op and weight type of cpu_caps: the kernels above cover them. */
static const tq_backend_iface x86_iface = CPU_BACKEND_IFACE(cpu_caps);

static const cpu_test_iface x86_test = {
    .size = sizeof(cpu_test_iface),
    .variant = X86_VARIANT,
    .quantize_q8_0 = x86_quantize_q8_0,
    .quantize_q8_1 = x86_quantize_q8_1,
    .quantize_q8_K = x86_quantize_q8_K,
    .expf_row = x86_expf_row,
    .f16_round_row = x86_f16_round_row,
    .att_vacc16 = x86_att_vacc16,
};

/* ---- entry ---------------------------------------------------------------------- */

static tq_status x86_init(const tq_host *host, void **state, tq_error *err) {
    return cpu_backend_init(host, &x86_kernels, state, err);
}

static const void *x86_get_interface(void *state, const char *id) {
    (void)state;
    if (strcmp(id, TQ_IFACE_BACKEND) == 0) return &x86_iface;
    if (strcmp(id, CPU_TEST_IFACE) == 0) return &x86_test;
    return NULL;
}

#define X86_CPU_AVX2 (TQ_CPU_AVX | TQ_CPU_AVX2 | TQ_CPU_FMA | TQ_CPU_F16C)

TQ_PLUGIN_ENTRY = {
    .size = sizeof(tq_plugin_entry),
    .abi_major = TQ_ABI_MAJOR,
    .abi_minor = TQ_ABI_MINOR,
    .kind = TQ_PLUGIN_BACKEND,
#if X86_VNNI
    .id = "org.tqrun.backend.x86.avx512",
    .description = "x86 CPU kernels, AVX-512 with VNNI integer dot products",
    .required_cpu = X86_CPU_AVX2 | TQ_CPU_AVX512F | TQ_CPU_AVX512BW | TQ_CPU_AVX512VL | TQ_CPU_AVX512VNNI,
    .priority = 20,
#else
    .id = "org.tqrun.backend.x86.avx2",
    .description = "x86 CPU kernels, AVX2 + FMA + F16C",
    .required_cpu = X86_CPU_AVX2,
    .priority = 10,
#endif
    .name = "x86",
    .version = "0.1.0",
    .init = x86_init,
    .deinit = cpu_backend_deinit,
    .get_interface = x86_get_interface,
};
