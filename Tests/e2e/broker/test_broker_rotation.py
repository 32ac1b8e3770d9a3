"""Key rotation against a real OpenBao (the mode's Vault; OpenBao by default), with a fast key
probe: damping, rollback refusal after a restored backup, old ciphertexts across rotations and
min_decryption_version."""
import os
import time

import pytest

from kmstest import vaultenv
from kmstest.brokerhelpers import healthz, round_trip, wait_healthz
from kmstest.kmsclient import api
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.is_external(), reason="rotates, backs up and restores the key")


@pytest.fixture()
def own_vault(tmp_path_factory):
    """A server per test: these tests rotate and restore the key."""
    server = vaultenv.start_server(str(tmp_path_factory.mktemp("server")))
    setup = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("vault")))
    yield setup
    server.stop()


def _key_id(running):
    return running.client().Status(api().StatusRequest(), timeout=2).key_id


def test_a_rotated_key_becomes_active_only_after_two_consecutive_probes(own_vault, workdir):
    running = Plugin(own_vault, workdir, extra_args=["--key-check-interval", "300ms"])
    try:
        before = _key_id(running)
        own_vault.rotate_key()
        deadline = time.time() + 10
        while time.time() < deadline and _key_id(running) == before:
            time.sleep(0.05)
        after = _key_id(running)
        assert after != before and after.startswith("transit-v2-")
        names = [e.get("event") for e in running.log_events()]
        pending = [i for i, e in enumerate(running.log_events()) if e.get("event") == "broker.key.pending"]
        active_v2 = [i for i, e in enumerate(running.log_events())
                     if e.get("event") == "broker.key.active" and e.get("version") == "2"]
        assert pending and active_v2 and pending[0] < active_v2[0], names
        assert round_trip(running).key_id == after
    finally:
        running.stop()


def test_a_key_restored_from_an_older_backup_is_reported_rolled_back_and_never_adopted(own_vault, workdir):
    transit = own_vault.root.secrets.transit
    transit.update_key_configuration(
        name=own_vault.key, exportable=True, allow_plaintext_backup=True, mount_point=own_vault.mount)
    backup = transit.backup_key(name=own_vault.key, mount_point=own_vault.mount)["data"]["backup"]
    own_vault.rotate_key()
    running = Plugin(own_vault, workdir, extra_args=["--key-check-interval", "300ms"])
    try:
        active = _key_id(running)
        assert active.startswith("transit-v2-")
        transit.restore_key(backup=backup, name=own_vault.key, force=True, mount_point=own_vault.mount)
        reason = wait_healthz(running, lambda h: h.startswith("key rolled back"))
        assert "2 -> 1" in reason
        time.sleep(1)  # more probes: still refused, the active key_id unchanged
        assert healthz(running).startswith("key rolled back")
        assert _key_id(running) == active
        with pytest.raises(Exception):
            running.client().Encrypt(api().EncryptRequest(plaintext=b"x" * 32, uid="rb"), timeout=3)
    finally:
        running.stop()


def test_old_ciphertexts_decrypt_across_rotations_with_their_own_key_id(own_vault, workdir):
    running = Plugin(own_vault, workdir, extra_args=["--key-check-interval", "300ms"])
    try:
        client = running.client()
        seeds = {}
        for version in (1, 2, 3):
            wait_healthz(running, lambda h: h == "ok")
            deadline = time.time() + 10
            while time.time() < deadline and not _key_id(running).startswith(f"transit-v{version}-"):
                time.sleep(0.05)
            plaintext = os.urandom(32)
            encrypted = client.Encrypt(api().EncryptRequest(plaintext=plaintext, uid=f"v{version}"), timeout=5)
            assert encrypted.key_id.startswith(f"transit-v{version}-") and encrypted.ciphertext.startswith(
                f"vault:v{version}:".encode())
            seeds[version] = (plaintext, encrypted)
            if version < 3:
                own_vault.rotate_key()
        key_ids = {encrypted.key_id for _, encrypted in seeds.values()}
        assert len(key_ids) == 3
        for plaintext, encrypted in seeds.values():
            decrypted = client.Decrypt(api().DecryptRequest(
                ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="old"), timeout=5)
            assert decrypted.plaintext == plaintext
    finally:
        running.stop()


def test_min_decryption_version_refuses_older_ciphertexts_and_the_plugin_stays_healthy(own_vault, workdir):
    running = Plugin(own_vault, workdir, extra_args=["--key-check-interval", "300ms"])
    try:
        client = running.client()
        old_plaintext = os.urandom(32)
        old = client.Encrypt(api().EncryptRequest(plaintext=old_plaintext, uid="v1"), timeout=5)
        own_vault.rotate_key()
        deadline = time.time() + 10
        while time.time() < deadline and not _key_id(running).startswith("transit-v2-"):
            time.sleep(0.05)
        new = round_trip(running)
        assert new.key_id.startswith("transit-v2-")
        own_vault.root.secrets.transit.update_key_configuration(
            name=own_vault.key, min_decryption_version=2, mount_point=own_vault.mount)
        time.sleep(1)  # a few key probes
        with pytest.raises(Exception) as refused:
            client.Decrypt(api().DecryptRequest(ciphertext=old.ciphertext, key_id=old.key_id, uid="old"), timeout=5)
        # The key probe no longer lists version 1: the broker refuses its key_id without a Vault call.
        assert "unknown key_id" in repr(refused.value)
        assert healthz(running) == "ok"
        assert round_trip(running).key_id == new.key_id
        # Lowered again, the old ciphertext decrypts once the next key probe has read version 1
        # back into the key cache (OpenBao lists only versions >= min_decryption_version): nothing
        # was lost.
        own_vault.root.secrets.transit.update_key_configuration(
            name=own_vault.key, min_decryption_version=1, mount_point=own_vault.mount)
        deadline, decrypted = time.time() + 10, None
        while decrypted is None and time.time() < deadline:
            try:
                decrypted = client.Decrypt(
                    api().DecryptRequest(ciphertext=old.ciphertext, key_id=old.key_id, uid="old"), timeout=5)
            except Exception as error:  # noqa: BLE001 - "unknown key_id" until the probe ran
                assert "unknown key_id" in repr(error), error
                time.sleep(0.1)
        assert decrypted is not None and decrypted.plaintext == old_plaintext
    finally:
        running.stop()
