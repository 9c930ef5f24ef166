#!/usr/bin/env bash
# Regenerate proxy/proto/router_check/validation.descriptor.bin, the FileDescriptorSet
# that route-check's `.pb_text` parser (proxy/src/route_check/text_format.rs) reads,
# from the copy of Envoy's validation.proto beside it. Run after changing those protos.
#
# Checked in rather than compiled by build.rs: a protobuf compiler in the build
# (protox) added about 1.5 minutes to every clean build for a 5 KB file that changes
# only when Envoy's schema does.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
apt_install protobuf-compiler
protoc --include_imports -I proxy/proto/router_check \
  -o proxy/proto/router_check/validation.descriptor.bin validation.proto
echo "wrote proxy/proto/router_check/validation.descriptor.bin"
