/* test_resume.c: checkpoints continue a chain bit for bit on the CPU backend. For every method a
 * chain is run uninterrupted; a twin is stopped half-way (its final checkpoint written by the
 * runner), a third chain is loaded from that checkpoint and run to the end. The resumed records
 * (every observable except the wall-clock ones) and the final weights must equal the
 * uninterrupted run's exactly. Checkpoints of another spec, method or chain are refused. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "run.h"
#include "setup.h"
#include "testutil.h"

#define MAX_RECORDS 256

typedef struct collect {
    obs_record rec[MAX_RECORDS];
    int count;
    int64_t stop_at;     /* should_stop once the chain reaches this step (-1: never) */
    const smp_chain *chain;
    char ckpt[1024];     /* where on_checkpoint writes */
    int checkpoints;
} collect;

static int col_record(void *ctx, const obs_record *r, bz_err *e)
{
    (void)e;
    collect *c = ctx;
    cr_assert(c->count < MAX_RECORDS);
    c->rec[c->count++] = *r;
    return 0;
}

static int col_checkpoint(void *ctx, smp_chain *ch, bool final, bz_err *e)
{
    collect *c = ctx;
    c->checkpoints++;
    return final ? smp_chain_save(ch, c->ckpt, 42, e) : 0;
}

static bool col_stop(void *ctx)
{
    collect *c = ctx;
    return c->stop_at >= 0 && c->chain->step >= c->stop_at;
}

typedef struct job {
    bz_spec spec;
    ds_data d;
    nn_arch a;
    be b;
} job;

static void job_open(job *j, sampler_method m)
{
    const char *text_fmt =
        "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 16, \"classes\": 3, \"train\": 120, \"test\": 60, \"seed\": 4},"
        " \"model\": {\"hidden\": [7, 5], \"lambda\": 0.01},"
        " \"sampler\": {\"method\": \"%s\", %s \"steps\": 400, \"batch\": 16 %s},"
        " \"record\": {\"every\": 20}, \"diagnostics\": {\"noise_every\": %d, \"batches\": 8}}";
    const char *extra = m == SM_PL ? ", \"update_every\": 50, \"p_reinit\": 0.3" :
                        m == SM_HMC ? "" : m == SM_ADAM ? ", \"early_stopping\": {\"val_fraction\": 0.2, \"patience\": 100}" : "";
    const char *temp = m == SM_ADAM ? "" : "\"T\": 0.02,";
    char text[2048];
    snprintf(text, sizeof text, text_fmt, spec_method_name(m), temp, m == SM_HMC ? "" : extra, m == SM_PL ? 60 : 0);
    if (m == SM_HMC) { /* hmc has no batch */
        char *p = strstr(text, ", \"batch\": 16");
        memmove(p, p + strlen(", \"batch\": 16"), strlen(p + strlen(", \"batch\": 16")) + 1);
    }
    bz_err e;
    cr_assert_eq(spec_parse(text, &j->spec, &e), 0, "%s: %s", e.field, e.msg);
    cr_assert_eq(setup_load(&j->spec, &j->d, &j->a, &e), 0, "%s", e.msg);
    if (m == SM_ADAM) cr_assert_eq(setup_hold_out(&j->d, 0.2, &e), 0);
    cr_assert_eq(be_cpu_network(&j->b, &j->a, &j->d, j->spec.model.lambda, 16, &e), 0);
}

static void job_close(job *j)
{
    be_destroy(&j->b);
    ds_free(&j->d);
}

static void chain_fresh(smp_chain *c, job *j)
{
    bz_err e;
    cr_assert_eq(smp_chain_create(c, &j->spec, &j->b, 0, &e), 0);
    float *w = malloc(sizeof(float) * (size_t)j->a.n);
    nn_init_he(&j->a, w, j->spec.init.seed);
    j->b.ops->upload(j->b.ctx, c->w, w, j->a.n);
    free(w);
    cr_assert_eq(smp_chain_start(c, &e), 0, "%s", e.msg);
}

static int run_with(smp_chain *c, collect *col)
{
    col->chain = c;
    run_sink sink = {col, col_record, NULL, col_checkpoint, col_stop, NULL};
    bz_err e;
    return run_chain(c, &sink, &e);
}

/* Records equal except the wall-clock fields (t_wall, var_cost). */
static void assert_same_record(const obs_record *a, const obs_record *b)
{
    cr_assert_eq(a->step, b->step);
    for (int i = 0; i < OBS_COUNT; i++) {
        if (i == OBS_VAR_COST) continue;
        int same = (isnan(a->v[i]) && isnan(b->v[i])) || a->v[i] == b->v[i];
        cr_assert(same, "step %lld %s: %.17g vs %.17g", (long long)a->step, obs_names[i], a->v[i], b->v[i]);
    }
}

static void check_method(sampler_method m)
{
    char dir[256];
    cr_assert(tu_mkdtemp(dir, sizeof dir));
    job j;
    job_open(&j, m);
    /* uninterrupted */
    smp_chain full;
    chain_fresh(&full, &j);
    collect *ref = calloc(1, sizeof *ref);
    ref->stop_at = -1;
    snprintf(ref->ckpt, sizeof ref->ckpt, "%s/full.bzc", dir);
    cr_assert_eq(run_with(&full, ref), 0);
    float *w_ref = malloc(sizeof(float) * (size_t)j.a.n);
    j.b.ops->download(j.b.ctx, w_ref, full.w, j.a.n);
    int64_t end_step = full.step;
    smp_chain_destroy(&full);
    /* interrupted at 210 (between records) */
    smp_chain half;
    chain_fresh(&half, &j);
    collect *first = calloc(1, sizeof *first);
    first->stop_at = 210;
    snprintf(first->ckpt, sizeof first->ckpt, "%s/half.bzc", dir);
    cr_assert_eq(run_with(&half, first), BZ_ECANCELLED);
    cr_assert_eq(half.step, 210);
    smp_chain_destroy(&half);
    /* resumed */
    smp_chain rest;
    bz_err e;
    cr_assert_eq(smp_chain_create(&rest, &j.spec, &j.b, 0, &e), 0);
    cr_assert_eq(smp_chain_load(&rest, first->ckpt, 42, &e), 0, "%s", e.msg);
    cr_assert_eq(rest.step, 210);
    collect *second = calloc(1, sizeof *second);
    second->stop_at = -1;
    snprintf(second->ckpt, sizeof second->ckpt, "%s/rest.bzc", dir);
    cr_assert_eq(run_with(&rest, second), 0);
    cr_assert_eq(rest.step, end_step);
    /* The interrupted run's records up to 200 plus its stop record at 210, then the resumed
     * records from 220 on, must match the reference at the same steps. */
    int k = 0;
    for (int i = 0; i < ref->count; i++) {
        const obs_record *r = &ref->rec[i];
        const obs_record *got = NULL;
        for (int a = 0; a < first->count && !got; a++)
            if (first->rec[a].step == r->step) got = &first->rec[a];
        for (int b = 0; b < second->count && !got; b++)
            if (second->rec[b].step == r->step) got = &second->rec[b];
        cr_assert(got, "no record at step %lld after resume", (long long)r->step);
        assert_same_record(r, got);
        k++;
    }
    cr_assert(k >= 10);
    float *w_got = malloc(sizeof(float) * (size_t)j.a.n);
    j.b.ops->download(j.b.ctx, w_got, rest.w, j.a.n);
    cr_assert_eq(memcmp(w_ref, w_got, sizeof(float) * (size_t)j.a.n), 0, "final weights differ after resume");
    /* A checkpoint is bound to its spec (hash), method and chain. */
    smp_chain other;
    cr_assert_eq(smp_chain_create(&other, &j.spec, &j.b, 0, &e), 0);
    cr_assert_eq(smp_chain_load(&other, first->ckpt, 43, &e), BZ_EFORMAT);
    cr_assert(strstr(e.msg, "different job spec"), "%s", e.msg);
    smp_chain_destroy(&other);
    free(w_ref), free(w_got), free(ref), free(first), free(second);
    smp_chain_destroy(&rest);
    job_close(&j);
}

Test(resume, pl_bit_identical) { check_method(SM_PL); }
Test(resume, hmc_bit_identical) { check_method(SM_HMC); }
Test(resume, mbhmc_bit_identical) { check_method(SM_MBHMC); }
Test(resume, naive_pl_bit_identical) { check_method(SM_NAIVE_PL); }
Test(resume, sgld_bit_identical) { check_method(SM_SGLD); }
Test(resume, adam_bit_identical) { check_method(SM_ADAM); }

/* A truncated checkpoint and one from another method are refused with a clear error. */
Test(resume, bad_checkpoints_refused)
{
    char dir[256];
    cr_assert(tu_mkdtemp(dir, sizeof dir));
    job j;
    job_open(&j, SM_PL);
    smp_chain c;
    chain_fresh(&c, &j);
    char path[512];
    snprintf(path, sizeof path, "%s/c.bzc", dir);
    bz_err e;
    cr_assert_eq(smp_chain_save(&c, path, 42, &e), 0);
    size_t len;
    char *bytes = tu_read_file(path, &len);
    cr_assert(bytes);
    snprintf(path, sizeof path, "%s/short.bzc", dir);
    cr_assert_eq(tu_write_file(path, bytes, len / 2), 0);
    smp_chain d;
    cr_assert_eq(smp_chain_create(&d, &j.spec, &j.b, 0, &e), 0);
    cr_assert_eq(smp_chain_load(&d, path, 42, &e), BZ_EFORMAT);
    cr_assert(strstr(e.msg, "short.bzc"), "%s", e.msg);
    smp_chain_destroy(&d);
    /* the same file read by an hmc chain */
    job h;
    job_open(&h, SM_HMC);
    snprintf(path, sizeof path, "%s/c.bzc", dir);
    cr_assert_eq(smp_chain_create(&d, &h.spec, &h.b, 0, &e), 0);
    cr_assert_eq(smp_chain_load(&d, path, 42, &e), BZ_EFORMAT);
    cr_assert(strstr(e.msg, "another chain"), "%s", e.msg);
    smp_chain_destroy(&d);
    free(bytes);
    smp_chain_destroy(&c);
    job_close(&h);
    job_close(&j);
}
