/* auth.h: API tokens and admission limits of `boltzd serve` (issue 7).
 *
 * Tokens: "bz_" + 64 hex digits (32 bytes from getrandom). The store keeps a 16-byte random salt
 * and SHA-256(salt || token), never the token. The first 8 hex digits are the token's lookup key
 * and its row id in the tokens table (shown by `token list`, used by `token revoke`), so checking
 * a token is one primary-key lookup plus a constant-time compare of the hashes.
 *
 * Limits (config keys, 0 = unlimited): max_jobs_per_user (queued + running chains, 429 "quota"),
 * max_weights (network size), max_steps (sampler.steps), max_job_disk_mb (estimated disk of a job,
 * see quota_disk_bytes) all 400 "limit"; every message names the config key and both numbers.
 *
 * Also declares the administration subcommands of cli_admin.c (user, token, backup). */
#ifndef BZ_AUTH_H
#define BZ_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "spec.h"
#include "store.h"

#define AUTH_TOKEN_PREFIX "bz_"
#define AUTH_TOKEN_HEX 64                        /* 32 random bytes */
#define AUTH_TOKEN_LEN (3 + AUTH_TOKEN_HEX)      /* strlen of a token */
#define AUTH_LOOKUP_HEX 8                        /* hex digits of the lookup key */
#define AUTH_SALT_BYTES 16
#define AUTH_NAME_MAX 63

/* ---- tokens ---- */

/* A user or owner name: 1..63 characters of [A-Za-z0-9._@-]. */
bool auth_name_valid(const char *name);
/* n bytes from getrandom(2) (retried on EINTR and short reads). */
int auth_random(void *buf, size_t n, bz_err *e);
/* A fresh token into out (AUTH_TOKEN_LEN + 1 bytes) and its lookup key (> 0). */
int auth_token_generate(char *out, int64_t *lookup, bz_err *e);
/* Is token well formed ("bz_" + 64 lower-case hex)? *lookup gets its key (> 0) when it is. */
bool auth_token_parse(const char *token, int64_t *lookup);
/* hash = SHA-256(salt || token). */
void auth_token_hash(const uint8_t salt[AUTH_SALT_BYTES], const char *token, uint8_t hash[32]);
/* a == b over n bytes in time that depends on n only. */
bool auth_ct_equal(const void *a, const void *b, size_t n);
/* The token of an Authorization header value "Bearer TOKEN" (scheme case-insensitive), or NULL. */
const char *auth_bearer(const char *header);

/* Make a token for an existing user: out gets the clear token (to print once), *row what was
 * stored (id, salt, hash). BZ_EINVAL naming the user when there is no such user. */
int auth_token_create(store *st, const char *user, char *out, token_row *row, bz_err *e);

typedef struct auth_identity {
    int64_t user_id, token_id;
    char user[64];
    bool is_admin;
} auth_identity;

/* Check a token: 0 and *who when valid; BZ_EINVAL with a message for the client (malformed,
 * unknown, revoked) when not; another code when the store fails. Never logs the token. */
int auth_verify(store *st, const char *token, auth_identity *who, bz_err *e);

/* Is host (a name or address; "" = every interface) loopback only: 127.0.0.0/8 or ::1? */
bool auth_host_is_loopback(const char *host);
/* The start-up rule: a non-loopback listen address needs auth on (BZ_EINVAL with the message). */
int auth_check_listen(const bz_config *c, bz_err *e);

/* ---- admission limits ---- */

/* Weights n of the spec's network; for an npy data set n_in is read from x_train.npy's header
 * and an unknown number of classes counts as 2 (a lower bound). 0 when unknown. */
int64_t quota_weights(const bz_spec *sp);
/* Estimated bytes one chain of the spec writes, n weights each:
 *   samples      (steps / samples.every + 1) * (4 n + 16)   (0 when samples.every = 0)
 *   checkpoints  checkpoint.keep * (41 n for pl, 16 n otherwise)
 * (pl keeps w, w0, g, p as float32, three float64 vectors and a byte flag per weight). */
int64_t quota_samples_bytes(const bz_spec *sp, int64_t n);
int64_t quota_ckpt_bytes(const bz_spec *sp, int64_t n);
/* A whole submission: every chain of a sweep counts. */
int64_t quota_disk_bytes(const bz_spec *sp, int64_t n);
/* max_steps, max_weights, max_job_disk_mb: BZ_ELIMIT with e->field the spec field. */
int quota_check_spec(const bz_config *c, const bz_spec *sp, bz_err *e);
/* max_jobs_per_user: BZ_ELIMIT when active + adding would pass it. */
int quota_check_count(const bz_config *c, const char *owner, int64_t active, int64_t adding, bz_err *e);

/* ---- administration subcommands (cli_admin.c; the table is in main.c) ---- */
int cli_user(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_backup(int argc, char **argv);

#endif
