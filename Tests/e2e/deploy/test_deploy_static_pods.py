"""The static Pods' containers run the way the kubelet would run them, without a kubelet: each
container's command verbatim (image paths mapped to the built binaries, volumes to directories
made like the Pod's volumes), its env, runAsUser/runAsGroup, the Pod's supplementalGroups, its
capabilities (drop ALL, add what it adds), no-new-privs (allowPrivilegeEscalation: false) and the
shipped Localhost seccomp profile enforced. The KMS socket must serve Encrypt and Decrypt."""
import os
import shutil
import signal
import subprocess
import tempfile

import pytest
import yaml

from kmstest import plugin, process
from kmstest.oneuid import kernel_landlock_abi
from test_deploy_split_units import ready_over_http, wait_for, with_free_ports
from test_deploy_syscallfilter import ENFORCE, SYSTEM_PYTHON, serves

K8S = os.path.join(plugin.ROOT, "deploy", "kubernetes")
PROFILE = os.path.join(K8S, "seccomp", "vault-kube-kms.json")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv")
    or subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode != 0,
    reason="needs root, setpriv and python3-seccomp")


def pod(name):
    with open(os.path.join(K8S, name)) as handle:
        return yaml.safe_load(handle)


@pytest.fixture()
def volumes():
    """The Pods' volumes as the node preparation in the Pod files' comments makes them."""
    root = tempfile.mkdtemp(prefix="vkk-pod-")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def prepare(root, spec, vault, broker_uid, one_uid=False):
    paths = {}
    for volume in spec["volumes"]:
        path = os.path.join(root, volume["name"])
        os.mkdir(path)
        if "emptyDir" in volume:
            os.chmod(path, 0o777)  # what the kubelet gives an emptyDir
        else:
            os.chmod(path, 0o755)
        paths[volume["name"]] = path
    kms_owner = broker_uid if one_uid else 65533 if broker_uid else 0
    os.chown(paths["kms-socket"], kms_owner, 0)
    os.chmod(paths["kms-socket"], 0o750 if broker_uid else 0o755)
    if "broker-socket" in paths:  # kmsplugin.tmpfiles.conf
        os.chown(paths["broker-socket"], 65532, 65533)
        os.chmod(paths["broker-socket"], 0o750)
    secret = os.path.join(paths["approle"], "secret-id")
    shutil.copy(vault.secret_id_path, secret)
    os.chmod(secret, 0o400)
    os.chmod(paths["approle"], 0o700)
    for path in (secret, paths["approle"]):
        os.chown(path, broker_uid, broker_uid)
    return paths


def container_process(spec, container, paths, vault, log):
    mounts = {m["mountPath"]: paths[m["name"]] for m in container.get("volumeMounts", [])}
    command = []
    for arg in container["command"]:
        arg = arg.replace("/usr/bin/", plugin.installed_bin_dir() + "/")
        for mount_path, path in mounts.items():
            arg = arg.replace(mount_path + "/", path + "/")
        command.append(arg)
    known = subprocess.run([command[0], *command[1:2], "--help"] if command[1:2] == ["broker"] or
                           command[1:2] == ["serve"] else [command[0], "--help"],
                           capture_output=True, text=True, timeout=30).stdout
    flags = {arg.split("=")[0] for arg in command if arg.startswith("--")}
    missing = sorted(f for f in flags if f not in known)
    assert set(missing) <= {"--health-port", "--metrics-port"}, missing  # issue 4's metrics work
    command, ports = with_free_ports([arg for arg in command if arg.split("=")[0] not in missing])
    probes = [container.get(kind, {}).get("httpGet") for kind in ("livenessProbe", "readinessProbe")]
    values = {"VAULT_KUBE_KMS_VAULT_ADDRESS": vault.address, "VAULT_KUBE_KMS_VAULT_KEY_PATH": vault.key_path,
              "VAULT_KUBE_KMS_APPROLE_ROLE_ID": vault.role_id}
    env = {"PATH": os.environ["PATH"], "VAULT_KUBE_KMS_AUTH_MOUNT": vault.auth_mount}
    for item in container.get("env", []):
        env[item["name"]] = values.get(item["name"], item["value"])
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
    added = ",".join("+" + cap.lower() for cap in context["capabilities"].get("add", []))
    groups = ",".join(str(g) for g in spec["securityContext"].get("supplementalGroups", [])) or None
    assert spec["securityContext"]["seccompProfile"]["localhostProfile"] == os.path.basename(PROFILE)
    wrapper = ["setpriv", f"--reuid={context['runAsUser']}", f"--regid={context['runAsGroup']}",
               f"--groups={groups}" if groups else "--clear-groups", "--inh-caps=-all",
               "--bounding-set=-all" + ("," + added if added else ""), "--no-new-privs",
               SYSTEM_PYTHON, ENFORCE, plugin.shareable(PROFILE), "--"]
    proc = subprocess.Popen(wrapper + command, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.probes = [(ports["--health-port"], probe["path"]) for probe in probes if probe and "--health-port" in ports]
    return proc


def stop_all(procs):
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("name,broker_uid", [("vault-kube-kms-split.yaml", 65532), ("vault-kube-kms-spawn.yaml", 0),
                                             ("vault-kube-kms-one-uid.yaml", 65532)])
def test_static_pod_containers_serve_under_their_security_context_and_seccomp_profile(vault, volumes, name, broker_uid):
    one_uid = "one-uid" in name
    if one_uid and kernel_landlock_abi() < 6:
        pytest.skip("the one-uid topology needs Landlock ABI 6")
    spec = pod(name)["spec"]
    paths = prepare(volumes, spec, vault, broker_uid, one_uid)
    kms_sock = os.path.join(paths["kms-socket"], "kms.sock")
    procs, logs = [], []
    try:
        for container in spec["containers"]:
            logs.append(open(os.path.join(volumes, container["name"] + ".log"), "wb"))
            procs.append(container_process(spec, container, paths, vault, logs[-1]))
            if container["name"] == "broker":
                wait_for(os.path.join(paths["broker-socket"], "broker.sock"), procs[-1])
        wait_for(kms_sock, procs[-1], timeout=20)
        ok = serves(kms_sock, procs[-1], timeout=20)
        assert ok, [open(log.name).read()[-2000:] for log in logs]
        for proc in procs:
            assert plugin.proc_status(proc.pid)["Seccomp"] == "2"
        # Under the shipped profile the front still gets its whole sandbox (landlock_* and seccomp
        # are allowed); in the one-uid Pod it is required and at the broker's uid.
        events = [e for log in logs for e in process.json_events(open(log.name).read())]
        applied = [e for e in events if e.get("event") == "sandbox.applied"]
        assert applied and applied[0]["seccomp"] == "true", events[-5:]
        assert int(applied[0]["landlock_abi"]) == min(kernel_landlock_abi(), 7)
        if one_uid:
            assert applied[0]["mode"] == "required"
            front = [e for e in events if e.get("event") == "front.started"][0]
            assert front["user"].startswith(f"one-uid (uid {broker_uid}")
            for port, path in proc.probes:  # the Pod's httpGet probes, where the build serves them
                assert ready_over_http(port, path) == 200, path
    finally:
        stop_all(procs)
        for log in logs:
            log.close()
    assert [proc.returncode for proc in procs] == [0] * len(procs), [open(log.name).read()[-2000:] for log in logs]
