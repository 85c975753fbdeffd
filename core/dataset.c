/* dataset.c: building the data sets of ALGORITHM.md §3 in host memory: spin vectors,
 * FashionMNIST from Debian's gzip'd IDX files (optionally through a seeded random projection),
 * and a user's folder of .npy files. Everything random comes from the project RNG (rng.h), so a
 * ds_spec gives bit-identical data on every machine.
 *
 * Random streams of the dataset seed (rng_seed(&r, seed, stream)), fixed forever:
 *   1 spin references xi      2 spin train labels   3 spin train flips
 *   4 spin test labels        5 spin test flips
 *   6 fashion train pick      7 fashion test pick   8 fashion projection matrix F
 *
 * Errors name the file (or the dotted spec field) first: "y_train.npy: label 12 at row 7 ...",
 * with e->field the file's path or the spec field. */
#include "dataset.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "npy.h"
#include "rng.h"

enum {
    ST_SPIN_REFS = 1,
    ST_SPIN_TRAIN_LABELS = 2,
    ST_SPIN_TRAIN_FLIPS = 3,
    ST_SPIN_TEST_LABELS = 4,
    ST_SPIN_TEST_FLIPS = 5,
    ST_FASHION_TRAIN_PICK = 6,
    ST_FASHION_TEST_PICK = 7,
    ST_FASHION_PROJ = 8
};

#define FASHION_SIDE 28
#define FASHION_PIXELS (FASHION_SIDE * FASHION_SIDE) /* 784 */
#define FASHION_CLASSES 10
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* bz_fail with field = path and the message prefixed by the file's base name. */
static int file_fail(bz_err *e, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int file_fail(bz_err *e, int code, const char *path, const char *fmt, ...)
{
    char what[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bz_fail(e, code, path, "%s: %s", base_name(path), what);
}

static int join_path(const char *dir, const char *name, char *buf, size_t len, const char *field, bz_err *e)
{
    if (snprintf(buf, len, "%s/%s", dir, name) >= (int)len)
        return bz_fail(e, BZ_EINVAL, field, "%s: folder path is too long", field);
    return 0;
}

/* Check that (rows_train + rows_test) x n_in float32 inputs fit the protective limits. */
static int check_data_bytes(int64_t train, int64_t test, int32_t n_in, bz_err *e)
{
    double bytes = ((double)train + (double)test) * (double)n_in * (double)sizeof(float);
    if (bytes > (double)BZ_LIMIT_DATA_BYTES)
        return bz_fail(e, BZ_ELIMIT, "dataset", "dataset: the inputs would take %.1f GiB, more than the limit of %.0f GiB",
                       bytes / (double)(1LL << 30), (double)BZ_LIMIT_DATA_BYTES / (double)(1LL << 30));
    return 0;
}

static int check_rows(int64_t n, int64_t min, const char *field, bz_err *e)
{
    if (n < min) return bz_fail(e, BZ_EINVAL, field, "%s must be >= %lld", field, (long long)min);
    if (n > BZ_LIMIT_EXAMPLES)
        return bz_fail(e, BZ_ELIMIT, field, "%s is %lld, more than the limit of %lld examples", field, (long long)n,
                       (long long)BZ_LIMIT_EXAMPLES);
    return 0;
}

/* x (rows, n_in) and y (rows), left in *x and *y (freed by ds_free via out on failure). */
static int alloc_split(int64_t rows, int32_t n_in, float **x, int32_t **y, bz_err *e)
{
    *x = malloc(rows > 0 ? (size_t)rows * (size_t)n_in * sizeof **x : 1);
    *y = malloc(rows > 0 ? (size_t)rows * sizeof **y : 1);
    if (!*x || !*y)
        return bz_fail(e, BZ_ENOMEM, "dataset", "dataset: out of memory for %lld examples of %d inputs",
                       (long long)rows, (int)n_in);
    return 0;
}

void ds_free(ds_data *d)
{
    if (!d) return;
    free(d->x_train);
    free(d->y_train);
    free(d->x_test);
    free(d->y_test);
    memset(d, 0, sizeof *d);
}

void ds_class_counts(const int32_t *y, int64_t rows, int32_t classes, int64_t *counts)
{
    for (int32_t c = 0; c < classes; c++) counts[c] = 0;
    for (int64_t i = 0; i < rows; i++)
        if (y[i] >= 0 && y[i] < classes) counts[y[i]]++;
}

/* ---- geometric bound ---- */

/* Contribution of one row: 0 when its own class is the unique Hamming-nearest reference,
 * 1 when its own class is not among the nearest, 1/2 when it is tied with others.
 * Hamming distance counts entries whose signs differ, with sign(0) = +1. */
static double row_bound(const float *x, int32_t own, int32_t n_in, const float *xi, int32_t classes)
{
    int64_t best = INT64_MAX, own_d = -1;
    int32_t n_best = 0;
    for (int32_t c = 0; c < classes; c++) {
        const float *r = xi + (int64_t)c * n_in;
        int64_t d = 0;
        for (int32_t i = 0; i < n_in; i++) d += (x[i] >= 0.0f) != (r[i] >= 0.0f);
        if (c == own) own_d = d;
        if (d < best) {
            best = d;
            n_best = 1;
        } else if (d == best) {
            n_best++;
        }
    }
    if (own_d != best) return 1.0;
    return n_best == 1 ? 0.0 : 0.5;
}

double ds_geometric_bound(const float *x, const int32_t *y, int64_t rows, int32_t n_in, const float *xi,
                          int32_t classes)
{
    if (rows <= 0) return -1.0;
    double sum = 0.0;
    for (int64_t m = 0; m < rows; m++) sum += row_bound(x + m * n_in, y[m], n_in, xi, classes);
    return sum / (double)rows;
}

/* ---- spin vectors ---- */

void ds_spin_references(uint64_t seed, int32_t classes, int32_t n_in, float *xi)
{
    bz_rng r;
    rng_seed(&r, seed, ST_SPIN_REFS);
    for (int64_t k = 0; k < (int64_t)classes * n_in; k++) xi[k] = (rng_next(&r) >> 63) ? 1.0f : -1.0f;
}

/* y (rows): class m % C for m < rows (balanced; the first rows % C classes get one more), shuffled. */
static void spin_labels(uint64_t seed, uint64_t stream, int32_t *y, int64_t rows, int32_t classes)
{
    bz_rng r;
    rng_seed(&r, seed, stream);
    for (int64_t m = 0; m < rows; m++) y[m] = (int32_t)(m % classes);
    rng_shuffle_i32(&r, y, rows);
}

/* x (rows, n_in): row m is xi^(y_m) with each sign flipped with probability p, independently. */
static void spin_inputs(uint64_t seed, uint64_t stream, const float *xi, const int32_t *y, float *x, int64_t rows,
                        int32_t n_in, double p)
{
    bz_rng r;
    rng_seed(&r, seed, stream);
    for (int64_t m = 0; m < rows; m++) {
        const float *ref = xi + (int64_t)y[m] * n_in;
        float *row = x + m * n_in;
        for (int32_t i = 0; i < n_in; i++) row[i] = rng_uniform(&r) < p ? -ref[i] : ref[i];
    }
}

static int spin_check(const ds_spec *s, bz_err *e)
{
    if (s->n_in < 1) return bz_fail(e, BZ_EINVAL, "dataset.n_in", "dataset.n_in must be >= 1");
    if (s->n_in > BZ_LIMIT_WIDTH)
        return bz_fail(e, BZ_ELIMIT, "dataset.n_in", "dataset.n_in is %d, more than the limit of %d", (int)s->n_in,
                       BZ_LIMIT_WIDTH);
    if (s->classes < 2) return bz_fail(e, BZ_EINVAL, "dataset.classes", "dataset.classes must be >= 2");
    if (s->classes > BZ_LIMIT_CLASSES)
        return bz_fail(e, BZ_ELIMIT, "dataset.classes", "dataset.classes is %d, more than the limit of %d",
                       (int)s->classes, BZ_LIMIT_CLASSES);
    if (!(s->p_flip >= 0.0 && s->p_flip <= 1.0))
        return bz_fail(e, BZ_EINVAL, "dataset.p_flip", "dataset.p_flip must be in [0, 1]");
    int rc = check_rows(s->train, 1, "dataset.train", e);
    if (!rc) rc = check_rows(s->test, 0, "dataset.test", e);
    if (!rc) rc = check_data_bytes(s->train, s->test, s->n_in, e);
    return rc;
}

static int load_spin(const ds_spec *s, ds_data *out, bz_err *e)
{
    int rc = spin_check(s, e);
    if (rc) return rc;
    out->n_in = s->n_in;
    out->classes = s->classes;
    float *xi = malloc((size_t)s->classes * (size_t)s->n_in * sizeof *xi);
    if (!xi) return bz_fail(e, BZ_ENOMEM, "dataset", "dataset: out of memory for the references");
    ds_spin_references(s->seed, s->classes, s->n_in, xi);
    rc = alloc_split(s->train, s->n_in, &out->x_train, &out->y_train, e);
    if (!rc && s->test > 0) rc = alloc_split(s->test, s->n_in, &out->x_test, &out->y_test, e);
    if (!rc) {
        out->n_train = s->train;
        spin_labels(s->seed, ST_SPIN_TRAIN_LABELS, out->y_train, s->train, s->classes);
        spin_inputs(s->seed, ST_SPIN_TRAIN_FLIPS, xi, out->y_train, out->x_train, s->train, s->n_in, s->p_flip);
        if (s->test > 0) {
            out->n_test = s->test;
            spin_labels(s->seed, ST_SPIN_TEST_LABELS, out->y_test, s->test, s->classes);
            spin_inputs(s->seed, ST_SPIN_TEST_FLIPS, xi, out->y_test, out->x_test, s->test, s->n_in, s->p_flip);
            out->geometric_bound = ds_geometric_bound(out->x_test, out->y_test, s->test, s->n_in, xi, s->classes);
        } else {
            out->geometric_bound = ds_geometric_bound(out->x_train, out->y_train, s->train, s->n_in, xi, s->classes);
        }
    }
    free(xi);
    return rc;
}

/* ---- FashionMNIST: gzip'd IDX files ---- */

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Read up to n bytes into buf; *got is how many arrived. A gzip or read error is an error;
 * a short count (end of file) is not, the caller says what was missing. */
static int gz_read(gzFile g, const char *path, void *buf, size_t n, size_t *got, bz_err *e)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        int r = gzread(g, (char *)buf + *got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(g, &zerr);
            if (zerr == Z_ERRNO) return file_fail(e, BZ_EIO, path, "read failed: %s", strerror(errno));
            return file_fail(e, BZ_EFORMAT, path, "gzip data is corrupt: %s", msg);
        }
        if (r == 0) break;
        *got += (size_t)r;
    }
    if (*got < n) { /* a truncated gzip stream reports its error only now */
        int zerr;
        const char *msg = gzerror(g, &zerr);
        if (zerr != Z_OK && zerr != Z_BUF_ERROR && zerr != Z_STREAM_END && zerr != Z_ERRNO)
            return file_fail(e, BZ_EFORMAT, path, "gzip data is corrupt: %s", msg);
    }
    return 0;
}

static int gz_open(const char *path, gzFile *g, bz_err *e)
{
    errno = 0;
    *g = gzopen(path, "rb");
    if (!*g) return file_fail(e, BZ_EIO, path, "cannot open: %s", errno ? strerror(errno) : "out of memory");
    return 0;
}

/* Header of hlen bytes (8 labels, 16 images); checks the magic. */
static int idx_header(gzFile g, const char *path, unsigned char *h, size_t hlen, uint32_t magic, const char *kind,
                      bz_err *e)
{
    size_t got;
    int rc = gz_read(g, path, h, hlen, &got, e);
    if (rc) return rc;
    if (got < hlen)
        return file_fail(e, BZ_EFORMAT, path, "file ends after %zu bytes, inside the %zu-byte IDX header", got, hlen);
    uint32_t m = be32(h);
    if (m != magic)
        return file_fail(e, BZ_EFORMAT, path, "bad magic 0x%08x, expected 0x%08x (%s)", m, magic, kind);
    return 0;
}

/* The payload of n bytes, then nothing more (trailing data is an error: the header lies). */
static int idx_payload(gzFile g, const char *path, uint8_t *buf, size_t n, int64_t count, size_t item,
                       const char *what, bz_err *e)
{
    size_t got;
    int rc = gz_read(g, path, buf, n, &got, e);
    if (rc) return rc;
    if (got < n)
        return file_fail(e, BZ_EFORMAT, path,
                         "file ends early: the header announces %lld %s (%zu bytes) but only %zu bytes follow "
                         "(%zu complete %s; truncated download?)",
                         (long long)count, what, n, got, got / item, what);
    unsigned char extra;
    rc = gz_read(g, path, &extra, 1, &got, e);
    if (rc) return rc;
    if (got)
        return file_fail(e, BZ_EFORMAT, path, "trailing data after the %lld %s the header announces",
                         (long long)count, what);
    return 0;
}

/* The FashionMNIST IDX files hold 60000 and 10000 examples. The count is checked before the
 * buffer is allocated (a gzip file's length says nothing about its content), so a corrupt header
 * cannot make boltzd allocate gigabytes; IDX_MAX_EXAMPLES leaves room for larger MNIST-format
 * sets while bounding the allocation to ~160 MB. */
#define IDX_MAX_EXAMPLES 200000

static int idx_count(const char *path, uint32_t n, const char *what, bz_err *e)
{
    if ((int64_t)n > IDX_MAX_EXAMPLES)
        return file_fail(e, BZ_EFORMAT, path,
                         "header announces %u %s, more than the %d an MNIST-format file of boltzd may hold "
                         "(FashionMNIST has 60000): corrupted header?",
                         n, what, IDX_MAX_EXAMPLES);
    return 0;
}

static int read_images(gzFile g, const char *path, uint8_t **pix, int64_t *count, bz_err *e)
{
    unsigned char h[16];
    int rc = idx_header(g, path, h, sizeof h, IDX_MAGIC_IMAGES, "an images file", e);
    if (rc) return rc;
    uint32_t n = be32(h + 4), rows = be32(h + 8), cols = be32(h + 12);
    if (rows != FASHION_SIDE || cols != FASHION_SIDE)
        return file_fail(e, BZ_EFORMAT, path, "images are %ux%u, expected %dx%d", rows, cols, FASHION_SIDE,
                         FASHION_SIDE);
    rc = idx_count(path, n, "images", e);
    if (rc) return rc;
    size_t bytes = (size_t)n * FASHION_PIXELS;
    uint8_t *buf = malloc(bytes ? bytes : 1);
    if (!buf) return file_fail(e, BZ_ENOMEM, path, "out of memory for %u images", n);
    rc = idx_payload(g, path, buf, bytes, n, FASHION_PIXELS, "images", e);
    if (rc) {
        free(buf);
        return rc;
    }
    *pix = buf;
    *count = n;
    return 0;
}

int ds_read_idx_images(const char *path, uint8_t **pix, int64_t *count, bz_err *e)
{
    *pix = NULL;
    *count = 0;
    gzFile g;
    int rc = gz_open(path, &g, e);
    if (rc) return rc;
    rc = read_images(g, path, pix, count, e);
    gzclose(g);
    return rc;
}

static int read_labels(gzFile g, const char *path, uint8_t **labels, int64_t *count, bz_err *e)
{
    unsigned char h[8];
    int rc = idx_header(g, path, h, sizeof h, IDX_MAGIC_LABELS, "a labels file", e);
    if (rc) return rc;
    uint32_t n = be32(h + 4);
    rc = idx_count(path, n, "labels", e);
    if (rc) return rc;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return file_fail(e, BZ_ENOMEM, path, "out of memory for %u labels", n);
    rc = idx_payload(g, path, buf, n, n, 1, "labels", e);
    if (rc) {
        free(buf);
        return rc;
    }
    *labels = buf;
    *count = n;
    return 0;
}

int ds_read_idx_labels(const char *path, uint8_t **labels, int64_t *count, bz_err *e)
{
    *labels = NULL;
    *count = 0;
    gzFile g;
    int rc = gz_open(path, &g, e);
    if (rc) return rc;
    rc = read_labels(g, path, labels, count, e);
    gzclose(g);
    return rc;
}

/* Ft (784, D): the transpose of F (D, 784), whose entries are drawn row by row from the
 * projection stream (so F is defined independently of this storage order). */
static float *projection_matrix(uint64_t seed, int32_t D)
{
    float *ft = malloc((size_t)D * FASHION_PIXELS * sizeof *ft);
    if (!ft) return NULL;
    bz_rng r;
    rng_seed(&r, seed, ST_FASHION_PROJ);
    for (int32_t j = 0; j < D; j++)
        for (int32_t k = 0; k < FASHION_PIXELS; k++) ft[(int64_t)k * D + j] = (float)rng_normal(&r);
    return ft;
}

/* x (D) = F v / sqrt(784) with v = pix / 255, optionally sign(x) with sign(0) = +1.
 * Bit-reproducible: each product F_jk * pix_k (float times an integer <= 255) is exact in double,
 * the sum runs over k in increasing order (zero pixels add exactly nothing), and the one division
 * by 255 * 28 is correctly rounded; so FMA contraction or vectorisation cannot change a bit.
 * acc is scratch of D doubles. */
static void project_row(const float *ft, int32_t D, const uint8_t *pix, bool binarize, double *acc, float *x)
{
    for (int32_t j = 0; j < D; j++) acc[j] = 0.0;
    for (int32_t k = 0; k < FASHION_PIXELS; k++) {
        if (!pix[k]) continue;
        const double p = pix[k];
        const float *f = ft + (int64_t)k * D;
        for (int32_t j = 0; j < D; j++) acc[j] += (double)f[j] * p;
    }
    for (int32_t j = 0; j < D; j++) {
        float v = (float)(acc[j] / (255.0 * FASHION_SIDE));
        x[j] = binarize ? (v >= 0.0f ? 1.0f : -1.0f) : v;
    }
}

typedef struct fashion_split {
    const char *images, *labels; /* file names in s->dir */
    const char *field;           /* "dataset.train" | "dataset.test" */
    int64_t want;
    uint64_t stream;
} fashion_split;

/* Labels file: read, check every label is 0..9 and that want <= count. */
static int fashion_labels(const fashion_split *sp, const char *path, uint8_t **lab,
                          int64_t *n, bz_err *e)
{
    int rc = ds_read_idx_labels(path, lab, n, e);
    if (rc) return rc;
    for (int64_t i = 0; i < *n; i++)
        if ((*lab)[i] >= FASHION_CLASSES)
            return file_fail(e, BZ_EFORMAT, path, "label %u at index %lld is outside 0..%d", (*lab)[i], (long long)i,
                             FASHION_CLASSES - 1);
    if (sp->want > *n)
        return bz_fail(e, BZ_EINVAL, sp->field, "%s is %lld but %s has only %lld examples", sp->field,
                       (long long)sp->want, sp->labels, (long long)*n);
    return 0;
}

/* Pick sp->want examples after a seeded shuffle into x (want, n_in), y (want). */
static int fashion_fill(const ds_spec *s, const fashion_split *sp, const uint8_t *pix, const uint8_t *lab,
                        int64_t n, const float *ft, int32_t n_in, float *x, int32_t *y, bz_err *e)
{
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    double *acc = ft ? malloc((size_t)n_in * sizeof *acc) : NULL;
    if (!perm || (ft && !acc)) {
        free(perm);
        free(acc);
        return bz_fail(e, BZ_ENOMEM, "dataset", "dataset: out of memory");
    }
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    bz_rng r;
    rng_seed(&r, s->seed, sp->stream);
    rng_shuffle_i32(&r, perm, n);
    for (int64_t m = 0; m < sp->want; m++) {
        const uint8_t *img = pix + (int64_t)perm[m] * FASHION_PIXELS;
        float *row = x + m * n_in;
        y[m] = lab[perm[m]];
        if (ft) project_row(ft, n_in, img, s->binarize, acc, row);
        else
            for (int32_t k = 0; k < FASHION_PIXELS; k++) row[k] = (float)img[k] / 255.0f;
    }
    free(perm);
    free(acc);
    return 0;
}

static int fashion_load_split(const ds_spec *s, const fashion_split *sp, const float *ft, int32_t n_in, float **x,
                              int32_t **y, bz_err *e)
{
    char lpath[BZ_PATH_MAX + 64], ipath[BZ_PATH_MAX + 64];
    int rc = join_path(s->dir, sp->labels, lpath, sizeof lpath, "dataset.dir", e);
    if (!rc) rc = join_path(s->dir, sp->images, ipath, sizeof ipath, "dataset.dir", e);
    if (rc) return rc;
    uint8_t *lab = NULL, *pix = NULL;
    int64_t nl = 0, ni = 0;
    rc = fashion_labels(sp, lpath, &lab, &nl, e);
    if (!rc) rc = ds_read_idx_images(ipath, &pix, &ni, e);
    if (!rc && ni != nl)
        rc = file_fail(e, BZ_EFORMAT, lpath, "has %lld labels but %s has %lld images", (long long)nl, sp->images,
                       (long long)ni);
    if (!rc) rc = alloc_split(sp->want, n_in, x, y, e);
    if (!rc) rc = fashion_fill(s, sp, pix, lab, ni, ft, n_in, *x, *y, e);
    free(lab);
    free(pix);
    return rc;
}

static int fashion_check(const ds_spec *s, bz_err *e)
{
    if (s->proj_dim < 0)
        return bz_fail(e, BZ_EINVAL, "dataset.projection.dim", "dataset.projection.dim must be >= 0");
    if (s->proj_dim > BZ_LIMIT_WIDTH)
        return bz_fail(e, BZ_ELIMIT, "dataset.projection.dim", "dataset.projection.dim is %d, more than the limit of %d",
                       (int)s->proj_dim, BZ_LIMIT_WIDTH);
    int rc = check_rows(s->train, 1, "dataset.train", e);
    if (!rc) rc = check_rows(s->test, 0, "dataset.test", e);
    if (!rc) rc = check_data_bytes(s->train, s->test, s->proj_dim > 0 ? s->proj_dim : FASHION_PIXELS, e);
    return rc;
}

static int load_fashion(const ds_spec *s, ds_data *out, bz_err *e)
{
    int rc = fashion_check(s, e);
    if (rc) return rc;
    const fashion_split train = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "dataset.train",
                                 s->train, ST_FASHION_TRAIN_PICK};
    const fashion_split test = {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "dataset.test", s->test,
                                ST_FASHION_TEST_PICK};
    int32_t n_in = s->proj_dim > 0 ? s->proj_dim : FASHION_PIXELS;
    float *ft = NULL;
    if (s->proj_dim > 0 && !(ft = projection_matrix(s->seed, s->proj_dim)))
        return bz_fail(e, BZ_ENOMEM, "dataset.projection.dim", "dataset: out of memory for the projection matrix");
    rc = fashion_load_split(s, &train, ft, n_in, &out->x_train, &out->y_train, e);
    if (!rc && s->test > 0) rc = fashion_load_split(s, &test, ft, n_in, &out->x_test, &out->y_test, e);
    free(ft);
    if (rc) return rc;
    out->n_in = n_in;
    out->classes = FASHION_CLASSES;
    out->n_train = s->train;
    out->n_test = s->test;
    return 0;
}

/* ---- a folder of .npy files ---- */

typedef struct npy_split {
    const char *xname, *yname; /* "x_train.npy", "y_train.npy" */
    const char *field;         /* "dataset.train" | "dataset.test" */
    int64_t want;              /* rows to keep; 0 = all */
} npy_split;

/* Shapes from the headers only: x (rows, cols) and y (rows); rows, cols within the limits;
 * cols equal to train_cols when train_cols > 0; want <= rows. Sets *rows (kept) and *cols. */
static int npy_split_shapes(const char *xp, const char *yp, const npy_split *sp, int64_t train_cols,
                            const char *train_xp, int64_t *rows, int64_t *cols, bz_err *e)
{
    npy_array hx, hy;
    int rc = npy_read_header(xp, &hx, NULL, e);
    if (rc) return rc;
    if (hx.ndim != 2)
        return file_fail(e, BZ_EFORMAT, xp, "expected a 2-D array (examples, features), got %d dimensions",
                         (int)hx.ndim);
    if (hx.shape[0] < 1 || hx.shape[1] < 1)
        return file_fail(e, BZ_EFORMAT, xp, "has shape (%lld, %lld); it needs at least one row and one column",
                         (long long)hx.shape[0], (long long)hx.shape[1]);
    if (hx.shape[1] > BZ_LIMIT_WIDTH)
        return file_fail(e, BZ_ELIMIT, xp, "has %lld columns, more than the limit of %d", (long long)hx.shape[1],
                         BZ_LIMIT_WIDTH);
    if (hx.shape[0] > BZ_LIMIT_EXAMPLES)
        return file_fail(e, BZ_ELIMIT, xp, "has %lld rows, more than the limit of %lld", (long long)hx.shape[0],
                         (long long)BZ_LIMIT_EXAMPLES);
    if (train_cols > 0 && hx.shape[1] != train_cols)
        return file_fail(e, BZ_EFORMAT, xp, "has %lld columns but %s has %lld", (long long)hx.shape[1],
                         base_name(train_xp), (long long)train_cols);
    rc = npy_read_header(yp, &hy, NULL, e);
    if (rc) return rc;
    if (hy.ndim != 1)
        return file_fail(e, BZ_EFORMAT, yp, "expected a 1-D array of labels, got %d dimensions (save y.ravel())",
                         (int)hy.ndim);
    if (hy.shape[0] != hx.shape[0])
        return file_fail(e, BZ_EFORMAT, yp, "has %lld labels but %s has %lld rows", (long long)hy.shape[0],
                         sp->xname, (long long)hx.shape[0]);
    if (sp->want > hx.shape[0])
        return bz_fail(e, BZ_EINVAL, sp->field, "%s is %lld but %s has only %lld rows", sp->field,
                       (long long)sp->want, sp->xname, (long long)hx.shape[0]);
    *rows = sp->want > 0 ? sp->want : hx.shape[0];
    *cols = hx.shape[1];
    return 0;
}

/* Every input of x (rows, cols) finite. */
static int check_finite(const char *xp, const float *x, int64_t rows, int64_t cols, bz_err *e)
{
    for (int64_t m = 0; m < rows; m++)
        for (int64_t i = 0; i < cols; i++)
            if (!isfinite(x[m * cols + i]))
                return file_fail(e, BZ_EFORMAT, xp, "row %lld, column %lld is %s; inputs must be finite", (long long)m,
                                 (long long)i, isnan(x[m * cols + i]) ? "NaN" : "infinite");
    return 0;
}

/* Read the first rows of x and y (already shape-checked), hand the buffers to *x, *y. */
static int npy_split_read(const char *xp, const char *yp, int64_t rows, int64_t cols, float **x, int32_t **y,
                          bz_err *e)
{
    npy_array ax, ay;
    int rc = npy_read_f32_rows(xp, rows, &ax, e);
    if (rc) return rc;
    rc = npy_read_labels_rows(yp, rows, &ay, e);
    if (rc) {
        npy_free(&ax);
        return rc;
    }
    if (ax.ndim != 2 || ax.shape[1] != cols || ax.shape[0] != rows || ay.count != rows)
        rc = file_fail(e, BZ_EFORMAT, xp, "changed while being read");
    if (!rc) rc = check_finite(xp, ax.data, rows, cols, e);
    if (rc) {
        npy_free(&ax);
        npy_free(&ay);
        return rc;
    }
    *x = ax.data;
    *y = ay.data;
    return 0;
}

/* Labels in 0..classes-1 (classes > 0), naming the first offending row. */
static int check_labels(const char *yp, const int32_t *y, int64_t rows, int32_t classes, bool given, bz_err *e)
{
    for (int64_t m = 0; m < rows; m++) {
        if (y[m] < 0)
            return file_fail(e, BZ_EFORMAT, yp, "label %d at row %lld is negative; labels must be 0..C-1", (int)y[m],
                             (long long)m);
        if (y[m] >= classes)
            return file_fail(e, BZ_EFORMAT, yp, "label %d at row %lld is outside 0..%d%s", (int)y[m], (long long)m,
                             (int)classes - 1, given ? " (dataset.classes)" : "");
    }
    return 0;
}

/* The larger of so_far and the largest label in y (rows). */
static int64_t max_label(const int32_t *y, int64_t rows, int64_t so_far)
{
    for (int64_t m = 0; m < rows; m++)
        if (y[m] > so_far) so_far = y[m];
    return so_far;
}

/* *classes = dataset.classes, or max label + 1 over train and test when it is 0; every label
 * checked against it. */
static int npy_classes(const ds_spec *s, const ds_data *d, const char *ytr, const char *yte, int32_t *classes,
                       bz_err *e)
{
    int32_t C = s->classes;
    int rc;
    if (C > BZ_LIMIT_CLASSES)
        return bz_fail(e, BZ_ELIMIT, "dataset.classes", "dataset.classes is %d, more than the limit of %d", (int)C,
                       BZ_LIMIT_CLASSES);
    if (C < 0) return bz_fail(e, BZ_EINVAL, "dataset.classes", "dataset.classes must be >= 0 (0 = infer)");
    if (C == 0) { /* infer: negative labels are reported by check_labels below */
        int64_t mx = max_label(d->y_train, d->n_train, 0);
        mx = max_label(d->y_test, d->n_test, mx);
        if (mx + 1 > BZ_LIMIT_CLASSES)
            return file_fail(e, BZ_ELIMIT, ytr, "the largest label is %lld, more classes than the limit of %d",
                             (long long)mx, BZ_LIMIT_CLASSES);
        C = (int32_t)(mx + 1);
    }
    rc = check_labels(ytr, d->y_train, d->n_train, C, s->classes > 0, e);
    if (!rc && d->n_test) rc = check_labels(yte, d->y_test, d->n_test, C, s->classes > 0, e);
    if (!rc && C < 2)
        return file_fail(e, BZ_EFORMAT, ytr, "every label is 0; a classifier needs at least 2 classes");
    if (!rc) *classes = C;
    return rc;
}

static int load_npy(const ds_spec *s, ds_data *out, bz_err *e)
{
    char p[4][BZ_PATH_MAX + 64];
    static const char *names[4] = {"x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"};
    int rc = 0;
    for (int i = 0; i < 4 && !rc; i++) rc = join_path(s->dir, names[i], p[i], sizeof p[i], "dataset.dir", e);
    if (!rc) rc = check_rows(s->train, 0, "dataset.train", e);
    if (!rc) rc = check_rows(s->test, 0, "dataset.test", e);
    if (rc) return rc;
    bool has_xt = access(p[2], F_OK) == 0, has_yt = access(p[3], F_OK) == 0;
    if (has_xt != has_yt)
        return file_fail(e, BZ_EFORMAT, has_xt ? p[3] : p[2], "is missing but %s is present: provide both or neither",
                         has_xt ? names[2] : names[3]);
    if (!has_xt && s->test > 0)
        return bz_fail(e, BZ_EINVAL, "dataset.test", "dataset.test is %lld but %s has no x_test.npy/y_test.npy",
                       (long long)s->test, s->dir);
    const npy_split train = {names[0], names[1], "dataset.train", s->train};
    const npy_split test = {names[2], names[3], "dataset.test", s->test};
    int64_t rows = 0, cols = 0, trows = 0, tcols = 0;
    rc = npy_split_shapes(p[0], p[1], &train, 0, NULL, &rows, &cols, e);
    if (!rc && has_xt) rc = npy_split_shapes(p[2], p[3], &test, cols, p[0], &trows, &tcols, e);
    if (!rc) rc = check_data_bytes(rows, trows, (int32_t)cols, e);
    if (!rc) rc = npy_split_read(p[0], p[1], rows, cols, &out->x_train, &out->y_train, e);
    if (!rc && has_xt) rc = npy_split_read(p[2], p[3], trows, cols, &out->x_test, &out->y_test, e);
    if (rc) return rc;
    out->n_in = (int32_t)cols;
    out->n_train = rows;
    out->n_test = trows;
    return npy_classes(s, out, p[1], p[3], &out->classes, e);
}

int ds_load(const ds_spec *s, ds_data *out, bz_err *e)
{
    if (!out) return bz_fail(e, BZ_EINVAL, "dataset", "ds_load: no output given");
    memset(out, 0, sizeof *out);
    if (!s) return bz_fail(e, BZ_EINVAL, "dataset", "ds_load: no spec given");
    out->geometric_bound = -1.0;
    int rc;
    switch (s->kind) {
    case DS_SPIN: rc = load_spin(s, out, e); break;
    case DS_FASHION_MNIST: rc = load_fashion(s, out, e); break;
    case DS_NPY: rc = load_npy(s, out, e); break;
    default: rc = bz_fail(e, BZ_EINVAL, "dataset.kind", "dataset.kind %d is unknown", (int)s->kind);
    }
    if (rc) ds_free(out);
    return rc;
}
