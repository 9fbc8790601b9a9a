/* cmd_inspect.c — `tqrun inspect FILE`: a readable dump of a GGUF file, in
 * the spirit of llama.cpp's gguf dump tool: one header line, then every KV
 * with its type, then the tensor table. Everything printed comes from the
 * validated reader, so a bad file ends in one error line, never a crash. */
#include "cmd_inspect.h"

#include "tq_gguf.h"
#include "tq_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STR_BYTES 160     /* a string value longer than this is cut   */
#define MAX_ELEM_STR_BYTES 40 /* same, for each element of a string array */
#define MAX_NUM_ELEMS 8       /* array elements shown before "..."         */
#define MAX_STR_ELEMS 6

static uint64_t le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | p[i];
    return v;
}

/* Shortest %g form that reads back as the same value, so 1e-05f shows as
 * 1e-05 rather than 9.99999975e-06 while distinct values stay distinct. */
static void print_float(FILE *out, double v, int is_f32) {
    char s[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        double back = strtod(s, NULL);
        if (is_f32 ? (float)back == (float)v : back == v) break;
    }
    fputs(s, out);
}

/* Quoted, with control characters, quotes and backslashes escaped. Cut
 * after `max` bytes (at a UTF-8 character boundary) with the full length. */
static void print_string(FILE *out, const char *s, uint64_t len, uint64_t max) {
    uint64_t n = len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    fputc('"', out);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (c < 0x20 || c == 0x7f) fprintf(out, "\\x%02x", c);
            else fputc(c, out);
        }
    }
    fputc('"', out);
    if (n < len) fprintf(out, "... (%llu bytes)", (unsigned long long)len);
}

/* One scalar of type t, raw little-endian at p. */
static void print_raw_scalar(FILE *out, tq_value_type t, const uint8_t *p) {
    switch (t) {
    case TQ_VAL_U8: case TQ_VAL_U16: case TQ_VAL_U32: case TQ_VAL_U64: {
        size_t n = t == TQ_VAL_U8 ? 1 : t == TQ_VAL_U16 ? 2 : t == TQ_VAL_U32 ? 4 : 8;
        fprintf(out, "%llu", (unsigned long long)le(p, n));
        break;
    }
    case TQ_VAL_I8: fprintf(out, "%d", (int)(int8_t)p[0]); break;
    case TQ_VAL_I16: fprintf(out, "%d", (int)(int16_t)(uint16_t)le(p, 2)); break;
    case TQ_VAL_I32: fprintf(out, "%ld", (long)(int32_t)(uint32_t)le(p, 4)); break;
    case TQ_VAL_I64: fprintf(out, "%lld", (long long)(int64_t)le(p, 8)); break;
    case TQ_VAL_BOOL: fputs(p[0] ? "true" : "false", out); break;
    case TQ_VAL_F32: {
        uint32_t b = (uint32_t)le(p, 4);
        float f;
        memcpy(&f, &b, 4);
        print_float(out, f, 1);
        break;
    }
    case TQ_VAL_F64: {
        uint64_t b = le(p, 8);
        double d;
        memcpy(&d, &b, 8);
        print_float(out, d, 0);
        break;
    }
    default: fputs("?", out); break;
    }
}

static size_t elem_size(tq_value_type t) {
    switch (t) {
    case TQ_VAL_U8: case TQ_VAL_I8: case TQ_VAL_BOOL: return 1;
    case TQ_VAL_U16: case TQ_VAL_I16: return 2;
    case TQ_VAL_U32: case TQ_VAL_I32: case TQ_VAL_F32: return 4;
    default: return 8;
    }
}

static void print_value(FILE *out, const tq_gguf *g, const tq_value *v) {
    switch (v->type) {
    case TQ_VAL_STRING: print_string(out, v->str, v->len, MAX_STR_BYTES); return;
    case TQ_VAL_ARRAY: break;
    case TQ_VAL_U8: case TQ_VAL_U16: case TQ_VAL_U32: case TQ_VAL_U64:
        fprintf(out, "%llu", (unsigned long long)v->num.u);
        return;
    case TQ_VAL_I8: case TQ_VAL_I16: case TQ_VAL_I32: case TQ_VAL_I64:
        fprintf(out, "%lld", (long long)v->num.i);
        return;
    case TQ_VAL_BOOL: fputs(v->num.u ? "true" : "false", out); return;
    case TQ_VAL_F32: print_float(out, v->num.f, 1); return;
    case TQ_VAL_F64: print_float(out, v->num.f, 0); return;
    }

    int is_str = v->elem_type == TQ_VAL_STRING;
    uint64_t shown = is_str ? MAX_STR_ELEMS : MAX_NUM_ELEMS;
    if (shown > v->count) shown = v->count;
    fputc('[', out);
    for (uint64_t i = 0; i < shown; i++) {
        if (i) fputs(", ", out);
        if (is_str) {
            uint64_t len;
            const char *s = tq_gguf_array_str(g, v, i, &len);
            print_string(out, s ? s : "", s ? len : 0, MAX_ELEM_STR_BYTES);
        } else {
            size_t es = elem_size(v->elem_type);
            print_raw_scalar(out, v->elem_type, (const uint8_t *)v->elems + i * es);
        }
    }
    if (shown < v->count) fputs(shown ? ", ..." : "...", out);
    fprintf(out, "] (%llu items)", (unsigned long long)v->count);
}

static void print_type(FILE *out, const tq_value *v) {
    char t[24];
    if (v->type == TQ_VAL_ARRAY)
        snprintf(t, sizeof t, "[%s]", tq_gguf_value_type_name(v->elem_type));
    else
        snprintf(t, sizeof t, "%s", tq_gguf_value_type_name(v->type));
    fprintf(out, "%-9s", t);
}

static void dump(FILE *out, const tq_gguf *g) {
    int64_t n_kv = tq_gguf_n_kv(g), n_t = tq_gguf_n_tensors(g);
    fprintf(out, "%s: GGUF v%u, %lld KVs, %lld tensors, alignment %u, data at offset %llu "
                 "(file is %llu bytes)\n",
            tq_gguf_path(g), tq_gguf_version(g), (long long)n_kv, (long long)n_t,
            tq_gguf_alignment(g), (unsigned long long)tq_gguf_data_offset(g),
            (unsigned long long)tq_gguf_file_size(g));

    fprintf(out, "\n%lld key/value pairs:\n", (long long)n_kv);
    for (int64_t i = 0; i < n_kv; i++) {
        const tq_value *v = tq_gguf_kv_value(g, i);
        fprintf(out, "%6lld: ", (long long)i);
        print_type(out, v);
        fprintf(out, " %s = ", tq_gguf_kv_key(g, i));
        print_value(out, g, v);
        fputc('\n', out);
    }

    fprintf(out, "\n%lld tensors:\n", (long long)n_t);
    if (n_t > 0)
        fprintf(out, "%6s  %-5s %-32s %12s %12s  %s\n", "#", "type", "shape", "offset", "bytes",
                "name");
    uint64_t total_bytes = 0, total_elems = 0;
    for (int64_t i = 0; i < n_t; i++) {
        const tq_tensor *t = tq_gguf_tensor(g, i);
        char shape[64];
        snprintf(shape, sizeof shape, "[%6lld, %6lld, %6lld, %6lld]", (long long)t->ne[0],
                 (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
        uint64_t bytes = (uint64_t)t->nb[3] * (uint64_t)t->ne[3];
        total_bytes += bytes;
        total_elems += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        fprintf(out, "%6lld: %-5s %-32s %12llu %12llu  %s\n", (long long)i, tq_type_name(t->type),
                shape, (unsigned long long)tq_gguf_tensor_offset(g, i),
                (unsigned long long)bytes, t->name);
    }
    if (n_t > 0)
        fprintf(out, "total: %llu elements, %llu bytes of tensor data\n",
                (unsigned long long)total_elems, (unsigned long long)total_bytes);
}

int tq_cmd_inspect(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "tqrun: error: usage: tqrun inspect FILE\n");
        return 2;
    }
    tq_gguf *g;
    tq_error err = {0};
    if (tq_gguf_open(argv[1], &g, &err) != TQ_OK) {
        fprintf(stderr, "tqrun: error: %s\n", err.message);
        return 1;
    }
    dump(stdout, g);
    tq_gguf_close(g);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tqrun: error: writing the dump failed\n");
        return 1;
    }
    return 0;
}
