/* tq_builtins.c — registering the plugins linked into the core. */
#include "tq_builtins.h"

#include "tq_backend_ref.h"
#include "tq_kv_f16.h"
#include "tq_registry.h"

tq_status tq_builtins_register(struct tq_registry *reg, tq_error *err) {
    static const tq_plugin_entry *const builtins[] = {&tq_backend_ref_entry, &tq_kv_f16_entry};
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        tq_status st = tq_registry_add_builtin(reg, builtins[i], err);
        if (st != TQ_OK) return st;
    }
    return TQ_OK;
}
