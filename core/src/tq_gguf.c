/* tq_gguf.c — GGUF v2/v3 reader.
 *
 * The file is mapped read-only and parsed once, front to back, by a bounded
 * cursor: every read first checks that the bytes are there, and every count
 * taken from the file is checked against the bytes left before anything is
 * allocated for it, so a hostile or truncated file costs at most memory
 * proportional to its own size and yields one error message. After
 * tq_gguf_open succeeds every accessor is a plain memory read.
 *
 * Rules beyond the GGUF spec follow ggml's reader (the one llama.cpp uses),
 * so a file this reader accepts is one llama.cpp accepts too — except that
 * tensor data need not be packed in info order here (ggml demands it; we
 * only need every tensor inside the file and aligned).
 * Layout: ../shared/specs/gguf-llama-phi3.md §1. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, madvise */
#include "tq_gguf.h"

#include "tq_error.h"
#include "tq_types.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME: names must be shorter */

/* Smallest possible encodings, used to reject absurd counts up front: a KV
 * is a key (u64 length + at least one byte), a u32 type and at least one
 * byte of value; a tensor info is a name length, n_dims, type and offset. */
#define MIN_KV_BYTES (8 + 1 + 4 + 1)
#define MIN_TENSOR_INFO_BYTES (8 + 4 + 4 + 8)

/* ------------------------------------------------------------------------ */
/* Name index: open addressing over keys that the reader owns.               */

typedef struct name_slot {
    const char *key; /* NULL = empty */
    int64_t idx;
} name_slot;

typedef struct name_index {
    name_slot *slots;
    uint64_t mask;
} name_index;

static uint64_t hash_str(const char *s) {
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * UINT64_C(0x100000001b3);
    return h;
}

/* Room for n keys at a load factor of at most 1/2. */
static int index_init(name_index *ix, int64_t n) {
    uint64_t cap = 8;
    while (cap < (uint64_t)n * 2) cap *= 2;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    return ix->slots != NULL;
}

/* Inserts key -> idx; returns the index already holding `key`, or -1. */
static int64_t index_insert(name_index *ix, const char *key, int64_t idx) {
    uint64_t i = hash_str(key) & ix->mask;
    for (; ix->slots[i].key; i = (i + 1) & ix->mask)
        if (strcmp(ix->slots[i].key, key) == 0) return ix->slots[i].idx;
    ix->slots[i].key = key;
    ix->slots[i].idx = idx;
    return -1;
}

static int64_t index_find(const name_index *ix, const char *key) {
    if (!ix->slots || !key) return -1;
    uint64_t i = hash_str(key) & ix->mask;
    for (; ix->slots[i].key; i = (i + 1) & ix->mask)
        if (strcmp(ix->slots[i].key, key) == 0) return ix->slots[i].idx;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* The reader object                                                        */

typedef struct gguf_kv {
    char *key;             /* NUL-terminated copy */
    tq_value value;        /* borrows the mapping */
    char *str;             /* string values: NUL-terminated copy */
    uint64_t *str_offsets; /* string arrays: file offset of each element's length field */
} gguf_kv;

typedef struct gguf_tensor {
    tq_tensor t;
    char *name;      /* what t.name points to */
    uint64_t offset; /* relative to the data section */
    uint64_t nbytes;
} gguf_tensor;

struct tq_gguf {
    tq_model_source source; /* first, so the callbacks can cast back to tq_gguf */
    char *path;
    const uint8_t *map;
    uint64_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;

    gguf_kv *kvs;
    int64_t n_kv;
    gguf_tensor *tensors;
    int64_t n_tensors;
    name_index kv_index, tensor_index;

    /* KV indices of the string arrays, in file order (hence ascending
     * element offsets), so array_str can find the offset table of a
     * tq_value copy by binary search on its elems pointer. */
    int64_t *str_arrays;
    int64_t n_str_arrays;

    /* After tq_gguf_copy_weights: the tensors' data, in anonymous memory
     * (weights_map, weights_size bytes mapped; data at weights). */
    void *weights_map;
    size_t weights_size;
    uint8_t *weights;
};

/* ------------------------------------------------------------------------ */
/* Bounded little-endian cursor                                             */

typedef struct cursor {
    const uint8_t *p;
    uint64_t size, pos;
    const char *path;
    tq_error *err;
    char where[112]; /* "header", "KV 3 ('general.name')", "tensor info 12" */
} cursor;

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static uint64_t remaining(const cursor *c) { return c->size - c->pos; }

static tq_status truncated(cursor *c) {
    return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: truncated in %s (file is %llu bytes)", c->path,
                        c->where, (unsigned long long)c->size);
}

static tq_status need(cursor *c, uint64_t n) { return n <= remaining(c) ? TQ_OK : truncated(c); }

static tq_status rd_u32(cursor *c, uint32_t *out) {
    if (need(c, 4)) return TQ_ERR_FORMAT;
    *out = le32(c->p + c->pos);
    c->pos += 4;
    return TQ_OK;
}

static tq_status rd_u64(cursor *c, uint64_t *out) {
    if (need(c, 8)) return TQ_ERR_FORMAT;
    *out = le64(c->p + c->pos);
    c->pos += 8;
    return TQ_OK;
}

/* A GGUF string: u64 length, then the bytes. *s points into the mapping. */
static tq_status rd_str(cursor *c, const char **s, uint64_t *len) {
    if (rd_u64(c, len)) return TQ_ERR_FORMAT;
    if (*len > remaining(c))
        return tq_error_set(c->err, TQ_ERR_FORMAT,
                            "%s: %s: string length %llu runs past the end of the file "
                            "(file is %llu bytes)",
                            c->path, c->where, (unsigned long long)*len,
                            (unsigned long long)c->size);
    *s = (const char *)c->p + c->pos;
    c->pos += *len;
    return TQ_OK;
}

/* Keys and tensor names are copied as C strings, so they may not contain NUL. */
static char *copy_name(const char *s, uint64_t len) {
    char *r = malloc(len + 1);
    if (!r) return NULL;
    memcpy(r, s, len);
    r[len] = 0;
    return r;
}

/* A key or name made printable for an error message (cut at 48 bytes). */
static void printable(char *dst, size_t cap, const char *s, uint64_t len) {
    size_t n = 0;
    for (uint64_t i = 0; i < len && n + 4 < cap; i++) {
        if (i == 48) {
            memcpy(dst + n, "...", 3);
            n += 3;
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        dst[n++] = ch >= 0x20 && ch != 0x7f ? (char)ch : '?';
    }
    dst[n] = 0;
}

static size_t value_type_size(uint32_t t) {
    switch (t) {
    case TQ_VAL_U8: case TQ_VAL_I8: case TQ_VAL_BOOL: return 1;
    case TQ_VAL_U16: case TQ_VAL_I16: return 2;
    case TQ_VAL_U32: case TQ_VAL_I32: case TQ_VAL_F32: return 4;
    case TQ_VAL_U64: case TQ_VAL_I64: case TQ_VAL_F64: return 8;
    default: return 0; /* string, array, invalid */
    }
}

const char *tq_gguf_value_type_name(tq_value_type t) {
    static const char *const names[] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* Reads one scalar of type t (not string/array) into v->num. */
static tq_status rd_scalar(cursor *c, uint32_t t, tq_value *v) {
    size_t n = value_type_size(t);
    if (need(c, n)) return TQ_ERR_FORMAT;
    const uint8_t *p = c->p + c->pos;
    c->pos += n;
    switch (t) {
    case TQ_VAL_U8: v->num.u = p[0]; break;
    case TQ_VAL_I8: v->num.i = (int8_t)p[0]; break;
    case TQ_VAL_U16: v->num.u = (uint16_t)(p[0] | p[1] << 8); break;
    case TQ_VAL_I16: v->num.i = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
    case TQ_VAL_U32: v->num.u = le32(p); break;
    case TQ_VAL_I32: v->num.i = (int32_t)le32(p); break;
    case TQ_VAL_U64: v->num.u = le64(p); break;
    case TQ_VAL_I64: v->num.i = (int64_t)le64(p); break;
    case TQ_VAL_F32: {
        uint32_t b = le32(p);
        float f;
        memcpy(&f, &b, 4);
        v->num.f = f;
        break;
    }
    case TQ_VAL_F64: {
        uint64_t b = le64(p);
        memcpy(&v->num.f, &b, 8);
        break;
    }
    case TQ_VAL_BOOL:
        if (p[0] > 1)
            return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: %s: invalid bool value %u", c->path,
                                c->where, p[0]);
        v->num.u = p[0];
        break;
    default: break;
    }
    return TQ_OK;
}

/* Reads an array value (after its type id) into kv. */
static tq_status rd_array(cursor *c, gguf_kv *kv) {
    tq_value *v = &kv->value;
    uint32_t et;
    uint64_t count;
    if (rd_u32(c, &et)) return TQ_ERR_FORMAT;
    if (et == TQ_VAL_ARRAY)
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: %s: arrays of arrays are not supported",
                            c->path, c->where);
    if (et > TQ_VAL_F64)
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: %s: invalid array element type %u",
                            c->path, c->where, et);
    if (rd_u64(c, &count)) return TQ_ERR_FORMAT;
    v->elem_type = (tq_value_type)et;
    v->count = count;
    v->elems = c->p + c->pos;

    if (et == TQ_VAL_STRING) {
        if (count > remaining(c) / 8)
            return tq_error_set(c->err, TQ_ERR_FORMAT,
                                "%s: %s: %llu strings cannot fit in the %llu bytes left of the "
                                "file",
                                c->path, c->where, (unsigned long long)count,
                                (unsigned long long)remaining(c));
        if (count > 0) {
            kv->str_offsets = malloc(count * sizeof *kv->str_offsets);
            if (!kv->str_offsets)
                return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: %s: out of memory", c->path,
                                    c->where);
        }
        for (uint64_t i = 0; i < count; i++) {
            const char *s;
            uint64_t len;
            kv->str_offsets[i] = c->pos;
            if (rd_str(c, &s, &len)) return TQ_ERR_FORMAT;
        }
        return TQ_OK;
    }

    size_t es = value_type_size(et);
    if (count > remaining(c) / es) return truncated(c);
    if (et == TQ_VAL_BOOL) {
        for (uint64_t i = 0; i < count; i++)
            if (c->p[c->pos + i] > 1)
                return tq_error_set(c->err, TQ_ERR_FORMAT,
                                    "%s: %s: invalid bool value %u at array index %llu", c->path,
                                    c->where, c->p[c->pos + i], (unsigned long long)i);
    }
    c->pos += count * es;
    return TQ_OK;
}

static tq_status rd_kv(cursor *c, int64_t i, gguf_kv *kv) {
    const char *key;
    uint64_t klen;
    uint32_t t;
    snprintf(c->where, sizeof c->where, "KV %lld", (long long)i);
    if (rd_str(c, &key, &klen)) return TQ_ERR_FORMAT;
    if (klen == 0)
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: %s: empty key", c->path, c->where);
    if (memchr(key, 0, klen))
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: %s: key contains a NUL byte", c->path,
                            c->where);
    char shown[64];
    printable(shown, sizeof shown, key, klen);
    snprintf(c->where, sizeof c->where, "KV %lld ('%s')", (long long)i, shown);
    if (!(kv->key = copy_name(key, klen)))
        return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);

    if (rd_u32(c, &t)) return TQ_ERR_FORMAT;
    if (t > TQ_VAL_F64)
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: %s: invalid value type %u", c->path,
                            c->where, t);
    kv->value.size = sizeof kv->value;
    kv->value.type = (tq_value_type)t;
    if (t == TQ_VAL_STRING) {
        if (rd_str(c, &kv->value.str, &kv->value.len)) return TQ_ERR_FORMAT;
        if (!(kv->str = copy_name(kv->value.str, kv->value.len)))
            return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);
        return TQ_OK;
    }
    if (t == TQ_VAL_ARRAY) return rd_array(c, kv);
    return rd_scalar(c, t, &kv->value);
}

/* Names of ggml types that exist but that tqrun has no codec for, so a
 * model using them is reported as unsupported rather than corrupt. */
static const char *ggml_only_type_name(uint32_t type) {
    switch (type) {
    case 16: return "iq2_xxs";
    case 17: return "iq2_xs";
    case 18: return "iq3_xxs";
    case 19: return "iq1_s";
    case 20: return "iq4_nl";
    case 21: return "iq3_s";
    case 22: return "iq2_s";
    case 23: return "iq4_xs";
    case 27: return "i64";
    case 28: return "f64";
    case 29: return "iq1_m";
    case 34: return "tq1_0";
    case 35: return "tq2_0";
    case 39: return "mxfp4";
    case 40: return "nvfp4";
    case 41: return "q1_0";
    case 42: return "q2_0";
    default: return NULL;
    }
}

/* Reads one tensor info; the checks that need the data offset come later. */
static tq_status rd_tensor_info(cursor *c, int64_t i, gguf_tensor *e) {
    const char *name;
    uint64_t nlen;
    uint32_t n_dims, type;
    snprintf(c->where, sizeof c->where, "tensor info %lld", (long long)i);
    if (rd_str(c, &name, &nlen)) return TQ_ERR_FORMAT;
    char shown[64];
    printable(shown, sizeof shown, name, nlen);
    if (nlen >= GGUF_MAX_NAME)
        return tq_error_set(c->err, TQ_ERR_FORMAT,
                            "%s: %s: name '%s' is %llu bytes long (at most %d allowed)", c->path,
                            c->where, shown, (unsigned long long)nlen, GGUF_MAX_NAME - 1);
    if (memchr(name, 0, nlen))
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: %s: name contains a NUL byte", c->path,
                            c->where);
    snprintf(c->where, sizeof c->where, "tensor info %lld ('%s')", (long long)i, shown);
    if (!(e->name = copy_name(name, nlen)))
        return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);

    if (rd_u32(c, &n_dims)) return TQ_ERR_FORMAT;
    if (n_dims > TQ_MAX_DIMS)
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: %s: %u dimensions (at most %d allowed)",
                            c->path, c->where, n_dims, TQ_MAX_DIMS);
    int64_t ne[TQ_MAX_DIMS] = {1, 1, 1, 1};
    int64_t n_elems = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t u;
        if (rd_u64(c, &u)) return TQ_ERR_FORMAT;
        ne[d] = (int64_t)u;
        if (ne[d] < 1)
            return tq_error_set(c->err, TQ_ERR_FORMAT,
                                "%s: %s: dimension %u is %lld (must be >= 1)", c->path, c->where,
                                d, (long long)ne[d]);
        if (ne[d] > INT64_MAX / n_elems)
            return tq_error_set(c->err, TQ_ERR_FORMAT,
                                "%s: %s: element count overflows (dimension %u is %lld)", c->path,
                                c->where, d, (long long)ne[d]);
        n_elems *= ne[d];
    }
    if (rd_u32(c, &type)) return TQ_ERR_FORMAT;
    const tq_type_info *ti = type <= INT32_MAX ? tq_type_get((tq_type)type) : NULL;
    if (!ti || !tq_type_is_gguf_weight((tq_type)type)) {
        const char *ggml_name = ggml_only_type_name(type);
        if (ggml_name)
            return tq_error_set(c->err, TQ_ERR_UNSUPPORTED,
                                "%s: tensor '%s' has type %u (%s), which tqrun does not support",
                                c->path, shown, type, ggml_name);
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: tensor '%s' has unknown type %u", c->path,
                            shown, type);
    }
    if (ne[0] % ti->block_elems != 0)
        return tq_error_set(c->err, TQ_ERR_FORMAT,
                            "%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block "
                            "size %d",
                            c->path, shown, (long long)ne[0], ti->name, ti->block_elems);
    if (rd_u64(c, &e->offset)) return TQ_ERR_FORMAT;

    /* Byte size, refusing anything that overflows or could not fit in the
     * file (the exact placement is checked once the data offset is known).
     * ne[0] >= 1 and is a multiple of the block size, so row_bytes > 0. */
    uint64_t blocks = (uint64_t)(ne[0] / ti->block_elems);
    uint64_t rows = (uint64_t)(ne[1] * ne[2] * ne[3]);
    uint64_t row_bytes = blocks * (uint64_t)ti->block_bytes;
    if (blocks > c->size / (uint64_t)ti->block_bytes || rows > c->size / row_bytes)
        return tq_error_set(c->err, TQ_ERR_FORMAT,
                            "%s: tensor '%s' (%lld x %lld x %lld x %lld %s) is larger than the "
                            "file (%llu bytes)",
                            c->path, shown, (long long)ne[0], (long long)ne[1], (long long)ne[2],
                            (long long)ne[3], ti->name, (unsigned long long)c->size);
    e->nbytes = row_bytes * rows;

    tq_tensor *t = &e->t;
    t->size = sizeof *t;
    t->type = (tq_type)type;
    memcpy(t->ne, ne, sizeof ne);
    t->nb[0] = (size_t)ti->block_bytes;
    t->nb[1] = (size_t)row_bytes;
    t->nb[2] = t->nb[1] * (size_t)ne[1];
    t->nb[3] = t->nb[2] * (size_t)ne[2];
    t->op = TQ_OP_NONE;
    t->name = e->name;
    return TQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Open / close                                                             */

static void gguf_free(tq_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].str);
        free(g->kvs[i].str_offsets);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    free(g->str_arrays);
    if (g->map) munmap((void *)g->map, (size_t)g->size);
    if (g->weights_map) munmap(g->weights_map, g->weights_size);
    free(g->path);
    free(g);
}

void tq_gguf_close(tq_gguf *g) { gguf_free(g); }

static tq_status map_file(tq_gguf *g, tq_error *err) {
    int fd = open(g->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tq_error_set(err, TQ_ERR_IO, "%s: cannot open: %s", g->path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tq_error_set(err, TQ_ERR_IO, "%s: cannot stat: %s", g->path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tq_error_set(err, TQ_ERR_IO, "%s: not a regular file", g->path);
    }
    if (st.st_size < 4) {
        close(fd);
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: not a GGUF file (file is %lld bytes)",
                            g->path, (long long)st.st_size);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return tq_error_set(err, TQ_ERR_UNSUPPORTED, "%s: file too large to map", g->path);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (m == MAP_FAILED)
        return tq_error_set(err, TQ_ERR_IO, "%s: cannot map: %s", g->path, strerror(e));
    g->map = m;
    g->size = (uint64_t)st.st_size;
    return TQ_OK;
}

static tq_status read_header(cursor *c, tq_gguf *g, int64_t *n_tensors, int64_t *n_kv) {
    if (memcmp(c->p, GGUF_MAGIC, 4) != 0) {
        char m[20];
        size_t n = 0;
        for (int i = 0; i < 4; i++) {
            unsigned char ch = c->p[i];
            if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\') m[n++] = (char)ch;
            else n += (size_t)snprintf(m + n, sizeof m - n, "\\x%02x", ch);
        }
        m[n] = 0;
        return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: not a GGUF file (bad magic '%s')",
                            c->path, m);
    }
    c->pos = 4;
    snprintf(c->where, sizeof c->where, "header");
    if (rd_u32(c, &g->version)) return TQ_ERR_FORMAT;
    if (g->version == 1)
        return tq_error_set(c->err, TQ_ERR_UNSUPPORTED,
                            "%s: GGUF v1 is no longer supported (convert it to v3)", c->path);
    if (g->version != 0 && (g->version & 0xFFFF) == 0)
        return tq_error_set(c->err, TQ_ERR_UNSUPPORTED,
                            "%s: big-endian GGUF files are not supported (version field 0x%08x)",
                            c->path, g->version);
    if (g->version < 2 || g->version > 3)
        return tq_error_set(c->err, TQ_ERR_UNSUPPORTED,
                            "%s: unsupported GGUF version %u (versions 2 and 3 are)", c->path,
                            g->version);
    uint64_t nt, nk;
    if (rd_u64(c, &nt) || rd_u64(c, &nk)) return TQ_ERR_FORMAT;
    /* Both are signed in ggml; either way, each entry takes bytes we must have. */
    if (nt > (uint64_t)INT64_MAX || nt > remaining(c) / MIN_TENSOR_INFO_BYTES)
        return tq_error_set(c->err, TQ_ERR_FORMAT,
                            "%s: tensor count %llu is impossible in a %llu-byte file", c->path,
                            (unsigned long long)nt, (unsigned long long)c->size);
    if (nk > (uint64_t)INT64_MAX || nk > remaining(c) / MIN_KV_BYTES)
        return tq_error_set(c->err, TQ_ERR_FORMAT,
                            "%s: KV count %llu is impossible in a %llu-byte file", c->path,
                            (unsigned long long)nk, (unsigned long long)c->size);
    *n_tensors = (int64_t)nt;
    *n_kv = (int64_t)nk;
    return TQ_OK;
}

/* Makes room for entry i of a growing array (capacity doubles, new entries
 * zeroed). Growing instead of allocating the count read from the file keeps
 * memory proportional to what was actually parsed. */
static int grow(void **arr, int64_t *cap, int64_t i, size_t elem) {
    if (i < *cap) return 1;
    int64_t n = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, (size_t)n * elem);
    if (!p) return 0;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
    *arr = p;
    *cap = n;
    return 1;
}

static tq_status read_kvs(cursor *c, tq_gguf *g, int64_t n_kv) {
    int64_t cap = 0;
    for (int64_t i = 0; i < n_kv; i++) {
        if (!grow((void **)&g->kvs, &cap, i, sizeof *g->kvs))
            return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);
        g->n_kv = i + 1; /* so gguf_free releases a half-read entry */
        tq_status st = rd_kv(c, i, &g->kvs[i]);
        if (st != TQ_OK) return st;
        if (g->kvs[i].value.type == TQ_VAL_ARRAY && g->kvs[i].value.elem_type == TQ_VAL_STRING)
            g->n_str_arrays++;
    }
    if (!index_init(&g->kv_index, n_kv))
        return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);
    for (int64_t i = 0; i < n_kv; i++) {
        int64_t prev = index_insert(&g->kv_index, g->kvs[i].key, i);
        if (prev >= 0) {
            char shown[64];
            printable(shown, sizeof shown, g->kvs[i].key, strlen(g->kvs[i].key));
            return tq_error_set(c->err, TQ_ERR_FORMAT, "%s: duplicate key '%s' (KV %lld and %lld)",
                                c->path, shown, (long long)prev, (long long)i);
        }
    }
    if (g->n_str_arrays > 0) {
        g->str_arrays = malloc((size_t)g->n_str_arrays * sizeof *g->str_arrays);
        if (!g->str_arrays) return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);
        int64_t n = 0;
        for (int64_t i = 0; i < n_kv; i++)
            if (g->kvs[i].value.type == TQ_VAL_ARRAY && g->kvs[i].value.elem_type == TQ_VAL_STRING)
                g->str_arrays[n++] = i;
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const tq_value *a = tq_gguf_find(g, "general.alignment");
    if (a) {
        if (a->type != TQ_VAL_U32)
            return tq_error_set(c->err, TQ_ERR_FORMAT,
                                "%s: general.alignment has type %s, expected u32", c->path,
                                tq_gguf_value_type_name(a->type));
        if (a->num.u == 0 || (a->num.u & (a->num.u - 1)) != 0)
            return tq_error_set(c->err, TQ_ERR_FORMAT,
                                "%s: general.alignment = %llu is not a power of two", c->path,
                                (unsigned long long)a->num.u);
        g->alignment = (uint32_t)a->num.u;
    }
    return TQ_OK;
}

static tq_status read_tensors(cursor *c, tq_gguf *g, int64_t n_tensors) {
    if ((uint64_t)n_tensors > remaining(c) / MIN_TENSOR_INFO_BYTES) {
        snprintf(c->where, sizeof c->where, "tensor infos");
        return tq_error_set(c->err, TQ_ERR_FORMAT,
                            "%s: tensor count %lld cannot fit in the %llu bytes left after the "
                            "KVs",
                            c->path, (long long)n_tensors, (unsigned long long)remaining(c));
    }
    int64_t cap = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        if (!grow((void **)&g->tensors, &cap, i, sizeof *g->tensors))
            return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);
        g->n_tensors = i + 1;
        tq_status st = rd_tensor_info(c, i, &g->tensors[i]);
        if (st != TQ_OK) return st;
    }
    if (!index_init(&g->tensor_index, n_tensors))
        return tq_error_set(c->err, TQ_ERR_NOMEM, "%s: out of memory", c->path);
    for (int64_t i = 0; i < n_tensors; i++) {
        int64_t prev = index_insert(&g->tensor_index, g->tensors[i].name, i);
        if (prev >= 0) {
            char shown[64];
            printable(shown, sizeof shown, g->tensors[i].name, strlen(g->tensors[i].name));
            return tq_error_set(c->err, TQ_ERR_FORMAT,
                                "%s: duplicate tensor name '%s' (tensor infos %lld and %lld)",
                                c->path, shown, (long long)prev, (long long)i);
        }
    }

    uint64_t a = g->alignment;
    g->data_offset = c->pos + (a - c->pos % a) % a;
    for (int64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *e = &g->tensors[i];
        if (e->offset % a != 0)
            return tq_error_set(c->err, TQ_ERR_FORMAT,
                                "%s: tensor '%s' has offset %llu, not a multiple of the "
                                "alignment %llu",
                                c->path, e->name, (unsigned long long)e->offset,
                                (unsigned long long)a);
        if (g->data_offset > g->size || e->offset > g->size - g->data_offset ||
            e->nbytes > g->size - g->data_offset - e->offset)
            return tq_error_set(c->err, TQ_ERR_FORMAT,
                                "%s: data of tensor '%s' (%llu bytes at offset %llu of the data "
                                "section, which starts at %llu) runs past the end of the file "
                                "(%llu bytes)",
                                c->path, e->name, (unsigned long long)e->nbytes,
                                (unsigned long long)e->offset,
                                (unsigned long long)g->data_offset, (unsigned long long)g->size);
        e->t.data = (void *)(g->map + g->data_offset + e->offset);
    }
    return TQ_OK;
}

static tq_status source_meta(const tq_model_source *src, const char *key, tq_value *out);
static const char *source_array_str(const tq_model_source *src, const tq_value *arr, uint64_t i,
                                    uint64_t *len);
static const tq_tensor *source_tensor(const tq_model_source *src, const char *name);

tq_status tq_gguf_open(const char *path, tq_gguf **out, tq_error *err) {
    *out = NULL;
    if (!path) return tq_error_set(err, TQ_ERR_INVALID, "tq_gguf_open: no path given");
    tq_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = copy_name(path, strlen(path)))) {
        free(g);
        return tq_error_set(err, TQ_ERR_NOMEM, "%s: out of memory", path);
    }
    /* The cursor reports through a local error so that err may be NULL. */
    tq_error local;
    cursor c = {.path = g->path, .err = err ? err : &local};
    tq_status st = map_file(g, c.err);
    if (st == TQ_OK) {
        c.p = g->map;
        c.size = g->size;
        int64_t n_tensors = 0, n_kv = 0;
        st = read_header(&c, g, &n_tensors, &n_kv);
        if (st == TQ_OK) st = read_kvs(&c, g, n_kv);
        if (st == TQ_OK) st = read_tensors(&c, g, n_tensors);
    }
    if (st != TQ_OK) {
        gguf_free(g);
        return st;
    }
    g->source.size = sizeof g->source;
    g->source.path = g->path;
    g->source.meta = source_meta;
    g->source.array_str = source_array_str;
    g->source.tensor = source_tensor;
    *out = g;
    return TQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Weights in 2 MB pages                                                    */

#define HUGE_PAGE ((size_t)2 << 20)
#define COPY_THREADS 4
#define COPY_CHUNK ((size_t)8 << 20)

typedef struct copy_job {
    int fd;
    uint8_t *dst;
    uint64_t off, n; /* file offset and bytes of this thread's share */
    int err;         /* errno of a failed read, or -1 for an early end */
} copy_job;

static void *copy_part(void *arg) {
    copy_job *j = arg;
    uint64_t done = 0;
    while (done < j->n) {
        const size_t want = j->n - done < COPY_CHUNK ? (size_t)(j->n - done) : COPY_CHUNK;
        const ssize_t r = pread(j->fd, j->dst + done, want, (off_t)(j->off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            j->err = r < 0 ? errno : -1;
            return NULL;
        }
        done += (uint64_t)r;
    }
    return NULL;
}

tq_status tq_gguf_copy_weights(tq_gguf *g, int *copied, tq_error *err) {
    *copied = 0;
    if (g->weights || g->n_tensors == 0) return TQ_OK;
    const uint64_t n = g->size - g->data_offset;
    const long page = sysconf(_SC_PAGESIZE), pages = sysconf(_SC_PHYS_PAGES);
    /* Past half the RAM a private copy could push the machine into swap or
     * the OOM killer, where the shared page cache would just be evicted. */
    if (n == 0 || (page > 0 && pages > 0 && n > (uint64_t)page * (uint64_t)pages / 2)) return TQ_OK;
    const size_t size = (size_t)((n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE) + HUGE_PAGE;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return TQ_OK; /* no room: the file mapping serves */
    uint8_t *base = (uint8_t *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
#ifdef MADV_HUGEPAGE
    (void)madvise(base, size - (size_t)(base - (uint8_t *)m), MADV_HUGEPAGE); /* advice: may be refused */
#endif
    int fd = open(g->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        munmap(m, size);
        return tq_error_set(err, TQ_ERR_IO, "%s: cannot open to read the weights: %s", g->path, strerror(errno));
    }
    /* Page cache to the copy in COPY_THREADS parts at once: one thread
     * copies about 5 GB/s here, below what the memory takes. */
    copy_job jobs[COPY_THREADS];
    pthread_t th[COPY_THREADS];
    int started[COPY_THREADS] = {0};
    const uint64_t part = (n / COPY_THREADS + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    for (int i = 0; i < COPY_THREADS; i++) {
        const uint64_t lo = part * (uint64_t)i < n ? part * (uint64_t)i : n;
        const uint64_t hi = lo + part < n ? lo + part : n;
        jobs[i] = (copy_job){fd, base + lo, g->data_offset + lo, hi - lo, 0};
        started[i] = hi > lo && i > 0 && pthread_create(&th[i], NULL, copy_part, &jobs[i]) == 0;
    }
    for (int i = 0; i < COPY_THREADS; i++)
        if (!started[i]) copy_part(&jobs[i]); /* the first part, and any thread that did not start */
    for (int i = 0; i < COPY_THREADS; i++)
        if (started[i]) pthread_join(th[i], NULL);
    close(fd);
    for (int i = 0; i < COPY_THREADS; i++)
        if (jobs[i].err) {
            munmap(m, size);
            if (jobs[i].err < 0)
                return tq_error_set(err, TQ_ERR_IO, "%s: the file ended while reading the weights (was it truncated?)",
                                    g->path);
            return tq_error_set(err, TQ_ERR_IO, "%s: cannot read the weights: %s", g->path, strerror(jobs[i].err));
        }
    g->weights_map = m;
    g->weights_size = size;
    g->weights = base;
    for (int64_t i = 0; i < g->n_tensors; i++) g->tensors[i].t.data = base + g->tensors[i].offset;
    /* The data section of the file mapping is never touched again. */
    *copied = 1;
    return TQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                */

const char *tq_gguf_path(const tq_gguf *g) { return g->path; }
uint32_t tq_gguf_version(const tq_gguf *g) { return g->version; }
uint32_t tq_gguf_alignment(const tq_gguf *g) { return g->alignment; }
uint64_t tq_gguf_data_offset(const tq_gguf *g) { return g->data_offset; }
uint64_t tq_gguf_file_size(const tq_gguf *g) { return g->size; }

int64_t tq_gguf_n_kv(const tq_gguf *g) { return g->n_kv; }

const char *tq_gguf_kv_key(const tq_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kvs[i].key : NULL;
}

const tq_value *tq_gguf_kv_value(const tq_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kvs[i].value : NULL;
}

const tq_value *tq_gguf_find(const tq_gguf *g, const char *key) {
    int64_t i = index_find(&g->kv_index, key);
    return i >= 0 ? &g->kvs[i].value : NULL;
}

/* The string array `arr` is one of g's, or a copy of one: find its offset
 * table by the address of its first element, which is unique per array. */
static const gguf_kv *find_str_array(const tq_gguf *g, const tq_value *arr) {
    if (!arr || arr->type != TQ_VAL_ARRAY || arr->elem_type != TQ_VAL_STRING) return NULL;
    uintptr_t e = (uintptr_t)arr->elems, base = (uintptr_t)g->map;
    if (e < base || e - base > g->size) return NULL;
    int64_t lo = 0, hi = g->n_str_arrays - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const gguf_kv *kv = &g->kvs[g->str_arrays[mid]];
        uintptr_t m = (uintptr_t)kv->value.elems;
        if (m == e) return kv;
        if (m < e) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *tq_gguf_array_str(const tq_gguf *g, const tq_value *arr, uint64_t i, uint64_t *len) {
    const gguf_kv *kv = find_str_array(g, arr);
    if (!kv || i >= kv->value.count) {
        if (len) *len = 0;
        return NULL;
    }
    uint64_t off = kv->str_offsets[i];
    if (len) *len = le64(g->map + off);
    return (const char *)g->map + off + 8;
}

/* ------------------------------------------------------------------------ */
/* Typed getters                                                            */

static const tq_value *lookup(const tq_gguf *g, const char *key, tq_error *err) {
    const tq_value *v = tq_gguf_find(g, key);
    if (!v) tq_error_set(err, TQ_ERR_NOT_FOUND, "%s: key '%s' not found", g->path, key);
    return v;
}

static tq_status wrong_type(const tq_gguf *g, const char *key, const tq_value *v,
                            const char *want, tq_error *err) {
    return tq_error_set(err, TQ_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", g->path, key,
                        tq_gguf_value_type_name(v->type), want);
}

static int is_signed_int(tq_value_type t) {
    return t == TQ_VAL_I8 || t == TQ_VAL_I16 || t == TQ_VAL_I32 || t == TQ_VAL_I64;
}

static int is_unsigned_int(tq_value_type t) {
    return t == TQ_VAL_U8 || t == TQ_VAL_U16 || t == TQ_VAL_U32 || t == TQ_VAL_U64;
}

tq_status tq_gguf_get_u32(const tq_gguf *g, const char *key, uint32_t *out, tq_error *err) {
    const tq_value *v = lookup(g, key, err);
    if (!v) return TQ_ERR_NOT_FOUND;
    if (is_unsigned_int(v->type) && v->num.u <= UINT32_MAX) {
        *out = (uint32_t)v->num.u;
        return TQ_OK;
    }
    if (is_signed_int(v->type) && v->num.i >= 0 && v->num.i <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)v->num.i;
        return TQ_OK;
    }
    if (is_unsigned_int(v->type))
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: key '%s' (%s) = %llu does not fit in u32",
                            g->path, key, tq_gguf_value_type_name(v->type),
                            (unsigned long long)v->num.u);
    if (is_signed_int(v->type))
        return tq_error_set(err, TQ_ERR_FORMAT, "%s: key '%s' (%s) = %lld does not fit in u32",
                            g->path, key, tq_gguf_value_type_name(v->type), (long long)v->num.i);
    return wrong_type(g, key, v, "an integer", err);
}

tq_status tq_gguf_get_i64(const tq_gguf *g, const char *key, int64_t *out, tq_error *err) {
    const tq_value *v = lookup(g, key, err);
    if (!v) return TQ_ERR_NOT_FOUND;
    if (is_signed_int(v->type)) {
        *out = v->num.i;
        return TQ_OK;
    }
    if (is_unsigned_int(v->type)) {
        if (v->num.u > (uint64_t)INT64_MAX)
            return tq_error_set(err, TQ_ERR_FORMAT, "%s: key '%s' (u64) = %llu does not fit in i64",
                                g->path, key, (unsigned long long)v->num.u);
        *out = (int64_t)v->num.u;
        return TQ_OK;
    }
    return wrong_type(g, key, v, "an integer", err);
}

tq_status tq_gguf_get_f32(const tq_gguf *g, const char *key, float *out, tq_error *err) {
    const tq_value *v = lookup(g, key, err);
    if (!v) return TQ_ERR_NOT_FOUND;
    if (v->type != TQ_VAL_F32 && v->type != TQ_VAL_F64) return wrong_type(g, key, v, "f32", err);
    *out = (float)v->num.f;
    return TQ_OK;
}

tq_status tq_gguf_get_bool(const tq_gguf *g, const char *key, int *out, tq_error *err) {
    const tq_value *v = lookup(g, key, err);
    if (!v) return TQ_ERR_NOT_FOUND;
    if (v->type != TQ_VAL_BOOL) return wrong_type(g, key, v, "bool", err);
    *out = v->num.u != 0;
    return TQ_OK;
}

tq_status tq_gguf_get_str(const tq_gguf *g, const char *key, const char **out, tq_error *err) {
    int64_t i = index_find(&g->kv_index, key);
    if (i < 0) return tq_error_set(err, TQ_ERR_NOT_FOUND, "%s: key '%s' not found", g->path, key);
    const gguf_kv *kv = &g->kvs[i];
    if (kv->value.type != TQ_VAL_STRING) return wrong_type(g, key, &kv->value, "string", err);
    *out = kv->str;
    return TQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */

int64_t tq_gguf_n_tensors(const tq_gguf *g) { return g->n_tensors; }

const tq_tensor *tq_gguf_tensor(const tq_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i].t : NULL;
}

const tq_tensor *tq_gguf_find_tensor(const tq_gguf *g, const char *name) {
    int64_t i = index_find(&g->tensor_index, name);
    return i >= 0 ? &g->tensors[i].t : NULL;
}

uint64_t tq_gguf_tensor_offset(const tq_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? g->tensors[i].offset : 0;
}

/* ------------------------------------------------------------------------ */
/* tq_model_source view                                                     */

static tq_status source_meta(const tq_model_source *src, const char *key, tq_value *out) {
    const tq_value *v = tq_gguf_find((const tq_gguf *)src, key);
    if (!v) return TQ_ERR_NOT_FOUND;
    *out = *v;
    return TQ_OK;
}

static const char *source_array_str(const tq_model_source *src, const tq_value *arr, uint64_t i,
                                    uint64_t *len) {
    return tq_gguf_array_str((const tq_gguf *)src, arr, i, len);
}

static const tq_tensor *source_tensor(const tq_model_source *src, const char *name) {
    return tq_gguf_find_tensor((const tq_gguf *)src, name);
}

const tq_model_source *tq_gguf_source(const tq_gguf *g) { return &g->source; }
