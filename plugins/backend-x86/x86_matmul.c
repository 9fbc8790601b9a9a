/* x86_matmul.c — MUL_MAT: dst[n_out, t] = W[n_in, n_out] . X[n_in, t].
 *
 * As in ggml and the ref backend, every activation column is first encoded
 * ONCE per node into the weight's vec_dot format (q8_0 for q4_0/q5_0/q8_0,
 * q8_1 for q4_1/q5_1, q8_K for the K-quants, f32 rounded through f16/bf16
 * for those weights, plain f32 for f32). The products are then integer dot
 * products per block (AVX2 maddubs, or AVX-512 VNNI dpbusd), scaled by the
 * block's two float scales and accumulated in float lanes.
 *
 * Tiling: one kernel call multiplies up to MR weight rows with up to NC = 4
 * activation columns, so each weight block is loaded and unpacked once per 4
 * columns (q4_0/q5_0/q8_0 full tiles also share each activation block over 2
 * rows). A thread owns a range of output rows; inside it, rows go in blocks
 * of ROW_BLOCK (which stay in L1/L2) against column blocks of COL_BLOCK
 * (whose encoded activations stay in L2). Float weights with several columns
 * take their own loop (mm_worker_float): each row block is widened to f32
 * once per column block and multiplied in 3 x 4 register tiles. Decoding
 * (t = 1) is the same loop with one column: a GEMV split over rows.
 *
 * The kernels' small per-row / per-column loops carry "GCC unroll" pragmas:
 * without them GCC at -O2 keeps the accumulator arrays in memory.
 *
 * Exactness: the integer sum of each block equals the scalar kernels' of
 * core/src/tq_quants*.c; only the float accumulation order differs (8 lanes
 * and FMA here), which the conformance test bounds. */
#include <stdatomic.h>

#include "x86_blocks.h"
#include "x86_internal.h"

#define NC 4          /* activation columns per kernel call            */
#define MR 2          /* weight rows per kernel call (float weights)   */
#define ROW_BLOCK 16
#define COL_BLOCK 64
#define FLOAT_ACT_BYTES (512 * 1024) /* float prefill: activations per column block */
#define I8_MIN_COLS 16 /* columns from which prefill uses the row-interleaved tiles
                          (x86_gemm_i8.c: q4_0/q5_0/q8_0, x86_gemm_k.c: q4_K/q5_K) */

/* nr (1..MR) weight rows w[0..nr) times nc (1..NC) encoded activation
 * columns a[0..nc); out[r * NC + c]. */
typedef void (*dot_fn)(int64_t n, const void *const *w, int nr, const void *const *a, int nc,
                       float *out);

/* Instantiates a one-row kernel for each column count so its column loops
 * unroll, and runs it row by row (the block kernels' work is dominated by
 * unpacking the weights, which rows cannot share). */
#define DOT_ENTRY(name, kernel, ...)                                                         \
    static void name(int64_t n, const void *const *w, int nr, const void *const *a, int nc, \
                     float *out) {                                                          \
        for (int r = 0; r < nr; r++) {                                                      \
            switch (nc) {                                                                   \
            case 4: kernel(n, w[r], a, 4, out + r * NC, __VA_ARGS__); break;                \
            case 3: kernel(n, w[r], a, 3, out + r * NC, __VA_ARGS__); break;                \
            case 2: kernel(n, w[r], a, 2, out + r * NC, __VA_ARGS__); break;                \
            default: kernel(n, w[r], a, 1, out + r * NC, __VA_ARGS__); break;               \
            }                                                                               \
        }                                                                                   \
    }

/* ---- float weights -------------------------------------------------------- */

enum { WF_F32, WF_F16, WF_BF16 };

X86_INLINE __m256 load_w8(const void *w, int64_t i, const int T) {
    if (T == WF_F32) return _mm256_loadu_ps((const float *)w + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (T == WF_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

X86_INLINE float load_w1(const void *w, int64_t i, const int T) {
    if (T == WF_F32) return ((const float *)w)[i];
    const uint16_t h = ((const uint16_t *)w)[i];
    if (T == WF_F16) return x86_f16_to_f32(h);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Activations are f32 (already rounded through f16/bf16 for those weights,
 * so every product is the one ggml forms). A register tile of nr <= 2 rows
 * x nc <= 2 columns, each output summed in two 8-lane FMA chains (even and
 * odd groups of 8) that are added before the horizontal sum: 8 accumulators
 * plus the loads fit the 16 AVX2 registers, each step loads 2 weight and 2
 * activation vectors per 4 FMAs, and every output's rounding is the same
 * whatever the tile (so a column's result does not depend on how many
 * columns the batch has). */
X86_INLINE void dot_float(int64_t n, const void *const *w, const int nr, const void *const *a,
                          const int nc, float *out, const int T) {
    __m256 acc[2][2], acc2[2][2];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) acc[r][c] = acc2[r][c] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 wv[2], wv2[2];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) wv[r] = load_w8(w[r], i, T), wv2[r] = load_w8(w[r], i + 8, T);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const __m256 av = _mm256_loadu_ps((const float *)a[c] + i);
            const __m256 av2 = _mm256_loadu_ps((const float *)a[c] + i + 8);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < nr; r++) {
                acc[r][c] = _mm256_fmadd_ps(wv[r], av, acc[r][c]);
                acc2[r][c] = _mm256_fmadd_ps(wv2[r], av2, acc2[r][c]);
            }
        }
    }
    for (; i + 8 <= n; i += 8)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) {
            const __m256 wv = load_w8(w[r], i, T);
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++)
                acc[r][c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps((const float *)a[c] + i), acc[r][c]);
        }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) out[r * NC + c] = x86_hsum(_mm256_add_ps(acc[r][c], acc2[r][c]));
    for (; i < n; i++)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) {
            const float wf = load_w1(w[r], i, T);
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++) out[r * NC + c] += wf * ((const float *)a[c])[i];
        }
}

/* The driver's nr x nc (up to MR x NC) as 2 x 2 tiles. */
#define FLOAT_ENTRY(name, T)                                                                 \
    static void name(int64_t n, const void *const *w, int nr, const void *const *a, int nc, \
                     float *out) {                                                          \
        for (int r = 0; r < nr; r += 2)                                                     \
            for (int c = 0; c < nc; c += 2) {                                               \
                const int tr = nr - r < 2 ? 1 : 2, tc = nc - c < 2 ? 1 : 2;                 \
                float *o = out + r * NC + c;                                                \
                if (tr == 2 && tc == 2) dot_float(n, w + r, 2, a + c, 2, o, T);             \
                else if (tr == 2) dot_float(n, w + r, 2, a + c, 1, o, T);                   \
                else if (tc == 2) dot_float(n, w + r, 1, a + c, 2, o, T);                   \
                else dot_float(n, w + r, 1, a + c, 1, o, T);                                \
            }                                                                               \
    }

FLOAT_ENTRY(dot_f32, WF_F32)
FLOAT_ENTRY(dot_f16, WF_F16)
FLOAT_ENTRY(dot_bf16, WF_BF16)

/* Prefill (many columns) with float weights: the driver converts a block of
 * FR_BLOCK weight rows to f32 once per column block (wbuf), then this kernel
 * multiplies FR <= 3 of those rows with FC <= 4 columns: 12 accumulators plus
 * 3 weight vectors fit the 16 AVX2 registers, so each step does 12 FMAs for 3
 * weight and 4 activation loads and no conversions. The two FMA chains of
 * dot_float (even and odd groups of 8) are computed in two passes, each chain
 * with exactly dot_float's sequence of operations, and combined as there: the
 * results are bit-identical to dot_float's whatever the tile. */
#define FR 3
#define FC 4
#define FR_BLOCK 12   /* weight rows converted at a time (a multiple of FR) */

/* One chain: groups of 8 at start, start + 16, ... below n16, then (even
 * chain only) the one group of 8 dot_float's tail loop adds. */
X86_INLINE void tile_chain(int64_t n, int64_t start, const float *const *w, const int nr,
                           const float *const *a, const int nc, __m256 acc[FR][FC]) {
    const int64_t n16 = n / 16 * 16;
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t i = start; i < n16; i += 16) {
        __m256 wv[FR];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) wv[r] = _mm256_loadu_ps(w[r] + i);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const __m256 av = _mm256_loadu_ps(a[c] + i);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < nr; r++) acc[r][c] = _mm256_fmadd_ps(wv[r], av, acc[r][c]);
        }
    }
    if (start == 0 && n16 + 8 <= n)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++)
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++)
                acc[r][c] = _mm256_fmadd_ps(_mm256_loadu_ps(w[r] + n16), _mm256_loadu_ps(a[c] + n16), acc[r][c]);
}

/* out[r * FC + c] for nr x nc f32 weight rows w and f32 columns a. */
X86_INLINE void tile_float(int64_t n, const float *const *w, const int nr, const float *const *a,
                           const int nc, float *out) {
    __m256 even[FR][FC], odd[FR][FC];
    tile_chain(n, 0, w, nr, a, nc, even);
    tile_chain(n, 8, w, nr, a, nc, odd);
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) out[r * FC + c] = x86_hsum(_mm256_add_ps(even[r][c], odd[r][c]));
    const int64_t n8 = n / 8 * 8;
    for (int64_t i = n8; i < n; i++)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) {
            const float wf = w[r][i];
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++) out[r * FC + c] += wf * a[c][i];
        }
}

#define TILE_CASE(R, C) \
    case (R) * 8 + (C): tile_float(n, w, R, a, C, out); break;

static void tile_float_any(int64_t n, const float *const *w, int nr, const float *const *a, int nc,
                           float *out) {
    switch (nr * 8 + nc) {
    TILE_CASE(3, 4) TILE_CASE(3, 3) TILE_CASE(3, 2) TILE_CASE(3, 1)
    TILE_CASE(2, 4) TILE_CASE(2, 3) TILE_CASE(2, 2) TILE_CASE(2, 1)
    TILE_CASE(1, 4) TILE_CASE(1, 3) TILE_CASE(1, 2)
    default: tile_float(n, w, 1, a, 1, out); break;
    }
}

/* Row w (n elements of float type T) as f32 in out. */
static void widen_row(const void *w, int64_t n, float *out, int T) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load_w8(w, i, T));
    for (; i < n; i++) out[i] = load_w1(w, i, T);
}

/* ---- 32-element block formats --------------------------------------------- */

enum { W_Q4_0, W_Q4_1, W_Q5_0, W_Q5_1, W_Q8_0 };

/* Byte j of the result = bit j of x, as 0x00 / 0xFF. */
X86_INLINE __m256i bits_to_bytes(uint32_t x) {
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                            0x0202020202020202, 0x0303030303030303);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    const __m256i bit = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    return _mm256_cmpeq_epi8(_mm256_or_si256(bytes, bit), _mm256_set1_epi64x(-1));
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles are elements 0..15, high
 * nibbles 16..31 (the layout of every 32-element 4/5-bit format). */
X86_INLINE __m256i nibbles(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

X86_INLINE uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Signed formats (q4_0, q5_0, q8_0) are unpacked to int8 and dotted with
 * q8_0 by the sign trick; unsigned ones (q4_1, q5_1) to uint8 dotted with
 * q8_1, plus the weight's min times the activation's d*sum(q). */
X86_INLINE void dot_32(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                       const int T) {
    const int has_min = T == W_Q4_1 || T == W_Q5_1;
    __m256 acc[NC];
    float accm[NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = 0.0f;
    }
    for (int64_t i = 0; i < n / X86_QK; i++) {
        __m256i q;
        float dw, mw = 0.0f;
        if (T == W_Q4_0) {
            const x86_block_q4_0 *b = (const x86_block_q4_0 *)w + i;
            q = _mm256_sub_epi8(nibbles(b->qs), _mm256_set1_epi8(8));
            dw = x86_f16_to_f32(b->d);
        } else if (T == W_Q4_1) {
            const x86_block_q4_1 *b = (const x86_block_q4_1 *)w + i;
            q = nibbles(b->qs);
            dw = x86_f16_to_f32(b->d);
            mw = x86_f16_to_f32(b->m);
        } else if (T == W_Q5_0) {
            const x86_block_q5_0 *b = (const x86_block_q5_0 *)w + i;
            /* (nibble | bit4) - 16: the nibble with 0xF0 or-ed in where bit 4 is clear */
            const __m256i hi = _mm256_andnot_si256(bits_to_bytes(load_u32(b->qh)), _mm256_set1_epi8((char)0xF0));
            q = _mm256_or_si256(nibbles(b->qs), hi);
            dw = x86_f16_to_f32(b->d);
        } else if (T == W_Q5_1) {
            const x86_block_q5_1 *b = (const x86_block_q5_1 *)w + i;
            const __m256i hi = _mm256_and_si256(bits_to_bytes(load_u32(b->qh)), _mm256_set1_epi8(0x10));
            q = _mm256_or_si256(nibbles(b->qs), hi);
            dw = x86_f16_to_f32(b->d);
            mw = x86_f16_to_f32(b->m);
        } else {
            const x86_block_q8_0 *b = (const x86_block_q8_0 *)w + i;
            q = _mm256_loadu_si256((const __m256i *)b->qs);
            dw = x86_f16_to_f32(b->d);
        }
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            __m256i p;
            float da;
            if (has_min) {
                const x86_block_q8_1 *y = (const x86_block_q8_1 *)a[c] + i;
                p = x86_dot_us8(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)y->qs));
                da = x86_f16_to_f32(y->d);
                accm[c] += mw * x86_f16_to_f32(y->s);
            } else {
                const x86_block_q8_0 *y = (const x86_block_q8_0 *)a[c] + i;
                p = x86_dot_s8(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)y->qs));
                da = x86_f16_to_f32(y->d);
            }
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * da), acc[c]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = x86_hsum(acc[c]) + accm[c];
}

/* Block i of a signed-format row as int8 (what dot_32 unpacks) and its scale. */
X86_INLINE __m256i unpack_signed(const void *w, int64_t i, const int T, float *dw) {
    if (T == W_Q4_0) {
        const x86_block_q4_0 *b = (const x86_block_q4_0 *)w + i;
        *dw = x86_f16_to_f32(b->d);
        return _mm256_sub_epi8(nibbles(b->qs), _mm256_set1_epi8(8));
    }
    if (T == W_Q5_0) {
        const x86_block_q5_0 *b = (const x86_block_q5_0 *)w + i;
        const __m256i hi = _mm256_andnot_si256(bits_to_bytes(load_u32(b->qh)), _mm256_set1_epi8((char)0xF0));
        *dw = x86_f16_to_f32(b->d);
        return _mm256_or_si256(nibbles(b->qs), hi);
    }
    const x86_block_q8_0 *b = (const x86_block_q8_0 *)w + i;
    *dw = x86_f16_to_f32(b->d);
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* Two rows of a signed format (q4_0, q5_0, q8_0) times NC q8_0 columns: each
 * activation block and its scale are loaded once for both rows, and the block
 * scale dw * da is formed as a vector product of two broadcasts (every lane
 * the same rounded product dot_32 broadcasts) rather than a scalar product
 * broadcast per pair, which keeps the shuffle port free. Every output's
 * operations are dot_32's, so the results are bit-identical. */
X86_INLINE void dot_32_2x4(int64_t n, const void *const *w, const void *const *a, float *out,
                           const int T) {
    __m256 acc[2][NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < NC; c++) acc[0][c] = acc[1][c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / X86_QK; i++) {
        float dw0, dw1;
        const __m256i q0 = unpack_signed(w[0], i, T, &dw0), q1 = unpack_signed(w[1], i, T, &dw1);
        const x86_block_q8_0 *y[NC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < NC; c++) y[c] = (const x86_block_q8_0 *)a[c] + i;
        const __m256 dwv0 = _mm256_set1_ps(dw0), dwv1 = _mm256_set1_ps(dw1);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < NC; c++) {
            const __m256 dav = _mm256_set1_ps(x86_f16_to_f32(y[c]->d));
            const __m256i yq = _mm256_loadu_si256((const __m256i *)y[c]->qs);
            const __m256i p0 = x86_dot_s8(_mm256_setzero_si256(), q0, yq);
            const __m256i p1 = x86_dot_s8(_mm256_setzero_si256(), q1, yq);
            acc[0][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_mul_ps(dwv0, dav), acc[0][c]);
            acc[1][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_mul_ps(dwv1, dav), acc[1][c]);
        }
    }
    /* + 0.0f: dot_32 adds its (zero) min term, which turns -0 into +0. */
    _Pragma("GCC unroll 4")
    for (int c = 0; c < NC; c++) {
        out[c] = x86_hsum(acc[0][c]) + 0.0f;
        out[NC + c] = x86_hsum(acc[1][c]) + 0.0f;
    }
}

/* Full 2 x NC tiles through dot_32_2x4, edges row by row as DOT_ENTRY. */
#define DOT_ENTRY_SIGNED(name, T)                                                            \
    DOT_ENTRY(name##_rows, dot_32, T)                                                        \
    static void name(int64_t n, const void *const *w, int nr, const void *const *a, int nc, \
                     float *out) {                                                          \
        if (nr == 2 && nc == NC)                                                            \
            dot_32_2x4(n, w, a, out, T);                                                    \
        else                                                                                \
            name##_rows(n, w, nr, a, nc, out);                                              \
    }

/* ---- decoding with 32-element signed formats -------------------------------
 *
 * One activation column (a GEMV) against q4_0, q5_0 or q8_0 rows. The rows
 * are streamed one after the other (they are contiguous in the file, so the
 * hardware prefetcher sees one long stream), and everything that depends
 * only on the activation is done once per node instead of once per row:
 * the q8_0 column is split into aligned codes, f32 block scales and, per
 * block, the int32 lanes of dot(8, codes). q4_0/q5_0 weights are then dotted
 * as the unsigned nibbles they are stored as (maddubs takes them directly)
 * and the bias (8, or 16 = 2 * 8 for q5_0) is subtracted per lane: each lane
 * sums the same 4 products as dot_32's sign trick, exactly (|code| * 128 * 2
 * fits int16), and the float operations are dot_32's, so the results are
 * bit-identical to the general path with about a third fewer instructions
 * per block. */
typedef struct gemv_col {
    int8_t *qs;      /* the column's codes, 32-byte aligned                */
    float *d;        /* block scales                                       */
    __m256i *bias8;  /* per block: int32 lanes of dot(8, qs of the block)  */
} gemv_col;

static size_t gemv_col_bytes(int64_t n) {
    return (size_t)n + (size_t)(n / X86_QK) * (sizeof(float) + sizeof(__m256i)) + 64;
}

/* Splits the encoded q8_0 column y (n elements) into col, carved from mem
 * (gemv_col_bytes(n), 32-byte aligned). */
static void gemv_col_init(gemv_col *col, void *mem, const void *y, int64_t n) {
    const int64_t nb = n / X86_QK;
    col->bias8 = mem;
    col->qs = (int8_t *)(col->bias8 + nb);
    col->d = (float *)(void *)(col->qs + n);
    for (int64_t i = 0; i < nb; i++) {
        const x86_block_q8_0 *b = (const x86_block_q8_0 *)y + i;
        const __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
        _mm256_store_si256((__m256i *)(col->qs + X86_QK * i), q);
        col->d[i] = x86_f16_to_f32(b->d);
        _mm256_store_si256(col->bias8 + i, x86_dot_us8(_mm256_setzero_si256(), _mm256_set1_epi8(8), q));
    }
}

X86_INLINE float gemv_32(int64_t n, const void *w, const gemv_col *col, const int T) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / X86_QK; i++) {
        const __m256i yq = _mm256_load_si256((const __m256i *)(col->qs + X86_QK * i));
        __m256i p;
        float dw;
        if (T == W_Q4_0) {
            const x86_block_q4_0 *b = (const x86_block_q4_0 *)w + i;
            p = _mm256_sub_epi32(x86_dot_us8(_mm256_setzero_si256(), nibbles(b->qs), yq), col->bias8[i]);
            dw = x86_f16_to_f32(b->d);
        } else if (T == W_Q5_0) {
            const x86_block_q5_0 *b = (const x86_block_q5_0 *)w + i;
            const __m256i hi = _mm256_and_si256(bits_to_bytes(load_u32(b->qh)), _mm256_set1_epi8(0x10));
            p = _mm256_sub_epi32(x86_dot_us8(_mm256_setzero_si256(), _mm256_or_si256(nibbles(b->qs), hi), yq),
                                 _mm256_slli_epi32(col->bias8[i], 1));
            dw = x86_f16_to_f32(b->d);
        } else {
            const x86_block_q8_0 *b = (const x86_block_q8_0 *)w + i;
            p = x86_dot_s8(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)b->qs), yq);
            dw = x86_f16_to_f32(b->d);
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * col->d[i]), acc);
    }
    return x86_hsum(acc) + 0.0f; /* + 0.0f as dot_32 */
}

DOT_ENTRY_SIGNED(dot_q4_0, W_Q4_0)
DOT_ENTRY(dot_q4_1, dot_32, W_Q4_1)
DOT_ENTRY_SIGNED(dot_q5_0, W_Q5_0)
DOT_ENTRY(dot_q5_1, dot_32, W_Q5_1)
DOT_ENTRY_SIGNED(dot_q8_0, W_Q8_0)

/* ---- K-quants (256-element super-blocks, activations q8_K) ---------------- */

/* From 8 int16 s[0..7] repeated in both 128-bit lanes: s[a] in every int16
 * of the low lane and s[b] in every one of the high lane (a shuffle rather
 * than two scalar broadcasts). */
X86_INLINE __m256i pick_pair(__m256i s2x8, int a, int b) {
    const __m256i idx = _mm256_set_m128i(_mm_set1_epi16((short)(2 * b | (2 * b + 1) << 8)),
                                         _mm_set1_epi16((short)(2 * a | (2 * a + 1) << 8)));
    return _mm256_shuffle_epi8(s2x8, idx);
}

/* Two int16 scales: a for the low 16 bytes of a 32-byte run, b for the high. */
X86_INLINE __m256i scale_pair(int a, int b) {
    return _mm256_set_m128i(_mm_set1_epi16((short)b), _mm_set1_epi16((short)a));
}

/* Sum over 16 groups of int16 x[g] * bsums[g], as 8 int32 lanes. */
X86_INLINE __m256i bsum_dot(__m256i x16, const x86_block_q8_K *y) {
    return _mm256_madd_epi16(x16, _mm256_loadu_si256((const __m256i *)y->bsums));
}

/* Sum over the 8 sub-blocks of 32 of int16 mins[j] * (bsums[2j] + bsums[2j+1])
 * as 4 int32 lanes. The pair sums fit int16 (|bsum| <= 16 * 128). */
X86_INLINE int32_t hsum_i32x4(__m128i s) {
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

X86_INLINE __m128i mins_dot(__m128i mins8, const x86_block_q8_K *y) {
    const __m128i lo = _mm_loadu_si128((const __m128i *)y->bsums), hi = _mm_loadu_si128((const __m128i *)(y->bsums + 8));
    return _mm_madd_epi16(mins8, _mm_hadd_epi16(lo, hi));
}

/* q4_K (five = 0) and q5_K (five = 1): 8 sub-blocks of 32 with 6-bit scale
 * and min; the min part goes through the activation's bsums. */
X86_INLINE void dot_q45_K(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                          const int five) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc[NC];
    float accm[NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = 0.0f;
    }
    for (int64_t i = 0; i < n / X86_QK_K; i++) {
        const uint8_t *scb, *qs;
        uint16_t xd, xdmin;
        __m256i hb = _mm256_setzero_si256();
        if (five) {
            const x86_block_q5_K *b = (const x86_block_q5_K *)w + i;
            scb = b->scales, qs = b->qs, xd = b->d, xdmin = b->dmin;
            hb = _mm256_loadu_si256((const __m256i *)b->qh);
        } else {
            const x86_block_q4_K *b = (const x86_block_q4_K *)w + i;
            scb = b->scales, qs = b->qs, xd = b->d, xdmin = b->dmin;
        }
        const __m256i sm = x86_k4_scales_mins(scb);
        const __m128i sc8 = _mm256_castsi256_si128(sm), mins8 = _mm256_extracti128_si256(sm, 1);
        const __m256i scales = _mm256_set_m128i(sc8, sc8);
        __m256i isum[NC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) isum[c] = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) { /* 64 elements: 32 bytes of nibbles */
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (five) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4));
                hb = _mm256_srli_epi16(hb, 2);
            }
            const __m256i s_lo = pick_pair(scales, 2 * j, 2 * j), s_hi = pick_pair(scales, 2 * j + 1, 2 * j + 1);
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++) {
                const int8_t *y = ((const x86_block_q8_K *)a[c] + i)->qs + 64 * j;
                const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)y)), s_lo);
                const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y + 32))), s_hi);
                isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(plo, phi));
            }
        }
        const float d = x86_f16_to_f32(xd), dmin = x86_f16_to_f32(xdmin);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const x86_block_q8_K *y = (const x86_block_q8_K *)a[c] + i;
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(isum[c]), acc[c]);
            accm[c] -= (dmin * y->d) * (float)hsum_i32x4(mins_dot(mins8, y));
        }
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = x86_hsum(acc[c]) + accm[c];
}

DOT_ENTRY(dot_q4_K, dot_q45_K, 0)
DOT_ENTRY(dot_q5_K, dot_q45_K, 1)

/* q6_K: 6-bit quants q in 0..63 standing for q - 32, int8 scale per 16.
 * Dotted as unsigned, then 32 * sum(scale * bsum) subtracted. */
X86_INLINE void dot_q6_K_k(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                           const int unused) {
    (void)unused;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    __m256 acc[NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / X86_QK_K; i++) {
        const x86_block_q6_K *b = (const x86_block_q6_K *)w + i;
        __m256i isum[NC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) isum[c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qa = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
            const __m256i hh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(qb, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m3), 4));
            const __m128i sc8 = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(b->scales + 8 * h)));
            const __m256i sc = _mm256_set_m128i(sc8, sc8);
            for (int k = 0; k < 4; k++) {
                const __m256i s = pick_pair(sc, 2 * k, 2 * k + 1);
                _Pragma("GCC unroll 4")
                for (int c = 0; c < nc; c++) {
                    const int8_t *y = ((const x86_block_q8_K *)a[c] + i)->qs + 128 * h + 32 * k;
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)y)), s));
                }
            }
        }
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        const float d = x86_f16_to_f32(b->d);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const x86_block_q8_K *y = (const x86_block_q8_K *)a[c] + i;
            isum[c] = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(bsum_dot(sc16, y), 5));
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(isum[c]), acc[c]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = x86_hsum(acc[c]);
}

DOT_ENTRY(dot_q6_K, dot_q6_K_k, 0)

/* q2_K (three = 0) and q3_K (three = 1) share the 2-bit layout: byte l of
 * each 32-byte run holds elements l, l+32, l+64, l+96 of a 128-half; groups
 * of 16 have their own scale. q3_K adds a high bit (hmask) with the value
 * q + 4*hbit - 4, and 6-bit signed scales; q2_K has 4-bit scales and mins. */
X86_INLINE void dot_q23_K(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                          const int three) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc[NC];
    float accm[NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = 0.0f;
    }
    for (int64_t i = 0; i < n / X86_QK_K; i++) {
        int16_t sc[16];
        __m256i sc16, mins16 = _mm256_setzero_si256(), hm = _mm256_setzero_si256();
        const uint8_t *qs;
        float dw, dminw = 0.0f;
        if (three) {
            const x86_block_q3_K *b = (const x86_block_q3_K *)w + i;
            for (int g = 0; g < 16; g++) {
                const int low4 = g < 8 ? b->scales[g] & 0x0F : b->scales[g - 8] >> 4;
                const int high2 = (b->scales[8 + g % 4] >> (2 * (g / 4))) & 3;
                sc[g] = (int16_t)((low4 | high2 << 4) - 32);
            }
            hm = _mm256_loadu_si256((const __m256i *)b->hmask);
            qs = b->qs;
            dw = x86_f16_to_f32(b->d);
        } else {
            const x86_block_q2_K *b = (const x86_block_q2_K *)w + i;
            for (int g = 0; g < 16; g++) sc[g] = (int16_t)(b->scales[g] & 0x0F);
            const __m128i raw = _mm_loadu_si128((const __m128i *)b->scales);
            mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
            qs = b->qs;
            dw = x86_f16_to_f32(b->d);
            dminw = x86_f16_to_f32(b->dmin);
        }
        sc16 = _mm256_loadu_si256((const __m256i *)sc);
        __m256i isum[NC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) isum[c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q2 = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
            for (int s = 0; s < 4; s++) {
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * s), m3);
                if (three) {
                    u = _mm256_or_si256(u, _mm256_slli_epi16(_mm256_and_si256(hm, one), 2));
                    hm = _mm256_srli_epi16(hm, 1);
                }
                const __m256i s2 = scale_pair(sc[8 * h + 2 * s], sc[8 * h + 2 * s + 1]);
                _Pragma("GCC unroll 4")
                for (int c = 0; c < nc; c++) {
                    const int8_t *y = ((const x86_block_q8_K *)a[c] + i)->qs + 128 * h + 32 * s;
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)y)), s2));
                }
            }
        }
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const x86_block_q8_K *y = (const x86_block_q8_K *)a[c] + i;
            if (three) {
                isum[c] = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(bsum_dot(sc16, y), 2));
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), _mm256_cvtepi32_ps(isum[c]), acc[c]);
            } else {
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * dw), _mm256_cvtepi32_ps(isum[c]), acc[c]);
                accm[c] -= (y->d * dminw) * (float)x86_hsum_i32(bsum_dot(mins16, y));
            }
        }
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = x86_hsum(acc[c]) + accm[c];
}

DOT_ENTRY(dot_q2_K, dot_q23_K, 0)
DOT_ENTRY(dot_q3_K, dot_q23_K, 1)

/* ---- the driver ----------------------------------------------------------- */

/* How activations are encoded for a weight type. */
enum { ACT_F32, ACT_F16, ACT_BF16, ACT_Q8_0, ACT_Q8_1, ACT_Q8_K };

typedef struct mm_type {
    tq_type type;
    int32_t blk;  /* weight elements per block (n_in must be a multiple) */
    int act;
    dot_fn dot;
} mm_type;

static const mm_type mm_types[] = {
    {TQ_TYPE_F32, 1, ACT_F32, dot_f32},       {TQ_TYPE_F16, 1, ACT_F16, dot_f16},
    {TQ_TYPE_BF16, 1, ACT_BF16, dot_bf16},    {TQ_TYPE_Q4_0, 32, ACT_Q8_0, dot_q4_0},
    {TQ_TYPE_Q4_1, 32, ACT_Q8_1, dot_q4_1},   {TQ_TYPE_Q5_0, 32, ACT_Q8_0, dot_q5_0},
    {TQ_TYPE_Q5_1, 32, ACT_Q8_1, dot_q5_1},   {TQ_TYPE_Q8_0, 32, ACT_Q8_0, dot_q8_0},
    {TQ_TYPE_Q2_K, 256, ACT_Q8_K, dot_q2_K},  {TQ_TYPE_Q3_K, 256, ACT_Q8_K, dot_q3_K},
    {TQ_TYPE_Q4_K, 256, ACT_Q8_K, dot_q4_K},  {TQ_TYPE_Q5_K, 256, ACT_Q8_K, dot_q5_K},
    {TQ_TYPE_Q6_K, 256, ACT_Q8_K, dot_q6_K},
};

static const mm_type *mm_type_of(tq_type t) {
    for (size_t i = 0; i < sizeof mm_types / sizeof mm_types[0]; i++)
        if (mm_types[i].type == t) return &mm_types[i];
    return NULL;
}

/* Bytes of one encoded activation column, padded to a cache line. */
static size_t act_bytes(int act, int64_t n) {
    size_t b;
    switch (act) {
    case ACT_Q8_0: b = (size_t)(n / X86_QK) * sizeof(x86_block_q8_0); break;
    case ACT_Q8_1: b = (size_t)(n / X86_QK) * sizeof(x86_block_q8_1); break;
    case ACT_Q8_K: b = (size_t)(n / X86_QK_K) * sizeof(x86_block_q8_K); break;
    default: b = (size_t)n * sizeof(float); break;
    }
    return (b + 63) / 64 * 64;
}

int x86_mul_mat_supported(const tq_tensor *node) {
    const tq_tensor *w = node->src[0], *x = node->src[1];
    if (!w || !x || !w->data || !x->data || !node->data) return 0;
    const mm_type *mt = mm_type_of(w->type);
    return mt && x->type == TQ_TYPE_F32 && node->type == TQ_TYPE_F32 && x->nb[0] == sizeof(float) &&
           w->ne[0] == x->ne[0] && w->ne[0] % mt->blk == 0 && w->ne[2] == 1 && w->ne[3] == 1 &&
           node->ne[0] == w->ne[1] && x86_nrows(x) == x86_nrows(node) && x86_contiguous(node);
}

typedef struct mm_task {
    const tq_tensor *w, *x;
    const mm_type *mt;
    char *act;          /* encoded columns */
    size_t act_stride;
    float *dst;
    int64_t n_in, n_out, n_cols;
    float *wconv;       /* float prefill: FR_BLOCK widened rows per thread */
    size_t wconv_stride;
    int gemv_type;      /* W_Q4_0 / W_Q5_0 / W_Q8_0 when decoding via gemv_32, else -1 */
    gemv_col col;
    char *i8buf;        /* prefill via x86_gemm_i8: one buffer per thread */
    size_t i8buf_stride;
    atomic_llong *next_row; /* decoding: the next chunk of rows to take */
} mm_task;

/* Decoding hands out rows in chunks of DECODE_CHUNK from a shared counter
 * rather than in one equal share per thread: on a machine where the other
 * thread's core is busy for a while (a VM, a laptop), the free one takes
 * more chunks instead of waiting at the end of the node. Chunks are long
 * enough (tens of KB of weights) for the hardware prefetcher to stream. */
#define DECODE_CHUNK 64 /* a multiple of MR */

/* [*lo, *hi) of the next chunk; 0 when all rows are taken. */
static int next_chunk(const mm_task *t, int64_t *lo, int64_t *hi) {
    *lo = (int64_t)atomic_fetch_add_explicit(t->next_row, DECODE_CHUNK, memory_order_relaxed);
    if (*lo >= t->n_out) return 0;
    *hi = *lo + DECODE_CHUNK < t->n_out ? *lo + DECODE_CHUNK : t->n_out;
    return 1;
}

static void encode_column(const mm_task *t, int64_t c) {
    const float *x = (const float *)x86_row(t->x, c);
    char *out = t->act + (size_t)c * t->act_stride;
    switch (t->mt->act) {
    case ACT_Q8_0: x86_quantize_q8_0(x, out, t->n_in); break;
    case ACT_Q8_1: x86_quantize_q8_1(x, out, t->n_in); break;
    case ACT_Q8_K: x86_quantize_q8_K(x, out, t->n_in); break;
    case ACT_F16: x86_round_f16(x, (float *)out, t->n_in); break;
    case ACT_BF16: x86_round_bf16(x, (float *)out, t->n_in); break;
    default: memcpy(out, x, (size_t)t->n_in * sizeof(float)); break;
    }
}

static void encode_worker(void *user, int ith, int nth) {
    const mm_task *t = user;
    int64_t lo, hi;
    x86_split(t->n_cols, ith, nth, 1, &lo, &hi);
    for (int64_t c = lo; c < hi; c++) encode_column(t, c);
}

static void mm_rows(const mm_task *t, int64_t lo, int64_t hi);

static void mm_worker(void *user, int ith, int nth) {
    const mm_task *t = user;
    int64_t lo, hi;
    if (t->n_cols == 1) {
        while (next_chunk(t, &lo, &hi)) mm_rows(t, lo, hi);
    } else {
        x86_split(t->n_out, ith, nth, MR, &lo, &hi);
        mm_rows(t, lo, hi);
    }
}

/* Rows [lo, hi) times every column. */
static void mm_rows(const mm_task *t, int64_t lo, int64_t hi) {
    const dot_fn dot = t->mt->dot;
    for (int64_t c0 = 0; c0 < t->n_cols; c0 += COL_BLOCK) {
        const int64_t c1 = c0 + COL_BLOCK < t->n_cols ? c0 + COL_BLOCK : t->n_cols;
        for (int64_t r0 = lo; r0 < hi; r0 += ROW_BLOCK) {
            const int64_t r1 = r0 + ROW_BLOCK < hi ? r0 + ROW_BLOCK : hi;
            for (int64_t c = c0; c < c1; c += NC) {
                const int nc = c1 - c < NC ? (int)(c1 - c) : NC;
                const void *a[NC];
                for (int k = 0; k < nc; k++) a[k] = t->act + (size_t)(c + k) * t->act_stride;
                for (int64_t r = r0; r < r1; r += MR) {
                    const int nr = r1 - r < MR ? (int)(r1 - r) : MR;
                    const void *w[MR];
                    float out[MR * NC];
                    for (int j = 0; j < nr; j++) w[j] = x86_row(t->w, r + j);
                    dot(t->n_in, w, nr, a, nc, out);
                    for (int j = 0; j < nr; j++)
                        for (int k = 0; k < nc; k++) t->dst[(c + k) * t->n_out + r + j] = out[j * NC + k];
                }
            }
        }
    }
}

static void gemv_rows(const mm_task *t, int64_t lo, int64_t hi) {
    switch (t->gemv_type) {
    case W_Q4_0:
        for (int64_t r = lo; r < hi; r++) t->dst[r] = gemv_32(t->n_in, x86_row(t->w, r), &t->col, W_Q4_0);
        break;
    case W_Q5_0:
        for (int64_t r = lo; r < hi; r++) t->dst[r] = gemv_32(t->n_in, x86_row(t->w, r), &t->col, W_Q5_0);
        break;
    default:
        for (int64_t r = lo; r < hi; r++) t->dst[r] = gemv_32(t->n_in, x86_row(t->w, r), &t->col, W_Q8_0);
        break;
    }
}

static void gemv_worker(void *user, int ith, int nth) {
    (void)ith, (void)nth;
    const mm_task *t = user;
    int64_t lo, hi;
    while (next_chunk(t, &lo, &hi)) gemv_rows(t, lo, hi);
}

static void gemm_i8_worker(void *user, int ith, int nth) {
    const mm_task *t = user;
    int64_t lo, hi;
    x86_split(t->n_out, ith, nth, 8, &lo, &hi);
    if (lo >= hi) return;
    void *buf = t->i8buf + (size_t)ith * t->i8buf_stride;
    if (t->mt->act == ACT_Q8_K)
        x86_gemm_k(t->w, lo, hi, t->act, t->act_stride, t->n_cols, t->dst, t->n_out, buf);
    else
        x86_gemm_i8(t->w, lo, hi, t->act, t->act_stride, t->n_cols, t->dst, t->n_out, buf);
}

/* Float weights, several columns: rows of each row block are widened to f32
 * once per column block into the thread's wconv slot (f32 weights are used
 * in place), then multiplied in FR x FC tiles. */
static void mm_worker_float(void *user, int ith, int nth) {
    const mm_task *t = user;
    int64_t lo, hi;
    x86_split(t->n_out, ith, nth, FR, &lo, &hi);
    const int T = t->mt->type == TQ_TYPE_F16 ? WF_F16 : t->mt->type == TQ_TYPE_BF16 ? WF_BF16 : WF_F32;
    float *wbuf = t->wconv + (size_t)ith * t->wconv_stride;
    /* Each row block is widened once per column block, so the column block
     * is as wide as FLOAT_ACT_BYTES of f32 activations allow (they are then
     * re-read from L2 for every row block). */
    int64_t cb = FLOAT_ACT_BYTES / ((int64_t)sizeof(float) * t->n_in) / FC * FC;
    cb = cb < COL_BLOCK ? COL_BLOCK : cb > 4 * COL_BLOCK ? 4 * COL_BLOCK : cb;
    for (int64_t c0 = 0; c0 < t->n_cols; c0 += cb) {
        const int64_t c1 = c0 + cb < t->n_cols ? c0 + cb : t->n_cols;
        for (int64_t r0 = lo; r0 < hi; r0 += FR_BLOCK) {
            const int64_t r1 = r0 + FR_BLOCK < hi ? r0 + FR_BLOCK : hi;
            const float *wrow[FR_BLOCK];
            for (int64_t r = r0; r < r1; r++) {
                const void *src = x86_row(t->w, r);
                if (T == WF_F32) {
                    wrow[r - r0] = src;
                } else {
                    float *d = wbuf + (size_t)(r - r0) * (size_t)t->n_in;
                    widen_row(src, t->n_in, d, T);
                    wrow[r - r0] = d;
                }
            }
            for (int64_t c = c0; c < c1; c += FC) {
                const int nc = c1 - c < FC ? (int)(c1 - c) : FC;
                const float *a[FC];
                for (int k = 0; k < nc; k++) a[k] = (const float *)(t->act + (size_t)(c + k) * t->act_stride);
                for (int64_t r = r0; r < r1; r += FR) {
                    const int nr = r1 - r < FR ? (int)(r1 - r) : FR;
                    float out[FR * FC];
                    tile_float_any(t->n_in, wrow + (r - r0), nr, a, nc, out);
                    for (int j = 0; j < nr; j++)
                        for (int k = 0; k < nc; k++) t->dst[(c + k) * t->n_out + r + j] = out[j * FC + k];
                }
            }
        }
    }
}

tq_status x86_mul_mat(tq_device *dev, tq_tensor *dst, tq_error *err) {
    const tq_host *host = dev->st->host;
    mm_task t;
    t.w = dst->src[0];
    t.x = dst->src[1];
    t.mt = mm_type_of(t.w->type);
    t.n_in = t.w->ne[0];
    t.n_out = t.w->ne[1];
    t.n_cols = x86_nrows(t.x);
    t.dst = dst->data;
    t.act_stride = act_bytes(t.mt->act, t.n_in);
    /* Widening pays off once a row block is used against a few columns;
     * decoding keeps the GEMV kernels, which convert as they go. */
    const int float_tiles = (t.mt->act == ACT_F32 || t.mt->act == ACT_F16 || t.mt->act == ACT_BF16) &&
                            t.n_cols >= FC && host->n_threads > 0;
    const tq_type wt = t.w->type;
    t.gemv_type = t.n_cols != 1 ? -1 : wt == TQ_TYPE_Q4_0 ? W_Q4_0 : wt == TQ_TYPE_Q5_0 ? W_Q5_0
                : wt == TQ_TYPE_Q8_0 ? W_Q8_0 : -1;
    const size_t act_total = (t.act_stride * (size_t)t.n_cols + 63) / 64 * 64;
    t.wconv_stride = float_tiles ? (size_t)FR_BLOCK * (size_t)t.n_in : 0;
    /* Row-interleaved tiles pay for their unpacking from a few dozen columns. */
    const int kq = wt == TQ_TYPE_Q4_K || wt == TQ_TYPE_Q5_K;
    const int i8 = t.n_cols >= I8_MIN_COLS && (x86_gemm_i8_supported(wt) || kq) && host->n_threads > 0;
    t.i8buf_stride = !i8 ? 0 : ((kq ? x86_gemm_k_buf_bytes(t.n_in) : x86_gemm_i8_buf_bytes(t.n_in)) + 63) / 64 * 64;
    const size_t extra = t.gemv_type >= 0 ? gemv_col_bytes(t.n_in)
                       : i8 ? t.i8buf_stride * (size_t)host->n_threads
                            : t.wconv_stride * sizeof(float) * (size_t)(float_tiles ? host->n_threads : 0);
    char *scratch = x86_scratch(dev, act_total + extra);
    t.act = scratch;
    t.wconv = scratch ? (float *)(void *)(scratch + act_total) : NULL;
    if (!t.act)
        return x86_error(err, TQ_ERR_NOMEM, "mul_mat: out of memory for %lld columns",
                         (long long)t.n_cols);
    /* One column is cheaper to encode here than to hand to the pool. */
    atomic_llong next_row;
    atomic_init(&next_row, 0);
    t.next_row = &next_row;
    if (t.n_cols == 1)
        encode_column(&t, 0);
    else
        host->parallel_for(encode_worker, &t);
    if (t.gemv_type >= 0) {
        gemv_col_init(&t.col, scratch + act_total, t.act, t.n_in);
        host->parallel_for(gemv_worker, &t);
    } else if (i8) {
        t.i8buf = scratch + act_total;
        host->parallel_for(gemm_i8_worker, &t);
    } else {
        host->parallel_for(float_tiles ? mm_worker_float : mm_worker, &t);
    }
    return TQ_OK;
}
