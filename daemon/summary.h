/* summary.h: the analysis of a finished (or running) chain as JSON (ALGORITHM.md §7):
 * equilibrium summaries of the observables and the MSD / diffusion coefficient of its samples.
 * Shared by `boltzd summary`, `boltzd msd` and the API. */
#ifndef BZ_SUMMARY_H
#define BZ_SUMMARY_H

#include <jansson.h>

#include "bz_error.h"
#include "jobfiles.h"
#include "samples.h"

/* {"records": N, "burn_in": f, "observables": {"U": {mean, std, stderr, tau_int, ess, n, window,
 * window_capped}, ...}} for U, loss, w2, train_err, test_err and, where present, kin_T, acc_rate. */
json_t *summary_json(const jf_series *s, double burn_in);

/* MSD against wall-clock lag: bins of width bin_width (0: the span of the times / (2 n_bins)),
 * and D fitted over the first n_fit non-empty bins. */
json_t *msd_json(const samples_data *d, double bin_width, int n_bins, int n_fit, bz_err *e);

#endif
