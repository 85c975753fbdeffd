/* bench_step.c: cost of one mini-batch forward+backward (nn_loss_grad) against the bare sgemm
 * calls of the same shapes, measured in the same run, optionally beside PyTorch (step_torch.py).
 *
 * Per rep: draw a fresh mini-batch index list (timed alone, the "draw" column, outside the step),
 * then time the step and the bare GEMMs back to back, alternating which goes first, so drift and
 * cache state hit both alike. Reports median and interquartile range over reps after warm-up.
 * Run through bench/step, which builds this, runs the PyTorch side and passes --torch-json.
 *
 * --backend cuda (a build with the CUDA backend, e.g. build-gpu/bench_step): step = one grad_batch
 * of the CUDA backend (index upload, gather, forward, backward; a CUDA graph after two calls) and a
 * sync, i.e. its latency; the second column is then the pipelined cost per gradient (CUDA_PIPE
 * calls and one sync, divided by CUDA_PIPE), and GF/s the GEMM work at that rate. */
#include <cblas.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "nn.h"
#include "rng.h"
#ifdef BOLTZ_HAVE_CUDA
#include "be_cuda.h"
#endif

#define P_EXAMPLES 4096
#define N_CLASSES 10
#define MAX_SIZES 3
#define CUDA_PIPE 20 /* gradients per sync in the pipelined CUDA column */

typedef struct size_def {
    const char *name;
    int32_t sizes[4];
    int default_reps;
} size_def;

static const size_def SIZES[MAX_SIZES] = {
    {"small", {500, 20, 100, N_CLASSES}, 200},
    {"medium", {500, 200, 100, N_CLASSES}, 200},
    {"large", {500, 2000, 100, N_CLASSES}, 50},
};

typedef struct options {
    int threads;
    int reps;  /* 0: per-size default */
    int batch;
    bool json;
    bool cuda; /* --backend cuda */
    bool use[MAX_SIZES];
    const char *torch_json;
} options;

typedef struct stats {
    double median, iqr;
} stats;

/* Everything one size needs: network, weights, data, scratch, sampler state. */
typedef struct bench_case {
    nn_arch arch;
    nn_work ws;
    float *w, *grad, *x;
    int32_t *y, *perm, *idx;
    bz_rng rng;
    int batch;
    bool cuda;
    be dev;            /* --backend cuda: the CUDA backend on (x, y) */
    float *dw, *dg;    /* its weights and gradient buffers */
} bench_case;

typedef struct torch_row {
    bool have;
    double median, iqr;
} torch_row;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_step [--threads N] [--reps N] [--sizes small,medium,large] [--batch B]\n"
                    "                  [--json] [--torch-json FILE] [--backend cpu|cuda]\n");
    exit(2);
}

static int size_index(const char *name, size_t len)
{
    for (int i = 0; i < MAX_SIZES; i++)
        if (strlen(SIZES[i].name) == len && strncmp(SIZES[i].name, name, len) == 0) return i;
    return -1;
}

static void parse_sizes(options *o, const char *list)
{
    memset(o->use, 0, sizeof o->use);
    while (*list) {
        size_t len = strcspn(list, ",");
        int i = size_index(list, len);
        if (i < 0) {
            fprintf(stderr, "bench_step: unknown size '%.*s' (small, medium, large)\n", (int)len, list);
            exit(2);
        }
        o->use[i] = true;
        list += len + (list[len] == ',');
    }
}

static int positive_arg(const char *s, const char *opt)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > 1000000) {
        fprintf(stderr, "bench_step: %s needs a positive integer (got '%s')\n", opt, s);
        exit(2);
    }
    return (int)v;
}

static options parse_options(int argc, char **argv)
{
    options o = {.threads = 1, .reps = 0, .batch = 128, .json = false, .torch_json = NULL};
    for (int i = 0; i < MAX_SIZES; i++) o.use[i] = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--json")) o.json = true;
        else if (!strcmp(a, "--threads") && has_val) o.threads = positive_arg(argv[++i], a);
        else if (!strcmp(a, "--reps") && has_val) o.reps = positive_arg(argv[++i], a);
        else if (!strcmp(a, "--batch") && has_val) o.batch = positive_arg(argv[++i], a);
        else if (!strcmp(a, "--sizes") && has_val) parse_sizes(&o, argv[++i]);
        else if (!strcmp(a, "--torch-json") && has_val) o.torch_json = argv[++i];
        else if (!strcmp(a, "--backend") && has_val && (!strcmp(argv[i + 1], "cpu") || !strcmp(argv[i + 1], "cuda")))
            o.cuda = !strcmp(argv[++i], "cuda");
        else usage();
    }
#ifndef BOLTZ_HAVE_CUDA
    if (o.cuda) {
        fprintf(stderr, "bench_step: built without the CUDA backend (configure with -DBOLTZ_CUDA=ON)\n");
        exit(2);
    }
#endif
    if (o.batch > P_EXAMPLES) {
        fprintf(stderr, "bench_step: --batch must be <= %d\n", P_EXAMPLES);
        exit(2);
    }
    return o;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted v[0..n) with linear interpolation. */
static double quantile(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int lo = (int)pos;
    int hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

static stats summarise(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    stats s = {quantile(v, n, 0.5), quantile(v, n, 0.75) - quantile(v, n, 0.25)};
    return s;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_step: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* The CUDA backend on the case's data and weights (only in a build with CUDA). */
static void case_open_cuda(bench_case *c)
{
#ifdef BOLTZ_HAVE_CUDA
    bz_err e;
    ds_data d = {.n_in = c->arch.N[0], .classes = N_CLASSES, .n_train = P_EXAMPLES, .x_train = c->x, .y_train = c->y};
    if (be_cuda_network(&c->dev, &c->arch, &d, 0.0, c->batch, NULL, &e)) {
        fprintf(stderr, "bench_step: %s\n", e.msg);
        exit(1);
    }
    c->dw = c->dev.ops->alloc(c->dev.ctx, c->arch.n);
    c->dg = c->dev.ops->alloc(c->dev.ctx, c->arch.n);
    if (!c->dw || !c->dg) {
        fprintf(stderr, "bench_step: out of device memory\n");
        exit(1);
    }
    c->dev.ops->upload(c->dev.ctx, c->dw, c->w, c->arch.n);
#else
    (void)c;
#endif
}

/* Waits for the device; a backend failure ends the run with its message. */
static void cuda_sync(bench_case *c)
{
    bz_err e;
    if (c->dev.ops->sync(c->dev.ctx, &e)) {
        fprintf(stderr, "bench_step: %s\n", e.msg);
        exit(1);
    }
}

static void case_init(bench_case *c, const size_def *d, int batch, bool cuda)
{
    bz_err e;
    if (nn_arch_init(&c->arch, d->sizes, 4, true, &e) || nn_work_init(&c->ws, &c->arch, batch, &e)) {
        fprintf(stderr, "bench_step: %s\n", e.msg);
        exit(1);
    }
    c->batch = batch;
    c->w = xmalloc(sizeof(float) * (size_t)c->arch.n);
    c->grad = xmalloc(sizeof(float) * (size_t)c->arch.n);
    c->x = xmalloc(sizeof(float) * (size_t)P_EXAMPLES * (size_t)d->sizes[0]);
    c->y = xmalloc(sizeof(int32_t) * P_EXAMPLES);
    c->perm = xmalloc(sizeof(int32_t) * P_EXAMPLES);
    c->idx = xmalloc(sizeof(int32_t) * (size_t)batch);
    nn_init_he(&c->arch, c->w, 1);
    rng_seed(&c->rng, 2, 0);
    rng_normal_fill(&c->rng, c->x, (int64_t)P_EXAMPLES * d->sizes[0]);
    for (int32_t i = 0; i < P_EXAMPLES; i++) {
        c->y[i] = (int32_t)rng_below(&c->rng, N_CLASSES);
        c->perm[i] = i;
    }
    c->cuda = cuda;
    memset(&c->dev, 0, sizeof c->dev);
    if (cuda) case_open_cuda(c);
}

static void case_free(bench_case *c)
{
    if (c->dev.ops) {
        c->dev.ops->release(c->dev.ctx, c->dw);
        c->dev.ops->release(c->dev.ctx, c->dg);
        be_destroy(&c->dev);
    }
    nn_work_free(&c->ws);
    free(c->w);
    free(c->grad);
    free(c->x);
    free(c->y);
    free(c->perm);
    free(c->idx);
}

static void draw_batch(bench_case *c)
{
    rng_sample_without_replacement(&c->rng, c->perm, P_EXAMPLES, c->batch, c->idx);
}

static void run_step(bench_case *c)
{
    if (c->cuda) {
        c->dev.ops->grad_batch(c->dev.ctx, c->dw, c->idx, c->batch, c->dg);
        cuda_sync(c);
        return;
    }
    double loss;
    int64_t n_err;
    nn_loss_grad(&c->arch, &c->ws, c->w, c->x, c->y, c->idx, c->batch, 1.0f / (float)c->batch, false, c->grad,
                 &loss, &n_err);
}

/* The sgemm calls nn_loss_grad makes, with its shapes, transposes, scalars and buffers, and nothing
 * else: L forward (a W^T, beta 1 over the bias), L weight-grad (delta^T a) and L-1 input-delta
 * (delta W). Needs one run_step before it so the scratch holds finite numbers. */
static void run_bare_gemms(bench_case *c)
{
    if (c->cuda) { /* the device's pipelined cost instead (see the top) */
        for (int k = 0; k < CUDA_PIPE; k++) c->dev.ops->grad_batch(c->dev.ctx, c->dw, c->idx, c->batch, c->dg);
        cuda_sync(c);
        return;
    }
    const nn_arch *a = &c->arch;
    nn_work *ws = &c->ws;
    const int rows = c->batch;
    const float scale = 1.0f / (float)rows;
    for (int32_t l = 0; l < a->L; l++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, a->N[l + 1], a->N[l], 1.0f, ws->act[l],
                    a->N[l], c->w + a->w_off[l], a->N[l], 1.0f, ws->act[l + 1], a->N[l + 1]);
    for (int32_t l = a->L; l >= 1; l--) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a->N[l], a->N[l - 1], rows, scale, ws->delta[l],
                    a->N[l], ws->act[l - 1], a->N[l - 1], 0.0f, c->grad + a->w_off[l - 1], a->N[l - 1]);
        if (l > 1)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, a->N[l - 1], a->N[l], 1.0f,
                        ws->delta[l], a->N[l], c->w + a->w_off[l - 1], a->N[l - 1], 0.0f, ws->delta[l - 1],
                        a->N[l - 1]);
    }
}

/* Floating-point operations of the bare GEMMs: 2 * rows * (L forward + L weight-grad + L-1 input-delta). */
static double gemm_flops(const bench_case *c)
{
    double macs = 0.0;
    for (int32_t l = 1; l <= c->arch.L; l++) {
        double layer = (double)c->arch.N[l] * c->arch.N[l - 1];
        macs += (l > 1 ? 3.0 : 2.0) * layer;
    }
    return 2.0 * c->batch * macs;
}

typedef void (*bench_fn)(bench_case *);

static double time_once(bench_fn f, bench_case *c)
{
    double t0 = now_us();
    f(c);
    return now_us() - t0;
}

typedef struct size_result {
    stats step, gemm, draw;
} size_result;

/* One rep: draw (timed alone), then step and bare GEMMs with the order alternating by rep. */
static void one_rep(bench_case *c, int rep, double *t_draw, double *t_step, double *t_gemm)
{
    *t_draw = time_once(draw_batch, c);
    if (rep % 2 == 0) {
        *t_step = time_once(run_step, c);
        *t_gemm = time_once(run_bare_gemms, c);
    } else {
        *t_gemm = time_once(run_bare_gemms, c);
        *t_step = time_once(run_step, c);
    }
    if (c->cuda) *t_gemm /= CUDA_PIPE;
}

static size_result measure(bench_case *c, int reps)
{
    double *t = xmalloc(sizeof(double) * 3 * (size_t)reps);
    double *td = t, *ts = t + reps, *tg = t + 2 * reps;
    int warm = reps / 5 > 5 ? reps / 5 : 5;
    draw_batch(c);
    run_step(c); /* fills the scratch before the first bare GEMM pass */
    for (int r = 0; r < warm; r++) one_rep(c, r, &td[0], &ts[0], &tg[0]);
    for (int r = 0; r < reps; r++) one_rep(c, r, &td[r], &ts[r], &tg[r]);
    size_result res = {summarise(ts, reps), summarise(tg, reps), summarise(td, reps)};
    free(t);
    return res;
}

/* Reads the JSON lines of step_torch.py ({"size", "median_us", "iqr_us"}) into rows by size. */
static void load_torch(const char *path, torch_row *rows)
{
    memset(rows, 0, sizeof(torch_row) * MAX_SIZES);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_step: cannot read %s; torch column skipped\n", path);
        return;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *name = j ? json_string_value(json_object_get(j, "size")) : NULL;
        int i = name ? size_index(name, strlen(name)) : -1;
        if (i >= 0) {
            rows[i].have = true;
            rows[i].median = json_number_value(json_object_get(j, "median_us"));
            rows[i].iqr = json_number_value(json_object_get(j, "iqr_us"));
        }
        json_decref(j);
    }
    fclose(f);
}

static void print_header(const options *o, bool torch)
{
    if (o->cuda) {
        printf("backend cuda; batch %d, P %d, data N(0,1), random labels; median [IQR] in us over reps\n", o->batch,
               P_EXAMPLES);
        printf("step = one grad_batch + sync (latency); pipelined = %d grad_batch calls and one sync, per call;\n"
               "GF/s: the GEMM work at the pipelined rate; draw = the index list on the host (not in step)\n",
               CUDA_PIPE);
        printf("%-7s %9s %5s %19s %19s %6s %10s %7s", "size", "weights", "reps", "step us", "pipelined us", "GF/s",
               "step/pipe", "draw");
        if (torch) printf(" %19s %13s", "torch us", "torch/boltzd");
        printf("\n");
        return;
    }
    printf("OpenBLAS core: %s (%s)\n", openblas_get_corename(), openblas_get_config());
    printf("threads %d, batch %d, P %d, data N(0,1), random labels; median [IQR] in us over reps\n",
           o->threads, o->batch, P_EXAMPLES);
    printf("step = nn_loss_grad incl. gather; GEMMs = its 3L-1 sgemm calls alone (GF/s: their rate);\n"
           "draw = the mini-batch index list, timed apart (not in step)\n");
    printf("%-7s %9s %5s %19s %19s %6s %10s %7s", "size", "weights", "reps", "step us", "GEMMs us", "GF/s",
           "step/GEMM", "draw");
    if (torch) printf(" %19s %13s", "torch us", "torch/boltzd");
    printf("\n");
}

static void print_row(const size_def *d, const bench_case *c, int reps, const size_result *r,
                      const torch_row *t)
{
    char step[32], gemm[32];
    snprintf(step, sizeof step, "%.1f [%.1f]", r->step.median, r->step.iqr);
    snprintf(gemm, sizeof gemm, "%.1f [%.1f]", r->gemm.median, r->gemm.iqr);
    printf("%-7s %9lld %5d %19s %19s %6.1f %10.2f %7.2f", d->name, (long long)c->arch.n, reps, step, gemm,
           gemm_flops(c) / (r->gemm.median * 1e3), r->step.median / r->gemm.median, r->draw.median);
    if (t && t->have) {
        char tt[32];
        snprintf(tt, sizeof tt, "%.1f [%.1f]", t->median, t->iqr);
        printf(" %19s %12.2fx", tt, t->median / r->step.median);
    } else if (t) {
        printf(" %19s %13s", "-", "-");
    }
    printf("\n");
    fflush(stdout);
}

static void print_json(const options *o, const size_def *d, const bench_case *c, int reps,
                       const size_result *r, const torch_row *t)
{
    printf("{\"size\": \"%s\", \"n_weights\": %lld, \"batch\": %d, \"threads\": %d, \"reps\": %d, "
           "\"step_median_us\": %.3f, \"step_iqr_us\": %.3f, \"gemm_median_us\": %.3f, \"gemm_iqr_us\": %.3f, "
           "\"gemm_gflops\": %.2f, \"step_over_gemm\": %.4f, \"draw_median_us\": %.3f",
           d->name, (long long)c->arch.n, o->batch, o->threads, reps, r->step.median, r->step.iqr,
           r->gemm.median, r->gemm.iqr, gemm_flops(c) / (r->gemm.median * 1e3), r->step.median / r->gemm.median,
           r->draw.median);
    if (t && t->have)
        printf(", \"torch_median_us\": %.3f, \"torch_iqr_us\": %.3f, \"torch_over_boltzd\": %.4f", t->median,
               t->iqr, t->median / r->step.median);
    printf(", \"backend\": \"%s\", \"openblas_core\": \"%s\"}\n", o->cuda ? "cuda" : "cpu", openblas_get_corename());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    options o = parse_options(argc, argv);
    openblas_set_num_threads(o.threads);
    torch_row torch[MAX_SIZES];
    if (o.torch_json) load_torch(o.torch_json, torch);
    if (!o.json) print_header(&o, o.torch_json != NULL);
    for (int i = 0; i < MAX_SIZES; i++) {
        if (!o.use[i]) continue;
        bench_case c;
        case_init(&c, &SIZES[i], o.batch, o.cuda);
        int reps = o.reps ? o.reps : SIZES[i].default_reps;
        size_result r = measure(&c, reps);
        const torch_row *t = o.torch_json ? &torch[i] : NULL;
        if (o.json) print_json(&o, &SIZES[i], &c, reps, &r, t);
        else print_row(&SIZES[i], &c, reps, &r, t);
        case_free(&c);
    }
    return 0;
}
