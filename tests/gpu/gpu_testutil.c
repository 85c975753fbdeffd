/* gpu_testutil.c: shared pieces of the GPU tests (see gpu_testutil.h). */
#include "gpu_testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

void gt_problem_load(gt_problem *p, const char *json)
{
    bz_err e;
    cr_assert_eq(spec_parse(json, &p->spec, &e), 0, "%s: %s", e.field, e.msg);
    cr_assert_eq(setup_load(&p->spec, &p->d, &p->a, &e), 0, "%s", e.msg);
}

void gt_problem_free(gt_problem *p) { ds_free(&p->d); }

static int32_t max_batch(const gt_problem *p) { return p->spec.sampler.batch > 0 ? p->spec.sampler.batch : 1; }

void gt_open_cpu(be *b, const gt_problem *p)
{
    bz_err e;
    cr_assert_eq(be_cpu_network(b, &p->a, &p->d, p->spec.model.lambda, max_batch(p), &e), 0, "%s", e.msg);
}

void gt_open_cuda(be *b, const gt_problem *p, bool tf32)
{
    bz_err e;
    be_cuda_opts o;
    be_cuda_default_opts(&o);
    o.tf32 = tf32;
    cr_assert_eq(be_cuda_network(b, &p->a, &p->d, p->spec.model.lambda, max_batch(p), &o, &e), 0, "%s", e.msg);
}

float *gt_weights(const nn_arch *a, uint64_t seed, double jitter)
{
    float *w = malloc(sizeof(float) * (size_t)a->n);
    cr_assert(w);
    nn_init_he(a, w, seed);
    bz_rng r;
    rng_seed(&r, seed, 7);
    for (int64_t i = 0; i < a->n; i++) w[i] += (float)(jitter * rng_normal(&r));
    return w;
}

float *gt_buffer(be *b, const float *host, int64_t n)
{
    float *buf = b->ops->alloc(b->ctx, n);
    cr_assert(buf, "alloc of %lld floats on %s", (long long)n, b->ops->name);
    if (host) b->ops->upload(b->ctx, buf, host, n);
    return buf;
}

float *gt_fetch(be *b, const float *buf, int64_t n)
{
    float *h = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    cr_assert(h);
    b->ops->download(b->ctx, h, buf, n);
    return h;
}

double gt_rel_l2(const float *x, const float *y, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)x[i] - y[i];
        d += t * t;
        s += (double)y[i] * y[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

double gt_rel_max(const float *x, const float *y, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)x[i] - y[i]));
        s = fmax(s, fabs((double)y[i]));
    }
    return s > 0 ? d / s : d;
}

double gt_rel_l2_d(const double *x, const double *y, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = x[i] - y[i];
        d += t * t;
        s += y[i] * y[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

/* float bits as a monotone integer line */
static int64_t ordered(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

int64_t gt_max_ulp(const float *x, const float *y, int64_t n)
{
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i]) || isnan(y[i])) return INT64_MAX;
        int64_t d = ordered(x[i]) - ordered(y[i]);
        if (d < 0) d = -d;
        if (d > m) m = d;
    }
    return m;
}
