#!/usr/bin/env bash
# release-bundle.sh DEST [BIN_DIR]: what an operator copies to a systemd node (docs/operations.md,
# section 2): both binaries from one build, the Swift runtime libraries they link (exactly those
# ldd resolves inside the toolchain, e.g. libswiftCore.so, libFoundationEssentials.so), the
# systemd/ unit files, and a SHA256SUMS of all of it. BIN_DIR defaults to the release build
# (`swift build -c release`). The node needs the Debian libraries the binaries link besides
# (libnghttp2-14, libcurl4, libsystemd0, libssl3): nothing from the toolchain.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 DEST [BIN_DIR]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
dest="$1"
bin_dir="${2:-$(swift build -c release --show-bin-path)}"
mkdir -p "$dest/swift-runtime" "$dest/systemd"
for name in vault-kube-kms vault-kube-kms-front; do
  [ -x "$bin_dir/$name" ] || { echo "$bin_dir/$name: missing (swift build -c release)" >&2; exit 1; }
  install -m 0755 "$bin_dir/$name" "$dest/$name"
done
# The Swift runtime: every library ldd resolves outside the system's library directories.
toolchain_libs=$(ldd "$dest/vault-kube-kms" "$dest/vault-kube-kms-front" \
  | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | grep -v -E '^/(usr/)?lib(64)?/' | sort -u)
for library in $toolchain_libs; do
  install -m 0644 "$(readlink -f "$library")" "$dest/swift-runtime/$(basename "$library")"
done
install -m 0644 systemd/vault-kube-kms* "$dest/systemd/"
(cd "$dest" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
echo "$dest"
