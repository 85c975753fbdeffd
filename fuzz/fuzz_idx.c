/* fuzz_idx.c: the gzip'd IDX readers of FashionMNIST (ds_read_idx_images/labels, core/dataset.c).
 * Input: one control byte, then the file. Control bit 0 picks images (1) or labels (0); bit 1
 * gzip-compresses the rest first (so the IDX parser sees exactly those bytes behind a valid
 * gzip layer); without it the bytes go in as they are (zlib reads non-gzip data transparently,
 * and mutated gzip headers and streams reach the decoder). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dataset.h"
#include "fuzz_util.h"

/* gzip-compress (deflate with a gzip wrapper: windowBits 15 + 16). */
static unsigned char *gzip_bytes(const uint8_t *data, size_t size, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)size) + 64;
    unsigned char *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t ctl = data[0];
    data++, size--;
    const char *path;
    if (ctl & 2) {
        size_t n = 0;
        unsigned char *gz = gzip_bytes(data, size, &n);
        if (!gz) return 0;
        path = fz_as_file(0, gz, n);
        free(gz);
    } else {
        path = fz_as_file(0, data, size);
    }
    bz_err e;
    uint8_t *buf = NULL;
    int64_t count = -1;
    int rc = (ctl & 1) ? ds_read_idx_images(path, &buf, &count, &e) : ds_read_idx_labels(path, &buf, &count, &e);
    if (rc == 0) {
        if (!buf || count < 0) fz_fail("IDX read succeeded with no data (count %lld)", (long long)count);
        /* Touch every byte: the count must match what was allocated and read. */
        size_t bytes = (size_t)count * ((ctl & 1) ? 784u : 1u);
        unsigned sum = 0;
        for (size_t i = 0; i < bytes; i++) sum += buf[i];
        fz_sink = sum;
    } else if (buf) {
        fz_fail("IDX read failed but left a buffer");
    }
    free(buf);
    return 0;
}
