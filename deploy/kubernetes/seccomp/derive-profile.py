#!/usr/bin/env python3
"""Derives the seccomp profile of vault-kube-kms from a real run.

Runs the end-to-end flow under `strace -f -qq -e trace=all` (the broker, and the front it spawns
as another user): the Vault simulator with the least-privilege set-up, the plugin started, Status,
Encrypt and Decrypt rounds over the KMS socket
(Vault named `localhost`, so that name resolution is traced too), a call with an unknown key_id,
/livez, /readyz, /healthz and /metrics on the loopback ports, then SIGTERM (drain, token revoke).
Every system call seen, plus the few listed in EXTRA with their reason, becomes the allow list of
an OCI/Kubernetes seccomp profile whose default action is an error (EPERM).

    python3 deploy/kubernetes/seccomp/derive-profile.py            # rewrite vault-kube-kms.json
    python3 deploy/kubernetes/seccomp/derive-profile.py --print    # print the observed syscalls

Needs strace, the built binaries (.build/debug or KMS_BIN_DIR) and the Python test packages.
"""
import argparse
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "e2e"))

PROFILE = os.path.join(HERE, "vault-kube-kms.json")
COUNTS = os.path.join(HERE, "syscall-counts.txt")

# Needed but not (reliably) seen in one traced run, each with its reason.
EXTRA = {
    "execve": "the container runtime loads the filter before exec'ing the entry point",
    "exit": "thread exit in libraries",
    "exit_group": "process exit",
    "rt_sigreturn": "return from any signal handler",
    "restart_syscall": "the kernel restarts interrupted sleeps",
    "futex": "libc and the Swift runtime's locks under contention",
    "accept4": "split topology: the broker accepts the front's connection",
    "getdents64": "process_open_fds on /metrics: both processes count /proc/self/fd (docs/metrics.md)",
    "connect": "split topology: the front connects to the broker socket; the broker to Vault",
    "getsockopt": "SO_PEERCRED check and socket-activation type checks",
    "clock_nanosleep": "backoff sleeps",
    "nanosleep": "backoff sleeps",
    "sched_yield": "libc spin loops",
    "sendmsg": "sd_notify and journald datagrams (only under systemd)",
    "chown": "--socket-group: the socket's group is set by its owner",
    "fchown": "--socket-group on an open socket",
    "fchmod": "--socket-mode on an open socket",
    "madvise": "the allocator returning memory",
    "mremap": "the allocator growing large buffers",
    "clone3": "libcurl's threaded resolver (Vault named by DNS)",
    "sendmmsg": "glibc's DNS resolver (A and AAAA queries at once)",
    "uname": "libc and OpenSSL start-up on some hosts",
    "waitid": "waiting for the spawned front",
    "landlock_create_ruleset": "the front's own sandbox (seen only where the trace runs it; docs/architecture.md)",
    "landlock_add_rule": "the front's own sandbox",
    "landlock_restrict_self": "the front's own sandbox",
    "seccomp": "the front loads its own seccomp filter",
}

LINE = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)")


def syscalls(trace_path):
    counts = collections.Counter()
    with open(trace_path, errors="replace") as handle:
        for line in handle:
            found = LINE.match(line)
            if found and "resumed>" not in line:
                counts[found.group(1)] += 1
    return counts


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def traced_run(workdir):
    """The e2e flow under strace; returns the Counter of syscalls."""
    import grpc

    from kmstest import kmsclient
    from kmstest import plugin
    from kmstest import vaultenv

    server = vaultenv.SimulatorProcess()
    try:
        os.makedirs(os.path.join(workdir, "vault"))
        vault = vaultenv.VaultSetup(server.address, server.root_token, os.path.join(workdir, "vault"))
        os.makedirs(os.path.join(workdir, "run"), mode=0o755)
        os.chmod(workdir, 0o755)
        socket = os.path.join(workdir, "run", "kms.sock")
        trace = os.path.join(workdir, "trace.txt")
        binary = os.path.join(plugin.installed_bin_dir(), "vault-kube-kms")
        health, metrics = free_port(), free_port()
        args = ["strace", "-f", "-qq", "-e", "trace=all", "-o", trace, binary,
                "--listen-address", f"unix://{socket}", "--vault-address", vault.address.replace("127.0.0.1", "localhost"),
                "--vault-key-path", vault.key_path, "--auth-mount", vault.auth_mount,
                "--approle-role-id", vault.role_id, "--approle-secret-id-path", vault.secret_id_path,
                "--health-port", str(health), "--metrics-port", str(metrics)]
        log = open(os.path.join(workdir, "plugin.log"), "wb")
        tracer = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        api, _ = kmsclient.stubs()
        deadline = time.time() + 60
        while True:
            if tracer.poll() is not None or time.time() > deadline:
                raise RuntimeError("plugin did not start under strace:\n" + open(log.name).read())
            try:
                if os.path.exists(socket) and kmsclient.client(socket).Status(
                        api.StatusRequest(), timeout=2).healthz == "ok":
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        client = kmsclient.client(socket)
        for round_ in range(20):
            client.Status(api.StatusRequest(), timeout=5)
            encrypted = client.Encrypt(api.EncryptRequest(plaintext=os.urandom(32), uid=f"seccomp-{round_}"), timeout=5)
            client.Decrypt(api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                              uid=f"seccomp-{round_}"), timeout=5)
        try:
            client.Decrypt(api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id="unknown", uid="x"), timeout=5)
        except grpc.RpcError:
            pass
        for port, path in ((health, "/livez"), (health, "/readyz"), (health, "/healthz"), (metrics, "/metrics")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                answer.read()
        with open(f"/proc/{tracer.pid}/task/{tracer.pid}/children") as handle:
            broker = int(handle.read().split()[0])
        os.kill(broker, signal.SIGTERM)
        tracer.wait(30)
        log.close()
        return syscalls(trace)
    finally:
        server.stop()


def profile(names):
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the observed syscalls, write nothing")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vkk-seccomp-") as workdir:
        counts = traced_run(workdir)
    if options.print:
        print("\n".join(sorted(counts)))
        return
    with open(PROFILE, "w") as handle:
        json.dump(profile(set(counts) | set(EXTRA)), handle, indent=2)
        handle.write("\n")
    with open(COUNTS, "w") as handle:
        handle.write("# system calls of one traced e2e run (deploy/kubernetes/seccomp/derive-profile.py)\n")
        for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            handle.write(f"{count:8d} {name}\n")
        for name, reason in sorted(EXTRA.items()):
            if name not in counts:
                handle.write(f"{'extra':>8} {name}: {reason}\n")
    print(f"wrote {PROFILE}: {len(set(counts) | set(EXTRA))} syscalls ({len(counts)} observed)")


if __name__ == "__main__":
    main()
