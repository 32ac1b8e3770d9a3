"""Broker protocol v1, written independently of Sources/KMSCore from the protocol's description.

The numbers below (version, packet cap, message types, the request/answer pairs, answer codes) are
checked against the Swift definition (Sources/KMSCore/BrokerProtocol.swift) by
Tests/KMSCoreTests/BrokerProtocolTableTests.swift, which reads this file: a change on one side
alone fails `swift test`. Keep each of them one `NAME = value` line or one dict entry a line.

One message per SOCK_SEQPACKET packet:

    0      2         3      4            8                12           16
    | "KM" | version | type | request id | payload length | reserved 0 |

All integers big-endian. Payload fields are u16-length-prefixed byte strings; deadlines and limits
are u32. Requests are even, answers odd (request + 1). An answer starts with a u8 code; when the
code is not 0 (ok) the code is the whole payload.

Used by the e2e tests as a fake broker (to drive the real front) and, later, as a fake front.
"""

import struct

MAGIC = b"KM"
VERSION = 1
HEADER = struct.Struct(">2sBBIII")
HEADER_BYTES = HEADER.size  # 16
MAX_PACKET_BYTES = 4096

HELLO_REQUEST = 0x02
HELLO_ANSWER = 0x03
STATUS_REQUEST = 0x04
STATUS_ANSWER = 0x05
ENCRYPT_REQUEST = 0x06
ENCRYPT_ANSWER = 0x07
DECRYPT_REQUEST = 0x08
DECRYPT_ANSWER = 0x09
METRICS_REQUEST = 0x0A
METRICS_ANSWER = 0x0B
HEARTBEAT_REQUEST = 0x0C
HEARTBEAT_ANSWER = 0x0D

# The one answer type legal for each request (BrokerProtocol.pairs).
PAIRS = {
    HELLO_REQUEST: HELLO_ANSWER,
    STATUS_REQUEST: STATUS_ANSWER,
    ENCRYPT_REQUEST: ENCRYPT_ANSWER,
    DECRYPT_REQUEST: DECRYPT_ANSWER,
    METRICS_REQUEST: METRICS_ANSWER,
    HEARTBEAT_REQUEST: HEARTBEAT_ANSWER,
}

# Answer codes (BrokerErrorCode).
CODES = {
    "ok": 0,
    "invalid-request": 1,
    "permission-denied": 2,
    "throttled": 3,
    "unavailable": 4,
    "sealed": 5,
    "deadline-exceeded": 6,
    "unknown-key-id": 7,
    "decrypt-failed": 8,
    "too-many-requests": 9,
    "not-ready": 10,
    "version-too-old": 11,
    "key-missing": 12,
    "internal": 13,
}


class ProtocolError(Exception):
    pass


def encode(msg_type, request_id, payload=b""):
    return HEADER.pack(MAGIC, VERSION, msg_type, request_id, len(payload), 0) + payload


def decode(packet):
    """Returns (type, request id, payload); raises ProtocolError for anything malformed."""
    if len(packet) > MAX_PACKET_BYTES:
        raise ProtocolError("oversized packet")
    if len(packet) < HEADER_BYTES:
        raise ProtocolError("truncated header")
    magic, version, msg_type, request_id, length, reserved = HEADER.unpack_from(packet)
    if magic != MAGIC:
        raise ProtocolError("bad magic")
    if version != VERSION:
        raise ProtocolError("bad version %d" % version)
    if reserved != 0:
        raise ProtocolError("reserved bytes set")
    if length != len(packet) - HEADER_BYTES:
        raise ProtocolError("length mismatch")
    return msg_type, request_id, bytes(packet[HEADER_BYTES:])


class Reader:
    def __init__(self, data):
        self.data = data
        self.offset = 0

    def take(self, n):
        if self.offset + n > len(self.data):
            raise ProtocolError("truncated payload")
        out = self.data[self.offset:self.offset + n]
        self.offset += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def field(self):
        (length,) = struct.unpack(">H", self.take(2))
        return self.take(length)

    def finish(self):
        if self.offset != len(self.data):
            raise ProtocolError("%d trailing bytes" % (len(self.data) - self.offset))


def field(value):
    if isinstance(value, str):
        value = value.encode()
    return struct.pack(">H", len(value)) + value


# Requests (front -> broker)

def hello_request(front_version):
    return field(front_version)


def parse_hello_request(payload):
    r = Reader(payload)
    version = r.field().decode()
    r.finish()
    return {"front_version": version}


def parse_encrypt_request(payload):
    r = Reader(payload)
    out = {"deadline_ms": r.u32(), "uid": r.field().decode(), "plaintext": r.field()}
    r.finish()
    return out


def parse_decrypt_request(payload):
    r = Reader(payload)
    out = {"deadline_ms": r.u32(), "uid": r.field().decode(), "key_id": r.field().decode(), "ciphertext": r.field()}
    r.finish()
    return out


def encrypt_request(deadline_ms, uid, plaintext):
    return struct.pack(">I", deadline_ms) + field(uid) + field(plaintext)


def decrypt_request(deadline_ms, uid, key_id, ciphertext):
    return struct.pack(">I", deadline_ms) + field(uid) + field(key_id) + field(ciphertext)


# Answers (broker -> front)

def error_answer(code):
    return bytes([CODES[code] if isinstance(code, str) else code])


def hello_answer(broker_version="fake-broker", max_in_flight=256):
    return b"\x00" + field(broker_version) + struct.pack(">I", max_in_flight)


def status_answer(healthz="ok", key_id="transit-v1-" + "0" * 32):
    return b"\x00" + field(healthz) + field(key_id)


def encrypt_answer(ciphertext, key_id):
    return b"\x00" + field(ciphertext) + field(key_id)


def decrypt_answer(plaintext):
    return b"\x00" + field(plaintext)


def parse_answer_code(payload):
    if not payload:
        raise ProtocolError("empty answer")
    return payload[0]
