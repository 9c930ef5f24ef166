#!/usr/bin/env bash
# xDS at scale: one snapshot of 1,000 EDS clusters x 10 endpoints and a route
# configuration of 1,000 routes (RDS; one listener) pushed over ADS by the tests' real
# control plane (tests/xds_ads/control_plane.py: grpcio, Envoy's protos), timed until
# sluice serves it: a request to the last route answered by the new endpoints. Then a
# second snapshot that moves every cluster's endpoints, timed the same way. Reported:
# push -> served (includes the Python control plane encoding the snapshot) and last
# response sent -> served (sluice's own part: decode, check, compile, publish to the
# workers), and sluice's RSS before, after the first and after the second snapshot.
#
#   bench/xds.sh [--clusters N] [--endpoints E] [--routes R] [--api GRPC|DELTA_GRPC]
#                [--concurrency W] [--bin PATH] [--no-build] [--out FILE]
#
# By default it builds and runs target/release/sluice (cargo build --release); --bin
# runs another binary (then nothing is built). Binds only 127.0.0.1 (free ports). Every
# process it starts is stopped by PID on exit. Needs python3 with grpcio and protobuf
# (pip-installed when missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

BIN="" BUILD=1 ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; BUILD=0; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --clusters|--endpoints|--routes|--api|--concurrency|--out) ARGS+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "bench/xds.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN" ]; then
  BIN="$ROOT/target/release/sluice"
  if [ "$BUILD" = 1 ]; then
    cargo build --release --bin sluice
  fi
fi
[ -x "$BIN" ] || { echo "bench/xds.sh: no binary at $BIN" >&2; exit 1; }
if ! python3 -c "import grpc, google.protobuf" 2>/dev/null; then
  pip3 install -q --break-system-packages grpcio protobuf
fi
exec python3 bench/xds_bench.py --bin "$BIN" "${ARGS[@]}"
