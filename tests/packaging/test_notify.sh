#!/usr/bin/env bash
# tests/packaging/test_notify.sh BOLTZD: the readiness signal the unit (Type=notify) waits for.
# `boltzd serve` is started as systemd would, with $NOTIFY_SOCKET naming a datagram socket this
# test listens on: it must send READY=1 once the API answers (so `systemctl start` returns only
# when the daemon is usable) and STOPPING=1 when SIGTERM begins the shutdown.
set -uo pipefail
BOLTZD=$1
PY=/usr/bin/python3
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
tmp=$(mktemp -d)
PID=
LPID=
cleanup() {
  [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
  [ -n "$LPID" ] && kill "$LPID" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The listener: prints each datagram as one line ("READY=1|STATUS=..."), exits after STOPPING=1.
$PY - "$tmp/notify" >"$tmp/messages" 2>"$tmp/listener.err" <<'PYEOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
open(sys.argv[1] + ".ready", "w").close()
while True:
    msg = s.recv(4096).decode()
    print(msg.replace("\n", "|"), flush=True)
    if "STOPPING=1" in msg.split("\n"):
        break
PYEOF
LPID=$!
for _ in $(seq 1 100); do [ -e "$tmp/notify.ready" ] && break; sleep 0.05; done

NOTIFY_SOCKET=$tmp/notify "$BOLTZD" serve --listen 127.0.0.1:0 --data-dir "$tmp/var" --port-file "$tmp/port" \
  --backend cpu 2>"$tmp/daemon.log" &
PID=$!
ready=0
for _ in $(seq 1 300); do
  grep -q '^READY=1' "$tmp/messages" 2>/dev/null && { ready=1; break; }
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.05
done
if [ $ready -eq 1 ]; then
  ok "READY=1 received: $(head -1 "$tmp/messages")"
  port=$(cat "$tmp/port" 2>/dev/null)
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/health")
  [ "$code" = 200 ] && ok "the API answers when READY=1 arrives" || bad "health after READY=1: HTTP $code"
else
  bad "no READY=1 on \$NOTIFY_SOCKET within 15 s (daemon/serve.c must call bz_sd_notify(\"READY=1...\") once the API listens); daemon log: $(tail -3 "$tmp/daemon.log")"
fi
kill -TERM "$PID" 2>/dev/null
wait "$PID"
rc=$?
PID=
[ $rc -eq 0 ] && ok "serve exits 0 on SIGTERM" || bad "serve exited $rc on SIGTERM"
for _ in $(seq 1 40); do grep -q '^STOPPING=1' "$tmp/messages" && break; sleep 0.05; done
kill "$LPID" 2>/dev/null
wait "$LPID" 2>/dev/null
LPID=
grep -q '^STOPPING=1' "$tmp/messages" && ok "STOPPING=1 sent at shutdown" || bad "no STOPPING=1 (messages: $(tr '\n' ' ' <"$tmp/messages"))"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
