/* potential.c: U(w), its mini-batch and full-set gradients, and the static observables
 * (ALGORITHM.md §2). The regulariser is (lambda/2)|w|^2/n, so its gradient is lambda w / n. */
#include "potential.h"

#include <math.h>
#include <stddef.h>

int pot_init(pot_ctx *p, const nn_arch *a, const ds_data *d, double lambda, int32_t max_batch, bz_err *e)
{
    p->arch = a;
    p->data = d;
    p->lambda = lambda;
    int32_t rows = max_batch > POT_CHUNK ? max_batch : POT_CHUNK;
    return nn_work_init(&p->ws, a, rows, e);
}

void pot_free(pot_ctx *p) { nn_work_free(&p->ws); }

double pot_w2(const float *w, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)w[i] * w[i];
    return n > 0 ? s / (double)n : 0.0;
}

/* grad += (lambda / n) w */
static void add_regulariser_grad(const pot_ctx *p, const float *w, float *grad)
{
    const int64_t n = p->arch->n;
    const float k = (float)(p->lambda / (double)n);
    if (k == 0.0f) return;
    for (int64_t i = 0; i < n; i++) grad[i] += k * w[i];
}

static double regulariser(const pot_ctx *p, double w2) { return 0.5 * p->lambda * w2; }

void pot_observe(pot_ctx *p, const float *w, bool with_test, pot_obs *o)
{
    const ds_data *d = p->data;
    o->w2 = pot_w2(w, p->arch->n);
    nn_eval_full(p->arch, &p->ws, w, d->x_train, d->y_train, d->n_train, &o->loss, &o->train_err, NULL);
    o->U = o->loss + regulariser(p, o->w2);
    o->test_err = NAN;
    o->test_loss = NAN;
    if (with_test && d->n_test > 0)
        nn_eval_full(p->arch, &p->ws, w, d->x_test, d->y_test, d->n_test, &o->test_loss, &o->test_err, NULL);
    o->val_err = NAN;
    o->val_loss = NAN;
    if (d->n_val > 0) nn_eval_full(p->arch, &p->ws, w, d->x_val, d->y_val, d->n_val, &o->val_loss, &o->val_err, NULL);
}

double pot_grad_batch(pot_ctx *p, const float *w, const int32_t *idx, int32_t B, float *grad)
{
    const ds_data *d = p->data;
    double loss_sum;
    nn_loss_grad(p->arch, &p->ws, w, d->x_train, d->y_train, idx, B, 1.0f / (float)B, false, grad, &loss_sum,
                 NULL);
    add_regulariser_grad(p, w, grad);
    return loss_sum / B + regulariser(p, pot_w2(w, p->arch->n));
}

double pot_grad_full(pot_ctx *p, const float *w, float *grad)
{
    const ds_data *d = p->data;
    double loss;
    nn_eval_full(p->arch, &p->ws, w, d->x_train, d->y_train, d->n_train, &loss, NULL, grad);
    add_regulariser_grad(p, w, grad);
    return loss + regulariser(p, pot_w2(w, p->arch->n));
}
