#!/usr/bin/env bash
# HTTP/2 load comparison on loopback (run as `bench/load.sh --h2 [options]` or directly):
# h2load keep-alive with multiplexing through
#   sluice  (h2c prior knowledge in; GET: HTTP/1.1 to the origin; gRPC: HTTP/2 to the
#            origin, a cluster with http2_protocol_options as Envoy gRPC users configure),
#   nginx   (h2c in, HTTP/1.1 upstream keep-alive pool),
#   haproxy (h2c in, h2c to the origin: HTTP/2 on both sides),
# one worker each, side by side in one run, the proxy pinned alone to --cpus' first core,
# h2load and the origin (nginx, one worker, h2c and HTTP/1.1 ports) on the second.
# Two workloads: GET of a 6-byte body, and gRPC-framed unary POSTs (5-byte gRPC
# frame header + 64-byte message, content-type application/grpc, te: trailers).
# Reported per proxy: requests/s, p99 request time (from h2load's --log-file, every
# request), and requests per CPU-second of the proxy (utime+stime of the proxy process
# and its children from /proc, over the measured run); ratios to nginx.
#
#   bench/h2load.sh [--duration S] [--clients C] [--streams M] [--cpus P,L] [--no-build]
#
# Binds only 127.0.0.1, ports 27180..27184. Every process it starts is stopped by PID on
# exit. Needs nginx, haproxy, h2load (nghttp2-client), curl, python3, taskset.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

DURATION=10
CLIENTS=8
STREAMS=32
CPUS=1,0
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PROXY_CPU="${CPUS%,*}"
LOAD_CPU="${CPUS#*,}"
PATH="$PATH:/usr/sbin:/sbin"
for tool in nginx haproxy h2load curl python3 taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 1; }
done
if [ "$BUILD" = 1 ]; then
  cargo build --release --bin sluice >&2
fi
SLUICE_BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
[ -x "$SLUICE_BIN" ] || { echo "bench: $SLUICE_BIN missing" >&2; exit 1; }

OUT="$ROOT/bench/out/h2"
WORK="$OUT/work"
rm -rf "$OUT"
mkdir -p "$WORK/www" "$WORK/tmp" "$OUT/logs"
printf 'hello\n' >"$WORK/www/small"
ORIGIN_H1=27181
ORIGIN_H2=27182
declare -A PORT=([sluice]=27180 [nginx]=27183 [haproxy]=27184)

STARTED=()
cleanup() {
  local p
  for p in "${STARTED[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${STARTED[@]}"; do
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
spawn() { # spawn CPU NAME CMD...: pinned; PID in SPAWNED
  local cpu="$1" name="$2"
  shift 2
  taskset -c "$cpu" "$@" >"$OUT/logs/$name.log" 2>&1 &
  SPAWNED=$!
  STARTED+=("$SPAWNED")
}
temp_paths() {
  local p
  for p in client_body proxy fastcgi uwsgi scgi; do printf '    %s_temp_path %s/tmp/%s_%s;\n' "$p" "$WORK" "$1" "$p"; done
}

cat >"$WORK/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/origin.pid;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
$(temp_paths origin)
    server {
        listen 127.0.0.1:$ORIGIN_H1 backlog=4096;
        listen 127.0.0.1:$ORIGIN_H2 http2 backlog=4096;
        root $WORK/www;
        location /grpc { add_header grpc-status 0; return 200 "hello"; }
        location / { }
    }
}
EOF
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/proxy-nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
$(temp_paths proxy)
    upstream origin { server 127.0.0.1:$ORIGIN_H1; keepalive 256; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:${PORT[nginx]} http2 backlog=4096;
        location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    http-reuse always
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} proto h2
    default_backend be
backend be
    server origin 127.0.0.1:$ORIGIN_H2 proto h2
EOF
# sluice: bench/load/sluice.yaml (GET: HTTP/1.1 to the origin, as nginx), plus what an
# Envoy gRPC user configures: gRPC requests (the route's `grpc: {}` match) go to a
# cluster with HTTP/2 to the origin (a gRPC cluster always has http2_protocol_options),
# as HAProxy's `proto h2` server does.
sed -e "s/@PORT@/${PORT[sluice]}/" -e "s/@ORIGIN_PORT@/$ORIGIN_H1/" bench/load/sluice.yaml |
  python3 -c '
import sys
conf = sys.stdin.read()
grpc_route = """              - match: { prefix: "/", grpc: {} }
                route: { cluster: grpc }
"""
web_route = "              - match: { prefix: \"/\" }\n"
assert web_route in conf, "bench/load/sluice.yaml: no catch-all route"
conf = conf.replace(web_route, grpc_route + web_route, 1)
conf += """  - name: grpc
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: grpc
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %s } } } }] }]
""" % sys.argv[1]
sys.stdout.write(conf)
' "$ORIGIN_H2" >"$WORK/sluice.yaml"

spawn "$LOAD_CPU" origin nginx -p "$WORK" -c "$WORK/origin.conf" -e "$OUT/logs/origin.error.log"
spawn "$PROXY_CPU" sluice "$SLUICE_BIN" -c "$WORK/sluice.yaml" --concurrency 1 --log-level warning
spawn "$PROXY_CPU" nginx nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$OUT/logs/proxy-nginx.error.log"
PIDS_nginx=$SPAWNED
spawn "$PROXY_CPU" haproxy haproxy -db -f "$WORK/haproxy.cfg"
declare -A PID=([sluice]="${STARTED[1]}" [nginx]="$PIDS_nginx" [haproxy]="$SPAWNED")
for name in sluice nginx haproxy; do
  for _ in $(seq 100); do
    code="$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$name]}/small" || true)"
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "bench: $name does not answer over h2c" >&2; exit 1; }
done

cpu_ticks() { # utime+stime of PID and its children
  local p total=0
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

# A gRPC unary message: 5-byte frame header (not compressed, length 64) + 64 bytes.
python3 -c 'import sys; sys.stdout.buffer.write(b"\0\0\0\0\x40" + b"m" * 64)' >"$WORK/grpc.bin"

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
run() { # run NAME WORKLOAD
  local name="$1" workload="$2" url args=() before after log="$OUT/logs/h2load-$1-$2.tsv"
  case "$workload" in
    get) url="http://127.0.0.1:${PORT[$name]}/small" ;;
    grpc) url="http://127.0.0.1:${PORT[$name]}/grpc/bench.Echo/Unary"
      args=(-d "$WORK/grpc.bin" -H 'content-type: application/grpc' -H 'te: trailers') ;;
  esac
  # warm-up, then the measured run
  taskset -c "$LOAD_CPU" h2load -c "$CLIENTS" -m "$STREAMS" -D 1 "${args[@]}" "$url" >/dev/null
  before="$(cpu_ticks "${PID[$name]}")"
  taskset -c "$LOAD_CPU" h2load -c "$CLIENTS" -m "$STREAMS" -D "$DURATION" --log-file="$log" "${args[@]}" "$url" \
    >"$OUT/logs/h2load-$name-$workload.txt"
  after="$(cpu_ticks "${PID[$name]}")"
  python3 - "$name" "$workload" "$log" "$OUT/logs/h2load-$name-$workload.txt" "$((after - before))" \
    "$(getconf CLK_TCK)" "$DURATION" >>"$RESULTS" <<'PY'
import json, re, sys
name, workload, log, text, ticks, hz, duration = sys.argv[1:]
times, ok = [], 0
for line in open(log):
    parts = line.split()
    if len(parts) >= 3:
        times.append(int(parts[2]))
        ok += parts[1].startswith("2")
times.sort()
summary = open(text).read()
m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", summary)
cpu_s = int(ticks) / int(hz)
p99_us = times[int(len(times) * 0.99) - 1] if times else None
print(json.dumps({"proxy": name, "workload": workload, "requests": len(times), "succeeded_2xx": ok,
                  "failed": int(m.group(4)) if m else None, "rps": len(times) / float(duration),
                  "p99_ms": p99_us / 1000 if p99_us is not None else None, "cpu_s": cpu_s,
                  "req_per_cpu_s": len(times) / cpu_s if cpu_s else None}))
PY
}
for workload in get grpc; do
  for name in sluice nginx haproxy; do
    run "$name" "$workload"
  done
done
python3 - "$RESULTS" <<'PY' | tee "$OUT/results.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| workload | proxy | req/s | p99 ms | req per CPU-second | vs nginx | 2xx / all |")
print("|---|---|---:|---:|---:|---:|---|")
for w in ("get", "grpc"):
    ref = next((r["req_per_cpu_s"] for r in rows if r["workload"] == w and r["proxy"] == "nginx"), None)
    for r in (r for r in rows if r["workload"] == w):
        ratio = f'{r["req_per_cpu_s"] / ref:.2f}x' if ref and r["req_per_cpu_s"] else "-"
        print(f'| {w} | {r["proxy"]} | {r["rps"]:.0f} | {r["p99_ms"]:.2f} | {r["req_per_cpu_s"]:.0f} | {ratio} | {r["succeeded_2xx"]} / {r["requests"]} |')
PY
