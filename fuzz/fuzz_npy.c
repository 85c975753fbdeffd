/* fuzz_npy.c: the .npy reader (core/npy.c: npy_read and the typed, row-limited and header-only
 * variants), which reads user data sets (dataset kind npy) and init weights. For every file that
 * reads, writing it back with npy_write and reading that again must give the same array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "npy.h"

static void same(const npy_array *a, const npy_array *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim || a->count != b->count)
        fz_fail("npy round trip: dtype/ndim/count %d/%d/%lld became %d/%d/%lld", a->dtype, a->ndim,
                (long long)a->count, b->dtype, b->ndim, (long long)b->count);
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) fz_fail("npy round trip: shape[%d] %lld became %lld", i, (long long)a->shape[i], (long long)b->shape[i]);
    size_t bytes = (size_t)a->count * (size_t)npy_dtype_size(a->dtype);
    if (bytes && memcmp(a->data, b->data, bytes)) fz_fail("npy round trip: data differ");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_as_file(0, data, size);
    bz_err e;
    npy_array a;
    memset(&a, 0, sizeof a);
    if (npy_read(path, &a, &e) == 0) {
        if (a.ndim < 0 || a.ndim > NPY_MAX_DIMS) fz_fail("npy_read: ndim %d", a.ndim);
        char out[1024];
        snprintf(out, sizeof out, "%s/rt.npy", fz_scratch_dir());
        if (npy_write(out, a.dtype, a.ndim, a.shape, a.data, &e) == 0) {
            npy_array b;
            memset(&b, 0, sizeof b);
            if (npy_read(out, &b, &e)) fz_fail("npy round trip: re-read failed: %s", e.msg);
            same(&a, &b);
            npy_free(&b);
        }
        npy_free(&a);
    }
    npy_array h;
    int64_t off = 0;
    memset(&h, 0, sizeof h);
    if (npy_read_header(path, &h, &off, &e) == 0 && (off < 10 || (size_t)off > size))
        fz_fail("npy_read_header: data offset %lld outside a %zu-byte file", (long long)off, size);
    npy_array f;
    memset(&f, 0, sizeof f);
    if (npy_read_f32_rows(path, 3, &f, &e) == 0) npy_free(&f);
    memset(&f, 0, sizeof f);
    if (npy_read_labels(path, &f, &e) == 0) npy_free(&f);
    memset(&f, 0, sizeof f);
    if (npy_read_labels_rows(path, 2, &f, &e) == 0) npy_free(&f);
    return 0;
}
