/* tq_gguf_writer.h — writes GGUF v3 files (used by `tqrun quantize` and by
 * tests that derive model files). Collect metadata and tensors, then write
 * once: header, KVs, tensor infos, padding, data in info order, each tensor
 * padded to the alignment — the layout ggml's reader requires. */
#ifndef TQ_GGUF_WRITER_H
#define TQ_GGUF_WRITER_H

#include <stdint.h>
#include <tqrun/tq_plugin.h>

typedef struct tq_gguf_writer tq_gguf_writer;

/* alignment: 0 for the default 32 (then no general.alignment key is needed). */
tq_gguf_writer *tq_gguf_writer_new(uint32_t alignment);
void tq_gguf_writer_free(tq_gguf_writer *w);

/* Setters copy key and value. Setting an existing key replaces its value in
 * place (order kept). */
tq_status tq_gguf_writer_set_u32(tq_gguf_writer *w, const char *key, uint32_t v);
tq_status tq_gguf_writer_set_i32(tq_gguf_writer *w, const char *key, int32_t v);
tq_status tq_gguf_writer_set_f32(tq_gguf_writer *w, const char *key, float v);
tq_status tq_gguf_writer_set_bool(tq_gguf_writer *w, const char *key, int v);
tq_status tq_gguf_writer_set_str(tq_gguf_writer *w, const char *key, const char *v);
/* Arrays: n scalars of elem_type (raw little-endian elements, copied), or
 * n NUL-terminated strings. */
tq_status tq_gguf_writer_set_array(tq_gguf_writer *w, const char *key, tq_value_type elem_type,
                                   const void *elems, uint64_t n);
tq_status tq_gguf_writer_set_str_array(tq_gguf_writer *w, const char *key,
                                       const char *const *strs, uint64_t n);
/* Copies any value (scalars, strings, arrays incl. string arrays) as read
 * from a tq_gguf; `g` is the file the value belongs to. */
struct tq_gguf;
tq_status tq_gguf_writer_copy_kv(tq_gguf_writer *w, const struct tq_gguf *g, const char *key,
                                 const tq_value *v);
/* Copies every KV of g (optionally renaming keys that start with `from` to
 * start with `to`; both may be NULL). */
tq_status tq_gguf_writer_copy_all_kv(tq_gguf_writer *w, const struct tq_gguf *g,
                                     const char *from, const char *to);
tq_status tq_gguf_writer_remove_kv(tq_gguf_writer *w, const char *key);

/* Adds a tensor: name, type, n_dims dims; `data` (row bytes x rows) is
 * copied now unless `borrow` is 1, in which case it must stay valid until
 * tq_gguf_writer_write returns. */
tq_status tq_gguf_writer_add_tensor(tq_gguf_writer *w, const char *name, tq_type type,
                                    int n_dims, const int64_t *ne, const void *data, int borrow);

/* Fills dst (nbytes, the tensor's full size) with a streamed tensor's data;
 * on failure fills *err and returns non-OK, which aborts the write. */
typedef tq_status (*tq_gguf_tensor_producer)(void *user, void *dst, uint64_t nbytes,
                                             tq_error *err);

/* Adds a tensor whose data `produce` computes during tq_gguf_writer_write,
 * in tensor order, into a buffer the writer reuses: only one streamed
 * tensor is in memory at a time (quantizing or generating large models).
 * `user` must stay valid until the write returns. */
tq_status tq_gguf_writer_add_tensor_stream(tq_gguf_writer *w, const char *name, tq_type type,
                                           int n_dims, const int64_t *ne,
                                           tq_gguf_tensor_producer produce, void *user);

/* Writes the file to `path` via a temporary file renamed into place, so a
 * failure never leaves a half-written file. */
tq_status tq_gguf_writer_write(tq_gguf_writer *w, const char *path, tq_error *err);

#endif
