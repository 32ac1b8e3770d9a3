#!/usr/bin/env python3
"""Failover under load, measured: starts a three-node OpenBao raft cluster on free loopback ports,
configures it with deploy/vault/setup.sh, and runs every fault of Tests/e2e/kmstest/hafailover.py with the
plugin given three addresses and one, at concurrency 8. Prints the table of docs/operations.md.

    swift build && python3 scripts/ha-failover.py [--cases kill,stop,restart,partition] [--hold 12]
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "e2e"))

from kmstest import baocluster  # noqa: E402
from kmstest import hafailover  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(hafailover.CASES))
    parser.add_argument("--hold", type=float, default=12.0, help="seconds each fault lasts before it is healed")
    parser.add_argument("--modes", default="list,single", help="list (three addresses), single (one), or both")
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="vkk-ha-")
    os.chmod(directory, 0o755)
    cluster = baocluster.Cluster(os.path.join(directory, "cluster")).start()
    try:
        cluster.role_id, cluster.secret_id_path = cluster.configure(os.path.join(directory, "credentials"))
        print(hafailover.TABLE_HEAD, flush=True)
        for case in options.cases.split(","):
            for mode in options.modes.split(","):
                workdir = tempfile.mkdtemp(prefix=f"{case}-{mode}-", dir=directory)
                os.chmod(workdir, 0o755)
                summary = hafailover.run(cluster, case, mode == "list", workdir, hold=options.hold)
                print(hafailover.table_row(case, mode == "list", summary), flush=True)
    finally:
        cluster.shutdown()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
