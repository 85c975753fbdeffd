/* backend.h: the compute backend interface (DESIGN.md "The backend interface"), in the style of
 * ggml's backends: an opaque context behind a table of function pointers.
 *
 * A backend owns float32 buffers (host memory for the CPU backend, device memory for CUDA), the
 * potential (a network on a resident data set, or a synthetic target for tests), its own
 * Gaussian noise generator, and the elementwise sampler updates. Samplers touch parameter-sized
 * buffers only through these calls, so one sampler file serves every backend. Mini-batch indices
 * are always drawn on the host and passed in, so all backends see the same mini-batches.
 *
 * Buffers are flat vectors of length n (the parameter count) unless a call says otherwise. */
#ifndef BZ_BACKEND_H
#define BZ_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bz_error.h"
#include "potential.h"
#include "rng.h"

typedef struct be_ctx be_ctx;

/* Layer structure the mass floors and grad_var_12 need: group g spans [off[g], off[g+1]). */
typedef struct be_layout {
    int64_t n;                        /* parameters */
    int32_t n_groups;                 /* layers (weights and bias of one layer form a group) */
    int64_t off[NN_MAX_LAYERS + 1];
    int64_t fast_end;                 /* components of layers 1 and 2: [0, fast_end) */
    int32_t P;                        /* training examples (mini-batches are drawn from [0, P)) */
    double lambda;                    /* regulariser strength (U has (lambda/2)|w|^2/n) */
    bool has_test;
} be_layout;

typedef struct be_ops {
    const char *name;
    void (*destroy)(be_ctx *c);

    /* buffers (float32) */
    float *(*alloc)(be_ctx *c, int64_t count);          /* zero-filled; NULL on failure */
    void (*release)(be_ctx *c, float *buf);
    void (*upload)(be_ctx *c, float *dst, const float *src_host, int64_t count);
    void (*download)(be_ctx *c, float *dst_host, const float *src, int64_t count);
    void (*copy)(be_ctx *c, float *dst, const float *src, int64_t count);

    /* the potential U(w) = L(w) + (lambda/2)|w|^2/n */
    /* g = grad U_B for the B host indices idx (regulariser included). */
    void (*grad_batch)(be_ctx *c, const float *w, const int32_t *idx, int32_t B, float *g);
    /* g = grad U on the full training set; returns U. */
    double (*grad_full)(be_ctx *c, const float *w, float *g);
    /* static observables U, loss, w2, train_err (and test_* when with_test). */
    void (*observe)(be_ctx *c, const float *w, bool with_test, pot_obs *o);
    /* host doubles g_sum, q_sum (length n) += sum over the rows examples idx (NULL: 0..rows-1) of
     * the per-example data gradient and its square (no regulariser). */
    void (*moments)(be_ctx *c, const float *w, const int32_t *idx, int64_t rows, double *g_sum,
                    double *q_sum);

    /* noise: the backend's own generator, part of every checkpoint */
    void (*noise_seed)(be_ctx *c, uint64_t seed, uint64_t stream);
    size_t (*noise_state_size)(be_ctx *c);
    void (*noise_save)(be_ctx *c, void *buf);
    void (*noise_load)(be_ctx *c, const void *buf);

    /* elementwise updates */
    /* x = a x + s * xi, xi ~ N(0,1) fresh per component; s is a buffer, or NULL for s_const. */
    void (*add_noise)(be_ctx *c, float *x, float a, const float *s, float s_const, int64_t count);
    /* y += a * x (* v when v is non-NULL, elementwise) */
    void (*axpy)(be_ctx *c, float *y, float a, const float *x, const float *v, int64_t count);
    /* sum_i x_i^2 v_i and max_i x_i^2 v_i (v NULL: 1), in double */
    void (*sq_stats)(be_ctx *c, const float *x, const float *v, int64_t count, double *sum, double *max);
    /* |x - y|^2 in double */
    double (*dist2)(be_ctx *c, const float *x, const float *y, int64_t count);
    /* Adam: m1 = b1 m1 + (1-b1) g; m2 = b2 m2 + (1-b2) g^2; w -= lr m1_hat / (sqrt(m2_hat) + eps) */
    void (*adam)(be_ctx *c, float *w, const float *g, float *m1, float *m2, float lr, float b1, float b2,
                 float eps, int64_t t, int64_t count);

    /* non-zero when an earlier asynchronous call failed (device backends); message in e */
    int (*sync)(be_ctx *c, bz_err *e);

    /* Optional (NULL: use sq_stats, as the CPU does). max_i x_i^2 v_i, queued on the device so a
     * step needs no host round trip. Returns the lag L (fixed by the backend): *max receives the
     * value queued L calls earlier on the same (x, v, count), 0 while there is none yet. The pL
     * runaway guard reads z_max^2 this way on a GPU (ALGORITHM.md §5: "may be read back
     * asynchronously a few steps late"). After a backend error: *max = NaN and L = 0. */
    int (*sq_max_lagged)(be_ctx *c, const float *x, const float *v, int64_t count, double *max);

    /* Optional (NULL: one grad_batch per chain on its own handle). The mini-batch gradients of K
     * chains in one batched pass, called on the first handle of a handle group (be_cuda_network_group;
     * any CPU handles form one): g[k] = grad U_B(w[k]) over the host index list idx[k] (B rows),
     * regulariser included, for buffers w[k], g[k] of handles of that group. Same result as K
     * grad_batch calls up to float32 summation order (on the CPU: exactly). The multichain's
     * lockstep mode (multichain.h) steps K chains around one such call per step. */
    void (*grad_batch_group)(be_ctx *c, int32_t K, const float *const *w, const int32_t *const *idx, int32_t B,
                             float *const *g);

    /* Optional (NULL: the caller loops over the chains' own handles; add_noise_group and axpy_group
     * come together, sq_max_lagged_group only where sq_max_lagged exists). The elementwise
     * updates of m lockstep chains in one call each, on the group's first handle c, for buffers of
     * the group's handles; mem[k] is chain k's own handle (its noise generator, its lag slots).
     * Each equals the single op on mem[k] for chain k, bit for bit: add_noise_group is add_noise
     * (x[k] = a x[k] + s[k] xi, or s_const[k] xi where s is NULL), axpy_group is axpy (v NULL, or
     * v[k] for every chain), sq_max_lagged_group is sq_max_lagged (max[k] for chain k; one lag for
     * all). On CUDA one kernel launch for all chains instead of m. */
    void (*add_noise_group)(be_ctx *c, int32_t m, be_ctx *const *mem, float *const *x, float a,
                            const float *const *s, const float *s_const, int64_t count);
    void (*axpy_group)(be_ctx *c, int32_t m, float *const *y, float a, const float *const *x, const float *const *v,
                       int64_t count);
    int (*sq_max_lagged_group)(be_ctx *c, int32_t m, be_ctx *const *mem, const float *const *x,
                               const float *const *v, int64_t count, double *max);
} be_ops;

typedef struct be {
    const be_ops *ops;
    be_ctx *ctx;
    be_layout layout;
} be;

/* CPU backend on a network potential: arch and data must outlive the backend. */
int be_cpu_network(be *out, const nn_arch *a, const ds_data *d, double lambda, int32_t max_batch, bz_err *e);

/* A user-supplied potential on the CPU backend (tests: harmonic wells, double wells, synthetic
 * gradient noise). The callbacks get the same arguments as the be_ops entries, plus ctx. */
typedef struct be_target {
    void *ctx;
    void (*grad_batch)(void *ctx, const float *w, const int32_t *idx, int32_t B, float *g);
    double (*grad_full)(void *ctx, const float *w, float *g);
    void (*observe)(void *ctx, const float *w, bool with_test, pot_obs *o);
    void (*moments)(void *ctx, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum);
} be_target;
int be_cpu_custom(be *out, const be_target *t, const be_layout *layout, bz_err *e);

void be_destroy(be *b);

#endif
