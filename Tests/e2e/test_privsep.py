"""Privilege separation checked on the running processes (spawn topology): the front's credentials,
its memory, and what a process with the front's uid can do to the broker. Needs root (the front is
spawned as another user and the memory scans read /proc/PID/mem)."""
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import urllib.request

import pytest

import kmsclient
from plugin import Plugin, proc_status

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to spawn the front as another user")

PTRACE_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
result = {}
if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
    result["attach"] = "ok"
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
else:
    result["attach"] = os.strerror(ctypes.get_errno())
for name in ("mem", "environ", "maps"):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as handle:
            handle.read(1)
        result[name] = "ok"
    except OSError as error:
        result[name] = error.strerror
print(repr(result))
"""


def api():
    return kmsclient.stubs()[0]


def front_credentials(pid):
    status = proc_status(pid)
    uid = int(status["Uid"].split()[0])
    gid = int(status["Gid"].split()[0])
    groups = [int(g) for g in status["Groups"].split()]
    return uid, gid, groups


def memory_contains(pid, needles):
    """Which of `needles` occur in the readable mappings of `pid` (read as root)."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except OSError:
                continue
            for needle in needles:
                if needle in chunk:
                    found.add(needle)
    return found


def live_tokens(vault):
    with urllib.request.urlopen(f"{vault.address}/_sim/tokens", timeout=5) as answer:
        return [t["id"] for t in json.load(answer)["tokens"] if t["path"].startswith(f"auth/{vault.auth_mount}/")]


def run_as_front(pid, code, *args):
    uid, gid, groups = front_credentials(pid)
    return subprocess.run(
        ["/usr/bin/python3", "-c", code, *args], user=uid, group=gid, extra_groups=groups, capture_output=True,
        text=True, timeout=20)


def test_front_uid_gid_and_groups_are_disjoint_from_the_broker(plugin):
    front = proc_status(plugin.front_pid())
    broker = proc_status(plugin.proc.pid)
    assert set(front["Uid"].split()).isdisjoint(broker["Uid"].split())
    assert set(front["Gid"].split()).isdisjoint(broker["Gid"].split())
    assert set(front["Groups"].split()).isdisjoint(broker["Gid"].split() + broker["Groups"].split())


def test_front_capability_sets_are_empty_and_no_new_privs_is_set(plugin):
    front = proc_status(plugin.front_pid())
    for field in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        assert int(front[field], 16) == 0, field
    assert front["NoNewPrivs"] == "1"


def test_front_credentials_cannot_open_or_list_the_secret_id(plugin, vault):
    probe = run_as_front(
        plugin.front_pid(),
        "import sys\nfor p in sys.argv[1:]:\n    try:\n        open(p).read() if p.endswith('id') else __import__('os').listdir(p)\n"
        "        print('opened', p)\n    except OSError as e:\n        print('refused', p, e.strerror)",
        vault.secret_id_path, os.path.dirname(vault.secret_id_path))
    assert "opened" not in probe.stdout, probe.stdout
    assert probe.stdout.count("refused") == 2, probe.stdout + probe.stderr


def test_front_memory_holds_neither_the_secret_id_nor_the_token(plugin, vault):
    if os.environ.get("VAULT_ADDR"):
        pytest.skip("the token values come from the simulator's /_sim/tokens")
    client = plugin.client()
    for _ in range(20):
        encrypted = client.Encrypt(api().EncryptRequest(plaintext=os.urandom(32), uid="mem"), timeout=3)
        client.Decrypt(api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id), timeout=3)
    tokens = [t.encode() for t in live_tokens(vault)]
    assert tokens, "the broker holds no token?"
    secret = vault.secret_id.encode()
    # Positive control: the same scan finds the token in the broker, which must hold it.
    assert memory_contains(plugin.proc.pid, tokens), "scan did not find the token in the broker"
    assert memory_contains(plugin.front_pid(), tokens + [secret]) == set()


def test_broker_is_not_dumpable_even_when_it_shares_its_uid(vault):
    """The broker run as an unprivileged uid with --insecure-same-user (front and broker share the
    uid): its /proc files are owned by root, the kernel's mark of a non-dumpable process, and a
    process of the same uid can neither read its memory nor attach to it. A dumpable process of the
    same uid is the control."""
    uid = 64000
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="vkk-dumpable-"))  # /tmp/pytest-of-root is 0700
    os.chmod(tmp_path, 0o755)
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir(mode=0o700)
    secret_file = secret_dir / "secret-id"
    secret_file.write_text(vault.new_secret_id() + "\n")
    os.chmod(secret_file, 0o400)
    for path in (secret_file, secret_dir):
        os.chown(path, uid, uid)
    work = tmp_path / "work"
    (work / "run").mkdir(parents=True)
    for path in (work, work / "run"):
        os.chown(path, uid, uid)
    original = vault.secret_id_path
    vault.secret_id_path = str(secret_file)
    try:
        running = _plugin_with_prefix(
            vault, str(work), ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"],
            ["--insecure-same-user", "--front-user", str(uid)])
    finally:
        vault.secret_id_path = original
    control = subprocess.Popen(["sleep", "30"], user=uid, group=uid)
    try:
        broker = running.proc.pid
        assert int(proc_status(broker)["Uid"].split()[0]) == uid
        assert os.stat(f"/proc/{broker}/environ").st_uid == 0, "the broker is dumpable"
        assert os.stat(f"/proc/{control.pid}/environ").st_uid == uid
        probe = subprocess.run(
            ["/usr/bin/python3", "-c", PTRACE_PROBE, str(broker)], user=uid, group=uid, capture_output=True,
            text=True, timeout=20)
        result = eval(probe.stdout.strip())  # noqa: S307 - our own repr of a dict of strings
        assert result["attach"] == "Operation not permitted", result
        assert result["mem"] != "ok" and result["environ"] != "ok", result
        probe = subprocess.run(
            ["/usr/bin/python3", "-c", PTRACE_PROBE, str(control.pid)], user=uid, group=uid, capture_output=True,
            text=True, timeout=20)
        assert eval(probe.stdout.strip())["environ"] == "ok"  # noqa: S307
    finally:
        control.kill()
        control.wait()
        running.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)


def _plugin_with_prefix(vault, workdir, prefix, extra_args):
    """A Plugin whose broker command line is wrapped by `prefix` (setpriv)."""
    import plugin as plugin_module

    original = plugin_module.subprocess.Popen

    def wrapped(args, **kwargs):
        return original(prefix + list(args), **kwargs)

    plugin_module.subprocess.Popen = wrapped
    try:
        return Plugin(vault, workdir, extra_args=extra_args)
    finally:
        plugin_module.subprocess.Popen = original


def test_front_uid_can_neither_ptrace_nor_read_the_broker(plugin):
    probe = run_as_front(plugin.front_pid(), PTRACE_PROBE, str(plugin.proc.pid))
    result = eval(probe.stdout.strip())  # noqa: S307 - our own repr of a dict of strings
    assert result["attach"] == "Operation not permitted", result
    assert result["mem"] in ("Permission denied", "Operation not permitted"), result
    assert result["environ"] in ("Permission denied", "Operation not permitted"), result
    # Control: the same probe run against the front itself (same uid) reads its maps.
    own = eval(run_as_front(plugin.front_pid(), PTRACE_PROBE, str(plugin.front_pid())).stdout.strip())  # noqa: S307
    assert own["maps"] == "ok", own
