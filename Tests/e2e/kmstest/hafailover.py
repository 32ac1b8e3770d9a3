"""Failover under load: eight apiserver-like clients (Tests/e2e/kmstest/apiserver_sim.py) drive the plugin
while a fault hits the three-node OpenBao cluster, and a ledger proves nothing was lost.

Each client loops: encrypt a fresh DEK seed (what the apiserver does when it rotates its write
seed) and store one object under it, or read back one of its objects with an empty seed cache
(a Decrypt, what a restarted apiserver does). Every KMS call is timed and its outcome recorded.
After the run a fresh client reads every stored object again (Decrypt of every distinct seed).

Faults (`CASES`): the active node SIGKILLed, SIGSTOPped, the whole cluster restarted, and the
plugin's preferred address black-holed by a proxy (Tests/e2e/kmstest/tcpproxy.py). Each is held for
`hold` seconds, then healed (the node restarted, SIGCONT, the proxy forwarding again).
"""
import os
import random
import threading
import time
import types

import grpc

from .apiserver_sim import ApiServer, ValidationError
from .tcpproxy import TCPProxy
from .plugin import Plugin

CASES = ("kill", "stop", "restart", "partition")
CONCURRENCY = 8


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []  # (start, end, ok, kind)

    def record(self, start, end, ok, kind):
        with self.lock:
            self.calls.append((start, end, ok, kind))


def _worker(index, socket_path, workdir, recorder, stop, ledger):
    store = os.path.join(workdir, f"store-{index}.json")
    api = ApiServer(socket_path, store)
    api.poll()  # Status: the key_id
    written = []
    serial = 0
    while not stop.is_set():
        if written and random.random() < 0.5:
            name, data = random.choice(written)
            api.seed_cache.clear()
            started = time.monotonic()
            try:
                ok = api.read(name) == data
            except (grpc.RpcError, ValidationError):
                ok = False
            recorder.record(started, time.monotonic(), ok, "decrypt")
        else:
            started = time.monotonic()
            try:
                api._rotate_seed(api.status_key_id)  # Encrypt of a fresh seed, validated
                ok = True
            except (grpc.RpcError, ValidationError):
                ok = False
            recorder.record(started, time.monotonic(), ok, "encrypt")
            if ok:
                serial += 1
                name = f"/registry/secrets/ha/w{index}-{serial}"
                data = os.urandom(48)
                api.write(name, data)
                written.append((name, data))
        time.sleep(0.02)
    ledger[index] = (store, written)


def _verify(socket_path, ledger):
    """Every object every client stored, read back by a fresh client (empty seed cache)."""
    objects = 0
    for store, written in ledger.values():
        api = ApiServer(socket_path, store)
        for name, data in written:
            assert api.read(name) == data, name
            objects += 1
    return objects


def summarise(calls, fault_at):
    failures = [c for c in calls if not c[2]]
    result = {"calls": len(calls), "failed": len(failures), "window": 0.0, "first_failure": None,
              "last_failure": None}
    if failures:
        # With eight clients, calls that started before the fault still succeed after the first
        # failure: the window runs from the first failed call's start to the end of the last
        # failed one, after which every call succeeds again.
        first = min(c[0] for c in failures)
        last = max(c[1] for c in failures)
        result["first_failure"] = first - fault_at
        result["last_failure"] = last - fault_at
        result["window"] = last - first
    return result


def run(cluster, case, with_list, workdir, hold=12.0, warmup=2.0, tail=6.0, plugin_args=()):
    """Runs one case; returns its summary (seconds relative to the fault)."""
    assert case in CASES
    cluster.start_again(wait=True)
    active = cluster.active()
    others = [node.address for node in cluster.nodes if node is not active]
    proxy = TCPProxy(active.address) if case == "partition" else None
    preferred = proxy.address if proxy else active.address
    addresses = [preferred] + others if with_list else [preferred]
    view = types.SimpleNamespace(
        address=",".join(addresses), key_path="transit/keys/kube-kek", auth_mount="approle",
        role_id=cluster.role_id, secret_id_path=cluster.secret_id_path)
    plugin = Plugin(view, workdir, extra_args=["--health-port", "0", "--metrics-port", "0", *plugin_args])
    recorder, stop, ledger = Recorder(), threading.Event(), {}
    threads = [threading.Thread(target=_worker, args=(i, plugin.socket, workdir, recorder, stop, ledger))
               for i in range(CONCURRENCY)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(warmup)
        fault_at = time.monotonic()
        if case == "kill":
            active.kill()
        elif case == "stop":
            active.stop()
        elif case == "restart":
            for node in cluster.nodes:
                node.terminate()
        else:
            proxy.partition()
        if case != "restart":
            time.sleep(hold)
        if case == "kill":
            cluster.start_again(wait=False)
        elif case == "stop":
            active.cont()
        elif case == "restart":
            cluster.start_again(wait=False)
        else:
            proxy.heal()
        healed_at = time.monotonic() - fault_at  # restart: when every node is up and unsealed again
        # Until the load has worked for `tail` seconds after the heal (or 60 s at most).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recent = [c for c in recorder.calls if c[0] > fault_at + healed_at]
            if recent and all(c[2] for c in recent[-CONCURRENCY:]) and \
                    time.monotonic() - (fault_at + healed_at) > tail:
                break
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(30)
        summary = summarise(recorder.calls, fault_at)
        summary["healed_at"] = healed_at
        summary["objects_verified"] = _verify(plugin.socket, ledger)
        summary["objects_written"] = sum(len(w) for _, w in ledger.values())
        summary["failovers"] = sum(1 for e in plugin.log_events() if e.get("event") == "broker.vault.failover")
        summary["logins"] = sum(1 for e in plugin.log_events() if e.get("event") == "broker.login.ok")
        return summary
    finally:
        stop.set()
        plugin.stop()
        if proxy:
            proxy.close()
        for node in cluster.nodes:
            if node.running() and node.stopped_signal:
                node.cont()
        cluster.start_again(wait=True)


def table_row(case, with_list, s):
    window = "none" if s["failed"] == 0 else f"{s['window']:.1f} s"
    first = "-" if s["first_failure"] is None else f"{s['first_failure']:.1f} s"
    last = "-" if s["last_failure"] is None else f"{s['last_failure']:.1f} s"
    return (f"| {case} | {'3 addresses' if with_list else '1 address'} | {s['calls']} | {s['failed']} | "
            f"{first} | {window} | {last} | {s['healed_at']:.1f} s | {s['objects_written']}/{s['objects_verified']} | "
            f"{s['failovers']} | {s['logins']} |")


TABLE_HEAD = ("| fault | plugin configured with | KMS calls | failed | first failure after the fault | "
              "error window (first failure to calls succeeding again) | last failure | healed at | "
              "objects written/read back | failovers logged | logins |\n|---|---|---|---|---|---|---|---|---|---|---|")
