/* summary.c: equilibrium summaries and MSD as JSON (see summary.h). */
#include "summary.h"

#include <math.h>
#include <stdlib.h>

#include "analysis.h"
#include "observables.h"

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *one_summary(const double *x, int64_t n, double burn_in)
{
    an_summary a;
    an_summarize(x, n, burn_in, 5.0, &a);
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "n", (json_int_t)a.n, "mean", num(a.mean), "std",
                     num(a.std), "stderr", num(a.stderr_), "tau_int", num(a.tau_int), "ess", num(a.ess), "window",
                     (json_int_t)a.window, "window_capped", a.window_capped);
}

static int has_values(const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i])) return 1;
    return 0;
}

json_t *summary_json(const jf_series *s, double burn_in)
{
    static const obs_id which[] = {OBS_U, OBS_LOSS, OBS_W2, OBS_TRAIN_ERR, OBS_TEST_ERR, OBS_TEST_LOSS,
                                   OBS_KIN_T, OBS_ACC_RATE, OBS_R_MEAN, OBS_GRAD_VAR_12};
    json_t *obs = json_object();
    for (size_t k = 0; k < sizeof which / sizeof which[0]; k++)
        if (s->count && has_values(s->v[which[k]], s->count))
            json_object_set_new(obs, obs_names[which[k]], one_summary(s->v[which[k]], s->count, burn_in));
    return json_pack("{s:I, s:f, s:o}", "records", (json_int_t)s->count, "burn_in", burn_in, "observables", obs);
}

json_t *msd_json(const samples_data *d, double bin_width, int n_bins, int n_fit, bz_err *e)
{
    if (d->K < 2) {
        bz_fail(e, BZ_EINVAL, "samples", "the MSD needs at least 2 weight samples (have %lld); set samples.every",
                (long long)d->K);
        return NULL;
    }
    if (!(bin_width > 0)) bin_width = (d->times[d->K - 1] - d->times[0]) / (2.0 * n_bins);
    if (!(bin_width > 0)) bin_width = 1e-9;
    an_msd_bin *bins = calloc((size_t)n_bins, sizeof *bins);
    if (!bins) {
        bz_fail(e, BZ_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    if (an_msd(d->w, d->times, d->K, d->n, bin_width, n_bins, bins, e)) {
        free(bins);
        return NULL;
    }
    an_diffusion fit;
    an_diffusion_fit(bins, n_bins, n_fit, &fit);
    json_t *arr = json_array();
    for (int b = 0; b < n_bins; b++)
        if (bins[b].pairs > 0)
            json_array_append_new(arr, json_pack("{s:o, s:o, s:I}", "lag", num(bins[b].lag), "msd", num(bins[b].msd),
                                                 "pairs", (json_int_t)bins[b].pairs));
    free(bins);
    return json_pack("{s:I, s:I, s:f, s:o, s:o, s:o, s:i}", "samples", (json_int_t)d->K, "n", (json_int_t)d->n,
                     "bin_width", bin_width, "bins", arr, "D", num(fit.D), "intercept", num(fit.intercept),
                     "bins_used", fit.bins_used);
}
