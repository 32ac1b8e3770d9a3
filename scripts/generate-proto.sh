#!/usr/bin/env bash
# Regenerates Sources/KMSv2API/api.pb.swift from Sources/KMSv2API/api.proto.
# Needs protoc (apt: protobuf-compiler); builds protoc-gen-swift from the swift-protobuf package
# this project depends on, in its own scratch folder so the main build is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
scratch=.build-protoc
swift build -c release --scratch-path "$scratch" --product protoc-gen-swift >&2
plugin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/protoc-gen-swift"
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Public \
  --swift_out=Sources/KMSv2API \
  -I Sources/KMSv2API api.proto
echo "generated Sources/KMSv2API/api.pb.swift" >&2
