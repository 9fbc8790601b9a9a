/* tq_cli.h — what the tqrun subcommands share: option parsing into one
 * config (ini file first, then command-line flags on top), and setting up
 * host, plugins and a session from it. */
#ifndef TQ_CLI_H
#define TQ_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "tq_config.h"
#include "tq_registry.h"
#include "tq_sampler.h"
#include "tq_session.h"

/* Everything a command needs, resolved from defaults < ini < flags. */
typedef struct tq_cli {
    const char *cmd;          /* "generate", "perplexity"                   */
    tq_config *cfg;           /* ini values with flags applied on top         */
    char *config_dir;         /* directory of --config, for relative paths   */
    const char *plugin_dir;   /* --plugin-dir                                */
    const char *prompt;       /* -p                                          */
    const char *prompt_file;  /* -f                                          */
    int escape;               /* process \n, \t, ... in -p (llama.cpp's -e)   */
    int chat;                 /* --chat: -p is a user message in the model's
                                 chat format, followed by the assistant's turn */
    const char *system_prompt;/* -sys: system message (implies --chat)       */
    int verbose;
    int list_plugins;
    int print_ids;            /* --ids                                       */
    const char *logits_out;   /* --logits-out FILE                           */
    const char *logits_rows;  /* --logits-rows p0,p3,g0,...                  */
    int ignore_eos;
    int display_prompt;
    int model_from_flag;      /* -m given: relative to the cwd, not the ini  */
    int32_t ppl_chunks;       /* --chunks N (perplexity), -1 = all           */
    const char *ppl_chunk_out;/* --chunk-ppl-out FILE: per-chunk values      */
    int32_t ppl_first_chunk;  /* --first-chunk K (perplexity)                */
    char **positional;        /* remaining arguments                          */
    int n_positional;

    /* resolved settings */
    char *model_path;
    char *plugins_path;       /* [plugins] path (resolved)                   */
    long long n_ctx, n_batch, n_threads, n_predict;
    tq_sampler_params sampling;
    tq_registry *reg;
} tq_cli;

/* Parses argv (argv[0] is the program or subcommand name) for `cmd`. On
 * --help prints the usage and returns 0 with *done set; on an error prints
 * one line and returns 1. [main] */
int tq_cli_parse(tq_cli *cli, const char *cmd, int argc, char **argv, int *done);

/* Sets up log level, host (threads, config), registry (built-ins and plugin
 * directories, scanned). Returns 0 or prints one error and returns 1. */
int tq_cli_start(tq_cli *cli);

/* Opens the session for cli->model_path. Returns 0 or prints one error. */
int tq_cli_open_session(tq_cli *cli, tq_session **out);

void tq_cli_finish(tq_cli *cli);

/* Prints "tqrun: error: <msg>" to stderr. */
void tq_cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Reads a whole file into a NUL-terminated malloc'd buffer (*len bytes);
 * on failure prints "PATH: cannot read: <reason>" and returns NULL. */
char *tq_cli_read_file(const char *path, size_t *len);

/* Monotonic seconds. */
double tq_cli_now(void);

/* Subcommands: argv[0] is the subcommand's name. Return the exit code. */
int tq_cmd_generate(int argc, char **argv);
int tq_cmd_perplexity(int argc, char **argv);

#endif
