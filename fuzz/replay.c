/* replay.c: a main() for a fuzz target without libFuzzer: runs LLVMFuzzerTestOneInput once on
 * every file named on the command line or found (sorted, dotfiles and README* skipped) in a
 * folder named there. A folder that does not exist is skipped, so fuzz/regressions/TARGET may be
 * absent. CTest runs each target over its seed corpus and its regression inputs this way, in
 * the ordinary and the sanitizer builds: a crash once found stays fixed. Under AddressSanitizer it
 * also refuses, as libFuzzer does, any single allocation over BZ_FUZZ_MALLOC_LIMIT_MB (2048):
 * an input that makes a reader allocate gigabytes from a lying header is a finding too. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#endif

#ifdef REPLAY_ASAN
/* From the sanitizer runtime (sanitizer/allocator_interface.h, which GCC does not ship). */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static size_t malloc_limit;

static void on_malloc(const volatile void *p, size_t size)
{
    (void)p;
    if (size > malloc_limit) {
        fprintf(stderr, "replay: out-of-memory: one allocation of %zu bytes (limit %zu MB, like libFuzzer's "
                        "-malloc_limit_mb)\n", size, malloc_limit >> 20);
        abort();
    }
}

static void on_free(const volatile void *p) { (void)p; }

static void limit_mallocs(void)
{
    const char *v = getenv("BZ_FUZZ_MALLOC_LIMIT_MB");
    malloc_limit = (size_t)(v && atol(v) > 0 ? atol(v) : 2048) << 20;
    __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}
#else
static void limit_mallocs(void) {}
#endif

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            unsigned char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "replay: out of memory reading %s\n", path);
        return -1;
    }
    /* libFuzzer hands over an exact-size copy; so does this (ASan sees overreads). */
    unsigned char *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_dir(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !strncmp(de->d_name, "README", 6)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (!rc && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path)) rc = -1;
            else (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    limit_mallocs();
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int count = 0, rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) rc = run_dir(argv[i], &count);
        else if (stat(argv[i], &st) == 0) rc = run_file(argv[i]) ? -1 : (count++, 0);
        else if (errno != ENOENT) rc = -1;
    }
    if (rc) return 1;
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replay: %d inputs ran clean\n", count);
    return 0;
}
