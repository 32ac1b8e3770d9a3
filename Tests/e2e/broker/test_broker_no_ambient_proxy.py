"""Issue 13 finding 3: no ambient proxy, key log or curl configuration reaches the broker.

kubeadm copies the node's proxy variables into static Pods. Before the fix, with `http_proxy` set
the proxy received the AppRole login body with the secret ID, and with `SSLKEYLOGFILE` set the TLS
secrets of the Vault connection were written to a 0644 file. Now every easy handle sets
CURLOPT_PROXY "" and CURLOPT_NOPROXY "*", the broker drops every variable outside its allowlist
before libcurl starts, and only `--vault-proxy` names a proxy. Against a real OpenBao with a TLS
listener; a plain TCP listener stands in for the proxy and records every connection."""
import os
import socket
import threading
import time

import pytest

from kmstest import brokerpki
from kmstest import vaultenv
from kmstest.brokerhelpers import events, round_trip
from kmstest.openbao import OpenBaoServer
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.is_external(), reason="starts its own OpenBao with a TLS listener")

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


class ProxyStandIn(threading.Thread):
    """Accepts on a free loopback port and keeps the first bytes of every connection."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.received = []
        self.stopped = False
        self.start()

    def run(self):
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(2)
            try:
                self.received.append(conn.recv(4096))
            except OSError:
                self.received.append(b"")
            conn.close()

    def stop(self):
        self.stopped = True
        self.join(5)
        self.listener.close()


@pytest.fixture(scope="module")
def tls_openbao(tmp_path_factory):
    pki = brokerpki.write_pki(str(tmp_path_factory.mktemp("pki")))
    server = OpenBaoServer(
        str(tmp_path_factory.mktemp("openbao")), tls={"cert": pki["server"], "key": pki["server-key"], "ca": pki["ca"]})
    try:
        setup = vaultenv.VaultSetup(
            f"https://localhost:{server.port}", server.root_token, str(tmp_path_factory.mktemp("vault")),
            verify=pki["ca"])
        setup.ca = pki["ca"]
        yield setup
    finally:
        server.stop()


@pytest.fixture()
def proxy():
    stand_in = ProxyStandIn()
    yield stand_in
    stand_in.stop()


def test_proxy_variables_in_the_environment_are_ignored(tls_openbao, proxy, workdir):
    env = {**os.environ, **{name: proxy.url for name in PROXY_VARIABLES}, "NO_PROXY": "", "no_proxy": ""}
    running = Plugin(tls_openbao, workdir, env=env, extra_args=["--tls-ca-file", tls_openbao.ca])
    try:
        round_trip(running)
        time.sleep(0.5)
        assert proxy.received == [], proxy.received
        scrubbed = events(running, "broker.environment.scrubbed")
        removed = scrubbed[0]["removed"].split(",") if scrubbed else []
        assert set(PROXY_VARIABLES) | {"NO_PROXY", "no_proxy"} <= set(removed), scrubbed
        assert events(running, "broker.start")[0]["proxy"] == "none"
    finally:
        running.stop()


def test_no_tls_key_log_is_written_whatever_sslkeylogfile_says(tls_openbao, workdir):
    key_log = os.path.join(workdir, "tls-keys.log")
    running = Plugin(tls_openbao, workdir, env={**os.environ, "SSLKEYLOGFILE": key_log},
                     extra_args=["--tls-ca-file", tls_openbao.ca])
    try:
        round_trip(running)
        assert not os.path.exists(key_log)
        scrubbed = events(running, "broker.environment.scrubbed")
        assert scrubbed and "SSLKEYLOGFILE" in scrubbed[0]["removed"].split(","), scrubbed
    finally:
        running.stop()


def test_an_explicit_vault_proxy_is_used_and_logged_at_start(tls_openbao, proxy, workdir):
    running = Plugin(tls_openbao, workdir, wait_ready=False,
                     extra_args=["--tls-ca-file", tls_openbao.ca, "--vault-proxy", proxy.url])
    try:
        deadline = time.time() + 10
        while time.time() < deadline and not proxy.received:
            time.sleep(0.1)
        # libcurl asks the proxy for a tunnel to Vault (the TLS session runs inside it).
        assert proxy.received and proxy.received[0].startswith(b"CONNECT localhost:"), proxy.received
        warning = events(running, "broker.vault.proxy")
        assert warning and warning[0]["level"] == "warning" and warning[0]["proxy"] == proxy.url
        assert events(running, "broker.start")[0]["proxy"] == proxy.url
    finally:
        running.stop()
