/* test_multichain.c: batched chains and replica exchange (core/multichain.c).
 *
 * SAMPLING: a ladder of double wells. U(x, y) = a (x^2 - 1)^2 + b y^2, a = 1, b = 0.5 (c = 0 in
 * synth.h: x and y independent, the marginal of x exactly proportional to exp(-a (x^2-1)^2 / T)),
 * six temperatures 0.1 ... 1 (ratio ~1.6), every chain started at (1, 0), the right-hand well.
 * The barrier is 10 T at the lowest T: by Arrhenius a lone chain there changes well about once
 * per e^10 ~ 2e4 units of time. Each temperature's marginal of x is checked against quadrature
 * of exp(-U/T) (trapezoid rule on [-3, 3], converged to 1e-7): 10 bins of equal probability at
 * that T, each bin's occupation within 5 SE of 1/10. The SE comes from batch means (20 batches:
 * z is Student-t with 19 degrees of freedom; each batch must span > 20 tau_int), not from
 * Sokal's window, because the left/right balance of the whole ladder is a slow collective mode
 * with a small share of a bin's autocorrelation that the window can cut off (pl trial runs: batch
 * SEs of the sign of x up to 1.8 x Sokal's). The same data must exclude the neighbouring
 * temperature's marginal by > 5 SE in some bin, so a configuration left thermalised at its old
 * T after a swap would be caught.
 * - hmc (h 0.15, 10 leapfrog steps), exchange every 5 trajectories, 10 000 rounds. Measured:
 *   pair acceptances 0.74-0.79, 1947 round trips; per T max |z| 1.4-2.9 (sum of z^2 over the
 *   10 bins 5-17), the neighbouring T excluded at 8.5-17 SE.
 * - Barrier crossings at the lowest T, with and without exchange (same steps, counted at the
 *   same block ends, hysteresis: a well is x < -1/2 or x > 1/2): 762 against 1 in 4000 blocks.
 *   The test is one-sided and binomial: were exchange to raise the rate only 10-fold, the run
 *   without it would hold 1/11 of all crossings, 69.4 +- 7.9; it must be 5 SD below that.
 * - pl (h 0.15, gamma 1, mass_floor 20, max_disp 0), exchange every 40 steps, 6000 rounds. The
 *   target has no gradient noise (s_i^2 = 0), so the floors set every mass; the displacement
 *   floor is off since it scales with the RMS of w, which vanishes at this toy's barrier top;
 *   h omega <= 0.15 sqrt(U''/20) keeps OBABO's bias below the SE (trial runs at h = 0.3 gave
 *   sums of z^2 2-4 times too large; at h = 0.1 and 0.15 none).
 *   pl's left/right mode is slower, so the check is split: the folded marginal |x| (10 equal-
 *   probability bins) at every T, and P(x > 0) = 1/2 within 5 batch SE. Measured: 1024 round
 *   trips, max |z| 1.6-2.2, neighbour excluded at 7.6-17 SE, P(x > 0) 0.515-0.530 (<= 2 SE).
 *
 * BATCHED = UNBATCHED: a small spin network (16-7-5-3, 177 weights), T = 0.01, 0.012, 0.014,
 * 200 steps, pl / hmc / sgld. Each chain alone with run_chain (one backend, as an unbatched
 * sweep), then the three as one group with mc_run on two threads: every record (all observables
 * but the timings t_wall and var_cost), every weight sample and the final weights bit for bit.
 *
 * BOOKKEEPING on harmonic wells, exchange rounds without steps:
 * - six hmc / pl / sgld chains with weights of distinct patterns (and so distinct U): after every
 *   one of 2000 rounds replica[] is a permutation and each slot holds the w, w0 and gradient of
 *   its replica; each pair's accept count equals the swaps seen in replica[]; swaps happen only
 *   on pairs of the round's parity, so each pair is tried on half the rounds; the round trips
 *   equal those of an independent tracker of the definition. (2616 of 5000 attempts accepted.)
 * - equal temperatures (set after parsing; the spec refuses them): every attempt is accepted
 *   (acceptance exactly 1), the permutation follows the even/odd pattern exactly, and 80 rounds of
 *   4 chains give 37 round trips (derived in the test).
 * - a known U difference (two chains, T = 1 and 2, U differing by 2 ln(10/3)): from the ordered
 *   state the swap probability is 0.3, from the swapped one 1. Measured 2318 of 7682 (0.3017 +-
 *   0.0052, binomial) and 2318 of 2318; a factor with the temperature difference doubled (0.09)
 *   or halved (0.55) is excluded.
 * - pl: a swap moves s_i^2 and the masses with the configuration, the masses rescaled by T_old /
 *   T_new so that every r_i is unchanged (masses 1000.8 -> 2001.7 and 500.4 -> 250.2, r = 0.01),
 *   and redraws the momenta at each slot's own T (kin_T 0.987 +- 0.045 at T = 1, 1.944 +- 0.089
 *   at T = 2).
 *
 * CHECKPOINTS: the spin network with exchange every 10 steps (pl / hmc / sgld; 20 rounds with
 * swaps in every run). A group run straight to 200 steps against runs (a) stopped at step 100
 * and resumed from the final checkpoint, (b) stopped mid-block (chains at 80, 74, 70), (c)
 * resumed from the periodic checkpoint of step 50, (d) stopped in the first block (chains at 4,
 * 0, 0): the same records (ex_acc, replica and round_trips included) with none repeated, the same
 * final weights bit for bit, the same exchange statistics. A corrupted or truncated group
 * checkpoint, a single chain's checkpoint, one of another spec and one of another group size are
 * refused, the message naming the file and the reason. */
#include <cblas.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "multichain.h"
#include "nn.h"
#include "run.h"
#include "setup.h"
#include "smp_pl.h"
#include "synth.h"
#include "testutil.h"

#define MAX_K 8

/* ======================================================================================== */
/* A ladder of double wells                                                                  */
/* ======================================================================================== */

#define DW_A 1.0   /* barrier height at x = 0 */
#define DW_B 0.5
#define X_MAX 3.0  /* quadrature box: exp(-U/T) < e^-60 beyond it at T <= 1 */

typedef struct ladder {
    int32_t K;
    synth_dwell dw[MAX_K];
    be b[MAX_K];
    bz_spec spec;
    mc_group g;
} ladder;

static const double ladder_T[] = {0.1, 0.16, 0.25, 0.4, 0.63, 1.0};
#define LADDER_K 6

/* The six chains of `method_part` (a sampler's keys besides T, steps and seed) on the double
 * well, exchange every `exchange_every` steps (0: none), all started at (1, 0). */
static ladder *ladder_open(const char *method_part, int64_t steps, int64_t exchange_every)
{
    ladder *L = calloc(1, sizeof *L);
    cr_assert(L);
    L->K = LADDER_K;
    char exchange[64] = "", text[1024];
    if (exchange_every > 0)
        snprintf(exchange, sizeof exchange, ", \"exchange\": {\"every\": %lld}", (long long)exchange_every);
    snprintf(text, sizeof text,
             "{\"sampler\": {%s, \"T\": [%g, %g, %g, %g, %g, %g], \"steps\": %lld, \"seed\": 17}, \"batched\": true%s}",
             method_part, ladder_T[0], ladder_T[1], ladder_T[2], ladder_T[3], ladder_T[4], ladder_T[5],
             (long long)steps, exchange);
    bz_err e;
    cr_assert_eq(spec_parse(text, &L->spec, &e), 0, "%s: %s in %s", e.field, e.msg, text);
    for (int32_t k = 0; k < L->K; k++)
        cr_assert_eq(synth_dwell_backend(&L->b[k], &L->dw[k], DW_A, DW_B, 0.0, 0.0, 100 + (uint64_t)k), 0);
    cr_assert_eq(mc_create(&L->g, &L->spec, L->b, 2, &e), 0, "%s", e.msg);
    const float w0[2] = {1.0f, 0.0f};
    cr_assert_eq(mc_start(&L->g, w0, &e), 0, "%s", e.msg);
    return L;
}

static void ladder_close(ladder *L)
{
    mc_destroy(&L->g);
    for (int32_t k = 0; k < L->K; k++) be_destroy(&L->b[k]);
    free(L);
}

/* x at every slot after each block of `every` steps and the exchange round that ends it (when
 * exchange is on): xs[k * blocks + i]. */
static void ladder_sample(ladder *L, int64_t every, int64_t blocks, double *xs)
{
    bz_err e;
    for (int64_t i = 0; i < blocks; i++) {
        cr_assert_eq(mc_advance(&L->g, (i + 1) * every, NULL, &e), 0, "%s", e.msg);
        if (L->g.exchange_every > 0) cr_assert_eq(mc_exchange(&L->g, &e), 0, "%s", e.msg);
        for (int32_t k = 0; k < L->K; k++) {
            smp_chain *c = &L->g.chains[k];
            float w[2];
            c->b->ops->download(c->b->ctx, w, c->w, 2);
            xs[k * blocks + i] = w[0];
        }
    }
}

/* Changes of well in a series of x: the well is x < -1/2 or x > 1/2; a visit to |x| <= 1/2
 * keeps the last well, so a wobble on the barrier top is no crossing. */
static int64_t crossings(const double *x, int64_t n)
{
    int side = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        int now = x[i] > 0.5 ? 1 : x[i] < -0.5 ? -1 : side;
        if (side != 0 && now != side) count++;
        side = now;
    }
    return count;
}

/* ---- the exact marginal of x, p(x) ∝ exp(-a (x^2 - 1)^2 / T), by quadrature ---- */

typedef struct marginal {
    int32_t n;    /* grid intervals on [-X_MAX, X_MAX] */
    double *cdf;  /* n + 1 values (trapezoid rule), normalised */
} marginal;

static void marginal_make(marginal *m, double T, int32_t n)
{
    m->n = n;
    m->cdf = malloc(sizeof(double) * (size_t)(n + 1));
    cr_assert(m->cdf);
    const double dx = 2 * X_MAX / n;
    double prev = 0, sum = 0;
    for (int32_t i = 0; i <= n; i++) {
        double x = -X_MAX + dx * i, f = exp(-DW_A * (x * x - 1) * (x * x - 1) / T);
        if (i > 0) sum += 0.5 * (prev + f) * dx;
        m->cdf[i] = sum;
        prev = f;
    }
    for (int32_t i = 0; i <= n; i++) m->cdf[i] /= sum;
}

static double marginal_cdf(const marginal *m, double x)
{
    if (x <= -X_MAX) return 0;
    if (x >= X_MAX) return 1;
    double t = (x + X_MAX) / (2 * X_MAX) * m->n;
    int32_t i = (int32_t)t;
    if (i >= m->n) return 1;
    return m->cdf[i] + (t - i) * (m->cdf[i + 1] - m->cdf[i]);
}

static double marginal_quantile(const marginal *m, double q)
{
    double lo = -X_MAX, hi = X_MAX;
    for (int it = 0; it < 100; it++) {
        double mid = 0.5 * (lo + hi);
        if (marginal_cdf(m, mid) < q) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

#define N_BINS 10
#define N_BATCHES 20

/* Bins of x (folded: of |x|): bin b is [edges[b], edges[b+1]), the first open below, the last
 * open above. */
typedef struct bins {
    bool folded;
    double edges[N_BINS];
} bins;

static int bin_of(const bins *B, double x)
{
    if (B->folded) x = fabs(x);
    int b = 0;
    while (b + 1 < N_BINS && x >= B->edges[b + 1]) b++;
    return b;
}

/* Probabilities of the bins under exp(-U/T) on a grid of n intervals. */
static void bin_probs(const bins *B, double T, int32_t n, double *p)
{
    marginal m;
    marginal_make(&m, T, n);
    double prev = B->folded ? 0.5 : 0.0; /* folded: P(|x| < a) = 2 cdf(a) - 1 */
    for (int b = 0; b < N_BINS; b++) {
        double c = b + 1 < N_BINS ? marginal_cdf(&m, B->edges[b + 1]) : 1.0;
        p[b] = (c - prev) * (B->folded ? 2.0 : 1.0);
        prev = c;
    }
    free(m.cdf);
}

/* N_BINS bins of equal probability under exp(-U/T); the quadrature (2e5 intervals) agrees with
 * one on half as many points to 1e-7 in every bin. */
static void equal_bins(bins *B, double T, bool folded)
{
    B->folded = folded;
    marginal m;
    marginal_make(&m, T, 200000);
    B->edges[0] = folded ? 0.0 : -INFINITY;
    for (int b = 1; b < N_BINS; b++)
        B->edges[b] = marginal_quantile(&m, folded ? 0.5 + 0.5 * b / N_BINS : (double)b / N_BINS);
    free(m.cdf);
    double coarse[N_BINS];
    bin_probs(B, T, 100000, coarse);
    for (int b = 0; b < N_BINS; b++)
        cr_assert(fabs(coarse[b] - 1.0 / N_BINS) < 1e-7, "T %g bin %d: quadrature not converged (%.10f)", T, b,
                  coarse[b]);
}

/* Mean and standard error of x[0..n) by batch means over N_BATCHES equal batches. */
static void batch_means(const double *x, int64_t n, double *mean, double *se)
{
    const int64_t len = n / N_BATCHES;
    double sum = 0, sum2 = 0;
    for (int j = 0; j < N_BATCHES; j++) {
        double m = 0;
        for (int64_t i = j * len; i < (j + 1) * len; i++) m += x[i];
        m /= (double)len;
        sum += m;
        sum2 += m * m;
    }
    *mean = sum / N_BATCHES;
    *se = sqrt(fmax(sum2 / N_BATCHES - *mean * *mean, 0.0) / (N_BATCHES - 1));
}

typedef struct bin_check {
    double max_z;        /* largest |fraction - 1/N_BINS| / SE over the bins */
    double chi2;         /* sum of z^2 over the bins (about N_BINS for a good sampler) */
    double max_z_other;  /* the same fractions against the bin probabilities at T_other */
    double max_tau;      /* largest tau_int (Sokal) of a bin's indicator series, in samples */
    int64_t batch_len;   /* samples per batch */
} bin_check;

/* The occupation of the equal-probability bins of T by x[0..n), after a burn-in of n/10. */
static void check_bins(const double *x, int64_t n, double T, double T_other, bool folded, bin_check *out)
{
    bins B;
    double p_other[N_BINS];
    equal_bins(&B, T, folded);
    bin_probs(&B, T_other, 200000, p_other);
    const int64_t burn = n / 10, m = n - burn;
    double *ind = malloc(sizeof(double) * (size_t)m);
    cr_assert(ind);
    *out = (bin_check){0, 0, 0, 0, m / N_BATCHES};
    for (int b = 0; b < N_BINS; b++) {
        for (int64_t i = 0; i < m; i++) ind[i] = bin_of(&B, x[burn + i]) == b;
        double mean, se;
        batch_means(ind, m, &mean, &se);
        cr_assert(se > 0, "T %g bin %d: the same occupation in every batch", T, b);
        an_summary s;
        an_summarize(ind, m, 0.0, 5.0, &s);
        double z = (mean - 1.0 / N_BINS) / se, zo = (mean - p_other[b]) / se;
        out->max_z = fmax(out->max_z, fabs(z));
        out->chi2 += z * z;
        out->max_z_other = fmax(out->max_z_other, fabs(zo));
        out->max_tau = fmax(out->max_tau, s.tau_int);
    }
    free(ind);
}

/* Every temperature of the ladder against its quadrature (see the top of the file). */
static void check_ladder(const char *label, const double *xs, int64_t blocks, bool folded)
{
    for (int32_t k = 0; k < LADDER_K; k++) {
        bin_check c;
        double other = k + 1 < LADDER_K ? ladder_T[k + 1] : ladder_T[k - 1];
        check_bins(xs + k * blocks, blocks, ladder_T[k], other, folded, &c);
        cr_log_info("%s T %.2f: max |z| %.2f, sum z^2 %.1f over %d bins; T %.2f excluded at %.1f SE; tau_int %.1f, "
                    "batch %lld",
                    label, ladder_T[k], c.max_z, c.chi2, N_BINS, other, c.max_z_other, c.max_tau,
                    (long long)c.batch_len);
        cr_assert(c.batch_len > 20 * c.max_tau, "%s T %g: batches of %lld samples, tau_int %.1f", label, ladder_T[k],
                  (long long)c.batch_len, c.max_tau);
        cr_assert(c.max_z < 5, "%s T %g: a bin is %.2f SE off the quadrature", label, ladder_T[k], c.max_z);
        cr_assert(c.max_z_other > 5, "%s T %g: the data cannot tell T from %g (%.2f SE)", label, ladder_T[k], other,
                  c.max_z_other);
    }
}

Test(multichain, hmc_ladder_matches_boltzmann_at_every_T)
{
    enum { EVERY = 5, BLOCKS = 10000 };
    double *xs = malloc(sizeof(double) * LADDER_K * BLOCKS);
    ladder *L = ladder_open("\"method\": \"hmc\", \"h\": 0.15, \"leapfrog\": 10", (int64_t)EVERY * BLOCKS, EVERY);
    ladder_sample(L, EVERY, BLOCKS, xs);
    for (int32_t k = 0; k + 1 < LADDER_K; k++) {
        double acc = mc_pair_acceptance(&L->g, k);
        cr_log_info("hmc pair %d-%d: acceptance %.3f", k, k + 1, acc);
        cr_assert(acc > 0.1, "pair %d accepts %.3f: the ladder is too sparse to test exchange", k, acc);
    }
    cr_log_info("hmc: %lld round trips", (long long)L->g.round_trips);
    cr_assert(L->g.round_trips > 100, "only %lld round trips", (long long)L->g.round_trips);
    ladder_close(L);
    check_ladder("hmc", xs, BLOCKS, false);
    free(xs);
}

Test(multichain, exchange_multiplies_barrier_crossings_at_low_T)
{
    enum { EVERY = 5, BLOCKS = 4000 };
    const char *hmc = "\"method\": \"hmc\", \"h\": 0.15, \"leapfrog\": 10";
    double *with = malloc(sizeof(double) * LADDER_K * BLOCKS), *without = malloc(sizeof(double) * LADDER_K * BLOCKS);
    ladder *L = ladder_open(hmc, (int64_t)EVERY * BLOCKS, EVERY);
    ladder_sample(L, EVERY, BLOCKS, with);
    ladder_close(L);
    L = ladder_open(hmc, (int64_t)EVERY * BLOCKS, 0);
    ladder_sample(L, EVERY, BLOCKS, without);
    ladder_close(L);
    for (int32_t k = 0; k < LADDER_K; k++)
        cr_log_info("T %.2f: %lld crossings with exchange, %lld without, in %d blocks of %d trajectories", ladder_T[k],
                    (long long)crossings(with + k * BLOCKS, BLOCKS), (long long)crossings(without + k * BLOCKS, BLOCKS),
                    BLOCKS, EVERY);
    /* One-sided binomial test at the lowest T: if exchange multiplied the crossing rate by only
     * R = 10, the unexchanged run would hold a share 1/(1+R) of all crossings. */
    const double R = 10;
    const double c_with = (double)crossings(with, BLOCKS), c_without = (double)crossings(without, BLOCKS);
    const double total = c_with + c_without, share = 1 / (1 + R);
    const double expect = total * share, sd = sqrt(total * share * (1 - share));
    cr_log_info("T %.2f: %.0f of %.0f crossings without exchange; a rate ratio of %.0f would give %.1f +- %.1f",
                ladder_T[0], c_without, total, R, expect, sd);
    cr_assert(c_without < expect - 5 * sd, "%.0f crossings without exchange against %.0f with: ratio not above %.0f",
              c_without, c_with, R);
    free(with);
    free(without);
}

Test(multichain, pl_ladder_matches_boltzmann_at_every_T)
{
    enum { EVERY = 40, BLOCKS = 6000 };
    double *xs = malloc(sizeof(double) * LADDER_K * BLOCKS);
    ladder *L = ladder_open("\"method\": \"pl\", \"h\": 0.15, \"gamma\": 1, \"mass_floor\": 20, \"max_disp\": 0",
                            (int64_t)EVERY * BLOCKS, EVERY);
    ladder_sample(L, EVERY, BLOCKS, xs);
    for (int32_t k = 0; k + 1 < LADDER_K; k++)
        cr_log_info("pl pair %d-%d: acceptance %.3f", k, k + 1, mc_pair_acceptance(&L->g, k));
    cr_log_info("pl: %lld round trips", (long long)L->g.round_trips);
    for (int32_t k = 0; k < LADDER_K; k++) {
        /* Every mass here is held up by the floor (no gradient noise: s_i^2 = 0). After thousands of
         * swaps it must still be the floor, not the floor ratcheted up by T_high / T_low per trip. */
        pl_view v;
        cr_assert_eq(pl_inspect(&L->g.chains[k], &v), 0);
        cr_log_info("pl T %.2f: masses %.1f (x) %.1f (y)", ladder_T[k], v.m[0], v.m[1]);
        for (int i = 0; i < 2; i++)
            cr_assert(fabs(v.m[i] - 20.0) < 1e-9 * 20.0, "T %.2f: mass %d is %.6g after the swaps, the floor is 20",
                      ladder_T[k], i, v.m[i]);
    }
    cr_assert(L->g.round_trips > 100, "only %lld round trips", (long long)L->g.round_trips);
    ladder_close(L);
    check_ladder("pl |x|", xs, BLOCKS, true);
    const int64_t burn = BLOCKS / 10, m = BLOCKS - burn;
    double *right = malloc(sizeof(double) * (size_t)m);
    for (int32_t k = 0; k < LADDER_K; k++) {
        for (int64_t i = 0; i < m; i++) right[i] = xs[k * BLOCKS + burn + i] > 0;
        double mean, se;
        batch_means(right, m, &mean, &se);
        cr_log_info("pl T %.2f: P(x > 0) = %.4f +- %.4f", ladder_T[k], mean, se);
        cr_assert(fabs(mean - 0.5) < 5 * se, "pl T %g: P(x > 0) = %.4f +- %.4f, not 1/2", ladder_T[k], mean, se);
    }
    free(right);
    free(xs);
}

/* ======================================================================================== */
/* Exchange bookkeeping on harmonic wells                                                    */
/* ======================================================================================== */

typedef struct hgroup {
    int32_t K;
    int64_t n;
    synth_harmonic h[MAX_K];
    be b[MAX_K];
    bz_spec spec;
    mc_group g;
} hgroup;

/* K chains of spec_text on harmonic wells (n components, spring 1, gradient noise s2[k] for
 * chain k's backend), each started from its own weights w[k * n ..]. T (optional) replaces
 * the spec's temperatures after parsing (the spec itself refuses equal ones). */
static hgroup *hgroup_open(const char *spec_text, const double *T, int64_t n, const double *s2, const float *w)
{
    hgroup *H = calloc(1, sizeof *H);
    cr_assert(H);
    bz_err e;
    cr_assert_eq(spec_parse(spec_text, &H->spec, &e), 0, "%s: %s", e.field, e.msg);
    H->K = H->spec.sampler.n_T;
    H->n = n;
    for (int32_t k = 0; T && k < H->K; k++) H->spec.sampler.T[k] = T[k];
    for (int32_t k = 0; k < H->K; k++) {
        const double noise = s2 ? s2[k] : 0.1;
        cr_assert_eq(synth_harmonic_backend(&H->b[k], &H->h[k], n, 1.0, noise, 1000, 16, 1, 50 + (uint64_t)k), 0);
    }
    cr_assert_eq(mc_create(&H->g, &H->spec, H->b, 1, &e), 0, "%s", e.msg);
    for (int32_t k = 0; k < H->K; k++) {
        smp_chain *c = &H->g.chains[k];
        c->b->ops->upload(c->b->ctx, c->w, w + k * n, n);
        cr_assert_eq(smp_chain_start(c, &e), 0, "%s", e.msg);
    }
    return H;
}

static void hgroup_close(hgroup *H)
{
    mc_destroy(&H->g);
    for (int32_t k = 0; k < H->K; k++) {
        be_destroy(&H->b[k]);
        synth_harmonic_free(&H->h[k]);
    }
    free(H);
}

static void download(smp_chain *c, const float *buf, float *host) { c->b->ops->download(c->b->ctx, host, buf, c->n); }

/* Round trips by their definition, kept apart from multichain.c: a replica that has been at the
 * lowest T, then at the highest, and is back at the lowest. */
typedef struct trip_tracker {
    int32_t K;
    int8_t state[MAX_K];  /* per replica: 0 never at the lowest T, 1 left it, 2 reached the highest since */
    int64_t trips;
} trip_tracker;

static void tracker_see(trip_tracker *t, const int32_t *replica)
{
    int32_t lo = replica[0], hi = replica[t->K - 1];
    if (t->state[lo] == 2) t->trips++;
    t->state[lo] = 1;
    if (t->state[hi] == 1) t->state[hi] = 2;
}

static void tracker_init(trip_tracker *t, int32_t K, const int32_t *replica)
{
    memset(t, 0, sizeof *t);
    t->K = K;
    tracker_see(t, replica);
}

/* Weights of replica k: a pattern of its own (distinct U at each replica). */
static float tag(int32_t k, int64_t i) { return (float)(0.3 * (k + 1) * (1.0 + 0.01 * (double)i)); }

static void check_permutation_of_configurations(const char *method_part)
{
    enum { K = 6, N = 8, ROUNDS = 2000 };
    float w[K * N], g0[K][N];
    for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) w[k * N + i] = tag(k, i);
    char text[512];
    snprintf(text, sizeof text,
             "{\"sampler\": {%s, \"T\": [0.5, 0.7, 1, 1.4, 2, 2.8], \"steps\": 10}, \"batched\": true,"
             " \"exchange\": {\"every\": 1}}",
             method_part);
    hgroup *H = hgroup_open(text, NULL, N, NULL, w);
    mc_group *g = &H->g;
    for (int k = 0; k < K; k++) download(&g->chains[k], g->chains[k].g, g0[k]);
    trip_tracker tt;
    tracker_init(&tt, K, g->replica);
    int64_t swaps[K] = {0};
    bz_err e;
    for (int r = 0; r < ROUNDS; r++) {
        int32_t before[K];
        memcpy(before, g->replica, sizeof before);
        cr_assert_eq(mc_exchange(g, &e), 0, "%s", e.msg);
        for (int k = 0; k + 1 < K; k++)
            if (g->replica[k] == before[k + 1] && g->replica[k + 1] == before[k]) {
                cr_assert_eq(k % 2, r % 2, "round %d swapped pair %d, whose parity is not the round's", r, k);
                swaps[k]++;
            }
        tracker_see(&tt, g->replica);
        cr_assert_eq(g->round_trips, tt.trips, "round %d: %lld round trips counted, %lld by the definition", r,
                     (long long)g->round_trips, (long long)tt.trips);
        bool seen[K] = {false};
        for (int k = 0; k < K; k++) {
            int32_t id = g->replica[k];
            cr_assert(id >= 0 && id < K && !seen[id], "round %d: replica[] is not a permutation", r);
            seen[id] = true;
            float now[N];
            smp_chain *c = &g->chains[k];
            download(c, c->w, now);
            cr_assert_eq(memcmp(now, w + id * N, sizeof now), 0, "round %d: slot %d does not hold replica %d's weights",
                         r, k, (int)id);
            download(c, c->w0, now);
            cr_assert_eq(memcmp(now, w + id * N, sizeof now), 0, "round %d: slot %d: w0 did not follow replica %d", r,
                         k, (int)id);
            download(c, c->g, now);
            cr_assert_eq(memcmp(now, g0[id], sizeof now), 0,
                         "round %d: slot %d: the gradient did not follow replica %d", r, k, (int)id);
        }
    }
    int64_t accepted = 0;
    for (int k = 0; k + 1 < K; k++) {
        /* pair k on the rounds of its parity: half of an even number of rounds */
        cr_assert_eq(g->pair[k].attempts, ROUNDS / 2, "pair %d: %lld attempts", k, (long long)g->pair[k].attempts);
        cr_assert_eq(g->pair[k].accepts, swaps[k], "pair %d: %lld accepts counted, %lld swaps seen", k,
                     (long long)g->pair[k].accepts, (long long)swaps[k]);
        accepted += swaps[k];
    }
    cr_log_info("%s: %lld of %lld attempts accepted, %lld round trips", method_part, (long long)accepted,
                (long long)(ROUNDS / 2 * (K - 1)), (long long)g->round_trips);
    /* Both outcomes must occur, or the test proves nothing about either. */
    cr_assert(accepted > 100 && accepted < ROUNDS / 2 * (K - 1) - 100, "%lld accepted", (long long)accepted);
    cr_assert(g->round_trips > 0);
    hgroup_close(H);
}

Test(multichain, swaps_permute_configurations_hmc)
{
    check_permutation_of_configurations("\"method\": \"hmc\"");
}
Test(multichain, swaps_permute_configurations_pl)
{
    check_permutation_of_configurations("\"method\": \"pl\", \"batch\": 16");
}
Test(multichain, swaps_permute_configurations_sgld)
{
    check_permutation_of_configurations("\"method\": \"sgld\", \"batch\": 16");
}

/* With every T equal the exchange factor is exp(0) = 1: every attempt accepts, and the replicas
 * move deterministically. With K = 4, even rounds swap (0,1) and (2,3), odd rounds (1,2): each
 * replica runs 0 -> 3 -> 0 with period 8 rounds. Round trips end (1-based round numbers) at
 * 7, 15, ... for replica 0 (10 by round 80), at 9, 17, ... for replica 1 (9), at 13, 21, ... for
 * replica 2 (9; its first visit to the top, round 1, came before it had been at the bottom) and
 * at 11, 19, ... for replica 3 (9): 37 in all. */
Test(multichain, equal_temperatures_accept_every_swap)
{
    enum { K = 4, N = 4, ROUNDS = 80 };
    float w[K * N];
    for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) w[k * N + i] = tag(k, i);
    const double T[K] = {1, 1, 1, 1};
    hgroup *H = hgroup_open("{\"sampler\": {\"method\": \"hmc\", \"T\": [1, 2, 3, 4], \"steps\": 10},"
                            " \"batched\": true, \"exchange\": {\"every\": 1}}",
                            T, N, NULL, w);
    mc_group *g = &H->g;
    trip_tracker tt;
    tracker_init(&tt, K, g->replica);
    int32_t expect[K] = {0, 1, 2, 3};
    bz_err e;
    for (int r = 0; r < ROUNDS; r++) {
        cr_assert_eq(mc_exchange(g, &e), 0, "%s", e.msg);
        for (int k = r % 2; k + 1 < K; k += 2) {
            int32_t t = expect[k];
            expect[k] = expect[k + 1];
            expect[k + 1] = t;
        }
        cr_assert_eq(memcmp(g->replica, expect, sizeof expect), 0, "round %d: replica [%d %d %d %d]", r, g->replica[0],
                     g->replica[1], g->replica[2], g->replica[3]);
        tracker_see(&tt, g->replica);
    }
    for (int k = 0; k + 1 < K; k++) {
        cr_assert_eq(g->pair[k].attempts, ROUNDS / 2, "pair %d: %lld attempts", k, (long long)g->pair[k].attempts);
        cr_assert_eq(mc_pair_acceptance(g, k), 1.0, "pair %d: acceptance %.6f", k, mc_pair_acceptance(g, k));
    }
    cr_assert(isnan(mc_pair_acceptance(g, K - 1)), "the highest T has no pair above it");
    cr_assert_eq(tt.trips, 37);
    cr_assert_eq(g->round_trips, 37, "%lld round trips", (long long)g->round_trips);
    hgroup_close(H);
}

/* Two chains, T = 1 and 2, holding configurations X (U = 0.5) and Y (U = 0.5 + 2 ln(10/3)).
 * Ordered (X at T = 1): the swap factor is exp((1 - 1/2)(U_X - U_Y)) = 0.3. Swapped: the factor
 * is above 1, the swap back is certain. Only even rounds have a pair with K = 2. */
Test(multichain, acceptance_matches_metropolis_factor)
{
    enum { ROUNDS = 20000 };
    const float x = 1.0f, y = (float)sqrt(1.0 + 4.0 * log(10.0 / 3.0));
    const float w[2] = {x, y};
    hgroup *H = hgroup_open("{\"sampler\": {\"method\": \"hmc\", \"T\": [1, 2], \"steps\": 10}, \"batched\": true,"
                            " \"exchange\": {\"every\": 1}}",
                            NULL, 1, NULL, w);
    mc_group *g = &H->g;
    pot_obs ox, oy;
    H->b[0].ops->observe(H->b[0].ctx, g->chains[0].w, false, &ox);
    H->b[1].ops->observe(H->b[1].ctx, g->chains[1].w, false, &oy);
    const double dbeta = 1.0 / 1.0 - 1.0 / 2.0, p = exp(dbeta * (ox.U - oy.U));
    int64_t tries_ordered = 0, acc_ordered = 0, tries_swapped = 0, acc_swapped = 0;
    bz_err e;
    for (int r = 0; r < ROUNDS; r++) {
        const int32_t at_low = g->replica[0];
        cr_assert_eq(mc_exchange(g, &e), 0, "%s", e.msg);
        if (r % 2) {
            cr_assert_eq(g->replica[0], at_low, "odd round %d swapped a pair that does not exist", r);
            continue;
        }
        const bool moved = g->replica[0] != at_low;
        if (at_low == 0) tries_ordered++, acc_ordered += moved;
        else tries_swapped++, acc_swapped += moved;
    }
    const double rate = (double)acc_ordered / (double)tries_ordered, se = sqrt(p * (1 - p) / (double)tries_ordered);
    const double p_double = exp(2 * dbeta * (ox.U - oy.U)), p_half = exp(0.5 * dbeta * (ox.U - oy.U));
    cr_log_info("ordered: %lld of %lld swaps accepted, %.4f +- %.4f, Metropolis %.4f (doubled %.4f, halved %.4f); "
                "swapped: %lld of %lld; counters %lld / %lld",
                (long long)acc_ordered, (long long)tries_ordered, rate, se, p, p_double, p_half, (long long)acc_swapped,
                (long long)tries_swapped, (long long)g->pair[0].accepts, (long long)g->pair[0].attempts);
    cr_assert(fabs(p - 0.3) < 1e-6, "the configurations give p = %.8f", p);
    cr_assert(fabs(rate - p) < 5 * se, "acceptance %.4f +- %.4f, expected %.4f", rate, se, p);
    cr_assert(fabs(rate - p_double) > 5 * se && fabs(rate - p_half) > 5 * se);
    cr_assert_eq(acc_swapped, tries_swapped, "a swap back downhill in U was refused");
    cr_assert_eq(g->pair[0].attempts, ROUNDS / 2);
    cr_assert_eq(g->pair[0].accepts, acc_ordered + acc_swapped);
    cr_assert_eq(mc_pair_acceptance(g, 0), (double)(acc_ordered + acc_swapped) / (ROUNDS / 2));
    hgroup_close(H);
}

/* pl_swap: the configuration at T = 1 (w = 1, U = 500) is above the one at T = 2 (w = 1/2,
 * U = 125), so the swap is certain. Each backend has its own gradient noise (s^2 = 1 and 4), so
 * each chain's variance estimate and masses are its own; after the swap slot 0 must hold slot
 * 1's s^2 and masses x T_old / T_new = 2 (r_i unchanged), slot 1 slot 0's masses x 1/2, and the
 * momenta must be drawn at each slot's own T with the new masses: kin_T = <p^2/m> has mean T
 * and standard error T sqrt(2/n). Floors are kept out of the way (layer floor 0, tiny mass
 * floor, large kappa, no displacement floor) so the masses are those of the ratio control. */
Test(multichain, pl_swap_moves_masses_and_keeps_ratios)
{
    enum { N = 1000 };
    static float w[2 * N];
    for (int i = 0; i < N; i++) w[i] = 1.0f, w[N + i] = 0.5f;
    const double s2[2] = {1.0, 4.0};
    hgroup *H = hgroup_open("{\"sampler\": {\"method\": \"pl\", \"T\": [1, 2], \"steps\": 10, \"batch\": 16,"
                            " \"layer_floor\": 0, \"mass_floor\": 1e-9, \"kappa\": 100, \"max_disp\": 0},"
                            " \"batched\": true, \"exchange\": {\"every\": 1}}",
                            NULL, N, s2, w);
    mc_group *g = &H->g;
    static double m_before[2][N], s2_before[2][N], r_before[2][N];
    for (int k = 0; k < 2; k++) {
        pl_view v;
        cr_assert_eq(pl_inspect(&g->chains[k], &v), 0);
        for (int i = 0; i < N; i++) {
            m_before[k][i] = v.m[i];
            s2_before[k][i] = v.s2v[i];
            r_before[k][i] = v.A * v.s2v[i] / v.m[i];
        }
    }
    cr_assert(fabs(s2_before[1][0] / s2_before[0][0] - 4.0) < 1e-9, "variance estimates %g and %g", s2_before[0][0],
              s2_before[1][0]);
    bz_err e;
    cr_assert_eq(mc_exchange(g, &e), 0, "%s", e.msg);
    cr_assert_eq(g->replica[0], 1, "the certain swap did not happen");
    const double factor[2] = {2.0 / 1.0, 1.0 / 2.0}; /* T_old / T_new at slot 0 and slot 1 */
    for (int k = 0; k < 2; k++) {
        const int from = 1 - k;
        pl_view v;
        cr_assert_eq(pl_inspect(&g->chains[k], &v), 0);
        for (int i = 0; i < N; i++) {
            cr_assert_eq(v.s2v[i], s2_before[from][i], "slot %d component %d: s^2 did not follow the configuration",
                         k, i);
            cr_assert_eq(v.m[i], m_before[from][i] * factor[k], "slot %d component %d: mass %g, expected %g x %g", k, i,
                         v.m[i], m_before[from][i], factor[k]);
            double r = v.A * v.s2v[i] / v.m[i];
            cr_assert(fabs(r - r_before[from][i]) < 1e-12 * r_before[from][i],
                      "slot %d component %d: r %.15g became %.15g", k, i, r_before[from][i], r);
        }
        obs_record rec;
        cr_assert_eq(smp_chain_observe(&g->chains[k], false, &rec, &e), 0, "%s", e.msg);
        const double T = g->chains[k].T, se = T * sqrt(2.0 / N);
        cr_log_info("slot %d (T %g): masses %g -> %g, r %.4f, kin_T %.4f +- %.4f", k, T, m_before[from][0], v.m[0],
                    r_before[from][0], rec.v[OBS_KIN_T], se);
        cr_assert(fabs(rec.v[OBS_KIN_T] - T) < 5 * se, "slot %d: kin_T %.4f, T %g", k, rec.v[OBS_KIN_T], T);
        cr_assert(fabs(rec.v[OBS_KIN_T] - g->chains[from].T) > 5 * se, "momenta still at the old T");
    }
    hgroup_close(H);
}

/* ======================================================================================== */
/* A small spin network: batched = unbatched, checkpoints                                    */
/* ======================================================================================== */

#define NET_K 3
#define MAX_REC 64
#define MAX_SAMPLES 8

typedef struct net_job {
    bz_spec spec;   /* "batched": true (and exchange when asked) */
    bz_spec plain;  /* the same job as an unbatched sweep */
    ds_data d;
    nn_arch a;
    be b[NET_K];
    float *w_init;
} net_job;

static void net_open(net_job *j, sampler_method m, int64_t exchange_every)
{
    const char *extra = m == SM_PL ? ", \"batch\": 16, \"update_every\": 50, \"p_reinit\": 0.3" :
                        m == SM_SGLD ? ", \"batch\": 16" : "";
    char exchange[64] = "", text[2048], plain[2048];
    if (exchange_every > 0)
        snprintf(exchange, sizeof exchange, ", \"exchange\": {\"every\": %lld}", (long long)exchange_every);
    const char *fmt =
        "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 16, \"classes\": 3, \"train\": 120, \"test\": 60, \"seed\": 4},"
        " \"model\": {\"hidden\": [7, 5], \"lambda\": 0.01},"
        " \"sampler\": {\"method\": \"%s\", \"T\": [0.01, 0.012, 0.014], \"steps\": 200 %s},"
        " \"record\": {\"every\": 20}, \"samples\": {\"every\": 50}, \"checkpoint\": {\"every\": 50},"
        " \"diagnostics\": {\"noise_every\": %d, \"batches\": 8}%s}";
    const int noise = m == SM_PL ? 40 : 0;
    snprintf(plain, sizeof plain, fmt, spec_method_name(m), extra, noise, "");
    char tail[128];
    snprintf(tail, sizeof tail, ", \"batched\": true%s", exchange);
    snprintf(text, sizeof text, fmt, spec_method_name(m), extra, noise, tail);
    bz_err e;
    cr_assert_eq(spec_parse(text, &j->spec, &e), 0, "%s: %s", e.field, e.msg);
    cr_assert_eq(spec_parse(plain, &j->plain, &e), 0, "%s: %s", e.field, e.msg);
    cr_assert(j->spec.batched && !j->plain.batched);
    cr_assert_eq(setup_load(&j->spec, &j->d, &j->a, &e), 0, "%s", e.msg);
    for (int k = 0; k < NET_K; k++)
        cr_assert_eq(be_cpu_network(&j->b[k], &j->a, &j->d, j->spec.model.lambda, 16, &e), 0, "%s", e.msg);
    j->w_init = malloc(sizeof(float) * (size_t)j->a.n);
    cr_assert_eq(setup_initial_weights(&j->spec, &j->a, j->w_init, &e), 0, "%s", e.msg);
    openblas_set_num_threads(1); /* as boltzd run does for a batched job on the CPU */
}

static void net_close(net_job *j)
{
    for (int k = 0; k < NET_K; k++) be_destroy(&j->b[k]);
    ds_free(&j->d);
    free(j->w_init);
}

/* What a run produced, per chain; and when to stop it. */
typedef struct chain_log {
    obs_record rec[MAX_REC];
    int n_rec;
    float *sample[MAX_SAMPLES];
    int64_t sample_step[MAX_SAMPLES];
    int n_samples;
} chain_log;

typedef struct run_log {
    chain_log ch[NET_K];
    int32_t K;
    const smp_chain *single;    /* run_chain: the chain (records go to ch[single->index]) */
    int64_t stop_after_record;  /* should_stop once every chain's record of this step is out (-1: never) */
    atomic_bool stop;
    int64_t stop_after_calls;   /* should_stop after so many polls (-1: never) */
    atomic_llong calls;
    char final_path[512];       /* the final checkpoint goes here */
    char periodic_path[512];    /* the periodic checkpoint of step periodic_step goes here */
    int64_t periodic_step;
    uint64_t hash;
} run_log;

static run_log *log_new(const char *dir, const char *name)
{
    run_log *L = calloc(1, sizeof *L);
    cr_assert(L);
    L->K = NET_K;
    L->stop_after_record = L->stop_after_calls = L->periodic_step = -1;
    atomic_init(&L->stop, false);
    atomic_init(&L->calls, 0);
    snprintf(L->final_path, sizeof L->final_path, "%s/%s-final.bzc", dir, name);
    snprintf(L->periodic_path, sizeof L->periodic_path, "%s/%s-periodic.bzc", dir, name);
    L->hash = 42;
    return L;
}

static void log_free(run_log *L)
{
    for (int k = 0; k < NET_K; k++)
        for (int s = 0; s < L->ch[k].n_samples; s++) free(L->ch[k].sample[s]);
    free(L);
}

static int add_record(run_log *L, int32_t chain, const obs_record *r)
{
    chain_log *c = &L->ch[chain];
    cr_assert(c->n_rec < MAX_REC);
    c->rec[c->n_rec++] = *r;
    if (L->stop_after_record >= 0 && chain == L->K - 1 && r->step >= L->stop_after_record) atomic_store(&L->stop, true);
    return 0;
}

static int add_sample(run_log *L, int32_t chain, int64_t step, const float *w, int64_t n)
{
    chain_log *c = &L->ch[chain];
    cr_assert(c->n_samples < MAX_SAMPLES);
    c->sample[c->n_samples] = malloc(sizeof(float) * (size_t)n);
    memcpy(c->sample[c->n_samples], w, sizeof(float) * (size_t)n);
    c->sample_step[c->n_samples++] = step;
    return 0;
}

static bool log_should_stop(void *ctx)
{
    run_log *L = ctx;
    long long calls = atomic_fetch_add(&L->calls, 1) + 1;
    return atomic_load(&L->stop) || (L->stop_after_calls >= 0 && calls > L->stop_after_calls);
}

/* run_sink entries (one chain) */
static int one_record(void *ctx, const obs_record *r, bz_err *e)
{
    (void)e;
    run_log *L = ctx;
    return add_record(L, L->single->index, r);
}
static int one_sample(void *ctx, int64_t step, double t_wall, const float *w, int64_t n, bz_err *e)
{
    (void)t_wall, (void)e;
    run_log *L = ctx;
    return add_sample(L, L->single->index, step, w, n);
}

/* mc_sink entries (a group) */
static int group_record(void *ctx, int32_t chain, const obs_record *r, bz_err *e)
{
    (void)e;
    return add_record(ctx, chain, r);
}
static int group_sample(void *ctx, int32_t chain, int64_t step, double t_wall, const float *w, int64_t n, bz_err *e)
{
    (void)t_wall, (void)e;
    return add_sample(ctx, chain, step, w, n);
}
static int group_checkpoint(void *ctx, mc_group *g, bool final, bz_err *e)
{
    run_log *L = ctx;
    if (final) return mc_save(g, L->final_path, L->hash, e);
    if (mc_step(g) == L->periodic_step) return mc_save(g, L->periodic_path, L->hash, e);
    return 0;
}

static mc_sink group_sink(run_log *L)
{
    return (mc_sink){L, group_record, group_sample, group_checkpoint, log_should_stop, NULL};
}

/* Records equal except the wall-clock fields (t_wall, var_cost). */
static void assert_same_record(const obs_record *a, const obs_record *b, const char *what)
{
    cr_assert_eq(a->step, b->step, "%s: step %lld vs %lld", what, (long long)a->step, (long long)b->step);
    cr_assert_eq(a->chain, b->chain, "%s: chain", what);
    cr_assert_eq(a->T, b->T, "%s: T", what);
    for (int i = 0; i < OBS_COUNT; i++) {
        if (i == OBS_VAR_COST) continue;
        int same = (isnan(a->v[i]) && isnan(b->v[i])) || a->v[i] == b->v[i];
        cr_assert(same, "%s: chain %d step %lld %s: %.17g vs %.17g", what, a->chain, (long long)a->step, obs_names[i],
                  a->v[i], b->v[i]);
    }
}

/* Group g's chain k weights against ref (n floats). */
static void assert_weights(mc_group *g, int32_t k, const float *ref, const char *what)
{
    smp_chain *c = &g->chains[k];
    float *w = malloc(sizeof(float) * (size_t)c->n);
    download(c, c->w, w);
    cr_assert_eq(memcmp(w, ref, sizeof(float) * (size_t)c->n), 0, "%s: chain %d's final weights differ", what, k);
    free(w);
}

/* ---- batched = unbatched ---- */

/* How a group steps its chains: threads (one chain per thread), or lockstep around one gradient
 * call per step, through the first handle's group gradient or per chain. */
enum { MODE_THREADS, MODE_LOCKSTEP_GROUPED, MODE_LOCKSTEP_PER_CHAIN, N_GROUP_MODES };
static const char *const group_mode_name[N_GROUP_MODES] = {"threads vs alone", "lockstep (group gradient) vs alone",
                                                           "lockstep (per-chain gradients) vs alone"};

/* Every chain of group g (run into `batched`) against the same chain run alone. */
static void compare_with_alone(mc_group *g, const net_job *j, const run_log *alone, const run_log *batched,
                               float *const *w_alone, const char *mode)
{
    for (int32_t k = 0; k < NET_K; k++) {
        const chain_log *a = &alone->ch[k], *b = &batched->ch[k];
        cr_assert_eq(a->n_rec, 11, "chain %d: %d records alone", k, a->n_rec);
        cr_assert_eq(b->n_rec, a->n_rec, "chain %d: %d records batched, %d alone", k, b->n_rec, a->n_rec);
        for (int i = 0; i < a->n_rec; i++) assert_same_record(&a->rec[i], &b->rec[i], mode);
        cr_assert_eq(a->n_samples, 5);
        cr_assert_eq(b->n_samples, a->n_samples, "chain %d: %d samples batched, %d alone", k, b->n_samples,
                     a->n_samples);
        for (int s = 0; s < a->n_samples; s++) {
            cr_assert_eq(a->sample_step[s], b->sample_step[s]);
            cr_assert_eq(memcmp(a->sample[s], b->sample[s], sizeof(float) * (size_t)j->a.n), 0,
                         "%s: chain %d: the sample at step %lld differs", mode, k, (long long)a->sample_step[s]);
        }
        assert_weights(g, k, w_alone[k], mode);
        /* the chains differ from each other (each has its own T and streams) */
        if (k > 0) cr_assert_neq(a->rec[a->n_rec - 1].v[OBS_U], alone->ch[0].rec[a->n_rec - 1].v[OBS_U]);
        /* without exchange the exchange observables stay empty */
        cr_assert(isnan(b->rec[b->n_rec - 1].v[OBS_REPLICA]) && isnan(b->rec[b->n_rec - 1].v[OBS_EX_ACC]));
    }
}


static void check_batched_equals_unbatched(sampler_method m)
{
    net_job j;
    net_open(&j, m, 0);
    bz_err e;
    /* the unbatched sweep: chain after chain on one backend, as `boltzd run` does */
    run_log *alone = log_new("/tmp", "unused");
    float *w_alone[NET_K];
    for (int32_t k = 0; k < NET_K; k++) {
        smp_chain c;
        cr_assert_eq(smp_chain_create(&c, &j.plain, &j.b[0], k, &e), 0, "%s", e.msg);
        j.b[0].ops->upload(j.b[0].ctx, c.w, j.w_init, j.a.n);
        cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
        alone->single = &c;
        run_sink sink = {alone, one_record, one_sample, NULL, NULL, NULL};
        cr_assert_eq(run_chain(&c, &sink, &e), 0, "%s", e.msg);
        w_alone[k] = malloc(sizeof(float) * (size_t)j.a.n);
        download(&c, c.w, w_alone[k]);
        smp_chain_destroy(&c);
    }
    for (int mode = 0; mode < N_GROUP_MODES; mode++) {
        if (mode != MODE_THREADS && m == SM_HMC) {
            mc_group *h = calloc(1, sizeof *h);
            cr_assert_eq(mc_create(h, &j.spec, j.b, 1, &e), 0, "%s", e.msg);
            cr_assert_eq(mc_set_lockstep(h, true, &e), BZ_EINVAL, "hmc takes gradients inside a step: no lockstep");
            cr_assert(strstr(e.msg, "hmc") && !strcmp(e.field, "sampler.method"), "%s: %s", e.field, e.msg);
            mc_destroy(h);
            free(h);
            continue;
        }
        mc_group *g = calloc(1, sizeof *g);
        cr_assert_eq(mc_create(g, &j.spec, j.b, 2, &e), 0, "%s", e.msg);
        cr_assert_eq(g->threads, 2);
        if (mode != MODE_THREADS) {
            cr_assert_eq(mc_set_lockstep(g, mode == MODE_LOCKSTEP_GROUPED, &e), 0, "%s", e.msg);
            cr_assert(g->lockstep && g->threads == 1);
            cr_assert_eq(g->group_grad, mode == MODE_LOCKSTEP_GROUPED, "grouped CPU network handles batch");
        }
        cr_assert_eq(mc_start(g, j.w_init, &e), 0, "%s", e.msg);
        run_log *batched = log_new("/tmp", "unused");
        mc_sink sink = {batched, group_record, group_sample, NULL, NULL, NULL};
        cr_assert_eq(mc_run(g, &sink, &e), 0, "%s", e.msg);
        compare_with_alone(g, &j, alone, batched, w_alone, group_mode_name[mode]);
        mc_destroy(g);
        free(g);
        log_free(batched);
    }
    for (int32_t k = 0; k < NET_K; k++) free(w_alone[k]);
    cr_log_info("%s: %d chains x %d records and %d samples identical batched and alone", spec_method_name(m), NET_K,
                alone->ch[0].n_rec, alone->ch[0].n_samples);
    log_free(alone);
    net_close(&j);
}


Test(multichain, batched_equals_unbatched_pl) { check_batched_equals_unbatched(SM_PL); }
Test(multichain, batched_equals_unbatched_hmc) { check_batched_equals_unbatched(SM_HMC); }
Test(multichain, batched_equals_unbatched_sgld) { check_batched_equals_unbatched(SM_SGLD); }

/* ---- checkpoints and resume, with exchange ---- */

/* A fresh group of j's spec on j's backends: started from the initial weights, or loaded. */
static mc_group *group_fresh(net_job *j, int32_t threads)
{
    mc_group *g = calloc(1, sizeof *g);
    bz_err e;
    cr_assert_eq(mc_create(g, &j->spec, j->b, threads, &e), 0, "%s", e.msg);
    cr_assert_eq(mc_start(g, j->w_init, &e), 0, "%s", e.msg);
    return g;
}

static mc_group *group_loaded(net_job *j, const char *path, int32_t threads)
{
    mc_group *g = calloc(1, sizeof *g);
    bz_err e;
    cr_assert_eq(mc_create(g, &j->spec, j->b, threads, &e), 0, "%s", e.msg);
    cr_assert_eq(mc_load(g, path, 42, &e), 0, "%s", e.msg);
    return g;
}

static void group_free(mc_group *g)
{
    mc_destroy(g);
    free(g);
}

/* The records of `first` (an interrupted run, or NULL) and of `second` (its resumption)
 * together are exactly the reference's records from step `from` on: each reference record is
 * found, equal, and there is no other. */
static void assert_resumed_records(const run_log *ref, const run_log *first, const run_log *second, int64_t from,
                                   const char *what)
{
    for (int32_t k = 0; k < NET_K; k++) {
        int expected = 0, got_count = second->ch[k].n_rec;
        for (int a = 0; first && a < first->ch[k].n_rec; a++) got_count += first->ch[k].rec[a].step >= from;
        for (int i = 0; i < ref->ch[k].n_rec; i++) {
            const obs_record *r = &ref->ch[k].rec[i], *got = NULL;
            if (r->step < from) continue;
            expected++;
            for (int a = 0; first && a < first->ch[k].n_rec && !got; a++)
                if (first->ch[k].rec[a].step == r->step) got = &first->ch[k].rec[a];
            for (int b = 0; b < second->ch[k].n_rec && !got; b++)
                if (second->ch[k].rec[b].step == r->step) got = &second->ch[k].rec[b];
            cr_assert(got, "%s: chain %d has no record at step %lld", what, k, (long long)r->step);
            assert_same_record(r, got, what);
        }
        cr_assert(expected >= 5, "%s: only %d records compared", what, expected);
        cr_assert_eq(got_count, expected, "%s: chain %d: %d records, the reference has %d", what, k, got_count,
                     expected);
    }
}

static void assert_same_group_state(const mc_group *a, const mc_group *b, const char *what)
{
    cr_assert_eq(memcmp(a->replica, b->replica, sizeof a->replica), 0, "%s: replicas differ", what);
    cr_assert_eq(a->round_trips, b->round_trips, "%s: round trips %lld vs %lld", what, (long long)a->round_trips,
                 (long long)b->round_trips);
    cr_assert_eq(a->rounds, b->rounds, "%s: rounds", what);
    for (int32_t k = 0; k + 1 < a->K; k++)
        cr_assert(a->pair[k].attempts == b->pair[k].attempts && a->pair[k].accepts == b->pair[k].accepts,
                  "%s: pair %d: %lld/%lld vs %lld/%lld", what, k, (long long)a->pair[k].accepts,
                  (long long)a->pair[k].attempts, (long long)b->pair[k].accepts, (long long)b->pair[k].attempts);
}

/* Run a resumed group g to the end into a new log `tag`, check its records (with those of the
 * interrupted run `first`, NULL for none, and from step `from`), its final weights and its group
 * state against the straight reference run; free g and both logs. */
static void finish_and_compare(mc_group *g, const char *dir, const char *tag, const run_log *ref, run_log *first,
                               int64_t from, float *const *w_ref, const mc_group *ref_g, const char *what)
{
    bz_err e;
    run_log *second = log_new(dir, tag);
    mc_sink sink = group_sink(second);
    cr_assert_eq(mc_run(g, &sink, &e), 0, "%s", e.msg);
    assert_resumed_records(ref, first, second, from, what);
    for (int32_t k = 0; k < NET_K; k++) assert_weights(g, k, w_ref[k], what);
    assert_same_group_state(ref_g, g, what);
    group_free(g);
    if (first) log_free(first);
    log_free(second);
}

/* A fresh group of j (one thread; in lockstep when asked) run until its sink's poll number
 * `polls` says stop; asserts where each chain stopped (steps[k]) and returns the interrupted
 * run's log (its final checkpoint at first->final_path). */
static run_log *stopped_run(net_job *j, const char *dir, const char *tag, int64_t polls, bool lockstep,
                            const int64_t *steps)
{
    bz_err e;
    mc_group *g = group_fresh(j, 1);
    if (lockstep) cr_assert_eq(mc_set_lockstep(g, true, &e), 0, "%s", e.msg);
    run_log *first = log_new(dir, tag);
    first->stop_after_calls = polls;
    mc_sink sink = group_sink(first);
    cr_assert_eq(mc_run(g, &sink, &e), BZ_ECANCELLED, "%s", e.msg);
    for (int32_t k = 0; k < NET_K; k++)
        cr_assert_eq(g->chains[k].step, steps[k], "%s: chain %d stopped at step %lld, not %lld", tag, k,
                     (long long)g->chains[k].step, (long long)steps[k]);
    group_free(g);
    return first;
}

/* Its final checkpoint loaded into a new group (threads, or lockstep). */
static mc_group *resumed_group(net_job *j, const run_log *first, int32_t threads, bool lockstep)
{
    bz_err e;
    mc_group *g = group_loaded(j, first->final_path, threads);
    if (lockstep) cr_assert_eq(mc_set_lockstep(g, true, &e), 0, "%s", e.msg);
    return g;
}

static void check_resume(sampler_method m)
{
    char dir[256];
    cr_assert(tu_mkdtemp(dir, sizeof dir));
    net_job j;
    net_open(&j, m, 10);
    bz_err e;
    const int64_t n = j.a.n;

    /* the reference: straight to 200 steps, periodic checkpoint of step 50 kept */
    mc_group *g = group_fresh(&j, 2);
    run_log *ref = log_new(dir, "ref");
    ref->periodic_step = 50;
    mc_sink sink = group_sink(ref);
    cr_assert_eq(mc_run(g, &sink, &e), 0, "%s", e.msg);
    cr_assert_eq(mc_step(g), 200);
    float *w_ref[NET_K];
    for (int32_t k = 0; k < NET_K; k++) {
        w_ref[k] = malloc(sizeof(float) * (size_t)n);
        download(&g->chains[k], g->chains[k].w, w_ref[k]);
        const obs_record *last = &ref->ch[k].rec[ref->ch[k].n_rec - 1];
        cr_assert_eq(last->step, 200);
        cr_assert_eq(last->v[OBS_REPLICA], (double)g->replica[k], "chain %d: record's replica", k);
        cr_assert_eq(last->v[OBS_ROUND_TRIPS], (double)g->round_trips);
        if (k + 1 < NET_K) cr_assert_eq(last->v[OBS_EX_ACC], mc_pair_acceptance(g, k), "chain %d: record's ex_acc", k);
        else cr_assert(isnan(last->v[OBS_EX_ACC]), "the highest T has no pair above it");
    }
    cr_log_info("%s: 20 exchange rounds, pair acceptances %.2f %.2f, replicas [%d %d %d], %lld round trips",
                spec_method_name(m), mc_pair_acceptance(g, 0), mc_pair_acceptance(g, 1), g->replica[0], g->replica[1],
                g->replica[2], (long long)g->round_trips);
    cr_assert(g->pair[0].accepts + g->pair[1].accepts > 0,
              "no swap in the reference run: resume would not test exchange");
    mc_group *ref_g = g;

    /* (a) stopped after the records of step 100 (a block boundary), resumed */
    g = group_fresh(&j, 2);
    run_log *first = log_new(dir, "a");
    first->stop_after_record = 100;
    sink = group_sink(first);
    cr_assert_eq(mc_run(g, &sink, &e), BZ_ECANCELLED, "%s", e.msg);
    for (int32_t k = 0; k < NET_K; k++) cr_assert_eq(g->chains[k].step, 100);
    group_free(g);
    g = group_loaded(&j, first->final_path, 2);
    cr_assert_eq(mc_step(g), 100);
    finish_and_compare(g, dir, "a2", ref, first, 0, w_ref, ref_g, "stopped at 100");

    /* (b) stopped in the middle of a block. One thread: the steps of a block run chain after
     * chain, with a poll before each step and one per block in mc_run; a block is 10 steps
     * (records 20, exchange 10, checkpoints and samples 50) = 31 polls. Stopping at poll
     * 31 * 7 + 1 + 10 + 5 leaves chain 0 at the end of the eighth block (80), chain 1 four
     * steps into it (74), chain 2 at its start (70). */
    const int64_t mid_block[NET_K] = {80, 74, 70};
    first = stopped_run(&j, dir, "b", 31 * 7 + 1 + 10 + 4, false, mid_block);
    g = resumed_group(&j, first, 2, false);
    cr_assert(g->chains[0].step == 80 && g->chains[1].step == 74 && g->chains[2].step == 70,
              "each chain's own step comes back");
    finish_and_compare(g, dir, "b2", ref, first, 0, w_ref, ref_g, "stopped mid-block");

    /* (f) the same stop mid-block (chains at 80/74/70), resumed in lockstep (pl, sgld): the first
     * rounds batch only the chains still behind, chain 0 waits at the block's end. */
    if (m != SM_HMC) {
        first = stopped_run(&j, dir, "f", 31 * 7 + 1 + 10 + 4, false, mid_block);
        g = resumed_group(&j, first, 1, true);
        finish_and_compare(g, dir, "f2", ref, first, 0, w_ref, ref_g, "stopped mid-block, resumed in lockstep");
    }

    /* (d) stopped inside the first block: chain 0 four steps in, chains 1 and 2 still at step
     * 0 (polls: 1 in mc_run, then one before each step of chain 0). The resumed run must not
     * write step-0 records again (regression: it did while the smallest step was 0). */
    const int64_t first_block[NET_K] = {4, 0, 0};
    first = stopped_run(&j, dir, "d", 1 + 4, false, first_block);
    g = resumed_group(&j, first, 2, false);
    finish_and_compare(g, dir, "d2", ref, first, 0, w_ref, ref_g, "stopped in the first block");

    /* (c) the periodic checkpoint of step 50 */
    g = group_loaded(&j, ref->periodic_path, 2);
    cr_assert_eq(mc_step(g), 50);
    finish_and_compare(g, dir, "c", ref, NULL, 60, w_ref, ref_g, "from the periodic checkpoint");

    /* (e) lockstep (pl, sgld): stopped between two rounds of a block, resumed in lockstep; the
     * threaded reference's records, weights and exchanges come out. Polls: one per block in
     * mc_run and one per lockstep round, 11 per block of 10 steps; stopping after 11 * 7 + 1 + 4
     * leaves every chain at 74. */
    if (m != SM_HMC) {
        const int64_t together[NET_K] = {74, 74, 74}; /* lockstep chains stay together */
        first = stopped_run(&j, dir, "e", 11 * 7 + 1 + 4, true, together);
        g = resumed_group(&j, first, 1, true);
        finish_and_compare(g, dir, "e2", ref, first, 0, w_ref, ref_g, "lockstep, stopped mid-block");
    }

    for (int32_t k = 0; k < NET_K; k++) free(w_ref[k]);
    group_free(ref_g);
    log_free(ref);
    net_close(&j);
}

Test(multichain, resume_bit_identical_pl) { check_resume(SM_PL); }
Test(multichain, resume_bit_identical_hmc) { check_resume(SM_HMC); }
Test(multichain, resume_bit_identical_sgld) { check_resume(SM_SGLD); }

/* Group checkpoints that do not belong to the group are refused, the message naming why. */
Test(multichain, bad_group_checkpoints_refused)
{
    char dir[256], path[512], bad[512];
    cr_assert(tu_mkdtemp(dir, sizeof dir));
    net_job j;
    net_open(&j, SM_PL, 10);
    bz_err e;
    mc_group *g = group_fresh(&j, 1);
    cr_assert_eq(mc_advance(g, 20, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(mc_exchange(g, &e), 0, "%s", e.msg);
    snprintf(path, sizeof path, "%s/group.bzc", dir);
    cr_assert_eq(mc_save(g, path, 42, &e), 0, "%s", e.msg);

    /* it holds every chain: a fresh group loads each chain's own state */
    mc_group *h = group_loaded(&j, path, 1);
    for (int32_t k = 0; k < NET_K; k++) {
        float *w = malloc(sizeof(float) * (size_t)j.a.n);
        download(&g->chains[k], g->chains[k].w, w);
        assert_weights(h, k, w, "loaded group");
        cr_assert_eq(h->chains[k].step, 20);
        free(w);
    }
    assert_same_group_state(g, h, "loaded group");
    group_free(h);

    /* one byte flipped in the middle */
    size_t len;
    char *bytes = tu_read_file(path, &len);
    cr_assert(bytes);
    bytes[len / 2] ^= 0x5a;
    snprintf(bad, sizeof bad, "%s/corrupt.bzc", dir);
    cr_assert_eq(tu_write_file(bad, bytes, len), 0);
    h = calloc(1, sizeof *h);
    cr_assert_eq(mc_create(h, &j.spec, j.b, 1, &e), 0);
    cr_assert_eq(mc_load(h, bad, 42, &e), BZ_EFORMAT);
    cr_log_info("corrupted: %s", e.msg);
    cr_assert(strstr(e.msg, "corrupt.bzc") && strstr(e.msg, "checksum mismatch"), "%s", e.msg);

    /* truncated */
    snprintf(bad, sizeof bad, "%s/short.bzc", dir);
    cr_assert_eq(tu_write_file(bad, bytes, len / 3), 0);
    cr_assert_eq(mc_load(h, bad, 42, &e), BZ_EFORMAT);
    cr_log_info("truncated: %s", e.msg);
    cr_assert(strstr(e.msg, "short.bzc") && strstr(e.msg, "truncated"), "%s", e.msg);

    /* a single chain's checkpoint */
    snprintf(bad, sizeof bad, "%s/single.bzc", dir);
    cr_assert_eq(smp_chain_save(&g->chains[1], bad, 42, &e), 0, "%s", e.msg);
    cr_assert_eq(mc_load(h, bad, 42, &e), BZ_EFORMAT);
    cr_log_info("single chain: %s", e.msg);
    cr_assert(strstr(e.msg, "single.bzc") && strstr(e.msg, "holds a single chain (chain 1)"), "%s", e.msg);

    /* another spec */
    cr_assert_eq(mc_load(h, path, 43, &e), BZ_EFORMAT);
    cr_log_info("other spec: %s", e.msg);
    cr_assert(strstr(e.msg, "different job spec"), "%s", e.msg);
    group_free(h);

    /* a group of two chains (same weights and method; the spec hash made equal on purpose) */
    bz_spec two = j.spec;
    two.sampler.n_T = 2;
    h = calloc(1, sizeof *h);
    cr_assert_eq(mc_create(h, &two, j.b, 1, &e), 0);
    cr_assert_eq(mc_load(h, path, 42, &e), BZ_EFORMAT);
    cr_log_info("other size: %s", e.msg);
    cr_assert(strstr(e.msg, "holds 3 chains, this job has 2"), "%s", e.msg);
    group_free(h);

    free(bytes);
    group_free(g);
    net_close(&j);
}

