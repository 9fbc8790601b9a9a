/* tq_sampler.c — llama.cpp's common sampler chain, for the samplers tqrun
 * exposes:
 *
 *   penalties -> top_k -> top_p -> min_p -> temperature -> categorical draw
 *
 * with temp <= 0 cut short to penalties -> argmax (ties go to the lowest id).
 *
 * Only the *set* of surviving tokens matters to the draw, never their order,
 * so nothing here sorts the vocabulary. top_k keeps a bounded heap, min_p
 * is a threshold in logit space and top_p a quickselect steered by
 * probability mass: each costs a few passes over the logits, not a sort of
 * a 32k-256k vocabulary per token.
 *
 * repeat_last_n <= 0 turns the penalty off. llama.cpp's -1 ("the whole
 * context") is for the caller to resolve into the context length.
 *
 * The draw uses xoshiro256** seeded through splitmix64, not llama.cpp's
 * std::mt19937: a seed reproduces tqrun's own sequence, but for temp > 0 the
 * ids will not equal llama.cpp's for the same seed. Greedy does match. */
#include "tq_sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "tq_log.h"

/* One token still in the running. `w` is its unnormalised probability,
 * exp(logit - max logit): at temp 1 while top_p measures mass, then at the
 * sampling temperature for the draw. */
typedef struct tq_cand {
    float logit;
    float w;
    int32_t id;
} tq_cand;

struct tq_sampler {
    tq_sampler_params p;
    int32_t n_vocab;
    tq_cand *cand;       /* [n_vocab], rebuilt from the logits every sample */
    uint64_t rng[4];     /* xoshiro256** state */
    /* The last repeat_last_n accepted tokens, a ring: hist[(head + i) % cap]
     * for i < n_hist, oldest first. NULL when the penalty is off. */
    int32_t *hist;
    size_t hist_cap, hist_head, n_hist;
    uint8_t *seen;       /* [n_vocab / 8 + 1] bits; all clear between samples */
};

tq_sampler_params tq_sampler_defaults(void) {
    tq_sampler_params p = {
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        /* llama.cpp reads this value as "pick a random seed"; here it is an
         * ordinary seed, so runs are reproducible unless the caller asks
         * otherwise. */
        .seed = 0xFFFFFFFFu,
    };
    return p;
}

/* ---- PRNG -------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with the full 53 bits of a double. */
static double rng_uniform(uint64_t s[4]) {
    return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

/* ---- life cycle -------------------------------------------------------- */

tq_sampler *tq_sampler_new(const tq_sampler_params *p, int32_t n_vocab) {
    if (!p || n_vocab <= 0) {
        tq_log(TQ_LOG_ERROR, "core", "sampler: %s", !p ? "no parameters" : "vocabulary is empty");
        return NULL;
    }
    /* A penalty <= 0 would flip or zero logits; a NaN temp or penalty
     * would poison every weight. */
    if (!(p->repeat_penalty > 0.0f)) {
        tq_log(TQ_LOG_ERROR, "core", "sampler: repeat_penalty must be > 0 (got %g)",
               (double)p->repeat_penalty);
        return NULL;
    }
    if (isnan(p->temp)) {
        tq_log(TQ_LOG_ERROR, "core", "sampler: temp is NaN");
        return NULL;
    }
    tq_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    bool penalise = p->repeat_last_n > 0 && p->repeat_penalty != 1.0f;
    if (penalise) {
        s->hist_cap = (size_t)p->repeat_last_n;
        s->hist = malloc((size_t)s->hist_cap * sizeof *s->hist);
        s->seen = calloc((size_t)n_vocab / 8 + 1, 1);
    }
    if (!s->cand || (penalise && (!s->hist || !s->seen))) {
        tq_log(TQ_LOG_ERROR, "core", "sampler: out of memory for a %d-token vocabulary", n_vocab);
        tq_sampler_free(s);
        return NULL;
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    return s;
}

void tq_sampler_free(tq_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->hist);
    free(s->seen);
    free(s);
}

void tq_sampler_accept(tq_sampler *s, int32_t token) {
    if (!s || !s->hist) return;
    /* An id the vocabulary does not have cannot be penalised; dropping it
     * here keeps the apply loop free of bounds checks. */
    if (token < 0 || token >= s->n_vocab) return;
    if (s->n_hist < s->hist_cap) {
        s->hist[(s->hist_head + s->n_hist++) % s->hist_cap] = token;
    } else {
        s->hist[s->hist_head] = token;
        s->hist_head = (s->hist_head + 1) % s->hist_cap;
    }
}

/* ---- the chain --------------------------------------------------------- */

/* The order every filter ranks by: higher logit first, lower id on a tie.
 * It is strict (ids are distinct), which keeps the selections below exact
 * and deterministic even over long runs of equal (e.g. masked) logits. */
static bool ranks_before(const tq_cand *a, const tq_cand *b) {
    /* & and | rather than && and ||: on random logits every branch here
     * is a coin flip, and mispredictions would dominate the selections. */
    return (a->logit > b->logit) | ((a->logit == b->logit) & (a->id < b->id));
}

static void swap_cand(tq_cand *a, tq_cand *b) {
    tq_cand t = *a;
    *a = *b;
    *b = t;
}

/* Partitions c[lo, hi) (hi - lo >= 1) around a median-of-three pivot: on
 * return c[lo, mid) rank before c[mid], the pivot, and c(mid, hi) after it.
 * Lomuto's scheme never reads outside the range, whatever the data. */
static size_t partition(tq_cand *c, size_t lo, size_t hi) {
    size_t a = lo, b = lo + (hi - lo) / 2, z = hi - 1;
    if (ranks_before(&c[b], &c[a])) swap_cand(&c[a], &c[b]);
    if (ranks_before(&c[z], &c[b])) swap_cand(&c[b], &c[z]);
    if (ranks_before(&c[b], &c[a])) swap_cand(&c[a], &c[b]);
    swap_cand(&c[b], &c[z]); /* the median waits at the end */
    /* Branch-free: always swap, advance mid only when c[i] ranks first. */
    const tq_cand pivot = c[z];
    size_t mid = lo;
    for (size_t i = lo; i < z; i++) {
        bool before = ranks_before(&c[i], &pivot);
        swap_cand(&c[i], &c[mid]);
        mid += before;
    }
    swap_cand(&c[mid], &c[z]);
    return mid;
}

/* Restores the heap c[0, k) below position i. The heap keeps the worst
 * of the k at its root, so every parent ranks after its children. */
static void sift_down(tq_cand *c, size_t k, size_t i) {
    tq_cand x = c[i];
    for (size_t j; (j = 2 * i + 1) < k; i = j) {
        if (j + 1 < k && ranks_before(&c[j], &c[j + 1])) j++; /* the worse child */
        if (ranks_before(&c[j], &x)) break;
        c[i] = c[j];
    }
    c[i] = x;
}

/* top_k: moves the k best of c[0, n) to c[0, k), in no particular order.
 * A heap of the best k so far, not a quickselect: past the first few
 * thousand tokens almost none beats the heap's worst, so the scan is one
 * predictable comparison per token, and O(n log k) even on adversarial
 * (sorted) logits. */
static void select_top_k(tq_cand *c, size_t n, size_t k) {
    for (size_t i = k / 2; i-- > 0;) sift_down(c, k, i);
    for (size_t i = k; i < n; i++) {
        if (ranks_before(&c[i], &c[0])) {
            swap_cand(&c[0], &c[i]);
            sift_down(c, k, 0);
        }
    }
}

/* top_p: moves to the front of c[0, n) the shortest prefix, in rank order,
 * whose weight w adds up to at least `need` (> 0), and returns its length;
 * n when all of c falls short (the mass of c may be less than `need` when
 * min_p has already pruned it). Quickselect steered by mass instead of by
 * count: whole partitions are kept or dropped without ever being sorted. */
static size_t select_top_p(tq_cand *c, size_t n, double need) {
    size_t lo = 0, hi = n; /* c[0, lo) is kept, c[lo, hi) undecided */
    while (lo < hi) {
        size_t mid = partition(c, lo, hi);
        double front = 0.0;
        for (size_t i = lo; i < mid; i++) front += c[i].w;
        if (front >= need) {
            hi = mid; /* the cut lies strictly before the pivot */
        } else if (front + c[mid].w >= need) {
            return mid + 1; /* the pivot is the last token kept */
        } else {
            need -= front + c[mid].w;
            lo = mid + 1;
        }
    }
    return lo;
}

static size_t best_index(const tq_cand *c, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (ranks_before(&c[i], &c[best])) best = i;
    return best;
}

/* Repeat penalty on c, which still holds c[id].id == id: once per distinct
 * token of the window, however often it occurs there (llama.cpp's rule). */
static void apply_penalty(tq_sampler *s) {
    float pen = s->p.repeat_penalty;
    for (size_t i = 0; i < s->n_hist; i++) {
        int32_t t = s->hist[(s->hist_head + i) % s->hist_cap];
        if (s->seen[t >> 3] & (1u << (t & 7))) continue;
        s->seen[t >> 3] |= (uint8_t)(1u << (t & 7));
        float *l = &s->cand[t].logit;
        *l = *l > 0.0f ? *l / pen : *l * pen;
    }
    for (size_t i = 0; i < s->n_hist; i++) {
        int32_t t = s->hist[(s->hist_head + i) % s->hist_cap];
        s->seen[t >> 3] = 0;
    }
}

int32_t tq_sampler_sample(tq_sampler *s, const float *logits) {
    const tq_sampler_params *p = &s->p;
    tq_cand *c = s->cand;
    size_t n = (size_t)s->n_vocab;

    /* A NaN logit would break the strict order every filter relies on; a
     * token the model cannot score is a token never to be chosen. */
    for (size_t i = 0; i < n; i++) {
        c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
        c[i].id = (int32_t)i;
    }
    if (s->hist) apply_penalty(s);

    if (p->temp <= 0.0f) return c[best_index(c, n)].id;

    if (p->top_k > 0 && (size_t)p->top_k < n) {
        select_top_k(c, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
    }

    const size_t n_after_top_k = n;
    float max = c[0].logit;
    for (size_t i = 1; i < n; i++)
        if (c[i].logit > max) max = c[i].logit;
    /* All masked, or an infinite favourite: the limit of the softmax is the
     * argmax, and the arithmetic below would only produce NaN. */
    if (isinf(max)) return c[best_index(c, n)].id;

    /* min_p before top_p, though llama.cpp runs them the other way: both
     * keep a prefix of the same rank order, so the survivors are the
     * shorter prefix either way, and min_p's cheap threshold shrinks what
     * top_p must search. top_p still measures mass against the whole
     * of what top_k left, as llama.cpp does. prob >= min_p * max prob is
     * logit >= max + log(min_p), llama.cpp's own form of the test. */
    if (p->min_p > 0.0f) {
        /* min_p > 1 would exclude even the best token; clamp it to 1 so
         * the best (and its ties) stay, as llama.cpp's min_keep = 1 does. */
        float cut = max + logf(p->min_p < 1.0f ? p->min_p : 1.0f);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].logit >= cut) swap_cand(&c[i], &c[kept++]);
        n = kept; /* >= 1: the max always passes */
    }
    if (p->top_p < 1.0f) {
        if (p->top_p > 0.0f) {
            double total = 0.0; /* temp-1 mass of the top_k survivors */
            for (size_t i = 0; i < n_after_top_k; i++) {
                c[i].w = expf(c[i].logit - max);
                total += c[i].w;
            }
            n = select_top_p(c, n, (double)p->top_p * total);
        } else {
            /* p <= 0 keeps just the best token (llama.cpp's min_keep = 1). */
            swap_cand(&c[0], &c[best_index(c, n)]);
            n = 1;
        }
    }

    /* Temperature reshapes only what the filters let through, and the
     * draw is a softmax over it. `max` is still among the survivors (the
     * best token always survives), so the exponents stay <= 0. */
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        /* Divide, not multiply by 1/temp: for a denormal temp 1/temp is
         * inf, and 0 * inf would make the favourite's weight NaN. */
        c[i].w = expf((c[i].logit - max) / p->temp);
        sum += c[i].w;
    }
    double u = rng_uniform(s->rng) * sum, acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        acc += c[i].w;
        if (u < acc) return c[i].id;
    }
    /* Rounding left u at the very top of the range: the last one with any
     * weight is the one the walk overshot. */
    while (n > 1 && c[n - 1].w == 0.0f) n--;
    return c[n - 1].id;
}
