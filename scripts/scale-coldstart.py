#!/usr/bin/env python3
"""The cold start of a control plane, measured (docs/scaling.md): a three-node OpenBao raft cluster
on free loopback ports, SEEDS distinct DEK seeds encrypted through one plugin, then PLUGINS fresh
plugins (one per control-plane node) each decrypting every seed at 8 in parallel, as a starting
kube-apiserver does. Prints the Vault calls, the seconds, the Decrypt p50/p99 and the Vault calls
of 60 Status polls.

    swift build && python3 scripts/scale-coldstart.py [--plugins 5] [--seeds 5000]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "e2e"))

from kmstest import baocluster  # noqa: E402
from kmstest import coldstart  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5000)
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="vkk-scale-")
    os.chmod(directory, 0o755)
    cluster = baocluster.Cluster(os.path.join(directory, "cluster")).start()
    try:
        cluster.role_id, cluster.secret_id_path = cluster.configure(os.path.join(directory, "credentials"))
        work = os.path.join(directory, "plugins")
        os.makedirs(work, mode=0o755)
        print(json.dumps(coldstart.measure(cluster, options.plugins, options.seeds, work), indent=2))
    finally:
        cluster.shutdown()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
