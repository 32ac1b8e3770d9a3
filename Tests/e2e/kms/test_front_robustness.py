"""gRPC robustness limits of the front (issue 4, point 5), each checked against the real binary
while a parallel grpcio client keeps working. The limits and where their numbers come from:
Limits.maxGRPCMessageBytes (KMSCore/Limits.swift), HTTP2Connection.maxConcurrentStreams,
maxHeaderListBytes, handshakeTimeoutMillis, idleTimeoutMillis, GRPCServer.maxConnections.
Single-limit tests live in test_front_grpc.py; these add the stream limit as advertised and
enforced, the idle timeout, and a mixed attack next to a busy client."""
import os
import socket
import struct
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

from kmstest import brokerproto as bp
from kmstest import fakebroker
from test_front_grpc import KEY_ID, MAX_GRPC_MESSAGE_BYTES, SERVICE, api, front, grpc_frame, h2_call, make_front  # noqa: F401

MAX_CONCURRENT_STREAMS = 100  # HTTP2Connection.maxConcurrentStreams
MAX_HEADER_LIST_BYTES = 16 * 1024  # HTTP2Connection.maxHeaderListBytes
IDLE_TIMEOUT_SECONDS = 60  # HTTP2Connection.idleTimeoutMillis
REFUSED_STREAM = 7


def h2_client(socket_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(socket_path)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    return sock, conn


def request_headers(method):
    return [(":method", "POST"), (":scheme", "http"), (":path", SERVICE + method), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers")]


def encrypt_body(uid):
    # EncryptRequest{plaintext=32 bytes, uid}
    message = b"\x0a\x20" + b"\x07" * 32 + b"\x12" + bytes([len(uid)]) + uid.encode()
    return grpc_frame(message)


def busy_client(front, api, stop, errors, counter):
    pb2, _ = api
    stub = front.stub(api)
    while not stop.is_set():
        try:
            assert stub.Status(pb2.StatusRequest(), timeout=5).healthz == "ok"
            counter.append(1)
        except Exception as error:  # noqa: BLE001 - collected and asserted by the test
            errors.append(error)
            return


def test_the_stream_limit_is_advertised_and_the_stream_beyond_it_is_refused(front, api):
    never = {bp.ENCRYPT_REQUEST}
    front.broker.handler = lambda t, r: None if t in never else fakebroker.default_handler(t, r)
    stop, errors, counter = threading.Event(), [], []
    client = threading.Thread(target=busy_client, args=(front, api, stop, errors, counter))
    client.start()
    sock, conn = h2_client(front.socket_path)
    try:
        # All streams go out before the server's SETTINGS is read (and acknowledged): nghttp2 then
        # answers the stream beyond its pending limit with RST_STREAM REFUSED_STREAM.
        stream_ids = []
        for index in range(MAX_CONCURRENT_STREAMS + 1):
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(stream_id, request_headers("Encrypt"))
            conn.send_data(stream_id, encrypt_body("s%d" % index), end_stream=True)
            stream_ids.append(stream_id)
        sock.sendall(conn.data_to_send())
        advertised, refused = {}, []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not refused:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    advertised.update({k: v.new_value for k, v in event.changed_settings.items()})
                elif isinstance(event, h2.events.StreamReset):
                    refused.append((event.stream_id, event.error_code))
            sock.sendall(conn.data_to_send())
        assert advertised.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) == MAX_CONCURRENT_STREAMS
        assert advertised.get(h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE) == MAX_HEADER_LIST_BYTES
        assert refused == [(stream_ids[-1], REFUSED_STREAM)]
        time.sleep(0.5)
        assert len(front.broker.requests_of(bp.ENCRYPT_REQUEST)) == MAX_CONCURRENT_STREAMS
    finally:
        sock.close()
        stop.set()
        client.join(10)
    assert errors == []
    assert counter, "the parallel client made no call"
    assert front.proc.poll() is None


def test_oversized_and_malformed_requests_fail_alone_while_a_parallel_client_keeps_working(front, api):
    stop, errors, counter = threading.Event(), [], []
    client = threading.Thread(target=busy_client, args=(front, api, stop, errors, counter))
    client.start()
    try:
        # The declared length alone is over the limit: refused before the body is read.
        oversized = b"\x00" + struct.pack(">I", MAX_GRPC_MESSAGE_BYTES + 1) + b"\x00" * 1000
        response, _ = h2_call(SERVICE + "Encrypt", oversized, front.socket_path)
        assert response["grpc-status"] == "8"  # RESOURCE_EXHAUSTED
        response, _ = h2_call(SERVICE + "Encrypt", grpc_frame(b"\x0a\x01x", compressed=1), front.socket_path)
        assert response["grpc-status"] == "13"  # INTERNAL: compressed messages are not accepted
        response, _ = h2_call(SERVICE + "Encrypt", grpc_frame(b"\xff\xff\xff"), front.socket_path)
        assert response["grpc-status"] == "13"  # INTERNAL: not a protobuf message
        response, _ = h2_call(SERVICE + "Status", grpc_frame(b""), front.socket_path,
                              headers=[("x-big", "a" * (MAX_HEADER_LIST_BYTES + 1024))])
        assert "grpc-status" not in response  # the stream is reset, nothing is answered on it

        # A frame that breaks HTTP/2 itself (DATA on stream 0) ends that connection only.
        sock, conn = h2_client(front.socket_path)
        sock.sendall(conn.data_to_send() + struct.pack(">I", 4)[1:] + b"\x00\x00" + struct.pack(">I", 0) + b"junk")
        closed, goaway = False, None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    goaway = event.error_code
        sock.close()
        assert closed and goaway == 1  # PROTOCOL_ERROR
        # The parallel client must go on succeeding; on a loaded machine give it time to (bounded).
        deadline = time.monotonic() + 15
        while len(counter) < 5 and not errors and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        client.join(10)
    assert errors == []
    assert len(counter) >= 5
    assert front.proc.poll() is None


def test_an_idle_connection_gets_goaway_after_the_idle_timeout(front, api):
    pb2, _ = api
    sock, conn = h2_client(front.socket_path)
    sock.sendall(conn.data_to_send())
    start = time.monotonic()
    sock.settimeout(IDLE_TIMEOUT_SECONDS + 15)
    goaway_at = None
    try:
        while goaway_at is None:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    goaway_at = time.monotonic() - start
            pending = conn.data_to_send()
            if goaway_at is None and pending:
                sock.sendall(pending)  # SETTINGS and PING acknowledgements
    finally:
        sock.close()
    assert goaway_at is not None, "no GOAWAY"
    assert IDLE_TIMEOUT_SECONDS - 2 <= goaway_at <= IDLE_TIMEOUT_SECONDS + 10
    assert front.stub(api).Status(pb2.StatusRequest(), timeout=5).healthz == "ok"


def test_a_call_written_as_the_drain_begins_is_served_not_dropped(make_front, api):
    """SIGTERM drains the front in two steps: a shutdown notice (GOAWAY naming stream 2^31-1),
    then, 200 ms later (HTTP2Connection.shutdownNoticeMillis), the final GOAWAY naming the last
    stream it processed. A call the client writes after the notice left the front (as a client
    that has not read it yet does) is answered on the same connection. With one GOAWAY the idle
    connection was closed at once and such a call was lost ("Stream removed", the residual loss of
    the systemd upgrade drill)."""
    import signal

    import hpack
    from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame

    pb2, _ = api
    front = make_front()
    assert front.stub(api).Status(pb2.StatusRequest(), timeout=5).healthz == "ok"
    sock, conn = h2_client(front.socket_path)
    sock.sendall(conn.data_to_send())
    settled = False
    while not settled:  # the server's SETTINGS, acknowledged
        for event in conn.receive_data(sock.recv(65536)):
            settled = settled or isinstance(event, h2.events.RemoteSettingsChanged)
        sock.sendall(conn.data_to_send())
    # The call is encoded now; it is written only once the notice has arrived.
    conn.send_headers(1, request_headers("Status"))
    conn.send_data(1, grpc_frame(b""), end_stream=True)
    call_bytes = conn.data_to_send()

    def frames(deadline):
        buffer = b""
        while time.monotonic() < deadline:
            while len(buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9:9 + length]))
                buffer = buffer[9 + length:]
                yield frame
            data = sock.recv(65536)
            if not data:
                return
            buffer += data

    front.proc.send_signal(signal.SIGTERM)
    received = frames(time.monotonic() + 10)
    notice = next(frame for frame in received if isinstance(frame, GoAwayFrame))
    assert notice.last_stream_id == 2**31 - 1 and notice.error_code == 0
    sock.sendall(call_bytes)
    decoder, headers, final = hpack.Decoder(), {}, None
    for frame in received:
        if isinstance(frame, HeadersFrame):
            headers.update(dict(decoder.decode(frame.data)))
        if isinstance(frame, GoAwayFrame):
            final = frame
            break
    sock.close()
    assert headers.get(":status") == "200" and headers.get("grpc-status") == "0", headers
    assert final is not None and final.last_stream_id == 1 and final.error_code == 0
    assert front.wait(10) == 0
