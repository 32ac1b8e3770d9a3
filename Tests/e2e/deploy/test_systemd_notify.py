"""The systemd service-manager protocol, received on a fake NOTIFY_SOCKET (a Python datagram
socket with SO_PASSCRED, so every message carries the sender's pid): READY=1 only once the
process can serve, STATUS= lines, WATCHDOG=1 keep-alives when WATCHDOG_USEC is set, STOPPING=1
on SIGTERM, in that order. In the spawn topology only the broker notifies."""
import os
import signal
import socket
import struct
import tempfile
import threading
import time

import pytest

from kmstest import kmsclient
from kmstest.plugin import Plugin
from kmstest.splitplugin import SplitPlugin

WATCHDOG_USEC = "400000"  # 0.4 s: keep-alives every 0.2 s


class FakeNotifySocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vkk-notify-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)  # the front sends as nobody
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.messages = []  # (pid, assignment) in arrival order
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        size = socket.CMSG_SPACE(struct.calcsize("3i"))
        while self.running:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, size)
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:12])[0]
            with self.lock:
                for line in data.decode().split("\n"):
                    if line:
                        self.messages.append((pid, line))

    def env(self):
        return {"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": WATCHDOG_USEC}

    def lines(self):
        with self.lock:
            return [line for _, line in self.messages]

    def senders(self):
        with self.lock:
            return {pid for pid, _ in self.messages}

    def wait_for(self, line, timeout=15, prefix=False):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(got == line or (prefix and got.startswith(line)) for got in self.lines()):
                return
            time.sleep(0.05)
        raise AssertionError(f"{line!r} not received; got {self.lines()}")

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture()
def notify():
    fake = FakeNotifySocket()
    yield fake
    fake.close()


def check_order(lines):
    """READY=1 once, STATUS= and WATCHDOG=1 before STOPPING=1, which comes last of the four kinds."""
    assert lines.count("READY=1") == 1, lines
    ready = lines.index("READY=1")
    stopping = lines.index("STOPPING=1")
    assert ready < stopping
    assert any(line.startswith("STATUS=") for line in lines[:stopping]), lines
    assert any(line == "WATCHDOG=1" for line in lines[ready:stopping]), lines


def test_split_broker_notifies_ready_status_watchdog_stopping_in_order(vault, workdir, notify):
    running = SplitPlugin(vault, workdir, broker_env=notify.env())
    try:
        notify.wait_for("READY=1")
        notify.wait_for("STATUS=serving ", prefix=True)  # logged in, key read: healthy
        time.sleep(0.6)  # at least two keep-alive periods
        assert notify.lines().count("WATCHDOG=1") >= 2
        running.broker.proc.send_signal(signal.SIGTERM)
        assert running.broker.proc.wait(15) == 0
        notify.wait_for("STOPPING=1")
    finally:
        running.stop()
    check_order(notify.lines())
    assert any(line.startswith("STATUS=serving ") for line in notify.lines()), notify.lines()
    assert notify.senders() == {running.broker.proc.pid}


def test_split_front_is_ready_only_after_the_broker_handshake(vault, workdir, notify):
    running = SplitPlugin(vault, workdir, start_front=False, front_env=notify.env())
    try:
        running.broker.stop()
        running.start_front()
        notify.wait_for("STATUS=broker unavailable")
        time.sleep(0.6)
        lines = notify.lines()
        assert "READY=1" not in lines  # listening, but no broker: not ready
        assert "WATCHDOG=1" in lines  # alive all the same
        running.start_broker()
        running.wait_healthy()
        notify.wait_for("READY=1")
        assert any(line.startswith("STATUS=serving ") for line in notify.lines())
        time.sleep(0.5)
        running.front.proc.send_signal(signal.SIGTERM)
        assert running.front.proc.wait(15) == 0
        notify.wait_for("STOPPING=1")
    finally:
        running.stop()
    check_order(notify.lines())
    assert notify.senders() == {running.front.proc.pid}


def test_socket_activated_front_notifies_too(vault, workdir, notify):
    running = SplitPlugin(vault, workdir, mode="activation", start_front=False)
    # systemd-socket-activate passes on only the variables named with -E.
    running.front_args = []
    original = running.front_command

    def with_env():
        command = original()
        return [command[0], "-E", f"NOTIFY_SOCKET={notify.path}", "-E", f"WATCHDOG_USEC={WATCHDOG_USEC}",
                *command[1:]]

    running.front_command = with_env
    try:
        running.start_front()
        running.wait_healthy()
        notify.wait_for("READY=1")
        time.sleep(0.5)
        running.front.proc.send_signal(signal.SIGTERM)
        assert running.front.proc.wait(15) == 0
        notify.wait_for("STOPPING=1")
    finally:
        running.stop()
    check_order(notify.lines())


def test_spawn_topology_only_the_broker_notifies(vault, workdir, notify):
    plugin = Plugin(vault, workdir, env={**os.environ, **notify.env()})
    try:
        notify.wait_for("READY=1")
        front_pid = plugin.front_pid()
        time.sleep(0.6)
    finally:
        plugin.stop()
    notify.wait_for("STOPPING=1")
    check_order(notify.lines())
    assert notify.senders() == {plugin.proc.pid}
    assert front_pid not in notify.senders()
