"""The container image, built for real: buildah builds deploy/container/Containerfile.local from
the release binaries (the systemd lane's release build) and commits an OCI image to a private vfs
store, without a registry and without running a container. The image is mounted (`buildah mount`)
and checked file by file, then both processes run from its root filesystem in the split topology
of deploy/kubernetes/vault-kube-kms-split.yaml (chroot into the mounted root, as the image's
broker and front users, no new privileges) against a real OpenBao, and `vault-kube-kms probe`
from the image passes. The store is removed at the end (`buildah rm`, `buildah rmi`)."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from kmstest import nspawnlane, plugin

ROOT = plugin.ROOT
CONTAINER = os.path.join(ROOT, "deploy", "container")
BINARIES = ("vault-kube-kms", "vault-kube-kms-front")
BROKER_UID, FRONT_UID = 65532, 65533  # Containerfile's passwd, vault-kube-kms-split.yaml's runAsUser
SHELLS = ("bin/sh", "bin/bash", "bin/dash", "usr/bin/sh", "usr/bin/bash", "usr/bin/dash", "bin/busybox")
IDENTITY_FILES = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SIZE_GOAL = 30 * 1000 * 1000  # issue 17: <= 30 MB uncompressed (reported; see docs/operations.md)


def ldd_closure(binary):
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = set()
    for line in output.splitlines():
        found = re.match(r"\s*\S+ => (/\S+) \(", line) or re.match(r"\s*(/\S+) \(", line)
        if found:
            paths.add(found.group(1))
    return paths


def containerfile_identity_files():
    """{path: content} of the passwd, group and nsswitch.conf Containerfile's build stage writes
    (its printf lines), which the local image must carry byte for byte."""
    text = open(os.path.join(CONTAINER, "Containerfile")).read()
    found = {}
    for fmt, path in re.findall(r"printf '([^']*)' >/rootfs(/etc/\S+)", text):
        found[path] = fmt.encode().decode("unicode_escape")
    assert set(found) == set(IDENTITY_FILES), found
    return found


class Buildah:
    """buildah on a private store (vfs driver: no overlay mounts needed; removed at the end)."""

    def __init__(self, directory):
        self.store = os.path.join(directory, "store")
        self.prefix = ["buildah", "--root", self.store, "--runroot", os.path.join(directory, "run"),
                       "--storage-driver", "vfs"]

    def __call__(self, *args, timeout=600):
        done = subprocess.run(self.prefix + list(args), capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"buildah {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout.strip()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    if shutil.which("buildah") is None:
        pytest.fail("buildah is missing: bash scripts/install-deps.sh installs it")
    if os.geteuid() != 0:
        pytest.fail("building and mounting an image with buildah's vfs store here needs root")
    directory = str(tmp_path_factory.mktemp("image"))
    bin_dir = nspawnlane.release_bin_dir()
    context = os.path.join(directory, "context")
    done = subprocess.run(["bash", os.path.join(CONTAINER, "local-root.sh"), bin_dir, context],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    buildah = Buildah(directory)
    tag = f"localhost/vault-kube-kms:e2e-{os.getpid()}"
    started = time.monotonic()
    buildah("bud", "--format", "oci", "-f", os.path.join(CONTAINER, "Containerfile.local"), "-t", tag, context)
    build_seconds = time.monotonic() - started
    container = buildah("from", "--pull-never", tag).splitlines()[-1]
    mounted = buildah("mount", container)
    state = {"buildah": buildah, "tag": tag, "container": container, "root": mounted, "bin_dir": bin_dir,
             "build_seconds": build_seconds, "inspect": json.loads(buildah("inspect", "--type", "image", tag))}
    state["files"] = files_of(mounted)
    try:
        yield state
    finally:
        buildah("umount", container)
        buildah("rm", container)
        buildah("rmi", tag)
        left = (buildah("containers", "--quiet"), buildah("images", "--quiet"))
        shutil.rmtree(directory, ignore_errors=True)
        assert left == ("", ""), f"buildah left containers/images behind: {left}"


def files_of(root):
    """{"/path": (kind, size)} of everything under the mounted root (directories excluded)."""
    found = {}
    for directory, subdirectories, names in os.walk(root):
        for name in names + [d for d in subdirectories if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            kind = "link" if os.path.islink(path) else "file" if os.path.isfile(path) else "other"
            found["/" + os.path.relpath(path, root)] = (kind, os.lstat(path).st_size)
    return found


def test_image_holds_only_the_binaries_their_ldd_closure_ca_bundle_and_identity_files(image):
    closure = set().union(*(ldd_closure(os.path.join(image["bin_dir"], name)) for name in BINARIES))
    expected = closure | {f"/usr/bin/{name}" for name in BINARIES} | {CA_BUNDLE, *IDENTITY_FILES}
    files = image["files"]
    assert set(files) == expected, {"extra": sorted(set(files) - expected), "missing": sorted(expected - set(files))}
    assert {kind for kind, _ in files.values()} == {"file"}  # no symbolic links, devices or sockets
    root = image["root"]
    assert not any(os.path.lexists(os.path.join(root, shell)) for shell in SHELLS)
    for path, content in containerfile_identity_files().items():
        assert open(root + path, "rb").read() == content.encode(), path
    total = sum(size for _, size in files.values())
    layers = image["inspect"]["OCIv1"]["rootfs"]["diff_ids"]
    print(f"\nimage: {total} bytes uncompressed ({total / 1e6:.1f} MB, goal {SIZE_GOAL / 1e6:.0f} MB), "
          f"{len(files)} files ({len(closure)} libraries), {len(layers)} layer(s), built in "
          f"{image['build_seconds']:.1f} s")
    assert len(layers) == 1


def test_image_config_is_non_root_with_the_broker_as_entrypoint_and_no_shell(image):
    config = image["inspect"]["OCIv1"]["config"]
    assert config["User"] == f"{BROKER_UID}:{BROKER_UID}"
    assert config["Entrypoint"] == ["/usr/bin/vault-kube-kms"]
    assert not any("sh" == os.path.basename(word) for word in config["Entrypoint"] + config.get("Cmd", []))


def in_image(root, uid, groups, command, log_path):
    """Starts `command` (paths inside the image) chrooted in the mounted image root as uid:uid with
    the supplementary `groups`, no new privileges, in a private mount namespace with /proc and the
    few /dev nodes a container runtime gives."""
    dev = " && ".join(f"touch {root}/dev/{node} && mount --bind /dev/{node} {root}/dev/{node}"
                      for node in ("null", "zero", "urandom"))
    script = (f"mount -t proc proc {root}/proc && mount -t tmpfs -o mode=0755 tmpfs {root}/dev && {dev} && "
              f"exec setpriv --no-new-privs chroot --userspec={uid}:{uid} --groups={','.join(map(str, groups))} "
              f"{root} " + " ".join(shlex.quote(arg) for arg in command))
    log = open(log_path, "ab")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                            stdout=log, stderr=subprocess.STDOUT, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                            stdin=subprocess.DEVNULL)
    return proc, log


def uid_of(pid, expected, timeout=30):
    """The real uid of `pid` once it has exec'd past unshare, sh, setpriv and chroot (or at the timeout)."""
    deadline = time.time() + timeout
    while True:
        with open(f"/proc/{pid}/status") as handle:
            uid = int(next(line for line in handle if line.startswith("Uid:")).split()[1])
        if uid == expected or time.time() > deadline:
            return uid
        time.sleep(0.05)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_both_processes_run_from_the_image_as_its_users_and_the_probe_passes(image, vault_server, vault):
    root = image["root"]
    # What the Pod's volumes provide (created in the container's own layer, after the content check):
    # the broker socket directory, the KMS socket directory, the AppRole secret ID, /proc and /dev.
    for path, owner, mode in (("/proc", (0, 0), 0o555), ("/dev", (0, 0), 0o755),
                              ("/run/vault-kube-kms", (BROKER_UID, FRONT_UID), 0o750),
                              ("/var/run/kmsplugin", (FRONT_UID, FRONT_UID), 0o750),
                              ("/etc/vault-kube-kms/approle", (BROKER_UID, BROKER_UID), 0o500)):
        os.makedirs(root + path, exist_ok=True)
        os.chown(root + path, *owner)
        os.chmod(root + path, mode)
    secret = root + "/etc/vault-kube-kms/approle/secret-id"
    with open(secret, "w") as handle:
        handle.write(vault.secret_id + "\n")
    os.chown(secret, BROKER_UID, BROKER_UID)
    os.chmod(secret, 0o400)
    logs = tempfile.mkdtemp(prefix="vkk-image-logs-")
    broker_log, front_log = os.path.join(logs, "broker.log"), os.path.join(logs, "front.log")
    broker, handles = None, []
    front = None
    try:
        broker, log = in_image(root, BROKER_UID, [BROKER_UID, FRONT_UID], [
            "/usr/bin/vault-kube-kms", "broker",
            "--broker-listen-address=unix:///run/vault-kube-kms/broker.sock",
            "--broker-socket-group=65533", "--broker-socket-mode=0660",
            f"--allowed-front-uid={FRONT_UID}", f"--allowed-front-gid={FRONT_UID}",
            "--approle-secret-id-path=/etc/vault-kube-kms/approle/secret-id",
            "--vault-address", vault.address, "--vault-key-path", vault.key_path,
            "--auth-mount", vault.auth_mount, "--approle-role-id", vault.role_id], broker_log)
        handles.append(log)
        deadline = time.time() + 60
        while not os.path.exists(root + "/run/vault-kube-kms/broker.sock"):
            assert broker.poll() is None and time.time() < deadline, open(broker_log, errors="replace").read()
            time.sleep(0.1)
        front, log = in_image(root, FRONT_UID, [FRONT_UID], [
            "/usr/bin/vault-kube-kms-front", "--listen-address=unix:///var/run/kmsplugin/kms.sock",
            "--broker-address=unix:///run/vault-kube-kms/broker.sock", "--health-port", "0",
            "--metrics-port", "0"], front_log)
        handles.append(log)
        assert uid_of(broker.pid, BROKER_UID) == BROKER_UID and uid_of(front.pid, FRONT_UID) == FRONT_UID
        for proc in (broker, front):
            fields = plugin.proc_status(proc.pid)
            assert fields["NoNewPrivs"] == "1" and fields["CapEff"] == "0000000000000000", fields
        deadline = time.time() + 60
        while True:
            probe, log = in_image(root, FRONT_UID, [FRONT_UID], [
                "/usr/bin/vault-kube-kms", "probe", "--listen-address", "unix:///var/run/kmsplugin/kms.sock",
                "--timeout-millis", "5000"], os.path.join(logs, "probe.log"))
            handles.append(log)
            code = probe.wait(60)
            output = open(os.path.join(logs, "probe.log"), errors="replace").read().split("== try\n")[-1]
            if code == 0 or time.time() > deadline:
                break
            with open(os.path.join(logs, "probe.log"), "a") as marker:
                marker.write("== try\n")
            time.sleep(1)
        assert code == 0, (f"probe: {output}\nbroker:\n{open(broker_log, errors='replace').read()[-3000:]}\n"
                           f"front:\n{open(front_log, errors='replace').read()[-3000:]}")
        lines = [line for line in output.splitlines() if line.split()[:1] in (["status"], ["encrypt"], ["decrypt"])]
        assert [line.split()[0] for line in lines] == ["status", "encrypt", "decrypt"], output
        assert all(" ok " in line for line in lines), output
        assert broker.poll() is None and front.poll() is None
        # the libraries really came from the image: the broker's mapped libcurl is the image's file
        with open(f"/proc/{broker.pid}/maps") as handle:
            mapped = {line.split()[-1] for line in handle if ".so" in line}
        assert any(path.endswith("/libcurl.so.4") for path in mapped), mapped
        image_inode = os.stat(root + "/lib/x86_64-linux-gnu/libcurl.so.4").st_ino
        assert os.stat(f"/proc/{broker.pid}/root/lib/x86_64-linux-gnu/libcurl.so.4").st_ino == image_inode
    finally:
        for proc in (front, broker):
            if proc:
                stop(proc)
        for handle in handles:
            handle.close()
        shutil.rmtree(logs, ignore_errors=True)
