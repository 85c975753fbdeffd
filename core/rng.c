/* rng.c: xoshiro256** generator, splitmix64 seeding, uniforms, normals, sampling without
 * replacement. See rng.h. */
#include "rng.h"

#include <math.h>
#include <pthread.h>

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

/* ---- the ziggurat (Marsaglia & Tsang 2000, in Doornik's ZIGNOR form, 256 layers) ----
 *
 * The density exp(-x^2/2) is covered by ZIG_N layers of equal area ZIG_V: a base strip (a
 * rectangle to ZIG_R plus the tail beyond it) and ZIG_N - 1 rectangles of half-widths
 * zig_x[1] = ZIG_R > zig_x[2] > ... > zig_x[ZIG_N] = 0. One 64-bit draw picks a layer (its low
 * 8 bits) and a point u in (-1, 1) (its top 53 bits); 99% of the time |u| x_i falls inside the
 * next layer's width and is returned as is. Otherwise the wedge is tested against the density
 * exactly, or for the base strip the tail is drawn by Marsaglia's exponential method, so the
 * result is exactly N(0, 1) (up to double rounding). Same numbers on every machine: the tables
 * and the rare paths use only sqrt, exp and log in double. */
#define ZIG_N 256
#define ZIG_R 3.6541528853610088
#define ZIG_V 4.92867323399e-3

static double zig_x[ZIG_N + 1], zig_ratio[ZIG_N];
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_tables(void)
{
    double f = exp(-0.5 * ZIG_R * ZIG_R);
    zig_x[0] = ZIG_V / f; /* the base strip as a rectangle of area V */
    zig_x[1] = ZIG_R;
    zig_x[ZIG_N] = 0.0;
    for (int i = 2; i < ZIG_N; i++) {
        zig_x[i] = sqrt(-2.0 * log(ZIG_V / zig_x[i - 1] + f));
        f = exp(-0.5 * zig_x[i] * zig_x[i]);
    }
    for (int i = 0; i < ZIG_N; i++) zig_ratio[i] = zig_x[i + 1] / zig_x[i];
}

/* Uniform in (0, 1): never 0, so its log is finite. */
static double uniform_open(bz_rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

/* |x| > ZIG_R, with the sign asked for. */
static double zig_tail(bz_rng *r, int negative)
{
    double x, y;
    do {
        x = log(uniform_open(r)) / ZIG_R;
        y = log(uniform_open(r));
    } while (-2.0 * y < x * x);
    return negative ? x - ZIG_R : ZIG_R - x;
}

double rng_normal_zig(bz_rng *r)
{
    pthread_once(&zig_once, zig_tables);
    for (;;) {
        const uint64_t b = rng_next(r);
        const int i = (int)(b & (ZIG_N - 1));
        const double u = 2.0 * ((double)(b >> 11) * 0x1.0p-53) - 1.0;
        if (fabs(u) < zig_ratio[i]) return u * zig_x[i]; /* inside the next layer's width */
        if (i == 0) return zig_tail(r, u < 0.0);
        const double x = u * zig_x[i];
        const double f0 = exp(-0.5 * (zig_x[i] * zig_x[i] - x * x));
        const double f1 = exp(-0.5 * (zig_x[i + 1] * zig_x[i + 1] - x * x));
        if (f1 + rng_uniform(r) * (f0 - f1) < 1.0) return x; /* under the density in the wedge */
    }
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

void rng_choose_i64(bz_rng *r, int64_t *a, int64_t n, int64_t k)
{
    for (int64_t j = 0; j < k; j++) {
        int64_t i = j + (int64_t)rng_below(r, (uint64_t)(n - j));
        int64_t t = a[j];
        a[j] = a[i];
        a[i] = t;
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
