/* analysis.c: the analysis of ALGORITHM.md §7 (see analysis.h).
 *
 * Equilibrium summary. After dropping the first floor(burn_in * n) RECORDS (NaN records count
 * towards the burn-in, since burn-in is a stretch of simulation time), NaN values are removed
 * and the remaining y[0..m) is treated as one contiguous series. With d_i = y_i - mean:
 *
 *   C(t)   = (1/m) sum_{i < m-t} d_i d_{i+t}        (the 1/m convention, not 1/(m-t): the
 *                                                   sequence C(t) is then positive semi-definite
 *                                                   and its tail is damped, which is the usual
 *                                                   choice for Sokal's estimator)
 *   rho(t) = C(t) / C(0)
 *   tau_int(M) = 1/2 + sum_{t=1..M} rho(t)
 *
 * The window is Sokal's: the smallest M >= 1 with M >= c tau_int(M). rho is computed lazily, one
 * lag at a time, so the cost is O(m M) for the M actually needed. M is capped at m/2; when the
 * cap is reached without the condition holding, window_capped = 1 and tau_int(m/2) is reported
 * (an underestimate: the series is too short for its correlation time).
 *
 * tau_int is clamped below at 1/2, the value for independent samples. For an anticorrelated
 * series (e.g. AR(1) with a < 0) the true tau_int is below 1/2 and the true standard error is
 * smaller than the iid one; the clamp reports the iid error instead, which is conservative (an
 * overestimate), and it also guards against a noisy estimate below 1/2 on an iid series.
 * ess = m / (2 tau_int), stderr = std sqrt(2 tau_int / m), std with the 1/(m-1) convention.
 *
 * Degenerate inputs: m == 0 gives mean = std = stderr = NaN, ess = 0; m == 1 gives std = NaN
 * (undefined), stderr = NaN; m < 4 or zero variance gives tau_int = 1/2, window = 0. c that is
 * not a positive finite number means the default c = 5. If the copy needed to remove NaNs
 * cannot be allocated, mean/std are still reported and tau_int, ess, stderr_ are NaN.
 *
 * MSD: all pairs j > k whose lag t_j - t_k falls inside the binned range [0, n_bins * width);
 * since the times increase, the inner loop over j stops at the first lag past the range, so the
 * cost is O(pairs in range * n), not O(K^2 n). Distances are direct differences accumulated in
 * double (not |a|^2 + |b|^2 - 2 a.b, which cancels badly for nearby samples). */
#include "analysis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define AN_DEFAULT_C 5.0

/* ---------------------------------------------------------------- summary helpers */

/* Index of the first record kept after burn-in: floor(burn_in * n), within [0, n]. */
static int64_t burn_start(int64_t n, double burn_in)
{
    if (!(burn_in > 0)) return 0; /* also NaN */
    if (burn_in >= 1) return n;
    int64_t s = (int64_t)floor(burn_in * (double)n);
    return s > n ? n : (s < 0 ? 0 : s);
}

static int64_t count_non_nan(const double *y, int64_t m)
{
    int64_t c = 0;
    for (int64_t i = 0; i < m; i++) c += !isnan(y[i]);
    return c;
}

/* Mean of the non-NaN values of y[0..m) (cnt of them, cnt > 0), two passes: the second adds the
 * mean residual, which removes most of the rounding of the first. */
static double mean_skip_nan(const double *y, int64_t m, int64_t cnt)
{
    double s = 0;
    for (int64_t i = 0; i < m; i++)
        if (!isnan(y[i])) s += y[i];
    double mean = s / (double)cnt, r = 0;
    for (int64_t i = 0; i < m; i++)
        if (!isnan(y[i])) r += y[i] - mean;
    return mean + r / (double)cnt;
}

/* Sum of squared deviations from mean over the non-NaN values of y[0..m). */
static double ssd_skip_nan(const double *y, int64_t m, double mean)
{
    double s = 0;
    for (int64_t i = 0; i < m; i++)
        if (!isnan(y[i])) s += (y[i] - mean) * (y[i] - mean);
    return s;
}

/* sum_{i < m-t} (y_i - mean)(y_{i+t} - mean), 0 <= t < m; four partial sums for speed. */
static double lag_sum(const double *y, int64_t m, double mean, int64_t t)
{
    const double *a = y, *b = y + t;
    int64_t len = m - t, i = 0;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; i + 4 <= len; i += 4) {
        s0 += (a[i] - mean) * (b[i] - mean);
        s1 += (a[i + 1] - mean) * (b[i + 1] - mean);
        s2 += (a[i + 2] - mean) * (b[i + 2] - mean);
        s3 += (a[i + 3] - mean) * (b[i + 3] - mean);
    }
    for (; i < len; i++) s0 += (a[i] - mean) * (b[i] - mean);
    return (s0 + s1) + (s2 + s3);
}

/* Sokal's automatic window on the NaN-free series y[0..m), m >= 4, ssd > 0 (sum of squared
 * deviations). Returns the raw (unclamped) tau_int at the chosen window; *window and *capped
 * are set. rho(t) = lag_sum(t) / ssd, the 1/m factors cancel. */
static double sokal_tau(const double *y, int64_t m, double mean, double ssd, double c,
                        int64_t *window, int32_t *capped)
{
    const int64_t cap = m / 2;
    double tau = 0.5;
    for (int64_t M = 1; M <= cap; M++) {
        tau += lag_sum(y, m, mean, M) / ssd;
        if ((double)M >= c * tau) {
            *window = M;
            *capped = 0;
            return tau;
        }
    }
    *window = cap;
    *capped = 1;
    return tau;
}

/* Copy of the non-NaN values of y[0..m) (cnt of them); NULL when out of memory. */
static double *compact_copy(const double *y, int64_t m, int64_t cnt)
{
    double *z = malloc((size_t)cnt * sizeof *z);
    if (!z) return NULL;
    int64_t j = 0;
    for (int64_t i = 0; i < m; i++)
        if (!isnan(y[i])) z[j++] = y[i];
    return z;
}

static void summary_empty(an_summary *out)
{
    out->n = 0;
    out->mean = out->std = out->stderr_ = NAN;
    out->tau_int = 0.5;
    out->window = 0;
    out->ess = 0;
    out->window_capped = 0;
}

/* tau_int, window and capped for the m non-NaN values of y[0..len) (len >= m). */
static int tau_for_series(const double *y, int64_t len, int64_t m, double mean, double ssd,
                          double c, an_summary *out)
{
    const double *series = y;
    double *copy = NULL;
    if (m != len) {
        copy = compact_copy(y, len, m);
        if (!copy) return -1;
        series = copy;
    }
    double tau = sokal_tau(series, m, mean, ssd, c, &out->window, &out->window_capped);
    free(copy);
    out->tau_int = tau < 0.5 ? 0.5 : tau;
    return 0;
}

void an_summarize(const double *x, int64_t n, double burn_in, double c, an_summary *out)
{
    if (!out) return;
    summary_empty(out);
    if (!x || n <= 0) return;
    if (!(c > 0) || !isfinite(c)) c = AN_DEFAULT_C;

    const int64_t start = burn_start(n, burn_in);
    const double *y = x + start; /* y[0..len) after burn-in, may hold NaNs */
    const int64_t len = n - start;
    const int64_t m = count_non_nan(y, len);
    if (m == 0) return;

    const double mean = mean_skip_nan(y, len, m);
    const double ssd = ssd_skip_nan(y, len, mean);
    out->n = m;
    out->mean = mean;
    out->std = m > 1 ? sqrt(ssd / (double)(m - 1)) : NAN;

    if (m >= 4 && ssd > 0 && tau_for_series(y, len, m, mean, ssd, c, out) != 0) {
        out->tau_int = out->ess = out->stderr_ = NAN; /* out of memory */
        return;
    }
    out->ess = (double)m / (2.0 * out->tau_int);
    out->stderr_ = out->std * sqrt(2.0 * out->tau_int / (double)m);
}

/* x must be free of NaNs here (an_summarize removes them before using the same sums). Lags
 * t >= n have no pairs and get rho = 0; a constant series gets rho(t > 0) = 0. */
void an_autocorr(const double *x, int64_t n, int64_t max_lag, double *rho)
{
    if (!rho || max_lag < 0) return;
    rho[0] = 1.0;
    if (!x || n <= 0) {
        for (int64_t t = 1; t <= max_lag; t++) rho[t] = 0.0;
        return;
    }
    const double mean = mean_skip_nan(x, n, n);
    const double ssd = lag_sum(x, n, mean, 0);
    for (int64_t t = 1; t <= max_lag; t++)
        rho[t] = (t < n && ssd > 0) ? lag_sum(x, n, mean, t) / ssd : 0.0;
}

/* ---------------------------------------------------------------- MSD */

static int msd_check(const float *w, const double *t, int64_t K, int64_t n, double bin_width,
                     int32_t n_bins, const an_msd_bin *bins, bz_err *e)
{
    if (!w || !t || !bins)
        return bz_fail(e, BZ_EINVAL, !w ? "w" : !t ? "t" : "bins",
                       "an_msd: samples, times and bins must not be NULL");
    if (K < 2)
        return bz_fail(e, BZ_EINVAL, "K",
                       "an_msd: need at least 2 weight samples for a displacement, got %lld",
                       (long long)K);
    if (n < 1)
        return bz_fail(e, BZ_EINVAL, "n", "an_msd: sample length must be >= 1, got %lld",
                       (long long)n);
    if (!(bin_width > 0) || !isfinite(bin_width))
        return bz_fail(e, BZ_EINVAL, "bin_width",
                       "an_msd: bin width must be a positive finite number of seconds, got %g",
                       bin_width);
    if (n_bins < 1)
        return bz_fail(e, BZ_EINVAL, "n_bins", "an_msd: need at least 1 bin, got %d", (int)n_bins);
    if (!isfinite(bin_width * (double)n_bins))
        return bz_fail(e, BZ_EINVAL, "bin_width", "an_msd: bin range %g * %d is not finite",
                       bin_width, (int)n_bins);
    for (int64_t k = 0; k < K; k++) {
        char field[48];
        if (!isfinite(t[k])) {
            snprintf(field, sizeof field, "t[%lld]", (long long)k);
            return bz_fail(e, BZ_EINVAL, field, "an_msd: time t[%lld] = %g is not finite",
                           (long long)k, t[k]);
        }
        if (k > 0 && !(t[k] > t[k - 1])) {
            snprintf(field, sizeof field, "t[%lld]", (long long)k);
            return bz_fail(e, BZ_EINVAL, field,
                           "an_msd: times must increase: t[%lld] = %.17g is not after "
                           "t[%lld] = %.17g",
                           (long long)k, t[k], (long long)(k - 1), t[k - 1]);
        }
    }
    return 0;
}

/* sum_i (a_i - b_i)^2 over i < n, in double; four partial sums. */
static double sq_dist(const float *a, const float *b, int64_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        double d0 = (double)a[i] - b[i], d1 = (double)a[i + 1] - b[i + 1];
        double d2 = (double)a[i + 2] - b[i + 2], d3 = (double)a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < n; i++) {
        double d = (double)a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

/* w is (K, n) row-major, t is (K), bins is (n_bins). */
int an_msd(const float *w, const double *t, int64_t K, int64_t n, double bin_width, int32_t n_bins,
           an_msd_bin *bins, bz_err *e)
{
    int rc = msd_check(w, t, K, n, bin_width, n_bins, bins, e);
    if (rc) return rc;

    /* Accumulate sums in the bins themselves: lag and msd hold sums until the last loop. */
    for (int32_t b = 0; b < n_bins; b++) bins[b] = (an_msd_bin){0.0, 0.0, 0};
    const double range = bin_width * (double)n_bins;
    for (int64_t k = 0; k + 1 < K; k++) {
        for (int64_t j = k + 1; j < K; j++) {
            double lag = t[j] - t[k];
            if (!(lag < range)) break; /* times increase: every later j is further away */
            int64_t b = (int64_t)(lag / bin_width);
            if (b >= n_bins) break; /* rounding at the top edge */
            bins[b].lag += lag;
            bins[b].msd += sq_dist(w + j * n, w + k * n, n) / (double)n;
            bins[b].pairs++;
        }
    }
    for (int32_t b = 0; b < n_bins; b++) {
        if (bins[b].pairs == 0) {
            bins[b].lag = bins[b].msd = NAN;
        } else {
            bins[b].lag /= (double)bins[b].pairs;
            bins[b].msd /= (double)bins[b].pairs;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- diffusion fit */

static int bin_usable(const an_msd_bin *b)
{
    return b->pairs > 0 && isfinite(b->lag) && isfinite(b->msd);
}

/* Weighted least squares msd = D lag + intercept, weights = pair counts, over the first n_fit
 * usable (non-empty, finite) bins. Fewer than 2 such bins, or all at one lag: D = intercept =
 * NaN. Sums are centred on the weighted means for precision. */
void an_diffusion_fit(const an_msd_bin *bins, int32_t n_bins, int32_t n_fit, an_diffusion *out)
{
    if (!out) return;
    out->D = out->intercept = NAN;
    out->bins_used = 0;
    if (!bins || n_bins <= 0 || n_fit <= 0) return;

    double sw = 0, swx = 0, swy = 0;
    int32_t used = 0, last = -1; /* last: index of the last bin taken */
    for (int32_t b = 0; b < n_bins && used < n_fit; b++) {
        if (!bin_usable(&bins[b])) continue;
        double wgt = (double)bins[b].pairs;
        sw += wgt;
        swx += wgt * bins[b].lag;
        swy += wgt * bins[b].msd;
        used++;
        last = b;
    }
    out->bins_used = used;
    if (used < 2) return;

    const double xbar = swx / sw, ybar = swy / sw;
    double sxx = 0, sxy = 0;
    for (int32_t b = 0; b <= last; b++) {
        if (!bin_usable(&bins[b])) continue;
        double wgt = (double)bins[b].pairs, dx = bins[b].lag - xbar;
        sxx += wgt * dx * dx;
        sxy += wgt * dx * (bins[b].msd - ybar);
    }
    if (!(sxx > 0)) return;
    out->D = sxy / sxx;
    out->intercept = ybar - out->D * xbar;
}
