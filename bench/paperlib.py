"""bench/paperlib.py: helpers shared by the paper-reproduction scripts (bench/generalization,
bench/fashion): building and driving the boltzd CLI, reading chain folders, the Sokal error of
ALGORITHM.md section 7 in numpy (for quantities boltzd summary does not cover, e.g. the halves of
a series), the machine/commit header of a table.md, and the common command-line options.

Only the standard library and numpy; matplotlib is imported by the scripts that plot.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_BOLTZD = os.path.join(REPO, "build-paper", "boltzd")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fmt_g(x, digits=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}"


def fmt_pm(mean, se, digits=3):
    """'0.312 ± 0.004' (the error with 1-2 significant digits, the mean to the same decimal)."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if se is None or not math.isfinite(se) or se <= 0:
        return f"{mean:.{digits}g}"
    dec = max(0, 1 - int(math.floor(math.log10(se))))
    return f"{mean:.{dec}f} ± {se:.{dec}f}"


# ---------------------------------------------------------------- building

def build(exe, tag="paper"):
    """Configures (Release, BOLTZ_CUDA=OFF) and builds the boltzd target in exe's folder."""
    bdir = os.path.dirname(os.path.abspath(exe))
    os.makedirs(bdir, exist_ok=True)
    log_path = os.path.join(bdir, f"bench-{tag}-build.log")
    with open(log_path, "w") as logf:
        if not os.path.exists(os.path.join(bdir, "CMakeCache.txt")):
            subprocess.run(["cmake", "-S", REPO, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", "-DBOLTZ_CUDA=OFF"],
                           stdout=logf, stderr=subprocess.STDOUT, check=True)
        r = subprocess.run(["cmake", "--build", bdir, "-j2", "--target", "boltzd"], stdout=logf,
                           stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SystemExit(f"building boltzd failed: see {log_path}")


def resolve_boltzd(path, tag):
    """--boltzd PATH as given, or the default build-paper/boltzd, configured and built if missing
    (an existing one is used as it is: rebuild it by hand after changing the sources)."""
    if path:
        if not os.access(path, os.X_OK):
            raise SystemExit(f"--boltzd {path}: not an executable")
        return os.path.abspath(path)
    if not os.access(DEFAULT_BOLTZD, os.X_OK):
        log(f"building {os.path.relpath(DEFAULT_BOLTZD, REPO)} (Release, BOLTZ_CUDA=OFF)")
        build(DEFAULT_BOLTZD, tag)
    return DEFAULT_BOLTZD


# ---------------------------------------------------------------- chain folders

def read_records(d):
    recs = []
    try:
        with open(os.path.join(d, "observables.ndjson")) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line being written
    except FileNotFoundError:
        pass
    return recs


def read_status(d):
    try:
        with open(os.path.join(d, "status.json")) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def series(recs, key):
    """(steps, t_wall, values) of the records where key is a finite number."""
    st, tw, v = [], [], []
    for r in recs:
        x = r.get(key)
        if isinstance(x, (int, float)) and math.isfinite(x):
            st.append(r["step"])
            tw.append(r["t_wall"])
            v.append(float(x))
    return st, tw, v


class Boltzd:
    def __init__(self, exe, threads):
        self.exe = exe
        self.env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))

    def cmd(self, *args):
        r = subprocess.run([self.exe, *args], env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"boltzd {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def check(self, spec, path):
        with open(path, "w") as f:
            json.dump(spec, f, indent=1)
        return json.loads(self.cmd("check", path))

    def dataset(self, spec, spec_path, out):
        """boltzd dataset: writes the .npy files into out and returns its JSON summary."""
        with open(spec_path, "w") as f:
            json.dump(spec, f, indent=1)
        return json.loads(self.cmd("dataset", spec_path, "--out", out))

    def summary(self, d, burn_in):
        return json.loads(self.cmd("summary", d, "--burn-in", repr(burn_in)))

    def run_chain(self, spec, out, max_seconds=None, watch=None):
        """Runs one chain (boltzd run SPEC --out out --quiet). max_seconds: wall-clock cap of the whole
        process, after which it gets SIGTERM (boltzd then checkpoints and stops); watch(records) ->
        reason string stops it the same way. Returns {wall, stopped (reason or None), status}."""
        if os.path.exists(out):
            shutil.rmtree(out)
        os.makedirs(out)
        spec_path = os.path.join(out, "input-spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f, indent=1)
        t0 = time.monotonic()
        p = subprocess.Popen([self.exe, "run", spec_path, "--out", out, "--quiet"], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reason = None
        while p.poll() is None:
            try:
                p.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            if p.poll() is not None:
                break
            if max_seconds is not None and time.monotonic() - t0 > max_seconds:
                reason = f"wall-clock cap {max_seconds:g} s reached"
            elif watch is not None:
                reason = watch(read_records(out))
            if reason:
                p.send_signal(signal.SIGTERM)
                break
        _, err = p.communicate()
        wall = time.monotonic() - t0
        if p.returncode != 0 and not reason:
            raise RuntimeError(f"boltzd run {spec_path} failed ({p.returncode}): {err.strip()}")
        return {"wall": wall, "stopped": reason, "status": read_status(out).get("status")}


def prune(d):
    """Drops the bulky files of a chain folder (samples, checkpoints)."""
    for f in ("samples.bin",):
        p = os.path.join(d, f)
        if os.path.exists(p):
            os.remove(p)
    shutil.rmtree(os.path.join(d, "checkpoints"), ignore_errors=True)


# ---------------------------------------------------------------- statistics

def sokal(y, c=5.0):
    """Mean, std, standard error and tau_int of a series, as core/analysis.c computes them
    (ALGORITHM.md section 7): C(t) with the 1/m convention, Sokal's window M >= c tau_int(M),
    M capped at m/2, tau_int clamped below at 1/2, stderr = std sqrt(2 tau / m), std with 1/(m-1)."""
    import numpy as np
    y = np.asarray([v for v in y if v is not None and math.isfinite(v)], dtype=float)
    m = len(y)
    if m == 0:
        return {"n": 0, "mean": None, "std": None, "stderr": None, "tau_int": None}
    mean = float(y.mean())
    if m == 1:
        return {"n": 1, "mean": mean, "std": None, "stderr": None, "tau_int": 0.5}
    d = y - mean
    c0 = float(np.dot(d, d)) / m
    std = math.sqrt(float(np.dot(d, d)) / (m - 1))
    tau = 0.5
    if m >= 4 and c0 > 0:
        cap = m // 2
        M = 0
        while True:
            M += 1
            if M > cap:
                M = cap
                break
            tau += float(np.dot(d[:m - M], d[M:])) / m / c0
            if M >= c * tau:
                break
        tau = max(tau, 0.5)
    return {"n": m, "mean": mean, "std": std, "stderr": std * math.sqrt(2 * tau / m), "tau_int": tau}


def post_burn(recs, burn_in):
    """The records after dropping floor(burn_in * n) of them (boltzd summary's convention)."""
    return recs[int(math.floor(burn_in * len(recs))):]


def drift(recs, key, burn_in):
    """Second half minus first half of the post-burn-in values of key, with the error from the two
    halves' Sokal standard errors. Returns {first, second, diff, se, z}."""
    _, _, v = series(post_burn(recs, burn_in), key)
    h = len(v) // 2
    if h < 2:
        return {"first": None, "second": None, "diff": None, "se": None, "z": None}
    a, b = sokal(v[:h]), sokal(v[h:])
    diff = b["mean"] - a["mean"]
    se = math.hypot(a["stderr"] or 0.0, b["stderr"] or 0.0)
    return {"first": a["mean"], "second": b["mean"], "diff": diff, "se": se,
            "z": diff / se if se > 0 else None}


# ---------------------------------------------------------------- report header

def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return cpu, os.cpu_count()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def git_commit():
    r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    c = r.stdout.strip() or "unknown"
    d = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                       capture_output=True, text=True)
    return c + (" (working tree modified)" if d.stdout.strip() else "")


def add_common_args(ap, name):
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run (under ~2 minutes), written to bench/results/{name}/quick/")
    ap.add_argument("--boltzd", default=None,
                    help="boltzd executable (default build-paper/boltzd, configured and built if missing)")
    ap.add_argument("--threads", type=int, default=1, help="OPENBLAS_NUM_THREADS for boltzd (default 1)")
    ap.add_argument("--out", default=None, help=f"results folder (default bench/results/{name}/)")


def out_dir(args, name):
    out = args.out or os.path.join(REPO, "bench", "results", name)
    if args.quick and not args.out:
        out = os.path.join(out, "quick")
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    return out
