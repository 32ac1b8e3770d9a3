"""grpcurl (a grpc-go client: the gRPC implementation of kube-apiserver and of OpenShift's KMS
health checker) as a second independent KMS client, through the real plugin and a real OpenBao.

grpc-go sends the Unix socket path as `:authority` unless the client sets WithAuthority;
kube-apiserver sets "localhost", other grpc-go clients do not. Both must be served."""
import base64
import json
import os
import subprocess

import pytest

from kmstest import kmsclient
from kmstest import openbao

SERVICE = "v2.KeyManagementService"
AUTHORITIES = {"grpc-go default (the socket path)": [], "-authority localhost (as kube-apiserver)":
               ["-authority", "localhost"]}


def grpcurl(socket_path, method, request, extra=()):
    """The decoded JSON answer of one call; fails with grpcurl's own error text."""
    args = [openbao.grpcurl_binary(), "-plaintext", "-unix", *extra, "-import-path", kmsclient.PROTO_DIR,
            "-proto", "api.proto", "-max-time", "10", "-d", json.dumps(request), socket_path, f"{SERVICE}/{method}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"grpcurl {method} {extra}: {done.returncode}\n{done.stdout}{done.stderr}"
    return json.loads(done.stdout)


def grpcurl_failure(socket_path, method, request, extra=()):
    args = [openbao.grpcurl_binary(), "-plaintext", "-unix", *extra, "-import-path", kmsclient.PROTO_DIR,
            "-proto", "api.proto", "-max-time", "10", "-d", json.dumps(request), socket_path, f"{SERVICE}/{method}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr


@pytest.mark.parametrize("extra", AUTHORITIES.values(), ids=AUTHORITIES.keys())
def test_status_answers_v2_ok_and_the_key_id_of_the_real_server(plugin, extra):
    status = grpcurl(plugin.socket, "Status", {}, extra)
    assert status["version"] == "v2" and status["healthz"] == "ok", status
    assert status["keyId"] == plugin.client().Status(kmsclient.stubs()[0].StatusRequest(), timeout=5).key_id


@pytest.mark.parametrize("extra", AUTHORITIES.values(), ids=AUTHORITIES.keys())
def test_encrypt_then_decrypt_returns_the_exact_bytes(plugin, extra):
    plaintext = os.urandom(32)
    encrypted = grpcurl(plugin.socket, "Encrypt", {"uid": "grpcurl-1", "plaintext": base64.b64encode(plaintext).decode()},
                        extra)
    ciphertext = base64.b64decode(encrypted["ciphertext"])
    assert plaintext not in ciphertext and len(ciphertext) > len(plaintext)
    decrypted = grpcurl(plugin.socket, "Decrypt", {"uid": "grpcurl-2", "ciphertext": encrypted["ciphertext"],
                                                   "keyId": encrypted["keyId"]}, extra)
    assert base64.b64decode(decrypted["plaintext"]) == plaintext


def test_grpcurl_and_grpcio_decrypt_each_others_ciphertexts(plugin):
    pb2 = kmsclient.stubs()[0]
    plaintext = os.urandom(32)
    encrypted = grpcurl(plugin.socket, "Encrypt", {"uid": "x", "plaintext": base64.b64encode(plaintext).decode()})
    assert plugin.client().Decrypt(pb2.DecryptRequest(
        uid="x", ciphertext=base64.b64decode(encrypted["ciphertext"]), key_id=encrypted["keyId"]),
        timeout=5).plaintext == plaintext
    other = plugin.client().Encrypt(pb2.EncryptRequest(uid="y", plaintext=plaintext), timeout=5)
    decrypted = grpcurl(plugin.socket, "Decrypt", {"uid": "y", "ciphertext": base64.b64encode(other.ciphertext).decode(),
                                                   "keyId": other.key_id})
    assert base64.b64decode(decrypted["plaintext"]) == plaintext


def test_a_tampered_ciphertext_is_refused_to_grpcurl_with_a_grpc_status(plugin):
    encrypted = grpcurl(plugin.socket, "Encrypt", {"uid": "t", "plaintext": base64.b64encode(b"k" * 32).decode()})
    raw = bytearray(base64.b64decode(encrypted["ciphertext"]))
    raw[-3] ^= 0x01
    answer = grpcurl_failure(plugin.socket, "Decrypt", {"uid": "t", "ciphertext": base64.b64encode(bytes(raw)).decode(),
                                                       "keyId": encrypted["keyId"]})
    assert "Code:" in answer and "PROTOCOL_ERROR" not in answer and "RST_STREAM" not in answer, answer
    assert grpcurl(plugin.socket, "Status", {})["healthz"] == "ok"
