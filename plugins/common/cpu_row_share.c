/* cpu_row_share.c — the rows of a decode matmul shared out to the pool's
 * threads so that each thread's reads form one stream.
 *
 * Decoding reads every weight once, so its speed is how well the threads
 * stream memory. Each thread owns one contiguous region of rows (its equal
 * share) and takes it front to back in chunks; when its region is empty it
 * takes chunks from the back of the region with the most rows left. So a
 * thread reads one run of memory while no one is late, the prefetch ahead of
 * its last row falls on its own next chunk, and a thread that a VM or
 * another process holds up for a while still does not make the others wait
 * for its whole share.
 *
 * Until session 12 the chunks came round-robin from one shared counter
 * (thread 0 took chunks 0, 2, 4, ..., thread 1 chunks 1, 3, 5, ...), so every
 * chunk started a new stream and the prefetch past its end fetched the other
 * thread's rows: on the Zen 4 VM with 2 threads, contiguous shares decoded
 * TinyLlama-1.1B Q4_0 about 10% faster (4 alternating rounds, 44.8 -> 49.0
 * t/s round medians). */
#include <stdatomic.h>

#include "cpu_backend.h"

/* A region's state, one 64-bit word: next row to take from the front in the
 * high half, end of the rows left in the low half. */
#define SPAN(front, back) ((long long)(front) << 32 | (long long)(back))
#define SPAN_FRONT(s) ((int64_t)((unsigned long long)(s) >> 32))
#define SPAN_BACK(s) ((int64_t)((s) & 0xffffffffLL))

/* Each region on its own cache line: the owner updates it once per chunk. */
typedef struct {
    _Alignas(64) atomic_llong span;
} region;

size_t cpu_row_share_bytes(int nth) { return (size_t)(nth > 0 ? nth : 1) * sizeof(region); }

void cpu_row_share_init(cpu_row_share *s, void *mem, int64_t n, int nth, int64_t align, int64_t chunk) {
    s->regions = mem;
    s->nth = nth > 0 ? nth : 1;
    s->chunk = chunk;
    region *r = mem;
    for (int i = 0; i < s->nth; i++) {
        int64_t lo, hi;
        cpu_split(n, i, s->nth, align, &lo, &hi);
        atomic_init(&r[i].span, SPAN(lo, hi));
    }
}

/* Takes the next chunk of region i from the front (own) or from the back
 * (thief). A chunk from the back keeps to the owner's chunk grid, which
 * starts at the region's start: aligned rows on both sides. */
static int take(region *r, int64_t chunk, int own, int64_t *lo, int64_t *hi) {
    long long s = atomic_load_explicit(&r->span, memory_order_relaxed);
    long long ns;
    do {
        const int64_t front = SPAN_FRONT(s), back = SPAN_BACK(s);
        if (front >= back) return 0;
        if (own) {
            *lo = front;
            *hi = back - front > chunk ? front + chunk : back;
            ns = SPAN(*hi, back);
        } else {
            *lo = front + (back - front - 1) / chunk * chunk;
            *hi = back;
            ns = SPAN(front, *lo);
        }
    } while (!atomic_compare_exchange_weak_explicit(&r->span, &s, ns, memory_order_relaxed, memory_order_relaxed));
    return 1;
}

int cpu_row_share_next(const cpu_row_share *s, int ith, int64_t *lo, int64_t *hi) {
    region *r = s->regions;
    if (ith < s->nth && take(&r[ith], s->chunk, 1, lo, hi)) return 1;
    for (;;) {
        int best = -1;
        int64_t most = 0;
        for (int i = 0; i < s->nth; i++) {
            const long long sp = atomic_load_explicit(&r[i].span, memory_order_relaxed);
            if (SPAN_BACK(sp) - SPAN_FRONT(sp) > most) most = SPAN_BACK(sp) - SPAN_FRONT(sp), best = i;
        }
        if (best < 0) return 0;
        if (take(&r[best], s->chunk, 0, lo, hi)) return 1;
        /* Its owner took the rest meanwhile: look again. */
    }
}
