"""Helpers shared by the test_broker_* suites: Status polling, log events and a round trip."""
import os
import time

import grpc

from .kmsclient import api


def healthz(plugin):
    try:
        return plugin.client().Status(api().StatusRequest(), timeout=2).healthz
    except grpc.RpcError as error:
        return f"rpc error {error.code()}"


def wait_healthz(plugin, predicate, timeout=20):
    """Polls Status until `predicate(healthz)` holds; returns the last healthz."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if plugin.proc.poll() is not None:
            raise RuntimeError(f"broker exited with {plugin.proc.returncode}:\n{plugin.log_text()}")
        if os.path.exists(plugin.socket):
            last = healthz(plugin)
            if predicate(last):
                return last
        time.sleep(0.1)
    raise AssertionError(f"healthz never matched (last: {last!r}):\n{plugin.log_text()[-4000:]}")


def events(plugin, message):
    return [e for e in plugin.log_events() if e.get("event") == message]


def round_trip(plugin, plaintext=None):
    plaintext = plaintext or os.urandom(32)
    client = plugin.client()
    encrypted = client.Encrypt(api().EncryptRequest(plaintext=plaintext, uid="e2e"), timeout=5)
    decrypted = client.Decrypt(
        api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="e2e"), timeout=5)
    assert decrypted.plaintext == plaintext
    return encrypted
