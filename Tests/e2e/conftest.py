import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vaultenv  # noqa: E402
from plugin import Plugin  # noqa: E402


@pytest.fixture(scope="module")
def vault_server():
    """The simulator, or the real Vault named by VAULT_ADDR and VAULT_TOKEN."""
    if os.environ.get("VAULT_ADDR") and os.environ.get("VAULT_TOKEN"):
        yield type("RealVault", (), {"address": os.environ["VAULT_ADDR"], "root_token": os.environ["VAULT_TOKEN"]})()
        return
    server = vaultenv.SimulatorProcess()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vault(vault_server, tmp_path_factory):
    setup = vaultenv.VaultSetup(vault_server.address, vault_server.root_token, str(tmp_path_factory.mktemp("vault")))
    yield setup
    setup.teardown()


@pytest.fixture(scope="module")
def plugin(vault, tmp_path_factory):
    running = Plugin(vault, str(tmp_path_factory.mktemp("plugin")))
    yield running
    running.stop()


@pytest.fixture()
def workdir(tmp_path):
    os.chmod(tmp_path, 0o755)
    return str(tmp_path)
