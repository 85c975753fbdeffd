/* ckpt.c: boltzd's versioned binary checkpoint files (layout in ckpt.h).
 *
 * Writing streams: ckpt_write_open writes a placeholder header to PATH.tmp, each ckpt_put appends
 * a section while keeping a running CRC-32 of the section bytes, and ckpt_write_close builds the
 * final header (now knowing n_sections), combines its CRC with the sections' CRC
 * (crc32_combine), appends the trailer, rewrites the header in place, fflush + fsync, renames
 * PATH.tmp -> PATH and fsyncs the directory. So a checkpoint of any size needs no extra memory,
 * and a crash or an error at any point leaves PATH as it was.
 *
 * Reading loads the whole file and validates, in this order: the size (at least header +
 * trailer, at most CKPT_MAX_FILE), the magic, the version, header_bytes, the end marker, the
 * CRC-32, then each section (tag NUL-terminated and non-empty and unique, length within what is
 * left before the trailer, computed by subtraction so no corrupted length can overflow), the
 * section count, and that no bytes are left over. The first problem is reported as
 * bz_fail(e, BZ_EFORMAT, field = path, "PATH: what is wrong at byte X"); open/read failures are
 * BZ_EIO with strerror. Sections are then served by pointer into the loaded buffer. */
#include <stddef.h> /* ckpt.h uses size_t without including it */

#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CKPT_MAGIC "BZCKPT\r\n"
#define CKPT_MAGIC_LEN 8
#define CKPT_END "BZEND\0\0\0"
#define CKPT_END_LEN 8
#define CKPT_HEADER_BYTES 56u                    /* fixed header of version 1 */
#define CKPT_TRAILER_BYTES (4u + CKPT_END_LEN)   /* CRC-32, end marker */
#define CKPT_SECTION_HEAD (CKPT_TAG_LEN + 8u)    /* tag, u64 length */
#define CKPT_MIN_FILE (CKPT_HEADER_BYTES + CKPT_TRAILER_BYTES)
#define CKPT_MAX_FILE (64ull << 30)              /* larger files are refused (BZ_ELIMIT) */
#define CKPT_CRC_CHUNK (1u << 30)                /* crc32() takes a uInt length */

/* Header field offsets (bytes from the start of the file). */
enum {
    OFF_VERSION = 8,
    OFF_HEADER_BYTES = 12,
    OFF_N_PARAMS = 16,
    OFF_SPEC_HASH = 24,
    OFF_METHOD = 32,
    OFF_CHAIN = 36,
    OFF_STEP = 40,
    OFF_N_SECTIONS = 48,
    OFF_RESERVED = 52
};

struct ckpt_writer {
    FILE *f;
    char *path;               /* final name */
    char *tmp;                /* PATH.tmp */
    ckpt_header h;
    uint32_t n_sections;
    char (*tags)[CKPT_TAG_LEN]; /* tags written so far, for the duplicate check */
    uint32_t tags_cap;
    uLong crc_sections;       /* CRC-32 of everything after the header */
    uint64_t len_sections;
    int io_errno;             /* first write error (errno), 0 while all is well */
    char prefix[8];           /* prepended to every tag (ckpt_writer_prefix), "" by default */
};

typedef struct ckpt_section {
    char tag[CKPT_TAG_LEN];
    uint64_t off;   /* of the data, from the start of the file */
    uint64_t bytes;
} ckpt_section;

struct ckpt_reader {
    unsigned char *buf;
    uint64_t size;
    char *path;
    uint32_t n;
    ckpt_section *sec;
    char prefix[8];           /* prepended to every tag looked up (ckpt_reader_prefix) */
};

/* ---- little-endian encoding, byte by byte ---- */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Two's-complement conversions without implementation-defined casts. */
static int32_t to_i32(uint32_t v) { return v <= INT32_MAX ? (int32_t)v : -(int32_t)(UINT32_MAX - v) - 1; }
static int64_t to_i64(uint64_t v) { return v <= INT64_MAX ? (int64_t)v : -(int64_t)(UINT64_MAX - v) - 1; }

static uLong crc_update(uLong crc, const unsigned char *p, uint64_t len)
{
    while (len > 0) {
        uInt n = len > CKPT_CRC_CHUNK ? CKPT_CRC_CHUNK : (uInt)len;
        crc = crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

/* bz_fail with field = path and the message prefixed by the path. */
static int ckpt_fail(bz_err *e, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ckpt_fail(bz_err *e, int code, const char *path, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bz_fail(e, code, path, "%s: %s", path, what);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

uint64_t ckpt_hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- writer ---- */

static void encode_header(unsigned char *b, const ckpt_header *h, uint32_t n_sections)
{
    memcpy(b, CKPT_MAGIC, CKPT_MAGIC_LEN);
    put_u32(b + OFF_VERSION, CKPT_VERSION);
    put_u32(b + OFF_HEADER_BYTES, CKPT_HEADER_BYTES);
    put_u64(b + OFF_N_PARAMS, h->n_params);
    put_u64(b + OFF_SPEC_HASH, h->spec_hash);
    put_u32(b + OFF_METHOD, (uint32_t)h->method);
    put_u32(b + OFF_CHAIN, (uint32_t)h->chain);
    put_u64(b + OFF_STEP, (uint64_t)h->step);
    put_u32(b + OFF_N_SECTIONS, n_sections);
    put_u32(b + OFF_RESERVED, 0);
}

static void writer_free(ckpt_writer *w)
{
    if (w->f) fclose(w->f);
    free(w->path);
    free(w->tmp);
    free(w->tags);
    free(w);
}

/* Write len bytes at the current position; remembers the first error in w->io_errno. */
static int writer_emit(ckpt_writer *w, const void *p, uint64_t len)
{
    if (w->io_errno) return -1;
    const unsigned char *c = p;
    while (len > 0) {
        size_t n = len > CKPT_CRC_CHUNK ? CKPT_CRC_CHUNK : (size_t)len;
        errno = 0;
        if (fwrite(c, 1, n, w->f) != n) {
            w->io_errno = errno ? errno : EIO;
            return -1;
        }
        c += n;
        len -= n;
    }
    return 0;
}

/* Append to the section stream: write and fold into the running CRC. */
static int writer_emit_section(ckpt_writer *w, const void *p, uint64_t len)
{
    if (writer_emit(w, p, len)) return -1;
    w->crc_sections = crc_update(w->crc_sections, p, len);
    w->len_sections += len;
    return 0;
}

static int io_fail(bz_err *e, const ckpt_writer *w, const char *what, int err)
{
    return ckpt_fail(e, BZ_EIO, w->path, "%s %s: %s", what, w->tmp, strerror(err));
}

int ckpt_write_open(ckpt_writer **out, const char *path, const ckpt_header *h, bz_err *e)
{
    if (!out || !path || !*path || !h) return bz_fail(e, BZ_EINVAL, path, "ckpt_write_open: missing argument");
    *out = NULL;
    ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return bz_fail(e, BZ_ENOMEM, path, "%s: out of memory", path);
    size_t n = strlen(path);
    w->path = dup_str(path);
    w->tmp = malloc(n + 5);
    if (!w->path || !w->tmp) {
        writer_free(w);
        return bz_fail(e, BZ_ENOMEM, path, "%s: out of memory", path);
    }
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->h = *h;
    w->crc_sections = crc32(0, Z_NULL, 0);

    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = io_fail(e, w, "cannot create", errno);
        writer_free(w);
        return rc;
    }
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        int err = errno;
        close(fd);
        unlink(w->tmp);
        int rc = io_fail(e, w, "cannot open", err);
        writer_free(w);
        return rc;
    }
    unsigned char hdr[CKPT_HEADER_BYTES];
    encode_header(hdr, h, 0); /* placeholder: n_sections is patched at close */
    if (writer_emit(w, hdr, sizeof hdr)) {
        int rc = io_fail(e, w, "cannot write", w->io_errno);
        ckpt_write_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

static bool writer_has_tag(const ckpt_writer *w, const char *tag)
{
    for (uint32_t i = 0; i < w->n_sections; i++)
        if (strncmp(w->tags[i], tag, CKPT_TAG_LEN) == 0) return true;
    return false;
}

static int writer_check_tag(const ckpt_writer *w, const char *tag, bz_err *e)
{
    if (!tag || !*tag) return ckpt_fail(e, BZ_EINVAL, w->path, "section tag is empty");
    size_t n = strnlen(tag, CKPT_TAG_LEN);
    if (n >= CKPT_TAG_LEN)
        return ckpt_fail(e, BZ_EINVAL, w->path, "section tag '%.*s...' is too long (at most %d characters)",
                         CKPT_TAG_LEN - 1, tag, CKPT_TAG_LEN - 1);
    if (writer_has_tag(w, tag)) return ckpt_fail(e, BZ_EINVAL, w->path, "duplicate section tag '%s'", tag);
    if (w->n_sections == UINT32_MAX) return ckpt_fail(e, BZ_ELIMIT, w->path, "too many sections");
    return 0;
}

static int writer_remember_tag(ckpt_writer *w, const char *tag, bz_err *e)
{
    if (w->n_sections == w->tags_cap) {
        uint32_t cap = w->tags_cap ? w->tags_cap * 2 : 8;
        void *t = realloc(w->tags, (size_t)cap * CKPT_TAG_LEN);
        if (!t) return ckpt_fail(e, BZ_ENOMEM, w->path, "out of memory");
        w->tags = t;
        w->tags_cap = cap;
    }
    memset(w->tags[w->n_sections], 0, CKPT_TAG_LEN);
    memcpy(w->tags[w->n_sections], tag, strlen(tag));
    return 0;
}

int ckpt_put(ckpt_writer *w, const char *tag, const void *data, uint64_t bytes, bz_err *e)
{
    if (!w) return bz_fail(e, BZ_EINVAL, NULL, "ckpt_put: no writer");
    if (!data && bytes) return ckpt_fail(e, BZ_EINVAL, w->path, "section '%s': no data for %" PRIu64 " bytes",
                                         tag ? tag : "", bytes);
    if (w->io_errno) return io_fail(e, w, "an earlier write failed on", w->io_errno);
    char full[2 * CKPT_TAG_LEN];
    if (w->prefix[0] && tag) {
        snprintf(full, sizeof full, "%s%s", w->prefix, tag);
        tag = full;
    }
    int rc = writer_check_tag(w, tag, e);
    if (rc) return rc;
    rc = writer_remember_tag(w, tag, e);
    if (rc) return rc;
    unsigned char head[CKPT_SECTION_HEAD];
    memcpy(head, w->tags[w->n_sections], CKPT_TAG_LEN);
    put_u64(head + CKPT_TAG_LEN, bytes);
    if (writer_emit_section(w, head, sizeof head) || writer_emit_section(w, data, bytes))
        return io_fail(e, w, "cannot write", w->io_errno);
    w->n_sections++;
    return 0;
}

/* Trailer at the end, then the final header over the placeholder; flushed and synced. */
static int writer_finish_file(ckpt_writer *w)
{
    unsigned char hdr[CKPT_HEADER_BYTES], trl[CKPT_TRAILER_BYTES];
    encode_header(hdr, &w->h, w->n_sections);
    uLong crc = crc32_combine(crc32(crc32(0, Z_NULL, 0), hdr, sizeof hdr), w->crc_sections,
                              (z_off_t)w->len_sections);
    put_u32(trl, (uint32_t)crc);
    memcpy(trl + 4, CKPT_END, CKPT_END_LEN);
    if (writer_emit(w, trl, sizeof trl)) return -1;
    if (fseeko(w->f, 0, SEEK_SET) != 0 || writer_emit(w, hdr, sizeof hdr) || fflush(w->f) != 0 ||
        fsync(fileno(w->f)) != 0)
        goto fail;
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) goto fail;
    return 0;
fail:
    if (!w->io_errno) w->io_errno = errno ? errno : EIO;
    return -1;
}

/* Make the rename durable by syncing the directory that holds path. */
static int sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : dup_str(".");
    if (!dir) return ENOMEM;
    int err = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) err = errno;
    else {
        if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) err = errno;
        close(fd);
    }
    free(dir);
    return err;
}

int ckpt_write_close(ckpt_writer *w, bz_err *e)
{
    if (!w) return bz_fail(e, BZ_EINVAL, NULL, "ckpt_write_close: no writer");
    if (w->io_errno || writer_finish_file(w)) {
        int rc = io_fail(e, w, "cannot write", w->io_errno);
        ckpt_write_abort(w);
        return rc;
    }
    if (rename(w->tmp, w->path) != 0) {
        int rc = ckpt_fail(e, BZ_EIO, w->path, "cannot rename %s into place: %s", w->tmp, strerror(errno));
        ckpt_write_abort(w);
        return rc;
    }
    int err = sync_parent_dir(w->path);
    int rc = 0;
    if (err)
        rc = ckpt_fail(e, BZ_EIO, w->path, "written, but its directory could not be synced: %s", strerror(err));
    writer_free(w);
    return rc;
}

void ckpt_write_abort(ckpt_writer *w)
{
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    unlink(w->tmp);
    writer_free(w);
}

/* ---- reader ---- */

static int read_all(int fd, unsigned char *buf, uint64_t size, uint64_t *got)
{
    *got = 0;
    while (*got < size) {
        uint64_t want = size - *got;
        ssize_t n = read(fd, buf + *got, want > CKPT_CRC_CHUNK ? CKPT_CRC_CHUNK : (size_t)want);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) break;
        *got += (uint64_t)n;
    }
    return 0;
}

/* Open path and load it whole into r->buf (r->size bytes). */
static int load_file(ckpt_reader *r, bz_err *e)
{
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ckpt_fail(e, BZ_EIO, r->path, "cannot open checkpoint: %s", strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) rc = ckpt_fail(e, BZ_EIO, r->path, "cannot stat checkpoint: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode)) rc = ckpt_fail(e, BZ_EIO, r->path, "not a regular file");
    else if ((uint64_t)st.st_size > CKPT_MAX_FILE)
        rc = ckpt_fail(e, BZ_ELIMIT, r->path, "checkpoint is %" PRIu64 " bytes, more than the limit of %" PRIu64,
                       (uint64_t)st.st_size, (uint64_t)CKPT_MAX_FILE);
    if (rc) {
        close(fd);
        return rc;
    }
    r->size = (uint64_t)st.st_size;
    r->buf = malloc(r->size ? (size_t)r->size : 1);
    if (!r->buf) {
        close(fd);
        return ckpt_fail(e, BZ_ENOMEM, r->path, "out of memory loading %" PRIu64 " bytes", r->size);
    }
    uint64_t got;
    int err = read_all(fd, r->buf, r->size, &got);
    close(fd);
    if (err) return ckpt_fail(e, BZ_EIO, r->path, "read failed: %s", strerror(err));
    if (got != r->size)
        return ckpt_fail(e, BZ_EIO, r->path, "file changed while reading (%" PRIu64 " of %" PRIu64 " bytes)", got,
                         r->size);
    return 0;
}

/* Size, magic, version, header_bytes, end marker, checksum: everything but the sections. */
static int check_frame(const ckpt_reader *r, bz_err *e)
{
    const unsigned char *b = r->buf;
    const char *p = r->path;
    if (r->size < CKPT_MIN_FILE)
        return ckpt_fail(e, BZ_EFORMAT, p, "truncated: %" PRIu64 " bytes, a checkpoint has at least %u", r->size,
                         CKPT_MIN_FILE);
    if (memcmp(b, CKPT_MAGIC, CKPT_MAGIC_LEN) != 0)
        return ckpt_fail(e, BZ_EFORMAT, p, "not a boltzd checkpoint (bad magic at byte 0)");
    uint32_t version = get_u32(b + OFF_VERSION);
    if (version > CKPT_VERSION)
        return ckpt_fail(e, BZ_EFORMAT, p, "written by a newer boltzd (format version %" PRIu32
                         ", this one reads up to %d)", version, CKPT_VERSION);
    if (version == 0)
        return ckpt_fail(e, BZ_EFORMAT, p, "invalid format version 0 at byte %d", OFF_VERSION);
    uint32_t hb = get_u32(b + OFF_HEADER_BYTES);
    uint64_t max_hb = r->size - CKPT_TRAILER_BYTES;
    if (hb < CKPT_HEADER_BYTES || hb > max_hb)
        return ckpt_fail(e, BZ_EFORMAT, p, "header size at byte %d is %" PRIu32 ", must be between %u and %" PRIu64,
                         OFF_HEADER_BYTES, hb, CKPT_HEADER_BYTES, max_hb);
    uint64_t end_at = r->size - CKPT_END_LEN;
    if (memcmp(b + end_at, CKPT_END, CKPT_END_LEN) != 0)
        return ckpt_fail(e, BZ_EFORMAT, p, "truncated or corrupted: no end marker at byte %" PRIu64, end_at);
    uint64_t crc_at = r->size - CKPT_TRAILER_BYTES;
    uint32_t stored = get_u32(b + crc_at);
    uint32_t computed = (uint32_t)crc_update(crc32(0, Z_NULL, 0), b, crc_at);
    if (stored != computed)
        return ckpt_fail(e, BZ_EFORMAT, p, "checksum mismatch: stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
                         " (file corrupted)", stored, computed);
    return 0;
}

static const ckpt_section *reader_lookup(const ckpt_reader *r, const char *tag, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(r->sec[i].tag, tag, CKPT_TAG_LEN) == 0) return &r->sec[i];
    return NULL;
}

/* One section head at *off (which leaves at least CKPT_SECTION_HEAD bytes before end). */
static int parse_section(ckpt_reader *r, uint32_t i, uint64_t *off, uint64_t end, bz_err *e)
{
    const unsigned char *b = r->buf + *off;
    const char *p = r->path;
    if (memchr(b, '\0', CKPT_TAG_LEN) == NULL)
        return ckpt_fail(e, BZ_EFORMAT, p,
                         "section %" PRIu32 " at byte %" PRIu64 ": tag not NUL-terminated within %d bytes",
                         i, *off, CKPT_TAG_LEN);
    if (b[0] == '\0') return ckpt_fail(e, BZ_EFORMAT, p, "section %" PRIu32 " at byte %" PRIu64 ": empty tag", i, *off);
    const char *tag = (const char *)b;
    if (reader_lookup(r, tag, i))
        return ckpt_fail(e, BZ_EFORMAT, p, "section '%s' at byte %" PRIu64 " appears twice", tag, *off);
    uint64_t bytes = get_u64(b + CKPT_TAG_LEN);
    uint64_t remain = end - *off - CKPT_SECTION_HEAD;
    if (bytes > remain)
        return ckpt_fail(e, BZ_EFORMAT, p, "section '%s' at byte %" PRIu64 " claims %" PRIu64 " bytes, only %" PRIu64
                         " remain", tag, *off, bytes, remain);
    memcpy(r->sec[i].tag, b, CKPT_TAG_LEN);
    r->sec[i].off = *off + CKPT_SECTION_HEAD;
    r->sec[i].bytes = bytes;
    *off = r->sec[i].off + bytes;
    return 0;
}

static int parse_sections(ckpt_reader *r, bz_err *e)
{
    const char *p = r->path;
    uint32_t n = get_u32(r->buf + OFF_N_SECTIONS);
    uint64_t off = get_u32(r->buf + OFF_HEADER_BYTES);
    uint64_t end = r->size - CKPT_TRAILER_BYTES;
    uint64_t room = (end - off) / CKPT_SECTION_HEAD;
    if (n > room)
        return ckpt_fail(e, BZ_EFORMAT, p, "header declares %" PRIu32 " sections, but the %" PRIu64
                         " bytes before the end marker hold at most %" PRIu64, n, end - off, room);
    r->sec = calloc(n ? n : 1, sizeof *r->sec);
    if (!r->sec) return ckpt_fail(e, BZ_ENOMEM, p, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        if (end - off < CKPT_SECTION_HEAD)
            return ckpt_fail(e, BZ_EFORMAT, p, "header declares %" PRIu32 " sections, found only %" PRIu32
                             " before the trailer at byte %" PRIu64, n, i, end);
        int rc = parse_section(r, i, &off, end, e);
        if (rc) return rc;
    }
    if (off != end)
        return ckpt_fail(e, BZ_EFORMAT, p, "%" PRIu64 " bytes left over at byte %" PRIu64
                         " after the %" PRIu32 " sections the header declares", end - off, off, n);
    r->n = n;
    return 0;
}

static void decode_header(const unsigned char *b, ckpt_header *h)
{
    h->version = get_u32(b + OFF_VERSION);
    h->n_params = get_u64(b + OFF_N_PARAMS);
    h->spec_hash = get_u64(b + OFF_SPEC_HASH);
    h->method = to_i32(get_u32(b + OFF_METHOD));
    h->chain = to_i32(get_u32(b + OFF_CHAIN));
    h->step = to_i64(get_u64(b + OFF_STEP));
}

int ckpt_read_open(ckpt_reader **out, const char *path, ckpt_header *h, bz_err *e)
{
    if (!out || !path || !*path) return bz_fail(e, BZ_EINVAL, path, "ckpt_read_open: missing argument");
    *out = NULL;
    ckpt_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = dup_str(path))) {
        free(r);
        return bz_fail(e, BZ_ENOMEM, path, "%s: out of memory", path);
    }
    int rc = load_file(r, e);
    if (!rc) rc = check_frame(r, e);
    if (!rc) rc = parse_sections(r, e);
    if (rc) {
        ckpt_read_close(r);
        return rc;
    }
    if (h) decode_header(r->buf, h);
    *out = r;
    return 0;
}

const void *ckpt_find(const ckpt_reader *r, const char *tag, uint64_t *bytes)
{
    if (!r || !tag) return NULL;
    char full[2 * CKPT_TAG_LEN];
    if (r->prefix[0]) {
        snprintf(full, sizeof full, "%s%s", r->prefix, tag);
        tag = full;
    }
    const ckpt_section *s = reader_lookup(r, tag, r->n);
    if (!s) return NULL;
    if (bytes) *bytes = s->bytes;
    return r->buf + s->off;
}

int ckpt_get(ckpt_reader *r, const char *tag, void *data, uint64_t bytes, bz_err *e)
{
    if (!r || !tag) return bz_fail(e, BZ_EINVAL, NULL, "ckpt_get: missing argument");
    uint64_t have;
    const void *src = ckpt_find(r, tag, &have);
    if (!src) return ckpt_fail(e, BZ_EFORMAT, r->path, "checkpoint has no section '%s'", tag);
    if (have != bytes)
        return ckpt_fail(e, BZ_EFORMAT, r->path, "section '%s' holds %" PRIu64 " bytes, expected %" PRIu64, tag, have,
                         bytes);
    if (bytes) {
        if (!data) return ckpt_fail(e, BZ_EINVAL, r->path, "section '%s': no buffer for %" PRIu64 " bytes", tag, bytes);
        memcpy(data, src, (size_t)bytes);
    }
    return 0;
}

static int set_prefix(char *dst, const char *prefix, bz_err *e)
{
    size_t len = prefix ? strlen(prefix) : 0;
    if (len >= 8) return bz_fail(e, BZ_EINVAL, NULL, "checkpoint tag prefix '%s' is longer than 7 characters", prefix);
    memcpy(dst, prefix ? prefix : "", len);
    dst[len] = 0;
    return 0;
}

int ckpt_writer_prefix(ckpt_writer *w, const char *prefix, bz_err *e) { return set_prefix(w->prefix, prefix, e); }

int ckpt_reader_prefix(ckpt_reader *r, const char *prefix, bz_err *e) { return set_prefix(r->prefix, prefix, e); }

void ckpt_read_close(ckpt_reader *r)
{
    if (!r) return;
    free(r->buf);
    free(r->sec);
    free(r->path);
    free(r);
}
