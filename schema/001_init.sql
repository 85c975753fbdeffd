-- 001_init.sql: boltzd's first database schema (DESIGN.md "Storage"): jobs and the queue index,
-- observables (one REAL column per observable, named and ordered exactly as obs_names in
-- core/observables.c; tests/unit/test_store.c fails when they differ), checkpoint and sample
-- file rows, and the users/tokens tables the auth work will fill. Applied by daemon/store.c inside
-- one transaction and recorded in schema_version; it must not contain BEGIN/COMMIT itself.
-- Conventions: times are Unix milliseconds (0 = not yet); a NaN double is stored as NULL.

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id        INTEGER REFERENCES jobs(id) ON DELETE CASCADE,  -- NULL: top level
    n_children       INTEGER NOT NULL DEFAULT 0,                      -- > 0: a sweep parent
    chain            INTEGER NOT NULL DEFAULT 0,                      -- child: index of its T
    name             TEXT    NOT NULL DEFAULT '',
    owner            TEXT    NOT NULL DEFAULT '',
    method           TEXT    NOT NULL DEFAULT '',
    T                REAL,                                            -- NULL: not applicable
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,                      -- higher runs first
    created_ms       INTEGER NOT NULL,
    started_ms       INTEGER NOT NULL DEFAULT 0,
    finished_ms      INTEGER NOT NULL DEFAULT 0,
    step             INTEGER NOT NULL DEFAULT 0,
    steps            INTEGER NOT NULL DEFAULT 0,
    steps_per_s      REAL             DEFAULT 0,
    backend          TEXT    NOT NULL DEFAULT '',
    error            TEXT    NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    worker           TEXT,                                            -- who runs / ran it
    spec_json        TEXT    NOT NULL
);

-- The claim query: WHERE status = 'queued' ORDER BY priority DESC, created_ms, id.
CREATE INDEX jobs_claim ON jobs (status, priority DESC, created_ms, id);
-- Children of a sweep (listing, parent refresh, ON DELETE CASCADE).
CREATE INDEX jobs_parent ON jobs (parent_id);

CREATE TABLE observables (
    job_id        INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    step          INTEGER NOT NULL,
    t_wall        REAL,
    T             REAL,
    chain         INTEGER NOT NULL DEFAULT 0,
    U             REAL,
    loss          REAL,
    w2            REAL,
    train_err     REAL,
    test_err      REAL,
    test_loss     REAL,
    val_err       REAL,
    val_loss      REAL,
    kin_T         REAL,
    msd0          REAL,
    r_mean        REAL,
    r_max         REAL,
    grad_var      REAL,
    grad_var_12   REAL,
    n_raise       REAL,
    n_reinit      REAL,
    n_guard       REAL,
    n_floor       REAL,
    n_stab        REAL,
    var_cost      REAL,
    var_batches   REAL,
    acc_rate      REAL,
    dH            REAL,
    noise_ks_frac REAL,
    noise_corr    REAL,
    noise_acf1    REAL,
    PRIMARY KEY (job_id, step)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,          -- 1, 2, ... per job
    step       INTEGER NOT NULL,
    path       TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    checksum   INTEGER NOT NULL,          -- ckpt_hash64 (uint64) stored as its int64 bits
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE samples (
    job_id    INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    path      TEXT    NOT NULL,
    count     INTEGER NOT NULL DEFAULT 0,
    size      INTEGER NOT NULL DEFAULT 0,
    last_step INTEGER NOT NULL DEFAULT -1
);

-- For the auth issue: a user holds API tokens; only a salted hash of a token is kept.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    is_admin   INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_ms INTEGER NOT NULL
);

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    salt       BLOB    NOT NULL,
    hash       BLOB    NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER NOT NULL DEFAULT 0   -- 0: valid
);
CREATE INDEX tokens_user ON tokens (user_id);
