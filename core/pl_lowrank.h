/* pl_lowrank.h: pL's low-rank noise compensation (sampler.noise_rank = k > 0), boltzd's addition
 * to ALGORITHM.md §5.
 *
 * Why. §5 compensates the mini-batch noise component by component (s2_i = (1-c^2) m_i T (1 - r_i))
 * and treats the correlations between components as negligible because each is of relative size
 * r. But the temperature along a direction is set by their coherent sum: in mass-weighted
 * coordinates the mini-batch noise has covariance R (R_ii = r_i), and along R's top eigenvector
 * the chain runs at T (1 - r + lambda_max(R)). At trained states the per-example gradients are
 * nearly low-rank (a few examples carry all the noise), lambda_max(R) ~ r lambda_max(corr) reaches
 * ~1 on a 346-weight net at r0 = 0.01, and the chain is twice as hot along the data directions it
 * fits (bench/README-pl-vs-hmc.md: training error 50% high, w2 4% low against exact hMC).
 *
 * What. At every mass update, the per-example data gradients of `rows` examples (a uniform subset
 * of the training set, all of it when P <= rows) give the noise covariance of the batch mean,
 *     C = kB V,  V = (1/(rows-1)) sum_mu d_mu d_mu^T,  d_mu = g_mu - mean,  kB = (P-B)/(B(P-1)),
 * and in mass-weighted coordinates R = A M^-1/2 C M^-1/2 = Y^T Y with rows y_mu,i = d_mu,i
 * sqrt(A kB / ((rows-1) m_i)). Its top k eigenpairs (lambda_j, q_j) come from the rows x rows Gram
 * matrix Y Y^T (LAPACK dsyevd); the rest of R is kept as its diagonal, d_res_i = R_ii - sum_j
 * lambda_j q_ji^2. The O step then injects white noise of covariance (1-c^2) T M^1/2 (I - R) M^1/2
 * instead of the diagonal (1-c^2) T M (1 - r):
 *     I - R ~ S (I - W W^T) S,  S = diag(sqrt(1 - d_res)),  W = S^-1 Q Lambda^1/2  (n x k),
 * sampled as x = S (z - U diag(1 - sqrt(1 - sigma^2)) U^T z) with W = U Sigma V^T (thin SVD from
 * the k x k matrix W^T W). This needs every sigma_j^2 < 1: where lambda_max(R) exceeds
 * PLR_CAP (0.9) every mass is raised by lambda_max / PLR_CAP first (raising masses only lowers the
 * noise share; plr_factor says by how much). Cost: one pass of single-example gradients per
 * update, O(rows^2 n) for the Gram matrix, and 2 n k per O step.
 *
 * Status: experimental, off by default. Exact on a target whose noise directions are fixed
 * (tests/unit/test_pl_lowrank.c); on the 346-weight net of bench/pl_vs_hmc it does not remove the
 * bias, because there the directions that carry the noise move with the state between updates
 * (bench/README-pl-vs-hmc.md). */
#ifndef BZ_PL_LOWRANK_H
#define BZ_PL_LOWRANK_H

#include <stdint.h>

#include "backend.h"
#include "ckpt.h"

#define PLR_CAP 0.9          /* largest lambda(R) kept by raising masses */
#define PLR_MAX_ROWS 512     /* examples per estimate */

typedef struct pl_lowrank pl_lowrank;

/* For n components, rank k, up to rows examples; NULL when out of memory. */
pl_lowrank *plr_new(int64_t n, int32_t k, int32_t rows);
void plr_free(pl_lowrank *l);

/* Per-example data-gradient deviations at w of the examples idx[0..rows) (host indices), through
 * the backend's moments op one example at a time. */
int plr_measure(pl_lowrank *l, be *b, const float *w, const int32_t *idx, int32_t rows, bz_err *e);

/* Factor R for the masses m (host, n) and the scale A kB. Returns lambda_max(R). When it exceeds
 * PLR_CAP nothing is factored and the caller raises every mass by lambda_max / PLR_CAP and calls
 * again. Returns a negative value on a LAPACK failure (then the caller falls back to §5). */
double plr_factor(pl_lowrank *l, const double *m, double A_kB);

/* z (host, n, N(0,1) draws) <- S (z - U diag(shrink) U^T z): a draw of covariance I - R. */
void plr_apply(const pl_lowrank *l, double *z);

/* The diagonal of R (the r_i the factorisation used), host n; valid after plr_factor. */
const double *plr_diag(const pl_lowrank *l);

/* Checkpoint: the factors in force (so a resumed chain continues bit for bit). */
int plr_save(const pl_lowrank *l, ckpt_writer *w, bz_err *e);
int plr_load(pl_lowrank *l, ckpt_reader *r, bz_err *e);

#endif
