#!/usr/bin/env bash
# Build sluice (release) and run it on an example config, kernel mode.
#
#   scripts/run.sh [CONFIG] [-- SLUICE ARGS...]
#
# With the default config (examples/front_proxy.yaml, an HTTP front proxy on
# 127.0.0.1:10000 with its admin API on 127.0.0.1:9901) two example HTTP origins are
# started on 127.0.0.1:10001 and :10002 first, so that a client can try it at once:
#   curl -v http://127.0.0.1:10000/hello
# With examples/tcp_proxy.yaml an echo origin is started on 127.0.0.1:10001:
#   exec 3<>/dev/tcp/127.0.0.1/10000; echo hello >&3; head -1 <&3
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

apt_install build-essential pkg-config python3
ensure_rust

config="${1:-examples/front_proxy.yaml}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift

cargo build --release --bin sluice >&2

origin_pids=()
cleanup() { for p in "${origin_pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
case "$config" in
examples/front_proxy.yaml)
  python3 examples/http_origin.py 127.0.0.1 10001 web &
  origin_pids+=($!)
  python3 examples/http_origin.py 127.0.0.1 10002 api &
  origin_pids+=($!)
  echo "HTTP origins on 127.0.0.1:10001 (web) and :10002 (api); sluice listens on 127.0.0.1:10000, admin on 127.0.0.1:9901" >&2
  ;;
examples/tcp_proxy.yaml)
  python3 examples/echo_origin.py 127.0.0.1 10001 &
  origin_pids+=($!)
  echo "echo origin on 127.0.0.1:10001 (pid ${origin_pids[0]}); sluice listens on 127.0.0.1:10000" >&2
  ;;
esac
target/release/sluice -c "$config" "$@"
