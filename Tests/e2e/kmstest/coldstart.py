"""The cost of a control plane starting cold (docs/scaling.md): `seeds` distinct DEK seeds are
encrypted through one plugin, then `plugins` fresh plugins start at once (one per control-plane
node, each listing the cluster's nodes starting with a different one) and each decrypts every
seed, as a starting kube-apiserver does with its Secrets. Counts the Vault calls from each
plugin's own metrics, the seconds until every plugin is done, and the Decrypt latency p99; and
checks that Status costs no Vault call."""
import concurrent.futures
import os
import re
import threading
import time
import types
import urllib.request

from . import kmsclient
from .plugin import Plugin
from .ports import free_port

DECRYPTS_IN_PARALLEL = 8  # per apiserver


def vault_calls(port):
    """{operation: count} of vault_kube_kms_vault_requests_total on a plugin's metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {m.group(1): int(float(m.group(2))) for m in
            re.finditer(r'^vault_kube_kms_vault_requests_total\{operation="([a-z_]+)"\} (\S+)$', text, re.M)}


def start_plugin(cluster, addresses, workdir, name):
    directory = os.path.join(workdir, name)
    os.makedirs(directory, mode=0o755)
    port = free_port()
    view = types.SimpleNamespace(
        address=",".join(addresses), key_path="transit/keys/kube-kek", auth_mount="approle",
        role_id=cluster.role_id, secret_id_path=cluster.secret_id_path)
    return Plugin(view, directory, extra_args=["--health-port", "0", "--metrics-port", str(port)]), port


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def measure(cluster, plugins, seeds, workdir, status_polls=60):
    api, _ = kmsclient.stubs()
    writer, _ = start_plugin(cluster, cluster.addresses, workdir, "writer")
    try:
        client = writer.client()

        def encrypt(index):
            answer = client.Encrypt(api.EncryptRequest(plaintext=os.urandom(32), uid=f"seed-{index}"), timeout=10)
            return bytes(answer.ciphertext), answer.key_id
        with concurrent.futures.ThreadPoolExecutor(DECRYPTS_IN_PARALLEL) as pool:
            stored = list(pool.map(encrypt, range(seeds)))
    finally:
        writer.stop()
    assert len({c for c, _ in stored}) == seeds

    addresses = cluster.addresses
    started = time.monotonic()
    running = [start_plugin(cluster, addresses[i % 3:] + addresses[:i % 3], workdir, f"node{i}")
               for i in range(plugins)]
    ready = time.monotonic() - started
    latencies, lock, failures = [], threading.Lock(), []
    try:
        def cold_start(plugin):
            client = plugin.client()

            def decrypt(item):
                ciphertext, key_id = item
                t = time.monotonic()
                try:
                    client.Decrypt(api.DecryptRequest(ciphertext=ciphertext, key_id=key_id, uid="cold"), timeout=3)
                except Exception as error:  # noqa: BLE001 - counted and reported
                    failures.append(repr(error))
                    return
                with lock:
                    latencies.append(time.monotonic() - t)
            with concurrent.futures.ThreadPoolExecutor(DECRYPTS_IN_PARALLEL) as pool:
                list(pool.map(decrypt, stored))
        def cpu():
            vault = sum(cpu_seconds(node.proc.pid) for node in cluster.nodes)
            plugins = sum(cpu_seconds(p.proc.pid) + cpu_seconds(p.front_pid()) for p, _ in running)
            return vault, plugins, time.process_time()
        cpu_before = cpu()
        decrypt_started = time.monotonic()
        threads = [threading.Thread(target=cold_start, args=(p,)) for p, _ in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        decrypt_seconds = time.monotonic() - decrypt_started
        cpu_used = [after - before for after, before in zip(cpu(), cpu_before)]
        calls = [vault_calls(port) for _, port in running]
        # Steady state: Status polls (the apiserver's once a minute) cost no Vault call.
        plugin, port = running[0]
        before = sum(vault_calls(port).values())
        client = plugin.client()
        for _ in range(status_polls):
            assert client.Status(api.StatusRequest(), timeout=3).healthz == "ok"
        status_calls = sum(vault_calls(port).values()) - before
    finally:
        for plugin, _ in running:
            plugin.stop()
    total = {op: sum(c.get(op, 0) for c in calls) for op in ("login", "read_key", "license", "decrypt", "other")}
    return {
        "plugins": plugins, "seeds": seeds, "ready_seconds": ready, "decrypt_seconds": decrypt_seconds,
        "vault_calls": total, "vault_calls_total": sum(total.values()),
        "decrypt_p50_ms": 1000 * percentile(latencies, 0.50), "decrypt_p99_ms": 1000 * percentile(latencies, 0.99),
        "decrypts_per_second": len(latencies) / decrypt_seconds, "failures": len(failures),
        "status_polls": status_polls, "status_vault_calls": status_calls,
        "cpu_seconds": {"vault_nodes": cpu_used[0], "plugins": cpu_used[1], "clients": cpu_used[2]},
    }
