"""Monitoring end to end on real processes: web servers (the Procfile's
uvicorn with the HTTP front), a Celery worker and beat against real
Redis, on the test database.

predictions -> event writer thread -> PredictionEvent rows -> beat ->
rollup task on the worker -> MetricRollup rows -> channel layer -> the
websocket consumer -> a client."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from mlserving.embedded_redis import EmbeddedRedis
from monitoring.models import MetricRollup, PredictionEvent
from tests.conftest import SEED_FEATURES, all_schedules_ensure
from tests.servers.abuse import wait_until

pytestmark = pytest.mark.servers


def rolled_up() -> dict[str, int]:
    return dict(
        MetricRollup.objects.values("version")
        .annotate(n=Sum("count"))
        .values_list("version", "n")
    )


class Load:
    """Clients sending /predict from threads; every response is kept."""

    def __init__(self, url: str, threads: int = 8):
        self.url = url
        self.threads = threads
        self.statuses: dict[int, int] = {}
        self.by_version: dict[str, int] = {}
        self._lock = threading.Lock()

    def send(self, versions: list[str]) -> None:
        def one(client: httpx.Client, version: str) -> None:
            response = client.post(
                f"{self.url}/predict",
                json={"features": SEED_FEATURES, "model_version": version},
            )
            with self._lock:
                self.statuses[response.status_code] = (
                    self.statuses.get(response.status_code, 0) + 1
                )
                if response.status_code == 200:
                    served = response.json()["model_version"]
                    self.by_version[served] = self.by_version.get(served, 0) + 1

        chunks = [versions[i :: self.threads] for i in range(self.threads)]

        def run(chunk: list[str]) -> None:
            with httpx.Client(timeout=10) as client:
                for version in chunk:
                    one(client, version)

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(run, chunks))

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


@pytest.fixture
def stack(
    two_versions, server_env, redis_service, start_server, start_celery, start_ingest
):
    """The Procfile's processes: web (2 processes), ws, ingest, worker and
    beat, on one database and Redis."""
    all_schedules_ensure()  # transactional tests start from empty tables

    def start(**overrides):
        env = {**server_env, **{k: str(v) for k, v in overrides.items()}}
        start_ingest(env)
        web = start_server(workers=2, **overrides)
        ws = start_server(**overrides)
        worker = start_celery("worker", env)
        beat = start_celery("beat", env)
        return web, ws, worker, beat, env

    return start


def test_ten_thousand_predictions_roll_up_exactly_through_a_worker_kill(
    stack, start_celery, listen
):
    web, ws, worker, beat, env = stack()
    listener = listen(f"{ws.ws_url}/ws/metrics/")
    versions = ["v2.0" if i % 4 == 0 else "v1.0" for i in range(10_000)]
    load = Load(web.url)

    # first half, then the worker dies mid-stream (SIGKILL, whole tree) and
    # comes back while the second half is sent
    load.send(versions[:5_000])
    assert wait_until(lambda: sum(rolled_up().values()) > 0, 30)
    worker.kill()
    restart = threading.Timer(3, lambda: start_celery("worker", env))
    restart.start()
    load.send(versions[5_000:])
    restart.join()

    assert load.statuses == {200: 10_000}
    assert load.by_version == {"v1.0": 7_500, "v2.0": 2_500}
    assert wait_until(lambda: rolled_up() == {"v1.0": 7_500, "v2.0": 2_500}, 60), (
        rolled_up()
    )
    assert PredictionEvent.objects.count() == 10_000
    assert MetricRollup.objects.aggregate(e=Sum("errors"))["e"] == 0
    # and a dashboard connected to a websocket saw the rollups arrive
    pushed = listener.wait_for(
        lambda _, m: (
            m["type"] == "rollups"
            and any(r["version"] == "v2.0" and r["count"] > 0 for r in m["rollups"])
        ),
        timeout=10,
    )
    assert pushed is not None, listener.messages[:3]


def test_redis_down_for_ten_seconds_loses_nothing(stack, tmp_path, listen):
    # a Redis of this test's own, so it can be stopped
    socket = Path(tmp_path) / "redis.sock"
    redis = EmbeddedRedis(socket, tmp_path / "redis-data").start()
    try:
        web, ws, worker, beat, env = stack(REDIS_URL=f"unix://{socket}")
        listener = listen(f"{ws.ws_url}/ws/metrics/")
        assert listener.wait_for(lambda _, m: m["type"] == "snapshot", 15)
        load = Load(web.url, threads=4)
        stop = threading.Event()

        def steady_load():
            while not stop.is_set():
                load.send(["v1.0"] * 40)
                time.sleep(0.05)

        sender = threading.Thread(target=steady_load)
        sender.start()
        time.sleep(3)
        redis.stop()
        time.sleep(10)
        during = load.sent
        redis = EmbeddedRedis(socket, tmp_path / "redis-data").start()
        back = time.time()
        time.sleep(5)
        stop.set()
        sender.join()
        sent = load.sent

        assert load.statuses == {200: sent}  # no prediction failed
        assert during > 100
        assert wait_until(lambda: PredictionEvent.objects.count() == sent, 10)
        assert wait_until(lambda: rolled_up() == {"v1.0": sent}, 60), (
            rolled_up(),
            sent,
        )
        # live pushes resumed once Redis was back
        assert listener.wait_for(
            lambda arrived, m: arrived > back and m["type"] == "rollups", 30
        ), listener.messages[-3:]
    finally:
        redis.stop()


def prometheus_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics/prometheus", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "mlserving_predictions"
        for sample in family.samples
        if sample.name == "mlserving_predictions_total"
    )


def test_prometheus_counts_every_request_to_a_two_process_server(
    two_versions, start_server
):
    # the flush interval is long: what reaches the database is written by
    # the processes' exit flush
    server = start_server(workers=2, EVENT_FLUSH_INTERVAL=60, EVENT_BATCH_SIZE=100_000)
    pids = set()
    sent = 0
    for i in range(400):
        # a new connection each time, so both processes get requests
        body = {"features": SEED_FEATURES if i % 10 else "oops"}
        response = httpx.post(f"{server.url}/predict", json=body, timeout=5)
        assert response.status_code in (200, 422)
        sent += 1
        if i % 4 == 0:
            pids.add(httpx.get(f"{server.url}/health", timeout=5).json()["pid"])
    assert len(pids) == 2
    assert PredictionEvent.objects.count() == 0  # nothing flushed yet
    # counters are drained every flush interval or at exit; the buffered
    # ones are visible through the gauge meanwhile
    server.stop()
    assert PredictionEvent.objects.count() == sent  # written on the way out
    again = start_server(workers=2)
    assert prometheus_total(again.url) == sent
    errors = PredictionEvent.objects.exclude(outcome="ok").count()
    assert errors == 40


def test_ingest_process_killed_under_load_loses_and_doubles_nothing(
    two_versions, server_env, start_server, start_ingest
):
    ingest = start_ingest(server_env)
    web = start_server(workers=2)
    load = Load(web.url, threads=8)
    versions = ["v1.0"] * 6_000

    load.send(versions[:2_000])
    # a writer has connected and handed batches over
    assert wait_until(
        lambda: (
            httpx.get(f"{web.url}/health", timeout=5).json()["events"]["via_ingest"] > 0
        ),
        10,
    )
    # SIGKILL while batches are in flight: some may be committed without
    # their answer; the writers fall back to inserting themselves
    killer = threading.Timer(0.5, ingest.kill)
    killer.start()
    load.send(versions[2_000:4_000])
    killer.join()
    assert ingest.socket.exists()  # a killed process leaves its socket file
    again = start_ingest(server_env)  # takes over the stale socket file
    load.send(versions[4_000:])
    web.stop()  # exit flush
    again.stop()

    assert load.statuses == {200: 6_000}
    assert PredictionEvent.objects.count() == 6_000
    assert PredictionEvent.objects.values("request_id").distinct().count() == 6_000
    # the restarted process took batches again (the first was SIGKILLed
    # and wrote no closing line)
    stored = re.findall(
        r"ingest: stopped; (\d+) events stored", again.log_path.read_text()
    )
    assert len(stored) == 1 and int(stored[0]) > 0, stored
