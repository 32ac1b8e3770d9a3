"""The prepared requests: KMS v2 Status/Encrypt/Decrypt as gRPC bodies for the plugin, and the
Transit encrypt/decrypt the broker makes, as JSON bodies for the direct client. The decrypt bodies
carry a real ciphertext obtained through the plugin before the run."""
import base64
import json
import os
import sys
import time

from benchenv import ROOT
import loadgen

sys.path.insert(0, os.path.join(ROOT, "Tests", "e2e"))
from kmstest import kmsclient  # noqa: E402

SERVICE = "http://localhost/v2.KeyManagementService/"
SEED = bytes(range(32))  # a 32-byte DEK seed, as kube-apiserver sends


def wait_healthy(socket_path, timeout=30):
    """Polls Status through grpcio until healthz is ok (the first AppRole login and key read done)."""
    import grpc

    api, _ = kmsclient.stubs()
    client = kmsclient.client(socket_path)
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            answer = client.Status(api.StatusRequest(), timeout=2)
            if answer.healthz == "ok":
                return answer
            last = answer.healthz
        except grpc.RpcError as error:
            last = error.code()
        time.sleep(0.05)
    raise RuntimeError(f"plugin not healthy after {timeout}s: {last}")


def prepare(plugin, vault, directory):
    """{"Status"|"Encrypt"|"Decrypt": {"plugin": Target, "direct": Target or None}}."""
    api, _ = kmsclient.stubs()
    client = kmsclient.client(plugin.socket)
    encrypted = client.Encrypt(api.EncryptRequest(plaintext=SEED, uid="bench"), timeout=5)
    check = client.Decrypt(
        api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="bench"), timeout=5)
    assert check.plaintext == SEED, "round trip through the plugin failed"
    version = int(encrypted.ciphertext.split(b":")[1][1:])
    grpc_bodies = {
        "Status": api.StatusRequest().SerializeToString(),
        "Encrypt": api.EncryptRequest(plaintext=SEED, uid="bench").SerializeToString(),
        "Decrypt": api.DecryptRequest(
            ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="bench").SerializeToString(),
    }
    setup = vault.setup
    direct_bodies = {
        "Encrypt": json.dumps({"plaintext": base64.b64encode(SEED).decode(), "key_version": version}).encode(),
        "Decrypt": json.dumps({"ciphertext": encrypted.ciphertext.decode()}).encode(),
    }
    direct_headers = (f"x-vault-token: {vault.token}", "content-type: application/json")
    targets = {}
    for method, message in grpc_bodies.items():
        plugin_target = loadgen.Target(
            url=SERVICE + method, body=loadgen.grpc_body(message, directory, f"{method}.grpc"),
            headers=loadgen.GRPC_HEADERS, unix_socket=plugin.socket)
        direct_target = None
        if method in direct_bodies:
            direct_target = loadgen.Target(
                url=f"{vault.address}/v1/{setup.mount}/{method.lower()}/{setup.key}",
                body=loadgen.plain_body(direct_bodies[method], directory, f"{method}.json"),
                headers=direct_headers, http1=True)
        targets[method] = {"plugin": plugin_target, "direct": direct_target}
    return targets
