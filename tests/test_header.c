/* test_header.c — the public plugin header as a third party compiles it:
 * alone, C11, -Wpedantic -Werror (tests/meson.build sets the flags). It also
 * freezes the v1 entry layout and checks TQ_HAS against short structs.
 * test_header_cpp.cpp does the same as C++. */
#include <tqrun/tq_plugin.h>

#include <stdio.h>
#include <string.h>

/* The v1 entry must never change layout: the loader reads it from plugins
 * built against any 0.1 header. (LP64: x86-64, aarch64, Apple arm64.) */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(offsetof(tq_plugin_entry, id) == 16, "v1 entry layout changed");
_Static_assert(offsetof(tq_plugin_entry, required_cpu) == 48, "v1 entry layout changed");
_Static_assert(offsetof(tq_plugin_entry, get_interface) == 80, "v1 entry layout changed");
_Static_assert(sizeof(tq_plugin_entry) == 88, "v1 entry grew: append only, and bump TQ_ABI");
#endif
_Static_assert(offsetof(tq_plugin_entry, size) == 0, "size must come first");
_Static_assert(offsetof(tq_host, size) == 0, "size must come first");
_Static_assert(sizeof(tq_error) == 256, "tq_error is caller-allocated: its size is ABI");

/* A struct as an older build saw it, and its grown version: growth only
 * appends, so the old one is a prefix and TQ_HAS tells them apart. */
typedef struct v1_thing {
    uint32_t size;
    int32_t a;
} v1_thing;
typedef struct v2_thing {
    uint32_t size;
    int32_t a;
    double b;
} v2_thing;
_Static_assert(offsetof(v2_thing, a) == offsetof(v1_thing, a), "growth must only append");
_Static_assert(offsetof(v2_thing, b) >= sizeof(v1_thing), "new field past the old end");

static int failures;
#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                               \
        }                                                             \
    } while (0)

static tq_status t_init(const tq_host *host, void **state, tq_error *err) {
    (void)host, (void)err;
    *state = NULL;
    return TQ_OK;
}
static const void *t_iface(void *state, const char *id) {
    (void)state, (void)id;
    return NULL;
}

/* The macro a plugin uses, with designated initialisers as in the docs. */
TQ_PLUGIN_ENTRY = {
    .size = sizeof(tq_plugin_entry),
    .abi_major = TQ_ABI_MAJOR,
    .abi_minor = TQ_ABI_MINOR,
    .kind = TQ_PLUGIN_KV,
    .id = "org.tqrun.test.header",
    .name = "header",
    .init = t_init,
    .get_interface = t_iface,
};

int main(void) {
    /* An object written by an old build: size says v1. */
    v2_thing old = {0, 1, 0.0};
    old.size = sizeof(v1_thing);
    CHECK(TQ_HAS(&old, v2_thing, a));
    CHECK(!TQ_HAS(&old, v2_thing, b));
    old.size = sizeof(v2_thing);
    CHECK(TQ_HAS(&old, v2_thing, b));
    const v2_thing *none = NULL;
    CHECK(!TQ_HAS(none, v2_thing, a));

    /* A host table from a core that predates parallel_for. */
    tq_host host;
    memset(&host, 0, sizeof host);
    host.size = (uint32_t)offsetof(tq_host, parallel_for);
    CHECK(TQ_HAS(&host, tq_host, type_register));
    CHECK(!TQ_HAS(&host, tq_host, parallel_for));
    CHECK(!TQ_HAS(&host, tq_host, n_threads));
    /* One byte short of a field is not enough. */
    host.size = (uint32_t)(offsetof(tq_host, parallel_for) + sizeof host.parallel_for - 1);
    CHECK(!TQ_HAS(&host, tq_host, parallel_for));
    host.size = sizeof host;
    CHECK(TQ_HAS(&host, tq_host, n_threads));

    /* The entry the macro defined is complete by the loader's test. */
    CHECK(TQ_HAS(&tq_plugin_entry_v1, tq_plugin_entry, get_interface));
    CHECK(strcmp(TQ_PLUGIN_ENTRY_SYMBOL, "tq_plugin_entry_v1") == 0);

    /* Float op parameters round-trip by bit pattern. */
    tq_tensor t;
    memset(&t, 0, sizeof t);
    tq_param_set_f(&t, 3, -0.15625f);
    CHECK(tq_param_f(&t, 3) == -0.15625f);

    if (failures == 0) printf("header (C11): ok\n");
    return failures ? 1 : 0;
}
