/* fuzz_util.h: what the libFuzzer targets share. Each target defines LLVMFuzzerTestOneInput;
 * it is linked either with libFuzzer (-fsanitize=fuzzer, scripts/fuzz) or with replay.c, which
 * feeds it the files of the corpus and of fuzz/regressions/ (CTest, any compiler). */
#ifndef BZ_FUZZ_UTIL_H
#define BZ_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The loaders under test take a path: fz_as_file writes data to an in-memory file (memfd) and
 * returns a path that opens it ("/proc/self/fd/N"), valid until the next call with the same slot
 * (0..3). Aborts if the file cannot be made (that is the harness failing, not the target). */
const char *fz_as_file(int slot, const void *data, size_t size);

/* A private scratch folder, made once (under $TMPDIR or /tmp) and removed at exit. */
const char *fz_scratch_dir(void);

/* Where a harness stores a value computed from data it wants read (ASan checks every access). */
extern volatile unsigned fz_sink;

/* Stop with a message: an oracle of the harness failed (libFuzzer reports it as a crash). */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
