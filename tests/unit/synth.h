/* synth.h: synthetic potentials behind the CPU backend for the sampler tests: independent
 * harmonic wells with Gaussian mini-batch noise of chosen variance, and a 2-D double well. */
#ifndef BZ_SYNTH_H
#define BZ_SYNTH_H

#include "backend.h"
#include "spec.h"

/* U = sum_i k_i w_i^2 / 2; the mini-batch gradient is k_i w_i + N(0, s2_i). moments() reports
 * per-example moments consistent with s2_i for batch B drawn without replacement from P. */
typedef struct synth_harmonic {
    int64_t n;
    double *k, *s2;   /* n each, owned */
    int32_t P, B;
    bz_rng rng;
} synth_harmonic;

int synth_harmonic_backend(be *out, synth_harmonic *h, int64_t n, double k, double s2, int32_t P, int32_t B,
                           int32_t n_groups, uint64_t seed);
void synth_harmonic_free(synth_harmonic *h);

/* 2-D double well U(x, y) = a (x^2 - 1)^2 + b y^2 + c x y, exact gradient (no noise); the
 * mini-batch gradient adds N(0, s2) noise when s2 > 0. */
typedef struct synth_dwell {
    double a, b, c, s2;
    int32_t P;
    bz_rng rng;
} synth_dwell;
int synth_dwell_backend(be *out, synth_dwell *d, double a, double b, double c, double s2, uint64_t seed);
double synth_dwell_U(const synth_dwell *d, double x, double y);

/* A spec with every default, the given method and temperature, steps, batch. */
void synth_spec(bz_spec *s, sampler_method m, double T, int64_t steps, int32_t batch);

#endif
