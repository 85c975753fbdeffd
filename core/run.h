/* run.h: the loop that drives one chain to its end: steps, observable records, weight samples,
 * checkpoints, noise diagnostics, early stop and cancellation. The CLI (`boltzd run`) and the
 * daemon's workers differ only in the sink that receives what the loop produces. */
#ifndef BZ_RUN_H
#define BZ_RUN_H

#include <stdbool.h>

#include "observables.h"
#include "sampler.h"

typedef struct run_sink {
    void *ctx;
    /* A record of observables (step 0 on a fresh start, every record.every steps, the last step). */
    int (*on_record)(void *ctx, const obs_record *r, bz_err *e);
    /* Weights (host copy, n floats) every samples.every steps. */
    int (*on_sample)(void *ctx, int64_t step, double t_wall, const float *w, int64_t n, bz_err *e);
    /* Time to checkpoint: the sink chooses the file and calls smp_chain_save. final is set for
     * the last one (end, early stop, cancellation). */
    int (*on_checkpoint)(void *ctx, smp_chain *c, bool final, bz_err *e);
    /* Polled between steps: true stops the chain cleanly (a final checkpoint is written). */
    bool (*should_stop)(void *ctx);
    /* Progress after each record (optional). */
    void (*on_progress)(void *ctx, const smp_chain *c, const obs_record *last);
} run_sink;

/* Run c (fresh or resumed) until sampler.steps, an early stop, or should_stop. Returns 0 when the
 * chain finished or stopped early, BZ_ECANCELLED when should_stop ended it, or the error (a
 * divergence is BZ_EDIVERGED: the records before it have already reached the sink). */
int run_chain(smp_chain *c, const run_sink *sink, bz_err *e);

#endif
