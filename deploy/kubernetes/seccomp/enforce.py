#!/usr/bin/python3
"""Runs a command under a seccomp profile's allow list, the way a container runtime applies it:
the filter is loaded (libseccomp, Debian package python3-seccomp) and then the command is
exec'd; every system call not allowed fails with the profile's errno.

    /usr/bin/python3 enforce.py vault-kube-kms.json [--drop SYSCALL]... -- COMMAND [ARGS]...

`--drop` removes a syscall from the allow list (to show that the filter is enforced). Names that
are no system call on this architecture are skipped. Used by Tests/e2e/deploy/test_deploy_seccomp.py
(the shipped profile) and Tests/e2e/deploy/test_deploy_syscallfilter.py (the units' SystemCallFilter=).
"""
import errno
import json
import os
import sys

import seccomp


def main(argv):
    profile_path, rest = argv[1], argv[2:]
    drop = set()
    while rest and rest[0] == "--drop":
        drop.add(rest[1])
        rest = rest[2:]
    if not rest or rest[0] != "--" or len(rest) < 2:
        sys.exit(__doc__)
    with open(profile_path) as handle:
        profile = json.load(handle)
    if profile["defaultAction"] != "SCMP_ACT_ERRNO":
        sys.exit("only SCMP_ACT_ERRNO default actions are supported")
    rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(profile.get("defaultErrnoRet", errno.EPERM)))
    for rule in profile["syscalls"]:
        if rule["action"] != "SCMP_ACT_ALLOW":
            sys.exit(f"unsupported action {rule['action']}")
        for name in rule["names"]:
            if name in drop:
                continue
            try:
                rules.add_rule(seccomp.ALLOW, name)
            except (RuntimeError, ValueError):
                pass  # not a system call on this architecture: skipped, as runc does
    rules.load()
    os.execv(rest[1], rest[1:])


if __name__ == "__main__":
    main(sys.argv)
