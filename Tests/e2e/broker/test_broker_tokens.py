"""Token lifecycle against a real OpenBao with short AppRole TTLs (seconds): renewal across several
TTLs, a fresh login before the max TTL, secret-ID rotation without a restart (the old one
destroyed), a rotated file with bad permissions, login back-off, and one re-login after the token
was revoked under the broker. Requests are counted in OpenBao's audit log (the simulator's stats in
simulator mode)."""
import os
import time

import pytest

from kmstest import vaultenv
from kmstest.brokerhelpers import events, healthz, round_trip, wait_healthz
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.mode() != "openbao", reason="needs an OpenBao of its own with an audit log")


@pytest.fixture()
def own_vault(tmp_path_factory):
    """An OpenBao per test with a file audit device: these tests change the role and count requests."""
    server = vaultenv.start_server(str(tmp_path_factory.mktemp("server")), audit=True)
    setup = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("vault")))
    setup.server = server
    yield setup
    server.stop()


def counts(vault):
    return vault.server.request_counts()


def _short_ttls(vault, ttl, max_ttl):
    vault.root.auth.approle.create_or_update_approle(
        role_name=vault.role, token_policies=[vault.policy], token_ttl=ttl, token_max_ttl=max_ttl,
        mount_point=vault.auth_mount)


def test_a_short_token_is_renewed_across_several_ttls_and_replaced_before_its_max_ttl(own_vault, workdir):
    _short_ttls(own_vault, "3s", "7s")
    running = Plugin(own_vault, workdir)
    try:
        deadline = time.time() + 16
        while time.time() < deadline:
            assert healthz(running) == "ok"
            round_trip(running)
            time.sleep(0.5)
        stats = counts(own_vault)
        # 16 s with a 3 s TTL and a 7 s max TTL: renewals in every token's life, fresh logins
        # before each max TTL, and the plugin healthy and serving throughout.
        assert stats.get("auth/token/renew-self", 0) >= 3, stats
        assert stats.get(f"auth/{own_vault.auth_mount}/login", 0) >= 3, stats
        assert events(running, "broker.token.max_ttl_near")
    finally:
        running.stop()


def test_a_rotated_secret_id_is_used_at_the_next_login_without_a_restart(own_vault, workdir):
    _short_ttls(own_vault, "3s", "4s")
    running = Plugin(own_vault, workdir)
    try:
        first_pid = running.proc.pid
        rotated = own_vault.new_secret_id()
        own_vault.write_secret_id(rotated)
        own_vault.root.auth.approle.destroy_secret_id(
            own_vault.role, own_vault.secret_id, mount_point=own_vault.auth_mount)
        # The 4 s max TTL forces a fresh login, with the secret ID the file holds now (the old one
        # is destroyed in OpenBao), without a restart.
        deadline = time.time() + 15
        while time.time() < deadline and len(events(running, "broker.login.ok")) < 2:
            round_trip(running)
            time.sleep(0.2)
        assert len(events(running, "broker.login.ok")) >= 2, running.log_text()
        round_trip(running)
        assert running.proc.pid == first_pid and running.proc.poll() is None
        assert healthz(running) == "ok"
        assert not events(running, "broker.login.failed")
    finally:
        running.stop()


def test_secret_id_num_uses_is_spent_by_logins_and_a_fresh_secret_id_recovers(own_vault, workdir):
    """secret_id_num_uses=2: two logins spend it (the 3 s max TTL forces the second); the third
    login is refused by OpenBao and health says so; a new secret-ID file recovers in seconds."""
    own_vault.root.auth.approle.create_or_update_approle(
        role_name=own_vault.role, token_policies=[own_vault.policy], token_ttl="2s", token_max_ttl="3s",
        secret_id_num_uses=2, mount_point=own_vault.auth_mount)
    own_vault.write_secret_id(own_vault.new_secret_id())
    running = Plugin(own_vault, workdir)
    try:
        health = wait_healthz(running, lambda h: h.startswith("secret ID refused"), timeout=20)
        assert "waiting for a new secret-ID file" in health
        assert len(events(running, "broker.login.ok")) == 2
        own_vault.write_secret_id(own_vault.new_secret_id())
        wait_healthz(running, lambda h: h == "ok", timeout=15)
        round_trip(running)
    finally:
        running.stop()


def test_a_rotated_secret_id_file_with_bad_permissions_is_refused_and_the_token_kept(own_vault, workdir):
    _short_ttls(own_vault, "3s", "4s")
    running = Plugin(own_vault, workdir)
    try:
        own_vault.write_secret_id(own_vault.new_secret_id(), mode=0o644)
        # The max TTL forces a login within ~3 s; the file is refused, no login is sent.
        deadline = time.time() + 10
        while time.time() < deadline and not events(running, "broker.login.secret_id_refused"):
            time.sleep(0.1)
        refused = events(running, "broker.login.secret_id_refused")
        assert refused, running.log_text()
        assert refused[0]["level"] == "error"
        assert "0400" in refused[0]["reason"] or "permission" in refused[0]["reason"].lower()
        assert refused[0]["token_kept"] == "true"
        # Once the file is fixed the next attempt logs in again.
        own_vault.write_secret_id(own_vault.new_secret_id())
        wait_healthz(running, lambda h: h == "ok")
        round_trip(running)
    finally:
        running.stop()


def test_failed_logins_back_off_and_never_reach_the_approle_lockout(own_vault, workdir):
    own_vault.write_secret_id("00000000-0000-0000-0000-000000000000")
    running = Plugin(own_vault, workdir, wait_ready=False)
    try:
        health = wait_healthz(running, lambda h: h != "not logged in yet")
        assert health.startswith("secret ID refused; waiting for a new secret-ID file (next attempt "), health
        time.sleep(3)
        # Credential failures back off from 30 s: one attempt so far, far from 5 in 15 minutes.
        login_path = f"auth/{own_vault.auth_mount}/login"
        assert counts(own_vault).get(login_path, 0) == 1
        retry = events(running, "broker.login.retry")[0]
        assert retry["kind"] == "credentials" and int(retry["after_millis"]) >= 24_000
    finally:
        running.stop()


def test_a_revoked_token_leads_to_one_login_and_the_call_succeeds(own_vault, workdir):
    running = Plugin(own_vault, workdir)
    try:
        round_trip(running)
        login_path = f"auth/{own_vault.auth_mount}/login"
        before = counts(own_vault).get(login_path, 0)
        assert own_vault.server.revoke_login_tokens(own_vault.auth_mount) == 1
        round_trip(running)  # refused with 403 by OpenBao, one login, the call retried
        assert counts(own_vault).get(login_path, 0) - before == 1
        assert healthz(running) == "ok"
    finally:
        running.stop()
