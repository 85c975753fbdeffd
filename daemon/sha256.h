/* sha256.h: SHA-256 (FIPS 180-4), small and self-contained: the daemon keeps only salted hashes
 * of API tokens and the stack has no crypto library. Streaming (init/update/final) and one-shot. */
#ifndef BZ_SHA256_H
#define BZ_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_BYTES]);
void sha256(const void *data, size_t n, uint8_t out[SHA256_BYTES]);

#endif
