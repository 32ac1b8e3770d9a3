"""Helpers of the fault-injection suites: the plugin behind a proxy (tcpproxy.TCPProxy or
faultproxy.FaultProxy) in front of Vault, and a ledger of every ciphertext produced so that a test
can prove nothing was lost. The simulator's own fault rules are set through simctl."""
import os
import threading
import time
import types

import grpc
import pytest

from .kmsclient import api
from .plugin import Plugin

DEADLINE = 3.0  # kube-apiserver's default KMS timeout
SLACK = 0.5  # scheduling slack on a loaded 2-core CI machine


def proxy_fixture(kind):
    """A module fixture `proxy`: a `kind` proxy (TCPProxy, faultproxy.FaultProxy) in front of the
    module's Vault, closed after the module."""
    @pytest.fixture(scope="module")
    def proxy(vault):
        running = kind(vault.address)
        yield running
        running.close()
    return proxy


@pytest.fixture(scope="module")
def faulty(vault, proxy, tmp_path_factory):
    """A plugin that reaches Vault through the module's `proxy`."""
    running = Plugin(via(vault, proxy.address), str(tmp_path_factory.mktemp("faulty")))
    yield running
    running.stop()


def via(vault, address):
    """The same Vault set-up seen at another address (the proxy)."""
    view = types.SimpleNamespace(**{k: getattr(vault, k) for k in (
        "key_path", "auth_mount", "role_id", "secret_id_path", "secret_id", "mount", "key", "root")})
    view.address = address
    return view


class Ledger:
    """Every (plaintext, ciphertext, key_id) the plugin returned; `verify` decrypts them all."""

    def __init__(self):
        self.entries = []
        self.lock = threading.Lock()

    def encrypt(self, client, timeout=DEADLINE):
        plaintext = os.urandom(32)
        answer = client.Encrypt(api().EncryptRequest(plaintext=plaintext, uid="ledger"), timeout=timeout)
        with self.lock:
            self.entries.append((plaintext, bytes(answer.ciphertext), answer.key_id))
        return answer

    def verify(self, client):
        for plaintext, ciphertext, key_id in list(self.entries):
            back = client.Decrypt(api().DecryptRequest(ciphertext=ciphertext, key_id=key_id, uid="v"), timeout=10)
            assert back.plaintext == plaintext
        return len(self.entries)


def timed_failure(call):
    """Runs `call`, which must fail; returns (grpc status code, seconds)."""
    started = time.monotonic()
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), time.monotonic() - started
    raise AssertionError("the call succeeded during the fault")


def wait_until_encrypt_works(client, ledger, timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            return ledger.encrypt(client)
        except grpc.RpcError as error:
            last = error.code()
            time.sleep(0.2)
    raise AssertionError(f"Encrypt still failing after {timeout}s: {last}")
