"""End-to-end tests of the real vault-kube-kms-front binary: grpcio (an independent gRPC client)
and raw HTTP/2 (the h2 library) on one side, a fake broker in Python on the other.

Binary: $KMS_BIN_DIR/vault-kube-kms-front (default .build/debug). Stubs are generated from
Sources/KMSv2API/api.proto at test time."""

import json
import os
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from concurrent import futures

import grpc
import pytest

from kmstest import brokerproto as bp
from kmstest import kmsclient
from kmstest.fakebroker import KEY_ID, FakeBroker
from kmstest.process import Logged

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MAX_GRPC_MESSAGE_BYTES = 64 * 1024  # Limits.maxGRPCMessageBytes
MAX_PLAINTEXT_BYTES = 512  # Limits.maxPlaintextBytes
SERVICE = "/v2.KeyManagementService/"


def front_binary():
    bin_dir = os.environ.get("KMS_BIN_DIR", os.path.join(ROOT, ".build", "debug"))
    path = os.path.join(bin_dir if os.path.isabs(bin_dir) else os.path.join(ROOT, bin_dir), "vault-kube-kms-front")
    if not os.access(path, os.X_OK):
        pytest.fail("front binary not found at %s (build it or set KMS_BIN_DIR)" % path)
    return path


@pytest.fixture(scope="session")
def api():
    """api_pb2 and api_pb2_grpc generated from the project's api.proto."""
    return kmsclient.stubs()


class Front:
    """One running front process wired to a FakeBroker."""

    def __init__(self, answer_hello=True, listen="address", broker="fd", via_env=False, extra=None):
        """listen: "address" (--listen-address) or "fd" (--listen-fd, as the broker spawns it);
        broker: "fd" (--broker-fd, a socketpair) or "address" (--broker-address, the front
        connects); via_env: the same settings through VAULT_KUBE_KMS_* variables instead of flags."""
        self.dir = tempfile.mkdtemp(prefix="kmsfront-", dir="/tmp")
        self.socket_path = os.path.join(self.dir, "kms.sock")
        self.address = "unix://" + self.socket_path
        # No health/metrics listeners unless a test asks: the defaults 8081/9090 collide with
        # parallel runs and a developer's `make run`.
        settings = {"log-level": "debug", "health-port": "0", "metrics-port": "0", **(extra or {})}
        pass_fds, close_after = [], []
        if listen == "fd":
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(self.socket_path)
            self.listener.listen(16)
            settings["listen-fd"] = str(self.listener.fileno())
            pass_fds.append(self.listener.fileno())
        else:
            settings["listen-address"] = self.address
        if broker == "fd":
            broker_end, front_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            settings["broker-fd"] = str(front_end.fileno())
            pass_fds.append(front_end.fileno())
            close_after.append(front_end)
        else:
            broker_path = os.path.join(self.dir, "broker.sock")
            broker_listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            broker_listener.bind(broker_path)
            broker_listener.listen(1)
            settings["broker-address"] = "unix://" + broker_path
        self.log_path = os.path.join(self.dir, "front.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_KUBE_KMS_")}
        args = [front_binary()]
        for flag, value in settings.items():
            if via_env:
                env["VAULT_KUBE_KMS_" + flag.upper().replace("-", "_")] = value
            else:
                args += ["--" + flag, value]
        self.process = Logged(args, self.log_path, append=False, pass_fds=pass_fds, env=env)
        self.proc = self.process.proc
        for sock in close_after:
            sock.close()
        if broker != "fd":
            broker_listener.settimeout(15)
            broker_end, _ = broker_listener.accept()
            broker_listener.close()
        self.broker = FakeBroker(broker_end, answer_hello=answer_hello)
        # HELLO is the readiness report: the KMS socket must accept connections when it arrives.
        self.broker.on_hello = lambda: setattr(self, "accepting_at_hello", self.accepts_connections())
        self.broker.start()
        assert self.broker.hello_received.wait(15), "front sent no HELLO:\n" + self.logs()
        self.channels = []
        if answer_hello:
            self.wait_for_event("broker.ready")

    def accepts_connections(self):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.socket_path)
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def wait_for_event(self, name, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("event") == name for e in self.log_events()):
                return
            time.sleep(0.01)
        raise AssertionError("no %s in the front's log:\n%s" % (name, self.logs()))

    def channel(self, **options):
        channel = grpc.insecure_channel(self.address, options=list(options.items()))
        self.channels.append(channel)
        return channel

    def stub(self, api):
        return api[1].KeyManagementServiceStub(self.channel())

    def wait(self, timeout=10):
        return self.proc.wait(timeout)

    def logs(self):
        return self.process.text()

    def log_events(self):
        return self.process.events()

    def stop(self):
        for channel in self.channels:
            channel.close()
        self.process.stop(signal.SIGKILL, timeout=10)
        self.broker.close()
        if getattr(self, "listener", None):
            self.listener.close()


@pytest.fixture
def make_front():
    fronts = []

    def make(**kwargs):
        front = Front(**kwargs)
        fronts.append(front)
        return front

    yield make
    for front in fronts:
        front.stop()


@pytest.fixture
def front(make_front):
    return make_front()


# --- raw HTTP/2 client (h2) for what grpcio will not send ---------------------------------------


def grpc_frame(message, compressed=0):
    return struct.pack(">BI", compressed, len(message)) + message


def h2_call(path, body, socket_path, headers=None, method="POST", timeout=5.0):
    """One request on a fresh connection; returns (headers dict of response + trailers, data)."""
    import h2.config
    import h2.connection
    import h2.events

    request_headers = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                       ("content-type", "application/grpc"), ("te", "trailers")]
    for name, value in headers or []:
        if any(n == name for n, _ in request_headers):
            request_headers = [(n, value if n == name else v) for (n, v) in request_headers]
        else:
            request_headers.append((name, value))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(socket_path)
    try:
        conn.initiate_connection()
        conn.send_headers(1, request_headers, end_stream=not body)
        if body:
            conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        response, data = {}, b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return response, data
            for event in conn.receive_data(chunk):
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    response.update(dict(event.headers))
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return response, data
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return response, data
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()


def unary(channel, method, request_bytes, timeout=5):
    call = channel.unary_unary(SERVICE + method if not method.startswith("/") else method,
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    return call(request_bytes, timeout=timeout)


# --- happy path --------------------------------------------------------------------------------


def test_status_encrypt_decrypt_round_trip_through_the_broker(front, api):
    pb2, _ = api
    stub = front.stub(api)
    status = stub.Status(pb2.StatusRequest(), timeout=5)
    assert (status.version, status.healthz, status.key_id) == ("v2", "ok", KEY_ID)

    plaintext = os.urandom(32)
    encrypted = stub.Encrypt(pb2.EncryptRequest(plaintext=plaintext, uid="uid-1"), timeout=5)
    assert encrypted.ciphertext.startswith(b"vault:v1:")
    assert encrypted.key_id == KEY_ID
    assert len(encrypted.annotations) == 0

    decrypted = stub.Decrypt(pb2.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="uid-2"),
                             timeout=5)
    assert decrypted.plaintext == plaintext

    encrypt = front.broker.requests_of(bp.ENCRYPT_REQUEST)[0]
    assert encrypt["uid"] == "uid-1" and encrypt["plaintext"] == plaintext
    assert 4000 < encrypt["deadline_ms"] <= 5100  # grpc-core rounds the timeout up a little
    decrypt = front.broker.requests_of(bp.DECRYPT_REQUEST)[0]
    assert decrypt["key_id"] == KEY_ID and decrypt["uid"] == "uid-2"
    assert front.broker.hello["front_version"]
    assert not front.broker.errors


def test_call_without_grpc_timeout_tells_the_broker_no_deadline(front):
    # grpcio sends grpc-timeout only when a timeout is given: the broker must then see 0.
    call = front.channel().unary_unary(SERVICE + "Encrypt", request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
    call(b"\x0a\x01x")  # EncryptRequest{plaintext: "x"}
    assert front.broker.requests_of(bp.ENCRYPT_REQUEST)[0]["deadline_ms"] == 0


def test_kms_calls_are_logged_without_plaintext_or_ciphertext(front, api):
    pb2, _ = api
    stub = front.stub(api)
    secret = b"S3CRET-PLAINTEXT-" + os.urandom(8).hex().encode()
    encrypted = stub.Encrypt(pb2.EncryptRequest(plaintext=secret, uid="log-uid"), timeout=5)
    stub.Decrypt(pb2.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=KEY_ID, uid="log-uid-2"), timeout=5)
    time.sleep(0.2)
    calls = [e for e in front.log_events() if e.get("event") == "kms.call"]
    assert {(c["method"], c["uid"], c["grpc_status"]) for c in calls} >= {("Encrypt", "log-uid", "0"),
                                                                          ("Decrypt", "log-uid-2", "0")}
    assert all(float(c["duration_ms"]) >= 0 for c in calls)
    logs = front.logs()
    assert secret.decode() not in logs
    assert encrypted.ciphertext.decode() not in logs


@pytest.mark.parametrize("listen,broker,via_env", [("fd", "fd", False), ("address", "address", False),
                                                  ("address", "fd", True), ("fd", "address", True)])
def test_every_topology_and_the_environment_configure_the_front(make_front, api, listen, broker, via_env):
    pb2, _ = api
    front = make_front(listen=listen, broker=broker, via_env=via_env)
    assert front.accepting_at_hello
    assert front.stub(api).Status(pb2.StatusRequest(), timeout=5).healthz == "ok"
    front.proc.send_signal(signal.SIGTERM)
    assert front.wait() == 0
    # An inherited listening socket is never unlinked by the front; one it bound itself is.
    assert os.path.exists(front.socket_path) == (listen == "fd")


def test_startup_with_a_broker_fd_that_is_not_a_seqpacket_socket_fails_cleanly(tmp_path):
    """A pipe as --broker-fd: the front refuses it at start, naming the flag, and creates no socket.
    The socket sits in a private 0700 directory so that the socket-directory rule (which refuses a
    socket directly in a shared /tmp) passes and the broker-fd check is the one that answers."""
    read_end, write_end = os.pipe()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    socket_path = str(private / "kms.sock")
    try:
        result = subprocess.run([front_binary(), "--broker-fd", str(read_end), "--listen-address", "unix://" + socket_path],
                                pass_fds=(read_end,), capture_output=True, timeout=10)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert events[-1]["event"] == "startup.failed" and "broker-fd" in events[-1]["reason"]
    assert not os.path.exists(socket_path)


def test_missing_flags_are_a_usage_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_KUBE_KMS_")}
    result = subprocess.run([front_binary(), "--listen-address", "unix://%s/x.sock" % tmp_path], capture_output=True,
                            env=env, timeout=10)
    assert result.returncode == 64
    assert b"--broker-fd" in result.stderr


def test_socket_is_created_with_mode_0660_and_removed_on_sigterm(front):
    assert stat.S_IMODE(os.stat(front.socket_path).st_mode) == 0o660
    front.proc.send_signal(signal.SIGTERM)
    assert front.wait() == 0
    assert not os.path.exists(front.socket_path)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SERVICE + "Rotate", "/v2.OtherService/Status", "/v1beta1.KeyManagementService/Encrypt"])
def test_unknown_method_is_unimplemented(front, path):
    with pytest.raises(grpc.RpcError) as error:
        unary(front.channel(), path, b"")
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert not front.broker.requests


BROKER_CODE_TO_GRPC = {
    "invalid-request": grpc.StatusCode.INVALID_ARGUMENT,
    "decrypt-failed": grpc.StatusCode.INVALID_ARGUMENT,
    "permission-denied": grpc.StatusCode.PERMISSION_DENIED,
    "throttled": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "too-many-requests": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "sealed": grpc.StatusCode.UNAVAILABLE,
    "not-ready": grpc.StatusCode.UNAVAILABLE,
    "deadline-exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
    "unknown-key-id": grpc.StatusCode.FAILED_PRECONDITION,
    "version-too-old": grpc.StatusCode.FAILED_PRECONDITION,
    "key-missing": grpc.StatusCode.FAILED_PRECONDITION,
    "internal": grpc.StatusCode.INTERNAL,
}


def test_broker_error_codes_map_to_grpc_status_codes(front, api):
    pb2, _ = api
    stub = front.stub(api)
    for code, expected in BROKER_CODE_TO_GRPC.items():
        front.broker.handler = lambda t, r, code=code: (t + 1, bp.error_answer(code))
        with pytest.raises(grpc.RpcError) as error:
            stub.Encrypt(pb2.EncryptRequest(plaintext=b"p" * 32, uid="u"), timeout=5)
        assert error.value.code() == expected, code
        with pytest.raises(grpc.RpcError) as error:
            stub.Decrypt(pb2.DecryptRequest(ciphertext=b"vault:v1:abc", key_id=KEY_ID), timeout=5)
        assert error.value.code() == expected, code
        # The message is the front's fixed text, never anything from the broker or Vault.
        assert error.value.details() and len(error.value.details()) < 100
    assert front.proc.poll() is None


def test_status_with_broker_error_reports_unhealthy_instead_of_failing(front, api):
    pb2, _ = api
    front.broker.handler = lambda t, r: (bp.STATUS_ANSWER, bp.error_answer("not-ready"))
    status = front.stub(api).Status(pb2.StatusRequest(), timeout=5)
    assert status.version == "v2"
    assert status.healthz == "broker: not-ready"


def test_oversized_plaintext_is_rejected_without_asking_the_broker(front, api):
    pb2, _ = api
    stub = front.stub(api)
    for request in [pb2.EncryptRequest(plaintext=b"x" * (MAX_PLAINTEXT_BYTES + 1), uid="u"),
                    pb2.EncryptRequest(plaintext=b"", uid="u"),
                    pb2.EncryptRequest(plaintext=b"x", uid="u" * 129)]:
        with pytest.raises(grpc.RpcError) as error:
            stub.Encrypt(request, timeout=5)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for request in [pb2.DecryptRequest(ciphertext=b"c" * 1025, key_id=KEY_ID),
                    pb2.DecryptRequest(ciphertext=b"", key_id=KEY_ID),
                    pb2.DecryptRequest(ciphertext=b"c", key_id=""),
                    pb2.DecryptRequest(ciphertext=b"c", key_id="k" * 1025),
                    pb2.DecryptRequest(ciphertext=b"c", key_id=KEY_ID, annotations={"a.example.com": b"v" * 32768})]:
        with pytest.raises(grpc.RpcError) as error:
            stub.Decrypt(request, timeout=5)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The largest valid plaintext still goes through.
    stub.Encrypt(pb2.EncryptRequest(plaintext=b"x" * MAX_PLAINTEXT_BYTES, uid="u"), timeout=5)
    assert len(front.broker.requests) == 1


def test_message_above_the_grpc_limit_is_resource_exhausted(front, api):
    pb2, _ = api
    stub = front.stub(api)
    with pytest.raises(grpc.RpcError) as error:
        stub.Encrypt(pb2.EncryptRequest(plaintext=b"x" * (MAX_GRPC_MESSAGE_BYTES + 100)), timeout=5)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not front.broker.requests
    # The connection is still good for the next call.
    assert stub.Status(pb2.StatusRequest(), timeout=5).healthz == "ok"


def test_oversized_declared_length_is_refused_on_the_prefix_alone(front):
    # Only the 5-byte prefix is sent, declaring 1 MiB: the answer must not wait for the body.
    response, _ = h2_call(SERVICE + "Encrypt", struct.pack(">BI", 0, 1 << 20), front.socket_path)
    assert response.get("grpc-status") == "8"


def test_compressed_message_is_internal(front):
    response, _ = h2_call(SERVICE + "Encrypt", grpc_frame(b"\x0a\x01x", compressed=1), front.socket_path)
    assert response[":status"] == "200"
    assert response["grpc-status"] == "13"
    assert response["grpc-message"] == "compressed messages not supported"
    assert not front.broker.requests


@pytest.mark.parametrize("body", [grpc_frame(b"\x0a\x01x")[:-1], grpc_frame(b"\x0a\x01x") + b"\x00", b"", b"\x00\x00"])
def test_truncated_trailing_or_missing_message_is_internal(front, body):
    response, _ = h2_call(SERVICE + "Encrypt", body, front.socket_path)
    assert response["grpc-status"] == "13"
    assert not front.broker.requests


def test_unparsable_protobuf_is_internal(front):
    response, _ = h2_call(SERVICE + "Encrypt", grpc_frame(b"\xff\xff\xff"), front.socket_path)
    assert response["grpc-status"] == "13"


def test_wrong_content_type_is_http_415(front):
    response, _ = h2_call(SERVICE + "Status", grpc_frame(b""), front.socket_path,
                          headers=[("content-type", "application/json")])
    assert response[":status"] == "415"
    assert not front.broker.requests


def test_get_is_http_405(front):
    response, _ = h2_call(SERVICE + "Status", b"", front.socket_path, method="GET")
    assert response[":status"] == "405"


@pytest.mark.parametrize("value", ["1x", "S", "123456789S", "-1S", "1.5S", "1s", "0x1S"])
def test_malformed_grpc_timeout_is_invalid_argument(front, value):
    response, _ = h2_call(SERVICE + "Status", grpc_frame(b""), front.socket_path, headers=[("grpc-timeout", value)])
    assert response["grpc-status"] == "3"
    assert not front.broker.requests


@pytest.mark.parametrize("value", ["1H", "2M", "3S", "2999m", "3000000u", "99999999n", "99999999S"])
def test_every_grpc_timeout_unit_is_accepted(front, value):
    response, data = h2_call(SERVICE + "Status", grpc_frame(b""), front.socket_path, headers=[("grpc-timeout", value)])
    assert response["grpc-status"] == "0"
    assert data[:1] == b"\x00"


def test_zero_grpc_timeout_is_deadline_exceeded_without_asking_the_broker(front):
    response, _ = h2_call(SERVICE + "Encrypt", grpc_frame(b"\x0a\x01x"), front.socket_path,
                          headers=[("grpc-timeout", "0m")])
    assert response["grpc-status"] == "4"
    assert not front.broker.requests


def test_error_status_carries_the_fronts_fixed_grpc_message(front):
    # (Percent-encoding of grpc-message is covered by the unit tests: no fixed text needs it.)
    response, _ = h2_call(SERVICE + "Nope", grpc_frame(b""), front.socket_path)
    assert response["grpc-message"] == "unknown method"


def test_header_list_above_16_kib_resets_the_stream_only(front):
    response, _ = h2_call(SERVICE + "Status", grpc_frame(b""), front.socket_path, headers=[("x-big", "a" * 20000)])
    assert "grpc-status" not in response
    response, _ = h2_call(SERVICE + "Status", grpc_frame(b""), front.socket_path, headers=[("x-big", "a" * 8000)])
    assert response["grpc-status"] == "0"
    assert front.proc.poll() is None


def test_any_authority_is_accepted(front):
    for authority in ["localhost", "%2Ftmp%2Fkms.sock", "example.invalid:1234"]:
        response, _ = h2_call(SERVICE + "Status", grpc_frame(b""), front.socket_path,
                              headers=[(":authority", authority)])
        assert response["grpc-status"] == "0"


# --- robustness ---------------------------------------------------------------------------------


def raw_connection_is_dropped(socket_path, payload):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(socket_path)
    try:
        sock.sendall(payload)
        while True:  # the front may send its SETTINGS/GOAWAY first; then it must close
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    finally:
        sock.close()


def test_garbage_and_bad_preface_are_dropped_while_a_grpc_client_keeps_working(front, api):
    pb2, _ = api
    stub = front.stub(api)
    assert stub.Status(pb2.StatusRequest(), timeout=5).healthz == "ok"
    results = []
    payloads = [os.urandom(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(64),
                b"\x00" * 100000]

    def attack():
        for payload in payloads:
            results.append(raw_connection_is_dropped(front.socket_path, payload))

    attacker = threading.Thread(target=attack)
    attacker.start()
    for i in range(20):
        plaintext = os.urandom(32)
        encrypted = stub.Encrypt(pb2.EncryptRequest(plaintext=plaintext, uid="u%d" % i), timeout=5)
        assert stub.Decrypt(pb2.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=KEY_ID), timeout=5).plaintext \
            == plaintext
    attacker.join(30)
    assert results == [True] * len(payloads)
    assert front.proc.poll() is None


def test_silent_connection_is_closed_after_the_handshake_timeout(front):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(front.socket_path)
    start = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    elapsed = time.monotonic() - start
    sock.close()
    assert 8 <= elapsed <= 15


def test_connections_beyond_the_limit_are_refused_and_others_keep_working(front, api):
    pb2, _ = api
    stub = front.stub(api)
    assert stub.Status(pb2.StatusRequest(), timeout=5).healthz == "ok"
    idle = []
    for _ in range(70):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(front.socket_path)
        idle.append(sock)
    time.sleep(0.5)
    closed = 0
    for sock in idle:
        sock.setblocking(False)
        try:
            if sock.recv(65536) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    assert closed >= 70 - 63  # 64 slots, one taken by the grpc channel
    assert stub.Status(pb2.StatusRequest(), timeout=5).healthz == "ok"
    for sock in idle:
        sock.close()


def test_100_concurrent_encrypts_on_one_channel_all_succeed(front, api):
    pb2, _ = api
    front.broker.delay = 0.05
    stub = front.stub(api)
    plaintexts = [os.urandom(32) for _ in range(100)]
    calls = [stub.Encrypt.future(pb2.EncryptRequest(plaintext=p, uid="u%d" % i), timeout=20)
             for i, p in enumerate(plaintexts)]
    results = [c.result() for c in calls]
    for plaintext, result in zip(plaintexts, results):
        assert result.key_id == KEY_ID
        assert front.broker.handler(bp.DECRYPT_REQUEST, {"ciphertext": result.ciphertext})[1] == \
            bp.decrypt_answer(plaintext)
    assert len(front.broker.requests_of(bp.ENCRYPT_REQUEST)) == 100


def test_deadline_shorter_than_the_broker_is_deadline_exceeded_on_time(front, api):
    pb2, _ = api
    front.broker.delay = 2.0
    stub = front.stub(api)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        stub.Encrypt(pb2.EncryptRequest(plaintext=b"x" * 32, uid="slow"), timeout=0.5)
    elapsed = time.monotonic() - start
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.4 <= elapsed <= 1.5
    assert 0 < front.broker.requests_of(bp.ENCRYPT_REQUEST)[0]["deadline_ms"] <= 600
    # The broker's late answer is dropped quietly: the front neither crashes nor exits.
    time.sleep(2.0)
    assert front.proc.poll() is None
    front.broker.delay = 0
    assert stub.Status(pb2.StatusRequest(), timeout=5).healthz == "ok"


def test_front_enforces_the_deadline_itself_when_the_client_gives_up_later(front):
    # With h2, the client waits for the answer past its own grpc-timeout: the front must answer
    # DEADLINE_EXCEEDED by itself (grpcio would cancel on its own and hide that).
    front.broker.delay = 5.0
    start = time.monotonic()
    response, _ = h2_call(SERVICE + "Encrypt", grpc_frame(b"\x0a\x01x"), front.socket_path,
                          headers=[("grpc-timeout", "300m")], timeout=10)
    elapsed = time.monotonic() - start
    assert response["grpc-status"] == "4"
    assert 0.25 <= elapsed <= 1.5


def test_broker_closing_the_connection_makes_the_front_exit_1(front, api):
    pb2, _ = api
    assert front.stub(api).Status(pb2.StatusRequest(), timeout=5).healthz == "ok"
    front.broker.close()
    assert front.wait() == 1
    assert any(e.get("event") == "broker.connection_failed" for e in front.log_events())


def test_broker_refusing_hello_makes_the_front_exit_1(make_front):
    front = make_front(answer_hello=False)
    front.broker.release_hello(bp.error_answer("internal"))
    assert front.wait() == 1


@pytest.mark.parametrize("violation", ["wrong-type", "unknown-id", "garbage", "bad-version", "trailing-bytes",
                                       "request-type"])
def test_malformed_broker_answer_makes_the_front_exit_1_and_fails_open_calls(front, api, violation):
    pb2, _ = api

    def handler(msg_type, request):
        if violation == "wrong-type":
            return bp.DECRYPT_ANSWER, bp.decrypt_answer(b"x")
        if violation == "trailing-bytes":
            return bp.ENCRYPT_ANSWER, bp.encrypt_answer(b"vault:v1:x", KEY_ID) + b"\x00"
        if violation == "request-type":
            return bp.STATUS_REQUEST, b""
        return None

    front.broker.handler = handler
    stub = front.stub(api)
    call = stub.Encrypt.future(pb2.EncryptRequest(plaintext=b"x" * 32, uid="u"), timeout=10)
    if violation in ("unknown-id", "garbage", "bad-version"):
        deadline = time.monotonic() + 5
        while not front.broker.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        packet = {
            "unknown-id": bp.encode(bp.ENCRYPT_ANSWER, 999999, bp.error_answer("internal")),
            "garbage": b"\x01\x02\x03",
            "bad-version": bytes(bp.encode(bp.ENCRYPT_ANSWER, 2, bp.error_answer("internal")))[:2] + b"\x02"
            + bytes(bp.encode(bp.ENCRYPT_ANSWER, 2, bp.error_answer("internal")))[3:],
        }[violation]
        front.broker.send_later(packet)
    with pytest.raises(grpc.RpcError) as error:
        call.result()
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert front.wait() == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_lets_an_open_call_finish_then_exits_0(front, api, signum):
    pb2, _ = api
    front.broker.delay = 1.0
    stub = front.stub(api)
    call = stub.Encrypt.future(pb2.EncryptRequest(plaintext=b"x" * 32, uid="u"), timeout=10)
    deadline = time.monotonic() + 5
    while not front.broker.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    front.proc.send_signal(signum)
    assert call.result().key_id == KEY_ID
    assert front.wait() == 0
    assert time.monotonic() - start < 5.5
    # No new connection is accepted once draining.
    assert not os.path.exists(front.socket_path)


def test_sigterm_with_a_stuck_broker_exits_0_within_the_drain_bound(front, api):
    pb2, _ = api
    front.broker.handler = lambda t, r: None  # never answers
    stub = front.stub(api)
    call = stub.Encrypt.future(pb2.EncryptRequest(plaintext=b"x" * 32, uid="u"), timeout=30)
    deadline = time.monotonic() + 5
    while not front.broker.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    front.proc.send_signal(signal.SIGTERM)
    assert front.wait(15) == 0
    assert 4.5 <= time.monotonic() - start <= 7
    with pytest.raises(grpc.RpcError) as error:
        call.result()
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
