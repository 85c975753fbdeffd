/* gpu_testutil.h: shared pieces of the GPU tests (tests/gpu): the skip that makes every GPU test
 * pass as "skipped" with the driver's words where no CUDA device answers, small spin problems
 * opened on both backends, and vector comparisons with stated tolerances. */
#ifndef BZ_GPU_TESTUTIL_H
#define BZ_GPU_TESTUTIL_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>

#include "be_cuda.h"
#include "gpu_probe.h"
#include "nn.h"
#include "setup.h"
#include "spec.h"

/* Skip the current test (visibly: "[SKIP] ... no CUDA device: <driver words>") without a device. */
#define GPU_REQUIRE()                                                                                          \
    do {                                                                                                       \
        char why_[256] = "";                                                                                   \
        if (gpu_device_count(why_, sizeof why_) <= 0) cr_skip_test("no CUDA device: %s", why_);               \
    } while (0)

/* A spec, its data set and architecture. */
typedef struct gt_problem {
    bz_spec spec;
    ds_data d;
    nn_arch a;
} gt_problem;

/* Parse `json` (a whole spec) and load its data; asserts on failure. */
void gt_problem_load(gt_problem *p, const char *json);
void gt_problem_free(gt_problem *p);

/* Open the CPU and the CUDA backend on the same problem (max_batch from the spec). */
void gt_open_cpu(be *b, const gt_problem *p);
void gt_open_cuda(be *b, const gt_problem *p, bool tf32);

/* He weights with a seeded perturbation (biases non-zero too), n floats, malloc'ed. */
float *gt_weights(const nn_arch *a, uint64_t seed, double jitter);

/* A backend buffer of n floats holding host values (asserts). */
float *gt_buffer(be *b, const float *host, int64_t n);
/* Download a backend buffer into a fresh host array. */
float *gt_fetch(be *b, const float *buf, int64_t n);

/* |x - y|_2 / |y|_2 and max_i |x_i - y_i| / max_i |y_i| (0 when y is all zero) */
double gt_rel_l2(const float *x, const float *y, int64_t n);
double gt_rel_max(const float *x, const float *y, int64_t n);
double gt_rel_l2_d(const double *x, const double *y, int64_t n);
/* Largest distance in units in the last place between two float arrays. */
int64_t gt_max_ulp(const float *x, const float *y, int64_t n);

#endif
