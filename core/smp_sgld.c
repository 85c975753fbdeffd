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

/* Split around the mini-batch gradient for lockstep batches (multichain.h): draw each chain's
 * batch, then with c->g = grad U_B(w) the update w <- w - lr g + sqrt(2 lr T) xi, each chain at
 * its own T. A lone chain is a batch of one (smp_step_split). */
static int sgld_step_pre(smp_batch *b)
{
    for (int32_t k = 0; k < b->m; k++) smp_draw_batch(b->c[k]);
    return 0;
}

static int sgld_step_post(smp_batch *b)
{
    const double lr = b->c[0]->sp->lr;
    float *w[SMP_BATCH_MAX], amp[SMP_BATCH_MAX];
    const float *g[SMP_BATCH_MAX];
    for (int32_t k = 0; k < b->m; k++) {
        smp_chain *c = b->c[k];
        w[k] = c->w, g[k] = c->g;
        amp[k] = (float)sqrt(2.0 * lr * c->T);
    }
    smp_batch_axpy(b, w, (float)-lr, g, NULL);
    smp_batch_add_noise(b, w, 1.0f, NULL, amp);
    return 0;
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

const smp_vtable smp_sgld = {SM_SGLD, sgld_start, sgld_alloc, smp_step_split, sgld_observe, sgld_save, sgld_load, sgld_destroy,
                             NULL /* nothing beyond w moves with a configuration */, sgld_step_pre,
                             sgld_step_post};
