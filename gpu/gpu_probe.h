/* gpu_probe.h: how many CUDA devices this process can use (0 when none or no driver). */
#ifndef BZ_GPU_PROBE_H
#define BZ_GPU_PROBE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable devices; 0 when none. why (optional) gets the driver's words. */
int gpu_device_count(char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif
