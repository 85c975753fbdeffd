#!/usr/bin/env bash
# tests/e2e/test_batched.sh BOLTZD: a batched sweep with replica exchange in `boltzd serve`, end to
# end. Four chains of a tiny net run as one job; the daemon is killed with SIGKILL mid-run and
# restarted; the group resumes from its checkpoint and finishes. Then:
#   - every chain job has records at steps 0, 200, ..., 12000 exactly once, each naming its chain
#     and T, with ex_acc in [0, 1] below the highest T and null at it;
#   - the records equal (t_wall and var_cost aside) those of `boltzd run` on the same spec without
#     any interruption: nothing lost, repeated or changed by the kill and the resume;
#   - /exchange: per pair the attempts that the step implies (pair k is tried in every other round),
#     accepts / attempts = the acceptance, the replicas a permutation of the chains;
#   - the parent's observables page by page and its SSE stream hold every chain's records once;
#   - one checkpoint file (on the parent) holds all four chains, each chain's weights readable;
#   - each chain's weight samples: steps 0, 2000, ..., 12000, none lost or repeated;
#   - SIGTERM mid-run: the group is checkpointed where each chain stands (a stop can fall between
#     exchange rounds, chains at different steps) and requeued; after a restart it finishes with
#     records again equal to the reference run's, and every checkpoint row's file is on disk;
#   - a chain of a batched sweep cannot be cancelled alone (409); cancelling the sweep cancels all.
# Prints "batched: N passed, N failed"; exits non-zero when anything failed.
set -uo pipefail
BOLTZD=${1:?usage: test_batched.sh BOLTZD}
. "$(dirname "$0")/daemon_lib.sh"
tmp=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill -9 $PID 2>/dev/null; rm -rf "$tmp"' EXIT
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
K=4
STEPS=12000

cat >"$tmp/job.json" <<JSON
{"name": "batched-px",
 "dataset": {"kind": "spin", "n_in": 20, "classes": 3, "train": 200, "test": 100, "p_flip": 0.2, "seed": 5},
 "model": {"hidden": [8, 6], "lambda": 0.01},
 "sampler": {"method": "pl", "T": [0.01, 0.014, 0.02, 0.028], "steps": $STEPS, "batch": 32, "update_every": 500,
             "seed": 11},
 "batched": true, "exchange": {"every": 50},
 "record": {"every": 200}, "samples": {"every": 2000}, "checkpoint": {"every": 2000, "keep": 3}}
JSON

# The reference: the same spec through `boltzd run`, never interrupted (chain-K/observables.ndjson).
"$BOLTZD" run "$tmp/job.json" --out "$tmp/ref" --quiet 2>"$tmp/ref.log" && ok "boltzd run: the reference run" ||
  bad "boltzd run: $(tail -3 "$tmp/ref.log")"

start_daemon "$tmp/data" || exit 1
job=$(submit "$tmp/job.json")
[ -n "$job" ] && ok "submitted batched sweep $job" || bad "submit"
curl -s "$BASE/jobs/$job" >"$tmp/job0.json"
check "the parent says batched, exchange every 50, $K chains" \
  "$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[\"batched\"] is True and d[\"spec\"][\"exchange\"][\"every\"] == 50 and d[\"n_children\"] == $K and len(d[\"children\"]) == $K, d' $tmp/job0.json"
kids=$($PY -c 'import json,sys; print(" ".join(str(c["id"]) for c in sorted(json.load(open(sys.argv[1]))["children"], key=lambda c: c["chain"])))' "$tmp/job0.json")

# Kill -9 once a group checkpoint exists and the run is not over.
for _ in $(seq 1 300); do
  n=$(curl -s "$BASE/jobs/$job/checkpoints" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["checkpoints"]))' 2>/dev/null)
  [ "${n:-0}" -ge 1 ] && break
  sleep 0.05
done
curl -s "$BASE/jobs/$job" >"$tmp/before.json"
kill -9 $PID
wait $PID 2>/dev/null
check "killed with SIGKILL mid-run (running, step < $STEPS on every chain, a checkpoint written)" \
  "$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[\"status\"] == \"running\" and all(c[\"step\"] < $STEPS for c in d[\"children\"]), [(c[\"status\"], c[\"step\"]) for c in d[\"children\"]]' $tmp/before.json && [ \"${n:-0}\" -ge 1 ]"

start_daemon "$tmp/data" || exit 1
grep -q "back in the queue" "$tmp/data.log" && ok "recovery requeued the interrupted chains" || bad "no recovery line in the log"
if wait_status "$job" succeeded 120; then ok "the group resumed and finished"; else bad "the group did not finish"; fi
grep -q "job $job ($K chains) resumes from checkpoint" "$tmp/data.log" && ok "the worker resumed the group from its checkpoint" ||
  bad "no group resume in the log: $(grep "job $job" "$tmp/data.log" | tail -3)"
curl -s "$BASE/jobs/$job" >"$tmp/job.json.out"
check "every chain job succeeded at step $STEPS" \
  "$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert all(c[\"status\"] == \"succeeded\" and c[\"step\"] == $STEPS for c in d[\"children\"]), d[\"children\"]' $tmp/job.json.out"

# The records of the chain jobs given (in chain order) into $tmp/obs-K.ndjson.
fetch_chain_records() {
  local k=0 c
  for c in "$@"; do
    curl -s "$BASE/jobs/$c/observables?format=ndjson&limit=100000" >"$tmp/obs-$k.ndjson"
    k=$((k + 1))
  done
}

# Every chain's records equal the uninterrupted `boltzd run` reference's, step for step
# (wall-clock fields aside).
same_as_reference() {
  $PY - "$tmp" $K <<'PY'
import json, sys
tmp, K = sys.argv[1], int(sys.argv[2])
skip = {"t_wall", "var_cost"}
for k in range(K):
    mine = [json.loads(l) for l in open(f"{tmp}/obs-{k}.ndjson")]
    ref = [json.loads(l) for l in open(f"{tmp}/ref/chain-{k}/observables.ndjson")]
    assert [r["step"] for r in mine] == [r["step"] for r in ref], (k, len(mine), len(ref))
    for a, b in zip(mine, ref):
        diff = {x for x in a if x not in skip and a[x] != b.get(x)}
        assert not diff, (k, a["step"], {x: (a[x], b.get(x)) for x in diff})
PY
}

fetch_chain_records $kids
if $PY - "$tmp" $K $STEPS <<'PY'
import json, sys
tmp, K, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
T = [0.01, 0.014, 0.02, 0.028]
for k in range(K):
    recs = [json.loads(l) for l in open(f"{tmp}/obs-{k}.ndjson")]
    got = [r["step"] for r in recs]
    assert got == list(range(0, steps + 1, 200)), (k, len(got), got[:3], got[-3:])
    assert all(r["chain"] == k and r["T"] == T[k] for r in recs), k
    acc = [r["ex_acc"] for r in recs[1:]]  # step 0: no exchange yet
    if k < K - 1:
        assert all(a is not None and 0.0 <= a <= 1.0 for a in acc), (k, acc[:5])
    else:
        assert all(a is None for a in acc), (k, acc[:5])
PY
then ok "records: steps 0..$STEPS every 200 once per chain, chain and T named, ex_acc in [0, 1] (null at the top T)"
else bad "records per chain"; fi

if same_as_reference; then ok "records equal the uninterrupted boltzd run's (t_wall, var_cost aside): the kill and resume changed nothing"
else bad "records differ from the reference run"; fi

curl -s "$BASE/jobs/$job/exchange" >"$tmp/ex.json"
if $PY - "$tmp/ex.json" "$tmp/obs-" $K $STEPS <<'PY'
import json, sys
ex, prefix, K, steps = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rounds = steps // 50
assert ex["every"] == 50 and ex["step"] == steps and ex["rounds"] == rounds, ex
assert len(ex["pairs"]) == K - 1, ex
for k, p in enumerate(ex["pairs"]):
    last = json.loads(open(f"{prefix}{k}.ndjson").read().splitlines()[-1])
    assert p["attempts"] == (rounds + 1) // 2 if k % 2 == 0 else rounds // 2, p
    assert abs(p["acceptance"] - last["ex_acc"]) < 1e-9, (p, last["ex_acc"])  # ndjson prints 10 digits
    assert abs(p["accepts"] / p["attempts"] - p["acceptance"]) < 1e-12, p
assert sorted(int(r) for r in ex["replicas"]) == list(range(K)), ex["replicas"]
assert ex["round_trips"] is not None and ex["round_trips"] >= 0 and ex["round_trips"] == int(ex["round_trips"]), ex
print("     acceptance per pair:", [round(p["acceptance"], 3) for p in ex["pairs"]], "round trips:", ex["round_trips"])
PY
then ok "/exchange: attempts from the step, accepts/attempts = acceptance, replicas a permutation, round trips counted"
else bad "/exchange: $(head -c 400 "$tmp/ex.json")"; fi
curl -s -o /dev/null -w '%{http_code}' "$BASE/jobs/$(echo $kids | cut -d' ' -f1)/exchange" >"$tmp/code"
check "/exchange of a chain job: 404" "[ \"\$(cat $tmp/code)\" = 404 ]"

# The parent's records: all chains, paged with limit 7 (pages end on a step), and its SSE stream.
if $PY - "$BASE" "$job" "$tmp/obs-" $K <<'PY'
import json, sys, urllib.request
base, job, prefix, K = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
want = sorted((json.loads(l)["step"], json.loads(l)["chain"]) for k in range(K) for l in open(f"{prefix}{k}.ndjson"))
got, since = [], -1
while True:
    page = json.load(urllib.request.urlopen(f"{base}/jobs/{job}/observables?limit=7&since={since}"))
    if page["count"] == 0:
        break
    steps = [r["step"] for r in page["records"]]
    assert len(set(steps[-1:] + steps)) >= 1 and page["count"] <= 7 + K - 1, page["count"]
    got += [(r["step"], r["chain"]) for r in page["records"]]
    since = page["last_step"]
assert got == want, (len(got), len(want))
PY
then ok "parent observables: every chain's records once, in (step, chain) order, across pages of 7"
else bad "parent observables paging"; fi
timeout 20 curl -sN "$BASE/jobs/$job/stream" >"$tmp/sse.txt"
if $PY - "$tmp/sse.txt" $K $STEPS <<'PY'
import json, sys
text, K, steps = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3])
events = [b for b in text.split("\n\n") if b.startswith("event: observable")]
recs = [json.loads(b.split("data: ", 1)[1]) for b in events]
assert [(r["step"], r["chain"]) for r in recs] == [(s, k) for s in range(0, steps + 1, 200) for k in range(K)], len(recs)
ids = [b for b in events if "\nid: " in b]
assert len(ids) == steps // 200 + 1 and all(json.loads(b.split("data: ", 1)[1])["chain"] == K - 1 for b in ids)
assert '"status":"succeeded"' in text
PY
then ok "parent SSE stream: every chain's records once, the id on each step's last chain, then the final status"
else bad "parent SSE stream"; fi

# One checkpoint file holds every chain.
seq=$(curl -s "$BASE/jobs/$job/checkpoints" | $PY -c 'import json,sys; print(json.load(sys.stdin)["checkpoints"][-1]["seq"])')
curl -s -o "$tmp/group.bzc" "$BASE/jobs/$job/checkpoints/$seq"
for k in $(seq 0 $K); do curl -s -o "$tmp/w$k.npy" -w '%{http_code}\n' "$BASE/jobs/$job/checkpoints/$seq/weights.npy?chain=$k"; done >"$tmp/codes"
if $PY - "$tmp" $K $STEPS <<'PY'
import struct, sys
import numpy as np
tmp, K, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = open(f"{tmp}/group.bzc", "rb").read()
assert b[:8] == b"BZCKPT\r\n"
version, hbytes, n, spec_hash, method, chain, step, nsec, _ = struct.unpack_from("<IIQQiiqII", b, 8)
assert chain == -1 and step == steps, (chain, step)
tags, off = [], hbytes  # header_bytes counts from the start of the file
for _ in range(nsec):
    tag = b[off:off + 16].rstrip(b"\0").decode()
    size, = struct.unpack_from("<Q", b, off + 16)
    tags.append(tag)
    off += 24 + size
for k in range(K):
    assert f"c{k}/w" in tags, (k, tags)
assert f"c{K}/w" not in tags
codes = open(f"{tmp}/codes").read().split()
assert codes == ["200"] * K + ["404"], codes
ws = [np.load(f"{tmp}/w{k}.npy") for k in range(K)]
assert all(w.shape == (n,) and np.all(np.isfinite(w)) for w in ws)
assert all(not np.array_equal(ws[0], w) for w in ws[1:])  # four configurations, not one
PY
then ok "one checkpoint (on the parent) holds all $K chains: c0/w..c$((K - 1))/w, each as weights.npy?chain=k"
else bad "group checkpoint: $(tr '\n' ' ' <"$tmp/codes")"; fi
check "chain jobs hold no checkpoint rows of their own" \
  "[ \"\$(curl -s $BASE/jobs/$(echo $kids | cut -d' ' -f1)/checkpoints | $PY -c 'import json,sys; print(len(json.load(sys.stdin)[\"checkpoints\"]))')\" = 0 ]"
allsamples=1
for c in $kids; do
  curl -s "$BASE/jobs/$c/samples" | $PY -c "import json,sys; d=json.load(sys.stdin); assert d['steps'] == list(range(0, $STEPS + 1, 2000)), d['steps']" || allsamples=0
done
check "weight samples of every chain: steps 0, 2000, ..., $STEPS, none lost or repeated" "[ $allsamples = 1 ]"

# SIGTERM mid-run: checkpoint, requeue, resume at the next start, same records as the reference.
sed "s/batched-px/batched-px-term/" "$tmp/job.json" >"$tmp/term.json"
job3=$(submit "$tmp/term.json")
for _ in $(seq 1 300); do
  n=$(curl -s "$BASE/jobs/$job3/checkpoints" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["checkpoints"]))' 2>/dev/null)
  [ "${n:-0}" -ge 1 ] && break
  sleep 0.05
done
stop_daemon
grep -q "job $job3 queued" "$tmp/data.log" && ok "SIGTERM: the running group was checkpointed and requeued" ||
  bad "SIGTERM: not requeued: $(grep "job $job3" "$tmp/data.log" | tail -2)"
start_daemon "$tmp/data" || exit 1
if wait_status "$job3" succeeded 120; then ok "after SIGTERM and a restart the group finished"; else bad "group after SIGTERM did not finish"; fi
fetch_chain_records $(curl -s "$BASE/jobs/$job3" | $PY -c 'import json,sys; print(" ".join(str(c["id"]) for c in sorted(json.load(sys.stdin)["children"], key=lambda c: c["chain"])))')
if same_as_reference; then ok "after SIGTERM: records equal the reference run's, every step once"
else bad "after SIGTERM: records differ from the reference run"; fi
files_ok=1
for s in $(curl -s "$BASE/jobs/$job3/checkpoints" | $PY -c 'import json,sys; print(" ".join(str(c["seq"]) for c in json.load(sys.stdin)["checkpoints"]))'); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/jobs/$job3/checkpoints/$s")" = 200 ] || files_ok=0
done
check "every checkpoint row of the group has its file" "[ $files_ok = 1 ]"

# Cancelling: a chain alone is refused; the sweep cancels every chain.
sed "s/\"steps\": $STEPS/\"steps\": 100000000/; s/batched-px/batched-long/" "$tmp/job.json" >"$tmp/long.json"
job2=$(submit "$tmp/long.json")
wait_status "$job2" running 30
kid2=$(curl -s "$BASE/jobs/$job2" | $PY -c 'import json,sys; print(json.load(sys.stdin)["children"][1]["id"])')
code=$(curl -s -o "$tmp/c.json" -w '%{http_code}' -X POST "$BASE/jobs/$kid2/cancel")
check "cancel one chain of a batched sweep: 409 naming the sweep" \
  "[ $code = 409 ] && grep -q 'batched sweep $job2' $tmp/c.json"
curl -s -o /dev/null -X POST "$BASE/jobs/$job2/cancel"
if wait_status "$job2" cancelled 20; then ok "cancel the batched sweep: cancelled"; else bad "sweep not cancelled"; fi
check "every chain of the cancelled sweep is cancelled" \
  "curl -s $BASE/jobs/$job2 | $PY -c 'import json,sys; d=json.load(sys.stdin); assert [c[\"status\"] for c in d[\"children\"]] == [\"cancelled\"] * $K, d[\"children\"]'"
stop_daemon
PID=
echo "batched: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
