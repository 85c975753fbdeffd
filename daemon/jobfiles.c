/* jobfiles.c: a chain's files in its folder (see jobfiles.h). */
#include "jobfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "observables.h"

#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".bzc"

void jf_checkpoint_path(const char *dir, int64_t step, char *buf, size_t len)
{
    snprintf(buf, len, "%s/checkpoints/" CKPT_PREFIX "%012lld" CKPT_SUFFIX, dir, (long long)step);
}

/* Step of a checkpoint file name, or -1. */
static int64_t checkpoint_step(const char *name)
{
    size_t lp = strlen(CKPT_PREFIX), ls = strlen(CKPT_SUFFIX), ln = strlen(name);
    if (ln <= lp + ls || strncmp(name, CKPT_PREFIX, lp) || strcmp(name + ln - ls, CKPT_SUFFIX)) return -1;
    char *end;
    long long v = strtoll(name + lp, &end, 10);
    return end == name + ln - ls ? v : -1;
}

/* Steps of all checkpoints, sorted ascending; *count set. Caller frees. */
static int64_t *list_checkpoints(const char *dir, int *count)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    *count = 0;
    DIR *d = opendir(path);
    if (!d) return NULL;
    int cap = 16;
    int64_t *steps = malloc(sizeof(int64_t) * (size_t)cap);
    struct dirent *ent;
    while (steps && (ent = readdir(d))) {
        int64_t s = checkpoint_step(ent->d_name);
        if (s < 0) continue;
        if (*count == cap) {
            int64_t *grown = realloc(steps, sizeof(int64_t) * (size_t)(cap *= 2));
            if (!grown) break;
            steps = grown;
        }
        steps[(*count)++] = s;
    }
    closedir(d);
    for (int i = 1; i < *count; i++) /* insertion sort: a handful of files */
        for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
            int64_t t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    return steps;
}

int jf_latest_checkpoint(const char *dir, char *buf, size_t len, int64_t *step)
{
    int count;
    int64_t *steps = list_checkpoints(dir, &count);
    if (!count) {
        free(steps);
        return BZ_EIO;
    }
    *step = steps[count - 1];
    jf_checkpoint_path(dir, *step, buf, len);
    free(steps);
    return 0;
}

void jf_prune_checkpoints(const char *dir, int32_t keep)
{
    int count;
    int64_t *steps = list_checkpoints(dir, &count);
    char path[1200];
    for (int i = 0; i + keep < count; i++) {
        jf_checkpoint_path(dir, steps[i], path, sizeof path);
        unlink(path);
    }
    free(steps);
}

int jf_mkdirs(const char *path, bz_err *e)
{
    char buf[1200];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST) return bz_fail(e, BZ_EIO, buf, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) return bz_fail(e, BZ_EIO, buf, "cannot create %s: %s", buf, strerror(errno));
    return 0;
}

int jf_write_atomic(const char *path, const char *text, bz_err *e)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return bz_fail(e, BZ_EIO, path, "cannot write %s: %s", tmp, strerror(errno));
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return bz_fail(e, BZ_EIO, path, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

/* Step at the start of an NDJSON record line ({"step":N,...}) or a CSV row (N,...); -1 if none. */
static int64_t line_step(const char *line, int is_csv)
{
    const char *p = line;
    if (!is_csv) {
        static const char key[] = "{\"step\":";
        if (strncmp(line, key, sizeof key - 1)) return -1;
        p = line + sizeof key - 1;
    }
    char *end;
    long long v = strtoll(p, &end, 10);
    return end == p ? -1 : v;
}

int jf_truncate_records(const char *path, int64_t max_step, int is_csv, bz_err *e)
{
    FILE *in = fopen(path, "rb");
    if (!in) return 0;
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        return bz_fail(e, BZ_EIO, path, "cannot rewrite %s: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int first = 1;
    while ((n = getline(&line, &cap, in)) > 0) {
        int complete = line[n - 1] == '\n';
        int64_t s = line_step(line, is_csv);
        int keep = complete && ((is_csv && first) || (s >= 0 && s <= max_step));
        first = 0;
        if (keep) fwrite(line, 1, (size_t)n, out);
    }
    free(line);
    fclose(in);
    int ok = fflush(out) == 0 && fsync(fileno(out)) == 0;
    ok = fclose(out) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return bz_fail(e, BZ_EIO, path, "cannot rewrite %s: %s", path, strerror(errno));
    }
    return 0;
}

void jf_series_free(jf_series *s)
{
    free(s->step);
    free(s->t_wall);
    for (int i = 0; i < OBS_COUNT; i++) free(s->v[i]);
    memset(s, 0, sizeof *s);
}

static int series_grow(jf_series *s, int64_t cap)
{
    int64_t *st = realloc(s->step, sizeof(int64_t) * (size_t)cap);
    if (st) s->step = st;
    double *tw = realloc(s->t_wall, sizeof(double) * (size_t)cap);
    if (tw) s->t_wall = tw;
    if (!st || !tw) return -1;
    for (int i = 0; i < OBS_COUNT; i++) {
        double *v = realloc(s->v[i], sizeof(double) * (size_t)cap);
        if (!v) return -1;
        s->v[i] = v;
    }
    return 0;
}

static double json_num_or_nan(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int jf_read_series(const char *path, jf_series *out, bz_err *e)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return bz_fail(e, BZ_EIO, path, "cannot read %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap_line = 0;
    int64_t cap = 0, lineno = 0;
    int rc = 0;
    while (getline(&line, &cap_line, f) > 0) {
        lineno++;
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!json_is_object(o)) {
            json_decref(o);
            rc = bz_fail(e, BZ_EFORMAT, path, "%s line %lld is not a JSON record: %s", path, (long long)lineno,
                         jerr.text);
            break;
        }
        if (out->count == cap && series_grow(out, cap = cap ? 2 * cap : 1024)) {
            json_decref(o);
            rc = bz_fail(e, BZ_ENOMEM, path, "out of memory reading %s", path);
            break;
        }
        out->step[out->count] = (int64_t)json_integer_value(json_object_get(o, "step"));
        out->t_wall[out->count] = json_num_or_nan(o, "t_wall");
        for (int i = 0; i < OBS_COUNT; i++) out->v[i][out->count] = json_num_or_nan(o, obs_names[i]);
        out->count++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rc) jf_series_free(out);
    return rc;
}
