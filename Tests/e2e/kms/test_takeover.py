"""Takeover of a cluster another Vault KMS plugin wrote (docs/operations.md, "Taking over data
another plugin wrote"): objects written through FalcoSuessgott/vault-kubernetes-kms's key_id
scheme (the bare Transit version), the plugin swapped for ours, every object read back under
--accept-foreign-key-ids, the storage migration rewriting them, and the foreign-read counter
staying flat afterwards, so the mode can be switched off."""
import os
import urllib.request

import grpc
import pytest

from kmstest.apiserver_sim import ApiServer
from kmstest.foreign_plugin import ForeignPlugin
from kmstest.plugin import Plugin
from kmstest.ports import free_port


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not on the page")


def ours(plugin_args, vault, workdir, port, accept):
    args = ["--metrics-port", str(port), "--health-port", "0", "--key-check-interval", "1s"]
    return Plugin(vault, workdir, extra_args=args + (["--accept-foreign-key-ids"] if accept else []))


def test_a_cluster_written_by_the_falco_plugin_is_read_migrated_and_released(vault, workdir):
    store = os.path.join(workdir, "etcd.json")
    socket_path = os.path.join(workdir, "run", "kms.sock")
    os.makedirs(os.path.dirname(socket_path), mode=0o755, exist_ok=True)
    written = {}

    # 1. The foreign plugin serves; the apiserver writes under key_ids "1" and, after a
    #    rotation, "2" (two write seeds, as kube-apiserver rotates its seed when Status changes).
    foreign = ForeignPlugin(vault, socket_path)
    try:
        apiserver = ApiServer(socket_path, store)
        first = apiserver.poll()
        assert first.isdigit(), first
        for index in range(12):
            written[f"old-{index}"] = os.urandom(48)
            assert apiserver.write(f"old-{index}", written[f"old-{index}"]) == first
        vault.rotate_key()
        second = apiserver.poll()
        assert second == str(int(first) + 1)
        for index in range(8):
            written[f"newer-{index}"] = os.urandom(48)
            assert apiserver.write(f"newer-{index}", written[f"newer-{index}"]) == second
    finally:
        foreign.stop()
    assert not os.path.exists(socket_path)  # grpcio removed its socket: the path is free for ours
    assert ApiServer(socket_path, store).key_ids() == {first, second}

    # 2. Swapped for ours without the mode: deny by default, and the refusal is counted.
    port = free_port()
    plugin = ours((), vault, workdir, port, accept=False)
    try:
        restarted = ApiServer(socket_path, store)
        our_key_id = restarted.poll()
        assert our_key_id.startswith("transit-v")
        with pytest.raises(grpc.RpcError) as refused:
            restarted.read("old-0")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert metric(port, "vault_kube_kms_foreign_key_id_refusals_total") >= 1
        assert metric(port, "vault_kube_kms_foreign_key_id_decrypts_total") == 0
    finally:
        plugin.stop()

    # 3. With the mode: every object reads back; each distinct seed is one counted foreign read.
    port = free_port()
    plugin = ours((), vault, workdir, port, accept=True)
    try:
        events = [event.get("event") for event in plugin.log_events()]
        assert "broker.compat.foreign_key_ids" in events
        migrating = ApiServer(socket_path, store)
        our_key_id = migrating.poll()
        assert {name: migrating.read(name) for name in written} == written
        assert migrating.decrypt_calls == 2
        assert metric(port, "vault_kube_kms_foreign_key_id_decrypts_total") == 2
        logged = [event for event in plugin.log_events() if event.get("event") == "broker.decrypt.foreign_key_id"]
        assert sorted(event["version"] for event in logged) == [first, second]

        # 4. The storage migration (kubectl get secrets -A -o json | kubectl replace -f -):
        #    every object read and written again, now under our key_id.
        for name in migrating.names():
            migrating.write(name, migrating.read(name))
        assert migrating.key_ids() == {our_key_id}

        # 5. A restarted apiserver reads everything again: not one foreign read more.
        before = metric(port, "vault_kube_kms_foreign_key_id_decrypts_total")
        after_restart = ApiServer(socket_path, store)
        after_restart.poll()
        assert {name: after_restart.read(name) for name in written} == written
        assert after_restart.decrypt_calls >= 1
        assert metric(port, "vault_kube_kms_foreign_key_id_decrypts_total") == before
    finally:
        plugin.stop()

    # 6. The mode switched off again: the migrated cluster reads without it.
    port = free_port()
    plugin = ours((), vault, workdir, port, accept=False)
    try:
        final = ApiServer(socket_path, store)
        final.poll()
        assert {name: final.read(name) for name in written} == written
        assert metric(port, "vault_kube_kms_foreign_key_id_refusals_total") == 0
    finally:
        plugin.stop()
