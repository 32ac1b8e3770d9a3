"""End to end: the real broker and front, the Vault simulator (or a real Vault), a grpcio client."""
import os
import re
import signal
import socket
import stat
import subprocess
import time

import pytest

from kmstest.kmsclient import api
from kmstest.plugin import Plugin, as_user, installed_bin_dir, proc_status

KEY_ID = re.compile(r"^transit-v(\d+)-[0-9a-f]{32}$")


def test_front_runs_as_another_uid_with_no_capabilities_and_no_new_privs(plugin):
    if os.geteuid() != 0:
        pytest.skip("needs root to spawn the front as another user")
    front = proc_status(plugin.front_pid())
    broker = proc_status(plugin.proc.pid)
    front_uids = set(front["Uid"].split())
    assert len(front_uids) == 1 and front_uids != set(broker["Uid"].split())
    assert set(front["Gid"].split()) != set(broker["Gid"].split())
    assert "0" not in front_uids
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(front[field], 16) == 0, (field, front[field])
    assert front["NoNewPrivs"] == "1"


def test_front_cannot_open_the_secret_id_file(plugin, vault):
    if os.geteuid() != 0:
        pytest.skip("needs root to spawn the front as another user")
    status = proc_status(plugin.front_pid())
    uid, gid = int(status["Uid"].split()[0]), int(status["Gid"].split()[0])
    probe = subprocess.run(
        as_user(uid, gid) + ["/usr/bin/python3", "-c", f"open({vault.secret_id_path!r}).read()"],
        capture_output=True, text=True)
    assert probe.returncode != 0
    assert "Permission denied" in probe.stderr


def test_kms_socket_has_no_access_for_others(plugin):
    mode = stat.S_IMODE(os.stat(plugin.socket).st_mode)
    assert stat.S_ISSOCK(os.stat(plugin.socket).st_mode)
    assert mode & 0o007 == 0
    assert mode == 0o660


def test_no_secret_in_the_logs(plugin, vault):
    plugin.client().Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="log"), timeout=3)
    text = plugin.log_text()
    assert vault.secret_id not in text
    assert "hvs." not in text
    assert "broker.started" in text


def test_front_killed_is_restarted_by_the_broker(vault, workdir):
    running = Plugin(vault, workdir)
    try:
        first = running.front_pid()
        os.kill(first, signal.SIGKILL)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                if running.front_pid() != first:
                    break
            except (AssertionError, FileNotFoundError):
                pass
            time.sleep(0.1)
        assert running.front_pid() != first
        response = running.wait_healthy()
        assert response.healthz == "ok"
        assert any(event.get("event") == "front.exited" for event in running.log_events())
    finally:
        running.stop()


def test_broker_killed_makes_the_front_exit(vault, workdir):
    running = Plugin(vault, workdir)
    front = running.front_pid()
    os.kill(running.proc.pid, signal.SIGKILL)
    running.proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(f"/proc/{front}") and "Z" not in proc_status(front)["State"]:
        time.sleep(0.1)
    gone = not os.path.exists(f"/proc/{front}") or "Z" in proc_status(front)["State"]
    running.stop()
    assert gone


def test_sigterm_stops_both_and_removes_the_socket(vault, workdir):
    running = Plugin(vault, workdir)
    front = running.front_pid()
    assert running.stop() == 0
    assert not os.path.exists(running.socket)
    assert not os.path.exists(f"/proc/{front}")
    events = [event.get("event") for event in running.log_events()]
    assert "shutdown.done" in events


@pytest.mark.parametrize(
    "mode,needle",
    [(0o644, "group or others"), (0o440, "group or others"), (0o404, "group or others")])
def test_secret_file_readable_by_others_stops_the_broker(vault, workdir, mode, needle):
    os.chmod(vault.secret_id_path, mode)
    try:
        running = Plugin(vault, workdir, wait_ready=False)
        assert running.proc.wait(20) != 0
        text = running.log_text()
        assert needle in text
        assert vault.secret_id not in text
        assert not os.path.exists(running.socket)
    finally:
        os.chmod(vault.secret_id_path, 0o400)


def test_missing_and_empty_secret_files_stop_the_broker_with_a_clear_error(vault, workdir):
    original = vault.secret_id_path
    try:
        vault.secret_id_path = os.path.join(workdir, "absent")
        running = Plugin(vault, workdir, wait_ready=False)
        assert running.proc.wait(20) != 0
        assert "absent" in running.log_text()
        empty = os.path.join(workdir, "empty")
        with open(empty, "w"):
            pass
        os.chmod(empty, 0o400)
        vault.secret_id_path = empty
        running = Plugin(vault, workdir, wait_ready=False)
        assert running.proc.wait(20) != 0
        assert "empty" in running.log_text()
        vault.secret_id_path = workdir  # a directory
        running = Plugin(vault, workdir, wait_ready=False)
        assert running.proc.wait(20) != 0
        assert "is a directory" in running.log_text()
    finally:
        vault.secret_id_path = original


def run_broker_once(vault, socket_path):
    """Starts a second broker on `socket_path` and returns its completed process (it must not serve)."""
    return subprocess.run(
        [os.path.join(installed_bin_dir(), "vault-kube-kms"), "--listen-address", f"unix://{socket_path}",
         "--vault-address", vault.address, "--vault-key-path", vault.key_path, "--auth-mount", vault.auth_mount,
         "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path,
         "--health-port", "0", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=20)


def test_live_socket_is_not_replaced_and_a_regular_file_is_never_removed(vault, plugin, workdir):
    # The module's plugin is serving plugin.socket: a second one must refuse it.
    clash = run_broker_once(vault, plugin.socket)
    assert clash.returncode != 0
    assert "live socket" in clash.stderr
    assert plugin.client().Status(api().StatusRequest(), timeout=3).healthz == "ok"

    regular = os.path.join(workdir, "not-a-socket")
    with open(regular, "w") as handle:
        handle.write("keep me")
    refused = run_broker_once(vault, regular)
    assert refused.returncode != 0
    assert "not a socket" in refused.stderr
    with open(regular) as handle:
        assert handle.read() == "keep me"


def test_dead_socket_left_by_a_crash_is_replaced(vault, workdir):
    path = os.path.join(workdir, "run", "kms.sock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: like after a power failure
    running = Plugin(vault, workdir)
    try:
        assert running.client().Status(api().StatusRequest(), timeout=3).healthz == "ok"
    finally:
        running.stop()


def test_an_unprivileged_broker_never_shares_its_uid_with_an_unsandboxed_front(vault, workdir):
    """Its own uid as --front-user (no --insecure-same-user): the one-uid topology, sandbox
    required, logged as topology.selected; another uid it cannot switch to: refused. Neither
    start runs the front unsandboxed at the broker's uid (front.same_user)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start the broker as another user")
    base = as_user(65534, 65534) + [
        os.path.join(installed_bin_dir(), "vault-kube-kms"), "--listen-address", f"unix://{workdir}/x.sock",
        "--vault-address", vault.address, "--vault-key-path", vault.key_path,
        "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path]
    own = subprocess.run(base + ["--front-user", "nobody"], capture_output=True, text=True, timeout=20)
    # The secret-ID file is root's, so the start stops after the topology was chosen.
    assert own.returncode != 0
    assert '"topology.selected"' in own.stderr and '"one-uid"' in own.stderr, own.stderr
    assert "front.same_user" not in own.stderr
    other = subprocess.run(base + ["--front-user", "65533"], capture_output=True, text=True, timeout=20)
    assert other.returncode != 0
    assert "without the privilege to start the front" in other.stderr and "drop --front-user" in other.stderr
    assert "topology.selected" not in other.stderr
