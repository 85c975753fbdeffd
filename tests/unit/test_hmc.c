/* test_hmc.c: hybrid Monte Carlo (ALGORITHM.md §4) on a 2-D non-Gaussian target, the double well
 *
 *     U(x, y) = a (x^2 - 1)^2 + b y^2 + c x y,   a = 1, b = 0.5, c = 0.3,   T = 0.5.
 *
 * The barrier at x = 0 is about 2 T high, so a chain crosses it often and visits both wells.
 * Expected values: <x>, <x^2>, <y^2>, <x y>, <U> under pi ∝ exp(-U/T), computed in the test by a
 * trapezoid sum on a fine 2-D grid. The integrand is smooth and negligible (below e^-30) at the
 * edges of the box, so the trapezoid sum converges faster than any power of the spacing; the test
 * checks this by comparing two grids (agreement to 1e-9). By the symmetry U(x,y) = U(-x,-y),
 * <x> = 0 exactly; a chain stuck in one well would give |<x>| near 1.
 *
 * Checks:
 * - hmc (h 0.15, 15 leapfrog steps) reproduces the five moments within 5 standard errors, each
 *   SE from an_summarize (Sokal's integrated autocorrelation time) of the per-trajectory series;
 *   the same data exclude the moments at a temperature 10% higher (the test can tell a wrong
 *   answer: e.g. momenta drawn with the wrong variance or a wrong Metropolis factor).
 * - the acceptance falls as h grows: h = 0.05, 0.2, 0.5 at fixed leapfrog count. Leapfrog's
 *   energy error grows with h (its typical size is O(h^2) per trajectory, and at h = 0.5 the
 *   step exceeds the stability limit h omega < 2 in the steep outer walls, omega^2 = U''), so
 *   the three rates are far apart (0.999, 0.98, 0.47 measured); the test asserts each gap is over
 *   5 combined SE of the acceptance indicator series, so the ordering is not a fluctuation. The
 *   sampler's own acc_rate observable must equal the fraction of trajectories that moved w.
 * - at h = 0.5 about 15% of trajectories overflow float32 (dH not finite): they are rejected
 *   and the chain goes on; <kin_T> = T (regression for a NaN-momentum bug, see the test).
 * - mbhmc with synthetic gradient noise s2 = 1 (the leapfrog sees grad U + N(0, s2) per
 *   evaluation; H uses the exact U): every noisy leapfrog map is volume preserving and, with iid
 *   noise, reversible in distribution, so the Metropolis step keeps pi exact. At small h it
 *   matches the same quadrature within 5 SE, and its acceptance is below hmc's at the same h
 *   (the noise does work on the momenta that the exact H sees as energy error). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "analysis.h"
#include "sampler.h"
#include "synth.h"

#define DW_A 1.0
#define DW_B 0.5
#define DW_C 0.3
#define DW_T 0.5

enum { M_X = 0, M_X2, M_Y2, M_XY, M_U, N_MOM };
static const char *const mom_names[N_MOM] = {"<x>", "<x^2>", "<y^2>", "<xy>", "<U>"};

static double dwell_U(double x, double y) { return DW_A * (x * x - 1) * (x * x - 1) + DW_B * y * y + DW_C * x * y; }

static void moments_at(double x, double y, double out[N_MOM])
{
    out[M_X] = x;
    out[M_X2] = x * x;
    out[M_Y2] = y * y;
    out[M_XY] = x * y;
    out[M_U] = dwell_U(x, y);
}

/* <moments> under exp(-U/T) by a trapezoid sum on an (nx+1) x (ny+1) grid over
 * [-xmax, xmax] x [-ymax, ymax] (the spacing cancels in the ratio; the edge terms are ~0). */
static void dwell_quadrature(double T, int nx, int ny, double xmax, double ymax, double out[N_MOM])
{
    double z = 0, s[N_MOM] = {0}, m[N_MOM];
    for (int i = 0; i <= nx; i++) {
        double x = -xmax + 2 * xmax * i / nx;
        for (int j = 0; j <= ny; j++) {
            double y = -ymax + 2 * ymax * j / ny;
            moments_at(x, y, m);
            double wgt = exp(-m[M_U] / T);
            z += wgt;
            for (int k = 0; k < N_MOM; k++) s[k] += wgt * m[k];
        }
    }
    for (int k = 0; k < N_MOM; k++) out[k] = s[k] / z;
}

static void dwell_exact(double T, double out[N_MOM])
{
    double coarse[N_MOM];
    dwell_quadrature(T, 700, 1400, 3.5, 7.0, out);
    dwell_quadrature(T, 500, 1000, 3.5, 7.0, coarse);
    for (int k = 0; k < N_MOM; k++)
        cr_assert(fabs(out[k] - coarse[k]) < 1e-9, "quadrature of %s not converged: %.12f vs %.12f", mom_names[k],
                  out[k], coarse[k]);
}

typedef struct dwell_run {
    an_summary mom[N_MOM];
    an_summary moved;   /* indicator: the trajectory changed w (accepted) */
    double acc_rate;    /* the sampler's own acc_rate observable over the measured trajectories */
} dwell_run;

/* A chain of `method` on the double well (gradient noise s2 for mbhmc), started at (1, 0); `burn`
 * trajectories discarded, then `n_traj` measured, one record per trajectory. */
static void run_dwell(sampler_method method, double h, int32_t leapfrog, double s2, int64_t burn, int64_t n_traj,
                      uint64_t seed, dwell_run *out)
{
    synth_dwell dw;
    be b;
    cr_assert_eq(synth_dwell_backend(&b, &dw, DW_A, DW_B, DW_C, s2, seed + 100), 0);
    bz_spec spec;
    synth_spec(&spec, method, DW_T, burn + n_traj, 32);
    spec_sampler_defaults(&spec.sampler, method); /* jitter 0.1, batch 128, ... (§6b) */
    spec.sampler.h = h;
    spec.sampler.leapfrog = leapfrog;
    spec.sampler.mass = 1.0;
    spec.sampler.seed = seed;
    smp_chain c;
    bz_err e;
    cr_assert_eq(smp_chain_create(&c, &spec, &b, 0, &e), 0, "%s", e.msg);
    const float w0[2] = {1.0f, 0.0f};
    b.ops->upload(b.ctx, c.w, w0, 2);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    for (int64_t t = 0; t < burn; t++) cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
    obs_record rec;
    cr_assert_eq(smp_chain_observe(&c, false, &rec, &e), 0, "%s", e.msg); /* resets the acceptance count */

    double *series = malloc(sizeof(double) * (size_t)n_traj * (N_MOM + 1));
    cr_assert(series);
    float w[2], prev[2];
    b.ops->download(b.ctx, prev, c.w, 2);
    for (int64_t t = 0; t < n_traj; t++) {
        cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
        b.ops->download(b.ctx, w, c.w, 2);
        double m[N_MOM];
        moments_at(w[0], w[1], m);
        for (int k = 0; k < N_MOM; k++) series[k * n_traj + t] = m[k];
        series[N_MOM * n_traj + t] = (w[0] != prev[0] || w[1] != prev[1]) ? 1.0 : 0.0;
        prev[0] = w[0], prev[1] = w[1];
    }
    cr_assert_eq(smp_chain_observe(&c, false, &rec, &e), 0, "%s", e.msg);
    out->acc_rate = rec.v[OBS_ACC_RATE];
    for (int k = 0; k < N_MOM; k++) an_summarize(series + k * n_traj, n_traj, 0.0, 5.0, &out->mom[k]);
    an_summarize(series + N_MOM * n_traj, n_traj, 0.0, 5.0, &out->moved);
    free(series);
    smp_chain_destroy(&c);
    be_destroy(&b);
}

/* Every moment within 5 SE of the quadrature at T; the quadrature at 1.1 T excluded by > 5 SE in
 * at least one moment (so a 10% temperature error would have been caught). */
static void check_against_quadrature(const char *label, const dwell_run *r)
{
    double exact[N_MOM], hot[N_MOM];
    dwell_exact(DW_T, exact);
    dwell_exact(1.1 * DW_T, hot);
    int excluded = 0;
    for (int k = 0; k < N_MOM; k++) {
        const an_summary *s = &r->mom[k];
        cr_log_info("%s %-6s = %+.5f +- %.5f (quadrature %+.5f, %+.1f SE; tau_int %.1f)", label, mom_names[k], s->mean,
                    s->stderr_, exact[k], (s->mean - exact[k]) / s->stderr_, s->tau_int);
        cr_assert(s->window_capped == 0, "%s %s: series too short for its autocorrelation time", label, mom_names[k]);
        cr_assert(fabs(s->mean - exact[k]) < 5 * s->stderr_, "%s %s = %.5f +- %.5f, quadrature %.5f", label,
                  mom_names[k], s->mean, s->stderr_, exact[k]);
        if (fabs(s->mean - hot[k]) > 5 * s->stderr_) excluded++;
    }
    cr_assert(excluded > 0, "%s: the data cannot tell T from 1.1 T", label);
    /* Both wells visited: <x^2> ~ 1 while <x> ~ 0 needs many crossings. */
    cr_assert(fabs(r->mom[M_X].mean) < 0.1);
}

Test(hmc, double_well_matches_quadrature)
{
    dwell_run r;
    run_dwell(SM_HMC, 0.15, 15, 0.0, 1000, 100000, 7, &r);
    cr_log_info("hmc h=0.15 L=15: acceptance %.4f", r.acc_rate);
    check_against_quadrature("hmc", &r);
    cr_assert(r.acc_rate > 0.8 && r.acc_rate < 1.0, "acceptance %.3f", r.acc_rate);
}

Test(hmc, acceptance_falls_with_h)
{
    const double hs[3] = {0.05, 0.2, 0.5};
    dwell_run r[3];
    for (int i = 0; i < 3; i++) {
        run_dwell(SM_HMC, hs[i], 10, 0.0, 200, 20000, 11 + (uint64_t)i, &r[i]);
        cr_log_info("hmc h=%.2f L=10: acceptance %.4f +- %.4f (acc_rate observable %.4f)", hs[i], r[i].moved.mean,
                    r[i].moved.stderr_, r[i].acc_rate);
        /* The observable counts exactly the trajectories that moved w. */
        cr_assert(fabs(r[i].acc_rate - r[i].moved.mean) < 1e-12, "acc_rate %.6f vs moved fraction %.6f",
                  r[i].acc_rate, r[i].moved.mean);
    }
    for (int i = 0; i + 1 < 3; i++) {
        double gap = r[i].moved.mean - r[i + 1].moved.mean;
        double se = hypot(r[i].moved.stderr_, r[i + 1].moved.stderr_);
        cr_assert(gap > 5 * se, "acceptance at h=%.2f (%.4f) not clearly above h=%.2f (%.4f); 5 SE = %.4f", hs[i],
                  r[i].moved.mean, hs[i + 1], r[i + 1].moved.mean, 5 * se);
    }
    cr_assert(r[2].moved.mean > 0.2, "h=0.5 should still accept a good share of trajectories");
}

/* At h = 0.5 some trajectories run into the steep walls (h omega > 2 where U'' > 16, |x| > 1.3)
 * and overflow float32: dH is not finite, the trajectory is rejected, and the chain must go on
 * exactly as before (regression: the inf/NaN momenta of such a trajectory used to survive the
 * rejection and, since the next draw is p = 0 * p + noise, made every later H0 NaN, so the chain
 * froze with acceptance 0). After every step the momenta are those of the state the chain is in
 * (p' if accepted, p0 if rejected), which is distributed as exp(-H/T) jointly with w, so
 * <kin_T> = T exactly; reporting the rejected proposal's p' instead would run hot. */
Test(hmc, survives_overflowing_trajectories)
{
    synth_dwell dw;
    be b;
    cr_assert_eq(synth_dwell_backend(&b, &dw, DW_A, DW_B, DW_C, 0.0, 5), 0);
    bz_spec spec;
    enum { N = 20000 };
    synth_spec(&spec, SM_HMC, DW_T, N, 32);
    spec_sampler_defaults(&spec.sampler, SM_HMC);
    spec.sampler.h = 0.5;
    spec.sampler.leapfrog = 10;
    spec.sampler.seed = 31;
    smp_chain c;
    bz_err e;
    cr_assert_eq(smp_chain_create(&c, &spec, &b, 0, &e), 0, "%s", e.msg);
    const float w0[2] = {1.0f, 0.0f};
    b.ops->upload(b.ctx, c.w, w0, 2);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    static double kin[N];
    int64_t overflowed = 0, first = -1, acc_after = 0;
    for (int64_t t = 0; t < N; t++) {
        cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
        obs_record rec;
        cr_assert_eq(smp_chain_observe(&c, false, &rec, &e), 0, "step %lld: %s", (long long)t, e.msg);
        kin[t] = rec.v[OBS_KIN_T];
        cr_assert(isfinite(kin[t]), "kin_T not finite at trajectory %lld", (long long)t);
        if (!isfinite(rec.v[OBS_DH])) {
            overflowed++;
            if (first < 0) first = t;
        } else if (first >= 0) {
            acc_after += rec.v[OBS_ACC_RATE] > 0.5;
        }
    }
    an_summary k;
    an_summarize(kin, N, 0.0, 5.0, &k);
    cr_log_info("hmc h=0.5: %lld of %d trajectories overflowed (first at %lld); acceptance after it %.3f; "
                "<kin_T> = %.4f +- %.4f (T = %.2f)",
                (long long)overflowed, N, (long long)first, (double)acc_after / (double)(N - first), k.mean,
                k.stderr_, DW_T);
    cr_assert(overflowed > 0, "no trajectory overflowed: the test does not exercise the case");
    cr_assert((double)acc_after / (double)(N - first) > 0.2, "the chain froze after an overflowing trajectory");
    /* kin_T = (p_x^2 + p_y^2) / 2 has std T, so SE ~ T / sqrt(N) = 0.0035: a bound on the SE keeps
     * a few huge rejected momenta from passing through a huge error bar. */
    cr_assert(k.stderr_ < 0.01, "<kin_T> SE %.4f: the momenta have outliers", k.stderr_);
    cr_assert(fabs(k.mean - DW_T) < 5 * k.stderr_, "<kin_T> = %.4f +- %.4f, expected T = %.2f", k.mean, k.stderr_,
              DW_T);
    smp_chain_destroy(&c);
    be_destroy(&b);
}

Test(hmc, mbhmc_noisy_gradient_stays_exact)
{
    dwell_run r, ref;
    run_dwell(SM_MBHMC, 0.05, 30, 1.0, 2000, 150000, 21, &r);
    cr_log_info("mbhmc s2=1 h=0.05 L=30: acceptance %.4f", r.acc_rate);
    check_against_quadrature("mbhmc", &r);
    /* The noise costs acceptance: exact hmc at the same h and length accepts clearly more. */
    run_dwell(SM_HMC, 0.05, 30, 0.0, 200, 20000, 22, &ref);
    cr_log_info("hmc h=0.05 L=30: acceptance %.4f", ref.acc_rate);
    cr_assert(r.acc_rate > 0.3, "mbhmc acceptance %.3f: h too large for the test", r.acc_rate);
    cr_assert(ref.moved.mean - r.moved.mean > 5 * hypot(ref.moved.stderr_, r.moved.stderr_),
              "mbhmc acceptance %.4f should be below hmc's %.4f", r.moved.mean, ref.moved.mean);
}
