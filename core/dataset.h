/* dataset.h: the training and test sets of ALGORITHM.md §3 (spin vectors, FashionMNIST with an
 * optional seeded random projection, a user's own .npy files), held in host memory.
 *
 * Inputs are float32 row-major (rows = examples, N0 columns); labels int32 in [0, C). The same
 * ds_spec gives bit-identical data on every machine. FashionMNIST with projection.binarize takes
 * sign(x) with sign(0) = +1; the npy kind rejects non-finite inputs and labels outside [0, C). */
#ifndef BZ_DATASET_H
#define BZ_DATASET_H

#include <stdint.h>

#include "bz_error.h"
#include "spec.h"

typedef struct ds_data {
    int32_t n_in;       /* N0 */
    int32_t classes;    /* C */
    int64_t n_train;    /* P */
    int64_t n_test;     /* 0 when there is no test set */
    float *x_train;     /* (n_train, n_in) */
    int32_t *y_train;   /* (n_train) */
    float *x_test;      /* (n_test, n_in) or NULL */
    int32_t *y_test;    /* (n_test) or NULL */
    double geometric_bound; /* spin: ALGORITHM.md §3 on the test set; -1 when not defined */
    int64_t n_val;      /* rows held out of the training set for validation (adam early
                           stopping; setup_hold_out), 0 otherwise */
    float *x_val;       /* (n_val, n_in): a view of the tail of x_train's allocation, not owned */
    int32_t *y_val;     /* (n_val): likewise */
} ds_data;

/* Build the data set described by s. On error nothing is left allocated in out. */
int ds_load(const ds_spec *s, ds_data *out, bz_err *e);
void ds_free(ds_data *d);

/* Spin data only: the geometric bound of (x, y) against the references xi (C, N0) of +-1:
 * fraction of rows whose Hamming-nearest reference is not their class, ties counted 1/2.
 * Precisely, per row (x is (rows, N0), sign(0) = +1): own class the unique nearest -> 0; own class
 * not among the nearest -> 1; own class tied with one or more others -> 1/2. -1 when rows == 0. */
double ds_geometric_bound(const float *x, const int32_t *y, int64_t rows, int32_t n_in,
                          const float *xi, int32_t classes);

/* Spin data only: the C references xi (classes, n_in), entries +-1, that ds_load uses for this seed. */
void ds_spin_references(uint64_t seed, int32_t classes, int32_t n_in, float *xi);

/* FashionMNIST IDX files (gzip'd or plain), in file order, fully validated (magic, 28x28 images,
 * length, no trailing data). Images: *pix is (count, 784) bytes; labels: *labels is (count).
 * Caller frees with free(). On error *pix / *labels is NULL and the message names the file. */
int ds_read_idx_images(const char *path, uint8_t **pix, int64_t *count, bz_err *e);
int ds_read_idx_labels(const char *path, uint8_t **labels, int64_t *count, bz_err *e);

/* Counts per class of y (rows) into counts[classes]. */
void ds_class_counts(const int32_t *y, int64_t rows, int32_t classes, int64_t *counts);

#endif
