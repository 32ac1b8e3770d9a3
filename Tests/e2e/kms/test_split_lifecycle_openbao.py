"""The split topology's drain on SIGTERM with a real OpenBao behind it: the suite's fault proxy
holds an Encrypt in flight (1.5 s latency), and OpenBao's audit log counts the broker's
revoke-self (test_split_lifecycle.py runs the same scenarios on the simulator's latency rule)."""
import os
import signal
import time

import pytest

from kmstest import vaultenv
from kmstest.faultkit import via
from kmstest.faultproxy import FaultProxy
from kmstest.kmsclient import api
from kmstest.polling import wait_for
from kmstest.splitplugin import SplitPlugin

pytestmark = pytest.mark.skipif(vaultenv.mode() != "openbao", reason="needs an OpenBao of its own with an audit log")


@pytest.fixture()
def held(tmp_path_factory):
    """(VaultSetup seen through a fault proxy that delays encrypts, the proxy, the server)."""
    server = vaultenv.start_server(str(tmp_path_factory.mktemp("server")), audit=True)
    setup = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("vault")))
    proxy = FaultProxy(server.address)
    yield via(setup, proxy.address), proxy, server
    proxy.close()
    server.stop()


def test_front_sigterm_lets_a_call_in_flight_to_openbao_finish_then_exits_0(held, workdir):
    vault, proxy, _ = held
    running = SplitPlugin(vault, workdir)
    try:
        proxy.set(paths=["transit/encrypt"], latency_ms=1500)
        call = running.client().Encrypt.future(api().EncryptRequest(plaintext=os.urandom(32), uid="drain"),
                                               timeout=10)
        assert wait_for(lambda: proxy.hits >= 1), "the encrypt never reached the proxy"
        assert not call.done()
        start = time.monotonic()
        running.front.proc.send_signal(signal.SIGTERM)
        assert call.result().ciphertext.startswith(b"vault:v1:")
        assert running.front.proc.wait(10) == 0
        assert time.monotonic() - start < 5.5
        assert not os.path.exists(running.socket)
        assert running.broker.proc.poll() is None
    finally:
        running.stop()


def test_broker_sigterm_finishes_the_openbao_call_then_revokes_its_token(held, workdir):
    vault, proxy, server = held
    running = SplitPlugin(vault, workdir)
    try:
        revokes_before = server.request_counts().get("auth/token/revoke-self", 0)
        proxy.set(paths=["transit/encrypt"], latency_ms=1500)
        call = running.client().Encrypt.future(api().EncryptRequest(plaintext=os.urandom(32), uid="drain"),
                                               timeout=10)
        assert wait_for(lambda: proxy.hits >= 1), "the encrypt never reached the proxy"
        assert not call.done()
        running.broker.proc.send_signal(signal.SIGTERM)
        assert call.result().ciphertext.startswith(b"vault:v1:")
        assert running.broker.proc.wait(10) == 0
        assert wait_for(lambda: server.request_counts().get("auth/token/revoke-self", 0) == revokes_before + 1, 5)
        assert running.broker.events("broker.token.revoked")
        assert running.front.proc.poll() is None
    finally:
        running.stop()
