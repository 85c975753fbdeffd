#!/usr/bin/env bash
# tests/e2e/test_recovery.sh BOLTZD: the daemon killed with SIGKILL mid-run loses nothing. A job
# runs with frequent checkpoints; the daemon is killed, restarted on the same data dir; the job
# resumes from its last checkpoint and finishes; its observable series has every step exactly
# once; the database passes PRAGMA integrity_check; a second daemon on the same data dir refuses
# to start; SIGTERM checkpoints a running chain and requeues it.
set -uo pipefail
BOLTZD=$1
. "$(dirname "$0")/daemon_lib.sh"
tmp=$(mktemp -d)
trap 'kill -9 $PID 2>/dev/null; rm -rf "$tmp"' EXIT

cat >"$tmp/job.json" <<'JSON'
{"name": "recovery",
 "dataset": {"kind": "spin", "n_in": 20, "classes": 3, "train": 200, "test": 100, "p_flip": 0.2, "seed": 5},
 "model": {"hidden": [8, 6], "lambda": 0.01},
 "sampler": {"method": "pl", "T": 0.01, "steps": 300000, "batch": 32, "update_every": 500},
 "record": {"every": 500}, "samples": {"every": 5000}, "checkpoint": {"every": 10000, "keep": 3}}
JSON

start_daemon "$tmp/data" || exit 1
job=$(submit "$tmp/job.json")
[ -n "$job" ] && ok "submitted job $job" || bad "submit"
# wait until at least one checkpoint exists and some steps are done
for _ in $(seq 1 100); do
  n=$(curl -s "$BASE/jobs/$job/checkpoints" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(len(d["checkpoints"]))' 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 1 ] && break
  sleep 0.1
done
if "$BOLTZD" serve --listen 127.0.0.1:0 --data-dir "$tmp/data" 2>"$tmp/second.log"; then
  bad "a second daemon on the same data dir started"
else
  grep -q "another boltzd" "$tmp/second.log" && ok "a second daemon refuses the data dir" || bad "second daemon: $(cat "$tmp/second.log")"
fi
kill -9 $PID
wait $PID 2>/dev/null
ok "killed the daemon with SIGKILL mid-run"

start_daemon "$tmp/data" || exit 1
grep -q "back in the queue" "$tmp/data.log" && ok "recovery requeued the interrupted job" || bad "no recovery line in the log"
if wait_status "$job" succeeded 120; then ok "the job resumed and finished"; else bad "job did not finish"; fi
curl -s "$BASE/jobs/$job/observables?format=ndjson&limit=100000" >"$tmp/obs.ndjson"
if $PY - "$tmp/obs.ndjson" <<'PY'
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1])]
assert steps == list(range(0, 300001, 500)), (len(steps), steps[:3], steps[-3:])
PY
then ok "observables: every step once, no gap, no duplicate"; else bad "observable series broken"; fi
grep -q "resumes from checkpoint" "$tmp/data.log" && ok "the worker resumed from a checkpoint" || bad "no resume in the log"
curl -s "$BASE/jobs/$job/samples" | $PY -c 'import json,sys; d=json.load(sys.stdin); assert d["count"]==61, d' \
  && ok "samples: 61, none lost or repeated" || bad "samples count"

# SIGTERM with a running job: checkpoint, back to queued, resumes at the next start
sed 's/"steps": 300000/"steps": 3000000/' "$tmp/job.json" >"$tmp/long.json"
job2=$(submit "$tmp/long.json")
wait_status "$job2" running 30
sleep 0.5
t0=$(date +%s.%N)
stop_daemon
t1=$(date +%s.%N)
$PY -c "import sys; sys.exit(0 if $t1 - $t0 < 5 else 1)" && ok "SIGTERM: stopped within 5 s" || bad "slow stop"
grep -q "job $job2 queued" "$tmp/data.log" && ok "SIGTERM requeued the running job" || bad "not requeued: $(tail -3 "$tmp/data.log")"
$PY - "$tmp/data/boltzd.db" <<'PY' && ok "PRAGMA integrity_check: ok" || bad "integrity_check"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
PY
echo "recovery: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
