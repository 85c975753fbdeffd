/* store.h: boltzd's SQLite store (DESIGN.md "Storage"): jobs, observables, checkpoints, samples,
 * users and API tokens, online backup.
 *
 * The database lives at DATA_DIR/boltzd.db in WAL mode with busy_timeout and foreign keys;
 * migrations schema/NNN_name.sql are applied in order at open and recorded in schema_version.
 * One store handle is one connection guarded by its own mutex: workers each open their own, the
 * HTTP handlers share one. Every call returns 0 or a negative BZ_E* code and fills e. */
#ifndef BZ_STORE_H
#define BZ_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "bz_error.h"
#include "observables.h"

typedef enum { JOB_QUEUED = 0, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED, JOB_STATUS_COUNT } job_status;

const char *job_status_name(job_status s);
/* "queued" -> JOB_QUEUED ...; -1 when unknown. */
int job_status_parse(const char *name);
static inline bool job_status_final(job_status s) { return s >= JOB_SUCCEEDED; }

typedef struct job_row {
    int64_t id;
    int64_t parent_id;        /* 0: none (a single job or a sweep parent) */
    int32_t n_children;       /* sweep parent: number of child jobs; 0 otherwise */
    int32_t chain;            /* child: index of its temperature in the parent's list */
    char name[128];
    char owner[64];
    char method[16];
    double T;                 /* NaN for a sweep parent and for adam */
    job_status status;
    int32_t priority;         /* higher runs first; FIFO within a priority */
    int64_t created_ms, started_ms, finished_ms; /* Unix ms; 0 = not yet */
    int64_t step, steps;      /* progress */
    double steps_per_s;
    char backend[16];         /* "cpu", "cuda" once running */
    char error[512];          /* failed: what happened and what to change */
    bool cancel_requested;
    char *spec_json;          /* normalised spec (children: their single temperature); owned */
} job_row;

void job_row_free(job_row *j); /* frees spec_json */

typedef struct store store;

/* Open (create) the database at db_path and apply the migrations found in schema_dir. */
int store_open(store **out, const char *db_path, const char *schema_dir, bz_err *e);
void store_close(store *s);
/* Highest applied migration number. */
int store_schema_version(store *s, int *version, bz_err *e);
/* PRAGMA integrity_check: 0 when "ok". */
int store_integrity_check(store *s, bz_err *e);

/* ---- jobs ---- */

/* Insert a job (id assigned; created_ms set to now; status queued unless given). */
int store_job_insert(store *s, job_row *j, bz_err *e);
/* BZ_EINVAL with "no job N" when absent. */
int store_job_get(store *s, int64_t id, job_row *out, bz_err *e);
/* Jobs newest first; status < 0 = any; owner NULL = any; parent: -1 any, 0 top-level only, else
 * the children of that parent. *rows is malloc'ed (free each with job_row_free, then free). */
int store_job_list(store *s, int status, const char *owner, int64_t parent, int64_t limit, int64_t offset,
                   job_row **rows, int64_t *count, bz_err *e);
/* Atomically take the next queued job (highest priority, then oldest) and mark it running with
 * started_ms and the worker's name; BZ_ESTATE when none is queued. What a worker runs: a single
 * job, a chain of an unbatched sweep, or a batched sweep as a whole: its parent (spec "batched":
 * true), whose children are all marked running with it (and are never claimed on their own). */
int store_job_claim(store *s, const char *worker, job_row *out, bz_err *e);
/* Set a final or queued status, error text (may be NULL) and finished_ms for final ones. */
int store_job_set_status(store *s, int64_t id, job_status st, const char *error, bz_err *e);
int store_job_set_backend(store *s, int64_t id, const char *backend, bz_err *e);
int store_job_progress(store *s, int64_t id, int64_t step, double steps_per_s, bz_err *e);
/* Queued: becomes cancelled at once. Running: cancel_requested is set (the worker stops within
 * one record interval). Final: BZ_ESTATE. A sweep parent cancels all its unfinished children.
 * A chain of a batched sweep cannot be cancelled alone (BZ_ESTATE naming the sweep). */
int store_job_cancel(store *s, int64_t id, job_status *now, bz_err *e);
int store_job_cancel_requested(store *s, int64_t id, bool *yes, bz_err *e);
/* Delete a finished job (and a sweep parent's children) with its observables, checkpoint and
 * sample rows; BZ_ESTATE when it (or a child) is queued or running. The caller removes files. */
int store_job_delete(store *s, int64_t id, bz_err *e);
/* Start-up recovery: every running job goes back to queued; *count of them. */
int store_requeue_running(store *s, int64_t *count, bz_err *e);
/* Jobs per status (top-level parents excluded) into counts[JOB_STATUS_COUNT]. */
int store_count_by_status(store *s, int64_t *counts, bz_err *e);
/* A sweep parent's status from its children: running if any runs, queued if all queued,
 * failed/cancelled if any is and none is unfinished, else succeeded. Updates the parent row. */
int store_parent_refresh(store *s, int64_t parent_id, bz_err *e);

/* ---- batched sweeps (one worker runs every chain; the rows stay one child per chain) ---- */

/* Every unfinished child of a batched sweep gets status st (queued or final) and the error text
 * (may be NULL), and the parent is refreshed: all in one transaction, so a group never ends half
 * finished (which would leave it neither claimable nor final). */
int store_group_finish(store *s, int64_t parent, job_status st, const char *error, bz_err *e);
/* Progress of n chains (jobs[k] at steps[k], steps_per_s[k]) and of their parent, one transaction. */
int store_group_progress(store *s, const int64_t *jobs, const int64_t *steps, const double *steps_per_s, int32_t n,
                         bz_err *e);

/* ---- observables ---- */

/* Insert records in one transaction (a duplicate step replaces the old row). */
int store_obs_insert(store *s, int64_t job, const obs_record *r, int64_t n, bz_err *e);
/* Delete a job's records with step > after_step (resume from a checkpoint). */
int store_obs_delete_after(store *s, int64_t job, int64_t after_step, bz_err *e);
/* Records with step > since (since = -1: all) in step order, at most limit (<= 0: no limit);
 * fn returns non-zero to stop early. */
typedef int (*store_obs_fn)(void *ctx, const obs_record *r);
int store_obs_each(store *s, int64_t job, int64_t since, int64_t limit, store_obs_fn fn, void *ctx, bz_err *e);
/* Records of a group, one transaction: record r goes to job_of_chain[r.chain] (BZ_EINVAL for a
 * chain outside 0..n_chains-1). A batched worker inserts whole rounds (every chain at one step)
 * this way, so readers never see a step that some chains have and others not yet. */
int store_obs_insert_chains(store *s, const int64_t *job_of_chain, int32_t n_chains, const obs_record *r, int64_t n,
                            bz_err *e);
/* The records of all children of a sweep parent with step > since, in (step, chain) order. limit
 * (<= 0: none) is met at a step boundary: the page holds every record of its last step, so it can
 * exceed limit by up to n_children - 1 records, and since = the last step pages on without a gap. */
int store_obs_each_group(store *s, int64_t parent, int64_t since, int64_t limit, store_obs_fn fn, void *ctx,
                         bz_err *e);
/* Step of the job's last record, -1 when none. */
int store_obs_last_step(store *s, int64_t job, int64_t *step, bz_err *e);

/* ---- checkpoints and samples ---- */

typedef struct ckpt_row {
    int64_t job, seq, step, size, created_ms;
    uint64_t checksum;    /* ckpt_hash64 of the file */
    char path[1024];
} ckpt_row;

/* seq numbers run 1, 2, ... per job. */
int store_ckpt_add(store *s, int64_t job, int64_t step, const char *path, int64_t size, uint64_t checksum,
                   int64_t *seq, bz_err *e);
/* Oldest first; *rows malloc'ed. */
int store_ckpt_list(store *s, int64_t job, ckpt_row **rows, int64_t *count, bz_err *e);
int store_ckpt_get(store *s, int64_t job, int64_t seq, ckpt_row *out, bz_err *e);
int store_ckpt_remove(store *s, int64_t job, int64_t seq, bz_err *e);

typedef struct samples_row {
    int64_t job, count, size, last_step;
    char path[1024];
} samples_row;
int store_samples_set(store *s, const samples_row *r, bz_err *e);
/* BZ_EINVAL when the job has no samples. */
int store_samples_get(store *s, int64_t job, samples_row *out, bz_err *e);

/* ---- users and API tokens (daemon/auth.c makes and checks tokens; no clear token is stored) ---- */

typedef struct user_row {
    int64_t id;
    char name[64];
    bool is_admin;
    int64_t created_ms;
} user_row;

/* BZ_ESTATE when the name is taken. out may be NULL. */
int store_user_add(store *s, const char *name, bool is_admin, user_row *out, bz_err *e);
/* BZ_EINVAL "no user 'NAME'" when absent. */
int store_user_get(store *s, const char *name, user_row *out, bz_err *e);
/* Oldest first; *rows malloc'ed. */
int store_user_list(store *s, user_row **rows, int64_t *count, bz_err *e);

typedef struct token_row {
    int64_t id;               /* chosen by the caller: the token's lookup key (auth.h) */
    int64_t user_id;
    uint8_t salt[16];
    uint8_t hash[32];         /* SHA-256(salt || token) */
    int64_t created_ms, revoked_ms; /* revoked_ms 0: valid */
    char user[64];            /* the owner's name and role (filled by get/list) */
    bool is_admin;
} token_row;

/* Insert t with its given id (created_ms set to now); BZ_ESTATE when the id is taken. */
int store_token_add(store *s, token_row *t, bz_err *e);
/* BZ_EINVAL "no token N" when absent. */
int store_token_get(store *s, int64_t id, token_row *out, bz_err *e);
/* A user's tokens, oldest first; *rows malloc'ed. */
int store_token_list(store *s, int64_t user_id, token_row **rows, int64_t *count, bz_err *e);
/* BZ_EINVAL when absent, BZ_ESTATE when already revoked. */
int store_token_revoke(store *s, int64_t id, bz_err *e);

/* Queued and running chains of an owner (sweep parents not counted, their children are). */
int store_jobs_active(store *s, const char *owner, int64_t *count, bz_err *e);
/* Every checkpoint row, by job then seq; *rows malloc'ed. */
int store_ckpt_all(store *s, ckpt_row **rows, int64_t *count, bz_err *e);

/* Online backup (SQLite backup API, one read transaction: a consistent snapshot while others
 * write) into a new database file dest_path, then checked with integrity_check. */
int store_backup(store *s, const char *dest_path, bz_err *e);

/* Unix time in ms. */
int64_t store_now_ms(void);

#endif
