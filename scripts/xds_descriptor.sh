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

# xds-api's set lacks the TLS transport socket's own file (DownstreamTlsContext,
# UpstreamTlsContext, which listeners and clusters carry in `transport_socket`); take it
# from the `envoy-types` crate's FileDescriptorSet (the same data-plane-api protos; its
# dependencies, the TLS common.proto and secret.proto, are in the set above and
# declare the same messages), without its source comments.
envoy_types="${2:-0.7.7}"
cat >"$tmp/Cargo.toml" <<TOML
[package]
name = "fetch-xds-descriptors"
version = "0.0.0"
edition = "2021"
[dependencies]
envoy-types = "=$envoy_types"
TOML
cargo fetch --manifest-path "$tmp/Cargo.toml"
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"envoy-types-$envoy_types" | head -1)
python3 - "$src/src/generated/types.bin" proxy/proto/xds/xds-descriptors.bin <<'PY'
import sys
from google.protobuf import descriptor_pb2
donor = descriptor_pb2.FileDescriptorSet()
donor.ParseFromString(open(sys.argv[1], "rb").read())
out = descriptor_pb2.FileDescriptorSet()
out.ParseFromString(open(sys.argv[2], "rb").read())
have = {f.name for f in out.file}
for f in donor.file:
    if f.name == "envoy/extensions/transport_sockets/tls/v3/tls.proto" and f.name not in have:
        f.ClearField("source_code_info")
        out.file.append(f)
open(sys.argv[2], "wb").write(out.SerializeToString())
PY
echo "added tls.proto from envoy-types $envoy_types"
