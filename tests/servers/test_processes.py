"""Real server processes (the Procfile's web command) on one database."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from mlserving.embedded_redis import EmbeddedRedis
from registry.models import ModelVersion
from tests.conftest import ROOT, SEED_FEATURES, all_schedules_ensure, flip_one_byte

pytestmark = pytest.mark.servers


def predict(server, **fields) -> httpx.Response:
    return httpx.post(
        f"{server.url}/predict",
        json={"features": SEED_FEATURES, **fields},
        timeout=5,
    )


def test_activation_reaches_every_process_within_one_second(two_versions, start_server):
    # given: two server processes, both serving v1.0
    a, b = start_server(), start_server()
    for server in (a, b):
        assert predict(server).json()["model_version"] == "v1.0"
    # when: v2.0 is activated through process a
    started = time.monotonic()
    response = httpx.post(f"{a.url}/models/v2.0/activate", timeout=10)
    assert response.status_code == 200
    # then: process b serves v2.0 within one second
    elapsed = None
    while time.monotonic() - started < 3:
        if predict(b).json()["model_version"] == "v2.0":
            elapsed = time.monotonic() - started
            break
        time.sleep(0.01)
    assert elapsed is not None and elapsed <= 1.0, elapsed
    assert predict(a).json()["model_version"] == "v2.0"


def test_a_restart_keeps_the_registry(two_versions, start_server):
    first = start_server()
    httpx.post(f"{first.url}/models/v2.0/activate", timeout=10)
    first.stop()
    second = start_server()
    models = httpx.get(f"{second.url}/models", timeout=5).json()
    assert models["active_version"] == "v2.0"
    assert [h["to_version"] for h in models["history"]] == ["v2.0", "v1.0"]
    assert predict(second).json()["model_version"] == "v2.0"
    # warmed at start-up: the first request found v2.0 already loaded
    assert "default:v2.0" in httpx.get(f"{second.url}/health").json()["models_loaded"]


def test_killing_the_embedded_redis_does_not_break_predict(
    two_versions, start_server, tmp_path
):
    redis = EmbeddedRedis(tmp_path / "r.sock", tmp_path / "redis").start()
    try:
        server = start_server(REDIS_URL=redis.url)
        assert httpx.get(f"{server.url}/health").json()["redis"]["ok"] is True
        # when
        os.kill(redis.process.pid, signal.SIGKILL)
        redis.process.wait()
        # then
        for _ in range(20):
            assert predict(server).status_code == 200
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 200
        assert health.json()["redis"]["ok"] is False
        assert health.json()["status"] == "healthy"
    finally:
        redis.stop()


def test_a_tampered_active_artifact_is_refused_on_reload(two_versions, start_server):
    # given: v2.0 active, then one byte of its file changes on disk
    first = start_server()
    httpx.post(f"{first.url}/models/v2.0/activate", timeout=10)
    first.stop()
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    # when: a new process has to load it
    server = start_server()
    response = predict(server)
    # then: refused, recorded, and the previous version keeps serving
    assert response.status_code == 200
    assert response.json()["model_version"] == "v1.0"
    assert response.json()["routing"]["reason"] == "fallback"
    v2 = ModelVersion.objects.get(version="v2.0")
    assert v2.status == "integrity_failed"
    assert "model_v2.0.pkl" in v2.status_detail
    assert "sha256" in v2.status_detail
    assert "does not match" in server.read_log()


def test_celery_worker_and_beat_run_the_periodic_task(
    two_versions, server_env, redis_service, tmp_path
):
    """A real worker and beat against real Redis (not eager mode): the
    beat-scheduled artifact check finds a tampered file and marks it. The
    schedule is edited in the database, as staff would in the admin."""
    env = server_env
    all_schedules_ensure()
    every_second, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.filter(task="registry.tasks.artifacts_verify_task").update(
        interval=every_second
    )
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    celery = [sys.executable, "-m", "celery", "-A", "mlserving"]
    log = open(tmp_path / "celery.log", "w")
    processes = [
        subprocess.Popen(
            [
                *celery,
                "worker",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--pool",
                "solo",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                *celery,
                "beat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            status = ModelVersion.objects.get(version="v2.0").status
            if status == "integrity_failed":
                break
            time.sleep(0.5)
        log.flush()
        assert status == "integrity_failed", Path(tmp_path / "celery.log").read_text()
        assert "artifacts_verify_task" in Path(tmp_path / "celery.log").read_text()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def test_concurrent_predictions_during_activations_never_fail(
    two_versions, start_server
):
    """16 clients predict while the active version flips back and forth:
    every request succeeds and is answered by one of the two versions."""
    from concurrent.futures import ThreadPoolExecutor

    server = start_server(workers=2)
    stop = time.monotonic() + 3
    seen: list[tuple[int, str]] = []

    def client_loop():
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while time.monotonic() < stop:
                response = http.post("/predict", json={"features": SEED_FEATURES})
                seen.append(
                    (response.status_code, response.json().get("model_version"))
                )

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(client_loop) for _ in range(16)]
        for version in ["v2.0", "v1.0", "v2.0", "v1.0"]:
            time.sleep(0.5)
            assert (
                httpx.post(f"{server.url}/models/{version}/activate").status_code == 200
            )
        for future in futures:
            future.result()
    assert len(seen) > 100
    assert {status for status, _ in seen} == {200}
    assert {version for _, version in seen} == {"v1.0", "v2.0"}
