"""Differential check of the simulator: the same sequence of requests (every endpoint and error the
plugin and its preflight rely on) against Tests/vaultsim in its OpenBao personality and against a
real OpenBao 2.7.2, compared by status code, JSON shape (every key the simulator answers must be
there, with the same JSON type) and error strings (exactly).

A difference is either fixed in the simulator or listed in DELIBERATE (and in
Tests/vaultsim/README.md, "Differences from a real OpenBao") with the reason it is kept."""
import base64
import os

import pytest

from kmstest import openbao
from kmstest import vaultenv

pytestmark = pytest.mark.skipif(vaultenv.mode() == "external", reason="starts a simulator and an OpenBao of its own")

# step name -> why the simulator answers differently on purpose (also in Tests/vaultsim/README.md).
# Empty: every difference the check found was fixed in the simulator's openbao edition.
DELIBERATE = {}


def b64(data):
    return base64.b64encode(data).decode()


class Target:
    """One server driven through the same API calls, with the state the sequence builds up."""

    def __init__(self, name, server, tmpdir):
        self.name = name
        self.server = server
        self.api = openbao.OpenBaoServer.attach(server.address, server.root_token)
        self.vars = {}
        setup = vaultenv.VaultSetup(server.address, server.root_token, tmpdir)
        self.vars.update(mount=setup.mount, key=setup.key, auth=setup.auth_mount, role=setup.role,
                         role_id=setup.role_id, secret_id=setup.secret_id, policy=setup.policy)

    def call(self, method, path, body=None, token="root"):
        if token == "app":
            token = self.vars["token"]
        return self.api.raw(method, path.format(**self.vars), _fill(body, self.vars), token=token)


def _fill(body, values):
    if isinstance(body, dict):
        return {k: _fill(v, values) for k, v in body.items()}
    if isinstance(body, str):
        return body.format(**values)
    return body


def steps():
    """(name, method, path, body, token, after): `after(target, document)` records state."""
    def keep(name, getter):
        return lambda target, doc: target.vars.__setitem__(name, getter(doc))

    tampered = lambda doc: doc["data"]["ciphertext"][:-4] + ("AAAA" if not doc["data"]["ciphertext"].endswith("AAAA") else "BBBB")  # noqa: E731
    return [
        ("sys/health", "GET", "sys/health", None, None, None),
        ("sys/seal-status", "GET", "sys/seal-status", None, None, None),
        ("sys/license/status (edition probe)", "GET", "sys/license/status", None, "root", None),
        ("login", "POST", "auth/{auth}/login", {"role_id": "{role_id}", "secret_id": "{secret_id}"}, None,
         keep("token", lambda doc: doc["auth"]["client_token"])),
        ("login with a wrong secret ID", "POST", "auth/{auth}/login",
         {"role_id": "{role_id}", "secret_id": "00000000-0000-0000-0000-000000000000"}, None, None),
        ("login with a wrong role ID", "POST", "auth/{auth}/login",
         {"role_id": "not-a-role", "secret_id": "{secret_id}"}, None, None),
        ("lookup-self", "GET", "auth/token/lookup-self", None, "app", None),
        ("renew-self", "POST", "auth/token/renew-self", {}, "app", None),
        ("capabilities-self (preflight)", "POST", "sys/capabilities-self",
         {"paths": ["{mount}/encrypt/{key}", "{mount}/decrypt/{key}", "{mount}/keys/{key}", "sys/license/status",
                    "{mount}/keys/{key}/rotate"]}, "app", None),
        ("read the key", "GET", "{mount}/keys/{key}", None, "app", None),
        ("encrypt with the active version", "POST", "{mount}/encrypt/{key}",
         {"plaintext": b64(b"k" * 32), "key_version": 1}, "app", keep("ciphertext", lambda doc: doc["data"]["ciphertext"])),
        ("encrypt with a version that does not exist", "POST", "{mount}/encrypt/{key}",
         {"plaintext": b64(b"k" * 32), "key_version": 7}, "app", None),
        ("decrypt", "POST", "{mount}/decrypt/{key}", {"ciphertext": "{ciphertext}"}, "app", None),
        ("decrypt a tampered ciphertext", "POST", "{mount}/encrypt/{key}", {"plaintext": b64(b"t" * 32)}, "app",
         keep("tampered", tampered)),
        ("decrypt a tampered ciphertext (answer)", "POST", "{mount}/decrypt/{key}", {"ciphertext": "{tampered}"},
         "app", None),
        ("decrypt a malformed ciphertext", "POST", "{mount}/decrypt/{key}", {"ciphertext": "not-a-ciphertext"}, "app",
         None),
        ("decrypt a ciphertext of an unknown version", "POST", "{mount}/decrypt/{key}",
         {"ciphertext": "vault:v9:" + b64(os.urandom(40))}, "app", None),
        ("encrypt with another key (policy denies)", "POST", "{mount}/encrypt/other", {"plaintext": b64(b"x")}, "app",
         None),
        ("read a key that does not exist (root)", "GET", "{mount}/keys/missing", None, "root", None),
        ("rotate (root)", "POST", "{mount}/keys/{key}/rotate", {}, "root", None),
        ("read the rotated key", "GET", "{mount}/keys/{key}", None, "app", None),
        ("raise min_decryption_version (root)", "POST", "{mount}/keys/{key}/config", {"min_decryption_version": 2},
         "root", None),
        ("decrypt below min_decryption_version", "POST", "{mount}/decrypt/{key}", {"ciphertext": "{ciphertext}"},
         "app", None),
        ("revoke-self", "POST", "auth/token/revoke-self", {}, "app", None),
        ("encrypt with the revoked token", "POST", "{mount}/encrypt/{key}", {"plaintext": b64(b"k")}, "app", None),
        ("lookup-self with the revoked token", "GET", "auth/token/lookup-self", None, "app", None),
        ("encrypt with no token", "POST", "{mount}/encrypt/{key}", {"plaintext": b64(b"k")}, None, None),
    ]


def shape_differences(expected, actual, where="$"):
    """Every key of the simulator's answer must be in OpenBao's, with the same JSON type."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: object vs {type(actual).__name__}"]
        problems = []
        for key, value in expected.items():
            if where == "$.data" and key == "keys" and isinstance(value, dict):
                continue  # key versions: compared by their own step
            if key not in actual:
                problems.append(f"{where}.{key}: missing in OpenBao")
            elif key not in ("request_id", "lease_id"):
                problems += shape_differences(value, actual[key], f"{where}.{key}")
        return problems
    kinds = (bool, int, float, str, list, type(None))
    expected_kind = next((k for k in kinds if isinstance(expected, k)), object)
    actual_kind = next((k for k in kinds if isinstance(actual, k)), object)
    if expected_kind is float or actual_kind is float:
        return [] if isinstance(actual, (int, float)) and not isinstance(actual, bool) else [f"{where}: number"]
    return [] if expected_kind is actual_kind else [f"{where}: {expected_kind.__name__} vs {actual_kind.__name__}"]


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    simulator = vaultenv.SimulatorProcess(extra_args=["-edition=openbao"])
    real = openbao.OpenBaoServer(str(tmp_path_factory.mktemp("openbao")))
    try:
        yield (Target("simulator", simulator, str(tmp_path_factory.mktemp("sim"))),
               Target("openbao", real, str(tmp_path_factory.mktemp("bao"))))
    finally:
        simulator.stop()
        real.stop()


def test_the_simulator_answers_like_openbao_for_every_call_the_plugin_makes(targets):
    differences = []
    for name, method, path, body, token, after in steps():
        answers = []
        for target in targets:
            status, document = target.call(method, path, body, token)
            answers.append((status, document))
            if after and status < 400:
                after(target, document)
        (sim_status, sim_doc), (bao_status, bao_doc) = answers
        found = []
        if sim_status != bao_status:
            found.append(f"status {sim_status} vs {bao_status}")
        sim_errors = (sim_doc or {}).get("errors") if isinstance(sim_doc, dict) else None
        bao_errors = (bao_doc or {}).get("errors") if isinstance(bao_doc, dict) else None
        if sim_errors != bao_errors:
            found.append(f"errors {sim_errors!r} vs {bao_errors!r}")
        if sim_status < 400 and bao_status < 400 and isinstance(sim_doc, dict):
            found += shape_differences(sim_doc, bao_doc or {})
        if found and name not in DELIBERATE:
            differences.append(f"{name} ({method} {path}): " + "; ".join(found))
    assert not differences, "simulator vs OpenBao:\n" + "\n".join(differences)
