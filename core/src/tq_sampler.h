/* tq_sampler.h — token sampling as llama.cpp's common sampler chain applies
 * it: repeat penalty, top-k, top-p, min-p, temperature, then a draw from a
 * seeded PRNG (xoshiro256**; ids for temp > 0 therefore differ from
 * llama.cpp's mt19937 draws). temp <= 0 is greedy: argmax after the repeat
 * penalty (of the raw logits when the penalty is 1). */
#ifndef TQ_SAMPLER_H
#define TQ_SAMPLER_H

#include <stdint.h>
#include <tqrun/tq_plugin.h>

typedef struct tq_sampler_params {
    float temp;            /* <= 0: greedy                              */
    int32_t top_k;         /* <= 0: off                                 */
    float top_p;           /* >= 1: off                                 */
    float min_p;           /* <= 0: off                                 */
    float repeat_penalty;  /* 1: off                                    */
    int32_t repeat_last_n; /* tokens considered by the penalty; <= 0 off */
    uint64_t seed;
} tq_sampler_params;

/* Defaults of llama.cpp: temp 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1.0, repeat_last_n 64, seed 0xFFFFFFFF (an ordinary seed
 * here; the CLI maps it to a random one as llama.cpp does). */
tq_sampler_params tq_sampler_defaults(void);

typedef struct tq_sampler tq_sampler;

tq_sampler *tq_sampler_new(const tq_sampler_params *p, int32_t n_vocab);
void tq_sampler_free(tq_sampler *s);
/* Remembers an accepted token (prompt or generated) for the penalty. */
void tq_sampler_accept(tq_sampler *s, int32_t token);
/* Picks the next token from logits[n_vocab] (not modified). */
int32_t tq_sampler_sample(tq_sampler *s, const float *logits);

#endif
