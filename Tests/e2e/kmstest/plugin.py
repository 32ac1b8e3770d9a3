"""Runs the real binaries the way an operator installs them: copied to a bin directory every
user can traverse (the front is executed as an unprivileged user), started with flags, stopped
with SIGTERM. Logs go to a file the tests can read."""
import os
import shutil
import tempfile
import time

import grpc

from . import kmsclient
from .process import Logged

ROOT = kmsclient.ROOT
_installed = None


def build_dir():
    return os.environ.get("KMS_BIN_DIR") or os.path.join(ROOT, ".build", "debug")


def installed_bin_dir():
    """Copies both executables into a fresh 0755 directory (like /usr/local/bin)."""
    global _installed
    if _installed is None:
        target = tempfile.mkdtemp(prefix="vkk-bin-")
        os.chmod(target, 0o755)
        for name in ("vault-kube-kms", "vault-kube-kms-front"):
            source = os.path.join(build_dir(), name)
            if not os.path.exists(source):
                raise RuntimeError(f"{source} is missing: run `swift build` first")
            shutil.copy2(source, os.path.join(target, name))
            os.chmod(os.path.join(target, name), 0o755)
        _installed = target
    return _installed


def without_default_ports(args, env=None):
    """`--health-port 0 --metrics-port 0` for each of the two that `args` (or `env`, as
    VAULT_KUBE_KMS_*_PORT) does not set: a test that does not need the front's health and metrics
    listeners must not take the defaults 8081/9090, which parallel runs and a developer's `make run`
    use too (a second bind fails with "Address already in use")."""
    extra = []
    for name in ("health-port", "metrics-port"):
        flag = "--" + name
        variable = "VAULT_KUBE_KMS_" + name.upper().replace("-", "_")
        spellings = (flag, flag[1:])  # the Go-style single dash is accepted too
        if any(arg in spellings or arg.startswith(tuple(f + "=" for f in spellings)) for arg in args) \
                or variable in (env or {}):
            continue
        extra += [flag, "0"]
    return extra


class Plugin:
    def __init__(self, vault, workdir, extra_args=(), env=None, wait_ready=True, socket_name="kms.sock",
                 command_prefix=(), secret_id_path=None):
        self.bin = installed_bin_dir()
        self.socket_dir = os.path.join(workdir, "run")
        os.makedirs(self.socket_dir, mode=0o755, exist_ok=True)
        self.socket = os.path.join(self.socket_dir, socket_name)
        self.log_path = os.path.join(workdir, f"broker-{time.time_ns()}.log")
        self.args = [
            os.path.join(self.bin, "vault-kube-kms"),
            "--listen-address", f"unix://{self.socket}",
            "--vault-address", vault.address,
            "--vault-key-path", vault.key_path,
            "--auth-mount", vault.auth_mount,
            "--approle-role-id", vault.role_id,
            "--approle-secret-id-path", secret_id_path or vault.secret_id_path,
            "--log-level", "debug",
            *extra_args,
        ]
        self.args += without_default_ports(self.args, env)
        self.process = Logged(list(command_prefix) + self.args, self.log_path, env=env)
        self.proc, self.log = self.process.proc, self.process.log
        if wait_ready:
            self.wait_healthy()

    def client(self):
        return kmsclient.client(self.socket)

    def wait_healthy(self, timeout=30):
        return wait_for_ok_status(self.socket, timeout, [("broker", self.proc, self.log_text)], self.log_text)

    def log_text(self):
        return self.process.text()

    def log_events(self):
        return self.process.events()

    def front_pid(self):
        """The pid of the front: the broker's only child."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as handle:
            children = [int(pid) for pid in handle.read().split()]
        assert len(children) == 1, children
        return children[0]

    def stop(self, timeout=15):
        return self.process.stop(timeout=timeout)


def wait_for_ok_status(socket_path, timeout, processes, describe):
    """Polls Status on `socket_path` until healthz is "ok" and returns the response. Fails at once
    when one of `processes` ((name, Popen, log reader) triples) exits, and after `timeout` seconds
    with the last answer and `describe()` (the logs)."""
    api, _ = kmsclient.stubs()
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        for name, proc, log in processes:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log()}")
        if os.path.exists(socket_path):
            try:
                response = kmsclient.client(socket_path).Status(api.StatusRequest(), timeout=2)
                last = response.healthz
                if response.healthz == "ok":
                    return response
            except grpc.RpcError as error:
                last = error.code()
        time.sleep(0.1)
    raise RuntimeError(f"plugin not healthy after {timeout}s (last: {last}):\n{describe()}")


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def as_user(uid, gid, groups=()):
    """A setpriv prefix running a command as uid/gid. Never subprocess's user=/group=: those make
    Python fork() instead of vfork(), and grpcio's fork handlers can deadlock the test process
    once gRPC channels exist."""
    group_arg = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", group_arg]


_shared = None


def shareable(path):
    """A world-readable copy of a repository file, for commands run as another user: a fresh
    clone may sit in a 0700 directory (mktemp -d) that such users cannot traverse."""
    global _shared
    if _shared is None:
        _shared = tempfile.mkdtemp(prefix="vkk-shared-")
        os.chmod(_shared, 0o755)
    target = os.path.join(_shared, os.path.basename(path))
    if not os.path.exists(target):
        shutil.copy2(path, target)
        os.chmod(target, 0o755 if os.access(path, os.X_OK) else 0o644)
    return target
