/* test_cli_errors.c — bad input to the tqrun executable: each case must end
 * with exactly one "tqrun: error: ..." line on stderr that names the file or
 * the option at fault, a non-zero exit status (not a signal), and nothing on
 * stdout. The broken GGUF files are derived at run time from a small valid
 * file written with the core's GGUF writer. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_gguf_writer.h"
#include "tq_test_util.h"

/* Distinctive values, so the byte editor can find the fields it breaks. */
#define NE0 0x2340
#define NE1 3

/* The contract every case checks; `needle` must occur in the error line. */
static void expect_one_error(const char *const *args, const char *needle) {
    tq_test_exec_result r = tq_test_exec_tqrun(args);
    ck_assert_msg(r.status > 0, "%s: exit status %d (want a non-zero exit, not a signal)", needle,
                  r.status);
    ck_assert_msg(r.out && r.out[0] == 0, "%s: stdout not empty: '%s'", needle, r.out);
    ck_assert_msg(r.err != NULL, "no stderr");
    int lines = 0;
    for (const char *p = r.err; *p; p++) lines += *p == '\n';
    ck_assert_msg(lines == 1, "%s: want one line on stderr, got %d:\n%s", needle, lines, r.err);
    ck_assert_msg(strncmp(r.err, "tqrun: error: ", 14) == 0, "stderr: %s", r.err);
    ck_assert_msg(strstr(r.err, needle) != NULL, "'%s' not in: %s", needle, r.err);
    tq_test_exec_free(&r);
}

/* A small valid llama-shaped GGUF (one tensor, no real model); returns its
 * bytes in *buf. */
static char *write_small(const char *name, const char *arch, size_t *len, char **buf) {
    char *path = tq_test_tmp_path(name);
    tq_gguf_writer *w = tq_gguf_writer_new(0);
    ck_assert(w != NULL);
    tq_gguf_writer_set_str(w, "general.architecture", arch);
    tq_gguf_writer_set_u32(w, "general.alignment", 32);
    static float data[NE0 * NE1];
    int64_t ne[2] = {NE0, NE1};
    ck_assert(tq_gguf_writer_add_tensor(w, "token_embd.weight", TQ_TYPE_F32, 2, ne, data, 1) == TQ_OK);
    tq_error err = {0};
    ck_assert_msg(tq_gguf_writer_write(w, path, &err) == TQ_OK, "%s", err.message);
    tq_gguf_writer_free(w);
    *buf = tq_test_read_file(path, len);
    ck_assert(*buf != NULL);
    return path;
}

static void write_bytes(const char *path, const char *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert(fwrite(buf, 1, len, f) == len);
    fclose(f);
}

/* Offset of the first int64 equal to v. */
static size_t find_i64(const char *buf, size_t len, int64_t v) {
    for (size_t i = 0; i + 8 <= len; i++)
        if (memcmp(buf + i, &v, 8) == 0) return i;
    ck_abort_msg("value not found");
    return 0;
}

/* Writes a copy of the small file with `n` bytes at `off` replaced, runs
 * tqrun -m on it and expects the file's name and `needle` in the error. */
static void broken_model(const char *name, size_t off, const void *bytes, size_t n, const char *needle) {
    size_t len;
    char *buf;
    char *src = write_small("small.gguf", "llama", &len, &buf);
    ck_assert(off + n <= len);
    memcpy(buf + off, bytes, n);
    char *path = tq_test_tmp_path(name);
    write_bytes(path, buf, len);
    const char *args[] = {"-m", path, "-p", "hi", "-n", "1", NULL};
    expect_one_error(args, path);
    expect_one_error(args, needle);
    free(path);
    free(src);
    free(buf);
}

START_TEST(missing_model_file) {
    const char *args[] = {"-m", "/nonexistent/model.gguf", NULL};
    expect_one_error(args, "/nonexistent/model.gguf");
}
END_TEST

START_TEST(truncated_gguf) {
    size_t len;
    char *buf;
    char *src = write_small("small.gguf", "llama", &len, &buf);
    char *path = tq_test_tmp_path("truncated.gguf");
    /* Cut inside the header, the metadata, the tensor table and the data. */
    const size_t cuts[] = {3, 20, 60, len / 2, len - 100};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(path, buf, cuts[i]);
        const char *args[] = {"-m", path, "-p", "hi", NULL};
        expect_one_error(args, path);
    }
    free(path);
    free(src);
    free(buf);
}
END_TEST

START_TEST(wrong_magic) { broken_model("magic.gguf", 0, "GGML", 4, "magic"); }
END_TEST

START_TEST(absurd_tensor_count) {
    const int64_t n = INT64_C(1) << 62;
    broken_model("count.gguf", 8, &n, 8, "tensor");
}
END_TEST

START_TEST(absurd_dimensions) {
    size_t len;
    char *buf;
    char *src = write_small("small.gguf", "llama", &len, &buf);
    const size_t off = find_i64(buf, len, NE0);
    free(src);
    free(buf);
    const int64_t huge = INT64_C(1) << 40; /* a multiple of every block size */
    broken_model("dims.gguf", off, &huge, 8, "token_embd.weight");
    const int64_t neg = -5;
    broken_model("negdims.gguf", off, &neg, 8, "token_embd.weight");
}
END_TEST

START_TEST(offset_past_end) {
    size_t len;
    char *buf;
    char *src = write_small("small.gguf", "llama", &len, &buf);
    /* tensor info: ne0, ne1 (i64), type (u32), offset (u64) */
    const size_t off = find_i64(buf, len, NE0) + 16 + 4;
    free(src);
    free(buf);
    const uint64_t past = UINT64_C(1) << 20;
    broken_model("offset.gguf", off, &past, 8, "token_embd.weight");
}
END_TEST

START_TEST(unknown_tensor_type) {
    size_t len;
    char *buf;
    char *src = write_small("small.gguf", "llama", &len, &buf);
    const size_t off = find_i64(buf, len, NE0) + 16;
    free(src);
    free(buf);
    const uint32_t type = 99;
    broken_model("type.gguf", off, &type, 4, "99");
}
END_TEST

START_TEST(unknown_architecture) {
    size_t len;
    char *buf;
    char *path = write_small("mamba.gguf", "mamba9", &len, &buf);
    const char *args[] = {"-m", path, "-p", "hi", NULL};
    expect_one_error(args, "unknown architecture 'mamba9'");
    expect_one_error(args, path);
    free(path);
    free(buf);
}
END_TEST

START_TEST(missing_plugin_dir) {
    const char *args[] = {"--plugin-dir", "/nonexistent/plugins", "--list-plugins", NULL};
    expect_one_error(args, "/nonexistent/plugins");
}
END_TEST

START_TEST(malformed_ini) {
    static const char *const bad[] = {
        "[runtime]\nbackend = ref\nthis line has no equals sign\n",
        "[runtime\nbackend = ref\n",
        "[runtime]\nbakend = ref\n",
        "[nosuchsection]\nx = 1\n",
        "[runtime]\nthreads = many\n",
    };
    char *path = tq_test_tmp_path("bad.ini");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_bytes(path, bad[i], strlen(bad[i]));
        const char *args[] = {"--config", path, "-p", "hi", NULL};
        expect_one_error(args, "bad.ini");
    }
    free(path);
}
END_TEST

START_TEST(bad_flags) {
    const char *a1[] = {"--no-such-flag", NULL};
    expect_one_error(a1, "--no-such-flag");
    const char *a2[] = {"-n", NULL};
    expect_one_error(a2, "-n");
    const char *a3[] = {"-t", "-3", "-p", "x", NULL};
    expect_one_error(a3, "threads");
}
END_TEST

/* The cases below run tests/data/stories260K.gguf, a llama model: without
 * the llama plugin (-Darch_llama=false) they are skipped, saying so. */
START_TEST(prompt_longer_than_context) {
    if (!tq_test_have_arch_llama("prompt_longer_than_context")) return;
    char *model = tq_test_data_path("stories260K.gguf");
    static char prompt[4000];
    for (int i = 0; i < 200; i++) strcat(prompt, "Once upon a time ");
    const char *args[] = {"-m", model, "-c", "32", "-p", prompt, NULL};
    expect_one_error(args, "context");
    free(model);
}
END_TEST

START_TEST(unknown_backend_and_kv) {
    if (!tq_test_have_arch_llama("unknown_backend_and_kv")) return;
    char *model = tq_test_data_path("stories260K.gguf");
    /* An unavailable backend in the chain is skipped with a warning (the
     * chain is a preference list), and generation goes on. */
    const char *a1[] = {"-m", model, "--backend", "warp9, ref", "-p", "x", "-n", "2", NULL};
    tq_test_exec_result r = tq_test_exec_tqrun(a1);
    ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
    ck_assert_msg(strstr(r.err, "warning") && strstr(r.err, "'warp9'"), "stderr: %s", r.err);
    tq_test_exec_free(&r);
    const char *a2[] = {"-m", model, "-ctk", "q13", "-ctv", "q13", "-p", "x", NULL};
    expect_one_error(a2, "q13");
    free(model);
}
END_TEST

START_TEST(good_run_still_works) {
    if (!tq_test_have_arch_llama("good_run_still_works")) return;
    /* The same harness on a valid run: proves the checks above can pass for
     * the right reason and not because tqrun always fails. */
    char *model = tq_test_data_path("stories260K.gguf");
    const char *args[] = {"-m", model, "-p", "Once upon a time", "-n", "8", "--temp", "0", NULL};
    tq_test_exec_result r = tq_test_exec_tqrun(args);
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(strncmp(r.out, "Once upon a time", 16) == 0, "stdout: %s", r.out);
    tq_test_exec_free(&r);
    free(model);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli_errors");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, missing_model_file);
    tcase_add_test(tc, truncated_gguf);
    tcase_add_test(tc, wrong_magic);
    tcase_add_test(tc, absurd_tensor_count);
    tcase_add_test(tc, absurd_dimensions);
    tcase_add_test(tc, offset_past_end);
    tcase_add_test(tc, unknown_tensor_type);
    tcase_add_test(tc, unknown_architecture);
    tcase_add_test(tc, missing_plugin_dir);
    tcase_add_test(tc, malformed_ini);
    tcase_add_test(tc, bad_flags);
    tcase_add_test(tc, prompt_longer_than_context);
    tcase_add_test(tc, unknown_backend_and_kv);
    tcase_add_test(tc, good_run_still_works);
    suite_add_tcase(s, tc);
    return tq_test_run(s);
}
