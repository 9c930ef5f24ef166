#!/usr/bin/env bash
# Marginal system CPU per proxied request: sluice xdp, sluice kernel, nginx, HAProxy as
# HTTP/1.1 reverse proxies on one core, keep-alive and a new connection per request,
# 6 B / 4 KiB / 64 KiB bodies. One command, as root:
#
#   bench/proxy.sh [--rounds N] [--duration S] [--warmup S] [--connections N]
#                  [--proxies "sluice-xdp sluice-kernel nginx haproxy"]
#                  [--modes "keepalive close"] [--sizes "small 4k 64k"]
#                  [--cpus P,L] [--perf] [--no-build] [--out FILE]
#
# Topology: three namespaces on one L2 segment, a bridge in a fourth (sxr52-br):
#   sxr52-c  client (wrk)        10.99.52.1  ─veth─┐
#   sxr52-p  the proxy, core P   10.99.52.2  ─veth─┤ bridge
#   sxr52-o  origin (nginx)      10.99.52.3  ─veth─┘
# wrk and the origin run on core L. The proxy's interface is a veth end (sxr52p0): in
# xdp mode sluice attaches to it in native mode with one AF_XDP queue and owns
# 10.99.52.2 (the kernel has no address there); the kernel-socket proxies get the
# address on it. xdp mode needs full checksums and no TSO/GSO from the senders (veth
# has no checksum offload for AF_XDP), so its runs have the client's and origin's
# offloads off; the kernel-socket proxies run with them on (as on a NIC, where the
# hardware does that work).
#
# The figure: whole-system CPU per request, proxied, minus the same for wrk hitting the
# origin directly across the same bridge and veths, in the same offload setting and the
# same round ("direct"). That charges veth delivery and softirq work — on veth it runs
# in the sender's context, often on the other core — to whoever caused it. "System CPU"
# is measured two ways over exactly the wrk run: (1) the tasks that do the work — wrk,
# origin, proxy, ksoftirqd (utime+stime, /proc/PID/stat; with tick accounting softirq
# work is charged to the task it interrupted) — which leaves out unrelated work on a
# shared machine; (2) the whole machine's non-idle time over all cores (/proc/stat),
# which does not. Also the proxy's own utime+stime per request (the per-process figure).
# Rounds are interleaved (each proxy once per round, order rotated), so ratios compare
# runs that saw the same machine. Table: bench/results/proxy.md (raw: proxy.jsonl).
#
# --perf: also sample each proxy with `perf record -e cpu-clock -g` (software clock:
# works in VMs) during its measured runs, and write the hottest symbols per proxy and
# cell next to the table (FILE's directory, proxy-perf-*.txt). Sampling costs CPU, so
# leave it off for the figures.
#
# Bounded: about rounds x 6 x (modes x sizes) x (warmup + duration + 1.5) s; default
# 3 x 6 x 6 x 7.5 s, ~14 min. Every process it starts is stopped by PID and the
# namespaces (with the veths, the bridge, and any XDP program) are deleted on exit, also
# on error or Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

ROUNDS=3 DURATION=5 WARMUP=1 CONNECTIONS=32 CPUS="1,0" BUILD=1 PERF=0 OUT="bench/results/proxy.md"
PROXIES="sluice-xdp sluice-kernel nginx haproxy" MODES="keepalive close" SIZES="small 4k 64k"
COMMAND="bench/proxy.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --proxies) PROXIES="$2"; shift 2 ;;
    --modes) MODES="$2"; shift 2 ;;
    --sizes) SIZES="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --perf) PERF=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "bench/proxy.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PROXY_CPU="${CPUS%,*}" LOAD_CPU="${CPUS#*,}"
[ "$(id -u)" = 0 ] || { echo "bench/proxy.sh: needs root (namespaces, XDP, AF_XDP)" >&2; exit 1; }
PATH="$PATH:/usr/sbin:/sbin"
missing=()
for tool in nginx haproxy wrk curl; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; fi
mkdir -p "$(dirname "$OUT")"
[ "$PERF" = 0 ] || command -v perf >/dev/null 2>&1 || { echo "bench/proxy.sh: --perf needs perf (linux-perf)" >&2; exit 1; }
for tool in ip ethtool nginx haproxy wrk curl taskset python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/proxy.sh: '$tool' not found" >&2; exit 1; }
done

NS_C=sxr52-c NS_P=sxr52-p NS_O=sxr52-o NS_B=sxr52-br
CLIENT_IP=10.99.52.1 PROXY_IP=10.99.52.2 ORIGIN_IP=10.99.52.3 PORT=8080 ORIGIN_PORT=8081
WORK="$(mktemp -d /tmp/sluice-proxy-bench.XXXXXX)"
PIDS=()
log() { echo "[proxy-bench $(date +%H:%M:%S)] $*" >&2; }
stop_pid() {
  local pid="$1" _
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}
cleanup() {
  local code=$? i
  trap - EXIT
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  for ns in "$NS_C" "$NS_P" "$NS_O" "$NS_B"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$BUILD" = 1 ]; then
  log "building sluice (release)"
  cargo build --release -q -p sluice --bin sluice
fi
SLUICE="$ROOT/target/release/sluice"
[ -x "$SLUICE" ] || { echo "bench/proxy.sh: $SLUICE missing (drop --no-build)" >&2; exit 1; }

# The topology.
for ns in "$NS_C" "$NS_P" "$NS_O" "$NS_B"; do
  ip netns list | grep -qw "$ns" && { echo "bench/proxy.sh: namespace $ns exists (another run?)" >&2; exit 1; }
done
for ns in "$NS_C" "$NS_P" "$NS_O" "$NS_B"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
# Bridged frames skip iptables (br_netfilter, when loaded, would run every frame through
# the bridge namespace's netfilter hooks: a cost of the test bed, not of any proxy).
for t in iptables ip6tables arptables; do
  ip netns exec "$NS_B" sysctl -qw "net.bridge.bridge-nf-call-$t=0" 2>/dev/null || true
done
ip -n "$NS_B" link add br0 type bridge
ip -n "$NS_B" link set br0 up
declare -A DEV=([c]=$NS_C [p]=$NS_P [o]=$NS_O)
for end in c p o; do
  ip -n "$NS_B" link add "sxr52${end}1" type veth peer name "sxr52${end}0" netns "${DEV[$end]}"
  ip -n "$NS_B" link set "sxr52${end}1" master br0 up
  ip -n "${DEV[$end]}" link set "sxr52${end}0" up
done
ip -n "$NS_C" addr add "$CLIENT_IP/24" dev sxr52c0
ip -n "$NS_O" addr add "$ORIGIN_IP/24" dev sxr52o0
VA=sxr52p0

offloads() { # offloads on|off: the senders' checksum/TSO/GSO offloads
  local end ns
  for end in c o; do
    ip netns exec "${DEV[$end]}" ethtool -K "sxr52${end}0" tx "$1" tso "$1" gso "$1" >/dev/null 2>&1 || true
    ip netns exec "$NS_B" ethtool -K "sxr52${end}1" tx "$1" tso "$1" gso "$1" >/dev/null 2>&1 || true
  done
  ip netns exec "$NS_B" ethtool -K sxr52p1 tx "$1" tso "$1" gso "$1" >/dev/null 2>&1 || true
}

# Content and configs (bench/load's templates, moved onto the bridge's addresses).
chmod 755 "$WORK"
mkdir -p "$WORK/www" "$WORK/tmp" "$WORK/logs"
printf 'hello\n' >"$WORK/www/small"
head -c 4096 /dev/zero | tr '\0' 'a' >"$WORK/www/4k"
head -c 65536 /dev/zero | tr '\0' 'b' >"$WORK/www/64k"
chmod 644 "$WORK"/www/*
declare -A BODY_BYTES=([small]=6 [4k]=4096 [64k]=65536)
render() { # render TEMPLATE LISTEN_IP PORT
  sed -e "s|@WORK@|$WORK|g" -e "s|127.0.0.1:@PORT@|$2:$3|g" -e "s|127.0.0.1:@ORIGIN_PORT@|$ORIGIN_IP:$ORIGIN_PORT|g" \
    -e "s|address: 127.0.0.1, port_value: @PORT@|address: 0.0.0.0, port_value: $3|" \
    -e "s|address: 127.0.0.1, port_value: @ORIGIN_PORT@|address: $ORIGIN_IP, port_value: $ORIGIN_PORT|" \
    "$ROOT/bench/load/$1"
}
render origin.nginx.conf "$ORIGIN_IP" "$ORIGIN_PORT" >"$WORK/origin.nginx.conf"
render proxy.nginx.conf "$PROXY_IP" "$PORT" >"$WORK/proxy.nginx.conf"
render haproxy.cfg "$PROXY_IP" "$PORT" >"$WORK/haproxy.cfg"
render sluice.yaml "$PROXY_IP" "$PORT" >"$WORK/sluice.yaml"
grep -q "$ORIGIN_IP" "$WORK/sluice.yaml" "$WORK/proxy.nginx.conf" "$WORK/haproxy.cfg" ||
  { echo "bench/proxy.sh: config templates changed; cannot place them on $ORIGIN_IP" >&2; exit 1; }

children() { echo "$1" $(pgrep -P "$1" || true); }

ip netns exec "$NS_O" taskset -c "$LOAD_CPU" nginx -p "$WORK" -c "$WORK/origin.nginx.conf" \
  -e "$WORK/logs/origin.error.log" >"$WORK/logs/origin.log" 2>&1 &
ORIGIN=$!
PIDS+=("$ORIGIN")
sleep 0.5

wait_ready() { # wait_ready NAME PID IP
  local got i size
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { cat "$WORK/logs/$1.log" >&2 || true; echo "bench/proxy.sh: $1 exited" >&2; exit 1; }
    got="$(ip netns exec "$NS_C" curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$3:$4/small" || true)"
    [ "$got" = 200 ] && break
    sleep 0.1
  done
  for size in small 4k 64k; do
    got="$(ip netns exec "$NS_C" curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "http://$3:$4/$size" || true)"
    [ "$got" = "200 ${BODY_BYTES[$size]}" ] ||
      { echo "bench/proxy.sh: $1: GET /$size gave '$got', want '200 ${BODY_BYTES[$size]}'" >&2; exit 1; }
  done
}

start_proxy() { # start_proxy NAME: sets PROXY (PID), TARGET_IP, TARGET_PORT
  local name="$1" cmd=()
  TARGET_IP=$PROXY_IP TARGET_PORT=$PORT PROXY=""
  case "$name" in
    direct-*) TARGET_IP=$ORIGIN_IP TARGET_PORT=$ORIGIN_PORT ;;
    sluice-xdp) cmd=("$SLUICE" -c "$WORK/sluice.yaml" --concurrency 1 --log-level warning --drain-time-s 1
                  --datapath xdp --interface "$VA" --address "$PROXY_IP/24" --xdp-mode drv) ;;
    sluice-kernel) cmd=("$SLUICE" -c "$WORK/sluice.yaml" --concurrency 1 --log-level warning --drain-time-s 1) ;;
    nginx) cmd=(nginx -p "$WORK" -c "$WORK/proxy.nginx.conf" -e "$WORK/logs/proxy-nginx.error.log") ;;
    haproxy) cmd=(haproxy -db -f "$WORK/haproxy.cfg") ;;
    *) echo "bench/proxy.sh: unknown proxy $name" >&2; exit 2 ;;
  esac
  case "$name" in
    sluice-xdp|direct-off) offloads off ;;
    *) offloads on ;;
  esac
  if [ "$name" = sluice-xdp ]; then
    ip -n "$NS_P" addr flush dev "$VA"
  elif ! ip -n "$NS_P" addr show dev "$VA" | grep -q "$PROXY_IP"; then
    ip -n "$NS_P" addr add "$PROXY_IP/24" dev "$VA"
  fi
  if [ ${#cmd[@]} -gt 0 ]; then
    ip netns exec "$NS_P" taskset -c "$PROXY_CPU" "${cmd[@]}" >"$WORK/logs/$name.log" 2>&1 &
    PROXY=$!
    PIDS+=("$PROXY")
    wait_ready "$name" "$PROXY" "$TARGET_IP" "$TARGET_PORT"
  else
    wait_ready origin "$ORIGIN" "$TARGET_IP" "$TARGET_PORT"
  fi
}

task_ticks() { # sum of utime+stime of PIDs
  local p t=0 v
  for p in "$@"; do
    v="$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)"
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
KSOFT="$(pgrep '^ksoftirqd/' | tr '\n' ' ')"

RAW="$WORK/raw.txt"
: >"$RAW"
measure() { # measure NAME MODE SIZE ROUND
  local name="$1" mode="$2" size="$3" round="$4" hdr=() out m0 m1 t0 t1 p0 p1 w proxy_tasks
  [ "$mode" = close ] && hdr=(-H "Connection: close")
  local url="http://$TARGET_IP:$TARGET_PORT/$size"
  timeout $((WARMUP + 20)) ip netns exec "$NS_C" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" \
    "${hdr[@]}" "$url" >/dev/null 2>&1 || true
  proxy_tasks=""
  [ -n "$PROXY" ] && proxy_tasks="$(children "$PROXY")"
  local perfpid=""
  if [ "$PERF" = 1 ] && [ -n "$PROXY" ]; then
    perf record -q -e cpu-clock -g -p "$(echo "$proxy_tasks" | tr ' ' ',')" -o "$WORK/perf-$name-$mode-$size.data" \
      -- sleep "$DURATION" >/dev/null 2>&1 &
    perfpid=$!
  fi
  m0="$(machine_ticks)"
  # shellcheck disable=SC2046,SC2086 # word splitting wanted
  t0="$(task_ticks $(children "$ORIGIN") $KSOFT)"
  # shellcheck disable=SC2086
  p0="$(task_ticks $proxy_tasks)"
  # wrk under a shell that prints its children's CPU ticks (cutime + cstime) once wrk is
  # reaped: wrk's own CPU over its whole run, the measurement window.
  w="$(ip netns exec "$NS_C" taskset -c "$LOAD_CPU" bash -c \
    'wrk "$@" >"$0" 2>&1; awk "{sub(/^.*\\) /, \"\"); print \$14 + \$15}" /proc/$$/stat' \
    "$WORK/wrk.out" -t1 -c"$CONNECTIONS" -d"${DURATION}s" "${hdr[@]}" -s "$ROOT/bench/load/wrk_result.lua" "$url")"
  m1="$(machine_ticks)"
  # shellcheck disable=SC2046,SC2086
  t1="$(task_ticks $(children "$ORIGIN") $KSOFT)"
  # shellcheck disable=SC2086
  p1="$(task_ticks $proxy_tasks)"
  if [ -n "$perfpid" ]; then
    wait "$perfpid" || true
    perf report -i "$WORK/perf-$name-$mode-$size.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -40 >"$(dirname "$OUT")/proxy-perf-$name-$mode-$size.txt" || true
  fi
  out="$(grep '^RESULT' "$WORK/wrk.out" || true)"
  [ -n "$out" ] || { cat "$WORK/wrk.out" >&2; echo "bench/proxy.sh: wrk gave no result ($name $mode $size)" >&2; exit 1; }
  echo "round=$round proxy=$name mode=$mode size=$size machine_ticks=$((m1 - m0)) tasks_ticks=$((t1 - t0 + p1 - p0 + w)) proxy_ticks=$((p1 - p0)) wrk_ticks=$w ${out#RESULT }" >>"$RAW"
  log "round $round $name $mode $size: ${out#RESULT }"
}

LIST=(direct-on direct-off $PROXIES)
n=${#LIST[@]}
for round in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do
    name="${LIST[$(((i + round) % n))]}"
    start_proxy "$name"
    for mode in $MODES; do
      for size in $SIZES; do measure "$name" "$mode" "$size" "$round"; done
    done
    if [ -n "$PROXY" ]; then stop_pid "$PROXY"; forget "$PROXY"; fi
    if [ "$name" = sluice-xdp ] && ip -n "$NS_P" link show "$VA" | grep -q "prog/xdp"; then
      echo "bench/proxy.sh: XDP program still attached to $VA after sluice exited" >&2
      exit 1
    fi
  done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$RAW" "$OUT" "$COMMAND" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$PROXY_CPU" "$LOAD_CPU" <<'EOF'
import collections, datetime, json, os, platform, sys
raw, out, command, rounds, dur, conns, pcpu, lcpu = sys.argv[1:]
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
runs = []
for line in open(raw):
    d = dict(kv.split("=", 1) for kv in line.split())
    for k, v in list(d.items()):
        try:
            d[k] = float(v)
        except ValueError:
            pass
    runs.append(d)
with open(os.path.splitext(out)[0] + ".jsonl", "w") as f:
    for r in runs:
        f.write(json.dumps(r) + "\n")
g = collections.defaultdict(list)
for r in runs:
    g[(r["proxy"], r["mode"], r["size"])].append(r)
def per_req(rs, key):
    n = sum(r["requests"] for r in rs)
    return sum(r[key] for r in rs) * TICK_US / n if n else float("nan")
def errors(rs):
    return int(sum(r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"] for r in rs))
names = {"sluice-xdp": "sluice xdp", "sluice-kernel": "sluice kernel", "nginx": "nginx", "haproxy": "HAProxy"}
proxies = [p for p in ["sluice-xdp", "sluice-kernel", "nginx", "haproxy"] if any(k[0] == p for k in g)]
base_of = lambda p: "direct-off" if p == "sluice-xdp" else "direct-on"
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
L = [f"Command: `{command}` ({now}, Linux {platform.release()}, {os.cpu_count()} cores; proxy on core {pcpu}, "
     f"wrk -t1 -c{conns} and the nginx origin on core {lcpu}; {rounds} interleaved rounds of {dur} s per cell; "
     "one worker/process per proxy; veth + bridge, xdp mode native XDP, AF_XDP copy mode)", ""]
L.append("Marginal system CPU per proxied request, µs (all packet tasks: proxied minus direct, same round "
         "and offload setting); in brackets the same from the whole machine's /proc/stat; then the proxy "
         "process alone, req/s, and the ratio of marginal CPU to sluice kernel and to nginx.")
L.append("")
L.append("| connections | body | proxy | marginal µs/req | [whole machine] | proxy process µs/req | req/s | × sluice kernel | × nginx | errors |")
L.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for mode in ["keepalive", "close"]:
    for size in ["small", "4k", "64k"]:
        marg = {}
        for p in proxies:
            rs, bs = g.get((p, mode, size)), g.get((base_of(p), mode, size))
            if rs and bs:
                marg[p] = (per_req(rs, "tasks_ticks") - per_req(bs, "tasks_ticks"),
                           per_req(rs, "machine_ticks") - per_req(bs, "machine_ticks"))
        for p in proxies:
            if p not in marg:
                continue
            rs = g[(p, mode, size)]
            rps = sum(r["requests"] for r in rs) / sum(r["duration_us"] / 1e6 for r in rs)
            rk = f"{marg[p][0] / marg['sluice-kernel'][0]:.2f}" if "sluice-kernel" in marg and marg['sluice-kernel'][0] > 0 else ""
            rn = f"{marg[p][0] / marg['nginx'][0]:.2f}" if "nginx" in marg and marg['nginx'][0] > 0 else ""
            L.append(f"| {'keep-alive' if mode == 'keepalive' else 'new per request'} | "
                     f"{ {'small': '6 B', '4k': '4 KiB', '64k': '64 KiB'}[size]} | {names[p]} | {marg[p][0]:.1f} | "
                     f"[{marg[p][1]:.1f}] | {per_req(rs, 'proxy_ticks'):.1f} | {rps:,.0f} | {rk} | {rn} | {errors(rs)} |")
        for b in ["direct-on", "direct-off"]:
            bs = g.get((b, mode, size))
            if bs:
                rps = sum(r["requests"] for r in bs) / sum(r["duration_us"] / 1e6 for r in bs)
                L.append(f"| {'keep-alive' if mode == 'keepalive' else 'new per request'} | "
                         f"{ {'small': '6 B', '4k': '4 KiB', '64k': '64 KiB'}[size]} | *direct, offloads {b[7:]}* | "
                         f"*{per_req(bs, 'tasks_ticks'):.1f} total* | [{per_req(bs, 'machine_ticks'):.1f}] | – | {rps:,.0f} | | | {errors(bs)} |")
L.append("")
L.append("Direct rows give the total (not marginal) CPU per request of wrk and the origin with no proxy. "
         "CPU times are tick-sampled (USER_HZ): a cell sums all its rounds before dividing.")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
EOF
