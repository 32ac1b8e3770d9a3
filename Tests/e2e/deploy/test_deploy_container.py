"""deploy/container: the Containerfile checked statically (no container engine in CI) and the
library-collection script run on the real binaries: it copies exactly the ldd closure, and the
binaries run from the collected root alone."""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from kmstest import plugin

ROOT = plugin.ROOT
CONTAINER = os.path.join(ROOT, "deploy", "container")
COLLECT = os.path.join(CONTAINER, "collect-libs.sh")
BINARIES = ("vault-kube-kms", "vault-kube-kms-front")
SHELLS = ("bin/sh", "bin/bash", "usr/bin/sh", "usr/bin/bash", "bin/busybox")


def stages():
    """[(FROM line, [(instruction, arguments)])] of the Containerfile, continuations joined."""
    text = open(os.path.join(CONTAINER, "Containerfile")).read().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            result.append((arguments, []))
        elif result:
            result[-1][1].append((instruction.upper(), arguments.strip()))
    return result


def test_every_copy_source_from_the_build_context_exists():
    copies = [args for _, instructions in stages() for ins, args in instructions if ins == "COPY"]
    from_context = [args for args in copies if not args.startswith("--from")]
    assert from_context
    for args in from_context:
        *sources, _ = shlex.split(args)
        for source in sources:
            assert os.path.exists(os.path.join(ROOT, source)), source


def test_final_stage_is_empty_non_root_and_runs_nothing():
    (base, instructions) = stages()[-1]
    assert base.split()[0] == "scratch"
    kinds = [ins for ins, _ in instructions]
    assert "RUN" not in kinds and "ADD" not in kinds
    users = [args for ins, args in instructions if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert int(users[-1].split(":")[0]) >= 1000
    entrypoint = [args for ins, args in instructions if ins == "ENTRYPOINT"][-1]
    assert entrypoint.startswith("[") and "/bin/sh" not in entrypoint  # exec form, no shell
    build_stages = [from_line for from_line, _ in stages()[:-1]]
    assert any("AS build" in line for line in build_stages)


def ldd_closure(binary):
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = set()
    for line in output.splitlines():
        found = re.match(r"\s*\S+ => (/\S+) \(", line) or re.match(r"\s*(/\S+) \(", line)
        if found:
            paths.add(found.group(1))
    return paths


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    dest = str(tmp_path_factory.mktemp("rootfs"))
    binaries = [os.path.join(plugin.installed_bin_dir(), name) for name in BINARIES]
    result = subprocess.run(["bash", COLLECT, dest, *binaries], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return dest, binaries, result.stdout.split()


def test_collect_copies_exactly_the_ldd_closure(collected):
    dest, binaries, printed = collected
    expected = set().union(*(ldd_closure(b) for b in binaries))
    assert set(printed) == expected
    on_disk = set()
    for directory, _, files in os.walk(dest):
        for name in files:
            on_disk.add("/" + os.path.relpath(os.path.join(directory, name), dest))
    assert on_disk == expected | {f"/usr/bin/{name}" for name in BINARIES}
    for path in expected:
        assert not os.path.islink(dest + path), path
    assert not any(os.path.exists(os.path.join(dest, shell)) for shell in SHELLS)


def test_front_closure_has_no_curl_and_no_openssl(collected):
    _, binaries, _ = collected
    front = ldd_closure(binaries[1])
    assert not [p for p in front if "libcurl" in p or "libssl" in p]


def library_dirs(dest):
    return sorted({os.path.dirname(os.path.join(dest, os.path.relpath(os.path.join(d, f), dest)))
                   for d, _, files in os.walk(dest) for f in files if ".so" in f})


@pytest.mark.parametrize("name", BINARIES)
def test_binary_runs_with_only_the_collected_libraries(collected, name):
    dest, _, _ = collected
    env = {"LD_LIBRARY_PATH": ":".join(library_dirs(dest)), "LD_DEBUG": "libs", "PATH": "/nonexistent"}
    result = subprocess.run([os.path.join(dest, "usr", "bin", name), "--help"], capture_output=True,
                            text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OVERVIEW" in result.stdout
    loaded = re.findall(r"calling init: (\S+)", result.stderr)
    assert loaded
    outside = [path for path in loaded if not path.startswith(dest) and not path.startswith("/lib64/ld-linux")]
    assert outside == []


@pytest.mark.parametrize("name", BINARIES)
def test_binary_runs_chrooted_in_the_collected_root(collected, name, tmp_path):
    dest, _, _ = collected
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private mount namespace")
    os.makedirs(os.path.join(dest, "proc"), exist_ok=True)
    # Swift reads its arguments from /proc/self/cmdline: give the chroot a /proc, nothing else.
    script = f"mount -t proc proc {shlex.quote(dest)}/proc && exec chroot {shlex.quote(dest)} /usr/bin/{name} --help"
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OVERVIEW")
    os.rmdir(os.path.join(dest, "proc"))


def test_image_users_are_the_uids_the_static_pods_run_as():
    import yaml

    text = open(os.path.join(CONTAINER, "Containerfile")).read()
    passwd = {int(uid) for uid in re.findall(r"[a-z-]+:x:(\d+):\d+:", text)}  # passwd, not group, lines
    final_user = int([args for ins, args in stages()[-1][1] if ins == "USER"][-1].split(":")[0])
    pod = yaml.safe_load(open(os.path.join(ROOT, "deploy", "kubernetes", "vault-kube-kms-split.yaml")))
    uids = {c["securityContext"]["runAsUser"] for c in pod["spec"]["containers"]}
    assert uids | {final_user} <= passwd
    assert final_user == next(c for c in pod["spec"]["containers"] if c["name"] == "broker")["securityContext"]["runAsUser"]
