/* test_pl_lowrank.c: pL with correlated (low-rank) mini-batch noise, where ALGORITHM.md §5's
 * diagonal compensation is wrong and the low-rank compensation (sampler.noise_rank,
 * core/pl_lowrank.h) is right.
 *
 * Target: n = 16 harmonic wells (k = 1, masses 100, T = 1, h = 1, gamma = 0.05) whose per-example
 * gradients are g_mu = k w + a_mu v, v = (1, ..., 1): every example pushes all components alike,
 * so the mini-batch noise is rank one, each component at ratio r0 = 0.04. In mass-weighted units
 * its covariance is r0 v v^T, eigenvalue n r0 = 0.64 along v / sqrt(n), 0 across. The diagonal
 * compensation subtracts r0 from every direction, so the chain samples
 *     Var(w . v/sqrt(n)) = (T/k) (1 + (n - 1) r0) = 1.60 T/k,   across: (T/k)(1 - r0) = 0.96 T/k,
 * and the low-rank compensation gives T/k in both (times the OBABO shadow factor
 * 1 / (1 - h^2 omega^2 / 4) = 1.0025). Each value is asserted within 5 standard errors (batch
 * means over time blocks, from the data), and for the direction along v the other method's value
 * must be excluded. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "sampler.h"
#include "smp_pl.h"
#include "synth.h"

#define NCOMP 16
#define POP 256
#define BATCH 16
#define MASS 100.0
#define TEMP 1.0
#define GAMMA 0.05
#define R0 0.04

typedef struct rank1 {
    double a[POP]; /* per-example noise amplitudes: mean 0 */
} rank1;

static void r1_grad_batch(void *ctx, const float *w, const int32_t *idx, int32_t B, float *g)
{
    const rank1 *t = ctx;
    double mean = 0;
    for (int32_t b = 0; b < B; b++) mean += t->a[idx[b]] / B;
    for (int i = 0; i < NCOMP; i++) g[i] = (float)(w[i] + mean);
}

static double r1_U(const float *w)
{
    double U = 0;
    for (int i = 0; i < NCOMP; i++) U += 0.5 * (double)w[i] * w[i];
    return U;
}

static double r1_grad_full(void *ctx, const float *w, float *g)
{
    (void)ctx;
    for (int i = 0; i < NCOMP; i++) g[i] = w[i];
    return r1_U(w);
}

static void r1_observe(void *ctx, const float *w, bool with_test, pot_obs *o)
{
    (void)ctx, (void)with_test;
    double w2 = 0;
    for (int i = 0; i < NCOMP; i++) w2 += (double)w[i] * w[i];
    *o = (pot_obs){r1_U(w), r1_U(w), w2 / NCOMP, 0, NAN, NAN, NAN, NAN};
}

static void r1_moments(void *ctx, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum)
{
    const rank1 *t = ctx;
    for (int64_t r = 0; r < rows; r++) {
        double a = t->a[idx ? idx[r] : r];
        for (int i = 0; i < NCOMP; i++) {
            double g = w[i] + a;
            g_sum[i] += g;
            q_sum[i] += g * g;
        }
    }
}

/* The population: Gaussian draws, centred, scaled so that the batch mean has variance s2. */
static void make_population(rank1 *t, double s2)
{
    bz_rng r;
    rng_seed(&r, 17, 0);
    double mean = 0, var = 0;
    for (int mu = 0; mu < POP; mu++) mean += (t->a[mu] = rng_normal(&r)) / POP;
    for (int mu = 0; mu < POP; mu++) var += (t->a[mu] - mean) * (t->a[mu] - mean) / POP;
    const double want = s2 * BATCH * (POP - 1.0) / (POP - BATCH); /* population variance */
    for (int mu = 0; mu < POP; mu++) t->a[mu] = (t->a[mu] - mean) * sqrt(want / var);
}

typedef struct result {
    double along, along_se, across, across_se;
} result;

static void mean_se(const double *x, int m, double *mean, double *se)
{
    double s = 0, ss = 0;
    for (int i = 0; i < m; i++) s += x[i], ss += x[i] * x[i];
    *mean = s / m;
    *se = sqrt((ss / m - *mean * *mean) / (m - 1));
}

static void run(int32_t noise_rank, result *out)
{
    const double c2 = exp(-GAMMA), A = 0.25 * (1 + c2) / ((1 - c2) * TEMP);
    rank1 t;
    make_population(&t, R0 * MASS / A); /* m(r0) = MASS */
    be_layout L = {.n = NCOMP, .n_groups = 1, .P = POP, .lambda = 0.0, .has_test = false};
    L.off[0] = 0;
    L.off[1] = NCOMP;
    L.fast_end = NCOMP;
    be_target tg = {&t, r1_grad_batch, r1_grad_full, r1_observe, r1_moments};
    be b;
    cr_assert_eq(be_cpu_custom(&b, &tg, &L, NULL), 0);
    bz_spec spec;
    synth_spec(&spec, SM_PL, TEMP, 0, BATCH);
    spec.sampler.gamma = GAMMA;
    spec.sampler.h = 1.0;
    spec.sampler.r0 = R0;
    spec.sampler.r_max = 2 * R0;
    spec.sampler.p_reinit = 0.0;
    spec.sampler.kappa = 2.0;
    spec.sampler.max_disp = 0.0;
    spec.sampler.update_every = 100000;
    spec.sampler.noise_rank = noise_rank;
    spec.sampler.seed = 5;
    smp_chain c;
    bz_err e;
    cr_assert_eq(smp_chain_create(&c, &spec, &b, 0, &e), 0, "%s", e.msg);
    float w[NCOMP];
    bz_rng r;
    rng_seed(&r, 3, 0);
    for (int i = 0; i < NCOMP; i++) w[i] = (float)rng_normal(&r);
    b.ops->upload(b.ctx, c.w, w, NCOMP);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    pl_view v;
    cr_assert_eq(pl_inspect(&c, &v), 0);
    for (int i = 0; i < NCOMP; i++)
        cr_assert(fabs(v.m[i] - MASS) < 1e-6 * MASS, "mass %d is %g, the test needs %g", i, v.m[i], MASS);
    enum { BLOCKS = 40, PER_BLOCK = 10000, EVERY = 5, BURN = 5000 };
    for (int s = 0; s < BURN; s++) cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
    double along[BLOCKS] = {0}, across[BLOCKS] = {0};
    for (int blk = 0; blk < BLOCKS; blk++) {
        for (int k = 0; k < PER_BLOCK; k++) {
            for (int s = 0; s < EVERY; s++) cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
            b.ops->download(b.ctx, w, c.w, NCOMP);
            double sum = 0, w2 = 0;
            for (int i = 0; i < NCOMP; i++) sum += w[i], w2 += (double)w[i] * w[i];
            const double x2 = sum * sum / NCOMP; /* (w . v/sqrt(n))^2 */
            along[blk] += x2 / PER_BLOCK;
            across[blk] += (w2 - x2) / (NCOMP - 1) / PER_BLOCK;
        }
    }
    mean_se(along, BLOCKS, &out->along, &out->along_se);
    mean_se(across, BLOCKS, &out->across, &out->across_se);
    smp_chain_destroy(&c);
    be_destroy(&b);
}

static double shadow(void) { return 1.0 / (1.0 - 1.0 / MASS / 4.0); }

Test(pl_lowrank, diagonal_compensation_is_hot_along_correlated_noise)
{
    result r;
    run(0, &r);
    const double along = shadow() * (1 + (NCOMP - 1) * R0), across = shadow() * (1 - R0);
    cr_log_info("diagonal: along v %.4f +- %.4f (expect %.4f), across %.4f +- %.4f (expect %.4f)", r.along, r.along_se,
                along, r.across, r.across_se, across);
    cr_assert(fabs(r.along - along) < 5 * r.along_se, "along v: %.4f, expected %.4f (5 SE %.4f)", r.along, along,
              5 * r.along_se);
    cr_assert(fabs(r.across - across) < 5 * r.across_se, "across v: %.4f, expected %.4f (5 SE %.4f)", r.across, across,
              5 * r.across_se);
    cr_assert(fabs(r.along - shadow()) > 5 * r.along_se, "the test cannot tell the correct value from this one");
}

Test(pl_lowrank, lowrank_compensation_samples_T_in_every_direction)
{
    result r;
    run(4, &r);
    const double expect = shadow();
    cr_log_info("low-rank: along v %.4f +- %.4f, across %.4f +- %.4f (expect %.4f both)", r.along, r.along_se, r.across,
                r.across_se, expect);
    cr_assert(fabs(r.along - expect) < 5 * r.along_se, "along v: %.4f, expected %.4f (5 SE %.4f)", r.along, expect,
              5 * r.along_se);
    cr_assert(fabs(r.across - expect) < 5 * r.across_se, "across v: %.4f, expected %.4f (5 SE %.4f)", r.across, expect,
              5 * r.across_se);
    const double diag_along = shadow() * (1 + (NCOMP - 1) * R0);
    cr_assert(fabs(r.along - diag_along) > 5 * r.along_se, "the diagonal compensation's value is not excluded");
}
