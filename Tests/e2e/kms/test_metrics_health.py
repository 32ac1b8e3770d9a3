"""Health and metrics ports of the front (loopback only): /livez /readyz /healthz and /metrics in
Prometheus text, covering both processes; checked with promtool where it is installed."""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from kmstest.kmsclient import api
from kmstest.plugin import Plugin
from kmstest.ports import free_port


def get(port, path, timeout=5):
    """(status, body) of a GET on 127.0.0.1:port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(port, path, status, timeout=45):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = get(port, path)
        if last[0] == status:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{path} stayed {last}, wanted {status}")


class Ports:
    def __init__(self):
        self.health = free_port()
        self.metrics = free_port()

    def args(self):
        return ("--health-port", str(self.health), "--metrics-port", str(self.metrics))


@pytest.fixture(scope="module")
def observed(vault, tmp_path_factory):
    ports = Ports()
    workdir = str(tmp_path_factory.mktemp("observed"))
    os.chmod(workdir, 0o755)
    running = Plugin(vault, workdir, extra_args=ports.args())
    running.ports = ports
    wait_for(ports.health, "/livez", 200, timeout=5)
    yield running
    running.stop()


def scrape(plugin):
    status, body = get(plugin.ports.metrics, "/metrics")
    assert status == 200
    return body


def samples(text):
    """{(name, labels-string): value} of every sample line."""
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        found[name_labels] = float(value)
    return found


def test_health_endpoints_answer_ok_when_both_processes_serve(observed):
    assert get(observed.ports.health, "/livez") == (200, "ok\n")
    assert get(observed.ports.health, "/healthz") == (200, "ok\n")
    assert get(observed.ports.health, "/readyz") == (200, "ok\n")
    assert get(observed.ports.health, "/metrics")[0] == 404
    assert get(observed.ports.metrics, "/livez")[0] == 404


def test_ports_are_bound_on_loopback_only(observed):
    with open("/proc/net/tcp") as handle:
        rows = handle.read().splitlines()[1:]
    listening = {}
    for row in rows:
        fields = row.split()
        local, state = fields[1], fields[3]
        if state == "0A":
            address, port = local.split(":")
            listening[int(port, 16)] = address
    for port in (observed.ports.health, observed.ports.metrics):
        assert listening.get(port) == "0100007F", listening.get(port)


def test_metrics_show_call_figures_and_broker_figures(observed):
    client = observed.client()
    encrypted = client.Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="uid-metrics-1"), timeout=3)
    client.Decrypt(
        api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="uid-metrics-2"), timeout=3)
    client.Status(api().StatusRequest(), timeout=3)
    values = samples(scrape(observed))
    assert values[
        'rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="v2.KeyManagementService",'
        'rpc_method="Encrypt",rpc_grpc_status_code="0",rpc_response_status_code="OK"}'] >= 1
    assert values['vault_kube_kms_requests_total{method="Decrypt"}'] >= 1
    assert values['vault_kube_kms_vault_requests_total{operation="encrypt"}'] >= 1
    assert values['vault_kube_kms_vault_requests_total{operation="decrypt"}'] >= 1
    assert values['vault_kube_kms_login_total{outcome="success"}'] >= 1
    assert values["vault_kube_kms_token_valid"] == 1
    assert values["vault_kube_kms_token_expiry_seconds"] > 0
    assert values["vault_kube_kms_key_active_version"] >= 1
    assert values["vault_kube_kms_broker_connection_state"] == 1
    assert values['process_resident_memory_bytes{process="broker"}'] > 0
    assert values['process_open_fds{process="front"}'] > 0


def test_hashicorp_names_and_units_sit_next_to_ours(observed):
    """HashiCorp's vault-kube-kms series (docs/metrics.md): the gRPC histogram in milliseconds with a
    numeric status code, and the vso_client_operations_* Vault client families, with the same
    calls counted as in our own families."""
    client = observed.client()
    for index in range(3):
        client.Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid=f"uid-hc-{index}"), timeout=3)
    text = scrape(observed)
    values = samples(text)
    labels = 'rpc_service="v2.KeyManagementService",rpc_method="Encrypt",rpc_grpc_status_code="0"'
    ms_count = values[f'rpc_server_duration_milliseconds_count{{rpc_system="grpc",{labels}}}']
    s_count = values[f'rpc_server_call_duration_seconds_count{{rpc_system="grpc",{labels},rpc_response_status_code="OK"}}']
    assert ms_count == s_count >= 3
    ms_sum = values[f'rpc_server_duration_milliseconds_sum{{rpc_system="grpc",{labels}}}']
    s_sum = values[f'rpc_server_call_duration_seconds_sum{{rpc_system="grpc",{labels},rpc_response_status_code="OK"}}']
    assert abs(ms_sum - s_sum * 1000) < 0.01, (ms_sum, s_sum)
    assert values[f'rpc_server_duration_milliseconds_bucket{{rpc_system="grpc",{labels},le="+Inf"}}'] == ms_count
    assert f'rpc_server_duration_milliseconds_bucket{{rpc_system="grpc",{labels},le="7500"}}' in values
    writes = values['vso_client_operations_total{operation="write",vault_connection="default"}']
    assert writes == (values['vault_kube_kms_vault_requests_total{operation="encrypt"}']
                      + values['vault_kube_kms_vault_requests_total{operation="decrypt"}']
                      + values['vault_kube_kms_vault_requests_total{operation="other"}'])
    assert writes >= 3
    assert values['vso_client_operations_total{operation="login",vault_connection="default"}'] >= 1
    assert values['vso_client_operations_total{operation="read",vault_connection="default"}'] >= 1
    assert values['vso_client_operations_errors_total{operation="write",vault_connection="default"}'] == 0
    assert values['vso_client_operations_time_seconds_count{operation="write",vault_connection="default"}'] == writes
    assert values['vso_client_operations_time_seconds_bucket{operation="write",vault_connection="default",le="+Inf"}'] == writes
    assert values['vso_client_operations_time_seconds_bucket{operation="write",vault_connection="default",le="10"}'] <= writes
    assert "# TYPE vso_client_operations_time_seconds histogram" in text


def test_key_id_hashes_are_sha256_of_the_key_ids_as_kube_apiserver_labels_them(observed):
    """The active key_id's hash on our page equals `sha256:` + hex SHA-256 of the key_id Status
    returns (k8s.io/apiserver envelope/metrics getHash), so PromQL can join the two pages."""
    key_id = observed.client().Status(api().StatusRequest(), timeout=3).key_id
    expected = "sha256:" + hashlib.sha256(key_id.encode()).hexdigest()
    values = samples(scrape(observed))
    version = key_id.split("-")[1][1:]
    assert values[f'vault_kube_kms_key_id_hash_info{{key_id_hash="{expected}",key_version="{version}",state="active"}}'] == 1
    assert 0 < values["vault_kube_kms_key_active_since_timestamp_seconds"] <= time.time()
    assert values["vault_kube_kms_foreign_key_id_decrypts_total"] == 0


def test_no_label_carries_a_path_a_key_name_or_a_uid(observed, vault):
    observed.client().Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="uid-secret-label"), timeout=3)
    text = scrape(observed)
    key_id = observed.client().Status(api().StatusRequest(), timeout=3).key_id
    labels = re.findall(r'="((?:[^"\\]|\\.)*)"', "\n".join(l for l in text.splitlines() if not l.startswith("#")))
    assert labels
    for value in labels:
        for forbidden in ("uid-", vault.mount + "/", vault.key_path, "/", key_id, observed.socket):
            assert forbidden not in value, (forbidden, value)
    assert vault.key not in [value for value in labels]


def test_promtool_accepts_the_live_metrics_page(observed):
    assert shutil.which("promtool"), "promtool missing: scripts/install-deps.sh installs the Debian package prometheus"
    observed.client().Status(api().StatusRequest(), timeout=3)
    text = scrape(observed)
    assert "vault_kube_kms_vault_requests_total" in text  # broker figures are there
    assert "rpc_server_duration_milliseconds_count" in text and "vso_client_operations_total" in text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    # The page parses (exit 1 would be a parse error), and promtool's lint finds exactly one thing:
    # the unit in HashiCorp's name, which a drop-in must keep (docs/metrics.md).
    assert checked.returncode == 3, checked.stdout + checked.stderr
    assert (checked.stdout + checked.stderr).splitlines() == [
        'rpc_server_duration_milliseconds use base unit "seconds" instead of "milliseconds"']
    ours = "\n".join(line for line in text.splitlines() if "rpc_server_duration_milliseconds" not in line) + "\n"
    checked = subprocess.run(["promtool", "check", "metrics"], input=ours, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_malformed_and_oversized_http_requests_get_4xx_and_the_port_keeps_serving(observed):
    port = observed.ports.health
    for request, status in [
        (b"POST /livez HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
        (b"GET /livez HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
        (b"GET /livez HTTP/1.1\nHost: x\n\n", b"400"),
        (b"\x16\x03\x01\x00\x05hello\r\n\r\n", b"400"),
    ]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(request)
            answer = connection.recv(4096)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:40]
    assert get(port, "/livez")[0] == 200


def test_readyz_fails_while_vault_is_sealed_and_recovers_after_unseal(vault_server, vault, workdir):
    if not getattr(vault_server, "unseal_key", None):
        pytest.skip("sealing needs the simulator's unseal key")
    ports = Ports()
    running = Plugin(vault, workdir, extra_args=ports.args())
    try:
        wait_for(ports.health, "/readyz", 200, timeout=20)
        vault.root.sys.seal()
        try:
            deadline = time.time() + 45
            status = None
            while time.time() < deadline:
                try:  # a failing call makes the broker look at Vault sooner
                    running.client().Encrypt(api().EncryptRequest(plaintext=b"x" * 32, uid="s"), timeout=2)
                except Exception:  # noqa: BLE001 - the call is expected to fail while sealed
                    pass
                status, body = get(ports.health, "/readyz")
                if status == 503:
                    break
                time.sleep(1)
            assert status == 503, body
            assert get(ports.health, "/livez")[0] == 200  # both processes are alive
            values = samples(get(ports.metrics, "/metrics")[1])
            assert values["vault_kube_kms_broker_healthy"] == 0
        finally:
            vault.root.sys.submit_unseal_key(vault_server.unseal_key)
        wait_for(ports.health, "/readyz", 200, timeout=45)
    finally:
        running.stop()


def test_livez_fails_while_the_broker_is_stopped_and_recovers(vault, workdir):
    ports = Ports()
    running = Plugin(vault, workdir, extra_args=ports.args())
    try:
        wait_for(ports.health, "/livez", 200, timeout=20)
        os.kill(running.proc.pid, signal.SIGSTOP)
        try:
            assert get(ports.health, "/readyz")[0] == 503  # the broker cannot answer STATUS
            status, body = wait_for(ports.health, "/livez", 503, timeout=30)
            assert "heartbeat" in body
        finally:
            os.kill(running.proc.pid, signal.SIGCONT)
        wait_for(ports.health, "/livez", 200, timeout=20)
    finally:
        running.stop()


def test_port_zero_disables_the_endpoints(vault, workdir):
    running = Plugin(vault, workdir, extra_args=("--health-port", "0", "--metrics-port", "0"))
    try:
        events = [e.get("event") for e in running.log_events()]
        assert "broker.ready" in events
        assert not any(e.get("event") in ("health.listening", "metrics.listening") for e in running.log_events())
    finally:
        running.stop()
