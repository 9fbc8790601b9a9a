/* kv_turbo.c — the "turbo" KV-cache plugin: TurboQuant codes (tq4, tq3,
 * tq2), a q8_0 baseline and f16, chosen independently for K and V
 * (-ctk / -ctv), with f16 attention sinks, an f16 recent window and exact
 * K-centering (../shared/specs/turboquant.md §6; layout in turbo_cache.h).
 *
 * The cache offers no `view`: the core sends attention to turbo_attention,
 * which works on the codes directly.
 *
 * Settings, ini section [plugin.turbo]:
 *   sinks    = 4     first positions kept in f16 (0..1024)
 *   window   = 64    recent positions kept in f16 (0 = off, ..65536)
 *   k_center = true  subtract per-block key means (tq K only)
 *   k_balance = true scale key channels against the first batch's queries
 *   k_split  = true  tq4 keys as split rows (5-bit / 3-bit halves, channels
 *                    ordered by their weight in the score; needs k_balance)
 *   v_project = true project values on their principal directions (tq4:
 *                    split rows over all d; tq3/tq2: their top subspace)
 *   seed     = N     rotation seed (decimal or 0x hex) */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tqrun/tq_plugin.h>

#include "turbo_cache.h"
#include "turbo_half.h"
#include "turbo_rotation.h"
#include "turbo_tables.h"

#define PLUGIN_NAME "turbo"
#define DEFAULT_SEED UINT64_C(0x2504198740000001) /* arXiv 2504.19874 */

static tq_status fail(tq_error *err, tq_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static tq_status fail(tq_error *err, tq_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

/* ---- settings ------------------------------------------------------------ */

static int parse_int(const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) return 1;
    *out = n;
    return 0;
}

static tq_status read_settings(const tq_host *host, turbo_settings *s, tq_error *err) {
    s->sinks = 4;
    s->window = TURBO_DEFAULT_WINDOW;
    s->k_center = 1;
    s->k_balance = 1;
    s->v_project = 1;
    s->k_split = 1;
    s->seed = DEFAULT_SEED;
    if (!host->config_get) return TQ_OK;
    const char *v;
    long n;
    if ((v = host->config_get(PLUGIN_NAME, "sinks"))) {
        if (parse_int(v, 0, 1024, &n))
            return fail(err, TQ_ERR_INVALID, "[plugin.turbo] sinks = '%s': expected 0..1024", v);
        s->sinks = (int32_t)n;
    }
    if ((v = host->config_get(PLUGIN_NAME, "window"))) {
        if (parse_int(v, 0, 65536, &n))
            return fail(err, TQ_ERR_INVALID, "[plugin.turbo] window = '%s': expected 0..65536", v);
        s->window = (int32_t)n;
    }
    static const char *const flags[] = {"k_center", "k_balance", "v_project", "k_split"};
    int *const flag_of[] = {&s->k_center, &s->k_balance, &s->v_project, &s->k_split};
    for (int f = 0; f < 4; f++) {
        if (!(v = host->config_get(PLUGIN_NAME, flags[f]))) continue;
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
            *flag_of[f] = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
            *flag_of[f] = 0;
        else
            return fail(err, TQ_ERR_INVALID, "[plugin.turbo] %s = '%s': expected true or false",
                        flags[f], v);
    }
    if ((v = host->config_get(PLUGIN_NAME, "seed"))) {
        char *end;
        errno = 0;
        unsigned long long u = strtoull(v, &end, 0);
        if (errno || end == v || *end || v[0] == '-')
            return fail(err, TQ_ERR_INVALID, "[plugin.turbo] seed = '%s': expected an unsigned integer", v);
        s->seed = (uint64_t)u;
    }
    return TQ_OK;
}

/* ---- create / destroy ------------------------------------------------------ */

static void kv_destroy(tq_kv_cache *c) {
    if (!c) return;
    const tq_host *h = c->host;
    for (int w = 0; w < 2; w++) {
        turbo_store *s = &c->st[w];
        h->free(s->codes);
        h->free(s->sink);
        h->free(s->ring);
        h->free(s->ring_pos);
        h->free(s->sign);
        h->free(s->stage);
    }
    turbo_calib_destroy(c);
    h->free(c->scratch);
    free(c);
}

static tq_status setup_store(tq_kv_cache *c, int which, const char *fmt, tq_error *err) {
    const tq_host *h = c->host;
    turbo_store *s = &c->st[which];
    const tq_kv_params *p = &c->p;
    char why[200];
    if (turbo_codec_init(&s->codec, fmt, p->head_dim, why, sizeof why))
        return fail(err, TQ_ERR_UNSUPPORTED, "turbo KV cache (%s): %s", which ? "V" : "K", why);
    /* tq4 keys under K balance: split2 rows (turbo_cache.h), where d/2 rotates */
    if (which == 0 && s->codec.kind == TURBO_TQ && s->codec.bits == 4 && c->set.k_split &&
        c->set.k_balance && p->head_dim % 32 == 0)
        turbo_codec_init_split(&s->codec, p->head_dim, 2);
    const size_t L = (size_t)p->n_layers, H = (size_t)p->n_kv_heads, d = (size_t)p->head_dim;
    const int exact = s->codec.kind == TURBO_F16;
    s->sinks = exact ? 0 : c->set.sinks;
    s->window = exact ? 0 : c->set.window;
    if (s->sinks > p->max_tokens) s->sinks = p->max_tokens;
    if (s->codec.kind == TURBO_TQ) {
        s->kern = turbo_kernels_select(turbo_codec_kern_id(&s->codec), h->cpu_features);
        s->sign = h->alloc(L * d * sizeof(float), 64);
        if (!s->sign) return fail(err, TQ_ERR_NOMEM, "turbo KV cache: out of memory");
        for (size_t l = 0; l < L; l++)
            turbo_signs(c->set.seed, (int32_t)l, which, p->head_dim, s->sign + l * d);
    }
    /* Not cleared: pages are touched only as positions fill. */
    const size_t code_bytes = L * H * (size_t)p->max_tokens * s->codec.row_bytes;
    s->codes = h->alloc(code_bytes, 64);
    if (!s->codes)
        return fail(err, TQ_ERR_NOMEM, "turbo KV cache: cannot allocate %zu bytes", code_bytes);
    if (s->sinks > 0 && !(s->sink = h->alloc(L * H * (size_t)s->sinks * d * 2, 64)))
        return fail(err, TQ_ERR_NOMEM, "turbo KV cache: out of memory");
    if (s->window > 0) {
        s->ring = h->alloc(L * H * (size_t)s->window * d * 2, 64);
        s->ring_pos = h->alloc(L * (size_t)s->window * sizeof(int32_t), 64);
        if (!s->ring || !s->ring_pos) return fail(err, TQ_ERR_NOMEM, "turbo KV cache: out of memory");
        for (size_t i = 0; i < L * (size_t)s->window; i++) s->ring_pos[i] = -1;
    }
    return TQ_OK;
}

static tq_status kv_create(void *state, const tq_kv_params *p, tq_kv_cache **out, tq_error *err) {
    const tq_host *host = state;
    if (p->n_layers <= 0 || p->n_kv_heads <= 0 || p->head_dim <= 0 || p->max_tokens <= 0)
        return fail(err, TQ_ERR_INVALID, "turbo KV cache: bad dimensions");
    tq_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return fail(err, TQ_ERR_NOMEM, "turbo KV cache: out of memory");
    c->host = host;
    c->kf = p->head_dim % 16 == 0 ? turbo_kernels_select(TURBO_MAX_BITS, host->cpu_features)
                                  : turbo_kernels_scalar(TURBO_MAX_BITS);
    c->p = *p;
    c->p.k_type = c->p.v_type = NULL; /* not owned */
    c->stage_layer = -1;
    tq_status st = read_settings(host, &c->set, err);
    if (st == TQ_OK) st = setup_store(c, 0, p->k_type, err);
    if (st == TQ_OK) st = setup_store(c, 1, p->v_type, err);
    if (st == TQ_OK && turbo_calib_create(c) != TQ_OK)
        st = fail(err, TQ_ERR_NOMEM, "turbo KV cache: out of memory");
    if (st != TQ_OK) {
        kv_destroy(c);
        return st;
    }
    host->log(TQ_LOG_INFO, PLUGIN_NAME,
              "K %s, V %s, head_dim %d: %zu + %zu bytes per token and head; sinks %d, window %d, "
              "K-centering %s (blocks of %d), K balance %s, V projection %s",
              p->k_type, p->v_type, p->head_dim, c->st[0].codec.row_bytes, c->st[1].codec.row_bytes,
              c->set.sinks, c->set.window, c->kmean ? "on" : "off", c->kblk,
              c->kscale ? "on" : "off", c->st[1].vp.mode ? "on" : "off");
    *out = c;
    return TQ_OK;
}

/* ---- window bookkeeping ------------------------------------------------------ */

const uint16_t *turbo_f16_lookup(const tq_kv_cache *c, const turbo_store *s, int32_t layer,
                                 int32_t head, int32_t pos) {
    const size_t d = (size_t)c->p.head_dim, H = (size_t)c->p.n_kv_heads;
    if (pos < s->sinks)
        return s->sink + (((size_t)layer * H + (size_t)head) * (size_t)s->sinks + (size_t)pos) * d;
    if (s->window <= 0) return NULL;
    if (c->stage_layer == layer && pos >= c->stage_pos0 && pos < c->stage_pos0 + c->stage_n)
        return s->stage + ((size_t)head * (size_t)c->stage_n + (size_t)(pos - c->stage_pos0)) * d;
    const size_t slot = (size_t)(pos % s->window);
    if (s->ring_pos[(size_t)layer * (size_t)s->window + slot] != pos) return NULL;
    return s->ring + (((size_t)layer * H + (size_t)head) * (size_t)s->window + slot) * d;
}

const uint16_t *turbo_f16_row(const tq_kv_cache *c, const turbo_store *s, int32_t layer,
                              int32_t head, int32_t pos, int32_t p) {
    return turbo_wants_f16(s, pos, p) ? turbo_f16_lookup(c, s, layer, head, pos) : NULL;
}

void turbo_commit_stage(tq_kv_cache *c) {
    if (c->stage_layer < 0) return;
    const int32_t layer = c->stage_layer, n = c->stage_n;
    const size_t d = (size_t)c->p.head_dim, H = (size_t)c->p.n_kv_heads;
    for (int w = 0; w < 2; w++) {
        turbo_store *s = &c->st[w];
        if (s->window <= 0) continue;
        for (int32_t t = n > s->window ? n - s->window : 0; t < n; t++) {
            const int32_t pos = c->stage_pos0 + t;
            if (pos < s->sinks) continue;
            const size_t slot = (size_t)(pos % s->window);
            for (size_t h = 0; h < H; h++)
                memcpy(s->ring + (((size_t)layer * H + h) * (size_t)s->window + slot) * d,
                       s->stage + (h * (size_t)n + (size_t)t) * d, d * 2);
            s->ring_pos[(size_t)layer * (size_t)s->window + slot] = pos;
        }
    }
    c->stage_layer = -1;
}

static void drop_from(tq_kv_cache *c, int32_t n_pos) {
    turbo_kbal_settle(c, NULL, 0, 0);
    turbo_commit_stage(c);
    if (n_pos < 0) n_pos = 0;
    if (n_pos >= c->n_pos) return;
    c->n_pos = n_pos;
    for (int w = 0; w < 2; w++) {
        turbo_store *s = &c->st[w];
        for (size_t i = 0; s->window > 0 && i < (size_t)c->p.n_layers * (size_t)s->window; i++)
            if (s->ring_pos[i] >= n_pos) s->ring_pos[i] = -1;
    }
    turbo_calib_forget(c, n_pos);
}

static void kv_truncate(tq_kv_cache *c, int32_t n_pos) { drop_from(c, n_pos); }

/* ---- append ------------------------------------------------------------------- */

typedef struct append_task {
    tq_kv_cache *c;
    int32_t layer, pos, n;
    const float *src[2];
    int keys_only;     /* deferred K codes: no staging, sinks or values */
    int defer_keys;    /* K codes wait for turbo_kbal_settle           */
} append_task;

static void store_f16(uint16_t *dst, const float *x, int32_t d) {
    for (int32_t i = 0; i < d; i++) dst[i] = turbo_f32_to_f16(x[i]);
}

static void append_worker(void *user, int ith, int nth) {
    const append_task *t = user;
    tq_kv_cache *c = t->c;
    const int32_t H = c->p.n_kv_heads, d = c->p.head_dim;
    const int64_t rows = (int64_t)t->n * H;
    const int64_t lo = rows * ith / nth, hi = rows * (ith + 1) / nth;
    float x[TURBO_MAX_DIM], work[TURBO_MAX_DIM];
    for (int64_t r = lo; r < hi; r++) {
        const int32_t tok = (int32_t)(r / H), h = (int32_t)(r % H), pos = t->pos + tok;
        for (int w = 0; w < (t->keys_only ? 1 : 2); w++) {
            turbo_store *s = &c->st[w];
            const float *src = t->src[w] + ((size_t)tok * (size_t)H + (size_t)h) * (size_t)d;
            if (s->window > 0 && !t->keys_only)
                store_f16(s->stage + ((size_t)h * (size_t)t->n + (size_t)tok) * (size_t)d, src, d);
            if (pos < s->sinks) {
                if (!t->keys_only)
                    store_f16(s->sink + (((size_t)t->layer * (size_t)H + (size_t)h) * (size_t)s->sinks +
                                         (size_t)pos) * (size_t)d, src, d);
                continue;
            }
            if (w == 0 && t->defer_keys) continue;
            uint8_t *row = turbo_code_row(c, s, t->layer, h, pos);
            if (w == 0 && s->codec.kind == TURBO_TQ) { /* centered, balanced, permuted */
                turbo_key_prepare(c, t->layer, h, pos, src, x);
                src = x;
            } else if (w == 1 && turbo_v_projected(c, t->layer)) {
                turbo_v_project(c, t->layer, h, src, x);
                turbo_encode_row(&s->vp.codec, turbo_v_sign(c, t->layer), x, row, work);
                continue;
            }
            const float *sign = s->sign ? s->sign + (size_t)t->layer * (size_t)d : NULL;
            turbo_encode_row(&s->codec, sign, src, row, work);
        }
    }
}

static tq_status kv_append(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *k,
                           const float *v, tq_error *err) {
    if (layer < 0 || layer >= c->p.n_layers || pos < 0 || n < 0 || pos + n > c->p.max_tokens)
        return fail(err, TQ_ERR_RANGE,
                    "turbo KV cache: positions %d..%d of layer %d outside a %d-token cache", pos,
                    pos + n - 1, layer, c->p.max_tokens);
    if (n == 0) return TQ_OK;
    if (layer == 0 && pos < c->n_pos) drop_from(c, pos); /* rewriting: forget the old tail */
    turbo_kbal_settle(c, NULL, 0, 0); /* keys left pending without attention: plain */
    turbo_commit_stage(c);
    const size_t rows = (size_t)n * (size_t)c->p.n_kv_heads;
    for (int w = 0; w < 2; w++) {
        turbo_store *s = &c->st[w];
        if (s->window <= 0 || rows <= s->stage_cap) continue;
        c->host->free(s->stage);
        s->stage_cap = 0;
        if (!(s->stage = c->host->alloc(rows * (size_t)c->p.head_dim * 2, 64)))
            return fail(err, TQ_ERR_NOMEM, "turbo KV cache: out of memory for %d tokens", n);
        s->stage_cap = rows;
    }
    turbo_calib_fix_means(c, layer, pos, n, k);
    if (turbo_calib_vproj(c, layer, pos, n, v) != TQ_OK)
        return fail(err, TQ_ERR_NOMEM, "turbo KV cache: out of memory for the V projection");
    int defer = 0;
    if (turbo_kbal_defer(c, layer, pos, n, k, &defer) != TQ_OK)
        return fail(err, TQ_ERR_NOMEM, "turbo KV cache: out of memory for %d pending keys", n);
    append_task t = {c, layer, pos, n, {k, v}, 0, defer};
    c->host->parallel_for(append_worker, &t);
    if (c->st[0].window > 0 || c->st[1].window > 0) {
        c->stage_layer = layer;
        c->stage_pos0 = pos;
        c->stage_n = n;
    }
    if (layer == 0 && pos + n > c->n_pos) c->n_pos = pos + n;
    return TQ_OK;
}

void turbo_encode_keys(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, const float *k) {
    append_task t = {c, layer, pos, n, {k, NULL}, 1, 0};
    c->host->parallel_for(append_worker, &t);
}

/* ---- read / bytes ------------------------------------------------------------- */

static void read_row(const tq_kv_cache *c, int w, int32_t layer, int32_t h, int32_t pos,
                     int32_t newest, float *out) {
    const turbo_store *s = &c->st[w];
    const int32_t d = c->p.head_dim;
    const uint16_t *f = turbo_f16_row(c, s, layer, h, pos, newest);
    if (f) {
        for (int32_t i = 0; i < d; i++) out[i] = turbo_f16_to_f32(f[i]);
        return;
    }
    const uint8_t *row = turbo_code_row(c, s, layer, h, pos);
    if (w == 1 && turbo_v_projected(c, layer)) {
        float z[TURBO_MAX_DIM];
        turbo_decode_row(&s->vp.codec, turbo_v_sign(c, layer), row, z);
        turbo_v_unproject(c, layer, h, z, out);
        return;
    }
    if (w == 0) {
        turbo_key_decode(c, layer, h, pos, out);
        return;
    }
    turbo_decode_row(&s->codec, s->sign ? s->sign + (size_t)layer * (size_t)d : NULL, row, out);
}

static tq_status kv_read(tq_kv_cache *c, int32_t layer, int32_t pos, int32_t n, float *k_out,
                         float *v_out, tq_error *err) {
    if (layer < 0 || layer >= c->p.n_layers || pos < 0 || n < 0 || pos + n > c->n_pos)
        return fail(err, TQ_ERR_RANGE, "turbo KV cache: read of positions %d..%d of layer %d, "
                    "%d stored", pos, pos + n - 1, layer, c->n_pos);
    turbo_kbal_settle(c, NULL, 0, 0);
    turbo_commit_stage(c);
    const int32_t d = c->p.head_dim, newest = c->n_pos - 1;
    for (int32_t h = 0; h < c->p.n_kv_heads; h++)
        for (int32_t t = 0; t < n; t++) {
            const size_t off = ((size_t)h * (size_t)n + (size_t)t) * (size_t)d;
            read_row(c, 0, layer, h, pos + t, newest, k_out + off);
            read_row(c, 1, layer, h, pos + t, newest, v_out + off);
        }
    return TQ_OK;
}

static uint64_t kv_bytes_used(const tq_kv_cache *c) {
    const uint64_t L = (uint64_t)c->p.n_layers, H = (uint64_t)c->p.n_kv_heads,
                   d = (uint64_t)c->p.head_dim, n = (uint64_t)c->n_pos;
    uint64_t total = 0;
    for (int w = 0; w < 2; w++) {
        const turbo_store *s = &c->st[w];
        const uint64_t sinks = n < (uint64_t)s->sinks ? n : (uint64_t)s->sinks;
        const uint64_t coded = n - sinks;
        const uint64_t window = coded < (uint64_t)s->window ? coded : (uint64_t)s->window;
        total += L * H * (sinks * d * 2 + coded * s->codec.row_bytes + window * d * 2);
        if (s->sign) total += L * d * sizeof(float);
    }
    return total + turbo_calib_bytes(c);
}

/* ---- plugin --------------------------------------------------------------------- */

static const tq_kv_iface kv_turbo_iface = {
    .size = sizeof(tq_kv_iface),
    .create = kv_create,
    .destroy = kv_destroy,
    .append = kv_append,
    .truncate = kv_truncate,
    .bytes_used = kv_bytes_used,
    .read = kv_read,
    .view = NULL, /* no plain view: attention runs on the codes */
    .attention = turbo_attention,
};

static tq_status kv_init(const tq_host *host, void **state, tq_error *err) {
    if (!host->alloc || !host->free || !host->parallel_for || !host->log)
        return fail(err, TQ_ERR_ABI, "turbo: the host table lacks alloc/free/parallel_for/log");
    turbo_tables_init();
    turbo_rotation_init();
    *state = (void *)host;
    return TQ_OK;
}

static void kv_deinit(void *state) { (void)state; }

static const void *kv_get_interface(void *state, const char *id) {
    (void)state;
    return strcmp(id, TQ_IFACE_KV) == 0 ? &kv_turbo_iface : NULL;
}

TQ_PLUGIN_ENTRY = {
    .size = sizeof(tq_plugin_entry),
    .abi_major = TQ_ABI_MAJOR,
    .abi_minor = TQ_ABI_MINOR,
    .kind = TQ_PLUGIN_KV,
    .id = "org.tqrun.kv.turbo",
    .name = PLUGIN_NAME,
    .version = "0.1.0",
    .description = "TurboQuant KV cache: tq4/tq3/tq2 rotated Lloyd-Max codes, q8_0, f16; "
                   "compressed-domain attention (scalar reference)",
    .required_cpu = 0,
    .priority = 0,
    .init = kv_init,
    .deinit = kv_deinit,
    .get_interface = kv_get_interface,
};
