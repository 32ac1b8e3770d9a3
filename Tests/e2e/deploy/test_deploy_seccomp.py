"""The shipped seccomp profile against the real binaries: a fresh traced run needs no syscall the
profile lacks, and the plugin (broker and the front it spawns) serves under the enforced filter,
while the same filter minus one syscall it uses stops it."""
import json
import os
import shutil
import subprocess
import sys
import time

import grpc
import pytest

from kmstest import kmsclient
from kmstest import plugin
from kmstest.ports import free_port

ROOT = plugin.ROOT
SECCOMP = os.path.join(ROOT, "deploy", "kubernetes", "seccomp")
PROFILE = os.path.join(SECCOMP, "vault-kube-kms.json")
SYSTEM_PYTHON = "/usr/bin/python3"


def allowed():
    return set(json.load(open(PROFILE))["syscalls"][0]["names"])


def has_libseccomp_python():
    return os.path.exists(SYSTEM_PYTHON) and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace missing")
def test_a_fresh_traced_run_uses_only_syscalls_the_profile_allows():
    result = subprocess.run([sys.executable, os.path.join(SECCOMP, "derive-profile.py"), "--print"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    observed = set(result.stdout.split())
    assert {"epoll_wait", "setresuid", "execve"} <= observed  # the trace saw both processes
    assert observed - allowed() == set(), "regenerate with deploy/kubernetes/seccomp/derive-profile.py"


def start_enforced(vault, workdir, drop=(), metrics_port=0):
    os.chmod(workdir, 0o755)
    socket = os.path.join(workdir, "run", "kms.sock")
    os.makedirs(os.path.dirname(socket), mode=0o755)
    command = [SYSTEM_PYTHON, os.path.join(SECCOMP, "enforce.py"), PROFILE]
    for name in drop:
        command += ["--drop", name]
    command += ["--", os.path.join(plugin.installed_bin_dir(), "vault-kube-kms"),
                "--listen-address", f"unix://{socket}", "--vault-address", vault.address,
                "--vault-key-path", vault.key_path, "--auth-mount", vault.auth_mount,
                "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path,
                "--health-port", "0", "--metrics-port", str(metrics_port)]
    log = open(os.path.join(workdir, "enforced.log"), "wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), socket, log.name


def wait_healthy(proc, socket, timeout):
    api, _ = kmsclient.stubs()
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if os.path.exists(socket) and kmsclient.client(socket).Status(
                    api.StatusRequest(), timeout=1).healthz == "ok":
                return True
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    return False


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not has_libseccomp_python(), reason="python3-seccomp (Debian) missing")
def test_plugin_serves_encrypt_and_decrypt_under_the_enforced_profile(vault, tmp_path):
    port = free_port()
    proc, socket, log = start_enforced(vault, str(tmp_path), metrics_port=port)
    try:
        assert wait_healthy(proc, socket, 30), open(log).read()
        api, _ = kmsclient.stubs()
        client = kmsclient.client(socket)
        encrypted = client.Encrypt(api.EncryptRequest(plaintext=b"s" * 32, uid="seccomp"), timeout=5)
        decrypted = client.Decrypt(api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                                      uid="seccomp"), timeout=5)
        assert decrypted.plaintext == b"s" * 32
        front = int(open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()[0])
        assert plugin.proc_status(front)["Seccomp"] == "2"  # the spawned front is filtered too
        import urllib.request

        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "process_open_fds" in page  # /metrics (reading /proc) works under the profile too
    finally:
        stop(proc)


@pytest.mark.skipif(not has_libseccomp_python(), reason="python3-seccomp (Debian) missing")
def test_profile_minus_a_syscall_the_plugin_needs_stops_it(vault, tmp_path):
    proc, socket, _ = start_enforced(vault, str(tmp_path), drop=["epoll_wait"])
    try:
        assert not wait_healthy(proc, socket, 5)
        proc.wait(10)  # it gives up (today with status 0: the event loop ends on the EPERM)
    finally:
        stop(proc)
