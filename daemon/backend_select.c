/* backend_select.c: spec "backend" -> a be handle (see backend_select.h). */
#include "backend_select.h"

#include <stdio.h>
#include <string.h>

#ifdef BOLTZ_HAVE_CUDA
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

int backend_open(const bz_spec *s, const nn_arch *a, const ds_data *d, be *out, char *note, size_t note_len,
                 bz_err *e)
{
    char why[256] = "";
    const int32_t max_batch = s->sampler.batch > 0 ? s->sampler.batch : 1;
    if (!strcmp(s->backend, "cuda") || !strcmp(s->backend, "auto")) {
        int n = cuda_devices(why, sizeof why);
        if (n > 0) /* The CUDA backend's numerics land with their own issue; until then say so. */
            snprintf(why, sizeof why, "%d CUDA device(s) found, but the CUDA sampler backend is not built yet", n);
        if (!strcmp(s->backend, "cuda"))
            return bz_fail(e, BZ_EBACKEND, "backend", "backend \"cuda\" is not available: %s; use \"auto\" or \"cpu\"",
                           why);
        snprintf(note, note_len, "backend auto: using the CPU (%s)", why);
    } else {
        snprintf(note, note_len, "backend cpu");
    }
    return be_cpu_network(out, a, d, s->model.lambda, max_batch, e);
}
