"""The short version of the benchmark that CI runs (Tests/bench/test_bench_smoke.py): no h2load,
only the Python clients the test suite already has, against the same Vault as the benchmark (a
real OpenBao dev server by default). It measures ratios, never absolute times: plugin over direct
latency at concurrency 1, with grpcio for the plugin and a keep-alive http.client for the direct
Transit call, interleaved in rounds so that machine noise hits both sides alike; and it counts the
Vault calls exactly, by the broker's metrics and by the server's own counter."""
import http.client
import json
import statistics
import time
import urllib.parse

import calls
from calls import kmsclient

ROUNDS = 5


class DirectClient:
    """Transit encrypt/decrypt on one keep-alive HTTP/1.1 connection."""

    def __init__(self, vault):
        url = urllib.parse.urlsplit(vault.address)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        self.headers = {"X-Vault-Token": vault.token, "Content-Type": "application/json"}
        self.prefix = f"/v1/{vault.setup.mount}"
        self.key = vault.setup.key

    def call(self, operation, body):
        self.connection.request("POST", f"{self.prefix}/{operation}/{self.key}", body=body, headers=self.headers)
        answer = self.connection.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"direct {operation}: {answer.status} {data[:200]!r}")
        return data


def timed(function, count):
    """Median seconds of `count` calls of `function`."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run(plugin, vault, calls_per_round=40):
    """Call counts (Status, and the Vault requests they caused; Encrypt, and the Transit encrypts)
    and the plugin/direct median latency ratios of encrypt and decrypt."""
    api, _ = kmsclient.stubs()
    client = kmsclient.client(plugin.socket)
    direct = DirectClient(vault)
    encrypted = client.Encrypt(api.EncryptRequest(plaintext=calls.SEED, uid="smoke"), timeout=5)
    version = int(encrypted.ciphertext.split(b":")[1][1:])
    bodies = {"encrypt": json.dumps({"plaintext": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                                     "key_version": version}),
              "decrypt": json.dumps({"ciphertext": encrypted.ciphertext.decode()})}
    plugin_calls = {
        "encrypt": lambda: client.Encrypt(api.EncryptRequest(plaintext=calls.SEED, uid="smoke"), timeout=5),
        "decrypt": lambda: client.Decrypt(api.DecryptRequest(
            ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="smoke"), timeout=5),
    }
    figures = {"vault": vault.kind}
    before = (plugin.vault_calls(), vault.transit_calls())
    for _ in range(calls_per_round * ROUNDS):
        client.Status(api.StatusRequest(), timeout=5)
    figures["status_calls"] = calls_per_round * ROUNDS
    figures["broker_vault_calls_during_status"] = _delta(before[0], plugin.vault_calls())
    figures["server_transit_calls_during_status"] = vault.transit_calls() - before[1]
    before = (plugin.vault_calls(), vault.transit_calls())
    for _ in range(calls_per_round):
        plugin_calls["encrypt"]()
    figures["encrypt_calls"] = calls_per_round
    figures["broker_vault_calls_during_encrypt"] = _delta(before[0], plugin.vault_calls())
    figures["server_transit_calls_during_encrypt"] = vault.transit_calls() - before[1]
    for operation in ("encrypt", "decrypt"):
        for _ in range(10):  # warm-up of both paths
            plugin_calls[operation]()
            direct.call(operation, bodies[operation])
        ratios = []
        for _ in range(ROUNDS):
            through_plugin = timed(plugin_calls[operation], calls_per_round)
            straight = timed(lambda: direct.call(operation, bodies[operation]), calls_per_round)
            ratios.append(through_plugin / straight)
        figures[f"{operation}_p50_ratio"] = statistics.median(ratios)
    return figures


def _delta(before, after):
    """{operation: Vault calls} the broker made between two readings of its counters, without the
    token's lifecycle (login, renew), which runs on a timer and is no call's doing."""
    return {op: count - before.get(op, 0) for op, count in after.items()
            if count - before.get(op, 0) and op not in ("login", "renew")}
