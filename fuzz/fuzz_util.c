/* fuzz_util.c: see fuzz_util.h. */
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_SLOTS 4

volatile unsigned fz_sink;

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz oracle failed: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

const char *fz_as_file(int slot, const void *data, size_t size)
{
    static int fds[N_SLOTS] = {-1, -1, -1, -1};
    static char paths[N_SLOTS][64];
    if (slot < 0 || slot >= N_SLOTS) fz_fail("fz_as_file: bad slot %d", slot);
    if (fds[slot] < 0) {
        fds[slot] = memfd_create("boltzd-fuzz", MFD_CLOEXEC);
        if (fds[slot] < 0) fz_fail("memfd_create: %s", strerror(errno));
        snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
    }
    int fd = fds[slot];
    if (ftruncate(fd, 0)) fz_fail("ftruncate: %s", strerror(errno));
    size_t off = 0;
    while (off < size) {
        ssize_t n = pwrite(fd, (const char *)data + off, size - off, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fz_fail("pwrite: %s", strerror(errno));
        off += (size_t)n;
    }
    return paths[slot];
}

static char scratch[512];

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void scratch_cleanup(void)
{
    if (scratch[0]) rm_tree(scratch);
}

const char *fz_scratch_dir(void)
{
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/boltzd-fuzz-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(scratch)) fz_fail("mkdtemp %s: %s", scratch, strerror(errno));
        atexit(scratch_cleanup);
    }
    return scratch;
}
