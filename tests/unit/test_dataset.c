/* test_dataset.c: the data sets of ALGORITHM.md §3 (core/dataset.c): spin-vector statistics and
 * determinism, the geometric bound against an independent computation, FashionMNIST (real files
 * when Debian's dataset-fashion-mnist is installed, synthetic IDX files always), and the npy folder
 * with one error message per violation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset.h"
#include "npy.h"
#include "rng.h"
#include "testutil.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static ds_spec spin_spec(int32_t n_in, int32_t classes, int64_t train, int64_t test, double p, uint64_t seed)
{
    ds_spec s;
    memset(&s, 0, sizeof s);
    s.kind = DS_SPIN;
    s.n_in = n_in;
    s.classes = classes;
    s.train = train;
    s.test = test;
    s.p_flip = p;
    s.seed = seed;
    return s;
}

static void assert_zeroed(const ds_data *d)
{
    ds_data z;
    memset(&z, 0, sizeof z);
    cr_assert_eq(memcmp(d, &z, sizeof z), 0, "ds_data not zeroed after an error");
}

/* ---- spin ---- */

/* Entries of x (rows, n) that differ from the reference of their class. */
static int64_t count_flips(const float *x, const int32_t *y, int64_t rows, int32_t n, const float *xi)
{
    int64_t f = 0;
    for (int64_t m = 0; m < rows; m++)
        for (int32_t i = 0; i < n; i++) {
            float v = x[m * n + i], r = xi[(int64_t)y[m] * n + i];
            cr_assert(v == 1.0f || v == -1.0f);
            f += v != r;
        }
    return f;
}

Test(spin, flip_fraction_within_5_se)
{
    const int32_t N0 = 200, C = 10;
    ds_spec s = spin_spec(N0, C, 2000, 1000, 0.3, 11);
    ds_data d;
    bz_err e = {0};
    cr_assert_eq(ds_load(&s, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(d.n_in, N0);
    cr_assert_eq(d.classes, C);
    cr_assert_eq(d.n_train, 2000);
    cr_assert_eq(d.n_test, 1000);
    float *xi = malloc(sizeof(float) * C * N0);
    ds_spin_references(s.seed, C, N0, xi);
    int64_t plus = 0;
    for (int64_t k = 0; k < C * N0; k++) plus += xi[k] == 1.0f;
    double se_ref = sqrt(0.25 / (C * N0));
    cr_assert(fabs((double)plus / (C * N0) - 0.5) < 5 * se_ref, "references: %lld of %d are +1", (long long)plus,
              C * N0);
    const struct {
        const float *x;
        const int32_t *y;
        int64_t rows;
    } sets[2] = {{d.x_train, d.y_train, d.n_train}, {d.x_test, d.y_test, d.n_test}};
    for (int k = 0; k < 2; k++) {
        double n = (double)sets[k].rows * N0;
        double frac = (double)count_flips(sets[k].x, sets[k].y, sets[k].rows, N0, xi) / n;
        double se = sqrt(0.3 * 0.7 / n);
        cr_assert(fabs(frac - 0.3) < 5 * se, "set %d: flip fraction %.5f, p 0.3, SE %.5f", k, frac, se);
    }
    free(xi);
    ds_free(&d);
    assert_zeroed(&d);
}

Test(spin, flips_at_extremes)
{
    const int32_t N0 = 50, C = 4;
    float *xi = malloc(sizeof(float) * C * N0);
    ds_spin_references(5, C, N0, xi);
    bz_err e = {0};
    ds_data d;
    ds_spec s = spin_spec(N0, C, 100, 0, 0.0, 5);
    cr_assert_eq(ds_load(&s, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(count_flips(d.x_train, d.y_train, 100, N0, xi), 0);
    ds_free(&d);
    s.p_flip = 1.0;
    cr_assert_eq(ds_load(&s, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(count_flips(d.x_train, d.y_train, 100, N0, xi), 100 * N0);
    ds_free(&d);
    free(xi);
}

Test(spin, classes_balanced_and_shuffled)
{
    ds_spec s = spin_spec(20, 10, 2003, 1000, 0.3, 3);
    ds_data d;
    bz_err e = {0};
    cr_assert_eq(ds_load(&s, &d, &e), 0, "%s", e.msg);
    int64_t counts[10];
    ds_class_counts(d.y_train, d.n_train, 10, counts);
    for (int c = 0; c < 10; c++) cr_assert_eq(counts[c], c < 3 ? 201 : 200, "class %d: %lld", c, (long long)counts[c]);
    ds_class_counts(d.y_test, d.n_test, 10, counts);
    for (int c = 0; c < 10; c++) cr_assert_eq(counts[c], 100, "test class %d: %lld", c, (long long)counts[c]);
    /* Shuffled: the unshuffled order m % C would put class 0 at rows 0, 10, 20, ... */
    int64_t in_place = 0;
    for (int64_t m = 0; m < d.n_train; m++) in_place += d.y_train[m] == (int32_t)(m % 10);
    cr_assert_lt(in_place, 400, "labels look unshuffled (%lld in place)", (long long)in_place);
    /* Train and test orders are independent. */
    cr_assert_neq(memcmp(d.y_train, d.y_test, 1000 * sizeof(int32_t)), 0);
    ds_free(&d);
}

Test(spin, deterministic_by_seed)
{
    ds_spec s = spin_spec(64, 5, 300, 100, 0.25, 42);
    ds_data a, b, c;
    bz_err e = {0};
    cr_assert_eq(ds_load(&s, &a, &e), 0);
    cr_assert_eq(ds_load(&s, &b, &e), 0);
    s.seed = 43;
    cr_assert_eq(ds_load(&s, &c, &e), 0);
    size_t xb = 300 * 64 * sizeof(float), tb = 100 * 64 * sizeof(float);
    cr_assert_eq(memcmp(a.x_train, b.x_train, xb), 0);
    cr_assert_eq(memcmp(a.y_train, b.y_train, 300 * sizeof(int32_t)), 0);
    cr_assert_eq(memcmp(a.x_test, b.x_test, tb), 0);
    cr_assert_eq(memcmp(a.y_test, b.y_test, 100 * sizeof(int32_t)), 0);
    cr_assert_eq(a.geometric_bound, b.geometric_bound);
    cr_assert_neq(memcmp(a.x_train, c.x_train, xb), 0);
    cr_assert_neq(memcmp(a.y_train, c.y_train, 300 * sizeof(int32_t)), 0);
    cr_assert_neq(memcmp(a.x_test, c.x_test, tb), 0);
    ds_free(&a);
    ds_free(&b);
    ds_free(&c);
}

/* Independent bound: distance d_c = (N0 - <sign x, xi_c>) / 2; the row counts 1 when some class
 * is strictly nearer than its own, else 1/2 when another class is as near, else 0. */
static double bound_by_dot(const float *x, const int32_t *y, int64_t rows, int32_t n, const float *xi, int32_t C,
                           int64_t *ties)
{
    double total = 0;
    int64_t t = 0;
    for (int64_t m = 0; m < rows; m++) {
        int64_t dist[64];
        for (int32_t c = 0; c < C; c++) {
            int64_t dot = 0;
            for (int32_t i = 0; i < n; i++) dot += (x[m * n + i] < 0 ? -1 : 1) * (int64_t)xi[(int64_t)c * n + i];
            dist[c] = (n - dot) / 2;
        }
        int nearer = 0, as_near = 0;
        for (int32_t c = 0; c < C; c++) {
            if (c == y[m]) continue;
            nearer += dist[c] < dist[y[m]];
            as_near += dist[c] == dist[y[m]];
        }
        total += nearer ? 1.0 : as_near ? 0.5 : 0.0;
        t += !nearer && as_near;
    }
    if (ties) *ties = t;
    return total / (double)rows;
}

Test(spin, geometric_bound_two_ways)
{
    /* N0 small and p_flip high so that ties and misses both occur. */
    const int32_t N0 = 16, C = 6;
    ds_spec s = spin_spec(N0, C, 600, 3000, 0.3, 9);
    ds_data d;
    bz_err e = {0};
    cr_assert_eq(ds_load(&s, &d, &e), 0, "%s", e.msg);
    float *xi = malloc(sizeof(float) * C * N0);
    ds_spin_references(s.seed, C, N0, xi);
    int64_t ties = 0;
    double indep = bound_by_dot(d.x_test, d.y_test, d.n_test, N0, xi, C, &ties);
    cr_assert_eq(d.geometric_bound, indep, "load %.6f, independent %.6f", d.geometric_bound, indep);
    cr_assert_eq(ds_geometric_bound(d.x_test, d.y_test, d.n_test, N0, xi, C), indep);
    cr_assert_eq(ds_geometric_bound(d.x_train, d.y_train, d.n_train, N0, xi, C),
                 bound_by_dot(d.x_train, d.y_train, d.n_train, N0, xi, C, NULL));
    cr_assert(indep > 0.0 && indep < 0.8, "bound %.4f", indep);
    cr_assert_gt(ties, 0, "the test set should contain tied rows");
    free(xi);
    ds_free(&d);
}

Test(spin, geometric_bound_sensible)
{
    ds_data d;
    bz_err e = {0};
    ds_spec s = spin_spec(100, 10, 200, 2000, 0.0, 1);
    cr_assert_eq(ds_load(&s, &d, &e), 0);
    cr_assert_eq(d.geometric_bound, 0.0);
    ds_free(&d);
    /* p_flip 1/2: inputs are independent of the class, own class nearest about 1 time in C. */
    s.p_flip = 0.5;
    cr_assert_eq(ds_load(&s, &d, &e), 0);
    double se = sqrt(0.09 / 2000);
    cr_assert(fabs(d.geometric_bound - 0.9) < 5 * se, "bound %.4f at p_flip 0.5", d.geometric_bound);
    ds_free(&d);
    /* The default data set: N0 100, p_flip 0.3 separates the classes well. */
    s.p_flip = 0.3;
    cr_assert_eq(ds_load(&s, &d, &e), 0);
    cr_assert(d.geometric_bound >= 0.0 && d.geometric_bound < 0.05, "bound %.4f", d.geometric_bound);
    ds_free(&d);
    /* No test set: the bound is on the training set. */
    s.test = 0;
    cr_assert_eq(ds_load(&s, &d, &e), 0);
    cr_assert_eq(d.n_test, 0);
    cr_assert_null(d.x_test);
    cr_assert_null(d.y_test);
    float xi[1000];
    ds_spin_references(s.seed, 10, 100, xi);
    cr_assert_eq(d.geometric_bound, bound_by_dot(d.x_train, d.y_train, d.n_train, 100, xi, 10, NULL));
    ds_free(&d);
}

/* Hand-made rows: unique nearest own (0), tie of own with one other (1/2), other nearer (1);
 * x = 0 counts as +1. */
Test(spin, geometric_bound_by_hand)
{
    const float xi[3 * 4] = {1, 1, 1, 1, -1, -1, 1, 1, -1, -1, -1, -1};
    const float x[4 * 4] = {
        1, 1, 1, 0.0f,     /* class 0: equals ref 0 -> 0 */
        1, -1, 1, 1,       /* class 0: d0 = 1, d1 = 1, d2 = 3: tie -> 1/2 */
        -1, -1, 1, 1,      /* class 2: d1 = 0 < d2 = 2 -> 1 */
        -1, -1, -0.5f, -2, /* class 2: d2 = 0 -> 0 */
    };
    const int32_t y[4] = {0, 0, 2, 2};
    cr_assert_float_eq(ds_geometric_bound(x, y, 4, 4, xi, 3), 1.5 / 4, 1e-15);
    cr_assert_float_eq(ds_geometric_bound(x, y, 1, 4, xi, 3), 0.0, 0.0);
    cr_assert_float_eq(ds_geometric_bound(x + 4, y + 1, 1, 4, xi, 3), 0.5, 0.0);
    cr_assert_float_eq(ds_geometric_bound(x + 8, y + 2, 1, 4, xi, 3), 1.0, 0.0);
    cr_assert_eq(ds_geometric_bound(x, y, 0, 4, xi, 3), -1.0);
}

Test(spin, class_counts)
{
    const int32_t y[7] = {0, 2, 2, 1, 2, 0, 2};
    int64_t c[3];
    ds_class_counts(y, 7, 3, c);
    cr_assert_eq(c[0], 2);
    cr_assert_eq(c[1], 1);
    cr_assert_eq(c[2], 4);
}

Test(spin, bad_spec_rejected_and_zeroed)
{
    struct {
        ds_spec s;
        int code;
        const char *field;
    } cases[] = {
        {spin_spec(0, 10, 100, 10, 0.3, 1), BZ_EINVAL, "dataset.n_in"},
        {spin_spec(BZ_LIMIT_WIDTH + 1, 10, 100, 10, 0.3, 1), BZ_ELIMIT, "dataset.n_in"},
        {spin_spec(10, 1, 100, 10, 0.3, 1), BZ_EINVAL, "dataset.classes"},
        {spin_spec(10, 10, 0, 10, 0.3, 1), BZ_EINVAL, "dataset.train"},
        {spin_spec(10, 10, 100, -1, 0.3, 1), BZ_EINVAL, "dataset.test"},
        {spin_spec(10, 10, BZ_LIMIT_EXAMPLES + 1, 0, 0.3, 1), BZ_ELIMIT, "dataset.train"},
        {spin_spec(10, 10, 100, 10, 1.5, 1), BZ_EINVAL, "dataset.p_flip"},
        {spin_spec(10, 10, 100, 10, NAN, 1), BZ_EINVAL, "dataset.p_flip"},
        {spin_spec(100000, 10, 10000000, 10000000, 0.3, 1), BZ_ELIMIT, "dataset"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ds_data d;
        memset(&d, 0xab, sizeof d);
        bz_err e = {0};
        int rc = ds_load(&cases[k].s, &d, &e);
        cr_assert_eq(rc, cases[k].code, "case %zu: rc %d (%s)", k, rc, e.msg);
        cr_assert_str_eq(e.field, cases[k].field, "case %zu", k);
        assert_zeroed(&d);
    }
}

/* ---- FashionMNIST ---- */

static int fashion_installed(void) { return access(FASHION_DIR "/train-labels-idx1-ubyte.gz", R_OK) == 0; }

static int64_t pixel_sum(const uint8_t *img)
{
    int64_t s = 0;
    for (int k = 0; k < 784; k++) s += img[k];
    return s;
}

/* Facts checked independently with python3's gzip module. */
Test(fashion, real_files_raw_order)
{
    if (!fashion_installed()) cr_skip_test("dataset-fashion-mnist not installed");
    bz_err e = {0};
    uint8_t *lab, *pix;
    int64_t n;
    static const uint8_t train_first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    static const uint8_t test_first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    cr_assert_eq(ds_read_idx_labels(FASHION_DIR "/train-labels-idx1-ubyte.gz", &lab, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 60000);
    cr_assert_eq(memcmp(lab, train_first, 10), 0);
    int64_t counts[10] = {0};
    for (int64_t i = 0; i < n; i++) counts[lab[i]]++;
    for (int c = 0; c < 10; c++) cr_assert_eq(counts[c], 6000);
    free(lab);
    cr_assert_eq(ds_read_idx_labels(FASHION_DIR "/t10k-labels-idx1-ubyte.gz", &lab, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 10000);
    cr_assert_eq(memcmp(lab, test_first, 10), 0);
    cr_assert_eq(lab[9999], 5);
    free(lab);
    cr_assert_eq(ds_read_idx_images(FASHION_DIR "/train-images-idx3-ubyte.gz", &pix, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 60000);
    cr_assert_eq(pixel_sum(pix), 76247);
    cr_assert_eq(pixel_sum(pix + 59999 * 784), 16684);
    free(pix);
    cr_assert_eq(ds_read_idx_images(FASHION_DIR "/t10k-images-idx3-ubyte.gz", &pix, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 10000);
    cr_assert_eq(pixel_sum(pix), 33456);
    cr_assert_eq(pixel_sum(pix + 9999 * 784), 24390);
    free(pix);
}

static ds_spec fashion_spec(const char *dir, int64_t train, int64_t test, int32_t proj, bool bin, uint64_t seed)
{
    ds_spec s;
    memset(&s, 0, sizeof s);
    s.kind = DS_FASHION_MNIST;
    s.train = train;
    s.test = test;
    s.proj_dim = proj;
    s.binarize = bin;
    s.seed = seed;
    snprintf(s.dir, sizeof s.dir, "%s", dir);
    return s;
}

/* Row m of x (784 values pixel/255) equals raw image idx exactly. */
static bool row_is_image(const float *row, const uint8_t *img)
{
    for (int k = 0; k < 784; k++)
        if (row[k] != (float)img[k] / 255.0f) return false;
    return true;
}

Test(fashion, real_load_picks_shuffled_subset)
{
    if (!fashion_installed()) cr_skip_test("dataset-fashion-mnist not installed");
    ds_spec s = fashion_spec(FASHION_DIR, 1000, 300, 0, false, 7);
    ds_data d, d2;
    bz_err e = {0};
    cr_assert_eq(ds_load(&s, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(d.n_in, 784);
    cr_assert_eq(d.classes, 10);
    cr_assert_eq(d.n_train, 1000);
    cr_assert_eq(d.n_test, 300);
    cr_assert_eq(d.geometric_bound, -1.0);
    for (int64_t k = 0; k < 1000 * 784; k++) cr_assert(d.x_train[k] >= 0.0f && d.x_train[k] <= 1.0f);
    int64_t counts[10];
    ds_class_counts(d.y_train, 1000, 10, counts);
    for (int c = 0; c < 10; c++) cr_assert(counts[c] > 50 && counts[c] < 150, "class %d: %lld", c, (long long)counts[c]);
    /* The first rows are real images with their real labels, not simply the first images. */
    uint8_t *pix, *lab;
    int64_t n;
    cr_assert_eq(ds_read_idx_images(FASHION_DIR "/train-images-idx3-ubyte.gz", &pix, &n, &e), 0);
    cr_assert_eq(ds_read_idx_labels(FASHION_DIR "/train-labels-idx1-ubyte.gz", &lab, &n, &e), 0);
    int moved = 0;
    for (int64_t m = 0; m < 5; m++) {
        int64_t found = -1;
        for (int64_t i = 0; i < n && found < 0; i++)
            if (row_is_image(d.x_train + m * 784, pix + i * 784)) found = i;
        cr_assert_geq(found, 0, "row %lld is no training image", (long long)m);
        cr_assert_eq(d.y_train[m], lab[found]);
        moved += found != m;
    }
    cr_assert_gt(moved, 0);
    free(pix);
    free(lab);
    cr_assert_eq(ds_load(&s, &d2, &e), 0);
    cr_assert_eq(memcmp(d.x_train, d2.x_train, 1000 * 784 * sizeof(float)), 0);
    cr_assert_eq(memcmp(d.y_test, d2.y_test, 300 * sizeof(int32_t)), 0);
    ds_free(&d2);
    s.seed = 8;
    cr_assert_eq(ds_load(&s, &d2, &e), 0);
    cr_assert_neq(memcmp(d.y_train, d2.y_train, 1000 * sizeof(int32_t)), 0);
    ds_free(&d2);
    ds_free(&d);
}

Test(fashion, real_too_many_examples)
{
    if (!fashion_installed()) cr_skip_test("dataset-fashion-mnist not installed");
    ds_data d;
    bz_err e = {0};
    ds_spec s = fashion_spec(FASHION_DIR, 60001, 10, 0, false, 1);
    cr_assert_eq(ds_load(&s, &d, &e), BZ_EINVAL);
    cr_assert_str_eq(e.field, "dataset.train");
    cr_assert(strstr(e.msg, "60000") != NULL, "%s", e.msg);
    assert_zeroed(&d);
    s = fashion_spec(FASHION_DIR, 100, 10001, 0, false, 1);
    cr_assert_eq(ds_load(&s, &d, &e), BZ_EINVAL);
    cr_assert_str_eq(e.field, "dataset.test");
    cr_assert(strstr(e.msg, "10000") != NULL, "%s", e.msg);
    assert_zeroed(&d);
}

Test(fashion, real_projection)
{
    if (!fashion_installed()) cr_skip_test("dataset-fashion-mnist not installed");
    const int32_t D = 400;
    bz_err e = {0};
    ds_data raw, px, pb, pb2;
    ds_spec s = fashion_spec(FASHION_DIR, 200, 50, 0, false, 3);
    cr_assert_eq(ds_load(&s, &raw, &e), 0, "%s", e.msg);
    s.proj_dim = D;
    cr_assert_eq(ds_load(&s, &px, &e), 0, "%s", e.msg);
    s.binarize = true;
    cr_assert_eq(ds_load(&s, &pb, &e), 0, "%s", e.msg);
    cr_assert_eq(ds_load(&s, &pb2, &e), 0, "%s", e.msg);
    cr_assert_eq(px.n_in, D);
    cr_assert_eq(pb.n_in, D);
    cr_assert_eq(pb.n_train, 200);
    cr_assert_eq(pb.n_test, 50);
    cr_assert_eq(memcmp(raw.y_train, px.y_train, 200 * sizeof(int32_t)), 0, "projection changed the picks");
    cr_assert_eq(memcmp(pb.x_train, pb2.x_train, (size_t)200 * D * sizeof(float)), 0);
    cr_assert_eq(memcmp(pb.x_test, pb2.x_test, (size_t)50 * D * sizeof(float)), 0);
    for (int64_t k = 0; k < 200 * D; k++) {
        cr_assert(pb.x_train[k] == 1.0f || pb.x_train[k] == -1.0f);
        cr_assert_eq(pb.x_train[k], px.x_train[k] >= 0.0f ? 1.0f : -1.0f);
    }
    /* E_F[x_j^2] = |v|^2 / 784; with D = 400 the mean over j has relative SE sqrt(2/D) = 7%. */
    for (int64_t m = 0; m < 3; m++) {
        double v2 = 0, x2 = 0;
        for (int k = 0; k < 784; k++) v2 += (double)raw.x_train[m * 784 + k] * raw.x_train[m * 784 + k];
        for (int j = 0; j < D; j++) x2 += (double)px.x_train[m * D + j] * px.x_train[m * D + j];
        double ratio = (x2 / D) / (v2 / 784);
        cr_assert(ratio > 0.7 && ratio < 1.3, "row %lld: ratio %.3f", (long long)m, ratio);
    }
    ds_free(&raw);
    ds_free(&px);
    ds_free(&pb);
    ds_free(&pb2);
}

/* Synthetic IDX files (always available). */

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile g = gzopen(path, "wb");
    cr_assert_not_null(g);
    if (len) cr_assert_eq(gzwrite(g, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(g), Z_OK);
}

/* Image i of the synthetic set: a pattern with zeros and every pixel value range. */
static uint8_t synth_pixel(int i, int k) { return (k % 5 == 0) ? 0 : (uint8_t)((i * 37 + k * 11) % 256); }

/* A labels file (magic, n, payload of n) and an images file (magic, n, rows, cols, payload of
 * n_payload images) in dir under the train names. Image i has label (i % 10). */
static void write_synth(const char *dir, uint32_t lmagic, uint32_t n_lab, uint32_t imagic, uint32_t n_img,
                        uint32_t rows, uint32_t cols, uint32_t n_payload, size_t extra)
{
    char path[512];
    unsigned char *b = calloc(16 + (size_t)n_payload * 784 + extra + n_lab, 1);
    put_be32(b, lmagic);
    put_be32(b + 4, n_lab);
    for (uint32_t i = 0; i < n_lab; i++) b[8 + i] = (unsigned char)(i % 10);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    write_gz(path, b, 8 + n_lab);
    put_be32(b, imagic);
    put_be32(b + 4, n_img);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (uint32_t i = 0; i < n_payload; i++)
        for (int k = 0; k < 784; k++) b[16 + i * 784 + k] = synth_pixel((int)i, k);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    write_gz(path, b, 16 + (size_t)n_payload * 784 + extra);
    free(b);
}

static void good_synth(const char *dir)
{
    write_synth(dir, 0x801, 10, 0x803, 10, 28, 28, 10, 0);
}

Test(fashion, synthetic_loads_and_projects_exactly)
{
    char dir[256];
    cr_assert_not_null(tu_mkdtemp(dir, sizeof dir));
    good_synth(dir);
    bz_err e = {0};
    ds_data d, p;
    ds_spec s = fashion_spec(dir, 10, 0, 0, false, 5);
    cr_assert_eq(ds_load(&s, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(d.n_train, 10);
    cr_assert_eq(d.n_test, 0);
    cr_assert_null(d.x_test);
    /* Labels are unique (i % 10 of 10 images), so y tells which image each row is. */
    int seen = 0;
    for (int m = 0; m < 10; m++) {
        int i = d.y_train[m];
        seen |= 1 << i;
        for (int k = 0; k < 784; k++) cr_assert_eq(d.x_train[m * 784 + k], (float)synth_pixel(i, k) / 255.0f);
    }
    cr_assert_eq(seen, 0x3ff);
    /* Projection: x = F v / 28 with F (D, 784) drawn row by row from stream 8 of the seed. */
    const int D = 7;
    s.proj_dim = D;
    cr_assert_eq(ds_load(&s, &p, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(p.y_train, d.y_train, sizeof(int32_t) * 10), 0);
    bz_rng r;
    rng_seed(&r, 5, 8);
    double *F = malloc(sizeof(double) * D * 784);
    for (int k = 0; k < D * 784; k++) F[k] = (float)rng_normal(&r);
    for (int m = 0; m < 10; m++)
        for (int j = 0; j < D; j++) {
            double x = 0;
            for (int k = 0; k < 784; k++) x += F[j * 784 + k] * ((double)synth_pixel(d.y_train[m], k) / 255.0);
            x /= 28.0;
            cr_assert_float_eq(p.x_train[m * D + j], x, 1e-5 * (1 + fabs(x)), "row %d col %d", m, j);
        }
    free(F);
    ds_free(&p);
    ds_free(&d);
}

/* ds_load on dir fails with code, the message naming fname and saying needle. */
static void expect_fashion_error(const char *dir, int code, const char *fname, const char *needle)
{
    ds_data d;
    bz_err e = {0};
    ds_spec s = fashion_spec(dir, 5, 0, 0, false, 1);
    int rc = ds_load(&s, &d, &e);
    cr_assert_eq(rc, code, "rc %d: %s", rc, e.msg);
    cr_assert(strstr(e.msg, fname) != NULL, "no %s in: %s", fname, e.msg);
    cr_assert(strstr(e.field, fname) != NULL, "no %s in field: %s", fname, e.field);
    cr_assert(strstr(e.msg, needle) != NULL, "no \"%s\" in: %s", needle, e.msg);
    assert_zeroed(&d);
}

Test(fashion, synthetic_corrupt_files_named)
{
    char dir[256];
    cr_assert_not_null(tu_mkdtemp(dir, sizeof dir));
    const char *L = "train-labels-idx1-ubyte.gz", *I = "train-images-idx3-ubyte.gz";
    write_synth(dir, 0x803, 10, 0x803, 10, 28, 28, 10, 0);
    expect_fashion_error(dir, BZ_EFORMAT, L, "bad magic 0x00000803, expected 0x00000801 (a labels file)");
    write_synth(dir, 0x801, 10, 0x801, 10, 28, 28, 10, 0);
    expect_fashion_error(dir, BZ_EFORMAT, I, "bad magic 0x00000801, expected 0x00000803 (an images file)");
    write_synth(dir, 0x801, 10, 0x803, 10, 27, 28, 10, 0);
    expect_fashion_error(dir, BZ_EFORMAT, I, "images are 27x28, expected 28x28");
    write_synth(dir, 0x801, 10, 0x803, 10, 28, 28, 9, 100);
    expect_fashion_error(dir, BZ_EFORMAT, I, "file ends early");
    write_synth(dir, 0x801, 10, 0x803, 10, 28, 28, 10, 3);
    expect_fashion_error(dir, BZ_EFORMAT, I, "trailing data");
    write_synth(dir, 0x801, 10, 0x803, 11, 28, 28, 11, 0);
    expect_fashion_error(dir, BZ_EFORMAT, L, "has 10 labels but train-images-idx3-ubyte.gz has 11 images");
    write_synth(dir, 0x801, 4, 0x803, 4, 28, 28, 4, 0);
    expect_fashion_error(dir, BZ_EINVAL, "dataset.train", "has only 4 examples");
    /* A header cut short. */
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, L);
    write_gz(path, "\x00\x00\x08\x01\x00", 5);
    expect_fashion_error(dir, BZ_EFORMAT, L, "inside the 8-byte IDX header");
    /* A label outside 0..9. */
    unsigned char lab[8 + 10] = {0, 0, 8, 1, 0, 0, 0, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 12};
    write_gz(path, lab, sizeof lab);
    expect_fashion_error(dir, BZ_EFORMAT, L, "label 12 at index 9");
    /* A missing file. */
    cr_assert_eq(unlink(path), 0);
    expect_fashion_error(dir, BZ_EIO, L, "No such file");
}

/* A compressed stream cut in the middle, and one with flipped bytes. */
Test(fashion, truncated_and_damaged_gzip)
{
    char dir[256], path[512];
    cr_assert_not_null(tu_mkdtemp(dir, sizeof dir));
    good_synth(dir);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    size_t len;
    char *gz = tu_read_file(path, &len);
    cr_assert_not_null(gz);
    cr_assert_gt(len, 200);
    cr_assert_eq(tu_write_file(path, gz, len / 2), 0);
    expect_fashion_error(dir, BZ_EFORMAT, "train-images-idx3-ubyte.gz", "file ends early");
    for (size_t k = 40; k < 80; k++) gz[k] ^= 0x5a;
    cr_assert_eq(tu_write_file(path, gz, len), 0);
    expect_fashion_error(dir, BZ_EFORMAT, "train-images-idx3-ubyte.gz", "");
    free(gz);
}

Test(fashion, real_labels_truncated_copy)
{
    if (!fashion_installed()) cr_skip_test("dataset-fashion-mnist not installed");
    char dir[256], path[512];
    cr_assert_not_null(tu_mkdtemp(dir, sizeof dir));
    size_t len;
    char *gz = tu_read_file(FASHION_DIR "/t10k-labels-idx1-ubyte.gz", &len);
    cr_assert_not_null(gz);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    cr_assert_eq(tu_write_file(path, gz, len / 2), 0);
    uint8_t *lab;
    int64_t n;
    bz_err e = {0};
    int rc = ds_read_idx_labels(path, &lab, &n, &e);
    cr_assert_eq(rc, BZ_EFORMAT, "%s", e.msg);
    cr_assert(strstr(e.msg, "t10k-labels-idx1-ubyte.gz: file ends early") != NULL, "%s", e.msg);
    cr_assert(strstr(e.msg, "10000 labels") != NULL, "%s", e.msg);
    cr_assert_null(lab);
    free(gz);
}

/* ---- npy folder ---- */

typedef struct npy_dir {
    char path[256];
} npy_dir;

static void put(const npy_dir *d, const char *name, npy_dtype dt, int32_t ndim, const int64_t *shape,
                const void *data)
{
    char p[512];
    bz_err e = {0};
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    cr_assert_eq(npy_write(p, dt, ndim, shape, data, &e), 0, "%s", e.msg);
}

/* x_train (50, 6), y_train (50) int64 in 0..2; x_test (20, 6), y_test (20) uint8 in 0..2. */
static void good_npy(npy_dir *d)
{
    cr_assert_not_null(tu_mkdtemp(d->path, sizeof d->path));
    float x[50 * 6];
    int64_t y[50];
    uint8_t yt[20];
    for (int k = 0; k < 50 * 6; k++) x[k] = (float)k * 0.01f - 1.0f;
    for (int m = 0; m < 50; m++) y[m] = m % 3;
    for (int m = 0; m < 20; m++) yt[m] = (uint8_t)((m + 1) % 3);
    int64_t sx[2] = {50, 6}, sy[1] = {50}, st[2] = {20, 6}, syt[1] = {20};
    put(d, "x_train.npy", NPY_F32, 2, sx, x);
    put(d, "y_train.npy", NPY_I64, 1, sy, y);
    put(d, "x_test.npy", NPY_F32, 2, st, x + 60);
    put(d, "y_test.npy", NPY_U8, 1, syt, yt);
}

static ds_spec npy_spec(const npy_dir *d, int64_t train, int64_t test, int32_t classes)
{
    ds_spec s;
    memset(&s, 0, sizeof s);
    s.kind = DS_NPY;
    s.train = train;
    s.test = test;
    s.classes = classes;
    snprintf(s.dir, sizeof s.dir, "%s", d->path);
    return s;
}

Test(npyset, good_folder_loads)
{
    npy_dir d;
    good_npy(&d);
    ds_data a;
    bz_err e = {0};
    ds_spec s = npy_spec(&d, 0, 0, 0);
    cr_assert_eq(ds_load(&s, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.n_in, 6);
    cr_assert_eq(a.classes, 3);
    cr_assert_eq(a.n_train, 50);
    cr_assert_eq(a.n_test, 20);
    cr_assert_eq(a.geometric_bound, -1.0);
    cr_assert_float_eq(a.x_train[49 * 6 + 5], 299 * 0.01f - 1.0f, 1e-6);
    cr_assert_float_eq(a.x_test[0], 60 * 0.01f - 1.0f, 1e-6);
    cr_assert_eq(a.y_train[49], 1);
    cr_assert_eq(a.y_test[0], 1);
    cr_assert_eq(a.y_test[19], 2);
    ds_free(&a);
    /* The first rows only, and a given class count. */
    s = npy_spec(&d, 30, 10, 5);
    cr_assert_eq(ds_load(&s, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.n_train, 30);
    cr_assert_eq(a.n_test, 10);
    cr_assert_eq(a.classes, 5);
    cr_assert_float_eq(a.x_train[29 * 6 + 5], 179 * 0.01f - 1.0f, 1e-6);
    cr_assert_eq(a.y_test[9], 1);
    ds_free(&a);
}

Test(npyset, no_test_files)
{
    npy_dir d;
    good_npy(&d);
    char p[512];
    snprintf(p, sizeof p, "%s/x_test.npy", d.path);
    unlink(p);
    snprintf(p, sizeof p, "%s/y_test.npy", d.path);
    unlink(p);
    ds_data a;
    bz_err e = {0};
    ds_spec s = npy_spec(&d, 0, 0, 0);
    cr_assert_eq(ds_load(&s, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.n_test, 0);
    cr_assert_null(a.x_test);
    cr_assert_eq(a.classes, 3);
    ds_free(&a);
    s.test = 5;
    cr_assert_eq(ds_load(&s, &a, &e), BZ_EINVAL);
    cr_assert_str_eq(e.field, "dataset.test");
    assert_zeroed(&a);
}

/* Load s; expect code, the message naming fname (or the field) and saying needle; return a copy
 * of the message for the "all distinct" check. */
static char *expect_npy_error(const ds_spec *s, int code, const char *fname, const char *needle)
{
    ds_data a;
    bz_err e = {0};
    int rc = ds_load(s, &a, &e);
    cr_assert_eq(rc, code, "rc %d: %s", rc, e.msg);
    cr_assert(strstr(e.msg, fname) != NULL, "no %s in: %s", fname, e.msg);
    cr_assert(strstr(e.field, fname) != NULL, "no %s in field: %s", fname, e.field);
    cr_assert(strstr(e.msg, needle) != NULL, "no \"%s\" in: %s", needle, e.msg);
    assert_zeroed(&a);
    return strdup(e.msg);
}

Test(npyset, each_violation_has_its_own_message)
{
    char *msgs[16];
    int nm = 0;
    npy_dir d;
    ds_spec s;
    float x[60 * 6] = {0};
    int64_t y[60] = {0};

    good_npy(&d); /* float64 inputs */
    double xd[50 * 6] = {0};
    put(&d, "x_train.npy", NPY_F64, 2, (int64_t[]){50, 6}, xd);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "x_train.npy", "float64");

    good_npy(&d); /* 3-D inputs */
    put(&d, "x_train.npy", NPY_F32, 3, (int64_t[]){50, 3, 2}, x);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "x_train.npy", "2-D");

    good_npy(&d); /* 2-D labels */
    put(&d, "y_train.npy", NPY_I64, 2, (int64_t[]){50, 1}, y);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "y_train.npy", "1-D");

    good_npy(&d); /* row counts disagree */
    put(&d, "y_train.npy", NPY_I64, 1, (int64_t[]){49}, y);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "y_train.npy", "49 labels but x_train.npy has 50 rows");

    good_npy(&d); /* label out of range for the given classes */
    int64_t yb[50];
    for (int m = 0; m < 50; m++) yb[m] = m % 3;
    yb[12] = 7;
    put(&d, "y_train.npy", NPY_I64, 1, (int64_t[]){50}, yb);
    s = npy_spec(&d, 0, 0, 3);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "y_train.npy", "label 7 at row 12 is outside 0..2");

    yb[12] = -1; /* negative label, classes inferred */
    put(&d, "y_train.npy", NPY_I64, 1, (int64_t[]){50}, yb);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "y_train.npy", "label -1 at row 12 is negative");

    good_npy(&d); /* test label out of range of the inferred classes is impossible; of given ones not */
    uint8_t ytb[20] = {0};
    ytb[19] = 3;
    put(&d, "y_test.npy", NPY_U8, 1, (int64_t[]){20}, ytb);
    s = npy_spec(&d, 0, 0, 3);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "y_test.npy", "label 3 at row 19");

    good_npy(&d); /* x_test without y_test */
    char p[512];
    snprintf(p, sizeof p, "%s/y_test.npy", d.path);
    unlink(p);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "y_test.npy", "missing but x_test.npy is present");

    good_npy(&d); /* y_test without x_test */
    snprintf(p, sizeof p, "%s/x_test.npy", d.path);
    unlink(p);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "x_test.npy", "missing but y_test.npy is present");

    good_npy(&d); /* column mismatch */
    put(&d, "x_test.npy", NPY_F32, 2, (int64_t[]){20, 5}, x);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "x_test.npy", "5 columns but x_train.npy has 6");

    good_npy(&d); /* more rows asked than there are */
    s = npy_spec(&d, 51, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EINVAL, "dataset.train", "dataset.train is 51 but x_train.npy has only 50");
    s = npy_spec(&d, 10, 21, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EINVAL, "dataset.test", "dataset.test is 21 but x_test.npy has only 20");

    good_npy(&d); /* float labels */
    float yf[50] = {0};
    put(&d, "y_train.npy", NPY_F32, 1, (int64_t[]){50}, yf);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "y_train.npy", "labels must be integers");

    good_npy(&d); /* a NaN input */
    x[7 * 6 + 2] = NAN;
    put(&d, "x_train.npy", NPY_F32, 2, (int64_t[]){50, 6}, x);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "x_train.npy", "row 7, column 2 is NaN");

    good_npy(&d); /* missing x_train */
    snprintf(p, sizeof p, "%s/x_train.npy", d.path);
    unlink(p);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EIO, "x_train.npy", "No such file");

    good_npy(&d); /* no rows */
    put(&d, "x_train.npy", NPY_F32, 2, (int64_t[]){0, BZ_LIMIT_WIDTH + 1}, x);
    s = npy_spec(&d, 0, 0, 0);
    msgs[nm++] = expect_npy_error(&s, BZ_EFORMAT, "x_train.npy", "at least one row");

    for (int i = 0; i < nm; i++)
        for (int j = i + 1; j < nm; j++) cr_assert_str_neq(msgs[i], msgs[j]);
    for (int i = 0; i < nm; i++) free(msgs[i]);
}

Test(npyset, width_limit_before_reading)
{
    npy_dir d;
    good_npy(&d);
    /* A header announcing more columns than the limit; the data is never read (nor present). */
    char p[512];
    snprintf(p, sizeof p, "%s/x_train.npy", d.path);
    char hdr[128] = "\x93NUMPY\x01\x00";
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 100001), }\n";
    size_t hl = strlen(dict);
    hdr[8] = (char)hl;
    hdr[9] = 0;
    memcpy(hdr + 10, dict, hl);
    size_t total = 10 + hl + 4 * 100001;
    char *buf = calloc(total, 1);
    memcpy(buf, hdr, 10 + hl);
    cr_assert_eq(tu_write_file(p, buf, total), 0);
    free(buf);
    ds_spec s = npy_spec(&d, 0, 0, 0);
    char *m = expect_npy_error(&s, BZ_ELIMIT, "x_train.npy", "100001 columns, more than the limit of 100000");
    free(m);
}
