/* cuda_kernels.cu: the CUDA backend's own kernels (gather, bias+ReLU, softmax cross-entropy, ReLU
 * mask, squares, double accumulation, the O/B/A updates, Philox noise, reductions, Adam) and
 * their launchers (declared in cuda_impl.h). Launchers only enqueue; the caller checks
 * cudaGetLastError.
 *
 * Elementwise updates round like the CPU reference (core/be_cpu.c): each multiply and add is a
 * separate IEEE operation (__fmul_rn, __fadd_rn, no fused multiply-add), so axpy and adam give
 * the CPU's bits for the same inputs. Reductions are deterministic: a fixed grid of partial sums
 * (it depends only on the count), then one block in a fixed order. */
#include <curand_kernel.h>
#include <math.h>

#include "cuda_impl.h"

#define THREADS 256

static unsigned blocks_for(int64_t count, int64_t per_block)
{
    int64_t b = (count + per_block - 1) / per_block;
    if (b < 1) b = 1;
    if (b > 65535LL * 16) b = 65535LL * 16; /* grid-stride loops cover the rest */
    return (unsigned)b;
}

/* ---- network ---- */

/* out (rows, cols) = x[idx[k]] row by row. */
__global__ static void gather_kernel(const float *x, const int32_t *idx, int32_t rows, int32_t cols, float *out)
{
    const int64_t total = (int64_t)rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t k = i / cols, j = i - k * cols;
        out[i] = x[(int64_t)idx[k] * cols + j];
    }
}

void k_gather(cudaStream_t st, const float *x, const int32_t *idx, int32_t rows, int32_t cols, float *out)
{
    gather_kernel<<<blocks_for((int64_t)rows * cols, THREADS), THREADS, 0, st>>>(x, idx, rows, cols, out);
}

/* The bias of row `row`: b, or with per-chain biases bk (a group's batched gradient: rows of
 * chain k are [k rpc, (k + 1) rpc)) that of the row's chain. */
__device__ static const float *row_bias(const float *b, const float *const *bk, int64_t row, int32_t rpc)
{
    return bk ? bk[row / rpc] : b;
}

/* out (rows, cols) += bias (per column), then max(0, .) when relu. */
__global__ static void bias_act_kernel(float *out, const float *b, const float *const *bk, int32_t rpc, int32_t rows,
                                       int32_t cols, bool relu)
{
    const int64_t total = (int64_t)rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        float v = out[i];
        const float *bias = row_bias(b, bk, i / cols, rpc);
        if (bias) v = __fadd_rn(v, bias[i % cols]);
        if (relu) v = v > 0.0f ? v : 0.0f;
        out[i] = v;
    }
}

void k_bias_act(cudaStream_t st, float *out, const float *b, int32_t rows, int32_t cols, bool relu)
{
    if (!b && !relu) return;
    bias_act_kernel<<<blocks_for((int64_t)rows * cols, THREADS), THREADS, 0, st>>>(out, b, NULL, 1, rows, cols, relu);
}

void k_bias_act_group(cudaStream_t st, float *out, const float *const *bk, int32_t rpc, int32_t rows, int32_t cols,
                      bool relu)
{
    if (!bk && !relu) return;
    bias_act_kernel<<<blocks_for((int64_t)rows * cols, THREADS), THREADS, 0, st>>>(out, NULL, bk, rpc, rows, cols,
                                                                                   relu);
}

/* One warp per row: max and argmax (lowest index on ties, as core/nn.c), then the sum of
 * exp(z - zmax) in double, loss log(sum) + zmax - z_y, and softmax - onehot into delta. */
__global__ static void softmax_xent_kernel(const float *z, const float *b_all, const float *const *bk, int32_t rpc,
                                           int32_t rows, int32_t C, const int32_t *y, const int32_t *idx, float *delta,
                                           double *row_loss, int32_t *row_wrong)
{
    const int warps = blockDim.x / 32, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * warps + threadIdx.x / 32;
    if (row >= rows) return;
    const float *b = row_bias(b_all, bk, row, rpc);
    const float *zr = z + row * C;
    float m = -INFINITY;
    int arg = C; /* no candidate yet */
    for (int c = lane; c < C; c += 32) {
        float v = b ? __fadd_rn(zr[c], b[c]) : zr[c];
        if (arg == C || v > m) m = v, arg = c;
    }
    for (int off = 16; off > 0; off >>= 1) {
        float m2 = __shfl_down_sync(0xffffffffu, m, off);
        int a2 = __shfl_down_sync(0xffffffffu, arg, off);
        if (a2 < C && (arg == C || m2 > m || (m2 == m && a2 < arg))) m = m2, arg = a2;
    }
    m = __shfl_sync(0xffffffffu, m, 0);
    arg = __shfl_sync(0xffffffffu, arg, 0);
    double sum = 0.0;
    for (int c = lane; c < C; c += 32) {
        float v = b ? __fadd_rn(zr[c], b[c]) : zr[c];
        sum += exp((double)v - (double)m);
    }
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, off);
    sum = __shfl_sync(0xffffffffu, sum, 0);
    const int32_t label = y[idx ? idx[row] : row];
    if (delta) { /* as core/nn.c: float terms times the float reciprocal of the double sum */
        const float inv = (float)(1.0 / sum);
        float *dr = delta + row * C;
        for (int c = lane; c < C; c += 32) {
            float v = b ? __fadd_rn(zr[c], b[c]) : zr[c];
            float p = __fmul_rn((float)exp((double)v - (double)m), inv);
            dr[c] = c == label ? __fsub_rn(p, 1.0f) : p;
        }
    }
    if (lane == 0) {
        float zy = b ? __fadd_rn(zr[label], b[label]) : zr[label];
        row_loss[row] = log(sum) + (double)m - (double)zy;
        row_wrong[row] = arg != label;
    }
}

void k_softmax_xent(cudaStream_t st, const float *z, const float *b, int32_t rows, int32_t C, const int32_t *y,
                    const int32_t *idx, float *delta, double *row_loss, int32_t *row_wrong)
{
    const int warps = THREADS / 32;
    unsigned grid = (unsigned)((rows + warps - 1) / warps);
    softmax_xent_kernel<<<grid > 0 ? grid : 1, THREADS, 0, st>>>(z, b, NULL, 1, rows, C, y, idx, delta, row_loss,
                                                                 row_wrong);
}

void k_softmax_xent_group(cudaStream_t st, const float *z, const float *const *bk, int32_t rpc, int32_t rows, int32_t C,
                          const int32_t *y, const int32_t *idx, float *delta, double *row_loss, int32_t *row_wrong)
{
    const int warps = THREADS / 32;
    unsigned grid = (unsigned)((rows + warps - 1) / warps);
    softmax_xent_kernel<<<grid > 0 ? grid : 1, THREADS, 0, st>>>(z, NULL, bk, rpc, rows, C, y, idx, delta, row_loss,
                                                                 row_wrong);
}

__global__ static void rows_sum_kernel(const double *row_loss, const int32_t *row_wrong, int32_t rows, double *acc)
{
    __shared__ double sl[THREADS], sw[THREADS];
    double l = 0.0, w = 0.0;
    for (int32_t k = threadIdx.x; k < rows; k += blockDim.x) l += row_loss[k], w += row_wrong[k];
    sl[threadIdx.x] = l;
    sw[threadIdx.x] = w;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sl[threadIdx.x] += sl[threadIdx.x + s], sw[threadIdx.x] += sw[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) acc[0] += sl[0], acc[1] += sw[0];
}

void k_rows_sum(cudaStream_t st, const double *row_loss, const int32_t *row_wrong, int32_t rows, double *acc)
{
    rows_sum_kernel<<<1, THREADS, 0, st>>>(row_loss, row_wrong, rows, acc);
}

__global__ static void relu_mask_kernel(float *delta, const float *act, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
        if (!(act[i] > 0.0f)) delta[i] = 0.0f;
}

void k_relu_mask(cudaStream_t st, float *delta, const float *act, int64_t count)
{
    relu_mask_kernel<<<blocks_for(count, THREADS), THREADS, 0, st>>>(delta, act, count);
}

__global__ static void square_kernel(const float *in, float *out, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __fmul_rn(in[i], in[i]);
}

void k_square(cudaStream_t st, const float *in, float *out, int64_t count)
{
    square_kernel<<<blocks_for(count, THREADS), THREADS, 0, st>>>(in, out, count);
}

__global__ static void add_double_kernel(double *acc, const float *v, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
        acc[i] += (double)v[i];
}

void k_add_double(cudaStream_t st, double *acc, const float *v, int64_t count)
{
    add_double_kernel<<<blocks_for(count, THREADS), THREADS, 0, st>>>(acc, v, count);
}

/* ---- sampler updates ---- */

/* y += a x (* v), grid-stride over blockIdx.x (shared by the single and the group kernel). */
__device__ static void axpy_span(float *y, float a, const float *x, const float *v, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x) {
        float t = __fmul_rn(a, x[i]);
        if (v) t = __fmul_rn(t, v[i]);
        y[i] = __fadd_rn(y[i], t);
    }
}

__global__ static void axpy_kernel(float *y, float a, const float *x, const float *v, int64_t count)
{
    axpy_span(y, a, x, v, count);
}

void k_axpy(cudaStream_t st, float *y, float a, const float *x, const float *v, int64_t count)
{
    axpy_kernel<<<blocks_for(count, THREADS), THREADS, 0, st>>>(y, a, x, v, count);
}

/* Group kernels: grid.y = the chain k of a lockstep group, each chain's vectors from device
 * arrays of pointers; per chain exactly the single kernel's arithmetic. */
static dim3 group_grid(int64_t per_chain_blocks, int32_t m)
{
    if (per_chain_blocks > 4096) per_chain_blocks = 4096; /* grid-stride loops cover the rest */
    return dim3((unsigned)per_chain_blocks, (unsigned)m);
}

/* y[k] += a x[k] (* v[k] when v is non-NULL), rounding as axpy_kernel. */
__global__ static void axpy_group_kernel(float *const *y, float a, const float *const *x, const float *const *v,
                                         int64_t count)
{
    const int k = blockIdx.y;
    axpy_span(y[k], a, x[k], v ? v[k] : NULL, count);
}

void k_axpy_group(cudaStream_t st, float *const *y, float a, const float *const *x, const float *const *v, int32_t m,
                  int64_t count)
{
    axpy_group_kernel<<<group_grid(blocks_for(count, THREADS), m), THREADS, 0, st>>>(y, a, x, v, count);
}

__global__ static void scale_kernel(float *out, float a, const float *in, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __fmul_rn(a, in[i]);
}

void k_scale(cudaStream_t st, float *out, float a, const float *in, int64_t count)
{
    scale_kernel<<<blocks_for(count, THREADS), THREADS, 0, st>>>(out, a, in, count);
}

__global__ static void fill_kernel(float *x, float v, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = v;
}

void k_fill(cudaStream_t st, float *x, float v, int64_t count)
{
    fill_kernel<<<blocks_for(count, THREADS), THREADS, 0, st>>>(x, v, count);
}

/* Thread t owns components 4t..4t+3 and draws them with one curand_normal4 from Philox at
 * subsequence t, position ctr: the normal of component i in call ctr depends only on (key, i,
 * ctr), never on the launch shape (grid-stride over blockIdx.x; shared by the single and the
 * group kernel, so a chain's noise is the same bits either way). */
__device__ static void noise_span(float *out, float a, const float *in, const float *sd, float s_const,
                                  int64_t count, uint64_t key, uint64_t ctr)
{
    const int64_t groups = (count + 3) / 4;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < groups; t += (int64_t)gridDim.x * blockDim.x) {
        curandStatePhilox4_32_10_t s;
        curand_init(key, (unsigned long long)t, 4ull * ctr, &s);
        float4 xi = curand_normal4(&s);
        const float z[4] = {xi.x, xi.y, xi.z, xi.w};
        for (int j = 0; j < 4; j++) {
            int64_t i = 4 * t + j;
            if (i >= count) break;
            float s_i = sd ? sd[i] : s_const;
            out[i] = __fadd_rn(__fmul_rn(a, in[i]), __fmul_rn(s_i, z[j]));
        }
    }
}

__global__ static void noise_kernel(float *out, float a, const float *in, const float *sd, float s_const,
                                    int64_t count, uint64_t key, uint64_t ctr)
{
    noise_span(out, a, in, sd, s_const, count, key, ctr);
}

void k_noise(cudaStream_t st, float *out, float a, const float *in, const float *sd, float s_const, int64_t count,
             uint64_t key, uint64_t ctr)
{
    noise_kernel<<<blocks_for((count + 3) / 4, THREADS), THREADS, 0, st>>>(out, a, in, sd, s_const, count, key, ctr);
}

/* x[k] = a x[k] + s_k xi for every chain k (grid.y), xi from chain k's Philox (key[k], counter
 * ctr[k]) exactly as noise_kernel draws it; s_k = sd[k][i] (sd non-NULL) or s_const[k]. */
__global__ static void noise_group_kernel(float *const *x, float a, const float *const *sd, const float *s_const,
                                          const uint64_t *key, const uint64_t *ctr, int64_t count)
{
    const int k = blockIdx.y;
    noise_span(x[k], a, x[k], sd ? sd[k] : NULL, s_const ? s_const[k] : 0.0f, count, key[k], ctr[k]);
}

void k_noise_group(cudaStream_t st, float *const *x, float a, const float *const *sd, const float *s_const,
                   const uint64_t *key, const uint64_t *ctr, int32_t m, int64_t count)
{
    noise_group_kernel<<<group_grid(blocks_for((count + 3) / 4, THREADS), m), THREADS, 0, st>>>(x, a, sd, s_const, key,
                                                                                                ctr, count);
}

/* max that lets a NaN through (as cpu_sq_stats: "if (q > m || q != q) m = q") */
__device__ static double max_nan(double m, double q) { return (q > m || q != q) ? q : m; }

__device__ static void block_reduce(double *ss, double *sm, double s, double m)
{
    ss[threadIdx.x] = s;
    sm[threadIdx.x] = m;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) {
            ss[threadIdx.x] += ss[threadIdx.x + k];
            sm[threadIdx.x] = max_nan(sm[threadIdx.x], sm[threadIdx.x + k]);
        }
        __syncthreads();
    }
}

/* First pass of one vector's reduction: this block's sum and max of q_i into partial[blockIdx.x]
 * and partial[CU_RED_BLOCKS + blockIdx.x] (shared by the single and the group kernel). */
__device__ static void reduce_span(const float *x, const float *y, const float *v, int64_t count, double *partial)
{
    __shared__ double ss[THREADS], sm[THREADS];
    double s = 0.0, m = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x) {
        double q;
        if (y) {
            double d = (double)x[i] - (double)y[i];
            q = __dmul_rn(d, d);
        } else {
            q = __dmul_rn((double)x[i], (double)x[i]);
            if (v) q = __dmul_rn(q, (double)v[i]);
        }
        s += q;
        m = max_nan(m, q);
    }
    block_reduce(ss, sm, s, m);
    if (threadIdx.x == 0) partial[blockIdx.x] = ss[0], partial[CU_RED_BLOCKS + blockIdx.x] = sm[0];
}

__global__ static void reduce_pass1(const float *x, const float *y, const float *v, int64_t count, double *partial)
{
    reduce_span(x, y, v, count, partial);
}

/* The second pass of one vector's partials: out[0] the sum, out[1] the max. */
__device__ static void reduce_pass2_body(const double *partial, int nblocks, double *out)
{
    __shared__ double ss[THREADS], sm[THREADS];
    double s = 0.0, m = 0.0;
    for (int k = threadIdx.x; k < nblocks; k += blockDim.x) s += partial[k], m = max_nan(m, partial[CU_RED_BLOCKS + k]);
    block_reduce(ss, sm, s, m);
    if (threadIdx.x == 0) out[0] = ss[0], out[1] = sm[0];
}

__global__ static void reduce_pass2(const double *partial, int nblocks, double *out)
{
    reduce_pass2_body(partial, nblocks, out);
}

void k_reduce(cudaStream_t st, const float *x, const float *y, const float *v, int64_t count, double *partial,
              double *out)
{
    unsigned nb = blocks_for(count, 4 * THREADS);
    if (nb > CU_RED_BLOCKS) nb = CU_RED_BLOCKS;
    reduce_pass1<<<nb, THREADS, 0, st>>>(x, y, v, count, partial);
    reduce_pass2<<<1, THREADS, 0, st>>>(partial, (int)nb, out);
}

/* Per chain k: the sum and max of x[k]_i^2 v[k]_i (v NULL: 1) into out[2k], out[2k+1], as
 * k_reduce does for one vector (partial: 2 CU_RED_BLOCKS doubles per chain). */
__global__ static void reduce_group_pass1(const float *const *x, const float *const *v, int64_t count, double *partial)
{
    const int k = blockIdx.y;
    reduce_span(x[k], NULL, v ? v[k] : NULL, count, partial + (size_t)k * 2 * CU_RED_BLOCKS);
}

__global__ static void reduce_group_pass2(const double *partial, int nblocks, double *out)
{
    const int k = blockIdx.x;
    reduce_pass2_body(partial + (size_t)k * 2 * CU_RED_BLOCKS, nblocks, out + 2 * k);
}

void k_reduce_group(cudaStream_t st, const float *const *x, const float *const *v, int32_t m, int64_t count,
                    double *partial, double *out)
{
    unsigned nb = blocks_for(count, 4 * THREADS);
    if (nb > CU_RED_BLOCKS) nb = CU_RED_BLOCKS;
    reduce_group_pass1<<<dim3(nb, (unsigned)m), THREADS, 0, st>>>(x, v, count, partial);
    reduce_group_pass2<<<(unsigned)m, THREADS, 0, st>>>(partial, (int)nb, out);
}

/* Adam as cpu_adam: float moments, the bias-corrected step in double. */
__global__ static void adam_kernel(float *w, const float *g, float *m1, float *m2, float lr, float b1, float b2,
                                   float eps, double c1, double c2, int64_t count)
{
    const float ob1 = __fsub_rn(1.0f, b1), ob2 = __fsub_rn(1.0f, b2);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x) {
        const float gi = g[i];
        const float a = __fadd_rn(__fmul_rn(b1, m1[i]), __fmul_rn(ob1, gi));
        const float q = __fadd_rn(__fmul_rn(b2, m2[i]), __fmul_rn(__fmul_rn(ob2, gi), gi));
        m1[i] = a;
        m2[i] = q;
        const double mh = __ddiv_rn((double)a, c1), vh = __ddiv_rn((double)q, c2);
        const double step = __ddiv_rn(__dmul_rn((double)lr, mh), __dadd_rn(__dsqrt_rn(vh), (double)eps));
        w[i] = __fsub_rn(w[i], (float)step);
    }
}

void k_adam(cudaStream_t st, float *w, const float *g, float *m1, float *m2, float lr, float b1, float b2, float eps,
            double c1, double c2, int64_t count)
{
    adam_kernel<<<blocks_for(count, THREADS), THREADS, 0, st>>>(w, g, m1, m2, lr, b1, b2, eps, c1, c2, count);
}
