"""`vault-kube-kms probe`: a KMS v2 client for exec probes. Succeeds against a healthy plugin with one
line per step, fails non-zero when the socket is absent or Vault is sealed."""
import os
import re
import subprocess

import pytest

from kmstest.plugin import installed_bin_dir
from kmstest.sources import import_lines

LINE = re.compile(r"^(status|encrypt|decrypt) (ok|FAIL) \d+\.\d ms ")


def probe(*args, timeout=30):
    binary = os.path.join(installed_bin_dir(), "vault-kube-kms")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_KUBE_KMS_")}
    return subprocess.run([binary, "probe", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_probe_succeeds_against_a_healthy_plugin_with_one_line_per_step(plugin):
    result = probe("--listen-address", f"unix://{plugin.socket}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["status", "encrypt", "decrypt"]
    assert all(LINE.match(line) and " ok " in line for line in lines), lines
    assert "healthz=ok" in lines[0]


def test_probe_reads_the_address_from_the_environment(plugin):
    binary = os.path.join(installed_bin_dir(), "vault-kube-kms")
    env = {**os.environ, "VAULT_KUBE_KMS_LISTEN_ADDRESS": f"unix://{plugin.socket}"}
    result = subprocess.run([binary, "probe"], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_probe_fails_non_zero_when_the_socket_is_absent(workdir):
    result = probe("--listen-address", f"unix://{workdir}/missing.sock", "--timeout-millis", "1000")
    assert result.returncode != 0
    assert result.stdout.startswith("status FAIL"), result.stdout
    assert "encrypt" not in result.stdout


def test_probe_fails_non_zero_while_vault_is_sealed(vault_server, vault, plugin):
    if not getattr(vault_server, "unseal_key", None):
        pytest.skip("sealing needs the simulator's unseal key")
    vault.root.sys.seal()
    try:
        result = probe("--listen-address", f"unix://{plugin.socket}", "--timeout-millis", "2000")
        assert result.returncode != 0, result.stdout
        assert "FAIL" in result.stdout
    finally:
        vault.root.sys.submit_unseal_key(vault_server.unseal_key)
    plugin.wait_healthy(timeout=60)


def test_probe_rejects_a_malformed_address():
    result = probe("--listen-address", "tcp://127.0.0.1:1")
    assert result.returncode != 0
    assert "unix://" in result.stderr or "unix://" in result.stdout


def test_the_probe_keeps_the_broker_binary_free_of_the_grpc_server_and_kmsv2api():
    bad = [entry for entry in import_lines("Sources/KMSProbe")
           if entry[2] in {"Front", "CNGHTTP2", "KMSv2API", "SwiftProtobuf", "Broker"}]
    assert bad == []
    binary = os.path.join(installed_bin_dir(), "vault-kube-kms")
    symbols = subprocess.run(["nm", "-C", binary], capture_output=True, text=True, check=True).stdout
    assert "KMSProbe" in symbols  # the probe is in there
    for forbidden in ("KMSv2API", "SwiftProtobuf", "GRPCServer", "HTTP2Connection"):
        assert forbidden not in symbols, forbidden
