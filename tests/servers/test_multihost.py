"""Two hosts on real processes, sharing the test database and Redis and
nothing else: each its own VAR_DIR, ARTIFACTS_ROOT, artifact cache, ports
and ingest process. Host A runs web, ingest, the Celery worker and the one
beat; host B runs web and ingest only, and starts with an empty
ARTIFACTS_ROOT and cache: every model file it serves comes from the shared
artifact store (registry/store.py).

- a version uploaded and activated on A is served by B within 1 s;
- rollups count the predictions of both hosts exactly;
- SIGTERM on B (web and ingest together, as a host shutdown) while
  clients send to it loses no answered prediction's event.
"""

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import skops.io
from django.db.models import Sum

from monitoring.models import MetricRollup, PredictionEvent
from registry.models import ModelVersion
from tests.conftest import SEED_FEATURES, ServerProcess, all_schedules_ensure
from tests.servers.abuse import SteadyClient, wait_until
from tests.servers.conftest import CeleryProcess, IngestProcess

pytestmark = pytest.mark.servers

SERVE_WITHIN_SECONDS = 1.0


class Host:
    """One "host": its own environment and processes."""

    def __init__(self, name: str, env: dict, tmp_path):
        self.name, self.env, self.tmp_path = name, env, tmp_path
        self.web: ServerProcess | None = None
        self.ingest: IngestProcess | None = None
        self.others: list[CeleryProcess] = []

    @property
    def url(self) -> str:
        return self.web.url

    def start_ingest(self) -> None:
        self.ingest = IngestProcess(
            self.env, self.tmp_path / f"{self.name}-ingest.log"
        ).start()

    def start_web(self) -> None:
        self.web = ServerProcess(self.env).start(timeout=60)

    def start_celery(self, kind: str) -> None:
        self.others.append(
            CeleryProcess(
                kind, self.env, self.tmp_path / f"{self.name}-{kind}.log"
            ).start()
        )

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
        for process in [self.ingest, *self.others]:
            if process is not None:
                process.stop()


@pytest.fixture
def hosts(two_versions, server_env, redis_service, tmp_path):
    """(host A, host B), started. Host A's ARTIFACTS_ROOT holds the two
    versions' files; host B's is empty."""
    all_schedules_ensure()  # transactional tests start from empty tables

    def env_of(name: str, root) -> dict:
        var = tmp_path / f"host-{name}"
        var.mkdir()
        return {
            **server_env,
            "VAR_DIR": str(var),
            "ARTIFACTS_ROOT": str(root),
            "ARTIFACT_CACHE_DIR": str(var / "artifact-cache"),
            # one test client sends every request from 127.0.0.1
            "THROTTLE_ANON": "1000000/s",
            "THROTTLE_KEY": "1000000/s",
        }

    empty = tmp_path / "host-b-artifacts"
    empty.mkdir()
    a = Host("a", env_of("a", two_versions["root"]), tmp_path)
    b = Host("b", env_of("b", empty), tmp_path)
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda h: h.start_ingest(), (a, b)))
            list(pool.map(lambda h: h.start_web(), (a, b)))
        a.start_celery("worker")
        a.start_celery("beat")
        yield a, b
    finally:
        b.stop()
        a.stop()


class Tally:
    """Every /predict this test sends, and which answered 200."""

    def __init__(self):
        self.ok: dict[str, int] = {}
        self._lock = threading.Lock()
        self._n = 0

    def predict(self, client: httpx.Client, host: Host) -> httpx.Response:
        with self._lock:
            self._n += 1
            request_id = f"multihost-{host.name}-{self._n}"
        response = client.post(
            f"{host.url}/predict",
            json={"features": SEED_FEATURES},
            headers={"X-Request-ID": request_id},
        )
        if response.status_code == 200:
            with self._lock:
                self.ok[host.name] = self.ok.get(host.name, 0) + 1
        return response

    @property
    def total(self) -> int:
        return sum(self.ok.values())


def rolled_up() -> int:
    return MetricRollup.objects.aggregate(n=Sum("count"))["n"] or 0


def test_two_hosts_share_versions_rollups_and_lose_no_event(hosts, estimators, api_key):
    a, b = hosts
    tally = Tally()
    key = {"Authorization": f"Bearer {api_key('write')}"}
    client = httpx.Client(timeout=10)
    # host B serves the active version from the store (it has no file)
    first = tally.predict(client, b)
    assert first.status_code == 200, first.text
    assert first.json()["model_version"] == "v1.0"

    # (1) a version uploaded on A and activated there is served by B
    uploaded = client.post(
        f"{a.url}/models/upload?model=default&version=v3",
        content=skops.io.dumps(estimators["rf"]),
        headers={**key, "Content-Type": "application/octet-stream"},
    )
    assert uploaded.status_code == 201, uploaded.text
    activated = client.post(f"{a.url}/models/v3/activate", json={}, headers=key)
    assert activated.status_code == 200, activated.text
    activated_at = time.monotonic()
    served_at = None
    while time.monotonic() - activated_at < 10:
        answer = tally.predict(client, b)
        assert answer.status_code == 200, answer.text
        if answer.json()["model_version"] == "v3":
            served_at = time.monotonic()
            break
    assert served_at is not None, "host B never served v3"
    a_to_b = served_at - activated_at
    print(f"\nA -> B: v3 uploaded and activated on A, served by B after {a_to_b:.3f} s")
    assert a_to_b < SERVE_WITHIN_SECONDS
    # B has no model file of its own: what it served came through its cache
    assert not list((b.tmp_path / "host-b-artifacts").iterdir())
    v3 = ModelVersion.objects.get(version="v3")
    cache = Path(b.env["ARTIFACT_CACHE_DIR"])
    assert {p.name for p in cache.rglob("*") if p.is_file()} >= {
        v3.sha256,
        v3.compiled_sha256 if v3.serving_runtime == "onnx" else v3.skops_sha256,
    }

    # (2) N predictions on A and M on B: the rollups count N + M (with
    # the ones above)
    def send(host: Host, count: int) -> None:
        with httpx.Client(timeout=10) as own:
            for _ in range(count):
                assert tally.predict(own, host).status_code == 200

    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(send, a, 150), pool.submit(send, a, 150)]
        jobs += [pool.submit(send, b, 100), pool.submit(send, b, 100)]
        for job in jobs:
            job.result()
    expected = tally.total
    assert wait_until(lambda: rolled_up() == expected, 30), (rolled_up(), expected)
    print(
        f"rollups: {rolled_up()} = {tally.ok['a']} on A + {tally.ok['b']} on B; "
        f"{PredictionEvent.objects.count()} events"
    )
    assert PredictionEvent.objects.count() == expected

    # (3) SIGTERM on host B (its web and ingest processes at once) while
    # three clients send to it: every answered prediction's event is stored
    clients = [SteadyClient(b.url, timeout=5).start() for _ in range(3)]
    time.sleep(1.5)
    b.web.process.send_signal(signal.SIGTERM)
    b.ingest.process.send_signal(signal.SIGTERM)
    b.web.process.wait(30)
    b.ingest.process.wait(30)
    for steady in clients:
        steady.stop()
    answered = {
        answer.request_id
        for steady in clients
        for answer in steady.answers
        if answer.status == 200
    }
    stored = set(
        PredictionEvent.objects.filter(request_id__in=answered).values_list(
            "request_id", flat=True
        )
    )
    print(
        f"SIGTERM on B: {len(answered)} predictions answered 200, "
        f"{len(stored)} events stored, {len(answered - stored)} lost"
    )
    assert len(answered) > 50
    assert answered == stored
    # and host A serves on
    assert tally.predict(client, a).status_code == 200
    client.close()
