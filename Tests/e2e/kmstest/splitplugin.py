"""Runs the split topologies the way an operator deploys them: `vault-kube-kms broker` (root, the
only process that sees the secret ID) and `vault-kube-kms-front` (user nobody) started separately
and meeting on a SOCK_SEQPACKET Unix socket. The front binds the KMS socket itself
(`mode="socket"`) or is started by `systemd-socket-activate` on a socket it created
(`mode="activation"`)."""
import os
import shutil
import tempfile
import time

from . import kmsclient
from .plugin import as_user, installed_bin_dir, wait_for_ok_status, without_default_ports
from .process import Logged

NOBODY = 65534
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


class SplitPlugin:
    def __init__(self, vault, workdir, mode="socket", front_env=None, broker_env=None, start_front=True,
                 broker_args=(), front_args=()):
        self.vault = vault
        self.mode = mode
        self.bin = installed_bin_dir()
        self.workdir = workdir
        # pytest's temporary directories are 0700 root: the sockets need a path nobody can traverse.
        sockets = tempfile.mkdtemp(prefix="vkk-split-", dir="/tmp")
        os.chmod(sockets, 0o755)
        # The broker socket lives in a root-owned directory; the KMS socket in one the front owns.
        self.broker_dir = os.path.join(sockets, "broker")
        os.makedirs(self.broker_dir, mode=0o755, exist_ok=True)
        self.broker_socket = os.path.join(self.broker_dir, "broker.sock")
        self.socket_dir = os.path.join(sockets, "kms")
        os.makedirs(self.socket_dir, mode=0o755, exist_ok=True)
        os.chown(self.socket_dir, NOBODY, NOBODY)
        self.socket = os.path.join(self.socket_dir, "kms.sock")
        self.broker_env = broker_env
        self.broker_args = list(broker_args)
        self.front_env = front_env
        self.front_args = list(front_args)
        self.broker = None
        self.front = None
        self.start_broker()
        if start_front:
            self.start_front()
            self.wait_healthy()

    def broker_command(self):
        v = self.vault
        return [
            os.path.join(self.bin, "vault-kube-kms"), "broker",
            "--broker-listen-address", f"unix://{self.broker_socket}",
            "--allowed-front-uid", str(NOBODY), "--broker-socket-group", str(NOBODY),
            "--vault-address", v.address, "--vault-key-path", v.key_path, "--auth-mount", v.auth_mount,
            "--approle-role-id", v.role_id, "--approle-secret-id-path", v.secret_id_path,
            "--log-level", "debug", *self.broker_args,
        ]

    def start_broker(self, log_path=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(self.broker_env or {})}
        log_path = log_path or os.path.join(self.workdir, f"broker-{time.time_ns()}.log")
        self.broker = Logged(self.broker_command(), log_path, env=env)
        deadline = time.time() + 10
        while not os.path.exists(self.broker_socket):
            if self.broker.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"broker did not create its socket:\n{self.broker.text()}")
            time.sleep(0.05)

    def front_command(self):
        front = [os.path.join(self.bin, "vault-kube-kms-front"), "--broker-address", f"unix://{self.broker_socket}",
                 "--log-level", "debug", *self.front_args]
        front += without_default_ports(front, self.front_env)
        if self.mode == "custom":  # the listen flags are in front_args
            return front
        if self.mode == "socket":
            return front + ["--listen-address", f"unix://{self.socket}"]
        assert SOCKET_ACTIVATE, "systemd-socket-activate is not installed"
        return [SOCKET_ACTIVATE, "-l", self.socket, "--fdname=kms", *front]

    def start_front(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(self.front_env or {})}
        self.front = Logged(as_user(NOBODY, NOBODY) + self.front_command(),
                            os.path.join(self.workdir, f"front-{time.time_ns()}.log"), env=env)

    def client(self):
        return kmsclient.client(self.socket)

    def wait_healthy(self, timeout=30):
        processes = [("broker", self.broker.proc, self.broker.text), ("front", self.front.proc, self.front.text)]
        return wait_for_ok_status(self.socket, timeout, processes,
                                  lambda: f"{self.broker.text()}\n{self.front.text()}")

    def stop(self):
        codes = {}
        if self.front:
            codes["front"] = self.front.stop()
        if self.broker:
            codes["broker"] = self.broker.stop()
        return codes
