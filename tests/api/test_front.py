"""The HTTP front (mlserving/front.py) through the real ASGI application:
admission, body deadlines, chunked bodies, /feedback's wait on the event
loop, API keys, and the same answers as the Django view on /predict."""

import asyncio
import threading
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from mlserving.asgi import application
from monitoring.events import writer
from monitoring.models import Feedback, PredictionEvent
from registry.models import AliasChange
from tests.conftest import SEED_FEATURES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver"
    )


class HeldBody:
    """A request body that sends its first half, then waits for release()."""

    def __init__(self, body: bytes):
        self.body = body
        self.released = asyncio.Event()
        self.sent_first_half = asyncio.Event()

    async def __aiter__(self):
        half = len(self.body) // 2
        yield self.body[:half]
        self.sent_first_half.set()
        await self.released.wait()
        yield self.body[half:]

    def release(self) -> None:
        self.released.set()


BODY = b'{"features": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}'


async def test_past_the_admission_limit_the_answer_is_an_immediate_503(
    two_versions, settings
):
    settings.MLSERVING = {**settings.MLSERVING, "MAX_CONCURRENT_REQUESTS": 2}
    async with client() as c:
        # given: two requests in flight (their bodies half sent)
        held = [HeldBody(BODY), HeldBody(BODY)]
        pending = [
            asyncio.create_task(c.post("/predict", content=h, timeout=30)) for h in held
        ]
        for h in held:
            await asyncio.wait_for(h.sent_first_half.wait(), 10)
        # when: a third arrives
        started = time.monotonic()
        third = await c.post("/predict", json={"features": SEED_FEATURES})
        # then: 503 at once, with Retry-After, in the one error shape
        assert time.monotonic() - started < 1.0
        assert third.status_code == 503
        assert third.headers["Retry-After"] == "1"
        assert third.json()["error"]["code"] == "overloaded"
        assert third.headers["X-Request-ID"] == third.json()["error"]["request_id"]
        # and probes still answer
        assert (await c.get("/health")).status_code == 200
        # when: the held requests finish, both are answered and the next one
        # is admitted
        for h in held:
            h.release()
        assert [r.status_code for r in await asyncio.gather(*pending)] == [200, 200]
        again = await c.post("/predict", json={"features": SEED_FEATURES})
        assert again.status_code == 200
    # and the refused call is in the prediction log, as any refused call is
    await asyncio.to_thread(writer.flush)
    outcomes = await asyncio.to_thread(
        lambda: dict(PredictionEvent.objects.values_list("request_id", "outcome"))
    )
    assert outcomes[third.headers["X-Request-ID"]] == "overloaded"
    assert sorted(outcomes.values()) == ["ok", "ok", "ok", "overloaded"]


@pytest.mark.parametrize("path", ["/predict", "/ab-test/configure"])
async def test_a_body_that_stops_arriving_is_a_408(two_versions, settings, path):
    # /predict is answered by the front, /ab-test/configure by Django
    settings.MLSERVING = {**settings.MLSERVING, "REQUEST_BODY_TIMEOUT": 0.3}
    held = HeldBody(BODY)
    async with client() as c:
        started = time.monotonic()
        response = await c.post(path, content=held, timeout=10)
        elapsed = time.monotonic() - started
    held.release()
    assert response.status_code == 408
    assert response.json()["error"]["code"] == "body_timeout"
    assert 0.3 <= elapsed < 2.0


async def chunks(*parts: bytes):
    for part in parts:
        yield part


async def test_chunked_bodies_work_on_every_route(two_versions):
    async with client() as c:
        # the front's own route
        predicted = await c.post("/predict", content=chunks(BODY[:20], BODY[20:]))
        # Django routes, whose DRF parsers ignore a body without a length
        activated = await c.post(
            "/models/v2.0/activate",
            content=chunks(b'{"note": "chun', b'ked"}'),
            headers={"Content-Type": "application/json"},
        )
        configured = await c.post(
            "/ab-test/configure",
            content=chunks(
                b'{"enabled": true, "split_ratio": 0.3,',
                b' "models": ["v1.0", "v2.0"]}',
            ),
            headers={"Content-Type": "application/json"},
        )
    assert predicted.request.headers["Transfer-Encoding"] == "chunked"
    assert predicted.status_code == 200
    assert activated.status_code == 200
    note = await asyncio.to_thread(
        lambda: AliasChange.objects.latest("changed_at").note
    )
    assert note == "chunked"
    assert configured.status_code == 200
    assert configured.json()["enabled"] is True
    assert configured.json()["split_ratio"] == 0.3


async def test_feedback_waits_on_the_event_loop_not_in_a_thread(two_versions, settings):
    settings.EXPERIMENTS = {**settings.EXPERIMENTS, "FEEDBACK_WAIT": 1.5}
    async with client() as c:
        assert (await c.post("/predict", json={"features": SEED_FEATURES})).is_success
        threads_before = threading.active_count()
        # given: eight clients posting feedback for ids nobody logged
        waits = [
            asyncio.create_task(
                c.post("/feedback", json={"request_id": f"nope-{i}", "converted": True})
            )
            for i in range(8)
        ]
        await asyncio.sleep(0.3)
        # then: their waits hold no thread each (a sync view would)
        assert threading.active_count() - threads_before <= 1
        # and predictions and a Django route do not wait for them
        started = time.monotonic()
        for _ in range(20):
            answer = await c.post("/predict", json={"features": SEED_FEATURES})
            assert answer.status_code == 200
        assert (await c.get("/models")).status_code == 200
        assert time.monotonic() - started < 1.0
        assert not any(w.done() for w in waits)
        answers = await asyncio.gather(*waits)
    assert [a.status_code for a in answers] == [404] * 8
    assert answers[0].json()["error"]["code"] == "not_found"


async def test_feedback_finds_a_prediction_written_while_it_waits(two_versions):
    async with client() as c:
        predicted = await c.post(
            "/predict",
            json={"features": SEED_FEATURES},
            headers={"X-Request-ID": "order-1"},
        )
        assert predicted.status_code == 200
        # the event is still in this process's buffer when feedback arrives
        feedback = asyncio.create_task(
            c.post("/feedback", json={"request_id": "order-1", "true_label": 1})
        )
        await asyncio.sleep(0.3)
        await asyncio.to_thread(writer.flush)
        answer = await feedback
    assert answer.status_code == 201
    assert answer.json()["model_version"] == "v1.0"
    assert await asyncio.to_thread(Feedback.objects.count) == 1


async def test_feedback_takes_json_only(two_versions):
    async with client() as c:
        response = await c.post("/feedback", data={"request_id": "x", "converted": "1"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_with_reads_closed_the_front_answers_a_valid_key_and_django_the_rest(
    two_versions, settings, api_key
):
    key = await sync_to_async(api_key)("predict")
    settings.MLSERVING = {**settings.MLSERVING, "READS_OPEN": False}
    body = {"features": SEED_FEATURES}
    async with client() as c:
        ok = await c.post("/predict", json=body, headers={"X-API-Key": key})
        bearer = await c.post(
            "/predict", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        missing = await c.post("/predict", json=body)
        wrong = await c.post("/predict", json=body, headers={"X-API-Key": "nope"})
    assert ok.status_code == bearer.status_code == 200
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "not_authenticated"
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "authentication_failed"


PREDICT_CASES = {
    "not json": b"{features",
    "empty": b"",
    "a list": b"[1, 2]",
    "no features": b'{"model_version": "v1.0"}',
    "strings": b'{"features": ["a", "b"]}',
    "wrong count": b'{"features": [1, 2, 3]}',
    "unknown version": b'{"features": [1], "model_version": "v9"}',
    "unknown model": b'{"features": [1], "model": "nope"}',
    "ragged": b'{"features": [[1, 2], [1]]}',
    "too many rows": b'{"features": [' + b",".join([b"[1]"] * 1001) + b"]}",
}


@pytest.mark.parametrize("body", PREDICT_CASES.values(), ids=PREDICT_CASES.keys())
async def test_the_front_and_the_django_view_answer_predict_alike(two_versions, body):
    async with client() as c:
        front = await c.post(
            "/predict", content=body, headers={"Content-Type": "application/json"}
        )
    django = await asyncio.to_thread(
        lambda: Client().post("/predict", body, content_type="application/json")
    )
    assert front.status_code == django.status_code >= 400
    front_error, django_error = front.json()["error"], django.json()["error"]
    assert front_error["code"] == django_error["code"]
    assert front_error["details"] == django_error["details"]


async def test_an_oversized_predict_body_is_413_and_logged(two_versions, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    body = b'{"features": [' + b", ".join([b"0.5"] * 100) + b"]}"
    async with client() as c:
        response = await c.post("/predict", content=chunks(body[:150], body[150:]))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    await asyncio.to_thread(writer.flush)
    outcomes = await asyncio.to_thread(
        lambda: list(PredictionEvent.objects.values_list("outcome", flat=True))
    )
    assert outcomes == ["payload_too_large"]
