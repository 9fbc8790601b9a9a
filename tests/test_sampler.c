/* test_sampler.c — the sampler against a straightforward reference: the
 * reference below sorts the whole vocabulary and applies each filter by its
 * textbook definition, in llama.cpp's order; the sampler under test never
 * sorts, reorders min_p and top_p and works in logit space. They must agree
 * on which tokens survive and, through 200k draws, on the distribution. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tq_sampler.h"
#include "tq_test_util.h"

/* ---- test-side randomness (independent of the sampler's PRNG) ---------- */

static uint64_t t_state = 12345;

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

static void random_logits(float *l, int n, float scale) {
    for (int i = 0; i < n; i++) l[i] = scale * t_normal();
}

/* ---- the reference ----------------------------------------------------- */

static const float *ref_sort_logits;

static int ref_cmp(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float li = ref_sort_logits[i], lj = ref_sort_logits[j];
    if (li != lj) return li > lj ? -1 : 1;
    return i < j ? -1 : 1;
}

/* probs[n] = the distribution the sampler should draw from, given logits,
 * params and the accepted tokens hist[n_hist] (oldest first). */
static void ref_probs(const float *logits, int n, const tq_sampler_params *p,
                      const int32_t *hist, int n_hist, double *probs) {
    float *l = malloc((size_t)n * sizeof *l);
    int *idx = malloc((size_t)n * sizeof *idx);
    double *q = malloc((size_t)n * sizeof *q);
    memcpy(l, logits, (size_t)n * sizeof *l);

    if (p->repeat_penalty != 1.0f && p->repeat_last_n > 0) {
        int from = n_hist > p->repeat_last_n ? n_hist - p->repeat_last_n : 0;
        for (int t = 0; t < n; t++) {
            int present = 0;
            for (int i = from; i < n_hist; i++) present |= hist[i] == t;
            if (present) l[t] = l[t] > 0 ? l[t] / p->repeat_penalty : l[t] * p->repeat_penalty;
        }
    }
    for (int i = 0; i < n; i++) {
        idx[i] = i;
        probs[i] = 0.0;
    }
    ref_sort_logits = l;
    qsort(idx, (size_t)n, sizeof *idx, ref_cmp);

    if (p->temp <= 0) {
        probs[idx[0]] = 1.0;
        goto out;
    }
    int m = (p->top_k > 0 && p->top_k < n) ? p->top_k : n;

    double z = 0.0;
    for (int i = 0; i < m; i++) z += exp((double)l[idx[i]] - l[idx[0]]);
    for (int i = 0; i < m; i++) q[i] = exp((double)l[idx[i]] - l[idx[0]]) / z;

    if (p->top_p < 1.0f) {
        double cum = 0.0;
        int keep = m;
        for (int i = 0; i < m; i++) {
            cum += q[i];
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        m = keep;
    }
    if (p->min_p > 0.0f) {
        int keep = 1;
        while (keep < m && q[keep] >= p->min_p * q[0]) keep++;
        m = keep;
    }
    double zt = 0.0;
    for (int i = 0; i < m; i++) zt += exp(((double)l[idx[i]] - l[idx[0]]) / p->temp);
    for (int i = 0; i < m; i++) probs[idx[i]] = exp(((double)l[idx[i]] - l[idx[0]]) / p->temp) / zt;
out:
    free(l);
    free(idx);
    free(q);
}

static tq_sampler_params params_off(float temp, uint64_t seed) {
    tq_sampler_params p = tq_sampler_defaults();
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.seed = seed;
    return p;
}

static int naive_argmax(const float *l, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

/* ---- greedy ------------------------------------------------------------ */

START_TEST(greedy_is_argmax) {
    enum { N = 5000 };
    float *l = malloc(N * sizeof *l);
    tq_sampler_params p = params_off(0.0f, 1);
    p.top_k = 40; /* filters play no part in greedy */
    p.top_p = 0.5f;
    tq_sampler *s = tq_sampler_new(&p, N);
    ck_assert_ptr_nonnull(s);
    for (int trial = 0; trial < 200; trial++) {
        random_logits(l, N, 3.0f);
        if (trial % 4 == 0) { /* a tie for first place: the lower id wins */
            int a = (int)(t_next() % N), b = (int)(t_next() % N);
            l[a] = l[b] = 100.0f;
        }
        ck_assert_int_eq(tq_sampler_sample(s, l), naive_argmax(l, N));
    }
    tq_sampler_free(s);
    free(l);
}
END_TEST

START_TEST(top_k_one_is_greedy) {
    enum { N = 3000 };
    float *l = malloc(N * sizeof *l);
    const float temps[] = {0.1f, 0.8f, 1.0f, 5.0f};
    for (int t = 0; t < 4; t++) {
        tq_sampler_params p = tq_sampler_defaults();
        p.temp = temps[t];
        p.top_k = 1;
        p.seed = (uint64_t)t;
        tq_sampler *s = tq_sampler_new(&p, N);
        for (int trial = 0; trial < 100; trial++) {
            random_logits(l, N, 1.0f);
            ck_assert_int_eq(tq_sampler_sample(s, l), naive_argmax(l, N));
        }
        tq_sampler_free(s);
    }
    free(l);
}
END_TEST

/* ---- seeds ------------------------------------------------------------- */

static void draw_sequence(uint64_t seed, const float *l, int n, int32_t *out, int count) {
    tq_sampler_params p = tq_sampler_defaults();
    p.seed = seed;
    p.top_k = 0;
    p.min_p = 0.0f;
    tq_sampler *s = tq_sampler_new(&p, n);
    for (int i = 0; i < count; i++) out[i] = tq_sampler_sample(s, l);
    tq_sampler_free(s);
}

START_TEST(seeds_reproduce_and_differ) {
    enum { N = 256, COUNT = 1000 };
    float l[N];
    random_logits(l, N, 0.5f); /* flat enough that draws vary */
    int32_t a[COUNT], b[COUNT], c[COUNT];
    draw_sequence(42, l, N, a, COUNT);
    draw_sequence(42, l, N, b, COUNT);
    draw_sequence(43, l, N, c, COUNT);
    int same_ab = 0, same_ac = 0, distinct = 0;
    int seen[N] = {0};
    for (int i = 0; i < COUNT; i++) {
        same_ab += a[i] == b[i];
        same_ac += a[i] == c[i];
        if (!seen[a[i]]++) distinct++;
    }
    ck_assert_int_eq(same_ab, COUNT);
    /* Two independent streams agree only by chance (~1/N per draw here). */
    ck_assert_int_lt(same_ac, COUNT / 10);
    ck_assert_int_gt(distinct, 50); /* and the stream is not stuck */
}
END_TEST

/* ---- the distribution -------------------------------------------------- */

/* Chi-square critical value with `df` degrees of freedom at about p = 1e-6
 * (Wilson-Hilferty with z = 4.75): a correct sampler fails it once in a
 * million runs, and the draws use fixed seeds anyway. */
static double chi2_crit(int df) {
    double h = 2.0 / (9.0 * df);
    double c = 1.0 - h + 4.75 * sqrt(h);
    return df * c * c * c;
}

/* Pearson's statistic of counts[] against n_draws * probs[], cells with an
 * expected count under 5 pooled into one. Returns it and sets *df; sets
 * *impossible to the number of draws of tokens with probability 0. */
static double chi2(const long *counts, const double *probs, int n, long n_draws, int *df,
                   long *impossible) {
    double stat = 0.0, pool_e = 0.0;
    long pool_o = 0;
    int cells = 0;
    *impossible = 0;
    for (int i = 0; i < n; i++) {
        double e = probs[i] * (double)n_draws;
        if (probs[i] == 0.0) {
            *impossible += counts[i];
        } else if (e < 5.0) {
            pool_e += e;
            pool_o += counts[i];
        } else {
            stat += (counts[i] - e) * (counts[i] - e) / e;
            cells++;
        }
    }
    if (pool_e > 0.0) {
        stat += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        cells++;
    }
    *df = cells - 1;
    return stat;
}

typedef struct dist_case {
    const char *name;
    tq_sampler_params p;
} dist_case;

START_TEST(distribution_matches_reference) {
    enum { N = 100, DRAWS = 200000, NHIST = 20 };
    static dist_case cases[8];
    int nc = 0;
    cases[nc++] = (dist_case){"temp 1, no filters", params_off(1.0f, 7)};
    cases[nc] = (dist_case){"temp 0.7, top_k 10", params_off(0.7f, 8)};
    cases[nc++].p.top_k = 10;
    cases[nc] = (dist_case){"temp 1.3, top_p 0.8", params_off(1.3f, 9)};
    cases[nc++].p.top_p = 0.8f;
    cases[nc] = (dist_case){"temp 0.9, min_p 0.1", params_off(0.9f, 10)};
    cases[nc++].p.min_p = 0.1f;
    cases[nc] = (dist_case){"temp 1, penalty 1.5 over last 8", params_off(1.0f, 11)};
    cases[nc].p.repeat_penalty = 1.5f;
    cases[nc++].p.repeat_last_n = 8;
    cases[nc] = (dist_case){"defaults, penalty 1.3", tq_sampler_defaults()};
    cases[nc++].p.repeat_penalty = 1.3f;
    cases[nc] = (dist_case){"temp 2, top_k 30, top_p 0.9, min_p 0.02", params_off(2.0f, 12)};
    cases[nc].p.top_k = 30;
    cases[nc].p.top_p = 0.9f;
    cases[nc++].p.min_p = 0.02f;

    float l[N];
    int32_t hist[NHIST];
    double probs[N], wrong[N];
    for (int k = 0; k < nc; k++) {
        const tq_sampler_params *p = &cases[k].p;
        random_logits(l, N, 1.5f);
        /* Repeats among the accepted tokens, and some of them the likeliest
         * tokens, so that the penalty has something to change. */
        for (int i = 0; i < NHIST; i++)
            hist[i] = i % 3 == 0 ? naive_argmax(l, N) : (int32_t)(t_next() % 12);
        ref_probs(l, N, p, hist, NHIST, probs);

        tq_sampler *s = tq_sampler_new(p, N);
        ck_assert_ptr_nonnull(s);
        for (int i = 0; i < NHIST; i++) tq_sampler_accept(s, hist[i]);
        long counts[N] = {0};
        for (long d = 0; d < DRAWS; d++) {
            int32_t t = tq_sampler_sample(s, l);
            ck_assert(t >= 0 && t < N);
            counts[t]++;
        }
        tq_sampler_free(s);

        int df;
        long impossible;
        double stat = chi2(counts, probs, N, DRAWS, &df, &impossible);
        printf("sampler: %-42s chi2 %8.1f  df %3d  bound %6.1f\n", cases[k].name, stat, df,
               chi2_crit(df));
        ck_assert_int_eq(impossible, 0);
        ck_assert(df >= 1);
        ck_assert_msg(stat < chi2_crit(df), "%s: chi2 %g >= %g", cases[k].name, stat,
                      chi2_crit(df));

        /* The bound has teeth: the same counts against a slightly different
         * temperature must fail it. */
        tq_sampler_params q = *p;
        q.temp = p->temp * 1.1f;
        ref_probs(l, N, &q, hist, NHIST, wrong);
        double wstat = chi2(counts, wrong, N, DRAWS, &df, &impossible);
        ck_assert_msg(wstat > chi2_crit(df), "%s: the test cannot tell temp apart", cases[k].name);
    }
}
END_TEST

/* ---- which tokens survive top_p / min_p -------------------------------- */

/* Draws until every survivor has surely shown up (the caller sets a high
 * temperature so survivors are near-uniform: each of m is missed by 40 m
 * draws with probability e^-40) and marks what was drawn. */
static void observed_set(const tq_sampler_params *p, const float *l, int n, int expect_size,
                         unsigned char *seen) {
    tq_sampler *s = tq_sampler_new(p, n);
    ck_assert_ptr_nonnull(s);
    memset(seen, 0, (size_t)n);
    for (int d = 0; d < 40 * expect_size + 100; d++) seen[tq_sampler_sample(s, l)] = 1;
    tq_sampler_free(s);
}

START_TEST(filter_sets_crafted) {
    enum { N = 1000 };
    float l[N];
    for (int i = 0; i < N; i++) l[i] = -1e4f; /* probability ~0, yet not -inf */
    /* Probabilities 0.5, 0.3, 0.15, 0.05 on scattered ids. */
    const int ids[4] = {731, 17, 502, 999};
    const double pr[4] = {0.5, 0.3, 0.15, 0.05};
    for (int i = 0; i < 4; i++) l[ids[i]] = (float)log(pr[i]);

    struct {
        float top_p, min_p;
        int n_keep; /* the first n_keep of ids[] */
    } cases[] = {
        {0.45f, 0.0f, 1}, {0.75f, 0.0f, 2}, {0.85f, 0.0f, 3}, {0.99f, 0.0f, 4},
        {1.0f, 0.7f, 1},  {1.0f, 0.5f, 2},  {1.0f, 0.2f, 3},  {1.0f, 0.05f, 4},
        {0.85f, 0.5f, 2}, /* both: the stricter wins */
        {0.75f, 0.2f, 2},
        {0.0f, 0.0f, 1},  /* top_p 0 still keeps one */
    };
    unsigned char seen[N];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tq_sampler_params p = params_off(1e3f, c + 1);
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        observed_set(&p, l, N, 4, seen);
        int n_seen = 0;
        for (int i = 0; i < N; i++) n_seen += seen[i];
        ck_assert_msg(n_seen == cases[c].n_keep, "top_p %g min_p %g: %d tokens drawn, want %d",
                      (double)cases[c].top_p, (double)cases[c].min_p, n_seen, cases[c].n_keep);
        for (int i = 0; i < cases[c].n_keep; i++) ck_assert(seen[ids[i]]);
    }
}
END_TEST

START_TEST(filter_sets_random) {
    enum { N = 600 };
    float l[N];
    double probs[N];
    unsigned char seen[N];
    const float top_ps[] = {1.0f, 0.3f, 0.6f, 0.9f, 0.97f};
    const float min_ps[] = {0.0f, 0.01f, 0.05f, 0.3f};
    const int top_ks[] = {0, 50, 400};
    int trial = 0;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 3; c++, trial++) {
                random_logits(l, N, 2.5f);
                tq_sampler_params p = params_off(1e4f, (uint64_t)trial);
                p.top_p = top_ps[a];
                p.min_p = min_ps[b];
                p.top_k = top_ks[c];
                if (p.top_p >= 1.0f && p.min_p <= 0.0f && p.top_k == 0) continue;
                ref_probs(l, N, &p, NULL, 0, probs);
                int n_ref = 0;
                for (int i = 0; i < N; i++) n_ref += probs[i] > 0.0;
                observed_set(&p, l, N, n_ref, seen);
                for (int i = 0; i < N; i++)
                    ck_assert_msg((probs[i] > 0.0) == (seen[i] != 0),
                                  "top_k %d top_p %g min_p %g: token %d %s (reference keeps %d)",
                                  p.top_k, (double)p.top_p, (double)p.min_p, i,
                                  seen[i] ? "drawn but excluded" : "kept but never drawn", n_ref);
            }
}
END_TEST

/* ---- repeat penalty ---------------------------------------------------- */

static int32_t greedy_after(const float *l, int n, float penalty, int last_n, const int32_t *hist,
                            int n_hist) {
    tq_sampler_params p = params_off(0.0f, 1);
    p.repeat_penalty = penalty;
    p.repeat_last_n = last_n;
    tq_sampler *s = tq_sampler_new(&p, n);
    for (int i = 0; i < n_hist; i++) tq_sampler_accept(s, hist[i]);
    int32_t t = tq_sampler_sample(s, l);
    tq_sampler_free(s);
    return t;
}

START_TEST(repeat_penalty_direction) {
    enum { N = 8 };
    /* Positive logits: 2.0 / 1.1 = 1.82 < 1.9, so a penalised token 0 loses
     * to token 1 -- unless token 1 were wrongly penalised too (1.73). */
    float pos[N] = {2.0f, 1.9f, 0.0f, -1.0f, -2.0f, -3.0f, -4.0f, -5.0f};
    int32_t h0[] = {0};
    ck_assert_int_eq(greedy_after(pos, N, 1.0f, 64, h0, 1), 0);
    ck_assert_int_eq(greedy_after(pos, N, 1.1f, 64, h0, 1), 1);
    int32_t h_other[] = {5, 6, 7};
    ck_assert_int_eq(greedy_after(pos, N, 1.1f, 64, h_other, 3), 0);

    /* Negative logits grow more negative: -1.0 * 1.1 = -1.1 < -1.05. */
    float neg[N] = {-1.0f, -1.05f, -3.0f, -4.0f, -5.0f, -6.0f, -7.0f, -8.0f};
    ck_assert_int_eq(greedy_after(neg, N, 1.0f, 64, h0, 1), 0);
    ck_assert_int_eq(greedy_after(neg, N, 1.1f, 64, h0, 1), 1);
    /* Dividing a negative logit would have raised it instead. */
    float neg2[N] = {-1.05f, -1.0f, -3.0f, -4.0f, -5.0f, -6.0f, -7.0f, -8.0f};
    ck_assert_int_eq(greedy_after(neg2, N, 1.1f, 64, h0, 1), 1);

    /* Once per distinct token: 2.0 / 1.1 = 1.82 beats 1.7, but three
     * penalties (1.50) would not. */
    float once[N] = {2.0f, 1.7f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int32_t h3[] = {0, 0, 0};
    ck_assert_int_eq(greedy_after(once, N, 1.1f, 64, h3, 3), 0);

    /* Only the last repeat_last_n accepted tokens count. */
    int32_t h_old[] = {0, 4, 5, 6, 7};
    ck_assert_int_eq(greedy_after(pos, N, 1.1f, 4, h_old, 5), 0);
    ck_assert_int_eq(greedy_after(pos, N, 1.1f, 5, h_old, 5), 1);
    /* Ids outside the vocabulary are ignored, not penalised somewhere. */
    int32_t h_bad[] = {-1, N, 1 << 30};
    ck_assert_int_eq(greedy_after(pos, N, 1.1f, 64, h_bad, 3), 0);
}
END_TEST

/* ---- temperature ------------------------------------------------------- */

START_TEST(entropy_grows_with_temp) {
    enum { N = 64, DRAWS = 100000 };
    float l[N];
    random_logits(l, N, 2.0f);
    const float temps[] = {0.1f, 0.25f, 0.5f, 1.0f, 2.0f, 4.0f};
    double prev = -1.0;
    for (int t = 0; t < 6; t++) {
        tq_sampler *s = tq_sampler_new(&(tq_sampler_params){.temp = temps[t], .top_p = 1.0f,
                                                            .repeat_penalty = 1.0f, .seed = 3},
                                       N);
        long counts[N] = {0};
        for (int d = 0; d < DRAWS; d++) counts[tq_sampler_sample(s, l)]++;
        tq_sampler_free(s);
        double h = 0.0;
        for (int i = 0; i < N; i++)
            if (counts[i]) h -= (double)counts[i] / DRAWS * log((double)counts[i] / DRAWS);
        printf("sampler: temp %.2f  empirical entropy %.3f nats\n", (double)temps[t], h);
        ck_assert_msg(h > prev, "entropy %g at temp %g, %g before", h, (double)temps[t],
                      prev);
        prev = h;
    }
    ck_assert(prev < log((double)N)); /* never beyond uniform */
}
END_TEST

/* ---- odd inputs -------------------------------------------------------- */

START_TEST(odd_inputs) {
    enum { N = 16 };
    tq_sampler_params p = tq_sampler_defaults();
    ck_assert_ptr_null(tq_sampler_new(&p, 0));
    ck_assert_ptr_null(tq_sampler_new(NULL, N));
    p.repeat_penalty = 0.0f;
    ck_assert_ptr_null(tq_sampler_new(&p, N));
    p.repeat_penalty = 1.0f;
    p.temp = NAN;
    ck_assert_ptr_null(tq_sampler_new(&p, N));

    /* A denormal temperature behaves as (nearly) greedy, not as NaN. */
    float g[N];
    random_logits(g, N, 1.0f);
    p = params_off(1e-44f, 4);
    tq_sampler *sg = tq_sampler_new(&p, N);
    for (int d = 0; d < 20; d++) ck_assert_int_eq(tq_sampler_sample(sg, g), naive_argmax(g, N));
    tq_sampler_free(sg);

    /* NaN is never drawn; all -inf still yields a valid id. */
    float l[N];
    for (int i = 0; i < N; i++) l[i] = i == 3 ? 0.0f : NAN;
    p = params_off(1.0f, 5);
    tq_sampler *s = tq_sampler_new(&p, N);
    for (int d = 0; d < 100; d++) ck_assert_int_eq(tq_sampler_sample(s, l), 3);
    for (int i = 0; i < N; i++) l[i] = -INFINITY;
    int32_t t = tq_sampler_sample(s, l);
    ck_assert(t >= 0 && t < N);
    l[9] = INFINITY;
    ck_assert_int_eq(tq_sampler_sample(s, l), 9);
    tq_sampler_free(s);
    tq_sampler_free(NULL);
}
END_TEST

/* ---- speed (printed, not asserted) ------------------------------------- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

START_TEST(timing) {
    const int vocabs[] = {32000, 256000};
    for (int v = 0; v < 2; v++) {
        int n = vocabs[v];
        float *l = malloc((size_t)n * sizeof *l);
        random_logits(l, n, 3.0f);
        struct {
            const char *name;
            tq_sampler_params p;
        } cfg[4];
        cfg[0].name = "defaults (k 40, p .95, min_p .05)";
        cfg[0].p = tq_sampler_defaults();
        cfg[1].name = "top_p 0.95 only";
        cfg[1].p = params_off(0.8f, 1);
        cfg[1].p.top_p = 0.95f;
        cfg[2].name = "no filters";
        cfg[2].p = params_off(1.0f, 1);
        cfg[3].name = "greedy, penalty 1.1 over 64";
        cfg[3].p = params_off(0.0f, 1);
        cfg[3].p.repeat_penalty = 1.1f;
        for (int c = 0; c < 4; c++) {
            tq_sampler *s = tq_sampler_new(&cfg[c].p, n);
            for (int i = 0; i < 64; i++) tq_sampler_accept(s, (int32_t)(t_next() % (uint64_t)n));
            int reps = n > 100000 ? 50 : 200;
            double t0 = now_ms();
            for (int r = 0; r < reps; r++) tq_sampler_sample(s, l);
            printf("sampler: n_vocab %6d  %-36s %.3f ms/sample\n", n, cfg[c].name,
                   (now_ms() - t0) / reps);
            tq_sampler_free(s);
        }
        free(l);
    }
}
END_TEST

static Suite *sampler_suite(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, greedy_is_argmax);
    tcase_add_test(tc, top_k_one_is_greedy);
    tcase_add_test(tc, seeds_reproduce_and_differ);
    tcase_add_test(tc, distribution_matches_reference);
    tcase_add_test(tc, filter_sets_crafted);
    tcase_add_test(tc, filter_sets_random);
    tcase_add_test(tc, repeat_penalty_direction);
    tcase_add_test(tc, entropy_grows_with_temp);
    tcase_add_test(tc, odd_inputs);
    tcase_add_test(tc, timing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tq_test_run(sampler_suite()); }
