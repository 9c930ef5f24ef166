#!/usr/bin/env bash
# What HTTP tracing costs: sluice (kernel mode, one worker) as an HTTP/1.1 reverse proxy
# with tracing off, 1 % sampled and 100 % sampled, for each provider (Zipkin v2 JSON and
# OpenTelemetry OTLP/HTTP protobuf), side by side in one run, keep-alive load.
#
#   bench/tracing.sh [--duration S] [--warmup S] [--reps N] [--providers "zipkin otlp"]
#                    [--size small|4k|64k] [--connections N] [--no-build] [other options]
#
# Same set-up, pinning, priorities and disturbance checks as bench/load.sh
# (bench/load/lib.sh, bench/load/measure.py): one nginx origin (6 B / 4 KiB / 64 KiB
# bodies) and wrk on the load core, sluice alone on the proxy core. The collector is a
# sink in the origin's nginx (a second server block, so its CPU is the origin's and
# not "other load"): `POST /api/v2/spans` answers 202 (Zipkin) and `POST /v1/traces`
# 200 (OTLP), reading and discarding the body, keep-alive. Requests carry no trace
# headers, so every request is a root span sampled by `random_sampling` (0 %, 1 %,
# 100 %); export uses Envoy's defaults (min_flush_spans 5, flush interval 5 s).
#
# Figures per configuration (medians over the repetitions, min-max for the CPU figures):
# requests/s, p50/p99, and requests per CPU-second of the
# whole sluice process (utime+stime of every thread over exactly the measured interval:
# the worker serializes and sends the spans itself, so that work is charged to tracing), and its ratio to tracing off in the same repetition; plus the
# spans sent, spans per report and spans dropped over the run (admin /stats), so a
# configuration cannot look cheap by dropping spans. Configurations are interleaved
# (order rotated every repetition) so that each ratio compares runs that saw the same
# machine.
#
# Output: bench/out/tracing/results.md (table), results.jsonl (every run), logs/.
# Binds only 127.0.0.1, ports PORT_BASE..PORT_BASE+5 (default 27180..27185). Every
# process it starts is stopped by PID on exit, also on error or Ctrl-C.
# Time: about reps x (1 + 2 x providers) x (warmup + duration + 4) s: default
# 5 x 5 x 16 s, about 7 minutes, after the build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
. bench/load/lib.sh

usage() {
  sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --duration S         seconds per measured run (default 10)
  --warmup S           seconds of warm-up before each measured run (default 2)
  --reps N             repetitions, configurations interleaved (default 5)
  --providers LIST     subset of "zipkin otlp" (default both)
  --size S             small (default), 4k or 64k
  --connections N      wrk connections (default 64)
  --cpus P,L           proxy core and load core (default 1,0)
  --nice N             as bench/load.sh (default -20)
  --slice-us U         as bench/load.sh (default 100)
  --max-delay F, --max-other F, --max-steal F, --quiet-wait S, --attempts N
                       disturbance checks, as bench/load.sh
  --accept-disturbed   keep disturbed runs (flagged) instead of leaving them out
  --port-base P        loopback ports P..P+5 (default 27180)
  --out DIR            output directory (default bench/out/tracing)
  --no-build           use the existing target/release/sluice
  --no-install         do not install Debian packages
EOF
}

DURATION=10 WARMUP=2 REPS=5 CONNECTIONS=64 THREADS=1 PROVIDERS="zipkin otlp" SIZE=small
CPUS="1,0" NICE=-20 SLICE_US=100 MAX_DELAY=0.05 MAX_OTHER=0.10 MAX_STEAL=0.02 QUIET_WAIT=3 ATTEMPTS=2
ACCEPT_DISTURBED=0 PORT_BASE=27180 OUT="bench/out/tracing" BUILD=1 INSTALL=1
COMMAND="bench/tracing.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --providers) PROVIDERS="$2"; shift ;;
    --size) SIZE="$2"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
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
    *) echo "bench/tracing.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
for v in DURATION WARMUP REPS CONNECTIONS QUIET_WAIT ATTEMPTS PORT_BASE SLICE_US; do
  v_flag="${v,,}"
  is_uint "${!v}" || die "--${v_flag//_/-} must be a whole number, got '${!v}'"
done
[[ "$NICE" =~ ^-?[0-9]+$ ]] || die "--nice must be an integer, got '$NICE'"
[ "$DURATION" -ge 1 ] && [ "$REPS" -ge 1 ] && [ "$ATTEMPTS" -ge 1 ] ||
  die "--duration, --reps and --attempts must be at least 1"
PROXY_CPU="${CPUS%,*}" LOAD_CPU="${CPUS#*,}"
if ! is_uint "$PROXY_CPU" || ! is_uint "$LOAD_CPU" || [ "$PROXY_CPU" = "$LOAD_CPU" ]; then
  die "--cpus must be two different core numbers, e.g. 1,0"
fi
for p in $PROVIDERS; do case "$p" in zipkin|otlp) ;; *) die "unknown provider '$p'" ;; esac; done
case "$SIZE" in small|4k|64k) ;; *) die "unknown size '$SIZE'" ;; esac

NEED_SLUICE=1
install_traps
load_prepare
SINK_PORT=$((PORT_BASE + 4)) ADMIN_PORT=$((PORT_BASE + 5))
for p in $SINK_PORT $ADMIN_PORT; do
  [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p on this machine is taken (use --port-base)"
done

# The origin's nginx also serves the collector sink (its last line closes `http`).
{
  sed '$d' "$WORK/origin.nginx.conf"
  cat <<EOF
    # The span collector: accepts every report, discards it.
    server {
        listen 127.0.0.1:$SINK_PORT backlog=4096;
        client_max_body_size 64m;
        location = /api/v2/spans { return 202; }
        location = /v1/traces { default_type application/x-protobuf; return 200; }
    }
}
EOF
} >"$WORK/origin.tmp" && mv "$WORK/origin.tmp" "$WORK/origin.nginx.conf"

# sluice's configs: bench/load/sluice.yaml plus an admin listener, the collector cluster
# and, except for `off`, the connection manager's `tracing`.
CONFIGS=(off)
for p in $PROVIDERS; do CONFIGS+=("$p-1" "$p-100"); done
render_sluice() { # render_sluice CONFIG > file
  local cfg="$1" provider="${1%-*}" pct="${1##*-}"
  if [ "$cfg" = off ]; then
    cat "$WORK/sluice.yaml"
  else
    awk -v provider="$provider" -v pct="$pct" '
      { print }
      /stat_prefix: ingress/ {
        print "          tracing:"
        print "            random_sampling: { value: " pct " }"
        print "            provider:"
        if (provider == "zipkin") {
          print "              name: envoy.tracers.zipkin"
          print "              typed_config:"
          print "                \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"
          print "                collector_cluster: collector"
          print "                collector_endpoint: /api/v2/spans"
          print "                collector_endpoint_version: HTTP_JSON"
        } else {
          print "              name: envoy.tracers.opentelemetry"
          print "              typed_config:"
          print "                \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
          print "                service_name: bench"
          print "                http_service:"
          print "                  http_uri: { uri: \"http://collector/v1/traces\", cluster: collector, timeout: 5s }"
        }
      }' "$WORK/sluice.yaml"
  fi
  cat <<EOF
  - name: collector
    connect_timeout: 1s
    load_assignment:
      cluster_name: collector
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $SINK_PORT } } } }] }]
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } }
EOF
}
for c in "${CONFIGS[@]}"; do
  render_sluice "$c" >"$WORK/sluice-$c.yaml"
  "$SLUICE_BIN" --mode validate -c "$WORK/sluice-$c.yaml" >"$OUT/logs/validate-$c.log" 2>&1 ||
    die "config $c does not validate; see $OUT/logs/validate-$c.log"
done

tracing_stats() { # tracing_stats: "sent dropped reports" of the running sluice's tracer
  curl -s "http://127.0.0.1:$ADMIN_PORT/stats" | awk '
    /^tracing\.[a-z]+\.spans_sent:/ { s += $2 }
    /^tracing\.[a-z]+\.spans_dropped:/ { d += $2 }
    /^tracing\.zipkin\.reports_(sent|dropped|failed):/ { r += $2 }
    /^tracing\.opentelemetry\.http_reports_sent:/ { r += $2 }
    END { printf "%d %d %d\n", s, d, r }'
}

log "plan: $REPS repetition(s) x {${CONFIGS[*]}}, keep-alive /$SIZE, ${DURATION}s runs after ${WARMUP}s warm-up"
python3 - "$OUT/meta.json" <<EOF
import json, os, platform, subprocess, sys
def out(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip()
json.dump({
    "command": """$COMMAND""",
    "cpu_model": out("lscpu | sed -n 's/^Model name: *//p' | head -1"),
    "kernel": platform.release(),
    "sluice": out("git -C '$ROOT' describe --always --dirty 2>/dev/null"),
    "duration_s": $DURATION, "warmup_s": $WARMUP, "reps": $REPS, "connections": $CONNECTIONS,
    "size": "$SIZE", "configs": "${CONFIGS[*]}".split(),
    "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "started": out("date -u +%Y-%m-%dT%H:%M:%SZ"),
}, open(sys.argv[1], "w"), indent=1)
EOF

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
start_origin
log "origin + collector sink (nginx) pid $ORIGIN_PID, core $LOAD_CPU"
for rep in $(seq "$REPS"); do
  rot=$(((rep - 1) % ${#CONFIGS[@]}))
  this=("${CONFIGS[@]:$rot}" "${CONFIGS[@]:0:$rot}")
  for cfg in "${this[@]}"; do
    spawn "$PROXY_CPU" "sluice-$cfg" "$SLUICE_BIN" -c "$WORK/sluice-$cfg.yaml" --concurrency 1 \
      --log-level warning --drain-time-s 1
    PROXY_PID=$SPAWNED
    wait_ready "sluice ($cfg)" "$PROXY_PID" "${PORT[sluice]}"
    read -r sent0 dropped0 reports0 <<<"$(tracing_stats)"
    line="$(python3 "$ROOT/bench/load/measure.py" \
      --url "http://127.0.0.1:${PORT[sluice]}/$SIZE" \
      --proxy-pid "$PROXY_PID" --origin-pid "$ORIGIN_PID" \
      --proxy-cpu "$PROXY_CPU" --load-cpu "$LOAD_CPU" \
      --lua "$ROOT/bench/load/wrk_result.lua" \
      --duration "$DURATION" --warmup "$WARMUP" \
      --connections "$CONNECTIONS" --threads "$THREADS" \
      --nice "$NICE" --slice-us "$SLICE_US" --max-delay "$MAX_DELAY" --max-other "$MAX_OTHER" \
      --max-steal "$MAX_STEAL" --quiet-wait "$QUIET_WAIT" --attempts "$ATTEMPTS" \
      --label "{\"proxy\":\"sluice\",\"config\":\"$cfg\",\"mode\":\"keepalive\",\"size\":\"$SIZE\",\"rep\":$rep}")" ||
      die "measurement failed ($cfg)"
    # Let the exporter flush what the last run queued (interval 5 s at most).
    sleep 1
    read -r sent1 dropped1 reports1 <<<"$(tracing_stats)"
    while IFS= read -r l; do
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["spans_sent"]=int(sys.argv[2]); d["spans_dropped"]=int(sys.argv[3]); d["reports"]=int(sys.argv[4]); print(json.dumps(d, sort_keys=True))' \
        "$l" "$((sent1 - sent0))" "$((dropped1 - dropped0))" "$((reports1 - reports0))" >>"$RESULTS"
    done <<<"$line"
    log "rep $rep/$REPS: $cfg: spans sent $((sent1 - sent0)), dropped $((dropped1 - dropped0)), reports $((reports1 - reports0)) (warm-up included)"
    stop_tracked "$PROXY_PID"
  done
done
stop_tracked "$ORIGIN_PID"

report_flags=()
[ "$ACCEPT_DISTURBED" = 1 ] && report_flags=(--accept-disturbed)
python3 "$ROOT/bench/load/tracing_report.py" --out "$OUT" "${report_flags[@]}"
log "table: $OUT/results.md; every run: $RESULTS"
