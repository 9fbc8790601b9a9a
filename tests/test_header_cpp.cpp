// test_header_cpp.cpp — the public plugin header compiled as C++ (C++11,
// -Wpedantic -Werror): a C++ plugin must be able to include it and define
// its entry with TQ_PLUGIN_ENTRY.
#include <tqrun/tq_plugin.h>

#include <cstdio>
#include <cstring>

static_assert(offsetof(tq_plugin_entry, size) == 0, "size must come first");
#if UINTPTR_MAX == UINT64_MAX
static_assert(sizeof(tq_plugin_entry) == 88, "C++ sees the same v1 layout as C");
static_assert(offsetof(tq_plugin_entry, get_interface) == 80, "C++ sees the same layout");
#endif

namespace {

int failures = 0;

void check(bool ok, const char *what, int line) {
    if (!ok) {
        std::fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, line, what);
        failures++;
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

} // namespace

static tq_status cpp_init(const tq_host *, void **state, tq_error *) {
    *state = nullptr;
    return TQ_OK;
}
static const void *cpp_iface(void *, const char *) { return nullptr; }

// Without designated initialisers (C++20) the fields go in order.
TQ_PLUGIN_ENTRY = {
    sizeof(tq_plugin_entry), TQ_ABI_MAJOR, TQ_ABI_MINOR, TQ_PLUGIN_BACKEND,
    "org.tqrun.test.header.cpp", "headercpp", "1", "C++ header test",
    0, 0, cpp_init, nullptr, cpp_iface,
};

int main() {
    tq_host host;
    std::memset(&host, 0, sizeof host);
    host.size = static_cast<uint32_t>(offsetof(tq_host, parallel_for));
    CHECK(TQ_HAS(&host, tq_host, type_register));
    CHECK(!TQ_HAS(&host, tq_host, parallel_for));
    host.size = sizeof host;
    CHECK(TQ_HAS(&host, tq_host, n_threads));
    const tq_host *none = nullptr;
    CHECK(!TQ_HAS(none, tq_host, log));
    CHECK(TQ_HAS(&tq_plugin_entry_v1, tq_plugin_entry, get_interface));
    if (failures == 0) std::printf("header (C++): ok\n");
    return failures ? 1 : 0;
}
