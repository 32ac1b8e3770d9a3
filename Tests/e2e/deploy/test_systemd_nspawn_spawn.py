"""The spawn unit (vault-kube-kms.service: the broker starts the front) under a real systemd 252
as PID 1, installed and started by docs/operations.md section 2 (nspawnlane.py), against a real
OpenBao. As in test_systemd_nspawn_split.py, WatchdogSec=30s is shortened to 4s by a drop-in for
the watchdog check; every other directive is the shipped one."""
import os
import time

import pytest

from kmstest import nspawnlane
from kmstest.nspawnlane import KMS_SOCKET

UNIT = "vault-kube-kms.service"

pytestmark = nspawnlane.lane_marks()


@pytest.fixture(scope="module")
def node():
    with nspawnlane.installed("spawn", "spawn-units") as node:
        yield node


def test_the_documented_start_serves_and_the_unit_is_ready_only_after_the_front_connected(node):
    # daemon-reload, enable --now, the probe (the first KMS call) and the journal, as written.
    node.run_block("spawn-start")
    assert node.container.show(UNIT, "ActiveState")["ActiveState"] == "active"
    entries = node.journal("-u", UNIT)
    hello = [e for e in entries if e.get("EVENT") == "broker.front.hello"]
    started = [e for e in entries if e.get("MESSAGE", "").startswith("Started ") and e.get("UNIT") == UNIT]
    assert hello and started
    # READY=1 follows the front's HELLO (the broker sends it when answering): logged in that order.
    assert int(hello[0]["__MONOTONIC_TIMESTAMP"]) <= int(started[0]["__MONOTONIC_TIMESTAMP"])
    node.wait_for(lambda: node.container.show(UNIT, "StatusText")["StatusText"] == f"serving unix://{KMS_SOCKET}",
                  10, "no serving STATUS= line")
    shown = node.container.run(f"systemctl status --no-pager {UNIT}", check=False).stdout
    assert f'Status: "serving unix://{KMS_SOCKET}"' in shown, shown
    node.wait_serving()


def test_journalctl_finds_the_broker_by_identifier_and_unit_with_fields(node):
    for entries in (node.journal("-t", "vault-kube-kms"), node.journal("-u", UNIT)):
        login = [e for e in entries if e.get("EVENT") == "broker.login.ok"]
        assert login and login[0]["PROCESS"] == "broker" and login[0]["_SYSTEMD_UNIT"] == UNIT
    # The front's start is reported by the broker (the spawned front has an empty environment,
    # so no JOURNAL_STREAM and no native entries of its own).
    assert any(e.get("EVENT") == "front.ready" for e in node.journal("-t", "vault-kube-kms"))


def test_load_credential_and_the_documented_secret_id_rotation(node):
    listing = node.container.run(f"stat -c '%U %a' /run/credentials/{UNIT}/secret-id").stdout.split()
    assert listing == ["root", "400"]
    old = node.secret_id_accessor()
    node.rotate_secret_id(UNIT)
    assert node.secret_id_accessor() != old
    node.container.run(f"cmp /etc/vault-kube-kms/secret-id /run/credentials/{UNIT}/secret-id")


def test_systemd_analyze_security_of_the_running_unit_meets_the_target(node):
    score = node.exposure(UNIT)
    print(f"systemd-analyze security (online): {UNIT} {score}")
    assert score <= 2.5


def test_the_watchdog_restarts_a_stopped_broker(node):
    node.shorten_watchdog(UNIT)
    before = int(node.container.show(UNIT, "NRestarts")["NRestarts"])
    os.kill(node.container.main_pid(UNIT), 19)  # SIGSTOP
    node.wait_for(lambda: int(node.container.show(UNIT, "NRestarts")["NRestarts"]) == before + 1, 30,
                  "the watchdog did not restart the unit")
    assert any("Watchdog timeout" in e.get("MESSAGE", "") for e in node.journal("-u", UNIT))
    node.wait_serving()


def test_a_killed_broker_is_restarted_and_no_call_fails_outside_the_restart_window(node):
    before = int(node.container.show(UNIT, "NRestarts")["NRestarts"])
    calls = node.calling_client()
    time.sleep(1)
    killed_at = time.monotonic()
    os.kill(node.container.main_pid(UNIT), 9)
    node.wait_for(lambda: int(node.container.show(UNIT, "NRestarts")["NRestarts"]) == before + 1, 20,
                  "the unit was not restarted")
    node.wait_serving()
    back_at = time.monotonic()
    time.sleep(1.5)
    results = calls.stop()
    failed = [r for r in results if r[1] != "OK"]
    print(f"{UNIT}: {len(results)} calls, {len(failed)} failed, restart window {back_at - killed_at:.2f} s")
    assert all(killed_at <= r[0] <= back_at for r in failed), failed
    assert [r for r in results if r[0] > back_at and r[1] == "OK"]


def test_ip_address_allow_blocks_a_non_allowed_loopback_address(node):
    blocked, allowed = node.egress_attempts(UNIT)
    assert blocked == 0 and allowed > 0, (blocked, allowed)
    node.wait_serving()


def test_stop_revokes_the_brokers_token(node):
    accessors = node.broker_token_accessors()
    assert accessors
    node.container.run(f"systemctl stop {UNIT}")
    entries = node.journal("-u", UNIT)
    assert any(e.get("EVENT") == "broker.token.revoked" for e in entries)
    status, _ = node.bao.request("POST", "auth/token/lookup-accessor", {"accessor": accessors[0]})
    assert status in (400, 403)
