"""The split topologies end to end: `vault-kube-kms broker` and a separately started
`vault-kube-kms-front` (user nobody), with the front binding the KMS socket itself or started by
`systemd-socket-activate` on a socket it created. The core checks shared with the spawn topology
are in test_kms_contract.py; here is what only the split topologies have: SO_PEERCRED refusal,
broker restart, drains."""
import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from kmstest.kmsclient import api
from kmstest.plugin import as_user
from kmstest.splitplugin import NOBODY, SOCKET_ACTIVATE, SplitPlugin

KEY_ID = re.compile(r"^transit-v(\d+)-[0-9a-f]{32}$")
MODES = ["socket", pytest.param("activation", marks=pytest.mark.skipif(
    not SOCKET_ACTIVATE, reason="systemd-socket-activate not installed"))]


@pytest.fixture(scope="module", params=MODES)
def split(request, vault, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp(f"split-{request.param}"))
    os.chmod(workdir, 0o755)
    running = SplitPlugin(vault, workdir, mode=request.param)
    yield running
    running.stop()


# --- the core checks run once per topology in test_kms_contract.py; this one at the split's load --

def test_fifty_concurrent_encrypts_all_succeed(split):
    client = split.client()
    seeds = [os.urandom(32) for _ in range(50)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(
            lambda s: client.Encrypt(api().EncryptRequest(plaintext=s, uid="c"), timeout=10), seeds))
    assert len({r.ciphertext for r in results}) == 50


def test_front_runs_as_nobody_and_the_broker_saw_its_uid(split):
    front_pid = split.front.proc.pid  # systemd-socket-activate execs the front in place
    with open(f"/proc/{front_pid}/status") as handle:
        uids = next(line for line in handle if line.startswith("Uid:")).split()[1:]
    assert uids == [str(NOBODY)] * 4
    attached = [e for e in split.broker.events() if e.get("event") == "broker.front.attached"]
    assert attached and attached[-1]["peer_uid"] == str(NOBODY)


def test_activated_socket_is_served_and_never_unlinked(vault, workdir):
    if not SOCKET_ACTIVATE:
        pytest.skip("systemd-socket-activate not installed")
    running = SplitPlugin(vault, workdir, mode="activation")
    try:
        inode = os.stat(running.socket).st_ino
        assert "socket activation" in running.front.text()
    finally:
        codes = running.stop()
    assert codes["front"] == 0
    # The front did not create the socket and does not remove it: the activator owns it.
    assert os.path.exists(running.socket) and os.stat(running.socket).st_ino == inode


def test_activated_socket_wins_over_a_listen_address_naming_it(vault, workdir):
    # The shipped front unit names the socket with --listen-address and gets it from the socket
    # unit: the front must serve the inherited socket, not find the file live and stop.
    if not SOCKET_ACTIVATE:
        pytest.skip("systemd-socket-activate not installed")
    running = SplitPlugin(vault, workdir, mode="activation", start_front=False)
    running.front_args = ["--listen-address", f"unix://{running.socket}"]
    try:
        running.start_front()
        running.wait_healthy()
        inode = os.stat(running.socket).st_ino
    finally:
        codes = running.stop()
    assert codes["front"] == 0
    assert os.stat(running.socket).st_ino == inode


# --- SO_PEERCRED ----------------------------------------------------------------------------------

def test_a_peer_with_another_uid_is_refused_with_a_log_line(split):
    # uid 4242 in the socket's group may connect(2), but SO_PEERCRED says it is not the front.
    # The system interpreter: the one running pytest may live where uid 4242 cannot execute it.
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    probe = subprocess.run(
        as_user(4242, NOBODY) + [python, "-c", "import socket,sys\n"
         "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
         "s.settimeout(5)\n"
         "s.connect(sys.argv[1])\n"
         "print('closed' if s.recv(4096)==b'' else 'answered')\n", split.broker_socket],
        capture_output=True, text=True, timeout=20)
    assert probe.stdout.strip() == "closed", probe.stderr
    split.broker.wait_event("broker.peer_refused")
    refused = [e for e in split.broker.events() if e.get("event") == "broker.peer_refused"][-1]
    assert refused["peer_uid"] == "4242"
    # The real front is unaffected.
    assert split.client().Status(api().StatusRequest(), timeout=3).healthz == "ok"


def test_broker_requires_an_allowed_front_uid_or_gid(vault, workdir):
    from kmstest.plugin import installed_bin_dir
    v = vault
    result = subprocess.run(
        [os.path.join(installed_bin_dir(), "vault-kube-kms"), "broker",
         "--broker-listen-address", f"unix://{workdir}/b.sock", "--vault-address", v.address,
         "--vault-key-path", v.key_path, "--approle-role-id", v.role_id,
         "--approle-secret-id-path", v.secret_id_path], capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "--allowed-front-uid or --allowed-front-gid is required" in result.stderr
    assert not os.path.exists(f"{workdir}/b.sock")
