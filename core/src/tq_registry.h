/* tq_registry.h — plugin discovery and loading.
 *
 * Search order (first found wins for the same file name): --plugin-dir, the
 * ini's [plugins] path, TQ_PLUGIN_PATH (secure_getenv, ':'-separated),
 * <exe>/../<libdir>/tqrun/plugins, the install dir. Never the current
 * directory. Candidate files are named tq-<kind>-<name>[-variant].so.
 *
 * For each candidate the registry dlopens the file (RTLD_NOW|RTLD_LOCAL),
 * looks up tq_plugin_entry_v1 and checks size, ABI version and required CPU
 * features *before* any plugin code runs; a refused file is dlclosed and the
 * reason kept. Among accepted plugins with the same kind and name, the
 * highest priority is initialised; the others are "shadowed". Initialised
 * plugins are never dlclosed (their code may still be referenced). */
#ifndef TQ_REGISTRY_H
#define TQ_REGISTRY_H

#include <stdio.h>
#include <tqrun/tq_plugin.h>

typedef enum tq_plugin_status {
    TQ_PLUGIN_OK = 0,
    TQ_PLUGIN_DLOPEN_FAILED,
    TQ_PLUGIN_NO_ENTRY,
    TQ_PLUGIN_BAD_SIZE,
    TQ_PLUGIN_ABI_MISMATCH,
    TQ_PLUGIN_CPU_MISSING,
    TQ_PLUGIN_SHADOWED,
    TQ_PLUGIN_INIT_FAILED,
    TQ_PLUGIN_BAD_ENTRY,     /* missing name/id/functions, unknown kind  */
    TQ_PLUGIN_DUPLICATE      /* same id already loaded from another file */
} tq_plugin_status;

/* One candidate file (or built-in plugin) and what became of it. */
typedef struct tq_plugin_record {
    char *path;                 /* "(built-in)" for built-ins              */
    tq_plugin_status status;
    char reason[256];           /* why refused; "" when ok                 */
    uint32_t kind;              /* tq_plugin_kind, 0 if unknown            */
    char *id, *name, *version;  /* copies; NULL if the entry was unreadable */
    int32_t priority;
    uint32_t abi_major, abi_minor;
    uint64_t required_cpu;
    const tq_plugin_entry *entry; /* valid while status == OK              */
    void *state;                /* from init, while status == OK           */
} tq_plugin_record;

typedef struct tq_registry tq_registry;

/* An empty registry bound to the host table (which must outlive it). */
tq_registry *tq_registry_new(const tq_host *host);

/* Adds a plugin linked into the executable (the ref backend, the f16 KV
 * cache) as if it had been found in a file. */
tq_status tq_registry_add_builtin(tq_registry *r, const tq_plugin_entry *entry, tq_error *err);

/* Adds a directory to the search path, in order. Nonexistent directories
 * are an error only when `required` (e.g. --plugin-dir given by the user). */
tq_status tq_registry_add_dir(tq_registry *r, const char *dir, int required, tq_error *err);
/* Adds the default directories after the user's: TQ_PLUGIN_PATH,
 * exe-relative, install dir. */
void tq_registry_add_default_dirs(tq_registry *r);

/* Scans all directories, checks and initialises plugins. Never fails on a
 * bad plugin (it is recorded); fails only on out-of-memory. [main] */
tq_status tq_registry_scan(tq_registry *r, tq_error *err);

int tq_registry_count(const tq_registry *r);
const tq_plugin_record *tq_registry_record(const tq_registry *r, int i);

/* The loaded plugin of `kind` named `name` and its interface `iface_id`;
 * NULL if none. *state receives the plugin state for interface calls. */
const void *tq_registry_iface(const tq_registry *r, tq_plugin_kind kind, const char *name,
                              const char *iface_id, void **state);
/* The arch plugin whose gguf_names contains `arch`, or NULL. */
const tq_arch_iface *tq_registry_arch(const tq_registry *r, const char *arch, void **state);

/* Prints CPU features, the search directories and every record, one per
 * line, in the format of `tqrun --list-plugins`. */
void tq_registry_print(const tq_registry *r, FILE *out);

/* Deinitialises every loaded plugin (reverse order) and frees. */
void tq_registry_free(tq_registry *r);

#endif
