#!/usr/bin/env python3
"""New TCP connections the broker opens to Vault per 1000 Encrypts at concurrency 8 and 64, after
a warm-up (counted with `strace -e connect` attached to the running broker). With a working
connection cache the answer is 0: every call reuses a kept-alive connection."""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchenv  # noqa: E402
import calls  # noqa: E402
import loadgen  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", default=os.path.join(benchenv.ROOT, ".build", "release"))
    parser.add_argument("--vault", default="openbao", choices=sorted(benchenv.VAULTS))
    options = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="vkk-connections-")
    os.chmod(workdir, 0o755)
    vault = benchenv.start_vault(options.vault, workdir)
    plugin = benchenv.Plugin(vault, benchenv.install_binaries(options.bin_dir), workdir)
    try:
        calls.wait_healthy(plugin.socket)
        target = calls.prepare(plugin, vault, workdir)["Encrypt"]["plugin"]
        for level in (8, 64):
            loadgen.run(target, 500, level, True)
            trace = os.path.join(workdir, f"connect-{level}.txt")
            tracer = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=connect", "-p", str(plugin.broker_pid),
                                       "-o", trace], stderr=subprocess.DEVNULL)
            time.sleep(1)
            loadgen.run(target, 1000, level, True)
            time.sleep(0.3)
            tracer.terminate()
            tracer.wait()
            found = re.search(r"\s(\d+)\s+(?:\d+\s+)?connect", open(trace).read())
            print(f"concurrency {level}: {int(found.group(1)) if found else 0} new Vault connections per 1000 Encrypts")
    finally:
        plugin.stop()
        vault.stop()


if __name__ == "__main__":
    main()
