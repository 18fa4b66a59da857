"""Experiments on real processes: a 2-worker web server, a second one for
the websocket, a Celery worker and beat against real Redis. A version that
raises on every prediction runs as an arm; the beat-scheduled evaluation
pauses it, and clients stop seeing errors."""

import threading
import time

import httpx
import pytest

from experiments.models import AuditEntry, Experiment, Variant
from monitoring.models import RollupState
from registry import services as registry_services
from registry.faults import FailingClassifier
from tests.conftest import SEED_FEATURES, all_schedules_ensure, dump

pytestmark = pytest.mark.servers


class Clients:
    """Four clients predicting in a loop; every answer is kept with the
    time it came back."""

    def __init__(self, url: str):
        self.url = url
        self.answers: list[tuple[float, int, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(4)]

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                response = client.post(
                    f"{self.url}/predict", json={"features": SEED_FEATURES}
                )
                version = None
                if response.status_code == 200:
                    version = response.json()["model_version"]
                self.answers.append((time.time(), response.status_code, version))
                time.sleep(0.005)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def test_a_failing_arm_is_paused_within_one_rollup_interval(
    two_versions,
    estimators,
    server_env,
    redis_service,
    start_server,
    start_celery,
    listen,
):
    # given: v3.0 raises on every prediction, and gets half the traffic
    registry_services.model_version_register(
        model_name="default",
        version="v3.0",
        source=dump(
            two_versions["root"], "model_v3.0.pkl", FailingClassifier(estimators["lr"])
        ),
    )
    all_schedules_ensure()
    env = dict(server_env)
    web = start_server(workers=2)
    ws = start_server()
    start_celery("worker", env)
    start_celery("beat", env)
    listener = listen(f"{ws.ws_url}/ws/metrics/")
    # the worker and beat are up: rollups run on schedule
    runs = set()
    deadline = time.monotonic() + 60
    while len(runs) < 2 and time.monotonic() < deadline:
        runs.update(RollupState.objects.values_list("last_run_at", flat=True))
        runs.discard(None)
        time.sleep(0.2)
    assert len(runs) >= 2, "no rollups ran"
    configured = httpx.post(
        f"{web.url}/ab-test/configure",
        json={"enabled": True, "split_ratio": 0.5, "models": ["v1.0", "v3.0"]},
        timeout=30,
    )
    assert configured.status_code == 200, configured.text
    Experiment.objects.update(max_error_rate=0.05, min_requests=20)

    with Clients(web.url) as clients:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if Variant.objects.filter(paused=True).exists():
                break
            time.sleep(0.05)
        paused_at = time.time()
        time.sleep(3)  # well past the registry poll interval (0.25 s)
        settled_at = time.time()
        time.sleep(3)

    variant = Variant.objects.get(version__version="v3.0")
    assert variant.paused, "the failing arm was never paused"
    errors = [t for t, status, _ in clients.answers if status != 200]
    assert errors, "the failing arm never failed"
    first_error = min(errors)
    # within one rollup interval (2 s) plus the event flush (0.25 s) and
    # the task's own run, measured from the first failure
    assert paused_at - first_error < 2 + 0.25 + 2.5, paused_at - first_error
    late = [(t, s) for t, s, _ in clients.answers if t >= paused_at + 0.75 and s != 200]
    assert late == []
    after = [v for t, s, v in clients.answers if t >= settled_at]
    assert len(after) > 50 and set(after) == {"v1.0"}
    assert AuditEntry.objects.filter(kind="guardrail", arm="v3.0").exists()
    # and a dashboard got the alert over the websocket
    pushed = listener.wait_for(
        lambda _, m: (
            m["type"] == "experiments"
            and any(
                alert["arm"] == "v3.0"
                for experiment in m["experiments"]
                for alert in experiment["alerts"]
            )
        ),
        timeout=10,
    )
    assert pushed is not None
