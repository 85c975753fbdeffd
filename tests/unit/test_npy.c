/* test_npy.c: .npy reading and writing (core/npy.c): round trips for several dtypes and ranks,
 * hand-built v1/v2/v3 files, 64-byte data alignment, and every malformed-file case rejected with
 * BZ_EFORMAT / BZ_EIO and the file named. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"
#include "testutil.h"

static char g_dir[256];

static void make_dir(void) { cr_assert_not_null(tu_mkdtemp(g_dir, sizeof g_dir)); }

static const char *path_in(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

/* A .npy file built by hand: magic, version major.0, header length (2 bytes for v1, 4 for v2/v3),
 * the header text as given (no padding added), then data. */
static void write_raw_npy(const char *path, int major, const char *header, const void *data, size_t len)
{
    size_t hl = strlen(header), lb = major == 1 ? 2 : 4, pre = 8 + lb;
    unsigned char *buf = malloc(pre + hl + len + 1);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < lb; i++) buf[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + pre, header, hl);
    if (len) memcpy(buf + pre + hl, data, len);
    cr_assert_eq(tu_write_file(path, buf, pre + hl + len), 0);
    free(buf);
}

/* rc is code, and the error names the file (base name in the message, path in the field). */
static void expect_error(int rc, const bz_err *e, int code, const char *fname, const char *needle)
{
    cr_assert_eq(rc, code, "rc %d, expected %d (%s)", rc, code, e->msg);
    cr_assert_eq(e->code, code);
    cr_assert(strstr(e->msg, fname) != NULL, "message does not name %s: %s", fname, e->msg);
    cr_assert(strstr(e->field, fname) != NULL, "field does not name %s: %s", fname, e->field);
    if (needle) cr_assert(strstr(e->msg, needle) != NULL, "message lacks \"%s\": %s", needle, e->msg);
}

/* Write (dtype, shape) with data, read it back, compare everything. */
static void round_trip(npy_dtype dt, int32_t ndim, const int64_t *shape, const void *data, size_t bytes)
{
    bz_err e = {0};
    const char *p = path_in("rt.npy");
    cr_assert_eq(npy_write(p, dt, ndim, shape, data, &e), 0, "%s", e.msg);
    npy_array a;
    cr_assert_eq(npy_read(p, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.dtype, dt);
    cr_assert_eq(a.ndim, ndim);
    int64_t count = 1;
    for (int32_t i = 0; i < ndim; i++) {
        cr_assert_eq(a.shape[i], shape[i]);
        count *= shape[i];
    }
    cr_assert_eq(a.count, count);
    cr_assert_eq((size_t)a.count * (size_t)npy_dtype_size(dt), bytes);
    cr_assert_eq(memcmp(a.data, data, bytes), 0);
    npy_free(&a);
    cr_assert_null(a.data);
    cr_assert_neq(access(path_in("rt.npy.tmp"), F_OK), 0, "the temporary file was left behind");
}

Test(npy, round_trip_f32)
{
    make_dir();
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = 0.25f * (float)i - 1.5f;
    int64_t s2[2] = {3, 4}, s1[1] = {12};
    round_trip(NPY_F32, 2, s2, x, sizeof x);
    round_trip(NPY_F32, 1, s1, x, sizeof x);
    npy_array a;
    bz_err e = {0};
    cr_assert_eq(npy_read_f32(path_in("rt.npy"), &a, &e), 0);
    cr_assert_float_eq(((float *)a.data)[11], 1.25f, 0.0f);
    npy_free(&a);
}

Test(npy, round_trip_i32)
{
    make_dir();
    int32_t x[6] = {INT32_MIN, -1, 0, 1, 7, INT32_MAX};
    int64_t s2[2] = {2, 3}, s1[1] = {6};
    round_trip(NPY_I32, 2, s2, x, sizeof x);
    round_trip(NPY_I32, 1, s1, x, sizeof x);
}

Test(npy, round_trip_i64)
{
    make_dir();
    int64_t x[6] = {INT64_MIN, -3, 0, 5, 1LL << 40, INT64_MAX};
    int64_t s2[2] = {3, 2}, s1[1] = {6};
    round_trip(NPY_I64, 2, s2, x, sizeof x);
    round_trip(NPY_I64, 1, s1, x, sizeof x);
}

Test(npy, round_trip_u8)
{
    make_dir();
    uint8_t x[10] = {0, 1, 2, 127, 128, 200, 254, 255, 9, 3};
    int64_t s2[2] = {5, 2}, s1[1] = {10};
    round_trip(NPY_U8, 2, s2, x, sizeof x);
    round_trip(NPY_U8, 1, s1, x, sizeof x);
    /* NumPy spells one-byte types with '|'. */
    char *text = tu_read_file(path_in("rt.npy"), NULL);
    cr_assert(strstr(text + 10, "'descr': '|u1'") != NULL, "%s", text + 10); /* skip the binary preamble */
    free(text);
}

Test(npy, round_trip_empty_and_4d)
{
    make_dir();
    int64_t s0[2] = {0, 3};
    round_trip(NPY_F64, 2, s0, "", 0);
    double x[16];
    for (int i = 0; i < 16; i++) x[i] = i * 1e-3;
    int64_t s4[4] = {2, 2, 2, 2};
    round_trip(NPY_F64, 4, s4, x, sizeof x);
}

/* The header pads the data to a multiple of 64 bytes and ends with a newline. */
Test(npy, header_alignment)
{
    make_dir();
    static const int64_t shapes[][2] = {{1, 1}, {3, 4}, {123456789, 0}, {0, 987654321}, {7, 1}};
    const float data[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        bz_err e = {0};
        const char *p = path_in("al.npy");
        cr_assert_eq(npy_write(p, NPY_F32, 2, shapes[k], data, &e), 0, "%s", e.msg);
        npy_array info;
        int64_t off = -1;
        cr_assert_eq(npy_read_header(p, &info, &off, &e), 0, "%s", e.msg);
        cr_assert_eq(off % 64, 0, "data offset %lld", (long long)off);
        cr_assert_eq(info.shape[0], shapes[k][0]);
        cr_assert_eq(info.shape[1], shapes[k][1]);
        cr_assert_null(info.data);
        size_t len;
        char *text = tu_read_file(p, &len);
        cr_assert_eq(text[off - 1], '\n');
        cr_assert_eq(memcmp(text, "\x93NUMPY\x01\x00", 8), 0);
        cr_assert_eq((int64_t)len, off + 4 * shapes[k][0] * shapes[k][1]);
        free(text);
    }
}

/* Version 1.0, 2.0 and 3.0 headers written by hand, unpadded, with double quotes, Python 2 'L'
 * suffixes and no trailing comma, all read. */
Test(npy, versions_1_2_3_by_hand)
{
    make_dir();
    const float x[6] = {1, 2, 3, 4, 5, 6.5f};
    const char *headers[3] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
        "{\"descr\": \"<f4\", \"shape\": (2L, 3L), \"fortran_order\": False}",
        "{'shape': (2,3),'fortran_order':False,'descr':'<f4'}      \n",
    };
    for (int v = 1; v <= 3; v++) {
        write_raw_npy(path_in("v.npy"), v, headers[v - 1], x, sizeof x);
        npy_array a;
        bz_err e = {0};
        cr_assert_eq(npy_read_f32(path_in("v.npy"), &a, &e), 0, "v%d: %s", v, e.msg);
        cr_assert_eq(a.ndim, 2);
        cr_assert_eq(a.shape[0], 2);
        cr_assert_eq(a.shape[1], 3);
        cr_assert_eq(memcmp(a.data, x, sizeof x), 0);
        npy_free(&a);
    }
}

Test(npy, scalar_shape)
{
    make_dir();
    const double v = 2.5;
    write_raw_npy(path_in("s.npy"), 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }\n", &v, sizeof v);
    npy_array a;
    bz_err e = {0};
    cr_assert_eq(npy_read(path_in("s.npy"), &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.ndim, 0);
    cr_assert_eq(a.count, 1);
    cr_assert_float_eq(((double *)a.data)[0], 2.5, 0.0);
    npy_free(&a);
}

/* One malformed header: read fails with BZ_EFORMAT, names x_train.npy, says needle. */
static void bad_header(int major, const char *header, const void *data, size_t len, const char *needle)
{
    const char *p = path_in("x_train.npy");
    write_raw_npy(p, major, header, data, len);
    npy_array a;
    bz_err e = {0};
    int rc = npy_read(p, &a, &e);
    expect_error(rc, &e, BZ_EFORMAT, "x_train.npy", needle);
    cr_assert_null(a.data);
    cr_assert_eq(a.count, 0);
}

Test(npy, missing_file)
{
    make_dir();
    npy_array a;
    bz_err e = {0};
    int rc = npy_read(path_in("x_train.npy"), &a, &e);
    expect_error(rc, &e, BZ_EIO, "x_train.npy", "No such file");
}

Test(npy, bad_magic)
{
    make_dir();
    const char *p = path_in("x_train.npy");
    cr_assert_eq(tu_write_file(p, "PK\x03\x04 this is a zip file, not npy", 33), 0);
    npy_array a;
    bz_err e = {0};
    expect_error(npy_read(p, &a, &e), &e, BZ_EFORMAT, "x_train.npy", "bad magic bytes 50 4b 03 04 20 74");
    cr_assert(strstr(e.msg, ".npz") != NULL, "%s", e.msg);
    cr_assert_eq(tu_write_file(p, "\x93NUM", 4), 0);
    expect_error(npy_read(p, &a, &e), &e, BZ_EFORMAT, "x_train.npy", "too short");
    cr_assert_eq(tu_write_file(p, "", 0), 0);
    expect_error(npy_read(p, &a, &e), &e, BZ_EFORMAT, "x_train.npy", "0 bytes");
}

Test(npy, unsupported_version)
{
    make_dir();
    const float x = 1;
    bad_header(4, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", &x, 4, "version 4.0");
}

Test(npy, header_length_past_end)
{
    make_dir();
    const char *p = path_in("x_train.npy");
    unsigned char buf[20] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0x00, '{'};
    cr_assert_eq(tu_write_file(p, buf, sizeof buf), 0);
    npy_array a;
    bz_err e = {0};
    expect_error(npy_read(p, &a, &e), &e, BZ_EFORMAT, "x_train.npy", "header length 255 runs past the end");
    cr_assert(strstr(e.msg, "20 bytes") != NULL, "%s", e.msg);
    cr_assert_eq(tu_write_file(p, buf, 9), 0); /* cut inside the length field */
    expect_error(npy_read(p, &a, &e), &e, BZ_EFORMAT, "x_train.npy", "header-length");
}

Test(npy, unparsable_header)
{
    make_dir();
    const float x = 1;
    bad_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [1], }\n", &x, 4, "cannot parse");
    bad_header(1, "not a dict at all", &x, 4, "cannot parse");
    bad_header(1, "{'descr': '<f4', 'shape': (1,), }\n", &x, 4, "missing one of the keys");
    bad_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", &x, 4, "unknown key");
    bad_header(1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", &x, 4, "True or False");
    bad_header(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", &x, 4, "structured");
}

Test(npy, fortran_order)
{
    make_dir();
    const float x[4] = {0};
    bad_header(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", x, sizeof x, "fortran_order is True");
}

Test(npy, big_endian)
{
    make_dir();
    const float x[2] = {0};
    bad_header(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", x, sizeof x, "big-endian dtype '>f4'");
}

Test(npy, unsupported_dtype)
{
    make_dir();
    const float x[2] = {0};
    bad_header(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", x, sizeof x,
               "unsupported dtype '<c8'");
    bad_header(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (8,), }\n", x, sizeof x,
               "unsupported dtype '|b1'");
    bad_header(1, "{'descr': '<U5', 'fortran_order': False, 'shape': (1,), }\n", x, sizeof x,
               "unsupported dtype '<U5'");
}

Test(npy, bad_shapes)
{
    make_dir();
    const float x[2] = {0};
    bad_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 2), }\n", x, sizeof x,
               "5 dimensions");
    bad_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }\n", x, sizeof x, "negative");
    bad_header(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n", x, sizeof x,
               "overflows");
    bad_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", x, sizeof x,
               "too large");
}

Test(npy, data_too_short)
{
    make_dir();
    const float x[5] = {0};
    bad_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", x, sizeof x,
               "needs 24 bytes, the file has 20");
}

/* Trailing bytes after the data are an error (the shape does not describe the file). */
Test(npy, trailing_junk_rejected)
{
    make_dir();
    const float x[7] = {0};
    bad_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", x, sizeof x,
               "4 bytes of trailing data");
}

Test(npy, read_f32_names_dtype_and_fix)
{
    make_dir();
    const double x[2] = {1, 2};
    int64_t shape[1] = {2};
    bz_err e = {0};
    const char *p = path_in("x_train.npy");
    cr_assert_eq(npy_write(p, NPY_F64, 1, shape, x, &e), 0);
    npy_array a;
    expect_error(npy_read_f32(p, &a, &e), &e, BZ_EFORMAT, "x_train.npy", "float64");
    cr_assert(strstr(e.msg, ".astype(np.float32)") != NULL, "%s", e.msg);
    cr_assert_null(a.data);
}

Test(npy, labels_from_every_integer_type)
{
    make_dir();
    bz_err e = {0};
    const char *p = path_in("y_train.npy");
    int64_t shape[1] = {4};
    const int8_t i1[4] = {-2, 0, 1, 127};
    const int16_t i2[4] = {-300, 0, 1, 32767};
    const uint16_t u2[4] = {0, 1, 2, 65535};
    const uint32_t u4[4] = {0, 9, 10, 2147483647u};
    const int64_t i8[4] = {-2147483648LL, 0, 3, 2147483647LL};
    const uint64_t u8[4] = {0, 1, 2, 3};
    const uint8_t u1[4] = {9, 0, 0, 3};
    const int32_t i4[4] = {5, 6, 7, 8};
    struct {
        npy_dtype dt;
        const void *data;
        int32_t expect[4];
    } cases[] = {
        {NPY_I8, i1, {-2, 0, 1, 127}},
        {NPY_I16, i2, {-300, 0, 1, 32767}},
        {NPY_U16, u2, {0, 1, 2, 65535}},
        {NPY_U32, u4, {0, 9, 10, 2147483647}},
        {NPY_I64, i8, {INT32_MIN, 0, 3, INT32_MAX}},
        {NPY_U64, u8, {0, 1, 2, 3}},
        {NPY_U8, u1, {9, 0, 0, 3}},
        {NPY_I32, i4, {5, 6, 7, 8}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cr_assert_eq(npy_write(p, cases[k].dt, 1, shape, cases[k].data, &e), 0, "%s", e.msg);
        npy_array a;
        cr_assert_eq(npy_read_labels(p, &a, &e), 0, "%s: %s", npy_dtype_name(cases[k].dt), e.msg);
        cr_assert_eq(a.dtype, NPY_I32);
        cr_assert_eq(a.count, 4);
        cr_assert_eq(memcmp(a.data, cases[k].expect, sizeof cases[k].expect), 0, "%s", npy_dtype_name(cases[k].dt));
        npy_free(&a);
    }
}

Test(npy, labels_range_and_float_rejected)
{
    make_dir();
    bz_err e = {0};
    npy_array a;
    const char *p = path_in("y_train.npy");
    int64_t shape[1] = {3};
    const int64_t big[3] = {0, 1LL << 40, 2};
    cr_assert_eq(npy_write(p, NPY_I64, 1, shape, big, &e), 0);
    expect_error(npy_read_labels(p, &a, &e), &e, BZ_EFORMAT, "y_train.npy", "value 1099511627776 at index 1");
    const uint64_t huge[3] = {0, 1, UINT64_MAX};
    cr_assert_eq(npy_write(p, NPY_U64, 1, shape, huge, &e), 0);
    expect_error(npy_read_labels(p, &a, &e), &e, BZ_EFORMAT, "y_train.npy", "18446744073709551615 at index 2");
    const uint32_t u4[3] = {0, 1, 3000000000u};
    cr_assert_eq(npy_write(p, NPY_U32, 1, shape, u4, &e), 0);
    expect_error(npy_read_labels(p, &a, &e), &e, BZ_EFORMAT, "y_train.npy", "value 3000000000 at index 2");
    const float f[3] = {0, 1, 2};
    cr_assert_eq(npy_write(p, NPY_F32, 1, shape, f, &e), 0);
    expect_error(npy_read_labels(p, &a, &e), &e, BZ_EFORMAT, "y_train.npy", "float32");
    cr_assert(strstr(e.msg, "integers") != NULL, "%s", e.msg);
    cr_assert_null(a.data);
}

Test(npy, write_errors)
{
    make_dir();
    bz_err e = {0};
    float x[2] = {0};
    int64_t shape[5] = {1, 1, 1, 1, 2};
    int rc = npy_write(path_in("no/such/dir/w.npy"), NPY_F32, 1, shape + 3, x, &e);
    expect_error(rc, &e, BZ_EIO, "w.npy", "No such file");
    rc = npy_write(path_in("w.npy"), NPY_F32, 5, shape, x, &e);
    expect_error(rc, &e, BZ_EINVAL, "w.npy", "ndim 5");
    int64_t neg[1] = {-1};
    rc = npy_write(path_in("w.npy"), NPY_F32, 1, neg, x, &e);
    expect_error(rc, &e, BZ_EINVAL, "w.npy", "negative");
    int64_t huge[2] = {INT64_MAX / 2, 3};
    rc = npy_write(path_in("w.npy"), NPY_F32, 2, huge, x, &e);
    expect_error(rc, &e, BZ_EINVAL, "w.npy", "overflows");
    cr_assert_neq(access(path_in("w.npy"), F_OK), 0);
}

/* The *_rows readers keep a prefix of rows but still validate the whole file. */
Test(npy, read_prefix_rows)
{
    make_dir();
    bz_err e = {0};
    float x[15];
    for (int i = 0; i < 15; i++) x[i] = (float)i;
    int64_t sx[2] = {5, 3};
    char p[512], q[512]; /* path_in returns a static buffer */
    snprintf(p, sizeof p, "%s", path_in("x_train.npy"));
    snprintf(q, sizeof q, "%s", path_in("y_train.npy"));
    cr_assert_eq(npy_write(p, NPY_F32, 2, sx, x, &e), 0);
    npy_array a;
    cr_assert_eq(npy_read_f32_rows(p, 2, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.shape[0], 2);
    cr_assert_eq(a.shape[1], 3);
    cr_assert_eq(a.count, 6);
    cr_assert_eq(memcmp(a.data, x, 6 * sizeof(float)), 0);
    npy_free(&a);
    const int64_t keep[3] = {0, 5, 99};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(npy_read_f32_rows(p, keep[k], &a, &e), 0, "%s", e.msg);
        cr_assert_eq(a.shape[0], 5);
        cr_assert_eq(a.count, 15);
        npy_free(&a);
    }
    const uint8_t y[5] = {4, 3, 2, 1, 0};
    int64_t sy[1] = {5};
    cr_assert_eq(npy_write(q, NPY_U8, 1, sy, y, &e), 0);
    cr_assert_eq(npy_read_labels_rows(q, 3, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.dtype, NPY_I32);
    cr_assert_eq(a.count, 3);
    cr_assert_eq(((int32_t *)a.data)[2], 2);
    npy_free(&a);
    /* A truncated file is rejected even when the prefix asked for is present. */
    size_t len;
    char *text = tu_read_file(p, &len);
    cr_assert_eq(tu_write_file(p, text, len - 4), 0);
    free(text);
    expect_error(npy_read_f32_rows(p, 1, &a, &e), &e, BZ_EFORMAT, "x_train.npy", "needs 60 bytes, the file has 56");
}
