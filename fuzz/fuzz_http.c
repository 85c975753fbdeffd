/* fuzz_http.c: the HTTP request path of `boltzd serve`: libmicrohttpd's request parsing as the
 * daemon configures it, then api/server.c (body cap and 413, route table, path parameters, 404,
 * 405 with Allow, query parameters) and every handler behind it (jobs, sweeps, observables,
 * summaries, SSE, checkpoints, weights and samples downloads, health, metrics, static files).
 *
 * The routing functions are static in api/server.c, so the target drives the real server: the
 * first input starts the API in-process on a free loopback port (api_start) over a store in a
 * scratch folder, runs one small sweep to the end with the real workers (so there are records,
 * checkpoints and samples to serve), then stops the workers. Each input is then sent as it is,
 * as raw bytes, on a fresh connection; the harness closes its sending side and reads the reply
 * until the server closes or a short deadline passes. Jobs that inputs submit are cancelled and
 * deleted now and then so the store stays small and no stream waits on a queued job.
 *
 * A second server on the same store runs with auth on and small quotas: an input that mentions
 * "Authorization" goes there (Bearer parsing, token check, 401, admin and owner rules, 429 and
 * limit replies). Its users have fixed tokens so that seeds can carry valid ones:
 *   bz_1111111100000000000000000000000000000000000000000000000000000000  fuzzadmin (admin)
 *   bz_2222222200000000000000000000000000000000000000000000000000000000  fuzzuser
 *   bz_3333333300000000000000000000000000000000000000000000000000000000  fuzzuser, revoked */
#include <arpa/inet.h>
#include <cblas.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "daemon.h"
#include "fuzz_util.h"
#include "jobfiles.h"
#include "store.h"
#include "worker.h"

#define REPLY_DEADLINE_MS 1500

static bz_daemon *daemon_, *daemon_auth;
static api_server *server, *server_auth;
static int port, port_auth;
static int64_t fixed_max_id; /* jobs made at start-up (kept); later ones are the inputs' */

static void start_auth_server(void);
static void stop_servers(void);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send req, close the sending side, read the reply into buf (NUL-terminated, may be cut). */
static size_t exchange(int to_port, const void *req, size_t len, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fz_fail("socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)to_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        size_t off = 0;
        while (off < len) { /* the server may answer (413) and close before it read everything */
            ssize_t n = send(fd, (const char *)req + off, len - off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            off += (size_t)n;
        }
        shutdown(fd, SHUT_WR);
        int64_t end = now_ms() + REPLY_DEADLINE_MS;
        for (;;) {
            int64_t left = end - now_ms();
            if (left <= 0) break;
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int pr = poll(&p, 1, (int)left);
            if (pr < 0 && errno == EINTR) continue;
            if (pr <= 0) break;
            char tmp[4096];
            ssize_t n = recv(fd, tmp, sizeof tmp, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            if (buf && got + 1 < cap) {
                size_t k = (size_t)n < cap - 1 - got ? (size_t)n : cap - 1 - got;
                memcpy(buf + got, tmp, k);
                got += k;
            }
        }
    }
    close(fd);
    if (buf && cap) buf[got] = '\0';
    return got;
}

static void submit(const char *spec, char *reply, size_t cap)
{
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nX-Boltz-User: fuzz\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(spec), spec);
    exchange(port, req, (size_t)n, reply, cap);
    if (!strstr(reply, " 201 ") && !strstr(reply, " 200 ")) fz_fail("harness: submitting a job failed:\n%s", reply);
}

/* Wait until no job is queued or running (the start-up sweep), at most 60 s. */
static void wait_idle(void)
{
    int64_t end = now_ms() + 60000;
    for (;;) {
        int64_t counts[JOB_STATUS_COUNT] = {0};
        bz_err e;
        if (store_count_by_status(daemon_->st, counts, &e)) fz_fail("harness: count: %s", e.msg);
        if (counts[JOB_QUEUED] == 0 && counts[JOB_RUNNING] == 0) return;
        if (now_ms() > end) fz_fail("harness: the start-up jobs did not finish in 60 s");
        usleep(20000);
    }
}

static void start_server(void)
{
    openblas_set_num_threads(1);
    bz_daemon *d = calloc(1, sizeof *d);
    if (!d) fz_fail("out of memory");
    bz_config *c = &d->cfg;
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->port = 0;
    snprintf(c->data_dir, sizeof c->data_dir, "%s/data", fz_scratch_dir());
    snprintf(c->schema_dir, sizeof c->schema_dir, "%s/schema", BOLTZ_SOURCE_DIR);
    snprintf(c->web_dir, sizeof c->web_dir, "%s/web", BOLTZ_SOURCE_DIR);
    c->workers = 1;
    snprintf(c->backend, sizeof c->backend, "cpu");
    c->max_body = 64 * 1024; /* small, so 413 is reachable */
    c->max_connections = 64;
    c->connection_timeout_s = 2;
    c->obs_flush_ms = 50;
    bz_err e;
    bz_err_clear(&e);
    char db[1200];
    snprintf(db, sizeof db, "%s/boltzd.db", c->data_dir);
    if (jf_mkdirs(c->data_dir, &e)) fz_fail("harness: %s", e.msg);
    if (store_open(&d->st, db, c->schema_dir, &e)) fz_fail("harness: store_open: %s", e.msg);
    d->hub = hub_new();
    d->n_workers = 1;
    d->started_ms = store_now_ms();
    snprintf(d->backends, sizeof d->backends, "cpu");
    snprintf(d->cuda_note, sizeof d->cuda_note, "fuzzing: cpu only");
    daemon_ = d;
    if (api_start(d, &server, &port, &e)) fz_fail("harness: api_start: %s", e.msg);

    /* Some state to serve: a finished sweep of two chains with records, samples and checkpoints,
     * a cancelled job, a single finished job. */
    worker_pool *pool = NULL;
    if (workers_start(d, &pool, &e)) fz_fail("harness: workers_start: %s", e.msg);
    char reply[8192];
    const char *data = "\"dataset\": {\"kind\": \"spin\", \"n_in\": 12, \"classes\": 3, \"train\": 60, \"test\": 30},"
                       " \"model\": {\"hidden\": [5]},";
    char spec[2048];
    snprintf(spec, sizeof spec,
             "{\"name\": \"fuzz-sweep\", %s \"sampler\": {\"method\": \"pl\", \"T\": [0.01, 0.02], \"steps\": 120,"
             " \"batch\": 16}, \"record\": {\"every\": 10, \"test\": true}, \"samples\": {\"every\": 30},"
             " \"checkpoint\": {\"every\": 40, \"keep\": 3}}",
             data);
    submit(spec, reply, sizeof reply);
    snprintf(spec, sizeof spec,
             "{\"name\": \"fuzz-hmc\", %s \"sampler\": {\"method\": \"hmc\", \"T\": 0.01, \"steps\": 30},"
             " \"record\": {\"every\": 5}}",
             data);
    submit(spec, reply, sizeof reply);
    wait_idle();
    atomic_store(&d->shutting_down, true);
    workers_join(pool);
    atomic_store(&d->shutting_down, false);
    snprintf(spec, sizeof spec, "{\"name\": \"fuzz-cancelled\", %s \"sampler\": {\"T\": 0.01, \"steps\": 10, \"batch\": 8}}", data);
    submit(spec, reply, sizeof reply);
    job_row *rows = NULL;
    int64_t n = 0;
    if (store_job_list(d->st, -1, NULL, -1, 100, 0, &rows, &n, &e)) fz_fail("harness: list: %s", e.msg);
    for (int64_t i = 0; i < n; i++) {
        if (rows[i].id > fixed_max_id) fixed_max_id = rows[i].id;
        job_status now;
        if (rows[i].status == JOB_QUEUED) store_job_cancel(d->st, rows[i].id, &now, &e);
        job_row_free(&rows[i]);
    }
    free(rows);
    start_auth_server();
    atexit(stop_servers);
}

/* A user with a token whose text is fixed (see the top of this file). */
static void add_user(store *st, const char *name, bool admin, const char *token, bool revoke)
{
    bz_err e;
    user_row u;
    if (store_user_get(st, name, &u, &e) && store_user_add(st, name, admin, &u, &e))
        fz_fail("harness: user %s: %s", name, e.msg);
    token_row t;
    memset(&t, 0, sizeof t);
    if (!auth_token_parse(token, &t.id)) fz_fail("harness: token %s does not parse", token);
    t.user_id = u.id;
    for (int i = 0; i < AUTH_SALT_BYTES; i++) t.salt[i] = (uint8_t)(0xa0 + i);
    auth_token_hash(t.salt, token, t.hash);
    if (store_token_add(st, &t, &e)) fz_fail("harness: token for %s: %s", name, e.msg);
    if (revoke && store_token_revoke(st, t.id, &e)) fz_fail("harness: revoke: %s", e.msg);
}

/* The auth-on twin: same store, hub and files, its own listening socket and settings. */
static void start_auth_server(void)
{
    bz_daemon *d = calloc(1, sizeof *d);
    if (!d) fz_fail("out of memory");
    d->cfg = daemon_->cfg;
    d->cfg.auth = true;
    d->cfg.max_jobs_per_user = 3;
    d->cfg.max_weights = 100000;
    d->cfg.max_steps = 1000000;
    d->cfg.max_job_disk_mb = 64;
    d->st = daemon_->st;
    d->hub = daemon_->hub;
    d->n_workers = daemon_->n_workers;
    d->started_ms = daemon_->started_ms;
    memcpy(d->backends, daemon_->backends, sizeof d->backends);
    memcpy(d->cuda_note, daemon_->cuda_note, sizeof d->cuda_note);
    add_user(d->st, "fuzzadmin", true, "bz_1111111100000000000000000000000000000000000000000000000000000000", false);
    add_user(d->st, "fuzzuser", false, "bz_2222222200000000000000000000000000000000000000000000000000000000", false);
    add_user(d->st, "fuzzuser", false, "bz_3333333300000000000000000000000000000000000000000000000000000000", true);
    bz_err e;
    bz_err_clear(&e);
    daemon_auth = d;
    if (api_start(d, &server_auth, &port_auth, &e)) fz_fail("harness: api_start (auth): %s", e.msg);
}

/* At exit: stop both servers (streams end with the hub), then the store, before the scratch
 * folder goes (atexit runs this first: it was registered after the folder's cleanup). */
static void stop_servers(void)
{
    atomic_store(&daemon_->shutting_down, true);
    if (daemon_auth) atomic_store(&daemon_auth->shutting_down, true);
    hub_shutdown(daemon_->hub);
    if (server_auth) api_stop(server_auth);
    api_stop(server);
    store_close(daemon_->st);
    hub_free(daemon_->hub);
    free(daemon_auth);
    free(daemon_);
    daemon_ = daemon_auth = NULL;
}

/* Cancel and delete the jobs that inputs submitted. */
static void tidy(void)
{
    job_row *rows = NULL;
    int64_t n = 0;
    bz_err e;
    if (store_job_list(daemon_->st, -1, NULL, -1, 1000, 0, &rows, &n, &e)) return;
    for (int64_t i = 0; i < n; i++) {
        if (rows[i].id > fixed_max_id) {
            job_status now;
            if (!job_status_final(rows[i].status)) store_job_cancel(daemon_->st, rows[i].id, &now, &e);
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (rows[i].id > fixed_max_id && !rows[i].parent_id) store_job_delete(daemon_->st, rows[i].id, &e);
        job_row_free(&rows[i]);
    }
    free(rows);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned long runs;
    static int echo = -1;
    if (!daemon_) start_server();
    /* An input that mentions "Authorization" goes to the auth-on twin. */
    int to = memmem(data, size, "uthorization", 12) ? port_auth : port;
    if (echo < 0) echo = getenv("BZ_FUZZ_HTTP_ECHO") != NULL; /* debugging: print each reply */
    if (echo) {
        static char reply[1 << 16];
        exchange(to, data, size, reply, sizeof reply);
        fprintf(stderr, "---- reply:\n%s\n----\n", reply);
    } else {
        exchange(to, data, size, NULL, 0);
    }
    /* A POST may have queued a job; a queued job's stream would wait for it. */
    if ((size >= 4 && !memcmp(data, "POST", 4)) || ++runs % 256 == 0) tidy();
    return 0;
}
