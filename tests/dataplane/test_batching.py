"""Adaptive micro-batching (mlserving/dataplane/batching.py): concurrent
requests for one version share a runtime call, and each still gets its
own answer, in order, or its own error.

Concurrency is built without sleeps: the first runtime call (or a job on
the inference thread) is held at a gate until the other requests are
seen waiting, then released."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from mlserving.asgi import application
from mlserving.dataplane import offload, serving
from mlserving.dataplane.batching import Batcher
from mlserving.dataplane.offload import InferenceCosts

BAD = -999.0  # a value the fake runtime refuses
# Seconds before a test that waits for an answer fails (instead of hanging).
TIMEOUT = 30


class FakeRuntime:
    """Answers label = 10 * first column, proba = (first, -first) per row;
    records every call's rows and thread; the first call waits at `gate`
    when one is given; a call holding BAD raises, naming the request of
    its first row."""

    name = "fake"

    def __init__(self, *, gated: bool = False):
        self.calls: list[np.ndarray] = []
        self.threads: list[str] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def infer(self, batch: np.ndarray):
        self.calls.append(batch.copy())
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        if (batch == BAD).any():
            raise ValueError(f"request {request_of(batch[0])} is bad")
        first = batch[:, 0]
        return first * 10, np.column_stack([first, -first])


def rows_of(request: int, n_rows: int = 1, width: int = 4) -> np.ndarray:
    """Rows whose first column says which request and row they are."""
    rows = np.ones((n_rows, width))
    rows[:, 0] = request * 100 + np.arange(n_rows)
    return rows


def request_of(row) -> int:
    return int(row[0] // 100)


def requests_per_call(runtime: FakeRuntime) -> list[list[int]]:
    return [list(dict.fromkeys(request_of(row) for row in c)) for c in runtime.calls]


def call_for(runtime, version_id: int = 1):
    return SimpleNamespace(
        target=SimpleNamespace(version=SimpleNamespace(id=version_id), runtime=runtime),
        started=time.perf_counter(),
    )


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait (on the loop) until predicate() holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.001)


def assert_own_answer(rows: np.ndarray, answer) -> None:
    labels, proba = answer
    np.testing.assert_array_equal(labels, rows[:, 0] * 10)
    np.testing.assert_array_equal(proba, np.column_stack([rows[:, 0], -rows[:, 0]]))


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-infer")
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def batching(settings):
    def configure(mode: str = "on", max_rows: int = 256) -> None:
        settings.MLSERVING = {
            **settings.MLSERVING,
            "BATCHING": mode,
            "BATCH_MAX_ROWS": max_rows,
        }

    return configure


async def held_then_released(batcher, runtime, requests, version_of=None):
    """Submit requests[0] and hold its call; submit the others while it
    runs; release; every answer (or exception), in request order."""
    version_of = version_of or (lambda i: 1)
    first = asyncio.create_task(
        batcher.infer(call_for(runtime, version_of(0)), requests[0])
    )
    await until(runtime.entered.is_set)
    rest = [
        asyncio.create_task(batcher.infer(call_for(runtime, version_of(i)), rows))
        for i, rows in enumerate(requests[1:], start=1)
    ]
    try:
        await until(lambda: batcher.pending() == len(rest))
    finally:
        runtime.gate.set()
    answers = asyncio.gather(first, *rest, return_exceptions=True)
    return await asyncio.wait_for(answers, TIMEOUT)


@pytest.mark.anyio
async def test_concurrent_requests_share_calls_and_each_gets_its_own_answer_in_order(
    batching, executor
):
    # given: batches of at most 8 rows; requests of 1 to 3 rows
    batching("on", max_rows=8)
    runtime = FakeRuntime(gated=True)
    batcher = Batcher(InferenceCosts(), executor)
    requests = [rows_of(i, n_rows=1 + i % 3) for i in range(12)]
    # when: eleven arrive while the first one's call runs
    answers = await held_then_released(batcher, runtime, requests)
    # then: each got exactly its own labels and probabilities, in row order
    for rows, answer in zip(requests, answers, strict=True):
        assert_own_answer(rows, answer)
    # and the waiting requests were stacked, never past 8 rows a call
    grouped = requests_per_call(runtime)
    assert grouped[0] == [0]
    assert any(len(group) > 1 for group in grouped)
    assert max(len(c) for c in runtime.calls) <= 8
    # and first come, first served
    assert [r for group in grouped for r in group] == list(range(12))
    np.testing.assert_array_equal(np.vstack(runtime.calls), np.vstack(requests))


@pytest.mark.anyio
async def test_a_bad_request_inside_a_batch_fails_alone(batching, executor):
    batching("on")
    runtime = FakeRuntime(gated=True)
    batcher = Batcher(InferenceCosts(), executor)
    requests = [rows_of(i, n_rows=2) for i in range(6)]
    requests[3][1, 2] = BAD
    answers = await held_then_released(batcher, runtime, requests)
    # the bad request's rows were in a stacked call with others...
    assert [1, 2, 3, 4, 5] in requests_per_call(runtime)
    # ...yet only it failed, with the error of its own rows
    error = answers[3]
    assert isinstance(error, ValueError)
    assert str(error) == "request 3 is bad"
    for i in (0, 1, 2, 4, 5):
        assert_own_answer(requests[i], answers[i])


@pytest.mark.anyio
async def test_rows_of_different_widths_are_never_stacked_together(batching, executor):
    batching("on")
    runtime = FakeRuntime(gated=True)
    batcher = Batcher(InferenceCosts(), executor)
    widths = [4, 3, 3, 3, 5, 5, 5]
    requests = [rows_of(i, width=w) for i, w in enumerate(widths)]
    answers = await held_then_released(batcher, runtime, requests)
    # same widths still share a call; a new width starts the next one
    assert requests_per_call(runtime) == [[0], [1, 2, 3], [4, 5, 6]]
    for rows, answer in zip(requests, answers, strict=True):
        assert_own_answer(rows, answer)


@pytest.mark.anyio
async def test_a_request_larger_than_the_cap_runs_alone(batching, executor):
    batching("on", max_rows=4)
    runtime = FakeRuntime(gated=True)
    batcher = Batcher(InferenceCosts(), executor)
    requests = [rows_of(0), rows_of(1), rows_of(2, n_rows=6), rows_of(3)]
    answers = await held_then_released(batcher, runtime, requests)
    assert requests_per_call(runtime) == [[0], [1], [2], [3]]
    for rows, answer in zip(requests, answers, strict=True):
        assert_own_answer(rows, answer)


@pytest.mark.anyio
async def test_versions_take_turns(batching, executor):
    # given: two rows a call; version 1 has three waiting, version 2 two
    batching("on", max_rows=2)
    runtime = FakeRuntime(gated=True)
    batcher = Batcher(InferenceCosts(), executor)
    versions = [1, 1, 1, 2, 1, 2]
    requests = [rows_of(i) for i in range(len(versions))]
    answers = await held_then_released(
        batcher, runtime, requests, version_of=lambda i: versions[i]
    )
    # then: version 2 is served before version 1's third request
    assert requests_per_call(runtime) == [[0], [1, 2], [3, 5], [4]]
    for rows, answer in zip(requests, answers, strict=True):
        assert_own_answer(rows, answer)


@pytest.mark.anyio
async def test_one_request_alone_runs_at_once_as_its_own_call(batching, executor):
    batching("on")
    runtime = FakeRuntime()
    costs = InferenceCosts()
    batcher = Batcher(costs, executor)
    rows = rows_of(7)
    answer = await asyncio.wait_for(
        batcher.infer(call_for(runtime, version_id=5), rows), TIMEOUT
    )
    assert_own_answer(rows, answer)
    assert requests_per_call(runtime) == [[7]]
    assert runtime.threads[0].startswith("test-infer")
    # and its cost was learned as a one-row call's
    assert costs.estimate(5, 1) is not None
    assert costs.estimate(5, 3) == pytest.approx(3 * costs.estimate(5, 1))


def target(runtime_name: str, version_id: int = 1):
    return SimpleNamespace(
        version=SimpleNamespace(id=version_id),
        runtime=SimpleNamespace(name=runtime_name),
    )


@pytest.mark.parametrize(
    ("mode", "runtime_name", "measured", "batched"),
    [
        ("off", "sklearn", None, False),
        ("on", "onnx", None, True),
        # a scikit-learn forest: 5 ms a row
        ("auto", "sklearn", (0.005, 0.006), True),
        # a scikit-learn LogisticRegression: cheaper than the hand-over
        ("auto", "sklearn", (0.00013, 0.00015), False),
        ("auto", "sklearn", None, False),
        ("auto", "onnx", None, False),
        # a row of a 20-row call costs a tenth of a one-row call
        ("auto", "onnx", (0.010, 0.020), True),
        # rows cost the same alone and together
        ("auto", "onnx", (0.001, 0.020), False),
        # an ONNX Runtime forest: 10 us a row, stacking or not
        ("auto", "onnx", (0.00001, 0.00002), False),
    ],
    ids=[
        "off",
        "on",
        "auto-sklearn-forest",
        "auto-sklearn-cheap",
        "auto-unmeasured-sklearn",
        "auto-unmeasured",
        "auto-measured-cheaper",
        "auto-measured-not-cheaper",
        "auto-onnx-cheap",
    ],
)
def test_which_calls_are_batched(batching, mode, runtime_name, measured, batched):
    batching(mode)
    costs = InferenceCosts()
    if measured is not None:
        one_row, twenty_rows = measured
        costs.observe(1, 1, one_row)
        costs.observe(1, 20, twenty_rows)
    assert Batcher(costs).applies(target(runtime_name)) is batched


# --- Through the real prediction path -------------------------------------


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver"
    )


def answer_of(response: httpx.Response) -> dict:
    body = response.json()
    for meta in ("request_id", "processing_time_ms", "cached"):
        body.pop(meta)
    return body


def predict(c: httpx.AsyncClient, row):
    return c.post("/predict", json={"features": list(row), "model_version": "v2.0"})


def v2_runtime():
    entry = next(
        e for e in serving.catalog.current.versions.values() if e.version == "v2.0"
    )
    return serving.runtimes.loaded(entry)


def spy_on(monkeypatch, runtime) -> list[int]:
    """Rows per infer call of `runtime` from now on."""
    sizes: list[int] = []
    infer = runtime.infer

    def recorded(batch):
        sizes.append(len(batch))
        return infer(batch)

    monkeypatch.setattr(runtime, "infer", recorded)
    return sizes


class HeldInferenceThread:
    """Occupies the process's inference thread until released."""

    def __init__(self):
        self.running = threading.Event()
        self.gate = threading.Event()

    def __enter__(self):
        offload._inference.submit(self._hold)
        assert self.running.wait(10)
        return self

    def _hold(self):
        self.running.set()
        self.gate.wait(30)

    def __exit__(self, *exc):
        self.gate.set()


@pytest.fixture
def on_the_inference_thread(settings):
    """Every call goes to the inference thread, and nothing is cached."""
    settings.MLSERVING = {
        **settings.MLSERVING,
        "INLINE_INFERENCE_BUDGET_MS": 0,
        "PREDICTION_CACHE_TTL": 0,
        "BATCHING": "off",
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_concurrent_predictions_each_get_their_own_answer_and_a_bad_one_fails_alone(
    two_versions, estimators, settings, monkeypatch, on_the_inference_thread
):
    rows = estimators["X"][:20]
    async with client() as c:
        # given: each row's answer when it is asked alone
        alone = [answer_of(await predict(c, row)) for row in rows]
        settings.MLSERVING = {**settings.MLSERVING, "BATCHING": "on"}
        sizes = spy_on(monkeypatch, v2_runtime())
        # when: twenty clients ask at once, and one sends 3 features
        with HeldInferenceThread():
            together = [asyncio.create_task(predict(c, row)) for row in rows]
            bad = asyncio.create_task(predict(c, [0.1, 0.2, 0.3]))
            await until(lambda: serving.batcher.pending() == len(rows))
        responses = await asyncio.wait_for(asyncio.gather(*together), TIMEOUT)
        bad_response = await asyncio.wait_for(bad, TIMEOUT)
    # then: every answer is the one it gets alone
    assert [r.status_code for r in responses] == [200] * len(rows)
    assert [answer_of(r) for r in responses] == alone
    # and they were computed in one stacked call
    assert sizes == [len(rows)]
    # and the bad request alone failed
    assert bad_response.status_code == 422
    assert bad_response.json()["error"]["code"] == "feature_count_mismatch"


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_with_batching_off_every_prediction_is_its_own_call(
    two_versions, estimators, monkeypatch, on_the_inference_thread
):
    rows = estimators["X"][:5]
    async with client() as c:
        assert (await predict(c, rows[0])).status_code == 200  # loads v2.0
        sizes = spy_on(monkeypatch, v2_runtime())
        with HeldInferenceThread():
            waiting = [asyncio.create_task(predict(c, row)) for row in rows]
            await until(lambda: offload._inference._work_queue.qsize() == len(rows))
        responses = await asyncio.wait_for(asyncio.gather(*waiting), TIMEOUT)
    assert [r.status_code for r in responses] == [200] * len(rows)
    assert sizes == [1] * len(rows)
