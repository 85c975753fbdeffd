/* backend_select.h: choosing the compute backend for a job (spec "backend": auto | cpu | cuda).
 * auto uses CUDA when this binary has the CUDA backend and a device answers, else the CPU, and
 * says which in one line; cuda without a usable device is an error naming the reason. */
#ifndef BZ_BACKEND_SELECT_H
#define BZ_BACKEND_SELECT_H

#include <stddef.h>

#include "backend.h"
#include "spec.h"

int backend_open(const bz_spec *s, const nn_arch *a, const ds_data *d, be *out, char *note, size_t note_len,
                 bz_err *e);

#endif
