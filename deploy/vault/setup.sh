#!/usr/bin/env bash
# Configures Vault for vault-kube-kms with the Vault CLI: a Transit mount and an aes256-gcm96 key
# (versioned, not deletable, rotated every 90 days), the least-privilege policy of
# vault-kube-kms-policy.hcl, an AppRole role with short token TTLs (approle-role.env), and writes
# the role ID and a fresh secret ID into $KMS_OUTPUT_DIR (0700 directory, 0400 files). The
# secret ID is never printed. Safe to run again: existing mounts and the key are kept.
#
#   VAULT_ADDR=https://vault.example.com:8200 VAULT_TOKEN=... deploy/vault/setup.sh
#
# Environment: VAULT_ADDR, VAULT_TOKEN (required), VAULT_NAMESPACE, VAULT_CACERT (optional);
# KMS_TRANSIT_MOUNT (transit), KMS_KEY_NAME (kube-kek), KMS_APPROLE_MOUNT (approle),
# KMS_ROLE_NAME (vault-kube-kms), KMS_POLICY_NAME (vault-kube-kms), KMS_AUTO_ROTATE (2160h),
# KMS_OUTPUT_DIR (./vault-kube-kms-credentials), KMS_UPSERT=1 for the create-on-encrypt variant.
#
# VAULT_CLI names the CLI to use instead of `vault`: OpenBao's `bao` takes the same commands and
# reads VAULT_ADDR/VAULT_TOKEN (`make run` configures its OpenBao dev server with VAULT_CLI=bao).
# Without a `vault` binary on PATH (or with VAULT_CLI=http) the same calls go to Vault's HTTP API
# with curl (and python3 for JSON), with the methods the CLI uses (read: GET, write and policy
# write: PUT, secrets/auth enable: POST): the test suite runs this very script both ways.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

: "${VAULT_ADDR:?set VAULT_ADDR}" "${VAULT_TOKEN:?set VAULT_TOKEN}"
mount="${KMS_TRANSIT_MOUNT:-transit}"
key="${KMS_KEY_NAME:-kube-kek}"
auth_mount="${KMS_APPROLE_MOUNT:-approle}"
role="${KMS_ROLE_NAME:-vault-kube-kms}"
policy="${KMS_POLICY_NAME:-vault-kube-kms}"
rotate="${KMS_AUTO_ROTATE:-2160h}"
out="${KMS_OUTPUT_DIR:-./vault-kube-kms-credentials}"

# --- the Vault CLI, or its HTTP equivalent --------------------------------------------------
vault() {
  case "${VAULT_CLI:-}" in
    http) vault_http "$@" ;;
    "") if type -P vault >/dev/null; then command vault "$@"; else vault_http "$@"; fi ;;
    *) command "$VAULT_CLI" "$@" ;;
  esac
}

# curl_vault METHOD PATH [JSON]: prints the answer body, fails with Vault's errors on stderr.
curl_vault() {
  local args=(-sS -X "$1" -H "X-Vault-Token: $VAULT_TOKEN" -H "X-Vault-Request: true" -w '\n%{http_code}')
  [ -n "${VAULT_NAMESPACE:-}" ] && args+=(-H "X-Vault-Namespace: $VAULT_NAMESPACE")
  [ -n "${VAULT_CACERT:-}" ] && args+=(--cacert "$VAULT_CACERT")
  [ $# -ge 3 ] && args+=(-H "Content-Type: application/json" --data-binary @-)
  local answer status
  answer="$(if [ $# -ge 3 ]; then printf '%s' "$3"; fi | curl "${args[@]}" "${VAULT_ADDR%/}/v1/$2")" || return 2
  status="${answer##*$'\n'}"
  answer="${answer%$'\n'*}"
  if [ "$status" -ge 400 ]; then
    echo "Error: $1 $2: $status $answer" >&2
    return 2
  fi
  printf '%s' "$answer"
}

# json_object k=v ...: a JSON object of strings (Vault parses "15m", "true", "0" for typed fields).
json_object() {
  python3 -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:])))' "$@"
}

json_field() {
  python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][sys.argv[1]])' "$1"
}

# The subset of the CLI this script uses: secrets enable, auth enable, policy write, read, write.
vault_http() {
  local field="" force="" path type
  case "$1 $2" in
    "secrets enable" | "auth enable")
      local kind="$1" flag; shift 2
      path=""
      for flag in "$@"; do case "$flag" in -path=*) path="${flag#-path=}" ;; -*) ;; *) type="$flag" ;; esac; done
      curl_vault POST "sys/$([ "$kind" = secrets ] && echo mounts || echo auth)/${path:-$type}" \
        "$(json_object type="$type")" >/dev/null
      return ;;
    "policy write")
      curl_vault PUT "sys/policies/acl/$3" \
        "$(python3 -c 'import json, sys; print(json.dumps({"policy": sys.stdin.read()}))' <"$4")" >/dev/null
      return ;;
  esac
  local verb="$1"; shift
  while [[ "${1:-}" == -* ]]; do
    case "$1" in -field=*) field="${1#-field=}" ;; -f | -force) force=1 ;; esac
    shift
  done
  path="$1"; shift
  local answer
  case "$verb" in
    read) answer="$(curl_vault GET "$path")" || return ;;
    write) answer="$(curl_vault PUT "$path" "$(json_object "$@")")" || return ;;
    *) echo "vault_http: unsupported command $verb" >&2; return 2 ;;
  esac
  if [ -n "$field" ]; then printf '%s' "$answer" | json_field "$field"; fi
}

exists() { vault read "$1" >/dev/null 2>&1; }

# --- the set-up -------------------------------------------------------------------------------
exists "sys/mounts/$mount" || vault secrets enable -path="$mount" transit
if ! exists "$mount/keys/$key"; then
  vault write "$mount/keys/$key" type=aes256-gcm96 exportable=false allow_plaintext_backup=false >/dev/null
fi
vault write "$mount/keys/$key/config" deletion_allowed=false auto_rotate_period="$rotate" >/dev/null

policy_file="$(mktemp)"
trap 'rm -f "$policy_file"' EXIT
sed -e "s#transit/encrypt/kube-kek#$mount/encrypt/$key#g; s#transit/decrypt/kube-kek#$mount/decrypt/$key#g" \
    -e "s#transit/keys/kube-kek#$mount/keys/$key#g" "$here/vault-kube-kms-policy.hcl" >"$policy_file"
if [ "${KMS_UPSERT:-0}" = 1 ]; then
  sed -i "/^path \"$(printf '%s' "$mount/encrypt/$key" | sed 's#/#\\/#g')\"/,/^}/ s/\[\"update\"\]/[\"create\", \"update\"]/" "$policy_file"
fi
vault policy write "$policy" "$policy_file" >/dev/null

exists "sys/auth/$auth_mount" || vault auth enable -path="$auth_mount" approle
mapfile -t role_params < <(grep -Ev '^[[:space:]]*(#|$)' "$here/approle-role.env")
vault write "auth/$auth_mount/role/$role" token_policies="$policy" "${role_params[@]}" >/dev/null

umask 077
mkdir -p "$out"
chmod 0700 "$out"
role_id="$(vault read -field=role_id "auth/$auth_mount/role/$role/role-id")"
rm -f "$out/role-id" "$out/secret-id"
printf '%s\n' "$role_id" >"$out/role-id"
vault write -f -field=secret_id "auth/$auth_mount/role/$role/secret-id" >"$out/secret-id"
chmod 0400 "$out/role-id" "$out/secret-id"
[ -s "$out/secret-id" ] || { echo "no secret ID was written" >&2; exit 1; }

echo "Transit key:   $mount/keys/$key (aes256-gcm96, auto_rotate_period=$rotate, deletion_allowed=false)"
echo "Policy:        $policy"
echo "AppRole role:  auth/$auth_mount/role/$role"
echo "Role ID:       $role_id (also in $out/role-id)"
echo "Secret ID:     written to $out/secret-id (0400; install it as /etc/vault-kube-kms/secret-id)"
