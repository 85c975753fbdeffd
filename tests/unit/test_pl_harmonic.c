/* test_pl_harmonic.c: pL's noise compensation on harmonic wells with synthetic Gaussian
 * mini-batch noise (ALGORITHM.md §5 numerical check): k = 1, m = 100, T = 1, h = 1, gamma = 0.05.
 *
 * With exact gradients OBABO samples the shadow distribution of velocity Verlet, whose position
 * variance for a harmonic well is Var(w) = (T/k) / (1 - h^2 omega^2 / 4), omega^2 = k/m
 * (0.25% above T/k here), and <p^2/m> = T exactly. pL with compensation must reproduce that
 * position variance at every temperature ratio r; without compensation (naive_pl, same masses)
 * the mini-batch noise adds a fraction r of the thermal noise: Var(w) = (1 + r) x the same.
 * The momenta, read right after the last O step, run slightly cool under compensation: the
 * stationary covariance of this linear scheme (w, p and the gradient noise held between the two
 * half-kicks) gives <p^2/m> = T (1 - r tanh(gamma h / 2)), 0.5% below T at r = 0.2 here; the
 * compensation is designed for the positions, which it gets exactly. Each test asserts its
 * value within 5 standard errors (batch means over time blocks, computed from the data) and that
 * the alternative hypothesis is excluded, so a missing or doubled compensation term fails. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "sampler.h"
#include "smp_pl.h"
#include "synth.h"

#define NCOMP 1000
#define TEMP 1.0
#define KSPRING 1.0
#define MASS 100.0
#define GAMMA 0.05
#define STEP 1.0

typedef struct stats {
    double var, var_se;   /* Var(w) and its standard error */
    double kin, kin_se;   /* <kin_T> and its standard error */
    double mass_mean;
} stats;

/* A: r_i = A s_i^2 / m_i (ALGORITHM.md §5). */
static double ratio_coeff(void)
{
    double c2 = exp(-GAMMA * STEP);
    return STEP * STEP / 4.0 * (1.0 + c2) / ((1.0 - c2) * TEMP);
}

static double shadow_factor(void) { return 1.0 / (1.0 - STEP * STEP * (KSPRING / MASS) / 4.0); }

/* Run a chain; every 4 steps accumulate |w|^2/n and kin_T into blocks of `block` samples. */
static void run_and_measure(sampler_method m, double r, stats *out)
{
    const double s2 = r * MASS / ratio_coeff(); /* gives m(r0 = r) = MASS */
    synth_harmonic h;
    be b;
    cr_assert_eq(synth_harmonic_backend(&b, &h, NCOMP, KSPRING, s2, 10000, 16, 1, 11), 0);
    bz_spec spec;
    synth_spec(&spec, m, TEMP, 0, 16);
    spec.sampler.gamma = GAMMA;
    spec.sampler.h = STEP;
    spec.sampler.r0 = r;
    spec.sampler.r_max = r < 0.5 ? 2 * r : 0.9;
    spec.sampler.p_reinit = 0.0;
    spec.sampler.mass = MASS;
    spec.sampler.kappa = 2.0; /* keep the stability floor (4x below m here) out of the way */
    spec.sampler.seed = 5;
    smp_chain c;
    bz_err e;
    cr_assert_eq(smp_chain_create(&c, &spec, &b, 0, &e), 0);
    /* Start at equilibrium: w ~ N(0, T/k). */
    bz_rng r0;
    rng_seed(&r0, 3, 0);
    float *w = malloc(sizeof(float) * NCOMP);
    for (int i = 0; i < NCOMP; i++) w[i] = (float)(sqrt(TEMP / KSPRING) * rng_normal(&r0));
    b.ops->upload(b.ctx, c.w, w, NCOMP);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    if (m == SM_PL) {
        pl_view v;
        cr_assert_eq(pl_inspect(&c, &v), 0);
        double msum = 0;
        for (int i = 0; i < NCOMP; i++) msum += v.m[i];
        out->mass_mean = msum / NCOMP;
    } else {
        out->mass_mean = MASS;
    }
    enum { BLOCKS = 40, PER_BLOCK = 500, EVERY = 4, BURN = 2000 };
    for (int s = 0; s < BURN; s++) cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
    double bv[BLOCKS] = {0}, bk[BLOCKS] = {0};
    for (int blk = 0; blk < BLOCKS; blk++) {
        for (int k = 0; k < PER_BLOCK; k++) {
            for (int s = 0; s < EVERY; s++) cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
            obs_record rec;
            cr_assert_eq(smp_chain_observe(&c, false, &rec, &e), 0);
            bv[blk] += rec.v[OBS_W2];
            bk[blk] += rec.v[OBS_KIN_T];
        }
        bv[blk] /= PER_BLOCK;
        bk[blk] /= PER_BLOCK;
    }
    double sv = 0, svv = 0, sk = 0, skk = 0;
    for (int blk = 0; blk < BLOCKS; blk++) sv += bv[blk], svv += bv[blk] * bv[blk], sk += bk[blk], skk += bk[blk] * bk[blk];
    out->var = sv / BLOCKS;
    out->var_se = sqrt((svv / BLOCKS - out->var * out->var) / (BLOCKS - 1));
    out->kin = sk / BLOCKS;
    out->kin_se = sqrt((skk / BLOCKS - out->kin * out->kin) / (BLOCKS - 1));
    free(w);
    smp_chain_destroy(&c);
    be_destroy(&b);
    synth_harmonic_free(&h);
}

static void check_compensated(double r)
{
    stats st;
    run_and_measure(SM_PL, r, &st);
    double expect = TEMP / KSPRING * shadow_factor();
    cr_log_info("pL r=%.2f: Var(w)=%.5f +- %.5f (expect %.5f), kin_T=%.5f +- %.5f, mass %.3f", r, st.var, st.var_se,
                expect, st.kin, st.kin_se, st.mass_mean);
    cr_assert(fabs(st.mass_mean - MASS) < 1e-6 * MASS, "masses from r0 should be %g, got %g", MASS, st.mass_mean);
    cr_assert(fabs(st.var - expect) < 5 * st.var_se, "r=%.2f: Var(w) %.5f, expected %.5f (5 SE = %.5f)", r, st.var,
              expect, 5 * st.var_se);
    /* The uncompensated value must be excluded (the test can tell the two apart). */
    cr_assert(fabs(st.var - (1 + r) * expect) > 5 * st.var_se);
    double kin_expect = TEMP * (1 - r * tanh(GAMMA * STEP / 2));
    cr_assert(fabs(st.kin - kin_expect) < 5 * st.kin_se, "r=%.2f: kin_T %.5f, expected %.5f (5 SE = %.5f)", r, st.kin,
              kin_expect, 5 * st.kin_se);
}

static void check_uncompensated(double r)
{
    stats st;
    run_and_measure(SM_NAIVE_PL, r, &st);
    double exact = TEMP / KSPRING * shadow_factor(), expect = (1 + r) * exact;
    cr_log_info("naive r=%.2f: Var(w)=%.5f +- %.5f (expect %.5f)", r, st.var, st.var_se, expect);
    cr_assert(fabs(st.var - expect) < 5 * st.var_se, "r=%.2f: Var(w) %.5f, expected (1+r)T/k = %.5f (5 SE = %.5f)", r,
              st.var, expect, 5 * st.var_se);
    cr_assert(fabs(st.var - exact) > 5 * st.var_se, "the uncompensated run should be visibly hot");
}

Test(pl_harmonic, compensated_r002) { check_compensated(0.02); }
Test(pl_harmonic, compensated_r01) { check_compensated(0.1); }
Test(pl_harmonic, compensated_r02) { check_compensated(0.2); }
Test(pl_harmonic, uncompensated_r01) { check_uncompensated(0.1); }
Test(pl_harmonic, uncompensated_r02) { check_uncompensated(0.2); }
