/* tq_tokenizer_impl.h — the tokenizer's private state, shared by
 * tq_tokenizer.c (vocabulary loading, special tokens, decoding) and
 * tq_tokenizer_spm.c (encoding). Not for use outside those two files. */
#ifndef TQ_TOKENIZER_IMPL_H
#define TQ_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* Token attributes, the bits of llama.cpp's llama_token_attr. A token's
 * GGUF type sets one of the first bits; loading then adds or clears some by
 * token text, exactly where llama.cpp does. */
enum {
    TQ_TOK_UNKNOWN = 1 << 0,
    TQ_TOK_UNUSED = 1 << 1,
    TQ_TOK_NORMAL = 1 << 2,
    TQ_TOK_CONTROL = 1 << 3,
    TQ_TOK_USER_DEFINED = 1 << 4,
    TQ_TOK_BYTE = 1 << 5,
    TQ_TOK_LSTRIP = 1 << 7, /* partition: drop whitespace before the token */
    TQ_TOK_RSTRIP = 1 << 8  /* partition: drop whitespace after the token */
};

typedef struct tq_tok_entry {
    uint32_t text;   /* offset of the text in tq_tokenizer.texts (NUL-terminated) */
    uint32_t len;    /* text length in bytes */
    uint32_t piece;  /* offset of the decoded piece in tq_tokenizer.pieces */
    uint32_t plen;   /* piece length (the piece as shown with special = 1) */
    float score;     /* merge priority: higher merges first */
    uint32_t attr;   /* TQ_TOK_* bits */
    uint8_t eog;     /* 1 if the token ends generation */
} tq_tok_entry;

struct tq_tokenizer {
    int32_t n_vocab;
    tq_tok_entry *tok;
    char *texts;          /* all token texts, each NUL-terminated */
    char *pieces;         /* all decoded pieces, back to back */
    int32_t *hash;        /* open addressing text -> id, -1 = empty slot */
    uint32_t hash_mask;   /* table size - 1 (a power of two) */
    uint32_t max_len;     /* longest token text: longer strings are never tokens */

    int32_t bos, eos, unk; /* -1 when unset */
    int add_bos, add_eos, add_space_prefix;

    /* Tokens split out of the text before SPM runs (control, user-defined and
     * unknown), longest text first. */
    int32_t *special;
    int32_t n_special;

    /* 1 when no token has a U+2581 right after something other than U+2581,
     * so no merge can cross the start of a word: the encoder may then run
     * each word on its own (same result, far fewer cache misses). */
    int split_at_spaces;

    /* byte_tok[b]: token emitted for byte b when no piece covers it. */
    int32_t byte_tok[256];
};

/* Id of the token whose text is s[0..n), or -1. */
int32_t tq_tok_lookup(const struct tq_tokenizer *t, const char *s, size_t n);

#endif
