/* cpu_matmul.c — the MUL_MAT driver of a CPU backend (cpu_backend.h):
 * dst[n_out, t] = W[n_in, n_out] . X[n_in, t].
 *
 * As in ggml and the ref backend, every activation column is first encoded
 * ONCE per node into the weight's vec_dot format (the plugin's encoders:
 * q8_0, q8_1, q8_K, f32 rounded through f16 / bf16, or plain f32), split
 * over the pool by columns. Then a thread owns a range of output rows; in
 * it, rows go in blocks of ROW_BLOCK (which stay in L1/L2) against column
 * blocks of COL_BLOCK (whose encoded activations stay in L2), and each dot
 * call multiplies up to mm_rows weight rows with up to mm_cols columns, so
 * a weight block is loaded and unpacked once per mm_cols columns. Decoding
 * (t = 1) is the same loop with one column: a GEMV split over rows. */
#include "cpu_backend.h"
#include "cpu_blocks.h"

#define ROW_BLOCK 16
#define COL_BLOCK 64

typedef struct mm_task {
    const tq_tensor *w, *x;
    const cpu_mm_type *mt;
    cpu_encode_fn encode; /* NULL: copy */
    int mr, nc;           /* rows and columns per dot call */
    char *act;            /* encoded columns               */
    size_t act_stride;
    float *dst;
    int64_t n_in, n_out, n_cols;
} mm_task;

/* Bytes of one encoded activation column, padded to a cache line. */
static size_t act_bytes(cpu_act act, int64_t n) {
    size_t b;
    switch (act) {
    case CPU_ACT_Q8_0: b = (size_t)(n / CPU_QK) * sizeof(cpu_block_q8_0); break;
    case CPU_ACT_Q8_1: b = (size_t)(n / CPU_QK) * sizeof(cpu_block_q8_1); break;
    case CPU_ACT_Q8_K: b = (size_t)(n / CPU_QK_K) * sizeof(cpu_block_q8_K); break;
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

static void mm_worker(void *user, int ith, int nth) {
    const mm_task *t = user;
    int64_t lo, hi;
    cpu_split(t->n_out, ith, nth, t->mr, &lo, &hi);
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

tq_status cpu_mul_mat(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const cpu_kernels *k = dev->k;
    mm_task t;
    t.w = dst->src[0];
    t.x = dst->src[1];
    t.mt = cpu_mm_type_of(k, t.w->type);
    if (!t.mt) /* cpu_supports refused it: the scheduler never sends it */
        return cpu_error(dev, err, TQ_ERR_UNSUPPORTED, "mul_mat: no kernel for type %d", (int)t.w->type);
    t.encode = k->encode[t.mt->act];
    if (!t.encode && t.mt->act == CPU_ACT_BF16) t.encode = cpu_round_bf16;
    t.mr = k->mm_rows;
    t.nc = k->mm_cols;
    t.n_in = t.w->ne[0];
    t.n_out = t.w->ne[1];
    t.n_cols = cpu_nrows(t.x);
    t.dst = dst->data;
    t.act_stride = act_bytes(t.mt->act, t.n_in);
    t.act = cpu_scratch(dev, t.act_stride * (size_t)t.n_cols);
    if (!t.act)
        return cpu_error(dev, err, TQ_ERR_NOMEM, "mul_mat: out of memory for %lld columns",
                         (long long)t.n_cols);
    /* One column is cheaper to encode here than to hand to the pool. */
    if (t.n_cols == 1)
        encode_column(&t, 0);
    else
        dev->host->parallel_for(encode_worker, &t);
    dev->host->parallel_for(mm_worker, &t);
    return TQ_OK;
}
