/* bench_noise.c: mini-batch gradient noise along a pL chain (paper §III.1, ALGORITHM.md §5
 * "Diagnostics"): the raw data for bench/noise_stats.
 *
 *   bench_noise SPEC.json --out DIR [--at S1,S2,...] [--batches D] [--batch-sizes B1,B2,...]
 *               [--replicates R] [--components M] [--lags L] [--window STEP] [--seed S]
 *
 * Loads the spec as `boltzd run` does (CPU backend, the spec's first temperature) and starts its
 * pL chain, then:
 *
 * (a) at each step of --at (ascending; 0 is the start), at fixed w:
 *     - over all P examples (the backend's `moments` op, as core/noise_diag.c does): the mean data
 *       gradient gbar_i and the population variance v_i of the per-example data gradients; for a
 *       batch size B the variance of the mean of B examples drawn without replacement is
 *       s_i^2 = (v_i/B)(P-B)/(P-1);
 *     - M random components with v_i > 0 (own RNG);
 *     - for each batch size B of --batch-sizes (default: the spec's): D fresh mini-batches (indices
 *       without replacement, own RNG) and nu_i = (gB_i - gbar_i) / s_i, with gB_i the batch's mean
 *       data gradient from `moments` over the batch's rows (double sums, regulariser not involved)
 *       -> nu.npy (K, nB, D, M);
 *     - for the spec's batch size R - 1 more independent sets of D mini-batches (--replicates R,
 *       default 1), the same way -> nu_rep.npy (K, R-1, D, M): the spread of a KS fraction between
 *       batch sets (components share the batches, so it exceeds the binomial one);
 *     - for the spec's batch size also the way boltzd's diagnostics compute it: float32 g_B from
 *       grad_batch minus float32 grad U from grad_full (both include the regulariser lambda w/n,
 *       which cancels in the difference, with float rounding)  -> nu_f32.npy (K, D, M), same batches;
 *     - the per-example deviations d_mu,i = g_mu,i - gbar_i (`moments` of one row each)
 *       -> pex.npy (K, P, M): the exact population the mini-batch mean is drawn from; their mean
 *       square must reproduce v_i (a check of `moments`, in the JSON);
 *     - boltzd's own diagnostics (noise_diag_measure: D batches of the spec's size, up to 4096
 *       components) at the same w, with the chain's RNG saved and restored around the call.
 * (b) then along the dynamics: from --window (default: the last point) L consecutive pL steps.
 *     After each step chain->g is the float32 g_B(w_t) of that step's mini-batch, whose indices
 *     are still in chain->idx (smp_pl.c: the gradient computed after A, which the next step's
 *     first B reuses; checked here: grad_batch on chain->idx must reproduce chain->g bit for bit).
 *     For M random components chosen at the window's start, with gbar and s recomputed at every w_t:
 *       eta_t,i = (gB_i(w_t) - gbar_i(w_t)) / s_i(w_t)    (`moments` of chain->idx) -> eta.npy (L, M)
 *       the same from chain->g - grad U (float32, what the chain used)        -> eta_f32.npy (L, M)
 *     NaN where s_i(w_t) = 0. Per step also U, the loss and w2 -> dyn_obs.npy (L, 3).
 *
 * All measurement draws use an RNG of their own (--seed), so the chain is the one that
 * `boltzd run SPEC` (without diagnostics) produces, step for step. Prints a JSON summary (n, P,
 * batch, the points' observables, boltzd's diagnostics, the checks, the files) on stdout. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "noise_diag.h"
#include "npy.h"
#include "rng.h"
#include "sampler.h"
#include "setup.h"
#include "spec.h"

#define MAX_BS 16
#define MAX_POINTS 256

typedef struct options {
    const char *spec, *out;
    int64_t at[MAX_POINTS]; /* steps of the fixed-w measurements (ascending) */
    int64_t window;         /* step where the dynamics window starts (-1: after the last point) */
    int32_t K, D, M, L, nB, R;
    int32_t bs[MAX_BS];
    uint64_t seed;
} options;

static void usage(void)
{
    fprintf(stderr, "usage: bench_noise SPEC.json --out DIR [--at S1,S2,...] [--batches D] [--batch-sizes B1,B2,...]\n"
                    "                   [--replicates R] [--components M] [--lags L] [--window STEP] [--seed S]\n");
}

static int parse(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->window = -1;
    o->D = 256;
    o->M = 512;
    o->L = 2000;
    o->seed = 12345;
    o->R = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            o->spec = a;
            continue;
        }
        if (!v) return -1;
        i++;
        if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--batches")) o->D = atoi(v);
        else if (!strcmp(a, "--components")) o->M = atoi(v);
        else if (!strcmp(a, "--replicates")) o->R = atoi(v);
        else if (!strcmp(a, "--lags")) o->L = atoi(v);
        else if (!strcmp(a, "--window")) o->window = atoll(v);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--at")) {
            char buf[4096];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                if (o->K >= MAX_POINTS) return -1;
                o->at[o->K] = atoll(t);
                if (o->at[o->K] < 0 || (o->K && o->at[o->K] <= o->at[o->K - 1])) return -1;
                o->K++;
            }
        } else if (!strcmp(a, "--batch-sizes")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                if (o->nB >= MAX_BS) return -1;
                o->bs[o->nB++] = atoi(t);
            }
        } else return -1;
    }
    if (!o->spec || !o->out || o->D < 2 || o->M < 1 || o->L < 0 || o->R < 1) return -1;
    if (o->K == 0) o->at[o->K++] = 5000;
    return 0;
}

static int fail(const bz_err *e)
{
    fprintf(stderr, "bench_noise: %s\n", e->msg[0] ? e->msg : bz_strerror(e->code));
    return 1;
}

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    if (!p) {
        fprintf(stderr, "bench_noise: out of memory (%zu x %zu bytes)\n", count, size);
        exit(1);
    }
    return p;
}

static int cmpd(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The measurement state shared by (a) and (b). */
typedef struct meas {
    be *b;
    int64_t n;
    int32_t P;
    double *gbar, *v;   /* host, n: mean data gradient and population variance over the P examples */
    double *gs, *qs;    /* host, n: moments scratch */
    float *gfull, *gb;  /* host, n: float32 grad U and g_B (regulariser included) */
    float *dev;         /* backend, n */
    int32_t *perm, *idx;
    int64_t *comp;      /* M chosen components */
    int64_t n_elig;     /* components with v_i > 0 */
    bz_rng rng;
} meas;

/* Data-gradient sum (gs) and sum of squares (qs) over rows idx[0..rows) (NULL: all P). */
static void moments(meas *m, const float *w, const int32_t *idx, int64_t rows)
{
    memset(m->gs, 0, sizeof(double) * (size_t)m->n);
    memset(m->qs, 0, sizeof(double) * (size_t)m->n);
    m->b->ops->moments(m->b->ctx, w, idx, rows, m->gs, m->qs);
}

/* gbar_i and v_i = (1/P) sum_mu (g_mu,i - gbar_i)^2 over all P examples. */
static void exact_v(meas *m, const float *w)
{
    moments(m, w, NULL, m->P);
    for (int64_t i = 0; i < m->n; i++) {
        double gbar = m->gs[i] / m->P, v = m->qs[i] / m->P - gbar * gbar;
        m->gbar[i] = gbar;
        m->v[i] = v > 0 ? v : 0.0;
    }
}

/* Variance of the mean of B examples drawn without replacement from P. */
static double s2_of(double v, int32_t B, int32_t P)
{
    return P > 1 ? v / B * (double)(P - B) / (double)(P - 1) : 0.0;
}

/* Draw a mini-batch of B, and write the normalised noise nu = (g_B - gbar) / s of the M chosen
 * components into row (from the exact per-example moments of that batch). */
static void batch_nu(meas *m, const float *w, int32_t B, int32_t P, int32_t M, float *row)
{
    rng_sample_without_replacement(&m->rng, m->perm, P, B, m->idx);
    moments(m, w, m->idx, B);
    for (int32_t j = 0; j < M; j++) {
        int64_t i = m->comp[j];
        row[j] = (float)((m->gs[i] / B - m->gbar[i]) / sqrt(s2_of(m->v[i], B, P)));
    }
}

/* M distinct random components with v_i > 0 (partial Fisher-Yates); returns how many. */
static int32_t choose(meas *m, int32_t M)
{
    int64_t *elig = xcalloc((size_t)m->n, sizeof(int64_t)), cnt = 0;
    for (int64_t i = 0; i < m->n; i++)
        if (m->v[i] > 0) elig[cnt++] = i;
    m->n_elig = cnt;
    int64_t k = cnt < M ? cnt : M;
    rng_choose_i64(&m->rng, elig, cnt, k);
    for (int64_t j = 0; j < k; j++) m->comp[j] = elig[j];
    free(elig);
    return (int32_t)k;
}

static int32_t group_of(const be_layout *l, int64_t i)
{
    for (int32_t g = 0; g < l->n_groups; g++)
        if (i < l->off[g + 1]) return g;
    return l->n_groups - 1;
}

static int write_npy(const char *dir, const char *name, npy_dtype dt, int32_t ndim, const int64_t *shape,
                     const void *data, json_t *files)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    bz_err e;
    bz_err_clear(&e);
    if (npy_write(path, dt, ndim, shape, data, &e)) return fail(&e);
    json_array_append_new(files, json_string(name));
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse(argc, argv, &o)) {
        usage();
        return 2;
    }
    bz_err e;
    bz_err_clear(&e);
    bz_spec s;
    if (spec_parse_file(o.spec, &s, &e)) return fail(&e);
    if (s.sampler.method != SM_PL) {
        fprintf(stderr, "bench_noise: the spec's sampler.method must be pl\n");
        return 2;
    }
    ds_data d;
    nn_arch a;
    if (setup_load(&s, &d, &a, &e)) return fail(&e);
    const int32_t P = (int32_t)d.n_train;
    const int32_t Bspec = s.sampler.batch < P ? s.sampler.batch : P;
    int32_t qspec = -1, maxB = Bspec;
    for (int32_t k = 0; k < o.nB; k++)
        if (o.bs[k] == Bspec) qspec = k;
    if (qspec < 0) {
        if (o.nB >= MAX_BS) {
            fprintf(stderr, "bench_noise: too many batch sizes\n");
            return 2;
        }
        qspec = o.nB;
        o.bs[o.nB++] = Bspec;
    }
    for (int32_t k = 0; k < o.nB; k++) {
        if (o.bs[k] < 1 || o.bs[k] >= P) {
            fprintf(stderr, "bench_noise: batch size %d must be in 1..P-1 (P = %d)\n", o.bs[k], P);
            return 2;
        }
        if (o.bs[k] > maxB) maxB = o.bs[k];
    }
    be b;
    if (be_cpu_network(&b, &a, &d, s.model.lambda, maxB, &e)) return fail(&e);
    smp_chain c;
    if (smp_chain_create(&c, &s, &b, 0, &e)) return fail(&e);
    const int64_t n = c.n;
    {
        float *w0 = xcalloc((size_t)n, sizeof(float));
        if (setup_initial_weights(&s, &a, w0, &e)) return fail(&e);
        b.ops->upload(b.ctx, c.w, w0, n);
        free(w0);
    }
    if (smp_chain_start(&c, &e)) return fail(&e);

    meas m;
    memset(&m, 0, sizeof m);
    m.b = &b;
    m.n = n;
    m.P = P;
    m.gbar = xcalloc((size_t)n, sizeof(double));
    m.v = xcalloc((size_t)n, sizeof(double));
    m.gs = xcalloc((size_t)n, sizeof(double));
    m.qs = xcalloc((size_t)n, sizeof(double));
    m.gfull = xcalloc((size_t)n, sizeof(float));
    m.gb = xcalloc((size_t)n, sizeof(float));
    m.dev = b.ops->alloc(b.ctx, n);
    m.perm = xcalloc((size_t)P, sizeof(int32_t));
    m.idx = xcalloc((size_t)maxB, sizeof(int32_t));
    m.comp = xcalloc((size_t)o.M, sizeof(int64_t));
    if (!m.dev) {
        fprintf(stderr, "bench_noise: out of memory for a backend buffer\n");
        return 1;
    }
    for (int32_t i = 0; i < P; i++) m.perm[i] = i;
    rng_seed(&m.rng, o.seed, 7);
    noise_diag nd;
    if (noise_diag_init(&nd, &c, o.D, &e)) return fail(&e);

    const int32_t K = o.K, M = o.M, D = o.D, nB = o.nB, R1 = o.R - 1;
    float *nu = xcalloc((size_t)K * nB * D * M, sizeof(float));
    float *nu32 = xcalloc((size_t)K * D * M, sizeof(float));
    float *nurep = xcalloc((size_t)K * (R1 > 0 ? R1 : 1) * D * M, sizeof(float));
    float *pex = xcalloc((size_t)K * P * M, sizeof(float));
    int64_t *comps = xcalloc((size_t)K * M, sizeof(int64_t));
    int32_t *layers = xcalloc((size_t)K * M, sizeof(int32_t));
    double *vs = xcalloc((size_t)K * M, sizeof(double));
    json_t *jpoints = json_array(), *files = json_array();

    for (int32_t k = 0; k < K; k++) {
        while (c.step < o.at[k])
            if (smp_chain_step(&c, &e)) return fail(&e);
        pot_obs ob;
        b.ops->observe(b.ctx, c.w, false, &ob);
        exact_v(&m, c.w);
        int32_t got = choose(&m, M);
        if (got < M) {
            fprintf(stderr, "bench_noise: only %d components with nonzero variance at step %lld (need %d)\n", got,
                    (long long)c.step, M);
            return 1;
        }
        b.ops->grad_full(b.ctx, c.w, m.dev);
        b.ops->download(b.ctx, m.gfull, m.dev, n);
        for (int32_t j = 0; j < M; j++) {
            comps[(size_t)k * M + j] = m.comp[j];
            layers[(size_t)k * M + j] = group_of(&b.layout, m.comp[j]);
            vs[(size_t)k * M + j] = m.v[m.comp[j]];
        }
        /* per-example deviations; their mean square must reproduce v (a check of `moments`) */
        double max_rel_v = 0;
        double *acc = xcalloc((size_t)M * 2, sizeof(double));
        for (int32_t mu = 0; mu < P; mu++) {
            moments(&m, c.w, &mu, 1);
            for (int32_t j = 0; j < M; j++) {
                double dv = m.gs[m.comp[j]] - m.gbar[m.comp[j]];
                pex[((size_t)k * P + mu) * M + j] = (float)dv;
                acc[2 * j] += dv;
                acc[2 * j + 1] += dv * dv;
            }
        }
        for (int32_t j = 0; j < M; j++) {
            double mean = acc[2 * j] / P, v = acc[2 * j + 1] / P - mean * mean, vref = m.v[m.comp[j]];
            if (fabs(v - vref) / vref > max_rel_v) max_rel_v = fabs(v - vref) / vref;
        }
        free(acc);
        /* D mini-batches per batch size */
        for (int32_t q = 0; q < nB; q++) {
            const int32_t B = o.bs[q];
            for (int32_t t = 0; t < D; t++) {
                batch_nu(&m, c.w, B, P, M, nu + (((size_t)k * nB + q) * D + t) * M);
                if (q != qspec) continue;
                b.ops->grad_batch(b.ctx, c.w, m.idx, B, m.dev);
                b.ops->download(b.ctx, m.gb, m.dev, n);
                float *r32 = nu32 + ((size_t)k * D + t) * M;
                for (int32_t j = 0; j < M; j++) {
                    int64_t i = m.comp[j];
                    r32[j] = (float)(((double)m.gb[i] - (double)m.gfull[i]) / sqrt(s2_of(m.v[i], B, P)));
                }
            }
        }
        /* replicate sets of the spec's batch size */
        for (int32_t r = 0; r < R1; r++)
            for (int32_t t = 0; t < D; t++) {
                batch_nu(&m, c.w, Bspec, P, M, nurep + (((size_t)k * R1 + r) * D + t) * M);
            }
        /* boltzd's own diagnostics at the same w; the chain's RNG is put back afterwards */
        bz_rng saved = c.rng;
        double t0 = smp_now();
        if (noise_diag_measure(&nd, &c, &e)) return fail(&e);
        double t_diag = smp_now() - t0;
        c.rng = saved;
        json_t *jp = json_object();
        json_object_set_new(jp, "step", json_integer(c.step));
        json_object_set_new(jp, "U", json_real(ob.U));
        json_object_set_new(jp, "loss", json_real(ob.loss));
        json_object_set_new(jp, "w2", json_real(ob.w2));
        json_object_set_new(jp, "train_err", json_real(ob.train_err));
        json_object_set_new(jp, "eligible_components", json_integer(m.n_elig));
        json_object_set_new(jp, "pex_max_rel_var_error", json_real(max_rel_v));
        json_object_set_new(jp, "boltzd_noise_ks_frac", json_real(c.noise_stats[0]));
        json_object_set_new(jp, "boltzd_noise_corr", json_real(c.noise_stats[1]));
        json_object_set_new(jp, "boltzd_noise_acf1", json_real(c.noise_stats[2]));
        json_object_set_new(jp, "boltzd_n_comp", json_integer(nd.n_comp));
        json_object_set_new(jp, "boltzd_diag_seconds", json_real(t_diag));
        json_array_append_new(jpoints, jp);
        fprintf(stderr, "bench_noise: point %d/%d at step %lld: U %.4g train_err %.4f, boltzd ks_frac %.3f\n", k + 1, K,
                (long long)c.step, ob.U, ob.train_err, c.noise_stats[0]);
    }

    /* (b) along the dynamics */
    json_t *jdyn = json_object();
    const size_t LM = (size_t)(o.L > 0 ? o.L : 1) * M;
    float *eta = xcalloc(LM, sizeof(float)), *eta32 = xcalloc(LM, sizeof(float));
    int64_t *dcomp = xcalloc((size_t)M, sizeof(int64_t));
    double *ds0 = xcalloc((size_t)M, sizeof(double)), *ds = xcalloc((size_t)M, sizeof(double));
    float *gcheck = xcalloc((size_t)n, sizeof(float));
    double *dobs = xcalloc((size_t)(o.L > 0 ? o.L : 1) * 3, sizeof(double));
    if (o.L > 0) {
        while (c.step < o.window)
            if (smp_chain_step(&c, &e)) return fail(&e);
        int64_t start = c.step, undefined = 0, idx_mismatch = 0;
        exact_v(&m, c.w);
        if (choose(&m, M) < M) {
            fprintf(stderr, "bench_noise: too few components with nonzero variance for the dynamics window\n");
            return 1;
        }
        for (int32_t j = 0; j < M; j++) {
            dcomp[j] = m.comp[j];
            ds0[j] = sqrt(s2_of(m.v[m.comp[j]], Bspec, P));
        }
        double t0 = smp_now(), Usum = 0;
        for (int32_t t = 0; t < o.L; t++) {
            if (smp_chain_step(&c, &e)) return fail(&e);
            exact_v(&m, c.w); /* gbar and s at w_t */
            for (int32_t j = 0; j < M; j++) ds[j] = sqrt(s2_of(m.v[dcomp[j]], Bspec, P));
            double U = b.ops->grad_full(b.ctx, c.w, m.dev);
            Usum += U;
            b.ops->download(b.ctx, gcheck, c.w, n);
            double w2 = 0;
            for (int64_t i = 0; i < n; i++) w2 += (double)gcheck[i] * gcheck[i];
            w2 /= (double)n;
            dobs[3 * (size_t)t] = U;
            dobs[3 * (size_t)t + 1] = U - 0.5 * s.model.lambda * w2;
            dobs[3 * (size_t)t + 2] = w2;
            b.ops->download(b.ctx, m.gfull, m.dev, n);
            b.ops->download(b.ctx, m.gb, c.g, n);
            /* chain->idx must be the batch of chain->g */
            b.ops->grad_batch(b.ctx, c.w, c.idx, Bspec, m.dev);
            b.ops->download(b.ctx, gcheck, m.dev, n);
            if (memcmp(gcheck, m.gb, sizeof(float) * (size_t)n)) idx_mismatch++;
            moments(&m, c.w, c.idx, Bspec);
            for (int32_t j = 0; j < M; j++) {
                int64_t i = dcomp[j];
                size_t at = (size_t)t * M + j;
                if (ds[j] > 0) {
                    eta[at] = (float)((m.gs[i] / Bspec - m.gbar[i]) / ds[j]);
                    eta32[at] = (float)(((double)m.gb[i] - (double)m.gfull[i]) / ds[j]);
                } else {
                    eta[at] = eta32[at] = NAN; /* no mini-batch noise at w_t: nu undefined */
                    undefined++;
                }
            }
        }
        /* how far s_i moved over the window: quantiles of s_end / s_start */
        double *ratio = xcalloc((size_t)M, sizeof(double));
        for (int32_t j = 0; j < M; j++) ratio[j] = ds[j] / ds0[j];
        qsort(ratio, (size_t)M, sizeof(double), cmpd);
        json_object_set_new(jdyn, "start_step", json_integer(start));
        json_object_set_new(jdyn, "steps", json_integer(o.L));
        json_object_set_new(jdyn, "batch", json_integer(Bspec));
        json_object_set_new(jdyn, "undefined_values", json_integer(undefined));
        json_object_set_new(jdyn, "idx_mismatch_steps", json_integer(idx_mismatch));
        json_object_set_new(jdyn, "mean_U", json_real(Usum / o.L));
        json_object_set_new(jdyn, "s_end_over_s_start_median", json_real(ratio[M / 2]));
        json_object_set_new(jdyn, "s_end_over_s_start_q10", json_real(ratio[M / 10]));
        json_object_set_new(jdyn, "s_end_over_s_start_q90", json_real(ratio[(9 * M) / 10]));
        json_object_set_new(jdyn, "seconds", json_real(smp_now() - t0));
        free(ratio);
    }

    /* files */
    int64_t sh_rep[4] = {K, R1, D, M}, sh_nu[4] = {K, nB, D, M}, sh_nu32[3] = {K, D, M}, sh_pex[3] = {K, P, M}, sh_km[2] = {K, M};
    if (write_npy(o.out, "nu.npy", NPY_F32, 4, sh_nu, nu, files) ||
        write_npy(o.out, "nu_f32.npy", NPY_F32, 3, sh_nu32, nu32, files) ||
        (R1 > 0 && write_npy(o.out, "nu_rep.npy", NPY_F32, 4, sh_rep, nurep, files)) ||
        write_npy(o.out, "pex.npy", NPY_F32, 3, sh_pex, pex, files) ||
        write_npy(o.out, "comp.npy", NPY_I64, 2, sh_km, comps, files) ||
        write_npy(o.out, "layer.npy", NPY_I32, 2, sh_km, layers, files) ||
        write_npy(o.out, "v.npy", NPY_F64, 2, sh_km, vs, files))
        return 1;
    if (o.L > 0) {
        int64_t sh_eta[2] = {o.L, M}, sh_m[1] = {M}, sh_obs[2] = {o.L, 3};
        if (write_npy(o.out, "eta.npy", NPY_F32, 2, sh_eta, eta, files) ||
            write_npy(o.out, "eta_f32.npy", NPY_F32, 2, sh_eta, eta32, files) ||
            write_npy(o.out, "eta_comp.npy", NPY_I64, 1, sh_m, dcomp, files) ||
            write_npy(o.out, "dyn_obs.npy", NPY_F64, 2, sh_obs, dobs, files))
            return 1;
    }
    json_t *jb = json_array(), *jl = json_array();
    for (int32_t q = 0; q < nB; q++) json_array_append_new(jb, json_integer(o.bs[q]));
    for (int32_t g = 0; g <= b.layout.n_groups; g++) json_array_append_new(jl, json_integer(b.layout.off[g]));
    json_t *out = json_object();
    json_object_set_new(out, "n", json_integer(n));
    json_object_set_new(out, "P", json_integer(P));
    json_object_set_new(out, "batch", json_integer(Bspec));
    json_object_set_new(out, "batch_sizes", jb);
    json_object_set_new(out, "layer_offsets", jl);
    json_object_set_new(out, "T", json_real(c.T));
    json_object_set_new(out, "D", json_integer(D));
    json_object_set_new(out, "M", json_integer(M));
    json_object_set_new(out, "replicates", json_integer(o.R));
    json_object_set_new(out, "points", jpoints);
    json_object_set_new(out, "dynamics", jdyn);
    json_object_set_new(out, "final_step", json_integer(c.step));
    json_object_set_new(out, "files", files);
    char *text = json_dumps(out, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    printf("%s\n", text);
    free(text);
    json_decref(out);

    noise_diag_free(&nd);
    free(nu);
    free(nu32);
    free(nurep);
    free(dobs);
    free(pex);
    free(comps);
    free(layers);
    free(vs);
    free(eta);
    free(eta32);
    free(dcomp);
    free(ds0);
    free(ds);
    free(gcheck);
    free(m.gbar);
    free(m.v);
    free(m.gs);
    free(m.qs);
    free(m.gfull);
    free(m.gb);
    free(m.perm);
    free(m.idx);
    free(m.comp);
    b.ops->release(b.ctx, m.dev);
    smp_chain_destroy(&c);
    be_destroy(&b);
    ds_free(&d);
    return 0;
}
