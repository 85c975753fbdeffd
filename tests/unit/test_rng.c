/* test_rng.c: the project RNG: reproducible streams, uniform and normal moments, and sampling
 * without replacement (distinct, uniform inclusion, scratch left as the identity). */
#include <criterion/criterion.h>
#include <math.h>
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
