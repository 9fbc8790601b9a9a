/* tq_sched.h — assigns each graph node to a backend and runs the graph.
 *
 * The chain is the ini's `backend = a, b, ref` list: each node goes to the
 * first backend whose supports() accepts it, so an op a fast backend lacks
 * runs slower on a later one instead of failing; `ref` is always appended
 * last. KV_STORE nodes, and ATTENTION nodes on a KV format that attends on
 * its own data, run through the KV plugin. Each fallback is logged once. */
#ifndef TQ_SCHED_H
#define TQ_SCHED_H

#include <tqrun/tq_plugin.h>

#include "tq_graph.h"

struct tq_registry;
typedef struct tq_sched tq_sched;

/* Opens device 0 of every backend named in `chain` (comma-separated; NULL
 * or "": every loaded backend plugin) and appends ref if missing. A named backend that is
 * not loaded (or whose device cannot be used) is skipped with a warning, so
 * one chain serves every machine. [main] */
tq_status tq_sched_new(const struct tq_registry *reg, const char *chain, tq_sched **out,
                       tq_error *err);
void tq_sched_free(tq_sched *s);

/* Names of the backends in order, e.g. "x86, ref" (owned by s). */
const char *tq_sched_chain(const tq_sched *s);

/* Runs every node of g (storage must be bound). [main] */
tq_status tq_sched_run(tq_sched *s, tq_cgraph *g, tq_error *err);

/* Name of an op ("mul_mat"). */
const char *tq_op_name(tq_op op);

#endif
