/* npy.c: reading and writing NumPy .npy files (format 1.0, 2.0, 3.0; little-endian; C order).
 *
 * Reading checks, in this order: the file opens and is a regular file, the magic, the version,
 * the header length against the file size, the header dictionary ({'descr', 'fortran_order',
 * 'shape'} and nothing else), C order, the byte order and type of 'descr', the shape (at most
 * NPY_MAX_DIMS dimensions, none negative, no overflow), and that the data after the header is
 * exactly count * itemsize bytes. Trailing bytes after the data are an ERROR: they mean the
 * header's shape does not describe the file (NumPy would silently ignore them). The *_rows readers
 * validate the whole file the same way but allocate and read only a prefix of rows.
 *
 * Every error is reported as bz_fail(e, BZ_EIO or BZ_EFORMAT, field = the path,
 * "BASENAME: what is wrong[; how to fix it]"). */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_HEADER (1 << 20) /* header dictionaries larger than 1 MiB are refused */
#define NPY_ALIGN 64             /* data starts at a multiple of this when we write */

typedef struct dtype_info {
    const char *code; /* descr without the byte-order character */
    int size;
    const char *name;
    bool integer;
} dtype_info;

/* Indexed by npy_dtype (same order as the enum). */
static const dtype_info DTYPES[] = {
    [NPY_F32] = {"f4", 4, "float32", false}, [NPY_F64] = {"f8", 8, "float64", false},
    [NPY_I32] = {"i4", 4, "int32", true},    [NPY_I64] = {"i8", 8, "int64", true},
    [NPY_U8] = {"u1", 1, "uint8", true},     [NPY_I8] = {"i1", 1, "int8", true},
    [NPY_I16] = {"i2", 2, "int16", true},    [NPY_U16] = {"u2", 2, "uint16", true},
    [NPY_U32] = {"u4", 4, "uint32", true},   [NPY_U64] = {"u8", 8, "uint64", true},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

static bool dtype_valid(npy_dtype dt) { return (int)dt >= 0 && (int)dt < N_DTYPES; }

int npy_dtype_size(npy_dtype dt) { return dtype_valid(dt) ? DTYPES[dt].size : 0; }

const char *npy_dtype_name(npy_dtype dt) { return dtype_valid(dt) ? DTYPES[dt].name : "unknown"; }

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* bz_fail with field = path and the message prefixed by the file's base name. */
static int npy_fail(bz_err *e, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int npy_fail(bz_err *e, int code, const char *path, const char *fmt, ...)
{
    char what[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bz_fail(e, code, path, "%s: %s", base_name(path), what);
}

/* "(3, 4)", "(5,)" or "()" as NumPy prints shapes. */
static void format_shape(int32_t ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "(");
    for (int32_t i = 0; i < ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < len) snprintf(buf + n, len - n, ndim == 1 ? ",)" : ")");
}

/* ---- header dictionary parser: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } ---- */

typedef struct cursor {
    const char *p, *end;
} cursor;

typedef struct header_dict {
    char descr[32];
    bool fortran;
    int32_t ndim;
    int64_t shape[NPY_MAX_DIMS];
    bool neg;       /* a dimension was negative */
    bool too_many;  /* more than NPY_MAX_DIMS dimensions */
    int32_t seen;   /* bit 0 descr, 1 fortran_order, 2 shape */
} header_dict;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool take(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool take_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return true;
    }
    return false;
}

/* A Python string literal in ' or " quotes (no escapes) into buf. */
static int parse_string(cursor *c, char *buf, size_t len, const char **why)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return *why = "expected a quoted string", -1;
    char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q) c->p++;
    if (c->p >= c->end) return *why = "unterminated string", -1;
    size_t n = (size_t)(c->p - start);
    c->p++;
    if (n >= len) return *why = "string too long", -1;
    memcpy(buf, start, n);
    buf[n] = '\0';
    return 0;
}

/* One Python integer (optionally with a Python 2 'L' suffix) into *v. */
static int parse_int(cursor *c, int64_t *v, const char **why)
{
    skip_ws(c);
    bool neg = false;
    if (c->p < c->end && (*c->p == '-' || *c->p == '+')) neg = *c->p++ == '-';
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return *why = "expected an integer in 'shape'", -1;
    uint64_t acc = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p++ - '0');
        if (acc > ((uint64_t)INT64_MAX - d) / 10) return *why = "a dimension in 'shape' is too large", -1;
        acc = acc * 10 + d;
    }
    if (c->p < c->end && (*c->p == 'L' || *c->p == 'l')) c->p++;
    *v = neg ? -(int64_t)acc : (int64_t)acc;
    return 0;
}

/* A tuple of integers "(3, 4)", "(5,)", "()". */
static int parse_shape(cursor *c, header_dict *h, const char **why)
{
    if (!take(c, '(')) return *why = "'shape' must be a tuple", -1;
    h->ndim = 0;
    if (take(c, ')')) return 0;
    for (;;) {
        int64_t v;
        if (parse_int(c, &v, why)) return -1;
        if (v < 0) h->neg = true;
        if (h->ndim < NPY_MAX_DIMS) h->shape[h->ndim] = v;
        else h->too_many = true;
        if (h->ndim < INT32_MAX) h->ndim++;
        if (take(c, ')')) return 0;
        if (!take(c, ',')) return *why = "expected ',' or ')' in 'shape'", -1;
        if (take(c, ')')) return 0;
    }
}

static int parse_entry(cursor *c, header_dict *h, const char **why)
{
    char key[32];
    if (parse_string(c, key, sizeof key, why)) return -1;
    if (!take(c, ':')) return *why = "expected ':' after a key", -1;
    if (strcmp(key, "descr") == 0) {
        skip_ws(c);
        if (c->p < c->end && *c->p == '[')
            return *why = "structured dtypes (a list in 'descr') are not supported", -1;
        if (parse_string(c, h->descr, sizeof h->descr, why)) return -1;
        h->seen |= 1;
    } else if (strcmp(key, "fortran_order") == 0) {
        if (take_word(c, "True")) h->fortran = true;
        else if (take_word(c, "False")) h->fortran = false;
        else return *why = "'fortran_order' must be True or False", -1;
        h->seen |= 2;
    } else if (strcmp(key, "shape") == 0) {
        if (parse_shape(c, h, why)) return -1;
        h->seen |= 4;
    } else {
        return *why = "unknown key (only 'descr', 'fortran_order', 'shape' are allowed)", -1;
    }
    return 0;
}

static int parse_dict(const char *text, size_t len, header_dict *h, const char **why)
{
    cursor c = {text, text + len};
    memset(h, 0, sizeof *h);
    if (!take(&c, '{')) return *why = "does not start with '{'", -1;
    while (!take(&c, '}')) {
        if (parse_entry(&c, h, why)) return -1;
        if (!take(&c, ',')) {
            if (take(&c, '}')) break;
            return *why = "expected ',' or '}'", -1;
        }
    }
    skip_ws(&c);
    if (c.p != c.end) return *why = "unexpected text after '}'", -1;
    if (h->seen != 7) return *why = "missing one of the keys 'descr', 'fortran_order', 'shape'", -1;
    return 0;
}

/* ---- validating a parsed header ---- */

static int check_descr(const char *path, const char *descr, npy_dtype *dt, bz_err *e)
{
    char order = descr[0];
    if (order == '>')
        return npy_fail(e, BZ_EFORMAT, path,
                        "big-endian dtype '%s' is not supported; save it little-endian with x.astype('<%s')",
                        descr, descr + 1);
    if (order == '<' || order == '|') {
        for (int i = 0; i < N_DTYPES; i++)
            if (strcmp(descr + 1, DTYPES[i].code) == 0) {
                *dt = (npy_dtype)i;
                return 0;
            }
    }
    return npy_fail(e, BZ_EFORMAT, path,
                    "unsupported dtype '%s'; boltzd reads little-endian float32, float64 and "
                    "integer (int8..int64, uint8..uint64) arrays",
                    descr);
}

static int check_shape(const char *path, const header_dict *h, npy_array *out, bz_err *e)
{
    if (h->too_many)
        return npy_fail(e, BZ_EFORMAT, path, "shape has %d dimensions; at most %d are supported",
                        (int)h->ndim, NPY_MAX_DIMS);
    char sh[128];
    format_shape(h->ndim, h->shape, sh, sizeof sh);
    if (h->neg) return npy_fail(e, BZ_EFORMAT, path, "shape %s has a negative dimension", sh);
    int64_t count = 1;
    int64_t limit = INT64_MAX / DTYPES[out->dtype].size;
    for (int32_t i = 0; i < h->ndim; i++) {
        if (h->shape[i] != 0 && count > limit / h->shape[i])
            return npy_fail(e, BZ_EFORMAT, path, "shape %s is too large (its byte size overflows)", sh);
        count *= h->shape[i];
        out->shape[i] = h->shape[i];
    }
    out->ndim = h->ndim;
    out->count = count;
    return 0;
}

/* Magic and version in the first 8 bytes; *hl_bytes = 2 (v1) or 4 (v2, v3). */
static int check_preamble(const char *path, const unsigned char *pre, int64_t fsize, int *hl_bytes, bz_err *e)
{
    if (fsize < NPY_MAGIC_LEN)
        return npy_fail(e, BZ_EFORMAT, path, "file is only %lld bytes, too short for a .npy file",
                        (long long)fsize);
    if (memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        bool zip = pre[0] == 'P' && pre[1] == 'K';
        return npy_fail(e, BZ_EFORMAT, path,
                        "bad magic bytes %02x %02x %02x %02x %02x %02x, expected 93 4e 55 4d 50 59 "
                        "('\\x93NUMPY'): not a .npy file%s",
                        pre[0], pre[1], pre[2], pre[3], pre[4], pre[5],
                        zip ? " (it looks like a .npz zip archive; save each array with np.save)" : "");
    }
    if (fsize < 8) return npy_fail(e, BZ_EFORMAT, path, "file ends after the magic, before the version bytes");
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return npy_fail(e, BZ_EFORMAT, path, "unsupported .npy format version %d.%d (boltzd reads 1.0, 2.0, 3.0)",
                        major, minor);
    *hl_bytes = major == 1 ? 2 : 4;
    return 0;
}

static int read_exact(FILE *f, const char *path, void *buf, size_t n, bz_err *e)
{
    if (n == 0 || fread(buf, 1, n, f) == n) return 0;
    if (ferror(f)) return npy_fail(e, BZ_EIO, path, "read failed: %s", strerror(errno));
    return npy_fail(e, BZ_EFORMAT, path, "file ended while reading (was it modified while being read?)");
}

/* Header length field and the header dictionary itself. */
static int read_dict(FILE *f, const char *path, int hl_bytes, int64_t fsize, header_dict *h,
                     int64_t *offset, bz_err *e)
{
    unsigned char b[4];
    if (fsize < 8 + hl_bytes)
        return npy_fail(e, BZ_EFORMAT, path, "file ends inside the header-length field (%lld bytes)", (long long)fsize);
    int rc = read_exact(f, path, b, (size_t)hl_bytes, e);
    if (rc) return rc;
    uint32_t hlen = hl_bytes == 2 ? (uint32_t)b[0] | (uint32_t)b[1] << 8
                                  : (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    int64_t start = 8 + hl_bytes;
    if ((int64_t)hlen > fsize - start)
        return npy_fail(e, BZ_EFORMAT, path, "header length %u runs past the end of the file (%lld bytes)",
                        hlen, (long long)fsize);
    if (hlen > NPY_MAX_HEADER)
        return npy_fail(e, BZ_EFORMAT, path, "header length %u is implausibly large (limit %d)", hlen, NPY_MAX_HEADER);
    char *text = malloc((size_t)hlen + 1);
    if (!text) return npy_fail(e, BZ_ENOMEM, path, "out of memory reading the header");
    rc = read_exact(f, path, text, hlen, e);
    if (!rc) {
        text[hlen] = '\0';
        const char *why = "";
        if (parse_dict(text, hlen, h, &why))
            rc = npy_fail(e, BZ_EFORMAT, path, "cannot parse the header dictionary (%s): \"%.120s\"", why, text);
    }
    free(text);
    *offset = start + (int64_t)hlen;
    return rc;
}

/* Open path, validate everything up to the data, leave f positioned at the data. */
static int open_npy(const char *path, FILE **fp, npy_array *out, int64_t *offset, bz_err *e)
{
    memset(out, 0, sizeof *out);
    *fp = NULL;
    if (!path) return bz_fail(e, BZ_EINVAL, NULL, "npy: no path given");
    FILE *f = fopen(path, "rb");
    if (!f) return npy_fail(e, BZ_EIO, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return npy_fail(e, BZ_EIO, path, "not a regular file");
    }
    int64_t fsize = (int64_t)st.st_size;
    unsigned char pre[8] = {0};
    size_t got = fread(pre, 1, sizeof pre, f);
    int hl_bytes = 0;
    header_dict h;
    int rc = check_preamble(path, pre, (int64_t)got < fsize ? (int64_t)got : fsize, &hl_bytes, e);
    if (!rc) rc = read_dict(f, path, hl_bytes, fsize, &h, offset, e);
    if (!rc && h.fortran)
        rc = npy_fail(e, BZ_EFORMAT, path,
                      "fortran_order is True; boltzd needs C order: save np.ascontiguousarray(x)");
    if (!rc) rc = check_descr(path, h.descr, &out->dtype, e);
    if (!rc) rc = check_shape(path, &h, out, e);
    if (!rc) {
        int64_t need = out->count * DTYPES[out->dtype].size;
        int64_t have = fsize - *offset;
        char sh[128];
        format_shape(out->ndim, out->shape, sh, sizeof sh);
        if (have < need)
            rc = npy_fail(e, BZ_EFORMAT, path,
                          "data is shorter than the header says: shape %s of %s needs %lld bytes, "
                          "the file has %lld after the header (truncated?)",
                          sh, DTYPES[out->dtype].name, (long long)need, (long long)have);
        else if (have > need)
            rc = npy_fail(e, BZ_EFORMAT, path,
                          "%lld bytes of trailing data after the array: shape %s of %s needs %lld bytes "
                          "but %lld follow the header",
                          (long long)(have - need), sh, DTYPES[out->dtype].name, (long long)need, (long long)have);
    }
    if (rc) {
        fclose(f);
        memset(out, 0, sizeof *out);
        return rc;
    }
    *fp = f;
    return 0;
}

int npy_read_header(const char *path, npy_array *info, int64_t *data_offset, bz_err *e)
{
    FILE *f;
    int64_t off = 0;
    int rc = open_npy(path, &f, info, &off, e);
    if (rc) return rc;
    fclose(f);
    if (data_offset) *data_offset = off;
    return 0;
}

/* Keep only the first max_rows along axis 0 (C order: a prefix of the data); <= 0 keeps all. */
static void limit_rows(npy_array *a, int64_t max_rows)
{
    if (a->ndim < 1 || max_rows <= 0 || max_rows >= a->shape[0]) return;
    a->count = a->shape[0] ? a->count / a->shape[0] * max_rows : 0;
    a->shape[0] = max_rows;
}

/* Read the data of an opened file into out->data (the first max_rows rows); closes f. */
static int read_data(FILE *f, const char *path, npy_array *out, int64_t max_rows, bz_err *e)
{
    limit_rows(out, max_rows);
    int64_t bytes = out->count * DTYPES[out->dtype].size;
    if ((uint64_t)bytes > SIZE_MAX) {
        fclose(f);
        return npy_fail(e, BZ_ELIMIT, path, "array of %lld bytes does not fit in memory", (long long)bytes);
    }
    void *data = malloc(bytes ? (size_t)bytes : 1);
    if (!data) {
        fclose(f);
        return npy_fail(e, BZ_ENOMEM, path, "out of memory for %lld bytes of data", (long long)bytes);
    }
    int rc = read_exact(f, path, data, (size_t)bytes, e);
    fclose(f);
    if (rc) {
        free(data);
        return rc;
    }
    out->data = data;
    return 0;
}

int npy_read(const char *path, npy_array *out, bz_err *e)
{
    FILE *f;
    int64_t off;
    int rc = open_npy(path, &f, out, &off, e);
    if (rc) return rc;
    rc = read_data(f, path, out, 0, e);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

void npy_free(npy_array *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

int npy_read_f32(const char *path, npy_array *out, bz_err *e) { return npy_read_f32_rows(path, 0, out, e); }

int npy_read_f32_rows(const char *path, int64_t max_rows, npy_array *out, bz_err *e)
{
    FILE *f;
    int64_t off;
    int rc = open_npy(path, &f, out, &off, e);
    if (rc) return rc;
    if (out->dtype != NPY_F32) {
        const char *name = DTYPES[out->dtype].name;
        fclose(f);
        memset(out, 0, sizeof *out);
        return npy_fail(e, BZ_EFORMAT, path, "dtype is %s, boltzd needs float32: save it with x.astype(np.float32)",
                        name);
    }
    rc = read_data(f, path, out, max_rows, e);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

/* Element i of an integer array of type dt as int64; *big is set for uint64 values > INT64_MAX. */
static int64_t int_at(const void *data, npy_dtype dt, int64_t i, bool *big)
{
    *big = false;
    switch (dt) {
    case NPY_I8: return ((const int8_t *)data)[i];
    case NPY_U8: return ((const uint8_t *)data)[i];
    case NPY_I16: return ((const int16_t *)data)[i];
    case NPY_U16: return ((const uint16_t *)data)[i];
    case NPY_I32: return ((const int32_t *)data)[i];
    case NPY_U32: return ((const uint32_t *)data)[i];
    case NPY_I64: return ((const int64_t *)data)[i];
    case NPY_U64: {
        uint64_t v = ((const uint64_t *)data)[i];
        if (v > (uint64_t)INT64_MAX) *big = true;
        return (int64_t)(v & (uint64_t)INT64_MAX);
    }
    default: return 0;
    }
}

/* Convert an integer array to a new int32 array, range-checked. */
static int to_int32(const char *path, const npy_array *a, int32_t **out, bz_err *e)
{
    int32_t *y = malloc(a->count ? (size_t)a->count * sizeof *y : 1);
    if (!y) return npy_fail(e, BZ_ENOMEM, path, "out of memory converting %lld labels", (long long)a->count);
    for (int64_t i = 0; i < a->count; i++) {
        bool big;
        int64_t v = int_at(a->data, a->dtype, i, &big);
        if (big || v < INT32_MIN || v > INT32_MAX) {
            free(y);
            if (big)
                return npy_fail(e, BZ_EFORMAT, path, "value %llu at index %lld does not fit in int32",
                                (unsigned long long)((const uint64_t *)a->data)[i], (long long)i);
            return npy_fail(e, BZ_EFORMAT, path, "value %lld at index %lld does not fit in int32", (long long)v,
                            (long long)i);
        }
        y[i] = (int32_t)v;
    }
    *out = y;
    return 0;
}

int npy_read_labels(const char *path, npy_array *out, bz_err *e) { return npy_read_labels_rows(path, 0, out, e); }

int npy_read_labels_rows(const char *path, int64_t max_rows, npy_array *out, bz_err *e)
{
    FILE *f;
    int64_t off;
    int rc = open_npy(path, &f, out, &off, e);
    if (rc) return rc;
    if (!DTYPES[out->dtype].integer) {
        const char *name = DTYPES[out->dtype].name;
        fclose(f);
        memset(out, 0, sizeof *out);
        return npy_fail(e, BZ_EFORMAT, path,
                        "dtype is %s, labels must be integers: save them with y.astype(np.int64)", name);
    }
    rc = read_data(f, path, out, max_rows, e);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    if (out->dtype == NPY_I32) return 0;
    int32_t *y = NULL;
    rc = to_int32(path, out, &y, e);
    free(out->data);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->data = y;
    out->dtype = NPY_I32;
    return 0;
}

/* ---- writing ---- */

/* The header (magic .. newline) padded so that the data starts at a multiple of NPY_ALIGN.
 * Returns its length, or 0 when it does not fit buf. */
static size_t build_header(npy_dtype dtype, int32_t ndim, const int64_t *shape, char *buf, size_t len)
{
    char sh[160], dict[256];
    format_shape(ndim, shape, sh, sizeof sh);
    int dlen = snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': %s, }",
                        DTYPES[dtype].size == 1 ? '|' : '<', DTYPES[dtype].code, sh);
    if (dlen < 0 || (size_t)dlen >= sizeof dict) return 0;
    size_t pre = 10; /* magic 6 + version 2 + u16 length (v1.0 suffices for <= 4 dims) */
    size_t total = pre + (size_t)dlen + 1;
    total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    if (total > len || total - pre > 65535) return 0;
    size_t hlen = total - pre;
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + pre, dict, (size_t)dlen);
    memset(buf + pre + dlen, ' ', total - pre - (size_t)dlen - 1);
    buf[total - 1] = '\n';
    return total;
}

static int write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Best effort: make the rename durable by syncing the directory that holds path. */
static void sync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int check_write_args(const char *path, npy_dtype dtype, int32_t ndim, const int64_t *shape,
                            const void *data, int64_t *bytes, bz_err *e)
{
    if (!path) return bz_fail(e, BZ_EINVAL, NULL, "npy_write: no path given");
    if (!dtype_valid(dtype)) return npy_fail(e, BZ_EINVAL, path, "unknown dtype code %d", (int)dtype);
    if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim > 0 && !shape))
        return npy_fail(e, BZ_EINVAL, path, "ndim %d is outside 0..%d", (int)ndim, NPY_MAX_DIMS);
    int64_t count = 1, limit = INT64_MAX / DTYPES[dtype].size;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0) return npy_fail(e, BZ_EINVAL, path, "dimension %d is negative", (int)i);
        if (shape[i] != 0 && count > limit / shape[i])
            return npy_fail(e, BZ_EINVAL, path, "shape is too large (its byte size overflows)");
        count *= shape[i];
    }
    if (count > 0 && !data) return npy_fail(e, BZ_EINVAL, path, "no data given");
    *bytes = count * DTYPES[dtype].size;
    if ((uint64_t)*bytes > SIZE_MAX) return npy_fail(e, BZ_ELIMIT, path, "array too large for this machine");
    return 0;
}

int npy_write(const char *path, npy_dtype dtype, int32_t ndim, const int64_t *shape, const void *data, bz_err *e)
{
    int64_t bytes = 0;
    int rc = check_write_args(path, dtype, ndim, shape, data, &bytes, e);
    if (rc) return rc;
    char hdr[512], tmp[PATH_MAX];
    size_t hlen = build_header(dtype, ndim, shape, hdr, sizeof hdr);
    if (!hlen) return npy_fail(e, BZ_EINVAL, path, "header does not fit");
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return npy_fail(e, BZ_EINVAL, path, "path is too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return npy_fail(e, BZ_EIO, path, "cannot create %s: %s", tmp, strerror(errno));
    if (write_all(fd, hdr, hlen) || write_all(fd, data, (size_t)bytes) || fsync(fd) != 0) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return npy_fail(e, BZ_EIO, path, "cannot write %s: %s", tmp, strerror(err));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return npy_fail(e, BZ_EIO, path, "cannot finish writing (close/rename of %s): %s", tmp, strerror(err));
    }
    sync_parent(path);
    return 0;
}
