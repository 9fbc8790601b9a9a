/* cpu_backend.c — state, devices, buffers, supports() and graph dispatch of
 * a CPU backend plugin (cpu_backend.h). Memory is host memory (the device
 * is the CPU), so buffers are plain allocations or wrapped host pointers,
 * like the ref backend's. */
#include "cpu_backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct cpu_state {
    const tq_host *host;
    const cpu_kernels *k;
} cpu_state;

struct tq_buffer {
    void *ptr;
    size_t size;
    const tq_host *owner; /* frees ptr; NULL for wrapped host memory */
};

/* Formats "<name>: <message>" into err. */
static tq_status verror(const char *name, tq_error *err, tq_status code, const char *fmt, va_list ap) {
    if (err) {
        err->code = code;
        int n = snprintf(err->message, sizeof err->message, "%s: ", name);
        vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
    }
    return code;
}

tq_status cpu_error(const tq_device *dev, tq_error *err, tq_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(dev->k->name, err, code, fmt, ap);
    va_end(ap);
    return code;
}

static tq_status state_error(const cpu_state *st, tq_error *err, tq_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static tq_status state_error(const cpu_state *st, tq_error *err, tq_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(st->k->name, err, code, fmt, ap);
    va_end(ap);
    return code;
}

void *cpu_scratch(tq_device *dev, size_t bytes) {
    if (bytes > dev->scratch_size) {
        dev->host->free(dev->scratch);
        dev->scratch = dev->host->alloc(bytes, 64);
        dev->scratch_size = dev->scratch ? bytes : 0;
    }
    return dev->scratch;
}

tq_status cpu_backend_init(const tq_host *host, const cpu_kernels *k, void **state, tq_error *err) {
    const cpu_state tmp = {host, k};
    if (!k->f16_row || !k->sum_squares || !k->rope_rows || !k->dot || !k->axpy || k->att_head_align < 1)
        return state_error(&tmp, err, TQ_ERR_INVALID, "kernel table is incomplete");
    if (k->mm_rows < 1 || k->mm_rows > CPU_MM_MAX_ROWS || k->mm_cols < 1 || k->mm_cols > CPU_MM_MAX_COLS)
        return state_error(&tmp, err, TQ_ERR_INVALID, "dot tiles of %d x %d exceed %d x %d", k->mm_rows,
                           k->mm_cols, CPU_MM_MAX_ROWS, CPU_MM_MAX_COLS);
    for (int32_t i = 0; i < k->n_gemms; i++)
        if (!k->gemms[i].run || k->gemms[i].min_cols < 2 || k->gemms[i].row_align < 1 ||
            !cpu_mm_type_of(k, k->gemms[i].type))
            return state_error(&tmp, err, TQ_ERR_INVALID, "gemm entry %d is incomplete", (int)i);
    for (int32_t i = 0; i < k->n_gemvs; i++)
        if (!k->gemvs[i].col_bytes || !k->gemvs[i].prepare || !k->gemvs[i].rows ||
            !cpu_mm_type_of(k, k->gemvs[i].type))
            return state_error(&tmp, err, TQ_ERR_INVALID, "gemv entry %d is incomplete", (int)i);
    cpu_state *st = calloc(1, sizeof *st);
    if (!st) return state_error(&tmp, err, TQ_ERR_NOMEM, "out of memory");
    st->host = host;
    st->k = k;
    *state = st;
    return TQ_OK;
}

void cpu_backend_deinit(void *state) { free(state); }

/* ---- what the backend runs -------------------------------------------------------- */

const tq_backend_cap cpu_caps[CPU_N_CAPS] = {
    {TQ_OP_GET_ROWS, "*", "i32", "f32"},
    {TQ_OP_MUL_MAT, "f32,f16,bf16,q4_0,q4_1,q5_0,q5_1,q8_0,q2_K,q3_K,q4_K,q5_K,q6_K", "f32", "f32"},
    {TQ_OP_RMS_NORM, "f32", "", "f32"},
    {TQ_OP_MUL, "f32", "f32", "f32"},
    {TQ_OP_ADD, "f32", "f32", "f32"},
    {TQ_OP_ROPE, "f32", "i32", "f32"},
    {TQ_OP_SWIGLU, "f32", "f32", "f32"},
    {TQ_OP_SCALE, "f32", "", "f32"},
    {TQ_OP_VIEW_ROWS, "f32", "", "f32"},
    {TQ_OP_ATTENTION, "f32", "f16,f32", "f32"},
    {TQ_OP_SILU, "f32", "", "f32"},
};

const cpu_mm_type *cpu_mm_type_of(const cpu_kernels *k, tq_type t) {
    for (int32_t i = 0; i < k->n_mm_types; i++)
        if (k->mm_types[i].type == t) return &k->mm_types[i];
    return NULL;
}

static int is_f32_dense(const tq_tensor *t) {
    return t && t->type == TQ_TYPE_F32 && t->data && cpu_contiguous(t);
}

static int mul_mat_supported(const cpu_kernels *k, const tq_tensor *node) {
    const tq_tensor *w = node->src[0], *x = node->src[1];
    if (!w || !x || !w->data || !x->data) return 0;
    const cpu_mm_type *mt = cpu_mm_type_of(k, w->type);
    return mt && x->type == TQ_TYPE_F32 && x->nb[0] == sizeof(float) && w->ne[0] == x->ne[0] &&
           w->ne[0] % mt->blk == 0 && w->ne[2] == 1 && w->ne[3] == 1 && node->ne[0] == w->ne[1] &&
           cpu_nrows(x) == cpu_nrows(node);
}

static int attention_supported(const cpu_kernels *k, const tq_tensor *node) {
    const tq_tensor *q = node->src[0], *kc = node->src[1], *v = node->src[2];
    if (!q || !kc || !v || !kc->data || !v->data) return 0;
    if (kc->type != v->type || (kc->type != TQ_TYPE_F16 && kc->type != TQ_TYPE_F32)) return 0;
    const size_t el = kc->type == TQ_TYPE_F16 ? 2 : 4;
    const int64_t hd = q->ne[0];
    return q->type == TQ_TYPE_F32 && cpu_contiguous(q) && hd % k->att_head_align == 0 &&
           kc->ne[0] == hd && v->ne[0] == hd && kc->nb[0] == el && v->nb[0] == el &&
           kc->ne[2] == v->ne[2] && kc->ne[2] > 0 && q->ne[1] % kc->ne[2] == 0 &&
           kc->ne[1] >= node->op_params[2] && v->ne[1] >= node->op_params[2] &&
           node->op_params[1] + q->ne[2] <= node->op_params[2];
}

static int rope_supported(const tq_tensor *n) {
    const tq_tensor *a = n->src[0], *b = n->src[1], *ff = n->src[2];
    const int32_t n_rot = n->op_params[0], mode = n->op_params[1];
    return is_f32_dense(a) && b && b->type == TQ_TYPE_I32 && b->data && b->ne[0] >= a->ne[2] &&
           (ff == NULL || (ff->type == TQ_TYPE_F32 && ff->data && ff->ne[0] >= n_rot / 2)) &&
           n_rot > 0 && n_rot % 2 == 0 && n_rot <= a->ne[0] && n_rot <= CPU_ROPE_MAX &&
           (mode == TQ_ROPE_NORMAL || mode == TQ_ROPE_NEOX) && a->ne[3] == 1 &&
           n->ne[0] * cpu_nrows(n) == a->ne[0] * cpu_nrows(a);
}

int cpu_supports(tq_device *dev, const tq_tensor *n) {
    const tq_tensor *a = n->src[0], *b = n->src[1];
    if (!n->data || n->type != TQ_TYPE_F32 || !cpu_contiguous(n)) return 0;
    switch (n->op) {
    case TQ_OP_MUL_MAT:
        return mul_mat_supported(dev->k, n);
    case TQ_OP_GET_ROWS: {
        const tq_type_info *ti = a ? dev->host->type_info(a->type) : NULL;
        return ti && ti->to_f32 && a->data && b && b->type == TQ_TYPE_I32 && b->data &&
               n->ne[0] == a->ne[0] && n->ne[1] == b->ne[0];
    }
    case TQ_OP_ATTENTION:
        return attention_supported(dev->k, n);
    case TQ_OP_RMS_NORM: case TQ_OP_SCALE: case TQ_OP_SILU:
        return is_f32_dense(a) && a->ne[0] == n->ne[0] && cpu_nrows(a) == cpu_nrows(n);
    case TQ_OP_SWIGLU:
        return is_f32_dense(a) && is_f32_dense(b) && a->ne[0] * cpu_nrows(a) == n->ne[0] * cpu_nrows(n) &&
               b->ne[0] * cpu_nrows(b) == n->ne[0] * cpu_nrows(n);
    case TQ_OP_ADD: case TQ_OP_MUL:
        return is_f32_dense(a) && is_f32_dense(b) && a->ne[0] == n->ne[0] && b->ne[0] == a->ne[0] &&
               cpu_nrows(a) == cpu_nrows(n) && (cpu_nrows(b) == 1 || cpu_nrows(b) == cpu_nrows(a));
    case TQ_OP_VIEW_ROWS:
        return is_f32_dense(a) && n->op_params[0] >= 0 && n->op_params[0] + n->ne[0] <= a->ne[0] &&
               cpu_nrows(a) == cpu_nrows(n);
    case TQ_OP_ROPE:
        return rope_supported(n);
    default:
        return 0;
    }
}

tq_status cpu_graph_compute(tq_device *dev, const tq_graph *graph, int32_t first, int32_t last,
                            tq_error *err) {
    for (int32_t i = first; i < last; i++) {
        tq_tensor *n = graph->nodes[i];
        tq_status st = TQ_OK;
        switch (n->op) {
        case TQ_OP_NONE: break;
        case TQ_OP_MUL_MAT: st = cpu_mul_mat(dev, n, err); break;
        case TQ_OP_GET_ROWS: st = cpu_get_rows(dev, n, err); break;
        case TQ_OP_ATTENTION: st = cpu_attention(dev, n, err); break;
        case TQ_OP_RMS_NORM: cpu_rms_norm(dev, n); break;
        case TQ_OP_ADD:
        case TQ_OP_MUL: cpu_binary(dev, n); break;
        case TQ_OP_SCALE:
        case TQ_OP_SILU:
        case TQ_OP_SWIGLU: cpu_unary(dev, n); break;
        case TQ_OP_VIEW_ROWS: cpu_view_rows(dev, n); break;
        case TQ_OP_ROPE: cpu_rope(dev, n); break;
        default:
            return cpu_error(dev, err, TQ_ERR_UNSUPPORTED, "op %d is not supported", (int)n->op);
        }
        if (st != TQ_OK) return st;
    }
    return TQ_OK;
}

/* ---- devices and buffers ------------------------------------------------------ */

int32_t cpu_device_count(void *state) {
    (void)state;
    return 1;
}

tq_status cpu_device_info(void *state, int32_t index, tq_device_info *out) {
    const cpu_state *st = state;
    if (index != 0) return TQ_ERR_RANGE;
    out->size = sizeof *out;
    out->name = st->k->device_name;
    out->mem_total = out->mem_free = 0;
    out->host_visible = 1;
    return TQ_OK;
}

tq_status cpu_device_open(void *state, int32_t index, tq_device **dev, tq_error *err) {
    const cpu_state *st = state;
    if (index != 0) return state_error(st, err, TQ_ERR_RANGE, "no device %d", index);
    tq_device *d = calloc(1, sizeof *d);
    if (!d) return state_error(st, err, TQ_ERR_NOMEM, "out of memory");
    d->host = st->host;
    d->k = st->k;
    *dev = d;
    return TQ_OK;
}

void cpu_device_close(tq_device *dev) {
    if (!dev) return;
    dev->host->free(dev->scratch);
    free(dev);
}

tq_status cpu_buffer_alloc(tq_device *dev, size_t bytes, tq_buffer **buf, tq_error *err) {
    tq_buffer *b = calloc(1, sizeof *b);
    void *p = b ? dev->host->alloc(bytes ? bytes : 1, 64) : NULL;
    if (!p) {
        free(b);
        return cpu_error(dev, err, TQ_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
    }
    b->ptr = p;
    b->size = bytes;
    b->owner = dev->host;
    *buf = b;
    return TQ_OK;
}

tq_status cpu_buffer_wrap_host(tq_device *dev, void *ptr, size_t bytes, tq_buffer **buf, tq_error *err) {
    tq_buffer *b = calloc(1, sizeof *b);
    if (!b) return cpu_error(dev, err, TQ_ERR_NOMEM, "out of memory");
    b->ptr = ptr;
    b->size = bytes;
    *buf = b;
    return TQ_OK;
}

void cpu_buffer_free(tq_buffer *buf) {
    if (!buf) return;
    if (buf->owner) buf->owner->free(buf->ptr);
    free(buf);
}

void *cpu_buffer_host_ptr(tq_buffer *buf) { return buf->ptr; }

tq_status cpu_buffer_write(tq_buffer *buf, size_t off, const void *src, size_t n) {
    if (off > buf->size || n > buf->size - off) return TQ_ERR_RANGE;
    memcpy((char *)buf->ptr + off, src, n);
    return TQ_OK;
}

tq_status cpu_buffer_read(tq_buffer *buf, size_t off, void *dst, size_t n) {
    if (off > buf->size || n > buf->size - off) return TQ_ERR_RANGE;
    memcpy(dst, (const char *)buf->ptr + off, n);
    return TQ_OK;
}

tq_status cpu_synchronize(tq_device *dev) {
    (void)dev;
    return TQ_OK; /* every op has finished when graph_compute returns */
}
