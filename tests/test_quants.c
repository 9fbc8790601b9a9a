/* test_quants.c — the GGUF block formats.
 *
 * Three independent views of each format are checked against the code:
 *  1. Layout: blocks are built field by field from the element formulas of
 *     ../shared/specs/gguf-llama-phi3.md §2.2 by this file's own packers,
 *     one quant / scale / min at a time over every value it can take, and
 *     every decoded element must equal the formula. Random blocks must decode
 *     exactly as a second, naive element-by-element reader written here.
 *  2. Encoders: round trips over several value distributions, with error
 *     bounds derived from each format's scale rule (not fitted).
 *  3. Dot products: equal to the f64 dot of the decoded operands within the
 *     float rounding the kernels' summation can introduce.
 * Plus the f16/bf16 conversions, exhaustively. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_half.h"
#include "tq_quants.h"
#include "tq_types.h"
#include "tq_test_util.h"

#define QK 256 /* largest block, in elements */

/* ---- test-side randomness ---------------------------------------------- */

static uint64_t t_state = 0x5eed;

static uint64_t t_next(void) {
    uint64_t z = (t_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static double t_uniform(void) { return ((double)(t_next() >> 11) + 0.5) * 0x1.0p-53; }

static float t_normal(void) {
    return (float)(sqrt(-2.0 * log(t_uniform())) * cos(6.283185307179586 * t_uniform()));
}

static void random_bytes(void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)t_next();
}

/* A finite half of either sign with magnitude in [2^-10, 2^2). */
static uint16_t random_scale_half(void) {
    const uint16_t exp = (uint16_t)(5 + t_next() % 12);
    return (uint16_t)((t_next() & 1) << 15 | exp << 10 | (t_next() & 0x3FF));
}

/* ---- an independent half/bf16 reader ----------------------------------- */

static double naive_half(uint16_t h) {
    const int e = (h >> 10) & 31, m = h & 0x3FF;
    double v = e == 0    ? ldexp(m, -24)
             : e == 31   ? (m ? NAN : INFINITY)
                         : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static int is_half_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0; }

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- formats, as the spec describes them ------------------------------- */

/* What a format looks like from the outside: one block of `n` elements,
 * split into `groups` groups with a scale (and optionally a min) each. */
typedef struct fmt {
    tq_type type;
    const char *name;
    int n, groups;
    int qmin, qmax;     /* range of a stored quant, as the formula sees it  */
    int smin, smax;     /* range of a group scale (0..0 when none)           */
    int mmin, mmax;     /* range of a group min (0..0 when none)             */
    size_t bytes;
} fmt;

/* The decoded contents of a block: "shadow" fields the packers below turn
 * into bytes. For formats without group scales sc[0] = 1 is implied. */
typedef struct shadow {
    uint16_t d, dmin; /* halves; dmin is q4_1/q5_1's m too */
    int q[QK];
    int sc[16], mn[16];
} shadow;

static void put_bits(uint8_t *p, int bit, int width, unsigned v) {
    for (int k = 0; k < width; k++) {
        const int b = bit + k;
        p[b / 8] = (uint8_t)((p[b / 8] & ~(1u << (b % 8))) | (((v >> k) & 1u) << (b % 8)));
    }
}

static void put_half(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Byte offsets of the fields, from the spec's field order (§2.1). */
static void pack(const fmt *f, const shadow *s, uint8_t *b) {
    memset(b, 0, f->bytes);
    switch (f->type) {
    case TQ_TYPE_Q4_0: /* half d; qs[16]: element i<16 low nibble of i */
    case TQ_TYPE_Q4_1: {
        const int off = f->type == TQ_TYPE_Q4_0 ? 2 : 4;
        put_half(b, s->d);
        if (f->type == TQ_TYPE_Q4_1) put_half(b + 2, s->dmin);
        for (int i = 0; i < 32; i++) put_bits(b + off, 8 * (i & 15) + (i < 16 ? 0 : 4), 4, (unsigned)s->q[i]);
        break;
    }
    case TQ_TYPE_Q5_0:
    case TQ_TYPE_Q5_1: {
        const int off = f->type == TQ_TYPE_Q5_0 ? 2 : 4;
        put_half(b, s->d);
        if (f->type == TQ_TYPE_Q5_1) put_half(b + 2, s->dmin);
        for (int i = 0; i < 32; i++) {
            put_bits(b + off + 4, 8 * (i & 15) + (i < 16 ? 0 : 4), 4, (unsigned)s->q[i] & 15);
            put_bits(b + off, i, 1, (unsigned)s->q[i] >> 4); /* qh as LE u32 */
        }
        break;
    }
    case TQ_TYPE_Q8_0:
        put_half(b, s->d);
        for (int i = 0; i < 32; i++) b[2 + i] = (uint8_t)(int8_t)s->q[i];
        break;
    case TQ_TYPE_Q2_K: { /* scales[16]; qs[64]; half d; half dmin */
        for (int g = 0; g < 16; g++) b[g] = (uint8_t)(s->sc[g] | s->mn[g] << 4);
        for (int i = 0; i < 256; i++) {
            const int n = i / 128, j = (i % 128) / 32, l = i % 32;
            put_bits(b + 16, 8 * (32 * n + l) + 2 * j, 2, (unsigned)s->q[i]);
        }
        put_half(b + 80, s->d);
        put_half(b + 82, s->dmin);
        break;
    }
    case TQ_TYPE_Q3_K: { /* hmask[32]; qs[64]; scales[12]; half d */
        for (int i = 0; i < 256; i++) {
            const int n = i / 128, j = (i % 128) / 32, l = i % 32;
            /* q = low2 - (hbit ? 0 : 4) */
            const int hbit = s->q[i] >= 0;
            put_bits(b + 32, 8 * (32 * n + l) + 2 * j, 2, (unsigned)(s->q[i] + (hbit ? 0 : 4)));
            put_bits(b, 8 * l + 4 * n + j, 1, (unsigned)hbit);
        }
        for (int g = 0; g < 16; g++) {
            const unsigned u = (unsigned)(s->sc[g] + 32);
            put_bits(b + 96, g < 8 ? 8 * g : 8 * (g - 8) + 4, 4, u & 15);
            put_bits(b + 96, 8 * (8 + g % 4) + 2 * (g / 4), 2, u >> 4);
        }
        put_half(b + 108, s->d);
        break;
    }
    case TQ_TYPE_Q4_K:
    case TQ_TYPE_Q5_K: { /* half d; half dmin; scales[12]; (qh[32];) qs[128] */
        put_half(b, s->d);
        put_half(b + 2, s->dmin);
        uint8_t *sb = b + 4;
        for (int j = 0; j < 8; j++) {
            const unsigned sc = (unsigned)s->sc[j], mn = (unsigned)s->mn[j];
            if (j < 4) {
                put_bits(sb, 8 * j, 6, sc);
                put_bits(sb, 8 * (j + 4), 6, mn);
            } else {
                put_bits(sb, 8 * (j + 4), 4, sc & 15);
                put_bits(sb, 8 * (j + 4) + 4, 4, mn & 15);
                put_bits(sb, 8 * (j - 4) + 6, 2, sc >> 4);
                put_bits(sb, 8 * j + 6, 2, mn >> 4);
            }
        }
        uint8_t *qs = f->type == TQ_TYPE_Q4_K ? b + 16 : b + 48;
        for (int i = 0; i < 256; i++) {
            const int c = i / 64, r = i % 64;
            put_bits(qs, 8 * (32 * c + r % 32) + (r < 32 ? 0 : 4), 4, (unsigned)s->q[i] & 15);
            if (f->type == TQ_TYPE_Q5_K)
                put_bits(b + 16, 8 * (r % 32) + 2 * c + (r >= 32), 1, (unsigned)s->q[i] >> 4);
        }
        break;
    }
    case TQ_TYPE_Q6_K: { /* ql[128]; qh[64]; scales[16] (i8); half d */
        for (int i = 0; i < 256; i++) {
            const int n = i / 128, t = i % 128, l = t % 32, k = t / 32;
            const unsigned u = (unsigned)(s->q[i] + 32);
            put_bits(b, 8 * (64 * n + 32 * (k & 1) + l) + (k < 2 ? 0 : 4), 4, u & 15);
            put_bits(b + 128, 8 * (32 * n + l) + 2 * k, 2, u >> 4);
        }
        for (int g = 0; g < 16; g++) b[192 + g] = (uint8_t)(int8_t)s->sc[g];
        put_half(b + 208, s->d);
        break;
    }
    default:
        ck_abort_msg("no packer for %s", f->name);
    }
}

/* Element i of a shadow block by the spec's formula, in double (exact for
 * the small values the layout tests use). */
static double formula(const fmt *f, const shadow *s, int i) {
    const double d = naive_half(s->d), dmin = naive_half(s->dmin);
    const int g = i / (f->n / f->groups);
    switch (f->type) {
    case TQ_TYPE_Q4_0: return d * (s->q[i] - 8);
    case TQ_TYPE_Q5_0: return d * (s->q[i] - 16);
    case TQ_TYPE_Q4_1:
    case TQ_TYPE_Q5_1: return d * s->q[i] + dmin;
    case TQ_TYPE_Q8_0: return d * s->q[i];
    case TQ_TYPE_Q3_K:
    case TQ_TYPE_Q6_K: return d * s->sc[g] * s->q[i];
    default: return d * s->sc[g] * s->q[i] - dmin * s->mn[g]; /* q2_K, q4_K, q5_K */
    }
}

static const fmt formats[] = {
    {TQ_TYPE_Q4_0, "q4_0", 32, 1, 0, 15, 1, 1, 0, 0, sizeof(tq_block_q4_0)},
    {TQ_TYPE_Q4_1, "q4_1", 32, 1, 0, 15, 1, 1, 0, 0, sizeof(tq_block_q4_1)},
    {TQ_TYPE_Q5_0, "q5_0", 32, 1, 0, 31, 1, 1, 0, 0, sizeof(tq_block_q5_0)},
    {TQ_TYPE_Q5_1, "q5_1", 32, 1, 0, 31, 1, 1, 0, 0, sizeof(tq_block_q5_1)},
    {TQ_TYPE_Q8_0, "q8_0", 32, 1, -128, 127, 1, 1, 0, 0, sizeof(tq_block_q8_0)},
    {TQ_TYPE_Q2_K, "q2_K", 256, 16, 0, 3, 0, 15, 0, 15, sizeof(tq_block_q2_K)},
    {TQ_TYPE_Q3_K, "q3_K", 256, 16, -4, 3, -32, 31, 0, 0, sizeof(tq_block_q3_K)},
    {TQ_TYPE_Q4_K, "q4_K", 256, 8, 0, 15, 0, 63, 0, 63, sizeof(tq_block_q4_K)},
    {TQ_TYPE_Q5_K, "q5_K", 256, 8, 0, 31, 0, 63, 0, 63, sizeof(tq_block_q5_K)},
    {TQ_TYPE_Q6_K, "q6_K", 256, 16, -32, 31, -128, 127, 0, 0, sizeof(tq_block_q6_K)},
};
#define N_FORMATS ((int)(sizeof formats / sizeof formats[0]))

static const fmt *find_fmt(tq_type t) {
    for (int k = 0; k < N_FORMATS; k++)
        if (formats[k].type == t) return &formats[k];
    return NULL;
}

static int wrap(int v, int lo, int hi) { return lo + ((v - lo) % (hi - lo + 1) + (hi - lo + 1)) % (hi - lo + 1); }

/* Decodes the shadow's packed block and compares every element with the
 * formula. Returns the number of mismatches (and reports the first). */
static int check_shadow(const fmt *f, const shadow *s, const char *what, int which, int value) {
    uint8_t blk[512];
    float y[QK];
    pack(f, s, blk);
    tq_type_get(f->type)->to_f32(blk, y, f->n);
    int bad = 0;
    for (int i = 0; i < f->n; i++) {
        const double want = formula(f, s, i);
        if ((double)y[i] != want) {
            if (!bad)
                fprintf(stderr, "%s: %s %d = %d: element %d is %.9g, formula says %.9g\n",
                        f->name, what, which, value, i, (double)y[i], want);
            bad++;
        }
    }
    return bad;
}

/* Every quant over every value, then every group scale and min over every
 * value, each changed alone from a base block whose elements are all
 * distinct, so a field landing in the wrong place changes the wrong element. */
START_TEST(layout_field_by_field) {
    const fmt *f = &formats[_i];
    shadow s = {0};
    s.d = 0x3400;    /* 0.25: products stay exact */
    s.dmin = 0x3800; /* 0.5 */
    for (int g = 0; g < 16; g++) {
        s.sc[g] = f->smin == f->smax ? f->smin : wrap(g * 7 + 1, f->smin, f->smax);
        s.mn[g] = f->mmin == f->mmax ? f->mmin : wrap(g * 5 + 2, f->mmin, f->mmax);
    }
    for (int i = 0; i < f->n; i++) s.q[i] = wrap(i * 3 + 1, f->qmin, f->qmax);
    int bad = check_shadow(f, &s, "base", 0, 0);

    for (int i = 0; i < f->n && bad == 0; i++) {
        const int keep = s.q[i];
        for (int v = f->qmin; v <= f->qmax && bad == 0; v++) {
            s.q[i] = v;
            bad += check_shadow(f, &s, "quant", i, v);
        }
        s.q[i] = keep;
    }
    for (int g = 0; g < f->groups && bad == 0 && f->smin != f->smax; g++) {
        const int keep = s.sc[g];
        for (int v = f->smin; v <= f->smax && bad == 0; v++) {
            s.sc[g] = v;
            bad += check_shadow(f, &s, "scale", g, v);
        }
        s.sc[g] = keep;
    }
    for (int g = 0; g < f->groups && bad == 0 && f->mmin != f->mmax; g++) {
        const int keep = s.mn[g];
        for (int v = f->mmin; v <= f->mmax && bad == 0; v++) {
            s.mn[g] = v;
            bad += check_shadow(f, &s, "min", g, v);
        }
        s.mn[g] = keep;
    }
    ck_assert_msg(bad == 0, "%s: %d layout mismatches", f->name, bad);
}
END_TEST

/* ---- a naive reader of random blocks ------------------------------------ */

static unsigned get_bits(const uint8_t *p, int bit, int width) {
    unsigned v = 0;
    for (int k = 0; k < width; k++) v |= (unsigned)((p[(bit + k) / 8] >> ((bit + k) % 8)) & 1) << k;
    return v;
}

static float get_half(const uint8_t *p) { return (float)naive_half((uint16_t)(p[0] | p[1] << 8)); }

/* Element i of a raw block, reading bytes exactly as §2.2 says, split into
 * its level q, the step between levels and an offset: the element is
 * step * q - offset. Evaluated in float in the formula's left-to-right order
 * (d * sc * q - dmin * mn = (d * sc) * q - (dmin * mn), the order ggml uses),
 * so the result must be bit-identical. [qlo, qhi] is the range of levels. */
typedef struct parts {
    int q, qlo, qhi;
    float step, offset;
} parts;

static parts naive_parts(tq_type t, const uint8_t *b, int i) {
    parts p = {0, 0, 0, 0.0f, 0.0f};
    switch (t) {
    case TQ_TYPE_Q4_0:
    case TQ_TYPE_Q4_1: {
        const int off = t == TQ_TYPE_Q4_0 ? 2 : 4;
        const int nib = (int)get_bits(b + off, 8 * (i & 15) + (i < 16 ? 0 : 4), 4);
        p.step = get_half(b);
        p.q = t == TQ_TYPE_Q4_0 ? nib - 8 : nib;
        p.qlo = t == TQ_TYPE_Q4_0 ? -8 : 0;
        p.qhi = p.qlo + 15;
        if (t == TQ_TYPE_Q4_1) p.offset = -get_half(b + 2);
        return p;
    }
    case TQ_TYPE_Q5_0:
    case TQ_TYPE_Q5_1: {
        const int off = t == TQ_TYPE_Q5_0 ? 2 : 4;
        const uint32_t qh = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
                            (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
        const int nib = (int)get_bits(b + off + 4, 8 * (i & 15) + (i < 16 ? 0 : 4), 4);
        const int q = nib | (int)((qh >> i) & 1) << 4;
        p.step = get_half(b);
        p.q = t == TQ_TYPE_Q5_0 ? q - 16 : q;
        p.qlo = t == TQ_TYPE_Q5_0 ? -16 : 0;
        p.qhi = p.qlo + 31;
        if (t == TQ_TYPE_Q5_1) p.offset = -get_half(b + 2);
        return p;
    }
    case TQ_TYPE_Q8_0:
    case TQ_TYPE_Q8_1:
        p.step = get_half(b);
        p.q = (int8_t)b[(t == TQ_TYPE_Q8_0 ? 2 : 4) + i];
        p.qlo = -128;
        p.qhi = 127;
        return p;
    case TQ_TYPE_Q8_K:
        memcpy(&p.step, b, 4);
        p.q = (int8_t)b[4 + i];
        p.qlo = -128;
        p.qhi = 127;
        return p;
    case TQ_TYPE_Q2_K: {
        const int n = i / 128, j = (i % 128) / 32, l = i % 32;
        const int sc = b[i / 16];
        p.q = (b[16 + 32 * n + l] >> (2 * j)) & 3;
        p.qhi = 3;
        p.step = get_half(b + 80) * (float)(sc & 0xF);
        p.offset = get_half(b + 82) * (float)(sc >> 4);
        return p;
    }
    case TQ_TYPE_Q3_K: {
        const int n = i / 128, j = (i % 128) / 32, l = i % 32;
        const uint8_t *hmask = b, *qs = b + 32, *sb = b + 96;
        const int g = i / 16;
        const int low4 = g < 8 ? sb[g] & 0xF : sb[g - 8] >> 4;
        const int high2 = (sb[8 + g % 4] >> (2 * (g / 4))) & 3;
        p.q = ((qs[32 * n + l] >> (2 * j)) & 3) - (((hmask[l] >> (4 * n + j)) & 1) ? 0 : 4);
        p.qlo = -4;
        p.qhi = 3;
        p.step = get_half(b + 108) * (float)((low4 | high2 << 4) - 32);
        return p;
    }
    case TQ_TYPE_Q4_K:
    case TQ_TYPE_Q5_K: {
        const uint8_t *s = b + 4;
        const int sub = i / 32, c = i / 64, r = i % 64;
        int sc, mn;
        if (sub < 4) {
            sc = s[sub] & 63;
            mn = s[sub + 4] & 63;
        } else {
            sc = (s[sub + 4] & 0x0F) | ((s[sub - 4] >> 6) << 4);
            mn = (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
        }
        const uint8_t *qs = t == TQ_TYPE_Q4_K ? b + 16 : b + 48;
        p.q = r < 32 ? qs[32 * c + r] & 0xF : qs[32 * c + r - 32] >> 4;
        if (t == TQ_TYPE_Q5_K) p.q += 16 * ((b[16 + r % 32] >> (2 * c + (r >= 32))) & 1);
        p.qhi = t == TQ_TYPE_Q4_K ? 15 : 31;
        p.step = get_half(b) * (float)sc;
        p.offset = get_half(b + 2) * (float)mn;
        return p;
    }
    case TQ_TYPE_Q6_K: {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t scale = (int8_t)b[192 + i / 16];
        const int n = i / 128, t2 = i % 128, l = t2 % 32, k = t2 / 32;
        const uint8_t lo = (k & 1) ? ql[64 * n + 32 + l] : ql[64 * n + l];
        const int low4 = k < 2 ? lo & 0xF : lo >> 4;
        p.q = (low4 | ((qh[32 * n + l] >> (2 * k)) & 3) << 4) - 32;
        p.qlo = -32;
        p.qhi = 31;
        p.step = get_half(b + 208) * (float)scale;
        return p;
    }
    default: ck_abort_msg("no naive reader for type %d", (int)t);
    }
    return p;
}

/* The decoded element; *minpart receives the part contributed by a block or
 * group minimum (for error bounds of dot products). */
static float naive_elem(tq_type t, const uint8_t *b, int i, float *minpart) {
    const parts p = naive_parts(t, b, i);
    *minpart = -p.offset;
    return p.step * (float)p.q - p.offset;
}

/* Offsets of the halves to overwrite in a random block so it decodes to
 * finite values (-1 ends the list), and of a float d (q8_K). */
static void sanitize_block(tq_type t, uint8_t *b) {
    static const struct { tq_type t; int off[3]; } halves[] = {
        {TQ_TYPE_Q4_0, {0, -1}},      {TQ_TYPE_Q4_1, {0, 2, -1}},    {TQ_TYPE_Q5_0, {0, -1}},
        {TQ_TYPE_Q5_1, {0, 2, -1}},   {TQ_TYPE_Q8_0, {0, -1}},       {TQ_TYPE_Q8_1, {0, 2, -1}},
        {TQ_TYPE_Q2_K, {80, 82, -1}}, {TQ_TYPE_Q3_K, {108, -1}},     {TQ_TYPE_Q4_K, {0, 2, -1}},
        {TQ_TYPE_Q5_K, {0, 2, -1}},   {TQ_TYPE_Q6_K, {208, -1}},
    };
    for (size_t k = 0; k < sizeof halves / sizeof halves[0]; k++)
        if (halves[k].t == t)
            for (int j = 0; halves[k].off[j] >= 0; j++) put_half(b + halves[k].off[j], random_scale_half());
    if (t == TQ_TYPE_Q8_K) {
        const float d = (float)ldexp(t_uniform() - 0.5, -6);
        memcpy(b, &d, 4);
    }
}

static const tq_type block_types[] = {
    TQ_TYPE_Q4_0, TQ_TYPE_Q4_1, TQ_TYPE_Q5_0, TQ_TYPE_Q5_1, TQ_TYPE_Q8_0, TQ_TYPE_Q8_1,
    TQ_TYPE_Q2_K, TQ_TYPE_Q3_K, TQ_TYPE_Q4_K, TQ_TYPE_Q5_K, TQ_TYPE_Q6_K, TQ_TYPE_Q8_K,
};
#define N_BLOCK_TYPES ((int)(sizeof block_types / sizeof block_types[0]))

/* Random rows of several blocks: the decoder and the naive reader agree bit
 * for bit (so also on which block each element comes from). */
START_TEST(random_blocks_match_naive_reader) {
    const tq_type t = block_types[_i];
    const tq_type_info *info = tq_type_get(t);
    const int nb = 5, n = nb * info->block_elems;
    uint8_t *row = malloc((size_t)nb * (size_t)info->block_bytes);
    float *y = malloc(sizeof(float) * (size_t)n);
    int bad = 0;
    for (int rep = 0; rep < 200; rep++) {
        random_bytes(row, (size_t)nb * (size_t)info->block_bytes);
        for (int b = 0; b < nb; b++) sanitize_block(t, row + (size_t)b * (size_t)info->block_bytes);
        info->to_f32(row, y, n);
        for (int i = 0; i < n; i++) {
            float mp;
            const int b = i / info->block_elems;
            const float want =
                naive_elem(t, row + (size_t)b * (size_t)info->block_bytes, i % info->block_elems, &mp);
            if (f_bits(want) != f_bits(y[i]) && bad++ == 0)
                fprintf(stderr, "%s: element %d decodes to %.9g, naive reader %.9g\n", info->name, i,
                        (double)y[i], (double)want);
        }
    }
    ck_assert_msg(bad == 0, "%s: %d elements differ", info->name, bad);
    free(row);
    free(y);
}
END_TEST

/* ---- encoders ------------------------------------------------------------ */

enum { DIST_UNIFORM, DIST_NORMAL, DIST_OUTLIERS, DIST_POSITIVE, DIST_NEGATIVE, DIST_CONSTANT,
       DIST_ZERO, DIST_TINY, DIST_LARGE, DIST_SPARSE, N_DIST };

static void fill(float *x, int n, int dist) {
    const float c = (float)(t_uniform() * 4 - 2);
    for (int i = 0; i < n; i++) {
        switch (dist) {
        case DIST_UNIFORM: x[i] = (float)(2 * t_uniform() - 1); break;
        case DIST_NORMAL: x[i] = t_normal(); break;
        case DIST_OUTLIERS: x[i] = t_next() % 61 == 0 ? 40 * t_normal() : 0.05f * t_normal(); break;
        case DIST_POSITIVE: x[i] = (float)(0.5 + t_uniform()); break;
        case DIST_NEGATIVE: x[i] = (float)(-3 - t_uniform()); break;
        case DIST_CONSTANT: x[i] = c; break;
        case DIST_ZERO: x[i] = 0.0f; break;
        case DIST_TINY: x[i] = 1e-4f * t_normal(); break;
        case DIST_LARGE: x[i] = 300.0f * t_normal(); break;
        case DIST_SPARSE: x[i] = t_next() % 5 == 0 ? t_normal() : 0.0f; break;
        }
    }
}

/* The spec's scale of one block of n values: the value with the largest
 * magnitude (first one on ties), and min / max. */
static float signed_extreme(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    *mn = FLT_MAX;
    *mx = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        *mn = fminf(*mn, x[j]);
        *mx = fmaxf(*mx, x[j]);
    }
}

/* Checks one encoded block of a 32-element format against the rules of
 * §2.1/2.3 and returns the number of elements outside their error bound.
 *
 * Symmetric formats (q4_0, q5_0: d = max/-2^(b-1); q8_0/q8_1: d = amax/127)
 * round x/d to the nearest level, so |x - k*d| <= |d|/2, except that the
 * level +2^(b-1) does not exist: values with x/d > 2^(b-1) - 1/2 (the
 * opposite-sign side of the range) are clamped to 2^(b-1) - 1 and may be off
 * by (x/d - (2^(b-1)-1))|d| <= |d|. Asymmetric ones (q4_1, q5_1: d =
 * (max-min)/(2^b-1), m = min) round (x-min)/d, |err| <= d/2. On top of that
 * the stored halves differ from the exact d and m: |k| |d - d_h| and
 * |m - m_h|. A relative 1e-5 of d and 2^-22 of |x| absorb the float rounding
 * of x*id and of the reconstruction. */
static int check_block32(tq_type t, const float *x, const uint8_t *blk, double *worst) {
    int bad = 0;
    double d = 0, m = 0, dh, mh = 0;
    int levels_hi = 0; /* largest level k, for the clamp zone */
    switch (t) {
    case TQ_TYPE_Q4_0: d = signed_extreme(x, 32) / -8.0f; levels_hi = 7; break;
    case TQ_TYPE_Q5_0: d = signed_extreme(x, 32) / -16.0f; levels_hi = 15; break;
    case TQ_TYPE_Q8_0:
    case TQ_TYPE_Q8_1: {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        d = amax / 127.0f;
        levels_hi = 127;
        break;
    }
    case TQ_TYPE_Q4_1:
    case TQ_TYPE_Q5_1: {
        float mn, mx;
        min_max(x, 32, &mn, &mx);
        d = (mx - mn) / (t == TQ_TYPE_Q4_1 ? 15.0f : 31.0f);
        m = mn;
        levels_hi = t == TQ_TYPE_Q4_1 ? 15 : 31;
        break;
    }
    default: ck_abort();
    }
    /* The stored scale is exactly the half of the spec's float scale. */
    dh = get_half(blk);
    if (dh != naive_half(tq_f32_to_f16((float)d))) {
        fprintf(stderr, "type %d: stored d %.9g, want half(%.9g)\n", (int)t, dh, d);
        return 32;
    }
    if (t == TQ_TYPE_Q4_1 || t == TQ_TYPE_Q5_1) {
        mh = get_half(blk + 2);
        if (mh != naive_half(tq_f32_to_f16((float)m))) return 32;
    }
    for (int j = 0; j < 32; j++) {
        float mp;
        const double y = naive_elem(t, blk, j, &mp);
        double round_err, level;
        if (t == TQ_TYPE_Q4_1 || t == TQ_TYPE_Q5_1) {
            round_err = fabs(d) / 2;
            level = levels_hi;
        } else {
            const double r = d != 0 ? x[j] / d : 0;
            round_err = fabs(d) * (r > levels_hi + 0.5 ? r - levels_hi : 0.5);
            level = levels_hi + 1;
        }
        const double bound = round_err + level * fabs(d - dh) + fabs(m - mh) + 1e-5 * fabs(d) +
                             0x1p-22 * (fabs(x[j]) + fabs(m));
        const double err = fabs(x[j] - y);
        if (bound > 0 && err / bound > *worst) *worst = err / bound;
        if (err > bound) {
            if (bad == 0)
                fprintf(stderr, "type %d: x=%.9g decodes to %.9g, err %.3g > bound %.3g\n", (int)t,
                        (double)x[j], y, err, bound);
            bad++;
        }
    }
    return bad;
}

static const tq_type encoders32[] = {TQ_TYPE_Q4_0, TQ_TYPE_Q4_1, TQ_TYPE_Q5_0,
                                     TQ_TYPE_Q5_1, TQ_TYPE_Q8_0, TQ_TYPE_Q8_1};

START_TEST(encode32_error_bounds) {
    const tq_type t = encoders32[_i];
    const tq_type_info *info = tq_type_get(t);
    enum { NB = 64 };
    float x[NB * 32];
    uint8_t blk[NB * 36];
    double worst = 0;
    int bad = 0;
    for (int dist = 0; dist < N_DIST; dist++) {
        for (int rep = 0; rep < 20; rep++) {
            fill(x, NB * 32, dist);
            info->from_f32(x, blk, NB * 32);
            for (int b = 0; b < NB; b++)
                bad += check_block32(t, x + 32 * b, blk + (size_t)b * (size_t)info->block_bytes, &worst);
        }
    }
    ck_assert_msg(bad == 0, "%s: %d elements out of bounds", info->name, bad);
    /* The bound is not vacuous: random data comes close to it. */
    ck_assert_msg(worst > 0.5, "%s: worst error only %.3f of the bound", info->name, worst);
}
END_TEST

/* Values the encoders must reproduce exactly, and their rounding rules at
 * ties (§2.3): q8_0 rounds half away from zero; q4_0 and q4_1 "+ 0.5 then
 * truncate" (half up). */
START_TEST(encode32_ties) {
    float x[32];
    tq_block_q8_0 q8;
    /* amax = 127 makes d = 1 exactly, so x*id = x. */
    for (int j = 0; j < 32; j++) x[j] = 0;
    x[0] = 127;
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 0.5f;
    x[4] = -0.5f;
    x[5] = -127;
    x[6] = 3.49f;
    tq_quantize_row_q8_0(x, &q8, 32);
    ck_assert_uint_eq(q8.d, 0x3C00);
    const int want8[7] = {127, 3, -3, 1, -1, -127, 3};
    for (int j = 0; j < 7; j++) ck_assert_int_eq(q8.qs[j], want8[j]);

    /* q4_0: max = -8 gives d = 1; levels are x + 8 rounded half up. */
    tq_block_q4_0 q4;
    for (int j = 0; j < 32; j++) x[j] = 0;
    x[0] = -8;
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[17] = 7.5f; /* clamped to level 15 (value 7) */
    x[18] = 7.4f;
    tq_quantize_row_q4_0(x, &q4, 32);
    ck_assert_uint_eq(q4.d, 0x3C00);
    float y[32];
    tq_dequantize_row_q4_0(&q4, y, 32);
    ck_assert_float_eq(y[0], -8);
    ck_assert_float_eq(y[1], 3);
    ck_assert_float_eq(y[2], -2);
    ck_assert_float_eq(y[17], 7);
    ck_assert_float_eq(y[18], 7);
    ck_assert_float_eq(y[3], 0);
}
END_TEST

START_TEST(q8_1_sum_field) {
    enum { NB = 32 };
    float x[NB * 32];
    tq_block_q8_1 b[NB];
    for (int dist = 0; dist < N_DIST; dist++) {
        fill(x, NB * 32, dist);
        tq_quantize_row_q8_1(x, b, NB * 32);
        for (int k = 0; k < NB; k++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * k + j]));
            const float d = amax / 127.0f; /* the unrounded scale (spec §2.3) */
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += b[k].qs[j];
            ck_assert_uint_eq(b[k].s, tq_f32_to_f16((float)sum * d));
        }
    }
}
END_TEST

/* q8_K: d = 1/iscale in float, iscale = -127/max (signed), levels by
 * nearest_int (ties to even), clamped at 127; bsums = sums of 16 quants. */
START_TEST(q8_K_encoder) {
    enum { NB = 16 };
    float x[NB * 256], y[NB * 256];
    tq_block_q8_K b[NB];
    double worst = 0;
    for (int dist = 0; dist < N_DIST; dist++) {
        for (int rep = 0; rep < 5; rep++) {
            fill(x, NB * 256, dist);
            tq_quantize_row_q8_K(x, b, NB * 256);
            tq_dequantize_row_q8_K(b, y, NB * 256);
            for (int k = 0; k < NB; k++) {
                const float *xb = x + 256 * k;
                const float max = signed_extreme(xb, 256);
                const float d = max != 0 ? 1.0f / (-127.0f / max) : 0.0f;
                ck_assert_msg(f_bits(b[k].d) == f_bits(d), "d %.9g, want %.9g", (double)b[k].d, (double)d);
                for (int g = 0; g < 16; g++) {
                    int sum = 0;
                    for (int l = 0; l < 16; l++) sum += b[k].qs[16 * g + l];
                    ck_assert_int_eq(b[k].bsums[g], sum);
                }
                for (int j = 0; j < 256; j++) {
                    const double bound = fabs(d) * (0.5 + 1e-5) + 0x1p-22 * fabs(xb[j]);
                    const double err = fabs((double)xb[j] - y[256 * k + j]);
                    ck_assert_msg(err <= bound, "q8_K: x=%.9g -> %.9g", (double)xb[j], (double)y[256 * k + j]);
                    if (bound > 0 && err / bound > worst) worst = err / bound;
                }
            }
        }
    }
    ck_assert_msg(worst > 0.5, "q8_K: worst error only %.3f of the bound", worst);

    /* Ties: with max = -127, iscale = 1 exactly, so levels are nearest_int(x). */
    float t[256] = {0};
    t[0] = -127;
    t[1] = 2.5f;
    t[2] = 3.5f;
    t[3] = -2.5f;
    t[4] = 0.5f;
    t[5] = 126.5f;
    t[6] = 127;
    tq_quantize_row_q8_K(t, b, 256);
    ck_assert_float_eq(b[0].d, 1.0f);
    const int want[7] = {-127, 2, 4, -2, 0, 126, 127};
    for (int j = 0; j < 7; j++) ck_assert_int_eq(b[0].qs[j], want[j]);
    /* The opposite sign of the extreme maps to +127 (clamp not exceeded). */
    t[0] = 127;
    t[6] = -127;
    tq_quantize_row_q8_K(t, b, 256);
    ck_assert_int_eq(b[0].qs[0], -127);
    ck_assert_int_eq(b[0].qs[6], 127);
}
END_TEST

/* K-quant encoders search their scales (ggml's make_q*_quants; exactness
 * against ggml is checked with the reference data below), but their last
 * step is fixed by the format: every element is re-rounded to the nearest
 * level of the grid its group decodes with (step * q - offset, q clamped to
 * the format's range). So: each element is within step/2 of its decoded
 * value, or sits on an end level with x beyond it. Groups whose step is 0
 * keep the search's levels, all of which decode to the same value. */
static const tq_type k_encoders[] = {TQ_TYPE_Q2_K, TQ_TYPE_Q3_K, TQ_TYPE_Q4_K, TQ_TYPE_Q5_K,
                                     TQ_TYPE_Q6_K};

START_TEST(k_encoders_round_to_nearest_level) {
    const tq_type t = k_encoders[_i];
    const tq_type_info *info = tq_type_get(t);
    enum { NB = 8 };
    float x[NB * 256], y[NB * 256];
    uint8_t blk[NB * 256];
    int bad = 0, clamped = 0, checked = 0;
    for (int dist = 0; dist < N_DIST; dist++) {
        for (int rep = 0; rep < 6; rep++) {
            fill(x, NB * 256, dist);
            info->from_f32(x, blk, NB * 256);
            info->to_f32(blk, y, NB * 256);
            for (int i = 0; i < NB * 256; i++) {
                const uint8_t *b = blk + (size_t)(i / 256) * (size_t)info->block_bytes;
                const parts p = naive_parts(t, b, i % 256);
                if (dist == DIST_ZERO) ck_assert_msg(y[i] == 0.0f, "%s: zero encodes to %g", info->name, (double)y[i]);
                if (p.step == 0.0f) continue;
                checked++;
                const double dev = ((double)x[i] - y[i]) / fabs(p.step); /* in steps, signed */
                const double up = p.step > 0 ? dev : -dev; /* towards higher levels */
                const double tol = 1e-5 + 0x1p-21 * (fabs(x[i]) + fabs(p.offset)) / fabs(p.step);
                if (fabs(dev) <= 0.5 + tol) continue;
                if ((p.q == p.qhi && up > 0) || (p.q == p.qlo && up < 0)) {
                    clamped++;
                    continue;
                }
                if (bad++ == 0)
                    fprintf(stderr, "%s: x=%.9g decodes to %.9g, %.3f steps away at level %d\n",
                            info->name, (double)x[i], (double)y[i], dev, p.q);
            }
        }
    }
    ck_assert_msg(bad == 0, "%s: %d of %d elements not at their nearest level", info->name, bad, checked);
    ck_assert_int_gt(checked, NB * 256 * N_DIST * 6 / 2);
}
END_TEST

/* ---- f16 / bf16 ---------------------------------------------------------- */

START_TEST(f16_exhaustive) {
    static uint16_t h[65536], back[65536];
    static float f[65536];
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    tq_dequantize_row_f16(h, f, 65536);
    tq_quantize_row_f16(f, back, 65536);
    for (int i = 0; i < 65536; i++) {
        if (is_half_nan(h[i])) {
            ck_assert_msg(isnan(f[i]), "%04x should decode to NaN", i);
            ck_assert_msg(is_half_nan(back[i]), "%04x NaN should stay NaN", i);
            continue;
        }
        ck_assert_msg((double)f[i] == naive_half(h[i]) && !!signbit(f[i]) == !!(i & 0x8000),
                      "%04x decodes to %.9g", i, (double)f[i]);
        ck_assert_msg(back[i] == h[i], "%04x round-trips to %04x", i, back[i]);
    }
}
END_TEST

/* Rounding to the nearest half, ties to even: between every pair of
 * neighbouring positive halves (and past the largest, towards 2^16 = inf),
 * the exact midpoint goes to the even one and its float neighbours to the
 * nearer one; negative values mirror. */
START_TEST(f16_rounding) {
    for (uint32_t h = 0; h < 0x7C00; h++) {
        const double a = naive_half((uint16_t)h);
        const double b = h == 0x7BFF ? 65536.0 : naive_half((uint16_t)(h + 1));
        const float mid = (float)((a + b) / 2);
        ck_assert((double)mid == (a + b) / 2); /* representable: 12 significant bits */
        const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        float in[6] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), -mid,
                       -nextafterf(mid, 0), -nextafterf(mid, INFINITY)};
        uint16_t out[6];
        tq_quantize_row_f16(in, out, 6);
        const uint16_t want[6] = {even, (uint16_t)h, (uint16_t)(h + 1),
                                  (uint16_t)(even | 0x8000), (uint16_t)(h | 0x8000),
                                  (uint16_t)((h + 1) | 0x8000)};
        for (int k = 0; k < 6; k++)
            ck_assert_msg(out[k] == want[k], "%.9g -> %04x, want %04x", (double)in[k], out[k], want[k]);
    }
    const float big[3] = {1e6f, -1e30f, INFINITY};
    uint16_t out[3];
    tq_quantize_row_f16(big, out, 3);
    ck_assert_uint_eq(out[0], 0x7C00);
    ck_assert_uint_eq(out[1], 0xFC00);
    ck_assert_uint_eq(out[2], 0x7C00);
}
END_TEST

START_TEST(bf16_exhaustive_and_rounding) {
    static uint16_t h[65536], back[65536];
    static float f[65536];
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    tq_dequantize_row_bf16(h, f, 65536);
    tq_quantize_row_bf16(f, back, 65536);
    for (int i = 0; i < 65536; i++) {
        ck_assert_uint_eq(f_bits(f[i]), (uint32_t)i << 16);
        const int nan = (i & 0x7F80) == 0x7F80 && (i & 0x7F) != 0;
        if (nan)
            ck_assert_msg((back[i] & 0x7F80) == 0x7F80 && (back[i] & 0x40), "%04x: quiet NaN", i);
        else
            ck_assert_msg(back[i] == i, "%04x round-trips to %04x", i, back[i]);
    }
    /* Ties: the float halfway between two bf16 values has low half 0x8000. */
    for (uint32_t v = 0; v < 0x7F80; v++) {
        for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
            const uint32_t hv = v | sign;
            const uint16_t even = (uint16_t)((v & 1) ? hv + 1 : hv);
            float in[3] = {bits_f(hv << 16 | 0x8000), bits_f(hv << 16 | 0x7FFF),
                           bits_f(hv << 16 | 0x8001)};
            uint16_t out[3];
            tq_quantize_row_bf16(in, out, 3);
            ck_assert_uint_eq(out[0], even);
            ck_assert_uint_eq(out[1], hv);
            ck_assert_uint_eq(out[2], hv + 1);
        }
    }
    /* A signalling NaN comes back quiet. */
    const float snan = bits_f(0x7F800001);
    uint16_t q;
    tq_quantize_row_bf16(&snan, &q, 1);
    ck_assert_msg((q & 0x7FC0) == 0x7FC0, "sNaN -> %04x", q);
}
END_TEST

/* ---- dot products -------------------------------------------------------- */

/* The activation format of each weight type (spec §2.3's table). */
static const struct { tq_type w, act; } act_table[] = {
    {TQ_TYPE_F32, TQ_TYPE_F32},   {TQ_TYPE_F16, TQ_TYPE_F16},   {TQ_TYPE_BF16, TQ_TYPE_BF16},
    {TQ_TYPE_Q4_0, TQ_TYPE_Q8_0}, {TQ_TYPE_Q4_1, TQ_TYPE_Q8_1}, {TQ_TYPE_Q5_0, TQ_TYPE_Q8_0},
    {TQ_TYPE_Q5_1, TQ_TYPE_Q8_1}, {TQ_TYPE_Q8_0, TQ_TYPE_Q8_0}, {TQ_TYPE_Q2_K, TQ_TYPE_Q8_K},
    {TQ_TYPE_Q3_K, TQ_TYPE_Q8_K}, {TQ_TYPE_Q4_K, TQ_TYPE_Q8_K}, {TQ_TYPE_Q5_K, TQ_TYPE_Q8_K},
    {TQ_TYPE_Q6_K, TQ_TYPE_Q8_K},
};
#define N_DOT ((int)(sizeof act_table / sizeof act_table[0]))

START_TEST(traits_table) {
    for (int k = 0; k < N_DOT; k++) {
        const tq_quant_traits *tr = tq_quant_traits_get(act_table[k].w);
        ck_assert_msg(tr != NULL, "no traits for %s", tq_type_name(act_table[k].w));
        ck_assert_int_eq(tr->act_type, act_table[k].act);
        ck_assert(tr->vec_dot != NULL);
        ck_assert(tr->act_from_f32 == tq_type_get(tr->act_type)->from_f32);
        ck_assert_int_eq(tq_type_get(tr->act_type)->block_elems,
                         tq_type_get(act_table[k].w)->block_elems);
    }
    const tq_type none[] = {TQ_TYPE_Q8_1, TQ_TYPE_Q8_K, TQ_TYPE_I8, TQ_TYPE_I32, 4, 29, 31, -1, 1024};
    for (size_t k = 0; k < sizeof none / sizeof none[0]; k++)
        ck_assert_ptr_null(tq_quant_traits_get(none[k]));
}
END_TEST

/* A row of weights of type t: from its encoder, or random blocks with sane
 * scales (every bit pattern a file may hold, not just what encoders make). */
static void make_weights(tq_type t, uint8_t *w, int n, int random_blocks) {
    const tq_type_info *info = tq_type_get(t);
    float *x = malloc(sizeof(float) * (size_t)n);
    fill(x, n, (int)(t_next() % 3) == 0 ? DIST_OUTLIERS : DIST_NORMAL);
    if (!random_blocks || info->block_elems == 1) {
        info->from_f32(x, w, n);
    } else {
        const int nb = n / info->block_elems;
        random_bytes(w, (size_t)nb * (size_t)info->block_bytes);
        for (int b = 0; b < nb; b++) sanitize_block(t, w + (size_t)b * (size_t)info->block_bytes);
    }
    free(x);
}

/* |part of w_i that comes from a block/group minimum|, 0 for other types. */
static double min_part(tq_type t, const uint8_t *w, int i) {
    const tq_type_info *info = tq_type_get(t);
    if (info->block_elems == 1) return 0;
    float mp;
    const int b = i / info->block_elems;
    naive_elem(t, w + (size_t)b * (size_t)info->block_bytes, i % info->block_elems, &mp);
    return fabs(mp);
}

/* vec_dot == sum of the decoded products, up to the float rounding of the
 * kernel: each block's term is formed with a few float roundings and the
 * terms are added in float (in 8 lanes plus a final reduction for the
 * K-quants), so the error is at most ~(nb + 12) * 2^-24 times the sum of the
 * magnitudes of everything added — where weights with a minimum contribute
 * their scaled part and their min part separately. The f32/f16/bf16 kernels
 * accumulate in double: product rounding 2^-24 each plus the final cast.
 * q4_1/q5_1 also use the activation's stored s = half(d * sum q) instead of
 * d_h * sum q: |s - d_h sum q| <= 2^-11 (|s| + |sum q| |d_h|) per block. */
static void check_dot(tq_type wt, int n) {
    const tq_quant_traits *tr = tq_quant_traits_get(wt);
    const tq_type_info *wi = tq_type_get(wt), *ai = tq_type_get(tr->act_type);
    uint8_t *w = malloc(tq_type_row_bytes(wt, n));
    uint8_t *a = malloc(tq_type_row_bytes(tr->act_type, n));
    float *x = malloc(sizeof(float) * (size_t)n), *wd = malloc(sizeof(float) * (size_t)n),
          *ad = malloc(sizeof(float) * (size_t)n);
    for (int rep = 0; rep < 8; rep++) {
        make_weights(wt, w, n, rep % 2);
        fill(x, n, rep % 2 ? DIST_NORMAL : DIST_OUTLIERS);
        tr->act_from_f32(x, a, n);
        wi->to_f32(w, wd, n);
        ai->to_f32(a, ad, n);

        double want = 0, mag = 0;
        for (int i = 0; i < n; i++) {
            const double mp = min_part(wt, w, i);
            want += (double)wd[i] * ad[i];
            mag += (fabs(wd[i]) + 2 * mp) * fabs(ad[i]);
        }
        const int nb = n / wi->block_elems;
        double tol = wi->block_elems == 1 ? (2.0 * 0x1p-24 + n * 0x1p-53) * mag + 0x1p-24 * fabs(want)
                                          : (nb + 12) * 0x1p-24 * mag;
        if (tr->act_type == TQ_TYPE_Q8_1) {
            const tq_block_q8_1 *q = (const tq_block_q8_1 *)a;
            for (int b = 0; b < nb; b++) {
                int sum = 0;
                for (int j = 0; j < 32; j++) sum += q[b].qs[j];
                const double m = fabs(naive_half(((const uint16_t *)(w + (size_t)b * (size_t)wi->block_bytes))[1]));
                tol += m * 0x1p-11 * (fabs(naive_half(q[b].s)) + abs(sum) * fabs(naive_half(q[b].d)));
            }
        }
        const float got = tr->vec_dot(n, w, a);
        ck_assert_msg(fabs(got - want) <= tol, "%s n=%d: vec_dot %.9g, decoded dot %.9g (tol %.3g)",
                      wi->name, n, (double)got, want, tol);
    }
    free(w);
    free(a);
    free(x);
    free(wd);
    free(ad);
}

START_TEST(vec_dot_matches_decoded_dot) {
    const tq_type wt = act_table[_i].w;
    const int block = tq_type_get(wt)->block_elems;
    const int sizes[] = {32, 64, 96, 256, 512, 768, 1024, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        if (sizes[k] % block == 0 && sizes[k] >= (block == 1 ? 1 : block)) check_dot(wt, sizes[k]);
    if (block == 1) check_dot(wt, 7); /* scalar types take any length */
}
END_TEST

/* Exactly representable cases: integer-valued operands whose products and
 * sums are exact must give the exact dot, whatever the summation order. */
START_TEST(vec_dot_exact_small_ints) {
    for (int k = 0; k < N_DOT; k++) {
        const tq_type wt = act_table[k].w;
        const tq_quant_traits *tr = tq_quant_traits_get(wt);
        const fmt *f = find_fmt(wt);
        const int n = 512;
        uint8_t w[2048], a[2048];
        float x[512], wd[512], ad[512];
        if (f != NULL) { /* block types: pack a shadow with d = 1, small levels */
            for (int b = 0; b < n / f->n; b++) {
                shadow s = {0};
                s.d = 0x3C00;
                s.dmin = 0x3C00;
                for (int g = 0; g < 16; g++) {
                    s.sc[g] = f->smin == f->smax ? f->smin : wrap(g + 1, f->smin, f->smax);
                    s.mn[g] = f->mmin == f->mmax ? f->mmin : wrap(g, f->mmin, f->mmax);
                }
                for (int i = 0; i < f->n; i++) s.q[i] = wrap((int)(t_next() % 97), f->qmin, f->qmax);
                pack(f, &s, w + (size_t)b * f->bytes);
            }
        } else {
            for (int i = 0; i < n; i++) x[i] = (float)((int)(t_next() % 9) - 4);
            tq_type_get(wt)->from_f32(x, w, n);
        }
        /* Activations: small integers with 127 opening every block, so every
         * activation format stores them exactly (d = 1, or -1 for q8_K), and
         * all partial sums stay far below 2^24. */
        for (int i = 0; i < n; i++) x[i] = i % 32 == 0 ? 127.0f : (float)((int)(t_next() % 15) - 7);
        tr->act_from_f32(x, a, n);
        tq_type_get(wt)->to_f32(w, wd, n);
        tq_type_get(tr->act_type)->to_f32(a, ad, n);
        double want = 0;
        for (int i = 0; i < n; i++) {
            ck_assert_msg(ad[i] == x[i], "%s activation not exact", tq_type_name(tr->act_type));
            want += (double)wd[i] * ad[i];
        }
        const float got = tr->vec_dot(n, w, a);
        ck_assert_msg((double)got == want, "%s: %.9g != %.9g", tq_type_name(wt), (double)got, want);
    }
}
END_TEST

/* ---- ggml's own outputs ------------------------------------------------- */

/* tests/data/quants_ggml.bin holds what ggml's scalar code made of known
 * inputs (see quants_ggml_gen.c for how and the layout): explicit rows, and
 * digests over 256 rows of 4096 per type that this test regenerates. Ours
 * must be identical to the bit — the ref backend is meant to reproduce
 * llama.cpp's CPU numbers, and a reordered float sum, or a scale search
 * that picks another candidate once in a few thousand groups, passes every
 * tolerance test above. */

/* The generator's data source, copied from quants_ggml_gen.c (keep the two
 * the same): integer PRNG, sequenced exact/IEEE-rounded float operations. */
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

static uint64_t g_hash(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3u;
    return h;
}
#define G_HASH_INIT 0xCBF29CE484222325u

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static const void *take(reader *r, size_t n) {
    ck_assert_msg((size_t)(r->end - r->p) >= n, "quants_ggml.bin is truncated");
    const void *q = r->p;
    r->p += n;
    return q;
}

static uint32_t take_u32(reader *r) {
    uint32_t v;
    memcpy(&v, take(r, 4), 4);
    return v;
}

static uint64_t take_u64(reader *r) {
    uint64_t v;
    memcpy(&v, take(r, 8), 8);
    return v;
}

/* Copied out of the file buffer, which is not float-aligned. */
static float *take_f32(reader *r, uint32_t n) {
    float *v = malloc(sizeof(float) * n);
    memcpy(v, take(r, sizeof(float) * n), sizeof(float) * n);
    return v;
}

/* kind 0: one row encoded and decoded. */
static void ggml_encode_record(reader *r, const tq_type_info *info, tq_type t, uint32_t n) {
    const size_t bytes = tq_type_row_bytes(t, n);
    float *x = take_f32(r, n);
    const uint8_t *blocks = take(r, bytes);
    float *want = take_f32(r, n), *got = malloc(sizeof(float) * n);
    uint8_t *mine = malloc(bytes);
    info->from_f32(x, mine, n);
    for (size_t k = 0; k < bytes; k++)
        ck_assert_msg(mine[k] == blocks[k], "%s: byte %zu of block %zu is %02x, ggml's %02x",
                      info->name, k % (size_t)info->block_bytes, k / (size_t)info->block_bytes,
                      mine[k], blocks[k]);
    if (t != TQ_TYPE_Q8_1) { /* ggml has no q8_1 decoder */
        memcpy(mine, blocks, bytes);
        info->to_f32(mine, got, n);
        for (uint32_t i = 0; i < n; i++)
            ck_assert_msg(f_bits(got[i]) == f_bits(want[i]), "%s: element %u decodes to %.9g, ggml %.9g",
                          info->name, i, (double)got[i], (double)want[i]);
    }
    free(x);
    free(want);
    free(got);
    free(mine);
}

/* kind 1: one weight row and one activation row, encoded, and their dot. */
static void ggml_dot_record(reader *r, const tq_type_info *info, tq_type t, uint32_t n) {
    const tq_type at = (tq_type)take_u32(r);
    const tq_quant_traits *tr = tq_quant_traits_get(t);
    ck_assert_msg(tr != NULL && tr->act_type == at, "%s: activation type", info->name);
    const size_t bytes = tq_type_row_bytes(t, n), abytes = tq_type_row_bytes(at, n);
    float *xw = take_f32(r, n), *xa = take_f32(r, n);
    const uint8_t *wblocks = take(r, bytes), *ablocks = take(r, abytes);
    float want;
    memcpy(&want, take(r, 4), 4);
    uint8_t *mine = malloc(bytes), *amine = malloc(abytes);
    info->from_f32(xw, mine, n);
    tr->act_from_f32(xa, amine, n);
    ck_assert_msg(memcmp(mine, wblocks, bytes) == 0, "%s weights differ", info->name);
    ck_assert_msg(memcmp(amine, ablocks, abytes) == 0, "%s activations differ", info->name);
    const float got = tr->vec_dot(n, mine, amine);
    ck_assert_msg(f_bits(got) == f_bits(want), "%s n=%u: vec_dot %.9g, ggml %.9g", info->name, n,
                  (double)got, (double)want);
    free(xw);
    free(xa);
    free(mine);
    free(amine);
}

/* kind 2: digests of `rows` regenerated rows, encoded and decoded. */
static void ggml_encode_digest(reader *r, const tq_type_info *info, tq_type t, uint32_t n) {
    const uint32_t rows = take_u32(r);
    g_state = take_u64(r);
    const uint64_t want_blocks = take_u64(r), want_decoded = take_u64(r);
    const size_t bytes = tq_type_row_bytes(t, n);
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    uint8_t *blk = malloc(bytes);
    uint64_t hb = G_HASH_INIT, hy = G_HASH_INIT;
    for (uint32_t row = 0; row < rows; row++) {
        g_row(x, (int)n, (int)row);
        info->from_f32(x, blk, n);
        hb = g_hash(hb, blk, bytes);
        info->to_f32(blk, y, n);
        hy = g_hash(hy, y, sizeof(float) * n);
    }
    ck_assert_msg(hb == want_blocks, "%s: %u encoded rows differ from ggml's", info->name, rows);
    if (t != TQ_TYPE_Q8_1)
        ck_assert_msg(hy == want_decoded, "%s: %u decoded rows differ from ggml's", info->name, rows);
    free(x);
    free(y);
    free(blk);
}

/* kind 3: digest of the dots of `rows` regenerated weight/activation rows. */
static void ggml_dot_digest(reader *r, const tq_type_info *info, tq_type t, uint32_t n) {
    const uint32_t rows = take_u32(r);
    g_state = take_u64(r);
    const tq_type at = (tq_type)take_u32(r);
    const uint64_t want = take_u64(r);
    const tq_quant_traits *tr = tq_quant_traits_get(t);
    ck_assert_msg(tr != NULL && tr->act_type == at, "%s: activation type", info->name);
    float *x = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n);
    uint8_t *w = malloc(tq_type_row_bytes(t, n)), *q = malloc(tq_type_row_bytes(at, n));
    uint64_t h = G_HASH_INIT;
    for (uint32_t row = 0; row < rows; row++) {
        g_row(x, (int)n, (int)row);
        g_row(a, (int)n, (int)row + 2 * (int)(row & 1));
        info->from_f32(x, w, n);
        tr->act_from_f32(a, q, n);
        const float s = tr->vec_dot(n, w, q);
        h = g_hash(h, &s, 4);
    }
    ck_assert_msg(h == want, "%s: dots of %u rows differ from ggml's", info->name, rows);
    free(x);
    free(a);
    free(w);
    free(q);
}

START_TEST(matches_ggml_reference_data) {
    char *path = tq_test_data_path("quants_ggml.bin");
    size_t len = 0;
    uint8_t *file = (uint8_t *)tq_test_read_file(path, &len);
    ck_assert_msg(file != NULL, "cannot read %s", path);
    reader r = {file, file + len};
    ck_assert(memcmp(take(&r, 8), "TQQGGML2", 8) == 0);
    const uint32_t count = take_u32(&r);
    int seen[4] = {0};
    for (uint32_t k = 0; k < count; k++) {
        const uint32_t kind = take_u32(&r);
        const tq_type t = (tq_type)take_u32(&r);
        const uint32_t n = take_u32(&r);
        const tq_type_info *info = tq_type_get(t);
        ck_assert_msg(kind < 4 && info != NULL && n % (uint32_t)info->block_elems == 0, "record %u", k);
        switch (kind) {
        case 0: ggml_encode_record(&r, info, t, n); break;
        case 1: ggml_dot_record(&r, info, t, n); break;
        case 2: ggml_encode_digest(&r, info, t, n); break;
        default: ggml_dot_digest(&r, info, t, n); break;
        }
        seen[kind]++;
    }
    ck_assert(r.p == r.end);
    /* every encoder (12 types) and every dot (10 weight types) */
    ck_assert_int_ge(seen[0], 12);
    ck_assert_int_ge(seen[1], 10);
    ck_assert_int_ge(seen[2], 12);
    ck_assert_int_ge(seen[3], 10);
    free(file);
    free(path);
}
END_TEST

int main(void) {
    Suite *s = suite_create("quants");
    TCase *layout = tcase_create("layout");
    tcase_set_timeout(layout, 300);
    tcase_add_loop_test(layout, layout_field_by_field, 0, N_FORMATS);
    tcase_add_loop_test(layout, random_blocks_match_naive_reader, 0, N_BLOCK_TYPES);
    suite_add_tcase(s, layout);

    TCase *enc = tcase_create("encoders");
    tcase_add_loop_test(enc, encode32_error_bounds, 0, (int)(sizeof encoders32 / sizeof encoders32[0]));
    tcase_add_test(enc, encode32_ties);
    tcase_add_test(enc, q8_1_sum_field);
    tcase_add_test(enc, q8_K_encoder);
    tcase_add_loop_test(enc, k_encoders_round_to_nearest_level, 0,
                        (int)(sizeof k_encoders / sizeof k_encoders[0]));
    suite_add_tcase(s, enc);

    TCase *half = tcase_create("half");
    tcase_set_timeout(half, 120);
    tcase_add_test(half, f16_exhaustive);
    tcase_add_test(half, f16_rounding);
    tcase_add_test(half, bf16_exhaustive_and_rounding);
    suite_add_tcase(s, half);

    TCase *dot = tcase_create("dot");
    tcase_set_timeout(dot, 300);
    tcase_add_test(dot, traits_table);
    tcase_add_loop_test(dot, vec_dot_matches_decoded_dot, 0, N_DOT);
    tcase_add_test(dot, vec_dot_exact_small_ints);
    suite_add_tcase(s, dot);

    TCase *ggml = tcase_create("ggml");
    tcase_set_timeout(ggml, 300);
    tcase_add_test(ggml, matches_ggml_reference_data);
    suite_add_tcase(s, ggml);
    return tq_test_run(s);
}
