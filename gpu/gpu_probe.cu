/* gpu_probe.cu: CUDA device discovery for the backend selection (DESIGN.md "The backend
 * interface"). The full CUDA backend comes with its own issue; until then this file only answers
 * "is there a usable device", treating a missing or too-old driver as "no device". */
#include <cuda_runtime.h>
#include <stdio.h>

#include "gpu_probe.h"

extern "C" int gpu_device_count(char *why, size_t why_len)
{
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        if (why && why_len) snprintf(why, why_len, "%s", cudaGetErrorString(rc));
        cudaGetLastError(); /* clear the sticky error */
        return 0;
    }
    if (why && why_len) snprintf(why, why_len, "%d device(s)", n);
    return n;
}
