#!/usr/bin/env bash
# Runs the product against the embedded default Vault (the simulator), configured through the
# Vault HTTP API exactly as an operator would, and leaves it serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build 2>&1 | tail -n 1

state=${VKK_DEV_DIR:-/tmp/vault-kube-kms-dev}
rm -rf "$state"
mkdir -p "$state"
chmod 0755 "$state"

python3 Tests/vaultsim/vault-sim server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:0 \
  >"$state/vault-sim.log" 2>&1 &
sim=$!
cleanup() { kill "${broker:-}" 2>/dev/null || true; wait "${broker:-}" 2>/dev/null || true; kill "$sim" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
for _ in $(seq 100); do grep -q "Listening on" "$state/vault-sim.log" && break; sleep 0.1; done
vault_addr=$(grep -o "http://127.0.0.1:[0-9]*" "$state/vault-sim.log" | head -n 1)

# Transit key, least-privilege policy, AppRole role, secret ID in a 0400 file.
python3 scripts/dev-setup.py "$vault_addr" root "$state" >"$state/setup.env"
# shellcheck disable=SC1091
source "$state/setup.env"

front_flags=()
[ "$(id -u)" = 0 ] || front_flags=(--insecure-same-user)
bindir=$(swift build --show-bin-path)
"$bindir/vault-kube-kms" \
  --listen-address "unix://$state/kms.sock" \
  --vault-address "$vault_addr" --vault-key-path "$KEY_PATH" --auth-mount "$AUTH_MOUNT" \
  --approle-role-id "$ROLE_ID" --approle-secret-id-path "$SECRET_ID_PATH" \
  --log-format text "${front_flags[@]}" &
broker=$!
for _ in $(seq 100); do [ -S "$state/kms.sock" ] && break; sleep 0.1; done
sleep 0.5
echo
echo "vault-kube-kms is serving on unix://$state/kms.sock (Vault simulator at $vault_addr)"
echo "probe it with:  $bindir/vault-kube-kms probe --listen-address unix://$state/kms.sock"
echo "   (or with grpcio, an independent client:  python3 scripts/kms-probe.py $state/kms.sock)"
echo "health: curl -s 127.0.0.1:8081/readyz   metrics: curl -s 127.0.0.1:9090/metrics"
echo "Ctrl-C stops both."
"$bindir/vault-kube-kms" probe --listen-address "unix://$state/kms.sock" || true
wait "$broker"
