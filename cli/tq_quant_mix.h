/* tq_quant_mix.h — llama.cpp's choice of a type per tensor when quantizing
 * a model to a file type (llama_tensor_get_type in src/llama-quant.cpp,
 * build 8871, without an importance matrix). Shared by `tqrun quantize` and
 * the model generator (tools/tq_gen_model.c), so both write the mix
 * llama-quantize writes. */
#ifndef TQ_QUANT_MIX_H
#define TQ_QUANT_MIX_H

#include <tqrun/tq_plugin.h>

/* A file type as llama-quantize names it. */
typedef struct tq_ftype_option {
    const char *name;     /* "Q4_K_M"                                     */
    int ftype;            /* llama_ftype number, stored in general.file_type */
    tq_type default_type; /* the type most tensors get                     */
    const char *note;
} tq_ftype_option;

/* By name (any case) or llama_ftype number; NULL if not offered (the IQ
 * types and Q2_K_S, which need an importance matrix). */
const tq_ftype_option *tq_ftype_find(const char *s);
/* i-th offered file type, NULL past the end (for usage text). */
const tq_ftype_option *tq_ftype_at(int i);

/* ggml_n_dims: trailing dimensions of size 1 do not count (minimum 1). */
int tq_mix_n_dims(const tq_tensor *t);
/* 1 for block-quantized types (not f32/f16/bf16/integers). */
int tq_mix_is_quantized(tq_type t);

/* llama.cpp's tensor order (its weights map): tensors outside "blk.N."
 * first, then by layer number, then by name. A qsort-style comparison. The
 * per-layer counters of the rules assume this order. */
int tq_mix_order(const char *a, const char *b);

typedef struct tq_quant_mix {
    const tq_ftype_option *fo;
    int pure;            /* --pure: no mix rules                            */
    int is_falcon, is_70b, n_gqa, n_expert, n_layer;
    int n_attention_wv, i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up;
    int has_tied_embeddings;
    int n_fallback;      /* tensors that needed a fallback type             */
} tq_quant_mix;

/* Model facts the rules use: general.architecture, block_count,
 * head_count, head_count_kv and expert_count. */
void tq_quant_mix_init(tq_quant_mix *m, const tq_ftype_option *fo, int pure, const char *arch,
                       int n_layer, int n_head, int n_head_kv, int n_expert);
/* Pre-pass: call once per tensor name of the model, in any order. */
void tq_quant_mix_note(tq_quant_mix *m, const char *name);
/* Type of tensor `name` (type, shape in *t) in the output. Call once per
 * tensor, in tq_mix_order. Tensors whose row is not a multiple of the
 * chosen block fall back as llama.cpp does (printed as a warning on
 * stdout); TQ_TYPE_INVALID with *err filled when llama.cpp has no
 * fallback either. */
tq_type tq_quant_mix_choose(tq_quant_mix *m, const char *name, const tq_tensor *t, tq_error *err);

#endif
