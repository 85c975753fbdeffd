/* bench_multichain.c: aggregate chain-steps per second of K chains of the small network
 * ([500, 20, 100, 10], 13 130 weights, spin data P = 2000, pL with its defaults, batch 128), run
 * sequentially (as an unbatched sweep does) against batched (one mc_group, multichain.h).
 *
 * For each K (default 1, 4, 16, 64), five modes, each on its own chains:
 *   seq_all  K chains one after another on ONE backend handle, OpenBLAS on --threads threads
 *            (default: every core, as `boltzd run` and a one-worker daemon give an unbatched sweep);
 *   seq_1    the same with OpenBLAS on 1 thread;
 *   batched  one mc_group of K chains on K handles, --threads worker threads, OpenBLAS 1 thread,
 *            mc_advance by S steps;
 *   lockstep one mc_group in lockstep (mc_set_lockstep): every chain's step around one gradient
 *            call per step. On CUDA the K handles are one handle group (be_cuda_network_group:
 *            shared data, the gradients of all chains as batched GEMMs, one host thread); on the
 *            CPU the K handles with the CPU's group gradient (a loop), one thread, OpenBLAS 1
 *            thread: there it shows the cost of stepping in lockstep, not a speed-up;
 *   exchange the batched group with a replica-exchange round (mc_exchange) every --exchange-every steps,
 *            driven as mc_run drives it (mc_advance to the next multiple, then the round); its
 *            cells are S rounded up to a multiple of the interval.
 * A cell is S steps of every chain; the aggregate rate is K*S / wall seconds, and the process CPU
 * time of the cell says how many cores the mode really had. Repetitions rotate the order of the
 * modes; medians and ranges over them. The chains' start (pL's exact variance estimate and
 * masses) and a warm-up block are done before any timing and are not in the rates (the start is
 * reported apart). S is calibrated so a sequential 1-thread cell takes about --seconds.
 *
 * pL's periodic mass update (update_every, default 1000) is the start's variance estimate again,
 * tens of steps' worth on the CPU: with cells of a few dozen steps per chain it would land in some cells
 * and not others (all K chains at once). So it is off in the timed steps (as in bench/cuda_step.c)
 * and its amortised share, measured start time * rate / update_every, is printed instead; it is
 * the same work per chain-step in every mode, so it leaves the ratios alone. Every other pL
 * setting is the default.
 *
 * Temperatures: T_k = 1e-3 * 10^(k / (K-1)) (one decade, strictly increasing, as exchange needs).
 *
 * --backend cuda (only when this program is linked with bzgpu, which defines BOLTZ_HAVE_CUDA;
 * bench/multichain --backend cuda does that): every handle is a CUDA backend on --device; seq_1 is
 * skipped (no BLAS threads there). Without a device it stops with the driver's reason.
 *
 * Prints a Markdown table; --json FILE writes every repetition. Never part of the tests. */
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "multichain.h"
#include "sampler.h"
#include "setup.h"
#ifdef BOLTZ_HAVE_CUDA
#include "be_cuda.h"
#include "gpu_probe.h"
#endif

#define MAX_K_VALUES 16
#define MAX_REPS 50
#define CALIBRATION_SECONDS 1.0
#define WARMUP_STEPS 50
#define MIN_STEPS 20   /* S per chain per cell at least */
#define NO_UPDATES 1000000000000LL /* pL update_every beyond any run */
#define T_LOW 1e-3   /* the lowest temperature (examples/spin-small.json) */
#define T_DECADES 1.0

enum { SEQ_ALL, SEQ_1, BATCHED, LOCKSTEP, EXCHANGE, N_MODES };
static const char *const MODE_NAMES[N_MODES] = {"seq_all", "seq_1", "batched", "lockstep", "exchange"};

typedef struct options {
    int32_t chains[MAX_K_VALUES];
    int n_chains;
    int reps;
    double seconds;        /* target wall of a calibration-mode cell */
    int64_t steps;         /* fixed S for every K (0: calibrated) */
    int64_t exchange_every;
    int threads;           /* batched worker threads, and OpenBLAS threads of seq_all */
    bool cuda;
    int device;
    const char *json_path;
} options;

/* K chains one after another on one handle. */
typedef struct seq_set {
    be b;
    int32_t K;
    smp_chain c[MC_MAX_CHAINS];
} seq_set;

/* One group of K chains on K handles. */
typedef struct group_set {
    be b[MC_MAX_CHAINS];
    int32_t opened;
    mc_group g;
} group_set;

/* Everything measured for one K. */
typedef struct k_result {
    int32_t K;
    int64_t S;                         /* steps per chain per cell */
    int64_t S_ex;                      /* the same for the exchange mode: a multiple of the interval */
    double cal_rate;                   /* calibration: aggregate steps/s that set S */
    bool ran[N_MODES];
    double wall[N_MODES][MAX_REPS];
    double cpu[N_MODES][MAX_REPS];     /* process CPU seconds of the cell (every thread) */
    double start_s[N_MODES];           /* starts of all K chains of the mode, seconds */
    double exchange_share[MAX_REPS];   /* exchange: the group's exchange_time over the wall */
    int64_t exchange_rounds, swaps_tried, swaps_done;
} k_result;

/* pL's periodic mass update, off in the timed steps, priced from the calibration mode's figures. */
typedef struct run_info {
    int64_t update_every;    /* pL's default mass-update interval */
    double start_per_chain;  /* seconds of one variance estimate (a chain's start), median over K */
    double step_s;           /* seconds of one chain-step in that mode, median over K */
    double update_share;     /* start_per_chain / (update_every * step_s) */
} run_info;

typedef struct summary {
    double median, lo, hi;
} summary;

/* ---- small helpers ---- */

static void die(const char *what, const bz_err *e)
{
    fprintf(stderr, "bench_multichain: %s: %s\n", what, e->msg);
    exit(1);
}

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (!p) {
        fprintf(stderr, "bench_multichain: out of memory (%zu bytes)\n", count * size);
        exit(1);
    }
    return p;
}

/* CPU seconds of this process so far, every thread (OpenBLAS's spinning included). */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int nproc(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static summary summarise(const double *v, int n)
{
    double s[MAX_REPS];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    summary r = {med, s[0], s[n - 1]};
    return r;
}

/* ---- options ---- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_multichain [--chains 1,4,16,64] [--reps 3] [--seconds 2.5] [--steps S]\n"
                    "                        [--exchange-every 100] [--threads N] [--backend cpu|cuda] [--device D]\n"
                    "                        [--json FILE]\n");
    exit(2);
}

static long long int_arg(const char *s, const char *opt, long long lo, long long hi)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_multichain: %s needs an integer in [%lld, %lld] (got '%s')\n", opt, lo, hi, s);
        exit(2);
    }
    return v;
}

static void parse_chains(options *o, const char *list)
{
    o->n_chains = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->n_chains == MAX_K_VALUES) {
            fprintf(stderr, "bench_multichain: --chains takes at most %d values\n", MAX_K_VALUES);
            exit(2);
        }
        o->chains[o->n_chains++] = (int32_t)int_arg(tok, "--chains", 1, MC_MAX_CHAINS);
    }
    if (o->n_chains == 0) usage();
}

static options parse_options(int argc, char **argv)
{
    options o = {.reps = 3, .seconds = 2.5, .exchange_every = 100, .threads = nproc()};
    parse_chains(&o, "1,4,16,64");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--chains")) parse_chains(&o, v);
        else if (!strcmp(a, "--reps")) o.reps = (int)int_arg(v, a, 1, MAX_REPS);
        else if (!strcmp(a, "--steps")) o.steps = int_arg(v, a, 1, 100000000);
        else if (!strcmp(a, "--exchange-every")) o.exchange_every = int_arg(v, a, 0, 100000000);
        else if (!strcmp(a, "--threads")) o.threads = (int)int_arg(v, a, 1, 1024);
        else if (!strcmp(a, "--device")) o.device = (int)int_arg(v, a, 0, 1024);
        else if (!strcmp(a, "--json")) o.json_path = v;
        else if (!strcmp(a, "--seconds")) {
            o.seconds = atof(v);
            if (!(o.seconds > 0 && o.seconds < 3600)) {
                fprintf(stderr, "bench_multichain: --seconds needs a number in (0, 3600) (got '%s')\n", v);
                exit(2);
            }
        } else if (!strcmp(a, "--backend") && (!strcmp(v, "cpu") || !strcmp(v, "cuda"))) o.cuda = !strcmp(v, "cuda");
        else usage();
        i++;
    }
    return o;
}

/* ---- the spec, the data, the backends ---- */

/* examples/spin-small.json with K temperatures, batched, exchange every `every` (K >= 2); pL's
 * periodic mass update off when no_updates (see the top), else at its default. */
static void make_spec(bz_spec *s, int32_t K, int64_t every, bool cuda, bool no_updates)
{
    char temps[MC_MAX_CHAINS * 24 + 8] = "[", ex[64] = "";
    size_t len = 1;
    for (int32_t k = 0; k < K; k++) {
        double T = K > 1 ? T_LOW * pow(10.0, T_DECADES * k / (K - 1)) : T_LOW;
        len += (size_t)snprintf(temps + len, sizeof temps - len, "%s%.17g", k ? "," : "", T);
    }
    snprintf(temps + len, sizeof temps - len, "]");
    if (K >= 2 && every > 0) snprintf(ex, sizeof ex, ", \"exchange\": {\"every\": %lld}", (long long)every);
    char updates[64] = "";
    if (no_updates) snprintf(updates, sizeof updates, ", \"update_every\": %lld", NO_UPDATES);
    char text[4096];
    snprintf(text, sizeof text,
             "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 500, \"classes\": 10, \"train\": 2000, \"test\": 2000,"
             " \"p_flip\": 0.3, \"seed\": 1},"
             " \"model\": {\"hidden\": [20, 100], \"bias\": true, \"lambda\": 0.001},"
             " \"init\": {\"kind\": \"random\", \"seed\": 2},"
             " \"sampler\": {\"method\": \"pl\", \"T\": %s, \"steps\": 1000000000, \"batch\": 128, \"seed\": 3%s},"
             " \"backend\": \"%s\", \"batched\": true%s}",
             temps, updates, cuda ? "cuda" : "cpu", ex);
    bz_err e;
    if (spec_parse(text, s, &e)) die("the benchmark's spec", &e);
}

static void open_backend(be *b, const options *o, const bz_spec *s, const nn_arch *a, const ds_data *d)
{
    bz_err e;
    int rc;
#ifdef BOLTZ_HAVE_CUDA
    if (o->cuda) {
        be_cuda_opts co;
        be_cuda_default_opts(&co);
        co.device = o->device;
        rc = be_cuda_network(b, a, d, s->model.lambda, s->sampler.batch, &co, &e);
        if (rc) die("opening the CUDA backend", &e);
        return;
    }
#else
    (void)o;
#endif
    rc = be_cpu_network(b, a, d, s->model.lambda, s->sampler.batch, &e);
    if (rc) die("opening the CPU backend", &e);
}

static void sync_backend(be *b)
{
    bz_err e;
    if (b->ops->sync(b->ctx, &e)) die("backend", &e);
}

/* Stops here, with the reason, when --backend cuda cannot run; name gets the device's name ("CPU"). */
static void check_cuda(const options *o, char *name, size_t len)
{
    snprintf(name, len, "CPU");
    if (!o->cuda) return;
#ifdef BOLTZ_HAVE_CUDA
    char why[256] = "";
    int n = gpu_device_count(why, sizeof why);
    if (n <= o->device) {
        if (n > 0)
            fprintf(stderr, "bench_multichain: --device %d: no such CUDA device (%d found: 0 to %d)\n", o->device, n,
                    n - 1);
        else
            fprintf(stderr, "bench_multichain: --backend cuda: no CUDA device (%s)\n", why);
        exit(1);
    }
    gpu_device_name(o->device, name, len);
#else
    fprintf(stderr, "bench_multichain: --backend cuda: this bench_multichain was built without the CUDA backend "
                    "(run bench/multichain --backend cuda, which builds it linked with bzgpu)\n");
    exit(1);
#endif
}

/* ---- chain sets ---- */

static double seq_open(seq_set *q, const options *o, const bz_spec *s, const nn_arch *a, const ds_data *d,
                       const float *w_init)
{
    bz_err e;
    open_backend(&q->b, o, s, a, d);
    q->K = s->sampler.n_T;
    double t0 = smp_now();
    for (int32_t k = 0; k < q->K; k++) {
        if (smp_chain_create(&q->c[k], s, &q->b, k, &e)) die("creating a sequential chain", &e);
        q->b.ops->upload(q->b.ctx, q->c[k].w, w_init, q->c[k].n);
        if (smp_chain_start(&q->c[k], &e)) die("starting a sequential chain", &e);
    }
    sync_backend(&q->b);
    return smp_now() - t0;
}

static void seq_close(seq_set *q)
{
    for (int32_t k = 0; k < q->K; k++) smp_chain_destroy(&q->c[k]);
    be_destroy(&q->b);
}

/* The K handles of a lockstep group: one CUDA handle group, or K CPU handles. */
static void open_lockstep_backends(group_set *p, const options *o, const bz_spec *s, const nn_arch *a,
                                   const ds_data *d)
{
    const int32_t K = s->sampler.n_T;
#ifdef BOLTZ_HAVE_CUDA
    if (o->cuda) {
        be_cuda_opts co;
        be_cuda_default_opts(&co);
        co.device = o->device;
        bz_err e;
        if (be_cuda_network_group(p->b, K, a, d, s->model.lambda, s->sampler.batch, &co, &e))
            die("opening a CUDA handle group", &e);
        p->opened = K;
        return;
    }
#endif
    for (p->opened = 0; p->opened < K; p->opened++) open_backend(&p->b[p->opened], o, s, a, d);
}

static double group_open(group_set *p, const options *o, const bz_spec *s, const nn_arch *a, const ds_data *d,
                         const float *w_init, bool lockstep)
{
    bz_err e;
    const int32_t K = s->sampler.n_T;
    if (lockstep)
        open_lockstep_backends(p, o, s, a, d);
    else
        for (p->opened = 0; p->opened < K; p->opened++) open_backend(&p->b[p->opened], o, s, a, d);
    if (mc_create(&p->g, s, p->b, o->threads, &e)) die("creating the group", &e);
    if (lockstep && mc_set_lockstep(&p->g, true, &e)) die("lockstep", &e);
    double t0 = smp_now();
    if (mc_start(&p->g, w_init, &e)) die("starting the group", &e);
    for (int32_t k = 0; k < K; k++) sync_backend(&p->b[k]);
    return smp_now() - t0;
}

static void group_close(group_set *p)
{
    mc_destroy(&p->g);
    for (int32_t k = 0; k < p->opened; k++) be_destroy(&p->b[k]);
}

/* ---- the timed work ---- */

static void seq_steps(seq_set *q, int64_t S)
{
    bz_err e;
    for (int32_t k = 0; k < q->K; k++) {
        for (int64_t i = 0; i < S; i++)
            if (smp_chain_step(&q->c[k], &e)) die("a sequential chain", &e);
        sync_backend(&q->b); /* a sweep waits for each chain before the next */
    }
}

static void group_sync(group_set *p)
{
    for (int32_t k = 0; k < p->g.K; k++) sync_backend(&p->b[k]);
}

static void batched_steps(group_set *p, int64_t S)
{
    bz_err e;
    if (mc_advance(&p->g, mc_step(&p->g) + S, NULL, &e)) die("the batched group", &e);
    group_sync(p);
}

/* As mc_run: advance to the next multiple of `every`, exchange there. */
static void exchange_steps(group_set *p, int64_t S, int64_t every)
{
    bz_err e;
    const int64_t end = mc_step(&p->g) + S;
    for (int64_t at = mc_step(&p->g); at < end;) {
        int64_t next = (at / every + 1) * every;
        if (next > end) next = end;
        if (mc_advance(&p->g, next, NULL, &e)) die("the batched group with exchange", &e);
        if (next % every == 0 && mc_exchange(&p->g, &e)) die("an exchange round", &e);
        at = next;
    }
    group_sync(p);
}

/* ---- one K ---- */

typedef struct k_sets {
    seq_set *seq[2];   /* SEQ_ALL, SEQ_1 */
    group_set *grp[3]; /* BATCHED, LOCKSTEP, EXCHANGE */
} k_sets;

static bool mode_runs(const options *o, int32_t K, int mode)
{
    if (mode == SEQ_1) return !o->cuda;
    if (mode == EXCHANGE) return K >= 2 && o->exchange_every > 0;
    return true;
}

static void set_blas_threads(const options *o, int mode)
{
    if (!o->cuda) openblas_set_num_threads(mode == SEQ_ALL ? o->threads : 1);
}

static void run_mode(const options *o, k_sets *ks, int mode, int64_t S)
{
    set_blas_threads(o, mode);
    switch (mode) {
    case SEQ_ALL:
    case SEQ_1: seq_steps(ks->seq[mode == SEQ_1], S); break;
    case BATCHED:
    case LOCKSTEP: batched_steps(ks->grp[mode - BATCHED], S); break;
    default: exchange_steps(ks->grp[EXCHANGE - BATCHED], S, o->exchange_every); break;
    }
}

static void open_sets(const options *o, k_sets *ks, k_result *r, const bz_spec *s, const nn_arch *a,
                      const ds_data *d, const float *w_init)
{
    memset(ks, 0, sizeof *ks);
    for (int m = 0; m < N_MODES; m++) {
        r->ran[m] = mode_runs(o, r->K, m);
        if (!r->ran[m]) continue;
        set_blas_threads(o, m); /* the start too runs as the mode would */
        if (m == SEQ_ALL || m == SEQ_1) {
            ks->seq[m] = xcalloc(1, sizeof(seq_set));
            r->start_s[m] = seq_open(ks->seq[m], o, s, a, d, w_init);
        } else {
            group_set *p = xcalloc(1, sizeof(group_set));
            ks->grp[m - BATCHED] = p;
            r->start_s[m] = group_open(p, o, s, a, d, w_init, m == LOCKSTEP);
        }
    }
}

static void close_sets(k_sets *ks)
{
    for (int i = 0; i < 2; i++) {
        if (ks->seq[i]) seq_close(ks->seq[i]);
        free(ks->seq[i]);
    }
    for (int i = 0; i < 3; i++) {
        if (ks->grp[i]) group_close(ks->grp[i]);
        free(ks->grp[i]);
    }
}

static int64_t steps_of(const k_result *r, int mode) { return mode == EXCHANGE ? r->S_ex : r->S; }

static double rate_of(const k_result *r, int mode, int rep)
{
    return (double)r->K * (double)steps_of(r, mode) / r->wall[mode][rep];
}

/* The mode that sets S: sequential, OpenBLAS 1 thread (all threads on CUDA, which has no seq_1). */
static int calibration_mode(const options *o) { return o->cuda ? SEQ_ALL : SEQ_1; }

/* Aggregate steps/s of that mode's K chains over about CALIBRATION_SECONDS (after the warm-up). */
static double calibrate(const options *o, k_sets *ks, int32_t K)
{
    const int mode = calibration_mode(o);
    const int64_t block = K >= 10 ? 1 : 10 / K;
    int64_t done = 0;
    double t0 = smp_now(), dt = 0.0;
    while (dt < CALIBRATION_SECONDS) {
        run_mode(o, ks, mode, block);
        done += block * K;
        dt = smp_now() - t0;
    }
    return (double)done / dt;
}

/* S for K chains: a calibration-mode cell of about o->seconds, at least MIN_STEPS. */
static int64_t steps_for(const options *o, int32_t K, double rate)
{
    if (o->steps > 0) return o->steps;
    int64_t S = (int64_t)llround(o->seconds * rate / K);
    return S < MIN_STEPS ? MIN_STEPS : S;
}

/* The exchange mode's S: S rounded up to a multiple of the interval, so every repetition holds
 * the same number of exchange rounds (S_ex / every). */
static int64_t exchange_steps_for(const options *o, int64_t S)
{
    const int64_t every = o->exchange_every > 0 ? o->exchange_every : 1;
    return (S + every - 1) / every * every;
}

static void measure_k(const options *o, k_result *r, const nn_arch *a, const ds_data *d, const float *w_init)
{
    bz_spec *s = xcalloc(1, sizeof *s);
    make_spec(s, r->K, o->exchange_every, o->cuda, true);
    k_sets ks;
    open_sets(o, &ks, r, s, a, d, w_init);
    for (int m = 0; m < N_MODES; m++)
        if (r->ran[m]) run_mode(o, &ks, m, WARMUP_STEPS);
    r->cal_rate = o->steps > 0 ? 0.0 : calibrate(o, &ks, r->K);
    r->S = steps_for(o, r->K, r->cal_rate);
    r->S_ex = exchange_steps_for(o, r->S);
    group_set *gex = ks.grp[EXCHANGE - BATCHED];
    mc_group *gx = gex ? &gex->g : NULL;
    int64_t rounds0 = gx ? gx->rounds : 0;
    for (int rep = 0; rep < o->reps; rep++)
        for (int i = 0; i < N_MODES; i++) {
            int m = (i + rep) % N_MODES; /* rotate the order: drift and load hit every mode alike */
            if (!r->ran[m]) continue;
            double ex0 = gx ? gx->exchange_time : 0.0, c0 = cpu_now(), t0 = smp_now();
            run_mode(o, &ks, m, steps_of(r, m));
            r->wall[m][rep] = smp_now() - t0;
            r->cpu[m][rep] = cpu_now() - c0;
            if (m == EXCHANGE) r->exchange_share[rep] = (gx->exchange_time - ex0) / r->wall[m][rep];
            fprintf(stderr, "  K %d rep %d %-8s %7.3f s  %8.0f steps/s  %.2f cores busy\n", (int)r->K, rep,
                    MODE_NAMES[m], r->wall[m][rep], rate_of(r, m, rep),
                    r->cpu[m][rep] / r->wall[m][rep]);
        }
    if (gx) {
        r->exchange_rounds = gx->rounds - rounds0;
        for (int32_t k = 0; k + 1 < gx->K; k++) {
            r->swaps_tried += gx->pair[k].attempts;
            r->swaps_done += gx->pair[k].accepts;
        }
    }
    close_sets(&ks);
    free(s);
}

/* ---- output ---- */


static summary rates(const k_result *r, int mode, int reps)
{
    double v[MAX_REPS] = {0};
    for (int i = 0; i < reps; i++) v[i] = rate_of(r, mode, i);
    return summarise(v, reps);
}

/* Median of cpu/wall over the repetitions: the cores the mode actually had. */
static double cores_busy(const k_result *r, int mode, int reps)
{
    double v[MAX_REPS] = {0};
    for (int i = 0; i < reps; i++) v[i] = r->cpu[mode][i] / r->wall[mode][i];
    return summarise(v, reps).median;
}

/* Median over the repetitions of chain-steps per process CPU second: the work's cost, whatever
 * share of the cores the mode got. */
static double per_cpu_median(const k_result *r, int mode, int reps)
{
    double v[MAX_REPS] = {0};
    for (int i = 0; i < reps; i++) v[i] = (double)r->K * (double)steps_of(r, mode) / r->cpu[mode][i];
    return summarise(v, reps).median;
}

static void cores_cell(char *buf, size_t len, const k_result *r, int reps)
{
    size_t used = 0;
    for (int m = SEQ_ALL; m <= BATCHED; m++) {
        char one[16] = "-";
        if (r->ran[m]) snprintf(one, sizeof one, "%.2f", cores_busy(r, m, reps));
        used += (size_t)snprintf(buf + used, len - used, "%s%s", m ? " / " : "", one);
        if (used >= len) return;
    }
}

static void cell(char *buf, size_t len, const k_result *r, int mode, int reps)
{
    if (!r->ran[mode]) {
        snprintf(buf, len, "n/a");
        return;
    }
    summary s = rates(r, mode, reps);
    snprintf(buf, len, "%.0f [%.0f-%.0f]", s.median, s.lo, s.hi);
}

static void ratio(char *buf, size_t len, const k_result *r, int num, const k_result *rd, int den, int reps)
{
    if (!rd || !r->ran[num] || !rd->ran[den]) {
        snprintf(buf, len, "n/a");
        return;
    }
    snprintf(buf, len, "%.2f", rates(r, num, reps).median / rates(rd, den, reps).median);
}

static const k_result *find_k(const k_result *res, int n, int32_t K)
{
    for (int i = 0; i < n; i++)
        if (res[i].K == K) return &res[i];
    return NULL;
}

static void print_row(const options *o, const k_result *r, const k_result *one)
{
    char c[N_MODES][48], q[4][16], steps[48], cores[48], ex_cost[24] = "n/a", ex_share[24] = "n/a", per_cpu[16] = "n/a";
    for (int m = 0; m < N_MODES; m++) cell(c[m], sizeof c[m], r, m, o->reps);
    ratio(q[0], sizeof q[0], r, BATCHED, r, SEQ_ALL, o->reps);
    ratio(q[1], sizeof q[1], r, BATCHED, r, SEQ_1, o->reps);
    ratio(q[2], sizeof q[2], r, BATCHED, one, SEQ_ALL, o->reps);
    ratio(q[3], sizeof q[3], r, LOCKSTEP, one, SEQ_ALL, o->reps);
    cores_cell(cores, sizeof cores, r, o->reps);
    if (r->ran[EXCHANGE] && r->S_ex != r->S)
        snprintf(steps, sizeof steps, "%lld (%lld)", (long long)r->S, (long long)r->S_ex);
    else
        snprintf(steps, sizeof steps, "%lld", (long long)r->S);
    if (r->ran[EXCHANGE]) {
        double cost = 1.0 - rates(r, EXCHANGE, o->reps).median / rates(r, BATCHED, o->reps).median;
        snprintf(ex_cost, sizeof ex_cost, "%+.1f%%", 100.0 * cost);
        snprintf(ex_share, sizeof ex_share, "%.1f%%", 100.0 * summarise(r->exchange_share, o->reps).median);
    }
    if (r->ran[SEQ_1])
        snprintf(per_cpu, sizeof per_cpu, "%.2f",
                 per_cpu_median(r, BATCHED, o->reps) / per_cpu_median(r, SEQ_1, o->reps));
    printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.3f |\n", (int)r->K, steps,
           c[SEQ_ALL], c[SEQ_1], c[BATCHED], q[0], q[1], q[2], c[LOCKSTEP], q[3], c[EXCHANGE], ex_cost, ex_share, cores,
           per_cpu,
           r->start_s[BATCHED] / r->K);
}

static void print_notes(const options *o, const run_info *info)
{
    printf("\nchain-steps/s = K*S / wall, median [min-max] over %d repetitions; batched/one chain = batched against "
           "seq all-cores at K = 1;\n"
           "exchange cost = 1 - (+ exchange)/batched; exchange share = the group's time in exchange rounds over the "
           "wall of the + exchange cell;\n"
           "cores busy = process CPU seconds / wall seconds, median, for seq all-cores / seq 1-thread / batched "
           "(OpenBLAS's spinning threads count);\n"
           "lockstep = one group in lockstep (CUDA: one handle group, batched GEMMs; CPU: one thread); "
           "lockstep/one chain = lockstep against seq all-cores at K = 1;\n"
           "batched/seq 1 per CPU s = the ratio of chain-steps per process CPU second (1: batching costs no extra "
           "work; the wall-clock\ngain is then the cores the batched threads get); start s/chain = the batched "
           "group's start (mc_start) over K.\n",
           o->reps);
    printf("pL's mass update (every %lld steps by default: the same variance estimate as the start, %.3f s per "
           "chain here) is\noff in the timed steps; at %.2f ms per chain-step it adds %.1f%% to the time per step, "
           "in every mode alike.\n",
           (long long)info->update_every, info->start_per_chain, 1e3 * info->step_s, 100.0 * info->update_share);
}

static void print_table(const options *o, const run_info *info, const k_result *res, int n)
{
    printf("\n| K | S | seq all-cores | seq 1-thread | batched | batched/seq all | batched/seq 1 | batched/one chain |"
           " lockstep | lockstep/one chain | + exchange | exchange cost | exchange share | cores busy |"
           " batched/seq 1 per CPU s | start s/chain |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) print_row(o, &res[i], find_k(res, n, 1));
    print_notes(o, info);
    fflush(stdout);
}

static json_t *mode_json(const k_result *r, int mode, int reps)
{
    json_t *walls = json_array(), *rs = json_array(), *cpus = json_array();
    for (int i = 0; i < reps; i++) {
        json_array_append_new(walls, json_real(r->wall[mode][i]));
        json_array_append_new(cpus, json_real(r->cpu[mode][i]));
        json_array_append_new(rs, json_real(rate_of(r, mode, i)));
    }
    summary s = rates(r, mode, reps);
    return json_pack("{s:o, s:o, s:o, s:f, s:f, s:f, s:f, s:f, s:f}", "wall_s", walls, "cpu_s", cpus, "steps_per_s",
                     rs, "median", s.median, "min", s.lo, "max", s.hi, "cores_busy", cores_busy(r, mode, reps),
                     "steps_per_cpu_s_median", per_cpu_median(r, mode, reps), "start_s", r->start_s[mode]);
}

static json_t *k_json(const k_result *r, int reps)
{
    json_t *modes = json_object();
    for (int m = 0; m < N_MODES; m++)
        if (r->ran[m]) json_object_set_new(modes, MODE_NAMES[m], mode_json(r, m, reps));
    json_t *j = json_pack("{s:i, s:I, s:I, s:f, s:o}", "K", (int)r->K, "S", (json_int_t)r->S, "S_exchange",
                          (json_int_t)r->S_ex, "calibration_steps_per_s", r->cal_rate, "modes", modes);
    if (r->ran[EXCHANGE]) {
        json_t *share = json_array();
        for (int i = 0; i < reps; i++) json_array_append_new(share, json_real(r->exchange_share[i]));
        json_object_set_new(j, "exchange_share", share);
        json_object_set_new(j, "exchange_rounds", json_integer(r->exchange_rounds));
        json_object_set_new(j, "swaps_tried", json_integer(r->swaps_tried));
        json_object_set_new(j, "swaps_accepted", json_integer(r->swaps_done));
    }
    return j;
}

static void write_json(const options *o, const char *device, const nn_arch *a, const run_info *info,
                       const k_result *res, int n)
{
    json_t *rows = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(rows, k_json(&res[i], o->reps));
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:I, s:f, s:I, s:i, s:i, s:s, s:o}", "backend",
                          o->cuda ? "cuda" : "cpu", "device", device, "openblas_core", openblas_get_corename(),
                          "openblas_config", openblas_get_config(), "nproc", nproc(), "threads", o->threads, "reps",
                          o->reps, "seconds", o->seconds, "exchange_every", (json_int_t)o->exchange_every,
                          "chain_step_s", info->step_s, "n_weights", (json_int_t)a->n, "P", 2000, "batch", 128,
                          "temperatures", "T_k = 1e-3 * 10^(k/(K-1))", "rows", rows);
    json_object_set_new(j, "update_every_default", json_integer(info->update_every));
    json_object_set_new(j, "start_s_per_chain", json_real(info->start_per_chain));
    json_object_set_new(j, "mass_update_share", json_real(info->update_share));
    if (json_dump_file(j, o->json_path, JSON_INDENT(1)) != 0) {
        fprintf(stderr, "bench_multichain: cannot write --json %s\n", o->json_path);
        exit(1);
    }
    json_decref(j);
}

static void print_header(const options *o, const char *device, const nn_arch *a)
{
    printf("bench_multichain: backend %s (%s); small network [500,20,100,10], %lld weights, spin P = 2000, pL "
           "defaults, batch 128\n",
           o->cuda ? "cuda" : "cpu", device, (long long)a->n);
    if (!o->cuda) printf("OpenBLAS core %s (%s)\n", openblas_get_corename(), openblas_get_config());
    printf("nproc %d; batched: %d worker threads, OpenBLAS 1 thread; seq all-cores: OpenBLAS %d threads\n", nproc(),
           o->threads, o->threads);
    printf("S per chain: from a %.1f s calibration of each K's %s set after its warm-up, for cells of ~%.1f s "
           "there\n",
           CALIBRATION_SECONDS, o->cuda ? "sequential" : "sequential 1-thread", o->seconds);
    printf("timed: S steps of every chain (pL mass updates off, see below); not timed: the chains' start (pL's "
           "exact variance\nestimate; see start s/chain) and %d warm-up steps; exchange every %lld steps\n",
           WARMUP_STEPS, (long long)o->exchange_every);
    fflush(stdout);
}

/* What the default mass updates would add per step: one start's variance estimate per update_every
 * steps, over the time of those steps (medians over K of the calibration mode). */
static run_info mass_update_cost(const options *o, const k_result *res, int n, int64_t update_every)
{
    const int mode = calibration_mode(o);
    double start[MAX_K_VALUES] = {0}, step[MAX_K_VALUES] = {0};
    for (int i = 0; i < n; i++) {
        start[i] = res[i].start_s[mode] / res[i].K;
        step[i] = 1.0 / rates(&res[i], mode, o->reps).median;
    }
    run_info info = {update_every, summarise(start, n).median, summarise(step, n).median, 0.0}; /* n <= MAX_REPS */
    info.update_share = info.start_per_chain / ((double)update_every * info.step_s);
    return info;
}

int main(int argc, char **argv)
{
    options o = parse_options(argc, argv);
    char device[256];
    check_cuda(&o, device, sizeof device);
    bz_spec *s = xcalloc(1, sizeof *s);
    make_spec(s, 1, 0, o.cuda, false); /* the data, and pL's default update_every */
    ds_data d;
    nn_arch a;
    bz_err e;
    if (setup_load(s, &d, &a, &e)) die("loading the spin data", &e);
    float *w_init = xcalloc((size_t)a.n, sizeof(float));
    if (setup_initial_weights(s, &a, w_init, &e)) die("the initial weights", &e);
    print_header(&o, device, &a);
    k_result *res = xcalloc((size_t)o.n_chains, sizeof *res);
    for (int i = 0; i < o.n_chains; i++) {
        res[i].K = o.chains[i];
        measure_k(&o, &res[i], &a, &d, w_init);
    }
    run_info info = mass_update_cost(&o, res, o.n_chains, s->sampler.update_every);
    print_table(&o, &info, res, o.n_chains);
    if (o.json_path) write_json(&o, device, &a, &info, res, o.n_chains);
    free(res);
    free(w_init);
    ds_free(&d);
    free(s);
    return 0;
}
