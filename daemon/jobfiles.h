/* jobfiles.h: the files of one chain in a folder (CLI runs and, later, daemon jobs):
 *   observables.ndjson [observables.csv]  one record per line, in step order, no gaps/duplicates
 *   samples.bin                           weight samples (core/samples.h)
 *   checkpoints/ckpt-<step>.bzc           the last `keep` checkpoints (core/ckpt.h)
 *   status.json                           {"status": "running|succeeded|failed|stopped", ...}
 * and the helpers that keep them consistent on resume: everything after the checkpoint's step is
 * cut away, so a resumed chain rewrites it exactly once. */
#ifndef BZ_JOBFILES_H
#define BZ_JOBFILES_H

#include <stddef.h>
#include <stdint.h>

#include "bz_error.h"
#include "observables.h"

/* Path of the newest checkpoint in dir/checkpoints into buf and its step, or BZ_EIO if none. */
int jf_latest_checkpoint(const char *dir, char *buf, size_t len, int64_t *step);
/* Path for a checkpoint of a given step. */
void jf_checkpoint_path(const char *dir, int64_t step, char *buf, size_t len);
/* Remove all but the newest keep checkpoints. */
void jf_prune_checkpoints(const char *dir, int32_t keep);
/* Keep only the lines of an NDJSON/CSV observables file whose step is <= max_step (CSV: the header
 * line is kept). A missing file is fine. */
int jf_truncate_records(const char *path, int64_t max_step, int is_csv, bz_err *e);
/* mkdir -p for one or two levels. */
int jf_mkdirs(const char *path, bz_err *e);
/* Write a small text file atomically (tmp + fsync + rename). */
int jf_write_atomic(const char *path, const char *text, bz_err *e);

/* Observables read back from an NDJSON file: the series of each named observable. */
typedef struct jf_series {
    int64_t count;
    int64_t *step;
    double *t_wall;
    double *v[OBS_COUNT]; /* one array per observable (obs_names order), NaN where null */
} jf_series;
int jf_read_series(const char *path, jf_series *out, bz_err *e);
void jf_series_free(jf_series *s);

#endif
