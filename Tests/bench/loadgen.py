"""h2load as the load client for both sides: gRPC over HTTP/2 on the KMS Unix socket (h2load's
`-B unix:PATH`) and Transit over HTTP/1.1 keep-alive on the simulator's TCP port (`--h1`). The same
C client on both sides, so its own cost cancels out of the overhead. Latencies come from h2load's
per-request log (`--log-file`: microseconds from request start to end of response)."""
import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


@dataclass
class Target:
    """One way of making a call: URL, optional Unix socket, body file, headers, protocol."""

    url: str
    body: str
    headers: tuple = ()
    unix_socket: str = None
    http1: bool = False


@dataclass
class Run:
    """The outcome of one h2load run."""

    requests: int
    succeeded: int
    seconds: float
    latencies_us: list = field(default_factory=list)

    @property
    def throughput(self):
        return self.succeeded / self.seconds if self.seconds else 0.0

    def percentile(self, fraction):
        ordered = sorted(self.latencies_us)
        if not ordered:
            return 0.0
        index = max(0, math.ceil(fraction * len(ordered)) - 1)  # nearest rank
        return ordered[index]


def grpc_body(message_bytes, directory, name):
    """Writes the gRPC length-prefixed message (uncompressed flag, 4-byte big-endian length)."""
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(b"\x00" + len(message_bytes).to_bytes(4, "big") + message_bytes)
    return path


def plain_body(data, directory, name):
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def run(target, requests, concurrency, single_connection):
    """Runs `requests` calls with `concurrency` in flight: on one HTTP/2 connection with that many
    streams (`single_connection`, like kube-apiserver), or on that many connections with one
    request each (HTTP/1.1 keep-alive, one connection per worker)."""
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log", delete=False) as log:
        log_path = log.name
    clients, streams = (1, concurrency) if single_connection else (concurrency, 1)
    args = ["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams), "-t", "1",
            "-d", target.body, f"--log-file={log_path}"]
    for header in target.headers:
        args += ["-H", header]
    if target.unix_socket:
        args += ["-B", f"unix:{target.unix_socket}"]
    if target.http1:
        args.append("--h1")
    args.append(target.url)
    completed = subprocess.run(args, capture_output=True, text=True, timeout=900)
    output = completed.stdout
    if completed.returncode != 0:
        raise RuntimeError(f"h2load failed ({completed.returncode}):\n{output}\n{completed.stderr}")
    finished = re.search(r"finished in ([0-9.]+)(ms|s)", output)
    done = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", output)
    if not finished or not done:
        raise RuntimeError("cannot parse h2load output:\n" + output)
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    latencies = []
    with open(log_path) as handle:
        for line in handle:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                latencies.append(int(parts[2]))
    os.unlink(log_path)
    result = Run(requests=int(done.group(1)), succeeded=int(done.group(2)), seconds=seconds, latencies_us=latencies)
    codes = re.search(r"status codes: (\d+) 2xx", output)
    if result.succeeded != requests or not codes or int(codes.group(1)) != requests:
        raise RuntimeError(f"not every request succeeded:\n{output}")
    return result
