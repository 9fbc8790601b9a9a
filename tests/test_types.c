/* test_types.c — the type registry: the built-in table against the GGUF
 * format's own numbers (ggml type ids, names and block sizes from
 * ../shared/specs/gguf-llama-phi3.md §2.1), row size arithmetic, and the
 * rules for plugin-registered types. */
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tq_quants.h"
#include "tq_types.h"
#include "tq_test_util.h"

/* The format's facts, written down independently of the registry: ggml id,
 * ggml type_name, elements and bytes per block (spec §2.1), the size of the
 * matching struct in tq_quants.h (0 for the scalar types), and whether a
 * reference encoder is expected. */
static const struct {
    tq_type id;
    const char *name;
    int elems, bytes;
    size_t struct_size;
    int has_encoder;
} builtins[] = {
    {TQ_TYPE_F32, "f32", 1, 4, 0, 1},
    {TQ_TYPE_F16, "f16", 1, 2, 0, 1},
    {TQ_TYPE_Q4_0, "q4_0", 32, 18, sizeof(tq_block_q4_0), 1},
    {TQ_TYPE_Q4_1, "q4_1", 32, 20, sizeof(tq_block_q4_1), 1},
    {TQ_TYPE_Q5_0, "q5_0", 32, 22, sizeof(tq_block_q5_0), 1},
    {TQ_TYPE_Q5_1, "q5_1", 32, 24, sizeof(tq_block_q5_1), 1},
    {TQ_TYPE_Q8_0, "q8_0", 32, 34, sizeof(tq_block_q8_0), 1},
    {TQ_TYPE_Q8_1, "q8_1", 32, 36, sizeof(tq_block_q8_1), 1},
    {TQ_TYPE_Q2_K, "q2_K", 256, 84, sizeof(tq_block_q2_K), 1},
    {TQ_TYPE_Q3_K, "q3_K", 256, 110, sizeof(tq_block_q3_K), 1},
    {TQ_TYPE_Q4_K, "q4_K", 256, 144, sizeof(tq_block_q4_K), 1},
    {TQ_TYPE_Q5_K, "q5_K", 256, 176, sizeof(tq_block_q5_K), 1},
    {TQ_TYPE_Q6_K, "q6_K", 256, 210, sizeof(tq_block_q6_K), 1},
    {TQ_TYPE_Q8_K, "q8_K", 256, 292, sizeof(tq_block_q8_K), 1},
    {TQ_TYPE_I8, "i8", 1, 1, 0, 0},
    {TQ_TYPE_I16, "i16", 1, 2, 0, 0},
    {TQ_TYPE_I32, "i32", 1, 4, 0, 0},
    {TQ_TYPE_BF16, "bf16", 1, 2, 0, 1},
};
#define N_BUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

static void swap_case(const char *in, char *out) {
    for (; *in; in++, out++)
        *out = (*in >= 'a' && *in <= 'z') ? (char)(*in - 32)
             : (*in >= 'A' && *in <= 'Z') ? (char)(*in + 32) : *in;
    *out = '\0';
}

START_TEST(builtin_ids_names_and_sizes) {
    for (int k = 0; k < N_BUILTINS; k++) {
        const tq_type_info *t = tq_type_get(builtins[k].id);
        ck_assert_msg(t != NULL, "no info for %s", builtins[k].name);
        ck_assert_str_eq(t->name, builtins[k].name);
        ck_assert_str_eq(tq_type_name(builtins[k].id), builtins[k].name);
        ck_assert_int_eq(tq_type_by_name(builtins[k].name), builtins[k].id);
        ck_assert_int_eq(t->block_elems, builtins[k].elems);
        ck_assert_int_eq(t->block_bytes, builtins[k].bytes);
        ck_assert_uint_ge(t->size, sizeof(tq_type_info));
        ck_assert_msg(t->to_f32 != NULL, "%s has no decoder", t->name);
        ck_assert_msg((t->from_f32 != NULL) == builtins[k].has_encoder, "%s encoder", t->name);
        if (builtins[k].struct_size != 0)
            ck_assert_uint_eq(builtins[k].struct_size, (size_t)builtins[k].bytes);
        ck_assert_msg(tq_type_is_gguf_weight(builtins[k].id), "%s not a GGUF type", t->name);
    }
}
END_TEST

/* Field offsets, from the field order of spec §2.1 (halves are 2 bytes, no
 * padding anywhere): the structs are how decoders address the bytes. */
START_TEST(block_field_offsets) {
    ck_assert_uint_eq(offsetof(tq_block_q4_0, qs), 2);
    ck_assert_uint_eq(offsetof(tq_block_q4_1, m), 2);
    ck_assert_uint_eq(offsetof(tq_block_q4_1, qs), 4);
    ck_assert_uint_eq(offsetof(tq_block_q5_0, qh), 2);
    ck_assert_uint_eq(offsetof(tq_block_q5_0, qs), 6);
    ck_assert_uint_eq(offsetof(tq_block_q5_1, qh), 4);
    ck_assert_uint_eq(offsetof(tq_block_q5_1, qs), 8);
    ck_assert_uint_eq(offsetof(tq_block_q8_0, qs), 2);
    ck_assert_uint_eq(offsetof(tq_block_q8_1, s), 2);
    ck_assert_uint_eq(offsetof(tq_block_q8_1, qs), 4);
    ck_assert_uint_eq(offsetof(tq_block_q2_K, qs), 16);
    ck_assert_uint_eq(offsetof(tq_block_q2_K, d), 80);
    ck_assert_uint_eq(offsetof(tq_block_q2_K, dmin), 82);
    ck_assert_uint_eq(offsetof(tq_block_q3_K, qs), 32);
    ck_assert_uint_eq(offsetof(tq_block_q3_K, scales), 96);
    ck_assert_uint_eq(offsetof(tq_block_q3_K, d), 108);
    ck_assert_uint_eq(offsetof(tq_block_q4_K, dmin), 2);
    ck_assert_uint_eq(offsetof(tq_block_q4_K, scales), 4);
    ck_assert_uint_eq(offsetof(tq_block_q4_K, qs), 16);
    ck_assert_uint_eq(offsetof(tq_block_q5_K, scales), 4);
    ck_assert_uint_eq(offsetof(tq_block_q5_K, qh), 16);
    ck_assert_uint_eq(offsetof(tq_block_q5_K, qs), 48);
    ck_assert_uint_eq(offsetof(tq_block_q6_K, qh), 128);
    ck_assert_uint_eq(offsetof(tq_block_q6_K, scales), 192);
    ck_assert_uint_eq(offsetof(tq_block_q6_K, d), 208);
    ck_assert_uint_eq(offsetof(tq_block_q8_K, qs), 4);
    ck_assert_uint_eq(offsetof(tq_block_q8_K, bsums), 260);
}
END_TEST

START_TEST(names_are_case_insensitive) {
    char buf[16];
    for (int k = 0; k < N_BUILTINS; k++) {
        swap_case(builtins[k].name, buf);
        ck_assert_int_eq(tq_type_by_name(buf), builtins[k].id);
    }
    ck_assert_int_eq(tq_type_by_name("q4_k"), TQ_TYPE_Q4_K);
    ck_assert_int_eq(tq_type_by_name("Q6_K"), TQ_TYPE_Q6_K);
}
END_TEST

/* Every id that is not in the table: the holes of ggml's numbering (4, 5 were
 * q4_2/q4_3; 16.. are the IQ types we do not decode), negatives, and the
 * dynamic range before anything is registered. */
START_TEST(unknown_ids_and_names) {
    for (tq_type id = -3; id < 64; id++) {
        int known = 0;
        for (int k = 0; k < N_BUILTINS; k++) known |= builtins[k].id == id;
        if (known) continue;
        ck_assert_msg(tq_type_get(id) == NULL, "id %d should be unknown", (int)id);
        ck_assert_str_eq(tq_type_name(id), "?");
        ck_assert_int_eq(tq_type_is_gguf_weight(id), 0);
        ck_assert_uint_eq(tq_type_row_bytes(id, 256), 0);
    }
    ck_assert_ptr_null(tq_type_get(TQ_TYPE_DYNAMIC_BASE));
    ck_assert_ptr_null(tq_type_get(TQ_TYPE_INVALID));
    ck_assert_int_eq(tq_type_by_name("q4_2"), TQ_TYPE_INVALID);
    ck_assert_int_eq(tq_type_by_name(""), TQ_TYPE_INVALID);
    ck_assert_int_eq(tq_type_by_name("q4_0 "), TQ_TYPE_INVALID);
    ck_assert_int_eq(tq_type_by_name("q4_"), TQ_TYPE_INVALID);
    ck_assert_int_eq(tq_type_by_name(NULL), TQ_TYPE_INVALID);
}
END_TEST

START_TEST(row_bytes) {
    for (int k = 0; k < N_BUILTINS; k++) {
        const int e = builtins[k].elems, b = builtins[k].bytes;
        for (int64_t blocks = 0; blocks <= 40; blocks += 7) {
            ck_assert_uint_eq(tq_type_row_bytes(builtins[k].id, blocks * e), (size_t)(blocks * b));
            if (e > 1) {
                /* not a whole number of blocks */
                ck_assert_uint_eq(tq_type_row_bytes(builtins[k].id, blocks * e + 1), 0);
                ck_assert_uint_eq(tq_type_row_bytes(builtins[k].id, blocks * e + e - 1), 0);
            }
        }
        ck_assert_uint_eq(tq_type_row_bytes(builtins[k].id, -e), 0);
    }
    /* A typical weight row: 4096 q4_K elements = 16 blocks of 144 bytes. */
    ck_assert_uint_eq(tq_type_row_bytes(TQ_TYPE_Q4_K, 4096), 16 * 144);
    /* Sizes that do not fit in size_t are refused, not wrapped. */
    ck_assert_uint_eq(tq_type_row_bytes(TQ_TYPE_F32, INT64_MAX), 0);
}
END_TEST

/* The integer types decode by value (GGUF may carry them, e.g. as indices). */
START_TEST(integer_decoders) {
    const int8_t i8[4] = {-128, -1, 0, 127};
    const int16_t i16[4] = {-32768, -2, 3, 32767};
    const int32_t i32[4] = {INT32_MIN, -5, 7, 16777216};
    float out[4];
    tq_type_get(TQ_TYPE_I8)->to_f32(i8, out, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(out[i], (float)i8[i]);
    tq_type_get(TQ_TYPE_I16)->to_f32(i16, out, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(out[i], (float)i16[i]);
    tq_type_get(TQ_TYPE_I32)->to_f32(i32, out, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(out[i], (float)i32[i]);
}
END_TEST

/* ---- dynamic registration ---------------------------------------------- */

/* A toy 3-bytes-per-4-elements format: 6-bit unsigned values. */
static void toy_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t b = 0; b < n / 4; b++, s += 3, dst += 4) {
        const uint32_t v = (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16;
        for (int k = 0; k < 4; k++) dst[k] = (float)((v >> (6 * k)) & 63);
    }
}

static void toy_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t b = 0; b < n / 4; b++, d += 3, src += 4) {
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) v |= ((uint32_t)src[k] & 63) << (6 * k);
        d[0] = (uint8_t)v;
        d[1] = (uint8_t)(v >> 8);
        d[2] = (uint8_t)(v >> 16);
    }
}

static tq_type_info toy_info(const char *name) {
    return (tq_type_info){sizeof(tq_type_info), name, 4, 3, toy_to_f32, toy_from_f32};
}

static void expect_rejected(const tq_type_info *info, const char *why) {
    tq_error err = {0};
    tq_type id = 12345;
    tq_status st = tq_type_register(info, &id, &err);
    ck_assert_msg(st != TQ_OK, "registration should fail: %s", why);
    ck_assert_int_eq(err.code, st);
    ck_assert_msg(err.message[0] != '\0', "no message for: %s", why);
    ck_assert_int_eq(id, 12345);
}

START_TEST(register_dynamic_type) {
    tq_error err = {0};
    tq_type id = TQ_TYPE_INVALID;
    tq_type_info info = toy_info("test.toy6");
    ck_assert_int_eq(tq_type_register(&info, &id, &err), TQ_OK);
    ck_assert_int_ge(id, TQ_TYPE_DYNAMIC_BASE);

    const tq_type_info *t = tq_type_get(id);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->name, "test.toy6");
    ck_assert_int_eq(t->block_elems, 4);
    ck_assert_int_eq(t->block_bytes, 3);
    ck_assert(t->to_f32 == toy_to_f32);
    ck_assert(t->from_f32 == toy_from_f32);
    ck_assert_int_eq(tq_type_by_name("test.toy6"), id);
    ck_assert_int_eq(tq_type_by_name("TEST.TOY6"), id);
    ck_assert_str_eq(tq_type_name(id), "test.toy6");
    ck_assert_int_eq(tq_type_is_gguf_weight(id), 0);
    ck_assert_uint_eq(tq_type_row_bytes(id, 4096), 3072);
    ck_assert_uint_eq(tq_type_row_bytes(id, 6), 0);

    /* The registered codec is the one that runs. */
    const float x[8] = {1, 2, 3, 63, 0, 17, 42, 5};
    uint8_t packed[6];
    float y[8];
    t->from_f32(x, packed, 8);
    t->to_f32(packed, y, 8);
    for (int i = 0; i < 8; i++) ck_assert_float_eq(y[i], x[i]);

    /* Rejections, none of which may consume an id. */
    tq_type_info bad = toy_info("test.toy6");
    expect_rejected(&bad, "duplicate name");
    bad = toy_info("Test.Toy6");
    expect_rejected(&bad, "duplicate name, other case");
    bad = toy_info("Q4_0");
    expect_rejected(&bad, "name of a built-in type");
    bad = toy_info(NULL);
    expect_rejected(&bad, "NULL name");
    bad = toy_info("");
    expect_rejected(&bad, "empty name");
    bad = toy_info("test.nodec");
    bad.to_f32 = NULL;
    expect_rejected(&bad, "no to_f32");
    bad = toy_info("test.zero_elems");
    bad.block_elems = 0;
    expect_rejected(&bad, "zero block elements");
    bad = toy_info("test.neg_bytes");
    bad.block_bytes = -3;
    expect_rejected(&bad, "negative block bytes");
    bad = toy_info("test.zero_bytes");
    bad.block_bytes = 0;
    expect_rejected(&bad, "zero block bytes");
    bad = toy_info("test.small");
    bad.size = 8;
    expect_rejected(&bad, "struct too small for to_f32");
    expect_rejected(NULL, "NULL info");
    ck_assert_int_ne(tq_type_register(&info, NULL, &err), TQ_OK);

    tq_type id2 = TQ_TYPE_INVALID;
    tq_type_info info2 = toy_info("test.toy6b");
    info2.from_f32 = NULL;
    ck_assert_int_eq(tq_type_register(&info2, &id2, NULL), TQ_OK);
    ck_assert_int_eq(id2, id + 1);
    ck_assert(tq_type_get(id2)->from_f32 == NULL);
    ck_assert_ptr_null(tq_type_get(id2 + 1));
}
END_TEST

/* A plugin built against a shorter tq_type_info (no from_f32 yet) must be
 * accepted, and its type must read as having no encoder even though the
 * bytes after its struct are not NULL. */
START_TEST(register_older_struct) {
    tq_type_info info = toy_info("test.old");
    info.size = (uint32_t)offsetof(tq_type_info, from_f32);
    tq_type id;
    tq_error err;
    ck_assert_int_eq(tq_type_register(&info, &id, &err), TQ_OK);
    ck_assert(tq_type_get(id)->from_f32 == NULL);
    ck_assert(tq_type_get(id)->to_f32 == toy_to_f32);
}
END_TEST

/* The table is finite; filling it is an error, not a crash. */
START_TEST(registry_capacity) {
    static char names[2048][24];
    int ok = 0;
    tq_type first = TQ_TYPE_INVALID, id = TQ_TYPE_INVALID;
    tq_status st = TQ_OK;
    tq_error err = {0};
    for (int k = 0; k < 2048; k++) {
        snprintf(names[k], sizeof names[k], "test.fill%d", k);
        tq_type_info info = toy_info(names[k]);
        st = tq_type_register(&info, &id, &err);
        if (st != TQ_OK) break;
        if (ok == 0) first = id;
        ck_assert_int_eq(id, first + ok); /* ids are handed out in order */
        ok++;
    }
    ck_assert_int_eq(st, TQ_ERR_RANGE);
    ck_assert_int_ge(ok, 64);
    ck_assert_str_eq(tq_type_name(first + ok - 1), names[ok - 1]);
    ck_assert_ptr_null(tq_type_get(first + ok));
}
END_TEST

int main(void) {
    Suite *s = suite_create("types");
    TCase *tc = tcase_create("builtin");
    tcase_add_test(tc, builtin_ids_names_and_sizes);
    tcase_add_test(tc, block_field_offsets);
    tcase_add_test(tc, names_are_case_insensitive);
    tcase_add_test(tc, unknown_ids_and_names);
    tcase_add_test(tc, row_bytes);
    tcase_add_test(tc, integer_decoders);
    suite_add_tcase(s, tc);
    /* Registration changes process state; these come after the checks of
     * the untouched table so the suite also passes with CK_FORK=no. */
    TCase *dyn = tcase_create("dynamic");
    tcase_add_test(dyn, register_dynamic_type);
    tcase_add_test(dyn, register_older_struct);
    tcase_add_test(dyn, registry_capacity);
    suite_add_tcase(s, dyn);
    return tq_test_run(s);
}
