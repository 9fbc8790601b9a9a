/* tq_session.h — a loaded model ready to evaluate tokens: the GGUF file, its
 * tokenizer, the arch plugin's model, the KV cache and the backend chain.
 * Everything `tqrun` commands need goes through here. */
#ifndef TQ_SESSION_H
#define TQ_SESSION_H

#include <stdint.h>
#include <tqrun/tq_plugin.h>

struct tq_registry;
struct tq_tokenizer;
struct tq_gguf;

typedef struct tq_session_params {
    const char *model_path;
    int32_t n_ctx;            /* 0: the model's training context, capped at 4096 */
    int32_t n_batch;          /* tokens per graph; 0: 2048 (llama.cpp's n_batch) */
    const char *backends;     /* chain, "x86, ref"; NULL: every loaded backend   */
    const char *kv;           /* KV plugin name; NULL: the built-in "f16"        */
    const char *cache_type_k; /* NULL: "f16"                                    */
    const char *cache_type_v; /* NULL: "f16"                                    */
    int32_t mmap;             /* 1: weights used in place in the file mapping;
                                 0: read into 2 MB pages (tq_gguf_copy_weights) */
} tq_session_params;

typedef struct tq_session tq_session;

/* Opens the model and everything it needs, using plugins from `reg` (which
 * must outlive the session). Errors name the file and the problem: not a
 * GGUF, unknown architecture, missing tensor, unknown backend or KV format,
 * and so on. [main] */
tq_status tq_session_open(const struct tq_registry *reg, const tq_session_params *p,
                          tq_session **out, tq_error *err);
void tq_session_free(tq_session *s);

const struct tq_tokenizer *tq_session_tokenizer(const tq_session *s);
const struct tq_gguf *tq_session_gguf(const tq_session *s);
const tq_model_info *tq_session_info(const tq_session *s);
int32_t tq_session_n_ctx(const tq_session *s);
int32_t tq_session_n_vocab(const tq_session *s);
const char *tq_session_arch(const tq_session *s);
const char *tq_session_backends(const tq_session *s);
/* 1 if id ends generation (tokenizer's EOG set or the arch plugin's list). */
int tq_session_is_eog(const tq_session *s, int32_t id);

/* Evaluates tokens[0..n) at positions pos0..pos0+n-1 (earlier positions must
 * be in the cache), in graphs of at most n_batch tokens. Writes the logits
 * of the rows listed in out_rows (indices into tokens, increasing) to
 * logits[n_out][n_vocab]; out_rows NULL means every row (n_out = n). Fails
 * with TQ_ERR_RANGE when pos0 + n exceeds the context. [main] */
tq_status tq_session_decode(tq_session *s, const int32_t *tokens, int32_t n, int32_t pos0,
                            const int32_t *out_rows, int32_t n_out, float *logits, tq_error *err);

/* The model's chat format (tq_arch_iface.format_chat): returns the bytes
 * the text needs (buf gets at most size, NUL-terminated when it fits), or
 * -1 when the model has no chat format or a role is unsupported. */
int64_t tq_session_format_chat(const tq_session *s, const tq_chat_message *msgs, int32_t n,
                               int add_generation_prompt, char *buf, int64_t size);

/* Fills positions 0..n-1 of every layer's cache with synthetic keys and
 * values (deterministic pseudo-random values of unit scale, from `seed`)
 * through the KV plugin's append, replacing what was cached: a cache at
 * depth n without running the prefill, for benchmarks of decoding at
 * depth. Fails with TQ_ERR_RANGE when n exceeds the context. [main] */
tq_status tq_session_kv_fill_synthetic(tq_session *s, int32_t n, uint64_t seed, tq_error *err);

/* Forgets cached positions >= n_pos. */
void tq_session_truncate(tq_session *s, int32_t n_pos);
/* KV-cache bytes held now, and per cached token. */
uint64_t tq_session_kv_bytes(const tq_session *s);

#endif
