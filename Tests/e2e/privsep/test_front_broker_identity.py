"""Issue 13 finding 2: the front checks who its broker is before it says HELLO.

An unprivileged user who binds the broker's address (an abstract name is free for anyone while the
broker restarts) used to receive the front's HELLO and then every DEK seed. Now the front reads
the peer's SO_PEERCRED on the connected socket first and sends nothing unless the uid is
`--broker-uid` (default: the owner of the broker socket path; uid 0 always) and, if given, the gid
is `--broker-gid`; abstract broker names are refused without `--insecure-abstract-broker-address`.
The impostor here is a real process running as another uid (setpriv), which records every byte it
receives."""
import os
import subprocess
import tempfile
import time

import pytest

from kmstest.plugin import as_user, installed_bin_dir
from kmstest.process import json_events

IMPOSTOR_UID = 65533

# Binds a SOCK_SEQPACKET socket, accepts for `seconds`, prints "accepted" and "received N" lines.
IMPOSTOR = r"""
import socket, sys, time
address, seconds = sys.argv[1], float(sys.argv[2])
listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
listener.bind("\0" + address[1:] if address.startswith("@") else address)
listener.listen(8)
listener.settimeout(0.2)
print("listening", flush=True)
deadline = time.time() + seconds
while time.time() < deadline:
    try:
        conn, _ = listener.accept()
    except socket.timeout:
        continue
    print("accepted", flush=True)
    conn.settimeout(0.5)
    try:
        data = conn.recv(8192)
        print("received", len(data), flush=True)
    except socket.timeout:
        pass
    conn.close()
"""


class Impostor:
    def __init__(self, address, seconds=3.5, uid=IMPOSTOR_UID, gid=IMPOSTOR_UID):
        self.proc = subprocess.Popen(
            as_user(uid, gid) + ["/usr/bin/python3", "-c", IMPOSTOR, address, str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout.readline().strip() == "listening", self.proc.stdout.read()

    def finish(self):
        output, _ = self.proc.communicate(timeout=20)
        return output.split("\n")


def _front(workdir, broker_address, *extra, wait=2.0):
    """Runs the front for `wait` seconds against `broker_address`; returns (exit status or None,
    log events, log text)."""
    log_path = os.path.join(workdir, f"front-{time.time_ns()}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [os.path.join(installed_bin_dir(), "vault-kube-kms-front"), "--broker-address", broker_address,
             "--listen-address", f"unix://{workdir}/kms-{time.time_ns()}.sock", "--health-port", "0",
             "--metrics-port", "0", *extra],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            status = proc.wait(wait)
        except subprocess.TimeoutExpired:
            status = None
            proc.terminate()
            proc.wait(10)
    with open(log_path) as handle:
        text = handle.read()
    return status, json_events(text), text


@pytest.fixture()
def impostor_dir():
    directory = tempfile.mkdtemp(prefix="vkk-impostor-", dir="/tmp")
    os.chmod(directory, 0o755)
    os.chown(directory, IMPOSTOR_UID, IMPOSTOR_UID)
    yield directory
    subprocess.run(["rm", "-rf", directory], check=False)


def test_an_abstract_broker_address_is_refused_at_start_without_the_development_flag(workdir):
    status, events, text = _front(workdir, f"unix:///@vkk-broker-{time.time_ns()}")
    # A configuration error: printed by the argument parser, exit status 64, nothing connected.
    assert status == 64 and "abstract broker address unix:///@vkk-broker-" in text, text
    # The broker refuses to listen on one too.
    result = subprocess.run(
        [os.path.join(installed_bin_dir(), "vault-kube-kms"), "broker", "--broker-listen-address",
         f"unix:///@vkk-broker-{time.time_ns()}", "--allowed-front-uid", "65534", "--vault-address",
         "http://127.0.0.1:1", "--vault-key-path", "transit/keys/k", "--approle-role-id", "r",
         "--approle-secret-id-path", "/nonexistent/secret-id"],
        capture_output=True, text=True, timeout=20)
    assert result.returncode == 1 and "abstract broker address" in result.stderr, result.stderr


def test_an_impostor_on_an_abstract_name_gets_no_hello(workdir):
    name = f"@vkk-impostor-{time.time_ns()}"
    impostor = Impostor(name)
    status, events, text = _front(workdir, f"unix:///{name}", "--insecure-abstract-broker-address", "--broker-uid", "0")
    lines = impostor.finish()
    assert status is None  # the front keeps running and retrying
    refused = [e for e in events if e.get("event") == "front.broker_refused"]
    assert refused and refused[0]["peer_uid"] == str(IMPOSTOR_UID) and refused[0]["expected_uid"] == "0", events
    assert "accepted" in lines  # it did connect ...
    assert not [line for line in lines if line.startswith("received") and line != "received 0"], lines  # ... and sent nothing
    assert not [e for e in events if e.get("event") == "broker.connected"]


def test_an_abstract_broker_address_needs_an_explicit_broker_uid(workdir):
    status, events, text = _front(workdir, f"unix:///@vkk-broker-{time.time_ns()}", "--insecure-abstract-broker-address")
    assert status == 64 and "--broker-uid is required with an abstract --broker-address" in text, text


def test_a_broker_socket_bound_by_another_uid_than_configured_gets_no_hello(workdir, impostor_dir):
    path = os.path.join(impostor_dir, "broker.sock")
    impostor = Impostor(path)
    status, events, text = _front(workdir, f"unix://{path}", "--broker-uid", "0")
    lines = impostor.finish()
    assert status is None
    refused = [e for e in events if e.get("event") == "front.broker_refused"]
    assert refused and refused[0]["peer_uid"] == str(IMPOSTOR_UID), events
    assert not [line for line in lines if line.startswith("received") and line != "received 0"], lines


def test_a_broker_gid_other_than_configured_gets_no_hello(workdir, impostor_dir):
    path = os.path.join(impostor_dir, "broker.sock")
    impostor = Impostor(path)
    status, events, text = _front(
        workdir, f"unix://{path}", "--broker-uid", str(IMPOSTOR_UID), "--broker-gid", "12345")
    lines = impostor.finish()
    refused = [e for e in events if e.get("event") == "front.broker_refused"]
    assert refused and "gid" in refused[0]["reason"] and refused[0]["expected_gid"] == "12345", events
    assert not [line for line in lines if line.startswith("received") and line != "received 0"], lines


def test_by_default_the_owner_of_the_broker_socket_is_the_expected_broker(workdir, impostor_dir):
    # The control: the same listener, owning its socket file, is accepted by default and gets
    # the HELLO (so the refusals above are the check, not a broken connection).
    path = os.path.join(impostor_dir, "broker.sock")
    impostor = Impostor(path)
    status, events, text = _front(workdir, f"unix://{path}")
    lines = impostor.finish()
    assert not [e for e in events if e.get("event") == "front.broker_refused"], events
    assert [line for line in lines if line.startswith("received") and line != "received 0"], lines
