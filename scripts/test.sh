#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Installs what it needs.
#
#   scripts/test.sh
#
# Lint (fmt, clippy), unit and end-to-end tests (kernel mode on loopback; xdp mode and
# original-destination tests in network namespaces, which need root), and a compile of
# the benchmarks (they are run with bench/load.sh and `cargo bench`, not here).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

apt_install build-essential pkg-config python3 iproute2 ethtool iptables procps
ensure_rust

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads 4
cargo bench --workspace --no-run
echo "scripts/test.sh: all passed"
