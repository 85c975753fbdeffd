/* routes.h: what the API's files share: the server, the request a handler sees, the reply helpers
 * (one error-reply function, JSON replies), query-parameter parsing, and the handlers that the
 * route table in server.c names. Not part of the daemon's interface (that is api.h). */
#ifndef BZ_API_ROUTES_H
#define BZ_API_ROUTES_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "daemon.h"

#define API_PREFIX "/api/v1"

typedef struct api_cache api_cache; /* per-child summaries of sweeps (jobs.c) */

struct api_server {
    bz_daemon *d;
    struct MHD_Daemon *mhd;
    int port;
    api_cache *cache;
};

/* One request as a handler sees it. arg[] holds the path parameters in the order they appear
 * ({id}, {seq}, {k}); body is NUL-terminated (empty when there was none). */
typedef struct api_req {
    api_server *srv;
    bz_daemon *d;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    const char *body;
    size_t body_len;
    int64_t arg[3];
    char why[256];               /* set by api_query_* when a parameter is bad */
    /* Set by the dispatcher when auth is on (server.c): the token's user and role. With auth off
     * authed is false and handlers take the owner from X-Boltz-User. */
    bool authed;
    bool is_admin;
    char user[64];
} api_req;

typedef enum MHD_Result (*api_handler)(api_req *r);

/* ---- replies (server.c) ---- */

/* THE error reply: {"error": {"code", "message", "field"?}} with status; field may be NULL. */
enum MHD_Result api_error(struct MHD_Connection *c, unsigned status, const char *code, const char *field,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A bz_err from a store or file call: 404 not_found for a missing job (BZ_EINVAL "no job"),
 * 409 conflict for BZ_ESTATE, 500 otherwise. */
enum MHD_Result api_error_bz(struct MHD_Connection *c, const bz_err *e);
/* Reply with a JSON body (reference stolen) and a trailing newline. */
enum MHD_Result api_json(struct MHD_Connection *c, unsigned status, json_t *body);
/* A JSON body (stolen) as a response with a trailing newline; NULL when out of memory. */
struct MHD_Response *api_json_response(json_t *body);
/* Queue resp with Content-Type (may be NULL) and Cache-Control: no-store; destroys resp. */
enum MHD_Result api_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *resp,
                          const char *content_type);

/* ---- query parameters (server.c): false with r->why set when present but invalid ---- */
bool api_query_int(api_req *r, const char *name, int64_t def, int64_t min, int64_t max, int64_t *out);
bool api_query_real(api_req *r, const char *name, double def, double min, double max, double *out);
/* Strict decimal integer: optional '-', digits only, in range. */
bool api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* ---- helpers (jobs.c) ---- */
json_t *api_num(double v);                /* real, or null when not finite */
json_t *api_time(int64_t ms);             /* ISO-8601 UTC string, or null for 0 */
/* Look a job up; on failure the 404/500 reply is queued and *res set. */
bool api_load_job(api_req *r, job_row *j, enum MHD_Result *res);
/* A batched sweep's parent (its spec says "batched": true): its children's records are its own. */
bool api_job_batched(const job_row *j);
api_cache *api_cache_new(void);
void api_cache_free(api_cache *c);

/* ---- handlers ---- */
enum MHD_Result api_jobs_create(api_req *r);
enum MHD_Result api_jobs_list(api_req *r);
enum MHD_Result api_jobs_get(api_req *r);
enum MHD_Result api_jobs_cancel(api_req *r);
enum MHD_Result api_jobs_delete(api_req *r);
enum MHD_Result api_jobs_summary(api_req *r);
enum MHD_Result api_jobs_exchange(api_req *r);
enum MHD_Result api_obs_get(api_req *r);
enum MHD_Result api_stream(api_req *r);
enum MHD_Result api_ckpt_list(api_req *r);
enum MHD_Result api_ckpt_download(api_req *r);
enum MHD_Result api_ckpt_weights(api_req *r);
enum MHD_Result api_samples_info(api_req *r);
enum MHD_Result api_samples_get(api_req *r);
enum MHD_Result api_health(api_req *r);
enum MHD_Result api_metrics(api_req *r);
/* Static dashboard files from cfg.web_dir (GET/HEAD on any path outside /api/v1). */
enum MHD_Result api_static(api_req *r);

#endif
