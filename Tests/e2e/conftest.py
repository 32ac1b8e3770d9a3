import os

import pytest

from kmstest import vaultenv
from kmstest.plugin import Plugin
from kmstest.splitplugin import SOCKET_ACTIVATE, SplitPlugin

# The topologies the contract suites run in: the `topology` fixture's parameters.
TOPOLOGIES = ["spawn", "split", pytest.param("socket-activated", marks=pytest.mark.skipif(
    not SOCKET_ACTIVATE, reason="systemd-socket-activate not installed"))]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "simulator_only(power): needs this one power of Tests/vaultsim that no real server has; "
        "runs only with KMS_E2E_VAULT=simulator")


def pytest_collection_modifyitems(config, items):
    current = vaultenv.mode()
    for item in items:
        marker = item.get_closest_marker("simulator_only")
        if marker is None:
            continue
        if not marker.args or not str(marker.args[0]).strip():
            raise pytest.UsageError(f"{item.nodeid}: simulator_only needs the simulator power it uses")
        if current != "simulator":
            item.add_marker(pytest.mark.skip(
                reason=f"simulator-only: needs the simulator's {marker.args[0]} ({vaultenv.MODE_VARIABLE}=simulator)"))


def pytest_report_header(config):
    return f"e2e Vault: {vaultenv.mode()} ({vaultenv.MODE_VARIABLE})"


def pytest_terminal_summary(terminalreporter):
    """Per-mode counts for the CI log: how many tests ran in this Vault mode, and how many are
    simulator-only (run with KMS_E2E_VAULT=simulator, skipped otherwise)."""
    outcomes = {}
    for outcome in ("skipped", "passed", "failed", "error"):  # a later outcome of a test wins
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "nodeid", None) and hasattr(report, "keywords"):
                outcomes[report.nodeid] = (outcome, "simulator_only" in report.keywords)
    if not outcomes:
        return
    terminalreporter.write_line(f"e2e Vault mode: {vaultenv.mode()}")
    for label, simulator_only in (("general tests", False), ("simulator-only tests", True)):
        counts = {}
        for outcome, marked in outcomes.values():
            if marked == simulator_only:
                counts[outcome] = counts.get(outcome, 0) + 1
        if counts:
            terminalreporter.write_line(f"  {label}: " + ", ".join(
                f"{counts[o]} {o}" for o in ("passed", "failed", "error", "skipped") if o in counts))


@pytest.fixture(scope="module")
def vault_server(tmp_path_factory):
    """The Vault of the module, by KMS_E2E_VAULT: a real OpenBao dev server started here (default),
    the simulator, or the external Vault of VAULT_ADDR/VAULT_TOKEN. Every shape has address,
    root_token and unseal_key (None when the suite cannot unseal it)."""
    server = vaultenv.start_server(str(tmp_path_factory.mktemp("openbao")))
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


@pytest.fixture(scope="module", params=TOPOLOGIES)
def topology(request, vault, tmp_path_factory):
    """The module's plugin in each topology, for the suites that prove the same contract in all:
    spawn (the broker starts the front), split (broker and front started apart, the front binding
    the KMS socket) and socket-activated (split, the front started by systemd-socket-activate).
    Each has client() and socket."""
    workdir = str(tmp_path_factory.mktemp(f"topology-{request.param}"))
    if request.param == "spawn":
        running = Plugin(vault, workdir)
    else:
        os.chmod(workdir, 0o755)  # the split front runs as nobody
        running = SplitPlugin(vault, workdir, mode="socket" if request.param == "split" else "activation")
    yield running
    running.stop()


@pytest.fixture()
def workdir(tmp_path):
    os.chmod(tmp_path, 0o755)
    return str(tmp_path)
