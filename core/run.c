/* run.c: the chain loop (see run.h). */
#include "run.h"

#include <stdlib.h>

#include "noise_diag.h"

static bool due(int64_t step, int64_t every) { return every > 0 && step % every == 0; }

static int emit_record(smp_chain *c, const run_sink *s, const noise_diag *nd, obs_record *r, bz_err *e)
{
    /* A device backend's asynchronous failure surfaces here with its own message (its value
     * calls return NaN afterwards, which would otherwise read as a divergence). */
    int rs = c->b->ops->sync(c->b->ctx, e);
    if (rs) return rs;
    int rc = smp_chain_observe(c, c->spec->record.test, r, e);
    if (nd) noise_diag_fill(c, r);
    /* The record goes out even when it shows the divergence: nothing before it is lost and the
     * non-finite value is visible in the series. */
    int rc2 = s->on_record ? s->on_record(s->ctx, r, e) : 0;
    if (s->on_progress) s->on_progress(s->ctx, c, r);
    return rc ? rc : rc2;
}

static int emit_sample(smp_chain *c, const run_sink *s, float *host, bz_err *e)
{
    if (!s->on_sample) return 0;
    c->b->ops->download(c->b->ctx, host, c->w, c->n);
    return s->on_sample(s->ctx, c->step, c->t_wall, host, c->n, e);
}

/* The end of a chain: the last record (unless one was just made, or the chain is only being
 * stopped: a resumed chain then writes exactly the records an uninterrupted one would) and the
 * final checkpoint. */
static int finish(smp_chain *c, const run_sink *s, const noise_diag *nd, int64_t last_record, bool stopping,
                  bz_err *e)
{
    obs_record r;
    int rc = 0;
    if (!stopping && last_record != c->step) rc = emit_record(c, s, nd, &r, e);
    if (!rc && s->on_checkpoint) rc = s->on_checkpoint(s->ctx, c, true, e);
    return rc;
}

int run_chain(smp_chain *c, const run_sink *s, bz_err *e)
{
    const bz_spec *spec = c->spec;
    if (c->step >= spec->sampler.steps) return 0; /* resumed from the final checkpoint: done */
    float *host = s->on_sample ? malloc(sizeof(float) * (size_t)c->n) : NULL;
    if (s->on_sample && !host) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for weight samples");
    noise_diag nd_store, *nd = NULL;
    int rc = 0;
    if (spec->noise_every > 0) {
        rc = noise_diag_init(&nd_store, c, spec->noise_batches, e);
        if (rc) goto out;
        nd = &nd_store;
    }
    obs_record r;
    int64_t last_record = -1;
    if (c->step == 0) {
        rc = emit_record(c, s, nd, &r, e);
        if (!rc) rc = due(0, spec->samples_every) ? emit_sample(c, s, host, e) : 0;
        if (rc) goto out;
        last_record = 0;
    }
    while (c->step < spec->sampler.steps && !c->stop_early) {
        if (s->should_stop && s->should_stop(s->ctx)) {
            rc = finish(c, s, nd, last_record, true, e);
            if (!rc) rc = bz_fail(e, BZ_ECANCELLED, NULL, "stopped at step %lld", (long long)c->step);
            goto out;
        }
        rc = smp_chain_step(c, e);
        if (rc) {
            bz_err be;
            if (c->b->ops->sync(c->b->ctx, &be)) { /* the device's error, not its NaN */
                *e = be;
                rc = be.code;
                goto out;
            }
            obs_record last;
            bz_err ignore;
            emit_record(c, s, nd, &last, &ignore); /* the state at the failure, for the record */
            goto out;
        }
        if (nd && due(c->step, spec->noise_every)) {
            rc = noise_diag_measure(nd, c, e);
            if (rc) goto out;
        }
        if (due(c->step, spec->record.every)) {
            rc = emit_record(c, s, nd, &r, e);
            if (rc) goto out;
            last_record = c->step;
        }
        if (due(c->step, spec->samples_every) && (rc = emit_sample(c, s, host, e))) goto out;
        if (due(c->step, spec->checkpoint_every) && c->step < spec->sampler.steps && s->on_checkpoint &&
            (rc = s->on_checkpoint(s->ctx, c, false, e)))
            goto out;
    }
    rc = finish(c, s, nd, last_record, false, e);
out:
    if (nd) noise_diag_free(nd);
    free(host);
    return rc;
}
