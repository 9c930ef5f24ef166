#!/usr/bin/env bash
# xdp mode vs kernel mode on a veth pair: sluice as an HTTP/1.1 reverse proxy, the
# same binary and config, once on kernel sockets (--datapath kernel) and once on an
# AF_XDP queue with its userspace stack (--datapath xdp), plus the raw datapath
# (bench/benches/xsk.rs: bare XSK rx/tx rings vs XskDevice's tokens).
#
#   bench/xdp.sh [--duration S] [--warmup S] [--connections N] [--xdp-mode skb|drv]
#                [--cpus P,L] [--datapaths "kernel xdp"] [--no-build] [--no-raw]
#                [--out DIR]
#
# Topology (root only), names and addresses of the xdp-mode tests' range:
#
#   namespace sxm48-l                          namespace sxm48-r
#   sluice on sxm480, 10.99.48.2  ──veth──     sxm481 10.99.48.1, offloads off
#   (pinned to core P)                          nginx origin :8081 and wrk (core L)
#
# In kernel mode 10.99.48.2/24 is the kernel's address on sxm480 and sluice listens on
# 0.0.0.0:8080 with kernel sockets; in xdp mode the kernel has no address there and
# sluice owns 10.99.48.2 (--address) on the veth's only queue. Each mode is measured
# with keep-alive connections and with a new connection per request (wrk with
# `Connection: close`): a warm-up, then a measured run; requests/s from wrk, CPU
# seconds of sluice (utime+stime of all its threads, /proc/PID/stat) over the measured
# run. The raw datapath part runs the xsk criterion bench in namespaces sxm49-l/-r on
# 10.99.49.0/24.
#
# Bounded: about 2 x 2 x (warmup + duration + 3) s plus the raw bench (~40 s) after the
# build; every command has a timeout. Every process it starts is stopped by PID and
# both namespaces (with the veth) are deleted on exit, also on error or Ctrl-C.
# Output: the tables on stdout and in OUT/results.md (default bench/out/xdp), logs in
# OUT/logs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

DURATION=10 WARMUP=2 CONNECTIONS=32 XDP_MODE=drv CPUS="1,0" BUILD=1 RAW=1 OUT="bench/out/xdp"
DATAPATHS="kernel xdp"
COMMAND="bench/xdp.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --xdp-mode) XDP_MODE="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --datapaths) DATAPATHS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-raw) RAW=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench/xdp.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PROXY_CPU="${CPUS%,*}" LOAD_CPU="${CPUS#*,}"
[ "$(id -u)" = 0 ] || { echo "bench/xdp.sh: needs root (network namespaces, AF_XDP)" >&2; exit 1; }
for tool in ip ethtool wrk nginx taskset getconf; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/xdp.sh: '$tool' not found" >&2; exit 1; }
done

NS_L=sxm48-l NS_R=sxm48-r VA=sxm480 VB=sxm481
SLUICE_IP=10.99.48.2 PEER_IP=10.99.48.1 PORT=8080 ORIGIN_PORT=8081
mkdir -p "$OUT/logs"
OUT="$(cd "$OUT" && pwd)"
rm -f "$OUT/logs/wrk.log" "$OUT/logs/nstat.log" "$OUT/logs/veth.log"
WORK="$(mktemp -d /tmp/sluice-xdp-bench.XXXXXX)"
PIDS=()

log() { echo "[xdp-bench $(date +%H:%M:%S)] $*" >&2; }
stop_pid() { # TERM, wait up to 10 s, then KILL
  local pid="$1" _
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  ip netns del "$NS_L" 2>/dev/null || true
  ip netns del "$NS_R" 2>/dev/null || true
  ip link del "$VA" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
  log "building sluice (release)"
  cargo build --release -q -p sluice --bin sluice
fi
SLUICE="$ROOT/target/release/sluice"
[ -x "$SLUICE" ] || { echo "bench/xdp.sh: $SLUICE missing (drop --no-build)" >&2; exit 1; }

# The topology.
for ns in "$NS_L" "$NS_R"; do
  ip netns list | grep -qw "$ns" && { echo "bench/xdp.sh: namespace $ns exists (another run?)" >&2; exit 1; }
done
ip netns add "$NS_L"
ip netns add "$NS_R"
ip link add "$VA" netns "$NS_L" type veth peer name "$VB" netns "$NS_R"
ip -n "$NS_L" link set lo up
ip -n "$NS_R" link set lo up
ip -n "$NS_L" link set "$VA" up
ip -n "$NS_R" addr add "$PEER_IP/24" dev "$VB"
ip -n "$NS_R" link set "$VB" up
# The userspace stack takes no partial checksums or TSO/GSO super-segments (DESIGN.md).
ip netns exec "$NS_R" ethtool -K "$VB" tx off tso off gso off >/dev/null

# nginx's worker runs as an unprivileged user: it must be able to read the body.
chmod 755 "$WORK"
mkdir -p "$WORK/www" "$WORK/tmp"
printf 'hello\n' >"$WORK/www/small"
chmod 644 "$WORK/www/small"
cat >"$WORK/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/origin.pid;
error_log $OUT/logs/origin.error.log warn;
events { worker_connections 8192; }
http {
  access_log off; sendfile on; tcp_nodelay on;
  keepalive_timeout 75s; keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $WORK/tmp/cb; proxy_temp_path $WORK/tmp/p; fastcgi_temp_path $WORK/tmp/f;
  uwsgi_temp_path $WORK/tmp/u; scgi_temp_path $WORK/tmp/s;
  server { listen $PEER_IP:$ORIGIN_PORT backlog=4096; root $WORK/www; location / { } }
}
EOF
cat >"$WORK/sluice.yaml" <<EOF
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
static_resources:
  listeners:
  - name: http_in
    address: { socket_address: { address: 0.0.0.0, port_value: $PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: web }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: web
    connect_timeout: 1s
    load_assignment:
      cluster_name: web
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: $PEER_IP, port_value: $ORIGIN_PORT } } } }] }]
EOF

ip netns exec "$NS_R" taskset -c "$LOAD_CPU" nginx -c "$WORK/origin.conf" >"$OUT/logs/origin.log" 2>&1 &
PIDS+=($!)
sleep 0.5

TICK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_serving() { # wait_serving LOGFILE PID
  local _
  for _ in $(seq 100); do
    grep -q "sluice started" "$1" && return 0
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; return 1; }
    sleep 0.1
  done
  cat "$1" >&2
  return 1
}
run_wrk() { # run_wrk SECONDS MODE -> "req/s non2xx errors"
  local hdr=() out
  [ "$2" = close ] && hdr=(-H "Connection: close")
  out="$(timeout $(($1 + 20)) ip netns exec "$NS_R" taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$CONNECTIONS" -d"${1}s" "${hdr[@]}" "http://$SLUICE_IP:$PORT/small" 2>&1)" || true
  echo "$out" >>"$OUT/logs/wrk.log"
  local rps non2xx errs
  rps="$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')"
  non2xx="$(echo "$out" | awk '/Non-2xx/ {print $NF}')"
  errs="$(echo "$out" | awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}')"
  echo "${rps:-0} ${non2xx:-0} ${errs:-0}"
}

RESULTS=()
measure() { # measure DATAPATH
  local dp="$1" args=() pid mode r rps cpu_before cpu_after cpu_s per_cpu
  if [ "$dp" = kernel ]; then
    ip -n "$NS_L" addr add "$SLUICE_IP/24" dev "$VA"
    args=(--datapath kernel)
  else
    args=(--datapath xdp --interface "$VA" --address "$SLUICE_IP/24" --xdp-mode "$XDP_MODE")
  fi
  ip netns exec "$NS_L" taskset -c "$PROXY_CPU" "$SLUICE" -c "$WORK/sluice.yaml" --concurrency 1 \
    "${args[@]}" >"$OUT/logs/sluice-$dp.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_serving "$OUT/logs/sluice-$dp.log" "$pid"
  # One request first: a proxy (or origin) that answers anything but 200 is no result.
  ip netns exec "$NS_R" curl -sf --max-time 5 -o /dev/null "http://$SLUICE_IP:$PORT/small" ||
    { echo "bench/xdp.sh: GET /small through sluice ($dp) did not answer 200" >&2; exit 1; }
  for mode in keepalive close; do
    log "$dp / $mode: warm-up ${WARMUP}s, measured ${DURATION}s"
    run_wrk "$WARMUP" "$mode" >/dev/null
    ip netns exec "$NS_R" nstat -n
    cpu_before="$(cpu_ticks "$pid")"
    r="$(run_wrk "$DURATION" "$mode")"
    cpu_after="$(cpu_ticks "$pid")"
    { echo "== $dp $mode: the clients' TCP counters"; ip netns exec "$NS_R" nstat; } >>"$OUT/logs/nstat.log"
    rps="${r%% *}"
    cpu_s="$(awk -v a="$cpu_before" -v b="$cpu_after" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}')"
    per_cpu="$(awk -v r="$rps" -v d="$DURATION" -v c="$cpu_s" 'BEGIN {printf "%.0f", (c > 0 ? r * d / c : 0)}')"
    RESULTS+=("$dp $mode $rps $cpu_s $per_cpu ${r#* }")
    log "$dp / $mode: $rps req/s, sluice CPU ${cpu_s}s, $per_cpu req per CPU-s (non-2xx, socket errors: ${r#* })"
  done
  { echo "== $dp: veth counters"; ip -n "$NS_L" -s link show "$VA"; ip -n "$NS_R" -s link show "$VB"
    ip netns exec "$NS_L" ethtool -S "$VA" 2>/dev/null | grep -vE ": 0$"; } >>"$OUT/logs/veth.log"
  if [ "$dp" = xdp ]; then
    ip netns exec "$NS_L" curl -s --max-time 5 http://127.0.0.1:9901/stats 2>/dev/null |
      grep '^xdp\.' >"$OUT/logs/xdp-stats.txt" || true
  fi
  stop_pid "$pid"
  if [ "$dp" = kernel ]; then
    ip -n "$NS_L" addr del "$SLUICE_IP/24" dev "$VA"
  else
    ip -n "$NS_L" link show "$VA" | grep -q xdp && log "WARNING: XDP program still attached after exit"
  fi
  return 0
}

for dp in $DATAPATHS; do measure "$dp"; done

{
  echo "Command: \`$COMMAND\` ($(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores," \
    "sluice on core $PROXY_CPU, wrk + nginx on core $LOAD_CPU, $CONNECTIONS connections," \
    "${DURATION}s runs after ${WARMUP}s warm-up, xdp attach mode $XDP_MODE)"
  echo
  echo "| datapath | connections | req/s | sluice CPU s | req per CPU-s | non-2xx | socket errors |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for r in "${RESULTS[@]}"; do
    # shellcheck disable=SC2086 # word splitting wanted
    set -- $r
    echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"
  done
} | tee "$OUT/results.md"

if [ "$RAW" = 1 ]; then
  log "raw datapath: bench/benches/xsk.rs on sxm49 / 10.99.49.0/24"
  SLUICE_XSK_BENCH_NET=sxm49:49 timeout 600 cargo bench -q -p sluice-bench --bench xsk 2>&1 |
    tee "$OUT/logs/xsk.log" | grep -E "^(bare_rings|xsk_device_tokens):|thrpt|^generator|^frames" |
    tee -a "$OUT/results.md"
fi
