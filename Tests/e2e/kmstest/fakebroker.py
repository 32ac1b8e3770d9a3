"""A fake broker for driving the real front in tests: speaks broker protocol v1 (brokerproto.py)
on one end of a SOCK_SEQPACKET socketpair, in a thread, with scriptable answers and delays."""

import base64
import select
import socket
import threading
import time

from . import brokerproto as bp

KEY_ID = "transit-v1-" + "ab" * 16


def default_handler(msg_type, request):
    """Answers like a healthy broker whose 'Vault' base64-wraps the plaintext."""
    if msg_type == bp.STATUS_REQUEST:
        return bp.STATUS_ANSWER, bp.status_answer("ok", KEY_ID)
    if msg_type == bp.ENCRYPT_REQUEST:
        ciphertext = b"vault:v1:" + base64.b64encode(request["plaintext"])
        return bp.ENCRYPT_ANSWER, bp.encrypt_answer(ciphertext, KEY_ID)
    if msg_type == bp.DECRYPT_REQUEST:
        body = request["ciphertext"][len(b"vault:v1:"):]
        return bp.DECRYPT_ANSWER, bp.decrypt_answer(base64.b64decode(body))
    raise AssertionError("unexpected request type %d" % msg_type)


class FakeBroker(threading.Thread):
    """Owns the broker end of the socketpair. `handler(type, request)` returns (answer type,
    payload), or None to never answer. `delay` (seconds) postpones every answer."""

    def __init__(self, sock, answer_hello=True):
        super().__init__(daemon=True)
        self.sock = sock
        self.handler = default_handler
        self.delay = 0.0
        self.requests = []  # (type, request id, parsed request)
        self.polls = []  # HEARTBEAT and METRICS types, in arrival order
        self.hello = None
        self.hello_received = threading.Event()
        self.answer_hello = answer_hello
        self.hello_id = None
        self.on_hello = None  # called in the broker thread when HELLO arrives, before answering
        self.closed_by_peer = threading.Event()
        self.errors = []
        self._scheduled = []  # (due, packet)
        self._lock = threading.Lock()
        self._stop = False

    # Control from the test thread

    def release_hello(self, payload=None):
        self.send_later(bp.encode(bp.HELLO_ANSWER, self.hello_id, payload or bp.hello_answer()))

    def send_later(self, packet, delay=0.0):
        with self._lock:
            self._scheduled.append((time.monotonic() + delay, packet))

    def close(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def requests_of(self, msg_type):
        return [r for (t, _, r) in self.requests if t == msg_type]

    # Thread

    def run(self):
        try:
            while not self._stop:
                self._send_due()
                readable, _, _ = select.select([self.sock], [], [], 0.01)
                if not readable:
                    continue
                packet = self.sock.recv(bp.MAX_PACKET_BYTES + 1)
                if not packet:
                    self.closed_by_peer.set()
                    return
                self._dispatch(packet)
        except OSError:
            self.closed_by_peer.set()
        except Exception as error:  # surfaced by tests through .errors
            self.errors.append(error)

    def _send_due(self):
        now = time.monotonic()
        with self._lock:
            due = [p for (t, p) in self._scheduled if t <= now]
            self._scheduled = [(t, p) for (t, p) in self._scheduled if t > now]
        for packet in due:
            self.sock.send(packet)

    def _dispatch(self, packet):
        msg_type, request_id, payload = bp.decode(packet)
        if msg_type == bp.HELLO_REQUEST:
            self.hello = bp.parse_hello_request(payload)
            self.hello_id = request_id
            if self.on_hello:
                self.on_hello()
            self.hello_received.set()
            if self.answer_hello:
                self.release_hello()
            return
        if msg_type in (bp.HEARTBEAT_REQUEST, bp.METRICS_REQUEST):
            # The front's own polls (health and metrics ports): answered at once, kept apart
            # from the KMS calls the tests count.
            if payload:
                raise bp.ProtocolError("poll request with payload")
            self.polls.append(msg_type)
            answer = bp.HEARTBEAT_ANSWER if msg_type == bp.HEARTBEAT_REQUEST else bp.METRICS_ANSWER
            # METRICS answer: code ok, empty openssl_version, zero entries (docs/PROTOCOL.md).
            body = b"\x00" if msg_type == bp.HEARTBEAT_REQUEST else b"\x00\x00\x00\x00\x00"
            self.send_later(bp.encode(answer, request_id, body))
            return
        if msg_type == bp.STATUS_REQUEST:
            if payload:
                raise bp.ProtocolError("status request with payload")
            request = {}
        elif msg_type == bp.ENCRYPT_REQUEST:
            request = bp.parse_encrypt_request(payload)
        elif msg_type == bp.DECRYPT_REQUEST:
            request = bp.parse_decrypt_request(payload)
        else:
            raise bp.ProtocolError("unexpected type %d" % msg_type)
        self.requests.append((msg_type, request_id, request))
        answer = self.handler(msg_type, request)
        if answer is None:
            return
        answer_type, answer_payload = answer
        self.send_later(bp.encode(answer_type, request_id, answer_payload), self.delay)
