#!/usr/bin/env bash
# The benchmark (make bench): release builds of both processes, the Vault simulator, h2load as the
# load client; the plugin against direct Transit calls to the same simulator, in one run.
# Extra arguments go to Tests/bench/bench.py (--requests, --concurrency, --soak, --json, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --bench

echo "== swift build -c release" >&2
swift build -c release 2>&1 | tail -n 3
bindir=$(swift build -c release --show-bin-path)

echo "== benchmark" >&2
python3 Tests/bench/bench.py --bin-dir "$bindir" "$@"
