"""Namespaces against a real OpenBao 2.7.2 (namespaces made with `bao namespace create`) and the
simulator in its Enterprise personality: --vault-namespace selects the Transit mount's namespace,
--vault-auth-namespace the login's, both sent as X-Vault-Namespace."""
import os

import pytest

from kmstest import vaultenv
from kmstest.brokerhelpers import round_trip, wait_healthz
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.is_external(), reason="creates namespaces on a server of its own")


@pytest.fixture(scope="module", params=[
    "openbao", pytest.param("enterprise", marks=pytest.mark.simulator_only(
        "Enterprise personality (-edition=enterprise), the same scenario as on OpenBao"))])
def enterprise(request, tmp_path_factory):
    if request.param == "openbao":
        if vaultenv.mode() != "openbao":
            pytest.skip("the OpenBao case runs in the openbao mode")
        from kmstest import openbao
        server = openbao.OpenBaoServer(str(tmp_path_factory.mktemp("openbao")))
        server.create_namespace("team-a")
    else:
        server = vaultenv.SimulatorProcess(extra_args=["-edition=enterprise"])
        vaultenv.hvac.Client(url=server.address, token=server.root_token).sys.create_namespace("team-a")
    # The same mount, key and role names in the root namespace and in team-a.
    in_root = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("root")))
    in_team = vaultenv.VaultSetup(
        server.address, server.root_token, str(tmp_path_factory.mktemp("team")), namespace="team-a")
    yield server, in_root, in_team
    server.stop()


def test_the_transit_namespace_isolates_keys_and_key_ids(enterprise, workdir):
    server, in_root, in_team = enterprise
    team_dir = os.path.join(workdir, "team")
    os.makedirs(team_dir, 0o755)
    team = Plugin(in_team, team_dir, extra_args=["--vault-namespace", "team-a"])
    root = Plugin(in_root, workdir)
    try:
        team_ct = round_trip(team)
        root_ct = round_trip(root)
        # The namespace is part of the key scope: different key_ids for the same key path.
        assert team_ct.key_id != root_ct.key_id
        # A team-a ciphertext cannot be decrypted by the root namespace's key of the same name.
        with pytest.raises(Exception):
            in_root.root.secrets.transit.decrypt_data(
                name=in_root.key, ciphertext=team_ct.ciphertext.decode(), mount_point=in_root.mount)
    finally:
        team.stop()
        root.stop()


def test_a_login_in_another_namespace_cannot_use_a_root_namespace_key(enterprise, workdir):
    server, in_root, in_team = enterprise
    # Log in with team-a's AppRole, but look for the Transit key in the root namespace.
    plugin = Plugin(in_team, workdir, wait_ready=False, extra_args=["--vault-auth-namespace", "team-a"])
    try:
        reason = wait_healthz(plugin, lambda h: h.startswith(("permission denied", "login failed", "secret ID refused")))
        assert reason.startswith("permission denied"), reason
    finally:
        plugin.stop()


def test_without_the_namespace_the_team_approle_is_not_found(enterprise, workdir):
    server, in_root, in_team = enterprise
    plugin = Plugin(in_team, workdir, wait_ready=False)
    try:
        # Vault's 400 "invalid role or secret ID": the credentials were judged and refused.
        reason = wait_healthz(plugin, lambda h: h != "not logged in yet")
        assert reason.startswith("secret ID refused; waiting for a new secret-ID file"), reason
    finally:
        plugin.stop()


def test_vault_namespace_is_honoured_as_a_fallback(enterprise, workdir):
    server, in_root, in_team = enterprise
    plugin = Plugin(in_team, workdir, env={**os.environ, "VAULT_NAMESPACE": "team-a"})
    try:
        round_trip(plugin)
    finally:
        plugin.stop()


def test_transit_and_auth_in_separate_namespaces_serve_and_stay_isolated(enterprise, tmp_path, workdir):
    """The AppRole in namespace "ops", the key in its child "ops/kms" (a token is valid in its
    namespace's descendants; its policy names the child's paths): served with
    --vault-auth-namespace ops --vault-namespace ops/kms, refused for the sibling team-a."""
    server, _, _ = enterprise
    root = vaultenv.hvac.Client(url=server.address, token=server.root_token)
    if hasattr(server, "create_namespace"):
        server.create_namespace("ops")
        server.create_namespace("kms", parent="ops")
    else:
        root.sys.create_namespace("ops")
        vaultenv.hvac.Client(url=server.address, token=server.root_token, namespace="ops").sys.create_namespace("kms")
    kms = vaultenv.hvac.Client(url=server.address, token=server.root_token, namespace="ops/kms")
    kms.sys.enable_secrets_engine("transit", path="transit")
    kms.secrets.transit.create_key(name="kek", key_type="aes256-gcm96", mount_point="transit")
    ops = vaultenv.hvac.Client(url=server.address, token=server.root_token, namespace="ops")
    ops.sys.create_or_update_policy(name="kms", policy=vaultenv.POLICY_TEMPLATE.format(mount="kms/transit", key="kek"))
    ops.sys.enable_auth_method("approle", path="approle")
    ops.auth.approle.create_or_update_approle(role_name="kms", token_policies=["kms"], token_ttl="1h",
                                              mount_point="approle")
    setup = vaultenv.VaultSetup.__new__(vaultenv.VaultSetup)
    setup.address, setup.root, setup.mount, setup.key, setup.auth_mount, setup.role = (
        server.address, ops, "transit", "kek", "approle", "kms")
    setup.role_id = ops.auth.approle.read_role_id("kms", mount_point="approle")["data"]["role_id"]
    setup.secret_dir = str(tmp_path / "secret")
    os.mkdir(setup.secret_dir, 0o700)
    setup.secret_id_path = os.path.join(setup.secret_dir, "secret-id")
    setup.secret_id = setup.new_secret_id()
    setup.write_secret_id(setup.secret_id)
    plugin = Plugin(setup, workdir, extra_args=["--vault-auth-namespace", "ops", "--vault-namespace", "ops/kms"])
    try:
        encrypted = round_trip(plugin)
        # The ciphertext is the key of ops/kms: it decrypts there.
        assert kms.secrets.transit.decrypt_data(name="kek", ciphertext=encrypted.ciphertext.decode(),
                                                mount_point="transit")["data"]["plaintext"]
    finally:
        plugin.stop()
    sibling_dir = os.path.join(workdir, "sibling")
    os.makedirs(sibling_dir, 0o755)
    sibling = Plugin(setup, sibling_dir, wait_ready=False,
                     extra_args=["--vault-auth-namespace", "ops", "--vault-namespace", "team-a"])
    try:
        reason = wait_healthz(sibling, lambda h: h != "not logged in yet")
        assert reason.startswith("permission denied"), reason
    finally:
        sibling.stop()
