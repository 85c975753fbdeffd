/* noise_diag.c: mini-batch noise statistics (see noise_diag.h). */
#include "noise_diag.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov's limiting distribution Q(l) = 2 sum_k (-1)^(k-1) exp(-2 k^2 l^2). */
static double kolmogorov_q(double l)
{
    if (l < 0.2) return 1.0;
    double sum = 0.0;
    for (int k = 1; k <= 100; k++) {
        double term = exp(-2.0 * k * k * l * l);
        sum += (k % 2 ? 2.0 : -2.0) * term;
        if (term < 1e-12) break;
    }
    return sum < 0 ? 0 : sum > 1 ? 1 : sum;
}

double noise_ks_pvalue(double *x, int32_t m)
{
    qsort(x, (size_t)m, sizeof(double), cmp_double);
    double dmax = 0.0;
    for (int32_t i = 0; i < m; i++) {
        double F = 0.5 * erfc(-x[i] / sqrt(2.0));
        double lo = F - (double)i / m, hi = (double)(i + 1) / m - F;
        dmax = fmax(dmax, fmax(lo, hi));
    }
    double sq = sqrt((double)m);
    return kolmogorov_q((sq + 0.12 + 0.11 / sq) * dmax); /* Stephens' small-sample correction */
}

int noise_diag_init(noise_diag *d, smp_chain *c, int32_t D, bz_err *e)
{
    memset(d, 0, sizeof *d);
    d->b = c->b;
    d->D = D;
    const size_t n = (size_t)c->n;
    d->s2 = malloc(sizeof(double) * n);
    d->gsum = malloc(sizeof(double) * n);
    d->gfull = malloc(sizeof(float) * n);
    d->gb = malloc(sizeof(float) * n);
    d->dev = c->b->ops->alloc(c->b->ctx, c->n);
    d->comp = malloc(sizeof(int64_t) * NOISE_MAX_COMPONENTS);
    d->nu = malloc(sizeof(float) * (size_t)D * NOISE_MAX_COMPONENTS);
    if (!d->s2 || !d->gsum || !d->gfull || !d->gb || !d->dev || !d->comp || !d->nu) {
        d->n_comp = 0;
        noise_diag_free(d);
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the noise diagnostics");
    }
    return 0;
}

void noise_diag_free(noise_diag *d)
{
    free(d->s2);
    free(d->gsum);
    free(d->gfull);
    free(d->gb);
    free(d->comp);
    free(d->nu);
    if (d->dev) d->b->ops->release(d->b->ctx, d->dev);
    memset(d, 0, sizeof *d);
}

/* Exact s_i^2 of the mini-batch mean gradient at w (all P examples, without replacement). */
static void exact_variance(noise_diag *d, smp_chain *c)
{
    be *b = c->b;
    const int32_t P = b->layout.P, B = c->sp->batch < P ? c->sp->batch : P;
    memset(d->gsum, 0, sizeof(double) * (size_t)c->n);
    memset(d->s2, 0, sizeof(double) * (size_t)c->n);
    b->ops->moments(b->ctx, c->w, NULL, P, d->gsum, d->s2);
    const double fpc = P > 1 ? (double)(P - B) / (double)(P - 1) : 0.0;
    for (int64_t i = 0; i < c->n; i++) {
        double gbar = d->gsum[i] / P, v = d->s2[i] / P - gbar * gbar;
        d->s2[i] = v > 0 ? v / B * fpc : 0.0;
    }
}

/* Up to NOISE_MAX_COMPONENTS distinct random components with s_i > 0 (partial Fisher-Yates over
 * the eligible ones, drawn from the chain's host RNG). */
static void choose_components(noise_diag *d, smp_chain *c)
{
    int64_t cnt = 0;
    for (int64_t i = 0; i < c->n; i++)
        if (d->s2[i] > 0) cnt++;
    int64_t *elig = malloc(sizeof(int64_t) * (size_t)(cnt ? cnt : 1));
    d->n_comp = 0;
    if (!elig) return;
    cnt = 0;
    for (int64_t i = 0; i < c->n; i++)
        if (d->s2[i] > 0) elig[cnt++] = i;
    int64_t k = cnt < NOISE_MAX_COMPONENTS ? cnt : NOISE_MAX_COMPONENTS;
    rng_choose_i64(&c->rng, elig, cnt, k);
    for (int64_t j = 0; j < k; j++) d->comp[j] = elig[j];
    d->n_comp = k;
    free(elig);
}

static double ks_fraction(const noise_diag *d)
{
    double *col = malloc(sizeof(double) * (size_t)d->D);
    if (!col || !d->n_comp) {
        free(col);
        return NAN;
    }
    int64_t low = 0;
    for (int64_t j = 0; j < d->n_comp; j++) {
        for (int32_t t = 0; t < d->D; t++) col[t] = d->nu[(size_t)t * d->n_comp + j];
        low += noise_ks_pvalue(col, d->D) < 0.05;
    }
    free(col);
    return (double)low / (double)d->n_comp;
}

/* Pearson correlation of columns a and b of nu (D rows) over rows [r0, r0 + len) vs [r1, ...). */
static double corr_cols(const noise_diag *d, int64_t a, int32_t ra, int64_t b, int32_t rb, int32_t len)
{
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (int32_t t = 0; t < len; t++) {
        double x = d->nu[(size_t)(ra + t) * d->n_comp + a], y = d->nu[(size_t)(rb + t) * d->n_comp + b];
        sa += x, sb += y, saa += x * x, sbb += y * y, sab += x * y;
    }
    double cov = sab - sa * sb / len, va = saa - sa * sa / len, vb = sbb - sb * sb / len;
    /* A column without variance (a component with no noise: s_i^2 ~ 1e-40 at a trained state)
     * has no correlation; NaN keeps it out of the means instead of counting it as 0. */
    return va > 0 && vb > 0 ? cov / sqrt(va * vb) : NAN;
}

static double mean_abs_offdiag(const noise_diag *d)
{
    int64_t k = d->n_comp < NOISE_CORR_COMPONENTS ? d->n_comp : NOISE_CORR_COMPONENTS;
    double sum = 0;
    int64_t pairs = 0;
    for (int64_t a = 0; a < k; a++)
        for (int64_t b = a + 1; b < k; b++) {
            double r = corr_cols(d, a, 0, b, 0, d->D);
            if (isnan(r)) continue;
            sum += fabs(r);
            pairs++;
        }
    return pairs ? sum / (double)pairs : NAN;
}

static double mean_lag1(const noise_diag *d)
{
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t j = 0; j < d->n_comp; j++) {
        double r = corr_cols(d, j, 0, j, 1, d->D - 1);
        if (isnan(r)) continue;
        sum += r;
        cnt++;
    }
    return cnt ? sum / (double)cnt : NAN;
}

int noise_diag_measure(noise_diag *d, smp_chain *c, bz_err *e)
{
    (void)e;
    be *b = c->b;
    exact_variance(d, c);
    choose_components(d, c);
    b->ops->grad_full(b->ctx, c->w, d->dev);
    b->ops->download(b->ctx, d->gfull, d->dev, c->n);
    /* The draws advance the chain's host RNG (carried by checkpoints), so a chain with
     * diagnostics on still resumes bit for bit; they leave c->g untouched. */
    for (int32_t t = 0; t < d->D; t++) {
        smp_draw_batch(c);
        b->ops->grad_batch(b->ctx, c->w, c->idx, c->sp->batch, d->dev);
        b->ops->download(b->ctx, d->gb, d->dev, c->n);
        for (int64_t j = 0; j < d->n_comp; j++) {
            int64_t i = d->comp[j];
            d->nu[(size_t)t * d->n_comp + j] = (float)((d->gb[i] - d->gfull[i]) / sqrt(d->s2[i]));
        }
    }
    c->noise_stats[0] = ks_fraction(d);
    c->noise_stats[1] = mean_abs_offdiag(d);
    c->noise_stats[2] = mean_lag1(d);
    return 0;
}

void noise_diag_fill(const smp_chain *c, obs_record *r)
{
    r->v[OBS_NOISE_KS_FRAC] = c->noise_stats[0];
    r->v[OBS_NOISE_CORR] = c->noise_stats[1];
    r->v[OBS_NOISE_ACF1] = c->noise_stats[2];
}
