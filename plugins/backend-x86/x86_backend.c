/* x86_backend.c — the `x86` backend: tq.backend/1 on AVX2 or AVX-512 CPUs.
 *
 * Built twice from the same sources (tq-backend-x86-avx2.so,
 * tq-backend-x86-avx512.so), both named "x86": the registry loads the
 * highest-priority variant whose required_cpu the machine has, so the ini
 * just says `backend = x86, ref`. Nodes this backend does not take
 * (supports() == 0) fall back to the next backend in the chain.
 *
 * Memory is host memory (the device is the CPU), so buffers are plain
 * allocations or wrapped host pointers, like the ref backend's. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "x86_internal.h"
#include "x86_test_iface.h"

struct tq_buffer {
    void *ptr;
    size_t size;
    const tq_host *owner; /* frees ptr; NULL for wrapped host memory */
};

tq_status x86_error(tq_error *err, tq_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        int n = snprintf(err->message, sizeof err->message, "x86: ");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

void *x86_scratch(tq_device *dev, size_t bytes) {
    if (bytes > dev->scratch_size) {
        dev->st->host->free(dev->scratch);
        dev->scratch = dev->st->host->alloc(bytes, 64);
        dev->scratch_size = dev->scratch ? bytes : 0;
    }
    return dev->scratch;
}

/* ---- what this backend runs ------------------------------------------------- */

/* Exactly what x86_supports accepts (the conformance test walks this table). */
static const tq_backend_cap x86_caps[] = {
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

static int is_f32_dense(const tq_tensor *t) {
    return t && t->type == TQ_TYPE_F32 && t->data && x86_contiguous(t);
}

static int x86_supports(tq_device *dev, const tq_tensor *n) {
    const tq_tensor *a = n->src[0], *b = n->src[1];
    if (!n->data || n->type != TQ_TYPE_F32 || !x86_contiguous(n)) return 0;
    switch (n->op) {
    case TQ_OP_MUL_MAT:
        return x86_mul_mat_supported(n);
    case TQ_OP_GET_ROWS: {
        const tq_type_info *ti = a ? dev->st->host->type_info(a->type) : NULL;
        return ti && ti->to_f32 && a->data && b && b->type == TQ_TYPE_I32 && b->data &&
               n->ne[0] == a->ne[0] && n->ne[1] == b->ne[0];
    }
    case TQ_OP_ATTENTION:
        return x86_attention_supported(n);
    case TQ_OP_RMS_NORM: case TQ_OP_SCALE: case TQ_OP_SILU:
        return is_f32_dense(a) && a->ne[0] == n->ne[0] && x86_nrows(a) == x86_nrows(n);
    case TQ_OP_SWIGLU:
        return is_f32_dense(a) && is_f32_dense(b) && a->ne[0] * x86_nrows(a) == n->ne[0] * x86_nrows(n) &&
               b->ne[0] * x86_nrows(b) == n->ne[0] * x86_nrows(n);
    case TQ_OP_ADD: case TQ_OP_MUL:
        return is_f32_dense(a) && is_f32_dense(b) && a->ne[0] == n->ne[0] && b->ne[0] == a->ne[0] &&
               x86_nrows(a) == x86_nrows(n) && (x86_nrows(b) == 1 || x86_nrows(b) == x86_nrows(a));
    case TQ_OP_VIEW_ROWS:
        return is_f32_dense(a) && n->op_params[0] >= 0 && n->op_params[0] + n->ne[0] <= a->ne[0] &&
               x86_nrows(a) == x86_nrows(n);
    case TQ_OP_ROPE: {
        const tq_tensor *ff = n->src[2];
        const int32_t n_rot = n->op_params[0], mode = n->op_params[1];
        return is_f32_dense(a) && b && b->type == TQ_TYPE_I32 && b->data && b->ne[0] >= a->ne[2] &&
               (ff == NULL || (ff->type == TQ_TYPE_F32 && ff->data && ff->ne[0] >= n_rot / 2)) &&
               n_rot > 0 && n_rot % 2 == 0 && n_rot <= a->ne[0] && n_rot <= 1024 &&
               (mode == TQ_ROPE_NORMAL || mode == TQ_ROPE_NEOX) && a->ne[3] == 1 &&
               n->ne[0] * x86_nrows(n) == a->ne[0] * x86_nrows(a);
    }
    default:
        return 0;
    }
}

static tq_status x86_graph_compute(tq_device *dev, const tq_graph *graph, int32_t first, int32_t last,
                                   tq_error *err) {
    for (int32_t i = first; i < last; i++) {
        tq_tensor *n = graph->nodes[i];
        tq_status st = TQ_OK;
        switch (n->op) {
        case TQ_OP_NONE: break;
        case TQ_OP_MUL_MAT: st = x86_mul_mat(dev, n, err); break;
        case TQ_OP_GET_ROWS: st = x86_get_rows(dev, n, err); break;
        case TQ_OP_ATTENTION: st = x86_attention(dev, n, err); break;
        case TQ_OP_RMS_NORM: x86_rms_norm(dev, n); break;
        case TQ_OP_ADD:
        case TQ_OP_MUL: x86_binary(dev, n); break;
        case TQ_OP_SCALE:
        case TQ_OP_SILU:
        case TQ_OP_SWIGLU: x86_unary(dev, n); break;
        case TQ_OP_VIEW_ROWS: x86_view_rows(dev, n); break;
        case TQ_OP_ROPE: x86_rope(dev, n); break;
        default:
            return x86_error(err, TQ_ERR_UNSUPPORTED, "op %d is not supported", (int)n->op);
        }
        if (st != TQ_OK) return st;
    }
    return TQ_OK;
}

/* ---- devices and buffers ------------------------------------------------------ */

static int32_t x86_device_count(void *state) {
    (void)state;
    return 1;
}

static tq_status x86_device_info(void *state, int32_t index, tq_device_info *out) {
    (void)state;
    if (index != 0) return TQ_ERR_RANGE;
    out->size = sizeof *out;
    out->name = X86_VNNI ? "cpu (avx512 vnni)" : "cpu (avx2 fma f16c)";
    out->mem_total = out->mem_free = 0;
    out->host_visible = 1;
    return TQ_OK;
}

static tq_status x86_device_open(void *state, int32_t index, tq_device **dev, tq_error *err) {
    if (index != 0) return x86_error(err, TQ_ERR_RANGE, "no device %d", index);
    tq_device *d = calloc(1, sizeof *d);
    if (!d) return x86_error(err, TQ_ERR_NOMEM, "out of memory");
    d->st = state;
    *dev = d;
    return TQ_OK;
}

static void x86_device_close(tq_device *dev) {
    if (!dev) return;
    dev->st->host->free(dev->scratch);
    free(dev);
}

static tq_status x86_buffer_alloc(tq_device *dev, size_t bytes, tq_buffer **buf, tq_error *err) {
    tq_buffer *b = calloc(1, sizeof *b);
    void *p = b ? dev->st->host->alloc(bytes ? bytes : 1, 64) : NULL;
    if (!p) {
        free(b);
        return x86_error(err, TQ_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
    }
    b->ptr = p;
    b->size = bytes;
    b->owner = dev->st->host;
    *buf = b;
    return TQ_OK;
}

static tq_status x86_buffer_wrap_host(tq_device *dev, void *ptr, size_t bytes, tq_buffer **buf,
                                      tq_error *err) {
    (void)dev;
    tq_buffer *b = calloc(1, sizeof *b);
    if (!b) return x86_error(err, TQ_ERR_NOMEM, "out of memory");
    b->ptr = ptr;
    b->size = bytes;
    *buf = b;
    return TQ_OK;
}

static void x86_buffer_free(tq_buffer *buf) {
    if (!buf) return;
    if (buf->owner) buf->owner->free(buf->ptr);
    free(buf);
}

static void *x86_buffer_host_ptr(tq_buffer *buf) { return buf->ptr; }

static tq_status x86_buffer_write(tq_buffer *buf, size_t off, const void *src, size_t n) {
    if (off > buf->size || n > buf->size - off) return TQ_ERR_RANGE;
    memcpy((char *)buf->ptr + off, src, n);
    return TQ_OK;
}

static tq_status x86_buffer_read(tq_buffer *buf, size_t off, void *dst, size_t n) {
    if (off > buf->size || n > buf->size - off) return TQ_ERR_RANGE;
    memcpy(dst, (const char *)buf->ptr + off, n);
    return TQ_OK;
}

static tq_status x86_synchronize(tq_device *dev) {
    (void)dev;
    return TQ_OK; /* every op has finished when graph_compute returns */
}

static const tq_backend_iface x86_iface = {
    .size = sizeof(tq_backend_iface),
    .caps = x86_caps,
    .n_caps = (int32_t)(sizeof x86_caps / sizeof x86_caps[0]),
    .device_count = x86_device_count,
    .device_info = x86_device_info,
    .device_open = x86_device_open,
    .device_close = x86_device_close,
    .supports = x86_supports,
    .buffer_alloc = x86_buffer_alloc,
    .buffer_wrap_host = x86_buffer_wrap_host,
    .buffer_free = x86_buffer_free,
    .buffer_host_ptr = x86_buffer_host_ptr,
    .buffer_write = x86_buffer_write,
    .buffer_read = x86_buffer_read,
    .graph_compute = x86_graph_compute,
    .synchronize = x86_synchronize,
};

static const x86_test_iface x86_test = {
    .size = sizeof(x86_test_iface),
    .variant = X86_VARIANT,
    .quantize_q8_0 = x86_quantize_q8_0,
    .quantize_q8_1 = x86_quantize_q8_1,
    .quantize_q8_K = x86_quantize_q8_K,
};

/* ---- entry ---------------------------------------------------------------------- */

static tq_status x86_init(const tq_host *host, void **state, tq_error *err) {
    x86_state *st = calloc(1, sizeof *st);
    if (!st) return x86_error(err, TQ_ERR_NOMEM, "out of memory");
    st->host = host;
    *state = st;
    return TQ_OK;
}

static void x86_deinit(void *state) { free(state); }

static const void *x86_get_interface(void *state, const char *id) {
    (void)state;
    if (strcmp(id, TQ_IFACE_BACKEND) == 0) return &x86_iface;
    if (strcmp(id, X86_TEST_IFACE) == 0) return &x86_test;
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
    .deinit = x86_deinit,
    .get_interface = x86_get_interface,
};
