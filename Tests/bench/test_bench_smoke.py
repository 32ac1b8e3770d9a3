"""CI's benchmark check: a short run against the debug build `make test` builds and a real OpenBao
dev server (KMS_BENCH_VAULT=simulator for the simulator), failing only on gross regressions of
ratios (never on absolute times) and on Vault call counts, which are exact. The recorded figures
are Tests/bench/baseline.json ("smoke", per Vault); `python3 Tests/bench/bench.py` and
docs/benchmarks.md hold the real measurements."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchenv  # noqa: E402
import smoke  # noqa: E402

VAULT = os.environ.get("KMS_BENCH_VAULT", "openbao")
BASELINE = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "baseline.json")))["smoke"][VAULT]
GROSS = 3.0  # a ratio more than 3x the recorded one is a regression, not noise


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("bench"))
    os.chmod(workdir, 0o755)
    build = os.environ.get("KMS_BIN_DIR") or os.path.join(benchenv.ROOT, ".build", "debug")
    bin_dir = benchenv.install_binaries(build)
    vault = benchenv.start_vault(VAULT, workdir)
    plugin = benchenv.Plugin(vault, bin_dir, workdir)
    try:
        smoke.calls.wait_healthy(plugin.socket)
        yield smoke.run(plugin, vault)
    finally:
        plugin.stop()
        vault.stop()


# The plugin runs with the broker's background probes pushed out of the window (benchenv.QUIET_PROBES),
# so the counts are exact: by the broker's metrics and by the server's own request counter.


def test_status_is_answered_from_the_cache_without_vault_calls(figures):
    assert figures["broker_vault_calls_during_status"] == {}, figures
    assert figures["server_transit_calls_during_status"] == 0, figures


def test_each_encrypt_makes_exactly_one_transit_encrypt(figures):
    asked = figures["encrypt_calls"]
    assert figures["broker_vault_calls_during_encrypt"] == {"encrypt": asked}, figures
    assert figures["server_transit_calls_during_encrypt"] == asked, figures


@pytest.mark.parametrize("operation", ["encrypt", "decrypt"])
def test_overhead_ratio_over_direct_call_is_within_3x_of_the_recorded_one(figures, operation):
    ratio = figures[f"{operation}_p50_ratio"]
    recorded = BASELINE[f"{operation}_p50_ratio"]
    assert ratio <= GROSS * recorded, f"{operation}: plugin/direct p50 {ratio:.2f}, recorded {recorded:.2f}"
