/* cuda_net.cu: the network potential of ALGORITHM.md §1-§2 on the device (cuBLAS float32, TF32 by
 * option), mirroring core/nn.c and core/potential.c: mini-batch gradient, full-set gradient and
 * observables in chunks, and the exact per-example gradient moments of §5.
 *
 * Shapes (row-major, rows = examples of the mini-batch or chunk): act[0] (rows, N0) gathered
 * inputs; act[l] (rows, N_l) = relu(act[l-1] W_l^T + b_l) for l < L; act[L] (rows, C) logits
 * without the output bias (the softmax kernel adds it); delta[l] (rows, N_l) per-example output
 * deltas, not divided by the batch size. W_l (N_l, N_(l-1)) row-major is, for column-major
 * cuBLAS, W_l^T with leading dimension N_(l-1); an (rows, k) activation is (k, rows) with ld k. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_impl.h"

/* ---- GEMMs ---- */

/* out (rows, n_out) = in (rows, n_in) W^T */
static bool gemm_forward(be_ctx *c, const float *in, const float *W, float *out, int32_t rows, int32_t n_in,
                         int32_t n_out)
{
    const float one = 1.0f, zero = 0.0f;
    return CKB(c, cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, n_out, rows, n_in, &one, W, n_in, in, n_in, &zero,
                              out, n_out));
}

/* dW (n_out, n_in) = alpha delta^T in + beta dW, delta (rows, n_out), in (rows, n_in) */
static bool gemm_weight_grad(be_ctx *c, const float *delta, const float *in, float *dW, int32_t rows, int32_t n_in,
                             int32_t n_out, float alpha, float beta)
{
    return CKB(c, cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, n_in, n_out, rows, &alpha, in, n_in, delta, n_out,
                              &beta, dW, n_in));
}

/* db (n_out) = alpha colsum(delta) + beta db, as a GEMV with the ones vector */
static bool gemv_colsum(be_ctx *c, const float *delta, float *db, int32_t rows, int32_t n_out, float alpha, float beta)
{
    return CKB(c, cublasSgemv(c->blas, CUBLAS_OP_N, n_out, rows, &alpha, delta, n_out, c->ones, 1, &beta, db, 1));
}

/* delta_prev (rows, n_in) = (delta (rows, n_out) W (n_out, n_in)) * relu'(act_prev) */
static bool input_delta(be_ctx *c, const float *delta, const float *W, const float *act_prev, float *delta_prev,
                        int32_t rows, int32_t n_in, int32_t n_out)
{
    const float one = 1.0f, zero = 0.0f;
    if (!CKB(c, cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, n_in, rows, n_out, &one, W, n_in, delta, n_out, &zero,
                            delta_prev, n_in)))
        return false;
    k_relu_mask(c->st, delta_prev, act_prev, (int64_t)rows * n_in);
    return CKL(c, "k_relu_mask");
}

/* ---- passes ---- */

/* The input of layer 1: rows gathered by the device index list idx, or rows start.. of the set. */
static const float *layer_inputs(be_ctx *c, const cu_set *s, const int32_t *idx, int64_t start, int32_t rows)
{
    if (!idx) return s->x + start * c->arch.N[0];
    k_gather(c->st, s->x, idx, rows, c->arch.N[0], c->act[0]);
    CKL(c, "k_gather");
    return c->act[0];
}

static const float *bias_of(be_ctx *c, const float *w, int32_t l)
{
    return c->arch.bias ? w + c->arch.b_off[l] : NULL;
}

/* act[1..L] from x0 (rows, N0); the output bias is left to the softmax. */
static void forward(be_ctx *c, const float *w, const float *x0, int32_t rows)
{
    const nn_arch *a = &c->arch;
    const float *in = x0;
    for (int32_t l = 0; l < a->L; l++) {
        if (!gemm_forward(c, in, w + a->w_off[l], c->act[l + 1], rows, a->N[l], a->N[l + 1])) return;
        if (l + 1 < a->L) {
            k_bias_act(c->st, c->act[l + 1], bias_of(c, w, l), rows, a->N[l + 1], true);
            CKL(c, "k_bias_act");
        }
        in = c->act[l + 1];
    }
}

/* Per-row loss and errors of the chunk; delta[L] = softmax - onehot when with_delta. Labels are
 * y[idx[k]] (idx non-NULL) or y[start + k]. */
static void output_layer(be_ctx *c, const float *w, const cu_set *s, const int32_t *idx, int64_t start, int32_t rows,
                         bool with_delta)
{
    const nn_arch *a = &c->arch;
    k_softmax_xent(c->st, c->act[a->L], bias_of(c, w, a->L - 1), rows, a->N[a->L], idx ? s->y : s->y + start, idx,
                   with_delta ? c->delta[a->L] : NULL, c->row_loss, c->row_wrong);
    CKL(c, "k_softmax_xent");
}

/* grad = scale * sum_k dl_k/dw + beta * grad (data part), top-down from delta[L]. */
static void backward(be_ctx *c, const float *w, const float *x0, int32_t rows, float scale, float beta, float *grad)
{
    const nn_arch *a = &c->arch;
    for (int32_t l = a->L; l >= 1; l--) {
        const float *in = l > 1 ? c->act[l - 1] : x0;
        const int32_t n_in = a->N[l - 1], n_out = a->N[l];
        if (!gemm_weight_grad(c, c->delta[l], in, grad + a->w_off[l - 1], rows, n_in, n_out, scale, beta)) return;
        if (a->bias && !gemv_colsum(c, c->delta[l], grad + a->b_off[l - 1], rows, n_out, scale, beta)) return;
        if (l > 1 && !input_delta(c, c->delta[l], w + a->w_off[l - 1], c->act[l - 1], c->delta[l - 1], rows, n_in, n_out))
            return;
    }
}

/* grad += (lambda / n) w, as potential.c's add_regulariser_grad */
static void add_regulariser(be_ctx *c, const float *w, float *grad)
{
    const float k = (float)(c->lambda / (double)c->n);
    if (k == 0.0f) return;
    k_axpy(c->st, grad, k, w, NULL, c->n);
    CKL(c, "k_axpy");
}

void net_grad_batch_body(be_ctx *c, const float *w, int32_t B, float *g)
{
    const float *x0 = layer_inputs(c, &c->train, c->d_idx, 0, B);
    forward(c, w, x0, B);
    output_layer(c, w, &c->train, c->d_idx, 0, B, true);
    backward(c, w, x0, B, 1.0f / (float)B, 0.0f, g);
    add_regulariser(c, w, g);
}

/* Loss sum and error count of a whole split into acc[slot], acc[slot + 1]; with grad, also the
 * gradient of the mean loss (scale 1/rows per chunk, as nn_eval_full). */
static void eval_set(be_ctx *c, const float *w, const cu_set *s, int slot, float *grad)
{
    const float scale = s->rows > 0 ? (float)(1.0 / (double)s->rows) : 0.0f;
    for (int64_t start = 0; start < s->rows && !c->err; start += c->max_rows) {
        const int32_t cnt = (int32_t)(s->rows - start < c->max_rows ? s->rows - start : c->max_rows);
        const float *x0 = layer_inputs(c, s, NULL, start, cnt);
        forward(c, w, x0, cnt);
        output_layer(c, w, s, NULL, start, cnt, grad != NULL);
        k_rows_sum(c->st, c->row_loss, c->row_wrong, cnt, c->acc + slot);
        CKL(c, "k_rows_sum");
        if (grad) backward(c, w, x0, cnt, scale, start > 0 ? 1.0f : 0.0f, grad);
    }
}

double net_grad_full(be_ctx *c, const float *w, float *g)
{
    const int64_t P = c->train.rows;
    CK(c, cudaMemsetAsync(c->acc, 0, CU_ACC * sizeof(double), c->st));
    if (P == 0) CK(c, cudaMemsetAsync(g, 0, sizeof(float) * (size_t)c->n, c->st));
    eval_set(c, w, &c->train, 0, g);
    add_regulariser(c, w, g);
    cu_w2_into(c, w, c->n, 2);
    if (!cu_fetch_acc(c, 4)) return NAN;
    const double loss = P > 0 ? c->h_acc[0] / (double)P : 0.0;
    return loss + 0.5 * c->lambda * (c->h_acc[2] / (double)c->n);
}

static void mean_of(const double *acc, int64_t rows, double *loss, double *err)
{
    *loss = rows > 0 ? acc[0] / (double)rows : 0.0;
    *err = rows > 0 ? acc[1] / (double)rows : 0.0;
}

void net_observe(be_ctx *c, const float *w, bool with_test, pot_obs *o)
{
    const bool test = with_test && c->test.rows > 0, val = c->val.rows > 0;
    CK(c, cudaMemsetAsync(c->acc, 0, CU_ACC * sizeof(double), c->st));
    eval_set(c, w, &c->train, 0, NULL);
    if (test) eval_set(c, w, &c->test, 2, NULL);
    if (val) eval_set(c, w, &c->val, 4, NULL);
    cu_w2_into(c, w, c->n, 6);
    if (!cu_fetch_acc(c, 8)) return;
    o->w2 = c->h_acc[6] / (double)c->n;
    mean_of(c->h_acc, c->train.rows, &o->loss, &o->train_err);
    o->U = o->loss + 0.5 * c->lambda * o->w2;
    if (test) mean_of(c->h_acc + 2, c->test.rows, &o->test_loss, &o->test_err);
    if (val) mean_of(c->h_acc + 4, c->val.rows, &o->val_loss, &o->val_err);
}

/* One chunk of the moments: first moments (the unscaled gradient) into tmp_g and second moments
 * (delta*delta)^T (a*a), colsum(delta*delta) into tmp_q, laid out like w. */
static void moments_chunk(be_ctx *c, const float *w, const int32_t *idx, int64_t start, int32_t rows)
{
    const nn_arch *a = &c->arch;
    const float *x0 = layer_inputs(c, &c->train, idx, start, rows);
    forward(c, w, x0, rows);
    output_layer(c, w, &c->train, idx, start, rows, true);
    for (int32_t l = a->L; l >= 1 && !c->err; l--) {
        const float *in = l > 1 ? c->act[l - 1] : x0;
        const int32_t n_in = a->N[l - 1], n_out = a->N[l];
        gemm_weight_grad(c, c->delta[l], in, c->tmp_g + a->w_off[l - 1], rows, n_in, n_out, 1.0f, 0.0f);
        if (a->bias) gemv_colsum(c, c->delta[l], c->tmp_g + a->b_off[l - 1], rows, n_out, 1.0f, 0.0f);
        k_square(c->st, in, c->sq_in, (int64_t)rows * n_in);
        k_square(c->st, c->delta[l], c->sq_delta, (int64_t)rows * n_out);
        CKL(c, "k_square");
        gemm_weight_grad(c, c->sq_delta, c->sq_in, c->tmp_q + a->w_off[l - 1], rows, n_in, n_out, 1.0f, 0.0f);
        if (a->bias) gemv_colsum(c, c->sq_delta, c->tmp_q + a->b_off[l - 1], rows, n_out, 1.0f, 0.0f);
        if (l > 1) input_delta(c, c->delta[l], w + a->w_off[l - 1], c->act[l - 1], c->delta[l - 1], rows, n_in, n_out);
    }
    k_add_double(c->st, c->g_acc, c->tmp_g, c->n);
    k_add_double(c->st, c->q_acc, c->tmp_q, c->n);
    CKL(c, "k_add_double");
}

void net_moments(be_ctx *c, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum)
{
    const int64_t n = c->n;
    if (rows <= 0) return;
    if (idx && rows > c->idx_big_cap) {
        if (!c->err) {
            c->err = BZ_EBACKEND;
            snprintf(c->msg, sizeof c->msg, "moments over %lld indices; at most %lld fit", (long long)rows,
                     (long long)c->idx_big_cap);
        }
    } else if (idx) {
        CK(c, cudaMemcpyAsync(c->d_idx_big, idx, sizeof(int32_t) * (size_t)rows, cudaMemcpyHostToDevice, c->st));
    }
    CK(c, cudaMemsetAsync(c->g_acc, 0, sizeof(double) * (size_t)n, c->st));
    CK(c, cudaMemsetAsync(c->q_acc, 0, sizeof(double) * (size_t)n, c->st));
    for (int64_t start = 0; start < rows && !c->err; start += c->max_rows) {
        const int32_t cnt = (int32_t)(rows - start < c->max_rows ? rows - start : c->max_rows);
        moments_chunk(c, w, idx ? c->d_idx_big + start : NULL, start, cnt);
    }
    double *hg = c->host_moments, *hq = c->host_moments + n;
    CK(c, cudaMemcpyAsync(hg, c->g_acc, sizeof(double) * (size_t)n, cudaMemcpyDeviceToHost, c->st));
    CK(c, cudaMemcpyAsync(hq, c->q_acc, sizeof(double) * (size_t)n, cudaMemcpyDeviceToHost, c->st));
    if (!CK(c, cudaStreamSynchronize(c->st))) {
        for (int64_t i = 0; i < n; i++) g_sum[i] = q_sum[i] = NAN;
        return;
    }
    for (int64_t i = 0; i < n; i++) g_sum[i] += hg[i], q_sum[i] += hq[i];
}

/* ---- creation ---- */

static int64_t widest(const nn_arch *a)
{
    int64_t m = 0;
    for (int32_t l = 0; l <= a->L; l++) m = a->N[l] > m ? a->N[l] : m;
    return m;
}

static int32_t chunk_rows_for(const ds_data *d, int32_t max_batch)
{
    int64_t most = d->n_train;
    if (d->n_test > most) most = d->n_test;
    if (d->n_val > most) most = d->n_val;
    int64_t rows = most < CU_CHUNK ? most : CU_CHUNK;
    if (rows < max_batch) rows = max_batch;
    return (int32_t)(rows > 0 ? rows : 1);
}

int64_t be_cuda_network_bytes(const nn_arch *a, const ds_data *d, int32_t max_batch)
{
    const int64_t rows = chunk_rows_for(d, max_batch > 0 ? max_batch : 1);
    const int64_t examples = d->n_train + d->n_test + d->n_val;
    int64_t sum_n = 0;
    for (int32_t l = 0; l <= a->L; l++) sum_n += a->N[l];
    int64_t bytes = examples * (4 * (int64_t)a->N[0] + 4);           /* x and y of every split */
    bytes += 4 * (int64_t)a->n * (12 + 2) + 8 * (int64_t)a->n * 2;    /* samplers' buffers, moments */
    bytes += rows * (4 * (2 * sum_n + 2 * widest(a) + 1) + 8 + 4);    /* activations, deltas, squares */
    bytes += 4 * (d->n_train + max_batch);                            /* index lists */
    bytes += (int64_t)CU_BLAS_WS + (64LL << 20);                      /* cuBLAS workspace, graphs, slack */
    return bytes;
}

static bool dev_alloc(be_ctx *c, void **p, size_t bytes)
{
    return CK(c, cudaMalloc(p, bytes > 0 ? bytes : 1));
}

/* A split to the device (nothing when rows == 0). */
static bool upload_set(be_ctx *c, cu_set *s, const float *x, const int32_t *y, int64_t rows, int32_t n_in)
{
    s->rows = rows;
    if (rows <= 0) return true;
    const size_t xb = sizeof(float) * (size_t)rows * (size_t)n_in, yb = sizeof(int32_t) * (size_t)rows;
    return dev_alloc(c, (void **)&s->x, xb) && dev_alloc(c, (void **)&s->y, yb) &&
           CK(c, cudaMemcpyAsync(s->x, x, xb, cudaMemcpyHostToDevice, c->st)) &&
           CK(c, cudaMemcpyAsync(s->y, y, yb, cudaMemcpyHostToDevice, c->st));
}

static bool alloc_workspace(be_ctx *c)
{
    const nn_arch *a = &c->arch;
    const size_t rows = (size_t)c->max_rows, n = (size_t)a->n;
    int32_t wide = 0;
    bool ok = true;
    for (int32_t l = 0; l <= a->L && ok; l++) {
        wide = a->N[l] > wide ? a->N[l] : wide;
        ok = dev_alloc(c, (void **)&c->act[l], sizeof(float) * rows * (size_t)a->N[l]) &&
             (l == 0 || dev_alloc(c, (void **)&c->delta[l], sizeof(float) * rows * (size_t)a->N[l]));
    }
    ok = ok && dev_alloc(c, (void **)&c->sq_in, sizeof(float) * rows * (size_t)wide) &&
         dev_alloc(c, (void **)&c->sq_delta, sizeof(float) * rows * (size_t)wide) &&
         dev_alloc(c, (void **)&c->ones, sizeof(float) * rows) &&
         dev_alloc(c, (void **)&c->row_loss, sizeof(double) * rows) &&
         dev_alloc(c, (void **)&c->row_wrong, sizeof(int32_t) * rows) &&
         dev_alloc(c, (void **)&c->tmp_g, sizeof(float) * n) && dev_alloc(c, (void **)&c->tmp_q, sizeof(float) * n) &&
         dev_alloc(c, (void **)&c->g_acc, sizeof(double) * n) && dev_alloc(c, (void **)&c->q_acc, sizeof(double) * n) &&
         dev_alloc(c, (void **)&c->d_idx, sizeof(int32_t) * (size_t)c->max_batch) &&
         dev_alloc(c, (void **)&c->d_idx_big, sizeof(int32_t) * (size_t)c->idx_big_cap) &&
         CK(c, cudaMallocHost((void **)&c->h_idx_ring, sizeof(int32_t) * CU_IDX_RING * (size_t)c->max_batch));
    if (!ok) return false;
    /* tmp_g, tmp_q: components a chunk does not write (none today) stay 0 */
    ok = CK(c, cudaMemsetAsync(c->tmp_g, 0, sizeof(float) * n, c->st)) &&
         CK(c, cudaMemsetAsync(c->tmp_q, 0, sizeof(float) * n, c->st));
    k_fill(c->st, c->ones, 1.0f, c->max_rows);
    return ok && CKL(c, "k_fill");
}

static void network_layout(be_layout *l, const nn_arch *a, const ds_data *d, double lambda)
{
    memset(l, 0, sizeof *l);
    l->n = a->n;
    l->n_groups = a->L;
    for (int32_t g = 0; g < a->L; g++) l->off[g] = a->w_off[g];
    l->off[a->L] = a->n;
    l->fast_end = l->off[a->L < 2 ? a->L : 2];
    l->P = (int32_t)d->n_train;
    l->lambda = lambda;
    l->has_test = d->n_test > 0;
}

/* The start-up memory check: fail before allocating anything large. */
static int check_memory(be_ctx *c, const nn_arch *a, const ds_data *d, int32_t max_batch, bz_err *e)
{
    size_t free_b = 0, total_b = 0;
    if (!CK(c, cudaMemGetInfo(&free_b, &total_b)))
        return bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: %s", c->msg);
    const int64_t need = be_cuda_network_bytes(a, d, max_batch);
    if ((uint64_t)need <= (uint64_t)free_b) return 0;
    cudaDeviceProp prop;
    const char *name = cudaGetDeviceProperties(&prop, c->device) == cudaSuccess ? prop.name : "?";
    const double mib = 1024.0 * 1024.0;
    return bz_fail(e, BZ_ENOMEM, "backend",
                   "the job needs %.0f MiB on CUDA device %d (%s), %.0f MiB free of %.0f MiB; use a smaller network, "
                   "batch or data set, another device, or backend \"cpu\"",
                   (double)need / mib, c->device, name, (double)free_b / mib, (double)total_b / mib);
}

static int fail_net(be_ctx *c, int rc)
{
    cu_ctx_destroy(c);
    return rc;
}

int be_cuda_network(be *out, const nn_arch *a, const ds_data *d, double lambda, int32_t max_batch,
                    const be_cuda_opts *o, bz_err *e)
{
    memset(out, 0, sizeof *out);
    be_cuda_opts def;
    if (!o) be_cuda_default_opts(&def), o = &def;
    if (max_batch < 1) max_batch = 1;
    be_ctx *c;
    int rc = cu_ctx_create(&c, o, e);
    if (rc) return rc;
    rc = check_memory(c, a, d, max_batch, e);
    if (rc) return fail_net(c, rc);
    c->kind = CU_POT_NET;
    c->arch = *a;
    c->lambda = lambda;
    c->n = a->n;
    c->max_batch = max_batch;
    c->max_rows = chunk_rows_for(d, max_batch);
    c->idx_big_cap = d->n_train > 0 ? d->n_train : 1;
    c->host_moments = (double *)malloc(sizeof(double) * 2 * (size_t)(a->n > 0 ? a->n : 1));
    if (!c->host_moments) return fail_net(c, bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the CUDA backend"));
    bool ok = upload_set(c, &c->train, d->x_train, d->y_train, d->n_train, a->N[0]) &&
              upload_set(c, &c->test, d->x_test, d->y_test, d->n_test, a->N[0]) &&
              upload_set(c, &c->val, d->x_val, d->y_val, d->n_val, a->N[0]) && alloc_workspace(c) &&
              CK(c, cudaStreamSynchronize(c->st));
    if (!ok)
        return fail_net(c, bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: cannot set up the network: %s", c->msg));
    cu_install(out, c);
    network_layout(&out->layout, a, d, lambda);
    return 0;
}
