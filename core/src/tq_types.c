/* tq_types.c — the type registry.
 *
 * Built-in types live in a static table indexed by their ggml number, so a
 * GGUF tensor's type field is looked up without translation. Plugin types get
 * ids from TQ_TYPE_DYNAMIC_BASE on, in registration order, in a fixed-size
 * table: registration happens on the main thread while lookups may come from
 * any thread, so the count is published with release/acquire ordering after
 * the slot is filled, and slots are never rewritten. */
#include "tq_types.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "tq_error.h"
#include "tq_quants.h"
#include "tq_quants_k.h"

/* ------------------------------------------------------------------------ */
/* Plain integer types: ggml stores them as-is; decoding is a widening cast. */

static void i8_to_f32(const void *src, float *dst, int64_t n) {
    const int8_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}

static void i16_to_f32(const void *src, float *dst, int64_t n) {
    const int16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}

static void i32_to_f32(const void *src, float *dst, int64_t n) {
    const int32_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}

/* ------------------------------------------------------------------------ */
/* Built-in table                                                            */

#define TQ_BUILTIN_COUNT (TQ_TYPE_BF16 + 1)

#define BUILTIN(id, nm, elems, bytes, dec, enc) \
    [id] = {sizeof(tq_type_info), nm, elems, bytes, dec, enc}

/* Names are ggml's own type_name strings (upper-case K for the K-quants), so
 * what we print matches gguf-dump and llama.cpp logs. The K-quant encoders
 * are declared in tq_quants_k.h. */
static const tq_type_info builtin_types[TQ_BUILTIN_COUNT] = {
    BUILTIN(TQ_TYPE_F32, "f32", 1, 4, tq_dequantize_row_f32, tq_quantize_row_f32),
    BUILTIN(TQ_TYPE_F16, "f16", 1, 2, tq_dequantize_row_f16, tq_quantize_row_f16),
    BUILTIN(TQ_TYPE_Q4_0, "q4_0", TQ_QK4_0, sizeof(tq_block_q4_0), tq_dequantize_row_q4_0,
            tq_quantize_row_q4_0),
    BUILTIN(TQ_TYPE_Q4_1, "q4_1", TQ_QK4_1, sizeof(tq_block_q4_1), tq_dequantize_row_q4_1,
            tq_quantize_row_q4_1),
    BUILTIN(TQ_TYPE_Q5_0, "q5_0", TQ_QK5_0, sizeof(tq_block_q5_0), tq_dequantize_row_q5_0,
            tq_quantize_row_q5_0),
    BUILTIN(TQ_TYPE_Q5_1, "q5_1", TQ_QK5_1, sizeof(tq_block_q5_1), tq_dequantize_row_q5_1,
            tq_quantize_row_q5_1),
    BUILTIN(TQ_TYPE_Q8_0, "q8_0", TQ_QK8_0, sizeof(tq_block_q8_0), tq_dequantize_row_q8_0,
            tq_quantize_row_q8_0),
    BUILTIN(TQ_TYPE_Q8_1, "q8_1", TQ_QK8_1, sizeof(tq_block_q8_1), tq_dequantize_row_q8_1,
            tq_quantize_row_q8_1),
    BUILTIN(TQ_TYPE_Q2_K, "q2_K", TQ_QK_K, sizeof(tq_block_q2_K), tq_dequantize_row_q2_K,
            tq_quantize_row_q2_K),
    BUILTIN(TQ_TYPE_Q3_K, "q3_K", TQ_QK_K, sizeof(tq_block_q3_K), tq_dequantize_row_q3_K,
            tq_quantize_row_q3_K),
    BUILTIN(TQ_TYPE_Q4_K, "q4_K", TQ_QK_K, sizeof(tq_block_q4_K), tq_dequantize_row_q4_K,
            tq_quantize_row_q4_K),
    BUILTIN(TQ_TYPE_Q5_K, "q5_K", TQ_QK_K, sizeof(tq_block_q5_K), tq_dequantize_row_q5_K,
            tq_quantize_row_q5_K),
    BUILTIN(TQ_TYPE_Q6_K, "q6_K", TQ_QK_K, sizeof(tq_block_q6_K), tq_dequantize_row_q6_K,
            tq_quantize_row_q6_K),
    BUILTIN(TQ_TYPE_Q8_K, "q8_K", TQ_QK_K, sizeof(tq_block_q8_K), tq_dequantize_row_q8_K,
            tq_quantize_row_q8_K),
    BUILTIN(TQ_TYPE_I8, "i8", 1, 1, i8_to_f32, NULL),
    BUILTIN(TQ_TYPE_I16, "i16", 1, 2, i16_to_f32, NULL),
    BUILTIN(TQ_TYPE_I32, "i32", 1, 4, i32_to_f32, NULL),
    BUILTIN(TQ_TYPE_BF16, "bf16", 1, 2, tq_dequantize_row_bf16, tq_quantize_row_bf16),
};

#undef BUILTIN

/* ------------------------------------------------------------------------ */
/* Dynamic table                                                             */

#define TQ_DYNAMIC_CAPACITY 256

/* Copies, not the plugin's pointers: a plugin built against an older, shorter
 * tq_type_info must not make readers of newer fields read past its struct.
 * The name string itself is borrowed (valid until the plugin's deinit). */
static tq_type_info dynamic_types[TQ_DYNAMIC_CAPACITY];
static atomic_int dynamic_count;

static int ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

/* ASCII case-insensitive compare: "q4_k" and "q4_K" name the same type. Not
 * strcasecmp, which is POSIX and locale-dependent. */
static int names_equal(const char *a, const char *b) {
    for (;; a++, b++) {
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b)) return 0;
        if (*a == '\0') return 1;
    }
}

const tq_type_info *tq_type_get(tq_type id) {
    if (id >= 0 && id < TQ_BUILTIN_COUNT) {
        const tq_type_info *t = &builtin_types[id];
        return t->name != NULL ? t : NULL; /* ggml ids 4, 5, 16..23, ... are holes */
    }
    if (id >= TQ_TYPE_DYNAMIC_BASE) {
        int n = atomic_load_explicit(&dynamic_count, memory_order_acquire);
        int64_t k = (int64_t)id - TQ_TYPE_DYNAMIC_BASE;
        if (k < n) return &dynamic_types[k];
    }
    return NULL;
}

tq_type tq_type_by_name(const char *name) {
    if (name == NULL) return TQ_TYPE_INVALID;
    for (int i = 0; i < TQ_BUILTIN_COUNT; i++)
        if (builtin_types[i].name != NULL && names_equal(builtin_types[i].name, name)) return i;
    int n = atomic_load_explicit(&dynamic_count, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (names_equal(dynamic_types[i].name, name)) return TQ_TYPE_DYNAMIC_BASE + i;
    return TQ_TYPE_INVALID;
}

const char *tq_type_name(tq_type id) {
    const tq_type_info *t = tq_type_get(id);
    return t != NULL ? t->name : "?";
}

tq_status tq_type_register(const tq_type_info *info, tq_type *id, tq_error *err) {
    if (info == NULL || id == NULL)
        return tq_error_set(err, TQ_ERR_INVALID, "type registry: NULL type info or id");
    if (!TQ_HAS(info, tq_type_info, to_f32))
        return tq_error_set(err, TQ_ERR_ABI, "type registry: type info too small (size %u)",
                            (unsigned)info->size);
    if (info->name == NULL || info->name[0] == '\0')
        return tq_error_set(err, TQ_ERR_INVALID, "type registry: type without a name");
    if (info->to_f32 == NULL)
        return tq_error_set(err, TQ_ERR_INVALID, "type registry: type '%s' has no to_f32",
                            info->name);
    if (info->block_elems <= 0 || info->block_bytes <= 0)
        return tq_error_set(err, TQ_ERR_INVALID,
                            "type registry: type '%s' has block size %d elements / %d bytes",
                            info->name, (int)info->block_elems, (int)info->block_bytes);
    if (tq_type_by_name(info->name) != TQ_TYPE_INVALID)
        return tq_error_set(err, TQ_ERR_INVALID, "type registry: type '%s' already exists",
                            info->name);
    int n = atomic_load_explicit(&dynamic_count, memory_order_relaxed);
    if (n >= TQ_DYNAMIC_CAPACITY)
        return tq_error_set(err, TQ_ERR_RANGE, "type registry: full (%d types), cannot add '%s'",
                            TQ_DYNAMIC_CAPACITY, info->name);

    tq_type_info *slot = &dynamic_types[n];
    *slot = (tq_type_info){sizeof(tq_type_info), info->name, info->block_elems,
                           info->block_bytes, info->to_f32, NULL};
    if (TQ_HAS(info, tq_type_info, from_f32)) slot->from_f32 = info->from_f32;
    atomic_store_explicit(&dynamic_count, n + 1, memory_order_release);
    *id = TQ_TYPE_DYNAMIC_BASE + n;
    return TQ_OK;
}

size_t tq_type_row_bytes(tq_type id, int64_t n) {
    const tq_type_info *t = tq_type_get(id);
    if (t == NULL || n < 0 || n % t->block_elems != 0) return 0;
    uint64_t blocks = (uint64_t)(n / t->block_elems);
    if (blocks > SIZE_MAX / (uint64_t)t->block_bytes) return 0; /* would not fit in memory */
    return (size_t)blocks * (size_t)t->block_bytes;
}

int tq_type_is_gguf_weight(tq_type id) {
    /* Every built-in type: ggml writes q8_1/q8_K and the integer types too,
     * and refusing a legal file would be worse than decoding it. */
    return id >= 0 && id < TQ_BUILTIN_COUNT && builtin_types[id].name != NULL;
}
