/* be_cuda.h: the CUDA backend of backend.h (DESIGN.md "The backend interface"; issue 5).
 *
 * The data set lives on the device; a mini-batch is gathered there from the host-drawn index list
 * (copied asynchronously through pinned memory); forward/backward run on cuBLAS in float32 (TF32
 * tensor cores only with precision "tf32"); bias+ReLU, softmax cross-entropy, the O/B/A updates
 * and the reductions are own kernels; Gaussian noise is cuRAND's Philox4x32-10, counter-based,
 * so its state is (key, counter) and a checkpoint resumes the same noise sequence on CUDA.
 * Mini-batch gradients with the same buffers are captured in a CUDA graph after two calls (set
 * BOLTZ_CUDA_GRAPHS=0 to turn that off).
 *
 * Errors: every CUDA/cuBLAS call is checked; the first failure is kept in the context (file:line,
 * call, the library's message), later calls do nothing, calls that return a value return NaN,
 * and ops->sync reports it as BZ_EBACKEND. Nothing here prints or exits. */
#ifndef BZ_BE_CUDA_H
#define BZ_BE_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

typedef struct be_cuda_opts {
    int device;   /* CUDA device index (0 ...) */
    bool tf32;    /* TF32 tensor-core GEMMs (spec "precision": "tf32"); false: plain float32 */
    bool graphs;  /* capture mini-batch gradients in CUDA graphs */
} be_cuda_opts;

/* device 0, float32, graphs on unless the environment has BOLTZ_CUDA_GRAPHS=0. */
void be_cuda_default_opts(be_cuda_opts *o);

/* The network potential on the device. max_batch: the largest mini-batch grad_batch will get.
 * Fails with BZ_ENOMEM and "needs X MiB on CUDA device D, Y MiB free" when the job does not fit,
 * before allocating anything large; BZ_EBACKEND when the device cannot be used. arch and data
 * are copied (data to the device); they need not outlive the backend. */
int be_cuda_network(be *out, const nn_arch *a, const ds_data *d, double lambda, int32_t max_batch,
                    const be_cuda_opts *o, bz_err *e);

/* K handles of one network job on one device, for a batched group of K chains (multichain's
 * lockstep mode): out[0] holds the data, stream, cuBLAS and workspace, out[1..K) share them and
 * keep their own noise, index staging and reductions (each chain's streams and checkpoints are
 * those of a handle of its own). ops->grad_batch_group on out[0] computes the mini-batch
 * gradients of up to K chains whose buffers live on these handles in one pass of batched GEMMs
 * (gpu/cuda_group.cu). Every handle is used from one thread; destroy them in any order. Fails
 * with BZ_ENOMEM naming the shortfall when K chains do not fit the device. */
int be_cuda_network_group(be *out, int32_t K, const nn_arch *a, const ds_data *d, double lambda, int32_t max_batch,
                          const be_cuda_opts *o, bz_err *e);

/* Device bytes be_cuda_network needs for this job (data, workspace, and room for the samplers'
 * parameter buffers): the figure of the start-up memory check. */
int64_t be_cuda_network_bytes(const nn_arch *a, const ds_data *d, int32_t max_batch);

/* The harmonic target of tests/unit/synth.h on the device, for the sampler tests: n independent
 * wells U = sum k w_i^2 / 2, mini-batch gradient k w + N(0, s2) (noise from its own Philox key
 * from seed), moments consistent with s2 for batch B of P; n_groups equal groups. */
int be_cuda_harmonic(be *out, int64_t n, double k, double s2, int32_t P, int32_t B, int32_t n_groups, uint64_t seed,
                     const be_cuda_opts *o, bz_err *e);

#endif
