/* nn.h: the fully connected ReLU/softmax network of ALGORITHM.md §1 on the CPU (OpenBLAS).
 *
 * Flat layout: w = [W_1, b_1, W_2, b_2, ..., W_L, b_L], W_l of shape (N_l, N_(l-1)) row-major,
 * b_l of length N_l (absent when bias is off). All passes take a mini-batch as a list of row
 * indices into an input matrix x (P, N0), so the data set is never copied per step. */
#ifndef BZ_NN_H
#define BZ_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "bz_error.h"

#define NN_MAX_LAYERS 9 /* weight layers L = hidden + 1 */

typedef struct nn_arch {
    int32_t L;                       /* number of weight layers */
    int32_t N[NN_MAX_LAYERS + 1];    /* N[0] = inputs, ..., N[L] = classes */
    bool bias;
    int64_t n;                       /* total parameters */
    int64_t w_off[NN_MAX_LAYERS];    /* offset of W_(l+1) in the flat vector */
    int64_t b_off[NN_MAX_LAYERS];    /* offset of b_(l+1), -1 when bias is off */
} nn_arch;

/* sizes = [N0, N1, ..., NL] with n_sizes = L + 1 (2..NN_MAX_LAYERS+1), every N >= 1. */
int nn_arch_init(nn_arch *a, const int32_t *sizes, int32_t n_sizes, bool bias, bz_err *e);

/* He initialisation: W_l entries uniform in +-sqrt(6 / N_(l-1)), biases 0. Deterministic in seed. */
void nn_init_he(const nn_arch *a, float *w, uint64_t seed);

/* Scratch for passes of up to max_rows examples. Memory: max_rows * (2 sum N_l + 2 max N_l) floats. */
typedef struct nn_work {
    int32_t max_rows;
    float *act[NN_MAX_LAYERS + 1];   /* act[0]: gathered inputs (rows, N0); act[l]: a_l (rows, N_l),
                                        act[L]: logits, then softmax - onehot after backward */
    float *delta[NN_MAX_LAYERS + 1]; /* delta[l] (rows, N_l) for l >= 1 */
    float *sq_in, *sq_delta;         /* (rows, max N_l) squares for nn_grad_moments */
} nn_work;

int nn_work_init(nn_work *ws, const nn_arch *a, int32_t max_rows, bz_err *e);
void nn_work_free(nn_work *ws);

/* Forward pass of rows examples x[idx[k]] (or rows 0..rows-1 when idx is NULL).
 * x is (P, N0). Leaves logits in ws->act[L] (rows, C). Returns the summed loss
 * sum_k -log softmax(z_k)[y_k] in *loss_sum and the number of misclassified rows in *n_err
 * (argmax with ties to the lowest index). Either output may be NULL. rows <= max_rows. */
void nn_forward(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                const int32_t *idx, int32_t rows, double *loss_sum, int64_t *n_err);

/* Forward then backward: grad = scale * sum_k d l_k / d w (data part only, no regulariser).
 * With scale = 1/rows this is the gradient of the mean loss. grad has length a->n and is
 * overwritten (accumulate = false) or added to (accumulate = true). */
void nn_loss_grad(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                  const int32_t *idx, int32_t rows, float scale, bool accumulate, float *grad,
                  double *loss_sum, int64_t *n_err);

/* Full-set evaluation in chunks of at most ws->max_rows rows: mean loss and error fraction of
 * (x, y) with rows examples. If grad is non-NULL it receives the gradient of the mean loss. */
void nn_eval_full(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                  int64_t rows, double *mean_loss, double *err_frac, float *grad);

#endif

/* Per-example gradient moments for the exact variance estimate (ALGORITHM.md §5): over the rows
 * examples x[idx[k]] (or the first rows when idx is NULL), in chunks of ws->max_rows,
 *   g_sum[i] += sum_mu d l_mu / d w_i,     q_sum[i] += sum_mu (d l_mu / d w_i)^2.
 * For a layer with inputs a (rows, N_(l-1)) and per-example output deltas delta (rows, N_l):
 *   sum_mu (dl/dW)^2 = (delta*delta)^T (a*a),   sum_mu (dl/db)^2 = colsum(delta*delta).
 * g_sum and q_sum (length a->n, double) are accumulated into, not cleared. tmp is float scratch
 * of length a->n. Also returns the summed loss in *loss_sum if non-NULL. */
void nn_grad_moments(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                     const int32_t *idx, int64_t rows, double *g_sum, double *q_sum, float *tmp,
                     double *loss_sum);
