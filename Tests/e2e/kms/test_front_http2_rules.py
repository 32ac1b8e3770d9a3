"""The HTTP/2 request rules of the real front (Sources/Front/HTTP2RequestRules.swift), driven with
hand-made frames (hpack + hyperframe) so that every malformed request can be sent at all.
Run with KMS_BIN_DIR pointing at a front built before the change, the MALFORMED cases pass too:
they are what Debian 12's nghttp2 1.52 refused with its own HTTP messaging checks.

The front turns nghttp2's HTTP messaging checks off for one reason: they refuse an `:authority`
that is not a URI authority, and a grpc-go client without WithAuthority sends the Unix socket
path there. These tests prove both halves: any `:authority` is answered, and every other rule
nghttp2 enforced still resets the stream with PROTOCOL_ERROR (and only the stream)."""
import os
import socket
import struct

import hpack
import pytest
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame

from test_front_grpc import SERVICE, Front

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR = 1
EMPTY_MESSAGE = struct.pack(">BI", 0, 0)  # one gRPC frame holding an empty StatusRequest
GOOD = [(":method", "POST"), (":scheme", "http"), (":path", SERVICE + "Status"), (":authority", "localhost"),
        ("content-type", "application/grpc"), ("te", "trailers")]


@pytest.fixture(scope="module")
def front():
    running = Front()
    yield running
    running.stop()


def replace(headers, name, value):
    return [(n, value if n == name else v) for n, v in headers]


def without(headers, name):
    return [(n, v) for n, v in headers if n != name]


class Connection:
    """One raw HTTP/2 connection to the front's socket."""

    def __init__(self, socket_path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(socket_path)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buffer = b""
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def headers(self, stream_id, headers, end_stream):
        frame = HeadersFrame(stream_id)
        frame.data = self.encoder.encode([(n.encode(), v.encode("latin-1")) for n, v in headers])
        frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        self.sock.sendall(frame.serialize())

    def data(self, stream_id, payload, end_stream):
        frame = DataFrame(stream_id, data=payload)
        if end_stream:
            frame.flags.add("END_STREAM")
        self.sock.sendall(frame.serialize())

    def outcome(self, stream_id):
        """("reset", code), ("answered", {response headers and trailers}) or ("goaway", code)."""
        answer = {}
        while True:
            frame = self._next_frame()
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
            elif isinstance(frame, GoAwayFrame):
                return "goaway", frame.error_code
            elif frame.stream_id != stream_id:
                continue
            elif isinstance(frame, RstStreamFrame):
                return "reset", frame.error_code
            elif isinstance(frame, HeadersFrame):
                answer.update((n.decode() if isinstance(n, bytes) else n, v.decode() if isinstance(v, bytes) else v)
                              for n, v in self.decoder.decode(frame.data))
                if "END_STREAM" in frame.flags:
                    return "answered", answer
            elif isinstance(frame, DataFrame) and "END_STREAM" in frame.flags:
                return "answered", answer

    def _next_frame(self):
        while len(self.buffer) < 9 or len(self.buffer) < 9 + int.from_bytes(self.buffer[:3], "big"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("the front closed the connection")
            self.buffer += chunk
        frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
        frame.parse_body(memoryview(self.buffer[9:9 + length]))
        self.buffer = self.buffer[9 + length:]
        return frame

    def close(self):
        self.sock.close()


def call(front, headers, body=EMPTY_MESSAGE, trailers=None, trailers_end_stream=True):
    connection = Connection(front.socket_path)
    try:
        connection.headers(1, headers, end_stream=body is None and trailers is None)
        if body is not None:
            connection.data(1, body, end_stream=trailers is None)
        if trailers is not None:
            connection.headers(1, trailers, end_stream=trailers_end_stream)
        return connection.outcome(1)
    finally:
        connection.close()


def assert_answered_ok(outcome):
    kind, answer = outcome
    assert kind == "answered", outcome
    assert answer.get(":status") == "200" and answer.get("grpc-status") == "0", answer


@pytest.mark.parametrize("authority", [
    "/tmp/kms-test/kms.sock",  # what grpc-go sends for a unix socket without WithAuthority
    "unix:///var/run/kmsplugin/kms.sock", "localhost", "%2Frun%2Fkms.sock", "example.invalid:1234",
    "not a uri [at] all", ""])
def test_any_authority_value_is_answered(front, authority):
    assert_answered_ok(call(front, replace(GOOD, ":authority", authority)))


def test_a_host_field_instead_of_authority_is_answered(front):
    assert_answered_ok(call(front, without(GOOD, ":authority") + [("host", "/tmp/kms.sock")]))


MALFORMED = {
    "no :authority and no host": without(GOOD, ":authority"),
    "two :authority fields": GOOD[:4] + [(":authority", "again")] + GOOD[4:],
    ":authority with a NUL byte": replace(GOOD, ":authority", "kms\x00sock"),
    "no :method": without(GOOD, ":method"),
    "no :scheme": without(GOOD, ":scheme"),
    "no :path": without(GOOD, ":path"),
    "an empty :path": replace(GOOD, ":path", ""),
    "a :path without a leading slash": replace(GOOD, ":path", "v2.KeyManagementService/Status"),
    "a :method with a space": replace(GOOD, ":method", "PO ST"),
    "a :scheme starting with a digit": replace(GOOD, ":scheme", "1http"),
    "two :path fields": GOOD[:3] + [(":path", SERVICE + "Encrypt")] + GOOD[3:],
    "a pseudo-header after a regular field": GOOD + [(":authority", "late")],
    "an unknown pseudo-header": GOOD[:4] + [(":foo", "bar")] + GOOD[4:],
    "a :protocol pseudo-header": GOOD[:4] + [(":protocol", "websocket")] + GOOD[4:],
    "a :status pseudo-header in a request": GOOD[:4] + [(":status", "200")] + GOOD[4:],
    "an upper-case field name": GOOD + [("X-Upper", "1")],
    "a connection field": GOOD + [("connection", "keep-alive")],
    "a transfer-encoding field": GOOD + [("transfer-encoding", "chunked")],
    "te other than trailers": replace(GOOD, "te", "gzip"),
    "a content-length that is not a number": GOOD + [("content-length", "five")],
    "two content-length fields": GOOD + [("content-length", "5"), ("content-length", "5")],
    # a regular field with a bad name or value resets the stream (Debian 12's nghttp2 does not skip it)
    "a field name with a space": GOOD + [("x padded", "1")],
    "a field name with a brace": GOOD + [("x{a", "1")],
    "a field value with leading white space": GOOD + [("x-padded", " leading")],
    "a field value with trailing white space": GOOD + [("x-padded", "trailing ")],
    "a field value with a control character": GOOD + [("x-control", "a\x01b")],
    "a field value with DEL": GOOD + [("x-control", "a\x7fb")],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_every_other_request_rule_resets_the_stream_with_protocol_error(front, case):
    assert call(front, MALFORMED[case]) == ("reset", PROTOCOL_ERROR), case


@pytest.mark.parametrize("declared", ["0", "4", "6", "1000"])
def test_data_that_does_not_match_content_length_resets_the_stream(front, declared):
    assert call(front, GOOD + [("content-length", declared)]) == ("reset", PROTOCOL_ERROR)


def test_data_that_matches_content_length_is_answered(front):
    assert_answered_ok(call(front, GOOD + [("content-length", str(len(EMPTY_MESSAGE)))]))


def test_trailers_must_end_the_stream_and_carry_no_pseudo_header(front):
    assert_answered_ok(call(front, GOOD, trailers=[("x-trailer", "1")]))
    assert call(front, GOOD, trailers=[("x-trailer", "1")], trailers_end_stream=False) == ("reset", PROTOCOL_ERROR)
    assert call(front, GOOD, trailers=[(":path", "/x")]) == ("reset", PROTOCOL_ERROR)


def test_a_malformed_stream_is_reset_alone_and_the_connection_keeps_serving(front):
    connection = Connection(front.socket_path)
    try:
        connection.headers(1, GOOD + [("connection", "close")], end_stream=False)
        connection.data(1, EMPTY_MESSAGE, end_stream=True)
        assert connection.outcome(1) == ("reset", PROTOCOL_ERROR)
        connection.headers(3, replace(GOOD, ":authority", "/run/kms.sock"), end_stream=False)
        connection.data(3, EMPTY_MESSAGE, end_stream=True)
        assert_answered_ok(connection.outcome(3))
    finally:
        connection.close()
    assert front.proc.poll() is None
