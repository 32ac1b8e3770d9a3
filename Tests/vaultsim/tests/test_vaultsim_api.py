"""Shape tests for the Vault simulator (Tests/vaultsim), driven by hvac, an independent Vault client.

Each test starts from the simulator's command line exactly as the e2e suites do (port 0, the
``Listening on`` line parsed for the real port) and checks one behaviour the plugin relies on:
the shapes and error strings of ../shared/reference/vault-api.md, ACL enforcement, AppRole and
token lifecycles, seal, editions and namespaces, fault injection, statistics and the audit log.

Run: cd /work/main && python3 -m pytest -q Tests/vaultsim/tests/test_vaultsim_api.py
"""

from __future__ import annotations

import base64
import datetime
import http.client
import itertools
import json
import os
import pathlib
import queue
import re
import subprocess
import sys
import threading
import time
import uuid

import hvac
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from hvac import exceptions as hx

pytestmark = pytest.mark.simulator_only("own API: these tests check the simulator itself")

SIM = pathlib.Path(__file__).resolve().parents[1] / "vault-sim"
ROOT = "root-test-token"
START_TIMEOUT_S = 15
LISTENING = re.compile(r"^==> Vault server started! Listening on (https?://\S+)$")

PERMISSION_DENIED = "1 error occurred:\n\t* permission denied\n\n"
INVALID_TOKEN = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
UNSUPPORTED_PATH = "1 error occurred:\n\t* unsupported path\n\n"
UNSUPPORTED_OPERATION = "1 error occurred:\n\t* unsupported operation\n\n"

_counter = itertools.count(1)


def uniq(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -------------------------------------------------------------------------------------------------
# Starting simulators


class Sim:
    def __init__(self, proc: subprocess.Popen, lines: "queue.Queue[str]", verify=None):
        self.proc = proc
        self.lines = lines
        self.verify = verify
        self.banner: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT_S
        self.addr = ""
        while not self.addr:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise RuntimeError("vault-sim did not print its Listening line:\n" + "\n".join(self.banner))
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("vault-sim exited early:\n" + "\n".join(self.banner))
            self.banner.append(line)
            m = LISTENING.match(line)
            if m:
                self.addr = m.group(1)
        text = "\n".join(self.banner)
        self.unseal_key = re.search(r"^Unseal Key: (\S+)$", text, re.M).group(1)
        self.root_token = re.search(r"^Root Token: (\S+)$", text, re.M).group(1)

    def client(self, token: str | None = ROOT, namespace: str | None = None, **kw) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token, namespace=namespace,
                           verify=self.verify if self.verify else True, **kw)

    def url(self, path: str) -> str:
        return self.addr + path

    def control(self, path: str, doc: dict | None = None) -> requests.Response:
        if doc is None:
            return requests.get(self.url("/_sim/" + path), verify=self.verify or True, timeout=5)
        return requests.post(self.url("/_sim/" + path), json=doc, verify=self.verify or True, timeout=5)

    def stats(self) -> dict:
        return self.control("stats").json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sim(*args: str, env: dict | None = None, verify=None) -> Sim:
    cmd = [sys.executable, str(SIM), "server", "-dev", f"-dev-root-token-id={ROOT}",
           "-dev-listen-address=127.0.0.1:0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    lines: "queue.Queue[str | None]" = queue.Queue()

    def drain() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    return Sim(proc, lines, verify=verify)


@pytest.fixture(scope="module")
def sim():
    s = start_sim()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def enterprise():
    s = start_sim("-edition=enterprise")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def openbao():
    s = start_sim("--edition=openbao")
    yield s
    s.stop()


@pytest.fixture
def make_sim():
    started: list[Sim] = []

    def make(*args: str, **kw) -> Sim:
        s = start_sim(*args, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def faults(sim):
    """The shared simulator, with every fault rule cleared afterwards."""
    yield sim
    assert sim.control("faults", {"clear": True}).status_code == 204


@pytest.fixture
def transit(sim):
    """A fresh transit mount with one aes256-gcm96 key named "kek"; yields the mount path."""
    mount = uniq("transit")
    c = sim.client()
    c.sys.enable_secrets_engine("transit", path=mount)
    c.secrets.transit.create_key("kek", mount_point=mount)
    return mount


def setup_approle(client: hvac.Client, policies: list[str], mount: str | None = None,
                  role: str = "kms", **role_args) -> tuple[str, str, str]:
    """Enable AppRole, create a role; return (mount, role_id, secret_id)."""
    mount = mount or uniq("approle")
    client.sys.enable_auth_method("approle", path=mount)
    client.auth.approle.create_or_update_approle(role, token_policies=policies, mount_point=mount,
                                                 **role_args)
    role_id = client.auth.approle.read_role_id(role, mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(role, mount_point=mount)["data"]["secret_id"]
    return mount, role_id, secret_id


def login(client: hvac.Client, mount: str, role_id: str, secret_id: str) -> dict:
    return client.auth.approle.login(role_id, secret_id, mount_point=mount, use_token=False)


def token_with_policy(sim: Sim, hcl: str, **create_args) -> str:
    name = uniq("pol")
    c = sim.client()
    c.sys.create_or_update_acl_policy(name, hcl)
    return c.auth.token.create(policies=[name], ttl="1h", **create_args)["auth"]["client_token"]


# -------------------------------------------------------------------------------------------------
# Start-up, health, envelope, HTTP behaviour


def test_dev_banner_prints_unseal_key_root_token_and_listening_address(sim):
    assert sim.root_token == ROOT
    assert len(base64.b64decode(sim.unseal_key, validate=True)) == 32
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.addr)
    assert int(sim.addr.rsplit(":", 1)[1]) != 0


def test_health_needs_no_token_and_has_no_envelope(sim):
    r = requests.get(sim.url("/v1/sys/health"), timeout=5)
    assert r.status_code == 200
    body = r.json()
    for field in ("initialized", "sealed", "standby", "performance_standby",
                  "replication_performance_mode", "replication_dr_mode", "server_time_utc",
                  "version", "cluster_name", "cluster_id", "enterprise"):
        assert field in body, field
    assert body["initialized"] is True and body["sealed"] is False and body["standby"] is False
    assert body["enterprise"] is False
    assert "request_id" not in body
    assert sim.client(token=None).sys.read_health_status(method="GET")["initialized"] is True


def test_success_answer_has_vault_envelope_json_and_no_store(sim, transit):
    r = requests.post(sim.url(f"/v1/{transit}/encrypt/kek"), headers={"X-Vault-Token": ROOT},
                      json={"plaintext": b64(b"x")}, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    assert int(r.headers["Content-Length"]) == len(r.content)
    body = r.json()
    assert set(body) == {"request_id", "lease_id", "renewable", "lease_duration", "data",
                         "wrap_info", "warnings", "auth", "mount_type"}
    uuid.UUID(body["request_id"])
    assert body["lease_id"] == "" and body["renewable"] is False and body["lease_duration"] == 0
    assert body["wrap_info"] is None and body["warnings"] is None and body["auth"] is None
    assert body["mount_type"] == "transit"


def test_keep_alive_serves_several_requests_on_one_connection(sim):
    host, port = sim.addr.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/v1/sys/health")
    conn.getresponse().read()
    first_socket = conn.sock
    for _ in range(3):
        conn.request("PUT", "/v1/auth/token/lookup-self", headers={"X-Vault-Token": ROOT})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["data"]["id"] == ROOT
        conn.request("PUT", f"/v1/sys/policies/acl/{uniq('ka')}", headers={"X-Vault-Token": ROOT},
                     body=json.dumps({"policy": 'path "x" { capabilities = ["read"] }'}))
        resp = conn.getresponse()
        assert resp.status == 204 and resp.read() == b"" and resp.getheader("Content-Length") is None
    assert conn.sock is first_socket
    conn.close()


def test_token_is_accepted_from_authorization_bearer_header(sim):
    r = requests.get(sim.url("/v1/auth/token/lookup-self"),
                     headers={"Authorization": f"Bearer {ROOT}"}, timeout=5)
    assert r.status_code == 200 and r.json()["data"]["policies"] == ["root"]


def test_missing_and_unknown_tokens_are_403_with_vault_texts(sim):
    r = requests.get(sim.url("/v1/auth/token/lookup-self"), timeout=5)
    assert r.status_code == 403 and r.json()["errors"] == [PERMISSION_DENIED]
    with pytest.raises(hx.Forbidden) as exc:
        sim.client(token="hvs.nosuchtoken").auth.token.lookup_self()
    assert exc.value.errors == [INVALID_TOKEN]


def test_unknown_mount_path_and_method_answer_404_and_405(sim, transit):
    c = sim.client()
    with pytest.raises(hx.InvalidPath) as exc:
        c.adapter.get("/v1/nowhere/at/all")
    assert exc.value.errors == ['no handler for route "nowhere/at/all". route entry not found.']
    with pytest.raises(hx.InvalidPath) as exc:
        c.adapter.get(f"/v1/{transit}/no-such-endpoint")
    assert exc.value.errors == [UNSUPPORTED_PATH]
    r = requests.delete(sim.url(f"/v1/{transit}/encrypt/kek"), headers={"X-Vault-Token": ROOT},
                        timeout=5)
    assert r.status_code == 405 and r.json() == {"errors": [UNSUPPORTED_OPERATION]}


# -------------------------------------------------------------------------------------------------
# Mounts and policies


def test_enabling_transit_and_approle_answers_204_and_second_mount_is_400(sim):
    c = sim.client()
    mount, auth = uniq("transit"), uniq("approle")
    assert c.sys.enable_secrets_engine("transit", path=mount).status_code == 204
    with pytest.raises(hx.InvalidRequest) as exc:
        c.sys.enable_secrets_engine("transit", path=mount)
    assert exc.value.errors == [f"path is already in use at {mount}/"]
    assert c.sys.list_mounted_secrets_engines()["data"][f"{mount}/"]["type"] == "transit"
    assert c.sys.enable_auth_method("approle", path=auth).status_code == 204
    assert c.sys.list_auth_methods()["data"][f"{auth}/"]["type"] == "approle"


def test_transit_mount_with_slashes_resolves_by_longest_prefix(sim):
    c = sim.client()
    base = uniq("kms")
    c.sys.enable_secrets_engine("transit", path=f"{base}/transit")
    c.secrets.transit.create_key("kek", mount_point=f"{base}/transit")
    ct = c.secrets.transit.encrypt_data("kek", b64(b"hi"), mount_point=f"{base}/transit")
    assert ct["data"]["ciphertext"].startswith("vault:v1:")
    with pytest.raises(hx.InvalidRequest, match="path is already in use"):
        c.sys.enable_secrets_engine("transit", path=base)


def test_acl_policy_write_is_204_and_reads_back_verbatim(sim):
    c = sim.client()
    name = uniq("kms-policy")
    hcl = 'path "transit/encrypt/kek" {\n  capabilities = ["update"]\n}\n'
    assert c.sys.create_or_update_acl_policy(name, hcl).status_code == 204
    assert c.sys.read_acl_policy(name)["data"] == {"name": name, "policy": hcl}
    assert c.sys.read_policy(name)["data"]["rules"] == hcl
    assert name in c.sys.list_acl_policies()["data"]["keys"]
    with pytest.raises(hx.InvalidRequest, match="failed to parse policy"):
        c.sys.create_or_update_acl_policy(uniq("broken"), 'path "x" { capabilities = ["fly"] }')


# -------------------------------------------------------------------------------------------------
# AppRole and tokens


def test_approle_login_issues_service_token_with_role_policies_and_ttl(sim):
    c = sim.client()
    c.sys.create_or_update_acl_policy("kms-enc", 'path "transit/encrypt/kek" { capabilities = ["update"] }')
    mount, role_id, _ = setup_approle(c, ["kms-enc"], token_ttl="1h", token_max_ttl="2h")
    uuid.UUID(role_id)
    secret = c.auth.approle.generate_secret_id("kms", mount_point=mount)["data"]
    assert set(secret) == {"secret_id", "secret_id_accessor", "secret_id_ttl", "secret_id_num_uses"}
    answer = login(c, mount, role_id, secret["secret_id"])
    assert answer["data"] is None
    auth = answer["auth"]
    assert re.fullmatch(r"hvs\.[A-Za-z0-9_-]{24}", auth["client_token"])
    assert auth["policies"] == ["default", "kms-enc"]
    assert auth["token_policies"] == ["default", "kms-enc"]
    assert auth["metadata"] == {"role_name": "kms"}
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True and auth["orphan"] is True
    assert auth["token_type"] == "service" and auth["mfa_requirement"] is None
    assert auth["num_uses"] == 0 and auth["accessor"]
    uuid.UUID(auth["entity_id"])
    second = login(c, mount, role_id, secret["secret_id"])["auth"]
    assert second["client_token"] != auth["client_token"]
    assert second["entity_id"] == auth["entity_id"]


def test_failed_login_is_400_invalid_role_or_secret_id(sim):
    c = sim.client()
    mount, role_id, _ = setup_approle(c, ["default"])
    with pytest.raises(hx.InvalidRequest) as exc:
        login(c, mount, role_id, "not-the-secret")
    assert exc.value.errors == ["invalid role or secret ID"]
    with pytest.raises(hx.InvalidRequest) as exc:
        login(c, mount, str(uuid.uuid4()), "whatever")
    assert exc.value.errors == ["invalid role or secret ID"]


def test_lookup_self_reports_ttl_expire_time_policies_and_path(sim):
    c = sim.client()
    mount, role_id, secret_id = setup_approle(c, ["kms-x"], token_ttl="1h")
    token = login(c, mount, role_id, secret_id)["auth"]["client_token"]
    data = sim.client(token).auth.token.lookup_self()["data"]
    for field in ("accessor", "creation_time", "creation_ttl", "expire_time", "explicit_max_ttl",
                  "id", "issue_time", "meta", "num_uses", "orphan", "path", "policies",
                  "renewable", "ttl", "type"):
        assert field in data, field
    assert data["id"] == token and data["type"] == "service"
    assert data["policies"] == ["default", "kms-x"]
    assert data["path"] == f"auth/{mount}/login"
    assert data["meta"] == {"role_name": "kms"}
    assert data["creation_ttl"] == 3600 and 3590 <= data["ttl"] <= 3600
    expire = datetime.datetime.fromisoformat(data["expire_time"].replace("Z", "+00:00"))
    assert abs(expire.timestamp() - (time.time() + data["ttl"])) < 5
    assert isinstance(data["creation_time"], int)


def test_renew_self_is_capped_at_token_max_ttl_with_warning(sim):
    c = sim.client()
    mount, role_id, secret_id = setup_approle(c, ["default"], token_ttl="60s", token_max_ttl="2m")
    token = login(c, mount, role_id, secret_id)["auth"]["client_token"]
    tc = sim.client(token)
    small = tc.auth.token.renew_self(increment="30s")
    assert small["auth"]["lease_duration"] == 30 and small["warnings"] is None
    capped = tc.auth.token.renew_self(increment=3600)
    assert 110 <= capped["auth"]["lease_duration"] <= 120
    assert len(capped["warnings"]) == 1
    assert re.fullmatch(r'TTL of "1h" exceeded the effective max_ttl of "(1m\d+s|2m)"; '
                        r'TTL value is capped accordingly', capped["warnings"][0])
    assert capped["auth"]["client_token"] == token


def test_default_policy_lets_any_token_look_up_renew_and_revoke_itself(sim):
    token = token_with_policy(sim, 'path "nothing/*" { capabilities = ["read"] }')
    tc = sim.client(token)
    assert tc.auth.token.lookup_self()["data"]["id"] == token
    assert tc.auth.token.renew_self(increment="10m")["auth"]["lease_duration"] == 600
    with pytest.raises(hx.Forbidden) as exc:
        tc.auth.token.create(policies=["default"])
    assert exc.value.errors == [PERMISSION_DENIED]
    assert tc.auth.token.revoke_self().status_code == 204
    with pytest.raises(hx.Forbidden) as exc:
        tc.auth.token.lookup_self()
    assert exc.value.errors == [INVALID_TOKEN]


def test_root_revoke_ends_a_token_at_once(sim):
    token = token_with_policy(sim, 'path "x" { capabilities = ["read"] }')
    assert sim.client().auth.token.revoke(token).status_code == 204
    with pytest.raises(hx.Forbidden):
        sim.client(token).auth.token.lookup_self()


def test_secret_id_num_uses_is_consumed_per_login_then_rejected(sim):
    c = sim.client()
    mount, role_id, secret_id = setup_approle(c, ["default"], secret_id_num_uses=2)
    lookup = c.auth.approle.read_secret_id("kms", secret_id, mount_point=mount)["data"]
    assert lookup["secret_id_num_uses"] == 2
    login(c, mount, role_id, secret_id)
    login(c, mount, role_id, secret_id)
    with pytest.raises(hx.InvalidRequest) as exc:
        login(c, mount, role_id, secret_id)
    assert exc.value.errors == ["invalid role or secret ID"]


def test_token_num_uses_revokes_the_token_after_its_last_use(sim):
    c = sim.client()
    mount, role_id, secret_id = setup_approle(c, ["default"], token_num_uses=2)
    token = login(c, mount, role_id, secret_id)["auth"]["client_token"]
    tc = sim.client(token)
    assert tc.auth.token.lookup_self()["data"]["num_uses"] == 1
    tc.auth.token.lookup_self()
    with pytest.raises(hx.Forbidden) as exc:
        tc.auth.token.lookup_self()
    assert exc.value.errors == [INVALID_TOKEN]


def test_expired_token_is_invalid_everywhere_including_renew_self(sim, transit):
    c = sim.client()
    c.sys.create_or_update_acl_policy("short", f'path "{transit}/encrypt/*" {{ capabilities = ["update"] }}')
    mount, role_id, secret_id = setup_approle(c, ["short"], token_ttl=1)
    answer = login(c, mount, role_id, secret_id)
    assert answer["auth"]["lease_duration"] == 1
    tc = sim.client(answer["auth"]["client_token"])
    tc.secrets.transit.encrypt_data("kek", b64(b"ok"), mount_point=transit)
    time.sleep(1.3)
    for call in (tc.auth.token.lookup_self, lambda: tc.auth.token.renew_self(increment=60),
                 lambda: tc.secrets.transit.encrypt_data("kek", b64(b"late"), mount_point=transit)):
        with pytest.raises(hx.Forbidden) as exc:
            call()
        assert exc.value.errors == [INVALID_TOKEN]


def test_lockout_after_five_failed_logins_is_403_until_it_expires(make_sim):
    s = make_sim(env={"VAULTSIM_LOCKOUT_SECONDS": "2"})
    c = s.client()
    mount, role_id, secret_id = setup_approle(c, ["default"])
    for _ in range(5):
        with pytest.raises(hx.InvalidRequest, match="invalid role or secret ID"):
            login(c, mount, role_id, "wrong")
    with pytest.raises(hx.Forbidden) as exc:
        login(c, mount, role_id, secret_id)  # the right secret, but the role_id is locked
    assert "permission denied" in exc.value.errors[0]
    time.sleep(2.2)
    assert login(c, mount, role_id, secret_id)["auth"]["client_token"].startswith("hvs.")


def test_lockout_threshold_comes_from_the_environment(make_sim):
    s = make_sim(env={"VAULTSIM_LOCKOUT_THRESHOLD": "2"})
    c = s.client()
    mount, role_id, secret_id = setup_approle(c, ["default"])
    for _ in range(2):
        with pytest.raises(hx.InvalidRequest):
            login(c, mount, role_id, "wrong")
    with pytest.raises(hx.Forbidden):
        login(c, mount, role_id, secret_id)


def test_secret_id_ttl_and_token_ttl_expire_when_the_sim_clock_advances(make_sim):
    s = make_sim()
    c = s.client()
    mount, role_id, secret_id = setup_approle(c, ["default"], secret_id_ttl="60s", token_ttl="30s")
    token = login(c, mount, role_id, secret_id)["auth"]["client_token"]
    assert s.control("clock", {"advance": 61}).json()["offset"] == 61
    with pytest.raises(hx.Forbidden):
        s.client(token).auth.token.lookup_self()
    with pytest.raises(hx.InvalidRequest, match="invalid role or secret ID"):
        login(c, mount, role_id, secret_id)


# -------------------------------------------------------------------------------------------------
# ACL enforcement


def test_policy_denied_path_is_403_permission_denied(sim, transit):
    token = token_with_policy(sim, f'''
        path "{transit}/encrypt/kek" {{ capabilities = ["update"] }}
        path "{transit}/keys/kek"    {{ capabilities = ["read"] }}
    ''')
    tc = sim.client(token)
    tc.secrets.transit.encrypt_data("kek", b64(b"ok"), mount_point=transit)
    assert tc.secrets.transit.read_key("kek", mount_point=transit)["data"]["name"] == "kek"
    for call in (lambda: tc.secrets.transit.rotate_key("kek", mount_point=transit),
                 lambda: tc.secrets.transit.decrypt_data("kek", "vault:v1:AAAA", mount_point=transit),
                 lambda: tc.sys.enable_secrets_engine("transit", path=uniq("nope"))):
        with pytest.raises(hx.Forbidden) as exc:
            call()
        assert exc.value.errors == [PERMISSION_DENIED]


def test_encrypt_to_missing_key_needs_create_capability_by_existence_check(sim, transit):
    c = sim.client()
    update_only = sim.client(token_with_policy(
        sim, f'path "{transit}/encrypt/*" {{ capabilities = ["update"] }}'))
    update_only.secrets.transit.encrypt_data("kek", b64(b"x"), mount_point=transit)
    with pytest.raises(hx.Forbidden) as exc:
        update_only.secrets.transit.encrypt_data("ghost", b64(b"x"), mount_point=transit)
    assert exc.value.errors == [PERMISSION_DENIED]
    with pytest.raises(hx.InvalidPath):
        c.secrets.transit.read_key("ghost", mount_point=transit)
    with_create = sim.client(token_with_policy(
        sim, f'path "{transit}/encrypt/*" {{ capabilities = ["create", "update"] }}'))
    with_create.secrets.transit.encrypt_data("ghost", b64(b"x"), mount_point=transit)
    assert c.secrets.transit.read_key("ghost", mount_point=transit)["data"]["type"] == "aes256-gcm96"


def test_policy_globs_segment_wildcards_and_deny_follow_vault_priority(sim):
    token = token_with_policy(sim, '''
        path "secret/*"            { capabilities = ["read"] }
        path "secret/+/team"       { capabilities = ["update"] }
        path "secret/private*"     { capabilities = ["deny"] }
        path "secret/exact"        { capabilities = ["list"] }
    ''')
    caps = sim.client(token).sys.get_capabilities(
        ["secret/a/b", "secret/x/team", "secret/private/k", "secret/exact", "other"])["data"]
    assert caps["secret/a/b"] == ["read"]
    assert caps["secret/x/team"] == ["update"]
    assert caps["secret/private/k"] == ["deny"]
    assert caps["secret/exact"] == ["list"]
    assert caps["other"] == ["deny"]


def test_capabilities_self_lists_per_path_and_copies_to_top_level(sim):
    token = token_with_policy(sim, '''
        path "transit/encrypt/kek" { capabilities = ["update"] }
        path "transit/keys/*"      { capabilities = ["read", "list"] }
    ''')
    paths = ["transit/encrypt/kek", "transit/keys/kek", "sys/mounts"]
    answer = sim.client(token).sys.get_capabilities(paths)
    assert answer["data"] == {"transit/encrypt/kek": ["update"],
                              "transit/keys/kek": ["list", "read"], "sys/mounts": ["deny"]}
    for path in paths:
        assert answer[path] == answer["data"][path]
    single = sim.client(token).sys.get_capabilities(["auth/token/lookup-self"])
    assert single["data"]["capabilities"] == ["read"]
    assert sim.client().sys.get_capabilities(["anything/at/all"])["data"]["anything/at/all"] == ["root"]


# -------------------------------------------------------------------------------------------------
# Transit


def test_key_read_has_every_reference_field_and_integer_creation_times(sim, transit):
    data = sim.client().secrets.transit.read_key("kek", mount_point=transit)["data"]
    for field in ("name", "type", "derived", "deletion_allowed", "exportable",
                  "allow_plaintext_backup", "latest_version", "min_available_version",
                  "min_decryption_version", "min_encryption_version", "supports_encryption",
                  "supports_decryption", "supports_signing", "supports_derivation",
                  "auto_rotate_period", "imported_key", "keys"):
        assert field in data, field
    assert data["type"] == "aes256-gcm96" and data["latest_version"] == 1
    assert data["min_decryption_version"] == 1 and data["min_encryption_version"] == 0
    assert list(data["keys"]) == ["1"] and isinstance(data["keys"]["1"], int)
    assert abs(data["keys"]["1"] - time.time()) < 60
    with pytest.raises(hx.InvalidPath) as exc:
        sim.client().secrets.transit.read_key("absent", mount_point=transit)
    assert exc.value.json == {"errors": []}


def test_encrypt_decrypt_round_trip_is_vault_v1_nonce_ciphertext_tag(sim, transit):
    c = sim.client()
    plaintext = os.urandom(32)
    answer = c.secrets.transit.encrypt_data("kek", b64(plaintext), mount_point=transit)["data"]
    assert set(answer) == {"ciphertext", "key_version"} and answer["key_version"] == 1
    ct = answer["ciphertext"]
    assert ct.startswith("vault:v1:")
    blob = base64.b64decode(ct[len("vault:v1:"):], validate=True)
    assert len(blob) == 12 + len(plaintext) + 16
    again = c.secrets.transit.encrypt_data("kek", b64(plaintext), mount_point=transit)["data"]
    assert again["ciphertext"] != ct
    out = c.secrets.transit.decrypt_data("kek", ct, mount_point=transit)["data"]
    assert set(out) == {"plaintext"} and base64.b64decode(out["plaintext"]) == plaintext


def test_ciphertext_is_real_aes_256_gcm_under_the_exported_key(sim):
    c = sim.client()
    mount = uniq("transit")
    c.sys.enable_secrets_engine("transit", path=mount)
    c.secrets.transit.create_key("exp", exportable=True, mount_point=mount)
    ct = c.secrets.transit.encrypt_data("exp", b64(b"seed"), mount_point=mount)["data"]["ciphertext"]
    exported = c.secrets.transit.export_key("exp", "encryption-key", mount_point=mount)["data"]
    assert exported["name"] == "exp" and exported["type"] == "aes256-gcm96"
    key = base64.b64decode(exported["keys"]["1"])
    assert len(key) == 32
    blob = base64.b64decode(ct.split(":", 2)[2])
    assert AESGCM(key).decrypt(blob[:12], blob[12:], None) == b"seed"
    c.secrets.transit.create_key("not-exportable", mount_point=mount)
    with pytest.raises(hx.InvalidRequest) as exc:
        c.secrets.transit.export_key("not-exportable", "encryption-key", mount_point=mount)
    assert exc.value.errors == ["private key material is not exportable"]


def test_associated_data_binds_the_ciphertext(sim, transit):
    c = sim.client()
    ad = b64(b"key-id-1")
    ct = c.secrets.transit.encrypt_data("kek", b64(b"dek"), associated_data=ad,
                                        mount_point=transit)["data"]["ciphertext"]
    assert base64.b64decode(c.secrets.transit.decrypt_data(
        "kek", ct, associated_data=ad, mount_point=transit)["data"]["plaintext"]) == b"dek"
    with pytest.raises(hx.InvalidRequest) as exc:
        c.secrets.transit.decrypt_data("kek", ct, mount_point=transit)
    assert exc.value.errors == ["cipher: message authentication failed"]


def test_rotate_adds_a_version_and_encrypt_honours_key_version(sim, transit):
    c = sim.client()
    c.secrets.transit.rotate_key("kek", mount_point=transit)
    data = c.secrets.transit.read_key("kek", mount_point=transit)["data"]
    assert data["latest_version"] == 2 and sorted(data["keys"]) == ["1", "2"]
    latest = c.secrets.transit.encrypt_data("kek", b64(b"a"), mount_point=transit)["data"]
    assert latest["key_version"] == 2 and latest["ciphertext"].startswith("vault:v2:")
    old = c.secrets.transit.encrypt_data("kek", b64(b"a"), key_version=1, mount_point=transit)["data"]
    assert old["key_version"] == 1 and old["ciphertext"].startswith("vault:v1:")
    with pytest.raises(hx.InvalidRequest) as exc:
        c.secrets.transit.encrypt_data("kek", b64(b"a"), key_version=3, mount_point=transit)
    assert exc.value.errors == ["requested version for encryption is higher than the latest key version"]
    c.secrets.transit.update_key_configuration("kek", min_encryption_version=2, mount_point=transit)
    with pytest.raises(hx.InvalidRequest) as exc:
        c.secrets.transit.encrypt_data("kek", b64(b"a"), key_version=1, mount_point=transit)
    assert exc.value.errors == ["requested version for encryption is less than the minimum "
                                "encryption key version"]


def test_min_decryption_version_hides_old_versions_and_rejects_their_ciphertexts(sim, transit):
    c = sim.client()
    old = c.secrets.transit.encrypt_data("kek", b64(b"v1"), mount_point=transit)["data"]["ciphertext"]
    c.secrets.transit.rotate_key("kek", mount_point=transit)
    c.secrets.transit.rotate_key("kek", mount_point=transit)
    c.secrets.transit.update_key_configuration("kek", min_decryption_version=2, mount_point=transit)
    data = c.secrets.transit.read_key("kek", mount_point=transit)["data"]
    assert data["min_decryption_version"] == 2 and sorted(data["keys"]) == ["2", "3"]
    with pytest.raises(hx.InvalidRequest) as exc:
        c.secrets.transit.decrypt_data("kek", old, mount_point=transit)
    assert exc.value.errors == ["ciphertext or signature version is disallowed by policy (too old)"]
    with pytest.raises(hx.InvalidRequest) as exc:
        c.secrets.transit.update_key_configuration("kek", min_decryption_version=9, mount_point=transit)
    assert exc.value.errors == ["cannot set min decryption version of 9, latest key version is 3"]


@pytest.mark.parametrize("ciphertext, message", [
    ("nope", "invalid ciphertext: no prefix"),
    ("vault:v1", "invalid ciphertext: wrong number of fields"),
    ("vault:vX:AAAA", "invalid ciphertext: version number could not be decoded"),
    ("vault:v99:AAAA", "invalid ciphertext: version is too new"),
    ("vault:v1:!!!!", "invalid ciphertext: could not decode base64"),
    ("vault:v1:AAAA", "invalid ciphertext length"),
    ("vault:v1:" + b64(bytes(12 + 16)), "cipher: message authentication failed"),
])
def test_decrypt_parse_errors_are_400_with_vault_strings(sim, transit, ciphertext, message):
    with pytest.raises(hx.InvalidRequest) as exc:
        sim.client().secrets.transit.decrypt_data("kek", ciphertext, mount_point=transit)
    assert exc.value.errors == [message]


def test_encrypt_and_decrypt_input_errors_are_400_with_vault_strings(sim, transit):
    c = sim.client()
    cases = [
        (lambda: c.adapter.post(f"/v1/{transit}/encrypt/kek", json={}), "missing plaintext to encrypt"),
        (lambda: c.secrets.transit.encrypt_data("kek", "aGVsbG8", mount_point=transit),
         "illegal base64 data at input byte 4"),
        (lambda: c.secrets.transit.encrypt_data("kek", "a$b=", mount_point=transit),
         "illegal base64 data at input byte 1"),
        (lambda: c.adapter.post(f"/v1/{transit}/decrypt/kek", json={"ciphertext": ""}),
         "missing ciphertext to decrypt"),
        (lambda: c.secrets.transit.decrypt_data("absent", "vault:v1:AAAA", mount_point=transit),
         "encryption key not found"),
    ]
    for call, message in cases:
        with pytest.raises(hx.InvalidRequest) as exc:
            call()
        assert exc.value.errors == [message]


def test_batch_encrypt_and_decrypt_keep_order_and_references(sim, transit):
    c = sim.client()
    items = [{"plaintext": b64(b"one")}, {"plaintext": b64(b"two"), "reference": "r2"}]
    results = c.secrets.transit.encrypt_data("kek", batch_input=items, mount_point=transit)["data"]["batch_results"]
    assert [r["reference"] for r in results] == ["", "r2"]
    assert all(r["ciphertext"].startswith("vault:v1:") and r["key_version"] == 1 for r in results)
    decrypted = c.secrets.transit.decrypt_data(
        "kek", batch_input=[{"ciphertext": r["ciphertext"]} for r in results],
        mount_point=transit)["data"]["batch_results"]
    assert [base64.b64decode(r["plaintext"]) for r in decrypted] == [b"one", b"two"]
    r = requests.post(sim.url(f"/v1/{transit}/encrypt/kek"), headers={"X-Vault-Token": ROOT},
                      json={"batch_input": [{"plaintext": b64(b"ok")}, {"plaintext": "%%"}]}, timeout=5)
    assert r.status_code == 400
    batch = r.json()["data"]["batch_results"]
    assert "ciphertext" in batch[0] and batch[1]["error"] == "illegal base64 data at input byte 0"


def test_derived_key_needs_context_and_binds_it(sim, transit):
    c = sim.client()
    c.secrets.transit.create_key("derived", derived=True, mount_point=transit)
    with pytest.raises(hx.InvalidRequest, match="missing 'context' for key derivation"):
        c.secrets.transit.encrypt_data("derived", b64(b"x"), mount_point=transit)
    ct = c.secrets.transit.encrypt_data("derived", b64(b"x"), context=b64(b"ctx-a"),
                                        mount_point=transit)["data"]["ciphertext"]
    assert base64.b64decode(c.secrets.transit.decrypt_data(
        "derived", ct, context=b64(b"ctx-a"), mount_point=transit)["data"]["plaintext"]) == b"x"
    with pytest.raises(hx.InvalidRequest, match="cipher: message authentication failed"):
        c.secrets.transit.decrypt_data("derived", ct, context=b64(b"ctx-b"), mount_point=transit)


def test_key_options_validate_like_vault(sim, transit):
    c = sim.client()
    with pytest.raises(hx.InvalidRequest) as exc:
        c.secrets.transit.create_key("rot", auto_rotate_period="30m", mount_point=transit)
    assert exc.value.errors == ["auto rotate period must be 0 to disable or at least an hour"]
    c.secrets.transit.create_key("rot", auto_rotate_period="2h", mount_point=transit)
    assert c.secrets.transit.read_key("rot", mount_point=transit)["data"]["auto_rotate_period"] == 7200
    c.secrets.transit.create_key("chacha", key_type="chacha20-poly1305", mount_point=transit)
    assert c.secrets.transit.read_key("chacha", mount_point=transit)["data"]["type"] == "chacha20-poly1305"
    c.secrets.transit.update_key_configuration("rot", exportable=True, mount_point=transit)
    with pytest.raises(hx.InvalidRequest, match="exportability cannot be disabled after enabling"):
        c.secrets.transit.update_key_configuration("rot", exportable=False, mount_point=transit)
    with pytest.raises(hx.InvalidPath):
        c.secrets.transit.create_key("bad-", mount_point=transit)


def test_delete_key_needs_deletion_allowed(sim, transit):
    c = sim.client()
    with pytest.raises(hx.InvalidRequest, match="deletion is not allowed"):
        c.secrets.transit.delete_key("kek", mount_point=transit)
    c.secrets.transit.update_key_configuration("kek", deletion_allowed=True, mount_point=transit)
    assert c.secrets.transit.delete_key("kek", mount_point=transit).status_code == 204
    with pytest.raises(hx.InvalidPath):
        c.secrets.transit.read_key("kek", mount_point=transit)


def test_backup_and_restore_keep_every_version_decryptable(sim, transit):
    c = sim.client()
    with pytest.raises(hx.InternalServerError, match="exporting is disallowed on the policy"):
        c.secrets.transit.backup_key("kek", mount_point=transit)
    c.secrets.transit.create_key("bk", exportable=True, allow_plaintext_backup=True, mount_point=transit)
    v1 = c.secrets.transit.encrypt_data("bk", b64(b"one"), mount_point=transit)["data"]["ciphertext"]
    c.secrets.transit.rotate_key("bk", mount_point=transit)
    backup = c.secrets.transit.backup_key("bk", mount_point=transit)["data"]["backup"]
    base64.b64decode(backup, validate=True)
    assert c.secrets.transit.restore_key(backup, name="bk-copy", mount_point=transit).status_code == 204
    assert c.secrets.transit.read_key("bk-copy", mount_point=transit)["data"]["latest_version"] == 2
    assert base64.b64decode(c.secrets.transit.decrypt_data(
        "bk-copy", v1, mount_point=transit)["data"]["plaintext"]) == b"one"
    with pytest.raises(hx.InternalServerError, match='key "bk-copy" already exists'):
        c.secrets.transit.restore_key(backup, name="bk-copy", mount_point=transit)
    c.secrets.transit.restore_key(backup, name="bk-copy", force=True, mount_point=transit)


# -------------------------------------------------------------------------------------------------
# Seal, editions, namespaces


def test_seal_makes_logical_paths_503_and_unseal_with_printed_key_restores(make_sim):
    s = make_sim()
    c = s.client()
    c.sys.enable_secrets_engine("transit", path="transit")
    c.secrets.transit.create_key("kek")
    ct = c.secrets.transit.encrypt_data("kek", b64(b"kept"))["data"]["ciphertext"]
    assert c.sys.seal().status_code == 204
    with pytest.raises(hx.VaultDown) as exc:
        c.secrets.transit.decrypt_data("kek", ct)
    assert exc.value.errors == ["Vault is sealed"]
    with pytest.raises(hx.VaultDown):
        c.auth.token.lookup_self()
    health = requests.get(s.url("/v1/sys/health"), timeout=5)
    assert health.status_code == 503 and health.json()["sealed"] is True
    assert c.sys.read_seal_status()["sealed"] is True
    with pytest.raises(hx.InvalidRequest):
        c.sys.submit_unseal_key(key=b64(bytes(32)))
    assert c.sys.submit_unseal_key(key=s.unseal_key)["sealed"] is False
    assert base64.b64decode(c.secrets.transit.decrypt_data("kek", ct)["data"]["plaintext"]) == b"kept"


def test_sealing_needs_sudo(sim):
    token = token_with_policy(sim, 'path "sys/seal" { capabilities = ["update"] }')
    with pytest.raises(hx.Forbidden):
        sim.client(token).sys.seal()


def test_license_status_differs_by_edition(sim, enterprise, openbao):
    with pytest.raises(hx.InvalidPath) as exc:
        sim.client().adapter.get("/v1/sys/license/status")
    assert exc.value.errors == ["enterprise-only feature"]
    data = enterprise.client().adapter.get("/v1/sys/license/status")["data"]
    assert data["autoloading_used"] is True and "Namespaces" in data["autoloaded"]["features"]
    assert enterprise.client().sys.read_health_status(method="GET")["enterprise"] is True
    with pytest.raises(hx.InvalidPath) as exc:
        openbao.client().adapter.get("/v1/sys/license/status")
    assert exc.value.errors == [UNSUPPORTED_PATH]


@pytest.mark.parametrize("edition", ["enterprise", "openbao"])
def test_namespaces_isolate_mounts_policies_and_tokens(edition, request):
    s: Sim = request.getfixturevalue(edition)
    root = s.client()
    team_a, team_b = uniq("team-a"), uniq("team-b")
    assert root.sys.create_namespace(team_a)["data"]["path"] == f"{team_a}/"
    root.sys.create_namespace(team_b)
    a, b = s.client(namespace=team_a), s.client(namespace=team_b)
    a.sys.enable_secrets_engine("transit", path="transit")
    a.secrets.transit.create_key("kek")
    a.sys.create_or_update_acl_policy("enc", 'path "transit/encrypt/kek" { capabilities = ["update"] }')
    mount, role_id, secret_id = setup_approle(a, ["enc"], mount="approle")
    token = login(a, mount, role_id, secret_id)["auth"]["client_token"]
    assert re.fullmatch(r"hvs\.[A-Za-z0-9]{24}\.\w+", token)

    s.client(token, namespace=team_a).secrets.transit.encrypt_data("kek", b64(b"a"))
    for other in (team_b, None):
        with pytest.raises(hx.Forbidden) as exc:
            s.client(token, namespace=other).auth.token.lookup_self()
        # OpenBao 2.7 answers a token unknown here with a bare "permission denied" (see
        # test_vault_differential.py); Vault Enterprise adds "invalid token".
        assert exc.value.errors == (["permission denied"] if edition == "openbao" else [INVALID_TOKEN])
    with pytest.raises(hx.InvalidPath, match="no handler for route"):
        b.secrets.transit.read_key("kek")
    with pytest.raises(hx.InvalidPath):
        b.sys.read_acl_policy("enc")
    assert f"transit/" not in root.sys.list_mounted_secrets_engines()["data"]

    # A child namespace accepts the parent's token, but its policies name paths from the parent.
    a.sys.create_namespace("child")
    with pytest.raises(hx.Forbidden) as exc:
        s.client(token, namespace=f"{team_a}/child").auth.token.lookup_self()
    assert exc.value.errors == [PERMISSION_DENIED]
    assert s.client(namespace=f"{team_a}/child").auth.token.lookup_self()["data"]["id"] == ROOT

    with pytest.raises(hx.InvalidPath, match="no handler for route"):
        s.client(namespace="no-such-ns").secrets.transit.read_key("kek")


def test_community_edition_ignores_the_namespace_header(sim, transit):
    c = sim.client(namespace="whatever")
    assert c.secrets.transit.read_key("kek", mount_point=transit)["data"]["name"] == "kek"
    with pytest.raises(hx.InvalidPath):
        c.sys.create_namespace("nope")


# -------------------------------------------------------------------------------------------------
# Faults and statistics


def test_fault_429_answers_rate_limit_for_count_requests_then_recovers(faults, transit):
    c = faults.client()
    assert faults.control("faults", {"status": 429, "count": 2,
                                     "paths": [f"{transit}/encrypt"]}).status_code == 204
    for _ in range(2):
        with pytest.raises(hx.RateLimitExceeded) as exc:
            c.secrets.transit.encrypt_data("kek", b64(b"x"), mount_point=transit)
        assert exc.value.errors == [f'request path "{transit}/encrypt/kek": rate limit quota exceeded']
    ct = c.secrets.transit.encrypt_data("kek", b64(b"x"), mount_point=transit)["data"]["ciphertext"]
    assert c.secrets.transit.decrypt_data("kek", ct, mount_point=transit)["data"]["plaintext"] == b64(b"x")


def test_fault_429_sends_retry_after_and_500_says_internal_error(faults, transit):
    url = faults.url(f"/v1/{transit}/encrypt/kek")
    faults.control("faults", {"status": 429, "count": 1})
    r = requests.post(url, headers={"X-Vault-Token": ROOT}, json={"plaintext": ""}, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    faults.control("faults", {"status": 500, "count": 1, "paths": ["encrypt"]})
    r = requests.post(url, headers={"X-Vault-Token": ROOT}, json={"plaintext": ""}, timeout=5)
    assert r.status_code == 500 and r.json() == {"errors": ["internal error"]}
    assert requests.post(url, headers={"X-Vault-Token": ROOT}, json={"plaintext": ""},
                         timeout=5).status_code == 200


def test_fault_latency_delays_only_matching_requests(faults, transit):
    c = faults.client()
    faults.control("faults", {"latency_ms": 400, "paths": [f"{transit}/decrypt"], "count": 1})
    ct = c.secrets.transit.encrypt_data("kek", b64(b"x"), mount_point=transit)["data"]["ciphertext"]
    started = time.monotonic()
    c.secrets.transit.encrypt_data("kek", b64(b"x"), mount_point=transit)
    assert time.monotonic() - started < 0.3
    started = time.monotonic()
    c.secrets.transit.decrypt_data("kek", ct, mount_point=transit)
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    c.secrets.transit.decrypt_data("kek", ct, mount_point=transit)
    assert time.monotonic() - started < 0.3


def test_fault_drop_closes_the_connection_without_an_answer(faults, transit):
    faults.control("faults", {"drop": True, "count": 1, "paths": ["encrypt"]})
    with pytest.raises(requests.ConnectionError):
        requests.post(faults.url(f"/v1/{transit}/encrypt/kek"), headers={"X-Vault-Token": ROOT},
                      json={"plaintext": ""}, timeout=5)
    assert faults.client().secrets.transit.encrypt_data("kek", "", mount_point=transit)["data"]["ciphertext"]


def test_fault_rules_are_listed_cleared_and_validated(faults):
    faults.control("faults", {"latency_ms": 1, "paths": ["nothing-matches-this"]})
    assert faults.control("faults").json()["faults"][0]["paths"] == ["nothing-matches-this"]
    assert faults.control("faults", {"clear": True}).status_code == 204
    assert faults.control("faults").json() == {"faults": []}
    assert faults.control("faults", {"status": 200}).status_code == 400
    assert faults.control("faults", {"bogus": 1}).status_code == 400


def test_stats_count_requests_per_vault_path_and_reset(sim, transit):
    c = sim.client()
    mount, role_id, secret_id = setup_approle(c, ["default"])
    assert sim.control("stats/reset", {}).status_code == 204
    for _ in range(3):
        c.secrets.transit.encrypt_data("kek", b64(b"x"), mount_point=transit)
    login(c, mount, role_id, secret_id)
    stats = sim.stats()
    assert stats[f"{transit}/encrypt/kek"] == 3
    assert stats[f"auth/{mount}/login"] == 1
    sim.control("stats/reset", {})
    assert sim.stats() == {}


# -------------------------------------------------------------------------------------------------
# Audit


def test_audit_file_hmacs_data_and_tokens_and_keeps_correlation_id(make_sim, tmp_path):
    log = tmp_path / "audit.log"
    s = make_sim(f"-audit-file={log}")
    c = s.client()
    c.sys.enable_secrets_engine("transit", path="transit")
    c.secrets.transit.create_key("kek")
    plaintext = b64(b"very secret dek seed")
    r = requests.post(s.url("/v1/transit/encrypt/kek"),
                      headers={"X-Vault-Token": ROOT, "X-Correlation-Id": "uid-1234"},
                      json={"plaintext": plaintext}, timeout=5)
    ciphertext = r.json()["data"]["ciphertext"]
    mount, role_id, secret_id = setup_approle(c, ["default"])
    token = login(c, mount, role_id, secret_id)["auth"]["client_token"]

    text = log.read_text()
    for secret in (plaintext, ciphertext, ROOT, token, secret_id):
        assert secret not in text
    entries = [json.loads(line) for line in text.splitlines()]
    encrypt = [e for e in entries if e["request"]["path"] == "transit/encrypt/kek"]
    assert [e["type"] for e in encrypt] == ["request", "response"]
    request_entry, response_entry = encrypt
    assert request_entry["request"]["id"] == response_entry["request"]["id"]
    expected = c.sys.calculate_hash("file", plaintext)["data"]["hash"]
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", expected)
    assert request_entry["request"]["data"]["plaintext"] == expected
    assert request_entry["request"]["headers"] == {"x-correlation-id": ["uid-1234"]}
    assert request_entry["request"]["client_token"] == c.sys.calculate_hash("file", ROOT)["data"]["hash"]
    assert request_entry["request"]["operation"] == "update"
    assert request_entry["request"]["mount_type"] == "transit"
    assert response_entry["response"]["data"]["key_version"] == 1
    assert response_entry["response"]["data"]["ciphertext"].startswith("hmac-sha256:")

    login_response = [e for e in entries if e["type"] == "response"
                      and e["request"]["path"] == f"auth/{mount}/login"][0]
    assert login_response["response"]["auth"]["client_token"] == \
        c.sys.calculate_hash("file", token)["data"]["hash"]
    assert login_response["request"]["data"]["secret_id"].startswith("hmac-sha256:")


# -------------------------------------------------------------------------------------------------
# TLS


def _cert(subject: str, issuer_key, issuer_name, key, ca: bool, san: list[str] | None = None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pki(tmp: pathlib.Path) -> dict[str, str]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("vaultsim-test-ca", ca_key, None, ca_key, ca=True)
    files = {}

    def write(name: str, cert, key) -> None:
        (tmp / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[name] = str(tmp / f"{name}.pem")
        if key is not None:
            (tmp / f"{name}-key.pem").write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            files[name + "-key"] = str(tmp / f"{name}-key.pem")

    write("ca", ca, None)
    for name, san in (("server", ["localhost", "vault.test"]), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        write(name, _cert(name, ca_key, ca.subject, key, ca=False, san=san), key)
    return files


def test_tls_listener_serves_https_and_records_sni(make_sim, tmp_path):
    pki = _write_pki(tmp_path)
    s = make_sim(f"-dev-tls-cert-file={pki['server']}", f"-dev-tls-key-file={pki['server-key']}",
                 verify=pki["ca"])
    assert s.addr.startswith("https://127.0.0.1:")
    port = s.addr.rsplit(":", 1)[1]
    s.addr = f"https://localhost:{port}"
    assert s.client().auth.token.lookup_self()["data"]["id"] == ROOT
    assert s.stats()["_sni"] == {"localhost": 2}


def test_tls_client_ca_requires_a_client_certificate(make_sim, tmp_path):
    pki = _write_pki(tmp_path)
    s = make_sim(f"-dev-tls-cert-file={pki['server']}", f"-dev-tls-key-file={pki['server-key']}",
                 f"-dev-tls-client-ca-file={pki['ca']}", verify=pki["ca"])
    url = f"https://localhost:{s.addr.rsplit(':', 1)[1]}/v1/sys/health"
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, verify=pki["ca"], timeout=5)
    r = requests.get(url, verify=pki["ca"], cert=(pki["client"], pki["client-key"]), timeout=5)
    assert r.status_code == 200
