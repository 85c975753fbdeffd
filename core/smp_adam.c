/* smp_adam.c: the Adam baseline (ALGORITHM.md §6): minimisation of U_B (beta1 0.9, beta2 0.999,
 * eps 1e-8) with optional early stopping. With early stopping the job holds out
 * val_fraction of the training rows (setup_hold_out) and checks their loss at every record; after
 * `patience` records without a new best, the chain restores the best weights and stops. The
 * record that triggers the stop is the chain's last (run_chain makes no further record at the same
 * step), so its static observables are re-evaluated on the restored weights: the last record
 * describes the weights the job ends with (its val_loss is the best one), not the discarded ones. */
#include <math.h>
#include <stdlib.h>

#include "sampler.h"

typedef struct adam_state {
    float *m1, *m2, *w_best; /* backend, n (w_best only with early stopping) */
    double best_val;         /* best validation loss so far */
    int64_t best_step, since_best;
} adam_state;

static adam_state *st(smp_chain *c) { return c->state; }

static int adam_alloc(smp_chain *c, bz_err *e)
{
    be *b = c->b;
    adam_state *s = calloc(1, sizeof *s);
    if (!s) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the Adam state");
    c->state = s;
    s->m1 = b->ops->alloc(b->ctx, c->n);
    s->m2 = b->ops->alloc(b->ctx, c->n);
    s->w_best = c->sp->early_stopping ? b->ops->alloc(b->ctx, c->n) : NULL;
    s->best_val = INFINITY;
    s->best_step = -1;
    if (!s->m1 || !s->m2 || (c->sp->early_stopping && !s->w_best))
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the Adam state");
    return 0;
}

static int adam_start(smp_chain *c, bz_err *e) { return adam_alloc(c, e); }

static int adam_step(smp_chain *c, bz_err *e)
{
    adam_state *s = st(c);
    be *b = c->b;
    smp_draw_batch(c);
    b->ops->grad_batch(b->ctx, c->w, c->idx, c->sp->batch, c->g);
    b->ops->adam(b->ctx, c->w, c->g, s->m1, s->m2, (float)c->sp->lr, 0.9f, 0.999f, 1e-8f, c->step + 1, c->n);
    double m2sum;
    b->ops->sq_stats(b->ctx, s->m1, NULL, c->n, &m2sum, NULL);
    if (!isfinite(m2sum))
        return bz_fail(e, BZ_EDIVERGED, NULL, "diverged at step %lld: the gradient is not finite; %s",
                       (long long)c->step + 1, smp_divergence_hint(SM_ADAM));
    return 0;
}

/* Overwrite r's static observables with those of the (restored) weights c->w; the test set is
 * evaluated when the record already carries it. */
static void describe_restored(smp_chain *c, obs_record *r)
{
    pot_obs o;
    smp_fill_static(c, !isnan(r->v[OBS_TEST_ERR]), r, &o);
}

/* Early stopping bookkeeping on the record's validation loss. */
static void adam_observe(smp_chain *c, obs_record *r)
{
    adam_state *s = st(c);
    if (!c->sp->early_stopping || !isfinite(r->v[OBS_VAL_LOSS])) return;
    be *b = c->b;
    if (r->v[OBS_VAL_LOSS] < s->best_val) {
        s->best_val = r->v[OBS_VAL_LOSS];
        s->best_step = c->step;
        s->since_best = 0;
        b->ops->copy(b->ctx, s->w_best, c->w, c->n);
        return;
    }
    if (++s->since_best >= c->sp->patience && !c->stop_early) {
        b->ops->copy(b->ctx, c->w, s->w_best, c->n);
        c->stop_early = true;
        describe_restored(c, r);
    }
}

typedef struct adam_scalars {
    double best_val;
    int64_t best_step, since_best;
} adam_scalars;

static int adam_save(smp_chain *c, ckpt_writer *w, bz_err *e)
{
    adam_state *s = st(c);
    adam_scalars sc = {s->best_val, s->best_step, s->since_best};
    int rc = ckpt_put(w, "adam", &sc, sizeof sc, e);
    if (!rc) rc = smp_put_buffer(c, w, "adam_m1", s->m1, c->n, e);
    if (!rc) rc = smp_put_buffer(c, w, "adam_m2", s->m2, c->n, e);
    if (!rc && s->w_best) rc = smp_put_buffer(c, w, "adam_best", s->w_best, c->n, e);
    return rc;
}

static int adam_load(smp_chain *c, ckpt_reader *r, bz_err *e)
{
    adam_state *s = st(c);
    adam_scalars sc;
    int rc = ckpt_get(r, "adam", &sc, sizeof sc, e);
    if (!rc) rc = smp_get_buffer(c, r, "adam_m1", s->m1, c->n, e);
    if (!rc) rc = smp_get_buffer(c, r, "adam_m2", s->m2, c->n, e);
    if (!rc && s->w_best) rc = smp_get_buffer(c, r, "adam_best", s->w_best, c->n, e);
    if (rc) return rc;
    s->best_val = sc.best_val;
    s->best_step = sc.best_step;
    s->since_best = sc.since_best;
    return 0;
}

static void adam_destroy(smp_chain *c)
{
    adam_state *s = st(c);
    if (!s) return;
    be *b = c->b;
    if (s->m1) b->ops->release(b->ctx, s->m1);
    if (s->m2) b->ops->release(b->ctx, s->m2);
    if (s->w_best) b->ops->release(b->ctx, s->w_best);
    free(s);
    c->state = NULL;
}

const smp_vtable smp_adam = {SM_ADAM, adam_start, adam_alloc, adam_step, adam_observe, adam_save, adam_load, adam_destroy, NULL,
                             NULL, NULL /* Adam is an optimiser: never batched */};
