"""The health port the way kubelets and HashiCorp's plugin expect it: `--health-mode hashicorp`
(`/healthz` 200 while the process lives, `/readyz` 200 once gRPC serves, else 500 "plugin is not
ready"), our deeper readiness as the default and always at `/readyz/deep`, and `--health-address`
(loopback unless 0.0.0.0 is asked for, so a hostNetwork Pod's httpGet probe can reach it)."""
import socket
import time
import urllib.error
import urllib.request

import pytest

from kmstest.plugin import Plugin
from kmstest.ports import free_port
from kmstest.splitplugin import SplitPlugin


def get(host, port, path, timeout=5):
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:
        return None, str(error.reason)


def wait_for(port, path, status, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = get("127.0.0.1", port, path)
        if last[0] == status:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{path} stayed {last}, wanted {status}")


# path -> (status while the broker is away, status once it serves), per mode.
EXPECTED = {
    "hashicorp": {"/healthz": (200, 200), "/readyz": (500, 200), "/livez": (503, 200), "/readyz/deep": (503, 200)},
    None: {"/healthz": (503, 200), "/readyz": (503, 200), "/livez": (503, 200), "/readyz/deep": (503, 200)},
}


@pytest.mark.parametrize("mode", ["hashicorp", None])
def test_each_health_mode_answers_as_documented_before_and_after_the_broker_serves(vault, workdir, mode):
    port = free_port()
    front_args = ["--health-port", str(port), "--metrics-port", "0"]
    if mode:
        front_args += ["-health-mode=" + mode]  # Go's spelling, as a HashiCorp command line would write it
    split = SplitPlugin(vault, workdir, start_front=False, front_args=front_args)
    try:
        split.broker.stop()  # the front starts with no broker to talk to
        split.start_front()
        wait_for(port, "/healthz", EXPECTED[mode]["/healthz"][0])
        for path, (before, _) in EXPECTED[mode].items():
            assert get("127.0.0.1", port, path)[0] == before, path
        if mode == "hashicorp":
            assert get("127.0.0.1", port, "/readyz") == (500, "plugin is not ready\n")
            assert get("127.0.0.1", port, "/healthz") == (200, "ok\n")
        split.start_broker()
        split.wait_healthy()
        wait_for(port, "/readyz", 200)
        for path, (_, after) in EXPECTED[mode].items():
            wait_for(port, path, after, timeout=20)
        assert get("127.0.0.1", port, "/nope")[0] == 404
    finally:
        split.stop()


def connects(host, port):
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) == 0


def test_the_health_port_binds_loopback_unless_every_interface_is_asked_for(vault, workdir):
    """127.0.0.2 stands in for the node's address a hostNetwork Pod's probe would use: it is
    reachable only when the port is bound to 0.0.0.0."""
    port = free_port()
    running = Plugin(vault, workdir, extra_args=["--health-port", str(port), "--metrics-port", "0"])
    try:
        assert get("127.0.0.1", port, "/livez")[0] == 200
        assert not connects("127.0.0.2", port)
    finally:
        running.stop()
    port = free_port()
    running = Plugin(vault, workdir, extra_args=[
        "-health-port", str(port), "-health-address=0.0.0.0", "--metrics-port=0", "--health-mode", "hashicorp"])
    try:
        assert get("127.0.0.2", port, "/healthz") == (200, "ok\n")
        assert get("127.0.0.2", port, "/readyz")[0] == 200
        listening = [e for e in running.log_events() if e.get("event") == "health.listening"]
        assert listening and listening[0]["address"] == f"0.0.0.0:{port}"
    finally:
        running.stop()


def test_an_ipv6_health_address_is_bound_and_answers(vault, workdir):
    port = free_port()
    running = Plugin(vault, workdir, extra_args=["--health-port", str(port), "--health-address", "::1",
                                                 "--metrics-port", "0"])
    try:
        with socket.create_connection(("::1", port), timeout=5) as connection:
            connection.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = connection.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 200"), answer
        assert not connects("127.0.0.1", port)  # IPv6 only: 0.0.0.0 is asked for separately
    finally:
        running.stop()
