/* test_threadpool.c — every ith runs exactly once per run, run after run,
 * including after the workers have gone to sleep. */
#include "tq_test_util.h"

#include "tq_threadpool.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 8

typedef struct counts {
    atomic_int calls[MAX_THREADS];
    atomic_int bad_nth;
    int expect_nth;
    /* Written without atomics by each ith and read by the caller after the
     * run: the run's return must make them visible. */
    long plain[MAX_THREADS];
} counts;

static void count_task(void *user, int ith, int nth) {
    counts *c = user;
    if (nth != c->expect_nth || ith < 0 || ith >= nth) {
        atomic_fetch_add(&c->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&c->calls[ith], 1);
    c->plain[ith]++;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check_runs(tq_threadpool *tp, counts *c, int runs, int n) {
    for (int r = 0; r < runs; r++) {
        tq_threadpool_run(tp, count_task, c);
        /* Right after return every ith of this run has finished. */
        for (int i = 0; i < n; i++)
            ck_assert_msg(c->plain[i] == r + 1, "run %d: ith %d not finished", r, i);
    }
}

START_TEST(each_ith_once_per_run) {
    int n = _i;
    tq_threadpool *tp = tq_threadpool_create(n);
    ck_assert_ptr_nonnull(tp);
    ck_assert_int_eq(tq_threadpool_size(tp), n);
    counts c;
    memset(&c, 0, sizeof c);
    c.expect_nth = n;
    const int runs = 1000;
    check_runs(tp, &c, runs, n);
    ck_assert_int_eq(atomic_load(&c.bad_nth), 0);
    for (int i = 0; i < MAX_THREADS; i++) {
        ck_assert_int_eq(atomic_load(&c.calls[i]), i < n ? runs : 0);
        ck_assert_int_eq(c.plain[i], i < n ? runs : 0);
    }
    tq_threadpool_free(tp);
}
END_TEST

START_TEST(many_tiny_runs) {
    /* Decode calls the pool hundreds of times per token: 10^5 runs must be
     * quick. The bound only catches a pool that sleeps or spawns per run
     * (>= 1 ms a run); the build machines are shared and loaded, so the
     * real figure is printed for humans rather than asserted. */
    int n = _i;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int runs = n <= cores ? 100000 : 10000; /* oversubscribed: every run needs a switch */
    tq_threadpool *tp = tq_threadpool_create(n);
    ck_assert_ptr_nonnull(tp);
    counts c;
    memset(&c, 0, sizeof c);
    c.expect_nth = n;
    double t0 = now_s();
    for (int r = 0; r < runs; r++) tq_threadpool_run(tp, count_task, &c);
    double dt = now_s() - t0;
    printf("threadpool: %d threads (%ld cores), %d runs: %.3f s, %.2f us/run\n", n, cores, runs,
           dt, 1e6 * dt / runs);
    for (int i = 0; i < n; i++) ck_assert_int_eq(atomic_load(&c.calls[i]), runs);
    ck_assert_int_eq(atomic_load(&c.bad_nth), 0);
    /* Wall-clock bounds mean nothing under an emulator (the cross tests run
     * under qemu-user); natively a run costs microseconds. */
    if (!getenv("TQ_EMULATED")) ck_assert_msg(dt < 1e-3 * runs * 0.6, "%d runs took %.1f s", runs, dt);
    tq_threadpool_free(tp);
}
END_TEST

START_TEST(runs_after_sleep) {
    /* Long enough pauses that every worker stops spinning and sleeps. */
    int n = _i;
    tq_threadpool *tp = tq_threadpool_create(n);
    ck_assert_ptr_nonnull(tp);
    counts c;
    memset(&c, 0, sizeof c);
    c.expect_nth = n;
    for (int r = 0; r < 20; r++) {
        sleep_us(r % 2 ? 20000 : 200);
        tq_threadpool_run(tp, count_task, &c);
    }
    for (int i = 0; i < n; i++) ck_assert_int_eq(atomic_load(&c.calls[i]), 20);
    tq_threadpool_free(tp);
}
END_TEST

typedef struct slow {
    atomic_int done;
} slow;

static void slow_task(void *user, int ith, int nth) {
    (void)nth;
    /* Workers finish long after the caller: the caller must sleep-wait. */
    if (ith != 0) sleep_us(30000);
    atomic_fetch_add(&((slow *)user)->done, 1);
}

START_TEST(caller_waits_for_slow_workers) {
    tq_threadpool *tp = tq_threadpool_create(4);
    ck_assert_ptr_nonnull(tp);
    for (int r = 1; r <= 3; r++) {
        slow s;
        atomic_init(&s.done, 0);
        tq_threadpool_run(tp, slow_task, &s);
        ck_assert_int_eq(atomic_load(&s.done), 4);
    }
    tq_threadpool_free(tp);
}
END_TEST

START_TEST(create_free_and_bad_size) {
    ck_assert_ptr_null(tq_threadpool_create(0));
    ck_assert_ptr_null(tq_threadpool_create(-3));
    /* Freed before the workers ever ran: they must still be joined. */
    for (int n = 1; n <= MAX_THREADS; n++) tq_threadpool_free(tq_threadpool_create(n));
    tq_threadpool_free(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("threadpool");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, each_ith_once_per_run, 1, MAX_THREADS + 1);
    tcase_add_loop_test(tc, many_tiny_runs, 1, MAX_THREADS + 1);
    tcase_add_loop_test(tc, runs_after_sleep, 1, MAX_THREADS + 1);
    tcase_add_test(tc, caller_waits_for_slow_workers);
    tcase_add_test(tc, create_free_and_bad_size);
    suite_add_tcase(s, tc);
    return tq_test_run(s);
}
