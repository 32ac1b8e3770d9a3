#!/usr/bin/env bash
# local-root.sh BIN_DIR CONTEXT: the build context of Containerfile.local in CONTEXT: CONTEXT/rootfs
# holds the two release binaries of BIN_DIR (stripped) and exactly their ldd closure
# (collect-libs.sh), the CA bundle, and the passwd, group and nsswitch.conf of Containerfile's build
# stage (the same lines: Tests/e2e/deploy/test_deploy_image.py compares them), and /tmp (1777). Nothing
# else: no shell, no package manager.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR CONTEXT" >&2
  exit 2
fi
bin_dir="$1"
context="$2"
here="$(cd "$(dirname "$0")" && pwd)"
root="$context/rootfs"
[ ! -e "$root" ] || { echo "$root exists: give a fresh CONTEXT" >&2; exit 1; }
staged="$(mktemp -d)"
trap 'rm -rf "$staged"' EXIT
for name in vault-kube-kms vault-kube-kms-front; do
  [ -x "$bin_dir/$name" ] || { echo "$bin_dir/$name: not an executable (swift build -c release)" >&2; exit 1; }
  install -m 0755 "$bin_dir/$name" "$staged/$name"
  strip "$staged/$name"
done
mkdir -p "$root"
bash "$here/collect-libs.sh" "$root" "$staged/vault-kube-kms" "$staged/vault-kube-kms-front" >/dev/null
install -d -m 0755 "$root/etc/ssl/certs" "$root/tmp"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/nonexistent\nvault-kube-kms:x:65532:65532:broker:/:/nonexistent\nvault-kube-kms-front:x:65533:65533:front:/:/nonexistent\nnobody:x:65534:65534:nobody:/:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nvault-kube-kms:x:65532:\nvault-kube-kms-front:x:65533:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
test ! -e "$root/bin/sh"
