/* cmd_perplexity.c — `tqrun perplexity`, reproducing llama.cpp's
 * llama-perplexity exactly so numbers compare: tokenize the whole file once
 * (BOS first), cut floor(n_tokens / n_ctx) chunks, evaluate each from an
 * empty cache with its first token replaced by BOS, and score positions
 * n_ctx/2 .. n_ctx-2 of each (predicting the next token). */
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

int tq_cmd_perplexity(int argc, char **argv) {
    tq_cli cli;
    int done = 0, rc = 1;
    tq_session *s = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    FILE *chunk_out = NULL;
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
    rc = 0;
out:
    if (chunk_out && fclose(chunk_out) != 0) rc = 1;
    free(logits);
    free(ids);
    free(text);
    tq_session_free(s);
    tq_cli_finish(&cli);
    return rc;
}
