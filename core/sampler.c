/* sampler.c: the chain shared by every sampler: creation, the sampler table, timing, the
 * observables record, divergence reporting and checkpoints of the common state. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"

extern const smp_vtable smp_pl, smp_hmc, smp_mbhmc, smp_naive_pl, smp_sgld, smp_adam;

/* The sampler table: one line per method. */
static const smp_vtable *const smp_table[SM_COUNT] = {
    [SM_PL] = &smp_pl,
    [SM_HMC] = &smp_hmc,
    [SM_MBHMC] = &smp_mbhmc,
    [SM_NAIVE_PL] = &smp_naive_pl,
    [SM_SGLD] = &smp_sgld,
    [SM_ADAM] = &smp_adam,
};

/* RNG streams of one chain, derived from sampler.seed and the chain index. */
enum { STREAM_HOST = 1000, STREAM_NOISE = 2000 };

const smp_vtable *smp_lookup(sampler_method m) { return (m >= 0 && m < SM_COUNT) ? smp_table[m] : NULL; }

double smp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int32_t chain_batch(const sampler_spec *sp, int32_t P)
{
    int32_t B = sp->batch > 0 ? sp->batch : 1;
    return B < P ? B : P;
}

int smp_chain_create(smp_chain *c, const bz_spec *s, be *b, int32_t ti, bz_err *e)
{
    memset(c, 0, sizeof *c);
    c->spec = s;
    c->sp = &s->sampler;
    c->b = b;
    c->vt = smp_lookup(s->sampler.method);
    c->T = s->sampler.T[ti];
    c->index = ti;
    c->n = b->layout.n;
    const int32_t P = b->layout.P;
    c->w = b->ops->alloc(b->ctx, c->n);
    c->w0 = b->ops->alloc(b->ctx, c->n);
    c->g = b->ops->alloc(b->ctx, c->n);
    c->perm = malloc(sizeof(int32_t) * (size_t)(P > 0 ? P : 1));
    c->idx = malloc(sizeof(int32_t) * (size_t)(chain_batch(c->sp, P) > 0 ? chain_batch(c->sp, P) : 1));
    if (!c->vt || !c->w || !c->w0 || !c->g || !c->perm || !c->idx) {
        smp_chain_destroy(c);
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for a chain of %lld weights", (long long)c->n);
    }
    for (int32_t i = 0; i < P; i++) c->perm[i] = i;
    for (int i = 0; i < 3; i++) c->noise_stats[i] = NAN;
    rng_seed(&c->rng, s->sampler.seed, STREAM_HOST + (uint64_t)ti);
    b->ops->noise_seed(b->ctx, s->sampler.seed, STREAM_NOISE + (uint64_t)ti);
    return 0;
}

int smp_chain_start(smp_chain *c, bz_err *e)
{
    be *b = c->b;
    double t0 = smp_now();
    b->ops->copy(b->ctx, c->w0, c->w, c->n);
    int rc = c->vt->start(c, e);
    c->t_wall += smp_now() - t0; /* the start (pL: the first variance estimate) is sampling time too */
    return rc;
}

void smp_chain_destroy(smp_chain *c)
{
    if (c->state && c->vt) c->vt->destroy(c);
    if (c->b && c->b->ops) {
        if (c->w) c->b->ops->release(c->b->ctx, c->w);
        if (c->w0) c->b->ops->release(c->b->ctx, c->w0);
        if (c->g) c->b->ops->release(c->b->ctx, c->g);
    }
    free(c->perm);
    free(c->idx);
    memset(c, 0, sizeof *c);
}

void smp_draw_batch(smp_chain *c)
{
    const int32_t P = c->b->layout.P;
    rng_sample_without_replacement(&c->rng, c->perm, P, chain_batch(c->sp, P), c->idx);
}

int smp_chain_step(smp_chain *c, bz_err *e)
{
    double t0 = smp_now();
    int rc = c->vt->step(c, e);
    c->t_wall += smp_now() - t0;
    if (!rc) c->step++;
    return rc;
}

/* ---- batches of chains (lockstep) ---- */

void smp_batch_one(smp_batch *b, smp_chain *c, bz_err *e)
{
    b->c[0] = c;
    b->m = 1;
    b->group_ops = false;
    b->lead = c->b;
    b->rc[0] = 0;
    b->err = e;
}

int smp_batch_fail(smp_batch *b, int32_t k, int rc)
{
    b->rc[k] = rc;
    return rc;
}

int smp_batch_status(const smp_batch *b)
{
    for (int32_t k = 0; k < b->m; k++)
        if (b->rc[k]) return b->rc[k];
    return 0;
}

int smp_step_split(smp_chain *c, bz_err *e)
{
    smp_batch one;
    smp_batch_one(&one, c, e);
    c->vt->step_pre(&one);
    c->b->ops->grad_batch(c->b->ctx, c->w, c->idx, c->sp->batch, c->g);
    return c->vt->step_post(&one);
}

static be *batch_lead(const smp_batch *b) { return b->lead ? b->lead : b->c[0]->b; }

void smp_batch_add_noise(smp_batch *b, float *const *x, float a, const float *const *s, const float *s_const)
{
    be *lead = batch_lead(b);
    const int64_t n = b->c[0]->n;
    if (b->group_ops && lead->ops->add_noise_group) {
        be_ctx *mem[SMP_BATCH_MAX];
        for (int32_t k = 0; k < b->m; k++) mem[k] = b->c[k]->b->ctx;
        lead->ops->add_noise_group(lead->ctx, b->m, mem, x, a, s, s_const, n);
        return;
    }
    for (int32_t k = 0; k < b->m; k++) {
        be *h = b->c[k]->b;
        h->ops->add_noise(h->ctx, x[k], a, s ? s[k] : NULL, s_const ? s_const[k] : 0.0f, n);
    }
}

void smp_batch_axpy(smp_batch *b, float *const *y, float a, const float *const *x, const float *const *v)
{
    be *lead = batch_lead(b);
    const int64_t n = b->c[0]->n;
    if (b->group_ops && lead->ops->axpy_group) {
        lead->ops->axpy_group(lead->ctx, b->m, y, a, x, v, n);
        return;
    }
    for (int32_t k = 0; k < b->m; k++) {
        be *h = b->c[k]->b;
        h->ops->axpy(h->ctx, y[k], a, x[k], v ? v[k] : NULL, n);
    }
}

int smp_batch_sq_max(smp_batch *b, const float *const *x, const float *const *v, double *max)
{
    be *lead = batch_lead(b);
    const int64_t n = b->c[0]->n;
    if (b->group_ops && lead->ops->sq_max_lagged_group) {
        be_ctx *mem[SMP_BATCH_MAX];
        for (int32_t k = 0; k < b->m; k++) mem[k] = b->c[k]->b->ctx;
        return lead->ops->sq_max_lagged_group(lead->ctx, b->m, mem, x, v, n, max);
    }
    int lag = 0;
    for (int32_t k = 0; k < b->m; k++) {
        be *h = b->c[k]->b;
        const float *vk = v ? v[k] : NULL;
        if (h->ops->sq_max_lagged) /* device backends: a value a few steps old, no round trip */
            lag = h->ops->sq_max_lagged(h->ctx, x[k], vk, n, &max[k]);
        else
            h->ops->sq_stats(h->ctx, x[k], vk, n, NULL, &max[k]);
    }
    return lag;
}

const char *smp_divergence_hint(sampler_method m)
{
    switch (m) {
    case SM_PL: return "lower sampler.r0 / sampler.r_max, or T, or keep the runaway guard on (z_guard)";
    case SM_HMC:
    case SM_MBHMC: return "lower sampler.h or sampler.leapfrog";
    case SM_NAIVE_PL: return "lower sampler.h or raise sampler.mass";
    case SM_SGLD:
    case SM_ADAM: return "lower sampler.lr";
    default: return "check the spec";
    }
}

void smp_fill_static(smp_chain *c, bool with_test, obs_record *r, pot_obs *o)
{
    be *b = c->b;
    b->ops->observe(b->ctx, c->w, with_test && b->layout.has_test, o);
    r->v[OBS_U] = o->U;
    r->v[OBS_LOSS] = o->loss;
    r->v[OBS_W2] = o->w2;
    r->v[OBS_TRAIN_ERR] = o->train_err;
    r->v[OBS_TEST_ERR] = o->test_err;
    r->v[OBS_TEST_LOSS] = o->test_loss;
    r->v[OBS_VAL_ERR] = o->val_err;
    r->v[OBS_VAL_LOSS] = o->val_loss;
    r->v[OBS_MSD0] = b->ops->dist2(b->ctx, c->w, c->w0, c->n) / (double)c->n;
}

int smp_chain_observe(smp_chain *c, bool with_test, obs_record *r, bz_err *e)
{
    obs_clear(r, c->step, c->t_wall, c->T, c->index);
    pot_obs o;
    smp_fill_static(c, with_test, r, &o);
    c->vt->observe(c, r);
    const char *bad = !isfinite(o.U) ? "U" : !isfinite(o.w2) ? "w" : NULL;
    if (!bad && (isnan(r->v[OBS_KIN_T]) ? false : !isfinite(r->v[OBS_KIN_T]))) bad = "p";
    if (bad)
        return bz_fail(e, BZ_EDIVERGED, NULL, "diverged at step %lld: %s is not finite; %s",
                       (long long)c->step, bad, smp_divergence_hint(c->sp->method));
    return 0;
}

/* ---- checkpoints ---- */

int smp_put_buffer(smp_chain *c, ckpt_writer *w, const char *tag, const float *buf, int64_t count, bz_err *e)
{
    float *host = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1));
    if (!host) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory writing checkpoint section '%s'", tag);
    c->b->ops->download(c->b->ctx, host, buf, count);
    int rc = ckpt_put(w, tag, host, sizeof(float) * (uint64_t)count, e);
    free(host);
    return rc;
}

int smp_get_buffer(smp_chain *c, ckpt_reader *r, const char *tag, float *buf, int64_t count, bz_err *e)
{
    uint64_t bytes = 0;
    const void *src = ckpt_find(r, tag, &bytes);
    if (!src) return bz_fail(e, BZ_EFORMAT, tag, "checkpoint has no section '%s'", tag);
    if (bytes != sizeof(float) * (uint64_t)count)
        return bz_fail(e, BZ_EFORMAT, tag, "checkpoint section '%s' holds %llu bytes, expected %llu", tag,
                       (unsigned long long)bytes, (unsigned long long)(sizeof(float) * (uint64_t)count));
    float *host = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1));
    if (!host) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory reading checkpoint section '%s'", tag);
    memcpy(host, src, (size_t)bytes);
    c->b->ops->upload(c->b->ctx, buf, host, count);
    free(host);
    return 0;
}

/* Chain scalars stored as one section. */
typedef struct chain_scalars {
    int64_t step;
    double t_wall;
    double T;
    int32_t index;
    int32_t stop_early;
    double noise_stats[3];
} chain_scalars;

static int save_common(smp_chain *c, ckpt_writer *w, bz_err *e)
{
    chain_scalars sc = {c->step, c->t_wall, c->T, c->index, c->stop_early,
                        {c->noise_stats[0], c->noise_stats[1], c->noise_stats[2]}};
    be *b = c->b;
    size_t ns = b->ops->noise_state_size(b->ctx);
    void *noise = malloc(ns ? ns : 1);
    if (!noise) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory writing a checkpoint");
    b->ops->noise_save(b->ctx, noise);
    int rc = ckpt_put(w, "chain", &sc, sizeof sc, e);
    if (!rc) rc = ckpt_put(w, "rng_host", &c->rng, sizeof c->rng, e);
    if (!rc) rc = ckpt_put(w, "rng_noise", noise, ns, e);
    free(noise);
    if (!rc) rc = smp_put_buffer(c, w, "w", c->w, c->n, e);
    if (!rc) rc = smp_put_buffer(c, w, "w0", c->w0, c->n, e);
    if (!rc) rc = smp_put_buffer(c, w, "g", c->g, c->n, e);
    return rc;
}

static int load_common(smp_chain *c, ckpt_reader *r, bz_err *e)
{
    chain_scalars sc;
    be *b = c->b;
    size_t ns = b->ops->noise_state_size(b->ctx);
    uint64_t nbytes = 0;
    const void *noise = ckpt_find(r, "rng_noise", &nbytes);
    if (!noise || nbytes != ns)
        return bz_fail(e, BZ_EFORMAT, "rng_noise",
                       "checkpoint noise state is missing or was written by another backend (%llu bytes, "
                       "this backend keeps %zu)",
                       (unsigned long long)nbytes, ns);
    int rc = ckpt_get(r, "chain", &sc, sizeof sc, e);
    if (!rc) rc = ckpt_get(r, "rng_host", &c->rng, sizeof c->rng, e);
    if (!rc) rc = smp_get_buffer(c, r, "w", c->w, c->n, e);
    if (!rc) rc = smp_get_buffer(c, r, "w0", c->w0, c->n, e);
    if (!rc) rc = smp_get_buffer(c, r, "g", c->g, c->n, e);
    if (rc) return rc;
    b->ops->noise_load(b->ctx, noise);
    c->step = sc.step;
    c->t_wall = sc.t_wall;
    c->stop_early = sc.stop_early != 0;
    memcpy(c->noise_stats, sc.noise_stats, sizeof c->noise_stats);
    return 0;
}

int smp_chain_put_sections(smp_chain *c, ckpt_writer *w, bz_err *e)
{
    int rc = save_common(c, w, e);
    return rc ? rc : c->vt->save(c, w, e);
}

int smp_chain_get_sections(smp_chain *c, ckpt_reader *r, bz_err *e)
{
    int rc = c->state ? 0 : c->vt->alloc(c, e);
    if (!rc) rc = load_common(c, r, e);
    return rc ? rc : c->vt->load(c, r, e);
}

int smp_chain_save(smp_chain *c, const char *path, uint64_t spec_hash, bz_err *e)
{
    ckpt_header h = {CKPT_VERSION, (uint64_t)c->n, spec_hash, (int32_t)c->sp->method, c->index, c->step};
    ckpt_writer *w;
    int rc = ckpt_write_open(&w, path, &h, e);
    if (rc) return rc;
    rc = smp_chain_put_sections(c, w, e);
    if (rc) {
        ckpt_write_abort(w);
        return rc;
    }
    return ckpt_write_close(w, e);
}

int smp_chain_load(smp_chain *c, const char *path, uint64_t spec_hash, bz_err *e)
{
    ckpt_header h;
    ckpt_reader *r;
    int rc = ckpt_read_open(&r, path, &h, e);
    if (rc) return rc;
    if (h.n_params != (uint64_t)c->n || h.method != (int32_t)c->sp->method || h.chain != c->index)
        rc = bz_fail(e, BZ_EFORMAT, path,
                     "%s belongs to another chain (%llu weights, method %s, chain %d; this job has %lld weights, "
                     "method %s, chain %d)",
                     path, (unsigned long long)h.n_params, spec_method_name((sampler_method)h.method), (int)h.chain,
                     (long long)c->n, spec_method_name(c->sp->method), (int)c->index);
    else if (h.spec_hash != spec_hash)
        rc = bz_fail(e, BZ_EFORMAT, path, "%s was written for a different job spec (spec hash differs)", path);
    if (!rc) rc = smp_chain_get_sections(c, r, e);
    ckpt_read_close(r);
    return rc;
}
