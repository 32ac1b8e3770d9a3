#!/usr/bin/env python3
"""Idle memory of both processes, and what holds it: starts the plugin from `--bin-dir` against an
OpenBao dev server (or the simulator), makes `--calls` rounds of Status, Encrypt and Decrypt through
grpcio, waits `--settle` seconds and prints, for the front and the broker, VmRSS and the
smaps_rollup figures (Pss, Anonymous, Private_Dirty), the thread count, and the resident kB of
every mapped file (text r-xp, read-only r--p, data rw-p) and anonymous region, largest first.

RSS counts every resident page mapped, shared library text included (and the kernel maps page-cache
pages around each fault), so it moves with what else runs on the machine; Pss divides shared pages
among their users and Anonymous/Private_Dirty are the process's own.

    python3 Tests/bench/footprint.py [--bin-dir .build/release] [--vault openbao|simulator]
"""
import argparse
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchenv  # noqa: E402
import calls  # noqa: E402
from kmstest import kmsclient  # noqa: E402 - benchenv puts Tests/e2e on the path


def mappings(pid):
    """{(file name or [anon]/[heap]/[stack], permissions): resident kB}."""
    resident, current = {}, None
    with open(f"/proc/{pid}/smaps") as handle:
        for line in handle:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                fields = line.split()
                current = (os.path.basename(fields[5]) if len(fields) > 5 else "[anon]", fields[1])
            elif line.startswith("Rss:"):
                resident[current] = resident.get(current, 0) + int(line.split()[1])
    return resident


def rollup(pid):
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+):\s+(\d+) kB", handle.read(), re.M)}


def report(name, pid, top):
    figures = rollup(pid)
    print(f"{name}: Rss {figures['Rss']} kB, Pss {figures['Pss']} kB, Anonymous {figures['Anonymous']} kB, "
          f"Private_Dirty {figures['Private_Dirty']} kB, threads {len(os.listdir(f'/proc/{pid}/task'))}")
    resident = mappings(pid)
    totals = {}
    for (file, _), kb in resident.items():
        totals[file] = totals.get(file, 0) + kb
    for file, kb in sorted(totals.items(), key=lambda item: -item[1])[:top]:
        parts = " ".join(f"{perms} {kb_}" for (name_, perms), kb_ in sorted(resident.items()) if name_ == file and kb_)
        print(f"  {kb:6d} kB  {file:34s} {parts}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=os.path.join(benchenv.ROOT, ".build", "release"))
    parser.add_argument("--vault", default="openbao", choices=["openbao", "simulator"])
    parser.add_argument("--calls", type=int, default=20, help="rounds of Status, Encrypt, Decrypt before measuring")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=25)
    options = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="vkk-footprint-")
    os.chmod(workdir, 0o755)
    vault = benchenv.OpenBaoVault(workdir) if options.vault == "openbao" else benchenv.SimulatorVault(workdir)
    plugin = benchenv.Plugin(vault, benchenv.install_binaries(options.bin_dir), workdir)
    try:
        calls.wait_healthy(plugin.socket)
        api, _ = kmsclient.stubs()
        client = kmsclient.client(plugin.socket)
        for _ in range(options.calls):
            client.Status(api.StatusRequest(), timeout=10)
            encrypted = client.Encrypt(api.EncryptRequest(plaintext=calls.SEED, uid="footprint"), timeout=10)
            client.Decrypt(api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                              uid="footprint"), timeout=10)
        time.sleep(options.settle)
        report("front", plugin.front_pid, options.top)
        report("broker", plugin.broker_pid, options.top)
    finally:
        plugin.stop()
        vault.stop()


if __name__ == "__main__":
    main()
