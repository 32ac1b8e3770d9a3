"""A full run against a real OpenBao that exercises login, renewal, re-login with a rotated secret
ID, a token revoked under the broker, key rotation, errors and a sealed Vault, then checks that no
secret ID, token (every value OpenBao issued, read from its log_raw audit log) or plaintext
appears in any log line of either process."""
import os
import re
import time

import pytest

from kmstest import vaultenv
from kmstest.brokerhelpers import round_trip, wait_healthz
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.mode() != "openbao", reason="needs an OpenBao of its own with a raw audit log")


def test_no_secret_id_token_or_plaintext_in_any_log_line(tmp_path_factory, workdir):
    server = vaultenv.start_server(str(tmp_path_factory.mktemp("server")), audit_raw=True)
    vault = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("vault")))
    vault.root.auth.approle.create_or_update_approle(
        role_name=vault.role, token_policies=[vault.policy], token_ttl="2s", token_max_ttl="5s",
        mount_point=vault.auth_mount)
    secret_ids = [vault.secret_id]
    plaintexts = []
    running = Plugin(vault, workdir, extra_args=["--key-check-interval", "250ms", "--deep-check-interval", "1s"])
    try:
        for _ in range(3):
            plaintext = os.urandom(16).hex().encode()
            plaintexts.append(plaintext)
            round_trip(running, plaintext)
        rotated = vault.new_secret_id()
        secret_ids.append(rotated)
        vault.write_secret_id(rotated)
        vault.rotate_key()
        time.sleep(6)  # renewals, a max-TTL re-login with the rotated secret ID, rotation adopted
        assert server.revoke_login_tokens(vault.auth_mount) >= 1  # the next call logs in again
        plaintext = b"plaintext-marker-" + os.urandom(8).hex().encode()
        plaintexts.append(plaintext)
        round_trip(running, plaintext)
        vault.write_secret_id("not-a-valid-secret-id-" + os.urandom(8).hex())
        secret_ids.append(open(vault.secret_id_path).read().strip())
        vault.root.sys.seal()
        wait_healthz(running, lambda h: h != "ok")
        vault.root.sys.submit_unseal_key(server.unseal_key)
        time.sleep(1)
    finally:
        running.stop()
        server.stop()
    text = running.log_text()
    assert "broker.login.ok" in text and "broker.token" in text
    for secret in secret_ids:
        assert secret not in text
    for plaintext in plaintexts:
        assert plaintext.decode() not in text
    tokens = server.raw_tokens(vault.auth_mount)
    assert len(tokens) >= 3  # the first login, the max-TTL re-login, the one after the revocation
    for token in tokens:
        assert token not in text
    assert not re.search(r"\b[hs]\.[A-Za-z0-9]{20,}", text)  # nothing shaped like an OpenBao token
    assert "X-Vault-Token" not in text
