/* kv_attn_bench.c — one layer's decode attention at a given depth, through
 * the plugin interfaces the runtime uses: the f16 baseline is the built-in
 * f16 KV cache's `view` attended by the x86 backend's ATTENTION op (what
 * `tqrun` runs with f16 KV), the compressed one is the turbo plugin's own
 * `attention` on its codes (what `tqrun --kv turbo` runs). Both caches are
 * filled through `append` with the same random K/V, and one more token is
 * appended at position `depth` before each timed call, as a decode step does.
 *
 * The KV of one layer at 4K fits the L3 cache, while in a real model the
 * weights of the other layers flush it between two attentions of a layer;
 * so the bench keeps enough layers that one pass over them is at least
 * twice the L3 size (64 MiB, at least 8 layers) and times one call per
 * layer in turn. Reported per depth: median (over repetitions) of the mean
 * wall time per layer, and of the process CPU time per layer (all threads;
 * on a shared machine it shows the work when cores are taken), f16 and
 * turbo calls interleaved so both see the same machine load.
 *
 *   kv_attn_bench [-t THREADS] [-d 4096,8192,...] [-r REPS] [-ctk tq4] [-ctv tq4]
 *                 [--heads 32] [--kv-heads 8] [--head-dim 128] [--no-f16]
 *                 [--layers N] [--turbo KEY=VALUE]... [--plugin-dir DIR]...
 *
 * Plugin directories default to the backend-x86 and kv-turbo folders of the
 * build tree this executable sits in (build/bench/../plugins/...). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tq_builtins.h"
#include "tq_config.h"
#include "tq_cpu.h"
#include "tq_host.h"
#include "tq_registry.h"

#define MAX_DEPTHS 16
#define L3_FLUSH_BYTES ((size_t)64 << 20)

typedef struct opts {
    int threads, reps, n_depth, heads, kv_heads, head_dim, no_f16, layers;
    int depth[MAX_DEPTHS];
    const char *ctk, *ctv;
    const char *dirs[8];
    int n_dirs;
    const char *set[8]; /* [plugin.turbo] KEY=VALUE */
    int n_set;
} opts;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads): on a shared machine it
 * shows the work done, which the wall time does not when cores are taken. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int die(const char *what, const tq_error *err) {
    fprintf(stderr, "kv_attn_bench: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

/* xorshift64 values uniform in [-sqrt(3), sqrt(3)) (unit variance), the
 * generator tq_session_kv_fill_synthetic uses. */
static void fill_random(float *x, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        x[i] = ((float)(*s >> 40) * (1.0f / 16777216.0f) - 0.5f) * 3.4641016f;
    }
}

/* A cache of `layers` layers holding positions 0..depth (depth + 1 tokens). */
static tq_kv_cache *make_cache(const tq_kv_iface *kv, void *state, const opts *o, int layers,
                               int depth, const char *kt, const char *vt) {
    tq_kv_params p = {sizeof p, layers, o->kv_heads, o->head_dim, depth + 1, kt, vt};
    tq_kv_cache *c = NULL;
    tq_error err = {0};
    if (kv->create(state, &p, &c, &err) != TQ_OK) die("create", &err);
    const int chunk = 256;
    const size_t row = (size_t)o->kv_heads * (size_t)o->head_dim;
    float *k = malloc(sizeof(float) * row * chunk * 2), *v = k + row * chunk;
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (int pos = 0; pos < depth + 1; pos += chunk) {
        const int m = depth + 1 - pos < chunk ? depth + 1 - pos : chunk;
        for (int l = 0; l < layers; l++) {
            fill_random(k, row * (size_t)m * 2, &s);
            memmove(v, k + row * (size_t)m, sizeof(float) * row * (size_t)m);
            if (kv->append(c, l, pos, m, k, v, &err) != TQ_OK) die("append", &err);
        }
    }
    free(k);
    return c;
}

/* The f16 path: ATTENTION on views of the f16 cache, run by the backend. */
typedef struct f16_run {
    const tq_backend_iface *be;
    tq_device *dev;
    const tq_kv_iface *kv;
    tq_kv_cache *c;
    tq_tensor q, k, v, dst;
} f16_run;

static void f16_layer(f16_run *f, int layer, int depth, float scale) {
    tq_error err = {0};
    if (f->kv->view(f->c, layer, 0, depth + 1, &f->k) != TQ_OK ||
        f->kv->view(f->c, layer, 1, depth + 1, &f->v) != TQ_OK)
        die("view", NULL);
    f->dst.src[0] = &f->q;
    f->dst.src[1] = &f->k;
    f->dst.src[2] = &f->v;
    f->dst.op_params[0] = layer;
    f->dst.op_params[1] = depth;
    f->dst.op_params[2] = depth + 1;
    tq_param_set_f(&f->dst, 3, scale);
    if (!f->be->supports(f->dev, &f->dst)) die("the x86 backend refuses this attention node", NULL);
    tq_tensor *nodes[1] = {&f->dst};
    tq_graph g = {sizeof g, 1, nodes};
    if (f->be->graph_compute(f->dev, &g, 0, 1, &err) != TQ_OK) die("graph_compute", &err);
}

static void usage(void) {
    printf("usage: kv_attn_bench [-t N] [-d D1,D2,...] [-r REPS] [-ctk T] [-ctv T]\n"
           "                     [--heads N] [--kv-heads N] [--head-dim N] [--no-f16]\n"
           "                     [--layers N (default: enough to exceed the L3 twice)]\n"
           "                     [--turbo KEY=VALUE ([plugin.turbo] setting, e.g. window=0)]...\n"
           "                     [--plugin-dir DIR]...\n");
}

static void parse(int argc, char **argv, opts *o) {
    *o = (opts){.threads = 2, .reps = 5, .heads = 32, .kv_heads = 8, .head_dim = 128,
                .ctk = "tq4", .ctv = "tq4"};
    o->n_depth = 4;
    o->depth[0] = 4096, o->depth[1] = 8192, o->depth[2] = 16384, o->depth[3] = 32768;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            exit(0);
        }
        if (!strcmp(a, "--no-f16")) {
            o->no_f16 = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "kv_attn_bench: %s needs a value\n", a);
            exit(2);
        }
        i++;
        if (!strcmp(a, "-t")) o->threads = atoi(v);
        else if (!strcmp(a, "-r")) o->reps = atoi(v);
        else if (!strcmp(a, "-ctk")) o->ctk = v;
        else if (!strcmp(a, "-ctv")) o->ctv = v;
        else if (!strcmp(a, "--heads")) o->heads = atoi(v);
        else if (!strcmp(a, "--kv-heads")) o->kv_heads = atoi(v);
        else if (!strcmp(a, "--head-dim")) o->head_dim = atoi(v);
        else if (!strcmp(a, "--layers")) o->layers = atoi(v);
        else if (!strcmp(a, "--plugin-dir") && o->n_dirs < 8) o->dirs[o->n_dirs++] = v;
        else if (!strcmp(a, "--turbo") && o->n_set < 8 && strchr(v, '=')) o->set[o->n_set++] = v;
        else if (!strcmp(a, "-d")) {
            o->n_depth = 0;
            for (const char *p = v; *p && o->n_depth < MAX_DEPTHS;) {
                char *end;
                o->depth[o->n_depth++] = (int)strtol(p, &end, 10);
                p = *end == ',' ? end + 1 : end + strlen(end);
            }
        } else {
            fprintf(stderr, "kv_attn_bench: unknown option %s\n", a);
            exit(2);
        }
    }
    if (o->threads < 1 || o->reps < 1 || o->heads < 1 || o->kv_heads < 1 ||
        o->heads % o->kv_heads || o->head_dim < 16) {
        fprintf(stderr, "kv_attn_bench: bad arguments\n");
        exit(2);
    }
    for (int i = 0; i < o->n_depth; i++)
        if (o->depth[i] < 1) {
            fprintf(stderr, "kv_attn_bench: bad depth\n");
            exit(2);
        }
}

/* Plugin directories of the build tree this executable belongs to. */
static void default_dirs(opts *o, const char *argv0, char *buf, size_t size) {
    const char *slash = strrchr(argv0, '/');
    const int n = slash ? (int)(slash - argv0) : 1;
    snprintf(buf, size, "%.*s/../plugins/backend-x86", slash ? n : 1, slash ? argv0 : ".");
    o->dirs[o->n_dirs++] = buf;
    snprintf(buf + size / 2, size / 2, "%.*s/../plugins/kv-turbo", slash ? n : 1,
             slash ? argv0 : ".");
    o->dirs[o->n_dirs++] = buf + size / 2;
}

int main(int argc, char **argv) {
    opts o;
    parse(argc, argv, &o);
    char dirbuf[2 * 4096];
    if (o.n_dirs == 0) default_dirs(&o, argv[0], dirbuf, sizeof dirbuf);
    tq_error err = {0};
    tq_config *cfg = tq_config_new();
    for (int i = 0; i < o.n_set; i++) {
        char key[64];
        const char *eq = strchr(o.set[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - o.set[i]), o.set[i]);
        if (tq_config_set(cfg, "plugin.turbo", key, eq + 1) != TQ_OK) die(o.set[i], NULL);
    }
    if (tq_host_init(cfg, o.threads, &err) != TQ_OK) die("host", &err);
    const tq_host *host = tq_host_get();
    tq_registry *reg = tq_registry_new(host);
    if (tq_builtins_register(reg, &err) != TQ_OK) die("builtins", &err);
    for (int i = 0; i < o.n_dirs; i++)
        if (tq_registry_add_dir(reg, o.dirs[i], 1, &err) != TQ_OK) die(o.dirs[i], &err);
    if (tq_registry_scan(reg, &err) != TQ_OK) die("scan", &err);
    void *f16_state = NULL, *turbo_state = NULL, *x86_state = NULL;
    const tq_kv_iface *f16kv = tq_registry_iface(reg, TQ_PLUGIN_KV, "f16", TQ_IFACE_KV, &f16_state);
    const tq_kv_iface *tkv = tq_registry_iface(reg, TQ_PLUGIN_KV, "turbo", TQ_IFACE_KV, &turbo_state);
    const tq_backend_iface *be =
        tq_registry_iface(reg, TQ_PLUGIN_BACKEND, "x86", TQ_IFACE_BACKEND, &x86_state);
    if (!tkv || (!o.no_f16 && (!f16kv || !be))) {
        tq_registry_print(reg, stderr);
        die("the turbo KV plugin, the f16 KV cache and the x86 backend are needed", NULL);
    }
    f16_run f = {0};
    if (!o.no_f16 && be->device_open(x86_state, 0, &f.dev, &err) != TQ_OK) die("x86 device", &err);
    f.be = be;
    f.kv = f16kv;

    const int d = o.head_dim, H = o.kv_heads, NH = o.heads;
    const float scale = 1.0f / sqrtf((float)d);
    float *q = malloc(sizeof(float) * (size_t)NH * d), *out = malloc(sizeof(float) * (size_t)NH * d);
    uint64_t s = 12345;
    fill_random(q, (size_t)NH * d, &s);
    f.q = (tq_tensor){.size = sizeof(tq_tensor), .type = TQ_TYPE_F32, .ne = {d, NH, 1, 1},
                      .nb = {4, 4 * (size_t)d, 4 * (size_t)d * NH, 4 * (size_t)d * NH}, .data = q};
    f.dst = (tq_tensor){.size = sizeof(tq_tensor), .type = TQ_TYPE_F32, .ne = {(int64_t)d * NH, 1, 1, 1},
                        .nb = {4, 4 * (size_t)d * NH, 4 * (size_t)d * NH, 4 * (size_t)d * NH},
                        .data = out, .op = TQ_OP_ATTENTION, .name = "attn"};

    char feats[256];
    tq_cpu_features_str(host->cpu_features, feats, sizeof feats);
    printf("# kv_attn_bench: %d heads / %d KV heads, head_dim %d, %d threads, %d reps; "
           "turbo K %s V %s; cpu %s\n",
           NH, H, d, o.threads, o.reps, o.ctk, o.ctv, feats);
    printf("| depth | layers | f16 ms/layer | %s/%s ms/layer | speedup | f16 CPU ms/layer | %s/%s CPU "
           "ms/layer | CPU ratio |\n",
           o.ctk, o.ctv, o.ctk, o.ctv);
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int di = 0; di < o.n_depth; di++) {
        const int depth = o.depth[di];
        const size_t tq_layer = (size_t)H * (size_t)(depth + 1) * (size_t)d; /* ~1 byte/value */
        int layers = (int)((L3_FLUSH_BYTES + tq_layer - 1) / tq_layer);
        if (layers < 8) layers = 8;
        if (o.layers > 0) layers = o.layers;
        tq_kv_cache *ct = make_cache(tkv, turbo_state, &o, layers, depth, o.ctk, o.ctv);
        f.c = o.no_f16 ? NULL : make_cache(f16kv, f16_state, &o, layers, depth, "f16", "f16");
        double *tf = calloc((size_t)o.reps * 4, sizeof *tf), *tt = tf + o.reps;
        double *cf = tt + o.reps, *ctt = cf + o.reps;
        for (int r = -1; r < o.reps; r++) { /* r = -1: warm-up */
            if (f.c) {
                const double t0 = now(), c0 = cpu_now();
                for (int l = 0; l < layers; l++) f16_layer(&f, l, depth, scale);
                if (r >= 0) tf[r] = (now() - t0) / layers, cf[r] = (cpu_now() - c0) / layers;
            }
            const double t0 = now(), c0 = cpu_now();
            for (int l = 0; l < layers; l++)
                if (tkv->attention(ct, l, q, NH, 1, depth, scale, out, &err) != TQ_OK)
                    die("turbo attention", &err);
            if (r >= 0) tt[r] = (now() - t0) / layers, ctt[r] = (cpu_now() - c0) / layers;
        }
        const double mt = median(tt, o.reps), mct = median(ctt, o.reps);
        if (f.c) {
            const double mf = median(tf, o.reps), mcf = median(cf, o.reps);
            printf("| %d | %d | %.3f | %.3f | %.2f | %.3f | %.3f | %.2f |\n", depth, layers, mf * 1e3,
                   mt * 1e3, mf / mt, mcf * 1e3, mct * 1e3, mcf / mct);
        } else {
            printf("| %d | %d | - | %.3f | - | - | %.3f | - |\n", depth, layers, mt * 1e3, mct * 1e3);
        }
        fflush(stdout);
        free(tf);
        tkv->destroy(ct);
        if (f.c) f16kv->destroy(f.c);
    }
    if (f.dev) be->device_close(f.dev);
    free(q), free(out);
    return 0;
}
