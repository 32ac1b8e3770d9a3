"""Helpers of the fault-injection suites: a TCP proxy in front of Vault that can close its listener
(Vault unreachable) and reopen on the same port, the simulator's fault rules, and a ledger of
every ciphertext produced so that a test can prove nothing was lost."""
import os
import socket
import threading
import time
import types

import grpc

from .kmsclient import api

DEADLINE = 3.0  # kube-apiserver's default KMS timeout


class TCPProxy:
    """Forwards 127.0.0.1:<port> to the simulator. `close()` shuts the listener and every open
    connection (like a Vault that went away); `open()` listens again on the same port."""

    def __init__(self, target_address):
        host, port = target_address.split("//")[1].split(":")
        self.target = (host, int(port))
        self.port = None
        self.listener = None
        self.connections = []
        self.lock = threading.Lock()
        self.open()

    @property
    def address(self):
        return f"http://127.0.0.1:{self.port}"

    def open(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self):
        listener, self.listener = self.listener, None
        if listener:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
            listener.close()
        with self.lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.connections.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def via(vault, address):
    """The same Vault set-up seen at another address (the proxy)."""
    view = types.SimpleNamespace(**{k: getattr(vault, k) for k in (
        "key_path", "auth_mount", "role_id", "secret_id_path", "secret_id", "mount", "key", "root")})
    view.address = address
    return view


class Ledger:
    """Every (plaintext, ciphertext, key_id) the plugin returned; `verify` decrypts them all."""

    def __init__(self):
        self.entries = []
        self.lock = threading.Lock()

    def encrypt(self, client, timeout=DEADLINE):
        plaintext = os.urandom(32)
        answer = client.Encrypt(api().EncryptRequest(plaintext=plaintext, uid="ledger"), timeout=timeout)
        with self.lock:
            self.entries.append((plaintext, bytes(answer.ciphertext), answer.key_id))
        return answer

    def verify(self, client):
        for plaintext, ciphertext, key_id in list(self.entries):
            back = client.Decrypt(api().DecryptRequest(ciphertext=ciphertext, key_id=key_id, uid="v"), timeout=10)
            assert back.plaintext == plaintext
        return len(self.entries)


def timed_failure(call):
    """Runs `call`, which must fail; returns (grpc status code, seconds)."""
    started = time.monotonic()
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), time.monotonic() - started
    raise AssertionError("the call succeeded during the fault")


def wait_until_encrypt_works(client, ledger, timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            return ledger.encrypt(client)
        except grpc.RpcError as error:
            last = error.code()
            time.sleep(0.2)
    raise AssertionError(f"Encrypt still failing after {timeout}s: {last}")
