/* tq_tokenizer_spm.c — text to token ids, as llama.cpp's SPM path does it:
 * split special tokens out of the text, give every run of raw text a space
 * prefix where llama.cpp does, write spaces as U+2581, then merge the
 * highest-scoring adjacent pair until none is in the vocabulary, falling back
 * to byte tokens for what is left.
 * Reference: ../shared/specs/gguf-llama-phi3.md §5.1 (llama-vocab.cpp
 * tokenize, tokenizer_st_partition, llm_tokenizer_spm_session). */
#include "tq_tokenizer.h"

#include "tq_tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)

/* ------------------------------------------------------------------------ */
/* Output and scratch space                                                 */

/* Ids go to out[0..max); n counts all of them so the caller learns the size
 * it needs. */
typedef struct emitter {
    int32_t *out;
    int32_t max;
    int64_t n;
} emitter;

static void emit(emitter *e, int32_t id) {
    if (e->n < e->max) e->out[e->n] = id;
    e->n++;
}

/* A piece of the input: a special token (token >= 0) or raw text
 * [off, off + len) of the input. */
typedef struct fragment {
    int32_t token;
    size_t off, len;
} fragment;

/* A symbol of the SPM session: bytes [off, off + n) of the escaped text,
 * linked to its live neighbours. n == 0 once merged into its left one. */
typedef struct symbol {
    int32_t prev, next;
    uint32_t off, n;
} symbol;

/* A candidate merge of two adjacent symbols, valid while both still have
 * the sizes they had when it was queued (size = their sum then). */
typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size;
} bigram;

typedef struct workspace {
    fragment *frags, *frags_tmp;
    size_t n_frags, n_tmp, frags_cap;
    char *text; /* escaped fragment */
    symbol *syms;
    bigram *heap;
    size_t heap_n, heap_cap;
} workspace;

static void ws_free(workspace *w) {
    free(w->frags);
    free(w->frags_tmp);
    free(w->text);
    free(w->syms);
    free(w->heap);
}

/* ------------------------------------------------------------------------ */
/* Special-token partition                                                  */

static int is_c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* First occurrence of s[0..n) in h[pos, end), or NONE. */
static size_t find_bytes(const char *h, size_t pos, size_t end, const char *s, size_t n) {
    if (end - pos < n) return NONE;
    const char *p = h + pos, *last = h + end - n;
    while (p <= last) {
        p = memchr(p, s[0], (size_t)(last - p) + 1);
        if (!p) return NONE;
        if (memcmp(p, s, n) == 0) return (size_t)(p - h);
        p++;
    }
    return NONE;
}

static int push_frag(workspace *w, int32_t token, size_t off, size_t len) {
    if (w->n_tmp == w->frags_cap) {
        size_t cap = w->frags_cap ? 2 * w->frags_cap : 16;
        fragment *a = realloc(w->frags, cap * sizeof *a);
        if (!a) return -1;
        w->frags = a;
        fragment *b = realloc(w->frags_tmp, cap * sizeof *b);
        if (!b) return -1;
        w->frags_tmp = b;
        w->frags_cap = cap;
    }
    w->frags_tmp[w->n_tmp++] = (fragment){token, off, len};
    return 0;
}

/* Splits every raw fragment at each occurrence of token id. LSTRIP drops the
 * whitespace before an occurrence, RSTRIP the whitespace after it. */
static int split_on(const tq_tokenizer *t, workspace *w, const char *text, int32_t id) {
    const tq_tok_entry *e = &t->tok[id];
    const char *s = t->texts + e->text;
    w->n_tmp = 0;
    for (size_t f = 0; f < w->n_frags; f++) {
        fragment fr = w->frags[f];
        if (fr.token >= 0) {
            if (push_frag(w, fr.token, 0, 0)) return -1;
            continue;
        }
        size_t pos = fr.off, end = fr.off + fr.len, m;
        while ((m = find_bytes(text, pos, end, s, e->len)) != NONE) {
            size_t left = m - pos;
            if (e->attr & TQ_TOK_LSTRIP)
                while (left > 0 && is_c_space(text[pos + left - 1])) left--;
            if (left > 0 && push_frag(w, -1, pos, left)) return -1;
            if (push_frag(w, id, 0, 0)) return -1;
            pos = m + e->len;
            if (e->attr & TQ_TOK_RSTRIP)
                while (pos < end && is_c_space(text[pos])) pos++;
        }
        if (pos < end && push_frag(w, -1, pos, end - pos)) return -1;
    }
    fragment *tmp = w->frags;
    w->frags = w->frags_tmp;
    w->frags_tmp = tmp;
    w->n_frags = w->n_tmp;
    return 0;
}

/* Control and unknown tokens are recognised only when parse_special is set;
 * user-defined ones always (as Hugging Face tokenizers do). */
static int partition(const tq_tokenizer *t, workspace *w, const char *text, size_t len,
                     int parse_special) {
    w->n_tmp = 0;
    if (len > 0 && push_frag(w, -1, 0, len)) return -1;
    fragment *tmp = w->frags;
    w->frags = w->frags_tmp;
    w->frags_tmp = tmp;
    w->n_frags = w->n_tmp;
    for (int32_t i = 0; i < t->n_special; i++) {
        int32_t id = t->special[i];
        if (!parse_special && (t->tok[id].attr & (TQ_TOK_CONTROL | TQ_TOK_UNKNOWN))) continue;
        if (split_on(t, w, text, id)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The merge queue: highest score first, then leftmost                     */

static int better(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(workspace *w, bigram b) {
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? 2 * w->heap_cap : 64;
        bigram *h = realloc(w->heap, cap * sizeof *h);
        if (!h) return -1;
        w->heap = h;
        w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!better(&b, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
    return 0;
}

static bigram heap_pop(workspace *w) {
    bigram top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&w->heap[c + 1], &w->heap[c])) c++;
        if (!better(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

/* ------------------------------------------------------------------------ */
/* SPM session over one escaped fragment                                    */

/* Byte length of the UTF-8 sequence a lead byte starts (llama.cpp's
 * unicode_len_utf8: a stray continuation byte counts as one). */
static uint32_t utf8_len(unsigned char c) {
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

/* Queues the merge of adjacent symbols l and r if their text is a token. */
static int try_add_bigram(const tq_tokenizer *t, workspace *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    uint32_t size = w->syms[l].n + w->syms[r].n;
    int32_t id = tq_tok_lookup(t, w->text + w->syms[l].off, size);
    if (id < 0) return 0;
    return heap_push(w, (bigram){t->tok[id].score, l, r, size});
}

/* Emits symbol i: its token, or one byte token per byte when its text is
 * not in the vocabulary. (llama.cpp's resegment first consults rev_merge,
 * but that map only holds texts that are tokens, and resegment asks it only
 * about texts that are not, so that branch never runs.) */
static void resegment(const tq_tokenizer *t, const workspace *w, int32_t i, emitter *out) {
    const symbol *s = &w->syms[i];
    int32_t id = tq_tok_lookup(t, w->text + s->off, s->n);
    if (id >= 0) {
        emit(out, id);
        return;
    }
    for (uint32_t k = 0; k < s->n; k++) {
        int32_t b = t->byte_tok[(unsigned char)w->text[s->off + k]];
        if (b >= 0) emit(out, b);
    }
}

/* Runs the merge queue over the linked symbols first..(next == -1), then
 * emits them. */
static int merge_and_emit(const tq_tokenizer *t, workspace *w, int32_t first, emitter *out) {
    w->heap_n = 0;
    for (int32_t i = first; w->syms[i].next != -1; i = w->syms[i].next)
        if (try_add_bigram(t, w, i, w->syms[i].next)) return -1;

    while (w->heap_n > 0) {
        bigram b = heap_pop(w);
        symbol *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = b.left;
        if (try_add_bigram(t, w, l->prev, b.left) || try_add_bigram(t, w, b.left, l->next)) return -1;
    }

    for (int32_t i = first; i != -1; i = w->syms[i].next) resegment(t, w, i, out);
    return 0;
}

static int is_mark(const char *p) { return memcmp(p, "\xe2\x96\x81", 3) == 0; }

/* llama.cpp merges over the whole fragment at once. When the vocabulary
 * allows (split_at_spaces), the symbols are cut into words before each
 * U+2581 that follows something else: no token can span such a cut, merges
 * only ever touch neighbours, and the queue order restricted to one word is
 * the same, so every word merges exactly as it would in the whole. */
static int spm_session(const tq_tokenizer *t, workspace *w, size_t n, emitter *out) {
    int32_t n_sym = 0, word = 0;
    for (size_t off = 0; off < n;) {
        uint32_t len = utf8_len((unsigned char)w->text[off]);
        if (len > n - off) len = (uint32_t)(n - off);
        int cut = t->split_at_spaces && n_sym > word && len == 3 && is_mark(w->text + off) &&
                  (off < 3 || !is_mark(w->text + off - 3));
        if (cut) {
            w->syms[n_sym - 1].next = -1;
            if (merge_and_emit(t, w, word, out)) return -1;
            word = n_sym;
        }
        w->syms[n_sym] = (symbol){n_sym > word ? n_sym - 1 : -1, n_sym + 1, (uint32_t)off, len};
        off += len;
        n_sym++;
    }
    if (n_sym == word) return 0;
    w->syms[n_sym - 1].next = -1;
    return merge_and_emit(t, w, word, out);
}

/* Copies a raw fragment into w->text with the optional leading space and
 * every ' ' written as U+2581; returns its length. */
static size_t escape(workspace *w, const char *src, size_t len, int space_prefix) {
    size_t n = 0;
    if (space_prefix) {
        memcpy(w->text, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (src[i] == ' ') {
            memcpy(w->text + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            w->text[n++] = src[i];
        }
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                              */

/* Returns -1 (and writes nothing useful) only when memory runs out or the
 * text is too long for 32-bit symbol indices. */
int32_t tq_tokenize(const tq_tokenizer *t, const char *text, size_t len, int add_special,
                    int parse_special, int32_t *out, int32_t max) {
    if (len > (size_t)INT32_MAX / 4) return -1;
    workspace w = {0};
    emitter em = {out, max < 0 ? 0 : max, 0};
    int rc = partition(t, &w, text, len, parse_special);

    size_t longest = 0;
    for (size_t f = 0; f < w.n_frags; f++)
        if (w.frags[f].token < 0 && w.frags[f].len > longest) longest = w.frags[f].len;
    if (rc == 0 && w.n_frags > 0) {
        size_t cap = 3 * longest + 3; /* every byte a space, plus the prefix */
        w.text = malloc(cap);
        w.syms = malloc(cap * sizeof *w.syms);
        if (!w.text || !w.syms) rc = -1;
    }

    if (rc == 0 && add_special && t->add_bos) emit(&em, t->bos);
    /* A space goes before the text at the start and after every special
     * token, as SentencePiece would add it to each separately encoded run. */
    int prev_special = 1;
    for (size_t f = 0; rc == 0 && f < w.n_frags; f++) {
        const fragment *fr = &w.frags[f];
        if (fr->token >= 0) {
            emit(&em, fr->token);
            prev_special = 1;
            continue;
        }
        size_t n = escape(&w, text + fr->off, fr->len, t->add_space_prefix && prev_special);
        rc = spm_session(t, &w, n, &em);
        prev_special = 0;
    }
    if (rc == 0 && add_special && t->add_eos) emit(&em, t->eos);
    ws_free(&w);
    if (rc != 0 || em.n > INT32_MAX) return -1;
    return (int32_t)em.n;
}
