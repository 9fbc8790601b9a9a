/* tq_golden.c — checking a session against llama.cpp's reference outputs. */
#include "tq_golden.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_builtins.h"
#include "tq_host.h"
#include "tq_registry.h"
#include "tq_session.h"
#include "tq_test_util.h"
#include "tq_tokenizer.h"

/* Parses the ints after "label:" on a line into a new array. */
static int32_t *parse_ids(const char *line, int32_t *n) {
    const char *p = strchr(line, ':');
    int32_t cap = 16, k = 0;
    int32_t *v = malloc(sizeof *v * (size_t)cap);
    if (!p || !v) return v;
    p++;
    char *end;
    for (;;) {
        long x = strtol(p, &end, 10);
        if (end == p) break;
        if (k == cap) v = realloc(v, sizeof *v * (size_t)(cap *= 2));
        v[k++] = (int32_t)x;
        p = end;
    }
    *n = k;
    return v;
}

int tq_golden_load(const char *shared, const char *name, tq_golden *g) {
    memset(g, 0, sizeof *g);
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/llamacpp/%s.txt", shared, name);
    char *txt = tq_test_read_file(path, NULL);
    if (!txt) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    g->gen_gap = calloc(1024, sizeof *g->gen_gap);
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "prompt_ids:", 11) == 0) {
            g->prompt_ids = parse_ids(line, &g->n_prompt);
        } else if (strncmp(line, "greedy_ids:", 11) == 0) {
            g->greedy_ids = parse_ids(line, &g->n_greedy);
        } else if (strncmp(line, "gen ", 4) == 0) {
            int k;
            float l1, l2;
            int id1, id2;
            if (sscanf(line, "gen %d top5: %d:%f %d:%f", &k, &id1, &l1, &id2, &l2) == 5 && k >= 0 && k < 1024) {
                g->gen_gap[k] = (l1 - l2) / fabsf(l1);
                if (k + 1 > g->n_gen_gap) g->n_gen_gap = k + 1;
            }
        } else if (strncmp(line, "full_logits_rows", 16) == 0) {
            if (sscanf(line, "full_logits_rows (vocab %d)", &g->n_vocab) != 1) break;
            const char *p = strchr(line, ':') + 1;
            g->row_label = calloc(64, sizeof *g->row_label);
            char lab[16];
            int used;
            while (g->n_rows < 64 && sscanf(p, " %15s%n", lab, &used) == 1) {
                strcpy(g->row_label[g->n_rows++], lab);
                p += used;
            }
        }
    }
    free(txt);
    snprintf(path, sizeof path, "%s/golden/llamacpp/%s.logits.f32", shared, name);
    size_t len = 0;
    g->rows = (float *)tq_test_read_file(path, &len);
    if (!g->prompt_ids || !g->greedy_ids || !g->rows || g->n_vocab <= 0 ||
        len != (size_t)g->n_rows * (size_t)g->n_vocab * sizeof(float)) {
        fprintf(stderr, "%s: golden files incomplete or inconsistent\n", name);
        tq_golden_free(g);
        return 1;
    }
    return 0;
}

void tq_golden_free(tq_golden *g) {
    free(g->prompt_ids);
    free(g->greedy_ids);
    free(g->gen_gap);
    free(g->row_label);
    free(g->rows);
    memset(g, 0, sizeof *g);
}

/* Checks `got` against the golden row `label`; returns the relative error. */
static double compare_row(const tq_golden *g, const char *label, const float *got) {
    for (int32_t r = 0; r < g->n_rows; r++) {
        if (strcmp(g->row_label[r], label) != 0) continue;
        const float *want = g->rows + (size_t)r * (size_t)g->n_vocab;
        double mx = 0, diff = 0;
        for (int32_t i = 0; i < g->n_vocab; i++) {
            mx = fmax(mx, fabs(want[i]));
            diff = fmax(diff, fabs((double)want[i] - got[i]));
        }
        return diff / mx;
    }
    return -1;
}

static int argmax(const float *x, int32_t n) {
    int best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* 1 when $TQ_GOLDEN_CASES (comma-separated golden names) is unset or lists
 * name: slow runs (emulated builds) pick a subset of the cases. */
static int case_selected(const char *name) {
    const char *list = getenv("TQ_GOLDEN_CASES");
    if (!list || !*list) return 1;
    const size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    printf("%s: skipped (not in TQ_GOLDEN_CASES)\n", name);
    return 0;
}

int tq_golden_check(const tq_golden_case *c) {
    const char *shared = tq_test_shared_dir();
    if (!shared) return 0;
    if (!case_selected(c->golden)) return 0;
    tq_golden g;
    ck_assert_msg(tq_golden_load(shared, c->golden, &g) == 0, "golden %s", c->golden);

    char model[1024], prompt_path[1024];
    if (c->model[0] == '/') snprintf(model, sizeof model, "%s", c->model); /* a derived file */
    else snprintf(model, sizeof model, "%s/models/%s", shared, c->model);
    char *prompt = NULL;
    if (c->prompt_file) {
        snprintf(prompt_path, sizeof prompt_path, "%s/golden/llamacpp/%s", shared, c->prompt_file);
        prompt = tq_test_read_file(prompt_path, NULL);
        ck_assert_msg(prompt != NULL, "cannot read %s", prompt_path);
    } else {
        prompt = strdup(c->prompt);
    }

    tq_error err = {0};
    ck_assert_msg(tq_host_init(NULL, 2, &err) == TQ_OK, "%s", err.message);
    tq_registry *reg = tq_registry_new(tq_host_get());
    ck_assert(reg != NULL);
    ck_assert_msg(tq_builtins_register(reg, &err) == TQ_OK, "%s", err.message);
    tq_registry_add_default_dirs(reg);
    ck_assert_msg(tq_registry_scan(reg, &err) == TQ_OK, "%s", err.message);
    tq_test_expect_loaded(reg);
    const char *backends = c->backends ? c->backends : tq_test_backend();
    tq_session_params sp = {.model_path = model, .n_ctx = c->n_ctx, .backends = backends};
    tq_session *s = NULL;
    ck_assert_msg(tq_session_open(reg, &sp, &s, &err) == TQ_OK, "%s", err.message);
    const tq_tokenizer *tok = tq_session_tokenizer(s);
    const int32_t V = tq_session_n_vocab(s);
    ck_assert_int_eq(V, g.n_vocab);

    /* prompt ids */
    int32_t n = tq_tokenize(tok, prompt, strlen(prompt), 1, 1, NULL, 0);
    int32_t *ids = malloc(sizeof *ids * (size_t)n);
    tq_tokenize(tok, prompt, strlen(prompt), 1, 1, ids, n);
    ck_assert_msg(n == g.n_prompt, "%s: %d prompt ids, golden %d", c->golden, n, g.n_prompt);
    for (int32_t i = 0; i < n; i++)
        ck_assert_msg(ids[i] == g.prompt_ids[i], "%s: prompt id %d is %d, golden %d", c->golden,
                      i, ids[i], g.prompt_ids[i]);

    /* the prompt as one batch, every row out (the stored ones are compared) */
    float *logits = malloc(sizeof *logits * (size_t)V * (size_t)n);
    ck_assert_msg(tq_session_decode(s, ids, n, 0, NULL, n, logits, &err) == TQ_OK, "%s", err.message);
    double worst = 0;
    int compared = 0;
    const int verbose = getenv("TQ_GOLDEN_VERBOSE") != NULL; /* every row's error */
    for (int32_t i = 0; i < n; i++) {
        char label[16];
        snprintf(label, sizeof label, "p%d", i);
        double e = compare_row(&g, label, logits + (size_t)i * (size_t)V);
        if (e < 0) continue;
        if (verbose) printf("%s %s %.3e\n", c->golden, label, e);
        ck_assert_msg(e <= 2e-3, "%s: row %s differs by %.3g x max|logit|", c->golden, label, e);
        worst = fmax(worst, e);
        compared++;
    }

    /* greedy, teacher-forced on the golden ids */
    float *last = malloc(sizeof *last * (size_t)V);
    memcpy(last, logits + (size_t)(n - 1) * (size_t)V, sizeof *last * (size_t)V);
    int near_ties = 0;
    for (int32_t k = 0; k < g.n_greedy; k++) {
        int pick = argmax(last, V);
        if (pick != g.greedy_ids[k]) {
            ck_assert_msg(k < g.n_gen_gap && g.gen_gap[k] < 4e-3,
                          "%s: generated token %d is %d, golden %d (gap %.3g is no near tie)",
                          c->golden, k, pick, g.greedy_ids[k], k < g.n_gen_gap ? g.gen_gap[k] : -1.0);
            near_ties++;
        }
        char label[16];
        snprintf(label, sizeof label, "g%d", k);
        int wanted = 0;
        for (int32_t r = 0; r < g.n_rows; r++) wanted |= strcmp(g.row_label[r], label) == 0;
        if (k + 1 == g.n_greedy && !wanted) break;
        ck_assert_msg(tq_session_decode(s, &g.greedy_ids[k], 1, n + k, NULL, 1, last, &err) == TQ_OK,
                      "%s", err.message);
        double e = compare_row(&g, label, last);
        if (e >= 0) {
            if (verbose) printf("%s %s %.3e\n", c->golden, label, e);
            ck_assert_msg(e <= 2e-3, "%s: row %s differs by %.3g x max|logit|", c->golden, label, e);
            worst = fmax(worst, e);
            compared++;
        }
    }
    ck_assert_msg(compared == g.n_rows, "%s: compared %d of %d stored rows", c->golden, compared, g.n_rows);
    printf("%s [%s]: %d prompt ids, %d greedy ids match (%d near ties), %d rows, worst %.2e x max|logit|\n",
           c->golden, tq_session_backends(s), n, g.n_greedy, near_ties, compared, worst);
    free(last);
    free(logits);
    free(ids);
    free(prompt);
    tq_session_free(s);
    tq_registry_free(reg);
    tq_host_shutdown();
    tq_golden_free(&g);
    return 1;
}
