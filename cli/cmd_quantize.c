/* cmd_quantize.c — `tqrun quantize IN OUT TYPE [THREADS]`, llama.cpp's
 * llama-quantize without an importance matrix.
 *
 * The output is meant to be the file llama-quantize writes from the same
 * input: the same per-tensor type choice (llama_tensor_get_type in
 * llama.cpp's src/llama-quant.cpp, build 8871, reproduced rule by rule below
 * for the types offered), the same tensor order (by layer, then name — the
 * order of llama.cpp's weights map), the same metadata (copied, then
 * general.quantization_version and general.file_type moved to the end, as
 * gguf_set_val_u32 does), and the same block encoders: without an imatrix
 * ggml_quantize_chunk calls quantize_row_<type>_ref for every type here, and
 * tq_type_get(t)->from_f32 is bit-identical with those.
 *
 * Tensors are streamed: each one is converted while the file is written,
 * row chunks spread over the thread pool, so memory holds one output tensor
 * at a time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_tools.h"
#include "tq_cli.h"
#include "tq_error.h"
#include "tq_gguf.h"
#include "tq_gguf_writer.h"
#include "tq_quant_mix.h"
#include "tq_threadpool.h"
#include "tq_types.h"

/* ------------------------------------------------------------------------ */
/* Model facts the rules use                                                */

static int64_t meta_int(const tq_gguf *g, const char *arch, const char *key, int64_t def) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    const tq_value *v = tq_gguf_find(g, k);
    if (!v) return def;
    if (v->type == TQ_VAL_ARRAY && v->count > 0) {
        /* per-layer arrays (some families): the first layer's value */
        switch (v->elem_type) {
        case TQ_VAL_U32: { uint32_t x; memcpy(&x, v->elems, 4); return x; }
        case TQ_VAL_I32: { int32_t x; memcpy(&x, v->elems, 4); return x; }
        default: return def;
        }
    }
    return tq_value_is_int(v) ? (int64_t)tq_value_f64(v) : def;
}

/* ------------------------------------------------------------------------ */
/* Conversion                                                               */

typedef struct conv_job {
    const tq_tensor *src;
    tq_type dst_type;
    int64_t ne0, nrows;
    size_t src_row, dst_row;
    uint8_t *dst;
    int failed; /* a worker could not allocate its scratch row */
} conv_job;

/* Rows are split in contiguous ranges, one per thread; each worker decodes
 * a row to f32 and encodes it. Rows are independent (blocks never cross a
 * row), so the result does not depend on the thread count. */
static void conv_task(void *user, int ith, int nth) {
    conv_job *j = user;
    const int64_t per = (j->nrows + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < j->nrows ? r0 + per : j->nrows;
    if (r0 >= r1) return;
    const tq_type_info *si = tq_type_get(j->src->type), *di = tq_type_get(j->dst_type);
    float *tmp = NULL;
    if (j->src->type != TQ_TYPE_F32 && !(tmp = malloc((size_t)j->ne0 * sizeof(float)))) {
        j->failed = 1; /* benign race: every writer stores 1 */
        return;
    }
    const uint8_t *s = (const uint8_t *)j->src->data;
    for (int64_t r = r0; r < r1; r++) {
        const float *x;
        if (tmp) {
            si->to_f32(s + (size_t)r * j->src_row, tmp, j->ne0);
            x = tmp;
        } else {
            x = (const float *)(const void *)(s + (size_t)r * j->src_row);
        }
        di->from_f32(x, j->dst + (size_t)r * j->dst_row, j->ne0);
    }
    free(tmp);
}

typedef struct qtensor {
    const tq_tensor *t;
    const char *name;
    tq_type type;        /* output type                                */
    uint64_t src_bytes, dst_bytes;
} qtensor;

typedef struct quant_run {
    qtensor *list;
    int64_t n;
    int64_t next;        /* index of the tensor the next producer call fills */
    tq_threadpool *pool;
} quant_run;

static tq_status produce_tensor(void *user, void *dst, uint64_t nbytes, tq_error *err) {
    quant_run *qr = user;
    /* The writer calls producers in tensor order; find this one. */
    while (qr->next < qr->n && qr->list[qr->next].type == qr->list[qr->next].t->type) qr->next++;
    if (qr->next >= qr->n) return tq_error_set(err, TQ_ERR_INVALID, "quantize: producer out of order");
    qtensor *q = &qr->list[qr->next++];
    if (nbytes != q->dst_bytes)
        return tq_error_set(err, TQ_ERR_INVALID, "quantize: size mismatch for %s", q->name);
    conv_job j = {
        .src = q->t, .dst_type = q->type, .ne0 = q->t->ne[0],
        .nrows = q->t->ne[1] * q->t->ne[2] * q->t->ne[3],
        .src_row = tq_type_row_bytes(q->t->type, q->t->ne[0]),
        .dst_row = tq_type_row_bytes(q->type, q->t->ne[0]), .dst = dst,
    };
    double t0 = tq_cli_now();
    tq_threadpool_run(qr->pool, conv_task, &j);
    if (j.failed) return tq_error_set(err, TQ_ERR_NOMEM, "out of memory converting %s", q->name);
    printf("[%4lld/%4lld] %-36s - %-6s -> %-6s  %8.2f MiB -> %8.2f MiB  (%.0f ms)\n",
           (long long)(q - qr->list) + 1, (long long)qr->n, q->name, tq_type_name(q->t->type),
           tq_type_name(q->type), (double)q->src_bytes / 1048576.0,
           (double)q->dst_bytes / 1048576.0, (tq_cli_now() - t0) * 1e3);
    fflush(stdout);
    return TQ_OK;
}

static int cmp_tensors(const void *a, const void *b) {
    return tq_mix_order(((const qtensor *)a)->name, ((const qtensor *)b)->name);
}

/* ------------------------------------------------------------------------ */
/* Command                                                                  */

static void usage(void) {
    printf("usage: tqrun quantize [--allow-requantize] [--pure] IN.gguf OUT.gguf TYPE [THREADS]\n\n"
           "Writes OUT with the tensors of IN converted to TYPE, choosing each tensor's type\n"
           "as llama.cpp's llama-quantize does (without an importance matrix), so the file\n"
           "llama.cpp loads is the one llama-quantize would write. THREADS defaults to all\n"
           "cores.\n\n"
           "  --allow-requantize   allow converting tensors that are already quantized\n"
           "  --pure               no mix: every quantizable tensor gets TYPE\n\n"
           "types (llama-quantize's names, or their file-type numbers):\n");
    int i = 0;
    for (const tq_ftype_option *f; (f = tq_ftype_at(i)) != NULL; i++)
        printf("  %2d  %-7s %s\n", f->ftype, f->name, f->note);
}

int tq_cmd_quantize(int argc, char **argv) {
    int allow_requantize = 0, pure = 0;
    const char *pos[4] = {0};
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        } else if (strcmp(argv[i], "--allow-requantize") == 0) {
            allow_requantize = 1;
        } else if (strcmp(argv[i], "--pure") == 0) {
            pure = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            tq_cli_error("unknown option '%s' (see tqrun quantize --help)", argv[i]);
            return 2;
        } else if (n_pos < 4) {
            pos[n_pos++] = argv[i];
        } else {
            tq_cli_error("too many arguments (see tqrun quantize --help)");
            return 2;
        }
    }
    if (n_pos < 3) {
        tq_cli_error("usage: tqrun quantize [--allow-requantize] IN.gguf OUT.gguf TYPE [THREADS]");
        return 2;
    }
    const tq_ftype_option *fo = tq_ftype_find(pos[2]);
    if (!fo) {
        tq_cli_error("unknown quantization type '%s' (see tqrun quantize --help)", pos[2]);
        return 2;
    }
    long n_threads = 0;
    if (n_pos == 4) {
        char *end;
        errno = 0;
        n_threads = strtol(pos[3], &end, 10);
        if (errno || *end || n_threads < 1 || n_threads > 1024) {
            tq_cli_error("invalid thread count '%s'", pos[3]);
            return 2;
        }
    }
    if (n_threads == 0) {
        n_threads = sysconf(_SC_NPROCESSORS_ONLN);
        if (n_threads < 1) n_threads = 1;
    }

    int rc = 1;
    tq_error err = {0};
    tq_gguf *g = NULL;
    tq_gguf_writer *w = NULL;
    tq_threadpool *pool = NULL;
    qtensor *list = NULL;
    double t0 = tq_cli_now();
    if (tq_gguf_open(pos[0], &g, &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        goto out;
    }
    const char *arch = NULL;
    if (tq_gguf_get_str(g, "general.architecture", &arch, &err) != TQ_OK) {
        tq_cli_error("%s: no general.architecture key", pos[0]);
        goto out;
    }
    const int64_t n_layer = meta_int(g, arch, "block_count", -1);
    if (n_layer < 0) {
        tq_cli_error("%s: no %s.block_count key", pos[0], arch);
        goto out;
    }
    const int64_t n_head = meta_int(g, arch, "attention.head_count", 0);
    tq_quant_mix qs;
    tq_quant_mix_init(&qs, fo, pure, arch, (int)n_layer, (int)n_head,
                      (int)meta_int(g, arch, "attention.head_count_kv", n_head),
                      (int)meta_int(g, arch, "expert_count", 0));

    const int64_t n = tq_gguf_n_tensors(g);
    list = calloc((size_t)(n > 0 ? n : 1), sizeof *list);
    if (!list) {
        tq_cli_error("out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        qtensor *q = &list[i];
        q->t = tq_gguf_tensor(g, i);
        q->name = q->t->name;
        tq_quant_mix_note(&qs, q->name);
    }
    qsort(list, (size_t)n, sizeof *list, cmp_tensors);

    uint64_t total_src = 0, total_dst = 0, n_elems = 0;
    int n_convert = 0;
    for (int64_t i = 0; i < n; i++) {
        qtensor *q = &list[i];
        q->type = tq_quant_mix_choose(&qs, q->name, q->t, &err);
        if (q->type == TQ_TYPE_INVALID) {
            tq_cli_error("%s: %s", pos[0], err.message);
            goto out;
        }
        const int64_t rows = q->t->ne[1] * q->t->ne[2] * q->t->ne[3];
        q->src_bytes = (uint64_t)tq_type_row_bytes(q->t->type, q->t->ne[0]) * (uint64_t)rows;
        q->dst_bytes = (uint64_t)tq_type_row_bytes(q->type, q->t->ne[0]) * (uint64_t)rows;
        total_src += q->src_bytes;
        total_dst += q->dst_bytes;
        n_elems += (uint64_t)(q->t->ne[0] * rows);
        if (q->type == q->t->type) continue;
        n_convert++;
        const tq_type_info *si = tq_type_get(q->t->type);
        if (tq_mix_is_quantized(q->t->type) && !allow_requantize) {
            tq_cli_error("%s: tensor %s is already %s; requantizing loses quality (pass "
                         "--allow-requantize to do it anyway)",
                         pos[0], q->name, tq_type_name(q->t->type));
            goto out;
        }
        if (!si || !si->to_f32 || q->t->type == TQ_TYPE_I8 || q->t->type == TQ_TYPE_I16 ||
            q->t->type == TQ_TYPE_I32) {
            tq_cli_error("%s: cannot convert tensor %s of type %s", pos[0], q->name,
                         tq_type_name(q->t->type));
            goto out;
        }
    }

    w = tq_gguf_writer_new(tq_gguf_alignment(g));
    pool = tq_threadpool_create((int)n_threads);
    if (!w || !pool) {
        tq_cli_error("out of memory");
        goto out;
    }
    tq_status st = tq_gguf_writer_copy_all_kv(w, g, NULL, NULL);
    /* gguf_set_val_u32 removes the key and appends it: same order here. */
    if (st == TQ_OK) {
        tq_gguf_writer_remove_kv(w, "general.quantization_version");
        st = tq_gguf_writer_set_u32(w, "general.quantization_version", 2);
    }
    if (st == TQ_OK) {
        tq_gguf_writer_remove_kv(w, "general.file_type");
        st = tq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)fo->ftype);
    }
    quant_run qr = {.list = list, .n = n, .pool = pool};
    for (int64_t i = 0; st == TQ_OK && i < n; i++) {
        const qtensor *q = &list[i];
        const int nd = tq_mix_n_dims(q->t);
        if (q->type == q->t->type)
            st = tq_gguf_writer_add_tensor(w, q->name, q->type, nd, q->t->ne, q->t->data, 1);
        else
            st = tq_gguf_writer_add_tensor_stream(w, q->name, q->type, nd, q->t->ne,
                                                  produce_tensor, &qr);
    }
    if (st != TQ_OK) {
        tq_cli_error("%s: cannot add metadata or tensors (%s)", pos[1], tq_status_str(st));
        goto out;
    }
    printf("quantizing %s -> %s as %s (file type %d), %ld threads, %d of %lld tensors converted\n",
           pos[0], pos[1], fo->name, fo->ftype, n_threads, n_convert, (long long)n);
    fflush(stdout);
    if (tq_gguf_writer_write(w, pos[1], &err) != TQ_OK) {
        tq_cli_error("%s", err.message);
        goto out;
    }
    printf("model size  = %8.2f MiB (%.2f BPW)\n", (double)total_src / 1048576.0,
           n_elems ? (double)total_src * 8.0 / (double)n_elems : 0.0);
    printf("quant size  = %8.2f MiB (%.2f BPW)\n", (double)total_dst / 1048576.0,
           n_elems ? (double)total_dst * 8.0 / (double)n_elems : 0.0);
    if (qs.n_fallback > 0)
        printf("warning: %d of %lld tensor(s) required fallback quantization\n", qs.n_fallback,
               (long long)n);
    printf("quantize time = %.0f ms\n", (tq_cli_now() - t0) * 1e3);
    rc = 0;
out:
    tq_threadpool_free(pool);
    tq_gguf_writer_free(w);
    free(list);
    tq_gguf_close(g);
    return rc;
}
