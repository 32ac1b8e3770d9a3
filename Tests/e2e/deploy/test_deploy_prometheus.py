"""deploy/prometheus and deploy/grafana: the alert rules pass `promtool check rules`, their behaviour
passes `promtool test rules` (alerts fire on bad series and stay silent on good ones, for our names
and HashiCorp's), the dashboard's queries are valid PromQL, and every metric either uses is one the
plugin exports (or kube-apiserver / Prometheus itself)."""
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from kmstest import kmsclient, plugin
from kmstest.ports import free_port

PROMETHEUS = os.path.join(plugin.ROOT, "deploy", "prometheus")
RULES = os.path.join(PROMETHEUS, "vault-kube-kms-rules.yaml")
DASHBOARD = os.path.join(plugin.ROOT, "deploy", "grafana", "vault-kube-kms-dashboard.json")
# Series the rules use that Prometheus itself makes, not the plugin.
EXPORTED_BY_PROMETHEUS = {"up"}
# Series kube-apiserver exports (k8s.io/apiserver envelope metrics), joined with ours.
EXPORTED_BY_APISERVER = {"apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds"}
PREFIXES = ("vault_kube_kms_", "rpc_server_", "process_", "vso_", "apiserver_")

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")


def test_promtool_check_rules_accepts_the_rules():
    result = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_fire_and_stay_silent_as_specified():
    result = subprocess.run(["promtool", "test", "rules", "vault-kube-kms-rules.test.yaml"], cwd=PROMETHEUS,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(tmp_path):
    broken = open(RULES).read().replace("expr: vault_kube_kms_key_state == 2", "expr: vault_kube_kms_key_state ==")
    (tmp_path / "broken.yaml").write_text(broken)
    result = subprocess.run(["promtool", "check", "rules", str(tmp_path / "broken.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def metric_names(exprs):
    names = set()
    for text in exprs:
        expr = re.sub(r'\{[^}]*\}', "", text)
        expr = re.sub(r'\[[^\]]*\]', "", expr)
        expr = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
        for word in re.findall(r"[a-z_][a-z0-9_]*", expr):
            if word.startswith(PREFIXES) or word in EXPORTED_BY_PROMETHEUS:
                names.add(word)
    return names


def rule_metrics():
    return metric_names(rule["expr"] for group in yaml.safe_load(open(RULES))["groups"] for rule in group["rules"])


def dashboard_exprs():
    return [target["expr"] for panel in json.load(open(DASHBOARD))["panels"] for target in panel["targets"]]


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """Each panel's query, as a recording rule, passes `promtool check rules` (Grafana's $provider
    variable replaced by the example EncryptionConfiguration's provider name)."""
    exprs = dashboard_exprs()
    assert len(exprs) >= 8
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel{index}", "expr": expr.replace("$provider", "vault-kube-kms")}
        for index, expr in enumerate(exprs)]}]}
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(tmp_path / "dashboard-rules.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    names = metric_names(exprs)
    for ours, hashicorps in (("rpc_server_call_duration_seconds_count", "rpc_server_duration_milliseconds_count"),
                             ("vault_kube_kms_vault_request_errors_total", "vso_client_operations_errors_total")):
        assert ours in names and hashicorps in names  # both name sets are read


def test_rules_cover_the_alert_areas_issue_5_names():
    names = {rule["alert"] for group in yaml.safe_load(open(RULES))["groups"] for rule in group["rules"]}
    for needed in ("VaultKubeKMSDown", "VaultKubeKMSLoginFailures", "VaultKubeKMSErrorRateHigh",
                   "VaultKubeKMSEncryptLatencyOverBudget", "VaultKubeKMSDecryptLatencyOverBudget",
                   "VaultKubeKMSTokenExpiringSoon", "VaultKubeKMSKeyUnhealthy", "VaultKubeKMSRotationStuck"):
        assert needed in names
    assert "rpc_server_call_duration_seconds_bucket" in rule_metrics()


def serve_help():
    binary = os.path.join(plugin.installed_bin_dir(), "vault-kube-kms")
    return subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout


def test_every_metric_the_rules_use_is_exported_by_the_plugin(vault, workdir):
    if "--metrics-port" not in serve_help():
        pytest.skip("this build serves no /metrics yet (issue 4, point 6)")
    import urllib.request

    port = free_port()
    running = plugin.Plugin(vault, workdir, extra_args=("--metrics-port", str(port), "--health-port", "0"))
    try:
        api, _ = kmsclient.stubs()
        client = running.client()
        encrypted = client.Encrypt(api.EncryptRequest(plaintext=b"m" * 32, uid="rules"), timeout=5)
        client.Decrypt(api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="rules"),
                       timeout=5)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        running.stop()
    exported = set(re.findall(r"^# TYPE (\S+) ", page, re.M))
    exported |= {name + suffix for name in exported for suffix in ("_bucket", "_sum", "_count")}
    used = rule_metrics() | metric_names(dashboard_exprs())
    missing = sorted(used - exported - EXPORTED_BY_PROMETHEUS - EXPORTED_BY_APISERVER)
    assert missing == [], f"rules or the dashboard use metrics /metrics does not export: {missing}"
