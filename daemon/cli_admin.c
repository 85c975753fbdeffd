/* cli_admin.c: the administration subcommands, each on the same data dir as `serve` (--data-dir
 * DIR or --config FILE) and safe while the daemon runs (the store is WAL, writes wait on locks):
 *   user add NAME [--admin] | user list
 *   token create NAME (prints the token once on stdout) | token list NAME | token revoke ID
 *   backup DIR: an online copy of the store (SQLite backup API) and of the job files.
 * Results are JSON on stdout; errors go to stderr and name the option, user or file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "daemon.h"
#include "jobfiles.h"

#define COPY_DEPTH_MAX 8   /* jobs/ID/checkpoints/...: deeper is not ours */

/* cli_parse: 0 go on, 3 help printed (exit 0), else usage error (exit 2). */
static int parse_or_exit(int rc) { return rc == 3 ? 0 : 2; }

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    if (text) printf("%s\n", text);
    free(text);
    json_decref(j);
}

/* ISO-8601 UTC, or null for 0. */
static json_t *iso_time(int64_t ms)
{
    if (ms <= 0) return json_null();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return json_string(buf);
}

/* The settings (defaults, config file, --data-dir) and the store in DATA_DIR/boltzd.db, created
 * when absent (an administrator may add users before the first start). */
static int open_store(const char *config, const char *data_dir, bz_config *c, store **st, bz_err *e)
{
    *st = NULL;
    int rc = daemon_config_load(c, config, data_dir, e);
    if (!rc) rc = jf_mkdirs(c->data_dir, e);
    char db[1200];
    snprintf(db, sizeof db, "%s/boltzd.db", c->data_dir);
    if (!rc) rc = store_open(st, db, c->schema_dir, e);
    return rc;
}

/* ---------------------------------------------------------------- user */

static json_t *user_json(const user_row *u)
{
    return json_pack("{s:I, s:s, s:b, s:o}", "id", (json_int_t)u->id, "name", u->name, "admin", u->is_admin,
                     "created", iso_time(u->created_ms));
}

static int user_add(store *st, const char *name, bool admin, bz_err *e)
{
    if (!auth_name_valid(name))
        return bz_fail(e, BZ_EINVAL, "NAME",
                       "user name must be 1..63 characters of letters, digits and ._@- (got '%s')", name);
    user_row u;
    int rc = store_user_add(st, name, admin, &u, e);
    if (!rc) print_json(user_json(&u));
    return rc;
}

static int user_list(store *st, bz_err *e)
{
    user_row *rows = NULL;
    int64_t n = 0;
    int rc = store_user_list(st, &rows, &n, e);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int64_t i = 0; i < n; i++) json_array_append_new(arr, user_json(&rows[i]));
    free(rows);
    print_json(json_pack("{s:o}", "users", arr));
    return 0;
}

static const char *user_usage = "boltzd user add NAME [--admin] | user list   [--config FILE] [--data-dir DIR]";

int cli_user(int argc, char **argv)
{
    const char *config = NULL, *data_dir = NULL, *admin = NULL, *name = NULL;
    const cli_opt opts[] = {{"--config", &config, 0}, {"--data-dir", &data_dir, 0}, {"--admin", &admin, 1},
                            {NULL, NULL, 0}};
    const char *action = argc > 0 ? argv[0] : "";
    bool add = !strcmp(action, "add"), list = !strcmp(action, "list");
    if (!add && !list) {
        int rc = cli_parse(argc, argv, opts, NULL, 0, user_usage); /* --help, or the usage error */
        if (rc == 0) fprintf(stderr, "boltzd: user needs an action: add or list\nusage: %s\n", user_usage);
        return rc == 3 ? 0 : 2;
    }
    int rc = cli_parse(argc - 1, argv + 1, opts, &name, add ? 1 : 0, user_usage);
    if (rc) return parse_or_exit(rc);
    if (list && admin) {
        fprintf(stderr, "boltzd: --admin goes with user add\nusage: %s\n", user_usage);
        return 2;
    }
    bz_config c;
    store *st;
    bz_err e = {0};
    rc = open_store(config, data_dir, &c, &st, &e);
    if (!rc) rc = add ? user_add(st, name, admin != NULL, &e) : user_list(st, &e);
    store_close(st);
    return rc ? cli_report(&e) : 0;
}

/* ---------------------------------------------------------------- token */

static json_t *token_json(const token_row *t)
{
    char prefix[16];
    snprintf(prefix, sizeof prefix, AUTH_TOKEN_PREFIX "%08llx", (unsigned long long)t->id);
    return json_pack("{s:I, s:s, s:s, s:o, s:o}", "id", (json_int_t)t->id, "user", t->user, "prefix", prefix,
                     "created", iso_time(t->created_ms), "revoked", iso_time(t->revoked_ms));
}

/* The token goes to stdout alone (for TOKEN=$(boltzd token create NAME)); the rest to stderr. */
static int token_create(store *st, const char *user, bz_err *e)
{
    char token[AUTH_TOKEN_LEN + 1];
    token_row t;
    int rc = auth_token_create(st, user, token, &t, e);
    if (rc) return rc;
    printf("%s\n", token);
    fflush(stdout);
    memset(token, 0, sizeof token);
    fprintf(stderr,
            "boltzd: token %lld for %s%s created; it is shown only this once (revoke: boltzd token revoke %lld)\n",
            (long long)t.id, t.user, t.is_admin ? " (admin)" : "", (long long)t.id);
    return 0;
}

static int token_list(store *st, const char *user, bz_err *e)
{
    user_row u;
    int rc = store_user_get(st, user, &u, e);
    token_row *rows = NULL;
    int64_t n = 0;
    if (!rc) rc = store_token_list(st, u.id, &rows, &n, e);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int64_t i = 0; i < n; i++) json_array_append_new(arr, token_json(&rows[i]));
    free(rows);
    print_json(json_pack("{s:s, s:b, s:o}", "user", u.name, "admin", u.is_admin, "tokens", arr));
    return 0;
}

/* A token id: decimal as token list shows it, or the token's prefix bz_XXXXXXXX (0 when neither). */
static int64_t parse_token_id(const char *text)
{
    if (!strncmp(text, AUTH_TOKEN_PREFIX, 3)) {
        const char *h = text + 3;
        if (strlen(h) != AUTH_LOOKUP_HEX || strspn(h, "0123456789abcdef") != AUTH_LOOKUP_HEX) return 0;
        return (int64_t)strtoll(h, NULL, 16);
    }
    char *end;
    errno = 0;
    long long id = strtoll(text, &end, 10);
    return errno || *end || end == text || id <= 0 ? 0 : (int64_t)id;
}

static int token_revoke(store *st, const char *id_text, bz_err *e)
{
    int64_t id = parse_token_id(id_text);
    if (id <= 0)
        return bz_fail(e, BZ_EINVAL, "ID", "token ID must be its id or prefix (bz_ and 8 hex digits) as token list "
                       "shows (got '%s')", id_text);
    int rc = store_token_revoke(st, id, e);
    token_row t;
    if (!rc) rc = store_token_get(st, id, &t, e);
    if (!rc) print_json(token_json(&t));
    return rc;
}

static const char *token_usage =
    "boltzd token create NAME | token list NAME | token revoke ID|bz_PREFIX   [--config FILE] [--data-dir DIR]";

int cli_token(int argc, char **argv)
{
    const char *config = NULL, *data_dir = NULL, *arg = NULL;
    const cli_opt opts[] = {{"--config", &config, 0}, {"--data-dir", &data_dir, 0}, {NULL, NULL, 0}};
    const char *action = argc > 0 ? argv[0] : "";
    int which = !strcmp(action, "create") ? 1 : !strcmp(action, "list") ? 2 : !strcmp(action, "revoke") ? 3 : 0;
    if (!which) {
        int rc = cli_parse(argc, argv, opts, NULL, 0, token_usage);
        if (rc == 0) fprintf(stderr, "boltzd: token needs an action: create, list or revoke\nusage: %s\n", token_usage);
        return rc == 3 ? 0 : 2;
    }
    int rc = cli_parse(argc - 1, argv + 1, opts, &arg, 1, token_usage);
    if (rc) return parse_or_exit(rc);
    bz_config c;
    store *st;
    bz_err e = {0};
    rc = open_store(config, data_dir, &c, &st, &e);
    if (!rc && which == 1) rc = token_create(st, arg, &e);
    else if (!rc && which == 2) rc = token_list(st, arg, &e);
    else if (!rc) rc = token_revoke(st, arg, &e);
    store_close(st);
    return rc ? cli_report(&e) : 0;
}

/* ---------------------------------------------------------------- backup */

typedef struct copy_stats {
    int64_t files, bytes;
} copy_stats;

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copy one file (fsynced). A source that vanished meanwhile (a pruned checkpoint) is skipped. */
static int copy_file(const char *src, const char *dst, copy_stats *cs, bz_err *e)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? 0 : bz_fail(e, BZ_EIO, src, "backup: cannot read %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int rc = bz_fail(e, BZ_EIO, dst, "backup: cannot create %s: %s", dst, strerror(errno));
        close(in);
        return rc;
    }
    static char buf[1 << 16];
    ssize_t got;
    int64_t total = 0;
    while ((got = read(in, buf, sizeof buf)) > 0 && write_all(out, buf, (size_t)got) == 0) total += got;
    int rc = got != 0 ? bz_fail(e, BZ_EIO, dst, "backup: copying %s to %s: %s", src, dst, strerror(errno)) : 0;
    if (!rc && fsync(out)) rc = bz_fail(e, BZ_EIO, dst, "backup: fsync %s: %s", dst, strerror(errno));
    close(in);
    if (close(out) && !rc) rc = bz_fail(e, BZ_EIO, dst, "backup: close %s: %s", dst, strerror(errno));
    if (!rc) cs->files++, cs->bytes += total;
    return rc;
}

/* cp -r of regular files and folders; symlinks and unfinished writes (*.tmp) are left out. */
static int copy_tree(const char *src, const char *dst, int depth, copy_stats *cs, bz_err *e)
{
    if (depth > COPY_DEPTH_MAX) return 0;
    if (mkdir(dst, 0755) && errno != EEXIST)
        return bz_fail(e, BZ_EIO, dst, "backup: mkdir %s: %s", dst, strerror(errno));
    DIR *d = opendir(src);
    if (!d) return errno == ENOENT ? 0 : bz_fail(e, BZ_EIO, src, "backup: cannot list %s: %s", src, strerror(errno));
    int rc = 0;
    struct dirent *ent;
    while (!rc && (ent = readdir(d))) {
        if (ent->d_name[0] == '.' || ends_with(ent->d_name, ".tmp")) continue;
        char s[PATH_MAX], t[PATH_MAX];
        if (snprintf(s, sizeof s, "%s/%s", src, ent->d_name) >= (int)sizeof s ||
            snprintf(t, sizeof t, "%s/%s", dst, ent->d_name) >= (int)sizeof t)
            continue;
        struct stat sb;
        if (lstat(s, &sb)) continue; /* gone meanwhile */
        if (S_ISDIR(sb.st_mode)) rc = copy_tree(s, t, depth + 1, cs, e);
        else if (S_ISREG(sb.st_mode)) rc = copy_file(s, t, cs, e);
    }
    closedir(d);
    return rc;
}

/* Folders directly under DATA_DIR/jobs (one per job that has files). */
static int64_t count_job_dirs(const char *jobs)
{
    DIR *d = opendir(jobs);
    int64_t n = 0;
    struct dirent *ent;
    while (d && (ent = readdir(d)))
        if (ent->d_name[0] != '.' && ent->d_type == DT_DIR) n++;
    if (d) closedir(d);
    return n;
}

/* DIR must not hold a backup already and must not lie inside the folder being copied. */
static int backup_target_ok(const char *dir, const char *jobs_src, bz_err *e)
{
    char p[PATH_MAX];
    struct stat sb;
    snprintf(p, sizeof p, "%s/boltzd.db", dir);
    bool has_db = stat(p, &sb) == 0;
    snprintf(p, sizeof p, "%s/jobs", dir);
    if (has_db || stat(p, &sb) == 0)
        return bz_fail(e, BZ_ESTATE, "DIR", "backup: %s already holds a backup; pick a new folder", dir);
    char rd[PATH_MAX], rs[PATH_MAX];
    size_t n = 0;
    if (realpath(dir, rd) && realpath(jobs_src, rs) && !strncmp(rd, rs, n = strlen(rs)) && (!rd[n] || rd[n] == '/'))
        return bz_fail(e, BZ_EINVAL, "DIR", "backup: %s is inside the job files %s", dir, jobs_src);
    return 0;
}

/* Checkpoint rows of the copy whose file did not make it (pruned between the snapshot and the
 * file copy; the daemon resumes from the newest checkpoint that loads, so this is harmless). */
static int64_t missing_checkpoints(const char *db, const char *schema_dir, const char *dir, bz_err *e, int *rc)
{
    store *st = NULL;
    ckpt_row *rows = NULL;
    int64_t n = 0, missing = 0;
    *rc = store_open(&st, db, schema_dir, e);
    if (!*rc) *rc = store_ckpt_all(st, &rows, &n, e);
    for (int64_t i = 0; i < n; i++) {
        const char *rel = NULL;
        for (const char *p = strstr(rows[i].path, "/jobs/"); p; p = strstr(p + 1, "/jobs/")) rel = p + 6;
        char path[PATH_MAX];
        struct stat sb;
        snprintf(path, sizeof path, "%s/jobs/%s", dir, rel ? rel : "");
        if (!rel || stat(path, &sb)) missing++;
    }
    free(rows);
    store_close(st);
    return missing;
}

/* The copy: the database snapshot first, then the files (a checkpoint is written by rename, so
 * each copied file is either the old or the new version, never half of one). */
static int backup_run(const bz_config *c, const char *dir, bz_err *e)
{
    char src_db[1200], jobs[1200], dst_db[PATH_MAX], dst_jobs[PATH_MAX];
    snprintf(src_db, sizeof src_db, "%s/boltzd.db", c->data_dir);
    snprintf(jobs, sizeof jobs, "%s/jobs", c->data_dir);
    snprintf(dst_db, sizeof dst_db, "%s/boltzd.db", dir);
    snprintf(dst_jobs, sizeof dst_jobs, "%s/jobs", dir);
    struct stat sb;
    if (stat(src_db, &sb))
        return bz_fail(e, BZ_EIO, "data-dir", "backup: no store at %s (is --data-dir or --config right?)", src_db);
    int rc = jf_mkdirs(dir, e);
    if (!rc) rc = backup_target_ok(dir, jobs, e);
    store *st = NULL;
    if (!rc) rc = store_open(&st, src_db, c->schema_dir, e);
    if (!rc) rc = store_backup(st, dst_db, e);
    store_close(st);
    copy_stats cs = {0, 0};
    if (!rc) rc = copy_tree(jobs, dst_jobs, 0, &cs, e);
    int64_t missing = rc ? 0 : missing_checkpoints(dst_db, c->schema_dir, dir, e, &rc);
    if (rc) return rc;
    int64_t db_bytes = stat(dst_db, &sb) == 0 ? (int64_t)sb.st_size : 0;
    print_json(json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:I}", "db", dst_db, "jobs",
                         (json_int_t)count_job_dirs(dst_jobs), "files", (json_int_t)cs.files, "bytes",
                         (json_int_t)(cs.bytes + db_bytes), "db_bytes", (json_int_t)db_bytes, "integrity", "ok",
                         "missing_checkpoints", (json_int_t)missing));
    return 0;
}

static const char *backup_usage = "boltzd backup DIR [--config FILE] [--data-dir DIR]";

int cli_backup(int argc, char **argv)
{
    const char *config = NULL, *data_dir = NULL, *dir = NULL;
    const cli_opt opts[] = {{"--config", &config, 0}, {"--data-dir", &data_dir, 0}, {NULL, NULL, 0}};
    int rc = cli_parse(argc, argv, opts, &dir, 1, backup_usage);
    if (rc) return parse_or_exit(rc);
    bz_config c;
    bz_err e = {0};
    rc = daemon_config_load(&c, config, data_dir, &e);
    if (!rc) rc = backup_run(&c, dir, &e);
    return rc ? cli_report(&e) : 0;
}
