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
#   bash -c 'exec 3<>/dev/tcp/127.0.0.1/10000; echo hello >&3; head -1 <&3'
# The example origins start for those two files however their path is spelled
# (./examples/..., an absolute path, a symlink): the file is compared, not the string.
#
# The script ends by exec'ing sluice, so its PID is sluice's: SIGTERM or Ctrl-C drains
# and stops sluice as if it had been started directly, and the example origins are
# stopped as soon as sluice exits. SLUICE_BIN=PATH runs that binary instead of
# building one.
set -euo pipefail

config=examples/front_proxy.yaml
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  # A relative CONFIG is relative to where the script was started from.
  case "$1" in /*) config=$1 ;; *) config=$PWD/$1 ;; esac
  shift
fi
[ "${1:-}" = "--" ] && shift
case "${SLUICE_BIN:-/}" in /*) ;; *) SLUICE_BIN=$PWD/$SLUICE_BIN ;; esac
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ -n "${SLUICE_BIN:-}" ]; then
  apt_install python3
  sluice=$SLUICE_BIN
else
  apt_install build-essential pkg-config python3
  ensure_rust
  cargo build --release --bin sluice >&2
  sluice=target/release/sluice
fi

origin_pids=()
if [ "$config" -ef examples/front_proxy.yaml ]; then
  python3 examples/http_origin.py 127.0.0.1 10001 web &
  origin_pids+=($!)
  python3 examples/http_origin.py 127.0.0.1 10002 api &
  origin_pids+=($!)
  echo "HTTP origins on 127.0.0.1:10001 (web) and :10002 (api); sluice listens on 127.0.0.1:10000, admin on 127.0.0.1:9901" >&2
elif [ "$config" -ef examples/tcp_proxy.yaml ]; then
  python3 examples/echo_origin.py 127.0.0.1 10001 &
  origin_pids+=($!)
  echo "echo origin on 127.0.0.1:10001; sluice listens on 127.0.0.1:10000" >&2
fi
if [ ${#origin_pids[@]} -gt 0 ]; then
  # After the exec below, this shell's PID ($$) is sluice's: stop the origins when it
  # is gone, however it ends (drained by SIGTERM, Ctrl-C, /quitquitquit, a crash).
  (
    trap '' INT
    while kill -0 $$ 2>/dev/null; do sleep 0.2; done
    kill "${origin_pids[@]}" 2>/dev/null || true
  ) </dev/null >/dev/null 2>&1 &
fi
exec "$sluice" -c "$config" "$@"
