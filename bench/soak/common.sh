# Shared by bench/soak/*.sh: the sluice binary, a loopback origin, a one-listener config,
# process bookkeeping. Sourced, not run; the script sets ROOT first. Every process a
# script starts is stopped by PID on exit (also on error or Ctrl-C), and $WORK removed.

die() { echo "soak: $*" >&2; exit 1; }
log() { echo "[soak $(date +%H:%M:%S)] $*" >&2; }

STARTED=()
track() { STARTED+=("$1"); }
KEEP_WORK=0 # set to 1 to keep $WORK (e.g. its logs after a failed run)
WORK="$(mktemp -d)"
cleanup() {
  local i
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    kill "${STARTED[$i]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [[ $KEEP_WORK == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# free_port: a loopback port nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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

# start_origin PORT [BODY_BYTES]: a threaded HTTP/1.1 keep-alive origin on
# 127.0.0.1:PORT (python3) answering every request with BODY_BYTES bytes (default 2),
# generated once in memory; head and body leave as separate writes (TCP_NODELAY).
start_origin() {
  python3 - "$1" "${2:-2}" 2>/dev/null <<'PY' &
import socket, sys, threading
port, size = int(sys.argv[1]), int(sys.argv[2])
body = bytes(i % 251 for i in range(min(size, 1 << 20))) if size > 2 else b"ok"[:size]
head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size
def serve(c):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf[buf.index(b"\r\n\r\n") + 4:]
            if size <= len(body):
                c.sendall(head + body[:size])
                continue
            c.sendall(head)
            left = size
            while left:
                n = min(left, len(body))
                c.sendall(body[:n])
                left -= n
    except OSError:
        pass
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(4096)
while True:
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
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

# http_config LISTEN_PORT ORIGIN_PORT ADMIN_PORT [HCM_EXTRA]: one HTTP listener to the
# cluster `origin`. With $BUFFER_LIMIT set, the listener and the cluster both get
# per_connection_buffer_limit_bytes: $BUFFER_LIMIT; $ROUTE_TIMEOUT (e.g. 0s) sets the route's.
http_config() {
  local listener_limit="" cluster_limit="" route_timeout=""
  if [[ -n "${BUFFER_LIMIT:-}" ]]; then
    listener_limit="    per_connection_buffer_limit_bytes: $BUFFER_LIMIT"
    cluster_limit="    per_connection_buffer_limit_bytes: $BUFFER_LIMIT"
  fi
  [[ -n "${ROUTE_TIMEOUT:-}" ]] && route_timeout=", timeout: $ROUTE_TIMEOUT"
  cat <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $3 } }
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: $1 } }
$listener_limit
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
${4:-}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: origin$route_timeout }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    connect_timeout: 1s
$cluster_limit
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
