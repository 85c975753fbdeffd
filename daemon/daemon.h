/* daemon.h: the state `boltzd serve` shares between its parts: configuration, the store handle
 * of the HTTP side, the hub that wakes live streams, and the workers' figures for /metrics. */
#ifndef BZ_DAEMON_H
#define BZ_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub.h"
#include "store.h"

#define BZ_MAX_WORKERS 64

typedef struct worker_stat {
    _Atomic int64_t job_id;       /* 0 when idle */
    _Atomic double steps_per_s;   /* of the chain it runs (0 when idle) */
} worker_stat;

typedef struct bz_config {
    char listen_host[64];         /* "127.0.0.1" */
    int port;                     /* 8765 */
    char data_dir[1024];          /* "./var" */
    char schema_dir[1024];        /* migrations (source tree or installed share dir) */
    char web_dir[1024];           /* static dashboard files */
    int workers;                  /* 1 */
    char backend[16];             /* auto | cpu | cuda: overrides the spec's "auto" */
    char devices[128];            /* CUDA devices for the workers, e.g. "0,1" */
    size_t max_body;              /* request body cap in bytes (1 MiB) */
    int max_connections;          /* 256 */
    int connection_timeout_s;     /* idle timeout per connection, 60 */
    int obs_flush_ms;             /* how often a worker commits observables, 500 */
    int max_connections_per_ip;   /* 0 = no per-client limit */
    bool auth;                    /* auth = on|off: Bearer tokens on every API route but /health; off */
    int64_t max_jobs_per_user;    /* queued + running chains per user (429); 0 = unlimited */
    int64_t max_weights;          /* largest network, weights n (400); 0 = unlimited */
    int64_t max_steps;            /* longest chain, sampler.steps (400); 0 = unlimited */
    int64_t max_job_disk_mb;      /* estimated samples + checkpoints of one job, 10^6 bytes (400); 0 = unlimited */
} bz_config;

typedef struct bz_daemon {
    bz_config cfg;
    store *st;                    /* the HTTP side's connection (workers open their own) */
    hub *hub;
    int n_workers;
    worker_stat workers[BZ_MAX_WORKERS];
    atomic_bool shutting_down;
    int64_t started_ms;
    char backends[64];            /* what this binary can run: "cpu" or "cpu,cuda" */
    char cuda_note[256];          /* devices found, or why none */
} bz_daemon;

/* The settings of serve and the administration subcommands (serve.c): defaults, then the config
 * file (key = value, when config_path is non-NULL), then data_dir (when non-NULL); unset schema
 * and web folders become the source tree's or the installed ones. Errors name the file, line, key. */
int daemon_config_load(bz_config *c, const char *config_path, const char *data_dir, bz_err *e);

/* Folder of a job's files: DATA_DIR/jobs/ID. */
void daemon_job_dir(const bz_daemon *d, int64_t id, char *buf, size_t len);

#endif
