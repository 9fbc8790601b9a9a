/*
 * tq_plugin.h — the one public header of tqrun's plugin ABI.
 *
 * A plugin is a shared module that exports exactly one symbol, the const data
 * object `tq_plugin_entry_v1` (use TQ_PLUGIN_ENTRY below). The core reads that
 * struct and checks its size, ABI version and required CPU features before it
 * runs any plugin code; only then does it call `init`, passing a `tq_host`
 * table. Plugins never link the core: everything the core offers (logging,
 * memory, config, the type registry, the thread pool, the graph builder) is
 * reached through that table and the interfaces below.
 *
 * Conventions used throughout this header:
 *  - Every struct that crosses the boundary starts with `uint32_t size`, set by
 *    the side that allocates it to its own sizeof. Fields are only ever
 *    appended; readers test TQ_HAS(p, T, field) before touching a field that
 *    was added after the version they were built against.
 *  - Enums only grow. Values are never renumbered or reused.
 *  - Interfaces are fetched by versioned string id ("tq.backend/1"). An
 *    incompatible change is a new id; a plugin may serve several.
 *  - Errors: functions return tq_status; when they take a `tq_error *err`, a
 *    failure fills err->message (caller-owned storage, never allocated).
 *  - Threads: "[main]" = called only from the thread that loaded the plugin,
 *    never concurrently with other calls into the same plugin; "[any]" = may
 *    be called from any thread, concurrently; "[worker]" = called on pool
 *    threads, concurrently with itself, for disjoint work.
 *
 * Compiles as C11 (-Wpedantic) and as C++.
 */
#ifndef TQRUN_TQ_PLUGIN_H
#define TQRUN_TQ_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Versions                                                                  */

/* While the major is 0 the ABI is unstable: major and minor must both match
 * the core's. From 1.0 on, a plugin with minor <= the core's minor loads. */
#define TQ_ABI_MAJOR 0
#define TQ_ABI_MINOR 1

#define TQ_IFACE_ARCH    "tq.arch/1"
#define TQ_IFACE_BACKEND "tq.backend/1"
#define TQ_IFACE_KV      "tq.kv/1"

/* True when struct *p (whose first field is `uint32_t size`) is large enough
 * to contain `field` of type T. Use before reading any field added after v1. */
#define TQ_HAS(p, T, field) \
    ((p) != NULL && (size_t)(p)->size >= offsetof(T, field) + sizeof(((T *)0)->field))

/* ------------------------------------------------------------------------ */
/* Status and errors                                                         */

typedef enum tq_status {
    TQ_OK = 0,
    TQ_ERR_INVALID = 1,     /* bad argument or bad input data            */
    TQ_ERR_NOMEM = 2,       /* allocation failed                          */
    TQ_ERR_IO = 3,          /* file could not be read or written          */
    TQ_ERR_FORMAT = 4,      /* malformed file (GGUF, ini, ...)            */
    TQ_ERR_UNSUPPORTED = 5, /* valid request this component cannot serve  */
    TQ_ERR_ABI = 6,         /* version or layout mismatch                 */
    TQ_ERR_NOT_FOUND = 7,   /* key, tensor, plugin or type not found      */
    TQ_ERR_RANGE = 8        /* value out of range (context full, ...)     */
} tq_status;

/* Caller-owned error message buffer. A callee that fails writes a NUL-
 * terminated, human-readable message naming what failed; it never allocates. */
typedef struct tq_error {
    tq_status code;
    char message[252];
} tq_error;

/* ------------------------------------------------------------------------ */
/* CPU features (bits of tq_plugin_entry.required_cpu and tq_host.cpu_features) */

#define TQ_CPU_SSE3       (UINT64_C(1) << 0)
#define TQ_CPU_SSSE3      (UINT64_C(1) << 1)
#define TQ_CPU_AVX        (UINT64_C(1) << 2)
#define TQ_CPU_AVX2       (UINT64_C(1) << 3)
#define TQ_CPU_FMA        (UINT64_C(1) << 4)
#define TQ_CPU_F16C       (UINT64_C(1) << 5)
#define TQ_CPU_AVX512F    (UINT64_C(1) << 6)
#define TQ_CPU_AVX512BW   (UINT64_C(1) << 7)
#define TQ_CPU_AVX512VL   (UINT64_C(1) << 8)
#define TQ_CPU_AVX512VNNI (UINT64_C(1) << 9)
#define TQ_CPU_AVXVNNI    (UINT64_C(1) << 10)
#define TQ_CPU_NEON       (UINT64_C(1) << 32)
#define TQ_CPU_DOTPROD    (UINT64_C(1) << 33)
#define TQ_CPU_FP16       (UINT64_C(1) << 34)
#define TQ_CPU_I8MM       (UINT64_C(1) << 35)
#define TQ_CPU_SVE        (UINT64_C(1) << 36)
/* A bit no machine has; fixture plugins use it to test refusal. */
#define TQ_CPU_IMPOSSIBLE (UINT64_C(1) << 63)

/* ------------------------------------------------------------------------ */
/* Types                                                                     */

/* Element/storage type handle. Built-in ids equal ggml's type numbers (so a
 * GGUF tensor's type field is a tq_type as is); ids >= TQ_TYPE_DYNAMIC_BASE
 * are handed out at run time by tq_host.type_register. Plugins should name
 * types by their string id and resolve them with tq_host.type_find. */
typedef int32_t tq_type;

enum {
    TQ_TYPE_F32 = 0,
    TQ_TYPE_F16 = 1,
    TQ_TYPE_Q4_0 = 2,
    TQ_TYPE_Q4_1 = 3,
    TQ_TYPE_Q5_0 = 6,
    TQ_TYPE_Q5_1 = 7,
    TQ_TYPE_Q8_0 = 8,
    TQ_TYPE_Q8_1 = 9,
    TQ_TYPE_Q2_K = 10,
    TQ_TYPE_Q3_K = 11,
    TQ_TYPE_Q4_K = 12,
    TQ_TYPE_Q5_K = 13,
    TQ_TYPE_Q6_K = 14,
    TQ_TYPE_Q8_K = 15,
    TQ_TYPE_I8 = 24,
    TQ_TYPE_I16 = 25,
    TQ_TYPE_I32 = 26,
    TQ_TYPE_BF16 = 30,
    TQ_TYPE_DYNAMIC_BASE = 1024,
    TQ_TYPE_INVALID = -1
};

/* Reference codec of a type: converts n elements (n a multiple of
 * block_elems). [any], pure functions of their arguments. */
typedef void (*tq_to_f32_fn)(const void *src, float *dst, int64_t n);
typedef void (*tq_from_f32_fn)(const float *src, void *dst, int64_t n);

/* Description of a type. The registry keeps the pointer it is given: a
 * plugin's type_info must stay valid until the plugin's deinit. */
typedef struct tq_type_info {
    uint32_t size;
    const char *name;        /* string id: "f16", "q4_k", "turbo.tq3", ...    */
    int32_t block_elems;     /* elements per block (1 for scalar types)       */
    int32_t block_bytes;     /* bytes per block                               */
    tq_to_f32_fn to_f32;     /* required: the universal fallback decoder      */
    tq_from_f32_fn from_f32; /* optional (NULL): encoder                      */
} tq_type_info;

/* ------------------------------------------------------------------------ */
/* Tensors, ops and graphs                                                   */

#define TQ_MAX_DIMS 4
#define TQ_MAX_SRC 4
#define TQ_MAX_OP_PARAMS 16

/* Ops the core's graph can hold. Only appended to. The parameter layout of
 * each op (in tq_tensor.op_params) is given next to it; floats are stored by
 * bit pattern in the int32 slots (use tq_param_f / tq_param_set_f). */
typedef enum tq_op {
    TQ_OP_NONE = 0,      /* leaf: weight or input, data is set             */
    TQ_OP_GET_ROWS = 1,  /* dst[:, i] = src0[:, src1[i]] as f32; src1 i32  */
    TQ_OP_MUL_MAT = 2,   /* dst[n_out, t] = src0[n_in, n_out] . src1[n_in, t]
                            src0: weights of any type, src1: f32            */
    TQ_OP_RMS_NORM = 3,  /* dst = src0 / sqrt(mean(src0^2) + eps) per row;
                            params: [0] eps (float)                         */
    TQ_OP_MUL = 4,       /* dst = src0 * src1, src1 broadcast over rows     */
    TQ_OP_ADD = 5,       /* dst = src0 + src1, src1 broadcast over rows     */
    TQ_OP_ROPE = 6,      /* rotate pairs of src0 [head_dim, n_head, t];
                            src1: i32 positions [t]; src2: optional f32
                            frequency divisors [n_rot/2] (NULL = none).
                            params: [0] n_rot, [1] mode (tq_rope_mode),
                            [2] freq_base f, [3] freq_scale f,
                            [4] attn_factor f (multiplies cos and sin),
                            [5] ext_factor f, [6] beta_fast f,
                            [7] beta_slow f, [8] n_ctx_orig              */
    TQ_OP_SWIGLU = 7,    /* dst = silu(src0) * src1 (same shapes)           */
    TQ_OP_SCALE = 8,     /* dst = src0 * params[0] (float)                  */
    TQ_OP_VIEW_ROWS = 9, /* dst = src0 elements [off, off + ne0) of every
                            column; params: [0] offset in elements.
                            Used to split fused projections.               */
    TQ_OP_KV_STORE = 10, /* store src0 (K) and src1 (V), each f32
                            [head_dim * n_kv_head, t], at positions
                            pos0.. of layer params[0]; params[1] = pos0.
                            Executed by the core through the KV plugin.    */
    TQ_OP_ATTENTION = 11,/* causal attention of src0 = Q f32 [head_dim,
                            n_head, t] against the cache of one layer:
                            src1 = K, src2 = V, each a view of the cache of
                            shape [head_dim, n_kv, n_kv_head] (any type a
                            backend supports), src3 = the KV_STORE node it
                            depends on. Query i sits at position pos0 + i
                            and sees keys 0..pos0+i.
                            dst f32 [head_dim * n_head, t].
                            params: [0] layer, [1] pos0, [2] n_kv,
                            [3] scale f (applied to q.k)                    */
    TQ_OP_SILU = 12,     /* dst = src0 / (1 + exp(-src0))                   */
    TQ_OP_COUNT
} tq_op;

typedef enum tq_rope_mode {
    TQ_ROPE_NORMAL = 0, /* adjacent pairs (x[2k], x[2k+1]) — Llama GGUF layout */
    TQ_ROPE_NEOX = 2    /* pairs (x[k], x[k + n_rot/2]) — HF layout, Phi-3     */
} tq_rope_mode;

/* A tensor: shape, strides, storage and (for graph nodes) the op producing it.
 * ne[0] is the contiguous dimension; nb[i] are byte strides. Unused trailing
 * dimensions have ne = 1. Owned by the core (graph arena or model); a plugin
 * borrows it for the duration of the call it received it in. */
typedef struct tq_tensor {
    uint32_t size;
    tq_type type;
    int64_t ne[TQ_MAX_DIMS];
    size_t nb[TQ_MAX_DIMS];
    void *data;                         /* host address, or NULL when the
                                           tensor lives in device memory    */
    tq_op op;
    const struct tq_tensor *src[TQ_MAX_SRC];
    int32_t op_params[TQ_MAX_OP_PARAMS];
    const char *name;                   /* GGUF name for weights, else a label */
    void *backend_extra;                /* owned by the backend that set it   */
} tq_tensor;

static inline float tq_param_f(const tq_tensor *t, int i) {
    union { int32_t i; float f; } u;
    u.i = t->op_params[i];
    return u.f;
}
static inline void tq_param_set_f(tq_tensor *t, int i, float f) {
    union { int32_t i; float f; } u;
    u.f = f;
    t->op_params[i] = u.i;
}

/* A run of graph nodes given to a backend. `nodes` is an array of pointers so
 * that growing tq_tensor never changes a stride an old plugin relies on. */
typedef struct tq_graph {
    uint32_t size;
    int32_t n_nodes;
    tq_tensor *const *nodes;
} tq_graph;

/* ------------------------------------------------------------------------ */
/* Host table: what the core offers to every plugin                         */

typedef enum tq_log_level {
    TQ_LOG_ERROR = 0,
    TQ_LOG_WARN = 1,
    TQ_LOG_INFO = 2,
    TQ_LOG_DEBUG = 3
} tq_log_level;

/* Work function of parallel_for: called once on each of nth threads with
 * ith = 0..nth-1; the function splits the work by ith. [worker] */
typedef void (*tq_task_fn)(void *user, int ith, int nth);

typedef struct tq_host {
    uint32_t size;
    uint32_t abi_major, abi_minor;
    uint64_t cpu_features;            /* TQ_CPU_* bits of this machine      */

    /* Logs one line (no trailing newline needed). `who` is the plugin's id.
     * [any] */
    void (*log)(tq_log_level level, const char *who, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Aligned allocation; align is a power of two. Memory from alloc must be
     * released with free. Returns NULL on failure. [any] */
    void *(*alloc)(size_t bytes, size_t align);
    void (*free)(void *ptr);

    /* Value of `key` in the ini section [plugin.<plugin_name>], or NULL.
     * The string lives until the plugin's deinit. [any] */
    const char *(*config_get)(const char *plugin_name, const char *key);

    /* Type registry. type_info returns NULL for an unknown id; type_find
     * returns TQ_TYPE_INVALID for an unknown name. type_register adds a
     * type (info must stay valid until the caller's deinit and must carry
     * to_f32) and returns its id in *id. [main] for register, [any] else. */
    const tq_type_info *(*type_info)(tq_type id);
    tq_type (*type_find)(const char *name);
    tq_status (*type_register)(const tq_type_info *info, tq_type *id, tq_error *err);

    /* Runs fn on the host's persistent thread pool, on every thread the user
     * configured (-t), and returns when all calls have returned. Must not be
     * called from inside a task. [main] */
    void (*parallel_for)(tq_task_fn fn, void *user);
    int32_t n_threads;                /* threads parallel_for uses           */
} tq_host;

/* ------------------------------------------------------------------------ */
/* Plugin entry                                                              */

typedef enum tq_plugin_kind {
    TQ_PLUGIN_ARCH = 1,
    TQ_PLUGIN_BACKEND = 2,
    TQ_PLUGIN_KV = 3
} tq_plugin_kind;

/* The one exported object. The core reads every field below `init` without
 * running plugin code; a plugin whose size, abi_major/minor or required_cpu
 * does not fit is closed again and reported by `tqrun --list-plugins`. */
typedef struct tq_plugin_entry {
    uint32_t size;             /* sizeof(tq_plugin_entry) at build time      */
    uint32_t abi_major, abi_minor;
    uint32_t kind;             /* tq_plugin_kind                              */
    const char *id;            /* reverse DNS, unique: "org.tqrun.arch.llama" */
    const char *name;          /* what the ini names: "llama", "x86"         */
    const char *version;       /* plugin version, free form                  */
    const char *description;   /* one line                                   */
    uint64_t required_cpu;     /* TQ_CPU_* bits the machine must have        */
    int32_t priority;          /* among same-name variants the highest wins  */

    /* Creates the plugin's state. `host` stays valid until deinit returns.
     * On failure fill *err and return non-OK; deinit is then not called.
     * [main] */
    tq_status (*init)(const tq_host *host, void **state, tq_error *err);
    /* Releases everything init and the interfaces created. [main] */
    void (*deinit)(void *state);
    /* Returns the interface table for `iface_id` (e.g. TQ_IFACE_BACKEND) or
     * NULL. The table lives until deinit. [any] */
    const void *(*get_interface)(void *state, const char *iface_id);
} tq_plugin_entry;

#define TQ_PLUGIN_ENTRY_SYMBOL "tq_plugin_entry_v1"

#if defined(_WIN32)
#define TQ_PLUGIN_EXPORT __declspec(dllexport)
#elif defined(__GNUC__)
#define TQ_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define TQ_PLUGIN_EXPORT
#endif

/* Defines the exported entry: `TQ_PLUGIN_ENTRY = { .size = sizeof(...), ...};` */
#ifdef __cplusplus
#define TQ_PLUGIN_ENTRY extern "C" TQ_PLUGIN_EXPORT const tq_plugin_entry tq_plugin_entry_v1
#else
#define TQ_PLUGIN_ENTRY TQ_PLUGIN_EXPORT const tq_plugin_entry tq_plugin_entry_v1
#endif

/* ------------------------------------------------------------------------ */
/* Model source: read-only access to a loaded GGUF file (given to arch plugins) */

typedef enum tq_value_type {
    TQ_VAL_U8 = 0, TQ_VAL_I8 = 1, TQ_VAL_U16 = 2, TQ_VAL_I16 = 3,
    TQ_VAL_U32 = 4, TQ_VAL_I32 = 5, TQ_VAL_F32 = 6, TQ_VAL_BOOL = 7,
    TQ_VAL_STRING = 8, TQ_VAL_ARRAY = 9, TQ_VAL_U64 = 10, TQ_VAL_I64 = 11,
    TQ_VAL_F64 = 12
} tq_value_type;  /* numbering equals GGUF's metadata value types */

/* A metadata value. Scalars are widened: unsigned types and bool into num.u,
 * signed types into num.i, f32/f64 into num.f. Strings are not NUL-
 * terminated (use len). Arrays: elem_type, count and a pointer to the raw
 * little-endian elements (for string arrays use tq_model_source.array_str).
 * Pointers borrow the mapped file and live as long as the source. */
typedef struct tq_value {
    uint32_t size;
    tq_value_type type;
    union { int64_t i; uint64_t u; double f; } num;
    const char *str;
    uint64_t len;
    tq_value_type elem_type;
    uint64_t count;
    const void *elems;
} tq_value;

/* Numeric value of a scalar metadata value as int64 / double; 0 when the
 * value is not numeric (check v->type first when that matters). */
static inline int tq_value_is_int(const tq_value *v) {
    return v->type <= TQ_VAL_I32 || v->type == TQ_VAL_U64 || v->type == TQ_VAL_I64 ||
           v->type == TQ_VAL_BOOL;
}
static inline int tq_value_is_num(const tq_value *v) {
    return tq_value_is_int(v) || v->type == TQ_VAL_F32 || v->type == TQ_VAL_F64;
}
static inline double tq_value_f64(const tq_value *v) {
    if (v->type == TQ_VAL_F32 || v->type == TQ_VAL_F64) return v->num.f;
    if (v->type == TQ_VAL_U64 || v->type == TQ_VAL_U32 || v->type == TQ_VAL_U16 ||
        v->type == TQ_VAL_U8 || v->type == TQ_VAL_BOOL)
        return (double)v->num.u;
    return tq_value_is_int(v) ? (double)v->num.i : 0.0;
}

typedef struct tq_model_source {
    uint32_t size;
    const char *path;   /* the file, for error messages */
    /* Looks up a metadata key; TQ_ERR_NOT_FOUND if absent. [any] */
    tq_status (*meta)(const struct tq_model_source *src, const char *key, tq_value *out);
    /* i-th string of a string array value; *len receives its length. */
    const char *(*array_str)(const struct tq_model_source *src, const tq_value *arr,
                             uint64_t i, uint64_t *len);
    /* A weight tensor by GGUF name, or NULL. The tensor (type, shape,
     * data in the mapping) lives as long as the source. [any] */
    const tq_tensor *(*tensor)(const struct tq_model_source *src, const char *name);
} tq_model_source;

/* ------------------------------------------------------------------------ */
/* Graph builder (given to arch plugins by the core while building a graph)  */

/* Facts about the batch being built. */
typedef struct tq_batch_info {
    uint32_t size;
    int32_t n_tokens;   /* tokens in this batch                           */
    int32_t pos0;       /* position of the first token                    */
    int32_t pos_max;    /* highest position in the batch                  */
    int32_t n_ctx;      /* configured context size                        */
} tq_batch_info;

/* Every function returns a new node owned by the builder's graph, or NULL on
 * failure (then the builder holds an error and build_graph should return
 * TQ_ERR_INVALID). Shapes use the convention of tq_tensor. [main] */
typedef struct tq_builder tq_builder;
struct tq_builder {
    uint32_t size;
    /* Input nodes: token ids (i32 [t]) and their positions (i32 [t]). */
    tq_tensor *(*tokens)(tq_builder *b);
    tq_tensor *(*positions)(tq_builder *b);
    tq_tensor *(*get_rows)(tq_builder *b, const tq_tensor *table, const tq_tensor *ids);
    tq_tensor *(*mul_mat)(tq_builder *b, const tq_tensor *w, const tq_tensor *x);
    tq_tensor *(*rms_norm)(tq_builder *b, const tq_tensor *x, float eps);
    tq_tensor *(*mul)(tq_builder *b, const tq_tensor *x, const tq_tensor *y);
    tq_tensor *(*add)(tq_builder *b, const tq_tensor *x, const tq_tensor *y);
    tq_tensor *(*scale)(tq_builder *b, const tq_tensor *x, float s);
    tq_tensor *(*silu)(tq_builder *b, const tq_tensor *x);
    tq_tensor *(*swiglu)(tq_builder *b, const tq_tensor *gate, const tq_tensor *up);
    /* Rows [offset, offset + n) of every column of x (x contiguous f32). */
    tq_tensor *(*view_rows)(tq_builder *b, const tq_tensor *x, int64_t offset, int64_t n);
    /* Reshape a contiguous f32 node to [ne0, ne1, t] (product unchanged). */
    tq_tensor *(*reshape_3d)(tq_builder *b, const tq_tensor *x, int64_t ne0, int64_t ne1);
    /* RoPE on x [head_dim, n_head, t]; freq_factors may be NULL. */
    tq_tensor *(*rope)(tq_builder *b, const tq_tensor *x, const tq_tensor *freq_factors,
                       int32_t n_rot, tq_rope_mode mode, float freq_base, float freq_scale,
                       float attn_factor);
    /* Stores k and v ([head_dim, n_kv_head, t], after RoPE) in the KV cache
     * of `layer` and attends q [head_dim, n_head, t] to every cached key up to
     * each query's position. Returns f32 [head_dim * n_head, t]. */
    tq_tensor *(*attention)(tq_builder *b, int32_t layer, const tq_tensor *q,
                            const tq_tensor *k, const tq_tensor *v, float scale);
    /* Keeps only the columns whose logits the caller asked for (the last
     * token when generating, all when scoring). Call it once, before the
     * final norm, so the output projection runs on those rows only. */
    tq_tensor *(*select_outputs)(tq_builder *b, const tq_tensor *x);
};

/* ------------------------------------------------------------------------ */
/* tq.arch/1 — model families                                               */

/* What an arch plugin tells the core about a loaded model. */
typedef struct tq_model_info {
    uint32_t size;
    int32_t n_layer;
    int32_t n_embd;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;       /* key/value head size                          */
    int32_t n_vocab;        /* rows of the output projection                */
    int32_t n_ctx_train;
    /* Extra end-of-generation token ids beyond the tokenizer's own set
     * (e.g. Phi-3's <|end|>); -1 terminated, may be NULL. Lives as long as
     * the model. */
    const int32_t *eog_tokens;
} tq_model_info;

/* One message of a conversation, for tq_arch_iface.format_chat. */
typedef struct tq_chat_message {
    uint32_t size;
    const char *role;      /* "system", "user", "assistant"   */
    const char *content;   /* UTF-8, NUL-terminated           */
} tq_chat_message;

typedef struct tq_arch_iface {
    uint32_t size;
    /* NULL-terminated list of general.architecture values handled. */
    const char *const *gguf_names;
    /* Reads hyperparameters and finds every tensor; checks shapes. On a
     * missing key or tensor, fail naming it. The model borrows `src` (which
     * outlives it). [main] */
    tq_status (*load)(void *state, const tq_model_source *src, void **model,
                      tq_model_info *info, tq_error *err);
    void (*unload)(void *model);
    /* Emits the forward pass for one batch through `b`; the returned node is
     * the logits [n_vocab, n_outputs]. [main] */
    tq_status (*build_graph)(void *model, tq_builder *b, const tq_batch_info *batch,
                             tq_tensor **logits, tq_error *err);
    /* Optional (NULL: the model has no chat format): renders a conversation
     * as the prompt text the model was trained on (special tokens written as
     * their text, to be tokenized with special-token parsing), followed by
     * the assistant's opening when add_generation_prompt. The text carries
     * no BOS: the caller's tokenizer adds it as the vocabulary says
     * (tokenizer.ggml.add_bos_token), as llama.cpp does. Writes at most
     * size bytes (NUL-terminated when they fit) and returns the length the
     * full text needs, or -1 when a role is not supported. [any] */
    int64_t (*format_chat)(void *model, const tq_chat_message *msgs, int32_t n_msgs,
                           int add_generation_prompt, char *buf, int64_t size);
} tq_arch_iface;

/* ------------------------------------------------------------------------ */
/* tq.backend/1 — compute                                                    */

/* A capability row: op with the types it takes, as comma-separated type
 * names ("f32,f16,q4_0") or "*" for any. Read without opening a device, so a
 * support matrix can be printed; supports() gives the exact answer. */
typedef struct tq_backend_cap {
    tq_op op;
    const char *src0_types;
    const char *src1_types;
    const char *dst_types;
} tq_backend_cap;

typedef struct tq_device_info {
    uint32_t size;
    const char *name;        /* "cpu (avx2)", "NVIDIA H100"                  */
    uint64_t mem_total;      /* bytes, 0 if unknown                          */
    uint64_t mem_free;
    int32_t host_visible;    /* 1: tensors in host memory work as they are   */
} tq_device_info;

typedef struct tq_device tq_device;
typedef struct tq_buffer tq_buffer;

typedef struct tq_backend_iface {
    uint32_t size;
    const tq_backend_cap *caps;
    int32_t n_caps;

    int32_t (*device_count)(void *state);
    tq_status (*device_info)(void *state, int32_t index, tq_device_info *out);
    /* Opens a device; lives until device_close. [main] */
    tq_status (*device_open)(void *state, int32_t index, tq_device **dev, tq_error *err);
    void (*device_close)(tq_device *dev);

    /* Exact support test for one node (types and shapes). [any] */
    int (*supports)(tq_device *dev, const tq_tensor *node);

    /* Device memory. buffer_wrap_host may be NULL (then host memory must be
     * copied in); buffer_host_ptr returns NULL for device-only memory. The
     * backend owns buffers until buffer_free. [main] */
    tq_status (*buffer_alloc)(tq_device *dev, size_t bytes, tq_buffer **buf, tq_error *err);
    tq_status (*buffer_wrap_host)(tq_device *dev, void *ptr, size_t bytes, tq_buffer **buf,
                                  tq_error *err);
    void (*buffer_free)(tq_buffer *buf);
    void *(*buffer_host_ptr)(tq_buffer *buf);
    tq_status (*buffer_write)(tq_buffer *buf, size_t offset, const void *src, size_t n);
    tq_status (*buffer_read)(tq_buffer *buf, size_t offset, void *dst, size_t n);

    /* Runs graph->nodes[first .. last) in order. Every node's inputs are
     * computed; every node's data points to its (preallocated) output. The
     * backend may use host->parallel_for. [main] */
    tq_status (*graph_compute)(tq_device *dev, const tq_graph *graph, int32_t first,
                               int32_t last, tq_error *err);
    /* Waits until all work submitted to dev is done. [main] */
    tq_status (*synchronize)(tq_device *dev);
} tq_backend_iface;

/* ------------------------------------------------------------------------ */
/* tq.kv/1 — KV-cache formats                                                */

typedef struct tq_kv_params {
    uint32_t size;
    int32_t n_layers;
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t max_tokens;
    const char *k_type;      /* format names as the user wrote them ("f16")  */
    const char *v_type;
} tq_kv_params;

typedef struct tq_kv_cache tq_kv_cache;

typedef struct tq_kv_iface {
    uint32_t size;
    /* Creates an empty cache; fails with a message naming an unknown format
     * or unsupported head_dim. [main] */
    tq_status (*create)(void *state, const tq_kv_params *p, tq_kv_cache **cache, tq_error *err);
    void (*destroy)(tq_kv_cache *cache);
    /* Stores n tokens at positions pos..pos+n-1 of one layer. k and v are
     * f32, token-major: [n][n_kv_heads * head_dim]. Positions before pos must
     * already be stored. [main] (may use host->parallel_for) */
    tq_status (*append)(tq_kv_cache *cache, int32_t layer, int32_t pos, int32_t n,
                        const float *k, const float *v, tq_error *err);
    /* Forgets every position >= n_pos (for prompt reuse). [main] */
    void (*truncate)(tq_kv_cache *cache, int32_t n_pos);
    /* Bytes of memory the cache holds right now for the positions stored
     * (everything: codes, scales, side tables). [any] */
    uint64_t (*bytes_used)(const tq_kv_cache *cache);
    /* Dequantized read of positions pos..pos+n-1 of one layer into f32,
     * layout [n_kv_heads][n][head_dim]. Always works. [main] */
    tq_status (*read)(tq_kv_cache *cache, int32_t layer, int32_t pos, int32_t n,
                      float *k_out, float *v_out, tq_error *err);
    /* Optional (may be NULL): a plain-tensor view of one layer's K (which=0)
     * or V (which=1) for positions 0..n_kv-1, shape [head_dim, n_kv,
     * n_kv_heads], so any backend's attention can read it directly. */
    tq_status (*view)(tq_kv_cache *cache, int32_t layer, int32_t which, int32_t n_kv,
                      tq_tensor *out);
    /* Optional (may be NULL): attention computed on the stored format.
     * q f32 [n_tokens][n_head][head_dim]; out same layout; query i is at
     * position pos0 + i and sees keys 0..pos0+i. [main] */
    tq_status (*attention)(tq_kv_cache *cache, int32_t layer, const float *q, int32_t n_head,
                           int32_t n_tokens, int32_t pos0, float scale, float *out,
                           tq_error *err);
} tq_kv_iface;

#ifdef __cplusplus
}
#endif

#endif /* TQRUN_TQ_PLUGIN_H */
