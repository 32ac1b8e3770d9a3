#!/usr/bin/env python3
"""Instruction profile of the plugin under load: runs both processes under valgrind's callgrind
(which counts instructions, so the figures are stable on a noisy machine), sends `--requests`
calls of one method through h2load, stops the plugin and leaves callgrind.out.<pid> files (broker
and front) in `--out`. The copies are stripped of debug info (valgrind 3.19 cannot read Swift's
DWARF); the symbol table stays, so the profile names functions. Read them with `callgrind_annotate --inclusive=yes FILE | head -60`."""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchenv  # noqa: E402
import calls  # noqa: E402
import loadgen  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", default=os.path.join(benchenv.ROOT, ".build", "release"))
    parser.add_argument("--vault", default="openbao", choices=sorted(benchenv.VAULTS))
    parser.add_argument("--method", default="Encrypt", choices=["Status", "Encrypt", "Decrypt"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="vkk-callgrind-"))
    parser.add_argument("--process", default="broker", choices=["broker", "front"],
                        help="which process runs under callgrind (the other runs natively)")
    options = parser.parse_args()
    os.makedirs(options.out, exist_ok=True)
    os.chmod(options.out, 0o1777)  # the front writes its own file as the unprivileged user
    workdir = tempfile.mkdtemp(prefix="vkk-profile-")
    os.chmod(workdir, 0o755)
    vault = benchenv.start_vault(options.vault, workdir)
    wrapper = ["valgrind", "--tool=callgrind", "--trace-children=no",
               f"--callgrind-out-file={options.out}/callgrind.out.%p"]
    bin_dir = benchenv.install_binaries(options.bin_dir)
    for name in benchenv.BINARIES:  # valgrind 3.19 cannot read Swift's DWARF; symbols are enough
        subprocess.run(["strip", "--strip-debug", os.path.join(bin_dir, name)], check=True)
    extra = ()
    if options.process == "front":
        # The broker closes every inherited fd before exec, valgrind's own included: start valgrind
        # after that, from a wrapper named as the front executable.
        script = os.path.join(bin_dir, "front-under-callgrind")
        with open(script, "w") as handle:
            handle.write(f"#!/bin/sh\nexec {' '.join(wrapper)} {bin_dir}/vault-kube-kms-front \"$@\"\n")
        os.chmod(script, 0o755)
        wrapper, extra = [], ("--front-executable", script)
    plugin = benchenv.Plugin(vault, bin_dir, workdir, wrapper=wrapper, extra_args=extra, ready_timeout=120)
    try:
        calls.wait_healthy(plugin.socket, timeout=120)
        targets = calls.prepare(plugin, vault, workdir)
        loadgen.run(targets[options.method]["plugin"], options.requests, 1, True)
    finally:
        plugin.stop()
        vault.stop()
    print(f"broker pid {plugin.broker_pid}, front pid {plugin.front_pid}; profiles in {options.out}")


if __name__ == "__main__":
    main()
