#!/usr/bin/env bash
# Refresh proxy/proto/xds/xds-descriptors.bin, the FileDescriptorSet of Envoy's whole
# xDS API that the ADS client (proxy/src/xds/grpc/proto.rs) decodes resources with,
# and that the tests' control plane (tests/xds_ads.rs) encodes them with.
#
# The set is the one the `xds-api` crate publishes (built by protoc from
# envoyproxy/data-plane-api and its dependencies at the commit its protobufs.toml
# names; Apache-2.0). Checked in rather than compiled by build.rs: compiling Envoy's
# protos in the build would cost minutes on every clean build.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-0.2.0}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
cat >"$tmp/Cargo.toml" <<TOML
[package]
name = "fetch-xds-descriptors"
version = "0.0.0"
edition = "2021"
[dependencies]
xds-api = "=$version"
TOML
touch "$tmp/src/lib.rs"
cargo fetch --manifest-path "$tmp/Cargo.toml"
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"xds-api-$version" | head -1)
cp "$src/src/xds-descriptors.bin" proxy/proto/xds/xds-descriptors.bin
echo "wrote proxy/proto/xds/xds-descriptors.bin from xds-api $version"
