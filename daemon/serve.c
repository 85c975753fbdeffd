/* serve.c: `boltzd serve`, the daemon: options and config file (shared with the administration
 * subcommands through daemon_config_load), the listen-address rule (non-loopback needs auth), the
 * data-dir lock, the store and its start-up recovery, worker threads, the HTTP API, and a clean
 * stop on SIGTERM/SIGINT (running chains are checkpointed and go back to the queue). */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "backend_select.h"
#include "auth.h"
#include "cli.h"
#include "daemon.h"
#include "jobfiles.h"
#include "sdnotify.h"
#include "worker.h"

#ifdef BOLTZ_HAVE_CUDA
#include "gpu_probe.h"
#endif

static void config_defaults(bz_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->port = 8765;
    snprintf(c->data_dir, sizeof c->data_dir, "./var");
    c->workers = 1;
    snprintf(c->backend, sizeof c->backend, "auto");
    c->max_body = 1 << 20;
    c->max_connections = 256;
    c->connection_timeout_s = 60;
    c->obs_flush_ms = 500;
}

/* The first of candidates that is a folder. */
static void pick_dir(char *out, size_t len, const char *a, const char *b)
{
    struct stat st;
    snprintf(out, len, "%s", stat(a, &st) == 0 && S_ISDIR(st.st_mode) ? a : b);
}

static int parse_listen(bz_config *c, const char *v, bz_err *e)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof c->listen_host)
        return bz_fail(e, BZ_EINVAL, "listen", "listen must be HOST:PORT, e.g. 127.0.0.1:8765 (got '%s')", v);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return bz_fail(e, BZ_EINVAL, "listen", "listen port must be 0..65535 (got '%s')", colon + 1);
    memcpy(c->listen_host, v, (size_t)(colon - v));
    c->listen_host[colon - v] = '\0';
    c->port = (int)port;
    return 0;
}

static int parse_int(const char *key, const char *v, long lo, long hi, long *out, bz_err *e)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return bz_fail(e, BZ_EINVAL, key, "%s must be an integer in %ld..%ld (got '%s')", key, lo, hi, v);
    *out = x;
    return 0;
}

static int parse_on_off(const char *key, const char *v, bool *out, bz_err *e)
{
    if (!strcmp(v, "on")) *out = true;
    else if (!strcmp(v, "off")) *out = false;
    else return bz_fail(e, BZ_EINVAL, key, "%s must be on or off (got '%s')", key, v);
    return 0;
}

/* Key spelled with '-' (command line) or '_' (config file). */
static bool key_is(const char *key, const char *name)
{
    for (; *key && *name; key++, name++)
        if (*key != *name && !(*key == '-' && *name == '_')) return false;
    return !*key && !*name;
}

/* Limits and quotas: integers, 0 = unlimited. Returns 1 when key is not one of them. */
static int set_limit(bz_config *c, const char *key, const char *v, bz_err *e)
{
    static const struct { const char *name; size_t off; long hi; } limits[] = {
        {"max_jobs_per_user", offsetof(bz_config, max_jobs_per_user), 1000000},
        {"max_weights", offsetof(bz_config, max_weights), (long)BZ_LIMIT_PARAMS},
        {"max_steps", offsetof(bz_config, max_steps), (long)BZ_LIMIT_STEPS},
        {"max_job_disk_mb", offsetof(bz_config, max_job_disk_mb), 1L << 40},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        if (!key_is(key, limits[i].name)) continue;
        long x = 0;
        int rc = parse_int(limits[i].name, v, 0, limits[i].hi, &x, e);
        if (!rc) *(int64_t *)((char *)c + limits[i].off) = x;
        return rc;
    }
    return 1;
}

/* One setting, from the command line (--key) or the config file (key = value). */
static int set_option(bz_config *c, const char *key, const char *v, bz_err *e)
{
    long x;
    int rc = set_limit(c, key, v, e);
    if (rc != 1) return rc;
    rc = 0;
    if (!strcmp(key, "listen")) return parse_listen(c, v, e);
    if (!strcmp(key, "auth")) return parse_on_off(key, v, &c->auth, e);
    if (!strcmp(key, "data-dir") || !strcmp(key, "data_dir")) snprintf(c->data_dir, sizeof c->data_dir, "%s", v);
    else if (!strcmp(key, "schema-dir") || !strcmp(key, "schema_dir")) snprintf(c->schema_dir, sizeof c->schema_dir, "%s", v);
    else if (!strcmp(key, "web-dir") || !strcmp(key, "web_dir")) snprintf(c->web_dir, sizeof c->web_dir, "%s", v);
    else if (!strcmp(key, "devices")) snprintf(c->devices, sizeof c->devices, "%s", v);
    else if (!strcmp(key, "backend")) {
        if (strcmp(v, "auto") && strcmp(v, "cpu") && strcmp(v, "cuda"))
            return bz_fail(e, BZ_EINVAL, "backend", "backend must be auto, cpu or cuda (got '%s')", v);
        snprintf(c->backend, sizeof c->backend, "%s", v);
    } else if (!strcmp(key, "workers")) {
        if (!(rc = parse_int(key, v, 1, BZ_MAX_WORKERS, &x, e))) c->workers = (int)x;
    } else if (!strcmp(key, "max-body") || !strcmp(key, "max_body")) {
        if (!(rc = parse_int(key, v, 1024, 1L << 30, &x, e))) c->max_body = (size_t)x;
    } else if (!strcmp(key, "max-connections") || !strcmp(key, "max_connections")) {
        if (!(rc = parse_int(key, v, 4, 100000, &x, e))) c->max_connections = (int)x;
    } else if (!strcmp(key, "connection-timeout") || !strcmp(key, "connection_timeout")) {
        if (!(rc = parse_int(key, v, 1, 86400, &x, e))) c->connection_timeout_s = (int)x;
    } else if (key_is(key, "max_connections_per_ip")) {
        if (!(rc = parse_int(key, v, 0, 100000, &x, e))) c->max_connections_per_ip = (int)x;
    } else return bz_fail(e, BZ_EINVAL, key, "unknown setting '%s'", key);
    return rc;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r')) *--end = '\0';
    return s;
}

/* key = value lines; '#' starts a comment. Errors name the file and line. */
static int load_config(bz_config *c, const char *path, bz_err *e)
{
    FILE *f = fopen(path, "r");
    if (!f) return bz_fail(e, BZ_EIO, path, "cannot read config %s: %s", path, strerror(errno));
    char line[2048];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = bz_fail(e, BZ_EINVAL, path, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        bz_err le;
        if (set_option(c, trim(s), trim(eq + 1), &le))
            rc = bz_fail(e, BZ_EINVAL, le.field, "%s:%d: %s", path, lineno, le.msg);
    }
    fclose(f);
    return rc;
}

/* A second daemon on the same data dir refuses to start. The lock lives as long as the fd. */
static int lock_data_dir(const char *dir, int *fd_out, bz_err *e)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/boltzd.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return bz_fail(e, BZ_EIO, path, "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        char pid[32] = "?";
        ssize_t n = read(fd, pid, sizeof pid - 1);
        pid[n > 0 ? n : 1] = '\0';
        close(fd);
        return bz_fail(e, BZ_ESTATE, "data-dir", "another boltzd (pid %s) is using %s", trim(pid), dir);
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || write(fd, pid, (size_t)len) != len) { /* the pid is informative only */
    }
    *fd_out = fd;
    return 0;
}

static void describe_backends(bz_daemon *d)
{
#ifdef BOLTZ_HAVE_CUDA
    char why[256];
    int n = gpu_device_count(why, sizeof why);
    snprintf(d->backends, sizeof d->backends, "cpu,cuda");
    snprintf(d->cuda_note, sizeof d->cuda_note, "%s", why); /* devices found, or why none */
    (void)n;
#else
    snprintf(d->backends, sizeof d->backends, "cpu");
    snprintf(d->cuda_note, sizeof d->cuda_note, "built without the CUDA backend");
#endif
}

static const char *serve_usage =
    "boltzd serve [--config FILE] [--listen 127.0.0.1:8765] [--data-dir ./var] [--workers N]\n"
    "             [--backend auto|cpu|cuda] [--devices 0,1] [--max-body BYTES] [--port-file FILE]\n"
    "             [--auth on|off] [--max-connections N] [--max-connections-per-ip N] [--connection-timeout S]\n"
    "             [--max-jobs-per-user N] [--max-weights N] [--max-steps N] [--max-job-disk-mb MB]";

/* Unset folders: the source tree's when this binary runs from a build, else the installed ones. */
static void default_dirs(bz_config *c)
{
    if (!c->schema_dir[0]) pick_dir(c->schema_dir, sizeof c->schema_dir, BOLTZ_SOURCE_DIR "/schema", BOLTZ_SHARE_DIR "/schema");
    if (!c->web_dir[0]) pick_dir(c->web_dir, sizeof c->web_dir, BOLTZ_SOURCE_DIR "/web", BOLTZ_SHARE_DIR "/web");
}

int daemon_config_load(bz_config *c, const char *config_path, const char *data_dir, bz_err *e)
{
    config_defaults(c);
    int rc = config_path ? load_config(c, config_path, e) : 0;
    if (!rc && data_dir) rc = set_option(c, "data-dir", data_dir, e);
    if (!rc) default_dirs(c);
    return rc;
}

/* Command-line options over the config file over the defaults. */
static int parse_serve_args(int argc, char **argv, bz_config *c, const char **port_file, bz_err *e)
{
    config_defaults(c);
    for (int i = 0; i < argc; i++) /* the config file first, whatever its position */
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            int rc = load_config(c, argv[i + 1], e);
            if (rc) return rc;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 3;
        if (strncmp(a, "--", 2) || i + 1 >= argc)
            return bz_fail(e, BZ_EINVAL, a, "unexpected argument '%s'\nusage: %s", a, serve_usage);
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) continue;
        if (!strcmp(a, "--port-file")) {
            *port_file = v;
            continue;
        }
        int rc = set_option(c, a + 2, v, e);
        if (rc) return rc;
    }
    default_dirs(c);
    return auth_check_listen(c, e);
}

static int write_port_file(const char *path, int port)
{
    char text[32];
    snprintf(text, sizeof text, "%d\n", port);
    bz_err e;
    return jf_write_atomic(path, text, &e);
}

/* One line on auth and the limits; a warning when auth is on and nobody could log in. */
static void log_auth(bz_daemon *d)
{
    const bz_config *c = &d->cfg;
    fprintf(stderr,
            "boltzd: auth %s; limits: max_jobs_per_user %lld, max_weights %lld, max_steps %lld, max_job_disk_mb %lld "
            "(0 = unlimited)\n",
            c->auth ? "on (Bearer token on every API route but /health)" : "off", (long long)c->max_jobs_per_user,
            (long long)c->max_weights, (long long)c->max_steps, (long long)c->max_job_disk_mb);
    user_row *users = NULL;
    int64_t n = 0;
    bz_err e;
    if (c->auth && store_user_list(d->st, &users, &n, &e) == 0 && n == 0)
        fprintf(stderr,
                "boltzd: auth is on but there are no users: boltzd user add NAME, then boltzd token create NAME\n");
    free(users);
}

int cli_serve(int argc, char **argv)
{
    bz_daemon *d = calloc(1, sizeof *d);
    if (!d) return 1;
    const char *port_file = NULL;
    bz_err e;
    bz_err_clear(&e);
    int rc = parse_serve_args(argc, argv, &d->cfg, &port_file, &e);
    if (rc == 3) {
        printf("usage: %s\n", serve_usage);
        free(d);
        return 0;
    }
    /* Signals go to sigwait below, never to a worker or HTTP thread. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int lock_fd = -1;
    char db[1200];
    snprintf(db, sizeof db, "%s/boltzd.db", d->cfg.data_dir);
    if (!rc && backend_worker_device(d->cfg.devices, 0, &e) < 0) rc = e.code; /* a bad --devices list */
    if (!rc) rc = jf_mkdirs(d->cfg.data_dir, &e);
    if (!rc) rc = lock_data_dir(d->cfg.data_dir, &lock_fd, &e);
    if (!rc) rc = store_open(&d->st, db, d->cfg.schema_dir, &e);
    int64_t requeued = 0;
    if (!rc) rc = store_requeue_running(d->st, &requeued, &e);
    if (rc) {
        if (d->st) store_close(d->st);
        if (lock_fd >= 0) close(lock_fd);
        free(d);
        return cli_report(&e);
    }
    if (requeued) fprintf(stderr, "boltzd: recovery: %lld interrupted job(s) back in the queue\n", (long long)requeued);
    log_auth(d);
    d->hub = hub_new();
    d->n_workers = d->cfg.workers;
    /* OpenBLAS threads spin while they wait: workers x BLAS threads must not exceed the cores. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int blas_threads = cores > d->n_workers ? (int)(cores / d->n_workers) : 1;
    openblas_set_num_threads(blas_threads);
    d->started_ms = store_now_ms();
    describe_backends(d);
    api_server *api = NULL;
    worker_pool *pool = NULL;
    int port = 0;
    rc = api_start(d, &api, &port, &e);
    if (!rc) rc = workers_start(d, &pool, &e);
    if (!rc) {
        fprintf(stderr,
                "boltzd %s: listening on http://%s:%d/ (dashboard; API under /api/v1), data dir %s, %d worker(s) x %d "
                "BLAS thread(s), backends %s\n",
                BOLTZ_VERSION, d->cfg.listen_host, port, d->cfg.data_dir, d->n_workers, blas_threads, d->backends);
        if (port_file) write_port_file(port_file, port);
        char ready[160];
        snprintf(ready, sizeof ready, "READY=1\nSTATUS=listening on %s:%d, %d worker(s)", d->cfg.listen_host, port,
                 d->n_workers);
        bz_sd_notify(ready); /* systemd Type=notify; a no-op without $NOTIFY_SOCKET */
        int sig = 0;
        sigwait(&sigs, &sig);
        bz_sd_notify("STOPPING=1\nSTATUS=stopping: checkpointing running chains");
        fprintf(stderr, "boltzd: signal %d: stopping; running chains are checkpointed and requeued\n", sig);
    }
    atomic_store(&d->shutting_down, true);
    hub_shutdown(d->hub);
    workers_join(pool);
    api_wait_streams(3000);
    if (api) api_stop(api);
    store_close(d->st);
    hub_free(d->hub);
    close(lock_fd);
    free(d);
    if (rc) return cli_report(&e);
    fprintf(stderr, "boltzd: stopped\n");
    return 0;
}
