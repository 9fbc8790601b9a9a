/* tq_gguf_writer.c — writes GGUF v3 files.
 *
 * Every KV is encoded to its on-disk bytes (everything after the value type)
 * the moment it is set, so copying values out of a tq_gguf never keeps
 * pointers into a mapping that might be closed before the write. Tensor data
 * is copied unless borrowed. The file is written once, to a temporary name
 * in the destination directory, and renamed into place only when complete:
 * readers see the old file or the new one, never half of one.
 * Layout: ../shared/specs/gguf-llama-phi3.md §1.1. */
#include "tq_gguf_writer.h"

#include "tq_error.h"
#include "tq_gguf.h"
#include "tq_types.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GGUF_VERSION 3
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64
#define ALIGNMENT_KEY "general.alignment"

typedef struct wkv {
    char *key;
    tq_value_type type;
    uint8_t *bytes; /* encoded value */
    size_t n;
} wkv;

typedef struct wtensor {
    char *name;
    tq_type type;
    int n_dims;
    int64_t ne[TQ_MAX_DIMS];
    const void *data; /* borrowed or == owned; NULL when streamed */
    void *owned;
    uint64_t nbytes;
    tq_gguf_tensor_producer produce; /* streamed: fills the data at write time */
    void *produce_user;
} wtensor;

struct tq_gguf_writer {
    uint32_t alignment;
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
};

/* Returns NULL when alignment is not 0 or a power of two, or out of memory. */
tq_gguf_writer *tq_gguf_writer_new(uint32_t alignment) {
    if (alignment == 0) alignment = GGUF_DEFAULT_ALIGNMENT;
    if ((alignment & (alignment - 1)) != 0) return NULL;
    tq_gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = alignment;
    return w;
}

void tq_gguf_writer_free(tq_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].bytes);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].owned);
    }
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* ------------------------------------------------------------------------ */
/* Encoding buffer                                                          */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
    int failed; /* an allocation failed; later appends are ignored */
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->failed) return;
    if (n > SIZE_MAX - b->n) {
        b->failed = 1;
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap = cap > SIZE_MAX / 2 ? b->n + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(buf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(buf *b, const char *s, uint64_t len) {
    put_u64(b, len);
    put(b, s, (size_t)len);
}

/* One scalar of GGUF type t from a widened tq_value number. */
static void put_scalar(buf *b, tq_value_type t, const tq_value *v) {
    switch (t) {
    case TQ_VAL_U8: case TQ_VAL_BOOL: {
        uint8_t x = (uint8_t)v->num.u;
        put(b, &x, 1);
        break;
    }
    case TQ_VAL_I8: {
        uint8_t x = (uint8_t)(int8_t)v->num.i;
        put(b, &x, 1);
        break;
    }
    case TQ_VAL_U16: case TQ_VAL_I16: {
        uint16_t x = t == TQ_VAL_U16 ? (uint16_t)v->num.u : (uint16_t)(int16_t)v->num.i;
        uint8_t y[2] = {(uint8_t)x, (uint8_t)(x >> 8)};
        put(b, y, 2);
        break;
    }
    case TQ_VAL_U32: put_u32(b, (uint32_t)v->num.u); break;
    case TQ_VAL_I32: put_u32(b, (uint32_t)(int32_t)v->num.i); break;
    case TQ_VAL_U64: put_u64(b, v->num.u); break;
    case TQ_VAL_I64: put_u64(b, (uint64_t)v->num.i); break;
    case TQ_VAL_F32: {
        float f = (float)v->num.f;
        uint32_t x;
        memcpy(&x, &f, 4);
        put_u32(b, x);
        break;
    }
    case TQ_VAL_F64: {
        uint64_t x;
        memcpy(&x, &v->num.f, 8);
        put_u64(b, x);
        break;
    }
    default: break;
    }
}

static size_t scalar_size(tq_value_type t) {
    switch (t) {
    case TQ_VAL_U8: case TQ_VAL_I8: case TQ_VAL_BOOL: return 1;
    case TQ_VAL_U16: case TQ_VAL_I16: return 2;
    case TQ_VAL_U32: case TQ_VAL_I32: case TQ_VAL_F32: return 4;
    case TQ_VAL_U64: case TQ_VAL_I64: case TQ_VAL_F64: return 8;
    default: return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* KVs                                                                      */

static wkv *find_kv(tq_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0) return &w->kvs[i];
    return NULL;
}

/* Takes ownership of the encoded bytes in *b (also when it fails). */
static tq_status set_encoded(tq_gguf_writer *w, const char *key, tq_value_type type, buf *b) {
    if (!w || !key || !*key) {
        free(b->p);
        return TQ_ERR_INVALID;
    }
    if (b->failed) {
        free(b->p);
        return TQ_ERR_NOMEM;
    }
    wkv *kv = find_kv(w, key);
    if (!kv) {
        if (w->n_kv == w->cap_kv) {
            size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
            wkv *p = realloc(w->kvs, cap * sizeof *p);
            if (!p) {
                free(b->p);
                return TQ_ERR_NOMEM;
            }
            w->kvs = p;
            w->cap_kv = cap;
        }
        char *k = malloc(strlen(key) + 1);
        if (!k) {
            free(b->p);
            return TQ_ERR_NOMEM;
        }
        strcpy(k, key);
        kv = &w->kvs[w->n_kv++];
        kv->key = k;
        kv->bytes = NULL;
    }
    free(kv->bytes);
    kv->type = type;
    kv->bytes = b->p;
    kv->n = b->n;
    return TQ_OK;
}

static tq_status set_scalar(tq_gguf_writer *w, const char *key, tq_value_type t, tq_value v) {
    buf b = {0};
    put_scalar(&b, t, &v);
    return set_encoded(w, key, t, &b);
}

tq_status tq_gguf_writer_set_u32(tq_gguf_writer *w, const char *key, uint32_t v) {
    tq_value x = {.num.u = v};
    return set_scalar(w, key, TQ_VAL_U32, x);
}

tq_status tq_gguf_writer_set_i32(tq_gguf_writer *w, const char *key, int32_t v) {
    tq_value x = {.num.i = v};
    return set_scalar(w, key, TQ_VAL_I32, x);
}

tq_status tq_gguf_writer_set_f32(tq_gguf_writer *w, const char *key, float v) {
    tq_value x = {.num.f = v};
    return set_scalar(w, key, TQ_VAL_F32, x);
}

tq_status tq_gguf_writer_set_bool(tq_gguf_writer *w, const char *key, int v) {
    tq_value x = {.num.u = v != 0};
    return set_scalar(w, key, TQ_VAL_BOOL, x);
}

tq_status tq_gguf_writer_set_str(tq_gguf_writer *w, const char *key, const char *v) {
    if (!v) return TQ_ERR_INVALID;
    buf b = {0};
    put_str(&b, v, strlen(v));
    return set_encoded(w, key, TQ_VAL_STRING, &b);
}

tq_status tq_gguf_writer_set_array(tq_gguf_writer *w, const char *key, tq_value_type elem_type,
                                   const void *elems, uint64_t n) {
    size_t es = scalar_size(elem_type);
    if (es == 0 || (n > 0 && !elems) || n > SIZE_MAX / es) return TQ_ERR_INVALID;
    buf b = {0};
    put_u32(&b, (uint32_t)elem_type);
    put_u64(&b, n);
    put(&b, elems, (size_t)n * es);
    return set_encoded(w, key, TQ_VAL_ARRAY, &b);
}

tq_status tq_gguf_writer_set_str_array(tq_gguf_writer *w, const char *key,
                                       const char *const *strs, uint64_t n) {
    if (n > 0 && !strs) return TQ_ERR_INVALID;
    buf b = {0};
    put_u32(&b, (uint32_t)TQ_VAL_STRING);
    put_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            free(b.p);
            return TQ_ERR_INVALID;
        }
        put_str(&b, strs[i], strlen(strs[i]));
    }
    return set_encoded(w, key, TQ_VAL_ARRAY, &b);
}

tq_status tq_gguf_writer_copy_kv(tq_gguf_writer *w, const struct tq_gguf *g, const char *key,
                                 const tq_value *v) {
    if (!v) return TQ_ERR_INVALID;
    buf b = {0};
    switch (v->type) {
    case TQ_VAL_STRING: put_str(&b, v->str, v->len); break;
    case TQ_VAL_ARRAY:
        put_u32(&b, (uint32_t)v->elem_type);
        put_u64(&b, v->count);
        if (v->elem_type == TQ_VAL_STRING) {
            if (!g) {
                free(b.p);
                return TQ_ERR_INVALID;
            }
            for (uint64_t i = 0; i < v->count; i++) {
                uint64_t len;
                const char *s = tq_gguf_array_str(g, v, i, &len);
                if (!s) {
                    free(b.p);
                    return TQ_ERR_INVALID; /* not an array of g */
                }
                put_str(&b, s, len);
            }
        } else {
            size_t es = scalar_size(v->elem_type);
            if (es == 0 || v->count > SIZE_MAX / es) {
                free(b.p);
                return TQ_ERR_UNSUPPORTED; /* arrays of arrays */
            }
            put(&b, v->elems, (size_t)v->count * es);
        }
        break;
    default:
        if (scalar_size(v->type) == 0) return TQ_ERR_INVALID;
        put_scalar(&b, v->type, v);
        break;
    }
    return set_encoded(w, key, v->type, &b);
}

tq_status tq_gguf_writer_copy_all_kv(tq_gguf_writer *w, const struct tq_gguf *g,
                                     const char *from, const char *to) {
    if (!w || !g) return TQ_ERR_INVALID;
    size_t nfrom = from ? strlen(from) : 0;
    if (!to) to = "";
    for (int64_t i = 0; i < tq_gguf_n_kv(g); i++) {
        const char *key = tq_gguf_kv_key(g, i);
        tq_status st;
        if (nfrom && strncmp(key, from, nfrom) == 0) {
            size_t n = strlen(to) + strlen(key + nfrom) + 1;
            char *renamed = malloc(n);
            if (!renamed) return TQ_ERR_NOMEM;
            snprintf(renamed, n, "%s%s", to, key + nfrom);
            st = tq_gguf_writer_copy_kv(w, g, renamed, tq_gguf_kv_value(g, i));
            free(renamed);
        } else {
            st = tq_gguf_writer_copy_kv(w, g, key, tq_gguf_kv_value(g, i));
        }
        if (st != TQ_OK) return st;
    }
    return TQ_OK;
}

tq_status tq_gguf_writer_remove_kv(tq_gguf_writer *w, const char *key) {
    if (!w || !key) return TQ_ERR_INVALID;
    wkv *kv = find_kv(w, key);
    if (!kv) return TQ_ERR_NOT_FOUND;
    free(kv->key);
    free(kv->bytes);
    size_t i = (size_t)(kv - w->kvs);
    memmove(kv, kv + 1, (w->n_kv - i - 1) * sizeof *kv);
    w->n_kv--;
    return TQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */

/* Only built-in GGUF types: a run-time id of a plugin type means nothing to
 * another process, so writing one would make a file no reader understands. */
static tq_status add_tensor(tq_gguf_writer *w, const char *name, tq_type type, int n_dims,
                            const int64_t *ne, const void *data, int borrow,
                            tq_gguf_tensor_producer produce, void *produce_user) {
    if (!w || !name || strlen(name) >= GGUF_MAX_NAME || n_dims < 0 || n_dims > TQ_MAX_DIMS ||
        (n_dims > 0 && !ne) || (!data && !produce))
        return TQ_ERR_INVALID;
    const tq_type_info *ti = tq_type_get(type);
    if (!ti || !tq_type_is_gguf_weight(type)) return TQ_ERR_UNSUPPORTED;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return TQ_ERR_INVALID;

    wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    uint64_t n_elems = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1 || (uint64_t)ne[d] > (uint64_t)INT64_MAX / n_elems) return TQ_ERR_INVALID;
        t.ne[d] = ne[d];
        n_elems *= (uint64_t)ne[d];
    }
    if (t.ne[0] % ti->block_elems != 0) return TQ_ERR_INVALID;
    uint64_t row_bytes = (uint64_t)(t.ne[0] / ti->block_elems) * (uint64_t)ti->block_bytes;
    uint64_t rows = n_elems / (uint64_t)t.ne[0];
    if (rows > SIZE_MAX / row_bytes) return TQ_ERR_RANGE;
    t.nbytes = row_bytes * rows;

    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 32;
        wtensor *p = realloc(w->tensors, cap * sizeof *p);
        if (!p) return TQ_ERR_NOMEM;
        w->tensors = p;
        w->cap_tensors = cap;
    }
    t.name = malloc(strlen(name) + 1);
    if (!t.name) return TQ_ERR_NOMEM;
    strcpy(t.name, name);
    if (produce) {
        t.produce = produce;
        t.produce_user = produce_user;
    } else if (borrow) {
        t.data = data;
    } else {
        t.owned = malloc((size_t)t.nbytes);
        if (!t.owned) {
            free(t.name);
            return TQ_ERR_NOMEM;
        }
        memcpy(t.owned, data, (size_t)t.nbytes);
        t.data = t.owned;
    }
    w->tensors[w->n_tensors++] = t;
    return TQ_OK;
}

tq_status tq_gguf_writer_add_tensor(tq_gguf_writer *w, const char *name, tq_type type,
                                    int n_dims, const int64_t *ne, const void *data, int borrow) {
    return add_tensor(w, name, type, n_dims, ne, data, borrow, NULL, NULL);
}

tq_status tq_gguf_writer_add_tensor_stream(tq_gguf_writer *w, const char *name, tq_type type,
                                           int n_dims, const int64_t *ne,
                                           tq_gguf_tensor_producer produce, void *user) {
    if (!produce) return TQ_ERR_INVALID;
    return add_tensor(w, name, type, n_dims, ne, NULL, 1, produce, user);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */

static uint64_t pad_to(uint64_t x, uint64_t a) { return (a - x % a) % a; }

/* Header, KVs and tensor infos. general.alignment always states the writer's
 * alignment: a copied key is overwritten with it, and a non-default one is
 * appended when missing. */
static void encode_front(const tq_gguf_writer *w, buf *b) {
    const wkv *akv = NULL;
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, ALIGNMENT_KEY) == 0) akv = &w->kvs[i];
    int append_alignment = !akv && w->alignment != GGUF_DEFAULT_ALIGNMENT;

    put(b, "GGUF", 4);
    put_u32(b, GGUF_VERSION);
    put_u64(b, (uint64_t)w->n_tensors);
    put_u64(b, (uint64_t)w->n_kv + (append_alignment ? 1 : 0));
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        put_str(b, kv->key, strlen(kv->key));
        if (kv == akv) {
            put_u32(b, TQ_VAL_U32);
            put_u32(b, w->alignment);
        } else {
            put_u32(b, (uint32_t)kv->type);
            put(b, kv->bytes, kv->n);
        }
    }
    if (append_alignment) {
        put_str(b, ALIGNMENT_KEY, strlen(ALIGNMENT_KEY));
        put_u32(b, TQ_VAL_U32);
        put_u32(b, w->alignment);
    }

    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        put_str(b, t->name, strlen(t->name));
        put_u32(b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(b, (uint64_t)t->ne[d]);
        put_u32(b, (uint32_t)t->type);
        put_u64(b, offset);
        offset += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    static const uint8_t zeros[256];
    uint64_t pad = pad_to(b->n, w->alignment);
    while (pad > 0) {
        size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        put(b, zeros, n);
        pad -= n;
    }
}

static int write_all(int fd, const void *p, uint64_t n) {
    const uint8_t *s = p;
    while (n > 0) {
        size_t chunk = n > (UINT64_C(1) << 30) ? (size_t)1 << 30 : (size_t)n;
        ssize_t k = write(fd, s, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        s += k;
        n -= (uint64_t)k;
    }
    return 1;
}

static int write_zeros(int fd, uint64_t n) {
    static const uint8_t zeros[4096];
    while (n > 0) {
        uint64_t k = n < sizeof zeros ? n : sizeof zeros;
        if (!write_all(fd, zeros, k)) return 0;
        n -= k;
    }
    return 1;
}

/* Creates "<path>.tmp-XXXXXX" exclusively. Not mkstemp: its 0600 mode would
 * be carried over by the rename, while open() applies the umask like any
 * other new file. */
static int open_temp(const char *path, char *tmp, size_t cap) {
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static unsigned long counter;
    uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        x ^= ++counter * UINT64_C(0x9e3779b97f4a7c15);
        uint64_t r = x;
        char suffix[7];
        for (int i = 0; i < 6; i++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            suffix[i] = chars[r % (sizeof chars - 1)];
        }
        suffix[6] = 0;
        if ((size_t)snprintf(tmp, cap, "%s.tmp-%s", path, suffix) >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

tq_status tq_gguf_writer_write(tq_gguf_writer *w, const char *path, tq_error *err) {
    if (!w || !path) return tq_error_set(err, TQ_ERR_INVALID, "gguf writer: no writer or path");
    buf front = {0};
    encode_front(w, &front);
    if (front.failed) {
        free(front.p);
        return tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory encoding the header", path);
    }

    size_t cap = strlen(path) + 16;
    char *tmp = malloc(cap);
    if (!tmp) {
        free(front.p);
        return tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = open_temp(path, tmp, cap);
    if (fd < 0) {
        tq_status st = tq_error_set(err, TQ_ERR_IO, "%s: cannot create a temporary file: %s",
                                    path, strerror(errno));
        free(front.p);
        free(tmp);
        return st;
    }

    /* Streamed tensors are produced one at a time into one reused buffer,
     * so a model larger than memory can be written. */
    void *stream_buf = NULL;
    uint64_t stream_cap = 0;
    tq_error perr = {0};
    int produce_failed = 0;
    int ok = write_all(fd, front.p, front.n);
    for (size_t i = 0; ok && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        const void *data = t->data;
        if (t->produce) {
            if (t->nbytes > stream_cap) {
                free(stream_buf);
                stream_buf = malloc((size_t)t->nbytes);
                stream_cap = stream_buf ? t->nbytes : 0;
                if (!stream_buf) {
                    tq_error_set(&perr, TQ_ERR_NOMEM, "%s: out of memory for tensor %s", path,
                                 t->name);
                    produce_failed = 1;
                    ok = 0;
                    break;
                }
            }
            if (t->produce(t->produce_user, stream_buf, t->nbytes, &perr) != TQ_OK) {
                produce_failed = 1;
                ok = 0;
                break;
            }
            data = stream_buf;
        }
        ok = write_all(fd, data, t->nbytes) &&
             write_zeros(fd, pad_to(t->nbytes, w->alignment));
    }
    free(stream_buf);
    /* fsync before rename: otherwise a crash can leave the new name
     * pointing at an empty file. */
    if (ok) ok = fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    free(front.p);
    if (!ok) {
        unlink(tmp);
        free(tmp);
        if (produce_failed) {
            if (err) *err = perr;
            return perr.code != TQ_OK ? perr.code : TQ_ERR_INVALID;
        }
        return tq_error_set(err, TQ_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    free(tmp);
    return TQ_OK;
}
