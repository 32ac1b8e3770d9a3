"""The HTTP layer: HTTP/1.1 with keep-alive on a threading server, optional TLS, the /_sim/
control endpoints, fault injection and statistics, the unauthenticated sys endpoints, and the
hand-off of everything else under /v1/ to the logical core (holding the state lock)."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from . import health
from .core import Answer, Core, parse_body
from .errors import VaultError
from .faults import FaultConfigError, Faults, Stats, fault_body
from .state import State

# Vault's default max_request_size (32 MiB): larger bodies are refused.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
# How long a TLS handshake may take before the connection is dropped.
HANDSHAKE_TIMEOUT_S = 10


class App:
    """Everything a request handler needs, shared by all connections."""

    def __init__(self, state: State, verbose: bool = False):
        self.state = state
        self.core = Core(state)
        self.faults = Faults()
        self.stats = Stats()
        self.verbose = verbose


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App,
                 tls_context: Optional[ssl.SSLContext] = None):
        self.app = app
        self.tls_context = tls_context
        super().__init__(address, Handler)
        if tls_context is not None:
            tls_context.sni_callback = _remember_sni
            self.socket = tls_context.wrap_socket(self.socket, server_side=True,
                                                  do_handshake_on_connect=False)

    def handle_error(self, request, client_address) -> None:
        # Client resets and failed TLS handshakes are normal in fault tests; stay quiet.
        exc = sys.exc_info()[1]
        if self.app.verbose and not isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


def _remember_sni(sock, server_name, context) -> None:
    sock._vaultsim_sni = server_name or ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vaultsim"
    sys_version = ""
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server: SimServer

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(HANDSHAKE_TIMEOUT_S)
            self.connection.do_handshake()
            self.connection.settimeout(None)
            self.server.app.stats.count_sni(getattr(self.connection, "_vaultsim_sni", ""))

    def log_message(self, format: str, *args) -> None:
        if self.server.app.verbose:
            sys.stderr.write("vaultsim: %s - %s\n" % (self.address_string(), format % args))

    # Every method goes through one dispatcher; LIST is Vault's own verb.
    def do_GET(self) -> None: self._dispatch()
    def do_HEAD(self) -> None: self._dispatch()
    def do_POST(self) -> None: self._dispatch()
    def do_PUT(self) -> None: self._dispatch()
    def do_DELETE(self) -> None: self._dispatch()
    def do_PATCH(self) -> None: self._dispatch()
    def do_LIST(self) -> None: self._dispatch()
    def do_OPTIONS(self) -> None: self._dispatch()

    # -- plumbing -----------------------------------------------------------------------------

    def _read_body(self) -> Optional[bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, answer: Answer) -> None:
        payload = b""
        if answer.body is not None and answer.status != 204:
            payload = json.dumps(answer.body, separators=(",", ":")).encode("utf-8")
        self.send_response(answer.status)
        if answer.status != 204:
            self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.status != 204:  # RFC 9110: no Content-Length on 204; every other answer has one
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def _drop(self) -> None:
        """Close the connection without answering (RST, so the client sees it at once)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    # -- dispatch -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        app = self.server.app
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(Answer(413, {"errors": ["http: request body too large"]}))
            return
        path = urllib.parse.unquote(url.path)
        if path.startswith("/_sim/"):
            self._send(self._sim(path[len("/_sim/"):].strip("/"), body))
            return
        if not path.startswith("/v1/"):
            self._send(Answer(404, {"errors": []}))
            return
        vault_path = path[len("/v1/"):]
        headers = {k.lower(): v for k, v in self.headers.items()}
        ns_header = headers.get("x-vault-namespace", "").strip("/")
        full_path = (ns_header + "/" if ns_header and app.state.edition.namespaces else "") + vault_path

        app.stats.count(full_path)
        decision = app.faults.decide(full_path)
        if decision.latency_s:
            time.sleep(decision.latency_s)
        if decision.drop:
            self._drop()
            return
        if decision.redirect:
            # Vault's standby answer when request forwarding is off: 307 to the active node.
            location = f"{decision.redirect}/v1/{vault_path}" + (f"?{url.query}" if url.query else "")
            self._send(Answer(307, None, {"Location": location}))
            return
        if decision.status:
            extra = {"Retry-After": "1"} if decision.status == 429 else {}
            self._send(Answer(decision.status, fault_body(decision.status, full_path), extra))
            return

        with app.state.lock:
            answer = self._unauthenticated_sys(vault_path, query, body)
            if answer is None:
                answer = app.core.handle(self.command, vault_path, query, headers, body,
                                         (self.client_address[0], self.client_address[1]))
        self._send(answer)

    def _unauthenticated_sys(self, vault_path: str, query: dict, body: bytes) -> Optional[Answer]:
        state = self.server.app.state
        method = self.command
        path = vault_path.rstrip("/")
        if path == "sys/health" and method in ("GET", "HEAD"):
            status, payload = health.health(state, query)
            return Answer(status, payload)
        if path == "sys/seal-status" and method == "GET":
            return Answer(200, state.seal_status())
        if path == "sys/init" and method == "GET":
            return Answer(200, {"initialized": True})
        if path == "sys/unseal" and method in ("PUT", "POST"):
            try:
                data = parse_body(body)
            except VaultError as err:
                return Answer(err.status, {"errors": err.errors})
            status, payload = health.unseal(state, data)
            return Answer(status, payload)
        if path == "sys/leader" and method == "GET":
            if state.sealed:
                return Answer(503, {"errors": ["Vault is sealed"]})
            return Answer(200, health.leader(state))
        return None

    # -- /_sim/ -------------------------------------------------------------------------------

    def _sim(self, path: str, body: bytes) -> Answer:
        app = self.server.app
        method = self.command
        try:
            doc = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            return Answer(400, {"errors": [f"invalid JSON: {exc}"]})
        if path == "faults" and method in ("POST", "PUT"):
            try:
                app.faults.configure(doc)
            except FaultConfigError as exc:
                return Answer(400, {"errors": [str(exc)]})
            return Answer(204)
        if path == "faults" and method == "GET":
            return Answer(200, {"faults": app.faults.describe()})
        if path == "stats" and method == "GET":
            return Answer(200, app.stats.snapshot())
        if path == "stats/reset" and method in ("POST", "PUT"):
            app.stats.reset()
            return Answer(204)
        if path == "clock" and method == "GET":
            with app.state.lock:
                return Answer(200, {"now": app.state.now(), "offset": app.state.clock_offset})
        if path == "clock" and method in ("POST", "PUT"):
            advance = doc.get("advance", 0) if isinstance(doc, dict) else None
            if not isinstance(advance, (int, float)) or isinstance(advance, bool) or advance < 0:
                return Answer(400, {"errors": ["advance must be a non-negative number of seconds"]})
            with app.state.lock:
                app.state.clock_offset += float(advance)
                return Answer(200, {"now": app.state.now(), "offset": app.state.clock_offset})
        if path == "tokens" and method == "GET":
            # Test-only: lets a privilege-separation test look for live token values in memory.
            with app.state.lock:
                tokens = [{"id": t.id, "accessor": t.accessor, "path": t.path}
                          for t in app.state.tokens.by_id.values()]
            return Answer(200, {"tokens": tokens})
        return Answer(404, {"errors": [f"unknown simulator endpoint {method} /_sim/{path}"]})
