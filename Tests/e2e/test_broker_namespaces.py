"""Namespaces (simulator in its Enterprise personality): --vault-namespace selects the Transit
mount's namespace, --vault-auth-namespace the login's, both sent as X-Vault-Namespace."""
import os

import pytest

import vaultenv
from brokerhelpers import round_trip, wait_healthz
from plugin import Plugin

pytestmark = pytest.mark.simulator_only("Enterprise personality (-edition=enterprise: namespaces with its license endpoints)")


@pytest.fixture(scope="module")
def enterprise(tmp_path_factory):
    server = vaultenv.SimulatorProcess(extra_args=["-edition=enterprise"])
    root = vaultenv.hvac.Client(url=server.address, token=server.root_token)
    root.sys.create_namespace("team-a")
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
