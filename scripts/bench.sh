#!/usr/bin/env bash
# The benchmark (make bench): release builds of both processes, a real OpenBao dev server (and the
# Vault simulator as the second column), h2load as the load client; the plugin against direct
# Transit calls to the same server, in one run; then callgrind's instructions per call and the
# decrypt storm. Extra arguments go to Tests/bench/bench.py (--vaults, --requests, --soak, --json, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --bench

echo "== swift build -c release" >&2
swift build -c release 2>&1 | tail -n 3
bindir=$(swift build -c release --show-bin-path)

echo "== benchmark" >&2
python3 Tests/bench/bench.py --bin-dir "$bindir" "$@"
