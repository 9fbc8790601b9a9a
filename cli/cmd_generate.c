/* cmd_generate.c — `tqrun [-m MODEL] -p PROMPT -n N`: tokenize, evaluate the
 * prompt as one batch, then sample and stream tokens until -n, an
 * end-of-generation token or a full context. The scripting flags (--ids,
 * --logits-out) expose ids and logits rows so reference comparisons need no
 * parsing of prose. With --chat the prompt is first rendered as a
 * conversation ([system,] user, then the assistant's turn) by the arch
 * plugin's chat format. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_cli.h"
#include "tq_tokenizer.h"

/* llama.cpp's process_escapes: \n \t \r \\ \" \' \a \b \f \v \xHH. */
static void process_escapes(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        r++;
        switch (*r) {
        case 'n': *w++ = '\n'; break;
        case 't': *w++ = '\t'; break;
        case 'r': *w++ = '\r'; break;
        case 'a': *w++ = '\a'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'v': *w++ = '\v'; break;
        case '\\': *w++ = '\\'; break;
        case '"': *w++ = '"'; break;
        case '\'': *w++ = '\''; break;
        case 'x': {
            int v = 0, n = 0;
            while (n < 2 && ((r[1] >= '0' && r[1] <= '9') || ((r[1] | 32) >= 'a' && (r[1] | 32) <= 'f'))) {
                r++;
                v = v * 16 + (*r <= '9' ? *r - '0' : (*r | 32) - 'a' + 10);
                n++;
            }
            if (n) *w++ = (char)v;
            else { *w++ = '\\'; *w++ = 'x'; }
            break;
        }
        default: *w++ = '\\'; *w++ = *r;
        }
    }
    *w = 0;
}

/* One requested logits row: prompt row `index` (is_gen 0) or the row after
 * feeding generated token `index` (is_gen 1). */
typedef struct row_req {
    int is_gen;
    int32_t index;
    float *data; /* filled when computed */
} row_req;

static int parse_rows(const char *spec, int32_t n_prompt, row_req **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!spec) { /* default: every prompt row */
        *out = calloc((size_t)n_prompt, sizeof **out);
        if (!*out) return 1;
        for (int32_t i = 0; i < n_prompt; i++) (*out)[i].index = i;
        *n_out = n_prompt;
        return 0;
    }
    int cap = 1;
    for (const char *p = spec; *p; p++) cap += *p == ',';
    row_req *r = calloc((size_t)cap, sizeof *r);
    if (!r) return 1;
    int n = 0;
    const char *p = spec;
    while (*p) {
        char *end;
        if (*p != 'p' && *p != 'g') goto bad;
        r[n].is_gen = *p == 'g';
        errno = 0;
        long v = strtol(p + 1, &end, 10);
        if (errno || end == p + 1 || (*end && *end != ',')) goto bad;
        if (!r[n].is_gen && v < 0) v += n_prompt;
        if (v < 0 || (!r[n].is_gen && v >= n_prompt) || v > 1 << 24) {
            tq_cli_error("--logits-rows: row '%.*s' is outside the prompt (%d tokens)",
                         (int)(end - p), p, n_prompt);
            free(r);
            return 1;
        }
        r[n++].index = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    *out = r;
    *n_out = n;
    return 0;
bad:
    tq_cli_error("--logits-rows: cannot parse '%s' (expected e.g. p0,p-1,g3)", spec);
    free(r);
    return 1;
}

static int write_rows(const char *path, const row_req *rows, int n_rows, int32_t n_vocab) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) return 1;
    snprintf(tmp, plen + 8, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f != NULL;
    for (int i = 0; ok && i < n_rows; i++) {
        if (!rows[i].data) {
            tq_cli_error("--logits-rows: %c%d was never computed (generation stopped early)",
                         rows[i].is_gen ? 'g' : 'p', rows[i].index);
            ok = 0;
            break;
        }
        ok = fwrite(rows[i].data, sizeof(float), (size_t)n_vocab, f) == (size_t)n_vocab;
    }
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        remove(tmp);
        tq_cli_error("%s: cannot write logits", path);
    }
    free(tmp);
    return ok ? 0 : 1;
}

/* Replaces *prompt (length *plen) by the conversation [system,] user =
 * *prompt in the model's chat format, with the assistant's turn opened.
 * Returns 0, or prints why not and returns 1. */
static int format_chat(const tq_cli *cli, const tq_session *s, char **prompt, size_t *plen) {
    tq_chat_message msgs[2];
    int32_t n = 0;
    char *sys = NULL;
    if (cli->system_prompt) {
        if (!(sys = strdup(cli->system_prompt))) return 1;
        if (cli->escape) process_escapes(sys);
        msgs[n++] = (tq_chat_message){sizeof(tq_chat_message), "system", sys};
    }
    msgs[n++] = (tq_chat_message){sizeof(tq_chat_message), "user", *prompt};
    int64_t need = tq_session_format_chat(s, msgs, n, 1, NULL, 0);
    if (need < 0) {
        /* Tell "no chat format" from "no system role in it". */
        if (sys && tq_session_format_chat(s, msgs + 1, 1, 1, NULL, 0) >= 0)
            tq_cli_error("%s: the model's chat format has no system role (drop -sys)",
                         cli->model_path);
        else
            tq_cli_error("%s: the model (architecture '%s') has no chat format; run without "
                         "--chat/-sys", cli->model_path, tq_session_arch(s));
        free(sys);
        return 1;
    }
    char *text = malloc((size_t)need + 1);
    if (!text || tq_session_format_chat(s, msgs, n, 1, text, need + 1) != need) {
        tq_cli_error("formatting the chat prompt failed");
        free(text);
        free(sys);
        return 1;
    }
    free(sys);
    free(*prompt);
    *prompt = text;
    *plen = (size_t)need;
    return 0;
}

static void print_piece(const tq_tokenizer *tok, int32_t id) {
    char buf[256];
    int32_t n = tq_token_to_piece(tok, id, 0, buf, sizeof buf);
    if (n > 0 && n <= (int32_t)sizeof buf) fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
}

int tq_cmd_generate(int argc, char **argv) {
    tq_cli cli;
    int done = 0, rc = 1;
    tq_session *s = NULL;
    tq_sampler *smp = NULL;
    char *prompt = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    row_req *rows = NULL;
    int n_rows = 0;
    int32_t *gen = NULL;
    if (tq_cli_parse(&cli, "generate", argc, argv, &done) || done) {
        rc = done ? 0 : 1;
        goto out_cfg;
    }
    if (cli.n_positional > 0) {
        tq_cli_error("unexpected argument '%s' (see tqrun --help)", cli.positional[0]);
        goto out_cfg;
    }
    if (tq_cli_start(&cli)) goto out;
    if (cli.list_plugins) {
        tq_registry_print(cli.reg, stdout);
        rc = 0;
        goto out;
    }
    size_t plen = 0;
    if (cli.prompt_file) {
        if (!(prompt = tq_cli_read_file(cli.prompt_file, &plen))) goto out;
    } else {
        prompt = strdup(cli.prompt ? cli.prompt : "");
        if (!prompt) goto out;
        if (cli.escape) process_escapes(prompt);
        plen = strlen(prompt);
    }
    if (tq_cli_open_session(&cli, &s)) goto out;
    if (cli.chat && format_chat(&cli, s, &prompt, &plen)) goto out;
    const tq_tokenizer *tok = tq_session_tokenizer(s);
    const int32_t n_vocab = tq_session_n_vocab(s), n_ctx = tq_session_n_ctx(s);

    int32_t n_prompt = tq_tokenize(tok, prompt, plen, 1, 1, NULL, 0);
    if (n_prompt <= 0) {
        tq_cli_error("the prompt is empty and the model adds no BOS token: nothing to evaluate");
        goto out;
    }
    if (n_prompt >= n_ctx) {
        tq_cli_error("the prompt is %d tokens, which does not fit the context of %d tokens "
                     "(use -c to raise it)", n_prompt, n_ctx);
        goto out;
    }
    ids = malloc(sizeof *ids * (size_t)n_prompt);
    if (!ids) goto out;
    tq_tokenize(tok, prompt, plen, 1, 1, ids, n_prompt);

    if (parse_rows(cli.logits_out ? cli.logits_rows : "", n_prompt, &rows, &n_rows)) goto out;
    /* Prompt rows needed: those requested, plus the last one to sample from. */
    int32_t *out_rows = malloc(sizeof *out_rows * (size_t)(n_prompt));
    logits = malloc(sizeof *logits * (size_t)n_vocab * (size_t)n_prompt);
    if (!out_rows || !logits) { free(out_rows); goto out; }
    char *want = calloc((size_t)n_prompt, 1);
    if (!want) { free(out_rows); goto out; }
    for (int i = 0; i < n_rows; i++)
        if (!rows[i].is_gen) want[rows[i].index] = 1;
    want[n_prompt - 1] = 1;
    int32_t n_out = 0;
    for (int32_t i = 0; i < n_prompt; i++)
        if (want[i]) out_rows[n_out++] = i;
    free(want);

    if (cli.print_ids) {
        printf("prompt_ids:");
        for (int32_t i = 0; i < n_prompt; i++) printf(" %d", ids[i]);
        printf("\n");
    } else if (cli.display_prompt) {
        fwrite(prompt, 1, plen, stdout);
        fflush(stdout);
    }

    tq_error err = {0};
    double t0 = tq_cli_now();
    tq_status st = tq_session_decode(s, ids, n_prompt, 0, out_rows, n_out, logits, &err);
    double t_prompt = tq_cli_now() - t0;
    if (st != TQ_OK) {
        free(out_rows);
        tq_cli_error("%s", err.message);
        goto out;
    }
    /* Keep the requested prompt rows; logits[k] is the row of out_rows[k]. */
    for (int i = 0; i < n_rows; i++) {
        if (rows[i].is_gen) continue;
        for (int32_t k = 0; k < n_out; k++)
            if (out_rows[k] == rows[i].index) {
                rows[i].data = malloc(sizeof(float) * (size_t)n_vocab);
                if (rows[i].data)
                    memcpy(rows[i].data, logits + (size_t)k * (size_t)n_vocab, sizeof(float) * (size_t)n_vocab);
            }
    }
    float *last = logits + (size_t)(n_out - 1) * (size_t)n_vocab;
    free(out_rows);

    smp = tq_sampler_new(&cli.sampling, n_vocab);
    if (!smp) goto out;
    for (int32_t i = 0; i < n_prompt; i++) tq_sampler_accept(smp, ids[i]);
    int64_t max_gen = cli.n_predict < 0 ? n_ctx - n_prompt : cli.n_predict;
    gen = malloc(sizeof *gen * (size_t)(max_gen > 0 ? max_gen : 1));
    if (!gen) goto out;
    int32_t n_gen = 0, pos = n_prompt;
    double t1 = tq_cli_now();
    int stopped_by_ctx = 0;
    while (n_gen < max_gen) {
        int32_t id = tq_sampler_sample(smp, last);
        tq_sampler_accept(smp, id);
        gen[n_gen++] = id;
        int eog = tq_session_is_eog(s, id);
        if (!cli.print_ids && !eog) print_piece(tok, id);
        /* Feed the token when more will be generated or its row is wanted. */
        int need_row = 0;
        for (int i = 0; i < n_rows; i++) need_row |= rows[i].is_gen && rows[i].index == n_gen - 1;
        if ((eog && !cli.ignore_eos && !need_row) || (n_gen == max_gen && !need_row)) break;
        if (pos >= n_ctx) {
            stopped_by_ctx = 1;
            break;
        }
        st = tq_session_decode(s, &id, 1, pos, NULL, 1, last, &err);
        if (st != TQ_OK) {
            tq_cli_error("%s", err.message);
            goto out;
        }
        pos++;
        for (int i = 0; i < n_rows; i++)
            if (rows[i].is_gen && rows[i].index == n_gen - 1 && !rows[i].data) {
                rows[i].data = malloc(sizeof(float) * (size_t)n_vocab);
                if (rows[i].data) memcpy(rows[i].data, last, sizeof(float) * (size_t)n_vocab);
            }
        if (eog && !cli.ignore_eos) break;
    }
    double t_gen = tq_cli_now() - t1;
    if (cli.print_ids) {
        printf("gen_ids:");
        for (int32_t i = 0; i < n_gen; i++) printf(" %d", gen[i]);
        printf("\n");
    } else {
        printf("\n");
    }
    fflush(stdout);
    if (stopped_by_ctx)
        fprintf(stderr, "tqrun: stopped: the context of %d tokens is full\n", n_ctx);
    uint64_t kvb = tq_session_kv_bytes(s);
    fprintf(stderr,
            "tqrun: prompt %d tokens in %.1f ms (%.1f t/s); generated %d tokens in %.1f ms "
            "(%.1f t/s); KV cache %llu bytes (%llu per token)\n",
            n_prompt, t_prompt * 1e3, n_prompt / (t_prompt > 0 ? t_prompt : 1e-9), n_gen,
            t_gen * 1e3, n_gen > 1 ? (n_gen - 1) / (t_gen > 0 ? t_gen : 1e-9) : 0.0,
            (unsigned long long)kvb, (unsigned long long)(pos ? kvb / (uint64_t)pos : 0));
    if (cli.logits_out && write_rows(cli.logits_out, rows, n_rows, n_vocab)) goto out;
    rc = 0;
out:
    for (int i = 0; i < n_rows; i++) free(rows[i].data);
    free(rows);
    free(gen);
    free(logits);
    free(ids);
    free(prompt);
    tq_sampler_free(smp);
    tq_session_free(s);
out_cfg:
    tq_cli_finish(&cli);
    return rc;
}
