#!/usr/bin/env bash
# tests/e2e/test_auth.sh BOLTZD [SRC]: users, tokens, quotas and backup of `boltzd serve` end to
# end. Users and tokens are made with the CLI on the daemon's data dir (before the start and while
# it runs); the real daemon runs with auth on (--auth on over a config file that says off) on a
# free loopback port and is driven with curl: 401 without / with a wrong / malformed / revoked
# token (WWW-Authenticate: Bearer), the owner is the token's user, everyone reads every job, 403
# when another user cancels or deletes, an admin may; the limits of the config file (429 quota,
# 400 limit naming the key and the field); `boltzd backup` while a job runs (python3 sqlite3 opens
# the copy, integrity_check ok, the job row is there); a non-loopback listen address without auth
# refuses to start; no token ever appears in the logs or in the database files.
# Prints "N passed, N failed"; exits non-zero when anything failed.
set -uo pipefail
BOLTZD=${1:?usage: test_auth.sh BOLTZD [SRC]}
PY=/usr/bin/python3
tmp=$(mktemp -d)
D=$tmp/data
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

# req TOKEN METHOD PATH [curl args...]: status in $code, body in $tmp/body, headers in $tmp/hdr
# (TOKEN "-": no Authorization header).
req() {
  local t=$1 m=$2 p=$3; shift 3
  local auth=()
  [ "$t" != - ] && auth=(-H "Authorization: Bearer $t")
  code=$(curl -s -X "$m" -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' "${auth[@]}" "$@" "$B$p")
}
jget() { jq -r "$1" <"$tmp/body" 2>/dev/null; }
hdr() { grep -i "^$1:" "$tmp/hdr" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
# expect TOKEN STATUS CODE NAME METHOD PATH [curl args]: an error reply with that status and code.
expect() {
  local t=$1 st=$2 ecode=$3 name=$4; shift 4
  req "$t" "$@"
  if [ "$code" = "$st" ] && [ "$(jget .error.code)" = "$ecode" ]; then ok "$name"
  else bad "$name: got $code $(head -c 300 "$tmp/body")"; fi
}
wait_status() { # ID STATUS [seconds]
  local s
  for _ in $(seq $((${3:-60} * 5))); do
    s=$(curl -s -H "Authorization: Bearer $TR" "$B/jobs/$1" | jq -r .status)
    [ "$s" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}
# spec NAME T STEPS SAMPLES_EVERY [hidden]: a small spin problem (632 weights with [12, 8]).
spec() {
  cat <<JSON
{"name": "$1",
 "dataset": {"kind": "spin", "n_in": 40, "classes": 4, "train": 300, "test": 200, "p_flip": 0.2, "seed": 5},
 "model": {"hidden": ${5:-[12, 8]}, "bias": true, "lambda": 0.01},
 "sampler": {"method": "pl", "T": $2, "steps": $3, "seed": 3},
 "record": {"every": 1000}, "samples": {"every": $4}, "checkpoint": {"every": 500, "keep": 3}}
JSON
}
submit() { # TOKEN SPEC: the new id
  curl -s -X POST -H "Authorization: Bearer $1" --data-binary "$2" "$B/jobs" | jq -r .id
}

# ---------------------------------------------------------------- users and tokens (CLI)
cat >"$tmp/boltzd.conf" <<CONF
# the daemon's config: auth off here, --auth on on the command line wins
data_dir = $D
auth = off
max_jobs_per_user = 3
max_steps = 100000000
max_weights = 50000
max_job_disk_mb = 10
CONF
"$BOLTZD" user add alice --data-dir "$D" >"$tmp/out" 2>>"$tmp/cli.log"
check "user add: JSON with the name" '[ "$(jq -r .name "$tmp/out")" = alice ] && [ "$(jq -r .admin "$tmp/out")" = false ]'
"$BOLTZD" user add bob --config "$tmp/boltzd.conf" >/dev/null 2>>"$tmp/cli.log"
"$BOLTZD" user add root --admin --data-dir "$D" >/dev/null 2>>"$tmp/cli.log"
"$BOLTZD" user add alice --data-dir "$D" >/dev/null 2>"$tmp/err"
rc=$?
check "user add: a taken name is an error" '[ $rc = 1 ] && grep -q "alice.*already exists" "$tmp/err"'
"$BOLTZD" user add 'bad name' --data-dir "$D" >/dev/null 2>"$tmp/err"
rc=$?
check "user add: a bad name is an error" '[ $rc = 1 ] && grep -q "user name must be" "$tmp/err"'
"$BOLTZD" user list --config "$tmp/boltzd.conf" >"$tmp/out" 2>>"$tmp/cli.log"
check "user list (--config): three users, root admin" \
  '[ "$(jq ".users | length" "$tmp/out")" = 3 ] && [ "$(jq -r ".users[] | select(.name == \"root\") | .admin" "$tmp/out")" = true ]'
TA=$("$BOLTZD" token create alice --data-dir "$D" 2>>"$tmp/cli.log")
TB=$("$BOLTZD" token create bob --config "$tmp/boltzd.conf" 2>>"$tmp/cli.log")
TR=$("$BOLTZD" token create root --data-dir "$D" 2>>"$tmp/cli.log")
check "token create: prints bz_ + 64 hex once" \
  '[[ "$TA" =~ ^bz_[0-9a-f]{64}$ ]] && [[ "$TB" =~ ^bz_[0-9a-f]{64}$ ]] && [[ "$TR" =~ ^bz_[0-9a-f]{64}$ ]] && [ "$TA" != "$TB" ]'
"$BOLTZD" token create nobody --data-dir "$D" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "token create: unknown user is an error, nothing printed" '[ $rc = 1 ] && grep -q "no user .nobody." "$tmp/err" && [ ! -s "$tmp/out" ]'
"$BOLTZD" token list alice --data-dir "$D" >"$tmp/tlist" 2>>"$tmp/cli.log"
TA_ID=$(jq -r '.tokens[0].id' "$tmp/tlist")
check "token list: id, prefix, not revoked, no token" \
  '[ "$(jq ".tokens | length" "$tmp/tlist")" = 1 ] && [ "$(jq -r ".tokens[0].prefix" "$tmp/tlist")" = "${TA:0:11}" ] && [ "$(jq -r ".tokens[0].revoked" "$tmp/tlist")" = null ] && ! grep -qF "$TA" "$tmp/tlist"'

# ---------------------------------------------------------------- the daemon with auth on
rm -f "$tmp/port"
"$BOLTZD" serve --config "$tmp/boltzd.conf" --auth on --listen 127.0.0.1:0 --port-file "$tmp/port" --workers 2 \
  >>"$tmp/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
PORT=$(cat "$tmp/port" 2>/dev/null)
B=http://127.0.0.1:$PORT/api/v1
check "daemon starts with --auth on over the config's auth = off" '[ -n "$PORT" ] && grep -q "auth on" "$tmp/daemon.log"'

req - GET /health
check "health needs no token" '[ "$code" = 200 ] && [ "$(jget .status)" = ok ]'
expect - 401 unauthorized "no token: 401" GET /jobs
check "401 carries WWW-Authenticate: Bearer and names the header" \
  'hdr www-authenticate | grep -q "^Bearer" && [ "$(jget .error.field)" = Authorization ]'
WRONG=${TA:0:66}$([ "${TA:66:1}" = 0 ] && echo 1 || echo 0)
expect "$WRONG" 401 unauthorized "wrong token: 401" GET /jobs
check "wrong token: error=invalid_token" 'hdr www-authenticate | grep -q invalid_token && [ "$(jget .error.message)" = "invalid token" ]'
expect "not-a-token" 401 unauthorized "malformed token: 401" GET /jobs
expect - 401 unauthorized "Basic auth: 401" GET /jobs -H 'Authorization: Basic YWxpY2U6cHc='
expect - 401 unauthorized "submit without a token: 401" POST /jobs --data-binary "$(spec x 0.001 10 0)"
expect - 401 unauthorized "metrics without a token: 401" GET /metrics
expect - 401 unauthorized "stream without a token: 401" GET /jobs/1/stream
req "$TA" GET /jobs
check "alice's token: 200" '[ "$code" = 200 ]'
req "$TA" GET /metrics
check "metrics with a token: 200" '[ "$code" = 200 ] && grep -q boltzd_jobs "$tmp/body"'

# ---------------------------------------------------------------- owners, 403, admin
req "$TA" POST /jobs --data-binary "$(spec short 0.001 2000 200)" -H 'X-Boltz-User: mallory'
S=$(jget .id)
check "submit: 201, owner is the token's user (X-Boltz-User ignored)" '[ "$code" = 201 ] && [ "$(jget .owner)" = alice ]'
check "alice's short job succeeds" 'wait_status "$S" succeeded 60'
L1=$(submit "$TA" "$(spec long1 0.001 100000000 0)")
check "alice's long job runs" 'wait_status "$L1" running 30'
req "$TB" GET "/jobs/$L1"
check "bob may read alice's job" '[ "$code" = 200 ] && [ "$(jget .owner)" = alice ]'
req "$TB" GET "/jobs?owner=alice"
check "bob may list alice's jobs" '[ "$code" = 200 ] && [ "$(jget .count)" = 2 ]'
code=$(curl -sN --max-time 2 -o "$tmp/sse" -w '%{http_code}' -H "Authorization: Bearer $TB" "$B/jobs/$L1/stream")
check "bob may stream alice's job" '[ "$code" = 200 ] && head -1 "$tmp/sse" | grep -q "^retry:"'
expect "$TB" 403 forbidden "bob cancels alice's job: 403" POST "/jobs/$L1/cancel"
check "403 names the owner" 'jget .error.message | grep -q "belongs to alice"'
expect "$TB" 403 forbidden "bob deletes alice's job: 403" DELETE "/jobs/$S"
check "alice's job still runs after bob's tries" '[ "$(curl -s -H "Authorization: Bearer $TA" "$B/jobs/$L1" | jq -r .status)" = running ]'

# ---------------------------------------------------------------- backup while a job runs
for _ in $(seq 150); do
  [ "$(curl -s -H "Authorization: Bearer $TA" "$B/jobs/$L1/checkpoints" | jq '.checkpoints | length')" -ge 1 ] && break
  sleep 0.2
done
"$BOLTZD" backup "$tmp/bk" --config "$tmp/boltzd.conf" >"$tmp/bk.json" 2>>"$tmp/cli.log"
rc=$?
check "backup while a job runs: exit 0, JSON summary" \
  '[ $rc = 0 ] && [ "$(jq -r .db "$tmp/bk.json")" = "$tmp/bk/boltzd.db" ] && [ "$(jq .jobs "$tmp/bk.json")" -ge 2 ] && [ "$(jq .files "$tmp/bk.json")" -ge 2 ] && [ "$(jq .bytes "$tmp/bk.json")" -gt 0 ] && [ "$(jq -r .integrity "$tmp/bk.json")" = ok ]'
check "backup: python3 sqlite3 opens the copy, integrity_check ok, the running job is there" \
  '[ "$($PY -c "import sqlite3,sys
db = sqlite3.connect(sys.argv[1])
ok = db.execute(\"PRAGMA integrity_check\").fetchone()[0]
row = db.execute(\"SELECT owner, status FROM jobs WHERE id = ?\", (int(sys.argv[2]),)).fetchone()
users = db.execute(\"SELECT COUNT(*) FROM users\").fetchone()[0]
print(ok, row[0], row[1], users)" "$tmp/bk/boltzd.db" "$L1")" = "ok alice running 3" ]'
check "backup: the job files are copied (checkpoints, samples)" \
  'ls "$tmp/bk/jobs/$L1/checkpoints/"*.bzc >/dev/null 2>&1 && [ -s "$tmp/bk/jobs/$S/samples.bin" ] && ! ls "$tmp/bk/jobs/$L1/checkpoints/" | grep -q "\.tmp$"'
"$BOLTZD" backup "$tmp/bk" --data-dir "$D" >/dev/null 2>"$tmp/err"
rc=$?
check "backup into a folder that holds one: refused" '[ $rc = 1 ] && grep -q "already holds a backup" "$tmp/err"'
"$BOLTZD" backup "$tmp/bk2" --data-dir "$tmp/nothing-here" >/dev/null 2>"$tmp/err"
rc=$?
check "backup of a data dir without a store: a clear error" '[ $rc = 1 ] && grep -q "no store at" "$tmp/err"'

req "$TR" POST "/jobs/$L1/cancel"
check "root (admin) cancels alice's job" '[ "$code" = 200 ]'
check "the job ends cancelled" 'wait_status "$L1" cancelled 30'
expect "$TB" 403 forbidden "bob deletes alice's cancelled job: 403" DELETE "/jobs/$L1"
req "$TA" DELETE "/jobs/$L1"
check "alice deletes her own job" '[ "$code" = 200 ] && [ "$(jget .deleted)" = true ]'
req "$TR" DELETE "/jobs/$S"
check "root (admin) deletes alice's other job" '[ "$code" = 200 ]'

# ---------------------------------------------------------------- quotas and limits
B1=$(submit "$TB" "$(spec b1 0.001 100000000 0)")
B2=$(submit "$TB" "$(spec b2 0.001 100000000 0)")
B3=$(submit "$TB" "$(spec b3 0.001 100000000 0)")
check "bob submits 3 jobs (max_jobs_per_user = 3)" '[ "$B1" -gt 0 ] && [ "$B2" -gt 0 ] && [ "$B3" -gt 0 ]'
expect "$TB" 429 quota "a 4th job: 429" POST /jobs --data-binary "$(spec b4 0.001 1000 0)"
check "429 names max_jobs_per_user and both numbers" \
  'jget .error.message | grep -q "max_jobs_per_user = 3: bob already has 3 queued or running job(s) and this submission adds 1"'
curl -s -X POST -H "Authorization: Bearer $TB" "$B/jobs/$B3/cancel" >/dev/null
expect "$TB" 429 quota "a sweep of 2 with one slot free: 429" POST /jobs --data-binary "$(spec sw '[1e-4, 1e-3]' 1000 0)"
req "$TA" POST /jobs --data-binary "$(spec a2 0.001 1000 0)"
check "the quota is per user: alice may still submit" '[ "$code" = 201 ]'
req "$TB" POST /jobs --data-binary "$(spec b5 0.001 1000 0)"
B5=$(jget .id)
check "a cancelled job frees its slot" '[ "$code" = 201 ]'
expect "$TB" 400 limit "steps over max_steps: 400" POST /jobs --data-binary "$(spec big 0.001 200000000 0)"
check "400 names max_steps, both numbers and sampler.steps" \
  '[ "$(jget .error.field)" = sampler.steps ] && jget .error.message | grep -q "sampler.steps = 200000000 is over max_steps = 100000000"'
expect "$TA" 400 limit "network over max_weights: 400" POST /jobs --data-binary "$(spec wide 0.001 1000 0 '[300, 300]')"
check "400 names max_weights, both numbers and model.hidden" \
  '[ "$(jget .error.field)" = model.hidden ] && jget .error.message | grep -q "the network has 103804 weights, over max_weights = 50000"'
expect "$TA" 400 limit "disk over max_job_disk_mb: 400" POST /jobs --data-binary "$(spec disk 0.001 10000000 10)"
check "400 names max_job_disk_mb, the estimate and samples.every" \
  '[ "$(jget .error.field)" = samples.every ] && jget .error.message | grep -q "over max_job_disk_mb = 10" && jget .error.message | grep -q "about 2544.1 MB"'
for j in $B1 $B2 $B5; do curl -s -X POST -H "Authorization: Bearer $TR" "$B/jobs/$j/cancel" >/dev/null; done

# ---------------------------------------------------------------- revoke while the daemon runs
"$BOLTZD" token revoke "$TA_ID" --data-dir "$D" >"$tmp/out" 2>>"$tmp/cli.log"
rc=$?
check "token revoke (while the daemon runs): revoked time" '[ $rc = 0 ] && [ "$(jq -r .revoked "$tmp/out")" != null ]'
expect "$TA" 401 unauthorized "revoked token: 401" GET /jobs
check "401 says revoked" 'jget .error.message | grep -q revoked'
"$BOLTZD" token revoke "${TA:0:11}" --data-dir "$D" >/dev/null 2>"$tmp/err"
rc=$?
check "revoke again (by prefix): an error" '[ $rc = 1 ] && grep -q "already revoked" "$tmp/err"'
req "$TB" GET /jobs
check "bob's token still works" '[ "$code" = 200 ]'
TA2=$("$BOLTZD" token create alice --data-dir "$D" 2>>"$tmp/cli.log")
req "$TA2" GET /jobs
check "a new token for alice works at once" '[ "$code" = 200 ]'

kill -TERM "$DPID"
wait "$DPID"
drc=$?
DPID=
check "the daemon stops cleanly" '[ $drc = 0 ]'

# ---------------------------------------------------------------- no token in the clear anywhere
leaks=0
for t in "$TA" "$TB" "$TR" "$TA2"; do
  for f in "$tmp/daemon.log" "$tmp/cli.log" "$D/boltzd.db" "$D/boltzd.db-wal" "$tmp/bk/boltzd.db"; do
    [ -e "$f" ] && grep -aqF "${t:3}" "$f" && { leaks=$((leaks + 1)); echo "token in $f"; }
  done
done
check "no token (nor its hex part) in the logs, the store or the backup" '[ $leaks = 0 ]'

# ---------------------------------------------------------------- non-loopback without auth
"$BOLTZD" serve --listen 0.0.0.0:0 --data-dir "$tmp/open" >"$tmp/out" 2>"$tmp/err" &
opid=$!
( sleep 10; kill "$opid" 2>/dev/null ) &
wpid=$!
wait "$opid"
rc=$?
kill "$wpid" 2>/dev/null
check "0.0.0.0 without auth: refuses to start (exit 1) with the message" \
  '[ $rc = 1 ] && grep -q "refusing to listen on 0.0.0.0 without auth: set auth = on (and create tokens with boltzd token create) or listen on 127.0.0.1" "$tmp/err" && [ ! -e "$tmp/open" ]'
"$BOLTZD" serve --listen :::0 --data-dir "$tmp/open" --auth off >/dev/null 2>"$tmp/err"
rc=$?
check ":: without auth: refuses too" '[ $rc = 1 ] && grep -q "refusing to listen on" "$tmp/err"'
"$BOLTZD" serve --listen 0.0.0.0:0 --data-dir "$tmp/open" --auth maybe >/dev/null 2>"$tmp/err"
rc=$?
check "--auth maybe: a usage error naming the key" '[ $rc = 1 ] && grep -q "auth must be on or off" "$tmp/err"'

# ---------------------------------------------------------------- connection limits (auth off, loopback)
rm -f "$tmp/port2"
"$BOLTZD" serve --listen 127.0.0.1:0 --data-dir "$tmp/d2" --port-file "$tmp/port2" --max-connections-per-ip 2 \
  --connection-timeout 2 >>"$tmp/daemon2.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -s "$tmp/port2" ] && break; sleep 0.1; done
P2=$(cat "$tmp/port2" 2>/dev/null)
health() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$P2/api/v1/health"; }
check "auth off on loopback: no token needed" '[ "$(health)" = 200 ]'
exec 5<>"/dev/tcp/127.0.0.1/$P2" 6<>"/dev/tcp/127.0.0.1/$P2"
sleep 0.3
check "max_connections_per_ip: a third connection from one client is refused" '[ "$(health)" = 000 ]'
sleep 3
check "connection_timeout: idle connections are closed, the client gets in again" '[ "$(health)" = 200 ]'
exec 5>&- 6>&-
kill -TERM "$DPID"
wait "$DPID"
DPID=

[ "$fail" = 0 ] || { echo "--- daemon log (last 40 lines)"; tail -40 "$tmp/daemon.log"; }
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
