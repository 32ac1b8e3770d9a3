#!/usr/bin/env python3
"""Configures a Vault (the simulator or a real one) for the plugin through its HTTP API and prints
shell assignments for scripts/dev-run.sh. Usage: dev-setup.py VAULT_ADDR ROOT_TOKEN STATE_DIR"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "e2e"))
import vaultenv  # noqa: E402

address, token, state = sys.argv[1:4]
setup = vaultenv.VaultSetup(address, token, state)
print(f"KEY_PATH={setup.key_path}")
print(f"AUTH_MOUNT={setup.auth_mount}")
print(f"ROLE_ID={setup.role_id}")
print(f"SECRET_ID_PATH={setup.secret_id_path}")
