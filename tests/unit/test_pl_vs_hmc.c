/* test_pl_vs_hmc.c: pL against exact hMC on a small real network (ALGORITHM.md §4, §5, §7).
 *
 * Spin data (N0 = 20, 3 classes, P = 300 training examples, p_flip 0.3), hidden [8]: n = 195
 * weights, lambda = 1, T = 1e-3. hMC (h 0.25, 10 leapfrog steps, full-set gradients, acceptance
 * about 0.93) samples exp(-U/T) exactly; pL (defaults: r0 0.01, r_max 0.1, gamma 0.1, h 1;
 * batch 32) samples it up to a bias of order r. Both start from the same He initialisation; after
 * discarding the first 20% of records (the analysis default), the means of U, w2 and train_err
 * must agree within 5 combined standard errors, |a - b| < 5 sqrt(se_a^2 + se_b^2), each SE from
 * an_summarize (Sokal's integrated autocorrelation time of the record series).
 *
 * Why these parameters. U is intensive, so the thermal part of <U> is about n T / 2 ~ 0.1 at
 * T = 1e-3, against a training loss of order 0.1-1: the data shape the posterior but the chain is
 * not frozen (the reference runs of §5 use the same T). lambda must be large for the prior to be
 * proper on this scale: the regulariser (lambda/2)|w|^2/n alone gives w2 = n T / lambda, so with
 * lambda = 0.1 a near-separable training set leaves w2 ~ 2, fixed by the prior alone, and
 * train_err ~ 0. With lambda = 1 the data matter: <w2> ~ 0.35 (prior alone: 0.195), <U> ~ 0.275,
 * <train_err> ~ 0.028 (about 8 of 300 examples), so all three observables test the sampling.
 *
 * Resolution: the test asserts relative SEs below 1% (U), 2% (w2) and 5% (train_err), so it is
 * not passed by large error bars; a 10% error in T would shift <U> by about n dT / 2 = 0.01, some
 * 9 combined SE. Measured here (seed 3): U -0.3% (-0.7 SE), w2 -0.2% (-0.3 SE), train_err -1.6%
 * (-0.7 SE); the chains take about 9 s (hMC) and 12 s (pL).
 *
 * Known bias of pL, measured in long reference runs (2 x 60 000 hMC trajectories against
 * 2 x 2.4 M pL steps, same problem): at r0 = 0.01, train_err +4% (about 4.5 pooled SE), w2 -0.8%
 * (about 2.7 SE), U +0.25% (1.5 SE), in line with the "bias of order r" of ALGORITHM.md §5 (w2
 * 1.7% low at r0 = 0.01 on a rougher problem). At this run length that is about 2 combined SE for
 * train_err and 1 SE for w2, so the 5-SE test stands; a run several times longer would resolve
 * the bias and would need a smaller r0. (r0 = 0.003 did not help: U came out ~1% high in three
 * runs, 2.6-3.7 SE, with 5x longer autocorrelation times; reported to the pL owner.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "analysis.h"
#include "nn.h"
#include "run.h"
#include "setup.h"

enum { Q_U = 0, Q_W2, Q_ERR, Q_AUX, N_Q };
static const char *const q_names[N_Q] = {"U", "w2", "train_err", "aux"};

typedef struct series {
    double *v[N_Q];
    int64_t count, cap;
} series;

static int col_record(void *ctx, const obs_record *r, bz_err *e)
{
    (void)e;
    series *s = ctx;
    cr_assert(s->count < s->cap, "too many records");
    s->v[Q_U][s->count] = r->v[OBS_U];
    s->v[Q_W2][s->count] = r->v[OBS_W2];
    s->v[Q_ERR][s->count] = r->v[OBS_TRAIN_ERR];
    s->v[Q_AUX][s->count] = isnan(r->v[OBS_ACC_RATE]) ? r->v[OBS_R_MEAN] : r->v[OBS_ACC_RATE];
    s->count++;
    return 0;
}

typedef struct chain_result {
    an_summary q[N_Q];
    double seconds;
    int64_t n;
} chain_result;

#define DATA_AND_MODEL                                                                                           \
    "\"dataset\": {\"kind\": \"spin\", \"n_in\": 20, \"classes\": 3, \"train\": 300, \"test\": 0, \"p_flip\": 0.3," \
    " \"seed\": 1}, \"model\": {\"hidden\": [8], \"lambda\": 1.0}, \"init\": {\"seed\": 2}"

/* Run the chain described by `sampler_json` (a "sampler" object) on the network above, from the
 * He initialisation, recording every `every` steps; summarise with the default burn-in. */
static void run_net(const char *sampler_json, int64_t every, chain_result *out)
{
    char text[2048];
    snprintf(text, sizeof text, "{" DATA_AND_MODEL ", \"sampler\": %s, \"record\": {\"every\": %lld}}", sampler_json,
             (long long)every);
    bz_spec spec;
    ds_data d;
    nn_arch a;
    be b;
    smp_chain c;
    bz_err e;
    cr_assert_eq(spec_parse(text, &spec, &e), 0, "%s: %s", e.field, e.msg);
    cr_assert_eq(setup_load(&spec, &d, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(be_cpu_network(&b, &a, &d, spec.model.lambda, spec.sampler.batch > 0 ? spec.sampler.batch : 1, &e),
                 0, "%s", e.msg);
    cr_assert_eq(smp_chain_create(&c, &spec, &b, 0, &e), 0, "%s", e.msg);
    float *w = malloc(sizeof(float) * (size_t)a.n);
    cr_assert(w);
    nn_init_he(&a, w, spec.init.seed);
    b.ops->upload(b.ctx, c.w, w, a.n);
    free(w);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);

    series s = {.cap = spec.sampler.steps / every + 2};
    for (int k = 0; k < N_Q; k++) {
        s.v[k] = malloc(sizeof(double) * (size_t)s.cap);
        cr_assert(s.v[k]);
    }
    run_sink sink = {&s, col_record, NULL, NULL, NULL, NULL};
    cr_assert_eq(run_chain(&c, &sink, &e), 0, "%s", e.msg);
    out->seconds = c.t_wall;
    out->n = a.n;
    for (int k = 0; k < N_Q; k++) {
        an_summarize(s.v[k], s.count, spec.burn_in, 5.0, &out->q[k]);
        free(s.v[k]);
    }
    smp_chain_destroy(&c);
    be_destroy(&b);
    ds_free(&d);
}

Test(pl_vs_hmc, small_spin_network)
{
    chain_result hmc, pl;
    run_net("{\"method\": \"hmc\", \"T\": 0.001, \"steps\": 15000, \"h\": 0.25, \"leapfrog\": 10, \"seed\": 3}", 5,
            &hmc);
    run_net("{\"method\": \"pl\", \"T\": 0.001, \"steps\": 600000, \"batch\": 32, \"seed\": 3}", 100, &pl);
    cr_log_info("n = %lld weights; hmc: %.1f s, acceptance %.3f; pl: %.1f s, r_mean %.4f", (long long)hmc.n,
                hmc.seconds, hmc.q[Q_AUX].mean, pl.seconds, pl.q[Q_AUX].mean);
    cr_assert(hmc.q[Q_AUX].mean > 0.6 && hmc.q[Q_AUX].mean < 0.99, "hmc acceptance %.3f", hmc.q[Q_AUX].mean);
    const double max_rel_se[3] = {0.01, 0.02, 0.05};
    for (int k = 0; k < 3; k++) {
        const an_summary *a = &pl.q[k], *b = &hmc.q[k];
        double diff = a->mean - b->mean, se = hypot(a->stderr_, b->stderr_);
        cr_log_info("%-9s pl %.5f +- %.5f (tau %.1f)  hmc %.5f +- %.5f (tau %.1f)  rel. diff %+.4f = %+.1f SE",
                    q_names[k], a->mean, a->stderr_, a->tau_int, b->mean, b->stderr_, b->tau_int, diff / b->mean,
                    diff / se);
        cr_assert(!a->window_capped && !b->window_capped, "%s: a series is too short for its correlation time",
                  q_names[k]);
        cr_assert(a->stderr_ < max_rel_se[k] * fabs(a->mean) && b->stderr_ < max_rel_se[k] * fabs(b->mean),
                  "%s: relative SE above %.0f%% (pl %.4f, hmc %.4f): the comparison would mean little", q_names[k],
                  100 * max_rel_se[k], a->stderr_ / fabs(a->mean), b->stderr_ / fabs(b->mean));
        cr_assert(fabs(diff) < 5 * se, "%s: pl %.5f +- %.5f vs hmc %.5f +- %.5f (%.1f combined SE)", q_names[k],
                  a->mean, a->stderr_, b->mean, b->stderr_, diff / se);
    }
}
