/* membw.c — the machine's read bandwidth, for the decode "fraction of memory
 * bandwidth" column of bench/RESULTS.md.
 *
 * N threads each stream their share of a buffer much larger than the caches
 * (default 1 GiB) with 32-byte loads summed into a few accumulators — the
 * access pattern of a decode GEMV over the weights — and the best and median
 * of R passes are printed in GB/s (1e9 bytes/s). Built by hand, not by meson:
 *
 *   cc -O2 -mavx2 -pthread bench/membw.c -o /tmp/membw && /tmp/membw 2 1024 9
 *
 * Arguments: threads (2), MiB (1024), passes (9). */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const __m256i *p;
    size_t n;          /* 32-byte vectors */
    pthread_barrier_t *start;
    long long sink;
} job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *reader(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->start);
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 4 <= j->n; i += 4) {
        a = _mm256_add_epi64(a, _mm256_load_si256(j->p + i));
        b = _mm256_add_epi64(b, _mm256_load_si256(j->p + i + 1));
        c = _mm256_add_epi64(c, _mm256_load_si256(j->p + i + 2));
        d = _mm256_add_epi64(d, _mm256_load_si256(j->p + i + 3));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    long long out[4];
    memcpy(out, &a, sizeof out);
    j->sink = out[0] + out[1] + out[2] + out[3];
    return NULL;
}

static int cmp_double(const void *x, const void *y) {
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    const int nth = argc > 1 ? atoi(argv[1]) : 2;
    const size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    const int passes = argc > 3 ? atoi(argv[3]) : 9;
    if (nth < 1 || nth > 256 || mib < 64 || passes < 1 || passes > 1000) {
        fprintf(stderr, "usage: membw [threads 1..256] [MiB >= 64] [passes 1..1000]\n");
        return 1;
    }
    const size_t bytes = mib << 20;
    __m256i *buf = aligned_alloc(64, bytes);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    memset(buf, 1, bytes); /* touch every page so no pass measures faults */
    const size_t nvec = bytes / sizeof(__m256i), per = nvec / (size_t)nth / 4 * 4;
    double *gbs = calloc((size_t)passes, sizeof *gbs);
    long long total = 0;
    for (int p = 0; p < passes; p++) {
        pthread_t th[256];
        job jobs[256];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)nth + 1);
        for (int t = 0; t < nth; t++) {
            jobs[t] = (job){buf + (size_t)t * per, per, &start, 0};
            pthread_create(&th[t], NULL, reader, &jobs[t]);
        }
        pthread_barrier_wait(&start);
        const double t0 = now();
        for (int t = 0; t < nth; t++) pthread_join(th[t], NULL);
        const double dt = now() - t0;
        pthread_barrier_destroy(&start);
        for (int t = 0; t < nth; t++) total += jobs[t].sink;
        gbs[p] = (double)(per * (size_t)nth * sizeof(__m256i)) / dt / 1e9;
    }
    qsort(gbs, (size_t)passes, sizeof *gbs, cmp_double);
    printf("read bandwidth, %d threads, %zu MiB, %d passes: median %.2f GB/s, best %.2f GB/s (checksum %lld)\n",
           nth, mib, passes, gbs[passes / 2], gbs[passes - 1], total & 0xff);
    free(gbs);
    free(buf);
    return 0;
}
