"""A load client for calls that each carry their own body (h2load sends one body file for every
request): a single-threaded selector loop writing pre-built bytes, for both sides of the decrypt
storm, so that the client costs the same little on both:

- `grpc_calls`: one HTTP/2 connection on the KMS Unix socket, up to `concurrency` streams in
  flight (how kube-apiserver talks to its plugin). Requests are pre-encoded HEADERS (HPACK
  literals without indexing, so one header block serves every stream) + DATA frames; an answer is
  complete at END_STREAM; its DATA payload is kept (the gRPC message) and an answer without one
  (a trailers-only error) counts as failed.
- `http1_calls`: `concurrency` HTTP/1.1 keep-alive connections to Vault, one request in flight
  on each (one connection per worker), Content-Length or chunked answers.

Latency is from the write of a request to the end of its answer (perf_counter_ns), in us."""
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, RST_STREAM = 0, 1, 4, 6, 7, 8, 3
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
BIG_WINDOW = 2**31 - 1


@dataclass
class Outcome:
    """What one run returned: per-call latency (us) and answer body, in request order."""

    seconds: float
    latencies_us: list
    answers: list
    failures: int = 0
    notes: list = field(default_factory=list)

    @property
    def throughput(self):
        return len(self.latencies_us) / self.seconds if self.seconds else 0.0


def _frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name_index, value, name=None):
    """HPACK literal header field without indexing (RFC 7541 6.2.2), no Huffman coding."""
    def string(data):
        assert len(data) < 127
        return bytes([len(data)]) + data
    if name is not None:
        return b"\x00" + string(name) + string(value)
    assert name_index < 15
    return bytes([name_index]) + string(value)


def grpc_header_block(path, authority=b"localhost"):
    # static table: 3 = :method POST, 6 = :scheme http; 4 = :path, 1 = :authority,
    # 31 = content-type (index >= 15: 4-bit prefix 15, then 31 - 15)
    return (b"\x83\x86" + _literal(4, path) + _literal(1, authority)
            + b"\x0f\x10" + bytes([len(b"application/grpc")]) + b"application/grpc"
            + _literal(0, b"trailers", name=b"te"))


def grpc_message(serialized):
    return b"\x00" + struct.pack(">I", len(serialized)) + serialized


def grpc_calls(socket_path, method, messages, concurrency, timeout=300):
    """Sends each serialized protobuf message of `messages` as one call of KMS v2 `method`."""
    block = grpc_header_block(f"/v2.KeyManagementService/{method}".encode())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    sock.setblocking(False)
    settings = _frame(SETTINGS, 0, 0, struct.pack(">HI", 4, BIG_WINDOW) + struct.pack(">HI", 2, 0))
    out = bytearray(PREFACE + settings + _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", BIG_WINDOW - 65535)))
    count = len(messages)
    latencies, answers = [0] * count, [None] * count
    started_at, by_stream = {}, {}
    payloads = {}
    next_index, done, failures = 0, 0, 0
    inbuf = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def send_next():
        nonlocal next_index
        stream = 2 * next_index + 1
        by_stream[stream] = next_index
        payloads[stream] = bytearray()
        out.extend(_frame(HEADERS, END_HEADERS, stream, block))
        out.extend(_frame(DATA, END_STREAM, stream, grpc_message(messages[next_index])))
        started_at[stream] = time.perf_counter_ns()
        next_index += 1

    begin = time.perf_counter()
    while next_index < min(concurrency, count):
        send_next()
    deadline = time.monotonic() + timeout
    while done < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"grpc_calls: {done} of {count} answered after {timeout} s")
        sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0))
        for _, events in sel.select(1.0):
            if events & selectors.EVENT_WRITE and out:
                sent = sock.send(out)
                del out[:sent]
            if events & selectors.EVENT_READ:
                chunk = sock.recv(1 << 18)
                if not chunk:
                    raise RuntimeError(f"grpc_calls: connection closed after {done} of {count} answers")
                inbuf.extend(chunk)
        now = time.perf_counter_ns()
        offset = 0
        while len(inbuf) - offset >= 9:
            length = int.from_bytes(inbuf[offset:offset + 3], "big")
            if len(inbuf) - offset < 9 + length:
                break
            kind, flags = inbuf[offset + 3], inbuf[offset + 4]
            stream = int.from_bytes(inbuf[offset + 5:offset + 9], "big") & 0x7FFFFFFF
            payload = bytes(inbuf[offset + 9:offset + 9 + length])
            offset += 9 + length
            if kind == SETTINGS and not flags & ACK:
                out.extend(_frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                out.extend(_frame(PING, ACK, 0, payload))
            elif kind == GOAWAY:
                raise RuntimeError(f"grpc_calls: GOAWAY after {done} of {count} answers: {payload!r}")
            elif kind == DATA and stream in payloads:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                payloads[stream].extend(payload)
            if stream in by_stream and (kind == RST_STREAM or (kind in (DATA, HEADERS) and flags & END_STREAM)):
                index = by_stream.pop(stream)
                latencies[index] = (now - started_at.pop(stream)) / 1000
                data = bytes(payloads.pop(stream))
                if kind == RST_STREAM or len(data) < 5:
                    failures += 1
                else:
                    answers[index] = data[5:5 + int.from_bytes(data[1:5], "big")]
                done += 1
                if next_index < count:
                    send_next()
        del inbuf[:offset]
    seconds = time.perf_counter() - begin
    sel.close()
    sock.close()
    return Outcome(seconds=seconds, latencies_us=latencies, answers=answers, failures=failures)


def http1_request(host, port, path, body, headers):
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _http1_answer(buffer):
    """(status, body, bytes used) of one complete HTTP/1.1 answer at the start of `buffer`, or None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    start = end + 4
    if "content-length" in fields:
        stop = start + int(fields["content-length"])
        return (status, bytes(buffer[start:stop]), stop) if len(buffer) >= stop else None
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body, position = bytearray(), start
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
            if size == 0:
                final = buffer.find(b"\r\n", line_end + 2)
                return (status, bytes(body), final + 2) if final >= 0 else None
            chunk_start = line_end + 2
            if len(buffer) < chunk_start + size + 2:
                return None
            body.extend(buffer[chunk_start:chunk_start + size])
            position = chunk_start + size + 2
    return status, b"", start


def http1_calls(host, port, requests, concurrency, timeout=300):
    """Sends each pre-built HTTP/1.1 request of `requests` (bytes) on `concurrency` connections."""
    count = len(requests)
    latencies, answers = [0] * count, [None] * count
    failures, done, next_index = 0, 0, 0
    sel = selectors.DefaultSelector()
    connections = []
    for _ in range(min(concurrency, count)):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        state = {"sock": sock, "out": bytearray(), "in": bytearray(), "index": None, "started": 0}
        connections.append(state)
        sel.register(sock, selectors.EVENT_READ, state)

    def send_next(state):
        nonlocal next_index
        state["index"] = next_index
        state["out"].extend(requests[next_index])
        state["started"] = time.perf_counter_ns()
        sent = state["sock"].send(state["out"])
        del state["out"][:sent]
        if state["out"]:
            sel.modify(state["sock"], selectors.EVENT_READ | selectors.EVENT_WRITE, state)
        next_index += 1

    begin = time.perf_counter()
    for state in connections:
        send_next(state)
    deadline = time.monotonic() + timeout
    while done < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"http1_calls: {done} of {count} answered after {timeout} s")
        for key, events in sel.select(1.0):
            state = key.data
            if events & selectors.EVENT_WRITE and state["out"]:
                sent = state["sock"].send(state["out"])
                del state["out"][:sent]
                if not state["out"]:
                    sel.modify(state["sock"], selectors.EVENT_READ, state)
            if events & selectors.EVENT_READ:
                chunk = state["sock"].recv(1 << 16)
                if not chunk:
                    raise RuntimeError(f"http1_calls: Vault closed a connection after {done} of {count} answers")
                state["in"].extend(chunk)
                parsed = _http1_answer(state["in"])
                if parsed is None:
                    continue
                now = time.perf_counter_ns()
                status, body, used = parsed
                del state["in"][:used]
                index = state["index"]
                latencies[index] = (now - state["started"]) / 1000
                if status == 200:
                    answers[index] = body
                else:
                    failures += 1
                done += 1
                if next_index < count:
                    send_next(state)
    seconds = time.perf_counter() - begin
    for state in connections:
        sel.unregister(state["sock"])
        state["sock"].close()
    sel.close()
    return Outcome(seconds=seconds, latencies_us=latencies, answers=answers, failures=failures)
