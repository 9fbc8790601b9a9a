/* cli_options.c — command-line parsing shared by tqrun's commands.
 *
 * Flags follow llama.cpp's names. Settings that also exist in the ini file
 * are written into the config object, on top of what --config loaded, so
 * "flags override the ini" holds by construction and every value is
 * validated in one place (tq_cli_start). */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tq_builtins.h"
#include "tq_cli.h"
#include "tq_host.h"
#include "tq_log.h"

void tq_cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tqrun: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

char *tq_cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tq_cli_error("%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *grown = realloc(buf, cap * 2 + 1);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    const char *problem = !buf ? "out of memory" : ferror(f) ? "read error" : NULL;
    fclose(f);
    if (problem) {
        free(buf);
        tq_cli_error("%s: cannot read: %s", path, problem);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

double tq_cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char usage_common[] =
    "model and runtime (these override the ini file):\n"
    "  -m, --model FILE          GGUF model ([model] path)\n"
    "  -c, --ctx-size N          context size in tokens; 0 = the model's, at most 4096\n"
    "                            ([runtime] ctx_size)\n"
    "  -b, --batch-size N        tokens per evaluation graph (default 2048)\n"
    "  -t, --threads N           worker threads (default: all cores)\n"
    "  --backend LIST            backend fallback chain, e.g. 'x86, ref' ([runtime] backend);\n"
    "                            unavailable ones are skipped, ref is always last;\n"
    "                            default: every loaded backend plugin, then ref\n"
    "  --kv NAME                 KV-cache plugin (default: the built-in f16)\n"
    "  -ctk, --cache-type-k T    K format (f16, f32, or a KV plugin's format)\n"
    "  -ctv, --cache-type-v T    V format\n"
    "  --mmap, --no-mmap         use the weights in place in the file mapping, or read\n"
    "                            them into 2 MB pages first ([model] mmap; default\n"
    "                            --no-mmap: decoding streams them ~10% faster, for\n"
    "                            ~0.1 s per GB at load; models over half the RAM stay\n"
    "                            mapped)\n"
    "  --config FILE             ini file; its relative paths are relative to it\n"
    "  --plugin-dir DIR          search DIR for plugins first\n"
    "  -v, --verbose             log loading, plugin and fallback decisions\n"
    "  -h, --help                this text\n";

static void print_usage(const char *cmd) {
    if (strcmp(cmd, "perplexity") == 0) {
        printf("usage: tqrun perplexity -m MODEL -f TEXT [-c N] [options]\n\n"
               "Scores TEXT as llama.cpp's llama-perplexity does: the text is tokenized once\n"
               "(with BOS), cut into chunks of N tokens (default 512), each chunk evaluated\n"
               "from an empty cache with its first token replaced by BOS, and the second half\n"
               "of each chunk scored. Prints the running estimate per chunk and the final PPL.\n\n"
               "  -f, --file FILE           text to score\n"
               "  --chunks K                score only the first K chunks (default: all)\n"
               "  --first-chunk K           start at chunk K (0-based; default 0)\n"
               "  --chunk-ppl-out FILE      write 'chunk nll_sum n_scored' lines to FILE\n"
               "  --kl-save FILE            save the scored rows' log-probabilities (f32)\n"
               "  --kl-base FILE            KL divergence against a --kl-save file\n\n%s",
               usage_common);
        return;
    }
    printf("usage: tqrun [-m MODEL] [-p PROMPT | -f FILE] [-n N] [options]\n"
           "       tqrun -m MODEL --chat [-sys SYSTEM] -p MESSAGE [options]\n"
           "       tqrun perplexity -m MODEL -f TEXT [-c N] [options]\n"
           "       tqrun inspect FILE\n"
           "       tqrun quantize [--allow-requantize] IN.gguf OUT.gguf TYPE [THREADS]\n"
           "       tqrun bench -m MODEL [-p 512] [-n 128] [-d 0] [-r 5] [options]\n"
           "       tqrun --list-plugins [--plugin-dir DIR] [--config FILE]\n\n"
           "Generates text from a prompt, streaming it to stdout. Without --config, the\n"
           "defaults apply; config/tqrun.ini runs the bundled stories260K model.\n\n"
           "generation:\n"
           "  -p, --prompt TEXT         prompt (escapes like \\n are processed; see --no-escape)\n"
           "  -f, --file FILE           read the prompt from FILE\n"
           "  -n, --n-predict N         tokens to generate (default 128; -1 = until the context\n"
           "                            is full or an end-of-generation token)\n"
           "  --temp T                  temperature; 0 = greedy (default 0.8)\n"
           "  --top-k N                 top-k filter, 0 = off (default 40)\n"
           "  --top-p P                 top-p filter, 1 = off (default 0.95)\n"
           "  --min-p P                 min-p filter, 0 = off (default 0.05)\n"
           "  --repeat-penalty F        penalty for recent tokens, 1 = off (default 1.0)\n"
           "  --repeat-last-n N         tokens the penalty looks at (default 64)\n"
           "  -s, --seed N              sampling seed (default 4294967295 = random)\n"
           "  --ignore-eos              keep generating past end-of-generation tokens\n"
           "  --no-display-prompt       do not echo the prompt\n"
           "  --no-escape               take -p and -sys literally\n\n"
           "chat (models with a chat format, e.g. Phi-3):\n"
           "  --chat                    send -p (or -f) as the user's message in the model's chat\n"
           "                            format and generate the assistant's reply; special tokens\n"
           "                            in the formatted text are parsed, and generation stops at\n"
           "                            the end of the turn (or after -n tokens)\n"
           "  -sys, --system-prompt T   system message before the user's (implies --chat)\n\n"
           "scripting (for comparisons against reference outputs):\n"
           "  --ids                     print 'prompt_ids: ...' and 'gen_ids: ...' lines to\n"
           "                            stdout instead of text\n"
           "  --logits-out FILE         write logits rows as raw little-endian float32, n_vocab\n"
           "                            values per row, in the order --logits-rows lists them\n"
           "  --logits-rows LIST        comma list: pI = after prompt position I (negative I\n"
           "                            counts from the end), gK = after feeding generated\n"
           "                            token K; default: every prompt row\n\n%s"
           "  --list-plugins            list CPU features and every plugin candidate with its\n"
           "                            status, then exit\n"
           "  --version                 print the version\n",
           usage_common);
}

/* Value of a flag that takes one: argv[*i + 1], or an error. */
static const char *take(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        tq_cli_error("option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int is(const char *a, const char *s1, const char *s2) {
    return strcmp(a, s1) == 0 || (s2 && strcmp(a, s2) == 0);
}

/* Flags that map to ini keys: {short, long, section, key}. */
static const struct {
    const char *a, *b, *section, *key;
} cfg_flags[] = {
    {"-m", "--model", "model", "path"},
    {"-c", "--ctx-size", "runtime", "ctx_size"},
    {"-b", "--batch-size", "runtime", "batch_size"},
    {"-t", "--threads", "runtime", "threads"},
    {"--backend", NULL, "runtime", "backend"},
    {"--kv", NULL, "runtime", "kv"},
    {"-ctk", "--cache-type-k", "runtime", "cache_type_k"},
    {"-ctv", "--cache-type-v", "runtime", "cache_type_v"},
    {"-n", "--n-predict", "sampling", "n_predict"},
    {"--temp", NULL, "sampling", "temp"},
    {"--top-k", NULL, "sampling", "top_k"},
    {"--top-p", NULL, "sampling", "top_p"},
    {"--min-p", NULL, "sampling", "min_p"},
    {"--repeat-penalty", NULL, "sampling", "repeat_penalty"},
    {"--repeat-last-n", NULL, "sampling", "repeat_last_n"},
    {"-s", "--seed", "sampling", "seed"},
};

int tq_cli_parse(tq_cli *cli, const char *cmd, int argc, char **argv, int *done) {
    memset(cli, 0, sizeof *cli);
    cli->cmd = cmd;
    cli->escape = 1;
    cli->display_prompt = 1;
    cli->ppl_chunks = -1;
    *done = 0;
    cli->cfg = tq_config_new();
    cli->positional = calloc((size_t)argc + 1, sizeof *cli->positional);
    if (!cli->cfg || !cli->positional) {
        tq_cli_error("out of memory");
        return 1;
    }
    /* --config first, so flags given before it still override it. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            const char *path = take(argc, argv, &i);
            if (!path) return 1;
            tq_error err = {0};
            if (tq_config_load(cli->cfg, path, &err) != TQ_OK) {
                tq_cli_error("%s", err.message);
                return 1;
            }
            char *tmp = strdup(path);
            cli->config_dir = tmp ? strdup(dirname(tmp)) : NULL;
            free(tmp);
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t f;
        for (f = 0; f < sizeof cfg_flags / sizeof cfg_flags[0]; f++)
            if (is(a, cfg_flags[f].a, cfg_flags[f].b)) break;
        if (f < sizeof cfg_flags / sizeof cfg_flags[0]) {
            const char *v = take(argc, argv, &i);
            if (!v) return 1;
            tq_config_set(cli->cfg, cfg_flags[f].section, cfg_flags[f].key, v);
            if (strcmp(cfg_flags[f].key, "path") == 0) cli->model_from_flag = 1;
            continue;
        }
        if (is(a, "-h", "--help")) {
            print_usage(cmd);
            *done = 1;
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("tqrun 0.1.0 (plugin ABI %d.%d)\n", TQ_ABI_MAJOR, TQ_ABI_MINOR);
            *done = 1;
            return 0;
        } else if (strcmp(a, "--config") == 0) {
            i++; /* loaded above */
        } else if (is(a, "-p", "--prompt")) {
            if (!(cli->prompt = take(argc, argv, &i))) return 1;
        } else if (is(a, "-f", "--file")) {
            if (!(cli->prompt_file = take(argc, argv, &i))) return 1;
        } else if (is(a, "-sys", "--system-prompt")) {
            if (!(cli->system_prompt = take(argc, argv, &i))) return 1;
            cli->chat = 1;
        } else if (strcmp(a, "--chat") == 0) {
            cli->chat = 1;
        } else if (strcmp(a, "--plugin-dir") == 0) {
            if (!(cli->plugin_dir = take(argc, argv, &i))) return 1;
        } else if (strcmp(a, "--mmap") == 0 || strcmp(a, "--no-mmap") == 0) {
            tq_config_set(cli->cfg, "model", "mmap", strcmp(a, "--mmap") == 0 ? "true" : "false");
        } else if (strcmp(a, "--logits-out") == 0) {
            if (!(cli->logits_out = take(argc, argv, &i))) return 1;
        } else if (strcmp(a, "--logits-rows") == 0) {
            if (!(cli->logits_rows = take(argc, argv, &i))) return 1;
        } else if (strcmp(a, "--chunk-ppl-out") == 0) {
            if (!(cli->ppl_chunk_out = take(argc, argv, &i))) return 1;
        } else if (strcmp(a, "--chunks") == 0 || strcmp(a, "--first-chunk") == 0) {
            const char *v = take(argc, argv, &i);
            if (!v) return 1;
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || *end || n < 0 || n > 1000000) {
                tq_cli_error("%s: '%s' is not a valid count", a, v);
                return 1;
            }
            if (strcmp(a, "--chunks") == 0) cli->ppl_chunks = (int32_t)n;
            else cli->ppl_first_chunk = (int32_t)n;
        } else if (strcmp(a, "--ids") == 0) {
            cli->print_ids = 1;
        } else if (strcmp(a, "--ignore-eos") == 0) {
            cli->ignore_eos = 1;
        } else if (strcmp(a, "--no-display-prompt") == 0) {
            cli->display_prompt = 0;
        } else if (strcmp(a, "--no-escape") == 0) {
            cli->escape = 0;
        } else if (is(a, "-e", "--escape")) {
            cli->escape = 1;
        } else if (is(a, "-v", "--verbose")) {
            cli->verbose = 1;
        } else if (strcmp(a, "--list-plugins") == 0) {
            cli->list_plugins = 1;
        } else if (a[0] == '-' && a[1] != 0) {
            tq_cli_error("unknown option '%s' (see tqrun %s--help)", a,
                         strcmp(cmd, "generate") ? "perplexity " : "");
            return 1;
        } else {
            cli->positional[cli->n_positional++] = argv[i];
        }
    }
    return 0;
}

/* Path from the ini, made relative to the ini's directory; from a flag (or
 * absolute), as given. */
static char *resolve(const tq_cli *cli, const char *path, int from_ini) {
    if (!path) return NULL;
    if (!from_ini || path[0] == '/' || !cli->config_dir) return strdup(path);
    size_t n = strlen(cli->config_dir) + strlen(path) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", cli->config_dir, path);
    return p;
}

static int get_int(tq_cli *cli, const char *section, const char *key, long long min,
                   long long max, long long *out) {
    tq_error err = {0};
    if (tq_config_get_int(cli->cfg, section, key, min, max, out, &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        return 1;
    }
    return 0;
}

static int get_float(tq_cli *cli, const char *section, const char *key, double min, double max,
                     float *out) {
    tq_error err = {0};
    double d = *out;
    if (tq_config_get_float(cli->cfg, section, key, min, max, &d, &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        return 1;
    }
    *out = (float)d;
    return 0;
}

int tq_cli_start(tq_cli *cli) {
    tq_sampler_params sp = tq_sampler_defaults();
    cli->n_ctx = 0;
    cli->n_batch = 2048;
    cli->n_threads = 0;
    cli->n_predict = 128;
    long long top_k = sp.top_k, last_n = sp.repeat_last_n, seed = (long long)sp.seed;
    if (get_int(cli, "runtime", "ctx_size", 0, 1 << 24, &cli->n_ctx) ||
        get_int(cli, "runtime", "batch_size", 1, 1 << 20, &cli->n_batch) ||
        get_int(cli, "runtime", "threads", 0, 1024, &cli->n_threads) ||
        get_int(cli, "sampling", "n_predict", -1, 1 << 24, &cli->n_predict) ||
        get_int(cli, "sampling", "top_k", 0, 1 << 24, &top_k) ||
        get_int(cli, "sampling", "repeat_last_n", 0, 1 << 24, &last_n) ||
        get_int(cli, "sampling", "seed", 0, (long long)UINT32_MAX, &seed) ||
        get_float(cli, "sampling", "temp", 0, 100, &sp.temp) ||
        get_float(cli, "sampling", "top_p", 0, 1, &sp.top_p) ||
        get_float(cli, "sampling", "min_p", 0, 1, &sp.min_p) ||
        get_float(cli, "sampling", "repeat_penalty", 0, 100, &sp.repeat_penalty))
        return 1;
    sp.top_k = (int32_t)top_k;
    sp.repeat_last_n = (int32_t)last_n;
    sp.seed = (uint64_t)seed;
    if (seed == (long long)UINT32_MAX) sp.seed = (uint64_t)time(NULL) ^ (uint64_t)clock();
    cli->sampling = sp;
    if (cli->n_threads == 0) {
        long n = 1;
#ifdef _SC_NPROCESSORS_ONLN
        n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
        cli->n_threads = n > 0 ? n : 1;
    }

    tq_log_set_level(cli->verbose ? TQ_LOG_INFO : TQ_LOG_WARN);
    tq_error err = {0};
    if (tq_host_init(cli->cfg, (int)cli->n_threads, &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        return 1;
    }
    cli->reg = tq_registry_new(tq_host_get());
    if (!cli->reg || tq_builtins_register(cli->reg, &err) != TQ_OK) {
        tq_cli_error("%s", cli->reg ? err.message : "out of memory");
        return 1;
    }
    if (cli->plugin_dir && tq_registry_add_dir(cli->reg, cli->plugin_dir, 1, &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        return 1;
    }
    const char *ini_plugins = tq_config_get(cli->cfg, "plugins", "path");
    if (ini_plugins) {
        cli->plugins_path = resolve(cli, ini_plugins, 1);
        if (tq_registry_add_dir(cli->reg, cli->plugins_path, 1, &err) != TQ_OK) {
            tq_cli_error("%s", err.message);
            return 1;
        }
    }
    tq_registry_add_default_dirs(cli->reg);
    if (tq_registry_scan(cli->reg, &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        return 1;
    }
    return 0;
}

int tq_cli_open_session(tq_cli *cli, tq_session **out) {
    const char *model = tq_config_get(cli->cfg, "model", "path");
    if (!model) {
        tq_cli_error("no model given (use -m FILE or [model] path in --config)");
        return 1;
    }
    free(cli->model_path);
    cli->model_path = resolve(cli, model, !cli->model_from_flag);
    int use_mmap = 0;
    tq_error err = {0};
    if (tq_config_get_bool(cli->cfg, "model", "mmap", &use_mmap, &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        return 1;
    }
    tq_session_params p = {
        .model_path = cli->model_path,
        .mmap = use_mmap,
        .n_ctx = (int32_t)cli->n_ctx,
        .n_batch = (int32_t)cli->n_batch,
        .backends = tq_config_get(cli->cfg, "runtime", "backend"),
        .kv = tq_config_get(cli->cfg, "runtime", "kv"),
        .cache_type_k = tq_config_get(cli->cfg, "runtime", "cache_type_k"),
        .cache_type_v = tq_config_get(cli->cfg, "runtime", "cache_type_v"),
    };
    double t0 = tq_cli_now();
    if (tq_session_open(cli->reg, &p, out, &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        return 1;
    }
    const tq_model_info *mi = tq_session_info(*out);
    tq_log(TQ_LOG_INFO, "core",
           "loaded %s (%s, %d layers, %d heads / %d KV, head_dim %d, vocab %d) in %.0f ms; "
           "context %d; backends %s",
           cli->model_path, tq_session_arch(*out), mi->n_layer, mi->n_head, mi->n_head_kv,
           mi->head_dim, mi->n_vocab, (tq_cli_now() - t0) * 1e3, tq_session_n_ctx(*out),
           tq_session_backends(*out));
    return 0;
}

void tq_cli_finish(tq_cli *cli) {
    tq_registry_free(cli->reg);
    tq_host_shutdown();
    tq_config_free(cli->cfg);
    free(cli->config_dir);
    free(cli->model_path);
    free(cli->plugins_path);
    free(cli->positional);
}
