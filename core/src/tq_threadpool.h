/* tq_threadpool.h — one persistent pool of worker threads for the process.
 * tq_threadpool_run wakes the workers (no thread creation per op) and runs
 * fn(user, ith, nth) on all of them, the calling thread being ith = 0. */
#ifndef TQ_THREADPOOL_H
#define TQ_THREADPOOL_H

#include <tqrun/tq_plugin.h>

typedef struct tq_threadpool tq_threadpool;

/* n_threads >= 1 (1 = run on the caller only). NULL on failure. [main] */
tq_threadpool *tq_threadpool_create(int n_threads);
void tq_threadpool_free(tq_threadpool *tp);
int tq_threadpool_size(const tq_threadpool *tp);
/* Runs fn on every thread and returns when all have returned. Not
 * re-entrant: must not be called from inside fn. [main] */
void tq_threadpool_run(tq_threadpool *tp, tq_task_fn fn, void *user);

#endif
