"""Issue 13 finding 4: the KMS socket admits only the apiserver.

An abstract KMS socket (`unix:///@name`) has no file permissions: any local uid got Status,
Encrypt and Decrypt (a decrypt oracle for stolen etcd backups). Now abstract names are refused
unless client ids restrict them or `--insecure-abstract-listen-address` is given, and
`--allowed-client-uid/--allowed-client-gid` are checked with SO_PEERCRED on every accepted
connection: a refused peer is closed before a byte is read, counted in
`vault_kube_kms_grpc_connections_refused_total{reason="peer"}` and logged at most once per 10 s.
The clients here are real processes of other uids (setpriv) speaking the HTTP/2 preface."""
import os
import subprocess
import time
import urllib.request

import shutil
import tempfile

import pytest

from kmstest.brokerhelpers import events, round_trip
from kmstest.plugin import Plugin, as_user, installed_bin_dir
from kmstest.ports import free_port

OTHER_UID = 65533
FRONT_UID = 65534  # nobody: the spawned front's own uid

# Connects, sends the HTTP/2 client preface and an empty SETTINGS frame, prints what came back.
RAW_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
path = sys.argv[1]
try:
    s.connect("\0" + path[1:] if path.startswith("@") else path)
except ConnectionRefusedError:
    print("refused")
    sys.exit(0)
s.settimeout(3)
try:
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    data = s.recv(4096)
except (socket.timeout, ConnectionResetError, BrokenPipeError):
    data = b""  # closed by the server before or after the preface
print("answer", len(data), data[3:4].hex() if len(data) > 3 else "-")
"""


def _raw_client(path, uid, gid):
    result = subprocess.run(as_user(uid, gid) + ["/usr/bin/python3", "-c", RAW_CLIENT, path],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _metric(port, name, labels):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{labels}}} not in /metrics:\n{text}")


@pytest.fixture()
def open_workdir():
    """A directory other uids can traverse (pytest's own are under a 0700 parent)."""
    directory = tempfile.mkdtemp(prefix="vkk-clients-", dir="/tmp")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_only_allowed_uids_root_and_the_front_itself_get_an_answer(vault, open_workdir):
    workdir = open_workdir
    port = free_port()
    running = Plugin(vault, workdir, extra_args=[
        "--allowed-client-uid", "0", "--socket-group", str(OTHER_UID), "--metrics-port", str(port),
        "--health-port", "0"])
    try:
        # Another uid in the socket's group: file permissions let it connect, the front does not.
        for _ in range(5):
            assert _raw_client(running.socket, OTHER_UID, OTHER_UID) == ["answer", "0", "-"]
        # The control: the front's own uid (the exec probe's) gets the server's SETTINGS frame.
        answer = _raw_client(running.socket, FRONT_UID, OTHER_UID)
        assert answer[0] == "answer" and int(answer[1]) > 0 and answer[2] == "04", answer
        round_trip(running)  # root, the allowed uid
        assert _metric(port, "vault_kube_kms_grpc_connections_refused_total", 'reason="peer"') == 5
        refused = events(running, "front.client_refused")
        # Rate-limited: one line for five refusals within 10 s.
        assert len(refused) == 1 and refused[0]["peer_uid"] == str(OTHER_UID), refused
        assert refused[0]["allowed_uid"] == "0"
    finally:
        running.stop()


def test_an_abstract_kms_socket_is_refused_unless_restricted_or_explicitly_allowed(vault, workdir):
    name = f"vkk-kms-{os.getpid()}-{time.time_ns()}"
    base = [os.path.join(installed_bin_dir(), "vault-kube-kms"), "--listen-address", f"unix:///@{name}",
            "--vault-address", vault.address, "--vault-key-path", vault.key_path, "--auth-mount", vault.auth_mount,
            "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path,
            "--health-port", "0", "--metrics-port", "0"]
    result = subprocess.run(base, capture_output=True, text=True, timeout=20)
    assert result.returncode == 1 and "abstract KMS socket unix:///@" in result.stderr, result.stderr
    front = subprocess.run(
        [os.path.join(installed_bin_dir(), "vault-kube-kms-front"), "--broker-address", "unix:///run/none.sock",
         "--listen-address", f"unix:///@{name}", "--health-port", "0", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=20)
    assert front.returncode == 64 and "abstract KMS socket unix:///@" in front.stderr, front.stderr


def test_an_abstract_kms_socket_restricted_to_root_refuses_other_uids(vault, workdir):
    name = f"vkk-kms-{os.getpid()}-{time.time_ns()}"
    args = [os.path.join(installed_bin_dir(), "vault-kube-kms"), "--listen-address", f"unix:///@{name}",
            "--vault-address", vault.address, "--vault-key-path", vault.key_path, "--auth-mount", vault.auth_mount,
            "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path,
            "--allowed-client-uid", "0", "--health-port", "0", "--metrics-port", "0"]
    with open(os.path.join(workdir, "abstract.log"), "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 20
            answer = []
            while time.time() < deadline:
                answer = _raw_client("@" + name, 0, 0)
                if answer[0] == "answer" and answer[1] != "0":
                    break
                time.sleep(0.2)
            assert answer[:1] == ["answer"] and answer[2] == "04", answer  # root is served
            assert _raw_client("@" + name, OTHER_UID, OTHER_UID) == ["answer", "0", "-"]
        finally:
            proc.terminate()
            proc.wait(15)
