/* gpu_probe.h: the CUDA devices this process can use, for backend selection, `boltzd version` and
 * /health. Plain C interface; a missing or too-old driver counts as "no device". */
#ifndef BZ_GPU_PROBE_H
#define BZ_GPU_PROBE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable devices; 0 when none. why (optional) gets the driver's words. */
int gpu_device_count(char *why, size_t why_len);

/* The device's name ("NVIDIA H100 80GB HBM3"); 0, or -1 with "?" when it cannot be read. */
int gpu_device_name(int device, char *name, size_t len);

/* /health's device list as a JSON array, one object per device:
 *   {"index": 0, "name": "...", "compute_capability": "9.0", "memory_total_mib": 81079,
 *    "memory_free_mib": 80500}
 * ("[]" when there is none). Reading free memory makes the process's context on each device (the
 * workers use the same one). Returns the number of devices, or -1 when json is too small. */
int gpu_describe_devices(char *json, size_t len);

#ifdef __cplusplus
}
#endif

#endif
