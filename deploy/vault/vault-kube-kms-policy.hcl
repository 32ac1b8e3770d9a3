# vault-kube-kms: the least-privilege Vault policy (best practice "minimum Vault policy").
# Written for the Transit mount `transit` and the key `kube-kek`; setup.sh substitutes the
# names you choose. Nothing else: no list, no key creation, rotation, deletion or export.
# The AppRole token also carries Vault's `default` policy, which grants what the broker needs
# on its own token (auth/token/renew-self, lookup-self, revoke-self, sys/capabilities-self).

# Encrypt DEK seeds with the key. `update` only: encrypting to a missing key is refused (403)
# instead of silently creating a new, empty key.
path "transit/encrypt/kube-kek" {
  capabilities = ["update"]
}

# Decrypt DEK seeds with the key.
path "transit/decrypt/kube-kek" {
  capabilities = ["update"]
}

# Read the key's metadata: versions, creation times, type (the key_id and rotation detection).
path "transit/keys/kube-kek" {
  capabilities = ["read"]
}

# Edition detection (Vault Enterprise answers; Community and OpenBao answer 404).
path "sys/license/status" {
  capabilities = ["read"]
}

# Variant, only when you want Vault's upsert (the first encrypt creates the key): replace the
# encrypt rule above by the following one. Not recommended: a typo in the key name then creates
# a key nobody backs up instead of failing.
# path "transit/encrypt/kube-kek" {
#   capabilities = ["create", "update"]
# }
