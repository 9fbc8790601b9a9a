/* cmd_perplexity.c — `tqrun perplexity`, reproducing llama.cpp's
 * llama-perplexity exactly so numbers compare: tokenize the whole file once
 * (BOS first), cut floor(n_tokens / n_ctx) chunks, evaluate each from an
 * empty cache with its first token replaced by BOS, and score positions
 * n_ctx/2 .. n_ctx-2 of each (predicting the next token).
 *
 * KL divergence against a reference run, as llama-perplexity's
 * --kl-divergence-base / --kl-divergence do: `--kl-save FILE` stores every
 * scored row's log-probabilities (f32), `--kl-base FILE` compares this run's
 * distributions with them (same text, context and chunks) and prints the
 * mean KL(base || this) and how often the top token agrees. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_cli.h"
#include "tq_tokenizer.h"

/* -log p(tok) under softmax(logits), summed as llama.cpp does (float max,
 * double sum of expf). */
static double nll_of(const float *logits, int32_t n_vocab, int32_t tok) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += expf(logits[i] - mx);
    return -((double)(logits[tok] - mx) - log(sum));
}

/* Writes log softmax(logits) into lp (double sum as nll_of); returns the
 * index of the top logit. */
static int32_t log_softmax(const float *logits, int32_t n_vocab, float *lp) {
    int32_t top = 0;
    for (int32_t i = 1; i < n_vocab; i++) top = logits[i] > logits[top] ? i : top;
    const float mx = logits[top];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += expf(logits[i] - mx);
    const double lse = log(sum);
    for (int32_t i = 0; i < n_vocab; i++) lp[i] = (float)((double)(logits[i] - mx) - lse);
    return top;
}

/* Header of a --kl-save file: what must match for a comparison to mean
 * anything. Rows follow, n_rows * n_vocab f32 per chunk. */
typedef struct kl_header {
    char magic[8];                 /* "TQKLLP1" */
    int32_t n_vocab, n_ctx, first, n_chunk, n_rows, reserved;
} kl_header;

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Removes "--kl-save FILE" / "--kl-base FILE" from argv (in place) so the
 * shared option parser never sees them; returns the new argc, or -1 after
 * printing an error. */
static int take_kl_options(int argc, char **argv, const char **save, const char **base) {
    int out = 0;
    for (int i = 0; i < argc; i++) {
        const int is_save = strcmp(argv[i], "--kl-save") == 0, is_base = strcmp(argv[i], "--kl-base") == 0;
        if (!is_save && !is_base) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            tq_cli_error("%s needs a file name", argv[i]);
            return -1;
        }
        *(is_save ? save : base) = argv[++i];
    }
    argv[out] = NULL;
    return out;
}

int tq_cmd_perplexity(int argc, char **argv) {
    tq_cli cli;
    int done = 0, rc = 1;
    tq_session *s = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    FILE *chunk_out = NULL, *kl_save = NULL, *kl_base = NULL;
    const char *kl_save_path = NULL, *kl_base_path = NULL;
    float *lp = NULL, *lp_base = NULL;
    double *kl_rows = NULL;
    int64_t kl_n = 0, same_top = 0;
    memset(&cli, 0, sizeof cli);
    if ((argc = take_kl_options(argc, argv, &kl_save_path, &kl_base_path)) < 0) goto out;
    if (tq_cli_parse(&cli, "perplexity", argc, argv, &done) || done) {
        rc = done ? 0 : 1;
        goto out;
    }
    if (!cli.prompt_file) {
        tq_cli_error("perplexity needs a text file (-f FILE)");
        goto out;
    }
    if (!tq_config_get(cli.cfg, "runtime", "ctx_size")) tq_config_set(cli.cfg, "runtime", "ctx_size", "512");
    if (tq_cli_start(&cli) || tq_cli_open_session(&cli, &s)) goto out;
    size_t len = 0;
    if (!(text = tq_cli_read_file(cli.prompt_file, &len))) goto out;
    const tq_tokenizer *tok = tq_session_tokenizer(s);
    const int32_t n_ctx = tq_session_n_ctx(s), n_vocab = tq_session_n_vocab(s);
    double t0 = tq_cli_now();
    int32_t n_tok = tq_tokenize(tok, text, len, 1, 0, NULL, 0);
    ids = malloc(sizeof *ids * (size_t)(n_tok > 0 ? n_tok : 1));
    if (!ids) goto out;
    tq_tokenize(tok, text, len, 1, 0, ids, n_tok);
    const int32_t n_chunk_all = n_tok / n_ctx;
    if (n_chunk_all < 1 || n_ctx < 4) {
        tq_cli_error("%s: %d tokens are not enough for one chunk of %d", cli.prompt_file, n_tok, n_ctx);
        goto out;
    }
    int32_t first = cli.ppl_first_chunk, n_chunk = n_chunk_all - first;
    if (cli.ppl_chunks >= 0 && cli.ppl_chunks < n_chunk) n_chunk = cli.ppl_chunks;
    if (first >= n_chunk_all || n_chunk <= 0) {
        tq_cli_error("--first-chunk %d: the text has only %d chunks", first, n_chunk_all);
        goto out;
    }
    fprintf(stderr, "tqrun: tokenized %s in %.0f ms: %d tokens, %d chunks of %d; scoring %d\n",
            cli.prompt_file, (tq_cli_now() - t0) * 1e3, n_tok, n_chunk_all, n_ctx, n_chunk);
    if (cli.ppl_chunk_out && !(chunk_out = fopen(cli.ppl_chunk_out, "w"))) {
        tq_cli_error("%s: cannot write", cli.ppl_chunk_out);
        goto out;
    }

    const int32_t score_first = n_ctx / 2;
    const int32_t n_rows = n_ctx - 1 - score_first; /* rows score_first .. n_ctx-2 */
    kl_header klh = {"TQKLLP1", n_vocab, n_ctx, first, n_chunk, n_rows, 0};
    if (kl_save_path || kl_base_path) {
        lp = malloc(sizeof *lp * (size_t)n_vocab);
        lp_base = malloc(sizeof *lp_base * (size_t)n_vocab);
        kl_rows = malloc(sizeof *kl_rows * (size_t)n_rows * (size_t)n_chunk);
        if (!lp || !lp_base || !kl_rows) goto out;
    }
    if (kl_save_path && !(kl_save = fopen(kl_save_path, "wb"))) {
        tq_cli_error("%s: cannot write", kl_save_path);
        goto out;
    }
    if (kl_save && fwrite(&klh, sizeof klh, 1, kl_save) != 1) {
        tq_cli_error("%s: cannot write", kl_save_path);
        goto out;
    }
    if (kl_base_path) {
        kl_header got;
        if (!(kl_base = fopen(kl_base_path, "rb")) || fread(&got, sizeof got, 1, kl_base) != 1) {
            tq_cli_error("%s: cannot read a --kl-save file", kl_base_path);
            goto out;
        }
        /* a base of more chunks serves any prefix of them */
        if (memcmp(got.magic, klh.magic, sizeof got.magic) != 0 || got.n_vocab != n_vocab ||
            got.n_ctx != n_ctx || got.first != first || got.n_rows != n_rows || got.n_chunk < n_chunk) {
            tq_cli_error("%s: saved with other settings (vocab %d, context %d, chunks %d+%d); "
                         "this run has vocab %d, context %d, chunks %d+%d",
                         kl_base_path, got.n_vocab, got.n_ctx, got.first, got.n_chunk, n_vocab,
                         n_ctx, first, n_chunk);
            goto out;
        }
    }
    int32_t *rows = malloc(sizeof *rows * (size_t)n_rows);
    int32_t *chunk = malloc(sizeof *chunk * (size_t)n_ctx);
    logits = malloc(sizeof *logits * (size_t)n_vocab * (size_t)n_rows);
    if (!rows || !chunk || !logits) {
        free(rows);
        free(chunk);
        goto out;
    }
    for (int32_t i = 0; i < n_rows; i++) rows[i] = score_first + i;
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    const int32_t bos = tq_tokenizer_bos(tok);
    tq_error err = {0};
    double t_start = tq_cli_now();
    for (int32_t c = first; c < first + n_chunk; c++) {
        memcpy(chunk, ids + (size_t)c * (size_t)n_ctx, sizeof *chunk * (size_t)n_ctx);
        if (tq_tokenizer_add_bos(tok) && bos >= 0) chunk[0] = bos;
        tq_session_truncate(s, 0);
        if (tq_session_decode(s, chunk, n_ctx, 0, rows, n_rows, logits, &err) != TQ_OK) {
            tq_cli_error("chunk %d: %s", c, err.message);
            free(rows);
            free(chunk);
            goto out;
        }
        double chunk_nll = 0;
        for (int32_t i = 0; i < n_rows; i++) {
            const int32_t next = ids[(size_t)c * (size_t)n_ctx + (size_t)rows[i] + 1];
            const double v = nll_of(logits + (size_t)i * (size_t)n_vocab, n_vocab, next);
            chunk_nll += v;
            nll2 += v * v;
            if (!lp) continue;
            const int32_t top = log_softmax(logits + (size_t)i * (size_t)n_vocab, n_vocab, lp);
            if (kl_save && fwrite(lp, sizeof *lp, (size_t)n_vocab, kl_save) != (size_t)n_vocab) {
                tq_cli_error("%s: cannot write", kl_save_path);
                free(rows);
                free(chunk);
                goto out;
            }
            if (!kl_base) continue;
            if (fread(lp_base, sizeof *lp_base, (size_t)n_vocab, kl_base) != (size_t)n_vocab) {
                tq_cli_error("%s: truncated", kl_base_path);
                free(rows);
                free(chunk);
                goto out;
            }
            double kl = 0;
            int32_t top_base = 0;
            for (int32_t t = 0; t < n_vocab; t++) {
                kl += exp((double)lp_base[t]) * ((double)lp_base[t] - lp[t]);
                top_base = lp_base[t] > lp_base[top_base] ? t : top_base;
            }
            kl_rows[kl_n++] = kl;
            same_top += top == top_base;
        }
        nll += chunk_nll;
        count += n_rows;
        if (chunk_out) fprintf(chunk_out, "%d %.9f %d\n", c, chunk_nll, n_rows);
        if (c == first)
            fprintf(stderr, "tqrun: %.2f s per chunk, about %.1f min for %d chunks\n",
                    tq_cli_now() - t_start, (tq_cli_now() - t_start) * n_chunk / 60.0, n_chunk);
        printf("[%d]%.4f,", c + 1, exp(nll / (double)count));
        fflush(stdout);
    }
    printf("\n");
    free(rows);
    free(chunk);
    const double mean = nll / (double)count;
    double var = nll2 / (double)count - mean * mean;
    const double ppl = exp(mean);
    if (var > 0 && count > 1)
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sqrt(var / (double)(count - 1)) * ppl);
    else
        printf("Final estimate: PPL = %.4f\n", ppl);
    printf("scored %lld tokens in %d chunks of %d\n", (long long)count, n_chunk, n_ctx);
    if (kl_n > 0) {
        double sum = 0, sum2 = 0;
        for (int64_t i = 0; i < kl_n; i++) {
            sum += kl_rows[i];
            sum2 += kl_rows[i] * kl_rows[i];
        }
        const double kmean = sum / (double)kl_n, kvar = sum2 / (double)kl_n - kmean * kmean;
        qsort(kl_rows, (size_t)kl_n, sizeof *kl_rows, cmp_double);
        printf("KL divergence vs %s: mean %.6f +/- %.6f, median %.6f, p99 %.6f, max %.6f; "
               "same top token %.3f%% (sum %.9f over %lld tokens)\n",
               kl_base_path, kmean, kl_n > 1 && kvar > 0 ? sqrt(kvar / (double)(kl_n - 1)) : 0.0,
               kl_rows[kl_n / 2], kl_rows[(int64_t)((double)(kl_n - 1) * 0.99)], kl_rows[kl_n - 1],
               100.0 * (double)same_top / (double)kl_n, sum, (long long)kl_n);
    }
    {
        const uint64_t kvb = tq_session_kv_bytes(s);
        fprintf(stderr, "tqrun: KV cache %llu bytes after %d tokens (%.1f bytes per token)\n",
                (unsigned long long)kvb, n_ctx, (double)kvb / (double)n_ctx);
    }
    rc = 0;
out:
    if (chunk_out && fclose(chunk_out) != 0) rc = 1;
    if (kl_save && fclose(kl_save) != 0) rc = 1;
    if (kl_base) fclose(kl_base);
    free(lp);
    free(lp_base);
    free(kl_rows);
    free(logits);
    free(ids);
    free(text);
    tq_session_free(s);
    tq_cli_finish(&cli);
    return rc;
}
