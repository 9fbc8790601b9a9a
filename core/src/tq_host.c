/* tq_host.c — the tq_host table handed to every plugin.
 *
 * One table per process: plugins keep the pointer they got in init until
 * their deinit, so the table itself never moves; tq_host_init only changes
 * what its functions reach (the config, the pool). */
#include "tq_host.h"

#include "tq_config.h"
#include "tq_cpu.h"
#include "tq_error.h"
#include "tq_log.h"
#include "tq_threadpool.h"
#include "tq_types.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static const tq_config *g_config; /* borrowed from the caller of tq_host_init */
static tq_threadpool *g_pool;     /* NULL: parallel_for runs on the caller   */

static void *host_alloc(size_t bytes, size_t align) {
    /* posix_memalign wants a power of two that is a multiple of
     * sizeof(void *); plugins may ask for less (align 1 for bytes). */
    if (align == 0 || (align & (align - 1)) != 0) return NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    void *p = NULL;
    if (posix_memalign(&p, align, bytes ? bytes : 1) != 0) return NULL;
    return p;
}

static void host_free(void *ptr) { free(ptr); }

static const char *host_config_get(const char *plugin_name, const char *key) {
    if (!g_config || !plugin_name || !key) return NULL;
    char section[128];
    int n = snprintf(section, sizeof section, "plugin.%s", plugin_name);
    if (n < 0 || (size_t)n >= sizeof section) return NULL;
    return tq_config_get(g_config, section, key);
}

static void host_parallel_for(tq_task_fn fn, void *user) {
    if (g_pool)
        tq_threadpool_run(g_pool, fn, user);
    else
        fn(user, 0, 1);
}

static tq_host g_host = {
    .size = sizeof(tq_host),
    .abi_major = TQ_ABI_MAJOR,
    .abi_minor = TQ_ABI_MINOR,
    .cpu_features = 0, /* filled on first use: detection is not constant */
    .log = tq_log,
    .alloc = host_alloc,
    .free = host_free,
    .config_get = host_config_get,
    .type_info = tq_type_get,
    .type_find = tq_type_by_name,
    .type_register = tq_type_register,
    .parallel_for = host_parallel_for,
    .n_threads = 1,
};

/* cpu_features cannot be a static initialiser; fill it exactly once so
 * that concurrent tq_host_get calls never write the table. */
static pthread_once_t g_features_once = PTHREAD_ONCE_INIT;

static void fill_features(void) { g_host.cpu_features = tq_cpu_features(); }

const tq_host *tq_host_get(void) {
    pthread_once(&g_features_once, fill_features);
    return &g_host;
}

tq_status tq_host_init(const tq_config *cfg, int n_threads, tq_error *err) {
    if (n_threads < 1)
        return tq_error_set(err, TQ_ERR_INVALID, "thread count %d: must be at least 1", n_threads);
    /* Create the new pool before dropping the old one, so a failure leaves
     * the host as it was. */
    tq_threadpool *pool = tq_threadpool_create(n_threads);
    if (!pool)
        return tq_error_set(err, TQ_ERR_NOMEM, "cannot start a pool of %d threads", n_threads);
    tq_threadpool_free(g_pool);
    g_pool = pool;
    g_config = cfg;
    pthread_once(&g_features_once, fill_features);
    g_host.n_threads = n_threads;
    return TQ_OK;
}

void tq_host_shutdown(void) {
    tq_threadpool_free(g_pool);
    g_pool = NULL;
    g_config = NULL;
    g_host.n_threads = 1;
}
