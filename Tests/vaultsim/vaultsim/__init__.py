"""vaultsim: a Vault HTTP API simulator (Transit, AppRole, tokens, ACL policies, namespaces,
seal, audit) for the vault-kube-kms test suites. Test infrastructure; never shipped."""
