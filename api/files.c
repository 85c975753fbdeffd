/* files.c: a job's files over HTTP: the checkpoint list and downloads (the .bzc file as it is,
 * and its "w" section as NumPy .npy), the weight samples (an index and sample k as .npy).
 *
 * Downloads carry Content-Length and Content-Disposition with a filename. The .npy answers are
 * a 1.0 header built here (dtype '<f4', shape (n,)) followed by the float32 weights, served by
 * a content reader straight from the checkpoint in memory or from the samples file (pread at
 * record k; samples.h gives the layout), so nothing is copied whole.
 *
 * A batched sweep's checkpoints are on its parent, one file holding every chain (sections "c0/w",
 * "c1/w", ...): weights.npy takes ?chain=K there (0 by default). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "routes.h"

#define SAMPLES_MAGIC "BZSAMPL\n"
#define SAMPLES_HEADER 24
#define SAMPLES_INDEX_MAX 100000
#define NPY_HEADER_MAX 128

/* ---------------------------------------------------------------- .npy header */

/* A NumPy 1.0 header for a float32 vector of n elements; returns its length (a multiple of 64). */
static size_t npy_header_f32(int64_t n, char *out)
{
    char dict[96];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld,), }", (long long)n);
    size_t total = 10 + (size_t)dl + 1;
    total = (total + 63) / 64 * 64;
    size_t hl = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)(hl & 0xff);
    out[9] = (char)(hl >> 8);
    memcpy(out + 10, dict, (size_t)dl);
    memset(out + 10 + dl, ' ', hl - (size_t)dl - 1);
    out[total - 1] = '\n';
    return total;
}

/* A .npy body: the header, then bytes from memory (mem) or from fd at offset. */
typedef struct npy_body {
    char head[NPY_HEADER_MAX];
    size_t head_len;
    uint64_t data_len;
    const char *mem;
    ckpt_reader *ckpt;       /* owns mem when set */
    int fd;                  /* -1 when mem */
    off_t offset;
} npy_body;

static ssize_t npy_read_cb(void *cls, uint64_t pos, char *out, size_t max)
{
    npy_body *b = cls;
    if (pos < b->head_len) {
        size_t n = b->head_len - (size_t)pos < max ? b->head_len - (size_t)pos : max;
        memcpy(out, b->head + pos, n);
        return (ssize_t)n;
    }
    uint64_t at = pos - b->head_len;
    if (at >= b->data_len) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = b->data_len - at < max ? (size_t)(b->data_len - at) : max;
    if (b->mem) {
        memcpy(out, b->mem + at, n);
        return (ssize_t)n;
    }
    ssize_t got = pread(b->fd, out, n, b->offset + (off_t)at);
    return got > 0 ? got : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void npy_free_cb(void *cls)
{
    npy_body *b = cls;
    if (b->ckpt) ckpt_read_close(b->ckpt);
    if (b->fd >= 0) close(b->fd);
    free(b);
}

/* Queue a .npy body (taken over: freed whatever happens) with the step it holds. */
static enum MHD_Result reply_npy(api_req *r, npy_body *b, const char *filename, int64_t step)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(b->head_len + b->data_len, 64 * 1024, npy_read_cb, b, npy_free_cb);
    if (!resp) {
        npy_free_cb(b);
        return MHD_NO;
    }
    char cd[160];
    snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", filename);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, cd);
    char st[32];
    snprintf(st, sizeof st, "%lld", (long long)step);
    MHD_add_response_header(resp, "X-Boltz-Step", st);
    return api_queue(r->conn, 200, resp, "application/octet-stream");
}

/* ---------------------------------------------------------------- checkpoints */

enum MHD_Result api_ckpt_list(api_req *r)
{
    job_row j;
    enum MHD_Result res;
    if (!api_load_job(r, &j, &res)) return res;
    job_row_free(&j);
    ckpt_row *rows = NULL;
    int64_t n = 0;
    bz_err e = {0};
    if (store_ckpt_list(r->d->st, r->arg[0], &rows, &n, &e)) return api_error_bz(r->conn, &e);
    json_t *arr = json_array();
    for (int64_t i = 0; i < n; i++) {
        char hex[24];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rows[i].checksum);
        json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:s, s:o}", "seq", (json_int_t)rows[i].seq, "step",
                                             (json_int_t)rows[i].step, "size", (json_int_t)rows[i].size, "checksum",
                                             hex, "created", api_time(rows[i].created_ms)));
    }
    free(rows);
    return api_json(r->conn, 200, json_pack("{s:I, s:o}", "job", (json_int_t)r->arg[0], "checkpoints", arr));
}

/* The checkpoint row of /jobs/{id}/checkpoints/{seq}; on failure the reply is queued. */
static bool load_ckpt(api_req *r, ckpt_row *c, enum MHD_Result *res)
{
    job_row j;
    if (!api_load_job(r, &j, res)) return false;
    job_row_free(&j);
    bz_err e = {0};
    if (store_ckpt_get(r->d->st, r->arg[0], r->arg[1], c, &e) == 0) return true;
    *res = e.code == BZ_EINVAL || e.code == BZ_EIO
               ? api_error(r->conn, 404, "not_found", NULL, "job %lld has no checkpoint %lld", (long long)r->arg[0],
                           (long long)r->arg[1])
               : api_error_bz(r->conn, &e);
    return false;
}

enum MHD_Result api_ckpt_download(api_req *r)
{
    ckpt_row c;
    enum MHD_Result res;
    if (!load_ckpt(r, &c, &res)) return res;
    int fd = open(c.path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        if (fd >= 0) close(fd);
        return api_error(r->conn, 404, "not_found", NULL, "checkpoint %lld of job %lld is gone from disk",
                         (long long)r->arg[1], (long long)r->arg[0]);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)sb.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    char cd[128];
    snprintf(cd, sizeof cd, "attachment; filename=\"job-%lld-ckpt-%lld.bzc\"", (long long)r->arg[0],
             (long long)r->arg[1]);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, cd);
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)c.step);
    MHD_add_response_header(resp, "X-Boltz-Step", step);
    return api_queue(r->conn, 200, resp, "application/octet-stream");
}

enum MHD_Result api_ckpt_weights(api_req *r)
{
    ckpt_row c;
    enum MHD_Result res;
    if (!load_ckpt(r, &c, &res)) return res;
    ckpt_reader *rd = NULL;
    ckpt_header h;
    bz_err e = {0};
    if (ckpt_read_open(&rd, c.path, &h, &e)) {
        if (e.code != BZ_EIO) return api_error(r->conn, 500, "internal", NULL, "%s", e.msg);
        return api_error(r->conn, 404, "not_found", NULL, "checkpoint %lld of job %lld is gone from disk",
                         (long long)r->arg[1], (long long)r->arg[0]);
    }
    int64_t chain = 0;
    if (!api_query_int(r, "chain", 0, 0, 999, &chain)) {
        ckpt_read_close(rd);
        return api_error(r->conn, 400, "invalid_parameter", "chain", "%s", r->why);
    }
    char prefix[8] = "";
    if (h.chain == -1) snprintf(prefix, sizeof prefix, "c%d/", (int)chain); /* a batched group's file */
    else if (chain != 0) {
        ckpt_read_close(rd);
        return api_error(r->conn, 400, "invalid_parameter", "chain",
                         "checkpoint %lld of job %lld holds one chain: chain must be 0 (got %lld)",
                         (long long)r->arg[1], (long long)r->arg[0], (long long)chain);
    }
    uint64_t bytes = 0;
    const void *w = ckpt_reader_prefix(rd, prefix, &e) == 0 ? ckpt_find(rd, "w", &bytes) : NULL;
    if (!w && h.chain == -1) {
        ckpt_read_close(rd);
        return api_error(r->conn, 404, "not_found", "chain", "checkpoint %lld of job %lld holds no chain %lld",
                         (long long)r->arg[1], (long long)r->arg[0], (long long)chain);
    }
    if (!w || bytes % 4) {
        ckpt_read_close(rd);
        return api_error(r->conn, 500, "internal", NULL, "checkpoint %lld of job %lld has no weights section",
                         (long long)r->arg[1], (long long)r->arg[0]);
    }
    npy_body *b = calloc(1, sizeof *b);
    if (!b) {
        ckpt_read_close(rd);
        return api_error(r->conn, 500, "internal", NULL, "out of memory");
    }
    b->head_len = npy_header_f32((int64_t)(bytes / 4), b->head);
    b->data_len = bytes;
    b->mem = w;
    b->ckpt = rd;
    b->fd = -1;
    char name[96];
    if (h.chain == -1)
        snprintf(name, sizeof name, "job-%lld-ckpt-%lld-chain-%lld-weights.npy", (long long)r->arg[0],
                 (long long)r->arg[1], (long long)chain);
    else snprintf(name, sizeof name, "job-%lld-ckpt-%lld-weights.npy", (long long)r->arg[0], (long long)r->arg[1]);
    return reply_npy(r, b, name, c.step);
}

/* ---------------------------------------------------------------- samples */

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

typedef struct samples_fd {
    int fd;
    int64_t n, K;     /* weights per sample, complete records */
} samples_fd;

/* Open a job's samples file and count its complete records; on failure the reply is queued. */
static bool open_samples(api_req *r, samples_fd *sf, enum MHD_Result *res)
{
    job_row j;
    if (!api_load_job(r, &j, res)) return false;
    job_row_free(&j);
    samples_row row;
    bz_err e = {0};
    sf->fd = -1;
    if (store_samples_get(r->d->st, r->arg[0], &row, &e) || (sf->fd = open(row.path, O_RDONLY | O_CLOEXEC)) < 0) {
        *res = api_error(r->conn, 404, "not_found", NULL, "job %lld has no weight samples (yet)", (long long)r->arg[0]);
        return false;
    }
    unsigned char h[SAMPLES_HEADER];
    struct stat sb;
    if (pread(sf->fd, h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h, SAMPLES_MAGIC, 8) || h[8] != 1 ||
        fstat(sf->fd, &sb) || (sf->n = (int64_t)get_u64(h + 16)) <= 0 || sf->n > (1ll << 40)) {
        close(sf->fd);
        *res = api_error(r->conn, 500, "internal", NULL, "the samples file of job %lld is malformed",
                         (long long)r->arg[0]);
        return false;
    }
    sf->K = ((int64_t)sb.st_size - SAMPLES_HEADER) / (16 + 4 * sf->n);
    return true;
}

/* Step and t_wall of record k. */
static bool sample_meta(const samples_fd *sf, int64_t k, int64_t *step, double *t_wall)
{
    unsigned char m[16];
    if (pread(sf->fd, m, 16, SAMPLES_HEADER + k * (16 + 4 * sf->n)) != 16) return false;
    *step = (int64_t)get_u64(m);
    uint64_t bits = get_u64(m + 8);
    memcpy(t_wall, &bits, sizeof *t_wall);
    return true;
}

enum MHD_Result api_samples_info(api_req *r)
{
    samples_fd sf;
    enum MHD_Result res;
    if (!open_samples(r, &sf, &res)) return res;
    json_t *steps = json_array(), *times = json_array();
    for (int64_t k = 0; k < sf.K && k < SAMPLES_INDEX_MAX; k++) {
        int64_t st;
        double tw;
        if (!sample_meta(&sf, k, &st, &tw)) break;
        json_array_append_new(steps, json_integer(st));
        json_array_append_new(times, api_num(tw));
    }
    close(sf.fd);
    return api_json(r->conn, 200, json_pack("{s:I, s:I, s:I, s:o, s:o}", "job", (json_int_t)r->arg[0], "count",
                                            (json_int_t)sf.K, "n", (json_int_t)sf.n, "steps", steps, "t_wall", times));
}

enum MHD_Result api_samples_get(api_req *r)
{
    samples_fd sf;
    enum MHD_Result res;
    if (!open_samples(r, &sf, &res)) return res;
    int64_t k = r->arg[1], step;
    double tw;
    if (k >= sf.K || !sample_meta(&sf, k, &step, &tw)) {
        close(sf.fd);
        return api_error(r->conn, 404, "not_found", "k", "job %lld has %lld weight samples (k counts from 0)",
                         (long long)r->arg[0], (long long)sf.K);
    }
    npy_body *b = calloc(1, sizeof *b);
    if (!b) {
        close(sf.fd);
        return api_error(r->conn, 500, "internal", NULL, "out of memory");
    }
    b->head_len = npy_header_f32(sf.n, b->head);
    b->data_len = (uint64_t)sf.n * 4;
    b->fd = sf.fd;
    b->offset = SAMPLES_HEADER + k * (16 + 4 * sf.n) + 16;
    char name[96];
    snprintf(name, sizeof name, "job-%lld-sample-%lld.npy", (long long)r->arg[0], (long long)k);
    return reply_npy(r, b, name, step);
}
