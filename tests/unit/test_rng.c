/* test_rng.c: the project RNG: reproducible streams, uniform and normal moments, the ziggurat's
 * distribution, and sampling
 * without replacement (distinct, uniform inclusion, scratch left as the identity). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

Test(rng, same_seed_same_stream_and_streams_differ)
{
    bz_rng a, b, c;
    rng_seed(&a, 42, 0);
    rng_seed(&b, 42, 0);
    rng_seed(&c, 42, 1);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_next(&a), y = rng_next(&b), z = rng_next(&c);
        cr_assert_eq(x, y);
        same_c += x == z;
    }
    cr_assert_eq(same_c, 0);
}

Test(rng, normal_moments_within_five_standard_errors)
{
    bz_rng r;
    rng_seed(&r, 1, 0);
    const int n = 200000;
    double s = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        s += x;
        s2 += x * x;
        s4 += x * x * x * x;
    }
    double mean = s / n, var = s2 / n, kurt = s4 / n;
    cr_assert(fabs(mean) < 5 / sqrt(n), "mean %g", mean);
    cr_assert(fabs(var - 1) < 5 * sqrt(2.0 / n), "var %g", var);
    cr_assert(fabs(kurt - 3) < 5 * sqrt(96.0 / n), "E[x^4] %g", kurt);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

/* sqrt(n) times the Kolmogorov-Smirnov distance of n draws of `draw` from N(0, 1). */
static double ks_stat(double (*draw)(bz_rng *), uint64_t seed, int n)
{
    bz_rng r;
    rng_seed(&r, seed, 0);
    double *x = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) x[i] = draw(&r);
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    double d = 0.0;
    for (int i = 0; i < n; i++) {
        double F = normal_cdf(x[i]);
        d = fmax(d, fmax(fabs((double)(i + 1) / n - F), fabs(F - (double)i / n)));
    }
    free(x);
    return sqrt((double)n) * d;
}

/* The ziggurat is exactly N(0,1): the bulk by Kolmogorov-Smirnov on 10^6 draws (the 0.1% critical
 * value of sqrt(n) D is 1.95; the polar method through the same code is the control), the first
 * four moments within 5 standard errors, and the tails it draws by its own method (beyond
 * R = 3.654, where the base strip hands over, and beyond 4.5) at their Gaussian rates. */
Test(rng, ziggurat_normal_is_standard_normal)
{
    const int n_ks = 1000000;
    const double ks_zig = ks_stat(rng_normal_zig, 7, n_ks), ks_polar = ks_stat(rng_normal, 7, n_ks);
    cr_log_info("sqrt(n) D: ziggurat %.3f, polar %.3f (0.1%% critical value 1.95)", ks_zig, ks_polar);
    cr_assert(ks_polar < 1.95, "the control failed: polar sqrt(n) D = %.3f", ks_polar);
    cr_assert(ks_zig < 1.95, "ziggurat: sqrt(n) D = %.3f", ks_zig);

    bz_rng r;
    rng_seed(&r, 8, 0);
    const int n = 4000000;
    const double R = 3.6541528853610088;
    double s = 0, s2 = 0, s3 = 0, s4 = 0;
    int64_t beyond_R = 0, beyond_45 = 0;
    for (int i = 0; i < n; i++) {
        double x = rng_normal_zig(&r), x2 = x * x;
        s += x, s2 += x2, s3 += x2 * x, s4 += x2 * x2;
        beyond_R += fabs(x) > R;
        beyond_45 += fabs(x) > 4.5;
    }
    const double mean = s / n, var = s2 / n, skew = s3 / n, kurt = s4 / n;
    cr_assert(fabs(mean) < 5 / sqrt(n), "mean %g", mean);
    cr_assert(fabs(var - 1) < 5 * sqrt(2.0 / n), "var %g", var);
    cr_assert(fabs(skew) < 5 * sqrt(15.0 / n), "E[x^3] %g", skew);
    cr_assert(fabs(kurt - 3) < 5 * sqrt(96.0 / n), "E[x^4] %g", kurt);
    const double pR = erfc(R / sqrt(2.0)), p45 = erfc(4.5 / sqrt(2.0));
    const double eR = n * pR, e45 = n * p45;
    cr_log_info("|x| > R: %lld (expected %.1f); |x| > 4.5: %lld (expected %.1f)", (long long)beyond_R, eR,
                (long long)beyond_45, e45);
    cr_assert(fabs((double)beyond_R - eR) < 5 * sqrt(eR), "|x| > R: %lld, expected %.1f", (long long)beyond_R, eR);
    cr_assert(fabs((double)beyond_45 - e45) < 5 * sqrt(e45), "|x| > 4.5: %lld, expected %.1f", (long long)beyond_45,
              e45);
}

Test(rng, sampling_without_replacement_is_uniform_and_distinct)
{
    enum { P = 20, B = 5, DRAWS = 40000 };
    int32_t perm[P], out[B];
    for (int i = 0; i < P; i++) perm[i] = i;
    long hits[P] = {0};
    bz_rng r;
    rng_seed(&r, 3, 0);
    for (int d = 0; d < DRAWS; d++) {
        rng_sample_without_replacement(&r, perm, P, B, out);
        for (int i = 0; i < B; i++) {
            cr_assert(out[i] >= 0 && out[i] < P);
            for (int j = 0; j < i; j++) cr_assert_neq(out[i], out[j]);
            hits[out[i]]++;
        }
        for (int i = 0; i < P; i++) cr_assert_eq(perm[i], i, "scratch not restored at draw %d", d);
    }
    /* Each index is included with probability B/P: binomial count, 5 standard errors. */
    double p = (double)B / P, se = sqrt(DRAWS * p * (1 - p));
    for (int i = 0; i < P; i++) cr_assert(fabs(hits[i] - DRAWS * p) < 5 * se, "index %d hit %ld", i, hits[i]);
}

Test(rng, below_is_in_range_and_uniform)
{
    bz_rng r;
    rng_seed(&r, 9, 0);
    long cnt[7] = {0};
    const int n = 70000;
    for (int i = 0; i < n; i++) {
        uint64_t v = rng_below(&r, 7);
        cr_assert(v < 7);
        cnt[v]++;
    }
    double se = sqrt(n * (1.0 / 7) * (6.0 / 7));
    for (int k = 0; k < 7; k++) cr_assert(fabs(cnt[k] - n / 7.0) < 5 * se);
}
