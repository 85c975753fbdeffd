/* worker.c: worker threads that run queued jobs (see worker.h). */
#include "worker.h"

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
    jf_checkpoint_path(r->dir, c->step, path, sizeof path);
    if (!rc) rc = smp_chain_save(c, path, ckpt_hash64(r->job.spec_json, strlen(r->job.spec_json)), e);
    uint64_t h = 0;
    int64_t size = 0, seq;
    if (!rc && hash_file(path, &h, &size)) rc = bz_fail(e, BZ_EIO, path, "cannot read back %s", path);
    if (!rc) rc = store_ckpt_add(r->st, r->job.id, c->step, path, size, h, &seq, e);
    if (!rc && r->samples) {
        samples_row sr = {r->job.id, r->samples_count, 0, r->samples_last, ""};
        snprintf(sr.path, sizeof sr.path, "%s/samples.bin", r->dir);
        struct stat stt;
        if (stat(sr.path, &stt) == 0) sr.size = stt.st_size;
        rc = store_samples_set(r->st, &sr, e);
    }
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
    char path[1200];
    snprintf(path, sizeof path, "%s/samples.bin", r->dir);
    rc = samples_open(&r->samples, path, n, resume_step, e);
    if (!rc && resume_step >= 0) {
        samples_row sr;
        bz_err ignore;
        if (store_samples_get(r->st, r->job.id, &sr, &ignore) == 0 && sr.last_step <= resume_step) {
            r->samples_count = sr.count;
            r->samples_last = sr.last_step;
        } else { /* recount from the truncated file */
            samples_data sd;
            if (samples_read(path, &sd, &ignore) == 0) {
                r->samples_count = sd.K;
                r->samples_last = sd.K ? sd.steps[sd.K - 1] : -1;
                samples_data_free(&sd);
            }
        }
    }
    return rc;
}

static int run_job(job_run *r, bz_err *e)
{
    int rc = spec_parse(r->job.spec_json, &r->spec, e);
    if (rc) return rc;
    if (!strcmp(r->spec.backend, "auto") && strcmp(r->d->cfg.backend, "auto"))
        snprintf(r->spec.backend, sizeof r->spec.backend, "%s", r->d->cfg.backend);
    daemon_job_dir(r->d, r->job.id, r->dir, sizeof r->dir);
    char ckdir[1200];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", r->dir);
    rc = jf_mkdirs(ckdir, e);
    if (rc) return rc;
    ds_data data;
    nn_arch arch;
    rc = setup_load(&r->spec, &data, &arch, e);
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

/* Record how the job ended. */
static void finish_job(job_run *r, int rc, const bz_err *e)
{
    bz_err se;
    job_status st = JOB_SUCCEEDED;
    const char *msg = NULL;
    if (rc == BZ_ECANCELLED && r->cancel) st = JOB_CANCELLED;
    else if (rc == BZ_ECANCELLED) st = JOB_QUEUED; /* shutdown: resumes at the next start */
    else if (rc) st = JOB_FAILED, msg = e->msg;
    if (store_job_set_status(r->st, r->job.id, st, msg, &se))
        log_line("job %lld: cannot record status: %s", (long long)r->job.id, se.msg);
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
