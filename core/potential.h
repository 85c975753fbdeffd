/* potential.h: the potential U(w) = L(w) + (lambda/2)|w|^2/n, its gradients, and the static
 * observables of ALGORITHM.md §2 (U, loss, w2, train_err, test_err, test_loss) for a given w.
 *
 * A pot_ctx bundles what every evaluation needs: architecture, data, lambda and a scratch
 * workspace for chunks of POT_CHUNK rows, so memory stays bounded whatever P is. */
#ifndef BZ_POTENTIAL_H
#define BZ_POTENTIAL_H

#include <stdbool.h>

#include "dataset.h"
#include "nn.h"

#define POT_CHUNK 2048 /* rows per full-set chunk */

typedef struct pot_ctx {
    const nn_arch *arch;
    const ds_data *data;
    double lambda;
    nn_work ws;        /* scratch for max(POT_CHUNK, batch) rows */
} pot_ctx;

typedef struct pot_obs {
    double U, loss, w2, train_err;
    double test_err, test_loss; /* NAN when there is no test set or it was not asked for */
    double val_err, val_loss;   /* NAN unless the data set holds out validation rows */
} pot_obs;

/* max_batch: the largest mini-batch the caller will pass to pot_grad_batch. */
int pot_init(pot_ctx *p, const nn_arch *a, const ds_data *d, double lambda, int32_t max_batch, bz_err *e);
void pot_free(pot_ctx *p);

/* |w|^2 / n, accumulated in double. */
double pot_w2(const float *w, int64_t n);

/* Static observables at w; the test set is evaluated only when with_test is set and exists; the
 * validation rows whenever the data set has them. */
void pot_observe(pot_ctx *p, const float *w, bool with_test, pot_obs *o);

/* g_B = (1/B) sum_(mu in idx) grad l_mu + lambda w / n; returns U_B (mini-batch potential). */
double pot_grad_batch(pot_ctx *p, const float *w, const int32_t *idx, int32_t B, float *grad);

/* Full-set gradient of U; returns U. */
double pot_grad_full(pot_ctx *p, const float *w, float *grad);

#endif
