/* test_store.c: the SQLite store (daemon/store.c): migrations (applied once, newer database,
 * broken file, missing dir), the observables columns against obs_names, job rows and listing, the
 * queue (priority, FIFO, parents never claimed, no double claim across handles and threads),
 * cancel/delete/recovery rules, sweep parents, observables, batched sweeps (claimed through the
 * parent, one outcome and progress for the group, rounds of records, the group read in (step, chain)
 * order with whole-step pages, no cancelling one chain), checkpoints, samples. Run it under
 * -DBOLTZ_SANITIZE=ON too. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "testutil.h"

#define SCHEMA_DIR BOLTZ_SOURCE_DIR "/schema"

static char g_dir[256];
static char g_db[512];

static void setup(void)
{
    cr_assert_not_null(tu_mkdtemp(g_dir, sizeof g_dir));
    snprintf(g_db, sizeof g_db, "%s/boltzd.db", g_dir);
}

static store *open_ok(void)
{
    store *s = NULL;
    bz_err e = {0};
    int rc = store_open(&s, g_db, SCHEMA_DIR, &e);
    cr_assert_eq(rc, 0, "store_open: %s", e.msg);
    cr_assert_not_null(s);
    return s;
}

/* A plain job row; spec_json points at a literal (not freed). */
static job_row mk_job(const char *name, int priority)
{
    job_row j;
    memset(&j, 0, sizeof j);
    snprintf(j.name, sizeof j.name, "%s", name);
    snprintf(j.owner, sizeof j.owner, "alice");
    snprintf(j.method, sizeof j.method, "pl");
    j.T = 1e-4;
    j.priority = priority;
    j.steps = 1000;
    j.spec_json = (char *)"{\"sampler\":{\"method\":\"pl\"}}";
    return j;
}

static int64_t add_job(store *s, const char *name, int priority)
{
    job_row j = mk_job(name, priority);
    bz_err e = {0};
    cr_assert_eq(store_job_insert(s, &j, &e), 0, "insert: %s", e.msg);
    cr_assert_gt(j.id, 0);
    return j.id;
}

/* A sweep parent with n queued children; child ids into kids. spec: the parent's spec_json (a
 * literal), NULL for mk_job's. */
static int64_t add_sweep_spec(store *s, int n, int64_t *kids, const char *spec)
{
    job_row p = mk_job("sweep", 0);
    p.n_children = n;
    p.T = NAN;
    if (spec) p.spec_json = (char *)spec;
    bz_err e = {0};
    cr_assert_eq(store_job_insert(s, &p, &e), 0, "%s", e.msg);
    for (int k = 0; k < n; k++) {
        job_row c = mk_job("chain", 0);
        c.parent_id = p.id;
        c.chain = k;
        c.T = 1e-4 * (k + 1);
        cr_assert_eq(store_job_insert(s, &c, &e), 0, "%s", e.msg);
        kids[k] = c.id;
    }
    return p.id;
}

static int64_t add_sweep(store *s, int n, int64_t *kids) { return add_sweep_spec(s, n, kids, NULL); }

/* A batched sweep: its spec says "batched": true, so one worker claims it whole through the parent. */
#define BATCHED_SPEC "{\"sampler\":{\"method\":\"pl\"},\"batched\":true}"

static int64_t add_batched(store *s, int n, int64_t *kids) { return add_sweep_spec(s, n, kids, BATCHED_SPEC); }

/* The row of job id (the caller frees it with job_row_free). */
static job_row get_job(store *s, int64_t id)
{
    job_row j;
    bz_err e = {0};
    cr_assert_eq(store_job_get(s, id, &j, &e), 0, "get %lld: %s", (long long)id, e.msg);
    return j;
}

static job_status status_of(store *s, int64_t id)
{
    job_row j;
    bz_err e = {0};
    cr_assert_eq(store_job_get(s, id, &j, &e), 0, "get %lld: %s", (long long)id, e.msg);
    job_status st = j.status;
    job_row_free(&j);
    return st;
}

static int64_t claim_id(store *s)
{
    job_row j;
    bz_err e = {0};
    int rc = store_job_claim(s, "w0", &j, &e);
    if (rc == BZ_ESTATE) return 0;
    cr_assert_eq(rc, 0, "claim: %s", e.msg);
    int64_t id = j.id;
    job_row_free(&j);
    return id;
}

static int64_t sql_int(const char *sql)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(g_db, &db), SQLITE_OK);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* sql_int of a printf-formatted query. */
static int64_t sql_intf(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return sql_int(sql);
}

/* How many rows of sweep p (the parent and its chains) satisfy the SQL condition `cond`. */
static int64_t group_rows(int64_t p, const char *cond)
{
    return sql_intf("SELECT COUNT(*) FROM jobs WHERE (id = %lld OR parent_id = %lld) AND %s", (long long)p,
                    (long long)p, cond);
}

static void sql_exec(const char *sql)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(g_db, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

TestSuite(store, .init = setup);

/* ---- migrations ---- */

Test(store, migrations_applied_once)
{
    store *s = open_ok();
    int v = 0;
    bz_err e = {0};
    cr_assert_eq(store_schema_version(s, &v, &e), 0);
    cr_assert_eq(v, 2, "schema version %d, expected 2 (001_init, 002_exchange)", v);
    store_close(s);
    s = open_ok();
    cr_assert_eq(store_schema_version(s, &v, &e), 0);
    cr_assert_eq(v, 2, "schema version %d, expected 2 (001_init, 002_exchange)", v);
    store_close(s);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM schema_version"), 2);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM schema_version WHERE name = '001_init.sql' AND applied_ms > 0"), 1);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM schema_version WHERE name = '002_exchange.sql' AND applied_ms > 0"), 1);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                         "('jobs', 'observables', 'checkpoints', 'samples', 'users', 'tokens')"),
                 6);
}

Test(store, pragmas_wal_and_foreign_keys)
{
    store *s = open_ok();
    store_close(s);
    /* journal_mode=WAL is persistent in the file. */
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(g_db, &db), SQLITE_OK);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
    /* Foreign keys are on in the store's connection: a checkpoint of a missing job is refused. */
    s = open_ok();
    bz_err e = {0};
    int64_t seq = 0;
    cr_assert_eq(store_ckpt_add(s, 12345, 10, "/x", 1, 2, &seq, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "store: add checkpoint:"), "%s", e.msg);
    cr_assert(strstr(e.msg, "FOREIGN KEY"), "%s", e.msg);
    store_close(s);
}

Test(store, newer_database_is_an_error)
{
    store *s = open_ok();
    store_close(s);
    sql_exec("INSERT INTO schema_version (version, name, applied_ms) VALUES (999, '999_future.sql', 1)");
    bz_err e = {0};
    s = NULL;
    cr_assert_eq(store_open(&s, g_db, SCHEMA_DIR, &e), BZ_ESTATE);
    cr_assert_null(s);
    cr_assert(strstr(e.msg, "999") && strstr(e.msg, "newer"), "%s", e.msg);
}

static void copy_init(const char *dir)
{
    size_t n;
    char *sql = tu_read_file(SCHEMA_DIR "/001_init.sql", &n);
    cr_assert_not_null(sql);
    char path[512];
    snprintf(path, sizeof path, "%s/001_init.sql", dir);
    cr_assert_eq(tu_write_file(path, sql, n), 0);
    free(sql);
}

Test(store, broken_migration_named_and_rolled_back)
{
    char schema[256], path[512];
    cr_assert_not_null(tu_mkdtemp(schema, sizeof schema));
    copy_init(schema);
    snprintf(path, sizeof path, "%s/002_broken.sql", schema);
    const char *bad = "CREATE TABLE half_done (x INTEGER);\nCREATE TABLE oops (;\n";
    cr_assert_eq(tu_write_file(path, bad, strlen(bad)), 0);
    /* Not migrations: ignored. */
    snprintf(path, sizeof path, "%s/README.txt", schema);
    cr_assert_eq(tu_write_file(path, "x", 1), 0);
    snprintf(path, sizeof path, "%s/job.schema.json", schema);
    cr_assert_eq(tu_write_file(path, "{}", 2), 0);

    store *s = NULL;
    bz_err e = {0};
    int rc = store_open(&s, g_db, schema, &e);
    cr_assert_lt(rc, 0);
    cr_assert_null(s);
    cr_assert(strstr(e.msg, "002_broken.sql"), "%s", e.msg);
    cr_assert(strstr(e.msg, "syntax error"), "%s", e.msg);
    /* 001 stays applied; 002 left nothing behind. */
    cr_assert_eq(sql_int("SELECT MAX(version) FROM schema_version"), 1);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'"), 0);

    /* Fixed file: applied as version 2 on the next open. */
    snprintf(path, sizeof path, "%s/002_broken.sql", schema);
    const char *good = "CREATE TABLE half_done (x INTEGER);\n";
    cr_assert_eq(tu_write_file(path, good, strlen(good)), 0);
    cr_assert_eq(store_open(&s, g_db, schema, &e), 0, "%s", e.msg);
    int v = 0;
    cr_assert_eq(store_schema_version(s, &v, &e), 0);
    cr_assert_eq(v, 2);
    store_close(s);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'"), 1);
}

Test(store, missing_or_empty_schema_dir)
{
    store *s = NULL;
    bz_err e = {0};
    cr_assert_eq(store_open(&s, g_db, "/nonexistent/boltzd-schema", &e), BZ_EIO);
    cr_assert_null(s);
    cr_assert(strstr(e.msg, "/nonexistent/boltzd-schema"), "%s", e.msg);
    char empty[256];
    cr_assert_not_null(tu_mkdtemp(empty, sizeof empty));
    cr_assert_eq(store_open(&s, g_db, empty, &e), BZ_EIO);
    cr_assert(strstr(e.msg, "no NNN_name.sql"), "%s", e.msg);
}

Test(store, unopenable_database)
{
    store *s = NULL;
    bz_err e = {0};
    cr_assert_eq(store_open(&s, "/nonexistent/dir/boltzd.db", SCHEMA_DIR, &e), BZ_EIO);
    cr_assert_null(s);
    cr_assert(strstr(e.msg, "/nonexistent/dir/boltzd.db"), "%s", e.msg);
}

Test(store, observable_columns_match_obs_names)
{
    store *s = open_ok();
    store_close(s);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(g_db, &db), SQLITE_OK);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA table_info(observables)", -1, &q, NULL), SQLITE_OK);
    const char *fixed[] = {"job_id", "step", "t_wall", "T", "chain"};
    int i = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 1);
        const char *type = (const char *)sqlite3_column_text(q, 2);
        if (i < 5) {
            cr_assert_str_eq(name, fixed[i]);
        } else {
            cr_assert_lt(i - 5, OBS_COUNT, "extra column %s", name);
            cr_assert_str_eq(name, obs_names[i - 5], "column %d is %s, obs_names has %s", i, name, obs_names[i - 5]);
            cr_assert_str_eq(type, "REAL", "column %s", name);
        }
        i++;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    cr_assert_eq(i, 5 + OBS_COUNT, "observables has %d columns, expected %d", i, 5 + OBS_COUNT);
}

Test(store, integrity_check_ok)
{
    store *s = open_ok();
    add_job(s, "a", 0);
    bz_err e = {0};
    cr_assert_eq(store_integrity_check(s, &e), 0, "%s", e.msg);
    store_close(s);
}

/* ---- jobs ---- */

Test(store, status_names)
{
    for (int i = 0; i < JOB_STATUS_COUNT; i++) cr_assert_eq(job_status_parse(job_status_name((job_status)i)), i);
    cr_assert_eq(job_status_parse("paused"), -1);
    cr_assert_eq(job_status_parse(NULL), -1);
    cr_assert_str_eq(job_status_name(JOB_CANCELLED), "cancelled");
}

Test(store, job_round_trip_every_field)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t parent_kids[1];
    int64_t parent = add_sweep(s, 1, parent_kids);
    job_row j;
    memset(&j, 0, sizeof j);
    j.parent_id = parent;
    j.n_children = 0;
    j.chain = 3;
    snprintf(j.name, sizeof j.name, "spin-pl-T1e-4 'quoted' \"x\"");
    snprintf(j.owner, sizeof j.owner, "bob");
    snprintf(j.method, sizeof j.method, "hmc");
    j.T = 1.25e-4;
    j.status = JOB_FAILED;
    j.priority = -7;
    j.created_ms = 1700000000123;
    j.started_ms = 1700000001000;
    j.finished_ms = 1700000002000;
    j.step = 4321;
    j.steps = 200000;
    j.steps_per_s = 1234.5;
    snprintf(j.backend, sizeof j.backend, "cuda");
    snprintf(j.error, sizeof j.error, "diverged at step 1234: U is NaN; lower r0 or T");
    j.cancel_requested = true;
    j.spec_json = (char *)"{\"name\":\"x\",\"sampler\":{\"T\":1.25e-4},\"u\":\"\\u00e9\"}";
    cr_assert_eq(store_job_insert(s, &j, &e), 0, "%s", e.msg);
    cr_assert_gt(j.id, parent_kids[0]);

    job_row g;
    cr_assert_eq(store_job_get(s, j.id, &g, &e), 0, "%s", e.msg);
    cr_assert_eq(g.id, j.id);
    cr_assert_eq(g.parent_id, parent);
    cr_assert_eq(g.n_children, 0);
    cr_assert_eq(g.chain, 3);
    cr_assert_str_eq(g.name, j.name);
    cr_assert_str_eq(g.owner, "bob");
    cr_assert_str_eq(g.method, "hmc");
    cr_assert_eq(g.T, 1.25e-4);
    cr_assert_eq(g.status, JOB_FAILED);
    cr_assert_eq(g.priority, -7);
    cr_assert_eq(g.created_ms, 1700000000123);
    cr_assert_eq(g.started_ms, 1700000001000);
    cr_assert_eq(g.finished_ms, 1700000002000);
    cr_assert_eq(g.step, 4321);
    cr_assert_eq(g.steps, 200000);
    cr_assert_eq(g.steps_per_s, 1234.5);
    cr_assert_str_eq(g.backend, "cuda");
    cr_assert_str_eq(g.error, j.error);
    cr_assert(g.cancel_requested);
    cr_assert_str_eq(g.spec_json, j.spec_json);
    job_row_free(&g);
    cr_assert_null(g.spec_json);

    /* Defaults: status queued, created_ms now, T NaN stored as NULL and read back as NaN. */
    job_row p;
    memset(&p, 0, sizeof p);
    p.T = NAN;
    p.n_children = 4;
    p.spec_json = (char *)"{}";
    int64_t before = store_now_ms();
    cr_assert_eq(store_job_insert(s, &p, &e), 0, "%s", e.msg);
    cr_assert_geq(p.created_ms, before);
    cr_assert_leq(p.created_ms, store_now_ms());
    cr_assert_eq(store_job_get(s, p.id, &g, &e), 0);
    cr_assert(isnan(g.T));
    cr_assert_eq(g.status, JOB_QUEUED);
    cr_assert_eq(g.parent_id, 0);
    cr_assert_eq(g.n_children, 4);
    cr_assert_eq(g.created_ms, p.created_ms);
    cr_assert_eq(g.started_ms, 0);
    cr_assert_not(g.cancel_requested);
    cr_assert_str_eq(g.spec_json, "{}");
    job_row_free(&g);
    store_close(s);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM jobs WHERE T IS NULL"), 2);
}

Test(store, job_get_missing_and_bad_insert)
{
    store *s = open_ok();
    bz_err e = {0};
    job_row g;
    cr_assert_eq(store_job_get(s, 777, &g, &e), BZ_EINVAL);
    cr_assert_str_eq(e.msg, "no job 777");
    job_row j = mk_job("x", 0);
    j.spec_json = NULL;
    cr_assert_eq(store_job_insert(s, &j, &e), BZ_EINVAL);
    j = mk_job("x", 0);
    j.parent_id = 999; /* no such parent */
    cr_assert_eq(store_job_insert(s, &j, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "store: insert job:"), "%s", e.msg);
    store_close(s);
}

Test(store, list_filters_and_paging)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t ids[10];
    for (int i = 0; i < 10; i++) {
        job_row j = mk_job("j", 0);
        snprintf(j.owner, sizeof j.owner, "%s", i % 2 ? "bob" : "alice");
        j.created_ms = 1000 + i;
        cr_assert_eq(store_job_insert(s, &j, &e), 0);
        ids[i] = j.id;
    }
    int64_t kids[2];
    int64_t sweep = add_sweep(s, 2, kids);
    cr_assert_eq(store_job_set_status(s, ids[3], JOB_SUCCEEDED, NULL, &e), 0, "%s", e.msg);

    job_row *rows;
    int64_t n;
    /* All, newest first: the sweep (now) with its children, then ids[9] .. ids[0]. */
    cr_assert_eq(store_job_list(s, -1, NULL, -1, 0, 0, &rows, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 13);
    cr_assert_eq(rows[12].id, ids[0]);
    cr_assert_eq(rows[3].id, ids[9]);
    for (int64_t i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);

    /* Top level only. */
    cr_assert_eq(store_job_list(s, -1, NULL, 0, 0, 0, &rows, &n, &e), 0);
    cr_assert_eq(n, 11);
    cr_assert_eq(rows[0].id, sweep);
    for (int64_t i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);

    /* Children of the sweep. */
    cr_assert_eq(store_job_list(s, -1, NULL, sweep, 0, 0, &rows, &n, &e), 0);
    cr_assert_eq(n, 2);
    cr_assert(rows[0].parent_id == sweep && rows[1].parent_id == sweep);
    for (int64_t i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);

    /* Owner bob, top level, page of 2 after skipping 1: ids[7], ids[5]. */
    cr_assert_eq(store_job_list(s, -1, "bob", 0, 2, 1, &rows, &n, &e), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(rows[0].id, ids[7]);
    cr_assert_eq(rows[1].id, ids[5]);
    for (int64_t i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);

    /* Status filter. */
    cr_assert_eq(store_job_list(s, JOB_SUCCEEDED, NULL, -1, 0, 0, &rows, &n, &e), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(rows[0].id, ids[3]);
    job_row_free(&rows[0]);
    free(rows);

    /* Past the end: empty. */
    cr_assert_eq(store_job_list(s, -1, NULL, -1, 10, 100, &rows, &n, &e), 0);
    cr_assert_eq(n, 0);
    free(rows);
    cr_assert_eq(store_job_list(s, 99, NULL, -1, 0, 0, &rows, &n, &e), BZ_EINVAL);
    store_close(s);
}

Test(store, claim_priority_then_fifo_parents_never)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t kids[2];
    job_row p = mk_job("sweep", 100); /* a parent outranks everything but is never claimed */
    p.n_children = 2;
    cr_assert_eq(store_job_insert(s, &p, &e), 0);
    for (int k = 0; k < 2; k++) {
        job_row c = mk_job("chain", 1);
        c.parent_id = p.id;
        c.chain = k;
        cr_assert_eq(store_job_insert(s, &c, &e), 0);
        kids[k] = c.id;
    }
    int64_t a = add_job(s, "a", 0);
    int64_t b = add_job(s, "b", 5);
    int64_t c = add_job(s, "c", 0);
    int64_t d = add_job(s, "d", 5);
    /* Inserted last but created first: FIFO is by created_ms, then id. */
    job_row old = mk_job("old", 0);
    old.created_ms = 1;
    cr_assert_eq(store_job_insert(s, &old, &e), 0);

    int64_t want[] = {b, d, kids[0], kids[1], old.id, a, c};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        job_row j;
        cr_assert_eq(store_job_claim(s, "worker-3", &j, &e), 0, "%s", e.msg);
        cr_assert_eq(j.id, want[i], "claim %zu: got %lld want %lld", i, (long long)j.id, (long long)want[i]);
        cr_assert_eq(j.status, JOB_RUNNING);
        cr_assert_gt(j.started_ms, 0);
        cr_assert_not_null(j.spec_json);
        job_row_free(&j);
    }
    job_row j;
    cr_assert_eq(store_job_claim(s, "worker-3", &j, &e), BZ_ESTATE);
    cr_assert_str_eq(e.msg, "no queued job");
    cr_assert_eq(status_of(s, p.id), JOB_RUNNING); /* refreshed from its running children */
    store_close(s);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM jobs WHERE worker = 'worker-3'"), 7);
}

typedef struct claimer {
    int index;
    int64_t got[256];
    int n;
    int err;
    char msg[512];
} claimer;

static void *claim_thread(void *arg)
{
    claimer *c = arg;
    store *s = NULL;
    bz_err e = {0};
    if (store_open(&s, g_db, SCHEMA_DIR, &e)) {
        c->err = e.code;
        snprintf(c->msg, sizeof c->msg, "%s", e.msg);
        return NULL;
    }
    char name[32];
    snprintf(name, sizeof name, "w%d", c->index);
    for (;;) {
        job_row j;
        int rc = store_job_claim(s, name, &j, &e);
        if (rc == BZ_ESTATE) break;
        if (rc) {
            c->err = rc;
            snprintf(c->msg, sizeof c->msg, "%s", e.msg);
            break;
        }
        if (c->n < 256) c->got[c->n++] = j.id;
        job_row_free(&j);
        /* Mix in other writers so the lock is contended by different statements. */
        obs_record r;
        obs_clear(&r, 1, 0.0, 1.0, 0);
        if (store_obs_insert(s, c->got[c->n - 1], &r, 1, &e) ||
            store_job_set_status(s, c->got[c->n - 1], JOB_SUCCEEDED, NULL, &e)) {
            c->err = e.code;
            snprintf(c->msg, sizeof c->msg, "%s", e.msg);
            break;
        }
    }
    store_close(s);
    return NULL;
}

Test(store, claim_across_handles_and_threads_exactly_once)
{
    enum { NJOBS = 200, NTHREADS = 4 };
    store *s = open_ok();
    int64_t first = 0;
    for (int i = 0; i < NJOBS; i++) {
        int64_t id = add_job(s, "bulk", i % 3);
        if (!first) first = id;
    }
    static claimer cl[NTHREADS];
    memset(cl, 0, sizeof cl);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        cl[t].index = t;
        cr_assert_eq(pthread_create(&th[t], NULL, claim_thread, &cl[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
    static int seen[NJOBS];
    memset(seen, 0, sizeof seen);
    int total = 0;
    for (int t = 0; t < NTHREADS; t++) {
        cr_assert_eq(cl[t].err, 0, "thread %d: %s", t, cl[t].msg);
        for (int k = 0; k < cl[t].n; k++) {
            int64_t i = cl[t].got[k] - first;
            cr_assert(i >= 0 && i < NJOBS);
            seen[i]++;
            total++;
        }
    }
    cr_assert_eq(total, NJOBS);
    for (int i = 0; i < NJOBS; i++) cr_assert_eq(seen[i], 1, "job %d claimed %d times", i, seen[i]);
    int64_t counts[JOB_STATUS_COUNT];
    bz_err e = {0};
    cr_assert_eq(store_count_by_status(s, counts, &e), 0);
    cr_assert_eq(counts[JOB_SUCCEEDED], NJOBS);
    cr_assert_eq(counts[JOB_QUEUED], 0);
    store_close(s);
}

Test(store, set_status_backend_progress)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t id = add_job(s, "a", 0);
    cr_assert_eq(claim_id(s), id);
    cr_assert_eq(store_job_set_backend(s, id, "cpu", &e), 0);
    cr_assert_eq(store_job_progress(s, id, 500, 250.5, &e), 0);
    job_row g;
    cr_assert_eq(store_job_get(s, id, &g, &e), 0);
    cr_assert_str_eq(g.backend, "cpu");
    cr_assert_eq(g.step, 500);
    cr_assert_eq(g.steps_per_s, 250.5);
    int64_t started = g.started_ms;
    job_row_free(&g);

    cr_assert_eq(store_job_set_status(s, id, JOB_FAILED, "diverged at step 501: U is NaN; lower r0 or T", &e), 0);
    cr_assert_eq(store_job_get(s, id, &g, &e), 0);
    cr_assert_eq(g.status, JOB_FAILED);
    cr_assert_str_eq(g.error, "diverged at step 501: U is NaN; lower r0 or T");
    cr_assert_gt(g.finished_ms, 0);
    job_row_free(&g);

    /* Back to queued (a retry): finished_ms cleared; a re-claim keeps the first started_ms. */
    cr_assert_eq(store_job_set_status(s, id, JOB_QUEUED, NULL, &e), 0);
    cr_assert_eq(store_job_get(s, id, &g, &e), 0);
    cr_assert_eq(g.status, JOB_QUEUED);
    cr_assert_eq(g.finished_ms, 0);
    cr_assert_str_eq(g.error, "");
    job_row_free(&g);
    cr_assert_eq(claim_id(s), id);
    cr_assert_eq(store_job_get(s, id, &g, &e), 0);
    cr_assert_eq(g.started_ms, started);
    job_row_free(&g);

    cr_assert_eq(store_job_set_status(s, id, JOB_RUNNING, NULL, &e), BZ_EINVAL);
    cr_assert_eq(store_job_set_status(s, 999, JOB_SUCCEEDED, NULL, &e), BZ_EINVAL);
    cr_assert_str_eq(e.msg, "no job 999");
    cr_assert_eq(store_job_progress(s, 999, 1, 1.0, &e), BZ_EINVAL);
    cr_assert_eq(store_job_set_backend(s, 999, "cpu", &e), BZ_EINVAL);
    store_close(s);
}

Test(store, cancel_rules)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t q = add_job(s, "queued", 0);
    int64_t r = add_job(s, "running", 9);
    cr_assert_eq(claim_id(s), r);
    job_status now;
    bool yes = true;

    cr_assert_eq(store_job_cancel_requested(s, q, &yes, &e), 0);
    cr_assert_not(yes);
    cr_assert_eq(store_job_cancel(s, q, &now, &e), 0, "%s", e.msg);
    cr_assert_eq(now, JOB_CANCELLED);
    cr_assert_eq(status_of(s, q), JOB_CANCELLED);

    cr_assert_eq(store_job_cancel(s, r, &now, &e), 0);
    cr_assert_eq(now, JOB_RUNNING);
    cr_assert_eq(store_job_cancel_requested(s, r, &yes, &e), 0);
    cr_assert(yes);
    cr_assert_eq(status_of(s, r), JOB_RUNNING);
    /* The worker stops and reports. */
    cr_assert_eq(store_job_set_status(s, r, JOB_CANCELLED, NULL, &e), 0);

    cr_assert_eq(store_job_cancel(s, q, &now, &e), BZ_ESTATE);
    cr_assert(strstr(e.msg, "already cancelled"), "%s", e.msg);
    cr_assert_eq(store_job_cancel(s, 4242, &now, &e), BZ_EINVAL);
    cr_assert_eq(store_job_cancel_requested(s, 4242, &yes, &e), BZ_EINVAL);
    store_close(s);
}

Test(store, sweep_cancel_cancels_children)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t kids[3];
    int64_t p = add_sweep(s, 3, kids);
    cr_assert_eq(claim_id(s), kids[0]);
    job_status now;
    cr_assert_eq(store_job_cancel(s, p, &now, &e), 0, "%s", e.msg);
    cr_assert_eq(now, JOB_RUNNING); /* one chain still has to stop */
    cr_assert_eq(status_of(s, kids[1]), JOB_CANCELLED);
    cr_assert_eq(status_of(s, kids[2]), JOB_CANCELLED);
    bool yes = false;
    cr_assert_eq(store_job_cancel_requested(s, kids[0], &yes, &e), 0);
    cr_assert(yes);
    cr_assert_eq(claim_id(s), 0);
    cr_assert_eq(store_job_set_status(s, kids[0], JOB_CANCELLED, NULL, &e), 0);
    cr_assert_eq(status_of(s, p), JOB_CANCELLED);
    cr_assert_eq(store_job_cancel(s, p, &now, &e), BZ_ESTATE);

    /* A sweep with every chain queued is cancelled at once. */
    int64_t kids2[2];
    int64_t p2 = add_sweep(s, 2, kids2);
    cr_assert_eq(store_job_cancel(s, p2, &now, &e), 0);
    cr_assert_eq(now, JOB_CANCELLED);
    cr_assert_eq(status_of(s, kids2[0]), JOB_CANCELLED);
    cr_assert_eq(status_of(s, kids2[1]), JOB_CANCELLED);
    store_close(s);
}

Test(store, parent_refresh_statuses)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t k[3];
    int64_t p = add_sweep(s, 3, k);
    cr_assert_eq(store_parent_refresh(s, p, &e), 0, "%s", e.msg);
    cr_assert_eq(status_of(s, p), JOB_QUEUED);

    cr_assert_eq(claim_id(s), k[0]);
    cr_assert_eq(store_parent_refresh(s, p, &e), 0);
    cr_assert_eq(status_of(s, p), JOB_RUNNING);
    job_row g;
    cr_assert_eq(store_job_get(s, p, &g, &e), 0);
    cr_assert_gt(g.started_ms, 0);
    cr_assert_eq(g.finished_ms, 0);
    job_row_free(&g);

    /* One done, others queued: still in progress. */
    cr_assert_eq(store_job_progress(s, k[0], 1000, 10.0, &e), 0);
    cr_assert_eq(store_job_set_status(s, k[0], JOB_SUCCEEDED, NULL, &e), 0);
    cr_assert_eq(status_of(s, p), JOB_RUNNING);
    cr_assert_eq(store_job_get(s, p, &g, &e), 0);
    cr_assert_eq(g.step, 1000);
    cr_assert_eq(g.steps, 3000);
    job_row_free(&g);

    cr_assert_eq(claim_id(s), k[1]);
    cr_assert_eq(store_job_set_status(s, k[1], JOB_FAILED, "diverged at step 7", &e), 0);
    cr_assert_eq(status_of(s, p), JOB_RUNNING);
    cr_assert_eq(claim_id(s), k[2]);
    cr_assert_eq(store_job_set_status(s, k[2], JOB_SUCCEEDED, NULL, &e), 0);
    cr_assert_eq(store_parent_refresh(s, p, &e), 0);
    cr_assert_eq(store_job_get(s, p, &g, &e), 0);
    cr_assert_eq(g.status, JOB_FAILED);
    cr_assert_str_eq(g.error, "chain 1: diverged at step 7");
    cr_assert_gt(g.finished_ms, 0);
    job_row_free(&g);

    /* All succeeded. */
    int64_t k2[2];
    int64_t p2 = add_sweep(s, 2, k2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(claim_id(s), k2[i]);
        cr_assert_eq(store_job_set_status(s, k2[i], JOB_SUCCEEDED, NULL, &e), 0);
    }
    cr_assert_eq(store_parent_refresh(s, p2, &e), 0);
    cr_assert_eq(status_of(s, p2), JOB_SUCCEEDED);

    /* One cancelled, one succeeded. */
    int64_t k3[2];
    int64_t p3 = add_sweep(s, 2, k3);
    job_status now;
    cr_assert_eq(store_job_cancel(s, k3[0], &now, &e), 0);
    /* Some chains over, some still queued: the sweep is in progress. */
    cr_assert_eq(status_of(s, p3), JOB_RUNNING);
    cr_assert_eq(claim_id(s), k3[1]);
    cr_assert_eq(store_job_set_status(s, k3[1], JOB_SUCCEEDED, NULL, &e), 0);
    cr_assert_eq(store_parent_refresh(s, p3, &e), 0);
    cr_assert_eq(status_of(s, p3), JOB_CANCELLED);

    /* A parent whose children are not inserted (a failed submit rolling back): cancel, delete. */
    job_row lone = mk_job("lone", 0);
    lone.n_children = 3;
    cr_assert_eq(store_job_insert(s, &lone, &e), 0);
    cr_assert_eq(store_parent_refresh(s, lone.id, &e), 0);
    cr_assert_eq(status_of(s, lone.id), JOB_QUEUED);
    cr_assert_eq(store_job_cancel(s, lone.id, &now, &e), 0, "%s", e.msg);
    cr_assert_eq(now, JOB_CANCELLED);
    cr_assert_eq(store_job_delete(s, lone.id, &e), 0, "%s", e.msg);

    int64_t single = add_job(s, "single", 0);
    cr_assert_eq(store_parent_refresh(s, single, &e), BZ_EINVAL);
    cr_assert_eq(store_parent_refresh(s, 9999, &e), BZ_EINVAL);
    store_close(s);
}

Test(store, delete_rules_and_cascade)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t done = add_job(s, "done", 0);
    int64_t run = add_job(s, "run", 0);
    cr_assert_eq(claim_id(s), done);
    cr_assert_eq(claim_id(s), run);
    obs_record r[3];
    for (int i = 0; i < 3; i++) obs_clear(&r[i], (i + 1) * 10, i, 1.0, 0);
    cr_assert_eq(store_obs_insert(s, done, r, 3, &e), 0);
    cr_assert_eq(store_obs_insert(s, run, r, 3, &e), 0);
    int64_t seq;
    cr_assert_eq(store_ckpt_add(s, done, 30, "/d/1.ckpt", 10, 1, &seq, &e), 0);
    samples_row sr = {.job = done, .count = 2, .size = 100, .last_step = 30};
    snprintf(sr.path, sizeof sr.path, "/d/samples.npy");
    cr_assert_eq(store_samples_set(s, &sr, &e), 0);
    cr_assert_eq(store_job_set_status(s, done, JOB_SUCCEEDED, NULL, &e), 0);

    cr_assert_eq(store_job_delete(s, run, &e), BZ_ESTATE);
    cr_assert(strstr(e.msg, "running"), "%s", e.msg);
    cr_assert_eq(store_job_delete(s, done, &e), 0, "%s", e.msg);
    job_row g;
    cr_assert_eq(store_job_get(s, done, &g, &e), BZ_EINVAL);
    cr_assert_eq(store_job_delete(s, done, &e), BZ_EINVAL);

    /* A sweep: refused while a chain runs; deleting it removes the children. */
    int64_t k[2];
    int64_t p = add_sweep(s, 2, k);
    cr_assert_eq(store_job_cancel(s, run, NULL, &e), 0);
    cr_assert_eq(store_job_set_status(s, run, JOB_CANCELLED, NULL, &e), 0);
    cr_assert_eq(claim_id(s), k[0]);
    cr_assert_eq(store_obs_insert(s, k[0], r, 3, &e), 0);
    cr_assert_eq(store_job_delete(s, p, &e), BZ_ESTATE);
    cr_assert_eq(store_job_set_status(s, k[0], JOB_SUCCEEDED, NULL, &e), 0);
    cr_assert_eq(store_job_delete(s, p, &e), BZ_ESTATE); /* k[1] still queued */
    cr_assert_eq(claim_id(s), k[1]);
    cr_assert_eq(store_job_set_status(s, k[1], JOB_SUCCEEDED, NULL, &e), 0);
    cr_assert_eq(store_job_delete(s, k[1], &e), BZ_ESTATE); /* a chain alone: delete the sweep */
    cr_assert_eq(store_job_delete(s, p, &e), 0, "%s", e.msg);
    cr_assert_eq(store_job_delete(s, run, &e), 0, "%s", e.msg);
    store_close(s);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM jobs"), 0);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables"), 0);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM checkpoints"), 0);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM samples"), 0);
}

Test(store, requeue_running_and_counts)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t a = add_job(s, "a", 0);
    int64_t b = add_job(s, "b", 0);
    int64_t c = add_job(s, "c", 0);
    int64_t k[2];
    int64_t p = add_sweep(s, 2, k);
    cr_assert_eq(claim_id(s), a);
    cr_assert_eq(claim_id(s), b);
    cr_assert_eq(claim_id(s), c);
    cr_assert_eq(claim_id(s), k[0]);
    cr_assert_eq(store_job_set_status(s, c, JOB_SUCCEEDED, NULL, &e), 0);
    job_row g;
    cr_assert_eq(store_job_get(s, a, &g, &e), 0);
    int64_t started = g.started_ms;
    job_row_free(&g);

    int64_t counts[JOB_STATUS_COUNT];
    cr_assert_eq(store_count_by_status(s, counts, &e), 0);
    cr_assert_eq(counts[JOB_RUNNING], 3); /* a, b, k0 (the parent is not counted) */
    cr_assert_eq(counts[JOB_QUEUED], 1);
    cr_assert_eq(counts[JOB_SUCCEEDED], 1);
    cr_assert_eq(counts[JOB_FAILED] + counts[JOB_CANCELLED], 0);
    store_close(s);

    /* "Restart": a new handle recovers. */
    s = open_ok();
    int64_t n = 0;
    cr_assert_eq(store_requeue_running(s, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 3);
    cr_assert_eq(status_of(s, a), JOB_QUEUED);
    cr_assert_eq(status_of(s, b), JOB_QUEUED);
    cr_assert_eq(status_of(s, c), JOB_SUCCEEDED);
    cr_assert_eq(status_of(s, k[0]), JOB_QUEUED);
    cr_assert_eq(status_of(s, p), JOB_QUEUED);
    cr_assert_eq(store_count_by_status(s, counts, &e), 0);
    cr_assert_eq(counts[JOB_QUEUED], 4);
    cr_assert_eq(counts[JOB_RUNNING], 0);
    cr_assert_eq(store_requeue_running(s, &n, &e), 0);
    cr_assert_eq(n, 0);
    /* Claimed again in the original order, keeping the first start time. */
    cr_assert_eq(claim_id(s), a);
    cr_assert_eq(store_job_get(s, a, &g, &e), 0);
    cr_assert_eq(g.started_ms, started);
    job_row_free(&g);
    store_close(s);
}

/* ---- observables ---- */

typedef struct collect {
    obs_record r[64];
    int n;
    int stop_after;
} collect;

static int collect_fn(void *ctx, const obs_record *r)
{
    collect *c = ctx;
    c->r[c->n++] = *r;
    return c->stop_after && c->n >= c->stop_after;
}

static void fill_obs(obs_record *r, int64_t step)
{
    obs_clear(r, step, 0.5 * (double)step, 2e-4, 1);
    for (int i = 0; i < OBS_COUNT; i++) r->v[i] = (i % 4 == 3) ? NAN : (double)step + 0.01 * i;
}

Test(store, observables_round_trip)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t id = add_job(s, "a", 0);
    int64_t other = add_job(s, "b", 0);
    int64_t last = 0;
    cr_assert_eq(store_obs_last_step(s, id, &last, &e), 0);
    cr_assert_eq(last, -1);

    obs_record r[10];
    for (int i = 0; i < 10; i++) fill_obs(&r[i], (i + 1) * 100);
    cr_assert_eq(store_obs_insert(s, id, r, 10, &e), 0, "%s", e.msg);
    obs_record o;
    fill_obs(&o, 100);
    o.v[0] = -1.0;
    cr_assert_eq(store_obs_insert(s, other, &o, 1, &e), 0);
    cr_assert_eq(store_obs_insert(s, id, r, 0, &e), 0);

    collect c = {0};
    cr_assert_eq(store_obs_each(s, id, -1, 0, collect_fn, &c, &e), 0, "%s", e.msg);
    cr_assert_eq(c.n, 10);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(c.r[i].step, r[i].step);
        cr_assert_eq(c.r[i].t_wall, r[i].t_wall);
        cr_assert_eq(c.r[i].T, 2e-4);
        cr_assert_eq(c.r[i].chain, 1);
        for (int k = 0; k < OBS_COUNT; k++) {
            if (isnan(r[i].v[k])) cr_assert(isnan(c.r[i].v[k]), "%s", obs_names[k]);
            else cr_assert_eq(c.r[i].v[k], r[i].v[k], "%s", obs_names[k]);
        }
    }
    store_close(s);
    /* NaN is stored as NULL. */
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables WHERE train_err IS NULL"), 11);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables WHERE U IS NULL"), 0);
}

Test(store, observables_since_limit_stop)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t id = add_job(s, "a", 0);
    obs_record r[10];
    /* Inserted out of order across two batches; read back in step order. */
    for (int i = 0; i < 10; i++) fill_obs(&r[i], (10 - i) * 10);
    cr_assert_eq(store_obs_insert(s, id, r, 5, &e), 0);
    cr_assert_eq(store_obs_insert(s, id, r + 5, 5, &e), 0);

    collect c = {0};
    cr_assert_eq(store_obs_each(s, id, 30, 0, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 7);
    cr_assert_eq(c.r[0].step, 40);
    cr_assert_eq(c.r[6].step, 100);

    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each(s, id, 30, 3, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(c.r[2].step, 60);

    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    cr_assert_eq(store_obs_each(s, id, -1, 0, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.r[1].step, 20);

    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each(s, id, 100, 0, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 0);
    store_close(s);
}

Test(store, observables_duplicates_replaced_and_resume)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t id = add_job(s, "a", 0);
    obs_record r[6];
    for (int i = 0; i < 6; i++) fill_obs(&r[i], (i + 1) * 10);
    cr_assert_eq(store_obs_insert(s, id, r, 6, &e), 0);
    int64_t last;
    cr_assert_eq(store_obs_last_step(s, id, &last, &e), 0);
    cr_assert_eq(last, 60);

    /* Resume from a checkpoint at step 30: later records go, and are recomputed. */
    cr_assert_eq(store_obs_delete_after(s, id, 30, &e), 0);
    cr_assert_eq(store_obs_last_step(s, id, &last, &e), 0);
    cr_assert_eq(last, 30);
    for (int i = 3; i < 6; i++) r[i].v[OBS_U] = -5.0 * i;
    /* The batch overlaps step 30 too: a duplicate replaces the row. */
    r[2].v[OBS_U] = 123.0;
    cr_assert_eq(store_obs_insert(s, id, r + 2, 4, &e), 0);

    collect c = {0};
    cr_assert_eq(store_obs_each(s, id, -1, 0, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 6);
    for (int i = 0; i < 6; i++) cr_assert_eq(c.r[i].step, (i + 1) * 10, "no gaps, no duplicates");
    cr_assert_eq(c.r[2].v[OBS_U], 123.0);
    cr_assert_eq(c.r[5].v[OBS_U], -25.0);
    store_close(s);
}

Test(store, observables_of_missing_job_refused)
{
    store *s = open_ok();
    bz_err e = {0};
    obs_record r;
    fill_obs(&r, 1);
    cr_assert_eq(store_obs_insert(s, 31337, &r, 1, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "store: insert observables:"), "%s", e.msg);
    store_close(s);
}

/* ---- batched sweeps ---- */

Test(store, batched_sweep_claimed_whole_through_its_parent)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t b[3], u[2];
    int64_t bp = add_batched(s, 3, b);
    int64_t up = add_sweep_spec(s, 2, u, "{\"sampler\":{\"method\":\"pl\"},\"batched\":false}");
    int64_t a = add_job(s, "a", 0);
    /* Even outranking everything else, the chains of a batched sweep are never claimed alone. */
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE jobs SET priority = 9 WHERE parent_id = %lld", (long long)bp);
    sql_exec(sql);

    /* The batched parent itself (the oldest job), none of its chains. */
    job_row j;
    cr_assert_eq(store_job_claim(s, "gpu-0", &j, &e), 0, "%s", e.msg);
    cr_assert_eq(j.id, bp, "claimed %lld, want the batched parent %lld", (long long)j.id, (long long)bp);
    cr_assert_eq(j.n_children, 3);
    cr_assert_eq(j.parent_id, 0);
    cr_assert_eq(j.status, JOB_RUNNING);
    cr_assert_gt(j.started_ms, 0);
    cr_assert_str_eq(j.spec_json, BATCHED_SPEC);
    cr_assert_eq(j.steps, 3000, "the claimed parent's row is the refreshed one (steps %lld)", (long long)j.steps);
    const int64_t started = j.started_ms;
    job_row_free(&j);
    /* Every chain runs with it: same worker, same start, not finished. */
    for (int k = 0; k < 3; k++) {
        job_row c = get_job(s, b[k]);
        cr_assert_eq(c.status, JOB_RUNNING, "chain %d is %s", k, job_status_name(c.status));
        cr_assert_eq(c.started_ms, started, "chain %d", k);
        cr_assert_eq(c.finished_ms, 0);
        job_row_free(&c);
    }
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE worker = 'gpu-0' AND status = 'running'"), 4);
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE parent_id = %lld AND worker = 'gpu-0'", (long long)bp), 3);
    job_row g = get_job(s, bp); /* refreshed from the chains */
    cr_assert_eq(g.status, JOB_RUNNING);
    cr_assert_eq(g.started_ms, started);
    cr_assert_eq(g.steps, 3000);
    job_row_free(&g);

    /* "batched": false is an ordinary sweep: its chains one by one, never the parent. */
    cr_assert_eq(claim_id(s), u[0]);
    cr_assert_eq(status_of(s, up), JOB_RUNNING);
    cr_assert_eq(status_of(s, u[1]), JOB_QUEUED);
    cr_assert_eq(claim_id(s), u[1]);
    cr_assert_eq(claim_id(s), a);
    /* Nothing left: the batched chains are not claimable on their own. */
    cr_assert_eq(store_job_claim(s, "gpu-0", &j, &e), BZ_ESTATE);
    cr_assert_str_eq(e.msg, "no queued job");
    int64_t counts[JOB_STATUS_COUNT];
    cr_assert_eq(store_count_by_status(s, counts, &e), 0);
    cr_assert_eq(counts[JOB_RUNNING], 6, "3 batched chains + 2 chains + 1 job, parents not counted");
    cr_assert_eq(counts[JOB_QUEUED], 0);
    store_close(s);

    /* Restart: the chains go back to the queue, the parent with them, and the sweep is claimed
     * again as a whole, keeping its first start time. */
    s = open_ok();
    int64_t n = 0;
    cr_assert_eq(store_requeue_running(s, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 6);
    cr_assert_eq(status_of(s, bp), JOB_QUEUED);
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE parent_id = %lld AND status = 'queued' AND worker IS NULL",
                          (long long)bp),
                 3);
    cr_assert_eq(store_job_claim(s, "gpu-1", &j, &e), 0, "%s", e.msg);
    cr_assert_eq(j.id, bp);
    cr_assert_eq(j.started_ms, started);
    job_row_free(&j);
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE parent_id = %lld AND status = 'running'"
                          " AND worker = 'gpu-1' AND started_ms = %lld",
                          (long long)bp, (long long)started),
                 3);
    cr_assert_eq(claim_id(s), u[0]);
    store_close(s);
}

Test(store, batched_chain_cannot_be_cancelled_alone)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t k[3];
    int64_t p = add_batched(s, 3, k);
    char want[256];
    job_status now;

    /* Queued or running, a chain alone is refused, naming the sweep; nothing changes. */
    cr_assert_eq(store_job_cancel(s, k[1], &now, &e), BZ_ESTATE);
    snprintf(want, sizeof want, "job %lld is a chain of batched sweep %lld, whose chains run as one; cancel job %lld",
             (long long)k[1], (long long)p, (long long)p);
    cr_assert_str_eq(e.msg, want);
    cr_assert_eq(status_of(s, k[1]), JOB_QUEUED);
    cr_assert_eq(status_of(s, p), JOB_QUEUED);
    cr_assert_eq(claim_id(s), p);
    cr_assert_eq(store_job_cancel(s, k[2], &now, &e), BZ_ESTATE);
    snprintf(want, sizeof want, "job %lld is a chain of batched sweep %lld, whose chains run as one; cancel job %lld",
             (long long)k[2], (long long)p, (long long)p);
    cr_assert_str_eq(e.msg, want);
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE cancel_requested = 1"), 0);
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE parent_id = %lld AND status = 'running'", (long long)p), 3);

    /* The sweep as a whole: every chain is asked to stop, the worker then ends the group. */
    cr_assert_eq(store_job_cancel(s, p, &now, &e), 0, "%s", e.msg);
    cr_assert_eq(now, JOB_RUNNING);
    for (int i = 0; i < 3; i++) {
        bool yes = false;
        cr_assert_eq(store_job_cancel_requested(s, k[i], &yes, &e), 0);
        cr_assert(yes, "chain %d", i);
        cr_assert_eq(status_of(s, k[i]), JOB_RUNNING);
    }
    cr_assert_eq(store_group_finish(s, p, JOB_CANCELLED, NULL, &e), 0, "%s", e.msg);
    for (int i = 0; i < 3; i++) cr_assert_eq(status_of(s, k[i]), JOB_CANCELLED);
    cr_assert_eq(status_of(s, p), JOB_CANCELLED);
    /* A chain already over gets the ordinary refusal. */
    cr_assert_eq(store_job_cancel(s, k[0], &now, &e), BZ_ESTATE);
    snprintf(want, sizeof want, "job %lld is already cancelled", (long long)k[0]);
    cr_assert_str_eq(e.msg, want);

    /* A queued batched sweep is cancelled at once, chains and all. */
    int64_t k2[2];
    int64_t p2 = add_batched(s, 2, k2);
    cr_assert_eq(store_job_cancel(s, p2, &now, &e), 0, "%s", e.msg);
    cr_assert_eq(now, JOB_CANCELLED);
    cr_assert_eq(status_of(s, k2[0]), JOB_CANCELLED);
    cr_assert_eq(status_of(s, k2[1]), JOB_CANCELLED);

    /* A chain of an unbatched sweep can still be cancelled alone. */
    int64_t u[2];
    int64_t up = add_sweep_spec(s, 2, u, "{\"sampler\":{\"method\":\"pl\"},\"batched\":false}");
    cr_assert_eq(store_job_cancel(s, u[0], &now, &e), 0, "%s", e.msg);
    cr_assert_eq(now, JOB_CANCELLED);
    cr_assert_eq(status_of(s, u[1]), JOB_QUEUED);
    cr_assert_eq(status_of(s, up), JOB_RUNNING); /* some chains over, some queued */
    store_close(s);
}

Test(store, group_finish_outcome_to_every_chain)
{
    store *s = open_ok();
    bz_err e = {0};
    const char *msg = "chain 2 diverged at step 40: U is NaN; lower r0 or T";

    /* Failed: every chain gets the one message and one finish time; the parent takes the message
     * as it is (no "chain N: " prefix, unlike an unbatched sweep). */
    int64_t k[3];
    int64_t p = add_batched(s, 3, k);
    cr_assert_eq(claim_id(s), p);
    cr_assert_eq(store_group_finish(s, p, JOB_FAILED, msg, &e), 0, "%s", e.msg);
    int64_t finished = 0;
    for (int i = 0; i < 3; i++) {
        job_row c = get_job(s, k[i]);
        cr_assert_eq(c.status, JOB_FAILED, "chain %d is %s", i, job_status_name(c.status));
        cr_assert_str_eq(c.error, msg);
        cr_assert_gt(c.finished_ms, 0);
        if (i == 0) finished = c.finished_ms;
        cr_assert_eq(c.finished_ms, finished);
        job_row_free(&c);
    }
    job_row g = get_job(s, p);
    cr_assert_eq(g.status, JOB_FAILED);
    cr_assert_str_eq(g.error, msg);
    cr_assert_eq(g.finished_ms, finished);
    job_row_free(&g);
    /* Only unfinished chains take an outcome: a second one changes nothing. */
    cr_assert_eq(store_group_finish(s, p, JOB_SUCCEEDED, NULL, &e), 0, "%s", e.msg);
    char cond[1024];
    snprintf(cond, sizeof cond, "status = 'failed' AND error = '%s' AND finished_ms = %lld", msg, (long long)finished);
    cr_assert_eq(group_rows(p, cond), 4);

    /* Succeeded: no error text anywhere. */
    int64_t k2[2];
    int64_t p2 = add_batched(s, 2, k2);
    cr_assert_eq(claim_id(s), p2);
    cr_assert_eq(store_group_finish(s, p2, JOB_SUCCEEDED, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(group_rows(p2, "status = 'succeeded' AND error = '' AND finished_ms > 0"), 3);

    /* Queued (a shutdown): every chain back in the queue with no worker and no finish time, the
     * parent queued, and the sweep claimed again whole with its first start time. */
    int64_t k3[3];
    int64_t p3 = add_batched(s, 3, k3);
    job_row j;
    cr_assert_eq(store_job_claim(s, "gpu-0", &j, &e), 0, "%s", e.msg);
    cr_assert_eq(j.id, p3);
    const int64_t started = j.started_ms;
    job_row_free(&j);
    cr_assert_eq(store_group_finish(s, p3, JOB_QUEUED, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE parent_id = %lld AND status = 'queued' AND worker IS NULL"
                          " AND finished_ms = 0",
                          (long long)p3),
                 3);
    g = get_job(s, p3);
    cr_assert_eq(g.status, JOB_QUEUED);
    cr_assert_eq(g.finished_ms, 0);
    cr_assert_eq(g.started_ms, started);
    job_row_free(&g);
    cr_assert_eq(store_job_claim(s, "gpu-0", &j, &e), 0, "%s", e.msg);
    cr_assert_eq(j.id, p3);
    cr_assert_eq(j.started_ms, started);
    job_row_free(&j);
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE parent_id = %lld AND status = 'running'", (long long)p3), 3);

    /* Running is not an outcome: refused, nothing changes. */
    cr_assert_eq(store_group_finish(s, p3, JOB_RUNNING, NULL, &e), BZ_EINVAL);
    cr_assert_str_eq(e.msg, "store: finish a batched sweep: running is not a queued or final status");
    cr_assert_eq(group_rows(p3, "status = 'running'"), 4);
    store_close(s);
}

Test(store, group_finish_is_one_transaction)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t k[3];
    int64_t p = add_batched(s, 3, k);
    cr_assert_eq(claim_id(s), p);
    /* The parent's refresh (the last write of the transaction) fails: the chains' outcome must go too. */
    sql_exec("CREATE TRIGGER no_failed_parent BEFORE UPDATE OF status ON jobs"
             " WHEN NEW.n_children > 0 AND NEW.status = 'failed' BEGIN SELECT RAISE(ABORT, 'parent stays'); END");
    cr_assert_eq(store_group_finish(s, p, JOB_FAILED, "boom", &e), BZ_EINVAL);
    cr_assert_str_eq(e.msg, "store: refresh parent: parent stays");
    cr_assert_eq(group_rows(p, "status = 'running' AND finished_ms = 0 AND error = ''"), 4,
                 "a half-finished group was committed");
    sql_exec("DROP TRIGGER no_failed_parent");
    cr_assert_eq(store_group_finish(s, p, JOB_FAILED, "boom", &e), 0, "%s", e.msg);
    cr_assert_eq(group_rows(p, "status = 'failed' AND error = 'boom'"), 4);
    store_close(s);
}

Test(store, group_progress_chains_and_parent)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t k[3];
    int64_t p = add_batched(s, 3, k);
    cr_assert_eq(claim_id(s), p);

    int64_t steps[3] = {100, 250, 400};
    double sps[3] = {10.0, 25.5, 40.25};
    cr_assert_eq(store_group_progress(s, k, steps, sps, 3, &e), 0, "%s", e.msg);
    for (int i = 0; i < 3; i++) {
        job_row c = get_job(s, k[i]);
        cr_assert_eq(c.step, steps[i], "chain %d", i);
        cr_assert_eq(c.steps_per_s, sps[i], "chain %d", i);
        job_row_free(&c);
    }
    job_row g = get_job(s, p);
    cr_assert_eq(g.step, 750, "parent step %lld, the chains' sum is 750", (long long)g.step);
    cr_assert_eq(g.steps, 3000);
    job_row_free(&g);

    int64_t later[3] = {200, 300, 500};
    cr_assert_eq(store_group_progress(s, k, later, sps, 3, &e), 0, "%s", e.msg);
    g = get_job(s, p);
    cr_assert_eq(g.step, 1000);
    job_row_free(&g);
    cr_assert_eq(store_group_progress(s, k, steps, sps, 0, &e), 0); /* no chains: nothing */
    cr_assert_eq(sql_intf("SELECT step FROM jobs WHERE id = %lld", (long long)p), 1000);

    /* A missing job in the middle: refused, and the chains before it are rolled back too. */
    int64_t bad[3] = {k[0], 424242, k[2]};
    int64_t far[3] = {900, 900, 900};
    cr_assert_eq(store_group_progress(s, bad, far, sps, 3, &e), BZ_EINVAL);
    cr_assert_str_eq(e.msg, "no job 424242");
    cr_assert_eq(sql_intf("SELECT step FROM jobs WHERE id = %lld", (long long)k[0]), 200);
    cr_assert_eq(sql_intf("SELECT step FROM jobs WHERE id = %lld", (long long)k[2]), 500);
    cr_assert_eq(sql_intf("SELECT step FROM jobs WHERE id = %lld", (long long)p), 1000);
    store_close(s);
}

/* A record of chain c at step: T of the chain, U = 10 step + c (says where it came from). */
static void chain_obs(obs_record *r, int64_t step, int32_t c)
{
    fill_obs(r, step);
    r->chain = c;
    r->T = 1e-4 * (c + 1);
    r->v[OBS_U] = 10.0 * (double)step + c;
}

Test(store, obs_insert_chains_routes_rounds)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t k[3];
    add_batched(s, 3, k);
    /* Two rounds in one call, the chains out of order in each. */
    const int order[6][2] = {{10, 2}, {10, 0}, {10, 1}, {20, 1}, {20, 2}, {20, 0}};
    obs_record r[6];
    for (int i = 0; i < 6; i++) chain_obs(&r[i], order[i][0], order[i][1]);
    cr_assert_eq(store_obs_insert_chains(s, k, 3, r, 6, &e), 0, "%s", e.msg);
    for (int c = 0; c < 3; c++) {
        collect got = {0};
        cr_assert_eq(store_obs_each(s, k[c], -1, 0, collect_fn, &got, &e), 0, "%s", e.msg);
        cr_assert_eq(got.n, 2, "chain %d has %d records", c, got.n);
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(got.r[i].step, 10 * (i + 1));
            cr_assert_eq(got.r[i].chain, c);
            cr_assert_eq(got.r[i].T, 1e-4 * (c + 1));
            cr_assert_eq(got.r[i].v[OBS_U], 10.0 * (double)(10 * (i + 1)) + c);
            cr_assert_eq(got.r[i].v[OBS_LOSS], (double)(10 * (i + 1)) + 0.01 * OBS_LOSS);
        }
    }
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables o JOIN jobs j ON j.id = o.job_id WHERE o.chain != j.chain"),
                 0);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables"), 6);

    /* A replayed round (resume) replaces; nothing is an empty call. */
    chain_obs(&r[0], 20, 1);
    r[0].v[OBS_U] = -1.0;
    cr_assert_eq(store_obs_insert_chains(s, k, 3, r, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(sql_intf("SELECT U FROM observables WHERE job_id = %lld AND step = 20", (long long)k[1]), -1);
    cr_assert_eq(store_obs_insert_chains(s, k, 3, r, 0, &e), 0);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables"), 6);

    /* A chain outside 0..2 (here after two good records): refused, nothing of the call stored. */
    for (int i = 0; i < 3; i++) chain_obs(&r[i], 30, i);
    r[2].chain = 3;
    cr_assert_eq(store_obs_insert_chains(s, k, 3, r, 3, &e), BZ_EINVAL);
    cr_assert_str_eq(e.msg, "store: a record of chain 3, but the group has chains 0..2");
    r[2].chain = 2;
    r[0].chain = -1;
    cr_assert_eq(store_obs_insert_chains(s, k, 3, r, 3, &e), BZ_EINVAL);
    cr_assert_str_eq(e.msg, "store: a record of chain -1, but the group has chains 0..2");
    /* A chain mapped to a job that does not exist: the foreign key refuses the round. */
    r[0].chain = 0;
    int64_t gone[3] = {k[0], k[1], 987654};
    cr_assert_eq(store_obs_insert_chains(s, gone, 3, r, 3, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "store: insert observables:") && strstr(e.msg, "FOREIGN KEY"), "%s", e.msg);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables WHERE step = 30"), 0);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables"), 6);
    store_close(s);
}

/* Records i of c, from, from + 1, ...: step 10 (i / 3 + 1), chain i % 3 (a group of K = 3 read whole). */
static void assert_group_page(const collect *c, int from, int n)
{
    cr_assert_eq(c->n, n, "page of %d records, want %d", c->n, n);
    for (int i = 0; i < n; i++) {
        int64_t step = 10 * ((from + i) / 3 + 1);
        int32_t chain = (from + i) % 3;
        cr_assert_eq(c->r[i].step, step, "record %d: step %lld, want %lld", from + i, (long long)c->r[i].step,
                     (long long)step);
        cr_assert_eq(c->r[i].chain, chain, "record %d: chain %d, want %d", from + i, c->r[i].chain, chain);
        cr_assert_eq(c->r[i].T, 1e-4 * (chain + 1));
        cr_assert_eq(c->r[i].v[OBS_U], 10.0 * (double)step + chain, "record %d is not the group's own", from + i);
    }
}

Test(store, obs_each_group_order_and_whole_step_pages)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t k[3], o[3];
    int64_t p = add_batched(s, 3, k);
    int64_t other = add_batched(s, 3, o);
    int64_t single = add_job(s, "single", 0);
    /* Steps 10..40 of 3 chains, rounds and chains within them out of order, over two calls. */
    const int steps[4] = {30, 10, 40, 20}, chains[3] = {1, 2, 0};
    obs_record r[12];
    for (int i = 0; i < 12; i++) chain_obs(&r[i], steps[i / 3], chains[i % 3]);
    cr_assert_eq(store_obs_insert_chains(s, k, 3, r, 6, &e), 0, "%s", e.msg);
    cr_assert_eq(store_obs_insert_chains(s, k, 3, r + 6, 6, &e), 0, "%s", e.msg);
    /* Neighbours at the same steps, which must not leak in. */
    for (int i = 0; i < 12; i++) r[i].v[OBS_U] = -7.0;
    cr_assert_eq(store_obs_insert_chains(s, o, 3, r, 12, &e), 0, "%s", e.msg);
    for (int i = 0; i < 4; i++) {
        chain_obs(&r[i], 10 * (i + 1), 0);
        r[i].v[OBS_U] = -7.0;
    }
    cr_assert_eq(store_obs_insert(s, single, r, 4, &e), 0, "%s", e.msg);

    collect c = {0};
    cr_assert_eq(store_obs_each_group(s, p, -1, 0, collect_fn, &c, &e), 0, "%s", e.msg);
    assert_group_page(&c, 0, 12);

    /* limit 4 falls on (20, chain 0): the page runs to the end of step 20 (6 records), and
     * since = 20 pages on with the rest, without a gap or a repeat. */
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, p, -1, 4, collect_fn, &c, &e), 0, "%s", e.msg);
    assert_group_page(&c, 0, 6);
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, p, 20, 4, collect_fn, &c, &e), 0, "%s", e.msg);
    assert_group_page(&c, 6, 6);
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, p, 40, 4, collect_fn, &c, &e), 0, "%s", e.msg);
    cr_assert_eq(c.n, 0);

    /* limit at a step's end: exact; limit 1: the most over, K - 1 = 2; limit 7 on (30, 0): 9. */
    const int limits[5][2] = {{3, 3}, {1, 3}, {7, 9}, {12, 12}, {100, 12}};
    for (int i = 0; i < 5; i++) {
        memset(&c, 0, sizeof c);
        cr_assert_eq(store_obs_each_group(s, p, -1, limits[i][0], collect_fn, &c, &e), 0, "%s", e.msg);
        cr_assert_eq(c.n, limits[i][1], "limit %d: %d records, want %d", limits[i][0], c.n, limits[i][1]);
        assert_group_page(&c, 0, limits[i][1]);
    }
    /* since between steps; a callback that stops early. */
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, p, 25, 0, collect_fn, &c, &e), 0);
    assert_group_page(&c, 6, 6);
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    cr_assert_eq(store_obs_each_group(s, p, -1, 0, collect_fn, &c, &e), 0);
    assert_group_page(&c, 0, 2);
    /* The neighbour reads its own 12. */
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, other, -1, 0, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 12);
    for (int i = 0; i < 12; i++) cr_assert_eq(c.r[i].v[OBS_U], -7.0);
    /* Not a sweep, or no such job: no records, no error. */
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, single, -1, 0, collect_fn, &c, &e), 0);
    cr_assert_eq(store_obs_each_group(s, 999999, -1, 0, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 0);

    /* Chains at different steps (an unbatched sweep): 0 at 10, 20, 30; 1 at 10; 2 none. The
     * page still ends at a whole step, with fewer than K - 1 extra. */
    int64_t u[3];
    int64_t up = add_sweep(s, 3, u);
    obs_record ur[3];
    for (int i = 0; i < 3; i++) chain_obs(&ur[i], 10 * (i + 1), 0);
    cr_assert_eq(store_obs_insert(s, u[0], ur, 3, &e), 0);
    chain_obs(&ur[0], 10, 1);
    cr_assert_eq(store_obs_insert(s, u[1], ur, 1, &e), 0);
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, up, -1, 1, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 2);
    cr_assert(c.r[0].step == 10 && c.r[0].chain == 0 && c.r[1].step == 10 && c.r[1].chain == 1);
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, up, 10, 1, collect_fn, &c, &e), 0);
    cr_assert_eq(c.n, 1);
    cr_assert(c.r[0].step == 20 && c.r[0].chain == 0);

    /* A failing read is reported, not taken for an empty page. */
    sql_exec("ALTER TABLE observables RENAME TO observables_gone");
    memset(&c, 0, sizeof c);
    cr_assert_eq(store_obs_each_group(s, p, -1, 0, collect_fn, &c, &e), BZ_EIO);
    cr_assert(strstr(e.msg, "store: ") && strstr(e.msg, "no such table: observables"), "%s", e.msg);
    cr_assert_eq(c.n, 0);
    store_close(s);
}

/* ---- checkpoints and samples ---- */

Test(store, checkpoints_add_list_get_remove)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t a = add_job(s, "a", 0);
    int64_t b = add_job(s, "b", 0);
    uint64_t big = 0xfedcba9876543210ull; /* above INT64_MAX */
    int64_t seq = 0;
    for (int i = 1; i <= 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "/data/jobs/%lld/ckpt-%d.bzc", (long long)a, i);
        cr_assert_eq(store_ckpt_add(s, a, i * 1000, path, 4096 * i, big + (uint64_t)i, &seq, &e), 0, "%s", e.msg);
        cr_assert_eq(seq, i);
    }
    cr_assert_eq(store_ckpt_add(s, b, 500, "/b/1", 1, 7, &seq, &e), 0);
    cr_assert_eq(seq, 1); /* numbering is per job */

    ckpt_row *rows;
    int64_t n;
    cr_assert_eq(store_ckpt_list(s, a, &rows, &n, &e), 0);
    cr_assert_eq(n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rows[i].job, a);
        cr_assert_eq(rows[i].seq, i + 1);
        cr_assert_eq(rows[i].step, (i + 1) * 1000);
        cr_assert_eq(rows[i].size, 4096 * (i + 1));
        cr_assert_eq(rows[i].checksum, big + (uint64_t)(i + 1));
        cr_assert_gt(rows[i].created_ms, 0);
    }
    free(rows);

    ckpt_row c;
    cr_assert_eq(store_ckpt_get(s, a, 2, &c, &e), 0);
    cr_assert_eq(c.step, 2000);
    char want[64];
    snprintf(want, sizeof want, "/data/jobs/%lld/ckpt-2.bzc", (long long)a);
    cr_assert_str_eq(c.path, want);

    /* Keep the newest: removing the oldest does not reuse numbers. */
    cr_assert_eq(store_ckpt_remove(s, a, 1, &e), 0);
    cr_assert_eq(store_ckpt_get(s, a, 1, &c, &e), BZ_EINVAL);
    cr_assert_eq(store_ckpt_remove(s, a, 1, &e), BZ_EINVAL);
    cr_assert_eq(store_ckpt_add(s, a, 4000, "/x", 1, 1, &seq, &e), 0);
    cr_assert_eq(seq, 4);
    cr_assert_eq(store_ckpt_list(s, a, &rows, &n, &e), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(rows[0].seq, 2);
    cr_assert_eq(rows[2].seq, 4);
    free(rows);
    cr_assert_eq(store_ckpt_list(s, 999, &rows, &n, &e), 0);
    cr_assert_eq(n, 0);
    free(rows);
    store_close(s);
}

Test(store, samples_set_get)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t a = add_job(s, "a", 0);
    samples_row r;
    cr_assert_eq(store_samples_get(s, a, &r, &e), BZ_EINVAL);
    samples_row w = {.job = a, .count = 3, .size = 3000, .last_step = 6000};
    snprintf(w.path, sizeof w.path, "/data/jobs/%lld/samples.npy", (long long)a);
    cr_assert_eq(store_samples_set(s, &w, &e), 0, "%s", e.msg);
    cr_assert_eq(store_samples_get(s, a, &r, &e), 0);
    cr_assert_eq(r.job, a);
    cr_assert_eq(r.count, 3);
    cr_assert_eq(r.size, 3000);
    cr_assert_eq(r.last_step, 6000);
    cr_assert_str_eq(r.path, w.path);
    w.count = 4;
    w.size = 4000;
    w.last_step = 8000;
    cr_assert_eq(store_samples_set(s, &w, &e), 0);
    cr_assert_eq(store_samples_get(s, a, &r, &e), 0);
    cr_assert_eq(r.count, 4);
    cr_assert_eq(r.last_step, 8000);
    store_close(s);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM samples"), 1);
}

typedef struct shared_arg {
    store *s;
    int64_t job;
    int t;
    int err;
    char msg[512];
} shared_arg;

enum { SHARED_THREADS = 4, SHARED_PER = 50 };

static void *shared_thread(void *p)
{
    shared_arg *a = p;
    bz_err e = {0};
    for (int i = 0; i < SHARED_PER && !a->err; i++) {
        obs_record r;
        fill_obs(&r, (int64_t)a->t * 1000 + i);
        int64_t last;
        job_row j;
        int rc = store_obs_insert(a->s, a->job, &r, 1, &e);
        if (!rc) rc = store_job_progress(a->s, a->job, i, 1.0, &e);
        if (!rc) rc = store_obs_last_step(a->s, a->job, &last, &e);
        if (!rc) rc = store_job_get(a->s, a->job, &j, &e);
        if (!rc) job_row_free(&j);
        if (rc) {
            a->err = rc;
            snprintf(a->msg, sizeof a->msg, "%s", e.msg);
        }
    }
    return NULL;
}

Test(store, shared_handle_many_threads)
{
    /* One handle used by several threads at once (the HTTP side): the mutex serialises them. */
    store *s = open_ok();
    int64_t id = add_job(s, "a", 0);
    shared_arg args[SHARED_THREADS];
    pthread_t th[SHARED_THREADS];
    memset(args, 0, sizeof args);
    for (int t = 0; t < SHARED_THREADS; t++) {
        args[t].s = s;
        args[t].job = id;
        args[t].t = t;
        cr_assert_eq(pthread_create(&th[t], NULL, shared_thread, &args[t]), 0);
    }
    for (int t = 0; t < SHARED_THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < SHARED_THREADS; t++) cr_assert_eq(args[t].err, 0, "thread %d: %s", t, args[t].msg);
    store_close(s);
    cr_assert_eq(sql_int("SELECT COUNT(*) FROM observables"), SHARED_THREADS * SHARED_PER);
}

/* store_group_finish is for batched sweeps only: anything else is refused, untouched. */
Test(store, group_finish_refuses_what_is_not_a_batched_sweep)
{
    store *s = open_ok();
    bz_err e = {0};
    int64_t u[2];
    int64_t up = add_sweep_spec(s, 2, u, "{\"sampler\":{\"method\":\"pl\"},\"batched\":false}");
    int64_t a = add_job(s, "a", 0);
    cr_assert_eq(store_group_finish(s, 424242, JOB_SUCCEEDED, NULL, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "no job 424242"), "%s", e.msg);
    const int64_t not_groups[] = {up, a};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(store_group_finish(s, not_groups[i], JOB_SUCCEEDED, NULL, &e), BZ_EINVAL);
        cr_assert(strstr(e.msg, "is not a batched sweep"), "%s", e.msg);
    }
    cr_assert_eq(sql_intf("SELECT COUNT(*) FROM jobs WHERE status = 'queued'"), 4, "nothing may change");
    store_close(s);
}
