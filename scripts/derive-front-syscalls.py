#!/usr/bin/env python3
"""Derives the front's in-process seccomp allow list (Sources/CSandbox/front_syscalls.inc) from
traces of the front-facing e2e suites, the way deploy/kubernetes/seccomp/derive-profile.py derives
the container profile.

Every front those suites start (spawn, split, socket-activated, under the systemd notify and
journald harnesses) is run under `strace -f` with `--sandbox off`, so that a syscall missing
from the current list cannot cut a flow short. Only the syscalls made after the point where the
sandbox is applied count: the marker is the front's `sandbox.disabled` log line, which it writes
exactly there. The union, plus EXTRA (needed on paths no test reaches, each with its reason),
becomes the list; the per-syscall counts go to Sources/CSandbox/front-syscall-counts.txt.

    python3 scripts/derive-front-syscalls.py            # trace, rewrite the list and the counts
    python3 scripts/derive-front-syscalls.py --print    # trace and print only
    python3 scripts/derive-front-syscalls.py --traces DIR   # reuse the traces of an earlier run

Needs root (the suites do), strace, the debug build (.build/debug) and the Python test packages.
Takes a few minutes; not part of CI (Tests/e2e/privsep/test_front_sandbox.py checks the result instead).
"""
import argparse
import collections
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INC = os.path.join(ROOT, "Sources", "CSandbox", "front_syscalls.inc")
COUNTS = os.path.join(ROOT, "Sources", "CSandbox", "front-syscall-counts.txt")

SUITES = ["test_plugin_e2e.py", "test_front_grpc.py", "test_front_robustness.py", "test_metrics_health.py",
          "test_split_topology.py", "test_systemd_notify.py", "test_systemd_journald.py"]

# Needed after the sandbox point but not (reliably) seen in the traced flows, each with its reason.
EXTRA = {
    "exit": "thread exit in libraries",
    "exit_group": "process exit",
    "rt_sigreturn": "return from any signal handler",
    "restart_syscall": "the kernel restarts interrupted sleeps",
    "futex": "libc and the Swift runtime's locks under contention",
    "tgkill": "abort() and fatalError() raise SIGABRT on the front itself (Landlock scopes signals to it)",
    "rt_sigprocmask": "abort() blocks signals before raising",
    "getpid": "abort(), sd_notify's credentials",
    "gettid": "abort()",
    "mmap": "the allocator",
    "munmap": "the allocator",
    "mremap": "the allocator growing large buffers",
    "madvise": "the allocator returning memory",
    "mprotect": "the allocator's guard pages",
    "brk": "the allocator",
    "getrandom": "the Swift runtime's hashing seed and random numbers",
    "clock_gettime": "vDSO fallback (log timestamps, timers)",
    "clock_nanosleep": "vDSO-less sleeps in libraries",
    "accept4": "accepting gRPC and health connections",
    "accept": "accepting gRPC and health connections (older libc)",
    "connect": "split topology: reconnecting to the broker's pathname socket; sd_notify",
    "socket": "split reconnect and sd_notify/journald datagrams (AF_UNIX only: the filter refuses other families)",
    "sendmsg": "sd_notify and journald datagrams (only under systemd)",
    "memfd_create": "journald: a message too large for one datagram travels in a sealed memfd",
    "fcntl": "journald memfd seals; descriptor flags",
    "shutdown": "closing a gRPC connection after GOAWAY",
    "unlink": "the KMS socket the front bound itself, removed at exit (Landlock allows only its directory)",
    "getsockopt": "SO_ERROR after a non-blocking connect",
    "setsockopt": "journald's SO_SNDBUF",
    "epoll_ctl": "the event loop",
    "epoll_wait": "the event loop",
    "epoll_pwait": "the event loop (aarch64 has no epoll_wait)",
    "write": "sockets, logs",
    "writev": "logs (stdio), nghttp2 output",
    "readv": "libc stdio",
    "close": "connections",
    "pread64": "/proc/self/stat through the descriptor kept open for process_* metrics",
    "lseek": "rewinding /proc/self/fd for process_open_fds",
    "getdents64": "counting /proc/self/fd for process_open_fds",
    "sched_yield": "libc spin loops",
    "newfstatat": "libc stdio",
    "fstat": "libc stdio (older libc)",
    "timerfd_settime": "event-loop timers",
    "sigaltstack": "the Swift runtime's crash handler",
    "openat": "a lazy open in a library after the sandbox point (glibc's /etc/localtime on the first time stamp, "
              "if tzset() before it were ever missed) fails with EACCES from Landlock instead of killing the front",
    "read": "sockets, timerfd, signalfd",
}

MARKER = "sandbox.disabled"
LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)")


def traced_bin_dir(trace_dir):
    """A KMS_BIN_DIR whose front runs under strace with --sandbox off."""
    build = os.path.join(ROOT, ".build", "debug")
    target = tempfile.mkdtemp(prefix="vkk-derive-bin-")
    os.chmod(target, 0o755)
    real = os.path.join(target, "vault-kube-kms-front.real")
    shutil.copy2(os.path.join(build, "vault-kube-kms-front"), real)
    shutil.copy2(os.path.join(build, "vault-kube-kms"), os.path.join(target, "vault-kube-kms"))
    with open(os.path.join(target, "vault-kube-kms-front"), "w") as handle:
        handle.write("#!/bin/sh\n"
                     f"exec strace -f -qq -s 256 -e trace=all -o {shlex.quote(trace_dir)}/front.$$ "
                     f"{shlex.quote(real)} \"$@\" --sandbox off\n")
    for name in os.listdir(target):
        os.chmod(os.path.join(target, name), 0o755)
    return target


def after_marker(path):
    """Syscalls each traced process made after its sandbox point (the marker line)."""
    counts = collections.Counter()
    started = set()
    with open(path, errors="replace") as handle:
        for line in handle:
            found = LINE.match(line)
            if not found:
                continue
            pid, name = found.groups()
            if pid in started and "resumed>" not in line:
                counts[name] += 1
            elif MARKER in line and name in ("write", "writev", "sendmsg"):
                started.add(pid)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true", help="print the list instead of rewriting the files")
    parser.add_argument("--traces", help="a trace directory of an earlier run (no tests are run)")
    parser.add_argument("suites", nargs="*", default=SUITES)
    args = parser.parse_args()
    trace_dir = args.traces
    if not trace_dir:
        trace_dir = tempfile.mkdtemp(prefix="vkk-derive-trace-")
        os.chmod(trace_dir, 0o777)
        env = dict(os.environ, KMS_BIN_DIR=traced_bin_dir(trace_dir))
        files = [os.path.join(ROOT, "Tests", "e2e", name) for name in args.suites]
        # Failures are expected where a test inspects the front's pid (it is strace's child here).
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files], env=env, cwd=ROOT)
    counts = collections.Counter()
    traces = glob.glob(os.path.join(trace_dir, "front.*"))
    for path in traces:
        counts.update(after_marker(path))
    if not counts:
        sys.exit(f"no syscalls after the sandbox point in {len(traces)} traces under {trace_dir}")
    names = sorted(set(counts) | set(EXTRA))
    if args.print:
        for name in names:
            print(f"{counts.get(name, 0):8d} {name}" + (f"  (extra: {EXTRA[name]})" if name in EXTRA else ""))
        return
    with open(INC, "w") as handle:
        handle.write("/* The syscalls the sandboxed front may make (Sources/CSandbox/kms_seccomp.c). Written by\n"
                     "   scripts/derive-front-syscalls.py from traces of the front-facing e2e suites plus its\n"
                     "   EXTRA list; edit the script, not this file. Names this architecture lacks drop out. */\n")
        for name in names:
            handle.write(f"#ifdef SYS_{name}\nKMS_SYSCALL({name})\n#endif\n")
    with open(COUNTS, "w") as handle:
        handle.write(f"# syscalls of the front after its sandbox point, {len(traces)} traced fronts "
                     "(scripts/derive-front-syscalls.py)\n")
        for name, count in counts.most_common():
            handle.write(f"{count:8d} {name}\n")
        for name in sorted(set(EXTRA) - set(counts)):
            handle.write(f"   extra {name}: {EXTRA[name]}\n")
    print(f"{len(names)} syscalls ({len(counts)} traced, {len(set(EXTRA) - set(counts))} extra) -> {INC}")


if __name__ == "__main__":
    main()
