"""`vault-kube-kms preflight` against simulator set-ups built with hvac: a good one that passes and
bad ones that each trip one check. Every run also proves the preflight revokes its own token and
prints neither the secret ID nor the token."""
import datetime
import ipaddress
import os
import subprocess

import hvac
import pytest
import requests

from kmstest import simctl
from kmstest import vaultenv
from kmstest.plugin import installed_bin_dir


def run_preflight(vault, workdir, *extra, address=None, secret_path=None, socket_dir=None):
    socket_dir = socket_dir or os.path.join(workdir, "run")
    os.makedirs(socket_dir, mode=0o755, exist_ok=True)
    args = [
        os.path.join(installed_bin_dir(), "vault-kube-kms"), "preflight",
        "--listen-address", f"unix://{socket_dir}/kms.sock",
        "--vault-address", address or vault.address,
        "--vault-key-path", vault.key_path,
        "--auth-mount", vault.auth_mount,
        "--approle-role-id", vault.role_id,
        "--approle-secret-id-path", secret_path or vault.secret_id_path,
        *extra,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert vault.secret_id not in done.stdout + done.stderr
    assert "hvs." not in done.stdout + done.stderr
    results = {}
    for line in done.stdout.splitlines():
        outcome, check, detail = line.split("  ", 2)
        assert outcome in ("PASS", "WARN", "FAIL"), line
        results[check] = (outcome, detail)
    return done.returncode, results, done.stdout


def outcomes(results):
    return {check: outcome for check, (outcome, _) in results.items()}


@pytest.fixture()
def server(tmp_path):
    """A Vault of its own per test (the mode's: OpenBao by default): tests change the key."""
    started = vaultenv.start_server(str(tmp_path / "server"), audit=True)
    yield started
    started.stop()


@pytest.fixture()
def vault(server, tmp_path):
    setup = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path))
    setup.root.secrets.transit.update_key_configuration(
        name=setup.key, auto_rotate_period="720h", mount_point=setup.mount)
    return setup


def stats(address):
    return simctl.stats(address)


def test_a_good_setup_passes_with_only_the_plain_http_and_backup_warnings(vault, workdir):
    code, results, _ = run_preflight(vault, workdir)
    warned = {check for check, outcome in outcomes(results).items() if outcome != "PASS"}
    assert warned == {"vault.tls", "key.backup"}, results
    assert code == 1
    for check in ("secret_id.file", "socket.directory", "vault.reachable", "approle.login", "token.ttl",
                  "token.renewable", "policy.encrypt", "policy.decrypt", "policy.key", "policy.license",
                  "key.exists", "key.type", "key.deletion", "key.rotation", "key.min_decryption_version",
                  "vault.edition", "vault.namespace", "token.revoke"):
        assert results[check][0] == "PASS", (check, results)
    expected = "Vault Community" if vaultenv.mode() == "simulator" else "OpenBao"
    assert results["vault.edition"][1].startswith(expected), results["vault.edition"]


@pytest.mark.skipif(vaultenv.is_external(), reason="counts requests in an audit log or the simulator's stats")
def test_the_preflight_revokes_its_own_token(server, vault, workdir):
    """Counted by what reached the server: OpenBao's audit log (or the simulator's stats)."""
    before = server.request_counts()
    run_preflight(vault, workdir)
    after = server.request_counts()
    assert after.get("auth/approle/login", 0) - before.get("auth/approle/login", 0) == 1
    assert after.get("auth/token/revoke-self", 0) - before.get("auth/token/revoke-self", 0) == 1


@pytest.mark.simulator_only("record of the TLS server name each connection sent (/_sim/stats _sni)")
def test_a_backup_ready_key_over_tls_passes_every_check(tmp_path, workdir):
    cert, key, ca = make_certificate(tmp_path, "localhost")
    sim = vaultenv.SimulatorProcess(extra_args=[f"-dev-tls-cert-file={cert}", f"-dev-tls-key-file={key}"])
    try:
        address = sim.address.replace("127.0.0.1", "localhost")
        setup = tls_setup(address, ca, tmp_path)
        code, results, output = run_preflight(setup, workdir, "--tls-ca-file", ca, address=address)
        assert code == 0, output
        assert results["vault.tls"] == ("PASS", f"certificate verified against {ca}")
        assert results["vault.sni"] == ("PASS", "server name localhost")
        assert stats_tls(address, ca)["_sni"].get("localhost", 0) >= 1

        code, results, _ = run_preflight(setup, workdir, address=address)
        assert results["vault.tls"][0] == "FAIL"
        assert results["approle.login"][0] == "FAIL"
        assert code == 2
    finally:
        sim.stop()


@pytest.mark.simulator_only("record of the TLS server name each connection sent (/_sim/stats _sni)")
def test_an_ip_address_over_tls_warns_that_no_sni_is_sent_unless_one_is_set(tmp_path, workdir):
    cert, key, ca = make_certificate(tmp_path, "localhost")
    sim = vaultenv.SimulatorProcess(extra_args=[f"-dev-tls-cert-file={cert}", f"-dev-tls-key-file={key}"])
    try:
        setup = tls_setup(sim.address, ca, tmp_path)
        _, results, _ = run_preflight(setup, workdir, "--tls-ca-file", ca)
        assert results["vault.sni"][0] == "WARN"
        assert "IP address" in results["vault.sni"][1]

        simctl.reset_stats(sim, verify=ca)
        code, results, output = run_preflight(setup, workdir, "--tls-ca-file", ca, "--tls-sni", "localhost")
        assert code == 0, output
        assert results["vault.sni"] == ("PASS", "server name localhost (explicit)")
        assert stats_tls(sim.address, ca)["_sni"].get("localhost", 0) >= 1
    finally:
        sim.stop()


@pytest.mark.simulator_only("-dev-tls-cert-file listener (one HTTPS dev listener per test)")
def test_skip_verify_warns_even_when_the_certificate_would_not_verify(tmp_path, workdir):
    cert, key, ca = make_certificate(tmp_path, "localhost")
    sim = vaultenv.SimulatorProcess(extra_args=[f"-dev-tls-cert-file={cert}", f"-dev-tls-key-file={key}"])
    try:
        setup = tls_setup(sim.address, ca, tmp_path)
        code, results, _ = run_preflight(setup, workdir, "--tls-skip-verify")
        assert results["vault.tls"] == ("WARN", "certificate verification is disabled (skip-verify)")
        assert results["approle.login"][0] == "PASS"
        assert code == 1
    finally:
        sim.stop()


@pytest.mark.simulator_only("Enterprise personality (sys/license/status answers 200)")
def test_the_edition_of_an_enterprise_vault_is_reported(tmp_path, workdir):
    sim = vaultenv.SimulatorProcess(extra_args=["-edition=enterprise"])
    try:
        setup = vaultenv.VaultSetup(sim.address, sim.root_token, str(tmp_path))
        _, results, _ = run_preflight(setup, workdir)
        assert results["vault.edition"] == ("PASS", "Vault Enterprise, version 1.17.2+ent")
    finally:
        sim.stop()


def test_require_enterprise_fails_on_community_edition(vault, workdir):
    code, results, _ = run_preflight(vault, workdir, "--require-enterprise")
    assert results["vault.edition"][0] == "FAIL"
    assert "Community" in results["vault.edition"][1] or "OpenBao" in results["vault.edition"][1]
    assert code == 2


def test_a_secret_id_file_readable_by_others_fails(vault, workdir):
    vault.write_secret_id(vault.secret_id, mode=0o644)
    code, results, _ = run_preflight(vault, workdir)
    assert results["secret_id.file"][0] == "FAIL"
    assert "accessible by group or others" in results["secret_id.file"][1]
    assert results["approle.login"][0] == "FAIL"
    assert code == 2


def test_a_secret_id_symlink_out_of_its_directory_fails(vault, workdir):
    os.mkdir(os.path.join(workdir, "elsewhere"), 0o700)
    link = os.path.join(workdir, "elsewhere", "secret-link")
    os.symlink(vault.secret_id_path, link)
    code, results, _ = run_preflight(vault, workdir, secret_path=link)
    assert results["secret_id.file"][0] == "FAIL"
    assert "symbolic link leading out of its directory" in results["secret_id.file"][1]
    assert code == 2


def test_a_secret_id_symlink_inside_its_directory_is_followed_and_the_file_it_reaches_is_checked(vault, workdir):
    """As in a Kubernetes Secret volume (`secret-id -> ..data/secret-id`): the mode reported is
    the final file's (0400), not the link's."""
    link = os.path.join(vault.secret_dir, "linked-secret-id")
    os.symlink("secret-id", link)
    _, results, _ = run_preflight(vault, workdir, secret_path=link)
    assert results["secret_id.file"][0] == "PASS", results["secret_id.file"]
    assert "mode 0400" in results["secret_id.file"][1]


def test_an_owner_writable_secret_id_file_warns(vault, workdir):
    vault.write_secret_id(vault.secret_id, mode=0o600)
    _, results, _ = run_preflight(vault, workdir)
    assert results["secret_id.file"][0] == "WARN"


def test_an_unreachable_vault_fails(vault, workdir):
    code, results, _ = run_preflight(vault, workdir, address="http://127.0.0.1:9")
    assert results["vault.reachable"][0] == "FAIL"
    assert "connect failed" in results["vault.reachable"][1]
    assert code == 2


def test_a_sealed_vault_fails(vault, workdir):
    vault.root.sys.seal()
    code, results, _ = run_preflight(vault, workdir)
    assert results["vault.reachable"] == ("FAIL", f"{vault.address}: Vault is sealed")
    assert code == 2


def test_a_wrong_secret_id_fails_the_login(vault, workdir):
    vault.write_secret_id("00000000-0000-0000-0000-000000000000")
    code, results, _ = run_preflight(vault, workdir)
    assert results["approle.login"][0] == "FAIL"
    assert code == 2


def test_a_long_token_ttl_warns(vault, workdir):
    vault.root.auth.approle.create_or_update_approle(
        role_name=vault.role, token_policies=[vault.policy], token_ttl="48h", token_max_ttl="72h",
        mount_point=vault.auth_mount)
    _, results, _ = run_preflight(vault, workdir)
    assert results["token.ttl"][0] == "WARN"
    assert "longer than 24h" in results["token.ttl"][1]


def write_policy(vault, hcl):
    vault.root.sys.create_or_update_policy(name=vault.policy, policy=hcl)


def test_a_policy_without_decrypt_fails(vault, workdir):
    write_policy(vault, vaultenv.POLICY_TEMPLATE.format(mount=vault.mount, key=vault.key).replace(
        f'path "{vault.mount}/decrypt/{vault.key}" {{ capabilities = ["update"] }}', ""))
    code, results, _ = run_preflight(vault, workdir)
    assert results["policy.decrypt"][0] == "FAIL"
    assert results["policy.encrypt"][0] == "PASS"
    assert code == 2


def test_a_policy_broader_than_needed_warns(vault, workdir):
    write_policy(vault, vaultenv.POLICY_TEMPLATE.format(mount=vault.mount, key=vault.key).replace(
        'capabilities = ["read"] }', 'capabilities = ["read", "update", "delete"] }', 1))
    _, results, _ = run_preflight(vault, workdir)
    assert results["policy.key"][0] == "WARN"
    assert "delete, update" in results["policy.key"][1]


def test_a_missing_key_fails(vault, workdir):
    transit = vault.root.secrets.transit
    transit.update_key_configuration(name=vault.key, deletion_allowed=True, mount_point=vault.mount)
    transit.delete_key(name=vault.key, mount_point=vault.mount)
    code, results, _ = run_preflight(vault, workdir)
    assert results["key.exists"][0] == "FAIL"
    assert code == 2


def test_a_key_of_another_type_fails(vault, workdir):
    transit = vault.root.secrets.transit
    transit.update_key_configuration(name=vault.key, deletion_allowed=True, mount_point=vault.mount)
    transit.delete_key(name=vault.key, mount_point=vault.mount)
    transit.create_key(name=vault.key, key_type="chacha20-poly1305", mount_point=vault.mount)
    _, results, _ = run_preflight(vault, workdir)
    assert results["key.type"] == ("FAIL", "type chacha20-poly1305; the plugin needs aes256-gcm96")


def test_a_deletable_key_fails(vault, workdir):
    vault.root.secrets.transit.update_key_configuration(
        name=vault.key, deletion_allowed=True, mount_point=vault.mount)
    code, results, _ = run_preflight(vault, workdir)
    assert results["key.deletion"][0] == "FAIL"
    assert code == 2


@pytest.mark.parametrize("period", ["0", "2400h"])
def test_rotation_unset_or_longer_than_90_days_warns(vault, workdir, period):
    vault.root.secrets.transit.update_key_configuration(
        name=vault.key, auto_rotate_period=period, mount_point=vault.mount)
    _, results, _ = run_preflight(vault, workdir)
    assert results["key.rotation"][0] == "WARN"


def test_a_minimum_decryption_version_above_a_just_retired_version_warns(vault, workdir):
    vault.rotate_key()
    vault.rotate_key()
    vault.root.secrets.transit.update_key_configuration(
        name=vault.key, min_decryption_version=3, mount_point=vault.mount)
    _, results, _ = run_preflight(vault, workdir)
    assert results["key.min_decryption_version"][0] == "WARN"
    assert "version 2 was still encrypting" in results["key.min_decryption_version"][1]


def test_an_exportable_key_with_plaintext_backup_is_backup_ready(vault, workdir):
    vault.root.secrets.transit.update_key_configuration(
        name=vault.key, exportable=True, allow_plaintext_backup=True, mount_point=vault.mount)
    _, results, _ = run_preflight(vault, workdir)
    assert results["key.backup"][0] == "PASS"


def test_a_world_writable_socket_directory_fails(vault, workdir):
    socket_dir = os.path.join(workdir, "open")
    os.mkdir(socket_dir)
    os.chmod(socket_dir, 0o777)
    code, results, _ = run_preflight(vault, workdir, socket_dir=socket_dir)
    assert results["socket.directory"][0] == "FAIL"
    assert code == 2


@pytest.mark.simulator_only("Community Edition personality (ignores X-Vault-Namespace; OpenBao has namespaces)")
def test_a_namespace_on_community_edition_warns(vault, workdir):
    _, results, _ = run_preflight(vault, workdir, "--vault-namespace", "team")
    assert results["vault.namespace"][0] == "WARN"


@pytest.mark.simulator_only("Enterprise personality (sys/license/status only in the root namespace)")
def test_enterprise_namespaces_are_reported_and_a_missing_one_fails(tmp_path, workdir):
    sim = vaultenv.SimulatorProcess(extra_args=["-edition=enterprise"])
    try:
        root = hvac.Client(url=sim.address, token=sim.root_token)
        root.sys.create_namespace("team")
        setup = vaultenv.VaultSetup.__new__(vaultenv.VaultSetup)
        in_namespace(setup, sim.address, sim.root_token, "team", tmp_path)
        code, results, _ = run_preflight(setup, workdir, "--vault-namespace", "team")
        # sys/license/status lives in the root namespace only: a token of "team" cannot read it.
        assert results["vault.edition"][0] == "PASS"
        assert results["vault.edition"][1].startswith("unknown: sys/license/status exists only in the root namespace")
        assert results["vault.namespace"] == ("PASS", "namespace team reachable")
        assert code == 1

        code, results, _ = run_preflight(setup, workdir, "--vault-namespace", "other")
        assert results["vault.namespace"][0] == "FAIL"
        assert code == 2
    finally:
        sim.stop()


# --- helpers -------------------------------------------------------------------------------------

def in_namespace(setup, address, root_token, namespace, tmpdir):
    """VaultSetup's steps with every call inside `namespace`."""
    client = hvac.Client(url=address, token=root_token, namespace=namespace)
    setup.address, setup.root = address, client
    setup.mount, setup.auth_mount, setup.key, setup.policy, setup.role = "transit", "approle", "kek", "kms", "kms"
    client.sys.enable_secrets_engine("transit", path=setup.mount)
    client.secrets.transit.create_key(name=setup.key, key_type="aes256-gcm96", mount_point=setup.mount)
    client.sys.create_or_update_policy(
        name=setup.policy, policy=vaultenv.POLICY_TEMPLATE.format(mount=setup.mount, key=setup.key))
    client.sys.enable_auth_method("approle", path=setup.auth_mount)
    client.auth.approle.create_or_update_approle(
        role_name=setup.role, token_policies=[setup.policy], token_ttl="1h", mount_point=setup.auth_mount)
    setup.role_id = client.auth.approle.read_role_id(setup.role, mount_point=setup.auth_mount)["data"]["role_id"]
    setup.secret_dir = os.path.join(str(tmpdir), "ns-secret")
    os.mkdir(setup.secret_dir, 0o700)
    setup.secret_id_path = os.path.join(setup.secret_dir, "secret-id")
    setup.secret_id = setup.new_secret_id()
    setup.write_secret_id(setup.secret_id)


def tls_setup(address, ca, tmpdir):
    setup = vaultenv.VaultSetup.__new__(vaultenv.VaultSetup)
    session = requests.Session()
    session.verify = ca
    client = hvac.Client(url=address, token="ROOT", session=session)
    setup.address, setup.root = address, client
    setup.mount, setup.auth_mount, setup.key, setup.policy, setup.role = "transit", "approle", "kek", "kms", "kms"
    client.sys.enable_secrets_engine("transit", path=setup.mount)
    client.secrets.transit.create_key(
        name=setup.key, key_type="aes256-gcm96", mount_point=setup.mount, exportable=True,
        allow_plaintext_backup=True, auto_rotate_period="720h")
    client.sys.create_or_update_policy(
        name=setup.policy, policy=vaultenv.POLICY_TEMPLATE.format(mount=setup.mount, key=setup.key))
    client.sys.enable_auth_method("approle", path=setup.auth_mount)
    client.auth.approle.create_or_update_approle(
        role_name=setup.role, token_policies=[setup.policy], token_ttl="1h", mount_point=setup.auth_mount)
    setup.role_id = client.auth.approle.read_role_id(setup.role, mount_point=setup.auth_mount)["data"]["role_id"]
    setup.secret_dir = os.path.join(str(tmpdir), "tls-secret")
    os.makedirs(setup.secret_dir, 0o700, exist_ok=True)
    setup.secret_id_path = os.path.join(setup.secret_dir, "secret-id")
    setup.secret_id = setup.new_secret_id()
    setup.write_secret_id(setup.secret_id)
    return setup


def stats_tls(address, ca):
    return simctl.stats(address, verify=ca)


def make_certificate(tmpdir, hostname):
    """A CA and a server certificate for `hostname` and 127.0.0.1, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "preflight test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(str(tmpdir), name) for name in ("server.pem", "server-key.pem", "ca.pem")]
    with open(paths[0], "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with open(paths[2], "wb") as handle:
        handle.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def test_a_vault_configured_by_the_shipped_setup_script_passes_but_for_backup_and_plain_http(server, tmp_path, workdir):
    """docs/operations.md promises this of deploy/vault/setup.sh (run here through its HTTP path)."""
    out = str(tmp_path / "credentials")
    done = subprocess.run(
        ["bash", os.path.join(vaultenv.ROOT, "deploy", "vault", "setup.sh")], capture_output=True, text=True,
        timeout=60, env={**os.environ, "VAULT_ADDR": server.address, "VAULT_TOKEN": server.root_token,
                         "VAULT_CLI": "http", "KMS_OUTPUT_DIR": out})
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "role-id")) as handle:
        role_id = handle.read().strip()
    with open(os.path.join(out, "secret-id")) as handle:
        secret_id = handle.read().strip()
    setup = type("Shipped", (), {"address": server.address, "key_path": "transit/keys/kube-kek",
                                 "auth_mount": "approle", "role_id": role_id, "secret_id": secret_id,
                                 "secret_id_path": os.path.join(out, "secret-id")})()
    code, results, output = run_preflight(setup, workdir)
    warned = {check for check, outcome in outcomes(results).items() if outcome != "PASS"}
    assert warned == {"vault.tls", "key.backup"}, output
    assert results["key.rotation"] == ("PASS", "auto_rotate_period 90d")
    assert results["token.ttl"][0] == "PASS"
    assert code == 1


def closed_port():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_each_listed_address_is_checked_and_reported_with_its_index(vault, workdir):
    """Issue 16: `--vault-address <dead>,<live>` (a closed loopback port, then the real server):
    one line per address naming its index, the dead one a warning, and every later check (login,
    policy, key, edition) done through the address that serves."""
    dead = f"http://127.0.0.1:{closed_port()}"
    code, results, output = run_preflight(vault, workdir, address=f"{dead},{vault.address}")
    assert results["vault.address[0]"][0] == "WARN", output
    assert results["vault.address[0]"][1].startswith(f"{dead}: connect"), output
    assert results["vault.address[1]"] == ("PASS", f"{vault.address}: active, unsealed"), output
    assert results["vault.reachable"] == (
        "WARN", f"1 of 2 addresses serve (index 1); the checks below go through index 1, {vault.address}"), output
    for check in ("approle.login", "policy.encrypt", "key.exists", "vault.edition", "token.revoke"):
        assert results[check][0] == "PASS", (check, output)
    assert code == 1


def test_every_serving_address_reports_its_edition(vault, workdir):
    """Two spellings of the same live server: both serve, and the second one's edition is read
    with the same token; a list where none serves fails without a login."""
    second = vault.address.replace("127.0.0.1", "localhost")
    code, results, output = run_preflight(vault, workdir, address=f"{vault.address},{second}")
    assert results["vault.reachable"][0] == "PASS", output
    assert results["vault.address[0]"][0] == "PASS" and results["vault.address[1]"][0] == "PASS", output
    expected = "Vault Community" if vaultenv.mode() == "simulator" else "OpenBao"
    assert results["vault.address[1].edition"][0] == "PASS", output
    assert results["vault.address[1].edition"][1].startswith(f"{second}: {expected}"), output

    dead = [f"http://127.0.0.1:{closed_port()}" for _ in range(2)]
    code, results, output = run_preflight(vault, workdir, address=",".join(dead))
    assert results["vault.reachable"] == ("FAIL", "none of the 2 Vault addresses can serve"), output
    assert results["approle.login"][0] == "FAIL", output
    assert code == 2
