/* fixture.c — one source for every test plugin; meson builds it many times
 * with different -D options (tests/plugins/meson.build), each producing a
 * plugin that the registry must accept or refuse for one reason.
 *
 *   FX_KIND, FX_NAME, FX_ID, FX_VARIANT   identity (strings, kind number)
 *   FX_PRIORITY, FX_CPU                   variant selection
 *   FX_MAJOR, FX_MINOR, FX_SMALL          ABI checks
 *   FX_NO_ENTRY, FX_NO_NAME               malformed plugins
 *   FX_MUST_NOT_RUN                       init and get_interface abort():
 *                                         the registry must refuse the file
 *                                         before calling into it
 *   FX_FAIL_INIT                          init fails with FX_FAIL_MESSAGE
 * A good fixture logs "init <variant>" and "deinit <variant>" through the
 * host, which the test captures. */
#include <tqrun/tq_plugin.h>

#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#ifndef FX_KIND
#define FX_KIND TQ_PLUGIN_KV
#endif
#ifndef FX_NAME
#define FX_NAME "good"
#endif
#ifndef FX_ID
#define FX_ID "org.tqrun.test." FX_NAME
#endif
#ifndef FX_VARIANT
#define FX_VARIANT FX_NAME
#endif
#ifndef FX_PRIORITY
#define FX_PRIORITY 0
#endif
#ifndef FX_CPU
#define FX_CPU 0
#endif
#ifndef FX_MAJOR
#define FX_MAJOR TQ_ABI_MAJOR
#endif
#ifndef FX_MINOR
#define FX_MINOR TQ_ABI_MINOR
#endif
#ifdef FX_SMALL
#define FX_SIZE offsetof(tq_plugin_entry, init)
#else
#define FX_SIZE sizeof(tq_plugin_entry)
#endif

#if defined(FX_MUST_NOT_RUN)

static tq_status fx_init(const tq_host *host, void **state, tq_error *err) {
    (void)host, (void)state, (void)err;
    abort();
}
static const void *fx_get_interface(void *state, const char *id) {
    (void)state, (void)id;
    abort();
}
static void fx_deinit(void *state) {
    (void)state;
    abort();
}

#else

static const tq_host *g_host;

static const char *const gguf_names[] = {"toy", "toy2", NULL};
static const tq_arch_iface arch_iface = {.size = sizeof(tq_arch_iface), .gguf_names = gguf_names};
static const tq_backend_iface backend_iface = {.size = sizeof(tq_backend_iface)};
static const tq_kv_iface kv_iface = {.size = sizeof(tq_kv_iface)};

static tq_status fx_init(const tq_host *host, void **state, tq_error *err) {
    /* A plugin checks the host functions it needs are there. */
    if (!TQ_HAS(host, tq_host, n_threads)) {
        err->code = TQ_ERR_ABI;
        strcpy(err->message, "host table too old");
        return TQ_ERR_ABI;
    }
    g_host = host;
    host->log(TQ_LOG_INFO, FX_ID, "init %s", FX_VARIANT);
#ifdef FX_FAIL_INIT
    (void)state;
    err->code = TQ_ERR_UNSUPPORTED;
    strcpy(err->message, FX_FAIL_MESSAGE);
    return TQ_ERR_UNSUPPORTED;
#else
    fx_state *s = host->alloc(sizeof *s, 64);
    if (!s || ((uintptr_t)s & 63) != 0) abort(); /* the host broke its contract */
    s->magic = FX_MAGIC;
    s->variant = FX_VARIANT;
    s->greeting = host->config_get(FX_NAME, "greeting");
    *state = s;
    return TQ_OK;
#endif
}

static void fx_deinit(void *state) {
    fx_state *s = state;
    if (!s || s->magic != FX_MAGIC) abort();
    g_host->log(TQ_LOG_INFO, FX_ID, "deinit %s", FX_VARIANT);
    s->magic = 0;
    g_host->free(s);
}

static const void *fx_get_interface(void *state, const char *id) {
    const fx_state *s = state;
    if (!s || s->magic != FX_MAGIC) abort(); /* the registry passed the wrong state */
    switch (FX_KIND) {
    case TQ_PLUGIN_ARCH: return strcmp(id, TQ_IFACE_ARCH) == 0 ? &arch_iface : NULL;
    case TQ_PLUGIN_BACKEND: return strcmp(id, TQ_IFACE_BACKEND) == 0 ? &backend_iface : NULL;
    case TQ_PLUGIN_KV: return strcmp(id, TQ_IFACE_KV) == 0 ? &kv_iface : NULL;
    }
    return NULL;
}

#endif

#ifdef FX_NO_ENTRY
/* Looks like a plugin (file name, exported data) but has no entry. */
TQ_PLUGIN_EXPORT const tq_plugin_entry tq_plugin_entry_v0 = {
#else
TQ_PLUGIN_ENTRY = {
#endif
    .size = FX_SIZE,
    .abi_major = FX_MAJOR,
    .abi_minor = FX_MINOR,
    .kind = FX_KIND,
    .id = FX_ID,
#ifdef FX_NO_NAME
    .name = NULL,
#else
    .name = FX_NAME,
#endif
    .version = "1.0-test",
    .description = "test fixture " FX_VARIANT,
    .required_cpu = FX_CPU,
    .priority = FX_PRIORITY,
    .init = fx_init,
    .deinit = fx_deinit,
    .get_interface = fx_get_interface,
};
