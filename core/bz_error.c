/* bz_error.c: status-code names and the helper that fills a bz_err. */
#include "bz_error.h"

#include <stdio.h>
#include <string.h>

const char *bz_strerror(int code)
{
    switch (code) {
    case BZ_OK: return "ok";
    case BZ_EINVAL: return "invalid argument";
    case BZ_ENOMEM: return "out of memory";
    case BZ_EIO: return "input/output error";
    case BZ_EFORMAT: return "malformed file";
    case BZ_ELIMIT: return "limit exceeded";
    case BZ_ESTATE: return "invalid state";
    case BZ_EDIVERGED: return "chain diverged";
    case BZ_EBACKEND: return "backend error";
    case BZ_ECANCELLED: return "cancelled";
    default: return "unknown error";
    }
}

void bz_err_clear(bz_err *e)
{
    if (!e) return;
    e->code = 0;
    e->field[0] = '\0';
    e->msg[0] = '\0';
}

int bz_fail(bz_err *e, int code, const char *field, const char *fmt, ...)
{
    if (!e) return code;
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}
