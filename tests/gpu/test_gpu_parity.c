/* test_gpu_parity.c: the CUDA backend against the CPU reference (core/be_cpu.c) on the same
 * weights and mini-batches (DESIGN.md "Tests": GPU). Skipped, with the driver's words, where no
 * CUDA device answers.
 *
 * Problem: spin data N0 = 40, 5 classes, P = 5000 (more than one full-set chunk on both
 * backends: 4096 rows on CUDA, 2048 on the CPU), 1000 test rows, hidden [32, 16], lambda 0.01,
 * mini-batch 64. Tolerances (float32 GEMMs, different summation orders; TF32 off):
 *   full-set loss, U, test/val loss       relative 1e-5      (double sums of float logits)
 *   train/test/val error fraction         2 examples          (a near-tie may flip)
 *   w2                                    relative 1e-9
 *   mini-batch and full gradients         |dg|_2/|g|_2 < 1e-4, max|dg| < 1e-3 max|g|
 *   per-example moments g_sum, q_sum      |d|_2/|.|_2 < 1e-4
 *   axpy, adam                            1 ulp (both round each operation separately)
 *   sq_stats, dist2                       sum relative 1e-12, max exact
 *   100 steps O-B-A-B-O with the noise off (T = 0): |w_gpu - w_cpu| below 1e-3 of the distance
 *   travelled (float32 drift; one ReLU unit crossing zero in a different step would show as more).
 *   TF32 (opt-in): gradients within 2e-2. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "rng.h"

#define SPEC                                                                                                   \
    "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 40, \"classes\": 5, \"train\": 5000, \"test\": 1000, "       \
    "\"p_flip\": 0.3, \"seed\": 1}, \"model\": {\"hidden\": [32, 16], \"lambda\": 0.01}, \"init\": {\"seed\": 2}, " \
    "\"sampler\": {\"method\": \"pl\", \"T\": 0.001, \"steps\": 100, \"batch\": 64, \"seed\": 3}}"

typedef struct pair {
    gt_problem p;
    be cpu, gpu;
    int64_t n;
    float *w, *wc, *wg; /* host weights; the same on each backend */
} pair;

static void pair_open(pair *x, bool hold_out, bool tf32)
{
    gt_problem_load(&x->p, SPEC);
    if (hold_out) {
        bz_err e;
        cr_assert_eq(setup_hold_out(&x->p.d, 0.1, &e), 0, "%s", e.msg);
    }
    gt_open_cpu(&x->cpu, &x->p);
    gt_open_cuda(&x->gpu, &x->p, tf32);
    x->n = x->p.a.n;
    x->w = gt_weights(&x->p.a, 2, 0.05);
    x->wc = gt_buffer(&x->cpu, x->w, x->n);
    x->wg = gt_buffer(&x->gpu, x->w, x->n);
}

static void pair_close(pair *x)
{
    bz_err e;
    cr_assert_eq(x->gpu.ops->sync(x->gpu.ctx, &e), 0, "%s", e.msg);
    x->cpu.ops->release(x->cpu.ctx, x->wc);
    x->gpu.ops->release(x->gpu.ctx, x->wg);
    be_destroy(&x->cpu);
    be_destroy(&x->gpu);
    free(x->w);
    gt_problem_free(&x->p);
}

static void expect_rel(const char *what, double got, double want, double tol)
{
    double rel = fabs(got - want) / fmax(fabs(want), 1e-300);
    cr_assert(rel <= tol, "%s: cuda %.12g, cpu %.12g (relative %.3g > %.1g)", what, got, want, rel, tol);
}

static void expect_count(const char *what, double got, double want, int64_t rows)
{
    cr_assert(fabs(got - want) * (double)rows <= 2.0 + 1e-9, "%s: cuda %.6f, cpu %.6f (more than 2 of %lld rows)",
              what, got, want, (long long)rows);
}

static void expect_grad(const char *what, const float *got, const float *want, int64_t n, double l2, double mx)
{
    double r2 = gt_rel_l2(got, want, n), rm = gt_rel_max(got, want, n);
    cr_log_info("%s: relative L2 %.3g, relative max %.3g", what, r2, rm);
    cr_assert(r2 < l2 && rm < mx, "%s: relative L2 %.3g (< %.1g), max %.3g (< %.1g)", what, r2, l2, rm, mx);
}

/* ---- potential ---- */

Test(gpu_parity, observables)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, true, false);
    pot_obs oc, og;
    x.cpu.ops->observe(x.cpu.ctx, x.wc, true, &oc);
    x.gpu.ops->observe(x.gpu.ctx, x.wg, true, &og);
    expect_rel("loss", og.loss, oc.loss, 1e-5);
    expect_rel("U", og.U, oc.U, 1e-5);
    expect_rel("w2", og.w2, oc.w2, 1e-9);
    expect_rel("test_loss", og.test_loss, oc.test_loss, 1e-5);
    expect_rel("val_loss", og.val_loss, oc.val_loss, 1e-5);
    expect_count("train_err", og.train_err, oc.train_err, x.p.d.n_train);
    expect_count("test_err", og.test_err, oc.test_err, x.p.d.n_test);
    expect_count("val_err", og.val_err, oc.val_err, x.p.d.n_val);
    x.gpu.ops->observe(x.gpu.ctx, x.wg, false, &og);
    cr_assert(isnan(og.test_err) && isnan(og.test_loss) && !isnan(og.val_loss), "test set only when asked for");
    pair_close(&x);
}

Test(gpu_parity, minibatch_gradient)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    const int32_t P = (int32_t)x.p.d.n_train, B = x.p.spec.sampler.batch;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)P), idx[64];
    for (int32_t i = 0; i < P; i++) perm[i] = i;
    bz_rng r;
    rng_seed(&r, 9, 0);
    float *gc = gt_buffer(&x.cpu, NULL, x.n), *gg = gt_buffer(&x.gpu, NULL, x.n);
    for (int rep = 0; rep < 5; rep++) { /* calls 3.. run the captured graph */
        rng_sample_without_replacement(&r, perm, P, B, idx);
        x.cpu.ops->grad_batch(x.cpu.ctx, x.wc, idx, B, gc);
        x.gpu.ops->grad_batch(x.gpu.ctx, x.wg, idx, B, gg);
        float *hc = gt_fetch(&x.cpu, gc, x.n), *hg = gt_fetch(&x.gpu, gg, x.n);
        expect_grad("grad_batch", hg, hc, x.n, 1e-4, 1e-3);
        free(hc);
        free(hg);
    }
    free(perm);
    x.cpu.ops->release(x.cpu.ctx, gc);
    x.gpu.ops->release(x.gpu.ctx, gg);
    pair_close(&x);
}

/* The graph replays exactly what the eager calls compute. */
Test(gpu_parity, graph_matches_eager)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    int32_t idx[64];
    for (int k = 0; k < 64; k++) idx[k] = (k * 37) % (int32_t)x.p.d.n_train;
    float *g = gt_buffer(&x.gpu, NULL, x.n);
    float *first = NULL;
    for (int rep = 0; rep < 6; rep++) {
        x.gpu.ops->grad_batch(x.gpu.ctx, x.wg, idx, 64, g);
        float *h = gt_fetch(&x.gpu, g, x.n);
        if (!first) first = h;
        else {
            cr_assert(gt_rel_max(h, first, x.n) <= 1e-6, "call %d differs from the first by %.3g", rep + 1,
                      gt_rel_max(h, first, x.n));
            free(h);
        }
    }
    free(first);
    x.gpu.ops->release(x.gpu.ctx, g);
    pair_close(&x);
}

Test(gpu_parity, full_gradient)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    float *gc = gt_buffer(&x.cpu, NULL, x.n), *gg = gt_buffer(&x.gpu, NULL, x.n);
    double Uc = x.cpu.ops->grad_full(x.cpu.ctx, x.wc, gc), Ug = x.gpu.ops->grad_full(x.gpu.ctx, x.wg, gg);
    expect_rel("U from grad_full", Ug, Uc, 1e-5);
    float *hc = gt_fetch(&x.cpu, gc, x.n), *hg = gt_fetch(&x.gpu, gg, x.n);
    expect_grad("grad_full", hg, hc, x.n, 1e-4, 1e-3);
    free(hc);
    free(hg);
    x.cpu.ops->release(x.cpu.ctx, gc);
    x.gpu.ops->release(x.gpu.ctx, gg);
    pair_close(&x);
}

static void compare_moments(pair *x, const int32_t *idx, int64_t rows)
{
    const size_t nb = sizeof(double) * (size_t)x->n;
    double *gc = calloc(1, nb), *qc = calloc(1, nb), *gg = calloc(1, nb), *qg = calloc(1, nb);
    cr_assert(gc && qc && gg && qg);
    x->cpu.ops->moments(x->cpu.ctx, x->wc, idx, rows, gc, qc);
    x->gpu.ops->moments(x->gpu.ctx, x->wg, idx, rows, gg, qg);
    double rg = gt_rel_l2_d(gg, gc, x->n), rq = gt_rel_l2_d(qg, qc, x->n);
    cr_log_info("moments over %lld rows%s: g_sum %.3g, q_sum %.3g", (long long)rows, idx ? " (subset)" : "", rg, rq);
    cr_assert(rg < 1e-4 && rq < 1e-4, "moments: g_sum %.3g, q_sum %.3g (relative L2, < 1e-4)", rg, rq);
    /* accumulated into, not overwritten */
    x->gpu.ops->moments(x->gpu.ctx, x->wg, idx, rows, gg, qg);
    for (int64_t i = 0; i < x->n; i++) gc[i] *= 2, qc[i] *= 2;
    cr_assert(gt_rel_l2_d(qg, qc, x->n) < 1e-4, "a second call adds to q_sum");
    free(gc);
    free(qc);
    free(gg);
    free(qg);
}

Test(gpu_parity, moments)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    compare_moments(&x, NULL, x.p.d.n_train);
    const int32_t P = (int32_t)x.p.d.n_train, M = 4500; /* a subset: two chunks, gathered */
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)P), *idx = malloc(sizeof(int32_t) * M);
    for (int32_t i = 0; i < P; i++) perm[i] = i;
    bz_rng r;
    rng_seed(&r, 4, 0);
    rng_sample_without_replacement(&r, perm, P, M, idx);
    compare_moments(&x, idx, M);
    free(perm);
    free(idx);
    pair_close(&x);
}

Test(gpu_parity, tf32_gradient)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, true);
    float *gc = gt_buffer(&x.cpu, NULL, x.n), *gg = gt_buffer(&x.gpu, NULL, x.n);
    x.cpu.ops->grad_full(x.cpu.ctx, x.wc, gc);
    x.gpu.ops->grad_full(x.gpu.ctx, x.wg, gg);
    float *hc = gt_fetch(&x.cpu, gc, x.n), *hg = gt_fetch(&x.gpu, gg, x.n);
    expect_grad("grad_full (tf32)", hg, hc, x.n, 2e-2, 2e-2);
    free(hc);
    free(hg);
    x.cpu.ops->release(x.cpu.ctx, gc);
    x.gpu.ops->release(x.gpu.ctx, gg);
    pair_close(&x);
}

/* ---- elementwise ops and reductions ---- */

static float *random_vec(int64_t n, uint64_t seed, double lo, double hi)
{
    float *v = malloc(sizeof(float) * (size_t)n);
    bz_rng r;
    rng_seed(&r, seed, 0);
    for (int64_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * rng_uniform(&r));
    return v;
}

Test(gpu_parity, elementwise)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    const int64_t n = 100003;
    float *hx = random_vec(n, 1, -2, 2), *hy = random_vec(n, 2, -2, 2), *hv = random_vec(n, 3, 0.5, 3);
    be *bs[2] = {&x.cpu, &x.gpu};
    float *out[2][4];
    double sums[2][2], maxs[2][2], d2[2];
    for (int k = 0; k < 2; k++) {
        be *b = bs[k];
        float *X = gt_buffer(b, hx, n), *Y = gt_buffer(b, hy, n), *V = gt_buffer(b, hv, n);
        float *M1 = gt_buffer(b, NULL, n), *M2 = gt_buffer(b, NULL, n);
        b->ops->axpy(b->ctx, Y, -0.37f, X, V, n);
        b->ops->axpy(b->ctx, Y, 1.3f, X, NULL, n);
        b->ops->sq_stats(b->ctx, Y, V, n, &sums[k][0], &maxs[k][0]);
        b->ops->sq_stats(b->ctx, Y, NULL, n, &sums[k][1], &maxs[k][1]);
        d2[k] = b->ops->dist2(b->ctx, X, Y, n);
        for (int64_t t = 1; t <= 3; t++) b->ops->adam(b->ctx, X, Y, M1, M2, 1e-3f, 0.9f, 0.999f, 1e-8f, t, n);
        out[k][0] = gt_fetch(b, Y, n);
        out[k][1] = gt_fetch(b, X, n);
        out[k][2] = gt_fetch(b, M1, n);
        out[k][3] = gt_fetch(b, M2, n);
        float *bufs[5] = {X, Y, V, M1, M2};
        for (int j = 0; j < 5; j++) b->ops->release(b->ctx, bufs[j]);
    }
    const char *names[4] = {"axpy", "adam w", "adam m1", "adam m2"};
    for (int j = 0; j < 4; j++) {
        int64_t u = gt_max_ulp(out[1][j], out[0][j], n);
        cr_assert(u <= 1, "%s: cuda and cpu differ by %lld ulp", names[j], (long long)u);
        free(out[0][j]);
        free(out[1][j]);
    }
    for (int j = 0; j < 2; j++) {
        expect_rel("sq_stats sum", sums[1][j], sums[0][j], 1e-12);
        cr_assert_eq(maxs[1][j], maxs[0][j], "sq_stats max: cuda %.17g, cpu %.17g", maxs[1][j], maxs[0][j]);
    }
    expect_rel("dist2", d2[1], d2[0], 1e-12);
    /* a NaN reaches the max, as on the CPU */
    hx[n / 2] = NAN;
    float *X = gt_buffer(&x.gpu, hx, n);
    double s, m;
    x.gpu.ops->sq_stats(x.gpu.ctx, X, NULL, n, &s, &m);
    cr_assert(isnan(m), "sq_stats max must propagate a NaN");
    x.gpu.ops->release(x.gpu.ctx, X);
    free(hx);
    free(hy);
    free(hv);
    pair_close(&x);
}

/* The lagged z_max of the runaway guard answers with the value of CU_LAG calls earlier. */
Test(gpu_parity, lagged_max)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    cr_assert(x.gpu.ops->sq_max_lagged && !x.cpu.ops->sq_max_lagged);
    const int64_t n = 5000;
    float *h = random_vec(n, 5, -1, 1), *hv = random_vec(n, 6, 1, 1);
    float *p = gt_buffer(&x.gpu, NULL, n), *v = gt_buffer(&x.gpu, hv, n);
    double want[12];
    for (int k = 0; k < 12; k++) {
        h[(k * 97) % n] = (float)(3.0 + k); /* max p^2 v = (3 + k)^2 */
        want[k] = (3.0 + k) * (3.0 + k);
        x.gpu.ops->upload(x.gpu.ctx, p, h, n);
        double got;
        int lag = x.gpu.ops->sq_max_lagged(x.gpu.ctx, p, v, n, &got);
        cr_assert(lag >= 1 && lag <= 8, "lag %d", lag);
        if (k >= lag) cr_assert_eq(got, want[k - lag], "call %d: %.17g, expected %.17g (lag %d)", k, got, want[k - lag], lag);
        else cr_assert_eq(got, 0.0);
    }
    x.gpu.ops->release(x.gpu.ctx, p);
    x.gpu.ops->release(x.gpu.ctx, v);
    free(h);
    free(hv);
    pair_close(&x);
}

/* ---- noise ---- */

Test(gpu_parity, noise_statistics_and_state)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    be *b = &x.gpu;
    const int64_t n = 1 << 20;
    float *buf = gt_buffer(b, NULL, n);
    b->ops->noise_seed(b->ctx, 3, 2000);
    b->ops->add_noise(b->ctx, buf, 0.0f, NULL, 1.0f, n);
    float *h = gt_fetch(b, buf, n);
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += h[i], ss += (double)h[i] * h[i];
    double mean = s / n, var = ss / n - mean * mean;
    cr_assert(fabs(mean) < 5.0 / sqrt((double)n), "noise mean %.5f", mean);
    cr_assert(fabs(var - 1.0) < 5.0 * sqrt(2.0 / n), "noise variance %.5f", var);
    /* the state round-trips: the same draws after a reload */
    const size_t ns = b->ops->noise_state_size(b->ctx);
    cr_assert(ns != x.cpu.ops->noise_state_size(x.cpu.ctx), "a CPU checkpoint's noise state must not load here");
    void *state = malloc(ns);
    b->ops->noise_save(b->ctx, state);
    b->ops->add_noise(b->ctx, buf, 0.5f, NULL, 2.0f, n);
    float *first = gt_fetch(b, buf, n);
    b->ops->upload(b->ctx, buf, h, n);
    b->ops->noise_load(b->ctx, state);
    b->ops->add_noise(b->ctx, buf, 0.5f, NULL, 2.0f, n);
    float *again = gt_fetch(b, buf, n);
    cr_assert(memcmp(first, again, sizeof(float) * (size_t)n) == 0, "noise after noise_load differs");
    /* per-component amplitudes: (x - a x0) / s is N(0, 1) */
    float *hs = random_vec(n, 8, 0.5, 2.0);
    float *S = gt_buffer(b, hs, n);
    b->ops->upload(b->ctx, buf, h, n);
    b->ops->add_noise(b->ctx, buf, 0.9f, S, 0.0f, n);
    float *y = gt_fetch(b, buf, n);
    s = ss = 0;
    for (int64_t i = 0; i < n; i++) {
        double z = ((double)y[i] - 0.9 * h[i]) / hs[i];
        s += z, ss += z * z;
    }
    var = ss / n - (s / n) * (s / n);
    cr_assert(fabs(var - 1.0) < 5.0 * sqrt(2.0 / n), "scaled noise variance %.5f", var);
    /* another stream gives other numbers */
    b->ops->noise_seed(b->ctx, 3, 2001);
    b->ops->add_noise(b->ctx, buf, 0.0f, NULL, 1.0f, n);
    float *other = gt_fetch(b, buf, n);
    cr_assert(memcmp(other, h, sizeof(float) * 1024) != 0, "streams must differ");
    b->ops->release(b->ctx, buf);
    b->ops->release(b->ctx, S);
    free(h), free(first), free(again), free(hs), free(y), free(other), free(state);
    pair_close(&x);
}

/* ---- dynamics with the noise off ---- */

/* O-B-A-B-O as pl_step does it (noise amplitudes 0, fixed masses), steps times. */
static void noiseless_steps(be *b, float *w, float *p, float *g, const float *inv_m, const float *sig, int32_t P,
                            int32_t B, int steps, uint64_t seed)
{
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)P), *idx = malloc(sizeof(int32_t) * (size_t)B);
    for (int32_t i = 0; i < P; i++) perm[i] = i;
    bz_rng r;
    rng_seed(&r, seed, 0);
    const int64_t n = b->layout.n;
    const float h = 0.2f, cc = (float)exp(-0.1 * 0.2 / 2);
    rng_sample_without_replacement(&r, perm, P, B, idx);
    b->ops->grad_batch(b->ctx, w, idx, B, g);
    for (int s = 0; s < steps; s++) {
        b->ops->add_noise(b->ctx, p, cc, sig, 0.0f, n);
        b->ops->axpy(b->ctx, p, -0.5f * h, g, NULL, n);
        b->ops->axpy(b->ctx, w, h, p, inv_m, n);
        rng_sample_without_replacement(&r, perm, P, B, idx);
        b->ops->grad_batch(b->ctx, w, idx, B, g);
        b->ops->axpy(b->ctx, p, -0.5f * h, g, NULL, n);
        b->ops->add_noise(b->ctx, p, cc, sig, 0.0f, n);
    }
    free(perm);
    free(idx);
}

static double dist(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

Test(gpu_parity, hundred_steps_without_noise)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    const int64_t n = x.n;
    float *inv_m = random_vec(n, 11, 0.5, 1.0), *zero = calloc((size_t)n, sizeof(float));
    float *wend[2];
    be *bs[2] = {&x.cpu, &x.gpu};
    for (int k = 0; k < 2; k++) {
        be *b = bs[k];
        float *w = gt_buffer(b, x.w, n), *p = gt_buffer(b, NULL, n), *g = gt_buffer(b, NULL, n);
        float *im = gt_buffer(b, inv_m, n), *sig = gt_buffer(b, zero, n);
        noiseless_steps(b, w, p, g, im, sig, (int32_t)x.p.d.n_train, 64, 100, 21);
        wend[k] = gt_fetch(b, w, n);
        float *bufs[5] = {w, p, g, im, sig};
        for (int j = 0; j < 5; j++) b->ops->release(b->ctx, bufs[j]);
    }
    double travelled = dist(wend[0], x.w, n), apart = dist(wend[1], wend[0], n);
    cr_log_info("100 noiseless steps: travelled %.4g, cuda-cpu %.3g (%.3g of it)", travelled, apart, apart / travelled);
    cr_assert(travelled > 1e-3, "the weights should move (%.3g)", travelled);
    cr_assert(apart < 1e-3 * travelled, "cuda and cpu drift apart by %.3g of the distance travelled", apart / travelled);
    free(wend[0]);
    free(wend[1]);
    free(inv_m);
    free(zero);
    pair_close(&x);
}

/* ---- failures ---- */

Test(gpu_parity, job_too_large_for_the_device)
{
    GPU_REQUIRE();
    gt_problem p;
    gt_problem_load(&p, SPEC);
    const int32_t sizes[4] = {40, 60000, 60000, 5};
    nn_arch a;
    bz_err e;
    cr_assert_eq(nn_arch_init(&a, sizes, 4, true, &e), 0);
    be b;
    int rc = be_cuda_network(&b, &a, &p.d, 0.01, 64, NULL, &e);
    cr_assert_eq(rc, BZ_ENOMEM, "a %lld-weight network must not fit (rc %d: %s)", (long long)a.n, rc, e.msg);
    cr_assert(strstr(e.msg, "MiB on CUDA device 0") && strstr(e.msg, "free"), "message: %s", e.msg);
    cr_log_info("%s", e.msg);
    gt_problem_free(&p);
}

Test(gpu_parity, errors_are_sticky_and_reported_by_sync)
{
    GPU_REQUIRE();
    pair x;
    pair_open(&x, false, false);
    int32_t idx[65] = {0};
    float *g = gt_buffer(&x.gpu, NULL, x.n);
    bz_err e;
    cr_assert_eq(x.gpu.ops->sync(x.gpu.ctx, &e), 0);
    x.gpu.ops->grad_batch(x.gpu.ctx, x.wg, idx, 65, g); /* the backend was opened for batches up to 64 */
    pot_obs o;
    x.gpu.ops->observe(x.gpu.ctx, x.wg, false, &o);
    cr_assert(isnan(o.U), "after an error value calls return NaN");
    cr_assert_eq(x.gpu.ops->sync(x.gpu.ctx, &e), BZ_EBACKEND);
    cr_assert(strstr(e.msg, "mini-batch of 65 rows"), "message: %s", e.msg);
    x.gpu.ops->release(x.gpu.ctx, g);
    x.gpu.ops->release(x.gpu.ctx, x.wg);
    x.cpu.ops->release(x.cpu.ctx, x.wc);
    be_destroy(&x.gpu);
    be_destroy(&x.cpu);
    free(x.w);
    gt_problem_free(&x.p);
}
