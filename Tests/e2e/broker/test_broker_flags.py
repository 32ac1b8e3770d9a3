"""Flags and their environment fallbacks, as an existing deployment of HashiCorp's plugin would
set them: VAULT_KUBE_KMS_*, VAULT_ADDR/VAULT_NAMESPACE/VAULT_CACERT, HashiCorp's
--transit-mount/--transit-key, durations, key-path validation."""
import os
import subprocess
import time

import pytest

from kmstest.brokerhelpers import events, round_trip
from kmstest.plugin import Plugin, installed_bin_dir
from kmstest.process import Logged


def _bare_args(workdir):
    return [os.path.join(installed_bin_dir(), "vault-kube-kms"), "--listen-address",
            f"unix://{os.path.join(workdir, 'kms.sock')}"]


def test_transit_mount_and_key_select_the_key_like_vault_key_path(vault, workdir):
    """HashiCorp's documented pair (OpenShift's operator passes it) is a first-class spelling of
    --vault-key-path: the key is served, and no deprecation warning nags every start."""
    clone = type("Transit", (), {})()
    for name in ("address", "auth_mount", "role_id", "secret_id_path"):
        setattr(clone, name, getattr(vault, name))
    clone.key_path = f"{vault.mount}/keys/{vault.key}"
    running = Plugin(clone, workdir, extra_args=[])
    running.stop()
    # The same set-up through the transit pair (no --vault-key-path at all).
    args = [a for a in running.args if a not in ("--vault-key-path", clone.key_path)]
    args += ["--transit-mount", vault.mount, "--transit-key", vault.key]
    log_path = os.path.join(workdir, "transit-pair.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 15
        text = ""
        while time.time() < deadline and "broker.key.active" not in text:
            time.sleep(0.1)
            text = open(log_path).read()
        assert "broker.key.active" in text
        assert "deprecated" not in text
    finally:
        proc.terminate()
        proc.wait(15)


def test_vault_addr_and_vault_kube_kms_variables_are_honoured(vault, workdir):
    env = {**os.environ, "VAULT_ADDR": vault.address, "VAULT_KUBE_KMS_VAULT_KEY_PATH": vault.key_path,
           "VAULT_KUBE_KMS_APPROLE_ROLE_ID": vault.role_id,
           "VAULT_KUBE_KMS_APPROLE_SECRET_ID_PATH": vault.secret_id_path,
           "VAULT_KUBE_KMS_AUTH_MOUNT": vault.auth_mount, "VAULT_KUBE_KMS_KEY_CHECK_INTERVAL": "250ms"}
    # Only the listen address on the command line; everything else from the environment.
    running = Plugin.__new__(Plugin)
    running.socket = os.path.join(workdir, "kms.sock")
    running.log_path = os.path.join(workdir, "env.log")
    running.process = Logged(_bare_args(workdir), running.log_path, append=False, env=env)
    running.proc, running.log = running.process.proc, running.process.log
    try:
        running.wait_healthy()
        round_trip(running)
        start = events(running, "broker.start")[0]
        assert start["vault"] == vault.address
    finally:
        running.stop()


@pytest.mark.parametrize("path, needle", [
    ("kms/../transit/keys/kek", ". or .. segment"),
    ("kms//transit/keys/kek", "contains //"),
    ("/transit/keys/kek", "must not start or end with /"),
    ("transit/keys/kek/", "Transit key name"),
    ("transit/kek", "<transit mount>/keys/<key name>"),
])
def test_a_bad_key_path_stops_startup_with_a_clear_error(vault, workdir, path, needle):
    args = _bare_args(workdir) + ["--vault-address", vault.address, "--vault-key-path", path,
                                  "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path]
    result = subprocess.run(args, capture_output=True, text=True, timeout=15)
    assert result.returncode != 0
    assert needle in result.stdout + result.stderr


@pytest.mark.parametrize("flag, value", [("--key-check-interval", "30"), ("--deep-check-interval", "5 m"),
                                         ("--vault-connection-timeout", "0s"), ("--vault-request-timeout", "1d")])
def test_a_malformed_duration_stops_startup_naming_the_flag(vault, workdir, flag, value):
    args = _bare_args(workdir) + ["--vault-address", vault.address, "--vault-key-path", vault.key_path,
                                  "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path,
                                  flag, value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=15)
    assert result.returncode != 0
    assert flag in result.stdout + result.stderr
