#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Installs what it needs.
#
#   scripts/test.sh
#
# Lint (fmt, clippy), unit and end-to-end tests (kernel mode on loopback; xdp mode and
# original-destination tests in network namespaces, which need root), and a compile of
# every target, benchmarks included (they are run with bench/load.sh and `cargo bench`,
# not here).
#
# Build time: everything is compiled once, with the dev/test profiles.
# - `cargo test --workspace --all-targets --no-run` builds every target once: libraries
#   and binaries with the dev profile, tests and benchmarks with the test profile (the
#   check that the benchmarks compile; clippy lints them), so the `cargo test` after it
#   compiles nothing. (`cargo build --all-targets` builds tests with the dev profile,
#   which differs from the test profile, and `cargo test` then compiled them again.) `cargo bench --no-run` is not run: it would compile the whole workspace
#   a second time with the bench profile (fat LTO, one codegen unit), which proves
#   nothing more and took 39 % of a fresh run. Published numbers come from
#   `cargo bench` and bench/load.sh, whose profiles this does not touch.
# - Incremental compilation is off (CARGO_INCREMENTAL=0, unless set): it only costs time
#   on a build that starts from nothing, as CI's does.
# - Proc macros and build scripts build unoptimised, dependencies at the dev opt-level and
#   only the crates on the data path at opt-level 2 (the workspace Cargo.toml's profiles);
#   the end-to-end tests are one test binary (tests/e2e.rs), linked once.
# - The end-to-end tests run the sluice binary from that same build ($SLUICE_BIN):
#   left to itself the harness builds it with `cargo build -p sluice`, whose feature
#   set differs from the workspace's, which recompiled sluice and its dependencies
#   mid-test.
#
# Tests that need root return early when not root; each one is listed as SKIPPED at
# the end (collected through $SLUICE_SKIP_LOG), not counted as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

apt_install build-essential pkg-config python3 python3-pip iproute2 ethtool iptables procps curl openssl strace nghttp2-client nginx protobuf-compiler libprotobuf-dev
ensure_rust

export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets --no-run

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export SLUICE_BIN="$target_dir/debug/sluice"
skip_log=$(mktemp)
trap 'rm -f "$skip_log"' EXIT
export SLUICE_SKIP_LOG="$skip_log"

cargo test --workspace -- --test-threads 4

skipped=$(grep -c . "$skip_log" || true)
if [ "$skipped" -gt 0 ]; then
  echo "scripts/test.sh: $skipped test(s) SKIPPED (not run, not passed):"
  sort "$skip_log" | sed 's/^/  /'
  echo "scripts/test.sh: all other tests passed; run as root to run the skipped ones"
else
  echo "scripts/test.sh: all passed"
fi
