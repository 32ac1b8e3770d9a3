"""The real-systemd lane: a minimal Debian root (debootstrap, cached as a tarball under /var/tmp
keyed by suite, variant, packages and mirror), booted with systemd-nspawn so that systemd 252 runs
as PID 1, commands run inside with nsenter, and the plugin installed into it from a release
bundle (scripts/release-bundle.sh) by the very commands docs/operations.md section 2 gives an
operator: the `<!-- systemd-lane: NAME -->` blocks are read from the document and run verbatim,
with this run's values (Vault address, its IPAddressAllow=) in the variables the document's
"values" block sets on a real node.

Vault is a real OpenBao dev server (openbaodev.py), the host's binary run in the container's
network namespace: the container has a private network (`--private-network`, its own loopback)
so that the units' fixed ports (health 8081, metrics 9090) never meet other tests' ports on this
machine; OpenBao listens on that loopback's 127.0.0.1:8200, configured by deploy/vault/setup.sh.

Skips: only when this machine cannot run the lane (not root, a tool missing, nspawn failing),
with the reason; with KMS_SYSTEMD_LANE=require (scripts/test.sh, so CI) that is a failure."""
import hashlib
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

from . import kmsclient
from . import openbaodev
from . import plugin

ROOT = plugin.ROOT
SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ["systemd", "systemd-sysv", "dbus", "libnghttp2-14", "libcurl4", "libsystemd0"]
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")
CACHE_DIR = os.environ.get("KMS_DEBOOTSTRAP_CACHE", "/var/tmp")
# Where the release bundle is unpacked inside the root (the operator's working directory).
BUNDLE_IN_ROOT = "/root/vault-kube-kms-bundle"
KMS_SOCKET = "/run/kmsplugin/kms.sock"  # the shipped units' KMS socket


class LaneUnavailable(Exception):
    """This machine cannot run the lane; the message says exactly why."""


def debian_mirror():
    """The Debian mirror apt uses here: the first URI of /etc/apt/sources.list* that serves
    SUITE's main component (deb822 .sources files and one-line .list files)."""
    paths = ["/etc/apt/sources.list"]
    folder = "/etc/apt/sources.list.d"
    if os.path.isdir(folder):
        paths += [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    for path in paths:
        if not os.path.isfile(path):
            continue
        text = open(path).read()
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                if SUITE in fields.get("Suites", "").split() and "main" in fields.get("Components", "").split():
                    return fields["URIs"].split()[0]
        else:
            for line in text.splitlines():
                words = line.split("#")[0].split()
                if len(words) >= 4 and words[0] == "deb":
                    rest = [w for w in words[1:] if not w.startswith("[")]
                    if len(rest) >= 3 and rest[1] == SUITE and "main" in rest[2:]:
                        return rest[0]
    raise LaneUnavailable(f"no Debian {SUITE} main mirror in /etc/apt/sources.list*")


def check_machine():
    """Raises LaneUnavailable naming what is missing."""
    if os.geteuid() != 0:
        raise LaneUnavailable("needs root (debootstrap, systemd-nspawn, nsenter)")
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "tar"):
        if not shutil.which(tool):
            raise LaneUnavailable(f"{tool} is not installed (scripts/install-deps.sh installs it)")


def base_tarball():
    """The debootstrapped root as a tarball, built once per machine (or CI run) and reused."""
    mirror = debian_mirror()
    key = hashlib.sha256("\0".join([SUITE, VARIANT, ",".join(PACKAGES), mirror]).encode()).hexdigest()[:16]
    tarball = os.path.join(CACHE_DIR, f"vault-kube-kms-debootstrap-{SUITE}-{key}.tar")
    if os.path.exists(tarball):
        return tarball
    scratch = tempfile.mkdtemp(prefix="vkk-debootstrap-", dir=CACHE_DIR)
    try:
        target = os.path.join(scratch, "root")
        result = subprocess.run(
            ["debootstrap", f"--variant={VARIANT}", "--include=" + ",".join(PACKAGES), SUITE, target, mirror],
            capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise LaneUnavailable(f"debootstrap failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
        partial = tarball + f".{os.getpid()}.partial"
        subprocess.run(["tar", "-C", target, "--numeric-owner", "-cf", partial, "."], check=True, timeout=600)
        os.rename(partial, tarball)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return tarball


def fresh_root():
    """A new root directory unpacked from the cached tarball (each boot starts clean)."""
    root = tempfile.mkdtemp(prefix="vkk-nspawn-root-", dir=CACHE_DIR)
    subprocess.run(["tar", "-C", root, "--numeric-owner", "-xf", base_tarball()], check=True, timeout=600)
    os.chmod(root, 0o755)
    return root


def release_bin_dir():
    """The release binaries: $KMS_RELEASE_BIN_DIR, else `swift build -c release` (incremental)."""
    given = os.environ.get("KMS_RELEASE_BIN_DIR")
    if given:
        return given
    subprocess.run(["swift", "build", "-c", "release"], cwd=ROOT, check=True, capture_output=True, timeout=3600)
    return subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=600).stdout.strip()


def make_bundle(dest, bin_dir):
    """scripts/release-bundle.sh: what an operator copies to a node."""
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "release-bundle.sh"), dest, bin_dir],
                   check=True, capture_output=True, timeout=300)


def documented_blocks():
    """{name: shell text} of the `<!-- systemd-lane: NAME -->` blocks of docs/operations.md."""
    text = open(OPERATIONS).read()
    blocks = {}
    for name, body in re.findall(r"<!-- systemd-lane: ([\w-]+) -->\s*```sh\n(.*?)```", text, re.S):
        blocks[name] = body
    return blocks


class Container:
    """One boot of a root under systemd-nspawn, systemd as PID 1."""

    def __init__(self, root, name):
        self.root = root
        self.log_path = os.path.join(os.path.dirname(root), os.path.basename(root) + ".console")
        self.console = open(self.log_path, "wb")
        # The unified cgroup hierarchy inside the container: on a host with the legacy or
        # hybrid layout (this CI machine) nspawn would otherwise give systemd cgroup v1, where
        # its BPF programs (IPAddressAllow=/IPAddressDeny=) are not supported and silently not
        # enforced. docs/operations.md asks for the unified hierarchy on a real node as well.
        # --system-call-filter=bpf: nspawn's own seccomp filter denies bpf() in the container
        # (EPERM), which would leave systemd unable to load those programs too; a node booted
        # on hardware or a VM has no such filter.
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", root, "--register=no", "--keep-unit", "--console=pipe",
             f"--machine={name}", "--private-network", "--system-call-filter=bpf", "--boot"],
            stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT, env=env)
        self.pid = self._leader()
        self.wait_booted()

    def _leader(self, timeout=60):
        """The container's PID 1 as the host sees it: nspawn's child."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LaneUnavailable(f"systemd-nspawn exited {self.proc.returncode}: {self.console_text()[-3000:]}")
            children = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
            for child in children:
                try:
                    exe = os.readlink(f"/proc/{child}/exe")
                except OSError:  # a short-lived child (nspawn's helpers) already gone
                    continue
                if exe.endswith("/systemd"):
                    return int(child)
            time.sleep(0.1)
        raise LaneUnavailable(f"systemd-nspawn started no systemd within {timeout} s: {self.console_text()[-3000:]}")

    def console_text(self):
        self.console.flush()
        return open(self.log_path, "rb").read().decode(errors="replace")

    def wait_booted(self, timeout=90):
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.2)
        raise LaneUnavailable(f"the container did not finish booting ({state!r}): {self.console_text()[-3000:]}")

    def run(self, script, check=True, timeout=120, env=None, cwd="/"):
        """Runs `script` with bash inside the container (all its namespaces, its root)."""
        exports = "".join(f"export {k}={shell_quote(v)}\n" for k, v in (env or {}).items())
        command = ["nsenter", "-t", str(self.pid), "-a", "/usr/bin/env", "-i",
                   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                   "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "bash", "-c",
                   f"set -euo pipefail\ncd {shell_quote(cwd)}\n{exports}{script}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"in the container: {script}\nexit {result.returncode}\n"
                                 f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}")
        return result

    def host_path(self, path):
        """A path inside the running container as the host reaches it (its /run is a tmpfs)."""
        return f"/proc/{self.pid}/root{path}"

    def show(self, unit, *properties):
        out = self.run(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, unit):
        """The unit's main PID as the host sees it (nsenter runs in the container's pid
        namespace; /proc of the container's root translates)."""
        inner = int(self.show(unit, "MainPID")["MainPID"])
        if inner == 0:
            return 0
        # NSpid of every host process in the container: find the one whose inner pid matches.
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                status = open(f"/proc/{entry}/status").read()
            except OSError:
                continue
            found = re.search(r"^NSpid:\s+(.*)$", status, re.M)
            if found:
                ids = found.group(1).split()
                if len(ids) >= 2 and int(ids[-1]) == inner and self._in_container(int(entry)):
                    return int(entry)
        raise AssertionError(f"no host pid for {unit}'s main pid {inner}")

    def _in_container(self, pid):
        try:
            return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{self.pid}/ns/pid")
        except OSError:
            return False

    def poweroff(self, timeout=60):
        if self.proc.poll() is None:
            self.run("systemctl poweroff --no-block", check=False, timeout=30)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.console.close()


def shell_quote(value):
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


# --- the lane's shared pieces and one installed node -----------------------------------------

_shared = None


def lane_marks():
    """The lane's pytest marks: none when the machine can run it; else a skip naming the reason,
    or (KMS_SYSTEMD_LANE=require) a failure at the first test."""
    try:
        check_machine()
    except LaneUnavailable as reason:
        if os.environ.get("KMS_SYSTEMD_LANE") == "require":
            return [pytest.mark.usefixtures("_lane_required")]
        return [pytest.mark.skip(reason=f"systemd lane unavailable: {reason}")]
    return []


@pytest.fixture
def _lane_required():
    check_machine()  # raises, failing the test with the reason


class Shared:
    """Built once per test session: the release bundle."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vkk-lane-", dir=CACHE_DIR)
        # debootstrap (mostly downloads) runs while the release build uses the CPUs.
        root_result = {}

        def build_root():
            started = time.monotonic()
            try:
                base_tarball()
            except BaseException as error:  # re-raised below, in the test's thread
                root_result["error"] = error
            root_result["seconds"] = time.monotonic() - started

        root_thread = threading.Thread(target=build_root, daemon=True)
        root_thread.start()
        started = time.monotonic()
        self.bin_dir = release_bin_dir()
        self.release_build_seconds = time.monotonic() - started
        self.bundle = os.path.join(self.dir, "bundle")
        make_bundle(self.bundle, self.bin_dir)
        root_thread.join()
        if "error" in root_result:
            raise root_result["error"]
        self.debootstrap_seconds = root_result["seconds"]
        print(f"systemd lane: release build {self.release_build_seconds:.1f} s, "
              f"Debian root {self.debootstrap_seconds:.1f} s (in parallel)")


def shared():
    global _shared
    if _shared is None:
        try:
            _shared = Shared()
        except LaneUnavailable as reason:
            if os.environ.get("KMS_SYSTEMD_LANE") == "require":
                raise
            pytest.skip(f"systemd lane unavailable: {reason}")
    return _shared


class Node:
    """A booted root with OpenBao in its network namespace and the bundle (plus the
    credentials setup.sh wrote) in BUNDLE_IN_ROOT, ready for the documented blocks."""

    def __init__(self, shared, topology):
        self.topology = topology
        self.root = fresh_root()
        self.container = None
        self.bao = None
        try:
            self.container = Container(self.root, f"vkk-{topology}-{os.getpid()}")
            self.bao = openbaodev.OpenBaoDev(netns_pid=self.container.pid)
            bundle = self.root + BUNDLE_IN_ROOT
            shutil.copytree(shared.bundle, bundle)
            self.bao.setup(os.path.join(bundle, "vault-kube-kms-credentials"))
            # The node's values block of docs/operations.md section 2, for this node.
            self.values = {"VAULT_ADDRESS": self.bao.address, "VAULT_ALLOW": "127.0.0.1/32"}
            self.blocks = documented_blocks()
        except BaseException:
            self.close()
            raise

    def run_block(self, name, check=True):
        return self.container.run(self.blocks[name], env=self.values, cwd=BUNDLE_IN_ROOT, check=check)

    def block_lines(self, name):
        """A block's commands, one per line (continuations joined), comments dropped."""
        text = self.blocks[name].replace("\\\n", " ")
        return [line.split("  #")[0].strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]

    def preflight(self):
        result = self.run_block("preflight", check=False)
        # 1: warnings only (plain http to the dev server, no Transit backup); never a FAIL.
        assert result.returncode in (0, 1) and "FAIL" not in result.stdout, result.stdout + result.stderr
        return result.stdout

    def journal(self, *selectors):
        out = self.container.run("journalctl --no-pager -o json " + " ".join(selectors), check=False).stdout
        entries = []
        for line in out.splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                pass
        return entries

    def http_get(self, url):
        """GET on the container's loopback (its network namespace)."""
        script = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        result = subprocess.run(["nsenter", "-t", str(self.container.pid), "-n", "python3", "-c", script, url],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def front_metrics(self):
        return self.http_get("http://127.0.0.1:9090/metrics")

    def kms_stub(self):
        channel = grpc.insecure_channel("unix://" + self.container.host_path(KMS_SOCKET))
        return kmsclient.stubs()[1].KeyManagementServiceStub(channel), channel

    def wait_for(self, predicate, timeout, message):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (AssertionError, OSError, grpc.RpcError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(message)

    def wait_serving(self, timeout=30):
        """An Encrypt/Decrypt round trip through the KMS socket succeeds."""
        pb2 = kmsclient.stubs()[0]

        def round_trip():
            stub, channel = self.kms_stub()
            with channel:
                seed = os.urandom(32)
                encrypted = stub.Encrypt(pb2.EncryptRequest(plaintext=seed, uid="lane"), timeout=3)
                return stub.Decrypt(pb2.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                                       uid="lane"), timeout=3).plaintext == seed

        self.wait_for(round_trip, timeout, "the plugin does not serve")

    def exposure(self, unit):
        out = self.container.run(f"systemd-analyze security --no-pager {unit}", check=False).stdout
        found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        assert found, out[-2000:]
        return float(found.group(1))

    def drop_in(self, unit, name, text):
        self.container.run(f"mkdir -p /etc/systemd/system/{unit}.d && cat > /etc/systemd/system/{unit}.d/{name}.conf "
                           f"<<'EOF'\n{text}EOF\nsystemctl daemon-reload")

    def remove_drop_in(self, unit, name):
        self.container.run(f"rm -f /etc/systemd/system/{unit}.d/{name}.conf && systemctl daemon-reload")

    def shorten_watchdog(self, unit):
        """WatchdogSec=30s of the shipped unit, shortened for the test (a restart applies it)."""
        self.drop_in(unit, "test-watchdog", "[Service]\nWatchdogSec=4s\n")
        self.container.run(f"systemctl restart {unit}")
        self.wait_serving()

    def secret_id_accessors(self):
        status, answer = self.bao.request("LIST", "auth/approle/role/vault-kube-kms/secret-id")
        assert status == 200, answer
        return answer["data"]["keys"]

    def secret_id_accessor(self):
        accessors = self.secret_id_accessors()
        assert len(accessors) == 1, accessors
        return accessors[0]

    def rotate_secret_id(self, unit):
        """docs/operations.md section 7 under systemd: a new secret ID from Vault, the file
        replaced atomically on the node, the broker's unit restarted, the old one destroyed."""
        old = self.secret_id_accessor()
        status, answer = self.bao.request("POST", "auth/approle/role/vault-kube-kms/secret-id", {})
        assert status == 200, answer
        with open(self.root + BUNDLE_IN_ROOT + "/secret-id.new", "w") as handle:
            handle.write(answer["data"]["secret_id"])
        self.container.run(self.blocks["rotate-" + self.topology], cwd=BUNDLE_IN_ROOT)
        self.wait_serving()
        status, answer = self.bao.request(
            "POST", "auth/approle/role/vault-kube-kms/secret-id-accessor/destroy", {"secret_id_accessor": old})
        assert status in (200, 204), answer

    def broker_token_accessors(self):
        """Accessors of the valid tokens of the AppRole role, newest first (the running broker's
        is the newest; a broker killed by a test could not revoke its own)."""
        status, answer = self.bao.request("LIST", "auth/token/accessors")
        assert status == 200, answer
        found = []
        for accessor in answer["data"]["keys"]:
            status, token = self.bao.request("POST", "auth/token/lookup-accessor", {"accessor": accessor})
            if status == 200 and (token["data"].get("meta") or {}).get("role_name") == "vault-kube-kms":
                found.append((token["data"]["creation_time"], accessor))
        return [accessor for _, accessor in sorted(found, reverse=True)]

    def calling_client(self):
        return CallingClient(self)

    def egress_attempts(self, unit):
        """(connections seen, blocked; connections seen, allowed) at a listener on 127.0.0.2 in
        the container's network namespace, with the broker pointed at it by a drop-in: first
        with the documented egress drop-in alone (IPAddressAllow=127.0.0.1/32), then with
        127.0.0.2 allowed too (the control). The drop-ins are removed afterwards."""
        listener = NetnsListener(self.container.pid, "127.0.0.2")
        unit_text = self.container.run(f"systemctl cat {unit}").stdout
        exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit_text.replace("\\\n", " "), re.M).group(1)
        try:
            self.drop_in(unit, "test-egress", f"[Service]\nExecStart=\nExecStart={exec_start} "
                                                f"--vault-address http://127.0.0.2:{listener.port}\n")
            self.container.run(f"systemctl restart {unit}")
            time.sleep(4)
            blocked = listener.count()
            self.drop_in(unit, "test-egress-allow", "[Service]\nIPAddressAllow=127.0.0.2/32\n")
            self.container.run(f"systemctl restart {unit}")
            self.wait_for(lambda: listener.count() > blocked, 15, "no connection even with 127.0.0.2 allowed")
            allowed = listener.count() - blocked
        finally:
            listener.stop()
            self.remove_drop_in(unit, "test-egress")
            self.remove_drop_in(unit, "test-egress-allow")
            self.container.run(f"systemctl restart {unit}")
        return blocked, allowed

    def close(self):
        if self.container:
            self.container.poweroff()
        if self.bao:
            self.bao.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def installed(name, units_block):
    """A booted node on which the documented `install` block and `units_block` ran and the
    preflight passed; closed (container stopped) on exit. The suites' module fixture."""
    node = Node(shared(), name)
    try:
        node.run_block("install")
        node.run_block(units_block)
        node.preflight()
        yield node
    finally:
        node.close()


class NetnsListener:
    """A TCP listener in a network namespace that counts the connections it accepts."""

    SCRIPT = r"""
import socket, sys
server = socket.socket()
server.bind((sys.argv[1], 0))
server.listen(16)
print(server.getsockname()[1], flush=True)
while True:
    connection, _ = server.accept()
    print("accepted", flush=True)
    connection.close()
"""

    def __init__(self, pid, host):
        self.proc = subprocess.Popen(["nsenter", "-t", str(pid), "-n", "python3", "-u", "-c", self.SCRIPT, host],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.accepted = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("accepted"):
                self.accepted += 1

    def count(self):
        return self.accepted

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


class CallingClient:
    """Encrypt calls back to back (3 s deadline each, a fresh channel after a failure, as a
    reconnecting kube-apiserver): records (monotonic time the call started, outcome)."""

    def __init__(self, node):
        self.node = node
        self.results = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        pb2 = kmsclient.stubs()[0]
        stub, channel = self.node.kms_stub()
        while self.running:
            started = time.monotonic()
            try:
                stub.Encrypt(pb2.EncryptRequest(plaintext=os.urandom(32), uid="calling"), timeout=3)
                self.results.append((started, "OK"))
            except grpc.RpcError as error:
                self.results.append((started, error.code().name, error.details(), time.monotonic() - started))
                channel.close()
                stub, channel = self.node.kms_stub()
            time.sleep(0.02)
        channel.close()

    def stop(self):
        self.running = False
        self.thread.join(10)
        return list(self.results)
