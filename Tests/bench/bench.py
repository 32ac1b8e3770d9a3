#!/usr/bin/env python3
"""The benchmark: the plugin (KMS client -> front -> broker -> Vault) against the same Transit calls
made directly to the same Vault, in one run, with the same load client (h2load). The Vault is a
real OpenBao dev server by default, and the simulator is measured the same way as a second column
(`--vaults`). Then the instructions per call under callgrind (instructions.py) and the decrypt
storm (storm.py), both against the first Vault. Prints a report and writes the figures as JSON.
`make bench` runs it on release builds. Every figure is a ratio or a difference from one run."""
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
import instructions  # noqa: E402
import loadgen  # noqa: E402
import procstat  # noqa: E402
import report  # noqa: E402
import storm  # noqa: E402

# Vault calls on a timer, not caused by a KMS call (the token's lifecycle): reported, not charged.
TIMER_OPERATIONS = ("login", "renew")


def measure(target, requests, concurrency, single_connection, pids, vault, plugin):
    """One round: a warm-up, then `requests` calls measured (latencies, CPU, and the Vault calls as
    the broker counted them by operation and as the server counted its Transit calls)."""
    warm = max(concurrency * 4, requests // 10)
    loadgen.run(target, warm, concurrency, single_connection)
    broker_before, server_before = plugin.vault_calls(), vault.transit_calls()
    meter = procstat.CPUMeter(pids).start()
    result = loadgen.run(target, requests, concurrency, single_connection)
    used = meter.stop()
    broker_after, server_after = plugin.vault_calls(), vault.transit_calls()
    broker = {op: broker_after[op] - broker_before.get(op, 0) for op in broker_after
              if broker_after[op] - broker_before.get(op, 0)}
    return result, used, broker, server_after - server_before


def pooled(rounds):
    """One cell from several rounds: latencies pooled, throughput the median round's, CPU and
    Vault calls summed over all rounds."""
    latencies = [value for result, *_ in rounds for value in result.latencies_us]
    total = sum(result.succeeded for result, *_ in rounds)
    merged = loadgen.Run(requests=total, succeeded=total, seconds=0, latencies_us=latencies)
    cpu, broker = {}, {}
    for _, used, made, _ in rounds:
        for name, seconds in used.items():
            cpu[name] = cpu.get(name, 0) + seconds
        for operation, count in made.items():
            broker[operation] = broker.get(operation, 0) + count
    server = sum(counted for *_, counted in rounds)
    charged = sum(count for operation, count in broker.items() if operation not in TIMER_OPERATIONS)
    return {
        "requests": total, "rounds": len(rounds),
        "throughput": sorted(result.throughput for result, *_ in rounds)[len(rounds) // 2],
        "p50_us": merged.percentile(0.50), "p90_us": merged.percentile(0.90),
        "p99_us": merged.percentile(0.99), "max_us": max(latencies),
        "cpu_us_per_call": {name: 1e6 * used / total for name, used in cpu.items()},
        "broker_vault_calls": broker, "server_transit_calls": server,
        "vault_calls_per_call": charged / total, "server_calls_per_call": server / total,
    }


def check_calls(cell):
    """The exact Vault call counts, asserted: a Status makes none, an Encrypt (Decrypt) through the
    plugin exactly one Transit encrypt (decrypt), by the broker's count and by the server's; a direct
    call passes no broker and is one Transit call at the server."""
    n, broker = cell["requests"], {op: c for op, c in cell["broker_vault_calls"].items() if op not in TIMER_OPERATIONS}
    if cell["side"] == "direct":
        expected, server = {}, n
    elif cell["method"] == "Status":
        expected, server = {}, 0
    else:
        expected, server = {cell["method"].lower(): n}, n
    if broker != expected or cell["server_transit_calls"] != server:
        raise SystemExit(f"Vault call count wrong: {cell['method']} c={cell['concurrency']} {cell['side']}, "
                         f"{n} calls: broker counted {cell['broker_vault_calls']} (expected {expected}), "
                         f"the server {cell['server_transit_calls']} Transit calls (expected {server})")


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


def soak(targets, total, pids):
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


def cells(vault, plugin, workdir, options, levels):
    """Every (method, concurrency, side) cell against one Vault, plugin and direct alternating."""
    pids = {"front": plugin.front_pid, "broker": plugin.broker_pid, "vault": vault.pid}
    targets = calls.prepare(plugin, vault, workdir)
    measured = []
    for method in ("Status", "Encrypt", "Decrypt"):
        count = options.status_requests if method == "Status" else options.requests
        for level in levels:
            sides = [side for side in ("plugin", "direct") if targets[method][side] is not None]
            rounds = {side: [] for side in sides}
            for _ in range(options.rounds):  # alternate, so that machine noise hits both sides
                for side in sides:
                    rounds[side].append(measure(targets[method][side], max(level, count // options.rounds),
                                                level, side == "plugin", pids, vault, plugin))
            for side in sides:
                cell = pooled(rounds[side])
                cell.update(method=method, concurrency=level, side=side, vault=vault.kind)
                check_calls(cell)
                measured.append(cell)
                print(report.cell_line(cell), file=sys.stderr, flush=True)
    return measured, targets


FAILED_STAGES = []


def stage(figures, name, run):
    """figures[name] = run(); a failure (a wrong Vault call count in the storm, callgrind markers
    not found) is recorded and the run goes on, so that the other figures are kept; bench.py then
    exits non-zero."""
    try:
        figures[name] = run()
    except Exception as error:  # noqa: BLE001 - reported, and the exit status says so
        print(f"!! {name} failed: {error}", file=sys.stderr, flush=True)
        figures[f"{name}_error"] = str(error)
        FAILED_STAGES.append(f"{figures['vault']} {name}: {error}")


def against(kind, bin_dir, workdir, options, levels, first):
    """All figures against one Vault: cells, memory idle and after load, and for the first Vault
    also the start times, the soak, the instructions per call and the storm."""
    print(f"== against {kind}", file=sys.stderr, flush=True)
    vault = benchenv.start_vault(kind, workdir)
    plugin = None
    figures = {"vault": kind, "loadavg_before": open("/proc/loadavg").read().split()[:3]}
    try:
        if first and options.ready_runs:
            figures["ready_seconds"] = ready_times(vault, bin_dir, workdir, options.ready_runs)
        plugin = benchenv.Plugin(vault, bin_dir, workdir)
        calls.wait_healthy(plugin.socket)
        processes = {"front": plugin.front_pid, "broker": plugin.broker_pid}
        time.sleep(1)
        figures["idle"] = procstat.snapshot(processes)
        figures["cells"], targets = cells(vault, plugin, workdir, options, levels)
        figures["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        figures["loaded"] = procstat.snapshot(processes)
        if first and options.soak:
            print(f"== soak of {options.soak} calls", file=sys.stderr, flush=True)
            figures["soak"] = soak(targets, options.soak, processes)
        if first and options.storm:
            print(f"== decrypt storm of {options.storm}", file=sys.stderr, flush=True)
            stage(figures, "storm", lambda: storm.run(plugin, vault, options.storm, 64))
        plugin.stop()
        plugin = None
        if first and options.instruction_calls:
            print(f"== instructions per call (callgrind, {options.instruction_calls} calls)", file=sys.stderr,
                  flush=True)
            stage(figures, "instructions", lambda: instructions.measure(
                vault, benchenv.install_binaries(options.bin_dir), workdir, ("Encrypt", "Decrypt"), (1, 64),
                options.instruction_calls))
    finally:
        if plugin:
            plugin.stop()
        vault.stop()
    return figures


def run_smoke(build_dir, kind):
    import smoke

    workdir = tempfile.mkdtemp(prefix="vkk-smoke-")
    os.chmod(workdir, 0o755)
    vault = benchenv.start_vault(kind, workdir)
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
    parser.add_argument("--vaults", default="openbao,simulator",
                        help="the Vaults to measure against, the first one in full (soak, storm, callgrind)")
    parser.add_argument("--requests", type=int, default=3000, help="measured Encrypt/Decrypt calls per cell")
    parser.add_argument("--status-requests", type=int, default=20000, help="measured Status calls per cell")
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--rounds", type=int, default=3, help="alternating plugin/direct rounds per cell")
    parser.add_argument("--soak", type=int, default=200000, help="calls in the soak (0: none)")
    parser.add_argument("--storm", type=int, default=5000, help="distinct ciphertexts in the decrypt storm (0: none)")
    parser.add_argument("--instruction-calls", type=int, default=2000,
                        help="calls per cell under callgrind (0: no instruction count)")
    parser.add_argument("--ready-runs", type=int, default=5)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--smoke", action="store_true",
                        help="only the short CI version (no h2load); prints the figures baseline.json records")
    options = parser.parse_args()
    kinds = [kind.strip() for kind in options.vaults.split(",") if kind.strip()]
    if options.smoke:
        return run_smoke(options.bin_dir, kinds[0])
    if not shutil.which("h2load"):
        raise SystemExit("h2load is missing: apt-get install nghttp2-client (scripts/install-deps.sh --bench)")
    levels = [int(level) for level in options.concurrency.split(",")]

    workdir = tempfile.mkdtemp(prefix="vkk-bench-")
    os.chmod(workdir, 0o755)
    bin_dir = benchenv.install_binaries(options.bin_dir)
    figures = {"machine": machine(), "vaults": []}
    try:
        figures["sizes"] = binary_sizes(options.bin_dir, workdir)
        for index, kind in enumerate(kinds):
            figures["vaults"].append(against(kind, bin_dir, workdir, options, levels, index == 0))
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)
    figures["machine"]["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    if options.json:
        with open(options.json, "w") as handle:
            json.dump(figures, handle, indent=1)
    print(report.render(figures))
    if FAILED_STAGES:
        raise SystemExit("failed: " + "; ".join(FAILED_STAGES))


if __name__ == "__main__":
    main()
