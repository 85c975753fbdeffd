/* smp_naive_pl.c: the naive baseline (ALGORITHM.md §6): the O-B-A-B-O step with mini-batch
 * gradients, one uniform mass, and the full thermal noise s2 = (1 - c^2) m T with no
 * compensation for the mini-batch noise; correct only as h -> 0. */
#include <math.h>
#include <stdlib.h>

#include "sampler.h"

typedef struct naive_state {
    float *p;   /* backend, n */
    double c;   /* exp(-gamma h / 2) */
    float sig;  /* sqrt((1 - c^2) m T) */
} naive_state;

static naive_state *st(smp_chain *c) { return c->state; }

static int naive_alloc(smp_chain *c, bz_err *e)
{
    naive_state *s = calloc(1, sizeof *s);
    if (!s) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the naive_pl state");
    c->state = s;
    s->p = c->b->ops->alloc(c->b->ctx, c->n);
    if (!s->p) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the naive_pl state");
    s->c = exp(-c->sp->gamma * c->sp->h / 2.0);
    s->sig = (float)sqrt((1.0 - s->c * s->c) * c->sp->mass * c->T);
    return 0;
}

static int naive_start(smp_chain *c, bz_err *e)
{
    int rc = naive_alloc(c, e);
    if (rc) return rc;
    be *b = c->b;
    b->ops->add_noise(b->ctx, st(c)->p, 0.0f, NULL, (float)sqrt(c->sp->mass * c->T), c->n);
    smp_draw_batch(c);
    b->ops->grad_batch(b->ctx, c->w, c->idx, c->sp->batch, c->g);
    return 0;
}

static int naive_step(smp_chain *c, bz_err *e)
{
    naive_state *s = st(c);
    be *b = c->b;
    const float h = (float)c->sp->h, cc = (float)s->c;
    const int64_t n = c->n;
    b->ops->add_noise(b->ctx, s->p, cc, NULL, s->sig, n);
    b->ops->axpy(b->ctx, s->p, -0.5f * h, c->g, NULL, n);
    b->ops->axpy(b->ctx, c->w, (float)(h / c->sp->mass), s->p, NULL, n);
    smp_draw_batch(c);
    b->ops->grad_batch(b->ctx, c->w, c->idx, c->sp->batch, c->g);
    b->ops->axpy(b->ctx, s->p, -0.5f * h, c->g, NULL, n);
    b->ops->add_noise(b->ctx, s->p, cc, NULL, s->sig, n);
    double kin;
    b->ops->sq_stats(b->ctx, s->p, NULL, n, &kin, NULL);
    if (!isfinite(kin))
        return bz_fail(e, BZ_EDIVERGED, NULL, "diverged at step %lld: the momenta are not finite; %s",
                       (long long)c->step + 1, smp_divergence_hint(SM_NAIVE_PL));
    return 0;
}

static void naive_observe(smp_chain *c, obs_record *r)
{
    double kin;
    c->b->ops->sq_stats(c->b->ctx, st(c)->p, NULL, c->n, &kin, NULL);
    r->v[OBS_KIN_T] = kin / (c->sp->mass * (double)c->n);
}

static int naive_save(smp_chain *c, ckpt_writer *w, bz_err *e) { return smp_put_buffer(c, w, "naive_p", st(c)->p, c->n, e); }
static int naive_load(smp_chain *c, ckpt_reader *r, bz_err *e) { return smp_get_buffer(c, r, "naive_p", st(c)->p, c->n, e); }

static void naive_destroy(smp_chain *c)
{
    naive_state *s = st(c);
    if (!s) return;
    if (s->p) c->b->ops->release(c->b->ctx, s->p);
    free(s);
    c->state = NULL;
}

const smp_vtable smp_naive_pl = {SM_NAIVE_PL, naive_start, naive_alloc, naive_step, naive_observe,
                                 naive_save, naive_load, naive_destroy, NULL,
                                 NULL, NULL /* batched: pl, hmc and sgld only */};
