/* fuzz_ckpt.c: the checkpoint loader: ckpt_read_open (core/ckpt.c: frame, checksum, sections)
 * and, behind it, what a resuming job does with a checkpoint: smp_chain_load into a small chain
 * of each sampler family (core/sampler.c and the samplers' load functions), then one step and
 * one observation of the loaded state.
 *
 * Input: two control bytes, then the file. Byte 0 picks the chain (pl, hmc, sgld, adam,
 * naive_pl, mbhmc); bit 0 of byte 1 asks the harness to write a correct CRC-32 into the
 * trailer first (otherwise almost every mutation stops at the checksum). The seed corpus holds
 * real checkpoints of these chains, written by this harness when BZ_FUZZ_WRITE_SEEDS=DIR is set
 * (scripts/fuzz --seeds). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "backend.h"
#include "ckpt.h"
#include "dataset.h"
#include "fuzz_util.h"
#include "nn.h"
#include "sampler.h"
#include "setup.h"
#include "spec.h"

#define SPEC_HASH 0x5eed5eedu
#define CKPT_TRAILER 12 /* u32 CRC-32, "BZEND\0\0\0" */

typedef struct job {
    const char *method;
    const char *extra;   /* method parameters */
    bz_spec spec;
    ds_data d;
    nn_arch a;
    be b;
    int ok;
} job;

static job jobs[] = {
    {.method = "pl", .extra = "\"T\": 0.02, \"batch\": 16, \"update_every\": 5, \"p_reinit\": 0.3"},
    {.method = "hmc", .extra = "\"T\": 0.02"},
    {.method = "sgld", .extra = "\"T\": 0.02, \"batch\": 16"},
    {.method = "adam", .extra = "\"batch\": 16"},
    {.method = "naive_pl", .extra = "\"T\": 0.02, \"batch\": 16"},
    {.method = "mbhmc", .extra = "\"T\": 0.02, \"batch\": 16"},
};
#define N_JOBS (sizeof jobs / sizeof jobs[0])

static void job_open(job *j)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 12, \"classes\": 3, \"train\": 60, \"test\": 30, \"seed\": 4},"
             " \"model\": {\"hidden\": [5], \"lambda\": 0.01},"
             " \"sampler\": {\"method\": \"%s\", %s, \"steps\": 40},"
             " \"record\": {\"every\": 10}}",
             j->method, j->extra);
    bz_err e;
    if (spec_parse(text, &j->spec, &e)) fz_fail("harness spec for %s: %s: %s", j->method, e.field, e.msg);
    if (setup_load(&j->spec, &j->d, &j->a, &e)) fz_fail("harness data for %s: %s", j->method, e.msg);
    if (be_cpu_network(&j->b, &j->a, &j->d, j->spec.model.lambda, 16, &e)) fz_fail("harness backend: %s", e.msg);
    j->ok = 1;
}

/* A fresh chain of job j, started from He weights and run a few steps (for the seeds). */
static void chain_fresh(job *j, smp_chain *c)
{
    bz_err e;
    if (smp_chain_create(c, &j->spec, &j->b, 0, &e)) fz_fail("smp_chain_create: %s", e.msg);
    float *w = malloc(sizeof(float) * (size_t)j->a.n);
    if (!w) fz_fail("out of memory");
    nn_init_he(&j->a, w, j->spec.init.seed);
    j->b.ops->upload(j->b.ctx, c->w, w, j->a.n);
    free(w);
    if (smp_chain_start(c, &e)) fz_fail("smp_chain_start %s: %s", j->method, e.msg);
    for (int i = 0; i < 7; i++)
        if (smp_chain_step(c, &e)) fz_fail("smp_chain_step %s: %s", j->method, e.msg);
}

static void write_seeds(const char *dir)
{
    for (size_t i = 0; i < N_JOBS; i++) {
        smp_chain c;
        chain_fresh(&jobs[i], &c);
        char tmp[1024], out[1024];
        snprintf(tmp, sizeof tmp, "%s/chain.bzc", fz_scratch_dir());
        bz_err e;
        if (smp_chain_save(&c, tmp, SPEC_HASH, &e)) fz_fail("smp_chain_save: %s", e.msg);
        smp_chain_destroy(&c);
        FILE *f = fopen(tmp, "rb");
        snprintf(out, sizeof out, "%s/%s.bzc", dir, jobs[i].method);
        FILE *g = fopen(out, "wb");
        if (!f || !g) fz_fail("cannot write seed %s", out);
        fputc((int)i, g);
        fputc(1, g);
        int ch;
        while ((ch = fgetc(f)) != EOF) fputc(ch, g);
        fclose(f);
        fclose(g);
        fprintf(stderr, "fuzz_ckpt: wrote %s\n", out);
    }
}

static void init_once(void)
{
    static int done;
    if (done) return;
    done = 1;
    openblas_set_num_threads(1);
    for (size_t i = 0; i < N_JOBS; i++) job_open(&jobs[i]);
    const char *seeds = getenv("BZ_FUZZ_WRITE_SEEDS");
    if (seeds && seeds[0]) write_seeds(seeds);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 2) return 0;
    job *j = &jobs[data[0] % N_JOBS];
    int fix_crc = data[1] & 1;
    data += 2, size -= 2;
    unsigned char *file = malloc(size ? size : 1);
    if (!file) return 0;
    memcpy(file, data, size);
    if (fix_crc && size >= CKPT_TRAILER) {
        size_t at = size - CKPT_TRAILER;
        put_u32(file + at, (uint32_t)crc32(crc32(0, Z_NULL, 0), file, (uInt)at));
    }
    const char *path = fz_as_file(0, file, size);
    free(file);

    bz_err e;
    bz_err_clear(&e);
    ckpt_reader *r = NULL;
    ckpt_header h;
    if (ckpt_read_open(&r, path, &h, &e) == 0) {
        static const char *tags[] = {"chain", "rng_host", "rng_noise", "w", "w0", "g", "pl_counters", "pl_held", "hmc", "adam"};
        for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
            uint64_t bytes = 0;
            const unsigned char *p = ckpt_find(r, tags[i], &bytes);
            if (p && bytes) { /* the section must lie inside the loaded file */
                fz_sink = (unsigned)(p[0] ^ p[bytes - 1]);
            }
        }
        double one;
        (void)ckpt_get(r, "chain", &one, sizeof one, &e);
        ckpt_read_close(r);
    } else if (!e.msg[0]) {
        fz_fail("ckpt_read_open failed without saying why");
    }

    smp_chain c;
    if (smp_chain_create(&c, &j->spec, &j->b, 0, &e)) fz_fail("smp_chain_create: %s", e.msg);
    if (smp_chain_load(&c, path, SPEC_HASH, &e) == 0) {
        /* A checkpoint that loads must give a chain that can go on: any error is fine (a diverged
         * or refused state), a crash or undefined behaviour is not. */
        obs_record rec;
        if (smp_chain_step(&c, &e) == 0) (void)smp_chain_observe(&c, true, &rec, &e);
    }
    smp_chain_destroy(&c);
    return 0;
}
