/* quants_ggml_gen.c — writes quants_ggml.bin, the reference data of
 * test_quants.c's "ggml" case, from ggml's own scalar code. Not built by
 * meson: it needs a ggml checkout (the committed file was made with
 * ggml-org/ggml at d99724f2b141). Build and run from a scratch directory:
 *
 *   G=/path/to/ggml
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I$G/include -I$G/src -c $G/src/ggml-quants.c
 *   cc -O2 -std=c11 -D_GNU_SOURCE -DGGML_CPU_GENERIC -I$G/include -I$G/src \
 *      -I$G/src/ggml-cpu -c $G/src/ggml-cpu/quants.c
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I$G/include -I$G/src \
 *      quants_ggml_gen.c ggml-quants.o quants.o -lm -o gen
 *   ./gen quants_ggml.bin
 *
 * -std=c11 matters: it turns off FMA contraction, which would change the
 * last bits of ggml's (and our) float expressions.
 *
 * File layout (little-endian): "TQQGGML2", u32 record count, then records
 * starting u32 kind, i32 type (the weight type for dots), u32 n:
 *   kind 0: f32 x[n], blocks of x encoded by quantize_row_<t>_ref,
 *           f32 decoded[n] (dequantize_row_<t>; zeros for q8_1, which has
 *           no decoder in ggml)
 *   kind 1: i32 activation type, f32 w[n], f32 a[n], weight blocks
 *           (quantize_row_<t>_ref(w)), activation blocks
 *           (quantize_row_<act>_ref(a)), f32 ggml_vec_dot_<t>_<act>
 * and, for rare cases (a scale search choosing differently in one group in
 * a few thousand) that a few stored rows would miss, digests over many rows
 * the test regenerates (g_row below, from the seed; FNV-1a 64):
 *   kind 2: u32 rows (n = row length), u64 seed, u64 hash of the encoded
 *           rows, u64 hash of their decoded values (0 for q8_1)
 *   kind 3: u32 rows, u64 seed, i32 activation type, u64 hash of the
 *           vec_dot result of each row (weights: g_row r, then activations:
 *           g_row r on even rows — same signs, so large block sums — and
 *           r + 2 on odd rows). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu/quants.h"
#include "ggml-quants.h"

/* What ggml's objects need from the rest of ggml. */
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d %s\n", file, line, fmt);
    abort();
}
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void)type; (void)ne; abort(); }
size_t ggml_type_size(enum ggml_type type) { (void)type; abort(); }
const char *ggml_type_name(enum ggml_type type) { (void)type; abort(); }
float ggml_table_f32_f16[1 << 16]; /* filled in main: exact half -> float */

/* Test data, reproduced exactly by test_quants.c (keep the two copies the
 * same): an integer PRNG, and only exact or correctly rounded float
 * operations, each sequenced, so any IEEE machine gets the same values. */
static uint64_t g_state;

static uint64_t g_next(void) {
    uint64_t z = (g_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static float g_uniform(void) { return (float)(g_next() >> 40) * 0x1p-24f; }

static float g_bell(void) {
    const float a = g_uniform(), b = g_uniform(), c = g_uniform(), d = g_uniform();
    return (((a + b) + c) + d - 2.0f) * 1.7f;
}

/* Row r of n values: each 256-stretch has its own kind of data. */
static void g_row(float *x, int n, int r) {
    for (int i = 0; i < n; i++) {
        switch ((i / 256 + r) % 7) {
        case 0: x[i] = g_bell(); break;
        case 1: x[i] = g_next() % 61 == 0 ? 40.0f * g_bell() : 0.05f * g_bell(); break;
        case 2: x[i] = 0.5f + g_uniform(); break;
        case 3: x[i] = g_next() % 3 == 0 ? g_bell() : 0.0f; break;
        case 4: x[i] = (float)((int)(g_next() % 9) - 4); break;
        case 5: x[i] = 1e-3f * g_bell(); break;
        default: x[i] = -3.0f - 200.0f * g_uniform(); break;
        }
    }
}

/* FNV-1a, 64 bits. */
static uint64_t g_hash(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3u;
    return h;
}
#define G_HASH_INIT 0xCBF29CE484222325u

typedef void (*enc_fn)(const float *, void *, int64_t);
typedef void (*dec_fn)(const void *, float *, int64_t);
typedef void (*dot_fn)(int, float *, size_t, const void *, size_t, const void *, size_t, int);

static const struct {
    int type, elems, bytes;
    enc_fn enc;
    dec_fn dec;
} T[] = {
    {GGML_TYPE_Q4_0, 32, sizeof(block_q4_0), (enc_fn)quantize_row_q4_0_ref, (dec_fn)dequantize_row_q4_0},
    {GGML_TYPE_Q4_1, 32, sizeof(block_q4_1), (enc_fn)quantize_row_q4_1_ref, (dec_fn)dequantize_row_q4_1},
    {GGML_TYPE_Q5_0, 32, sizeof(block_q5_0), (enc_fn)quantize_row_q5_0_ref, (dec_fn)dequantize_row_q5_0},
    {GGML_TYPE_Q5_1, 32, sizeof(block_q5_1), (enc_fn)quantize_row_q5_1_ref, (dec_fn)dequantize_row_q5_1},
    {GGML_TYPE_Q8_0, 32, sizeof(block_q8_0), (enc_fn)quantize_row_q8_0_ref, (dec_fn)dequantize_row_q8_0},
    {GGML_TYPE_Q8_1, 32, sizeof(block_q8_1), (enc_fn)quantize_row_q8_1_ref, NULL},
    {GGML_TYPE_Q2_K, 256, sizeof(block_q2_K), (enc_fn)quantize_row_q2_K_ref, (dec_fn)dequantize_row_q2_K},
    {GGML_TYPE_Q3_K, 256, sizeof(block_q3_K), (enc_fn)quantize_row_q3_K_ref, (dec_fn)dequantize_row_q3_K},
    {GGML_TYPE_Q4_K, 256, sizeof(block_q4_K), (enc_fn)quantize_row_q4_K_ref, (dec_fn)dequantize_row_q4_K},
    {GGML_TYPE_Q5_K, 256, sizeof(block_q5_K), (enc_fn)quantize_row_q5_K_ref, (dec_fn)dequantize_row_q5_K},
    {GGML_TYPE_Q6_K, 256, sizeof(block_q6_K), (enc_fn)quantize_row_q6_K_ref, (dec_fn)dequantize_row_q6_K},
    {GGML_TYPE_Q8_K, 256, sizeof(block_q8_K), (enc_fn)quantize_row_q8_K_ref, (dec_fn)dequantize_row_q8_K},
};

static const struct {
    int w, a;
    dot_fn dot;
} D[] = {
    {GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, ggml_vec_dot_q4_0_q8_0}, {GGML_TYPE_Q4_1, GGML_TYPE_Q8_1, ggml_vec_dot_q4_1_q8_1},
    {GGML_TYPE_Q5_0, GGML_TYPE_Q8_0, ggml_vec_dot_q5_0_q8_0}, {GGML_TYPE_Q5_1, GGML_TYPE_Q8_1, ggml_vec_dot_q5_1_q8_1},
    {GGML_TYPE_Q8_0, GGML_TYPE_Q8_0, ggml_vec_dot_q8_0_q8_0}, {GGML_TYPE_Q2_K, GGML_TYPE_Q8_K, ggml_vec_dot_q2_K_q8_K},
    {GGML_TYPE_Q3_K, GGML_TYPE_Q8_K, ggml_vec_dot_q3_K_q8_K}, {GGML_TYPE_Q4_K, GGML_TYPE_Q8_K, ggml_vec_dot_q4_K_q8_K},
    {GGML_TYPE_Q5_K, GGML_TYPE_Q8_K, ggml_vec_dot_q5_K_q8_K}, {GGML_TYPE_Q6_K, GGML_TYPE_Q8_K, ggml_vec_dot_q6_K_q8_K},
};

#define NT ((int)(sizeof T / sizeof T[0]))
#define ND ((int)(sizeof D / sizeof D[0]))

static int find(int type) {
    for (int k = 0; k < NT; k++)
        if (T[k].type == type) return k;
    abort();
}

static void put_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void put_u64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s out.bin\n", argv[0]);
        return 2;
    }
    for (int h = 0; h < 65536; h++) {
        const int e = (h >> 10) & 31, m = h & 1023;
        const double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
        ggml_table_f32_f16[h] = (float)((h & 0x8000) ? -v : v);
    }
    enum { N = 1792, BIG_ROWS = 256, BIG_N = 4096 };
    static float x[BIG_N], y[BIG_N], a[BIG_N];
    static uint8_t blk[BIG_N * 2], ablk[BIG_N * 2];
    FILE *f = fopen(argv[1], "wb");
    if (!f) return 1;
    fwrite("TQQGGML2", 1, 8, f);
    put_u32(f, (uint32_t)(2 * NT + 3 * ND));

    /* Explicit records: one row per type, to say where a difference is. */
    g_state = 1;
    for (int k = 0; k < NT; k++) {
        g_row(x, N, k);
        T[k].enc(x, blk, N);
        memset(y, 0, sizeof(float) * N);
        if (T[k].dec) T[k].dec(blk, y, N);
        put_u32(f, 0);
        put_u32(f, (uint32_t)T[k].type);
        put_u32(f, N);
        fwrite(x, 4, N, f);
        fwrite(blk, 1, (size_t)(N / T[k].elems * T[k].bytes), f);
        fwrite(y, 4, N, f);
    }
    const int sizes[2] = {256, N};
    for (int k = 0; k < ND; k++) {
        const int w = find(D[k].w), ac = find(D[k].a);
        for (int r = 0; r < 2; r++) {
            const int n = sizes[r];
            g_row(x, n, k + r);
            g_row(a, n, k + r + 3);
            T[w].enc(x, blk, n);
            T[ac].enc(a, ablk, n);
            float s;
            D[k].dot(n, &s, 0, blk, 0, ablk, 0, 1);
            put_u32(f, 1);
            put_u32(f, (uint32_t)D[k].w);
            put_u32(f, (uint32_t)n);
            put_u32(f, (uint32_t)D[k].a);
            fwrite(x, 4, (size_t)n, f);
            fwrite(a, 4, (size_t)n, f);
            fwrite(blk, 1, (size_t)(n / T[w].elems * T[w].bytes), f);
            fwrite(ablk, 1, (size_t)(n / T[ac].elems * T[ac].bytes), f);
            fwrite(&s, 4, 1, f);
        }
    }

    /* Digest records: BIG_ROWS rows of BIG_N regenerated by the test from
     * the seed; only hashes of ggml's outputs are stored. */
    for (int k = 0; k < NT; k++) {
        const uint64_t seed = 1000 + (uint64_t)k;
        uint64_t hb = G_HASH_INIT, hy = G_HASH_INIT;
        g_state = seed;
        for (int r = 0; r < BIG_ROWS; r++) {
            g_row(x, BIG_N, r);
            T[k].enc(x, blk, BIG_N);
            hb = g_hash(hb, blk, (size_t)(BIG_N / T[k].elems * T[k].bytes));
            if (T[k].dec) {
                T[k].dec(blk, y, BIG_N);
                hy = g_hash(hy, y, sizeof(float) * BIG_N);
            }
        }
        put_u32(f, 2);
        put_u32(f, (uint32_t)T[k].type);
        put_u32(f, BIG_N);
        put_u32(f, BIG_ROWS);
        put_u64(f, seed);
        put_u64(f, hb);
        put_u64(f, T[k].dec ? hy : 0);
    }
    for (int k = 0; k < ND; k++) {
        const int w = find(D[k].w), ac = find(D[k].a);
        const uint64_t seed = 2000 + (uint64_t)k;
        uint64_t h = G_HASH_INIT;
        g_state = seed;
        for (int r = 0; r < BIG_ROWS; r++) {
            g_row(x, BIG_N, r);
            g_row(a, BIG_N, r + 2 * (r & 1));
            T[w].enc(x, blk, BIG_N);
            T[ac].enc(a, ablk, BIG_N);
            float s;
            D[k].dot(BIG_N, &s, 0, blk, 0, ablk, 0, 1);
            h = g_hash(h, &s, 4);
        }
        put_u32(f, 3);
        put_u32(f, (uint32_t)D[k].w);
        put_u32(f, BIG_N);
        put_u32(f, BIG_ROWS);
        put_u64(f, seed);
        put_u32(f, (uint32_t)D[k].a);
        put_u64(f, h);
    }
    return fclose(f) == 0 ? 0 : 1;
}
