/* auth.c: API tokens (make, hash, check) and admission limits (auth.h): tokens come from
 * getrandom(2) and only SHA-256(salt || token) is stored (sha256.c); a token's first 8 hex digits
 * are its row id, so a check is one lookup and a constant-time compare. The limits turn a parsed
 * spec into estimates (weights, disk) and compare them with the config; messages name the config
 * key, both numbers and the spec field to change. */
#include "auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "npy.h"
#include "sha256.h"

#define TOKEN_CREATE_TRIES 16   /* a lookup key already taken: draw again */

/* ---------------------------------------------------------------- names, randomness */

bool auth_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > AUTH_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-", name[i])) return false;
    return true;
}

int auth_random(void *buf, size_t n, bz_err *e)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return bz_fail(e, BZ_EIO, NULL, "getrandom: %s", strerror(errno));
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* ---------------------------------------------------------------- tokens */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool auth_token_parse(const char *token, int64_t *lookup)
{
    if (!token || strlen(token) != AUTH_TOKEN_LEN || strncmp(token, AUTH_TOKEN_PREFIX, 3)) return false;
    int64_t key = 0;
    for (int i = 0; i < AUTH_TOKEN_HEX; i++) {
        int v = hex_value(token[3 + i]);
        if (v < 0) return false;
        if (i < AUTH_LOOKUP_HEX) key = key * 16 + v;
    }
    if (key == 0) return false; /* never issued: ids start at 1 */
    if (lookup) *lookup = key;
    return true;
}

int auth_token_generate(char *out, int64_t *lookup, bz_err *e)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[AUTH_TOKEN_HEX / 2];
    do {
        int rc = auth_random(raw, sizeof raw, e);
        if (rc) return rc;
        memcpy(out, AUTH_TOKEN_PREFIX, 3);
        for (size_t i = 0; i < sizeof raw; i++) {
            out[3 + 2 * i] = hex[raw[i] >> 4];
            out[4 + 2 * i] = hex[raw[i] & 15];
        }
        out[AUTH_TOKEN_LEN] = '\0';
    } while (!auth_token_parse(out, lookup)); /* a zero key (1 in 2^32): draw again */
    memset(raw, 0, sizeof raw);
    return 0;
}

void auth_token_hash(const uint8_t salt[AUTH_SALT_BYTES], const char *token, uint8_t hash[32])
{
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, salt, AUTH_SALT_BYTES);
    sha256_update(&c, token, strlen(token));
    sha256_final(&c, hash);
}

bool auth_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++) d |= x[i] ^ y[i];
    return d == 0;
}

const char *auth_bearer(const char *header)
{
    if (!header) return NULL;
    while (*header == ' ' || *header == '\t') header++;
    if (strncasecmp(header, "Bearer", 6) || (header[6] != ' ' && header[6] != '\t')) return NULL;
    const char *t = header + 6;
    while (*t == ' ' || *t == '\t') t++;
    return *t ? t : NULL;
}

/* One attempt: a fresh token, salt and hash stored under the token's lookup key. */
static int token_try(store *st, int64_t user_id, char *out, token_row *row, bz_err *e)
{
    memset(row, 0, sizeof *row);
    row->user_id = user_id;
    int rc = auth_token_generate(out, &row->id, e);
    if (!rc) rc = auth_random(row->salt, sizeof row->salt, e);
    if (rc) return rc;
    auth_token_hash(row->salt, out, row->hash);
    return store_token_add(st, row, e);
}

int auth_token_create(store *st, const char *user, char *out, token_row *row, bz_err *e)
{
    user_row u;
    int rc = store_user_get(st, user, &u, e);
    if (rc) return rc;
    for (int i = 0; i < TOKEN_CREATE_TRIES; i++)
        if ((rc = token_try(st, u.id, out, row, e)) != BZ_ESTATE) break; /* ESTATE: the key is taken */
    if (rc) {
        memset(out, 0, AUTH_TOKEN_LEN + 1);
        return rc;
    }
    snprintf(row->user, sizeof row->user, "%s", u.name);
    row->is_admin = u.is_admin;
    return 0;
}

int auth_verify(store *st, const char *token, auth_identity *who, bz_err *e)
{
    int64_t id;
    if (!auth_token_parse(token, &id))
        return bz_fail(e, BZ_EINVAL, "Authorization", "malformed token: expected bz_ and 64 hex digits");
    token_row t;
    bz_err le = {0};
    int rc = store_token_get(st, id, &t, &le);
    if (rc && rc != BZ_EINVAL) {
        if (e) *e = le;
        return rc;
    }
    if (rc) memset(&t, 0, sizeof t); /* unknown: hash anyway, so the reply takes the same time */
    uint8_t h[32];
    auth_token_hash(t.salt, token, h);
    bool match = auth_ct_equal(h, t.hash, sizeof h) && rc == 0;
    if (!match) return bz_fail(e, BZ_EINVAL, "Authorization", "invalid token");
    if (t.revoked_ms) return bz_fail(e, BZ_EINVAL, "Authorization", "token %lld was revoked", (long long)t.id);
    memset(who, 0, sizeof *who);
    who->user_id = t.user_id;
    who->token_id = t.id;
    snprintf(who->user, sizeof who->user, "%s", t.user);
    who->is_admin = t.is_admin;
    return 0;
}

/* ---------------------------------------------------------------- listen address */

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

bool auth_host_is_loopback(const char *host)
{
    if (!host || !host[0]) return false; /* every interface */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) || !res) return false;
    bool all = true;
    for (struct addrinfo *a = res; a; a = a->ai_next) all = all && addr_is_loopback(a->ai_addr);
    freeaddrinfo(res);
    return all;
}

int auth_check_listen(const bz_config *c, bz_err *e)
{
    if (c->auth || auth_host_is_loopback(c->listen_host)) return 0;
    return bz_fail(e, BZ_EINVAL, "auth",
                   "refusing to listen on %s without auth: set auth = on (and create tokens with boltzd token "
                   "create) or listen on 127.0.0.1",
                   c->listen_host[0] ? c->listen_host : "every interface");
}

/* ---------------------------------------------------------------- limits */

/* n_in of an npy data set from x_train.npy's header; 0 when unreadable. */
static int64_t npy_n_in(const bz_spec *sp)
{
    char path[BZ_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/x_train.npy", sp->dataset.dir);
    npy_array info;
    bz_err e;
    if (npy_read_header(path, &info, NULL, &e) || info.ndim != 2) return 0;
    return info.shape[1];
}

int64_t quota_weights(const bz_spec *sp)
{
    if (sp->dataset.n_in > 0 && sp->dataset.classes > 0) return spec_param_count(sp);
    if (sp->dataset.kind != DS_NPY) return 0;
    bz_spec *c = malloc(sizeof *c);
    if (!c) return 0;
    *c = *sp;
    int64_t n_in = c->dataset.n_in > 0 ? c->dataset.n_in : npy_n_in(sp);
    c->dataset.n_in = (int32_t)(n_in > BZ_LIMIT_WIDTH ? BZ_LIMIT_WIDTH : n_in);
    if (c->dataset.classes <= 0) c->dataset.classes = 2;
    int64_t n = spec_param_count(c);
    free(c);
    return n;
}

/* double -> int64 bytes, saturating (estimates can pass 2^63 for absurd specs). */
static int64_t clamp_bytes(double b) { return b >= 9e18 ? (int64_t)9e18 : b <= 0 ? 0 : (int64_t)b; }

int64_t quota_samples_bytes(const bz_spec *sp, int64_t n)
{
    if (sp->samples_every <= 0 || n <= 0) return 0;
    double k = (double)(sp->sampler.steps / sp->samples_every + 1);
    return clamp_bytes(k * (4.0 * (double)n + 16.0));
}

int64_t quota_ckpt_bytes(const bz_spec *sp, int64_t n)
{
    if (n <= 0) return 0;
    /* Checkpoints ever written: one per checkpoint.every steps plus the final one. */
    int64_t written = (sp->checkpoint_every > 0 ? sp->sampler.steps / sp->checkpoint_every : 0) + 1;
    int64_t kept = sp->checkpoint_keep < written ? sp->checkpoint_keep : written;
    if (kept < 1) kept = 1;
    double per = (sp->sampler.method == SM_PL ? 41.0 : 16.0) * (double)n;
    return clamp_bytes((double)kept * per);
}

int64_t quota_disk_bytes(const bz_spec *sp, int64_t n)
{
    int chains = sp->sampler.n_T > 1 ? sp->sampler.n_T : 1;
    return clamp_bytes((double)chains * ((double)quota_samples_bytes(sp, n) + (double)quota_ckpt_bytes(sp, n)));
}

#define MB 1e6 /* max_job_disk_mb counts 10^6 bytes */

static int check_disk(const bz_config *c, const bz_spec *sp, int64_t n, bz_err *e)
{
    int64_t total = quota_disk_bytes(sp, n);
    if (c->max_job_disk_mb <= 0 || (double)total <= (double)c->max_job_disk_mb * MB) return 0;
    int64_t smp = quota_samples_bytes(sp, n), ck = quota_ckpt_bytes(sp, n);
    bool samples_heavier = smp >= ck;
    return bz_fail(e, BZ_ELIMIT, samples_heavier ? "samples.every" : "checkpoint.keep",
                   "this job would write about %.1f MB (weight samples %.1f MB, checkpoints %.1f MB per chain, %d "
                   "chain(s)), over max_job_disk_mb = %lld; %s",
                   (double)total / MB, (double)smp / MB, (double)ck / MB, sp->sampler.n_T > 1 ? sp->sampler.n_T : 1,
                   (long long)c->max_job_disk_mb,
                   samples_heavier ? "raise samples.every (or set it to 0) or lower sampler.steps"
                                   : "lower checkpoint.keep or use a smaller network");
}

int quota_check_spec(const bz_config *c, const bz_spec *sp, bz_err *e)
{
    if (c->max_steps > 0 && sp->sampler.steps > c->max_steps)
        return bz_fail(e, BZ_ELIMIT, "sampler.steps", "sampler.steps = %lld is over max_steps = %lld",
                       (long long)sp->sampler.steps, (long long)c->max_steps);
    int64_t n = quota_weights(sp);
    if (c->max_weights > 0 && n > c->max_weights)
        return bz_fail(e, BZ_ELIMIT, "model.hidden", "the network has %lld weights, over max_weights = %lld",
                       (long long)n, (long long)c->max_weights);
    return check_disk(c, sp, n, e);
}

int quota_check_count(const bz_config *c, const char *owner, int64_t active, int64_t adding, bz_err *e)
{
    if (c->max_jobs_per_user <= 0 || active + adding <= c->max_jobs_per_user) return 0;
    return bz_fail(e, BZ_ELIMIT, NULL,
                   "max_jobs_per_user = %lld: %s already has %lld queued or running job(s) and this submission "
                   "adds %lld; wait for some to finish or cancel them",
                   (long long)c->max_jobs_per_user, owner, (long long)active, (long long)adding);
}
