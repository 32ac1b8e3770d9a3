"""The processes a benchmark runs against: the Vault simulator configured like an operator would
(Transit key, least-privilege policy, AppRole) and the plugin started in the spawn topology from a
given build directory, with a fake NOTIFY_SOCKET so that exec -> READY=1 can be timed."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "Tests", "e2e"))

from kmstest import vaultenv  # noqa: E402

BINARIES = ("vault-kube-kms", "vault-kube-kms-front")


def install_binaries(build_dir):
    """Copies both executables into a fresh 0755 directory: the front runs as `nobody` when the
    broker is root, so it must be able to execute its binary."""
    target = tempfile.mkdtemp(prefix="vkk-bench-bin-")
    os.chmod(target, 0o755)
    for name in BINARIES:
        source = os.path.join(build_dir, name)
        if not os.path.exists(source):
            raise SystemExit(f"{source} is missing: build it first (swift build -c release)")
        shutil.copy2(source, os.path.join(target, name))
        os.chmod(os.path.join(target, name), 0o755)
    return target


class Vault:
    """The simulator plus its configuration, and a token of the plugin's own policy for the
    direct client (so the direct call crosses the same ACL as the plugin's call)."""

    def __init__(self, workdir):
        self.server = vaultenv.SimulatorProcess()
        self.address = self.server.address
        self.setup = vaultenv.VaultSetup(self.address, self.server.root_token, workdir)
        login = self.setup.root.auth.approle.login(
            role_id=self.setup.role_id, secret_id=self.setup.new_secret_id(), mount_point=self.setup.auth_mount,
            use_token=False)
        self.token = login["auth"]["client_token"]
        self.pid = self.server.proc.pid

    def stats(self):
        """The simulator's request counters by Vault path (GET /_sim/stats)."""
        with urllib.request.urlopen(self.address + "/_sim/stats", timeout=10) as answer:
            return json.load(answer)

    def stop(self):
        self.server.stop()


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, f"notify-{time.time_ns()}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def wait_for(self, state, timeout):
        """Seconds (perf_counter) when a datagram containing `state` arrived, or None."""
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return None
            if state.encode() in data.split(b"\n"):
                return time.perf_counter()

    def close(self):
        self.sock.close()
        os.unlink(self.path)


class Plugin:
    """`vault-kube-kms` (broker) spawning `vault-kube-kms-front`, both from `bin_dir`."""

    def __init__(self, vault, bin_dir, workdir, log_level="info", wrapper=(), ready_timeout=30,
                 extra_args=()):
        run = os.path.join(workdir, "run")
        os.makedirs(run, mode=0o755, exist_ok=True)
        self.socket = os.path.join(run, f"kms-{time.time_ns()}.sock")
        self.notify = NotifySocket(workdir)
        setup = vault.setup
        args = [
            *wrapper, os.path.join(bin_dir, "vault-kube-kms"),
            "--listen-address", f"unix://{self.socket}",
            "--vault-address", vault.address, "--vault-key-path", setup.key_path,
            "--auth-mount", setup.auth_mount, "--approle-role-id", setup.role_id,
            "--approle-secret-id-path", setup.secret_id_path, "--log-level", log_level, *extra_args,
        ]
        if os.geteuid() != 0:
            args.append("--insecure-same-user")
        self.log_path = os.path.join(workdir, f"plugin-{time.time_ns()}.log")
        self.log = open(self.log_path, "wb")
        env = {**os.environ, "NOTIFY_SOCKET": self.notify.path}
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        ready = self.notify.wait_for("READY=1", timeout=ready_timeout)
        if ready is None:
            self.stop()
            raise RuntimeError(f"no READY=1 within {ready_timeout} s:\n" + open(self.log_path, errors="replace").read())
        self.ready_seconds = ready - self.started
        self.broker_pid = self.proc.pid
        self.front_pid = self._front_pid()

    def _front_pid(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as handle:
                children = [int(pid) for pid in handle.read().split()]
            if children:
                return children[0]
            time.sleep(0.01)
        raise RuntimeError("the broker has no front child")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.notify.close()
