/* tq_arch_util.h — helpers arch plugins share for reading hyperparameters
 * and finding tensors, with the error messages users should see. Compiled
 * into each arch plugin (plugins never link the core).
 *
 * Usage: a reader collects the first failure; callers check r.failed once
 * after a run of lookups instead of after each one. */
#ifndef TQ_ARCH_UTIL_H
#define TQ_ARCH_UTIL_H

#include <string.h> /* strcmp, used by TQ_ARCH_PLUGIN */
#include <tqrun/tq_plugin.h>

typedef struct tq_arch_reader {
    const tq_model_source *src;
    const char *arch;     /* key prefix: "llama", "phi3"              */
    tq_error *err;
    int failed;
} tq_arch_reader;

tq_arch_reader tq_arch_reader_init(const tq_model_source *src, const char *arch, tq_error *err);

/* Fills *err (if non-NULL) and returns `code`. */
tq_status tq_arch_fail(tq_error *err, tq_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* "<arch>.<key>" as an unsigned integer; when absent: an error if
 * `required`, else `def`. Values above INT32_MAX are an error. */
int32_t tq_arch_u32(tq_arch_reader *r, const char *key, int required, int32_t def);
/* "<arch>.<key>" as a float (any numeric type). */
float tq_arch_f32(tq_arch_reader *r, const char *key, int required, float def);
/* "<arch>.<key>" string, or def, copied NUL-terminated into buf. */
const char *tq_arch_str(tq_arch_reader *r, const char *key, char *buf, size_t size, const char *def);
/* freq_scale from rope.scaling.type / rope.scaling.factor (or the old
 * rope.scale_linear): 1/factor for linear, 1 for none; other scaling types
 * are refused (their math lives elsewhere). */
float tq_arch_rope_freq_scale(tq_arch_reader *r);

/* A tensor that must exist, with shape [ne0, ne1] (-1: any, which the
 * caller then reads from the tensor). 1-D tensors pass ne1 = 1. */
const tq_tensor *tq_arch_tensor(tq_arch_reader *r, const char *name, int64_t ne0, int64_t ne1);
/* Same, but NULL without error when the tensor is absent. */
const tq_tensor *tq_arch_tensor_opt(tq_arch_reader *r, const char *name, int64_t ne0, int64_t ne1);
/* "blk.<il>.<name>" */
const tq_tensor *tq_arch_layer_tensor(tq_arch_reader *r, int il, const char *name, int64_t ne0,
                                      int64_t ne1);
void tq_arch_fail_shape(tq_arch_reader *r, const tq_tensor *t, int64_t ne0, int64_t ne1);

/* Defines the plugin entry of an arch plugin that keeps no state of its own
 * (its state is the host table, which load() receives back), serving one
 * tq_arch_iface: init, deinit, get_interface and the exported
 * tq_plugin_entry_v1. */
#define TQ_ARCH_PLUGIN(IFACE, ID, NAME, VERSION, DESCRIPTION)                         \
    static tq_status tq__arch_init(const tq_host *host, void **state, tq_error *err) {  \
        (void)err;                                                                    \
        *state = (void *)host;                                                        \
        return TQ_OK;                                                                 \
    }                                                                                 \
    static void tq__arch_deinit(void *state) { (void)state; }                          \
    static const void *tq__arch_get_interface(void *state, const char *id) {          \
        (void)state;                                                                  \
        return strcmp(id, TQ_IFACE_ARCH) == 0 ? (const void *)&(IFACE) : NULL;         \
    }                                                                                 \
    TQ_PLUGIN_ENTRY = {                                                               \
        .size = sizeof(tq_plugin_entry),                                              \
        .abi_major = TQ_ABI_MAJOR,                                                    \
        .abi_minor = TQ_ABI_MINOR,                                                    \
        .kind = TQ_PLUGIN_ARCH,                                                       \
        .id = (ID),                                                                   \
        .name = (NAME),                                                               \
        .version = (VERSION),                                                         \
        .description = (DESCRIPTION),                                                 \
        .required_cpu = 0,                                                            \
        .priority = 0,                                                                \
        .init = tq__arch_init,                                                        \
        .deinit = tq__arch_deinit,                                                    \
        .get_interface = tq__arch_get_interface,                                      \
    }

#endif
