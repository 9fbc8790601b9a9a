/* turbo_codec.c — row encode/decode and the scalar reference kernels
 * (see turbo_codec.h for the formats). */
#include "turbo_codec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <tqrun/tq_plugin.h>

#include "turbo_half.h"
#include "turbo_project.h"
#include "turbo_quantize.h"
#include "turbo_rotation.h"

#define Q8_BLOCK 32

static size_t row_bytes_of(turbo_kind kind, int32_t bits, int32_t d) {
    switch (kind) {
    case TURBO_F16: return (size_t)d * 2;
    case TURBO_Q8_0: return (size_t)((d + Q8_BLOCK - 1) / Q8_BLOCK) * 2 + (size_t)d;
    case TURBO_TQ: return 2 + (size_t)d * (size_t)bits / 8;
    }
    return 0;
}

int turbo_codec_init(turbo_codec *c, const char *name, int32_t d, char *why, size_t why_size) {
    memset(c, 0, sizeof *c);
    c->d = d;
    if (!name) name = "(none)";
    if (strcmp(name, "f16") == 0) {
        c->kind = TURBO_F16;
        c->bits = 16;
    } else if (strcmp(name, "q8_0") == 0) {
        c->kind = TURBO_Q8_0;
        c->bits = 8;
    } else if (strncmp(name, "tq", 2) == 0 && name[2] >= '0' && name[2] <= '9' && name[3] == 0) {
        c->kind = TURBO_TQ;
        c->bits = name[2] - '0';
        if (c->bits < TURBO_MIN_BITS || c->bits > TURBO_MAX_BITS) {
            snprintf(why, why_size, "KV format '%s': %d bits is out of range (tq2, tq3, tq4)",
                     name, c->bits);
            return 1;
        }
    } else {
        snprintf(why, why_size,
                 "KV format '%s' is unknown to the turbo cache (tq4, tq3, tq2, q8_0, f16)", name);
        return 1;
    }
    if (d <= 0 || d > TURBO_MAX_DIM || d % 2 != 0) {
        snprintf(why, why_size, "KV format '%s': head_dim %d is not supported (even, <= %d)",
                 name, d, TURBO_MAX_DIM);
        return 1;
    }
    if (c->kind == TURBO_TQ) {
        int32_t blocks[16];
        if (turbo_rot_blocks(d, blocks) == 0) {
            snprintf(why, why_size,
                     "KV format '%s': head_dim %d is not supported (a multiple of %d from %d "
                     "to %d, e.g. 64, 80, 96, 128, 256)",
                     name, d, TURBO_MIN_BLOCK, TURBO_MIN_BLOCK, TURBO_MAX_DIM);
            return 1;
        }
        c->cb = turbo_codebook_for(c->bits, d);
        c->lut_unit = c->cb->c_max / (float)TURBO_LUT_MAX;
        for (int i = 0; i < c->cb->n; i++) c->lut16[i] = (int16_t)lrintf(c->cb->c[i] / c->lut_unit);
    }
    c->row_bytes = row_bytes_of(c->kind, c->bits, d);
    return 0;
}

float turbo_row_scale(const uint8_t *row) {
    uint16_t h;
    memcpy(&h, row, 2);
    return turbo_f16_to_f32(h);
}

static void put_scale(uint8_t *row, float s) {
    const uint16_t h = turbo_f32_to_f16(s);
    memcpy(row, &h, 2);
}

void turbo_unpack_codes(int32_t bits, int32_t d, const uint8_t *codes, uint8_t *idx) {
    const uint8_t *q = codes;
    if (bits == TURBO_KERN_SPLIT || bits == TURBO_KERN_SPLIT2) { /* hi: nibbles + bit 4; lo: tq3, + 32 */
        const int32_t h = d / 2;
        turbo_unpack_codes(4, h, q, idx);
        const uint8_t *b4 = q + h / 2;
        for (int32_t i = 0; i < h; i++) idx[i] |= (uint8_t)(((b4[i / 8] >> (i % 8)) & 1) << 4);
        turbo_unpack_codes(3, h, b4 + h / 8, idx + h);
        for (int32_t i = h; i < d; i++) idx[i] += 32;
        return;
    }
    if (bits == 4) {
        for (int32_t i = 0; i < d; i += 2) {
            idx[i] = q[i / 2] & 15;
            idx[i + 1] = q[i / 2] >> 4;
        }
        return;
    }
    for (int32_t i = 0; i < d; i++) idx[i] = (q[i / 4] >> (2 * (i % 4))) & 3;
    if (bits == 3) {
        const uint8_t *hi = q + d / 4;
        for (int32_t i = 0; i < d; i++) idx[i] |= (uint8_t)(((hi[i / 8] >> (i % 8)) & 1) << 2);
    }
}

static void pack_codes(int32_t bits, int32_t d, const uint8_t *idx, uint8_t *row) {
    uint8_t *q = row + 2;
    memset(q, 0, (size_t)d * (size_t)bits / 8);
    if (bits == 4) {
        for (int32_t i = 0; i < d; i += 2) q[i / 2] = (uint8_t)(idx[i] | (idx[i + 1] << 4));
        return;
    }
    for (int32_t i = 0; i < d; i++) q[i / 4] |= (uint8_t)((idx[i] & 3) << (2 * (i % 4)));
    if (bits == 3) {
        uint8_t *hi = q + d / 4;
        for (int32_t i = 0; i < d; i++) hi[i / 8] |= (uint8_t)(((idx[i] >> 2) & 1) << (i % 8));
    }
}

/* Split rows (turbo_codec.h): idx[0..h) 5-bit, idx[h..d) 3-bit codes. */
static void pack_split(int32_t d, const uint8_t *idx, uint8_t *row) {
    const int32_t h = d / 2;
    uint8_t *q = row + 2, *b4 = q + h / 2;
    memset(q, 0, (size_t)d / 2);
    for (int32_t i = 0; i < h; i += 2) q[i / 2] = (uint8_t)((idx[i] & 15) | ((idx[i + 1] & 15) << 4));
    for (int32_t i = 0; i < h; i++) b4[i / 8] |= (uint8_t)(((idx[i] >> 4) & 1) << (i % 8));
    uint8_t *lo = b4 + h / 8, *lo1 = lo + h / 4;
    for (int32_t i = 0; i < h; i++) {
        lo[i / 4] |= (uint8_t)((idx[h + i] & 3) << (2 * (i % 4)));
        lo1[i / 8] |= (uint8_t)(((idx[h + i] >> 2) & 1) << (i % 8));
    }
}

/* Codes half `which` (0 hi, 1 lo) of rotated y (h values) against its own
 * norm into idx; returns the half's norm-corrected scale (0 for a zero
 * half). */
static double code_half(const turbo_codec *c, int which, const float *y, int32_t h, uint8_t *idx) {
    const turbo_codebook *cb = which ? c->cb_lo : c->cb;
    double n2 = 0;
    for (int32_t i = 0; i < h; i++) n2 += (double)y[i] * y[i];
    const double n = sqrt(n2);
    if (!(n >= 1e-20) || !isfinite(n)) {
        memset(idx, 0, (size_t)h);
        return 0.0;
    }
    turbo_nearest_codes(cb, y, (float)(sqrt((double)h) / n), h, idx);
    double c2 = 0;
    for (int32_t i = 0; i < h; i++) c2 += (double)cb->c[idx[i]] * cb->c[idx[i]];
    return n / sqrt(c2);
}

/* split2 rows: a norm per half, the lo one as a ratio byte. */
static void encode_split2(const turbo_codec *c, const float *sign, const float *x, uint8_t *row,
                          float *y) {
    const int32_t d = c->d, h = d / 2;
    uint8_t idx[TURBO_MAX_DIM];
    turbo_codec_rotate(c, sign, x, y);
    double s_hi = code_half(c, 0, y, h, idx), s_lo = code_half(c, 1, y + h, h, idx + h);
    if (s_hi > 65504.0) s_hi = 65504.0;
    if (!isfinite(s_lo)) s_lo = 0;
    put_scale(row, (float)s_hi);
    const double s16 = turbo_row_scale(row);
    int r = 0; /* ratio 0: a zero lo half (or hi half) */
    if (s16 > 0 && s_lo > 0) {
        const long q = lrint(16.0 * log2(s_lo / s16)) + 128;
        r = q < 1 ? 1 : q > 255 ? 255 : (int)q;
    }
    row[2] = (uint8_t)r;
    pack_split(d, idx, row + 1); /* codes from byte 3 */
}

/* f (turbo_rotate or turbo_unrotate) over the codec's blocks: the whole
 * vector, or each half of a split row with its half of the signs. */
static void per_half(const turbo_codec *c, void (*f)(const float *, int32_t, const float *, float *),
                     const float *sign, const float *in, float *out) {
    if (!c->split) {
        f(sign, c->d, in, out);
        return;
    }
    const int32_t h = c->d / 2;
    f(sign, h, in, out);
    f(sign + h, h, in + h, out + h);
}

void turbo_codec_rotate(const turbo_codec *c, const float *sign, const float *x, float *y) {
    per_half(c, turbo_rotate, sign, x, y);
}

/* The row's L2 norm, summed in double; 0 when it is zero, below 1e-20 or
 * not finite (the row is then coded as zeros with a zero scale). */
static double row_norm(const float *x, int32_t d) {
    double n2 = 0;
    for (int32_t i = 0; i < d; i++) n2 += (double)x[i] * x[i];
    const double n = sqrt(n2);
    return n >= 1e-20 && isfinite(n) ? n : 0;
}

static void encode_split(const turbo_codec *c, const float *sign, const float *x, uint8_t *row,
                         float *y) {
    const int32_t d = c->d, h = d / 2;
    uint8_t idx[TURBO_MAX_DIM];
    const double n = row_norm(x, d);
    if (n == 0) {
        memset(idx, 0, (size_t)d);
        pack_split(d, idx, row);
        put_scale(row, 0.0f);
        return;
    }
    turbo_codec_rotate(c, sign, x, y);
    const float to_unit = (float)(sqrt((double)d) / n);
    turbo_nearest_codes(c->cb, y, to_unit, h, idx);
    turbo_nearest_codes(c->cb_lo, y + h, to_unit, h, idx + h);
    double c2 = 0;
    for (int32_t i = 0; i < h; i++) {
        c2 += (double)c->cb->c[idx[i]] * c->cb->c[idx[i]];
        c2 += (double)c->cb_lo->c[idx[h + i]] * c->cb_lo->c[idx[h + i]];
    }
    pack_split(d, idx, row);
    double s = n / sqrt(c2); /* norm correction, as encode_tq */
    if (s > 65504.0) s = 65504.0;
    put_scale(row, (float)s);
}

void turbo_codec_unrotate(const turbo_codec *c, const float *sign, const float *y, float *x) {
    per_half(c, turbo_unrotate, sign, y, x);
}

int turbo_codec_init_split(turbo_codec *c, int32_t d, int norms) {
    int32_t blocks[16];
    memset(c, 0, sizeof *c);
    if (d % 2 != 0 || d > TURBO_MAX_DIM || turbo_rot_blocks(d / 2, blocks) == 0) return 1;
    c->kind = TURBO_TQ;
    c->bits = 4;
    c->d = d;
    c->split = norms == 2 ? 2 : 1;
    c->cb = turbo_codebook_exact(TURBO_WIDE_BITS, 0);
    /* one norm: coordinates of a mixture, Gaussian; a norm per half: Beta(h) where tabulated */
    c->cb_lo = norms == 2 ? turbo_codebook_for(3, d / 2) : turbo_codebook_exact(3, 0);
    c->lut_unit = c->cb->c_max / (float)TURBO_LUT_MAX; /* the 5-bit table reaches furthest */
    for (int i = 0; i < c->cb->n; i++) c->lut16[i] = (int16_t)lrintf(c->cb->c[i] / c->lut_unit);
    for (int i = 0; i < c->cb_lo->n; i++)
        c->lut16[32 + i] = (int16_t)lrintf(c->cb_lo->c[i] / c->lut_unit);
    c->row_bytes = (size_t)(norms == 2 ? 3 : 2) + (size_t)d / 2;
    return 0;
}

static void encode_tq(const turbo_codec *c, const float *sign, const float *x, uint8_t *row,
                      float *y) {
    const int32_t d = c->d;
    const turbo_codebook *cb = c->cb;
    uint8_t idx[TURBO_MAX_DIM];
    const double n = row_norm(x, d);
    if (n == 0) {
        memset(idx, 0, (size_t)d);
        pack_codes(c->bits, d, idx, row);
        put_scale(row, 0.0f);
        return;
    }
    turbo_rotate(sign, d, x, y);
    const float to_unit = (float)(sqrt((double)d) / n); /* u ~ N(0, 1) per coordinate */
    turbo_nearest_codes(cb, y, to_unit, d, idx);
    double c2 = 0;
    for (int32_t i = 0; i < d; i++) c2 += (double)cb->c[idx[i]] * cb->c[idx[i]];
    pack_codes(c->bits, d, idx, row);
    /* Norm correction: the decoded vector s*c keeps the input's norm. */
    double s = n / sqrt(c2);
    if (s > 65504.0) s = 65504.0; /* keep the fp16 scale finite */
    put_scale(row, (float)s);
}

static void encode_q8_0(int32_t d, const float *x, uint8_t *row) {
    const int32_t nb = (d + Q8_BLOCK - 1) / Q8_BLOCK;
    int8_t *q = (int8_t *)(row + 2 * (size_t)nb);
    for (int32_t b = 0; b < nb; b++) {
        const int32_t lo = b * Q8_BLOCK, hi = lo + Q8_BLOCK < d ? lo + Q8_BLOCK : d;
        float amax = 0;
        for (int32_t i = lo; i < hi; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        const float s = amax / 127.0f, inv = s != 0.0f ? 1.0f / s : 0.0f;
        for (int32_t i = lo; i < hi; i++) q[i] = (int8_t)roundf(x[i] * inv);
        put_scale(row + 2 * b, s);
    }
}

void turbo_encode_row(const turbo_codec *c, const float *sign, const float *x, uint8_t *row,
                      float *work) {
    switch (c->kind) {
    case TURBO_F16: {
        uint16_t *h = (uint16_t *)(void *)row;
        for (int32_t i = 0; i < c->d; i++) h[i] = turbo_f32_to_f16(x[i]);
        break;
    }
    case TURBO_Q8_0: encode_q8_0(c->d, x, row); break;
    case TURBO_TQ:
        if (c->split == 2) encode_split2(c, sign, x, row, work);
        else if (c->split) encode_split(c, sign, x, row, work);
        else encode_tq(c, sign, x, row, work);
        break;
    }
}

void turbo_decode_row(const turbo_codec *c, const float *sign, const uint8_t *row, float *x) {
    const int32_t d = c->d;
    switch (c->kind) {
    case TURBO_F16: {
        const uint16_t *h = (const uint16_t *)(const void *)row;
        for (int32_t i = 0; i < d; i++) x[i] = turbo_f16_to_f32(h[i]);
        break;
    }
    case TURBO_Q8_0: {
        const int32_t nb = (d + Q8_BLOCK - 1) / Q8_BLOCK;
        const int8_t *q = (const int8_t *)(row + 2 * (size_t)nb);
        for (int32_t i = 0; i < d; i++) x[i] = (float)q[i] * turbo_row_scale(row + 2 * (i / Q8_BLOCK));
        break;
    }
    case TURBO_TQ: {
        uint8_t idx[TURBO_MAX_DIM];
        turbo_unpack_codes(turbo_codec_kern_id(c), d, turbo_codec_codes(c, row), idx);
        const float s = turbo_row_scale(row), s_lo = c->split == 2 ? s * turbo_split_ratio()[row[2]] : s;
        for (int32_t i = 0; i < d; i++)
            x[i] = idx[i] < c->cb->n ? s * c->cb->c[idx[i]] : s_lo * c->cb_lo->c[idx[i] - 32];
        turbo_codec_unrotate(c, sign, x, x);
        break;
    }
    }
}

/* ---- scalar reference kernels (contract in turbo_codec.h) ----------------- */

float turbo_exp(float x) {
    /* Cephes expf: x = n ln2 + r, |r| <= ln2/2, ln2 split in two parts so
     * that n * C1 is exact; exp(r) by a degree-5 polynomial; 2^n by the
     * exponent bits (n >= -126 after the clamp, so no subnormals). */
    const float C1 = 0.693359375f, C2 = -2.12194440e-4f;
    if (!(x > -87.0f)) x = -87.0f;
    const float n = (float)lrintf(x * 1.44269504088896341f);
    float r = x - n * C1;
    r = r - n * C2;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, 4);
    return y * two_n;
}

static void k_scores_scalar(int32_t bits, const uint8_t *rows, size_t stride, int32_t n, int32_t d,
                            const int16_t *lut16, const int16_t *q16, const float *qs,
                            const float *qm, int32_t G, float *sc, size_t ld, float *mx) {
    uint8_t idx[TURBO_MAX_DIM];
    int16_t c[TURBO_MAX_DIM];
    for (int32_t j = 0; j < n; j++) {
        const uint8_t *row = rows + (size_t)j * stride;
        turbo_unpack_codes(bits, d, turbo_row_codes(row), idx);
        for (int32_t i = 0; i < d; i++) c[i] = lut16[idx[i]];
        const float sj = turbo_row_scale(row);
        for (int32_t g = 0; g < G; g++) {
            const int16_t *q = q16 + (size_t)g * (size_t)d;
            int32_t dot = 0;
            for (int32_t i = 0; i < d; i++) dot += (int32_t)q[i] * (int32_t)c[i];
            const float v = (sj * qs[g]) * (float)dot + qm[g];
            sc[(size_t)g * ld + (size_t)j] = v;
            if (v > mx[g]) mx[g] = v;
        }
    }
}

/* split2 rows (turbo_codec.h): a dot per half, then the two scales. */
static void k_scores_split2(const uint8_t *rows, size_t stride, int32_t n, int32_t d,
                            const int16_t *lut16, const int16_t *q16, const float *qs,
                            const float *qm, int32_t G, float *sc, size_t ld, float *mx) {
    uint8_t idx[TURBO_MAX_DIM];
    int16_t c[TURBO_MAX_DIM];
    const int32_t h = d / 2;
    for (int32_t j = 0; j < n; j++) {
        const uint8_t *row = rows + (size_t)j * stride;
        turbo_unpack_codes(TURBO_KERN_SPLIT2, d, row + 3, idx);
        for (int32_t i = 0; i < d; i++) c[i] = lut16[idx[i]];
        const float sj = turbo_row_scale(row), sl = sj * turbo_split_ratio()[row[2]];
        for (int32_t g = 0; g < G; g++) {
            const int16_t *q = q16 + (size_t)g * (size_t)d;
            int32_t hi = 0, lo = 0;
            for (int32_t i = 0; i < h; i++) hi += (int32_t)q[i] * (int32_t)c[i];
            for (int32_t i = h; i < d; i++) lo += (int32_t)q[i] * (int32_t)c[i];
            const float v = ((sj * qs[g]) * (float)hi + (sl * qs[g]) * (float)lo) + qm[g];
            sc[(size_t)g * ld + (size_t)j] = v;
            if (v > mx[g]) mx[g] = v;
        }
    }
}

static float exp_sum_scalar(float *x, int32_t n, float m) {
    float part[8] = {0};
    for (int32_t j = 0; j < n; j++) {
        x[j] = x[j] == -INFINITY ? 0.0f : turbo_exp(x[j] - m);
        part[j % 8] += x[j];
    }
    return ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
}

static void softmax_w_scalar(float *sc, size_t ld, int32_t n, int32_t G, const float *m,
                             const uint8_t *vrows, size_t vstride, float unit, float *lsum,
                             int16_t *w16, float *wscale) {
    float w[TURBO_V_TILE];
    for (int32_t g = 0; g < G; g++) {
        float *p = sc + (size_t)g * ld;
        int16_t *wq = w16 + (size_t)g * ld;
        lsum[g] += exp_sum_scalar(p, n, m[g]);
        for (int32_t t0 = 0; t0 < n; t0 += TURBO_V_TILE) {
            const int32_t nt = n - t0 < TURBO_V_TILE ? n - t0 : TURBO_V_TILE;
            float wmax = 0;
            for (int32_t j = 0; j < nt; j++) {
                w[j] = p[t0 + j] * turbo_row_scale(vrows + (size_t)(t0 + j) * vstride);
                if (w[j] > wmax) wmax = w[j];
            }
            const float inv = wmax > TURBO_W_TINY ? (float)TURBO_W_MAX / wmax : 0.0f;
            for (int32_t j = 0; j < nt; j++) wq[t0 + j] = (int16_t)lrintf(w[j] * inv);
            wscale[(size_t)(t0 / TURBO_V_TILE) * (size_t)G + (size_t)g] = wmax > TURBO_W_TINY ? wmax * unit : 0.0f;
        }
    }
}

static void v_acc_scalar(int32_t bits, const uint8_t *rows, size_t stride, int32_t n, int32_t d,
                         const int16_t *lut16, const int16_t *w16, size_t ld, const float *wscale,
                         int32_t G, float *acc) {
    uint8_t idx[TURBO_MAX_DIM];
    int32_t sum[TURBO_MAX_DIM];
    for (int32_t g = 0; g < G; g++) {
        memset(sum, 0, (size_t)d * sizeof *sum);
        for (int32_t j = 0; j < n; j++) {
            const int32_t w = w16[(size_t)g * ld + (size_t)j];
            if (w == 0) continue;
            turbo_unpack_codes(bits, d, turbo_row_codes(rows + (size_t)j * stride), idx);
            for (int32_t i = 0; i < d; i++) sum[i] += w * (int32_t)lut16[idx[i]];
        }
        float *a = acc + (size_t)g * (size_t)d;
        for (int32_t i = 0; i < d; i++) a[i] += wscale[g] * (float)sum[i];
    }
}

static void f16_dot_scalar(const uint16_t *row, int32_t d, const float *q, int32_t G, float *out) {
    float x[TURBO_MAX_DIM];
    for (int32_t i = 0; i < d; i++) x[i] = turbo_f16_to_f32(row[i]);
    for (int32_t g = 0; g < G; g++) {
        const float *qq = q + (size_t)g * (size_t)d;
        float s = 0;
        for (int32_t i = 0; i < d; i++) s += qq[i] * x[i];
        out[g] = s;
    }
}

static void f16_acc_scalar(const uint16_t *const *rows, int32_t nk, int32_t d, const float *w,
                           size_t ld, int32_t G, float *acc) {
    float x[TURBO_MAX_DIM];
    for (int32_t t = 0; t < nk; t++) {
        for (int32_t i = 0; i < d; i++) x[i] = turbo_f16_to_f32(rows[t][i]);
        for (int32_t g = 0; g < G; g++) {
            float *a = acc + (size_t)g * (size_t)d;
            const float wg = w[(size_t)g * ld + (size_t)t];
            for (int32_t i = 0; i < d; i++) a[i] = fmaf(wg, x[i], a[i]);
        }
    }
}

#define SCALAR_VARIANT(B)                                                                       \
    static void k_scores_##B(const uint8_t *rows, size_t stride, int32_t n, int32_t d,          \
                             const int16_t *lut16, const int16_t *q16, const float *qs,         \
                             const float *qm, int32_t G, float *sc, size_t ld, float *mx) {     \
        k_scores_scalar(B, rows, stride, n, d, lut16, q16, qs, qm, G, sc, ld, mx);              \
    }                                                                                           \
    static void v_acc_##B(const uint8_t *rows, size_t stride, int32_t n, int32_t d,             \
                          const int16_t *lut16, const int16_t *w16, size_t ld,                  \
                          const float *wscale, int32_t G, float *acc) {                         \
        v_acc_scalar(B, rows, stride, n, d, lut16, w16, ld, wscale, G, acc);                    \
    }
SCALAR_VARIANT(2)
SCALAR_VARIANT(3)
SCALAR_VARIANT(4)
SCALAR_VARIANT(5)

/* The entries every kind of row shares. */
#define SCALAR_HELPERS \
    exp_sum_scalar, f16_dot_scalar, f16_acc_scalar, turbo_basis_project, turbo_basis_unproject
static const turbo_kernels scalar_kernels[5] = {
    {"scalar", k_scores_2, softmax_w_scalar, v_acc_2, SCALAR_HELPERS},
    {"scalar", k_scores_3, softmax_w_scalar, v_acc_3, SCALAR_HELPERS},
    {"scalar", k_scores_4, softmax_w_scalar, v_acc_4, SCALAR_HELPERS},
    {"scalar", k_scores_5, softmax_w_scalar, v_acc_5, SCALAR_HELPERS},
    {"scalar", k_scores_split2, NULL, NULL, SCALAR_HELPERS},
};

const turbo_kernels *turbo_kernels_scalar(int32_t bits) {
    if (bits < TURBO_MIN_BITS || bits > TURBO_KERN_SPLIT2) return NULL;
    return &scalar_kernels[bits - TURBO_MIN_BITS];
}

/* The SIMD files exist only in builds for their architecture (meson.build
 * defines TURBO_HAVE_<ISA>); the CPU check happens here, at run time. */
#ifndef TURBO_HAVE_AVX2
const turbo_kernels *turbo_kernels_avx2(int32_t bits) { (void)bits; return NULL; }
#endif
#ifndef TURBO_HAVE_AVX512
const turbo_kernels *turbo_kernels_avx512(int32_t bits) { (void)bits; return NULL; }
#endif
#ifndef TURBO_HAVE_NEON
const turbo_kernels *turbo_kernels_neon(int32_t bits) { (void)bits; return NULL; }
#endif
#ifndef TURBO_HAVE_NEON_DOTPROD
const turbo_kernels *turbo_kernels_neon_dotprod(int32_t bits) { (void)bits; return NULL; }
#endif

#define TURBO_CPU_AVX2_SET (TQ_CPU_AVX2 | TQ_CPU_FMA | TQ_CPU_F16C)
#define TURBO_CPU_AVX512_SET                                                                    \
    (TURBO_CPU_AVX2_SET | TQ_CPU_AVX512F | TQ_CPU_AVX512BW | TQ_CPU_AVX512VL | TQ_CPU_AVX512VNNI)

#define TURBO_CPU_NEON_DOTPROD_SET (TQ_CPU_NEON | TQ_CPU_DOTPROD)

const turbo_kernels *turbo_kernels_select(int32_t bits, uint64_t cpu_features) {
    const turbo_kernels *k = NULL;
    if ((cpu_features & TURBO_CPU_AVX512_SET) == TURBO_CPU_AVX512_SET) k = turbo_kernels_avx512(bits);
    if (!k && (cpu_features & TURBO_CPU_AVX2_SET) == TURBO_CPU_AVX2_SET) k = turbo_kernels_avx2(bits);
    if (!k && (cpu_features & TURBO_CPU_NEON_DOTPROD_SET) == TURBO_CPU_NEON_DOTPROD_SET)
        k = turbo_kernels_neon_dotprod(bits);
    if (!k && (cpu_features & TQ_CPU_NEON)) k = turbo_kernels_neon(bits);
    return k ? k : turbo_kernels_scalar(bits);
}
