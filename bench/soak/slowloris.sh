#!/usr/bin/env bash
# Slowloris soak on loopback against the sluice binary (release unless $SLUICE_BIN).
#
#   bench/soak/slowloris.sh [--clients N] [--timeout S|default] [--port-base P]
#
# N clients (default 2000) each open a connection, send the start of a request head and
# then one more byte a second, never finishing it. sluice runs one worker with
# `stream_idle_timeout: S` (default 3 s; `default` leaves it unset: Envoy's 5 min, and
# the run then lasts about 6 minutes). Envoy's stream exists from the first byte of a
# request, so every slow client must be answered `408` ("stream timeout") and closed
# about S after its first byte, while a probe client on its own keep-alive connection
# keeps being served. Reported: sluice's open descriptors and RSS before, at the peak
# and after; when the slow clients were closed and how many got the 408; the probe's
# request count, p50/p99/max latency; the counter
# http.ingress.downstream_rq_idle_timeout. Exit status 1 when a slow client outlived
# S + 5 s, a probe request failed, or the probe's p99 reached 10 ms.
# Binds only 127.0.0.1, ports P..P+2 (default 28080..28082).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/bench/soak/common.sh"

CLIENTS=2000
TIMEOUT=3
BASE=28080
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) CLIENTS="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --port-base) BASE="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > CLIENTS * 2 + 100 )) || die "ulimit -n $(ulimit -n) is too low for $CLIENTS clients"

LISTEN=$BASE ORIGIN=$((BASE + 1)) ADMIN=$((BASE + 2))
if [[ "$TIMEOUT" == default ]]; then
  EXTRA="" LIMIT=300
else
  EXTRA="          stream_idle_timeout: ${TIMEOUT}s" LIMIT=$TIMEOUT
fi
BIN="$(sluice_bin)"
http_config "$LISTEN" "$ORIGIN" "$ADMIN" "$EXTRA" > "$WORK/sluice.yaml"
start_origin "$ORIGIN"
"$BIN" -c "$WORK/sluice.yaml" --concurrency 1 --log-level warning > "$WORK/sluice.log" 2>&1 &
SLUICE=$!
track "$SLUICE"
wait_port "$LISTEN" || { cat "$WORK/sluice.log" >&2; die "sluice did not start"; }
log "sluice $BIN (pid $SLUICE), $CLIENTS slow clients, stream_idle_timeout ${TIMEOUT}"
echo "before: sluice fds $(fds "$SLUICE"), rss $(rss_kib "$SLUICE") KiB"

RC=0
python3 - "$LISTEN" "$CLIENTS" "$LIMIT" "$SLUICE" <<'PY' || RC=$?
import asyncio, os, sys, time
port, n, limit, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def fds():
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0

closed_at, got_408 = {}, 0

async def slow(i, t0):
    global got_408
    r, w = await asyncio.open_connection("127.0.0.1", port)
    first = time.monotonic()
    w.write(b"GET /slow HTTP/1.1\r\nhost: t\r\nx-slow: ")
    reader = asyncio.ensure_future(r.read(4096))
    data = b""
    while True:
        done, _ = await asyncio.wait({reader}, timeout=1.0)
        if done:
            try:
                chunk = reader.result()
            except (ConnectionError, OSError):
                # A reset after the 408 (a byte of ours crossed sluice's close) is a close too.
                break
            if not chunk:
                break
            data += chunk
            reader = asyncio.ensure_future(r.read(4096))
            continue
        try:
            w.write(b"a")
            await w.drain()
        except (ConnectionError, OSError):
            break
    closed_at[i] = time.monotonic() - first
    if data.startswith(b"HTTP/1.1 408"):
        got_408 += 1
    w.close()

def probe(port, stop, out):
    """A keep-alive client in its own process: one GET every 10 ms until `stop`."""
    import socket
    lat, failed = [], 0
    def connect():
        c = socket.create_connection(("127.0.0.1", port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(5)
        return c
    c, buf = connect(), b""
    while not stop.is_set():
        t = time.monotonic()
        try:
            c.sendall(b"GET /probe HTTP/1.1\r\nhost: t\r\n\r\n")
            while b"\r\n\r\n" not in buf:
                chunk = c.recv(4096)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
            while len(rest) < length:
                chunk = c.recv(4096)
                if not chunk:
                    raise ConnectionError("closed")
                rest += chunk
            buf = rest[length:]
            if not head.startswith(b"HTTP/1.1 200"):
                failed += 1
        except Exception:
            failed += 1
            c, buf = connect(), b""
        lat.append(time.monotonic() - t)
        time.sleep(0.01)
    out.put((lat, failed))

async def main():
    t0 = time.monotonic()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.ensure_future(slow(i, t0)))
        if i % 100 == 99:
            await asyncio.sleep(0.01)
    import multiprocessing as mp
    stop, out = mp.Event(), mp.Queue()
    p = mp.Process(target=probe, args=(port, stop, out))
    p.start()
    peak = 0
    while len(closed_at) < n and time.monotonic() - t0 < limit + 30:
        await asyncio.sleep(1)
        peak = max(peak, fds())
        print(f"t={time.monotonic() - t0:5.1f}s open slow clients {n - len(closed_at):5d}, sluice fds {fds()}", flush=True)
    stop.set()
    lat, failed = out.get()
    p.join()
    for t in tasks:
        t.cancel()
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else float("nan")
    late = [t for t in closed_at.values() if t > limit + 5]
    print(f"slow clients: {len(closed_at)}/{n} closed, {got_408} answered 408, "
          f"closed after {min(closed_at.values(), default=0):.2f}..{max(closed_at.values(), default=0):.2f} s "
          f"from their first byte; {len(late)} later than {limit + 5} s")
    print(f"sluice fds at peak {peak}")
    print(f"probe: {len(lat)} requests, {failed} failed, p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {q(1.0) if lat else 0:.2f} ms")
    ok = len(closed_at) == n and not late and failed == 0 and q(0.99) < 10
    sys.exit(0 if ok else 1)

asyncio.run(main())
PY
sleep 1
echo "after: sluice fds $(fds "$SLUICE"), rss $(rss_kib "$SLUICE") KiB"
echo "http.ingress.downstream_rq_idle_timeout: $(stat "$ADMIN" http.ingress.downstream_rq_idle_timeout)"
exit $RC
