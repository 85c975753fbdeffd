# tests/e2e/daemon_lib.sh: helpers for the end-to-end tests of `boltzd serve` (sourced).
# start_daemon DATA_DIR [args...] starts the daemon on a free loopback port and sets PID, BASE.
PY=/usr/bin/python3
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

start_daemon() {
  local dir=$1; shift
  rm -f "$dir.port"
  "$BOLTZD" serve --listen 127.0.0.1:0 --data-dir "$dir" --port-file "$dir.port" "$@" 2>>"$dir.log" &
  PID=$!
  for _ in $(seq 1 200); do
    [ -s "$dir.port" ] && break
    kill -0 $PID 2>/dev/null || { echo "daemon died: $(tail -5 "$dir.log")"; return 1; }
    sleep 0.05
  done
  BASE="http://127.0.0.1:$(cat "$dir.port")/api/v1"
}

stop_daemon() { # SIGTERM and wait
  kill -TERM $PID 2>/dev/null
  wait $PID 2>/dev/null
}

# wait_status JOB STATUS SECONDS: poll until the job has the status
wait_status() {
  local job=$1 want=$2 secs=$3 st=""
  for _ in $(seq 1 $((secs * 10))); do
    st=$(curl -s "$BASE/jobs/$job" | $PY -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)
    [ "$st" = "$want" ] && return 0
    sleep 0.1
  done
  echo "job $job: status $st, wanted $want" >&2
  return 1
}

# submit FILE: POST a spec, print the new job id
submit() {
  curl -s -X POST --data-binary @"$1" "$BASE/jobs" | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
