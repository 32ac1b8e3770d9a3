#!/usr/bin/env python3
"""The decrypt storm: kube-apiserver decrypts each distinct DEK seed once when it starts (after many
restarts without a storage rewrite, thousands). `--seeds` distinct 32-byte seeds are encrypted
through the plugin first; then the same ciphertexts are decrypted at `--concurrency` through the
plugin (one HTTP/2 connection, that many streams) and sent directly to Vault as Transit decrypts
(that many keep-alive connections), alternating sides, with the same client (rawload.py). Every
plaintext is checked against its seed. Vault calls per KMS call are counted twice, by the broker
(vault_kube_kms_vault_requests_total on the metrics page) and by the server (OpenBao's route
counter, the simulator's /_sim/stats), and must be exactly one.

    python3 Tests/bench/storm.py [--bin-dir .build/release] [--vault openbao|simulator] [--seeds 5000]
"""
import argparse
import base64
import json
import math
import os
import shutil
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchenv  # noqa: E402
import calls  # noqa: E402
import procstat  # noqa: E402
import rawload  # noqa: E402
from calls import kmsclient  # noqa: E402


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else 0.0  # nearest rank


def summary(outcome):
    return {"calls": len(outcome.latencies_us), "seconds": outcome.seconds, "throughput": outcome.throughput,
            "p50_us": percentile(outcome.latencies_us, 0.50), "p99_us": percentile(outcome.latencies_us, 0.99),
            "max_us": max(outcome.latencies_us), "failures": outcome.failures}


class CountMismatch(AssertionError):
    pass


def counted(plugin, vault, run):
    """run() with the broker's and the server's Vault call counters read before and after."""
    broker_before, server_before = plugin.vault_calls(), vault.transit_calls()
    outcome = run()
    broker_after, server_after = plugin.vault_calls(), vault.transit_calls()
    broker = {op: broker_after[op] - broker_before.get(op, 0) for op in broker_after
              if broker_after[op] - broker_before.get(op, 0)}
    return outcome, broker, server_after - server_before


def check_counts(label, calls_made, broker, server, operation):
    """Exactly one Vault call per KMS call: `operation` by the broker's count, one Transit call by the
    server's (token lifecycle calls, login and renew, are on a timer and not charged to calls)."""
    by_calls = {op: n for op, n in broker.items() if op not in ("login", "renew")}
    expected = {operation: calls_made} if operation else {}
    if by_calls != expected or server != calls_made:
        raise CountMismatch(f"{label}: {calls_made} calls; broker counted {broker}, server {server} Transit calls")


def run(plugin, vault, seeds_count, concurrency, rounds=1):
    api, _ = kmsclient.stubs()
    seeds = [os.urandom(32) for _ in range(seeds_count)]
    encrypt_messages = [api.EncryptRequest(plaintext=seed, uid=f"storm-{i}").SerializeToString()
                        for i, seed in enumerate(seeds)]
    pids = {"front": plugin.front_pid, "broker": plugin.broker_pid, "vault": vault.pid}
    figures = {"seeds": seeds_count, "concurrency": concurrency, "vault": vault.kind,
               "loadavg_before": open("/proc/loadavg").read().split()[:3]}

    meter = procstat.CPUMeter(pids).start()
    encrypted, broker, server = counted(plugin, vault, lambda: rawload.grpc_calls(
        plugin.socket, "Encrypt", encrypt_messages, concurrency))
    figures["encrypt_cpu_us_per_call"] = {k: 1e6 * v / seeds_count for k, v in meter.stop().items()}
    if encrypted.failures:
        raise RuntimeError(f"{encrypted.failures} of {seeds_count} storm Encrypts failed")
    check_counts("encrypt through the plugin", seeds_count, broker, server, "encrypt")
    figures["encrypt_plugin"] = summary(encrypted)
    answers = [api.EncryptResponse.FromString(data) for data in encrypted.answers]
    ciphertexts = [answer.ciphertext for answer in answers]
    if len(set(ciphertexts)) != seeds_count:
        raise RuntimeError("the storm's ciphertexts are not all distinct")

    decrypt_messages = [api.DecryptRequest(ciphertext=answer.ciphertext, key_id=answer.key_id, uid=f"storm-{i}",
                                           annotations=dict(answer.annotations)).SerializeToString()
                        for i, answer in enumerate(answers)]
    address = urllib.parse.urlsplit(vault.address)
    path = f"/v1/{vault.setup.mount}/decrypt/{vault.setup.key}"
    headers = (f"X-Vault-Token: {vault.token}", "Content-Type: application/json")
    direct_requests = [rawload.http1_request(address.hostname, address.port, path,
                                             json.dumps({"ciphertext": c.decode()}).encode(), headers)
                       for c in ciphertexts]
    sides = {"plugin": [], "direct": []}
    for _ in range(rounds):
        meter = procstat.CPUMeter(pids).start()
        outcome, broker, server = counted(plugin, vault, lambda: rawload.grpc_calls(
            plugin.socket, "Decrypt", decrypt_messages, concurrency))
        cpu = meter.stop()
        check_counts("decrypt through the plugin", seeds_count, broker, server, "decrypt")
        plain = [api.DecryptResponse.FromString(data).plaintext if data is not None else None
                 for data in outcome.answers]
        if outcome.failures or plain != seeds:
            raise RuntimeError(f"storm decrypt through the plugin: {outcome.failures} failed, "
                               f"{sum(p != s for p, s in zip(plain, seeds))} plaintexts wrong")
        sides["plugin"].append({**summary(outcome), "cpu_us_per_call": {k: 1e6 * v / seeds_count
                                                                        for k, v in cpu.items()},
                                "broker_vault_calls": broker, "server_transit_calls": server})
        meter = procstat.CPUMeter(pids).start()
        outcome, broker, server = counted(plugin, vault, lambda: rawload.http1_calls(
            address.hostname, address.port, direct_requests, concurrency))
        cpu = meter.stop()
        check_counts("decrypt sent directly", seeds_count, broker, server, None)
        plain = [base64.b64decode(json.loads(body)["data"]["plaintext"]) if body else None for body in outcome.answers]
        if outcome.failures or plain != seeds:
            raise RuntimeError(f"storm decrypt sent directly: {outcome.failures} failed")
        sides["direct"].append({**summary(outcome), "cpu_us_per_call": {k: 1e6 * v / seeds_count
                                                                        for k, v in cpu.items()},
                                "broker_vault_calls": broker, "server_transit_calls": server})
    figures["decrypt"] = sides
    figures["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    return figures


def render(figures):
    out = [f"Decrypt storm against {figures['vault']}: {figures['seeds']} distinct ciphertexts at "
           f"c={figures['concurrency']} (load average {' '.join(figures['loadavg_before'])} before, "
           f"{' '.join(figures['loadavg_after'])} after)", "",
           "| side | total s | calls/s | p50 ms | p99 ms | max ms | Vault calls per KMS call (broker / server) | "
           "front+broker CPU us/call |", "|---|---|---|---|---|---|---|---|"]
    for side, runs in figures["decrypt"].items():
        for r in runs:
            cpu = r["cpu_us_per_call"]
            per_call = (f"{sum(r['broker_vault_calls'].get(op, 0) for op in ('decrypt',)) / r['calls']:.4f} / "
                        f"{r['server_transit_calls'] / r['calls']:.4f}")
            out.append(f"| {side} | {r['seconds']:.2f} | {r['throughput']:.0f} | {r['p50_us'] / 1000:.2f} | "
                       f"{r['p99_us'] / 1000:.2f} | {r['max_us'] / 1000:.2f} | {per_call} | "
                       f"{cpu['front'] + cpu['broker']:.0f} |")
    plugin, direct = figures["decrypt"]["plugin"][-1], figures["decrypt"]["direct"][-1]
    out += ["", f"plugin over direct: total time {plugin['seconds'] / direct['seconds']:.2f}x "
            f"(+{plugin['seconds'] - direct['seconds']:.2f} s), p99 {plugin['p99_us'] / direct['p99_us']:.2f}x "
            f"(+{(plugin['p99_us'] - direct['p99_us']) / 1000:.2f} ms); the seeds were encrypted through the plugin "
            f"first in {figures['encrypt_plugin']['seconds']:.2f} s "
            f"(p99 {figures['encrypt_plugin']['p99_us'] / 1000:.2f} ms)"]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=os.path.join(benchenv.ROOT, ".build", "release"))
    parser.add_argument("--vault", default="openbao", choices=sorted(benchenv.VAULTS))
    parser.add_argument("--seeds", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="plugin/direct rounds (alternating)")
    parser.add_argument("--json", help="write the figures here")
    options = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="vkk-storm-")
    os.chmod(workdir, 0o755)
    bin_dir = benchenv.install_binaries(options.bin_dir)
    vault = benchenv.start_vault(options.vault, workdir)
    plugin = None
    try:
        plugin = benchenv.Plugin(vault, bin_dir, workdir)
        calls.wait_healthy(plugin.socket)
        figures = run(plugin, vault, options.seeds, options.concurrency, options.rounds)
    finally:
        if plugin:
            plugin.stop()
        vault.stop()
        shutil.rmtree(bin_dir, ignore_errors=True)
    print(render(figures))
    if options.json:
        with open(options.json, "w") as handle:
            json.dump(figures, handle, indent=1)


if __name__ == "__main__":
    main()
