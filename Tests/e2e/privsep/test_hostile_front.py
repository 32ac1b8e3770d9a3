"""A hostile front: the test itself speaks broker protocol v1 on the broker's socket, in the spawn,
split and one-uid topologies.

Split: a helper process running as the front's uid (nobody) connects to the broker's listening
socket (so SO_PEERCRED shows the allowed uid) and hands the connection to the test; the real front
stays connected next to it and must keep serving.

Spawn: the broker is started with `--front-executable` pointing at a tiny wrapper. On its first start the
wrapper hands its broker connection (fd 3) to the test over a Unix socket (SCM_RIGHTS) and waits;
on later starts (the broker restarts the front after dropping a hostile connection) nobody is
listening and the wrapper execs the real front.

One uid: the spawn case with the broker started unprivileged with `--one-uid`, so the hostile front
has the broker's own uid (and, being the test's Python rather than the real front, no sandbox:
only the broker's validation stands in its way). The same results are expected.

So each test proves two things: the violation is refused (the connection is closed, nothing is answered) and the broker goes on serving the real
front afterwards."""
import os
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from kmstest import brokerproto as bp
from kmstest import simctl
from kmstest.oneuid import OneUIDPlugin, kernel_landlock_abi
from kmstest.plugin import Plugin, installed_bin_dir
from kmstest.splitplugin import NOBODY, SplitPlugin

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to spawn the front as another user")


WRAPPER = """#!/usr/bin/python3
import os, socket, sys
REAL = {real!r}
try:
    handoff = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    handoff.connect({path!r})
except OSError:
    os.execv(REAL, [REAL] + sys.argv[1:])
socket.send_fds(handoff, [b"fd"], [3])
handoff.recv(1)  # wait until the test is done with the connection
"""


def field(data):
    return struct.pack(">H", len(data)) + data


class HostileConnection:
    """One broker connection held by the test (`conn`)."""

    def _adopt(self, fd):
        self.conn = socket.socket(fileno=fd)
        assert self.conn.type == socket.SOCK_SEQPACKET
        self.conn.settimeout(10)
        self.next_id = 1
        self.rejects_before = len(self._rejects())

    def send(self, packet):
        self.conn.send(packet)

    def request(self, msg_type, payload=b""):
        request_id = self.next_id
        self.next_id += 1
        self.send(bp.encode(msg_type, request_id, payload))
        return request_id

    def receive(self):
        """(type, request id, payload), or None when the broker closed the connection."""
        packet = self.conn.recv(bp.MAX_PACKET_BYTES + 1)
        return bp.decode(packet) if packet else None

    def hello(self):
        self.request(bp.HELLO_REQUEST, field(b"hostile"))
        msg_type, _, payload = self.receive()
        assert msg_type == bp.HELLO_ANSWER and payload[0] == 0
        max_in_flight = struct.unpack(">I", payload[-4:])[0]
        return max_in_flight

    def assert_closed(self):
        """The broker answers nothing more and closes the connection."""
        assert self.receive() is None

    def release_and_expect_real_front(self):
        """Closes the hostile connection; the real front must serve Status. Returns the
        broker.reject lines logged since this connection was opened."""
        self.conn.close()
        self._released()
        assert self.broker_alive()
        return self._rejects()[self.rejects_before:]


class SpawnHostile(HostileConnection):
    """Spawn topology: the wrapper's fd 3. With `one_uid` the broker runs unprivileged with
    `--one-uid`, so the hostile front has the broker's own uid (the one-uid topology)."""

    def __init__(self, vault, workdir, one_uid=False):
        self.dir = tempfile.mkdtemp(prefix="vkk-hostile-")
        os.chmod(self.dir, 0o755)
        self.handoff_path = os.path.join(self.dir, "handoff.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.handoff_path)
        os.chmod(self.handoff_path, 0o777)
        self.listener.listen(1)
        wrapper = os.path.join(self.dir, "front-wrapper")
        with open(wrapper, "w") as handle:
            handle.write(WRAPPER.format(real=os.path.join(installed_bin_dir(), "vault-kube-kms-front"),
                                        path=self.handoff_path))
        os.chmod(wrapper, 0o755)
        if one_uid:
            self.plugin = OneUIDPlugin(vault, extra_args=["--front-executable", wrapper], wait_ready=False)
            self.secret_id = self.plugin.secret_id
        else:
            self.plugin = Plugin(vault, workdir, extra_args=["--front-executable", wrapper], wait_ready=False)
            self.secret_id = vault.secret_id
        self.listener.settimeout(20)
        self.holder, _ = self.listener.accept()
        _, fds, _, _ = socket.recv_fds(self.holder, 16, 1)
        self.listener.close()
        os.unlink(self.handoff_path)  # later starts exec the real front
        self._adopt(fds[0])

    def _rejects(self):
        if not hasattr(self, "plugin"):
            return []
        return [e for e in self.plugin.log_events() if e.get("event") == "broker.reject"]

    def broker_alive(self):
        return self.plugin.proc.poll() is None

    def _released(self):
        """Lets the wrapper exit; the broker must restart a (real) front that serves Status."""
        self.holder.close()
        assert self.plugin.wait_healthy(timeout=30).healthz == "ok"

    def stop(self):
        self.plugin.stop()


CONNECT_AS_FRONT = """
import os, socket, sys
conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
conn.connect(sys.argv[1])
socket.send_fds(socket.socket(fileno=int(sys.argv[2])), [b"fd"], [conn.fileno()])
"""


class SplitHostile(HostileConnection):
    """Split topology: a connection opened by a process with the front's uid, next to the real front."""

    def __init__(self, split):
        self.split = split
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        helper = subprocess.run(
            # setpriv, not user=/group=: those make Python fork() (not vfork()), and grpcio's fork
            # handlers can deadlock the test process once channels exist.
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-c",
             CONNECT_AS_FRONT, split.broker_socket, str(theirs.fileno())],
            pass_fds=[theirs.fileno()], capture_output=True, timeout=10)
        theirs.close()
        assert helper.returncode == 0, helper.stderr
        _, fds, _, _ = socket.recv_fds(ours, 16, 1)
        ours.close()
        self.secret_id = split.vault.secret_id
        self._adopt(fds[0])

    def _rejects(self):
        return [e for e in self.split.broker.events() if e.get("event") == "broker.reject"]

    def broker_alive(self):
        return self.split.broker.proc.poll() is None

    def _released(self):
        assert self.split.front.proc.poll() is None, "the real front died"
        assert self.split.wait_healthy(timeout=10).healthz == "ok"

    def stop(self):
        pass


@pytest.fixture(scope="module")
def split(vault, tmp_path_factory):
    running = SplitPlugin(vault, str(tmp_path_factory.mktemp("split-hostile")))
    yield running
    running.stop()


@pytest.fixture(params=["spawn", "split", "one-uid"])
def hostile(request, vault, workdir):
    if request.param == "spawn":
        front = SpawnHostile(vault, workdir)
    elif request.param == "one-uid":
        if kernel_landlock_abi() < 6:
            pytest.skip("the one-uid topology needs Landlock ABI 6")
        front = SpawnHostile(vault, workdir, one_uid=True)
    else:
        front = SplitHostile(request.getfixturevalue("split"))
    yield front
    front.stop()


ENCRYPT_OK = struct.pack(">I", 3000) + field(b"uid") + field(os.urandom(32))


def bad_header(magic=b"KM", version=1, msg_type=bp.STATUS_REQUEST, length=None, reserved=0, payload=b""):
    declared = len(payload) if length is None else length
    return struct.pack(">2sBBIII", magic, version, msg_type, 9, declared, reserved) + payload


# Violations sent after a good HELLO: (name, packet).
VIOLATIONS = [
    ("unknown type", bp.encode(0x20, 9)),
    ("answer type from the front", bp.encode(bp.STATUS_ANSWER, 9, b"\0" + field(b"ok") + field(b"k"))),
    ("payload on METRICS", bp.encode(bp.METRICS_REQUEST, 9, b"\0")),
    ("second HELLO", bp.encode(bp.HELLO_REQUEST, 9, field(b"again"))),
    ("bad magic", bad_header(magic=b"XX")),
    ("bad version", bad_header(version=2)),
    ("reserved bits set", bad_header(reserved=1)),
    ("declared length longer than the packet", bad_header(length=10)),
    ("declared length shorter than the packet", bad_header(msg_type=bp.ENCRYPT_REQUEST, length=3, payload=ENCRYPT_OK)),
    ("truncated header", b"KM\x01\x04"),
    ("oversized packet", bp.encode(bp.ENCRYPT_REQUEST, 9, b"\0" * 5000)[:4200]),
    ("payload on STATUS", bp.encode(bp.STATUS_REQUEST, 9, b"\0")),
    ("trailing byte after ENCRYPT fields", bp.encode(bp.ENCRYPT_REQUEST, 9, ENCRYPT_OK + b"\0")),
    ("plaintext above 512 bytes", bp.encode(
        bp.ENCRYPT_REQUEST, 9, struct.pack(">I", 3000) + field(b"u") + field(b"p" * 513))),
    ("empty plaintext", bp.encode(bp.ENCRYPT_REQUEST, 9, struct.pack(">I", 3000) + field(b"u") + field(b""))),
    ("uid above 128 bytes", bp.encode(
        bp.ENCRYPT_REQUEST, 9, struct.pack(">I", 3000) + field(b"u" * 129) + field(b"p"))),
    ("uid not UTF-8", bp.encode(bp.ENCRYPT_REQUEST, 9, struct.pack(">I", 3000) + field(b"\xff\xfe") + field(b"p"))),
    ("key_id above 1024 bytes", bp.encode(
        bp.DECRYPT_REQUEST, 9, struct.pack(">I", 3000) + field(b"u") + field(b"k" * 1025) + field(b"vault:v1:QQ=="))),
    ("field length past the end", bp.encode(bp.DECRYPT_REQUEST, 9, struct.pack(">I", 3000) + b"\x10\x00u")),
    ("garbage", os.urandom(300)),
]


@pytest.mark.parametrize("name,packet", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_violation_closes_the_connection_and_the_broker_serves_the_real_front(hostile, name, packet):
    hostile.hello()
    hostile.send(packet)
    hostile.assert_closed()
    rejects = hostile.release_and_expect_real_front()
    assert rejects, "no broker.reject line"
    assert hostile.broker_alive()


def test_status_before_hello_is_refused(hostile):
    hostile.request(bp.STATUS_REQUEST)
    hostile.assert_closed()
    assert hostile.release_and_expect_real_front()


def test_metrics_before_hello_is_refused(hostile):
    hostile.request(bp.METRICS_REQUEST)
    hostile.assert_closed()
    assert hostile.release_and_expect_real_front()


def test_encrypt_before_hello_is_refused(hostile):
    hostile.request(bp.ENCRYPT_REQUEST, ENCRYPT_OK)
    hostile.assert_closed()
    assert hostile.release_and_expect_real_front()


def test_allowed_requests_give_only_encrypt_and_decrypt_under_the_configured_key(hostile, vault):
    hostile.hello()
    request_id = hostile.request(bp.ENCRYPT_REQUEST, ENCRYPT_OK)
    msg_type, answered, payload = hostile.receive()
    assert (msg_type, answered, payload[0]) == (bp.ENCRYPT_ANSWER, request_id, 0)
    ciphertext_length = struct.unpack(">H", payload[1:3])[0]
    ciphertext = payload[3:3 + ciphertext_length]
    key_id = payload[5 + ciphertext_length:]
    assert ciphertext.startswith(b"vault:v")
    # A key_id that is not the configured key's is refused before any Vault call.
    foreign = b"transit-v1-" + b"0" * 32
    hostile.request(bp.DECRYPT_REQUEST, struct.pack(">I", 3000) + field(b"u") + field(foreign) + field(ciphertext))
    assert hostile.receive()[2] == bytes([bp.CODES["unknown-key-id"]])
    # A ciphertext of another key (same shape, other key material) fails to decrypt.
    other = vault.root.secrets.transit.encrypt_data(
        name=vault.key, plaintext="QUJD", mount_point=vault.mount)["data"]["ciphertext"].encode()
    tampered = other[:-6] + (b"AAAAAA" if not other.endswith(b"AAAAAA") else b"BBBBBB")
    hostile.request(bp.DECRYPT_REQUEST, struct.pack(">I", 3000) + field(b"u") + field(key_id) + field(tampered))
    assert hostile.receive()[2] == bytes([bp.CODES["decrypt-failed"]])
    hostile.request(bp.HEARTBEAT_REQUEST)
    assert hostile.receive()[2] == b"\0"
    assert hostile.release_and_expect_real_front() == []  # nothing above was a violation


@pytest.mark.simulator_only("latency rule (/_sim/faults) that keeps calls in flight past the limit")
def test_flood_beyond_the_in_flight_limit_is_answered_too_many_requests(hostile, vault):
    limit = hostile.hello()
    fault = {"paths": [f"{vault.mount}/encrypt"], "latency_ms": 1500}
    simctl.add_fault(vault, {"clear": True, **fault})
    try:
        extra = 20
        sent = [hostile.request(bp.ENCRYPT_REQUEST, ENCRYPT_OK) for _ in range(limit + extra)]
        answers = {}
        deadline = time.time() + 30
        while len(answers) < len(sent) and time.time() < deadline:
            msg_type, request_id, payload = hostile.receive()
            assert msg_type == bp.ENCRYPT_ANSWER
            answers[request_id] = payload[0]
    finally:
        simctl.clear_faults(vault)
    codes = list(answers.values())
    assert len(answers) == len(sent)
    assert codes.count(bp.CODES["too-many-requests"]) >= extra
    assert codes.count(0) >= 1
    assert set(codes) <= {0, bp.CODES["too-many-requests"]}
    # The connection is still usable: the flood is refused, not a violation.
    hostile.request(bp.HEARTBEAT_REQUEST)
    assert hostile.receive()[2] == b"\0"
    assert hostile.release_and_expect_real_front() == []


@pytest.mark.simulator_only("list of live token values (/_sim/tokens)")
def test_no_answer_ever_carries_the_token_or_the_secret_id(hostile, vault):
    hostile.hello()
    received = b""
    for msg_type, payload in [(bp.STATUS_REQUEST, b""), (bp.ENCRYPT_REQUEST, ENCRYPT_OK), (bp.HEARTBEAT_REQUEST, b""),
                              (bp.METRICS_REQUEST, b"")]:
        hostile.request(msg_type, payload)
        received += hostile.receive()[2]
    tokens = [t["id"].encode() for t in simctl.tokens(vault)]
    for secret in tokens + [hostile.secret_id.encode()]:
        assert secret not in received
    assert b"hvs." not in received
    hostile.release_and_expect_real_front()
