"""Loopback TCP proxies in front of a Vault, for the fault suites.

`ListeningProxy` is the listener they share (a port that stays the same across close/open, one
thread per accepted connection). `TCPProxy` forwards bytes: `close()` shuts the listener and every
open connection (a Vault that went away) and `open()` listens again on the same port;
`partition()` black-holes the traffic, standing in for a network partition between the plugin
and one Vault node: connections are still accepted (the kernel completes the handshake, as a node
behind a dropping firewall can look from a half-open connection) but no byte goes through in
either direction, on new and on existing connections, so every call hangs until its own timeout.
`heal()` forwards again (connections opened during the partition stay dead; new ones work).
faultproxy.FaultProxy is the HTTP-aware one."""
import socket
import threading


class ListeningProxy:
    """A loopback listener in front of `target_address` (http://host:port); `_serve(client)` handles
    each accepted connection on a thread of its own."""

    def __init__(self, target_address, backlog=128):
        host, port = target_address.split("//")[1].split(":")
        self.target = (host, int(port))
        self.backlog = backlog
        self.port = None
        self.listener = None
        self.open()

    @property
    def address(self):
        return f"http://127.0.0.1:{self.port}"

    def open(self):
        """Listens; after close_listener(), again on the same port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(self.backlog)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close_listener(self):
        listener, self.listener = self.listener, None
        if listener:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
            except OSError:
                pass
            listener.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        raise NotImplementedError


class TCPProxy(ListeningProxy):
    def __init__(self, target_address):
        self.connections = []
        self.lock = threading.Lock()
        self.partitioned = threading.Event()
        super().__init__(target_address)

    def partition(self):
        self.partitioned.set()

    def heal(self):
        self.partitioned.clear()

    def close(self):
        self.partitioned.clear()
        self.close_listener()
        with self.lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.connections.clear()

    def _serve(self, client):
        with self.lock:
            self.connections.append(client)
        if self.partitioned.is_set():
            return  # held open, never answered: the call hangs
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self.lock:
            self.connections.append(upstream)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    def _pipe(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self.partitioned.is_set():
                    continue  # swallowed
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
