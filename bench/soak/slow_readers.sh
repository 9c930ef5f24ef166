#!/usr/bin/env bash
# Soak: 50 clients that do not read a 50 MB response (issue 22, problem 3).
#
#   bench/soak/slow_readers.sh [--clients N] [--body BYTES] [--hold S] [--limit BYTES]
#
# Release sluice, one worker, in front of a local origin serving a BODY-byte response
# (python, from memory). N clients connect, send one request each and read nothing for
# HOLD seconds, then close. sluice's RSS is sampled before, during (every second) and
# after the clients left, and compared with the bound the buffer limits give: per slow
# reader the upstream input (<= max(limit, 96 KiB)) and the downstream output vector
# (<= limit unwritten + one pumped upstream input + a written prefix of at most as much
# again before it is compacted: <= 2 x max(limit, 96 KiB) + 96 KiB of capacity), so
#   clients x (3 x max(limit, 96 KiB) + 96 KiB) + fixed
# where `fixed` is the RSS before the clients came. After they left, the pooled upstream
# connections have shrunk their buffers: RSS should fall back towards `before` (the
# allocator may keep some freed pages). Binds 127.0.0.1:PORT..PORT+2 (default 28080).
# Time: about HOLD + 10 s after the build. Every process it starts is stopped by PID.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/bench/soak/common.sh"
CLIENTS=50 BODY=$((50 * 1000 * 1000)) HOLD=10 LIMIT=$((1024 * 1024)) PORT=${PORT:-28080}
while [[ $# -gt 0 ]]; do
  case $1 in
    --clients) CLIENTS=$2; shift 2 ;;
    --body) BODY=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    *) echo "usage: $0 [--clients N] [--body BYTES] [--hold S] [--limit BYTES]" >&2; exit 2 ;;
  esac
done
BIN=$(sluice_bin)
ORIGIN_PORT=$((PORT + 2))
start_origin "$ORIGIN_PORT" "$BODY"
BUFFER_LIMIT="$LIMIT" ROUTE_TIMEOUT=0s http_config "$PORT" "$ORIGIN_PORT" $((PORT + 1)) > "$WORK/sluice.yaml"
"$BIN" -c "$WORK/sluice.yaml" --concurrency 1 --log-level warn 2>"$WORK/sluice.log" &
SLUICE_PID=$!
track "$SLUICE_PID"
wait_port "$PORT"
before=$(rss_kib "$SLUICE_PID")
echo "sluice pid $SLUICE_PID, limit $LIMIT B, $CLIENTS clients x $BODY B bodies, hold ${HOLD}s"
echo "RSS before: $before KiB, fds $(fds "$SLUICE_PID")"

python3 - "$PORT" "$CLIENTS" "$HOLD" <<'PY' &
import socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(b"GET /big HTTP/1.1\r\nhost: soak\r\n\r\n")
    socks.append(s)
time.sleep(hold)
for s in socks:
    s.close()
PY
CLIENT_PID=$!
track "$CLIENT_PID"
peak=$before
for ((i = 1; i <= HOLD; i++)); do
  sleep 1
  r=$(rss_kib "$SLUICE_PID")
  ((r > peak)) && peak=$r
  echo "  t=${i}s RSS $r KiB, fds $(fds "$SLUICE_PID")"
done
wait "$CLIENT_PID" || true
sleep 3
after=$(rss_kib "$SLUICE_PID")
per=$(( LIMIT > 98304 ? LIMIT : 98304 ))
bound=$(( before + CLIENTS * (3 * per + 98304) / 1024 ))
echo "RSS peak during: $peak KiB; after the clients left: $after KiB, fds $(fds "$SLUICE_PID")"
echo "expected bound: before + clients x (3 x max(limit, 96 KiB) + 96 KiB) = $bound KiB"
echo "stats:"
curl -s "127.0.0.1:$((PORT + 1))/stats" | grep -E "flow_control|upstream_cx_rx_bytes_total|downstream_cx_tx_bytes_total" | sed 's/^/  /' || true
if ((peak > bound)); then echo "FAIL: peak RSS above the bound"; exit 1; fi
echo "OK: peak RSS within the bound"
