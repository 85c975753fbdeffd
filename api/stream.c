/* stream.c: GET /jobs/{id}/stream, the job's records as Server-Sent Events.
 * A batched sweep's parent streams the records of all its chains, in (step, chain) order; there the
 * id (the step) is on the last chain's record of each step only, so a client that reconnects after
 * a partly received step gets that step again whole (and keeps the records it had).
 *
 *   retry: 2000                                   once, first
 *   event: observable / id: STEP / data: {...}    one per record, in step order
 *   event: status / data: {"status": ...}         once the backlog is sent, then on every change
 *   : keepalive                                   after a quiet interval (at most 15 s)
 * The stream resumes after Last-Event-ID (or ?since=STEP), ends after the final status once every
 * record was sent, and ends when the daemon shuts down. The content reader blocks on the hub
 * (one thread per connection); while it waits it checks every second whether the client hung up,
 * so a vanished client frees its thread, socket and memory within about a second. */
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routes.h"

#define SSE_BATCH 200
#define SSE_SLICE_MS 1000
#define SSE_KEEPALIVE_MS 15000
#define EVENT_MAX 4096

typedef struct sse {
    bz_daemon *d;
    struct MHD_Connection *conn;
    int64_t job, last_sent;
    int32_t group_chains;      /* a batched sweep's parent: its number of chains; 0 otherwise */
    int last_status;           /* -1 before the first status event */
    int keepalive_ms;
    bool done;
    char *buf;
    size_t len, pos, cap;
    bool fail;
} sse;

static void put(sse *s, const char *text, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 16 * 1024;
        while (cap < s->len + n) cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b) {
            s->fail = true;
            return;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
}

static void put_str(sse *s, const char *text) { put(s, text, strlen(text)); }

static int put_record(void *ctx, const obs_record *r)
{
    sse *s = ctx;
    char ev[EVENT_MAX];
    const bool end_of_step = s->group_chains == 0 || r->chain == s->group_chains - 1;
    int k = end_of_step ? snprintf(ev, sizeof ev, "event: observable\nid: %lld\ndata: ", (long long)r->step)
                        : snprintf(ev, sizeof ev, "event: observable\ndata: ");
    int n = obs_to_ndjson(r, ev + k, sizeof ev - (size_t)k - 2);
    if (n < 0) {
        s->fail = true;
        return 1;
    }
    /* obs_to_ndjson ended the line with '\n'; one more ends the event. */
    ev[k + n] = '\n';
    put(s, ev, (size_t)(k + n + 1));
    s->last_sent = r->step;
    return s->fail;
}

/* Records after last_sent (one batch): 1 when some were queued, 0 when none, -1 on an error. */
static int emit_records(sse *s)
{
    int64_t was = s->last_sent;
    bz_err e = {0};
    int rc = s->group_chains ? store_obs_each_group(s->d->st, s->job, s->last_sent, SSE_BATCH, put_record, s, &e)
                             : store_obs_each(s->d->st, s->job, s->last_sent, SSE_BATCH, put_record, s, &e);
    if (rc) return -1;
    return s->fail ? -1 : s->last_sent != was;
}

static void emit_status(sse *s, const job_row *j)
{
    json_t *o = json_pack("{s:I, s:s, s:I, s:I, s:b}", "job", (json_int_t)j->id, "status", job_status_name(j->status),
                          "step", (json_int_t)j->step, "steps", (json_int_t)j->steps, "cancel_requested",
                          j->cancel_requested);
    if (o && j->error[0]) json_object_set_new(o, "error", json_string(j->error));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        s->fail = true;
        return;
    }
    put_str(s, "event: status\ndata: ");
    put_str(s, text);
    put_str(s, "\n\n");
    free(text);
    s->last_status = (int)j->status;
}

/* Has the client closed its end? (a hang-up or error on the socket; pending input is fine) */
static bool client_gone(sse *s)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static bool stopping(sse *s) { return hub_is_shutdown(s->d->hub) || atomic_load(&s->d->shutting_down); }

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Wait for the hub to move on: 1 when it did, 0 when stopping, -1 when the client is gone, 2 when
 * the keepalive is due (quiet since `since`). */
static int wait_change(sse *s, uint64_t gen, int64_t since)
{
    for (;;) {
        uint64_t g = hub_wait(s->d->hub, gen, SSE_SLICE_MS);
        if (stopping(s)) return 0;
        if (client_gone(s)) return -1;
        if (mono_ms() - since >= s->keepalive_ms) return 2;
        if (g != gen) return 1;
    }
}

/* Produce the next part of the stream into the buffer. Returns 1 with data, 0 at the end of the
 * stream, -1 to drop the connection (client gone, store error). */
static int produce(sse *s)
{
    int64_t quiet_since = mono_ms();
    for (;;) {
        if (s->done || stopping(s)) return 0;
        uint64_t gen = hub_generation(s->d->hub);
        int n = emit_records(s);
        if (n != 0) return n;
        job_row j;
        bz_err e = {0};
        if (store_job_get(s->d->st, s->job, &j, &e)) {
            if (e.code != BZ_EINVAL) return -1; /* a store error: the client reconnects */
            put_str(s, "event: status\ndata: {\"status\":\"deleted\"}\n\n"); /* while we watched */
            s->done = true;
            return s->fail ? -1 : 1;
        }
        bool final = job_status_final(j.status), changed = (int)j.status != s->last_status;
        if (final && (n = emit_records(s)) != 0) { /* records committed just before the status */
            job_row_free(&j);
            return n;
        }
        if (changed) emit_status(s, &j);
        job_row_free(&j);
        if (final) s->done = true;
        if (changed) return s->fail ? -1 : 1;
        int w = wait_change(s, gen, quiet_since);
        if (w <= 0) return w;
        if (w == 2) {
            put_str(s, ": keepalive\n\n");
            return s->fail ? -1 : 1;
        }
    }
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    sse *s = cls;
    if (s->pos == s->len) {
        s->pos = s->len = 0;
        int rc = produce(s);
        if (rc < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (rc == 0 && s->len == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = s->len - s->pos < max ? s->len - s->pos : max;
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

/* Streams whose response still exists; shutdown waits for them to end cleanly. */
static atomic_int live_streams;

static void sse_free(void *cls)
{
    sse *s = cls;
    free(s->buf);
    free(s);
    atomic_fetch_sub(&live_streams, 1);
}

void api_wait_streams(int timeout_ms)
{
    for (int waited = 0; atomic_load(&live_streams) > 0 && waited < timeout_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Resume point: Last-Event-ID header, else ?since=, else from the start. */
static bool resume_point(api_req *r, int64_t *since, const char **which)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (h) {
        *which = "Last-Event-ID";
        if (api_parse_int(h, -1, INT64_MAX / 4, since)) return true;
        snprintf(r->why, sizeof r->why, "Last-Event-ID must be a step number (got \"%.40s\")", h);
        return false;
    }
    *which = "since";
    return api_query_int(r, "since", -1, -1, INT64_MAX / 4, since);
}

enum MHD_Result api_stream(api_req *r)
{
    int64_t since;
    const char *which;
    if (!resume_point(r, &since, &which)) return api_error(r->conn, 400, "invalid_parameter", which, "%s", r->why);
    job_row j;
    enum MHD_Result res;
    if (!api_load_job(r, &j, &res)) return res;
    const int32_t group_chains = api_job_batched(&j) ? j.n_children : 0;
    job_row_free(&j);
    sse *s = calloc(1, sizeof *s);
    if (!s) return api_error(r->conn, 500, "internal", NULL, "out of memory");
    int timeout_ms = r->d->cfg.connection_timeout_s > 0 ? r->d->cfg.connection_timeout_s * 1000 : 60000;
    *s = (sse){.d = r->d, .conn = r->conn, .job = r->arg[0], .last_sent = since, .group_chains = group_chains,
               .last_status = -1,
               .keepalive_ms = timeout_ms / 3 < SSE_KEEPALIVE_MS ? timeout_ms / 3 : SSE_KEEPALIVE_MS};
    if (s->keepalive_ms < SSE_SLICE_MS) s->keepalive_ms = SSE_SLICE_MS;
    put_str(s, "retry: 2000\n\n");
    atomic_fetch_add(&live_streams, 1);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, s, sse_free);
    if (!resp) {
        sse_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return api_queue(r->conn, 200, resp, "text/event-stream");
}
