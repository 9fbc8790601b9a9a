/* tq_sched.c — per-node backend choice and graph execution. */
#include "tq_sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_error.h"
#include "tq_log.h"
#include "tq_registry.h"
#include "tq_types.h"

#define MAX_BACKENDS 8
#define MAX_LOGGED 64

typedef struct sched_backend {
    const tq_backend_iface *iface;
    tq_device *dev;
    char name[32];
} sched_backend;

struct tq_sched {
    sched_backend be[MAX_BACKENDS];
    int n_be;
    char chain[MAX_BACKENDS * 34];
    /* (op, type, backend) fallbacks already logged */
    struct { tq_op op; tq_type type; int be; } logged[MAX_LOGGED];
    int n_logged;
    int8_t *assign;       /* per node: backend index, -1 = core (KV plugin) */
    int32_t assign_cap;
    tq_tensor **tensors;  /* per node: &node->t, the array backends see     */
};

const char *tq_op_name(tq_op op) {
    static const char *const names[] = {"none", "get_rows", "mul_mat", "rms_norm", "mul",
                                        "add", "rope", "swiglu", "scale", "view_rows",
                                        "kv_store", "attention", "silu"};
    return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "?";
}

static tq_status add_backend(tq_sched *s, const tq_registry *reg, const char *name, tq_error *err) {
    for (int i = 0; i < s->n_be; i++)
        if (strcmp(s->be[i].name, name) == 0) return TQ_OK;
    if (s->n_be == MAX_BACKENDS)
        return tq_error_set(err, TQ_ERR_RANGE, "too many backends in the chain (max %d)", MAX_BACKENDS);
    void *state = NULL;
    const tq_backend_iface *bi = tq_registry_iface(reg, TQ_PLUGIN_BACKEND, name, TQ_IFACE_BACKEND, &state);
    if (!bi)
        return tq_error_set(err, TQ_ERR_NOT_FOUND,
                            "backend '%s' is not loaded (see tqrun --list-plugins)", name);
    tq_device_info info = {.size = sizeof info};
    if (bi->device_count(state) < 1 || bi->device_info(state, 0, &info) != TQ_OK)
        return tq_error_set(err, TQ_ERR_UNSUPPORTED, "backend '%s' has no device", name);
    if (!info.host_visible)
        return tq_error_set(err, TQ_ERR_UNSUPPORTED,
                            "backend '%s': device '%s' is not host-visible, which this "
                            "scheduler cannot feed yet", name, info.name);
    sched_backend *b = &s->be[s->n_be];
    tq_status st = bi->device_open(state, 0, &b->dev, err);
    if (st != TQ_OK) return st;
    b->iface = bi;
    snprintf(b->name, sizeof b->name, "%s", name);
    s->n_be++;
    return TQ_OK;
}

tq_status tq_sched_new(const tq_registry *reg, const char *chain, tq_sched **out, tq_error *err) {
    tq_sched *s = calloc(1, sizeof *s);
    if (!s) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    tq_status st = TQ_OK;
    if (!chain || !*chain) {
        /* No preference given: every loaded backend plugin, in registry
         * order (the highest-priority variant of each name), then ref. */
        for (int i = 0; i < tq_registry_count(reg) && st == TQ_OK; i++) {
            const tq_plugin_record *rec = tq_registry_record(reg, i);
            if (rec->status == TQ_PLUGIN_OK && rec->kind == TQ_PLUGIN_BACKEND && rec->name &&
                strcmp(rec->name, "ref") != 0)
                st = add_backend(s, reg, rec->name, err);
        }
    }
    const char *p = chain ? chain : "";
    while (st == TQ_OK && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *end = e;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t')) end--;
        if (end > p) {
            char name[32];
            if ((size_t)(end - p) >= sizeof name) {
                st = tq_error_set(err, TQ_ERR_INVALID, "backend name '%.*s' is too long",
                                  (int)(end - p), p);
                break;
            }
            memcpy(name, p, (size_t)(end - p));
            name[end - p] = 0;
            st = add_backend(s, reg, name, err);
            if (st == TQ_ERR_NOT_FOUND || st == TQ_ERR_UNSUPPORTED) {
                /* The chain lists preferences ("x86, neon, ref" works on every
                 * machine): one that is not here is skipped, not fatal. */
                tq_log(TQ_LOG_WARN, "sched", "%s; skipping it", err ? err->message : name);
                st = TQ_OK;
            }
        }
        p = e;
    }
    if (st == TQ_OK) st = add_backend(s, reg, "ref", err);
    if (st != TQ_OK) {
        tq_sched_free(s);
        return st;
    }
    for (int i = 0; i < s->n_be; i++)
        snprintf(s->chain + strlen(s->chain), sizeof s->chain - strlen(s->chain), "%s%s",
                 i ? ", " : "", s->be[i].name);
    *out = s;
    return TQ_OK;
}

void tq_sched_free(tq_sched *s) {
    if (!s) return;
    for (int i = 0; i < s->n_be; i++) s->be[i].iface->device_close(s->be[i].dev);
    free(s->assign);
    free(s->tensors);
    free(s);
}

const char *tq_sched_chain(const tq_sched *s) { return s->chain; }

static void log_fallback(tq_sched *s, const tq_tensor *n, int chosen) {
    tq_type type = n->src[0] ? n->src[0]->type : n->type;
    for (int i = 0; i < s->n_logged; i++)
        if (s->logged[i].op == n->op && s->logged[i].type == type && s->logged[i].be == chosen) return;
    if (s->n_logged < MAX_LOGGED) {
        s->logged[s->n_logged].op = n->op;
        s->logged[s->n_logged].type = type;
        s->logged[s->n_logged].be = chosen;
        s->n_logged++;
    }
    tq_log(TQ_LOG_INFO, "sched", "%s on %s: not supported by %s, running on %s",
           tq_op_name(n->op), tq_type_name(type), s->be[0].name, s->be[chosen].name);
}

static tq_status run_core_node(tq_cgraph *g, tq_node *n, tq_error *err) {
    const tq_kv_iface *kv = g->kv.iface;
    tq_tensor *t = &n->t;
    if (t->op == TQ_OP_KV_STORE) {
        const tq_tensor *k = t->src[0], *v = t->src[1];
        return kv->append(g->kv.cache, t->op_params[0], t->op_params[1], (int32_t)k->ne[2],
                          k->data, v->data, err);
    }
    /* ATTENTION on a format that attends on its own stored data */
    const tq_tensor *q = t->src[0];
    return kv->attention(g->kv.cache, t->op_params[0], q->data, (int32_t)q->ne[1],
                         (int32_t)q->ne[2], t->op_params[1], tq_param_f(t, 3), t->data, err);
}

tq_status tq_sched_run(tq_sched *s, tq_cgraph *g, tq_error *err) {
    if (g->n_nodes > s->assign_cap) {
        int8_t *a = realloc(s->assign, (size_t)g->n_nodes);
        tq_tensor **t = realloc(s->tensors, (size_t)g->n_nodes * sizeof *t);
        if (a) s->assign = a;
        if (t) s->tensors = t;
        if (!a || !t) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
        s->assign_cap = g->n_nodes;
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        tq_node *n = g->nodes[i];
        s->tensors[i] = &n->t;
        if (n->t.op == TQ_OP_NONE || n->t.op == TQ_OP_KV_STORE || n->kv_fused) {
            s->assign[i] = -1;
            continue;
        }
        int chosen = -1;
        for (int b = 0; b < s->n_be && chosen < 0; b++)
            if (s->be[b].iface->supports(s->be[b].dev, &n->t)) chosen = b;
        if (chosen < 0)
            return tq_error_set(err, TQ_ERR_UNSUPPORTED, "no backend in '%s' can run %s on %s",
                                s->chain, tq_op_name(n->t.op),
                                tq_type_name(n->t.src[0] ? n->t.src[0]->type : n->t.type));
        if (chosen > 0) log_fallback(s, &n->t, chosen);
        s->assign[i] = (int8_t)chosen;
    }
    const tq_graph graph = {sizeof graph, g->n_nodes, s->tensors};
    int32_t i = 0;
    while (i < g->n_nodes) {
        if (s->assign[i] < 0) {
            if (g->nodes[i]->t.op != TQ_OP_NONE) {
                tq_status st = run_core_node(g, g->nodes[i], err);
                if (st != TQ_OK) return st;
            }
            i++;
            continue;
        }
        int32_t j = i;
        while (j < g->n_nodes && s->assign[j] == s->assign[i]) j++;
        sched_backend *b = &s->be[s->assign[i]];
        tq_status st = b->iface->graph_compute(b->dev, &graph, i, j, err);
        if (st != TQ_OK) return st;
        i = j;
    }
    for (int b = 0; b < s->n_be; b++) s->be[b].iface->synchronize(s->be[b].dev);
    return TQ_OK;
}
