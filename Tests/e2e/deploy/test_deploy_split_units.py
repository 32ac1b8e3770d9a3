"""The split units run the way systemd would run them, without systemd as PID 1: each socket
created by systemd-socket-activate with the socket unit's type, name, owner and mode; the
service's ExecStart line verbatim (binary path and %d rewritten), its User=, no capabilities,
no-new-privs and its SystemCallFilter= enforced; the broker configured only from the shipped
environment file's variables and a credentials directory. The front must serve Encrypt and
Decrypt through the broker."""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from kmstest import plugin
from kmstest.ports import free_port
from test_deploy_syscallfilter import ENFORCE, SYSTEM_PYTHON, serves, unit_allow_list, write_profile
from test_deploy_systemd import unit

UNITS = os.path.join(plugin.ROOT, "systemd")
BROKER_UID, FRONT_UID = 65532, 65533

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("systemd-socket-activate") or not shutil.which("setpriv")
    or subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode != 0,
    reason="needs root, systemd-socket-activate, setpriv and python3-seccomp")


def exec_start(name, bin_dir, credentials=None):
    line = unit(name)["Service"]["ExecStart"][0].replace("/usr/local/bin/", bin_dir + "/")
    if credentials:
        line = line.replace("%d", credentials)
    return shlex.split(line)


def env_file(values):
    """The shipped environment file's variables, with the values of this test's Vault."""
    env = {}
    for line in open(os.path.join(UNITS, "vault-kube-kms.env")).read().splitlines():
        found = re.match(r"(VAULT_KUBE_KMS_[A-Z_]+)=(.*)", line)
        if found:
            env[found.group(1)] = values.get(found.group(1), found.group(2))
    return env


def unsupported_flags(command, binary):
    """Flags of the unit the built binary does not have yet (issue 4: --health-port and
    --metrics-port arrive with the metrics work); they are dropped from this run."""
    known = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stdout
    return [arg for arg in command if arg.startswith("--") and arg not in known]


def with_free_ports(command):
    """The unit's fixed health and metrics ports replaced by free ones (other suites may hold
    8081/9090 on this machine); returns the command and {flag: port}."""
    ports, result = {}, []
    for index, arg in enumerate(command):
        flag, eq, value = arg.partition("=")
        if flag in ("--health-port", "--metrics-port") and eq:
            ports[flag] = free_port()
            arg = f"{flag}={ports[flag]}"
        elif index and command[index - 1] in ("--health-port", "--metrics-port"):
            ports[command[index - 1]] = free_port()
            arg = str(ports[command[index - 1]])
        result.append(arg)
    return result, ports


def ready_over_http(port, path="/readyz"):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return answer.status


def without(command, flags):
    result, skip = [], False
    for arg in command:
        if skip:
            skip = False
            continue
        if arg in flags:
            skip = True
            continue
        result.append(arg)
    return result


def hardened(uid, profile, command):
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", SYSTEM_PYTHON, ENFORCE, profile, "--", *command]


def received(sock):
    """Every notification datagram waiting on `sock`, joined."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except (BlockingIOError, TimeoutError, socket.timeout):
            return "\n".join(messages)


def wait_for(path, proc, timeout=10):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None and time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture()
def layout():
    """/run/vault-kube-kms, /run/kmsplugin and the credentials directory, as tmpfiles.d and
    LoadCredential= make them, in a temporary root everyone can traverse."""
    root = tempfile.mkdtemp(prefix="vkk-units-")
    os.chmod(root, 0o755)
    paths = {name: os.path.join(root, name) for name in ("broker-run", "kmsplugin", "credentials", "filters")}
    os.mkdir(paths["broker-run"], 0o750)
    os.chown(paths["broker-run"], BROKER_UID, FRONT_UID)
    os.mkdir(paths["kmsplugin"], 0o755)
    os.mkdir(paths["credentials"], 0o500)
    os.mkdir(paths["filters"], 0o755)
    yield paths
    shutil.rmtree(root, ignore_errors=True)


def test_split_units_serve_with_their_sockets_users_and_filters(vault, layout):
    bin_dir = plugin.installed_bin_dir()
    secret = os.path.join(layout["credentials"], "secret-id")
    shutil.copy(vault.secret_id_path, secret)
    os.chmod(secret, 0o400)
    for path in (secret, layout["credentials"]):
        os.chown(path, BROKER_UID, BROKER_UID)
    profiles = {}
    for name in ("vault-kube-kms-broker.service", "vault-kube-kms-front.service"):
        profiles[name] = os.path.join(layout["filters"], name + ".json")
        write_profile(profiles[name], unit_allow_list(name))
        os.chmod(profiles[name], 0o644)

    # Type=notify: a notification socket each service reports READY=1 to, as systemd's would.
    notify_dir = os.path.join(layout["filters"], "notify")
    os.mkdir(notify_dir, 0o777)
    os.chmod(notify_dir, 0o777)
    notify = {}
    for name in ("broker", "front"):
        notify[name] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify[name].bind(os.path.join(notify_dir, name))
        os.chmod(os.path.join(notify_dir, name), 0o777)
        notify[name].settimeout(0.2)

    broker_socket_unit = unit("vault-kube-kms-broker.socket")["Socket"]
    broker_sock = os.path.join(layout["broker-run"], "broker.sock")
    env = env_file({
        "VAULT_KUBE_KMS_VAULT_ADDRESS": vault.address, "VAULT_KUBE_KMS_VAULT_KEY_PATH": vault.key_path,
        "VAULT_KUBE_KMS_AUTH_MOUNT": vault.auth_mount, "VAULT_KUBE_KMS_APPROLE_ROLE_ID": vault.role_id,
        "VAULT_KUBE_KMS_ALLOWED_FRONT_UID": str(FRONT_UID), "VAULT_KUBE_KMS_ALLOWED_FRONT_GID": str(FRONT_UID)})
    broker_cmd = exec_start("vault-kube-kms-broker.service", bin_dir, layout["credentials"])
    broker_cmd = [arg.replace("/run/vault-kube-kms/", layout["broker-run"] + "/") for arg in broker_cmd]
    activate = ["systemd-socket-activate", "--seqpacket", "-l", broker_sock,
                f"--fdname={broker_socket_unit['FileDescriptorName'][0]}"]
    env["NOTIFY_SOCKET"] = os.path.join(notify_dir, "broker")
    for key, value in env.items():
        activate += ["-E", f"{key}={value}"]
    logs = {name: open(os.path.join(layout["filters"], name + ".log"), "wb") for name in ("broker", "front")}
    broker = subprocess.Popen([*activate, "--", *hardened(BROKER_UID, profiles["vault-kube-kms-broker.service"],
                                                          broker_cmd)],
                              stdout=logs["broker"], stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
    front = None
    try:
        wait_for(broker_sock, broker)
        # What the socket unit's SocketUser=, SocketGroup= and SocketMode= do.
        os.chown(broker_sock, BROKER_UID, FRONT_UID)
        os.chmod(broker_sock, int(broker_socket_unit["SocketMode"][0], 8))

        kms_sock = os.path.join(layout["kmsplugin"], "kms.sock")
        front_cmd = exec_start("vault-kube-kms-front.service", bin_dir)
        front_cmd = [arg.replace("/run/vault-kube-kms/", layout["broker-run"] + "/")
                     .replace("/run/kmsplugin/", layout["kmsplugin"] + "/") for arg in front_cmd]
        missing = unsupported_flags(front_cmd, front_cmd[0])
        assert set(missing) <= {"--health-port", "--metrics-port"}, missing
        front_cmd, ports = with_free_ports(without(front_cmd, missing))
        front = subprocess.Popen(
            ["systemd-socket-activate", "-l", kms_sock,
             f"--fdname={unit('vault-kube-kms-front.socket')['Socket']['FileDescriptorName'][0]}",
             "-E", f"NOTIFY_SOCKET={os.path.join(notify_dir, 'front')}", "--",
             *hardened(FRONT_UID, profiles["vault-kube-kms-front.service"], front_cmd)],
            stdout=logs["front"], stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
        wait_for(kms_sock, front)
        ok = serves(kms_sock, front, timeout=20)
        texts = {name: open(handle.name).read() for name, handle in logs.items()}
        assert ok, texts
        for proc, uid in ((broker, BROKER_UID), (front, FRONT_UID)):
            status = plugin.proc_status(proc.pid)
            assert (status["Uid"].split()[0], status["Seccomp"], status["NoNewPrivs"], status["CapEff"]) == (
                str(uid), "2", "1", "0" * 16)
        for name in ("broker", "front"):
            assert "READY=1" in received(notify[name]), name
        if "--health-port" in ports:  # the probes a monitoring agent would use
            assert ready_over_http(ports["--health-port"]) == 200
        # The broker took the socket systemd made (FileDescriptorName=broker) rather than binding.
        assert os.stat(broker_sock).st_gid == FRONT_UID
    finally:
        for proc in (front, broker):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for handle in logs.values():
            handle.close()
    assert broker.returncode == 0, open(logs["broker"].name).read()[-3000:]
