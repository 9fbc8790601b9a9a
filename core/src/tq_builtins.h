/* tq_builtins.h — the plugins linked into the core: the `ref` backend and the
 * f16 KV cache. They are registered like plugins found on disk so the rest
 * of the runtime never treats them specially. */
#ifndef TQ_BUILTINS_H
#define TQ_BUILTINS_H

#include <tqrun/tq_plugin.h>

struct tq_registry;

/* Adds every built-in plugin to `reg`. [main] */
tq_status tq_builtins_register(struct tq_registry *reg, tq_error *err);

#endif
