/* sampler.h: the chain and the sampler table. A sampler (pl, hmc, mbhmc, naive_pl, sgld, adam)
 * is one file that fills an smp_vtable, plus one line in smp_table (sampler.c).
 *
 * The chain holds what every sampler shares: the backend, the weights, the host RNG that draws
 * mini-batch indices and control decisions, the step counter and the wall clock. Each sampler
 * keeps its own state behind chain->state and saves/loads it in checkpoint sections. */
#ifndef BZ_SAMPLER_H
#define BZ_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "ckpt.h"
#include "observables.h"
#include "rng.h"
#include "spec.h"

typedef struct smp_chain smp_chain;
typedef struct smp_batch smp_batch;

typedef struct smp_vtable {
    sampler_method method;
    /* Allocate the state and start a fresh chain from chain->w (already initialised). */
    int (*start)(smp_chain *c, bz_err *e);
    /* Allocate the state without initialising it (a checkpoint load follows). */
    int (*alloc)(smp_chain *c, bz_err *e);
    /* One step (pl/naive_pl/sgld/adam: one update; hmc/mbhmc: one trajectory). */
    int (*step)(smp_chain *c, bz_err *e);
    /* Sampler-specific observables into r (the chain fills the static ones). */
    void (*observe)(smp_chain *c, obs_record *r);
    int (*save)(smp_chain *c, ckpt_writer *w, bz_err *e);
    int (*load)(smp_chain *c, ckpt_reader *r, bz_err *e);
    void (*destroy)(smp_chain *c);
    /* Replica exchange (multichain.c), optional: a and b have just swapped their configurations
     * (w, w0, g: done by the caller); swap the rest of the state that belongs to a configuration,
     * not to a temperature, and re-thermalise each chain at its own T. NULL: the sampler keeps no
     * such state (sgld). Methods that do not support exchange are refused by the spec. */
    int (*swap)(smp_chain *a, smp_chain *b, bz_err *e);
    /* Lockstep stepping (multichain.h), optional, both or neither: a step whose one gradient is
     * the mini-batch gradient of the step's new w, split around it, for the m chains of a batch
     * at once. step_pre does everything up to that gradient and leaves each chain's batch in
     * c->idx; the caller puts grad U_B(c->w) over it into c->g (for all chains in one batched
     * call); step_post finishes the step. The elementwise updates go through smp_batch_* (one
     * group op for all chains where the handles have them). pre, the gradient, post on a batch
     * of one is exactly step (the samplers' step is written that way). Per-chain outcomes in
     * b->rc[k], b->err[k]; the return value is the first non-zero rc. NULL: the method takes
     * other gradients inside a step (hmc, mbhmc) and steps whole. */
    int (*step_pre)(smp_batch *b);
    int (*step_post)(smp_batch *b);
} smp_vtable;

struct smp_chain {
    const bz_spec *spec;
    const sampler_spec *sp;   /* &spec->sampler */
    be *b;
    const smp_vtable *vt;
    double T;
    int32_t index;            /* chain index in a sweep */
    int64_t n;                /* parameters */
    float *w;                 /* backend buffer (n) */
    float *w0;                /* backend buffer (n): weights at step 0, for msd0 */
    float *g;                 /* backend buffer (n): last gradient */
    bz_rng rng;               /* host: mini-batches and control decisions */
    int32_t *perm;            /* host scratch, identity of length P */
    int32_t *idx;             /* host: current mini-batch (batch) */
    int64_t step;             /* completed steps */
    double t_wall;            /* seconds spent in steps (summed over resumes) */
    bool stop_early;          /* set by a sampler that has finished (adam early stopping) */
    double noise_stats[3];    /* last noise diagnostics (ks_frac, corr, acf1), NaN before the first */
    void *state;
};

/* Chains of one method stepping together (multichain's lockstep mode), or one chain alone. */
#define SMP_BATCH_MAX 64
struct smp_batch {
    smp_chain *c[SMP_BATCH_MAX];
    int32_t m;
    bool group_ops;               /* the chains' handles are one group: use lead's *_group ops */
    be *lead;                     /* the group's first handle (it may belong to no chain of the
                                     batch: chain 0 can be done while others still step) */
    int rc[SMP_BATCH_MAX];        /* per chain: 0, or the code of its failure (err[k]) */
    bz_err *err;                  /* m entries, the caller's */
};

/* A batch of the one chain c (group ops off), its error into e. */
void smp_batch_one(smp_batch *b, smp_chain *c, bz_err *e);
/* Record chain k's outcome; returns rc. */
int smp_batch_fail(smp_batch *b, int32_t k, int rc);
/* The first failure (0 when none). */
int smp_batch_status(const smp_batch *b);
/* Elementwise updates of every chain of b, buffers picked per chain by the caller (x[k] belongs
 * to b->c[k]): add_noise, axpy, and the runaway guard's max_i x_i^2 v_i (lagged on device
 * backends: returns the lag, as be_ops.sq_max_lagged; 0 and the current value elsewhere). One
 * group op for all chains when b->group_ops and the handles have it, else one op per chain. */
void smp_batch_add_noise(smp_batch *b, float *const *x, float a, const float *const *s, const float *s_const);
void smp_batch_axpy(smp_batch *b, float *const *y, float a, const float *const *x, const float *const *v);
int smp_batch_sq_max(smp_batch *b, const float *const *x, const float *const *v, double *max);

/* The step of a sampler written as step_pre, gradient, step_post (pl, sgld): a batch of one. */
int smp_step_split(smp_chain *c, bz_err *e);

/* The sampler of a method (never NULL for a valid method). */
const smp_vtable *smp_lookup(sampler_method m);

/* Create the chain for temperature index ti of the spec on backend b (buffers allocated, RNGs
 * seeded). Then either upload the initial weights (setup_initial_weights) into c->w and call
 * smp_chain_start, or smp_chain_load a checkpoint. */
int smp_chain_create(smp_chain *c, const bz_spec *s, be *b, int32_t ti, bz_err *e);
int smp_chain_start(smp_chain *c, bz_err *e);
void smp_chain_destroy(smp_chain *c);

/* Draw a fresh mini-batch of the spec's batch size into c->idx. */
void smp_draw_batch(smp_chain *c);

/* One step of the sampler, timed into c->t_wall. Samplers check their own cheap scalars (pL:
 * the guard's max p^2/(mT); hMC: H) and return BZ_EDIVERGED on a non-finite value. */
int smp_chain_step(smp_chain *c, bz_err *e);

/* Observables of the current state (static ones from the backend, then the sampler's). Returns
 * BZ_EDIVERGED with a message saying where and what to change when U, w2 or kin_T is not finite. */
int smp_chain_observe(smp_chain *c, bool with_test, obs_record *r, bz_err *e);

/* The static observables of the current w (U, loss, w2, errors, test/val, msd0) into r; o gets
 * the backend's values. Used by smp_chain_observe and by samplers that change w at a record. */
void smp_fill_static(smp_chain *c, bool with_test, obs_record *r, pot_obs *o);

/* The advice for a diverged chain of this method ("lower h or r0", ...). */
const char *smp_divergence_hint(sampler_method m);

/* Checkpoint: header, chain sections and the sampler's sections. */
int smp_chain_save(smp_chain *c, const char *path, uint64_t spec_hash, bz_err *e);
int smp_chain_load(smp_chain *c, const char *path, uint64_t spec_hash, bz_err *e);

/* The chain's sections (common and the sampler's) into an open writer, or from an open reader
 * (after checking nothing: the caller checks the header). Several chains share one file through
 * ckpt_writer_prefix / ckpt_reader_prefix (multichain.c). */
int smp_chain_put_sections(smp_chain *c, ckpt_writer *w, bz_err *e);
int smp_chain_get_sections(smp_chain *c, ckpt_reader *r, bz_err *e);

/* Helpers for samplers: a backend buffer to/from a checkpoint section (via host memory). */
int smp_put_buffer(smp_chain *c, ckpt_writer *w, const char *tag, const float *buf, int64_t count, bz_err *e);
int smp_get_buffer(smp_chain *c, ckpt_reader *r, const char *tag, float *buf, int64_t count, bz_err *e);

/* Monotonic clock in seconds. */
double smp_now(void);

#endif
