/* backend_select.c: spec "backend" -> a be handle (see backend_select.h). */
#include "backend_select.h"

#include "sampler.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BOLTZ_HAVE_CUDA
#include "be_cuda.h"
#include "gpu_probe.h"
#endif

/* Number of CUDA devices and the driver's words; 0 when this binary has no CUDA backend. */
static int cuda_devices(char *why, size_t len)
{
#ifdef BOLTZ_HAVE_CUDA
    return gpu_device_count(why, len);
#else
    snprintf(why, len, "this boltzd was built without the CUDA backend");
    return 0;
#endif
}

static int32_t max_batch_of(const bz_spec *s) { return s->sampler.batch > 0 ? s->sampler.batch : 1; }

static bool wants_tf32(const bz_spec *s) { return !strcmp(s->precision, "tf32"); }

#ifdef BOLTZ_HAVE_CUDA
static int open_cuda(const bz_spec *s, const nn_arch *a, const ds_data *d, int device, be *out, char *note,
                     size_t note_len, bz_err *e)
{
    be_cuda_opts o;
    be_cuda_default_opts(&o);
    o.device = device;
    o.tf32 = wants_tf32(s);
    int rc = be_cuda_network(out, a, d, s->model.lambda, max_batch_of(s), &o, e);
    if (rc) return rc;
    char name[256];
    gpu_device_name(device, name, sizeof name);
    snprintf(note, note_len, "backend %s: CUDA device %d (%s), %s%s", s->backend, device, name,
             o.tf32 ? "TF32 tensor cores" : "float32", o.graphs ? "" : ", graphs off");
    return 0;
}
#endif

int backend_open_on(const bz_spec *s, const nn_arch *a, const ds_data *d, int device, be *out, char *note,
                    size_t note_len, bz_err *e)
{
    char why[256] = "";
    const bool want_cuda = !strcmp(s->backend, "cuda"), want_auto = !strcmp(s->backend, "auto");
    if (want_cuda || want_auto) {
        int n = cuda_devices(why, sizeof why);
#ifdef BOLTZ_HAVE_CUDA
        if (n > 0) return open_cuda(s, a, d, device, out, note, note_len, e);
#else
        (void)n;
        (void)device;
#endif
        if (want_cuda)
            return bz_fail(e, BZ_EBACKEND, "backend",
                           "backend \"cuda\" is not available: no CUDA device (%s); use \"auto\" or \"cpu\"", why);
        snprintf(note, note_len, "backend auto: using the CPU (no CUDA device: %s)%s", why,
                 wants_tf32(s) ? "; precision tf32 applies to CUDA only" : "");
    } else {
        snprintf(note, note_len, "backend cpu%s", wants_tf32(s) ? " (precision tf32 applies to CUDA only)" : "");
    }
    return be_cpu_network(out, a, d, s->model.lambda, max_batch_of(s), e);
}

/* BOLTZ_BATCH_MODE: unset or empty, "lockstep" (the default) or "threads"; anything else is an
 * error naming the variable, so a typo never silently picks the other mode. */
static int batch_mode_threads(bool *threads, bz_err *e)
{
    const char *mode = getenv("BOLTZ_BATCH_MODE");
    *threads = mode && !strcmp(mode, "threads");
    if (!mode || !*mode || *threads || !strcmp(mode, "lockstep")) return 0;
    return bz_fail(e, BZ_EINVAL, "BOLTZ_BATCH_MODE",
                   "environment BOLTZ_BATCH_MODE=\"%s\": give \"lockstep\" (the default) or \"threads\"", mode);
}

#ifdef BOLTZ_HAVE_CUDA
/* Lockstep on a CUDA handle group, unless threads were asked for or the method takes other
 * gradients inside a step (hmc). */
static bool lockstep_wanted(const bz_spec *s, bool threads)
{
    return !threads && smp_lookup(s->sampler.method)->step_pre != NULL;
}

static int open_cuda_group(const bz_spec *s, const nn_arch *a, const ds_data *d, int device, int32_t K, be *out,
                           char *note, size_t note_len, bz_err *e)
{
    be_cuda_opts o;
    be_cuda_default_opts(&o);
    o.device = device;
    o.tf32 = wants_tf32(s);
    int rc = be_cuda_network_group(out, K, a, d, s->model.lambda, max_batch_of(s), &o, e);
    if (rc) return rc;
    char name[256];
    gpu_device_name(device, name, sizeof name);
    snprintf(note, note_len, "backend %s: CUDA device %d (%s), %s, %d chains in lockstep with batched GEMMs",
             s->backend, device, name, o.tf32 ? "TF32 tensor cores" : "float32", (int)K);
    return 0;
}
#endif

int backend_open_group(const bz_spec *s, const nn_arch *a, const ds_data *d, int device, int32_t K, be *out,
                       bool *grouped, char *note, size_t note_len, bz_err *e)
{
    *grouped = false;
    bool threads;
    int brc = batch_mode_threads(&threads, e);
    if (brc) return brc;
#ifdef BOLTZ_HAVE_CUDA
    char why[256];
    const bool cuda = !strcmp(s->backend, "cuda") || !strcmp(s->backend, "auto");
    if (cuda && lockstep_wanted(s, threads) && cuda_devices(why, sizeof why) > 0) {
        int rc = open_cuda_group(s, a, d, device, K, out, note, note_len, e);
        *grouped = rc == 0;
        return rc;
    }
#else
    (void)threads;
#endif
    for (int32_t k = 0; k < K; k++) {
        int rc = backend_open_on(s, a, d, device, &out[k], note, note_len, e);
        if (rc) {
            for (int32_t j = 0; j < k; j++) be_destroy(&out[j]);
            return rc;
        }
    }
    return 0;
}

int backend_open(const bz_spec *s, const nn_arch *a, const ds_data *d, be *out, char *note, size_t note_len,
                 bz_err *e)
{
    return backend_open_on(s, a, d, 0, out, note, note_len, e);
}

/* Entries of a comma-separated device list into out (at most cap); count, or -1 at a bad entry
 * (its position in *bad). */
static int parse_devices(const char *list, int *out, int cap, int *bad)
{
    int count = 0, pos = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ') p++;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 1024 || !isdigit((unsigned char)*p)) {
            *bad = pos;
            return -1;
        }
        if (count < cap) out[count++] = (int)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p) {
            *bad = pos;
            return -1;
        }
        pos++;
    }
    return count;
}

int backend_worker_device(const char *devices, int worker, bz_err *e)
{
    int list[64], bad = 0;
    int k = devices ? parse_devices(devices, list, 64, &bad) : 0;
    if (k < 0)
        return bz_fail(e, BZ_EINVAL, "devices",
                       "--devices \"%s\": entry %d is not a device number; give a list such as \"0,1\"", devices,
                       bad + 1);
    if (worker < 0) worker = 0;
    if (k > 0) return list[worker % k];
    char why[256];
    int n = cuda_devices(why, sizeof why);
    return n > 0 ? worker % n : 0;
}
