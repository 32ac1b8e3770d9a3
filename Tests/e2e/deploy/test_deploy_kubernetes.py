"""deploy/kubernetes: the static Pods and the patched kube-apiserver Pod validated with
kubernetes-validate (strict) against a current Kubernetes, the EncryptionConfiguration with a
schema check of its own, the egress examples, and the seccomp profile enforced on a real run."""
import copy
import json
import os
import shutil
import subprocess

import pytest
import yaml

from kmstest import plugin

ROOT = plugin.ROOT
K8S = os.path.join(ROOT, "deploy", "kubernetes")
SECCOMP = os.path.join(K8S, "seccomp")
SYSTEM_PYTHON = "/usr/bin/python3"
KUBERNETES_VERSION = "1.37.0"
# The spawn Pod without any TCP port: exec readiness probe (deploy/kubernetes/README.md, "Probes").
EXEC_PROBE_POD = "vault-kube-kms-spawn-exec-probes.yaml"


def load(name):
    with open(os.path.join(K8S, name)) as handle:
        return yaml.safe_load(handle)


def validate(document):
    import kubernetes_validate

    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def container(pod, name):
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def mounts(c):
    return {m["name"]: m for m in c.get("volumeMounts", [])}


@pytest.mark.parametrize("name", ["vault-kube-kms-split.yaml", "vault-kube-kms-spawn.yaml", "vault-kube-kms-one-uid.yaml",
                                  EXEC_PROBE_POD])
def test_static_pod_is_valid_and_node_critical_on_host_network(name):
    pod = load(name)
    validate(pod)
    spec = pod["spec"]
    assert (spec["hostNetwork"], spec["priorityClassName"], spec["automountServiceAccountToken"]) == (
        True, "system-node-critical", False)
    assert spec["securityContext"]["seccompProfile"] == {"type": "Localhost", "localhostProfile": "vault-kube-kms.json"}
    assert os.path.exists(os.path.join(SECCOMP, "vault-kube-kms.json"))
    for c in spec["containers"]:
        context = c["securityContext"]
        assert (context["readOnlyRootFilesystem"], context["allowPrivilegeEscalation"]) == (True, False), c["name"]
        assert context["capabilities"]["drop"] == ["ALL"], c["name"]


def test_invalid_pod_is_rejected_by_the_validator():
    import kubernetes_validate

    pod = load("vault-kube-kms-split.yaml")
    pod["spec"]["containers"][0]["securityContext"]["runAsUsr"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod)


def test_split_pod_separates_uids_and_mounts_the_secret_only_into_the_broker():
    pod = load("vault-kube-kms-split.yaml")
    broker, front = container(pod, "broker"), container(pod, "front")
    uids = {broker["securityContext"]["runAsUser"], front["securityContext"]["runAsUser"]}
    assert len(uids) == 2 and 0 not in uids
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "capabilities" not in broker["securityContext"] or "add" not in broker["securityContext"]["capabilities"]
    assert "approle" in mounts(broker) and mounts(broker)["approle"]["readOnly"] is True
    assert "approle" not in mounts(front)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    # Not an emptyDir: the kubelet makes those 0777 and the broker refuses such a directory.
    assert volumes["broker-socket"]["hostPath"]["path"].startswith("/run/")
    assert volumes["kms-socket"]["hostPath"]["path"] == "/var/run/kmsplugin"
    assert f"--allowed-front-uid={front['securityContext']['runAsUser']}" in broker["command"]
    assert mounts(broker)["broker-socket"]["mountPath"] == mounts(front)["broker-socket"]["mountPath"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert front[probe]["httpGet"]["host"] == "127.0.0.1"


def test_spawn_pod_adds_only_the_capabilities_the_privilege_drop_needs():
    pod = load("vault-kube-kms-spawn.yaml")
    (only,) = pod["spec"]["containers"]
    assert sorted(only["securityContext"]["capabilities"]["add"]) == ["KILL", "SETGID", "SETPCAP", "SETUID"]
    assert "--front-user=65533" in only["command"]


def check_encryption_configuration(document):
    """The errors of an EncryptionConfiguration (not a served API object, so checked here)."""
    errors = []
    if document.get("apiVersion") != "apiserver.config.k8s.io/v1" or document.get("kind") != "EncryptionConfiguration":
        errors.append("apiVersion/kind")
    extra = set(document) - {"apiVersion", "kind", "resources"}
    if extra:
        errors.append(f"unknown fields {sorted(extra)}")
    for entry in document.get("resources") or [None]:
        if not isinstance(entry, dict) or not entry.get("resources") or not entry.get("providers"):
            errors.append("every resources entry needs resources and providers")
            continue
        names = set()
        for provider in entry["providers"]:
            if len(provider) != 1:
                errors.append("one provider type per list item")
                continue
            (kind, config), = provider.items()
            if kind not in ("kms", "identity", "aescbc", "aesgcm", "secretbox"):
                errors.append(f"unknown provider {kind}")
            if kind == "kms":
                if set(config) - {"apiVersion", "name", "endpoint", "timeout", "cachesize"}:
                    errors.append("unknown kms field")
                if config.get("apiVersion") != "v2" or "cachesize" in config:
                    errors.append("kms must be apiVersion v2 (and v2 takes no cachesize)")
                if not str(config.get("endpoint", "")).startswith("unix:///") or not config.get("name"):
                    errors.append("kms needs a name and a unix:/// endpoint")
                if ":" in config.get("name", "") or config.get("name") in names:
                    errors.append("kms names are unique and contain no colon")
                names.add(config.get("name"))
        if not entry["providers"] or "kms" not in entry["providers"][0]:
            errors.append("the KMS provider must come first (it encrypts new writes)")
    return errors


def test_encryption_configuration_points_kms_v2_at_the_pods_socket():
    config = load("encryption-configuration.yaml")
    assert check_encryption_configuration(config) == []
    kms = config["resources"][0]["providers"][0]["kms"]
    command = container(load("vault-kube-kms-split.yaml"), "front")["command"]
    assert f"--listen-address={kms['endpoint']}" in command
    assert kms["timeout"] == "3s"


@pytest.mark.parametrize("breakage", ["v1", "identity_first", "tcp", "typo"])
def test_encryption_configuration_check_rejects_broken_configurations(breakage):
    config = load("encryption-configuration.yaml")
    providers = config["resources"][0]["providers"]
    if breakage == "v1":
        providers[0]["kms"]["apiVersion"] = "v1"
    elif breakage == "identity_first":
        providers.reverse()
    elif breakage == "tcp":
        providers[0]["kms"]["endpoint"] = "tcp://127.0.0.1:1"
    else:
        config["resource"] = config.pop("resources")
    assert check_encryption_configuration(config) != []


KUBEADM_APISERVER = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
    "spec": {
        "hostNetwork": True, "priorityClassName": "system-node-critical",
        "containers": [{
            "name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.37.0",
            "command": ["kube-apiserver", "--advertise-address=192.0.2.1", "--etcd-servers=https://127.0.0.1:2379"],
            "volumeMounts": [{"name": "k8s-certs", "mountPath": "/etc/kubernetes/pki", "readOnly": True}],
        }],
        "volumes": [{"name": "k8s-certs", "hostPath": {"path": "/etc/kubernetes/pki", "type": "DirectoryOrCreate"}}],
    },
}


def strategic_merge(base, patch):
    """The subset of a strategic merge kubeadm applies here: containers and volumes merge by
    name, command and volumeMounts are appended."""
    merged = copy.deepcopy(base)
    for patched in patch["spec"]["containers"]:
        target = container(merged, patched["name"])
        target["command"] += patched.get("command", [])
        target["volumeMounts"] += patched.get("volumeMounts", [])
    names = {v["name"] for v in merged["spec"]["volumes"]}
    merged["spec"]["volumes"] += [v for v in patch["spec"]["volumes"] if v["name"] not in names]
    return merged


def test_kube_apiserver_patch_yields_a_valid_pod_that_mounts_config_and_socket():
    patched = strategic_merge(KUBEADM_APISERVER, load("kube-apiserver-patch.yaml"))
    validate(patched)
    apiserver = container(patched, "kube-apiserver")
    flag = next(a for a in apiserver["command"] if a.startswith("--encryption-provider-config="))
    config_path = flag.split("=", 1)[1]
    mount_paths = {m["mountPath"] for m in apiserver["volumeMounts"]}
    assert os.path.dirname(config_path) in mount_paths
    endpoint = load("encryption-configuration.yaml")["resources"][0]["providers"][0]["kms"]["endpoint"]
    assert os.path.dirname(endpoint[len("unix://"):]) in mount_paths


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft (Debian nftables) missing")
def test_nftables_egress_example_parses_and_limits_both_uids():
    path = os.path.join(K8S, "egress", "vault-kube-kms.nft")
    result = subprocess.run(["nft", "-c", "-f", path], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    text = open(path).read()
    assert "meta skuid 65533 counter drop" in text
    assert text.rstrip().endswith("}") and "meta skuid 65532 counter log" in text


def test_cni_host_policies_allow_vault_on_its_port_only():
    cilium = load("egress/cilium-host-policy.yaml")
    assert cilium["kind"] == "CiliumClusterwideNetworkPolicy" and "nodeSelector" in cilium["spec"]
    assert cilium["spec"]["egress"][0]["toPorts"][0]["ports"] == [{"port": "8200", "protocol": "TCP"}]
    calico = load("egress/calico-host-policy.yaml")
    assert calico["kind"] == "GlobalNetworkPolicy" and calico["spec"]["types"] == ["Egress"]
    assert calico["spec"]["egress"][0]["destination"]["ports"] == [8200]


def test_seccomp_profile_denies_by_default_and_lists_sorted_unique_syscalls():
    profile = json.load(open(os.path.join(SECCOMP, "vault-kube-kms.json")))
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    (rule,) = profile["syscalls"]
    assert rule["action"] == "SCMP_ACT_ALLOW"
    assert rule["names"] == sorted(set(rule["names"]))
    assert {"epoll_wait", "setresuid", "connect", "sendto"} <= set(rule["names"])
    assert not {"ptrace", "mount", "bpf", "kexec_load", "init_module", "unshare"} & set(rule["names"])


@pytest.mark.parametrize("name,container_name", [("vault-kube-kms-one-uid.yaml", "vault-kube-kms"),
                                                 ("openshift-sidecar-one-uid.yaml", "vault-kube-kms")])
def test_one_uid_pods_run_non_root_without_any_capability(name, container_name):
    """The one-uid Pod and the OpenShift-style sidecar: a non-root uid, no capability added,
    no privilege escalation, `serve --one-uid`, and only the plugin container mounts the secret ID."""
    pod = load(name)
    plugin_container = container(pod, container_name)
    context = plugin_container["securityContext"]
    assert context["runAsUser"] != 0 and context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]} and context["allowPrivilegeEscalation"] is False
    assert plugin_container["command"][1:3] == ["serve", "--one-uid"]
    assert "--front-user" not in " ".join(plugin_container["command"])
    for other in pod["spec"]["containers"]:
        mounts = {m["name"] for m in other.get("volumeMounts", [])}
        assert ("approle" in mounts) == (other is plugin_container), other["name"]


def test_openshift_sidecar_is_valid_and_shares_the_socket_directory_with_the_apiserver():
    pod = load("openshift-sidecar-one-uid.yaml")
    validate(pod)
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    socket_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "kms-socket")
    assert socket_volume["emptyDir"] == {}  # default medium: a medium Memory emptyDir is refused (1777 tmpfs)
    mounts = {c["name"]: {m["name"]: m["mountPath"] for m in c["volumeMounts"]} for c in pod["spec"]["containers"]}
    assert mounts["kube-apiserver"]["kms-socket"] == mounts["vault-kube-kms"]["kms-socket"]
    listen = next(a for a in container(pod, "vault-kube-kms")["command"] if a.startswith("--listen-address="))
    endpoint = load("encryption-configuration.yaml")["resources"][0]["providers"][0]["kms"]["endpoint"]
    assert listen.split("=", 1)[1] == endpoint
    assert os.path.dirname(endpoint[len("unix://"):]) == mounts["kube-apiserver"]["kms-socket"]


def tcp_listener_inodes():
    """Socket inodes of every TCP socket in LISTEN state (IPv4 and IPv6) on this host."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    inodes.add(fields[9])
    return inodes


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def test_exec_probe_pod_differs_from_the_spawn_pod_only_in_ports_and_probes():
    """The no-TCP variant is the spawn Pod with both ports off and one exec readiness probe: no
    httpGet probe is left that would probe a port nobody serves."""
    variant, base = load(EXEC_PROBE_POD), load("vault-kube-kms-spawn.yaml")
    validate(variant)
    probed, spawn = container(variant, "vault-kube-kms"), container(base, "vault-kube-kms")
    assert probed["command"] == spawn["command"] + ["--health-port=0", "--metrics-port=0"]
    assert "startupProbe" not in probed and "livenessProbe" not in probed
    assert list(probed["readinessProbe"]["exec"]["command"][:2]) == [spawn["command"][0], "probe"]
    for key in ("startupProbe", "livenessProbe", "readinessProbe", "command"):
        probed.pop(key, None), spawn.pop(key, None)
    assert probed == spawn
    assert variant["spec"]["volumes"] == base["spec"]["volumes"]


def test_exec_probe_command_passes_on_a_live_plugin_fails_without_it_and_no_tcp_port_is_open(vault, tmp_path):
    """Runs the readiness command the variant Pod names (binary and socket path mapped to this
    test's) against a plugin started with the Pod's port flags: exit 0 while it serves, non-zero
    once it is gone; meanwhile neither process holds a listening TCP socket."""
    pod_container = container(load(EXEC_PROBE_POD), "vault-kube-kms")
    port_flags = [a for a in pod_container["command"] if a.startswith(("--health-port", "--metrics-port"))]
    assert port_flags == ["--health-port=0", "--metrics-port=0"]
    os.chmod(tmp_path, 0o755)
    running = plugin.Plugin(vault, str(tmp_path), extra_args=port_flags)
    probe = list(pod_container["readinessProbe"]["exec"]["command"])
    assert probe[0] == "/usr/bin/vault-kube-kms" and probe[2] == "--listen-address=unix:///var/run/kmsplugin/kms.sock"
    probe[0] = os.path.join(running.bin, "vault-kube-kms")
    probe[2] = f"--listen-address=unix://{running.socket}"
    timeout = pod_container["readinessProbe"]["timeoutSeconds"]
    try:
        listening = tcp_listener_inodes()
        for pid in (running.proc.pid, running.front_pid()):
            assert socket_inodes(pid) & listening == set(), f"pid {pid} listens on TCP"
        passed = subprocess.run(probe, capture_output=True, text=True, timeout=timeout)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        # In the Pod the probe runs under the container's Localhost seccomp profile: it must pass there too.
        enforce = [SYSTEM_PYTHON, os.path.join(SECCOMP, "enforce.py"), os.path.join(SECCOMP, "vault-kube-kms.json")]
        if subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode == 0:
            filtered = subprocess.run(enforce + ["--"] + probe, capture_output=True, text=True, timeout=timeout)
            assert filtered.returncode == 0, filtered.stdout + filtered.stderr
    finally:
        running.stop()
    failed = subprocess.run(probe, capture_output=True, text=True, timeout=timeout)
    assert failed.returncode != 0, failed.stdout + failed.stderr
