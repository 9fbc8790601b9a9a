/* tq_arch_util.h — helpers arch plugins share for reading hyperparameters
 * and finding tensors, with the error messages users should see. Compiled
 * into each arch plugin (plugins never link the core).
 *
 * Usage: a reader collects the first failure; callers check r.failed once
 * after a run of lookups instead of after each one. */
#ifndef TQ_ARCH_UTIL_H
#define TQ_ARCH_UTIL_H

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

#endif
