/* analysis.h: the analysis of ALGORITHM.md §7: equilibrium summaries of a time series (mean,
 * std, standard error from the integrated autocorrelation time with Sokal's automatic window,
 * effective sample size) and the mean squared displacement of weight samples against
 * wall-clock lag with the computational diffusion coefficient. */
#ifndef BZ_ANALYSIS_H
#define BZ_ANALYSIS_H

#include <stdint.h>

#include "bz_error.h"

typedef struct an_summary {
    int64_t n;        /* values used (after burn-in, NaNs skipped) */
    double mean, std; /* std: sample standard deviation */
    double tau_int;   /* integrated autocorrelation time in records (>= 0.5) */
    int64_t window;   /* Sokal window M used */
    double ess;       /* n / (2 tau_int) */
    double stderr_;   /* std * sqrt(2 tau_int / n) */
    int32_t window_capped; /* 1 when no M <= n/2 met M >= c tau_int(M): the window stopped at n/2,
                            * tau_int (and so stderr_) is then an underestimate; the series is
                            * too short for its correlation time */
} an_summary;

/* Summary of x[0..n) after dropping the first floor(burn_in * n) values; c is Sokal's window
 * constant (5 by default): the smallest M with M >= c * tau_int(M). NaN values are skipped. With
 * fewer than 4 values left, mean/std are computed and tau_int = 0.5, ess = n. */
void an_summarize(const double *x, int64_t n, double burn_in, double c, an_summary *out);

/* Normalised autocorrelation rho(t), t = 0..max_lag, of x[0..n) (rho[0] = 1); direct sums,
 * O(n max_lag). */
void an_autocorr(const double *x, int64_t n, int64_t max_lag, double *rho);

/* MSD against wall-clock lag from samples w_k (k = 0..K-1, each of length n, row-major (K, n))
 * at times t_k (increasing). Lags are binned into n_bins equal bins of width bin_width seconds
 * (bin b holds lags in [b w, (b+1) w)); for each bin: mean lag, mean |w_j - w_k|^2 / n, pairs. */
typedef struct an_msd_bin {
    double lag;    /* mean lag of the pairs in the bin (s) */
    double msd;    /* mean |w_j - w_k|^2 / n */
    int64_t pairs;
} an_msd_bin;
int an_msd(const float *w, const double *t, int64_t K, int64_t n, double bin_width, int32_t n_bins,
           an_msd_bin *bins, bz_err *e);

/* Diffusion coefficient: slope of MSD against lag by least squares through the first n_fit
 * non-empty bins (the linear regime), weighted by pair counts; intercept reported too. */
typedef struct an_diffusion {
    double D, intercept;
    int32_t bins_used;
} an_diffusion;
void an_diffusion_fit(const an_msd_bin *bins, int32_t n_bins, int32_t n_fit, an_diffusion *out);

#endif
