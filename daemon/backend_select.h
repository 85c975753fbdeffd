/* backend_select.h: choosing the compute backend for a job (spec "backend": auto | cpu | cuda).
 * auto uses CUDA when this binary has the CUDA backend and a device answers, else the CPU, and
 * says which in one line; cuda without a usable device is an error naming the reason. */
#ifndef BZ_BACKEND_SELECT_H
#define BZ_BACKEND_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "spec.h"

/* Open the backend the spec asks for on CUDA device `device` (ignored for the CPU). note gets
 * one line for the log ("backend auto: CUDA device 0 (NVIDIA H100 80GB HBM3)", or the CPU and
 * why). "cuda" without a device, or a job that does not fit the device's memory, fails with a
 * message a person can act on; the spec's precision "tf32" turns on TF32 GEMMs on CUDA. */
int backend_open_on(const bz_spec *s, const nn_arch *a, const ds_data *d, int device, be *out, char *note,
                    size_t note_len, bz_err *e);

/* The K handles of a batched job (one per chain). On CUDA, for a method that steps around one
 * mini-batch gradient (pl, sgld), one handle group (be_cuda_network_group: shared data, batched
 * GEMMs for all chains) and *grouped = true: the caller runs the group in lockstep
 * (mc_set_lockstep). Otherwise K separate handles, stepped in threads (*grouped = false).
 * BOLTZ_BATCH_MODE=threads in the environment keeps CUDA on separate handles too ("lockstep" or
 * unset: the default; any other value fails with BZ_EINVAL naming the variable). */
int backend_open_group(const bz_spec *s, const nn_arch *a, const ds_data *d, int device, int32_t K, be *out,
                       bool *grouped, char *note, size_t note_len, bz_err *e);

/* backend_open_on device 0 (the CLI's `boltzd run`). */
int backend_open(const bz_spec *s, const nn_arch *a, const ds_data *d, be *out, char *note, size_t note_len,
                 bz_err *e);

/* The CUDA device of worker `worker` (0-based) under the daemon's --devices list ("0,1": worker i
 * gets the (i mod 2)-th entry); an empty list spreads workers over every device (i mod count, 0
 * when there is none). Returns the device, or BZ_EINVAL with e naming the bad entry. */
int backend_worker_device(const char *devices, int worker, bz_err *e);

#endif
