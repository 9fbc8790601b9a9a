/* cmd_bench.c — `tqrun bench`, llama-bench's measurements for tqrun.
 *
 * Same method as llama-bench, so the numbers compare: one warm-up run per
 * test, then per repetition an empty cache, the cache filled to the depth
 * (untimed), and the timed part — a prompt of N random tokens (BOS first)
 * in one batch with only the last row's logits computed (ppN), or N single
 * tokens decoded one after another (tgN). t/s = tokens / time. Reported:
 * the median over the repetitions with the standard deviation (llama-bench
 * prints the mean), and for generation the effective bandwidth: bytes of
 * weights one token reads (every matrix once; token_embd only when it is
 * also the output) times t/s. Model load time is the median time of
 * opening the session (mmap, arch plugin, tokenizer, KV cache) with the
 * file in the page cache. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_tools.h"
#include "tq_cli.h"
#include "tq_gguf.h"
#include "tq_log.h"
#include "tq_types.h"

#define MAX_LIST 16

typedef struct int_list {
    int n;
    int v[MAX_LIST];
} int_list;

typedef struct bench_opts {
    const char *models[MAX_LIST];
    int n_models;
    int_list pp, tg, depth;
    int reps;
    int synthetic_fill;  /* --fill synthetic: cache filled through KV append */
    int csv;             /* -o csv                                          */
    int warmup;
} bench_opts;

static int parse_list(const char *flag, const char *v, int min, int_list *out) {
    out->n = 0;
    while (v && *v) {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || x < min || x > (1 << 24) || out->n == MAX_LIST ||
            (*end && *end != ',')) {
            tq_cli_error("%s: '%s' is not a comma list of counts", flag, v);
            return 1;
        }
        out->v[out->n++] = (int)x;
        v = *end ? end + 1 : end;
    }
    return 0;
}

static void usage(void) {
    printf("usage: tqrun bench -m MODEL [-m MODEL ...] [options]\n\n"
           "Measures prompt processing and generation speed as llama-bench does and prints\n"
           "a table: median t/s over the repetitions +/- the standard deviation, for\n"
           "generation also the effective weight bandwidth, and the model load time.\n\n"
           "  -p, --n-prompt LIST   prompt sizes to test, comma list (default 512; 0 = none)\n"
           "  -n, --n-gen LIST      generation lengths (default 128; 0 = none)\n"
           "  -d, --n-depth LIST    tokens already in the cache (default 0)\n"
           "  -r, --repetitions N   timed runs per test (default 5)\n"
           "  --fill MODE           how the cache reaches the depth: prefill (default, like\n"
           "                        llama-bench) or synthetic (random K/V through the KV\n"
           "                        plugin's append; no prefill time)\n"
           "  --no-warmup           skip the untimed warm-up run\n"
           "  -o FMT                md (default) or csv\n"
           "  -t, --threads N       threads (default: all cores)\n"
           "  -b, --batch-size N    tokens per graph (default 2048)\n"
           "  --backend LIST  --kv NAME  -ctk T  -ctv T  --mmap  --no-mmap  --config FILE\n"
           "  --plugin-dir DIR  -v  as for tqrun generation (the load time printed includes\n"
           "                        reading the weights into 2 MB pages, unless --mmap)\n");
}

static int is_flag(const char *a, const char *x, const char *y) {
    return strcmp(a, x) == 0 || (y && strcmp(a, y) == 0);
}

/* Splits argv into bench's own flags and the runtime flags tq_cli_parse
 * understands (forwarded in `fwd`). */
static int parse(int argc, char **argv, bench_opts *o, char **fwd, int *n_fwd, int *done) {
    *done = 0;
    o->reps = 5;
    o->warmup = 1;
    o->pp.n = o->tg.n = o->depth.n = 1;
    o->pp.v[0] = 512;
    o->tg.v[0] = 128;
    o->depth.v[0] = 0;
    fwd[(*n_fwd)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(x, y) is_flag(a, x, y)
        if (IS("-h", "--help")) {
            usage();
            *done = 1;
            return 0;
        }
        int takes = IS("-m", "--model") || IS("-p", "--n-prompt") || IS("-n", "--n-gen") ||
                    IS("-d", "--n-depth") || IS("-r", "--repetitions") || IS("--fill", NULL) ||
                    IS("-o", "--output");
        if (takes && !v) {
            tq_cli_error("option %s needs a value", a);
            return 1;
        }
        if (IS("-m", "--model")) {
            if (o->n_models == MAX_LIST) {
                tq_cli_error("at most %d models", MAX_LIST);
                return 1;
            }
            o->models[o->n_models++] = v;
        } else if (IS("-p", "--n-prompt")) {
            if (parse_list(a, v, 0, &o->pp)) return 1;
        } else if (IS("-n", "--n-gen")) {
            if (parse_list(a, v, 0, &o->tg)) return 1;
        } else if (IS("-d", "--n-depth")) {
            if (parse_list(a, v, 0, &o->depth)) return 1;
        } else if (IS("-r", "--repetitions")) {
            int_list r;
            if (parse_list(a, v, 1, &r) || r.n != 1) return 1;
            o->reps = r.v[0];
        } else if (IS("--fill", NULL)) {
            if (strcmp(v, "prefill") && strcmp(v, "synthetic")) {
                tq_cli_error("--fill is prefill or synthetic, not '%s'", v);
                return 1;
            }
            o->synthetic_fill = strcmp(v, "synthetic") == 0;
        } else if (IS("-o", "--output")) {
            if (strcmp(v, "md") && strcmp(v, "csv")) {
                tq_cli_error("-o is md or csv, not '%s'", v);
                return 1;
            }
            o->csv = strcmp(v, "csv") == 0;
        } else if (IS("--no-warmup", NULL)) {
            o->warmup = 0;
            continue;
        } else {
            fwd[(*n_fwd)++] = argv[i];
            continue;
        }
#undef IS
        i++;
    }
    if (o->n_models == 0) {
        tq_cli_error("bench needs a model (-m FILE)");
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

typedef struct model_stats {
    uint64_t bytes, params;
    uint64_t bytes_per_token; /* weights one generated token reads        */
    const char *ftype;
} model_stats;

static const char *ftype_name(uint32_t ft) {
    static const char *const names[] = {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0",
        [9] = "Q5_1", [10] = "Q2_K", [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L",
        [14] = "Q4_K_S", [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K",
        [32] = "BF16"};
    if (ft < sizeof names / sizeof names[0] && names[ft]) return names[ft];
    return "?";
}

static model_stats stats_of(const tq_gguf *g) {
    model_stats m = {0};
    const tq_tensor *embd = NULL;
    int has_output = 0;
    for (int64_t i = 0; i < tq_gguf_n_tensors(g); i++) {
        const tq_tensor *t = tq_gguf_tensor(g, i);
        uint64_t rows = (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        uint64_t b = (uint64_t)tq_type_row_bytes(t->type, t->ne[0]) * rows;
        m.bytes += b;
        m.params += (uint64_t)t->ne[0] * rows;
        if (strcmp(t->name, "token_embd.weight") == 0) embd = t;
        else m.bytes_per_token += b;
        if (strcmp(t->name, "output.weight") == 0) has_output = 1;
    }
    if (embd) {
        uint64_t row = (uint64_t)tq_type_row_bytes(embd->type, embd->ne[0]);
        m.bytes_per_token += has_output ? row : row * (uint64_t)embd->ne[1];
    }
    uint32_t ft = 0;
    tq_error err;
    m.ftype = tq_gguf_get_u32(g, "general.file_type", &ft, &err) == TQ_OK ? ftype_name(ft) : "?";
    return m;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct summary {
    double median, mean, sd, min, max;
} summary;

static summary summarize(const double *x, int n) {
    summary s = {0};
    double *y = malloc(sizeof *y * (size_t)n);
    if (!y || n == 0) {
        free(y);
        return s;
    }
    memcpy(y, x, sizeof *y * (size_t)n);
    qsort(y, (size_t)n, sizeof *y, cmp_double);
    s.median = n % 2 ? y[n / 2] : 0.5 * (y[n / 2 - 1] + y[n / 2]);
    s.min = y[0];
    s.max = y[n - 1];
    for (int i = 0; i < n; i++) s.mean += y[i];
    s.mean /= n;
    for (int i = 0; i < n; i++) s.sd += (y[i] - s.mean) * (y[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0.0;
    free(y);
    return s;
}

/* Random token ids as llama-bench draws them (BOS first for prompts). */
static void random_tokens(int32_t *t, int n, int32_t n_vocab, int32_t bos, unsigned *seed) {
    for (int i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        t[i] = (int32_t)((*seed >> 8) % (unsigned)n_vocab);
    }
    if (n > 0 && bos >= 0) t[0] = bos;
}

typedef struct bench_ctx {
    tq_session *s;
    const bench_opts *o;
    int32_t n_vocab, bos;
    unsigned seed;
    int32_t *tokens;
} bench_ctx;

static tq_status fill_depth(bench_ctx *b, int depth, tq_error *err) {
    tq_session_truncate(b->s, 0);
    if (depth == 0) return TQ_OK;
    if (b->o->synthetic_fill) return tq_session_kv_fill_synthetic(b->s, depth, b->seed, err);
    random_tokens(b->tokens, depth, b->n_vocab, b->bos, &b->seed);
    int32_t last = depth - 1;
    return tq_session_decode(b->s, b->tokens, depth, 0, &last, 1, NULL, err);
}

/* One timed run: seconds, or a negative value on error. */
static double run_once(bench_ctx *b, int n_prompt, int n_gen, int depth, tq_error *err) {
    if (fill_depth(b, depth, err) != TQ_OK) return -1.0;
    double t0 = tq_cli_now();
    if (n_prompt > 0) {
        random_tokens(b->tokens, n_prompt, b->n_vocab, depth == 0 ? b->bos : -1, &b->seed);
        int32_t last = n_prompt - 1;
        if (tq_session_decode(b->s, b->tokens, n_prompt, depth, &last, 1, NULL, err) != TQ_OK)
            return -1.0;
    } else {
        int32_t tok = depth == 0 && b->bos >= 0 ? b->bos : 0;
        if (!(depth == 0 && b->bos >= 0)) random_tokens(&tok, 1, b->n_vocab, -1, &b->seed);
        for (int i = 0; i < n_gen; i++) {
            int32_t row = 0;
            if (tq_session_decode(b->s, &tok, 1, depth + i, &row, 1, NULL, err) != TQ_OK)
                return -1.0;
            random_tokens(&tok, 1, b->n_vocab, -1, &b->seed);
        }
    }
    return tq_cli_now() - t0;
}

static void print_md_header(void) {
    printf("| model | size | params | backend | threads | kv | test | t/s (median ± sd) | GB/s |\n");
    printf("| --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |\n");
}

int tq_cmd_bench(int argc, char **argv) {
    bench_opts o = {0};
    char **fwd = calloc((size_t)argc + 4, sizeof *fwd);
    int n_fwd = 0, done = 0, rc = 1;
    tq_cli cli;
    int cli_parsed = 0;
    char loads[MAX_LIST * 256] = "";
    if (!fwd) {
        tq_cli_error("out of memory");
        return 1;
    }
    if (parse(argc, argv, &o, fwd, &n_fwd, &done) || done) {
        free(fwd);
        return done ? 0 : 2;
    }
    if (tq_cli_parse(&cli, "bench", n_fwd, fwd, &done) || done) {
        rc = done ? 0 : 2;
        cli_parsed = 1;
        goto out;
    }
    cli_parsed = 1;
    if (cli.n_positional > 0) {
        tq_cli_error("unexpected argument '%s' (see tqrun bench --help)", cli.positional[0]);
        rc = 2;
        goto out;
    }
    /* Context: the largest depth + test, like llama-bench's n_ctx. */
    int max_pp = 0, max_tg = 0, max_d = 0;
    for (int i = 0; i < o.pp.n; i++) max_pp = o.pp.v[i] > max_pp ? o.pp.v[i] : max_pp;
    for (int i = 0; i < o.tg.n; i++) max_tg = o.tg.v[i] > max_tg ? o.tg.v[i] : max_tg;
    for (int i = 0; i < o.depth.n; i++) max_d = o.depth.v[i] > max_d ? o.depth.v[i] : max_d;
    int need = max_d + (max_pp > max_tg ? max_pp : max_tg);
    if (!tq_config_get(cli.cfg, "runtime", "ctx_size")) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", need > 16 ? need : 16);
        tq_config_set(cli.cfg, "runtime", "ctx_size", buf);
    }
    if (tq_cli_start(&cli)) goto out;
    if (o.csv)
        printf("model,ftype,size_bytes,params,backend,threads,kv,test,n_prompt,n_gen,n_depth,fill,"
               "ts_median,ts_sd,ts_min,ts_max,gbps,load_ms,samples_ts\n");
    else
        print_md_header();

    for (int mi = 0; mi < o.n_models; mi++) {
        tq_config_set(cli.cfg, "model", "path", o.models[mi]);
        cli.model_from_flag = 1;
        /* Load time: the median of r opens (the first one also warms the
         * page cache). */
        double *load = calloc((size_t)o.reps + 1, sizeof *load);
        double *ts = calloc((size_t)o.reps, sizeof *ts);
        int32_t *tokens = calloc((size_t)(need > 1 ? need : 1), sizeof *tokens);
        tq_session *s = NULL;
        if (!load || !ts || !tokens) {
            tq_cli_error("out of memory");
            free(load), free(ts), free(tokens);
            goto out;
        }
        int ok = 1;
        for (int r = 0; r <= o.reps && ok; r++) {
            tq_session_free(s);
            s = NULL;
            double t0 = tq_cli_now();
            ok = tq_cli_open_session(&cli, &s) == 0;
            load[r] = (tq_cli_now() - t0) * 1e3;
        }
        if (!ok) {
            free(load), free(ts), free(tokens);
            goto out;
        }
        summary ls = summarize(load + 1, o.reps);
        model_stats ms = stats_of(tq_session_gguf(s));
        const char *name = o.models[mi], *slash = strrchr(name, '/');
        if (slash) name = slash + 1;
        const char *kv = tq_config_get(cli.cfg, "runtime", "kv");
        const char *ctk = tq_config_get(cli.cfg, "runtime", "cache_type_k");
        const char *ctv = tq_config_get(cli.cfg, "runtime", "cache_type_v");
        char kvdesc[96];
        snprintf(kvdesc, sizeof kvdesc, "%s %s/%s", kv ? kv : "f16", ctk ? ctk : "f16", ctv ? ctv : "f16");
        bench_ctx b = {.s = s, .o = &o, .n_vocab = tq_session_n_vocab(s), .seed = 1234,
                       .tokens = tokens};
        b.bos = 1; /* SentencePiece models add BOS; id from the tokenizer keys */
        uint32_t bos;
        tq_error kerr;
        if (tq_gguf_get_u32(tq_session_gguf(s), "tokenizer.ggml.bos_token_id", &bos, &kerr) == TQ_OK &&
            (int32_t)bos < b.n_vocab)
            b.bos = (int32_t)bos;

        for (int di = 0; di < o.depth.n && ok; di++) {
            for (int kind = 0; kind < 2 && ok; kind++) {
                const int_list *l = kind == 0 ? &o.pp : &o.tg;
                for (int li = 0; li < l->n && ok; li++) {
                    const int n = l->v[li], depth = o.depth.v[di];
                    if (n == 0) continue;
                    const int np = kind == 0 ? n : 0, ng = kind == 0 ? 0 : n;
                    tq_error err = {0};
                    if (o.warmup) {
                        /* llama-bench: a short prompt, or one generated token */
                        int wp = np ? (n < 32 ? n : 32) : 0, wg = np ? 0 : 1;
                        if (run_once(&b, wp, wg, 0, &err) < 0) ok = 0;
                    }
                    for (int r = 0; r < o.reps && ok; r++) {
                        double sec = run_once(&b, np, ng, depth, &err);
                        if (sec < 0) ok = 0;
                        else ts[r] = (double)n / sec;
                    }
                    if (!ok) {
                        tq_cli_error("%s: %s", o.models[mi], err.message);
                        break;
                    }
                    summary st = summarize(ts, o.reps);
                    double gbps = ng ? (double)ms.bytes_per_token * st.median / 1e9 : 0.0;
                    char test[64];
                    if (depth)
                        snprintf(test, sizeof test, "%s%d @ d%d", np ? "pp" : "tg", n, depth);
                    else
                        snprintf(test, sizeof test, "%s%d", np ? "pp" : "tg", n);
                    if (o.csv) {
                        printf("%s,%s,%llu,%llu,\"%s\",%lld,%s,%s,%d,%d,%d,%s,%.3f,%.3f,%.3f,%.3f,%.3f,%.1f,",
                               name, ms.ftype, (unsigned long long)ms.bytes,
                               (unsigned long long)ms.params, tq_session_backends(s), cli.n_threads,
                               kvdesc, test, np, ng, depth,
                               o.synthetic_fill ? "synthetic" : "prefill", st.median, st.sd,
                               st.min, st.max, gbps, ls.median);
                        for (int r = 0; r < o.reps; r++) printf("%s%.3f", r ? " " : "", ts[r]);
                        printf("\n");
                    } else {
                        char gb[32] = "";
                        if (ng) snprintf(gb, sizeof gb, "%.2f", gbps);
                        printf("| %s %s %s | %.2f MiB | %.3f B | %s | %lld | %s | %s%s | %.2f ± %.2f | %s |\n",
                               tq_session_arch(s), ms.ftype, name, (double)ms.bytes / 1048576.0,
                               (double)ms.params * 1e-9, tq_session_backends(s), cli.n_threads,
                               kvdesc, test, depth && o.synthetic_fill ? " (synthetic)" : "",
                               st.median, st.sd, gb);
                    }
                    fflush(stdout);
                }
            }
        }
        if (ok) {
            size_t len = strlen(loads);
            snprintf(loads + len, sizeof loads - len,
                     "load %s: %.1f ms median of %d (min %.1f, max %.1f; session open, file in "
                     "page cache)\n", name, ls.median, o.reps, ls.min, ls.max);
        }
        tq_session_free(s);
        free(load), free(ts), free(tokens);
        if (!ok) goto out;
    }
    if (!o.csv) printf("\n%s", loads);
    rc = 0;
out:
    if (cli_parsed) tq_cli_finish(&cli);
    free(fwd);
    return rc;
}
