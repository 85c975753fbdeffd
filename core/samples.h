/* samples.h: the per-chain file of weight samples, appended every samples.every steps.
 *
 * Layout (little-endian): header "BZSAMPL\n" (8 bytes), u32 version (1), u32 reserved,
 * u64 n (weights per sample); then records of i64 step, f64 t_wall (seconds of sampling), and n
 * float32 weights in the flat layout of ALGORITHM.md §1. Records have a fixed size, so a reader
 * drops a partial last record (a crash mid-write) and a resumed chain truncates the records after
 * its checkpoint's step: the file never holds a gap or a duplicate. */
#ifndef BZ_SAMPLES_H
#define BZ_SAMPLES_H

#include <stdint.h>

#include "bz_error.h"

typedef struct samples_file samples_file;

/* Open PATH for appending samples of n weights. keep_through < 0 starts a new file; otherwise an
 * existing file keeps its records with step <= keep_through (and a missing file is created). */
int samples_open(samples_file **out, const char *path, int64_t n, int64_t keep_through, bz_err *e);
int samples_append(samples_file *f, int64_t step, double t_wall, const float *w, bz_err *e);
/* Flush and fsync (called before a checkpoint is written). */
int samples_sync(samples_file *f, bz_err *e);
void samples_close(samples_file *f);

/* Read every complete record: steps (K), times (K), w (K, n) row-major; caller frees the arrays. */
typedef struct samples_data {
    int64_t K, n;
    int64_t *steps;
    double *times;
    float *w;
} samples_data;
int samples_read(const char *path, samples_data *out, bz_err *e);
void samples_data_free(samples_data *d);

#endif
