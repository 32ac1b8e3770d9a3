"""CI's benchmark check: a short run against the debug build `make test` builds, failing only on
gross regressions of ratios (never on absolute times) and on Vault call counts, which are exact.
The recorded figures are Tests/bench/baseline.json ("smoke"); `python3 Tests/bench/bench.py` and
docs/benchmarks.md hold the real measurements."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchenv  # noqa: E402
import smoke  # noqa: E402

BASELINE = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "baseline.json")))["smoke"]
GROSS = 3.0  # a ratio more than 3x the recorded one is a regression, not noise


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("bench"))
    os.chmod(workdir, 0o755)
    build = os.environ.get("KMS_BIN_DIR") or os.path.join(benchenv.ROOT, ".build", "debug")
    bin_dir = benchenv.install_binaries(build)
    vault = benchenv.Vault(workdir)
    plugin = benchenv.Plugin(vault, bin_dir, workdir)
    try:
        smoke.calls.wait_healthy(plugin.socket)
        yield smoke.run(plugin, vault)
    finally:
        plugin.stop()
        vault.stop()


# The broker's own background probes (key metadata every 30 s, a deep encrypt/decrypt every 5 min)
# may fall inside a measured window: at most one of each.
BACKGROUND_PROBES = 2


def test_status_is_answered_from_the_cache_without_vault_calls(figures):
    assert figures["vault_calls_during_status"] <= BACKGROUND_PROBES, figures


def test_each_encrypt_makes_exactly_one_transit_encrypt(figures):
    made, asked = figures["vault_encrypts_during_encrypt"], figures["encrypt_calls"]
    assert asked <= made <= asked + 1, figures


@pytest.mark.parametrize("operation", ["encrypt", "decrypt"])
def test_overhead_ratio_over_direct_call_is_within_3x_of_the_recorded_one(figures, operation):
    ratio = figures[f"{operation}_p50_ratio"]
    recorded = BASELINE[f"{operation}_p50_ratio"]
    assert ratio <= GROSS * recorded, f"{operation}: plugin/direct p50 {ratio:.2f}, recorded {recorded:.2f}"
