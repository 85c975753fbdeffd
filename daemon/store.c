/* store.c: boltzd's SQLite store (store.h, DESIGN.md "Storage"): open and migrate the database,
 * the job queue (insert, atomic claim, cancel, delete, recovery), observables, checkpoint and
 * sample rows, users and API-token rows (auth.c hashes; only salts and hashes are stored), and an
 * online backup of the whole database (SQLite backup API).
 *
 * Durability: WAL with synchronous=NORMAL. A transaction is in the WAL (the OS page cache) when
 * COMMIT returns, so killing the daemon (kill -9, a crash) loses nothing committed. Only an OS
 * crash or power loss can drop the last few commits, and then the database is still consistent and
 * a prefix of its history (the WAL is replayed in order up to the last valid frame): a worker
 * resumes from the last checkpoint row that survived and deletes and recomputes the observables
 * after it, so the series still has no gaps or duplicates. FULL would fsync on every commit for
 * no gain in that case.
 *
 * Concurrency: one handle = one connection (SQLITE_OPEN_FULLMUTEX) with its own mutex around every
 * call. Writes that read before they write run in BEGIN IMMEDIATE, so several handles, threads or
 * processes on one file never interleave (busy_timeout makes the others wait). Every statement is
 * prepared once per handle and cached; the observable column lists are built from obs_names. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUSY_TIMEOUT_MS 5000
#define MAX_MIGRATIONS 1000

/* ---- statements (prepared lazily, cached in the handle) ---- */

/* 1 when the spec_json of the jobs row aliased t says "batched": true (a batched sweep parent), else 0
 * (also for text that is not JSON, so a stray row never makes a query fail). */
#define BATCHED(t)                                                                                     \
    "(CASE WHEN json_valid(" t ".spec_json) THEN COALESCE(json_extract(" t ".spec_json, '$.batched'), 0)" \
    " ELSE 0 END)"

#define JOB_COLS                                                                                       \
    "id, parent_id, n_children, chain, name, owner, method, T, status, priority, created_ms, "        \
    "started_ms, finished_ms, step, steps, steps_per_s, backend, error, cancel_requested, spec_json"

enum stmt_id {
    ST_JOB_INSERT, ST_JOB_GET, ST_JOB_LIST, ST_JOB_STATE, ST_CLAIM_PICK, ST_CLAIM_MARK,
    ST_SET_STATUS, ST_SET_BACKEND, ST_PROGRESS, ST_PARENT_STEP, ST_CANCEL_ONE, ST_CANCEL_CHILDREN,
    ST_CANCEL_FLAG_RUNNING, ST_CANCEL_REQ, ST_CHILDREN_UNFINISHED, ST_JOB_DELETE, ST_REQUEUE,
    ST_OPEN_PARENTS, ST_COUNT_STATUS, ST_PARENT_AGG, ST_PARENT_FAILED, ST_PARENT_UPDATE,
    ST_OBS_INSERT, ST_OBS_SELECT, ST_OBS_DELETE_AFTER, ST_OBS_LAST,
    ST_CKPT_NEXT, ST_CKPT_ADD, ST_CKPT_LIST, ST_CKPT_GET, ST_CKPT_REMOVE,
    ST_SAMPLES_SET, ST_SAMPLES_GET, ST_VERSION,
    ST_USER_ADD, ST_USER_GET, ST_USER_LIST, ST_TOKEN_ADD, ST_TOKEN_GET, ST_TOKEN_LIST, ST_TOKEN_REVOKE,
    ST_JOBS_ACTIVE, ST_CKPT_ALL,
    ST_CLAIM_CHILDREN, ST_GROUP_FINISH, ST_IS_BATCHED, ST_OBS_SELECT_GROUP,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_JOB_INSERT] =
        "INSERT INTO jobs (parent_id, n_children, chain, name, owner, method, T, status, priority, "
        "created_ms, started_ms, finished_ms, step, steps, steps_per_s, backend, error, cancel_requested, "
        "spec_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    [ST_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [ST_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR owner = ?2)"
                    " AND (?3 < 0 OR (?3 = 0 AND parent_id IS NULL) OR parent_id = ?3)"
                    " ORDER BY created_ms DESC, id DESC LIMIT ?4 OFFSET ?5",
    [ST_JOB_STATE] = "SELECT status, n_children, COALESCE(parent_id, 0) FROM jobs WHERE id = ?1",
    /* A single job, a chain of an unbatched sweep, or a whole batched sweep (its parent). */
    [ST_CLAIM_PICK] = "SELECT j.id FROM jobs j WHERE j.status = 'queued' AND CASE WHEN j.n_children > 0"
                      " THEN " BATCHED("j") " ELSE NOT EXISTS (SELECT 1 FROM jobs p WHERE p.id = j.parent_id"
                      " AND " BATCHED("p") ") END ORDER BY j.priority DESC, j.created_ms, j.id LIMIT 1",
    [ST_CLAIM_MARK] = "UPDATE jobs SET status = 'running', worker = ?3, finished_ms = 0,"
                      " started_ms = CASE WHEN started_ms > 0 THEN started_ms ELSE ?2 END WHERE id = ?1",
    [ST_SET_STATUS] = "UPDATE jobs SET status = ?2, error = ?3, finished_ms = ?4,"
                      " worker = CASE WHEN ?2 = 'queued' THEN NULL ELSE worker END WHERE id = ?1",
    [ST_SET_BACKEND] = "UPDATE jobs SET backend = ?2 WHERE id = ?1",
    [ST_PROGRESS] = "UPDATE jobs SET step = ?2, steps_per_s = ?3 WHERE id = ?1",
    [ST_PARENT_STEP] = "UPDATE jobs SET step = (SELECT COALESCE(SUM(c.step), 0) FROM jobs c WHERE c.parent_id = jobs.id)"
                       " WHERE id = (SELECT parent_id FROM jobs WHERE id = ?1)",
    [ST_CANCEL_ONE] = "UPDATE jobs SET status = 'cancelled', finished_ms = ?2, cancel_requested = 1"
                      " WHERE id = ?1 AND status = 'queued'",
    [ST_CANCEL_CHILDREN] = "UPDATE jobs SET status = 'cancelled', finished_ms = ?2, cancel_requested = 1"
                           " WHERE parent_id = ?1 AND status = 'queued'",
    [ST_CANCEL_FLAG_RUNNING] = "UPDATE jobs SET cancel_requested = 1 WHERE (id = ?1 OR parent_id = ?1)"
                               " AND status IN ('queued', 'running')",
    [ST_CANCEL_REQ] = "SELECT cancel_requested FROM jobs WHERE id = ?1",
    [ST_CHILDREN_UNFINISHED] = "SELECT COUNT(*) FROM jobs WHERE parent_id = ?1 AND status IN ('queued', 'running')",
    [ST_JOB_DELETE] = "DELETE FROM jobs WHERE id = ?1",
    [ST_REQUEUE] = "UPDATE jobs SET status = 'queued', worker = NULL WHERE status = 'running' AND n_children = 0",
    [ST_OPEN_PARENTS] = "SELECT id FROM jobs WHERE n_children > 0 AND status IN ('queued', 'running')",
    [ST_COUNT_STATUS] = "SELECT status, COUNT(*) FROM jobs WHERE n_children = 0 GROUP BY status",
    [ST_PARENT_AGG] = "SELECT COUNT(*), TOTAL(status = 'queued'), TOTAL(status = 'running'),"
                      " TOTAL(status = 'failed'), TOTAL(status = 'cancelled'),"
                      " COALESCE(MIN(NULLIF(started_ms, 0)), 0), COALESCE(MAX(finished_ms), 0),"
                      " COALESCE(SUM(step), 0), COALESCE(SUM(steps), 0) FROM jobs WHERE parent_id = ?1",
    [ST_PARENT_FAILED] = "SELECT c.chain, c.error, " BATCHED("p") " FROM jobs c JOIN jobs p ON p.id = c.parent_id"
                         " WHERE c.parent_id = ?1 AND c.status = 'failed' ORDER BY c.chain, c.id LIMIT 1",
    [ST_PARENT_UPDATE] = "UPDATE jobs SET status = ?2, started_ms = ?3, finished_ms = ?4, error = ?5,"
                         " step = ?6, steps = ?7 WHERE id = ?1",
    [ST_OBS_INSERT] = NULL, /* built from obs_names in store_open */
    [ST_OBS_SELECT] = NULL,
    [ST_OBS_DELETE_AFTER] = "DELETE FROM observables WHERE job_id = ?1 AND step > ?2",
    [ST_OBS_LAST] = "SELECT MAX(step) FROM observables WHERE job_id = ?1",
    [ST_CKPT_NEXT] = "SELECT COALESCE(MAX(seq), 0) + 1 FROM checkpoints WHERE job_id = ?1",
    [ST_CKPT_ADD] = "INSERT INTO checkpoints (job_id, seq, step, path, size, checksum, created_ms)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_CKPT_LIST] = "SELECT job_id, seq, step, path, size, checksum, created_ms FROM checkpoints"
                     " WHERE job_id = ?1 ORDER BY seq",
    [ST_CKPT_GET] = "SELECT job_id, seq, step, path, size, checksum, created_ms FROM checkpoints"
                    " WHERE job_id = ?1 AND seq = ?2",
    [ST_CKPT_REMOVE] = "DELETE FROM checkpoints WHERE job_id = ?1 AND seq = ?2",
    [ST_SAMPLES_SET] = "INSERT INTO samples (job_id, path, count, size, last_step) VALUES (?1, ?2, ?3, ?4, ?5)"
                       " ON CONFLICT (job_id) DO UPDATE SET path = excluded.path, count = excluded.count,"
                       " size = excluded.size, last_step = excluded.last_step",
    [ST_SAMPLES_GET] = "SELECT job_id, path, count, size, last_step FROM samples WHERE job_id = ?1",
    [ST_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_version",
    [ST_USER_ADD] = "INSERT INTO users (name, is_admin, created_ms) VALUES (?1, ?2, ?3)",
    [ST_USER_GET] = "SELECT id, name, is_admin, created_ms FROM users WHERE name = ?1",
    [ST_USER_LIST] = "SELECT id, name, is_admin, created_ms FROM users ORDER BY id",
    [ST_TOKEN_ADD] = "INSERT INTO tokens (id, user_id, salt, hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_TOKEN_GET] = "SELECT t.id, t.user_id, t.salt, t.hash, t.created_ms, t.revoked_ms, u.name, u.is_admin"
                     " FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
    [ST_TOKEN_LIST] = "SELECT t.id, t.user_id, t.salt, t.hash, t.created_ms, t.revoked_ms, u.name, u.is_admin"
                      " FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.user_id = ?1"
                      " ORDER BY t.created_ms, t.id",
    [ST_TOKEN_REVOKE] = "UPDATE tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms = 0",
    [ST_JOBS_ACTIVE] = "SELECT COUNT(*) FROM jobs WHERE owner = ?1 AND n_children = 0"
                       " AND status IN ('queued', 'running')",
    [ST_CKPT_ALL] = "SELECT job_id, seq, step, path, size, checksum, created_ms FROM checkpoints ORDER BY job_id, seq",
    [ST_CLAIM_CHILDREN] = "UPDATE jobs SET status = 'running', worker = ?3, finished_ms = 0,"
                          " started_ms = CASE WHEN started_ms > 0 THEN started_ms ELSE ?2 END"
                          " WHERE parent_id = ?1 AND status = 'queued'",
    [ST_GROUP_FINISH] = "UPDATE jobs SET status = ?2, error = ?3, finished_ms = ?4,"
                        " worker = CASE WHEN ?2 = 'queued' THEN NULL ELSE worker END"
                        " WHERE parent_id = ?1 AND status IN ('queued', 'running')",
    [ST_IS_BATCHED] = "SELECT " BATCHED("jobs") " FROM jobs WHERE id = ?1",
    [ST_OBS_SELECT_GROUP] = NULL, /* built from obs_names in store_open */
};

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *st[ST_COUNT];
    char *obs_insert_sql;
    char *obs_select_sql;
    char *obs_select_group_sql;
};

static const char *const status_names[JOB_STATUS_COUNT] = {"queued", "running", "succeeded", "failed", "cancelled"};

const char *job_status_name(job_status s)
{
    return (s >= 0 && s < JOB_STATUS_COUNT) ? status_names[s] : "unknown";
}

int job_status_parse(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < JOB_STATUS_COUNT; i++)
        if (!strcmp(status_names[i], name)) return i;
    return -1;
}

void job_row_free(job_row *j)
{
    if (!j) return;
    free(j->spec_json);
    j->spec_json = NULL;
}

int64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- small helpers ---- */

/* Map an SQLite result code onto a BZ_E* code: constraint violations are the caller's fault. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT: return BZ_EINVAL;
    case SQLITE_NOMEM: return BZ_ENOMEM;
    default: return BZ_EIO;
    }
}

static int fail_db(store *s, bz_err *e, int rc, const char *what)
{
    return bz_fail(e, map_rc(rc), NULL, "store: %s: %s", what, s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

static int no_job(bz_err *e, int64_t id) { return bz_fail(e, BZ_EINVAL, NULL, "no job %lld", (long long)id); }

/* Cached statement id, reset and with bindings cleared. */
static int stmt(store *s, enum stmt_id id, sqlite3_stmt **out, bz_err *e)
{
    *out = NULL;
    if (!s->st[id]) {
        const char *sql = id == ST_OBS_INSERT         ? s->obs_insert_sql
                          : id == ST_OBS_SELECT       ? s->obs_select_sql
                          : id == ST_OBS_SELECT_GROUP ? s->obs_select_group_sql
                                                      : stmt_sql[id];
        int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[id], NULL);
        if (rc != SQLITE_OK) return fail_db(s, e, rc, "prepare");
    }
    sqlite3_reset(s->st[id]);
    sqlite3_clear_bindings(s->st[id]);
    *out = s->st[id];
    return 0;
}

/* NaN <-> NULL for REAL columns. */
static void bind_real(sqlite3_stmt *q, int i, double v)
{
    if (isnan(v)) sqlite3_bind_null(q, i);
    else sqlite3_bind_double(q, i, v);
}

static double column_real(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

static void bind_text(sqlite3_stmt *q, int i, const char *v)
{
    if (v) sqlite3_bind_text(q, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(q, i);
}

static void column_text(sqlite3_stmt *q, int i, char *buf, size_t len)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    snprintf(buf, len, "%s", t ? (const char *)t : "");
}

/* Run a statement that returns no rows; *changes (if non-NULL) gets the rows it touched. */
static int exec_stmt(store *s, sqlite3_stmt *q, int64_t *changes, const char *what, bz_err *e)
{
    int rc = sqlite3_step(q);
    if (rc != SQLITE_DONE) {
        int r = fail_db(s, e, rc, what);
        sqlite3_reset(q);
        return r;
    }
    if (changes) *changes = sqlite3_changes64(s->db);
    sqlite3_reset(q);
    return 0;
}

static int exec_sql(store *s, const char *sql, const char *what, bz_err *e)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK) return 0;
    int r = bz_fail(e, map_rc(rc), NULL, "store: %s: %s", what, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return r;
}

static int tx_begin(store *s, bz_err *e) { return exec_sql(s, "BEGIN IMMEDIATE", "begin transaction", e); }

/* Commit when rc == 0, else roll back; returns rc or the commit's failure. */
static int tx_end(store *s, int rc, bz_err *e)
{
    if (rc == 0) {
        rc = exec_sql(s, "COMMIT", "commit", e);
        if (rc == 0) return 0;
    }
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void lock(store *s) { pthread_mutex_lock(&s->mu); }
static void unlock(store *s) { pthread_mutex_unlock(&s->mu); }

/* ---- observable SQL, built from obs_names ---- */

/* Append to a malloc'ed string; returns 0 or BZ_ENOMEM (the string is freed then). */
static int str_append(char **str, size_t *len, size_t *cap, const char *a, const char *b)
{
    size_t add = strlen(a) + (b ? strlen(b) : 0);
    if (*len + add + 1 > *cap) {
        size_t ncap = (*cap ? *cap * 2 : 512) + add;
        char *n = realloc(*str, ncap);
        if (!n) {
            free(*str);
            *str = NULL;
            return BZ_ENOMEM;
        }
        *str = n;
        *cap = ncap;
    }
    memcpy(*str + *len, a, strlen(a));
    *len += strlen(a);
    if (b) {
        memcpy(*str + *len, b, strlen(b));
        *len += strlen(b);
    }
    (*str)[*len] = '\0';
    return 0;
}

/* "step, t_wall, T, chain, \"U\", \"loss\", ..." (quoted, as named in obs_names). */
static char *obs_column_list(void)
{
    char *s = NULL;
    size_t len = 0, cap = 0;
    if (str_append(&s, &len, &cap, "step, t_wall, T, chain", NULL)) return NULL;
    for (int i = 0; i < OBS_COUNT; i++) {
        if (str_append(&s, &len, &cap, ", \"", obs_names[i]) || str_append(&s, &len, &cap, "\"", NULL)) return NULL;
    }
    return s;
}

/* The records of every chain of a sweep (?1 the parent) with step > ?2, in (step, chain) order, up to
 * and including the step of the ?3-th such record (1-based; ?3 huge: all): a page never ends
 * inside a step, so paging on with since = the last step skips nothing. */
#define GROUP_OBS_WHERE                                                                                \
    " FROM observables WHERE job_id IN (SELECT id FROM jobs WHERE parent_id = ?1) AND step > ?2"
#define GROUP_OBS_TAIL                                                                                 \
    GROUP_OBS_WHERE " AND step <= COALESCE((SELECT step" GROUP_OBS_WHERE " ORDER BY step LIMIT 1 OFFSET ?3 - 1),"  \
    " 9223372036854775807) ORDER BY step, chain"

static int build_obs_sql(store *s, bz_err *e)
{
    char *cols = obs_column_list();
    char *ins = NULL, *sel = NULL, *grp = NULL;
    size_t il = 0, ic = 0, sl = 0, sc = 0, gl = 0, gc = 0;
    int rc = cols ? 0 : BZ_ENOMEM;
    if (!rc) rc = str_append(&ins, &il, &ic, "INSERT OR REPLACE INTO observables (job_id, ", cols);
    if (!rc) rc = str_append(&ins, &il, &ic, ") VALUES (?1, ?2, ?3, ?4, ?5", NULL);
    for (int i = 0; !rc && i < OBS_COUNT; i++) rc = str_append(&ins, &il, &ic, ", ?", NULL);
    if (!rc) rc = str_append(&ins, &il, &ic, ")", NULL);
    if (!rc) rc = str_append(&sel, &sl, &sc, "SELECT ", cols);
    if (!rc) rc = str_append(&sel, &sl, &sc, " FROM observables WHERE job_id = ?1 AND step > ?2 ORDER BY step LIMIT ?3", NULL);
    if (!rc) rc = str_append(&grp, &gl, &gc, "SELECT ", cols);
    if (!rc) rc = str_append(&grp, &gl, &gc, GROUP_OBS_TAIL, NULL);
    free(cols);
    if (rc) {
        free(ins);
        free(sel);
        free(grp);
        return bz_fail(e, BZ_ENOMEM, NULL, "store: out of memory building the observable statements");
    }
    s->obs_insert_sql = ins;
    s->obs_select_sql = sel;
    s->obs_select_group_sql = grp;
    return 0;
}

/* ---- migrations ---- */

typedef struct migration {
    int version;
    char name[256];
} migration;

/* "NNN_name.sql" -> NNN (> 0), or -1 when the name is not a migration. */
static int migration_number(const char *name)
{
    size_t n = strlen(name), d = 0;
    while (name[d] >= '0' && name[d] <= '9') d++;
    if (d == 0 || d > 6 || name[d] != '_' || n < d + 5 || strcmp(name + n - 4, ".sql")) return -1;
    int v = atoi(name);
    return v > 0 ? v : -1;
}

static int cmp_migration(const void *a, const void *b)
{
    const migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* The migrations in dir, sorted by number; *list malloc'ed. */
static int list_migrations(const char *dir, migration **list, int *count, bz_err *e)
{
    DIR *d = opendir(dir);
    if (!d) return bz_fail(e, BZ_EIO, NULL, "store: schema dir %s: %s", dir, strerror(errno));
    migration *m = malloc(sizeof *m * MAX_MIGRATIONS);
    int n = 0, rc = m ? 0 : bz_fail(e, BZ_ENOMEM, NULL, "store: out of memory listing %s", dir);
    struct dirent *ent;
    while (!rc && (ent = readdir(d))) {
        int v = migration_number(ent->d_name);
        if (v < 0) continue;
        if (n == MAX_MIGRATIONS || strlen(ent->d_name) >= sizeof m[n].name) {
            rc = bz_fail(e, BZ_EINVAL, NULL, "store: schema dir %s: too many migrations or name too long: %s", dir,
                         ent->d_name);
            break;
        }
        m[n].version = v;
        snprintf(m[n].name, sizeof m[n].name, "%s", ent->d_name);
        n++;
    }
    closedir(d);
    if (!rc && n == 0) rc = bz_fail(e, BZ_EIO, NULL, "store: schema dir %s holds no NNN_name.sql migrations", dir);
    if (!rc) qsort(m, (size_t)n, sizeof *m, cmp_migration);
    for (int i = 1; !rc && i < n; i++)
        if (m[i].version == m[i - 1].version)
            rc = bz_fail(e, BZ_EINVAL, NULL, "store: migrations %s and %s have the same number", m[i - 1].name,
                         m[i].name);
    if (rc) {
        free(m);
        return rc;
    }
    *list = m;
    *count = n;
    return 0;
}

static char *read_text_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
                buf[n] = '\0';
            } else {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}

static int applied_version(store *s, int *v, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_VERSION, &q, e);
    if (rc) return rc;
    int r = sqlite3_step(q);
    if (r != SQLITE_ROW) rc = fail_db(s, e, r, "read schema_version");
    else *v = sqlite3_column_int(q, 0);
    sqlite3_reset(q);
    return rc;
}

static int version_applied(store *s, int version, bool *yes, bz_err *e)
{
    sqlite3_stmt *q;
    int r = sqlite3_prepare_v2(s->db, "SELECT 1 FROM schema_version WHERE version = ?1", -1, &q, NULL);
    if (r != SQLITE_OK) return fail_db(s, e, r, "read schema_version");
    sqlite3_bind_int(q, 1, version);
    r = sqlite3_step(q);
    int rc = (r == SQLITE_ROW || r == SQLITE_DONE) ? 0 : fail_db(s, e, r, "read schema_version");
    *yes = r == SQLITE_ROW;
    sqlite3_finalize(q);
    return rc;
}

static int record_version(store *s, const migration *m, bz_err *e)
{
    sqlite3_stmt *q;
    int r = sqlite3_prepare_v2(s->db, "INSERT INTO schema_version (version, name, applied_ms) VALUES (?1, ?2, ?3)", -1,
                               &q, NULL);
    if (r != SQLITE_OK) return fail_db(s, e, r, "record migration");
    sqlite3_bind_int(q, 1, m->version);
    sqlite3_bind_text(q, 2, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, store_now_ms());
    r = sqlite3_step(q);
    int rc = r == SQLITE_DONE ? 0 : fail_db(s, e, r, "record migration");
    sqlite3_finalize(q);
    return rc;
}

/* Apply one migration in its own IMMEDIATE transaction unless it is (by now) recorded: another
 * process opening the same file at the same time cannot apply it twice. */
static int apply_migration(store *s, const char *dir, const migration *m, bz_err *e)
{
    char path[1536];
    snprintf(path, sizeof path, "%s/%s", dir, m->name);
    char *sql = read_text_file(path);
    if (!sql) return bz_fail(e, BZ_EIO, NULL, "store: migration %s: cannot read: %s", path, strerror(errno));
    int rc = tx_begin(s, e);
    if (rc) {
        free(sql);
        return rc;
    }
    bool done = false;
    rc = version_applied(s, m->version, &done, e);
    if (!rc && !done) {
        char *msg = NULL;
        int r = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
        if (r != SQLITE_OK)
            rc = bz_fail(e, BZ_EIO, NULL, "store: migration %s failed: %s", m->name, msg ? msg : sqlite3_errstr(r));
        sqlite3_free(msg);
        if (!rc && sqlite3_get_autocommit(s->db))
            rc = bz_fail(e, BZ_EINVAL, NULL, "store: migration %s must not contain BEGIN/COMMIT", m->name);
        if (!rc) rc = record_version(s, m, e);
    }
    free(sql);
    return tx_end(s, rc, e);
}

static int migrate(store *s, const char *dir, bz_err *e)
{
    int rc = exec_sql(s,
                      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                      " applied_ms INTEGER NOT NULL)",
                      "create schema_version", e);
    migration *m = NULL;
    int n = 0, have = 0;
    if (!rc) rc = list_migrations(dir, &m, &n, e);
    if (!rc) rc = applied_version(s, &have, e);
    if (!rc && have > m[n - 1].version)
        rc = bz_fail(e, BZ_ESTATE, NULL,
                     "store: the database has schema version %d, newer than this boltzd knows (%d, from %s);"
                     " run a newer boltzd",
                     have, m[n - 1].version, dir);
    for (int i = 0; !rc && i < n; i++) rc = apply_migration(s, dir, &m[i], e);
    free(m);
    return rc;
}

/* ---- open / close ---- */

/* Connection settings; busy_timeout first so that switching to WAL waits for other openers. */
static int configure(store *s, bz_err *e)
{
    int r = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (r != SQLITE_OK) return fail_db(s, e, r, "busy_timeout");
    sqlite3_stmt *q;
    r = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
    if (r != SQLITE_OK) return fail_db(s, e, r, "journal_mode");
    r = sqlite3_step(q);
    char mode[16] = "";
    if (r == SQLITE_ROW) column_text(q, 0, mode, sizeof mode);
    sqlite3_finalize(q);
    if (r != SQLITE_ROW) return fail_db(s, e, r, "journal_mode=WAL");
    if (strcmp(mode, "wal") && strcmp(mode, "memory"))
        return bz_fail(e, BZ_EIO, NULL, "store: journal_mode=WAL: the database stays in mode '%s'", mode);
    int rc = exec_sql(s, "PRAGMA synchronous = NORMAL", "synchronous=NORMAL", e);
    if (!rc) rc = exec_sql(s, "PRAGMA foreign_keys = ON", "foreign_keys=ON", e);
    return rc;
}

int store_open(store **out, const char *db_path, const char *schema_dir, bz_err *e)
{
    *out = NULL;
    if (!db_path || !schema_dir) return bz_fail(e, BZ_EINVAL, NULL, "store: open: no database path or schema dir");
    store *s = calloc(1, sizeof *s);
    if (!s) return bz_fail(e, BZ_ENOMEM, NULL, "store: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    int rc = build_obs_sql(s, e);
    if (!rc) {
        int r = sqlite3_open_v2(db_path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                NULL);
        if (r != SQLITE_OK)
            rc = bz_fail(e, BZ_EIO, NULL, "store: open %s: %s", db_path,
                         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(r));
    }
    if (!rc) rc = configure(s, e);
    if (!rc) rc = migrate(s, schema_dir, e);
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(store *s)
{
    if (!s) return;
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    free(s->obs_insert_sql);
    free(s->obs_select_sql);
    free(s->obs_select_group_sql);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int store_schema_version(store *s, int *version, bz_err *e)
{
    lock(s);
    int rc = applied_version(s, version, e);
    unlock(s);
    return rc;
}

int store_integrity_check(store *s, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = 0, r = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &q, NULL);
    if (r != SQLITE_OK) {
        rc = fail_db(s, e, r, "integrity_check");
    } else {
        r = sqlite3_step(q);
        char res[400] = "";
        if (r == SQLITE_ROW) column_text(q, 0, res, sizeof res);
        if (r != SQLITE_ROW) rc = fail_db(s, e, r, "integrity_check");
        else if (strcmp(res, "ok")) rc = bz_fail(e, BZ_EFORMAT, NULL, "store: integrity_check: %s", res);
        sqlite3_finalize(q);
    }
    unlock(s);
    return rc;
}

/* ---- jobs ---- */

/* One row of JOB_COLS into j; spec_json is malloc'ed. */
static int read_job(sqlite3_stmt *q, job_row *j, bz_err *e)
{
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(q, 0);
    j->parent_id = sqlite3_column_int64(q, 1);
    j->n_children = sqlite3_column_int(q, 2);
    j->chain = sqlite3_column_int(q, 3);
    column_text(q, 4, j->name, sizeof j->name);
    column_text(q, 5, j->owner, sizeof j->owner);
    column_text(q, 6, j->method, sizeof j->method);
    j->T = column_real(q, 7);
    int st = job_status_parse((const char *)sqlite3_column_text(q, 8));
    j->status = st < 0 ? JOB_FAILED : (job_status)st;
    j->priority = sqlite3_column_int(q, 9);
    j->created_ms = sqlite3_column_int64(q, 10);
    j->started_ms = sqlite3_column_int64(q, 11);
    j->finished_ms = sqlite3_column_int64(q, 12);
    j->step = sqlite3_column_int64(q, 13);
    j->steps = sqlite3_column_int64(q, 14);
    j->steps_per_s = column_real(q, 15);
    column_text(q, 16, j->backend, sizeof j->backend);
    column_text(q, 17, j->error, sizeof j->error);
    j->cancel_requested = sqlite3_column_int(q, 18) != 0;
    const char *spec = (const char *)sqlite3_column_text(q, 19);
    j->spec_json = strdup(spec ? spec : "");
    if (!j->spec_json) return bz_fail(e, BZ_ENOMEM, NULL, "store: out of memory reading job %lld", (long long)j->id);
    return 0;
}

static int job_get_locked(store *s, int64_t id, job_row *out, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_JOB_GET, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, id);
    int r = sqlite3_step(q);
    if (r == SQLITE_ROW) rc = read_job(q, out, e);
    else if (r == SQLITE_DONE) rc = no_job(e, id);
    else rc = fail_db(s, e, r, "get job");
    sqlite3_reset(q);
    return rc;
}

/* Status, number of children and parent (0: none) of a job; "no job N" when absent. */
static int job_state(store *s, int64_t id, job_status *st, int64_t *n_children, int64_t *parent, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_JOB_STATE, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, id);
    int r = sqlite3_step(q);
    if (r == SQLITE_ROW) {
        int v = job_status_parse((const char *)sqlite3_column_text(q, 0));
        *st = v < 0 ? JOB_FAILED : (job_status)v;
        if (n_children) *n_children = sqlite3_column_int64(q, 1);
        if (parent) *parent = sqlite3_column_int64(q, 2);
    } else {
        rc = r == SQLITE_DONE ? no_job(e, id) : fail_db(s, e, r, "job state");
    }
    sqlite3_reset(q);
    return rc;
}

int store_job_insert(store *s, job_row *j, bz_err *e)
{
    if (!j->spec_json) return bz_fail(e, BZ_EINVAL, NULL, "store: insert job: spec_json is required");
    if (j->status < 0 || j->status >= JOB_STATUS_COUNT)
        return bz_fail(e, BZ_EINVAL, NULL, "store: insert job: bad status %d", (int)j->status);
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_JOB_INSERT, &q, e);
    if (!rc) {
        int64_t created = j->created_ms > 0 ? j->created_ms : store_now_ms();
        if (j->parent_id > 0) sqlite3_bind_int64(q, 1, j->parent_id);
        else sqlite3_bind_null(q, 1);
        sqlite3_bind_int(q, 2, j->n_children);
        sqlite3_bind_int(q, 3, j->chain);
        bind_text(q, 4, j->name);
        bind_text(q, 5, j->owner);
        bind_text(q, 6, j->method);
        bind_real(q, 7, j->T);
        bind_text(q, 8, job_status_name(j->status));
        sqlite3_bind_int(q, 9, j->priority);
        sqlite3_bind_int64(q, 10, created);
        sqlite3_bind_int64(q, 11, j->started_ms);
        sqlite3_bind_int64(q, 12, j->finished_ms);
        sqlite3_bind_int64(q, 13, j->step);
        sqlite3_bind_int64(q, 14, j->steps);
        bind_real(q, 15, j->steps_per_s);
        bind_text(q, 16, j->backend);
        bind_text(q, 17, j->error);
        sqlite3_bind_int(q, 18, j->cancel_requested ? 1 : 0);
        bind_text(q, 19, j->spec_json);
        rc = exec_stmt(s, q, NULL, "insert job", e);
        if (!rc) {
            j->id = sqlite3_last_insert_rowid(s->db);
            j->created_ms = created;
        }
    }
    unlock(s);
    return rc;
}

int store_job_get(store *s, int64_t id, job_row *out, bz_err *e)
{
    lock(s);
    int rc = job_get_locked(s, id, out, e);
    unlock(s);
    return rc;
}

/* Append one row to a growing array. */
static int push_job(job_row **rows, int64_t *n, int64_t *cap, sqlite3_stmt *q, bz_err *e)
{
    if (*n == *cap) {
        int64_t nc = *cap ? *cap * 2 : 16;
        job_row *r = realloc(*rows, sizeof **rows * (size_t)nc);
        if (!r) return bz_fail(e, BZ_ENOMEM, NULL, "store: out of memory listing jobs");
        *rows = r;
        *cap = nc;
    }
    int rc = read_job(q, &(*rows)[*n], e);
    if (!rc) (*n)++;
    return rc;
}

static void free_jobs(job_row *rows, int64_t n)
{
    for (int64_t i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);
}

int store_job_list(store *s, int status, const char *owner, int64_t parent, int64_t limit, int64_t offset,
                   job_row **rows, int64_t *count, bz_err *e)
{
    *rows = NULL;
    *count = 0;
    if (status >= JOB_STATUS_COUNT) return bz_fail(e, BZ_EINVAL, NULL, "store: list jobs: bad status %d", status);
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_JOB_LIST, &q, e);
    job_row *out = NULL;
    int64_t n = 0, cap = 0;
    if (!rc) {
        bind_text(q, 1, status < 0 ? NULL : job_status_name((job_status)status));
        bind_text(q, 2, owner);
        sqlite3_bind_int64(q, 3, parent < 0 ? -1 : parent);
        sqlite3_bind_int64(q, 4, limit > 0 ? limit : -1);
        sqlite3_bind_int64(q, 5, offset > 0 ? offset : 0);
        int r = SQLITE_DONE;
        while (!rc && (r = sqlite3_step(q)) == SQLITE_ROW) rc = push_job(&out, &n, &cap, q, e);
        if (!rc && r != SQLITE_DONE) rc = fail_db(s, e, r, "list jobs");
        sqlite3_reset(q);
    }
    unlock(s);
    if (rc) {
        free_jobs(out, n);
        return rc;
    }
    *rows = out;
    *count = n;
    return 0;
}

/* Derive a sweep parent's status, timings, error and progress from its children (in a transaction). */
static int parent_refresh_locked(store *s, int64_t parent, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_PARENT_AGG, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, parent);
    int r = sqlite3_step(q);
    if (r != SQLITE_ROW) {
        rc = fail_db(s, e, r, "refresh parent");
        sqlite3_reset(q);
        return rc;
    }
    int64_t n = sqlite3_column_int64(q, 0);
    int64_t queued = (int64_t)sqlite3_column_double(q, 1), running = (int64_t)sqlite3_column_double(q, 2);
    int64_t failed = (int64_t)sqlite3_column_double(q, 3), cancelled = (int64_t)sqlite3_column_double(q, 4);
    int64_t started = sqlite3_column_int64(q, 5), finished = sqlite3_column_int64(q, 6);
    int64_t step = sqlite3_column_int64(q, 7), steps = sqlite3_column_int64(q, 8);
    sqlite3_reset(q);
    if (n == 0) return 0; /* children not inserted (yet): the parent row keeps its own status */

    job_status st;
    if (queued == n) st = JOB_QUEUED;
    else if (running > 0 || queued > 0) st = JOB_RUNNING;
    else if (failed > 0) st = JOB_FAILED;
    else if (cancelled > 0) st = JOB_CANCELLED;
    else st = JOB_SUCCEEDED;

    char error[512] = "";
    if (st == JOB_FAILED) {
        rc = stmt(s, ST_PARENT_FAILED, &q, e);
        if (rc) return rc;
        sqlite3_bind_int64(q, 1, parent);
        if (sqlite3_step(q) == SQLITE_ROW) {
            const char *msg = sqlite3_column_text(q, 1) ? (const char *)sqlite3_column_text(q, 1) : "";
            /* A batched group fails as one, with one message for all (it names the chain when a
             * chain was at fault), so it goes up as it is. */
            if (sqlite3_column_int(q, 2)) snprintf(error, sizeof error, "%s", msg);
            else snprintf(error, sizeof error, "chain %d: %s", sqlite3_column_int(q, 0), msg);
        }
        sqlite3_reset(q);
    }
    rc = stmt(s, ST_PARENT_UPDATE, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, parent);
    bind_text(q, 2, job_status_name(st));
    sqlite3_bind_int64(q, 3, started);
    sqlite3_bind_int64(q, 4, job_status_final(st) ? finished : 0);
    bind_text(q, 5, error);
    sqlite3_bind_int64(q, 6, step);
    sqlite3_bind_int64(q, 7, steps);
    return exec_stmt(s, q, NULL, "refresh parent", e);
}

static int claim_locked(store *s, const char *worker, job_row *out, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_CLAIM_PICK, &q, e);
    if (rc) return rc;
    int r = sqlite3_step(q);
    int64_t id = r == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (r == SQLITE_DONE) return bz_fail(e, BZ_ESTATE, NULL, "no queued job");
    if (r != SQLITE_ROW) return fail_db(s, e, r, "claim job");
    const int64_t now = store_now_ms();
    for (int pass = 0; pass < 2 && !rc; pass++) { /* the job itself, then a batched parent's children */
        rc = stmt(s, pass ? ST_CLAIM_CHILDREN : ST_CLAIM_MARK, &q, e);
        if (rc) return rc;
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, now);
        bind_text(q, 3, worker ? worker : "");
        rc = exec_stmt(s, q, NULL, "claim job", e);
    }
    if (!rc) rc = job_get_locked(s, id, out, e);
    if (!rc && out->parent_id > 0) rc = parent_refresh_locked(s, out->parent_id, e);
    if (!rc && out->n_children > 0) { /* a batched parent: return its row as refreshed from the chains */
        rc = parent_refresh_locked(s, id, e);
        job_row_free(out);
        if (!rc) rc = job_get_locked(s, id, out, e);
    }
    if (rc && out->spec_json) job_row_free(out);
    return rc;
}

int store_job_claim(store *s, const char *worker, job_row *out, bz_err *e)
{
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, claim_locked(s, worker, out, e), e);
    unlock(s);
    if (rc) job_row_free(out);
    return rc;
}

/* A status a caller may set: queued or final (running only comes from a claim). */
static int check_settable(job_status st, const char *what, bz_err *e)
{
    if (st == JOB_QUEUED || (st >= 0 && st < JOB_STATUS_COUNT && job_status_final(st))) return 0;
    return bz_fail(e, BZ_EINVAL, NULL, "store: %s: %s is not a queued or final status", what, job_status_name(st));
}

/* Parameters 2-4 of ST_SET_STATUS and ST_GROUP_FINISH: status, error text, finish time (final only). */
static void bind_status(sqlite3_stmt *q, job_status st, const char *error)
{
    bind_text(q, 2, job_status_name(st));
    bind_text(q, 3, error ? error : "");
    sqlite3_bind_int64(q, 4, job_status_final(st) ? store_now_ms() : 0);
}

static int set_status_locked(store *s, int64_t id, job_status st, const char *error, bz_err *e)
{
    int64_t parent = 0;
    job_status old;
    int rc = job_state(s, id, &old, NULL, &parent, e);
    sqlite3_stmt *q;
    if (!rc) rc = stmt(s, ST_SET_STATUS, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, id);
    bind_status(q, st, error);
    rc = exec_stmt(s, q, NULL, "set job status", e);
    if (!rc && parent > 0) rc = parent_refresh_locked(s, parent, e);
    return rc;
}

int store_job_set_status(store *s, int64_t id, job_status st, const char *error, bz_err *e)
{
    int rc = check_settable(st, "set status", e);
    if (rc) return rc;
    lock(s);
    rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, set_status_locked(s, id, st, error, e), e);
    unlock(s);
    return rc;
}

int store_job_set_backend(store *s, int64_t id, const char *backend, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int64_t n = 0;
    int rc = stmt(s, ST_SET_BACKEND, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, id);
        bind_text(q, 2, backend ? backend : "");
        rc = exec_stmt(s, q, &n, "set backend", e);
    }
    if (!rc && n == 0) rc = no_job(e, id);
    unlock(s);
    return rc;
}

static int progress_locked(store *s, int64_t id, int64_t step, double steps_per_s, bz_err *e)
{
    sqlite3_stmt *q;
    int64_t n = 0;
    int rc = stmt(s, ST_PROGRESS, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, step);
    bind_real(q, 3, steps_per_s);
    rc = exec_stmt(s, q, &n, "progress", e);
    if (!rc && n == 0) return no_job(e, id);
    if (!rc) rc = stmt(s, ST_PARENT_STEP, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, id);
        rc = exec_stmt(s, q, NULL, "progress of the sweep", e);
    }
    return rc;
}

int store_job_progress(store *s, int64_t id, int64_t step, double steps_per_s, bz_err *e)
{
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, progress_locked(s, id, step, steps_per_s, e), e);
    unlock(s);
    return rc;
}

static int run_id_stmt(store *s, enum stmt_id id, int64_t job, int64_t arg2, bool with2, const char *what, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, id, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, job);
    if (with2) sqlite3_bind_int64(q, 2, arg2);
    return exec_stmt(s, q, NULL, what, e);
}

/* Whether job id's spec says "batched": true (a batched sweep parent). */
static int is_batched_locked(store *s, int64_t id, bool *yes, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_IS_BATCHED, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, id);
    int r = sqlite3_step(q);
    if (r == SQLITE_ROW) *yes = sqlite3_column_int(q, 0) != 0;
    else rc = r == SQLITE_DONE ? no_job(e, id) : fail_db(s, e, r, "batched job");
    sqlite3_reset(q);
    return rc;
}

static int cancel_locked(store *s, int64_t id, job_status *now, bz_err *e)
{
    job_status st;
    int64_t n_children = 0, parent = 0;
    int rc = job_state(s, id, &st, &n_children, &parent, e);
    if (rc) return rc;
    if (job_status_final(st))
        return bz_fail(e, BZ_ESTATE, NULL, "job %lld is already %s", (long long)id, job_status_name(st));
    bool batched = false;
    if (parent > 0 && (rc = is_batched_locked(s, parent, &batched, e))) return rc;
    if (batched)
        return bz_fail(e, BZ_ESTATE, NULL,
                       "job %lld is a chain of batched sweep %lld, whose chains run as one; cancel job %lld",
                       (long long)id, (long long)parent, (long long)parent);
    int64_t t = store_now_ms();
    /* A parent is cancelled itself too; refreshing it from its children below overrides that while
     * a chain still runs (and a half-inserted sweep without children stays cancelled). */
    rc = run_id_stmt(s, ST_CANCEL_ONE, id, t, true, "cancel job", e);
    if (!rc && n_children > 0) rc = run_id_stmt(s, ST_CANCEL_CHILDREN, id, t, true, "cancel sweep", e);
    if (!rc) rc = run_id_stmt(s, ST_CANCEL_FLAG_RUNNING, id, 0, false, "cancel job", e);
    if (!rc && n_children > 0) rc = parent_refresh_locked(s, id, e);
    if (!rc && parent > 0) rc = parent_refresh_locked(s, parent, e);
    if (!rc) rc = job_state(s, id, now, NULL, NULL, e);
    return rc;
}

int store_job_cancel(store *s, int64_t id, job_status *now, bz_err *e)
{
    job_status dummy;
    if (!now) now = &dummy;
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, cancel_locked(s, id, now, e), e);
    unlock(s);
    return rc;
}

int store_job_cancel_requested(store *s, int64_t id, bool *yes, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_CANCEL_REQ, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, id);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) *yes = sqlite3_column_int(q, 0) != 0;
        else rc = r == SQLITE_DONE ? no_job(e, id) : fail_db(s, e, r, "cancel requested");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

static int delete_locked(store *s, int64_t id, bz_err *e)
{
    job_status st;
    int64_t n_children = 0, parent = 0;
    int rc = job_state(s, id, &st, &n_children, &parent, e);
    if (rc) return rc;
    if (!job_status_final(st))
        return bz_fail(e, BZ_ESTATE, NULL, "job %lld is %s; cancel it first", (long long)id, job_status_name(st));
    if (parent > 0)
        return bz_fail(e, BZ_ESTATE, NULL, "job %lld is chain of sweep %lld; delete the sweep", (long long)id,
                       (long long)parent);
    sqlite3_stmt *q;
    rc = stmt(s, ST_CHILDREN_UNFINISHED, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, id);
    int r = sqlite3_step(q);
    int64_t open = r == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (r != SQLITE_ROW) return fail_db(s, e, r, "delete job");
    if (open > 0)
        return bz_fail(e, BZ_ESTATE, NULL, "sweep %lld has %lld unfinished chains; cancel it first", (long long)id,
                       (long long)open);
    /* Children, observables, checkpoints and samples go with ON DELETE CASCADE. */
    return run_id_stmt(s, ST_JOB_DELETE, id, 0, false, "delete job", e);
}

int store_job_delete(store *s, int64_t id, bz_err *e)
{
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, delete_locked(s, id, e), e);
    unlock(s);
    return rc;
}

/* Ids of the sweep parents not yet final; *ids malloc'ed. */
static int open_parents(store *s, int64_t **ids, int64_t *n, bz_err *e)
{
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, ST_OPEN_PARENTS, &q, e);
    int64_t cap = 0;
    *ids = NULL;
    *n = 0;
    int r = SQLITE_DONE;
    while (!rc && (r = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *t = realloc(*ids, sizeof *t * (size_t)cap);
            if (!t) {
                rc = bz_fail(e, BZ_ENOMEM, NULL, "store: out of memory");
                break;
            }
            *ids = t;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    if (!rc && r != SQLITE_DONE) rc = fail_db(s, e, r, "list sweeps");
    if (q) sqlite3_reset(q);
    return rc;
}

static int requeue_locked(store *s, int64_t *count, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_REQUEUE, &q, e);
    if (!rc) rc = exec_stmt(s, q, count, "requeue running jobs", e);
    int64_t *ids = NULL, n = 0;
    if (!rc) rc = open_parents(s, &ids, &n, e);
    for (int64_t i = 0; !rc && i < n; i++) rc = parent_refresh_locked(s, ids[i], e);
    free(ids);
    return rc;
}

int store_requeue_running(store *s, int64_t *count, bz_err *e)
{
    int64_t dummy;
    if (!count) count = &dummy;
    *count = 0;
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, requeue_locked(s, count, e), e);
    unlock(s);
    return rc;
}

int store_count_by_status(store *s, int64_t *counts, bz_err *e)
{
    for (int i = 0; i < JOB_STATUS_COUNT; i++) counts[i] = 0;
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_COUNT_STATUS, &q, e);
    if (!rc) {
        int r;
        while ((r = sqlite3_step(q)) == SQLITE_ROW) {
            int st = job_status_parse((const char *)sqlite3_column_text(q, 0));
            if (st >= 0) counts[st] = sqlite3_column_int64(q, 1);
        }
        if (r != SQLITE_DONE) rc = fail_db(s, e, r, "count jobs");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

int store_parent_refresh(store *s, int64_t parent_id, bz_err *e)
{
    lock(s);
    job_status st;
    int64_t n_children = 0;
    int rc = tx_begin(s, e);
    if (!rc) {
        int r = job_state(s, parent_id, &st, &n_children, NULL, e);
        if (!r && n_children <= 0)
            r = bz_fail(e, BZ_EINVAL, NULL, "store: job %lld is not a sweep", (long long)parent_id);
        if (!r) r = parent_refresh_locked(s, parent_id, e);
        rc = tx_end(s, r, e);
    }
    unlock(s);
    return rc;
}

/* ---- observables ---- */

static int obs_insert_locked(store *s, int64_t job, const obs_record *r, int64_t n, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_OBS_INSERT, &q, e);
    for (int64_t k = 0; !rc && k < n; k++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, job);
        sqlite3_bind_int64(q, 2, r[k].step);
        bind_real(q, 3, r[k].t_wall);
        bind_real(q, 4, r[k].T);
        sqlite3_bind_int(q, 5, r[k].chain);
        for (int i = 0; i < OBS_COUNT; i++) bind_real(q, 6 + i, r[k].v[i]);
        rc = exec_stmt(s, q, NULL, "insert observables", e);
    }
    return rc;
}

int store_obs_insert(store *s, int64_t job, const obs_record *r, int64_t n, bz_err *e)
{
    if (n <= 0) return 0;
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, obs_insert_locked(s, job, r, n, e), e);
    unlock(s);
    return rc;
}

int store_obs_delete_after(store *s, int64_t job, int64_t after_step, bz_err *e)
{
    lock(s);
    int rc = run_id_stmt(s, ST_OBS_DELETE_AFTER, job, after_step, true, "delete observables", e);
    unlock(s);
    return rc;
}

static void read_obs(sqlite3_stmt *q, obs_record *r)
{
    r->step = sqlite3_column_int64(q, 0);
    r->t_wall = column_real(q, 1);
    r->T = column_real(q, 2);
    r->chain = sqlite3_column_int(q, 3);
    for (int i = 0; i < OBS_COUNT; i++) r->v[i] = column_real(q, 4 + i);
}

/* The callback runs with the handle locked: it must not call into the same store handle. */
int store_obs_each(store *s, int64_t job, int64_t since, int64_t limit, store_obs_fn fn, void *ctx, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_OBS_SELECT, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, job);
        sqlite3_bind_int64(q, 2, since);
        sqlite3_bind_int64(q, 3, limit > 0 ? limit : -1);
        obs_record rec;
        int r;
        while ((r = sqlite3_step(q)) == SQLITE_ROW) {
            read_obs(q, &rec);
            if (fn(ctx, &rec)) break;
        }
        if (r != SQLITE_ROW && r != SQLITE_DONE) rc = fail_db(s, e, r, "read observables");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

/* The callback runs with the handle locked, as for store_obs_each. */
int store_obs_each_group(store *s, int64_t parent, int64_t since, int64_t limit, store_obs_fn fn, void *ctx,
                         bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_OBS_SELECT_GROUP, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, parent);
        sqlite3_bind_int64(q, 2, since);
        sqlite3_bind_int64(q, 3, limit > 0 ? limit : INT64_MAX);
        obs_record rec;
        int r;
        while ((r = sqlite3_step(q)) == SQLITE_ROW) {
            read_obs(q, &rec);
            if (fn(ctx, &rec)) break;
        }
        if (r != SQLITE_ROW && r != SQLITE_DONE) rc = fail_db(s, e, r, "read observables of a sweep");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

static int obs_insert_chains_locked(store *s, const int64_t *job_of_chain, int32_t n_chains, const obs_record *r,
                                    int64_t n, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_OBS_INSERT, &q, e);
    for (int64_t k = 0; !rc && k < n; k++) {
        if (r[k].chain < 0 || r[k].chain >= n_chains)
            return bz_fail(e, BZ_EINVAL, NULL, "store: a record of chain %d, but the group has chains 0..%d",
                           (int)r[k].chain, (int)n_chains - 1);
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, job_of_chain[r[k].chain]);
        sqlite3_bind_int64(q, 2, r[k].step);
        bind_real(q, 3, r[k].t_wall);
        bind_real(q, 4, r[k].T);
        sqlite3_bind_int(q, 5, r[k].chain);
        for (int i = 0; i < OBS_COUNT; i++) bind_real(q, 6 + i, r[k].v[i]);
        rc = exec_stmt(s, q, NULL, "insert observables", e);
    }
    return rc;
}

int store_obs_insert_chains(store *s, const int64_t *job_of_chain, int32_t n_chains, const obs_record *r, int64_t n,
                            bz_err *e)
{
    if (n <= 0) return 0;
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, obs_insert_chains_locked(s, job_of_chain, n_chains, r, n, e), e);
    unlock(s);
    return rc;
}

static int group_progress_locked(store *s, const int64_t *jobs, const int64_t *steps, const double *steps_per_s,
                                 int32_t n, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = 0;
    for (int32_t k = 0; k < n && !rc; k++) {
        int64_t changed = 0;
        rc = stmt(s, ST_PROGRESS, &q, e);
        if (rc) return rc;
        sqlite3_bind_int64(q, 1, jobs[k]);
        sqlite3_bind_int64(q, 2, steps[k]);
        bind_real(q, 3, steps_per_s[k]);
        rc = exec_stmt(s, q, &changed, "progress", e);
        if (!rc && changed == 0) rc = no_job(e, jobs[k]);
    }
    if (!rc && n > 0) rc = run_id_stmt(s, ST_PARENT_STEP, jobs[0], 0, false, "progress of the sweep", e);
    return rc;
}

int store_group_progress(store *s, const int64_t *jobs, const int64_t *steps, const double *steps_per_s, int32_t n,
                         bz_err *e)
{
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, group_progress_locked(s, jobs, steps, steps_per_s, n, e), e);
    unlock(s);
    return rc;
}

static int group_finish_locked(store *s, int64_t parent, job_status st, const char *error, bz_err *e)
{
    job_status cur;
    int64_t n_children = 0;
    bool batched = false;
    int rc = job_state(s, parent, &cur, &n_children, NULL, e); /* "no job N" */
    if (!rc) rc = is_batched_locked(s, parent, &batched, e);
    if (rc) return rc;
    if (n_children <= 0 || !batched)
        return bz_fail(e, BZ_EINVAL, NULL, "store: job %lld is not a batched sweep", (long long)parent);
    sqlite3_stmt *q;
    rc = stmt(s, ST_GROUP_FINISH, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, parent);
    bind_status(q, st, error);
    rc = exec_stmt(s, q, NULL, "finish a batched sweep", e);
    if (!rc) rc = parent_refresh_locked(s, parent, e);
    return rc;
}

int store_group_finish(store *s, int64_t parent, job_status st, const char *error, bz_err *e)
{
    int rc = check_settable(st, "finish a batched sweep", e);
    if (rc) return rc;
    lock(s);
    rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, group_finish_locked(s, parent, st, error, e), e);
    unlock(s);
    return rc;
}

int store_obs_last_step(store *s, int64_t job, int64_t *step, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_OBS_LAST, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, job);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW)
            *step = sqlite3_column_type(q, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 0);
        else
            rc = fail_db(s, e, r, "last observable step");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

/* ---- checkpoints and samples ---- */

static int64_t u64_bits(uint64_t v)
{
    int64_t r;
    memcpy(&r, &v, sizeof r);
    return r;
}

static uint64_t bits_u64(int64_t v)
{
    uint64_t r;
    memcpy(&r, &v, sizeof r);
    return r;
}

static int ckpt_add_locked(store *s, int64_t job, int64_t step, const char *path, int64_t size, uint64_t checksum,
                           int64_t *seq, bz_err *e)
{
    sqlite3_stmt *q;
    int rc = stmt(s, ST_CKPT_NEXT, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, job);
    int r = sqlite3_step(q);
    int64_t next = r == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (r != SQLITE_ROW) return fail_db(s, e, r, "add checkpoint");
    rc = stmt(s, ST_CKPT_ADD, &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, job);
    sqlite3_bind_int64(q, 2, next);
    sqlite3_bind_int64(q, 3, step);
    bind_text(q, 4, path ? path : "");
    sqlite3_bind_int64(q, 5, size);
    sqlite3_bind_int64(q, 6, u64_bits(checksum));
    sqlite3_bind_int64(q, 7, store_now_ms());
    rc = exec_stmt(s, q, NULL, "add checkpoint", e);
    if (!rc) *seq = next;
    return rc;
}

int store_ckpt_add(store *s, int64_t job, int64_t step, const char *path, int64_t size, uint64_t checksum,
                   int64_t *seq, bz_err *e)
{
    int64_t dummy;
    if (!seq) seq = &dummy;
    lock(s);
    int rc = tx_begin(s, e);
    if (!rc) rc = tx_end(s, ckpt_add_locked(s, job, step, path, size, checksum, seq, e), e);
    unlock(s);
    return rc;
}

static void read_ckpt(sqlite3_stmt *q, ckpt_row *c)
{
    memset(c, 0, sizeof *c);
    c->job = sqlite3_column_int64(q, 0);
    c->seq = sqlite3_column_int64(q, 1);
    c->step = sqlite3_column_int64(q, 2);
    column_text(q, 3, c->path, sizeof c->path);
    c->size = sqlite3_column_int64(q, 4);
    c->checksum = bits_u64(sqlite3_column_int64(q, 5));
    c->created_ms = sqlite3_column_int64(q, 6);
}

int store_ckpt_list(store *s, int64_t job, ckpt_row **rows, int64_t *count, bz_err *e)
{
    *rows = NULL;
    *count = 0;
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_CKPT_LIST, &q, e);
    ckpt_row *out = NULL;
    int64_t n = 0, cap = 0;
    if (!rc) {
        sqlite3_bind_int64(q, 1, job);
        int r = SQLITE_DONE;
        while (!rc && (r = sqlite3_step(q)) == SQLITE_ROW) {
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                ckpt_row *t = realloc(out, sizeof *t * (size_t)cap);
                if (!t) {
                    rc = bz_fail(e, BZ_ENOMEM, NULL, "store: out of memory listing checkpoints");
                    break;
                }
                out = t;
            }
            read_ckpt(q, &out[n++]);
        }
        if (!rc && r != SQLITE_DONE) rc = fail_db(s, e, r, "list checkpoints");
        sqlite3_reset(q);
    }
    unlock(s);
    if (rc) {
        free(out);
        return rc;
    }
    *rows = out;
    *count = n;
    return 0;
}

int store_ckpt_get(store *s, int64_t job, int64_t seq, ckpt_row *out, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_CKPT_GET, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, job);
        sqlite3_bind_int64(q, 2, seq);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) read_ckpt(q, out);
        else if (r == SQLITE_DONE)
            rc = bz_fail(e, BZ_EINVAL, NULL, "no checkpoint %lld of job %lld", (long long)seq, (long long)job);
        else rc = fail_db(s, e, r, "get checkpoint");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

int store_ckpt_remove(store *s, int64_t job, int64_t seq, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int64_t n = 0;
    int rc = stmt(s, ST_CKPT_REMOVE, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, job);
        sqlite3_bind_int64(q, 2, seq);
        rc = exec_stmt(s, q, &n, "remove checkpoint", e);
    }
    if (!rc && n == 0)
        rc = bz_fail(e, BZ_EINVAL, NULL, "no checkpoint %lld of job %lld", (long long)seq, (long long)job);
    unlock(s);
    return rc;
}

int store_samples_set(store *s, const samples_row *r, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_SAMPLES_SET, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, r->job);
        bind_text(q, 2, r->path);
        sqlite3_bind_int64(q, 3, r->count);
        sqlite3_bind_int64(q, 4, r->size);
        sqlite3_bind_int64(q, 5, r->last_step);
        rc = exec_stmt(s, q, NULL, "set samples", e);
    }
    unlock(s);
    return rc;
}

int store_samples_get(store *s, int64_t job, samples_row *out, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_SAMPLES_GET, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, job);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            memset(out, 0, sizeof *out);
            out->job = sqlite3_column_int64(q, 0);
            column_text(q, 1, out->path, sizeof out->path);
            out->count = sqlite3_column_int64(q, 2);
            out->size = sqlite3_column_int64(q, 3);
            out->last_step = sqlite3_column_int64(q, 4);
        } else {
            rc = r == SQLITE_DONE ? bz_fail(e, BZ_EINVAL, NULL, "job %lld has no samples", (long long)job)
                                  : fail_db(s, e, r, "get samples");
        }
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

/* ---- users and API tokens ---- */

/* Grow *buf (elements of size sz) to hold n + 1; BZ_ENOMEM names what was being listed. */
static int grow(void **buf, int64_t n, int64_t *cap, size_t sz, const char *what, bz_err *e)
{
    if (n < *cap) return 0;
    int64_t ncap = *cap ? *cap * 2 : 8;
    void *t = realloc(*buf, sz * (size_t)ncap);
    if (!t) return bz_fail(e, BZ_ENOMEM, NULL, "store: out of memory listing %s", what);
    *buf = t;
    *cap = ncap;
    return 0;
}

static void read_user(sqlite3_stmt *q, user_row *u)
{
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(q, 0);
    column_text(q, 1, u->name, sizeof u->name);
    u->is_admin = sqlite3_column_int(q, 2) != 0;
    u->created_ms = sqlite3_column_int64(q, 3);
}

/* A unique-constraint failure of the last statement (a taken name or id). */
static bool is_unique_violation(store *s)
{
    int x = sqlite3_extended_errcode(s->db);
    return x == SQLITE_CONSTRAINT_UNIQUE || x == SQLITE_CONSTRAINT_PRIMARYKEY;
}

int store_user_add(store *s, const char *name, bool is_admin, user_row *out, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_USER_ADD, &q, e);
    if (!rc) {
        int64_t now = store_now_ms();
        bind_text(q, 1, name);
        sqlite3_bind_int(q, 2, is_admin ? 1 : 0);
        sqlite3_bind_int64(q, 3, now);
        int r = sqlite3_step(q);
        if (r == SQLITE_DONE && out) {
            memset(out, 0, sizeof *out);
            out->id = sqlite3_last_insert_rowid(s->db);
            snprintf(out->name, sizeof out->name, "%s", name);
            out->is_admin = is_admin;
            out->created_ms = now;
        } else if (r != SQLITE_DONE) {
            rc = is_unique_violation(s) ? bz_fail(e, BZ_ESTATE, NULL, "user '%s' already exists", name)
                                        : fail_db(s, e, r, "add user");
        }
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

int store_user_get(store *s, const char *name, user_row *out, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_USER_GET, &q, e);
    if (!rc) {
        bind_text(q, 1, name);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) read_user(q, out);
        else rc = r == SQLITE_DONE ? bz_fail(e, BZ_EINVAL, NULL, "no user '%s' (add one with boltzd user add)", name)
                                   : fail_db(s, e, r, "get user");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

int store_user_list(store *s, user_row **rows, int64_t *count, bz_err *e)
{
    *rows = NULL;
    *count = 0;
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_USER_LIST, &q, e);
    user_row *out = NULL;
    int64_t n = 0, cap = 0;
    if (!rc) {
        int r;
        while ((r = sqlite3_step(q)) == SQLITE_ROW && !(rc = grow((void **)&out, n, &cap, sizeof *out, "users", e)))
            read_user(q, &out[n++]);
        if (!rc && r != SQLITE_DONE) rc = fail_db(s, e, r, "list users");
        sqlite3_reset(q);
    }
    unlock(s);
    if (rc) {
        free(out);
        return rc;
    }
    *rows = out;
    *count = n;
    return 0;
}

/* A blob column into a fixed buffer (zero-filled when shorter). */
static void column_blob(sqlite3_stmt *q, int i, uint8_t *buf, size_t len)
{
    memset(buf, 0, len);
    const void *b = sqlite3_column_blob(q, i);
    size_t n = (size_t)sqlite3_column_bytes(q, i);
    if (b) memcpy(buf, b, n < len ? n : len);
}

static void read_token(sqlite3_stmt *q, token_row *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(q, 0);
    t->user_id = sqlite3_column_int64(q, 1);
    column_blob(q, 2, t->salt, sizeof t->salt);
    column_blob(q, 3, t->hash, sizeof t->hash);
    t->created_ms = sqlite3_column_int64(q, 4);
    t->revoked_ms = sqlite3_column_int64(q, 5);
    column_text(q, 6, t->user, sizeof t->user);
    t->is_admin = sqlite3_column_int(q, 7) != 0;
}

int store_token_add(store *s, token_row *t, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_TOKEN_ADD, &q, e);
    if (!rc) {
        t->created_ms = store_now_ms();
        t->revoked_ms = 0;
        sqlite3_bind_int64(q, 1, t->id);
        sqlite3_bind_int64(q, 2, t->user_id);
        sqlite3_bind_blob(q, 3, t->salt, sizeof t->salt, SQLITE_TRANSIENT);
        sqlite3_bind_blob(q, 4, t->hash, sizeof t->hash, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 5, t->created_ms);
        int r = sqlite3_step(q);
        if (r != SQLITE_DONE)
            rc = is_unique_violation(s) ? bz_fail(e, BZ_ESTATE, NULL, "token id %lld is taken", (long long)t->id)
                                        : fail_db(s, e, r, "add token");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

int store_token_get(store *s, int64_t id, token_row *out, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_TOKEN_GET, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, id);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) read_token(q, out);
        else rc = r == SQLITE_DONE ? bz_fail(e, BZ_EINVAL, NULL, "no token %lld", (long long)id)
                                   : fail_db(s, e, r, "get token");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

int store_token_list(store *s, int64_t user_id, token_row **rows, int64_t *count, bz_err *e)
{
    *rows = NULL;
    *count = 0;
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_TOKEN_LIST, &q, e);
    token_row *out = NULL;
    int64_t n = 0, cap = 0;
    if (!rc) {
        sqlite3_bind_int64(q, 1, user_id);
        int r;
        while ((r = sqlite3_step(q)) == SQLITE_ROW && !(rc = grow((void **)&out, n, &cap, sizeof *out, "tokens", e)))
            read_token(q, &out[n++]);
        if (!rc && r != SQLITE_DONE) rc = fail_db(s, e, r, "list tokens");
        sqlite3_reset(q);
    }
    unlock(s);
    if (rc) {
        free(out);
        return rc;
    }
    *rows = out;
    *count = n;
    return 0;
}

int store_token_revoke(store *s, int64_t id, bz_err *e)
{
    token_row t;
    int rc = store_token_get(s, id, &t, e);
    if (rc) return rc;
    if (t.revoked_ms) return bz_fail(e, BZ_ESTATE, NULL, "token %lld is already revoked", (long long)id);
    lock(s);
    sqlite3_stmt *q;
    int64_t n = 0;
    rc = stmt(s, ST_TOKEN_REVOKE, &q, e);
    if (!rc) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, store_now_ms());
        rc = exec_stmt(s, q, &n, "revoke token", e);
    }
    unlock(s);
    if (!rc && n == 0) rc = bz_fail(e, BZ_ESTATE, NULL, "token %lld is already revoked", (long long)id);
    return rc;
}

int store_jobs_active(store *s, const char *owner, int64_t *count, bz_err *e)
{
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_JOBS_ACTIVE, &q, e);
    if (!rc) {
        bind_text(q, 1, owner);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) *count = sqlite3_column_int64(q, 0);
        else rc = fail_db(s, e, r, "count active jobs");
        sqlite3_reset(q);
    }
    unlock(s);
    return rc;
}

int store_ckpt_all(store *s, ckpt_row **rows, int64_t *count, bz_err *e)
{
    *rows = NULL;
    *count = 0;
    lock(s);
    sqlite3_stmt *q;
    int rc = stmt(s, ST_CKPT_ALL, &q, e);
    ckpt_row *out = NULL;
    int64_t n = 0, cap = 0;
    if (!rc) {
        int r;
        while ((r = sqlite3_step(q)) == SQLITE_ROW &&
               !(rc = grow((void **)&out, n, &cap, sizeof *out, "checkpoints", e)))
            read_ckpt(q, &out[n++]);
        if (!rc && r != SQLITE_DONE) rc = fail_db(s, e, r, "list checkpoints");
        sqlite3_reset(q);
    }
    unlock(s);
    if (rc) {
        free(out);
        return rc;
    }
    *rows = out;
    *count = n;
    return 0;
}

/* ---- online backup ---- */

#define BACKUP_TRIES 200  /* x 25 ms while another connection holds a lock */

/* All pages in one step: one read transaction, so the copy is one consistent snapshot. */
static int backup_pages(sqlite3 *dst, sqlite3 *src, const char *dest_path, bz_err *e)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) return bz_fail(e, BZ_EIO, dest_path, "backup to %s: %s", dest_path, sqlite3_errmsg(dst));
    int r = SQLITE_OK;
    for (int i = 0; i < BACKUP_TRIES; i++) {
        r = sqlite3_backup_step(b, -1);
        if (r != SQLITE_BUSY && r != SQLITE_LOCKED) break;
        sqlite3_sleep(25);
    }
    int fr = sqlite3_backup_finish(b);
    if (r != SQLITE_DONE || fr != SQLITE_OK)
        return bz_fail(e, BZ_EIO, dest_path, "backup to %s: %s", dest_path,
                       r != SQLITE_DONE ? sqlite3_errstr(r) : sqlite3_errmsg(dst));
    return 0;
}

/* The copy passes integrity_check. */
static int backup_check_copy(sqlite3 *dst, const char *dest_path, bz_err *e)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(dst, "PRAGMA integrity_check", -1, &q, NULL) != SQLITE_OK)
        return bz_fail(e, BZ_EIO, dest_path, "backup %s: integrity_check: %s", dest_path, sqlite3_errmsg(dst));
    int r = sqlite3_step(q);
    char res[400] = "";
    if (r == SQLITE_ROW) column_text(q, 0, res, sizeof res);
    sqlite3_finalize(q);
    if (strcmp(res, "ok"))
        return bz_fail(e, BZ_EFORMAT, dest_path, "backup %s fails integrity_check: %s", dest_path,
                       res[0] ? res : sqlite3_errmsg(dst));
    return 0;
}

int store_backup(store *s, const char *dest_path, bz_err *e)
{
    sqlite3 *dst = NULL;
    int r = sqlite3_open_v2(dest_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (r != SQLITE_OK) {
        int rc = bz_fail(e, BZ_EIO, dest_path, "backup: cannot create %s: %s", dest_path,
                         dst ? sqlite3_errmsg(dst) : sqlite3_errstr(r));
        sqlite3_close(dst);
        return rc;
    }
    sqlite3_busy_timeout(dst, BUSY_TIMEOUT_MS);
    lock(s);
    int rc = backup_pages(dst, s->db, dest_path, e);
    unlock(s);
    if (!rc) rc = backup_check_copy(dst, dest_path, e);
    sqlite3_close(dst);
    return rc;
}
