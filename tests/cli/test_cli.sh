#!/usr/bin/env bash
# tests/cli/test_cli.sh BOLTZD SRC: the boltzd CLI end to end. Builds a small spin data set,
# draws weights, evaluates them, and checks the result against an independent NumPy forward
# pass over the written .npy files; then bad input: each must fail with a message naming the
# field or file. Prints "N passed, N failed".
set -uo pipefail
BOLTZD=$1
SRC=$2
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# expect_fail NAME PATTERN CMD...: CMD exits non-zero and its stderr matches PATTERN.
expect_fail() {
  local name=$1 pat=$2; shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err"; then bad "$name (exit 0)"; return; fi
  if grep -qE -- "$pat" "$tmp/err"; then ok "$name"; else bad "$name: stderr was: $(cat "$tmp/err")"; fi
}

cat >"$tmp/spec.json" <<'JSON'
{"name": "cli-test",
 "dataset": {"kind": "spin", "n_in": 40, "classes": 4, "train": 300, "test": 200, "p_flip": 0.2, "seed": 5},
 "model": {"hidden": [12, 8], "bias": true, "lambda": 0.01},
 "init": {"kind": "random", "seed": 6},
 "sampler": {"method": "pl", "T": 0.001, "steps": 100}}
JSON

# --- happy path ---
if "$BOLTZD" check "$tmp/spec.json" >"$tmp/norm.json" && grep -q '"r_max"' "$tmp/norm.json"; then
  ok "check prints the normalised spec with defaults"
else bad "check"; fi

if "$BOLTZD" dataset "$tmp/spec.json" --out "$tmp/data" >"$tmp/ds.json" &&
   [ -s "$tmp/data/x_train.npy" ] && [ -s "$tmp/data/y_test.npy" ]; then ok "dataset writes four .npy files"
else bad "dataset: $(cat "$tmp/ds.json")"; fi

if "$BOLTZD" init "$tmp/spec.json" --out "$tmp/w.npy" >/dev/null; then ok "init writes weights"
else bad "init"; fi

if "$BOLTZD" eval "$tmp/spec.json" --weights "$tmp/w.npy" --grad-out "$tmp/g.npy" >"$tmp/eval.json"; then
  ok "eval runs"
else bad "eval: $(cat "$tmp/eval.json")"; fi

# Independent reference: NumPy forward pass in float64 over the written files.
if $PY - "$tmp" <<'PY'
import json, sys
import numpy as np
d = sys.argv[1]
ev = json.load(open(f"{d}/eval.json"))
ds = json.load(open(f"{d}/ds.json"))
x, y = np.load(f"{d}/data/x_train.npy").astype(np.float64), np.load(f"{d}/data/y_train.npy")
xt, yt = np.load(f"{d}/data/x_test.npy").astype(np.float64), np.load(f"{d}/data/y_test.npy")
w = np.load(f"{d}/w.npy").astype(np.float64)
g = np.load(f"{d}/g.npy")
sizes, lam = [40, 12, 8, 4], 0.01
assert x.shape == (300, 40) and y.shape == (300,) and xt.shape == (200, 40), (x.shape, y.shape, xt.shape)
assert ds["train_class_counts"] == [75] * 4, ds
assert w.shape == (sum(b * a + b for a, b in zip(sizes[:-1], sizes[1:])),) and g.shape == w.shape
def forward(x):
    off, a = 0, x
    for l, (n0, n1) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = w[off:off + n0 * n1].reshape(n1, n0); off += n0 * n1
        b = w[off:off + n1]; off += n1
        a = a @ W.T + b
        if l < len(sizes) - 2: a = np.maximum(a, 0)
    return a
def loss_err(x, y):
    z = forward(x); m = z.max(1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(1)) + m[:, 0]
    return (lse - z[np.arange(len(y)), y]).mean(), (z.argmax(1) != y).mean()
loss, err = loss_err(x, y)
tloss, terr = loss_err(xt, yt)
w2 = (w ** 2).mean()
U = loss + 0.5 * lam * w2
for name, ref in [("U", U), ("loss", loss), ("w2", w2), ("train_err", err), ("test_err", terr), ("test_loss", tloss)]:
    assert abs(ev[name] - ref) <= 1e-5 * (1 + abs(ref)), (name, ev[name], ref)
assert ev["n"] == len(w)
PY
then ok "eval matches an independent NumPy forward pass (U, loss, w2, errors)"
else bad "eval disagrees with NumPy"; fi

# --- bad input ---
sed 's/"T": 0.001/"T": -1/' "$tmp/spec.json" >"$tmp/badT.json"
expect_fail "negative T names sampler.T" 'sampler\.T' "$BOLTZD" check "$tmp/badT.json"
sed 's/"lambda"/"lambdaa"/' "$tmp/spec.json" >"$tmp/typo.json"
expect_fail "unknown field is rejected by name" 'lambdaa' "$BOLTZD" check "$tmp/typo.json"
expect_fail "missing spec file names it" 'nope\.json' "$BOLTZD" check "$tmp/nope.json"
$PY -c "import numpy as np; np.save('$tmp/short.npy', np.zeros(7, np.float32)); np.save('$tmp/f64.npy', np.zeros(7))"
expect_fail "weights of the wrong length" 'short\.npy.*7' "$BOLTZD" eval "$tmp/spec.json" --weights "$tmp/short.npy"
expect_fail "weights of the wrong dtype" 'float64|f8' "$BOLTZD" eval "$tmp/spec.json" --weights "$tmp/f64.npy"
printf 'not a npy file at all' >"$tmp/junk.npy"
expect_fail "a non-npy weights file" 'junk\.npy' "$BOLTZD" eval "$tmp/spec.json" --weights "$tmp/junk.npy"
expect_fail "unknown command" 'unknown command' "$BOLTZD" frobnicate
expect_fail "unknown option" 'unknown option' "$BOLTZD" eval "$tmp/spec.json" --wieghts w.npy
if "$BOLTZD" eval --help >/dev/null; then ok "--help exits 0"; else bad "--help"; fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
