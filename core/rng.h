/* rng.h: boltzd's portable random numbers (xoshiro256** seeded by splitmix64).
 *
 * Every random choice in boltzd (data sets, initial weights, mini-batch indices, noise) comes from
 * here, so the same seed gives the same numbers on every machine. The whole state is a plain
 * struct that checkpoints copy byte for byte. Normals use the Marsaglia polar method (only sqrt
 * and log, both from libm in double precision), or for bulk noise the ziggurat (rng_normal_zig). */
#ifndef BZ_RNG_H
#define BZ_RNG_H

#include <stdint.h>

typedef struct bz_rng {
    uint64_t s[4];
    double spare;      /* second normal of the last polar pair */
    int32_t has_spare; /* 1 when spare is valid */
    int32_t pad_;
} bz_rng;

/* Seed from (seed, stream): different streams of one seed are independent sequences. */
void rng_seed(bz_rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(bz_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(bz_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t rng_below(bz_rng *r, uint64_t n);
/* Standard normal N(0, 1). */
double rng_normal(bz_rng *r);
/* Standard normal N(0, 1) by the ziggurat (rng.c): several times faster than rng_normal, a
 * different sequence from the same state. The CPU backend's noise (be_cpu.c add_noise) uses it;
 * everything drawn once (data, initial weights, momenta) keeps rng_normal. Leaves spare alone. */
double rng_normal_zig(bz_rng *r);
/* Fill out[0..n) with N(0,1) as float. */
void rng_normal_fill(bz_rng *r, float *out, int64_t n);

/* B distinct indices drawn uniformly without replacement from [0, P), in draw order.
 * perm is scratch of length P that holds the identity permutation 0..P-1 on entry and on exit
 * (partial Fisher-Yates whose swaps are undone), so a draw costs O(B) and leaves no state behind
 * besides the RNG. Requires 0 < B <= P. */
void rng_sample_without_replacement(bz_rng *r, int32_t *perm, int32_t P, int32_t B, int32_t *out);

/* Move a uniform random choice of k of a[0..n) (k <= n), in random order, to a[0..k): the first
 * k steps of a Fisher-Yates shuffle. */
void rng_choose_i64(bz_rng *r, int64_t *a, int64_t n, int64_t k);

/* Fisher-Yates shuffle of a[0..n). */
void rng_shuffle_i32(bz_rng *r, int32_t *a, int64_t n);

#endif
