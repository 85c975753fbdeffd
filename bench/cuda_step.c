/* cuda_step.c: pL steps per second on the CUDA backend against the targets of issue 5 (one H100,
 * batch 128: small [500,20,100,10] >= 20 000, medium [500,200,100,10] >= 10 000, large
 * [500,2000,100,10] >= 5 000), on a synthetic spin data set (P = 20 000, p_flip 0.3). Each size:
 * a pL chain from the He initialisation, its start (exact variance estimate, masses) timed
 * apart, 200 warm-up steps, then whole steps for --seconds; mass updates are pushed past the run
 * (update_every) so the figure is the integrator step alone. Prints a Markdown table.
 *
 * Usage: cuda_step [--backend cuda|cpu] [--sizes small,medium,large] [--batch 128] [--train 20000]
 *                  [--seconds 2] [--tf32] [--no-graphs] [--device 0]
 * Built with the CUDA backend only (cmake/cuda.cmake); never part of the tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be_cuda.h"
#include "gpu_probe.h"
#include "nn.h"
#include "sampler.h"
#include "setup.h"
#include "smp_pl.h"

typedef struct size_def {
    const char *name;
    int32_t h1, h2;
    double target; /* steps/s on one H100 (issue 5) */
} size_def;

static const size_def sizes[] = {
    {"small", 20, 100, 20000},
    {"medium", 200, 100, 10000},
    {"large", 2000, 100, 5000},
};

typedef struct options {
    bool cuda, tf32, graphs;
    int device;
    int32_t batch;
    int64_t train;
    double seconds;
    char sizes[128];
} options;

typedef struct result {
    int64_t n, steps, n_guard;
    double start_s, steps_per_s;
} result;

static int usage(void)
{
    fprintf(stderr, "usage: cuda_step [--backend cuda|cpu] [--sizes small,medium,large] [--batch 128] "
                    "[--train 20000] [--seconds 2] [--tf32] [--no-graphs] [--device 0]\n");
    return 2;
}

static int parse_args(int argc, char **argv, options *o)
{
    be_cuda_opts def;
    be_cuda_default_opts(&def);
    *o = (options){true, false, def.graphs, 0, 128, 20000, 2.0, "small,medium,large"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tf32")) o->tf32 = true;
        else if (!strcmp(a, "--no-graphs")) o->graphs = false;
        else if (!v) return usage();
        else if (!strcmp(a, "--backend") && (!strcmp(v, "cuda") || !strcmp(v, "cpu"))) o->cuda = !strcmp(v, "cuda"), i++;
        else if (!strcmp(a, "--sizes")) snprintf(o->sizes, sizeof o->sizes, "%s", v), i++;
        else if (!strcmp(a, "--batch")) o->batch = atoi(v), i++;
        else if (!strcmp(a, "--train")) o->train = atoll(v), i++;
        else if (!strcmp(a, "--seconds")) o->seconds = atof(v), i++;
        else if (!strcmp(a, "--device")) o->device = atoi(v), i++;
        else return usage();
    }
    return o->batch > 0 && o->train > o->batch && o->seconds > 0 ? 0 : usage();
}

/* The spec of one size: spin data, pL at T = 1e-4, no mass update during the run. */
static void make_spec(bz_spec *s, const size_def *z, const options *o)
{
    spec_defaults(s);
    s->dataset.kind = DS_SPIN;
    s->dataset.n_in = 500;
    s->dataset.classes = 10;
    s->dataset.train = o->train;
    s->dataset.test = 0;
    s->dataset.p_flip = 0.3;
    s->dataset.seed = 1;
    s->model.n_hidden = 2;
    s->model.hidden[0] = z->h1;
    s->model.hidden[1] = z->h2;
    s->model.bias = true;
    spec_sampler_defaults(&s->sampler, SM_PL);
    s->sampler.n_T = 1;
    s->sampler.T[0] = 1e-4;
    s->sampler.steps = 1000000000LL;
    s->sampler.seed = 3;
    s->sampler.batch = o->batch;
    s->sampler.update_every = 1000000000000LL;
    s->init.seed = 2;
}

static int open_backend(be *b, const nn_arch *a, const ds_data *d, const bz_spec *s, const options *o, bz_err *e)
{
    if (!o->cuda) return be_cpu_network(b, a, d, s->model.lambda, o->batch, e);
    be_cuda_opts co = {o->device, o->tf32, o->graphs};
    return be_cuda_network(b, a, d, s->model.lambda, o->batch, &co, e);
}

static int run_steps(smp_chain *c, int64_t count, bz_err *e)
{
    for (int64_t k = 0; k < count; k++) {
        int rc = smp_chain_step(c, e);
        if (rc) return rc;
    }
    return 0;
}

static int bench_size(const size_def *z, const options *o, result *r, bz_err *e)
{
    bz_spec s;
    make_spec(&s, z, o);
    ds_data d;
    nn_arch a;
    be b;
    smp_chain c;
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    int rc = setup_load(&s, &d, &a, e);
    if (rc) return rc;
    float *w = malloc(sizeof(float) * (size_t)a.n);
    rc = w ? open_backend(&b, &a, &d, &s, o, e) : bz_fail(e, BZ_ENOMEM, NULL, "out of memory");
    if (!rc) rc = smp_chain_create(&c, &s, &b, 0, e);
    if (!rc) {
        nn_init_he(&a, w, s.init.seed);
        b.ops->upload(b.ctx, c.w, w, a.n);
        double t0 = smp_now();
        rc = smp_chain_start(&c, e);
        if (!rc) rc = b.ops->sync(b.ctx, e);
        r->start_s = smp_now() - t0;
    }
    if (!rc) rc = run_steps(&c, 200, e);
    if (!rc) rc = b.ops->sync(b.ctx, e);
    int64_t done = 0;
    double t0 = smp_now(), dt = 0.0;
    while (!rc && dt < o->seconds) {
        rc = run_steps(&c, 100, e);
        done += 100;
        if (!rc && (dt = smp_now() - t0) >= o->seconds) rc = b.ops->sync(b.ctx, e); /* all work done */
        dt = smp_now() - t0;
    }
    pl_view v;
    r->n = a.n;
    r->steps = done;
    r->steps_per_s = dt > 0 ? (double)done / dt : 0.0;
    r->n_guard = !rc && pl_inspect(&c, &v) == 0 ? v.n_guard : 0;
    smp_chain_destroy(&c);
    if (b.ops) be_destroy(&b);
    free(w);
    ds_free(&d);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o)) return 2;
    char name[256] = "CPU";
    if (o.cuda) {
        char why[256];
        if (gpu_device_count(why, sizeof why) <= 0) {
            fprintf(stderr, "cuda_step: no CUDA device: %s\n", why);
            return 1;
        }
        gpu_device_name(o.device, name, sizeof name);
    }
    printf("pL steps/s, backend %s on %s, batch %d, spin data P = %lld, %s%s\n\n", o.cuda ? "cuda" : "cpu", name,
           (int)o.batch, (long long)o.train, o.tf32 ? "TF32" : "float32", o.cuda && !o.graphs ? ", graphs off" : "");
    printf("| size | layers | weights | steps/s | us/step | target (H100) | start s | guard events |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    int status = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const size_def *z = &sizes[i];
        if (!strstr(o.sizes, z->name)) continue;
        result r = {0};
        bz_err e;
        bz_err_clear(&e);
        int rc = bench_size(z, &o, &r, &e);
        if (rc) {
            printf("| %s | [500,%d,%d,10] | - | failed: %s | | | | |\n", z->name, z->h1, z->h2, e.msg);
            status = 1;
            continue;
        }
        printf("| %s | [500,%d,%d,10] | %lld | %.0f | %.1f | %.0f%s | %.2f | %lld |\n", z->name, z->h1, z->h2,
               (long long)r.n, r.steps_per_s, 1e6 / r.steps_per_s, z->target,
               o.cuda && r.steps_per_s < z->target ? " (below)" : "", r.start_s, (long long)r.n_guard);
        fflush(stdout);
    }
    return status;
}
