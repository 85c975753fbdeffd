/* ckpt.h: boltzd's versioned binary checkpoint format.
 *
 * Layout (all integers little-endian):
 *   header   "BZCKPT\r\n" (8 bytes), u32 version (1), u32 header_bytes, u64 n_params,
 *            u64 spec_hash, i32 method, i32 chain, i64 step, u32 n_sections, u32 reserved
 *   sections n_sections times: char tag[16] (NUL-padded), u64 bytes, then bytes of data
 *   trailer  u32 CRC-32 (zlib) of everything before it, then "BZEND\0\0\0"
 * A reader loads and verifies the whole file first (magic, version, sizes, section bounds,
 * checksum), so a truncated or corrupted file is an error naming the byte offset and what is
 * wrong, never a crash. Writers go to PATH.tmp, fsync, then rename: a crash leaves the old file.
 * Sections hold whatever a sampler needs (weights, momenta, masses, RNG states, counters). */
#ifndef BZ_CKPT_H
#define BZ_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "bz_error.h"

#define CKPT_VERSION 1
#define CKPT_TAG_LEN 16

typedef struct ckpt_header {
    uint32_t version;
    uint64_t n_params;
    uint64_t spec_hash;  /* spec_hash() of the normalised spec the chain runs */
    int32_t method;      /* sampler_method */
    int32_t chain;       /* chain index within a sweep */
    int64_t step;        /* completed steps */
} ckpt_header;

typedef struct ckpt_writer ckpt_writer;
typedef struct ckpt_reader ckpt_reader;

int ckpt_write_open(ckpt_writer **out, const char *path, const ckpt_header *h, bz_err *e);
/* Append a section; tag at most 15 characters, unique within the file. */
int ckpt_put(ckpt_writer *w, const char *tag, const void *data, uint64_t bytes, bz_err *e);
/* Write the trailer, fsync, rename PATH.tmp -> PATH. Frees w whatever happens. */
int ckpt_write_close(ckpt_writer *w, bz_err *e);
/* Drop an unfinished write (removes PATH.tmp). */
void ckpt_write_abort(ckpt_writer *w);

/* Read and verify a whole file; *h receives the header. */
int ckpt_read_open(ckpt_reader **out, const char *path, ckpt_header *h, bz_err *e);
/* Copy section tag into data, which must be exactly bytes long; a missing section or a size
 * mismatch is BZ_EFORMAT naming the tag and both sizes. */
int ckpt_get(ckpt_reader *r, const char *tag, void *data, uint64_t bytes, bz_err *e);
/* Pointer to a section's bytes inside the reader (valid until close), NULL when absent. */
const void *ckpt_find(const ckpt_reader *r, const char *tag, uint64_t *bytes);
void ckpt_read_close(ckpt_reader *r);

/* Prefix (at most 7 characters, "" for none) put before every tag that ckpt_put writes, or that
 * ckpt_get / ckpt_find look up, from now on: several chains share one file as "c0/w", "c1/w", ...
 * (multichain.c). The whole tag, prefix included, must fit CKPT_TAG_LEN - 1 characters. */
int ckpt_writer_prefix(ckpt_writer *w, const char *prefix, bz_err *e);
int ckpt_reader_prefix(ckpt_reader *r, const char *prefix, bz_err *e);

/* 64-bit FNV-1a of a byte string (spec hashes). */
uint64_t ckpt_hash64(const void *data, size_t len);

#endif
