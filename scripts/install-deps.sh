#!/usr/bin/env bash
# Installs what building and testing need on a Debian machine: the C libraries the two
# processes link (nghttp2, curl with OpenSSL, OpenSSL, systemd) and the pinned Python packages
# of the test suite. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(libnghttp2-dev libcurl4-openssl-dev libssl-dev libsystemd-dev pkg-config)
# deploy tests: systemd-analyze (systemd), strace and python3-seccomp (seccomp profile), nft, promtool
# (promtool also checks the live /metrics page in Tests/e2e/test_metrics_health.py)
apt_packages+=(systemd strace python3-seccomp nftables prometheus)
# evidence tests: valgrind and objcopy (the front under memcheck), setpriv (privilege checks)
apt_packages+=(valgrind binutils util-linux)
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
