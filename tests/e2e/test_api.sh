#!/usr/bin/env bash
# tests/e2e/test_api.sh BOLTZD [SRC]: the HTTP API of `boltzd serve` end to end. Starts the real
# daemon on a free loopback port (--listen 127.0.0.1:0 --port-file) with a temporary data dir and
# drives every route with curl: bad input (each gets its status and names the field, the daemon
# stays up), submit / observables in three formats / summary / downloads (.npy checked with
# NumPy), SSE with Last-Event-ID (no missing, no repeated ids) and heartbeats, cancel and delete,
# sweeps, 50 concurrent clients without fd growth, and a clean stop that ends live streams.
# Prints "N passed, N failed"; exits non-zero when anything failed.
set -uo pipefail
BOLTZD=${1:?usage: test_api.sh BOLTZD [SRC]}
PY=/usr/bin/python3
tmp=$(mktemp -d)
DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# ---------------------------------------------------------------- daemon
start_daemon() {
  rm -f "$tmp/port"
  "$BOLTZD" serve --listen 127.0.0.1:0 --data-dir "$tmp/data" --web-dir "$tmp/web" --port-file "$tmp/port" \
    --workers 2 --connection-timeout 3 --max-body 65536 >>"$tmp/daemon.log" 2>&1 &
  DPID=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  PORT=$(cat "$tmp/port" 2>/dev/null)
  B=http://127.0.0.1:$PORT/api/v1
}
alive() { kill -0 "$DPID" 2>/dev/null && curl -sf -o /dev/null "$B/health"; }
nfds() { ls "/proc/$DPID/fd" 2>/dev/null | wc -l; }

# req METHOD PATH [curl args...]: status in $code, body in $tmp/body, headers in $tmp/hdr.
req() {
  local m=$1 p=$2; shift 2
  code=$(curl -s -X "$m" -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' "$@" "$B$p")
}
jget() { jq -r "$1" <"$tmp/body" 2>/dev/null; }
hdr() { grep -i "^$1:" "$tmp/hdr" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

# expect_err NAME STATUS CODE FIELD METHOD PATH [curl args]: an error reply with that status,
# error code and field ("-" for no field check), JSON content type.
expect_err() {
  local name=$1 st=$2 ecode=$3 field=$4; shift 4
  req "$@"
  local got_code got_field ct
  got_code=$(jget .error.code)
  got_field=$(jget '.error.field // ""')
  ct=$(hdr content-type)
  if [ "$code" = "$st" ] && [ "$got_code" = "$ecode" ] && { [ "$field" = - ] || [ "$got_field" = "$field" ]; } &&
     [ "$ct" = application/json ] && [ -n "$(jget .error.message)" ]; then ok "$name"
  else bad "$name: got $code $(head -c 300 "$tmp/body")"; fi
}

# wait_status ID STATUS [seconds]
wait_status() {
  local s
  for _ in $(seq $((${3:-60} * 5))); do
    s=$(curl -s "$B/jobs/$1" | jq -r .status)
    [ "$s" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}

# spec NAME T STEPS [record_every]: a small spin problem.
spec() {
  cat <<JSON
{"name": "$1",
 "dataset": {"kind": "spin", "n_in": 40, "classes": 4, "train": 300, "test": 200, "p_flip": 0.2, "seed": 5},
 "model": {"hidden": [12, 8], "bias": true, "lambda": 0.01},
 "init": {"kind": "random", "seed": 6},
 "sampler": {"method": "pl", "T": $2, "steps": $3, "seed": 3},
 "record": {"every": ${4:-20}}, "samples": {"every": 200}, "checkpoint": {"every": 500, "keep": 3}}
JSON
}
submit() { curl -s -X POST --data-binary "$1" "$B/jobs" | jq -r .id; }

mkdir -p "$tmp/web/sub"
echo '<!doctype html><title>boltzd</title>' >"$tmp/web/index.html"
echo 'body{}' >"$tmp/web/sub/app.css"
echo TOPSECRET-CONTENT >"$tmp/secret.txt"
ln -s "$tmp/secret.txt" "$tmp/web/link.txt"
start_daemon
check "daemon starts and listens" '[ -n "$PORT" ] && alive'

# ---------------------------------------------------------------- health, metrics, static
req GET /health
check "health: ok, version, backends, devices" \
  '[ "$code" = 200 ] && [ "$(jget .status)" = ok ] && [ -n "$(jget .version)" ] && jget .backends | grep -q cpu && [ "$(jget ".devices | length")" -ge 1 ] && [ "$(jget .workers)" = 2 ]'
check "health: JSON with no-store and a final newline" \
  '[ "$(hdr content-type)" = application/json ] && [ "$(hdr cache-control)" = no-store ] && [ "$(tail -c1 "$tmp/body" | od -An -c | tr -d " ")" = "\n" ]'
req GET /metrics
check "metrics: Prometheus text" \
  '[ "$code" = 200 ] && hdr content-type | grep -q text/plain && grep -q "^boltzd_jobs{state=\"queued\"} 0" "$tmp/body" && grep -q "^boltzd_queue_length 0" "$tmp/body" && grep -q "^boltzd_worker_steps_per_second{worker=\"1\"}" "$tmp/body" && grep -q "^boltzd_uptime_seconds" "$tmp/body"'
code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' "http://127.0.0.1:$PORT/")
check "static: / serves index.html as text/html" '[ "$code" = 200 ] && grep -q boltzd "$tmp/body" && hdr content-type | grep -q text/html'
code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' "http://127.0.0.1:$PORT/sub/app.css")
check "static: css content type" '[ "$code" = 200 ] && hdr content-type | grep -q text/css'
for p in /../secret.txt /%2e%2e/secret.txt /sub/../../secret.txt /link.txt /sub/ /.hidden /sub//app.css /nope.js; do
  code=$(curl -s --path-as-is -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$PORT$p")
  check "static: $p is 404 and leaks nothing" '[ "$code" = 404 ] && ! grep -q TOPSECRET "$tmp/body" && jq -e .error.code "$tmp/body" >/dev/null'
done
B0=$B; B=http://127.0.0.1:$PORT
expect_err "static: POST / is 405" 405 method_not_allowed - POST / -d x
B=$B0

# ---------------------------------------------------------------- bad input
expect_err "bad JSON" 400 invalid_spec - POST /jobs -d '{bad'
expect_err "empty body" 400 invalid_spec - POST /jobs
expect_err "a JSON array instead of an object" 400 invalid_spec - POST /jobs -d '[1,2]'
expect_err "wrong type: T a string" 400 invalid_spec sampler.T POST /jobs -d '{"sampler":{"T":"hot","steps":10}}'
expect_err "wrong type: steps a bool" 400 invalid_spec sampler.steps POST /jobs -d '{"sampler":{"T":0.001,"steps":true}}'
expect_err "wrong type: hidden not a list" 400 invalid_spec model.hidden POST /jobs -d '{"sampler":{"T":0.001,"steps":10},"model":{"hidden":"big"}}'
expect_err "unknown top-level field" 400 invalid_spec foo POST /jobs -d '{"foo":1,"sampler":{"T":0.001,"steps":10}}'
expect_err "unknown nested field" 400 invalid_spec model.depth POST /jobs -d '{"sampler":{"T":0.001,"steps":10},"model":{"depth":3}}'
expect_err "negative T" 400 invalid_spec sampler.T POST /jobs -d '{"sampler":{"T":-1e-3,"steps":10}}'
expect_err "negative T in a sweep" 400 invalid_spec - POST /jobs -d '{"sampler":{"T":[1e-3,-1],"steps":10}}'
expect_err "missing steps" 400 invalid_spec sampler.steps POST /jobs -d '{"sampler":{"T":0.001}}'
expect_err "negative steps" 400 invalid_spec sampler.steps POST /jobs -d '{"sampler":{"T":0.001,"steps":-5}}'
expect_err "unknown method" 400 invalid_spec sampler.method POST /jobs -d '{"sampler":{"method":"magic","T":0.001,"steps":10}}'
expect_err "huge layers" 400 limit model.hidden POST /jobs -d '{"sampler":{"T":0.001,"steps":10},"model":{"hidden":[100000,100000]}}'
expect_err "duplicate keys" 400 invalid_spec - POST /jobs -d '{"sampler":{"T":0.001,"steps":10},"sampler":{"T":0.1,"steps":1}}'
head -c 200000 /dev/zero | tr '\0' ' ' >"$tmp/big.json"
expect_err "body over the cap" 413 too_large - POST /jobs --data-binary @"$tmp/big.json"
expect_err "chunked body over the cap" 413 too_large - POST /jobs -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big.json"
expect_err "bad X-Boltz-User" 400 invalid_header X-Boltz-User POST /jobs -H 'X-Boltz-User: a b' --data-binary "$(spec x 0.001 10)"
expect_err "bad priority" 400 invalid_parameter priority POST "/jobs?priority=high" --data-binary "$(spec x 0.001 10)"
for p in /jobs/999 /jobs/999/observables /jobs/999/stream /jobs/999/summary /jobs/999/checkpoints \
         /jobs/999/checkpoints/1 /jobs/999/samples /jobs/999/samples/0.npy; do
  expect_err "unknown job: GET $p" 404 not_found - GET "$p"
done
expect_err "unknown job: cancel" 404 not_found - POST /jobs/999/cancel
expect_err "unknown job: delete" 404 not_found - DELETE /jobs/999
for p in /jobs/1abc /jobs/0 /jobs/-1 /jobs/01 /jobs//1 /jobs/1/ /jobs/1/samples/x.npy /jobs/1/samples/1 /nope /api/v2/jobs; do
  expect_err "path trick: $p" 404 no_route - GET "$p"
done
code=$(curl -s --path-as-is -o "$tmp/body" -w '%{http_code}' "$B/jobs/../health")
check "path trick: /jobs/../health is not resolved" '[ "$code" = 404 ]'
expect_err "wrong method: PUT /jobs" 405 method_not_allowed - PUT /jobs -d x
check "405 carries Allow" 'hdr allow | grep -q POST && hdr allow | grep -q GET'
expect_err "wrong method: DELETE /health" 405 method_not_allowed - DELETE /health
expect_err "wrong method: GET /jobs/1/cancel" 405 method_not_allowed - GET /jobs/1/cancel
expect_err "list: bad status" 400 invalid_parameter status GET "/jobs?status=bogus"
expect_err "list: limit too big" 400 invalid_parameter limit GET "/jobs?limit=5000"
expect_err "list: negative offset" 400 invalid_parameter offset GET "/jobs?offset=-1"
check "the daemon is still up after the bad input" alive

# ---------------------------------------------------------------- one short job
req POST /jobs --data-binary "$(spec short 0.001 2000)" -H 'X-Boltz-User: alice'
J1=$(jget .id)
check "submit: 201, Location, queued, owner" \
  '[ "$code" = 201 ] && [ "$(hdr location)" = "/api/v1/jobs/$J1" ] && [ "$(jget .owner)" = alice ] && [ "$(jget .spec.sampler.r_max)" != null ]'
check "short job succeeds" 'wait_status "$J1" succeeded 60'
req GET "/jobs/$J1"
check "job view: progress 1, times, backend" \
  '[ "$(jget .progress)" = 1 ] && [ "$(jget .backend)" = cpu ] && jget .finished | grep -q "Z$" && [ "$(jget .eta_s)" = null ]'
expect_err "invalid query: limit=-3" 400 invalid_parameter limit GET "/jobs/$J1/observables?limit=-3"
expect_err "invalid query: format=xml" 400 invalid_parameter format GET "/jobs/$J1/observables?format=xml"
expect_err "invalid query: since=abc" 400 invalid_parameter since GET "/jobs/$J1/observables?since=abc"
expect_err "invalid query: summary burn_in=2" 400 invalid_parameter burn_in GET "/jobs/$J1/summary?burn_in=2"
req GET "/jobs/$J1/observables"
n_json=$(jget '.records | length')
check "observables json: 101 records, nulls for NaN, last_step" \
  '[ "$n_json" = 101 ] && [ "$(jget .count)" = 101 ] && [ "$(jget .last_step)" = 2000 ] && [ "$(jget ".records[0].val_err")" = null ]'
req GET "/jobs/$J1/observables?format=csv"
check "observables csv: header + 101 rows, text/csv" \
  '[ "$(wc -l <"$tmp/body")" = 102 ] && head -1 "$tmp/body" | grep -q "^step,t_wall,T,chain,U" && hdr content-type | grep -q text/csv'
req GET "/jobs/$J1/observables?format=ndjson&since=1000&limit=5"
check "observables ndjson: since exclusive, limit" \
  '[ "$(wc -l <"$tmp/body")" = 5 ] && [ "$(head -1 "$tmp/body" | jq .step)" = 1020 ] && hdr content-type | grep -q ndjson'
req GET "/jobs/$J1/observables?since=2000"
check "observables past the end: empty" '[ "$(jget .count)" = 0 ] && [ "$(jget .last_step)" = null ]'
req GET "/jobs/$J1/summary"
check "summary: U mean and stderr" '[ "$(jget .records)" = 101 ] && [ "$(jget ".observables.U.mean | type")" = number ]'
req GET "/jobs/$J1/checkpoints"
nck=$(jget '.checkpoints | length')
seq=$(jget '.checkpoints[-1].seq')
size=$(jget '.checkpoints[-1].size')
cstep=$(jget '.checkpoints[-1].step')
check "checkpoints: listed with step, size, hex checksum" '[ "$nck" -ge 1 ] && [ "$cstep" = 2000 ] && jget ".checkpoints[0].checksum" | grep -qE "^[0-9a-f]{16}$"'
req GET "/jobs/$J1/checkpoints/$seq"
cp "$tmp/body" "$tmp/ck.bzc"
check "checkpoint download: Content-Length, filename" \
  '[ "$code" = 200 ] && [ "$(hdr content-length)" = "$size" ] && [ "$(stat -c %s "$tmp/ck.bzc")" = "$size" ] && hdr content-disposition | grep -q "filename=\"job-$J1-ckpt-$seq.bzc\""'
sum=$(curl -s "$B/jobs/$J1/checkpoints" | jq -r ".checkpoints[-1].checksum")
check "checkpoint download: bytes match the listed checksum (FNV-1a 64)" \
  '[ "$($PY -c "import sys
h=0xcbf29ce484222325
for b in open(sys.argv[1],\"rb\").read(): h=((h^b)*0x100000001b3)&0xffffffffffffffff
print(\"%016x\"%h)" "$tmp/ck.bzc")" = "$sum" ]'
curl -s -o "$tmp/w.npy" -D "$tmp/hdr" "$B/jobs/$J1/checkpoints/$seq/weights.npy"
req GET "/jobs/$J1/samples"
ns=$(jget .count)
check "samples index: 11 samples, steps" '[ "$ns" = 11 ] && [ "$(jget ".steps[-1]")" = 2000 ]'
curl -s -o "$tmp/s.npy" -D "$tmp/hdr" "$B/jobs/$J1/samples/$((ns - 1)).npy"
check "sample download: Content-Length, filename" \
  '[ "$(hdr content-length)" = "$(stat -c %s "$tmp/s.npy")" ] && hdr content-disposition | grep -q "job-$J1-sample-$((ns - 1)).npy"'
check ".npy files load with NumPy; last sample == final checkpoint weights" \
  '$PY -c "import numpy as np,sys; w=np.load(sys.argv[1]); s=np.load(sys.argv[2]); assert w.dtype==np.float32 and w.shape==(632,) and s.shape==(632,) and np.isfinite(w).all() and (w==s).all()" "$tmp/w.npy" "$tmp/s.npy"'
expect_err "sample k past the end: 404" 404 not_found - GET "/jobs/$J1/samples/$ns.npy"
expect_err "checkpoint seq unknown: 404" 404 not_found - GET "/jobs/$J1/checkpoints/999"
expect_err "cancel a finished job: 409" 409 conflict - POST "/jobs/$J1/cancel"

# ---------------------------------------------------------------- SSE
J2=$(submit "$(spec stream 0.001 40000 100)")
curl -sN --max-time 2 "$B/jobs/$J2/stream" >"$tmp/sse1"
last=$(grep '^id: ' "$tmp/sse1" | tail -1 | cut -d' ' -f2)
check "SSE: retry first, observable events with id" \
  '[ "$(head -1 "$tmp/sse1")" = "retry: 2000" ] && grep -q "^event: observable" "$tmp/sse1" && [ -n "$last" ]'
curl -sN --max-time 60 -H "Last-Event-ID: $last" "$B/jobs/$J2/stream" >"$tmp/sse2"
rc=$?
check "SSE: resumed stream ends by itself with the final status" \
  '[ $rc = 0 ] && tail -3 "$tmp/sse2" | grep -q "\"status\":\"succeeded\""'
cat "$tmp/sse1" "$tmp/sse2" | grep '^id: ' | cut -d' ' -f2 >"$tmp/ids"
curl -s "$B/jobs/$J2/observables?format=ndjson&limit=100000" | jq .step >"$tmp/steps"
check "SSE: no missing, no repeated ids across the resume" 'cmp -s "$tmp/ids" "$tmp/steps" && [ "$(wc -l <"$tmp/ids")" = 401 ]'
check "SSE: data lines are the JSON records" \
  '[ "$(grep -m1 "^data: {\"step\"" "$tmp/sse2" | cut -c7- | jq .T)" = 0.001 ]'
curl -sN --max-time 10 "$B/jobs/$J2/stream?since=39900" >"$tmp/sse3"
check "SSE: ?since= resumes too" '[ "$(grep -c "^id: " "$tmp/sse3")" = 1 ]'
expect_err "SSE: bad Last-Event-ID" 400 invalid_parameter Last-Event-ID GET "/jobs/$J2/stream" -H 'Last-Event-ID: abc'

# ---------------------------------------------------------------- cancel, delete, heartbeat
L1=$(submit "$(spec long1 0.001 100000000 1000)")
L2=$(submit "$(spec long2 0.001 100000000 1000)")
wait_status "$L1" running 30 && wait_status "$L2" running 30
Q=$(submit "$(spec queued 0.001 1000)")
check "with both workers busy a third job stays queued" 'sleep 1; [ "$(curl -s "$B/jobs/$Q" | jq -r .status)" = queued ]'
req GET /metrics
check "metrics: running 2, queue 1, steps/s > 0" \
  'grep -q "^boltzd_jobs{state=\"running\"} 2" "$tmp/body" && grep -q "^boltzd_queue_length 1" "$tmp/body" && awk "/^boltzd_worker_steps_per_second/ {if (\$2 > 0) n++} END {exit n < 1}" "$tmp/body"'
curl -sN --max-time 4 "$B/jobs/$Q/stream" >"$tmp/sse_q"
check "SSE: heartbeat comments while nothing happens" 'grep -q "^: keepalive" "$tmp/sse_q" && grep -q "\"status\":\"queued\"" "$tmp/sse_q"'
expect_err "delete a running job: 409" 409 conflict - DELETE "/jobs/$L1"
req POST "/jobs/$Q/cancel"
check "cancel a queued job: cancelled at once" '[ "$code" = 200 ] && [ "$(jget .status)" = cancelled ]'

# ---------------------------------------------------------------- 50 concurrent clients
sleep 1.5
fd0=$(nfds)
pids=()
for i in $(seq 25); do
  ( for _ in 1 2 3 4; do
      curl -s -o /dev/null "$B/jobs/$L1"; curl -s -o /dev/null "$B/jobs/$L2/observables?limit=50"
      curl -s -o /dev/null "$B/jobs?limit=10"; curl -s -o /dev/null "$B/metrics"
    done ) &
  pids+=($!)
  curl -sN --max-time $((1 + i % 3)) "$B/jobs/$(( i % 2 ? L1 : L2 ))/stream" -o "$tmp/c$i.sse" &
  pids+=($!)
done
wait "${pids[@]}"
nsse=$(cat "$tmp"/c*.sse | grep -c '^id: ')
check "50 clients: the streams got records" '[ "$nsse" -gt 25 ]'
sleep 2.5
fd1=$(nfds)
check "50 clients come and go: no fd leak ($fd0 -> $fd1)" '[ "$fd1" -le $((fd0 + 2)) ]'
check "the daemon is still up after the crowd" alive

req POST "/jobs/$L1/cancel"
check "cancel a running job: requested" '[ "$code" = 200 ] && [ "$(jget .cancel_requested)" = true ] || [ "$(jget .status)" = cancelled ]'
check "the running job ends cancelled" 'wait_status "$L1" cancelled 30'
expect_err "cancel it again: 409" 409 conflict - POST "/jobs/$L1/cancel"
check "the job folder exists before delete" '[ -d "$tmp/data/jobs/$L1" ]'
req DELETE "/jobs/$L1"
check "delete a cancelled job: 200, files gone" '[ "$code" = 200 ] && [ "$(jget .deleted)" = true ] && [ ! -e "$tmp/data/jobs/$L1" ]'
expect_err "deleted job is 404" 404 not_found - GET "/jobs/$L1"

# ---------------------------------------------------------------- sweeps
curl -s -X POST "$B/jobs/$L2/cancel" >/dev/null
wait_status "$L2" cancelled 30
req POST "/jobs?priority=3" --data-binary "$(spec sweep '[1e-5, 1e-4, 1e-3]' 2000)"
SW=$(jget .id)
check "sweep: parent with 3 children, T null" \
  '[ "$code" = 201 ] && [ "$(jget .n_children)" = 3 ] && [ "$(jget .T)" = null ] && [ "$(jget ".children | length")" = 3 ] && [ "$(jget .priority)" = 3 ]'
for _ in $(seq 150); do
  [ "$(curl -s "$B/jobs/$SW" | jq '[.children[] | select(.status == "succeeded")] | length')" = 3 ] && break
  sleep 0.2
done
req GET "/jobs/$SW"
check "sweep: summary_vs_T has U per temperature, in T order" \
  '[ "$(jget "[.summary_vs_T[] | select(.U.mean != null)] | length")" = 3 ] && [ "$(jget "[.summary_vs_T[].T] == [1e-5, 1e-4, 1e-3]")" = true ]'
check "sweep: children have distinct seeds and single temperatures" \
  '[ "$(jget "[.children[].id] | length")" = 3 ] && [ "$(curl -s "$B/jobs/$(jget ".children[1].id")" | jq ".spec.sampler.seed, .spec.sampler.T" | tr "\n" " ")" = "1000006 0.0001 " ]'
req GET "/jobs?parent=$SW"
check "list ?parent= shows the children" '[ "$(jget .count)" = 3 ]'
req GET "/jobs?limit=100"
check "list: top-level jobs only" '[ "$(jget "[.jobs[] | select(.parent_id != null)] | length")" = 0 ] && [ "$(jget "[.jobs[] | select(.id == $SW)] | length")" = 1 ]'
req GET "/jobs?owner=alice&status=succeeded"
check "list: owner and status filters" '[ "$(jget .count)" = 1 ] && [ "$(jget ".jobs[0].id")" = "$J1" ]'
req GET "/jobs/$SW/summary"
check "sweep summary route: the table" '[ "$(jget ".summary_vs_T | length")" = 3 ]'
kid=$(curl -s "$B/jobs?parent=$SW" | jq '.jobs[0].id')
req DELETE "/jobs/$SW"
check "delete a sweep: parent and children gone" \
  '[ "$code" = 200 ] && [ "$(jget .children_deleted)" = 3 ] && [ "$(curl -s -o /dev/null -w "%{http_code}" "$B/jobs/$kid")" = 404 ] && [ ! -e "$tmp/data/jobs/$kid" ]'

# ---------------------------------------------------------------- stop with a live stream
L3=$(submit "$(spec long3 0.001 100000000 1000)")
wait_status "$L3" running 30
curl -sN --max-time 30 "$B/jobs/$L3/stream" >"$tmp/sse_stop" &
cpid=$!
sleep 1
t0=$(date +%s)
kill -TERM "$DPID"
wait "$cpid"
crc=$?
wait "$DPID"
drc=$?
DPID=
t1=$(date +%s)
check "SIGTERM ends live streams and the daemon exits 0 ($((t1 - t0)) s)" '[ $drc = 0 ] && [ $crc = 0 ] && [ $((t1 - t0)) -le 10 ]'

[ "$fail" = 0 ] || { echo "--- daemon log (last 40 lines)"; tail -40 "$tmp/daemon.log"; }
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
