"""OpenShift's KMS sidecar (deploy/kubernetes/openshift/kms-plugin-sidecar.yaml) run the way the
kubelet would run it, without a kubelet: the container's args verbatim (only Vault's address,
the role ID, the Transit names and the secret-ID path point at the test's OpenBao), its user,
the image's ENV, and its volumes. The socket directory /var/run/kmsplugin is an emptyDir made as
the kubelet makes one, inside a private mount namespace (`unshare -m`), so nothing on the host
changes: a 0777 directory under pods/<uid>/volumes/kubernetes.io~empty-dir/ bind-mounted there
(the default medium, which OpenShift's operator uses). A
kube-apiserver-like client then encrypts and decrypts through /proc/<pid>/root/... (the Pod's
view of the path)."""
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
import uuid

import pytest
import yaml

from kmstest import kmsclient
from kmstest import plugin, process
from kmstest.kmsclient import api
from kmstest.ports import free_port

SIDECAR = os.path.join(plugin.ROOT, "deploy", "kubernetes", "openshift", "kms-plugin-sidecar.yaml")
CONTAINERFILE = os.path.join(plugin.ROOT, "deploy", "container", "Containerfile")
# What CRI-O grants a container that asks for nothing (its default_capabilities).
CRIO_CAPS = "chown,dac_override,fsetid,fowner,setgid,setuid,setpcap,net_bind_service,kill"
# A uid from an OpenShift namespace's range, as restricted-v2 assigns it.
NON_ROOT_UID = 1000680000

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"),
    reason="needs root, unshare and setpriv (a private mount namespace stands in for the Pod)")


def shapes():
    with open(SIDECAR) as handle:
        return list(yaml.safe_load_all(handle))


def image_env():
    """The image's ENV lines (what the container runtime puts in the environment)."""
    env = {}
    with open(CONTAINERFILE) as handle:
        for line in handle:
            found = re.match(r"ENV (\w+)=(\S+)$", line.strip())
            if found:
                env[found.group(1)] = found.group(2)
    return env


def sidecar_args(spec, vault, secret_path):
    """The operator's arguments with the cluster's values replaced by the test's Vault's."""
    container = spec["initContainers"][0]
    replace = {
        "-vault-address": vault.address, "-transit-mount": vault.mount, "-transit-key": vault.key,
        "-approle-role-id": vault.role_id, "-approle-secret-id-path": secret_path,
    }
    args = []
    for arg in container["args"]:
        name, _, _ = arg.partition("=")
        if name == "-vault-namespace":
            continue  # OpenBao has no namespaces; the flag's spelling is covered by the unit tests
        args.append(f"{name}={replace[name]}" if name in replace else arg)
    return container, args


def pod_script(medium, kubelet_dir, secret_source, secret_path, uid, command, secret_volume_mode=None):
    """Shell run in the private mount namespace: the Pod's /var/run, its emptyDir, its secret,
    then the container's process as its user. With `secret_volume_mode` the secret is laid out
    as the kubelet's atomic writer lays out a Secret volume with that `defaultMode`: a root-owned
    `..<timestamp>/` directory holding the file, `..data -> ..<timestamp>`, and
    `<name> -> ..data/<name>`."""
    lines = [
        "set -e",
        "mount -t tmpfs -o mode=0755 tmpfs /run",  # this namespace's /var/run only
        "mkdir -m 0755 /run/kmsplugin",
    ]
    if medium == "Memory":  # the kubelet mounts a tmpfs with no mode option: 1777
        lines.append("mount -t tmpfs tmpfs /run/kmsplugin")
    elif medium == "plain":  # not a volume: a 0777 directory of the container's own /var/run
        lines.append("chmod 0777 /run/kmsplugin")
    else:  # the kubelet's directory, bind-mounted into the container
        lines.append(f"mount --bind {kubelet_dir} /run/kmsplugin")
    secret_dir = os.path.dirname(secret_path)
    if secret_volume_mode is None:
        lines += [
            f"mkdir -p -m 0700 {secret_dir}",
            f"cp {secret_source} {secret_path}",
            f"chmod 0400 {secret_path}",
            f"chown {uid}:{uid} {secret_path} {secret_dir}",
        ]
    else:
        name, stamp = os.path.basename(secret_path), "..2026_12_04_20_00_00.000000001"
        lines += [
            f"mkdir -p -m 0755 {secret_dir}/{stamp}",
            f"cp {secret_source} {secret_dir}/{stamp}/{name}",
            f"chmod {secret_volume_mode:04o} {secret_dir}/{stamp}/{name}",
            f"ln -s {stamp} {secret_dir}/..data",
            f"ln -s ..data/{name} {secret_path}",
        ]
    prefix = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
              f"--bounding-set=-all,{'+' + CRIO_CAPS.replace(',', ',+')}"]
    if uid != 0:
        prefix = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                  "--bounding-set=-all"]
    lines.append("exec " + " ".join(shlex.quote(part) for part in prefix + command))
    return "\n".join(lines)


def kubelet_empty_dir(workdir):
    """What the kubelet makes for `emptyDir: {}`: a directory under its pods tree, mode 0777."""
    path = os.path.join(workdir, "var", "lib", "kubelet", "pods", str(uuid.uuid4()), "volumes",
                        "kubernetes.io~empty-dir", "kms-plugin-socket")
    os.makedirs(path)
    os.chmod(path, 0o777)
    return path


class Sidecar:
    def __init__(self, vault, workdir, shape, medium, uid, extra_args=(), env=None, secret_volume_mode=None,
                 secret_source=None):
        spec = shapes()[shape]["spec"]
        secret_path = [a for a in spec["initContainers"][0]["args"]
                       if a.startswith("-approle-secret-id-path=")][0].split("=", 1)[1]
        if not secret_path.startswith("/var/run/"):  # a hostPath outside the Pod's /var/run
            secret_path = os.path.join("/var/run/test-resource-dir", os.path.basename(secret_path))
        container, args = sidecar_args(spec, vault, secret_path)
        self.args = args
        binary = os.path.join(plugin.installed_bin_dir(), "vault-kube-kms")
        uid = uid if uid is not None else container.get("securityContext", {}).get("runAsUser", NON_ROOT_UID)
        self.uid = uid
        self.secret_path = secret_path
        script = pod_script(medium, kubelet_empty_dir(workdir), secret_source or vault.secret_id_path, secret_path,
                            uid, [binary, *args, *extra_args], secret_volume_mode)
        self.health_port = free_port()
        environment = {"PATH": os.environ["PATH"], **image_env(), "VAULT_KUBE_KMS_AUTH_MOUNT": vault.auth_mount,
                       "VAULT_KUBE_KMS_HEALTH_PORT": str(self.health_port), **(env or {})}
        self.log_path = os.path.join(workdir, f"sidecar-{shape}-{medium}.log")
        self.process = process.Logged(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                      self.log_path, append=False, env=environment)
        self.proc = self.process.proc
        socket = os.path.join(os.path.realpath("/var/run"), "kmsplugin", "kms-1.sock")
        assert args[0] == "-listen-address=unix:///var/run/kmsplugin/kms-1.sock"
        # The Pod's path, seen from outside its mount namespace (/var/run resolved here: an
        # absolute symlink would resolve against our own root).
        self.socket = f"/proc/{self.proc.pid}/root{socket}"

    def text(self):
        return self.process.text()

    def wait_ok(self, timeout=30):
        return plugin.wait_for_ok_status(self.socket, timeout, [("sidecar", self.proc, self.text)], self.text)

    def stop(self):
        self.process.stop()


def round_trip(socket):
    client = kmsclient.client(socket)
    plaintext = os.urandom(32)
    encrypted = client.Encrypt(api().EncryptRequest(plaintext=plaintext, uid="openshift"), timeout=5)
    decrypted = client.Decrypt(
        api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="openshift"), timeout=5)
    assert decrypted.plaintext == plaintext


def events(text, name):
    return [event for event in process.json_events(text) if event.get("event") == name]


def test_the_static_pod_sidecar_serves_with_openshifts_arguments_as_root_in_an_empty_dir(vault, workdir):
    sidecar = Sidecar(vault, workdir, shape=0, medium="disk", uid=None)
    try:
        assert sidecar.uid == 0
        assert sidecar.args[0] == "-listen-address=unix:///var/run/kmsplugin/kms-1.sock"
        assert "-tls-skip-verify=true" in sidecar.args and "-metrics-port=0" in sidecar.args
        sidecar.wait_ok()
        round_trip(sidecar.socket)
        text = sidecar.text()
        accepted = events(text, "socket_directory.pod_volume")
        assert accepted and accepted[0]["directory"] == "/var/run/kmsplugin", text
        assert "kubernetes.io~empty-dir/kms-plugin-socket" in accepted[0]["reason"]
        # The front runs as the default front user (nobody, in the image's passwd), not as root.
        front = [int(pid) for pid in os.listdir("/proc") if pid.isdigit()
                 and os.path.exists(f"/proc/{pid}/exe") and os.path.basename(os.readlink(f"/proc/{pid}/exe"))
                 == "vault-kube-kms-front" and plugin.proc_status(pid).get("PPid") == str(sidecar.proc.pid)]
        assert front and plugin.proc_status(front[0])["Uid"].split()[0] == str(pwd.getpwnam("nobody").pw_uid)
        assert "nobody:x:65534:65534:" in open(CONTAINERFILE).read()
        # -metrics-port=0: no metrics port; the health port answers.
        assert not any(e.get("event") == "metrics.listening" for e in process.json_events(text))
        socket_mode = os.stat(sidecar.socket).st_mode & 0o777
        assert socket_mode == 0o660
    finally:
        sidecar.stop()


def test_the_non_root_sidecar_serves_in_an_empty_dir_with_the_operators_arguments_only(vault, workdir):
    """An aggregated apiserver's shape: the SCC's uid, the same emptyDir (root's, 0777), and the
    operator's argument list with nothing added. A non-root broker with no --front-user takes the
    one-uid topology by itself: the front runs at the same uid inside its required sandbox
    (seccomp mode 2 on the running front, sandbox.applied), and the start says so
    (topology.selected, reason "not root")."""
    sidecar = Sidecar(vault, workdir, shape=1, medium="disk", uid=NON_ROOT_UID)
    try:
        assert not [a for a in sidecar.args if "one-uid" in a or "insecure" in a or "front-user" in a]
        sidecar.wait_ok()
        round_trip(sidecar.socket)
        text = sidecar.text()
        assert events(text, "socket_directory.pod_volume")
        assert os.stat(sidecar.socket).st_uid == NON_ROOT_UID
        selected = events(text, "topology.selected")
        assert selected and selected[0]["topology"] == "one-uid" and selected[0]["reason"].startswith("not root"), text
        assert selected[0]["level"] in ("warning", "WARNING", "warn"), selected
        started = events(text, "front.started")
        assert started and "one-uid" in started[0]["user"], text
        front = int(started[0]["pid"])
        status = plugin.proc_status(front)
        assert status["Uid"].split()[0] == str(NON_ROOT_UID) and status["PPid"] == str(sidecar.proc.pid)
        assert status["Seccomp"] == "2", status
        applied = events(text, "sandbox.applied")
        assert applied, text
    finally:
        sidecar.stop()


def kubelet_swap(root, secret_dir, name, content, stamp):
    """The kubelet's atomic-writer update seen from outside the Pod (`root` is /proc/<pid>/root):
    a new `..<timestamp>` directory, `..data` renamed onto it, the old directory removed."""
    directory = root + secret_dir
    old = os.readlink(os.path.join(directory, "..data"))
    os.mkdir(os.path.join(directory, stamp), 0o755)
    with open(os.path.join(directory, stamp, name), "w") as handle:
        handle.write(content)
    os.chmod(os.path.join(directory, stamp, name), 0o400)
    os.symlink(stamp, os.path.join(directory, "..data_tmp"))
    os.rename(os.path.join(directory, "..data_tmp"), os.path.join(directory, "..data"))
    shutil.rmtree(os.path.join(directory, old))


def test_a_secret_volume_with_default_mode_0400_serves_and_a_kubelet_swap_is_picked_up(vault, workdir):
    """The secret ID from a Kubernetes Secret volume as the kubelet lays it out (links through
    `..data`, root-owned, `defaultMode: 0400`), with the static Pod's arguments as uid 0. The file
    starts with a secret ID OpenBao does not know: the login is refused and waits on the 30 s
    credential back-off, with no false "changed" verdict while nothing changes; the kubelet-style
    swap of `..data` to the real one is seen as a changed file (broker.login.secret_id_changed)
    and the sidecar serves well inside the back-off."""
    unknown = os.path.join(workdir, "unknown-secret-id")
    with open(unknown, "w") as handle:
        handle.write(str(uuid.uuid4()))
    sidecar = Sidecar(vault, workdir, shape=0, medium="disk", uid=None, secret_volume_mode=0o400,
                      secret_source=unknown)
    try:
        root = f"/proc/{sidecar.proc.pid}/root"
        deadline = time.time() + 20
        while not events(sidecar.text(), "broker.login.failed") and time.time() < deadline:
            assert sidecar.proc.poll() is None, sidecar.text()
            time.sleep(0.1)
        assert events(sidecar.text(), "broker.login.failed"), sidecar.text()
        # Unchanged links and file are not a change: no "changed" verdict over four watch ticks,
        # and the refused credential waits for its 30 s back-off (one attempt only).
        time.sleep(2)
        assert not events(sidecar.text(), "broker.login.secret_id_changed"), sidecar.text()
        assert len(events(sidecar.text(), "broker.login.failed")) == 1, sidecar.text()
        # The Pod's path seen from outside (/var/run resolved here, as for the socket).
        secret_path = sidecar.secret_path.replace("/var/run", os.path.realpath("/var/run"), 1)
        assert os.path.islink(root + secret_path) and os.readlink(root + secret_path).startswith("..data/")
        with open(vault.secret_id_path) as handle:
            good = handle.read()
        swapped_at = time.time()
        kubelet_swap(root, os.path.dirname(secret_path), os.path.basename(secret_path), good,
                     "..2026_12_04_20_05_00.000000002")
        sidecar.wait_ok()
        round_trip(sidecar.socket)
        text = sidecar.text()
        assert events(text, "broker.login.secret_id_changed"), text
        assert events(text, "broker.login.ok"), text
        assert time.time() - swapped_at < 15
    finally:
        sidecar.stop()


def test_a_secret_volume_without_default_mode_0400_is_refused_at_start(vault, workdir):
    """Kubernetes' default `defaultMode` (0644) leaves the secret ID readable by every uid in the
    container: the broker stops at start, naming the mode and the fix."""
    sidecar = Sidecar(vault, workdir, shape=0, medium="disk", uid=None, secret_volume_mode=0o644)
    try:
        assert sidecar.proc.wait(30) != 0
        text = sidecar.text()
        assert "is accessible by group or others (mode 0644); chmod 0400" in text, text
    finally:
        sidecar.stop()


@pytest.mark.parametrize("medium,mode", [("plain", "777"), ("Memory", "1777")])
def test_world_writable_directories_that_are_not_the_kubelets_empty_dir_are_refused(vault, workdir, medium, mode):
    """The same arguments with /var/run/kmsplugin a plain 0777 directory of the Pod's /var/run (not
    a mount of its own), or a `medium: Memory` emptyDir (a fresh tmpfs, 1777, which nothing tells
    apart from a host's tmpfs /tmp): the exception does not apply and the broker stops, saying why."""
    spec = shapes()[0]["spec"]
    secret = "/var/run/test-resource-dir/secret-id"
    _, args = sidecar_args(spec, vault, secret)
    script = pod_script(medium, "", vault.secret_id_path, secret, 0,
                        [os.path.join(plugin.installed_bin_dir(), "vault-kube-kms"), *args])
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], **image_env(), "VAULT_KUBE_KMS_HEALTH_PORT": "0"})
    assert result.returncode == 1, result.stderr
    assert f"socket directory /var/run/kmsplugin (mode {mode}) is writable by group or others" in result.stderr
