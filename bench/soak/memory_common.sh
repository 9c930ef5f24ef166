# Shared by the memory soak scripts (slow_readers.sh, idle_keepalive.sh): build/locate the release binary, write a one-listener
# HTTP config, start/stop processes by PID, sample RSS. Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# The sluice binary: $SLUICE_BIN (as the other soak scripts), else the release binary, built.
sluice_bin() {
  if [[ -n "${SLUICE_BIN:-}" ]]; then echo "$SLUICE_BIN"; return; fi
  (cd "$ROOT" && cargo build --release --bin sluice >&2)
  echo "$ROOT/target/release/sluice"
}

# rss_kib PID: resident set size in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# fds PID: open descriptors.
fds() { ls "/proc/$1/fd" | wc -l; }

# write_config FILE PORT ORIGIN_PORT LIMIT: one HTTP listener -> cluster web, both with
# per_connection_buffer_limit_bytes LIMIT; admin on PORT+1.
write_config() {
  local file=$1 port=$2 origin=$3 limit=$4
  cat >"$file" <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $((port + 1)) } }
static_resources:
  listeners:
  - name: http_in
    per_connection_buffer_limit_bytes: $limit
    address: { socket_address: { address: 127.0.0.1, port_value: $port } }
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
                route: { cluster: web, timeout: 0s }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: web
    connect_timeout: 1s
    per_connection_buffer_limit_bytes: $limit
    load_assignment:
      cluster_name: web
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $origin } } } }] }]
YAML
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
wait_port() {
  python3 - "$1" <<'PY'
import socket, sys, time
deadline = time.time() + 10
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("port %s never opened" % sys.argv[1])
PY
}

# origin PORT BODY_BYTES: a threaded HTTP/1.1 keep-alive origin answering every request
# with BODY_BYTES bytes (from memory), in the background; its PID is added to PIDS.
start_origin() {
  python3 - "$1" "$2" <<'PY' &
import socket, sys, threading
port, size = int(sys.argv[1]), int(sys.argv[2])
body = bytes(i % 251 for i in range(min(size, 1 << 20)))
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
    # No Nagle: the head and the body go out as two writes.
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
  PIDS+=($!)
}
