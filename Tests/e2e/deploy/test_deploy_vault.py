"""deploy/vault: the shipped setup script, run for real against the Vault simulator through the
HTTP fallback of its `vault()` function, yields a policy, a role and credentials with which the
plugin starts and answers a healthy Status."""
import os
import re
import stat
import subprocess
import types

import hvac
import pytest

from kmstest import kmsclient
from kmstest import openbao
from kmstest import vaultenv
from kmstest.plugin import Plugin

ROOT = vaultenv.ROOT
VAULT_DIR = os.path.join(ROOT, "deploy", "vault")
SETUP = os.path.join(VAULT_DIR, "setup.sh")
EXPECTED_RULES = {
    "transit/encrypt/kube-kek": ["update"],
    "transit/decrypt/kube-kek": ["update"],
    "transit/keys/kube-kek": ["read"],
    "sys/license/status": ["read"],
}


def run_setup(server, out_dir, **extra):
    env = {**os.environ, "VAULT_ADDR": server.address, "VAULT_TOKEN": server.root_token, "VAULT_CLI": "http",
           "KMS_OUTPUT_DIR": out_dir, **extra}
    return subprocess.run(["bash", SETUP], env=env, capture_output=True, text=True, timeout=60)


def policy_rules(text):
    """path -> capabilities of the uncommented rules of an HCL policy."""
    rules = {}
    for path, body in re.findall(r'^path "([^"]+)" \{(.*?)^\}', text, re.S | re.M):
        rules[path] = re.findall(r'"(\w+)"', re.search(r"capabilities = \[(.*?)\]", body).group(1))
    return rules


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = vaultenv.start_server(str(tmp_path_factory.mktemp("server")))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def configured(server, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("vault-setup") / "credentials")
    result = run_setup(server, out)
    assert result.returncode == 0, result.stderr
    return types.SimpleNamespace(out=out, result=result, root=hvac.Client(url=server.address, token=server.root_token))


@pytest.mark.skipif(vaultenv.is_external(), reason="counts requests in an audit log or the simulator's stats")
def test_setup_makes_exactly_the_vault_calls_of_a_fresh_install(tmp_path):
    """Counted by what reached a fresh server: OpenBao's audit log (or the simulator's stats)."""
    fresh = vaultenv.start_server(str(tmp_path / "server"), audit=True)
    try:
        before = set(fresh.request_counts())
        result = run_setup(fresh, str(tmp_path / "out"))
        assert result.returncode == 0, result.stderr
        stats = {path for path in fresh.request_counts() if path not in before}
    finally:
        fresh.stop()
    assert stats == {
        "sys/mounts/transit", "transit/keys/kube-kek", "transit/keys/kube-kek/config",
        "sys/policies/acl/vault-kube-kms", "sys/auth/approle", "auth/approle/role/vault-kube-kms",
        "auth/approle/role/vault-kube-kms/role-id", "auth/approle/role/vault-kube-kms/secret-id"}


def test_shipped_policy_grants_exactly_the_four_best_practice_rules():
    assert policy_rules(open(os.path.join(VAULT_DIR, "vault-kube-kms-policy.hcl")).read()) == EXPECTED_RULES


def test_setup_writes_private_credentials_and_never_prints_the_secret_id(configured):
    secret_id = open(os.path.join(configured.out, "secret-id")).read().strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", secret_id)
    assert stat.S_IMODE(os.stat(configured.out).st_mode) == 0o700
    for name in ("role-id", "secret-id"):
        assert stat.S_IMODE(os.stat(os.path.join(configured.out, name)).st_mode) == 0o400, name
    assert secret_id not in configured.result.stdout + configured.result.stderr


def test_setup_creates_a_non_deletable_rotating_aes256_key(configured):
    key = configured.root.secrets.transit.read_key(name="kube-kek")["data"]
    assert (key["type"], key["deletion_allowed"], key["exportable"]) == ("aes256-gcm96", False, False)
    assert 0 < key["auto_rotate_period"] <= 90 * 86400


def test_role_issues_short_renewable_tokens_with_only_the_policy(configured):
    role_id = open(os.path.join(configured.out, "role-id")).read().strip()
    secret_id = open(os.path.join(configured.out, "secret-id")).read().strip()
    role = configured.root.auth.approle.read_role("vault-kube-kms")["data"]
    assert role["secret_id_ttl"] > 0 and role["token_max_ttl"] <= 3600
    login = hvac.Client(url=configured.root.url)
    auth = login.auth.approle.login(role_id=role_id, secret_id=secret_id)["auth"]
    assert sorted(auth["token_policies"]) == ["default", "vault-kube-kms"]
    assert auth["renewable"] and 0 < auth["lease_duration"] <= 900
    client = hvac.Client(url=configured.root.url, token=auth["client_token"])
    paths = [*EXPECTED_RULES, "transit/keys/kube-kek/rotate", "transit/keys/other", "transit/encrypt/other"]
    caps = client.adapter.post("/v1/sys/capabilities-self", json={"paths": paths})["data"]
    assert {path: caps[path] for path in paths} == {
        **EXPECTED_RULES, "transit/keys/kube-kek/rotate": ["deny"], "transit/keys/other": ["deny"],
        "transit/encrypt/other": ["deny"]}


def test_setup_is_idempotent_and_keeps_the_existing_key(server, configured, tmp_path):
    configured.root.secrets.transit.rotate_key(name="kube-kek")
    result = run_setup(server, str(tmp_path / "again"))
    assert result.returncode == 0, result.stderr
    assert configured.root.secrets.transit.read_key(name="kube-kek")["data"]["latest_version"] == 2


def test_upsert_variant_adds_create_on_encrypt_only(server, tmp_path):
    result = run_setup(server, str(tmp_path / "upsert"), KMS_KEY_NAME="upsert-kek", KMS_POLICY_NAME="kms-upsert",
                       KMS_ROLE_NAME="kms-upsert")
    assert result.returncode == 0, result.stderr
    upsert = subprocess.run(["bash", SETUP], capture_output=True, text=True, timeout=60, env={
        **os.environ, "VAULT_ADDR": server.address, "VAULT_TOKEN": server.root_token, "VAULT_CLI": "http",
        "KMS_OUTPUT_DIR": str(tmp_path / "upsert2"), "KMS_KEY_NAME": "upsert-kek", "KMS_POLICY_NAME": "kms-upsert",
        "KMS_ROLE_NAME": "kms-upsert", "KMS_UPSERT": "1"})
    assert upsert.returncode == 0, upsert.stderr
    root = hvac.Client(url=server.address, token=server.root_token)
    rules = policy_rules(root.sys.read_policy("kms-upsert")["data"]["rules"])
    assert rules["transit/encrypt/upsert-kek"] == ["create", "update"]
    assert rules["transit/decrypt/upsert-kek"] == ["update"]


def test_setup_fails_loudly_with_a_wrong_token(server, tmp_path):
    result = subprocess.run(["bash", SETUP], capture_output=True, text=True, timeout=60, env={
        **os.environ, "VAULT_ADDR": server.address, "VAULT_TOKEN": "not-a-token", "VAULT_CLI": "http",
        "KMS_OUTPUT_DIR": str(tmp_path / "nope")})
    assert result.returncode != 0
    assert "permission denied" in result.stderr
    assert not os.path.exists(tmp_path / "nope" / "secret-id")


def test_plugin_serves_healthy_with_the_credentials_setup_wrote(server, configured, tmp_path):
    os.chmod(tmp_path, 0o755)
    vault = types.SimpleNamespace(
        address=server.address, key_path="transit/keys/kube-kek", auth_mount="approle",
        role_id=open(os.path.join(configured.out, "role-id")).read().strip(),
        secret_id_path=os.path.join(configured.out, "secret-id"))
    running = Plugin(vault, str(tmp_path))
    try:
        api, _ = kmsclient.stubs()
        client = running.client()
        assert client.Status(api.StatusRequest(), timeout=5).healthz == "ok"
        encrypted = client.Encrypt(api.EncryptRequest(plaintext=b"k" * 32, uid="deploy-vault"), timeout=5)
        decrypted = client.Decrypt(api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                                      uid="deploy-vault"), timeout=5)
        assert decrypted.plaintext == b"k" * 32
    finally:
        running.stop()


def _configured_state(server):
    root = hvac.Client(url=server.address, token=server.root_token)
    key = root.secrets.transit.read_key(name="kube-kek")["data"]
    role = root.auth.approle.read_role("vault-kube-kms")["data"]
    return {
        "key": {name: key[name] for name in ("type", "deletion_allowed", "exportable", "auto_rotate_period",
                                              "allow_plaintext_backup", "latest_version")},
        "role": {name: role[name] for name in ("token_policies", "token_ttl", "token_max_ttl", "secret_id_ttl",
                                                "secret_id_num_uses", "token_type", "bind_secret_id")},
        "policy": policy_rules(root.sys.read_policy("vault-kube-kms")["data"]["rules"]),
    }


@pytest.mark.skipif(vaultenv.mode() != "openbao", reason="starts two OpenBao servers of its own")
def test_the_real_bao_cli_configures_openbao_exactly_as_the_http_path(tmp_path):
    """`make run` configures its OpenBao with VAULT_CLI=bao: the same key, role and policy as the
    curl path the rest of this module uses, and credentials that log in."""
    states = {}
    for cli in ("http", openbao.bao_binary()):
        fresh = openbao.OpenBaoServer(str(tmp_path / os.path.basename(cli)))
        try:
            out = str(tmp_path / os.path.basename(cli) / "credentials")
            result = run_setup(fresh, out, VAULT_CLI=cli, HOME=str(tmp_path))
            assert result.returncode == 0, result.stderr
            states[cli] = _configured_state(fresh)
            login = hvac.Client(url=fresh.address).auth.approle.login(
                role_id=open(os.path.join(out, "role-id")).read().strip(),
                secret_id=open(os.path.join(out, "secret-id")).read().strip())
            assert "vault-kube-kms" in login["auth"]["token_policies"]
        finally:
            fresh.stop()
    http_state, bao_state = states.values()
    assert bao_state == http_state
    assert bao_state["policy"] == EXPECTED_RULES
