#!/usr/bin/env bash
# Memory per idle connection on one xdp worker: sluice --datapath xdp --concurrency 1 on
# a veth, N client connections from kernel sockets in the peer namespace, each making one
# HTTP/1.1 keep-alive request (a direct response) and then left idle; sluice's RSS
# before and after, and bytes per idle connection, with the default buffer sizes
# (128 KiB receive + 128 KiB send per connection, lent only while data needs them).
# One command, as root:
#
#   bench/idle.sh [--connections N] [--sources K] [--no-request] [--xdp-mode drv|skb]
#                 [--bin PATH] [--no-build] [--out FILE]
#
# Topology (namespaces sxi53-l and sxi53-r, veth sxi530 ─ sxi531):
#   sxi53-l  sluice on sxi530, 10.99.53.2/24 (its own stack), admin 127.0.0.1:9901
#   sxi53-r  clients: 10.99.53.1/24 and K more source addresses 10.99.53.11.. (one
#            source/destination pair has fewer than 64k ports), offloads off
# "before" is read after a warm-up of 1,000 connections (opened, one request, closed),
# so the UMEM frames, tables and pools that any traffic touches are already counted;
# "after" once all N are open, idle for 3 s and the stack's buffer storage is back (at
# most 30 s more: responses whose ACKs were dropped wait for a retransmission). Every process it starts is stopped by
# PID and both namespaces (with the veth and the XDP program) are deleted on exit, also
# on error or Ctrl-C. Bounded: the clients give up after 300 s. Table: bench/results/idle.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

CONNECTIONS=100000 SOURCES=4 REQUEST=1 XDP_MODE=drv BIN="" BUILD=1 OUT="bench/results/idle.md"
COMMAND="bench/idle.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --sources) SOURCES="$2"; shift 2 ;;
    --no-request) REQUEST=0; shift ;;
    --xdp-mode) XDP_MODE="$2"; shift 2 ;;
    --bin) BIN="$2"; BUILD=0; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench/idle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench/idle.sh: needs root (namespaces, XDP, AF_XDP)" >&2; exit 1; }
PATH="$PATH:/usr/sbin:/sbin"
for tool in ip ethtool curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/idle.sh: '$tool' not found" >&2; exit 1; }
done
[ "$SOURCES" -ge 1 ] && [ "$SOURCES" -le 200 ] || { echo "bench/idle.sh: --sources must lie in 1..=200" >&2; exit 2; }

NS_L=sxi53-l NS_R=sxi53-r VA=sxi530 VB=sxi531
PEER_IP=10.99.53.1 PROXY_IP=10.99.53.2 PORT=8080
WORK="$(mktemp -d /tmp/sluice-idle-bench.XXXXXX)"
PIDS=()
log() { echo "[idle-bench $(date +%H:%M:%S)] $*" >&2; }
stop_pid() {
  local pid="$1" _
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local code=$? i
  trap - EXIT
  exec 3>&- 2>/dev/null || true
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  for ns in "$NS_L" "$NS_R"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$BIN" ]; then
  BIN="$ROOT/target/release/sluice"
  if [ "$BUILD" = 1 ]; then
    log "building sluice (release)"
    cargo build --release -q -p sluice --bin sluice
  fi
fi
[ -x "$BIN" ] || { echo "bench/idle.sh: $BIN missing (drop --no-build, or --bin PATH)" >&2; exit 1; }

for ns in "$NS_L" "$NS_R"; do
  ip netns list | grep -qw "$ns" && { echo "bench/idle.sh: namespace $ns exists (another run?)" >&2; exit 1; }
done
for ns in "$NS_L" "$NS_R"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$NS_L" link add "$VA" type veth peer name "$VB" netns "$NS_R"
ip -n "$NS_L" link set "$VA" up
ip -n "$NS_R" link set "$VB" up
ip -n "$NS_R" addr add "$PEER_IP/24" dev "$VB"
SRC=()
for i in $(seq 1 "$SOURCES"); do
  ip -n "$NS_R" addr add "10.99.53.$((10 + i))/24" dev "$VB"
  SRC+=("10.99.53.$((10 + i))")
done
SRC_LIST="$(IFS=,; echo "${SRC[*]}")"
ip netns exec "$NS_R" ethtool -K "$VB" tx off tso off gso off >/dev/null 2>&1 || true
ip netns exec "$NS_R" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"

cat >"$WORK/sluice.yaml" <<EOF
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
static_resources:
  listeners:
  - name: idle
    address: { socket_address: { address: 0.0.0.0, port_value: $PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: idle
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "ok\n" } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
EOF

log "starting sluice ($BIN, xdp $XDP_MODE, one worker)"
ip netns exec "$NS_L" "$BIN" -c "$WORK/sluice.yaml" --concurrency 1 --log-level warning --drain-time-s 1 \
  --datapath xdp --interface "$VA" --address "$PROXY_IP/24" --xdp-mode "$XDP_MODE" >"$WORK/sluice.log" 2>&1 &
SLUICE=$!
PIDS+=("$SLUICE")
ok=""
for _ in $(seq 150); do
  kill -0 "$SLUICE" 2>/dev/null || { cat "$WORK/sluice.log" >&2; echo "bench/idle.sh: sluice exited" >&2; exit 1; }
  if [ "$(ip netns exec "$NS_R" curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$PROXY_IP:$PORT/" || true)" = 200 ]; then
    ok=1
    break
  fi
  sleep 0.2
done
[ -n "$ok" ] || { cat "$WORK/sluice.log" >&2; echo "bench/idle.sh: sluice does not answer" >&2; exit 1; }
[ "$(cat "/proc/$SLUICE/comm")" = sluice ] || { echo "bench/idle.sh: PID $SLUICE is not sluice" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SLUICE/status"; }
stat() { ip netns exec "$NS_L" curl -s --max-time 5 http://127.0.0.1:9901/stats | awk -F': ' -v k="$1" '$1 == k { print $2 }'; }
REQ_ARG=()
[ "$REQUEST" = 1 ] && REQ_ARG=(--request)

log "warm-up: 1,000 connections, one request each, closed"
ip netns exec "$NS_R" python3 "$ROOT/bench/load/idle_clients.py" --target "$PROXY_IP:$PORT" --sources "$SRC_LIST" \
  --count 1000 --request --timeout 60 </dev/null >"$WORK/warmup.out"
sleep 3
RSS_BEFORE=$(rss_kib)
CX_BEFORE=$(stat xdp.queue_0.connections)

# One client process holds at most its descriptor limit (the hard RLIMIT_NOFILE, which
# root may not be allowed to raise here): as many processes as that takes, with 1,000
# handshakes in flight between them (more overflow the listener's backlog, and SYNs
# dropped too often time out).
HARD=$(ulimit -Hn)
[ "$HARD" = unlimited ] && HARD=1048576
PER=$(( HARD - 1000 < 50000 ? HARD - 1000 : 50000 ))
[ "$PER" -ge 1000 ] || { echo "bench/idle.sh: the descriptor limit ($HARD) is too low" >&2; exit 1; }
PROCS=$(( (CONNECTIONS + PER - 1) / PER ))
log "opening $CONNECTIONS connections from $SOURCES source addresses ($PROCS client processes)"
mkfifo "$WORK/hold"
CLIENT_PIDS=()
left=$CONNECTIONS
for p in $(seq 1 "$PROCS"); do
  n=$(( left < PER ? left : PER ))
  left=$(( left - n ))
  ip netns exec "$NS_R" python3 "$ROOT/bench/load/idle_clients.py" --target "$PROXY_IP:$PORT" --sources "$SRC_LIST" \
    --count "$n" "${REQ_ARG[@]}" --inflight $((1000 / PROCS + 1)) --timeout 300 <"$WORK/hold" >"$WORK/clients.$p.out" 2>"$WORK/clients.$p.err" &
  CLIENT_PIDS+=($!)
  PIDS+=($!)
done
exec 3>"$WORK/hold"
for _ in $(seq 3200); do
  ready=0
  for p in $(seq 1 "$PROCS"); do [ -s "$WORK/clients.$p.out" ] && ready=$((ready + 1)); done
  [ "$ready" = "$PROCS" ] && break
  for pid in "${CLIENT_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK"/clients.*.err >&2; echo "bench/idle.sh: a client process exited" >&2; exit 1; }
  done
  sleep 0.1
done
[ "$ready" = "$PROCS" ] || { echo "bench/idle.sh: clients did not finish" >&2; exit 1; }
RESULT="$(cat "$WORK"/clients.*.out | python3 -c '
import json, sys
rs = [json.loads(l) for l in sys.stdin if l.strip()]
print(json.dumps({"open": sum(r["open"] for r in rs), "failed": sum(r["failed"] for r in rs),
                  "seconds": max(r["seconds"] for r in rs),
                  "reasons": {k: sum(r["reasons"].get(k, 0) for r in rs) for r in rs for k in r["reasons"]}}))')"
log "clients: $RESULT"
# Idle means every byte read and acknowledged: frames dropped under the load (rx_ring_full
# on a loaded machine) leave some responses unacknowledged until a retransmission. Wait
# for the buffer storage to come back (at most 30 s), then measure.
sleep 3
SETTLE=3
while [ "$SETTLE" -lt 33 ] && [ "$(stat xdp.queue_0.buffer_bytes)" != 0 ]; do sleep 1; SETTLE=$((SETTLE + 1)); done
log "buffer storage back after ${SETTLE} s (buffer_bytes $(stat xdp.queue_0.buffer_bytes))"
RSS_AFTER=$(rss_kib)
CX_AFTER=$(stat xdp.queue_0.connections)
BUF_BYTES=$(stat xdp.queue_0.buffer_bytes)
ACTIVE=$(stat http.idle.downstream_cx_active)
for k in rx_no_buffer tx_no_buffer listen_overflows syn_dropped_no_slot rx_no_socket rx_dropped rx_ring_full rx_fill_ring_empty; do
  log "xdp.queue_0.$k: $(stat "xdp.queue_0.$k")"
done
OPEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["open"])' "$RESULT")
FAILED=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["failed"])' "$RESULT")
SECS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$RESULT")
[ "$OPEN" -gt 0 ] || { echo "bench/idle.sh: no connection opened" >&2; exit 1; }
PER_CX=$(( (RSS_AFTER - RSS_BEFORE) * 1024 / OPEN ))
exec 3>&-

CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
mkdir -p "$(dirname "$OUT")"
{
  echo "# Memory per idle connection, one xdp worker"
  echo
  echo "Command: \`$COMMAND\`; $(date -u +%Y-%m-%d) on $(nproc) × ${CPU:-unknown CPU}, Linux $(uname -r);"
  echo "binary: \`${BIN#"$ROOT/"}\`; xdp mode $XDP_MODE on a veth; default buffer sizes (128 KiB receive + 128 KiB send per connection)."
  echo "Each connection $([ "$REQUEST" = 1 ] && echo "made one keep-alive request (direct response) and was then left idle" || echo "was opened and left idle")."
  echo
  echo "| connections open | failed | open in (s) | sluice RSS before | RSS after | bytes per idle connection | stack connections | downstream_cx_active | buffer_bytes |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  echo "| $OPEN | $FAILED | $SECS | $((RSS_BEFORE / 1024)) MiB | $((RSS_AFTER / 1024)) MiB | $PER_CX | ${CX_AFTER:-?} (before: ${CX_BEFORE:-?}) | ${ACTIVE:-?} | ${BUF_BYTES:-?} |"
} >"$OUT"
cat "$OUT"
