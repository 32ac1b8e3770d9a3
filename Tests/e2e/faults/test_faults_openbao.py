"""Faults with a real OpenBao behind them: the suite's own fault proxy (faultproxy.py) between the
plugin and OpenBao (latency, resets, a black hole, answers of 429/500/503), OpenBao stopped with
SIGSTOP and resumed, and OpenBao killed (SIGKILL) and restarted with its raft storage on disk. The
ledger of every ciphertext the plugin returned proves nothing is lost."""
import os
import time

import grpc
import pytest

from kmstest import vaultenv
from kmstest.faultkit import (  # noqa: F401  (faulty: a fixture)
    DEADLINE, SLACK, Ledger, faulty, proxy_fixture, timed_failure, wait_until_encrypt_works)
from kmstest.faultproxy import FaultProxy
from kmstest.kmsclient import api
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.mode() != "openbao", reason="starts, stops and kills its own OpenBao")

proxy = proxy_fixture(FaultProxy)


@pytest.fixture()
def ledger(faulty, proxy):
    proxy.clear()
    book = Ledger()
    for _ in range(3):
        book.encrypt(faulty.client())
    yield book
    proxy.clear()
    wait_until_encrypt_works(faulty.client(), book)
    assert book.verify(faulty.client()) >= 4


def encrypt_call(client):
    return lambda: client.Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="f"), timeout=DEADLINE)


def decrypt_call(client, ledger):
    _, ciphertext, key_id = ledger.entries[0]
    return lambda: client.Decrypt(api().DecryptRequest(ciphertext=ciphertext, key_id=key_id), timeout=DEADLINE)


def test_latency_inside_the_deadline_is_waited_for(faulty, proxy, ledger):
    proxy.set(paths=["transit/encrypt"], latency_ms=1200)
    started = time.monotonic()
    answer = ledger.encrypt(faulty.client())
    assert answer.ciphertext.startswith(b"vault:v1:") and time.monotonic() - started >= 1.2
    assert proxy.hits >= 1


def test_a_black_hole_gives_deadline_exceeded_within_the_deadline_and_status_still_answers(faulty, proxy, ledger):
    client = faulty.client()
    proxy.set(paths=["transit/encrypt", "transit/decrypt"], black_hole=True)
    for call in (encrypt_call(client), decrypt_call(client, ledger)):
        code, seconds = timed_failure(call)
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert seconds < DEADLINE + SLACK
    assert client.Status(api().StatusRequest(), timeout=DEADLINE).healthz == "ok"  # from the key cache


def test_one_reset_is_retried_and_the_call_succeeds(faulty, proxy, ledger):
    proxy.set(paths=["transit/encrypt"], reset=True, count=1)
    assert ledger.encrypt(faulty.client()).ciphertext.startswith(b"vault:v1:")
    assert proxy.hits == 1


def test_resets_on_every_attempt_fail_fast_with_unavailable(faulty, proxy, ledger):
    proxy.set(paths=["transit/encrypt"], reset=True)
    code, seconds = timed_failure(encrypt_call(faulty.client()))
    assert code == grpc.StatusCode.UNAVAILABLE and seconds < DEADLINE


@pytest.mark.parametrize("status,expected", [
    (429, grpc.StatusCode.RESOURCE_EXHAUSTED), (500, grpc.StatusCode.UNAVAILABLE), (503, grpc.StatusCode.UNAVAILABLE)])
def test_error_answers_map_to_a_grpc_status_and_the_plugin_recovers(faulty, proxy, ledger, status, expected):
    proxy.set(paths=["transit/encrypt"], status=status, count=12)
    codes = set()
    for _ in range(4):
        code, seconds = timed_failure(encrypt_call(faulty.client()))
        codes.add(code)
        assert seconds < DEADLINE
    assert codes == {expected}


# --- the OpenBao process itself -------------------------------------------------------------------

@pytest.fixture()
def persistent(tmp_path_factory):
    """An OpenBao with one-node raft storage on disk, initialised and unsealed by the suite."""
    workdir = str(tmp_path_factory.mktemp("raft"))
    server = vaultenv.start_server(workdir, storage_dir=os.path.join(workdir, "data"))
    setup = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("vault")))
    setup.server = server
    yield setup
    server.stop()


def test_openbao_stopped_with_sigstop_gives_deadline_exceeded_then_sigcont_recovers(vault, vault_server, workdir):
    running = Plugin(vault, workdir)
    book = Ledger()
    try:
        client = running.client()
        for _ in range(3):
            book.encrypt(client)
        vault_server.pause()
        try:
            assert vault_server.is_paused(), "OpenBao is not stopped"
            code, seconds = timed_failure(encrypt_call(client))
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED and seconds < DEADLINE + SLACK
            assert client.Status(api().StatusRequest(), timeout=DEADLINE).healthz == "ok"
        finally:
            vault_server.resume()
        wait_until_encrypt_works(client, book)
        assert book.verify(client) == 4
    finally:
        running.stop()


def test_openbao_killed_and_restarted_with_its_data_loses_nothing(persistent, workdir):
    running = Plugin(persistent, workdir)
    book = Ledger()
    try:
        client = running.client()
        for _ in range(5):
            book.encrypt(client)
        persistent.server.kill()
        code, seconds = timed_failure(encrypt_call(client))
        assert code == grpc.StatusCode.UNAVAILABLE and seconds < DEADLINE
        persistent.server.restart()  # same port, the same raft data, unsealed with the same key
        wait_until_encrypt_works(client, book, timeout=30)
        assert book.verify(client) == 6
        # The broker's token survived the restart with the token store: no login was needed.
        assert len([e for e in running.log_events() if e.get("event") == "broker.login.ok"]) == 1
    finally:
        running.stop()
