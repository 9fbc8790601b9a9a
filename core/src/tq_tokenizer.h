/* tq_tokenizer.h — SentencePiece-style tokenizer (tokenizer.ggml.model =
 * "llama") exactly as llama.cpp runs it: special-token partition, space
 * prefix, score-ordered bigram merges, resegmentation and byte fallback.
 * Reference: ../shared/specs/gguf-llama-phi3.md §5.1, §5.3, §4.8. */
#ifndef TQ_TOKENIZER_H
#define TQ_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <tqrun/tq_plugin.h>

struct tq_gguf;
typedef struct tq_tokenizer tq_tokenizer;

/* Builds the tokenizer from the tokenizer.ggml.* keys of g. Fails naming the
 * file for a missing vocabulary or an unsupported tokenizer model. The
 * tokenizer copies what it needs; g may be closed afterwards. [main] */
tq_status tq_tokenizer_load(const struct tq_gguf *g, tq_tokenizer **out, tq_error *err);
void tq_tokenizer_free(tq_tokenizer *t);

/* Tokenizes text[0..len). add_special: add BOS/EOS as the vocab says;
 * parse_special: match control tokens written in the text. Writes at most
 * max ids; returns the number of ids the text needs (which may exceed max:
 * call again with a larger buffer). [any] */
int32_t tq_tokenize(const tq_tokenizer *t, const char *text, size_t len, int add_special,
                    int parse_special, int32_t *out, int32_t max);

/* Text of one token (▁ -> space, <0xHH> -> that byte; control tokens give ""
 * unless `special`). Returns the byte count, which may exceed size (then
 * nothing useful was written). [any] */
int32_t tq_token_to_piece(const tq_tokenizer *t, int32_t id, int special, char *buf,
                          int32_t size);

/* Text of a token sequence as llama.cpp's detokenize gives it (leading space
 * of the first piece removed when the vocab adds a space prefix). Returns the
 * byte count (may exceed size). */
int32_t tq_detokenize(const tq_tokenizer *t, const int32_t *ids, int32_t n, int special,
                      char *buf, int32_t size);

int32_t tq_tokenizer_n_vocab(const tq_tokenizer *t);
int32_t tq_tokenizer_bos(const tq_tokenizer *t);     /* -1 if none */
int32_t tq_tokenizer_eos(const tq_tokenizer *t);     /* -1 if none */
int tq_tokenizer_add_bos(const tq_tokenizer *t);
/* 1 if id ends generation (eos, eot, and the EOG texts llama.cpp knows). */
int tq_tokenizer_is_eog(const tq_tokenizer *t, int32_t id);
/* Id of the token whose text is exactly `text`, or -1. */
int32_t tq_tokenizer_find(const tq_tokenizer *t, const char *text);

#endif
