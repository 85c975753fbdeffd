/* test_pl_control.c: pL's mass control, variance estimates and runaway guard (ALGORITHM.md §5).
 *
 * The mass control keeps every temperature ratio r_i = A s_i^2 / m_i at or below r_max, so that
 * the mini-batch noise stays a small, diagonal share of the thermal noise (the LTR regime). These
 * tests drive it on synthetic harmonic wells, whose per-component mini-batch noise variance s2[i]
 * the test sets at will, and check each rule against a computation made here from first
 * principles (A = h^2 / (4 T tanh(gamma h / 2)), never read back from the implementation):
 *  - a component whose ratio is pushed above r_max ends exactly at r_max, its momentum redrawn
 *    from N(0, m T); components below r_max keep their masses bit for bit;
 *  - a re-init puts every ratio back to r0;
 *  - the floors: dead units get mass_floor (auto: 1st percentile of the positive masses), light
 *    components of a layer get layer_floor x the layer's median, and the stability floor holds
 *    h omega_i = h sqrt((lambda/n + q_i) / m_i) at kappa; n_floor / n_stab count the components
 *    held up, and they stay counted at later updates (the counts are current, not events);
 *  - r_i <= r_max after every update of a run whose noise keeps changing.
 * On a small real network the two variance estimates must agree within their statistical error
 * (the minibatch one is unbiased for the variance of the mini-batch mean, finite-population
 * correction included), and the exact one must equal a brute-force per-example loop.
 * The guard: a unit dead when the masses are set (tiny mass) and revived later (curvature jumps,
 * h omega >> 2) must blow the chain up with z_guard off and must be caught with z_guard on. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dataset.h"
#include "nn.h"
#include "rng.h"
#include "sampler.h"
#include "smp_pl.h"
#include "synth.h"
#include "testutil.h"

#define TEMP 1.0
#define STEP 1.0
#define GAMMA 0.1
#define SP 10000 /* synthetic training-set size */
#define SB 16    /* synthetic batch */

/* r_i = A s_i^2 / m_i with A = (h^2/4)(1 + c^2)/((1 - c^2) T), c^2 = exp(-gamma h), written via
 * (1 - c^2)/(1 + c^2) = tanh(gamma h / 2). */
static double ratio_coeff(double h, double gamma, double T) { return h * h / (4.0 * T * tanh(gamma * h / 2.0)); }

static double rel(double a, double b) { return fabs(a - b) / fabs(b); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The k-th smallest (0-based) of x[0..n), by a full sort of a copy. */
static double kth_sorted(const double *x, int64_t n, int64_t k)
{
    double *t = malloc(sizeof(double) * (size_t)n);
    memcpy(t, x, sizeof(double) * (size_t)n);
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    double v = t[k];
    free(t);
    return v;
}

/* A harmonic-well chain: n components in n_groups layers, k = 1, s2 = 1; pL at T = 1, h = 1,
 * gamma = 0.1, r0 = 0.01, r_max = 0.1, no random re-init; w starts at 0. */
typedef struct hchain {
    synth_harmonic h;
    be b;
    bz_spec spec;
    smp_chain c;
} hchain;

static void hchain_init(hchain *x, int64_t n, int32_t n_groups, uint64_t seed)
{
    cr_assert_eq(synth_harmonic_backend(&x->b, &x->h, n, 1.0, 1.0, SP, SB, n_groups, seed), 0);
    synth_spec(&x->spec, SM_PL, TEMP, 0, SB);
    sampler_spec *sp = &x->spec.sampler;
    sp->h = STEP;
    sp->gamma = GAMMA;
    sp->r0 = 0.01;
    sp->r_max = 0.1;
    sp->p_reinit = 0.0;
    sp->update_every = 10;
    sp->kappa = 2.0; /* stability floor 4 (q = B s2 here) vs m(r0) = 500 s2: out of the way */
    sp->max_disp = 0.0; /* the ALGORITHM.md floors are checked exactly here; the displacement
                           floor (boltzd's own) has its test at the end of this file */
    sp->seed = seed;
}

static void hchain_start(hchain *x)
{
    bz_err e = {0};
    cr_assert_eq(smp_chain_create(&x->c, &x->spec, &x->b, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(smp_chain_start(&x->c, &e), 0, "%s", e.msg);
}

static void hchain_free(hchain *x)
{
    smp_chain_destroy(&x->c);
    be_destroy(&x->b);
    synth_harmonic_free(&x->h);
}

static pl_view inspect(smp_chain *c)
{
    pl_view v;
    cr_assert_eq(pl_inspect(c, &v), 0);
    return v;
}

static void steps(smp_chain *c, int64_t k)
{
    bz_err e = {0};
    for (int64_t s = 0; s < k; s++) cr_assert_eq(smp_chain_step(c, &e), 0, "step %lld: %s", (long long)c->step, e.msg);
}

/* The chain's momenta, read from the "pl_p" section of a checkpoint (the public way to see them). */
static float *read_momenta(smp_chain *c)
{
    char dir[512], path[600];
    tu_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/c.ckpt", dir);
    bz_err e = {0};
    cr_assert_eq(smp_chain_save(c, path, 0, &e), 0, "%s", e.msg);
    ckpt_reader *r;
    ckpt_header hd;
    cr_assert_eq(ckpt_read_open(&r, path, &hd, &e), 0, "%s", e.msg);
    uint64_t bytes = 0;
    const void *p = ckpt_find(r, "pl_p", &bytes);
    cr_assert(p && bytes == sizeof(float) * (uint64_t)c->n);
    float *out = malloc(bytes);
    memcpy(out, p, bytes);
    ckpt_read_close(r);
    remove(path);
    remove(dir);
    return out;
}

/* ---- 1. components forced above r_max end exactly at r_max ---- */

Test(pl_control, raise_to_r_max_exactly)
{
    const int64_t n = 4000;
    hchain x;
    hchain_init(&x, n, 4, 21);
    hchain_start(&x);
    const double A = ratio_coeff(STEP, GAMMA, TEMP), r0 = 0.01, r_max = 0.1;
    pl_view v = inspect(&x.c);
    cr_assert(rel(v.A, A) < 1e-12, "A %.15g, expected %.15g", v.A, A);
    double *m0 = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) {
        cr_assert(rel(v.m[i], A * 1.0 / r0) < 1e-12, "initial mass %lld: %g, m(r0) = %g", (long long)i, v.m[i], A / r0);
        m0[i] = v.m[i];
    }
    cr_assert_eq(v.n_floor, 0);
    cr_assert_eq(v.n_stab, 0);
    /* Class 1 of every 4: noise x50, r = 50 r0 = 5 r_max. Class 2: x5, r = 0.05 in (r0, r_max).
     * The classes run through all four layers. */
    for (int64_t i = 0; i < n; i++) x.h.s2[i] *= i % 4 == 1 ? 50.0 : i % 4 == 2 ? 5.0 : 1.0;
    steps(&x.c, 10); /* the update runs after step 10 */
    v = inspect(&x.c);
    int64_t raised = 0;
    double z2_raised = 0.0;
    float *p = read_momenta(&x.c);
    for (int64_t i = 0; i < n; i++) {
        double r = v.A * v.s2v[i] / v.m[i];
        if (i % 4 == 1) {
            raised++;
            cr_assert(rel(r, r_max) < 1e-12, "component %lld forced to r = 0.5: r = %.15g after the update", (long long)i, r);
            /* m(r_max) from the synthetic variance itself: 50 s2 / r_max */
            cr_assert(rel(v.m[i], A * 50.0 / r_max) < 1e-9, "mass %g, expected m(r_max) = %g", v.m[i], A * 50.0 / r_max);
            z2_raised += (double)p[i] * p[i] / (v.m[i] * TEMP);
        } else {
            cr_assert(v.m[i] == m0[i], "component %lld (r = %.3f <= r_max) changed mass %g -> %g", (long long)i, r, m0[i],
                      v.m[i]);
            double r_expect = i % 4 == 2 ? 5.0 * r0 : r0;
            cr_assert(rel(r, r_expect) < 1e-9, "component %lld: r = %.12g, expected %g", (long long)i, r, r_expect);
        }
    }
    cr_assert_eq(v.n_raise, raised, "n_raise %lld, expected %lld", (long long)v.n_raise, (long long)raised);
    cr_assert_eq(v.n_floor, 0);
    cr_assert_eq(v.n_stab, 0);
    cr_assert_eq(v.n_guard, 0, "the guard should not have fired (it would confuse the count)");
    /* The raised components' momenta were redrawn from N(0, m T): <p^2/(m T)> = 1 with standard
     * error sqrt(2/N). Kept from before, they would carry the old mass's scale, m0/m = 0.2. */
    double z2 = z2_raised / (double)raised, se = sqrt(2.0 / (double)raised);
    cr_log_info("raised: <p^2/mT> = %.4f +- %.4f", z2, se);
    cr_assert(fabs(z2 - 1.0) < 5 * se, "redrawn momenta: <p^2/(m T)> = %.4f, expected 1 (5 SE = %.4f)", z2, 5 * se);
    free(p);
    /* The next update with the same noise raises nothing more. */
    steps(&x.c, 10);
    v = inspect(&x.c);
    cr_assert_eq(v.n_raise, raised, "a second update raised %lld more", (long long)(v.n_raise - raised));
    free(m0);
    hchain_free(&x);
}

/* ---- 2. re-init resets every mass to m(r0) ---- */

Test(pl_control, reinit_resets_to_r0)
{
    const int64_t n = 4000;
    hchain x;
    hchain_init(&x, n, 4, 22);
    hchain_start(&x);
    const double A = ratio_coeff(STEP, GAMMA, TEMP), r0 = 0.01, r_max = 0.1;
    /* First update (no re-init): class 1 of 4 raised to r_max. */
    for (int64_t i = 0; i < n; i++) x.h.s2[i] *= i % 4 == 1 ? 50.0 : 1.0;
    steps(&x.c, 10);
    pl_view v = inspect(&x.c);
    cr_assert_eq(v.n_raise, n / 4);
    cr_assert(rel(v.A * v.s2v[1] / v.m[1], r_max) < 1e-12);
    /* Second update is a re-init (p_reinit = 1), with the noise changed again: class 2 x3. */
    x.spec.sampler.p_reinit = 1.0;
    for (int64_t i = 0; i < n; i++) x.h.s2[i] *= i % 4 == 2 ? 3.0 : 1.0;
    steps(&x.c, 10);
    v = inspect(&x.c);
    cr_assert_eq(v.n_reinit, 1, "n_reinit %lld", (long long)v.n_reinit);
    cr_assert_eq(v.n_raise, n / 4, "a re-init is instead of the raise, not in addition");
    cr_assert_eq(v.n_floor, 0);
    cr_assert_eq(v.n_stab, 0);
    double z2 = 0.0;
    float *p = read_momenta(&x.c);
    for (int64_t i = 0; i < n; i++) {
        double r = v.A * v.s2v[i] / v.m[i], s2 = i % 4 == 1 ? 50.0 : i % 4 == 2 ? 3.0 : 1.0;
        cr_assert(rel(r, r0) < 1e-12, "component %lld: r = %.15g after the re-init, expected r0", (long long)i, r);
        cr_assert(rel(v.m[i], A * s2 / r0) < 1e-9, "component %lld: m = %g, expected m(r0) = %g", (long long)i, v.m[i],
                  A * s2 / r0);
        z2 += (double)p[i] * p[i] / (v.m[i] * TEMP);
    }
    /* every momentum redrawn from N(0, m T) */
    z2 /= (double)n;
    double se = sqrt(2.0 / (double)n);
    cr_assert(fabs(z2 - 1.0) < 5 * se, "<p^2/(m T)> after the re-init = %.4f (5 SE = %.4f)", z2, 5 * se);
    free(p);
    hchain_free(&x);
}

/* ---- 3. floors ---- */

/* The masses ALGORITHM.md §5 prescribes at init, computed here: m(r0) from the true synthetic
 * variance (0 for dead units), then the mass floor (given, or the 1st percentile of the positive
 * masses: the floor(0.01 (count - 1))-th smallest), the layer floor (layer_floor x the layer's
 * median, the (count/2)-th smallest, after the mass floor), the stability floor
 * h^2 (lambda/n + q_i)/kappa^2. held[i]: 1 when the mass floor or the layer floor set the mass
 * last, 2 when the stability floor did. */
typedef struct expect_floors {
    double *m;
    unsigned char *held;
    double mass_floor;
    int64_t n_floor, n_stab;
} expect_floors;

static void expected_init_masses(const hchain *x, const double *q, double lambda, expect_floors *out)
{
    const int64_t n = x->h.n;
    const sampler_spec *sp = &x->spec.sampler;
    const double A = ratio_coeff(sp->h, sp->gamma, TEMP);
    out->m = malloc(sizeof(double) * n);
    out->held = calloc((size_t)n, 1);
    double *pos = malloc(sizeof(double) * n);
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        out->m[i] = x->h.s2[i] > 0 ? A * x->h.s2[i] / sp->r0 : 0.0;
        if (out->m[i] > 0) pos[cnt++] = out->m[i];
    }
    out->mass_floor = sp->mass_floor > 0 ? sp->mass_floor : kth_sorted(pos, cnt, (int64_t)floor(0.01 * (double)(cnt - 1)));
    free(pos);
    for (int64_t i = 0; i < n; i++)
        if (out->m[i] < out->mass_floor) out->m[i] = out->mass_floor, out->held[i] = 1;
    const be_layout *L = &x->b.layout;
    if (sp->layer_floor > 0) {
        for (int32_t g = 0; g < L->n_groups; g++) {
            int64_t lo = L->off[g], c = L->off[g + 1] - lo;
            double fl = sp->layer_floor * kth_sorted(out->m + lo, c, c / 2);
            for (int64_t i = lo; i < lo + c; i++)
                if (out->m[i] < fl) out->m[i] = fl, out->held[i] = 1;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        double fl = sp->h * sp->h * (lambda / (double)n + q[i]) / (sp->kappa * sp->kappa);
        if (out->m[i] < fl) out->m[i] = fl, out->held[i] = 2;
    }
    out->n_floor = out->n_stab = 0;
    for (int64_t i = 0; i < n; i++) out->n_floor += out->held[i] == 1, out->n_stab += out->held[i] == 2;
}

static void expect_free(expect_floors *x)
{
    free(x->m);
    free(x->held);
}

/* Per-example second moment the synthetic target reports at w = 0: q_i = v_i = s2_i B (P-1)/(P-B). */
static double *synth_q_at_zero(const synth_harmonic *h)
{
    double *q = malloc(sizeof(double) * h->n);
    for (int64_t i = 0; i < h->n; i++) q[i] = h->s2[i] * h->B * (h->P - 1.0) / (h->P - h->B);
    return q;
}

static void assert_masses(const pl_view *v, const expect_floors *ex, int64_t n)
{
    cr_assert(rel(v->mass_floor, ex->mass_floor) < 1e-12, "mass_floor %.15g, expected %.15g", v->mass_floor,
              ex->mass_floor);
    for (int64_t i = 0; i < n; i++)
        cr_assert(rel(v->m[i], ex->m[i]) < 1e-12, "mass %lld: %.15g, expected %.15g (held by %d)", (long long)i, v->m[i],
                  ex->m[i], ex->held[i]);
    cr_assert_eq(v->n_floor, ex->n_floor, "n_floor %lld, expected %lld", (long long)v->n_floor, (long long)ex->n_floor);
    cr_assert_eq(v->n_stab, ex->n_stab, "n_stab %lld, expected %lld", (long long)v->n_stab, (long long)ex->n_stab);
}

/* Dead units (s2 = 0) get the automatic mass floor, the 1st percentile of the positive masses;
 * live components below it are raised to it; each is counted once in n_floor, and still counted
 * at the next update when nothing changed (n_floor is the number held up now). */
Test(pl_control, dead_units_get_auto_mass_floor)
{
    const int64_t n = 1000;
    hchain x;
    hchain_init(&x, n, 4, 23);
    x.spec.sampler.layer_floor = 0.0; /* this test is about the mass floor alone */
    x.spec.sampler.kappa = 1e3;
    x.spec.sampler.update_every = 5;
    bz_rng r;
    rng_seed(&r, 7, 0);
    int64_t dead = 0;
    for (int64_t i = 0; i < n; i++) {
        x.h.s2[i] = pow(10.0, -2.0 + 4.0 * rng_uniform(&r)); /* four decades of noise */
        if (i % 33 == 5) x.h.s2[i] = 0.0, dead++;            /* 31 dead units across the layers */
    }
    double *q = synth_q_at_zero(&x.h);
    expect_floors ex;
    expected_init_masses(&x, q, 0.0, &ex);
    hchain_start(&x);
    pl_view v = inspect(&x.c);
    assert_masses(&v, &ex, n);
    int64_t live = n - dead, live_below = (int64_t)floor(0.01 * (double)(live - 1)); /* strictly below the percentile */
    cr_assert_eq(ex.n_floor, dead + live_below, "the construction should give %lld dead + %lld light",
                 (long long)dead, (long long)live_below);
    for (int64_t i = 0; i < n; i++)
        if (x.h.s2[i] == 0.0) cr_assert(v.m[i] == v.mass_floor, "dead unit %lld: mass %g, floor %g", (long long)i, v.m[i], v.mass_floor);
    cr_assert(v.mass_floor > 0);
    for (int64_t i = 0; i < n; i++) cr_assert(v.m[i] >= v.mass_floor, "mass %lld below the floor", (long long)i);
    /* An update with the noise unchanged: nothing moves, the same components are still held up. */
    double *m1 = malloc(sizeof(double) * n);
    memcpy(m1, v.m, sizeof(double) * n);
    steps(&x.c, 5);
    v = inspect(&x.c);
    for (int64_t i = 0; i < n; i++) cr_assert(v.m[i] == m1[i], "mass %lld moved at an update with no change", (long long)i);
    cr_assert_eq(v.n_raise, 0);
    cr_assert_eq(v.n_floor, ex.n_floor, "n_floor after the update %lld, still held %lld", (long long)v.n_floor,
                 (long long)ex.n_floor);
    free(m1);
    free(q);
    expect_free(&ex);
    hchain_free(&x);
}

/* A layer with a few components far lighter than its median: they get layer_floor x median. */
Test(pl_control, light_components_get_layer_floor)
{
    const int64_t n = 4 * 251; /* odd layers: one median */
    hchain x;
    hchain_init(&x, n, 4, 24);
    x.spec.sampler.mass_floor = 1e-9; /* explicit and far below: only the layer floor acts */
    x.spec.sampler.layer_floor = 0.1;
    x.spec.sampler.kappa = 1e3;
    bz_rng r;
    rng_seed(&r, 8, 0);
    for (int64_t i = 0; i < n; i++) x.h.s2[i] = pow(10.0, 0.5 * rng_uniform(&r)); /* half a decade */
    const int64_t g2 = x.b.layout.off[2];
    for (int64_t i = g2; i < g2 + 12; i++) x.h.s2[i] *= 1e-3; /* 12 light components in layer 3 */
    double *q = synth_q_at_zero(&x.h);
    expect_floors ex;
    expected_init_masses(&x, q, 0.0, &ex);
    hchain_start(&x);
    pl_view v = inspect(&x.c);
    assert_masses(&v, &ex, n);
    cr_assert_eq(ex.n_floor, 12, "the construction should make exactly the 12 light components bind");
    double med = kth_sorted(v.m + g2, 251, 125); /* unchanged by the floor: it only lifts the light tail */
    for (int64_t i = g2; i < g2 + 12; i++)
        cr_assert(rel(v.m[i], 0.1 * med) < 1e-12, "light component %lld: mass %g, 0.1 x median = %g", (long long)i, v.m[i],
                  0.1 * med);
    cr_assert(v.mass_floor == 1e-9, "an explicit mass_floor is used as given");
    expect_free(&ex);
    free(q);
    hchain_free(&x);
}

/* The stability floor: with lambda > 0 and small noise, m(r0) would give h omega_i > kappa, with
 * omega_i^2 = (lambda/n + q_i)/m_i; the floor puts those components exactly at h omega = kappa. */
Test(pl_control, stability_floor_holds_h_omega_at_kappa)
{
    const int64_t n = 1000;
    hchain x;
    hchain_init(&x, n, 4, 25);
    x.b.layout.lambda = 50.0; /* regulariser curvature lambda/n = 0.05 (layout only feeds the floor) */
    x.spec.sampler.kappa = 0.5;
    x.spec.sampler.layer_floor = 0.1;
    bz_rng r;
    rng_seed(&r, 9, 0);
    for (int64_t i = 0; i < n; i++) x.h.s2[i] = pow(10.0, -5.0 + 5.0 * rng_uniform(&r));
    for (int64_t i = 0; i < n; i += 97) x.h.s2[i] = 0.0; /* a few dead units too */
    double *q = synth_q_at_zero(&x.h);
    expect_floors ex;
    expected_init_masses(&x, q, 50.0, &ex);
    hchain_start(&x);
    pl_view v = inspect(&x.c);
    assert_masses(&v, &ex, n);
    cr_assert(ex.n_stab > 100, "the construction should make the stability floor bind widely (%lld)", (long long)ex.n_stab);
    const double kappa = 0.5;
    for (int64_t i = 0; i < n; i++) {
        double hw = STEP * sqrt((50.0 / n + q[i]) / v.m[i]);
        cr_assert(hw <= kappa * (1 + 1e-12), "component %lld: h omega = %.15g > kappa", (long long)i, hw);
        if (ex.held[i] == 2) cr_assert(rel(hw, kappa) < 1e-12, "held by the stability floor: h omega %.15g", hw);
    }
    expect_free(&ex);
    free(q);
    hchain_free(&x);
}

/* ---- r_i <= r_max after every update ---- */

/* Noise that jumps by up to 10x either way every 5 steps, dead units that come and go, updates
 * every 5 steps with re-inits 10% of the time: after every step (s_i^2 is held between updates)
 * r_i <= r_max for every component, and the recorded r_max observable agrees. */
Test(pl_control, ratio_never_above_r_max)
{
    const int64_t n = 300;
    hchain x;
    hchain_init(&x, n, 3, 26);
    x.spec.sampler.update_every = 5;
    x.spec.sampler.p_reinit = 0.1;
    hchain_start(&x);
    bz_rng r;
    rng_seed(&r, 10, 0);
    bz_err e = {0};
    const double r_max = 0.1;
    double worst = 0.0;
    for (int step = 1; step <= 600; step++) {
        if (step % 5 == 3)
            for (int64_t i = 0; i < n; i++) x.h.s2[i] = rng_uniform(&r) < 0.03 ? 0.0 : pow(10.0, 2.0 * rng_uniform(&r) - 1.0);
        cr_assert_eq(smp_chain_step(&x.c, &e), 0, "%s", e.msg);
        pl_view v = inspect(&x.c);
        for (int64_t i = 0; i < n; i++) {
            double ri = v.A * v.s2v[i] / v.m[i];
            worst = ri > worst ? ri : worst;
            cr_assert(ri <= r_max * (1 + 1e-12), "step %d component %lld: r = %.15g > r_max", step, (long long)i, ri);
        }
        obs_record rec;
        cr_assert_eq(smp_chain_observe(&x.c, false, &rec, &e), 0, "%s", e.msg);
        cr_assert(rec.v[OBS_R_MAX] <= r_max * (1 + 1e-12));
    }
    pl_view v = inspect(&x.c);
    cr_log_info("ratio run: worst r %.6f, n_raise %lld, n_reinit %lld, n_guard %lld", worst, (long long)v.n_raise,
                (long long)v.n_reinit, (long long)v.n_guard);
    cr_assert(v.n_raise > 0 && v.n_reinit > 0, "the run should exercise both raises and re-inits");
    cr_assert(rel(worst, r_max) < 1e-9, "some component should sit at r_max (worst %.12g)", worst);
    hchain_free(&x);
}

/* ---- 4. the two variance estimates on a small network ---- */

typedef struct netfix {
    ds_data d;
    nn_arch a;
    be b;
    float *w;
} netfix;

#define NET_P 300
#define NET_B 32
#define NET_LAMBDA 0.01

static void net_init(netfix *f)
{
    ds_spec s;
    memset(&s, 0, sizeof s);
    s.kind = DS_SPIN;
    s.n_in = 20;
    s.classes = 3;
    s.train = NET_P;
    s.test = 0;
    s.p_flip = 0.3;
    s.seed = 12;
    bz_err e = {0};
    cr_assert_eq(ds_load(&s, &f->d, &e), 0, "%s", e.msg);
    const int32_t sizes[] = {20, 8, 6, 3};
    cr_assert_eq(nn_arch_init(&f->a, sizes, 4, true, &e), 0, "%s", e.msg);
    cr_assert_eq(be_cpu_network(&f->b, &f->a, &f->d, NET_LAMBDA, NET_B, &e), 0, "%s", e.msg);
    f->w = malloc(sizeof(float) * f->a.n);
    nn_init_he(&f->a, f->w, 5);
}

static void net_free(netfix *f)
{
    be_destroy(&f->b);
    ds_free(&f->d);
    free(f->w);
}

/* s_i^2 of a pL chain started at the fixture's w with the given method; the chain's
 * var_batches observable into *batches (minibatch) when non-NULL. */
static void net_s2(netfix *f, var_method vm, int32_t max_batches, uint64_t seed, double *s2, double *batches)
{
    bz_spec spec;
    synth_spec(&spec, SM_PL, 1e-3, 0, NET_B);
    spec.sampler.var_method = vm;
    spec.sampler.var_min_batches = 16;
    spec.sampler.var_max_batches = max_batches;
    spec.sampler.var_tol = 1e-9; /* never met: the count is var_max_batches */
    spec.sampler.seed = seed;
    smp_chain c;
    bz_err e = {0};
    cr_assert_eq(smp_chain_create(&c, &spec, &f->b, 0, &e), 0, "%s", e.msg);
    f->b.ops->upload(f->b.ctx, c.w, f->w, f->a.n);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    pl_view v = inspect(&c);
    memcpy(s2, v.s2v, sizeof(double) * f->a.n);
    if (batches) {
        obs_record rec;
        cr_assert_eq(smp_chain_observe(&c, false, &rec, &e), 0, "%s", e.msg);
        *batches = rec.v[OBS_VAR_BATCHES];
    }
    smp_chain_destroy(&c);
}

/* The exact estimate equals s_i^2 = (v_i / B)(P - B)/(P - 1) with v_i the population variance of
 * the per-example gradients, each computed here by its own backward pass (rows = 1). */
Test(pl_control, exact_variance_matches_per_example_loop)
{
    netfix f;
    net_init(&f);
    const int64_t n = f.a.n;
    double *s2 = malloc(sizeof(double) * n);
    net_s2(&f, VAR_EXACT, 256, 1, s2, NULL);
    nn_work ws;
    bz_err e = {0};
    cr_assert_eq(nn_work_init(&ws, &f.a, 1, &e), 0, "%s", e.msg);
    float *g = malloc(sizeof(float) * n * NET_P);
    for (int32_t mu = 0; mu < NET_P; mu++)
        nn_loss_grad(&f.a, &ws, f.w, f.d.x_train, f.d.y_train, &mu, 1, 1.0f, false, g + (size_t)mu * n, NULL, NULL);
    const double fpc = (double)(NET_P - NET_B) / (NET_P - 1);
    int64_t live = 0, dead = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double mean = 0.0, var = 0.0, q = 0.0;
        for (int32_t mu = 0; mu < NET_P; mu++) mean += g[(size_t)mu * n + i];
        mean /= NET_P;
        for (int32_t mu = 0; mu < NET_P; mu++) {
            double d = g[(size_t)mu * n + i] - mean;
            var += d * d;
            q += (double)g[(size_t)mu * n + i] * g[(size_t)mu * n + i];
        }
        var /= NET_P; /* population variance over the P examples */
        q /= NET_P;
        double bf = var / NET_B * fpc;
        if (q == 0.0) { /* a unit dead on every example: no gradient, no noise */
            dead++;
            cr_assert(s2[i] == 0.0, "component %lld has no gradient but s2 = %g", (long long)i, s2[i]);
            continue;
        }
        live++;
        /* float32 sums of q and g: the difference q - gbar^2 carries an error ~1e-7 q */
        double tol = 1e-4 * bf + 1e-6 * q / NET_B * fpc;
        worst = fmax(worst, fabs(s2[i] - bf) / bf);
        cr_assert(fabs(s2[i] - bf) <= tol, "component %lld: exact %.9g, per-example loop %.9g (q %.3g)", (long long)i, s2[i],
                  bf, q);
    }
    cr_log_info("exact vs loop: %lld live, %lld dead components, worst relative difference %.2e", (long long)live,
                (long long)dead, worst);
    cr_assert(live > n / 2);
    nn_work_free(&ws);
    free(g);
    free(s2);
    net_free(&f);
}

/* The minibatch estimate (Welford over K = 1024 mini-batches at fixed w, regulariser included:
 * it is the same for every batch) is unbiased for the exact one. The error bars come from R
 * independent estimates (different seeds), so the correlation between components (they share
 * the mini-batches) is in them: the mean relative deviation over components must be within 5 SE
 * of 0 and the test must be able to see a 10% bias (the finite-population correction here is
 * (P-B)/(P-1) = 0.896); per component, |z| > 4 must be rare. */
Test(pl_control, minibatch_variance_agrees_with_exact)
{
    netfix f;
    net_init(&f);
    const int64_t n = f.a.n;
    enum { R = 16, K = 1024 };
    double *ex = malloc(sizeof(double) * n), *mb = malloc(sizeof(double) * n * R);
    net_s2(&f, VAR_EXACT, 256, 1, ex, NULL);
    for (int rr = 0; rr < R; rr++) {
        double batches = 0;
        net_s2(&f, VAR_MINIBATCH, K, 100 + rr, mb + (size_t)rr * n, &batches);
        cr_assert_eq(batches, (double)K, "var_batches %g, expected var_max_batches = %d", batches, K);
    }
    /* d_r: mean over live components of (s2_mb - s2_exact)/s2_exact, one per replicate */
    double d[R], dsum = 0, dss = 0;
    int64_t live = 0, big_z = 0;
    for (int rr = 0; rr < R; rr++) {
        double s = 0;
        int64_t cnt = 0;
        for (int64_t i = 0; i < n; i++)
            if (ex[i] > 0) s += (mb[(size_t)rr * n + i] - ex[i]) / ex[i], cnt++;
        d[rr] = s / (double)cnt;
        live = cnt;
        dsum += d[rr];
        dss += d[rr] * d[rr];
    }
    double dmean = dsum / R, dse = sqrt((dss / R - dmean * dmean) / (R - 1));
    for (int64_t i = 0; i < n; i++) {
        if (ex[i] <= 0) {
            for (int rr = 0; rr < R; rr++) cr_assert(mb[(size_t)rr * n + i] < 1e-20, "dead component with noise");
            continue;
        }
        double s = 0, ss = 0;
        for (int rr = 0; rr < R; rr++) s += mb[(size_t)rr * n + i], ss += mb[(size_t)rr * n + i] * mb[(size_t)rr * n + i];
        double mean = s / R, se = sqrt(fmax(ss / R - mean * mean, 0.0) / (R - 1));
        double z = (mean - ex[i]) / se;
        big_z += fabs(z) > 4;
    }
    cr_log_info("minibatch vs exact: mean rel. deviation %.5f +- %.5f over %lld components; |z|>4: %lld", dmean, dse,
                (long long)live, (long long)big_z);
    cr_assert(fabs(dmean) < 5 * dse, "mean relative deviation %.5f, 5 SE = %.5f", dmean, 5 * dse);
    cr_assert(5 * dse < 0.05, "the test must resolve a 10%% bias: 5 SE = %.4f", 5 * dse);
    cr_assert(big_z <= live / 50, "%lld of %lld components off by more than 4 SE", (long long)big_z, (long long)live);
    free(ex);
    free(mb);
    net_free(&f);
}

/* The minibatch estimate never uses more than var_max_batches, also when that is not a power of
 * two times var_min_batches (doubling from 16 would give 128 for a cap of 100). */
Test(pl_control, minibatch_count_capped)
{
    netfix f;
    net_init(&f);
    double *s2 = malloc(sizeof(double) * f.a.n), batches = 0;
    net_s2(&f, VAR_MINIBATCH, 100, 3, s2, &batches);
    cr_assert_eq(batches, 100.0, "var_batches %g with var_max_batches 100", batches);
    free(s2);
    net_free(&f);
}

/* ---- 5. the runaway guard ---- */

/* 64 harmonic components; 4 of them are "dead" when the masses are set: no gradient noise
 * (s2 = 0) and only a weak curvature k = 0.01 (a regulariser's), so they get the mass floor
 * m = 0.01 (h omega = 1, stable). The layer floor is off and kappa large, so no floor rescues
 * them later. At step 200 they revive: k = 1 and s2 = 1, i.e. h omega = h sqrt(k/m) = 10 > 2,
 * the leapfrog step's stability limit (an amplification of about 98 per step). update_every is
 * huge, so only the guard can react. Returns the step at which the chain failed (0: it ran
 * all steps) and fills the view at the end. */
#define GUARD_N 64
#define GUARD_DEAD 4
#define REVIVE_AT 200
#define GUARD_STEPS 1000

typedef struct revival {
    int64_t failed;          /* step at which the chain failed, 0 when it ran all steps */
    int rc;                  /* its error code */
    int64_t n_guard;
    double m[GUARD_DEAD];    /* masses of the revived units at the end */
    double r[GUARD_DEAD];    /* and their temperature ratios */
    double w2;               /* last recorded |w|^2 / n */
} revival;

static revival run_revival(double z_guard)
{
    hchain x;
    hchain_init(&x, GUARD_N, 1, 27);
    for (int i = 0; i < GUARD_DEAD; i++) x.h.k[i] = 0.01, x.h.s2[i] = 0.0;
    sampler_spec *sp = &x.spec.sampler;
    sp->mass_floor = 0.01;
    sp->layer_floor = 0.0;
    sp->kappa = 1e3;
    sp->update_every = 1000000000;
    sp->z_guard = z_guard;
    hchain_start(&x);
    pl_view v = inspect(&x.c);
    for (int i = 0; i < GUARD_DEAD; i++) cr_assert(v.m[i] == 0.01, "dead unit %d: mass %g, expected the floor", i, v.m[i]);
    steps(&x.c, REVIVE_AT);
    v = inspect(&x.c);
    cr_assert_eq(v.n_guard, 0, "the guard fired before the revival (%lld events)", (long long)v.n_guard);
    for (int i = 0; i < GUARD_DEAD; i++) x.h.k[i] = 1.0, x.h.s2[i] = 1.0;
    bz_err e = {0};
    revival out = {0};
    for (int64_t s = REVIVE_AT; s < GUARD_STEPS; s++) {
        int rc = smp_chain_step(&x.c, &e);
        obs_record rec;
        if (!rc) rc = smp_chain_observe(&x.c, false, &rec, &e);
        if (rc) {
            out.failed = s + 1;
            out.rc = rc;
            cr_log_info("z_guard %g: %s", z_guard, e.msg);
            break;
        }
        out.w2 = rec.v[OBS_W2];
    }
    v = inspect(&x.c);
    out.n_guard = v.n_guard;
    for (int i = 0; i < GUARD_DEAD; i++) out.m[i] = v.m[i], out.r[i] = v.A * v.s2v[i] / v.m[i];
    hchain_free(&x);
    return out;
}

Test(pl_control, guard_off_revived_unit_diverges)
{
    revival rv = run_revival(0.0);
    cr_assert(rv.failed > 0, "with z_guard off the revived unit (h omega = 10) should blow the chain up");
    cr_assert_eq(rv.rc, BZ_EDIVERGED, "the failure should be reported as a divergence (rc %d)", rv.rc);
    cr_assert(rv.failed - REVIVE_AT <= 100, "an amplification of ~98 per step overflows float in ~20 steps, took %lld",
              (long long)(rv.failed - REVIVE_AT));
    cr_assert_eq(rv.n_guard, 0);
}

Test(pl_control, guard_on_revived_unit_survives)
{
    revival rv = run_revival(6.0);
    cr_assert_eq(rv.failed, 0, "with z_guard 6 the chain should survive (failed at step %lld, rc %d)", (long long)rv.failed,
                 rv.rc);
    cr_assert(rv.n_guard >= 1, "the guard should have fired");
    cr_assert(isfinite(rv.w2), "w2 %g", rv.w2);
    cr_log_info("guard on: %lld events, masses of the revived units %g %g %g %g, final w2 %g", (long long)rv.n_guard,
                rv.m[0], rv.m[1], rv.m[2], rv.m[3], rv.w2);
    for (int i = 0; i < GUARD_DEAD; i++) {
        double hw = STEP * sqrt(1.0 / rv.m[i]);
        cr_assert(hw < 2.0, "revived unit %d: h omega = %g, still unstable", i, hw);
        cr_assert(rv.r[i] <= 0.1 * (1 + 1e-12), "revived unit %d: r = %g above r_max", i, rv.r[i]);
    }
}

/* ---- the displacement floor (boltzd's addition, smp_pl.c) ---- */

/* Weights of RMS 0.01 and tiny noise (a "trained state"): m(r0) collapses, and the displacement
 * floor puts those masses exactly at T h^2 / (max_disp^2 rms^2), so that the thermal step
 * h sqrt(T/m) is max_disp x the layer's RMS weight; without it they stay collapsed. */
Test(pl_control, displacement_floor_bounds_the_thermal_step)
{
    for (int on = 0; on <= 1; on++) {
        hchain x;
        hchain_init(&x, 1000, 2, 31);
        for (int64_t i = 0; i < 1000; i++) x.h.s2[i] = 1e-10;
        x.spec.sampler.max_disp = on ? 0.2 : 0.0;
        bz_err e = {0};
        cr_assert_eq(smp_chain_create(&x.c, &x.spec, &x.b, 0, &e), 0, "%s", e.msg);
        float w[1000];
        for (int i = 0; i < 1000; i++) w[i] = (i % 2 ? 0.01f : -0.01f);
        x.b.ops->upload(x.b.ctx, x.c.w, w, 1000);
        cr_assert_eq(smp_chain_start(&x.c, &e), 0, "%s", e.msg);
        pl_view v = inspect(&x.c);
        const double rms = (double)0.01f; /* the stored float32 value */
        const double floor_m = TEMP * STEP * STEP / (0.2 * 0.2 * rms * rms);
        for (int64_t i = 0; i < 1000; i++) {
            if (on) {
                cr_assert(fabs(v.m[i] - floor_m) < 1e-9 * floor_m, "m[%lld] = %g, floor %g", (long long)i, v.m[i], floor_m);
                cr_assert(STEP * sqrt(TEMP / v.m[i]) <= 0.2 * rms * (1 + 1e-9));
            } else { /* collapsed: the other floors hold it orders of magnitude lower */
                cr_assert(v.m[i] < 1e-2 * floor_m, "m[%lld] = %g should be far below %g", (long long)i, v.m[i], floor_m);
            }
        }
        if (on) cr_assert_eq(v.n_stab, 1000);
        hchain_free(&x);
    }
}
