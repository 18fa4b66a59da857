"""The event buffer: every /predict call leaves one event; writes are
batched, retried when the database refuses, and drops are counted."""

import json
from unittest import mock

import pytest
from django.db import OperationalError

from monitoring import events
from monitoring.events import writer
from monitoring.models import PredictionEvent
from tests.conftest import SEED_FEATURES


def predict(client, **body):
    return client.post(
        "/predict",
        json.dumps({"features": SEED_FEATURES, **body}),
        content_type="application/json",
    )


def test_each_request_leaves_one_event_with_its_outcome(client, two_versions):
    ok = predict(client, user_id=42)
    predict(client, model_version="v2.0")
    client.post("/predict", "{", content_type="application/json")
    predict(client, model_version="v9")
    assert PredictionEvent.objects.count() == 0  # nothing on the request path
    writer.flush()
    events = {e.request_id: e for e in PredictionEvent.objects.all()}
    assert len(events) == 4
    first = events[ok.json()["request_id"]]
    assert (first.model, first.version, first.outcome) == ("default", "v1.0", "ok")
    assert first.predicted_class == str(ok.json()["prediction"])
    assert first.confidence == pytest.approx(ok.json()["confidence"])
    assert first.subject_key == "42"
    assert first.rows == 1
    assert first.features is None
    outcomes = sorted((e.version, e.outcome) for e in events.values())
    assert outcomes == [
        ("", "malformed_json"),
        ("", "model_version_not_found"),
        ("v1.0", "ok"),
        ("v2.0", "ok"),
    ]


def test_a_batch_records_its_class_counts_and_features_when_asked(
    client, two_versions, settings
):
    settings.MONITORING = {**settings.MONITORING, "LOG_FEATURES": True}
    rows = [SEED_FEATURES, [-v for v in SEED_FEATURES], SEED_FEATURES]
    body = predict(client, features=rows).json()
    writer.flush()
    event = PredictionEvent.objects.get()
    assert event.rows == 3
    labels = [p["prediction"] for p in body["predictions"]]
    assert sum(event.class_counts.values()) == 3
    assert event.class_counts == {str(k): labels.count(k) for k in set(labels)}
    assert event.features == rows


def test_a_refused_write_is_retried_and_nothing_is_lost(client, two_versions):
    for _ in range(5):
        predict(client)
    with mock.patch.object(
        events,
        "events_insert",
        side_effect=OperationalError("server closed the connection"),
    ):
        assert writer.flush() is False
    assert writer.stats()["buffered"] == 5
    assert writer.stats()["last_error"] == "server closed the connection"
    predict(client)
    assert writer.flush() is True
    assert PredictionEvent.objects.count() == 6
    assert writer.stats() | {"last_flush_at": None} == writer.stats() | {
        "buffered": 0,
        "written": 6,
        "dropped": 0,
        "write_failures": 1,
        "last_error": None,
        "last_flush_at": None,
    }


def test_a_full_buffer_drops_and_counts_and_health_says_so(
    client, two_versions, settings
):
    settings.MONITORING = {**settings.MONITORING, "EVENT_BUFFER_SIZE": 3}
    responses = [predict(client) for _ in range(5)]
    assert all(r.status_code == 200 for r in responses)  # callers never see it
    assert writer.stats()["dropped"] == 2
    health = client.get("/health").json()
    assert health["events"]["dropped"] == 2
    assert any("2 prediction events dropped" in p for p in health["problems"])
    writer.flush()
    assert PredictionEvent.objects.count() == 3


def test_monitoring_off_records_nothing(client, two_versions, settings):
    settings.MONITORING = {**settings.MONITORING, "ENABLED": False}
    assert predict(client).status_code == 200
    writer.flush()
    assert PredictionEvent.objects.count() == 0


def test_a_batch_committed_but_not_acknowledged_is_not_stored_twice(
    client, two_versions
):
    for _ in range(4):
        predict(client)
    real = events.events_insert

    def commit_then_fail(rows):
        real(rows)  # the commit went through...
        raise OperationalError("connection lost")  # ...the answer did not

    with mock.patch.object(events, "events_insert", side_effect=commit_then_fail):
        assert writer.flush() is False
    predict(client)
    assert writer.flush() is True
    assert PredictionEvent.objects.count() == 5
    assert writer.stats()["written"] == 5
