#!/usr/bin/env bash
# Load comparison on loopback: sluice (kernel mode) vs nginx vs HAProxy as HTTP/1.1
# reverse proxies in front of one nginx origin, one proxy at a time.
#
#   bench/load.sh [--quick] [--duration S] [--warmup S] [--reps N] [other options]
#
# It installs what it needs (Debian packages: nginx, haproxy, wrk, gnuplot-nox, curl,
# python3), builds sluice (release), starts the origin (nginx, one worker, fixed bodies of
# 6 B, 4 KiB and 64 KiB, keep-alive, no access log), then for each repetition starts each
# proxy in turn (rotating the order every repetition) pinned alone to the proxy core, with
# wrk and the origin pinned to the load core, and measures keep-alive and
# new-connection-per-request load (wrk with `Connection: close`) for the three bodies:
# a warm-up, then a fixed-length measured run. Every run reports requests/s, p50/p99
# latency, and requests per CPU-second of the proxy (utime+stime of all its processes and
# threads, /proc/PID/stat, over exactly the measured interval); the report gives each as a
# ratio to nginx in the same invocation. A run during which the proxy waited for its core
# (run-queue delay) more than --max-delay of the time, other processes took more than
# --max-other of the load core, or steal passed --max-steal, is marked disturbed,
# measured again after waiting for a quieter machine, and left out of the tables unless
# --accept-disturbed is given (then it is flagged in them). Proxies, origin and wrk run
# at nice --nice (default -20) with a 100 us scheduler slice, in sessions of their own
# (bench/load/sched_exec.py), so that on a shared machine other work yields the measured
# cores to them quickly.
#
# Output: bench/out/results.md (tables), bench/out/results.svg (plot),
# bench/out/results.jsonl (every run), bench/out/logs/. Binds only 127.0.0.1, ports
# PORT_BASE..PORT_BASE+3 (default 27080..27083). Every process it starts is stopped by
# PID on exit, also on error or Ctrl-C.
#
# Time: about reps x proxies x (6 x (warmup + duration + 2.5) + 3) seconds after the
# build: default 3 x 3 x (6 x 14.5 + 3) s, about 14 minutes (measured: 14 min 11 s on a
# quiet 2-core VM); --quick about 2 minutes. Re-measuring disturbed runs (at most
# --attempts each, after at most --quiet-wait) can add to this: a run on a busy machine
# took 22-28 min. The script prints its hard upper bound before it starts.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
. bench/load/lib.sh

usage() {
  cat <<'EOF'
Usage: bench/load.sh [options]
  --h2 [OPTIONS]       the HTTP/2 comparison instead (bench/h2load.sh: h2load with
                       multiplexing, GET and gRPC-framed unary; its own options follow)
  --quick              1 repetition, 3 s runs, 1 s warm-up, short quiet waits
  --duration S         seconds per measured run (default 10)
  --warmup S           seconds of warm-up before each measured run (default 2)
  --reps N             repetitions, interleaved across proxies (default 3)
  --connections N      wrk connections (default 64)
  --threads N          wrk threads (default 1)
  --proxies LIST       space-separated subset of "sluice nginx haproxy" (nginx is
                       always measured: it is the reference for the ratios)
  --modes LIST         subset of "keepalive close" (default both)
  --sizes LIST         subset of "small 4k 64k" (default all)
  --cpus P,L           proxy core and load core (default 1,0)
  --nice N             nice value for proxies, origin and wrk, each in a session of its
                       own whose autogroup gets N too (default -20, so that a shared
                       machine's other work keeps off the measured cores; 0: as is)
  --slice-us U         their EEVDF slice request in microseconds (default 100; Linux
                       6.12+: a short slice lets them preempt other work on wake-up)
  --max-delay F        a run is disturbed when the proxy waits for its core (run-queue
                       delay) more than this share of the run (default 0.05)
  --max-other F        ... or other processes take more than this share of the load
                       core (default 0.10)
  --max-steal F        ... or steal time passes this share on either core (default 0.02)
  --quiet-wait S       before each run, wait up to S seconds for both cores to be
                       nearly free of other work (default 3)
  --attempts N         measure a disturbed run up to N times (default 2)
  --accept-disturbed   report disturbed runs (flagged) instead of leaving them out
  --port-base P        loopback ports P..P+3 (default 27080)
  --out DIR            output directory (default bench/out)
  --no-build           use the existing target/release/sluice
  --no-install         do not install Debian packages
EOF
}

DURATION=10 WARMUP=2 REPS=3 CONNECTIONS=64 THREADS=1
PROXIES="sluice nginx haproxy" MODES="keepalive close" SIZES="small 4k 64k"
CPUS="1,0" NICE=-20 SLICE_US=100 MAX_DELAY=0.05 MAX_OTHER=0.10 MAX_STEAL=0.02 QUIET_WAIT=3 ATTEMPTS=2
ACCEPT_DISTURBED=0 PORT_BASE=27080 OUT="bench/out" BUILD=1 INSTALL=1
COMMAND="bench/load.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --h2) shift; exec "$ROOT/bench/h2load.sh" "$@" ;;
    --quick) DURATION=3 WARMUP=1 REPS=1 QUIET_WAIT=1 ATTEMPTS=1 ;;
    --duration) DURATION="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --proxies) PROXIES="$2"; shift ;;
    --modes) MODES="$2"; shift ;;
    --sizes) SIZES="$2"; shift ;;
    --cpus) CPUS="$2"; shift ;;
    --nice) NICE="$2"; shift ;;
    --slice-us) SLICE_US="$2"; shift ;;
    --max-delay) MAX_DELAY="$2"; shift ;;
    --max-other) MAX_OTHER="$2"; shift ;;
    --max-steal) MAX_STEAL="$2"; shift ;;
    --quiet-wait) QUIET_WAIT="$2"; shift ;;
    --attempts) ATTEMPTS="$2"; shift ;;
    --accept-disturbed) ACCEPT_DISTURBED=1 ;;
    --port-base) PORT_BASE="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --no-install) INSTALL=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/load.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

for v in DURATION WARMUP REPS CONNECTIONS THREADS QUIET_WAIT ATTEMPTS PORT_BASE SLICE_US; do
  v_flag="${v,,}"
  is_uint "${!v}" || die "--${v_flag//_/-} must be a whole number, got '${!v}'"
done
[[ "$NICE" =~ ^-?[0-9]+$ ]] || die "--nice must be an integer, got '$NICE'"
if [ "$DURATION" -lt 1 ] || [ "$REPS" -lt 1 ] || [ "$ATTEMPTS" -lt 1 ]; then
  die "--duration, --reps and --attempts must be at least 1"
fi
PROXY_CPU="${CPUS%,*}" LOAD_CPU="${CPUS#*,}"
if ! is_uint "$PROXY_CPU" || ! is_uint "$LOAD_CPU" || [ "$PROXY_CPU" = "$LOAD_CPU" ]; then
  die "--cpus must be two different core numbers, e.g. 1,0"
fi
for p in $PROXIES; do
  case "$p" in sluice|nginx|haproxy) ;; *) die "unknown proxy '$p'" ;; esac
done
[[ " $PROXIES " == *" nginx "* ]] || PROXIES="$PROXIES nginx"
for m in $MODES; do case "$m" in keepalive|close) ;; *) die "unknown mode '$m'" ;; esac; done
for s in $SIZES; do case "$s" in small|4k|64k) ;; *) die "unknown size '$s'" ;; esac; done

# --- tools, build, configs; processes are stopped by PID on exit ---------------------
NEED_SLUICE=0
[[ " $PROXIES " == *" sluice "* ]] && NEED_SLUICE=1
install_traps
load_prepare # (no extra packages)

# --- metadata for the report ----------------------------------------------------------
ncells=0
for m in $MODES; do for s in $SIZES; do ncells=$((ncells + 1)); done; done
nproxies=$(wc -w <<<"$PROXIES")
typical=$((REPS * nproxies * (ncells * (WARMUP * 10 + DURATION * 10 + 25) + 30) / 10))
worst=$((REPS * nproxies * ncells * ATTEMPTS * (QUIET_WAIT + 1 + WARMUP + DURATION + 60) + REPS * nproxies * 25))
log "plan: $REPS repetition(s) x {$PROXIES} x $ncells cells, ${DURATION}s runs after ${WARMUP}s warm-up"
log "expected about $((typical / 60)) min $((typical % 60)) s; at most $((worst / 60)) min"
python3 - "$OUT/meta.json" <<EOF
import json, os, platform, subprocess, sys
def out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip()
    except Exception as e:
        return str(e)
meta = {
    "command": """$COMMAND""",
    "cpu_model": out("lscpu | sed -n 's/^Model name: *//p' | head -1"),
    "cpus_online": "$ONLINE",
    "kernel": platform.release(),
    "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "virtualization": out("systemd-detect-virt 2>/dev/null || lscpu | sed -n 's/^Hypervisor vendor: *//p'"),
    "sluice": out("git -C '$ROOT' describe --always --dirty 2>/dev/null"),
    "nginx": out("nginx -v 2>&1 | sed 's/.*nginx\\///'"),
    "haproxy": out("haproxy -v | head -1 | awk '{print \$3}'"),
    "wrk": out("wrk -v 2>&1 | head -1 | awk '{print \$2}'"),
    "duration_s": $DURATION, "warmup_s": $WARMUP, "reps": $REPS,
    "connections": $CONNECTIONS, "threads": $THREADS,
    "proxies": "$PROXIES".split(), "modes": "$MODES".split(), "sizes": "$SIZES".split(),
    "proxy_cpu": $PROXY_CPU, "load_cpu": $LOAD_CPU, "nice": $NICE, "slice_us": $SLICE_US,
    "max_delay": $MAX_DELAY, "max_other": $MAX_OTHER, "max_steal": $MAX_STEAL,
    "attempts": $ATTEMPTS, "autogroup": open("/proc/sys/kernel/sched_autogroup_enabled").read().strip() == "1" if os.path.exists("/proc/sys/kernel/sched_autogroup_enabled") else False,
    "quiet_wait_s": $QUIET_WAIT, "accept_disturbed": bool($ACCEPT_DISTURBED),
    "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "started": out("date -u +%Y-%m-%dT%H:%M:%SZ"),
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF

# --- the runs -------------------------------------------------------------------------
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
start_origin
log "origin (nginx) pid $ORIGIN_PID on 127.0.0.1:$ORIGIN_PORT, core $LOAD_CPU"

read -r -a order <<<"$PROXIES"
for rep in $(seq "$REPS"); do
  # Rotate the order every repetition so that no proxy always runs first or last.
  rot=$(((rep - 1) % ${#order[@]}))
  this=("${order[@]:$rot}" "${order[@]:0:$rot}")
  for proxy in "${this[@]}"; do
    start_proxy "$proxy"
    log "rep $rep/$REPS: $proxy pid $PROXY_PID on 127.0.0.1:${PORT[$proxy]}, core $PROXY_CPU"
    for mode in $MODES; do
      for size in $SIZES; do
        close_flag=()
        [ "$mode" = close ] && close_flag=(--close)
        python3 "$ROOT/bench/load/measure.py" \
          --url "http://127.0.0.1:${PORT[$proxy]}/$size" \
          --proxy-pid "$PROXY_PID" --origin-pid "$ORIGIN_PID" \
          --proxy-cpu "$PROXY_CPU" --load-cpu "$LOAD_CPU" \
          --lua "$ROOT/bench/load/wrk_result.lua" \
          --duration "$DURATION" --warmup "$WARMUP" \
          --connections "$CONNECTIONS" --threads "$THREADS" "${close_flag[@]}" \
          --nice "$NICE" --slice-us "$SLICE_US" --max-delay "$MAX_DELAY" --max-other "$MAX_OTHER" \
          --max-steal "$MAX_STEAL" \
          --quiet-wait "$QUIET_WAIT" --attempts "$ATTEMPTS" \
          --label "{\"proxy\":\"$proxy\",\"mode\":\"$mode\",\"size\":\"$size\",\"rep\":$rep}" \
          >>"$RESULTS" &
        mpid=$!
        track "$mpid"
        wait "$mpid" || die "measurement failed ($proxy $mode $size)"
        forget "$mpid"
      done
    done
    stop_tracked "$PROXY_PID"
  done
done
stop_tracked "$ORIGIN_PID"

report_flags=()
[ "$ACCEPT_DISTURBED" = 1 ] && report_flags=(--accept-disturbed)
python3 "$ROOT/bench/load/report.py" --out "$OUT" "${report_flags[@]}"
log "tables: $OUT/results.md; plot: $OUT/results.svg; every run: $RESULTS"
