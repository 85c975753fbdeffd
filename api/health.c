/* health.c: GET /health (liveness, version, backends, devices, workers) and GET /metrics
 * (Prometheus text format 0.0.4: jobs by state, queue length, steps/s per worker, uptime). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "routes.h"
#ifdef BOLTZ_HAVE_CUDA
#include "gpu_probe.h"
#endif

static double uptime_s(bz_daemon *d)
{
    return d->started_ms > 0 ? (double)(store_now_ms() - d->started_ms) / 1000.0 : 0.0;
}

static json_t *devices_json(bz_daemon *d)
{
    json_t *arr = json_array();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    json_array_append_new(arr, json_pack("{s:s, s:i}", "backend", "cpu", "threads", (int)(ncpu > 0 ? ncpu : 1)));
    if (strstr(d->backends, "cuda") || d->cuda_note[0])
        json_array_append_new(arr, json_pack("{s:s, s:s, s:b}", "backend", "cuda", "note", d->cuda_note, "available",
                                             strstr(d->backends, "cuda") != NULL));
#ifdef BOLTZ_HAVE_CUDA
    /* One entry per CUDA device: index, name, compute capability, memory total/free (MiB). */
    char buf[8192];
    if (gpu_describe_devices(buf, sizeof buf) > 0) {
        json_t *gpus = json_loads(buf, 0, NULL);
        size_t i;
        json_t *g;
        json_array_foreach(gpus, i, g) {
            json_object_set_new(g, "backend", json_string("cuda"));
            json_array_append(arr, g);
        }
        json_decref(gpus);
    }
#endif
    return arr;
}

static json_t *workers_json(bz_daemon *d)
{
    json_t *arr = json_array();
    for (int i = 0; i < d->n_workers && i < BZ_MAX_WORKERS; i++) {
        int64_t job = atomic_load(&d->workers[i].job_id);
        double sps = atomic_load(&d->workers[i].steps_per_s);
        json_array_append_new(arr, json_pack("{s:i, s:o, s:o}", "worker", i, "job",
                                             job ? json_integer(job) : json_null(), "steps_per_s",
                                             api_num(job ? sps : 0.0)));
    }
    return arr;
}

enum MHD_Result api_health(api_req *r)
{
    bz_daemon *d = r->d;
    bool down = atomic_load(&d->shutting_down);
    int64_t counts[JOB_STATUS_COUNT] = {0};
    bz_err e = {0};
    bool store_ok = store_count_by_status(d->st, counts, &e) == 0;
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:i, s:o, s:f, s:b}", "status", down ? "shutting_down" : "ok",
                          "version", BOLTZ_VERSION, "backends", d->backends, "devices", devices_json(d), "workers",
                          d->n_workers, "worker_stats", workers_json(d), "uptime_s", uptime_s(d), "store_ok", store_ok);
    if (o && store_ok) {
        json_object_set_new(o, "queued", json_integer(counts[JOB_QUEUED]));
        json_object_set_new(o, "running", json_integer(counts[JOB_RUNNING]));
    }
    return api_json(r->conn, down ? 503 : 200, o);
}

/* ---------------------------------------------------------------- /metrics */

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void __attribute__((format(printf, 2, 3))) tprintf(text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->p ? vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? 2 * t->cap : 4096;
        char *q = realloc(t->p, cap);
        if (!q) return;
        t->p = q;
        t->cap = cap;
    }
}

static void gauge(text *t, const char *name, const char *help)
{
    tprintf(t, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

enum MHD_Result api_metrics(api_req *r)
{
    bz_daemon *d = r->d;
    int64_t counts[JOB_STATUS_COUNT] = {0};
    bz_err e = {0};
    if (store_count_by_status(d->st, counts, &e)) return api_error_bz(r->conn, &e);
    text t = {0};
    gauge(&t, "boltzd_jobs", "Jobs by state (sweep parents not counted; their children are).");
    for (int s = 0; s < JOB_STATUS_COUNT; s++)
        tprintf(&t, "boltzd_jobs{state=\"%s\"} %lld\n", job_status_name((job_status)s), (long long)counts[s]);
    gauge(&t, "boltzd_queue_length", "Jobs waiting for a worker.");
    tprintf(&t, "boltzd_queue_length %lld\n", (long long)counts[JOB_QUEUED]);
    gauge(&t, "boltzd_workers", "Worker threads.");
    tprintf(&t, "boltzd_workers %d\n", d->n_workers);
    gauge(&t, "boltzd_worker_busy", "1 while the worker runs a job.");
    for (int i = 0; i < d->n_workers && i < BZ_MAX_WORKERS; i++)
        tprintf(&t, "boltzd_worker_busy{worker=\"%d\"} %d\n", i, atomic_load(&d->workers[i].job_id) != 0);
    gauge(&t, "boltzd_worker_steps_per_second", "Sampler steps per second of the job each worker runs.");
    for (int i = 0; i < d->n_workers && i < BZ_MAX_WORKERS; i++) {
        double sps = atomic_load(&d->workers[i].job_id) ? atomic_load(&d->workers[i].steps_per_s) : 0.0;
        tprintf(&t, "boltzd_worker_steps_per_second{worker=\"%d\"} %.6g\n", i, sps == sps ? sps : 0.0);
    }
    gauge(&t, "boltzd_uptime_seconds", "Seconds since the daemon started.");
    tprintf(&t, "boltzd_uptime_seconds %.3f\n", uptime_s(d));
    gauge(&t, "boltzd_shutting_down", "1 while the daemon shuts down.");
    tprintf(&t, "boltzd_shutting_down %d\n", (int)atomic_load(&d->shutting_down));
    gauge(&t, "boltzd_build_info", "Version and backends of this binary.");
    tprintf(&t, "boltzd_build_info{version=\"%s\",backends=\"%s\"} 1\n", BOLTZ_VERSION, d->backends);
    if (!t.p) return api_error(r->conn, 500, "internal", NULL, "out of memory");
    struct MHD_Response *resp = MHD_create_response_from_buffer(t.len, t.p, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(t.p);
        return MHD_NO;
    }
    return api_queue(r->conn, 200, resp, "text/plain; version=0.0.4; charset=utf-8");
}
