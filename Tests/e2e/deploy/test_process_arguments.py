"""Both binaries see their real argv where /proc is not mounted. Swift's CommandLine reads
/proc/self/cmdline on Linux; without /proc it is empty, and `vault-kube-kms --help` used to run
the server with no flags (`--vault-key-path is required`). KMSRuntime.ProcessArguments hands the
parser the argv captured before main (CLinux/kms_args.c). Here /proc is hidden under an empty
tmpfs in a private mount namespace; Tests/e2e/deploy/test_systemd_nspawn_split.py repeats the check in a
chroot into the Debian root the systemd lane boots."""
import os
import shutil
import subprocess

import pytest

from kmstest import plugin

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="needs root and unshare(1) (util-linux) to hide /proc in a private mount namespace")


def without_proc(*command):
    """Runs command with an empty tmpfs over /proc, after checking that /proc/self/cmdline is
    really gone in that namespace (else the test would prove nothing)."""
    script = 'mount -t tmpfs none /proc && ! test -e /proc/self/cmdline || exit 99; exec "$@"'
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 99, f"could not hide /proc: {result.stderr}"
    return result


@pytest.mark.parametrize("name", ["vault-kube-kms", "vault-kube-kms-front"])
def test_help_without_proc_prints_the_usage_instead_of_running_with_no_flags(name):
    result = without_proc(os.path.join(plugin.build_dir(), name), "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"USAGE: {name}" in result.stdout
    assert "is required" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["vault-kube-kms", "vault-kube-kms-front"])
def test_an_unknown_flag_without_proc_is_refused_by_name(name):
    result = without_proc(os.path.join(plugin.build_dir(), name), "--no-such-flag-42")
    assert result.returncode != 0
    assert "--no-such-flag-42" in result.stderr


def test_flag_values_without_proc_reach_the_broker_subcommand():
    # The value of --vault-address is parsed (and refused for its scheme), so it was seen.
    result = without_proc(os.path.join(plugin.build_dir(), "vault-kube-kms"), "preflight",
                          "--vault-address", "ftp://flag-was-seen.example", "--vault-key-path", "transit/keys/k",
                          "--approle-role-id", "r", "--approle-secret-id-path", "/nonexistent/secret-id")
    assert result.returncode != 0
    assert "ftp://flag-was-seen.example" in result.stdout + result.stderr
