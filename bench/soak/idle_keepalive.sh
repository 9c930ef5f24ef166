#!/usr/bin/env bash
# Soak: 10,000 idle keep-alive connections, each answered once (issue 22).
#
#   bench/soak/idle_keepalive.sh [--conns N] [--hold S]
#
# Release sluice, one worker, in front of a local origin (python, 100-byte bodies).
# A python client opens N connections one after the other, sends one request on each
# and reads its whole response (so one pooled upstream connection serves them all), and
# keeps every connection open and idle for HOLD seconds. sluice's RSS and descriptors
# are printed before, with all N idle connections open, and after the client closed
# them, with the memory per idle connection ((with - before) / N). Raises `ulimit -n`
# for itself (and so for sluice and the client) to N + 1024. Binds 127.0.0.1:PORT..PORT+2
# (default 28090). Time: about 10-30 s after the build, bounded by a 120 s client timeout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/bench/soak/common.sh"
CONNS=10000 HOLD=3 PORT=${PORT:-28090}
while [[ $# -gt 0 ]]; do
  case $1 in
    --conns) CONNS=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    *) echo "usage: $0 [--conns N] [--hold S]" >&2; exit 2 ;;
  esac
done
ulimit -n $((CONNS + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "ulimit -n $(ulimit -n)"
BIN=$(sluice_bin)
ORIGIN_PORT=$((PORT + 2))
start_origin "$ORIGIN_PORT" 100
BUFFER_LIMIT=$((1024 * 1024)) ROUTE_TIMEOUT=0s http_config "$PORT" "$ORIGIN_PORT" $((PORT + 1)) > "$WORK/sluice.yaml"
"$BIN" -c "$WORK/sluice.yaml" --concurrency 1 --log-level warn 2>"$WORK/sluice.log" &
SLUICE_PID=$!
track "$SLUICE_PID"
wait_port "$PORT"
before=$(rss_kib "$SLUICE_PID")
echo "RSS before: $before KiB, fds $(fds "$SLUICE_PID")"
mkfifo "$WORK/ready" "$WORK/go"
timeout 120 python3 - "$PORT" "$CONNS" "$WORK/ready" "$WORK/go" <<'PY' &
import socket, sys
port, n, ready, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks, answered = [], 0
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /idle HTTP/1.1\r\nhost: soak\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
    while len(rest) < length:
        rest += s.recv(4096)
    if head.startswith(b"HTTP/1.1 200"):
        answered += 1
    socks.append(s)
print(f"client: {len(socks)} connections open, {answered} answered 200", flush=True)
open(ready, "w").close()
open(go).read()
for s in socks:
    s.close()
PY
CLIENT_PID=$!
track "$CLIENT_PID"
cat "$WORK/ready" >/dev/null
sleep "$HOLD"
with=$(rss_kib "$SLUICE_PID")
echo "RSS with $CONNS idle connections: $with KiB, fds $(fds "$SLUICE_PID")"
echo >"$WORK/go"
wait "$CLIENT_PID"
sleep 2
after=$(rss_kib "$SLUICE_PID")
echo "RSS after they closed: $after KiB, fds $(fds "$SLUICE_PID")"
echo "memory per idle connection: $(( (with - before) * 1024 / CONNS )) bytes"
