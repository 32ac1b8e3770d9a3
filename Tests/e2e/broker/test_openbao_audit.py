"""What a real OpenBao records of the plugin, read from its file audit device (declared in the
-config file: OpenBao 2 refuses sys/audit over the API): Status costs zero Vault requests, and the
KMS uid reaches the audit log as X-Correlation-Id once the operator audits that header."""
import time

import pytest

from kmstest import vaultenv
from kmstest.kmsclient import api
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.mode() != "openbao", reason="starts an OpenBao of its own with an audit log")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    server = vaultenv.start_server(str(tmp_path_factory.mktemp("server")), audit=True)
    # Audited request headers are configured over the API (sys/config/auditing/request-headers).
    server.request("PUT", "sys/config/auditing/request-headers/X-Correlation-Id", {"hmac": False})
    setup = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("vault")))
    setup.server = server
    yield setup
    server.stop()


def test_the_audit_device_comes_from_the_config_file_and_sys_audit_is_refused(audited):
    devices = audited.server.request("GET", "sys/audit")["data"]
    assert list(devices) == ["kms-audit/"] and devices["kms-audit/"]["type"] == "file"
    status, answer = audited.server.raw("PUT", "sys/audit/other", {"type": "file", "options": {"file_path": "/dev/null"}})
    assert status == 400 and "declarative" in " ".join(answer["errors"]), answer


def test_status_costs_zero_vault_requests(audited, workdir):
    running = Plugin(audited, workdir, extra_args=["--key-check-interval", "1h"])
    try:
        client = running.client()
        client.Status(api().StatusRequest(), timeout=5)
        time.sleep(0.5)  # the start-up calls (login, key read, edition) are in the log by now
        before = len(audited.server.audit_entries())
        for _ in range(50):
            assert client.Status(api().StatusRequest(), timeout=5).healthz == "ok"
        time.sleep(0.5)
        after = audited.server.audit_entries()[before:]
        assert after == [], [entry.get("request", {}).get("path") for entry in after]
    finally:
        running.stop()


def test_the_kms_uid_reaches_the_audit_log_as_x_correlation_id(audited, workdir):
    running = Plugin(audited, workdir)
    try:
        uid = "audit-uid-7f3c"
        encrypted = running.client().Encrypt(api().EncryptRequest(plaintext=b"s" * 32, uid=uid), timeout=5)
        running.client().Decrypt(api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                                      uid=uid + "-d"), timeout=5)
        time.sleep(0.3)
        requests = {entry["request"]["path"]: entry["request"] for entry in audited.server.audit_entries()
                    if entry["type"] == "request" and "headers" in entry["request"]}
        encrypt = requests[f"{audited.mount}/encrypt/{audited.key}"]
        decrypt = requests[f"{audited.mount}/decrypt/{audited.key}"]
        assert encrypt["headers"]["x-correlation-id"] == [uid]
        assert decrypt["headers"]["x-correlation-id"] == [uid + "-d"]
        # The audit log HMACs the data: neither the plaintext nor the ciphertext is in it.
        text = open(audited.server.audit_path).read()
        assert encrypted.ciphertext.decode() not in text
    finally:
        running.stop()
