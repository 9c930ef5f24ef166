#!/usr/bin/env bash
# Virtual-NIC benchmark: sluice's own cost per proxied request when the packet path is
# free, beside kernel-mode sluice's requests per CPU-second in the same run.
#
#   bench/vnic.sh [--quick] [--duration S] [--warmup S] [--reps N] [--connections N]
#                 [--cpus P,L] [--no-build] [--no-install] [--out DIR] [--tables DIR]
#
# - Virtual NIC (`vnic`, bench/src/vnic/): sluice's worker (listener, HTTP connection
#   manager, router, upstream pool) on the smol stack over an in-memory zero-copy frame
#   device (datapath/src/ring.rs: lock-free rings, buffers moved, never copied), pinned
#   to core P; keep-alive clients and the origin (6-byte bodies) as a second smol stack
#   on a thread pinned to core L. Measured with software checksums (as AF_XDP) and with
#   none (a NIC's checksum offload).
# - Kernel mode: the release sluice binary (--concurrency 1) on loopback pinned to core
#   P, nginx origin and wrk pinned to core L (bench/load/lib.sh and measure.py, exactly
#   as bench/load.sh runs them: keep-alive, 6 B, --connections connections).
# Repetitions interleave the two. Every figure is per CPU-second of the proxy over the
# measured window only (thread or process CPU time), so a shared machine's other work
# does not count; the proxy's run-queue delay is reported to judge interference.
#
# Output: $TABLES/vnic.md (table; default bench/results), $TABLES/vnic.jsonl (every run),
# $OUT/logs/ (default bench/out). Binds only
# 127.0.0.1 ports PORT_BASE..PORT_BASE+3 (default 27180..). Every process it starts is
# stopped by PID on exit. Time: about reps x (2 x (warmup + duration) + warmup +
# duration + 5) s after the build (default 3 x 41 s).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
. bench/load/lib.sh

DURATION=10 WARMUP=2 REPS=3 CONNECTIONS=64 CPUS="1,0" BUILD=1 INSTALL=1 OUT="bench/out" TABLES="bench/results"
PORT_BASE=27180 NICE=-20 SLICE_US=100
COMMAND="bench/vnic.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) DURATION=3 WARMUP=1 REPS=1 ;;
    --duration) DURATION="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
    --cpus) CPUS="$2"; shift ;;
    --port-base) PORT_BASE="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --tables) TABLES="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n 2,26p "$0"; exit 0 ;;
    *) die "unknown option '$1'" ;;
  esac
  shift
done
for v in DURATION WARMUP REPS CONNECTIONS PORT_BASE; do
  is_uint "${!v}" && [ "${!v}" -ge 1 ] || die "--${v,,} must be a whole number >= 1, got '${!v}'"
done
PROXY_CPU="${CPUS%,*}" LOAD_CPU="${CPUS#*,}"
is_uint "$PROXY_CPU" && is_uint "$LOAD_CPU" && [ "$PROXY_CPU" != "$LOAD_CPU" ] ||
  die "--cpus must be two different core numbers, e.g. 1,0"

install_traps
NEED_SLUICE=1
if [ "$BUILD" = 1 ]; then
  [ "$INSTALL" = 1 ] && apt_install build-essential pkg-config
  ensure_rust
  log "building sluice and vnic (release)"
  cargo build --release --workspace --bin sluice --bin vnic >&2
fi
BUILD=0 load_prepare # installs nginx/wrk when asked, renders configs, checks ports
VNIC_BIN="$(target_dir)/release/vnic"
[ -x "$VNIC_BIN" ] || die "$VNIC_BIN missing (build it or drop --no-build)"
mkdir -p "$TABLES"
RESULTS="$TABLES/vnic.jsonl"
: >"$RESULTS"

start_origin
run_vnic() { # run_vnic LABEL EXTRA-ARGS...
  local label="$1" line="" attempt
  shift
  for attempt in 1 2 3; do # a failed run (no RESULT line) is measured again, at most 3 times
    line="$(python3 "$ROOT/bench/load/sched_exec.py" "$NICE" "$SLICE_US" "$VNIC_BIN" \
      --cpus "$PROXY_CPU,$LOAD_CPU" --connections "$CONNECTIONS" --warmup "$WARMUP" \
      --seconds "$DURATION" "$@" 2>>"$OUT/logs/vnic.log" | grep '^RESULT ')" && break
    log "$label: attempt $attempt failed; see $OUT/logs/vnic.log"
  done
  [ -n "$line" ] || die "vnic failed 3 times; see $OUT/logs/vnic.log"
  python3 - "$label" "$rep" "$line" >>"$RESULTS" <<'EOF'
import json, sys
label, rep, line = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kv = dict(f.split("=", 1) for f in line.split()[1:])
out = {k: float(v) for k, v in kv.items()}
out.update(proxy=label, rep=rep)
print(json.dumps(out, sort_keys=True))
EOF
  log "$label: $line"
}
for rep in $(seq "$REPS"); do
  run_vnic vnic-sw-checksums
  run_vnic vnic-offload --no-checksums
  start_proxy sluice
  python3 "$ROOT/bench/load/measure.py" --url "http://127.0.0.1:${PORT[sluice]}/small" \
    --proxy-pid "$PROXY_PID" --origin-pid "$ORIGIN_PID" --proxy-cpu "$PROXY_CPU" \
    --load-cpu "$LOAD_CPU" --lua "$ROOT/bench/load/wrk_result.lua" --duration "$DURATION" \
    --warmup "$WARMUP" --connections "$CONNECTIONS" --nice "$NICE" --slice-us "$SLICE_US" \
    --attempts 1 --label "{\"proxy\":\"kernel\",\"rep\":$rep}" >>"$RESULTS"
  stop_tracked "$PROXY_PID"
done

python3 "$ROOT/bench/load/vnic_report.py" "$RESULTS" "$COMMAND" "$CONNECTIONS" "$DURATION" >"$TABLES/vnic.md"
log "wrote $TABLES/vnic.md"
cat "$TABLES/vnic.md"
