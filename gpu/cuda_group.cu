/* cuda_group.cu: handle groups and the batched mini-batch gradient of many chains (issue 9).
 *
 * be_cuda_network_group opens K handles on one device: handle 0 (the owner) holds the data, the
 * stream, cuBLAS and the network workspace; handles 1..K-1 (siblings) share all of that and own
 * their noise state, index staging, CUDA graphs and reduction slots, so every chain keeps its own
 * streams and checkpoints exactly as on separate handles. All work of the group is queued on the
 * one stream, in the order the single host thread (multichain's lockstep mode) calls it.
 *
 * ops->grad_batch_group on the owner computes m <= K chains' gradients in one pass:
 *   act[0]  (m B, N0)      the m index lists gathered, chain k's B rows at rows [k B, (k+1) B)
 *   act[l]  (m B, N_l)     = relu(act[l-1]_k W_l,k^T + b_l,k), one cublasSgemmBatched per layer
 *   delta[L] (m B, C)      softmax - onehot, the row's chain's output bias
 *   dW_l,k = delta[l]_k^T act[l-1]_k / B, db_l,k = colsum(delta[l]_k) / B, delta[l-1]_k =
 *   (delta[l]_k W_l,k) * relu'(act[l-1]_k): one batched GEMM each per layer for all chains.
 * The chains' weights and gradients are separate buffers (each chain allocates its own through
 * its handle), so the GEMMs are pointer-array batched (cublasSgemmBatched) rather than strided:
 * the same kernels, with the operand addresses read from device arrays, which are rebuilt only
 * when the set of chains changes. Elementwise work (gather, bias+ReLU, softmax, ReLU mask, the
 * regulariser) runs once over all m B rows. Shapes and rounding follow cuda_net.cu, so each
 * chain's gradient equals its own grad_batch up to the GEMMs' summation order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_impl.h"

#define CU_GROUP_MAX 64 /* handles of one group (MC_MAX_CHAINS) */

/* Pointer arrays of the batched pass, GP_KINDS x (NN_MAX_LAYERS + 1) x K entries. Forward layer l
 * (0-based: N[l] -> N[l+1]): FA weights, FB input, FC output, BIAS its bias (the output layer's
 * is the softmax's). Backward layer l (1-based, delta[l] -> layer l's weights): GA input, GB
 * delta, GC weight gradient; BA delta, BB ones, BC bias gradient; DA weights, DB delta, DC
 * delta[l-1]. RW, RG (l = 0): the weights and gradients, for the regulariser. */
enum { GP_FA, GP_FB, GP_FC, GP_BIAS, GP_GA, GP_GB, GP_GC, GP_BA, GP_BB, GP_BC, GP_DA, GP_DB, GP_DC, GP_RW, GP_RG,
       GP_KINDS };

struct cu_group {
    int32_t K;                               /* handles */
    be_ctx *member[CU_GROUP_MAX];            /* member[0] = the owner */
    int32_t rows;                            /* K max_batch */
    float *act[NN_MAX_LAYERS + 1];           /* (rows, N_l) */
    float *delta[NN_MAX_LAYERS + 1];         /* (rows, N_l), l >= 1 */
    double *row_loss;                        /* (rows) */
    int32_t *row_wrong;                      /* (rows) */
    int32_t *d_idx, *h_idx;                  /* (rows) the chains' index lists in a row; h_idx pinned */
    cudaEvent_t idx_ev;                      /* h_idx is free again once the copy has run */
    bool idx_ev_used;
    void **d_ptr, **h_ptr;                   /* GP_KINDS (L+1) K pointers; h_ptr pinned */
    int32_t key_m, key_B;                    /* the chains the arrays were built for */
    const float *key_w[CU_GROUP_MAX];
    float *key_g[CU_GROUP_MAX];
};

static size_t ptr_index(const cu_group *G, int kind, int32_t l) { return ((size_t)kind * (NN_MAX_LAYERS + 1) + l) * G->K; }

/* Device array of kind at layer l (what the batched GEMMs read). */
template <typename T> static T **dev_ptrs(const cu_group *G, int kind, int32_t l)
{
    return (T **)(G->d_ptr + ptr_index(G, kind, l));
}

static void set_ptr(cu_group *G, int kind, int32_t l, int32_t k, const void *p)
{
    G->h_ptr[ptr_index(G, kind, l) + k] = (void *)p;
}

/* ---- the pointer arrays ---- */

static bool same_key(const cu_group *G, int32_t m, int32_t B, const float *const *w, float *const *g)
{
    if (G->key_m != m || G->key_B != B) return false;
    for (int32_t k = 0; k < m; k++)
        if (G->key_w[k] != w[k] || G->key_g[k] != g[k]) return false;
    return true;
}

static void fill_chain_ptrs(be_ctx *c, cu_group *G, int32_t k, int32_t B, const float *w, float *g)
{
    const nn_arch *a = &c->arch;
    const int64_t base = (int64_t)k * B;
    for (int32_t l = 0; l < a->L; l++) {
        set_ptr(G, GP_FA, l, k, w + a->w_off[l]);
        set_ptr(G, GP_FB, l, k, G->act[l] + base * a->N[l]);
        set_ptr(G, GP_FC, l, k, G->act[l + 1] + base * a->N[l + 1]);
        set_ptr(G, GP_BIAS, l, k, a->bias ? w + a->b_off[l] : NULL);
    }
    for (int32_t l = 1; l <= a->L; l++) {
        const float *dl = G->delta[l] + base * a->N[l];
        set_ptr(G, GP_GA, l, k, G->act[l - 1] + base * a->N[l - 1]);
        set_ptr(G, GP_GB, l, k, dl);
        set_ptr(G, GP_GC, l, k, g + a->w_off[l - 1]);
        set_ptr(G, GP_BA, l, k, dl);
        set_ptr(G, GP_BB, l, k, c->ones);
        set_ptr(G, GP_BC, l, k, a->bias ? g + a->b_off[l - 1] : NULL);
        set_ptr(G, GP_DA, l, k, w + a->w_off[l - 1]);
        set_ptr(G, GP_DB, l, k, dl);
        set_ptr(G, GP_DC, l, k, G->delta[l - 1] ? G->delta[l - 1] + base * a->N[l - 1] : NULL);
    }
    set_ptr(G, GP_RW, 0, k, w);
    set_ptr(G, GP_RG, 0, k, g);
}

/* Rebuild and upload the arrays when the chains changed (rare: a resume, a chain that finished
 * early). The pinned host copy is rewritten only after the stream has drained. */
static bool refresh_ptrs(be_ctx *c, cu_group *G, int32_t m, int32_t B, const float *const *w, float *const *g)
{
    if (same_key(G, m, B, w, g)) return true;
    if (!CK(c, cudaStreamSynchronize(c->st))) return false;
    for (int32_t k = 0; k < m; k++) {
        fill_chain_ptrs(c, G, k, B, w[k], g[k]);
        G->key_w[k] = w[k];
        G->key_g[k] = g[k];
    }
    G->key_m = m;
    G->key_B = B;
    const size_t count = (size_t)GP_KINDS * (NN_MAX_LAYERS + 1) * G->K;
    return CK(c, cudaMemcpyAsync(G->d_ptr, G->h_ptr, sizeof(void *) * count, cudaMemcpyHostToDevice, c->st));
}

/* The m index lists, one after the other, to the device through pinned memory. */
static bool stage_group_indices(be_ctx *c, cu_group *G, int32_t m, const int32_t *const *idx, int32_t B)
{
    if (G->idx_ev_used && !CK(c, cudaEventSynchronize(G->idx_ev))) return false;
    for (int32_t k = 0; k < m; k++) memcpy(G->h_idx + (size_t)k * B, idx[k], sizeof(int32_t) * (size_t)B);
    if (!CK(c, cudaMemcpyAsync(G->d_idx, G->h_idx, sizeof(int32_t) * (size_t)m * B, cudaMemcpyHostToDevice, c->st)))
        return false;
    G->idx_ev_used = true;
    return CK(c, cudaEventRecord(G->idx_ev, c->st));
}

/* ---- the batched pass ---- */

/* C_k = op(A_k) op(B_k) for the m chains (column-major view, as cuda_net.cu's GEMMs). */
static bool gemm_group(be_ctx *c, cublasOperation_t ta, cublasOperation_t tb, int32_t M, int32_t N, int32_t Kd,
                       float alpha, const float *const *A, int32_t lda, const float *const *Bm, int32_t ldb,
                       float *const *C, int32_t ldc, int32_t m)
{
    const float beta = 0.0f;
    return CKB(c, cublasSgemmBatched(c->blas, ta, tb, M, N, Kd, &alpha, A, lda, Bm, ldb, &beta, C, ldc, m));
}

static void group_forward(be_ctx *c, cu_group *G, int32_t m, int32_t B)
{
    const nn_arch *a = &c->arch;
    const int32_t rows = m * B;
    for (int32_t l = 0; l < a->L && !c->err; l++) {
        if (!gemm_group(c, CUBLAS_OP_T, CUBLAS_OP_N, a->N[l + 1], B, a->N[l], 1.0f, dev_ptrs<const float>(G, GP_FA, l),
                        a->N[l], dev_ptrs<const float>(G, GP_FB, l), a->N[l], dev_ptrs<float>(G, GP_FC, l), a->N[l + 1],
                        m))
            return;
        if (l + 1 < a->L) {
            k_bias_act_group(c->st, G->act[l + 1], a->bias ? dev_ptrs<const float>(G, GP_BIAS, l) : NULL, B, rows,
                             a->N[l + 1], true);
            CKL(c, "k_bias_act_group");
        }
    }
    k_softmax_xent_group(c->st, G->act[a->L], a->bias ? dev_ptrs<const float>(G, GP_BIAS, a->L - 1) : NULL, B, rows,
                         a->N[a->L], c->train.y, G->d_idx, G->delta[a->L], G->row_loss, G->row_wrong);
    CKL(c, "k_softmax_xent_group");
}

static void group_backward(be_ctx *c, cu_group *G, int32_t m, int32_t B)
{
    const nn_arch *a = &c->arch;
    const float scale = 1.0f / (float)B;
    for (int32_t l = a->L; l >= 1 && !c->err; l--) {
        const int32_t n_in = a->N[l - 1], n_out = a->N[l];
        if (!gemm_group(c, CUBLAS_OP_N, CUBLAS_OP_T, n_in, n_out, B, scale, dev_ptrs<const float>(G, GP_GA, l), n_in,
                        dev_ptrs<const float>(G, GP_GB, l), n_out, dev_ptrs<float>(G, GP_GC, l), n_in, m))
            return;
        if (a->bias && !gemm_group(c, CUBLAS_OP_N, CUBLAS_OP_N, n_out, 1, B, scale, dev_ptrs<const float>(G, GP_BA, l),
                                   n_out, dev_ptrs<const float>(G, GP_BB, l), B, dev_ptrs<float>(G, GP_BC, l), n_out, m))
            return;
        if (l == 1) break;
        if (!gemm_group(c, CUBLAS_OP_N, CUBLAS_OP_N, n_in, B, n_out, 1.0f, dev_ptrs<const float>(G, GP_DA, l), n_in,
                        dev_ptrs<const float>(G, GP_DB, l), n_out, dev_ptrs<float>(G, GP_DC, l), n_in, m))
            return;
        k_relu_mask(c->st, G->delta[l - 1], G->act[l - 1], (int64_t)m * B * n_in);
        CKL(c, "k_relu_mask");
    }
}

/* A failure of the batched pass belongs to every chain of the group: each handle's sync says it. */
static void share_error(be_ctx *c, cu_group *G)
{
    for (int32_t k = 1; k < G->K; k++) {
        be_ctx *s = G->member[k];
        if (!s || s->err) continue;
        s->err = c->err;
        memcpy(s->msg, c->msg, sizeof s->msg);
    }
}

static bool group_args_ok(be_ctx *c, int32_t m, int32_t B)
{
    const char *why = NULL;
    char buf[200];
    if (!c->grp || c->kind != CU_POT_NET)
        why = "grad_batch_group on a CUDA handle that was not opened as a group (be_cuda_network_group)";
    else if (m < 1 || m > c->grp->K)
        why = (snprintf(buf, sizeof buf, "grad_batch_group for %d chains; the group has %d", (int)m, (int)c->grp->K),
               buf);
    else if (B < 1 || B > c->max_batch)
        why = (snprintf(buf, sizeof buf, "mini-batch of %d rows; this CUDA group was opened for 1 to %d", (int)B,
                        (int)c->max_batch),
               buf);
    if (!why) return true;
    c->err = BZ_EBACKEND;
    snprintf(c->msg, sizeof c->msg, "%s", why);
    return false;
}

void cu_grad_batch_group(be_ctx *c, int32_t m, const float *const *w, const int32_t *const *idx, int32_t B,
                         float *const *g)
{
    if (!cu_enter(c) || !group_args_ok(c, m, B)) return;
    cu_group *G = c->grp;
    const nn_arch *a = &c->arch;
    if (stage_group_indices(c, G, m, idx, B) && refresh_ptrs(c, G, m, B, w, g)) {
        k_gather(c->st, c->train.x, G->d_idx, m * B, a->N[0], G->act[0]);
        if (CKL(c, "k_gather")) group_forward(c, G, m, B);
        if (!c->err) group_backward(c, G, m, B);
        const float reg = (float)(c->lambda / (double)c->n);
        if (!c->err && reg != 0.0f) {
            k_axpy_group(c->st, dev_ptrs<float>(G, GP_RG, 0), reg, dev_ptrs<const float>(G, GP_RW, 0), m, c->n);
            CKL(c, "k_axpy_group");
        }
    }
    if (c->err) share_error(c, G);
}

/* ---- opening and closing a group ---- */

void cu_group_free(be_ctx *owner)
{
    cu_group *G = owner->grp;
    if (!G) return;
    for (int l = 0; l <= NN_MAX_LAYERS; l++) {
        if (G->act[l]) cudaFree(G->act[l]);
        if (G->delta[l]) cudaFree(G->delta[l]);
    }
    if (G->row_loss) cudaFree(G->row_loss);
    if (G->row_wrong) cudaFree(G->row_wrong);
    if (G->d_idx) cudaFree(G->d_idx);
    if (G->d_ptr) cudaFree(G->d_ptr);
    if (G->h_idx) cudaFreeHost(G->h_idx);
    if (G->h_ptr) cudaFreeHost(G->h_ptr);
    if (G->idx_ev) cudaEventDestroy(G->idx_ev);
    free(G);
    owner->grp = NULL;
}

void cu_group_forget(be_ctx *owner, be_ctx *member)
{
    cu_group *G = owner->grp;
    for (int32_t k = 0; G && k < G->K; k++)
        if (G->member[k] == member) G->member[k] = NULL;
}

/* Device bytes of the batched pass's workspace for K chains. */
static int64_t group_workspace_bytes(const nn_arch *a, int32_t K, int32_t max_batch)
{
    int64_t sum_n = 0;
    for (int32_t l = 0; l <= a->L; l++) sum_n += a->N[l];
    const int64_t rows = (int64_t)K * max_batch;
    return rows * (4 * 2 * sum_n + 8 + 4 + 4) + (int64_t)sizeof(void *) * GP_KINDS * (NN_MAX_LAYERS + 1) * K;
}

static bool group_alloc(be_ctx *c, cu_group *G)
{
    const nn_arch *a = &c->arch;
    const size_t rows = (size_t)G->rows, nptr = (size_t)GP_KINDS * (NN_MAX_LAYERS + 1) * G->K;
    bool ok = true;
    for (int32_t l = 0; l <= a->L && ok; l++)
        ok = CK(c, cudaMalloc((void **)&G->act[l], sizeof(float) * rows * (size_t)a->N[l])) &&
             (l == 0 || CK(c, cudaMalloc((void **)&G->delta[l], sizeof(float) * rows * (size_t)a->N[l])));
    return ok && CK(c, cudaMalloc((void **)&G->row_loss, sizeof(double) * rows)) &&
           CK(c, cudaMalloc((void **)&G->row_wrong, sizeof(int32_t) * rows)) &&
           CK(c, cudaMalloc((void **)&G->d_idx, sizeof(int32_t) * rows)) &&
           CK(c, cudaMalloc((void **)&G->d_ptr, sizeof(void *) * nptr)) &&
           CK(c, cudaMallocHost((void **)&G->h_idx, sizeof(int32_t) * rows)) &&
           CK(c, cudaMallocHost((void **)&G->h_ptr, sizeof(void *) * nptr)) &&
           CK(c, cudaEventCreateWithFlags(&G->idx_ev, cudaEventDisableTiming));
}

/* A sibling of owner: a copy sharing the owner's stream, cuBLAS, data and workspace, with its
 * own per-handle resources. */
static be_ctx *sibling_new(be_ctx *owner)
{
    be_ctx *s = (be_ctx *)malloc(sizeof *s);
    if (!s) return NULL;
    memcpy(s, owner, sizeof *s);
    cu_handle_clear(s);
    s->owner = owner;
    s->refs = 0;
    s->gone = false;
    s->grp = NULL;
    s->err = 0;
    s->msg[0] = '\0';
    s->capturing = s->capture_bad = false;
    owner->refs++;
    const size_t n = (size_t)(owner->n > 0 ? owner->n : 1);
    s->host_moments = (double *)malloc(sizeof(double) * 2 * n);
    bool ok = s->host_moments && cu_handle_alloc(s) &&
              CK(s, cudaMalloc((void **)&s->d_idx, sizeof(int32_t) * (size_t)s->max_batch)) &&
              CK(s, cudaMallocHost((void **)&s->h_idx_ring, sizeof(int32_t) * CU_IDX_RING * (size_t)s->max_batch));
    if (!ok) {
        cu_ctx_destroy(s);
        return NULL;
    }
    return s;
}

/* Fail before allocating when K chains' buffers and the workspace do not fit. */
static int check_group_memory(be_ctx *c, int32_t K, bz_err *e)
{
    size_t free_b = 0, total_b = 0;
    if (!CK(c, cudaMemGetInfo(&free_b, &total_b))) return bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: %s", c->msg);
    const int64_t per_chain = 4 * c->n * 14 + (int64_t)CU_IDX_RING * c->max_batch * 4 + (1 << 20);
    const int64_t need = (K - 1) * per_chain + group_workspace_bytes(&c->arch, K, c->max_batch);
    if ((uint64_t)need <= (uint64_t)free_b) return 0;
    const double mib = 1024.0 * 1024.0;
    return bz_fail(e, BZ_ENOMEM, "backend",
                   "%d batched chains need %.0f MiB more on CUDA device %d, %.0f MiB free; run fewer temperatures, a "
                   "smaller batch or network, or backend \"cpu\"",
                   (int)K, (double)need / mib, c->device, (double)free_b / mib);
}

int be_cuda_network_group(be *out, int32_t K, const nn_arch *a, const ds_data *d, double lambda, int32_t max_batch,
                          const be_cuda_opts *o, bz_err *e)
{
    if (K < 1 || K > CU_GROUP_MAX)
        return bz_fail(e, BZ_EINVAL, "sampler.T", "a CUDA handle group holds 1 to %d chains (asked for %d)",
                       CU_GROUP_MAX, (int)K);
    for (int32_t k = 0; k < K; k++) memset(&out[k], 0, sizeof out[k]);
    int rc = be_cuda_network(&out[0], a, d, lambda, max_batch, o, e);
    if (rc) return rc;
    be_ctx *c = out[0].ctx;
    rc = check_group_memory(c, K, e);
    cu_group *G = rc ? NULL : (cu_group *)calloc(1, sizeof *G);
    if (!rc && !G) rc = bz_fail(e, BZ_ENOMEM, NULL, "out of memory for a CUDA handle group");
    if (!rc) {
        c->grp = G;
        G->K = K;
        G->rows = K * c->max_batch;
        G->member[0] = c;
        if (!group_alloc(c, G))
            rc = bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: cannot set up a group of %d chains: %s", (int)K,
                         c->msg);
    }
    for (int32_t k = 1; k < K && !rc; k++) {
        be_ctx *s = sibling_new(c);
        if (!s) {
            rc = bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: cannot open chain %d of a group: %s", (int)k,
                         c->err ? c->msg : "out of memory");
            break;
        }
        G->member[k] = s;
        cu_install(&out[k], s);
        out[k].layout = out[0].layout;
    }
    if (!rc && !CK(c, cudaStreamSynchronize(c->st)))
        rc = bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: %s", c->msg);
    if (rc) {
        for (int32_t k = K - 1; k >= 0; k--)
            if (out[k].ops) be_destroy(&out[k]);
    }
    return rc;
}
