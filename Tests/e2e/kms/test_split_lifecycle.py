"""Split topology lifecycle: a broker restart recovered without restarting the front (and what
the front answers meanwhile), SIGTERM drains with a call in flight on either side (the broker
revokes its token), and the KMS socket rules when the front binds it itself."""
import os
import signal
import socket
import time

import grpc
import pytest

from kmstest import kmsclient
from kmstest import simctl
from kmstest.kmsclient import api
from kmstest.polling import wait_for
from kmstest.splitplugin import SplitPlugin


@pytest.fixture()
def clear_faults(vault):
    yield
    simctl.clear_faults(vault)


def wait_until_vault_sees_an_encrypt(vault, before):
    key = f"{vault.mount}/encrypt/{vault.key}"
    assert wait_for(lambda: simctl.stats(vault).get(key, 0) > before), "the encrypt never reached Vault"


def encrypt_count(vault):
    return simctl.stats(vault).get(f"{vault.mount}/encrypt/{vault.key}", 0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_broker_restart_is_recovered_without_restarting_the_front(vault, workdir, sig):
    running = SplitPlugin(vault, workdir)
    try:
        client = running.client()
        front_pid = running.front.proc.pid
        running.broker.stop(sig)
        # While the broker is away: a non-ok healthz and UNAVAILABLE, both at once.
        assert wait_for(lambda: client.Status(api().StatusRequest(), timeout=3).healthz != "ok", timeout=3)
        start = time.monotonic()
        status = client.Status(api().StatusRequest(), timeout=3)
        assert status.healthz == "broker unavailable"
        with pytest.raises(grpc.RpcError) as error:
            client.Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="away"), timeout=3)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - start < 1.0
        # The broker comes back (a SIGKILLed one left its socket file behind: it is dead, so replaced).
        running.start_broker()
        running.wait_healthy()
        seed = os.urandom(32)
        encrypted = client.Encrypt(api().EncryptRequest(plaintext=seed, uid="back"), timeout=3)
        assert client.Decrypt(api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                                   uid="back"), timeout=3).plaintext == seed
        assert running.front.proc.pid == front_pid and running.front.proc.poll() is None
        assert running.front.events("broker.connection_lost")
        assert len(running.front.events("broker.ready")) == 2
    finally:
        running.stop()


def test_front_started_before_the_broker_waits_and_then_serves(vault, workdir):
    running = SplitPlugin(vault, workdir, start_front=False)
    try:
        running.broker.stop()
        running.start_front()
        assert wait_for(lambda: os.path.exists(running.socket), timeout=5)
        status = running.client().Status(api().StatusRequest(), timeout=3)
        assert status.healthz == "broker unavailable"
        running.start_broker()
        running.wait_healthy()
    finally:
        running.stop()


@pytest.mark.simulator_only("latency rule (/_sim/faults) that holds a Vault call in flight")
def test_front_sigterm_lets_a_call_in_flight_finish_then_exits_0(vault, workdir, clear_faults):
    running = SplitPlugin(vault, workdir)
    try:
        simctl.add_fault(vault, {"paths": ["transit/encrypt"], "latency_ms": 1500})
        before = encrypt_count(vault)
        call = running.client().Encrypt.future(api().EncryptRequest(plaintext=os.urandom(32), uid="drain"),
                                               timeout=10)
        wait_until_vault_sees_an_encrypt(vault, before)  # the call is in flight, held by the latency
        assert not call.done()
        start = time.monotonic()
        running.front.proc.send_signal(signal.SIGTERM)
        assert call.result().ciphertext.startswith(b"vault:v1:")
        assert running.front.proc.wait(10) == 0
        assert time.monotonic() - start < 5.5
        # The front bound the socket itself, so it removed it; nothing accepts any more.
        assert not os.path.exists(running.socket)
        assert running.front.events("shutdown.begin") and running.front.events("shutdown.done")
        assert running.broker.proc.poll() is None
    finally:
        running.stop()


@pytest.mark.simulator_only("latency rule (/_sim/faults) that holds a Vault call in flight")
def test_broker_sigterm_finishes_the_vault_call_then_revokes_its_token(vault, workdir, clear_faults):
    running = SplitPlugin(vault, workdir)
    try:
        revokes_before = simctl.stats(vault).get("auth/token/revoke-self", 0)
        simctl.add_fault(vault, {"paths": ["transit/encrypt"], "latency_ms": 1500})
        before = encrypt_count(vault)
        call = running.client().Encrypt.future(api().EncryptRequest(plaintext=os.urandom(32), uid="drain"),
                                               timeout=10)
        wait_until_vault_sees_an_encrypt(vault, before)  # the call is in flight, held by the latency
        assert not call.done()
        running.broker.proc.send_signal(signal.SIGTERM)
        assert call.result().ciphertext.startswith(b"vault:v1:")
        assert running.broker.proc.wait(10) == 0
        assert simctl.stats(vault).get("auth/token/revoke-self", 0) == revokes_before + 1
        assert running.broker.events("broker.token.revoked")
        assert not os.path.exists(running.broker_socket)
        # The front stays up and reports the broker away.
        assert running.front.proc.poll() is None
        assert wait_for(lambda: running.client().Status(api().StatusRequest(), timeout=3).healthz
                        == "broker unavailable", timeout=5)
    finally:
        running.stop()


# --- the KMS socket the front binds ---------------------------------------------------------------

def test_dead_socket_is_replaced(vault, workdir):
    running = SplitPlugin(vault, workdir, start_front=False)
    try:
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(running.socket)
        dead.close()  # the file stays, nobody listens
        os.chown(running.socket, 65534, 65534)  # left by an earlier front (same user)
        running.start_front()
        running.wait_healthy()
    finally:
        running.stop()


def test_live_socket_is_refused_with_a_clear_error(vault, workdir):
    running = SplitPlugin(vault, workdir, start_front=False)
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        live.bind(running.socket)
        live.listen(1)
        os.chmod(running.socket, 0o777)
        running.start_front()
        assert running.front.proc.wait(10) == 1
        assert "is a live socket" in running.front.text()
        assert os.path.exists(running.socket)
    finally:
        live.close()
        running.stop()


def test_regular_file_is_never_removed(vault, workdir):
    running = SplitPlugin(vault, workdir, start_front=False)
    try:
        with open(running.socket, "w") as handle:
            handle.write("not a socket")
        os.chown(running.socket, 65534, 65534)
        running.start_front()
        assert running.front.proc.wait(10) == 1
        assert "is not a socket" in running.front.text()
        with open(running.socket) as handle:
            assert handle.read() == "not a socket"
    finally:
        running.stop()


def test_group_writable_socket_directory_is_refused(vault, workdir):
    running = SplitPlugin(vault, workdir, start_front=False)
    try:
        os.chmod(running.socket_dir, 0o775)
        running.start_front()
        assert running.front.proc.wait(10) == 1
        assert "writable by group or others" in running.front.text()
        assert not os.path.exists(running.socket)
    finally:
        running.stop()


def test_abstract_kms_socket_serves(vault, workdir):
    name = f"vkk-split-{os.getpid()}-{time.time_ns()}"
    running = SplitPlugin(vault, workdir, start_front=False,
                          front_args=["--listen-address", f"unix:///@{name}", "--allowed-client-uid", "0"])
    running.mode = "custom"
    try:
        running.start_front()
        stub = kmsclient.stubs()[1].KeyManagementServiceStub(grpc.insecure_channel(f"unix-abstract:{name}"))
        assert wait_for(lambda: _healthy(stub), timeout=15), running.front.text()
    finally:
        running.stop()


def _healthy(stub):
    try:
        return stub.Status(api().StatusRequest(), timeout=2).healthz == "ok"
    except grpc.RpcError:
        return False


def test_spawn_broker_refuses_a_world_writable_socket_directory_too(vault, workdir):
    import subprocess

    from kmstest.plugin import installed_bin_dir
    directory = os.path.join(workdir, "open")
    os.mkdir(directory)
    os.chmod(directory, 0o777)
    result = subprocess.run(
        [os.path.join(installed_bin_dir(), "vault-kube-kms"), "--listen-address", f"unix://{directory}/kms.sock",
         "--vault-address", vault.address, "--vault-key-path", vault.key_path, "--auth-mount", vault.auth_mount,
         "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path],
        capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "writable by group or others" in result.stderr
    assert not os.path.exists(f"{directory}/kms.sock")
