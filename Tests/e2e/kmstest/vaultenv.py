"""A Vault for the e2e suites, chosen by one environment variable, KMS_E2E_VAULT:
- `openbao` (the default): a real OpenBao 2.7.2 dev server started by the suite (Tests/e2e/kmstest/openbao.py);
- `simulator`: Tests/vaultsim, for what no real server can do (a controllable clock, injected
  answers, Enterprise personalities, standby redirects); tests that need such a power carry the
  `simulator_only("...")` marker, which names it, and are skipped in the other modes;
- `external`: the Vault or OpenBao named by VAULT_ADDR and VAULT_TOKEN (mounts get unique names and
  are removed afterwards).
Configured only through Vault's own HTTP API (with hvac), exactly as an operator would, so the same
set-up runs against any of them."""
import os
import re
import secrets
import signal
import subprocess
import time
import uuid

import hvac

from . import simctl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SIMULATOR = os.path.join(ROOT, "Tests", "vaultsim", "vault-sim")

POLICY_TEMPLATE = """
path "{mount}/encrypt/{key}" {{ capabilities = ["update"] }}
path "{mount}/decrypt/{key}" {{ capabilities = ["update"] }}
path "{mount}/keys/{key}" {{ capabilities = ["read"] }}
path "sys/license/status" {{ capabilities = ["read"] }}
"""


MODE_VARIABLE = "KMS_E2E_VAULT"
MODES = ("openbao", "simulator", "external")


def mode():
    """The Vault the shared `vault_server` fixture gives: openbao (default), simulator or external."""
    value = os.environ.get(MODE_VARIABLE, "").strip() or "openbao"
    if value not in MODES:
        raise RuntimeError(f"{MODE_VARIABLE}={value!r}: expected one of {', '.join(MODES)}")
    if value == "external" and not (os.environ.get("VAULT_ADDR") and os.environ.get("VAULT_TOKEN")):
        raise RuntimeError(f"{MODE_VARIABLE}=external needs VAULT_ADDR and VAULT_TOKEN")
    return value


def is_external():
    return mode() == "external"


class ExternalVault:
    """The Vault named by VAULT_ADDR and VAULT_TOKEN; the suite cannot seal or restart it."""

    def __init__(self):
        self.address = os.environ["VAULT_ADDR"]
        self.root_token = os.environ["VAULT_TOKEN"]
        self.unseal_key = None

    def stop(self):
        pass


def start_server(workdir, **openbao_options):
    """A fresh Vault of the current mode for a test that needs its own: an OpenBao dev server
    (openbao_options go to openbao.OpenBaoServer), a simulator, or the external Vault."""
    current = mode()
    if current == "external":
        return ExternalVault()
    if current == "simulator":
        return SimulatorProcess()
    from . import openbao  # noqa: PLC0415 - only this mode needs the binary
    return openbao.OpenBaoServer(workdir, **openbao_options)


class SimulatorProcess:
    """The Vault simulator started like `vault server -dev`."""

    def __init__(self, root_token="ROOT", extra_args=(), env=None):
        self.root_token = root_token
        args = [SIMULATOR, "server", "-dev", f"-dev-root-token-id={root_token}", "-dev-listen-address=127.0.0.1:0"]
        self.proc = subprocess.Popen(
            args + list(extra_args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})})
        self.address = None
        self.unseal_key = None
        deadline = time.time() + 20
        lines = []
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"Unseal Key: (\S+)", line)
            if found:
                self.unseal_key = found.group(1)
            found = re.search(r"Listening on (http\S+)", line)
            if found:
                self.address = found.group(1)
                break
        if not self.address:
            self.stop()
            raise RuntimeError("simulator did not start:\n" + "".join(lines))

    def request_counts(self):
        """{path: requests} the simulator served (/_sim/stats)."""
        return simctl.request_counts(self.address)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class VaultSetup:
    """Transit key, least-privilege policy and AppRole, created through the HTTP API."""

    def __init__(self, address, root_token, tmpdir, verify=None, cert=None, namespace=None, create_key=True):
        """create_key=False: the Transit mount only (a key restored from a backup goes there)."""
        self.address = address
        self.root = hvac.Client(
            url=address, token=root_token, verify=True if verify is None else verify, cert=cert, namespace=namespace)
        suffix = uuid.uuid4().hex[:8]
        self.shared = is_external()
        self.mount = f"kms-transit-{suffix}" if self.shared else "transit"
        self.auth_mount = f"kms-approle-{suffix}" if self.shared else "approle"
        self.key = "kek"
        self.policy = f"kms-{suffix}"
        self.role = "kms"
        self.root.sys.enable_secrets_engine("transit", path=self.mount)
        if create_key:
            self.root.secrets.transit.create_key(name=self.key, key_type="aes256-gcm96", mount_point=self.mount)
        self.root.sys.create_or_update_policy(
            name=self.policy, policy=POLICY_TEMPLATE.format(mount=self.mount, key=self.key))
        self.root.sys.enable_auth_method("approle", path=self.auth_mount)
        self.root.auth.approle.create_or_update_approle(
            role_name=self.role, token_policies=[self.policy], token_ttl="1h", token_max_ttl="4h",
            mount_point=self.auth_mount)
        self.role_id = self.root.auth.approle.read_role_id(self.role, mount_point=self.auth_mount)["data"]["role_id"]
        self.secret_dir = os.path.join(tmpdir, "secret")
        os.mkdir(self.secret_dir, 0o700)
        self.secret_id_path = os.path.join(self.secret_dir, "secret-id")
        self.secret_id = self.new_secret_id()
        self.write_secret_id(self.secret_id)

    @property
    def key_path(self):
        return f"{self.mount}/keys/{self.key}"

    def new_secret_id(self):
        return self.root.auth.approle.generate_secret_id(self.role, mount_point=self.auth_mount)["data"]["secret_id"]

    def write_secret_id(self, value, mode=0o400):
        tmp = self.secret_id_path + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.chmod(tmp, mode)
        os.replace(tmp, self.secret_id_path)

    def rotate_key(self):
        self.root.secrets.transit.rotate_key(name=self.key, mount_point=self.mount)

    def teardown(self):
        if self.shared:
            for call in (lambda: self.root.sys.disable_secrets_engine(self.mount),
                         lambda: self.root.sys.disable_auth_method(self.auth_mount),
                         lambda: self.root.sys.delete_policy(self.policy)):
                try:
                    call()
                except Exception:  # noqa: BLE001 - best-effort cleanup of a real Vault
                    pass


def random_token():
    return secrets.token_hex(8)
