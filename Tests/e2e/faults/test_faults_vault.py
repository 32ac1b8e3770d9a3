"""Vault faults, seen from kube-apiserver's side of the socket: which gRPC status each call gets,
how long it takes (never past the 3 s deadline), that Status stays cheap and answered, and that
every ciphertext produced before, during and after the fault still decrypts afterwards."""
import os

import grpc
import pytest

from kmstest.faultkit import (  # noqa: F401  (faulty: a fixture)
    DEADLINE, SLACK, Ledger, faulty, proxy_fixture, timed_failure, wait_until_encrypt_works)
from kmstest.kmsclient import api
from kmstest.simctl import clear_faults, fault, reset_stats, stats
from kmstest.tcpproxy import TCPProxy

pytestmark = pytest.mark.simulator_only("fault rules (/_sim/faults: latency, resets, black holes, error answers)")

proxy = proxy_fixture(TCPProxy)


@pytest.fixture()
def ledger(faulty, vault):
    clear_faults(vault)
    book = Ledger()
    for _ in range(3):
        book.encrypt(faulty.client())
    yield book
    clear_faults(vault)
    assert book.verify(faulty.client()) >= 3


def decrypt_call(client, ledger):
    plaintext, ciphertext, key_id = ledger.entries[0]
    return lambda: client.Decrypt(api().DecryptRequest(ciphertext=ciphertext, key_id=key_id), timeout=DEADLINE)


def encrypt_call(client):
    return lambda: client.Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="f"), timeout=DEADLINE)


def test_vault_unreachable_fails_fast_with_unavailable_and_recovers_on_the_same_port(faulty, proxy, ledger):
    client = faulty.client()
    proxy.close()
    try:
        for call in (encrypt_call(client), decrypt_call(client, ledger)):
            code, seconds = timed_failure(call)
            assert code == grpc.StatusCode.UNAVAILABLE
            assert seconds < 1.0  # connection refused is answered at once, not at the deadline
        status = client.Status(api().StatusRequest(), timeout=DEADLINE)  # from the cache
        assert status.version == "v2" and status.key_id
    finally:
        proxy.open()
    wait_until_encrypt_works(client, ledger)


def test_vault_slower_than_the_deadline_gives_deadline_exceeded_within_the_deadline(faulty, vault, ledger):
    client = faulty.client()
    fault(vault, paths=["transit/encrypt", "transit/decrypt"], latency_ms=5000)
    for call in (encrypt_call(client), decrypt_call(client, ledger)):
        code, seconds = timed_failure(call)
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert seconds < DEADLINE + SLACK
    started_status = client.Status(api().StatusRequest(), timeout=DEADLINE)
    assert started_status.healthz == "ok"  # Status never waits for Vault
    clear_faults(vault)
    wait_until_encrypt_works(client, ledger)


def test_vault_slow_but_inside_the_deadline_still_answers(faulty, vault, ledger):
    fault(vault, paths=["transit/encrypt"], latency_ms=1500)
    answer = ledger.encrypt(faulty.client())
    assert answer.ciphertext.startswith(b"vault:v")


def test_vault_sealed_then_unsealed(faulty, vault, vault_server, ledger):
    client = faulty.client()
    vault.root.sys.seal()
    try:
        for call in (encrypt_call(client), decrypt_call(client, ledger)):
            code, seconds = timed_failure(call)
            assert code == grpc.StatusCode.UNAVAILABLE
            assert seconds < DEADLINE
    finally:
        vault.root.sys.submit_unseal_key(vault_server.unseal_key)
    wait_until_encrypt_works(client, ledger)


@pytest.mark.parametrize("status,expected", [
    (429, grpc.StatusCode.RESOURCE_EXHAUSTED), (500, grpc.StatusCode.UNAVAILABLE)])
def test_error_burst_fails_calls_with_a_mapped_status_then_recovers(faulty, vault, ledger, status, expected):
    client = faulty.client()
    fault(vault, paths=["transit/encrypt"], status=status, count=20)
    codes = []
    for _ in range(6):
        code, seconds = timed_failure(encrypt_call(client))
        codes.append(code)
        assert seconds < DEADLINE
    assert set(codes) == {expected}
    clear_faults(vault)
    wait_until_encrypt_works(client, ledger, timeout=5)


def test_a_single_500_is_absorbed_by_the_brokers_retry(faulty, vault, ledger):
    fault(vault, paths=["transit/encrypt"], status=500, count=1)
    reset_stats(vault)
    ledger.encrypt(faulty.client())
    assert stats(vault)[f"{vault.mount}/encrypt/{vault.key}"] == 2  # the 500, then the retry


def test_connection_resets_mid_request_fail_with_unavailable_then_recover(faulty, vault, ledger):
    client = faulty.client()
    fault(vault, paths=["transit/decrypt"], drop=True, count=12)
    codes = set()
    for _ in range(3):
        code, seconds = timed_failure(decrypt_call(client, ledger))
        codes.add(code)
        assert seconds < DEADLINE
    assert codes == {grpc.StatusCode.UNAVAILABLE}
    clear_faults(vault)
    ledger.encrypt(client)


def test_a_single_reset_is_absorbed(faulty, vault, ledger):
    fault(vault, paths=["transit/encrypt"], drop=True, count=1)
    reset_stats(vault)
    ledger.encrypt(faulty.client())
    assert stats(vault)[f"{vault.mount}/encrypt/{vault.key}"] == 2  # the reset, then the retry
