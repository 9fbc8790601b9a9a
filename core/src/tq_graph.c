/* tq_graph.c — building the graph of one batch, and planning its memory.
 *
 * The builder checks shapes as nodes are added, so an arch plugin that wires
 * a wrong tensor fails at build time with a message naming the op and both
 * shapes, instead of producing garbage at compute time. */
#include "tq_graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "tq_error.h"

struct tq_graph_builder {
    tq_builder iface; /* first: the arch plugin's tq_builder * is this struct */
    tq_cgraph g;
};

static tq_graph_builder *gb_of(tq_builder *b) { return (tq_graph_builder *)b; }

size_t tq_node_bytes(const tq_tensor *t) {
    size_t n = 4;
    for (int i = 0; i < TQ_MAX_DIMS; i++) n *= (size_t)t->ne[i];
    return n;
}

static void set_contiguous(tq_tensor *t, size_t elem) {
    t->nb[0] = elem;
    for (int i = 1; i < TQ_MAX_DIMS; i++) t->nb[i] = t->nb[i - 1] * (size_t)t->ne[i - 1];
}

static void fail(tq_cgraph *g, const char *fmt, ...) {
    if (g->failed) return;
    g->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err.message, sizeof g->err.message, fmt, ap);
    va_end(ap);
    g->err.code = TQ_ERR_INVALID;
}

static int push(tq_node ***arr, int32_t *n, int32_t *cap, tq_node *x) {
    if (*n == *cap) {
        int32_t nc = *cap ? *cap * 2 : 64;
        tq_node **p = realloc(*arr, (size_t)nc * sizeof *p);
        if (!p) return 0;
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = x;
    return 1;
}

/* Allocates a node (leaf unless `compute`) of type f32 and shape ne0..ne3. */
static tq_node *new_node(tq_cgraph *g, tq_op op, tq_type type, int64_t ne0, int64_t ne1,
                         int64_t ne2, int64_t ne3, int compute, const char *label) {
    if (g->failed) return NULL;
    tq_node *n = calloc(1, sizeof *n);
    if (!n || !push(&g->all, &g->n_all, &g->cap_all, n)) {
        free(n);
        fail(g, "out of memory building the graph");
        return NULL;
    }
    n->t.size = sizeof n->t;
    n->t.type = type;
    n->t.op = op;
    n->t.ne[0] = ne0;
    n->t.ne[1] = ne1;
    n->t.ne[2] = ne2;
    n->t.ne[3] = ne3;
    set_contiguous(&n->t, type == TQ_TYPE_I32 ? 4 : sizeof(float));
    n->t.name = label;
    n->index = -1;
    n->last_use = -1;
    if (compute) {
        n->index = g->n_nodes;
        if (!push(&g->nodes, &g->n_nodes, &g->cap_nodes, n)) {
            fail(g, "out of memory building the graph");
            return NULL;
        }
    }
    return n;
}

static int64_t nelem(const tq_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

/* Is t one of this graph's f32 values (not a weight)? */
static int is_activation(const tq_tensor *t) { return t->type == TQ_TYPE_F32; }

static int check_in(tq_cgraph *g, const char *op, const tq_tensor *x) {
    if (g->failed) return 0;
    if (!x) {
        fail(g, "%s: missing input", op);
        return 0;
    }
    return 1;
}

static void fmt_shape(const tq_tensor *t, char *buf, size_t n) {
    snprintf(buf, n, "[%lld, %lld, %lld, %lld]", (long long)t->ne[0], (long long)t->ne[1],
             (long long)t->ne[2], (long long)t->ne[3]);
}

static void shape_fail(tq_cgraph *g, const char *op, const tq_tensor *a, const tq_tensor *b) {
    char sa[96], sb[96];
    fmt_shape(a, sa, sizeof sa);
    fmt_shape(b, sb, sizeof sb);
    fail(g, "%s: shapes do not fit: %s %s and %s %s", op, a->name ? a->name : "", sa,
         b->name ? b->name : "", sb);
}

/* ---- builder callbacks ---------------------------------------------------- */

static tq_tensor *b_tokens(tq_builder *b) { return &gb_of(b)->g.tokens->t; }
static tq_tensor *b_positions(tq_builder *b) { return &gb_of(b)->g.positions->t; }

static tq_tensor *b_get_rows(tq_builder *b, const tq_tensor *table, const tq_tensor *ids) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, "get_rows", table) || !check_in(g, "get_rows", ids)) return NULL;
    if (ids->type != TQ_TYPE_I32 || ids->ne[1] != 1) {
        fail(g, "get_rows: ids must be an i32 vector");
        return NULL;
    }
    tq_node *n = new_node(g, TQ_OP_GET_ROWS, TQ_TYPE_F32, table->ne[0], ids->ne[0], 1, 1, 1,
                          "get_rows");
    if (!n) return NULL;
    n->t.src[0] = table;
    n->t.src[1] = ids;
    return &n->t;
}

static tq_tensor *b_mul_mat(tq_builder *b, const tq_tensor *w, const tq_tensor *x) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, "mul_mat", w) || !check_in(g, "mul_mat", x)) return NULL;
    if (w->ne[0] != x->ne[0] || w->ne[2] != 1 || w->ne[3] != 1 || x->type != TQ_TYPE_F32) {
        shape_fail(g, "mul_mat", w, x);
        return NULL;
    }
    int64_t cols = nelem(x) / x->ne[0];
    tq_node *n = new_node(g, TQ_OP_MUL_MAT, TQ_TYPE_F32, w->ne[1], cols, 1, 1, 1, "mul_mat");
    if (!n) return NULL;
    n->t.src[0] = w;
    n->t.src[1] = x;
    return &n->t;
}

static tq_tensor *unary(tq_builder *b, tq_op op, const char *name, const tq_tensor *x) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, name, x)) return NULL;
    if (!is_activation(x)) {
        fail(g, "%s: input must be f32", name);
        return NULL;
    }
    tq_node *n = new_node(g, op, TQ_TYPE_F32, x->ne[0], x->ne[1], x->ne[2], x->ne[3], 1, name);
    if (n) n->t.src[0] = x;
    return n ? &n->t : NULL;
}

static tq_tensor *b_rms_norm(tq_builder *b, const tq_tensor *x, float eps) {
    tq_tensor *t = unary(b, TQ_OP_RMS_NORM, "rms_norm", x);
    if (t) tq_param_set_f(t, 0, eps);
    return t;
}

static tq_tensor *b_scale(tq_builder *b, const tq_tensor *x, float s) {
    tq_tensor *t = unary(b, TQ_OP_SCALE, "scale", x);
    if (t) tq_param_set_f(t, 0, s);
    return t;
}

static tq_tensor *b_silu(tq_builder *b, const tq_tensor *x) {
    return unary(b, TQ_OP_SILU, "silu", x);
}

/* x op y where y has x's shape or is one row broadcast over x's columns;
 * y may be an f32 weight (norm gains). */
static tq_tensor *binary(tq_builder *b, tq_op op, const char *name, const tq_tensor *x,
                         const tq_tensor *y) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, name, x) || !check_in(g, name, y)) return NULL;
    int same = nelem(x) == nelem(y) && x->ne[0] == y->ne[0];
    int row = y->ne[0] == x->ne[0] && nelem(y) == y->ne[0];
    if (x->type != TQ_TYPE_F32 || y->type != TQ_TYPE_F32 || (!same && !row)) {
        shape_fail(g, name, x, y);
        return NULL;
    }
    tq_node *n = new_node(g, op, TQ_TYPE_F32, x->ne[0], x->ne[1], x->ne[2], x->ne[3], 1, name);
    if (!n) return NULL;
    n->t.src[0] = x;
    n->t.src[1] = y;
    return &n->t;
}

static tq_tensor *b_mul(tq_builder *b, const tq_tensor *x, const tq_tensor *y) {
    return binary(b, TQ_OP_MUL, "mul", x, y);
}
static tq_tensor *b_add(tq_builder *b, const tq_tensor *x, const tq_tensor *y) {
    return binary(b, TQ_OP_ADD, "add", x, y);
}

static tq_tensor *b_swiglu(tq_builder *b, const tq_tensor *gate, const tq_tensor *up) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, "swiglu", gate) || !check_in(g, "swiglu", up)) return NULL;
    if (nelem(gate) != nelem(up) || gate->ne[0] != up->ne[0]) {
        shape_fail(g, "swiglu", gate, up);
        return NULL;
    }
    tq_node *n = new_node(g, TQ_OP_SWIGLU, TQ_TYPE_F32, gate->ne[0], gate->ne[1], gate->ne[2],
                          gate->ne[3], 1, "swiglu");
    if (!n) return NULL;
    n->t.src[0] = gate;
    n->t.src[1] = up;
    return &n->t;
}

static tq_tensor *b_view_rows(tq_builder *b, const tq_tensor *x, int64_t offset, int64_t cnt) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, "view_rows", x)) return NULL;
    if (offset < 0 || cnt <= 0 || offset + cnt > x->ne[0] || x->type != TQ_TYPE_F32) {
        fail(g, "view_rows: rows [%lld, %lld) outside a tensor of %lld rows", (long long)offset,
             (long long)(offset + cnt), (long long)x->ne[0]);
        return NULL;
    }
    tq_node *n = new_node(g, TQ_OP_VIEW_ROWS, TQ_TYPE_F32, cnt, nelem(x) / x->ne[0], 1, 1, 1,
                          "view_rows");
    if (!n) return NULL;
    n->t.src[0] = x;
    n->t.op_params[0] = (int32_t)offset;
    return &n->t;
}

static tq_tensor *b_reshape_3d(tq_builder *b, const tq_tensor *x, int64_t ne0, int64_t ne1) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, "reshape", x)) return NULL;
    int64_t total = nelem(x);
    if (x->type != TQ_TYPE_F32 || ne0 <= 0 || ne1 <= 0 || total % (ne0 * ne1) != 0) {
        fail(g, "reshape: %lld elements cannot be shaped [%lld, %lld, *]", (long long)total,
             (long long)ne0, (long long)ne1);
        return NULL;
    }
    const tq_node *parent = (const tq_node *)x;
    if (x->op == TQ_OP_NONE && !parent->view_of) {
        fail(g, "reshape: only computed values can be reshaped");
        return NULL;
    }
    tq_node *n = new_node(g, TQ_OP_NONE, TQ_TYPE_F32, ne0, ne1, total / (ne0 * ne1), 1, 0,
                          "reshape");
    if (!n) return NULL;
    n->view_of = parent->view_of ? parent->view_of : parent;
    return &n->t;
}

static tq_tensor *b_rope(tq_builder *b, const tq_tensor *x, const tq_tensor *ff, int32_t n_rot,
                         tq_rope_mode mode, float freq_base, float freq_scale,
                         float attn_factor) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, "rope", x)) return NULL;
    if (n_rot <= 0 || n_rot % 2 || n_rot > x->ne[0] || n_rot > TQ_ROPE_MAX_DIMS || x->ne[2] != g->batch.n_tokens ||
        (mode != TQ_ROPE_NORMAL && mode != TQ_ROPE_NEOX)) {
        fail(g, "rope: n_rot %d does not fit head size %lld (or bad mode %d)", n_rot,
             (long long)x->ne[0], (int)mode);
        return NULL;
    }
    if (ff && (ff->type != TQ_TYPE_F32 || nelem(ff) < n_rot / 2)) {
        fail(g, "rope: frequency factors %s must be f32 with %d values", ff->name ? ff->name : "",
             n_rot / 2);
        return NULL;
    }
    tq_tensor *t = unary(b, TQ_OP_ROPE, "rope", x);
    if (!t) return NULL;
    t->src[1] = &g->positions->t;
    t->src[2] = ff;
    t->op_params[0] = n_rot;
    t->op_params[1] = (int32_t)mode;
    tq_param_set_f(t, 2, freq_base);
    tq_param_set_f(t, 3, freq_scale);
    tq_param_set_f(t, 4, attn_factor);
    tq_param_set_f(t, 5, 0.0f); /* ext_factor: YaRN not used by these families yet */
    tq_param_set_f(t, 6, 32.0f);
    tq_param_set_f(t, 7, 1.0f);
    t->op_params[8] = g->batch.n_ctx;
    return t;
}

static tq_tensor *b_attention(tq_builder *b, int32_t layer, const tq_tensor *q, const tq_tensor *k,
                              const tq_tensor *v, float scale) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, "attention", q) || !check_in(g, "attention", k) ||
        !check_in(g, "attention", v))
        return NULL;
    if (!g->kv.iface) {
        fail(g, "attention: no KV cache");
        return NULL;
    }
    const int32_t n = g->batch.n_tokens;
    if (k->ne[0] != q->ne[0] || v->ne[0] != q->ne[0] || k->ne[1] != v->ne[1] ||
        q->ne[1] % k->ne[1] != 0 || q->ne[2] != n || k->ne[2] != n || v->ne[2] != n) {
        shape_fail(g, "attention", q, k);
        return NULL;
    }
    tq_node *store = new_node(g, TQ_OP_KV_STORE, TQ_TYPE_F32, 1, 1, 1, 1, 1, "kv_store");
    if (!store) return NULL;
    store->t.src[0] = k;
    store->t.src[1] = v;
    store->t.op_params[0] = layer;
    store->t.op_params[1] = g->batch.pos0;

    tq_node *att = new_node(g, TQ_OP_ATTENTION, TQ_TYPE_F32, q->ne[0] * q->ne[1], n, 1, 1, 1,
                            "attention");
    if (!att) return NULL;
    const int32_t n_kv = g->batch.pos0 + n;
    att->t.src[0] = q;
    att->t.src[3] = &store->t;
    att->t.op_params[0] = layer;
    att->t.op_params[1] = g->batch.pos0;
    att->t.op_params[2] = n_kv;
    tq_param_set_f(&att->t, 3, scale);
    if (g->kv.iface->view) {
        /* The cache is a plain tensor: any backend's attention reads it. */
        for (int which = 0; which < 2; which++) {
            tq_node *leaf = new_node(g, TQ_OP_NONE, TQ_TYPE_F16, 1, 1, 1, 1, 0,
                                     which ? "kv_v" : "kv_k");
            if (!leaf) return NULL;
            if (g->kv.iface->view(g->kv.cache, layer, which, n_kv, &leaf->t) != TQ_OK) {
                fail(g, "attention: the KV cache has no view of layer %d", layer);
                return NULL;
            }
            leaf->t.size = sizeof leaf->t;
            leaf->t.op = TQ_OP_NONE;
            att->t.src[1 + which] = &leaf->t;
        }
    } else if (g->kv.iface->attention) {
        att->kv_fused = 1;
    } else {
        fail(g, "attention: the KV format offers neither a view nor its own attention");
        return NULL;
    }
    return &att->t;
}

static tq_tensor *b_select_outputs(tq_builder *b, const tq_tensor *x) {
    tq_cgraph *g = &gb_of(b)->g;
    if (!check_in(g, "select_outputs", x)) return NULL;
    if (!g->out_ids) return (tq_tensor *)x; /* every row is wanted */
    tq_tensor *t = b_get_rows(b, x, &g->out_ids->t);
    if (t) t->name = "select_outputs";
    return t;
}

/* ---- life cycle ----------------------------------------------------------- */

tq_graph_builder *tq_graph_builder_new(const tq_batch_info *batch, const int32_t *out_rows,
                                       int32_t n_out_rows, tq_graph_kv kv) {
    tq_graph_builder *gb = calloc(1, sizeof *gb);
    if (!gb) return NULL;
    tq_builder *b = &gb->iface;
    b->size = sizeof *b;
    b->tokens = b_tokens;
    b->positions = b_positions;
    b->get_rows = b_get_rows;
    b->mul_mat = b_mul_mat;
    b->rms_norm = b_rms_norm;
    b->mul = b_mul;
    b->add = b_add;
    b->scale = b_scale;
    b->silu = b_silu;
    b->swiglu = b_swiglu;
    b->view_rows = b_view_rows;
    b->reshape_3d = b_reshape_3d;
    b->rope = b_rope;
    b->attention = b_attention;
    b->select_outputs = b_select_outputs;

    tq_cgraph *g = &gb->g;
    g->batch = *batch;
    g->kv = kv;
    const int32_t n = batch->n_tokens;
    /* Inputs are listed as nodes (op NONE) so the planner gives them storage;
     * nothing computes them: the session writes them before running. */
    g->tokens = new_node(g, TQ_OP_NONE, TQ_TYPE_I32, n, 1, 1, 1, 1, "tokens");
    g->positions = new_node(g, TQ_OP_NONE, TQ_TYPE_I32, n, 1, 1, 1, 1, "positions");
    g->n_outputs = n;
    if (out_rows && !(n_out_rows == n && out_rows[0] == 0 && out_rows[n - 1] == n - 1)) {
        g->out_ids = new_node(g, TQ_OP_NONE, TQ_TYPE_I32, n_out_rows, 1, 1, 1, 1, "out_ids");
        g->n_outputs = n_out_rows;
    }
    if (g->failed) {
        tq_graph_builder_free(gb);
        return NULL;
    }
    return gb;
}

tq_builder *tq_graph_builder_iface(tq_graph_builder *gb) { return &gb->iface; }
tq_cgraph *tq_graph_builder_graph(tq_graph_builder *gb) { return &gb->g; }

void tq_graph_builder_free(tq_graph_builder *gb) {
    if (!gb) return;
    for (int32_t i = 0; i < gb->g.n_all; i++) free(gb->g.all[i]);
    free(gb->g.all);
    free(gb->g.nodes);
    free(gb);
}

/* ---- memory planning ------------------------------------------------------ */

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* The storage node behind t, or NULL for weights and cache views. `sorted`
 * holds this graph's node pointers in address order: weights come from the
 * model file and are not tq_nodes, so only pointers found there may be cast. */
static tq_node *storage_of(tq_node *const *sorted, int32_t n_sorted, const tq_tensor *t) {
    if (!t || !bsearch(&t, sorted, (size_t)n_sorted, sizeof *sorted, cmp_ptr)) return NULL;
    const tq_node *n = (const tq_node *)t;
    if (n->view_of) n = n->view_of;
    return n->index >= 0 ? (tq_node *)n : NULL;
}

typedef struct { size_t off, size; } block;

#define ARENA_ALIGN 64

size_t tq_graph_plan(tq_cgraph *g) {
    tq_node **sorted = malloc(sizeof *sorted * (size_t)g->n_all);
    block *free_list = malloc(sizeof(block) * (size_t)(g->n_nodes + 1));
    if (!sorted || !free_list) {
        free(sorted);
        free(free_list);
        return SIZE_MAX;
    }
    memcpy(sorted, g->all, sizeof *sorted * (size_t)g->n_all);
    qsort(sorted, (size_t)g->n_all, sizeof *sorted, cmp_ptr);
#define STORAGE(t) storage_of(sorted, g->n_all, (t))
    for (int32_t i = 0; i < g->n_nodes; i++) g->nodes[i]->last_use = -1;
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int s = 0; s < TQ_MAX_SRC; s++) {
            tq_node *src = STORAGE(g->nodes[i]->t.src[s]);
            if (src) src->last_use = i;
        }

    int n_free = 0;
    size_t top = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        tq_node *n = g->nodes[i];
        size_t need = (tq_node_bytes(&n->t) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
        int best = -1;
        for (int f = 0; f < n_free; f++)
            if (free_list[f].size >= need) {
                best = f;
                break;
            }
        if (best >= 0) {
            n->offset = free_list[best].off;
            free_list[best].off += need;
            free_list[best].size -= need;
            if (free_list[best].size == 0) {
                memmove(&free_list[best], &free_list[best + 1],
                        (size_t)(n_free - best - 1) * sizeof(block));
                n_free--;
            }
        } else {
            n->offset = top;
            top += need;
        }
        /* Release inputs whose last reader is this node. Outputs never read
         * (the logits) stay allocated until the end. */
        for (int s = 0; s < TQ_MAX_SRC; s++) {
            tq_node *src = STORAGE(n->t.src[s]);
            if (!src || src->last_use != i || src == n) continue;
            int dup = 0;
            for (int s2 = 0; s2 < s; s2++) dup |= STORAGE(n->t.src[s2]) == src;
            if (dup) continue;
            size_t sz = (tq_node_bytes(&src->t) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
            /* insert sorted by offset, then merge neighbours */
            int pos = 0;
            while (pos < n_free && free_list[pos].off < src->offset) pos++;
            memmove(&free_list[pos + 1], &free_list[pos], (size_t)(n_free - pos) * sizeof(block));
            free_list[pos].off = src->offset;
            free_list[pos].size = sz;
            n_free++;
            if (pos + 1 < n_free && free_list[pos].off + free_list[pos].size == free_list[pos + 1].off) {
                free_list[pos].size += free_list[pos + 1].size;
                memmove(&free_list[pos + 1], &free_list[pos + 2],
                        (size_t)(n_free - pos - 2) * sizeof(block));
                n_free--;
            }
            if (pos > 0 && free_list[pos - 1].off + free_list[pos - 1].size == free_list[pos].off) {
                free_list[pos - 1].size += free_list[pos].size;
                memmove(&free_list[pos], &free_list[pos + 1],
                        (size_t)(n_free - pos - 1) * sizeof(block));
                n_free--;
            }
        }
    }
#undef STORAGE
    free(free_list);
    free(sorted);
    return top;
}

void tq_graph_bind(tq_cgraph *g, void *arena) {
    for (int32_t i = 0; i < g->n_nodes; i++) g->nodes[i]->t.data = (char *)arena + g->nodes[i]->offset;
    for (int32_t i = 0; i < g->n_all; i++)
        if (g->all[i]->view_of) g->all[i]->t.data = g->all[i]->view_of->t.data;
}
