/* tq_threadpool.c — persistent workers woken per run.
 *
 * Decoding one token calls tq_threadpool_run hundreds of times, each for a
 * few microseconds of work, so the cost that matters is the latency of
 * waking the workers and of noticing they are done. Both sides therefore
 * spin on an atomic first and sleep on a condition variable only after a
 * while without work:
 *
 *   caller                              worker i (1 .. n-1)
 *   fn, user = ...; pending = n - 1     spin until generation changes,
 *   generation++ (release)                then sleep on `wake`
 *   wake sleepers (if any)              fn(user, i, n)
 *   fn(user, 0, n)                      pending-- ; the last one signals `done`
 *   spin, then sleep, until pending == 0
 *
 * Spinning only pays while every thread has a core of its own. With more
 * threads than cores (-t too high, a busy laptop, a CI box) a spinner burns
 * the timeslice that the thread it waits for needs, and one tiny run took a
 * millisecond in tests on two cores; such a pool never spins and sleeps at
 * once. */
/* sched_getaffinity is a GNU extension; this file only. */
#define _GNU_SOURCE

#include "tq_threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Spin budget before sleeping, in time rather than iterations because a
 * pause instruction costs anything from 10 to 150 cycles depending on the
 * core. Longer than the gap between two ops of one token and than the
 * ragged end of a prefill node (a worker done with its share waits for the
 * caller's last chunk), much shorter than a pause in generation (the user
 * reading, a new prompt). 100 us (until session 9) was not: on the 2-vCPU
 * VM the worker slept about 10 times per tm30m F16 pp512, mostly at the end
 * of a GEMM, and waking it (a halted vCPU) sometimes cost so much that
 * whole repetitions ran at one-thread speed: with 1 ms (spin_until) and the
 * guided GEMM chunks of cpu_matmul.c, 0 of 60 samples fell below 1700 t/s
 * against 6 of 60 (12 alternating rounds, round medians 1.058x). */
#define SPIN_NS 1000000

typedef struct worker {
    tq_threadpool *tp;
    int ith;
    pthread_t thread;
} worker;

struct tq_threadpool {
    int n;
    worker *workers;         /* n - 1 of them; the caller is ith 0 */
    int n_started;
    int64_t spin_ns;         /* spin budget before sleeping (0: none)      */

    tq_task_fn fn;           /* written by the caller before generation++ */
    void *user;

    /* On separate cache lines: every worker spins reading `generation`
     * while the others write `pending`. */
    _Alignas(64) atomic_uint generation; /* bumped once per run (and by free) */
    _Alignas(64) atomic_int pending;     /* workers still inside fn this run  */
    atomic_int n_sleeping;   /* workers blocked on `wake`               */
    atomic_int caller_sleeping;
    atomic_bool stop;

    pthread_mutex_t mu;
    pthread_cond_t wake;     /* new generation                          */
    pthread_cond_t done;     /* pending reached 0                       */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* CPUs this process may run on: the affinity mask (taskset, cpusets) when
 * the system has one, else every online CPU; 0 if unknown. */
static long usable_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 0;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until `cond(tp, arg)` holds or the budget is spent; returns whether
 * it holds. Past the first SPIN_PURE_NS the spinner yields between checks:
 * it stays runnable (its CPU does not go idle, which on a VM makes the
 * next wake-up slow), but a process that wants the CPU gets it. */
#define SPIN_PURE_NS 100000
static int spin_until(int (*cond)(tq_threadpool *, unsigned), tq_threadpool *tp,
                      unsigned arg) {
    if (tp->spin_ns == 0) return cond(tp, arg);
    int64_t t0 = now_ns();
    for (unsigned i = 1;; i++) {
        if (cond(tp, arg)) return 1;
        cpu_relax();
        if (i % 64 == 0) {
            const int64_t t = now_ns() - t0;
            if (t > tp->spin_ns) return cond(tp, arg);
            if (t > SPIN_PURE_NS) sched_yield();
        }
    }
}

static int new_generation(tq_threadpool *tp, unsigned seen) {
    return atomic_load_explicit(&tp->generation, memory_order_acquire) != seen;
}

static int all_done(tq_threadpool *tp, unsigned unused) {
    (void)unused;
    return atomic_load_explicit(&tp->pending, memory_order_acquire) == 0;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    tq_threadpool *tp = w->tp;
    unsigned seen = 0; /* generation starts at 0: no run yet */

    for (;;) {
        if (!spin_until(new_generation, tp, seen)) {
            /* Dekker-style handshake with tq_threadpool_run: we announce
             * ourselves sleeping before re-checking the generation, the
             * caller bumps the generation before checking for sleepers, so
             * (all seq_cst) at least one of us sees the other. */
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->n_sleeping, 1);
            while (atomic_load(&tp->generation) == seen)
                pthread_cond_wait(&tp->wake, &tp->mu);
            atomic_fetch_sub(&tp->n_sleeping, 1);
            pthread_mutex_unlock(&tp->mu);
        }
        seen = atomic_load_explicit(&tp->generation, memory_order_acquire);
        if (atomic_load(&tp->stop)) break;

        tp->fn(tp->user, w->ith, tp->n);

        /* Same handshake as above, with roles swapped: seq_cst on both
         * sides so a caller going to sleep is never missed. */
        if (atomic_fetch_sub(&tp->pending, 1) == 1 && atomic_load(&tp->caller_sleeping)) {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->done);
            pthread_mutex_unlock(&tp->mu);
        }
    }
    return NULL;
}

static void wake_workers(tq_threadpool *tp) {
    if (atomic_load(&tp->n_sleeping) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->mu);
    }
}

tq_threadpool *tq_threadpool_create(int n_threads) {
    if (n_threads < 1) return NULL;
    size_t bytes = (sizeof(tq_threadpool) + 63) / 64 * 64; /* aligned_alloc wants a multiple */
    tq_threadpool *tp = aligned_alloc(64, bytes);
    if (!tp) return NULL;
    memset(tp, 0, bytes);
    tp->n = n_threads;
    long cores = usable_cpus();
    tp->spin_ns = cores > 0 && n_threads > cores ? 0 : SPIN_NS;
    atomic_init(&tp->generation, 0);
    atomic_init(&tp->pending, 0);
    atomic_init(&tp->n_sleeping, 0);
    atomic_init(&tp->caller_sleeping, 0);
    atomic_init(&tp->stop, 0);
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->wake, NULL);
    pthread_cond_init(&tp->done, NULL);
    if (n_threads == 1) return tp;

    tp->workers = calloc((size_t)n_threads - 1, sizeof *tp->workers);
    if (!tp->workers) {
        tq_threadpool_free(tp);
        return NULL;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        worker *w = &tp->workers[i];
        w->tp = tp;
        w->ith = i + 1;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            tq_threadpool_free(tp);
            return NULL;
        }
        tp->n_started++;
    }
    return tp;
}

void tq_threadpool_free(tq_threadpool *tp) {
    if (!tp) return;
    if (tp->n_started > 0) {
        atomic_store(&tp->stop, 1);
        pthread_mutex_lock(&tp->mu);
        atomic_fetch_add(&tp->generation, 1);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->mu);
        for (int i = 0; i < tp->n_started; i++) pthread_join(tp->workers[i].thread, NULL);
    }
    pthread_cond_destroy(&tp->done);
    pthread_cond_destroy(&tp->wake);
    pthread_mutex_destroy(&tp->mu);
    free(tp->workers);
    free(tp);
}

int tq_threadpool_size(const tq_threadpool *tp) { return tp ? tp->n : 0; }

void tq_threadpool_run(tq_threadpool *tp, tq_task_fn fn, void *user) {
    if (tp->n == 1) {
        fn(user, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->user = user;
    atomic_store_explicit(&tp->pending, tp->n - 1, memory_order_relaxed);
    atomic_fetch_add(&tp->generation, 1); /* seq_cst: publishes fn, user, pending */
    wake_workers(tp);

    fn(user, 0, tp->n);

    if (!spin_until(all_done, tp, 0)) {
        pthread_mutex_lock(&tp->mu);
        atomic_store(&tp->caller_sleeping, 1);
        while (atomic_load(&tp->pending) != 0) pthread_cond_wait(&tp->done, &tp->mu);
        atomic_store(&tp->caller_sleeping, 0);
        pthread_mutex_unlock(&tp->mu);
    }
}
