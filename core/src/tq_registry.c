/* tq_registry.c — finding, checking and initialising plugins.
 *
 * A scan runs in four passes, so that no plugin code runs before every
 * check that can be made without it has passed:
 *   1. list candidate files, directory by directory; a file name already
 *      seen in an earlier directory is "shadowed" and never opened;
 *   2. dlopen each candidate and read its entry (a const data object):
 *      size, ABI version, kind, required fields, CPU features; a refused
 *      file is dlclosed at once, which is safe because none of its code ran;
 *   3. among accepted plugins of one (kind, name), try init from the
 *      highest priority down until one succeeds; the rest are shadowed;
 *   4. a winner whose id an earlier winner already has is a duplicate.
 * Nothing that ran init is ever dlclosed, not even after deinit or a failed
 * init: a plugin may have registered types whose codec functions live in
 * its code, and the type registry has no way to forget them.
 */
/* secure_getenv is a GNU extension; this file only. */
#define _GNU_SOURCE

#include "tq_registry.h"

#include "tq_cpu.h"
#include "tq_error.h"
#include "tq_log.h"

#include <assert.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TQ_PLUGIN_LIBDIR
#define TQ_PLUGIN_LIBDIR "lib"
#endif

#if defined(__APPLE__)
static const char *const plugin_suffixes[] = {".dylib", ".so", ".bundle", NULL};
#else
static const char *const plugin_suffixes[] = {".so", NULL};
#endif

#define BUILTIN_PATH "(built-in)"

typedef struct search_dir {
    char *path;         /* absolute (realpath) when it exists */
    const char *origin; /* "given", "TQ_PLUGIN_PATH", ...      */
    int exists;
} search_dir;

typedef struct candidate {
    tq_plugin_record rec;
    void *handle;       /* dlopen handle; NULL for built-ins and refused */
    int accepted;       /* passed the checks so far, not yet decided    */
    int inited;         /* init succeeded and deinit is still due       */
} candidate;

struct tq_registry {
    const tq_host *host;
    search_dir *dirs;
    int n_dirs;
    candidate **cands;  /* pointers, so records never move */
    int n_cands;
    int *init_order;    /* indices into cands, in the order init ran */
    int n_inited;
    int scanned;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static const char *kind_str(uint32_t kind) {
    switch (kind) {
    case TQ_PLUGIN_ARCH: return "arch";
    case TQ_PLUGIN_BACKEND: return "backend";
    case TQ_PLUGIN_KV: return "kv";
    }
    return "?";
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Parses "tq-<kind>-<name>[-variant]<suffix>": returns 1 and the kind and
 * name (into name_out) when the file name has that shape. */
static int parse_file_name(const char *file, uint32_t *kind, char *name_out, size_t name_size) {
    if (strncmp(file, "tq-", 3) != 0) return 0;
    const char *p = file + 3;
    static const struct { const char *word; uint32_t kind; } kinds[] = {
        {"arch-", TQ_PLUGIN_ARCH}, {"backend-", TQ_PLUGIN_BACKEND}, {"kv-", TQ_PLUGIN_KV}};
    uint32_t k = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].word);
        if (strncmp(p, kinds[i].word, n) == 0) {
            k = kinds[i].kind;
            p += n;
            break;
        }
    }
    if (!k) return 0;
    size_t len = strlen(p);
    size_t stem = 0;
    for (const char *const *s = plugin_suffixes; *s; s++) {
        size_t sl = strlen(*s);
        if (len > sl && strcmp(p + len - sl, *s) == 0) {
            stem = len - sl;
            break;
        }
    }
    if (stem == 0) return 0;
    size_t name_len = strcspn(p, "-");
    if (name_len > stem) name_len = stem;
    if (name_len == 0) return 0;
    if (kind) *kind = k;
    if (name_out) {
        if (name_len >= name_size) name_len = name_size - 1;
        memcpy(name_out, p, name_len);
        name_out[name_len] = '\0';
    }
    return 1;
}

static void set_reason(candidate *c, tq_plugin_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void set_reason(candidate *c, tq_plugin_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->rec.reason, sizeof c->rec.reason, fmt, ap);
    va_end(ap);
    c->rec.status = st;
    c->accepted = 0;
}

/* ------------------------------------------------------------------------ */
/* Construction and search directories                                       */

tq_registry *tq_registry_new(const tq_host *host) {
    assert(host != NULL);
    tq_registry *r = calloc(1, sizeof *r);
    if (r) r->host = host;
    return r;
}

static tq_status push_dir(tq_registry *r, const char *dir, const char *origin, int required,
                          tq_error *err) {
    char resolved[PATH_MAX];
    struct stat st;
    int exists = realpath(dir, resolved) != NULL;
    int saved_errno = errno;
    if (exists && (stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode))) {
        exists = 0;
        saved_errno = ENOTDIR;
    }
    if (!exists && required)
        return tq_error_set(err, TQ_ERR_NOT_FOUND, "plugin directory '%s': %s", dir,
                            strerror(saved_errno));
    const char *path = exists ? resolved : dir;
    /* One directory reached twice (the exe-relative dir is often the install
     * dir) must not shadow its own files. */
    for (int i = 0; i < r->n_dirs; i++)
        if (strcmp(r->dirs[i].path, path) == 0) return TQ_OK;
    search_dir *grown = realloc(r->dirs, (size_t)(r->n_dirs + 1) * sizeof *grown);
    if (!grown) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    r->dirs = grown;
    search_dir *d = &r->dirs[r->n_dirs];
    d->path = dup_str(path);
    if (!d->path) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    d->origin = origin;
    d->exists = exists;
    r->n_dirs++;
    return TQ_OK;
}

tq_status tq_registry_add_dir(tq_registry *r, const char *dir, int required, tq_error *err) {
    if (!dir || !*dir)
        return tq_error_set(err, TQ_ERR_INVALID, "empty plugin directory name");
    return push_dir(r, dir, "given", required, err);
}

/* Under setuid/setgid the environment belongs to someone else: ignore it,
 * as the dynamic loader and the Vulkan loader do. */
static const char *env_plugin_path(void) {
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
    return issetugid() ? NULL : getenv("TQ_PLUGIN_PATH");
#else
    return secure_getenv("TQ_PLUGIN_PATH");
#endif
}

static void add_env_dirs(tq_registry *r) {
    const char *env = env_plugin_path();
    if (!env) return;
    char *copy = dup_str(env);
    if (!copy) return;
    char *save = NULL;
    /* strtok_r skips empty fields: an empty entry, which PATH-like variables
     * traditionally read as ".", never becomes the current directory. */
    for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        if (tok[0] != '/') {
            tq_log(TQ_LOG_WARN, "core", "TQ_PLUGIN_PATH: ignoring relative directory '%s'", tok);
            continue;
        }
        push_dir(r, tok, "TQ_PLUGIN_PATH", 0, NULL);
    }
    free(copy);
}

#if defined(__linux__)
/* Directory of the running executable into buf; 0 when unknown. */
static int exe_dir(char *buf, size_t size) {
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash) return 0;
    *slash = '\0';
    return 1;
}
#endif

/* <exe_dir>/../<libdir>/tqrun/plugins, so an installed tree can be moved. */
static void add_exe_relative_dir(tq_registry *r) {
#if defined(__linux__)
    if (TQ_PLUGIN_LIBDIR[0] == '/') return; /* libdir outside the prefix */
    char exe[PATH_MAX];
    if (!exe_dir(exe, sizeof exe)) return;
    char dir[PATH_MAX];
    int len = snprintf(dir, sizeof dir, "%s/../%s/tqrun/plugins", exe, TQ_PLUGIN_LIBDIR);
    if (len > 0 && (size_t)len < sizeof dir) push_dir(r, dir, "exe-relative", 0, NULL);
#else
    (void)r;
#endif
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* When tqrun (or a test) runs from its Meson build tree, the plugins sit in
 * <build>/plugins/<name>/, one directory each. The tree is recognised by
 * <build>/meson-private, so an installed binary never looks there. */
static void add_build_tree_dirs(tq_registry *r) {
#if defined(__linux__)
    char exe[PATH_MAX];
    if (!exe_dir(exe, sizeof exe)) return;
    char root[PATH_MAX], probe[PATH_MAX];
    if (snprintf(root, sizeof root, "%s/..", exe) >= (int)sizeof root) return;
    if (snprintf(probe, sizeof probe, "%s/meson-private", root) >= (int)sizeof probe) return;
    struct stat st;
    if (stat(probe, &st) != 0 || !S_ISDIR(st.st_mode)) return;
    if (snprintf(probe, sizeof probe, "%s/plugins", root) >= (int)sizeof probe) return;
    DIR *d = opendir(probe);
    if (!d) return;
    char *names[64];
    int n_names = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n_names < 64;) {
        if (e->d_name[0] == '.') continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", probe, e->d_name) >= (int)sizeof sub) continue;
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && (names[n_names] = dup_str(sub))) n_names++;
    }
    closedir(d);
    qsort(names, (size_t)n_names, sizeof *names, cmp_str); /* stable order */
    for (int i = 0; i < n_names; i++) {
        push_dir(r, names[i], "build tree", 0, NULL);
        free(names[i]);
    }
#else
    (void)r;
#endif
}

void tq_registry_add_default_dirs(tq_registry *r) {
    add_env_dirs(r);
    add_exe_relative_dir(r);
    add_build_tree_dirs(r);
#ifdef TQ_PLUGIN_INSTALL_DIR
    push_dir(r, TQ_PLUGIN_INSTALL_DIR, "install dir", 0, NULL);
#endif
}

/* ------------------------------------------------------------------------ */
/* Pass 1: candidates                                                        */

static candidate *new_candidate(tq_registry *r, const char *path) {
    candidate **grown = realloc(r->cands, (size_t)(r->n_cands + 1) * sizeof *grown);
    if (!grown) return NULL;
    r->cands = grown;
    candidate *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->rec.path = dup_str(path);
    if (!c->rec.path) {
        free(c);
        return NULL;
    }
    r->cands[r->n_cands++] = c;
    return c;
}


/* The candidate already listed under the same file name, or NULL. */
static const candidate *same_file_name(const tq_registry *r, const char *file) {
    for (int i = 0; i < r->n_cands; i++) {
        const char *p = r->cands[i]->rec.path;
        if (strcmp(p, BUILTIN_PATH) != 0 && strcmp(base_name(p), file) == 0) return r->cands[i];
    }
    return NULL;
}

/* Lists one directory's plugin files, sorted (readdir order is arbitrary,
 * and the scan order decides ties). */
static tq_status list_dir(tq_registry *r, const search_dir *d) {
    DIR *dir = opendir(d->path);
    if (!dir) return TQ_OK; /* vanished or unreadable: nothing to load */
    char **names = NULL;
    size_t n = 0, cap = 0;
    tq_status st = TQ_OK;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (!parse_file_name(de->d_name, NULL, NULL, 0)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *grown);
            if (!grown) { st = TQ_ERR_NOMEM; break; }
            names = grown;
        }
        if (!(names[n] = dup_str(de->d_name))) { st = TQ_ERR_NOMEM; break; }
        n++;
    }
    closedir(dir);
    if (n) qsort(names, n, sizeof *names, cmp_str);

    for (size_t i = 0; st == TQ_OK && i < n; i++) {
        char path[PATH_MAX];
        int len = snprintf(path, sizeof path, "%s/%s", d->path, names[i]);
        if (len < 0 || (size_t)len >= sizeof path) continue;
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        const candidate *first = same_file_name(r, names[i]);
        candidate *c = new_candidate(r, path);
        if (!c) { st = TQ_ERR_NOMEM; break; }
        if (first)
            set_reason(c, TQ_PLUGIN_SHADOWED, "shadowed by %s", first->rec.path);
        else
            c->accepted = 1; /* provisionally: pass 2 decides */
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Pass 2: reading the entry without running plugin code                     */

static const size_t entry_v1_size =
    offsetof(tq_plugin_entry, get_interface) + sizeof(((tq_plugin_entry *)0)->get_interface);

static int abi_compatible(uint32_t major, uint32_t minor) {
    if (major != TQ_ABI_MAJOR) return 0;
    if (major == 0) return minor == TQ_ABI_MINOR; /* unstable: exact match */
    return minor <= TQ_ABI_MINOR;
}

/* Checks everything in the entry that can be checked by reading it. On
 * success copies id, name and version; returns whether it was accepted. */
static int check_entry(tq_registry *r, candidate *c, const tq_plugin_entry *e) {
    tq_plugin_record *rec = &c->rec;
    if (e->size < entry_v1_size) {
        set_reason(c, TQ_PLUGIN_BAD_SIZE, "entry size %u is smaller than the v1 entry (%zu bytes)",
                   (unsigned)e->size, entry_v1_size);
        return 0;
    }
    rec->abi_major = e->abi_major;
    rec->abi_minor = e->abi_minor;
    if (!abi_compatible(e->abi_major, e->abi_minor)) {
        const char *rule = e->abi_major != TQ_ABI_MAJOR ? "major versions differ"
                           : TQ_ABI_MAJOR == 0        ? "0.x requires the same minor"
                                                      : "plugin needs a newer core";
        set_reason(c, TQ_PLUGIN_ABI_MISMATCH, "ABI mismatch: plugin %u.%u, core %u.%u (%s)",
                   (unsigned)e->abi_major, (unsigned)e->abi_minor, (unsigned)TQ_ABI_MAJOR,
                   (unsigned)TQ_ABI_MINOR, rule);
        return 0;
    }
    /* From here on the layout is ours and the fields can be trusted. */
    if (e->kind < TQ_PLUGIN_ARCH || e->kind > TQ_PLUGIN_KV) {
        set_reason(c, TQ_PLUGIN_BAD_ENTRY, "bad entry: unknown kind %u", (unsigned)e->kind);
        return 0;
    }
    rec->kind = e->kind;
    const char *missing = !e->id || !*e->id         ? "id"
                          : !e->name || !*e->name   ? "name"
                          : !e->init                ? "init"
                          : !e->get_interface       ? "get_interface"
                                                    : NULL;
    if (missing) {
        set_reason(c, TQ_PLUGIN_BAD_ENTRY, "bad entry: %s is missing", missing);
        return 0;
    }
    rec->id = dup_str(e->id);
    rec->name = dup_str(e->name);
    rec->version = dup_str(e->version ? e->version : "?");
    rec->priority = e->priority;
    rec->required_cpu = e->required_cpu;
    if (!rec->id || !rec->name || !rec->version) {
        set_reason(c, TQ_PLUGIN_BAD_ENTRY, "out of memory");
        return 0;
    }
    uint64_t lacking = e->required_cpu & ~r->host->cpu_features;
    if (lacking) {
        char needs[128], miss[128], have[160];
        tq_cpu_features_str(e->required_cpu, needs, sizeof needs);
        tq_cpu_features_str(lacking, miss, sizeof miss);
        tq_cpu_features_str(r->host->cpu_features, have, sizeof have);
        set_reason(c, TQ_PLUGIN_CPU_MISSING,
                   "CPU lacks required features: needs %s (missing %s), have %s", needs, miss,
                   have);
        return 0;
    }
    rec->entry = e;
    return 1;
}

static void open_candidate(tq_registry *r, candidate *c) {
    dlerror(); /* clear */
    void *h = dlopen(c->rec.path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        set_reason(c, TQ_PLUGIN_DLOPEN_FAILED, "dlopen failed: %s", why ? why : "unknown error");
        return;
    }
    const tq_plugin_entry *e = dlsym(h, TQ_PLUGIN_ENTRY_SYMBOL);
    if (!e) {
        set_reason(c, TQ_PLUGIN_NO_ENTRY, "no %s symbol: not a tqrun plugin",
                   TQ_PLUGIN_ENTRY_SYMBOL);
    } else if (check_entry(r, c, e)) {
        c->handle = h;
        return;
    }
    dlclose(h); /* safe: none of its code has run */
}

/* ------------------------------------------------------------------------ */
/* Passes 3 and 4: variants, init, duplicates                                */

static int same_plugin_name(const candidate *a, const candidate *b) {
    return a->rec.kind == b->rec.kind && strcmp(a->rec.name, b->rec.name) == 0;
}

/* Highest priority among accepted, not yet tried candidates of c's (kind,
 * name); the earliest wins a tie. */
static candidate *best_variant(tq_registry *r, const candidate *like) {
    candidate *best = NULL;
    for (int i = 0; i < r->n_cands; i++) {
        candidate *c = r->cands[i];
        if (!c->accepted || !same_plugin_name(c, like)) continue;
        if (!best || c->rec.priority > best->rec.priority) best = c;
    }
    return best;
}

static int try_init(tq_registry *r, candidate *c, int index) {
    tq_error e = {TQ_OK, ""};
    void *state = NULL;
    c->accepted = 0;
    tq_status st = c->rec.entry->init(r->host, &state, &e);
    if (st != TQ_OK) {
        e.message[sizeof e.message - 1] = '\0';
        set_reason(c, TQ_PLUGIN_INIT_FAILED, "init failed: %s",
                   e.message[0] ? e.message : tq_status_str(st));
        c->rec.entry = NULL;
        /* The handle stays open: see the comment at the top. */
        return 0;
    }
    c->rec.status = TQ_PLUGIN_OK;
    c->rec.state = state;
    c->inited = 1;
    r->init_order[r->n_inited++] = index;
    return 1;
}

static void drop_unused(candidate *c, const candidate *winner) {
    set_reason(c, TQ_PLUGIN_SHADOWED, "shadowed by %s (priority %d)", winner->rec.path,
               (int)winner->rec.priority);
    c->rec.entry = NULL;
    if (c->handle) dlclose(c->handle); /* never initialised */
    c->handle = NULL;
}

static void select_and_init(tq_registry *r) {
    for (int i = 0; i < r->n_cands; i++) {
        candidate *first = r->cands[i];
        if (!first->accepted) continue;
        /* Work through this (kind, name) group from the top priority down
         * until an init succeeds: a variant whose init finds the hardware
         * unusable (no GPU, old driver) falls back to the next one. */
        candidate *winner = NULL, *c;
        while (!winner && (c = best_variant(r, first)) != NULL) {
            int index = 0;
            while (r->cands[index] != c) index++;
            if (try_init(r, c, index)) winner = c;
        }
        if (!winner) continue;
        while ((c = best_variant(r, first)) != NULL) drop_unused(c, winner);
    }
}

/* An initialised plugin found before cands[before] with the same id. */
static const candidate *earlier_with_id(const tq_registry *r, int before, const char *id) {
    for (int i = 0; i < before; i++) {
        const candidate *c = r->cands[i];
        if (c->inited && strcmp(c->rec.id, id) == 0) return c;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

tq_status tq_registry_add_builtin(tq_registry *r, const tq_plugin_entry *entry, tq_error *err) {
    if (!entry) return tq_error_set(err, TQ_ERR_INVALID, "tq_registry_add_builtin: no entry");
    if (r->scanned)
        return tq_error_set(err, TQ_ERR_INVALID,
                            "tq_registry_add_builtin: called after tq_registry_scan");
    candidate *c = new_candidate(r, BUILTIN_PATH);
    if (!c) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    c->accepted = check_entry(r, c, entry);
    return TQ_OK;
}

tq_status tq_registry_scan(tq_registry *r, tq_error *err) {
    if (r->scanned) return tq_error_set(err, TQ_ERR_INVALID, "tq_registry_scan: called twice");
    r->scanned = 1;
    int first_file = r->n_cands;
    for (int i = 0; i < r->n_dirs; i++) {
        if (!r->dirs[i].exists) continue;
        if (list_dir(r, &r->dirs[i]) != TQ_OK)
            return tq_error_set(err, TQ_ERR_NOMEM, "out of memory while listing %s",
                                r->dirs[i].path);
    }
    for (int i = first_file; i < r->n_cands; i++)
        if (r->cands[i]->accepted) open_candidate(r, r->cands[i]);

    r->init_order = malloc((size_t)(r->n_cands ? r->n_cands : 1) * sizeof *r->init_order);
    if (!r->init_order) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory");
    select_and_init(r);

    /* Two files with different names can carry one plugin id (a renamed
     * copy left behind): the first one loaded keeps it. The duplicate did
     * run init, so it is deinitialised, but not closed. */
    for (int k = 0; k < r->n_inited; k++) {
        int index = r->init_order[k];
        candidate *c = r->cands[index];
        const candidate *other = earlier_with_id(r, index, c->rec.id);
        if (!other) continue;
        if (c->rec.entry->deinit) c->rec.entry->deinit(c->rec.state);
        c->inited = 0;
        set_reason(c, TQ_PLUGIN_DUPLICATE, "duplicate id %s, already loaded from %s", c->rec.id,
                   other->rec.path);
        c->rec.entry = NULL;
        c->rec.state = NULL;
    }

    for (int i = 0; i < r->n_cands; i++) {
        const tq_plugin_record *rec = &r->cands[i]->rec;
        if (rec->status == TQ_PLUGIN_OK)
            tq_log(TQ_LOG_DEBUG, "core", "plugin %s: loaded %s", rec->path, rec->id);
        else
            tq_log(TQ_LOG_DEBUG, "core", "plugin %s: %s", rec->path, rec->reason);
    }
    return TQ_OK;
}

int tq_registry_count(const tq_registry *r) { return r ? r->n_cands : 0; }

const tq_plugin_record *tq_registry_record(const tq_registry *r, int i) {
    return r && i >= 0 && i < r->n_cands ? &r->cands[i]->rec : NULL;
}

static const tq_plugin_record *find_loaded(const tq_registry *r, tq_plugin_kind kind,
                                           const char *name) {
    for (int i = 0; i < r->n_cands; i++) {
        const tq_plugin_record *rec = &r->cands[i]->rec;
        if (r->cands[i]->inited && rec->kind == (uint32_t)kind &&
            strcmp(rec->name, name) == 0)
            return rec;
    }
    return NULL;
}

const void *tq_registry_iface(const tq_registry *r, tq_plugin_kind kind, const char *name,
                              const char *iface_id, void **state) {
    if (!r || !name || !iface_id) return NULL;
    const tq_plugin_record *rec = find_loaded(r, kind, name);
    if (!rec) return NULL;
    const void *iface = rec->entry->get_interface(rec->state, iface_id);
    if (iface && state) *state = rec->state;
    return iface;
}

const tq_arch_iface *tq_registry_arch(const tq_registry *r, const char *arch, void **state) {
    if (!r || !arch) return NULL;
    for (int i = 0; i < r->n_cands; i++) {
        const tq_plugin_record *rec = &r->cands[i]->rec;
        if (!r->cands[i]->inited || rec->kind != TQ_PLUGIN_ARCH) continue;
        const tq_arch_iface *a = rec->entry->get_interface(rec->state, TQ_IFACE_ARCH);
        if (!TQ_HAS(a, tq_arch_iface, gguf_names) || !a->gguf_names) continue;
        for (const char *const *n = a->gguf_names; *n; n++) {
            if (strcmp(*n, arch) == 0) {
                if (state) *state = rec->state;
                return a;
            }
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* --list-plugins                                                            */

static void record_kind_name(const tq_plugin_record *rec, const char **kind, char *name,
                             size_t size) {
    uint32_t k = rec->kind;
    name[0] = '\0';
    if (rec->name) {
        snprintf(name, size, "%s", rec->name);
    } else if (!parse_file_name(base_name(rec->path), &k, name, size)) {
        snprintf(name, size, "?");
    }
    *kind = kind_str(k);
}

void tq_registry_print(const tq_registry *r, FILE *out) {
    char buf[256];
    tq_cpu_features_str(r->host->cpu_features, buf, sizeof buf);
    fprintf(out, "cpu features: %s\n", buf);
    fprintf(out, "search path:");
    for (int i = 0; i < r->n_dirs; i++)
        fprintf(out, "%s %s (%s%s)", i ? "," : "", r->dirs[i].path, r->dirs[i].origin,
                r->dirs[i].exists ? "" : ", missing");
    fprintf(out, "%s\n", r->n_dirs ? "" : " (none)");

    int w_name = 4, w_path = 4;
    for (int i = 0; i < r->n_cands; i++) {
        const char *kind;
        record_kind_name(&r->cands[i]->rec, &kind, buf, sizeof buf);
        int n = (int)strlen(buf), p = (int)strlen(r->cands[i]->rec.path);
        if (n > w_name) w_name = n;
        if (p > w_path) w_path = p;
    }
    for (int i = 0; i < r->n_cands; i++) {
        const tq_plugin_record *rec = &r->cands[i]->rec;
        const char *kind;
        record_kind_name(rec, &kind, buf, sizeof buf);
        fprintf(out, "%-8s %-*s  %-*s  ", kind, w_name, buf, w_path, rec->path);
        if (rec->status == TQ_PLUGIN_OK)
            fprintf(out, "ok   (%s %s)\n", rec->id, rec->version);
        else
            fprintf(out, "%s\n", rec->reason);
    }
}

void tq_registry_free(tq_registry *r) {
    if (!r) return;
    for (int k = r->n_inited - 1; k >= 0; k--) {
        candidate *c = r->cands[r->init_order[k]];
        if (c->inited && c->rec.entry->deinit) c->rec.entry->deinit(c->rec.state);
    }
    for (int i = 0; i < r->n_cands; i++) {
        candidate *c = r->cands[i];
        free(c->rec.path);
        free(c->rec.id);
        free(c->rec.name);
        free(c->rec.version);
        free(c);
    }
    for (int i = 0; i < r->n_dirs; i++) free(r->dirs[i].path);
    free(r->dirs);
    free(r->cands);
    free(r->init_order);
    free(r);
}
