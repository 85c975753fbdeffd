/* test_ckpt.c: the checkpoint format (core/ckpt.c): exact byte layout, round trips of header
 * fields and sections (0 bytes to ~10 MB), tag rules on write, atomic replacement (abort, I/O
 * error), and rejection of every truncated or corrupted file with BZ_EFORMAT, the path and the
 * byte offset in the message, never a crash (run it under -DBOLTZ_SANITIZE=ON too). */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt.h"
#include "testutil.h"

#define HDR 56u  /* fixed header of version 1 */
#define TRL 12u  /* CRC-32 + end marker */
#define SEC 24u  /* tag[16] + u64 length */

static char g_dir[256];

static void make_dir(void) { cr_assert_not_null(tu_mkdtemp(g_dir, sizeof g_dir)); }

static const char *path_in(const char *name)
{
    static char buf[16][512]; /* a ring, so a few results can be held at once */
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t crc_of(const unsigned char *p, size_t len)
{
    return (uint32_t)crc32(crc32(0, Z_NULL, 0), p, (uInt)len);
}

/* Recompute the trailer CRC of a hand-edited file image so the structural checks are reached. */
static void fix_crc(unsigned char *buf, size_t len) { put_u32(buf + len - TRL, crc_of(buf, len - TRL)); }

/* Deterministic pseudo-random bytes (xorshift64). */
static void fill_bytes(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p[i] = (unsigned char)(s >> 24);
    }
}

/* rc is code, e agrees, the message names the path, and contains needle (if given). */
static void expect_error(int rc, const bz_err *e, int code, const char *path, const char *needle)
{
    cr_assert_eq(rc, code, "rc %d, expected %d (%s)", rc, code, e->msg);
    cr_assert_eq(e->code, code);
    cr_assert(strstr(e->msg, path) != NULL, "message does not name %s: %s", path, e->msg);
    cr_assert_str_eq(e->field, path);
    if (needle) cr_assert(strstr(e->msg, needle) != NULL, "message lacks \"%s\": %s", needle, e->msg);
}

static ckpt_header sample_header(void)
{
    ckpt_header h = {0};
    h.n_params = 0x123456789abcdef0ull;
    h.spec_hash = ckpt_hash64("spec", 4);
    h.method = 2;
    h.chain = 5;
    h.step = 200000;
    return h;
}

/* The small sample file: sections "w" (40 bytes), "empty" (0), "rng" (17). */
#define SAMPLE_SIZE (HDR + SEC + 40 + SEC + 0 + SEC + 17 + TRL)
#define SAMPLE_W_AT HDR                      /* section "w" head */
#define SAMPLE_EMPTY_AT (HDR + SEC + 40)     /* section "empty" head */
#define SAMPLE_RNG_AT (SAMPLE_EMPTY_AT + SEC) /* section "rng" head */

static void write_sample(const char *path)
{
    bz_err e = {0};
    ckpt_header h = sample_header();
    unsigned char w[40], rng[17];
    fill_bytes(w, sizeof w, 1);
    fill_bytes(rng, sizeof rng, 2);
    ckpt_writer *wr;
    cr_assert_eq(ckpt_write_open(&wr, path, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(wr, "w", w, sizeof w, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(wr, "empty", NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(wr, "rng", rng, sizeof rng, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_write_close(wr, &e), 0, "%s", e.msg);
}

/* The sample file's bytes (SAMPLE_SIZE of them); caller frees. */
static unsigned char *sample_bytes(void)
{
    write_sample(path_in("sample.ckpt"));
    size_t len;
    unsigned char *buf = (unsigned char *)tu_read_file(path_in("sample.ckpt"), &len);
    cr_assert_not_null(buf);
    cr_assert_eq(len, SAMPLE_SIZE);
    return buf;
}

/* Write buf to bad.ckpt and try to read it: returns rc; e holds the error. */
static int read_image(const unsigned char *buf, size_t len, bz_err *e)
{
    const char *p = path_in("bad.ckpt");
    cr_assert_eq(tu_write_file(p, buf, len), 0);
    ckpt_reader *r = (ckpt_reader *)0x1;
    ckpt_header h;
    bz_err_clear(e);
    int rc = ckpt_read_open(&r, p, &h, e);
    if (rc == 0) ckpt_read_close(r);
    else cr_assert_null(r, "reader handle must be NULL on failure");
    return rc;
}

/* An edited image must fail with BZ_EFORMAT naming bad.ckpt and containing needle. */
static void expect_rejected(const unsigned char *buf, size_t len, const char *needle)
{
    bz_err e;
    int rc = read_image(buf, len, &e);
    expect_error(rc, &e, BZ_EFORMAT, path_in("bad.ckpt"), needle);
}

/* ---- hashing ---- */

Test(ckpt, hash64_known_vectors)
{
    cr_assert_eq(ckpt_hash64("", 0), 0xcbf29ce484222325ull);
    cr_assert_eq(ckpt_hash64("a", 1), 0xaf63dc4c8601ec8cull);
    cr_assert_eq(ckpt_hash64("foobar", 6), 0x85944171f73967e8ull);
}

/* ---- layout and round trips ---- */

Test(ckpt, exact_byte_layout)
{
    make_dir();
    const char *p = path_in("layout.ckpt");
    ckpt_header h = {.n_params = 0x0102030405060708ull, .spec_hash = 0x1112131415161718ull,
                     .method = -2, .chain = 3, .step = 0x2122232425262728ll};
    bz_err e = {0};
    ckpt_writer *w;
    const unsigned char data[3] = {0xa1, 0xa2, 0xa3};
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(w, "ab", data, 3, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_write_close(w, &e), 0, "%s", e.msg);

    unsigned char want[HDR + SEC + 3 + TRL] = {0};
    memcpy(want, "BZCKPT\r\n", 8);
    put_u32(want + 8, 1);
    put_u32(want + 12, HDR);
    put_u64(want + 16, h.n_params);
    put_u64(want + 24, h.spec_hash);
    put_u32(want + 32, 0xfffffffeu);
    put_u32(want + 36, 3);
    put_u64(want + 40, (uint64_t)h.step);
    put_u32(want + 48, 1);
    put_u32(want + 52, 0);
    memcpy(want + HDR, "ab", 2);
    put_u64(want + HDR + 16, 3);
    memcpy(want + HDR + SEC, data, 3);
    put_u32(want + HDR + SEC + 3, crc_of(want, HDR + SEC + 3));
    memcpy(want + HDR + SEC + 3 + 4, "BZEND\0\0\0", 8);

    size_t len;
    unsigned char *got = (unsigned char *)tu_read_file(p, &len);
    cr_assert_not_null(got);
    cr_assert_eq(len, sizeof want);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(got[i], want[i], "byte %zu is 0x%02x, expected 0x%02x", i, got[i], want[i]);
    free(got);
    cr_assert(!exists(path_in("layout.ckpt.tmp")), "the temporary file was left behind");
}

static void round_trip_header(ckpt_header h)
{
    const char *p = path_in("hdr.ckpt");
    bz_err e = {0};
    ckpt_writer *w;
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_write_close(w, &e), 0, "%s", e.msg);
    ckpt_reader *r;
    ckpt_header g;
    memset(&g, 0xee, sizeof g);
    cr_assert_eq(ckpt_read_open(&r, p, &g, &e), 0, "%s", e.msg);
    cr_assert_eq(g.version, CKPT_VERSION);
    cr_assert_eq(g.n_params, h.n_params);
    cr_assert_eq(g.spec_hash, h.spec_hash);
    cr_assert_eq(g.method, h.method);
    cr_assert_eq(g.chain, h.chain);
    cr_assert_eq(g.step, h.step);
    cr_assert_null(ckpt_find(r, "w", NULL));
    ckpt_read_close(r);
}

Test(ckpt, header_fields_round_trip)
{
    make_dir();
    round_trip_header(sample_header());
    round_trip_header((ckpt_header){.n_params = UINT64_MAX, .spec_hash = 0x8000000000000001ull,
                                    .method = INT32_MIN, .chain = -1, .step = INT64_MIN});
    round_trip_header((ckpt_header){.n_params = 0, .spec_hash = 0, .method = INT32_MAX, .chain = 0, .step = INT64_MAX});
}

Test(ckpt, sections_round_trip_bit_identical)
{
    make_dir();
    const char *p = path_in("big.ckpt");
    const char *tags[] = {"empty", "one", "three", "kilo", "weights", "fifteen_chars__"};
    const size_t sizes[] = {0, 1, 3, 1000, 10u * 1024 * 1024 + 7, 64};
    enum { N = 6 };
    unsigned char *data[N];
    size_t total = HDR + TRL;
    for (int i = 0; i < N; i++) {
        data[i] = malloc(sizes[i] ? sizes[i] : 1);
        fill_bytes(data[i], sizes[i], 100 + (uint64_t)i);
        total += SEC + sizes[i];
    }
    ckpt_header h = sample_header();
    bz_err e = {0};
    ckpt_writer *w;
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    for (int i = 0; i < N; i++) cr_assert_eq(ckpt_put(w, tags[i], data[i], sizes[i], &e), 0, "%s", e.msg);
    cr_assert(exists(path_in("big.ckpt.tmp")), "the writer should be writing to PATH.tmp");
    cr_assert(!exists(p), "PATH must not appear before close");
    cr_assert_eq(ckpt_write_close(w, &e), 0, "%s", e.msg);
    cr_assert(!exists(path_in("big.ckpt.tmp")), "the temporary file was left behind");

    size_t len;
    char *raw = tu_read_file(p, &len);
    cr_assert_not_null(raw);
    cr_assert_eq(len, total);
    free(raw);

    ckpt_reader *r;
    ckpt_header g;
    cr_assert_eq(ckpt_read_open(&r, p, &g, &e), 0, "%s", e.msg);
    cr_assert_eq(g.n_params, h.n_params);
    cr_assert_eq(g.step, h.step);
    for (int i = 0; i < N; i++) {
        uint64_t n = 12345;
        const void *q = ckpt_find(r, tags[i], &n);
        cr_assert_not_null(q, "section %s missing", tags[i]);
        cr_assert_eq(n, sizes[i], "section %s has %" PRIu64 " bytes", tags[i], n);
        cr_assert_eq(memcmp(q, data[i], sizes[i]), 0, "section %s differs (find)", tags[i]);
        unsigned char *copy = malloc(sizes[i] + 1);
        cr_assert_eq(ckpt_get(r, tags[i], copy, sizes[i], &e), 0, "%s", e.msg);
        cr_assert_eq(memcmp(copy, data[i], sizes[i]), 0, "section %s differs (get)", tags[i]);
        free(copy);
        free(data[i]);
    }
    cr_assert_null(ckpt_find(r, "weight", NULL), "a prefix of a tag must not match");
    cr_assert_null(ckpt_find(r, "weights2", NULL));
    ckpt_read_close(r);
}

Test(ckpt, no_sections)
{
    make_dir();
    const char *p = path_in("none.ckpt");
    ckpt_header h = sample_header();
    bz_err e = {0};
    ckpt_writer *w;
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_write_close(w, &e), 0, "%s", e.msg);
    size_t len;
    free(tu_read_file(p, &len));
    cr_assert_eq(len, HDR + TRL);
    ckpt_reader *r;
    cr_assert_eq(ckpt_read_open(&r, p, NULL, &e), 0, "%s", e.msg);
    cr_assert_null(ckpt_find(r, "w", NULL));
    ckpt_read_close(r);
}

/* ---- ckpt_get errors ---- */

Test(ckpt, get_missing_and_wrong_size)
{
    make_dir();
    const char *p = path_in("sample.ckpt");
    write_sample(p);
    bz_err e = {0};
    ckpt_reader *r;
    cr_assert_eq(ckpt_read_open(&r, p, NULL, &e), 0, "%s", e.msg);
    unsigned char buf[64];
    expect_error(ckpt_get(r, "masses", buf, 8, &e), &e, BZ_EFORMAT, p, "checkpoint has no section 'masses'");
    expect_error(ckpt_get(r, "w", buf, 44, &e), &e, BZ_EFORMAT, p, "section 'w' holds 40 bytes, expected 44");
    expect_error(ckpt_get(r, "w", buf, 39, &e), &e, BZ_EFORMAT, p, "section 'w' holds 40 bytes, expected 39");
    expect_error(ckpt_get(r, "empty", buf, 1, &e), &e, BZ_EFORMAT, p, "section 'empty' holds 0 bytes, expected 1");
    cr_assert_eq(ckpt_get(r, "empty", NULL, 0, &e), 0, "%s", e.msg);
    uint64_t n = 99;
    cr_assert_not_null(ckpt_find(r, "empty", &n));
    cr_assert_eq(n, 0);
    cr_assert_null(ckpt_find(r, "masses", &n));
    /* a failed get leaves the buffer alone */
    memset(buf, 0x5a, sizeof buf);
    cr_assert_neq(ckpt_get(r, "w", buf, 41, &e), 0);
    for (size_t i = 0; i < sizeof buf; i++) cr_assert_eq(buf[i], 0x5a);
    ckpt_read_close(r);
}

/* ---- writer rules ---- */

Test(ckpt, put_rejects_bad_and_duplicate_tags)
{
    make_dir();
    const char *p = path_in("tags.ckpt");
    ckpt_header h = sample_header();
    bz_err e = {0};
    ckpt_writer *w;
    int a = 1, b = 2;
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(w, "p", &a, sizeof a, &e), 0, "%s", e.msg);
    expect_error(ckpt_put(w, "p", &b, sizeof b, &e), &e, BZ_EINVAL, p, "duplicate section tag 'p'");
    expect_error(ckpt_put(w, "", &b, sizeof b, &e), &e, BZ_EINVAL, p, "empty");
    expect_error(ckpt_put(w, NULL, &b, sizeof b, &e), &e, BZ_EINVAL, p, "empty");
    expect_error(ckpt_put(w, "sixteen_chars___", &b, sizeof b, &e), &e, BZ_EINVAL, p, "too long");
    expect_error(ckpt_put(w, "a_much_longer_tag_than_allowed", &b, sizeof b, &e), &e, BZ_EINVAL, p, "too long");
    expect_error(ckpt_put(w, "nodata", NULL, 4, &e), &e, BZ_EINVAL, p, NULL);
    cr_assert_eq(ckpt_put(w, "fifteen_chars__", &b, sizeof b, &e), 0, "%s", e.msg);
    /* rejected puts leave the writer usable and write nothing */
    cr_assert_eq(ckpt_write_close(w, &e), 0, "%s", e.msg);

    ckpt_reader *r;
    cr_assert_eq(ckpt_read_open(&r, p, NULL, &e), 0, "%s", e.msg);
    int got = 0;
    cr_assert_eq(ckpt_get(r, "p", &got, sizeof got, &e), 0, "%s", e.msg);
    cr_assert_eq(got, 1, "the duplicate must not have replaced the first section");
    cr_assert_eq(ckpt_get(r, "fifteen_chars__", &got, sizeof got, &e), 0, "%s", e.msg);
    cr_assert_eq(got, 2);
    cr_assert_null(ckpt_find(r, "nodata", NULL));
    cr_assert_null(ckpt_find(r, "sixteen_chars__", NULL));
    ckpt_read_close(r);
    size_t len;
    free(tu_read_file(p, &len));
    cr_assert_eq(len, HDR + 2 * (SEC + sizeof(int)) + TRL);
}

Test(ckpt, abort_leaves_no_file)
{
    make_dir();
    const char *p = path_in("aborted.ckpt");
    ckpt_header h = sample_header();
    bz_err e = {0};
    ckpt_writer *w;
    char data[100] = {0};
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(w, "w", data, sizeof data, &e), 0, "%s", e.msg);
    ckpt_write_abort(w);
    cr_assert(!exists(p), "PATH appeared after an abort");
    cr_assert(!exists(path_in("aborted.ckpt.tmp")), "PATH.tmp left behind after an abort");
    ckpt_write_abort(NULL);
}

static int64_t read_step(const char *p)
{
    bz_err e = {0};
    ckpt_reader *r;
    ckpt_header h;
    cr_assert_eq(ckpt_read_open(&r, p, &h, &e), 0, "%s", e.msg);
    int64_t v = 0;
    cr_assert_eq(ckpt_get(r, "step", &v, sizeof v, &e), 0, "%s", e.msg);
    cr_assert_eq(v, h.step);
    ckpt_read_close(r);
    return v;
}

static void write_step(const char *p, int64_t step)
{
    bz_err e = {0};
    ckpt_header h = sample_header();
    h.step = step;
    ckpt_writer *w;
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(w, "step", &step, sizeof step, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_write_close(w, &e), 0, "%s", e.msg);
}

Test(ckpt, existing_file_untouched_until_close)
{
    make_dir();
    const char *p = path_in("keep.ckpt");
    write_step(p, 1000);

    /* aborted rewrite: old content stays readable, during and after */
    bz_err e = {0};
    ckpt_header h = sample_header();
    h.step = 2000;
    int64_t step = 2000;
    ckpt_writer *w;
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(w, "step", &step, sizeof step, &e), 0, "%s", e.msg);
    cr_assert_eq(read_step(p), 1000);
    ckpt_write_abort(w);
    cr_assert_eq(read_step(p), 1000);
    cr_assert(!exists(path_in("keep.ckpt.tmp")));

    /* completed rewrite replaces it; old content readable right up to close */
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_put(w, "step", &step, sizeof step, &e), 0, "%s", e.msg);
    cr_assert_eq(read_step(p), 1000);
    cr_assert_eq(ckpt_write_close(w, &e), 0, "%s", e.msg);
    cr_assert_eq(read_step(p), 2000);
}

Test(ckpt, write_error_is_eio_and_keeps_old_file)
{
    make_dir();
    const char *p = path_in("full.ckpt");
    write_step(p, 7);
    /* Simulate a full disk: a file-size limit makes write() fail with EFBIG. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 16384, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    size_t n = 256 * 1024;
    unsigned char *big = calloc(n, 1);
    bz_err e = {0};
    ckpt_header h = sample_header();
    ckpt_writer *w;
    cr_assert_eq(ckpt_write_open(&w, p, &h, &e), 0, "%s", e.msg);
    int rc = ckpt_put(w, "w", big, n, &e);
    if (rc == 0) rc = ckpt_put(w, "w2", big, n, &e);
    if (rc == 0) {
        rc = ckpt_write_close(w, &e);
    } else {
        expect_error(rc, &e, BZ_EIO, p, strerror(EFBIG));
        bz_err_clear(&e);
        rc = ckpt_write_close(w, &e);
    }
    expect_error(rc, &e, BZ_EIO, p, strerror(EFBIG));
    cr_assert(strstr(e.msg, "full.ckpt.tmp") != NULL, "message should name the temporary file: %s", e.msg);
    cr_assert(!exists(path_in("full.ckpt.tmp")), "PATH.tmp left behind after a write error");
    free(big);
    rl.rlim_cur = RLIM_INFINITY;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    cr_assert_eq(read_step(p), 7, "the old checkpoint must survive a failed write");
}

Test(ckpt, write_open_in_missing_directory)
{
    make_dir();
    const char *p = path_in("no/such/dir/x.ckpt");
    bz_err e = {0};
    ckpt_header h = sample_header();
    ckpt_writer *w = (ckpt_writer *)0x1;
    expect_error(ckpt_write_open(&w, p, &h, &e), &e, BZ_EIO, p, strerror(ENOENT));
    cr_assert_null(w);
}

/* ---- reader: I/O ---- */

Test(ckpt, read_missing_file_and_directory)
{
    make_dir();
    const char *p = path_in("absent.ckpt");
    bz_err e = {0};
    ckpt_reader *r;
    expect_error(ckpt_read_open(&r, p, NULL, &e), &e, BZ_EIO, p, strerror(ENOENT));
    expect_error(ckpt_read_open(&r, g_dir, NULL, &e), &e, BZ_EIO, g_dir, "not a regular file");
}

Test(ckpt, read_refuses_huge_file)
{
    make_dir();
    const char *p = path_in("huge.ckpt");
    cr_assert_eq(tu_write_file(p, "BZCKPT\r\n", 8), 0);
    if (truncate(p, (off_t)(64ll << 30) + 1) != 0) cr_skip_test("no sparse 64 GiB file here: %s", strerror(errno));
    bz_err e = {0};
    ckpt_reader *r;
    expect_error(ckpt_read_open(&r, p, NULL, &e), &e, BZ_ELIMIT, p, "limit");
    unlink(p);
}

/* ---- reader: truncation ---- */

Test(ckpt, every_truncation_rejected)
{
    make_dir();
    unsigned char *full = sample_bytes();
    char want[128];
    size_t lens[SAMPLE_SIZE];
    size_t n = 0;
    for (size_t l = 0; l <= HDR + 20; l++) lens[n++] = l;
    size_t extra[] = {SAMPLE_W_AT + SEC + 1, SAMPLE_W_AT + SEC + 20, SAMPLE_EMPTY_AT + 3, SAMPLE_RNG_AT + SEC + 9,
                      SAMPLE_SIZE - TRL, SAMPLE_SIZE - 8, SAMPLE_SIZE - 1};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) lens[n++] = extra[i];
    for (size_t i = 0; i < n; i++) {
        size_t l = lens[i];
        if (l < HDR + TRL) {
            snprintf(want, sizeof want, "truncated: %zu bytes, a checkpoint has at least %u", l, HDR + TRL);
        } else {
            snprintf(want, sizeof want, "truncated or corrupted: no end marker at byte %zu", l - 8);
        }
        expect_rejected(full, l, want);
    }
    free(full);
}

/* ---- reader: corruption ---- */

/* Flip each byte of the file with several masks: every case must be rejected (never accepted,
 * never a crash), and with the message that fits the region hit. */
Test(ckpt, every_byte_flip_rejected)
{
    make_dir();
    unsigned char *full = sample_bytes();
    unsigned char *img = malloc(SAMPLE_SIZE);
    const unsigned char masks[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < SAMPLE_SIZE; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            memcpy(img, full, SAMPLE_SIZE);
            img[i] ^= masks[m];
            const char *needle = NULL;
            if (i < 8) needle = "bad magic at byte 0";
            else if (i >= 16 && i < SAMPLE_SIZE - 8) needle = "checksum mismatch"; /* fields, sections, CRC */
            else if (i >= SAMPLE_SIZE - 8) needle = "no end marker";
            bz_err e;
            int rc = read_image(img, SAMPLE_SIZE, &e);
            cr_assert_eq(rc, BZ_EFORMAT, "flip 0x%02x at byte %zu: rc %d (%s)", masks[m], i, rc, e.msg);
            cr_assert(strstr(e.msg, path_in("bad.ckpt")) != NULL);
            if (needle)
                cr_assert(strstr(e.msg, needle) != NULL, "flip at byte %zu: message lacks \"%s\": %s", i, needle,
                          e.msg);
        }
    }
    free(img);
    free(full);
}

Test(ckpt, bad_magic)
{
    make_dir();
    unsigned char *img = sample_bytes();
    memcpy(img, "BZCKPT\n\n", 8);
    expect_rejected(img, SAMPLE_SIZE, "not a boltzd checkpoint (bad magic at byte 0)");
    char text[200];
    memset(text, 'x', sizeof text);
    expect_rejected((unsigned char *)text, sizeof text, "not a boltzd checkpoint (bad magic at byte 0)");
    free(img);
}

Test(ckpt, newer_and_invalid_version)
{
    make_dir();
    unsigned char *img = sample_bytes();
    put_u32(img + 8, 2);
    fix_crc(img, SAMPLE_SIZE);
    expect_rejected(img, SAMPLE_SIZE, "written by a newer boltzd (format version 2, this one reads up to 1)");
    put_u32(img + 8, 0xffffffffu);
    expect_rejected(img, SAMPLE_SIZE, "format version 4294967295, this one reads up to 1");
    put_u32(img + 8, 0);
    fix_crc(img, SAMPLE_SIZE);
    expect_rejected(img, SAMPLE_SIZE, "version 0");
    free(img);
}

Test(ckpt, header_bytes_out_of_range)
{
    make_dir();
    unsigned char *img = sample_bytes();
    const uint32_t bad[] = {0, 1, HDR - 1, SAMPLE_SIZE - TRL + 1, SAMPLE_SIZE, 0xffffffffu};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_u32(img + 12, bad[i]);
        fix_crc(img, SAMPLE_SIZE);
        expect_rejected(img, SAMPLE_SIZE, "header size at byte 12");
    }
    free(img);
}

Test(ckpt, checksum_mismatch_names_both_values)
{
    make_dir();
    unsigned char *img = sample_bytes();
    uint32_t good = crc_of(img, SAMPLE_SIZE - TRL);
    img[SAMPLE_W_AT + SEC + 5] ^= 0x10; /* inside the data of "w" */
    uint32_t now = crc_of(img, SAMPLE_SIZE - TRL);
    char want[160];
    snprintf(want, sizeof want, "checksum mismatch: stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 " (file corrupted)",
             good, now);
    expect_rejected(img, SAMPLE_SIZE, want);
    free(img);
}

Test(ckpt, end_marker_missing_names_offset)
{
    make_dir();
    unsigned char *img = sample_bytes();
    img[SAMPLE_SIZE - 3] = 'X';
    char want[96];
    snprintf(want, sizeof want, "no end marker at byte %u", SAMPLE_SIZE - 8);
    expect_rejected(img, SAMPLE_SIZE, want);
    free(img);
}

/* The remaining checks sit behind the checksum, so each image gets a valid CRC: this is what a
 * buggy writer (or a forged file) produces, and the reader must still never read out of bounds. */
Test(ckpt, section_length_past_trailer)
{
    make_dir();
    unsigned char *img = sample_bytes();
    const uint64_t remain = SAMPLE_SIZE - TRL - SAMPLE_W_AT - SEC;
    const uint64_t bad[] = {remain + 1, 1ull << 32, 1ull << 63, UINT64_MAX, UINT64_MAX - SAMPLE_W_AT};
    char want[160];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_u64(img + SAMPLE_W_AT + 16, bad[i]);
        fix_crc(img, SAMPLE_SIZE);
        snprintf(want, sizeof want, "section 'w' at byte %u claims %" PRIu64 " bytes, only %" PRIu64 " remain",
                 SAMPLE_W_AT, bad[i], remain);
        expect_rejected(img, SAMPLE_SIZE, want);
    }
    /* the last section one byte too long */
    free(img);
    img = sample_bytes();
    put_u64(img + SAMPLE_RNG_AT + 16, 18);
    fix_crc(img, SAMPLE_SIZE);
    snprintf(want, sizeof want, "section 'rng' at byte %u claims 18 bytes, only 17 remain", SAMPLE_RNG_AT);
    expect_rejected(img, SAMPLE_SIZE, want);
    /* one byte too short: a byte is left over before the trailer */
    put_u64(img + SAMPLE_RNG_AT + 16, 16);
    fix_crc(img, SAMPLE_SIZE);
    snprintf(want, sizeof want, "1 bytes left over at byte %u", SAMPLE_SIZE - TRL - 1);
    expect_rejected(img, SAMPLE_SIZE, want);
    /* a shorter first section misaligns everything after it: still rejected */
    put_u64(img + SAMPLE_RNG_AT + 16, 17);
    put_u64(img + SAMPLE_W_AT + 16, 39);
    fix_crc(img, SAMPLE_SIZE);
    expect_rejected(img, SAMPLE_SIZE, NULL);
    free(img);
}

Test(ckpt, section_tag_problems)
{
    make_dir();
    unsigned char *img = sample_bytes();
    char want[128];
    memset(img + SAMPLE_EMPTY_AT, 'x', 16);
    fix_crc(img, SAMPLE_SIZE);
    snprintf(want, sizeof want, "section 1 at byte %u: tag not NUL-terminated within 16 bytes", SAMPLE_EMPTY_AT);
    expect_rejected(img, SAMPLE_SIZE, want);
    memset(img + SAMPLE_EMPTY_AT, 0, 16);
    fix_crc(img, SAMPLE_SIZE);
    snprintf(want, sizeof want, "section 1 at byte %u: empty tag", SAMPLE_EMPTY_AT);
    expect_rejected(img, SAMPLE_SIZE, want);
    memcpy(img + SAMPLE_EMPTY_AT, "w", 2);
    fix_crc(img, SAMPLE_SIZE);
    snprintf(want, sizeof want, "section 'w' at byte %u appears twice", SAMPLE_EMPTY_AT);
    expect_rejected(img, SAMPLE_SIZE, want);
    free(img);
}

Test(ckpt, section_count_mismatch)
{
    make_dir();
    unsigned char *img = sample_bytes();
    char want[160];
    put_u32(img + 48, 4);
    fix_crc(img, SAMPLE_SIZE);
    snprintf(want, sizeof want, "header declares 4 sections, found only 3 before the trailer at byte %u",
             SAMPLE_SIZE - TRL);
    expect_rejected(img, SAMPLE_SIZE, want);
    put_u32(img + 48, 2);
    fix_crc(img, SAMPLE_SIZE);
    snprintf(want, sizeof want, "%u bytes left over at byte %u after the 2 sections", SEC + 17, SAMPLE_RNG_AT);
    expect_rejected(img, SAMPLE_SIZE, want);
    put_u32(img + 48, 0);
    fix_crc(img, SAMPLE_SIZE);
    expect_rejected(img, SAMPLE_SIZE, "left over at byte 56");
    put_u32(img + 48, 0xffffffffu);
    fix_crc(img, SAMPLE_SIZE);
    expect_rejected(img, SAMPLE_SIZE, "header declares 4294967295 sections");
    free(img);
}
