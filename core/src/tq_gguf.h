/* tq_gguf.h — GGUF v2/v3 reader. The file is mmapped read-only; metadata and
 * tensor infos are parsed and validated completely by tq_gguf_open, so every
 * later access is plain memory reads that cannot fail on bad input.
 * Layout and rules: ../shared/specs/gguf-llama-phi3.md §1. */
#ifndef TQ_GGUF_H
#define TQ_GGUF_H

#include <stdint.h>
#include <tqrun/tq_plugin.h>

typedef struct tq_gguf tq_gguf;

/* Opens and validates `path`: magic, version (2 or 3), counts, every key and
 * value, every tensor info (name < 64 bytes, n_dims <= 4, dims > 0, known
 * type, ne[0] a multiple of the block size, data inside the file, data
 * offsets aligned). On failure returns non-OK with a message that starts
 * with the path and names the problem; nothing stays open. [main] */
tq_status tq_gguf_open(const char *path, tq_gguf **out, tq_error *err);

/* Unmaps and frees. Every pointer obtained from g dies with it. */
void tq_gguf_close(tq_gguf *g);

const char *tq_gguf_path(const tq_gguf *g);
uint32_t tq_gguf_version(const tq_gguf *g);
uint32_t tq_gguf_alignment(const tq_gguf *g);
uint64_t tq_gguf_data_offset(const tq_gguf *g);   /* start of the data section */
uint64_t tq_gguf_file_size(const tq_gguf *g);

/* Metadata, in file order. Keys are NUL-terminated copies. */
int64_t tq_gguf_n_kv(const tq_gguf *g);
const char *tq_gguf_kv_key(const tq_gguf *g, int64_t i);
const tq_value *tq_gguf_kv_value(const tq_gguf *g, int64_t i);
/* Value of `key` or NULL. */
const tq_value *tq_gguf_find(const tq_gguf *g, const char *key);
/* i-th string of a string array value (len receives its byte length). */
const char *tq_gguf_array_str(const tq_gguf *g, const tq_value *arr, uint64_t i, uint64_t *len);

/* Typed getters: TQ_ERR_NOT_FOUND when the key is absent, TQ_ERR_FORMAT
 * (message names the key and both types) when it has an incompatible type.
 * Integer getters accept any integer type whose value fits. */
tq_status tq_gguf_get_u32(const tq_gguf *g, const char *key, uint32_t *out, tq_error *err);
tq_status tq_gguf_get_i64(const tq_gguf *g, const char *key, int64_t *out, tq_error *err);
tq_status tq_gguf_get_f32(const tq_gguf *g, const char *key, float *out, tq_error *err);
tq_status tq_gguf_get_bool(const tq_gguf *g, const char *key, int *out, tq_error *err);
/* NUL-terminated copy owned by g (lives until tq_gguf_close). */
tq_status tq_gguf_get_str(const tq_gguf *g, const char *key, const char **out, tq_error *err);

/* Reads the tensor data into private anonymous memory that asks for 2 MB
 * pages (MADV_HUGEPAGE) and points every tensor there: decoding streams
 * all the weights once per token, and with 4 KB pages of the file mapping
 * each 4 KB costs a TLB miss and ends the prefetchers' run (2 threads
 * streamed 26.6 GB/s from 4 KB pages against 31.7 GB/s from 2 MB pages on
 * the development VM). Read with up to 4 threads (TinyLlama 1.1B Q4_0,
 * 637 MB: about 130 ms from the page cache). *copied = 0 and nothing
 * changes when the data is over half the RAM or the memory cannot be
 * mapped (the file mapping then serves as before); a read error is an
 * error. Call before handing tensors out. [main] */
tq_status tq_gguf_copy_weights(tq_gguf *g, int *copied, tq_error *err);

/* Tensors, in file order. data points into the mapping (or the copy). */
int64_t tq_gguf_n_tensors(const tq_gguf *g);
const tq_tensor *tq_gguf_tensor(const tq_gguf *g, int64_t i);
const tq_tensor *tq_gguf_find_tensor(const tq_gguf *g, const char *name);
/* Byte offset of tensor i relative to the data section. */
uint64_t tq_gguf_tensor_offset(const tq_gguf *g, int64_t i);

/* A tq_model_source view of g for arch plugins; lives as long as g. */
const tq_model_source *tq_gguf_source(const tq_gguf *g);

/* Name of a metadata value type ("u32", "string", "array", ...). */
const char *tq_gguf_value_type_name(tq_value_type t);

#endif
