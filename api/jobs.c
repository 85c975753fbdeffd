/* jobs.c: the job routes: submit (single chains and temperature sweeps), list, one job (with a
 * sweep's children and its table of equilibrium summaries against T), cancel, delete, summary,
 * and the replica-exchange state of a batched sweep.
 *
 * Sweeps: a spec whose sampler.T is a list of n_T > 1 temperatures becomes a parent row (T null,
 * the full spec) and one child per temperature (chain = index, its spec holding that single T).
 * Each child runs as chain 0 of its own spec, so to keep the chains independent child i gets
 * sampler.seed + 1000003 * i (mod 2^63, the range of a spec's seed); child 0 keeps the seed as given.
 *
 * Batched sweeps ("batched": true): the same rows, but one worker runs the parent's spec with every
 * chain in one group (daemon/worker.c); chain i is chain i of that spec (the spec's seed, chain i's
 * RNG streams), as in `boltzd run`. A child's spec then says what its chain is, not how to rerun it
 * alone: its single T, the parent's seed, and no "batched"/"exchange" (a single chain has neither).
 * The exchange state (GET /jobs/{id}/exchange, and "exchange" in the parent's full view) is read
 * from the chains' newest records: ex_acc of chain k is the cumulative acceptance of the pair (k,
 * k+1); the attempts follow from the step, since pair k is tried in every round r (exchange rounds
 * at steps E, 2E, ...; r = 0, 1, ...) with r = k (mod 2).
 *
 * Owners and limits: with auth on the owner is the token's user (X-Boltz-User is ignored) and only
 * the owner or an admin may cancel or delete (403 "forbidden"); with auth off the owner comes from
 * X-Boltz-User. A submission passes the config's limits (400 "limit", auth.c) and the per-user
 * count of queued + running chains (429 "quota"), checked and inserted under one mutex. */
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth.h"
#include "routes.h"
#include "spec.h"
#include "summary.h"

#define SWEEP_SEED_STRIDE 1000003ull
#define CACHE_SIZE 512
#define LIST_MAX 1000
#define OWNER_MAX 63

/* ---------------------------------------------------------------- small helpers */

json_t *api_num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *api_time(int64_t ms)
{
    if (ms <= 0) return json_null();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return json_string(buf);
}

bool api_load_job(api_req *r, job_row *j, enum MHD_Result *res)
{
    bz_err e = {0};
    memset(j, 0, sizeof *j);
    if (store_job_get(r->d->st, r->arg[0], j, &e) == 0) return true;
    *res = e.code == BZ_EINVAL ? api_error(r->conn, 404, "not_found", NULL, "no job %lld", (long long)r->arg[0])
                               : api_error_bz(r->conn, &e);
    return false;
}

static bool is_parent(const job_row *j) { return j->n_children > 0; }

bool api_job_batched(const job_row *j)
{
    if (!is_parent(j) || !j->spec_json) return false;
    json_t *o = json_loads(j->spec_json, 0, NULL);
    bool yes = json_is_true(json_object_get(o, "batched"));
    json_decref(o);
    return yes;
}

/* exchange.every of a stored spec (0 when absent). */
static int64_t spec_exchange_every(const char *spec_json)
{
    json_t *o = spec_json ? json_loads(spec_json, 0, NULL) : NULL;
    json_t *v = json_object_get(json_object_get(o, "exchange"), "every");
    int64_t every = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
    json_decref(o);
    return every;
}

/* analysis.burn_in of a stored spec (0.2 when absent). */
static double spec_burn_in(const char *spec_json)
{
    double b = 0.2;
    json_t *o = spec_json ? json_loads(spec_json, 0, NULL) : NULL;
    json_t *v = json_object_get(json_object_get(o, "analysis"), "burn_in");
    if (json_is_number(v)) b = json_number_value(v);
    json_decref(o);
    return b >= 0 && b < 1 ? b : 0.2;
}

/* ---------------------------------------------------------------- observables as a series */

typedef struct series_ctx {
    jf_series *s;
    int64_t cap;
    bool oom;
} series_ctx;

static int series_push(void *ctx, const obs_record *r)
{
    series_ctx *c = ctx;
    jf_series *s = c->s;
    if (s->count == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 1024;
        int64_t *st = realloc(s->step, sizeof *st * (size_t)cap);
        if (st) s->step = st;
        double *tw = realloc(s->t_wall, sizeof *tw * (size_t)cap);
        if (tw) s->t_wall = tw;
        if (!st || !tw) return c->oom = true, 1;
        for (int i = 0; i < OBS_COUNT; i++) {
            double *v = realloc(s->v[i], sizeof *v * (size_t)cap);
            if (!v) return c->oom = true, 1;
            s->v[i] = v;
        }
        c->cap = cap;
    }
    s->step[s->count] = r->step;
    s->t_wall[s->count] = r->t_wall;
    for (int i = 0; i < OBS_COUNT; i++) s->v[i][s->count] = r->v[i];
    s->count++;
    return 0;
}

/* All records of a job as a series (free with jf_series_free). */
static int load_series(store *st, int64_t job, jf_series *s, bz_err *e)
{
    memset(s, 0, sizeof *s);
    series_ctx c = {.s = s};
    int rc = store_obs_each(st, job, -1, 0, series_push, &c, e);
    if (!rc && c.oom) rc = bz_fail(e, BZ_ENOMEM, NULL, "out of memory reading the records of job %lld", (long long)job);
    if (rc) jf_series_free(s);
    return rc;
}

/* ---------------------------------------------------------------- sweep summaries (cached) */

typedef struct cache_ent {
    int64_t id, created_ms;
    json_t *row;
} cache_ent;

struct api_cache {
    pthread_mutex_t mu;
    cache_ent ent[CACHE_SIZE];
    size_t next;
};

api_cache *api_cache_new(void)
{
    api_cache *c = calloc(1, sizeof *c);
    if (c) pthread_mutex_init(&c->mu, NULL);
    return c;
}

void api_cache_free(api_cache *c)
{
    if (!c) return;
    for (size_t i = 0; i < CACHE_SIZE; i++) json_decref(c->ent[i].row);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static json_t *cache_get(api_cache *c, const job_row *j)
{
    json_t *row = NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < CACHE_SIZE && !row; i++)
        if (c->ent[i].row && c->ent[i].id == j->id && c->ent[i].created_ms == j->created_ms)
            row = json_incref(c->ent[i].row);
    pthread_mutex_unlock(&c->mu);
    return row;
}

static void cache_put(api_cache *c, const job_row *j, json_t *row)
{
    pthread_mutex_lock(&c->mu);
    cache_ent *en = &c->ent[c->next];
    c->next = (c->next + 1) % CACHE_SIZE;
    json_decref(en->row);
    *en = (cache_ent){j->id, j->created_ms, json_incref(row)};
    pthread_mutex_unlock(&c->mu);
}

static void cache_forget(api_cache *c, int64_t id)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < CACHE_SIZE; i++)
        if (c->ent[i].id == id) {
            json_decref(c->ent[i].row);
            c->ent[i] = (cache_ent){0, 0, NULL};
        }
    pthread_mutex_unlock(&c->mu);
}

/* {mean, stderr} of one observable of a summary_json result, or null. */
static json_t *mean_stderr(json_t *summary, const char *name)
{
    json_t *o = json_object_get(json_object_get(summary, "observables"), name);
    if (!o) return json_null();
    json_t *m = json_object_get(o, "mean"), *se = json_object_get(o, "stderr");
    return json_pack("{s:O, s:O}", "mean", m ? m : json_null(), "stderr", se ? se : json_null());
}

static const char *const table_obs[] = {"U", "loss", "w2", "train_err", "test_err"};
#define N_TABLE_OBS (sizeof table_obs / sizeof table_obs[0])

/* One row of a sweep's table: the child's T, id, status and (once final) its summaries. */
static json_t *summary_row(api_server *srv, const job_row *c)
{
    json_t *row = job_status_final(c->status) ? cache_get(srv->cache, c) : NULL;
    if (row) return row;
    row = json_pack("{s:o, s:I, s:s, s:I}", "T", api_num(c->T), "job", (json_int_t)c->id, "status",
                    job_status_name(c->status), "chain", (json_int_t)c->chain);
    json_t *sum = NULL;
    jf_series s;
    bz_err e = {0};
    if (job_status_final(c->status) && load_series(srv->d->st, c->id, &s, &e) == 0) {
        if (s.count > 0) sum = summary_json(&s, spec_burn_in(c->spec_json));
        jf_series_free(&s);
    }
    json_object_set_new(row, "records", sum ? json_incref(json_object_get(sum, "records")) : json_null());
    for (size_t k = 0; k < N_TABLE_OBS; k++)
        json_object_set_new(row, table_obs[k], sum ? mean_stderr(sum, table_obs[k]) : json_null());
    json_decref(sum);
    if (job_status_final(c->status) && !e.code) cache_put(srv->cache, c, row);
    return row;
}

/* ---------------------------------------------------------------- job JSON */

static void set_progress(json_t *o, int64_t step, int64_t steps, double sps, bool running)
{
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "steps", json_integer(steps));
    double p = steps > 0 ? (double)step / (double)steps : 0;
    json_object_set_new(o, "progress", json_real(p < 0 ? 0 : p > 1 ? 1 : p));
    json_object_set_new(o, "steps_per_s", api_num(sps));
    json_object_set_new(o, "eta_s", running && sps > 0 && steps >= step ? json_real((double)(steps - step) / sps)
                                                                         : json_null());
}

/* The fields every job shows (list entries and the full view). */
static json_t *job_json_base(const job_row *j)
{
    json_t *o = json_pack("{s:I}", "id", (json_int_t)j->id);
    if (j->parent_id) {
        json_object_set_new(o, "parent_id", json_integer(j->parent_id));
        json_object_set_new(o, "chain", json_integer(j->chain));
    }
    json_object_set_new(o, "name", json_string(j->name));
    json_object_set_new(o, "owner", json_string(j->owner));
    json_object_set_new(o, "method", json_string(j->method));
    json_object_set_new(o, "T", api_num(j->T));
    json_object_set_new(o, "status", json_string(job_status_name(j->status)));
    json_object_set_new(o, "priority", json_integer(j->priority));
    json_object_set_new(o, "created", api_time(j->created_ms));
    json_object_set_new(o, "started", api_time(j->started_ms));
    json_object_set_new(o, "finished", api_time(j->finished_ms));
    set_progress(o, j->step, j->steps, j->steps_per_s, j->status == JOB_RUNNING);
    json_object_set_new(o, "backend", j->backend[0] ? json_string(j->backend) : json_null());
    if (j->error[0]) json_object_set_new(o, "error", json_string(j->error));
    json_object_set_new(o, "cancel_requested", json_boolean(j->cancel_requested));
    if (is_parent(j)) {
        json_object_set_new(o, "n_children", json_integer(j->n_children));
        json_object_set_new(o, "batched", json_boolean(api_job_batched(j)));
    }
    return o;
}

static int cmp_chain(const void *a, const void *b)
{
    const job_row *x = a, *y = b;
    return (x->chain > y->chain) - (x->chain < y->chain);
}

/* A sweep parent's progress summed over its children and, when full, the children (brief) and
 * the summary table. */
static void add_children(api_server *srv, const job_row *p, json_t *o, bool full)
{
    job_row *rows = NULL;
    int64_t n = 0;
    bz_err e = {0};
    if (store_job_list(srv->d->st, -1, NULL, p->id, BZ_MAX_TEMPS * 4, 0, &rows, &n, &e)) n = 0;
    if (n > 0) qsort(rows, (size_t)n, sizeof *rows, cmp_chain);
    json_t *kids = json_array(), *table = json_array();
    int64_t step = 0, steps = 0;
    double sps = 0;
    for (int64_t i = 0; i < n; i++) {
        if (full) {
            json_array_append_new(kids, job_json_base(&rows[i]));
            json_array_append_new(table, summary_row(srv, &rows[i]));
        }
        step += rows[i].step;
        steps += rows[i].steps;
        if (rows[i].status == JOB_RUNNING) sps += rows[i].steps_per_s;
        job_row_free(&rows[i]);
    }
    free(rows);
    if (n > 0) set_progress(o, step, steps, sps, false);
    if (full) {
        json_object_set_new(o, "children", kids);
        json_object_set_new(o, "summary_vs_T", table);
    } else {
        json_decref(kids);
        json_decref(table);
    }
}

/* The full view: base fields, the parsed spec, and for a sweep parent its children. */
static json_t *exchange_json(api_server *srv, const job_row *p);

static json_t *job_json_full(api_server *srv, const job_row *j)
{
    json_t *o = job_json_base(j);
    json_t *spec = j->spec_json ? json_loads(j->spec_json, 0, NULL) : NULL;
    json_object_set_new(o, "spec", spec ? spec : json_null());
    if (is_parent(j)) add_children(srv, j, o, true);
    if (api_job_batched(j)) json_object_set_new(o, "exchange", exchange_json(srv, j));
    return o;
}

/* ---------------------------------------------------------------- POST /jobs */

/* Submissions check the per-user count and insert under this lock, so two at once cannot both
 * pass the last free slot (jobs are inserted only here). */
static pthread_mutex_t submit_mu = PTHREAD_MUTEX_INITIALIZER;

/* With auth on: the token's user. Off: X-Boltz-User, 1..63 of [A-Za-z0-9._@-]; "anonymous" when
 * absent. */
static bool owner_of(api_req *r, char *owner, size_t len)
{
    if (r->authed) {
        snprintf(owner, len, "%s", r->user);
        return true;
    }
    const char *u = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Boltz-User");
    if (!u) u = "anonymous";
    size_t n = strlen(u);
    if (n == 0 || n > OWNER_MAX || n >= len) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-", u[i])) return false;
    memcpy(owner, u, n + 1);
    return true;
}

/* Fill a row from a spec (spec_json owned by the row afterwards). */
static int row_from_spec(job_row *j, const bz_spec *sp, const char *owner, int32_t priority)
{
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", sp->name);
    snprintf(j->owner, sizeof j->owner, "%s", owner);
    snprintf(j->method, sizeof j->method, "%s", spec_method_name(sp->sampler.method));
    j->T = sp->sampler.n_T == 1 && sp->sampler.method != SM_ADAM ? sp->sampler.T[0] : NAN;
    j->status = JOB_QUEUED;
    j->priority = priority;
    j->steps = sp->sampler.steps;
    j->spec_json = spec_to_json(sp);
    return j->spec_json ? 0 : BZ_ENOMEM;
}

/* The spec of child i of a sweep: its single temperature, its own seed and name. A chain of a
 * batched sweep keeps the parent's seed (the group seeds chain i from it) and is a single chain. */
static void child_spec(const bz_spec *sp, int i, bz_spec *c)
{
    *c = *sp;
    c->sampler.n_T = 1;
    c->sampler.T[0] = sp->sampler.T[i];
    if (sp->batched) {
        c->batched = false;
        c->exchange_every = 0;
    } else {
        c->sampler.seed = (sp->sampler.seed + SWEEP_SEED_STRIDE * (uint64_t)i) & (uint64_t)INT64_MAX; /* a valid seed */
    }
    char name[sizeof c->name];
    int k = snprintf(name, sizeof name, "%.100s-T%g", sp->name, sp->sampler.T[i]);
    if (k > 0) memcpy(c->name, name, sizeof name);
}

/* Undo a half-created sweep: cancel what was queued, then delete the rows. */
static void sweep_rollback(store *st, int64_t parent)
{
    job_status now;
    store_job_cancel(st, parent, &now, NULL);
    store_job_delete(st, parent, NULL);
}

/* Insert a parent and its children; *out gets the parent row. */
static int insert_sweep(store *st, const bz_spec *sp, const char *owner, int32_t prio, job_row *out, bz_err *e)
{
    int rc = row_from_spec(out, sp, owner, prio);
    if (rc) return bz_fail(e, rc, NULL, "out of memory");
    out->n_children = sp->sampler.n_T;
    out->T = NAN;
    if ((rc = store_job_insert(st, out, e))) return rc;
    bz_spec *c = malloc(sizeof *c);
    if (!c) rc = bz_fail(e, BZ_ENOMEM, NULL, "out of memory");
    for (int i = 0; !rc && i < sp->sampler.n_T; i++) {
        child_spec(sp, i, c);
        job_row k;
        if ((rc = row_from_spec(&k, c, owner, prio))) {
            bz_fail(e, rc, NULL, "out of memory");
            break;
        }
        k.parent_id = out->id;
        k.chain = i;
        rc = store_job_insert(st, &k, e);
        job_row_free(&k);
    }
    free(c);
    if (rc) sweep_rollback(st, out->id);
    return rc;
}

/* A single job, or a sweep's parent and children; *j gets the (parent) row. */
static int insert_job(store *st, const bz_spec *sp, const char *owner, int32_t prio, job_row *j, bz_err *e)
{
    if (sp->sampler.n_T > 1) return insert_sweep(st, sp, owner, prio, j, e);
    int rc = row_from_spec(j, sp, owner, prio);
    if (rc) return bz_fail(e, rc, NULL, "out of memory");
    return store_job_insert(st, j, e);
}

/* The per-user count (max_jobs_per_user; *over_quota when passed) and the insert, under one lock.
 * *j is zeroed first, so it can always be freed. */
static int admit_and_insert(api_req *r, const bz_spec *sp, const char *owner, int32_t prio, job_row *j,
                            bool *over_quota, bz_err *e)
{
    memset(j, 0, sizeof *j);
    pthread_mutex_lock(&submit_mu);
    int64_t active = 0;
    int rc = r->d->cfg.max_jobs_per_user > 0 ? store_jobs_active(r->d->st, owner, &active, e) : 0;
    if (!rc && quota_check_count(&r->d->cfg, owner, active, sp->sampler.n_T > 1 ? sp->sampler.n_T : 1, e)) {
        *over_quota = true;
        rc = BZ_ELIMIT;
    }
    if (!rc) rc = insert_job(r->d->st, sp, owner, prio, j, e);
    pthread_mutex_unlock(&submit_mu);
    return rc;
}

enum MHD_Result api_jobs_create(api_req *r)
{
    char owner[OWNER_MAX + 1];
    if (!owner_of(r, owner, sizeof owner))
        return api_error(r->conn, 400, "invalid_header", "X-Boltz-User",
                         "X-Boltz-User must be 1..63 characters of letters, digits and ._@-");
    int64_t prio;
    if (!api_query_int(r, "priority", 0, -1000, 1000, &prio))
        return api_error(r->conn, 400, "invalid_parameter", "priority", "%s", r->why);
    bz_spec *sp = malloc(sizeof *sp);
    if (!sp) return api_error(r->conn, 500, "internal", NULL, "out of memory");
    bz_err e = {0};
    int rc = spec_parse(r->body, sp, &e);
    if (rc) {
        free(sp);
        return api_error(r->conn, 400, rc == BZ_ELIMIT ? "limit" : "invalid_spec", e.field, "%s",
                         e.msg[0] ? e.msg : bz_strerror(rc));
    }
    if ((rc = quota_check_spec(&r->d->cfg, sp, &e))) {
        free(sp);
        return api_error(r->conn, 400, "limit", e.field, "%s", e.msg);
    }
    job_row j;
    bool over_quota = false;
    rc = admit_and_insert(r, sp, owner, (int32_t)prio, &j, &over_quota, &e);
    free(sp);
    if (rc) {
        job_row_free(&j);
        return over_quota ? api_error(r->conn, 429, "quota", NULL, "%s", e.msg) : api_error_bz(r->conn, &e);
    }
    hub_publish(r->d->hub);
    fprintf(stderr, "boltzd: api: job %lld submitted by %s (%s%s)\n", (long long)j.id, owner, j.method,
            is_parent(&j) ? ", sweep" : "");
    int64_t id = j.id;
    job_row_free(&j);
    job_row full;
    if (store_job_get(r->d->st, id, &full, &e)) return api_error_bz(r->conn, &e);
    struct MHD_Response *resp = api_json_response(job_json_full(r->srv, &full));
    job_row_free(&full);
    if (!resp) return MHD_NO;
    char loc[64];
    snprintf(loc, sizeof loc, API_PREFIX "/jobs/%lld", (long long)id);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
    return api_queue(r->conn, 201, resp, "application/json");
}

/* ---------------------------------------------------------------- GET /jobs, GET /jobs/{id} */

enum MHD_Result api_jobs_list(api_req *r)
{
    const char *status = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "status");
    const char *owner = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "owner");
    int st = -1;
    if (status && (st = job_status_parse(status)) < 0)
        return api_error(r->conn, 400, "invalid_parameter", "status",
                         "query parameter status must be queued, running, succeeded, failed or cancelled");
    if (owner && (!owner[0] || strlen(owner) > OWNER_MAX))
        return api_error(r->conn, 400, "invalid_parameter", "owner", "query parameter owner must be 1..63 characters");
    int64_t limit, offset, parent;
    if (!api_query_int(r, "limit", 50, 1, LIST_MAX, &limit))
        return api_error(r->conn, 400, "invalid_parameter", "limit", "%s", r->why);
    if (!api_query_int(r, "offset", 0, 0, INT64_MAX / 4, &offset))
        return api_error(r->conn, 400, "invalid_parameter", "offset", "%s", r->why);
    if (!api_query_int(r, "parent", 0, 0, INT64_MAX / 4, &parent))
        return api_error(r->conn, 400, "invalid_parameter", "parent", "%s", r->why);
    job_row *rows = NULL;
    int64_t n = 0;
    bz_err e = {0};
    if (store_job_list(r->d->st, st, owner, parent, limit, offset, &rows, &n, &e)) return api_error_bz(r->conn, &e);
    json_t *arr = json_array();
    for (int64_t i = 0; i < n; i++) {
        json_t *o = job_json_base(&rows[i]);
        if (is_parent(&rows[i])) add_children(r->srv, &rows[i], o, false);
        json_array_append_new(arr, o);
        job_row_free(&rows[i]);
    }
    free(rows);
    return api_json(r->conn, 200, json_pack("{s:o, s:I, s:I, s:I}", "jobs", arr, "count", (json_int_t)n, "limit",
                                            (json_int_t)limit, "offset", (json_int_t)offset));
}

enum MHD_Result api_jobs_get(api_req *r)
{
    job_row j;
    enum MHD_Result res;
    if (!api_load_job(r, &j, &res)) return res;
    json_t *o = job_json_full(r->srv, &j);
    job_row_free(&j);
    return api_json(r->conn, 200, o);
}

/* ---------------------------------------------------------------- cancel, delete */

/* With auth on, only the job's owner or an admin may change it: false with the 403 queued. */
static bool may_modify(api_req *r, const job_row *j, const char *what, enum MHD_Result *res)
{
    if (!r->authed || r->is_admin || !strcmp(j->owner, r->user)) return true;
    *res = api_error(r->conn, 403, "forbidden", NULL, "job %lld belongs to %s; only its owner or an admin may %s it",
                     (long long)j->id, j->owner, what);
    return false;
}

enum MHD_Result api_jobs_cancel(api_req *r)
{
    job_row j;
    enum MHD_Result res;
    if (!api_load_job(r, &j, &res)) return res;
    if (!may_modify(r, &j, "cancel", &res)) {
        job_row_free(&j);
        return res;
    }
    bz_err e = {0};
    job_status now;
    if (job_status_final(j.status)) {
        res = api_error(r->conn, 409, "conflict", NULL, "job %lld is already %s", (long long)j.id,
                        job_status_name(j.status));
        job_row_free(&j);
        return res;
    }
    job_row_free(&j);
    if (store_job_cancel(r->d->st, r->arg[0], &now, &e)) return api_error_bz(r->conn, &e);
    hub_publish(r->d->hub);
    fprintf(stderr, "boltzd: api: job %lld cancel (%s)%s%s\n", (long long)r->arg[0], job_status_name(now),
            r->authed ? " by " : "", r->authed ? r->user : "");
    if (!api_load_job(r, &j, &res)) return res;
    json_t *o = job_json_full(r->srv, &j);
    job_row_free(&j);
    return api_json(r->conn, 200, o);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    if (remove(path)) fprintf(stderr, "boltzd: api: cannot remove %s\n", path);
    return 0;
}

/* rm -rf a job's folder (DATA_DIR/jobs/ID; built from an integer, so never elsewhere). */
static void remove_job_dir(const bz_daemon *d, int64_t id)
{
    char dir[1200];
    daemon_job_dir(d, id, dir, sizeof dir);
    struct stat sb;
    if (stat(dir, &sb) == 0) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

enum MHD_Result api_jobs_delete(api_req *r)
{
    job_row j;
    enum MHD_Result res;
    if (!api_load_job(r, &j, &res)) return res;
    if (!may_modify(r, &j, "delete", &res)) {
        job_row_free(&j);
        return res;
    }
    int64_t kids[BZ_MAX_TEMPS * 4];
    int64_t nk = 0;
    if (is_parent(&j)) {
        job_row *rows = NULL;
        bz_err e0 = {0};
        if (store_job_list(r->d->st, -1, NULL, j.id, BZ_MAX_TEMPS * 4, 0, &rows, &nk, &e0) == 0) {
            for (int64_t i = 0; i < nk; i++) {
                kids[i] = rows[i].id;
                job_row_free(&rows[i]);
            }
            free(rows);
        } else nk = 0;
    }
    job_status st = j.status;
    job_row_free(&j);
    bz_err e = {0};
    if (!job_status_final(st))
        return api_error(r->conn, 409, "conflict", NULL, "job %lld is %s; cancel it first", (long long)r->arg[0],
                         job_status_name(st));
    if (store_job_delete(r->d->st, r->arg[0], &e)) return api_error_bz(r->conn, &e);
    for (int64_t i = 0; i < nk; i++) {
        remove_job_dir(r->d, kids[i]);
        cache_forget(r->srv->cache, kids[i]);
    }
    remove_job_dir(r->d, r->arg[0]);
    cache_forget(r->srv->cache, r->arg[0]);
    hub_publish(r->d->hub);
    fprintf(stderr, "boltzd: api: job %lld deleted%s%s\n", (long long)r->arg[0], r->authed ? " by " : "",
            r->authed ? r->user : "");
    return api_json(r->conn, 200, json_pack("{s:I, s:b, s:I}", "id", (json_int_t)r->arg[0], "deleted", 1,
                                            "children_deleted", (json_int_t)nk));
}

/* ---------------------------------------------------------------- summary */

enum MHD_Result api_jobs_summary(api_req *r)
{
    job_row j;
    enum MHD_Result res;
    if (!api_load_job(r, &j, &res)) return res;
    double burn_in;
    if (!api_query_real(r, "burn_in", spec_burn_in(j.spec_json), 0, 0.99, &burn_in)) {
        job_row_free(&j);
        return api_error(r->conn, 400, "invalid_parameter", "burn_in", "%s", r->why);
    }
    json_t *o;
    if (is_parent(&j)) {
        json_t *full = job_json_full(r->srv, &j);
        o = json_pack("{s:I, s:s, s:O}", "job", (json_int_t)j.id, "status", job_status_name(j.status),
                      "summary_vs_T", json_object_get(full, "summary_vs_T"));
        json_decref(full);
    } else {
        jf_series s;
        bz_err e = {0};
        if (load_series(r->d->st, j.id, &s, &e)) {
            job_row_free(&j);
            return api_error_bz(r->conn, &e);
        }
        o = summary_json(&s, burn_in);
        jf_series_free(&s);
        if (o) {
            json_object_set_new(o, "job", json_integer(j.id));
            json_object_set_new(o, "status", json_string(job_status_name(j.status)));
            json_object_set_new(o, "T", api_num(j.T));
        }
    }
    job_row_free(&j);
    if (!o) return api_error(r->conn, 500, "internal", NULL, "out of memory");
    return api_json(r->conn, 200, o);
}

/* ---------------------------------------------------------------- replica exchange */

static int keep_record(void *ctx, const obs_record *r)
{
    *(obs_record *)ctx = *r;
    return 1;
}

/* The job's newest record; false when it has none (or the store fails). */
static bool newest_record(store *st, int64_t job, obs_record *out)
{
    int64_t last = -1;
    bz_err e = {0};
    out->step = -1;
    if (store_obs_last_step(st, job, &last, &e) || last < 0) return false;
    return store_obs_each(st, job, last - 1, 1, keep_record, out, &e) == 0 && out->step == last;
}

/* Pair k (chains k, k+1) from chain k's newest record: acceptance, and the attempts the step
 * implies (rounds r = 0 .. R-1 with R = step / every, pair k tried when r = k mod 2). */
static json_t *pair_json(const job_row *lo, const job_row *hi, const obs_record *rec, bool have, int64_t every)
{
    int64_t rounds = have && every > 0 ? rec->step / every : 0;
    int64_t attempts = lo->chain % 2 == 0 ? (rounds + 1) / 2 : rounds / 2;
    double acc = have && attempts > 0 ? rec->v[OBS_EX_ACC] : NAN;
    json_t *o = json_pack("{s:I, s:o, s:o, s:I, s:I}", "chain", (json_int_t)lo->chain, "T_low", api_num(lo->T),
                          "T_high", api_num(hi->T), "job_low", (json_int_t)lo->id, "job_high", (json_int_t)hi->id);
    json_object_set_new(o, "acceptance", api_num(acc));
    json_object_set_new(o, "attempts", json_integer(attempts));
    json_object_set_new(o, "accepts", isfinite(acc) ? json_integer((json_int_t)llround(acc * (double)attempts))
                                                    : json_null());
    return o;
}

/* {every, step, rounds, round_trips, pairs: [...], replicas: [...]} of a batched sweep, from the
 * newest record of each chain (step: the oldest of those, null before any record). */
static json_t *exchange_json(api_server *srv, const job_row *p)
{
    const int64_t every = spec_exchange_every(p->spec_json);
    job_row *rows = NULL;
    int64_t n = 0;
    bz_err e = {0};
    if (store_job_list(srv->d->st, -1, NULL, p->id, BZ_MAX_TEMPS * 4, 0, &rows, &n, &e)) n = 0;
    if (n > 0) qsort(rows, (size_t)n, sizeof *rows, cmp_chain);
    obs_record *rec = calloc(n > 0 ? (size_t)n : 1, sizeof *rec);
    bool *have = calloc(n > 0 ? (size_t)n : 1, sizeof *have);
    int64_t step = -1;
    json_t *pairs = json_array(), *replicas = json_array();
    for (int64_t k = 0; rec && have && k < n; k++) {
        have[k] = newest_record(srv->d->st, rows[k].id, &rec[k]);
        if (have[k] && (step < 0 || rec[k].step < step)) step = rec[k].step;
        json_array_append_new(replicas, have[k] && every > 0 ? api_num(rec[k].v[OBS_REPLICA]) : json_null());
    }
    for (int64_t k = 0; rec && have && k + 1 < n; k++)
        json_array_append_new(pairs, pair_json(&rows[k], &rows[k + 1], &rec[k], have[k], every));
    double trips = rec && have && n > 0 && have[0] && every > 0 ? rec[0].v[OBS_ROUND_TRIPS] : NAN;
    json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "every", (json_int_t)every, "step",
                          step >= 0 ? json_integer(step) : json_null(), "rounds",
                          step >= 0 && every > 0 ? json_integer(step / every) : json_integer(0), "round_trips",
                          api_num(trips), "pairs", pairs, "replicas", replicas);
    for (int64_t k = 0; k < n; k++) job_row_free(&rows[k]);
    free(rows);
    free(rec);
    free(have);
    return o;
}

enum MHD_Result api_jobs_exchange(api_req *r)
{
    job_row j;
    enum MHD_Result res;
    if (!api_load_job(r, &j, &res)) return res;
    if (!api_job_batched(&j)) {
        res = api_error(r->conn, 404, "not_found", NULL,
                        "job %lld is not a batched sweep: replica exchange runs only between the chains of one"
                        " (spec \"batched\": true, \"exchange\": {\"every\": N})",
                        (long long)j.id);
        job_row_free(&j);
        return res;
    }
    json_t *o = exchange_json(r->srv, &j);
    json_object_set_new(o, "job", json_integer(j.id));
    json_object_set_new(o, "status", json_string(job_status_name(j.status)));
    job_row_free(&j);
    return api_json(r->conn, 200, o);
}
