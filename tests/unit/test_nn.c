/* test_nn.c: the BLAS network against a plain double-precision reference written here with loops:
 * forward and loss agree to float32 precision, the analytic gradient matches central finite
 * differences of the reference, and the flat layout is exactly ALGORITHM.md §1. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "potential.h"
#include "rng.h"

/* ---- reference: loops in double, layout read straight from ALGORITHM.md §1 ---- */

/* Offsets computed independently of nn_arch: [W_1 (N1,N0), b_1, W_2, b_2, ...]. */
static int64_t ref_offsets(const int32_t *N, int L, int bias, int64_t *wo, int64_t *bo)
{
    int64_t off = 0;
    for (int l = 0; l < L; l++) {
        wo[l] = off;
        off += (int64_t)N[l + 1] * N[l];
        bo[l] = bias ? off : -1;
        if (bias) off += N[l + 1];
    }
    return off;
}

/* Loss of one example, in double; w given in double. */
static double ref_loss_one(const int32_t *N, int L, int bias, const double *w, const float *x, int y)
{
    int64_t wo[NN_MAX_LAYERS], bo[NN_MAX_LAYERS];
    ref_offsets(N, L, bias, wo, bo);
    double a[4096], z[4096];
    for (int i = 0; i < N[0]; i++) a[i] = x[i];
    for (int l = 0; l < L; l++) {
        for (int j = 0; j < N[l + 1]; j++) {
            double s = bias ? w[bo[l] + j] : 0.0;
            for (int i = 0; i < N[l]; i++) s += w[wo[l] + (int64_t)j * N[l] + i] * a[i];
            z[j] = s;
        }
        for (int j = 0; j < N[l + 1]; j++) a[j] = (l + 1 < L) ? (z[j] > 0 ? z[j] : 0) : z[j];
    }
    int C = N[L];
    double m = a[0];
    for (int c = 1; c < C; c++) m = a[c] > m ? a[c] : m;
    double s = 0;
    for (int c = 0; c < C; c++) s += exp(a[c] - m);
    return log(s) + m - a[y];
}

static double ref_mean_loss(const int32_t *N, int L, int bias, const double *w, const float *x,
                            const int32_t *y, const int32_t *idx, int rows)
{
    double s = 0;
    for (int k = 0; k < rows; k++) s += ref_loss_one(N, L, bias, w, x + (size_t)idx[k] * N[0], y[idx[k]]);
    return s / rows;
}

/* ---- fixtures ---- */

typedef struct {
    nn_arch a;
    int32_t N[NN_MAX_LAYERS + 1];
    int L;
    int64_t P;
    float *x;
    int32_t *y;
    float *w;
} net_case;

static void make_case(net_case *c, const int32_t *N, int L, int bias, int64_t P, uint64_t seed)
{
    memcpy(c->N, N, sizeof(int32_t) * (size_t)(L + 1));
    c->L = L;
    c->P = P;
    cr_assert_eq(nn_arch_init(&c->a, N, L + 1, bias, NULL), 0);
    bz_rng r;
    rng_seed(&r, seed, 7);
    c->x = malloc(sizeof(float) * (size_t)(P * N[0]));
    c->y = malloc(sizeof(int32_t) * (size_t)P);
    c->w = malloc(sizeof(float) * (size_t)c->a.n);
    for (int64_t i = 0; i < P * N[0]; i++) c->x[i] = (float)rng_normal(&r);
    for (int64_t i = 0; i < P; i++) c->y[i] = (int32_t)rng_below(&r, (uint64_t)N[L]);
    nn_init_he(&c->a, c->w, seed + 1);
    /* Non-zero biases so the bias path is exercised. */
    if (bias)
        for (int l = 0; l < L; l++)
            for (int j = 0; j < N[l + 1]; j++) c->w[c->a.b_off[l] + j] = 0.1f * (float)rng_normal(&r);
}

static void free_case(net_case *c)
{
    free(c->x);
    free(c->y);
    free(c->w);
}

static double *to_double(const float *w, int64_t n)
{
    double *d = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = w[i];
    return d;
}

/* ---- tests ---- */

Test(nn, forward_loss_matches_double_reference)
{
    const int32_t shapes[][4] = {{7, 5, 4, 3}, {12, 9, 6, 10}, {30, 16, 8, 5}};
    const int batches[] = {1, 3, 17, 64};
    for (int s = 0; s < 3; s++)
        for (int bias = 0; bias <= 1; bias++)
            for (int bi = 0; bi < 4; bi++) {
                net_case c;
                make_case(&c, shapes[s], 3, bias, 100, 11 + s * 10 + bias);
                int B = batches[bi];
                int32_t idx[64], perm[100];
                for (int i = 0; i < 100; i++) perm[i] = i;
                bz_rng r;
                rng_seed(&r, 5, bi);
                rng_sample_without_replacement(&r, perm, 100, B, idx);
                nn_work ws;
                cr_assert_eq(nn_work_init(&ws, &c.a, 64, NULL), 0);
                double loss_sum;
                int64_t n_err;
                nn_forward(&c.a, &ws, c.w, c.x, c.y, idx, B, &loss_sum, &n_err);
                double *wd = to_double(c.w, c.a.n);
                double ref = ref_mean_loss(c.N, 3, bias, wd, c.x, c.y, idx, B);
                double got = loss_sum / B;
                cr_assert(fabs(got - ref) <= 1e-5 * (1 + fabs(ref)),
                          "shape %d bias %d B %d: loss %.9g vs reference %.9g", s, bias, B, got, ref);
                cr_assert(n_err >= 0 && n_err <= B);
                free(wd);
                nn_work_free(&ws);
                free_case(&c);
            }
}

/* Max over parameters of |analytic - FD| / max(|FD|, floor), per layer, weights and biases. */
Test(nn, gradient_matches_central_differences)
{
    const int32_t N[4] = {6, 5, 4, 3};
    for (int bias = 0; bias <= 1; bias++) {
        net_case c;
        make_case(&c, N, 3, bias, 40, 101 + bias);
        int32_t idx[16];
        for (int k = 0; k < 16; k++) idx[k] = (k * 7) % 40;
        nn_work ws;
        cr_assert_eq(nn_work_init(&ws, &c.a, 16, NULL), 0);
        float *g = malloc(sizeof(float) * (size_t)c.a.n);
        nn_loss_grad(&c.a, &ws, c.w, c.x, c.y, idx, 16, 1.0f / 16, false, g, NULL, NULL);
        double *wd = to_double(c.w, c.a.n);
        const double eps = 1e-6;
        for (int l = 0; l < 3; l++) {
            int64_t seg[2][2] = {{c.a.w_off[l], (int64_t)N[l + 1] * N[l]}, {c.a.b_off[l], N[l + 1]}};
            for (int part = 0; part < (bias ? 2 : 1); part++) {
                double worst = 0;
                for (int64_t i = seg[part][0]; i < seg[part][0] + seg[part][1]; i++) {
                    double keep = wd[i];
                    wd[i] = keep + eps;
                    double lp = ref_mean_loss(N, 3, bias, wd, c.x, c.y, idx, 16);
                    wd[i] = keep - eps;
                    double lm = ref_mean_loss(N, 3, bias, wd, c.x, c.y, idx, 16);
                    wd[i] = keep;
                    double fd = (lp - lm) / (2 * eps);
                    double rel = fabs(g[i] - fd) / fmax(fabs(fd), 1e-3);
                    worst = fmax(worst, rel);
                }
                cr_assert(worst < 1e-3, "bias %d layer %d %s: max relative error %.3g", bias, l + 1,
                          part ? "b" : "W", worst);
            }
        }
        free(wd);
        free(g);
        nn_work_free(&ws);
        free_case(&c);
    }
}

/* The gradient of a single weight must land at exactly the flat position ALGORITHM.md gives:
 * perturbing W_2[j][i] (and only it) changes the loss as g[w_off(W_2) + j*N1 + i] predicts.
 * Swapping two layers or transposing a W would move the index and fail this. */
Test(nn, flat_layout_is_algorithm_md)
{
    const int32_t N[4] = {4, 3, 5, 2};
    nn_arch a;
    cr_assert_eq(nn_arch_init(&a, N, 4, true, NULL), 0);
    int64_t wo[3], bo[3];
    int64_t n = ref_offsets(N, 3, 1, wo, bo);
    cr_assert_eq(a.n, n);
    cr_assert_eq(a.n, 3 * 4 + 3 + 5 * 3 + 5 + 2 * 5 + 2);
    for (int l = 0; l < 3; l++) {
        cr_assert_eq(a.w_off[l], wo[l]);
        cr_assert_eq(a.b_off[l], bo[l]);
    }
    cr_assert_eq(a.w_off[1], 15); /* W_2 follows W_1 (12) and b_1 (3) */

    /* Every W_2[j][i] (row j = output unit, column i = input unit) that moves the loss: the
     * analytic gradient at nn's flat index must match a finite difference of the reference taken
     * at the reference's own index for the same (layer, j, i). */
    net_case c;
    make_case(&c, N, 3, 1, 40, 3);
    nn_work ws;
    cr_assert_eq(nn_work_init(&ws, &c.a, 40, NULL), 0);
    float *g = malloc(sizeof(float) * (size_t)a.n);
    int32_t idx[40];
    for (int k = 0; k < 40; k++) idx[k] = k;
    nn_loss_grad(&c.a, &ws, c.w, c.x, c.y, idx, 40, 1.0f / 40, false, g, NULL, NULL);
    double *wd = to_double(c.w, a.n);
    int checked = 0;
    for (int j = 0; j < N[2]; j++)
        for (int i = 0; i < N[1]; i++) {
            int64_t flat = wo[1] + (int64_t)j * N[1] + i;
            double eps = 1e-6, keep = wd[flat];
            wd[flat] = keep + eps;
            double lp = ref_mean_loss(N, 3, 1, wd, c.x, c.y, idx, 40);
            wd[flat] = keep - eps;
            double lm = ref_mean_loss(N, 3, 1, wd, c.x, c.y, idx, 40);
            wd[flat] = keep;
            double fd = (lp - lm) / (2 * eps);
            if (fabs(fd) < 1e-5) continue;
            checked++;
            cr_assert(fabs(g[a.w_off[1] + (int64_t)j * N[1] + i] - fd) < 1e-3 * fabs(fd),
                      "W_2[%d][%d]: g %.6g fd %.6g", j, i, g[a.w_off[1] + (int64_t)j * N[1] + i], fd);
        }
    cr_assert(checked >= 5, "only %d entries of W_2 move the loss", checked);
    free(wd);
    free(g);
    nn_work_free(&ws);
    free_case(&c);
}

Test(nn, he_init_range_and_determinism)
{
    const int32_t N[3] = {50, 40, 10};
    nn_arch a;
    cr_assert_eq(nn_arch_init(&a, N, 3, true, NULL), 0);
    float *w1 = malloc(sizeof(float) * (size_t)a.n), *w2 = malloc(sizeof(float) * (size_t)a.n);
    nn_init_he(&a, w1, 9);
    nn_init_he(&a, w2, 9);
    cr_assert_eq(memcmp(w1, w2, sizeof(float) * (size_t)a.n), 0);
    nn_init_he(&a, w2, 10);
    cr_assert_neq(memcmp(w1, w2, sizeof(float) * (size_t)a.n), 0);
    /* Layer 1: uniform in +-sqrt(6/50): variance lim^2/3 = 2/50 (He). Check within 5 SE. */
    double lim = sqrt(6.0 / 50), s2 = 0;
    int64_t cnt = 40 * 50;
    for (int64_t i = 0; i < cnt; i++) {
        cr_assert(fabs(w1[i]) <= lim);
        s2 += (double)w1[i] * w1[i];
    }
    double var = s2 / cnt, expect = lim * lim / 3;
    double se = sqrt((pow(lim, 4) / 5 - expect * expect) / cnt);
    cr_assert(fabs(var - expect) < 5 * se, "var %.5f expect %.5f se %.5f", var, expect, se);
    for (int j = 0; j < 40; j++) cr_assert_eq(w1[a.b_off[0] + j], 0.0f);
    free(w1);
    free(w2);
}

/* Full-set evaluation in chunks equals one big pass, and its gradient equals the mean of the
 * mini-batch gradients over a partition of the set. */
Test(nn, chunked_full_set_matches_single_pass)
{
    const int32_t N[4] = {10, 8, 6, 4};
    net_case c;
    make_case(&c, N, 3, 1, 103, 77);
    nn_work small, big;
    cr_assert_eq(nn_work_init(&small, &c.a, 16, NULL), 0);
    cr_assert_eq(nn_work_init(&big, &c.a, 103, NULL), 0);
    float *g1 = malloc(sizeof(float) * (size_t)c.a.n), *g2 = malloc(sizeof(float) * (size_t)c.a.n);
    double l1, l2, e1, e2;
    nn_eval_full(&c.a, &small, c.w, c.x, c.y, 103, &l1, &e1, g1);
    nn_eval_full(&c.a, &big, c.w, c.x, c.y, 103, &l2, &e2, g2);
    cr_assert(fabs(l1 - l2) < 1e-6 * (1 + fabs(l2)));
    cr_assert_eq(e1, e2);
    for (int64_t i = 0; i < c.a.n; i++) cr_assert(fabs(g1[i] - g2[i]) < 1e-5 * (1 + fabs(g2[i])), "i %ld", (long)i);
    free(g1);
    free(g2);
    nn_work_free(&small);
    nn_work_free(&big);
    free_case(&c);
}

/* U = loss + (lambda/2)|w|^2/n and the regulariser's gradient lambda w/n, against FD of U. */
Test(potential, U_and_gradient_include_regulariser)
{
    const int32_t N[3] = {5, 4, 3};
    net_case c;
    make_case(&c, N, 2, 1, 30, 5);
    ds_data d = {.n_in = 5, .classes = 3, .n_train = 30, .x_train = c.x, .y_train = c.y, .geometric_bound = -1};
    pot_ctx p;
    cr_assert_eq(pot_init(&p, &c.a, &d, 0.5, 30, NULL), 0);
    pot_obs o;
    pot_observe(&p, c.w, true, &o);
    double w2 = 0;
    for (int64_t i = 0; i < c.a.n; i++) w2 += (double)c.w[i] * c.w[i];
    w2 /= c.a.n;
    cr_assert(fabs(o.w2 - w2) < 1e-12);
    cr_assert(fabs(o.U - (o.loss + 0.25 * w2)) < 1e-12);
    cr_assert(isnan(o.test_err));
    float *g = malloc(sizeof(float) * (size_t)c.a.n);
    double U = pot_grad_full(&p, c.w, g);
    cr_assert(fabs(U - o.U) < 1e-6);
    double *wd = to_double(c.w, c.a.n);
    int32_t all[30];
    for (int k = 0; k < 30; k++) all[k] = k;
    for (int64_t i = 0; i < c.a.n; i += 3) {
        double keep = wd[i], eps = 1e-6, up, dn;
        wd[i] = keep + eps;
        double r2 = 0;
        for (int64_t j = 0; j < c.a.n; j++) r2 += wd[j] * wd[j];
        up = ref_mean_loss(N, 2, 1, wd, c.x, c.y, all, 30) + 0.25 * r2 / c.a.n;
        wd[i] = keep - eps;
        r2 = 0;
        for (int64_t j = 0; j < c.a.n; j++) r2 += wd[j] * wd[j];
        dn = ref_mean_loss(N, 2, 1, wd, c.x, c.y, all, 30) + 0.25 * r2 / c.a.n;
        wd[i] = keep;
        double fd = (up - dn) / (2 * eps);
        cr_assert(fabs(g[i] - fd) < 1e-3 * fmax(fabs(fd), 1e-3), "i %ld g %.6g fd %.6g", (long)i, g[i], fd);
    }
    free(wd);
    free(g);
    pot_free(&p);
    free_case(&c);
}

/* The exact per-example moments (one extra GEMM per layer on squared deltas and inputs) against
 * a brute-force loop over single-example gradients, with and without an index list, in chunks
 * smaller than the set so the chunk boundary is crossed. */
Test(nn, grad_moments_match_per_example_loop)
{
    const int32_t N[4] = {9, 7, 5, 3};
    for (int bias = 0; bias <= 1; bias++) {
        net_case c;
        make_case(&c, N, 3, bias, 37, 300 + bias);
        nn_work ws, one;
        cr_assert_eq(nn_work_init(&ws, &c.a, 8, NULL), 0);
        cr_assert_eq(nn_work_init(&one, &c.a, 1, NULL), 0);
        int64_t n = c.a.n;
        double *g1 = calloc((size_t)n, sizeof(double)), *q1 = calloc((size_t)n, sizeof(double));
        double *g2 = calloc((size_t)n, sizeof(double)), *q2 = calloc((size_t)n, sizeof(double));
        float *tmp = malloc(sizeof(float) * (size_t)n), *ge = malloc(sizeof(float) * (size_t)n);
        int32_t idx[20];
        for (int k = 0; k < 20; k++) idx[k] = (k * 11 + 3) % 37;
        for (int pass = 0; pass < 2; pass++) {
            const int32_t *use = pass ? idx : NULL;
            int rows = pass ? 20 : 37;
            for (int64_t i = 0; i < n; i++) g1[i] = q1[i] = g2[i] = q2[i] = 0;
            nn_grad_moments(&c.a, &ws, c.w, c.x, c.y, use, rows, g1, q1, tmp, NULL);
            for (int k = 0; k < rows; k++) {
                int32_t row = use ? use[k] : k;
                nn_loss_grad(&c.a, &one, c.w, c.x, c.y, &row, 1, 1.0f, false, ge, NULL, NULL);
                for (int64_t i = 0; i < n; i++) {
                    g2[i] += ge[i];
                    q2[i] += (double)ge[i] * ge[i];
                }
            }
            for (int64_t i = 0; i < n; i++) {
                cr_assert(fabs(g1[i] - g2[i]) <= 1e-4 * (1 + fabs(g2[i])), "pass %d g[%ld] %g vs %g", pass,
                          (long)i, g1[i], g2[i]);
                cr_assert(fabs(q1[i] - q2[i]) <= 1e-4 * (1 + fabs(q2[i])), "pass %d q[%ld] %g vs %g", pass,
                          (long)i, q1[i], q2[i]);
            }
        }
        free(g1), free(q1), free(g2), free(q2), free(tmp), free(ge);
        nn_work_free(&ws);
        nn_work_free(&one);
        free_case(&c);
    }
}
