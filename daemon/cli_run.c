/* cli_run.c: `boltzd run` (one job without a daemon), `boltzd summary`, `boltzd msd` and
 * `boltzd samples` (export as .npy).
 *
 * A run folder holds spec.json (the normalised spec) and one chain folder per temperature
 * (the run folder itself for a single temperature, chain-K/ for a sweep) with the files of
 * jobfiles.h. SIGINT/SIGTERM write a checkpoint and stop; `--resume DIR` continues from the
 * newest checkpoint of every chain, bit for bit on the CPU backend. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "backend_select.h"
#include "ckpt.h"
#include "cli.h"
#include "jobfiles.h"
#include "multichain.h"
#include "npy.h"
#include "run.h"
#include "samples.h"
#include "setup.h"
#include "summary.h"

static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig) { stop_signal = sig; }

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- the sink: files of one chain, progress on stderr ---- */

typedef struct chain_out {
    char dir[1024];
    FILE *ndjson, *csv;
    samples_file *samples;
    uint64_t spec_hash;
    int32_t keep;
    int64_t steps;
    int quiet;
    double last_print;
    int32_t n_chains;
} chain_out;

static int write_line(FILE *f, const char *text, const char *what, bz_err *e)
{
    if (fputs(text, f) < 0 || fflush(f)) return bz_fail(e, BZ_EIO, what, "cannot write %s: %s", what, strerror(errno));
    return 0;
}

static int out_record(void *ctx, const obs_record *r, bz_err *e)
{
    chain_out *o = ctx;
    char line[4096];
    if (obs_to_ndjson(r, line, sizeof line) < 0) return bz_fail(e, BZ_ESTATE, NULL, "observable record too long");
    int rc = write_line(o->ndjson, line, "observables.ndjson", e);
    if (!rc && o->csv && obs_to_csv(r, line, sizeof line) >= 0) rc = write_line(o->csv, line, "observables.csv", e);
    return rc;
}

static int out_sample(void *ctx, int64_t step, double t_wall, const float *w, int64_t n, bz_err *e)
{
    (void)n;
    chain_out *o = ctx;
    return samples_append(o->samples, step, t_wall, w, e);
}

static int sync_file(FILE *f) { return f ? (fflush(f) || fsync(fileno(f))) : 0; }

static int out_checkpoint(void *ctx, smp_chain *c, bool final, bz_err *e)
{
    (void)final;
    chain_out *o = ctx;
    /* Everything the checkpoint's step covers reaches the disk before the checkpoint does. */
    if (sync_file(o->ndjson) || sync_file(o->csv))
        return bz_fail(e, BZ_EIO, o->dir, "cannot sync the observables in %s: %s", o->dir, strerror(errno));
    int rc = o->samples ? samples_sync(o->samples, e) : 0;
    char path[1200];
    jf_checkpoint_path(o->dir, c->step, path, sizeof path);
    if (!rc) rc = smp_chain_save(c, path, o->spec_hash, e);
    if (!rc) jf_prune_checkpoints(o->dir, o->keep);
    return rc;
}

static bool out_should_stop(void *ctx)
{
    (void)ctx;
    return stop_signal != 0;
}

static void format_eta(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0) snprintf(buf, len, "?");
    else if (s < 120) snprintf(buf, len, "%.0fs", s);
    else if (s < 7200) snprintf(buf, len, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else snprintf(buf, len, "%.0fh%02.0fm", floor(s / 3600), fmod(s, 3600) / 60);
}

static void out_progress(void *ctx, const smp_chain *c, const obs_record *r)
{
    chain_out *o = ctx;
    double now = smp_now();
    if (o->quiet || (now - o->last_print < 2.0 && c->step < o->steps)) return;
    o->last_print = now;
    double rate = c->t_wall > 0 ? (double)c->step / c->t_wall : NAN;
    char eta[32];
    format_eta((double)(o->steps - c->step) / rate, eta, sizeof eta);
    fprintf(stderr, "[chain %d/%d T=%.3g] step %lld/%lld (%.1f%%) %.0f steps/s ETA %s U %.6g train_err %.4f\n",
            (int)c->index + 1, (int)o->n_chains, c->T, (long long)c->step, (long long)o->steps,
            100.0 * (double)c->step / (double)o->steps, rate, eta, r->v[OBS_U], r->v[OBS_TRAIN_ERR]);
}

/* ---- one chain ---- */

static void chain_dir(const char *run_dir, int32_t index, int32_t n_chains, char *buf, size_t len)
{
    if (n_chains > 1) snprintf(buf, len, "%s/chain-%d", run_dir, (int)index);
    else snprintf(buf, len, "%s", run_dir);
}

static int write_status(const char *dir, const char *status, int64_t step, const bz_err *err, const char *backend)
{
    json_t *j = json_pack("{s:s, s:I, s:s}", "status", status, "step", (json_int_t)step, "backend", backend);
    if (err && err->code) json_object_set_new(j, "error", json_string(err->msg));
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    char path[1200];
    snprintf(path, sizeof path, "%s/status.json", dir);
    bz_err ignore;
    int rc = text ? jf_write_atomic(path, text, &ignore) : BZ_ENOMEM;
    free(text);
    return rc;
}

static int write_summary(const char *dir, double burn_in)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/observables.ndjson", dir);
    jf_series s;
    bz_err e;
    if (jf_read_series(path, &s, &e)) return e.code;
    json_t *j = summary_json(&s, burn_in);
    jf_series_free(&s);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(j);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    int rc = text ? jf_write_atomic(path, text, &e) : BZ_ENOMEM;
    free(text);
    return rc;
}

/* Open the chain's record files: fresh (truncate) or resumed (cut after resume_step). */
static int open_outputs(chain_out *o, const bz_spec *s, int64_t n, int64_t resume_step, int csv, bz_err *e)
{
    char path[1200];
    const char *mode = resume_step >= 0 ? "ab" : "wb";
    snprintf(path, sizeof path, "%s/observables.ndjson", o->dir);
    int rc = resume_step >= 0 ? jf_truncate_records(path, resume_step, 0, e) : 0;
    if (rc) return rc;
    o->ndjson = fopen(path, mode);
    if (!o->ndjson) return bz_fail(e, BZ_EIO, path, "cannot open %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/observables.csv", o->dir);
    if (csv || (resume_step >= 0 && access(path, F_OK) == 0)) {
        rc = resume_step >= 0 ? jf_truncate_records(path, resume_step, 1, e) : 0;
        if (rc) return rc;
        int fresh = resume_step < 0 || access(path, F_OK) != 0;
        o->csv = fopen(path, mode);
        if (!o->csv) return bz_fail(e, BZ_EIO, path, "cannot open %s: %s", path, strerror(errno));
        char header[2048];
        if (fresh && obs_csv_header(header, sizeof header) > 0) fputs(header, o->csv);
    }
    if (s->samples_every > 0) {
        snprintf(path, sizeof path, "%s/samples.bin", o->dir);
        rc = samples_open(&o->samples, path, n, resume_step, e);
    }
    return rc;
}

static void close_outputs(chain_out *o)
{
    if (o->ndjson) fclose(o->ndjson);
    if (o->csv) fclose(o->csv);
    samples_close(o->samples);
    o->ndjson = o->csv = NULL;
    o->samples = NULL;
}

/* Chain index ti: create (fresh or from its newest checkpoint), run, record the outcome. */
static int run_one_chain(const bz_spec *s, be *b, const nn_arch *a, int32_t ti, const char *run_dir, uint64_t hash,
                         int resume, int csv, int quiet, const char *backend_name, bz_err *e)
{
    chain_out o;
    memset(&o, 0, sizeof o);
    chain_dir(run_dir, ti, s->sampler.n_T, o.dir, sizeof o.dir);
    o.spec_hash = hash;
    o.keep = s->checkpoint_keep;
    o.steps = s->sampler.steps;
    o.quiet = quiet;
    o.n_chains = s->sampler.n_T;
    char ckdir[1200];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", o.dir);
    int rc = jf_mkdirs(ckdir, e);
    if (rc) return rc;
    smp_chain c;
    rc = smp_chain_create(&c, s, b, ti, e);
    if (rc) return rc;
    char ckpt[1200];
    int64_t resume_step = -1;
    if (resume && jf_latest_checkpoint(o.dir, ckpt, sizeof ckpt, &resume_step) == 0) {
        rc = smp_chain_load(&c, ckpt, hash, e);
        if (!rc && !quiet) fprintf(stderr, "boltzd: chain %d resumes from %s (step %lld)\n", (int)ti, ckpt, (long long)resume_step);
    } else {
        resume_step = -1;
        float *w0 = malloc(sizeof(float) * (size_t)a->n);
        if (!w0) rc = bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the initial weights");
        if (!rc) rc = setup_initial_weights(s, a, w0, e);
        if (!rc) {
            b->ops->upload(b->ctx, c.w, w0, a->n);
            rc = smp_chain_start(&c, e);
        }
        free(w0);
    }
    if (!rc) rc = open_outputs(&o, s, a->n, resume_step, csv, e);
    if (!rc) {
        write_status(o.dir, "running", c.step, NULL, backend_name);
        run_sink sink = {&o, out_record, out_sample, out_checkpoint, out_should_stop, out_progress};
        rc = run_chain(&c, &sink, e);
        const char *status = rc == 0 ? "succeeded" : rc == BZ_ECANCELLED ? "stopped" : "failed";
        write_status(o.dir, status, c.step, rc ? e : NULL, backend_name);
    }
    close_outputs(&o);
    if (rc == 0 || rc == BZ_EDIVERGED) write_summary(o.dir, s->burn_in);
    smp_chain_destroy(&c);
    return rc;
}

/* ---- a batched job: every chain in one group (multichain.h), checkpoints in the run folder ---- */

typedef struct group_out {
    chain_out ch[MC_MAX_CHAINS];
    int32_t K;
    char run_dir[1000]; /* leaves room for /chain-K in chain_out.dir */
    uint64_t spec_hash;
    int32_t keep;
    int64_t steps;
    int quiet;
    double last_print, started;
    int64_t started_step;
} group_out;

static int group_record(void *ctx, int32_t k, const obs_record *r, bz_err *e)
{
    return out_record(&((group_out *)ctx)->ch[k], r, e);
}

static int group_sample(void *ctx, int32_t k, int64_t step, double t_wall, const float *w, int64_t n, bz_err *e)
{
    return out_sample(&((group_out *)ctx)->ch[k], step, t_wall, w, n, e);
}

static int group_checkpoint(void *ctx, mc_group *g, bool final, bz_err *e)
{
    (void)final;
    group_out *o = ctx;
    for (int32_t k = 0; k < o->K; k++) { /* what the checkpoint covers reaches the disk first */
        chain_out *c = &o->ch[k];
        if (sync_file(c->ndjson) || sync_file(c->csv))
            return bz_fail(e, BZ_EIO, c->dir, "cannot sync the observables in %s: %s", c->dir, strerror(errno));
        int rc = c->samples ? samples_sync(c->samples, e) : 0;
        if (rc) return rc;
    }
    char path[1200];
    jf_checkpoint_path(o->run_dir, mc_step(g), path, sizeof path);
    int rc = mc_save(g, path, o->spec_hash, e);
    if (!rc) jf_prune_checkpoints(o->run_dir, o->keep);
    return rc;
}

/* One line every 2 s: the group's step, aggregate steps/s, U per chain, exchange acceptance. */
static void group_progress(void *ctx, const mc_group *g)
{
    group_out *o = ctx;
    double now = smp_now();
    int64_t step = mc_step(g);
    if (o->quiet || (now - o->last_print < 2.0 && step < o->steps)) return;
    o->last_print = now;
    double rate = now > o->started ? (double)(step - o->started_step) * g->K / (now - o->started) : NAN;
    char eta[32];
    format_eta((double)(o->steps - step) * g->K / rate, eta, sizeof eta);
    fprintf(stderr, "[%d chains] step %lld/%lld (%.1f%%) %.0f chain-steps/s ETA %s", (int)g->K, (long long)step,
            (long long)o->steps, 100.0 * (double)step / (double)o->steps, rate, eta);
    if (g->exchange_every > 0)
        fprintf(stderr, " exchange acc %.2f..%.2f round trips %lld", mc_pair_acceptance(g, 0),
                mc_pair_acceptance(g, g->K - 2), (long long)g->round_trips);
    fputc('\n', stderr);
}

static void close_backends(be *b, int32_t count)
{
    for (int32_t k = 0; k < count; k++) be_destroy(&b[k]);
}

/* The chains' handles (backend_open_group): on CUDA one handle group stepped in lockstep, else
 * one handle per chain, which on the CPU step in parallel threads with a single-threaded BLAS. */
static int create_group(mc_group *g, const bz_spec *s, be *b, bool grouped, bz_err *e)
{
    int rc = mc_create(g, s, b, 0, e);
    if (!rc && grouped) rc = mc_set_lockstep(g, true, e);
    return rc;
}

static int start_or_resume_group(mc_group *g, const bz_spec *s, const nn_arch *a, group_out *o, int resume,
                                 int quiet, bz_err *e)
{
    char ckpt[1200];
    int64_t step = -1;
    if (resume && jf_latest_checkpoint(o->run_dir, ckpt, sizeof ckpt, &step) == 0) {
        int rc = mc_load(g, ckpt, o->spec_hash, e);
        if (!rc && !quiet) fprintf(stderr, "boltzd: %d chains resume from %s (step %lld)\n", (int)g->K, ckpt, (long long)step);
        return rc;
    }
    float *w0 = malloc(sizeof(float) * (size_t)a->n);
    if (!w0) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the initial weights");
    int rc = setup_initial_weights(s, a, w0, e);
    if (!rc) rc = mc_start(g, w0, e);
    free(w0);
    return rc;
}

static int open_group_outputs(group_out *o, const mc_group *g, const bz_spec *s, int csv, bz_err *e)
{
    for (int32_t k = 0; k < g->K; k++) {
        chain_out *c = &o->ch[k];
        chain_dir(o->run_dir, k, g->K, c->dir, sizeof c->dir);
        c->steps = s->sampler.steps;
        c->quiet = 1;
        c->n_chains = g->K;
        int rc = jf_mkdirs(c->dir, e);
        if (!rc) rc = open_outputs(c, s, g->chains[k].n, g->resumed ? g->chains[k].step : -1, csv, e);
        if (rc) return rc;
    }
    return 0;
}

static int run_batched(const bz_spec *s, const nn_arch *a, const ds_data *d, const char *dir, uint64_t hash,
                       int resume, int csv, int quiet, bz_err *e)
{
    be b[MC_MAX_CHAINS];
    char note[512];
    bool grouped = false;
    int rc = backend_open_group(s, a, d, 0, s->sampler.n_T, b, &grouped, note, sizeof note, e);
    if (rc) return rc;
    group_out *o = calloc(1, sizeof *o);
    mc_group *g = calloc(1, sizeof *g);
    if (!o || !g) rc = bz_fail(e, BZ_ENOMEM, NULL, "out of memory for a batched job");
    if (!rc) rc = create_group(g, s, b, grouped, e);
    if (rc) {
        free(o);
        free(g);
        close_backends(b, s->sampler.n_T);
        return rc;
    }
    if (g->threads > 1 && !strcmp(b[0].ops->name, "cpu")) openblas_set_num_threads(1);
    snprintf(o->run_dir, sizeof o->run_dir, "%s", dir);
    o->K = g->K;
    o->spec_hash = hash;
    o->keep = s->checkpoint_keep;
    o->steps = s->sampler.steps;
    o->quiet = quiet;
    char ckdir[1200];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", dir);
    rc = jf_mkdirs(ckdir, e);
    if (!rc) rc = start_or_resume_group(g, s, a, o, resume, quiet, e);
    if (!rc) rc = open_group_outputs(o, g, s, csv, e);
    if (!quiet)
        fprintf(stderr, "boltzd: %s; %d chains batched %s%d thread(s)%s\n", note, (int)g->K,
                g->lockstep ? "in lockstep, " : "on ", (int)g->threads, g->exchange_every > 0 ? ", replica exchange" : "");
    if (!rc) {
        for (int32_t k = 0; k < g->K; k++) write_status(o->ch[k].dir, "running", g->chains[k].step, NULL, b[0].ops->name);
        o->started = smp_now();
        o->started_step = mc_step(g);
        mc_sink sink = {o, group_record, group_sample, group_checkpoint, out_should_stop, group_progress};
        rc = mc_run(g, &sink, e);
        const char *status = rc == 0 ? "succeeded" : rc == BZ_ECANCELLED ? "stopped" : "failed";
        for (int32_t k = 0; k < g->K; k++) write_status(o->ch[k].dir, status, g->chains[k].step, rc ? e : NULL, b[0].ops->name);
    }
    for (int32_t k = 0; k < g->K; k++) {
        close_outputs(&o->ch[k]);
        if (rc == 0 || rc == BZ_EDIVERGED) write_summary(o->ch[k].dir, s->burn_in);
    }
    mc_destroy(g);
    free(g);
    free(o);
    close_backends(b, s->sampler.n_T);
    return rc;
}

/* Save the normalised spec as DIR/spec.json (fresh) and return its hash. */
static int save_spec(const bz_spec *s, const char *dir, uint64_t *hash, bz_err *e)
{
    char *text = spec_to_json(s);
    if (!text) return bz_fail(e, BZ_ENOMEM, NULL, "cannot serialise the spec");
    *hash = ckpt_hash64(text, strlen(text));
    char path[1200];
    snprintf(path, sizeof path, "%s/spec.json", dir);
    int rc = jf_write_atomic(path, text, e);
    free(text);
    return rc;
}

static uint64_t spec_hash_of(const bz_spec *s)
{
    char *text = spec_to_json(s);
    uint64_t h = text ? ckpt_hash64(text, strlen(text)) : 0;
    free(text);
    return h;
}

/* The exit status of a run, with the message a stopped or failed run owes its user. */
static int finish_run(int rc, const char *dir, bz_err *e)
{
    if (rc == BZ_ECANCELLED) {
        fprintf(stderr, "boltzd: stopped by signal %d; checkpoint written. Continue with: boltzd run --resume %s\n",
                (int)stop_signal, dir);
        return 128 + (int)stop_signal;
    }
    return rc ? cli_report(e) : 0;
}

static int run_job(const bz_spec *s, const char *dir, int resume, int csv, int quiet)
{
    install_signals(); /* first: a signal during the data-set load must still stop cleanly */
    bz_err e;
    bz_err_clear(&e);
    uint64_t hash = spec_hash_of(s);
    if (jf_mkdirs(dir, &e) || (!resume && save_spec(s, dir, &hash, &e))) return cli_report(&e);
    ds_data d;
    nn_arch a;
    if (setup_load(s, &d, &a, &e)) return cli_report(&e);
    if (s->sampler.method == SM_ADAM && s->sampler.early_stopping &&
        setup_hold_out(&d, s->sampler.early_stopping ? s->sampler.val_fraction : 0, &e)) {
        ds_free(&d);
        return cli_report(&e);
    }
    if (s->batched) {
        int rc = run_batched(s, &a, &d, dir, hash, resume, csv, quiet, &e);
        ds_free(&d);
        return finish_run(rc, dir, &e);
    }
    be b;
    char note[512];
    if (backend_open(s, &a, &d, &b, note, sizeof note, &e)) {
        ds_free(&d);
        return cli_report(&e);
    }
    if (!quiet)
        fprintf(stderr, "boltzd: %s, %s, %lld weights, P = %lld, %d chain(s) -> %s\n", note,
                spec_method_name(s->sampler.method), (long long)a.n, (long long)d.n_train, (int)s->sampler.n_T, dir);
    int rc = 0;
    for (int32_t ti = 0; ti < s->sampler.n_T && !rc; ti++)
        rc = run_one_chain(s, &b, &a, ti, dir, hash, resume, csv, quiet, b.ops->name, &e);
    be_destroy(&b);
    ds_free(&d);
    return finish_run(rc, dir, &e);
}

int cli_run(int argc, char **argv)
{
    const char *spec_path = NULL, *out = NULL, *resume = NULL, *csv = NULL, *quiet = NULL;
    const cli_opt opts[] = {{"--out", &out, 0},   {"--resume", &resume, 0}, {"--csv", &csv, 1},
                            {"--quiet", &quiet, 1}, {NULL, NULL, 0}};
    const char *usage = "boltzd run SPEC.json --out DIR [--csv] [--quiet]   |   boltzd run --resume DIR";
    int rc = cli_parse_range(argc, argv, opts, &spec_path, 0, 1, usage); /* no SPEC.json with --resume */
    if (rc) return rc == 3 ? 0 : 2;
    if (resume && (spec_path || out)) {
        fprintf(stderr, "boltzd: --resume DIR takes the spec from DIR/spec.json; give no SPEC.json or --out\n");
        return 2;
    }
    if (!resume && (!spec_path || !out)) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    char spec_file[1200];
    if (resume) snprintf(spec_file, sizeof spec_file, "%s/spec.json", resume);
    bz_spec s;
    bz_err e;
    bz_err_clear(&e);
    if (spec_parse_file(resume ? spec_file : spec_path, &s, &e)) return cli_report(&e);
    return run_job(&s, resume ? resume : out, resume != NULL, csv != NULL, quiet != NULL);
}

/* ---- analysis subcommands ---- */

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (text) printf("%s\n", text);
    free(text);
    json_decref(j);
}

/* burn-in from DIR/spec.json (or the chain folder's parent), default 0.2 */
static double burn_in_of(const char *dir)
{
    char path[1200];
    bz_spec s;
    snprintf(path, sizeof path, "%s/spec.json", dir);
    if (spec_parse_file(path, &s, NULL) == 0) return s.burn_in;
    snprintf(path, sizeof path, "%s/../spec.json", dir);
    if (spec_parse_file(path, &s, NULL) == 0) return s.burn_in;
    return 0.2;
}

int cli_summary(int argc, char **argv)
{
    const char *dir = NULL, *burn = NULL;
    const cli_opt opts[] = {{"--burn-in", &burn, 0}, {NULL, NULL, 0}};
    int rc = cli_parse(argc, argv, opts, &dir, 1, "boltzd summary DIR [--burn-in FRACTION]   (DIR: a chain folder)");
    if (rc) return rc == 3 ? 0 : 2;
    double b = burn ? atof(burn) : burn_in_of(dir);
    if (!(b >= 0 && b < 1)) {
        fprintf(stderr, "boltzd: --burn-in must be in [0, 1)\n");
        return 2;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/observables.ndjson", dir);
    jf_series s;
    bz_err e;
    if (jf_read_series(path, &s, &e)) return cli_report(&e);
    print_json(summary_json(&s, b));
    jf_series_free(&s);
    return 0;
}

int cli_msd(int argc, char **argv)
{
    const char *dir = NULL, *bins = NULL, *width = NULL, *fit = NULL;
    const cli_opt opts[] = {{"--bins", &bins, 0}, {"--bin-width", &width, 0}, {"--fit", &fit, 0}, {NULL, NULL, 0}};
    int rc = cli_parse(argc, argv, opts, &dir, 1,
                       "boltzd msd DIR [--bins 20] [--bin-width SECONDS] [--fit 5]   (DIR: a chain folder)");
    if (rc) return rc == 3 ? 0 : 2;
    int n_bins = bins ? atoi(bins) : 20, n_fit = fit ? atoi(fit) : 5;
    if (n_bins < 1 || n_bins > 100000 || n_fit < 2) {
        fprintf(stderr, "boltzd: --bins must be in 1..100000 and --fit >= 2\n");
        return 2;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/samples.bin", dir);
    samples_data d;
    bz_err e;
    bz_err_clear(&e);
    if (samples_read(path, &d, &e)) return cli_report(&e);
    json_t *j = msd_json(&d, width ? atof(width) : 0.0, n_bins, n_fit, &e);
    samples_data_free(&d);
    if (!j) return cli_report(&e);
    print_json(j);
    return 0;
}

int cli_samples(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    const cli_opt opts[] = {{"--out", &out, 0}, {NULL, NULL, 0}};
    int rc = cli_parse(argc, argv, opts, &dir, 1,
                       "boltzd samples DIR --out PREFIX   (writes PREFIX.npy (K, n), PREFIX_steps.npy, PREFIX_times.npy)");
    if (rc) return rc == 3 ? 0 : 2;
    if (!out) {
        fprintf(stderr, "boltzd: samples needs --out PREFIX\n");
        return 2;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/samples.bin", dir);
    samples_data d;
    bz_err e;
    bz_err_clear(&e);
    if (samples_read(path, &d, &e)) return cli_report(&e);
    int64_t shape[2] = {d.K, d.n};
    snprintf(path, sizeof path, "%s.npy", out);
    rc = npy_write(path, NPY_F32, 2, shape, d.w, &e);
    snprintf(path, sizeof path, "%s_steps.npy", out);
    if (!rc) rc = npy_write(path, NPY_I64, 1, shape, d.steps, &e);
    snprintf(path, sizeof path, "%s_times.npy", out);
    if (!rc) rc = npy_write(path, NPY_F64, 1, shape, d.times, &e);
    if (!rc) printf("{\"samples\": %lld, \"n\": %lld, \"out\": \"%s.npy\"}\n", (long long)d.K, (long long)d.n, out);
    samples_data_free(&d);
    return rc ? cli_report(&e) : 0;
}
