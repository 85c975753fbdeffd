/* cuda_impl.h: the CUDA backend's private context, error checks and kernel launchers, shared by
 * be_cuda.cu (buffers, elementwise ops, noise, reductions, the ops table), cuda_net.cu (the
 * network on cuBLAS) and cuda_harmonic.cu (a synthetic target for the sampler tests). CUDA C++
 * only; the C interface is be_cuda.h.
 *
 * Conventions: every buffer is device memory unless its name starts with h_ (pinned host) or
 * host_ (pageable host); every matrix is row-major (rows = examples) as in core/nn.c, and the
 * cuBLAS calls (column-major) use the transposed view. All work goes to the context's own
 * non-blocking stream; only calls that hand a value to the host synchronise. */
#ifndef BZ_CUDA_IMPL_H
#define BZ_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend.h"
#include "be_cuda.h"
}

#define CU_IDX_RING 4       /* pinned staging slots for mini-batch index lists */
#define CU_LAG 3            /* sq_max_lagged answers with the value of CU_LAG calls earlier */
#define CU_LAG_SLOTS 4      /* > CU_LAG */
#define CU_GRAPH_SLOTS 4    /* cached mini-batch gradient graphs, keyed by (w, g, B) */
#define CU_GRAPH_AFTER 2    /* capture on the third call with the same key */
#define CU_RED_BLOCKS 256   /* partial sums of a reduction (first pass) */
#define CU_ACC 16           /* device accumulators of one evaluation */
#define CU_CHUNK 4096       /* rows per full-set chunk */
#define CU_BLAS_WS (32u << 20) /* cuBLAS workspace (bytes), fixed so graph capture never allocates */

enum { CU_POT_NET = 0, CU_POT_HARMONIC = 1 };

/* One data split on the device: x (rows, N0), y (rows). */
typedef struct cu_set {
    float *x;
    int32_t *y;
    int64_t rows;
} cu_set;

typedef struct cu_graph_slot {
    const float *w;
    float *g;
    int32_t B;
    int32_t uses;
    uint64_t last_use;
    cudaGraphExec_t exec;  /* NULL until captured */
} cu_graph_slot;

struct be_ctx {
    int device;
    cudaStream_t st;
    cublasHandle_t blas;
    void *blas_ws;
    bool tf32;
    bool graphs_on;

    /* first error (sticky): every later call is a no-op, value calls return NaN, sync reports it */
    int err;
    char msg[400];
    bool capturing, capture_bad; /* errors during graph capture abandon the capture instead */

    int kind;                    /* CU_POT_* */
    int64_t n;

    /* the network potential */
    nn_arch arch;
    double lambda;
    cu_set train, test, val;
    int32_t max_batch;           /* largest mini-batch grad_batch accepts */
    int32_t max_rows;            /* rows per chunk (>= max_batch) */
    float *act[NN_MAX_LAYERS + 1];   /* act[0] (max_rows, N0) gathered inputs; act[l] (max_rows, N_l) */
    float *delta[NN_MAX_LAYERS + 1]; /* delta[l] (max_rows, N_l), l >= 1 */
    float *sq_in, *sq_delta;     /* (max_rows, widest) squares for the moments */
    float *ones;                 /* (max_rows) of 1: column sums as GEMV */
    double *row_loss;            /* (max_rows) per-example loss of a chunk */
    int32_t *row_wrong;          /* (max_rows) 1 where argmax != label */
    float *tmp_g, *tmp_q;        /* (n) one chunk's first and second moments */
    double *g_acc, *q_acc;       /* (n) moment sums over chunks */
    double *host_moments;        /* pageable host (2n) for moments' download */
    int32_t *d_idx;              /* (max_batch) the current mini-batch */
    int32_t *d_idx_big;          /* (idx_big_cap) index lists of moments() */
    int64_t idx_big_cap;
    int32_t *h_idx_ring;         /* pinned (CU_IDX_RING, max_batch) */
    cudaEvent_t idx_ev[CU_IDX_RING];
    bool idx_ev_used[CU_IDX_RING];
    int idx_pos;
    cu_graph_slot graphs[CU_GRAPH_SLOTS];
    uint64_t graph_tick;

    /* reductions and evaluation results */
    double *partial;             /* (2 CU_RED_BLOCKS) first-pass sums and maxima */
    double *acc;                 /* (CU_ACC) device accumulators */
    double *h_acc;               /* pinned (CU_ACC) */
    double *d_lag, *h_lag;       /* (2 CU_LAG_SLOTS) device / pinned results of sq_max_lagged */
    cudaEvent_t lag_ev[CU_LAG_SLOTS];
    int64_t lag_calls;
    const float *lag_x, *lag_v;
    int64_t lag_count;

    /* Gaussian noise: Philox4x32-10 keyed by (seed, stream); call k uses counter k */
    uint64_t noise_key, noise_ctr;

    /* the harmonic target: U = k |w|^2 / 2, mini-batch gradient k w + N(0, s2) */
    float harm_k, harm_sd;
    double harm_s2;
    int32_t harm_P, harm_B;
    uint64_t harm_key, harm_ctr;
    float *host_w;               /* pageable host (n) */

    /* handle groups (cuda_group.cu). A sibling is a copy of its owner that shares the owner's
     * stream, cuBLAS handle, data and network workspace (so a group is used from one thread)
     * and owns its graphs, index staging, reductions, lag slots and noise state. */
    be_ctx *owner;               /* a sibling's owner; NULL for an owner */
    int32_t refs;                /* owner: handles alive (itself while not destroyed, and siblings) */
    bool gone;                   /* owner: destroyed by its user, freed with its last sibling */
    struct cu_group *grp;        /* owner of a group: the batched gradient's workspace; else NULL */
};

/* ---- errors ---- */

/* Record the first failure (file:line, call, the library's words); false when rc is a failure or
 * an earlier error is pending. During graph capture a failure only marks the capture bad. */
bool cu_check(be_ctx *c, cudaError_t rc, const char *call, const char *file, int line);
bool cu_check_blas(be_ctx *c, cublasStatus_t rc, const char *call, const char *file, int line);
#define CK(c, call) cu_check((c), (call), #call, __FILE__, __LINE__)
#define CKB(c, call) cu_check_blas((c), (call), #call, __FILE__, __LINE__)
#define CKL(c, what) cu_check((c), cudaGetLastError(), what, __FILE__, __LINE__)

/* Start of every public entry: false when a sticky error is pending (then do nothing). */
bool cu_enter(be_ctx *c);

/* ---- kernels (cuda_kernels.cu); each launcher enqueues on st and returns at once ---- */

void k_gather(cudaStream_t st, const float *x, const int32_t *idx, int32_t rows, int32_t cols, float *out);
void k_bias_act(cudaStream_t st, float *out, const float *b, int32_t rows, int32_t cols, bool relu);
/* Per row k of logits z (rows, C) (+ b when non-NULL): loss logsumexp - z_y in row_loss[k],
 * argmax != y in row_wrong[k]; delta (may be NULL) = softmax - onehot(y). Label of row k:
 * y[idx[k]] (idx non-NULL) or y[k]. */
void k_softmax_xent(cudaStream_t st, const float *z, const float *b, int32_t rows, int32_t C, const int32_t *y,
                    const int32_t *idx, float *delta, double *row_loss, int32_t *row_wrong);
/* The same for a group's batched gradient: rows of chain k are [k rpc, (k + 1) rpc); bk (device
 * array of the chains' bias pointers; NULL: no bias) gives each chain's bias. */
void k_bias_act_group(cudaStream_t st, float *out, const float *const *bk, int32_t rpc, int32_t rows, int32_t cols,
                      bool relu);
void k_softmax_xent_group(cudaStream_t st, const float *z, const float *const *bk, int32_t rpc, int32_t rows, int32_t C,
                          const int32_t *y, const int32_t *idx, float *delta, double *row_loss, int32_t *row_wrong);
/* Group forms (k < m; device arrays of pointers and per-chain values), per chain bit for bit the
 * single kernels: y[k] += a x[k] (* v[k]); x[k] = a x[k] + (sd[k] or s_const[k]) xi with chain k's
 * Philox (key[k], ctr[k]); sum and max of x[k]^2 v[k] into out[2k], out[2k+1] (partial: 2
 * CU_RED_BLOCKS doubles per chain). */
void k_axpy_group(cudaStream_t st, float *const *y, float a, const float *const *x, const float *const *v, int32_t m,
                  int64_t count);
void k_noise_group(cudaStream_t st, float *const *x, float a, const float *const *sd, const float *s_const,
                   const uint64_t *key, const uint64_t *ctr, int32_t m, int64_t count);
void k_reduce_group(cudaStream_t st, const float *const *x, const float *const *v, int32_t m, int64_t count,
                    double *partial, double *out);
/* acc[0] += sum row_loss, acc[1] += sum row_wrong (one block, fixed order). */
void k_rows_sum(cudaStream_t st, const double *row_loss, const int32_t *row_wrong, int32_t rows, double *acc);
void k_relu_mask(cudaStream_t st, float *delta, const float *act, int64_t count);
void k_square(cudaStream_t st, const float *in, float *out, int64_t count);
void k_add_double(cudaStream_t st, double *acc, const float *v, int64_t count);
/* y += a x (* v) with the CPU's rounding (no fused multiply-add). */
void k_axpy(cudaStream_t st, float *y, float a, const float *x, const float *v, int64_t count);
/* out = a in (no noise) */
void k_scale(cudaStream_t st, float *out, float a, const float *in, int64_t count);
/* out = a in + s xi, xi ~ N(0,1) from Philox (key, counter ctr); s from sd or s_const. */
void k_noise(cudaStream_t st, float *out, float a, const float *in, const float *sd, float s_const, int64_t count,
             uint64_t key, uint64_t ctr);
/* out[0] = sum_i q_i, out[1] = max_i q_i (NaN propagates) with q_i = x_i^2 v_i (y NULL; v NULL:
 * 1) or (x_i - y_i)^2; partial holds 2 CU_RED_BLOCKS doubles. Two launches, fixed order. */
void k_reduce(cudaStream_t st, const float *x, const float *y, const float *v, int64_t count, double *partial,
              double *out);
void k_adam(cudaStream_t st, float *w, const float *g, float *m1, float *m2, float lr, float b1, float b2, float eps,
            double c1, double c2, int64_t count);
void k_fill(cudaStream_t st, float *x, float v, int64_t count);

/* ---- the network (cuda_net.cu) ---- */

void net_grad_batch_body(be_ctx *c, const float *w, int32_t B, float *g); /* uses d_idx */
double net_grad_full(be_ctx *c, const float *w, float *g);
void net_observe(be_ctx *c, const float *w, bool with_test, pot_obs *o);
void net_moments(be_ctx *c, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum);

/* ---- the harmonic target (cuda_harmonic.cu) ---- */

void harm_grad_batch(be_ctx *c, const float *w, float *g);
double harm_grad_full(be_ctx *c, const float *w, float *g);
void harm_observe(be_ctx *c, const float *w, pot_obs *o);
void harm_moments(be_ctx *c, const float *w, int64_t rows, double *g_sum, double *q_sum);

/* ---- handle groups (cuda_group.cu) ---- */

/* ops->grad_batch_group on a group's owner (be_cuda_network_group). */
void cu_grad_batch_group(be_ctx *c, int32_t K, const float *const *w, const int32_t *const *idx, int32_t B,
                         float *const *g);
/* ops->add_noise_group, axpy_group, sq_max_lagged_group on a group's owner. */
void cu_add_noise_group(be_ctx *c, int32_t m, be_ctx *const *mem, float *const *x, float a, const float *const *s,
                        const float *s_const, int64_t count);
void cu_axpy_group(be_ctx *c, int32_t m, float *const *y, float a, const float *const *x, const float *const *v,
                   int64_t count);
int cu_sq_max_lagged_group(be_ctx *c, int32_t m, be_ctx *const *mem, const float *const *x, const float *const *v,
                           int64_t count, double *max);
void cu_group_free(be_ctx *owner);
/* A buffer of the group is being freed: lagged values keyed by its address start afresh. (The
 * pointer arrays cached for the batched pass and the group ops need no reset: they are used
 * only for lists of live buffers with exactly these addresses.) */
void cu_group_forget_buffer(be_ctx *owner, const float *buf);
/* A sibling is going: the group no longer shares errors with it. */
void cu_group_forget(be_ctx *owner, be_ctx *member);

/* ---- shared helpers (be_cuda.cu) ---- */

/* Per-handle resources (siblings own theirs): allocate, free, forget (after a struct copy). */
bool cu_handle_alloc(be_ctx *c);
void cu_handle_free(be_ctx *c);
void cu_handle_clear(be_ctx *c);

/* |w|^2 into acc[slot] (sum) and acc[slot + 1] (max). */
void cu_w2_into(be_ctx *c, const float *w, int64_t count, int slot);
/* Download acc[0..count) to h_acc and wait; false on error. */
bool cu_fetch_acc(be_ctx *c, int count);
/* Context with stream, cuBLAS and the small buffers every potential needs. */
int cu_ctx_create(be_ctx **out, const be_cuda_opts *o, bz_err *e);
void cu_ctx_destroy(be_ctx *c);
void cu_install(be *out, be_ctx *c);
/* 64-bit mix of (seed, stream) for a Philox key. */
uint64_t cu_mix_key(uint64_t seed, uint64_t stream);

#endif
