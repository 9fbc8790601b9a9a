/* tq_graph.h — the compute graph of one batch and the builder arch plugins
 * fill it through.
 *
 * A graph is a list of nodes in execution order (the order the arch plugin
 * emitted them, which is topological by construction). Every node is a
 * tq_tensor whose op and src describe how to compute it; weights are leaves
 * that live in the model file's mapping and are not listed as nodes. All
 * intermediate values are f32 and contiguous. */
#ifndef TQ_GRAPH_H
#define TQ_GRAPH_H

#include <tqrun/tq_plugin.h>

/* Largest n_rot a ROPE node may have (backends keep per-pair tables on the
 * stack). */
#define TQ_ROPE_MAX_DIMS 1024

/* How the ATTENTION nodes reach the KV cache. */
typedef struct tq_graph_kv {
    const tq_kv_iface *iface;
    tq_kv_cache *cache;
} tq_graph_kv;

/* Core-side bookkeeping of a node; the tensor comes first so a tq_tensor *
 * handed to backends can be converted back. */
typedef struct tq_node {
    tq_tensor t;
    const struct tq_node *view_of; /* non-NULL: shares that node's storage    */
    int32_t last_use;              /* index of the last node reading this one */
    int32_t index;                 /* position in nodes[], -1 for leaves      */
    size_t offset;                 /* arena offset planned for the output     */
    int kv_fused;                  /* ATTENTION run by the KV plugin itself   */
} tq_node;

typedef struct tq_cgraph {
    tq_node **nodes;       /* computed nodes, in order                       */
    int32_t n_nodes, cap_nodes;
    tq_node **all;         /* every allocated node (for freeing), leaves too */
    int32_t n_all, cap_all;
    tq_node *tokens;       /* i32 [n_tokens] input                            */
    tq_node *positions;    /* i32 [n_tokens] input                            */
    tq_node *out_ids;      /* i32 [n_outputs] input, NULL when all rows kept  */
    tq_batch_info batch;
    int32_t n_outputs;
    tq_graph_kv kv;
    tq_error err;          /* first builder error                             */
    int failed;
} tq_cgraph;

/* A builder for one batch: `out_rows` lists the batch-relative rows whose
 * logits are wanted (NULL = every row). The returned builder's table is
 * what the arch plugin receives; tq_graph_builder_graph gives the graph. */
typedef struct tq_graph_builder tq_graph_builder;
tq_graph_builder *tq_graph_builder_new(const tq_batch_info *batch, const int32_t *out_rows,
                                       int32_t n_out_rows, tq_graph_kv kv);
tq_builder *tq_graph_builder_iface(tq_graph_builder *gb);
tq_cgraph *tq_graph_builder_graph(tq_graph_builder *gb);
/* Frees the builder and its graph. */
void tq_graph_builder_free(tq_graph_builder *gb);

/* Bytes of contiguous f32 storage of a node. */
size_t tq_node_bytes(const tq_tensor *t);

/* Plans storage for every node (liveness-based first fit in one arena) and
 * returns the arena size in bytes (SIZE_MAX when out of memory). After
 * tq_graph_bind(arena), every node's
 * data points into the arena (inputs included). */
size_t tq_graph_plan(tq_cgraph *g);
void tq_graph_bind(tq_cgraph *g, void *arena);

#endif
