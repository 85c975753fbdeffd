/* test_gpu_samplers.c: the statistical sampler tests of the samplers issue, run with every update
 * on the CUDA backend (skipped, with the driver's words, where no CUDA device answers):
 *
 * - pL noise compensation on harmonic wells with synthetic Gaussian mini-batch noise
 *   (tests/unit/test_pl_harmonic.c; ALGORITHM.md §5 numerical check: k = 1, m = 100, T = 1,
 *   h = 1, gamma = 0.05): with compensation Var(w) = T/k (times the velocity-Verlet shadow factor)
 *   at every ratio r, without it (naive_pl) (1 + r) T/k, each within 5 standard errors and the
 *   other hypothesis excluded. The target (be_cuda_harmonic) draws its gradient noise on the device.
 * - pL against exact hMC on a small spin network (tests/unit/test_pl_vs_hmc.c: N0 = 20, 3 classes,
 *   P = 300, hidden [8], lambda 1, T = 1e-3): means of U, w2 and train_err within 5 combined SE.
 *   Here pL reads the runaway guard's z_max a few steps late (sq_max_lagged).
 * - a checkpoint written on CUDA resumes the same chain on CUDA (weights within 1e-5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "analysis.h"
#include "gpu_testutil.h"
#include "run.h"
#include "sampler.h"
#include "smp_pl.h"
#include "synth.h"

/* ---- harmonic wells ---- */

#define NCOMP 1000
#define TEMP 1.0
#define KSPRING 1.0
#define MASS 100.0
#define GAMMA 0.05
#define STEP 1.0

typedef struct stats {
    double var, var_se, kin, kin_se, mass_mean;
} stats;

static double ratio_coeff(void)
{
    double c2 = exp(-GAMMA * STEP);
    return STEP * STEP / 4.0 * (1.0 + c2) / ((1.0 - c2) * TEMP);
}

static double shadow_factor(void) { return 1.0 / (1.0 - STEP * STEP * (KSPRING / MASS) / 4.0); }

static void mean_se(const double *x, int n, double *mean, double *se)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i], ss += x[i] * x[i];
    *mean = s / n;
    *se = sqrt((ss / n - *mean * *mean) / (n - 1));
}

static void run_harmonic(sampler_method m, double r, stats *out)
{
    const double s2 = r * MASS / ratio_coeff(); /* gives m(r0 = r) = MASS */
    be b;
    bz_err e;
    cr_assert_eq(be_cuda_harmonic(&b, NCOMP, KSPRING, s2, 10000, 16, 1, 11, NULL, &e), 0, "%s", e.msg);
    bz_spec spec;
    synth_spec(&spec, m, TEMP, 0, 16);
    spec.sampler.gamma = GAMMA;
    spec.sampler.h = STEP;
    spec.sampler.r0 = r;
    spec.sampler.r_max = r < 0.5 ? 2 * r : 0.9;
    spec.sampler.p_reinit = 0.0;
    spec.sampler.mass = MASS;
    spec.sampler.kappa = 2.0;
    spec.sampler.seed = 5;
    smp_chain c;
    cr_assert_eq(smp_chain_create(&c, &spec, &b, 0, &e), 0, "%s", e.msg);
    bz_rng r0;
    rng_seed(&r0, 3, 0);
    float *w = malloc(sizeof(float) * NCOMP);
    for (int i = 0; i < NCOMP; i++) w[i] = (float)(sqrt(TEMP / KSPRING) * rng_normal(&r0));
    b.ops->upload(b.ctx, c.w, w, NCOMP);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    out->mass_mean = MASS;
    if (m == SM_PL) {
        pl_view v;
        cr_assert_eq(pl_inspect(&c, &v), 0);
        double msum = 0;
        for (int i = 0; i < NCOMP; i++) msum += v.m[i];
        out->mass_mean = msum / NCOMP;
    }
    enum { BLOCKS = 40, PER_BLOCK = 500, EVERY = 4, BURN = 2000 };
    for (int s = 0; s < BURN; s++) cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
    double bv[BLOCKS] = {0}, bk[BLOCKS] = {0};
    for (int blk = 0; blk < BLOCKS; blk++) {
        for (int k = 0; k < PER_BLOCK; k++) {
            for (int s = 0; s < EVERY; s++) cr_assert_eq(smp_chain_step(&c, &e), 0, "%s", e.msg);
            obs_record rec;
            cr_assert_eq(smp_chain_observe(&c, false, &rec, &e), 0, "%s", e.msg);
            bv[blk] += rec.v[OBS_W2] / PER_BLOCK;
            bk[blk] += rec.v[OBS_KIN_T] / PER_BLOCK;
        }
    }
    cr_assert_eq(b.ops->sync(b.ctx, &e), 0, "%s", e.msg);
    mean_se(bv, BLOCKS, &out->var, &out->var_se);
    mean_se(bk, BLOCKS, &out->kin, &out->kin_se);
    free(w);
    smp_chain_destroy(&c);
    be_destroy(&b);
}

static void check_compensated(double r)
{
    GPU_REQUIRE();
    stats st;
    run_harmonic(SM_PL, r, &st);
    const double expect = TEMP / KSPRING * shadow_factor(), kin_expect = TEMP * (1 - r * tanh(GAMMA * STEP / 2));
    cr_log_info("cuda pL r=%.2f: Var(w)=%.5f +- %.5f (expect %.5f), kin_T=%.5f +- %.5f (expect %.5f)", r, st.var,
                st.var_se, expect, st.kin, st.kin_se, kin_expect);
    cr_assert(fabs(st.mass_mean - MASS) < 1e-6 * MASS, "masses from r0 should be %g, got %g", MASS, st.mass_mean);
    cr_assert(fabs(st.var - expect) < 5 * st.var_se, "r=%.2f: Var(w) %.5f, expected %.5f (5 SE = %.5f)", r, st.var,
              expect, 5 * st.var_se);
    cr_assert(fabs(st.var - (1 + r) * expect) > 5 * st.var_se, "the uncompensated value is not excluded");
    cr_assert(fabs(st.kin - kin_expect) < 5 * st.kin_se, "r=%.2f: kin_T %.5f, expected %.5f (5 SE = %.5f)", r, st.kin,
              kin_expect, 5 * st.kin_se);
}

static void check_uncompensated(double r)
{
    GPU_REQUIRE();
    stats st;
    run_harmonic(SM_NAIVE_PL, r, &st);
    const double exact = TEMP / KSPRING * shadow_factor(), expect = (1 + r) * exact;
    cr_log_info("cuda naive r=%.2f: Var(w)=%.5f +- %.5f (expect %.5f)", r, st.var, st.var_se, expect);
    cr_assert(fabs(st.var - expect) < 5 * st.var_se, "r=%.2f: Var(w) %.5f, expected (1+r)T/k = %.5f (5 SE = %.5f)", r,
              st.var, expect, 5 * st.var_se);
    cr_assert(fabs(st.var - exact) > 5 * st.var_se, "the uncompensated run should be visibly hot");
}

Test(gpu_samplers, harmonic_compensated_r002) { check_compensated(0.02); }
Test(gpu_samplers, harmonic_compensated_r01) { check_compensated(0.1); }
Test(gpu_samplers, harmonic_compensated_r02) { check_compensated(0.2); }
Test(gpu_samplers, harmonic_uncompensated_r01) { check_uncompensated(0.1); }
Test(gpu_samplers, harmonic_uncompensated_r02) { check_uncompensated(0.2); }

/* ---- pL against hMC on a small network ---- */

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
} chain_result;

#define DATA_AND_MODEL                                                                                           \
    "\"dataset\": {\"kind\": \"spin\", \"n_in\": 20, \"classes\": 3, \"train\": 300, \"test\": 0, \"p_flip\": 0.3," \
    " \"seed\": 1}, \"model\": {\"hidden\": [8], \"lambda\": 1.0}, \"init\": {\"seed\": 2}"

static void run_net(const char *sampler_json, int64_t every, chain_result *out)
{
    char text[2048];
    snprintf(text, sizeof text, "{" DATA_AND_MODEL ", \"sampler\": %s, \"record\": {\"every\": %lld}}", sampler_json,
             (long long)every);
    gt_problem p;
    gt_problem_load(&p, text);
    be b;
    gt_open_cuda(&b, &p, false);
    smp_chain c;
    bz_err e;
    cr_assert_eq(smp_chain_create(&c, &p.spec, &b, 0, &e), 0, "%s", e.msg);
    float *w = gt_weights(&p.a, p.spec.init.seed, 0.0);
    b.ops->upload(b.ctx, c.w, w, p.a.n);
    free(w);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    series s = {.cap = p.spec.sampler.steps / every + 2};
    for (int k = 0; k < N_Q; k++) cr_assert((s.v[k] = malloc(sizeof(double) * (size_t)s.cap)));
    run_sink sink = {&s, col_record, NULL, NULL, NULL, NULL};
    cr_assert_eq(run_chain(&c, &sink, &e), 0, "%s", e.msg);
    cr_assert_eq(b.ops->sync(b.ctx, &e), 0, "%s", e.msg);
    out->seconds = c.t_wall;
    for (int k = 0; k < N_Q; k++) {
        an_summarize(s.v[k], s.count, p.spec.burn_in, 5.0, &out->q[k]);
        free(s.v[k]);
    }
    smp_chain_destroy(&c);
    be_destroy(&b);
    gt_problem_free(&p);
}

Test(gpu_samplers, pl_vs_hmc_small_network)
{
    GPU_REQUIRE();
    chain_result hmc, pl;
    run_net("{\"method\": \"hmc\", \"T\": 0.001, \"steps\": 15000, \"h\": 0.25, \"leapfrog\": 10, \"seed\": 3}", 5,
            &hmc);
    run_net("{\"method\": \"pl\", \"T\": 0.001, \"steps\": 600000, \"batch\": 32, \"seed\": 3}", 100, &pl);
    cr_log_info("cuda: hmc %.1f s, acceptance %.3f; pl %.1f s, r_mean %.4f", hmc.seconds, hmc.q[Q_AUX].mean,
                pl.seconds, pl.q[Q_AUX].mean);
    cr_assert(hmc.q[Q_AUX].mean > 0.6 && hmc.q[Q_AUX].mean < 0.99, "hmc acceptance %.3f", hmc.q[Q_AUX].mean);
    const double max_rel_se[3] = {0.01, 0.02, 0.05};
    for (int k = 0; k < 3; k++) {
        const an_summary *a = &pl.q[k], *b = &hmc.q[k];
        double diff = a->mean - b->mean, se = hypot(a->stderr_, b->stderr_);
        cr_log_info("%-9s pl %.5f +- %.5f  hmc %.5f +- %.5f  (%+.1f SE)", q_names[k], a->mean, a->stderr_, b->mean,
                    b->stderr_, diff / se);
        cr_assert(!a->window_capped && !b->window_capped, "%s: a series is too short", q_names[k]);
        cr_assert(a->stderr_ < max_rel_se[k] * fabs(a->mean) && b->stderr_ < max_rel_se[k] * fabs(b->mean),
                  "%s: relative SE above %.0f%%", q_names[k], 100 * max_rel_se[k]);
        cr_assert(fabs(diff) < 5 * se, "%s: pl %.5f +- %.5f vs hmc %.5f +- %.5f (%.1f combined SE)", q_names[k],
                  a->mean, a->stderr_, b->mean, b->stderr_, diff / se);
    }
}

/* ---- checkpoint and resume on CUDA ---- */

#define RESUME_SPEC                                                                                            \
    "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 40, \"classes\": 5, \"train\": 2000, \"test\": 0, "          \
    "\"p_flip\": 0.3, \"seed\": 1}, \"model\": {\"hidden\": [32, 16], \"lambda\": 0.01}, \"init\": {\"seed\": 2}, " \
    "\"sampler\": {\"method\": \"pl\", \"T\": 0.001, \"steps\": 400, \"batch\": 64, \"update_every\": 100, "    \
    "\"p_reinit\": 0, \"seed\": 3}}"

static void steps(smp_chain *c, int count)
{
    bz_err e;
    for (int k = 0; k < count; k++) cr_assert_eq(smp_chain_step(c, &e), 0, "%s", e.msg);
}

Test(gpu_samplers, checkpoint_resumes_on_cuda)
{
    GPU_REQUIRE();
    gt_problem p;
    gt_problem_load(&p, RESUME_SPEC);
    be b;
    gt_open_cuda(&b, &p, false);
    bz_err e;
    char path[256];
    snprintf(path, sizeof path, "%s/bz-gpu-resume-%d.ckpt", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    smp_chain c;
    cr_assert_eq(smp_chain_create(&c, &p.spec, &b, 0, &e), 0, "%s", e.msg);
    float *w = gt_weights(&p.a, 2, 0.0);
    b.ops->upload(b.ctx, c.w, w, p.a.n);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    steps(&c, 150);
    cr_assert_eq(smp_chain_save(&c, path, 1, &e), 0, "%s", e.msg);
    steps(&c, 250);
    float *w_full = gt_fetch(&b, c.w, p.a.n);
    smp_chain_destroy(&c);

    smp_chain r;
    cr_assert_eq(smp_chain_create(&r, &p.spec, &b, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(smp_chain_load(&r, path, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(r.step, 150);
    steps(&r, 250);
    float *w_res = gt_fetch(&b, r.w, p.a.n);
    double d = gt_rel_l2(w_res, w_full, p.a.n);
    cr_log_info("resumed vs uninterrupted: relative L2 %.3g", d);
    cr_assert(d < 1e-5, "the resumed chain drifted from the uninterrupted one (relative L2 %.3g)", d);
    cr_assert_eq(b.ops->sync(b.ctx, &e), 0, "%s", e.msg);
    smp_chain_destroy(&r);
    be_destroy(&b);
    unlink(path);
    free(w), free(w_full), free(w_res);
    gt_problem_free(&p);
}
