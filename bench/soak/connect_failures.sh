#!/usr/bin/env bash
# Soak: many failed upstream connects through sluice's HTTP path, with RSS before and
# after (issue 22: ~268 bytes leaked per failed connect, linear, 5.9 -> 288 MB over
# 1.07 M failures to a dead port).
#
#   bench/soak/connect_failures.sh [--count N] [--clients C] [--max-seconds S]
#
# Starts sluice (one worker, kernel mode, admin on loopback) in front of a cluster
# whose only endpoint is a loopback port where nothing listens, then drives keep-alive
# clients (pipelined GETs, each answered 503 "connection failure") until the cluster's
# upstream_cx_connect_fail reaches --count (default 1,000,000) or --max-seconds pass
# (default 1800; the loop is bounded either way). Prints sluice's RSS and descriptor
# count after a warm-up of --warmup failures (default 20,000) and at the end, and the
# growth per failure; exits 1 when RSS grew by more than --max-growth-mb (default 8).
#
# Binary: $SLUICE_BIN, else target/release/sluice, built if missing. Binds 127.0.0.1 only (ports picked free). Every
# process it starts is stopped by PID on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COUNT=1000000
CLIENTS=8
MAX_SECONDS=1800
WARMUP=20000
MAX_GROWTH_MB=8
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --max-seconds) MAX_SECONDS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --max-growth-mb) MAX_GROWTH_MB="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

. "$ROOT/bench/soak/common.sh"
BIN="$(sluice_bin)"
PORT="$(free_port)"; ADMIN="$(free_port)"; DEAD="$(free_port)"
# The cluster's only endpoint is DEAD, where nothing listens.
http_config "$PORT" "$DEAD" "$ADMIN" > "$WORK/sluice.yaml"

"$BIN" -c "$WORK/sluice.yaml" --concurrency 1 --log-level warning 2>"$WORK/sluice.log" &
SLUICE_PID=$!
track "$SLUICE_PID"
wait_port "$ADMIN" || { cat "$WORK/sluice.log" >&2; die "sluice did not start"; }

python3 - "$PORT" "$ADMIN" "$SLUICE_PID" "$COUNT" "$CLIENTS" "$MAX_SECONDS" "$WARMUP" "$MAX_GROWTH_MB" <<'PY'
import socket, sys, threading, time, urllib.request

port, admin, pid, count, clients, max_seconds, warmup, max_growth_mb = sys.argv[1:]
port, admin, count, clients, max_seconds, warmup = map(int, (port, admin, count, clients, max_seconds, warmup))
max_growth = float(max_growth_mb) * 1024 * 1024

def usage():
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    import os
    return rss, len(os.listdir(f"/proc/{pid}/fd"))

def failures():
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=upstream_cx_connect_fail") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("cluster.origin.upstream_cx_connect_fail:"):
                return int(line.split(":")[1])
    return 0

stop = threading.Event()
BATCH = 32
REQ = b"GET / HTTP/1.1\r\nhost: soak\r\n\r\n" * BATCH

def client():
    # Keep-alive, BATCH pipelined requests at a time; reconnect if the proxy closes.
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            while not stop.is_set():
                s.sendall(REQ)
                seen, buf = 0, b""
                while seen < BATCH:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    buf += chunk
                    seen = buf.count(b"HTTP/1.1 503")
        except OSError:
            time.sleep(0.01)

threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
for t in threads:
    t.start()
start = time.monotonic()
deadline = start + max_seconds
base = None
while time.monotonic() < deadline:
    n = failures()
    if base is None and n >= warmup:
        base = (n, *usage())
        print(f"after warm-up: {n} failed connects, RSS {base[1]/1e6:.1f} MB, {base[2]} fds", flush=True)
    if n >= count:
        break
    time.sleep(1)
stop.set()
time.sleep(0.5)
n = failures()
rss, fds = usage()
secs = time.monotonic() - start
print(f"end: {n} failed connects in {secs:.0f} s ({n/secs:.0f}/s), RSS {rss/1e6:.1f} MB, {fds} fds", flush=True)
if base is None:
    print("warm-up never reached", flush=True)
    sys.exit(1)
growth = rss - base[1]
per = growth / max(1, n - base[0])
print(f"RSS growth after warm-up: {growth/1e6:+.2f} MB over {n - base[0]} failures ({per:+.2f} bytes each)", flush=True)
if n < count:
    print(f"only {n} of {count} failures within {max_seconds} s", flush=True)
sys.exit(1 if growth > max_growth else 0)
PY
