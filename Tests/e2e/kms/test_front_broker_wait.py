"""Calls that arrive while the broker is starting wait for it within their deadline (bounded,
counted in /metrics) instead of failing at once with UNAVAILABLE "broker not ready"
(Sources/Front/GRPCServer+BrokerWait.swift). The real front against the fake broker of
fakebroker.py, which can hold back its HELLO answer and answer "not ready" like a broker that has
not logged in to Vault yet. The same defect under systemd socket activation with a real OpenBao:
Tests/e2e/deploy/test_systemd_nspawn_split.py."""
import os
import re
import time
import urllib.request

import grpc
import pytest

from kmstest import brokerproto as bp
from kmstest.fakebroker import KEY_ID, default_handler
from kmstest.ports import free_port
from test_front_grpc import api, make_front  # noqa: F401  (fixtures)


def start_front(make_front, **kwargs):
    port = free_port()
    front = make_front(extra={"metrics-port": str(port), "health-port": "0"}, **kwargs)
    front.metrics_port = port
    return front


def wait_metrics(front):
    """The front's broker-wait figures from /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{front.metrics_port}/metrics", timeout=5).read().decode()
    found = {"waited": int(re.search(r"^vault_kube_kms_broker_wait_calls_total (\d+)$", text, re.M).group(1)),
             "waiting": int(re.search(r"^vault_kube_kms_broker_waiting_calls (\d+)$", text, re.M).group(1))}
    for outcome in ("served", "gave_up", "queue_full"):
        found[outcome] = int(re.search(
            r'^vault_kube_kms_broker_wait_outcomes_total\{outcome="%s"\} (\d+)$' % outcome, text, re.M).group(1))
    return found


def test_an_encrypt_before_the_hello_answer_waits_and_is_served_once_the_broker_answers(make_front, api):
    pb2, _ = api
    front = start_front(make_front, answer_hello=False)
    stub = front.stub(api)
    start = time.monotonic()
    call = stub.Encrypt.future(pb2.EncryptRequest(plaintext=b"s" * 32, uid="first"), timeout=5)
    time.sleep(0.7)
    assert not call.done(), "the call was answered before the broker was ready"
    assert not front.broker.requests_of(bp.ENCRYPT_REQUEST)
    assert wait_metrics(front)["waiting"] == 1
    front.broker.release_hello()
    assert call.result().key_id == KEY_ID
    assert 0.7 <= time.monotonic() - start < 3
    # The broker was told the deadline left after the wait, not the one the call started with.
    assert 0 < front.broker.requests_of(bp.ENCRYPT_REQUEST)[0]["deadline_ms"] <= 4400
    figures = wait_metrics(front)
    assert (figures["waited"], figures["served"], figures["gave_up"], figures["waiting"]) == (1, 1, 0, 0)


def test_a_status_before_the_hello_answer_waits_too(make_front, api):
    pb2, _ = api
    front = start_front(make_front, answer_hello=False)
    call = front.stub(api).Status.future(pb2.StatusRequest(), timeout=5)
    time.sleep(0.3)
    assert not call.done()
    front.broker.release_hello()
    assert call.result().healthz == "ok"


def test_a_call_waits_no_longer_than_its_deadline_and_then_gets_broker_not_ready(make_front, api):
    pb2, _ = api
    front = start_front(make_front, answer_hello=False)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        front.stub(api).Encrypt(pb2.EncryptRequest(plaintext=b"s" * 32, uid="late"), timeout=1.5)
    elapsed = time.monotonic() - start
    # Answered by the front shortly before the deadline, with the reason, not DEADLINE_EXCEEDED.
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error.value.details() == "broker not ready"
    assert 1.0 <= elapsed < 1.5
    figures = wait_metrics(front)
    assert (figures["waited"], figures["served"], figures["gave_up"], figures["waiting"]) == (1, 0, 1, 0)
    assert not front.broker.requests_of(bp.ENCRYPT_REQUEST)


def test_not_ready_from_a_starting_broker_is_sent_again_until_the_broker_serves(make_front, api):
    pb2, _ = api
    front = start_front(make_front)
    answers = iter([bp.error_answer("not-ready")] * 3)

    def starting(msg_type, request):
        answer = next(answers, None)
        return (msg_type + 1, answer) if answer else default_handler(msg_type, request)

    front.broker.handler = starting
    start = time.monotonic()
    response = front.stub(api).Encrypt(pb2.EncryptRequest(plaintext=b"s" * 32, uid="retried"), timeout=5)
    assert response.key_id == KEY_ID
    assert time.monotonic() - start < 2
    sent = front.broker.requests_of(bp.ENCRYPT_REQUEST)
    assert len(sent) == 4
    assert all(request["uid"] == "retried" for request in sent)
    assert sent[-1]["deadline_ms"] < sent[0]["deadline_ms"]
    figures = wait_metrics(front)
    assert (figures["waited"], figures["served"], figures["gave_up"]) == (1, 1, 0)


def test_not_ready_after_the_broker_has_served_is_answered_at_once(make_front, api):
    pb2, _ = api
    front = start_front(make_front)
    stub = front.stub(api)
    assert stub.Encrypt(pb2.EncryptRequest(plaintext=b"s" * 32, uid="served"), timeout=5).key_id == KEY_ID
    front.broker.handler = lambda t, r: (t + 1, bp.error_answer("not-ready"))
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        stub.Encrypt(pb2.EncryptRequest(plaintext=b"s" * 32, uid="lost"), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 1
    assert len(front.broker.requests_of(bp.ENCRYPT_REQUEST)) == 2
    assert wait_metrics(front)["waited"] == 0


def test_a_status_while_the_broker_logs_in_waits_for_an_ok_healthz(make_front, api):
    pb2, _ = api
    front = start_front(make_front)
    answers = iter(["not logged in yet", "key metadata not read yet"])

    def logging_in(msg_type, request):
        reason = next(answers, None)
        return (bp.STATUS_ANSWER, bp.status_answer(reason, "")) if reason else default_handler(msg_type, request)

    front.broker.handler = logging_in
    status = front.stub(api).Status(pb2.StatusRequest(), timeout=5)
    assert (status.healthz, status.key_id) == ("ok", KEY_ID)
    assert len(front.broker.requests_of(bp.STATUS_REQUEST)) == 3


def test_a_status_with_a_failing_healthz_is_answered_at_once(make_front, api):
    pb2, _ = api
    front = start_front(make_front)
    front.broker.handler = lambda t, r: (bp.STATUS_ANSWER, bp.status_answer("vault unreachable", ""))
    start = time.monotonic()
    assert front.stub(api).Status(pb2.StatusRequest(), timeout=5).healthz == "vault unreachable"
    assert time.monotonic() - start < 1
    assert len(front.broker.requests_of(bp.STATUS_REQUEST)) == 1
