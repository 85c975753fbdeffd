/* smp_sgld.c: stochastic gradient Langevin dynamics (Welling & Teh) at temperature T
 * (ALGORITHM.md §6): w <- w - lr g_B(w) + sqrt(2 lr T) xi. It has no momenta; kin_T is NaN. */
#include <math.h>
#include <stdlib.h>

#include "sampler.h"

static int sgld_alloc(smp_chain *c, bz_err *e)
{
    (void)e;
    c->state = c; /* stateless beyond the chain; non-NULL marks "allocated" */
    return 0;
}

static int sgld_start(smp_chain *c, bz_err *e) { return sgld_alloc(c, e); }

/* Split around the mini-batch gradient for lockstep groups (multichain.h): draw the batch, then
 * with c->g = grad U_B(w) the update. */
static int sgld_step_pre(smp_chain *c, bz_err *e)
{
    (void)e;
    smp_draw_batch(c);
    return 0;
}

static int sgld_step_post(smp_chain *c, bz_err *e)
{
    (void)e;
    be *b = c->b;
    const double lr = c->sp->lr;
    b->ops->axpy(b->ctx, c->w, (float)-lr, c->g, NULL, c->n);
    b->ops->add_noise(b->ctx, c->w, 1.0f, NULL, (float)sqrt(2.0 * lr * c->T), c->n);
    return 0;
}

static int sgld_step(smp_chain *c, bz_err *e)
{
    sgld_step_pre(c, e);
    c->b->ops->grad_batch(c->b->ctx, c->w, c->idx, c->sp->batch, c->g);
    return sgld_step_post(c, e);
}

static void sgld_observe(smp_chain *c, obs_record *r)
{
    (void)c;
    (void)r;
}

static int sgld_save(smp_chain *c, ckpt_writer *w, bz_err *e)
{
    (void)c, (void)w, (void)e;
    return 0;
}

static int sgld_load(smp_chain *c, ckpt_reader *r, bz_err *e)
{
    (void)c, (void)r, (void)e;
    return 0;
}

static void sgld_destroy(smp_chain *c) { c->state = NULL; }

const smp_vtable smp_sgld = {SM_SGLD, sgld_start, sgld_alloc, sgld_step, sgld_observe, sgld_save, sgld_load, sgld_destroy,
                             NULL /* nothing beyond w moves with a configuration */, sgld_step_pre,
                             sgld_step_post};
