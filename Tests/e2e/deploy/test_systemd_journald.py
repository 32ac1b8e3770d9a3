"""Native journald logging, end to end: the processes write journal entries with
sd_journal_sendv, which always sends to /run/systemd/journal/socket. No journald runs here, so
the test binds a fake journal socket at that path (only when nothing is there) and decodes the
native protocol datagrams: PRIORITY, SYSLOG_IDENTIFIER, MESSAGE and upper-case event fields.
The backend is chosen with --log-format journald, or automatically when JOURNAL_STREAM names
stderr."""
import os
import signal
import socket
import struct
import threading
import time

import pytest

from kmstest import kmsclient
from kmstest.splitplugin import SplitPlugin

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def parse_entry(data):
    """The journal native protocol: `NAME=value\\n`, or `NAME\\n<le64 size><value>\\n` for binary values."""
    fields = {}
    position = 0
    while position < len(data):
        newline = data.index(b"\n", position)
        line = data[position:newline]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            position = newline + 1
        else:
            name = line
            size = struct.unpack("<Q", data[newline + 1:newline + 9])[0]
            value = data[newline + 9:newline + 9 + size]
            position = newline + 9 + size + 1
        fields[name.decode()] = value.decode(errors="replace")
    return fields


class FakeJournal:
    def __init__(self):
        self.created_dirs = []
        for directory in ("/run/systemd", "/run/systemd/journal"):
            if not os.path.isdir(directory):
                os.mkdir(directory, 0o755)
                self.created_dirs.append(directory)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(JOURNAL_SOCKET)
        os.chmod(JOURNAL_SOCKET, 0o666)  # the front logs as nobody
        self.sock.settimeout(0.2)
        self.entries = []
        self.raw = []
        self.running = True
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while self.running:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            self.raw.append(data)
            self.entries.append(parse_entry(data))

    def find(self, event, identifier=None, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in list(self.entries):
                if entry.get("EVENT") == event and identifier in (None, entry.get("SYSLOG_IDENTIFIER")):
                    return entry
            time.sleep(0.05)
        raise AssertionError(f"no {event} entry; got {[e.get('EVENT') for e in self.entries]}")

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()
        os.unlink(JOURNAL_SOCKET)
        for directory in reversed(self.created_dirs):
            os.rmdir(directory)


@pytest.fixture()
def journal():
    if os.path.exists(JOURNAL_SOCKET):
        pytest.skip("a journal socket already exists here; this test needs the path for its fake journal")
    fake = FakeJournal()
    yield fake
    fake.close()


def test_log_format_journald_sends_native_entries_with_upper_case_fields(vault, workdir, journal):
    running = SplitPlugin(vault, workdir, broker_args=["--log-format", "journald"],
                          front_args=["--log-format", "journald"])
    try:
        started = journal.find("broker.started", "vault-kube-kms")
        assert started["PRIORITY"] == "6"
        assert started["PROCESS"] == "broker"
        assert started["KEY_PATH"] == vault.key_path
        assert started["MESSAGE"].startswith("broker.started ")
        assert f"key_path={vault.key_path}" in started["MESSAGE"]
        front = journal.find("front.start", "vault-kube-kms-front")
        assert front["PROCESS"] == "front" and front["PID"] == str(running.front.proc.pid)
        # A debug call line from the front carries the call's fields, at priority 7.
        running.client().Status(kmsclient.stubs()[0].StatusRequest(), timeout=3)
        call = journal.find("kms.call", "vault-kube-kms-front")
        assert call["PRIORITY"] == "7" and call["METHOD"] == "Status" and call["GRPC_STATUS"] == "0"
        # A refused peer is a warning (4).
        refused = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        refused.connect(running.broker_socket)  # as root: not the allowed uid
        refused.close()
        assert journal.find("broker.peer_refused", "vault-kube-kms")["PRIORITY"] == "4"
        # With the journal as the log, nothing goes to stderr.
        assert running.broker.text().strip() == ""
    finally:
        running.stop()
    everything = b"".join(journal.raw)
    assert vault.secret_id.encode() not in everything


def test_journald_is_chosen_when_stderr_is_the_journal_stream(vault, workdir, journal):
    running = SplitPlugin(vault, workdir, start_front=False)
    running.broker.stop()
    # The next broker's stderr is this file, and JOURNAL_STREAM names exactly it.
    log_path = os.path.join(workdir, "journal-stream.log")
    open(log_path, "wb").close()
    info = os.stat(log_path)
    running.broker_env = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
    running.start_broker(log_path)
    try:
        journal.find("broker.started", "vault-kube-kms")
        assert running.broker.text().strip() == ""
    finally:
        running.stop()


def test_a_journal_stream_that_is_not_stderr_keeps_json_lines(vault, workdir, journal):
    running = SplitPlugin(vault, workdir, start_front=False, broker_env={"JOURNAL_STREAM": "1:1"})
    try:
        time.sleep(0.5)
        assert '"event":"broker.started"' in running.broker.text()
        assert not any(e.get("EVENT") == "broker.started" for e in journal.entries)
    finally:
        running.stop()


JOURNALD = "/lib/systemd/systemd-journald"


@pytest.fixture()
def real_journald():
    """A real systemd-journald (it runs standalone as root), read back with journalctl; removed
    with everything it created afterwards."""
    import shutil
    import subprocess

    if os.path.exists(JOURNAL_SOCKET):
        pytest.skip("a journal already runs here")
    if not os.access(JOURNALD, os.X_OK) or not shutil.which("journalctl"):
        pytest.skip("systemd-journald or journalctl not installed")
    created = [d for d in ("/run/systemd/journal", "/run/log") if not os.path.exists(d)]
    daemon = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(JOURNAL_SOCKET) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(JOURNAL_SOCKET), "systemd-journald did not start"
    yield
    daemon.terminate()
    daemon.wait(10)
    for directory in created:
        shutil.rmtree(directory, ignore_errors=True)


def journal_entries(pid):
    import json
    import subprocess

    result = subprocess.run(["journalctl", "--no-pager", "-o", "json", f"_PID={pid}"], capture_output=True,
                            text=True, timeout=20)
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_journalctl_shows_the_brokers_entries_with_their_fields(vault, workdir, real_journald):
    running = SplitPlugin(vault, workdir, broker_args=["--log-format", "journald"])
    try:
        pid = running.broker.proc.pid
        deadline = time.monotonic() + 10
        entries = []
        while time.monotonic() < deadline:
            entries = journal_entries(pid)
            if any(e.get("EVENT") == "broker.started" for e in entries):
                break
            time.sleep(0.2)
        started = next(e for e in entries if e.get("EVENT") == "broker.started")
        assert started["SYSLOG_IDENTIFIER"] == "vault-kube-kms"
        assert started["PRIORITY"] == "6"
        assert started["KEY_PATH"] == vault.key_path
        assert started["_TRANSPORT"] == "journal"  # native protocol, not stderr
    finally:
        running.stop()
    assert not any(vault.secret_id in json_text for json_text in map(str, journal_entries(pid)))
