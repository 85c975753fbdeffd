/* test_noise_diag.c: the mini-batch noise diagnostics (ALGORITHM.md §5, paper §III.1) on
 * synthetic gradients whose noise law is known.
 *   Gaussian, independent draws: the KS p-values are uniform, so noise_ks_frac is a binomial
 *   fraction around 0.05; noise_corr equals E|r| of independent samples of size D,
 *   2 / ((D-2) B(1/2, (D-2)/2)); noise_acf1 is near zero.
 *   Controls that must be flagged: heavy-tailed (Laplace) noise of the same variance raises
 *   noise_ks_frac far above 0.05; noise correlated between consecutive draws (AR(1), rho 0.6)
 *   gives noise_acf1 near 0.6. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "noise_diag.h"
#include "sampler.h"
#include "synth.h"

enum { N = 4096, D = 64, P = 10000, B = 16 };

typedef enum { NOISE_GAUSS, NOISE_LAPLACE, NOISE_AR1 } noise_law;

typedef struct target {
    noise_law law;
    bz_rng rng;
    float last[N]; /* AR(1) state */
} target;

/* Unit-variance noise of the chosen law. */
static double draw(target *t, int64_t i)
{
    switch (t->law) {
    case NOISE_LAPLACE: {
        double u = rng_uniform(&t->rng) - 0.5;
        return -copysign(1.0, u) * log(1 - 2 * fabs(u)) / sqrt(2.0);
    }
    case NOISE_AR1: {
        double x = 0.6 * t->last[i] + sqrt(1 - 0.36) * rng_normal(&t->rng);
        t->last[i] = (float)x;
        return x;
    }
    default: return rng_normal(&t->rng);
    }
}

/* U = |w|^2/2; per-component mini-batch noise of variance 1. */
static void t_grad_batch(void *ctx, const float *w, const int32_t *idx, int32_t b, float *g)
{
    (void)idx, (void)b;
    target *t = ctx;
    for (int64_t i = 0; i < N; i++) g[i] = (float)(w[i] + draw(t, i));
}

static double t_grad_full(void *ctx, const float *w, float *g)
{
    (void)ctx;
    for (int64_t i = 0; i < N; i++) g[i] = w[i];
    return 0;
}

static void t_observe(void *ctx, const float *w, bool with_test, pot_obs *o)
{
    (void)ctx, (void)w, (void)with_test;
    *o = (pot_obs){0, 0, 0, 0, NAN, NAN, NAN, NAN};
}

/* Moments consistent with a batch-mean variance of 1 (see synth.c). */
static void t_moments(void *ctx, const float *w, const int32_t *idx, int64_t rows, double *gs, double *qs)
{
    (void)ctx, (void)idx;
    double v = 1.0 * B * (P - 1.0) / (P - B);
    for (int64_t i = 0; i < N; i++) {
        gs[i] += rows * (double)w[i];
        qs[i] += rows * ((double)w[i] * w[i] + v);
    }
}

static void measure(noise_law law, double out[3])
{
    target *t = calloc(1, sizeof *t);
    t->law = law;
    rng_seed(&t->rng, 17 + law, 0);
    be b;
    be_layout L = {.n = N, .n_groups = 1, .off = {0, N}, .fast_end = N, .P = P};
    be_target bt = {t, t_grad_batch, t_grad_full, t_observe, t_moments};
    cr_assert_eq(be_cpu_custom(&b, &bt, &L, NULL), 0);
    bz_spec s;
    synth_spec(&s, SM_SGLD, 1.0, 1, B);
    smp_chain c;
    bz_err e;
    cr_assert_eq(smp_chain_create(&c, &s, &b, 0, &e), 0);
    noise_diag nd;
    cr_assert_eq(noise_diag_init(&nd, &c, D, &e), 0);
    cr_assert_eq(noise_diag_measure(&nd, &c, &e), 0);
    cr_assert_eq(nd.n_comp, N < NOISE_MAX_COMPONENTS ? N : NOISE_MAX_COMPONENTS);
    for (int k = 0; k < 3; k++) out[k] = c.noise_stats[k];
    noise_diag_free(&nd);
    smp_chain_destroy(&c);
    be_destroy(&b);
    free(t);
}

/* E|r| of the Pearson correlation of two independent normal samples of size d. */
static double mean_abs_corr(int d)
{
    double a = 0.5, bb = (d - 2) / 2.0;
    double beta = exp(lgamma(a) + lgamma(bb) - lgamma(a + bb));
    return 2.0 / ((d - 2) * beta);
}

Test(noise_diag, gaussian_noise_passes)
{
    double m[3];
    measure(NOISE_GAUSS, m);
    const double se_ks = sqrt(0.05 * 0.95 / N);
    cr_log_info("gaussian: ks_frac %.4f (0.05 +- %.4f), corr %.4f (expect %.4f), acf1 %.4f", m[0], se_ks, m[1],
                mean_abs_corr(D), m[2]);
    cr_assert(fabs(m[0] - 0.05) < 5 * se_ks, "noise_ks_frac %.4f, expected 0.05 +- %.4f", m[0], se_ks);
    /* noise_corr: mean over 256*255/2 pairs; the pairs share columns, so use the per-pair SD
     * (about 1/sqrt(D) * 0.6) over the number of columns as a conservative standard error. */
    const double se_corr = 0.6 / sqrt(D) / sqrt(NOISE_CORR_COMPONENTS / 2.0);
    cr_assert(fabs(m[1] - mean_abs_corr(D)) < 5 * se_corr, "noise_corr %.4f, white noise gives %.4f", m[1],
              mean_abs_corr(D));
    /* noise_acf1: each component's lag-1 estimate has SD about 1/sqrt(D) and a bias of order
     * -1/D; the mean over 4096 components must be within 0.03 of zero. */
    cr_assert(fabs(m[2]) < 0.03, "noise_acf1 %.4f should vanish for independent draws", m[2]);
}

Test(noise_diag, heavy_tails_are_flagged)
{
    double m[3];
    measure(NOISE_LAPLACE, m);
    cr_log_info("laplace: ks_frac %.4f", m[0]);
    cr_assert(m[0] > 0.15, "Laplace noise should fail many KS tests, noise_ks_frac %.4f", m[0]);
}

Test(noise_diag, correlated_draws_are_flagged)
{
    double m[3];
    measure(NOISE_AR1, m);
    cr_log_info("ar1: acf1 %.4f", m[2]);
    cr_assert(fabs(m[2] - 0.6) < 0.1, "AR(1) noise with rho 0.6 gives noise_acf1 %.4f", m[2]);
}

/* KS p-value sanity: a sample far from N(0,1) gets p ~ 0, the sample quantiles p ~ 1. */
Test(noise_diag, ks_pvalue_extremes)
{
    double shifted[64], quant[64];
    for (int i = 0; i < 64; i++) {
        shifted[i] = 3.0 + i * 0.01;
        double u = (i + 0.5) / 64;
        /* inverse normal CDF by bisection on erfc */
        double lo = -10, hi = 10;
        for (int k = 0; k < 100; k++) {
            double mid = 0.5 * (lo + hi);
            if (0.5 * erfc(-mid / sqrt(2.0)) < u) lo = mid;
            else hi = mid;
        }
        quant[i] = 0.5 * (lo + hi);
    }
    cr_assert(noise_ks_pvalue(shifted, 64) < 1e-10);
    cr_assert(noise_ks_pvalue(quant, 64) > 0.99);
}
