"""The simulator's own tests carry the e2e suites' `simulator_only` marker: they run in the simulator pass
(KMS_E2E_VAULT=simulator, scripts/test.sh) and are skipped in the others, also when collected without
Tests/e2e (whose conftest applies the same rule to every collected test)."""
import os

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "simulator_only(power): needs this one power of Tests/vaultsim that no real server has; "
        "runs only with KMS_E2E_VAULT=simulator")


def pytest_collection_modifyitems(config, items):
    if (os.environ.get("KMS_E2E_VAULT", "").strip() or "openbao") == "simulator":
        return
    for item in items:
        marker = item.get_closest_marker("simulator_only")
        if marker is not None and not item.get_closest_marker("skip"):
            item.add_marker(pytest.mark.skip(
                reason=f"simulator-only: needs the simulator's {marker.args[0]} (KMS_E2E_VAULT=simulator)"))
