/* tq_host.h — the process's tq_host table, the object every plugin's init
 * receives. It binds the log, the allocator, the active config, the type
 * registry and the thread pool. */
#ifndef TQ_HOST_H
#define TQ_HOST_H

#include <tqrun/tq_plugin.h>

struct tq_config;

/* The host table. Valid from tq_host_init until tq_host_shutdown. */
const tq_host *tq_host_get(void);

/* Sets up the host: `cfg` (borrowed, may be NULL) answers config_get;
 * n_threads >= 1 sizes the thread pool. Calling it again replaces config
 * and pool. [main] */
tq_status tq_host_init(const struct tq_config *cfg, int n_threads, tq_error *err);
void tq_host_shutdown(void);

#endif
