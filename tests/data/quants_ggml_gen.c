/* quants_ggml_gen.c — writes quants_ggml.bin, the reference data of
 * test_quants.c's "ggml" case, from ggml's own scalar code. Not built by
 * meson: it needs a ggml checkout (made with ggml-org/ggml d99724f2b141,
 * August 2025). Build and run from a scratch directory:
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
 * File layout (little-endian): "TQQGGML1", u32 record count, then records
 *   u32 kind (0 = encode, 1 = dot), i32 weight type, u32 n, and
 *   kind 0: f32 x[n], blocks of x encoded by quantize_row_<t>_ref,
 *           f32 decoded[n] (dequantize_row_<t>; zeros for q8_1, which has
 *           no decoder in ggml)
 *   kind 1: i32 activation type, f32 w[n], f32 a[n], weight blocks
 *           (quantize_row_<t>_ref(w)), activation blocks
 *           (quantize_row_<act>_ref(a)), f32 ggml_vec_dot_<t>_<act>. */
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

static uint64_t state = 20250821;
static uint64_t rnd(void) {
    uint64_t z = (state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}
static double uni(void) { return ((double)(rnd() >> 11) + 0.5) * 0x1p-53; }
static float nrm(void) { return (float)(sqrt(-2 * log(uni())) * cos(6.283185307179586 * uni())); }

/* A different mix of values in every 256-element stretch. */
static void fill(float *x, int n) {
    for (int i = 0; i < n; i++) {
        switch ((i / 256 + (int)(rnd() % 2)) % 6) {
        case 0: x[i] = nrm(); break;
        case 1: x[i] = rnd() % 61 == 0 ? 40 * nrm() : 0.05f * nrm(); break;
        case 2: x[i] = (float)(0.5 + uni()); break;
        case 3: x[i] = rnd() % 3 == 0 ? nrm() : 0.0f; break;
        case 4: x[i] = (float)((int)(rnd() % 9) - 4); break;
        default: x[i] = 1e-3f * nrm(); break;
        }
    }
}

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
    enum { ROWS = 2, N = 1536 };
    static float x[N], y[N], a[N];
    static uint8_t blk[N * 2], ablk[N * 2];
    FILE *f = fopen(argv[1], "wb");
    if (!f) return 1;
    fwrite("TQQGGML1", 1, 8, f);
    put_u32(f, (uint32_t)(NT * ROWS + ND * 3));
    for (int k = 0; k < NT; k++) {
        for (int r = 0; r < ROWS; r++) {
            fill(x, N);
            T[k].enc(x, blk, N);
            memset(y, 0, sizeof y);
            if (T[k].dec) T[k].dec(blk, y, N);
            put_u32(f, 0);
            put_u32(f, (uint32_t)T[k].type);
            put_u32(f, N);
            fwrite(x, 4, N, f);
            fwrite(blk, 1, (size_t)(N / T[k].elems * T[k].bytes), f);
            fwrite(y, 4, N, f);
        }
    }
    const int sizes[3] = {256, 512, 1536};
    for (int k = 0; k < ND; k++) {
        const int w = find(D[k].w), ac = find(D[k].a);
        for (int r = 0; r < 3; r++) {
            const int n = sizes[r];
            fill(x, n);
            fill(a, n);
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
    return fclose(f) == 0 ? 0 : 1;
}
