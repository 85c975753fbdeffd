/* synth.c: synthetic potentials for the sampler tests (see synth.h). */
#include "synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- harmonic wells with synthetic mini-batch noise ---- */

static void harm_grad_batch(void *ctx, const float *w, const int32_t *idx, int32_t B, float *g)
{
    (void)idx, (void)B;
    synth_harmonic *h = ctx;
    for (int64_t i = 0; i < h->n; i++) g[i] = (float)(h->k[i] * w[i] + sqrt(h->s2[i]) * rng_normal(&h->rng));
}

static double harm_U(const synth_harmonic *h, const float *w)
{
    double U = 0;
    for (int64_t i = 0; i < h->n; i++) U += 0.5 * h->k[i] * (double)w[i] * w[i];
    return U;
}

static double harm_grad_full(void *ctx, const float *w, float *g)
{
    synth_harmonic *h = ctx;
    for (int64_t i = 0; i < h->n; i++) g[i] = (float)(h->k[i] * w[i]);
    return harm_U(h, w);
}

static void harm_observe(void *ctx, const float *w, bool with_test, pot_obs *o)
{
    (void)with_test;
    synth_harmonic *h = ctx;
    double w2 = 0;
    for (int64_t i = 0; i < h->n; i++) w2 += (double)w[i] * w[i];
    *o = (pot_obs){harm_U(h, w), harm_U(h, w), w2 / h->n, 0, NAN, NAN, NAN, NAN};
}

/* Per-example gradients with mean k w and variance v = s2 B (P-1)/(P-B), so that the exact
 * estimate (v/B)(P-B)/(P-1) returns s2. */
static void harm_moments(void *ctx, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum)
{
    (void)idx;
    synth_harmonic *h = ctx;
    for (int64_t i = 0; i < h->n; i++) {
        double gbar = h->k[i] * w[i], v = h->s2[i] * h->B * (h->P - 1.0) / (h->P - h->B);
        g_sum[i] += rows * gbar;
        q_sum[i] += rows * (gbar * gbar + v);
    }
}

int synth_harmonic_backend(be *out, synth_harmonic *h, int64_t n, double k, double s2, int32_t P, int32_t B,
                           int32_t n_groups, uint64_t seed)
{
    h->n = n;
    h->k = malloc(sizeof(double) * (size_t)n);
    h->s2 = malloc(sizeof(double) * (size_t)n);
    h->P = P;
    h->B = B;
    rng_seed(&h->rng, seed, 99);
    for (int64_t i = 0; i < n; i++) h->k[i] = k, h->s2[i] = s2;
    be_layout L = {.n = n, .n_groups = n_groups, .P = P, .lambda = 0.0, .has_test = false};
    for (int32_t g = 0; g <= n_groups; g++) L.off[g] = n * g / n_groups;
    L.fast_end = n;
    be_target t = {h, harm_grad_batch, harm_grad_full, harm_observe, harm_moments};
    return be_cpu_custom(out, &t, &L, NULL);
}

void synth_harmonic_free(synth_harmonic *h)
{
    free(h->k);
    free(h->s2);
}

/* ---- 2-D double well ---- */

double synth_dwell_U(const synth_dwell *d, double x, double y)
{
    return d->a * (x * x - 1) * (x * x - 1) + d->b * y * y + d->c * x * y;
}

static void dwell_grad(const synth_dwell *d, const float *w, float *g)
{
    double x = w[0], y = w[1];
    g[0] = (float)(4 * d->a * x * (x * x - 1) + d->c * y);
    g[1] = (float)(2 * d->b * y + d->c * x);
}

static void dwell_grad_batch(void *ctx, const float *w, const int32_t *idx, int32_t B, float *g)
{
    (void)idx, (void)B;
    synth_dwell *d = ctx;
    dwell_grad(d, w, g);
    if (d->s2 > 0)
        for (int i = 0; i < 2; i++) g[i] += (float)(sqrt(d->s2) * rng_normal(&d->rng));
}

static double dwell_grad_full(void *ctx, const float *w, float *g)
{
    synth_dwell *d = ctx;
    dwell_grad(d, w, g);
    return synth_dwell_U(d, w[0], w[1]);
}

static void dwell_observe(void *ctx, const float *w, bool with_test, pot_obs *o)
{
    (void)with_test;
    synth_dwell *d = ctx;
    double U = synth_dwell_U(d, w[0], w[1]);
    *o = (pot_obs){U, U, ((double)w[0] * w[0] + (double)w[1] * w[1]) / 2, 0, NAN, NAN, NAN, NAN};
}

static void dwell_moments(void *ctx, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum)
{
    (void)idx;
    synth_dwell *d = ctx;
    float g[2];
    dwell_grad(d, w, g);
    for (int i = 0; i < 2; i++) {
        g_sum[i] += rows * (double)g[i];
        q_sum[i] += rows * ((double)g[i] * g[i]);
    }
}

int synth_dwell_backend(be *out, synth_dwell *d, double a, double b, double c, double s2, uint64_t seed)
{
    *d = (synth_dwell){a, b, c, s2, 1000, {{0}, 0, 0, 0}};
    rng_seed(&d->rng, seed, 77);
    be_layout L = {.n = 2, .n_groups = 1, .off = {0, 2}, .fast_end = 2, .P = d->P, .lambda = 0.0};
    be_target t = {d, dwell_grad_batch, dwell_grad_full, dwell_observe, dwell_moments};
    return be_cpu_custom(out, &t, &L, NULL);
}

void synth_spec(bz_spec *s, sampler_method m, double T, int64_t steps, int32_t batch)
{
    spec_defaults(s);
    sampler_spec *sp = &s->sampler;
    sp->method = m;
    sp->n_T = 1;
    sp->T[0] = T;
    sp->steps = steps;
    sp->batch = batch;
    /* per-method defaults of ALGORITHM.md §6b */
    switch (m) {
    case SM_HMC:
    case SM_MBHMC: sp->h = 0.1; break;
    case SM_NAIVE_PL: sp->h = 0.01; break;
    case SM_SGLD: sp->lr = 1e-4; break;
    case SM_ADAM: sp->lr = 1e-3; break;
    default: break;
    }
}
