/* test_gpu_multichain.c: batched chains on the CUDA backend (core/multichain.h). Skipped, with the
 * driver's words, where no CUDA device answers.
 *
 * Problem: spin data N0 = 40, 5 classes, P = 2000, hidden [32, 16], lambda 0.01, pL at three
 * temperatures, batch 64, 200 steps. Each chain of a batched group (three CUDA handles, stepped
 * from three host threads) against the same chain run alone on one handle, as an unbatched
 * sweep does: both draw the same mini-batches and the same cuRAND noise, so they agree up to the
 * order in which the device sums (float32 drift): |w_batched - w_alone| below 1e-3 of the
 * distance the chain travelled. With exchange on, the group must also run, keep every U finite
 * and count its swap attempts (one per pair every other round).
 *
 * The lockstep path (one CUDA handle group, be_cuda_network_group, every step's gradients as
 * batched GEMMs for all chains): grad_batch_group's K gradients against K grad_batch calls on a
 * separate handle (relative L2 below 1e-5: only the GEMMs' summation order differs), for every
 * subset size m <= K; the elementwise group ops (noise, axpy, the guard's lagged max) against
 * the single ops bit for bit; and a lockstep run (chain 0 five steps ahead at first, so the
 * first rounds batch the other chains only) against each chain alone, as above. Destroying
 * the group's handles owner first must leave the siblings working. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "multichain.h"

#define SPEC_HEAD                                                                                              \
    "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 40, \"classes\": 5, \"train\": 2000, \"test\": 0, "         \
    "\"p_flip\": 0.3, \"seed\": 1}, \"model\": {\"hidden\": [32, 16], \"lambda\": 0.01}, \"init\": {\"seed\": 2}, " \
    "\"sampler\": {\"method\": \"pl\", \"T\": [0.001, 0.002, 0.004], \"steps\": 200, \"batch\": 64, \"seed\": 3}, " \
    "\"record\": {\"test\": false}, \"batched\": true"

enum { K = 3, STEPS = 200 };

/* Chain k alone on a fresh CUDA handle: STEPS steps from w0; returns its final weights. */
static float *run_alone(const gt_problem *p, int32_t k, const float *w0)
{
    be b;
    gt_open_cuda(&b, p, false);
    smp_chain c;
    bz_err e;
    cr_assert_eq(smp_chain_create(&c, &p->spec, &b, k, &e), 0, "%s", e.msg);
    b.ops->upload(b.ctx, c.w, w0, c.n);
    cr_assert_eq(smp_chain_start(&c, &e), 0, "%s", e.msg);
    for (int s = 0; s < STEPS; s++) cr_assert_eq(smp_chain_step(&c, &e), 0, "chain %d step %d: %s", k, s, e.msg);
    cr_assert_eq(b.ops->sync(b.ctx, &e), 0, "%s", e.msg);
    float *w = gt_fetch(&b, c.w, c.n);
    smp_chain_destroy(&c);
    be_destroy(&b);
    return w;
}

static double dist(const float *x, const float *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return sqrt(s);
}

/* Run the started group g (handles b) to STEPS and compare every chain with the same chain run
 * alone from w0: equal up to float32 drift, |w_group - w_alone| <= 1e-3 of the distance travelled. */
static void advance_and_compare_alone(const gt_problem *p, be *b, mc_group *g, const float *w0, const char *mode)
{
    bz_err e;
    cr_assert_eq(mc_advance(g, STEPS, NULL, &e), 0, "%s", e.msg);
    for (int k = 0; k < K; k++) {
        cr_assert_eq(b[k].ops->sync(b[k].ctx, &e), 0, "%s", e.msg);
        float *wb = gt_fetch(&b[k], g->chains[k].w, p->a.n);
        float *wa = run_alone(p, k, w0);
        double travelled = dist(wa, w0, p->a.n), apart = dist(wb, wa, p->a.n);
        cr_log_info("chain %d: %s vs alone %.3g, travelled %.3g", k, mode, apart, travelled);
        cr_assert(travelled > 0, "chain %d did not move", k);
        cr_assert(apart <= 1e-3 * travelled, "chain %d: %s and alone differ by %.3g (travelled %.3g)", k, mode, apart,
                  travelled);
        free(wa);
        free(wb);
    }
}

/* A started group of K chains of `json` on K CUDA handles (one per chain), from He weights. */
typedef struct gpu_group {
    gt_problem p;
    float *w0;
    be b[K];
    mc_group *g;
} gpu_group;

static void group_open(gpu_group *x, const char *json)
{
    gt_problem_load(&x->p, json);
    x->w0 = gt_weights(&x->p.a, 2, 0.05);
    for (int k = 0; k < K; k++) gt_open_cuda(&x->b[k], &x->p, false);
    x->g = calloc(1, sizeof *x->g);
    bz_err e;
    cr_assert_eq(mc_create(x->g, &x->p.spec, x->b, K, &e), 0, "%s", e.msg);
    cr_assert_eq(mc_start(x->g, x->w0, &e), 0, "%s", e.msg);
}

static void group_close(gpu_group *x)
{
    mc_destroy(x->g);
    free(x->g);
    for (int k = 0; k < K; k++) be_destroy(&x->b[k]);
    free(x->w0);
    gt_problem_free(&x->p);
}

Test(gpu_multichain, batched_matches_unbatched_within_float32_drift)
{
    GPU_REQUIRE();
    gpu_group x;
    group_open(&x, SPEC_HEAD "}");
    advance_and_compare_alone(&x.p, x.b, x.g, x.w0, "batched");
    group_close(&x);
}

Test(gpu_multichain, exchange_runs_on_the_device)
{
    GPU_REQUIRE();
    gpu_group x;
    group_open(&x, SPEC_HEAD ", \"exchange\": {\"every\": 10}}");
    mc_group *g = x.g;
    bz_err e;
    for (int64_t at = 10; at <= STEPS; at += 10) {
        cr_assert_eq(mc_advance(g, at, NULL, &e), 0, "%s", e.msg);
        cr_assert_eq(mc_exchange(g, &e), 0, "%s", e.msg);
    }
    /* 20 rounds alternate pair 0 (even rounds) and pair 1 (odd rounds). */
    cr_assert_eq(g->pair[0].attempts, 10);
    cr_assert_eq(g->pair[1].attempts, 10);
    for (int k = 0; k < K; k++) {
        obs_record r;
        cr_assert_eq(smp_chain_observe(&g->chains[k], false, &r, &e), 0, "%s", e.msg);
        cr_assert(isfinite(r.v[OBS_U]), "chain %d: U %g", k, r.v[OBS_U]);
    }
    group_close(&x);
}

/* ---- lockstep on a CUDA handle group ---- */

static void open_cuda_group(be *b, const gt_problem *p)
{
    be_cuda_opts o;
    be_cuda_default_opts(&o);
    bz_err e;
    cr_assert_eq(be_cuda_network_group(b, K, &p->a, &p->d, p->spec.model.lambda, p->spec.sampler.batch, &o, &e), 0,
                 "%s", e.msg);
}

/* m chains with different weights and index lists: one grad_batch_group against m grad_batch. */
Test(gpu_multichain, group_gradient_matches_single_gradients)
{
    GPU_REQUIRE();
    gt_problem p;
    gt_problem_load(&p, SPEC_HEAD "}");
    const int64_t n = p.a.n;
    const int32_t B = p.spec.sampler.batch;
    be grp[K], alone;
    open_cuda_group(grp, &p);
    gt_open_cuda(&alone, &p, false);
    float *w_host[K], *w[K], *g[K], *w_alone[K], *g_alone[K];
    int32_t *idx[K];
    for (int k = 0; k < K; k++) {
        w_host[k] = gt_weights(&p.a, 10 + (uint64_t)k, 0.1);
        w[k] = gt_buffer(&grp[k], w_host[k], n); /* each chain's buffers on its own handle */
        g[k] = gt_buffer(&grp[k], w_host[k], n);
        w_alone[k] = gt_buffer(&alone, w_host[k], n);
        g_alone[k] = gt_buffer(&alone, w_host[k], n);
        idx[k] = malloc(sizeof(int32_t) * (size_t)B);
        for (int32_t i = 0; i < B; i++) idx[k][i] = (int32_t)((i * 37 + k * 501 + 11) % p.d.n_train);
    }
    bz_err e;
    for (int32_t m = 1; m <= K; m++) {
        grp[0].ops->grad_batch_group(grp[0].ctx, m, (const float *const *)w, (const int32_t *const *)idx, B, g);
        for (int32_t k = 0; k < m; k++) {
            alone.ops->grad_batch(alone.ctx, w_alone[k], idx[k], B, g_alone[k]);
            cr_assert_eq(grp[k].ops->sync(grp[k].ctx, &e), 0, "%s", e.msg);
            cr_assert_eq(alone.ops->sync(alone.ctx, &e), 0, "%s", e.msg);
            float *x = gt_fetch(&grp[k], g[k], n), *y = gt_fetch(&alone, g_alone[k], n);
            const double rel = gt_rel_l2(x, y, n);
            cr_log_info("m = %d, chain %d: group vs single gradient, relative L2 %.3g", m, k, rel);
            cr_assert(rel < 1e-5, "m = %d, chain %d: group gradient differs by %.3g (relative L2)", m, k, rel);
            free(x);
            free(y);
        }
    }
    for (int k = 0; k < K; k++) {
        grp[k].ops->release(grp[k].ctx, w[k]);
        grp[k].ops->release(grp[k].ctx, g[k]);
        alone.ops->release(alone.ctx, w_alone[k]);
        alone.ops->release(alone.ctx, g_alone[k]);
        free(w_host[k]);
        free(idx[k]);
    }
    /* the owner goes first; a sibling still computes (its handle keeps the shared part alive) */
    be_destroy(&grp[0]);
    float *x = gt_weights(&p.a, 3, 0.1);
    float *wb = gt_buffer(&grp[1], x, n), *gb = gt_buffer(&grp[1], x, n);
    int32_t one[1] = {5};
    grp[1].ops->grad_batch(grp[1].ctx, wb, one, 1, gb);
    cr_assert_eq(grp[1].ops->sync(grp[1].ctx, &e), 0, "sibling after its owner was destroyed: %s", e.msg);
    grp[1].ops->release(grp[1].ctx, wb);
    grp[1].ops->release(grp[1].ctx, gb);
    free(x);
    for (int k = 1; k < K; k++) be_destroy(&grp[k]);
    be_destroy(&alone);
    gt_problem_free(&p);
}

/* The elementwise group ops (one launch for all chains) against the single ops on a separate
 * handle seeded alike: the same bits (noise from each chain's own Philox stream, axpy with and
 * without v), and the lagged maxima equal to each chain's own sq_stats. */
Test(gpu_multichain, group_ops_match_single_ops)
{
    GPU_REQUIRE();
    gt_problem p;
    gt_problem_load(&p, SPEC_HEAD "}");
    const int64_t n = p.a.n;
    be grp[K], alone;
    open_cuda_group(grp, &p);
    gt_open_cuda(&alone, &p, false);
    float *xg[K], *sg[K], *vg[K], *xa[K], *sa[K], *va[K];
    be_ctx *mem[K];
    const float sc[K] = {0.1f, 0.2f, 0.3f};
    for (int k = 0; k < K; k++) {
        float *x = gt_weights(&p.a, 20 + (uint64_t)k, 0.1), *sd = gt_weights(&p.a, 30 + (uint64_t)k, 0.1);
        float *v = gt_weights(&p.a, 40 + (uint64_t)k, 0.1);
        for (int64_t i = 0; i < n; i++) sd[i] = 0.1f * fabsf(sd[i]), v[i] = 1.0f + fabsf(v[i]);
        xg[k] = gt_buffer(&grp[k], x, n), sg[k] = gt_buffer(&grp[k], sd, n), vg[k] = gt_buffer(&grp[k], v, n);
        xa[k] = gt_buffer(&alone, x, n), sa[k] = gt_buffer(&alone, sd, n), va[k] = gt_buffer(&alone, v, n);
        mem[k] = grp[k].ctx;
        grp[k].ops->noise_seed(grp[k].ctx, 11, (uint64_t)k);
        free(x), free(sd), free(v);
    }
    const be_ops *o = grp[0].ops;
    o->add_noise_group(grp[0].ctx, K, mem, xg, 0.9f, (const float *const *)sg, NULL, n);
    o->add_noise_group(grp[0].ctx, K, mem, xg, 1.0f, NULL, sc, n);
    o->axpy_group(grp[0].ctx, K, xg, -0.5f, (const float *const *)sg, (const float *const *)vg, n);
    o->axpy_group(grp[0].ctx, K, xg, 0.25f, (const float *const *)vg, NULL, n);
    double mx[K];
    int lag = 0;
    for (int call = 0; call <= 3; call++) /* the lag is 3 calls: the fourth answers for the first */
        lag = o->sq_max_lagged_group(grp[0].ctx, K, mem, (const float *const *)xg, (const float *const *)vg, n, mx);
    cr_assert_eq(lag, 3, "the group's lag");
    bz_err e;
    for (int k = 0; k < K; k++) {
        alone.ops->noise_seed(alone.ctx, 11, (uint64_t)k);
        alone.ops->add_noise(alone.ctx, xa[k], 0.9f, sa[k], 0.0f, n);
        alone.ops->add_noise(alone.ctx, xa[k], 1.0f, NULL, sc[k], n);
        alone.ops->axpy(alone.ctx, xa[k], -0.5f, sa[k], va[k], n);
        alone.ops->axpy(alone.ctx, xa[k], 0.25f, va[k], NULL, n);
        double single_max;
        alone.ops->sq_stats(alone.ctx, xa[k], va[k], n, NULL, &single_max);
        cr_assert_eq(grp[k].ops->sync(grp[k].ctx, &e), 0, "%s", e.msg);
        cr_assert_eq(alone.ops->sync(alone.ctx, &e), 0, "%s", e.msg);
        float *x = gt_fetch(&grp[k], xg[k], n), *y = gt_fetch(&alone, xa[k], n);
        cr_assert_eq(gt_max_ulp(x, y, n), 0, "chain %d: group ops and single ops differ (%lld ulp)", k,
                     (long long)gt_max_ulp(x, y, n));
        cr_assert_eq(mx[k], single_max, "chain %d: lagged group max %.17g, single %.17g", k, mx[k], single_max);
        free(x), free(y);
    }
    for (int k = 0; k < K; k++) {
        float *bufs[3] = {xg[k], sg[k], vg[k]}, *abufs[3] = {xa[k], sa[k], va[k]};
        for (int j = 0; j < 3; j++) grp[k].ops->release(grp[k].ctx, bufs[j]), alone.ops->release(alone.ctx, abufs[j]);
    }
    for (int k = K - 1; k >= 0; k--) be_destroy(&grp[k]); /* siblings first, the owner last */
    be_destroy(&alone);
    gt_problem_free(&p);
}

Test(gpu_multichain, lockstep_group_matches_unbatched_within_float32_drift)
{
    GPU_REQUIRE();
    gt_problem p;
    gt_problem_load(&p, SPEC_HEAD "}");
    float *w0 = gt_weights(&p.a, 2, 0.05);
    be b[K];
    open_cuda_group(b, &p);
    mc_group *g = calloc(1, sizeof *g);
    bz_err e;
    cr_assert_eq(mc_create(g, &p.spec, b, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(mc_set_lockstep(g, true, &e), 0, "%s", e.msg);
    cr_assert(g->group_grad, "a CUDA group computes its gradients in one call");
    cr_assert_eq(mc_start(g, w0, &e), 0, "%s", e.msg);
    /* chain 0 runs ahead (as after a resume from a stop mid-block): the first lockstep rounds
     * batch chains 1 and 2 only, through the group's first handle, which steps no chain then */
    for (int s = 0; s < 5; s++) cr_assert_eq(smp_chain_step(&g->chains[0], &e), 0, "%s", e.msg);
    advance_and_compare_alone(&p, b, g, w0, "lockstep");
    mc_destroy(g);
    free(g);
    for (int k = 0; k < K; k++) be_destroy(&b[k]);
    free(w0);
    gt_problem_free(&p);
}
