/* gpu_probe.cu: CUDA device discovery for the backend selection (DESIGN.md "The backend
 * interface"), `boltzd version` and /health: "is there a usable device", its name, and the
 * device list with memory. A missing or too-old driver counts as "no device". */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

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

extern "C" int gpu_device_name(int device, char *name, size_t len)
{
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
        cudaGetLastError();
        snprintf(name, len, "?");
        return -1;
    }
    snprintf(name, len, "%s", p.name);
    return 0;
}

/* name with the JSON specials escaped (device names have none in practice) */
static void json_escape(const char *in, char *out, size_t len)
{
    size_t k = 0;
    for (; *in && k + 3 < len; in++) {
        unsigned char ch = (unsigned char)*in;
        if (ch == '"' || ch == '\\') out[k++] = '\\', out[k++] = (char)ch;
        else if (ch >= 0x20) out[k++] = (char)ch;
    }
    out[k] = '\0';
}

/* One device's object into buf; its length, or -1 when it does not fit. */
static int describe_one(int dev, char *buf, size_t len)
{
    cudaDeviceProp p;
    char name[512] = "?";
    int major = 0, minor = 0;
    if (cudaGetDeviceProperties(&p, dev) == cudaSuccess) {
        json_escape(p.name, name, sizeof name);
        major = p.major, minor = p.minor;
    }
    size_t free_b = 0, total_b = 0;
    bool mem = cudaSetDevice(dev) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
    cudaGetLastError();
    const double mib = 1024.0 * 1024.0;
    int n;
    if (mem)
        n = snprintf(buf, len,
                     "{\"index\": %d, \"name\": \"%s\", \"compute_capability\": \"%d.%d\", \"memory_total_mib\": %.0f, "
                     "\"memory_free_mib\": %.0f}",
                     dev, name, major, minor, (double)total_b / mib, (double)free_b / mib);
    else
        n = snprintf(buf, len,
                     "{\"index\": %d, \"name\": \"%s\", \"compute_capability\": \"%d.%d\", \"memory_total_mib\": null, "
                     "\"memory_free_mib\": null}",
                     dev, name, major, minor);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

extern "C" int gpu_describe_devices(char *json, size_t len)
{
    if (len < 3) return -1;
    int count = gpu_device_count(NULL, 0);
    int prev = 0;
    bool restore = count > 0 && cudaGetDevice(&prev) == cudaSuccess;
    size_t k = 0;
    json[k++] = '[';
    int rc = count;
    for (int d = 0; d < count; d++) {
        if (d > 0) {
            if (k + 2 >= len) { rc = -1; break; }
            json[k++] = ',', json[k++] = ' ';
        }
        int n = describe_one(d, json + k, len - k - 1);
        if (n < 0) { rc = -1; break; }
        k += (size_t)n;
    }
    if (restore) cudaSetDevice(prev);
    cudaGetLastError();
    if (rc < 0) {
        snprintf(json, len, "[]");
        return -1;
    }
    json[k++] = ']';
    json[k] = '\0';
    return rc;
}
