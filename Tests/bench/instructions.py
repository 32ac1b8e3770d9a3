#!/usr/bin/env python3
"""Instructions per call of the front and the broker, the repeatable CPU figure (callgrind counts
the instructions a process executes in user space, so the machine's load does not move it; what
the kernel does for the syscalls is not in it, the /proc CPU time has that).

Both processes run under callgrind in one start of the plugin (the broker as the wrapped command,
the front through a wrapper script named as its executable: the broker closes every inherited fd,
valgrind's included, before it execs the front). Callgrind dumps its counters (since the last dump)
whenever a process enters a function that answers a metrics request (`--dump-before`: the front's
handleMetrics and MetricsPage.render, the broker's metricsSnapshot, found by name in the binaries),
so a GET of the metrics page marks a point in both processes at once (vgdb's `callgrind_control --zero/--dump` hang on the
non-dumpable broker blocked in epoll_wait). For each method and concurrency: a warm-up of WARM
calls, a mark, N calls through h2load, a mark: the dump between the marks holds the N calls plus
one metrics request and what the processes do by themselves in that time. Two windows without calls
(one back to back, one of IDLE seconds) measure those two, and per call = (window - metrics request -
idle rate x window's seconds) / N.

The front runs with `--front-sandbox off` here: its seccomp filter allows the front's syscalls, not
valgrind's own, and the sandbox's cost is in the kernel, which callgrind does not count either.

    python3 Tests/bench/instructions.py [--bin-dir .build/release] [--calls 2000] [--vault openbao]
"""
import argparse
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchenv  # noqa: E402
import calls  # noqa: E402
import loadgen  # noqa: E402

WARM = 200


IDLE = 3.0
# What each process enters to answer a metrics request (parts of Swift's mangled names: the
# optimizer inlines and specializes, so every function carrying one of them is a dump point): the
# front's only for a GET of its page, the broker's also for the front's own periodic poll.
MARKERS = {"vault-kube-kms-front": ("13handleMetrics", "11MetricsPageO6render"),
           "vault-kube-kms": ("15metricsSnapshot", "13answerMetrics")}


def markers(binary):
    """The mangled names of the marker functions of `binary` (text symbols of its symbol table)."""
    parts = MARKERS[os.path.basename(binary)]
    found = []
    for line in subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tT" and any(part in fields[2] for part in parts):
            found.append(fields[2])
    if not found:
        raise RuntimeError(f"{binary}: no function named with any of {parts}: the markers need updating")
    return found


class Counted:
    """The plugin with both processes under callgrind, dumping at each metrics request."""

    def __init__(self, vault, bin_dir, workdir):
        self.out = os.path.join(workdir, "callgrind")
        os.makedirs(self.out, exist_ok=True)
        os.chmod(self.out, 0o1777)  # the front writes its own dumps as the unprivileged user
        for name in benchenv.BINARIES:  # valgrind 3.19 cannot read Swift's DWARF; symbols are enough
            subprocess.run(["strip", "--strip-debug", os.path.join(bin_dir, name)], check=True)

        def valgrind(name):
            return ["valgrind", "--tool=callgrind", "--trace-children=no", "--vgdb=no",
                    *(f"--dump-before={symbol}" for symbol in markers(os.path.join(bin_dir, name))),
                    f"--callgrind-out-file={self.out}/callgrind.out.%p"]

        script = os.path.join(bin_dir, "front-under-callgrind")
        with open(script, "w") as handle:
            handle.write("#!/bin/sh\nexec " + " ".join(shlex.quote(arg) for arg in valgrind("vault-kube-kms-front"))
                         + f" {bin_dir}/vault-kube-kms-front \"$@\"\n")
        os.chmod(script, 0o755)
        self.plugin = benchenv.Plugin(vault, bin_dir, workdir, wrapper=valgrind("vault-kube-kms"), ready_timeout=180,
                                      extra_args=("--front-executable", script, "--front-sandbox", "off"))
        calls.wait_healthy(self.plugin.socket, timeout=180)
        self.pids = {"front": self.plugin.front_pid, "broker": self.plugin.broker_pid}
        self.seen = {name: set() for name in self.pids}
        self.mark(first=True)

    def _new_dumps(self, name):
        """Totals (Ir) of the dumps of one process not read before, in dump order."""
        pid = self.pids[name]
        totals = []
        paths = sorted(glob.glob(os.path.join(self.out, f"callgrind.out.{pid}.*")),
                       key=lambda path: int(path.rsplit(".", 1)[1]))
        for path in paths:
            if path in self.seen[name]:
                continue
            with open(path) as handle:
                lines = [line for line in handle if line.startswith(("totals:", "summary:"))]
            if not lines:
                break  # still being written
            self.seen[name].add(path)
            totals.append(int(lines[-1].split()[1]))
        return totals

    def mark(self, first=False):
        """GET the metrics page: dumps in each process. {name: instructions since the last mark}:
        the dumps since the last mark are summed (several marker functions may run per request, and
        the broker dumps at the front's own metrics poll too; a poll landing between the answer and
        the read moves a few milliseconds of idle work into the next window). `first`: the dumps of
        the start are read and dropped."""
        self.plugin.metrics()
        result = {}
        for name in self.pids:
            deadline = time.time() + 60
            totals = self._new_dumps(name)
            while not totals and time.time() < deadline:
                time.sleep(0.1)
                totals = self._new_dumps(name)
            if not totals:
                raise RuntimeError(f"{name}: no callgrind dump for a metrics request: the markers need updating")
            result[name] = sum(totals)
        return result

    def stop(self):
        self.plugin.stop()


def measure(vault, bin_dir, workdir, methods, levels, count):
    counted = Counted(vault, bin_dir, workdir)
    figures = {"calls": count, "warm_up": WARM, "cells": []}
    try:
        targets = calls.prepare(counted.plugin, vault, workdir)
        counted.mark()
        request = counted.mark()  # back to back: one metrics request
        time.sleep(IDLE)
        idle = counted.mark()
        rate = {name: max(0.0, (idle[name] - request[name]) / IDLE) for name in request}
        figures["metrics_request"], figures["idle_per_second"] = request, rate
        for method in methods:
            for level in levels:
                target = targets[method]["plugin"]
                loadgen.run(target, WARM, level, True)
                counted.mark()
                started = time.perf_counter()
                loadgen.run(target, count, level, True)
                seconds = time.perf_counter() - started
                window = counted.mark()
                figures["cells"].append({
                    "method": method, "concurrency": level, "seconds": seconds, "instructions": window,
                    "per_call": {name: (window[name] - request[name] - rate[name] * seconds) / count
                                 for name in window}})
    finally:
        counted.stop()
    return figures


def render(figures):
    request, idle = figures["metrics_request"], figures["idle_per_second"]
    out = [f"Instructions per call (callgrind, {figures['calls']} calls after {figures['warm_up']} warm-up; "
           f"subtracted: one metrics request, front {request['front']} / broker {request['broker']}, and the idle "
           f"rate, front {idle['front']:.0f} / broker {idle['broker']:.0f} per second)", "",
           "| call | conc | front | broker | front+broker |", "|---|---|---|---|---|"]
    for cell in figures["cells"]:
        per = cell["per_call"]
        out.append(f"| {cell['method']} | {cell['concurrency']} | {per['front']:.0f} | {per['broker']:.0f} | "
                   f"{per['front'] + per['broker']:.0f} |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=os.path.join(benchenv.ROOT, ".build", "release"))
    parser.add_argument("--vault", default="openbao", choices=sorted(benchenv.VAULTS))
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--json")
    options = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="vkk-instructions-")
    os.chmod(workdir, 0o755)
    bin_dir = benchenv.install_binaries(options.bin_dir)
    vault = benchenv.start_vault(options.vault, workdir)
    try:
        figures = measure(vault, bin_dir, workdir, ("Encrypt", "Decrypt"),
                          [int(level) for level in options.concurrency.split(",")], options.calls)
    finally:
        vault.stop()
        shutil.rmtree(bin_dir, ignore_errors=True)
    print(render(figures))
    if options.json:
        with open(options.json, "w") as handle:
            json.dump(figures, handle, indent=1)


if __name__ == "__main__":
    main()
