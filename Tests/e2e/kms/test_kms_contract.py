"""The KMS v2 contract as kube-apiserver relies on it, once per topology (the `topology` fixture of
Tests/e2e/conftest.py): spawn (the broker starts the front), split (broker and front started
apart, the front binding the KMS socket) and socket-activated (split, the front started by
systemd-socket-activate on a socket it did not create). What only one topology has stays in
test_plugin_e2e.py (spawn) and test_split_topology.py (split)."""
import concurrent.futures
import os
import re

import grpc
import pytest

from kmstest import kmsclient
from kmstest.kmsclient import api

KEY_ID = re.compile(r"^transit-v(\d+)-[0-9a-f]{32}$")


def test_status_reports_v2_ok_and_a_versioned_key_id(topology):
    response = topology.client().Status(api().StatusRequest(), timeout=3)
    assert response.version == "v2"
    assert response.healthz == "ok"
    assert 0 < len(response.key_id.encode()) <= 1024
    assert KEY_ID.match(response.key_id), response.key_id


def test_encrypt_then_decrypt_returns_the_exact_32_bytes(topology):
    client = topology.client()
    seed = os.urandom(32)
    encrypted = client.Encrypt(api().EncryptRequest(plaintext=seed, uid="uid-roundtrip"), timeout=3)
    assert 0 < len(encrypted.ciphertext) <= 1024
    assert encrypted.ciphertext.startswith(b"vault:v1:")
    status = client.Status(api().StatusRequest(), timeout=3)
    assert encrypted.key_id == status.key_id
    decrypted = client.Decrypt(
        api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="uid-roundtrip-d"),
        timeout=3)
    assert decrypted.plaintext == seed


def test_distinct_plaintexts_give_distinct_ciphertexts(topology):
    client = topology.client()
    seed = os.urandom(32)
    first = client.Encrypt(api().EncryptRequest(plaintext=seed, uid="a"), timeout=3)
    second = client.Encrypt(api().EncryptRequest(plaintext=seed, uid="b"), timeout=3)
    assert first.ciphertext != second.ciphertext  # random GCM nonces


def test_tampered_ciphertext_is_refused_and_the_plugin_stays_healthy(topology):
    client = topology.client()
    encrypted = client.Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="t"), timeout=3)
    body = bytearray(encrypted.ciphertext)
    body[-5] = ord("A") if body[-5] != ord("A") else ord("B")
    with pytest.raises(grpc.RpcError) as error:
        client.Decrypt(api().DecryptRequest(ciphertext=bytes(body), key_id=encrypted.key_id, uid="t"), timeout=3)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert client.Status(api().StatusRequest(), timeout=3).healthz == "ok"


def test_decrypt_with_a_foreign_key_id_is_refused(topology):
    client = topology.client()
    encrypted = client.Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="f"), timeout=3)
    foreign = "transit-v1-" + "0" * 32
    with pytest.raises(grpc.RpcError) as error:
        client.Decrypt(api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=foreign, uid="f"), timeout=3)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_unknown_method_is_unimplemented(topology):
    channel = kmsclient.channel(topology.socket)
    call = channel.unary_unary("/v2.KeyManagementService/Rotate")
    with pytest.raises(grpc.RpcError) as error:
        call(b"", timeout=3)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_hundred_concurrent_encrypts_all_succeed_and_decrypt(topology):
    client = topology.client()
    seeds = [os.urandom(32) for _ in range(100)]

    def encrypt(seed):
        return client.Encrypt(api().EncryptRequest(plaintext=seed, uid="c"), timeout=10)

    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(encrypt, seeds))
    assert len({r.ciphertext for r in results}) == 100
    assert len({r.key_id for r in results}) == 1
    for seed, result in zip(seeds[:10], results[:10]):
        back = client.Decrypt(api().DecryptRequest(ciphertext=result.ciphertext, key_id=result.key_id), timeout=3)
        assert back.plaintext == seed
