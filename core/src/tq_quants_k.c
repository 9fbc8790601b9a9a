/* tq_quants_k.c — the K-quants (256-element super-blocks): decoders, the q8_K
 * activation encoder, the q{2..6}_K · q8_K dot products and the q{2..6}_K
 * reference encoders.
 *
 * As in tq_quants.c, the float arithmetic follows ggml's scalar code in
 * order (ggml-quants.c dequantize_row_*, quantize_row_*_ref; ggml-cpu/
 * quants.c ggml_vec_dot_*_q8_K_generic), so results match bit for bit. The
 * generic dot kernels accumulate per block into 8 integer "lanes" and then 8
 * float lane sums; that shape is kept because it fixes the float rounding. */
#include "tq_quants.h"

#include <math.h>
#include <string.h>

#include "tq_half.h"
#include "tq_quants_k.h"

/* Round to nearest, ties to even, by adding 1.5 * 2^23: the sum's mantissa
 * then holds the rounded integer. Exactly ggml's nearest_int: valid for
 * |f| <= 2^22; beyond that (or for NaN) it returns some int, as ggml does,
 * and the callers clamp it. */
static int nearest_int(float f) {
    const float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* The 6-bit scale and min of sub-block j (0..7) of a q4_K/q5_K block: the
 * first four are the low 6 bits of bytes 0..3 and 4..7; the last four put
 * their low nibbles in bytes 8..11 and their top 2 bits in the spare top
 * bits of bytes 0..7. */
static void get_scale_min_k4(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* The 16 signed 6-bit scales of a q3_K block: low nibbles of bytes 0..7
 * (groups 0..7) then their high nibbles (groups 8..15); 2 high bits each
 * from bytes 8..11, group g taking bits 2*(g/4) of byte 8 + g%4. Byte-wise
 * equivalent of ggml's kmask1/kmask2 shuffle on a little-endian uint32. */
static void q3_K_scales(const uint8_t b[12], int scales[16]) {
    for (int g = 0; g < 16; g++) {
        const int low4 = g < 8 ? b[g] & 0x0F : b[g - 8] >> 4;
        const int high2 = (b[8 + g % 4] >> (2 * (g / 4))) & 3;
        scales[g] = (low4 | high2 << 4) - 32;
    }
}

/* ------------------------------------------------------------------------ */
/* Decoders                                                                  */

void tq_dequantize_row_q2_K(const void *x, float *y, int64_t n) {
    const tq_block_q2_K *b = x;
    for (int64_t i = 0; i < n / TQ_QK_K; i++) {
        const float d = tq_f16_to_f32(b[i].d), dmin = tq_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        int is = 0;
        /* Two halves of 128; each byte of a 32-byte run holds one 2-bit
         * value for each of the half's four 32-element quarters. */
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int k = 0; k < 2; k++) { /* two groups of 16 per quarter */
                    const uint8_t sc = b[i].scales[is++];
                    const float dl = d * (float)(sc & 0x0F), ml = dmin * (float)(sc >> 4);
                    for (int l = 16 * k; l < 16 * k + 16; l++)
                        *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

void tq_dequantize_row_q3_K(const void *x, float *y, int64_t n) {
    const tq_block_q3_K *b = x;
    for (int64_t i = 0; i < n / TQ_QK_K; i++) {
        const float d = tq_f16_to_f32(b[i].d);
        int scales[16];
        q3_K_scales(b[i].scales, scales);
        const uint8_t *q = b[i].qs;
        const uint8_t *hm = b[i].hmask;
        int is = 0;
        unsigned m = 1; /* hmask bit: one per quarter, over the whole block */
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int k = 0; k < 2; k++) {
                    const float dl = d * (float)scales[is++];
                    for (int l = 16 * k; l < 16 * k + 16; l++) {
                        const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

void tq_dequantize_row_q4_K(const void *x, float *y, int64_t n) {
    const tq_block_q4_K *b = x;
    for (int64_t i = 0; i < n / TQ_QK_K; i++) {
        const float d = tq_f16_to_f32(b[i].d), dmin = tq_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        /* 64 elements per 32 bytes: low nibbles first, then high nibbles. */
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, mn;
            get_scale_min_k4(is, b[i].scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            get_scale_min_k4(is + 1, b[i].scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0F) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void tq_dequantize_row_q5_K(const void *x, float *y, int64_t n) {
    const tq_block_q5_K *b = x;
    for (int64_t i = 0; i < n / TQ_QK_K; i++) {
        const float d = tq_f16_to_f32(b[i].d), dmin = tq_f16_to_f32(b[i].dmin);
        const uint8_t *ql = b[i].qs, *qh = b[i].qh;
        unsigned u1 = 1, u2 = 2; /* qh bit of the low / high nibble run */
        for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, mn;
            get_scale_min_k4(is, b[i].scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            get_scale_min_k4(is + 1, b[i].scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

/* The 6-bit value (already minus 32) of element 32*k + l of one 128-half of
 * a q6_K block, k = 0..3, l = 0..31: ql gives the low nibble (bytes 0..31
 * for k = 0, 2; 32..63 for k = 1, 3; k >= 2 use the high nibble), qh byte l
 * gives 2 bits at position 2k. */
static int q6_value(const uint8_t *ql, const uint8_t *qh, int k, int l) {
    const uint8_t lo = ql[l + 32 * (k & 1)];
    const int low4 = k < 2 ? lo & 0x0F : lo >> 4;
    return (low4 | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
}

void tq_dequantize_row_q6_K(const void *x, float *y, int64_t n) {
    const tq_block_q6_K *b = x;
    for (int64_t i = 0; i < n / TQ_QK_K; i++) {
        const float d = tq_f16_to_f32(b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++)
                    y[32 * k + l] = d * (float)sc[2 * k + l / 16] * (float)q6_value(ql, qh, k, l);
        }
    }
}

void tq_dequantize_row_q8_K(const void *x, float *y, int64_t n) {
    const tq_block_q8_K *b = x;
    for (int64_t i = 0; i < n / TQ_QK_K; i++, y += TQ_QK_K)
        for (int j = 0; j < TQ_QK_K; j++) y[j] = b[i].d * (float)b[i].qs[j];
}

/* ------------------------------------------------------------------------ */
/* q8_K: the activation format of every K-quant dot product                 */

/* Scaled so that the signed extreme maps to -127 (so +127 is reachable only
 * by the opposite sign, hence the clamp); bsums let the dots apply the
 * weights' per-group minimums without revisiting the quants. */
void tq_quantize_row_q8_K(const float *x, void *y, int64_t n) {
    tq_block_q8_K *b = y;
    for (int64_t i = 0; i < n / TQ_QK_K; i++, x += TQ_QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < TQ_QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            /* ggml leaves bsums unset here; zero is their true value. */
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < TQ_QK_K; j++) {
            const int v = nearest_int(iscale * x[j]);
            b[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < TQ_QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += b[i].qs[16 * g + l];
            b[i].bsums[g] = (int16_t)sum;
        }
        b[i].d = 1.0f / iscale;
    }
}

/* ------------------------------------------------------------------------ */
/* Dot products                                                              */

/* Shared tail of the q3..q6 kernels: quants q[256] (already decoded to small
 * signed/unsigned ints) times activations, weighted by one scale per group of
 * `group` elements, summed into ggml's 8 integer lanes. */
static void lane_sums(const int8_t *q, const int8_t *a, const int *scales, int group,
                      int32_t lanes[8]) {
    for (int j = 0; j < TQ_QK_K; j += 8) {
        const int scale = scales[j / group];
        for (int l = 0; l < 8; l++) lanes[l] += scale * (int16_t)(q[j + l] * a[j + l]);
    }
}

float tq__vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a) {
    const tq_block_q2_K *x = w;
    const tq_block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / TQ_QK_K; i++) {
        const uint8_t *sc = x[i].scales;
        int summs = 0;
        for (int g = 0; g < 16; g++) summs += y[i].bsums[g] * (sc[g] >> 4);
        const float dall = y[i].d * tq_f16_to_f32(x[i].d);
        const float dmin = y[i].d * tq_f16_to_f32(x[i].dmin);
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        int isum = 0, is = 0;
        for (int half = 0; half < 2; half++, q2 += 32) {
            for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
                for (int k = 0; k < 2; k++) {
                    int s = 0;
                    for (int l = 16 * k; l < 16 * k + 16; l++) s += q8[l] * ((q2[l] >> shift) & 3);
                    isum += (sc[is++] & 0x0F) * s;
                }
            }
        }
        sum += dall * (float)isum - dmin * (float)summs;
    }
    return sum;
}

float tq__vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a) {
    const tq_block_q3_K *x = w;
    const tq_block_q8_K *y = a;
    float sums[8] = {0};
    for (int64_t i = 0; i < n / TQ_QK_K; i++) {
        int8_t q[TQ_QK_K];
        const uint8_t *q3 = x[i].qs, *hm = x[i].hmask;
        unsigned m = 1;
        int8_t *p = q;
        for (int half = 0; half < 2; half++, q3 += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1, p += 32)
                for (int l = 0; l < 32; l++)
                    p[l] = (int8_t)(((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        int scales[16];
        q3_K_scales(x[i].scales, scales);
        int32_t lanes[8] = {0};
        lane_sums(q, y[i].qs, scales, 16, lanes);
        const float d = tq_f16_to_f32(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++) sums[l] += d * (float)lanes[l];
    }
    float sum = 0.0f;
    for (int l = 0; l < 8; l++) sum += sums[l];
    return sum;
}

/* One q4_K or q5_K block (qh = NULL for q4_K) times its q8_K activations,
 * added the way ggml's kernels do: the scaled part into the 8 lane sums, the
 * min part (through the activation's bsums) straight into *sum. */
static void accumulate_q45_K(uint16_t xd, uint16_t xdmin, const uint8_t scb[12], const uint8_t *qs,
                             const uint8_t *qh, const tq_block_q8_K *y, float sums[8], float *sum) {
    int8_t q[TQ_QK_K];
    for (int j = 0; j < 4; j++, qs += 32) { /* 64 elements per 32 bytes */
        for (int l = 0; l < 32; l++) {
            q[64 * j + l] = (int8_t)(qs[l] & 0x0F);
            q[64 * j + 32 + l] = (int8_t)(qs[l] >> 4);
            if (qh != NULL) {
                q[64 * j + l] = (int8_t)(q[64 * j + l] + ((qh[l] >> (2 * j)) & 1) * 16);
                q[64 * j + 32 + l] = (int8_t)(q[64 * j + 32 + l] + ((qh[l] >> (2 * j + 1)) & 1) * 16);
            }
        }
    }
    int scales[8], mins[8];
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        get_scale_min_k4(j, scb, &sc, &mn);
        scales[j] = sc;
        mins[j] = mn;
    }
    int summs = 0;
    for (int g = 0; g < 16; g++) summs += y->bsums[g] * mins[g / 2];
    int32_t lanes[8] = {0};
    lane_sums(q, y->qs, scales, 32, lanes);
    const float d = tq_f16_to_f32(xd) * y->d;
    for (int l = 0; l < 8; l++) sums[l] += d * (float)lanes[l];
    const float dmin = tq_f16_to_f32(xdmin) * y->d;
    *sum -= dmin * (float)summs;
}

float tq__vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a) {
    const tq_block_q4_K *x = w;
    const tq_block_q8_K *y = a;
    float sums[8] = {0}, sum = 0.0f;
    for (int64_t i = 0; i < n / TQ_QK_K; i++)
        accumulate_q45_K(x[i].d, x[i].dmin, x[i].scales, x[i].qs, NULL, &y[i], sums, &sum);
    for (int l = 0; l < 8; l++) sum += sums[l];
    return sum;
}

float tq__vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a) {
    const tq_block_q5_K *x = w;
    const tq_block_q8_K *y = a;
    float sums[8] = {0}, sum = 0.0f;
    for (int64_t i = 0; i < n / TQ_QK_K; i++)
        accumulate_q45_K(x[i].d, x[i].dmin, x[i].scales, x[i].qs, x[i].qh, &y[i], sums, &sum);
    for (int l = 0; l < 8; l++) sum += sums[l];
    return sum;
}

float tq__vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a) {
    const tq_block_q6_K *x = w;
    const tq_block_q8_K *y = a;
    float sums[8] = {0};
    for (int64_t i = 0; i < n / TQ_QK_K; i++) {
        int8_t q[TQ_QK_K];
        for (int half = 0; half < 2; half++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++)
                    q[128 * half + 32 * k + l] =
                        (int8_t)q6_value(x[i].ql + 64 * half, x[i].qh + 32 * half, k, l);
        int scales[16];
        for (int g = 0; g < 16; g++) scales[g] = x[i].scales[g];
        int32_t lanes[8] = {0};
        lane_sums(q, y[i].qs, scales, 16, lanes);
        const float d = tq_f16_to_f32(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++) sums[l] += d * (float)lanes[l];
    }
    float sum = 0.0f;
    for (int l = 0; l < 8; l++) sum += sums[l];
    return sum;
}

/* ------------------------------------------------------------------------ */
/* Reference encoders of the K-quant weight formats                          */
/*
 * ggml's quantize_row_q{2..6}_K_ref (what `llama-quantize` runs when there
 * is no importance matrix), reproduced bit for bit: each super-block first
 * searches a scale (and min) per group, then quantizes those group scales
 * to 4/6/8 bits under one half-precision super-scale, and finally re-rounds
 * every element against the scale it will actually be decoded with. The
 * searches below are ggml's make_qx_quants / make_q3_quants /
 * make_qkx2_quants with only the parameter combinations these five formats
 * use; their float expressions keep ggml's evaluation order, because the
 * searches compare errors and a last-bit difference can pick another scale.
 */

/* Groups whose largest magnitude is below this are encoded as all zero. */
#define GROUP_MAX_EPS 1e-15f

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Symmetric levels -nmax..nmax-1 (stored + nmax) for the n values, weighted
 * by x^2; tries 19 scales around -nmax/max and keeps the best weighted fit.
 * Returns the group scale. (ggml: make_qx_quants, rmse_type 1, no weights.) */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Like make_qx_quants, but refines the levels one at a time (up to 5
 * sweeps) for the x^2-weighted least-squares fit. (ggml: make_q3_quants,
 * do_rmse = true.) */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                const int new_l = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric levels 0..nmax with an offset: x ~ scale * L - the_min. Starts
 * from the min..max range, then tries nstep+1 widened/narrowed ranges, each
 * refit by weighted least squares, keeping the one with the least weighted
 * error (absolute if use_mad, else squared). Returns the scale; *the_min >= 0.
 * (ggml: make_qkx2_quants.) */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Packs 256 2-bit levels the way q2_K and q3_K store them: byte l of each
 * 32-byte run holds elements l, l+32, l+64, l+96 of its 128-half. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < TQ_QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 |
                                      L[j + l + 96] << 6);
}

void tq_quantize_row_q2_K(const float *x, void *y, int64_t n) {
    tq_block_q2_K *b = y;
    const float q4scale = 15.0f;
    for (int64_t i = 0; i < n / TQ_QK_K; i++, x += TQ_QK_K) {
        uint8_t L[TQ_QK_K], Laux[16];
        float weights[16], mins[16], scales[16];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        /* 4-bit group scales and mins; ggml stores the ints into uint8 and
         * ORs the min in unmasked, so the casts below keep its wrapping. */
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) b[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            b[i].d = tq_f32_to_f16(max_scale / q4scale);
        } else {
            memset(b[i].scales, 0, sizeof b[i].scales);
            b[i].d = tq_f32_to_f16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                b[i].scales[j] = (uint8_t)(b[i].scales[j] | (unsigned)nearest_int(iscale * mins[j]) << 4);
            b[i].dmin = tq_f32_to_f16(max_min / q4scale);
        } else {
            b[i].dmin = tq_f32_to_f16(0.0f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = tq_f16_to_f32(b[i].d) * (float)(b[i].scales[j] & 0xF);
            if (d == 0.0f) continue;
            const float dm = tq_f16_to_f32(b[i].dmin) * (float)(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)clampi(nearest_int((x[16 * j + l] + dm) / d), 0, 3);
        }
        pack_2bit(L, b[i].qs);
    }
}

void tq_quantize_row_q3_K(const float *x, void *y, int64_t n) {
    tq_block_q3_K *b = y;
    for (int64_t i = 0; i < n / TQ_QK_K; i++, x += TQ_QK_K) {
        int8_t L[TQ_QK_K];
        float scales[16];
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        /* Signed 6-bit group scales, layout as q3_K_scales() reads them. */
        memset(b[i].scales, 0, sizeof b[i].scales);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                const int l = clampi((int8_t)nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    b[i].scales[j] = (uint8_t)(l & 0xF);
                else
                    b[i].scales[j - 8] = (uint8_t)(b[i].scales[j - 8] | (l & 0xF) << 4);
                b[i].scales[j % 4 + 8] = (uint8_t)(b[i].scales[j % 4 + 8] | (l >> 4) << (2 * (j / 4)));
            }
            b[i].d = tq_f32_to_f16(1 / iscale);
        } else {
            b[i].d = tq_f32_to_f16(0.0f);
        }
        int sc[16];
        q3_K_scales(b[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            const float d = tq_f16_to_f32(b[i].d) * (float)sc[j];
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clampi(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
        }
        /* Level 4..7 sets the high bit (element j -> hmask[j % 32] bit j / 32). */
        uint8_t low[TQ_QK_K];
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        for (int j = 0; j < TQ_QK_K; j++) {
            low[j] = (uint8_t)(L[j] & 3);
            if (L[j] > 3) b[i].hmask[j % 32] = (uint8_t)(b[i].hmask[j % 32] | 1u << (j / 32));
        }
        pack_2bit(low, b[i].qs);
    }
}

/* The q4_K/q5_K front half: per 32-group scale and min search, both then
 * quantized to 6 bits under d and dmin; fills scales[12], d, dmin and the
 * final levels L (0..nmax). */
static void quantize_q45_K_block(const float *x, int nmax, float rmin, int nstep, uint8_t scales_out[12],
                                 uint16_t *d_out, uint16_t *dmin_out, uint8_t L[TQ_QK_K]) {
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin,
                                     0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(scales_out, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            scales_out[j] = ls;
            scales_out[j + 4] = lm;
        } else {
            scales_out[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            scales_out[j - 4] = (uint8_t)(scales_out[j - 4] | (ls >> 4) << 6);
            scales_out[j] = (uint8_t)(scales_out[j] | (lm >> 4) << 6);
        }
    }
    *d_out = tq_f32_to_f16(max_scale / 63.0f);
    *dmin_out = tq_f32_to_f16(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, scales_out, &sc, &m);
        const float d = tq_f16_to_f32(*d_out) * (float)sc;
        if (d == 0.0f) continue;
        const float dm = tq_f16_to_f32(*dmin_out) * (float)m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clampi(nearest_int((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

void tq_quantize_row_q4_K(const float *x, void *y, int64_t n) {
    tq_block_q4_K *b = y;
    for (int64_t i = 0; i < n / TQ_QK_K; i++, x += TQ_QK_K) {
        uint8_t L[TQ_QK_K];
        quantize_q45_K_block(x, 15, -1.0f, 20, b[i].scales, &b[i].d, &b[i].dmin, L);
        uint8_t *q = b[i].qs;
        for (int j = 0; j < TQ_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

void tq_quantize_row_q5_K(const float *x, void *y, int64_t n) {
    tq_block_q5_K *b = y;
    for (int64_t i = 0; i < n / TQ_QK_K; i++, x += TQ_QK_K) {
        uint8_t L[TQ_QK_K];
        quantize_q45_K_block(x, 31, -0.5f, 15, b[i].scales, &b[i].d, &b[i].dmin, L);
        uint8_t *ql = b[i].qs, *qh = b[i].qh;
        memset(qh, 0, sizeof b[i].qh);
        unsigned m1 = 1, m2 = 2;
        for (int j = 0; j < TQ_QK_K; j += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
            for (int l = 0; l < 32; l++) {
                const int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) qh[l] = (uint8_t)(qh[l] | m1);
                if (l2 > 15) qh[l] = (uint8_t)(qh[l] | m2);
                ql[l] = (uint8_t)((l1 & 15) | (l2 & 15) << 4);
            }
        }
    }
}

void tq_quantize_row_q6_K(const float *x, void *y, int64_t n) {
    tq_block_q6_K *b = y;
    for (int64_t i = 0; i < n / TQ_QK_K; i++, x += TQ_QK_K) {
        int8_t L[TQ_QK_K];
        float scales[16];
        float max_scale = 0, max_abs_scale = 0;
        for (int g = 0; g < 16; g++) {
            scales[g] = make_qx_quants(16, 32, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        /* 8-bit signed group scales: the largest maps to -128. */
        const float iscale = -128.0f / max_scale;
        b[i].d = tq_f32_to_f16(1 / iscale);
        for (int g = 0; g < 16; g++) {
            const int s = nearest_int(iscale * scales[g]);
            b[i].scales[g] = (int8_t)(s < 127 ? s : 127);
        }
        for (int g = 0; g < 16; g++) {
            const float d = tq_f16_to_f32(b[i].d) * (float)b[i].scales[g];
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(clampi(nearest_int(x[16 * g + l] / d), -32, 31) + 32);
        }
        /* Low nibbles: elements l, l+32 of each half in ql[l], ql[l+32] (low),
         * l+64, l+96 in their high nibbles; top 2 bits of all four in qh[l]. */
        uint8_t *ql = b[i].ql, *qh = b[i].qh;
        for (int j = 0; j < TQ_QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | (q3 & 0xF) << 4);
                ql[l + 32] = (uint8_t)((q2 & 0xF) | (q4 & 0xF) << 4);
                qh[l] = (uint8_t)(q1 >> 4 | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
        }
    }
}
