/* neon_backend.c — the `neon` backend: tq.backend/1 on 64-bit ARM CPUs.
 *
 * Built twice from the same sources (tq-backend-neon-armv8.so for armv8-a,
 * tq-backend-neon-dotprod.so for armv8.2-a+dotprod), both named "neon": the
 * registry loads the highest-priority variant whose required_cpu the
 * machine has, so the ini just says `backend = neon, ref`. Nodes this
 * backend does not take (supports() == 0) fall back to the next backend in
 * the chain. Everything but the SIMD kernels is plugins/common/cpu_*.c. */
#include "cpu_test_iface.h"
#include "neon_internal.h"

static const cpu_kernels neon_kernels = {
    .name = "neon",
    .device_name = NEON_DOTPROD ? "cpu (armv8.2-a neon dotprod)" : "cpu (armv8-a neon)",
    .mm_types = neon_mm_types,
    .n_mm_types = CPU_N_MM_TYPES,
    .mm_rows = NEON_MM_ROWS,
    .mm_cols = NEON_MM_COLS,
    .gemms = neon_gemms,
    .n_gemms = NEON_N_GEMMS,
    .encode = {[CPU_ACT_F16] = neon_encode_f16, [CPU_ACT_Q8_0] = neon_quantize_q8_0,
               [CPU_ACT_Q8_1] = neon_quantize_q8_1, [CPU_ACT_Q8_K] = neon_quantize_q8_K},
    .f16_row = neon_f16_row,
    .sum_squares = neon_sum_squares,
    .rope_rows = neon_rope_rows,
    .att_head_align = NEON_ATT_ALIGN,
    .dot = neon_dot,
    .axpy = neon_axpy,
    .f16_round_row = neon_f16_round_row,
    .att_vacc16 = neon_att_vacc16,
};

/* Every op and weight type of cpu_caps: the kernels above cover them. */
static const tq_backend_iface neon_iface = CPU_BACKEND_IFACE(cpu_caps);

static const cpu_test_iface neon_test = {
    .size = sizeof(cpu_test_iface),
    .variant = NEON_VARIANT,
    .quantize_q8_0 = neon_quantize_q8_0,
    .quantize_q8_1 = neon_quantize_q8_1,
    .quantize_q8_K = neon_quantize_q8_K,
    .f16_round_row = neon_f16_round_row,
    .att_vacc16 = neon_att_vacc16,
};

/* ---- entry ---------------------------------------------------------------------- */

static tq_status neon_init(const tq_host *host, void **state, tq_error *err) {
    return cpu_backend_init(host, &neon_kernels, state, err);
}

static const void *neon_get_interface(void *state, const char *id) {
    (void)state;
    if (strcmp(id, TQ_IFACE_BACKEND) == 0) return &neon_iface;
    if (strcmp(id, CPU_TEST_IFACE) == 0) return &neon_test;
    return NULL;
}

TQ_PLUGIN_ENTRY = {
    .size = sizeof(tq_plugin_entry),
    .abi_major = TQ_ABI_MAJOR,
    .abi_minor = TQ_ABI_MINOR,
    .kind = TQ_PLUGIN_BACKEND,
#if NEON_DOTPROD
    .id = "org.tqrun.backend.neon.dotprod",
    .description = "ARM NEON kernels, armv8.2-a with dot-product instructions (sdot)",
    .required_cpu = TQ_CPU_NEON | TQ_CPU_DOTPROD,
    .priority = 20,
#else
    .id = "org.tqrun.backend.neon.armv8",
    .description = "ARM NEON kernels, armv8-a Advanced SIMD",
    .required_cpu = TQ_CPU_NEON,
    .priority = 10,
#endif
    .name = "neon",
    .version = "0.1.0",
    .init = neon_init,
    .deinit = cpu_backend_deinit,
    .get_interface = neon_get_interface,
};
