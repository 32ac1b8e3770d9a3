"""Issue 13 finding 1: a consumed secret ID left in the file must not lock the plugin out.

The scenario of the finding, against the simulator and against a real OpenBao: an AppRole with
secret_id_num_uses=1, token TTL 3 s and max TTL 6 s. The broker logs in with secret ID A, logs in
again with a rotated B, and at the next re-login the file still holds the consumed B. Before the
fix it retried after 166, 82, 41 ms (four refusals in 300 ms), then slept 930 s, ignoring a good
secret ID written meanwhile. Now: one refusal, the next attempt on the 30 s back-off, health says
"secret ID refused; waiting for a new secret-ID file", and a new file is used within seconds."""
import re
import time

import pytest

from kmstest import vaultenv
from kmstest.openbao import OpenBaoServer
from kmstest.brokerhelpers import events, round_trip, wait_healthz
from kmstest.plugin import Plugin

pytestmark = pytest.mark.skipif(vaultenv.is_external(), reason="changes the AppRole and starts its own servers")

WAITING = "secret ID refused; waiting for a new secret-ID file"


@pytest.fixture(params=[pytest.param("simulator", marks=pytest.mark.simulator_only(
    "second personality of the same scenario (the OpenBao case runs in every mode)")), "openbao"])
def use_once_vault(request, tmp_path_factory):
    server = (vaultenv.SimulatorProcess() if request.param == "simulator"
              else OpenBaoServer(str(tmp_path_factory.mktemp("openbao"))))
    try:
        setup = vaultenv.VaultSetup(server.address, server.root_token, str(tmp_path_factory.mktemp("vault")))
        setup.root.auth.approle.create_or_update_approle(
            role_name=setup.role, token_policies=[setup.policy], token_ttl="3s", token_max_ttl="6s",
            secret_id_num_uses=1, mount_point=setup.auth_mount)
        setup.secret_id = setup.new_secret_id()  # issued under the use-once rule
        setup.write_secret_id(setup.secret_id)
        yield setup
    finally:
        server.stop()


def _wait_for(predicate, timeout, what, plugin):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen in {timeout}s:\n{plugin.log_text()[-4000:]}")


def test_a_consumed_secret_id_is_not_retried_in_a_burst_and_a_new_file_recovers_in_seconds(use_once_vault, workdir):
    vault = use_once_vault
    running = Plugin(vault, workdir)
    try:
        # A was consumed by the first login; rotate to B, which the next re-login (before the
        # 6 s max TTL) consumes.
        vault.write_secret_id(vault.new_secret_id())
        _wait_for(lambda: len(events(running, "broker.login.ok")) >= 2, 15, "the re-login with B", running)
        # The file still holds the consumed B: the next re-login is refused, and the token runs out.
        _wait_for(lambda: events(running, "broker.login.failed"), 15, "a refused login", running)
        refused_at = time.time()
        health = wait_healthz(running, lambda h: h.startswith(WAITING), timeout=10)
        assert re.fullmatch(re.escape(WAITING) + r" \(next attempt \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)", health), health
        time.sleep(max(0.0, refused_at + 3 - time.time()))
        # One refusal, spaced by the back-off: never a burst of retries while the token was held.
        assert len(events(running, "broker.login.failed")) == 1, running.log_text()
        retries = [e for e in events(running, "broker.login.retry") if e["kind"] == "credentials"]
        assert retries and all(int(e["after_millis"]) >= 24_000 for e in retries), retries
        waiting = events(running, "broker.login.waiting_for_secret_id")
        assert waiting and waiting[0]["reason"] == WAITING and waiting[0]["next_attempt"].endswith("Z")

        # A good secret ID written now is used within seconds, not after the back-off.
        vault.write_secret_id(vault.new_secret_id())
        written = time.time()
        wait_healthz(running, lambda h: h == "ok", timeout=10)
        recovered = time.time() - written
        assert recovered < 4, f"recovered after {recovered:.1f}s"
        assert [e["action"] for e in events(running, "broker.login.secret_id_changed")] == ["login now"]
        round_trip(running)
        assert running.proc.poll() is None
    finally:
        running.stop()
