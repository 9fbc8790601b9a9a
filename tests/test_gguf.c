/* test_gguf.c — the GGUF reader.
 *
 * Real models (from the shared dir): structural facts that hold for any
 * valid file and that the test derives itself — data packed in info order
 * with ggml's padding, block_count equal to the number of blk.N layers,
 * vocabulary arrays as long as token_embd has rows, string arrays that end
 * exactly where the next key begins, mapped bytes equal to fread bytes.
 *
 * Bad input (always runs): files assembled byte by byte here, each broken in
 * one way, plus every prefix of a valid file and thousands of randomly
 * corrupted copies. Each must fail cleanly with a message that starts with
 * the file's path; under ASan this proves the reader never reads out of
 * bounds. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* ---- raw GGUF bytes ------------------------------------------------------ */

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

static void b_u8(bytes *b, uint8_t v) { b_put(b, &v, 1); }

static void b_u32(bytes *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b_u8(b, (uint8_t)(v >> (8 * i)));
}

static void b_u64(bytes *b, uint64_t v) {
    b_u32(b, (uint32_t)v);
    b_u32(b, (uint32_t)(v >> 32));
}

static void b_str(bytes *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}

static void b_hdr(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_put(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}

static void b_kv_u32(bytes *b, const char *key, uint32_t v) {
    b_str(b, key);
    b_u32(b, TQ_VAL_U32);
    b_u32(b, v);
}

static void b_kv_str(bytes *b, const char *key, const char *v) {
    b_str(b, key);
    b_u32(b, TQ_VAL_STRING);
    b_str(b, v);
}

static void b_tinfo(bytes *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
                    uint64_t offset) {
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) b_u64(b, (uint64_t)ne[i]);
    b_u32(b, type);
    b_u64(b, offset);
}

static void b_zeros(bytes *b, size_t n) {
    for (size_t i = 0; i < n; i++) b_u8(b, 0);
}

static void b_pad(bytes *b, size_t a) { b_zeros(b, (a - b->n % a) % a); }

static char *save(const char *name, const void *p, size_t n) {
    char *path = tq_test_tmp_path(name);
    ck_assert_ptr_nonnull(path);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Header, one KV and one tensor info with the given fields, then `data`
 * bytes of tensor data. */
static void one_tensor(bytes *b, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t off,
                       size_t data) {
    b_hdr(b, 3, 1, 1);
    b_kv_str(b, "general.architecture", "llama");
    b_tinfo(b, "w", n_dims, ne, type, off);
    b_pad(b, 32);
    b_zeros(b, data);
}

/* ---- broken files -------------------------------------------------------- */

static void bad_magic(bytes *b) {
    b_put(b, "GGUX", 4);
    b_u32(b, 3);
    b_u64(b, 0);
    b_u64(b, 0);
}
static void bad_version1(bytes *b) { b_hdr(b, 1, 0, 0); }
static void bad_version4(bytes *b) { b_hdr(b, 4, 0, 0); }
static void bad_version0(bytes *b) { b_hdr(b, 0, 0, 0); }
static void bad_big_endian(bytes *b) { b_hdr(b, 0x03000000, 0, 0); }
static void bad_tiny(bytes *b) { b_put(b, "GG", 2); }
static void bad_empty(bytes *b) { (void)b; }
static void bad_n_tensors(bytes *b) {
    b_hdr(b, 3, UINT64_C(1) << 62, 0);
    b_zeros(b, 64);
}
static void bad_n_tensors_neg(bytes *b) {
    b_hdr(b, 3, UINT64_MAX, 0);
    b_zeros(b, 64);
}
static void bad_n_kv(bytes *b) {
    b_hdr(b, 3, 0, UINT64_C(1) << 62);
    b_zeros(b, 64);
}
static void bad_n_kv_fits_header_check(bytes *b) { /* plausible count, too few KVs */
    b_hdr(b, 3, 0, 5);
    b_kv_u32(b, "a", 1);
    b_kv_u32(b, "b", 2);
    b_zeros(b, 40);
}
static void bad_key_len(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_u64(b, UINT64_C(1) << 62);
    b_put(b, "general.name", 12);
    b_zeros(b, 20);
}
static void bad_str_len(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "general.name");
    b_u32(b, TQ_VAL_STRING);
    b_u64(b, UINT64_MAX);
    b_zeros(b, 20);
}
static void bad_empty_key(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_kv_u32(b, "", 1);
}
static void bad_nul_key(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_u64(b, 3);
    b_put(b, "a\0b", 3);
    b_u32(b, TQ_VAL_U8);
    b_u8(b, 1);
}
static void bad_value_type(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "x");
    b_u32(b, 13);
    b_u64(b, 0);
}
static void bad_dup_key(bytes *b) {
    b_hdr(b, 3, 0, 3);
    b_kv_u32(b, "general.alignment", 32);
    b_kv_str(b, "general.name", "a");
    b_kv_u32(b, "general.alignment", 64);
}
static void bad_array_of_arrays(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "x");
    b_u32(b, TQ_VAL_ARRAY);
    b_u32(b, TQ_VAL_ARRAY);
    b_u64(b, 1);
    b_u32(b, TQ_VAL_U8);
    b_u64(b, 1);
    b_u8(b, 0);
}
static void bad_array_elem_type(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "x");
    b_u32(b, TQ_VAL_ARRAY);
    b_u32(b, 77);
    b_u64(b, 0);
}
static void bad_array_count(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "x");
    b_u32(b, TQ_VAL_ARRAY);
    b_u32(b, TQ_VAL_U64);
    b_u64(b, UINT64_C(1) << 61); /* * 8 bytes overflows 64 bits */
    b_zeros(b, 64);
}
static void bad_string_array_count(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "tokenizer.ggml.tokens");
    b_u32(b, TQ_VAL_ARRAY);
    b_u32(b, TQ_VAL_STRING);
    b_u64(b, UINT64_C(1) << 60);
    b_str(b, "a");
    b_str(b, "b");
}
static void bad_string_array_elem(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "tokenizer.ggml.tokens");
    b_u32(b, TQ_VAL_ARRAY);
    b_u32(b, TQ_VAL_STRING);
    b_u64(b, 3);
    b_str(b, "a");
    b_u64(b, 1000);
    b_zeros(b, 30);
}
static void bad_bool(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "tokenizer.ggml.add_bos_token");
    b_u32(b, TQ_VAL_BOOL);
    b_u8(b, 2);
}
static void bad_bool_array(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "flags");
    b_u32(b, TQ_VAL_ARRAY);
    b_u32(b, TQ_VAL_BOOL);
    b_u64(b, 3);
    b_u8(b, 0);
    b_u8(b, 1);
    b_u8(b, 255);
}
static void bad_alignment_type(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_str(b, "general.alignment");
    b_u32(b, TQ_VAL_I32);
    b_u32(b, 32);
}
static void bad_alignment_value(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_kv_u32(b, "general.alignment", 48);
}
static void bad_alignment_zero(bytes *b) {
    b_hdr(b, 3, 0, 1);
    b_kv_u32(b, "general.alignment", 0);
}
static void bad_n_dims(bytes *b) {
    int64_t ne[5] = {1, 1, 1, 1, 1};
    one_tensor(b, 5, ne, TQ_TYPE_F32, 0, 32);
}
static void bad_zero_dim(bytes *b) {
    int64_t ne[2] = {4, 0};
    one_tensor(b, 2, ne, TQ_TYPE_F32, 0, 32);
}
static void bad_negative_dim(bytes *b) {
    int64_t ne[2] = {4, -8};
    one_tensor(b, 2, ne, TQ_TYPE_F32, 0, 32);
}
static void bad_dim_overflow(bytes *b) {
    int64_t ne[3] = {INT64_C(1) << 32, INT64_C(1) << 32, 4};
    one_tensor(b, 3, ne, TQ_TYPE_F32, 0, 32);
}
static void bad_bytes_overflow(bytes *b) { /* elements fit in int64, bytes do not */
    int64_t ne[2] = {INT64_C(1) << 31, INT64_C(1) << 31};
    one_tensor(b, 2, ne, TQ_TYPE_F32, 0, 32);
}
static void bad_larger_than_file(bytes *b) {
    int64_t ne[2] = {1 << 20, 1 << 20};
    one_tensor(b, 2, ne, TQ_TYPE_F32, 0, 32);
}
static void bad_offset_past_end(bytes *b) {
    int64_t ne[1] = {8};
    one_tensor(b, 1, ne, TQ_TYPE_F32, 1024, 64);
}
static void bad_offset_huge(bytes *b) {
    int64_t ne[1] = {8};
    one_tensor(b, 1, ne, TQ_TYPE_F32, UINT64_MAX - 31, 64);
}
static void bad_data_cut(bytes *b) { /* 32 bytes needed, 31 there */
    int64_t ne[1] = {8};
    one_tensor(b, 1, ne, TQ_TYPE_F32, 0, 31);
}
static void bad_misaligned(bytes *b) {
    int64_t ne[1] = {8};
    one_tensor(b, 1, ne, TQ_TYPE_F32, 4, 64);
}
static void bad_type_99(bytes *b) {
    int64_t ne[1] = {8};
    one_tensor(b, 1, ne, 99, 0, 64);
}
static void bad_type_removed(bytes *b) { /* ggml type 4 (Q4_2) no longer exists */
    int64_t ne[1] = {32};
    one_tensor(b, 1, ne, 4, 0, 64);
}
static void bad_type_iq2_xxs(bytes *b) { /* a real ggml type without a codec here */
    int64_t ne[1] = {256};
    one_tensor(b, 1, ne, 16, 0, 256);
}
static void bad_type_huge(bytes *b) {
    int64_t ne[1] = {8};
    one_tensor(b, 1, ne, 0xFFFFFFFFu, 0, 64);
}
static void bad_block_multiple(bytes *b) {
    int64_t ne[2] = {16, 2}; /* q4_0 blocks hold 32 */
    one_tensor(b, 2, ne, TQ_TYPE_Q4_0, 0, 64);
}
static void bad_kquant_multiple(bytes *b) {
    int64_t ne[1] = {128}; /* q4_K blocks hold 256 */
    one_tensor(b, 1, ne, TQ_TYPE_Q4_K, 0, 256);
}
static void bad_dup_tensor(bytes *b) {
    int64_t ne[1] = {8};
    b_hdr(b, 3, 2, 0);
    b_tinfo(b, "blk.0.attn_q.weight", 1, ne, TQ_TYPE_F32, 0);
    b_tinfo(b, "blk.0.attn_q.weight", 1, ne, TQ_TYPE_F32, 32);
    b_pad(b, 32);
    b_zeros(b, 64);
}
static void bad_long_name(bytes *b) {
    int64_t ne[1] = {8};
    char name[65];
    memset(name, 'n', 64);
    name[64] = 0;
    b_hdr(b, 3, 1, 0);
    b_tinfo(b, name, 1, ne, TQ_TYPE_F32, 0);
    b_pad(b, 32);
    b_zeros(b, 32);
}
static void bad_tensor_count_after_kvs(bytes *b) {
    int64_t ne[1] = {8};
    b_hdr(b, 3, 3, 1);
    b_kv_str(b, "general.architecture", "llama");
    b_tinfo(b, "a", 1, ne, TQ_TYPE_F32, 0);
}

typedef void (*build_fn)(bytes *b);

static const struct {
    const char *name;
    build_fn build;
    const char *needle; /* must appear in the message (after the path) */
} bad_cases[] = {
    {"magic", bad_magic, "bad magic 'GGUX'"},
    {"version1", bad_version1, "v1"},
    {"version4", bad_version4, "version 4"},
    {"version0", bad_version0, "version 0"},
    {"big_endian", bad_big_endian, "big-endian"},
    {"tiny", bad_tiny, "not a GGUF file"},
    {"empty", bad_empty, "not a GGUF file"},
    {"n_tensors_2e62", bad_n_tensors, "tensor count"},
    {"n_tensors_negative", bad_n_tensors_neg, "tensor count"},
    {"n_kv_2e62", bad_n_kv, "KV count"},
    {"n_kv_short", bad_n_kv_fits_header_check, "KV 2"},
    {"key_len", bad_key_len, "string length"},
    {"str_len", bad_str_len, "string length"},
    {"empty_key", bad_empty_key, "empty key"},
    {"nul_key", bad_nul_key, "NUL"},
    {"value_type", bad_value_type, "invalid value type 13"},
    {"dup_key", bad_dup_key, "duplicate key 'general.alignment'"},
    {"array_of_arrays", bad_array_of_arrays, "arrays of arrays"},
    {"array_elem_type", bad_array_elem_type, "element type 77"},
    {"array_count", bad_array_count, "truncated"},
    {"string_array_count", bad_string_array_count, "strings cannot fit"},
    {"string_array_elem", bad_string_array_elem, "string length 1000"},
    {"bool2", bad_bool, "invalid bool value 2"},
    {"bool_array", bad_bool_array, "invalid bool value 255"},
    {"alignment_type", bad_alignment_type, "general.alignment has type i32"},
    {"alignment_48", bad_alignment_value, "power of two"},
    {"alignment_0", bad_alignment_zero, "power of two"},
    {"n_dims5", bad_n_dims, "5 dimensions"},
    {"zero_dim", bad_zero_dim, "dimension 1 is 0"},
    {"negative_dim", bad_negative_dim, "dimension 1 is -8"},
    {"dim_overflow", bad_dim_overflow, "overflows"},
    {"bytes_overflow", bad_bytes_overflow, "larger than the file"},
    {"larger_than_file", bad_larger_than_file, "larger than the file"},
    {"offset_past_end", bad_offset_past_end, "past the end"},
    {"offset_huge", bad_offset_huge, "past the end"},
    {"data_cut", bad_data_cut, "past the end"},
    {"misaligned", bad_misaligned, "not a multiple of the alignment"},
    {"type99", bad_type_99, "tensor 'w' has unknown type 99"},
    {"type4", bad_type_removed, "unknown type 4"},
    {"type_iq2_xxs", bad_type_iq2_xxs, "type 16 (iq2_xxs), which tqrun does not support"},
    {"type_huge", bad_type_huge, "unknown type 4294967295"},
    {"block_multiple", bad_block_multiple, "not a multiple of the q4_0 block size 32"},
    {"kquant_multiple", bad_kquant_multiple, "block size 256"},
    {"dup_tensor", bad_dup_tensor, "duplicate tensor name 'blk.0.attn_q.weight'"},
    {"long_name", bad_long_name, "at most 63"},
    {"tensor_count_after_kvs", bad_tensor_count_after_kvs, "tensor"},
};

#define N_BAD_CASES ((int)(sizeof bad_cases / sizeof bad_cases[0]))

/* Opening must fail, leave *out NULL, and say which file and what. */
static void expect_bad(const char *path, const char *needle, const char *label) {
    tq_gguf *g = (tq_gguf *)&g; /* must be reset to NULL */
    tq_error err;
    memset(&err, 0, sizeof err);
    tq_status st = tq_gguf_open(path, &g, &err);
    EXPECT(st != TQ_OK, "%s: bad file was accepted", label);
    EXPECT(g == NULL, "%s: *out not NULL on failure", label);
    EXPECT(err.code == st, "%s: err.code %d != status %d", label, err.code, st);
    EXPECT(strncmp(err.message, path, strlen(path)) == 0 &&
                      strncmp(err.message + strlen(path), ": ", 2) == 0,
                  "%s: message does not start with the path: %s", label, err.message);
    if (needle)
        EXPECT(strstr(err.message, needle) != NULL, "%s: '%s' not in message: %s", label,
                      needle, err.message);
}

START_TEST(bad_file) {
    bytes b = {0};
    bad_cases[_i].build(&b);
    char name[64];
    snprintf(name, sizeof name, "bad_%s.gguf", bad_cases[_i].name);
    char *path = save(name, b.p, b.n);
    expect_bad(path, bad_cases[_i].needle, bad_cases[_i].name);
    free(path);
    free(b.p);
}
END_TEST

START_TEST(missing_and_not_regular) {
    char *path = tq_test_tmp_path("does-not-exist.gguf");
    expect_bad(path, "cannot open", "missing");
    free(path);
    char *dir = tq_test_tmp_path("a-directory.gguf");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    expect_bad(dir, NULL, "directory");
    free(dir);
}
END_TEST

/* ---- a small valid file, written with the writer -------------------------- */

/* Several KVs of different kinds and three tensors whose last one ends
 * exactly at the end of the file (so every proper prefix is broken). */
static char *write_small_file(const char *name, uint64_t *data_end) {
    tq_gguf_writer *w = tq_gguf_writer_new(0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(tq_gguf_writer_set_str(w, "general.architecture", "llama"), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_u32(w, "llama.block_count", 2), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_set_i32(w, "x.neg", -7), TQ_OK);
    uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 3);
    int64_t ne0[2] = {3, 5}, ne1[1] = {64}, ne2[2] = {8, 2};
    ck_assert_int_eq(tq_gguf_writer_add_tensor(w, "a", TQ_TYPE_F32, 2, ne0, data, 0), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_add_tensor(w, "b", TQ_TYPE_Q8_0, 1, ne1, data, 0), TQ_OK);
    ck_assert_int_eq(tq_gguf_writer_add_tensor(w, "c", TQ_TYPE_F32, 2, ne2, data, 0), TQ_OK);
    char *path = tq_test_tmp_path(name);
    tq_error err;
    ck_assert_msg(tq_gguf_writer_write(w, path, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);

    tq_gguf *g;
    ck_assert_msg(tq_gguf_open(path, &g, &err) == TQ_OK, "%s", err.message);
    const tq_tensor *c = tq_gguf_tensor(g, 2);
    *data_end = tq_gguf_data_offset(g) + tq_gguf_tensor_offset(g, 2) + c->nb[3] * (size_t)c->ne[3];
    ck_assert_uint_eq(*data_end, tq_gguf_file_size(g));
    tq_gguf_close(g);
    return path;
}

START_TEST(every_prefix_fails) {
    uint64_t end;
    char *src = write_small_file("small.gguf", &end);
    size_t n;
    char *whole = tq_test_read_file(src, &n);
    ck_assert_ptr_nonnull(whole);
    ck_assert_uint_eq(n, end);
    char *path = tq_test_tmp_path("prefix.gguf");
    for (size_t cut = 0; cut < n; cut++) {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(whole, 1, cut, f), cut);
        fclose(f);
        char label[32];
        snprintf(label, sizeof label, "cut at %zu", cut);
        expect_bad(path, NULL, label);
    }
    free(path);
    free(whole);
    free(src);
}
END_TEST

/* Reads everything a caller could reach, so a corrupted file that slips
 * through validation would show up as an ASan report here. */
static uint64_t touch_everything(const tq_gguf *g) {
    uint64_t h = 0;
    for (int64_t i = 0; i < tq_gguf_n_kv(g); i++) {
        const tq_value *v = tq_gguf_kv_value(g, i);
        h += strlen(tq_gguf_kv_key(g, i));
        if (v->type == TQ_VAL_STRING && v->len) h += (uint8_t)v->str[v->len - 1];
        if (v->type == TQ_VAL_ARRAY && v->elem_type == TQ_VAL_STRING) {
            for (uint64_t k = 0; k < v->count; k++) {
                uint64_t len;
                const char *s = tq_gguf_array_str(g, v, k, &len);
                EXPECT(s != NULL, "string %llu of '%s' missing", (unsigned long long)k,
                       tq_gguf_kv_key(g, i));
                if (len) h += (uint8_t)s[len - 1];
            }
        } else if (v->type == TQ_VAL_ARRAY && v->count) {
            h += ((const uint8_t *)v->elems)[0];
        }
    }
    for (int64_t i = 0; i < tq_gguf_n_tensors(g); i++) {
        const tq_tensor *t = tq_gguf_tensor(g, i);
        size_t nbytes = t->nb[3] * (size_t)t->ne[3];
        h += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[nbytes - 1];
        EXPECT(tq_gguf_find_tensor(g, t->name) == t, "tensor '%s' not found by name", t->name);
    }
    return h;
}

START_TEST(random_corruption) {
    uint64_t end;
    char *src = write_small_file("fuzz-src.gguf", &end);
    size_t n;
    uint8_t *whole = (uint8_t *)tq_test_read_file(src, &n);
    uint8_t *copy = malloc(n);
    char *path = tq_test_tmp_path("fuzz.gguf");
    uint64_t rng = 0x2545F4914F6CDD1DULL;
    int accepted = 0, rejected = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(copy, whole, n);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t at = (size_t)(rng % n);
            /* Mostly small integers and 0xff runs: the values that turn
             * lengths and counts absurd. */
            static const uint8_t vals[] = {0x00, 0x01, 0x02, 0x05, 0x7f, 0x80, 0xff, 0x40};
            copy[at] = (rng >> 32) % 3 == 0 ? (uint8_t)(rng >> 40) : vals[(rng >> 48) % 8];
        }
        FILE *f = fopen(path, "wb");
        fwrite(copy, 1, n, f);
        fclose(f);
        tq_gguf *g;
        tq_error err;
        if (tq_gguf_open(path, &g, &err) == TQ_OK) {
            accepted++;
            touch_everything(g);
            tq_gguf_close(g);
        } else {
            rejected++;
            ck_assert_msg(strncmp(err.message, path, strlen(path)) == 0, "%s", err.message);
        }
    }
    ck_assert_int_gt(rejected, 100); /* the corruption does bite */
    ck_assert_int_gt(accepted, 0);   /* and data bytes are not validated */
    free(path);
    free(copy);
    free(whole);
    free(src);
}
END_TEST

/* ---- accessors on a hand-built file ------------------------------------- */

START_TEST(getters_and_types) {
    bytes b = {0};
    b_hdr(&b, 2, 0, 9); /* v2: same layout as v3 */
    b_kv_u32(&b, "u32", 4000000000u);
    b_str(&b, "i8");
    b_u32(&b, TQ_VAL_I8);
    b_u8(&b, 0xfe); /* -2 */
    b_str(&b, "u16");
    b_u32(&b, TQ_VAL_U16);
    b_u8(&b, 0x34);
    b_u8(&b, 0x12);
    b_str(&b, "i64");
    b_u32(&b, TQ_VAL_I64);
    b_u64(&b, (uint64_t)INT64_C(-5000000000));
    b_str(&b, "u64big");
    b_u32(&b, TQ_VAL_U64);
    b_u64(&b, UINT64_MAX);
    b_str(&b, "f64");
    b_u32(&b, TQ_VAL_F64);
    double d = 0.1;
    uint64_t db;
    memcpy(&db, &d, 8);
    b_u64(&b, db);
    b_str(&b, "yes");
    b_u32(&b, TQ_VAL_BOOL);
    b_u8(&b, 1);
    b_kv_str(&b, "name", "hello");
    b_str(&b, "words");
    b_u32(&b, TQ_VAL_ARRAY);
    b_u32(&b, TQ_VAL_STRING);
    b_u64(&b, 3);
    b_str(&b, "x");
    b_str(&b, "");
    b_str(&b, "zz\n");
    char *path = save("getters.gguf", b.p, b.n);
    free(b.p);

    tq_gguf *g;
    tq_error err;
    ck_assert_msg(tq_gguf_open(path, &g, &err) == TQ_OK, "%s", err.message);
    ck_assert_uint_eq(tq_gguf_version(g), 2);
    ck_assert_uint_eq(tq_gguf_alignment(g), 32);
    ck_assert_int_eq(tq_gguf_n_kv(g), 9);
    ck_assert_int_eq(tq_gguf_n_tensors(g), 0);
    ck_assert_str_eq(tq_gguf_kv_key(g, 3), "i64");
    ck_assert_ptr_null(tq_gguf_kv_key(g, 9));
    ck_assert_ptr_null(tq_gguf_kv_value(g, -1));

    uint32_t u;
    int64_t i;
    float f;
    int yes;
    const char *s;
    ck_assert_int_eq(tq_gguf_get_u32(g, "u32", &u, &err), TQ_OK);
    ck_assert_uint_eq(u, 4000000000u);
    ck_assert_int_eq(tq_gguf_get_u32(g, "u16", &u, &err), TQ_OK);
    ck_assert_uint_eq(u, 0x1234);
    ck_assert_int_eq(tq_gguf_get_u32(g, "i8", &u, &err), TQ_ERR_FORMAT); /* -2 does not fit */
    ck_assert_ptr_nonnull(strstr(err.message, "'i8'"));
    ck_assert_int_eq(tq_gguf_get_i64(g, "i8", &i, &err), TQ_OK);
    ck_assert_int_eq(i, -2);
    ck_assert_int_eq(tq_gguf_get_i64(g, "i64", &i, &err), TQ_OK);
    ck_assert_int_eq(i, INT64_C(-5000000000));
    ck_assert_int_eq(tq_gguf_get_i64(g, "u64big", &i, &err), TQ_ERR_FORMAT);
    ck_assert_int_eq(tq_gguf_get_u32(g, "i64", &u, &err), TQ_ERR_FORMAT);
    ck_assert_int_eq(tq_gguf_get_f32(g, "f64", &f, &err), TQ_OK);
    ck_assert_float_eq(f, 0.1f);
    ck_assert_int_eq(tq_gguf_get_bool(g, "yes", &yes, &err), TQ_OK);
    ck_assert_int_eq(yes, 1);
    ck_assert_int_eq(tq_gguf_get_str(g, "name", &s, &err), TQ_OK);
    ck_assert_str_eq(s, "hello");
    /* Wrong types name the key and both types. */
    ck_assert_int_eq(tq_gguf_get_str(g, "u32", &s, &err), TQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "'u32' has type u32, expected string"));
    ck_assert_int_eq(tq_gguf_get_bool(g, "name", &yes, &err), TQ_ERR_FORMAT);
    ck_assert_int_eq(tq_gguf_get_f32(g, "u32", &f, &err), TQ_ERR_FORMAT);
    ck_assert_int_eq(tq_gguf_get_u32(g, "words", &u, &err), TQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "array"));
    ck_assert_int_eq(tq_gguf_get_u32(g, "absent", &u, &err), TQ_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(err.message, "'absent'"));
    ck_assert_ptr_null(tq_gguf_find(g, "absent"));

    /* String arrays, through the original value and through a copy. */
    const tq_value *w = tq_gguf_find(g, "words");
    ck_assert_int_eq(w->type, TQ_VAL_ARRAY);
    ck_assert_int_eq(w->elem_type, TQ_VAL_STRING);
    ck_assert_uint_eq(w->count, 3);
    tq_value copy = *w;
    static const char *const want[] = {"x", "", "zz\n"};
    for (uint64_t k = 0; k < 3; k++) {
        uint64_t len;
        const char *e = tq_gguf_array_str(g, &copy, k, &len);
        ck_assert_uint_eq(len, strlen(want[k]));
        ck_assert_int_eq(memcmp(e, want[k], len), 0);
    }
    uint64_t len = 99;
    ck_assert_ptr_null(tq_gguf_array_str(g, w, 3, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(tq_gguf_array_str(g, tq_gguf_find(g, "name"), 0, &len));

    /* The model-source view answers the same. */
    const tq_model_source *src = tq_gguf_source(g);
    ck_assert_str_eq(src->path, path);
    tq_value v;
    ck_assert_int_eq(src->meta(src, "words", &v), TQ_OK);
    ck_assert_ptr_eq(src->array_str(src, &v, 2, &len), tq_gguf_array_str(g, w, 2, NULL));
    ck_assert_int_eq(src->meta(src, "nope", &v), TQ_ERR_NOT_FOUND);
    ck_assert_int_eq(src->meta(src, "f64", &v), TQ_OK);
    ck_assert_int_eq(v.type, TQ_VAL_F64);
    ck_assert(v.num.f == 0.1);
    ck_assert_ptr_null(src->tensor(src, "anything"));

    ck_assert_str_eq(tq_gguf_value_type_name(TQ_VAL_STRING), "string");
    ck_assert_str_eq(tq_gguf_value_type_name((tq_value_type)99), "?");
    tq_gguf_close(g);
    free(path);
}
END_TEST

/* ---- real models -------------------------------------------------------- */

static const char *const model_files[] = {
    "models/tm30m-llama-f16.gguf", "models/tm30m-phi3-longrope-f16.gguf",
    "models/stories260K.gguf",     "models/stories260K-phi3.gguf",
    "models/ggml-vocab-phi-3.gguf", "models/ggml-vocab-llama-spm.gguf",
};

static uint64_t read_u64_le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

START_TEST(real_model_structure) {
    char *path = tq_test_shared_path(model_files[_i]);
    tq_gguf *g;
    tq_error err;
    ck_assert_msg(tq_gguf_open(path, &g, &err) == TQ_OK, "%s", err.message);
    ck_assert_uint_eq(tq_gguf_version(g), 3);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(tq_gguf_file_size(g), (uint64_t)st.st_size);
    uint64_t a = tq_gguf_alignment(g), data = tq_gguf_data_offset(g);
    ck_assert_uint_eq(data % a, 0);

    const char *arch;
    ck_assert_int_eq(tq_gguf_get_str(g, "general.architecture", &arch, &err), TQ_OK);
    ck_assert(strcmp(arch, "llama") == 0 || strcmp(arch, "phi3") == 0);
    char key[96];

    /* Tensors: packed in info order with ggml's padding, inside the file,
     * found by name, strides consistent with the type's block size. */
    int64_t nt = tq_gguf_n_tensors(g);
    uint64_t expect_off = 0;
    int max_layer = -1;
    for (int64_t i = 0; i < nt; i++) {
        const tq_tensor *t = tq_gguf_tensor(g, i);
        const tq_type_info *ti = tq_type_get(t->type);
        ck_assert_ptr_nonnull(ti);
        ck_assert_int_eq(t->op, TQ_OP_NONE);
        ck_assert_uint_eq(t->nb[0], (size_t)ti->block_bytes);
        ck_assert_uint_eq(t->nb[1], tq_type_row_bytes(t->type, t->ne[0]));
        ck_assert_uint_eq(t->nb[2], t->nb[1] * (size_t)t->ne[1]);
        ck_assert_uint_eq(t->nb[3], t->nb[2] * (size_t)t->ne[2]);
        uint64_t nbytes = t->nb[3] * (uint64_t)t->ne[3];
        uint64_t off = tq_gguf_tensor_offset(g, i);
        ck_assert_uint_eq(off, expect_off);
        expect_off = off + nbytes + (a - nbytes % a) % a;
        ck_assert_uint_le(data + off + nbytes, tq_gguf_file_size(g));
        ck_assert_ptr_eq((const uint8_t *)t->data - off,
                         (const uint8_t *)tq_gguf_tensor(g, 0)->data - tq_gguf_tensor_offset(g, 0));
        ck_assert_ptr_eq(tq_gguf_find_tensor(g, t->name), t);
        int layer;
        if (sscanf(t->name, "blk.%d.", &layer) == 1 && layer > max_layer) max_layer = layer;
    }
    if (nt > 0) {
        /* The file ends with the last tensor's padding. */
        ck_assert_uint_eq(tq_gguf_file_size(g), data + expect_off);

        /* Mapped bytes are the file's bytes: compare the last tensor with fread. */
        const tq_tensor *t = tq_gguf_tensor(g, nt - 1);
        size_t nbytes = t->nb[3] * (size_t)t->ne[3];
        uint8_t *buf = malloc(nbytes);
        FILE *f = fopen(path, "rb");
        ck_assert_int_eq(fseek(f, (long)(data + tq_gguf_tensor_offset(g, nt - 1)), SEEK_SET), 0);
        ck_assert_uint_eq(fread(buf, 1, nbytes, f), nbytes);
        fclose(f);
        ck_assert_int_eq(memcmp(buf, t->data, nbytes), 0);
        free(buf);

        uint32_t n_layer;
        snprintf(key, sizeof key, "%s.block_count", arch);
        ck_assert_int_eq(tq_gguf_get_u32(g, key, &n_layer, &err), TQ_OK);
        ck_assert_int_eq((int)n_layer, max_layer + 1);
        for (uint32_t l = 0; l < n_layer; l++) {
            snprintf(key, sizeof key, "blk.%u.attn_norm.weight", l);
            ck_assert_msg(tq_gguf_find_tensor(g, key) != NULL, "%s missing", key);
        }

        const tq_tensor *emb = tq_gguf_find_tensor(g, "token_embd.weight");
        ck_assert_ptr_nonnull(emb);
        uint32_t n_embd;
        snprintf(key, sizeof key, "%s.embedding_length", arch);
        ck_assert_int_eq(tq_gguf_get_u32(g, key, &n_embd, &err), TQ_OK);
        ck_assert_int_eq(emb->ne[0], n_embd);
        const tq_value *tokens = tq_gguf_find(g, "tokenizer.ggml.tokens");
        ck_assert_uint_eq(tokens->count, (uint64_t)emb->ne[1]);
    } else {
        ck_assert_uint_ge(data, tq_gguf_file_size(g)); /* vocab-only: no data at all */
    }

    /* Vocabulary arrays agree in length; the token strings tile the array
     * exactly, up to the next key's length field. */
    const tq_value *tokens = tq_gguf_find(g, "tokenizer.ggml.tokens");
    ck_assert_ptr_nonnull(tokens);
    ck_assert_int_eq(tokens->elem_type, TQ_VAL_STRING);
    const tq_value *scores = tq_gguf_find(g, "tokenizer.ggml.scores");
    const tq_value *types = tq_gguf_find(g, "tokenizer.ggml.token_type");
    if (scores) ck_assert_uint_eq(scores->count, tokens->count);
    ck_assert_uint_eq(types->count, tokens->count);
    const uint8_t *p = tokens->elems;
    for (uint64_t k = 0; k < tokens->count; k++) {
        uint64_t len;
        const char *s = tq_gguf_array_str(g, tokens, k, &len);
        EXPECT(read_u64_le(p) == len && s == (const char *)p + 8, "token %llu misplaced",
               (unsigned long long)k);
        p += 8 + len;
    }
    int64_t ti = -1;
    for (int64_t i = 0; i < tq_gguf_n_kv(g); i++)
        if (tq_gguf_kv_value(g, i) == tokens) ti = i;
    ck_assert_int_ge(ti, 0);
    if (ti + 1 < tq_gguf_n_kv(g)) {
        const char *next = tq_gguf_kv_key(g, ti + 1);
        ck_assert_uint_eq(read_u64_le(p), strlen(next));
        ck_assert_int_eq(memcmp(p + 8, next, strlen(next)), 0);
    }

    /* Every key finds itself, and the source view finds what the reader does. */
    const tq_model_source *src = tq_gguf_source(g);
    for (int64_t i = 0; i < tq_gguf_n_kv(g); i++) {
        const char *k = tq_gguf_kv_key(g, i);
        EXPECT(tq_gguf_find(g, k) == tq_gguf_kv_value(g, i), "find('%s')", k);
        tq_value v;
        EXPECT(src->meta(src, k, &v) == TQ_OK && memcmp(&v, tq_gguf_kv_value(g, i), sizeof v) == 0,
               "source meta('%s')", k);
    }
    tq_value tv;
    ck_assert_int_eq(src->meta(src, "tokenizer.ggml.tokens", &tv), TQ_OK);
    uint64_t len1, len2;
    ck_assert_ptr_eq(src->array_str(src, &tv, tv.count - 1, &len1),
                     tq_gguf_array_str(g, tokens, tokens->count - 1, &len2));
    ck_assert_uint_eq(len1, len2);
    for (int64_t i = 0; i < nt; i++)
        ck_assert_ptr_eq(src->tensor(src, tq_gguf_tensor(g, i)->name), tq_gguf_tensor(g, i));
    ck_assert_ptr_null(src->tensor(src, "no.such.tensor"));

    touch_everything(g);
    tq_gguf_close(g);
    free(path);
}
END_TEST

/* tq_gguf_copy_weights: every tensor's bytes equal the file's, now at a
 * different address, the relative layout kept, metadata untouched; a
 * second call is a no-op. */
START_TEST(weights_copy) {
    char *path = tq_test_data_path("stories260K.gguf");
    tq_gguf *g;
    tq_error err;
    ck_assert_msg(tq_gguf_open(path, &g, &err) == TQ_OK, "%s", err.message);
    size_t len;
    char *file = tq_test_read_file(path, &len);
    ck_assert_ptr_nonnull(file);
    const int64_t nt = tq_gguf_n_tensors(g);
    ck_assert_int_gt(nt, 0);
    const uint8_t *before = tq_gguf_tensor(g, 0)->data;
    int copied = -1;
    ck_assert_msg(tq_gguf_copy_weights(g, &copied, &err) == TQ_OK, "%s", err.message);
    ck_assert_int_eq(copied, 1);
    const uint8_t *base = tq_gguf_tensor(g, 0)->data;
    ck_assert_ptr_ne(base, before);
    ck_assert_uint_eq((uintptr_t)base % (2u << 20), 0); /* starts a 2 MB page */
    for (int64_t i = 0; i < nt; i++) {
        const tq_tensor *t = tq_gguf_tensor(g, i);
        const uint64_t off = tq_gguf_tensor_offset(g, i), nbytes = t->nb[3] * (uint64_t)t->ne[3];
        ck_assert_ptr_eq((const uint8_t *)t->data, base + off);
        ck_assert_msg(memcmp(t->data, file + tq_gguf_data_offset(g) + off, nbytes) == 0,
                      "tensor %s differs from the file after the copy", t->name);
    }
    const char *arch;
    ck_assert_int_eq(tq_gguf_get_str(g, "general.architecture", &arch, &err), TQ_OK);
    ck_assert_str_eq(arch, "llama");
    ck_assert_int_eq(tq_gguf_copy_weights(g, &copied, &err), TQ_OK);
    ck_assert_int_eq(copied, 0);
    ck_assert_ptr_eq(tq_gguf_tensor(g, 0)->data, base);
    tq_gguf_close(g);
    free(file);
    free(path);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("bad_input");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, bad_file, 0, N_BAD_CASES);
    tcase_add_test(tc, missing_and_not_regular);
    tcase_add_test(tc, every_prefix_fails);
    tcase_add_test(tc, random_corruption);
    tcase_add_test(tc, getters_and_types);
    tcase_add_test(tc, weights_copy);
    suite_add_tcase(s, tc);

    /* Without the shared models the tests above still run; the suite then
     * reports "skipped" only if they passed. */
    int have_shared = tq_test_shared_dir() != NULL;
    if (have_shared) {
        TCase *tm = tcase_create("models");
        tcase_set_timeout(tm, 300);
        tcase_add_loop_test(tm, real_model_structure, 0,
                            (int)(sizeof model_files / sizeof model_files[0]));
        suite_add_tcase(s, tm);
    }
    int rc = tq_test_run(s);
    return rc != 0 ? rc : have_shared ? 0 : TQ_TEST_SKIP;
}
