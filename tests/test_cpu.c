/* test_cpu.c — feature detection against the kernel's own list
 * (/proc/cpuinfo), and the feature-name strings. */
#include "tq_test_util.h"

#include "tq_cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tqrun/tq_plugin.h>

/* TQ_CPU bit and the flag(s) Linux prints for it ("a+b": both needed). */
static const struct {
    uint64_t bit;
    const char *linux_flags;
} flag_map[] = {
#if defined(__x86_64__) || defined(__i386__)
    {TQ_CPU_SSE3, "pni"},         {TQ_CPU_SSSE3, "ssse3"},
    {TQ_CPU_AVX, "avx"},          {TQ_CPU_AVX2, "avx2"},
    {TQ_CPU_FMA, "fma"},          {TQ_CPU_F16C, "f16c"},
    {TQ_CPU_AVX512F, "avx512f"},  {TQ_CPU_AVX512BW, "avx512bw"},
    {TQ_CPU_AVX512VL, "avx512vl"}, {TQ_CPU_AVX512VNNI, "avx512_vnni"},
    {TQ_CPU_AVXVNNI, "avx_vnni"},
#elif defined(__aarch64__)
    {TQ_CPU_NEON, "asimd"},       {TQ_CPU_DOTPROD, "asimddp"},
    {TQ_CPU_FP16, "fphp+asimdhp"}, {TQ_CPU_I8MM, "i8mm"},
    {TQ_CPU_SVE, "sve"},
#endif
    {0, NULL}};

/* The first "flags" (x86) or "Features" (arm) line, as " a b c ". */
static char *cpuinfo_flags(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return NULL;
    char line[8192];
    char *out = NULL;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0 && strncmp(line, "Features", 8) != 0) continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        line[strcspn(line, "\n")] = '\0';
        size_t n = strlen(colon + 1) + 3;
        out = malloc(n);
        snprintf(out, n, " %s ", colon + 1);
        break;
    }
    fclose(f);
    return out;
}

static int has_flag(const char *flags, const char *name) {
    char word[64];
    snprintf(word, sizeof word, " %s ", name);
    return strstr(flags, word) != NULL;
}

static int has_all(const char *flags, const char *spec) {
    char copy[64];
    snprintf(copy, sizeof copy, "%s", spec);
    char *save = NULL;
    for (char *t = strtok_r(copy, "+", &save); t; t = strtok_r(NULL, "+", &save))
        if (!has_flag(flags, t)) return 0;
    return 1;
}

START_TEST(matches_proc_cpuinfo) {
    char *flags = cpuinfo_flags();
    if (!flags || !flag_map[0].linux_flags) {
        printf("cpu: no /proc/cpuinfo flags or unknown architecture; comparison skipped\n");
        free(flags);
        return;
    }
    if (getenv("TQ_EMULATED")) {
        /* Under qemu-user /proc/cpuinfo is the host's, not the emulated CPU's. */
        printf("cpu: running under emulation; /proc/cpuinfo comparison skipped\n");
        free(flags);
        return;
    }
    uint64_t f = tq_cpu_features();
    char names[256];
    tq_cpu_features_str(f, names, sizeof names);
    printf("cpu features: %s\n", names);
    for (int i = 0; flag_map[i].linux_flags; i++) {
        int kernel = has_all(flags, flag_map[i].linux_flags);
        int ours = (f & flag_map[i].bit) != 0;
        ck_assert_msg(kernel == ours, "%s: kernel says %d, tq_cpu_features says %d",
                      flag_map[i].linux_flags, kernel, ours);
    }
    ck_assert(!(f & TQ_CPU_IMPOSSIBLE));
    ck_assert_uint_eq(tq_cpu_features(), f); /* cached, stable */
    free(flags);
}
END_TEST

START_TEST(feature_names) {
    char buf[256];
    tq_cpu_features_str(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "none");

    /* Every bit gets a distinct, non-empty name; a set prints its members'
     * names joined by commas in bit order. */
    char all[64][32];
    for (int bit = 0; bit < 64; bit++) {
        tq_cpu_features_str(UINT64_C(1) << bit, all[bit], sizeof all[bit]);
        ck_assert_msg(all[bit][0] != '\0' && !strchr(all[bit], ','), "bit %d: '%s'", bit,
                      all[bit]);
        for (int other = 0; other < bit; other++) ck_assert_str_ne(all[bit], all[other]);
    }
    uint64_t set = TQ_CPU_AVX2 | TQ_CPU_FMA | TQ_CPU_DOTPROD;
    char expect[128];
    snprintf(expect, sizeof expect, "%s,%s,%s", all[3], all[4], all[33]);
    tq_cpu_features_str(set, buf, sizeof buf);
    ck_assert_str_eq(buf, expect);

    /* Truncation keeps the string terminated. */
    memset(buf, 'x', sizeof buf);
    tq_cpu_features_str(~UINT64_C(0), buf, 10);
    ck_assert_uint_lt(strlen(buf), 10);
    tq_cpu_features_str(~UINT64_C(0), buf, 0); /* no write at all */
}
END_TEST

int main(void) {
    Suite *s = suite_create("cpu");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, matches_proc_cpuinfo);
    tcase_add_test(tc, feature_names);
    suite_add_tcase(s, tc);
    return tq_test_run(s);
}
