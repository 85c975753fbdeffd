/* testutil.h: small helpers shared by the Criterion tests (temp dirs, file writing). */
#ifndef BZ_TESTUTIL_H
#define BZ_TESTUTIL_H

#include <stddef.h>

/* A fresh empty directory under $TMPDIR (or /tmp); path written into buf. Returns buf. */
char *tu_mkdtemp(char *buf, size_t len);
/* Write len bytes to path; 0 on success. */
int tu_write_file(const char *path, const void *data, size_t len);
/* Read a whole file (NUL-terminated, length in *len if non-NULL); caller frees. NULL on error. */
char *tu_read_file(const char *path, size_t *len);

#endif
