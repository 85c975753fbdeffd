/* server.c: the HTTP server of `boltzd serve` on libmicrohttpd: daemon start/stop, request bodies
 * (capped at cfg.max_body: 413), connection limits (total, per client, idle timeout), the route
 * table and its dispatch (unknown path 404, wrong method 405 with Allow), the 503 while shutting
 * down, authentication (with auth on, every route but /health needs a Bearer token: 401 with
 * WWW-Authenticate otherwise), and the reply helpers every handler uses: THE error-reply function
 * api_error and JSON replies.
 *
 * Threading: one thread per connection (MHD_USE_THREAD_PER_CONNECTION), so a handler or a content
 * reader may block (SSE waits on the hub); the store handle is shared and has its own mutex. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "routes.h"

/* ---------------------------------------------------------------- replies */

enum MHD_Result api_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *resp,
                          const char *content_type)
{
    if (!resp) return MHD_NO;
    if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (!MHD_get_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

struct MHD_Response *api_json_response(json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(body);
    if (!text) return NULL;
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (!withnl) {
        free(text);
        return NULL;
    }
    withnl[n] = '\n';
    withnl[n + 1] = 0;
    return MHD_create_response_from_buffer(n + 1, withnl, MHD_RESPMEM_MUST_FREE);
}

enum MHD_Result api_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
    struct MHD_Response *resp = api_json_response(body);
    if (!resp) return MHD_NO;
    return api_queue(c, status, resp, "application/json");
}

/* The error body as a response (shared by api_error and the 405 reply, which adds Allow). */
static struct MHD_Response *error_response(unsigned status, const char *code, const char *field, const char *msg)
{
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (err && field && field[0]) json_object_set_new(err, "field", json_string(field));
    if (status >= 500) fprintf(stderr, "boltzd: api: %u %s: %s\n", status, code, msg);
    return api_json_response(err ? json_pack("{s:o}", "error", err) : NULL);
}

enum MHD_Result api_error(struct MHD_Connection *c, unsigned status, const char *code, const char *field,
                          const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct MHD_Response *resp = error_response(status, code, field, msg);
    if (!resp) return MHD_NO;
    return api_queue(c, status, resp, "application/json");
}

enum MHD_Result api_error_bz(struct MHD_Connection *c, const bz_err *e)
{
    const char *msg = e->msg[0] ? e->msg : bz_strerror(e->code);
    if (e->code == BZ_EINVAL && !strncmp(msg, "no job", 6)) return api_error(c, 404, "not_found", NULL, "%s", msg);
    if (e->code == BZ_ESTATE) return api_error(c, 409, "conflict", NULL, "%s", msg);
    if (e->code == BZ_ELIMIT) return api_error(c, 400, "limit", e->field, "%s", msg);
    return api_error(c, 500, "internal", NULL, "%s", msg);
}

/* ---------------------------------------------------------------- query parameters */

bool api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    const char *p = s;
    if (*p == '-') p++;
    if (!*p || strlen(p) > 18) return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return false;
    long long v = strtoll(s, NULL, 10);
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

bool api_query_int(api_req *r, const char *name, int64_t def, int64_t min, int64_t max, int64_t *out)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) {
        *out = def;
        return true;
    }
    if (api_parse_int(v, min, max, out)) return true;
    snprintf(r->why, sizeof r->why, "query parameter %s must be an integer in [%lld, %lld] (got \"%.40s\")", name,
             (long long)min, (long long)max, v);
    return false;
}

bool api_query_real(api_req *r, const char *name, double def, double min, double max, double *out)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) {
        *out = def;
        return true;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (*v && !*end && !errno && isfinite(x) && x >= min && x <= max) {
        *out = x;
        return true;
    }
    snprintf(r->why, sizeof r->why, "query parameter %s must be a number in [%g, %g] (got \"%.40s\")", name, min,
             max, v);
    return false;
}

/* ---------------------------------------------------------------- route table */

typedef struct route {
    const char *method;
    const char *pattern;   /* segments: literal, {id}/{seq} (positive integer), {k}.npy (k >= 0) */
    api_handler handler;
} route;

static const route routes[] = {
    {"POST", API_PREFIX "/jobs", api_jobs_create},
    {"GET", API_PREFIX "/jobs", api_jobs_list},
    {"GET", API_PREFIX "/jobs/{id}", api_jobs_get},
    {"DELETE", API_PREFIX "/jobs/{id}", api_jobs_delete},
    {"POST", API_PREFIX "/jobs/{id}/cancel", api_jobs_cancel},
    {"GET", API_PREFIX "/jobs/{id}/observables", api_obs_get},
    {"GET", API_PREFIX "/jobs/{id}/stream", api_stream},
    {"GET", API_PREFIX "/jobs/{id}/summary", api_jobs_summary},
    {"GET", API_PREFIX "/jobs/{id}/exchange", api_jobs_exchange},
    {"GET", API_PREFIX "/jobs/{id}/checkpoints", api_ckpt_list},
    {"GET", API_PREFIX "/jobs/{id}/checkpoints/{seq}", api_ckpt_download},
    {"GET", API_PREFIX "/jobs/{id}/checkpoints/{seq}/weights.npy", api_ckpt_weights},
    {"GET", API_PREFIX "/jobs/{id}/samples", api_samples_info},
    {"GET", API_PREFIX "/jobs/{id}/samples/{k}.npy", api_samples_get},
    {"GET", API_PREFIX "/health", api_health},
    {"GET", API_PREFIX "/metrics", api_metrics},
    {"GET", "/metrics", api_metrics}, /* where Prometheus looks by default */
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* Strict unsigned integer segment [s, s+n): digits only, no leading zero, at most 18 digits. */
static bool seg_uint(const char *s, size_t n, int64_t min, int64_t *out)
{
    if (n == 0 || n > 18 || (n > 1 && s[0] == '0')) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min) return false;
    *out = v;
    return true;
}

/* Does one path segment match one pattern segment? Parameters go to args[*na]. */
static bool seg_match(const char *ps, size_t pn, const char *us, size_t un, int64_t *args, int *na)
{
    if (pn == 4 && !memcmp(ps, "{id}", 4)) return seg_uint(us, un, 1, &args[(*na)++]);
    if (pn == 5 && !memcmp(ps, "{seq}", 5)) return seg_uint(us, un, 1, &args[(*na)++]);
    if (pn == 7 && !memcmp(ps, "{k}.npy", 7))
        return un > 4 && !memcmp(us + un - 4, ".npy", 4) && seg_uint(us, un - 4, 0, &args[(*na)++]);
    return pn == un && !memcmp(ps, us, un);
}

/* Match a whole path against a pattern, segment by segment. */
static bool path_match(const char *pat, const char *url, int64_t *args)
{
    int na = 0;
    while (*pat && *url) {
        if (*pat != '/' || *url != '/') return false;
        pat++, url++;
        size_t pn = strcspn(pat, "/"), un = strcspn(url, "/");
        if (!seg_match(pat, pn, url, un, args, &na)) return false;
        pat += pn, url += un;
    }
    return !*pat && !*url;
}

static bool is_shutting_down(bz_daemon *d) { return atomic_load(&d->shutting_down); }

/* 405 with the Allow header (allow lists the methods the path takes). */
static enum MHD_Result method_not_allowed(api_req *r, const char *allow)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%.20s is not allowed here; this path accepts %s", r->method, allow);
    struct MHD_Response *resp = error_response(405, "method_not_allowed", NULL, msg);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    return api_queue(r->conn, 405, resp, "application/json");
}

/* 401 with WWW-Authenticate (RFC 6750); error="invalid_token" when a token was sent. */
static enum MHD_Result unauthorized(api_req *r, bool sent, const char *msg)
{
    struct MHD_Response *resp = error_response(401, "unauthorized", "Authorization", msg);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                            sent ? "Bearer realm=\"boltzd\", error=\"invalid_token\"" : "Bearer realm=\"boltzd\"");
    return api_queue(r->conn, 401, resp, "application/json");
}

/* Who sends the request. Auth off: nobody in particular (handlers fall back to X-Boltz-User).
 * Auth on: the token's user, else false with the 401 (or 500) reply queued in *res. */
static bool authenticate(api_req *r, enum MHD_Result *res)
{
    if (!r->d->cfg.auth) return true;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *token = auth_bearer(h);
    if (!token) {
        *res = unauthorized(r, false, h ? "the Authorization header must be 'Bearer TOKEN'"
                                        : "this daemon requires a token: send 'Authorization: Bearer TOKEN' "
                                          "(boltzd token create NAME makes one)");
        return false;
    }
    auth_identity who;
    bz_err e = {0};
    int rc = auth_verify(r->d->st, token, &who, &e);
    if (rc == BZ_EINVAL) *res = unauthorized(r, true, e.msg);
    else if (rc) *res = api_error_bz(r->conn, &e);
    if (rc) return false;
    r->authed = true;
    r->is_admin = who.is_admin;
    snprintf(r->user, sizeof r->user, "%s", who.user);
    return true;
}

/* Find the route for (method, url) and run it; 404/405/503 otherwise. Paths outside /api are
 * static files. HEAD is served as GET (MHD sends no body). */
static enum MHD_Result dispatch(api_req *r)
{
    const char *m = !strcmp(r->method, "HEAD") ? "GET" : r->method;
    char allow[64] = "";
    for (size_t i = 0; i < N_ROUTES; i++) {
        int64_t args[3] = {0, 0, 0};
        if (!path_match(routes[i].pattern, r->url, args)) continue;
        if (strcmp(routes[i].method, m)) {
            if (!strstr(allow, routes[i].method))
                snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "",
                         routes[i].method);
            continue;
        }
        if (is_shutting_down(r->d) && routes[i].handler != api_health)
            return api_error(r->conn, 503, "shutting_down", NULL, "boltzd is shutting down; try again later");
        enum MHD_Result res;
        if (routes[i].handler != api_health && !authenticate(r, &res)) return res;
        memcpy(r->arg, args, sizeof args);
        return routes[i].handler(r);
    }
    if (allow[0]) {
        if (strstr(allow, "GET")) strncat(allow, ", HEAD", sizeof allow - strlen(allow) - 1);
        return method_not_allowed(r, allow);
    }
    if (!strncmp(r->url, "/api/", 5) || !strcmp(r->url, "/api"))
        return api_error(r->conn, 404, "no_route", NULL, "no such API path: %.200s", r->url);
    if (strcmp(m, "GET")) return method_not_allowed(r, "GET, HEAD");
    return api_static(r);
}

/* ---------------------------------------------------------------- request bodies */

typedef struct req_ctx {
    char *body;
    size_t len, cap;
    bool too_large;     /* the body passed the cap: it is read and dropped, then 413 */
    bool replied;       /* a reply was queued on the first call (Content-Length over the cap) */
    uint64_t dropped;
} req_ctx;

static bool body_append(req_ctx *rc, const char *data, size_t n, size_t max)
{
    if (rc->too_large || rc->len + n > max) {
        rc->too_large = true;
        rc->dropped += n;
        return rc->dropped <= 16 * (uint64_t)max + (1u << 20); /* a client that never stops: close */
    }
    if (rc->len + n + 1 > rc->cap) {
        size_t cap = rc->cap ? rc->cap : 4096;
        while (cap < rc->len + n + 1) cap *= 2;
        char *b = realloc(rc->body, cap);
        if (!b) return false;
        rc->body = b;
        rc->cap = cap;
    }
    memcpy(rc->body + rc->len, data, n);
    rc->len += n;
    rc->body[rc->len] = 0;
    return true;
}

/* First call of a request: 413 at once when the declared Content-Length is over the cap. */
static enum MHD_Result first_call(api_server *s, struct MHD_Connection *conn, req_ctx *rc)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t n;
    if (cl && (!api_parse_int(cl, 0, INT64_MAX / 2, &n) || (uint64_t)n > s->d->cfg.max_body)) {
        rc->replied = true;
        return api_error(conn, 413, "too_large", NULL, "request body over the limit of %zu bytes",
                         s->d->cfg.max_body);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    api_server *s = cls;
    req_ctx *rc = *con_cls;
    if (!rc) {
        rc = calloc(1, sizeof *rc);
        if (!rc) return MHD_NO;
        *con_cls = rc;
        return first_call(s, conn, rc);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rc->replied) return MHD_YES;
        return body_append(rc, upload_data, n, s->d->cfg.max_body) ? MHD_YES : MHD_NO;
    }
    if (rc->replied) return MHD_YES;
    if (rc->too_large)
        return api_error(conn, 413, "too_large", NULL, "request body over the limit of %zu bytes",
                         s->d->cfg.max_body);
    api_req r = {.srv = s, .d = s->d, .conn = conn, .method = method, .url = url,
                 .body = rc->body ? rc->body : "", .body_len = rc->len};
    return dispatch(&r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    req_ctx *rc = *con_cls;
    if (!rc) return;
    free(rc->body);
    free(rc);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    fprintf(stderr, "boltzd: http: %s\n", line);
}

/* ---------------------------------------------------------------- start / stop */

/* Resolve host:port into addr; ipv6 set for an IPv6 address. */
static int resolve(const char *host, int port, struct sockaddr_storage *addr, bool *ipv6, bz_err *e)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host && host[0] ? host : NULL, NULL, &hints, &res);
    if (rc || !res)
        return bz_fail(e, BZ_EINVAL, "listen", "cannot resolve listen address '%s': %s", host, gai_strerror(rc));
    memset(addr, 0, sizeof *addr);
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *ipv6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    if (*ipv6) ((struct sockaddr_in6 *)addr)->sin6_port = htons((uint16_t)port);
    else ((struct sockaddr_in *)addr)->sin_port = htons((uint16_t)port);
    return 0;
}

int api_start(bz_daemon *d, api_server **out, int *bound_port, bz_err *e)
{
    *out = NULL;
    if (d->cfg.port < 0 || d->cfg.port > 65535)
        return bz_fail(e, BZ_EINVAL, "port", "port %d is not in 0..65535", d->cfg.port);
    struct sockaddr_storage addr;
    bool ipv6 = false;
    int rc = resolve(d->cfg.listen_host, d->cfg.port, &addr, &ipv6, e);
    if (rc) return rc;
    api_server *s = calloc(1, sizeof *s);
    if (!s || !(s->cache = api_cache_new())) {
        free(s);
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory");
    }
    s->d = d;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ipv6) flags |= MHD_USE_IPv6;
    unsigned max_conn = d->cfg.max_connections > 0 ? (unsigned)d->cfg.max_connections : 256;
    unsigned timeout = d->cfg.connection_timeout_s > 0 ? (unsigned)d->cfg.connection_timeout_s : 60;
    unsigned per_ip = d->cfg.max_connections_per_ip > 0 ? (unsigned)d->cfg.max_connections_per_ip : 0; /* 0: none */
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, s,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, max_conn,
                              MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!s->mhd) {
        int err = errno;
        api_cache_free(s->cache);
        free(s);
        return bz_fail(e, BZ_EIO, "listen", "cannot listen on %s:%d: %s", d->cfg.listen_host, d->cfg.port,
                       err ? strerror(err) : "libmicrohttpd failed to start");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : d->cfg.port;
    if (bound_port) *bound_port = s->port;
    *out = s;
    return 0;
}

void api_stop(api_server *s)
{
    if (!s) return;
    MHD_stop_daemon(s->mhd);
    api_cache_free(s->cache);
    free(s);
}
