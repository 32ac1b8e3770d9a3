#!/usr/bin/env python3
"""The benchmark: the plugin (KMS client -> front -> broker -> Vault simulator) against the same
Transit calls made directly to the simulator, in one run, with the same load client (h2load).
Prints a report and writes the figures as JSON. `make bench` runs it on release builds."""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchenv  # noqa: E402
import calls  # noqa: E402
import loadgen  # noqa: E402
import procstat  # noqa: E402
import report  # noqa: E402


def vault_calls(before, after):
    """{path: count} of the simulator requests between two /_sim/stats snapshots."""
    delta = {}
    for path, count in after.items():
        if isinstance(count, int) and count - before.get(path, 0):
            delta[path] = count - before.get(path, 0)
    return delta


def measure(target, requests, concurrency, single_connection, pids, vault):
    """One round: a warm-up, then `requests` calls measured (latencies, CPU, Vault calls)."""
    warm = max(concurrency * 4, requests // 10)
    loadgen.run(target, warm, concurrency, single_connection)
    stats_before = vault.stats()
    meter = procstat.CPUMeter(pids).start()
    result = loadgen.run(target, requests, concurrency, single_connection)
    return result, meter.stop(), vault_calls(stats_before, vault.stats())


def pooled(rounds):
    """One cell from several rounds: latencies pooled, throughput the median round's, CPU and
    Vault calls summed over all rounds."""
    latencies = [value for result, _, _ in rounds for value in result.latencies_us]
    total = sum(result.succeeded for result, _, _ in rounds)
    merged = loadgen.Run(requests=total, succeeded=total, seconds=0, latencies_us=latencies)
    cpu, calls_made = {}, {}
    for _, used, made in rounds:
        for name, seconds in used.items():
            cpu[name] = cpu.get(name, 0) + seconds
        for path, count in made.items():
            calls_made[path] = calls_made.get(path, 0) + count
    return {
        "requests": total, "rounds": len(rounds),
        "throughput": sorted(result.throughput for result, _, _ in rounds)[len(rounds) // 2],
        "p50_us": merged.percentile(0.50), "p90_us": merged.percentile(0.90),
        "p99_us": merged.percentile(0.99), "max_us": max(latencies),
        "cpu_us_per_call": {name: 1e6 * used / total for name, used in cpu.items()},
        "vault_calls": calls_made, "vault_calls_per_call": sum(calls_made.values()) / total,
    }


def ready_times(vault, bin_dir, workdir, runs):
    """Seconds from exec of the broker to READY=1 on NOTIFY_SOCKET, `runs` fresh starts."""
    times = []
    for _ in range(runs):
        plugin = benchenv.Plugin(vault, bin_dir, workdir)
        times.append(plugin.ready_seconds)
        plugin.stop()
    return times


def binary_sizes(bin_dir, workdir):
    sizes = {}
    for name in benchenv.BINARIES:
        path = os.path.join(bin_dir, name)
        stripped = os.path.join(workdir, name + ".stripped")
        subprocess.run(["strip", "-o", stripped, path], check=True)
        sizes[name] = {"unstripped": os.path.getsize(path), "stripped": os.path.getsize(stripped)}
    return sizes


def soak(targets, total, pids, vault):
    """`total` calls (half Status, a quarter each Encrypt and Decrypt) at concurrency 8, RSS after
    each third: growth shows as a rising series, not as the first step (allocator warm-up)."""
    series = [procstat.snapshot(pids)]
    shares = (("Status", total // 2), ("Encrypt", total // 4), ("Decrypt", total - total // 2 - total // 4))
    for _ in range(3):
        for method, count in shares:
            loadgen.run(targets[method]["plugin"], max(8, count // 3), 8, True)
        series.append(procstat.snapshot(pids))
    return {"calls": total, "series": series}


def machine():
    model = ""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", benchenv.ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "commit": commit,
            "loadavg": open("/proc/loadavg").read().split()[:3],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "h2load": subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()}


def run_smoke(build_dir):
    import smoke

    workdir = tempfile.mkdtemp(prefix="vkk-smoke-")
    os.chmod(workdir, 0o755)
    vault = benchenv.Vault(workdir)
    plugin = benchenv.Plugin(vault, benchenv.install_binaries(build_dir), workdir)
    try:
        calls.wait_healthy(plugin.socket)
        print(json.dumps(smoke.run(plugin, vault), indent=1))
    finally:
        plugin.stop()
        vault.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", default=os.path.join(benchenv.ROOT, ".build", "release"))
    parser.add_argument("--requests", type=int, default=3000, help="measured Encrypt/Decrypt calls per cell")
    parser.add_argument("--status-requests", type=int, default=20000, help="measured Status calls per cell")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--rounds", type=int, default=3, help="alternating plugin/direct rounds per cell")
    parser.add_argument("--soak", type=int, default=100000, help="calls in the soak (0: none)")
    parser.add_argument("--ready-runs", type=int, default=5)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--smoke", action="store_true",
                        help="only the short CI version (no h2load); prints the figures baseline.json records")
    options = parser.parse_args()
    if options.smoke:
        return run_smoke(options.bin_dir)
    if not shutil.which("h2load"):
        raise SystemExit("h2load is missing: apt-get install nghttp2-client (scripts/install-deps.sh --bench)")
    levels = [int(level) for level in options.concurrency.split(",")]

    workdir = tempfile.mkdtemp(prefix="vkk-bench-")
    os.chmod(workdir, 0o755)
    bin_dir = benchenv.install_binaries(options.bin_dir)
    vault = benchenv.Vault(workdir)
    plugin = None
    figures = {"machine": machine(), "cells": []}
    try:
        figures["sizes"] = binary_sizes(options.bin_dir, workdir)
        figures["ready_seconds"] = ready_times(vault, bin_dir, workdir, options.ready_runs)
        plugin = benchenv.Plugin(vault, bin_dir, workdir)
        calls.wait_healthy(plugin.socket)
        pids = {"front": plugin.front_pid, "broker": plugin.broker_pid, "vault-sim": vault.pid}
        figures["idle"] = procstat.snapshot({"front": plugin.front_pid, "broker": plugin.broker_pid})
        targets = calls.prepare(plugin, vault, workdir)
        for method in ("Status", "Encrypt", "Decrypt"):
            count = options.status_requests if method == "Status" else options.requests
            for level in levels:
                sides = [side for side in ("plugin", "direct") if targets[method][side] is not None]
                rounds = {side: [] for side in sides}
                for _ in range(options.rounds):  # alternate, so that machine noise hits both sides
                    for side in sides:
                        rounds[side].append(measure(targets[method][side], max(level, count // options.rounds),
                                                    level, side == "plugin", pids, vault))
                for side in sides:
                    cell = pooled(rounds[side])
                    cell.update(method=method, concurrency=level, side=side)
                    figures["cells"].append(cell)
                    print(report.cell_line(cell), file=sys.stderr, flush=True)
        figures["machine"]["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        figures["loaded"] = procstat.snapshot({"front": plugin.front_pid, "broker": plugin.broker_pid})
        if options.soak:
            figures["soak"] = soak(targets, options.soak, {"front": plugin.front_pid, "broker": plugin.broker_pid},
                                   vault)
    finally:
        if plugin:
            plugin.stop()
        vault.stop()
        shutil.rmtree(bin_dir, ignore_errors=True)
    print(report.render(figures))
    if options.json:
        with open(options.json, "w") as handle:
            json.dump(figures, handle, indent=1)


if __name__ == "__main__":
    main()
