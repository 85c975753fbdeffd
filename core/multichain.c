/* multichain.c: batched chains and replica exchange (see multichain.h). */
#include "multichain.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noise_diag.h"

_Static_assert(SMP_BATCH_MAX >= MC_MAX_CHAINS, "a lockstep batch holds every chain of a group");

#define STREAM_EXCHANGE 0x5245504cULL /* "REPL": the group's RNG stream, apart from every chain's */

static bool due(int64_t step, int64_t every) { return every > 0 && step % every == 0; }

int64_t mc_step(const mc_group *g)
{
    int64_t lo = g->chains[0].step;
    for (int32_t k = 1; k < g->K; k++)
        if (g->chains[k].step < lo) lo = g->chains[k].step;
    return lo;
}

/* ---- create / start / destroy ---- */

static int32_t default_threads(int32_t K)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    return K < cores ? K : (int32_t)cores;
}

static void mark_ends(mc_group *g);

int mc_create(mc_group *g, const bz_spec *s, be *b, int32_t threads, bz_err *e)
{
    memset(g, 0, sizeof *g);
    g->spec = s;
    g->K = s->sampler.n_T;
    if (g->K < 1 || g->K > MC_MAX_CHAINS)
        return bz_fail(e, BZ_EINVAL, "sampler.T", "a batched job needs 1 to %d temperatures (got %d)", MC_MAX_CHAINS,
                       (int)g->K);
    g->threads = threads > 0 ? (threads < g->K ? threads : g->K) : default_threads(g->K);
    g->exchange_every = s->exchange_every;
    rng_seed(&g->rng, s->sampler.seed, STREAM_EXCHANGE);
    for (int32_t k = 0; k < g->K; k++) {
        int rc = smp_chain_create(&g->chains[k], s, &b[k], k, e);
        if (rc) {
            for (int32_t j = 0; j < k; j++) smp_chain_destroy(&g->chains[j]);
            g->K = 0;
            return rc;
        }
        g->replica[k] = k;
    }
    mark_ends(g);
    return 0;
}

int mc_start(mc_group *g, const float *w_init, bz_err *e)
{
    for (int32_t k = 0; k < g->K; k++) {
        smp_chain *c = &g->chains[k];
        c->b->ops->upload(c->b->ctx, c->w, w_init, c->n);
        int rc = smp_chain_start(c, e);
        if (rc) return rc;
    }
    return 0;
}

void mc_destroy(mc_group *g)
{
    for (int32_t k = 0; k < g->K; k++) smp_chain_destroy(&g->chains[k]);
    g->K = 0;
}

/* ---- parallel work over chains ---- */

typedef struct mc_work mc_work;
typedef int (*chain_job)(mc_work *w, int32_t k, bz_err *e);

struct mc_work {
    mc_group *g;
    chain_job job;
    int64_t target;          /* mc_advance: steps to reach */
    const mc_sink *sink;
    double *U;               /* exchange: full-set U per slot */
    atomic_int next;         /* next chain to take */
    atomic_bool abort;       /* a chain failed or a stop was requested */
    atomic_bool stopped;     /* should_stop said so */
    int rc[MC_MAX_CHAINS];
    bz_err err[MC_MAX_CHAINS];
};

static void *work_loop(void *arg)
{
    mc_work *w = arg;
    for (;;) {
        int k = atomic_fetch_add(&w->next, 1);
        if (k >= w->g->K) break;
        if (atomic_load(&w->abort)) continue;
        w->rc[k] = w->job(w, k, &w->err[k]);
        if (w->rc[k]) atomic_store(&w->abort, true);
    }
    return NULL;
}

/* Prefix a chain's error with its slot and temperature. */
static void name_chain(const mc_group *g, int32_t k, bz_err *e)
{
    char head[64], msg[sizeof e->msg];
    int len = snprintf(head, sizeof head, "chain %d (T = %g): ", (int)k, g->chains[k].T);
    size_t room = sizeof msg - (size_t)len;
    memcpy(msg, head, (size_t)len);
    memcpy(msg + len, e->msg, room - 1);
    msg[sizeof msg - 1] = 0;
    memcpy(e->msg, msg, sizeof e->msg);
}

/* Run job on every chain, w->g->threads at a time. Returns the first failing chain's code (err
 * copied into e, prefixed with the chain), or 0. */
static int for_each_chain(mc_work *w, bz_err *e)
{
    mc_group *g = w->g;
    atomic_init(&w->next, 0);
    atomic_init(&w->abort, false);
    atomic_init(&w->stopped, false);
    memset(w->rc, 0, sizeof w->rc);
    pthread_t tid[MC_MAX_CHAINS];
    int32_t started = 0;
    for (int32_t t = 1; t < g->threads; t++) /* the calling thread is worker 0 */
        if (pthread_create(&tid[started], NULL, work_loop, w) == 0) started++;
    work_loop(w);
    for (int32_t t = 0; t < started; t++) pthread_join(tid[t], NULL);
    g->failed = -1;
    for (int32_t k = 0; k < g->K; k++)
        if (w->rc[k]) {
            *e = w->err[k];
            g->failed = k;
            name_chain(g, k, e);
            return w->rc[k];
        }
    return atomic_load(&w->stopped) ? BZ_ECANCELLED : 0;
}

static int advance_one(mc_work *w, int32_t k, bz_err *e)
{
    smp_chain *c = &w->g->chains[k];
    const mc_sink *s = w->sink;
    while (c->step < w->target && !c->stop_early) {
        if (atomic_load(&w->abort)) return 0;
        if (s && s->should_stop && s->should_stop(s->ctx)) {
            atomic_store(&w->stopped, true);
            atomic_store(&w->abort, true);
            return 0;
        }
        int rc = smp_chain_step(c, e);
        if (rc) return rc;
    }
    return 0;
}

/* ---- lockstep: every chain's step around one batched gradient ---- */

int mc_set_lockstep(mc_group *g, bool grouped, bz_err *e)
{
    for (int32_t k = 0; k < g->K; k++) {
        const smp_vtable *vt = g->chains[k].vt;
        if (!vt->step_pre || !vt->step_post)
            return bz_fail(e, BZ_EINVAL, "sampler.method",
                           "lockstep batching needs one mini-batch gradient per step; method %s takes its gradients "
                           "inside a step (run its chains in threads instead)",
                           spec_method_name(g->spec->sampler.method));
    }
    be *b0 = g->chains[0].b;
    g->lockstep = true;
    g->group_grad = grouped && b0->ops->grad_batch_group != NULL;
    g->threads = 1; /* grouped handles share one device stream and workspace */
    return 0;
}

/* grad U_B(w) over each running chain's batch into its g: one batched call on the group's first
 * handle, or one call per chain. */
static void lockstep_gradients(mc_group *g, const int32_t *run, int32_t m)
{
    if (!g->group_grad) {
        for (int32_t i = 0; i < m; i++) {
            smp_chain *c = &g->chains[run[i]];
            c->b->ops->grad_batch(c->b->ctx, c->w, c->idx, c->sp->batch, c->g);
        }
        return;
    }
    const float *w[MC_MAX_CHAINS];
    const int32_t *idx[MC_MAX_CHAINS];
    float *grad[MC_MAX_CHAINS];
    for (int32_t i = 0; i < m; i++) {
        smp_chain *c = &g->chains[run[i]];
        w[i] = c->w, idx[i] = c->idx, grad[i] = c->g;
    }
    be *b0 = g->chains[0].b;
    b0->ops->grad_batch_group(b0->ctx, m, w, idx, g->chains[run[0]].sp->batch, grad);
}

/* The chains still short of target (and not finished early), in slot order. */
static int32_t running_chains(const mc_group *g, int64_t target, int32_t *run)
{
    int32_t m = 0;
    for (int32_t k = 0; k < g->K; k++)
        if (g->chains[k].step < target && !g->chains[k].stop_early) run[m++] = k;
    return m;
}

/* One step of every running chain as one batch: the first halves, the gradients, the second
 * halves (sampler.h step_pre/step_post). Every chain finishes its step even when another fails,
 * so the survivors stay consistent; the first failure is returned (slot in g->failed). The
 * step's wall time counts for each chain: they ran together. */
static int lockstep_round(mc_group *g, const int32_t *run, int32_t m, bz_err *e)
{
    bz_err err[MC_MAX_CHAINS];
    smp_batch b = {.m = m, .group_ops = g->group_grad, .lead = g->chains[0].b, .err = err};
    for (int32_t i = 0; i < m; i++) b.c[i] = &g->chains[run[i]];
    const smp_vtable *vt = b.c[0]->vt;
    const double t0 = smp_now();
    vt->step_pre(&b); /* pl, sgld: cannot fail */
    if (!smp_batch_status(&b)) {
        lockstep_gradients(g, run, m);
        vt->step_post(&b);
    }
    const double dt = smp_now() - t0;
    int rc = 0;
    for (int32_t i = 0; i < m; i++) {
        smp_chain *c = b.c[i];
        c->t_wall += dt;
        if (!b.rc[i]) c->step++;
        else if (!rc) rc = b.rc[i], *e = err[i], g->failed = run[i];
    }
    return rc;
}

static int advance_lockstep(mc_group *g, int64_t target, const mc_sink *s, bz_err *e)
{
    int32_t run[MC_MAX_CHAINS];
    g->failed = -1;
    for (;;) {
        const int32_t m = running_chains(g, target, run);
        if (m == 0) return 0;
        if (s && s->should_stop && s->should_stop(s->ctx)) return BZ_ECANCELLED;
        int rc = lockstep_round(g, run, m, e);
        if (rc) {
            name_chain(g, g->failed, e);
            return rc;
        }
    }
}

int mc_advance(mc_group *g, int64_t target, const mc_sink *sink, bz_err *e)
{
    if (g->lockstep) return advance_lockstep(g, target, sink, e);
    mc_work *w = calloc(1, sizeof *w);
    if (!w) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the chain workers");
    w->g = g;
    w->job = advance_one;
    w->target = target;
    w->sink = sink;
    int rc = for_each_chain(w, e);
    free(w);
    return rc;
}

/* ---- replica exchange ---- */

static int eval_U(mc_work *w, int32_t k, bz_err *e)
{
    (void)e;
    smp_chain *c = &w->g->chains[k];
    double t0 = smp_now();
    pot_obs o;
    c->b->ops->observe(c->b->ctx, c->w, false, &o);
    w->U[k] = o.U;
    c->t_wall += smp_now() - t0; /* the exchange's cost is this chain's sampling time */
    return 0;
}

/* Exchange the contents of two backend buffers of n floats (through host memory: the chains may
 * live on different backend handles). */
static void swap_buffers(smp_chain *a, float *x, smp_chain *b, float *y, float *ha, float *hb)
{
    a->b->ops->download(a->b->ctx, ha, x, a->n);
    b->b->ops->download(b->b->ctx, hb, y, b->n);
    a->b->ops->upload(a->b->ctx, x, hb, a->n);
    b->b->ops->upload(b->b->ctx, y, ha, b->n);
}

static int swap_configurations(smp_chain *a, smp_chain *b, bz_err *e)
{
    float *ha = malloc(sizeof(float) * (size_t)a->n), *hb = malloc(sizeof(float) * (size_t)a->n);
    if (!ha || !hb) {
        free(ha);
        free(hb);
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for a replica exchange");
    }
    swap_buffers(a, a->w, b, b->w, ha, hb);
    swap_buffers(a, a->w0, b, b->w0, ha, hb);
    swap_buffers(a, a->g, b, b->g, ha, hb);
    free(ha);
    free(hb);
    return a->vt->swap ? a->vt->swap(a, b, e) : 0;
}

/* Round-trip bookkeeping after a round (and at the start): the replica at the lowest T completes
 * a round trip if it has been at the highest T since it was last at the lowest. */
static void mark_ends(mc_group *g)
{
    if (g->K < 2) return;
    int32_t lo = g->replica[0], hi = g->replica[g->K - 1];
    if (g->last_end[lo] == 1 && g->seen_low[lo]) g->round_trips++;
    g->last_end[lo] = -1;
    g->seen_low[lo] = true;
    if (g->seen_low[hi]) g->last_end[hi] = 1;
}

int mc_exchange(mc_group *g, bz_err *e)
{
    if (g->K < 2) return 0;
    double t0 = smp_now();
    double U[MC_MAX_CHAINS];
    mc_work *w = calloc(1, sizeof *w);
    if (!w) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the exchange");
    w->g = g;
    w->job = eval_U;
    w->U = U;
    int rc = for_each_chain(w, e);
    free(w);
    for (int32_t k = (int32_t)(g->rounds % 2); !rc && k + 1 < g->K; k += 2) {
        smp_chain *a = &g->chains[k], *b = &g->chains[k + 1];
        double delta = (1.0 / a->T - 1.0 / b->T) * (U[k] - U[k + 1]);
        double u = rng_uniform(&g->rng); /* one draw per pair, accepted or not */
        g->pair[k].attempts++;
        if (!(delta >= 0.0 || u < exp(delta))) continue; /* NaN U: never swapped */
        rc = swap_configurations(a, b, e);
        if (rc) break; /* out of memory: the group stops with the error, nothing counted */
        g->pair[k].accepts++;
        double t = U[k];
        U[k] = U[k + 1];
        U[k + 1] = t;
        int32_t r = g->replica[k];
        g->replica[k] = g->replica[k + 1];
        g->replica[k + 1] = r;
    }
    g->rounds++;
    mark_ends(g);
    g->exchange_time += smp_now() - t0;
    return rc;
}

double mc_pair_acceptance(const mc_group *g, int32_t k)
{
    if (k < 0 || k + 1 >= g->K || g->pair[k].attempts == 0) return NAN;
    return (double)g->pair[k].accepts / (double)g->pair[k].attempts;
}

/* ---- records, samples, the loop ---- */

static void fill_exchange(const mc_group *g, int32_t k, obs_record *r)
{
    if (g->exchange_every <= 0) return;
    r->v[OBS_EX_ACC] = mc_pair_acceptance(g, k);
    r->v[OBS_REPLICA] = (double)g->replica[k];
    r->v[OBS_ROUND_TRIPS] = (double)g->round_trips;
}

static int emit_record(mc_group *g, int32_t k, const noise_diag *nd, const mc_sink *s, bz_err *e)
{
    smp_chain *c = &g->chains[k];
    int rs = c->b->ops->sync(c->b->ctx, e);
    if (rs) return rs;
    obs_record r;
    int rc = smp_chain_observe(c, g->spec->record.test, &r, e);
    if (nd) noise_diag_fill(c, &r);
    fill_exchange(g, k, &r);
    int rc2 = s->on_record ? s->on_record(s->ctx, k, &r, e) : 0;
    return rc ? rc : rc2;
}

static int emit_sample(mc_group *g, int32_t k, const mc_sink *s, float *host, bz_err *e)
{
    smp_chain *c = &g->chains[k];
    if (!s->on_sample) return 0;
    c->b->ops->download(c->b->ctx, host, c->w, c->n);
    return s->on_sample(s->ctx, k, c->step, c->t_wall, host, c->n, e);
}

/* The next step > at where something happens (a record, sample, checkpoint, exchange, noise
 * diagnostic), or the end. */
static int64_t next_event(const mc_group *g, int64_t at)
{
    const bz_spec *s = g->spec;
    const int64_t every[] = {s->record.every, s->samples_every, s->checkpoint_every, g->exchange_every,
                             s->noise_every};
    int64_t next = s->sampler.steps;
    for (size_t i = 0; i < sizeof every / sizeof every[0]; i++)
        if (every[i] > 0) {
            int64_t m = (at / every[i] + 1) * every[i];
            if (m < next) next = m;
        }
    return next;
}

/* The state of the chain that failed in the last mc_advance goes out as a record, like run_chain
 * does for a diverged chain (the records before it have reached the sink already). */
static void record_failure(mc_group *g, const noise_diag *nd, const mc_sink *s)
{
    if (g->failed < 0) return;
    bz_err ignore;
    emit_record(g, g->failed, nd ? &nd[g->failed] : NULL, s, &ignore);
}

static int do_events(mc_group *g, int64_t at, noise_diag *nd, const mc_sink *s, float *host, int64_t *last_record,
                     bz_err *e)
{
    const bz_spec *spec = g->spec;
    int rc = 0;
    for (int32_t k = 0; nd && k < g->K && !rc && due(at, spec->noise_every); k++)
        rc = noise_diag_measure(&nd[k], &g->chains[k], e);
    if (!rc && due(at, g->exchange_every)) rc = mc_exchange(g, e);
    if (!rc && due(at, spec->record.every)) {
        for (int32_t k = 0; k < g->K && !rc; k++) rc = emit_record(g, k, nd ? &nd[k] : NULL, s, e);
        *last_record = at;
        if (!rc && s->on_progress) s->on_progress(s->ctx, g);
    }
    for (int32_t k = 0; k < g->K && !rc && due(at, spec->samples_every); k++) rc = emit_sample(g, k, s, host, e);
    if (!rc && due(at, spec->checkpoint_every) && at < spec->sampler.steps && s->on_checkpoint)
        rc = s->on_checkpoint(s->ctx, g, false, e);
    return rc;
}

static int init_noise(mc_group *g, noise_diag **out, bz_err *e)
{
    *out = NULL;
    if (g->spec->noise_every <= 0) return 0;
    noise_diag *nd = calloc((size_t)g->K, sizeof *nd);
    if (!nd) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the noise diagnostics");
    for (int32_t k = 0; k < g->K; k++) {
        int rc = noise_diag_init(&nd[k], &g->chains[k], g->spec->noise_batches, e);
        if (rc) {
            for (int32_t j = 0; j < k; j++) noise_diag_free(&nd[j]);
            free(nd);
            return rc;
        }
    }
    *out = nd;
    return 0;
}

static void free_noise(mc_group *g, noise_diag *nd)
{
    for (int32_t k = 0; nd && k < g->K; k++) noise_diag_free(&nd[k]);
    free(nd);
}

static bool all_stopped_early(const mc_group *g)
{
    for (int32_t k = 0; k < g->K; k++)
        if (!g->chains[k].stop_early) return false;
    return true;
}

int mc_run(mc_group *g, const mc_sink *s, bz_err *e)
{
    const bz_spec *spec = g->spec;
    const int64_t steps = spec->sampler.steps;
    if (mc_step(g) >= steps) return 0; /* resumed from the final checkpoint: done */
    float *host = malloc(sizeof(float) * (size_t)g->chains[0].n);
    if (!host) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for weight samples");
    noise_diag *nd = NULL;
    int rc = init_noise(g, &nd, e);
    int64_t last_record = -1;
    if (!rc && !g->resumed) {
        for (int32_t k = 0; k < g->K && !rc; k++) rc = emit_record(g, k, nd ? &nd[k] : NULL, s, e);
        for (int32_t k = 0; k < g->K && !rc && due(0, spec->samples_every); k++) rc = emit_sample(g, k, s, host, e);
        last_record = 0;
    }
    bool stopping = false;
    while (!rc && mc_step(g) < steps && !all_stopped_early(g)) {
        if (s->should_stop && s->should_stop(s->ctx)) {
            stopping = true;
            break;
        }
        const int64_t at = next_event(g, mc_step(g));
        rc = mc_advance(g, at, s, e);
        if (rc == BZ_ECANCELLED) {
            rc = 0;
            stopping = true;
            break;
        }
        if (rc) {
            record_failure(g, nd, s);
            break;
        }
        rc = do_events(g, at, nd, s, host, &last_record, e);
    }
    if (!rc) {
        int64_t at = mc_step(g);
        for (int32_t k = 0; k < g->K && !rc && !stopping && last_record != at; k++)
            rc = emit_record(g, k, nd ? &nd[k] : NULL, s, e);
        if (!rc && s->on_checkpoint) rc = s->on_checkpoint(s->ctx, g, true, e);
        if (!rc && stopping) rc = bz_fail(e, BZ_ECANCELLED, NULL, "stopped at step %lld", (long long)at);
    }
    free_noise(g, nd);
    free(host);
    return rc;
}

/* ---- checkpoints ---- */

typedef struct mc_saved {
    int32_t K;
    int32_t pad;
    int64_t exchange_every, rounds, round_trips;
    double exchange_time;
    mc_pair_stats pair[MC_MAX_CHAINS];
    int32_t replica[MC_MAX_CHAINS];
    int8_t last_end[MC_MAX_CHAINS];
    uint8_t seen_low[MC_MAX_CHAINS];
} mc_saved;

/* "c0/" .. "c63/" (k < MC_MAX_CHAINS = 64). */
static void chain_prefix(int32_t k, char *buf, size_t len)
{
    snprintf(buf, len, "c%d/", (int)(k % 100));
}

int mc_save(mc_group *g, const char *path, uint64_t spec_hash, bz_err *e)
{
    ckpt_header h = {CKPT_VERSION, (uint64_t)g->chains[0].n, spec_hash, (int32_t)g->spec->sampler.method, -1,
                     mc_step(g)};
    mc_saved sv;
    memset(&sv, 0, sizeof sv);
    sv.K = g->K;
    sv.exchange_every = g->exchange_every;
    sv.rounds = g->rounds;
    sv.round_trips = g->round_trips;
    sv.exchange_time = g->exchange_time;
    memcpy(sv.pair, g->pair, sizeof sv.pair);
    memcpy(sv.replica, g->replica, sizeof sv.replica);
    memcpy(sv.last_end, g->last_end, sizeof sv.last_end);
    for (int32_t k = 0; k < MC_MAX_CHAINS; k++) sv.seen_low[k] = g->seen_low[k];
    ckpt_writer *w;
    int rc = ckpt_write_open(&w, path, &h, e);
    if (rc) return rc;
    rc = ckpt_put(w, "mc_group", &sv, sizeof sv, e);
    if (!rc) rc = ckpt_put(w, "mc_rng", &g->rng, sizeof g->rng, e);
    for (int32_t k = 0; k < g->K && !rc; k++) {
        char prefix[8];
        chain_prefix(k, prefix, sizeof prefix);
        rc = ckpt_writer_prefix(w, prefix, e);
        if (!rc) rc = smp_chain_put_sections(&g->chains[k], w, e);
    }
    if (rc) {
        ckpt_write_abort(w);
        return rc;
    }
    return ckpt_write_close(w, e);
}

static int check_group_header(const mc_group *g, const ckpt_header *h, const char *path, uint64_t spec_hash,
                              bz_err *e)
{
    if (h->chain != -1)
        return bz_fail(e, BZ_EFORMAT, path, "%s holds a single chain (chain %d), not a batched group", path,
                       (int)h->chain);
    if (h->n_params != (uint64_t)g->chains[0].n || h->method != (int32_t)g->spec->sampler.method)
        return bz_fail(e, BZ_EFORMAT, path,
                       "%s belongs to another job (%llu weights, method %s; this job has %lld weights, method %s)",
                       path, (unsigned long long)h->n_params, spec_method_name((sampler_method)h->method),
                       (long long)g->chains[0].n, spec_method_name(g->spec->sampler.method));
    if (h->spec_hash != spec_hash)
        return bz_fail(e, BZ_EFORMAT, path, "%s was written for a different job spec (spec hash differs)", path);
    return 0;
}

static int load_group_state(mc_group *g, ckpt_reader *r, const char *path, bz_err *e)
{
    mc_saved sv;
    int rc = ckpt_get(r, "mc_group", &sv, sizeof sv, e);
    if (!rc) rc = ckpt_get(r, "mc_rng", &g->rng, sizeof g->rng, e);
    if (rc) return rc;
    if (sv.K != g->K)
        return bz_fail(e, BZ_EFORMAT, "mc_group", "%s holds %d chains, this job has %d", path, (int)sv.K, (int)g->K);
    bool seen[MC_MAX_CHAINS] = {false};
    for (int32_t k = 0; k < g->K; k++) {
        if (sv.replica[k] < 0 || sv.replica[k] >= g->K || seen[sv.replica[k]])
            return bz_fail(e, BZ_EFORMAT, "mc_group", "%s: replica %d at slot %d is out of range or repeated", path,
                           (int)sv.replica[k], (int)k);
        seen[sv.replica[k]] = true;
    }
    g->rounds = sv.rounds;
    g->round_trips = sv.round_trips;
    g->exchange_time = sv.exchange_time;
    memcpy(g->pair, sv.pair, sizeof sv.pair);
    memcpy(g->replica, sv.replica, sizeof sv.replica);
    memcpy(g->last_end, sv.last_end, sizeof sv.last_end);
    for (int32_t k = 0; k < MC_MAX_CHAINS; k++) g->seen_low[k] = sv.seen_low[k] != 0;
    return 0;
}

int mc_load(mc_group *g, const char *path, uint64_t spec_hash, bz_err *e)
{
    ckpt_header h;
    ckpt_reader *r;
    int rc = ckpt_read_open(&r, path, &h, e);
    if (rc) return rc;
    rc = check_group_header(g, &h, path, spec_hash, e);
    if (!rc) rc = load_group_state(g, r, path, e);
    for (int32_t k = 0; k < g->K && !rc; k++) {
        char prefix[8];
        chain_prefix(k, prefix, sizeof prefix);
        rc = ckpt_reader_prefix(r, prefix, e);
        if (!rc) rc = smp_chain_get_sections(&g->chains[k], r, e);
    }
    ckpt_read_close(r);
    if (!rc) g->resumed = true;
    return rc;
}
