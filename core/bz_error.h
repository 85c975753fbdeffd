/* bz_error.h: boltzd's status codes and the error record that carries a human-readable
 * message and, where it applies, the name of the offending field (spec key, file, byte).
 *
 * Convention: every fallible function returns 0 or a negative BZ_E* code; when it is given a
 * non-NULL bz_err it also fills in what went wrong, in words a user can act on. */
#ifndef BZ_ERROR_H
#define BZ_ERROR_H

#include <stdarg.h>

enum {
    BZ_OK = 0,
    BZ_EINVAL = -1,   /* invalid argument or spec value */
    BZ_ENOMEM = -2,   /* allocation failed */
    BZ_EIO = -3,      /* file missing, unreadable or unwritable */
    BZ_EFORMAT = -4,  /* file present but malformed (bad magic, shape, dtype, checksum) */
    BZ_ELIMIT = -5,   /* request exceeds a limit that protects the machine */
    BZ_ESTATE = -6,   /* operation not valid in the current state */
    BZ_EDIVERGED = -7,/* a chain produced a non-finite number */
    BZ_EBACKEND = -8, /* the compute backend failed or is absent */
    BZ_ECANCELLED = -9
};

typedef struct bz_err {
    int code;          /* the BZ_E* code, 0 when no error */
    char field[128];   /* dotted spec field, file name, or "" */
    char msg[512];     /* full sentence for the user */
} bz_err;

/* Short name of a status code ("invalid argument", ...). Never NULL. */
const char *bz_strerror(int code);

/* Fill e (if non-NULL) and return code. fmt is printf-style; field may be NULL. */
int bz_fail(bz_err *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reset an error record to "no error". */
void bz_err_clear(bz_err *e);

#endif
