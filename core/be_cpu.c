/* be_cpu.c: the CPU backend, the reference implementation of backend.h. Buffers are host
 * memory; the potential is either the OpenBLAS network (potential.c) or a user target; noise
 * comes from the project RNG (rng.c), so a CPU chain is bit-reproducible from its checkpoint. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

struct be_ctx {
    bz_rng noise;
    bool own_pot;       /* network: pot below is ours */
    pot_ctx pot;
    float *tmp;         /* length n, scratch for moments */
    be_target target;   /* the potential's callbacks (network ones when own_pot) */
};

/* ---- buffers ---- */

static float *cpu_alloc(be_ctx *c, int64_t count)
{
    (void)c;
    return calloc((size_t)(count > 0 ? count : 1), sizeof(float));
}

static void cpu_release(be_ctx *c, float *buf)
{
    (void)c;
    free(buf);
}

static void cpu_copy(be_ctx *c, float *dst, const float *src, int64_t count)
{
    (void)c;
    if (dst != src) memmove(dst, src, sizeof(float) * (size_t)count);
}

/* ---- potential (dispatch to the target) ---- */

static void cpu_grad_batch(be_ctx *c, const float *w, const int32_t *idx, int32_t B, float *g)
{
    c->target.grad_batch(c->target.ctx, w, idx, B, g);
}

static double cpu_grad_full(be_ctx *c, const float *w, float *g) { return c->target.grad_full(c->target.ctx, w, g); }

/* CPU handles share the host's memory, so one handle computes every chain's gradient in turn
 * with its own scratch: bit for bit what each chain's own grad_batch gives. */
static void cpu_grad_batch_group(be_ctx *c, int32_t K, const float *const *w, const int32_t *const *idx, int32_t B,
                                 float *const *g)
{
    for (int32_t k = 0; k < K; k++) cpu_grad_batch(c, w[k], idx[k], B, g[k]);
}

static void cpu_observe(be_ctx *c, const float *w, bool with_test, pot_obs *o)
{
    c->target.observe(c->target.ctx, w, with_test, o);
}

static void cpu_moments(be_ctx *c, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum)
{
    c->target.moments(c->target.ctx, w, idx, rows, g_sum, q_sum);
}

/* ---- noise ---- */

static void cpu_noise_seed(be_ctx *c, uint64_t seed, uint64_t stream) { rng_seed(&c->noise, seed, stream); }
static size_t cpu_noise_state_size(be_ctx *c)
{
    (void)c;
    return sizeof(bz_rng);
}
static void cpu_noise_save(be_ctx *c, void *buf) { memcpy(buf, &c->noise, sizeof c->noise); }
static void cpu_noise_load(be_ctx *c, const void *buf) { memcpy(&c->noise, buf, sizeof c->noise); }

/* ---- elementwise ---- */

static void cpu_add_noise(be_ctx *c, float *x, float a, const float *s, float s_const, int64_t count)
{
    for (int64_t i = 0; i < count; i++) {
        float sd = s ? s[i] : s_const;
        x[i] = a * x[i] + sd * (float)rng_normal_zig(&c->noise);
    }
}

static void cpu_axpy(be_ctx *c, float *y, float a, const float *x, const float *v, int64_t count)
{
    (void)c;
    if (v)
        for (int64_t i = 0; i < count; i++) y[i] += a * x[i] * v[i];
    else
        for (int64_t i = 0; i < count; i++) y[i] += a * x[i];
}

static void cpu_sq_stats(be_ctx *c, const float *x, const float *v, int64_t count, double *sum, double *max)
{
    (void)c;
    double s = 0.0, m = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double q = (double)x[i] * x[i] * (v ? v[i] : 1.0f);
        s += q;
        if (q > m || q != q) m = q; /* a NaN propagates into max so the caller sees it */
    }
    if (sum) *sum = s;
    if (max) *max = m;
}

static double cpu_dist2(be_ctx *c, const float *x, const float *y, int64_t count)
{
    (void)c;
    double s = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double d = (double)x[i] - y[i];
        s += d * d;
    }
    return s;
}

static void cpu_adam(be_ctx *c, float *w, const float *g, float *m1, float *m2, float lr, float b1, float b2,
                     float eps, int64_t t, int64_t count)
{
    (void)c;
    const double c1 = 1.0 - pow(b1, (double)t), c2 = 1.0 - pow(b2, (double)t);
    for (int64_t i = 0; i < count; i++) {
        m1[i] = b1 * m1[i] + (1.0f - b1) * g[i];
        m2[i] = b2 * m2[i] + (1.0f - b2) * g[i] * g[i];
        double mh = m1[i] / c1, vh = m2[i] / c2;
        w[i] -= (float)(lr * mh / (sqrt(vh) + eps));
    }
}

static int cpu_sync(be_ctx *c, bz_err *e)
{
    (void)c;
    (void)e;
    return 0;
}

static void cpu_destroy(be_ctx *c)
{
    if (!c) return;
    if (c->own_pot) pot_free(&c->pot);
    free(c->tmp);
    free(c);
}

/* Group forms (lockstep batches): every chain's own op in turn, on its own handle's generator. */
static void cpu_add_noise_group(be_ctx *c, int32_t m, be_ctx *const *mem, float *const *x, float a,
                                const float *const *s, const float *s_const, int64_t count)
{
    (void)c;
    for (int32_t k = 0; k < m; k++) cpu_add_noise(mem[k], x[k], a, s ? s[k] : NULL, s_const ? s_const[k] : 0.0f, count);
}

static void cpu_axpy_group(be_ctx *c, int32_t m, float *const *y, float a, const float *const *x,
                           const float *const *v, int64_t count)
{
    for (int32_t k = 0; k < m; k++) cpu_axpy(c, y[k], a, x[k], v ? v[k] : NULL, count);
}

/* Every CPU handle's entries; the group gradient only for network handles (a custom target may
 * keep per-handle state, e.g. its own noise, so each chain must call its own). */
#define CPU_OPS_COMMON \
    .destroy = cpu_destroy, \
    .alloc = cpu_alloc, \
    .release = cpu_release, \
    .upload = cpu_copy, \
    .download = cpu_copy, \
    .copy = cpu_copy, \
    .grad_batch = cpu_grad_batch, \
    .grad_full = cpu_grad_full, \
    .observe = cpu_observe, \
    .moments = cpu_moments, \
    .noise_seed = cpu_noise_seed, \
    .noise_state_size = cpu_noise_state_size, \
    .noise_save = cpu_noise_save, \
    .noise_load = cpu_noise_load, \
    .add_noise = cpu_add_noise, \
    .axpy = cpu_axpy, \
    .sq_stats = cpu_sq_stats, \
    .dist2 = cpu_dist2, \
    .adam = cpu_adam, \
    .sync = cpu_sync, \
    .add_noise_group = cpu_add_noise_group, \
    .axpy_group = cpu_axpy_group,

static const be_ops cpu_ops = {
    .name = "cpu",
    CPU_OPS_COMMON
    .grad_batch_group = cpu_grad_batch_group,
};

static const be_ops cpu_custom_ops = {
    .name = "cpu",
    CPU_OPS_COMMON
};

/* ---- the network target ---- */

static void net_grad_batch(void *ctx, const float *w, const int32_t *idx, int32_t B, float *g)
{
    pot_grad_batch(&((be_ctx *)ctx)->pot, w, idx, B, g);
}

static double net_grad_full(void *ctx, const float *w, float *g) { return pot_grad_full(&((be_ctx *)ctx)->pot, w, g); }

static void net_observe(void *ctx, const float *w, bool with_test, pot_obs *o)
{
    pot_observe(&((be_ctx *)ctx)->pot, w, with_test, o);
}

static void net_moments(void *ctx, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum)
{
    be_ctx *c = ctx;
    const ds_data *d = c->pot.data;
    nn_grad_moments(c->pot.arch, &c->pot.ws, w, d->x_train, d->y_train, idx, rows, g_sum, q_sum, c->tmp, NULL);
}

static void network_layout(be_layout *l, const nn_arch *a, const ds_data *d, double lambda)
{
    memset(l, 0, sizeof *l);
    l->n = a->n;
    l->n_groups = a->L;
    for (int32_t g = 0; g < a->L; g++) l->off[g] = a->w_off[g];
    l->off[a->L] = a->n;
    l->fast_end = l->off[a->L < 2 ? a->L : 2]; /* end of layer 2 (or of the net) */
    l->P = (int32_t)d->n_train;
    l->lambda = lambda;
    l->has_test = d->n_test > 0;
}

int be_cpu_network(be *out, const nn_arch *a, const ds_data *d, double lambda, int32_t max_batch, bz_err *e)
{
    memset(out, 0, sizeof *out);
    be_ctx *c = calloc(1, sizeof *c);
    if (!c) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the CPU backend");
    int rc = pot_init(&c->pot, a, d, lambda, max_batch, e);
    if (rc) {
        free(c);
        return rc;
    }
    c->own_pot = true;
    c->tmp = malloc(sizeof(float) * (size_t)a->n);
    if (!c->tmp) {
        cpu_destroy(c);
        return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the CPU backend");
    }
    c->target = (be_target){c, net_grad_batch, net_grad_full, net_observe, net_moments};
    rng_seed(&c->noise, 0, 0);
    out->ops = &cpu_ops;
    out->ctx = c;
    network_layout(&out->layout, a, d, lambda);
    return 0;
}

int be_cpu_custom(be *out, const be_target *t, const be_layout *layout, bz_err *e)
{
    memset(out, 0, sizeof *out);
    be_ctx *c = calloc(1, sizeof *c);
    if (!c) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the CPU backend");
    c->target = *t;
    rng_seed(&c->noise, 0, 0);
    out->ops = &cpu_custom_ops;
    out->ctx = c;
    out->layout = *layout;
    return 0;
}

void be_destroy(be *b)
{
    if (b->ops) b->ops->destroy(b->ctx);
    memset(b, 0, sizeof *b);
}
