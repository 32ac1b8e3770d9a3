"""Issue 13 finding 6: health and metrics that a local user cannot take down or impersonate.

Before the fix, 16 idle TCP connections from any uid filled the health server, /livez went
unanswered (the kubelet then restarts the plugin and kube-apiserver loses KMS), and a port taken
before start left the front logging a warning while the squatter answered the probes. Now a
request head must arrive within 2 s, a full server closes its oldest idle connection to make
room, and a port that cannot be bound (after 3 attempts) is an error in the log and
`vault_kube_kms_observability_port_bound{port="health"} 0` in /metrics."""
import os
import socket
import time
import urllib.request

import pytest

from kmstest.brokerhelpers import events
from kmstest.plugin import Plugin
from kmstest.ports import free_port


def _get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_sixteen_idle_connections_do_not_take_livez_down(plugin_factory):
    port = free_port()
    running = plugin_factory(["--health-port", str(port), "--metrics-port", "0"])
    held = []
    try:
        for _ in range(16):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=3))
        time.sleep(0.3)
        # The server is full of idle peers; a probe still gets its answer (one of them is evicted).
        assert _get(port, "/livez") == 200
        assert _get(port, "/readyz") == 200
        # A peer that never sends a request head is answered 408 and closed within ~2 s.
        survivor = held[-1]
        survivor.settimeout(4)
        started = time.time()
        data = survivor.recv(4096)
        assert data.startswith(b"HTTP/1.1 408") and time.time() - started < 3.5, data
    finally:
        for connection in held:
            connection.close()


def test_a_squatted_health_port_is_reported_not_silently_ignored(plugin_factory):
    port, metrics_port = free_port(), free_port()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen(8)
    try:
        running = plugin_factory(["--health-port", str(port), "--metrics-port", str(metrics_port)])
        failed = events(running, "health.bind_failed")
        assert failed and failed[0]["level"] == "error" and failed[0]["attempts"] == "3", running.log_text()
        # The log names who holds the port (this test, the squatter): visible without /livez.
        assert failed[0]["holder_uid"] == str(os.getuid()), failed[0]
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'vault_kube_kms_observability_port_bound{port="health"} 0' in text, text
    finally:
        squatter.close()


def test_a_free_health_port_is_reported_bound(plugin_factory):
    port, metrics_port = free_port(), free_port()
    plugin_factory(["--health-port", str(port), "--metrics-port", str(metrics_port)])
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert 'vault_kube_kms_observability_port_bound{port="health"} 1' in text


@pytest.fixture()
def plugin_factory(vault, workdir):
    started = []

    def start(extra):
        running = Plugin(vault, workdir, extra_args=extra)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
