"""The split pair under a real systemd 252 as PID 1 (systemd-nspawn), installed and started by
the commands of docs/operations.md section 2 (nspawnlane.py runs its marked blocks), against a
real OpenBao dev server on the host's loopback. What systemd itself does is checked here: socket
activation by the first KMS call, Type=notify READY and STATUS=, the watchdog, Restart=on-failure,
the stop order, journald, LoadCredential=, the online exposure score and IPAddressAllow=.

Where a timeout of the shipped unit would make a check slow it is shortened by a drop-in and
named in the test (WatchdogSec=30s becomes 4s); every other directive is the shipped one."""
import os
import re
import shutil
import subprocess
import time

import grpc
import pytest

from kmstest import kmsclient
from kmstest import nspawnlane
from kmstest.kmsclient import api
from kmstest.nspawnlane import BUNDLE_IN_ROOT, KMS_SOCKET

FRONT, BROKER = "vault-kube-kms-front.service", "vault-kube-kms-broker.service"

pytestmark = nspawnlane.lane_marks()


@pytest.fixture(scope="module")
def node():
    with nspawnlane.installed("split", "split-units") as node:
        yield node


def active(node, unit):
    return node.container.run(f"systemctl is-active {unit}", check=False).stdout.strip()


def test_the_first_kms_call_starts_both_services_by_socket_activation_and_is_answered(node):
    lines = node.block_lines("split-start")
    # daemon-reload, enable the services (for boot), enable --now the sockets.
    for line in lines[:3]:
        node.container.run(line, cwd=BUNDLE_IN_ROOT)
    assert (active(node, FRONT), active(node, BROKER)) == ("inactive", "inactive")
    assert active(node, "vault-kube-kms-front.socket") == "active"
    stub, channel = node.kms_stub()
    with channel:
        start = time.monotonic()
        # The kube-apiserver's call: its 3 s deadline, sent before anything else runs.
        encrypted = stub.Encrypt(api().EncryptRequest(plaintext=b"first call" * 3, uid="first"), timeout=3)
        elapsed = time.monotonic() - start
        assert encrypted.key_id.startswith("transit-v1-")
        assert stub.Decrypt(api().DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                                 uid="first"), timeout=3).plaintext == b"first call" * 3
    assert (active(node, FRONT), active(node, BROKER)) == ("active", "active")
    # Whether it had to wait for the broker's HELLO or login depends on who won the race; it is
    # counted when it did (test_front_broker_wait.py proves the wait itself).
    waited = re.search(r"^vault_kube_kms_broker_wait_calls_total (\d+)$", node.front_metrics(), re.M)
    assert waited, "the front exports no broker-wait counter"
    print(f"first call answered after {elapsed:.3f} s, waited for the broker: {waited.group(1)}")
    # The rest of the documented block: the probe and the journal.
    for line in lines[3:]:
        node.container.run(line, cwd=BUNDLE_IN_ROOT)


def test_systemctl_status_shows_the_sd_notify_status_lines(node):
    # The broker reports its health once a second (BrokerProcess.reportHealth): "not logged in yet"
    # at start, then "serving <socket>".
    node.wait_for(lambda: node.container.show(BROKER, "StatusText")["StatusText"].startswith("serving "), 10,
                  "the broker's STATUS= never became serving")
    texts = {unit: node.container.show(unit, "StatusText")["StatusText"] for unit in (FRONT, BROKER)}
    print(f"STATUS= lines: {texts}")
    assert texts[FRONT] == f"serving unix://{KMS_SOCKET}"
    assert texts[BROKER].startswith("serving "), texts
    for unit in (FRONT, BROKER):
        shown = node.container.run(f"systemctl status --no-pager {unit}", check=False).stdout
        assert f'Status: "{texts[unit]}"' in shown, shown


def test_the_front_is_ready_only_once_the_broker_answered_its_hello(node):
    # The broker is frozen (its socket, systemd's, still accepts): a restarted front connects,
    # sends HELLO and must stay "activating" until the answer comes, then become active.
    broker = node.container.main_pid(BROKER)
    os.kill(broker, 19)  # SIGSTOP
    try:
        node.container.run(f"systemctl restart --no-block {FRONT}")
        time.sleep(2)
        assert active(node, FRONT) == "activating"
        assert node.container.show(FRONT, "StatusText")["StatusText"] == "connecting to the broker"
    finally:
        os.kill(broker, 18)  # SIGCONT
    node.wait_for(lambda: active(node, FRONT) == "active", 15, "the front did not become ready")
    node.wait_serving()


def test_journalctl_finds_the_logs_by_identifier_and_by_unit_with_their_fields(node):
    by_identifier = node.journal("-t", "vault-kube-kms")
    by_unit = node.journal("-u", BROKER)
    for entries in (by_identifier, by_unit):
        login = [e for e in entries if e.get("EVENT") == "broker.login.ok"]
        assert login, [e.get("MESSAGE") for e in entries][-20:]
        assert login[0]["PROCESS"] == "broker" and login[0]["SYSLOG_IDENTIFIER"] == "vault-kube-kms"
        assert login[0]["PRIORITY"] == "6"
    front = [e for e in node.journal("-t", "vault-kube-kms-front") if e.get("EVENT") == "broker.ready"]
    assert front and front[0]["PROCESS"] == "front" and front[0]["_SYSTEMD_UNIT"] == FRONT
    # Native entries, not stderr lines: journald saw no JSON text.
    assert not any(e.get("MESSAGE", "").startswith("{") for e in by_unit)


def test_load_credential_hands_the_broker_its_private_copy_of_the_secret_id(node):
    inner = node.container.show(BROKER, "MainPID")["MainPID"]
    listing = node.container.run(
        f"stat -c '%U %a %s' /run/credentials/{BROKER}/secret-id; "
        f"tr '\\0' '\\n' < /proc/{inner}/environ | grep ^CREDENTIALS_DIRECTORY=").stdout.split("\n")
    owner, mode, size = listing[0].split()
    assert (owner, mode) == ("vault-kube-kms", "400") and int(size) > 0
    assert listing[1] == f"CREDENTIALS_DIRECTORY=/run/credentials/{BROKER}"
    same = node.container.run(f"cmp /etc/vault-kube-kms/secret-id /run/credentials/{BROKER}/secret-id",
                              check=False)
    assert same.returncode == 0


def test_the_documented_secret_id_rotation_works_under_systemd(node):
    old_accessor = node.secret_id_accessor()
    node.rotate_secret_id(BROKER)
    assert node.secret_id_accessor() != old_accessor
    # The broker's copy is the new secret ID; the old one is destroyed; the pair serves.
    node.container.run(f"cmp /etc/vault-kube-kms/secret-id /run/credentials/{BROKER}/secret-id")
    status, _ = node.bao.request("POST", "auth/approle/role/vault-kube-kms/secret-id-accessor/lookup",
                                 {"secret_id_accessor": old_accessor})
    assert status in (400, 404)
    node.wait_serving()


def test_systemd_analyze_security_of_the_running_units_meets_the_targets(node):
    scores = {unit: node.exposure(unit) for unit in (FRONT, BROKER)}
    print(f"systemd-analyze security (online): {scores}")
    assert scores[FRONT] <= 1.5 and scores[BROKER] <= 2.5, scores


def test_the_watchdog_restarts_a_stopped_broker(node):
    node.shorten_watchdog(BROKER)
    before = int(node.container.show(BROKER, "NRestarts")["NRestarts"])
    os.kill(node.container.main_pid(BROKER), 19)  # SIGSTOP: the event loop no longer sends WATCHDOG=1
    node.wait_for(lambda: int(node.container.show(BROKER, "NRestarts")["NRestarts"]) == before + 1, 30,
                  "the watchdog did not restart the broker")
    assert any("Watchdog timeout" in e.get("MESSAGE", "") for e in node.journal("-u", BROKER))
    node.wait_serving()


def test_a_killed_broker_or_front_is_restarted_and_no_call_fails_outside_the_restart_window(node):
    for unit in (BROKER, FRONT):
        before = int(node.container.show(unit, "NRestarts")["NRestarts"])
        inode = os.stat(node.container.host_path(KMS_SOCKET)).st_ino
        calls = node.calling_client()
        time.sleep(1)
        killed_at = time.monotonic()
        os.kill(node.container.main_pid(unit), 9)
        node.wait_for(lambda: int(node.container.show(unit, "NRestarts")["NRestarts"]) == before + 1, 20,
                      f"{unit} was not restarted")
        node.wait_serving()
        back_at = time.monotonic()
        time.sleep(1.5)
        results = calls.stop()
        failed = [r for r in results if r[1] != "OK"]
        print(f"{unit}: {len(results)} calls, {len(failed)} failed, restart window {back_at - killed_at:.2f} s")
        # Calls fail only inside the restart window, and the KMS socket (systemd's) never went away.
        assert all(killed_at <= r[0] <= back_at for r in failed), failed
        assert len([r for r in results if r[0] > back_at]) > 0
        assert os.stat(node.container.host_path(KMS_SOCKET)).st_ino == inode


def test_ip_address_allow_blocks_a_non_allowed_loopback_address(node):
    blocked, allowed = node.egress_attempts(BROKER)
    assert blocked == 0, "the broker reached 127.0.0.2 although the drop-in allows only 127.0.0.1/32"
    assert allowed > 0, "control: with 127.0.0.2 allowed the broker does connect there"
    node.wait_serving()


def test_without_proc_both_installed_binaries_still_read_their_flags(node):
    # A chroot into the installed root from the host: nothing is mounted on its /proc there.
    root = node.container.root
    assert not os.path.exists(os.path.join(root, "proc", "self"))
    for binary in ("vault-kube-kms", "vault-kube-kms-front"):
        result = subprocess.run(["chroot", root, f"/usr/local/bin/{binary}", "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and f"USAGE: {binary}" in result.stdout, result.stdout + result.stderr
        refused = subprocess.run(["chroot", root, f"/usr/local/bin/{binary}", "--no-such-flag"],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "--no-such-flag" in refused.stderr


def test_upgrade_drill_replaces_the_binaries_under_load_and_loses_no_call(node):
    """docs/operations.md section 4 on the split pair while a client keeps calling: keep the
    running files, install the new bundle's, preflight, restart the broker and then the front
    (two commands), then roll back the same way. (The "new" bundle is this run's build again:
    the drill proves the procedure, not a difference between versions.)"""
    pb2 = kmsclient.stubs()[0]
    stub, channel = node.kms_stub()
    with channel:
        before = [stub.Encrypt(pb2.EncryptRequest(plaintext=os.urandom(32), uid="before"), timeout=3)
                  for _ in range(3)]
    preflight_before = [line for line in node.preflight().splitlines() if "key.min_decryption_version" in line]
    new_bundle = BUNDLE_IN_ROOT + "-new"
    shutil.copytree(nspawnlane.shared().bundle, node.container.root + new_bundle)
    calls = node.calling_client()
    time.sleep(1)
    node.container.run(node.blocks["upgrade-install"], cwd=new_bundle)
    assert os.path.exists(node.container.root + "/usr/local/bin/vault-kube-kms.prev")
    preflight_after = [line for line in node.preflight().splitlines() if "key.min_decryption_version" in line]
    pids = (node.container.main_pid(FRONT), node.container.main_pid(BROKER))
    node.container.run(node.blocks["upgrade-restart-split"])
    assert (node.container.main_pid(FRONT), node.container.main_pid(BROKER)) != pids
    node.wait_serving()
    time.sleep(1)
    node.container.run(node.blocks["rollback"])
    node.container.run(node.blocks["upgrade-restart-split"])
    node.wait_serving()
    time.sleep(1)
    results = calls.stop()
    failed = [result for result in results if result[1] != "OK"]
    print(f"upgrade drill: {len(results)} calls during two restarts, {len(failed)} failed: {failed}")
    # docs/operations.md section 4: the documented procedure loses no call. Not to the broker
    # restart (both services in one `systemctl restart` would: systemd starts the new broker only
    # after the old front stopped, and a call the old front holds for a broker fails after 2.9 s,
    # `broker not ready`), and not to the front restart: the old front's GOAWAY comes in two steps
    # (a shutdown notice, then the final GOAWAY 200 ms later), so a call written as it drains is
    # still served (test_front_robustness.py::test_a_call_written_as_the_drain_begins_is_served_not_dropped).
    if failed or os.environ.get("KMS_LANE_DRILL_JOURNAL"):
        print(node.container.run(f"journalctl --no-pager -o short-monotonic -u {FRONT} -u {BROKER} | tail -200",
                                 check=False).stdout)
    assert failed == []
    assert len(results) > 20
    # What was written before the upgrade decrypts after the upgrade and the rollback.
    stub, channel = node.kms_stub()
    with channel:
        for encrypted in before:
            assert stub.Decrypt(pb2.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id,
                                                   uid="after"), timeout=3).plaintext
    assert preflight_before == preflight_after and "PASS" in preflight_after[0], (preflight_before, preflight_after)


def test_after_the_upgrade_min_decryption_version_guidance_holds_on_the_real_server(node):
    """docs/operations.md sections 5 and 6 on the upgraded pair: after a rotation, rewrite then
    raise `min_decryption_version` loses nothing (the rewritten object decrypts), an object not
    rewritten fails with the documented `FAILED_PRECONDITION unknown key_id`, and lowering it
    again makes that object readable again. The broker's key probe runs every 1 s here
    (VAULT_KUBE_KMS_KEY_CHECK_INTERVAL, a drop-in) instead of 30 s, so that adoption takes
    seconds, not a minute."""
    pb2 = kmsclient.stubs()[0]
    node.drop_in(BROKER, "key-check", "[Service]\nEnvironment=VAULT_KUBE_KMS_KEY_CHECK_INTERVAL=1s\n")
    node.container.run(f"systemctl restart {BROKER}")
    try:
        node.wait_serving()
        stub, channel = node.kms_stub()
        with channel:
            seeds = [os.urandom(32) for _ in range(2)]
            old = [stub.Encrypt(pb2.EncryptRequest(plaintext=seed, uid="mdv"), timeout=3) for seed in seeds]
            old_key_id = stub.Status(pb2.StatusRequest(), timeout=3).key_id
            status, _ = node.bao.request("POST", "transit/keys/kube-kek/rotate")
            assert status in (200, 204), status
            rotated = time.monotonic()
            node.wait_for(lambda: stub.Status(pb2.StatusRequest(), timeout=3).key_id != old_key_id, 20,
                          "the broker did not adopt the rotated version")
            print(f"rotation adopted after {time.monotonic() - rotated:.1f} s")
            # Rewrite (what the storage migration does) the first object only.
            rewritten = stub.Encrypt(pb2.EncryptRequest(
                plaintext=stub.Decrypt(pb2.DecryptRequest(ciphertext=old[0].ciphertext, key_id=old[0].key_id,
                                                          uid="mdv"), timeout=3).plaintext, uid="mdv"), timeout=3)
            assert rewritten.key_id != old[0].key_id
            _, key = node.bao.request("GET", "transit/keys/kube-kek")
            latest = key["data"]["latest_version"]
            status, _ = node.bao.request("POST", "transit/keys/kube-kek/config", {"min_decryption_version": latest})
            assert status in (200, 204), status

            def refused():
                try:
                    stub.Decrypt(pb2.DecryptRequest(ciphertext=old[1].ciphertext, key_id=old[1].key_id, uid="mdv"),
                                 timeout=3)
                    return False
                except grpc.RpcError as error:
                    assert (error.code(), error.details()) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                               "unknown key_id"), error
                    return True

            raised = time.monotonic()
            node.wait_for(refused, 20, "raising min_decryption_version did not retire the old version")
            print(f"min_decryption_version={latest} refused the old object after {time.monotonic() - raised:.1f} s")
            assert stub.Decrypt(pb2.DecryptRequest(ciphertext=rewritten.ciphertext, key_id=rewritten.key_id,
                                                   uid="mdv"), timeout=3).plaintext == seeds[0]
            # Raised too early: lowering it again loses nothing (nothing was trimmed).
            status, _ = node.bao.request("POST", "transit/keys/kube-kek/config", {"min_decryption_version": 1})
            assert status in (200, 204), status
            node.wait_for(lambda: not refused(), 20, "lowering min_decryption_version did not bring the version back")
            assert stub.Decrypt(pb2.DecryptRequest(ciphertext=old[1].ciphertext, key_id=old[1].key_id, uid="mdv"),
                                timeout=3).plaintext == seeds[1]
    finally:
        node.remove_drop_in(BROKER, "key-check")
        node.container.run(f"systemctl restart {BROKER}")
        node.wait_serving()


def test_stop_stops_the_front_before_the_broker_and_the_broker_revokes_its_token(node):
    accessors = node.broker_token_accessors()
    assert accessors, "the running broker holds no token"
    node.container.run(f"systemctl stop {FRONT} {BROKER}")
    entries = node.journal("-u", FRONT, "-u", BROKER)

    def first(unit, prefix):
        return min(int(e["__MONOTONIC_TIMESTAMP"]) for e in entries
                   if e.get("UNIT") == unit and e.get("MESSAGE", "").startswith(prefix))

    assert first(FRONT, "Stopped ") <= first(BROKER, "Stopping ")
    assert any(e.get("EVENT") == "broker.token.revoked" for e in entries)
    status, _ = node.bao.request("POST", "auth/token/lookup-accessor", {"accessor": accessors[0]})
    assert status in (400, 403), "the broker's token is still valid after stop"
