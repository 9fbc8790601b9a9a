/* tq_arch_util.c — hyperparameter and tensor lookups for arch plugins. */
#include "tq_arch_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

tq_arch_reader tq_arch_reader_init(const tq_model_source *src, const char *arch, tq_error *err) {
    tq_arch_reader r = {src, arch, err, 0};
    return r;
}

tq_status tq_arch_fail(tq_error *err, tq_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

static void reader_fail(tq_arch_reader *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void reader_fail(tq_arch_reader *r, const char *fmt, ...) {
    if (r->failed) return;
    r->failed = 1;
    if (r->err) {
        char msg[sizeof r->err->message], full[sizeof msg * 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(full, sizeof full, "%s: %s", r->src->path, msg);
        size_t n = strlen(full);
        if (n >= sizeof r->err->message) n = sizeof r->err->message - 1; /* truncate */
        memcpy(r->err->message, full, n);
        r->err->message[n] = 0;
        r->err->code = TQ_ERR_FORMAT;
    }
}

static int lookup(tq_arch_reader *r, const char *key, tq_value *v, char *full, size_t size) {
    snprintf(full, size, "%s.%s", r->arch, key);
    v->size = sizeof *v;
    return r->src->meta(r->src, full, v) == TQ_OK;
}

int32_t tq_arch_u32(tq_arch_reader *r, const char *key, int required, int32_t def) {
    char full[160];
    tq_value v;
    if (!lookup(r, key, &v, full, sizeof full)) {
        if (required) reader_fail(r, "missing key %s", full);
        return def;
    }
    /* Some converters write per-layer arrays (e.g. head_count); take them
     * only when every layer agrees, which is all this plugin supports. */
    if (v.type == TQ_VAL_ARRAY && v.count > 0 &&
        (v.elem_type == TQ_VAL_U32 || v.elem_type == TQ_VAL_I32)) {
        const uint32_t *e = v.elems;
        for (uint64_t i = 1; i < v.count; i++)
            if (e[i] != e[0]) {
                reader_fail(r, "%s varies per layer, which is not supported", full);
                return def;
            }
        if (e[0] > INT32_MAX) reader_fail(r, "%s = %u is too large", full, e[0]);
        return (int32_t)e[0];
    }
    if (!tq_value_is_int(&v) || v.type == TQ_VAL_BOOL) {
        reader_fail(r, "%s must be an integer", full);
        return def;
    }
    double d = tq_value_f64(&v);
    if (d < 0 || d > INT32_MAX) {
        reader_fail(r, "%s = %.0f is out of range", full, d);
        return def;
    }
    return (int32_t)d;
}

float tq_arch_f32(tq_arch_reader *r, const char *key, int required, float def) {
    char full[160];
    tq_value v;
    if (!lookup(r, key, &v, full, sizeof full)) {
        if (required) reader_fail(r, "missing key %s", full);
        return def;
    }
    if (!tq_value_is_num(&v) || v.type == TQ_VAL_BOOL) {
        reader_fail(r, "%s must be a number", full);
        return def;
    }
    return (float)tq_value_f64(&v);
}

const char *tq_arch_str(tq_arch_reader *r, const char *key, char *buf, size_t size, const char *def) {
    char full[160];
    tq_value v;
    snprintf(buf, size, "%s", def ? def : "");
    if (!lookup(r, key, &v, full, sizeof full)) return def;
    if (v.type != TQ_VAL_STRING) {
        reader_fail(r, "%s must be a string", full);
        return def;
    }
    snprintf(buf, size, "%.*s", (int)(v.len < size ? v.len : size - 1), v.str);
    return buf;
}

float tq_arch_rope_freq_scale(tq_arch_reader *r) {
    char type[32];
    tq_arch_str(r, "rope.scaling.type", type, sizeof type, "linear");
    float factor = tq_arch_f32(r, "rope.scaling.factor", 0, 0.0f);
    if (factor == 0.0f) factor = tq_arch_f32(r, "rope.scale_linear", 0, 1.0f);
    if (strcmp(type, "none") == 0) return 1.0f;
    if (strcmp(type, "linear") == 0) {
        if (factor <= 0.0f) {
            reader_fail(r, "%s.rope.scaling.factor must be positive", r->arch);
            return 1.0f;
        }
        return 1.0f / factor;
    }
    reader_fail(r, "rope scaling type '%s' is not supported", type);
    return 1.0f;
}

void tq_arch_fail_shape(tq_arch_reader *r, const tq_tensor *t, int64_t ne0, int64_t ne1) {
    reader_fail(r, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", t->name,
                (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)ne1);
}

static const tq_tensor *find(tq_arch_reader *r, const char *name, int64_t ne0, int64_t ne1,
                             int required) {
    if (r->failed) return NULL;
    const tq_tensor *t = r->src->tensor(r->src, name);
    if (!t) {
        if (required) reader_fail(r, "missing tensor %s", name);
        return NULL;
    }
    if ((ne0 >= 0 && t->ne[0] != ne0) || (ne1 >= 0 && t->ne[1] != ne1) || t->ne[2] != 1 ||
        t->ne[3] != 1) {
        tq_arch_fail_shape(r, t, ne0, ne1);
        return NULL;
    }
    return t;
}

const tq_tensor *tq_arch_tensor(tq_arch_reader *r, const char *name, int64_t ne0, int64_t ne1) {
    return find(r, name, ne0, ne1, 1);
}

const tq_tensor *tq_arch_tensor_opt(tq_arch_reader *r, const char *name, int64_t ne0, int64_t ne1) {
    return find(r, name, ne0, ne1, 0);
}

const tq_tensor *tq_arch_layer_tensor(tq_arch_reader *r, int il, const char *name, int64_t ne0,
                                      int64_t ne1) {
    char full[128];
    snprintf(full, sizeof full, "blk.%d.%s", il, name);
    return find(r, full, ne0, ne1, 1);
}
