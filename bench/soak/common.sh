# Shared by bench/soak/*.sh: the sluice binary, a loopback origin, process bookkeeping.
# Every process a script starts is stopped by PID on exit (also on error or Ctrl-C).

die() { echo "soak: $*" >&2; exit 1; }
log() { echo "[soak $(date +%H:%M:%S)] $*" >&2; }

STARTED=()
track() { STARTED+=("$1"); }
cleanup() {
  local i
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    kill "${STARTED[$i]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# sluice_bin: $SLUICE_BIN, else the release binary (built if missing).
sluice_bin() {
  if [[ -n "${SLUICE_BIN:-}" ]]; then
    echo "$SLUICE_BIN"
    return
  fi
  local bin="$ROOT/target/release/sluice"
  if [[ ! -x "$bin" ]]; then
    log "building sluice (release)"
    (cd "$ROOT" && cargo build -q --release -p sluice --bin sluice) >&2
  fi
  echo "$bin"
}

# start_origin PORT: a keep-alive HTTP/1.1 origin on 127.0.0.1:PORT (python3),
# answering every GET with 200 and a 2-byte body.
start_origin() {
  python3 - "$1" 2>/dev/null <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        # One write: no Nagle / delayed-ACK stall between head and body.
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    def log_message(self, *a):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
  # (its stderr: the resets of clients that go away are not news)
  track $!
  wait_port "$1" || die "the origin did not start"
}

wait_port() { # wait_port PORT: until something listens on 127.0.0.1:PORT (10 s)
  local i
  for ((i = 0; i < 200; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "soak: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# http_config LISTEN_PORT ORIGIN_PORT ADMIN_PORT HCM_EXTRA: one HTTP listener to the origin.
http_config() {
  cat <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $3 } }
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: $1 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
$4
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: origin }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    connect_timeout: 1s
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } }
YAML
}

stat() { # stat ADMIN_PORT NAME
  curl -s "http://127.0.0.1:$1/stats" | awk -v n="$2: " 'index($0, n) == 1 {print substr($0, length(n) + 1)}'
}
