/* rng.c: xoshiro256** generator, splitmix64 seeding, uniforms, normals, sampling without
 * replacement. See rng.h. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rng_seed(bz_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (0xD1B54A32D192ED03ull * (stream + 1));
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1; /* all-zero state is a fixed point */
    r->spare = 0.0;
    r->has_spare = 0;
    r->pad_ = 0;
}

uint64_t rng_next(bz_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(bz_rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t rng_below(bz_rng *r, uint64_t n)
{
    /* Rejection on the top of the range: unbiased for every n. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    uint64_t x;
    do x = rng_next(r); while (x >= limit);
    return x % n;
}

double rng_normal(bz_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_uniform(r) - 1.0;
        v = 2.0 * rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

void rng_normal_fill(bz_rng *r, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = (float)rng_normal(r);
}

void rng_sample_without_replacement(bz_rng *r, int32_t *perm, int32_t P, int32_t B, int32_t *out)
{
    /* Partial Fisher-Yates: swap perm[i] with a uniform perm[j], j in [i, P). */
    for (int32_t i = 0; i < B; i++) {
        int32_t j = i + (int32_t)rng_below(r, (uint64_t)(P - i));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = perm[i];
    }
    /* Restore the identity. Positions < B are reset directly; a position p >= B was touched only
     * as some swap target j, and the first time it was, its original value p moved to a slot
     * k < B that no later step touches, so p is among the outputs. */
    for (int32_t i = 0; i < B; i++) {
        int32_t v = out[i];
        perm[v] = v;
        perm[i] = i;
    }
}

void rng_shuffle_i32(bz_rng *r, int32_t *a, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(r, (uint64_t)(i + 1));
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
