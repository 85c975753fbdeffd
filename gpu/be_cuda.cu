/* be_cuda.cu: the CUDA backend's context and its be_ops table (see be_cuda.h): buffers, the
 * sticky error, Philox noise, the elementwise sampler updates, reductions (sq_stats, dist2 and
 * the lagged z_max of the runaway guard), mini-batch index staging and the CUDA graphs of the
 * mini-batch gradient. The potentials live in cuda_net.cu and cuda_harmonic.cu. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_impl.h"

/* ---- errors ---- */

/* "cublasSgemm(c->blas, ...)" -> "cublasSgemm" */
static void call_name(const char *call, char *out, size_t len)
{
    size_t k = 0;
    while (call[k] && call[k] != '(' && k + 1 < len) {
        out[k] = call[k];
        k++;
    }
    out[k] = '\0';
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void record(be_ctx *c, const char *call, const char *file, int line, const char *words)
{
    if (c->capturing) {
        c->capture_bad = true;
        return;
    }
    if (c->err) return;
    char name[96];
    call_name(call, name, sizeof name);
    c->err = BZ_EBACKEND;
    snprintf(c->msg, sizeof c->msg, "%s failed on device %d: %s (gpu/%s:%d)", name, c->device, words, base_name(file),
             line);
}

bool cu_check(be_ctx *c, cudaError_t rc, const char *call, const char *file, int line)
{
    if (rc == cudaSuccess) return !c->err;
    record(c, call, file, line, cudaGetErrorString(rc));
    return false;
}

bool cu_check_blas(be_ctx *c, cublasStatus_t rc, const char *call, const char *file, int line)
{
    if (rc == CUBLAS_STATUS_SUCCESS) return !c->err;
    record(c, call, file, line, cublasGetStatusString(rc));
    return false;
}

bool cu_enter(be_ctx *c)
{
    if (c->err) return false;
    return CK(c, cudaSetDevice(c->device));
}

uint64_t cu_mix_key(uint64_t seed, uint64_t stream)
{
    uint64_t z = seed ^ (0x9E3779B97F4A7C15ull * (stream + 1));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- buffers ---- */

static float *cu_alloc(be_ctx *c, int64_t count)
{
    if (!cu_enter(c)) return NULL;
    size_t bytes = sizeof(float) * (size_t)(count > 0 ? count : 1);
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is the caller's BZ_ENOMEM, not a sticky failure */
        return NULL;
    }
    if (!CK(c, cudaMemsetAsync(p, 0, bytes, c->st))) {
        cudaFree(p);
        return NULL;
    }
    return (float *)p;
}

static void graph_slot_clear(cu_graph_slot *g);

/* State keyed by a buffer's address must not outlive the buffer: a later allocation may get the
 * same address (a chain destroyed and another created on this handle), and would then inherit
 * the old chain's lagged z_max or gradient graph. */
static void forget_buffer(be_ctx *c, const float *buf)
{
    if (buf == c->lag_x || buf == c->lag_v) c->lag_x = c->lag_v = NULL, c->lag_calls = 0;
    for (int i = 0; i < CU_GRAPH_SLOTS; i++)
        if (c->graphs[i].w == buf || c->graphs[i].g == buf) graph_slot_clear(&c->graphs[i]);
    be_ctx *owner = c->owner ? c->owner : c;
    if (owner->grp) cu_group_forget_buffer(owner, buf);
}

static void cu_release(be_ctx *c, float *buf)
{
    if (!buf || cudaSetDevice(c->device) != cudaSuccess) return;
    forget_buffer(c, buf);
    cudaFree(buf); /* waits for pending work on buf; a failure here is already sticky elsewhere */
}

static void cu_upload(be_ctx *c, float *dst, const float *src_host, int64_t count)
{
    if (count <= 0 || !cu_enter(c)) return;
    /* pageable source: staged before the call returns, so the caller may reuse it at once */
    CK(c, cudaMemcpyAsync(dst, src_host, sizeof(float) * (size_t)count, cudaMemcpyHostToDevice, c->st));
}

static void cu_download(be_ctx *c, float *dst_host, const float *src, int64_t count)
{
    if (count <= 0) return;
    if (!cu_enter(c)) {
        for (int64_t i = 0; i < count; i++) dst_host[i] = NAN;
        return;
    }
    CK(c, cudaMemcpyAsync(dst_host, src, sizeof(float) * (size_t)count, cudaMemcpyDeviceToHost, c->st));
    if (!CK(c, cudaStreamSynchronize(c->st)))
        for (int64_t i = 0; i < count; i++) dst_host[i] = NAN;
}

static void cu_copy(be_ctx *c, float *dst, const float *src, int64_t count)
{
    if (count <= 0 || dst == src || !cu_enter(c)) return;
    CK(c, cudaMemcpyAsync(dst, src, sizeof(float) * (size_t)count, cudaMemcpyDeviceToDevice, c->st));
}

/* ---- results back to the host ---- */

bool cu_fetch_acc(be_ctx *c, int count)
{
    if (!CK(c, cudaMemcpyAsync(c->h_acc, c->acc, sizeof(double) * (size_t)count, cudaMemcpyDeviceToHost, c->st)))
        return false;
    return CK(c, cudaStreamSynchronize(c->st));
}

void cu_w2_into(be_ctx *c, const float *w, int64_t count, int slot)
{
    if (count <= 0) return;
    k_reduce(c->st, w, NULL, NULL, count, c->partial, c->acc + slot);
    CKL(c, "k_reduce");
}

/* ---- mini-batch gradients: index staging and graphs ---- */

/* Copy the host index list into the next pinned slot and from there to d_idx (asynchronously). */
static bool stage_indices(be_ctx *c, const int32_t *idx, int32_t B)
{
    const int s = c->idx_pos;
    c->idx_pos = (c->idx_pos + 1) % CU_IDX_RING;
    if (c->idx_ev_used[s] && !CK(c, cudaEventSynchronize(c->idx_ev[s]))) return false;
    int32_t *slot = c->h_idx_ring + (size_t)s * (size_t)c->max_batch;
    memcpy(slot, idx, sizeof(int32_t) * (size_t)B);
    if (!CK(c, cudaMemcpyAsync(c->d_idx, slot, sizeof(int32_t) * (size_t)B, cudaMemcpyHostToDevice, c->st)))
        return false;
    c->idx_ev_used[s] = true;
    return CK(c, cudaEventRecord(c->idx_ev[s], c->st));
}

static void graph_slot_clear(cu_graph_slot *g)
{
    if (g->exec) cudaGraphExecDestroy(g->exec);
    memset(g, 0, sizeof *g);
}

/* The slot of key (w, g, B), or a fresh one (the least recently used is recycled). */
static cu_graph_slot *graph_slot(be_ctx *c, const float *w, float *g, int32_t B)
{
    cu_graph_slot *lru = &c->graphs[0];
    for (int i = 0; i < CU_GRAPH_SLOTS; i++) {
        cu_graph_slot *s = &c->graphs[i];
        if (s->uses > 0 && s->w == w && s->g == g && s->B == B) return s;
        if (s->last_use < lru->last_use) lru = s;
    }
    graph_slot_clear(lru);
    lru->w = w;
    lru->g = g;
    lru->B = B;
    return lru;
}

/* Capture the gradient body into s->exec; false (graphs turned off) when capture fails. */
static bool graph_capture(be_ctx *c, cu_graph_slot *s, const float *w, float *g, int32_t B)
{
    if (cudaStreamBeginCapture(c->st, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    c->capturing = true;
    c->capture_bad = false;
    net_grad_batch_body(c, w, B, g);
    cudaGraph_t graph = NULL;
    cudaError_t rc = cudaStreamEndCapture(c->st, &graph);
    c->capturing = false;
    bool ok = rc == cudaSuccess && !c->capture_bad && graph;
    if (ok && cudaGraphInstantiate(&s->exec, graph, 0) != cudaSuccess) ok = false;
    if (graph) cudaGraphDestroy(graph);
    if (!ok) {
        cudaGetLastError();
        s->exec = NULL;
    }
    return ok;
}

static void cu_grad_batch(be_ctx *c, const float *w, const int32_t *idx, int32_t B, float *g)
{
    if (!cu_enter(c)) return;
    if (c->kind == CU_POT_HARMONIC) {
        harm_grad_batch(c, w, g);
        return;
    }
    if (B < 1 || B > c->max_batch) {
        if (!c->err) {
            c->err = BZ_EBACKEND;
            snprintf(c->msg, sizeof c->msg, "mini-batch of %d rows; this CUDA backend was opened for 1 to %d", (int)B,
                     (int)c->max_batch);
        }
        return;
    }
    if (!stage_indices(c, idx, B)) return;
    if (!c->graphs_on) {
        net_grad_batch_body(c, w, B, g);
        return;
    }
    cu_graph_slot *s = graph_slot(c, w, g, B);
    s->last_use = ++c->graph_tick;
    if (!s->exec && s->uses++ >= CU_GRAPH_AFTER && !graph_capture(c, s, w, g, B)) c->graphs_on = false;
    if (s->exec)
        CK(c, cudaGraphLaunch(s->exec, c->st));
    else
        net_grad_batch_body(c, w, B, g);
}

/* ---- potential dispatch ---- */

static double cu_grad_full(be_ctx *c, const float *w, float *g)
{
    if (!cu_enter(c)) return NAN;
    return c->kind == CU_POT_HARMONIC ? harm_grad_full(c, w, g) : net_grad_full(c, w, g);
}

static void cu_observe(be_ctx *c, const float *w, bool with_test, pot_obs *o)
{
    *o = (pot_obs){NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    if (!cu_enter(c)) return;
    if (c->kind == CU_POT_HARMONIC)
        harm_observe(c, w, o);
    else
        net_observe(c, w, with_test, o);
}

static void cu_moments(be_ctx *c, const float *w, const int32_t *idx, int64_t rows, double *g_sum, double *q_sum)
{
    if (!cu_enter(c)) {
        for (int64_t i = 0; i < c->n; i++) g_sum[i] = q_sum[i] = NAN;
        return;
    }
    if (c->kind == CU_POT_HARMONIC)
        harm_moments(c, w, rows, g_sum, q_sum);
    else
        net_moments(c, w, idx, rows, g_sum, q_sum);
}

/* ---- noise: counter-based Philox, state (key, counter) ---- */

typedef struct cu_noise_state {
    uint64_t magic; /* "BZCUPHX1" */
    uint64_t key, ctr;
} cu_noise_state;

#define CU_NOISE_MAGIC 0x3158485055435a42ull

static void cu_noise_seed(be_ctx *c, uint64_t seed, uint64_t stream)
{
    c->noise_key = cu_mix_key(seed, stream);
    c->noise_ctr = 0;
}

static size_t cu_noise_state_size(be_ctx *c)
{
    (void)c;
    return sizeof(cu_noise_state);
}

static void cu_noise_save(be_ctx *c, void *buf)
{
    cu_noise_state s = {CU_NOISE_MAGIC, c->noise_key, c->noise_ctr};
    memcpy(buf, &s, sizeof s);
}

static void cu_noise_load(be_ctx *c, const void *buf)
{
    cu_noise_state s;
    memcpy(&s, buf, sizeof s);
    if (s.magic != CU_NOISE_MAGIC) {
        if (!c->err) {
            c->err = BZ_EBACKEND;
            snprintf(c->msg, sizeof c->msg, "the checkpoint's noise state was not written by the CUDA backend");
        }
        return;
    }
    c->noise_key = s.key;
    c->noise_ctr = s.ctr;
}

/* ---- elementwise ---- */

static void cu_add_noise(be_ctx *c, float *x, float a, const float *s, float s_const, int64_t count)
{
    if (count <= 0 || !cu_enter(c)) return;
    k_noise(c->st, x, a, x, s, s_const, count, c->noise_key, c->noise_ctr++);
    CKL(c, "k_noise");
}

static void cu_axpy(be_ctx *c, float *y, float a, const float *x, const float *v, int64_t count)
{
    if (count <= 0 || !cu_enter(c)) return;
    k_axpy(c->st, y, a, x, v, count);
    CKL(c, "k_axpy");
}

static void reduce_to_host(be_ctx *c, const float *x, const float *y, const float *v, int64_t count, double *sum,
                           double *max)
{
    double s = NAN, m = NAN;
    if (cu_enter(c)) {
        if (count <= 0) {
            s = m = 0.0;
        } else {
            k_reduce(c->st, x, y, v, count, c->partial, c->acc);
            if (CKL(c, "k_reduce") && cu_fetch_acc(c, 2)) s = c->h_acc[0], m = c->h_acc[1];
        }
    }
    if (sum) *sum = s;
    if (max) *max = m;
}

static void cu_sq_stats(be_ctx *c, const float *x, const float *v, int64_t count, double *sum, double *max)
{
    reduce_to_host(c, x, NULL, v, count, sum, max);
}

static double cu_dist2(be_ctx *c, const float *x, const float *y, int64_t count)
{
    double s;
    reduce_to_host(c, x, y, NULL, count, &s, NULL);
    return s;
}

/* max_i x_i^2 v_i queued on the stream; answers with the value queued CU_LAG calls earlier on the
 * same (x, v, count), 0 before there is one. After an error: NaN with lag 0, so the sampler stops
 * at once and sync says why. */
static int cu_sq_max_lagged(be_ctx *c, const float *x, const float *v, int64_t count, double *max)
{
    *max = 0.0;
    if (!cu_enter(c)) {
        *max = NAN;
        return 0;
    }
    if (x != c->lag_x || v != c->lag_v || count != c->lag_count) {
        c->lag_x = x, c->lag_v = v, c->lag_count = count;
        c->lag_calls = 0;
    }
    const int slot = (int)(c->lag_calls % CU_LAG_SLOTS);
    double *d = c->d_lag + 2 * slot;
    if (count > 0) {
        k_reduce(c->st, x, NULL, v, count, c->partial, d);
        CKL(c, "k_reduce");
    } else {
        CK(c, cudaMemsetAsync(d, 0, 2 * sizeof(double), c->st));
    }
    CK(c, cudaMemcpyAsync(c->h_lag + 2 * slot, d, 2 * sizeof(double), cudaMemcpyDeviceToHost, c->st));
    CK(c, cudaEventRecord(c->lag_ev[slot], c->st));
    c->lag_calls++;
    if (c->lag_calls > CU_LAG) {
        const int old = (int)((c->lag_calls - 1 - CU_LAG) % CU_LAG_SLOTS);
        if (CK(c, cudaEventSynchronize(c->lag_ev[old]))) *max = c->h_lag[2 * old + 1];
    }
    if (c->err) {
        *max = NAN;
        return 0;
    }
    return CU_LAG;
}

static void cu_adam(be_ctx *c, float *w, const float *g, float *m1, float *m2, float lr, float b1, float b2, float eps,
                    int64_t t, int64_t count)
{
    if (count <= 0 || !cu_enter(c)) return;
    const double c1 = 1.0 - pow(b1, (double)t), c2 = 1.0 - pow(b2, (double)t);
    k_adam(c->st, w, g, m1, m2, lr, b1, b2, eps, c1, c2, count);
    CKL(c, "k_adam");
}

static int cu_sync(be_ctx *c, bz_err *e)
{
    if (cu_enter(c)) CK(c, cudaStreamSynchronize(c->st));
    if (c->err) return bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: %s", c->msg);
    return 0;
}

/* ---- context ---- */

static void free_dev(void *p)
{
    if (p) cudaFree(p);
}

/* What every handle owns itself, siblings too: graphs, index staging, reduction and lag
 * buffers, host scratch. */
void cu_handle_free(be_ctx *c)
{
    for (int i = 0; i < CU_GRAPH_SLOTS; i++) graph_slot_clear(&c->graphs[i]);
    free_dev(c->d_idx), free_dev(c->partial), free_dev(c->acc), free_dev(c->d_lag);
    if (c->h_acc) cudaFreeHost(c->h_acc);
    if (c->h_lag) cudaFreeHost(c->h_lag);
    if (c->h_idx_ring) cudaFreeHost(c->h_idx_ring);
    for (int i = 0; i < CU_IDX_RING; i++)
        if (c->idx_ev[i]) cudaEventDestroy(c->idx_ev[i]);
    for (int i = 0; i < CU_LAG_SLOTS; i++)
        if (c->lag_ev[i]) cudaEventDestroy(c->lag_ev[i]);
    free(c->host_moments);
    free(c->host_w);
}

/* Forget the per-handle resources (a sibling starts as a copy of its owner). */
void cu_handle_clear(be_ctx *c)
{
    memset(c->graphs, 0, sizeof c->graphs);
    c->graph_tick = 0;
    c->d_idx = NULL, c->h_idx_ring = NULL, c->idx_pos = 0;
    memset(c->idx_ev, 0, sizeof c->idx_ev);
    memset(c->idx_ev_used, 0, sizeof c->idx_ev_used);
    c->partial = NULL, c->acc = NULL, c->h_acc = NULL, c->d_lag = NULL, c->h_lag = NULL;
    memset(c->lag_ev, 0, sizeof c->lag_ev);
    c->lag_calls = 0, c->lag_x = NULL, c->lag_v = NULL, c->lag_count = 0;
    c->host_moments = NULL, c->host_w = NULL;
}

/* Reduction buffers, lag slots and events of one handle. */
bool cu_handle_alloc(be_ctx *c)
{
    bool ok = CK(c, cudaMalloc(&c->partial, 2 * CU_RED_BLOCKS * sizeof(double))) &&
              CK(c, cudaMalloc(&c->acc, CU_ACC * sizeof(double))) &&
              CK(c, cudaMallocHost(&c->h_acc, CU_ACC * sizeof(double))) &&
              CK(c, cudaMalloc(&c->d_lag, 2 * CU_LAG_SLOTS * sizeof(double))) &&
              CK(c, cudaMallocHost(&c->h_lag, 2 * CU_LAG_SLOTS * sizeof(double)));
    for (int i = 0; ok && i < CU_LAG_SLOTS; i++)
        ok = CK(c, cudaEventCreateWithFlags(&c->lag_ev[i], cudaEventDisableTiming));
    for (int i = 0; ok && i < CU_IDX_RING; i++)
        ok = CK(c, cudaEventCreateWithFlags(&c->idx_ev[i], cudaEventDisableTiming));
    return ok;
}

/* The owner's shared part: stream, cuBLAS, data, network workspace, group workspace. */
static void free_shared(be_ctx *c)
{
    cu_group_free(c);
    for (int l = 0; l <= NN_MAX_LAYERS; l++) free_dev(c->act[l]), free_dev(c->delta[l]);
    free_dev(c->sq_in), free_dev(c->sq_delta), free_dev(c->ones);
    free_dev(c->row_loss), free_dev(c->row_wrong);
    free_dev(c->tmp_g), free_dev(c->tmp_q), free_dev(c->g_acc), free_dev(c->q_acc);
    free_dev(c->d_idx_big);
    free_dev(c->train.x), free_dev(c->train.y), free_dev(c->test.x), free_dev(c->test.y);
    free_dev(c->val.x), free_dev(c->val.y);
    if (c->blas) cublasDestroy(c->blas); /* before its workspace */
    free_dev(c->blas_ws);
    if (c->st) cudaStreamDestroy(c->st);
}

/* A handle goes; an owner's shared part goes with the last handle of its group (siblings may be
 * destroyed before or after their owner). */
void cu_ctx_destroy(be_ctx *c)
{
    if (!c) return;
    be_ctx *owner = c->owner ? c->owner : c;
    const bool ready = cudaSetDevice(c->device) == cudaSuccess;
    if (ready && owner->st) cudaStreamSynchronize(owner->st);
    if (ready) {
        cu_handle_free(c);
    } else { /* the device parts are lost with the device; the host parts are ours */
        free(c->host_moments);
        free(c->host_w);
    }
    cu_handle_clear(c);
    if (c->owner) {
        cu_group_forget(owner, c);
        free(c);
    } else {
        c->gone = true; /* the shared part stays while siblings use it */
    }
    if (--owner->refs > 0 || !owner->gone) return;
    if (ready) free_shared(owner);
    cudaGetLastError();
    free(owner);
}

static void cu_destroy(be_ctx *c) { cu_ctx_destroy(c); }

/* Fill e from the context's first error (or a generic line) and free the context. */
static int fail_ctx(be_ctx *c, bz_err *e, const char *what)
{
    int rc = bz_fail(e, BZ_EBACKEND, "backend", "CUDA backend: %s: %s", what, c->err ? c->msg : "unknown failure");
    cu_ctx_destroy(c);
    return rc;
}

void be_cuda_default_opts(be_cuda_opts *o)
{
    const char *g = getenv("BOLTZ_CUDA_GRAPHS");
    *o = (be_cuda_opts){0, false, !(g && !strcmp(g, "0"))};
}

int cu_ctx_create(be_ctx **out, const be_cuda_opts *o, bz_err *e)
{
    *out = NULL;
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess) {
        const char *why = cudaGetErrorString(rc);
        cudaGetLastError();
        return bz_fail(e, BZ_EBACKEND, "backend", "no CUDA device: %s", why);
    }
    if (o->device < 0 || o->device >= count)
        return bz_fail(e, BZ_EBACKEND, "backend", "CUDA device %d does not exist (%d device(s))", o->device, count);
    be_ctx *c = (be_ctx *)calloc(1, sizeof *c);
    if (!c) return bz_fail(e, BZ_ENOMEM, NULL, "out of memory for the CUDA backend");
    c->refs = 1;
    c->device = o->device;
    c->tf32 = o->tf32;
    c->graphs_on = o->graphs;
    bool ok = CK(c, cudaSetDevice(c->device)) && CK(c, cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking)) &&
              CKB(c, cublasCreate(&c->blas)) && CKB(c, cublasSetStream(c->blas, c->st)) &&
              CK(c, cudaMalloc(&c->blas_ws, CU_BLAS_WS)) && CKB(c, cublasSetWorkspace(c->blas, c->blas_ws, CU_BLAS_WS)) &&
              CKB(c, cublasSetMathMode(c->blas, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH)) &&
              cu_handle_alloc(c);
    if (!ok) return fail_ctx(c, e, "cannot set up the device");
    cu_noise_seed(c, 0, 0);
    *out = c;
    return 0;
}

static const be_ops cuda_ops = {
    .name = "cuda",
    .destroy = cu_destroy,
    .alloc = cu_alloc,
    .release = cu_release,
    .upload = cu_upload,
    .download = cu_download,
    .copy = cu_copy,
    .grad_batch = cu_grad_batch,
    .grad_full = cu_grad_full,
    .observe = cu_observe,
    .moments = cu_moments,
    .noise_seed = cu_noise_seed,
    .noise_state_size = cu_noise_state_size,
    .noise_save = cu_noise_save,
    .noise_load = cu_noise_load,
    .add_noise = cu_add_noise,
    .axpy = cu_axpy,
    .sq_stats = cu_sq_stats,
    .dist2 = cu_dist2,
    .adam = cu_adam,
    .sync = cu_sync,
    .sq_max_lagged = cu_sq_max_lagged,
    .grad_batch_group = cu_grad_batch_group,
    .add_noise_group = cu_add_noise_group,
    .axpy_group = cu_axpy_group,
    .sq_max_lagged_group = cu_sq_max_lagged_group,
};

void cu_install(be *out, be_ctx *c)
{
    out->ops = &cuda_ops;
    out->ctx = c;
}
