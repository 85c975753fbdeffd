/* npy.h: reading and writing NumPy .npy files (format versions 1.0-3.0, little-endian, C order).
 *
 * Reading validates the magic, version, header dictionary, dtype, shape and file length, and
 * reports the first problem with the file name and what is wrong. Data shorter than the shape
 * needs and trailing bytes after it are both errors (BZ_EFORMAT). */
#ifndef BZ_NPY_H
#define BZ_NPY_H

#include <stdint.h>

#include "bz_error.h"

#define NPY_MAX_DIMS 4

typedef enum { NPY_F32 = 0, NPY_F64, NPY_I32, NPY_I64, NPY_U8, NPY_I8, NPY_I16, NPY_U16, NPY_U32, NPY_U64 } npy_dtype;

typedef struct npy_array {
    npy_dtype dtype;
    int32_t ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t count;      /* product of shape */
    void *data;         /* count elements of dtype, native little-endian; free with free() */
} npy_array;

/* Read a whole .npy file. Accepts '<' or '|' byte order only, fortran_order False only. */
int npy_read(const char *path, npy_array *out, bz_err *e);
void npy_free(npy_array *a);

/* Convenience: read and convert. npy_read_f32 accepts float32 only (any other dtype is an error naming it);
 * npy_read_labels accepts any integer dtype and converts to int32 (range-checked). */
int npy_read_f32(const char *path, npy_array *out, bz_err *e);
int npy_read_labels(const char *path, npy_array *out, bz_err *e);

/* The same, reading only the first max_rows along axis 0 (max_rows <= 0 or >= shape[0]: all);
 * out->shape[0] and out->count describe what was read. The whole file is still validated, so a
 * caller can keep a prefix of a large file without allocating all of it. */
int npy_read_f32_rows(const char *path, int64_t max_rows, npy_array *out, bz_err *e);
int npy_read_labels_rows(const char *path, int64_t max_rows, npy_array *out, bz_err *e);

/* Validate a file up to and including its length (as npy_read does) without reading the data:
 * fills info (data = NULL) and, if data_offset is non-NULL, the byte offset where the data starts.
 * Lets callers check shapes and limits before allocating. */
int npy_read_header(const char *path, npy_array *info, int64_t *data_offset, bz_err *e);

/* Bytes per element (0 for an unknown code) and NumPy's name ("float32", ...; "unknown"). */
int npy_dtype_size(npy_dtype dt);
const char *npy_dtype_name(npy_dtype dt);

/* Write a C-order array; the file is written to PATH.tmp and renamed. */
int npy_write(const char *path, npy_dtype dtype, int32_t ndim, const int64_t *shape,
              const void *data, bz_err *e);

#endif
