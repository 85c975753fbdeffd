/* multichain.h: many chains of one spec run as one job (a "batched" sweep), with optional
 * replica exchange (parallel tempering) between neighbouring temperatures.
 *
 * A group holds one smp_chain per temperature of the spec (slot k runs at sampler.T[k]), each on
 * its own backend handle (the caller opens K handles on the same data: on the CPU each has its
 * own scratch, so the chains step in parallel threads, one chain per thread, OpenBLAS single-
 * threaded inside; small GEMMs do not scale across cores, many chains do), or in lockstep around
 * one batched gradient call per step (mc_set_lockstep: a CUDA handle group). Every chain keeps its
 * own sampler state, RNG streams and counters, seeded exactly as chain k of an unbatched sweep,
 * so without exchange a batched run reproduces the unbatched chains bit for bit on the CPU.
 *
 * Replica exchange (spec "exchange": {"every": E}, temperatures strictly increasing): every E
 * steps, the full-set U of every chain, then for the pairs (k, k+1) with k even (even rounds) or
 * odd (odd rounds) a swap of configurations with probability
 *     min(1, exp((1/T_k - 1/T_(k+1)) (U_k - U_(k+1))))
 * decided from the group's own RNG stream. A swap exchanges w, w0 (so msd0 follows the replica),
 * the last gradient, and the sampler's configuration-bound state (smp_vtable.swap: pL's variance
 * estimate and masses, rescaled; hMC's U); momenta are redrawn at each slot's T. Bookkeeping:
 * per-pair attempts and acceptances, the replica at each slot, and round trips (a replica that
 * has been at the lowest T, then at the highest, and is back at the lowest: one round trip).
 *
 * Records carry chain = slot and T = that slot's temperature; ex_acc (pair k, k+1, cumulative),
 * replica and round_trips are filled in when exchange is on. */
#ifndef BZ_MULTICHAIN_H
#define BZ_MULTICHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "run.h"
#include "sampler.h"

#define MC_MAX_CHAINS BZ_MAX_TEMPS

typedef struct mc_group mc_group;

/* What a group run produces; like run_sink, with the chain (slot) named. Callbacks are called
 * from the calling thread only, chains in slot order. */
typedef struct mc_sink {
    void *ctx;
    int (*on_record)(void *ctx, int32_t chain, const obs_record *r, bz_err *e);
    int (*on_sample)(void *ctx, int32_t chain, int64_t step, double t_wall, const float *w, int64_t n, bz_err *e);
    /* Time to checkpoint: the sink picks the file and calls mc_save. */
    int (*on_checkpoint)(void *ctx, mc_group *g, bool final, bz_err *e);
    /* Polled between steps, possibly from worker threads: must be thread-safe (read a flag). */
    bool (*should_stop)(void *ctx);
    /* After each round of records (optional). */
    void (*on_progress)(void *ctx, const mc_group *g);
} mc_sink;

typedef struct mc_pair_stats {
    int64_t attempts, accepts;   /* cumulative, pair (k, k+1) */
} mc_pair_stats;

struct mc_group {
    const bz_spec *spec;
    int32_t K;                       /* chains = spec->sampler.n_T */
    int32_t threads;                 /* worker threads for stepping (1: in the calling thread) */
    smp_chain chains[MC_MAX_CHAINS]; /* slot k at T[k] */
    int64_t exchange_every;          /* 0: no exchange */
    bz_rng rng;                      /* exchange decisions */
    int64_t rounds;                  /* exchange rounds done (parity picks the pairs) */
    mc_pair_stats pair[MC_MAX_CHAINS];
    int32_t replica[MC_MAX_CHAINS];  /* replica id at slot k (starts as k) */
    int8_t last_end[MC_MAX_CHAINS];  /* per replica id: 0 none yet, -1 lowest T, +1 highest T */
    bool seen_low[MC_MAX_CHAINS];    /* per replica id: has been at the lowest T */
    int64_t round_trips;             /* total over replicas */
    double exchange_time;            /* seconds in exchange rounds (U evaluations, swaps) */
    int32_t failed;                  /* slot whose error the last parallel call returned, or -1 */
    bool resumed;                    /* loaded from a checkpoint (mc_run writes no step-0 records) */
    bool lockstep;                   /* mc_set_lockstep: chains step together around one gradient call */
    bool group_grad;                 /* lockstep through the first handle's grad_batch_group */
};

/* Create the K chains of spec s on the K backend handles b[0..K) (one per chain, same data and
 * arch). threads: worker threads for stepping (<= 0: one per chain up to the machine's cores).
 * Then mc_start (fresh) or mc_load (resume). */
int mc_create(mc_group *g, const bz_spec *s, be *b, int32_t threads, bz_err *e);
/* Upload the same initial weights (host, n floats) into every chain and start each sampler. */
int mc_start(mc_group *g, const float *w_init, bz_err *e);
void mc_destroy(mc_group *g);

/* Lockstep mode (after mc_create): every step, each running chain's step_pre (sampler.h), then
 * the mini-batch gradients of all of them, then each step_post, in the calling thread. With
 * grouped (the handles were opened as one group: be_cuda_network_group, or CPU network handles)
 * the gradients are one grad_batch_group call on the first handle: on CUDA one batched GEMM per
 * layer and pass for all chains, instead of K small GEMMs from K threads. Without it, one
 * grad_batch per chain (tests). Results equal the threaded mode's (bit for bit on the CPU).
 * Methods with other gradients inside a step (hmc, mbhmc) are refused (BZ_EINVAL). */
int mc_set_lockstep(mc_group *g, bool grouped, bz_err *e);

/* Run every chain to sampler.steps (or until should_stop), with exchanges, records, samples and
 * checkpoints at the steps an unbatched chain would have them. Returns 0, BZ_ECANCELLED, or the
 * first chain's error (its message names the chain and T). */
int mc_run(mc_group *g, const mc_sink *sink, bz_err *e);

/* Step every chain until it has completed `target` steps (parallel over chains). */
int mc_advance(mc_group *g, int64_t target, const mc_sink *sink, bz_err *e);
/* One exchange round at the current state (tests call it directly). */
int mc_exchange(mc_group *g, bz_err *e);
/* Cumulative acceptance of pair (k, k+1), NaN before its first attempt. */
double mc_pair_acceptance(const mc_group *g, int32_t k);

/* One checkpoint file with every chain (sections prefixed c0/, c1/, ...) and the group state. */
int mc_save(mc_group *g, const char *path, uint64_t spec_hash, bz_err *e);
int mc_load(mc_group *g, const char *path, uint64_t spec_hash, bz_err *e);

/* The smallest completed step over the chains (all equal except after a stop mid-block). */
int64_t mc_step(const mc_group *g);

#endif
