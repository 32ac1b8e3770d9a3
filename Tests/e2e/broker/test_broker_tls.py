"""TLS to Vault: CA file, SNI (connect to the address, present and verify another name), client
certificates, skip-verify warnings and the OpenSSL report. A real OpenBao serves HTTPS from a
-config listener with a CA generated at test time (the simulator in simulator mode); the
certificate names localhost and vault.test, not 127.0.0.1."""
import os

import pytest

from kmstest import brokerpki
from kmstest import simctl
from kmstest import vaultenv
from kmstest.brokerhelpers import events, healthz, round_trip, wait_healthz
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.is_external(), reason="starts HTTPS servers of its own")


def sni_seen(vault, pki, name):
    """The simulator records the server name each TLS connection sent (/_sim/stats _sni); OpenBao
    does not tell, so there the name is proven by the handshake alone (the certificate names only
    localhost and vault.test, never 127.0.0.1)."""
    if vaultenv.mode() != "simulator":
        return True
    return simctl.stats(vault, verify=pki["ca"])["_sni"].get(name, 0) >= 1


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return brokerpki.write_pki(str(tmp_path_factory.mktemp("pki")))


def _tls_vault(pki, tmp_path_factory, client_ca=False):
    """A real OpenBao with a TLS listener from a -config file (the simulator's -dev-tls-* flags in
    simulator mode), the suite's generated CA and server certificate; with client_ca the listener
    requires a client certificate signed by the CA."""
    cert = (pki["client"], pki["client-key"]) if client_ca else None
    if vaultenv.mode() == "openbao":
        from kmstest import openbao
        tls = {"cert": pki["server"], "key": pki["server-key"], "ca": pki["ca"]}
        if client_ca:
            tls.update(client_ca=pki["ca"], client_cert=cert)
        server = openbao.OpenBaoServer(str(tmp_path_factory.mktemp("openbao")), tls=tls)
    else:
        args = [f"-dev-tls-cert-file={pki['server']}", f"-dev-tls-key-file={pki['server-key']}"]
        if client_ca:
            args.append(f"-dev-tls-client-ca-file={pki['ca']}")
        server = vaultenv.SimulatorProcess(extra_args=args)
    port = server.address.rsplit(":", 1)[1]
    setup = vaultenv.VaultSetup(
        f"https://localhost:{port}", server.root_token, str(tmp_path_factory.mktemp("vault")), verify=pki["ca"],
        cert=cert)
    return server, setup, port


@pytest.fixture(scope="module")
def tls_vault(pki, tmp_path_factory):
    server, setup, port = _tls_vault(pki, tmp_path_factory)
    setup.port = port
    yield setup
    server.stop()


@pytest.fixture(scope="module")
def mtls_vault(pki, tmp_path_factory):
    server, setup, port = _tls_vault(pki, tmp_path_factory, client_ca=True)
    setup.port = port
    yield setup
    server.stop()


def _at(vault, address):
    """The same Vault set-up, reached through another address."""
    clone = type("At", (), {})()
    for name in ("key_path", "auth_mount", "role_id", "secret_id_path", "secret_id"):
        setattr(clone, name, getattr(vault, name))
    clone.address = address
    return clone


def test_the_ca_file_verifies_vault_and_requests_round_trip(tls_vault, pki, workdir):
    running = Plugin(tls_vault, workdir, extra_args=["--tls-ca-file", pki["ca"]])
    try:
        round_trip(running)
        assert sni_seen(tls_vault, pki, "localhost")
        start = events(running, "broker.start")[0]
        assert start["openssl"].startswith("OpenSSL ")
        assert start["fips_provider"] in ("true", "false")
    finally:
        running.stop()


def test_without_the_ca_file_the_test_ca_is_not_trusted(tls_vault, workdir):
    running = Plugin(tls_vault, workdir, wait_ready=False)
    try:
        assert wait_healthz(running, lambda h: h == "vault TLS handshake failed") == "vault TLS handshake failed"
    finally:
        running.stop()


def test_tls_sni_connects_to_the_address_but_presents_and_verifies_the_name(tls_vault, pki, workdir):
    # 127.0.0.1 is not in the certificate: only the SNI name makes verification pass.
    address = f"https://127.0.0.1:{tls_vault.port}"
    running = Plugin(_at(tls_vault, address), workdir, extra_args=["--tls-ca-file", pki["ca"], "--tls-sni", "vault.test"])
    try:
        round_trip(running)
        assert sni_seen(tls_vault, pki, "vault.test")
    finally:
        running.stop()


def test_an_sni_name_the_certificate_does_not_cover_is_refused(tls_vault, pki, workdir):
    address = f"https://127.0.0.1:{tls_vault.port}"
    running = Plugin(_at(tls_vault, address), workdir, wait_ready=False,
                     extra_args=["--tls-ca-file", pki["ca"], "--tls-sni", "other.test"])
    try:
        wait_healthz(running, lambda h: h == "vault TLS handshake failed")
        assert not events(running, "broker.login.ok")
    finally:
        running.stop()


def test_the_address_host_is_verified_without_sni(tls_vault, pki, workdir):
    address = f"https://127.0.0.1:{tls_vault.port}"
    running = Plugin(_at(tls_vault, address), workdir, wait_ready=False, extra_args=["--tls-ca-file", pki["ca"]])
    try:
        wait_healthz(running, lambda h: h == "vault TLS handshake failed")
    finally:
        running.stop()


def test_skip_verify_works_and_warns_at_start_and_on_every_health_change(tls_vault, workdir):
    address = f"https://127.0.0.1:{tls_vault.port}"
    running = Plugin(_at(tls_vault, address), workdir, extra_args=["--tls-skip-verify"])
    try:
        round_trip(running)
        log = running.log_events()
        names = [e.get("event") for e in log]
        warnings = [i for i, name in enumerate(names) if name == "broker.tls.skip_verify"]
        changes = [i for i, name in enumerate(names) if name == "broker.health"]
        assert warnings and warnings[0] < names.index("broker.health")
        assert all(log[i]["level"] == "warning" for i in warnings)
        # Every health change is followed by the warning.
        assert all(any(w > c for w in warnings) for c in changes)
        assert len(warnings) >= 1 + len(changes)
    finally:
        running.stop()


def test_a_listener_requiring_client_certificates_refuses_the_broker_without_one(mtls_vault, pki, workdir):
    running = Plugin(mtls_vault, workdir, wait_ready=False, extra_args=["--tls-ca-file", pki["ca"]])
    try:
        reason = wait_healthz(running, lambda h: h in ("vault TLS handshake failed", "vault unreachable"))
        assert reason != "ok"
    finally:
        running.stop()


def test_a_client_certificate_is_presented_when_configured(mtls_vault, pki, workdir):
    running = Plugin(mtls_vault, workdir, extra_args=[
        "--tls-ca-file", pki["ca"], "--tls-client-cert", pki["client"], "--tls-client-key", pki["client-key"]])
    try:
        round_trip(running)
        assert healthz(running) == "ok"
    finally:
        running.stop()


def test_a_client_certificate_without_its_key_stops_startup(mtls_vault, pki, workdir):
    running = Plugin(mtls_vault, workdir, wait_ready=False,
                     extra_args=["--tls-ca-file", pki["ca"], "--tls-client-cert", pki["client"]])
    assert running.proc.wait(15) != 0
    running.stop()
    assert "--tls-client-cert and --tls-client-key must be given together" in running.log_text()


def test_vault_cacert_is_honoured_as_a_fallback_for_the_ca_file(tls_vault, pki, workdir):
    running = Plugin(tls_vault, workdir, env={**os.environ, "VAULT_CACERT": pki["ca"]})
    try:
        round_trip(running)
    finally:
        running.stop()
