"""The front's own sandbox (Landlock, seccomp, RLIMIT_CORE), checked on the running processes in the
spawn, split and one-uid topologies.

The forbidden operations are attempted by the real front, from inside its sandbox: debug builds
(the ones these tests run; release builds compile none of it) read VAULT_KUBE_KMS_SANDBOX_SELF_TEST
once at start-up and log one `sandbox.self_test` line per attempt (Sources/Front/SandboxSelfTest.swift).
In the spawn topologies the variable reaches the front through a `--front-executable` wrapper
that execs the real front (the broker gives the front an empty environment); in the split
topology through the front's environment. Needs root (setpriv to other uids, /proc/PID/mem)."""
import os
import re
import shlex
import socket
import tempfile
import time
import urllib.request
import uuid

import pytest

from kmstest import kmsclient
from kmstest.oneuid import ONE_UID, OneUIDPlugin, kernel_landlock_abi as kernel_abi
from kmstest.plugin import Plugin, installed_bin_dir, proc_status
from kmstest.ports import free_port
from kmstest.splitplugin import NOBODY, SplitPlugin
from test_privsep import live_tokens, memory_contains

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the processes as other uids")

SUPPORTED_ABI = 7


needs_landlock6 = pytest.mark.skipif(kernel_abi() < 6, reason="the one-uid topology needs Landlock ABI 6")


class Targets:
    """What the front will attempt: a live abstract socket, a free TCP port, a world-writable
    directory, and the broker's secret ID, pid and Vault address."""

    def __init__(self, vault, secret_id_path):
        self.abstract_name = f"vkk-sandbox-{uuid.uuid4().hex[:12]}"
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind("\0" + self.abstract_name)
        self.abstract.listen(8)
        self.dir = tempfile.mkdtemp(prefix="vkk-sandbox-")
        os.chmod(self.dir, 0o777)
        self.created = os.path.join(self.dir, "created-by-the-front")
        match = re.match(r"https?://(127\.0\.0\.1|localhost):(\d+)", vault.address)
        self.vault = f"127.0.0.1:{match.group(2)}" if match else None
        self.secret_id_path = secret_id_path
        self.health_port, self.metrics_port, self.other_port = free_port(), free_port(), free_port()

    def with_secret(self, path):
        self.secret_id_path = path
        return self

    def ports(self):
        return ["--health-port", str(self.health_port), "--metrics-port", str(self.metrics_port)]

    def spec(self, broker_pid=None, sigkill=True, exec_path="/bin/true", kill=False):
        pairs = {"secret": self.secret_id_path, "read": "/etc/passwd", "write": self.created,
                 "bind": self.other_port, "allowed": self.health_port, "abstract": self.abstract_name}
        if self.vault:
            pairs["vault"] = self.vault
        if broker_pid:
            pairs["pid"] = broker_pid
        if sigkill:
            pairs["sigkill"] = 1
        if exec_path:
            pairs["exec"] = exec_path
        if kill:
            pairs["kill"] = 1
        return ",".join(f"{k}={v}" for k, v in pairs.items())

    def wrapper(self, spec):
        """A --front-executable that execs the real front with the self-test variable set."""
        path = os.path.join(self.dir, "front-self-test")
        with open(path, "w") as handle:
            handle.write("#!/bin/sh\n"
                         f"VAULT_KUBE_KMS_SANDBOX_SELF_TEST={shlex.quote(spec)} "
                         f"exec {shlex.quote(os.path.join(installed_bin_dir(), 'vault-kube-kms-front'))} \"$@\"\n")
        os.chmod(path, 0o755)
        return path

    def close(self):
        self.abstract.close()


# What the sandboxed front must get for each attempt (the health port is the control: bind is
# allowed there, so it fails only because the front holds it already).
DENIED = {
    ("landlock", "open_secret_id"): "EACCES",
    ("landlock", "read_file"): "EACCES",
    ("landlock", "list_root"): "EACCES",
    ("landlock", "open_broker_mem"): "EACCES",
    ("landlock", "ptrace_broker"): "EPERM",
    ("landlock", "signal0_broker"): "EPERM",
    ("landlock", "sigkill_broker"): "EPERM",
    ("landlock", "create_file"): "EACCES",
    ("landlock", "tcp_connect_vault"): "EACCES",
    ("landlock", "tcp_bind_other"): "EACCES",
    ("landlock", "tcp_bind_health_port"): "EADDRINUSE",
    ("landlock", "abstract_connect"): "EPERM",
    ("landlock", "exec"): "EACCES",
    ("seccomp", "inet_socket"): "EAFNOSUPPORT",
}


def self_test_results(events):
    return {(e["phase"], e["attempt"]): e.get("result") for e in events
            if e.get("event") == "sandbox.self_test" and e.get("process") == "front"}


def wait_results(events, expected_count, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        results = self_test_results(events())
        if len(results) >= expected_count:
            return results
        time.sleep(0.1)
    return self_test_results(events())


def applied(events):
    found = [e for e in events if e.get("event") == "sandbox.applied" and e.get("process") == "front"]
    assert found, "no sandbox.applied line"
    return found[0]


def assert_denied(results, vault_is_local):
    expected = dict(DENIED)
    if not vault_is_local:
        expected.pop(("landlock", "tcp_connect_vault"))
    assert results == expected


def check_enforced(events, front_pid, metrics_port):
    line = applied(events)
    abi = min(kernel_abi(), SUPPORTED_ABI)
    assert int(line["landlock_abi"]) == abi
    assert line["seccomp"] == "true" and int(line["allowed_syscalls"]) > 20
    status = proc_status(front_pid)
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    assert f"vault_kube_kms_front_sandbox_landlock_abi {abi}" in text
    assert f"vault_kube_kms_front_sandbox_seccomp_syscalls {line['allowed_syscalls']}" in text
    assert "vault_kube_kms_front_sandbox_disabled 0" in text
    # The process_* figures still come from /proc/self after Landlock closed /proc (kept descriptors).
    assert re.search(r'process_open_fds\{process="front"\} \d+', text)
    assert re.search(r'process_resident_memory_bytes\{process="front"\} [1-9]', text)


def core_limit(pid):
    with open(f"/proc/{pid}/limits") as handle:
        for line in handle:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    return None


@pytest.fixture()
def targets(vault):
    made = Targets(vault, vault.secret_id_path)
    yield made
    made.close()


def test_spawn_front_is_sandboxed_and_denied_each_forbidden_operation(vault, workdir, targets):
    running = Plugin(vault, workdir, extra_args=["--front-executable", targets.wrapper(targets.spec()), *targets.ports()])
    try:
        front = running.front_pid()
        results = wait_results(running.log_events, len(DENIED))
        assert_denied(results, targets.vault is not None)
        assert not os.path.exists(targets.created)
        check_enforced(running.log_events(), front, targets.metrics_port)
        assert core_limit(front) == ["0", "0"] and core_limit(running.proc.pid) == ["0", "0"]
        assert running.proc.poll() is None, "the broker must survive the front's attempts"
    finally:
        running.stop()


def test_split_front_is_sandboxed_and_denied_each_forbidden_operation(vault, targets):
    split = SplitPlugin(vault, tempfile.mkdtemp(prefix="vkk-sandbox-split-"), start_front=False,
                        front_args=targets.ports())
    try:
        split.front_env = {"VAULT_KUBE_KMS_SANDBOX_SELF_TEST": targets.spec(broker_pid=split.broker.proc.pid)}
        split.start_front()
        split.wait_healthy()
        results = wait_results(split.front.events, len(DENIED))
        assert_denied(results, targets.vault is not None)
        line = applied(split.front.events())
        # The split front reconnects to a pathname broker socket: abstract sockets stay scoped.
        assert line["scoped_abstract_sockets"] == "true"
        check_enforced(split.front.events(), split.front.proc.pid, targets.metrics_port)
        assert core_limit(split.front.proc.pid) == ["0", "0"] and core_limit(split.broker.proc.pid) == ["0", "0"]
        # The sandboxed front still reconnects after the broker restarts (socket + connect on a path).
        split.broker.stop()
        split.start_broker()
        split.wait_healthy(timeout=30)
        assert split.front.proc.poll() is None
    finally:
        split.stop()


@needs_landlock6
def test_one_uid_front_is_sandboxed_and_denied_each_forbidden_operation(vault):
    targets = Targets(vault, None)
    running = None
    try:
        # The secret ID is the one-uid broker's own file: the wrapper is written once its path is known.
        wrapper = os.path.join(targets.dir, "front-self-test")
        running = OneUIDPlugin(vault, extra_args=["--front-executable", wrapper, *targets.ports()], wait_ready=False,
                               spec_hook=lambda plugin: targets.wrapper(
                                   targets.with_secret(plugin.secret_id_path).spec()))
        running.wait_healthy()
        front = running.front_pid()
        assert int(proc_status(front)["Uid"].split()[0]) == ONE_UID == int(proc_status(running.proc.pid)["Uid"].split()[0])
        results = wait_results(running.log_events, len(DENIED))
        assert_denied(results, targets.vault is not None)
        check_enforced(running.log_events(), front, targets.metrics_port)
        assert applied(running.log_events())["mode"] == "required"
        assert core_limit(front) == ["0", "0"] and core_limit(running.proc.pid) == ["0", "0"]
        assert running.proc.poll() is None
    finally:
        if running:
            running.stop()
        targets.close()


@needs_landlock6
def test_one_uid_without_the_sandbox_the_same_attempts_succeed(vault):
    """The control: with --front-sandbox off the same front, at the same uid, can read the secret
    ID, reach Vault, write files and reach the abstract socket; only the broker's non-dumpable
    flag still stops ptrace and /proc/PID/mem. So the denials above are the sandbox's work."""
    targets = Targets(vault, None)
    running = None
    try:
        wrapper = os.path.join(targets.dir, "front-self-test")
        running = OneUIDPlugin(
            vault, extra_args=["--front-executable", wrapper, "--front-sandbox", "off", *targets.ports()],
            wait_ready=False,
            spec_hook=lambda plugin: targets.wrapper(
                targets.with_secret(plugin.secret_id_path).spec(sigkill=False, exec_path=None)))
        running.wait_healthy()
        results = wait_results(running.log_events, len(DENIED) - 2)
        assert results[("landlock", "open_secret_id")] == "allowed"
        assert results[("landlock", "read_file")] == "allowed"
        assert results[("landlock", "list_root")] == "allowed"
        assert results[("landlock", "create_file")] == "allowed"
        assert results[("landlock", "tcp_bind_other")] == "allowed"
        assert results[("landlock", "abstract_connect")] == "allowed"
        assert results[("landlock", "signal0_broker")] == "allowed"
        assert results[("seccomp", "inet_socket")] == "allowed"
        if targets.vault:
            assert results[("landlock", "tcp_connect_vault")] == "allowed"
        assert results[("landlock", "ptrace_broker")] == "EPERM"  # non-dumpable
        assert results[("landlock", "open_broker_mem")] in ("EACCES", "EPERM")
        events = running.log_events()
        assert [e for e in events if e.get("event") == "sandbox.disabled" and e.get("level") == "error"]
        with urllib.request.urlopen(f"http://127.0.0.1:{targets.metrics_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        assert "vault_kube_kms_front_sandbox_disabled 1" in text
        assert "vault_kube_kms_front_sandbox_landlock_abi 0" in text
    finally:
        if running:
            running.stop()
        targets.close()


def test_seccomp_kills_the_front_on_a_syscall_it_never_makes(vault, workdir, targets):
    """personality(2), which the front never calls, after every other attempt: the filter kills
    the process with SIGSYS (signal 31) and the broker reports it and restarts the front."""
    running = Plugin(vault, workdir, wait_ready=False,
                     extra_args=["--front-executable", targets.wrapper(targets.spec(kill=True)), *targets.ports()])
    try:
        deadline = time.time() + 20
        exits = []
        while time.time() < deadline and not exits:
            exits = [e for e in running.log_events() if e.get("event") == "front.exited"]
            time.sleep(0.1)
        assert exits, running.log_text()
        assert exits[0]["status"] == "signal 31", exits[0]
        attempts = [e.get("attempt") for e in running.log_events() if e.get("event") == "sandbox.self_test"]
        assert "forbidden_syscall" in attempts and "forbidden_syscall_survived" not in attempts
    finally:
        running.stop()


@needs_landlock6
@pytest.mark.simulator_only("list of live token values (/_sim/tokens)")
def test_one_uid_front_memory_holds_neither_the_secret_id_nor_the_token(vault):
    running = OneUIDPlugin(vault)
    try:
        client = running.client()
        api = kmsclient.stubs()[0]
        for _ in range(20):
            encrypted = client.Encrypt(api.EncryptRequest(plaintext=os.urandom(32), uid="mem"), timeout=3)
            client.Decrypt(api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id), timeout=3)
        tokens = [t.encode() for t in live_tokens(vault)]
        assert tokens
        assert memory_contains(running.proc.pid, tokens), "scan did not find the token in the broker"
        assert memory_contains(running.front_pid(), tokens + [running.secret_id.encode()]) == set()
    finally:
        running.stop()


def test_one_uid_is_refused_as_root(vault, workdir):
    running = Plugin(vault, workdir, extra_args=["--one-uid"], wait_ready=False)
    try:
        assert running.proc.wait(timeout=20) == 1
        assert "--one-uid would run the front as root" in running.log_text()
    finally:
        running.stop()


def test_release_builds_contain_no_self_test():
    """The self-test is compiled only under `#if DEBUG`: the release front (what the Containerfile
    and every package ship) does not contain its trigger variable or its attempt names, while the
    debug front these tests run does (the control)."""
    from kmstest import plugin as plugin_module

    marker = b"VAULT_KUBE_KMS_SANDBOX_SELF_TEST"
    with open(os.path.join(plugin_module.build_dir(), "vault-kube-kms-front"), "rb") as handle:
        assert marker in handle.read()
    from kmstest import nspawnlane

    # The release build the systemd lane installs (built here if this test runs first; incremental).
    release = os.path.join(nspawnlane.release_bin_dir(), "vault-kube-kms-front")
    with open(release, "rb") as handle:
        binary = handle.read()
    assert marker not in binary and b"forbidden_syscall_survived" not in binary
    assert b"sandbox.landlock_unavailable" in binary  # the sandbox itself is there
