/* observables.c: GET /jobs/{id}/observables?since=STEP&limit=N&format=json|csv|ndjson.
 *
 * since is exclusive (records with step > since), limit defaults to 10000 (at most 100000). The
 * body is produced in batches straight from the store by a content reader, so a large answer
 * never sits in memory whole. json: {"job": ID, "records": [...], "count": n, "last_step": s}
 * (null for values that do not apply; page on with since=last_step); csv: a header line and one
 * row per record; ndjson: one record per line.
 *
 * A batched sweep's parent answers with the records of all its chains in (step, chain) order, each
 * naming its chain and T; a page ends at a step boundary (it may exceed limit by fewer records than
 * there are chains), so since = last_step pages on without a gap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"

#define OBS_BATCH 1000
#define OBS_LIMIT_DEFAULT 10000
#define OBS_LIMIT_MAX 100000
#define LINE_MAX_BYTES 4096

typedef enum { FMT_JSON = 0, FMT_CSV, FMT_NDJSON } obs_format;
typedef enum { PH_HEAD = 0, PH_RECORDS, PH_TAIL, PH_DONE } obs_phase;

typedef struct obs_reader {
    store *st;
    int64_t job, since, left, count;
    obs_format fmt;
    obs_phase phase;
    bool group;              /* a batched sweep's parent: its chains' records */
    char *buf;
    size_t len, pos, cap;
    int fail;
} obs_reader;

static bool buf_put(obs_reader *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 64 * 1024;
        while (cap < o->len + n) cap *= 2;
        char *b = realloc(o->buf, cap);
        if (!b) return false;
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return true;
}

/* store_obs_each callback: one record in the chosen format. */
static int put_record(void *ctx, const obs_record *rec)
{
    obs_reader *o = ctx;
    char line[LINE_MAX_BYTES + 1];
    int n = o->fmt == FMT_CSV ? obs_to_csv(rec, line + 1, LINE_MAX_BYTES)
                              : obs_to_ndjson(rec, line + 1, LINE_MAX_BYTES);
    if (n < 0) return o->fail = 1;
    char *start = line + 1;
    if (o->fmt == FMT_JSON) {
        n--; /* drop the newline */
        if (o->count > 0) {
            line[0] = ',';
            start = line;
            n++;
        }
    }
    if (!buf_put(o, start, (size_t)n)) return o->fail = 1;
    o->count++;
    o->left--;
    o->since = rec->step;
    return 0;
}

/* Refill the buffer with the next part of the body; false on an error. */
static bool refill(obs_reader *o)
{
    o->len = o->pos = 0;
    char head[LINE_MAX_BYTES];
    switch (o->phase) {
    case PH_HEAD:
        o->phase = PH_RECORDS;
        if (o->fmt == FMT_JSON) {
            int n = snprintf(head, sizeof head, "{\"job\":%lld,\"records\":[", (long long)o->job);
            return buf_put(o, head, (size_t)n);
        }
        if (o->fmt == FMT_CSV) {
            int n = obs_csv_header(head, sizeof head);
            return n > 0 && buf_put(o, head, (size_t)n);
        }
        return true;
    case PH_RECORDS: {
        int64_t want = o->left < OBS_BATCH ? o->left : OBS_BATCH, before = o->count;
        bz_err e = {0};
        int rc = want <= 0 ? 0
                 : o->group ? store_obs_each_group(o->st, o->job, o->since, want, put_record, o, &e)
                            : store_obs_each(o->st, o->job, o->since, want, put_record, o, &e);
        if (rc) return false;
        if (o->fail) return false;
        if (o->count - before < want || o->left <= 0) o->phase = PH_TAIL;
        return true;
    }
    case PH_TAIL: {
        o->phase = PH_DONE;
        if (o->fmt != FMT_JSON) return true;
        int n = o->count ? snprintf(head, sizeof head, "],\"count\":%lld,\"last_step\":%lld}\n", (long long)o->count,
                                    (long long)o->since)
                         : snprintf(head, sizeof head, "],\"count\":0,\"last_step\":null}\n");
        return buf_put(o, head, (size_t)n);
    }
    case PH_DONE: return true;
    }
    return false;
}

static ssize_t obs_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    obs_reader *o = cls;
    while (o->pos == o->len) {
        if (o->phase == PH_DONE) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!refill(o)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = o->len - o->pos < max ? o->len - o->pos : max;
    memcpy(out, o->buf + o->pos, n);
    o->pos += n;
    return (ssize_t)n;
}

static void obs_free(void *cls)
{
    obs_reader *o = cls;
    free(o->buf);
    free(o);
}

static bool parse_format(const char *f, obs_format *out)
{
    if (!f || !strcmp(f, "json")) *out = FMT_JSON;
    else if (!strcmp(f, "csv")) *out = FMT_CSV;
    else if (!strcmp(f, "ndjson")) *out = FMT_NDJSON;
    else return false;
    return true;
}

enum MHD_Result api_obs_get(api_req *r)
{
    obs_format fmt;
    if (!parse_format(MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "format"), &fmt))
        return api_error(r->conn, 400, "invalid_parameter", "format",
                         "query parameter format must be json, csv or ndjson");
    int64_t since, limit;
    if (!api_query_int(r, "since", -1, -1, INT64_MAX / 4, &since))
        return api_error(r->conn, 400, "invalid_parameter", "since", "%s", r->why);
    if (!api_query_int(r, "limit", OBS_LIMIT_DEFAULT, 1, OBS_LIMIT_MAX, &limit))
        return api_error(r->conn, 400, "invalid_parameter", "limit", "%s", r->why);
    job_row j;
    enum MHD_Result res;
    if (!api_load_job(r, &j, &res)) return res;
    const bool group = api_job_batched(&j);
    job_row_free(&j);
    obs_reader *o = calloc(1, sizeof *o);
    if (!o) return api_error(r->conn, 500, "internal", NULL, "out of memory");
    *o = (obs_reader){.st = r->d->st, .job = r->arg[0], .since = since, .left = limit, .fmt = fmt, .group = group};
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, obs_read, o, obs_free);
    if (!resp) {
        obs_free(o);
        return MHD_NO;
    }
    static const char *const types[] = {"application/json", "text/csv; charset=utf-8", "application/x-ndjson"};
    if (fmt == FMT_CSV) {
        char cd[96];
        snprintf(cd, sizeof cd, "inline; filename=\"job-%lld-observables.csv\"", (long long)r->arg[0]);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, cd);
    }
    return api_queue(r->conn, 200, resp, types[fmt]);
}
