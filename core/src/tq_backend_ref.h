/* tq_backend_ref.h — the built-in scalar `ref` backend's plugin entry. The
 * registry adds it like a plugin found on disk (see tq_registry_add_builtin). */
#ifndef TQ_BACKEND_REF_H
#define TQ_BACKEND_REF_H

#include <tqrun/tq_plugin.h>

#include "tq_graph.h"

extern const tq_plugin_entry tq_backend_ref_entry;

#endif
