/* smp_hmc.c: hybrid Monte Carlo (ALGORITHM.md §4), exact and with one mini-batch per trajectory
 * (mbhmc). One step of the chain is one trajectory: p ~ N(0, m T), L leapfrog steps of a size
 * jittered uniformly in h [1 - jitter, 1 + jitter], then Metropolis on H = U + |p|^2 / (2m) with
 * the full-set U at both ends. mbhmc integrates with the gradient of U_B for one mini-batch drawn
 * at the start of the trajectory: the map is still reversible and volume preserving, so the
 * chain stays exact, but the acceptance collapses unless h is tiny. A trajectory whose end H is
 * not finite is rejected like any other improbable proposal.
 *
 * On a rejection the momenta go back to the trajectory's start, p0 (kept in p_keep), like w and g:
 * kin_T then reports the momentum of the state the chain is in, and a trajectory that overflowed
 * cannot leave inf/NaN in p, which the next draw (p = 0 * p + noise) would carry into H0 and so
 * reject every later trajectory. */
#include <math.h>
#include <stdlib.h>

#include "sampler.h"

typedef struct hmc_state {
    float *p, *p_keep, *w_keep, *g_keep; /* backend, n */
    double U;                   /* full-set U of the current w */
    int64_t tries, accepts;     /* since the last record */
    double last_dH;
} hmc_state;

static hmc_state *st(smp_chain *c) { return c->state; }

static int hmc_alloc(smp_chain *c, bz_err *e)
{
    be *b = c->b;
    hmc_state *s = calloc(1, sizeof *s);
    if (!s) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the hMC state");
    c->state = s;
    s->p = b->ops->alloc(b->ctx, c->n);
    s->p_keep = b->ops->alloc(b->ctx, c->n);
    s->w_keep = b->ops->alloc(b->ctx, c->n);
    s->g_keep = b->ops->alloc(b->ctx, c->n);
    s->last_dH = NAN;
    if (!s->p || !s->p_keep || !s->w_keep || !s->g_keep)
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the hMC state");
    return 0;
}

static double full_U(smp_chain *c, const float *w)
{
    pot_obs o;
    c->b->ops->observe(c->b->ctx, w, false, &o);
    return o.U;
}

/* Gradient for the leapfrog: full set (hmc) or the trajectory's mini-batch (mbhmc). Returns the
 * full U when it comes for free (hmc), NaN otherwise. */
static double leapfrog_grad(smp_chain *c, const float *w, float *g)
{
    be *b = c->b;
    if (c->sp->method == SM_MBHMC) {
        b->ops->grad_batch(b->ctx, w, c->idx, c->sp->batch, g);
        return NAN;
    }
    return b->ops->grad_full(b->ctx, w, g);
}

static int hmc_start(smp_chain *c, bz_err *e)
{
    int rc = hmc_alloc(c, e);
    if (rc) return rc;
    st(c)->U = c->b->ops->grad_full(c->b->ctx, c->w, c->g);
    return 0;
}

static double kinetic(smp_chain *c, const float *p)
{
    double sum;
    c->b->ops->sq_stats(c->b->ctx, p, NULL, c->n, &sum, NULL);
    return sum / (2.0 * c->sp->mass);
}

static int hmc_step(smp_chain *c, bz_err *e)
{
    (void)e;
    hmc_state *s = st(c);
    be *b = c->b;
    const int64_t n = c->n;
    const double m = c->sp->mass;
    const float h = (float)(c->sp->h * (1.0 + c->sp->jitter * (2.0 * rng_uniform(&c->rng) - 1.0)));
    b->ops->add_noise(b->ctx, s->p, 0.0f, NULL, (float)sqrt(m * c->T), n);
    b->ops->copy(b->ctx, s->p_keep, s->p, n);
    b->ops->copy(b->ctx, s->w_keep, c->w, n);
    b->ops->copy(b->ctx, s->g_keep, c->g, n);
    if (c->sp->method == SM_MBHMC) {
        smp_draw_batch(c);
        leapfrog_grad(c, c->w, c->g);
    }
    const double H0 = s->U + kinetic(c, s->p);
    double U1 = NAN;
    for (int32_t k = 0; k < c->sp->leapfrog; k++) {
        b->ops->axpy(b->ctx, s->p, -0.5f * h, c->g, NULL, n);
        b->ops->axpy(b->ctx, c->w, (float)(h / m), s->p, NULL, n);
        U1 = leapfrog_grad(c, c->w, c->g);
        b->ops->axpy(b->ctx, s->p, -0.5f * h, c->g, NULL, n);
    }
    if (c->sp->method == SM_MBHMC) U1 = full_U(c, c->w);
    const double H1 = U1 + kinetic(c, s->p);
    const double dH = H1 - H0;
    s->last_dH = dH;
    s->tries++;
    const double u = rng_uniform(&c->rng);
    if (isfinite(dH) && log(u) < -dH / c->T) {
        s->accepts++;
        s->U = U1; /* hmc: g already holds grad U(w'); mbhmc redraws its batch gradient */
    } else {
        b->ops->copy(b->ctx, s->p, s->p_keep, n);
        b->ops->copy(b->ctx, c->w, s->w_keep, n);
        b->ops->copy(b->ctx, c->g, s->g_keep, n);
    }
    return 0;
}

static void hmc_observe(smp_chain *c, obs_record *r)
{
    hmc_state *s = st(c);
    r->v[OBS_ACC_RATE] = s->tries ? (double)s->accepts / (double)s->tries : NAN;
    r->v[OBS_DH] = s->last_dH;
    r->v[OBS_KIN_T] = 2.0 * kinetic(c, s->p) / (double)c->n;
    s->tries = s->accepts = 0;
}

typedef struct hmc_scalars {
    double U, last_dH;
    int64_t tries, accepts;
} hmc_scalars;

static int hmc_save(smp_chain *c, ckpt_writer *w, bz_err *e)
{
    hmc_state *s = st(c);
    hmc_scalars sc = {s->U, s->last_dH, s->tries, s->accepts};
    int rc = ckpt_put(w, "hmc", &sc, sizeof sc, e);
    if (!rc) rc = smp_put_buffer(c, w, "hmc_p", s->p, c->n, e);
    return rc;
}

static int hmc_load(smp_chain *c, ckpt_reader *r, bz_err *e)
{
    hmc_state *s = st(c);
    hmc_scalars sc;
    int rc = ckpt_get(r, "hmc", &sc, sizeof sc, e);
    if (!rc) rc = smp_get_buffer(c, r, "hmc_p", s->p, c->n, e);
    if (rc) return rc;
    s->U = sc.U;
    s->last_dH = sc.last_dH;
    s->tries = sc.tries;
    s->accepts = sc.accepts;
    return 0;
}

static void hmc_destroy(smp_chain *c)
{
    hmc_state *s = st(c);
    if (!s) return;
    be *b = c->b;
    if (s->p) b->ops->release(b->ctx, s->p);
    if (s->p_keep) b->ops->release(b->ctx, s->p_keep);
    if (s->w_keep) b->ops->release(b->ctx, s->w_keep);
    if (s->g_keep) b->ops->release(b->ctx, s->g_keep);
    free(s);
    c->state = NULL;
}

/* Replica exchange: w, w0 and g moved with the configuration; so does its full-set U. Momenta are
 * drawn afresh at the start of every trajectory, at the chain's own T, so nothing else moves. */
static int hmc_swap(smp_chain *a, smp_chain *b, bz_err *e)
{
    (void)e;
    double U = st(a)->U;
    st(a)->U = st(b)->U;
    st(b)->U = U;
    return 0;
}

const smp_vtable smp_hmc = {SM_HMC, hmc_start, hmc_alloc, hmc_step, hmc_observe, hmc_save, hmc_load, hmc_destroy,
                            hmc_swap, NULL, NULL /* gradients inside a trajectory: no lockstep */};
const smp_vtable smp_mbhmc = {SM_MBHMC, hmc_start, hmc_alloc, hmc_step, hmc_observe, hmc_save, hmc_load, hmc_destroy,
                              NULL /* exchange: hmc, pl and sgld only */, NULL, NULL};
