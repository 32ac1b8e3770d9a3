"""Key rotation damping and rollback refusal against the simulator, with a fast key probe."""
import os
import time

import pytest

import vaultenv
from brokerhelpers import api, healthz, round_trip, wait_healthz
from plugin import Plugin

pytestmark = pytest.mark.simulator_only("key restore of a backup into a running key (transit/restore without a fresh server)")


@pytest.fixture()
def own_vault(tmp_path_factory):
    server = vaultenv.SimulatorProcess()
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
