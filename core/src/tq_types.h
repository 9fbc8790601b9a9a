/* tq_types.h — the type registry: built-in GGUF weight types plus types that
 * plugins register at run time (each with a reference to_f32). */
#ifndef TQ_TYPES_H
#define TQ_TYPES_H

#include <tqrun/tq_plugin.h>

/* Info for a type id, or NULL if the id is neither built in nor registered.
 * Built-in infos are static; registered ones live until their plugin's
 * deinit. [any] */
const tq_type_info *tq_type_get(tq_type id);

/* Id for a string id ("q4_K", "f16"), or TQ_TYPE_INVALID. Case is ignored
 * (ggml spells the K types "q4_K"; users write "q4_k"). [any] */
tq_type tq_type_by_name(const char *name);

/* Name of a type id, or "?" when unknown. [any] */
const char *tq_type_name(tq_type id);

/* Registers a plugin type; fails on a duplicate name, a missing to_f32 or a
 * zero block size. [main] */
tq_status tq_type_register(const tq_type_info *info, tq_type *id, tq_error *err);

/* Bytes of a row of n elements (n must be a multiple of the block size; the
 * function returns 0 otherwise or for an unknown type). */
size_t tq_type_row_bytes(tq_type id, int64_t n);

/* 1 if `id` is a built-in type the GGUF reader accepts as a tensor type. */
int tq_type_is_gguf_weight(tq_type id);

#endif
