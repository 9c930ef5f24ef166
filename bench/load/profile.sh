#!/usr/bin/env bash
# Profile proxies under one load of bench/load.sh, side by side: where each spends its CPU.
#
#   bench/load/profile.sh [--mode keepalive|close] [--size small|4k|64k] [--duration S]
#                         [--proxies "sluice nginx haproxy"] [--dwarf] [other options]
#
# Same set-up as bench/load.sh (origin, pinning, priorities, configs; bench/load/lib.sh).
# For each proxy, three separate wrk runs of --duration seconds after a warm-up:
#   1. plain (bench/load/measure.py): requests/s, CPU microseconds and context switches
#      per request, and the disturbance figures;
#   2. under `perf trace -s`: syscalls per request, by syscall;
#   3. under `perf record -e cpu-clock` (software clock: works in VMs without PMU
#      counters): kernel/user split and the hottest symbols; with --dwarf, DWARF call
#      graphs for sluice (perf report -G on bench/out/profile/sluice/perf.data).
# Tracing and sampling slow the proxy down, so figures 2 and 3 come from their own runs
# and only their ratios (per request, shares) are reported.
# Output: bench/out/profile/profile.md (+ raw perf files per proxy). About
# proxies x (3 x (duration + 1) + 4) seconds: 45 s with the defaults.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
. bench/load/lib.sh

usage() {
  cat <<'EOF'
Usage: bench/load/profile.sh [options]
  --mode M             keepalive (default) or close (new connection per request)
  --size S             small (default), 4k or 64k
  --duration S         seconds per run (default 5)
  --connections N      wrk connections (default 64)
  --proxies LIST       subset of "sluice nginx haproxy" (default all three)
  --dwarf              record DWARF call graphs for sluice (bigger perf.data)
  --cpus P,L           proxy core and load core (default 1,0)
  --nice N             as bench/load.sh (default -20)
  --slice-us U         as bench/load.sh (default 100)
  --port-base P        loopback ports P..P+3 (default 27080)
  --out DIR            output directory (default bench/out/profile)
  --no-build           use the existing target/release/sluice
  --no-install         do not install Debian packages
EOF
}

COMMAND="bench/load/profile.sh${*:+ $*}"
MODE=keepalive SIZE=small DURATION=5 CONNECTIONS=64 PROXIES="sluice nginx haproxy" DWARF=0
CPUS="1,0" NICE=-20 SLICE_US=100 PORT_BASE=27080 OUT="bench/out/profile" BUILD=1 INSTALL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE="$2"; shift ;;
    --size) SIZE="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
    --proxies) PROXIES="$2"; shift ;;
    --dwarf) DWARF=1 ;;
    --cpus) CPUS="$2"; shift ;;
    --nice) NICE="$2"; shift ;;
    --slice-us) SLICE_US="$2"; shift ;;
    --port-base) PORT_BASE="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --no-install) INSTALL=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/load/profile.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$MODE" in keepalive|close) ;; *) die "unknown mode '$MODE'" ;; esac
case "$SIZE" in small|4k|64k) ;; *) die "unknown size '$SIZE'" ;; esac
for v in DURATION CONNECTIONS SLICE_US PORT_BASE; do
  is_uint "${!v}" || die "${v,,} must be a whole number, got '${!v}'"
done
[[ "$NICE" =~ ^-?[0-9]+$ ]] || die "--nice must be an integer, got '$NICE'"
PROXY_CPU="${CPUS%,*}" LOAD_CPU="${CPUS#*,}"
if ! is_uint "$PROXY_CPU" || ! is_uint "$LOAD_CPU" || [ "$PROXY_CPU" = "$LOAD_CPU" ]; then
  die "--cpus must be two different core numbers, e.g. 1,0"
fi

NEED_SLUICE=0
[[ " $PROXIES " == *" sluice "* ]] && NEED_SLUICE=1
install_traps
load_prepare linux-perf
command -v perf >/dev/null 2>&1 || die "perf not found (Debian package linux-perf)"
perf stat -e cpu-clock true >/dev/null 2>&1 ||
  die "perf cannot count here (kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)); run as root"

close_flag=()
[ "$MODE" = close ] && close_flag=(-H "Connection: close")
wrk_run() { # wrk_run URL SECONDS > output: wrk on the load core, priorities as the proxies
  setsid python3 "$ROOT/bench/load/sched_exec.py" "$NICE" "$SLICE_US" \
    taskset -c "$LOAD_CPU" wrk -t1 -c "$CONNECTIONS" -d "${2}s" --timeout 5s \
    -s "$ROOT/bench/load/wrk_result.lua" "${close_flag[@]}" "$1"
}
proxy_pids() { # proxy_pids ROOT_PID: the PID and its children, comma-separated
  local pids="$1" c
  for c in $(ps -o pid= --ppid "$1"); do pids="$pids,$c"; done
  echo "$pids"
}

start_origin
log "origin (nginx) pid $ORIGIN_PID on 127.0.0.1:$ORIGIN_PORT, core $LOAD_CPU"
for proxy in $PROXIES; do
  dir="$OUT/$proxy"
  mkdir -p "$dir"
  start_proxy "$proxy"
  url="http://127.0.0.1:${PORT[$proxy]}/$SIZE"
  pids="$(proxy_pids "$PROXY_PID")"
  log "$proxy (pids $pids): $MODE $SIZE, ${DURATION}s per run"
  wrk_run "$url" 2 >/dev/null

  mflags=()
  [ "$MODE" = close ] && mflags=(--close)
  python3 "$ROOT/bench/load/measure.py" --url "$url" \
    --proxy-pid "$PROXY_PID" --origin-pid "$ORIGIN_PID" \
    --proxy-cpu "$PROXY_CPU" --load-cpu "$LOAD_CPU" \
    --lua "$ROOT/bench/load/wrk_result.lua" --duration "$DURATION" --warmup 0 \
    --connections "$CONNECTIONS" "${mflags[@]}" --nice "$NICE" --slice-us "$SLICE_US" \
    --quiet-wait 0 --attempts 1 --label "{\"proxy\":\"$proxy\",\"mode\":\"$MODE\",\"size\":\"$SIZE\"}" \
    >"$dir/measure.json"

  perf trace -s -p "$pids" -o "$dir/trace.txt" &
  tpid=$!
  track "$tpid"
  sleep 1 # perf trace attaches
  wrk_run "$url" "$DURATION" >"$dir/wrk_trace.txt"
  kill -INT "$tpid" 2>/dev/null || true
  wait "$tpid" 2>/dev/null || true
  forget "$tpid"

  rec=(-e cpu-clock -F 1999)
  [ "$DWARF" = 1 ] && [ "$proxy" = sluice ] && rec+=(--call-graph "dwarf,16384")
  perf record "${rec[@]}" -p "$pids" -o "$dir/perf.data" >/dev/null 2>"$dir/perf_record.log" &
  ppid_=$!
  track "$ppid_"
  sleep 1
  wrk_run "$url" "$DURATION" >"$dir/wrk_perf.txt"
  kill -INT "$ppid_" 2>/dev/null || true
  wait "$ppid_" 2>/dev/null || true
  forget "$ppid_"
  perf report -i "$dir/perf.data" --no-children --sort dso --stdio >"$dir/report_dso.txt" 2>/dev/null
  perf report -i "$dir/perf.data" --no-children --sort dso,symbol --stdio >"$dir/report_sym.txt" 2>/dev/null
  stop_tracked "$PROXY_PID"
done
stop_tracked "$ORIGIN_PID"

python3 "$ROOT/bench/load/profile_report.py" --out "$OUT" --mode "$MODE" --size "$SIZE" \
  --proxies "$PROXIES" --command "$COMMAND"
log "profile: $OUT/profile.md"
