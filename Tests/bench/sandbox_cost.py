#!/usr/bin/env python3
"""What the front's sandbox costs (docs/benchmarks.md, "The front's sandbox"): the same release
build started with the sandbox on (default, best-effort) and off (`--front-sandbox off`),
alternating, ROUNDS times each:

- start: exec of the broker to READY=1, and `apply_us` of the front's `sandbox.applied` line (the
  time FrontSandbox.apply itself takes: Landlock ruleset, the BPF program, the filter load);
- per call: the front's CPU time (utime + stime from /proc) over CALLS sequential Encrypt calls,
  divided by CALLS.

    python3 Tests/bench/sandbox_cost.py [--bin-dir .build/release] [--rounds 3] [--calls 3000]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchenv  # noqa: E402
import procstat  # noqa: E402
from kmstest import kmsclient  # noqa: E402  (Tests/e2e, on the path through benchenv)


def one_run(vault, bin_dir, workdir, sandbox, calls):
    extra = [] if sandbox else ["--front-sandbox", "off"]
    plugin = benchenv.Plugin(vault, bin_dir, workdir, extra_args=extra + ["--health-port", "0", "--metrics-port", "0"])
    try:
        api, _ = kmsclient.stubs()
        client = kmsclient.client(plugin.socket)
        deadline = time.time() + 30
        while client.Status(api.StatusRequest(), timeout=5).healthz != "ok" and time.time() < deadline:
            time.sleep(0.05)
        for _ in range(50):  # warm-up: connection, key cache
            client.Encrypt(api.EncryptRequest(plaintext=os.urandom(32), uid="warm"), timeout=5)
        before = procstat.cpu_seconds(plugin.front_pid)
        started = time.perf_counter()
        for _ in range(calls):
            client.Encrypt(api.EncryptRequest(plaintext=os.urandom(32), uid="bench"), timeout=5)
        wall = time.perf_counter() - started
        cpu = procstat.cpu_seconds(plugin.front_pid) - before
        with open(plugin.log_path, errors="replace") as handle:
            applied = [json.loads(line) for line in handle if '"sandbox.applied"' in line]
        with open(f"/proc/{plugin.front_pid}/status") as handle:
            seccomp = next(line.split()[1] for line in handle if line.startswith("Seccomp:"))
        return {
            "ready_ms": plugin.ready_seconds * 1000, "front_cpu_us_per_call": cpu / calls * 1e6,
            "wall_us_per_call": wall / calls * 1e6, "seccomp": seccomp,
            "apply_us": int(applied[0]["apply_us"]) if applied else None,
            "landlock_abi": applied[0]["landlock_abi"] if applied else "0",
            "allowed_syscalls": applied[0]["allowed_syscalls"] if applied else "0",
        }
    finally:
        plugin.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=os.path.join(benchenv.ROOT, ".build", "release"))
    parser.add_argument("--vault", default="openbao", choices=sorted(benchenv.VAULTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="vkk-sandbox-bench-")
    os.chmod(workdir, 0o755)
    bin_dir = benchenv.install_binaries(args.bin_dir)
    os.makedirs(os.path.join(workdir, "vault"))
    vault = benchenv.start_vault(args.vault, os.path.join(workdir, "vault"))
    results = {True: [], False: []}
    try:
        for _ in range(args.rounds):
            for sandbox in (True, False):
                results[sandbox].append(one_run(vault, bin_dir, workdir, sandbox, args.calls))
    finally:
        vault.stop()
    for sandbox in (True, False):
        runs = results[sandbox]
        summary = {key: statistics.median(r[key] for r in runs)
                   for key in ("ready_ms", "front_cpu_us_per_call", "wall_us_per_call")}
        summary["apply_us"] = [r["apply_us"] for r in runs]
        summary["seccomp_mode"] = runs[0]["seccomp"]
        summary["landlock_abi"] = runs[0]["landlock_abi"]
        summary["allowed_syscalls"] = runs[0]["allowed_syscalls"]
        print(("sandbox on " if sandbox else "sandbox off"), json.dumps(summary, default=str))
        print("   per run:", json.dumps([{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()}
                                         for r in runs]))


if __name__ == "__main__":
    main()
