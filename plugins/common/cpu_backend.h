/* cpu_backend.h — the parts of a CPU backend plugin that do not depend on
 * its instruction set, compiled into each one (plugins never link the core;
 * backend-x86 and backend-neon).
 *
 * A CPU backend is host memory and one device, so devices, buffers,
 * supports() (shapes and layouts), the dispatch of graph_compute, the
 * MUL_MAT driver (encode every activation column once, then tile rows x
 * columns over the host's pool) and every other op (attention, rms_norm,
 * rope, add, mul, scale, silu, swiglu, view_rows, get_rows) are the same for
 * every ISA but for a few inner loops. A plugin supplies a cpu_kernels
 * table: its matmul dot products and activation encoders and those inner
 * loops (and, optionally, whole-node GEMM / GEMV kernels for some weight
 * types), and builds its tq_backend_iface with CPU_BACKEND_IFACE.
 *
 * Results: the shared code adds no rounding of its own beyond the ref
 * backend's (same float operations in the same order, one rounding each;
 * the plugin must be compiled with -ffp-contract=off): get_rows, rope and
 * the element-wise ops are bit-identical to ref, and attention, rms_norm
 * and the matmul differ from it only through the plugin's sums (dot, axpy,
 * sum_squares, the dot functions). */
#ifndef CPU_BACKEND_H
#define CPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tqrun/tq_plugin.h>

/* ---- what a plugin supplies ------------------------------------------------ */

/* How the activations of a MUL_MAT are encoded for a weight type. */
typedef enum cpu_act {
    CPU_ACT_F32,  /* copied as is                    */
    CPU_ACT_F16,  /* narrowed to f16 (2 bytes each)  */
    CPU_ACT_BF16, /* narrowed to bf16 (2 bytes each) */
    CPU_ACT_Q8_0,
    CPU_ACT_Q8_1,
    CPU_ACT_Q8_K,
    CPU_ACT_COUNT
} cpu_act;

/* The most weight rows and activation columns one dot call takes. */
#define CPU_MM_MAX_ROWS 4
#define CPU_MM_MAX_COLS 4

/* nr (1..mm_rows) weight rows w[0..nr) of n elements times nc (1..mm_cols)
 * encoded activation columns a[0..nc); writes out[r * CPU_MM_MAX_COLS + c].
 * [worker] */
typedef void (*cpu_dot_fn)(int64_t n, const void *const *w, int nr, const void *const *a, int nc,
                           float *out);
/* A cpu_dot_fn `name` that runs the one-row kernel
 * kernel(n, w_row, a, nc, out_row, param) row by row, instantiated for each
 * column count so its column loops unroll (block kernels are dominated by
 * unpacking the weights, which rows cannot share). */
#define CPU_DOT_BY_ROWS(name, kernel, param)                                                   \
    static void name(int64_t n, const void *const *w, int nr, const void *const *a, int nc,   \
                     float *out) {                                                            \
        for (int r = 0; r < nr; r++) {                                                        \
            float *o = out + r * CPU_MM_MAX_COLS;                                             \
            switch (nc) {                                                                     \
            case 4: kernel(n, w[r], a, 4, o, param); break;                                   \
            case 3: kernel(n, w[r], a, 3, o, param); break;                                   \
            case 2: kernel(n, w[r], a, 2, o, param); break;                                   \
            default: kernel(n, w[r], a, 1, o, param); break;                                  \
            }                                                                                 \
        }                                                                                     \
    }

/* A cpu_dot_fn `name` that covers nr x nc (up to 4 x 4) with tiles of at
 * most 2 x 2 of kernel(n, w, tile_rows, a, tile_cols, out, param), each
 * shape a constant (register tiles of float weights). */
#define CPU_DOT_BY_2X2(name, kernel, param)                                                    \
    static void name(int64_t n, const void *const *w, int nr, const void *const *a, int nc,   \
                     float *out) {                                                            \
        for (int r = 0; r < nr; r += 2)                                                       \
            for (int c = 0; c < nc; c += 2) {                                                 \
                const int tr = nr - r < 2 ? 1 : 2, tc = nc - c < 2 ? 1 : 2;                   \
                float *o = out + r * CPU_MM_MAX_COLS + c;                                     \
                if (tr == 2 && tc == 2) kernel(n, w + r, 2, a + c, 2, o, param);              \
                else if (tr == 2) kernel(n, w + r, 2, a + c, 1, o, param);                    \
                else if (tc == 2) kernel(n, w + r, 1, a + c, 2, o, param);                    \
                else kernel(n, w + r, 1, a + c, 1, o, param);                                 \
            }                                                                                 \
    }

/* n floats of one column into the activation format. [worker] */
typedef void (*cpu_encode_fn)(const float *x, void *y, int64_t n);

typedef struct cpu_mm_type {
    tq_type type;
    int32_t blk;   /* weight elements per block (n_in must be a multiple) */
    cpu_act act;
    cpu_dot_fn dot;
} cpu_mm_type;

/* Every weight type of cpu_caps' MUL_MAT row with its block size and
 * activation format (those of ggml's vec_dot, whatever the ISA), for a
 * plugin whose dot functions are named p_f32, p_f16, p_bf16, p_q4_0 ..
 * p_q6_K: `const cpu_mm_type t[CPU_N_MM_TYPES] = CPU_MM_TYPES(dot);`. */
#define CPU_N_MM_TYPES 13
#define CPU_MM_TYPES(p)                                                                        \
    {                                                                                          \
        {TQ_TYPE_F32, 1, CPU_ACT_F32, p##_f32},      {TQ_TYPE_F16, 1, CPU_ACT_F16, p##_f16},   \
        {TQ_TYPE_BF16, 1, CPU_ACT_BF16, p##_bf16},   {TQ_TYPE_Q4_0, 32, CPU_ACT_Q8_0, p##_q4_0}, \
        {TQ_TYPE_Q4_1, 32, CPU_ACT_Q8_1, p##_q4_1},  {TQ_TYPE_Q5_0, 32, CPU_ACT_Q8_0, p##_q5_0}, \
        {TQ_TYPE_Q5_1, 32, CPU_ACT_Q8_1, p##_q5_1},  {TQ_TYPE_Q8_0, 32, CPU_ACT_Q8_0, p##_q8_0}, \
        {TQ_TYPE_Q2_K, 256, CPU_ACT_Q8_K, p##_q2_K}, {TQ_TYPE_Q3_K, 256, CPU_ACT_Q8_K, p##_q3_K}, \
        {TQ_TYPE_Q4_K, 256, CPU_ACT_Q8_K, p##_q4_K}, {TQ_TYPE_Q5_K, 256, CPU_ACT_Q8_K, p##_q5_K}, \
        {TQ_TYPE_Q6_K, 256, CPU_ACT_Q8_K, p##_q6_K},                                           \
    }

/* An optional MUL_MAT path for one weight type that replaces the dot tiles
 * from min_cols activation columns on (prefill kernels that repack or widen
 * a group of weight rows once for many columns). The driver encodes the
 * columns as for the dot tiles, hands the output rows to the pool's threads
 * in chunks (multiples of row_align, from a shared counter) and gives each
 * thread buf_bytes(n_in) bytes of its own (64-byte aligned; buf_bytes may
 * be NULL: none). run computes rows [lo, hi) of w times n_cols encoded
 * columns (act, act_stride bytes apart) into dst, n_out floats per column;
 * a thread calls it once per chunk it takes. [worker, on its own rows] */
typedef struct cpu_mm_gemm {
    tq_type type;
    int32_t min_cols;
    int32_t row_align;
    size_t (*buf_bytes)(int64_t n_in);
    void (*run)(const tq_tensor *w, int64_t lo, int64_t hi, const char *act, size_t act_stride,
                int64_t n_cols, float *dst, int64_t n_out, void *buf);
} cpu_mm_gemm;

/* Float weights (f32, f16, bf16) from a few columns on: the backend's
 * register tiles, driven by cpu_gemm_float. A tile writes out[c * ld + r],
 * the dot of the f32 weight row w[r] (r < nr <= rows) with the encoded
 * column a[c] (c < nc <= cols), n values each. f16_row is the backend's
 * widening of f16 weight rows. */
#define CPU_FLOAT_TILE_MAX_ROWS 8
typedef void (*cpu_float_tile)(int64_t n, const float *const *w, int nr, const void *const *a, int nc,
                               float *out, size_t ld);
typedef struct cpu_float_tiles {
    int32_t rows, cols; /* the largest tile: <= CPU_FLOAT_TILE_MAX_ROWS, CPU_MM_MAX_COLS */
    void (*f16_row)(const uint16_t *src, float *dst, int64_t n);
    cpu_float_tile f32, f16, bf16;
} cpu_float_tiles;

/* cpu_mm_gemm.run for float weights (row_align = tiles->rows, buf_bytes =
 * cpu_gemm_float_buf_bytes of it): rows [lo, hi) of w in tiles over column
 * blocks of about 256 KiB of 16-bit columns (at least 64), the weights and
 * columns read in place: each tile row's f16/bf16 weights are widened once
 * into buf, and stay in L1 while the block's columns pass by. [worker, on
 * its own rows and buf] */
void cpu_gemm_float(const cpu_float_tiles *tiles, const tq_tensor *w, int64_t lo, int64_t hi, const char *act,
                    size_t act_stride, int64_t n_cols, float *dst, int64_t n_out, void *buf);
/* The bytes of buf cpu_gemm_float needs: `rows` widened weight rows. */
static inline size_t cpu_gemm_float_buf_bytes(int32_t rows, int64_t n_in) {
    return (size_t)rows * (size_t)n_in * sizeof(float);
}
/* Defines a backend's cpu_mm_gemm entry points for float weights over its
 * cpu_float_tiles object `tiles` (cpu_mm_gemm.run has no context pointer):
 * static gemm_float_buf_bytes and gemm_float. */
#define CPU_GEMM_FLOAT_ENTRIES(tiles)                                                                       \
    static size_t gemm_float_buf_bytes(int64_t n_in) { return cpu_gemm_float_buf_bytes((tiles).rows, n_in); } \
    static void gemm_float(const tq_tensor *w, int64_t lo, int64_t hi, const char *act, size_t act_stride,   \
                           int64_t n_cols, float *dst, int64_t n_out, void *buf) {                          \
        cpu_gemm_float(&(tiles), w, lo, hi, act, act_stride, n_cols, dst, n_out, buf);                      \
    }

/* An optional decode path (one activation column) for one weight type: the
 * driver encodes the column, prepare turns it once per node into
 * col_bytes(n_in) bytes of whatever the row kernel wants (on the calling
 * thread; 64-byte aligned), then the pool hands out chunks of rows to
 * rows(), which writes dst[lo..hi). [prepare: main; rows: worker] */
typedef struct cpu_mm_gemv {
    tq_type type;
    size_t (*col_bytes)(int64_t n_in);
    void (*prepare)(void *col, const void *act, int64_t n_in);
    void (*rows)(const tq_tensor *w, int64_t lo, int64_t hi, const void *col, float *dst);
} cpu_mm_gemv;

typedef struct cpu_kernels {
    const char *name;        /* backend name: prefix of error messages  */
    const char *device_name; /* tq_device_info.name                     */
    const cpu_mm_type *mm_types;
    int32_t n_mm_types;
    int32_t mm_rows, mm_cols; /* what the dot functions take at most    */
    /* Optional: whole-node paths by weight type (NULL / 0: none). */
    const cpu_mm_gemm *gemms;
    int32_t n_gemms;
    const cpu_mm_gemv *gemvs;
    int32_t n_gemvs;
    /* Column encoders by cpu_act (CPU_ACT_F32 and CPU_ACT_BF16 may be
     * NULL: a copy, cpu_encode_bf16). Bit-identical to the core's. */
    cpu_encode_fn encode[CPU_ACT_COUNT];
    /* SIMD primitives of the shared ops, all [worker]:
     * n halves to floats (get_rows of f16 tables, f16 K/V rows); */
    void (*f16_row)(const uint16_t *src, float *dst, int64_t n);
    /* sum of the float squares x[i] * x[i], added in double (rms_norm); */
    double (*sum_squares)(const float *x, int64_t n);
    /* out[0..n_rot) = src rotated by the (cos, sin) pairs cs[2k], cs[2k+1]
     * of cpu_rope_table, pairs (2k, 2k+1) or, neox, (k, k + n_rot/2), with
     * the ref backend's operations: x0 c - x1 s and x0 s + x1 c; */
    void (*rope_rows)(const float *src, float *out, const float *cs, int64_t n_rot, int neox);
    /* for attention, n a multiple of att_head_align: the dot product of a
     * and b, and y += p * x. */
    int32_t att_head_align;
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*axpy)(float *y, float p, const float *x, int64_t n);
    /* Optional (NULL: the driver loops over dot / axpy), and bit-identical
     * to those loops: out[k * out_stride + r] = dot(q[k], rows + r * n, n)
     * for nr (1..CPU_ATT_ROWS) f32 rows and nq (any) query vectors, in
     * register tiles that share the loads; */
    void (*att_dots)(const float *rows, int nr, const float *const *q, int nq, int64_t n, float *out,
                     size_t out_stride);
    /* for each of np query vectors k: out[k][0..n) = the sum over keys j <
     * n_keys[k] of p[k][j] * V_j, each lane accumulated from 0 in key order
     * as axpy does, where V_j is the row of n f16 or f32 (type) values at
     * v + j * stride bytes (the kernel reads each V_j once for several k). */
    void (*att_vsum)(const char *v, size_t stride, tq_type type, const float *const *p, int np,
                     const int64_t *n_keys, int64_t n, float *const *out);
    /* Optional (NULL: expf per element): y[i] = expf(x[i]) for n values,
     * equal to the C library's expf bit for bit (x and y may be the same
     * array); softmax and silu/swiglu use it. */
    void (*expf_row)(const float *x, float *y, int64_t n);
    /* Optional, both or neither (NULL: f16 K/V batches take the f32
     * attention): llama.cpp's f16 accumulation (cpu_attention.c, "one-chunk
     * path"). f16_round_row: y[i] = x[i] rounded to f16 (nearest even) and
     * widened back; att_vacc16: for each of np (1..8) query vectors k and
     * each key j < n_keys, in key order, with h() rounding every lane to
     * f16: if bit k of ev[j] is set, acc[k] = h(acc[k] * ms[k][j]); then
     * acc[k] = h(fma(V_j, w[k][j], acc[k])), V_j the f16 row of n values at
     * v + j * stride bytes (read once for several k). acc[k] holds values
     * that are f16 numbers, as floats; ms[k][j] is read only where the bit
     * is set. */
    void (*f16_round_row)(const float *x, float *y, int64_t n);
    void (*att_vacc16)(const char *v, size_t stride, const float *const *w, const float *const *ms,
                       const uint8_t *ev, int np, int64_t n_keys, int64_t n, float *const *acc);
} cpu_kernels;

/* The most K rows one att_dots call takes. */
#define CPU_ATT_ROWS 4

/* The device: the host table, the plugin's kernels and per-call working
 * memory. Every CPU backend built on this file shares the definition. */
struct tq_device {
    const tq_host *host;
    const cpu_kernels *k;
    void *scratch;       /* grown on demand, 64-byte aligned */
    size_t scratch_size;
};

/* ---- the plugin's entry points ------------------------------------------------- */

/* init / deinit of a tq_plugin_entry: the plugin state holds host and k. */
tq_status cpu_backend_init(const tq_host *host, const cpu_kernels *k, void **state, tq_error *err);
void cpu_backend_deinit(void *state);

int32_t cpu_device_count(void *state);
tq_status cpu_device_info(void *state, int32_t index, tq_device_info *out);
tq_status cpu_device_open(void *state, int32_t index, tq_device **dev, tq_error *err);
void cpu_device_close(tq_device *dev);
int cpu_supports(tq_device *dev, const tq_tensor *node);
tq_status cpu_buffer_alloc(tq_device *dev, size_t bytes, tq_buffer **buf, tq_error *err);
tq_status cpu_buffer_wrap_host(tq_device *dev, void *ptr, size_t bytes, tq_buffer **buf, tq_error *err);
void cpu_buffer_free(tq_buffer *buf);
void *cpu_buffer_host_ptr(tq_buffer *buf);
tq_status cpu_buffer_write(tq_buffer *buf, size_t off, const void *src, size_t n);
tq_status cpu_buffer_read(tq_buffer *buf, size_t off, void *dst, size_t n);
tq_status cpu_graph_compute(tq_device *dev, const tq_graph *graph, int32_t first, int32_t last,
                            tq_error *err);
tq_status cpu_synchronize(tq_device *dev);

/* What cpu_supports accepts from a plugin whose mm_types cover every
 * weight type of the MUL_MAT row (the conformance test walks this table). */
#define CPU_N_CAPS 11
extern const tq_backend_cap cpu_caps[CPU_N_CAPS];

/* The tq_backend_iface of a CPU backend with capability table `cap_table` (a
 * static array: cpu_caps, or a subset for a plugin with fewer mm_types). */
#define CPU_BACKEND_IFACE(cap_table)                              \
    {                                                             \
        .size = sizeof(tq_backend_iface),                         \
        .caps = (cap_table),                                      \
        .n_caps = (int32_t)(sizeof(cap_table) / sizeof((cap_table)[0])), \
        .device_count = cpu_device_count,                         \
        .device_info = cpu_device_info,                           \
        .device_open = cpu_device_open,                           \
        .device_close = cpu_device_close,                         \
        .supports = cpu_supports,                                 \
        .buffer_alloc = cpu_buffer_alloc,                         \
        .buffer_wrap_host = cpu_buffer_wrap_host,                 \
        .buffer_free = cpu_buffer_free,                           \
        .buffer_host_ptr = cpu_buffer_host_ptr,                   \
        .buffer_write = cpu_buffer_write,                         \
        .buffer_read = cpu_buffer_read,                           \
        .graph_compute = cpu_graph_compute,                       \
        .synchronize = cpu_synchronize,                           \
    }

/* ---- shared by the kernels ------------------------------------------------------ */

/* Fills *err (message prefixed "<backend>: ") and returns code. */
tq_status cpu_error(const tq_device *dev, tq_error *err, tq_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* k's matmul entry for weight type t, NULL when it has none. [any] */
const cpu_mm_type *cpu_mm_type_of(const cpu_kernels *k, tq_type t);

/* Working memory of at least `bytes` (64-byte aligned), valid until the next
 * call; NULL when out of memory. [main] */
void *cpu_scratch(tq_device *dev, size_t bytes);

/* The ops (cpu_matmul.c, cpu_attention.c, cpu_ops.c); shapes as
 * cpu_supports checked. */
tq_status cpu_mul_mat(tq_device *dev, tq_tensor *dst, tq_error *err);
tq_status cpu_attention(tq_device *dev, tq_tensor *dst, tq_error *err);
tq_status cpu_get_rows(tq_device *dev, tq_tensor *dst, tq_error *err);
void cpu_rms_norm(tq_device *dev, tq_tensor *dst);
void cpu_rope(tq_device *dev, tq_tensor *dst);
void cpu_binary(tq_device *dev, tq_tensor *dst);    /* ADD, MUL            */
void cpu_unary(tq_device *dev, tq_tensor *dst);     /* SCALE, SILU, SWIGLU */
void cpu_view_rows(tq_device *dev, tq_tensor *dst);

/* x narrowed to bf16 (n uint16 at y), as the core's tq_f32_to_bf16 (round
 * to nearest even, NaN kept quiet). [any] */
void cpu_encode_bf16(const float *x, void *y, int64_t n);

/* Largest n_rot of ROPE (the builder's bound TQ_ROPE_MAX_DIMS). */
#define CPU_ROPE_MAX 1024

/* ---- helpers ------------------------------------------------------------------- */

static inline int64_t cpu_nrows(const tq_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

/* Row r (< cpu_nrows) of a tensor whose rows (dims 1..3 flattened) are
 * laid out by nb. A matrix (every weight) takes the first branch: the three
 * 64-bit divisions of the general case cost as much as a K-quant row's
 * dot product when decoding. */
static inline const char *cpu_row(const tq_tensor *t, int64_t r) {
    if (t->ne[2] == 1 && t->ne[3] == 1) return (const char *)t->data + r * (int64_t)t->nb[1];
    const int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (const char *)t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
}

/* [lo, hi) of n items for thread ith of nth, in chunks that are multiples of
 * `align` (except the last). */
static inline void cpu_split(int64_t n, int ith, int nth, int64_t align, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nth - 1) / nth;
    per = (per + align - 1) / align * align;
    *lo = per * ith < n ? per * ith : n;
    *hi = *lo + per < n ? *lo + per : n;
}

/* Rows [0, n) of a decode matmul shared out to nth threads (cpu_row_share.c):
 * thread ith takes its own contiguous share front to back, then chunks from
 * the back of the others'. n < 2^31 rows; chunk a multiple of align. */
typedef struct cpu_row_share {
    void *regions; /* cpu_row_share_bytes(nth) bytes, 64-byte aligned, the caller's */
    int nth;
    int64_t chunk;
} cpu_row_share;
size_t cpu_row_share_bytes(int nth);
/* Shares are cpu_split(n, i, nth, align). mem must outlive the use of s. [main] */
void cpu_row_share_init(cpu_row_share *s, void *mem, int64_t n, int nth, int64_t align, int64_t chunk);
/* [*lo, *hi) of the next rows for thread ith; 0 when none are left. [any] */
int cpu_row_share_next(const cpu_row_share *s, int ith, int64_t *lo, int64_t *hi);

/* 1 when the f32 tensor's elements are contiguous (rows back to back). */
static inline int cpu_contiguous(const tq_tensor *t) {
    return t->nb[0] == sizeof(float) && t->nb[1] == (size_t)t->ne[0] * sizeof(float) &&
           t->nb[2] == t->nb[1] * (size_t)t->ne[1] && t->nb[3] == t->nb[2] * (size_t)t->ne[2];
}

#endif
