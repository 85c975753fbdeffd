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
 * chain's gradient equals its own grad_batch up to the GEMMs' summation order.
 *
 * The sampler's elementwise updates of a lockstep batch (sampler.h smp_batch_*) come here too:
 * add_noise_group, axpy_group and sq_max_lagged_group launch one kernel (grid.y = chain) for all
 * chains where separate handles launch one each. Their operand lists (the chains' p, g, w, ...)
 * are cached on the device (CU_PSET_SLOTS lists; a pL run uses 4), each chain's noise key and
 * counter go up per call through a pinned ring, and every chain's numbers are bit for bit those
 * of its own handle (same Philox stream and counter, same rounding, the exact max). A pL step of
 * K chains is then about 30 launches in all rather than 10 K + 20: on a small network the
 * launches, not the arithmetic, are what a step costs. */
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
#define CU_PSET_SLOTS 8  /* distinct operand lists of the elementwise group ops (pL uses 4) */

/* One cached list of up to 3 pointer arrays (m pointers each) on the device. */
typedef struct cu_pset {
    int32_t m, arrays;
    const void *key[3 * CU_GROUP_MAX];
    uint64_t last_use;        /* 0: empty */
} cu_pset;

/* Per-chain values of one add_noise_group call. */
typedef struct cu_scalars {
    uint64_t key[CU_GROUP_MAX], ctr[CU_GROUP_MAX];
    float s_const[CU_GROUP_MAX];
} cu_scalars;

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
    int32_t *d_idx;                          /* (rows) the chains' index lists, one after the other */
    int32_t *h_idx;                          /* pinned (CU_IDX_RING, rows): staging, a ring so the
                                                host may run a few steps ahead of the device */
    cudaEvent_t idx_ev[CU_IDX_RING];         /* slot s is free again once its copy has run */
    bool idx_ev_used[CU_IDX_RING];
    int idx_pos;
    void **d_ptr, **h_ptr;                   /* GP_KINDS (L+1) K pointers; h_ptr pinned */
    int32_t key_m, key_B;                    /* the chains the arrays were built for */
    const float *key_w[CU_GROUP_MAX];
    float *key_g[CU_GROUP_MAX];

    /* elementwise group ops */
    cu_pset pset[CU_PSET_SLOTS];             /* cached pointer arrays of the ops' operands */
    uint64_t pset_tick;
    void **d_pset, **h_pset;                 /* CU_PSET_SLOTS x 3 K pointers (device; pinned staging) */
    cu_scalars *d_scal, *h_scal;             /* CU_IDX_RING slots of per-chain noise values */
    cudaEvent_t scal_ev[CU_IDX_RING];
    bool scal_ev_used[CU_IDX_RING];
    int scal_pos;
    double *partial_g;                       /* K x 2 CU_RED_BLOCKS */
    double *d_lagg, *h_lagg;                 /* CU_LAG_SLOTS x 2 K (device; pinned) */
    cudaEvent_t lagg_ev[CU_LAG_SLOTS];
    int64_t lagg_calls;
    int32_t lagg_m;
    int64_t lagg_count;
    const void *lagg_key[2 * CU_GROUP_MAX];  /* the x and v lists of the lagged reduction */
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
    const int slot = G->idx_pos;
    G->idx_pos = (G->idx_pos + 1) % CU_IDX_RING;
    if (G->idx_ev_used[slot] && !CK(c, cudaEventSynchronize(G->idx_ev[slot]))) return false;
    int32_t *h = G->h_idx + (size_t)slot * G->rows;
    for (int32_t k = 0; k < m; k++) memcpy(h + (size_t)k * B, idx[k], sizeof(int32_t) * (size_t)B);
    /* d_idx is one buffer: this copy is queued after the kernels of the previous pass read it */
    if (!CK(c, cudaMemcpyAsync(G->d_idx, h, sizeof(int32_t) * (size_t)m * B, cudaMemcpyHostToDevice, c->st)))
        return false;
    G->idx_ev_used[slot] = true;
    return CK(c, cudaEventRecord(G->idx_ev[slot], c->st));
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
    if (!cu_enter(c) || !group_args_ok(c, m, B)) {
        if (c->grp) share_error(c, c->grp);
        return;
    }
    cu_group *G = c->grp;
    const nn_arch *a = &c->arch;
    if (stage_group_indices(c, G, m, idx, B) && refresh_ptrs(c, G, m, B, w, g)) {
        k_gather(c->st, c->train.x, G->d_idx, m * B, a->N[0], G->act[0]);
        if (CKL(c, "k_gather")) group_forward(c, G, m, B);
        if (!c->err) group_backward(c, G, m, B);
        const float reg = (float)(c->lambda / (double)c->n);
        if (!c->err && reg != 0.0f) {
            k_axpy_group(c->st, dev_ptrs<float>(G, GP_RG, 0), reg, dev_ptrs<const float>(G, GP_RW, 0), NULL, m, c->n);
            CKL(c, "k_axpy_group");
        }
    }
    if (c->err) share_error(c, G);
}

/* ---- elementwise group ops (lockstep batches: one launch for every chain) ---- */

/* Device arrays holding `arrays` lists of m pointers (lists[a][k]); cached by content, so a
 * lockstep run uploads each of its few operand lists once. NULL on error. */
static void **pset_find(be_ctx *c, cu_group *G, int32_t m, int arrays, const void *const *const *lists)
{
    cu_pset *lru = &G->pset[0];
    for (int i = 0; i < CU_PSET_SLOTS; i++) {
        cu_pset *p = &G->pset[i];
        bool same = p->last_use && p->m == m && p->arrays == arrays;
        for (int a = 0; same && a < arrays; a++)
            same = !memcmp(p->key + (size_t)a * m, lists[a], sizeof(void *) * (size_t)m);
        if (same) {
            p->last_use = ++G->pset_tick;
            return G->d_pset + (size_t)i * 3 * G->K;
        }
        if (p->last_use < lru->last_use) lru = p;
    }
    const int slot = (int)(lru - G->pset);
    if (!CK(c, cudaStreamSynchronize(c->st))) return NULL; /* the slot may still be read */
    void **h = G->h_pset + (size_t)slot * 3 * G->K;
    for (int a = 0; a < arrays; a++) {
        memcpy(lru->key + (size_t)a * m, lists[a], sizeof(void *) * (size_t)m);
        memcpy(h + (size_t)a * m, lists[a], sizeof(void *) * (size_t)m);
    }
    lru->m = m, lru->arrays = arrays, lru->last_use = ++G->pset_tick;
    void **d = G->d_pset + (size_t)slot * 3 * G->K;
    if (!CK(c, cudaMemcpyAsync(d, h, sizeof(void *) * (size_t)arrays * m, cudaMemcpyHostToDevice, c->st)))
        return NULL;
    return d;
}

/* The next staging slot of per-chain noise values, filled by the caller, then sent with
 * scal_send. The pinned slot is reused only after its previous copy has run. */
static cu_scalars *scal_take(be_ctx *c, cu_group *G, int *slot)
{
    *slot = G->scal_pos;
    G->scal_pos = (G->scal_pos + 1) % CU_IDX_RING;
    if (G->scal_ev_used[*slot] && !CK(c, cudaEventSynchronize(G->scal_ev[*slot]))) return NULL;
    return G->h_scal + *slot;
}

static const cu_scalars *scal_send(be_ctx *c, cu_group *G, int slot)
{
    if (!CK(c, cudaMemcpyAsync(G->d_scal + slot, G->h_scal + slot, sizeof(cu_scalars), cudaMemcpyHostToDevice,
                               c->st)))
        return NULL;
    G->scal_ev_used[slot] = true;
    return CK(c, cudaEventRecord(G->scal_ev[slot], c->st)) ? G->d_scal + slot : NULL;
}

static bool group_op_ok(be_ctx *c, int32_t m, int64_t count)
{
    if (!c->grp) {
        c->err = BZ_EBACKEND;
        snprintf(c->msg, sizeof c->msg, "a group op on a CUDA handle that was not opened as a group");
        return false;
    }
    if (m < 1 || m > c->grp->K || count != c->n) {
        c->err = BZ_EBACKEND;
        snprintf(c->msg, sizeof c->msg, "a group op for %d chains of %lld values; the group has %d chains of %lld",
                 (int)m, (long long)count, (int)c->grp->K, (long long)c->n);
        return false;
    }
    return true;
}

void cu_add_noise_group(be_ctx *c, int32_t m, be_ctx *const *mem, float *const *x, float a, const float *const *s,
                        const float *s_const, int64_t count)
{
    if (!cu_enter(c) || !group_op_ok(c, m, count)) {
        if (c->grp) share_error(c, c->grp);
        return;
    }
    cu_group *G = c->grp;
    const void *const *lists[2] = {(const void *const *)x, (const void *const *)s};
    void **d = pset_find(c, G, m, s ? 2 : 1, lists);
    int slot;
    cu_scalars *h = d ? scal_take(c, G, &slot) : NULL;
    if (h) {
        for (int32_t k = 0; k < m; k++) {
            h->key[k] = mem[k]->noise_key;
            h->ctr[k] = mem[k]->noise_ctr++; /* each chain's own counter moves as its add_noise would */
            h->s_const[k] = s_const ? s_const[k] : 0.0f;
        }
        const cu_scalars *ds = scal_send(c, G, slot);
        if (ds) {
            k_noise_group(c->st, (float *const *)d, a, s ? (const float *const *)(d + m) : NULL, ds->s_const, ds->key,
                          ds->ctr, m, count);
            CKL(c, "k_noise_group");
        }
    }
    if (c->err) share_error(c, G);
}

void cu_axpy_group(be_ctx *c, int32_t m, float *const *y, float a, const float *const *x, const float *const *v,
                   int64_t count)
{
    if (!cu_enter(c) || !group_op_ok(c, m, count)) {
        if (c->grp) share_error(c, c->grp);
        return;
    }
    cu_group *G = c->grp;
    const void *const *lists[3] = {(const void *const *)y, (const void *const *)x, (const void *const *)v};
    void **d = pset_find(c, G, m, v ? 3 : 2, lists);
    if (d) {
        k_axpy_group(c->st, (float *const *)d, a, (const float *const *)(d + m),
                     v ? (const float *const *)(d + 2 * m) : NULL, m, count);
        CKL(c, "k_axpy_group");
    }
    if (c->err) share_error(c, G);
}

/* As cu_sq_max_lagged, for the group: one reduction launch pair for all chains, one copy of the m
 * maxima to pinned memory per call, and the values of CU_LAG calls earlier on the same lists. */
int cu_sq_max_lagged_group(be_ctx *c, int32_t m, be_ctx *const *mem, const float *const *x, const float *const *v,
                           int64_t count, double *max)
{
    (void)mem;
    for (int32_t k = 0; k < m; k++) max[k] = 0.0;
    if (!cu_enter(c) || !group_op_ok(c, m, count)) {
        for (int32_t k = 0; k < m; k++) max[k] = NAN;
        if (c->grp) share_error(c, c->grp);
        return 0;
    }
    cu_group *G = c->grp;
    const void *key[2 * CU_GROUP_MAX];
    memcpy(key, x, sizeof(void *) * (size_t)m);
    for (int32_t k = 0; k < m; k++) key[m + k] = v ? (const void *)v[k] : NULL;
    if (m != G->lagg_m || count != G->lagg_count || memcmp(key, G->lagg_key, sizeof(void *) * 2 * (size_t)m)) {
        memcpy(G->lagg_key, key, sizeof(void *) * 2 * (size_t)m);
        G->lagg_m = m, G->lagg_count = count, G->lagg_calls = 0;
    }
    const void *const *lists[2] = {(const void *const *)x, (const void *const *)v};
    void **d = pset_find(c, G, m, v ? 2 : 1, lists);
    const int slot = (int)(G->lagg_calls % CU_LAG_SLOTS);
    double *dl = G->d_lagg + (size_t)slot * 2 * G->K, *hl = G->h_lagg + (size_t)slot * 2 * G->K;
    if (d) {
        k_reduce_group(c->st, (const float *const *)d, v ? (const float *const *)(d + m) : NULL, m, count, G->partial_g,
                       dl);
        CKL(c, "k_reduce_group");
    }
    CK(c, cudaMemcpyAsync(hl, dl, sizeof(double) * 2 * (size_t)m, cudaMemcpyDeviceToHost, c->st));
    CK(c, cudaEventRecord(G->lagg_ev[slot], c->st));
    G->lagg_calls++;
    if (G->lagg_calls > CU_LAG) {
        const int old = (int)((G->lagg_calls - 1 - CU_LAG) % CU_LAG_SLOTS);
        if (CK(c, cudaEventSynchronize(G->lagg_ev[old])))
            for (int32_t k = 0; k < m; k++) max[k] = G->h_lagg[(size_t)old * 2 * G->K + 2 * k + 1];
    }
    if (c->err) {
        for (int32_t k = 0; k < m; k++) max[k] = NAN;
        share_error(c, G);
        return 0;
    }
    return CU_LAG;
}

/* ---- opening and closing a group ---- */

static void dev_free(void *p)
{
    if (p) cudaFree(p);
}

static void host_free(void *p)
{
    if (p) cudaFreeHost(p);
}

static void events_destroy(cudaEvent_t *ev, int count)
{
    for (int i = 0; i < count; i++)
        if (ev[i]) cudaEventDestroy(ev[i]);
}

void cu_group_free(be_ctx *owner)
{
    cu_group *G = owner->grp;
    if (!G) return;
    for (int l = 0; l <= NN_MAX_LAYERS; l++) dev_free(G->act[l]), dev_free(G->delta[l]);
    void *dev[] = {G->row_loss, G->row_wrong, G->d_idx, G->d_ptr, G->d_pset, G->d_scal, G->partial_g, G->d_lagg};
    for (size_t k = 0; k < sizeof dev / sizeof dev[0]; k++) dev_free(dev[k]);
    void *host[] = {G->h_idx, G->h_ptr, G->h_pset, G->h_scal, G->h_lagg};
    for (size_t k = 0; k < sizeof host / sizeof host[0]; k++) host_free(host[k]);
    events_destroy(G->idx_ev, CU_IDX_RING);
    events_destroy(G->scal_ev, CU_IDX_RING);
    events_destroy(G->lagg_ev, CU_LAG_SLOTS);
    free(G);
    owner->grp = NULL;
}

void cu_group_forget(be_ctx *owner, be_ctx *member)
{
    cu_group *G = owner->grp;
    for (int32_t k = 0; G && k < G->K; k++)
        if (G->member[k] == member) G->member[k] = NULL;
}

void cu_group_forget_buffer(be_ctx *owner, const float *buf)
{
    cu_group *G = owner->grp;
    for (int32_t k = 0; k < 2 * G->lagg_m; k++)
        if (G->lagg_key[k] == (const void *)buf) {
            G->lagg_m = 0, G->lagg_calls = 0; /* the next lagged call starts afresh */
            return;
        }
}

/* Device bytes of the batched pass's workspace for K chains. */
static int64_t group_workspace_bytes(const nn_arch *a, int32_t K, int32_t max_batch)
{
    int64_t sum_n = 0;
    for (int32_t l = 0; l <= a->L; l++) sum_n += a->N[l];
    const int64_t rows = (int64_t)K * max_batch;
    return rows * (4 * 2 * sum_n + 8 + 4 + 4) + (int64_t)sizeof(void *) * GP_KINDS * (NN_MAX_LAYERS + 1) * K;
}

/* The elementwise group ops' buffers: pointer sets, noise staging, reduction and lag slots. */
static bool group_ops_alloc(be_ctx *c, cu_group *G)
{
    const size_t K = (size_t)G->K, nset = (size_t)CU_PSET_SLOTS * 3 * K;
    bool ok = CK(c, cudaMalloc((void **)&G->d_pset, sizeof(void *) * nset)) &&
              CK(c, cudaMallocHost((void **)&G->h_pset, sizeof(void *) * nset)) &&
              CK(c, cudaMalloc((void **)&G->d_scal, sizeof(cu_scalars) * CU_IDX_RING)) &&
              CK(c, cudaMallocHost((void **)&G->h_scal, sizeof(cu_scalars) * CU_IDX_RING)) &&
              CK(c, cudaMalloc((void **)&G->partial_g, sizeof(double) * 2 * CU_RED_BLOCKS * K)) &&
              CK(c, cudaMalloc((void **)&G->d_lagg, sizeof(double) * 2 * CU_LAG_SLOTS * K)) &&
              CK(c, cudaMallocHost((void **)&G->h_lagg, sizeof(double) * 2 * CU_LAG_SLOTS * K));
    for (int i = 0; ok && i < CU_IDX_RING; i++)
        ok = CK(c, cudaEventCreateWithFlags(&G->scal_ev[i], cudaEventDisableTiming)) &&
             CK(c, cudaEventCreateWithFlags(&G->idx_ev[i], cudaEventDisableTiming));
    for (int i = 0; ok && i < CU_LAG_SLOTS; i++) ok = CK(c, cudaEventCreateWithFlags(&G->lagg_ev[i], cudaEventDisableTiming));
    return ok;
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
           CK(c, cudaMallocHost((void **)&G->h_idx, sizeof(int32_t) * rows * CU_IDX_RING)) &&
           CK(c, cudaMallocHost((void **)&G->h_ptr, sizeof(void *) * nptr)) &&
           group_ops_alloc(c, G);
}

/* A sibling of owner: a copy sharing the owner's stream, cuBLAS, data and workspace, with its
 * own per-handle resources. */
static be_ctx *sibling_new(be_ctx *owner, char *why, size_t len)
{
    snprintf(why, len, "out of memory");
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
        if (s->err) snprintf(why, len, "%s", s->msg);
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
        char why[400];
        be_ctx *s = sibling_new(c, why, sizeof why);
        if (!s) {
            rc = bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: cannot open chain %d of a group: %s", (int)k, why);
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
