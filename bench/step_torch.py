"""step_torch.py: the PyTorch side of bench/step.

The network of bench_step.c (linear + ReLU hidden layers, softmax cross-entropy, float32) written
as a researcher would in PyTorch: one forward+backward on a mini-batch gathered by index_select
from a P = 4096 data tensor, a fresh random index list per rep (drawn outside the timed region,
as in bench_step.c), grads cleared with p.grad = None inside it. Prints one JSON line per size:
{"size", "median_us", "iqr_us"} (plus reps, threads); a description of the build goes to stderr.
"""
import argparse
import ctypes
import json
import math
import re
import sys
import time

import torch
import torch.nn.functional as F

P = 4096
SIZES = {
    "small": ([500, 20, 100, 10], 200),
    "medium": ([500, 200, 100, 10], 200),
    "large": ([500, 2000, 100, 10], 50),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=0, help="0: per-size default (200, 200, 50)")
    ap.add_argument("--sizes", default="small,medium,large")
    ap.add_argument("--batch", type=int, default=128)
    return ap.parse_args()


def make_params(widths, gen):
    """He-uniform weights (as nn_init_he), zero biases, as leaf tensors that want grads."""
    params = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        lim = math.sqrt(6.0 / n_in)
        w = (torch.rand(n_out, n_in, generator=gen) * 2.0 - 1.0) * lim
        params.append((w.requires_grad_(), torch.zeros(n_out, requires_grad=True)))
    return params


def step(x, y, idx, params):
    """One forward+backward of the mean cross-entropy over the rows idx of (x, y)."""
    for w, b in params:
        w.grad = None
        b.grad = None
    h = x.index_select(0, idx)
    for k, (w, b) in enumerate(params):
        h = F.linear(h, w, b)
        if k + 1 < len(params):
            h = F.relu(h)
    loss = F.cross_entropy(h, y.index_select(0, idx))
    loss.backward()


def quantile(sorted_v, q):
    """Linear-interpolation quantile, as in bench_step.c."""
    pos = q * (len(sorted_v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (pos - lo) * (sorted_v[hi] - sorted_v[lo])


def measure(widths, reps, batch, gen):
    x = torch.randn(P, widths[0], generator=gen)
    y = torch.randint(0, widths[-1], (P,), generator=gen)
    params = make_params(widths, gen)
    times = []
    for r in range(max(5, reps // 5) + reps):
        idx = torch.randperm(P, generator=gen)[:batch]
        t0 = time.perf_counter_ns()
        step(x, y, idx, params)
        times.append((time.perf_counter_ns() - t0) * 1e-3)
    times = sorted(times[-reps:])
    return quantile(times, 0.5), quantile(times, 0.75) - quantile(times, 0.25)


def pin_blas_threads(n):
    """torch.set_num_threads does not reach an OpenBLAS that torch calls through libblas (Debian's
    BLAS_INFO=generic build): that one keeps nproc threads. Set it directly, as bench_step.c does.
    Returns the library path, or None when no OpenBLAS is loaded."""
    with open("/proc/self/maps") as maps:
        libs = sorted({ln.split()[-1] for ln in maps if "libopenblas" in ln})
    if not libs:
        return None
    lib = ctypes.CDLL(libs[0])
    lib.openblas_set_num_threads(n)
    return f"{libs[0]} ({lib.openblas_get_num_threads()} threads)"


def describe_build(blas_lib):
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    print(f"torch {torch.__version__}: intra-op threads {torch.get_num_threads()}, "
          f"BLAS_INFO={blas.group(1) if blas else '?'}, OpenBLAS {blas_lib or 'not loaded'}",
          file=sys.stderr)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    F.linear(torch.ones(2, 2), torch.ones(2, 2))  # loads the BLAS library before pinning it
    describe_build(pin_blas_threads(args.threads))
    gen = torch.Generator().manual_seed(2)
    for name in args.sizes.split(","):
        if name not in SIZES:
            sys.exit(f"step_torch.py: unknown size '{name}' (small, medium, large)")
        widths, default_reps = SIZES[name]
        reps = args.reps or default_reps
        med, iqr = measure(widths, reps, args.batch, gen)
        print(json.dumps({"size": name, "median_us": round(med, 3), "iqr_us": round(iqr, 3),
                          "reps": reps, "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
