/* test_analysis.c: the analysis of ALGORITHM.md §7 (core/analysis.c): the equilibrium summary
 * (tau_int with Sokal's window, standard error, ESS, burn-in, NaN skipping) on series with known
 * answers (AR(1), iid normal, random walk), the autocorrelation by hand and against AR(1), the
 * MSD of weight samples (by hand, input validation, random walks at regular and irregular times)
 * and the weighted diffusion fit.
 *
 * Statistical tolerances are several standard errors, each computed from theory stated next to it
 * or from the spread of independent replicates; seeds are fixed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "rng.h"

/* ------------------------------------------------------------------ helpers */

/* x[0..n) from x_t = a x_{t-1} + sqrt(1 - a^2) e_t, started in equilibrium (x_0 ~ N(0, 1)):
 * mean 0, variance 1, rho(t) = a^t, tau_int = (1 + a) / (2 (1 - a)). */
static void ar1_fill(bz_rng *r, double *x, int64_t n, double a)
{
    const double s = sqrt(1.0 - a * a);
    double v = rng_normal(r);
    for (int64_t i = 0; i < n; i++) {
        if (i > 0) v = a * v + s * rng_normal(r);
        x[i] = v;
    }
}

static double ar1_tau(double a) { return (1.0 + a) / (2.0 * (1.0 - a)); }

/* Exact variance of the mean of n consecutive AR(1) values (unit variance):
 * (1/n) [1 + 2 sum_{t=1}^{n-1} (1 - t/n) a^t]. */
static double ar1_var_of_mean(double a, int64_t n)
{
    double s = 0, at = 1;
    for (int64_t t = 1; t < n; t++) {
        at *= a;
        s += (1.0 - (double)t / (double)n) * at;
    }
    return (1.0 + 2.0 * s) / (double)n;
}

/* Sokal's large-n standard error of tau_int estimated with window M: tau sqrt(2 (2M + 1) / n). */
static double sokal_se(double tau, int64_t M, int64_t n)
{
    return tau * sqrt(2.0 * (2.0 * (double)M + 1.0) / (double)n);
}

/* Quantile of chi2_k / k by Wilson-Hilferty, z the standard normal quantile (error well under
 * 1% for k ~ 50). */
static double chi2_over_k_quantile(double k, double z)
{
    double h = 2.0 / (9.0 * k);
    double c = 1.0 - h + z * sqrt(h);
    return c * c * c;
}

static double *xmalloc_d(int64_t n)
{
    double *p = malloc((size_t)n * sizeof *p);
    cr_assert_not_null(p);
    return p;
}

/* ------------------------------------------------------------------ summary */

Test(summary, ar1_tau_int_mean_and_ess_within_five_standard_errors)
{
    const double a = 0.9, tau = ar1_tau(a); /* 9.5 */
    const int64_t n = 200000;
    double *x = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 11, 0);
    ar1_fill(&r, x, n, a);

    an_summary s;
    an_summarize(x, n, 0.0, 5.0, &s);
    cr_assert_eq(s.n, n);
    cr_assert_eq(s.window_capped, 0);
    /* Sokal: var(tau_hat) ~ 2 (2M + 1) / n tau^2; with M ~ 50 that is ~3% of tau. */
    double se_tau = sokal_se(tau, s.window, n);
    cr_assert(fabs(s.tau_int - tau) < 5 * se_tau, "tau_int %g, exact %g, 5 SE = %g", s.tau_int,
              tau, 5 * se_tau);
    cr_assert(s.window >= 5.0 * s.tau_int, "window %lld < c tau_int", (long long)s.window);
    cr_assert(fabs(s.mean) < 5 * s.stderr_, "mean %g, stderr %g", s.mean, s.stderr_);
    /* Sample variance of a correlated series: var(s^2) ~ 4 tau_int(x^2) / n, and for AR(1)
     * tau_int(x^2) = (1 + a^2) / (2 (1 - a^2)). */
    double se_var = sqrt(4.0 * (1 + a * a) / (2 * (1 - a * a)) / (double)n);
    cr_assert(fabs(s.std * s.std - 1.0) < 5 * se_var, "std %g", s.std);
    cr_assert(fabs(s.ess - (double)n / (2 * s.tau_int)) < 1e-9 * s.ess);
    cr_assert(fabs(s.stderr_ - s.std * sqrt(2 * s.tau_int / (double)n)) < 1e-12);
    /* ess against the exact n / (2 tau) = 10526: n / (2 ess) is tau_int, within 5 SE above. */
    cr_assert(fabs((double)n / (2 * s.ess) - tau) < 5 * se_tau, "ess %g", s.ess);
    free(x);
}

Test(summary, window_is_sokals_smallest_M)
{
    const int64_t n = 50000;
    const double c = 5.0;
    double *x = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 12, 0);
    ar1_fill(&r, x, n, 0.8);
    an_summary s;
    an_summarize(x, n, 0.0, c, &s);
    cr_assert(s.window >= 1 && s.window < n / 2);

    double *rho = xmalloc_d(s.window + 1);
    an_autocorr(x, n, s.window, rho);
    double tau = 0.5;
    for (int64_t M = 1; M <= s.window; M++) {
        tau += rho[M];
        if (M < s.window) cr_assert((double)M < c * tau + 1e-9, "M = %lld already fits", (long long)M);
    }
    cr_assert((double)s.window >= c * tau - 1e-9);
    cr_assert(fabs(tau - s.tau_int) < 1e-10 * tau, "tau %g vs %g", tau, s.tau_int);
    free(rho);
    free(x);
}

/* 50 independent chains of 20000: the empirical spread of their means must match the computed
 * standard error. With sigma the true standard deviation of a chain mean, the sample variance of
 * 50 means is sigma^2 chi2_49 / 49; its 1e-4 and 1 - 1e-4 quantiles (Wilson-Hilferty) are about
 * 0.41 and 1.93, so the ratio (empirical std) / (computed stderr) lies in about [0.64, 1.39]
 * with probability 1 - 2e-4 when the computed stderr is right. The computed stderr's own error
 * (~10% per chain, ~1.5% on the average of 50) is small against that band. */
Test(summary, ar1_stderr_matches_spread_of_independent_chains)
{
    const double a = 0.9;
    const int chains = 50;
    const int64_t n = 20000;
    double *x = xmalloc_d(n);
    double means[50], se2[50];
    for (int k = 0; k < chains; k++) {
        bz_rng r;
        rng_seed(&r, 13, (uint64_t)k);
        ar1_fill(&r, x, n, a);
        an_summary s;
        an_summarize(x, n, 0.0, 5.0, &s);
        cr_assert_eq(s.window_capped, 0);
        means[k] = s.mean;
        se2[k] = s.stderr_ * s.stderr_;
    }
    double mbar = 0, se2bar = 0;
    for (int k = 0; k < chains; k++) {
        mbar += means[k] / chains;
        se2bar += se2[k] / chains;
    }
    double var_emp = 0, var_se2 = 0;
    for (int k = 0; k < chains; k++) {
        var_emp += (means[k] - mbar) * (means[k] - mbar) / (chains - 1);
        var_se2 += (se2[k] - se2bar) * (se2[k] - se2bar) / (chains - 1);
    }
    const double z = 3.719; /* standard normal 1 - 1e-4 quantile */
    double lo = sqrt(chi2_over_k_quantile(chains - 1, -z));
    double hi = sqrt(chi2_over_k_quantile(chains - 1, z));
    double ratio = sqrt(var_emp / se2bar);
    cr_assert(ratio > lo && ratio < hi, "empirical/computed stderr %g outside [%g, %g]", ratio, lo,
              hi);

    /* Tighter: the average computed stderr^2 against the exact variance of an AR(1) mean, within
     * 5 standard errors of that average taken from its spread over the chains. */
    double exact = ar1_var_of_mean(a, n);
    double se_of_avg = sqrt(var_se2 / chains);
    cr_assert(fabs(se2bar - exact) < 5 * se_of_avg, "stderr^2 %g vs exact %g (SE %g)", se2bar,
              exact, se_of_avg);
    free(x);
}

Test(summary, iid_normal_has_tau_half_and_ess_n)
{
    const int64_t n = 100000;
    double *x = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 14, 0);
    for (int64_t i = 0; i < n; i++) x[i] = 2.0 + 3.0 * rng_normal(&r);
    an_summary s;
    an_summarize(x, n, 0.0, 5.0, &s);
    double se_tau = sokal_se(0.5, s.window, n);
    cr_assert(s.tau_int >= 0.5);
    cr_assert(s.tau_int - 0.5 < 5 * se_tau, "tau_int %g (SE %g)", s.tau_int, se_tau);
    cr_assert(s.window <= 5, "window %lld", (long long)s.window);
    /* ess = n / (2 tau): relative error that of tau, i.e. se_tau / 0.5. */
    cr_assert(s.ess <= (double)n && s.ess > (double)n * (1.0 - 5 * se_tau / 0.5), "ess %g", s.ess);
    cr_assert(fabs(s.mean - 2.0) < 5 * s.stderr_, "mean %g", s.mean);
    cr_assert(fabs(s.std - 3.0) < 5 * 3.0 / sqrt(2.0 * (double)n), "std %g", s.std);
    free(x);
}

/* AR(1) with a = -0.5 has tau_int = 1/6 < 1/2: the estimate is clamped to the iid value, which
 * overestimates the standard error (conservative). */
Test(summary, anticorrelated_series_is_clamped_to_iid_error)
{
    const int64_t n = 100000;
    const double a = -0.5;
    double *x = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 15, 0);
    ar1_fill(&r, x, n, a);
    an_summary s;
    an_summarize(x, n, 0.0, 5.0, &s);
    cr_assert_eq(s.tau_int, 0.5);
    cr_assert_eq(s.window, 1); /* tau_int(1) = 1/2 + rho(1) ~ 0 <= 1/5 */
    cr_assert(fabs(s.ess - (double)n) < 1e-9 * (double)n);
    cr_assert(fabs(s.stderr_ - s.std / sqrt((double)n)) < 1e-15);
    cr_assert(s.stderr_ > sqrt(ar1_var_of_mean(a, n)), "clamped stderr must be conservative");
    free(x);
}

Test(summary, burn_in_removes_initial_transient)
{
    const int64_t n = 10000;
    double *x = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 16, 0);
    for (int64_t i = 0; i < n; i++) x[i] = (i < n / 5 ? 100.0 : 0.0) + rng_normal(&r);
    an_summary s;
    an_summarize(x, n, 0.2, 5.0, &s);
    cr_assert_eq(s.n, n - n / 5);
    cr_assert(fabs(s.mean) < 5 * s.stderr_, "mean %g stderr %g", s.mean, s.stderr_);
    cr_assert(fabs(s.std - 1.0) < 5 / sqrt(2.0 * (double)s.n), "std %g", s.std);
    an_summarize(x, n, 0.0, 5.0, &s); /* without burn-in the transient dominates */
    cr_assert(s.mean > 19.0, "mean %g", s.mean);
    free(x);
}

Test(summary, burn_in_drops_floor_of_records)
{
    double x[10];
    for (int i = 0; i < 10; i++) x[i] = i;
    an_summary s;
    an_summarize(x, 10, 0.25, 5.0, &s); /* floor(2.5) = 2 dropped */
    cr_assert_eq(s.n, 8);
    cr_assert_float_eq(s.mean, 5.5, 1e-15);
    an_summarize(x, 10, 1.0, 5.0, &s);
    cr_assert_eq(s.n, 0);
    cr_assert(isnan(s.mean));
    an_summarize(x, 10, -0.5, 5.0, &s);
    cr_assert_eq(s.n, 10);
    an_summarize(x, 10, NAN, 5.0, &s);
    cr_assert_eq(s.n, 10);
}

Test(summary, nan_values_are_skipped)
{
    const int64_t n = 20000;
    double *x = xmalloc_d(n), *y = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 17, 0);
    ar1_fill(&r, x, n, 0.7);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i % 7 == 3) x[i] = NAN;
        else y[m++] = x[i];
    }
    an_summary a, b;
    an_summarize(x, n, 0.0, 5.0, &a);
    an_summarize(y, m, 0.0, 5.0, &b);
    /* Same values in the same order: the same arithmetic, bit for bit. */
    cr_assert_eq(a.n, m);
    cr_assert_eq(a.mean, b.mean);
    cr_assert_eq(a.std, b.std);
    cr_assert_eq(a.tau_int, b.tau_int);
    cr_assert_eq(a.window, b.window);
    cr_assert_eq(a.ess, b.ess);
    cr_assert_eq(a.stderr_, b.stderr_);
    cr_assert(isfinite(a.stderr_));

    /* Burn-in counts records, NaN or not. */
    an_summarize(x, n, 0.5, 5.0, &a);
    int64_t kept = 0;
    for (int64_t i = n / 2; i < n; i++) kept += !isnan(x[i]);
    cr_assert_eq(a.n, kept);

    for (int64_t i = 0; i < n; i++) x[i] = NAN;
    an_summarize(x, n, 0.0, 5.0, &a);
    cr_assert_eq(a.n, 0);
    cr_assert(isnan(a.mean) && isnan(a.stderr_));
    free(x);
    free(y);
}

Test(summary, short_empty_and_constant_series)
{
    an_summary s;
    const double x3[3] = {1, 2, 4};
    an_summarize(x3, 3, 0.0, 5.0, &s);
    cr_assert_eq(s.n, 3);
    cr_assert_float_eq(s.mean, 7.0 / 3.0, 1e-15);
    cr_assert_float_eq(s.std, sqrt(7.0 / 3.0), 1e-15);
    cr_assert_eq(s.tau_int, 0.5);
    cr_assert_eq(s.window, 0);
    cr_assert_float_eq(s.ess, 3.0, 1e-15);
    cr_assert_float_eq(s.stderr_, sqrt(7.0 / 3.0) / sqrt(3.0), 1e-15);

    const double x1[1] = {5};
    an_summarize(x1, 1, 0.0, 5.0, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.mean, 5.0);
    cr_assert(isnan(s.std) && isnan(s.stderr_));

    an_summarize(NULL, 0, 0.0, 5.0, &s);
    cr_assert_eq(s.n, 0);
    cr_assert(isnan(s.mean));
    cr_assert_eq(s.ess, 0.0);

    double c[100];
    for (int i = 0; i < 100; i++) c[i] = 3.0;
    an_summarize(c, 100, 0.0, 5.0, &s);
    cr_assert_eq(s.mean, 3.0);
    cr_assert_eq(s.std, 0.0);
    cr_assert_eq(s.stderr_, 0.0);
    cr_assert_eq(s.tau_int, 0.5);
    cr_assert_eq(s.ess, 100.0);
}

/* A series that has not equilibrated (a steady drift with noise, like a loss still falling):
 * for a ramp over n records rho(t) ~ 1 - 3t/(2n), so tau_int(n/2) ~ 5n/16 and c tau_int > n/2 for
 * every window: the cap is hit and reported. (A random walk is not a reliable example: with its
 * own mean subtracted its estimated rho decays within a fraction of n.) */
Test(summary, drifting_series_hits_the_window_cap)
{
    const int64_t n = 2000;
    double *x = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 18, 0);
    for (int64_t i = 0; i < n; i++) x[i] = 0.01 * (double)i + rng_normal(&r);
    an_summary s;
    an_summarize(x, n, 0.0, 5.0, &s);
    cr_assert_eq(s.window_capped, 1);
    cr_assert_eq(s.window, n / 2);
    cr_assert(s.tau_int * 5.0 > (double)s.window, "tau_int %g", s.tau_int);
    an_summarize(x, 16, 0.0, 5.0, &s); /* the first 16 records are mostly noise: no cap */
    cr_assert_eq(s.window_capped, 0);
    free(x);
}

Test(summary, invalid_c_means_default_five)
{
    const int64_t n = 5000;
    double *x = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 19, 0);
    ar1_fill(&r, x, n, 0.5);
    an_summary d, z, q;
    an_summarize(x, n, 0.0, 5.0, &d);
    an_summarize(x, n, 0.0, 0.0, &z);
    an_summarize(x, n, 0.0, NAN, &q);
    cr_assert_eq(d.window, z.window);
    cr_assert_eq(d.window, q.window);
    cr_assert_eq(d.tau_int, z.tau_int);
    cr_assert_eq(d.tau_int, q.tau_int);
    free(x);
}

/* ------------------------------------------------------------------ autocorrelation */

Test(autocorr, hand_computed_with_one_over_n_convention)
{
    /* d = (-1.5, -0.5, 0.5, 1.5); C(0) = 5/4, C(1) = 5/16, C(2) = -3/8, C(3) = -9/16. */
    const double x[4] = {1, 2, 3, 4};
    double rho[6];
    an_autocorr(x, 4, 5, rho);
    const double want[6] = {1, 0.25, -0.3, -0.45, 0, 0};
    for (int t = 0; t < 6; t++) cr_assert_float_eq(rho[t], want[t], 1e-15, "rho[%d] = %g", t, rho[t]);

    const double c[5] = {2, 2, 2, 2, 2};
    an_autocorr(c, 5, 3, rho);
    cr_assert_eq(rho[0], 1.0);
    for (int t = 1; t <= 3; t++) cr_assert_eq(rho[t], 0.0);
}

/* rho(t) of AR(1) against a^t, tolerance 5 SE from Bartlett's formula for AR(1):
 * var(rho_hat(t)) ~ (1/n) [(1 + a^2)(1 - a^{2t}) / (1 - a^2) - 2 t a^{2t}]. */
Test(autocorr, ar1_matches_a_to_the_t)
{
    const int64_t n = 200000;
    const double a = 0.9;
    double *x = xmalloc_d(n);
    bz_rng r;
    rng_seed(&r, 21, 0);
    ar1_fill(&r, x, n, a);
    double rho[11];
    an_autocorr(x, n, 10, rho);
    cr_assert_eq(rho[0], 1.0);
    for (int t = 1; t <= 10; t++) {
        double a2t = pow(a, 2.0 * t);
        double var = ((1 + a * a) * (1 - a2t) / (1 - a * a) - 2.0 * t * a2t) / (double)n;
        cr_assert(fabs(rho[t] - pow(a, t)) < 5 * sqrt(var), "rho[%d] = %g, a^t = %g, SE %g", t,
                  rho[t], pow(a, t), sqrt(var));
    }
    free(x);
}

/* ------------------------------------------------------------------ MSD */

Test(msd, hand_computed_pairs_and_bins)
{
    /* w is (3, 2); pairs: (1,0) lag 1 msd 5/2; (2,1) lag 2 msd 13/2; (2,0) lag 3 msd 10/2. */
    const float w[6] = {0, 0, 1, 2, 3, -1};
    const double t[3] = {0, 1, 3};
    an_msd_bin b[4];
    bz_err e;
    bz_err_clear(&e);
    cr_assert_eq(an_msd(w, t, 3, 2, 1.0, 4, b, &e), 0);
    cr_assert_eq(b[0].pairs, 0);
    cr_assert(isnan(b[0].lag) && isnan(b[0].msd));
    cr_assert_eq(b[1].pairs, 1);
    cr_assert_eq(b[1].lag, 1.0);
    cr_assert_eq(b[1].msd, 2.5);
    cr_assert_eq(b[2].pairs, 1);
    cr_assert_eq(b[2].msd, 6.5);
    cr_assert_eq(b[3].pairs, 1);
    cr_assert_eq(b[3].lag, 3.0);
    cr_assert_eq(b[3].msd, 5.0);

    /* Range [0, 3): the lag-3 pair is out. */
    cr_assert_eq(an_msd(w, t, 3, 2, 1.0, 3, b, &e), 0);
    cr_assert_eq(b[1].pairs + b[2].pairs, 2);

    /* Width 2: bin 0 = lag 1; bin 1 = lags 2 and 3. */
    cr_assert_eq(an_msd(w, t, 3, 2, 2.0, 2, b, &e), 0);
    cr_assert_eq(b[0].pairs, 1);
    cr_assert_eq(b[0].msd, 2.5);
    cr_assert_eq(b[1].pairs, 2);
    cr_assert_eq(b[1].lag, 2.5);
    cr_assert_eq(b[1].msd, 5.75);
}

Test(msd, validation_errors_name_the_input)
{
    const float w[8] = {0};
    double t[4] = {0, 1, 2, 3};
    an_msd_bin b[4];
    bz_err e;
    struct {
        int64_t K, n;
        double width;
        int32_t nb;
        const char *field;
    } bad[] = {
        {1, 2, 1.0, 4, "K"},          {0, 2, 1.0, 4, "K"},         {4, 0, 1.0, 4, "n"},
        {4, 2, 0.0, 4, "bin_width"},  {4, 2, -1.0, 4, "bin_width"}, {4, 2, NAN, 4, "bin_width"},
        {4, 2, INFINITY, 4, "bin_width"}, {4, 2, 1.0, 0, "n_bins"}, {4, 2, 1.0, -3, "n_bins"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bz_err_clear(&e);
        int rc = an_msd(w, t, bad[i].K, bad[i].n, bad[i].width, bad[i].nb, b, &e);
        cr_assert_eq(rc, BZ_EINVAL, "case %zu", i);
        cr_assert_eq(e.code, BZ_EINVAL);
        cr_assert_str_eq(e.field, bad[i].field, "case %zu: field %s", i, e.field);
        cr_assert(strlen(e.msg) > 0);
    }
    cr_assert_eq(an_msd(NULL, t, 4, 2, 1.0, 4, b, &e), BZ_EINVAL);
    cr_assert_str_eq(e.field, "w");
    cr_assert_eq(an_msd(w, NULL, 4, 2, 1.0, 4, b, &e), BZ_EINVAL);
    cr_assert_eq(an_msd(w, t, 4, 2, 1.0, 4, NULL, &e), BZ_EINVAL);
    cr_assert_eq(an_msd(w, t, 4, 2, 1.0, 4, b, NULL), 0); /* no error record is fine */

    t[2] = 1.0; /* repeated time */
    cr_assert_eq(an_msd(w, t, 4, 2, 1.0, 4, b, &e), BZ_EINVAL);
    cr_assert_str_eq(e.field, "t[2]");
    cr_assert(strstr(e.msg, "t[2]") && strstr(e.msg, "t[1]"), "%s", e.msg);
    t[2] = 0.5; /* going back */
    cr_assert_eq(an_msd(w, t, 4, 2, 1.0, 4, b, &e), BZ_EINVAL);
    cr_assert_str_eq(e.field, "t[2]");
    t[2] = 2.0;
    t[3] = NAN;
    cr_assert_eq(an_msd(w, t, 4, 2, 1.0, 4, b, &e), BZ_EINVAL);
    cr_assert_str_eq(e.field, "t[3]");
}

/* Differences are taken directly in double: samples far from 0 with small steps lose nothing
 * (w_k = 1000 + k/16 exactly in float; MSD at lag m is (m/16)^2 exactly). */
Test(msd, nearby_samples_far_from_origin_are_exact)
{
    enum { K = 20, N = 33 };
    static float w[K * N];
    double t[K];
    for (int k = 0; k < K; k++) {
        t[k] = k;
        for (int i = 0; i < N; i++) w[k * N + i] = 1000.0f + (float)k / 16.0f;
    }
    an_msd_bin b[5];
    cr_assert_eq(an_msd(w, t, K, N, 1.0, 5, b, NULL), 0);
    for (int m = 1; m < 5; m++) {
        cr_assert_eq(b[m].pairs, K - m);
        cr_assert_eq(b[m].msd, (m / 16.0) * (m / 16.0), "bin %d msd %.17g", m, b[m].msd);
    }
}

/* A random walk in N dimensions with per-component step variance s^2 (dt / dt_ref) over a time
 * step dt has E|w_j - w_k|^2 / N = (s^2 / dt_ref) (t_j - t_k): a straight line through 0 with
 * slope D = s^2 / dt_ref. R independent walks give R fits; the tolerance is 5 standard errors of
 * their mean, the SE taken from their spread. */
typedef struct walk_fit {
    double D, intercept;
} walk_fit;

static walk_fit walk_and_fit(bz_rng *r, float *w, double *t, int K, int N, double s,
                             double dt_ref, int irregular, int32_t n_bins, an_msd_bin *bins)
{
    for (int k = 0; k < K; k++) {
        double gap = irregular ? dt_ref * (0.5 + rng_uniform(r)) : dt_ref;
        t[k] = k == 0 ? 0.0 : t[k - 1] + gap;
        double step = s * sqrt(gap / dt_ref);
        for (int i = 0; i < N; i++)
            w[k * N + i] = k == 0 ? (float)rng_normal(r)
                                  : w[(k - 1) * N + i] + (float)(step * rng_normal(r));
    }
    bz_err e;
    cr_assert_eq(an_msd(w, t, K, N, dt_ref, n_bins, bins, &e), 0, "%s", e.msg);
    an_diffusion d;
    an_diffusion_fit(bins, n_bins, n_bins, &d);
    return (walk_fit){d.D, d.intercept};
}

static void check_walk_fits(const walk_fit *f, int R, double D_true)
{
    double mD = 0, mI = 0, vD = 0, vI = 0;
    for (int i = 0; i < R; i++) {
        cr_assert(isfinite(f[i].D) && isfinite(f[i].intercept));
        mD += f[i].D / R;
        mI += f[i].intercept / R;
    }
    for (int i = 0; i < R; i++) {
        vD += (f[i].D - mD) * (f[i].D - mD) / (R - 1);
        vI += (f[i].intercept - mI) * (f[i].intercept - mI) / (R - 1);
    }
    double seD = sqrt(vD / R), seI = sqrt(vI / R);
    cr_assert(seD < 0.05 * D_true, "test has no power: SE(D) %g", seD); /* a meaningful check */
    cr_assert(fabs(mD - D_true) < 5 * seD, "D %g vs %g (SE %g)", mD, D_true, seD);
    cr_assert(fabs(mI) < 5 * seI, "intercept %g (SE %g)", mI, seI);
}

Test(msd, random_walk_gives_diffusion_coefficient)
{
    enum { K = 400, N = 100, R = 20, NB = 9 };
    const double s = 0.1, dt = 0.5, D_true = s * s / dt; /* 0.02 per second */
    float *w = malloc(sizeof(float) * K * N);
    double t[K];
    an_msd_bin bins[NB];
    walk_fit f[R];
    for (int rep = 0; rep < R; rep++) {
        bz_rng r;
        rng_seed(&r, 31, (uint64_t)rep);
        f[rep] = walk_and_fit(&r, w, t, K, N, s, dt, 0, NB, bins);
        /* Lags are multiples of dt: bin 0 [0, dt) is empty, bin m holds the K - m pairs at m dt. */
        cr_assert_eq(bins[0].pairs, 0);
        cr_assert(isnan(bins[0].msd) && isnan(bins[0].lag));
        for (int m = 1; m < NB; m++) {
            cr_assert_eq(bins[m].pairs, K - m);
            cr_assert_float_eq(bins[m].lag, m * dt, 1e-12);
        }
    }
    check_walk_fits(f, R, D_true);
    free(w);
}

Test(msd, random_walk_at_irregular_times)
{
    enum { K = 400, N = 100, R = 20, NB = 8 };
    const double s = 0.2, dt = 1.5, D_true = s * s / dt;
    float *w = malloc(sizeof(float) * K * N);
    double t[K];
    an_msd_bin bins[NB];
    walk_fit f[R];
    for (int rep = 0; rep < R; rep++) {
        bz_rng r;
        rng_seed(&r, 32, (uint64_t)rep);
        f[rep] = walk_and_fit(&r, w, t, K, N, s, dt, 1, NB, bins);
        /* Pair counts against a brute-force count; mean lags inside their bins. */
        int64_t want[NB] = {0};
        for (int k = 0; k < K; k++)
            for (int j = k + 1; j < K; j++) {
                int64_t b = (int64_t)((t[j] - t[k]) / dt);
                if (b < NB) want[b]++;
            }
        for (int b = 0; b < NB; b++) {
            cr_assert_eq(bins[b].pairs, want[b], "bin %d", b);
            if (bins[b].pairs)
                cr_assert(bins[b].lag >= b * dt && bins[b].lag < (b + 1) * dt, "bin %d lag %g", b,
                          bins[b].lag);
        }
    }
    check_walk_fits(f, R, D_true);
    free(w);
}

/* ------------------------------------------------------------------ diffusion fit */

static an_msd_bin mk_bin(double lag, double msd, int64_t pairs)
{
    return (an_msd_bin){lag, msd, pairs};
}

Test(diffusion_fit, exact_line_skipping_empty_bins_and_limited_to_n_fit)
{
    an_msd_bin b[6] = {
        mk_bin(NAN, NAN, 0),  mk_bin(1.5, 2 + 3 * 1.5, 7), mk_bin(NAN, NAN, 0),
        mk_bin(3.5, 2 + 3 * 3.5, 2), mk_bin(4.5, 2 + 3 * 4.5, 9), mk_bin(5.5, 100.0, 1),
    };
    an_diffusion d;
    an_diffusion_fit(b, 6, 3, &d); /* bins 1, 3, 4: on the line; bin 5 left out */
    cr_assert_eq(d.bins_used, 3);
    cr_assert_float_eq(d.D, 3.0, 1e-12);
    cr_assert_float_eq(d.intercept, 2.0, 1e-12);
    an_diffusion_fit(b, 6, 10, &d); /* all four usable bins: the outlier bends the line */
    cr_assert_eq(d.bins_used, 4);
    cr_assert(d.D > 3.5);
}

Test(diffusion_fit, weighted_by_pair_counts)
{
    /* (0, 0) w 1, (1, 1) w 1, (2, 0) w 2: weighted slope -1/11, intercept 4/11 (unweighted: 0). */
    an_msd_bin b[3] = {mk_bin(0, 0, 1), mk_bin(1, 1, 1), mk_bin(2, 0, 2)};
    an_diffusion d;
    an_diffusion_fit(b, 3, 3, &d);
    cr_assert_eq(d.bins_used, 3);
    cr_assert_float_eq(d.D, -1.0 / 11.0, 1e-15);
    cr_assert_float_eq(d.intercept, 4.0 / 11.0, 1e-15);
}

Test(diffusion_fit, fewer_than_two_usable_bins_gives_nan)
{
    an_msd_bin b[3] = {mk_bin(NAN, NAN, 0), mk_bin(1.0, 2.0, 5), mk_bin(NAN, NAN, 0)};
    an_diffusion d;
    an_diffusion_fit(b, 3, 3, &d);
    cr_assert_eq(d.bins_used, 1);
    cr_assert(isnan(d.D) && isnan(d.intercept));
    an_msd_bin same[2] = {mk_bin(1.0, 2.0, 5), mk_bin(1.0, 3.0, 5)}; /* one lag: no slope */
    an_diffusion_fit(same, 2, 2, &d);
    cr_assert(isnan(d.D));
    an_msd_bin two[2] = {mk_bin(1.0, 2.0, 5), mk_bin(2.0, 3.0, 5)};
    an_diffusion_fit(two, 2, 0, &d);
    cr_assert_eq(d.bins_used, 0);
    cr_assert(isnan(d.D));
    an_diffusion_fit(two, 2, 2, &d);
    cr_assert_float_eq(d.D, 1.0, 1e-15);
}
