/* samples.c: the weight-sample file (see samples.h). Integers are written byte by byte as
 * little-endian; float32 weights are stored as their IEEE bytes (boltzd runs on little-endian
 * machines, which samples_open checks). */
#include "samples.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC "BZSAMPL\n"
#define HEADER_BYTES 24

struct samples_file {
    FILE *f;
    char path[1024];
    int64_t n;
};

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int64_t record_bytes(int64_t n) { return 16 + 4 * n; }

static int io_fail(bz_err *e, const char *path, const char *what)
{
    return bz_fail(e, BZ_EIO, path, "%s: %s: %s", path, what, strerror(errno));
}

/* Validate the header of an open file; *n gets the weights per sample. */
static int read_header(FILE *f, const char *path, int64_t *n, bz_err *e)
{
    unsigned char h[HEADER_BYTES];
    if (fread(h, 1, HEADER_BYTES, f) != HEADER_BYTES)
        return bz_fail(e, BZ_EFORMAT, path, "%s: truncated header (a samples file starts with %d bytes)", path,
                       HEADER_BYTES);
    if (memcmp(h, MAGIC, 8))
        return bz_fail(e, BZ_EFORMAT, path, "%s: not a boltzd samples file (bad magic at byte 0)", path);
    uint32_t version = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
    if (version != 1)
        return bz_fail(e, BZ_EFORMAT, path, "%s: samples format version %u, this boltzd reads version 1", path,
                       version);
    uint64_t nn = get_u64(h + 16);
    if (nn == 0 || nn > (1ull << 40))
        return bz_fail(e, BZ_EFORMAT, path, "%s: implausible weight count %llu at byte 16", path,
                       (unsigned long long)nn);
    *n = (int64_t)nn;
    return 0;
}

static int write_header(FILE *f, const char *path, int64_t n, bz_err *e)
{
    unsigned char h[HEADER_BYTES] = {0};
    memcpy(h, MAGIC, 8);
    h[8] = 1;
    put_u64(h + 16, (uint64_t)n);
    if (fwrite(h, 1, HEADER_BYTES, f) != HEADER_BYTES) return io_fail(e, path, "cannot write header");
    return 0;
}

/* Keep the records with step <= keep_through (and drop a partial tail). */
static int truncate_after(FILE *f, const char *path, int64_t n, int64_t keep_through, bz_err *e)
{
    const int64_t rec = record_bytes(n);
    int64_t kept = 0;
    unsigned char head[8];
    for (;;) {
        if (fseeko(f, HEADER_BYTES + kept * rec, SEEK_SET)) return io_fail(e, path, "cannot seek");
        if (fread(head, 1, 8, f) != 8) break;
        if ((int64_t)get_u64(head) > keep_through) break;
        if (fseeko(f, HEADER_BYTES + (kept + 1) * rec - 1, SEEK_SET)) return io_fail(e, path, "cannot seek");
        if (fgetc(f) == EOF) break; /* partial record */
        kept++;
    }
    fflush(f);
    if (ftruncate(fileno(f), HEADER_BYTES + kept * rec)) return io_fail(e, path, "cannot truncate");
    if (fseeko(f, 0, SEEK_END)) return io_fail(e, path, "cannot seek");
    return 0;
}

int samples_open(samples_file **out, const char *path, int64_t n, int64_t keep_through, bz_err *e)
{
    *out = NULL;
    const uint32_t probe = 1;
    if (*(const unsigned char *)&probe != 1)
        return bz_fail(e, BZ_ESTATE, path, "samples files need a little-endian machine");
    samples_file *s = calloc(1, sizeof *s);
    if (!s) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory");
    snprintf(s->path, sizeof s->path, "%s", path);
    s->n = n;
    int rc = 0;
    s->f = keep_through >= 0 ? fopen(path, "r+b") : NULL;
    if (s->f) {
        int64_t n_file;
        rc = read_header(s->f, path, &n_file, e);
        if (!rc && n_file != n)
            rc = bz_fail(e, BZ_EFORMAT, path, "%s holds samples of %lld weights, this chain has %lld", path,
                         (long long)n_file, (long long)n);
        if (!rc) rc = truncate_after(s->f, path, n, keep_through, e);
    } else {
        s->f = fopen(path, "w+b");
        rc = s->f ? write_header(s->f, path, n, e) : io_fail(e, path, "cannot create");
    }
    if (rc) {
        samples_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int samples_append(samples_file *s, int64_t step, double t_wall, const float *w, bz_err *e)
{
    unsigned char head[16];
    uint64_t tbits;
    memcpy(&tbits, &t_wall, 8);
    put_u64(head, (uint64_t)step);
    put_u64(head + 8, tbits);
    if (fwrite(head, 1, 16, s->f) != 16 || fwrite(w, sizeof(float), (size_t)s->n, s->f) != (size_t)s->n ||
        fflush(s->f))
        return io_fail(e, s->path, "cannot append a sample");
    return 0;
}

int samples_sync(samples_file *s, bz_err *e)
{
    if (fflush(s->f) || fsync(fileno(s->f))) return io_fail(e, s->path, "cannot sync");
    return 0;
}

void samples_close(samples_file *s)
{
    if (!s) return;
    if (s->f) fclose(s->f);
    free(s);
}

void samples_data_free(samples_data *d)
{
    free(d->steps);
    free(d->times);
    free(d->w);
    memset(d, 0, sizeof *d);
}

int samples_read(const char *path, samples_data *out, bz_err *e)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return io_fail(e, path, "cannot open");
    int64_t n;
    int rc = read_header(f, path, &n, e);
    if (rc) {
        fclose(f);
        return rc;
    }
    fseeko(f, 0, SEEK_END);
    const int64_t size = ftello(f), rec = record_bytes(n);
    const int64_t K = (size - HEADER_BYTES) / rec;
    out->K = K;
    out->n = n;
    out->steps = malloc(sizeof(int64_t) * (size_t)(K ? K : 1));
    out->times = malloc(sizeof(double) * (size_t)(K ? K : 1));
    out->w = malloc(sizeof(float) * (size_t)(K ? K : 1) * (size_t)n);
    if (!out->steps || !out->times || !out->w) {
        fclose(f);
        samples_data_free(out);
        return bz_fail(e, BZ_ENOMEM, path, "%s: out of memory for %lld samples of %lld weights", path, (long long)K,
                       (long long)n);
    }
    fseeko(f, HEADER_BYTES, SEEK_SET);
    for (int64_t k = 0; k < K; k++) {
        unsigned char head[16];
        if (fread(head, 1, 16, f) != 16 || fread(out->w + k * n, sizeof(float), (size_t)n, f) != (size_t)n) {
            fclose(f);
            samples_data_free(out);
            return bz_fail(e, BZ_EIO, path, "%s: read error in record %lld", path, (long long)k);
        }
        uint64_t tbits = get_u64(head + 8);
        out->steps[k] = (int64_t)get_u64(head);
        memcpy(&out->times[k], &tbits, 8);
    }
    fclose(f);
    return 0;
}
