/* test_gguf_writer.c — the GGUF writer, checked through the reader and
 * against the layout rules directly: every value type survives a round
 * trip, tensors of every kind land aligned and packed in order with zero
 * padding, a failed write leaves nothing behind, and rewriting a real model
 * (all KVs copied, all tensors re-added) reproduces it byte for byte. */
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tq_error.h"
#include "tq_gguf.h"
#include "tq_gguf_writer.h"
#include "tq_test_util.h"
#include "tq_types.h"

/* For checks inside long loops: in fork mode every passing ck_assert costs
 * Check a pipe write, which for a 32000-token vocabulary adds up. */
#define EXPECT(cond, ...)                       \
    do {                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* ---- raw GGUF bytes, for a source file with values the writer's setters
 *      cannot produce (every scalar type, string arrays) ----------------- */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void b_uint(bytes *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t x = (uint8_t)(v >> (8 * i));
        b_put(b, &x, 1);
    }
}

static void b_strn(bytes *b, const char *s, size_t n) {
    b_uint(b, n, 8);
    b_put(b, s, n);
}

static void b_str(bytes *b, const char *s) { b_strn(b, s, strlen(s)); }

/* KV header: key and value type. */
static void b_key(bytes *b, const char *key, tq_value_type t) {
    b_str(b, key);
    b_uint(b, (uint64_t)t, 4);
}

static char *save(const char *name, const bytes *b) {
    char *path = tq_test_tmp_path(name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b->p, 1, b->n, f), b->n);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

static tq_gguf *open_ok(const char *path) {
    tq_gguf *g;
    tq_error err;
    ck_assert_msg(tq_gguf_open(path, &g, &err) == TQ_OK, "%s", err.message);
    return g;
}

/* ---- comparing files ---------------------------------------------------- */

static size_t elem_size(tq_value_type t) {
    switch (t) {
    case TQ_VAL_U8: case TQ_VAL_I8: case TQ_VAL_BOOL: return 1;
    case TQ_VAL_U16: case TQ_VAL_I16: return 2;
    case TQ_VAL_U32: case TQ_VAL_I32: case TQ_VAL_F32: return 4;
    default: return 8;
    }
}

static void assert_same_value(const tq_gguf *ga, const tq_value *a, const tq_gguf *gb,
                              const tq_value *b, const char *key) {
    EXPECT(a->type == b->type, "%s: type %d vs %d", key, a->type, b->type);
    switch (a->type) {
    case TQ_VAL_STRING:
        EXPECT(a->len == b->len && memcmp(a->str, b->str, a->len) == 0, "%s differs", key);
        break;
    case TQ_VAL_ARRAY:
        EXPECT(a->elem_type == b->elem_type && a->count == b->count, "%s: shape", key);
        if (a->elem_type == TQ_VAL_STRING) {
            for (uint64_t i = 0; i < a->count; i++) {
                uint64_t la, lb;
                const char *sa = tq_gguf_array_str(ga, a, i, &la);
                const char *sb = tq_gguf_array_str(gb, b, i, &lb);
                EXPECT(sa && sb && la == lb && memcmp(sa, sb, la) == 0,
                              "%s[%llu] differs", key, (unsigned long long)i);
            }
        } else {
            EXPECT(memcmp(a->elems, b->elems, a->count * elem_size(a->elem_type)) == 0,
                          "%s: elements differ", key);
        }
        break;
    default: /* scalars: the widened number, bit for bit */
        EXPECT(memcmp(&a->num, &b->num, sizeof a->num) == 0, "%s: value differs", key);
    }
}

/* Same KVs in the same order. */
static void assert_same_kvs(const tq_gguf *a, const tq_gguf *b) {
    ck_assert_int_eq(tq_gguf_n_kv(b), tq_gguf_n_kv(a));
    for (int64_t i = 0; i < tq_gguf_n_kv(a); i++) {
        const char *k = tq_gguf_kv_key(a, i);
        EXPECT(strcmp(tq_gguf_kv_key(b, i), k) == 0, "KV %lld: '%s' vs '%s'", (long long)i,
               tq_gguf_kv_key(b, i), k);
        assert_same_value(a, tq_gguf_kv_value(a, i), b, tq_gguf_kv_value(b, i), k);
    }
}

/* ---- tests ---------------------------------------------------------------- */

static char *all_types_source(void) {
    bytes b = {0};
    b_put(&b, "GGUF", 4);
    b_uint(&b, 3, 4);
    b_uint(&b, 0, 8);  /* tensors */
    b_uint(&b, 26, 8); /* KVs */
    b_key(&b, "t.u8", TQ_VAL_U8), b_uint(&b, 0xfe, 1);
    b_key(&b, "t.i8", TQ_VAL_I8), b_uint(&b, 0x80, 1);
    b_key(&b, "t.u16", TQ_VAL_U16), b_uint(&b, 0xfffe, 2);
    b_key(&b, "t.i16", TQ_VAL_I16), b_uint(&b, 0x8001, 2);
    b_key(&b, "t.u32", TQ_VAL_U32), b_uint(&b, 0xfffffffe, 4);
    b_key(&b, "t.i32", TQ_VAL_I32), b_uint(&b, 0x80000001, 4);
    b_key(&b, "t.f32", TQ_VAL_F32), b_uint(&b, 0x3dcccccd, 4); /* 0.1f */
    b_key(&b, "t.bool", TQ_VAL_BOOL), b_uint(&b, 1, 1);
    b_key(&b, "t.str", TQ_VAL_STRING), b_strn(&b, "caf\xc3\xa9\0\ttab", 10);
    b_key(&b, "t.empty_str", TQ_VAL_STRING), b_str(&b, "");
    b_key(&b, "t.u64", TQ_VAL_U64), b_uint(&b, UINT64_MAX - 1, 8);
    b_key(&b, "t.i64", TQ_VAL_I64), b_uint(&b, (uint64_t)INT64_MIN, 8);
    b_key(&b, "t.f64", TQ_VAL_F64), b_uint(&b, 0x3fb999999999999aULL, 8); /* 0.1 */
    static const tq_value_type arr_types[] = {TQ_VAL_U8,  TQ_VAL_I8,  TQ_VAL_U16, TQ_VAL_I16,
                                              TQ_VAL_U32, TQ_VAL_I32, TQ_VAL_F32, TQ_VAL_BOOL,
                                              TQ_VAL_U64, TQ_VAL_I64, TQ_VAL_F64};
    for (size_t t = 0; t < sizeof arr_types / sizeof arr_types[0]; t++) {
        char key[32];
        snprintf(key, sizeof key, "a.%s", tq_gguf_value_type_name(arr_types[t]));
        b_key(&b, key, TQ_VAL_ARRAY);
        b_uint(&b, arr_types[t], 4);
        uint64_t n = 3 + t;
        b_uint(&b, n, 8);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = arr_types[t] == TQ_VAL_BOOL ? i & 1 : i * 0x0123456789abcdefULL;
            b_uint(&b, v, (int)elem_size(arr_types[t]));
        }
    }
    /* 13 scalars, 11 arrays so far; then strings and an empty array: 26 KVs. */
    b_key(&b, "a.string", TQ_VAL_ARRAY);
    b_uint(&b, TQ_VAL_STRING, 4);
    b_uint(&b, 4, 8);
    b_str(&b, "<s>"), b_str(&b, ""), b_strn(&b, "\0x", 2), b_str(&b, "\xe2\x96\x81the");
    b_key(&b, "a.empty", TQ_VAL_ARRAY);
    b_uint(&b, TQ_VAL_I32, 4);
    b_uint(&b, 0, 8);
    char *path = save("all-types-src.gguf", &b);
    free(b.p);
    return path;
}

START_TEST(all_value_types_round_trip) {
    char *src = all_types_source();
    tq_gguf *a = open_ok(src);
    ck_assert_int_eq(tq_gguf_n_kv(a), 26);

    tq_gguf_writer *w = tq_gguf_writer_new(0);
    ck_assert_int_eq(tq_gguf_writer_copy_all_kv(w, a, NULL, NULL), TQ_OK);
    char *out = tq_test_tmp_path("all-types-out.gguf");
    tq_error err;
    ck_assert_msg(tq_gguf_writer_write(w, out, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);

    tq_gguf *b = open_ok(out);
    ck_assert_int_eq(tq_gguf_n_kv(b), 26);
    assert_same_kvs(a, b);
    ck_assert_ptr_null(tq_gguf_find(b, "general.alignment"));
    tq_gguf_close(b);
    /* Byte for byte the source, plus the zero padding that starts the
     * (empty) data section. */
    size_t na, nb;
    char *ba = tq_test_read_file(src, &na), *bb = tq_test_read_file(out, &nb);
    ck_assert_uint_eq(nb, (na + 31) / 32 * 32);
    ck_assert_int_eq(memcmp(ba, bb, na), 0);
    for (size_t i = na; i < nb; i++) ck_assert_int_eq(bb[i], 0);
    free(ba);
    free(bb);

    /* Renaming on copy. */
    w = tq_gguf_writer_new(0);
    ck_assert_int_eq(tq_gguf_writer_copy_all_kv(w, a, "a.", "arr."), TQ_OK);
    ck_assert_msg(tq_gguf_writer_write(w, out, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);
    b = open_ok(out);
    ck_assert_ptr_null(tq_gguf_find(b, "a.string"));
    assert_same_value(a, tq_gguf_find(a, "a.string"), b, tq_gguf_find(b, "arr.string"), "arr");
    assert_same_value(a, tq_gguf_find(a, "t.u64"), b, tq_gguf_find(b, "t.u64"), "t.u64");
    tq_gguf_close(b);
    tq_gguf_close(a);
    free(out);
    free(src);
}
END_TEST

START_TEST(setters_replace_remove) {
    tq_gguf_writer *w = tq_gguf_writer_new(0);
    ck_assert_int_eq(tq_gguf_writer_set_str(w, "general.architecture", "llama"), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_u32(w, "k.u32", 7), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_i32(w, "k.i32", -123456), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_f32(w, "k.f32", 1e-5f), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_bool(w, "k.bool", 5), TQ_OK); /* any non-zero: true */
    ck_assert_int_eq(tq_gguf_writer_set_str(w, "k.gone", "x"), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_u32(w, "k.u32", 8), TQ_OK);     /* replaced in place */
    ck_assert_int_eq(tq_gguf_writer_set_str(w, "k.i32", "now a string"), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_remove_kv(w, "k.gone"), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_remove_kv(w, "k.gone"), TQ_ERR_NOT_FOUND);
    ck_assert_int_ne(tq_gguf_writer_set_u32(w, "", 1), TQ_OK);
    ck_assert_int_ne(tq_gguf_writer_set_str(w, "k.null", NULL), TQ_OK);
    /* A numeric array from a hand-made value (no source file needed). */
    int32_t ids[5] = {3, -1, 4, -1, 5};
    tq_value arr = {.size = sizeof arr, .type = TQ_VAL_ARRAY, .elem_type = TQ_VAL_I32,
                    .count = 5, .elems = ids};
    ck_assert_int_eq(tq_gguf_writer_copy_kv(w, NULL, "k.ids", &arr), TQ_OK);
    tq_value nested = arr;
    nested.elem_type = TQ_VAL_ARRAY;
    ck_assert_int_ne(tq_gguf_writer_copy_kv(w, NULL, "k.nested", &nested), TQ_OK);

    char *path = tq_test_tmp_path("setters.gguf");
    tq_error err;
    ck_assert_msg(tq_gguf_writer_write(w, path, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);

    tq_gguf *g = open_ok(path);
    static const char *const order[] = {"general.architecture", "k.u32", "k.i32", "k.f32",
                                        "k.bool", "k.ids"};
    ck_assert_int_eq(tq_gguf_n_kv(g), 6);
    for (int i = 0; i < 6; i++) ck_assert_str_eq(tq_gguf_kv_key(g, i), order[i]);
    uint32_t u;
    float f;
    int bo;
    const char *s;
    ck_assert_int_eq(tq_gguf_get_u32(g, "k.u32", &u, &err), TQ_OK);
    ck_assert_uint_eq(u, 8);
    ck_assert_int_eq(tq_gguf_get_str(g, "k.i32", &s, &err), TQ_OK);
    ck_assert_str_eq(s, "now a string");
    ck_assert_int_eq(tq_gguf_get_f32(g, "k.f32", &f, &err), TQ_OK);
    ck_assert(f == 1e-5f);
    ck_assert_int_eq(tq_gguf_get_bool(g, "k.bool", &bo, &err), TQ_OK);
    ck_assert_int_eq(bo, 1);
    const tq_value *v = tq_gguf_find(g, "k.ids");
    ck_assert_uint_eq(v->count, 5);
    ck_assert_int_eq(memcmp(v->elems, ids, sizeof ids), 0);
    tq_gguf_close(g);
    free(path);
}
END_TEST

typedef struct tspec {
    const char *name;
    tq_type type;
    int n_dims;
    int64_t ne[4];
} tspec;

/* Odd sizes, so most tensors need padding; every shape rank. */
static const tspec tensors[] = {
    {"f32.3x5", TQ_TYPE_F32, 2, {3, 5}},
    {"f16.7", TQ_TYPE_F16, 1, {7}},
    {"q4_0.64x3", TQ_TYPE_Q4_0, 2, {64, 3}},
    {"q8_0.32x1x2", TQ_TYPE_Q8_0, 3, {32, 1, 2}},
    {"i32.5x1x1x3", TQ_TYPE_I32, 4, {5, 1, 1, 3}},
    {"bf16.1", TQ_TYPE_BF16, 1, {1}},
    {"q6_K.256x2", TQ_TYPE_Q6_K, 2, {256, 2}},
    {"i8.13", TQ_TYPE_I8, 1, {13}},
    {"q4_K.512", TQ_TYPE_Q4_K, 1, {512}},
    {"scalar", TQ_TYPE_F32, 0, {0}},
};
#define N_TENSORS ((int)(sizeof tensors / sizeof tensors[0]))

static uint8_t *tensor_bytes(const tspec *t, size_t *n, uint32_t seed) {
    int64_t rows = 1;
    for (int d = 1; d < t->n_dims; d++) rows *= t->ne[d];
    *n = tq_type_row_bytes(t->type, t->n_dims ? t->ne[0] : 1) * (size_t)rows;
    ck_assert_uint_gt(*n, 0);
    uint8_t *p = malloc(*n);
    for (size_t i = 0; i < *n; i++) p[i] = (uint8_t)((i * 2654435761u + seed) >> 7);
    return p;
}

START_TEST(tensors_all_types_aligned) {
    static const uint32_t alignments[] = {0, 64, 8, 256};
    uint32_t req = alignments[_i], a = req ? req : 32;
    tq_gguf_writer *w = tq_gguf_writer_new(req);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(tq_gguf_writer_set_str(w, "general.architecture", "test"), TQ_OK);
    uint8_t *data[N_TENSORS];
    size_t sizes[N_TENSORS];
    for (int i = 0; i < N_TENSORS; i++) {
        data[i] = tensor_bytes(&tensors[i], &sizes[i], (uint32_t)i);
        ck_assert_int_eq(tq_gguf_writer_add_tensor(w, tensors[i].name, tensors[i].type,
                                                   tensors[i].n_dims, tensors[i].ne, data[i],
                                                   i % 2),
                         TQ_OK);
    }
    /* Copied data must not depend on the caller's buffer after add_tensor. */
    for (int i = 0; i < N_TENSORS; i += 2) data[i][0] ^= 0xff;
    char name[32];
    snprintf(name, sizeof name, "tensors-%u.gguf", req);
    char *path = tq_test_tmp_path(name);
    tq_error err;
    ck_assert_msg(tq_gguf_writer_write(w, path, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);
    for (int i = 0; i < N_TENSORS; i += 2) data[i][0] ^= 0xff;

    tq_gguf *g = open_ok(path);
    ck_assert_uint_eq(tq_gguf_alignment(g), a);
    uint32_t ka;
    tq_status st = tq_gguf_get_u32(g, "general.alignment", &ka, &err);
    if (a == 32) {
        ck_assert_int_eq(st, TQ_ERR_NOT_FOUND);
    } else {
        ck_assert_int_eq(st, TQ_OK);
        ck_assert_uint_eq(ka, a);
    }
    uint64_t data_off = tq_gguf_data_offset(g);
    ck_assert_uint_eq(data_off % a, 0);
    ck_assert_int_eq(tq_gguf_n_tensors(g), N_TENSORS);
    size_t flen;
    uint8_t *file = (uint8_t *)tq_test_read_file(path, &flen);
    uint64_t expect = 0;
    for (int i = 0; i < N_TENSORS; i++) {
        const tq_tensor *t = tq_gguf_tensor(g, i);
        ck_assert_str_eq(t->name, tensors[i].name);
        ck_assert_int_eq(t->type, tensors[i].type);
        for (int d = 0; d < 4; d++)
            ck_assert_int_eq(t->ne[d], d < tensors[i].n_dims ? tensors[i].ne[d] : 1);
        uint64_t off = tq_gguf_tensor_offset(g, i);
        ck_assert_uint_eq(off % a, 0);
        ck_assert_uint_eq(off, expect); /* packed in order: what ggml requires */
        ck_assert_uint_eq(t->nb[3] * (size_t)t->ne[3], sizes[i]);
        ck_assert_int_eq(memcmp(t->data, data[i], sizes[i]), 0);
        expect = off + sizes[i];
        for (; expect % a; expect++) ck_assert_uint_eq(file[data_off + expect], 0); /* padding */
    }
    ck_assert_uint_eq(tq_gguf_file_size(g), data_off + expect);
    free(file);
    tq_gguf_close(g);
    for (int i = 0; i < N_TENSORS; i++) free(data[i]);
    free(path);
}
END_TEST

START_TEST(rejects_bad_tensors) {
    tq_gguf_writer *w = tq_gguf_writer_new(0);
    float x[64] = {0};
    int64_t ne8[1] = {8}, ne16[1] = {16}, ne0[2] = {8, 0}, ne5[5] = {1, 1, 1, 1, 1};
    char long_name[65];
    memset(long_name, 'x', 64);
    long_name[64] = 0;
    ck_assert_int_eq(tq_gguf_writer_add_tensor(w, "a", TQ_TYPE_F32, 1, ne8, x, 0), TQ_OK);
    ck_assert_int_ne(tq_gguf_writer_add_tensor(w, "a", TQ_TYPE_F32, 1, ne8, x, 0), TQ_OK);
    ck_assert_int_ne(tq_gguf_writer_add_tensor(w, "b", TQ_TYPE_Q4_0, 1, ne16, x, 0), TQ_OK);
    ck_assert_int_ne(tq_gguf_writer_add_tensor(w, "c", 99, 1, ne8, x, 0), TQ_OK);
    ck_assert_int_ne(tq_gguf_writer_add_tensor(w, "d", TQ_TYPE_DYNAMIC_BASE, 1, ne8, x, 0), TQ_OK);
    ck_assert_int_ne(tq_gguf_writer_add_tensor(w, long_name, TQ_TYPE_F32, 1, ne8, x, 0), TQ_OK);
    ck_assert_int_ne(tq_gguf_writer_add_tensor(w, "e", TQ_TYPE_F32, 2, ne0, x, 0), TQ_OK);
    ck_assert_int_ne(tq_gguf_writer_add_tensor(w, "f", TQ_TYPE_F32, 5, ne5, x, 0), TQ_OK);
    long_name[63] = 0; /* 63 bytes is the longest allowed */
    ck_assert_int_eq(tq_gguf_writer_add_tensor(w, long_name, TQ_TYPE_F32, 1, ne8, x, 0), TQ_OK);
    char *path = tq_test_tmp_path("rejects.gguf");
    tq_error err;
    ck_assert_msg(tq_gguf_writer_write(w, path, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);
    tq_gguf *g = open_ok(path);
    ck_assert_int_eq(tq_gguf_n_tensors(g), 2);
    tq_gguf_close(g);
    free(path);
    ck_assert_ptr_null(tq_gguf_writer_new(48));
}
END_TEST

/* Streamed tensors: produced at write time, in order, interleaved with
 * copied ones; a failing producer aborts the write and leaves no file. */
typedef struct stream_ctx {
    int calls;
    int fail_at; /* call number that fails, or -1 */
} stream_ctx;

static tq_status produce_pattern(void *user, void *dst, uint64_t n, tq_error *err) {
    stream_ctx *c = user;
    int k = c->calls++;
    if (k == c->fail_at) return tq_error_set(err, TQ_ERR_IO, "producer %d failed", k);
    for (uint64_t i = 0; i < n; i++) ((uint8_t *)dst)[i] = (uint8_t)(i * 7 + (uint64_t)k);
    return TQ_OK;
}

START_TEST(streamed_tensors) {
    int64_t ne_a[2] = {64, 3}, ne_b[1] = {5}, ne_c[2] = {256, 2};
    float small[5] = {1, 2, 3, 4, 5};
    for (int fail = -1; fail <= 1; fail++) {
        stream_ctx c = {0, fail};
        tq_gguf_writer *w = tq_gguf_writer_new(0);
        ck_assert_int_eq(tq_gguf_writer_add_tensor_stream(w, "a", TQ_TYPE_Q4_0, 2, ne_a,
                                                          produce_pattern, &c), TQ_OK);
        ck_assert_int_eq(tq_gguf_writer_add_tensor(w, "b", TQ_TYPE_F32, 1, ne_b, small, 0), TQ_OK);
        ck_assert_int_eq(tq_gguf_writer_add_tensor_stream(w, "c", TQ_TYPE_Q6_K, 2, ne_c,
                                                          produce_pattern, &c), TQ_OK);
        ck_assert_int_ne(tq_gguf_writer_add_tensor_stream(w, "d", TQ_TYPE_F32, 1, ne_b, NULL, &c),
                         TQ_OK);
        char *path = tq_test_tmp_path(fail < 0 ? "stream.gguf" : "stream-fail.gguf");
        tq_error err = {0};
        tq_status st = tq_gguf_writer_write(w, path, &err);
        tq_gguf_writer_free(w);
        if (fail >= 0) {
            ck_assert_int_eq(st, TQ_ERR_IO);
            ck_assert_ptr_nonnull(strstr(err.message, "producer"));
            ck_assert_int_eq(access(path, F_OK), -1);
            free(path);
            continue;
        }
        ck_assert_msg(st == TQ_OK, "%s", err.message);
        ck_assert_int_eq(c.calls, 2);
        tq_gguf *g = open_ok(path);
        ck_assert_int_eq(tq_gguf_n_tensors(g), 3);
        const tq_tensor *ta = tq_gguf_find_tensor(g, "a"), *tc = tq_gguf_find_tensor(g, "c");
        size_t na = tq_type_row_bytes(TQ_TYPE_Q4_0, 64) * 3, nc = tq_type_row_bytes(TQ_TYPE_Q6_K, 256) * 2;
        for (size_t i = 0; i < na; i++) ck_assert_uint_eq(((uint8_t *)ta->data)[i], (uint8_t)(i * 7));
        for (size_t i = 0; i < nc; i++) ck_assert_uint_eq(((uint8_t *)tc->data)[i], (uint8_t)(i * 7 + 1));
        ck_assert_int_eq(memcmp(tq_gguf_find_tensor(g, "b")->data, small, sizeof small), 0);
        tq_gguf_close(g);
        free(path);
    }
}
END_TEST

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

START_TEST(failed_write_leaves_nothing) {
    tq_gguf_writer *w = tq_gguf_writer_new(0);
    ck_assert_int_eq(tq_gguf_writer_set_u32(w, "x", 1), TQ_OK);
    tq_error err;

    char *missing = tq_test_tmp_path("no-such-dir/out.gguf");
    ck_assert_int_eq(tq_gguf_writer_write(w, missing, &err), TQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, missing));

    /* The destination is a non-empty directory: the temp file is written,
     * the rename fails, and the temp file must be gone again. */
    char *dir = tq_test_tmp_path("wdir");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    char *target = tq_test_tmp_path("wdir/target");
    ck_assert_int_eq(mkdir(target, 0700), 0);
    char *inner = tq_test_tmp_path("wdir/target/keep");
    FILE *f = fopen(inner, "w");
    fclose(f);
    ck_assert_int_eq(tq_gguf_writer_write(w, target, &err), TQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, target));
    ck_assert_int_eq(count_entries(dir), 1);

    /* Success replaces an existing file and leaves no temp file either. */
    char *file = tq_test_tmp_path("wdir/file.gguf");
    f = fopen(file, "w");
    fputs("old contents", f);
    fclose(f);
    ck_assert_msg(tq_gguf_writer_write(w, file, &err) == TQ_OK, "%s", err.message);
    ck_assert_int_eq(count_entries(dir), 2);
    tq_gguf *g = open_ok(file);
    ck_assert_int_eq(tq_gguf_n_kv(g), 1);
    /* Rewriting the file that is open (and mapped) is safe too. */
    ck_assert_int_eq(tq_gguf_writer_copy_all_kv(w, g, NULL, NULL), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_u32(w, "y", 2), TQ_OK);
    ck_assert_msg(tq_gguf_writer_write(w, file, &err) == TQ_OK, "%s", err.message);
    ck_assert_int_eq(tq_gguf_n_kv(g), 1);
    tq_gguf_close(g);
    g = open_ok(file);
    ck_assert_int_eq(tq_gguf_n_kv(g), 2);
    tq_gguf_close(g);

    tq_gguf_writer_free(w);
    free(file);
    free(inner);
    free(target);
    free(dir);
    free(missing);
}
END_TEST

/* general.alignment always states the writer's alignment, even when a copy
 * brought another value along. */
START_TEST(copied_alignment_follows_writer) {
    tq_gguf_writer *w = tq_gguf_writer_new(128);
    int64_t ne[1] = {5};
    float x[5] = {1, 2, 3, 4, 5};
    ck_assert_int_eq(tq_gguf_writer_add_tensor(w, "x", TQ_TYPE_F32, 1, ne, x, 0), TQ_OK);
    char *p128 = tq_test_tmp_path("align128.gguf");
    tq_error err;
    ck_assert_msg(tq_gguf_writer_write(w, p128, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);
    tq_gguf *g = open_ok(p128);
    ck_assert_uint_eq(tq_gguf_alignment(g), 128);

    w = tq_gguf_writer_new(0);
    ck_assert_int_eq(tq_gguf_writer_copy_all_kv(w, g, NULL, NULL), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_add_tensor(w, "x", TQ_TYPE_F32, 1, ne, x, 0), TQ_OK);
    char *p32 = tq_test_tmp_path("align32.gguf");
    ck_assert_msg(tq_gguf_writer_write(w, p32, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);
    tq_gguf *h = open_ok(p32);
    ck_assert_uint_eq(tq_gguf_alignment(h), 32);
    ck_assert_int_eq(memcmp(tq_gguf_tensor(h, 0)->data, x, sizeof x), 0);
    tq_gguf_close(h);
    tq_gguf_close(g);
    free(p32);
    free(p128);
}
END_TEST

/* ---- real models -------------------------------------------------------- */

static const char *const models[] = {"models/stories260K.gguf", "models/stories260K-phi3.gguf",
                                     "models/ggml-vocab-phi-3.gguf"};

START_TEST(real_model_round_trip) {
    char *src = tq_test_shared_path(models[_i]);
    tq_gguf *a = open_ok(src);
    tq_gguf_writer *w = tq_gguf_writer_new(tq_gguf_alignment(a));
    ck_assert_int_eq(tq_gguf_writer_copy_all_kv(w, a, NULL, NULL), TQ_OK);
    for (int64_t i = 0; i < tq_gguf_n_tensors(a); i++) {
        const tq_tensor *t = tq_gguf_tensor(a, i);
        int n_dims = 4;
        while (n_dims > 1 && t->ne[n_dims - 1] == 1) n_dims--;
        ck_assert_int_eq(tq_gguf_writer_add_tensor(w, t->name, t->type, n_dims, t->ne, t->data, 1),
                         TQ_OK);
    }
    char *out = tq_test_tmp_path("model-copy.gguf");
    tq_error err;
    ck_assert_msg(tq_gguf_writer_write(w, out, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);

    tq_gguf *b = open_ok(out);
    assert_same_kvs(a, b);
    ck_assert_int_eq(tq_gguf_n_tensors(b), tq_gguf_n_tensors(a));
    for (int64_t i = 0; i < tq_gguf_n_tensors(a); i++) {
        const tq_tensor *ta = tq_gguf_tensor(a, i), *tb = tq_gguf_tensor(b, i);
        ck_assert_str_eq(tb->name, ta->name);
        ck_assert_int_eq(tb->type, ta->type);
        ck_assert_int_eq(memcmp(tb->ne, ta->ne, sizeof ta->ne), 0);
        ck_assert_int_eq(memcmp(tb->nb, ta->nb, sizeof ta->nb), 0);
        ck_assert_int_eq(memcmp(tb->data, ta->data, ta->nb[3] * (size_t)ta->ne[3]), 0);
    }
    tq_gguf_close(b);

    /* These files were written by gguf-py with the same rules (KVs in
     * order, each tensor padded; vocab-only files without trailing
     * padding — ours pads the tensor infos, so compare up to the source's
     * length), so the copy is the original, byte for byte. */
    size_t na, nb;
    char *ba = tq_test_read_file(src, &na), *bb = tq_test_read_file(out, &nb);
    ck_assert_uint_ge(nb, na);
    ck_assert_msg(memcmp(ba, bb, na) == 0, "copy of %s differs from it", src);
    ck_assert_uint_lt(nb - na, tq_gguf_alignment(a));
    free(ba);
    free(bb);
    tq_gguf_close(a);
    free(out);
    free(src);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gguf_writer");
    TCase *tc = tcase_create("writer");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, all_value_types_round_trip);
    tcase_add_test(tc, setters_replace_remove);
    tcase_add_loop_test(tc, tensors_all_types_aligned, 0, 4);
    tcase_add_test(tc, rejects_bad_tensors);
    tcase_add_test(tc, streamed_tensors);
    tcase_add_test(tc, failed_write_leaves_nothing);
    tcase_add_test(tc, copied_alignment_follows_writer);
    suite_add_tcase(s, tc);

    int have_shared = tq_test_shared_dir() != NULL;
    if (have_shared) {
        TCase *tm = tcase_create("models");
        tcase_set_timeout(tm, 300);
        tcase_add_loop_test(tm, real_model_round_trip, 0, (int)(sizeof models / sizeof models[0]));
        suite_add_tcase(s, tm);
    }
    int rc = tq_test_run(s);
    return rc != 0 ? rc : have_shared ? 0 : TQ_TEST_SKIP;
}
