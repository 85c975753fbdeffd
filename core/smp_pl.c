/* smp_pl.c: pseudo-Langevin dynamics with controlled mini-batch noise (ALGORITHM.md §5).
 *
 * One step is O-B-A-B-O with one fresh mini-batch gradient; the O steps inject only the part of
 * the thermal noise that the mini-batch does not already supply:
 *     s2_i = (1 - c^2) m_i T (1 - r_i),   r_i = A s_i^2 / m_i,   A = (h^2/4)(1 + c^2) / ((1 - c^2) T)
 * with s_i^2 the variance of the mini-batch mean gradient. Masses come from the target ratio,
 * m_i(r) = A s_i^2 / r, then the three floors (dead units, layer, stability). Every update_every
 * steps s_i^2 is re-estimated and masses with r_i > r_max are raised to m_i(r_max) (or, with
 * probability p_reinit, everything is re-initialised from r0); the runaway guard watches
 * z_max^2 = max p_i^2 / (m_i T) after every step.
 *
 * Host arrays (double, length n): s2v (the s_i^2 estimate), q (mean squared per-example data
 * gradient, the stability floor's curvature proxy), m (masses); held (bytes, n): which floor, if
 * any, set the mass in force (for the n_floor / n_stab counts, which are current, not events).
 * Backend buffers (float, n): p, inv_m, sig (sqrt of the O-step noise variance s2_i). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_lowrank.h"
#include "sampler.h"
#include "select.h"
#include "smp_pl.h"

typedef struct pl_counters {
    int64_t n_raise;   /* components raised to m(r_max), cumulative */
    int64_t n_reinit;  /* full re-initialisations, cumulative */
    int64_t n_guard;   /* runaway-guard events, cumulative */
    int64_t n_floor;   /* components held up by the dead-unit or layer floor (current) */
    int64_t n_stab;    /* components held up by the stability floor (current) */
    int64_t var_batches; /* mini-batches used by the last "minibatch" estimate (0 for exact) */
    double var_time;   /* seconds spent in variance estimates, cumulative */
    double mass_floor; /* the floor in force (auto: 1st percentile of positive masses) */
} pl_counters;

typedef struct pl_state {
    double c;          /* exp(-gamma h / 2) */
    double A;          /* r_i = A s_i^2 / m_i */
    double *s2v, *q, *m, *scratch; /* host, n */
    float *hostf;      /* host float scratch, n */
    unsigned char *held; /* host, n: HELD_* of the mass in force */
    float *p, *inv_m, *sig; /* backend, n */
    pl_lowrank *lr;    /* noise_rank > 0: the low-rank compensation (pl_lowrank.h), else NULL */
    double *zd;        /* host, n: noise_rank > 0: the O step's draws */
    float *zb;         /* backend, n: noise_rank > 0: scratch for the draws */
    double last_zmax2; /* from the last step's guard reduction */
    int64_t masses_at; /* completed steps when the masses were last set (a lagged z_max from
                          before then is stale) */
    pl_counters k;
} pl_state;

/* What set a component's mass last: the ratio control (m(r0), m(r_max), the guard) or a floor.
 * A mass set by a floor stays held up by it until the ratio control sets it again, so the
 * current counts n_floor / n_stab are the numbers of components marked HELD_FLOOR / HELD_STAB
 * (each component counted once, under the floor that set its mass last). */
enum { HELD_NONE = 0, HELD_FLOOR = 1, HELD_STAB = 2 };

static pl_state *st(smp_chain *c) { return c->state; }

/* ---- variance estimates ---- */

/* Exact: per-example moments over all P examples, or a uniform subset of var_examples. */
static int estimate_exact(smp_chain *c, bz_err *e)
{
    pl_state *s = st(c);
    be *b = c->b;
    const int64_t n = c->n;
    const int32_t P = b->layout.P, B = c->sp->batch;
    const int64_t M = P <= c->sp->var_examples ? P : c->sp->var_examples;
    int32_t *subset = NULL;
    if (M < P) {
        subset = malloc(sizeof(int32_t) * (size_t)M);
        if (!subset) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the variance subset");
        rng_sample_without_replacement(&c->rng, c->perm, P, (int32_t)M, subset);
    }
    double *gsum = s->scratch, *qsum = s->q;
    memset(gsum, 0, sizeof(double) * (size_t)n);
    memset(qsum, 0, sizeof(double) * (size_t)n);
    b->ops->moments(b->ctx, c->w, subset, M, gsum, qsum);
    free(subset);
    /* v_i: population variance of the per-example gradients. From a subset of M < P examples
     * the unbiased estimate M/(M-1) (q - gbar^2) stands in for it. Batches are drawn without
     * replacement, so the variance of the batch mean is (v/B)(P-B)/(P-1). */
    const double unbias = M < P && M > 1 ? (double)M / (double)(M - 1) : 1.0;
    const int32_t Bc = B < P ? B : P;
    const double fpc = P > 1 ? (double)(P - Bc) / (double)(P - 1) : 0.0;
    for (int64_t i = 0; i < n; i++) {
        double gbar = gsum[i] / (double)M, qi = qsum[i] / (double)M;
        double v = unbias * (qi - gbar * gbar);
        s->s2v[i] = v > 0.0 ? v / Bc * fpc : 0.0;
        s->q[i] = qi;
    }
    s->k.var_batches = 0;
    return 0;
}

/* Mean over components with s2 > 0 of |s2_K - s2_half| / s2_K. */
static double relative_change(const double *now, const double *half, int64_t n)
{
    double sum = 0.0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++)
        if (now[i] > 0.0) {
            sum += fabs(now[i] - half[i]) / now[i];
            cnt++;
        }
    return cnt ? sum / (double)cnt : 0.0;
}

/* The paper's procedure: Welford over mini-batch gradients at fixed w, doubling the count from
 * var_min_batches until the estimate moves by less than var_tol (or var_max_batches). */
static int estimate_minibatch(smp_chain *c, bz_err *e)
{
    pl_state *s = st(c);
    be *b = c->b;
    const int64_t n = c->n;
    double *mean = s->scratch, *m2 = s->q;
    double *half = malloc(sizeof(double) * (size_t)n);
    float *gb = c->b->ops->alloc(b->ctx, n);
    if (!half || !gb) {
        free(half);
        if (gb) b->ops->release(b->ctx, gb);
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the mini-batch variance estimate");
    }
    memset(mean, 0, sizeof(double) * (size_t)n);
    memset(m2, 0, sizeof(double) * (size_t)n);
    int64_t k = 0, target = c->sp->var_min_batches / 2 > 1 ? c->sp->var_min_batches / 2 : 1;
    for (;;) {
        for (; k < target; k++) {
            smp_draw_batch(c);
            b->ops->grad_batch(b->ctx, c->w, c->idx, c->sp->batch, gb);
            b->ops->download(b->ctx, s->hostf, gb, n);
            for (int64_t i = 0; i < n; i++) { /* Welford */
                double x = s->hostf[i], d = x - mean[i];
                mean[i] += d / (double)(k + 1);
                m2[i] += d * (x - mean[i]);
            }
        }
        for (int64_t i = 0; i < n; i++) s->s2v[i] = k > 1 ? m2[i] / (double)(k - 1) : 0.0;
        if (k >= c->sp->var_min_batches &&
            (relative_change(s->s2v, half, n) < c->sp->var_tol || k >= c->sp->var_max_batches))
            break;
        memcpy(half, s->s2v, sizeof(double) * (size_t)n);
        target = 2 * k < c->sp->var_max_batches ? 2 * k : c->sp->var_max_batches; /* never past the cap */
    }
    /* q_i ~ B s_i^2 + mean(g_B,i)^2 (ALGORITHM.md §5, stability floor with mini-batch variance). */
    for (int64_t i = 0; i < n; i++) s->q[i] = c->sp->batch * s->s2v[i] + mean[i] * mean[i];
    s->k.var_batches = k;
    free(half);
    b->ops->release(b->ctx, gb);
    return 0;
}

static int estimate_variance(smp_chain *c, bz_err *e)
{
    double t0 = smp_now();
    int rc = c->sp->var_method == VAR_EXACT ? estimate_exact(c, e) : estimate_minibatch(c, e);
    st(c)->k.var_time += smp_now() - t0;
    return rc;
}

/* ---- masses ---- */

static double mass_for_ratio(const pl_state *s, int64_t i, double r) { return s->A * s->s2v[i] / r; }

/* mass_floor: the spec's value, or the 1st percentile of the positive masses (1 when none). */
static double resolve_mass_floor(smp_chain *c)
{
    pl_state *s = st(c);
    if (c->sp->mass_floor > 0) return c->sp->mass_floor;
    int64_t cnt = 0;
    for (int64_t i = 0; i < c->n; i++)
        if (s->m[i] > 0.0) s->scratch[cnt++] = s->m[i];
    if (!cnt) return 1.0;
    return select_kth(s->scratch, cnt, (int64_t)floor(0.01 * (double)(cnt - 1)));
}

/* Raise m_i to at least lo; remember which components moved in `raised` and which floor set
 * their mass in `held`. */
static void raise_to(pl_state *s, int64_t i, double lo, unsigned char why, unsigned char *raised)
{
    if (s->m[i] >= lo) return;
    s->m[i] = lo;
    raised[i] = 1;
    s->held[i] = why;
}

/* The three floors of ALGORITHM.md §5 in order: dead units and the global mass floor (no mass
 * below it; a dead unit's mass is 0 here, so it gets exactly the floor), the layer floor
 * (layer_floor x the layer's median mass), the stability floor h^2 (lambda/n + q_i)/kappa^2.
 * Marks raised components; sets n_floor and n_stab from the held marks. */
/* Displacement floor (boltzd's addition to the three floors of ALGORITHM.md §5, counted with
 * n_stab): m_i >= T h^2 / (max_disp^2 rms_l^2), so that a component's thermal step h sqrt(T/m_i)
 * is at most max_disp times the RMS weight of its layer. Why: at a trained state (a pre-equilibrated
 * start, or a re-init there) every s_i^2 and q_i is ~0, all masses sink to the stability floor
 * h^2 lambda/(n kappa^2), and one step moves each weight by ~kappa sqrt(n T / lambda) -- 50 times
 * the weights' own scale on a 13k-weight net at T = lambda = 1e-3 -- into regions where the
 * curvature the floors never saw is huge: the chain blew up (U 1e-3 -> 1e6) in 10-100 steps.
 * For a quadratic mode the thermal step relative to the mode's own spread is h omega (<= kappa
 * by the stability floor, ~0.1 in practice) and a weight's spread is below its layer's RMS, so
 * with max_disp = 0.2 the floor binds only when the masses have collapsed. Raising a mass only
 * lowers r_i, so the sampled distribution is unchanged. */
static void apply_displacement_floor(smp_chain *c, unsigned char *raised)
{
    pl_state *s = st(c);
    const be_layout *L = &c->b->layout;
    if (!(c->sp->max_disp > 0)) return;
    c->b->ops->download(c->b->ctx, s->hostf, c->w, c->n);
    const double h = c->sp->h, d2 = c->sp->max_disp * c->sp->max_disp;
    for (int32_t g = 0; g < L->n_groups; g++) {
        int64_t lo = L->off[g], hi = L->off[g + 1];
        double sum = 0.0;
        for (int64_t i = lo; i < hi; i++) sum += (double)s->hostf[i] * s->hostf[i];
        double ms = hi > lo ? sum / (double)(hi - lo) : 0.0;
        if (!(ms > 0)) continue;
        const double floor_g = c->T * h * h / (d2 * ms);
        for (int64_t i = lo; i < hi; i++) raise_to(s, i, floor_g, HELD_STAB, raised);
    }
}

static void apply_floors(smp_chain *c, unsigned char *raised)
{
    pl_state *s = st(c);
    const be_layout *L = &c->b->layout;
    const int64_t n = c->n;
    s->k.mass_floor = resolve_mass_floor(c);
    for (int64_t i = 0; i < n; i++) raise_to(s, i, s->k.mass_floor, HELD_FLOOR, raised);
    for (int32_t g = 0; g < L->n_groups && c->sp->layer_floor > 0; g++) {
        int64_t lo = L->off[g], cnt = L->off[g + 1] - lo;
        if (cnt <= 0) continue;
        memcpy(s->scratch, s->m + lo, sizeof(double) * (size_t)cnt);
        double floor_g = c->sp->layer_floor * select_kth(s->scratch, cnt, cnt / 2);
        for (int64_t i = lo; i < lo + cnt; i++) raise_to(s, i, floor_g, HELD_FLOOR, raised);
    }
    const double h2k = c->sp->h * c->sp->h / (c->sp->kappa * c->sp->kappa);
    const double reg = L->lambda / (double)n;
    for (int64_t i = 0; i < n; i++) raise_to(s, i, h2k * (reg + s->q[i]), HELD_STAB, raised);
    apply_displacement_floor(c, raised);
    int64_t n_floor = 0, n_stab = 0;
    for (int64_t i = 0; i < n; i++) {
        n_floor += s->held[i] == HELD_FLOOR;
        n_stab += s->held[i] == HELD_STAB;
    }
    s->k.n_floor = n_floor;
    s->k.n_stab = n_stab;
}

/* Upload inv_m and the O-step noise amplitude sig_i = sqrt((1-c^2) m_i T (1 - r_i)). r_i <= r_max
 * < 1 always holds here: masses are raised before any r_i > r_max could be applied. */
static void upload_mass_and_noise(smp_chain *c)
{
    pl_state *s = st(c);
    be *b = c->b;
    const double c2 = s->c * s->c;
    for (int64_t i = 0; i < c->n; i++) s->hostf[i] = (float)(1.0 / s->m[i]);
    b->ops->upload(b->ctx, s->inv_m, s->hostf, c->n);
    for (int64_t i = 0; i < c->n; i++) {
        double r = s->A * s->s2v[i] / s->m[i];
        double one_minus_r = r < 1.0 ? 1.0 - r : 0.0;
        s->hostf[i] = (float)sqrt((1.0 - c2) * s->m[i] * c->T * one_minus_r);
    }
    b->ops->upload(b->ctx, s->sig, s->hostf, c->n);
}

/* Redraw p_i ~ N(0, m_i T) for the marked components (all when mark is NULL). */
static void redraw_momenta(smp_chain *c, const unsigned char *mark)
{
    pl_state *s = st(c);
    be *b = c->b;
    b->ops->download(b->ctx, s->hostf, s->p, c->n);
    for (int64_t i = 0; i < c->n; i++)
        if (!mark || mark[i]) s->hostf[i] = (float)(sqrt(s->m[i] * c->T) * rng_normal(&c->rng));
    b->ops->upload(b->ctx, s->p, s->hostf, c->n);
}

/* noise_rank > 0 (pl_lowrank.h): measure the per-example gradients at w, factor the noise
 * covariance for the masses in force; where its top eigenvalue exceeds PLR_CAP raise every mass
 * by lambda_max / PLR_CAP (marked in raised, so the caller redraws those momenta). A failure of
 * the factorisation leaves the previous factors (the first time: none, i.e. the §5 compensation
 * through sig is still uploaded and used as the fallback). */
static int lowrank_update(smp_chain *c, unsigned char *raised, bz_err *e)
{
    pl_state *s = st(c);
    if (!s->lr) return 0;
    const int32_t P = c->b->layout.P, B = c->sp->batch < P ? c->sp->batch : P;
    const int32_t rows = P < PLR_MAX_ROWS ? P : PLR_MAX_ROWS;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)rows);
    if (!idx) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the low-rank noise estimate");
    if (rows < P) rng_sample_without_replacement(&c->rng, c->perm, P, rows, idx);
    else for (int32_t i = 0; i < rows; i++) idx[i] = i;
    int rc = plr_measure(s->lr, c->b, c->w, idx, rows, e);
    free(idx);
    if (rc) return rc;
    const double kB = P > 1 ? (double)(P - B) / ((double)B * (double)(P - 1)) : 0.0;
    for (int attempt = 0; attempt < 4; attempt++) {
        double lam = plr_factor(s->lr, s->m, s->A * kB);
        if (!(lam > PLR_CAP)) return 0; /* factored (or a LAPACK failure: lam < 0, keep the old) */
        const double f = lam / PLR_CAP * 1.001;
        for (int64_t i = 0; i < c->n; i++) {
            s->m[i] *= f;
            raised[i] = 1;
        }
        s->k.n_raise += c->n;
    }
    return 0;
}

/* Step 1 of the algorithm: estimate, masses from r0, floors, all momenta drawn. */
static int full_init(smp_chain *c, bz_err *e)
{
    pl_state *s = st(c);
    int rc = estimate_variance(c, e);
    if (rc) return rc;
    for (int64_t i = 0; i < c->n; i++) s->m[i] = s->s2v[i] > 0.0 ? mass_for_ratio(s, i, c->sp->r0) : 0.0;
    memset(s->held, HELD_NONE, (size_t)c->n);
    unsigned char *raised = calloc((size_t)c->n, 1);
    if (!raised) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the mass update");
    apply_floors(c, raised);
    rc = lowrank_update(c, raised, e);
    free(raised);
    if (rc) return rc;
    redraw_momenta(c, NULL);
    upload_mass_and_noise(c);
    return 0;
}

/* Step 2: re-estimate, raise masses with r_i > r_max to m(r_max), floors; redraw the momenta of
 * every component whose mass moved. guard_mark (optional): components flagged by the runaway
 * guard, which also get m_i <- max(2 m_i, m_i(r_max)). */
static int mass_update(smp_chain *c, const unsigned char *guard_mark, bz_err *e)
{
    pl_state *s = st(c);
    int rc = estimate_variance(c, e);
    if (rc) return rc;
    unsigned char *raised = calloc((size_t)c->n, 1);
    if (!raised) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the mass update");
    const double r_max = c->sp->r_max;
    for (int64_t i = 0; i < c->n; i++) {
        if (s->A * s->s2v[i] > r_max * s->m[i]) {
            s->m[i] = mass_for_ratio(s, i, r_max);
            raised[i] = 1;
            s->held[i] = HELD_NONE;
            s->k.n_raise++;
        }
        if (guard_mark && guard_mark[i]) {
            double up = fmax(2.0 * s->m[i], mass_for_ratio(s, i, r_max));
            s->m[i] = up;
            raised[i] = 1;
            s->held[i] = HELD_NONE;
        }
    }
    apply_floors(c, raised);
    rc = lowrank_update(c, raised, e);
    redraw_momenta(c, raised);
    free(raised);
    if (rc) return rc;
    upload_mass_and_noise(c);
    return 0;
}

/* ---- the runaway guard ---- */

static int runaway_guard(smp_chain *c, bz_err *e)
{
    pl_state *s = st(c);
    be *b = c->b;
    unsigned char *mark = calloc((size_t)c->n, 1);
    if (!mark) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the runaway guard");
    b->ops->download(b->ctx, s->hostf, s->p, c->n);
    const double zg2 = c->sp->z_guard * c->sp->z_guard;
    for (int64_t i = 0; i < c->n; i++) {
        double z2 = (double)s->hostf[i] * s->hostf[i] / (s->m[i] * c->T);
        mark[i] = z2 > zg2;
    }
    s->k.n_guard++;
    int rc = mass_update(c, mark, e);
    free(mark);
    return rc;
}

/* ---- sampler entries ---- */

static int pl_alloc(smp_chain *c, bz_err *e)
{
    be *b = c->b;
    pl_state *s = calloc(1, sizeof *s);
    if (!s) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the pL state");
    c->state = s;
    const size_t n = (size_t)c->n;
    s->s2v = calloc(n, sizeof(double));
    s->q = calloc(n, sizeof(double));
    s->m = calloc(n, sizeof(double));
    s->scratch = calloc(n, sizeof(double));
    s->hostf = calloc(n, sizeof(float));
    s->held = calloc(n, 1);
    if (c->sp->noise_rank > 0) {
        const int32_t P = b->layout.P, rows = P < PLR_MAX_ROWS ? P : PLR_MAX_ROWS;
        s->lr = plr_new(c->n, c->sp->noise_rank, rows);
        s->zd = calloc(n, sizeof(double));
        s->zb = b->ops->alloc(b->ctx, c->n);
        if (!s->lr || !s->zd || !s->zb)
            return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the low-rank noise compensation (%lld weights, "
                           "%d examples)", (long long)c->n, (int)rows);
    }
    s->p = b->ops->alloc(b->ctx, c->n);
    s->inv_m = b->ops->alloc(b->ctx, c->n);
    s->sig = b->ops->alloc(b->ctx, c->n);
    if (!s->s2v || !s->q || !s->m || !s->scratch || !s->hostf || !s->held || !s->p || !s->inv_m || !s->sig)
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the pL state (%lld weights)", (long long)c->n);
    const double h = c->sp->h, g = c->sp->gamma;
    s->c = exp(-g * h / 2.0);
    const double c2 = s->c * s->c;
    s->A = h * h / 4.0 * (1.0 + c2) / ((1.0 - c2) * c->T);
    return 0;
}

static int pl_start(smp_chain *c, bz_err *e)
{
    int rc = pl_alloc(c, e);
    if (rc) return rc;
    rc = full_init(c, e);
    if (rc) return rc;
    smp_draw_batch(c);
    c->b->ops->grad_batch(c->b->ctx, c->w, c->idx, c->sp->batch, c->g);
    return 0;
}

/* O: p <- c p + noise. §5's diagonal compensation (sig), or with noise_rank > 0 a draw of
 * covariance (1-c^2) T M^1/2 (I - R) M^1/2 (pl_lowrank.h), made on the host from the backend's
 * own N(0,1) draws (so checkpoints stay exact). */
static void o_step(smp_chain *c)
{
    pl_state *s = st(c);
    be *b = c->b;
    const int64_t n = c->n;
    if (!s->lr) {
        b->ops->add_noise(b->ctx, s->p, (float)s->c, s->sig, 0.0f, n);
        return;
    }
    b->ops->add_noise(b->ctx, s->zb, 0.0f, NULL, 1.0f, n);
    b->ops->download(b->ctx, s->hostf, s->zb, n);
    for (int64_t i = 0; i < n; i++) s->zd[i] = s->hostf[i];
    plr_apply(s->lr, s->zd);
    const double amp = (1.0 - s->c * s->c) * c->T;
    b->ops->download(b->ctx, s->hostf, s->p, n);
    for (int64_t i = 0; i < n; i++)
        s->hostf[i] = (float)(s->c * s->hostf[i] + sqrt(amp * s->m[i]) * s->zd[i]);
    b->ops->upload(b->ctx, s->p, s->hostf, n);
}

/* The buffers of every chain of a batch that the step updates, gathered once per half step. */
typedef struct pl_bufs {
    float *p[SMP_BATCH_MAX], *w[SMP_BATCH_MAX];
    const float *g[SMP_BATCH_MAX], *inv_m[SMP_BATCH_MAX], *sig[SMP_BATCH_MAX], *pc[SMP_BATCH_MAX];
    bool lowrank;            /* some chain draws its O noise on the host (noise_rank > 0) */
} pl_bufs;

static void gather_bufs(const smp_batch *b, pl_bufs *u)
{
    u->lowrank = false;
    for (int32_t k = 0; k < b->m; k++) {
        smp_chain *c = b->c[k];
        pl_state *s = st(c);
        u->p[k] = s->p, u->pc[k] = s->p, u->w[k] = c->w, u->g[k] = c->g;
        u->inv_m[k] = s->inv_m, u->sig[k] = s->sig;
        u->lowrank |= s->lr != NULL;
    }
}

/* O for every chain: §5's diagonal compensation as one batched update (c = exp(-gamma h/2) comes
 * from the spec, the same for every chain of a batch), or with a low-rank chain in the batch the
 * host draw chain by chain. */
static void o_step_batch(smp_batch *b, const pl_bufs *u)
{
    if (!u->lowrank) {
        smp_batch_add_noise(b, u->p, (float)st(b->c[0])->c, u->sig, NULL);
        return;
    }
    for (int32_t k = 0; k < b->m; k++) o_step(b->c[k]);
}

/* O-B-A-B-O, in two halves around the new mini-batch gradient so the chains of a multichain
 * group compute their gradients at once (multichain.h, lockstep); a lone chain is a batch of one
 * (smp_step_split). The gradient in c->g belongs to the current w (computed after the previous
 * A). First half: O, B, A, and the next batch. */
static int pl_step_pre(smp_batch *b)
{
    const float h = (float)b->c[0]->sp->h;
    pl_bufs u;
    gather_bufs(b, &u);
    o_step_batch(b, &u);                               /* O */
    smp_batch_axpy(b, u.p, -0.5f * h, u.g, NULL);      /* B */
    smp_batch_axpy(b, u.w, h, u.pc, u.inv_m);          /* A */
    for (int32_t k = 0; k < b->m; k++) smp_draw_batch(b->c[k]);
    return 0;
}

/* The end of one chain's step, with z_max^2 (times T) measured `lag` steps ago: the runaway guard
 * and the periodic mass update. */
static int pl_step_finish(smp_chain *c, double zmax2, int lag, bz_err *e)
{
    pl_state *s = st(c);
    const int64_t done = c->step + 1;
    const int64_t of = done - lag; /* the step whose z_max^2 this is */
    if (of <= s->masses_at) zmax2 = 0.0; /* measured before the masses in force were set */
    zmax2 /= c->T;
    s->last_zmax2 = zmax2;
    if (!isfinite(zmax2))
        return bz_fail(e, BZ_EDIVERGED, NULL, "diverged at step %lld: the momenta are not finite; %s",
                       (long long)c->step + 1, smp_divergence_hint(SM_PL));
    if (c->sp->z_guard > 0 && zmax2 > c->sp->z_guard * c->sp->z_guard) {
        s->masses_at = done;
        return runaway_guard(c, e);
    }
    if (done % c->sp->update_every == 0) {
        s->masses_at = done;
        if (rng_uniform(&c->rng) < c->sp->p_reinit) {
            s->k.n_reinit++;
            return full_init(c, e);
        }
        return mass_update(c, NULL, e);
    }
    return 0;
}

/* Second half, with c->g = grad U_B(w) of the batch in c->idx: B, O, then per chain the guard's
 * z_max^2 (one reduction, lagged on device backends) and the rest (pl_step_finish). */
static int pl_step_post(smp_batch *b)
{
    const float h = (float)b->c[0]->sp->h;
    pl_bufs u;
    gather_bufs(b, &u);
    smp_batch_axpy(b, u.p, -0.5f * h, u.g, NULL);      /* B */
    o_step_batch(b, &u);                               /* O */
    double zmax2[SMP_BATCH_MAX];
    const int lag = smp_batch_sq_max(b, u.pc, u.inv_m, zmax2);
    for (int32_t k = 0; k < b->m; k++) smp_batch_fail(b, k, pl_step_finish(b->c[k], zmax2[k], lag, &b->err[k]));
    return smp_batch_status(b);
}

static double mean_range(const double *x, int64_t lo, int64_t hi)
{
    double sum = 0.0;
    for (int64_t i = lo; i < hi; i++) sum += x[i];
    return hi > lo ? sum / (double)(hi - lo) : NAN;
}

static void pl_observe(smp_chain *c, obs_record *r)
{
    pl_state *s = st(c);
    be *b = c->b;
    double kin;
    b->ops->sq_stats(b->ctx, s->p, s->inv_m, c->n, &kin, NULL);
    r->v[OBS_KIN_T] = kin / (double)c->n;
    double rsum = 0.0, rmax = 0.0;
    for (int64_t i = 0; i < c->n; i++) {
        double ri = s->A * s->s2v[i] / s->m[i];
        rsum += ri;
        rmax = ri > rmax ? ri : rmax;
    }
    r->v[OBS_R_MEAN] = rsum / (double)c->n;
    r->v[OBS_R_MAX] = rmax;
    r->v[OBS_GRAD_VAR] = mean_range(s->s2v, 0, c->n);
    r->v[OBS_GRAD_VAR_12] = mean_range(s->s2v, 0, b->layout.fast_end);
    r->v[OBS_N_RAISE] = (double)s->k.n_raise;
    r->v[OBS_N_REINIT] = (double)s->k.n_reinit;
    r->v[OBS_N_GUARD] = (double)s->k.n_guard;
    r->v[OBS_N_FLOOR] = (double)s->k.n_floor;
    r->v[OBS_N_STAB] = (double)s->k.n_stab;
    r->v[OBS_VAR_COST] = c->t_wall > 0 ? s->k.var_time / c->t_wall : NAN;
    if (c->sp->var_method == VAR_MINIBATCH) r->v[OBS_VAR_BATCHES] = (double)s->k.var_batches;
}

static int pl_save(smp_chain *c, ckpt_writer *w, bz_err *e)
{
    pl_state *s = st(c);
    const uint64_t nb = sizeof(double) * (uint64_t)c->n;
    int rc = ckpt_put(w, "pl_counters", &s->k, sizeof s->k, e);
    if (!rc) rc = ckpt_put(w, "pl_s2", s->s2v, nb, e);
    if (!rc) rc = ckpt_put(w, "pl_q", s->q, nb, e);
    if (!rc) rc = ckpt_put(w, "pl_mass", s->m, nb, e);
    if (!rc) rc = smp_put_buffer(c, w, "pl_p", s->p, c->n, e);
    if (!rc) rc = ckpt_put(w, "pl_held", s->held, (uint64_t)c->n, e);
    if (!rc && s->lr) rc = plr_save(s->lr, w, e);
    return rc;
}

static int pl_load(smp_chain *c, ckpt_reader *r, bz_err *e)
{
    pl_state *s = st(c);
    const uint64_t nb = sizeof(double) * (uint64_t)c->n;
    int rc = ckpt_get(r, "pl_counters", &s->k, sizeof s->k, e);
    if (!rc) rc = ckpt_get(r, "pl_s2", s->s2v, nb, e);
    if (!rc) rc = ckpt_get(r, "pl_q", s->q, nb, e);
    if (!rc) rc = ckpt_get(r, "pl_mass", s->m, nb, e);
    if (!rc) rc = smp_get_buffer(c, r, "pl_p", s->p, c->n, e);
    if (rc) return rc;
    /* pl_held only feeds the n_floor / n_stab counts (restored with the counters); a checkpoint
     * written before it existed loads with every mass marked as set by the ratio control. */
    uint64_t held_bytes = 0;
    const void *held = ckpt_find(r, "pl_held", &held_bytes);
    if (held) rc = ckpt_get(r, "pl_held", s->held, (uint64_t)c->n, e); /* checks the size */
    else memset(s->held, HELD_NONE, (size_t)c->n);
    if (!rc && s->lr) rc = plr_load(s->lr, r, e);
    if (rc) return rc;
    for (int64_t i = 0; i < c->n; i++)
        if (!(s->m[i] > 0.0) || !isfinite(s->m[i]))
            return bz_fail(e, BZ_EFORMAT, "pl_mass", "checkpoint mass %lld is %g; masses must be positive",
                           (long long)i, s->m[i]);
    upload_mass_and_noise(c);
    s->masses_at = c->step;
    return 0;
}

static void pl_destroy(smp_chain *c)
{
    pl_state *s = st(c);
    if (!s) return;
    be *b = c->b;
    free(s->s2v);
    free(s->q);
    free(s->m);
    free(s->scratch);
    free(s->hostf);
    free(s->held);
    plr_free(s->lr);
    free(s->zd);
    if (s->zb) b->ops->release(b->ctx, s->zb);
    if (s->p) b->ops->release(b->ctx, s->p);
    if (s->inv_m) b->ops->release(b->ctx, s->inv_m);
    if (s->sig) b->ops->release(b->ctx, s->sig);
    free(s);
    c->state = NULL;
}

/* Replica exchange: chains a and b have swapped w, w0 and g. What else belongs to the
 * configuration: the variance estimate s_i^2 and the curvature proxy q_i (both functions of w
 * alone, not of T), the masses and which floor holds them. The masses follow the configuration,
 * rescaled by T_old / T_new: since m_i(r) = A s_i^2 / r with A proportional to 1/T, this keeps
 * every r_i exactly as it was, i.e. gives the masses the ratio control would set at the new T for
 * the same ratios, without a fresh variance estimate (a full pass over the data) per accepted
 * swap. Re-deriving them at the next update instead would leave a configuration that moved to a
 * lower T with r_i up to T_old / T_new times r_max until then. A mass that a floor held up is not
 * rescaled (the floors do not scale like 1/T: the stability floor does not depend on T, the
 * displacement floor grows with it, so rescaling would ratchet such masses up at every round
 * trip); it goes back to m_i(r0) at the new T and the floors of the new T are applied again
 * (raising a mass only lowers r_i). Every momentum is redrawn from N(0, m_i T_new). */
static void rescale_and_rethermalise(smp_chain *c, double T_old)
{
    pl_state *s = st(c);
    const double f = T_old / c->T;
    for (int64_t i = 0; i < c->n; i++) {
        if (s->held[i] == HELD_NONE) {
            s->m[i] *= f; /* set by the ratio control: keeps its r_i */
        } else { /* held up by a floor of the old T: back to m(r0) here, the floors of this T decide */
            s->m[i] = s->s2v[i] > 0.0 ? mass_for_ratio(s, i, c->sp->r0) : 0.0;
            s->held[i] = HELD_NONE;
        }
    }
    unsigned char *raised = calloc(c->n > 0 ? (size_t)c->n : 1, 1);
    if (raised) apply_floors(c, raised);
    else /* out of memory: at least no mass may stay 0 */
        for (int64_t i = 0; i < c->n; i++) s->m[i] = s->m[i] > 0.0 ? s->m[i] : s->k.mass_floor;
    free(raised);
    redraw_momenta(c, NULL);
    upload_mass_and_noise(c);
    s->masses_at = c->step;
}

static int pl_swap(smp_chain *a, smp_chain *b, bz_err *e)
{
    (void)e;
    pl_state *sa = st(a), *sb = st(b);
#define SWAP_PTR(x) do { void *t_ = (void *)sa->x; sa->x = sb->x; sb->x = t_; } while (0)
    SWAP_PTR(s2v);
    SWAP_PTR(q);
    SWAP_PTR(m);
    SWAP_PTR(held);
#undef SWAP_PTR
    rescale_and_rethermalise(a, b->T);
    rescale_and_rethermalise(b, a->T);
    return 0;
}

const smp_vtable smp_pl = {SM_PL, pl_start, pl_alloc, smp_step_split, pl_observe, pl_save, pl_load, pl_destroy, pl_swap,
                            pl_step_pre, pl_step_post};

int pl_inspect(smp_chain *c, pl_view *v)
{
    if (c->vt != &smp_pl || !c->state) return BZ_EINVAL;
    pl_state *s = st(c);
    *v = (pl_view){s->m, s->s2v, s->A, s->k.mass_floor, s->k.n_raise, s->k.n_reinit, s->k.n_guard,
                   s->k.n_floor, s->k.n_stab};
    return 0;
}
