/* x86_matmul.c — MUL_MAT: dst[n_out, t] = W[n_in, n_out] . X[n_in, t].
 *
 * As in ggml and the ref backend, every activation column is first encoded
 * ONCE per node into the weight's vec_dot format (q8_0 for q4_0/q5_0/q8_0,
 * q8_1 for q4_1/q5_1, q8_K for the K-quants, narrowed to f16/bf16 for
 * those weights, plain f32 for f32). The products are then integer dot
 * products per block (AVX2 maddubs, or AVX-512 VNNI dpbusd), scaled by the
 * block's two float scales and accumulated in float lanes.
 *
 * The driver is plugins/common/cpu_matmul.c. Its dot tiles call these
 * kernels with up to X86_MM_ROWS = 4 weight rows and NC = 4 activation
 * columns, so each weight block is loaded and unpacked once per 4 columns
 * (q4_0/q5_0/q8_0 full tiles also share each activation block over 2 rows).
 * This file also supplies the driver's whole-node paths: float weights
 * with several columns (gemm_float: 3 x 4 register tiles that read the
 * weights and the 16-bit columns in place), and decoding (one row after
 * the other, the weights prefetched ahead: gemv_32 against a column
 * prepared once for q4_0/q5_0/q8_0, the dot kernels themselves for the
 * float and K-quant types).
 *
 * The kernels' small per-row / per-column loops carry "GCC unroll" pragmas:
 * without them GCC at -O2 keeps the accumulator arrays in memory.
 *
 * Exactness: the integer sum of each block equals the scalar kernels' of
 * core/src/tq_quants*.c; only the float accumulation order differs (8 lanes
 * and FMA here), which the conformance test bounds. */
#include "x86_internal.h"

#define NC CPU_MM_MAX_COLS /* activation columns per kernel call: X86_MM_COLS */
#define I8_MIN_COLS 16 /* columns from which prefill uses the row-interleaved tiles
                          (x86_gemm_i8.c: q4_0/q5_0/q8_0, x86_gemm_k.c: q4_K/q5_K) */

_Static_assert(X86_MM_COLS == NC, "full tiles are NC columns wide");

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

/* Activations come in the weight's format (f16/bf16 weights: the columns
 * narrowed by the encoder, so every product is the one ggml forms). A
 * register tile of nr <= 2 rows x nc <= 2 columns, each output summed in
 * two 8-lane FMA chains (even and odd groups of 8) that are added before
 * the horizontal sum: 8 accumulators
 * plus the loads fit the 16 AVX2 registers, each step loads 2 weight and 2
 * activation vectors per 4 FMAs, and every output's rounding is the same
 * whatever the tile (so a column's result does not depend on how many
 * columns the batch has). */
X86_INLINE void dot_float(int64_t n, const void *const *w, const int nr, const void *const *a,
                          const int nc, float *out, const int T) {
    __m256 acc[4][2], acc2[4][2];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) acc[r][c] = acc2[r][c] = _mm256_setzero_ps();
    const int wbytes = T == WF_F32 ? 4 : 2;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        if (nr == 1 && nc == 1) x86_prefetch_ahead((const char *)w[0] + wbytes * i, 1);
        __m256 wv[4], wv2[4];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) wv[r] = load_w8(w[r], i, T), wv2[r] = load_w8(w[r], i + 8, T);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const __m256 av = load_w8(a[c], i, T);
            const __m256 av2 = load_w8(a[c], i + 8, T);
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
                acc[r][c] = _mm256_fmadd_ps(wv, load_w8(a[c], i, T), acc[r][c]);
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
            for (int c = 0; c < nc; c++) out[r * NC + c] += wf * load_w1(a[c], i, T);
        }
}

/* The driver's nr x nc (up to 4 x NC): one column (decoding) as up to 4
 * rows at once, so that 4 weight streams are in flight; several columns as
 * 2 x 2 tiles. Each output's operations are the same either way. */
#define FLOAT_ENTRY(name, T)                                                                 \
    CPU_DOT_BY_2X2(name##_tiles, dot_float, T)                                               \
    static void name(int64_t n, const void *const *w, int nr, const void *const *a, int nc, \
                     float *out) {                                                          \
        if (nc > 1) name##_tiles(n, w, nr, a, nc, out);                                     \
        else                                                                                \
            for (int r = 0; r < nr; r++) dot_float(n, w + r, 1, a, 1, out + r * NC, T);    \
    }
FLOAT_ENTRY(dot_f32, WF_F32)
FLOAT_ENTRY(dot_f16, WF_F16)
FLOAT_ENTRY(dot_bf16, WF_BF16)

/* Prefill (many columns) with float weights: FR <= 4 weight rows times
 * FC <= 3 columns per register tile: 12 accumulators plus the 3 widened
 * column vectors of a step fit the 16 AVX2 registers, and each weight
 * vector is loaded once for its 3 FMAs, so a step does 12 FMAs for 3
 * conversions (3 x 4 did 4; 4 x 3 was 5% faster on tm30m F16 pp512 at one
 * thread, 6 alternating rounds, session 8). Each output is one FMA chain
 * (dot_float, for decoding and small batches, keeps two: see below).
 *
 * The weights are widened to f32 once per row group and column block
 * (widen_rows, into the thread's buffer: 4 rows of ffn_down's 1536 are
 * 24 KB and stay in L1 while the block's columns pass); the columns are
 * read in place, as the 16-bit values the encoder wrote, and widened in the
 * loads. Widening both operands in the loads (until session 7) cost 7
 * conversions per 12 FMAs; widening the weights once was 13% faster on tm30m
 * F16 pp512 (2 threads, 4 alternating rounds, 2026-11-24 VM). Columns
 * widened to f32 as well were 20-25% slower than 16-bit ones: twice the
 * bytes per column (as in session 5, where f32 columns against f16 weights
 * ran at 63 against 80-89 GFLOPS on one core). Tried, not kept (session
 * 7): BLIS-style packed panels (16 weight rows x 6 columns, k-major, a
 * broadcast micro-kernel with no conversions or horizontal sums): 70-76
 * GFLOPS on one core against 77-85 for this tile, the packing eating what
 * the micro-kernel saved; a 3 x 2 tile doing both chains in one pass: 64
 * against 77. Session 8, not kept: column blocks of 512 KB instead of 256
 * (slower in 5 of 6 alternating rounds). Until session 10 this tile summed
 * each output in dot_float's two chains (even and odd groups of 8), in two
 * passes; one chain in one pass was 6.8% faster at one thread (session 8)
 * and 1.03x at two (pp512, 12 alternating rounds, session 10), but it
 * moved the llama golden long2048 case's first decode row to 2.5e-3 x
 * max|logit|, over the 2e-3 tolerance, until the attention of one-token
 * batches followed llama.cpp's f16 accumulation (cpu_attention.c). dot_float
 * keeps its two chains: decoding reads one row at a time as one stream, and
 * one chain per row there waits on the FMA latency (tm30m F16 tg128 0.6-0.8x;
 * 4 rows at a time, 4 streams, were no better), so a column's sums now
 * depend on whether it is decoded alone (or in a small batch) or in a
 * prefill batch that takes this tile. */
#define FR 4
#define FC 3

/* out[c * ld + r] for nr x nc weight rows w (f32: widened by the caller)
 * and columns a of type T (ld: the output's column stride, so the sums go
 * straight to dst): one 8-lane FMA chain per output over the groups of 8,
 * then x86_hsum (tinyBLAS's order on AVX2), whatever the tile. */
X86_INLINE void tile_float(int64_t n, const float *const *w, const int nr, const void *const *a,
                           const int nc, float *out, size_t ld, const int T) {
    __m256 acc[FR][FC];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) acc[r][c] = _mm256_setzero_ps();
    const int64_t n8 = n / 8 * 8;
    for (int64_t i = 0; i < n8; i += 8) {
        __m256 av[FC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) av[c] = load_w8(a[c], i, T);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) {
            const __m256 wv = _mm256_loadu_ps(w[r] + i);
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++) acc[r][c] = _mm256_fmadd_ps(wv, av[c], acc[r][c]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) out[c * ld + r] = x86_hsum(acc[r][c]);
    for (int64_t i = n8; i < n; i++)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) {
            const float wf = w[r][i];
            _Pragma("GCC unroll 4")
            for (int c = 0; c < nc; c++) out[c * ld + r] += wf * load_w1(a[c], i, T);
        }
}

#define TILE_CASE(R, C) \
    case (R) * 8 + (C): tile_float(n, w, R, a, C, out, ld, T); break;

X86_INLINE void tile_float_any(int64_t n, const float *const *w, int nr, const void *const *a, int nc,
                               float *out, size_t ld, const int T) {
    switch (nr * 8 + nc) {
    TILE_CASE(4, 3) TILE_CASE(4, 2) TILE_CASE(4, 1)
    TILE_CASE(3, 3) TILE_CASE(3, 2) TILE_CASE(3, 1)
    TILE_CASE(2, 3) TILE_CASE(2, 2) TILE_CASE(2, 1)
    TILE_CASE(1, 3) TILE_CASE(1, 2)
    default: tile_float(n, w, 1, a, 1, out, ld, T); break;
    }
}

static void tile_f32(int64_t n, const float *const *w, int nr, const void *const *a, int nc, float *out,
                     size_t ld) {
    tile_float_any(n, w, nr, a, nc, out, ld, WF_F32);
}
static void tile_f16(int64_t n, const float *const *w, int nr, const void *const *a, int nc, float *out,
                     size_t ld) {
    tile_float_any(n, w, nr, a, nc, out, ld, WF_F16);
}
static void tile_bf16(int64_t n, const float *const *w, int nr, const void *const *a, int nc, float *out,
                     size_t ld) {
    tile_float_any(n, w, nr, a, nc, out, ld, WF_BF16);
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
    /* The bytes in both halves (one broadcast load), the high half shifted
     * right by 4: 3 instructions instead of a load, shift, insert and mask. */
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi64(t, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0F));
}

X86_INLINE uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Signed formats (q4_0, q5_0, q8_0) are unpacked to int8 and dotted with
 * q8_0 by the sign trick; unsigned ones (q4_1, q5_1) to uint8 dotted with
 * q8_1, plus the weight's min times the activation's d*sum(q).
 *
 * The float sums of every 32-element path (dot_32, dot_32_2x4, gemv_32) run
 * in two 8-lane chains, even blocks and odd blocks, added before the
 * horizontal sum (the min term of q4_1/q5_1 in one scalar chain), so a
 * decoded column and a small batch get the same bits. One chain waited on
 * the FMA latency when decoding: two took TinyLlama-1.1B Q4_0 tg64 from
 * 41.2 to 45.1 t/s (medians of 3 alternating pairs, 2 threads, Zen 4,
 * session 11); four were no faster than two. */

/* Block i of the row against the nc columns: acc[c] += its scaled sums. */
X86_INLINE void dot_32_block(const void *w, const void *const *a, const int nc, int64_t i, __m256 *acc,
                              float *accm, const int T) {
    const int has_min = T == W_Q4_1 || T == W_Q5_1;
    __m256i q;
    float dw, mw = 0.0f;
    if (T == W_Q4_0) {
        const cpu_block_q4_0 *b = (const cpu_block_q4_0 *)w + i;
        q = _mm256_sub_epi8(nibbles(b->qs), _mm256_set1_epi8(8));
        dw = x86_f16_to_f32(b->d);
    } else if (T == W_Q4_1) {
        const cpu_block_q4_1 *b = (const cpu_block_q4_1 *)w + i;
        q = nibbles(b->qs);
        dw = x86_f16_to_f32(b->d);
        mw = x86_f16_to_f32(b->m);
    } else if (T == W_Q5_0) {
        const cpu_block_q5_0 *b = (const cpu_block_q5_0 *)w + i;
        /* (nibble | bit4) - 16: the nibble with 0xF0 or-ed in where bit 4 is clear */
        const __m256i hi = _mm256_andnot_si256(bits_to_bytes(load_u32(b->qh)), _mm256_set1_epi8((char)0xF0));
        q = _mm256_or_si256(nibbles(b->qs), hi);
        dw = x86_f16_to_f32(b->d);
    } else if (T == W_Q5_1) {
        const cpu_block_q5_1 *b = (const cpu_block_q5_1 *)w + i;
        const __m256i hi = _mm256_and_si256(bits_to_bytes(load_u32(b->qh)), _mm256_set1_epi8(0x10));
        q = _mm256_or_si256(nibbles(b->qs), hi);
        dw = x86_f16_to_f32(b->d);
        mw = x86_f16_to_f32(b->m);
    } else {
        const cpu_block_q8_0 *b = (const cpu_block_q8_0 *)w + i;
        q = _mm256_loadu_si256((const __m256i *)b->qs);
        dw = x86_f16_to_f32(b->d);
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) {
        __m256i p;
        float da;
        if (has_min) {
            const cpu_block_q8_1 *y = (const cpu_block_q8_1 *)a[c] + i;
            p = x86_dot_us8(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)y->qs));
            da = x86_f16_to_f32(y->d);
            accm[c] += mw * x86_f16_to_f32(y->s);
        } else {
            const cpu_block_q8_0 *y = (const cpu_block_q8_0 *)a[c] + i;
            p = x86_dot_s8(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)y->qs));
            da = x86_f16_to_f32(y->d);
        }
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * da), acc[c]);
    }
}

X86_INLINE void dot_32(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                       const int T) {
    __m256 acc[NC], acc2[NC];
    float accm[NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) {
        acc[c] = acc2[c] = _mm256_setzero_ps();
        accm[c] = 0.0f;
    }
    const int64_t nb = n / CPU_QK;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        dot_32_block(w, a, nc, i, acc, accm, T);
        dot_32_block(w, a, nc, i + 1, acc2, accm, T);
    }
    if (i < nb) dot_32_block(w, a, nc, i, acc, accm, T);
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = x86_hsum(_mm256_add_ps(acc[c], acc2[c])) + accm[c];
}

/* Block i of a signed-format row as int8 (what dot_32 unpacks) and its scale. */
X86_INLINE __m256i unpack_signed(const void *w, int64_t i, const int T, float *dw) {
    if (T == W_Q4_0) {
        const cpu_block_q4_0 *b = (const cpu_block_q4_0 *)w + i;
        *dw = x86_f16_to_f32(b->d);
        return _mm256_sub_epi8(nibbles(b->qs), _mm256_set1_epi8(8));
    }
    if (T == W_Q5_0) {
        const cpu_block_q5_0 *b = (const cpu_block_q5_0 *)w + i;
        const __m256i hi = _mm256_andnot_si256(bits_to_bytes(load_u32(b->qh)), _mm256_set1_epi8((char)0xF0));
        *dw = x86_f16_to_f32(b->d);
        return _mm256_or_si256(nibbles(b->qs), hi);
    }
    const cpu_block_q8_0 *b = (const cpu_block_q8_0 *)w + i;
    *dw = x86_f16_to_f32(b->d);
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* Block i of two rows against NC columns (dot_32_2x4's step): acc[r][c] +=. */
X86_INLINE void dot_32_2x4_block(const void *const *w, const void *const *a, int64_t i, __m256 acc[2][NC],
                                 const int T) {
    float dw0, dw1;
    const __m256i q0 = unpack_signed(w[0], i, T, &dw0), q1 = unpack_signed(w[1], i, T, &dw1);
    const __m256 dwv0 = _mm256_set1_ps(dw0), dwv1 = _mm256_set1_ps(dw1);
    _Pragma("GCC unroll 4")
    for (int c = 0; c < NC; c++) {
        const cpu_block_q8_0 *y = (const cpu_block_q8_0 *)a[c] + i;
        const __m256 dav = _mm256_set1_ps(x86_f16_to_f32(y->d));
        const __m256i yq = _mm256_loadu_si256((const __m256i *)y->qs);
        const __m256i p0 = x86_dot_s8(_mm256_setzero_si256(), q0, yq);
        const __m256i p1 = x86_dot_s8(_mm256_setzero_si256(), q1, yq);
        acc[0][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_mul_ps(dwv0, dav), acc[0][c]);
        acc[1][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_mul_ps(dwv1, dav), acc[1][c]);
    }
}

/* Two rows of a signed format (q4_0, q5_0, q8_0) times NC q8_0 columns: each
 * activation block and its scale are loaded once for both rows, and the block
 * scale dw * da is formed as a vector product of two broadcasts (every lane
 * the same rounded product dot_32 broadcasts) rather than a scalar product
 * broadcast per pair, which keeps the shuffle port free. Every output's
 * operations are dot_32's (two chains), so the results are bit-identical.
 * Its 16 accumulators fit the AVX-512 variant's 32 vector registers; the
 * AVX2 variant (16 registers) takes dot_32 row by row instead. */
X86_INLINE void dot_32_2x4(int64_t n, const void *const *w, const void *const *a, float *out,
                           const int T) {
    __m256 acc[2][NC], acc2[2][NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < NC; c++) acc[0][c] = acc[1][c] = acc2[0][c] = acc2[1][c] = _mm256_setzero_ps();
    const int64_t nb = n / CPU_QK;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        dot_32_2x4_block(w, a, i, acc, T);
        dot_32_2x4_block(w, a, i + 1, acc2, T);
    }
    if (i < nb) dot_32_2x4_block(w, a, i, acc, T);
    /* + 0.0f: dot_32 adds its (zero) min term, which turns -0 into +0. */
    _Pragma("GCC unroll 4")
    for (int c = 0; c < NC; c++) {
        out[c] = x86_hsum(_mm256_add_ps(acc[0][c], acc2[0][c])) + 0.0f;
        out[NC + c] = x86_hsum(_mm256_add_ps(acc[1][c], acc2[1][c])) + 0.0f;
    }
}

/* Full 2 x NC tiles through dot_32_2x4, edges row by row. */
#define DOT_ENTRY_SIGNED(name, T)                                                            \
    CPU_DOT_BY_ROWS(name##_rows, dot_32, T)                                                  \
    static void name(int64_t n, const void *const *w, int nr, const void *const *a, int nc, \
                     float *out) {                                                          \
        if (X86_VNNI && nr >= 2 && nc == NC) {                                              \
            dot_32_2x4(n, w, a, out, T);                                                    \
            if (nr == 4) dot_32_2x4(n, w + 2, a, out + 2 * NC, T);                          \
            else if (nr == 3) name##_rows(n, w + 2, 1, a, nc, out + 2 * NC);                \
        } else                                                                              \
            name##_rows(n, w, nr, a, nc, out);                                              \
    }

/* ---- decoding with 32-element signed formats -------------------------------
 *
 * One activation column (a GEMV) against q4_0, q5_0 or q8_0 rows. The rows
 * are streamed one after the other (they are contiguous in the file, so the
 * hardware prefetcher sees one long stream), and everything that depends
 * only on the activation is done once per node instead of once per row:
 * the q8_0 column is split into aligned codes, f32 block scales and, per
 * block, the int32 lanes of -dot(8, codes). q4_0/q5_0 weights are then
 * dotted as the unsigned nibbles they are stored as (maddubs and dpbusd take
 * them directly) into lanes that start at that negated bias (8, or 16 = 2 *
 * 8 for q5_0), which saves a subtraction per block: each lane
 * sums the same 4 products as dot_32's sign trick, exactly (|code| * 128 * 2
 * fits int16), and the float operations are dot_32's, so the results are
 * bit-identical to the general path with about a third fewer instructions
 * per block. */
typedef struct gemv_col {
    int8_t *qs;      /* the column's codes, 32-byte aligned                */
    float *d;        /* block scales                                       */
    __m256i *nbias8; /* per block: int32 lanes of -dot(8, qs of the block) */
} gemv_col;

/* The prepared column: the gemv_col header in the first 64 bytes, then its
 * arrays (cpu_mm_gemv.col_bytes). */
static size_t gemv_col_bytes(int64_t n) {
    return 64 + (size_t)n + (size_t)(n / CPU_QK) * (sizeof(float) + sizeof(__m256i)) + 64;
}

/* Splits the encoded q8_0 column y (n elements) into col, carved from mem
 * (gemv_col_bytes(n), 32-byte aligned). */
static void gemv_col_init(gemv_col *col, void *mem, const void *y, int64_t n) {
    const int64_t nb = n / CPU_QK;
    col->nbias8 = mem;
    col->qs = (int8_t *)(col->nbias8 + nb);
    col->d = (float *)(void *)(col->qs + n);
    for (int64_t i = 0; i < nb; i++) {
        const cpu_block_q8_0 *b = (const cpu_block_q8_0 *)y + i;
        const __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
        _mm256_store_si256((__m256i *)(col->qs + CPU_QK * i), q);
        col->d[i] = x86_f16_to_f32(b->d);
        _mm256_store_si256(col->nbias8 + i,
                           _mm256_sub_epi32(_mm256_setzero_si256(),
                                            x86_dot_us8(_mm256_setzero_si256(), _mm256_set1_epi8(8), q)));
    }
}

X86_INLINE int gemv_block_bytes(const int T) {
    return T == W_Q4_0 ? sizeof(cpu_block_q4_0) : T == W_Q5_0 ? sizeof(cpu_block_q5_0) : sizeof(cpu_block_q8_0);
}

/* acc + block i of a q4_0/q5_0/q8_0 row against the split column: the
 * exact int32 sums in 8 lanes, times the two scales (one FMA). */
X86_INLINE __m256 gemv_block(__m256 acc, const void *w, const gemv_col *col, int64_t i, const int T) {
    const __m256i yq = _mm256_load_si256((const __m256i *)(col->qs + CPU_QK * i));
    const char *blk = (const char *)w + i * gemv_block_bytes(T);
    __m256i p;
    if (T == W_Q4_0) {
        const cpu_block_q4_0 *b = (const void *)blk;
        p = x86_dot_us8(col->nbias8[i], nibbles(b->qs), yq);
    } else if (T == W_Q5_0) {
        const cpu_block_q5_0 *b = (const void *)blk;
        const __m256i hi = _mm256_and_si256(bits_to_bytes(load_u32(b->qh)), _mm256_set1_epi8(0x10));
        p = x86_dot_us8(_mm256_slli_epi32(col->nbias8[i], 1), _mm256_or_si256(nibbles(b->qs), hi), yq);
    } else {
        const cpu_block_q8_0 *b = (const void *)blk;
        p = x86_dot_s8(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)b->qs), yq);
    }
    /* The scales' product d_w * d_y (one rounding, as dot_32's) formed in
     * every lane from a broadcast half and a broadcast float: 4 instructions
     * against 5 for a scalar product broadcast afterwards. */
    uint16_t dw16;
    memcpy(&dw16, blk, sizeof dw16);
    const __m256 dw = _mm256_cvtph_ps(_mm_set1_epi16((short)dw16));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_broadcast_ss(col->d + i)), acc);
}

/* One row in dot_32's two chains (bit-identical). On the Zen 3 VM of
 * sessions 3-10, decoding q4_0 with 2 threads was bound by instructions per
 * block, not by the FMA chain nor by memory (66% of the read bandwidth,
 * where q8_0, with half the blocks per byte, reached 96%): the broadcast
 * nibbles, the scale converted from memory and 4 blocks per loop step took
 * 19 instructions per block to about 14 and decode from 29.7 to 33.3 t/s
 * (TinyLlama-1.1B Q4_0, 4 alternating rounds, session 7); four round-robin
 * accumulators (session 3) and two chains (session 7) were no faster there.
 * On the Zen 4 VM of session 11 one chain waited on the FMA latency (the
 * samples sat after each FMA), and two chains are 6-15% faster (dot_32's
 * comment). Tried and not kept: 2 or 4 rows side by side, each in its own
 * chain (session 7: 2 rows no faster, 4 rows a quarter slower). */
#define GEMV_STEP 4
X86_INLINE float gemv_32(int64_t n, const void *w, const gemv_col *col, const int T) {
    const int block = gemv_block_bytes(T);
    const int64_t nb = n / CPU_QK;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}; /* even, odd blocks */
    int64_t i = 0;
    /* GEMV_STEP blocks per loop step: one loop test and a prefetch per
     * line of the step's bytes (a line per block cost a tenth of the
     * instructions). */
    for (; i + GEMV_STEP <= nb; i += GEMV_STEP) {
        x86_prefetch_ahead((const char *)w + block * i, GEMV_STEP * block);
        _Pragma("GCC unroll 4")
        for (int k = 0; k < GEMV_STEP; k++) acc[k & 1] = gemv_block(acc[k & 1], w, col, i + k, T);
    }
    for (; i < nb; i++) acc[i & 1] = gemv_block(acc[i & 1], w, col, i, T);
    return x86_hsum(_mm256_add_ps(acc[0], acc[1])) + 0.0f; /* + 0.0f as dot_32 */
}

DOT_ENTRY_SIGNED(dot_q4_0, W_Q4_0)
CPU_DOT_BY_ROWS(dot_q4_1, dot_32, W_Q4_1)
DOT_ENTRY_SIGNED(dot_q5_0, W_Q5_0)
CPU_DOT_BY_ROWS(dot_q5_1, dot_32, W_Q5_1)
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
X86_INLINE __m256i bsum_dot(__m256i x16, const cpu_block_q8_K *y) {
    return _mm256_madd_epi16(x16, _mm256_loadu_si256((const __m256i *)y->bsums));
}

/* Sum over the 8 sub-blocks of 32 of int16 mins[j] * (bsums[2j] + bsums[2j+1])
 * as 4 int32 lanes. The pair sums fit int16 (|bsum| <= 16 * 128). */
X86_INLINE __m128i mins_dot(__m128i mins8, const cpu_block_q8_K *y) {
    const __m128i lo = _mm_loadu_si128((const __m128i *)y->bsums), hi = _mm_loadu_si128((const __m128i *)(y->bsums + 8));
    return _mm_madd_epi16(mins8, _mm_hadd_epi16(lo, hi));
}

/* q4_K (five = 0) and q5_K (five = 1): 8 sub-blocks of 32 with 6-bit scale
 * and min; the min part goes through the activation's bsums. The loops over
 * sub-blocks are unrolled so that pick_pair's shuffles are constants, and
 * the min terms of the super-blocks add up in 4 float lanes: a scalar sum
 * would chain each super-block's horizontal add behind the last (a 2048-wide
 * row has only 8 super-blocks, so that chain was a third of the decode). */
X86_INLINE void dot_q45_K(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                          const int five) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const int block = five ? sizeof(cpu_block_q5_K) : sizeof(cpu_block_q4_K);
    __m256 acc[NC];
    __m128 accm[NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < n / CPU_QK_K; i++) {
        const uint8_t *scb, *qs;
        uint16_t xd, xdmin;
        __m256i hb = _mm256_setzero_si256();
        if (five) {
            const cpu_block_q5_K *b = (const cpu_block_q5_K *)w + i;
            scb = b->scales, qs = b->qs, xd = b->d, xdmin = b->dmin;
            hb = _mm256_loadu_si256((const __m256i *)b->qh);
        } else {
            const cpu_block_q4_K *b = (const cpu_block_q4_K *)w + i;
            scb = b->scales, qs = b->qs, xd = b->d, xdmin = b->dmin;
        }
        if (nc == 1) x86_prefetch_ahead((const char *)w + i * block, block); /* decoding */
        const __m256i sm = x86_k4_scales_mins(scb);
        const __m128i sc8 = _mm256_castsi256_si128(sm), mins8 = _mm256_extracti128_si256(sm, 1);
        const __m256i scales = _mm256_set_m128i(sc8, sc8);
        __m256i isum[NC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) isum[c] = _mm256_setzero_si256();
        _Pragma("GCC unroll 4")
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
                const int8_t *y = ((const cpu_block_q8_K *)a[c] + i)->qs + 64 * j;
                const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)y)), s_lo);
                const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y + 32))), s_hi);
                isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(plo, phi));
            }
        }
        const float d = x86_f16_to_f32(xd), dmin = x86_f16_to_f32(xdmin);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const cpu_block_q8_K *y = (const cpu_block_q8_K *)a[c] + i;
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(isum[c]), acc[c]);
            accm[c] = _mm_sub_ps(accm[c], _mm_mul_ps(_mm_set1_ps(dmin * y->d), _mm_cvtepi32_ps(mins_dot(mins8, y))));
        }
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = x86_hsum(acc[c]) + x86_hsum128(accm[c]);
}

CPU_DOT_BY_ROWS(dot_q4_K, dot_q45_K, 0)
CPU_DOT_BY_ROWS(dot_q5_K, dot_q45_K, 1)

/* q6_K: 6-bit quants q in 0..63 standing for q - 32, int8 scale per 16.
 * Dotted as unsigned, then 32 * sum(scale * bsum) subtracted. */
X86_INLINE void dot_q6_K_k(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                           const int unused) {
    (void)unused;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    __m256 acc[NC];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / CPU_QK_K; i++) {
        const cpu_block_q6_K *b = (const cpu_block_q6_K *)w + i;
        if (nc == 1) x86_prefetch_ahead(b, sizeof *b); /* decoding */
        __m256i isum[NC];
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) isum[c] = _mm256_setzero_si256();
        _Pragma("GCC unroll 2")
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
            _Pragma("GCC unroll 4")
            for (int k = 0; k < 4; k++) {
                const __m256i s = pick_pair(sc, 2 * k, 2 * k + 1);
                _Pragma("GCC unroll 4")
                for (int c = 0; c < nc; c++) {
                    const int8_t *y = ((const cpu_block_q8_K *)a[c] + i)->qs + 128 * h + 32 * k;
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)y)), s));
                }
            }
        }
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        const float d = x86_f16_to_f32(b->d);
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const cpu_block_q8_K *y = (const cpu_block_q8_K *)a[c] + i;
            isum[c] = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(bsum_dot(sc16, y), 5));
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(isum[c]), acc[c]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < nc; c++) out[c] = x86_hsum(acc[c]);
}

CPU_DOT_BY_ROWS(dot_q6_K, dot_q6_K_k, 0)

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
    for (int64_t i = 0; i < n / CPU_QK_K; i++) {
        int16_t sc[16];
        __m256i sc16, mins16 = _mm256_setzero_si256(), hm = _mm256_setzero_si256();
        const uint8_t *qs;
        float dw, dminw = 0.0f;
        if (three) {
            const cpu_block_q3_K *b = (const cpu_block_q3_K *)w + i;
            int8_t s8[16];
            cpu_q3_K_scales(b->scales, s8);
            for (int g = 0; g < 16; g++) sc[g] = s8[g];
            hm = _mm256_loadu_si256((const __m256i *)b->hmask);
            qs = b->qs;
            dw = x86_f16_to_f32(b->d);
        } else {
            const cpu_block_q2_K *b = (const cpu_block_q2_K *)w + i;
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
                    const int8_t *y = ((const cpu_block_q8_K *)a[c] + i)->qs + 128 * h + 32 * s;
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)y)), s2));
                }
            }
        }
        _Pragma("GCC unroll 4")
        for (int c = 0; c < nc; c++) {
            const cpu_block_q8_K *y = (const cpu_block_q8_K *)a[c] + i;
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

CPU_DOT_BY_ROWS(dot_q2_K, dot_q23_K, 0)
CPU_DOT_BY_ROWS(dot_q3_K, dot_q23_K, 1)

/* ---- what the driver runs ------------------------------------------------- */

const cpu_mm_type x86_mm_types[CPU_N_MM_TYPES] = CPU_MM_TYPES(dot);

/* Decoding: the encoded q8_0 column split once per node (gemv_col at the
 * head of col), then rows in the chunks the driver hands out. */
static void gemv_prepare(void *col, const void *act, int64_t n_in) {
    gemv_col_init(col, (char *)col + 64, act, n_in);
}

#define GEMV_ROWS(name, T)                                                                      \
    static void name(const tq_tensor *w, int64_t lo, int64_t hi, const void *col, float *dst) { \
        for (int64_t r = lo; r < hi; r++) dst[r] = gemv_32(w->ne[0], cpu_row(w, r), col, T);    \
    }
GEMV_ROWS(gemv_q4_0, W_Q4_0)
GEMV_ROWS(gemv_q5_0, W_Q5_0)
GEMV_ROWS(gemv_q8_0, W_Q8_0)

/* K-quants and float weights: the encoded column is used as it is (col
 * holds its address), and the rows go straight to the dot kernel, one after
 * the other. A 2048-wide K-quant row has only 8 super-blocks, so the tile
 * driver's per-row bookkeeping cost as much as a tenth of the decode. Same
 * operations as the driver's path. DIRECT_GEMV_ROWS: param is the kernel's last
 * argument. */
static size_t gemv_ref_col_bytes(int64_t n_in) {
    (void)n_in;
    return sizeof(const void *);
}
static void gemv_ref_prepare(void *col, const void *act, int64_t n_in) {
    (void)n_in;
    memcpy(col, &act, sizeof act);
}
#define DIRECT_GEMV_ROWS(name, kernel, param)                                                   \
    static void name(const tq_tensor *w, int64_t lo, int64_t hi, const void *col, float *dst) { \
        const void *a[1];                                                                       \
        memcpy(a, col, sizeof a[0]);                                                            \
        for (int64_t r = lo; r < hi; r++) kernel(w->ne[0], cpu_row(w, r), a, 1, dst + r, param); \
    }
/* dot_float for one weight row, in the K-quant kernels' signature. */
X86_INLINE void dot_float_row(int64_t n, const void *w, const void *const *a, const int nc, float *out,
                              const int T) {
    dot_float(n, &w, 1, a, nc, out, T);
}
DIRECT_GEMV_ROWS(gemv_q4_K, dot_q45_K, 0)
DIRECT_GEMV_ROWS(gemv_q5_K, dot_q45_K, 1)
DIRECT_GEMV_ROWS(gemv_q6_K, dot_q6_K_k, 0)
DIRECT_GEMV_ROWS(gemv_f32, dot_float_row, WF_F32)
DIRECT_GEMV_ROWS(gemv_f16, dot_float_row, WF_F16)
DIRECT_GEMV_ROWS(gemv_bf16, dot_float_row, WF_BF16)

const cpu_mm_gemv x86_gemvs[X86_N_GEMVS] = {
    {TQ_TYPE_Q4_0, gemv_col_bytes, gemv_prepare, gemv_q4_0},
    {TQ_TYPE_Q5_0, gemv_col_bytes, gemv_prepare, gemv_q5_0},
    {TQ_TYPE_Q8_0, gemv_col_bytes, gemv_prepare, gemv_q8_0},
    {TQ_TYPE_Q4_K, gemv_ref_col_bytes, gemv_ref_prepare, gemv_q4_K},
    {TQ_TYPE_Q5_K, gemv_ref_col_bytes, gemv_ref_prepare, gemv_q5_K},
    {TQ_TYPE_Q6_K, gemv_ref_col_bytes, gemv_ref_prepare, gemv_q6_K},
    {TQ_TYPE_F32, gemv_ref_col_bytes, gemv_ref_prepare, gemv_f32},
    {TQ_TYPE_F16, gemv_ref_col_bytes, gemv_ref_prepare, gemv_f16},
    {TQ_TYPE_BF16, gemv_ref_col_bytes, gemv_ref_prepare, gemv_bf16},
};

/* Float weights, several columns: FR x FC tiles, driven by cpu_gemm_float
 * (plugins/common/cpu_matmul.c: column blocks, rows widened once). */
static const cpu_float_tiles float_tiles = {FR, FC, x86_f16_row, tile_f32, tile_f16, tile_bf16};
CPU_GEMM_FLOAT_ENTRIES(float_tiles)

/* Prefill: the float tiles sum in one chain, not in dot_float's two, so
 * they start where the integer ones do (a batch of a few columns gives each
 * column the bits it gets alone, as the conformance test checks); the
 * row-interleaved integer tiles (groups of 8 rows) pay for their unpacking
 * from I8_MIN_COLS columns on. */
const cpu_mm_gemm x86_gemms[X86_N_GEMMS] = {
    {TQ_TYPE_F32, I8_MIN_COLS, FR, NULL, gemm_float},
    {TQ_TYPE_F16, I8_MIN_COLS, FR, gemm_float_buf_bytes, gemm_float},
    {TQ_TYPE_BF16, I8_MIN_COLS, FR, gemm_float_buf_bytes, gemm_float},
    {TQ_TYPE_Q4_0, I8_MIN_COLS, 8, x86_gemm_i8_buf_bytes, x86_gemm_i8},
    {TQ_TYPE_Q5_0, I8_MIN_COLS, 8, x86_gemm_i8_buf_bytes, x86_gemm_i8},
    {TQ_TYPE_Q8_0, I8_MIN_COLS, 8, x86_gemm_i8_buf_bytes, x86_gemm_i8},
    {TQ_TYPE_Q4_K, I8_MIN_COLS, 8, x86_gemm_k_buf_bytes, x86_gemm_k},
    {TQ_TYPE_Q5_K, I8_MIN_COLS, 8, x86_gemm_k_buf_bytes, x86_gemm_k},
};
