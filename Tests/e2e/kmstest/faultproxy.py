"""A small HTTP fault proxy of the suite's own, between the plugin and a real OpenBao: the faults
the simulator's /_sim/faults rules inject, with a real server behind them.

Each client request (HTTP/1.1, Content-Length bodies, keep-alive) is matched against the rule: a
request whose path contains one of `paths` (all when empty) gets `latency_ms` first, then either
an answer of `status` (429 with Retry-After, 500, 503 sealed) without reaching OpenBao, a reset
(TCP RST, no answer), a black hole (read, never answered), or is forwarded. `count` limits a rule
to its next N matches. `hits` counts the matched requests."""
import json
import socket
import struct
import threading
import time

from .tcpproxy import ListeningProxy

ANSWERS = {
    429: (b"Too Many Requests", {"errors": ['request path "{path}": rate limit quota exceeded']}),
    500: (b"Internal Server Error", {"errors": ["internal error"]}),
    503: (b"Service Unavailable", {"errors": ["Vault is sealed"]}),
}


class FaultProxy(ListeningProxy):
    def __init__(self, target_address):
        self.rule = None
        self.hits = 0
        self.lock = threading.Lock()
        self.held = []
        super().__init__(target_address)

    def set(self, paths=(), latency_ms=0, status=None, reset=False, black_hole=False, count=None):
        with self.lock:
            self.rule = {"paths": list(paths), "latency_ms": latency_ms, "status": status, "reset": reset,
                         "black_hole": black_hole, "count": count}
            self.hits = 0

    def clear(self):
        with self.lock:
            self.rule = None
            held, self.held = self.held, []
        for connection in held:
            _reset(connection)

    def close(self):
        self.clear()
        self.close_listener()

    # -- plumbing -------------------------------------------------------------------------------

    def _match(self, path):
        with self.lock:
            rule = self.rule
            if rule is None or (rule["paths"] and not any(p in path for p in rule["paths"])):
                return None
            if rule["count"] is not None:
                if rule["count"] <= 0:
                    return None
                rule["count"] -= 1
            self.hits += 1
            return dict(rule)

    def _serve(self, client):
        buffer = b""
        try:
            while True:
                request, buffer = _read_message(client, buffer)
                if request is None:
                    return client.close()
                path = request.split(b" ", 2)[1].decode(errors="replace")
                rule = self._match(path)
                if rule and rule["latency_ms"]:
                    time.sleep(rule["latency_ms"] / 1000)
                if rule and rule["black_hole"]:
                    with self.lock:
                        self.held.append(client)
                    return
                if rule and rule["reset"]:
                    return _reset(client)
                if rule and rule["status"]:
                    reason, document = ANSWERS[rule["status"]]
                    body = json.dumps({"errors": [e.replace("{path}", path.split("/v1/", 1)[-1])
                                                  for e in document["errors"]]}).encode()
                    extra = b"Retry-After: 1\r\n" if rule["status"] == 429 else b""
                    client.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n"
                                   % (rule["status"], reason, extra, len(body)) + body)
                    continue
                client.sendall(self._forward(request))
        except OSError:
            client.close()

    def _forward(self, request):
        head, _, body = request.partition(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        upstream = socket.create_connection(self.target, timeout=30)
        try:
            upstream.sendall(b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + body)
            answer = b""  # OpenBao closes after this answer: read it whole, chunked or not
            while chunk := upstream.recv(65536):
                answer += chunk
            return answer or b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
        finally:
            upstream.close()


def _read_message(sock, buffer):
    """One HTTP/1.1 message (headers and a Content-Length body): (message, rest), or (None, b"")
    at the end of the stream."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def _reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
