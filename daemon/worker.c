/* worker.c: worker threads that run queued jobs (see worker.h): a single chain, or a batched
 * sweep as one group (core/multichain.h).
 *
 * A batched sweep keeps its rows (a parent, one child per temperature, so every per-chain endpoint
 * works per child), but one worker claims the parent and runs every chain on the worker's device:
 * on CUDA (pl, sgld) one handle group stepped in lockstep with batched GEMMs, otherwise one backend
 * handle per chain, the chains stepping in parallel threads (backend_open_group). Records go to the child of
 * their chain, whole rounds (every chain at one step) per transaction; samples to each child's
 * folder; ONE group checkpoint per checkpoint step holds all chains and is registered on the
 * parent's row (the children have none): one file is one row, pruned once, deleted with the sweep,
 * and found again by the resume after a restart, which reads the parent's rows. Cancellation is
 * watched on the parent; the outcome goes to every child at once (store_group_finish).
 *
 * OpenBLAS threads: serve sets cores / workers BLAS threads. A group stepping its chains in more
 * than one thread needs a single-threaded BLAS inside each (small GEMMs do not scale, many chains
 * do; several threads in a threaded OpenBLAS call serialise on its server). The setting is
 * process-wide, so while any such group runs, BLAS is single-threaded for every worker (single
 * chains included: they lose at most their BLAS parallelism, a small share for these GEMMs); the
 * last group to end restores the setting. */
#include "worker.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_select.h"
#include "ckpt.h"
#include "jobfiles.h"
#include "multichain.h"
#include "run.h"
#include "samples.h"
#include "setup.h"

#define OBS_BATCH 256

struct worker_pool {
    bz_daemon *d;
    int n;
    pthread_t threads[BZ_MAX_WORKERS];
    int index[BZ_MAX_WORKERS];
};

/* What a running job's sink needs. */
typedef struct job_run {
    bz_daemon *d;
    store *st;
    int w;                      /* worker index */
    job_row job;
    char dir[900];              /* DATA_DIR/jobs/ID */
    bz_spec spec;
    obs_record buf[OBS_BATCH];
    int n_buf;
    double last_flush, last_cancel_check;
    bool cancel;                /* the user asked to cancel */
    samples_file *samples;
    int64_t samples_count, samples_last;
    const smp_chain *chain;
} job_run;

void daemon_job_dir(const bz_daemon *d, int64_t id, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%.*s/jobs/%lld", (int)(len > 32 ? len - 32 : 0), d->cfg.data_dir, (long long)id);
    (void)n;
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "boltzd: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- the sink ---- */

static int flush_records(job_run *r, bz_err *e)
{
    r->last_flush = smp_now();
    if (!r->n_buf) return 0;
    int rc = store_obs_insert(r->st, r->job.id, r->buf, r->n_buf, e);
    if (!rc && r->chain) {
        double rate = r->chain->t_wall > 0 ? (double)r->chain->step / r->chain->t_wall : 0.0;
        r->d->workers[r->w].steps_per_s = rate;
        rc = store_job_progress(r->st, r->job.id, r->buf[r->n_buf - 1].step, rate, e);
    }
    r->n_buf = 0;
    hub_publish(r->d->hub);
    return rc;
}

static int sink_record(void *ctx, const obs_record *rec, bz_err *e)
{
    job_run *r = ctx;
    r->buf[r->n_buf++] = *rec;
    if (r->n_buf == OBS_BATCH || smp_now() - r->last_flush >= r->d->cfg.obs_flush_ms / 1000.0)
        return flush_records(r, e);
    return 0;
}

static int sink_sample(void *ctx, int64_t step, double t_wall, const float *w, int64_t n, bz_err *e)
{
    (void)n;
    job_run *r = ctx;
    int rc = samples_append(r->samples, step, t_wall, w, e);
    if (!rc) {
        r->samples_count++;
        r->samples_last = step;
    }
    return rc;
}

/* FNV-1a of a file's bytes, and its size. */
static int hash_file(const char *path, uint64_t *hash, int64_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char buf[1 << 16];
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t total = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
        total += (int64_t)got;
    }
    fclose(f);
    *hash = h;
    *size = total;
    return 0;
}

/* A new checkpoint's path in dir/checkpoints: ckpt-STEP.bzc, or ckpt-STEP-N.bzc when that exists
 * (a stop right after a checkpoint saves again at the same step; a file that a row names must
 * never be overwritten, or pruning the older row would unlink the newer one's file). */
static void fresh_checkpoint_path(const char *dir, int64_t step, char *buf, size_t len)
{
    jf_checkpoint_path(dir, step, buf, len);
    size_t n = strlen(buf), stem = n > 4 && !strcmp(buf + n - 4, ".bzc") ? n - 4 : n;
    for (int k = 1; access(buf, F_OK) == 0 && k < 1000; k++) snprintf(buf + stem, len - stem, "-%d.bzc", k);
}

/* A checkpoint file just written: its row on job (size and FNV-1a hash read back). */
static int register_checkpoint(job_run *r, int64_t job, int64_t step, const char *path, bz_err *e)
{
    uint64_t h = 0;
    int64_t size = 0, seq;
    if (hash_file(path, &h, &size)) return bz_fail(e, BZ_EIO, path, "cannot read back %s", path);
    return store_ckpt_add(r->st, job, step, path, size, h, &seq, e);
}

/* The samples row of a chain's job: count, last step, DIR/samples.bin and its size. */
static int save_samples_row(store *st, int64_t job, const char *dir, int64_t count, int64_t last, bz_err *e)
{
    samples_row sr = {job, count, 0, last, ""};
    snprintf(sr.path, sizeof sr.path, "%s/samples.bin", dir);
    struct stat stt;
    if (stat(sr.path, &stt) == 0) sr.size = stt.st_size;
    return store_samples_set(st, &sr, e);
}

/* Open DIR/samples.bin of a chain that resumes after resume_step (-1: fresh), keeping what lies at
 * or before it; *count and *last get the samples kept (unchanged for a fresh start). */
static int open_chain_samples(store *st, int64_t job, const char *dir, int64_t n, int64_t resume_step,
                              samples_file **out, int64_t *count, int64_t *last, bz_err *e)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/samples.bin", dir);
    int rc = samples_open(out, path, n, resume_step, e);
    if (rc || resume_step < 0) return rc;
    samples_row sr;
    bz_err ignore;
    if (store_samples_get(st, job, &sr, &ignore) == 0 && sr.last_step <= resume_step) {
        *count = sr.count;
        *last = sr.last_step;
    } else { /* recount from the truncated file */
        samples_data sd;
        if (samples_read(path, &sd, &ignore) == 0) {
            *count = sd.K;
            *last = sd.K ? sd.steps[sd.K - 1] : -1;
            samples_data_free(&sd);
        }
    }
    return 0;
}

static void prune_checkpoints(job_run *r)
{
    ckpt_row *rows = NULL;
    int64_t count = 0;
    bz_err e;
    if (store_ckpt_list(r->st, r->job.id, &rows, &count, &e)) return;
    for (int64_t i = 0; i + r->spec.checkpoint_keep < count; i++) {
        if (store_ckpt_remove(r->st, r->job.id, rows[i].seq, &e) == 0) unlink(rows[i].path);
    }
    free(rows);
}

static int sink_checkpoint(void *ctx, smp_chain *c, bool final, bz_err *e)
{
    (void)final;
    job_run *r = ctx;
    /* Records and samples up to this step are durable before the checkpoint that covers them. */
    int rc = flush_records(r, e);
    if (!rc && r->samples) rc = samples_sync(r->samples, e);
    char path[1200];
    fresh_checkpoint_path(r->dir, c->step, path, sizeof path);
    if (!rc) rc = smp_chain_save(c, path, ckpt_hash64(r->job.spec_json, strlen(r->job.spec_json)), e);
    if (!rc) rc = register_checkpoint(r, r->job.id, c->step, path, e);
    if (!rc && r->samples) rc = save_samples_row(r->st, r->job.id, r->dir, r->samples_count, r->samples_last, e);
    if (!rc) prune_checkpoints(r);
    return rc;
}

static bool sink_should_stop(void *ctx)
{
    job_run *r = ctx;
    if (atomic_load(&r->d->shutting_down)) return true;
    double now = smp_now();
    if (now - r->last_cancel_check > 0.25) {
        r->last_cancel_check = now;
        bool yes = false;
        bz_err e;
        if (store_job_cancel_requested(r->st, r->job.id, &yes, &e) == 0 && yes) r->cancel = true;
    }
    return r->cancel;
}

/* ---- running one job ---- */

/* The newest checkpoint that loads; resume from it, else start fresh. Returns the step resumed
 * from, or -1 for a fresh start. */
static int64_t resume_or_start(job_run *r, smp_chain *c, const nn_arch *a, be *b, bz_err *e, int *rc)
{
    ckpt_row *rows = NULL;
    int64_t count = 0;
    *rc = store_ckpt_list(r->st, r->job.id, &rows, &count, e);
    const uint64_t hash = ckpt_hash64(r->job.spec_json, strlen(r->job.spec_json));
    for (int64_t i = count - 1; i >= 0 && !*rc; i--) {
        bz_err le;
        if (smp_chain_load(c, rows[i].path, hash, &le) == 0) {
            int64_t step = rows[i].step;
            log_line("job %lld resumes from checkpoint %lld (step %lld)", (long long)r->job.id,
                     (long long)rows[i].seq, (long long)step);
            free(rows);
            return step;
        }
        log_line("job %lld: checkpoint %s unusable: %s", (long long)r->job.id, rows[i].path, le.msg);
    }
    free(rows);
    if (*rc) return -1;
    if (c->state) c->vt->destroy(c); /* a checkpoint that failed half-way left state behind */
    float *w0 = malloc(sizeof(float) * (size_t)a->n);
    *rc = w0 ? setup_initial_weights(&r->spec, a, w0, e) : bz_fail(e, BZ_ENOMEM, NULL, "out of memory");
    if (!*rc) {
        b->ops->upload(b->ctx, c->w, w0, a->n);
        *rc = smp_chain_start(c, e);
    }
    free(w0);
    return -1;
}

/* Everything after the resume point goes, so the series has no gap and no duplicate. */
static int prepare_outputs(job_run *r, int64_t resume_step, int64_t n, bz_err *e)
{
    int rc = store_obs_delete_after(r->st, r->job.id, resume_step, e);
    if (rc || r->spec.samples_every <= 0) return rc;
    return open_chain_samples(r->st, r->job.id, r->dir, n, resume_step, &r->samples, &r->samples_count,
                              &r->samples_last, e);
}

/* What every job needs first: its spec (with the daemon's backend for "auto"), its folder with
 * checkpoints/, and its data set loaded. */
static int prepare_job(job_run *r, ds_data *data, nn_arch *arch, bz_err *e)
{
    int rc = spec_parse(r->job.spec_json, &r->spec, e);
    if (rc) return rc;
    if (!strcmp(r->spec.backend, "auto") && strcmp(r->d->cfg.backend, "auto"))
        snprintf(r->spec.backend, sizeof r->spec.backend, "%s", r->d->cfg.backend);
    daemon_job_dir(r->d, r->job.id, r->dir, sizeof r->dir);
    char ckdir[1200];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", r->dir);
    rc = jf_mkdirs(ckdir, e);
    if (!rc) rc = setup_load(&r->spec, data, arch, e);
    return rc;
}

static int run_group(job_run *r, bz_err *e);

static int run_job(job_run *r, bz_err *e)
{
    if (r->job.n_children > 0) return run_group(r, e);
    ds_data data;
    nn_arch arch;
    int rc = prepare_job(r, &data, &arch, e);
    if (rc) return rc;
    if (r->spec.sampler.method == SM_ADAM && r->spec.sampler.early_stopping)
        rc = setup_hold_out(&data, r->spec.sampler.val_fraction, e);
    be b;
    memset(&b, 0, sizeof b);
    char note[512];
    int dev = rc ? 0 : backend_worker_device(r->d->cfg.devices, r->w, e); /* --devices: worker -> GPU */
    if (!rc && dev < 0) rc = dev;
    if (!rc) rc = backend_open_on(&r->spec, &arch, &data, dev, &b, note, sizeof note, e);
    if (!rc) {
        log_line("job %lld on worker %d: %s, %s T=%g, %lld weights", (long long)r->job.id, r->w, note,
                 spec_method_name(r->spec.sampler.method), r->spec.sampler.T[0], (long long)arch.n);
        store_job_set_backend(r->st, r->job.id, b.ops->name, e);
    }
    smp_chain c;
    memset(&c, 0, sizeof c);
    if (!rc) rc = smp_chain_create(&c, &r->spec, &b, 0, e);
    int64_t resume_step = -1;
    if (!rc) resume_step = resume_or_start(r, &c, &arch, &b, e, &rc);
    if (!rc) rc = prepare_outputs(r, resume_step, arch.n, e);
    if (!rc) {
        r->chain = &c;
        r->last_flush = smp_now();
        run_sink sink = {r, sink_record, sink_sample, sink_checkpoint, sink_should_stop, NULL};
        rc = run_chain(&c, &sink, e);
        bz_err fe;
        if (flush_records(r, &fe) && !rc) rc = fe.code, *e = fe;
    }
    samples_close(r->samples);
    r->samples = NULL;
    smp_chain_destroy(&c);
    if (b.ops) be_destroy(&b);
    ds_free(&data);
    return rc;
}

/* ---- a batched sweep: every chain in one group ---- */

#define GROUP_RECORDS 256 /* buffered records per chain between commits */

/* OpenBLAS single-threaded while any multi-threaded group runs (see the top of this file). */
static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static int blas_groups;
static int blas_saved_threads;

static void blas_single_enter(void)
{
    pthread_mutex_lock(&blas_mu);
    if (blas_groups++ == 0) {
        blas_saved_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_mu);
}

static void blas_single_leave(void)
{
    pthread_mutex_lock(&blas_mu);
    if (--blas_groups == 0) openblas_set_num_threads(blas_saved_threads);
    pthread_mutex_unlock(&blas_mu);
}

/* What a running group's sink needs besides the parent's job_run. */
typedef struct group_run {
    job_run *r;                          /* the parent: daemon, store, spec, folder */
    mc_group *g;
    int32_t K, threads;
    bool grouped;                        /* the handles are one CUDA group: lockstep */
    uint64_t spec_hash;                  /* of the parent's spec: the group checkpoint's */
    int64_t child[MC_MAX_CHAINS];        /* job id of chain k */
    samples_file *samples[MC_MAX_CHAINS];
    int64_t samples_count[MC_MAX_CHAINS], samples_last[MC_MAX_CHAINS];
    obs_record *buf;                     /* whole rounds: every chain at a step, in chain order */
    int64_t n_buf, cap;
    int64_t last_step[MC_MAX_CHAINS];    /* newest record per chain (progress) */
    int64_t start_step[MC_MAX_CHAINS];   /* where this run began (rates) */
    double started;
    atomic_bool cancel;                  /* the user cancelled the sweep */
    _Atomic double last_cancel_check;
    atomic_flag polling;                 /* one thread at a time asks the store */
} group_run;

static void child_dir(const group_run *gr, int32_t k, char *buf, size_t len)
{
    daemon_job_dir(gr->r->d, gr->child[k], buf, len);
}

/* Progress of every chain: its newest record, and steps per wall-clock second of this run. */
static int group_progress(group_run *gr, bz_err *e)
{
    double dt = smp_now() - gr->started, sps[MC_MAX_CHAINS], total = 0.0;
    for (int32_t k = 0; k < gr->K; k++) {
        sps[k] = dt > 0 ? (double)(gr->last_step[k] - gr->start_step[k]) / dt : 0.0;
        total += sps[k];
    }
    gr->r->d->workers[gr->r->w].steps_per_s = total;
    return store_group_progress(gr->r->st, gr->child, gr->last_step, sps, gr->K, e);
}

static int group_flush(group_run *gr, bz_err *e)
{
    job_run *r = gr->r;
    r->last_flush = smp_now();
    if (!gr->n_buf) return 0;
    int rc = store_obs_insert_chains(r->st, gr->child, gr->K, gr->buf, gr->n_buf, e);
    if (!rc) rc = group_progress(gr, e);
    gr->n_buf = 0;
    hub_publish(r->d->hub);
    return rc;
}

/* Records come in rounds (chains 0..K-1 at one step); commits happen after the last chain's, so a
 * reader never sees a step that only some chains have. */
static int group_record(void *ctx, int32_t k, const obs_record *rec, bz_err *e)
{
    group_run *gr = ctx;
    if (gr->n_buf == gr->cap) { /* only a failed chain's extra record can find the buffer full */
        int rc = group_flush(gr, e);
        if (rc) return rc;
    }
    gr->buf[gr->n_buf++] = *rec;
    gr->last_step[k] = rec->step;
    bool due = gr->n_buf == gr->cap || smp_now() - gr->r->last_flush >= gr->r->d->cfg.obs_flush_ms / 1000.0;
    return k == gr->K - 1 && due ? group_flush(gr, e) : 0;
}

static int group_sample(void *ctx, int32_t k, int64_t step, double t_wall, const float *w, int64_t n, bz_err *e)
{
    (void)n;
    group_run *gr = ctx;
    int rc = samples_append(gr->samples[k], step, t_wall, w, e);
    if (!rc) {
        gr->samples_count[k]++;
        gr->samples_last[k] = step;
    }
    return rc;
}

/* One file for all chains, registered on the parent; records and samples first. */
static int group_checkpoint(void *ctx, mc_group *g, bool final, bz_err *e)
{
    (void)final;
    group_run *gr = ctx;
    job_run *r = gr->r;
    int rc = group_flush(gr, e);
    for (int32_t k = 0; k < gr->K && !rc; k++)
        if (gr->samples[k]) rc = samples_sync(gr->samples[k], e);
    const int64_t step = mc_step(g);
    char path[1200];
    fresh_checkpoint_path(r->dir, step, path, sizeof path);
    if (!rc) rc = mc_save(g, path, gr->spec_hash, e);
    if (!rc) rc = register_checkpoint(r, r->job.id, step, path, e);
    for (int32_t k = 0; k < gr->K && !rc; k++) {
        if (!gr->samples[k]) continue;
        char dir[900];
        child_dir(gr, k, dir, sizeof dir);
        rc = save_samples_row(r->st, gr->child[k], dir, gr->samples_count[k], gr->samples_last[k], e);
    }
    if (!rc) prune_checkpoints(r);
    return rc;
}

/* Called from the chains' threads: flags only, and one of them at a time asks the store (at most
 * every 0.25 s) whether the sweep was cancelled. */
static bool group_should_stop(void *ctx)
{
    group_run *gr = ctx;
    if (atomic_load(&gr->r->d->shutting_down) || atomic_load(&gr->cancel)) return true;
    double now = smp_now();
    if (now - atomic_load(&gr->last_cancel_check) > 0.25 && !atomic_flag_test_and_set(&gr->polling)) {
        atomic_store(&gr->last_cancel_check, now);
        bool yes = false;
        bz_err e;
        if (store_job_cancel_requested(gr->r->st, gr->r->job.id, &yes, &e) == 0 && yes) atomic_store(&gr->cancel, true);
        atomic_flag_clear(&gr->polling);
    }
    return atomic_load(&gr->cancel);
}

static int cmp_child_chain(const void *a, const void *b)
{
    const job_row *x = a, *y = b;
    return (x->chain > y->chain) - (x->chain < y->chain);
}

/* The children's job ids by chain: exactly one child per temperature of the spec. */
static int load_children(group_run *gr, bz_err *e)
{
    job_row *rows = NULL;
    int64_t n = 0;
    int rc = store_job_list(gr->r->st, -1, NULL, gr->r->job.id, MC_MAX_CHAINS + 1, 0, &rows, &n, e);
    if (rc) return rc;
    qsort(rows, (size_t)n, sizeof *rows, cmp_child_chain);
    if (n != gr->K)
        rc = bz_fail(e, BZ_ESTATE, "sampler.T", "batched sweep %lld has %lld chain jobs for %d temperatures",
                     (long long)gr->r->job.id, (long long)n, (int)gr->K);
    for (int64_t i = 0; i < n && !rc; i++) {
        if (rows[i].chain != i)
            rc = bz_fail(e, BZ_ESTATE, NULL, "batched sweep %lld: no chain job for temperature %lld",
                         (long long)gr->r->job.id, (long long)i);
        gr->child[i] = rows[i].id;
    }
    for (int64_t i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);
    return rc;
}

/* Chain threads: the worker's share of the cores. */
static int32_t group_threads(const bz_daemon *d)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long share = cores / (d->n_workers > 0 ? d->n_workers : 1);
    return share > 1 ? (int32_t)share : 1;
}

/* The group on its handles: lockstep when they are one CUDA group (backend_open_group). */
static int group_create(group_run *gr, be *b, bz_err *e)
{
    int rc = mc_create(gr->g, &gr->r->spec, b, gr->threads, e);
    if (!rc && gr->grouped) rc = mc_set_lockstep(gr->g, true, e);
    return rc;
}

/* The parent's newest checkpoint that loads; else a fresh start. *resumed says which. */
static int group_resume_or_start(group_run *gr, be *b, const nn_arch *a, bool *resumed, bz_err *e)
{
    job_run *r = gr->r;
    ckpt_row *rows = NULL;
    int64_t count = 0;
    *resumed = false;
    int rc = store_ckpt_list(r->st, r->job.id, &rows, &count, e);
    for (int64_t i = count - 1; i >= 0 && !rc && !*resumed; i--) {
        bz_err le;
        if (mc_load(gr->g, rows[i].path, gr->spec_hash, &le) == 0) {
            log_line("job %lld (%d chains) resumes from checkpoint %lld (step %lld)", (long long)r->job.id,
                     (int)gr->K, (long long)rows[i].seq, (long long)rows[i].step);
            *resumed = true;
            break;
        }
        log_line("job %lld: checkpoint %s unusable: %s", (long long)r->job.id, rows[i].path, le.msg);
        mc_destroy(gr->g); /* a load that failed half-way left state behind */
        rc = group_create(gr, b, e);
    }
    free(rows);
    if (rc || *resumed) return rc;
    float *w0 = malloc(sizeof(float) * (size_t)a->n);
    rc = w0 ? setup_initial_weights(&r->spec, a, w0, e) : bz_fail(e, BZ_ENOMEM, NULL, "out of memory");
    if (!rc) rc = mc_start(gr->g, w0, e);
    free(w0);
    return rc;
}

/* Per chain: records after its resume point go, its samples file is cut there. */
static int group_outputs(group_run *gr, bool resumed, int64_t n, bz_err *e)
{
    job_run *r = gr->r;
    int rc = 0;
    for (int32_t k = 0; k < gr->K && !rc; k++) {
        const int64_t at = resumed ? gr->g->chains[k].step : -1;
        gr->last_step[k] = gr->start_step[k] = at < 0 ? 0 : at;
        rc = store_obs_delete_after(r->st, gr->child[k], at, e);
        if (rc || r->spec.samples_every <= 0) continue;
        char dir[900];
        child_dir(gr, k, dir, sizeof dir);
        rc = jf_mkdirs(dir, e);
        if (!rc)
            rc = open_chain_samples(r->st, gr->child[k], dir, n, at, &gr->samples[k], &gr->samples_count[k],
                                    &gr->samples_last[k], e);
    }
    return rc;
}

static void close_backends(be *b, int32_t n)
{
    for (int32_t k = 0; k < n; k++)
        if (b[k].ops) be_destroy(&b[k]);
}

/* The chains' handles on the worker's device (backend_open_group: one CUDA group in lockstep, or
 * one handle per chain); the chains' rows get the backend's name. */
static int open_group_backends(group_run *gr, const nn_arch *a, const ds_data *d, be *b, bz_err *e)
{
    job_run *r = gr->r;
    char note[512];
    int dev = backend_worker_device(r->d->cfg.devices, r->w, e); /* --devices: worker -> GPU */
    if (dev < 0) return dev;
    int rc = backend_open_group(&r->spec, a, d, dev, gr->K, b, &gr->grouped, note, sizeof note, e);
    if (rc) return rc;
    log_line("job %lld on worker %d: %s, %d chains of %s batched %s%d thread(s)%s, %lld weights", (long long)r->job.id,
             r->w, note, (int)gr->K, spec_method_name(r->spec.sampler.method), gr->grouped ? "in lockstep, " : "on ",
             gr->grouped ? 1 : (int)gr->threads, r->spec.exchange_every > 0 ? ", replica exchange" : "", (long long)a->n);
    bz_err ignore;
    store_job_set_backend(r->st, r->job.id, b[0].ops->name, &ignore);
    for (int32_t k = 0; k < gr->K; k++) store_job_set_backend(r->st, gr->child[k], b[0].ops->name, &ignore);
    return 0;
}

/* Create, resume or start, run to the end with the group sink, flush. */
static int run_group_chains(group_run *gr, be *b, const nn_arch *a, bz_err *e)
{
    job_run *r = gr->r;
    int rc = group_create(gr, b, e);
    if (rc) return rc;
    const bool single_blas = gr->g->threads > 1 && !strcmp(b[0].ops->name, "cpu");
    if (single_blas) blas_single_enter();
    bool resumed = false;
    rc = group_resume_or_start(gr, b, a, &resumed, e);
    if (!rc) rc = group_outputs(gr, resumed, a->n, e);
    if (!rc) {
        gr->started = r->last_flush = smp_now();
        mc_sink sink = {gr, group_record, group_sample, group_checkpoint, group_should_stop, NULL};
        rc = mc_run(gr->g, &sink, e);
        bz_err fe;
        if (group_flush(gr, &fe) && !rc) rc = fe.code, *e = fe;
    }
    r->cancel = atomic_load(&gr->cancel);
    for (int32_t k = 0; k < gr->K; k++) samples_close(gr->samples[k]);
    if (single_blas) blas_single_leave();
    mc_destroy(gr->g);
    return rc;
}

static int run_group(job_run *r, bz_err *e)
{
    ds_data data;
    nn_arch arch;
    int rc = prepare_job(r, &data, &arch, e);
    if (rc) return rc;
    group_run *gr = calloc(1, sizeof *gr);
    be *b = calloc(MC_MAX_CHAINS, sizeof *b);
    if (!gr || !b) rc = bz_fail(e, BZ_ENOMEM, NULL, "out of memory for a batched sweep");
    if (!rc) {
        gr->r = r;
        gr->K = r->spec.sampler.n_T;
        gr->threads = group_threads(r->d);
        gr->spec_hash = ckpt_hash64(r->job.spec_json, strlen(r->job.spec_json));
        atomic_flag_clear(&gr->polling);
        gr->cap = (int64_t)gr->K * GROUP_RECORDS;
        gr->buf = malloc(sizeof *gr->buf * (size_t)gr->cap);
        gr->g = calloc(1, sizeof *gr->g);
        if (!gr->buf || !gr->g) rc = bz_fail(e, BZ_ENOMEM, NULL, "out of memory for a batched sweep");
    }
    if (!rc) rc = load_children(gr, e);
    if (!rc) rc = open_group_backends(gr, &arch, &data, b, e);
    if (!rc) rc = run_group_chains(gr, b, &arch, e);
    if (b) close_backends(b, MC_MAX_CHAINS);
    if (gr) {
        free(gr->buf);
        free(gr->g);
    }
    free(gr);
    free(b);
    ds_free(&data);
    return rc;
}

/* Record how the job ended (a batched sweep: on every chain at once). */
static void finish_job(job_run *r, int rc, const bz_err *e)
{
    bz_err se;
    job_status st = JOB_SUCCEEDED;
    const char *msg = NULL;
    if (rc == BZ_ECANCELLED && r->cancel) st = JOB_CANCELLED;
    else if (rc == BZ_ECANCELLED) st = JOB_QUEUED; /* shutdown: resumes at the next start */
    else if (rc) st = JOB_FAILED, msg = e->msg;
    int fs = r->job.n_children > 0 ? store_group_finish(r->st, r->job.id, st, msg, &se)
                                   : store_job_set_status(r->st, r->job.id, st, msg, &se);
    if (fs) log_line("job %lld: cannot record status: %s", (long long)r->job.id, se.msg);
    if (r->job.parent_id) store_parent_refresh(r->st, r->job.parent_id, &se);
    log_line("job %lld %s%s%s", (long long)r->job.id, job_status_name(st), msg ? ": " : "", msg ? msg : "");
    hub_publish(r->d->hub);
}

typedef struct worker_arg {
    bz_daemon *d;
    int index;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    bz_daemon *d = wa->d;
    const int w = wa->index;
    free(wa);
    char db[1200], name[32];
    snprintf(db, sizeof db, "%s/boltzd.db", d->cfg.data_dir);
    snprintf(name, sizeof name, "worker-%d", w);
    store *st;
    bz_err e;
    if (store_open(&st, db, d->cfg.schema_dir, &e)) {
        log_line("worker %d cannot open the store: %s", w, e.msg);
        return NULL;
    }
    job_run *r = calloc(1, sizeof *r);
    while (r && !atomic_load(&d->shutting_down)) {
        uint64_t gen = hub_generation(d->hub);
        memset(r, 0, sizeof *r);
        r->d = d;
        r->st = st;
        r->w = w;
        if (store_job_claim(st, name, &r->job, &e)) {
            hub_wait(d->hub, gen, 500); /* a submission publishes; otherwise poll twice a second */
            continue;
        }
        d->workers[w].job_id = r->job.id;
        hub_publish(d->hub);
        int rc = run_job(r, &e);
        finish_job(r, rc, &e);
        d->workers[w].job_id = 0;
        d->workers[w].steps_per_s = 0.0;
        job_row_free(&r->job);
    }
    free(r);
    store_close(st);
    return NULL;
}

int workers_start(bz_daemon *d, worker_pool **out, bz_err *e)
{
    worker_pool *p = calloc(1, sizeof *p);
    if (!p) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory");
    p->d = d;
    for (int i = 0; i < d->n_workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) break;
        *wa = (worker_arg){d, i};
        if (pthread_create(&p->threads[i], NULL, worker_main, wa)) {
            free(wa);
            workers_join(p);
            return bz_fail(e, BZ_ENOMEM, NULL, "cannot start worker %d", i);
        }
        p->n++;
    }
    *out = p;
    return 0;
}

void workers_join(worker_pool *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
    free(p);
}
