/* nn.c: forward and backward passes of the ReLU/softmax network on OpenBLAS (ALGORITHM.md §1).
 *
 * Shapes (row-major, rows = examples of the mini-batch or chunk):
 *   act[0] (rows, N0) gathered inputs; act[l] (rows, N_l) = relu(act[l-1] W_l^T + b_l) for l < L;
 *   act[L] (rows, C) logits. W_l is (N_l, N_(l-1)) inside the flat vector w.
 * Bias and ReLU are fused into the GEMM's epilogue pass: the output rows are pre-filled with the
 * bias so sgemm runs with beta = 1, then one sweep applies max(0, .). */
#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

int nn_arch_init(nn_arch *a, const int32_t *sizes, int32_t n_sizes, bool bias, bz_err *e)
{
    memset(a, 0, sizeof *a);
    if (n_sizes < 2 || n_sizes > NN_MAX_LAYERS + 1)
        return bz_fail(e, BZ_EINVAL, "model.hidden", "a network needs 0 to %d hidden layers (got %d)",
                       NN_MAX_LAYERS - 1, n_sizes - 2);
    a->L = n_sizes - 1;
    a->bias = bias;
    int64_t off = 0;
    for (int32_t l = 0; l < n_sizes; l++) {
        if (sizes[l] < 1)
            return bz_fail(e, BZ_EINVAL, "model.hidden", "layer %d has width %d; every width must be >= 1",
                           l, sizes[l]);
        a->N[l] = sizes[l];
    }
    for (int32_t l = 0; l < a->L; l++) {
        a->w_off[l] = off;
        off += (int64_t)a->N[l + 1] * a->N[l];
        if (bias) {
            a->b_off[l] = off;
            off += a->N[l + 1];
        } else {
            a->b_off[l] = -1;
        }
    }
    a->n = off;
    return 0;
}

void nn_init_he(const nn_arch *a, float *w, uint64_t seed)
{
    bz_rng r;
    rng_seed(&r, seed, 0);
    for (int32_t l = 0; l < a->L; l++) {
        double lim = sqrt(6.0 / a->N[l]);
        int64_t cnt = (int64_t)a->N[l + 1] * a->N[l];
        float *W = w + a->w_off[l];
        for (int64_t i = 0; i < cnt; i++) W[i] = (float)((2.0 * rng_uniform(&r) - 1.0) * lim);
        if (a->bias) memset(w + a->b_off[l], 0, sizeof(float) * (size_t)a->N[l + 1]);
    }
}

int nn_work_init(nn_work *ws, const nn_arch *a, int32_t max_rows, bz_err *e)
{
    memset(ws, 0, sizeof *ws);
    ws->max_rows = max_rows;
    for (int32_t l = 0; l <= a->L; l++) {
        size_t cnt = (size_t)max_rows * (size_t)a->N[l];
        ws->act[l] = malloc(sizeof(float) * cnt);
        ws->delta[l] = l > 0 ? malloc(sizeof(float) * cnt) : NULL;
        if (!ws->act[l] || (l > 0 && !ws->delta[l])) {
            nn_work_free(ws);
            return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for network scratch (%d rows)", max_rows);
        }
    }
    int32_t widest = 0;
    for (int32_t l = 0; l <= a->L; l++) widest = a->N[l] > widest ? a->N[l] : widest;
    ws->sq_in = malloc(sizeof(float) * (size_t)max_rows * (size_t)widest);
    ws->sq_delta = malloc(sizeof(float) * (size_t)max_rows * (size_t)widest);
    if (!ws->sq_in || !ws->sq_delta) {
        nn_work_free(ws);
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for network scratch (%d rows)", max_rows);
    }
    return 0;
}

void nn_work_free(nn_work *ws)
{
    for (int32_t l = 0; l <= NN_MAX_LAYERS; l++) {
        free(ws->act[l]);
        free(ws->delta[l]);
    }
    free(ws->sq_in);
    free(ws->sq_delta);
    memset(ws, 0, sizeof *ws);
}

/* act[0] (rows, N0) <- x[idx[k]] (or the first rows of x when idx is NULL, without copying). */
static const float *gather_inputs(const nn_arch *a, nn_work *ws, const float *x, const int32_t *idx,
                                  int32_t rows)
{
    if (!idx) return x;
    size_t row_bytes = sizeof(float) * (size_t)a->N[0];
    for (int32_t k = 0; k < rows; k++)
        memcpy(ws->act[0] + (size_t)k * a->N[0], x + (size_t)idx[k] * a->N[0], row_bytes);
    return ws->act[0];
}

/* out (rows, N_out) = in (rows, N_in) W^T + b, then ReLU when relu is set. */
static void dense_forward(const float *in, const float *W, const float *b, float *out, int32_t rows,
                          int32_t n_in, int32_t n_out, bool relu)
{
    float beta = 0.0f;
    if (b) {
        for (int32_t k = 0; k < rows; k++) memcpy(out + (size_t)k * n_out, b, sizeof(float) * (size_t)n_out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_out, n_in, 1.0f, in, n_in, W, n_in, beta,
                out, n_out);
    if (relu) {
        size_t cnt = (size_t)rows * n_out;
        for (size_t i = 0; i < cnt; i++) out[i] = out[i] > 0.0f ? out[i] : 0.0f;
    }
}

/* Loss of one row of logits z (C) with label y: logsumexp(z) - z_y, in double. Sets *wrong when
 * argmax z (lowest index on ties) differs from y. If probs is non-NULL it receives softmax(z). */
static double softmax_xent_row(const float *z, int32_t C, int32_t y, float *probs, int *wrong)
{
    int32_t arg = 0;
    float zmax = z[0];
    for (int32_t c = 1; c < C; c++)
        if (z[c] > zmax) {
            zmax = z[c];
            arg = c;
        }
    double sum = 0.0;
    if (probs) { /* each exp once: keep the unnormalised terms in probs, then scale */
        for (int32_t c = 0; c < C; c++) {
            double t = exp((double)z[c] - zmax);
            probs[c] = (float)t;
            sum += t;
        }
        const float inv = (float)(1.0 / sum);
        for (int32_t c = 0; c < C; c++) probs[c] *= inv;
    } else {
        for (int32_t c = 0; c < C; c++) sum += exp((double)z[c] - zmax);
    }
    *wrong = arg != y;
    return log(sum) + zmax - z[y];
}

static const float *forward_layers(const nn_arch *a, nn_work *ws, const float *w, const float *x,
                                   const int32_t *idx, int32_t rows)
{
    const float *in = gather_inputs(a, ws, x, idx, rows);
    const float *x0 = in;
    for (int32_t l = 0; l < a->L; l++) {
        const float *W = w + a->w_off[l];
        const float *b = a->bias ? w + a->b_off[l] : NULL;
        dense_forward(in, W, b, ws->act[l + 1], rows, a->N[l], a->N[l + 1], l + 1 < a->L);
        in = ws->act[l + 1];
    }
    return x0;
}

void nn_forward(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                const int32_t *idx, int32_t rows, double *loss_sum, int64_t *n_err)
{
    forward_layers(a, ws, w, x, idx, rows);
    const int32_t C = a->N[a->L];
    double loss = 0.0;
    int64_t errs = 0;
    for (int32_t k = 0; k < rows; k++) {
        int32_t label = y[idx ? idx[k] : k];
        int wrong;
        loss += softmax_xent_row(ws->act[a->L] + (size_t)k * C, C, label, NULL, &wrong);
        errs += wrong;
    }
    if (loss_sum) *loss_sum = loss;
    if (n_err) *n_err = errs;
}

/* delta[L] (rows, C) <- softmax(z) - onehot(y), per example (not divided by rows). */
static void output_deltas(const nn_arch *a, nn_work *ws, const int32_t *y, const int32_t *idx, int32_t rows,
                          double *loss_sum, int64_t *n_err)
{
    const int32_t C = a->N[a->L];
    double loss = 0.0;
    int64_t errs = 0;
    for (int32_t k = 0; k < rows; k++) {
        int32_t label = y[idx ? idx[k] : k];
        float *d = ws->delta[a->L] + (size_t)k * C;
        int wrong;
        loss += softmax_xent_row(ws->act[a->L] + (size_t)k * C, C, label, d, &wrong);
        d[label] -= 1.0f;
        errs += wrong;
    }
    if (loss_sum) *loss_sum = loss;
    if (n_err) *n_err = errs;
}

/* Layer l (1-based): dW_l (N_l, N_(l-1)) = scale * delta_l^T a_(l-1); db_l = scale * colsum delta_l. */
static void dense_weight_grad(const float *delta, const float *in, float *dW, float *db, int32_t rows,
                              int32_t n_in, int32_t n_out, float scale, bool accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, rows, scale, delta, n_out, in, n_in,
                accumulate ? 1.0f : 0.0f, dW, n_in);
    if (!db) return;
    if (!accumulate) memset(db, 0, sizeof(float) * (size_t)n_out);
    for (int32_t k = 0; k < rows; k++) {
        const float *d = delta + (size_t)k * n_out;
        for (int32_t j = 0; j < n_out; j++) db[j] += scale * d[j];
    }
}

/* delta_(l-1) (rows, N_(l-1)) = (delta_l W_l) * relu'(a_(l-1)), relu' taken as a > 0. */
static void dense_input_delta(const float *delta, const float *W, const float *act_prev, float *delta_prev,
                              int32_t rows, int32_t n_in, int32_t n_out)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n_in, n_out, 1.0f, delta, n_out, W, n_in, 0.0f,
                delta_prev, n_in);
    /* Branchless select (vectorises; a conditional store here cost 2x the GEMMs on small nets). */
    size_t cnt = (size_t)rows * n_in;
    for (size_t i = 0; i < cnt; i++) delta_prev[i] = act_prev[i] > 0.0f ? delta_prev[i] : 0.0f;
}

void nn_loss_grad(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                  const int32_t *idx, int32_t rows, float scale, bool accumulate, float *grad,
                  double *loss_sum, int64_t *n_err)
{
    const float *x0 = forward_layers(a, ws, w, x, idx, rows);
    output_deltas(a, ws, y, idx, rows, loss_sum, n_err);
    for (int32_t l = a->L; l >= 1; l--) {
        const float *in = l > 1 ? ws->act[l - 1] : x0;
        float *db = a->bias ? grad + a->b_off[l - 1] : NULL;
        dense_weight_grad(ws->delta[l], in, grad + a->w_off[l - 1], db, rows, a->N[l - 1], a->N[l], scale,
                          accumulate);
        if (l > 1)
            dense_input_delta(ws->delta[l], w + a->w_off[l - 1], ws->act[l - 1], ws->delta[l - 1], rows,
                              a->N[l - 1], a->N[l]);
    }
}

void nn_eval_full(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                  int64_t rows, double *mean_loss, double *err_frac, float *grad)
{
    double loss = 0.0;
    int64_t errs = 0;
    float scale = rows > 0 ? (float)(1.0 / (double)rows) : 0.0f;
    for (int64_t start = 0; start < rows; start += ws->max_rows) {
        int32_t cnt = (int32_t)(rows - start < ws->max_rows ? rows - start : ws->max_rows);
        const float *xc = x + (size_t)start * a->N[0];
        const int32_t *yc = y + start;
        double l_sum;
        int64_t e_cnt;
        if (grad)
            nn_loss_grad(a, ws, w, xc, yc, NULL, cnt, scale, start > 0, grad, &l_sum, &e_cnt);
        else
            nn_forward(a, ws, w, xc, yc, NULL, cnt, &l_sum, &e_cnt);
        loss += l_sum;
        errs += e_cnt;
    }
    if (grad && rows == 0) memset(grad, 0, sizeof(float) * (size_t)a->n);
    if (mean_loss) *mean_loss = rows > 0 ? loss / (double)rows : 0.0;
    if (err_frac) *err_frac = rows > 0 ? (double)errs / (double)rows : 0.0;
}

/* Squares of a (rows, cols) block into out. */
static void square_into(const float *in, float *out, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) out[i] = in[i] * in[i];
}

static void add_to_double(double *acc, const float *v, int64_t cnt)
{
    for (int64_t i = 0; i < cnt; i++) acc[i] += v[i];
}

/* One chunk: forward, per-example deltas, then for every layer (top-down) the first moment (as in
 * the gradient, unscaled) and the second moment from the squared deltas and squared inputs. */
static void moments_chunk(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                          const int32_t *idx, int32_t rows, double *g_sum, double *q_sum, float *tmp,
                          double *loss)
{
    const float *x0 = forward_layers(a, ws, w, x, idx, rows);
    double l_sum;
    output_deltas(a, ws, y, idx, rows, &l_sum, NULL);
    *loss += l_sum;
    for (int32_t l = a->L; l >= 1; l--) {
        const float *in = l > 1 ? ws->act[l - 1] : x0;
        const int32_t n_in = a->N[l - 1], n_out = a->N[l];
        const int64_t w_cnt = (int64_t)n_in * n_out;
        float *db = a->bias ? tmp + w_cnt : NULL;
        dense_weight_grad(ws->delta[l], in, tmp, db, rows, n_in, n_out, 1.0f, false);
        add_to_double(g_sum + a->w_off[l - 1], tmp, w_cnt + (a->bias ? n_out : 0));
        square_into(in, ws->sq_in, (size_t)rows * n_in);
        square_into(ws->delta[l], ws->sq_delta, (size_t)rows * n_out);
        dense_weight_grad(ws->sq_delta, ws->sq_in, tmp, db, rows, n_in, n_out, 1.0f, false);
        add_to_double(q_sum + a->w_off[l - 1], tmp, w_cnt + (a->bias ? n_out : 0));
        if (l > 1) dense_input_delta(ws->delta[l], w + a->w_off[l - 1], ws->act[l - 1], ws->delta[l - 1], rows, n_in, n_out);
    }
}

void nn_grad_moments(const nn_arch *a, nn_work *ws, const float *w, const float *x, const int32_t *y,
                     const int32_t *idx, int64_t rows, double *g_sum, double *q_sum, float *tmp,
                     double *loss_sum)
{
    double loss = 0.0;
    for (int64_t start = 0; start < rows; start += ws->max_rows) {
        int32_t cnt = (int32_t)(rows - start < ws->max_rows ? rows - start : ws->max_rows);
        const int32_t *ic = idx ? idx + start : NULL;
        const float *xc = idx ? x : x + (size_t)start * a->N[0];
        const int32_t *yc = idx ? y : y + start;
        moments_chunk(a, ws, w, xc, yc, ic, cnt, g_sum, q_sum, tmp, &loss);
    }
    if (loss_sum) *loss_sum = loss;
}
