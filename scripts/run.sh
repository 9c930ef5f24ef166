#!/usr/bin/env bash
# Build sluice (release) and run it on an example config, kernel mode.
#
#   scripts/run.sh [CONFIG] [-- SLUICE ARGS...]
#
# With the default config (examples/tcp_proxy.yaml) an echo origin is started on
# 127.0.0.1:10001 first, so that a client can try it at once:
#   exec 3<>/dev/tcp/127.0.0.1/10000; echo hello >&3; head -1 <&3
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

apt_install build-essential pkg-config python3
ensure_rust

config="${1:-examples/tcp_proxy.yaml}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift

cargo build --release --bin sluice >&2

origin_pid=""
cleanup() { [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
if [ "$config" = "examples/tcp_proxy.yaml" ]; then
  python3 examples/echo_origin.py 127.0.0.1 10001 &
  origin_pid=$!
  echo "echo origin on 127.0.0.1:10001 (pid $origin_pid); sluice listens on 127.0.0.1:10000" >&2
fi
target/release/sluice -c "$config" "$@"
