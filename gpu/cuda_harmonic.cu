/* cuda_harmonic.cu: a synthetic target on the CUDA backend for the sampler tests (tests/gpu), the
 * device twin of synth_harmonic in tests/unit/synth.c: n independent wells U = sum k w_i^2 / 2
 * whose mini-batch gradient is k w + N(0, s2) (Philox noise under its own key), so the pL noise
 * compensation of ALGORITHM.md §5 can be checked with every update running on the device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_impl.h"

void harm_grad_batch(be_ctx *c, const float *w, float *g)
{
    k_noise(c->st, g, c->harm_k, w, NULL, c->harm_sd, c->n, c->harm_key, c->harm_ctr++);
    CKL(c, "k_noise");
}

/* sum w^2 on the host (NaN on error) */
static double sum_w2(be_ctx *c, const float *w)
{
    CK(c, cudaMemsetAsync(c->acc, 0, 2 * sizeof(double), c->st));
    cu_w2_into(c, w, c->n, 0);
    return cu_fetch_acc(c, 2) ? c->h_acc[0] : NAN;
}

double harm_grad_full(be_ctx *c, const float *w, float *g)
{
    k_scale(c->st, g, c->harm_k, w, c->n);
    CKL(c, "k_scale");
    return 0.5 * (double)c->harm_k * sum_w2(c, w);
}

void harm_observe(be_ctx *c, const float *w, pot_obs *o)
{
    const double s = sum_w2(c, w), U = 0.5 * (double)c->harm_k * s;
    *o = (pot_obs){U, U, s / (double)c->n, 0.0, NAN, NAN, NAN, NAN};
}

/* Per-example gradients with mean k w and variance v = s2 B (P-1)/(P-B), so that the exact
 * estimate (v/B)(P-B)/(P-1) returns s2 (as synth.c). */
void harm_moments(be_ctx *c, const float *w, int64_t rows, double *g_sum, double *q_sum)
{
    CK(c, cudaMemcpyAsync(c->host_w, w, sizeof(float) * (size_t)c->n, cudaMemcpyDeviceToHost, c->st));
    if (!CK(c, cudaStreamSynchronize(c->st))) {
        for (int64_t i = 0; i < c->n; i++) g_sum[i] = q_sum[i] = NAN;
        return;
    }
    const double v = c->harm_s2 * c->harm_B * (c->harm_P - 1.0) / (c->harm_P - c->harm_B);
    for (int64_t i = 0; i < c->n; i++) {
        const double gbar = (double)c->harm_k * c->host_w[i];
        g_sum[i] += (double)rows * gbar;
        q_sum[i] += (double)rows * (gbar * gbar + v);
    }
}

int be_cuda_harmonic(be *out, int64_t n, double k, double s2, int32_t P, int32_t B, int32_t n_groups, uint64_t seed,
                     const be_cuda_opts *o, bz_err *e)
{
    memset(out, 0, sizeof *out);
    be_cuda_opts def;
    if (!o) be_cuda_default_opts(&def), o = &def;
    if (n < 1 || n_groups < 1 || n_groups > NN_MAX_LAYERS || P <= B || B < 1)
        return bz_fail(e, BZ_EINVAL, NULL, "harmonic target: need n >= 1, 1 <= groups <= %d and 1 <= B < P",
                       NN_MAX_LAYERS);
    be_ctx *c;
    int rc = cu_ctx_create(&c, o, e);
    if (rc) return rc;
    c->kind = CU_POT_HARMONIC;
    c->n = n;
    c->harm_k = (float)k;
    c->harm_s2 = s2;
    c->harm_sd = (float)sqrt(s2);
    c->harm_P = P;
    c->harm_B = B;
    c->harm_key = cu_mix_key(seed, 99);
    c->host_w = (float *)malloc(sizeof(float) * (size_t)n);
    if (!c->host_w) {
        cu_ctx_destroy(c);
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the harmonic target");
    }
    cu_install(out, c);
    be_layout *L = &out->layout;
    memset(L, 0, sizeof *L);
    L->n = n;
    L->n_groups = n_groups;
    for (int32_t g = 0; g <= n_groups; g++) L->off[g] = n * g / n_groups;
    L->fast_end = n;
    L->P = P;
    return 0;
}
