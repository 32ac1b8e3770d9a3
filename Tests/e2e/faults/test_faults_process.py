"""Process faults (spawn topology): the broker or the front killed with SIGKILL, alone and in a loop
under a steady load of concurrent calls. Asserts what kube-apiserver sees (only UNAVAILABLE or
DEADLINE_EXCEEDED while a process is down, never a wrong plaintext, never a call past its deadline)
and that every ciphertext produced before, during and after still decrypts."""
import os
import random
import signal
import threading
import time

import grpc

from kmstest import kmsclient
from kmstest.faultkit import DEADLINE, Ledger
from kmstest.kmsclient import api
from kmstest.plugin import Plugin, proc_status

SLACK = 0.75
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def gone(pid, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not os.path.exists(f"/proc/{pid}") or "Z" in proc_status(pid)["State"]:
            return True
        time.sleep(0.05)
    return False


def new_front_pid(running, old, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            pid = running.front_pid()
            if pid != old:
                return pid
        except (AssertionError, FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("the broker did not restart the front")


class Load:
    """Worker threads calling Encrypt, and Decrypt of earlier results, until stopped."""

    def __init__(self, socket_path, ledger, workers=6):
        self.socket_path = socket_path
        self.ledger = ledger
        self.stop_event = threading.Event()
        self.failures = []  # (code, seconds)
        self.wrong = 0
        self.calls = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def _run(self, index):
        client = kmsclient.client(self.socket_path)
        rng = random.Random(index)
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                if self.ledger.entries and rng.random() < 0.5:
                    plaintext, ciphertext, key_id = rng.choice(self.ledger.entries)
                    back = client.Decrypt(
                        api().DecryptRequest(ciphertext=ciphertext, key_id=key_id, uid="load"), timeout=DEADLINE)
                    if back.plaintext != plaintext:
                        with self.lock:
                            self.wrong += 1
                else:
                    self.ledger.encrypt(client)
            except grpc.RpcError as error:
                with self.lock:
                    self.failures.append((error.code(), time.monotonic() - started))
                client = kmsclient.client(self.socket_path)  # a fresh channel, no reconnect backoff
                time.sleep(0.05)
            with self.lock:
                self.calls += 1

    def stop(self):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(DEADLINE + 5)


def assert_seen_by_apiserver(load):
    assert load.wrong == 0, "a Decrypt returned a wrong plaintext"
    assert {code for code, _ in load.failures} <= TRANSIENT, load.failures
    slowest = max((seconds for _, seconds in load.failures), default=0)
    assert slowest < DEADLINE + SLACK, slowest


def test_broker_sigkill_takes_the_front_down_and_a_restart_loses_nothing(vault, workdir):
    ledger = Ledger()
    running = Plugin(vault, workdir)
    for _ in range(5):
        ledger.encrypt(running.client())
    front = running.front_pid()
    os.kill(running.proc.pid, signal.SIGKILL)
    running.proc.wait()
    running.stop()
    assert gone(front), "the front outlived its broker"
    started = time.monotonic()
    try:
        running.client().Status(api().StatusRequest(), timeout=1)
        raise AssertionError("Status answered with no broker")
    except grpc.RpcError as error:
        assert error.code() in TRANSIENT
    assert time.monotonic() - started < 1 + SLACK
    restarted = Plugin(vault, workdir)  # the unit manager's restart
    try:
        assert ledger.verify(restarted.client()) == 5
    finally:
        restarted.stop()


def test_front_sigkill_is_restarted_and_calls_resume_within_the_deadline(vault, workdir):
    ledger = Ledger()
    running = Plugin(vault, workdir)
    try:
        ledger.encrypt(running.client())
        old = running.front_pid()
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        new_front_pid(running, old)
        running.wait_healthy(timeout=DEADLINE)
        assert time.monotonic() - killed < DEADLINE  # invisible to an apiserver that waits for ready
        ledger.encrypt(running.client())
        assert ledger.verify(running.client()) == 2
    finally:
        running.stop()


def test_both_processes_killed_in_a_loop_under_concurrent_load_lose_nothing(vault, workdir):
    ledger = Ledger()
    running = Plugin(vault, workdir)
    load = Load(running.socket, ledger)
    try:
        time.sleep(1)
        for _ in range(3):
            old = running.front_pid()
            os.kill(old, signal.SIGKILL)
            new_front_pid(running, old)
            running.wait_healthy(timeout=15)
            time.sleep(0.5)
            front = running.front_pid()
            os.kill(running.proc.pid, signal.SIGKILL)
            running.proc.wait()
            running.stop()
            assert gone(front)
            running = Plugin(vault, workdir)
            time.sleep(0.5)
    finally:
        load.stop()
    try:
        assert_seen_by_apiserver(load)
        assert len(ledger.entries) > 20, "the load made almost no progress"
        assert ledger.verify(running.client()) == len(ledger.entries)
        print(f"\nkill loop: {load.calls} calls, {len(load.failures)} transient failures, "
              f"{len(ledger.entries)} ciphertexts all decrypted")
    finally:
        running.stop()
