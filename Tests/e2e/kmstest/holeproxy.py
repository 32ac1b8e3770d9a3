"""A TCP proxy that can black-hole its traffic, standing in for a network partition between the
plugin and one Vault node: while `partition()` is on, connections are still accepted (the kernel
completes the handshake, as a node behind a dropping firewall can look from a half-open
connection) but no byte goes through in either direction, on new and on existing connections,
so every call hangs until its own timeout. `heal()` forwards again (connections opened during
the partition stay dead; new ones work)."""
import socket
import threading


class BlackholeProxy:
    def __init__(self, target_address):
        host, port = target_address.split("//")[1].split(":")
        self.target = (host, int(port))
        self.partitioned = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self):
        return f"http://127.0.0.1:{self.port}"

    def partition(self):
        self.partitioned.set()

    def heal(self):
        self.partitioned.clear()

    def close(self):
        self.closed = True
        self.partitioned.clear()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass
            self.sockets.clear()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
            if self.partitioned.is_set():
                continue  # held open, never answered: the call hangs
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

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
