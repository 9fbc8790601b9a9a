/* cpu_matmul.c — the MUL_MAT driver of a CPU backend (cpu_backend.h):
 * dst[n_out, t] = W[n_in, n_out] . X[n_in, t].
 *
 * As in ggml and the ref backend, every activation column is first encoded
 * ONCE per node into the weight's vec_dot format (the plugin's encoders:
 * q8_0, q8_1, q8_K, 16-bit f16 / bf16, or plain f32), split
 * over the pool by columns. Then a thread owns a range of output rows; in
 * it, rows go in blocks of ROW_BLOCK (which stay in L1/L2) against column
 * blocks of COL_BLOCK (whose encoded activations stay in L2), and each dot
 * call multiplies up to mm_rows weight rows with up to mm_cols columns, so
 * a weight block is loaded and unpacked once per mm_cols columns. Decoding
 * (t = 1) is the same loop with one column: a GEMV over rows, each thread
 * streaming its own contiguous share (cpu_row_share.c).
 *
 * A plugin may replace the dot tiles for a weight type (cpu_kernels.gemms,
 * .gemvs): from a number of columns on by a GEMM over its own row range
 * (row-interleaved or widened weight tiles), and for one column by a GEMV
 * whose per-node preparation of the column runs once here. Neither changes
 * how the columns are encoded. */
#include <stdatomic.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_blocks.h"

#define ROW_BLOCK 16
#define COL_BLOCK 64

/* Decoding hands out rows in chunks (cpu_row_share.c: each thread's own
 * share front to back, then the others' from the back) rather than in one
 * fixed share per thread: on a machine where the other thread's core is
 * busy for a while (a VM, a laptop), the free one takes chunks of its share
 * instead of waiting at the end of the node. At least 8 chunks per thread,
 * so that the threads finish a small matrix close together (the last chunk
 * is what the others wait for). */
#define DECODE_CHUNK_MAX 64 /* multiples of every mm_rows */
#define DECODE_CHUNK_MIN 16

static int64_t decode_chunk(int64_t n_out, int n_threads) {
    int64_t c = n_out / (8 * (int64_t)(n_threads > 0 ? n_threads : 1)) / DECODE_CHUNK_MIN * DECODE_CHUNK_MIN;
    return c < DECODE_CHUNK_MIN ? DECODE_CHUNK_MIN : c > DECODE_CHUNK_MAX ? DECODE_CHUNK_MAX : c;
}

/* Prefill GEMMs take their rows from the same kind of counter, in chunks
 * that shrink as the rows run out (guided scheduling): a chunk is the rows
 * left over 2 x threads, at most an eighth of a thread's share and at least
 * one row group of the plugin's GEMM. With one equal share each, the thread
 * that a VM or another process slowed down for a moment made the others
 * wait at the end of every node (about 6% of a tm30m F16 pp512 on two
 * cores, pool instrumentation, session 8); with fixed eighths the last
 * chunk of a large node still ran about a millisecond (32 rows x 512
 * columns of ffn_down) while the other thread waited, long enough for its
 * spin to end and the next node to pay for waking it (session 9: 9 of the
 * worker's 11 sleeps per tm30m pp512 came after a GEMM). A chunk runs
 * every column over its rows, so the columns are read once per chunk. */
static int64_t prefill_chunk(int64_t n_out, int n_threads, int64_t row_align) {
    const int64_t c = n_out / (8 * (int64_t)(n_threads > 0 ? n_threads : 1)) / row_align * row_align;
    return c < row_align ? row_align : c;
}

typedef struct mm_task {
    const tq_tensor *w, *x;
    const cpu_mm_type *mt;
    const cpu_mm_gemm *gemm; /* the plugin's prefill path, or NULL */
    const cpu_mm_gemv *gemv; /* the plugin's decode path, or NULL  */
    cpu_encode_fn encode;    /* NULL: copy */
    int mr, nc;              /* rows and columns per dot call */
    char *act;               /* encoded columns               */
    size_t act_stride;
    char *work;              /* gemm: per-thread buffers; gemv: the prepared column */
    size_t work_stride;
    float *dst;
    int64_t n_in, n_out, n_cols;
    atomic_llong *next_row;  /* gemm: the next chunk of rows to take       */
    cpu_row_share share;     /* one column: the rows each thread takes    */
    int64_t chunk;           /* one column: rows per chunk of share; gemm: the most */
    int64_t chunk_min;       /* gemm: the least rows per chunk (a row group) */
    int64_t guide;           /* gemm: rows left / guide = the next chunk   */
} mm_task;

static const cpu_mm_gemm *gemm_of(const cpu_kernels *k, tq_type t, int64_t n_cols) {
    for (int32_t i = 0; i < k->n_gemms; i++)
        if (k->gemms[i].type == t && n_cols >= k->gemms[i].min_cols) return &k->gemms[i];
    return NULL;
}

static const cpu_mm_gemv *gemv_of(const cpu_kernels *k, tq_type t) {
    for (int32_t i = 0; i < k->n_gemvs; i++)
        if (k->gemvs[i].type == t) return &k->gemvs[i];
    return NULL;
}

/* The same for prefill rows, in guided chunks (prefill_chunk). */
static int next_gemm_chunk(const mm_task *t, int64_t *lo, int64_t *hi) {
    long long at = atomic_load_explicit(t->next_row, memory_order_relaxed);
    int64_t c;
    do {
        if (at >= t->n_out) return 0;
        c = (t->n_out - at) / t->guide / t->chunk_min * t->chunk_min;
        c = c < t->chunk_min ? t->chunk_min : c > t->chunk ? t->chunk : c;
    } while (!atomic_compare_exchange_weak_explicit(t->next_row, &at, at + c, memory_order_relaxed,
                                                    memory_order_relaxed));
    *lo = at;
    *hi = at + c < t->n_out ? at + c : t->n_out;
    return 1;
}

/* Bytes of one encoded activation column, padded to a cache line. */
static size_t act_bytes(cpu_act act, int64_t n) {
    size_t b;
    switch (act) {
    case CPU_ACT_Q8_0: b = (size_t)(n / CPU_QK) * sizeof(cpu_block_q8_0); break;
    case CPU_ACT_Q8_1: b = (size_t)(n / CPU_QK) * sizeof(cpu_block_q8_1); break;
    case CPU_ACT_Q8_K: b = (size_t)(n / CPU_QK_K) * sizeof(cpu_block_q8_K); break;
    case CPU_ACT_F16:
    case CPU_ACT_BF16: b = (size_t)n * sizeof(uint16_t); break;
    default: b = (size_t)n * sizeof(float); break;
    }
    return (b + 63) / 64 * 64;
}

static void encode_column(const mm_task *t, int64_t c) {
    const float *x = (const float *)cpu_row(t->x, c);
    char *out = t->act + (size_t)c * t->act_stride;
    if (t->encode)
        t->encode(x, out, t->n_in);
    else
        memcpy(out, x, (size_t)t->n_in * sizeof(float));
}

static void encode_worker(void *user, int ith, int nth) {
    const mm_task *t = user;
    int64_t lo, hi;
    cpu_split(t->n_cols, ith, nth, 1, &lo, &hi);
    for (int64_t c = lo; c < hi; c++) encode_column(t, c);
}

/* Rows [lo, hi) times every column, in dot tiles. */
static void mm_rows(const mm_task *t, int64_t lo, int64_t hi) {
    const cpu_dot_fn dot = t->mt->dot;
    for (int64_t c0 = 0; c0 < t->n_cols; c0 += COL_BLOCK) {
        const int64_t c1 = c0 + COL_BLOCK < t->n_cols ? c0 + COL_BLOCK : t->n_cols;
        for (int64_t r0 = lo; r0 < hi; r0 += ROW_BLOCK) {
            const int64_t r1 = r0 + ROW_BLOCK < hi ? r0 + ROW_BLOCK : hi;
            for (int64_t c = c0; c < c1; c += t->nc) {
                const int nc = c1 - c < t->nc ? (int)(c1 - c) : t->nc;
                const void *a[CPU_MM_MAX_COLS];
                for (int k = 0; k < nc; k++) a[k] = t->act + (size_t)(c + k) * t->act_stride;
                for (int64_t r = r0; r < r1; r += t->mr) {
                    const int nr = r1 - r < t->mr ? (int)(r1 - r) : t->mr;
                    const void *w[CPU_MM_MAX_ROWS];
                    float out[CPU_MM_MAX_ROWS * CPU_MM_MAX_COLS];
                    for (int j = 0; j < nr; j++) w[j] = cpu_row(t->w, r + j);
                    dot(t->n_in, w, nr, a, nc, out);
                    for (int j = 0; j < nr; j++)
                        for (int k = 0; k < nc; k++)
                            t->dst[(c + k) * t->n_out + r + j] = out[j * CPU_MM_MAX_COLS + k];
                }
            }
        }
    }
}

static void mm_worker(void *user, int ith, int nth) {
    const mm_task *t = user;
    int64_t lo, hi;
    if (t->n_cols == 1) {
        while (cpu_row_share_next(&t->share, ith, &lo, &hi)) mm_rows(t, lo, hi);
    } else {
        cpu_split(t->n_out, ith, nth, t->mr, &lo, &hi);
        mm_rows(t, lo, hi);
    }
}

static void gemv_worker(void *user, int ith, int nth) {
    (void)nth;
    const mm_task *t = user;
    int64_t lo, hi;
    while (cpu_row_share_next(&t->share, ith, &lo, &hi)) t->gemv->rows(t->w, lo, hi, t->work, t->dst);
}

static void gemm_worker(void *user, int ith, int nth) {
    (void)nth;
    const mm_task *t = user;
    int64_t lo, hi;
    while (next_gemm_chunk(t, &lo, &hi))
        t->gemm->run(t->w, lo, hi, t->act, t->act_stride, t->n_cols, t->dst, t->n_out,
                     t->work + (size_t)ith * t->work_stride);
}

/* ---- float weights, several columns (cpu_gemm_float) ------------------------------ */

#define FLOAT_ACT_BYTES (256 * 1024) /* 16-bit activations per column block */
#define FLOAT_MIN_COLS 64            /* the least columns per column block */

/* The weight rows [r, r + nr) as f32 rows: rows[j] points at f32 weights in
 * place, or at row j of buf where f16_row or the bf16 shift widened them. */
static void widen_rows(const cpu_float_tiles *t, const tq_tensor *w, int64_t r, int nr, float *buf,
                       const float **rows) {
    const int64_t n = w->ne[0];
    for (int j = 0; j < nr; j++) {
        const void *src = cpu_row(w, r + j);
        if (w->type == TQ_TYPE_F32) {
            rows[j] = src;
            continue;
        }
        float *f = buf + (size_t)j * (size_t)n;
        if (w->type == TQ_TYPE_F16) {
            t->f16_row(src, f, n);
        } else {
            const uint16_t *h = src;
            for (int64_t i = 0; i < n; i++) {
                const uint32_t u = (uint32_t)h[i] << 16;
                memcpy(&f[i], &u, sizeof u);
            }
        }
        rows[j] = f;
    }
}

void cpu_gemm_float(const cpu_float_tiles *t, const tq_tensor *w, int64_t lo, int64_t hi, const char *act,
                    size_t act_stride, int64_t n_cols, float *dst, int64_t n_out, void *buf) {
    const int64_t n_in = w->ne[0], R = t->rows, C = t->cols;
    const cpu_float_tile tile = w->type == TQ_TYPE_F16 ? t->f16 : w->type == TQ_TYPE_BF16 ? t->bf16 : t->f32;
    int64_t cb = FLOAT_ACT_BYTES / ((int64_t)sizeof(uint16_t) * n_in) / C * C;
    if (cb < FLOAT_MIN_COLS) cb = FLOAT_MIN_COLS;
    for (int64_t c0 = 0; c0 < n_cols; c0 += cb) {
        const int64_t c1 = c0 + cb < n_cols ? c0 + cb : n_cols;
        for (int64_t r = lo; r < hi; r += R) {
            const int nr = hi - r < R ? (int)(hi - r) : (int)R;
            const float *wrow[CPU_FLOAT_TILE_MAX_ROWS];
            widen_rows(t, w, r, nr, buf, wrow);
            for (int64_t c = c0; c < c1; c += C) {
                const int nc = c1 - c < C ? (int)(c1 - c) : (int)C;
                const void *a[CPU_MM_MAX_COLS];
                for (int k = 0; k < nc; k++) a[k] = act + (size_t)(c + k) * act_stride;
                tile(n_in, wrow, nr, a, nc, dst + c * n_out + r, (size_t)n_out);
            }
        }
    }
}

tq_status cpu_mul_mat(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const cpu_kernels *k = dev->k;
    mm_task t;
    t.w = dst->src[0];
    t.x = dst->src[1];
    t.mt = cpu_mm_type_of(k, t.w->type);
    if (!t.mt) /* cpu_supports refused it: the scheduler never sends it */
        return cpu_error(dev, err, TQ_ERR_UNSUPPORTED, "mul_mat: no kernel for type %d", (int)t.w->type);
    t.encode = k->encode[t.mt->act];
    if (!t.encode && t.mt->act == CPU_ACT_BF16) t.encode = cpu_encode_bf16;
    t.mr = k->mm_rows;
    t.nc = k->mm_cols;
    t.n_in = t.w->ne[0];
    t.n_out = t.w->ne[1];
    t.n_cols = cpu_nrows(t.x);
    t.dst = dst->data;
    t.act_stride = act_bytes(t.mt->act, t.n_in);
    if (t.n_out > INT32_MAX) /* cpu_row_share's limit; no real weight comes near */
        return cpu_error(dev, err, TQ_ERR_UNSUPPORTED, "mul_mat: %lld rows", (long long)t.n_out);
    t.gemv = t.n_cols == 1 ? gemv_of(k, t.w->type) : NULL;
    t.gemm = t.n_cols > 1 && dev->host->n_threads > 0 ? gemm_of(k, t.w->type, t.n_cols) : NULL;
    t.work_stride = 0;
    size_t work_bytes = 0;
    if (t.gemv) {
        work_bytes = t.gemv->col_bytes(t.n_in);
    } else if (t.gemm && t.gemm->buf_bytes) {
        t.work_stride = (t.gemm->buf_bytes(t.n_in) + 63) / 64 * 64;
        work_bytes = t.work_stride * (size_t)dev->host->n_threads;
    }
    const size_t act_total = t.act_stride * (size_t)t.n_cols; /* a multiple of 64 */
    const int nth = dev->host->n_threads > 0 ? dev->host->n_threads : 1;
    const size_t share_at = act_total + (work_bytes + 63) / 64 * 64;
    t.act = cpu_scratch(dev, share_at + (t.n_cols == 1 ? cpu_row_share_bytes(nth) : 0));
    if (!t.act)
        return cpu_error(dev, err, TQ_ERR_NOMEM, "mul_mat: out of memory for %lld columns",
                         (long long)t.n_cols);
    t.work = t.act + act_total;
    atomic_llong next_row;
    atomic_init(&next_row, 0);
    t.next_row = &next_row;
    t.chunk = t.gemm ? prefill_chunk(t.n_out, dev->host->n_threads, t.gemm->row_align)
                     : decode_chunk(t.n_out, dev->host->n_threads);
    t.chunk_min = t.gemm ? t.gemm->row_align : t.chunk;
    if (t.n_cols == 1) cpu_row_share_init(&t.share, t.act + share_at, t.n_out, nth, t.chunk, t.chunk);
    t.guide = 2 * (int64_t)nth;
    /* One column is cheaper to encode here than to hand to the pool. */
    if (t.n_cols == 1)
        encode_column(&t, 0);
    else
        dev->host->parallel_for(encode_worker, &t);
    if (t.gemv) {
        t.gemv->prepare(t.work, t.act, t.n_in);
        dev->host->parallel_for(gemv_worker, &t);
    } else {
        dev->host->parallel_for(t.gemm ? gemm_worker : mm_worker, &t);
    }
    return TQ_OK;
}
