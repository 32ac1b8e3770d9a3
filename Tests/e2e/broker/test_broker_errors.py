"""Errors, health reasons and the zero-Vault-call guarantees against the simulator: sealed and
recovered, Status and foreign key_ids answered without Vault, throttling and 5xx retries,
X-Correlation-Id in Vault's audit log, edition detection."""
import json
import os
import time

import grpc
import pytest
import requests

from kmstest import simctl
from kmstest import vaultenv
from kmstest.brokerhelpers import events, healthz, round_trip, wait_healthz
from kmstest.kmsclient import api
from kmstest.plugin import Plugin

pytestmark = pytest.mark.simulator_only("injected Vault answers (/_sim/faults) counted by its request stats")


def _vault(tmp_path_factory, *args):
    server = vaultenv.SimulatorProcess(extra_args=args)
    setup = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("vault")))
    setup.server = server
    return setup


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    audit = str(tmp_path_factory.mktemp("audit") / "audit.log")
    setup = _vault(tmp_path_factory, f"-audit-file={audit}")
    setup.audit_path = audit
    yield setup
    setup.server.stop()


@pytest.fixture(scope="module")
def running(audited, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("plugin"))
    os.chmod(workdir, 0o755)
    plugin = Plugin(audited, workdir, extra_args=["--key-check-interval", "300ms"])
    yield plugin
    plugin.stop()


def _transit_calls(stats, vault):
    return {path: n for path, n in stats.items() if path.startswith(vault.mount + "/") or path.startswith("auth/")}


def test_status_is_answered_with_zero_vault_calls(running, audited):
    # The 300 ms key probe is the only background caller: ask faster than it, count only Status.
    simctl.reset_stats(audited)
    for _ in range(20):
        assert healthz(running) == "ok"
    stats = simctl.stats(audited)
    assert stats.get(f"{audited.mount}/encrypt/{audited.key}", 0) == 0
    assert stats.get(f"{audited.mount}/decrypt/{audited.key}", 0) == 0
    assert stats.get(f"auth/{audited.auth_mount}/login", 0) == 0
    # At most a few metadata probes happened meanwhile, never one per Status.
    assert stats.get(f"{audited.mount}/keys/{audited.key}", 0) < 20


def test_decrypt_with_a_foreign_key_id_is_rejected_with_zero_vault_calls(running, audited):
    encrypted = round_trip(running)
    simctl.reset_stats(audited)
    foreign = "transit-v1-" + "0" * 32
    with pytest.raises(grpc.RpcError) as raised:
        running.client().Decrypt(
            api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=foreign, uid="foreign"), timeout=3)
    assert raised.value.code() != grpc.StatusCode.OK
    assert simctl.stats(audited).get(f"{audited.mount}/decrypt/{audited.key}", 0) == 0


def test_the_kms_uid_reaches_vaults_audit_log_as_x_correlation_id(running, audited):
    uid = "apiserver-req-6f1d2c"
    running.client().Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid=uid), timeout=3)
    time.sleep(0.2)
    with open(audited.audit_path) as handle:
        entries = [json.loads(line) for line in handle if line.strip()]
    headers = [e["request"].get("headers", {}) for e in entries
               if e["request"].get("path") == f"{audited.mount}/encrypt/{audited.key}"]
    assert any(h.get("x-correlation-id") == [uid] or h.get("x-correlation-id") == uid for h in headers), headers[-3:]


def test_a_sealed_vault_is_reported_and_recovery_is_noticed(running, audited):
    audited.root.sys.seal()
    try:
        assert wait_healthz(running, lambda h: h == "vault sealed") == "vault sealed"
    finally:
        audited.root.sys.submit_unseal_key(audited.server.unseal_key)
    wait_healthz(running, lambda h: h == "ok")
    round_trip(running)


def test_one_5xx_is_retried_within_the_deadline(running, audited):
    simctl.add_fault(audited, {"paths": [f"{audited.mount}/encrypt/"], "status": 500, "count": 1})
    round_trip(running)
    simctl.clear_faults(audited)


def test_a_throttled_vault_answers_resource_exhausted_or_unavailable_and_is_not_retried(running, audited):
    simctl.add_fault(audited, {"paths": [f"{audited.mount}/encrypt/"], "status": 429, "count": 1})
    simctl.reset_stats(audited)
    with pytest.raises(grpc.RpcError):
        running.client().Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="t"), timeout=3)
    assert simctl.stats(audited).get(f"{audited.mount}/encrypt/{audited.key}", 0) == 1
    simctl.clear_faults(audited)


def test_a_policy_denial_names_the_path(audited, tmp_path_factory):
    audited.root.sys.create_or_update_policy(
        name=audited.policy, policy=f'path "{audited.mount}/encrypt/{audited.key}" {{ capabilities = ["update"] }}')
    workdir = str(tmp_path_factory.mktemp("denied"))
    os.chmod(workdir, 0o755)
    plugin = Plugin(audited, workdir, wait_ready=False)
    try:
        reason = wait_healthz(plugin, lambda h: h.startswith("permission denied"))
        assert reason == f"permission denied on {audited.mount}/keys/{audited.key}"
    finally:
        plugin.stop()
        audited.root.sys.create_or_update_policy(
            name=audited.policy, policy=vaultenv.POLICY_TEMPLATE.format(mount=audited.mount, key=audited.key))


@pytest.mark.parametrize("edition", ["community", "openbao", "enterprise"])
def test_the_edition_is_logged_and_never_refused_by_default(edition, tmp_path_factory):
    vault = _vault(tmp_path_factory, f"-edition={edition}")
    workdir = str(tmp_path_factory.mktemp("edition"))
    os.chmod(workdir, 0o755)
    plugin = Plugin(vault, workdir)
    try:
        deadline = time.time() + 5
        while time.time() < deadline and not events(plugin, "broker.vault.edition"):
            time.sleep(0.1)
        assert events(plugin, "broker.vault.edition")[0]["edition"] == edition
        assert healthz(plugin) == "ok"
    finally:
        plugin.stop()
        vault.server.stop()


def test_require_enterprise_refuses_community_edition(tmp_path_factory):
    vault = _vault(tmp_path_factory, "-edition=community")
    workdir = str(tmp_path_factory.mktemp("edition"))
    os.chmod(workdir, 0o755)
    plugin = Plugin(vault, workdir, wait_ready=False, extra_args=["--require-enterprise"])
    try:
        reason = wait_healthz(plugin, lambda h: "not enterprise" in h)
        assert "community" in reason
    finally:
        plugin.stop()
        vault.server.stop()


def test_the_simulator_answers_like_a_standby_without_forwarding(audited):
    simctl.add_fault(audited, {"paths": ["sys/mounts"], "redirect": "https://active.test:8200", "count": 1})
    answer = requests.get(f"{audited.address}/v1/sys/mounts", headers={"X-Vault-Token": audited.server.root_token},
                          allow_redirects=False, timeout=5)
    assert answer.status_code == 307
    assert answer.headers["Location"] == "https://active.test:8200/v1/sys/mounts"


def test_a_standby_redirect_is_reported_and_never_followed(running, audited):
    # The "active node" is a closed port: following the redirect would read "vault unreachable".
    simctl.add_fault(audited, {"paths": [f"{audited.mount}/keys/"], "redirect": "http://127.0.0.1:9"})
    try:
        assert wait_healthz(running, lambda h: h != "ok") == "vault standby redirect"
    finally:
        simctl.clear_faults(audited)
    wait_healthz(running, lambda h: h == "ok")


def test_the_deep_probe_finds_a_policy_that_allows_encrypt_but_not_decrypt(audited, tmp_path_factory):
    policy = vaultenv.POLICY_TEMPLATE.format(mount=audited.mount, key=audited.key)
    audited.root.sys.create_or_update_policy(
        name=audited.policy, policy="\n".join(line for line in policy.splitlines() if "/decrypt/" not in line))
    workdir = str(tmp_path_factory.mktemp("deep"))
    os.chmod(workdir, 0o755)
    plugin = Plugin(audited, workdir, wait_ready=False, extra_args=["--deep-check-interval", "250ms"])
    try:
        reason = wait_healthz(plugin, lambda h: h.startswith("permission denied"))
        assert reason == f"permission denied on {audited.mount}/decrypt/{audited.key}"
        assert events(plugin, "broker.deep_probe.failed")
    finally:
        plugin.stop()
        audited.root.sys.create_or_update_policy(name=audited.policy, policy=policy)
