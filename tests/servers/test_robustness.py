"""The web front under abuse and process deaths, on the supervised stack
./run.sh starts (supervisord: ingest, web with two uvicorn workers, a
Celery worker and beat), one case per row of issue 10's table. Traffic
goes only to 127.0.0.1 and every load is bounded in time.

bench/robustness_bench.py runs the same cases for longer from ./run.sh and
prints the figures."""

import os
import signal
import time

import httpx
import pytest
from django.utils import timezone

from monitoring.models import MetricRollup, PredictionEvent
from tests.conftest import SEED_FEATURES
from tests.servers.abuse import (
    FeedbackWaiters,
    HalfBodies,
    SteadyClient,
    chunked_post,
    clients_of,
    closed_by_server,
    idle_connections,
    overload,
    predict_ok,
    seconds_until,
    steady_during,
)

pytestmark = pytest.mark.servers

PHASE_SECONDS = 12


def assert_served(stats: dict) -> None:
    assert stats["requests"] >= 100, stats
    assert stats["success_rate"] >= 0.99, stats
    assert stats["p99_ms"] < 1000, stats


def test_idle_connections_half_bodies_and_feedback_waits_do_not_starve_predict(
    supervised,
):
    stack = supervised()

    # 250 connections that send nothing
    idle = idle_connections(stack.url, 250)
    try:
        assert_served(steady_during(stack.url, PHASE_SECONDS))
        # and the server closed them (keep-alive timeout, 5 s)
        assert closed_by_server(idle) >= 240
    finally:
        for sock in idle:
            sock.close()

    # 8 connections that send headers and half a body, then wait
    half = HalfBodies(stack.url, 8).start()
    try:
        assert_served(steady_during(stack.url, PHASE_SECONDS))
    finally:
        half.stop()
    # the server answered each with a 408 after REQUEST_BODY_TIMEOUT (10 s)
    assert half.statuses[408] >= 8, half.statuses

    # 4 clients posting /feedback for unknown ids (each waits FEEDBACK_WAIT)
    waiters = FeedbackWaiters(stack.url, 4).start()
    try:
        assert_served(steady_during(stack.url, PHASE_SECONDS))
    finally:
        waiters.stop()
    assert waiters.statuses[404] >= 4 and set(waiters.statuses) == {404}


def test_300_concurrent_clients_get_200_or_503_with_retry_after(supervised):
    stack = supervised()
    # the forest (a few ms per call) so that both workers saturate
    report = overload(
        stack.url,
        clients=300,
        seconds=8,
        timeout=5,
        body={"features": SEED_FEATURES, "model_version": "v2.0"},
    ).as_dict()
    print(f"\n300 clients, 8 s, v2.0: {report}")
    # Client and servers share two cores: a rare request of ~10,000 may
    # wait out the client's 5 s (seen once in CI: 35 of 11,283, every one
    # still counted here); a hang would be far more, and the tail is bound.
    assert report["no_answer"] <= report["answered"] * 0.005, report
    assert set(report["answers"]) <= {"200", "503"}, report
    assert report["without_retry_after"] == 0, report
    assert report["p99_answer_seconds"] < 1.5, report
    assert report["answers"].get("200", 0) > 0, report
    # 2 s later, the service answers normally
    time.sleep(2)
    stats = steady_during(stack.url, 3)
    assert stats["success_rate"] == 1.0 and stats["p99_ms"] < 1000, stats


def test_chunked_bodies_work_on_the_port(supervised):
    stack = supervised()
    body = b'{"features": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}'
    status, answer = chunked_post(stack.url, "/predict", body)
    assert status == 200 and answer["model_version"] == "v1.0"
    status, answer = chunked_post(
        stack.url,
        "/ab-test/configure",
        b'{"enabled": true, "split_ratio": 0.25, "models": ["v1.0", "v2.0"]}',
    )
    assert status == 200
    assert answer["enabled"] is True and answer["split_ratio"] == 0.25
    status, answer = chunked_post(
        stack.url, "/models/v2.0/activate", b'{"note": "sent in chunks"}'
    )
    assert status == 200 and answer["change"]["note"] == "sent in chunks"


def test_stopping_the_stack_drains_every_answered_event(supervised):
    # given: predictions answered just now, their events still in the web
    # workers' buffers (written every 250 ms)
    stack = supervised()
    with httpx.Client(timeout=5) as client:
        answered = []
        for i in range(300):
            request_id = f"drain-{i}"
            response = client.post(
                f"{stack.url}/predict",
                json={"features": SEED_FEATURES},
                headers={"X-Request-ID": request_id},
            )
            assert response.status_code == 200
            answered.append(request_id)
    # when: the stack stops (SIGTERM to supervisord, as Ctrl-C on run.sh)
    stack.stop()
    # then: every event was written on the way out
    assert set(answered) <= stored_request_ids()


def served_by_new_worker(stack, dead_pid: int) -> bool:
    workers = {p.pid for p in stack.web_workers()} - {dead_pid}
    if len(workers) < 2:
        return False
    try:
        pid = httpx.get(f"{stack.url}/health", timeout=2).json()["pid"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    first = stack.first_workers
    return pid in workers and pid not in first


def stored_request_ids() -> set[str]:
    return set(PredictionEvent.objects.values_list("request_id", flat=True))


def test_a_killed_process_of_any_role_is_back_and_nothing_answered_is_lost(
    supervised, record_property
):
    stack = supervised()
    stack.first_workers = {p.pid for p in stack.web_workers()}
    clients = [SteadyClient(stack.url).start() for _ in range(4)]
    time.sleep(2)

    # a web worker (the one with the most clients): the other answers at
    # once, supervisord starts a new one
    victim = max(stack.web_workers(), key=lambda p: clients_of(p, stack.port))
    killed_at = time.time()
    victim.send_signal(signal.SIGKILL)
    answering = seconds_until(lambda: predict_ok(stack.url), 10)
    assert answering is not None, "/predict did not answer within 10 s"
    # back: a new worker answers (its pid seen by /health on a new
    # connection). It imports Django, scikit-learn and onnxruntime and warms
    # up its models while four clients keep both cores busy: about 3 s here,
    # once more than 10 s in CI, so the bound is generous; a worker that
    # never comes back still fails.
    back = seconds_until(lambda: served_by_new_worker(stack, victim.pid), 30)
    assert back is not None, (
        "no new web worker answered within 30 s",
        [p.pid for p in stack.web_workers()],
    )

    # the ingest process, the Celery worker and beat: supervisord restarts
    # each; predictions never stop (writers insert their own events
    # meanwhile)
    restarts = {}
    for role in ("ingest", "worker", "beat"):
        pid = stack.pid(role)
        os.kill(pid, signal.SIGKILL)
        restarts[role] = seconds_until(
            lambda r=role, p=pid: stack.pid(r) not in (None, p), 10
        )
        assert restarts[role] is not None, f"{role} not back within 10 s"
        assert predict_ok(stack.url)

    for client in clients:
        client.stop()
    answers = [a for c in clients for a in c.answers]
    failed = [a for a in answers if a.status != 200]
    # fewer than 1 % of the requests failed across the kills
    assert len(failed) < 0.01 * len(answers), (len(failed), len(answers))
    assert all(abs(a.sent - killed_at) < 2 for a in failed), failed

    # every answered prediction's event is stored, but for what the killed
    # worker held in its buffer (flushed every 250 ms)
    answered = {a.request_id: a.sent for a in answers if a.status == 200}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        missing = set(answered) - stored_request_ids()
        if all(killed_at - 1 <= answered[r] <= killed_at for r in missing):
            break
        time.sleep(0.5)
    missing = set(answered) - stored_request_ids()
    lost_window = [answered[r] - killed_at for r in missing]
    record_property("killed_worker_unflushed_events", len(missing))
    print(
        f"\nweb worker kill: {len(missing)} answered predictions not stored "
        f"(the killed worker's buffer; answered {min(lost_window, default=0):.3f}"
        f"..{max(lost_window, default=0):.3f} s relative to the kill), "
        f"{len(failed)} of {len(answers)} requests failed, /predict answered "
        f"{answering:.2f} s after, worker back after {back:.2f} s; restarts "
        f"{ {k: round(v, 2) for k, v in restarts.items()} }"
    )
    # a request sent in the few ms between killed_at and the signal landing
    # may still be answered by the dying worker (seen once: +3 ms)
    assert all(-1.0 <= t <= 0.05 for t in lost_window), lost_window
    assert len(missing) < 0.05 * len(answered)

    # the restarted worker and beat roll up again
    since = timezone.now()
    assert predict_ok(stack.url)
    rolled_up = seconds_until(
        lambda: MetricRollup.objects.filter(updated_at__gt=since).exists(), 30
    )
    assert rolled_up is not None, "no rollup after the restarts"
