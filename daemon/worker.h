/* worker.h: the daemon's worker threads. Each claims the next queued job from the store, runs
 * its chain to the end (resuming from its newest checkpoint after a restart), and writes
 * observables (batched), samples and checkpoints; it honours cancel within one record interval
 * and, at shutdown, checkpoints the chain and puts the job back in the queue. A batched sweep
 * ("batched": true) is claimed whole: one worker runs all its chains as one group (worker.c). */
#ifndef BZ_WORKER_H
#define BZ_WORKER_H

#include "daemon.h"

typedef struct worker_pool worker_pool;

int workers_start(bz_daemon *d, worker_pool **out, bz_err *e);
/* Wait for every worker to finish its current chain (they stop when d->shutting_down is set). */
void workers_join(worker_pool *p);

#endif
