/* x86_ops.c — the inner loops of the shared ops (plugins/common/
 * cpu_ops.c, cpu_attention.c) in AVX2: f16 rows, rms_norm's sum of
 * squares, rope's rotation, attention's dot products and weighted V sums.
 *
 * Results versus the ref backend: f16 rows and the rotation are
 * bit-identical (VCVTPH2PS is exact; the rotation does the ref's float
 * operations, one rounding each, -ffp-contract=off); the sum of squares is
 * formed in float as the ref does and added in double lanes instead of one
 * chain; attention's dot products and sums use 8-lane FMA chains (the
 * order backend-neon copies). The conformance test states the bounds. */
#include "x86_internal.h"

void x86_f16_row(const uint16_t *src, float *dst, int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + j))));
    for (; j < n; j++) dst[j] = x86_f16_to_f32(src[j]);
}

/* Squares formed in float (as the ref does); those of lanes 0-3 and 4-7 of
 * each 8 go to two 4-lane double sums, added lane by lane, then
 * (l0 + l1) + (l2 + l3); the tail in order. */
double x86_sum_squares(const float *x, int64_t n) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 sq = _mm256_mul_ps(v, v);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < n; i++) sum += (double)(x[i] * x[i]);
    return sum;
}

/* 4 pairs (x0, x1) rotated by their 4 (c, s) pairs p: x * (c, c) +
 * swap(x) * (-s, s); x0 c + (-(x1 s)) equals the ref's x0 c - x1 s
 * exactly, and x1 c + x0 s its x0 s + x1 c. */
X86_INLINE __m256 rotate_pairs(__m256 v, __m256 p) {
    const __m256 neg_even = _mm256_setr_ps(-0.0f, 0.0f, -0.0f, 0.0f, -0.0f, 0.0f, -0.0f, 0.0f);
    const __m256 c = _mm256_moveldup_ps(p), s = _mm256_xor_ps(_mm256_movehdup_ps(p), neg_even);
    const __m256 sw = _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1));
    return _mm256_add_ps(_mm256_mul_ps(v, c), _mm256_mul_ps(sw, s));
}

/* cs holds (cos, sin) pairs c0 s0 c1 s1 .. (cpu_ops.c's rope table). */
void x86_rope_rows(const float *src, float *out, const float *cs, int64_t n_rot, int neox) {
    if (neox) {
        /* out[k] = x[k] c - x[k+h] s, out[k+h] = x[k] s + x[k+h] c */
        const int64_t h = n_rot / 2;
        int64_t k = 0;
        for (; k + 8 <= h; k += 8) {
            /* 8 pairs split into 8 cos and 8 sin: within each 128-bit lane
             * shuffle_ps picks c0 c1 c4 c5 | c2 c3 c6 c7, the 64-bit
             * permute puts them in order. */
            const __m256 p0 = _mm256_loadu_ps(cs + 2 * k), p1 = _mm256_loadu_ps(cs + 2 * k + 8);
            const __m256 c = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_shuffle_ps(p0, p1, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
            const __m256 s = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_shuffle_ps(p0, p1, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
            const __m256 x0 = _mm256_loadu_ps(src + k), x1 = _mm256_loadu_ps(src + k + h);
            _mm256_storeu_ps(out + k, _mm256_sub_ps(_mm256_mul_ps(x0, c), _mm256_mul_ps(x1, s)));
            _mm256_storeu_ps(out + k + h, _mm256_add_ps(_mm256_mul_ps(x0, s), _mm256_mul_ps(x1, c)));
        }
        for (; k < h; k++) {
            const float x0 = src[k], x1 = src[k + h], c = cs[2 * k], s = cs[2 * k + 1];
            out[k] = x0 * c - x1 * s;
            out[k + h] = x0 * s + x1 * c;
        }
        return;
    }
    int64_t i = 0;
    for (; i + 8 <= n_rot; i += 8) _mm256_storeu_ps(out + i, rotate_pairs(_mm256_loadu_ps(src + i), _mm256_loadu_ps(cs + i)));
    if (i < n_rot) {
        /* The last 1..3 pairs through the same vector operations, zero
         * padded: written as scalar code, GCC's SLP vectorizer turns the
         * pair's x0 c - x1 s, x0 s + x1 c into one fused vfmaddsub despite
         * -ffp-contract=off, which rounds differently from the ref. */
        float xs[8] = {0}, ps[8] = {0}, o[8];
        memcpy(xs, src + i, (size_t)(n_rot - i) * sizeof(float));
        memcpy(ps, cs + i, (size_t)(n_rot - i) * sizeof(float));
        _mm256_storeu_ps(o, rotate_pairs(_mm256_loadu_ps(xs), _mm256_loadu_ps(ps)));
        memcpy(out + i, o, (size_t)(n_rot - i) * sizeof(float));
    }
}

/* ---- attention ----------------------------------------------------------------- */

/* NR (1..4) K rows x NQ (1..3) query vectors in registers: 12 chains, and
 * per step 4 row and 3 query loads for 12 FMAs (one row at a time against
 * 8 queries loaded 9 vectors per 8 FMAs). Each score is one 8-lane FMA
 * chain over the head dims, then the horizontal sum: x86_dot is the 1 x 1
 * tile, so a score does not depend on how many are computed together. */
X86_INLINE void dots_tile(const float *rows, const int NR, const float *const *q, const int NQ, int64_t hd,
                          float *out, size_t out_stride) {
    __m256 acc[4][3];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++)
        _Pragma("GCC unroll 3")
        for (int k = 0; k < NQ; k++) acc[r][k] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 8) {
        __m256 qv[3];
        _Pragma("GCC unroll 3")
        for (int k = 0; k < NQ; k++) qv[k] = _mm256_loadu_ps(q[k] + d);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < NR; r++) {
            const __m256 rv = _mm256_loadu_ps(rows + (size_t)r * (size_t)hd + d);
            _Pragma("GCC unroll 3")
            for (int k = 0; k < NQ; k++) acc[r][k] = _mm256_fmadd_ps(qv[k], rv, acc[r][k]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++)
        _Pragma("GCC unroll 3")
        for (int k = 0; k < NQ; k++) out[(size_t)k * out_stride + (size_t)r] = x86_hsum(acc[r][k]);
}

float x86_dot(const float *a, const float *b, int64_t n) {
    float out;
    dots_tile(b, 1, &a, 1, n, &out, 1);
    return out;
}

#define DOTS_CASE(R, Q) \
    case (R) * 4 + (Q): dots_tile(rows, R, q + k, Q, hd, out + (size_t)k * out_stride, out_stride); break;

void x86_att_dots(const float *rows, int nr, const float *const *q, int nq, int64_t hd, float *out,
                  size_t out_stride) {
    for (int k = 0; k < nq; k += 3) {
        const int nk = nq - k < 3 ? nq - k : 3;
        switch (nr * 4 + nk) {
        DOTS_CASE(4, 3) DOTS_CASE(4, 2) DOTS_CASE(4, 1)
        DOTS_CASE(3, 3) DOTS_CASE(3, 2) DOTS_CASE(3, 1)
        DOTS_CASE(2, 3) DOTS_CASE(2, 2) DOTS_CASE(2, 1)
        DOTS_CASE(1, 3) DOTS_CASE(1, 2)
        default: dots_tile(rows, 1, q + k, 1, hd, out + (size_t)k * out_stride, out_stride); break;
        }
    }
}

void x86_axpy(float *y, float p, const float *x, int64_t n) {
    const __m256 pv = _mm256_set1_ps(p);
    for (int64_t d = 0; d < n; d += 8)
        _mm256_storeu_ps(y + d, _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d)));
}

/* 8 elements at d of a K or V row as f32. */
X86_INLINE __m256 load8(const char *p, tq_type type, int64_t d) {
    if (type == TQ_TYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + d)));
    return _mm256_loadu_ps((const float *)p + d);
}

/* Dims [d0, d0 + 16) of x86_att_vsum for NQ (1..4) query vectors: each V
 * slice loaded (and widened) once for the NQ of them, the 8 accumulators
 * held in registers over the keys the NQ all see, then each vector's own
 * last keys. Every lane is one FMA chain in key order from 0: x86_axpy's
 * operations, whatever NQ. */
X86_INLINE void vsum_tile(const char *v, size_t stride, tq_type type, const float *const *p, const int64_t *n_keys,
                          const int NQ, int64_t d0, float *const *out) {
    __m256 acc[4][2];
    int64_t n_all = n_keys[0];
    _Pragma("GCC unroll 4")
    for (int k = 0; k < NQ; k++) {
        acc[k][0] = acc[k][1] = _mm256_setzero_ps();
        n_all = n_keys[k] < n_all ? n_keys[k] : n_all;
    }
    const char *vr = v;
    for (int64_t j = 0; j < n_all; j++, vr += stride) {
        const __m256 v0 = load8(vr, type, d0), v1 = load8(vr, type, d0 + 8);
        _Pragma("GCC unroll 4")
        for (int k = 0; k < NQ; k++) {
            const __m256 pv = _mm256_broadcast_ss(p[k] + j);
            acc[k][0] = _mm256_fmadd_ps(pv, v0, acc[k][0]);
            acc[k][1] = _mm256_fmadd_ps(pv, v1, acc[k][1]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int k = 0; k < NQ; k++) {
        const char *vk = vr;
        for (int64_t j = n_all; j < n_keys[k]; j++, vk += stride) {
            const __m256 pv = _mm256_broadcast_ss(p[k] + j);
            acc[k][0] = _mm256_fmadd_ps(pv, load8(vk, type, d0), acc[k][0]);
            acc[k][1] = _mm256_fmadd_ps(pv, load8(vk, type, d0 + 8), acc[k][1]);
        }
        _mm256_storeu_ps(out[k] + d0, acc[k][0]);
        _mm256_storeu_ps(out[k] + d0 + 8, acc[k][1]);
    }
}

/* The last 8 dims when n is an odd multiple of 8, one vector at a time. */
X86_INLINE void vsum_8(const char *v, size_t stride, tq_type type, const float *p, int64_t n_keys, int64_t d0,
                       float *out) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = 0; j < n_keys; j++, v += stride) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), load8(v, type, d0), acc);
    _mm256_storeu_ps(out + d0, acc);
}

void x86_att_vsum(const char *v, size_t stride, tq_type type, const float *const *p, int np, const int64_t *n_keys,
                  int64_t n, float *const *out) {
    for (int k = 0; k < np; k += 4) {
        const int nk = np - k < 4 ? np - k : 4;
        int64_t d = 0;
        for (; d + 16 <= n; d += 16) {
            switch (nk) {
            case 4: vsum_tile(v, stride, type, p + k, n_keys + k, 4, d, out + k); break;
            case 3: vsum_tile(v, stride, type, p + k, n_keys + k, 3, d, out + k); break;
            case 2: vsum_tile(v, stride, type, p + k, n_keys + k, 2, d, out + k); break;
            default: vsum_tile(v, stride, type, p + k, n_keys + k, 1, d, out + k); break;
            }
        }
        if (d < n)
            for (int m = 0; m < nk; m++) vsum_8(v, stride, type, p[k + m], n_keys[k + m], d, out[k + m]);
    }
}

/* ---- llama.cpp's f16 accumulation (cpu_kernels.att_vacc16) ---------------- */

/* Every lane rounded to f16 (nearest even, as ggml's F16C stores) and back. */
X86_INLINE __m256 round_f16(__m256 x) { return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)); }

void x86_f16_round_row(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, round_f16(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

/* Dims [d0, d0 + 8 * NV) of x86_att_vacc16 for NQ (1..4) query vectors (bit
 * shift + k of ev[j] for vector k): each V slice widened once for the NQ of
 * them, the accumulators held in registers over the keys. */
X86_INLINE void vacc16_tile(const char *v, size_t stride, const float *const *w, const float *const *ms,
                            const uint8_t *ev, int shift, const int NQ, const int NV, int64_t n_keys, int64_t d0,
                            float *const *acc) {
    __m256 a[4][2], vv[2];
    _Pragma("GCC unroll 4")
    for (int k = 0; k < NQ; k++)
        _Pragma("GCC unroll 2")
        for (int c = 0; c < NV; c++) a[k][c] = _mm256_loadu_ps(acc[k] + d0 + 8 * c);
    const unsigned mask = (1u << NQ) - 1;
    const char *vr = v;
    for (int64_t j = 0; j < n_keys; j++, vr += stride) {
        _Pragma("GCC unroll 2")
        for (int c = 0; c < NV; c++) vv[c] = load8(vr, TQ_TYPE_F16, d0 + 8 * c);
        const unsigned e = ((unsigned)ev[j] >> shift) & mask;
        if (e) /* a new running max: the accumulator rescaled first */
            _Pragma("GCC unroll 4")
            for (int k = 0; k < NQ; k++)
                if (e >> k & 1) {
                    const __m256 m = _mm256_set1_ps(ms[k][j]);
                    _Pragma("GCC unroll 2")
                    for (int c = 0; c < NV; c++) a[k][c] = round_f16(_mm256_mul_ps(a[k][c], m));
                }
        _Pragma("GCC unroll 4")
        for (int k = 0; k < NQ; k++) {
            const __m256 pv = _mm256_broadcast_ss(w[k] + j);
            _Pragma("GCC unroll 2")
            for (int c = 0; c < NV; c++) a[k][c] = round_f16(_mm256_fmadd_ps(vv[c], pv, a[k][c]));
        }
    }
    _Pragma("GCC unroll 4")
    for (int k = 0; k < NQ; k++)
        _Pragma("GCC unroll 2")
        for (int c = 0; c < NV; c++) _mm256_storeu_ps(acc[k] + d0 + 8 * c, a[k][c]);
}

#define VACC16_CASE(Q, V) \
    case (Q) * 4 + (V): vacc16_tile(v, stride, w + k, ms + k, ev, k, Q, V, n_keys, d, acc + k); break;

void x86_att_vacc16(const char *v, size_t stride, const float *const *w, const float *const *ms, const uint8_t *ev,
                    int np, int64_t n_keys, int64_t n, float *const *acc) {
    for (int k = 0; k < np; k += 4) {
        const int nk = np - k < 4 ? np - k : 4;
        for (int64_t d = 0; d < n; d += 16) {
            const int nv = n - d >= 16 ? 2 : 1;
            switch (nk * 4 + nv) {
            VACC16_CASE(4, 2) VACC16_CASE(3, 2) VACC16_CASE(2, 2) VACC16_CASE(1, 2)
            VACC16_CASE(4, 1) VACC16_CASE(3, 1) VACC16_CASE(2, 1)
            default: vacc16_tile(v, stride, w + k, ms + k, ev, k, 1, 1, n_keys, d, acc + k); break;
            }
        }
    }
}
