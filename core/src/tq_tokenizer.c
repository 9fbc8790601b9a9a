/* tq_tokenizer.c — the SentencePiece vocabulary: loading it from GGUF the way
 * llama.cpp's llama_vocab::load does (defaults, special ids, attributes fixed
 * up by token text, the end-of-generation set, the Phi-3 whitespace quirk),
 * and turning ids back into text. Encoding is in tq_tokenizer_spm.c.
 * Reference: ../shared/specs/gguf-llama-phi3.md §4.8, §5.1, §5.3. */
#include "tq_tokenizer.h"

#include "tq_error.h"
#include "tq_gguf.h"
#include "tq_log.h"
#include "tq_tokenizer_impl.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHO "tokenizer"

/* GGUF token types (tokenizer.ggml.token_type). */
enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4,
       TYPE_UNUSED = 5, TYPE_BYTE = 6 };

/* ------------------------------------------------------------------------ */
/* Text -> id hash table                                                    */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return (uint32_t)(h ^ (h >> 32));
}

int32_t tq_tok_lookup(const tq_tokenizer *t, const char *s, size_t n) {
    if (n > t->max_len) return -1; /* also keeps long merge candidates cheap */
    for (uint32_t i = hash_bytes(s, n) & t->hash_mask;; i = (i + 1) & t->hash_mask) {
        int32_t id = t->hash[i];
        if (id < 0) return -1;
        const tq_tok_entry *e = &t->tok[id];
        if (e->len == n && memcmp(t->texts + e->text, s, n) == 0) return id;
    }
}

/* Inserts id; returns the id already holding the same text, or -1. */
static int32_t hash_insert(tq_tokenizer *t, int32_t id) {
    const tq_tok_entry *e = &t->tok[id];
    const char *s = t->texts + e->text;
    for (uint32_t i = hash_bytes(s, e->len) & t->hash_mask;; i = (i + 1) & t->hash_mask) {
        int32_t other = t->hash[i];
        if (other < 0) {
            t->hash[i] = id;
            return -1;
        }
        const tq_tok_entry *o = &t->tok[other];
        if (o->len == e->len && memcmp(t->texts + o->text, s, e->len) == 0) return other;
    }
}

static const char *tok_text(const tq_tokenizer *t, int32_t id) { return t->texts + t->tok[id].text; }

/* ------------------------------------------------------------------------ */
/* Reading the vocabulary                                                   */

/* Turns a getter's failure into err, keeping its message (which already
 * names the file). */
static tq_status pass_error(tq_error *err, const tq_error *local, tq_status st) {
    if (err) {
        *err = *local;
        err->code = st;
    }
    return st;
}

static uint32_t read_u32_le(const void *p) {
    const unsigned char *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* i-th element of a 4-byte numeric array (the mapping may be unaligned). */
static float array_f32(const tq_value *v, uint64_t i) {
    uint32_t u = read_u32_le((const char *)v->elems + 4 * i);
    if (v->elem_type == TQ_VAL_I32) return (float)(int32_t)u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t attr_of_type(int32_t type) {
    switch (type) {
    case TYPE_NORMAL: return TQ_TOK_NORMAL;
    case TYPE_UNKNOWN: return TQ_TOK_UNKNOWN;
    case TYPE_CONTROL: return TQ_TOK_CONTROL;
    case TYPE_USER_DEFINED: return TQ_TOK_USER_DEFINED;
    case TYPE_UNUSED: return TQ_TOK_UNUSED;
    case TYPE_BYTE: return TQ_TOK_BYTE;
    default: return 0; /* undefined: decodes to nothing, never split out */
    }
}

/* Tokens, scores and types into t->tok / t->texts, and the hash table. */
static tq_status read_vocab(const tq_gguf *g, tq_tokenizer *t, tq_error *err) {
    const char *path = tq_gguf_path(g);
    const tq_value *tokens = tq_gguf_find(g, "tokenizer.ggml.tokens");
    if (!tokens)
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: no tokenizer vocabulary (tokenizer.ggml.tokens)",
                            path);
    if (tokens->type != TQ_VAL_ARRAY || tokens->elem_type != TQ_VAL_STRING)
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not an array of strings",
                            path);
    if (tokens->count == 0 || tokens->count > (uint64_t)INT32_MAX / 2)
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path,
                            (unsigned long long)tokens->count);
    uint32_t n = (uint32_t)tokens->count;

    const tq_value *scores = tq_gguf_find(g, "tokenizer.ggml.scores");
    if (scores && (scores->type != TQ_VAL_ARRAY ||
                   (scores->elem_type != TQ_VAL_F32 && scores->elem_type != TQ_VAL_I32)))
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: tokenizer.ggml.scores is not an f32 or i32 array",
                            path);
    if (scores && scores->count < n)
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: tokenizer.ggml.scores has %llu entries for %u tokens",
                            path, (unsigned long long)scores->count, n);
    const tq_value *types = tq_gguf_find(g, "tokenizer.ggml.token_type");
    if (types && (types->type != TQ_VAL_ARRAY || types->elem_type != TQ_VAL_I32))
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not an i32 array", path);
    if (types && types->count < n)
        return tq_error_set(err, TQ_ERR_FORMAT,
                            "%s: tokenizer.ggml.token_type has %llu entries for %u tokens", path,
                            (unsigned long long)types->count, n);

    /* Sizes first: an empty token becomes "[EMPTY_<id>]" as in llama.cpp,
     * so that every token has a text the partition can search for. */
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t len = 0;
        if (!tq_gguf_array_str(g, tokens, i, &len))
            return tq_error_set(err, TQ_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%u] cannot be read", path, i);
        total += (len ? len : 20) + 1;
    }
    if (total > UINT32_MAX)
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: tokenizer vocabulary too large", path);

    t->n_vocab = (int32_t)n;
    uint32_t cap = 1;
    while (cap < 2 * n) cap <<= 1;
    t->tok = calloc(n, sizeof *t->tok);
    t->texts = malloc((size_t)total);
    t->hash = malloc((size_t)cap * sizeof *t->hash);
    if (!t->tok || !t->texts || !t->hash) return tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    memset(t->hash, 0xff, (size_t)cap * sizeof *t->hash);
    t->hash_mask = cap - 1;

    uint32_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t len = 0;
        const char *s = tq_gguf_array_str(g, tokens, i, &len);
        tq_tok_entry *e = &t->tok[i];
        e->text = off;
        if (len == 0) {
            tq_log(TQ_LOG_WARN, WHO, "%s: empty token at index %u", path, i);
            len = (uint64_t)snprintf(t->texts + off, 21, "[EMPTY_%u]", i);
        } else {
            memcpy(t->texts + off, s, (size_t)len);
        }
        t->texts[off + len] = '\0';
        e->len = (uint32_t)len;
        off += (uint32_t)len + 1;
        if (e->len > t->max_len) t->max_len = e->len;
        e->score = scores ? array_f32(scores, i) : 0.0f;
        e->attr = types ? attr_of_type((int32_t)read_u32_le((const char *)types->elems + 4 * (size_t)i))
                        : TQ_TOK_NORMAL;
        int32_t dup = hash_insert(t, (int32_t)i);
        if (dup >= 0)
            return tq_error_set(err, TQ_ERR_FORMAT, "%s: duplicate token '%.64s' in the vocabulary (ids %d and %u)",
                                path, tok_text(t, dup), dup, i);
    }
    return TQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Special ids                                                              */

typedef struct special_ids {
    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
} special_ids;

/* In llama.cpp's order: the deprecated prefix/suffix/middle keys come last
 * and win over the fim_* ones. */
static const struct {
    const char *key;
    size_t field;
} id_keys[] = {
    {"tokenizer.ggml.bos_token_id", offsetof(special_ids, bos)},
    {"tokenizer.ggml.eos_token_id", offsetof(special_ids, eos)},
    {"tokenizer.ggml.eot_token_id", offsetof(special_ids, eot)},
    {"tokenizer.ggml.eom_token_id", offsetof(special_ids, eom)},
    {"tokenizer.ggml.unknown_token_id", offsetof(special_ids, unk)},
    {"tokenizer.ggml.seperator_token_id", offsetof(special_ids, sep)}, /* sic */
    {"tokenizer.ggml.padding_token_id", offsetof(special_ids, pad)},
    {"tokenizer.ggml.mask_token_id", offsetof(special_ids, mask)},
    {"tokenizer.ggml.fim_pre_token_id", offsetof(special_ids, fim_pre)},
    {"tokenizer.ggml.fim_suf_token_id", offsetof(special_ids, fim_suf)},
    {"tokenizer.ggml.fim_mid_token_id", offsetof(special_ids, fim_mid)},
    {"tokenizer.ggml.fim_pad_token_id", offsetof(special_ids, fim_pad)},
    {"tokenizer.ggml.fim_rep_token_id", offsetof(special_ids, fim_rep)},
    {"tokenizer.ggml.fim_sep_token_id", offsetof(special_ids, fim_sep)},
    {"tokenizer.ggml.prefix_token_id", offsetof(special_ids, fim_pre)},
    {"tokenizer.ggml.suffix_token_id", offsetof(special_ids, fim_suf)},
    {"tokenizer.ggml.middle_token_id", offsetof(special_ids, fim_mid)},
};

/* SPM defaults (bos 1, eos 2, unk 0), disabled when outside the vocabulary,
 * then overridden by the keys that hold a valid id. */
static void read_special_ids(const tq_gguf *g, int32_t n, special_ids *s) {
    s->bos = 1;
    s->eos = 2;
    s->unk = 0;
    s->eot = s->eom = s->sep = s->pad = s->mask = -1;
    s->fim_pre = s->fim_suf = s->fim_mid = s->fim_pad = s->fim_rep = s->fim_sep = -1;
    for (size_t k = 0; k < sizeof id_keys / sizeof id_keys[0]; k++) {
        int32_t *id = (int32_t *)((char *)s + id_keys[k].field);
        if (*id >= n) *id = -1;
        uint32_t v;
        tq_error local;
        tq_status st = tq_gguf_get_u32(g, id_keys[k].key, &v, &local);
        if (st == TQ_ERR_NOT_FOUND) continue;
        if (st != TQ_OK) {
            tq_log(TQ_LOG_WARN, WHO, "%s (ignored)", local.message);
        } else if (v >= (uint32_t)n) {
            /* Converters write 0xffffffff for "none": keep the default. */
            tq_log(TQ_LOG_INFO, WHO, "%s: %s = %u is outside the vocabulary, using %d", tq_gguf_path(g),
                   id_keys[k].key, v, *id);
        } else {
            *id = (int32_t)v;
        }
    }
}

/* Optional bool key; *out keeps its default when the key is absent. */
static tq_status read_flag(const tq_gguf *g, const char *key, int *out, tq_error *err) {
    tq_error local;
    tq_status st = tq_gguf_get_bool(g, key, out, &local);
    if (st == TQ_ERR_NOT_FOUND) return TQ_OK;
    return st == TQ_OK ? TQ_OK : pass_error(err, &local, st);
}

/* ------------------------------------------------------------------------ */
/* Attributes and the end-of-generation set, fixed up by token text         */

/* U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK, split so
 * that no hex escape swallows the letters after it. */
#define FW_BAR "\xef\xbd\x9c"
#define SP_MARK "\xe2\x96\x81"

static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<" FW_BAR "end" SP_MARK "of" SP_MARK "sentence" FW_BAR ">",
    "<end_of_utterance>", NULL};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};
static const char *const fim_pre_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<" FW_BAR "fim" SP_MARK "begin" FW_BAR ">",
    "<PRE>", SP_MARK "<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const fim_suf_texts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<" FW_BAR "fim" SP_MARK "hole" FW_BAR ">",
    "<SUF>", SP_MARK "<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const fim_mid_texts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<" FW_BAR "fim" SP_MARK "end" FW_BAR ">",
    "<MID>", SP_MARK "<MID>", "<|code_middle|>", "<|middle|>", NULL};
static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                            "<reponame>", NULL};
static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<" FW_BAR "end" SP_MARK "of" SP_MARK "sentence" FW_BAR ">", "[e~[", NULL};
/* gpt-oss markers llama.cpp always renders as text. */
static const char *const always_shown_texts[] = {"<|channel|>", "<|message|>", "<|start|>",
                                                 "<|constrain|>", NULL};

static int32_t find_text(const tq_tokenizer *t, const char *s) { return tq_tok_lookup(t, s, strlen(s)); }

/* Lowest id among the tokens whose text is in list, or -1. */
static int32_t first_of(const tq_tokenizer *t, const char *const *list) {
    int32_t best = -1;
    for (; *list; list++) {
        int32_t id = find_text(t, *list);
        if (id >= 0 && (best < 0 || id < best)) best = id;
    }
    return best;
}

/* llama.cpp walks its unordered text->id map and takes, for each special id
 * the file left unset, the first token whose text is in that id's list,
 * forcing it to CONTROL. The walk follows hash order; the lowest id is the
 * deterministic equivalent (it only matters when a vocabulary has two
 * candidates for one id). */
static void detect_by_text(tq_tokenizer *t, special_ids *s) {
    struct {
        int32_t *id;
        const char *const *texts;
    } rules[] = {
        {&s->eot, eot_texts},         {&s->eom, eom_texts},         {&s->fim_pre, fim_pre_texts},
        {&s->fim_suf, fim_suf_texts}, {&s->fim_mid, fim_mid_texts}, {&s->fim_pad, fim_pad_texts},
        {&s->fim_rep, fim_rep_texts}, {&s->fim_sep, fim_sep_texts},
    };
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        if (*rules[r].id >= 0) continue;
        int32_t id = first_of(t, rules[r].texts);
        if (id < 0) continue;
        *rules[r].id = id;
        t->tok[id].attr |= TQ_TOK_CONTROL;
    }
}

/* Id of the token with this text if it ends generation, else -1. */
static int32_t eog_id(const tq_tokenizer *t, const char *text) {
    int32_t id = find_text(t, text);
    return id >= 0 && t->tok[id].eog ? id : -1;
}

/* The EOG set: FIM pad/repo/separator ids, every token with an EOG text
 * (forced to CONTROL), eos/eot/eom; then llama.cpp's two exceptions. */
static void build_eog(tq_tokenizer *t, const special_ids *s) {
    int32_t ids[] = {s->fim_pad, s->fim_rep, s->fim_sep, s->eos, s->eot, s->eom};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i] >= 0) t->tok[ids[i]].eog = 1;
    for (const char *const *p = eog_texts; *p; p++) {
        int32_t id = find_text(t, *p);
        if (id >= 0) {
            t->tok[id].eog = 1;
            t->tok[id].attr |= TQ_TOK_CONTROL;
        }
    }
    for (const char *const *p = always_shown_texts; *p; p++) {
        int32_t id = find_text(t, *p);
        if (id >= 0) t->tok[id].attr = TQ_TOK_USER_DEFINED;
    }

    /* gpt-oss / solar-open: <|end|> ends a message, not the generation. */
    int32_t end = eog_id(t, "<|end|>");
    int call = eog_id(t, "<|call|>") >= 0 || eog_id(t, "<|calls|>") >= 0;
    if (end >= 0 && call && (eog_id(t, "<|return|>") >= 0 || eog_id(t, "<|flush|>") >= 0)) {
        t->tok[end].eog = 0;
        t->tok[end].attr = TQ_TOK_USER_DEFINED;
    }
    /* gemma4 / paddleocr: </s> is an ordinary word there. */
    int32_t eos_text = eog_id(t, "</s>");
    if (eos_text >= 0 && eog_id(t, "<|tool_response>") >= 0) {
        t->tok[eos_text].eog = 0;
        t->tok[eos_text].attr = TQ_TOK_NORMAL;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Tokens the partition splits out of raw text, longest first so that a
 * token containing another wins. llama.cpp's std::sort leaves equal lengths
 * in no particular order; ties go by id here (for the vocabularies in use no
 * two tokens of equal length can overlap in a text, so order is moot). */
static tq_status build_special_cache(tq_tokenizer *t) {
    const uint32_t cls = TQ_TOK_CONTROL | TQ_TOK_USER_DEFINED | TQ_TOK_UNKNOWN;
    int32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->tok[id].attr & cls) && t->tok[id].len > 0) n++;
    /* Sort keys: (UINT32_MAX - length) in the high half, id in the low. */
    uint64_t *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    t->special = malloc((size_t)(n ? n : 1) * sizeof *t->special);
    if (!keys || !t->special) {
        free(keys);
        return TQ_ERR_NOMEM;
    }
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->tok[id].attr & cls) && t->tok[id].len > 0)
            keys[n++] = (uint64_t)(UINT32_MAX - t->tok[id].len) << 32 | (uint32_t)id;
    qsort(keys, (size_t)n, sizeof *keys, cmp_u64);
    for (int32_t i = 0; i < n; i++) t->special[i] = (int32_t)(keys[i] & UINT32_MAX);
    free(keys);
    t->n_special = n;
    return TQ_OK;
}

/* Value of a byte token "<0xHH>", parsed like llama.cpp's strtol on the two
 * characters after "<0x". */
static unsigned char byte_value(const char *text, uint32_t len) {
    unsigned v = 0;
    for (uint32_t i = 3; i < 5 && i < len && isxdigit((unsigned char)text[i]); i++) {
        unsigned char c = (unsigned char)text[i];
        v = v * 16 + (unsigned)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
    }
    return (unsigned char)v;
}

/* Every token's decoded text with special = 1 (llama.cpp's piece cache):
 * control, unknown and user-defined tokens as written, normal tokens with
 * U+2581 turned back into spaces, byte tokens as their byte. */
static tq_status build_pieces(tq_tokenizer *t) {
    size_t total = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) total += t->tok[id].len + 1;
    t->pieces = malloc(total);
    if (!t->pieces) return TQ_ERR_NOMEM;
    uint32_t off = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tq_tok_entry *e = &t->tok[id];
        const char *s = t->texts + e->text;
        char *p = t->pieces + off;
        uint32_t n = 0;
        if (e->attr & (TQ_TOK_UNKNOWN | TQ_TOK_CONTROL | TQ_TOK_USER_DEFINED)) {
            memcpy(p, s, e->len);
            n = e->len;
        } else if (e->attr & TQ_TOK_NORMAL) {
            for (uint32_t i = 0; i < e->len;) {
                if (e->len - i >= 3 && memcmp(s + i, SP_MARK, 3) == 0) {
                    p[n++] = ' ';
                    i += 3;
                } else {
                    p[n++] = s[i++];
                }
            }
        } else if (e->attr & TQ_TOK_BYTE) {
            p[n++] = (char)byte_value(s, e->len);
        }
        e->piece = off;
        e->plen = n;
        off += n;
    }
    return TQ_OK;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static void set_rstrip(tq_tokenizer *t, const char *text, int on) {
    int32_t id = find_text(t, text);
    if (id < 0) return; /* llama.cpp throws here; a small vocab simply lacks it */
    if (on) t->tok[id].attr |= TQ_TOK_RSTRIP;
    else t->tok[id].attr &= ~(uint32_t)TQ_TOK_RSTRIP;
}

/* llama.cpp's Phi-3 rule (by general.name, §4.8): every special token eats
 * the whitespace after it, except <unk>, <s> and <|endoftext|>. */
static void phi3_quirk(const tq_gguf *g, tq_tokenizer *t) {
    const char *name = NULL;
    if (tq_gguf_get_str(g, "general.name", &name, NULL) != TQ_OK) return;
    size_t n = strlen(name);
    char *lower = malloc(n + 1);
    if (!lower) return;
    for (size_t i = 0; i <= n; i++) lower[i] = (char)tolower((unsigned char)name[i]);
    int phi3 = contains(lower, "phi-3") || contains(lower, "phi3");
    free(lower);
    if (!phi3) return;
    for (int32_t i = 0; i < t->n_special; i++) t->tok[t->special[i]].attr |= TQ_TOK_RSTRIP;
    set_rstrip(t, "</s>", 1);
    set_rstrip(t, "<unk>", 0);
    set_rstrip(t, "<s>", 0);
    set_rstrip(t, "<|endoftext|>", 0);
}

/* Byte fallback: "<0xHH>", else the one-byte token, else <unk>. (llama.cpp
 * throws when both are missing; no SPM vocabulary lacks them.) */
static void build_byte_tokens(tq_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        char one = (char)b;
        int32_t id = tq_tok_lookup(t, name, 6);
        if (id < 0) id = tq_tok_lookup(t, &one, 1);
        t->byte_tok[b] = id >= 0 ? id : t->unk;
    }
}

/* Whether any token has U+2581 at a byte offset > 0 not directly after
 * another U+2581 (SentencePiece vocabularies trained with whitespace
 * splitting have none: spaces only lead a token). */
static int spaces_only_lead(const tq_tokenizer *t) {
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = tok_text(t, id);
        uint32_t n = t->tok[id].len;
        for (uint32_t k = 1; k + 3 <= n; k++)
            if (memcmp(s + k, SP_MARK, 3) == 0 && (k < 3 || memcmp(s + k - 3, SP_MARK, 3) != 0))
                return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Load / free                                                              */

tq_status tq_tokenizer_load(const tq_gguf *g, tq_tokenizer **out, tq_error *err) {
    *out = NULL;
    const char *path = tq_gguf_path(g);
    tq_error local;
    const char *model = NULL;
    tq_status st = tq_gguf_get_str(g, "tokenizer.ggml.model", &model, &local);
    if (st == TQ_ERR_NOT_FOUND)
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: no tokenizer (tokenizer.ggml.model is missing)", path);
    if (st != TQ_OK) return pass_error(err, &local, st);
    if (strcmp(model, "llama") != 0)
        return tq_error_set(err, TQ_ERR_UNSUPPORTED,
                            "%s: tokenizer model '%.64s' is not supported (only 'llama', SentencePiece)",
                            path, model);

    tq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    t->add_bos = 1;
    t->add_eos = 0;
    t->add_space_prefix = 1;

    special_ids ids;
    st = read_vocab(g, t, err);
    if (st == TQ_OK) st = read_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err);
    if (st == TQ_OK) {
        read_special_ids(g, t->n_vocab, &ids);
        st = read_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err);
    }
    if (st == TQ_OK) st = read_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err);
    if (st == TQ_OK && t->add_bos && ids.bos < 0)
        st = tq_error_set(err, TQ_ERR_FORMAT,
                          "%s: tokenizer.ggml.add_bos_token is true, but there is no BOS token", path);
    if (st == TQ_OK && t->add_eos && ids.eos < 0)
        st = tq_error_set(err, TQ_ERR_FORMAT,
                          "%s: tokenizer.ggml.add_eos_token is true, but there is no EOS token", path);
    if (st == TQ_OK) {
        detect_by_text(t, &ids);
        build_eog(t, &ids);
        if (build_special_cache(t) != TQ_OK || build_pieces(t) != TQ_OK)
            st = tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    }
    if (st != TQ_OK) {
        tq_tokenizer_free(t);
        return st;
    }
    phi3_quirk(g, t); /* after the caches, as in llama.cpp: only RSTRIP changes */
    t->bos = ids.bos;
    t->eos = ids.eos;
    t->unk = ids.unk;
    build_byte_tokens(t);
    t->split_at_spaces = spaces_only_lead(t);
    *out = t;
    return TQ_OK;
}

void tq_tokenizer_free(tq_tokenizer *t) {
    if (!t) return;
    free(t->tok);
    free(t->texts);
    free(t->pieces);
    free(t->hash);
    free(t->special);
    free(t);
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */

/* The piece of id as llama.cpp's token_to_piece gives it; "" for ids outside
 * the vocabulary. */
static uint32_t piece_of(const tq_tokenizer *t, int32_t id, int special, const char **p) {
    *p = "";
    if (id < 0 || id >= t->n_vocab) return 0;
    const tq_tok_entry *e = &t->tok[id];
    if (!special && (e->attr & (TQ_TOK_UNKNOWN | TQ_TOK_CONTROL))) return 0;
    *p = t->pieces + e->piece;
    return e->plen;
}

int32_t tq_token_to_piece(const tq_tokenizer *t, int32_t id, int special, char *buf, int32_t size) {
    const char *p;
    uint32_t n = piece_of(t, id, special, &p);
    if (n > 0 && size >= 0 && n <= (uint32_t)size) memcpy(buf, p, n);
    return (int32_t)n;
}

/* Pieces back to back, as llama.cpp's detokenize with remove_special = false:
 * the first token loses one leading space when the vocabulary adds a space
 * prefix — even when that first token is a BOS that prints as nothing, in
 * which case the next piece keeps its space. buf receives the first
 * min(result, size) bytes; no NUL is written. */
int32_t tq_detokenize(const tq_tokenizer *t, const int32_t *ids, int32_t n, int special, char *buf,
                      int32_t size) {
    int64_t total = 0;
    int remove_space = t->add_space_prefix;
    for (int32_t i = 0; i < n; i++) {
        const char *p;
        uint32_t len = piece_of(t, ids[i], special, &p);
        if (remove_space && len > 0 && p[0] == ' ') {
            p++;
            len--;
        }
        remove_space = 0;
        if (len > 0 && total < size) {
            int64_t room = size - total;
            memcpy(buf + total, p, (size_t)(len < room ? len : room));
        }
        total += len;
        if (total > INT32_MAX) return INT32_MAX;
    }
    return (int32_t)total;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */

int32_t tq_tokenizer_n_vocab(const tq_tokenizer *t) { return t->n_vocab; }
int32_t tq_tokenizer_bos(const tq_tokenizer *t) { return t->bos; }
int32_t tq_tokenizer_eos(const tq_tokenizer *t) { return t->eos; }
int tq_tokenizer_add_bos(const tq_tokenizer *t) { return t->add_bos; }

int tq_tokenizer_is_eog(const tq_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->tok[id].eog;
}

int32_t tq_tokenizer_find(const tq_tokenizer *t, const char *text) {
    return tq_tok_lookup(t, text, strlen(text));
}
