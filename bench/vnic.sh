#!/usr/bin/env bash
# Virtual-NIC benchmark: sluice's own cost per proxied request when the packet path is
# free, beside kernel-mode sluice's requests per CPU-second in the same run.
#
#   bench/vnic.sh [--quick] [--duration S] [--warmup S] [--reps N] [--connections N]
#                 [--cpus P,L] [--no-build] [--no-install] [--out DIR]
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
# Output: $OUT/vnic.md (table), $OUT/vnic.jsonl (every run), $OUT/logs/. Binds only
# 127.0.0.1 ports PORT_BASE..PORT_BASE+3 (default 27180..). Every process it starts is
# stopped by PID on exit. Time: about reps x (2 x (warmup + duration) + warmup +
# duration + 5) s after the build (default 3 x 41 s).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
. bench/load/lib.sh

DURATION=10 WARMUP=2 REPS=3 CONNECTIONS=64 CPUS="1,0" BUILD=1 INSTALL=1 OUT="bench/results"
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
RESULTS="$OUT/vnic.jsonl"
: >"$RESULTS"

start_origin
run_vnic() { # run_vnic LABEL EXTRA-ARGS...
  local label="$1" line
  shift
  line="$(python3 "$ROOT/bench/load/sched_exec.py" "$NICE" "$SLICE_US" "$VNIC_BIN" \
    --cpus "$PROXY_CPU,$LOAD_CPU" --connections "$CONNECTIONS" --warmup "$WARMUP" \
    --seconds "$DURATION" "$@" 2>>"$OUT/logs/vnic.log" | grep '^RESULT ')" ||
    die "vnic failed; see $OUT/logs/vnic.log"
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

python3 - "$RESULTS" "$COMMAND" "$CONNECTIONS" "$DURATION" >"$OUT/vnic.md" <<'EOF'
import json, os, platform, statistics, subprocess, sys, time
path, command, conns, duration = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
runs = [json.loads(l) for l in open(path) if l.strip()]
def med(label, key):
    xs = [r[key] for r in runs if r.get("proxy") == label]
    return statistics.median(xs) if xs else float("nan")
kernel = med("kernel", "rpcs")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"# Virtual NIC: sluice's own cost per proxied request\n")
print(f"`{command}` on {platform.node()} ({os.cpu_count()} cores, {cpu}), "
      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {rev}; keep-alive, 6 B bodies, "
      f"{conns} connections, {duration} s per run, medians of {len([r for r in runs if r.get('proxy') == 'kernel'])} interleaved repetitions.\n")
print("| proxy | req/s (wall) | proxy core busy | req per proxy CPU-s | req per busy CPU-s | µs per request (busy) | proxy run-queue delay | × kernel per CPU-s (busy) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for label, name in (("vnic-sw-checksums", "sluice, smol stack on the virtual NIC, software checksums"),
                    ("vnic-offload", "sluice, smol stack on the virtual NIC, checksum offload")):
    secs = med(label, "seconds")
    busy = (med(label, "proxy_cpu_ns") - med(label, "proxy_spin_ns")) / 1e9
    per_busy = med(label, "per_busy_cpu_s")
    print(f"| {name} | {med(label, 'rps'):,.0f} | {busy / secs:.0%} | {med(label, 'per_cpu_s'):,.0f} | "
          f"{per_busy:,.0f} | {1e6 / per_busy:.2f} | {med(label, 'proxy_delay_ns') / 1e9 / secs:.1%} | "
          f"{per_busy / kernel:.2f} |")
print(f"| sluice, kernel mode on loopback (wrk, nginx origin) | {med('kernel', 'rps'):,.0f} | "
      f"{med('kernel', 'proxy_util'):.0%} | {kernel:,.0f} | {kernel:,.0f} | {1e6 / kernel:.2f} | "
      f"{med('kernel', 'proxy_run_delay'):.1%} | 1.00 |")
print("\nreq per proxy CPU-s: requests over the proxy thread's (vnic) or process's (kernel) CPU time "
      "in the window. Busy: less the time the vnic proxy spent spinning on an empty ring "
      "(idle capacity of a busy-polling core). Kernel-mode CPU time excludes the loopback "
      "work charged to wrk and nginx; vnic's load thread does its side of TCP itself.")
EOF
log "wrote $OUT/vnic.md"
cat "$OUT/vnic.md"
