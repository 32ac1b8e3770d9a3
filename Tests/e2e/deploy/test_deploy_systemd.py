"""The shipped systemd units: hardening scored by `systemd-analyze security --offline=true`,
`systemd-analyze verify` silent, sysusers.d and tmpfiles.d applied to a scratch root, and the
spawn unit using only flags the binary has."""
import configparser
import os
import re
import shutil
import subprocess

import pytest

from kmstest import plugin

ROOT = plugin.ROOT
UNITS = os.path.join(ROOT, "systemd")
SERVICES = {"vault-kube-kms-front.service": 1.5, "vault-kube-kms-broker.service": 2.5, "vault-kube-kms.service": 2.5}
SOCKETS = ("vault-kube-kms-broker.socket", "vault-kube-kms-front.socket")
# The hardening issue 5 lists, required in every service unit.
REQUIRED = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "LimitCORE": "0", "RestrictRealtime": "yes",
    "SystemCallArchitectures": "native", "UMask": "0077", "Type": "notify", "Restart": "on-failure",
    "IPAddressDeny": "any", "IPAddressAllow": "localhost",
}

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")


def unit(name):
    """The unit as {section: {key: [values]}} (systemd keys may repeat)."""
    sections, current = {}, None
    text = open(os.path.join(UNITS, name)).read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def exposure(path):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", path],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_exposure_is_within_its_target(name):
    score = exposure(os.path.join(UNITS, name))
    assert score <= SERVICES[name], f"{name}: exposure {score} > {SERVICES[name]}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_every_required_hardening_directive(name):
    service = unit(name)["Service"]
    for key, value in REQUIRED.items():
        assert value in service.get(key, []), f"{name}: {key}={value} missing"
    assert service.get("WatchdogSec"), name
    assert any(v.startswith("@system-service") for v in service["SystemCallFilter"]), name
    assert any(v.startswith("~") for v in service["SystemCallFilter"]), name


def test_split_units_hold_no_capability_and_front_is_unix_and_loopback_only():
    for name in ("vault-kube-kms-front.service", "vault-kube-kms-broker.service"):
        service = unit(name)["Service"]
        assert service["CapabilityBoundingSet"] == [""], name
        assert service["AmbientCapabilities"] == [""], name
    front = unit("vault-kube-kms-front.service")["Service"]
    assert front["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "EnvironmentFile" not in front and "LoadCredential" not in front


def test_spawn_unit_keeps_only_the_privilege_drop_capabilities():
    service = unit("vault-kube-kms.service")["Service"]
    assert set(service["CapabilityBoundingSet"][0].split()) == {"CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL"}
    assert service["AmbientCapabilities"] == [""]
    assert "User" not in service  # root, bounded: the broker refuses to spawn from another uid
    assert service["SupplementaryGroups"] == ["vault-kube-kms-clients"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_spawn_works_with_exactly_the_units_privileges(vault, tmp_path):
    """The spawn unit's privileges, reproduced with setpriv: root with the unit's bounding set
    only, no-new-privs, the socket group as a supplementary group (no CAP_CHOWN). The plugin
    serves, the socket has that group, and the front ends with no capability at all."""
    service = unit("vault-kube-kms.service")["Service"]
    caps = ",".join("+" + c[len("CAP_"):].lower() for c in service["CapabilityBoundingSet"][0].split())
    group = "4242"  # stands in for vault-kube-kms-clients
    os.chmod(tmp_path, 0o755)
    wrapper = tmp_path / "unit-privileges"
    wrapper.write_text(f"#!/bin/sh\nexec setpriv --reuid=0 --regid=0 --groups={group} --inh-caps=-all "
                       f"--bounding-set=-all,{caps} --no-new-privs \"$@\"\n")
    wrapper.chmod(0o755)
    real = plugin.installed_bin_dir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(mode=0o755)
    launcher = bin_dir / "vault-kube-kms"
    launcher.write_text(f"#!/bin/sh\nexec {wrapper} {real}/vault-kube-kms --front-executable "
                        f"{real}/vault-kube-kms-front \"$@\"\n")
    launcher.chmod(0o755)
    original = plugin.installed_bin_dir
    plugin._installed = str(bin_dir)
    try:
        running = plugin.Plugin(vault, str(tmp_path), extra_args=(
            "--socket-group", group, "--socket-mode", "0660", "--front-user", "65533"))
    finally:
        plugin._installed = real
    try:
        assert os.stat(running.socket).st_gid == int(group)
        broker = running.proc.pid
        assert plugin.proc_status(broker)["CapBnd"] == "00000000000001e0"  # kill, setgid, setuid, setpcap
        front = plugin.proc_status(running.front_pid())
        assert (front["Uid"].split()[0], front["CapEff"], front["CapBnd"]) == ("65533", "0" * 16, "0" * 16)
    finally:
        # A clean exit proves the broker could signal the front (another uid) to stop it.
        assert running.stop() == 0, running.log_text()[-2000:]
    assert original is plugin.installed_bin_dir


@pytest.mark.parametrize("name", ["vault-kube-kms.service", "vault-kube-kms-broker.service"])
def test_broker_units_take_the_secret_id_as_a_credential(name):
    service = unit(name)["Service"]
    assert service["LoadCredential"] == ["secret-id:/etc/vault-kube-kms/secret-id"]
    assert "--approle-secret-id-path %d/secret-id" in service["ExecStart"][0]
    assert service["EnvironmentFile"] == ["/etc/vault-kube-kms/vault-kube-kms.env"]


def test_sockets_have_the_documented_types_owners_and_modes():
    broker = unit("vault-kube-kms-broker.socket")["Socket"]
    assert broker["ListenSequentialPacket"] == ["/run/vault-kube-kms/broker.sock"]
    assert (broker["SocketUser"], broker["SocketGroup"], broker["SocketMode"]) == (
        ["vault-kube-kms"], ["vault-kube-kms-front"], ["0660"])
    front = unit("vault-kube-kms-front.socket")["Socket"]
    assert front["ListenStream"] == ["/run/kmsplugin/kms.sock"]
    assert front["SocketMode"] == ["0660"]
    for name in ("vault-kube-kms-front.service", "vault-kube-kms-front.socket", "vault-kube-kms.service"):
        assert "kubelet.service" in unit(name)["Unit"]["Before"][0], name


def test_systemd_analyze_verify_prints_nothing(tmp_path):
    """verify needs the referenced binaries: the copies point ExecStart at the built ones."""
    bin_dir = plugin.installed_bin_dir()
    names = sorted(SERVICES) + list(SOCKETS)
    for name in names:
        text = open(os.path.join(UNITS, name)).read().replace("/usr/local/bin/", bin_dir + "/")
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", *[str(tmp_path / n) for n in names]],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_verify_catches_a_broken_unit(tmp_path):
    """The verify check above can fail: a misspelt directive is reported."""
    text = open(os.path.join(UNITS, "vault-kube-kms-front.service")).read()
    text = text.replace("/usr/local/bin/", plugin.installed_bin_dir() + "/").replace("ProtectHome=", "ProtectHom=")
    (tmp_path / "broken.service").write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "broken.service")],
                            capture_output=True, text=True, timeout=60)
    assert "ProtectHom" in result.stderr


def test_sysusers_and_tmpfiles_create_users_and_private_directories(tmp_path):
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", os.path.join(UNITS, "vault-kube-kms.sysusers.conf")],
                   check=True, capture_output=True, timeout=60)
    users = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: int(line.split(":")[2]) for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert {"vault-kube-kms", "vault-kube-kms-front"} <= users.keys()
    assert users["vault-kube-kms"][2] != users["vault-kube-kms-front"][2]
    assert users["vault-kube-kms-front"][6] == "/usr/sbin/nologin"
    subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create",
                    os.path.join(UNITS, "vault-kube-kms.tmpfiles.conf")], check=True, capture_output=True, timeout=60)
    run_dir = os.stat(tmp_path / "run/vault-kube-kms")
    assert (oct(run_dir.st_mode & 0o7777), run_dir.st_uid, run_dir.st_gid) == (
        "0o750", int(users["vault-kube-kms"][2]), groups["vault-kube-kms-front"])
    assert oct(os.stat(tmp_path / "etc/vault-kube-kms").st_mode & 0o7777) == "0o700"
    kms_dir = os.stat(tmp_path / "run/kmsplugin")
    assert kms_dir.st_gid == groups["vault-kube-kms-clients"]


# Flags of `vault-kube-kms broker` (split topology, issue 4); checked against `broker --help`
# once that subcommand exists in the built binary.
SPLIT_ONLY = {"--allowed-front-uid", "--allowed-front-gid", "--broker-listen-address"}


def help_text(*subcommand):
    return subprocess.run([os.path.join(plugin.installed_bin_dir(), "vault-kube-kms"), *subcommand, "--help"],
                          capture_output=True, text=True, timeout=30).stdout


def test_spawn_unit_and_environment_file_use_only_flags_the_binary_accepts():
    serve = help_text("serve")
    broker = help_text("broker")
    broker = broker if "--broker-listen-address" in broker else None
    exec_start = unit("vault-kube-kms.service")["Service"]["ExecStart"][0]
    flags = re.findall(r"(--[a-z-]+)", exec_start)
    assert flags
    for flag in flags:
        assert flag in serve, flag
    env_flags = []
    for line in open(os.path.join(UNITS, "vault-kube-kms.env")).read().splitlines():
        found = re.match(r"#?(VAULT_KUBE_KMS_[A-Z_]+)=", line)
        if found:
            env_flags.append("--" + found.group(1)[len("VAULT_KUBE_KMS_"):].lower().replace("_", "-"))
    assert "--vault-address" in env_flags
    for flag in env_flags:
        if flag in SPLIT_ONLY:
            assert broker is None or flag in broker, flag
        else:
            assert flag in serve, flag
    broker_flags = re.findall(r"(--[a-z-]+)", unit("vault-kube-kms-broker.service")["Service"]["ExecStart"][0])
    for flag in broker_flags:
        assert flag in SPLIT_ONLY or flag in serve or (broker and flag in broker), flag
