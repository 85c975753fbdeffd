/* noise_diag.h: the mini-batch noise diagnostics of ALGORITHM.md §5 (paper §III.1), measured
 * every diagnostics.noise_every steps at the chain's current w:
 *   nu_i = (g_B,i - grad_i U) / s_i for D fresh mini-batches (s_i^2: the exact variance of the
 *   mini-batch mean gradient, from per-example moments over the training set),
 *   noise_ks_frac: fraction of components whose KS test of nu_i against N(0,1) has p < 0.05,
 *   noise_corr: mean |off-diagonal correlation| among a random subset of 256 components,
 *   noise_acf1: lag-1 autocorrelation of nu between consecutive mini-batch draws at this w
 *     (ALGORITHM.md says "between consecutive steps": at a fixed w that is the draw-to-draw
 *     independence the sampler relies on; the autocorrelation along the dynamics, lag by lag, is
 *     measured by bench/noise_stats).
 * Components without noise (s_i^2 ~ 0 at a trained state, nu identically 0) have no correlation:
 * they are left out of noise_corr and noise_acf1, which are null when no component is left.
 * The KS test uses up to NOISE_MAX_COMPONENTS random components with s_i > 0, so memory stays
 * D x NOISE_MAX_COMPONENTS floats whatever n is. */
#ifndef BZ_NOISE_DIAG_H
#define BZ_NOISE_DIAG_H

#include "observables.h"
#include "sampler.h"

#define NOISE_MAX_COMPONENTS 4096
#define NOISE_CORR_COMPONENTS 256

typedef struct noise_diag {
    be *b;
    int32_t D;              /* mini-batches per measurement */
    double *s2;             /* host, n: exact s_i^2 */
    double *gsum;           /* host, n: scratch */
    float *gfull, *gb;      /* host, n */
    float *dev;             /* backend, n */
    int64_t *comp;          /* chosen components */
    int64_t n_comp;
    float *nu;              /* (D, n_comp) */
} noise_diag;

int noise_diag_init(noise_diag *d, smp_chain *c, int32_t D, bz_err *e);
/* Measure at the current w; results go to c->noise_stats. */
int noise_diag_measure(noise_diag *d, smp_chain *c, bz_err *e);
/* Copy the chain's last measurement (c->noise_stats, kept in checkpoints) into the record. */
void noise_diag_fill(const smp_chain *c, obs_record *r);
void noise_diag_free(noise_diag *d);

/* Kolmogorov-Smirnov p-value of a sample x[0..m) (sorted in place) against N(0,1). */
double noise_ks_pvalue(double *x, int32_t m);

#endif
