"""Free loopback TCP ports, for every listener a suite starts (never a fixed port: other suites and
a developer's `make run` share the machine)."""
import socket


def free_port(pair=False):
    """A free loopback port (and, with pair, one whose successor is free too: a dev server also
    binds its cluster listener on port + 1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if not pair:
                return port
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free loopback port pair")


def free_ports(count):
    """`count` distinct loopback ports the kernel just handed out (bound together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
