"""The units' SystemCallFilter= lines, expanded with `systemd-analyze syscall-filter` into the
allow list systemd would install, enforced (libseccomp) on the real processes: the spawn unit's
filter on the broker and the front it spawns, the front unit's filter on the front alone. The
plugin must serve Encrypt and Decrypt under them; that the enforcement bites is shown by a
filter without epoll_wait."""
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import grpc
import pytest

from kmstest import kmsclient
from kmstest import plugin

ROOT = plugin.ROOT
UNITS = os.path.join(ROOT, "systemd")
# Run as the units' users: a copy they can read wherever the clone is.
ENFORCE = plugin.shareable(os.path.join(ROOT, "deploy", "kubernetes", "seccomp", "enforce.py"))
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not os.path.exists(SYSTEM_PYTHON)
    or subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode != 0,
    reason="needs systemd-analyze and python3-seccomp")


@functools.lru_cache(maxsize=None)
def expand(group):
    """The system calls of a systemd syscall group, nested groups expanded."""
    output = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True,
                            check=True, timeout=30).stdout
    names = set()
    for line in output.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        names |= expand(item) if item.startswith("@") else {item}
    return frozenset(names)


def unit_allow_list(name):
    """What systemd installs for the unit's SystemCallFilter= lines: the first (allow) line,
    minus every later `~` line."""
    lines = [line.split("=", 1)[1] for line in open(os.path.join(UNITS, name)).read().splitlines()
             if line.startswith("SystemCallFilter=")]
    allowed = set()
    for value in lines:
        deny = value.startswith("~")
        items = set()
        for item in value.lstrip("~").split():
            items |= expand(item) if item.startswith("@") else {item}
        allowed = allowed - items if deny else allowed | items
    return allowed


def write_profile(path, names):
    with open(path, "w") as handle:
        json.dump({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                   "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}]}, handle)


def run(vault, workdir, whole=None, front=None):
    """Starts the plugin with `whole` enforced on the broker (and so on the front it spawns), or
    `front` enforced on the front only (through a wrapper given as --front-executable)."""
    os.makedirs(workdir, mode=0o755)
    os.chmod(os.path.dirname(workdir), 0o755)
    real = plugin.installed_bin_dir()
    socket = os.path.join(workdir, "run", "kms.sock")
    os.makedirs(os.path.dirname(socket), mode=0o755)
    command = []
    if whole:
        command = [SYSTEM_PYTHON, ENFORCE, whole, "--"]
    command += [os.path.join(real, "vault-kube-kms"), "--listen-address", f"unix://{socket}",
                "--vault-address", vault.address, "--vault-key-path", vault.key_path,
                "--auth-mount", vault.auth_mount, "--approle-role-id", vault.role_id,
                "--approle-secret-id-path", vault.secret_id_path, "--health-port", "0", "--metrics-port", "0"]
    if front:
        # The front runs as another user: the wrapper and its profile sit in a 0755 directory.
        shared = tempfile.mkdtemp(prefix="vkk-filter-")
        os.chmod(shared, 0o755)
        front = shutil.copy(front, os.path.join(shared, "front.json"))
        os.chmod(front, 0o644)
        wrapper = os.path.join(shared, "front-under-filter")
        with open(wrapper, "w") as handle:
            handle.write(f"#!/bin/sh\nexec {SYSTEM_PYTHON} {ENFORCE} {front} -- {real}/vault-kube-kms-front \"$@\"\n")
        os.chmod(wrapper, 0o755)
        command += ["--front-executable", wrapper]
    log = open(os.path.join(workdir, "plugin.log"), "wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), socket, log.name


def serves(socket, proc, timeout=20):
    api, _ = kmsclient.stubs()
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            client = kmsclient.client(socket)
            if os.path.exists(socket) and client.Status(api.StatusRequest(), timeout=1).healthz == "ok":
                encrypted = client.Encrypt(api.EncryptRequest(plaintext=b"f" * 32, uid="filter"), timeout=5)
                return client.Decrypt(api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                                         uid="filter"), timeout=5).plaintext == b"f" * 32
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    return False


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    return proc.returncode


def test_expansion_follows_the_units_deny_lines():
    front = unit_allow_list("vault-kube-kms-front.service")
    assert {"epoll_wait", "read", "sendmsg"} <= front
    assert not {"setuid", "chown", "mount", "ptrace", "reboot"} & front
    spawn = unit_allow_list("vault-kube-kms.service")
    assert {"setresuid", "setgroups", "capset", "prctl"} <= spawn  # the privilege drop
    assert not {"mount", "chroot", "bpf", "ptrace"} & spawn


def test_spawn_unit_filter_lets_broker_and_front_serve_and_stop(vault, tmp_path):
    profile = str(tmp_path / "spawn.json")
    write_profile(profile, unit_allow_list("vault-kube-kms.service"))
    proc, socket, log = run(vault, str(tmp_path / "w"), whole=profile)
    try:
        assert serves(socket, proc), open(log).read()[-3000:]
    finally:
        assert stop(proc) == 0, open(log).read()[-3000:]


def test_front_unit_filter_lets_the_front_serve(vault, tmp_path):
    profile = str(tmp_path / "front.json")
    write_profile(profile, unit_allow_list("vault-kube-kms-front.service"))
    proc, socket, log = run(vault, str(tmp_path / "w"), front=profile)
    try:
        assert serves(socket, proc), open(log).read()[-3000:]
        (front,) = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
        assert plugin.proc_status(int(front))["Seccomp"] == "2"  # filtered
        assert plugin.proc_status(proc.pid)["Seccomp"] == "0"  # the broker is not
    finally:
        stop(proc)


def test_broker_unit_filter_lets_the_broker_serve(vault, tmp_path):
    """The split broker never spawns; its filter is checked on the broker's own calls with the
    front unfiltered (the spawn itself, setresuid and friends, are the spawn unit's business)."""
    allowed = unit_allow_list("vault-kube-kms-broker.service")
    # The spawn path only exists in the spawn topology: allow exactly its calls for this run.
    spawn_only = {"setresuid", "setresgid", "setgroups", "setuid", "capset", "capget"}
    profile = str(tmp_path / "broker.json")
    write_profile(profile, allowed | spawn_only)
    proc, socket, log = run(vault, str(tmp_path / "w"), whole=profile)
    try:
        assert serves(socket, proc), open(log).read()[-3000:]
    finally:
        stop(proc)


def test_a_filter_without_a_needed_call_stops_the_front(vault, tmp_path):
    profile = str(tmp_path / "bad.json")
    write_profile(profile, unit_allow_list("vault-kube-kms-front.service") - {"epoll_wait"})
    proc, socket, log = run(vault, str(tmp_path / "w"), front=profile)
    try:
        deadline = time.time() + 30
        while "front.started" not in open(log).read():  # it was exec'd under the filter
            assert time.time() < deadline and proc.poll() is None, open(log).read()
            time.sleep(0.1)
        assert not serves(socket, proc, timeout=5)
    finally:
        stop(proc)
