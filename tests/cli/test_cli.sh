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

# init kind npy: a weights file as the starting point (same bytes back)
sed "s|\"init\": {\"kind\": \"random\", \"seed\": 6}|\"init\": {\"kind\": \"npy\", \"path\": \"$tmp/w.npy\"}|" \
  "$tmp/spec.json" >"$tmp/from_file.json"
if "$BOLTZD" init "$tmp/from_file.json" --out "$tmp/w_again.npy" >/dev/null && cmp -s "$tmp/w.npy" "$tmp/w_again.npy"; then
  ok "init kind npy starts from the given weights"
else bad "init kind npy"; fi

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

# --- boltzd run: records, samples, checkpoints, summary, msd ---
cat >"$tmp/run.json" <<'JSON'
{"name": "cli-run",
 "dataset": {"kind": "spin", "n_in": 20, "classes": 3, "train": 200, "test": 100, "p_flip": 0.2, "seed": 5},
 "model": {"hidden": [8, 6], "lambda": 0.01},
 "sampler": {"method": "pl", "T": 0.01, "steps": 60000, "batch": 32, "update_every": 500},
 "record": {"every": 500}, "samples": {"every": 1000}, "checkpoint": {"every": 5000, "keep": 2}}
JSON
if "$BOLTZD" run "$tmp/run.json" --out "$tmp/ref" --csv --quiet &&
   grep -q '"succeeded"' "$tmp/ref/status.json" && [ "$(ls "$tmp/ref/checkpoints" | wc -l)" -eq 2 ] &&
   [ "$(wc -l <"$tmp/ref/observables.ndjson")" -eq 121 ] && [ "$(wc -l <"$tmp/ref/observables.csv")" -eq 122 ]; then
  ok "run writes 121 records, CSV, 2 kept checkpoints, status succeeded"
else bad "run: $(cat "$tmp/ref/status.json" 2>/dev/null)"; fi

if "$BOLTZD" summary "$tmp/ref" >"$tmp/sum.json" && $PY -c "
import json,sys; s=json.load(open('$tmp/sum.json'))
u=s['observables']['U']; assert s['records']==121 and u['n']==97 and u['stderr']>0 and u['ess']>0, s" ; then
  ok "summary: 97 records after 20% burn-in, positive stderr and ESS"
else bad "summary"; fi

if "$BOLTZD" msd "$tmp/ref" --bins 10 >"$tmp/msd.json" && $PY -c "
import json; m=json.load(open('$tmp/msd.json')); assert m['samples']==61 and m['D']>0 and len(m['bins'])>=5, m"; then
  ok "msd: 61 samples, positive diffusion coefficient"
else bad "msd: $(cat "$tmp/msd.json")"; fi

if "$BOLTZD" samples "$tmp/ref" --out "$tmp/smp" >/dev/null && $PY -c "
import numpy as np; w=np.load('$tmp/smp.npy'); s=np.load('$tmp/smp_steps.npy')
assert w.shape==(61,243) and list(s[:3])==[0,1000,2000], (w.shape, s[:3])"; then
  ok "samples export: (61, 243) float32 with steps"
else bad "samples export"; fi

# Interrupt with SIGTERM mid-run, resume: the series must equal the uninterrupted one exactly
# (wall-clock fields aside) with no gap or duplicate.
"$BOLTZD" run "$tmp/run.json" --out "$tmp/cut" --quiet &
pid=$!
for _ in $(seq 1 200); do # signal once the chain is running (a few records written)
  [ "$(wc -l <"$tmp/cut/observables.ndjson" 2>/dev/null || echo 0)" -ge 3 ] && break
  sleep 0.02
done
kill -TERM $pid
wait $pid
rc=$?
if [ $rc -eq 143 ] && grep -q '"stopped"' "$tmp/cut/status.json"; then ok "SIGTERM: checkpoint, status stopped, exit 143"
else bad "SIGTERM exit $rc: $(cat "$tmp/cut/status.json" 2>/dev/null)"; fi
if "$BOLTZD" run --resume "$tmp/cut" --quiet && $PY - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
def load(p):
    rows = [json.loads(l) for l in open(p)]
    for r in rows:
        r.pop("t_wall"); r.pop("var_cost")
    return rows
a, b = load(f"{d}/ref/observables.ndjson"), load(f"{d}/cut/observables.ndjson")
assert [r["step"] for r in b] == list(range(0, 60001, 500)), "gaps or duplicates"
assert a == b, "resumed series differs"
PY
then ok "resume after SIGTERM reproduces the uninterrupted series bit for bit"
else bad "resume"; fi
if cmp -s <(tail -c +25 "$tmp/ref/samples.bin" | $PY -c "import sys;d=sys.stdin.buffer.read()
n=243;rec=16+4*n;print(b''.join(d[i*rec:i*rec+8]+d[i*rec+16:(i+1)*rec] for i in range(len(d)//rec)).hex())") \
          <(tail -c +25 "$tmp/cut/samples.bin" | $PY -c "import sys;d=sys.stdin.buffer.read()
n=243;rec=16+4*n;print(b''.join(d[i*rec:i*rec+8]+d[i*rec+16:(i+1)*rec] for i in range(len(d)//rec)).hex())"); then
  ok "resumed samples equal the uninterrupted ones (steps and weights)"
else bad "resumed samples differ"; fi

# Divergence: a failed status naming the step and what to change; earlier records kept.
sed -e 's/"method": "pl", "T": 0.01/"method": "sgld", "T": 0.01, "lr": 1e30/' -e 's/, "update_every": 500//' \
  "$tmp/run.json" >"$tmp/div.json"
expect_fail "divergence is reported" 'diverged at step [0-9]+: .*lower sampler.lr' "$BOLTZD" run "$tmp/div.json" --out "$tmp/div" --quiet
if grep -q '"failed"' "$tmp/div/status.json" && [ "$(head -c 9 "$tmp/div/observables.ndjson")" = '{"step":0' ]; then
  ok "diverged chain: status failed, step-0 record kept"
else bad "diverged chain files"; fi
expect_fail "resume of a folder without spec" 'spec.json' "$BOLTZD" run --resume "$tmp/nothing"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
